// Behaviours that exist and had no test (issue 16 point 6): secrets never stored in
// plaintext; configuration precedence (defaults < --config file < TURNKEY_* < flags);
// --relay-ip; --realm; /healthz; expired revocations purged; the credential plane's 401 is
// the same for an unknown key and a wrong bearer.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, startServer, createTurnKey, mintTurn, freshDataDir, createAccount, createToken, httpRequest } from './lib/server.mjs';
import { TurnClient, CLASS, METHOD, A, echoPeer } from './lib/stun.mjs';

const sql = (data, q) => execFileSync('sqlite3', [join(data, 'turnkey.db'), q], { encoding: 'utf8' }).trim();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function stopOk(s) {
  const r = await s.stop();
  assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${s.stderr()}`);
}

// The realm a server announces: the REALM of the 401 to an unauthenticated Allocate.
async function realmOf(s) {
  const c = new TurnClient({ host: '127.0.0.1', port: s.turnPort });
  try {
    const r = await c.request(METHOD.ALLOCATE, [A.requestedTransport()]);
    assert.equal(r.errorCode, 401);
    return r.realm;
  } finally { await c.close(); }
}

describe('secrets at rest', () => {
  test('API tokens and TURN key bearers appear nowhere in the data directory (database, WAL, any file)', async () => {
    const f = await fixture({ keepData: true });
    const secrets = [f.token];
    try {
      const k = await createTurnKey(f, 'secret-check');
      secrets.push(k.key);
      secrets.push(createToken(f.data, f.account, 'calls:read'));
      // the same strings as they would be stored by a careless encoder
      const forms = secrets.flatMap((s) => [Buffer.from(s), Buffer.from(s.toUpperCase()), Buffer.from(s, 'utf16le')]);
      // every byte of every file in the data directory, while the server runs (WAL not yet
      // checkpointed) and after it stopped
      const scan = () => {
        const files = readdirSync(f.data).map((n) => join(f.data, n));
        assert.ok(files.some((p) => p.endsWith('turnkey.db')), `files: ${files}`);
        for (const p of files) {
          let bytes;
          try { bytes = readFileSync(p); } catch { continue; } // a directory or a vanished -shm
          for (const b of forms) assert.equal(bytes.indexOf(b), -1, `a secret in plaintext in ${p}`);
        }
      };
      scan();
      // and the stored hashes really are hashes of them (the test looks at the right place)
      assert.equal(Number(sql(f.data, 'select count(*) from tokens')), 2);
      assert.equal(sql(f.data, `select key_hash from turn_keys where uid='${k.uid}'`).length, 64);
      await stopOk(f);
      scan();
    } finally {
      rmSync(f.data, { recursive: true, force: true });
    }
  });
});

describe('configuration: --config file, TURNKEY_* environment, flags', () => {
  let data, conf;
  before(() => {
    data = freshDataDir();
    conf = join(data, 'turnkey.conf');
    // 0600: turnkey refuses a data directory with files others can read (operations.md)
    writeFileSync(conf, '# a comment\nrealm = from-file\nuser-quota = 7\n', { mode: 0o600 });
  });
  after(() => rmSync(data, { recursive: true, force: true }));

  test('default realm is "turnkey"', async () => {
    const s = await startServer({ data });
    try { assert.equal(await realmOf(s), 'turnkey'); } finally { await stopOk(s); }
  });

  test('the file beats the default; TURNKEY_REALM beats the file; --realm beats both', async () => {
    for (const [env, extra, want] of [
      [{}, ['--config', conf], 'from-file'],
      [{ TURNKEY_REALM: 'from-env' }, ['--config', conf], 'from-env'],
      [{ TURNKEY_REALM: 'from-env' }, ['--config', conf, '--realm', 'from-flag'], 'from-flag'],
      [{ TURNKEY_REALM: 'from-env', TURNKEY_CONFIG: conf }, [], 'from-env'],
      [{ TURNKEY_CONFIG: conf }, [], 'from-file'],
    ]) {
      const s = await startServer({ data, env, extraArgs: extra });
      try {
        assert.equal(await realmOf(s), want, `env ${JSON.stringify(env)} args ${extra.join(' ')}`);
      } finally { await stopOk(s); }
    }
  });

  test('a bad value in the file is refused at startup naming the file', async () => {
    const bad = join(data, 'bad.conf');
    writeFileSync(bad, 'user-quota = lots\n', { mode: 0o600 });
    const s = startServer({ data, extraArgs: ['--config', bad] });
    await assert.rejects(s, (e) => /user-quota/.test(e.message) && e.message.includes(bad));
  });
});

describe('--relay-ip and --realm on the wire', () => {
  let f, peer;
  before(async () => {
    // 127.0.0.2 is a local address on Linux (all of 127/8 is): relay there, listen on .1
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--relay-ip', '127.0.0.2', '--realm', 'example.org'] });
    peer = await echoPeer();
  });
  after(async () => { await peer?.close(); const r = await f?.close(); assert.equal(r.code, 0, f.stderr()); });

  test('Allocate reports the --relay-ip address; the peer sees datagrams from it; REALM is --realm', async () => {
    const key = await createTurnKey(f, 'relay-ip');
    const c = new TurnClient({ host: '127.0.0.1', port: f.turnPort });
    try {
      const res = await c.allocate(await mintTurn(f, key));
      assert.equal(c.firstAllocateResponse.realm, 'example.org');
      assert.equal(res.cls, CLASS.SUCCESS, `${res.errorCode} ${res.reason}`);
      assert.equal(res.xorRelayedAddress.address, '127.0.0.2');
      assert.equal(res.xorMappedAddress.address, '127.0.0.1');
      assert.equal((await c.createPermission({ address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
      await c.send({ address: '127.0.0.1', port: peer.port }, Buffer.from('hello'));
      const back = await c.nextData({ timeoutMs: 3000 });
      assert.equal(back.data.toString(), 'hello');
      assert.deepEqual(peer.seen.at(-1).from, { address: '127.0.0.2', port: res.xorRelayedAddress.port });
    } finally { await c.close(); }
  });
});

describe('/healthz', () => {
  let f;
  before(async () => { f = await fixture(); });
  after(async () => { const r = await f?.close(); assert.equal(r.code, 0, f.stderr()); });

  test('GET and HEAD → 200 {"status":"ok"} without authentication; other methods → 405 with Allow', async () => {
    const g = await httpRequest(`${f.url}/healthz`);
    assert.equal(g.status, 200);
    assert.match(g.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(g.json, { status: 'ok' });
    const h = await fetch(`${f.url}/healthz`, { method: 'HEAD' });
    assert.equal(h.status, 200);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await httpRequest(`${f.url}/healthz`, { method, body: '{}' });
      assert.equal(r.status, 405, `${method}: ${r.text}`);
      assert.match(r.headers.get('allow') ?? '', /GET/);
      assert.equal(r.json.errors[0].code, 10005);
    }
  });
});

describe('expired revocations are purged', () => {
  test('a revocation is kept until its credential expires, then deleted from the store', async () => {
    const data = freshDataDir();
    const account = createAccount(data);
    const token = createToken(data, account);
    let s = await startServer({ data, extraArgs: ['--log-level', 'info'] });
    try {
      const f = { ...s, account, token, base: `${s.url}/client/v4` };
      const key = await createTurnKey(f, 'purge');
      const short = await mintTurn(f, key, { ttl: 2 });
      const long = await mintTurn(f, key, { ttl: 600 });
      for (const u of [short.username, long.username]) {
        const r = await fetch(`${s.url}/v1/turn/keys/${key.uid}/credentials/${u}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${key.key}` } });
        assert.equal(r.status, 204);
      }
      assert.equal(Number(sql(data, 'select count(*) from revocations')), 2);
      await sleep(3000); // the short credential has expired
      // the server purges at start and then every minute: a restart makes it run now
      await stopOk(s);
      s = await startServer({ data, extraArgs: ['--log-level', 'info'] });
      let n = 2;
      for (let i = 0; i < 50 && n !== 1; i++) { await sleep(100); n = Number(sql(data, 'select count(*) from revocations')); }
      assert.equal(n, 1, 'the expired revocation was purged, the live one kept');
      assert.equal(Number(sql(data, `select expires from revocations`)), Number(long.username.split(':')[0]));
      for (let i = 0; i < 50 && !/purged 1 expired revocations/.test(s.stderr()); i++) await sleep(100);
      assert.match(s.stderr(), /purged 1 expired revocations/);
    } finally {
      await stopOk(s);
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe('credential plane: unknown key and wrong bearer are indistinguishable', () => {
  let f, key;
  before(async () => { f = await fixture(); key = await createTurnKey(f, 'oracle'); });
  after(async () => { const r = await f?.close(); assert.equal(r.code, 0, f.stderr()); });

  const mintWith = async (uid, bearer) => {
    const t0 = process.hrtime.bigint();
    const r = await fetch(`${f.url}/v1/turn/keys/${uid}/credentials/generate-ice-servers`, {
      method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: '{"ttl":60}',
    });
    const text = await r.text();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { status: r.status, text, ms, headers: Object.fromEntries([...r.headers].filter(([h]) => !['date', 'content-length'].includes(h))) };
  };

  test('same status, body and headers; same timing class (medians of interleaved requests)', async () => {
    const unknownUid = 'f'.repeat(32);
    const wrongBearer = '0'.repeat(64);
    const deleted = await createTurnKey(f, 'gone');
    assert.equal((await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${deleted.uid}`, { method: 'DELETE', token: f.token })).status, 200);
    const a = await mintWith(unknownUid, key.key);
    const b = await mintWith(key.uid, wrongBearer);
    const c = await mintWith(deleted.uid, deleted.key);
    for (const r of [a, b, c]) assert.equal(r.status, 401, r.text);
    assert.equal(b.text, a.text, 'wrong bearer vs unknown key: same body');
    assert.equal(c.text, a.text, 'deleted key vs unknown key: same body');
    assert.deepEqual(b.headers, a.headers);
    assert.deepEqual(c.headers, a.headers);
    // Timing: interleaved so that machine noise hits both alike; only a different class
    // (e.g. a store query for one and not the other: milliseconds) can fail this.
    const ta = [], tb = [];
    for (let i = 0; i < 150; i++) {
      ta.push((await mintWith(unknownUid, key.key)).ms);
      tb.push((await mintWith(key.uid, wrongBearer)).ms);
    }
    const med = (xs) => xs.sort((x, y) => x - y)[xs.length >> 1];
    const ma = med(ta), mb = med(tb);
    assert.ok(Math.abs(ma - mb) < Math.max(1, 0.5 * Math.min(ma, mb)), `medians ${ma.toFixed(3)} ms vs ${mb.toFixed(3)} ms`);
  });
});
