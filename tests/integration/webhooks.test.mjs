// Webhooks (issue 14 §5): allocation.ended events POSTed to a receiver on loopback (a node
// http server here) with a valid HMAC signature and a unique id; a receiver that answers 500
// and then is down for a while gets every event once it is back; events queued when turnkey
// stops (SIGTERM, and kill -9 after the batch is written) are delivered after the restart, on
// SQLite and on PostgreSQL; two nodes sharing PostgreSQL deliver each event once; the per-
// account queue cap and the give-up age drop (and count) events; a destination the peer
// policy denies is never contacted; bad URLs are refused with 400 and change nothing; the
// webhook metrics pass promtool.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import {
  fixture, createTurnKey, mintTurn, httpRequest, createToken, createAccount, freshDataDir, startServer,
} from './lib/server.mjs';
import { TurnClient, CLASS } from './lib/stun.mjs';
import { startPostgres } from './lib/pg.mjs';
import { freePort, accountAndToken, startNode } from './lib/cluster.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = 30000) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last?.ok ?? last) return last;
    if (Date.now() - start > ms) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

// A webhook receiver on 127.0.0.1: mode 'ok' answers 204 and records the event, 'fail'
// answers 500 (not recorded); down() closes the port, up() listens on it again.
async function receiver() {
  const r = { events: [], hits: 0, failed: 0, mode: 'ok', port: 0 };
  r.server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      r.hits++;
      if (r.mode === 'fail') { r.failed++; res.writeHead(500); res.end('try later'); return; }
      r.events.push({ headers: req.headers, method: req.method, url: req.url, body, json: JSON.parse(body) });
      res.writeHead(204);
      res.end();
    });
  });
  r.up = () => new Promise((ok) => r.server.listen(r.port, '127.0.0.1', () => { r.port = r.server.address().port; ok(); }));
  r.down = () => new Promise((ok) => { r.server.close(() => ok()); r.server.closeAllConnections(); });
  r.url = (path = '/hook') => `http://127.0.0.1:${r.port}${path}`;
  r.ids = () => r.events.map((e) => e.json.id);
  await r.up();
  return r;
}

// The receiver's side of the signature check (as docs/usage.md shows it).
function verify(secret, ev) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(ev.headers['turnkey-signature'] ?? '');
  if (!m) return false;
  const mac = createHmac('sha256', secret).update(`${m[1]}.${ev.body}`).digest('hex');
  return timingSafeEqual(Buffer.from(mac), Buffer.from(m[2])) && Math.abs(Date.now() / 1000 - Number(m[1])) < 300;
}

async function metrics(url) {
  const r = await fetch(`${url}/metrics`);
  assert.equal(r.status, 200);
  return r.text();
}
function sample(text, name, labels = '') {
  const head = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}
const queued = async (url) => sample(await metrics(url), 'turnkey_webhook_queue_events');

// One allocation that opens and ends (Refresh 0) on the relay at port: one allocation.ended.
async function endedAllocation(port, cred) {
  const c = new TurnClient({ port });
  await c.ready;
  assert.equal((await c.allocate(cred)).cls, CLASS.SUCCESS);
  assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS);
  await c.close();
}

const putHook = (base, account, token, body) =>
  httpRequest(`${base}/accounts/${account}/calls/webhook`, { method: 'PUT', token, body });

const fast = ['--allow-peer', '127.0.0.1/32', '--webhook-retry-max', '1', '--webhook-timeout', '2'];

