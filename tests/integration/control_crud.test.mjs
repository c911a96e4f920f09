// Control plane: the TURN-keys CRUD cycle with the official SDK (cloudflare@7.3.0) and raw fetch.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { fixture, httpRequest, expectEnvelope } from './lib/server.mjs';

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function assertKeyObject(o, { withKey = false } = {}) {
  assert.match(o.uid, /^[0-9a-f]{32}$/);
  assert.equal(typeof o.name, 'string');
  for (const f of ['created', 'modified']) {
    assert.match(o[f], RFC3339_UTC, `${f} = ${o[f]}`);
    const t = Date.parse(o[f]);
    assert.ok(Number.isFinite(t), `${f} parseable`);
    assert.ok(Math.abs(t - Date.now()) < 10 * 60 * 1000, `${f} is close to now: ${o[f]}`);
  }
  if (withKey) assert.match(o.key, /^[0-9a-f]{64}$/);
  else assert.ok(!('key' in o), `no key field: ${JSON.stringify(o)}`);
}

// `key` must not appear anywhere in a raw body (as a JSON member name).
function assertNoKeyInBody(text) {
  assert.ok(!/"key"\s*:/.test(text), `raw body leaks "key": ${text}`);
}

async function closeChecked(f) {
  const r = await f.close();
  assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  assert.equal(r.signal, null);
}

