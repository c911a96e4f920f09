// Credential plane: revoke (idempotent 204, 404 for another key's username, 400 for a
// malformed one) and persistence of revocations across a restart (checked in SQLite).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fixture, startServer, expectEnvelope } from './lib/server.mjs';
import { TurnClient, CLASS } from './lib/stun.mjs';

const sql = (data, q) => execFileSync('sqlite3', [`${data}/turnkey.db`, q], { encoding: 'utf8' }).trim();
const revocations = (data) => Number(sql(data, 'select count(*) from revocations'));

async function createKey(f, name = 'k') {
  const res = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
    method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  assert.equal(res.status, 201);
  const { result } = await res.json();
  return { uid: result.uid, key: result.key };
}

async function mintCred(url, k, body = { ttl: 600 }) {
  const res = await fetch(`${url}/v1/turn/keys/${k.uid}/credentials/generate-ice-servers`, {
    method: 'POST', headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 201);
  const { username, credential } = (await res.json()).iceServers[1];
  return { username, password: credential };
}
const mint = async (url, k, body) => (await mintCred(url, k, body)).username;

// An Allocate over UDP to server s with cred; returns the answer (and closes the client).
async function allocateOn(s, cred) {
  const c = new TurnClient({ host: '127.0.0.1', port: s.turnPort });
  try { return await c.allocate(cred); } finally { await c.close(); }
}

async function revoke(url, k, username, { bearer = k.key, method = 'POST' } = {}) {
  const res = await fetch(`${url}/v1/turn/keys/${k.uid}/credentials/${username}/revoke`, {
    method, headers: { authorization: `Bearer ${bearer}` },
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
}

function assertJsonError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(r.json.success, false);
  assert.equal(r.json.errors[0].code, code, r.text);
}

describe('credential plane: revoke', () => {
  let f, k, k2;
  before(async () => {
    f = await fixture();
    k = await createKey(f, 'a');
    k2 = await createKey(f, 'b');
  });
  after(async () => { await f?.close(); });

  test('revoke → 204 with an empty body; again → 204; one row stored', async () => {
    const before = revocations(f.data);
    const u = await mint(f.url, k);
    const r1 = await revoke(f.url, k, u);
    assert.equal(r1.status, 204);
    assert.equal(r1.text, '');
    assert.equal(revocations(f.data), before + 1);
    const r2 = await revoke(f.url, k, u);
    assert.equal(r2.status, 204);
    assert.equal(r2.text, '');
    assert.equal(revocations(f.data), before + 1, 'idempotent: no second row');
  });

  test('revoke works for usernames with a customIdentifier (":" and "." in the path)', async () => {
    const u = await mint(f.url, k, { ttl: 600, customIdentifier: 'room-42:user.7' });
    assert.ok(u.endsWith(':room-42:user.7'));
    assert.equal((await revoke(f.url, k, u)).status, 204);
    // percent-encoded form of the same username is the same credential
    assert.equal((await revoke(f.url, k, encodeURIComponent(u))).status, 204);
  });

  test('legacy generate usernames can be revoked too', async () => {
    const res = await fetch(`${f.url}/v1/turn/keys/${k.uid}/credentials/generate`, {
      method: 'POST', headers: { authorization: `Bearer ${k.key}` },
    });
    assert.equal(res.status, 201);
    const u = (await res.json()).iceServers.username;
    assert.equal((await revoke(f.url, k, u)).status, 204);
  });

  test('a username minted by another key, under this key\'s path → 404 (nothing stored)', async () => {
    const before = revocations(f.data);
    const other = await mint(f.url, k2);
    assertJsonError(await revoke(f.url, k, other), 404, 10004);
    assert.equal(revocations(f.data), before);
    // and the other key can still revoke its own credential
    assert.equal((await revoke(f.url, k2, other)).status, 204);
  });

  test('a well-formed username with this key id but a forged tag → 404', async () => {
    const u = await mint(f.url, k);
    const parts = u.split(':'); // expiry:key-id:salt:tag[:cid]
    parts[3] = parts[3].replace(/^./, (c) => (c === '0' ? '1' : '0'));
    assertJsonError(await revoke(f.url, k, parts.join(':')), 404, 10004);
    // changing the expiry breaks the tag as well
    const p2 = u.split(':');
    p2[0] = String(Number(p2[0]) + 1);
    assertJsonError(await revoke(f.url, k, p2.join(':')), 404, 10004);
  });

  test('malformed usernames → 400', async () => {
    const u = await mint(f.url, k);
    for (const bad of ['nope', `0${u}`, `${u}:`, u.toUpperCase(), `${u}%00`, '%zz', 'x'.repeat(300)]) {
      assertJsonError(await revoke(f.url, k, bad), 400, 10001);
    }
  });

  test('wrong bearer → 401; GET on revoke → 405 with Allow: POST', async () => {
    const u = await mint(f.url, k);
    const r = await revoke(f.url, k, u, { bearer: k2.key });
    assertJsonError(r, 401, 10000);
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const g = await revoke(f.url, k, u, { method });
      assertJsonError(g, 405, 10005);
      assert.equal(g.headers.get('allow'), 'POST');
    }
  });

  test('revoking an already-expired credential → 204 and stores nothing', async () => {
    const u = await mint(f.url, k, { ttl: 1 });
    const expiry = Number(u.split(':')[0]);
    const deadline = Date.now() + 5000;
    while (Math.floor(Date.now() / 1000) < expiry && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 50));
    const before = revocations(f.data);
    assert.equal((await revoke(f.url, k, u)).status, 204);
    assert.equal(revocations(f.data), before);
  });

  test('deleting a key drops its revocations', async () => {
    const k3 = await createKey(f, 'c');
    const u = await mint(f.url, k3);
    assert.equal((await revoke(f.url, k3, u)).status, 204);
    assert.equal(Number(sql(f.data, `select count(*) from revocations where key_uid='${k3.uid}'`)), 1);
    const del = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys/${k3.uid}`, {
      method: 'DELETE', headers: { authorization: `Bearer ${f.token}` },
    });
    assert.equal(del.status, 200);
    assert.equal(Number(sql(f.data, `select count(*) from revocations where key_uid='${k3.uid}'`)), 0);
  });

  test('server stops with exit code 0', async () => {
    const r = await f.stop();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });
});

describe('credential plane: revocations survive a restart', () => {
  test('revoke, stop, start on the same data: the relay still refuses the revoked credential; the row is still there and revoke again → 204', async () => {
    const f = await fixture({ keepData: true });
    let s2;
    try {
      const k = await createKey(f);
      const revoked = await mintCred(f.url, k);
      const u = revoked.username;
      // minted, never revoked (a distinct credential: every mint carries its own random salt)
      const otherCred = await mintCred(f.url, k, { ttl: 600, customIdentifier: 'other' });
      const other = otherCred.username;
      assert.equal((await allocateOn(f, revoked)).cls, CLASS.SUCCESS, 'control: the credential worked before the revoke');
      assert.equal((await revoke(f.url, k, u)).status, 204);
      assert.equal((await allocateOn(f, revoked)).errorCode, 401, 'refused after the revoke');
      const r1 = await f.stop();
      assert.equal(r1.code, 0, `first server exit status — stderr:\n${f.stderr()}`);

      s2 = await startServer({ data: f.data });
      // the relay of the restarted server still refuses it, and still accepts the other one
      const after = await allocateOn(s2, revoked);
      assert.equal(after.cls, CLASS.ERROR, 'the revoked credential allocates after a restart');
      assert.equal(after.errorCode, 401, `Allocate with the revoked credential after the restart: ${after.errorCode} ${after.reason}`);
      assert.equal((await allocateOn(s2, otherCred)).cls, CLASS.SUCCESS, 'an unrevoked credential of the same key still works');
      assert.equal(revocations(f.data), 1, 'one revocation persisted');
      assert.equal(Number(sql(f.data, `select count(*) from revocations where key_uid='${k.uid}'`)), 1);
      // the stored row is for u (expiry must match the username's)
      assert.equal(Number(sql(f.data, 'select expires from revocations')), Number(u.split(':')[0]));
      const again = await revoke(s2.url, k, u);
      assert.equal(again.status, 204);
      assert.equal(again.text, '');
      assert.equal(revocations(f.data), 1, 'still exactly one row');
      // the key still mints after the restart
      assert.match(await mint(s2.url, k), new RegExp(`^[0-9]+:${k.uid}:`));
      assert.equal((await revoke(s2.url, k, other)).status, 204);
      assert.equal(revocations(f.data), 2);
      assert.equal((await allocateOn(s2, otherCred)).errorCode, 401, 'revoked on the restarted server: refused at once');
      const r2 = await s2.stop();
      assert.equal(r2.code, 0, `second server exit status — stderr:\n${s2.stderr()}`);
    } finally {
      await f.stop();
      if (s2) await s2.stop();
      rmSync(f.data, { recursive: true, force: true });
    }
  });

});

describe('credential plane: revocations per key are capped (--max-revocations-per-key)', () => {
  let f;
  before(async () => { f = await fixture({ extraArgs: ['--max-revocations-per-key', '3'] }); });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  test('the 4th live revocation of a key → 409 in the v4 envelope; re-revoking → 204; other keys unaffected', async () => {
    const k = await createKey(f, 'capped');
    const creds = [];
    for (let i = 0; i < 4; i++) creds.push(await mintCred(f.url, k, { ttl: 600, customIdentifier: `cap${i}` }));
    for (let i = 0; i < 3; i++) assert.equal((await revoke(f.url, k, creds[i].username)).status, 204);
    const before = revocations(f.data);
    const over = await revoke(f.url, k, creds[3].username);
    const body = expectEnvelope(over, 409, 10006);
    assert.match(body.errors[0].message, /Revocation limit reached/);
    assert.match(body.errors[0].message, /\b3\b/, 'the message names the limit');
    assert.match(body.errors[0].message, /expire/, 'and says revocations expire with their credentials');
    assert.equal(revocations(f.data), before, 'nothing stored past the cap');
    assert.equal((await allocateOn(f, creds[3])).cls, CLASS.SUCCESS, 'the refused revocation left the credential working');
    assert.equal((await allocateOn(f, creds[0])).errorCode, 401, 'the admitted ones hold');
    const again = await revoke(f.url, k, creds[1].username);
    assert.equal(again.status, 204, 're-revoking a revoked username at the cap stays 204');
    const k2 = await createKey(f, 'other');
    assert.equal((await revoke(f.url, k2, await mint(f.url, k2))).status, 204, 'the cap is per key');
    const expired = await mint(f.url, k, { ttl: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal((await revoke(f.url, k, expired)).status, 204, 'an expired credential: 204, nothing to store');
  });
});