describe('webhooks', () => {
  let f, key, rx, secret;
  before(async () => {
    rx = await receiver();
    f = await fixture({ extraArgs: fast });
    key = await createTurnKey(f, 'hooks');
  });
  after(async () => {
    await rx?.down();
    const r = await f?.close();
    assert.equal(r?.code, 0, `server exit status — stderr:\n${f?.stderr()}`);
  });

  test('PUT creates the webhook (201, the secret once), GET shows it without the secret; audit-logged', async () => {
    const none = await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { token: f.token });
    assert.equal(none.status, 404, none.text);
    const r = await putHook(f.base, f.account, f.token, { url: rx.url() });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.success, true);
    assert.match(r.json.result.secret, /^[0-9a-f]{64}$/);
    assert.deepEqual(r.json.result.events, ['allocation.ended', 'budget.threshold', 'budget.exceeded']);
    secret = r.json.result.secret;
    const g = await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { token: f.token });
    assert.equal(g.status, 200, g.text);
    assert.equal(g.json.result.url, rx.url());
    assert.equal(g.json.result.secret, undefined);
    // a second PUT keeps the secret (and says nothing of it)
    const again = await putHook(f.base, f.account, f.token, { url: rx.url(), events: ['allocation.ended'] });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.result.secret, undefined);
    assert.deepEqual(again.json.result.events, ['allocation.ended']);
    const audit = await httpRequest(`${f.base}/accounts/${f.account}/audit_logs?resource.id=${f.account}&direction=asc`, { token: f.token });
    assert.equal(audit.status, 200, audit.text);
    const hooks = audit.json.result.filter((a) => a.resource.type === 'webhook');
    assert.deepEqual(hooks.map((a) => a.action.type), ['create', 'update']);
    assert.ok(!audit.text.includes(secret), 'the audit log never holds the secret');
  });

  test('allocation.ended arrives signed, with a unique id and the allocation\'s figures', async () => {
    const creds = [];
    for (let i = 0; i < 3; i++) {
      const cred = await mintTurn(f, key, { prefix: 'hook' });
      creds.push(cred);
      await endedAllocation(f.turnPort, cred);
    }
    await waitFor('three events', () => rx.events.length >= 3);
    assert.equal(rx.events.length, 3);
    const ids = new Set(rx.ids());
    assert.equal(ids.size, 3, 'ids are unique');
    for (const ev of rx.events) {
      assert.equal(ev.method, 'POST');
      assert.equal(ev.url, '/hook');
      assert.match(ev.headers['content-type'], /^application\/json/);
      assert.ok(verify(secret, ev), `signature: ${ev.headers['turnkey-signature']}`);
      assert.ok(!verify('0'.repeat(64), ev), 'another secret does not verify');
      assert.match(ev.json.id, /^[0-9a-f]{32}$/);
      assert.equal(ev.headers['turnkey-event-id'], ev.json.id);
      assert.equal(ev.headers['turnkey-event-type'], 'allocation.ended');
      assert.equal(ev.json.type, 'allocation.ended');
      assert.equal(ev.json.accountId, f.account);
      assert.ok(Math.abs(Date.parse(ev.json.created) - Date.now()) < 60000, ev.json.created);
      const d = ev.json.data;
      assert.equal(d.keyId, key.uid);
      assert.equal(d.reason, 'client');
      assert.equal(d.transport, 'udp');
      assert.equal(d.family, 'ipv4');
      assert.ok(Date.parse(d.end) >= Date.parse(d.start));
      assert.equal(d.durationMs, Date.parse(d.end) - Date.parse(d.start));
      for (const leg of ['client', 'peer']) for (const dir of ['rx', 'tx']) {
        assert.equal(typeof d.bytes[leg][dir], 'number');
        assert.equal(typeof d.packets[leg][dir], 'number');
      }
    }
    const users = rx.events.map((e) => e.json.data.username).sort();
    assert.deepEqual(users, creds.map((c) => c.username).sort());
    const cids = rx.events.map((e) => e.json.data.customIdentifier);
    for (const c of cids) assert.ok(creds.some((cr) => cr.username.includes(c)), c);
    // the receiver could verify a tampered body: it must not
    const forged = { ...rx.events[0], body: rx.events[0].body.replace('"client"', '"expired"') };
    assert.ok(!verify(secret, forged));
    await waitFor('an empty queue', async () => (await queued(f.url)) === 0);
    const m = await metrics(f.url);
    assert.equal(sample(m, 'turnkey_webhook_delivered_total'), 3);
    assert.equal(sample(m, 'turnkey_webhook_events_queued_total'), 3);
  });

  test('a receiver that answers 500, then is down, then comes back gets every event once', async () => {
    rx.events.length = 0;
    rx.mode = 'fail';
    const before = sample(await metrics(f.url), 'turnkey_webhook_failed_attempts_total');
    for (let i = 0; i < 3; i++) await endedAllocation(f.turnPort, await mintTurn(f, key, { prefix: 'fail' }));
    await waitFor('a few failed attempts', () => rx.failed >= 4);
    await rx.down();
    for (let i = 0; i < 2; i++) await endedAllocation(f.turnPort, await mintTurn(f, key, { prefix: 'down' }));
    await waitFor('failures while down', async () =>
      sample(await metrics(f.url), 'turnkey_webhook_failed_attempts_total') >= before + rx.failed + 2);
    assert.equal(rx.events.length, 0);
    assert.equal(await queued(f.url), 5);
    rx.mode = 'ok';
    await rx.up();
    await waitFor('all five', () => rx.events.length >= 5);
    await waitFor('an empty queue', async () => (await queued(f.url)) === 0);
    assert.equal(rx.events.length, 5, 'none twice');
    assert.equal(new Set(rx.ids()).size, 5);
    for (const ev of rx.events) assert.ok(verify(secret, ev));
    const m = await metrics(f.url);
    assert.ok(sample(m, 'turnkey_webhook_failed_attempts_total') >= before + 6);
    assert.equal(sample(m, 'turnkey_webhook_dropped_total', 'reason="expired"'), 0);
  });

  test('bad webhooks are refused with 400 and change nothing; calls:read cannot change it', async () => {
    const bad = [
      [{ url: 'ftp://127.0.0.1/x' }, /http:\/\/ or https:\/\//],
      [{ url: 'javascript:alert(1)' }, /http:\/\/ or https:\/\//],
      [{ url: 'file:///etc/passwd' }, /http:\/\/ or https:\/\//],
      [{ url: 'http://' }, /host/],
      [{ url: 'http:///path' }, /host/],
      [{ url: 'http://user:pw@127.0.0.1/' }, /user:password/],
      [{ url: 'http://127.0.0.1:99999/' }, /port/],
      [{ url: 'http://127.0.0.1:x/' }, /port/],
      [{ url: 'http://exa mple.com/' }, /printable/],
      [{ url: 'http://example.com/#frag' }, /fragment/],
      [{ url: `http://example.com/${'a'.repeat(2100)}` }, /2048/],
      [{ url: 42 }, /url must be a string/],
      [{}, /url must be a string/],
      [{ url: rx.url(), events: [] }, /events/],
      [{ url: rx.url(), events: ['allocation.started'] }, /events/],
      [{ url: rx.url(), rotate_secret: 'yes' }, /rotate_secret/],
      [{ url: rx.url(), secret: 'mine' }, /unknown field 'secret'/],
    ];
    for (const [body, msg] of bad) {
      const r = await putHook(f.base, f.account, f.token, body);
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
      assert.equal(r.json.success, false);
      assert.match(r.json.errors[0].message, msg, JSON.stringify(body).slice(0, 80));
    }
    const notJson = await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { method: 'PUT', token: f.token, body: '{"url":' });
    assert.equal(notJson.status, 400);
    const g = await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { token: f.token });
    assert.equal(g.json.result.url, rx.url(), 'unchanged');
    const reader = createToken(f.data, f.account, 'calls:read');
    assert.equal((await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { token: reader })).status, 200);
    assert.equal((await putHook(f.base, f.account, reader, { url: rx.url('/other') })).status, 403);
    assert.equal((await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { method: 'DELETE', token: reader })).status, 403);
    assert.equal((await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { method: 'POST', token: f.token })).status, 405);
    // https is accepted, and rotate_secret shows a new secret once
    const rot = await putHook(f.base, f.account, f.token, { url: rx.url(), rotate_secret: true });
    assert.equal(rot.status, 200, rot.text);
    assert.match(rot.json.result.secret, /^[0-9a-f]{64}$/);
    assert.notEqual(rot.json.result.secret, secret);
    secret = rot.json.result.secret;
  });

  test('the webhook metrics pass promtool', { skip: spawnSync('promtool', ['--version']).status === 0 ? false : 'promtool missing (scripts/deps.sh test)' }, async () => {
    const text = await metrics(f.url);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    for (const fam of ['turnkey_webhook_events_queued_total', 'turnkey_webhook_queue_events', 'turnkey_webhook_pending_events',
      'turnkey_webhook_delivered_total', 'turnkey_webhook_failed_attempts_total', 'turnkey_webhook_dropped_total']) {
      assert.ok(text.includes(`# TYPE ${fam} `), fam);
    }
  });

  test('DELETE removes the webhook and its queued events', async () => {
    rx.mode = 'fail';
    await endedAllocation(f.turnPort, await mintTurn(f, key, { prefix: 'gone' }));
    await waitFor('one queued', async () => (await queued(f.url)) === 1);
    const d = await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { method: 'DELETE', token: f.token });
    assert.equal(d.status, 200, d.text);
    assert.equal(d.json.result.url, rx.url());
    assert.equal(await queued(f.url), 0);
    assert.equal((await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, { token: f.token })).status, 404);
    rx.mode = 'ok';
  });
});

