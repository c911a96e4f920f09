// TURN over TLS with the independent client of lib/stun.mjs (no coturn tools needed): STUN
// Binding and a full TURN relay over TLS; the certificate is reloaded on SIGHUP for new
// connections while a live TLS allocation keeps relaying; a bad new pair keeps the old one.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { writeFileSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, createTurnKey, mintTurn } from './lib/server.mjs';
import { TurnClient, CLASS, METHOD, echoPeer } from './lib/stun.mjs';
import { makeCertPair as makePair, peerCertCN } from './lib/tools.mjs';

const haveOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;


// Echoes one message through the relay (ChannelData on channel ch) and returns it.
async function echo(c, ch, text) {
  await c.sendChannel(ch, Buffer.from(text));
  const got = await c.nextData({ timeoutMs: 3000 });
  return got.data.toString();
}

describe('TURN over TLS', { skip: !haveOpenssl && 'openssl missing (scripts/deps.sh test)' }, () => {
  let f, dir, live, peer, key;
  const clients = [];
  const tlsClient = () => {
    const c = new TurnClient({ host: '127.0.0.1', port: f.tlsPort, transport: 'tls', timeoutMs: 3000 });
    clients.push(c);
    return c;
  };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'turnkey-tls-'));
    const a = makePair(dir, 'a', 'first.test');
    live = { cert: join(dir, 'live-cert.pem'), key: join(dir, 'live-key.pem') };
    copyFileSync(a.cert, live.cert);
    copyFileSync(a.key, live.key);
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--tls-cert', live.cert, '--tls-key', live.key] });
    assert.ok(f.tlsPort, 'server printed its TLS port');
    key = await createTurnKey(f, 'tls');
    peer = await echoPeer();
  });
  after(async () => {
    for (const c of clients) await c.close();
    await peer?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('STUN Binding over TLS: a real handshake, then XOR-MAPPED-ADDRESS is the client', async () => {
    const c = tlsClient();
    await c.ready;
    assert.match(c.tlsInfo.protocol, /^TLSv1\.[23]$/);
    assert.equal(c.tlsInfo.subject?.CN, 'first.test', 'the configured certificate is served');
    const res = await c.binding({ fingerprint: true });
    assert.equal(res.cls, CLASS.SUCCESS);
    assert.equal(res.method, METHOD.BINDING);
    assert.deepEqual(res.xorMappedAddress, { family: 4, address: '127.0.0.1', port: c.local.port });
    assert.equal(res.fingerprintOk, true);
  });

  test('TURN over TLS: Allocate, Send and ChannelData relay to a UDP peer and back', async () => {
    const c = tlsClient();
    const res = await c.allocate(await mintTurn(f, key, { prefix: 'tls' }));
    assert.equal(res.cls, CLASS.SUCCESS, `Allocate: ${res.errorCode} ${res.reason}`);
    assert.equal(c.relayed.address, '127.0.0.1');
    const target = { address: '127.0.0.1', port: peer.port };
    assert.equal((await c.createPermission(target)).cls, CLASS.SUCCESS);
    await c.send(target, Buffer.from('via-indication'));
    const ind = await c.nextData({ timeoutMs: 3000 });
    assert.equal(ind.via, 'indication');
    assert.equal(ind.data.toString(), 'via-indication');
    assert.deepEqual(peer.seen.at(-1).from, { address: c.relayed.address, port: c.relayed.port }, 'the peer saw the relayed address');
    assert.equal((await c.channelBind(0x4001, target)).cls, CLASS.SUCCESS);
    assert.equal(await echo(c, 0x4001, 'via-channel'), 'via-channel');
    assert.equal(c.malformed.length, 0);
  });

  test('SIGHUP swaps the certificate for new connections without dropping a live TLS allocation', async () => {
    assert.equal(await peerCertCN(f.tlsPort), 'first.test');
    const c = tlsClient();
    assert.equal((await c.allocate(await mintTurn(f, key, { prefix: 'tls-live' }))).cls, CLASS.SUCCESS);
    const target = { address: '127.0.0.1', port: peer.port };
    assert.equal((await c.channelBind(0x4002, target)).cls, CLASS.SUCCESS);
    assert.equal(await echo(c, 0x4002, 'before'), 'before');
    const b = makePair(dir, 'b', 'second.test');
    copyFileSync(b.cert, live.cert);
    copyFileSync(b.key, live.key);
    f.proc.kill('SIGHUP');
    let cn;
    for (let i = 0; i < 50 && cn !== 'second.test'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      cn = await peerCertCN(f.tlsPort);
    }
    assert.equal(cn, 'second.test', 'new connections see the new certificate');
    for (let i = 0; i < 20; i++) assert.equal(await echo(c, 0x4002, `after-${i}`), `after-${i}`, 'the live allocation kept relaying');
    assert.equal(c.tcpClosed, undefined, 'the live TLS connection was not closed');
  });

  test('SIGHUP with a broken pair keeps the old certificate', async () => {
    writeFileSync(live.cert, 'not a certificate\n');
    f.proc.kill('SIGHUP');
    for (let i = 0; i < 50 && !/keeping the old TLS certificate/.test(f.stderr()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(f.stderr(), /keeping the old TLS certificate/);
    assert.equal(await peerCertCN(f.tlsPort), 'second.test');
  });

  test('an old-TLS (1.0) ClientHello is refused promptly with an alert, not a hang', async () => {
    // A minimal TLS 1.0 ClientHello: one cipher suite, no extensions.
    const body = Buffer.concat([Buffer.from([0x03, 0x01]), randomBytes(32), Buffer.from([0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00])]);
    const hs = Buffer.concat([Buffer.from([0x01, 0x00, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
    const rec = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, (hs.length >> 8) & 0xff, hs.length & 0xff]), hs]);
    const started = Date.now();
    const got = await new Promise((resolve, reject) => {
      const sock = connect(f.tlsPort, '127.0.0.1');
      let data = Buffer.alloc(0);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error('no answer within 3 s')); }, 3000);
      sock.on('connect', () => sock.write(rec));
      sock.on('data', (d) => { data = Buffer.concat([data, d]); });
      sock.on('error', () => {});
      sock.on('close', () => { clearTimeout(timer); resolve(data); });
    });
    assert.ok(Date.now() - started < 2000, 'refused within 2 s');
    assert.ok(got.length >= 7, `an alert record came back (${got.toString('hex')})`);
    assert.equal(got[0], 0x15, 'record type alert');
    assert.equal(got[5], 2, 'fatal');
    assert.equal(got[6], 70, 'protocol_version');
  });
});
