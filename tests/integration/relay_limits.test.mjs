// Limits that hold under attack (docs/operations.md "Limits"): TCP/TLS connection caps per
// source address and in total, the handshake deadline, the stream frame cap, bounded work per
// wakeup for one TCP/TLS client, no spinning at EMFILE, the API under slowloris, and UDP
// relaying + the API while an attacker holds every TCP/TLS slot it may.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { fixture, createTurnKey, mintTurn } from './lib/server.mjs';
import { TurnClient, A, CLASS, METHOD, echoPeer, encodeMessage, newTxid } from './lib/stun.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const bindingReq = () => encodeMessage({ cls: CLASS.REQUEST, method: METHOD.BINDING, txid: newTxid(), attrs: [] });

// Opens a TCP (or TLS) connection from localAddress; resolves once connected (or closed).
function open(port, { localAddress = '127.0.0.1', secure = false } = {}) {
  return new Promise((resolve, reject) => {
    const o = { host: '127.0.0.1', port, localAddress };
    const sock = secure ? tls.connect({ ...o, rejectUnauthorized: false }) : net.connect(o);
    const st = { sock, buf: Buffer.alloc(0), closedAt: null, onData: null };
    st.closed = new Promise((r) => sock.on('close', () => { st.closedAt = performance.now(); r(); }));
    sock.on('error', () => {});
    sock.on('data', (d) => { st.buf = Buffer.concat([st.buf, d]); st.onData?.(); });
    const timer = setTimeout(() => reject(new Error('connect timed out')), 15000);
    sock.once(secure ? 'secureConnect' : 'connect', () => { clearTimeout(timer); resolve(st); });
    st.closed.then(() => { clearTimeout(timer); resolve(st); });
  });
}

// Sends a Binding request on st; true once its success answer arrives, false if the server
// closes the connection or nothing comes within timeoutMs.
function binding(st, timeoutMs = 8000) {
  return new Promise((resolve) => {
    if (st.closedAt !== null) { resolve(false); return; }
    st.buf = Buffer.alloc(0);
    const t = setTimeout(() => { st.onData = null; resolve(false); }, timeoutMs);
    st.onData = () => {
      if (st.buf.length >= 20 && st.buf.readUInt16BE(0) === 0x0101) { clearTimeout(t); st.onData = null; resolve(true); }
    };
    st.closed.then(() => { clearTimeout(t); resolve(false); });
    st.sock.write(bindingReq(), () => {});
  });
}

const closedWithin = (st, ms) => Promise.race([st.closed.then(() => true), sleep(ms).then(() => false)]);
const closeAll = (list) => Promise.all(list.map((st) => { st.sock.destroy(); return st.closed; }));

// utime + stime of a process (all its threads), seconds.
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

// Resolves once the server's stderr matches re (the start-up report follows "API listening").
async function stderrMatch(f, re, timeoutMs = 10000) {
  for (const t0 = performance.now(); !re.test(f.stderr()) && performance.now() - t0 < timeoutMs;) await sleep(50);
  assert.match(f.stderr(), re);
}

async function closeFixture(f) {
  const r = await f?.close();
  assert.equal(r?.code, 0, `server exit status (sanitizers) — stderr:\n${f?.stderr()}`);
}

describe('TURN TCP/TLS connection caps', () => {
  let f;
  before(async () => { f = await fixture(); });
  after(() => closeFixture(f));

  test('per source address: the 101st connection from one address is refused (--max-conns-per-ip 100)', { timeout: 120000 }, async () => {
    const held = [];
    for (let i = 0; i < 100; i++) held.push(await open(f.turnPort));
    const answers = await Promise.all(held.map((st) => binding(st)));
    assert.equal(answers.filter(Boolean).length, 100, 'the first 100 are served');
    const extra = await open(f.turnPort);
    assert.equal(await binding(extra), false, 'the 101st is closed unanswered');
    assert.ok(await closedWithin(extra, 5000));
    const other = await open(f.turnPort, { localAddress: '127.0.0.2' });
    assert.equal(await binding(other), true, 'another address is not affected');
    await closeAll([held.pop()]);
    let again;
    for (let i = 0; i < 50; i++) { // the server notices the close within a wakeup
      again = await open(f.turnPort);
      if (await binding(again, 3000)) break;
      await sleep(100);
    }
    assert.equal(again.closedAt, null, 'a closed connection frees its slot');
    await closeAll([...held, extra, other, again]);
  });
});

