// RFC 6062 TCP relaying against the real binary with the independent client (lib/stun.mjs):
// TCP allocations, Connect to a TCP echo peer, ConnectionBind on a second connection (then a
// raw byte pipe, both ways, with more data than the pipe buffers hold), peer-initiated
// connections (ConnectionAttempt), the error rules (400 over UDP, 403 denied peer, 446, 447,
// 400 on a bad ConnectionBind), ending the allocation closing its connections, the bytes in
// the metrics, and coturn's turnutils_uclient -T (TCP relay mode, client to client).
//
// Two relay threads: a ConnectionBind reaching the thread that did not make the CONNECTION-ID
// is handed over to the right one (the kernel picks the thread per connection).
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { uclient } from './lib/tools.mjs';
import { fixture, createTurnKey, mintTurn } from './lib/server.mjs';
import { TurnClient, CLASS, METHOD, TRANSPORT } from './lib/stun.mjs';

const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'} ${r.reason ?? ''}` : String(r));

// A TCP echo server on 127.0.0.1: every byte goes back; records its connections.
async function tcpEcho() {
  const conns = [];
  const srv = net.createServer((s) => { conns.push(s); s.on('error', () => {}); s.pipe(s); });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: srv.address().port, conns,
    close: () => new Promise((r) => { for (const c of conns) c.destroy(); srv.close(r); }),
  };
}

// Resolves when `sock` closes (true) or after ms (false).
const closedWithin = (sock, ms) => new Promise((resolve) => {
  if (sock.destroyed || sock.closed) { resolve(true); return; }
  const t = setTimeout(() => resolve(false), ms);
  sock.once('close', () => { clearTimeout(t); resolve(true); });
});

// Waits for an unmatched message (indication) matching pred on client c.
function nextMessage(c, pred, ms = 5000) {
  const found = c.unmatched.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { c.off('message', on); reject(new Error('no matching indication')); }, ms);
    const on = (m) => { if (pred(m)) { clearTimeout(t); c.off('message', on); resolve(m); } };
    c.on('message', on);
  });
}

async function until(cond, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await cond()) return true; await new Promise((r) => setTimeout(r, 50)); }
  return false;
}

