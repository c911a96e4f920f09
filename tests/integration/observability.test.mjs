// Observability (issue 12): GET /metrics in the Prometheus text format (checked by promtool),
// byte counters that move while an allocation is still open, escaped log lines (text and
// JSON) that no customIdentifier, key name or username can forge, the audit log in
// Cloudflare's shape with its filters and pagination, `turnkey audit list`, /readyz, and
// --metrics-listen.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, createTurnKey, mintTurn, httpRequest, cli, createTokenWithId } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const promtool = spawnSync('promtool', ['--version']).status === 0;
const needPromtool = promtool ? {} : { skip: 'promtool missing (Debian package prometheus; scripts/deps.sh test)' };

async function metrics(url) {
  const r = await fetch(`${url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return r.text();
}

// The value of one sample (name + exact label text), or undefined.
function sample(text, name, labels = '') {
  const head = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}

async function waitFor(what, fn, ms = 10000) {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - start > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function promtoolCheck(args, input) {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('metrics', () => {
  let f, key, peer;
  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--log-level', 'info'] });
    key = await createTurnKey(f, 'metrics');
    peer = await echoPeer();
  });
  after(async () => {
    await peer?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  test('promtool check metrics passes; the issue\'s metric families are all there', needPromtool, async () => {
    await mintTurn(f, key); // a minted credential shows in its counter
    const text = await metrics(f.url);
    const r = promtoolCheck(['check', 'metrics'], text);
    assert.equal(r.code, 0, `promtool: ${r.out}`);
    for (const fam of ['turnkey_build_info', 'turnkey_ready', 'turnkey_draining', 'turnkey_stun_requests_total',
      'turnkey_auth_failures_total', 'turnkey_allocations', 'turnkey_allocations_active_1m',
      'turnkey_allocations_created_total', 'turnkey_allocations_ended_total', 'turnkey_permissions',
      'turnkey_channels', 'turnkey_relayed_bytes_total', 'turnkey_relayed_packets_total',
      'turnkey_dropped_packets_total', 'turnkey_peer_denials_total', 'turnkey_credentials_minted_total', 'turnkey_credentials_revoked_total',
      'turnkey_keys', 'turnkey_http_requests_total', 'turnkey_http_request_duration_seconds',
      'turnkey_tls_handshakes_total', 'turnkey_revocation_close_seconds', 'turnkey_process_cpu_seconds_total',
      'turnkey_process_resident_memory_bytes', 'turnkey_process_open_fds']) {
      assert.ok(text.includes(`# TYPE ${fam} `), `family ${fam} missing`);
    }
    assert.equal(sample(text, 'turnkey_ready'), 1);
    assert.equal(sample(text, 'turnkey_keys'), 1);
    assert.equal(sample(text, 'turnkey_credentials_minted_total', 'endpoint="generate-ice-servers"'), 1);
    assert.ok(sample(text, 'turnkey_process_open_fds') > 3);
    assert.ok(sample(text, 'turnkey_process_resident_memory_bytes') > 1e6);
    assert.ok(text.includes('route="/client/v4/accounts/{account_id}/calls/turn_keys",method="POST",code="2xx"'),
      'HTTP requests are labelled by the templated route, never the ids');
    assert.ok(!text.includes(f.account), 'no account id in any label');
  });

  test('a long allocation\'s bytes move in /metrics while it is open; its end is one log line', async () => {
    const cred = await mintTurn(f, key, { prefix: 'live' });
    const c = new TurnClient({ port: f.turnPort });
    const a = await c.allocate(cred);
    assert.equal(a.cls, CLASS.SUCCESS);
    assert.equal((await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
    const before0 = await metrics(f.url);
    const base = sample(before0, 'turnkey_relayed_bytes_total', 'leg="peer",direction="tx"') ?? 0;
    const payload = Buffer.alloc(100, 7);
    let last = base;
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < 20; i++) await c.sendChannel(0x4000, payload);
      // published by the relay thread at least once a second
      last = await waitFor(`peer-tx bytes >= ${base + round * 2000}`, async () => {
        const t = await metrics(f.url);
        const v = sample(t, 'turnkey_relayed_bytes_total', 'leg="peer",direction="tx"');
        const live = sample(t, 'turnkey_allocations', 'transport="udp",family="ipv4"');
        return live >= 1 && v >= base + round * 2000 && v; /* counted while still open */
      });
    }
    assert.ok(last >= base + 4000);
    const t = await metrics(f.url);
    assert.ok(sample(t, 'turnkey_relayed_bytes_total', 'leg="client",direction="rx"') >= 40 * 104, 'client leg counts ChannelData framing');
    assert.ok(sample(t, 'turnkey_allocations_active_1m') >= 1);
    assert.ok(!t.includes(cred.username) && !t.includes('live-'), 'no username or customIdentifier in /metrics');
    const cid = cred.username.split(':').find((x) => x.startsWith('live-'));
    assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS);
    await c.close();
    const line = await waitFor('the allocation-ended log line', () =>
      f.stderr().split('\n').find((l) => l.includes('msg="allocation ended"') && l.includes(`custom_id="${cid}"`)));
    assert.match(line, new RegExp(`key="${key.uid}"`));
    assert.match(line, / reason="client" /);
    const tx = Number(line.match(/ peer_tx_bytes=(\d+)/)[1]);
    assert.ok(tx >= 4000, `peer_tx_bytes ${tx}`);
    await waitFor('allocations ended by the client', async () =>
      sample(await metrics(f.url), 'turnkey_allocations_ended_total', 'reason="client"') >= 1);
  });

  test('authentication failures are counted by reason and logged escaped (a username cannot forge a line)', async () => {
    const evil = 'x\n2026-01-01T00:00:00.000Z level=error module="main" msg="forged"';
    const c = new TurnClient({ port: f.turnPort });
    const r = await c.allocate({ username: evil, password: 'nope' });
    assert.equal(r.cls, CLASS.ERROR);
    assert.equal(r.errorCode, 401);
    await c.close();
    const line = await waitFor('the auth-failure line', () =>
      f.stderr().split('\n').find((l) => l.includes('msg="authentication failed"') && l.includes('forged')));
    assert.ok(line.includes('username="x\\n2026-01-01T00:00:00.000Z level=error module=\\"main\\" msg=\\"forged\\""'), line);
    assert.ok(!f.stderr().split('\n').some((l) => l.startsWith('2026-01-01T00:00:00.000Z')), 'no forged line');
    await waitFor('the auth-failure counters', async () => {
      const t = await metrics(f.url);
      return sample(t, 'turnkey_auth_failures_total', 'reason="bad_credential"') >= 1 &&
        sample(t, 'turnkey_stun_requests_total', 'transport="udp",method="allocate",result="401"') >= 2;
    });
  });

  test('a credential of a deleted key counts as key_deleted, one of a key that never existed as unknown_key', async () => {
    const gone = await createTurnKey(f, 'to-delete');
    const cred = await mintTurn(f, gone, { prefix: 'gone' });
    const c = new TurnClient({ port: f.turnPort });
    assert.equal((await c.allocate(cred)).cls, CLASS.SUCCESS, 'control: the key works before the delete');
    assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS);
    await c.close();
    const del = await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${gone.uid}`, { method: 'DELETE', token: f.token });
    assert.equal(del.status, 200);
    const t0 = await metrics(f.url);
    const deleted0 = sample(t0, 'turnkey_auth_failures_total', 'reason="key_deleted"');
    const unknown0 = sample(t0, 'turnkey_auth_failures_total', 'reason="unknown_key"');
    const d = new TurnClient({ port: f.turnPort });
    const r = await d.allocate(cred);
    await d.close();
    assert.equal(r.errorCode, 401);
    await waitFor('the key_deleted counter', async () =>
      sample(await metrics(f.url), 'turnkey_auth_failures_total', 'reason="key_deleted"') >= deleted0 + 1);
    assert.equal(sample(await metrics(f.url), 'turnkey_auth_failures_total', 'reason="unknown_key"'), unknown0,
      'not counted as an unknown key');
    // the same username shape naming a key id that never existed
    const fake = { username: cred.username.replace(gone.uid, '0123456789abcdef0123456789abcdef'), password: cred.password };
    const u = new TurnClient({ port: f.turnPort });
    assert.equal((await u.allocate(fake)).errorCode, 401);
    await u.close();
    await waitFor('the unknown_key counter', async () =>
      sample(await metrics(f.url), 'turnkey_auth_failures_total', 'reason="unknown_key"') >= unknown0 + 1);
  });

  test('the alert rules of docs/operations.md pass promtool check rules', needPromtool, () => {
    const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const m = doc.match(/<!-- alert-rules -->\s*```yaml\n([\s\S]*?)```/);
    assert.ok(m, 'docs/operations.md has an alert-rules yaml block');
    const dir = mkdtempSync(join(tmpdir(), 'turnkey-rules-'));
    try {
      writeFileSync(join(dir, 'rules.yml'), m[1]);
      const r = promtoolCheck(['check', 'rules', join(dir, 'rules.yml')]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /SUCCESS: [1-9]\d* rules found/);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

describe('audit log', () => {
  let f;
  before(async () => { f = await fixture({ extraArgs: ['--log-format', 'json', '--log-level', 'info'] }); });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  const audit = (q = '', token = f.token) => httpRequest(`${f.base}/accounts/${f.account}/audit_logs${q}`, { token });

  test('key create / rename / delete and a revocation are recorded in Cloudflare\'s shape, never a secret', async () => {
    const tricky = 'k" level=error msg="forged';
    const key = await createTurnKey(f, tricky);
    const ren = await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${key.uid}`, { method: 'PUT', token: f.token, body: { name: 'renamed' } });
    assert.equal(ren.status, 200);
    const cred = await mintTurn(f, key, { prefix: 'aud' });
    const rv = await fetch(`${f.url}/v1/turn/keys/${key.uid}/credentials/${encodeURIComponent(cred.username)}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${key.key}` } });
    assert.equal(rv.status, 204);
    const del = await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${key.uid}`, { method: 'DELETE', token: f.token });
    assert.equal(del.status, 200);
    const r = await audit();
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.success, true);
    const recs = r.json.result;
    // newest first: delete, revoke, update, create (+ the CLI's account and token records)
    assert.deepEqual(recs.slice(0, 4).map((x) => x.action.type), ['delete', 'revoke', 'update', 'create']);
    const [d, v, u, c] = recs;
    for (const x of [d, u, c]) assert.deepEqual(x.resource, { id: key.uid, type: 'turn_key' });
    assert.deepEqual(v.resource, { id: cred.username, type: 'turn_credential' });
    assert.equal(c.actor.type, 'user');
    assert.match(c.actor.id, /^[0-9a-f]{32}$/);
    assert.equal(c.actor.ip, '127.0.0.1');
    assert.equal(c.interface, 'API');
    assert.equal(c.action.result, true);
    assert.equal(c.owner.id, f.account);
    assert.match(c.when, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.deepEqual(c.newValueJson, { uid: key.uid, name: tricky });
    assert.deepEqual(u.oldValueJson, { uid: key.uid, name: tricky });
    assert.deepEqual(u.newValueJson, { uid: key.uid, name: 'renamed' });
    assert.deepEqual(d.oldValueJson, { uid: key.uid, name: 'renamed' });
    assert.equal(v.actor.type, 'turn_key');
    assert.ok(!r.text.includes(key.key), 'the bearer key is never in the audit log');
    assert.ok(!r.text.includes(cred.password), 'no credential password');
    assert.ok(!r.text.includes(f.token), 'no API token');
    assert.equal(r.json.result_info.total_count, recs.length);
    // the JSON log: every stderr line is one object; the key name stays a value
    const lines = f.stderr().split('\n').filter(Boolean);
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l}`);
    const change = lines.map((l) => JSON.parse(l)).find((o) => o.msg === 'control-plane change' && o.action === 'create' && o.resource_type === 'turn_key');
    assert.ok(change && change.new.includes('forged'), 'the change is logged with the name as data');
  });

  test('filters: action.type, resource.id, id, since/before; pagination page/per_page; direction', async () => {
    const k1 = await createTurnKey(f, 'p1');
    const k2 = await createTurnKey(f, 'p2');
    const all = (await audit('?per_page=1000')).json;
    const creates = (await audit('?action.type=create&per_page=1000')).json.result;
    assert.ok(creates.length >= 2 && creates.every((x) => x.action.type === 'create'));
    const byRes = (await audit(`?resource.id=${k2.uid}`)).json.result;
    assert.deepEqual(byRes.map((x) => x.resource.id), [k2.uid]);
    const one = (await audit(`?id=${byRes[0].id}`)).json.result;
    assert.equal(one.length, 1);
    const p1 = (await audit('?per_page=1&page=1')).json;
    const p2 = (await audit('?per_page=1&page=2')).json;
    assert.equal(p1.result.length, 1);
    assert.deepEqual(p1.result_info, { page: 1, per_page: 1, count: 1, total_count: all.result.length, total_pages: all.result.length });
    assert.equal(p2.result[0].id, all.result[1].id);
    const asc = (await audit('?direction=asc&per_page=1000')).json.result;
    assert.deepEqual(asc.map((x) => x.id), all.result.map((x) => x.id).reverse());
    const t1 = all.result.find((x) => x.resource.id === k1.uid).when;
    const since = (await audit(`?since=${encodeURIComponent(t1)}&per_page=1000`)).json.result;
    assert.ok(since.every((x) => x.when >= t1) && since.some((x) => x.resource.id === k2.uid));
    const beforeT = (await audit(`?before=${encodeURIComponent(t1)}&per_page=1000`)).json.result;
    assert.ok(beforeT.every((x) => x.when < t1) && !beforeT.some((x) => x.resource.id === k1.uid));
    for (const bad of ['?per_page=0', '?per_page=1001', '?page=0', '?since=yesterday', '?direction=up']) {
      const r = await audit(bad);
      assert.equal(r.status, 400, bad);
      assert.equal(r.json.errors[0].code, 10001);
    }
  });

  test('permissions: audit:read reads; another account\'s token gets 403; turnkey audit list shows the CLI\'s changes', async () => {
    const { token } = createTokenWithId(f.data, f.account, 'audit:read');
    assert.equal((await audit('', token)).status, 200);
    const denied = await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys`, { token });
    assert.equal(denied.status, 403, 'audit:read alone cannot read keys');
    const other = cli(['account', 'create', '--data', f.data, '--name', 'other']).stdout.trim();
    const { token: otherTok } = createTokenWithId(f.data, other, 'calls:read');
    assert.equal((await audit('', otherTok)).status, 403);
    const r = cli(['audit', 'list', '--data', f.data, '--account', f.account, 'action.type=create']);
    assert.equal(r.code, 0, r.stderr);
    const recs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(recs.some((x) => x.resource.type === 'account' && x.actor.type === 'admin' && x.interface === 'CLI'));
    assert.ok(recs.some((x) => x.resource.type === 'token' && x.newValueJson.permissions === 'audit:read'));
    assert.ok(recs.every((x) => x.action.type === 'create'));
    assert.ok(!r.stdout.includes(token), 'the token itself is not recorded');
  });
});

describe('readiness and --metrics-listen', () => {
  test('/readyz 200 with store and listeners; --metrics-listen serves only metrics and health', async () => {
    const f = await fixture({ extraArgs: ['--metrics-listen', '127.0.0.1:0'] });
    try {
      const ready = await fetch(`${f.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: 'ok' });
      const m = f.stdout().match(/metrics listening on ([0-9.]+:\d+)/);
      assert.ok(m, f.stdout());
      const mu = `http://${m[1]}`;
      const t = await metrics(mu);
      assert.equal(sample(t, 'turnkey_ready'), 1);
      assert.equal((await fetch(`${mu}/readyz`)).status, 200);
      const api = await fetch(`${mu}/client/v4/accounts/${f.account}/calls/turn_keys`, { headers: { authorization: `Bearer ${f.token}` } });
      assert.equal(api.status, 400, 'the metrics listener does not serve the API');
    } finally {
      const r = await f.close();
      assert.equal(r.code, 0, f.stderr());
    }
  });
});