describe('TURN TCP/TLS total cap (--max-conns)', () => {
  let f;
  before(async () => { f = await fixture({ env: { TURNKEY_MAX_CONNS: '6', TURNKEY_MAX_CONNS_PER_IP: '4' } }); });
  after(() => closeFixture(f));

  test('per-address and total caps hold over TCP and TLS together', { timeout: 120000 }, async () => {
    const a = [];
    for (let i = 0; i < 4; i++) a.push(await open(f.turnPort));
    a.push(await open(f.tlsPort, { secure: true })); // the fifth from 127.0.0.1: over the cap
    const served = await Promise.all(a.map((st) => binding(st)));
    assert.deepEqual(served, [true, true, true, true, false]);
    const b = [await open(f.tlsPort, { localAddress: '127.0.0.2', secure: true }), await open(f.turnPort, { localAddress: '127.0.0.2' })];
    assert.deepEqual(await Promise.all(b.map((st) => binding(st))), [true, true]);
    const c = await open(f.turnPort, { localAddress: '127.0.0.3' });
    assert.equal(await binding(c), false, 'the seventh connection in total is refused');
    assert.match(f.stderr(), /refused: --max-conns reached/);
    await closeAll([...a, ...b, c]);
  });
});

describe('TURN TCP/TLS handshake deadline (--handshake-timeout, default 5 s)', () => {
  let f;
  before(async () => { f = await fixture(); });
  after(() => closeFixture(f));

  test('silent, partial, non-STUN and handshake-only connections are closed; a STUN client is not', { timeout: 120000 }, async () => {
    const silent = await open(f.turnPort);
    const partial = await open(f.turnPort);
    partial.sock.write(bindingReq().subarray(0, 10));
    const channel = await open(f.turnPort);
    channel.sock.write(Buffer.from([0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4])); // ChannelData, no STUN
    const tlsOnly = await open(f.tlsPort, { secure: true });
    assert.equal(tlsOnly.closedAt, null, 'the TLS handshake itself completes');
    const good = await open(f.turnPort);
    assert.equal(await binding(good), true);
    const t0 = performance.now();
    for (const st of [silent, partial, channel, tlsOnly]) assert.ok(await closedWithin(st, 12000), 'closed by the deadline');
    const took = Math.max(...[silent, partial, channel, tlsOnly].map((st) => st.closedAt)) - t0;
    assert.ok(took < 12000, `closed after ${took} ms`);
    assert.equal(good.closedAt, null, 'the connection that sent a STUN message stays');
    assert.equal(await binding(good), true);
    await closeAll([good]);
  });
});

describe('TURN TCP/TLS frame cap', () => {
  let f;
  before(async () => { f = await fixture(); });
  after(() => closeFixture(f));

  test('a frame announcing more than 8 KiB closes the connection at once', { timeout: 120000 }, async () => {
    const st = await open(f.turnPort);
    assert.equal(await binding(st), true);
    const big = Buffer.alloc(20 + 9000);
    bindingReq().copy(big, 0, 0, 20);
    big.writeUInt16BE(60000, 2); // a 60 kB Binding request, of which 9 kB are sent
    st.sock.write(big);
    assert.ok(await closedWithin(st, 4000), 'closed instead of buffering up to 64 KB');
    const ok = await open(f.turnPort);
    const send = encodeMessage({ cls: CLASS.REQUEST, method: METHOD.BINDING, txid: newTxid(), attrs: [A.software('x'.repeat(4000))] });
    ok.buf = Buffer.alloc(0);
    const answered = new Promise((r) => { ok.onData = () => { if (ok.buf.length >= 20) r(ok.buf.readUInt16BE(0)); }; });
    ok.sock.write(send);
    assert.ok([0x0101, 0x0111].includes(await Promise.race([answered, sleep(8000).then(() => 0)])), 'a 4 kB message is fine');
    await closeAll([ok]);
  });
});

