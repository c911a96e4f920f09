// Peer policy (product spec §4.3, include/turnkey/peer.h) against the real binary: with an
// empty allow-list every denied range answers 403 on CreatePermission and ChannelBind, and
// a Send indication to a denied address relays nothing; --allow-peer opens exactly what it names.
//
// IPv6 peers: the relay listens on 127.0.0.1, so it has no IPv6 relay address (an Allocate with
// REQUESTED-ADDRESS-FAMILY IPv6 is checked below to answer 440) and IPv6 peers are asked on an
// IPv4 allocation. The server checks the policy before the address family, so denied IPv6 forms
// answer 403; the tests accept 403 or 443 (both are refusals) and log which one was given.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, createTurnKey, mintTurn } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';

const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'} ${r.reason ?? ''}` : String(r));

const createKey = (f, name = 'policy') => createTurnKey(f, name);
const mint = (f, key, ttl = 86400) => mintTurn(f, key, { ttl, prefix: 'policy' });

// One address from every IPv4 range of the spec's deny list.
const DENIED_V4 = ['0.0.0.1', '10.1.2.3', '100.64.0.1', '127.0.0.1', '169.254.1.1', '172.16.0.1', '192.0.0.1', '192.0.2.1',
  '192.88.99.1', '192.168.1.1', '198.18.0.1', '198.51.100.1', '203.0.113.1', '224.0.0.1', '240.0.0.1', '255.255.255.255'];
// Range edges: still inside each range.
const DENIED_V4_EDGES = ['0.255.255.255', '10.255.255.255', '100.127.255.255', '127.255.255.254', '169.254.255.255',
  '172.31.255.255', '192.0.0.255', '192.168.255.255', '198.19.255.255', '239.255.255.255', '255.255.255.254'];
const DENIED_V6 = ['::1', '::', 'fc00::1', 'fe80::1', 'ff02::1', '100::1', '2001:db8::1', '::ffff:127.0.0.1', '::127.0.0.1',
  '64:ff9b::7f00:1', '2002:7f00:1::1', 'fd12:3456::1', 'febf::1', '::ffff:10.0.0.1', '64:ff9b::a00:1', '2002:c0a8:101::1'];

const refused = (r) => r.cls === CLASS.ERROR && (r.errorCode === 403 || r.errorCode === 443);

async function allocated(f, key) {
  const c = new TurnClient({ port: f.turnPort });
  const res = await c.allocate(await mint(f, key));
  assert.equal(res.cls, CLASS.SUCCESS, `Allocate: ${show(res)}`);
  return c;
}

