// A TURN key's policy (issue 14 §4) through the API and the CLI: GET / PUT / PATCH / DELETE
// under the key's path (v4 envelope, audit-logged), validation that changes nothing, and the
// mint side: max_ttl (400), the mint rate limits per key and per source (403 10404, never
// 429), keys without a policy minting exactly as before. Budget trips: spend_*.test.mjs.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Cloudflare from 'cloudflare';
import { fixture, createTurnKey, createToken, createAccount, httpRequest, expectEnvelope, cli } from './lib/server.mjs';

// POST a mint from a chosen loopback source address; {status, json}.
function mintFrom(f, key, { body = { ttl: 600 }, localAddress = '127.0.0.1', legacy = false } = {}) {
  const path = `/v1/turn/keys/${key.uid}/credentials/${legacy ? 'generate' : 'generate-ice-servers'}`;
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: f.port, path, method: 'POST', localAddress, agent: false,
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => { let json; try { json = JSON.parse(text); } catch { json = undefined; } resolve({ status: res.statusCode, json, text }); });
    });
    req.on('error', reject);
    req.end(data);
  });
}

// The error of a refused mint: status, code and message (the v4 failure envelope).
function refused(r, status, code, message) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.success, false, r.text);
  assert.equal(r.json.errors[0].code, code, r.text);
  if (message) assert.match(r.json.errors[0].message, message, r.text);
}

const expiryOf = (username) => Number(username.split(':')[0]);

