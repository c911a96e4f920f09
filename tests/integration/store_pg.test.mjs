// The PostgreSQL store (--store postgres://…) through the real binary: operator commands,
// durability across kill -9, two API nodes sharing the per-account key limit, the database
// going away mid-traffic (5xx in the v4 envelope, never a hang, never a partial record, and
// recovery by itself), and `turnkey store copy` between SQLite and PostgreSQL.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import Cloudflare from 'cloudflare';
import { cli, freshDataDir, startServer, httpRequest, expectEnvelope, pool } from './lib/server.mjs';
import { startPostgres } from './lib/pg.mjs';

const lastLine = (s) => s.trim().split('\n').pop();

function accountAndToken(store) {
  const a = cli(['account', 'create', '--store', store, '--name', 'pg']);
  assert.equal(a.code, 0, a.stderr);
  const account = lastLine(a.stdout);
  const t = cli(['token', 'create', '--store', store, '--account', account, '--permissions', 'calls:read,calls:write']);
  assert.equal(t.code, 0, t.stderr);
  return { account, token: lastLine(t.stdout) };
}

async function node(store, extra = []) {
  const data = freshDataDir();
  const s = await startServer({ data, extraArgs: ['--store', store, ...extra] });
  return { ...s, base: `${s.url}/client/v4`, cleanup() { rmSync(data, { recursive: true, force: true }); } };
}

