// Shared-secret credentials per TURN key (issue 15): coturn's use-auth-secret scheme, as the
// apps compute it themselves. The API and CLI manage the secrets; coturn's own client
// (turnutils_uclient -W) and lib/stun.mjs with the apps' documented formulas relay with them.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { fixture, startServer, createTurnKey, httpRequest, expectEnvelope, cli, cliTimed, createToken } from './lib/server.mjs';
import { freeUdpPort, uclient } from './lib/tools.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Math.floor(Date.now() / 1000);
const b64hmac = (alg, secret, msg) => createHmac(alg, secret).update(msg).digest('base64');

function totals(out) {
  const last = [...out.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/gm)].at(-1);
  const lost = out.match(/Total lost packets (\d+)/);
  return [last ? Number(last[1]) : -1, last ? Number(last[2]) : -1, lost ? Number(lost[1]) : -1];
}

async function metric(url, name, labels) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

// Allocates with (username, password) over transport, permits the echo peer and checks one
// message comes back. Returns the client (open) and the Allocate answer.
async function relayWith(port, peer, username, password, transport = 'udp') {
  const c = new TurnClient({ port, transport, timeoutMs: 3000 });
  await c.ready;
  const res = await c.allocate({ username, password });
  if (res.cls !== CLASS.SUCCESS) return { c, res, echoed: false };
  const perm = await c.createPermission({ address: peer.address, port: peer.port });
  assert.equal(perm.cls, CLASS.SUCCESS, `CreatePermission: ${perm.errorCode}`);
  return { c, res, echoed: await echoes(c, peer) };
}

async function echoes(c, peer, waitMs = 1500) {
  const msg = randomBytes(16);
  await c.send({ address: peer.address, port: peer.port }, msg);
  try {
    const d = await c.nextData({ timeoutMs: waitMs });
    return Buffer.compare(d.data, msg) === 0;
  } catch { return false; }
}

