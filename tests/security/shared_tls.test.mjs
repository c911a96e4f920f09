// Issue 15 §3 bounds: the HTTPS API listener (--api-tls) and the TLS port shared by HTTPS and
// TURN (--shared-tls-listen) against foreign bytes, silence and floods of connections:
// a clean close, the handshake / first-message deadline, the connection caps, no fd leak.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readdirSync } from 'node:fs';
import { fixture } from '../integration/lib/server.mjs';
import { TurnClient, CLASS } from '../integration/lib/stun.mjs';
import { tlsHttp } from '../integration/lib/tools.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

// Opens a connection (TLS when useTls; alpn offered), writes bytes, and resolves once the
// server closes it or maxMs passes: {closed, ms, data, handshake (TLS done)}.
function probe(port, { useTls = true, alpn, bytes, maxMs = 8000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let data = Buffer.alloc(0), handshake = false, settled = false;
    const s = useTls
      ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: alpn } : {}) })
      : net.connect({ host: '127.0.0.1', port });
    const finish = (closed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ closed, ms: Date.now() - t0, data, handshake });
    };
    const timer = setTimeout(() => finish(false), maxMs);
    s.on(useTls ? 'secureConnect' : 'connect', () => { handshake = true; if (bytes) s.write(bytes); });
    s.on('data', (d) => { data = Buffer.concat([data, d]); });
    s.on('error', () => {});
    s.on('close', () => finish(true));
  });
}

async function waitFor(cond, ms, what) {
  const until = Date.now() + ms;
  while (Date.now() < until) { if (await cond()) return; await sleep(100); }
  assert.fail(`${what} within ${ms} ms`);
}

describe('HTTPS and shared TLS port: foreign bytes, deadlines, no fd leak', () => {
  let f;
  before(async () => {
    f = await fixture({ extraArgs: ['--api-tls', '--shared-tls-listen', '127.0.0.1:0', '--handshake-timeout', '1', '--api-timeout', '2'] });
    assert.ok(f.sharedPort);
  });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  for (const [name, bytes] of [
    ['garbage', Buffer.alloc(64, 0xff)],
    ['a word that is no HTTP method', Buffer.from('HELLO WORLD\r\n\r\n')],
    ['a STUN-looking header without the magic cookie', Buffer.from('0001000000000000000000000000000000000000', 'hex')],
  ]) {
    test(`shared port, after the handshake: ${name} is closed at once, nothing answered`, async () => {
      const r = await probe(f.sharedPort, { bytes });
      assert.ok(r.handshake, 'the TLS handshake completed');
      assert.equal(r.closed, true);
      assert.ok(r.ms < 900, `closed before the 1 s first-message deadline (${r.ms} ms)`);
      assert.equal(r.data.length, 0);
    });
  }

  for (const port of ['sharedPort', 'port']) {
    test(`${port === 'port' ? 'HTTPS API' : 'shared'} port: bytes that are no TLS end the connection at once`, async () => {
      const r = await probe(f[port], { useTls: false, bytes: Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n') });
      assert.equal(r.closed, true);
      assert.ok(r.ms < 2000, `${r.ms} ms`);
      assert.ok(!/HTTP\/1\.1 200/.test(r.data.toString('latin1')), 'no HTTP answer in clear text');
    });
  }

  test('shared port: the first-message deadline (--handshake-timeout 1) closes a silent or half-sent connection', async () => {
    for (const opts of [{ useTls: false }, {}, { bytes: Buffer.from('GE') }, { alpn: ['stun.turn'] }]) {
      const r = await probe(f.sharedPort, opts);
      assert.equal(r.closed, true, JSON.stringify(opts));
      assert.ok(r.ms >= 700 && r.ms < 5000, `closed by the deadline: ${r.ms} ms (${JSON.stringify(opts)})`);
    }
  });

  test('HTTPS API port: a client that never finishes the handshake is closed (--api-timeout 2)', async () => {
    const r = await probe(f.port, { useTls: false, bytes: Buffer.from([0x16, 0x03, 0x01]) });
    assert.equal(r.closed, true);
    assert.ok(r.ms >= 1500 && r.ms < 7000, `${r.ms} ms`);
  });

  test('no fd leak: 60 mixed connections later the server holds as many descriptors as before', async () => {
    const pid = f.proc.pid;
    const warm = await tlsHttp(f.port);
    assert.equal((await warm.request('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')).status, 200);
    warm.close();
    await sleep(300);
    const base = fdCount(pid);
    for (let i = 0; i < 10; i++) {
      await Promise.all([
        probe(f.sharedPort, { bytes: Buffer.alloc(16, 0xee) }),
        probe(f.port, { useTls: false, bytes: Buffer.alloc(16, 0xee) }),
        (async () => { const c = await tlsHttp(f.port); await c.request('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'); c.close(); })(),
        (async () => { const c = await tlsHttp(f.sharedPort); await c.request('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'); c.close(); })(),
        (async () => { const c = await tlsHttp(f.sharedPort, { alpn: ['http/1.1'] }); c.sock.write('GET /healthz HTTP/1.1\r\n'); c.close(); })(),
        (async () => {
          const t = new TurnClient({ port: f.sharedPort, transport: 'tls', timeoutMs: 3000 });
          assert.equal((await t.binding()).cls, CLASS.SUCCESS);
          await t.close();
        })(),
      ]);
    }
    await waitFor(() => fdCount(pid) <= base, 10000, `descriptors back to ${base} (now ${fdCount(pid)})`);
  });
});

describe('HTTPS and shared TLS port: connection caps', () => {
  let f;
  before(async () => {
    f = await fixture({ extraArgs: ['--api-tls', '--shared-tls-listen', '127.0.0.1:0', '--api-max-conns-per-ip', '3', '--max-conns-per-ip', '3', '--handshake-timeout', '30'] });
  });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  for (const [port, flag] of [['port', '--api-max-conns-per-ip'], ['sharedPort', '--max-conns-per-ip']]) {
    test(`${port === 'port' ? 'HTTPS API' : 'shared'} port: past ${flag} 3 a connection is refused at once; room again once one closes`, async () => {
      const held = [];
      for (let i = 0; i < 3; i++) held.push(await tlsHttp(f[port]));
      const over = await probe(f[port], { maxMs: 4000 });
      assert.equal(over.closed, true, 'the fourth connection is closed');
      assert.ok(over.ms < 2000, `at once (${over.ms} ms)`);
      held.pop().close();
      await waitFor(async () => { const r = await probe(f[port], { maxMs: 1500 }); return !r.closed; }, 5000, 'a new connection admitted');
      for (const c of held) c.close();
      await sleep(300);
    });
  }
});
