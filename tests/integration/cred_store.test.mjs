// Credential plane: credentials are stateless — minting writes nothing to the store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fixture } from './lib/server.mjs';

const sql = (data, q) => execFileSync('sqlite3', [`${data}/turnkey.db`, q], { encoding: 'utf8' }).trim();

// {table: rowCount} for every table in the database (whatever the schema version adds).
function rowCounts(data) {
  const tables = sql(data, "select name from sqlite_master where type='table' order by name").split('\n').filter(Boolean);
  assert.ok(tables.includes('revocations') && tables.includes('turn_keys'), `tables: ${tables}`);
  return Object.fromEntries(tables.map((t) => [t, Number(sql(data, `select count(*) from "${t}"`))]));
}

test('50 mints (both endpoints, with and without customIdentifier) change no row of any table', async () => {
  const f = await fixture();
  try {
    const res = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
      method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' }, body: '{"name":"s"}',
    });
    assert.equal(res.status, 201);
    const k = (await res.json()).result;
    const before = rowCounts(f.data);
    const keyRow = sql(f.data, `select uid, name, key_hash, hex(secret), created, modified from turn_keys where uid='${k.uid}'`);
    const usernames = new Set();
    for (let i = 0; i < 50; i++) {
      const tail = i % 5 === 4 ? 'generate' : 'generate-ice-servers';
      const body = i % 2 ? JSON.stringify({ ttl: 60 + i, customIdentifier: `user-${i}` }) : undefined;
      const r = await fetch(`${f.url}/v1/turn/keys/${k.uid}/credentials/${tail}`, {
        method: 'POST', headers: { authorization: `Bearer ${k.key}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body,
      });
      assert.equal(r.status, 201);
      const j = await r.json();
      usernames.add(tail === 'generate' ? j.iceServers.username : j.iceServers[1].username);
    }
    assert.ok(usernames.size >= 26, 'credentials differ (distinct cids at least)');
    assert.deepEqual(rowCounts(f.data), before);
    assert.equal(sql(f.data, `select uid, name, key_hash, hex(secret), created, modified from turn_keys where uid='${k.uid}'`), keyRow,
      'the key row is untouched');
    // failed mints (bad ttl, bad bearer) write nothing either
    for (const [auth, body] of [[k.key, '{"ttl":0}'], ['0'.repeat(64), '{"ttl":60}']]) {
      const r = await fetch(`${f.url}/v1/turn/keys/${k.uid}/credentials/generate-ice-servers`, {
        method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, body,
      });
      assert.ok(r.status === 400 || r.status === 401);
      await r.text();
    }
    assert.deepEqual(rowCounts(f.data), before);
  } finally {
    const r = await f.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  }
});