// Runs lib/flood.mjs in a child process; resolves {stats} when it ends, after `connected`.
function flood(port, mode, durationMs) {
  const child = spawn(process.execPath, [new URL('./lib/flood.mjs', import.meta.url).pathname, String(port), mode, String(durationMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const connected = new Promise((resolve) => child.stdout.on('data', (d) => { out += d; if (out.includes('connected')) resolve(); }));
  const done = new Promise((resolve) => child.on('exit', () => resolve(out)));
  return { child, connected, done };
}

describe('one TCP/TLS client cannot starve its relay thread', () => {
  let f;
  before(async () => { f = await fixture({ extraArgs: ['--relay-threads', '1'] }); });
  after(() => closeFixture(f));

  for (const mode of ['tls', 'tcp']) {
    test(`UDP Binding is answered while a ${mode.toUpperCase()} client floods the only relay thread`, { timeout: 120000 }, async () => {
      const fl = flood(mode === 'tls' ? f.tlsPort : f.turnPort, mode, 20000);
      await fl.connected;
      await sleep(1000); // the flood is under way
      const c = new TurnClient({ port: f.turnPort, timeoutMs: 4000 });
      const rtts = [];
      try {
        for (let i = 0; i < 8; i++) {
          const t0 = performance.now();
          const r = await c.binding().catch(() => null);
          rtts.push(r && r.cls === CLASS.SUCCESS ? Math.round(performance.now() - t0) : Infinity);
          await sleep(200);
        }
      } finally {
        fl.child.kill('SIGTERM');
        await c.close();
      }
      const stats = await fl.done;
      assert.ok(rtts.every((ms) => ms < 4000), `every UDP Binding answered (ms: ${rtts.join(', ')}; flood: ${stats.trim()})`);
    });
  }
});

// Opens n TCP connections to port from 127.0.0.1 (connects complete in the kernel backlog
// even while the server does not accept), each sending one Binding request.
async function swarm(port, n, { secureEvery = 0 } = {}) {
  const list = [];
  for (let i = 0; i < n; i++) {
    const secure = secureEvery > 0 && i % secureEvery === 0;
    const st = await Promise.race([open(port.tcp, {}).catch(() => null), sleep(3000).then(() => null)]);
    if (secure && port.tls) {
      const s = await Promise.race([open(port.tls, { secure: true }).catch(() => null), sleep(3000).then(() => null)]);
      if (s) { s.sock.write(bindingReq(), () => {}); list.push(s); }
    }
    if (st) { st.sock.write(bindingReq(), () => {}); list.push(st); }
  }
  return list;
}

// GET over a new connection (no keep-alive pool) from localAddress; resolves the status or 0.
function freshGet(port, path, { localAddress = '127.0.0.1', timeoutMs = 8000 } = {}) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.on('error', () => resolve(0));
  });
}

