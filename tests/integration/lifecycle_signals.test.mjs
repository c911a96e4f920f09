// Signals (docs/operations.md "Signals and draining"): SIGTERM drains — /readyz 503 at once,
// a new Allocate is refused with 508 "Server Draining", live allocations keep relaying until
// they end (then exit 0) or --drain-timeout passes (then exit 0); SIGINT or a second SIGTERM
// stops at once (exit 0). SIGHUP re-reads log-level and the certificate, SIGUSR2 reloads the
// certificate, SIGUSR1 is ignored: none of them kills the process.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, fixture, createTurnKey, mintTurn, freshDataDir, createAccount } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';
import { makeCertPair as makePair, peerCertCN } from './lib/tools.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const show = (r) => (r ? `class ${r.cls} error ${r.errorCode ?? '-'} ${r.reason ?? ''}` : String(r));

async function waitFor(what, cond, ms = 10000) {
  const start = Date.now();
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() - start > ms) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

const alive = (f) => f.proc.exitCode === null && f.proc.signalCode === null;
const exitedWithin = (f, ms) => Promise.race([f.proc.exitCode !== null || f.proc.signalCode !== null
  ? Promise.resolve({ code: f.proc.exitCode, signal: f.proc.signalCode })
  : new Promise((r) => f.proc.on('exit', (code, signal) => r({ code, signal }))), sleep(ms).then(() => null)]);