describe('webhook bounds: the per-account cap and the give-up age', () => {
  test('--webhook-max-queued keeps the newest events; --webhook-max-age gives up and counts', async () => {
    const rx = await receiver();
    await rx.down();
    const f = await fixture({ extraArgs: [...fast, '--webhook-max-queued', '2', '--webhook-max-age', '5'] });
    try {
      const key = await createTurnKey(f, 'cap');
      const r = await putHook(f.base, f.account, f.token, { url: rx.url() });
      assert.equal(r.status, 201, r.text);
      for (let i = 0; i < 4; i++) await endedAllocation(f.turnPort, await mintTurn(f, key, { prefix: 'cap' }));
      const m = await waitFor('the cap dropped two', async () => {
        const t = await metrics(f.url);
        return { ok: sample(t, 'turnkey_webhook_dropped_total', 'reason="queue_full"') === 2, t };
      });
      assert.ok(sample(m.t, 'turnkey_webhook_queue_events') <= 2);
      // the receiver stays down past --webhook-max-age: the kept ones are given up too
      await waitFor('given up', async () => sample(await metrics(f.url), 'turnkey_webhook_dropped_total', 'reason="expired"') === 2);
      assert.equal(await queued(f.url), 0);
      await rx.up();
      await sleep(1500);
      assert.equal(rx.events.length, 0);
      assert.match(f.stderr(), /given up after \d+ attempts/);
    } finally {
      await rx.down();
      const r = await f.close();
      assert.equal(r.code, 0, f.stderr());
    }
  });
});

