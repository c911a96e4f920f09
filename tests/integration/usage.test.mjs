// Usage accounting (issue 14): an independent TURN client (lib/stun.mjs) relays a known number
// of bytes; the REST usage API shows them to the byte (egress: every ChannelData and Data
// indication the client received, framing included; ingress: every one it sent) while the
// allocation is still open and after it ended. Also: a kill -9 keeps every flushed batch, a
// deleted key keeps its usage, pagination, bad parameters (400, nothing changed),
// permissions, and the daily rollup of old minute rows into hour rows.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  fixture, createTurnKey, mintTurn, httpRequest, createToken, createAccount, freshDataDir, startServer,
} from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer, egressMeter as meter, indicationBytes } from './lib/stun.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = 20000) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last?.ok ?? last) return last;
    if (Date.now() - start > ms) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}


describe('usage accounting', () => {
  let f, key, peer, peer2;
  const usage = (q = '', token = f.token, k = key.uid) =>
    httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${k}/usage${q}`, { token });
  const accountUsage = (q = '', token = f.token) =>
    httpRequest(`${f.base}/accounts/${f.account}/calls/usage${q}`, { token });
  const totals = (rows) => rows.reduce((t, r) => ({
    egress: t.egress + r.egressBytes, ingress: t.ingress + r.ingressBytes,
  }), { egress: 0, ingress: 0 });

  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--usage-flush-interval', '1', '--node-name', 'it-node'] });
    key = await createTurnKey(f, 'usage');
    peer = await echoPeer();
    peer2 = await echoPeer();
  });
  after(async () => {
    await peer?.close();
    await peer2?.close();
    const r = await f?.close();
    assert.equal(r?.code, 0, `server exit status — stderr:\n${f?.stderr()}`);
  });

  test('relayed bytes appear to the byte, live while open and after the end', async () => {
    const cred = await mintTurn(f, key, { prefix: 'bill' });
    const cid = cred.username.split(':').find((x) => x.startsWith('bill-'));
    const c = new TurnClient({ port: f.turnPort });
    await c.ready;
    const m = meter(c);
    assert.equal((await c.allocate(cred)).cls, CLASS.SUCCESS);
    assert.equal((await c.channelBind(0x4001, { address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
    assert.equal((await c.createPermission({ address: '127.0.0.1', port: peer2.port })).cls, CLASS.SUCCESS);
    let ingress = 0;
    const payload = Buffer.alloc(100, 1);
    for (let i = 0; i < 30; i++) { await c.sendChannel(0x4001, payload); ingress += 4 + 100; }
    for (let i = 0; i < 10; i++) { await c.send({ address: '127.0.0.1', port: peer2.port }, Buffer.alloc(13, 2)); ingress += indicationBytes(13); }
    await waitFor('every echo back at the client', () => m.frames === 40);
    assert.equal(m.egress, 30 * 104 + 10 * indicationBytes(13));
    const q = `?step=1m&group_by=customIdentifier,username&since=${Math.floor(Date.now() / 1000) - 600}`;
    const live = await waitFor('the live usage', async () => {
      const r = await usage(q);
      assert.equal(r.status, 200, r.text);
      const t = totals(r.json.result);
      return { ok: t.egress === m.egress && t.ingress === ingress, r, t };
    });
    const row = live.r.json.result.find((x) => x.egressBytes > 0);
    assert.equal(row.keyId, key.uid);
    assert.equal(row.customIdentifier, cid);
    assert.equal(row.username, cred.username);
    assert.ok(row.peakConcurrentAllocations >= 1);
    assert.ok(row.allocationMilliseconds > 0);
    assert.match(row.start, /^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/);
    const info = live.r.json.result_info;
    assert.ok(Math.abs(Date.parse(info.as_of) - Date.now()) < 15000, info.as_of);
    // more, then the end: the remainder since the last report is counted too
    for (let i = 0; i < 5; i++) { await c.sendChannel(0x4001, Buffer.alloc(7, 3)); ingress += 4 + 7; }
    await waitFor('the last echoes', () => m.frames === 45);
    assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS);
    await c.close();
    const end = await waitFor('the final usage', async () => {
      const t = totals((await usage(q)).json.result);
      return { ok: t.egress === m.egress && t.ingress === ingress, t };
    });
    assert.equal(end.t.egress, 30 * 104 + 10 * indicationBytes(13) + 5 * 11);
    // the account-wide form, per key, says the same
    const acct = await accountUsage('?step=1d&group_by=keyId');
    assert.equal(acct.status, 200, acct.text);
    const mine = acct.json.result.filter((x) => x.keyId === key.uid);
    assert.deepEqual(totals(mine), { egress: m.egress, ingress });
  });

  test('pagination: page and per_page with result_info', async () => {
    const k2 = await createTurnKey(f, 'pages');
    for (let i = 0; i < 3; i++) {
      const cred = await mintTurn(f, k2, { prefix: 'page' });
      const c = new TurnClient({ port: f.turnPort });
      assert.equal((await c.allocate(cred)).cls, CLASS.SUCCESS);
      await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
      await c.sendChannel(0x4000, Buffer.alloc(10 * (i + 1)));
      await c.refresh(0);
      await c.close();
    }
    const q = (page) => `?group_by=username&step=1d&per_page=2&page=${page}`;
    const p1 = await waitFor('three usernames', async () => {
      const r = await usage(q(1), f.token, k2.uid);
      return { ok: r.json?.result_info?.total_count === 3, r };
    });
    assert.deepEqual(
      { page: p1.r.json.result_info.page, per_page: 2, count: p1.r.json.result_info.count, total_pages: p1.r.json.result_info.total_pages },
      { page: 1, per_page: 2, count: 2, total_pages: 2 });
    const p2 = await usage(q(2), f.token, k2.uid);
    assert.equal(p2.json.result_info.count, 1);
    assert.equal(p2.json.result.length, 1);
    const names = new Set([...p1.r.json.result, ...p2.json.result].map((r) => r.username));
    assert.equal(names.size, 3);
    // a deleted key keeps its usage
    const del = await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${k2.uid}`, { method: 'DELETE', token: f.token });
    assert.equal(del.status, 200);
    const after = await usage('?step=1d', f.token, k2.uid);
    assert.equal(after.status, 200);
    assert.equal(totals(after.json.result).ingress, (4 + 10) + (4 + 20) + (4 + 30));
  });

  test('bad parameters: 400 naming the parameter; permissions: 403', async () => {
    const bad = [
      ['?step=2m', /step/], ['?since=yesterday', /since/], ['?until=-5', /until/],
      ['?since=2000&until=1000', /since must be earlier than until/], ['?group_by=node', /group_by/],
      ['?group_by=keyId', /group_by/], ['?group_by=username,', /group_by/], ['?per_page=0', /per_page/],
      ['?per_page=1001', /per_page/], ['?page=0', /page/], ['?since=1&since=2', /repeated.*since/],
      ['?limit=5', /unknown query parameter 'limit'/], ['?step=%zz', /malformed/],
    ];
    for (const [q, msg] of bad) {
      const r = await usage(q);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
      assert.equal(r.json.success, false);
      assert.match(r.json.errors[0].message, msg, q);
    }
    assert.equal((await accountUsage('?group_by=keyId,customIdentifier')).status, 200);
    assert.equal((await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/NOTAKEY/usage`, { token: f.token })).status, 400);
    assert.equal((await httpRequest(`${f.base}/accounts/${f.account}/calls/usage`, { method: 'POST', token: f.token })).status, 405);
    const analytics = createToken(f.data, f.account, 'analytics:read');
    assert.equal((await usage('', analytics)).status, 200);
    const auditOnly = createToken(f.data, f.account, 'audit:read');
    assert.equal((await usage('', auditOnly)).status, 403);
    const other = createAccount(f.data, 'other');
    const otherTok = createToken(f.data, other, 'calls:read');
    assert.equal((await usage('', otherTok)).status, 403);
    const bogus = await usage('', 'x'.repeat(40)); /* as every control-plane route answers it */
    const keys = await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys`, { token: 'x'.repeat(40) });
    assert.equal(bogus.status, keys.status);
    assert.ok(bogus.status === 401 || bogus.status === 403, bogus.text);
  });
});