// An allocation relaying one ChannelData every 20 ms to an echo peer; echoes counted.
async function relaying(f, cred, peer, transport = 'udp') {
  const c = new TurnClient({ port: f.turnPort, transport });
  const a = await c.allocate(cred);
  assert.equal(a.cls, CLASS.SUCCESS, `Allocate: ${show(a)}`);
  assert.equal((await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
  let echoes = 0;
  c.on('data', (d) => { if (d.via === 'channel') echoes++; });
  const timer = setInterval(() => { c.drainData(); c.sendChannel(0x4000, Buffer.from('ping')).catch(() => {}); }, 20);
  return {
    c, echoes: () => echoes,
    async flowing(n = 10) {
      const from = echoes;
      await waitFor(`${n} more echoes (${transport})`, () => echoes >= from + n, 5000);
    },
    async stop() { clearInterval(timer); await c.close(); },
  };
}

async function readyz(f) {
  const r = await fetch(`${f.url}/readyz`);
  return { status: r.status, body: await r.json() };
}

async function setup(extraArgs) {
  const f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', ...extraArgs] });
  const key = await createTurnKey(f, 'sig');
  const peer = await echoPeer();
  return { f, key, peer, mint: () => mintTurn(f, key, { ttl: 600, prefix: 'sig' }) };
}

describe('SIGTERM drains', () => {
  test('readyz 503 at once, a new Allocate gets 508, live allocations relay on; exit 0 when the last ends', async () => {
    const { f, peer, mint } = await setup(['--drain-timeout', '120']);
    const udp = await relaying(f, await mint(), peer, 'udp');
    const tcp = await relaying(f, await mint(), peer, 'tcp');
    await udp.flowing();
    await tcp.flowing();
    assert.deepEqual(await readyz(f), { status: 200, body: { status: 'ok' } });
    const t0 = Date.now();
    f.proc.kill('SIGTERM');
    const r = await waitFor('/readyz 503', async () => { const x = await readyz(f); return x.status === 503 && x; }, 5000);
    assert.ok(Date.now() - t0 < 5000);
    assert.deepEqual(r.body, { status: 'draining' });
    assert.equal((await fetch(`${f.url}/healthz`)).status, 200, '/healthz stays 200');
    for (const transport of ['udp', 'tcp']) {
      const c = new TurnClient({ port: f.turnPort, transport });
      const a = await c.allocate(await mint());
      await c.close();
      assert.equal(a.cls, CLASS.ERROR, `${transport} Allocate while draining: ${show(a)}`);
      assert.equal(a.errorCode, 508);
      assert.equal(a.reason, 'Server Draining');
    }
    // the live ones keep relaying (and refreshing) while the server waits
    await udp.flowing(25);
    await tcp.flowing(25);
    assert.equal((await udp.c.refresh(600)).cls, CLASS.SUCCESS, 'Refresh still works while draining');
    assert.ok(alive(f), 'still running while allocations are live');
    assert.equal((await udp.c.refresh(0)).cls, CLASS.SUCCESS);
    await udp.stop();
    await sleep(500);
    assert.ok(alive(f), 'one allocation left: still running');
    await tcp.flowing(10);
    assert.equal((await tcp.c.refresh(0)).cls, CLASS.SUCCESS);
    const ex = await exitedWithin(f, 10000);
    await tcp.stop();
    await peer.close();
    assert.deepEqual(ex, { code: 0, signal: null }, `exit after the last allocation ended — stderr:\n${f.stderr()}`);
    assert.match(f.stderr(), /drained: no allocation left/);
    rmSync(f.data, { recursive: true, force: true });
  });

  test('--drain-timeout passes: exit 0 with an allocation still live', async () => {
    const { f, peer, mint } = await setup(['--drain-timeout', '2']);
    const s = await relaying(f, await mint(), peer);
    await s.flowing();
    const t0 = Date.now();
    f.proc.kill('SIGTERM');
    await s.flowing(10); // relays during the drain
    const ex = await exitedWithin(f, 20000);
    const took = Date.now() - t0;
    await s.stop();
    await peer.close();
    assert.deepEqual(ex, { code: 0, signal: null }, f.stderr());
    assert.ok(took >= 1500, `waited the drain timeout (${took} ms)`);
    assert.match(f.stderr(), /drain-timeout \(2s\) passed; ending 1 allocation/);
    rmSync(f.data, { recursive: true, force: true });
  });

  test('--drain-timeout 0: SIGTERM stops at once', async () => {
    const { f, peer, mint } = await setup(['--drain-timeout', '0']);
    const s = await relaying(f, await mint(), peer);
    await s.flowing();
    f.proc.kill('SIGTERM');
    const ex = await exitedWithin(f, 10000);
    await s.stop();
    await peer.close();
    assert.deepEqual(ex, { code: 0, signal: null }, f.stderr());
    rmSync(f.data, { recursive: true, force: true });
  });

  for (const second of ['SIGTERM', 'SIGINT']) {
    test(`a second signal (${second}) during the drain stops at once, exit 0`, async () => {
      const { f, peer, mint } = await setup(['--drain-timeout', '600']);
      const s = await relaying(f, await mint(), peer);
      await s.flowing();
      f.proc.kill('SIGTERM');
      await waitFor('/readyz 503', async () => (await readyz(f)).status === 503, 5000);
      await s.flowing(5);
      assert.ok(alive(f));
      f.proc.kill(second);
      const ex = await exitedWithin(f, 10000);
      await s.stop();
      await peer.close();
      assert.deepEqual(ex, { code: 0, signal: null }, f.stderr());
      rmSync(f.data, { recursive: true, force: true });
    });
  }

  test('SIGINT alone stops at once with a live allocation, exit 0', async () => {
    const { f, peer, mint } = await setup(['--drain-timeout', '600']);
    const s = await relaying(f, await mint(), peer);
    await s.flowing();
    f.proc.kill('SIGINT');
    const ex = await exitedWithin(f, 10000);
    await s.stop();
    await peer.close();
    assert.deepEqual(ex, { code: 0, signal: null }, f.stderr());
    rmSync(f.data, { recursive: true, force: true });
  });
});

describe('SIGHUP, SIGUSR1, SIGUSR2', () => {
  test('SIGUSR1 and SIGUSR2 (repeatedly) do not kill; SIGUSR2 reloads the certificate; relaying goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'turnkey-sig-'));
    const a = makePair(dir, 'a', 'first.test');
    const live = { cert: join(dir, 'live-cert.pem'), key: join(dir, 'live-key.pem') };
    copyFileSync(a.cert, live.cert);
    copyFileSync(a.key, live.key);
    const { f, peer, mint } = await setup(['--tls-cert', live.cert, '--tls-key', live.key]);
    const s = await relaying(f, await mint(), peer);
    await s.flowing();
    assert.equal(await peerCertCN(f.tlsPort), 'first.test');
    for (let i = 0; i < 3; i++) {
      f.proc.kill('SIGUSR1');
      await sleep(100);
    }
    const b = makePair(dir, 'b', 'second.test');
    copyFileSync(b.cert, live.cert);
    copyFileSync(b.key, live.key);
    f.proc.kill('SIGUSR2');
    await waitFor('the new certificate', async () => (await peerCertCN(f.tlsPort)) === 'second.test', 5000);
    f.proc.kill('SIGUSR2');
    await sleep(200);
    await s.flowing(10);
    assert.ok(alive(f), 'still running');
    assert.equal((await fetch(`${f.url}/healthz`)).status, 200);
    await s.stop();
    await peer.close();
    const r = await f.close();
    assert.equal(r.code, 0, f.stderr());
    rmSync(dir, { recursive: true, force: true });
  });

  test('SIGHUP re-reads log-level from the config file and does not kill', async () => {
    const data = freshDataDir();
    createAccount(data);
    const conf = join(data, 'turnkey.conf');
    writeFileSync(conf, 'log-level = warn\n', { mode: 0o600 });
    const proc = spawn(BIN, ['serve', '--config', conf, '--data', data, '--api-listen', '127.0.0.1:0',
      '--turn-listen', '127.0.0.1:0', '--tls-listen', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { err += d; });
    const f = { proc };
    await waitFor('startup', () => /API listening on (\S+)/.test(out), 15000);
    const url = out.match(/API listening on (\S+)/)[1];
    f.proc.kill('SIGUSR1');
    await sleep(300);
    assert.doesNotMatch(err, /SIGUSR1/, 'info lines are off at log-level warn');
    writeFileSync(conf, 'log-level = info\n');
    f.proc.kill('SIGHUP');
    await waitFor('the reload', () => /SIGHUP: log-level is now info/.test(err), 5000);
    f.proc.kill('SIGUSR1');
    await waitFor('an info line', () => /SIGUSR1: nothing to do/.test(err), 5000);
    writeFileSync(conf, 'log-level = nonsense\n');
    f.proc.kill('SIGHUP');
    await waitFor('the refusal', () => /the configuration does not load now; nothing changed/.test(err), 5000);
    assert.ok(alive(f));
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    proc.kill('SIGTERM');
    const ex = await exitedWithin(f, 10000);
    assert.deepEqual(ex, { code: 0, signal: null }, err);
    rmSync(data, { recursive: true, force: true });
  });
});
