// Live lifecycle (product spec §4.4): an allocation whose credential is revoked, whose key is
// deleted, or whose credential expires stops relaying within 1 second. Clients relay steadily
// (one ChannelData every 20 ms through a local echo peer) and the time from the event to the
// last echo is measured and printed.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, createTurnKey, mintTurn } from './lib/server.mjs';
import { TurnClient, A, CLASS, METHOD, echoPeer } from './lib/stun.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'} ${r.reason ?? ''}` : String(r));
const INTERVAL_MS = 20;
const LIMIT_MS = 1000;

const createKey = (f, name) => createTurnKey(f, name);
const mint = (f, key, ttl = 600) => mintTurn(f, key, { ttl, prefix: 'life' });

// A client relaying steadily: ChannelData (4-byte sequence number) every 20 ms on channel
// 0x4000 to the echo peer; every echo is recorded with its arrival time. Stops itself after
// maxMs at the latest.
async function relayingClient(f, cred, peer, { transport = 'udp', maxMs = 15000 } = {}) {
  const c = new TurnClient({ port: f.turnPort, transport });
  const a = await c.allocate(cred);
  assert.equal(a.cls, CLASS.SUCCESS, `Allocate: ${show(a)}`);
  const b = await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
  assert.equal(b.cls, CLASS.SUCCESS, `ChannelBind: ${show(b)}`);
  const echoes = [];
  let seq = 0;
  c.on('data', (d) => {
    if (d.via === 'channel' && d.channel === 0x4000 && d.data.length === 4) echoes.push({ at: performance.now(), wall: Date.now(), seq: d.data.readUInt32BE(0) });
  });
  const timer = setInterval(() => {
    c.drainData(); // the 'data' events are what counts; keep the queue empty
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(seq++);
    c.sendChannel(0x4000, buf).catch(() => {});
  }, INTERVAL_MS);
  const stopper = setTimeout(() => clearInterval(timer), maxMs);
  const s = {
    c, echoes, cred, transport,
    sent: () => seq,
    async waitFlowing(n = 10, ms = 3000) {
      const start = performance.now();
      while (echoes.length < n && performance.now() - start < ms) await sleep(INTERVAL_MS);
      assert.ok(echoes.length >= n, `${transport} client relays (got ${echoes.length} echoes)`);
    },
    lastAt: () => echoes.at(-1)?.at ?? -Infinity,
    lastWall: () => echoes.at(-1)?.wall ?? -Infinity,
    async stop() { clearInterval(timer); clearTimeout(stopper); await c.close(); },
  };
  return s;
}

describe('relay lifecycle: revocation, key deletion, expiry', () => {
  let f, peer, keyA, keyB, keyC;
  const streams = [];
  const measured = {};

  before(async () => {
    // Four relay workers: the clients' 5-tuples spread over several event loops, so the
    // lifecycle notification has to reach every one of them.
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--relay-threads', '4'] });
    assert.ok(f.turnPort);
    peer = await echoPeer();
    keyA = await createKey(f, 'revoke');
    keyB = await createKey(f, 'delete');
    keyC = await createKey(f, 'expiry');
  });
  after(async () => {
    for (const s of streams) await s.stop();
    await peer?.close();
    const r = await f?.close();
    console.log(`revocation/deletion/expiry-to-silence (ms): ${JSON.stringify(measured)}`);
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('(a) revoking a credential stops its allocations (UDP and TCP) within 1 s; others keep relaying; a new Allocate → 401', async () => {
    const cred = await mint(f, keyA);
    const other = await mint(f, keyA);
    const sUdp = await relayingClient(f, cred, peer);
    const sTcp = await relayingClient(f, cred, peer, { transport: 'tcp' });
    const sMore = [await relayingClient(f, cred, peer), await relayingClient(f, cred, peer), await relayingClient(f, cred, peer, { transport: 'tcp' })];
    const sCtl = await relayingClient(f, other, peer);
    streams.push(sUdp, sTcp, ...sMore, sCtl);
    await Promise.all([sUdp, sTcp, ...sMore, sCtl].map((x) => x.waitFlowing()));

    const tSend = performance.now();
    const r = await fetch(`${f.url}/v1/turn/keys/${keyA.uid}/credentials/${cred.username}/revoke`, {
      method: 'POST', headers: { authorization: `Bearer ${keyA.key}` },
    });
    const t204 = performance.now();
    assert.equal(r.status, 204);
    await sleep(1500);
    const countAfter = [sUdp, sTcp, ...sMore].map((x) => x.echoes.length);
    await sleep(500);
    const dUdp = sUdp.lastAt() - t204, dTcp = sTcp.lastAt() - t204;
    const dMore = sMore.map((x) => x.lastAt() - t204);
    measured.revokeUdp = Math.round(dUdp);
    measured.revokeTcp = Math.round(dTcp);
    console.log(`(a) revoke: 204 after ${Math.round(t204 - tSend)} ms; last echo after the 204: UDP ${dUdp.toFixed(1)} ms, TCP ${dTcp.toFixed(1)} ms, others ${dMore.map((d) => d.toFixed(1)).join(' / ')} ms`);
    assert.ok(dUdp < LIMIT_MS, `UDP relaying stopped ${dUdp.toFixed(1)} ms after the 204`);
    assert.ok(dTcp < LIMIT_MS, `TCP relaying stopped ${dTcp.toFixed(1)} ms after the 204`);
    for (const d of dMore) assert.ok(d < LIMIT_MS, `every allocation of the username stopped (${d.toFixed(1)} ms)`);
    assert.deepEqual([sUdp, sTcp, ...sMore].map((x) => x.echoes.length), countAfter, 'no echoes after 1.5 s');
    assert.ok(sCtl.lastAt() > t204 + 1500, 'another username of the same key keeps relaying');

    const fresh = new TurnClient({ port: f.turnPort });
    try {
      const res = await fresh.allocate(cred);
      assert.equal(res.errorCode, 401, `Allocate with the revoked username: ${show(res)}`);
    } finally { await fresh.close(); }
    const ref = await sUdp.c.refresh(600);
    assert.equal(ref.errorCode, 401, `Refresh on the revoked allocation's 5-tuple: ${show(ref)}`);
    // The 5-tuples were freed: the same TCP connection allocates again with another credential.
    const again = await sTcp.c.request(METHOD.ALLOCATE, [A.requestedTransport()], { auth: { username: other.username, password: other.password } });
    assert.equal(again.cls, CLASS.SUCCESS, `new Allocate on the revoked allocation's TCP connection: ${show(again)}`);
  });

  test('(b) deleting the TURN key stops its allocations within 1 s; other keys keep relaying; a new Allocate → 401', async () => {
    const s1 = await relayingClient(f, await mint(f, keyB), peer);
    const s2 = await relayingClient(f, await mint(f, keyB), peer, { transport: 'tcp' });
    const sMore = [await relayingClient(f, await mint(f, keyB), peer), await relayingClient(f, await mint(f, keyB), peer),
      await relayingClient(f, await mint(f, keyB), peer, { transport: 'tcp' })];
    const sCtl = await relayingClient(f, await mint(f, keyC), peer);
    streams.push(s1, s2, ...sMore, sCtl);
    await Promise.all([s1, s2, ...sMore, sCtl].map((x) => x.waitFlowing()));

    const tSend = performance.now();
    const r = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys/${keyB.uid}`, {
      method: 'DELETE', headers: { authorization: `Bearer ${f.token}` },
    });
    const tDone = performance.now();
    assert.equal(r.status, 200, await r.text());
    await sleep(1500);
    const countAfter = [s1, s2, ...sMore].map((x) => x.echoes.length);
    await sleep(500);
    const d1 = s1.lastAt() - tDone, d2 = s2.lastAt() - tDone;
    const dMore = sMore.map((x) => x.lastAt() - tDone);
    measured.deleteUdp = Math.round(d1);
    measured.deleteTcp = Math.round(d2);
    console.log(`(b) delete: answered after ${Math.round(tDone - tSend)} ms; last echo after the answer: UDP ${d1.toFixed(1)} ms, TCP ${d2.toFixed(1)} ms, others ${dMore.map((d) => d.toFixed(1)).join(' / ')} ms`);
    assert.ok(d1 < LIMIT_MS, `UDP relaying stopped ${d1.toFixed(1)} ms after the delete`);
    assert.ok(d2 < LIMIT_MS, `TCP relaying stopped ${d2.toFixed(1)} ms after the delete`);
    for (const d of dMore) assert.ok(d < LIMIT_MS, `every allocation of the key stopped (${d.toFixed(1)} ms)`);
    assert.deepEqual([s1, s2, ...sMore].map((x) => x.echoes.length), countAfter, 'no echoes after 1.5 s');
    assert.ok(sCtl.lastAt() > tDone + 1500, 'a credential of another key keeps relaying');

    const fresh = new TurnClient({ port: f.turnPort });
    try {
      const res = await fresh.allocate(s1.cred);
      assert.equal(res.errorCode, 401, `Allocate with a deleted key's credential: ${show(res)}`);
    } finally { await fresh.close(); }
  });

  test('(c) a credential minted with ttl 3 s stops relaying within 1 s of its expiry; a Refresh after expiry → 401', async () => {
    const cred = await mint(f, keyC, 3);
    const expiryMs = Number(cred.username.split(':')[0]) * 1000;
    assert.ok(expiryMs > Date.now() && expiryMs <= Date.now() + 3000 + 1000, 'the username carries the expiry');
    const s = await relayingClient(f, cred, peer);
    const st = await relayingClient(f, cred, peer, { transport: 'tcp' });
    streams.push(s, st);
    await Promise.all([s.waitFlowing(5, 1500), st.waitFlowing(5, 1500)]);
    // Wait (bounded) until 1.5 s past the expiry.
    while (Date.now() < expiryMs + 1500) await sleep(50);
    const count = [s.echoes.length, st.echoes.length];
    await sleep(500);
    const d = s.lastWall() - expiryMs, dt = st.lastWall() - expiryMs;
    measured.expiryUdp = d;
    measured.expiryTcp = dt;
    console.log(`(c) expiry: last echo ${d} ms (UDP), ${dt} ms (TCP) after the credential's expiry (negative: before it)`);
    assert.ok(d < LIMIT_MS, `UDP relaying stopped ${d} ms after expiry`);
    assert.ok(dt < LIMIT_MS, `TCP relaying stopped ${dt} ms after expiry`);
    assert.ok(s.lastWall() > expiryMs - 1500, 'relaying went on until shortly before the expiry');
    assert.deepEqual([s.echoes.length, st.echoes.length], count, 'no echoes after 1.5 s');
    const ref = await s.c.refresh(600);
    assert.equal(ref.errorCode, 401, `Refresh after expiry: ${show(ref)}`);
  });
});
