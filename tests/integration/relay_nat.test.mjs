// Issue 10, proof (point 12): a cloud-like topology in network namespaces this test creates.
//   server ns: only a private address, 10.77.0.2/24 (default route via the router)
//   router ns: 10.77.0.1 and 100.201.0.1; nftables maps the public-looking 100.200.0.10 1:1 onto
//              10.77.0.2 (prerouting DNAT, postrouting SNAT), as a cloud's elastic IP does
//   client ns: 100.201.0.2/24, reaches only 100.200.0.0/24 through the router
// turnkey runs in the server ns on wildcard listeners ([::] dual-stack and 0.0.0.0, extra UDP/TCP/TLS
// ports) with --external-ip 100.200.0.10/10.77.0.2 and no --allow-peer. From the client ns
// (lib/nat_client.mjs): iceServers name the public address in Cloudflare's order; allocations
// report it; two allocations hairpin; CreatePermission for the server's API and listener ports by
// public, private and loopback address gets 403; headless Chromium opens relay-only to relay-only
// data channels over UDP, TCP and TLS. Nothing leaves the namespaces. Needs root, ip, nft and
// chromium: without them the suite is skipped, except under CI=true, where it fails.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { BIN, freshDataDir, createAccount, createToken } from './lib/server.mjs';

const PUBLIC = '100.200.0.10', PRIVATE = '10.77.0.2', SECOND = '10.77.0.3', CLIENT = '100.201.0.2';
const PORTS = { api: 8080, turn: 3478, udp: 443, tcp: 80, tls: 5349, tls2: 443 };
const tools = ['/usr/sbin/ip', '/usr/sbin/nft', '/usr/bin/chromium'];
const missing = [
  ...(process.getuid?.() === 0 ? [] : ['root']),
  ...tools.filter((t) => !existsSync(t) && !existsSync(t.replace('/usr/sbin/', '/sbin/'))),
];
const why = missing.length ? `needs ${missing.join(', ')} (scripts/deps.sh test installs nftables, iproute2, chromium)` : false;

if (why && process.env.CI === 'true') {
  test('relay NAT topology can run here', () => assert.fail(`relay_nat.test.mjs cannot run under CI: ${why}`));
}

const id = process.pid % 100000;
const NS = { s: `tkn${id}s`, r: `tkn${id}r`, c: `tkn${id}c` };
const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const inNs = (ns, ...args) => ip('netns', 'exec', ns, ...args);