describe('webhook destinations follow the peer policy', () => {
  test('a host that resolves to a denied address (loopback without --allow-peer) is never POSTed to', async () => {
    const rx = await receiver();
    const f = await fixture({ extraArgs: ['--webhook-retry-max', '1', '--webhook-timeout', '2'] });
    try {
      const key = await createTurnKey(f, 'ssrf');
      const r = await putHook(f.base, f.account, f.token, { url: `http://localhost:${rx.port}/hook` });
      assert.equal(r.status, 201, r.text); // a name: checked once resolved, at delivery
      await endedAllocation(f.turnPort, await mintTurn(f, key, { prefix: 'ssrf' }));
      await waitFor('refused attempts', async () => sample(await metrics(f.url), 'turnkey_webhook_failed_attempts_total') >= 2);
      assert.equal(rx.hits, 0, 'nothing reached the receiver');
      assert.equal(await queued(f.url), 1, 'the event stays queued');
      assert.match(f.stderr(), /denied by the peer policy/);
    } finally {
      await rx.down();
      const r = await f.close();
      assert.equal(r.code, 0, f.stderr());
    }
  });
});

// The restart checks on both backends: events written to the store before the stop are
// delivered by the next process.
let pg;
const backends = [
  { name: 'sqlite', setup: () => { const data = freshDataDir(); return { data, store: null }; } },
  { name: 'postgres', setup: () => ({ data: freshDataDir(), store: pg.newDatabase('hooks') }) },
];

