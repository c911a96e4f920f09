// The HTTP API under slowloris (docs/operations.md "Limits"): hundreds of connections from
// one address trickling a request byte by byte leave the API answering other clients
// (--api-max-conns-per-ip), and a connection that goes quiet is closed (--api-timeout).
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { fixture } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freshGet(port, path, { localAddress = '127.0.0.1', timeoutMs = 8000 } = {}) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.on('error', () => resolve(0));
  });
}

// A connection that has sent the start of a request and then trickles header bytes.
function trickler(port, localAddress = '127.0.0.1') {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress });
    const st = { sock, closed: false };
    st.done = new Promise((r) => sock.on('close', () => { st.closed = true; r(); }));
    sock.on('error', () => {});
    sock.once('connect', () => { sock.write('GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: '); resolve(st); });
    st.done.then(() => resolve(st));
  });
}

describe('API under slowloris', () => {
  let f;
  before(async () => { f = await fixture({ env: { TURNKEY_API_TIMEOUT: '3' } }); });
  after(async () => {
    const r = await f?.close();
    assert.equal(r?.code, 0, `server exit status (sanitizers) — stderr:\n${f?.stderr()}`);
  });

  test('1100 trickling connections from one address; other clients are answered', { timeout: 120000 }, async () => {
    const slow = [];
    for (let i = 0; i < 1100; i++) slow.push(await trickler(f.port));
    let stop = false;
    const drip = (async () => { // one byte per connection every 500 ms, for as long as the test runs
      while (!stop) {
        for (const st of slow) if (!st.closed) st.sock.write('a');
        await sleep(500);
      }
    })();
    try {
      await sleep(1000);
      const open = slow.filter((st) => !st.closed).length;
      assert.ok(open <= 32, `${open} trickling connections held open (cap 32 per address)`);
      for (let i = 0; i < 5; i++) assert.equal(await freshGet(f.port, '/healthz', { localAddress: '127.0.0.2' }), 200, `request ${i} from another address`);
      // a connection that stops sending is closed by the idle timeout (3 s here)
      const quiet = await trickler(f.port, '127.0.0.3');
      const t0 = performance.now();
      await sleep(1000);
      assert.ok(!quiet.closed, 'admitted (its address is under the cap)');
      await Promise.race([quiet.done, sleep(9000)]);
      assert.ok(quiet.closed, 'a quiet connection is closed');
      const took = performance.now() - t0;
      assert.ok(took >= 2000 && took < 9000, `closed after ${Math.round(took)} ms (--api-timeout 3)`);
    } finally {
      stop = true;
      await drip;
      for (const st of slow) st.sock.destroy();
    }
    const lines = f.stderr().split('\n').filter((l) => l.includes('module=http')).length;
    assert.ok(lines < 100, `${lines} http log lines for 1100 refused connections (rate-limited)`);
  });
});
