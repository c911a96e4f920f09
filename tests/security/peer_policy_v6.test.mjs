// Issue 11 point 1 on an IPv6 relay ([::1] listener, so allocations relay on ::1): every
// new deny-list entry answers 403 on CreatePermission and ChannelBind, nothing is installed,
// and a Send indication to it relays nothing (the one allowed sink hears only what was
// addressed to it). See docs/security.md.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, createTurnKey, mintTurn } from '../integration/lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from '../integration/lib/stun.mjs';

const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'}` : String(r));

// IPv6 cases of issue 11 point 1 (several answered 200 before it).
export const DENIED_V6_NEW = [
  '64:ff9b:1::a00:1', '64:ff9b:1::a9fe:a9fe', // local-use NAT64 with a denied IPv4
  '::ffff:0:7f00:1', '::ffff:0:a9fe:a9fe', '::ffff:0:a83f:8110', // SIIT IPv4-translated
  'fec0::1', 'feff::1', // site-local
  '2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', // Teredo
  '3fff::1', '3fff:fff::1', // documentation
  '2001:2::1', // benchmarking
  '2001:10::1', '2001:1f::1', '2001:20::1', // ORCHID, ORCHIDv2
  'fd00:ec2::254', 'fd20:ce::254', // AWS and GCP metadata over IPv6
  '64:ff9b::a83f:8110', '::ffff:168.63.129.16', // Azure wireserver, NAT64 and mapped
];
export const DENIED_V4_CLOUD = ['168.63.129.16', '169.254.169.254', '100.100.100.200', '169.254.0.23'];

describe('peer policy on an IPv6 relay', () => {
  let f, key, c, sink;
  before(async () => {
    f = await fixture({ extraArgs: ['--turn-listen', '[::1]:0', '--allow-peer', '::1/128'] });
    key = await createTurnKey(f, 'sec-v6');
    c = new TurnClient({ host: '::1', port: f.turnPort });
    const r = await c.allocate({ ...(await mintTurn(f, key, { prefix: 'sec-v6' })), family: 6 });
    assert.equal(r.cls, CLASS.SUCCESS, `Allocate on [::1]: ${show(r)}`);
    assert.equal(c.relayed.family, 6, 'the relay address is IPv6');
    sink = await echoPeer({ host: '::1', echo: false });
  });
  after(async () => {
    await c?.close();
    await sink?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('control: an allowed IPv6 peer gets 200 (CreatePermission and ChannelBind)', async () => {
    const p = await c.createPermission([{ address: '2606:4700::1111', port: 53 }]);
    assert.equal(p.cls, CLASS.SUCCESS, show(p));
    const b = await c.channelBind(0x4fff, { address: '2606:4700::1001', port: 53 });
    assert.equal(b.cls, CLASS.SUCCESS, show(b));
  });

  test('every new IPv6 deny entry: CreatePermission → 403 and ChannelBind → 403', async () => {
    for (const [i, address] of DENIED_V6_NEW.entries()) {
      const p = await c.createPermission([{ address, port: 3478 }]);
      assert.equal(p.errorCode, 403, `CreatePermission ${address}: ${show(p)}`);
      const b = await c.channelBind(0x4000 + i, { address, port: 3478 });
      assert.equal(b.errorCode, 403, `ChannelBind ${address}: ${show(b)}`);
    }
  });

  test('one denied peer among allowed ones: 403 and no partial permission (a Send to the allowed one relays nothing)', async () => {
    const p = await c.createPermission([{ address: '::1', port: sink.port }, { address: 'fec0::1', port: 1 }]);
    assert.equal(p.errorCode, 403, show(p));
    await c.send({ address: '::1', port: sink.port }, Buffer.from('no permission was installed'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.seen.length, 0, 'the allowed half of a refused CreatePermission was not installed');
  });

  test('Send to each denied address relays nothing; the allowed sink hears exactly its own datagram', async () => {
    for (const address of DENIED_V6_NEW) await c.send({ address, port: sink.port }, Buffer.from(`denied ${address}`));
    const ok = await c.createPermission([{ address: '::1', port: sink.port }]);
    assert.equal(ok.cls, CLASS.SUCCESS, show(ok));
    await c.send({ address: '::1', port: sink.port }, Buffer.from('allowed'));
    const until = Date.now() + 5000;
    while (sink.seen.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(sink.seen.map((s) => s.data.toString()), ['allowed']);
  });
});

describe('cloud metadata addresses on an IPv4 relay', () => {
  let f, key, c;
  before(async () => {
    f = await fixture();
    key = await createTurnKey(f, 'sec-cloud');
    c = new TurnClient({ port: f.turnPort });
    const r = await c.allocate(await mintTurn(f, key, { prefix: 'sec-cloud' }));
    assert.equal(r.cls, CLASS.SUCCESS, show(r));
  });
  after(async () => {
    await c?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  test('168.63.129.16 (Azure), 169.254.169.254, 100.100.100.200 (Alibaba), 169.254.0.23 (Tencent): 403', async () => {
    for (const [i, address] of DENIED_V4_CLOUD.entries()) {
      const p = await c.createPermission([{ address, port: 80 }]);
      assert.equal(p.errorCode, 403, `CreatePermission ${address}: ${show(p)}`);
      const b = await c.channelBind(0x4200 + i, { address, port: 80 });
      assert.equal(b.errorCode, 403, `ChannelBind ${address}: ${show(b)}`);
    }
  });
});