describe('webhook events survive a restart', () => {
  before(() => { pg = startPostgres(); });
  after(() => pg?.stop());

  for (const be of backends) {
    test(`${be.name}: queued events are delivered after SIGTERM and after kill -9`, async () => {
      const rx = await receiver();
      const { data, store } = be.setup();
      const storeArgs = store ? ['--store', store] : [];
      let account, token;
      if (store) ({ account, token } = accountAndToken(store));
      const start = async () => {
        const s = await startServer({ data, extraArgs: [...fast, ...storeArgs] });
        return { ...s, base: `${s.url}/client/v4` };
      };
      let s = await start();
      try {
        if (!store) {
          account = createAccount(data);
          token = createToken(data, account);
        }
        const f = { ...s, account, token };
        const key = await createTurnKey(f, 'restart');
        const r = await putHook(s.base, account, token, { url: rx.url() });
        assert.equal(r.status, 201, r.text);
        const hookSecret = r.json.result.secret;
        for (const how of ['SIGTERM', 'SIGKILL']) {
          await rx.down();
          for (let i = 0; i < 2; i++) await endedAllocation(s.turnPort, await mintTurn({ ...f, url: s.url }, key, { prefix: how }));
          await waitFor('the batch in the store', async () => (await queued(s.url)) === 2);
          const ex = how === 'SIGTERM' ? await s.stop() : await s.kill9();
          if (how === 'SIGTERM') assert.equal(ex.code, 0, s.stderr());
          else assert.equal(ex.signal, 'SIGKILL');
          const seen = rx.events.length;
          await rx.up();
          s = await start();
          await waitFor(`both events after the restart (${how})`, () => rx.events.length >= seen + 2);
          await waitFor('an empty queue', async () => (await queued(s.url)) === 0);
          const got = rx.events.slice(seen);
          assert.equal(got.length, 2);
          for (const ev of got) {
            assert.ok(verify(hookSecret, ev));
            assert.ok(ev.json.data.customIdentifier.startsWith(how), ev.json.data.customIdentifier);
          }
        }
        assert.equal(new Set(rx.ids()).size, rx.events.length, 'no event twice');
      } finally {
        await rx.down();
        await s.stop();
        rmSync(data, { recursive: true, force: true });
      }
    });
  }

  test('postgres: two nodes share the queue and deliver each event once', async () => {
    const rx = await receiver();
    const store = pg.newDatabase('hooks2');
    const { account, token } = accountAndToken(store);
    const [p1, p2] = [await freePort(), await freePort()];
    // two full nodes (API, relay and a delivery worker each) on one database
    const a = await startNode(store, { role: 'all', relayPorts: [p1], extra: fast });
    const b = await startNode(store, { role: 'all', relayPorts: [p2], extra: fast });
    const api = a;
    try {
      const f = { base: api.base, url: api.url, account, token };
      const key = await createTurnKey(f, 'two');
      const r = await putHook(api.base, account, token, { url: rx.url() });
      assert.equal(r.status, 201, r.text);
      let n = 0;
      for (const port of [p1, p2, p1, p2, p1, p2]) {
        const cred = await mintTurn(f, key, { prefix: 'pg' });
        await waitFor('the key on the relay node', async () => {
          const c = new TurnClient({ port });
          await c.ready;
          const ok = (await c.allocate(cred)).cls === CLASS.SUCCESS;
          if (ok) assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS);
          await c.close();
          return ok;
        });
        n++;
      }
      await waitFor('every event', () => rx.events.length >= n);
      await waitFor('an empty queue', async () => (await queued(api.url)) === 0);
      await sleep(1500); // a duplicate delivery would show up now
      assert.equal(rx.events.length, n);
      assert.equal(new Set(rx.ids()).size, n);
      const delivered = (await Promise.all([a, b].map(async (x) => sample(await metrics(x.url), 'turnkey_webhook_delivered_total'))))
        .reduce((s, v) => s + v, 0);
      assert.equal(delivered, n);
    } finally {
      await rx.down();
      for (const x of [a, b]) { await x.stop(); x.cleanup(); }
    }
  });
});
