// Measures the figures in docs/operations.md "Limits" against a running binary:
//   node bench/limits.mjs BINARY
// Starts `turnkey serve` on loopback ports with a fresh data directory, then reports
//  - RSS with N idle (proven) TCP and TLS connections,
//  - what one never-reading TCP client makes the server hold while a peer floods it
//    (user-space queue is bounded by RELAY_CONN_OUT_MAX; the kernel's send queue by ss -tm),
//  - CPU used while 300 connections sit on a 200-descriptor server (EMFILE).
// Every loop is bounded; everything stays on 127.0.0.1.
import net from 'node:net';
import tls from 'node:tls';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { TurnClient, CLASS, METHOD, TRANSPORT, encodeMessage, newTxid } from '../tests/integration/lib/stun.mjs';

const BIN = process.argv[2] ?? 'build/release/turnkey';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const cpu = (pid) => { const r = readFileSync(`/proc/${pid}/stat`, 'utf8'); const f = r.slice(r.lastIndexOf(')') + 2).split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const binding = () => encodeMessage({ cls: CLASS.REQUEST, method: METHOD.BINDING, txid: newTxid(), attrs: [] });

async function serve(args, prefix = []) {
  const data = mkdtempSync(join(tmpdir(), 'turnkey-limits-'));
  execFileSync(BIN, ['account', 'create', '--data', data], { stdio: 'ignore' });
  const [cmd, ...pre] = [...prefix, BIN];
  const proc = spawn(cmd, [...pre, 'serve', '--data', data, '--api-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0',
    '--tls-listen', '127.0.0.1:0', '--log-level', 'error', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise((resolve) => proc.stdout.on('data', (d) => { out += d; if (out.includes('API listening')) resolve(); }));
  const port = Number(out.match(/TURN listening on [0-9.]+:(\d+)/)[1]);
  const tlsPort = Number(out.match(/TURN\/TLS listening on [0-9.]+:(\d+)/)[1]);
  const api = out.match(/API listening on (http:\/\/\S+)/)[1];
  return { proc, port, tlsPort, api, data, stop: async () => { proc.kill('SIGTERM'); await new Promise((r) => proc.on('exit', r)); rmSync(data, { recursive: true, force: true }); } };
}

function connect(port, secure, localAddress) {
  return new Promise((resolve) => {
    const o = { host: '127.0.0.1', port, localAddress };
    const s = secure ? tls.connect({ ...o, rejectUnauthorized: false }) : net.connect(o);
    s.on('error', () => resolve(null));
    s.once(secure ? 'secureConnect' : 'connect', () => { s.write(binding()); s.once('data', () => resolve(s)); });
  });
}

async function idle(srv, n, secure) {
  const before = rssKiB(srv.proc.pid);
  const socks = [];
  for (let i = 0; i < n; i++) socks.push(await connect(secure ? srv.tlsPort : srv.port, secure, `127.0.${1 + Math.floor(i / 90)}.${1 + (i % 90)}`));
  await sleep(500);
  const after = rssKiB(srv.proc.pid);
  const ok = socks.filter(Boolean).length;
  for (const s of socks) s?.destroy();
  await sleep(500);
  console.log(`${n} idle ${secure ? 'TLS' : 'TCP'} connections (${ok} served): RSS ${before} -> ${after} KiB, ${((after - before) / ok).toFixed(1)} KiB each`);
}

// Credentials through the real API: account (CLI), token (CLI), key, generate-ice-servers.
async function credential(srv) {
  const account = execFileSync(BIN, ['account', 'create', '--data', srv.data], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n').pop();
  const token = execFileSync(BIN, ['token', 'create', '--data', srv.data, '--account', account, '--permissions', 'calls:read,calls:write'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n').pop();
  const k = (await (await fetch(`${srv.api}/client/v4/accounts/${account}/calls/turn_keys`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })).json()).result;
  const ice = await (await fetch(`${srv.api}/v1/turn/keys/${k.uid}/credentials/generate-ice-servers`, { method: 'POST', headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' }, body: '{"ttl":3600}' })).json();
  return { username: ice.iceServers[1].username, password: ice.iceServers[1].credential };
}

// N TCP clients with an allocation each that never read, while a UDP peer sends each of them
// 20 MB in 1,000-byte datagrams; reports the server's RSS growth and its send queues (ss).
async function neverReads(n) {
  const srv = await serve(['--allow-peer', '127.0.0.1/32']);
  const peer = createSocket('udp4');
  await new Promise((r) => peer.bind(0, '127.0.0.1', r));
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = new TurnClient({ port: srv.port, transport: 'tcp', timeoutMs: 5000 });
    const r = await c.allocate({ ...(await credential(srv)), transport: TRANSPORT.UDP });
    if (r.cls !== CLASS.SUCCESS) throw new Error(`allocate: ${r.errorCode}`);
    await c.createPermission({ address: '127.0.0.1', port: peer.address().port });
    c.sock.pause(); // never reads again
    clients.push(c);
  }
  const before = rssKiB(srv.proc.pid);
  const dgram = Buffer.alloc(1000, 7);
  for (let k = 0; k < 20000; k++) {
    for (const c of clients) peer.send(dgram, c.relayed.port, '127.0.0.1');
    if (k % 50 === 0) await sleep(1);
  }
  await sleep(1500);
  const after = rssKiB(srv.proc.pid);
  const ss = execFileSync('ss', ['-tmnH', 'state', 'established', `( sport = :${srv.port} )`]).toString();
  const w = [...ss.matchAll(/skmem:\(r(\d+),rb\d+,t(\d+),tb(\d+),f\d+,w(\d+)/g)].map((m) => ({ t: Number(m[2]), tb: Number(m[3]), w: Number(m[4]) }));
  const kq = w.map((x) => x.w).reduce((a, b) => a + b, 0) / Math.max(1, w.length);
  const sq = [...ss.matchAll(/^(\d+)\s+(\d+)/gm)].map((m) => Number(m[2]));
  console.log(`${n} never-reading TCP client(s), 20 MB sent to each: server RSS ${before} -> ${after} KiB ` +
    `(${((after - before) / n).toFixed(0)} KiB each in user space); kernel send queue per socket ${Math.round(kq / 1024)} KiB ` +
    `(Send-Q ${sq.join(',')}, sndbuf ${w[0]?.tb})`);
  for (const c of clients) await c.close();
  peer.close();
  await srv.stop();
}

async function emfile() {
  const srv = await serve(['--max-conns', '100000', '--max-conns-per-ip', '100000'], ['prlimit', '--nofile=200:200']);
  const socks = [];
  for (let i = 0; i < 300; i++) socks.push(await new Promise((r) => { const s = net.connect({ host: '127.0.0.1', port: srv.port }, () => r(s)); s.on('error', () => r(null)); }));
  await sleep(1000);
  const c0 = cpu(srv.proc.pid);
  await sleep(5000);
  console.log(`EMFILE: 300 connections against 200 descriptors: server CPU ${(cpu(srv.proc.pid) - c0).toFixed(2)} s in 5 s`);
  for (const s of socks) s?.destroy();
  await srv.stop();
}

const many = ['--max-conns-per-ip', '100000', '--max-conns', '100000'];
for (const [n, secure] of [[1000, false], [5000, false], [1000, true]]) {
  const srv = await serve(many);
  console.log(`baseline RSS ${rssKiB(srv.proc.pid)} KiB`);
  await idle(srv, n, secure);
  await srv.stop();
}
await neverReads(1);
await neverReads(10);
await emfile();