describe('key policy: API', () => {
  let f, key, other, policyUrl, cf;
  const api = (k, opts = {}) => httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${k.uid}/policy`, { token: f.token, ...opts });
  before(async () => {
    f = await fixture();
    key = await createTurnKey(f, 'with-policy');
    other = await createTurnKey(f, 'without-policy');
    policyUrl = `${f.base}/accounts/${f.account}/calls/turn_keys/${key.uid}/policy`;
    cf = new Cloudflare({ apiToken: f.token, baseURL: f.base, maxRetries: 0 });
  });
  after(async () => { const r = await f.close(); assert.equal(r.code, 0, 'clean exit (no leaks)'); });

  test('a key without a policy: GET answers the empty policy; mints have the official shapes', async () => {
    const g = expectEnvelope(await api(other), 200).result;
    assert.deepEqual(g, { policy: {}, modified: null, status: { tripped: [], budgets: [] } });
    const m = await mintFrom(f, other, { body: { ttl: 3600, customIdentifier: 'room-1' } });
    assert.equal(m.status, 201, m.text);
    assert.deepEqual(Object.keys(m.json), ['iceServers']);
    assert.equal(m.json.iceServers.length, 2);
    assert.deepEqual(Object.keys(m.json.iceServers[0]), ['urls']);
    assert.deepEqual(Object.keys(m.json.iceServers[1]).sort(), ['credential', 'urls', 'username']);
    const l = await mintFrom(f, other, { legacy: true, body: {} });
    assert.equal(l.status, 201, l.text);
    assert.deepEqual(Object.keys(l.json.iceServers).sort(), ['credential', 'urls', 'username']);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(expiryOf(l.json.iceServers.username) - (now + 86400)) <= 5, 'default ttl');
  });

  test('PUT stores the normalized document; GET, PATCH (null clears) and DELETE round-trip', async () => {
    const put = expectEnvelope(await api(key, { method: 'PUT', body: { thresholds: [50, 90], daily_bytes: 1e9, max_ttl: 3600, allocation_quota: 4 } }), 200).result;
    assert.deepEqual(put.policy, { daily_bytes: 1e9, max_ttl: 3600, allocation_quota: 4, action: 'notify', thresholds: [50, 90] });
    assert.match(put.modified, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(put.status, { tripped: [], budgets: [] });
    const g = expectEnvelope(await api(key), 200).result;
    assert.deepEqual(g, put);
    // read-only tokens read it
    const ro = createToken(f.data, f.account, 'calls:read');
    assert.deepEqual(expectEnvelope(await httpRequest(policyUrl, { token: ro }), 200).result, put);

    await new Promise((r) => setTimeout(r, 5));
    const p = expectEnvelope(await api(key, { method: 'PATCH', body: { daily_bytes: null, action: 'stop_minting', bandwidth_bps: 8000000 } }), 200).result;
    assert.deepEqual(p.policy, { max_ttl: 3600, allocation_quota: 4, bandwidth_bps: 8000000, action: 'stop_minting', thresholds: [50, 90] });
    assert.ok(p.modified > put.modified, `${p.modified} > ${put.modified}`);
    // PUT replaces the whole document
    const r = expectEnvelope(await api(key, { method: 'PUT', body: { monthly_bytes: 5e10 } }), 200).result;
    assert.deepEqual(r.policy, { monthly_bytes: 5e10, action: 'notify', thresholds: [80] });
    // an empty PATCH changes nothing
    assert.deepEqual(expectEnvelope(await api(key, { method: 'PATCH', body: {} }), 200).result, r);

    const d = expectEnvelope(await api(key, { method: 'DELETE' }), 200).result;
    assert.deepEqual(d.policy, {});
    assert.equal(d.modified, null);
    assert.deepEqual(expectEnvelope(await api(key), 200).result.policy, {});
    // DELETE again: still 200, nothing to clear
    assert.deepEqual(expectEnvelope(await api(key, { method: 'DELETE' }), 200).result.policy, {});
    // the key object itself is what it was (the SDK's get)
    const k = await cf.calls.turn.get(key.uid, { account_id: f.account });
    assert.deepEqual(Object.keys(k).sort(), ['created', 'modified', 'name', 'uid']);
  });

  test('invalid documents are 400 10001 naming the field, and change nothing', async () => {
    const base = expectEnvelope(await api(key, { method: 'PUT', body: { max_ttl: 900, mint_rate_per_key: 100 } }), 200).result;
    const bad = [
      [{ bogus: 1 }, /bogus/],
      [{ max_ttl: -5 }, /max_ttl/],
      [{ daily_bytes: 0 }, /daily_bytes/],
      [{ max_ttl: '60' }, /max_ttl/],
      [{ max_ttl: 1.5 }, /max_ttl/],
      [{ mint_rate_per_key: true }, /mint_rate_per_key/],
      [{ action: 'explode' }, /action/],
      [{ thresholds: [90, 50] }, /thresholds/],
      [{ thresholds: 'x' }, /thresholds/],
      [{ allocation_quota: 100000 }, /allocation_quota/],
      [{ bandwidth_bps: 10 }, /bandwidth_bps/],
      [{ ['a' + 'é'.repeat(40)]: 1 }, /unknown/],
    ];
    for (const method of ['PUT', 'PATCH']) {
      for (const [body, re] of bad) {
        const e = expectEnvelope(await api(key, { method, body }), 400, 10001);
        assert.match(e.errors[0].message, re, `${method} ${JSON.stringify(body)}`);
      }
    }
    expectEnvelope(await api(key, { method: 'PUT', body: '{"max_ttl": 60' }), 400, 6007);
    expectEnvelope(await api(key, { method: 'PATCH', body: '[1]' }), 400, 6007);
    expectEnvelope(await api(key, { method: 'PUT', body: { max_ttl: 60, max_ttl2: 'x'.repeat(5000) } }), 400, 10001);
    expectEnvelope(await api(key, { method: 'PUT', body: 'x'.repeat(70000) }), 413, 10003);
    assert.deepEqual(expectEnvelope(await api(key), 200).result, base, 'unchanged');
  });

  test('ids, accounts, permissions and methods are checked like the other key routes', async () => {
    const acct2 = createAccount(f.data, 'other');
    const tok2 = createToken(f.data, acct2);
    const ro = createToken(f.data, f.account, 'calls:read');
    const before = expectEnvelope(await api(key), 200).result;
    // another account's token on this account's key: 403; on its own account: the key is unknown
    expectEnvelope(await httpRequest(policyUrl, { token: tok2 }), 403, 10000);
    expectEnvelope(await httpRequest(`${f.base}/accounts/${acct2}/calls/turn_keys/${key.uid}/policy`, { token: tok2 }), 404, 10004);
    expectEnvelope(await httpRequest(`${f.base}/accounts/${acct2}/calls/turn_keys/${key.uid}/policy`, { token: tok2, method: 'PUT', body: { max_ttl: 1 } }), 404, 10004);
    expectEnvelope(await httpRequest(`${f.base}/accounts/${acct2}/calls/turn_keys/${key.uid}/policy`, { token: tok2, method: 'DELETE' }), 404, 10004);
    expectEnvelope(await api({ uid: '0123456789abcdef0123456789abcdef' }), 404, 10004);
    expectEnvelope(await api({ uid: 'NOT-HEX' }), 400, 7003);
    // a read-only token cannot write
    for (const method of ['PUT', 'PATCH', 'DELETE'])
      expectEnvelope(await httpRequest(policyUrl, { token: ro, method, body: { max_ttl: 1 } }), 403, 10000);
    expectEnvelope(await httpRequest(policyUrl, {}), 400, 9106);
    const m = await api(key, { method: 'POST', body: {} });
    expectEnvelope(m, 405, 10005);
    assert.equal(m.headers.get('allow'), 'GET, PUT, PATCH, DELETE');
    assert.deepEqual(expectEnvelope(await api(key), 200).result, before, 'unchanged');
  });

  test('every change is in the audit log with the old and new documents', async () => {
    const k = await createTurnKey(f, 'audited');
    expectEnvelope(await api(k, { method: 'PUT', body: { max_ttl: 120 } }), 200);
    expectEnvelope(await api(k, { method: 'PUT', body: { max_ttl: 120 } }), 200); // same: no record
    expectEnvelope(await api(k, { method: 'PATCH', body: { mint_rate_per_source: 7 } }), 200);
    expectEnvelope(await api(k, { method: 'PUT', body: { bogus: 1 } }), 400, 10001); // no record
    expectEnvelope(await api(k, { method: 'DELETE' }), 200);
    expectEnvelope(await api(k, { method: 'DELETE' }), 200); // nothing left: no record
    const a = await httpRequest(`${f.base}/accounts/${f.account}/audit_logs?resource.id=${k.uid}&direction=asc`, { token: f.token });
    const rows = expectEnvelope(a, 200).result.filter((r) => r.resource.type === 'turn_key_policy');
    assert.deepEqual(rows.map((r) => r.action.type), ['create', 'update', 'delete'], a.text);
    assert.deepEqual(rows[0].oldValueJson, {});
    assert.deepEqual(rows[0].newValueJson, { max_ttl: 120 });
    assert.deepEqual(rows[1].oldValueJson, { max_ttl: 120 });
    assert.deepEqual(rows[1].newValueJson, { max_ttl: 120, mint_rate_per_source: 7 });
    assert.deepEqual(rows[2].oldValueJson, { max_ttl: 120, mint_rate_per_source: 7 });
    for (const r of rows) {
      assert.equal(r.actor.type, 'user');
      assert.equal(r.actor.ip, '127.0.0.1');
      assert.equal(r.interface, 'API');
      assert.equal(r.resource.id, k.uid);
    }
  });

  test('max_ttl: a larger explicit ttl is 400 naming the limit; no ttl mints at max_ttl', async () => {
    const k = await createTurnKey(f, 'short-lived');
    expectEnvelope(await api(k, { method: 'PUT', body: { max_ttl: 600 } }), 200);
    const big = await mintFrom(f, k, { body: { ttl: 601 } });
    refused(big, 400, 10001, /ttl exceeds the key's policy max_ttl \(600\)/);
    assert.equal(big.json.errors[0].source?.pointer, '/ttl');
    refused(await mintFrom(f, k, { legacy: true, body: { ttl: 86400 } }), 400, 10001, /max_ttl \(600\)/);
    const ok = await mintFrom(f, k, { body: { ttl: 600 } });
    assert.equal(ok.status, 201, ok.text);
    const dflt = await mintFrom(f, k, { body: {} });
    assert.equal(dflt.status, 201, dflt.text);
    const now = Math.floor(Date.now() / 1000);
    const exp = expiryOf(dflt.json.iceServers[1].username);
    assert.ok(exp <= now + 600 + 1 && exp >= now + 600 - 5, `default ttl capped at 600: ${exp - now}`);
    // cleared: the limit is gone at once
    expectEnvelope(await api(k, { method: 'DELETE' }), 200);
    assert.equal((await mintFrom(f, k, { body: { ttl: 86400 } })).status, 201);
  });

  test('mint rate per key: the N+1st mint in a minute is 403 10404 (both mint routes count)', async () => {
    const k = await createTurnKey(f, 'rate-key');
    expectEnvelope(await api(k, { method: 'PUT', body: { mint_rate_per_key: 4 } }), 200);
    for (let i = 0; i < 3; i++) assert.equal((await mintFrom(f, k)).status, 201);
    assert.equal((await mintFrom(f, k, { legacy: true })).status, 201);
    refused(await mintFrom(f, k), 403, 10404, /mint rate limit exceeded \(per key\)/);
    refused(await mintFrom(f, k, { localAddress: '127.0.0.2' }), 403, 10404, /per key/);
    refused(await mintFrom(f, k, { legacy: true }), 403, 10404, /per key/);
    // other keys are not limited by it
    for (let i = 0; i < 6; i++) assert.equal((await mintFrom(f, other)).status, 201);
    // raising the limit applies at once (the burst is the new rate)
    expectEnvelope(await api(k, { method: 'PATCH', body: { mint_rate_per_key: 1000 } }), 200);
    assert.equal((await mintFrom(f, k)).status, 201);
  });

  test('mint rate per source: each client address has its own budget', async () => {
    const k = await createTurnKey(f, 'rate-source');
    expectEnvelope(await api(k, { method: 'PUT', body: { mint_rate_per_source: 2 } }), 200);
    for (let i = 0; i < 2; i++) assert.equal((await mintFrom(f, k)).status, 201);
    refused(await mintFrom(f, k), 403, 10404, /mint rate limit exceeded \(per source\)/);
    for (let i = 0; i < 2; i++) assert.equal((await mintFrom(f, k, { localAddress: '127.0.0.2' })).status, 201);
    refused(await mintFrom(f, k, { localAddress: '127.0.0.2' }), 403, 10404, /per source/);
    // a refused mint is not a 429 and names no retry: the SDKs would retry a 429
    const r = await mintFrom(f, k, { localAddress: '127.0.0.3' });
    assert.equal(r.status, 201);
  });
});

describe('key policy: CLI', () => {
  let f, key;
  const run = (...args) => cli(['key', 'policy', ...args, '--data', f.data]);
  const apiGet = async () => expectEnvelope(await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${key.uid}/policy`, { token: f.token }), 200).result;
  before(async () => {
    f = await fixture();
    key = await createTurnKey(f, 'cli');
  });
  after(async () => { const r = await f.close(); assert.equal(r.code, 0, 'clean exit (no leaks)'); });

  test('set merges flags and --json into the stored policy; get prints the API result', async () => {
    let r = run('set', key.uid, '--daily-bytes', '1000000', '--action', 'end_allocations', '--thresholds', '50,80', '--max-ttl', '300');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { daily_bytes: 1000000, max_ttl: 300, action: 'end_allocations', thresholds: [50, 80] });
    r = run('set', key.uid, '--json', '{"mint_rate_per_source": 9, "daily_bytes": null}', '--bandwidth-bps', '64000', '--max-ttl', 'none');
    assert.equal(r.code, 0, r.stderr);
    const want = { mint_rate_per_source: 9, bandwidth_bps: 64000, action: 'end_allocations', thresholds: [50, 80] };
    assert.deepEqual(JSON.parse(r.stdout), want);
    const g = run('get', key.uid);
    assert.equal(g.code, 0, g.stderr);
    const got = JSON.parse(g.stdout);
    assert.deepEqual(got.policy, want);
    const viaApi = await apiGet();
    assert.deepEqual(viaApi.policy, want);
    assert.equal(got.modified, viaApi.modified);
    for (const flag of ['--monthly-bytes', '--custom-identifier-daily-bytes', '--custom-identifier-monthly-bytes', '--allocation-quota', '--mint-rate-per-key']) {
      const x = run('set', key.uid, flag, '5');
      assert.equal(x.code, 0, `${flag}: ${x.stderr}`);
    }
    assert.deepEqual(Object.keys((await apiGet()).policy).sort(), ['action', 'allocation_quota', 'bandwidth_bps', 'custom_identifier_daily_bytes',
      'custom_identifier_monthly_bytes', 'mint_rate_per_key', 'mint_rate_per_source', 'monthly_bytes', 'thresholds']);
  });

  test('a running server follows a CLI change (the change feed): the next mints obey it', async () => {
    assert.equal(run('set', key.uid, '--mint-rate-per-key', 'none', '--max-ttl', '60').code, 0);
    const deadline = Date.now() + 5000;
    let r;
    do {
      r = await mintFrom(f, key, { body: { ttl: 61 } });
      if (r.status === 400) break;
      await new Promise((res) => setTimeout(res, 100));
    } while (Date.now() < deadline);
    refused(r, 400, 10001, /max_ttl \(60\)/);
  });

  test('invalid input exits non-zero with one reason line and changes nothing', async () => {
    const before = await apiGet();
    for (const args of [['--max-ttl', '-1'], ['--max-ttl', '0'], ['--action', 'boom'], ['--thresholds', '80,50'], ['--json', '{"x":1}'],
      ['--json', '[1]'], ['--json', '{bad'], ['--daily-bytes', '12abc'], ['--bogus', '1']]) {
      const r = run('set', key.uid, ...args);
      assert.equal(r.code, 2, `${args}: ${r.stdout}`);
      assert.match(r.stderr.trim().split('\n').pop(), /^turnkey: /, `${args}: ${r.stderr}`);
    }
    assert.equal(run('set', key.uid).code, 2, 'set without a field');
    assert.equal(run('frob', key.uid).code, 2);
    assert.equal(run('get').code, 2);
    const unknown = run('get', '0123456789abcdef0123456789abcdef');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no TURN key/);
    const wrongAcct = cli(['key', 'policy', 'set', key.uid, '--account', 'ffffffffffffffffffffffffffffffff', '--max-ttl', '5', '--data', f.data]);
    assert.equal(wrongAcct.code, 1);
    assert.deepEqual(await apiGet(), before, 'unchanged');
  });

  test('clear removes it (idempotent); every change is audit-logged as the CLI', async () => {
    let r = run('clear', key.uid);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await apiGet()).policy, {});
    r = run('clear', key.uid);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no policy/);
    const a = cli(['audit', 'list', '--account', f.account, `resource.id=${key.uid}&direction=asc`, '--data', f.data]);
    assert.equal(a.code, 0, a.stderr);
    const rows = a.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((x) => x.resource.type === 'turn_key_policy');
    assert.equal(rows[0].action.type, 'create');
    assert.equal(rows.at(-1).action.type, 'delete');
    assert.ok(rows.slice(1, -1).every((x) => x.action.type === 'update'));
    assert.ok(rows.length >= 4, `${rows.length} records`);
    for (const x of rows) {
      assert.equal(x.actor.type, 'admin');
      assert.equal(x.actor.id, 'cli');
      assert.equal(x.interface, 'CLI');
    }
  });
});