describe('out of descriptors (EMFILE): nothing spins, the log stays quiet', () => {
  let f;
  before(async () => {
    f = await fixture({
      prefix: ['prlimit', '--nofile=200:200'],
      extraArgs: ['--relay-threads', '2'],
      env: { TURNKEY_MAX_CONNS: '100000', TURNKEY_MAX_CONNS_PER_IP: '100000' }, // let EMFILE happen
    });
  });
  after(() => closeFixture(f));

  test('300 connections against 200 descriptors: low CPU, a few log lines a second, recovery', { timeout: 120000 }, async () => {
    const list = await swarm({ tcp: f.turnPort }, 300);
    await sleep(1000);
    const lines0 = f.stderr().split('\n').length, cpu0 = cpuSeconds(f.proc.pid), t0 = performance.now();
    await sleep(3000);
    const cpu = cpuSeconds(f.proc.pid) - cpu0, secs = (performance.now() - t0) / 1000;
    const lines = f.stderr().split('\n').length - lines0;
    assert.ok(cpu < 0.3 * secs, `server CPU ${cpu.toFixed(2)} s in ${secs.toFixed(1)} s (spinning on accept?)`);
    assert.ok(lines <= 12 * secs, `${lines} log lines in ${secs.toFixed(1)} s`);
    assert.match(f.stderr(), /cannot accept a TCP\/TLS connection: Too many open files/);
    await closeAll(list);
    let ok = false;
    for (let i = 0; i < 60 && !ok; i++) { // the backlog drains, the listener comes back
      const st = await open(f.turnPort);
      ok = await binding(st, 2000);
      await closeAll([st]);
      if (!ok) await sleep(250);
    }
    assert.ok(ok, 'TCP serves again once descriptors are free');
  });
});

// GET path over one kept-alive connection (opened while descriptors are free, so it still
// answers once they are gone); resolves { status, body } or null.
function keptGet(agent, port, path, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => { req.destroy(); resolve(null); });
    req.on('error', () => resolve(null));
  });
}

describe('out of descriptors: /readyz reports the paused listener', () => {
  let f;
  before(async () => {
    f = await fixture({
      prefix: ['prlimit', '--nofile=200:200'],
      extraArgs: ['--relay-threads', '1'],
      env: { TURNKEY_MAX_CONNS: '100000', TURNKEY_MAX_CONNS_PER_IP: '100000' }, // let EMFILE happen
    });
  });
  after(() => closeFixture(f));

  test('/readyz answers 503 with the reason while accept() is paused at EMFILE, 200 again after', { timeout: 120000 }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await keptGet(agent, f.port, '/readyz');
      assert.equal(first?.status, 200, `ready before the flood: ${JSON.stringify(first)}`);
      const list = await swarm({ tcp: f.turnPort }, 300);
      let paused = null;
      for (let i = 0; i < 200 && !paused; i++) { // up to ~20 s (the pause comes back while the backlog waits)
        const r = await keptGet(agent, f.port, '/readyz');
        if (r?.status === 503) paused = r;
        else await sleep(100);
      }
      assert.ok(paused, 'a 503 from /readyz while the listener is paused');
      const body = JSON.parse(paused.body);
      assert.equal(body.status, 'not ready');
      assert.match(body.reason, /listener is paused: out of file descriptors/);
      await closeAll(list);
      let ready = null;
      for (let i = 0; i < 100 && !ready; i++) {
        const r = await keptGet(agent, f.port, '/readyz');
        if (r?.status === 200) ready = r;
        else await sleep(200);
      }
      assert.ok(ready, '/readyz is 200 again once descriptors are free');
      assert.match(ready.body, /"status":"ok"/);
    } finally {
      agent.destroy();
    }
  });
});