function buildTopology() {
  for (const ns of Object.values(NS)) ip('netns', 'add', ns);
  ip('link', 'add', `tv${id}s`, 'type', 'veth', 'peer', 'name', `tv${id}rs`);
  ip('link', 'add', `tv${id}c`, 'type', 'veth', 'peer', 'name', `tv${id}rc`);
  ip('link', 'set', `tv${id}s`, 'netns', NS.s);
  ip('link', 'set', `tv${id}rs`, 'netns', NS.r);
  ip('link', 'set', `tv${id}c`, 'netns', NS.c);
  ip('link', 'set', `tv${id}rc`, 'netns', NS.r);
  const cfgIf = (ns, dev, addr) => {
    inNs(ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`);
    inNs(ns, 'ip', 'addr', 'add', addr, 'dev', dev);
    inNs(ns, 'ip', 'link', 'set', dev, 'up');
  };
  for (const ns of Object.values(NS)) inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  cfgIf(NS.s, `tv${id}s`, `${PRIVATE}/24`);
  inNs(NS.s, 'ip', 'addr', 'add', `${SECOND}/24`, 'dev', `tv${id}s`); // a second local address
  cfgIf(NS.r, `tv${id}rs`, '10.77.0.1/24');
  cfgIf(NS.r, `tv${id}rc`, '100.201.0.1/24');
  cfgIf(NS.c, `tv${id}c`, `${CLIENT}/24`);
  inNs(NS.s, 'ip', 'route', 'add', 'default', 'via', '10.77.0.1');
  inNs(NS.c, 'ip', 'route', 'add', '100.200.0.0/24', 'via', '100.201.0.1');
  inNs(NS.r, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  execFileSync('ip', ['netns', 'exec', NS.r, 'nft', '-f', '-'], {
    input: `table ip tknat {
  chain pre { type nat hook prerouting priority dstnat; ip daddr ${PUBLIC} dnat to ${PRIVATE}; }
  chain post { type nat hook postrouting priority srcnat; ip saddr ${PRIVATE} snat to ${PUBLIC}; }
  chain nohairpin { type filter hook forward priority filter; iifname "tv${id}rs" oifname "tv${id}rs" drop; }
}\n`, // this NAT does not hairpin: turnkey must send to its own relays directly
  });
}

function removeTopology() {
  for (const ns of Object.values(NS)) {
    try { ip('netns', 'del', ns); } catch { /* not created */ }
  }
}

// Runs `cmd` in a namespace; resolves {code, stdout, stderr}; killed (by PID) after timeoutMs.
function runIn(ns, cmd, { env = {}, timeoutMs }) {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', ns, ...cmd], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

describe('relay behind a 1:1 NAT, wildcard listeners, --external-ip, no --allow-peer (network namespaces)', { skip: why }, () => {
  let data, server, serverOut = '', serverErr = '', exited, res, local;
  const t0 = Date.now();

  before(async () => {
    removeTopology();
    buildTopology();
    data = freshDataDir();
    const account = createAccount(data);
    const token = createToken(data, account);
    // `ip netns exec` execs the binary: this PID is turnkey's own
    // --drain-timeout 0: the SIGTERM in after() stops at once, live allocations or not
    server = spawn('ip', ['netns', 'exec', NS.s, BIN, 'serve', '--data', data, '--log-level', 'warn', '--drain-timeout', '0',
      '--api-listen', `0.0.0.0:${PORTS.api}`, '--turn-listen', `[::]:${PORTS.turn}`,
      '--udp-listen', `0.0.0.0:${PORTS.udp}`, '--tcp-listen', `0.0.0.0:${PORTS.tcp}`,
      '--tls-listen', `0.0.0.0:${PORTS.tls}`, '--tls-listen', `[::]:${PORTS.tls2}`,
      '--external-ip', `${PUBLIC}/${PRIVATE}`, '--relay-threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stderr.on('data', (d) => { serverErr += d; });
    exited = new Promise((r) => server.on('exit', (code, signal) => r({ code, signal })));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`turnkey did not start in 20 s: ${serverErr}`)), 20000);
      server.stdout.on('data', (d) => { serverOut += d; if (/API listening on/.test(serverOut)) { clearTimeout(timer); resolve(); } });
      server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`turnkey exited ${code}: ${serverErr}`)); });
    });
    const targets = [];
    for (const address of [PUBLIC, PRIVATE, '127.0.0.1']) for (const port of Object.values(PORTS)) targets.push({ address, port });
    const input = { api: `http://${PUBLIC}:${PORTS.api}`, account, token, publicIp: PUBLIC, clientIp: CLIENT,
      turnPort: PORTS.turn, tcpPort: PORTS.tcp, udpPort: PORTS.udp, targets };
    const r = await runIn(NS.c, [process.execPath, new URL('./lib/nat_client.mjs', import.meta.url).pathname],
      { env: { TK_NAT: JSON.stringify(input) }, timeoutMs: 150000 });
    const last = r.stdout.trim().split('\n').pop();
    try { res = JSON.parse(last); } catch { throw new Error(`client printed no result (exit ${r.code} ${r.signal}):\n${r.stdout}\n${r.stderr}`); }
    res.clientStderr = r.stderr.slice(-4000);
    const l = await runIn(NS.s, [process.execPath, new URL('./lib/nat_client.mjs', import.meta.url).pathname], {
      env: { TK_NAT: JSON.stringify({ ...input, mode: 'local', api: `http://${PRIVATE}:${PORTS.api}`,
        local: [[SECOND, PRIVATE, undefined], [PRIVATE, SECOND, undefined], ['::1', '::1', 6], ['127.0.0.1', '127.0.0.1', undefined]] }) },
      timeoutMs: 60000 });
    try { local = JSON.parse(l.stdout.trim().split('\n').pop()); } catch { throw new Error(`local client printed no result:\n${l.stdout}\n${l.stderr}`); }
  });

  after(async () => {
    try {
      if (server && server.exitCode === null && server.signalCode === null) {
        process.kill(server.pid, 'SIGTERM');
        const t = setTimeout(() => process.kill(server.pid, 'SIGKILL'), 15000);
        const st = await exited;
        clearTimeout(t);
        assert.equal(st.code, 0, `turnkey exit status (sanitizers) — stderr:\n${serverErr}`);
      }
    } finally {
      removeTopology();
      if (data) rmSync(data, { recursive: true, force: true });
      console.log(`# relay_nat suite: ${Date.now() - t0} ms`);
    }
  });

  const diag = () => `client: ${JSON.stringify(res, null, 1).slice(0, 6000)}\nturnkey stderr:\n${serverErr.slice(-4000)}`;

  test('one stdout line per listener, on the wildcard addresses', () => {
    for (const l of [`[::]:${PORTS.turn} udp+tcp`, `0.0.0.0:${PORTS.udp} udp`, `0.0.0.0:${PORTS.tcp} tcp`])
      assert.ok(serverOut.includes(`TURN listening on ${l}`), serverOut);
    for (const l of [`0.0.0.0:${PORTS.tls}`, `[::]:${PORTS.tls2}`]) assert.ok(serverOut.includes(`TURN/TLS listening on ${l}`), serverOut);
  });

  test("iceServers name the public address, every listener in Cloudflare's order", () => {
    assert.deepEqual(res.errors, [], diag());
    const P = PUBLIC;
    assert.deepEqual(res.iceServers[0].urls, [`stun:${P}:3478`], diag());
    assert.deepEqual(res.iceServers[1].urls, [`turn:${P}:3478?transport=udp`, `turn:${P}:443?transport=udp`,
      `turn:${P}:3478?transport=tcp`, `turn:${P}:80?transport=tcp`, `turns:${P}:5349?transport=tcp`, `turns:${P}:443?transport=tcp`], diag());
  });

  test('allocations (UDP on [::], TCP and the extra UDP port) report the public address; the client is seen as itself', () => {
    for (const k of ['alloc_a', 'alloc_b', 'alloc_c']) {
      assert.equal(res[k]?.cls, 2, `${k}: ${diag()}`);
      assert.equal(res[k].relayed.address, PUBLIC, `${k}: ${diag()}`);
      assert.equal(res[k].mapped.address, CLIENT, `${k}: ${diag()}`);
    }
  });

  test('hairpin: two allocations permit each other and relay data, seen from the public relayed address', () => {
    assert.equal(res.hairpinPermA, true, diag());
    assert.equal(res.hairpinPermB, true, diag());
    assert.equal(res.hairpinData.data, 'hairpin', diag());
    assert.deepEqual(res.hairpinData.peer, { ...res.hairpinData.peer, address: PUBLIC, port: res.alloc_a.relayed.port }, diag());
  });

  test("CreatePermission for the server's API and listener ports, by public, private and loopback address: 403", () => {
    assert.equal(res.control, true, `control: a non-own address is permitted — ${diag()}`);
    assert.equal(res.denied.length, 18, diag());
    for (const d of res.denied) assert.equal(d.errorCode, 403, `${d.address}:${d.port} — ${diag()}`);
  });

  test('a wildcard UDP socket answers from the address each request reached and relays there (external only for PRIVATE)', () => {
    const d = `local: ${JSON.stringify(local, null, 1)}\nturnkey stderr:\n${serverErr.slice(-4000)}`;
    assert.deepEqual(local.errors, [], d);
    const [second, priv, v6, lo] = local.local;
    assert.equal(second.cls, 2, d);
    assert.equal(second.relayed.address, SECOND, d);
    assert.equal(second.mapped.address, PRIVATE, d);
    assert.equal(priv.cls, 2, d);
    assert.equal(priv.relayed.address, PUBLIC, d);
    assert.equal(v6.cls, 2, d); // [::] is dual-stack: IPv6 too
    assert.equal(v6.relayed.address, '::1', d);
    assert.equal(lo.cls, 2, d);
    assert.equal(lo.relayed.address, '127.0.0.1', d);
  });

  for (const proto of ['udp', 'tcp', 'tls']) {
    test(`Chromium: relay-only to relay-only data channel over ${proto.toUpperCase()}`, () => {
      const b = res.browser?.[proto];
      assert.ok(b, diag());
      assert.equal(b.opened, true, `${proto} — ${diag()}`);
      assert.equal(b.echoed, 20, diag());
      for (const p of [b.pairA, b.pairB]) {
        assert.equal(p.local.type, 'relay', diag());
        assert.equal(p.remote.type, 'relay', diag());
        assert.equal(p.local.relayProtocol, proto, diag());
        assert.equal(p.local.address, PUBLIC, diag());
        assert.equal(p.remote.address, PUBLIC, diag());
      }
    });
  }
});