describe('control CRUD: create, list, get, update, delete', () => {
  let f, cf, coll, closed = false;
  before(async () => {
    f = await fixture();
    cf = new Cloudflare({ apiToken: f.token, baseURL: f.base, maxRetries: 0 });
    coll = `${f.base}/accounts/${f.account}/calls/turn_keys`;
  });
  after(async () => { if (!closed) await f.close(); });

  let raw; // the key created by raw fetch without a name
  test('raw POST without a name: 201, v4 envelope, key 64 hex, uid 32 hex, RFC 3339 times, name ""', async () => {
    const res = await httpRequest(coll, { method: 'POST', token: f.token, body: {} });
    const body = expectEnvelope(res, 201);
    assert.deepEqual(body.messages, []);
    assertKeyObject(body.result, { withKey: true });
    assert.equal(body.result.name, '');
    assert.equal(body.result.created, body.result.modified);
    assert.deepEqual(Object.keys(body.result).sort(), ['created', 'key', 'modified', 'name', 'uid']);
    raw = body.result;
  });

  test('raw POST with no body at all and with {"name":null}: 201, name ""', async () => {
    for (const body of [undefined, '{"name":null}']) {
      const res = await httpRequest(coll, { method: 'POST', token: f.token, body, headers: body ? {} : { 'content-length': '0' } });
      const b = expectEnvelope(res, 201);
      assert.equal(b.result.name, '');
      assertKeyObject(b.result, { withKey: true });
      const d = await httpRequest(`${coll}/${b.result.uid}`, { method: 'DELETE', token: f.token });
      expectEnvelope(d, 200);
    }
  });

  let k; // SDK-created key
  test('SDK create with a name returns key + uid; uids and keys are unique', async () => {
    k = await cf.calls.turn.create({ account_id: f.account, name: 'my-turn-key' });
    assertKeyObject(k, { withKey: true });
    assert.equal(k.name, 'my-turn-key');
    assert.notEqual(k.uid, raw.uid);
    assert.notEqual(k.key, raw.key);
  });

  test('list (SDK and raw) contains both keys with the same fields, no key field anywhere', async () => {
    const items = [];
    for await (const it of cf.calls.turn.list({ account_id: f.account })) items.push(it);
    const byUid = new Map(items.map((i) => [i.uid, i]));
    assert.equal(byUid.size, items.length, 'no duplicates');
    for (const i of items) assertKeyObject(i);
    assert.deepEqual(byUid.get(k.uid), { uid: k.uid, name: 'my-turn-key', created: k.created, modified: k.modified });
    assert.deepEqual(byUid.get(raw.uid), { uid: raw.uid, name: '', created: raw.created, modified: raw.modified });
    const res = await httpRequest(coll, { token: f.token });
    const body = expectEnvelope(res, 200);
    assert.ok(Array.isArray(body.result));
    assertNoKeyInBody(res.text);
    assert.deepEqual(body.result, items);
  });

  test('get (SDK and raw) returns the key object without key', async () => {
    const g = await cf.calls.turn.get(k.uid, { account_id: f.account });
    assert.deepEqual(g, { uid: k.uid, name: 'my-turn-key', created: k.created, modified: k.modified });
    const res = await httpRequest(`${coll}/${k.uid}`, { token: f.token });
    const body = expectEnvelope(res, 200);
    assertNoKeyInBody(res.text);
    assert.deepEqual(body.result, g);
  });

  test('update renames: name changes, modified moves forward, created unchanged; no key in the answer', async () => {
    await sleep(15);
    const u = await cf.calls.turn.update(k.uid, { account_id: f.account, name: 'renamed' });
    assertKeyObject(u);
    assert.equal(u.uid, k.uid);
    assert.equal(u.name, 'renamed');
    assert.equal(u.created, k.created);
    assert.ok(Date.parse(u.modified) > Date.parse(k.modified), `modified ${k.modified} -> ${u.modified}`);
    const g = await cf.calls.turn.get(k.uid, { account_id: f.account });
    assert.deepEqual(g, u);
    await sleep(15);
    const res = await httpRequest(`${coll}/${k.uid}`, { method: 'PUT', token: f.token, body: { name: 'renamed twice' } });
    const body = expectEnvelope(res, 200);
    assertNoKeyInBody(res.text);
    assert.equal(body.result.name, 'renamed twice');
    assert.equal(body.result.created, k.created);
    assert.ok(Date.parse(body.result.modified) > Date.parse(u.modified));
    k = { ...k, ...body.result };
  });

  test('PUT {} (SDK update without a name), {"name":null} and an empty body keep the name and modified', async () => {
    const u = await cf.calls.turn.update(k.uid, { account_id: f.account });
    assert.equal(u.name, 'renamed twice');
    assert.equal(u.modified, k.modified);
    for (const body of ['{}', '{"name":null}', undefined]) {
      const res = await httpRequest(`${coll}/${k.uid}`, { method: 'PUT', token: f.token, body, headers: body ? {} : { 'content-length': '0' } });
      const b = expectEnvelope(res, 200);
      assertNoKeyInBody(res.text);
      assert.deepEqual(b.result, { uid: k.uid, name: 'renamed twice', created: k.created, modified: k.modified });
    }
  });

  test('PUT "" clears the name; non-ASCII UTF-8 names round-trip', async () => {
    const a = await cf.calls.turn.update(k.uid, { account_id: f.account, name: '' });
    assert.equal(a.name, '');
    const name = 'café ☕ 日本 🚀';
    const u = await cf.calls.turn.update(k.uid, { account_id: f.account, name });
    assert.equal(u.name, name);
    assert.equal((await cf.calls.turn.get(k.uid, { account_id: f.account })).name, name);
    const c = await cf.calls.turn.create({ account_id: f.account, name });
    assert.equal(c.name, name);
    const res = await httpRequest(`${coll}/${c.uid}`, { token: f.token });
    assert.equal(expectEnvelope(res, 200).result.name, name);
    await cf.calls.turn.delete(c.uid, { account_id: f.account });
  });

  test('delete answers 200 with the deleted key (no key field); then get/update/delete → 404 10004', async () => {
    const before = await cf.calls.turn.get(k.uid, { account_id: f.account });
    const res = await httpRequest(`${coll}/${k.uid}`, { method: 'DELETE', token: f.token });
    const body = expectEnvelope(res, 200);
    assertNoKeyInBody(res.text);
    assert.deepEqual(body.result, before);
    await assert.rejects(cf.calls.turn.get(k.uid, { account_id: f.account }), (e) => {
      assert.ok(e instanceof Cloudflare.NotFoundError, String(e));
      assert.equal(e.status, 404);
      assert.equal(e.errors[0].code, 10004);
      return true;
    });
    await assert.rejects(cf.calls.turn.update(k.uid, { account_id: f.account, name: 'x' }), Cloudflare.NotFoundError);
    await assert.rejects(cf.calls.turn.delete(k.uid, { account_id: f.account }), Cloudflare.NotFoundError);
    const items = [];
    for await (const it of cf.calls.turn.list({ account_id: f.account })) items.push(it.uid);
    assert.ok(!items.includes(k.uid));
    assert.ok(items.includes(raw.uid));
  });

  test('SDK delete returns the deleted key object', async () => {
    const d = await cf.calls.turn.delete(raw.uid, { account_id: f.account });
    assert.deepEqual(d, { uid: raw.uid, name: '', created: raw.created, modified: raw.modified });
    const items = [];
    for await (const it of cf.calls.turn.list({ account_id: f.account })) items.push(it);
    assert.deepEqual(items, []);
    const res = await httpRequest(coll, { token: f.token });
    assert.deepEqual(expectEnvelope(res, 200).result, []);
  });

  test('server exits with status 0 (no sanitizer report)', async () => {
    closed = true;
    await closeChecked(f);
  });
});

describe('control list: 120 keys', () => {
  let f, cf, closed = false;
  before(async () => {
    f = await fixture();
    cf = new Cloudflare({ apiToken: f.token, baseURL: f.base, maxRetries: 0 });
  });
  after(async () => { if (!closed) await f.close(); });

  test('120 sequential creates: list has every key exactly once, in creation order', async () => {
    const created = [];
    for (let i = 0; i < 120; i++) {
      const k = await cf.calls.turn.create({ account_id: f.account, name: `key-${i}` });
      created.push(k);
    }
    const items = [];
    for await (const it of cf.calls.turn.list({ account_id: f.account })) items.push(it);
    assert.equal(items.length, 120);
    assert.equal(new Set(items.map((i) => i.uid)).size, 120, 'each uid exactly once');
    assert.deepEqual(items.map((i) => i.uid), created.map((k) => k.uid), 'creation order');
    assert.deepEqual(items.map((i) => i.name), created.map((k) => k.name));
    for (const it of items) assert.ok(!('key' in it));
    const res = await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys`, { token: f.token });
    expectEnvelope(res, 200);
    assertNoKeyInBody(res.text);
    assert.equal(res.json.result.length, 120);
  });

  test('server exits with status 0 (no sanitizer report)', async () => {
    closed = true;
    await closeChecked(f);
  });
});