describe('peer policy, empty allow-list', () => {
  let f, key, c;
  before(async () => {
    f = await fixture();
    assert.ok(f.turnPort);
    key = await createKey(f);
    c = await allocated(f, key);
  });
  after(async () => {
    await c?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('control: a public address is allowed (CreatePermission and ChannelBind succeed)', async () => {
    const r = await c.createPermission([{ address: '8.8.8.8', port: 53 }]);
    assert.equal(r.cls, CLASS.SUCCESS, show(r));
    const b = await c.channelBind(0x4fff, { address: '8.8.4.4', port: 53 });
    assert.equal(b.cls, CLASS.SUCCESS, show(b));
  });

  test('every denied IPv4 range: CreatePermission → 403 and ChannelBind → 403', async () => {
    const all = [...DENIED_V4, ...DENIED_V4_EDGES];
    for (const [i, address] of all.entries()) {
      const p = await c.createPermission([{ address, port: 3478 }]);
      assert.equal(p.cls, CLASS.ERROR, `CreatePermission ${address}: ${show(p)}`);
      assert.equal(p.errorCode, 403, `CreatePermission ${address}: ${show(p)}`);
      assert.ok(p.integrityOk(c.key), `403 for ${address} carries MESSAGE-INTEGRITY`);
      const b = await c.channelBind(0x4000 + i, { address, port: 3478 });
      assert.equal(b.errorCode, 403, `ChannelBind 0x${(0x4000 + i).toString(16)} → ${address}: ${show(b)}`);
    }
  });

  test('the edges just outside the ranges are allowed (the ranges are not wider than specified)', async () => {
    for (const address of ['11.0.0.1', '100.128.0.1', '100.63.255.255', '169.253.255.255', '172.15.255.255', '172.32.0.1',
      '192.0.1.1', '192.88.98.1', '192.169.0.1', '198.17.255.255', '198.20.0.1', '198.51.99.1', '203.0.112.1', '223.255.255.255']) {
      const p = await c.createPermission([{ address, port: 3478 }]);
      assert.equal(p.cls, CLASS.SUCCESS, `CreatePermission ${address}: ${show(p)}`);
    }
  });

  test('one denied peer among allowed ones refuses the whole CreatePermission', async () => {
    const p = await c.createPermission([{ address: '8.8.8.8', port: 1 }, { address: '10.0.0.1', port: 1 }]);
    assert.equal(p.errorCode, 403, show(p));
  });

  test('IPv6 forms (denied ranges and embedded denied IPv4) are refused (403 or 443, never success)', async () => {
    const seen = {};
    for (const [i, address] of DENIED_V6.entries()) {
      const p = await c.createPermission([{ address, port: 3478 }]);
      assert.ok(refused(p), `CreatePermission ${address}: ${show(p)}`);
      const b = await c.channelBind(0x4100 + i, { address, port: 3478 });
      assert.ok(refused(b), `ChannelBind ${address}: ${show(b)}`);
      seen[address] = `${p.errorCode}/${b.errorCode}`;
    }
    console.log(`IPv6 peers on an IPv4 allocation (CreatePermission/ChannelBind): ${JSON.stringify(seen)}`);
    // The server checks policy before family: denied forms answer 403 (spec §4.3), not just 443.
    for (const [a, codes] of Object.entries(seen)) assert.equal(codes, '403/403', `${a}: policy decides before the family check`);
  });

  test('no IPv6 relay on a 127.0.0.1 listener: REQUESTED-ADDRESS-FAMILY IPv6 → 440; an allowed IPv6 peer → 443', async () => {
    const c6 = new TurnClient({ port: f.turnPort });
    try {
      const r = await c6.allocate({ ...(await mint(f, key)), family: 6 });
      assert.equal(r.errorCode, 440, show(r));
    } finally { await c6.close(); }
    const p = await c.createPermission([{ address: '2606:4700::1111', port: 53 }]);
    assert.equal(p.errorCode, 443, show(p));
  });

  test('a Send indication to a denied address relays nothing (127.0.0.1 listener hears nothing in 500 ms)', async () => {
    const sink = await echoPeer({ echo: false });
    const sink2 = await echoPeer({ host: '127.0.0.2', echo: false }).catch(() => null);
    try {
      const before = await c.createPermission([{ address: '127.0.0.1', port: sink.port }]);
      assert.equal(before.errorCode, 403, show(before));
      for (let i = 0; i < 5; i++) {
        await c.send({ address: '127.0.0.1', port: sink.port }, Buffer.from(`denied ${i}`));
        await c.send({ address: '::ffff:127.0.0.1', port: sink.port }, Buffer.from(`mapped ${i}`));
        if (sink2) await c.send({ address: '127.0.0.2', port: sink2.port }, Buffer.from(`denied2 ${i}`));
      }
      await c.sendChannel(0x4000, Buffer.from('unbound channel'));
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(sink.seen.length, 0, `127.0.0.1 received ${sink.seen.length} datagram(s)`);
      if (sink2) assert.equal(sink2.seen.length, 0, `127.0.0.2 received ${sink2.seen.length} datagram(s)`);
    } finally {
      await sink.close();
      await sink2?.close();
    }
  });
});

describe('peer policy, --allow-peer 127.0.0.1/32', () => {
  let f, key, c, sink;
  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32'] });
    key = await createKey(f);
    c = await allocated(f, key);
    sink = await echoPeer({ echo: false });
  });
  after(async () => {
    await c?.close();
    await sink?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('127.0.0.1 is allowed; 127.0.0.2 and 10.0.0.1 are still 403', async () => {
    const ok = await c.createPermission([{ address: '127.0.0.1', port: sink.port }]);
    assert.equal(ok.cls, CLASS.SUCCESS, show(ok));
    const okb = await c.channelBind(0x4000, { address: '127.0.0.1', port: sink.port });
    assert.equal(okb.cls, CLASS.SUCCESS, show(okb));
    for (const [i, address] of ['127.0.0.2', '10.0.0.1', '127.0.0.0', '127.255.255.255'].entries()) {
      const p = await c.createPermission([{ address, port: 3478 }]);
      assert.equal(p.errorCode, 403, `CreatePermission ${address}: ${show(p)}`);
      const b = await c.channelBind(0x4001 + i, { address, port: 3478 });
      assert.equal(b.errorCode, 403, `ChannelBind ${address}: ${show(b)}`);
    }
  });

  test('the IPv6 forms of 127.0.0.1 stay refused (compatible/NAT64/6to4 are not opened by an IPv4 range)', async () => {
    for (const address of ['::127.0.0.1', '64:ff9b::7f00:1', '2002:7f00:1::1', '::ffff:127.0.0.1', '::1']) {
      const p = await c.createPermission([{ address, port: 3478 }]);
      assert.ok(refused(p), `CreatePermission ${address}: ${show(p)}`);
    }
  });

  test('control for the silence check: a Send indication to the allowed 127.0.0.1 does arrive', async () => {
    await c.send({ address: '127.0.0.1', port: sink.port }, Buffer.from('allowed'));
    for (let i = 0; i < 50 && sink.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(sink.seen.length, 1);
    assert.equal(sink.seen[0].data.toString(), 'allowed');
    assert.equal(sink.seen[0].from.port, c.relayed.port, 'sent from the relayed address');
  });

  test('a Send indication to 127.0.0.2 (denied, no permission possible) relays nothing', async () => {
    const sink2 = await echoPeer({ host: '127.0.0.2', echo: false }).catch(() => null);
    if (!sink2) return;
    try {
      await c.send({ address: '127.0.0.2', port: sink2.port }, Buffer.from('denied'));
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(sink2.seen.length, 0);
    } finally { await sink2.close(); }
  });
});

describe('peer policy, --allow-peer 127.0.0.0/8 (a range, not the single own address)', () => {
  let f, key, c;
  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.0/8'] });
    key = await createKey(f);
    c = await allocated(f, key);
  });
  after(async () => {
    await c?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test("127.0.0.2 is opened, but the server's own address 127.0.0.1 stays 403 (peer.h rule 3)", async () => {
    const p2 = await c.createPermission([{ address: '127.0.0.2', port: 3478 }]);
    assert.equal(p2.cls, CLASS.SUCCESS, show(p2));
    const p1 = await c.createPermission([{ address: '127.0.0.1', port: 3478 }]);
    assert.equal(p1.errorCode, 403, `own address 127.0.0.1: ${show(p1)}`);
    const b1 = await c.channelBind(0x4000, { address: '127.0.0.1', port: f.turnPort });
    assert.equal(b1.errorCode, 403, `ChannelBind to the TURN listener itself: ${show(b1)}`);
    const p10 = await c.createPermission([{ address: '10.0.0.1', port: 3478 }]);
    assert.equal(p10.errorCode, 403, show(p10));
  });
});
