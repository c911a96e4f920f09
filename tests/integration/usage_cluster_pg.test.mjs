// Usage accounting on PostgreSQL (issue 14): two relay nodes write their own rows into one
// database; the usage API of an API node adds them up to the byte.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { httpRequest } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';
import { startPostgres } from './lib/pg.mjs';
import { freePort, accountAndToken, startNode, mint } from './lib/cluster.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, ms = 20000) {
  const t0 = Date.now();
  let v;
  for (;;) {
    v = await fn();
    if (v?.ok ?? v) return v;
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await sleep(200);
  }
}

// Allocates on the relay at port (a key created a moment ago reaches a relay node through
// the change feed: a 401 is retried) and relays n ChannelData messages of size bytes through
// an echo peer; resolves to {client, egress, ingress} as counted on the wire.
async function relayKnownBytes(port, cred, peer, n, size) {
  let c;
  await until('an allocation', async () => {
    c = new TurnClient({ port });
    const r = await c.allocate(cred);
    if (r.cls === CLASS.SUCCESS) return true;
    await c.close();
    return false;
  });
  let egress = 0, frames = 0;
  c.sock.on('message', (buf) => { if ((buf[0] & 0xc0) === 0x40) { egress += buf.length; frames++; } });
  assert.equal((await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
  for (let i = 0; i < n; i++) await c.sendChannel(0x4000, Buffer.alloc(size, i));
  await until('the echoes', () => frames === n);
  return { client: c, egress, ingress: n * (4 + size) };
}

describe('usage on PostgreSQL: two relay nodes add up', () => {
  let pg, store, account, token, peer, relay1, relay2, api;
  const nodes = [];

  before(async () => {
    pg = startPostgres();
    store = pg.newDatabase('usage');
    ({ account, token } = accountAndToken(store));
    const [p1, p2] = [await freePort(), await freePort()];
    const flush = ['--usage-flush-interval', '1'];
    relay1 = await startNode(store, { role: 'relay', relayPort: p1, extra: [...flush, '--node-name', 'relay-1'] });
    relay2 = await startNode(store, { role: 'relay', relayPort: p2, extra: [...flush, '--node-name', 'relay-2'] });
    api = await startNode(store, { role: 'api', relayPorts: [p1, p2] });
    nodes.push(relay1, relay2, api);
    peer = await echoPeer();
  });
  after(async () => {
    await peer?.close();
    for (const n of nodes) {
      const r = await n.stop();
      assert.equal(r.code, 0, `${n.role} exit status — stderr:\n${n.stderr()}`);
      n.cleanup();
    }
    pg?.stop();
  });

  test('each node writes its own rows; the API sums them to the byte', async () => {
    const created = await httpRequest(`${api.base}/accounts/${account}/calls/turn_keys`, { method: 'POST', token, body: { name: 'pg-usage' } });
    assert.equal(created.status, 201, created.text);
    const key = created.json.result;
    const cred = await mint(api, key);
    const a = await relayKnownBytes(relay1.relayPort, cred, peer, 25, 120);
    const b = await relayKnownBytes(relay2.relayPort, cred, peer, 15, 33);
    const want = { egress: a.egress + b.egress, ingress: a.ingress + b.ingress };
    assert.equal(want.egress, 25 * 124 + 15 * 37);
    const url = `${api.base}/accounts/${account}/calls/turn_keys/${key.uid}/usage?step=1d&group_by=username`;
    const got = await until('both nodes\' rows', async () => {
      const r = await httpRequest(url, { token });
      assert.equal(r.status, 200, r.text);
      const t = r.json.result.reduce((s, x) => ({ egress: s.egress + x.egressBytes, ingress: s.ingress + x.ingressBytes, peak: Math.max(s.peak, x.peakConcurrentAllocations) }), { egress: 0, ingress: 0, peak: 0 });
      return { ok: t.egress === want.egress && t.ingress === want.ingress && t.peak === 2, t, rows: r.json.result.length };
    });
    assert.equal(got.rows, 1); // one username, its rows from two nodes added up
    assert.equal(got.t.peak, 2); // one allocation on each node at the same time
    const nodesSeen = pg.sql(store, 'SELECT string_agg(DISTINCT node, \',\' ORDER BY node) FROM usage_minute');
    assert.equal(nodesSeen, 'relay-1,relay-2');
    await a.client.close();
    await b.client.close();
  });
});
