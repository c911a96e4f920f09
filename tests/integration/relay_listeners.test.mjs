// Issue 10, addresses and listeners, on loopback (no root needed; the NAT topology with a
// browser is relay_nat.test.mjs): several listeners (--turn-listen, --udp-listen, --tcp-listen,
// --tls-listen, repeatable) with one stdout line each and iceServers in Cloudflare's order;
// --external-ip PUBLIC/PRIVATE reported as the relayed address; hairpinning between two live
// allocations with no --allow-peer, while every other port of the server's own addresses
// (listeners, API, a closed relay) stays 403; configurations that cannot work are refused.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, createTurnKey, mintTurn, cliTimed, freshDataDir } from './lib/server.mjs';
import { TurnClient, CLASS } from './lib/stun.mjs';
import { rmSync } from 'node:fs';

const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'} ${r.reason ?? ''}` : String(r));
const PUBLIC = '100.200.0.10'; // not on the default deny list: only "own address" can refuse it

function listenerPorts(f) {
  const lines = f.stdout().split('\n').filter((l) => /TURN(\/TLS)? listening on/.test(l));
  return lines.map((l) => {
    const m = l.match(/TURN(\/TLS)? listening on ([0-9.]+|\[[0-9a-f:]+\]):(\d+)(?: (udp\+tcp|udp|tcp))?/);
    assert.ok(m, `listener line: ${l}`);
    return { kind: m[1] ? 'tls' : m[4], host: m[2], port: Number(m[3]) };
  });
}

