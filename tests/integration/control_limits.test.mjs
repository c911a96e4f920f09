// Control plane: the per-account TURN key limit (default 1,000; --max-keys N).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { fixture, cliTimed, createAccount, createToken, httpRequest, expectEnvelope, pool } from './lib/server.mjs';

async function listAll(f, token = f.token, account = f.account) {
  return expectEnvelope(await httpRequest(`${f.base}/accounts/${account}/calls/turn_keys`, { token }), 200).result;
}

describe('control limits: 1,000 keys per account (default)', () => {
  let f, cf, coll, closed = false;
  before(async () => {
    f = await fixture();
    cf = new Cloudflare({ apiToken: f.token, baseURL: f.base, maxRetries: 0 });
    coll = `${f.base}/accounts/${f.account}/calls/turn_keys`;
  });
  after(async () => { if (!closed) await f.close(); });

  let uids;
  test('1,000 creates (16 concurrent) all succeed with 201', async () => {
    const res = await pool(16, Array.from({ length: 1000 }, (_, i) => i), (i) =>
      httpRequest(coll, { method: 'POST', token: f.token, body: { name: `k${i}` } }));
    const statuses = new Map();
    for (const r of res) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    assert.deepEqual([...statuses], [[201, 1000]]);
    uids = res.map((r) => r.json.result.uid);
    assert.equal(new Set(uids).size, 1000);
    const items = await listAll(f);
    assert.equal(items.length, 1000);
    assert.deepEqual(new Set(items.map((k) => k.uid)), new Set(uids));
  });

  test('the 1,001st create → 400 10002 (raw and SDK BadRequestError); the count stays 1,000', async () => {
    const b = expectEnvelope(await httpRequest(coll, { method: 'POST', token: f.token, body: { name: 'one-too-many' } }), 400, 10002);
    assert.match(b.errors[0].message, /1000/);
    await assert.rejects(cf.calls.turn.create({ account_id: f.account, name: 'one-too-many' }), (e) => {
      assert.ok(e instanceof Cloudflare.BadRequestError, String(e));
      assert.equal(e.errors[0].code, 10002);
      return true;
    });
    // a concurrent burst over the limit: all refused
    const burst = await pool(8, Array.from({ length: 8 }), () => httpRequest(coll, { method: 'POST', token: f.token, body: {} }));
    for (const r of burst) expectEnvelope(r, 400, 10002);
    const items = await listAll(f);
    assert.equal(items.length, 1000);
    assert.ok(!items.some((k) => k.name === 'one-too-many'));
    // renames and reads still work at the limit
    expectEnvelope(await httpRequest(`${coll}/${uids[0]}`, { method: 'PUT', token: f.token, body: { name: 'renamed-at-limit' } }), 200);
  });

  test('after deleting one key a create succeeds again, and then the limit holds again', async () => {
    expectEnvelope(await httpRequest(`${coll}/${uids[500]}`, { method: 'DELETE', token: f.token }), 200);
    assert.equal((await listAll(f)).length, 999);
    const k = await cf.calls.turn.create({ account_id: f.account, name: 'replacement' });
    assert.match(k.key, /^[0-9a-f]{64}$/);
    assert.equal((await listAll(f)).length, 1000);
    expectEnvelope(await httpRequest(coll, { method: 'POST', token: f.token, body: {} }), 400, 10002);
  });

  test('the limit is per account: another account on the same server can still create', async () => {
    const acct = createAccount(f.data, 'other');
    const tok = createToken(f.data, acct);
    const r = await httpRequest(`${f.base}/accounts/${acct}/calls/turn_keys`, { method: 'POST', token: tok, body: { name: 'b' } });
    expectEnvelope(r, 201);
    assert.equal((await listAll(f, tok, acct)).length, 1);
    assert.equal((await listAll(f)).length, 1000);
  });

  test('server exits with status 0 (no sanitizer report)', async () => {
    closed = true;
    const r = await f.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });
});

describe('control limits: --max-keys 3', () => {
  let f, coll, closed = false;
  before(async () => {
    f = await fixture({ extraArgs: ['--max-keys', '3'] });
    coll = `${f.base}/accounts/${f.account}/calls/turn_keys`;
  });
  after(async () => { if (!closed) await f.close(); });

  test('3 creates succeed, the 4th → 400 10002; delete one → create works', async () => {
    const made = [];
    for (let i = 0; i < 3; i++) made.push(expectEnvelope(await httpRequest(coll, { method: 'POST', token: f.token, body: { name: `m${i}` } }), 201).result.uid);
    const b = expectEnvelope(await httpRequest(coll, { method: 'POST', token: f.token, body: { name: 'm3' } }), 400, 10002);
    assert.match(b.errors[0].message, /\b3\b/);
    assert.deepEqual((await listAll(f)).map((k) => k.name), ['m0', 'm1', 'm2']);
    expectEnvelope(await httpRequest(`${coll}/${made[1]}`, { method: 'DELETE', token: f.token }), 200);
    expectEnvelope(await httpRequest(coll, { method: 'POST', token: f.token, body: { name: 'm4' } }), 201);
    assert.deepEqual((await listAll(f)).map((k) => k.name), ['m0', 'm2', 'm4']);
  });

  test('a concurrent burst of 12 creates on an empty account: exactly 3 succeed, the rest get 10002', async () => {
    for (const k of await listAll(f)) expectEnvelope(await httpRequest(`${coll}/${k.uid}`, { method: 'DELETE', token: f.token }), 200);
    const res = await Promise.all(Array.from({ length: 12 }, (_, i) => httpRequest(coll, { method: 'POST', token: f.token, body: { name: `b${i}` } })));
    const ok = res.filter((r) => r.status === 201);
    assert.equal(ok.length, 3, res.map((r) => r.status).join(','));
    for (const r of res.filter((x) => x.status !== 201)) expectEnvelope(r, 400, 10002);
    const items = await listAll(f);
    assert.deepEqual(new Set(items.map((k) => k.uid)), new Set(ok.map((r) => r.json.result.uid)));
  });

  test('--max-keys 0, -1 and abc are rejected at startup', async () => {
    for (const v of ['0', '-1', 'abc', '']) {
      const r = cliTimed(['serve', '--data', f.data, '--api-listen', '127.0.0.1:0', '--log-level', 'warn', '--max-keys', v], { timeoutMs: 10000 });
      assert.equal(r.signal, null, `--max-keys ${JSON.stringify(v)} kept running`);
      assert.equal(r.code, 2, `--max-keys ${JSON.stringify(v)}: exit status 2 (usage error), got ${r.code}: ${r.stderr}`);
      // the one-line reason names the option, its range and the value given (not a crash or a store error)
      assert.match(r.stderr, new RegExp(`max-keys must be an integer from 1 to 1000000, got '${v}'`), r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, /listening/);
    }
  });

  test('server exits with status 0 (no sanitizer report)', async () => {
    closed = true;
    const r = await f.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });
});
