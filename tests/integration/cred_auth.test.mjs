// Credential plane authentication: every failure is the same 401 and reveals nothing
// (wrong/missing bearer, another key's bearer, another account's key, deleted key,
// unknown or malformed key id).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fixture, createAccount, createToken } from './lib/server.mjs';

async function createKey(base, account, token, name = 'k') {
  const res = await fetch(`${base}/accounts/${account}/calls/turn_keys`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  assert.equal(res.status, 201);
  const { result } = await res.json();
  return { uid: result.uid, key: result.key };
}

// Raw request to /v1/turn/keys/{uidSeg}/credentials/{tail}; authorization: header value or null.
async function cred(url, uidSeg, tail, authorization, body = { ttl: 600 }) {
  const headers = { 'content-type': 'application/json' };
  if (authorization !== null) headers.authorization = authorization;
  const res = await fetch(`${url}/v1/turn/keys/${uidSeg}/credentials/${tail}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('credential plane: authentication failures are one indistinguishable 401', () => {
  let f, k1, k2, kOther, kDeleted, goodUsername;
  before(async () => {
    f = await fixture();
    k1 = await createKey(f.base, f.account, f.token, 'one');
    k2 = await createKey(f.base, f.account, f.token, 'two');
    kDeleted = await createKey(f.base, f.account, f.token, 'deleted');
    const del = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys/${kDeleted.uid}`, {
      method: 'DELETE', headers: { authorization: `Bearer ${f.token}` },
    });
    assert.equal(del.status, 200);
    // A key in a second account (accounts and tokens are created on the same store by the CLI).
    const acct2 = createAccount(f.data, 'other');
    const tok2 = createToken(f.data, acct2);
    kOther = await createKey(f.base, acct2, tok2, 'other-account');
    const ok = await cred(f.url, k1.uid, 'generate-ice-servers', `Bearer ${k1.key}`);
    assert.equal(ok.status, 201, ok.text);
    goodUsername = JSON.parse(ok.text).iceServers[1].username;
  });
  after(async () => { await f?.close(); });

  const cases = () => [
    ['wrong bearer (random 64 hex)', k1.uid, `Bearer ${randomBytes(32).toString('hex')}`],
    ['missing Authorization', k1.uid, null],
    ['Bearer of another key of the same account', k1.uid, `Bearer ${k2.key}`],
    ['key of another account (its own bearer, this uid)', k1.uid, `Bearer ${kOther.key}`],
    ['this bearer on another account\'s key uid', kOther.uid, `Bearer ${k1.key}`],
    ['deleted key with its own correct bearer', kDeleted.uid, `Bearer ${kDeleted.key}`],
    ['unknown well-formed uid', randomBytes(16).toString('hex'), `Bearer ${k1.key}`],
    ['malformed uid (not hex)', 'not-a-key-id', `Bearer ${k1.key}`],
    ['malformed uid (uppercase hex)', k1.uid.toUpperCase(), `Bearer ${k1.key}`],
    ['malformed uid (31 hex)', k1.uid.slice(1), `Bearer ${k1.key}`],
    ['malformed uid (33 hex)', `${k1.uid}0`, `Bearer ${k1.key}`],
    ['bearer in upper case hex', k1.uid, `Bearer ${k1.key.toUpperCase()}`],
    ['bearer truncated', k1.uid, `Bearer ${k1.key.slice(0, 63)}`],
    ['bearer with a suffix', k1.uid, `Bearer ${k1.key}00`],
    ['"Bearer" with no token', k1.uid, 'Bearer'],
    ['Basic scheme', k1.uid, `Basic ${Buffer.from(`x:${k1.key}`).toString('base64')}`],
    ['the account API token instead of the key', k1.uid, `Bearer ${f.token}`],
    ['the key id as bearer', k1.uid, `Bearer ${k1.uid}`],
  ];

  test('generate-ice-servers: every failure → 401 with a byte-identical body and headers', async () => {
    const bodies = new Set();
    for (const [name, uid, auth] of cases()) {
      const r = await cred(f.url, uid, 'generate-ice-servers', auth);
      assert.equal(r.status, 401, `${name}: ${r.status} ${r.text}`);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/, name);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer', name);
      const j = JSON.parse(r.text);
      assert.equal(j.success, false, name);
      assert.ok(j.errors[0].code >= 1000, name);
      bodies.add(r.text);
    }
    assert.equal(bodies.size, 1, `401 bodies differ:\n${[...bodies].join('\n')}`);
  });

  test('legacy generate and revoke give the very same 401 body', async () => {
    const ref = await cred(f.url, k1.uid, 'generate-ice-servers', null);
    const bodies = new Set([ref.text]);
    for (const [name, uid, auth] of cases()) {
      const g = await cred(f.url, uid, 'generate', auth);
      assert.equal(g.status, 401, `generate, ${name}: ${g.status} ${g.text}`);
      bodies.add(g.text);
      const rv = await cred(f.url, uid, `${goodUsername}/revoke`, auth, {});
      assert.equal(rv.status, 401, `revoke, ${name}: ${rv.status} ${rv.text}`);
      bodies.add(rv.text);
    }
    assert.equal(bodies.size, 1, `401 bodies differ:\n${[...bodies].join('\n')}`);
  });

  test('authentication comes before body validation (bad ttl / bad JSON / huge body with a bad bearer → 401)', async () => {
    const ref = (await cred(f.url, k1.uid, 'generate-ice-servers', null)).text;
    for (const body of [{ ttl: 0 }, { ttl: 'x' }, { customIdentifier: 'has space' }]) {
      const r = await cred(f.url, k1.uid, 'generate-ice-servers', `Bearer ${k2.key}`, body);
      assert.equal(r.status, 401, r.text);
      assert.equal(r.text, ref);
    }
    const res = await fetch(`${f.url}/v1/turn/keys/${k1.uid}/credentials/generate-ice-servers`, {
      method: 'POST', headers: { authorization: `Bearer ${k2.key}`, 'content-type': 'application/json' }, body: '{"ttl":',
    });
    assert.equal(res.status, 401);
    assert.equal(await res.text(), ref);
  });

  test('the correct bearer still works after all the failures (no lockout)', async () => {
    const r = await cred(f.url, k1.uid, 'generate-ice-servers', `Bearer ${k1.key}`);
    assert.equal(r.status, 201, r.text);
  });

  test('a key deleted after minting stops authenticating at once', async () => {
    const k = await createKey(f.base, f.account, f.token, 'short-lived');
    assert.equal((await cred(f.url, k.uid, 'generate-ice-servers', `Bearer ${k.key}`)).status, 201);
    const del = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys/${k.uid}`, {
      method: 'DELETE', headers: { authorization: `Bearer ${f.token}` },
    });
    assert.equal(del.status, 200);
    const r = await cred(f.url, k.uid, 'generate-ice-servers', `Bearer ${k.key}`);
    assert.equal(r.status, 401);
    assert.equal(r.text, (await cred(f.url, k1.uid, 'generate-ice-servers', null)).text);
  });

  test('server stops with exit code 0', async () => {
    const r = await f.stop();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });
});