async function iceServers(f, key) {
  const r = await fetch(`${f.url}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, {
    method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' }, body: '{"ttl":600}',
  });
  assert.equal(r.status, 201);
  return (await r.json()).iceServers;
}

async function allocated(f, key, opts = {}) {
  const c = new TurnClient({ port: f.turnPort, ...opts });
  const res = await c.allocate(await mintTurn(f, key, { prefix: 'listeners' }));
  assert.equal(res.cls, CLASS.SUCCESS, `Allocate: ${show(res)}`);
  return c;
}

const closeAll = async (f, clients) => {
  for (const c of clients) await c?.close();
  const r = await f?.close();
  assert.equal(r?.code, 0, `server exit status (sanitizers) — stderr:\n${f?.stderr()}`);
};

describe('several listeners', () => {
  let f, key, ls;
  const clients = [];
  before(async () => {
    f = await fixture({ extraArgs: ['--turn-listen', '127.0.0.1:0', '--udp-listen', '127.0.0.1:0', '--tcp-listen', '127.0.0.1:0',
      '--tls-listen', '127.0.0.1:0', '--tls-listen', '127.0.0.1:0'] });
    key = await createTurnKey(f, 'listeners');
    ls = listenerPorts(f);
  });
  after(() => closeAll(f, clients));

  test('one "listening on" line per listener, turn-listen first (the harness parses it)', () => {
    assert.deepEqual(ls.map((l) => l.kind), ['udp+tcp', 'udp', 'tcp', 'tls', 'tls'], f.stdout());
    assert.equal(f.turnPort, ls[0].port);
    assert.equal(f.tlsPort, ls[3].port);
    assert.equal(new Set(ls.map((l) => `${l.kind}:${l.port}`)).size, 5, 'five distinct ports');
  });

  test("iceServers list every listener in Cloudflare's order", async () => {
    const [T, U, C, S1, S2] = ls.map((l) => l.port);
    const servers = await iceServers(f, key);
    assert.deepEqual(servers[0].urls, [`stun:127.0.0.1:${T}`]);
    assert.deepEqual(servers[1].urls, [
      `turn:127.0.0.1:${T}?transport=udp`, `turn:127.0.0.1:${U}?transport=udp`,
      `turn:127.0.0.1:${T}?transport=tcp`, `turn:127.0.0.1:${C}?transport=tcp`,
      `turns:127.0.0.1:${S1}?transport=tcp`, `turns:127.0.0.1:${S2}?transport=tcp`]);
  });

  test('the UDP-only port allocates over UDP and answers from its own port', async () => {
    const c = new TurnClient({ port: ls[1].port });
    clients.push(c);
    const res = await c.allocate(await mintTurn(f, key));
    assert.equal(res.cls, CLASS.SUCCESS, show(res));
    assert.equal(c.relayed.address, '127.0.0.1');
  });

  test('the TCP-only port allocates over TCP', async () => {
    const c = new TurnClient({ port: ls[2].port, transport: 'tcp' });
    clients.push(c);
    const res = await c.allocate(await mintTurn(f, key));
    assert.equal(res.cls, CLASS.SUCCESS, show(res));
    assert.equal(c.relayed.address, '127.0.0.1');
  });

  test('every TLS listener accepts TURN over TLS', async () => {
    const tls = await import('node:tls');
    for (const l of ls.filter((x) => x.kind === 'tls')) {
      const ok = await new Promise((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: l.port, rejectUnauthorized: false }, () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
      });
      assert.ok(ok, `TLS handshake on ${l.port}`);
    }
  });
});

for (const external of [false, true]) {
  describe(`hairpin between two live allocations, no --allow-peer${external ? `, --external-ip ${PUBLIC}/127.0.0.1` : ''}`, () => {
    let f, key, a, b, ls;
    const clients = [];
    const relayHost = external ? PUBLIC : '127.0.0.1';
    before(async () => {
      f = await fixture({ extraArgs: ['--relay-threads', '2', '--udp-listen', '127.0.0.1:0', '--tcp-listen', '127.0.0.1:0',
        ...(external ? ['--external-ip', `${PUBLIC}/127.0.0.1`] : [])] });
      key = await createTurnKey(f, 'hairpin');
      ls = listenerPorts(f);
      a = await allocated(f, key);
      b = await allocated(f, key, { transport: 'tcp' });
      clients.push(a, b);
    });
    after(() => closeAll(f, clients));

    test(`XOR-RELAYED-ADDRESS is ${relayHost}, never the wildcard`, () => {
      assert.equal(a.relayed.address, relayHost);
      assert.equal(b.relayed.address, relayHost);
    });

    if (external) {
      test('iceServers name the external address', async () => {
        const servers = await iceServers(f, key);
        for (const u of [...servers[0].urls, ...servers[1].urls]) assert.match(u, new RegExp(`^turns?:${PUBLIC.replace(/\./g, '\\.')}:|^stun:${PUBLIC.replace(/\./g, '\\.')}:`), u);
      });
    }

    test('each may permit the other relay and data flows both ways, from the relayed address', async () => {
      assert.equal((await a.createPermission([b.relayed])).cls, CLASS.SUCCESS);
      assert.equal((await b.createPermission([a.relayed])).cls, CLASS.SUCCESS);
      await a.send(b.relayed, Buffer.from('a to b'));
      const got = await b.nextData({ timeoutMs: 5000 });
      assert.equal(got.data.toString(), 'a to b');
      assert.deepEqual([got.peer.address, got.peer.port], [a.relayed.address, a.relayed.port]);
      const ch = await b.channelBind(0x4001, a.relayed);
      assert.equal(ch.cls, CLASS.SUCCESS, show(ch));
      await b.sendChannel(0x4001, Buffer.from('b to a'));
      const back = await a.nextData({ timeoutMs: 5000 });
      assert.equal(back.data.toString(), 'b to a');
      assert.deepEqual([back.peer.address, back.peer.port], [b.relayed.address, b.relayed.port]);
    });

    test("the server's other ports stay 403: listeners, API, by loopback and external address", async () => {
      const ports = [...ls.map((l) => l.port), f.port];
      const hosts = external ? ['127.0.0.1', PUBLIC] : ['127.0.0.1'];
      for (const address of hosts) for (const port of ports) {
        const r = await a.createPermission([{ address, port }]);
        assert.equal(r.errorCode, 403, `${address}:${port}: ${show(r)}`);
        const s = await a.channelBind(0x4100 + (port % 0x100), { address, port });
        assert.equal(s.errorCode, 403, `ChannelBind ${address}:${port}: ${show(s)}`);
      }
    });

    test('a relay port whose allocation ended is no longer permitted', async () => {
      const c = await allocated(f, key);
      const gone = c.relayed;
      assert.equal((await a.createPermission([gone])).cls, CLASS.SUCCESS);
      const r = await c.refresh(0);
      assert.equal(r.cls, CLASS.SUCCESS, show(r));
      await c.close();
      const p = await a.createPermission([gone]);
      assert.equal(p.errorCode, 403, `closed relay ${gone.address}:${gone.port}: ${show(p)}`);
    });
  });
}

describe('configurations that cannot work are refused with a clear message', () => {
  const serve = (args) => {
    const data = freshDataDir();
    try {
      return cliTimed(['serve', '--data', data, '--log-level', 'warn', '--api-listen', '127.0.0.1:0', ...args], { timeoutMs: 10000 });
    } finally { rmSync(data, { recursive: true, force: true }); }
  };
  test('a wildcard listener without --public-host or --external-ip (it is refused before binding)', () => {
    const r = serve(['--turn-listen', '0.0.0.0:0', '--tls-listen', '']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--public-host or --external-ip/);
    const r6 = serve(['--turn-listen', '127.0.0.1:0', '--tls-listen', '[::]:0']);
    assert.notEqual(r6.code, 0);
    assert.match(r6.stderr, /wildcard address '\[::\]:0'/);
  });
  test('--external-ip twice for one family, malformed, a wildcard, or mixed families', () => {
    for (const bad of [['1.2.3.4', '5.6.7.8'], ['1.2.3'], ['0.0.0.0'], ['1.2.3.4/::1'], ['1.2.3.4/']]) {
      const r = serve(['--turn-listen', '127.0.0.1:0', '--tls-listen', '', ...bad.flatMap((v) => ['--external-ip', v])]);
      assert.notEqual(r.code, 0, bad.join(' '));
      assert.match(r.stderr, /--external-ip/, r.stderr);
    }
  });
  test('a wildcard --relay-ip', () => {
    const r = serve(['--turn-listen', '127.0.0.1:0', '--tls-listen', '', '--relay-ip', '0.0.0.0']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--relay-ip '0\.0\.0\.0'/);
  });
});
