// A turnkey cluster on loopback for tests: one private PostgreSQL (lib/pg.mjs), API nodes
// (--role api) and relay nodes (--role relay) sharing it, and a steadily relaying client.
import net from 'node:net';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { cli, freshDataDir, startServer } from './server.mjs';
import { TurnClient, CLASS } from './stun.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const lastLine = (s) => s.trim().split('\n').pop();

// A port free on 127.0.0.1 for both TCP and UDP right now (the relay binds both).
export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

export function accountAndToken(store) {
  const a = cli(['account', 'create', '--store', store, '--name', 'cluster']);
  assert.equal(a.code, 0, a.stderr);
  const account = lastLine(a.stdout);
  const t = cli(['token', 'create', '--store', store, '--account', account, '--permissions', 'calls:read,calls:write']);
  assert.equal(t.code, 0, t.stderr);
  return { account, token: lastLine(t.stdout) };
}

// Starts one node; role 'relay' listens on relayPort, role 'api' names relayPorts in iceServers.
export async function startNode(store, { role, relayPort, relayPorts = [], extra = [] }) {
  const data = freshDataDir();
  const listen = role === 'relay' ? ['--turn-listen', `127.0.0.1:${relayPort}`]
    : relayPorts.flatMap((p) => ['--turn-listen', `127.0.0.1:${p}`]);
  const s = await startServer({
    data,
    extraArgs: ['--store', store, '--role', role, ...listen, '--tls-listen', '', '--allow-peer', '127.0.0.1/32', ...extra],
  });
  return { ...s, role, relayPort, base: `${s.url}/client/v4`, cleanup() { rmSync(data, { recursive: true, force: true }); } };
}

export async function mint(api, key, ttl = 3600) {
  const r = await fetch(`${api.url}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, {
    method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ ttl }),
  });
  assert.equal(r.status, 201, await r.clone().text());
  const j = await r.json();
  const turn = j.iceServers.find((s) => s.username);
  return { username: turn.username, password: turn.credential, urls: j.iceServers.flatMap((s) => s.urls) };
}

export async function revoke(api, key, username) {
  const r = await fetch(`${api.url}/v1/turn/keys/${key.uid}/credentials/${encodeURIComponent(username)}/revoke`, {
    method: 'POST', headers: { authorization: `Bearer ${key.key}` },
  });
  return r.status;
}

// Allocates on the relay at port (retrying a 401 for up to waitMs: a key created a moment ago
// reaches a relay node through the change feed) and relays one ChannelData every
// intervalMs through peer; records each echo's arrival time.
export async function relaying(port, cred, peer, { intervalMs = 20, waitMs = 5000, maxMs = 30000 } = {}) {
  const start = performance.now();
  let c, a;
  for (;;) {
    c = new TurnClient({ port });
    a = await c.allocate(cred).catch((e) => ({ error: e }));
    if (a.cls === CLASS.SUCCESS || performance.now() - start > waitMs) break;
    await c.close();
    await sleep(100);
  }
  if (a.cls !== CLASS.SUCCESS) { await c.close(); return { ok: false, result: a }; }
  const b = await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
  assert.equal(b.cls, CLASS.SUCCESS);
  const echoes = [];
  let seq = 0;
  c.on('data', (d) => { if (d.via === 'channel') echoes.push(performance.now()); });
  const timer = setInterval(() => {
    c.drainData();
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(seq++);
    c.sendChannel(0x4000, buf).catch(() => {});
  }, intervalMs);
  const stopper = setTimeout(() => clearInterval(timer), maxMs);
  return {
    ok: true, c, echoes,
    last: () => echoes.at(-1) ?? -Infinity,
    async flowing(n = 5, ms = 5000) {
      const t0 = performance.now();
      while (echoes.length < n && performance.now() - t0 < ms) await sleep(intervalMs);
      return echoes.length >= n;
    },
    // true once no echo arrived for quietMs (false if still relaying after ms)
    async silent(quietMs = 300, ms = 5000) {
      const t0 = performance.now();
      while (performance.now() - t0 < ms) {
        if (performance.now() - this.last() > quietMs) return true;
        await sleep(intervalMs);
      }
      return false;
    },
    async stop() { clearInterval(timer); clearTimeout(stopper); await c.close(); },
  };
}

export const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};
