// IPv6 relaying per RFC 8656 against the real binary: REQUESTED-ADDRESS-FAMILY IPv6, dual
// allocations (ADDITIONAL-ADDRESS-FAMILY: an IPv4 and an IPv6 relay in one allocation, each
// family's peers reached through its own relay), the 440/443 rules, deleting one family of a
// dual allocation, and coturn's turnutils_uclient -x relaying over an IPv6 relay address.
//
// The server listens on 127.0.0.1 only and relays on `--relay-ip 127.0.0.1,::1`: an IPv4
// client gets an IPv6 relay on ::1. Peers are echo sockets on 127.0.0.1 and ::1, opened with
// --allow-peer (loopback is denied by default).
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fixture, createTurnKey, mintTurn } from './lib/server.mjs';
import { TurnClient, CLASS, ATTR, METHOD, A, echoPeer, decodeXorAddress } from './lib/stun.mjs';
import { freeUdpPort, uclient } from './lib/tools.mjs';

const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'} ${r.reason ?? ''}` : String(r));
const FAM = { V4: 0x01, V6: 0x02 };
const dualAttr = A.raw(ATTR.ADDITIONAL_ADDRESS_FAMILY, [FAM.V6, 0, 0, 0]);
const relayedAll = (res) => res.all(ATTR.XOR_RELAYED_ADDRESS).map((v) => decodeXorAddress(v, res.txid));

