// Issue acceptance: a real browser (headless Debian Chromium, driven by playwright-core) sends
// WebRTC data-channel traffic through the real relay, relay-only, over each TURN transport
// (UDP, TCP, TLS) in turn, with credentials minted by the real API. A revoked credential fails.
// Chromium never reaches the internet: see shared/notes/chromium.md for the flags.
// Issue 15 §3: the official cloudflare SDK talks HTTPS (custom CA) to the TLS port shared by
// the API and TURN (--shared-tls-listen), and Chromium relays over turns: on that same port.
// TK_BROWSER_DEBUG=1 starts the server with --log-level debug and prints its stderr on failure.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture } from './lib/server.mjs';
import { makeCa, makeCaSignedPair, sdkTurnRoundTrip, tlsHttp } from './lib/tools.mjs';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const DEBUG = !!process.env.TK_BROWSER_DEBUG;
const ARTIFACT_DIR = new URL('../../build/test-artifacts/', import.meta.url).pathname;

// Exactly the flags of shared/notes/chromium.md. Every address the page or the relay uses
// (127.0.0.1 only) is EXCLUDEd from the resolver rules, or TCP/TLS would fail with ICE error 701.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  '--ignore-certificate-errors', // our TURN/TLS certificate is self-signed
];

// The page: two RTCPeerConnections, relay only, signalling in-page. window.runEcho() is
// bounded by its own timeouts and always resolves (never rejects) with a result object,
// which it also renders as a row of the results table (for the screenshot).
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>turnkey WebRTC relay test</title>
<style>
  body { font: 14px sans-serif; margin: 16px; }
  table { border-collapse: collapse; }
  td, th { border: 1px solid #888; padding: 4px 8px; text-align: left; }
  .pass { background: #cfc; } .fail { background: #fcc; }
</style></head>
<body>
<h2>turnkey: Chromium WebRTC data channel through the relay (iceTransportPolicy: relay)</h2>
<table id="results"><thead><tr>
  <th>case</th><th>TURN URL</th><th>opened</th><th>echoed</th><th>local type</th><th>remote type</th>
  <th>relayProtocol</th><th>ICE errors</th><th>ms</th><th>verdict</th>
</tr></thead><tbody></tbody></table>
<script>
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function selectedPair(pc) {
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  let pair;
  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId); });
  if (!pair) stats.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (!pair) return null;
  const l = byId.get(pair.localCandidateId) || {}, r = byId.get(pair.remoteCandidateId) || {};
  return {
    state: pair.state,
    local: { candidateType: l.candidateType, relayProtocol: l.relayProtocol, protocol: l.protocol, address: l.address, port: l.port, url: l.url },
    remote: { candidateType: r.candidateType, protocol: r.protocol, address: r.address, port: r.port },
  };
}
window.results = [];
window.runEcho = async function ({ label, iceServers, n, openTimeoutMs, echoTimeoutMs, expect }) {
  const t0 = performance.now();
  const res = { label, url: iceServers.flatMap((s) => [].concat(s.urls)).join(' '), opened: false, echoed: 0,
    errors: [], candidates: { pc1: [], pc2: [] }, states: {}, pair1: null, pair2: null, exception: null };
  let pc1, pc2;
  try {
    const cfg = { iceServers, iceTransportPolicy: 'relay' };
    pc1 = new RTCPeerConnection(cfg);
    pc2 = new RTCPeerConnection(cfg);
    const wire = (pc, other, name) => {
      const queue = [];
      pc.onicecandidate = (e) => {
        if (!e.candidate) return;
        res.candidates[name].push(e.candidate.candidate);
        const add = () => other.addIceCandidate(e.candidate).catch((err) => res.errors.push({ pc: name, addIceCandidate: String(err) }));
        if (other.remoteDescription) add(); else queue.push(add);
      };
      pc.onicecandidateerror = (e) => res.errors.push({ pc: name, errorCode: e.errorCode, errorText: e.errorText, url: e.url, address: e.address, port: e.port });
      return () => { for (const f of queue.splice(0)) f(); };
    };
    const flush1 = wire(pc1, pc2, 'pc1'), flush2 = wire(pc2, pc1, 'pc2');
    pc2.ondatachannel = (e) => { e.channel.onmessage = (m) => e.channel.send(m.data); };
    const dc = pc1.createDataChannel('echo');
    const opened = new Promise((r) => { dc.onopen = () => r(true); });
    const offer = await pc1.createOffer();
    await pc1.setLocalDescription(offer);
    await pc2.setRemoteDescription(offer);
    flush1();
    const answer = await pc2.createAnswer();
    await pc2.setLocalDescription(answer);
    await pc1.setRemoteDescription(answer);
    flush2();
    res.opened = await Promise.race([opened, sleep(openTimeoutMs).then(() => false)]);
    if (res.opened) {
      const got = new Set();
      const all = new Promise((r) => { dc.onmessage = (m) => { got.add(m.data); if (got.size === n) r(); }; });
      for (let i = 0; i < n; i++) dc.send('msg-' + i);
      await Promise.race([all, sleep(echoTimeoutMs)]);
      for (let i = 0; i < n; i++) if (got.has('msg-' + i)) res.echoed++;
      res.pair1 = await selectedPair(pc1);
      res.pair2 = await selectedPair(pc2);
    }
    res.states = { pc1: pc1.iceConnectionState, pc2: pc2.iceConnectionState, gathering1: pc1.iceGatheringState, gathering2: pc2.iceGatheringState };
  } catch (err) {
    res.exception = String(err && err.stack || err);
  } finally {
    try { pc1 && pc1.close(); } catch {}
    try { pc2 && pc2.close(); } catch {}
  }
  res.ms = Math.round(performance.now() - t0);
  const pass = expect === 'fail'
    ? !res.opened
    : res.opened && res.echoed === n && res.pair1 && res.pair1.local.candidateType === 'relay' && res.pair1.remote.candidateType === 'relay';
  const codes = [...new Set(res.errors.filter((e) => e.errorCode).map((e) => e.errorCode))].join(',');
  const row = document.createElement('tr');
  row.className = pass ? 'pass' : 'fail';
  for (const v of [label, res.url, res.opened, res.echoed + '/' + n,
    res.pair1 ? res.pair1.local.candidateType : '-', res.pair1 ? res.pair1.remote.candidateType : '-',
    res.pair1 ? res.pair1.local.relayProtocol : '-', codes || '-', res.ms,
    pass ? (expect === 'fail' ? 'PASS (refused as expected)' : 'PASS') : 'FAIL']) {
    const td = document.createElement('td'); td.textContent = String(v); row.appendChild(td);
  }
  document.querySelector('#results tbody').appendChild(row);
  window.results.push(res);
  return res;
};
</script></body></html>`;

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

describe('browser WebRTC through the relay (headless Chromium)', { skip: !haveChromium && `${CHROMIUM} not installed (apt-get install chromium; scripts/deps.sh test)` }, () => {
  let f, key, http, pageUrl, context, page, profile, chromium, certDir, ca;
  const t0 = Date.now();

  const mint = async (ttl = 600) => {
    const r = await fetch(`${f.url}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, {
      method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ttl }), signal: AbortSignal.timeout(5000),
    });
    assert.equal(r.status, 201);
    const body = await r.json();
    const turn = body.iceServers.find((s) => s.username);
    assert.ok(turn && Array.isArray(turn.urls), `a TURN entry with credentials: ${JSON.stringify(body)}`);
    return turn;
  };
  // One transport only: keep the single matching URL with the entry's username/credential.
  const only = (turn, re) => {
    const urls = turn.urls.filter((u) => re.test(u));
    assert.equal(urls.length, 1, `exactly one URL matches ${re} in ${JSON.stringify(turn.urls)}`);
    return [{ urls, username: turn.username, credential: turn.credential }];
  };
  const run = (opts) => withTimeout(page.evaluate((o) => window.runEcho(o), { n: 20, openTimeoutMs: 10000, echoTimeoutMs: 5000, expect: 'pass', ...opts }), 25000, `runEcho ${opts.label}`);
  const diag = (res) => `browser: ${JSON.stringify(res, null, 1)}${DEBUG ? `\nserver stderr:\n${f.stderr().slice(-8000)}` : ''}`;

  before(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'turnkey-browser-ca-'));
    ca = makeCa(certDir);
    const pair = makeCaSignedPair(certDir, ca, 'srv', 'turnkey.test');
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--tls-cert', pair.cert, '--tls-key', pair.key,
      '--shared-tls-listen', '127.0.0.1:0', ...(DEBUG ? ['--log-level', 'debug'] : [])] });
    assert.ok(f.sharedPort, 'server printed its shared HTTPS/TURN port');
    assert.ok(f.turnPort && f.tlsPort, 'server printed its TURN and TURN/TLS ports');
    const r = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
      method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' }, body: '{"name":"browser"}',
    });
    assert.equal(r.status, 201);
    key = (await r.json()).result;

    http = createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }); res.end(PAGE); });
    await new Promise((r) => http.listen(0, '127.0.0.1', r));
    pageUrl = `http://127.0.0.1:${http.address().port}/`;

    ({ chromium } = await import('playwright-core'));
    profile = mkdtempSync(join(tmpdir(), 'turnkey-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20000 });
    page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(20000);
    await page.goto(pageUrl, { timeout: 10000 });
  });

  after(async () => {
    try {
      if (page) {
        mkdirSync(ARTIFACT_DIR, { recursive: true });
        await withTimeout(page.screenshot({ path: join(ARTIFACT_DIR, 'webrtc.png'), fullPage: true, timeout: 10000 }), 12000, 'screenshot');
      }
    } finally {
      await withTimeout(context?.close() ?? Promise.resolve(), 15000, 'browser close').catch((e) => console.error(e));
      if (profile) rmSync(profile, { recursive: true, force: true });
      if (certDir) rmSync(certDir, { recursive: true, force: true });
      if (http) { http.closeAllConnections(); await new Promise((r) => http.close(r)); }
      const r = await f?.close();
      if (r) assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
      console.log(`# browser suite: ${Date.now() - t0} ms`);
    }
  });

  for (const [name, re, proto] of [
    ['UDP', /^turn:.*\?transport=udp$/, 'udp'],
    ['TCP', /^turn:.*\?transport=tcp$/, 'tcp'],
    ['TLS', () => new RegExp(`^turns:.*:${f.tlsPort}\\?transport=tcp$`), 'tls'],
  ]) {
    test(`${name}: data channel opens, 20 messages echoed, selected pair relay/relay, relayProtocol ${proto}`, { timeout: 30000 }, async () => {
      const res = await run({ label: name, iceServers: only(await mint(), typeof re === 'function' ? re() : re) });
      assert.equal(res.exception, null, diag(res));
      assert.equal(res.opened, true, `data channel did not open — ${diag(res)}`);
      assert.equal(res.echoed, 20, diag(res));
      for (const p of [res.pair1, res.pair2]) {
        assert.ok(p, `a selected candidate pair — ${diag(res)}`);
        assert.equal(p.local.candidateType, 'relay', diag(res));
        assert.equal(p.remote.candidateType, 'relay', diag(res));
        assert.equal(p.local.relayProtocol, proto, diag(res));
      }
    });
  }

  test('shared TLS port: the cloudflare SDK over HTTPS (custom CA), then Chromium relays over turns: on the same port', { timeout: 60000 }, async () => {
    const sdk = await sdkTurnRoundTrip({ baseURL: `https://127.0.0.1:${f.sharedPort}/client/v4`, token: f.token, account: f.account, caFile: ca.cert });
    assert.equal(sdk.code, 0, `SDK over HTTPS: ${sdk.stderr}`);
    const c = await tlsHttp(f.sharedPort, { ca: readFileSync(ca.cert) });
    const body = '{"ttl":600}';
    const r = await c.request(`POST /v1/turn/keys/${sdk.out.uid}/credentials/generate-ice-servers HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      `Authorization: Bearer ${sdk.out.key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    c.close();
    assert.equal(r.status, 201, r.body);
    const turn = JSON.parse(r.body).iceServers.find((s) => s.username);
    const res = await run({ label: 'TLS on the HTTPS port', iceServers: only(turn, new RegExp(`^turns:127\\.0\\.0\\.1:${f.sharedPort}\\?transport=tcp$`)) });
    assert.equal(res.exception, null, diag(res));
    assert.equal(res.opened, true, `data channel did not open — ${diag(res)}`);
    assert.equal(res.echoed, 20, diag(res));
    for (const p of [res.pair1, res.pair2]) {
      assert.ok(p, `a selected candidate pair — ${diag(res)}`);
      assert.equal(p.local.candidateType, 'relay', diag(res));
      assert.equal(p.remote.candidateType, 'relay', diag(res));
      assert.equal(p.local.relayProtocol, 'tls', diag(res));
    }
  });

  test('a revoked credential is refused: no data channel, icecandidateerror 401', { timeout: 30000 }, async () => {
    const cred = await mint();
    const rv = await fetch(`${f.url}/v1/turn/keys/${key.uid}/credentials/${encodeURIComponent(cred.username)}/revoke`, {
      method: 'POST', headers: { authorization: `Bearer ${key.key}` }, signal: AbortSignal.timeout(5000),
    });
    assert.equal(rv.status, 204);
    const res = await run({ label: 'revoked (UDP)', iceServers: only(cred, /^turn:.*\?transport=udp$/), openTimeoutMs: 5000, expect: 'fail' });
    assert.equal(res.exception, null, diag(res));
    assert.equal(res.opened, false, `a revoked credential opened a data channel — ${diag(res)}`);
    assert.equal(res.candidates.pc1.length + res.candidates.pc2.length, 0, `no relay candidate with a revoked credential — ${diag(res)}`);
    assert.ok(res.errors.some((e) => e.errorCode === 401), `icecandidateerror 401 — ${diag(res)}`);
  });
});
