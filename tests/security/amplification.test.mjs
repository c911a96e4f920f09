// Issue 11 points 3 and 6 against the real binary: the size of every answer a stranger can
// get before authenticating (docs/security.md has the table these tests check), the
// per-source rate limit of 401/438 (--challenge-rate), unpredictable relay ports and unique
// nonces over many allocations, and --nonce-lifetime.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { fixture, createTurnKey, mintTurn } from '../integration/lib/server.mjs';
import { TurnClient, CLASS, METHOD, A, TRANSPORT, encodeMessage, decodeMessage, newTxid } from '../integration/lib/stun.mjs';

const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'}` : String(r));

// Sends buf from a fresh UDP socket, collects every answer for waitMs.
async function udpAnswers(port, buf, { waitMs = 400, times = 1 } = {}) {
  const s = createSocket('udp4');
  const got = [];
  s.on('message', (m) => got.push(Buffer.from(m)));
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  for (let i = 0; i < times; i++) s.send(buf, port, '127.0.0.1');
  const until = Date.now() + waitMs;
  while (Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  s.close();
  return got;
}

const req = (method, attrs = [], opts = {}) => encodeMessage({ cls: CLASS.REQUEST, method, txid: newTxid(), attrs }, opts);

describe('answer sizes before authentication', () => {
  let f;
  before(async () => { f = await fixture(); });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  const cases = [
    // name, request, expected answer size, expected class/code
    ['Allocate, bare 20-byte header', () => req(METHOD.ALLOCATE), 40, 400],
    ['Allocate + REQUESTED-TRANSPORT (28 bytes)', () => req(METHOD.ALLOCATE, [A.requestedTransport(TRANSPORT.UDP)]), 84, 401],
    ['Allocate + REQUESTED-TRANSPORT + FINGERPRINT (36 bytes)', () => req(METHOD.ALLOCATE, [A.requestedTransport(TRANSPORT.UDP)], { fingerprint: true }), 92, 401],
    ['Refresh, bare header', () => req(METHOD.REFRESH), 40, 400],
    ['CreatePermission, bare header', () => req(METHOD.CREATE_PERMISSION), 40, 400],
    ['ChannelBind, bare header', () => req(METHOD.CHANNEL_BIND), 40, 400],
    ['Binding (20 bytes)', () => req(METHOD.BINDING), 32, 0],
    ['unknown method 0x0FF (20 bytes)', () => req(0x0ff), 40, 400],
  ];
  for (const [name, build, size, code] of cases) {
    test(`${name}: one answer of ${size} bytes (${code || 'success'})`, async () => {
      const buf = build();
      const got = await udpAnswers(f.turnPort, buf);
      assert.equal(got.length, 1, `answers: ${got.length}`);
      const m = decodeMessage(got[0]);
      if (code) assert.equal(m.errorCode, code, show(m)); else assert.equal(m.cls, CLASS.SUCCESS, show(m));
      assert.equal(got[0].length, size, `${name}: ${buf.length} → ${got[0].length} bytes`);
      assert.ok(got[0].length <= 3 * buf.length, `ratio ${(got[0].length / buf.length).toFixed(2)}`);
      assert.equal(m.software, undefined, 'no SOFTWARE before authentication');
    });
  }

  test('garbage, responses and indications get no answer at all', async () => {
    const bufs = [Buffer.alloc(20), Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      encodeMessage({ cls: CLASS.SUCCESS, method: METHOD.BINDING, txid: newTxid(), attrs: [] }),
      encodeMessage({ cls: CLASS.INDICATION, method: METHOD.SEND, txid: newTxid(), attrs: [] })];
    for (const b of bufs) assert.equal((await udpAnswers(f.turnPort, b, { waitMs: 250 })).length, 0);
  });
});

describe('--challenge-rate: 401/438 per source', () => {
  let f;
  before(async () => { f = await fixture({ extraArgs: ['--challenge-rate', '5', '--relay-threads', '1', '--log-level', 'info'] }); });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
    assert.match(f.stderr(), /401\/438 answer\(s\) suppressed by --challenge-rate/, 'the suppressed answers are counted');
  });

  test('100 unauthenticated Allocates from one source: at most the burst (10) plus the refill are answered', async () => {
    const buf = req(METHOD.ALLOCATE, [A.requestedTransport(TRANSPORT.UDP)]);
    const t0 = Date.now();
    const got = await udpAnswers(f.turnPort, buf, { times: 100, waitMs: 500 });
    const secs = (Date.now() - t0) / 1000;
    assert.ok(got.length >= 5, `some challenges are answered (${got.length})`);
    assert.ok(got.length <= 10 + Math.ceil(5 * secs) + 1, `${got.length} answers in ${secs.toFixed(2)} s`);
  });

  test('a Binding is not limited (only challenges are)', async () => {
    const got = await udpAnswers(f.turnPort, req(METHOD.BINDING), { times: 30, waitMs: 500 });
    assert.equal(got.length, 30);
  });
});

describe('predictability: relay ports and nonces over many allocations', () => {
  let f, key;
  before(async () => {
    f = await fixture({ extraArgs: ['--user-quota', '2000', '--nonce-lifetime', '30'] });
    key = await createTurnKey(f, 'sec-rand');
  });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  test('1,000 allocations: no repeated nonce, no repeated relay port, no arithmetic sequence', async () => {
    const cred = await mintTurn(f, key, { prefix: 'sec-rand' });
    const ports = [], nonces = new Set();
    const N = 1000;
    for (let i = 0; i < N; i += 50) {
      const batch = Array.from({ length: 50 }, () => new TurnClient({ port: f.turnPort, timeoutMs: 10000 }));
      const res = await Promise.all(batch.map((c) => c.allocate(cred)));
      for (const [j, r] of res.entries()) {
        assert.equal(r.cls, CLASS.SUCCESS, `Allocate ${i + j}: ${show(r)}`);
        const n = batch[j].firstAllocateResponse.nonce;
        assert.equal(n.length, 24);
        nonces.add(n);
        ports.push(batch[j].relayed.port);
      }
      // end each allocation: a later socket may get the same local port (→ 437 otherwise)
      const gone = await Promise.all(batch.map((c) => c.refresh(0)));
      for (const g of gone) assert.equal(g.cls, CLASS.SUCCESS, `Refresh 0: ${show(g)}`);
      await Promise.all(batch.map((c) => c.close()));
    }
    assert.equal(nonces.size, N, 'every nonce differs');
    const distinct = new Set(ports);
    assert.ok(distinct.size > N * 0.9, `relay ports mostly distinct (${distinct.size})`);
    const diffs = new Set(ports.slice(1).map((p, k) => (p - ports[k] + 65536) % 65536));
    assert.ok(diffs.size > N * 0.8, `consecutive port differences vary (${diffs.size} distinct)`);
    const asc = ports.slice(1).filter((p, k) => p > ports[k]).length;
    assert.ok(asc > N * 0.3 && asc < N * 0.7, `not monotone (${asc} increases)`);
  });

  test('--nonce-lifetime 30: the nonce carries an expiry about 30 s ahead', async () => {
    const c = new TurnClient({ port: f.turnPort });
    try {
      const r = await c.request(METHOD.ALLOCATE, [A.requestedTransport(TRANSPORT.UDP)]);
      assert.equal(r.errorCode, 401, show(r));
      const exp = parseInt(r.nonce.slice(0, 8), 16);
      const now = Date.now() / 1000;
      assert.ok(exp > now + 25 && exp < now + 35, `expiry ${exp - now} s ahead`);
    } finally { await c.close(); }
  });
});
