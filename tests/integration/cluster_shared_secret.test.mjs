// Shared secrets across a cluster (issue 15): one PostgreSQL, an API node and a relay node.
// A secret added on the API node reaches the relay node through the change feed; deleting it
// there ends the relay node's allocations within 2 s.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { httpRequest, expectEnvelope } from './lib/server.mjs';
import { echoPeer } from './lib/stun.mjs';
import { startPostgres } from './lib/pg.mjs';
import { freePort, accountAndToken, startNode, relaying } from './lib/cluster.mjs';

describe('cluster: shared secrets follow the change feed', () => {
  let pg, store, account, token, peer, api, relay, port;
  before(async () => {
    pg = startPostgres();
    store = pg.newDatabase('secrets');
    ({ account, token } = accountAndToken(store));
    port = await freePort();
    relay = await startNode(store, { role: 'relay', relayPort: port });
    api = await startNode(store, { role: 'api', relayPorts: [port] });
    peer = await echoPeer();
  });
  after(async () => {
    await peer?.close();
    for (const n of [api, relay]) if (n) { await n.kill9().catch(() => {}); n.cleanup(); }
    pg?.stop();
  });

  test('added on the API node, used on the relay node, deleted: the allocation ends', async () => {
    const call = (path, opts = {}) => httpRequest(`${api.base}/accounts/${account}/calls/turn_keys${path}`, { token, ...opts });
    const key = expectEnvelope(await call('', { method: 'POST', body: { name: 'apps' } }), 201).result;
    const s = expectEnvelope(await call(`/${key.uid}/shared_secrets`, { method: 'POST', body: {} }), 201).result;
    const username = `${Math.floor(Date.now() / 1000) + 3600}:@alice:example.org~${key.uid}`;
    const password = createHmac('sha1', s.secret).update(username).digest('base64');
    const r = await relaying(port, { username, password }, peer, { waitMs: 10000 });
    assert.ok(r.ok, `allocation on the relay node: ${JSON.stringify(r.result?.errorCode ?? r.result?.error?.message)}`);
    try {
      assert.ok(await r.flowing(), 'relaying');
      const t0 = performance.now();
      expectEnvelope(await call(`/${key.uid}/shared_secrets/${s.id}`, { method: 'DELETE' }), 200);
      assert.ok(await r.silent(300, 5000), 'the relay node stopped relaying');
      const ms = r.last() - t0;
      assert.ok(ms < 2000, `last echo ${ms.toFixed(0)} ms after the delete was sent`);
    } finally { await r.stop(); }
  });
});