describe('an attacker holding every TCP/TLS slot it may leaves UDP and the API working', () => {
  let f, key, peer;
  before(async () => {
    // 256 descriptors: the automatic caps give TCP/TLS a quarter, the API an eighth
    f = await fixture({ prefix: ['prlimit', '--nofile=256:256'], extraArgs: ['--allow-peer', '127.0.0.1/32', '--log-level', 'info'] });
    key = await createTurnKey(f, 'limits');
    peer = await echoPeer();
  });
  after(async () => { await peer?.close(); await closeFixture(f); });

  test('UDP allocations and relaying, and the API, while 400 TCP/TLS connections are tried', { timeout: 120000 }, async () => {
    await stderrMatch(f, /open files: 256 .*room for about \d+ allocations beside 64 TURN TCP\/TLS and 32 API connections/);
    const list = await swarm({ tcp: f.turnPort, tls: f.tlsPort }, 350, { secureEvery: 7 });
    const held = (await Promise.all(list.map((st) => binding(st, 3000)))).filter(Boolean).length;
    assert.ok(held <= 64, `${held} attacker connections served (cap 64)`);
    assert.ok(held >= 32, `${held} attacker connections served: the attacker did get its slots`);
    const clients = [];
    try {
      for (let i = 0; i < 20; i++) { // new UDP allocations (each needs a descriptor)
        const cred = await mintTurn(f, key, { prefix: 'limits' });
        const c = new TurnClient({ port: f.turnPort, timeoutMs: 5000 });
        clients.push(c);
        const r = await c.allocate(cred);
        assert.equal(r.cls, CLASS.SUCCESS, `UDP allocation ${i}: ${r.errorCode ?? ''} ${r.reason ?? ''}`);
        assert.equal((await c.createPermission({ address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
        await c.send({ address: '127.0.0.1', port: peer.port }, Buffer.from(`hello ${i}`));
        const d = await c.nextData({ timeoutMs: 5000 });
        assert.equal(d.data.toString(), `hello ${i}`, 'relayed through the echo peer and back');
      }
      for (let i = 0; i < 5; i++) assert.equal(await freshGet(f.port, '/healthz'), 200, 'the API answers a new connection');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await closeAll(list);
    }
  });
});

describe('open-file limit at start', () => {
  let f;
  before(async () => {
    f = await fixture({ prefix: ['prlimit', '--nofile=128:1024'], extraArgs: ['--log-level', 'info', '--max-allocations', '5000'] });
  });
  after(() => closeFixture(f));

  test('the soft limit is raised to the hard one, the room is logged, an oversized --max-allocations warned', { timeout: 60000 }, async () => {
    await stderrMatch(f, /open files: 1024 \(soft limit was 128, hard 1024\): room for about 576 allocations beside 256 TURN TCP\/TLS and 128 API connections/);
    await stderrMatch(f, /level=warn .*--max-allocations 5000 does not fit in 1024 open files/);
    const limits = readFileSync(`/proc/${f.proc.pid}/limits`, 'utf8');
    assert.match(limits, /Max open files\s+1024\s+1024/);
  });
});

describe('a TCP client that never reads', () => {
  let f, key, peer;
  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32'] });
    key = await createTurnKey(f, 'slow');
    peer = createSocket('udp4');
    await new Promise((r) => peer.bind(0, '127.0.0.1', r));
  });
  after(async () => { peer?.close(); await closeFixture(f); });

  test('holds a bounded kernel send queue while a peer sends it 20 MB', { timeout: 120000 }, async () => {
    const c = new TurnClient({ port: f.turnPort, transport: 'tcp', timeoutMs: 5000 });
    try {
      const r = await c.allocate(await mintTurn(f, key, { prefix: 'slow' }));
      assert.equal(r.cls, CLASS.SUCCESS);
      assert.equal((await c.createPermission({ address: '127.0.0.1', port: peer.address().port })).cls, CLASS.SUCCESS);
      c.sock.pause(); // from here on the client reads nothing
      const dgram = Buffer.alloc(1000, 7);
      for (let k = 0; k < 20000; k++) {
        peer.send(dgram, c.relayed.port, '127.0.0.1');
        if (k % 50 === 0) await sleep(1);
      }
      await sleep(1500);
      const ss = execFileSync('ss', ['-tnH', 'state', 'established', `( sport = :${f.turnPort} )`], { encoding: 'utf8' });
      const sendQ = [...ss.matchAll(/^(\d+)\s+(\d+)/gm)].map((m) => Number(m[2]));
      assert.equal(sendQ.length, 1, ss);
      assert.ok(sendQ[0] > 100000, `the queue did fill (${sendQ[0]} bytes): the test exercises the bound`);
      assert.ok(sendQ[0] <= 600 * 1024, `kernel send queue ${sendQ[0]} bytes (bound: the doubled 256 KiB SO_SNDBUF)`);
    } finally {
      await c.close();
    }
  });
});
