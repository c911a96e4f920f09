// Control plane: every error class, its HTTP status, v4 error code and envelope; the order of
// checks (route, method, authentication, identifier, authorization, body); /user/tokens/verify.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import {
  fixture, cli, createAccount, createToken, createTokenWithId, listTokens,
  httpRequest, rawHttp, expectEnvelope,
} from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HEX32 = 'c0ffee00c0ffee00c0ffee00c0ffee00';

describe('control errors', () => {
  let f, cf, coll, closed = false;
  const seen = []; // every status answered in this suite: [status, method, url]
  let expiring; // {token, id, at}
  let keyA; // a key of account A

  const req = async (url, opts = {}) => {
    const res = await httpRequest(url, opts);
    seen.push([res.status, opts.method ?? 'GET', url]);
    return res;
  };
  const raw = async (port, bytes, opts) => {
    const r = await rawHttp(port, bytes, opts);
    seen.push([r.status, 'RAW', String(bytes).slice(0, 60)]);
    return r;
  };
  const item = (uid, acct = f.account) => `${f.base}/accounts/${acct}/calls/turn_keys/${uid}`;
  const listUids = async () => expectEnvelope(await req(coll, { token: f.token }), 200).result;
  const sdk = (opts) => new Cloudflare({ baseURL: f.base, maxRetries: 0, apiToken: null, apiKey: null, apiEmail: null, userServiceKey: null, ...opts });
  const isErr = (cls, status, code) => (e) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.status, status);
    if (code !== undefined) assert.equal(e.errors[0].code, code);
    return true;
  };

  before(async () => {
    f = await fixture();
    // The expiring token is made first so the wait for its expiry overlaps the other tests.
    const t = createTokenWithId(f.data, f.account, 'calls:read,calls:write', ['--expires-in', '1s']);
    expiring = { ...t, at: Date.now() };
    cf = sdk({ apiToken: f.token });
    coll = `${f.base}/accounts/${f.account}/calls/turn_keys`;
    keyA = await cf.calls.turn.create({ account_id: f.account, name: 'key-a' });
  });
  after(async () => { if (!closed) await f.close(); });

  // --- authentication -----------------------------------------------------------------

  test('missing auth → 400 9106 (raw, on every route+method) and SDK BadRequestError', async () => {
    for (const [method, url, body] of [['GET', coll], ['POST', coll, {}], ['GET', item(keyA.uid)], ['PUT', item(keyA.uid), { name: 'x' }], ['DELETE', item(keyA.uid)]]) {
      const b = expectEnvelope(await req(url, { method, body }), 400, 9106);
      assert.match(b.errors[0].message, /Missing X-Auth-Key, X-Auth-Email or Authorization headers/);
    }
    await assert.rejects(sdk({}).calls.turn.list({ account_id: f.account }).then((p) => p), isErr(Cloudflare.BadRequestError, 400, 9106));
    await assert.rejects(sdk({}).calls.turn.create({ account_id: f.account, name: 'x' }), isErr(Cloudflare.BadRequestError, 400, 9106));
    assert.deepEqual((await listUids()).map((k) => k.name), ['key-a'], 'nothing changed');
  });

  test('malformed Authorization (Basic x, Bearer, "Bearer ", Bearer a b) → 400 6003 with error_chain 6111', async () => {
    for (const h of ['Basic x', 'Bearer', 'Bearer ', 'Bearer a b', 'bearer\u0009', 'Token abc']) {
      const res = await req(coll, { headers: { authorization: h } });
      const b = expectEnvelope(res, 400, 6003);
      assert.ok(Array.isArray(b.errors[0].error_chain), `error_chain for ${JSON.stringify(h)}: ${res.text}`);
      assert.equal(b.errors[0].error_chain[0].code, 6111);
      assert.equal(typeof b.errors[0].error_chain[0].message, 'string');
    }
    // a write with a malformed header changes nothing
    expectEnvelope(await req(coll, { method: 'POST', headers: { authorization: 'Basic x' }, body: { name: 'nope' } }), 400, 6003);
    assert.equal((await listUids()).length, 1);
  });

  test('X-Auth-Key / X-Auth-Email without Bearer → 400 6003 saying only API tokens are accepted', async () => {
    for (const headers of [
      { 'x-auth-key': 'abcdef0123456789', 'x-auth-email': 'a@example.com' },
      { 'x-auth-key': 'abcdef0123456789' },
      { 'x-auth-email': 'a@example.com' },
    ]) {
      const b = expectEnvelope(await req(coll, { headers }), 400, 6003);
      assert.match(b.errors[0].message, /API token/i, JSON.stringify(b));
    }
    await assert.rejects(sdk({ apiKey: 'abcdef0123456789', apiEmail: 'a@example.com' }).calls.turn.get(keyA.uid, { account_id: f.account }), (e) => {
      isErr(Cloudflare.BadRequestError, 400, 6003)(e);
      assert.match(e.errors[0].message, /API token/i);
      return true;
    });
  });

  test('Bearer plus X-Auth-Key/X-Auth-Email (the SDK sends all it has): the Bearer token decides', async () => {
    const both = sdk({ apiToken: f.token, apiKey: 'abcdef0123456789', apiEmail: 'a@example.com' });
    const g = await both.calls.turn.get(keyA.uid, { account_id: f.account });
    assert.equal(g.uid, keyA.uid);
    const bad = sdk({ apiToken: 'x'.repeat(40), apiKey: 'abcdef0123456789', apiEmail: 'a@example.com' });
    await assert.rejects(bad.calls.turn.get(keyA.uid, { account_id: f.account }), isErr(Cloudflare.PermissionDeniedError, 403, 10000));
  });

  test('unknown token → 403 10000 "Authentication error" (raw and SDK PermissionDeniedError)', async () => {
    for (const t of ['x'.repeat(40), 'A'.repeat(40), f.token.slice(0, -1) + (f.token.endsWith('A') ? 'B' : 'A'), f.token + 'x', 'short']) {
      const b = expectEnvelope(await req(coll, { token: t }), 403, 10000);
      assert.equal(b.errors[0].message, 'Authentication error');
      expectEnvelope(await req(coll, { method: 'POST', token: t, body: { name: 'nope' } }), 403, 10000);
    }
    await assert.rejects(sdk({ apiToken: 'y'.repeat(40) }).calls.turn.list({ account_id: f.account }).then((p) => p), isErr(Cloudflare.PermissionDeniedError, 403, 10000));
    assert.equal((await listUids()).length, 1);
  });

  test('revoked token → 403 10000 (it worked before revoke); token list shows it revoked', async () => {
    const t = createTokenWithId(f.data, f.account);
    expectEnvelope(await req(coll, { token: t.token }), 200);
    const r = cli(['token', 'revoke', '--data', f.data, t.id]);
    assert.equal(r.code, 0, r.stderr);
    expectEnvelope(await req(coll, { token: t.token }), 403, 10000);
    expectEnvelope(await req(coll, { method: 'POST', token: t.token, body: { name: 'nope' } }), 403, 10000);
    expectEnvelope(await req(item(keyA.uid), { method: 'DELETE', token: t.token }), 403, 10000);
    expectEnvelope(await req(`${f.base}/user/tokens/verify`, { token: t.token }), 401, 1000);
    assert.equal(listTokens(f.data).find((x) => x.id === t.id).status, 'revoked');
    assert.equal((await listUids()).length, 1);
  });

  test('read-only token (calls:read): list/get 200; create/update/delete 403 and nothing changes', async () => {
    const ro = createToken(f.data, f.account, 'calls:read');
    const before = await listUids();
    assert.deepEqual(expectEnvelope(await req(coll, { token: ro }), 200).result, before);
    assert.equal(expectEnvelope(await req(item(keyA.uid), { token: ro }), 200).result.name, 'key-a');
    expectEnvelope(await req(coll, { method: 'POST', token: ro, body: { name: 'ro' } }), 403, 10000);
    expectEnvelope(await req(item(keyA.uid), { method: 'PUT', token: ro, body: { name: 'ro' } }), 403, 10000);
    expectEnvelope(await req(item(keyA.uid), { method: 'DELETE', token: ro }), 403, 10000);
    const rosdk = sdk({ apiToken: ro });
    await assert.rejects(rosdk.calls.turn.create({ account_id: f.account, name: 'ro' }), isErr(Cloudflare.PermissionDeniedError, 403, 10000));
    await assert.rejects(rosdk.calls.turn.update(keyA.uid, { account_id: f.account, name: 'ro' }), isErr(Cloudflare.PermissionDeniedError, 403, 10000));
    await assert.rejects(rosdk.calls.turn.delete(keyA.uid, { account_id: f.account }), isErr(Cloudflare.PermissionDeniedError, 403, 10000));
    assert.deepEqual(await listUids(), before, 'list unchanged');
    // a write-only token can read (Calls Write implies read, per the spec)
    const wo = createToken(f.data, f.account, 'calls:write');
    assert.deepEqual(expectEnvelope(await req(coll, { token: wo }), 200).result, before);
  });

  test('cross-account: a valid token on another account id → 403; a key of account A is invisible to account B', async () => {
    const acctB = createAccount(f.data, 'b');
    const tokB = createToken(f.data, acctB);
    const collB = `${f.base}/accounts/${acctB}/calls/turn_keys`;
    const kB = expectEnvelope(await req(collB, { method: 'POST', token: tokB, body: { name: 'key-b' } }), 201).result;
    const beforeA = await listUids();
    // token A on account B's paths
    expectEnvelope(await req(collB, { token: f.token }), 403, 10000);
    expectEnvelope(await req(collB, { method: 'POST', token: f.token, body: { name: 'x' } }), 403, 10000);
    expectEnvelope(await req(item(kB.uid, acctB), { token: f.token }), 403, 10000);
    expectEnvelope(await req(item(kB.uid, acctB), { method: 'PUT', token: f.token, body: { name: 'x' } }), 403, 10000);
    expectEnvelope(await req(item(kB.uid, acctB), { method: 'DELETE', token: f.token }), 403, 10000);
    await assert.rejects(cf.calls.turn.get(kB.uid, { account_id: acctB }), isErr(Cloudflare.PermissionDeniedError, 403, 10000));
    // token B on account A's paths → 403
    expectEnvelope(await req(item(keyA.uid), { token: tokB }), 403, 10000);
    expectEnvelope(await req(coll, { token: tokB }), 403, 10000);
    // a valid token on a well-formed account id that does not exist → 403
    expectEnvelope(await req(`${f.base}/accounts/${HEX32}/calls/turn_keys`, { token: f.token }), 403, 10000);
    // token B on its own account with A's key uid → 404: the key is not in B
    expectEnvelope(await req(item(keyA.uid, acctB), { token: tokB }), 404, 10004);
    expectEnvelope(await req(item(keyA.uid, acctB), { method: 'PUT', token: tokB, body: { name: 'stolen' } }), 404, 10004);
    expectEnvelope(await req(item(keyA.uid, acctB), { method: 'DELETE', token: tokB }), 404, 10004);
    // B's list has only its key; A's unchanged
    assert.deepEqual(expectEnvelope(await req(collB, { token: tokB }), 200).result.map((k) => k.uid), [kB.uid]);
    assert.deepEqual(await listUids(), beforeA);
  });

  test('expired token (--expires-in 1s, after ~2.2 s) → 403 10000; verify → 401 1000', async () => {
    const wait = expiring.at + 2200 - Date.now();
    if (wait > 0) await sleep(wait);
    expectEnvelope(await req(coll, { token: expiring.token }), 403, 10000);
    expectEnvelope(await req(coll, { method: 'POST', token: expiring.token, body: { name: 'late' } }), 403, 10000);
    expectEnvelope(await req(`${f.base}/user/tokens/verify`, { token: expiring.token }), 401, 1000);
    assert.equal(listTokens(f.data).find((x) => x.id === expiring.id).status, 'expired');
    assert.equal((await listUids()).length, 1);
  });

  // --- identifiers --------------------------------------------------------------------

  test('unknown but well-formed key id → 404 10004 on GET/PUT/DELETE (raw and SDK NotFoundError)', async () => {
    for (const [method, body] of [['GET'], ['PUT', { name: 'x' }], ['PUT', {}], ['DELETE']]) {
      const b = expectEnvelope(await req(item(HEX32), { method, token: f.token, body }), 404, 10004);
      assert.equal(b.errors.length, 1);
    }
    await assert.rejects(cf.calls.turn.get(HEX32, { account_id: f.account }), isErr(Cloudflare.NotFoundError, 404, 10004));
  });

  test('bad key id (zz, 31 hex, 33 hex, uppercase hex, a%20b%2Fc, %00) → 400 7003 then 7000', async () => {
    const bad = ['zz', HEX32.slice(1), HEX32 + '0', HEX32.toUpperCase(), 'a%20b%2Fc', '%41' + HEX32.slice(1), HEX32.slice(1) + '%00', 'g'.repeat(32), '%zz'];
    for (const id of bad) {
      for (const [method, body] of [['GET'], ['PUT', { name: 'x' }], ['DELETE']]) {
        const res = await req(item(id), { method, token: f.token, body });
        const b = expectEnvelope(res, 400, 7003);
        assert.equal(b.errors.length, 2, res.text);
        assert.equal(b.errors[1].code, 7000);
        assert.match(b.errors[0].message, /Could not route to .*perhaps your object identifier is invalid\?/);
      }
    }
    // the SDK percent-encodes the id: 'a b/c' arrives as a%20b%2Fc
    await assert.rejects(cf.calls.turn.get('a b/c', { account_id: f.account }), isErr(Cloudflare.BadRequestError, 400, 7003));
    await assert.rejects(cf.calls.turn.delete(HEX32.toUpperCase(), { account_id: f.account }), isErr(Cloudflare.BadRequestError, 400, 7003));
    assert.equal((await listUids()).length, 1);
  });

  test('account id longer than 32 chars, or with bad characters → 400 7003', async () => {
    for (const acct of [f.account + 'a', 'a'.repeat(64), 'a%2Fb', 'a.b', 'a%20b']) {
      const b = expectEnvelope(await req(`${f.base}/accounts/${acct}/calls/turn_keys`, { token: f.token }), 400, 7003);
      assert.equal(b.errors[1]?.code, 7000);
      expectEnvelope(await req(`${f.base}/accounts/${acct}/calls/turn_keys`, { method: 'POST', token: f.token, body: {} }), 400, 7003);
      expectEnvelope(await req(`${f.base}/accounts/${acct}/calls/turn_keys/${keyA.uid}`, { token: f.token }), 400, 7003);
    }
    await assert.rejects(cf.calls.turn.list({ account_id: 'b'.repeat(33) }).then((p) => p), isErr(Cloudflare.BadRequestError, 400, 7003));
  });

  // --- bodies -------------------------------------------------------------------------

  test('malformed JSON (truncated, duplicate keys, trailing garbage, invalid UTF-8) → 400 6007 on POST and PUT', async () => {
    const bodies = ['{', '{"name":"a","name":"b"}', '{"name":"a"} x', '{"name":"a"}{}', '{name:"a"}', "{'name':'a'}", '{"name":"a",}', '{"name":"\n"}',
      Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), '\u0000{}'];
    for (const body of bodies) {
      const b = expectEnvelope(await req(coll, { method: 'POST', token: f.token, body }), 400, 6007);
      assert.match(b.errors[0].message, /Malformed JSON/);
      expectEnvelope(await req(item(keyA.uid), { method: 'PUT', token: f.token, body }), 400, 6007);
    }
    assert.deepEqual((await listUids()).map((k) => k.name), ['key-a']);
  });

  test('non-object JSON ([], "x", 1, true, null) → 400 6007', async () => {
    for (const body of ['[]', '[{"name":"a"}]', '"x"', '1', 'true', 'null']) {
      expectEnvelope(await req(coll, { method: 'POST', token: f.token, body }), 400, 6007);
      expectEnvelope(await req(item(keyA.uid), { method: 'PUT', token: f.token, body }), 400, 6007);
    }
    assert.equal((await listUids()).length, 1);
  });

  test('name of the wrong type → 400 10001 with source.pointer "/name" (POST and PUT, raw and SDK)', async () => {
    for (const body of ['{"name":1}', '{"name":true}', '{"name":{}}', '{"name":["a"]}', '{"name":1.5}']) {
      for (const [method, url] of [['POST', coll], ['PUT', item(keyA.uid)]]) {
        const b = expectEnvelope(await req(url, { method, token: f.token, body }), 400, 10001);
        assert.equal(b.errors[0].source?.pointer, '/name', JSON.stringify(b));
      }
    }
    await assert.rejects(cf.calls.turn.create({ account_id: f.account, name: 42 }), isErr(Cloudflare.BadRequestError, 400, 10001));
    assert.deepEqual((await listUids()).map((k) => k.name), ['key-a']);
  });

  test('name length: 1024 bytes OK (ASCII and multi-byte), 1025 bytes → 400 10001', async () => {
    const ascii1024 = 'n'.repeat(1024);
    const mb1024 = '☕'.repeat(341) + 'a'; // 341*3 + 1 = 1024 bytes
    assert.equal(Buffer.byteLength(mb1024), 1024);
    const made = [];
    for (const name of [ascii1024, mb1024]) {
      const k = expectEnvelope(await req(coll, { method: 'POST', token: f.token, body: { name } }), 201).result;
      assert.equal(k.name, name);
      made.push(k.uid);
      assert.equal(expectEnvelope(await req(item(k.uid), { token: f.token }), 200).result.name, name);
    }
    for (const name of ['n'.repeat(1025), '☕'.repeat(341) + 'ab', 'é'.repeat(513)]) {
      assert.ok(Buffer.byteLength(name) > 1024);
      const b = expectEnvelope(await req(coll, { method: 'POST', token: f.token, body: { name } }), 400, 10001);
      assert.equal(b.errors[0].source?.pointer, '/name');
      expectEnvelope(await req(item(keyA.uid), { method: 'PUT', token: f.token, body: { name } }), 400, 10001);
    }
    // rename to exactly 1024 works
    assert.equal(expectEnvelope(await req(item(made[0]), { method: 'PUT', token: f.token, body: { name: mb1024 } }), 200).result.name, mb1024);
    for (const uid of made) expectEnvelope(await req(item(uid), { method: 'DELETE', token: f.token }), 200);
    assert.deepEqual((await listUids()).map((k) => k.name), ['key-a']);
  });

  test('control characters (\\n, \\u0000, \\t, \\u001f, \\u007f, \\u0085, \\u009f) in name → 400 10001', async () => {
    for (const name of ['a\nb', 'a\u0000b', '\u0000', 'tab\there', '\u001f', 'del\u007f', 'nel\u0085', '\u009f', 'x\r']) {
      // JSON.stringify escapes C0 controls; DEL and C1 go out as raw UTF-8 — both must be refused
      const res = await req(coll, { method: 'POST', token: f.token, body: { name } });
      const b = expectEnvelope(res, 400, 10001);
      assert.equal(b.errors[0].source?.pointer, '/name');
      expectEnvelope(await req(item(keyA.uid), { method: 'PUT', token: f.token, body: { name } }), 400, 10001);
    }
    // the same characters as explicit \u escapes
    for (const esc of ['\\u007f', '\\u0085', '\\u0000']) {
      expectEnvelope(await req(coll, { method: 'POST', token: f.token, body: `{"name":"x${esc}"}` }), 400, 10001);
    }
    // non-control non-ASCII (incl. U+00A0, U+2028, emoji) is fine
    const ok = 'café ☕ \u00a0\u2028 🚀';
    const k = expectEnvelope(await req(coll, { method: 'POST', token: f.token, body: { name: ok } }), 201).result;
    assert.equal(expectEnvelope(await req(item(k.uid), { token: f.token }), 200).result.name, ok);
    expectEnvelope(await req(item(k.uid), { method: 'DELETE', token: f.token }), 200);
    assert.deepEqual((await listUids()).map((k2) => k2.name), ['key-a']);
  });

  const rawPost = (path, body, extraHeaders = '') => {
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
    return Buffer.concat([Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${f.port}\r\nAuthorization: Bearer ${f.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n${extraHeaders}\r\n`), b]);
  };
  const rawPut = (path, body) => Buffer.from(rawPost(path, body).toString('latin1').replace(/^POST/, 'PUT'), 'latin1');
  const padded = (n) => { const s = '{"name":"padded"}'; return s + ' '.repeat(n - s.length); };

  test('body of 65,537 bytes → 413 10003, answered completely on a raw socket (POST and PUT)', async () => {
    const path = `/client/v4/accounts/${f.account}/calls/turn_keys`;
    for (const body of [padded(65537), 'x'.repeat(65537), padded(200000)]) {
      const r = await raw(f.port, rawPost(path, body));
      assert.equal(r.reset, false, 'no connection reset before the answer was read');
      const b = expectEnvelope(r, 413, 10003);
      assert.match(b.errors[0].message, /too large/i);
      assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    }
    const r = await raw(f.port, rawPut(`${path}/${keyA.uid}`, padded(65537)));
    expectEnvelope(r, 413, 10003);
    assert.deepEqual((await listUids()).map((k) => k.name), ['key-a'], 'nothing created or renamed');
  });

  test('body of exactly 65,536 bytes (valid JSON padded with whitespace) is accepted: 201', async () => {
    const path = `/client/v4/accounts/${f.account}/calls/turn_keys`;
    const body = padded(65536);
    assert.equal(Buffer.byteLength(body), 65536);
    const r = await raw(f.port, rawPost(path, body, 'Connection: close\r\n'));
    const b = expectEnvelope(r, 201);
    assert.equal(b.result.name, 'padded');
    const viaFetch = await req(coll, { method: 'POST', token: f.token, body: padded(65536) });
    expectEnvelope(viaFetch, 201);
    for (const uid of [b.result.uid, viaFetch.json.result.uid]) expectEnvelope(await req(item(uid), { method: 'DELETE', token: f.token }), 200);
    // PUT with 65,536 bytes too
    const u = await raw(f.port, rawPut(`${path}/${keyA.uid}`, '{"name":"key-a"}' + ' '.repeat(65536 - 16)));
    assert.equal(expectEnvelope(u, 200).result.name, 'key-a');
  });

  test('bodies of 1 MiB and 16 MiB → complete 413 on a raw socket', async () => {
    const path = `/client/v4/accounts/${f.account}/calls/turn_keys`;
    for (const n of [1 << 20, 16 << 20]) {
      const r = await raw(f.port, rawPost(path, Buffer.alloc(n, 0x20)), { timeoutMs: 30000 });
      assert.equal(r.reset, false);
      expectEnvelope(r, 413, 10003);
    }
  });

  test('a body over 16 MiB (17 MiB) still gets a complete 413 before the connection closes', async () => {
    const path = `/client/v4/accounts/${f.account}/calls/turn_keys`;
    const r = await raw(f.port, rawPost(path, Buffer.alloc(17 << 20, 0x20)), { timeoutMs: 30000 });
    assert.equal(r.status, 413, `status ${r.status}, reset=${r.reset}, ${r.raw.length} bytes received`);
    expectEnvelope(r, 413, 10003);
  });

  test('chunked request body over 64 KiB → 413; a small chunked body is accepted', async () => {
    const path = `/client/v4/accounts/${f.account}/calls/turn_keys`;
    const chunk = (s) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
    const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${f.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
    const big = await raw(f.port, head + chunk('{"name":"chunked"}') + chunk(' '.repeat(40000)) + chunk(' '.repeat(40000)) + '0\r\n\r\n');
    expectEnvelope(big, 413, 10003);
    const small = await raw(f.port, head + chunk('{"name":') + chunk('"chunked"}') + '0\r\n\r\n');
    const k = expectEnvelope(small, 201).result;
    assert.equal(k.name, 'chunked');
    expectEnvelope(await req(item(k.uid), { method: 'DELETE', token: f.token }), 200);
  });

  test('413 also via fetch (whole body sent), and the SDK sees a 413 APIError', async () => {
    const res = await req(coll, { method: 'POST', token: f.token, body: padded(70000) });
    expectEnvelope(res, 413, 10003);
    await assert.rejects(cf.calls.turn.create({ account_id: f.account, name: 'x'.repeat(70000) }), isErr(Cloudflare.APIError, 413, 10003));
    assert.equal((await listUids()).length, 1);
  });

  // --- routes and methods -------------------------------------------------------------

  test('unknown routes → 400 7000 (with and without auth)', async () => {
    const paths = ['/client/v4/nope', `/client/v4/accounts/${f.account}/calls/turn_keys/${keyA.uid}/extra`,
      `/client/v4/accounts/${f.account}/calls`, `/client/v4/accounts/${f.account}/calls/turn_key`, `/client/v4/accounts/${f.account}`,
      '/client/v4', '/client/v3/accounts/x/calls/turn_keys', '/nope', '/client/v4/user/tokens', `/client/v4/accounts/${f.account}/calls/turn_keys/a/b/c/d/e/f/g/h/i/j`];
    for (const p of paths) {
      for (const token of [f.token, undefined]) {
        const b = expectEnvelope(await req(`${f.url}${p}`, { token }), 400, 7000);
        assert.equal(b.errors.length, 1);
      }
      expectEnvelope(await req(`${f.url}${p}`, { method: 'POST', token: f.token, body: {} }), 400, 7000);
    }
    await assert.rejects(cf.get('/nope'), isErr(Cloudflare.BadRequestError, 400, 7000));
  });

  test('wrong method → 405 with Allow listing the right methods', async () => {
    const allowOf = (res) => new Set(res.headers.get('allow')?.split(',').map((s) => s.trim()));
    const cases = [
      ['PATCH', coll, ['GET', 'POST']], ['DELETE', coll, ['GET', 'POST']], ['PUT', coll, ['GET', 'POST']],
      ['PATCH', item(keyA.uid), ['GET', 'PUT', 'DELETE']], ['POST', item(keyA.uid), ['GET', 'PUT', 'DELETE']],
      ['PATCH', item(HEX32), ['GET', 'PUT', 'DELETE']],
    ];
    for (const [method, url, allow] of cases) {
      const res = await req(url, { method, token: f.token, body: method === 'DELETE' ? undefined : {} });
      expectEnvelope(res, 405);
      assert.deepEqual(allowOf(res), new Set(allow), `${method} ${url}: Allow = ${res.headers.get('allow')}`);
    }
    const v = await req(`${f.base}/user/tokens/verify`, { method: 'POST', token: f.token, body: {} });
    expectEnvelope(v, 405);
    assert.deepEqual(allowOf(v), new Set(['GET']));
    assert.equal((await listUids()).length, 1);
  });

  // --- order of checks ----------------------------------------------------------------

  test('check order: route/method before auth, auth before identifier, identifier before permission, permission before body', async () => {
    // wrong method without auth → 405
    const m = await req(coll, { method: 'PATCH' });
    expectEnvelope(m, 405);
    assert.ok(m.headers.get('allow'));
    expectEnvelope(await req(item('zz'), { method: 'PATCH' }), 405);
    // unknown route without auth → 400 7000
    expectEnvelope(await req(`${f.base}/nope`), 400, 7000);
    // bad key id / bad account id without auth → 400 9106 (auth first)
    expectEnvelope(await req(item('zz')), 400, 9106);
    expectEnvelope(await req(`${f.base}/accounts/${'a'.repeat(40)}/calls/turn_keys`), 400, 9106);
    // bad key id with an unknown token → 403; with a malformed header → 400 6003
    expectEnvelope(await req(item('zz'), { token: 'x'.repeat(40) }), 403, 10000);
    expectEnvelope(await req(item('zz'), { headers: { authorization: 'Basic x' } }), 400, 6003);
    // bad key id with a read-only token (DELETE) → 400 7003 (identifier before permission)
    const ro = createToken(f.data, f.account, 'calls:read');
    expectEnvelope(await req(item('zz'), { method: 'DELETE', token: ro }), 400, 7003);
    // bad key id on another account's path → 400 7003 (identifier before account check)
    expectEnvelope(await req(`${f.base}/accounts/${HEX32}/calls/turn_keys/zz`, { token: f.token }), 400, 7003);
    // read-only token + bad JSON / bad name / oversized body → 403 (permission before body)
    expectEnvelope(await req(coll, { method: 'POST', token: ro, body: '{' }), 403, 10000);
    expectEnvelope(await req(coll, { method: 'POST', token: ro, body: '{"name":1}' }), 403, 10000);
    expectEnvelope(await req(item(keyA.uid), { method: 'PUT', token: ro, body: '[]' }), 403, 10000);
    expectEnvelope(await req(coll, { method: 'POST', token: ro, body: ' '.repeat(70000) }), 403, 10000);
    // token on another account + bad JSON → 403
    expectEnvelope(await req(`${f.base}/accounts/${HEX32}/calls/turn_keys`, { method: 'POST', token: f.token, body: '{' }), 403, 10000);
    // valid token + bad key id + bad JSON → 400 7003 (identifier before body)
    expectEnvelope(await req(item('zz'), { method: 'PUT', token: f.token, body: '{' }), 400, 7003);
    // valid token + unknown key + bad JSON → 400 6007 (body before lookup)
    expectEnvelope(await req(item(HEX32), { method: 'PUT', token: f.token, body: '{' }), 400, 6007);
    assert.deepEqual((await listUids()).map((k) => k.name), ['key-a']);
  });

  // --- /user/tokens/verify ------------------------------------------------------------

  test('GET /user/tokens/verify: valid → 200 active with the token id; unknown → 401 1000', async () => {
    const t = createTokenWithId(f.data, f.account, 'calls:read');
    const res = await req(`${f.base}/user/tokens/verify`, { token: t.token });
    const b = expectEnvelope(res, 200);
    assert.equal(b.result.status, 'active');
    assert.equal(b.result.id, t.id);
    const v = await sdk({ apiToken: t.token }).user.tokens.verify();
    assert.equal(v.id, t.id);
    assert.equal(v.status, 'active');
    const u = expectEnvelope(await req(`${f.base}/user/tokens/verify`, { token: 'x'.repeat(40) }), 401, 1000);
    assert.match(u.errors[0].message, /Invalid API Token/);
    await assert.rejects(sdk({ apiToken: 'x'.repeat(40) }).user.tokens.verify(), isErr(Cloudflare.AuthenticationError, 401, 1000));
    expectEnvelope(await req(`${f.base}/user/tokens/verify`), 400, 9106);
    expectEnvelope(await req(`${f.base}/user/tokens/verify`, { headers: { authorization: 'Basic x' } }), 400, 6003);
  });

  test('no error above was answered with 408, 409, 429 or 5xx', () => {
    assert.ok(seen.length > 100, `requests seen: ${seen.length}`);
    const bad = seen.filter(([s]) => s === 408 || s === 409 || s === 429 || s >= 500);
    assert.deepEqual(bad, []);
  });

  test('server exits with status 0 (no sanitizer report)', async () => {
    closed = true;
    const r = await f.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });
});