describe('TCP relaying (RFC 6062)', () => {
  let f, key, echo;
  const clients = [];
  const tcpClient = (transport = 'tcp') => {
    const c = new TurnClient({ port: transport === 'tls' ? f.tlsPort : f.turnPort, transport, timeoutMs: 5000 });
    clients.push(c);
    return c;
  };
  const tcpAllocation = async (transport = 'tcp') => {
    const cred = await mintTurn(f, key, { ttl: 3600, prefix: 'tcp' });
    const c = tcpClient(transport);
    const res = await c.allocate({ ...cred, transport: TRANSPORT.TCP });
    assert.equal(res.cls, CLASS.SUCCESS, show(res));
    return { c, cred };
  };
  const bind = async (cid, cred, transport = 'tcp') => {
    const d = tcpClient(transport);
    const res = await d.connectionBind(cid, cred);
    return { d, res };
  };

  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--relay-threads', '2', '--log-level', 'debug', '--relay-ports', '40000-40999'] });
    key = await createTurnKey(f, 'tcp');
    echo = await tcpEcho();
  });
  after(async () => {
    for (const c of clients) await c.close();
    await echo?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('Allocate TCP over UDP is 400; over TCP and TLS it succeeds', async () => {
    const cred = await mintTurn(f, key, { prefix: 'tcp' });
    const u = new TurnClient({ port: f.turnPort });
    clients.push(u);
    const res = await u.allocate({ ...cred, transport: TRANSPORT.TCP });
    assert.equal(res.errorCode, 400, show(res));
    const { c } = await tcpAllocation();
    assert.equal(c.relayed.address, '127.0.0.1');
    const { c: t } = await tcpAllocation('tls');
    assert.ok(t.relayed.port >= 40000 && t.relayed.port <= 40999);
  });

  test('Connect + ConnectionBind: a byte pipe to the peer both ways, with backpressure', async () => {
    const { c, cred } = await tcpAllocation();
    const res = await c.connect({ address: '127.0.0.1', port: echo.port });
    assert.equal(res.cls, CLASS.SUCCESS, show(res));
    assert.ok(res.connectionId > 0);
    assert.ok(res.integrityOk(c.key), 'the delayed Connect answer carries MESSAGE-INTEGRITY');
    const again = await c.connect({ address: '127.0.0.1', port: echo.port });
    assert.equal(again.errorCode, 446, show(again));
    const { d, res: b } = await bind(res.connectionId, cred);
    assert.equal(b.cls, CLASS.SUCCESS, show(b));
    await d.writeRaw('hello peer');
    assert.equal((await d.rawBytes(10)).toString(), 'hello peer');
    // more than the server's buffers and the socket buffers hold: it must all come back in order
    const big = Buffer.alloc(3 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 12)) & 0xff;
    const back = d.rawBytes(big.length, { timeoutMs: 60000 });
    await d.writeRaw(big);
    assert.ok((await back).equals(big), 'echoed bytes differ');
    const again2 = await bind(res.connectionId, cred);
    assert.equal(again2.res.errorCode, 400, `already bound: ${show(again2.res)}`);
  });

  test('data connections reaching either relay thread are bound (handed over when needed)', async () => {
    const { c, cred } = await tcpAllocation();
    const peers = [];
    try {
      // until one crossed threads (each one does with probability 1/2; 40 tries bound it)
      for (let i = 0; i < 40 && (i < 4 || !/connection handed over/.test(f.stderr())); i++) {
        const p = await tcpEcho();
        peers.push(p);
        const res = await c.connect({ address: '127.0.0.1', port: p.port });
        assert.equal(res.cls, CLASS.SUCCESS, show(res));
        const { d, res: b } = await bind(res.connectionId, cred);
        assert.equal(b.cls, CLASS.SUCCESS, show(b));
        await d.writeRaw(`to ${p.port}`);
        assert.equal((await d.rawBytes(`to ${p.port}`.length)).toString(), `to ${p.port}`);
      }
    } finally {
      for (const p of peers) await p.close();
    }
    assert.match(f.stderr(), /connection handed over/, 'some of the binds crossed relay threads');
  });

  test('over TLS: control and data connections', async () => {
    const { c, cred } = await tcpAllocation('tls');
    const res = await c.connect({ address: '127.0.0.1', port: echo.port });
    assert.equal(res.cls, CLASS.SUCCESS, show(res));
    const { d, res: b } = await bind(res.connectionId, cred, 'tls');
    assert.equal(b.cls, CLASS.SUCCESS, show(b));
    const data = Buffer.alloc(200000, 0x5a);
    const back = d.rawBytes(data.length, { timeoutMs: 30000 });
    await d.writeRaw(data);
    assert.ok((await back).equals(data));
  });

  test('ConnectionBind with an unknown CONNECTION-ID, or over UDP, is 400', async () => {
    const cred = await mintTurn(f, key, { prefix: 'tcp' });
    const { res } = await bind(0x7fffff00, cred);
    assert.equal(res.errorCode, 400, show(res));
    const u = new TurnClient({ port: f.turnPort });
    clients.push(u);
    const r2 = await u.connectionBind(0x100, cred);
    assert.equal(r2.errorCode, 400, show(r2));
  });

  test('Connect: denied peer 403, refused port 447, on a UDP allocation 400', async () => {
    const { c } = await tcpAllocation();
    const denied = await c.connect({ address: '127.0.0.2', port: echo.port });
    assert.equal(denied.errorCode, 403, show(denied));
    const closed = net.createServer();
    await new Promise((r) => closed.listen(0, '127.0.0.1', r));
    const port = closed.address().port;
    await new Promise((r) => closed.close(r));
    const refused = await c.connect({ address: '127.0.0.1', port });
    assert.equal(refused.errorCode, 447, show(refused));
    const cred = await mintTurn(f, key, { prefix: 'tcp' });
    const u = tcpClient();
    assert.equal((await u.allocate(cred)).cls, CLASS.SUCCESS);
    const onUdp = await u.connect({ address: '127.0.0.1', port: echo.port });
    assert.equal(onUdp.errorCode, 400, show(onUdp));
  });

  test('peer-initiated: ConnectionAttempt, bind, data both ways; no permission: closed at once', async () => {
    const { c, cred } = await tcpAllocation();
    const stranger = net.connect({ host: '127.0.0.1', port: c.relayed.port });
    stranger.on('error', () => {});
    assert.ok(await closedWithin(stranger, 5000), 'a peer without a permission must be closed');
    assert.equal((await c.createPermission({ address: '127.0.0.1', port: 1 })).cls, CLASS.SUCCESS);
    const peer = net.connect({ host: '127.0.0.1', port: c.relayed.port });
    peer.on('error', () => {});
    await new Promise((r) => peer.once('connect', r));
    const ind = await nextMessage(c, (m) => m.method === METHOD.CONNECTION_ATTEMPT && m.cls === CLASS.INDICATION);
    assert.equal(ind.xorPeerAddress.port, peer.localPort);
    let fromClient = Buffer.alloc(0);
    peer.on('data', (d) => { fromClient = Buffer.concat([fromClient, d]); });
    peer.write('early bytes'); // sent before the bind: held, then delivered
    const { d, res } = await bind(ind.connectionId, cred);
    assert.equal(res.cls, CLASS.SUCCESS, show(res));
    assert.equal((await d.rawBytes(11)).toString(), 'early bytes');
    await d.writeRaw('to the peer');
    assert.ok(await until(() => fromClient.toString() === 'to the peer'), `peer got ${fromClient}`);
    peer.end();
    assert.ok(await until(() => d.tcpClosed), 'the data connection closes when the peer does');
  });

  test('ending the allocation closes its peer and data connections; bytes are counted', async () => {
    const metric = async () => {
      const txt = await (await fetch(`${f.url}/metrics`)).text();
      return [...txt.matchAll(/^turnkey_relayed_bytes_total\{leg="peer",direction="tx"\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    };
    const before0 = await metric();
    const { c, cred } = await tcpAllocation();
    const res = await c.connect({ address: '127.0.0.1', port: echo.port });
    assert.equal(res.cls, CLASS.SUCCESS, show(res));
    const { d } = await bind(res.connectionId, cred);
    await d.writeRaw(Buffer.alloc(5000, 1));
    await d.rawBytes(5000);
    const peerSide = echo.conns.at(-1);
    assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS);
    assert.ok(await until(() => d.tcpClosed), 'data connection closed with the allocation');
    assert.ok(await closedWithin(peerSide, 5000), 'peer connection closed with the allocation');
    assert.ok(await until(async () => (await metric()) - before0 >= 5000, 5000), 'peer_tx bytes counted in the metrics');
  });

  test('turnutils_uclient -T (TCP relay mode, client to client) relays', async () => {
    const cred = await mintTurn(f, key, { prefix: 'uclient' });
    const r = await uclient(['-T', '-n', '20', '-l', '200', '-m', '2', '-u', cred.username, '-w', cred.password, '-p', String(f.turnPort), '127.0.0.1']);
    const all = [...r.out.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/g)].at(-1);
    assert.equal(r.code, 0, r.out.slice(-3000));
    assert.ok(all, r.out.slice(-3000));
    assert.ok(Number(all[1]) > 0 && Number(all[2]) === Number(all[1]), all[0]);
  });
});
