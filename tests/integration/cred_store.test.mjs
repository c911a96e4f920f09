// Credential plane: credentials are stateless — minting writes nothing to the store (every
// row of every table compared, not only counts), and a credential minted on one server
// verifies on a relay whose store is a copy taken before the mint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { fixture, startServer, freshDataDir } from './lib/server.mjs';
import { TurnClient, CLASS } from './lib/stun.mjs';

const sql = (data, q) => execFileSync('sqlite3', [`${data}/turnkey.db`, q], { encoding: 'utf8' }).trim();

// {table: rowCount} for every table in the database (whatever the schema version adds).
function rowCounts(data) {
  const tables = sql(data, "select name from sqlite_master where type='table' order by name").split('\n').filter(Boolean);
  assert.ok(tables.includes('revocations') && tables.includes('turn_keys'), `tables: ${tables}`);
  return Object.fromEntries(tables.map((t) => [t, Number(sql(data, `select count(*) from "${t}"`))]));
}

// Every row of every table, as SQL text (sqlite3 .dump): any update of any column shows.
const dump = (data) => execFileSync('sqlite3', [`${data}/turnkey.db`, '.dump'], { encoding: 'utf8' });

test('50 mints (both endpoints, with and without customIdentifier) change no row of any table; a relay on a pre-mint copy of the store accepts them', async () => {
  const f = await fixture();
  let g, copy;
  try {
    const res = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
      method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' }, body: '{"name":"s"}',
    });
    assert.equal(res.status, 201);
    const k = (await res.json()).result;
    const before = rowCounts(f.data);
    const contents = dump(f.data);
    // a copy of the store as it is before any mint, for a second, independent relay
    copy = freshDataDir();
    rmSync(copy, { recursive: true, force: true });
    cpSync(f.data, copy, { recursive: true });
    const keyRow = sql(f.data, `select uid, name, key_hash, hex(secret), created, modified from turn_keys where uid='${k.uid}'`);
    const usernames = new Set();
    const creds = [];
    for (let i = 0; i < 50; i++) {
      const tail = i % 5 === 4 ? 'generate' : 'generate-ice-servers';
      const body = i % 2 ? JSON.stringify({ ttl: 60 + i, customIdentifier: `user-${i}` }) : undefined;
      const r = await fetch(`${f.url}/v1/turn/keys/${k.uid}/credentials/${tail}`, {
        method: 'POST', headers: { authorization: `Bearer ${k.key}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body,
      });
      assert.equal(r.status, 201);
      const j = await r.json();
      const srv = tail === 'generate' ? j.iceServers : j.iceServers[1];
      usernames.add(srv.username);
      creds.push({ username: srv.username, password: srv.credential });
    }
    assert.ok(usernames.size >= 26, 'credentials differ (distinct cids at least)');
    assert.deepEqual(rowCounts(f.data), before);
    assert.equal(dump(f.data), contents, 'no row of any table changed');
    assert.equal(sql(f.data, `select uid, name, key_hash, hex(secret), created, modified from turn_keys where uid='${k.uid}'`), keyRow,
      'the key row is untouched');
    // failed mints (bad ttl, bad bearer) write nothing either
    for (const [auth, body] of [[k.key, '{"ttl":0}'], ['0'.repeat(64), '{"ttl":60}']]) {
      const r = await fetch(`${f.url}/v1/turn/keys/${k.uid}/credentials/generate-ice-servers`, {
        method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, body,
      });
      assert.equal(r.status, auth === k.key ? 400 : 401);
      await r.text();
    }
    assert.deepEqual(rowCounts(f.data), before);
    assert.equal(dump(f.data), contents);
    // a relay on the pre-mint copy of the store accepts the minted credentials: nothing about
    // them was ever stored
    g = await startServer({ data: copy });
    for (const cred of [creds[0], creds[1], creds[4]]) {
      const c = new TurnClient({ host: '127.0.0.1', port: g.turnPort });
      try {
        const res = await c.allocate(cred);
        assert.equal(res.cls, CLASS.SUCCESS, `Allocate on the copy with ${cred.username}: ${res.errorCode} ${res.reason}`);
      } finally { await c.close(); }
    }
  } finally {
    if (g) {
      const rg = await g.stop();
      assert.equal(rg.code, 0, `copy server exit status — stderr:\n${g.stderr()}`);
    }
    if (copy) rmSync(copy, { recursive: true, force: true });
    const r = await f.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  }
});