describe('IPv6 relaying (RFC 8656)', () => {
  let f, key, p4, p6;
  const mint = () => mintTurn(f, key, { ttl: 3600, prefix: 'v6' });
  const client = () => new TurnClient({ port: f.turnPort });

  before(async () => {
    f = await fixture({ extraArgs: ['--relay-ip', '127.0.0.1,::1', '--allow-peer', '127.0.0.1/32', '--allow-peer', '::1/128'] });
    key = await createTurnKey(f, 'ipv6');
    p4 = await echoPeer({ host: '127.0.0.1' });
    p6 = await echoPeer({ host: '::1' });
  });
  after(async () => {
    await p4?.close();
    await p6?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('dual allocation: two relayed addresses, each family relayed through its own', async () => {
    const c = client();
    try {
      const res = await c.allocate({ ...(await mint()), attrs: [dualAttr] });
      assert.equal(res.cls, CLASS.SUCCESS, show(res));
      const relayed = relayedAll(res);
      assert.equal(relayed.length, 2, 'two XOR-RELAYED-ADDRESS attributes');
      assert.deepEqual(relayed.map((r) => [r.family, r.address]), [[4, '127.0.0.1'], [6, '::1']]);
      assert.equal(res.get(ATTR.ADDRESS_ERROR_CODE), undefined);
      const perm = await c.createPermission([{ address: '127.0.0.1', port: p4.port }, { address: '::1', port: p6.port }]);
      assert.equal(perm.cls, CLASS.SUCCESS, show(perm));
      await c.send({ address: '::1', port: p6.port }, Buffer.from('over six'));
      const back6 = await c.nextData({ filter: (d) => d.peer?.family === 6 });
      assert.equal(back6.data.toString(), 'over six');
      assert.equal(p6.seen.at(-1).from.port, relayed[1].port, 'the IPv6 peer saw the IPv6 relayed address');
      await c.send({ address: '127.0.0.1', port: p4.port }, Buffer.from('over four'));
      const back4 = await c.nextData({ filter: (d) => d.peer?.family === 4 });
      assert.equal(back4.data.toString(), 'over four');
      assert.equal(p4.seen.at(-1).from.port, relayed[0].port, 'the IPv4 peer saw the IPv4 relayed address');
      // a channel to the IPv6 peer works the same
      const ch = await c.channelBind(0x4001, { address: '::1', port: p6.port });
      assert.equal(ch.cls, CLASS.SUCCESS, show(ch));
      await c.sendChannel(0x4001, Buffer.from('chan six'));
      const cd = await c.nextData({ filter: (d) => d.via === 'channel' });
      assert.equal(cd.data.toString(), 'chan six');
    } finally { await c.close(); }
  });

  test('REQUESTED-ADDRESS-FAMILY IPv6: an IPv6 relay; IPv4 peers get 443', async () => {
    const c = client();
    try {
      const res = await c.allocate({ ...(await mint()), family: 6 });
      assert.equal(res.cls, CLASS.SUCCESS, show(res));
      assert.equal(res.xorRelayedAddress.family, 6);
      assert.equal(relayedAll(res).length, 1);
      const bad = await c.createPermission([{ address: '127.0.0.1', port: p4.port }]);
      assert.equal(bad.errorCode, 443, show(bad));
      const ok = await c.createPermission([{ address: '::1', port: p6.port }]);
      assert.equal(ok.cls, CLASS.SUCCESS, show(ok));
      await c.send({ address: '::1', port: p6.port }, Buffer.from('six only'));
      assert.equal((await c.nextData()).data.toString(), 'six only');
      // Refresh asking for the other family: 443
      const r = await c.request(METHOD.REFRESH, [A.lifetime(600), A.requestedAddressFamily(4)], { auth: true });
      assert.equal(r.errorCode, 443, show(r));
    } finally { await c.close(); }
  });

  test('both REQUESTED- and ADDITIONAL-ADDRESS-FAMILY → 400; ADDITIONAL IPv4 → 400; an unknown family → 440', async () => {
    const c = client();
    try {
      const cred = await mint();
      const both = await c.allocate({ ...cred, family: 4, attrs: [dualAttr] });
      assert.equal(both.errorCode, 400, show(both));
      const v4add = await c.allocate({ ...cred, attrs: [A.raw(ATTR.ADDITIONAL_ADDRESS_FAMILY, [FAM.V4, 0, 0, 0])] });
      assert.equal(v4add.errorCode, 400, show(v4add));
      const odd = await c.allocate({ ...cred, family: 3 });
      assert.equal(odd.errorCode, 440, show(odd));
    } finally { await c.close(); }
  });

  test('Refresh with LIFETIME 0 and REQUESTED-ADDRESS-FAMILY IPv6 deletes only the IPv6 relay', async () => {
    const c = client();
    try {
      const res = await c.allocate({ ...(await mint()), attrs: [dualAttr] });
      assert.equal(relayedAll(res).length, 2, show(res));
      const del = await c.request(METHOD.REFRESH, [A.lifetime(0), A.requestedAddressFamily(6)], { auth: true });
      assert.equal(del.cls, CLASS.SUCCESS, show(del));
      const p = await c.createPermission([{ address: '::1', port: p6.port }]);
      assert.equal(p.errorCode, 443, `IPv6 peers after the IPv6 relay is gone: ${show(p)}`);
      const ok = await c.createPermission([{ address: '127.0.0.1', port: p4.port }]);
      assert.equal(ok.cls, CLASS.SUCCESS, show(ok));
      await c.send({ address: '127.0.0.1', port: p4.port }, Buffer.from('four stays'));
      assert.equal((await c.nextData()).data.toString(), 'four stays');
      const end = await c.refresh(0);
      assert.equal(end.cls, CLASS.SUCCESS, show(end));
      const after0 = await c.refresh(600);
      assert.equal(after0.errorCode, 437, 'the allocation is gone');
    } finally { await c.close(); }
  });
});

const haveCoturn = spawnSync('sh', ['-c', 'command -v turnutils_uclient && command -v turnutils_peer']).status === 0;

describe('turnutils_uclient -x: coturn\'s client over an IPv6 relay', { skip: !haveCoturn && 'coturn tools not installed' }, () => {
  let f, key, peer, peerPort;
  before(async () => {
    f = await fixture({ extraArgs: ['--relay-ip', '127.0.0.1,::1', '--allow-peer', '::1/128', '--user-quota', '100'] });
    key = await createTurnKey(f, 'uclient6');
    peerPort = await freeUdpPort();
    peer = spawn('turnutils_peer', ['-L', '::1', '-p', String(peerPort)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
  });
  after(async () => {
    peer?.kill('SIGTERM');
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  for (const [name, extra] of [['UDP, ChannelData', []], ['UDP, Send/Data indications', ['-s']], ['TCP, ChannelData', ['-t']]]) {
    // The peer listens on ::1 only and ::1/128 is the only peer range opened: an IPv4 relay
    // could not reach it (443), so every echoed message went through an IPv6 relay address.
    test(`${name}: every message echoed by an IPv6 peer`, async () => {
      const cred = await mintTurn(f, key, { ttl: 600, prefix: 'uc6' });
      const args = ['-c', '-x', '-e', '::1', '-r', String(peerPort), '-u', cred.username, '-w', cred.password,
        '-p', String(f.turnPort), '-n', '20', '-l', '100', ...extra, '127.0.0.1'];
      const r = await uclient(args);
      const tot = [...r.out.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/gm)].at(-1);
      assert.equal(r.code, 0, r.out.slice(-2000));
      assert.ok(tot, r.out.slice(-2000));
      assert.deepEqual([Number(tot[1]), Number(tot[2])], [20, 20], r.out.slice(-2000));
    });
  }
});
