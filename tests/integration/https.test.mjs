// Issue 15 §3: HTTPS for the API (--api-tls, OpenSSL in front of libmicrohttpd) and one TLS
// port shared by HTTPS and TURN (--shared-tls-listen), told apart by ALPN or by the first
// bytes after the handshake. Certificates come from a throw-away CA: clients verify them.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, rawHttp } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';
import { makeCa, makeCaSignedPair, sdkTurnRoundTrip, tlsHttp } from './lib/tools.mjs';

const get = (path, token) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}\r\n`;
const post = (path, token, body) => `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

async function echo(c, ch, text) {
  await c.sendChannel(ch, Buffer.from(text));
  return (await c.nextData({ timeoutMs: 3000 })).data.toString();
}

describe('HTTPS API and the TLS port shared with TURN', () => {
  let f, dir, ca, live, peer, key, apiPort;
  const clients = [];
  const mint = async (port) => {
    const c = await tlsHttp(port, { ca: ca.pem });
    const r = await c.request(post(`/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, key.key, '{"ttl":600}'));
    c.close();
    assert.equal(r.status, 201, r.body);
    const body = JSON.parse(r.body);
    const t = body.iceServers.find((s) => s.username);
    return { urls: t.urls, username: t.username, password: t.credential };
  };
  const relayOnce = async (c, ch) => {
    const res = await c.allocate(await mint(f.sharedPort));
    assert.equal(res.cls, CLASS.SUCCESS, `Allocate: ${res.errorCode} ${res.reason}`);
    const target = { address: '127.0.0.1', port: peer.port };
    assert.equal((await c.createPermission(target)).cls, CLASS.SUCCESS);
    assert.equal((await c.channelBind(ch, target)).cls, CLASS.SUCCESS);
    assert.equal(await echo(c, ch, `hello-${ch}`), `hello-${ch}`);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'turnkey-https-'));
    const caPair = makeCa(dir);
    ca = { ...caPair, pem: readFileSync(caPair.cert) };
    const a = makeCaSignedPair(dir, caPair, 'a', 'first.test');
    live = { cert: join(dir, 'live-cert.pem'), key: join(dir, 'live-key.pem') };
    copyFileSync(a.cert, live.cert);
    copyFileSync(a.key, live.key);
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--tls-cert', live.cert, '--tls-key', live.key,
      '--api-tls', '--shared-tls-listen', '127.0.0.1:0'] });
    assert.match(f.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'the API URL printed at start is https');
    assert.ok(f.sharedPort, `the shared port is printed: ${f.stdout()}`);
    apiPort = f.port;
    const c = await tlsHttp(apiPort, { ca: ca.pem });
    const r = await c.request(post(`/client/v4/accounts/${f.account}/calls/turn_keys`, f.token, '{"name":"https"}'));
    c.close();
    assert.equal(r.status, 201, r.body);
    key = JSON.parse(r.body).result;
    peer = await echoPeer();
  });
  after(async () => {
    for (const c of clients) await c.close();
    await peer?.close();
    const r = await f?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('--api-tls: the API answers over verified HTTPS, ALPN http/1.1 (h2 never chosen); plain HTTP gets no answer', async () => {
    const c = await tlsHttp(apiPort, { ca: ca.pem, alpn: ['h2', 'http/1.1'] });
    assert.equal(c.alpn, 'http/1.1');
    assert.equal(c.cn, 'first.test');
    const r = await c.request(get('/healthz'));
    assert.equal(r.status, 200);
    const r2 = await c.request(get(`/client/v4/accounts/${f.account}/calls/turn_keys`, f.token));
    assert.equal(r2.status, 200, 'keep-alive: a second request on the same connection');
    assert.equal(JSON.parse(r2.body).result.length, 1);
    c.close();
    const h2only = await tlsHttp(apiPort, { ca: ca.pem, alpn: ['h2'] });
    assert.equal(h2only.alpn, false, 'h2 is not served, so not selected');
    assert.equal((await h2only.request(get('/healthz'))).status, 200);
    h2only.close();
    const plain = await rawHttp(apiPort, get('/healthz'), { timeoutMs: 10000 });
    assert.equal(plain.status, 0, 'no HTTP answer in clear text on the HTTPS port');
  });

  test('large requests and answers cross the 8 KiB proxy buffers whole, both ways', async () => {
    for (const port of [apiPort, f.sharedPort]) {
      const c = await tlsHttp(port, { ca: ca.pem, timeoutMs: 10000 });
      const big = JSON.stringify({ name: 'x'.repeat(60000) });
      const r = await c.request(post(`/client/v4/accounts/${f.account}/calls/turn_keys`, f.token, big));
      assert.equal(r.status, 400, `a 60 KB body reached the API whole and got its answer: ${r.body.slice(0, 200)}`);
      assert.equal(JSON.parse(r.body).success, false);
      const m = await c.request(get('/metrics', f.token));
      assert.equal(m.status, 200);
      const len = Number(m.head.match(/\r\ncontent-length:\s*(\d+)/i)[1]);
      assert.equal(Buffer.byteLength(m.body), len);
      assert.ok(len > 8192, `the metrics page is larger than one buffer (${len} bytes)`);
      c.close();
    }
  });

  test('a client that stops reading gets every pipelined answer once it reads again, and costs no CPU meanwhile', async () => {
    const cpu = () => { const f2 = readFileSync(`/proc/${f.proc.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f2[11]) + Number(f2[12])) / 100; };
    for (const port of [apiPort, f.sharedPort]) {
      const n = 200; // about 2 MB of /metrics answers: far more than the kernel and proxy buffers
      const got = await new Promise((resolve, reject) => {
        let bytes = 0, answers = 0, cpuPaused;
        const s = tls.connect({ host: '127.0.0.1', port, ca: ca.pem, ALPNProtocols: ['http/1.1'] }, () => {
          s.pause();
          s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(n - 1) + 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
          setTimeout(() => { const c0 = cpu(); setTimeout(() => { cpuPaused = cpu() - c0; s.resume(); }, 2000); }, 500);
        });
        s.on('data', (d) => { bytes += d.length; answers += (d.toString('latin1').match(/HTTP\/1\.1 200 OK/g) || []).length; });
        s.on('error', reject);
        s.on('close', () => resolve({ bytes, answers, cpuPaused }));
        setTimeout(() => reject(new Error(`stalled: ${answers} answers, ${bytes} bytes`)), 30000).unref();
      });
      assert.equal(got.answers, n, `every answer arrived (${got.bytes} bytes)`);
      assert.ok(got.cpuPaused < 1, `the server did not spin while the client paused (${got.cpuPaused} s CPU in 2 s)`);
    }
  });

  test('the official cloudflare SDK works over HTTPS with a custom CA (NODE_EXTRA_CA_CERTS), on the API and on the shared port', async () => {
    for (const port of [apiPort, f.sharedPort]) {
      const r = await sdkTurnRoundTrip({ baseURL: `https://127.0.0.1:${port}/client/v4`, token: f.token, account: f.account, caFile: ca.cert });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.out.uid, /^[0-9a-f]{32}$/);
      assert.ok(r.out.key, 'the key secret is returned on create');
      assert.equal(r.out.got, 'sdk-https');
      assert.ok(r.out.names.includes('sdk-https'));
      assert.equal(r.out.renamed, 'sdk-https-renamed');
    }
    const untrusted = await sdkTurnRoundTrip({ baseURL: `https://127.0.0.1:${f.sharedPort}/client/v4`, token: f.token, account: f.account });
    assert.notEqual(untrusted.code, 0, 'without the CA the SDK refuses the certificate');
    assert.match(untrusted.stderr, /certificate|self[- ]signed|issuer|Connection error/i);
  });

  test('iceServers name turns:HOST:PORT?transport=tcp for the shared port', async () => {
    const m = await mint(apiPort);
    assert.ok(m.urls.includes(`turns:127.0.0.1:${f.sharedPort}?transport=tcp`), JSON.stringify(m.urls));
    assert.ok(m.urls.includes(`turns:127.0.0.1:${f.tlsPort}?transport=tcp`), 'the TLS listener stays advertised');
  });

  test('shared port, ALPN stun.turn: TURN over TLS relays (independent client)', async () => {
    const c = new TurnClient({ port: f.sharedPort, transport: 'tls', alpn: ['stun.turn'], timeoutMs: 3000 });
    clients.push(c);
    await c.ready;
    assert.equal(c.tlsInfo.alpn, 'stun.turn');
    await relayOnce(c, 0x4001);
  });

  test('shared port, no ALPN: a STUN start is TURN, an HTTP method is the API', async () => {
    const c = new TurnClient({ port: f.sharedPort, transport: 'tls', timeoutMs: 3000 });
    clients.push(c);
    await c.ready;
    assert.equal(c.tlsInfo.alpn, false, 'no ALPN negotiated');
    await relayOnce(c, 0x4002);
    const h = await tlsHttp(f.sharedPort, { ca: ca.pem });
    assert.equal(h.alpn, false);
    const r = await h.request(get(`/client/v4/accounts/${f.account}/calls/turn_keys`, f.token));
    assert.equal(r.status, 200, r.body);
    h.close();
    const both = await tlsHttp(f.sharedPort, { ca: ca.pem, alpn: ['h2', 'http/1.1'] });
    assert.equal(both.alpn, 'http/1.1', 'h2 is not chosen on the shared port either');
    both.close();
    const viaAlpn = await tlsHttp(f.sharedPort, { ca: ca.pem, alpn: ['http/1.1'] });
    assert.equal(viaAlpn.alpn, 'http/1.1');
    assert.equal((await viaAlpn.request(get('/healthz'))).status, 200);
    viaAlpn.close();
  });

  test('SIGHUP: the new certificate is served on the API and the shared port, listeners and live connections stay', async () => {
    const keep = await tlsHttp(apiPort, { ca: ca.pem });
    const turn = new TurnClient({ port: f.sharedPort, transport: 'tls', alpn: ['stun.turn'], timeoutMs: 3000 });
    clients.push(turn);
    await relayOnce(turn, 0x4003);
    const b = makeCaSignedPair(dir, { cert: ca.cert, key: ca.key }, 'b', 'second.test');
    copyFileSync(b.cert, live.cert);
    copyFileSync(b.key, live.key);
    f.proc.kill('SIGHUP');
    let cns;
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      cns = [];
      for (const port of [apiPort, f.sharedPort]) { const c = await tlsHttp(port, { ca: ca.pem }); cns.push(c.cn); c.close(); }
      if (cns.every((cn) => cn === 'second.test')) break;
    }
    assert.deepEqual(cns, ['second.test', 'second.test'], 'new connections get the new certificate on both ports');
    assert.equal((await keep.request(get('/healthz'))).status, 200, 'a connection from before the reload still answers');
    keep.close();
    assert.equal(await echo(turn, 0x4003, 'after-reload'), 'after-reload', 'a TURN connection from before keeps relaying');
  });
});
