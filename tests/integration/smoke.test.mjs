import test from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { fixture } from './lib/server.mjs';

test('smoke: the official SDK creates, reads and deletes a key; server exits cleanly', async () => {
  const f = await fixture();
  try {
    const cf = new Cloudflare({ apiToken: f.token, baseURL: f.base, maxRetries: 0 });
    const k = await cf.calls.turn.create({ account_id: f.account, name: 'smoke' });
    assert.match(k.uid, /^[0-9a-f]{32}$/);
    assert.match(k.key, /^[0-9a-f]{64}$/);
    const g = await cf.calls.turn.get(k.uid, { account_id: f.account });
    assert.equal(g.name, 'smoke');
    assert.equal(g.key, undefined);
    const d = await cf.calls.turn.delete(k.uid, { account_id: f.account });
    assert.equal(d.uid, k.uid);
  } finally {
    const r = await f.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  }
});
