// Control plane durability: every acknowledged create/rename/delete survives kill -9.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Cloudflare from 'cloudflare';
import { fixture, startServer, httpRequest, expectEnvelope, pool } from './lib/server.mjs';

const integrity = (data) => execFileSync('sqlite3', [join(data, 'turnkey.db'), 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim();

describe('control durability: kill -9 right after the last acknowledgement', () => {
  let f, g; // g = the restarted server
  after(async () => {
    if (f) await f.kill9().catch(() => {});
    if (g) await g.stop().catch(() => {});
    if (f) rmSync(f.data, { recursive: true, force: true });
  });

  const expected = new Map(); // uid -> name, for every acknowledged state
  const deleted = new Set();
  const inflight = [];

  test('200 creates (8 concurrent) with acknowledged renames and deletes, then SIGKILL', async () => {
    f = await fixture({ keepData: true });
    const coll = `${f.base}/accounts/${f.account}/calls/turn_keys`;
    const failures = []; // every request here must succeed: a refused write is a finding, not noise
    await pool(8, Array.from({ length: 200 }, (_, i) => i), async (i) => {
      const c = await httpRequest(coll, { method: 'POST', token: f.token, body: { name: `dur-${i}` } });
      if (c.status !== 201) { failures.push(`create ${i}: ${c.status} ${c.text}`); return; }
      const k = c.json.result;
      expected.set(k.uid, k.name);
      if (i % 5 === 0) {
        const u = await httpRequest(`${coll}/${k.uid}`, { method: 'PUT', token: f.token, body: { name: `renamed-${i}` } });
        if (u.status === 200) expected.set(k.uid, `renamed-${i}`);
        else failures.push(`rename ${i}: ${u.status} ${u.text}`);
      }
      if (i % 7 === 0) {
        const d = await httpRequest(`${coll}/${k.uid}`, { method: 'DELETE', token: f.token });
        if (d.status === 200) { expected.delete(k.uid); deleted.add(k.uid); } else failures.push(`delete ${i}: ${d.status} ${d.text}`);
      }
    });
    assert.deepEqual(failures, []);
    const renamed = [...expected.values()].filter((n) => n.startsWith('renamed-')).length;
    // i % 5 === 0 renamed (40), minus those also deleted (i % 35 === 0: 6)
    assert.equal(renamed, 40 - 6, 'every rename acknowledged');
    // A few writes still in flight at the moment of the kill: outcome unknown, but never partial.
    for (let i = 0; i < 6; i++) inflight.push(httpRequest(coll, { method: 'POST', token: f.token, body: { name: `inflight-${i}` } }).catch((e) => e));
    const r = await f.kill9();
    assert.equal(r.signal, 'SIGKILL');
    await Promise.all(inflight);
    assert.equal(expected.size + deleted.size, 200, 'every create was acknowledged');
    assert.equal(deleted.size, Math.ceil(200 / 7));
  });

  test('the store passes PRAGMA integrity_check after the kill', () => {
    assert.equal(integrity(f.data), 'ok');
  });

  test('after restart on the same data dir: every acknowledged key present with its name; deletes gone; nothing partial', async () => {
    g = await startServer({ data: f.data });
    const cf = new Cloudflare({ apiToken: f.token, baseURL: `${g.url}/client/v4`, maxRetries: 0 });
    const items = [];
    for await (const it of cf.calls.turn.list({ account_id: f.account })) items.push(it);
    const seen = new Map();
    for (const it of items) {
      assert.match(it.uid ?? '', /^[0-9a-f]{32}$/, JSON.stringify(it));
      assert.ok(it.created && Number.isFinite(Date.parse(it.created)), JSON.stringify(it));
      assert.ok(it.modified && Number.isFinite(Date.parse(it.modified)), JSON.stringify(it));
      assert.equal(typeof it.name, 'string');
      assert.ok(!seen.has(it.uid), `duplicate ${it.uid}`);
      seen.set(it.uid, it.name);
    }
    for (const [uid, name] of expected) assert.equal(seen.get(uid), name, `acknowledged key ${uid} (${name})`);
    for (const uid of deleted) assert.ok(!seen.has(uid), `acknowledged delete ${uid} is back`);
    // anything else can only be one of the in-flight creates
    const extra = [...seen].filter(([uid]) => !expected.has(uid));
    assert.ok(extra.length <= 6, `unexpected extra keys: ${JSON.stringify(extra)}`);
    for (const [, name] of extra) assert.match(name, /^inflight-\d$/);
    // and the restarted server keeps working on the recovered store
    const k = await cf.calls.turn.create({ account_id: f.account, name: 'after-restart' });
    const got = await cf.calls.turn.get(k.uid, { account_id: f.account });
    assert.equal(got.name, 'after-restart');
    const one = [...expected.keys()][0];
    const res = await httpRequest(`${g.url}/client/v4/accounts/${f.account}/calls/turn_keys/${one}`, { token: f.token });
    assert.equal(expectEnvelope(res, 200).result.name, expected.get(one));
  });

  test('the restarted server exits with status 0 and the store is still intact', async () => {
    const r = await g.stop();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${g.stderr()}`);
    assert.equal(integrity(f.data), 'ok');
  });
});