describe('PostgreSQL store', () => {
  let pg;
  const nodes = [];
  before(() => { pg = startPostgres(); });
  after(async () => {
    for (const n of nodes) { await n.kill9().catch(() => {}); n.cleanup(); }
    if (pg) pg.stop();
  });

  test('operator commands take --store; the banner names the store without its password', async () => {
    const store = pg.newDatabase('cli');
    const { account } = accountAndToken(store);
    const l = cli(['account', 'list', '--store', store]);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, new RegExp(account));
    const k = cli(['key', 'list', '--store', store, '--account', account]);
    assert.equal(k.code, 0, k.stderr);
    const bad = cli(['account', 'list', '--store', 'postgresql://u:sekrit@127.0.0.1:1/nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /cannot connect to postgresql:\/\/u:\*\*\*@127\.0\.0\.1:1\/nope/);
    assert.doesNotMatch(bad.stderr, /sekrit/);
  });

  test('acknowledged writes survive kill -9 of turnkey', async () => {
    const store = pg.newDatabase('dur');
    const { account, token } = accountAndToken(store);
    const n = await node(store);
    nodes.push(n);
    const coll = `${n.base}/accounts/${account}/calls/turn_keys`;
    const acked = new Map();
    const failures = [];
    await pool(6, Array.from({ length: 60 }, (_, i) => i), async (i) => {
      const c = await httpRequest(coll, { method: 'POST', token, body: { name: `d-${i}` } });
      if (c.status !== 201) { failures.push(`${c.status} ${c.text}`); return; }
      acked.set(c.json.result.uid, `d-${i}`);
      if (i % 4 === 0) {
        const u = await httpRequest(`${coll}/${c.json.result.uid}`, { method: 'PUT', token, body: { name: `r-${i}` } });
        if (u.status === 200) acked.set(c.json.result.uid, `r-${i}`); else failures.push(`rename ${u.status}`);
      }
    });
    assert.deepEqual(failures, []);
    assert.equal((await n.kill9()).signal, 'SIGKILL');
    const m = await node(store);
    nodes.push(m);
    const cf = new Cloudflare({ apiToken: token, baseURL: m.base, maxRetries: 0 });
    const got = new Map();
    for await (const k of cf.calls.turn.list({ account_id: account })) got.set(k.uid, k.name);
    assert.deepEqual(new Map([...got].sort()), new Map([...acked].sort()));
  });

  test('two API nodes creating in parallel never pass --max-keys and lose no write', async () => {
    const store = pg.newDatabase('par');
    const { account, token } = accountAndToken(store);
    const a = await node(store, ['--max-keys', '9']);
    const b = await node(store, ['--max-keys', '9']);
    nodes.push(a, b);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => {
      const n = i % 2 ? a : b;
      return httpRequest(`${n.base}/accounts/${account}/calls/turn_keys`, { method: 'POST', token, body: { name: `p-${i}` } });
    }));
    const created = results.filter((r) => r.status === 201).map((r) => r.json.result.uid);
    const refused = results.filter((r) => r.status === 400);
    assert.equal(created.length, 9, results.map((r) => r.status).join(','));
    assert.equal(refused.length, 21);
    for (const r of refused) expectEnvelope(r, 400);
    for (const n of [a, b]) {
      const l = await httpRequest(`${n.base}/accounts/${account}/calls/turn_keys`, { token });
      assert.equal(l.status, 200);
      assert.deepEqual(l.json.result.map((k) => k.uid).sort(), [...created].sort());
    }
  });

  test('database stopped mid-traffic: writes answer 5xx in the v4 envelope promptly; recovery is automatic', async () => {
    const store = pg.newDatabase('gone');
    const { account, token } = accountAndToken(store);
    const n = await node(store);
    nodes.push(n);
    const coll = `${n.base}/accounts/${account}/calls/turn_keys`;
    const before = await httpRequest(coll, { method: 'POST', token, body: { name: 'before' } });
    assert.equal(before.status, 201);
    pg.halt();
    let resumed = false;
    try {
      const t0 = Date.now();
      const down = [];
      for (let i = 0; i < 5; i++) down.push(await httpRequest(coll, { method: 'POST', token, body: { name: `down-${i}` } }));
      const list = await httpRequest(coll, { token });
      const took = Date.now() - t0;
      for (const r of [...down, list]) {
        assert.ok(r.status >= 500 && r.status < 600, `${r.status} ${r.text}`);
        expectEnvelope(r, r.status);
      }
      assert.ok(took < 30000, `answers took ${took} ms (never a hang)`);
      pg.resume();
      resumed = true;
    } finally {
      if (!resumed) pg.resume();
    }
    // the node reconnects on its own; nothing half-written is visible
    let list;
    for (let i = 0; i < 100; i++) {
      list = await httpRequest(coll, { token });
      if (list.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.result.map((k) => k.name), ['before']);
    const after = await httpRequest(coll, { method: 'POST', token, body: { name: 'after' } });
    assert.equal(after.status, 201, after.text);
  });

  test('audit log on PostgreSQL: the API records and serves changes; turnkey audit list reads them', async () => {
    const store = pg.newDatabase('audit');
    const { account, token } = accountAndToken(store);
    const n = await node(store);
    nodes.push(n);
    const coll = `${n.base}/accounts/${account}/calls/turn_keys`;
    const k = await httpRequest(coll, { method: 'POST', token, body: { name: 'a1' } });
    assert.equal(k.status, 201, k.text);
    const uid = k.json.result.uid;
    const ren = await httpRequest(`${coll}/${uid}`, { method: 'PUT', token, body: { name: 'a2' } });
    assert.equal(ren.status, 200, ren.text);
    const del = await httpRequest(`${coll}/${uid}`, { method: 'DELETE', token });
    assert.equal(del.status, 200, del.text);
    const audit = (q = '') => httpRequest(`${n.base}/accounts/${account}/audit_logs${q}`, { token });
    const r = await audit();
    assert.equal(r.status, 200, r.text);
    const recs = r.json.result;
    assert.deepEqual(recs.slice(0, 3).map((x) => x.action.type), ['delete', 'update', 'create']);
    assert.deepEqual(recs[1].oldValueJson, { uid, name: 'a1' });
    assert.deepEqual(recs[1].newValueJson, { uid, name: 'a2' });
    assert.equal(recs[0].actor.ip, '127.0.0.1');
    assert.equal(r.json.result_info.total_count, recs.length);
    assert.ok(recs.some((x) => x.resource.type === 'account' && x.interface === 'CLI'), 'the CLI\'s account record');
    const p2 = (await audit('?per_page=1&page=2&direction=asc')).json;
    assert.equal(p2.result[0].id, recs[recs.length - 2].id);
    const byRes = (await audit(`?resource.id=${uid}&action.type=update`)).json.result;
    assert.deepEqual(byRes.map((x) => x.id), [recs[1].id]);
    const c = cli(['audit', 'list', '--store', store, '--account', account, `resource.id=${uid}`]);
    assert.equal(c.code, 0, c.stderr);
    const lines = c.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((x) => x.action.type).sort(), ['create', 'delete', 'update']);
  });

  test('store copy: SQLite -> PostgreSQL -> SQLite, idempotent, verified counts; a node serves the copy', async () => {
    const src = freshDataDir();
    const back = freshDataDir();
    try {
      const a = cli(['account', 'create', '--data', src, '--name', 'copy']);
      const account = lastLine(a.stdout);
      const t = cli(['token', 'create', '--data', src, '--account', account, '--permissions', 'calls:read,calls:write']);
      const token = lastLine(t.stdout);
      const s = await startServer({ data: src });
      const coll = `${s.url}/client/v4/accounts/${account}/calls/turn_keys`;
      const k = await httpRequest(coll, { method: 'POST', token, body: { name: 'copied' } });
      assert.equal(k.status, 201);
      const ice = await httpRequest(`${s.url}/v1/turn/keys/${k.json.result.uid}/credentials/generate-ice-servers`,
        { method: 'POST', token: k.json.result.key, body: { ttl: 3600 } });
      assert.equal(ice.status, 201);
      const user = ice.json.iceServers[1].username;
      const rv = await httpRequest(`${s.url}/v1/turn/keys/${k.json.result.uid}/credentials/${encodeURIComponent(user)}/revoke`,
        { method: 'POST', token: k.json.result.key });
      assert.ok(rv.status < 300, rv.text);
      await s.stop();

      const store = pg.newDatabase('copy');
      const first = cli(['store', 'copy', '--from', src, '--to', store]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /copied 4 record\(s\); verified in the target: 1 account\(s\), 1 token\(s\), 1 key\(s\), 1 revocation\(s\)/);
      const again = cli(['store', 'copy', '--from', src, '--to', store]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /copied 0 record\(s\); verified in the target: 1 account\(s\), 1 token\(s\), 1 key\(s\), 1 revocation\(s\)/);
      const home = cli(['store', 'copy', '--from', store, '--to', back]);
      assert.equal(home.code, 0, home.stderr);
      assert.match(home.stdout, /copied 4 record\(s\)/);
      const missing = cli(['store', 'copy', '--from', '/nonexistent/dir', '--to', store]);
      assert.notEqual(missing.code, 0);

      const n = await node(store);
      nodes.push(n);
      const l = await httpRequest(`${n.base}/accounts/${account}/calls/turn_keys`, { token });
      assert.equal(l.status, 200, 'the old token works on the copy');
      assert.deepEqual(l.json.result.map((x) => x.name), ['copied']);
    } finally {
      rmSync(src, { recursive: true, force: true });
      rmSync(back, { recursive: true, force: true });
    }
  });
});
