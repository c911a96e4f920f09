// The spend guard (issue 14 §4, §5): an independent TURN client relays bytes against a key
// with a daily budget; the webhook receiver on loopback gets budget.threshold and then
// budget.exceeded once each; with action end_allocations the allocations stop within 2 s of
// the trip, new Allocates get 486 "Budget Exceeded", mints get 403 (code 10403); raising the
// budget lets the key work again. A customIdentifier's budget ends only that
// customIdentifier's allocations. On PostgreSQL, allocations on two relay nodes both stop.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { fixture, createTurnKey, httpRequest } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';
import { startPostgres } from './lib/pg.mjs';
import { freePort, accountAndToken, startNode, relaying } from './lib/cluster.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const wallOf = (perfMs) => performance.timeOrigin + perfMs;

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

// A webhook receiver on 127.0.0.1 that records every event (answers 204).
async function receiver() {
  const r = { events: [] };
  r.server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => { r.events.push(JSON.parse(body)); res.writeHead(204); res.end(); });
  });
  await new Promise((ok) => r.server.listen(0, '127.0.0.1', ok));
  r.url = `http://127.0.0.1:${r.server.address().port}/hook`;
  r.of = (type) => r.events.filter((e) => e.type === type);
  r.close = () => new Promise((ok) => { r.server.close(() => ok()); r.server.closeAllConnections(); });
  return r;
}