describe('a relay thread whose usage ring holds one record loses nothing', () => {
  test('six allocations through --usage-ring-size 1: every byte arrives, the refusals are counted', async () => {
    const f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--usage-flush-interval', '1', '--usage-ring-size', '1', '--relay-threads', '1'] });
    const peer = await echoPeer();
    try {
      const key = await createTurnKey(f, 'tiny');
      const clients = [];
      let want = 0;
      for (let i = 0; i < 6; i++) {
        const c = new TurnClient({ port: f.turnPort });
        await c.ready;
        const m = meter(c);
        assert.equal((await c.allocate(await mintTurn(f, key, { prefix: 'tiny' }))).cls, CLASS.SUCCESS);
        await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
        for (let j = 0; j <= i; j++) await c.sendChannel(0x4000, Buffer.alloc(20 + i));
        await waitFor('the echoes', () => m.frames === i + 1);
        want += 2 * (i + 1) * (24 + i);
        clients.push({ c, m });
      }
      const sum = async () => (await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys/${key.uid}/usage?step=1d&group_by=username`, { token: f.token }))
        .json.result.reduce((s, r) => s + r.egressBytes + r.ingressBytes, 0);
      await waitFor('every byte while the allocations are open', async () => (await sum()) === want);
      for (const { c } of clients) { await c.refresh(0); await c.close(); }
      await sleep(2500); // the end reports pass through the one-record ring too
      assert.equal(await sum(), want);
      const metrics = await (await fetch(`${f.url}/metrics`)).text();
      const refused = Number(metrics.match(/^turnkey_usage_ring_full_total (\d+)$/m)[1]);
      assert.ok(refused > 0, 'the ring was full at times');
      assert.match(metrics, /^turnkey_usage_dropped_bytes_total 0$/m);
    } finally {
      await peer.close();
      const r = await f.close();
      assert.equal(r.code, 0, f.stderr());
    }
  });
});

describe('usage survives kill -9 up to the last batch; old minute rows roll up', () => {
  test('kill -9 after a flushed batch: the restarted server shows every byte', async () => {
    const data = freshDataDir();
    const args = ['--allow-peer', '127.0.0.1/32', '--usage-flush-interval', '1'];
    const f = await fixture({ data, keepData: true, extraArgs: args });
    const peer = await echoPeer();
    try {
      const key = await createTurnKey(f, 'crash');
      const cred = await mintTurn(f, key);
      const c = new TurnClient({ port: f.turnPort });
      await c.ready;
      const m = meter(c);
      assert.equal((await c.allocate(cred)).cls, CLASS.SUCCESS);
      await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
      for (let i = 0; i < 20; i++) await c.sendChannel(0x4000, Buffer.alloc(50));
      await waitFor('the echoes', () => m.frames === 20);
      const url = (srv) => `${srv.url}/client/v4/accounts/${f.account}/calls/turn_keys/${key.uid}/usage?step=1d`;
      const sum = async (srv) => (await httpRequest(url(srv), { token: f.token })).json.result.reduce((s, r) => s + r.egressBytes + r.ingressBytes, 0);
      await waitFor('the flushed batch', async () => (await sum(f)) === 2 * 20 * 54);
      await f.kill9();
      await c.close();
      const g = await startServer({ data, extraArgs: args });
      try {
        assert.equal(await sum(g), 2 * 20 * 54);
      } finally {
        const r = await g.stop();
        assert.equal(r.code, 0, g.stderr());
      }
    } finally {
      await peer.close();
      rmSync(data, { recursive: true, force: true });
    }
  });

  test('minute rows older than --usage-retention-days become hour rows at start', async () => {
    const data = freshDataDir();
    try {
      const account = createAccount(data);
      const token = createToken(data, account, 'analytics:read');
      const db = join(data, 'turnkey.db');
      const key = 'ab'.repeat(16);
      const hour = Math.floor(Date.now() / 1000 / 3600) * 3600 - 40 * 86400;
      const rows = [[hour + 60, 100, 3], [hour + 120, 50, 5], [hour + 3600 + 60, 7, 1]]
        .map(([m, e, p]) => `(${m},'${account}','${key}','c','u','old',${e},${e},60000,${p})`).join(',');
      execFileSync('sqlite3', [db, `INSERT INTO usage_minute VALUES ${rows}`]);
      const srv = await startServer({ data, extraArgs: ['--usage-retention-days', '30'] });
      try {
        await waitFor('the rollup', () => execFileSync('sqlite3', [db, 'SELECT count(*) FROM usage_minute']).toString().trim() === '0');
        assert.equal(execFileSync('sqlite3', [db, 'SELECT count(*) FROM usage_hour']).toString().trim(), '2');
        const r = await httpRequest(`${srv.url}/client/v4/accounts/${account}/calls/usage?step=1h&since=${hour}&until=${hour + 7200}`, { token });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json.result.map((x) => [Date.parse(x.start) / 1000, x.egressBytes, x.peakConcurrentAllocations]),
          [[hour, 150, 5], [hour + 3600, 7, 1]]);
      } finally {
        const s = await srv.stop();
        assert.equal(s.code, 0, srv.stderr());
      }
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});
