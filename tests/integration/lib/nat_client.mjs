// The client side of relay_nat.test.mjs, run inside the test's client network namespace
// (`ip netns exec NS node nat_client.mjs`), where only the server's public address is
// reachable. Input: the JSON in $TK_NAT (api, account, token, publicIp, clientIp, turnPort,
// tcpPort, udpPort, targets: [{address, port}]; or mode 'local' with local: [[host, bind
// address, family]]). It mints credentials through the API, runs
// TURN requests with lib/stun.mjs, makes relay-only data channels in headless Chromium
// over UDP, TCP and TLS, and prints one JSON line with everything it saw (the test asserts).
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TurnClient, CLASS } from './stun.mjs';

const cfg = JSON.parse(process.env.TK_NAT);
const out = { errors: [] };

async function post(url, token, body) {
  const r = await fetch(url, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body), signal: AbortSignal.timeout(10000),
  });
  return { status: r.status, body: await r.json() };
}

const PAGE = `<!doctype html><html><body><script>
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function pair(pc) {
  const st = await pc.getStats(); const by = new Map(); st.forEach((s) => by.set(s.id, s));
  let p; st.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) p = by.get(s.selectedCandidatePairId); });
  if (!p) return null;
  const l = by.get(p.localCandidateId) || {}, r = by.get(p.remoteCandidateId) || {};
  return { local: { type: l.candidateType, relayProtocol: l.relayProtocol, address: l.address },
           remote: { type: r.candidateType, address: r.address } };
}
window.echo = async (iceServers, n) => {
  const res = { opened: false, echoed: 0, errors: [], candidates: [] };
  const cfg = { iceServers, iceTransportPolicy: 'relay' };
  const a = new RTCPeerConnection(cfg), b = new RTCPeerConnection(cfg);
  try {
    for (const [pc, other] of [[a, b], [b, a]]) {
      pc.onicecandidate = (e) => { if (e.candidate) { res.candidates.push(e.candidate.candidate); other.addIceCandidate(e.candidate).catch(() => {}); } };
      pc.onicecandidateerror = (e) => res.errors.push(e.errorCode + ' ' + e.url);
    }
    b.ondatachannel = (e) => { e.channel.onmessage = (m) => e.channel.send(m.data); };
    const dc = a.createDataChannel('echo');
    const opened = new Promise((r) => { dc.onopen = () => r(true); });
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
    res.opened = await Promise.race([opened, sleep(20000).then(() => false)]);
    if (res.opened) {
      const got = new Set();
      const all = new Promise((r) => { dc.onmessage = (m) => { got.add(m.data); if (got.size === n) r(); }; });
      for (let i = 0; i < n; i++) dc.send('m' + i);
      await Promise.race([all, sleep(10000)]);
      res.echoed = got.size;
      res.pairA = await pair(a); res.pairB = await pair(b);
    }
  } catch (e) { res.exception = String(e); }
  a.close(); b.close();
  return res;
};
</script></body></html>`;

async function turnChecks(creds) {
  const opts = { host: cfg.publicIp, port: cfg.turnPort, localAddress: cfg.clientIp, timeoutMs: 3000 };
  const a = new TurnClient(opts), b = new TurnClient({ ...opts, port: cfg.tcpPort, transport: 'tcp' });
  const c = new TurnClient({ ...opts, port: cfg.udpPort });
  try {
    for (const [name, cl] of [['a', a], ['b', b], ['c', c]]) {
      const r = await cl.allocate(creds);
      out[`alloc_${name}`] = { cls: r.cls, errorCode: r.errorCode, relayed: cl.relayed, mapped: cl.mapped };
    }
    out.hairpinPermA = (await a.createPermission([b.relayed])).cls === CLASS.SUCCESS;
    out.hairpinPermB = (await b.createPermission([a.relayed])).cls === CLASS.SUCCESS;
    await a.send(b.relayed, Buffer.from('hairpin'));
    const got = await b.nextData({ timeoutMs: 5000 }).catch((e) => ({ error: String(e) }));
    out.hairpinData = { data: got.data?.toString(), peer: got.peer, error: got.error };
    out.control = (await a.createPermission([{ address: cfg.clientIp, port: 9 }])).cls === CLASS.SUCCESS;
    out.denied = [];
    for (const t of cfg.targets) {
      const r = await a.createPermission([t]);
      out.denied.push({ ...t, cls: r.cls, errorCode: r.errorCode });
    }
  } finally {
    for (const cl of [a, b, c]) await cl.close();
  }
}

async function browser(turn) {
  const { chromium } = await import('playwright-core');
  const http = createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(PAGE); });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const profile = mkdtempSync(join(tmpdir(), 'turnkey-nat-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium', headless: true, timeout: 30000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--disable-features=WebRtcHideLocalIpsWithMdns',
        `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE ${cfg.publicIp}`,
        '--ignore-certificate-errors'],
    });
    const page = context.pages()[0] ?? await context.newPage();
    await page.goto(`http://127.0.0.1:${http.address().port}/`, { timeout: 15000 });
    out.browser = {};
    for (const [name, re] of [['udp', /^turn:.*:\d+\?transport=udp$/], ['tcp', /^turn:.*:\d+\?transport=tcp$/], ['tls', /^turns:/]]) {
      const url = turn.urls.find((u) => re.test(u));
      const servers = [{ urls: [url], username: turn.username, credential: turn.credential }];
      out.browser[name] = { url, ...(await page.evaluate(([s, n]) => window.echo(s, n), [servers, 20])) };
    }
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  }
}

// Run in the server's namespace (mode 'local'): the server answers from, and relays on, the
// address each request reached, on a wildcard socket. Connected UDP sockets drop a reply
// from any other source address.
async function localChecks(creds) {
  out.local = [];
  for (const [host, localAddress, family] of cfg.local) {
    const c = new TurnClient({ host, port: cfg.turnPort, localAddress, connect: true, timeoutMs: 3000 });
    try {
      const r = await c.allocate({ ...creds, family });
      out.local.push({ host, family, cls: r.cls, errorCode: r.errorCode, relayed: c.relayed, mapped: c.mapped });
    } catch (e) {
      out.local.push({ host, family, error: String(e) });
    } finally {
      await c.close();
    }
  }
}

try {
  const k = await post(`${cfg.api}/client/v4/accounts/${cfg.account}/calls/turn_keys`, cfg.token, { name: 'nat' });
  const key = k.body.result;
  const m = await post(`${cfg.api}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, key.key, { ttl: 600 });
  out.iceServers = m.body.iceServers;
  const turn = m.body.iceServers.find((s) => s.username);
  if (cfg.mode === 'local') {
    await localChecks({ username: turn.username, password: turn.credential });
  } else {
    await turnChecks({ username: turn.username, password: turn.credential });
    await browser(turn);
  }
} catch (e) {
  out.errors.push(String(e && e.stack || e));
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