async function mintFor(api, key, customIdentifier) {
  const r = await fetch(`${api.url}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, {
    method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ttl: 3600, ...(customIdentifier ? { customIdentifier } : {}) }),
  });
  const text = await r.text();
  if (r.status !== 201) return { status: r.status, json: JSON.parse(text) };
  const turn = JSON.parse(text).iceServers.find((s) => s.username);
  return { status: 201, username: turn.username, password: turn.credential };
}

const policyUrl = (base, account, key) => `${base}/accounts/${account}/calls/turn_keys/${key.uid}/policy`;

// Sends n ChannelData of size bytes from a relaying() client (echoed back: egress).
async function pump(r, n, size) {
  for (let i = 0; i < n; i++) await r.c.sendChannel(0x4000, Buffer.alloc(size, 7)).catch(() => {});
}

describe('spend guard on one node (SQLite)', () => {
  let f, rx, peer;
  before(async () => {
    rx = await receiver();
    peer = await echoPeer();
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--usage-flush-interval', '1', '--webhook-retry-max', '1'] });
    const hook = await httpRequest(`${f.base}/accounts/${f.account}/calls/webhook`, {
      method: 'PUT', token: f.token, body: { url: rx.url, events: ['budget.threshold', 'budget.exceeded'] },
    });
    assert.equal(hook.status < 300, true, hook.text);
  });
  after(async () => {
    await peer?.close();
    await rx?.close();
    const r = await f?.close();
    assert.equal(r?.code, 0, `server exit status — stderr:\n${f?.stderr()}`);
  });

  test('threshold, then exceeded: allocations end within 2 s, 486, mints 403, raise clears', async () => {
    const key = await createTurnKey(f, 'budgeted');
    const put = await httpRequest(policyUrl(f.base, f.account, key), {
      method: 'PUT', token: f.token,
      body: { daily_bytes: 40000, action: 'end_allocations', thresholds: [25] },
    });
    assert.equal(put.status, 200, put.text);
    const credA = await mintFor(f, key, 'room-a');
    const credB = await mintFor(f, key, 'room-b');
    const later = await mintFor(f, key, 'room-c'); // minted before the trip, used after it
    assert.equal(credA.status, 201);
    const a = await relaying(f.turnPort, credA, peer, { intervalMs: 50 });
    const b = await relaying(f.turnPort, credB, peer, { intervalMs: 50 });
    assert.ok(a.ok && b.ok);
    assert.ok(await a.flowing() && await b.flowing());

    await pump(a, 60, 200); // ~12 KB of egress: past 25 %
    const th = await waitFor('budget.threshold', () => rx.of('budget.threshold').length === 1);
    assert.ok(th);
    const t = rx.of('budget.threshold')[0];
    assert.equal(t.data.keyId, key.uid);
    assert.equal(t.data.percentage, 25);
    assert.equal(t.data.limitBytes, 40000);
    assert.equal(t.data.period, 'day');
    assert.equal(t.data.customIdentifier, null);
    assert.ok(t.data.usedBytes >= 10000 && t.data.usedBytes < 40000, JSON.stringify(t.data));

    await pump(b, 160, 200); // past 100 %
    await waitFor('budget.exceeded', () => rx.of('budget.exceeded').length === 1);
    const ex = rx.of('budget.exceeded')[0];
    assert.equal(ex.data.percentage, 100);
    assert.equal(ex.data.action, 'end_allocations');
    assert.ok(ex.data.usedBytes >= 40000);
    const tripped = Date.parse(ex.created);
    assert.ok(await a.silent(300, 5000) && await b.silent(300, 5000), 'relaying stopped');
    for (const r of [a, b]) {
      assert.ok(wallOf(r.last()) - tripped < 2000, `last echo ${wallOf(r.last()) - tripped} ms after the trip`);
      const refresh = await r.c.refresh(600);
      assert.equal(refresh.errorCode, 437, 'the allocation is gone');
    }
    await a.stop();
    await b.stop();

    const c = new TurnClient({ port: f.turnPort });
    const denied = await c.allocate(later);
    assert.equal(denied.cls, CLASS.ERROR);
    assert.equal(denied.errorCode, 486);
    assert.equal(denied.reason, 'Budget Exceeded');
    await c.close();
    const m = await mintFor(f, key, 'room-d');
    assert.equal(m.status, 403);
    assert.equal(m.json.errors?.[0]?.code ?? m.json.code, 10403, JSON.stringify(m.json));

    // no second event for the same level; GET shows the trip
    await sleep(2500);
    assert.equal(rx.of('budget.exceeded').length, 1);
    assert.equal(rx.of('budget.threshold').length, 1);
    const g = await httpRequest(policyUrl(f.base, f.account, key), { token: f.token });
    assert.equal(g.status, 200, g.text);
    assert.ok(JSON.stringify(g.json.result.status).includes('end_allocations'), g.text);

    // raising the budget clears the trip: mints and Allocates work again
    const raise = await httpRequest(policyUrl(f.base, f.account, key), {
      method: 'PATCH', token: f.token, body: { daily_bytes: 10000000 },
    });
    assert.equal(raise.status, 200, raise.text);
    const again = await waitFor('mints again', async () => (await mintFor(f, key, 'room-e')).status === 201);
    assert.ok(again);
    const d = new TurnClient({ port: f.turnPort });
    const ok = await waitFor('Allocate again', async () => (await d.allocate(later)).cls === CLASS.SUCCESS);
    assert.ok(ok);
    await d.close();
  });

  test('a customIdentifier budget ends only that customIdentifier', async () => {
    const key = await createTurnKey(f, 'per-cid');
    const put = await httpRequest(policyUrl(f.base, f.account, key), {
      method: 'PUT', token: f.token,
      body: { custom_identifier_daily_bytes: 8000, action: 'end_allocations' },
    });
    assert.equal(put.status, 200, put.text);
    const hot = await relaying(f.turnPort, await mintFor(f, key, 'hot'), peer, { intervalMs: 50 });
    const cold = await relaying(f.turnPort, await mintFor(f, key, 'cold'), peer, { intervalMs: 50 });
    assert.ok(await hot.flowing() && await cold.flowing());
    await pump(hot, 60, 200);
    await waitFor('the hot budget exceeded', () => rx.of('budget.exceeded').some((e) => e.data.customIdentifier === 'hot'));
    assert.ok(await hot.silent(300, 5000), 'hot stopped');
    const n = cold.echoes.length;
    await sleep(600);
    assert.ok(cold.echoes.length > n, 'cold still relays');
    assert.equal((await mintFor(f, key, 'hot')).status, 403);
    assert.equal((await mintFor(f, key, 'cold')).status, 201);
    await hot.stop();
    await cold.stop();
  });
});

describe('key policy in the relay (SQLite)', () => {
  let f, peer;
  before(async () => {
    peer = await echoPeer();
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32'] });
  });
  after(async () => {
    await peer?.close();
    const r = await f?.close();
    assert.equal(r?.code, 0, `server exit status — stderr:\n${f?.stderr()}`);
  });

  test('allocation_quota: the third allocation of one credential gets 486', async () => {
    const key = await createTurnKey(f, 'quota');
    const put = await httpRequest(policyUrl(f.base, f.account, key), { method: 'PUT', token: f.token, body: { allocation_quota: 2 } });
    assert.equal(put.status, 200, put.text);
    const cred = await mintFor(f, key, 'q');
    const clients = [new TurnClient({ port: f.turnPort }), new TurnClient({ port: f.turnPort }), new TurnClient({ port: f.turnPort })];
    const res = [];
    for (const c of clients) res.push(await c.allocate(cred));
    assert.deepEqual(res.map((r) => r.cls), [CLASS.SUCCESS, CLASS.SUCCESS, CLASS.ERROR]);
    assert.equal(res[2].errorCode, 486);
    assert.equal((await clients[0].refresh(0)).cls, CLASS.SUCCESS); // one ends: room for one more
    assert.equal((await clients[2].allocate(cred)).cls, CLASS.SUCCESS);
    for (const c of clients) await c.close();
  });

  test('bandwidth_bps: a burst past the cap is dropped, an uncapped key relays it all', async () => {
    const run = async (body) => {
      const key = await createTurnKey(f, 'bw');
      if (body) assert.equal((await httpRequest(policyUrl(f.base, f.account, key), { method: 'PUT', token: f.token, body })).status, 200);
      const c = new TurnClient({ port: f.turnPort });
      assert.equal((await c.allocate(await mintFor(f, key, 'bw'))).cls, CLASS.SUCCESS);
      assert.equal((await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
      let echoes = 0;
      c.on('data', (d) => { if (d.via === 'channel') echoes++; });
      for (let i = 0; i < 60; i++) await c.sendChannel(0x4000, Buffer.alloc(1000, i));
      await sleep(700);
      c.drainData?.();
      await c.close();
      return echoes;
    };
    const free = await run(null);
    const capped = await run({ bandwidth_bps: 80000 }); // 10 kB/s, a few kB of burst
    assert.ok(free >= 55, `uncapped: ${free} of 60 echoed`);
    assert.ok(capped >= 1 && capped <= 20, `capped: ${capped} of 60 echoed`);
  });
});

describe('spend guard on PostgreSQL: allocations on two relay nodes stop', () => {
  let pg, store, account, token, peer, rx;
  const nodes = [];
  before(async () => {
    pg = startPostgres();
    store = pg.newDatabase('spend');
    ({ account, token } = accountAndToken(store));
    rx = await receiver();
    peer = await echoPeer();
    const [p1, p2] = [await freePort(), await freePort()];
    const flush = ['--usage-flush-interval', '1'];
    nodes.push(await startNode(store, { role: 'relay', relayPort: p1, extra: [...flush, '--node-name', 'r1'] }));
    nodes.push(await startNode(store, { role: 'relay', relayPort: p2, extra: [...flush, '--node-name', 'r2'] }));
    nodes.push(await startNode(store, { role: 'api', relayPorts: [p1, p2], extra: flush }));
  });
  after(async () => {
    await peer?.close();
    await rx?.close();
    for (const n of nodes) {
      const r = await n.stop();
      assert.equal(r.code, 0, `${n.role} exit status — stderr:\n${n.stderr()}`);
      n.cleanup();
    }
    pg?.stop();
  });

  test('one trip, one budget.exceeded, both nodes end their allocations within 2 s', async () => {
    const [r1, r2, api] = nodes;
    const hook = await httpRequest(`${api.base}/accounts/${account}/calls/webhook`, {
      method: 'PUT', token, body: { url: rx.url, events: ['budget.exceeded'] },
    });
    assert.ok(hook.status < 300, hook.text);
    const created = await httpRequest(`${api.base}/accounts/${account}/calls/turn_keys`, { method: 'POST', token, body: { name: 'pg-budget' } });
    assert.equal(created.status, 201, created.text);
    const key = created.json.result;
    const put = await httpRequest(policyUrl(api.base, account, key), {
      method: 'PUT', token, body: { daily_bytes: 30000, action: 'end_allocations' },
    });
    assert.equal(put.status, 200, put.text);
    const cred = await mintFor(api, key, 'pg-room');
    const a = await relaying(r1.relayPort, cred, peer, { intervalMs: 50 });
    const b = await relaying(r2.relayPort, cred, peer, { intervalMs: 50 });
    assert.ok(a.ok && b.ok, 'allocated on both nodes');
    assert.ok(await a.flowing() && await b.flowing());
    await pump(a, 80, 200);
    await pump(b, 80, 200);
    await waitFor('budget.exceeded', () => rx.of('budget.exceeded').length >= 1);
    const tripped = Date.parse(rx.of('budget.exceeded')[0].created);
    assert.ok(await a.silent(300, 5000) && await b.silent(300, 5000), 'both nodes stopped relaying');
    for (const r of [a, b]) assert.ok(wallOf(r.last()) - tripped < 2000, `last echo ${wallOf(r.last()) - tripped} ms after the trip`);
    await sleep(2000);
    assert.equal(rx.of('budget.exceeded').length, 1, 'three nodes ran the guard; one event');
    const c = new TurnClient({ port: r2.relayPort });
    const denied = await c.allocate(cred);
    assert.equal(denied.errorCode, 486);
    assert.equal(denied.reason, 'Budget Exceeded');
    await c.close();
    await a.stop();
    await b.stop();
  });
});