describe('shared secrets per TURN key', () => {
  let f, srv, key, other, peer, peerPort, upeer;
  const api = (path, opts = {}) => httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys${path}`, { token: f.token, ...opts });
  const addSecret = async (k, body = {}) => expectEnvelope(await api(`/${k.uid}/shared_secrets`, { method: 'POST', body }), 201).result;

  before(async () => {
    // Keys exist before --shared-secret-keys can name one: make them, then restart on the same data.
    f = await fixture({ keepData: true });
    key = await createTurnKey(f, 'apps');
    other = await createTurnKey(f, 'other');
    await f.stop();
    srv = await startServer({ data: f.data, extraArgs: ['--allow-peer', '127.0.0.1/32', '--user-quota', '1000', '--shared-secret-keys', key.uid] });
    f = { ...f, ...srv, base: `${srv.url}/client/v4` };
    peer = await echoPeer();
    peerPort = await freeUdpPort();
    upeer = spawn('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)], { stdio: 'ignore' });
    await sleep(300);
  });
  after(async () => {
    upeer?.kill('SIGTERM');
    await peer?.close();
    const r = await srv?.stop();
    rmSync(f.data, { recursive: true, force: true });
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${srv.stderr()}`);
  });

  test('POST shows the secret once; GET never; bad bodies are refused', async () => {
    const s = await addSecret(key);
    assert.match(s.id, /^[0-9a-f]{32}$/);
    assert.match(s.secret, /^[0-9a-f]{64}$/);
    assert.deepEqual([s.key_id, s.algorithm, s.max_ttl, s.username_suffix], [key.uid, 'sha1', 86400, `~${key.uid}`]);
    const list = expectEnvelope(await api(`/${key.uid}/shared_secrets`), 200).result;
    assert.ok(list.some((x) => x.id === s.id));
    for (const x of list) assert.equal(x.secret, undefined);
    const one = expectEnvelope(await api(`/${key.uid}/shared_secrets/${s.id}`), 200).result;
    assert.equal(one.secret, undefined);
    assert.equal(one.id, s.id);
    const s2 = await addSecret(key, { algorithm: 'sha256', max_ttl: 3600 });
    assert.deepEqual([s2.algorithm, s2.max_ttl], ['sha256', 3600]);
    expectEnvelope(await api(`/${key.uid}/shared_secrets`, { method: 'POST', body: { algorithm: 'md5' } }), 400, 10001);
    expectEnvelope(await api(`/${key.uid}/shared_secrets`, { method: 'POST', body: { max_ttl: 10 } }), 400, 10001);
    expectEnvelope(await api(`/${key.uid}/shared_secrets`, { method: 'POST', body: { max_ttl: 'x' } }), 400, 10001);
    expectEnvelope(await api(`/${'0'.repeat(32)}/shared_secrets`, { method: 'POST', body: {} }), 404, 10004);
    expectEnvelope(await api(`/${key.uid}/shared_secrets/${'0'.repeat(32)}`), 404, 10004);
    expectEnvelope(await api(`/${key.uid}/shared_secrets/nothex`), 400);
    expectEnvelope(await api(`/${key.uid}/shared_secrets`, { method: 'PUT', body: {} }), 405);
    // calls:read reads but cannot write
    const ro = createToken(f.data, f.account, 'calls:read');
    expectEnvelope(await api(`/${key.uid}/shared_secrets`, { token: ro }), 200);
    expectEnvelope(await api(`/${key.uid}/shared_secrets`, { token: ro, method: 'POST', body: {} }), 403, 10000);
    expectEnvelope(await api(`/${key.uid}/shared_secrets/${s.id}`, { token: ro, method: 'DELETE' }), 403, 10000);
    // the audit log has both creates, never a secret
    const audit = await httpRequest(`${f.base}/accounts/${f.account}/audit_logs?action.type=create`, { token: f.token });
    const rows = expectEnvelope(audit, 200).result.filter((r) => r.resource?.type === 'turn_key_shared_secret');
    assert.ok(rows.some((r) => r.resource.id === s.id) && rows.some((r) => r.resource.id === s2.id), audit.text);
    assert.ok(!audit.text.includes(s.secret) && !audit.text.includes(s2.secret), 'no secret in the audit log');
    for (const id of [s.id, s2.id]) expectEnvelope(await api(`/${key.uid}/shared_secrets/${id}`, { method: 'DELETE' }), 200);
  });

  test('at most 5 secrets per key', async () => {
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await addSecret(other));
    expectEnvelope(await api(`/${other.uid}/shared_secrets`, { method: 'POST', body: {} }), 400, 10002);
    for (const s of made) expectEnvelope(await api(`/${other.uid}/shared_secrets/${s.id}`, { method: 'DELETE' }), 200);
    assert.deepEqual(expectEnvelope(await api(`/${other.uid}/shared_secrets`), 200).result, []);
  });

  for (const [name, flags, tls] of [['UDP', [], false], ['TCP', ['-t'], false], ['TLS', ['-t', '-S'], true]]) {
    test(`turnutils_uclient -W relays over ${name} (the username names the key)`, async () => {
      const s = await addSecret(key);
      const args = [...flags, '-c', '-n', '10', '-l', '100', '-e', '127.0.0.1', '-r', String(peerPort),
        '-u', `alice~${key.uid}`, '-W', s.secret, '-p', String(tls ? f.tlsPort : f.turnPort), '127.0.0.1'];
      const r = await uclient(args, 90000);
      assert.equal(r.code, 0, r.out.slice(-2000));
      assert.deepEqual(totals(r.out), [10, 10, 0]);
      // the same with the wrong secret is refused
      const bad = await uclient([...args.slice(0, args.indexOf('-W') + 1), 'f'.repeat(64), ...args.slice(args.indexOf('-W') + 2)], 30000);
      assert.notEqual(bad.code, 0);
      expectEnvelope(await api(`/${key.uid}/shared_secrets/${s.id}`, { method: 'DELETE' }), 200);
    });
  }

  test('turnutils_uclient -W with a username naming no key: the --shared-secret-keys fallback', async () => {
    const s = await addSecret(key);
    const r = await uclient(['-c', '-n', '10', '-l', '100', '-e', '127.0.0.1', '-r', String(peerPort),
      '-u', 'bob', '-W', s.secret, '-p', String(f.turnPort), '127.0.0.1']);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.deepEqual(totals(r.out), [10, 10, 0]);
    expectEnvelope(await api(`/${key.uid}/shared_secrets/${s.id}`, { method: 'DELETE' }), 200);
  });

  test('Nextcloud Talk and Matrix Synapse credentials relay (their documented formulas)', async () => {
    const s = await addSecret(key);
    // Nextcloud Talk (nextcloud/spreed lib/Config.php, getTurnSettings): username =
    // (time() + 86400) . ':' . a 16-character random string; password =
    // base64_encode(hash_hmac('sha1', username, secret, true)).
    const nc = `${now() + 86400}:${randomBytes(12).toString('base64url').slice(0, 16)}`;
    const a = await relayWith(f.turnPort, peer, nc, b64hmac('sha1', s.secret, nc));
    assert.equal(a.res.cls, CLASS.SUCCESS, `Nextcloud Allocate: ${a.res.errorCode}`);
    assert.ok(a.echoed, 'Nextcloud credential relays');
    await a.c.close();
    // Matrix Synapse (synapse/rest/client/voip.py, docs/turn-howto.md): expiry =
    // (now_ms + turn_user_lifetime (default 1 h)) / 1000; username = "%d:%s" % (expiry,
    // the user id); password = base64(HMAC-SHA1(turn_shared_secret, username)).
    const syn = `${Math.floor((Date.now() + 3600 * 1000) / 1000)}:@alice:example.org`;
    for (const transport of ['udp', 'tcp', 'tls']) {
      const b = await relayWith(transport === 'tls' ? f.tlsPort : f.turnPort, peer, syn, b64hmac('sha1', s.secret, syn), transport);
      assert.equal(b.res.cls, CLASS.SUCCESS, `Synapse Allocate over ${transport}: ${b.res.errorCode}`);
      assert.ok(b.echoed, `Synapse credential relays over ${transport}`);
      await b.c.close();
    }
    // a wrong password or an expired username is refused with 401
    const w = await relayWith(f.turnPort, peer, nc, b64hmac('sha1', 'nope', nc));
    assert.deepEqual([w.res.cls, w.res.errorCode], [CLASS.ERROR, 401]);
    await w.c.close();
    const old = `${now() - 5}:x`;
    const e = await relayWith(f.turnPort, peer, old, b64hmac('sha1', s.secret, old));
    assert.deepEqual([e.res.cls, e.res.errorCode], [CLASS.ERROR, 401]);
    await e.c.close();
    expectEnvelope(await api(`/${key.uid}/shared_secrets/${s.id}`, { method: 'DELETE' }), 200);
  });

  test('the HMAC-SHA256 variant; a secret of a key not named and not in the fallback is refused', async () => {
    const s = await addSecret(key, { algorithm: 'sha256' });
    const u = `${now() + 600}:carol~${key.uid}`;
    const a = await relayWith(f.turnPort, peer, u, b64hmac('sha256', s.secret, u));
    assert.equal(a.res.cls, CLASS.SUCCESS, `sha256 Allocate: ${a.res.errorCode}`);
    assert.ok(a.echoed);
    await a.c.close();
    const sha1 = await relayWith(f.turnPort, peer, u, b64hmac('sha1', s.secret, u));
    assert.deepEqual([sha1.res.cls, sha1.res.errorCode], [CLASS.ERROR, 401]);
    await sha1.c.close();
    const o = await addSecret(other);
    const plain = `${now() + 600}:dave`;
    const n = await relayWith(f.turnPort, peer, plain, b64hmac('sha1', o.secret, plain));
    assert.deepEqual([n.res.cls, n.res.errorCode], [CLASS.ERROR, 401], 'other is not in --shared-secret-keys');
    await n.c.close();
    const named = `${now() + 600}:dave~${other.uid}`;
    const y = await relayWith(f.turnPort, peer, named, b64hmac('sha1', o.secret, named));
    assert.equal(y.res.cls, CLASS.SUCCESS, 'named, the same secret works');
    await y.c.close();
    for (const [k, x] of [[key, s], [other, o]]) expectEnvelope(await api(`/${k.uid}/shared_secrets/${x.id}`, { method: 'DELETE' }), 200);
  });

  test('an expiry beyond the secret\'s max_ttl is refused (coturn has no cap)', async () => {
    const s = await addSecret(key, { max_ttl: 3600 });
    const ok = `${now() + 3000}:eve~${key.uid}`;
    const a = await relayWith(f.turnPort, peer, ok, b64hmac('sha1', s.secret, ok));
    assert.equal(a.res.cls, CLASS.SUCCESS, `inside the cap: ${a.res.errorCode}`);
    await a.c.close();
    for (const ahead of [3600 + 600, 86400, 10 * 365 * 86400]) {
      const far = `${now() + ahead}:eve~${key.uid}`;
      const b = await relayWith(f.turnPort, peer, far, b64hmac('sha1', s.secret, far));
      assert.deepEqual([b.res.cls, b.res.errorCode], [CLASS.ERROR, 401], `expiry now+${ahead}`);
      await b.c.close();
    }
    expectEnvelope(await api(`/${key.uid}/shared_secrets/${s.id}`, { method: 'DELETE' }), 200);
  });

  test('deleting the secret ends its allocations within 2 s; the other secret\'s stay', async () => {
    const s = await addSecret(key), keep = await addSecret(key);
    const u = `${now() + 600}:frank~${key.uid}`;
    const gone = await relayWith(f.turnPort, peer, u, b64hmac('sha1', s.secret, u));
    const kept = await relayWith(f.turnPort, peer, u, b64hmac('sha1', keep.secret, u));
    assert.ok(gone.echoed && kept.echoed, 'both relay before the delete');
    const before = await metric(f.url, 'turnkey_allocations_ended_total', 'reason="revoked"');
    const t0 = Date.now();
    expectEnvelope(await api(`/${key.uid}/shared_secrets/${s.id}`, { method: 'DELETE' }), 200);
    while (await metric(f.url, 'turnkey_allocations_ended_total', 'reason="revoked"') < before + 1) {
      assert.ok(Date.now() - t0 < 2000, 'the allocation ended within 2 s');
      await sleep(50);
    }
    assert.equal(await echoes(gone.c, peer, 800), false, 'the deleted secret\'s allocation relays no more');
    assert.ok(await echoes(kept.c, peer), 'the other secret\'s allocation still relays');
    const again = await gone.c.refresh(600);
    assert.deepEqual([again.cls, again.errorCode], [CLASS.ERROR, 401]);
    await gone.c.close();
    await kept.c.close();
    expectEnvelope(await api(`/${key.uid}/shared_secrets/${keep.id}`, { method: 'DELETE' }), 200);
  });

  test('deleting the key deletes its secrets and ends their allocations', async () => {
    const k = await createTurnKey(f, 'doomed');
    const s = await addSecret(k);
    const u = `${now() + 600}:gina~${k.uid}`;
    const a = await relayWith(f.turnPort, peer, u, b64hmac('sha1', s.secret, u));
    assert.ok(a.echoed);
    expectEnvelope(await api(`/${k.uid}`, { method: 'DELETE' }), 200);
    const t0 = Date.now();
    while (await echoes(a.c, peer, 300)) assert.ok(Date.now() - t0 < 2000, 'the allocation ended within 2 s');
    const b = await relayWith(f.turnPort, peer, u, b64hmac('sha1', s.secret, u));
    assert.deepEqual([b.res.cls, b.res.errorCode], [CLASS.ERROR, 401]);
    await a.c.close();
    await b.c.close();
    expectEnvelope(await api(`/${k.uid}/shared_secrets`), 404, 10004);
  });

  test('CLI: key secret add prints the secret on its last line; list; delete; a running server follows', async () => {
    const add = cli(['key', 'secret', 'add', '--data', f.data, '--account', f.account, '--key', key.uid, '--algorithm', 'sha256']);
    assert.equal(add.code, 0, add.stderr);
    const secret = add.stdout.trim().split('\n').pop();
    assert.match(secret, /^[0-9a-f]{64}$/);
    const id = add.stdout.match(/shared secret ([0-9a-f]{32})/)[1];
    const list = cli(['key', 'secret', 'list', '--data', f.data, '--account', f.account, '--key', key.uid]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^${id}\\s+sha256\\s+86400\\s`, 'm'));
    assert.ok(!list.stdout.includes(secret), 'list never shows the secret');
    // the server learns the CLI's secret through the change feed (poll: 1 s)
    const u = `${now() + 600}:hank~${key.uid}`;
    let a;
    for (const t0 = Date.now(); ; await sleep(200)) {
      a = await relayWith(f.turnPort, peer, u, b64hmac('sha256', secret, u));
      if (a.res.cls === CLASS.SUCCESS || Date.now() - t0 > 5000) break;
      await a.c.close();
    }
    assert.equal(a.res.cls, CLASS.SUCCESS, 'the CLI-made secret authenticates');
    const del = cli(['key', 'secret', 'delete', '--data', f.data, '--account', f.account, '--key', key.uid, id]);
    assert.equal(del.code, 0, del.stderr);
    const t0 = Date.now();
    while (await echoes(a.c, peer, 300)) assert.ok(Date.now() - t0 < 3000, 'the feed ended the allocation');
    await a.c.close();
    assert.equal(cli(['key', 'secret', 'delete', '--data', f.data, '--account', f.account, '--key', key.uid, id]).code, 1);
    assert.equal(cli(['key', 'secret', 'add', '--data', f.data, '--account', f.account, '--key', key.uid, '--algorithm', 'md5']).code, 2);
    assert.equal(cli(['key', 'secret', 'add', '--data', f.data, '--account', f.account]).code, 2);
    assert.equal(cli(['key', 'secret', 'frob', '--data', f.data, '--account', f.account, '--key', key.uid]).code, 2);
    const audit = cli(['audit', 'list', '--data', f.data, '--account', f.account]);
    assert.ok(audit.stdout.includes(id) && !audit.stdout.includes(secret), 'audited without the secret');
  });

  test('--shared-secret-keys is validated at start', async () => {
    for (const bad of ['nothex', `${key.uid},${key.uid},${key.uid},${key.uid}`, `${key.uid},`]) {
      const r = cliTimed(['serve', '--data', f.data, '--api-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0', '--tls-listen', '127.0.0.1:0', '--shared-secret-keys', bad]);
      assert.notEqual(r.code, 0, bad);
      assert.match(r.stderr, /--shared-secret-keys/);
    }
  });
});
