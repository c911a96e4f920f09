// Small helpers shared by several suites: a throw-away TLS pair, the CN a TLS listener
// presents, a free loopback UDP port.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect as tlsConnect } from 'node:tls';
import tls from 'node:tls';
import { join } from 'node:path';

// A self-signed ECDSA P-256 pair <dir>/<name>-cert.pem / -key.pem for CN cn (openssl).
export function makeCertPair(dir, name, cn) {
  const cert = join(dir, `${name}-cert.pem`), key = join(dir, `${name}-key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  return { cert, key };
}

// The subject CN of the certificate a TLS listener on 127.0.0.1:port presents.
export function peerCertCN(port, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end();
      resolve(cn);
    });
    s.on('error', reject);
    setTimeout(() => reject(new Error('TLS connect timeout')), timeoutMs).unref();
  });
}

// A UDP port on 127.0.0.1 that was free a moment ago.
export async function freeUdpPort() {
  const s = createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

// A throw-away certificate authority <dir>/<name>-cert.pem / -key.pem (openssl), and a pair
// it signs for CN cn with subjectAltName IP:127.0.0.1 (what clients that verify check).
export function makeCa(dir, name = 'ca') {
  return makeCertPair(dir, name, `${name} test CA`);
}
export function makeCaSignedPair(dir, ca, name, cn) {
  const cert = join(dir, `${name}-cert.pem`), key = join(dir, `${name}-key.pem`), csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\n');
  execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
    '-out', cert, '-days', '2', '-extfile', ext], { stdio: 'ignore' });
  return { cert, key };
}

// Runs the official cloudflare SDK in a child node process (NODE_EXTRA_CA_CERTS is read at
// start only) against baseURL: creates a TURN key, gets it, lists, renames it. Resolves to
// {code, out (the parsed result or null), stderr}. caFile: the CA to trust (none: defaults).
export function sdkTurnRoundTrip({ baseURL, token, account, caFile, timeoutMs = 20000 }) {
  const code = `
    import Cloudflare from 'cloudflare';
    const cf = new Cloudflare({ apiToken: process.env.TK_T, baseURL: process.env.TK_B, maxRetries: 0, timeout: 8000 });
    const A = process.env.TK_A;
    const k = await cf.calls.turn.create({ account_id: A, name: 'sdk-https' });
    const got = await cf.calls.turn.get(k.uid, { account_id: A });
    const names = [];
    for await (const it of cf.calls.turn.list({ account_id: A })) names.push(it.name);
    const upd = await cf.calls.turn.update(k.uid, { account_id: A, name: 'sdk-https-renamed' });
    console.log(JSON.stringify({ uid: k.uid, key: k.key, got: got.name, names, renamed: upd.name }));`;
  const env = { ...process.env, TK_T: token, TK_B: baseURL, TK_A: account };
  delete env.NODE_EXTRA_CA_CERTS;
  if (caFile) env.NODE_EXTRA_CA_CERTS = caFile;
  const cwd = new URL('..', import.meta.url).pathname; // resolves 'cloudflare' from node_modules
  return new Promise((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], { cwd, env, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      let out = null;
      try { out = JSON.parse(stdout.trim().split('\n').pop()); } catch { out = null; }
      resolve({ code: err ? (err.code ?? -1) : 0, out, stderr });
    });
  });
}

// One TLS connection to 127.0.0.1:port speaking HTTP/1.1: .alpn, .cn, request(text) resolves
// to {status, body} (keep-alive: one request at a time), close().
export async function tlsHttp(port, { ca, alpn, timeoutMs = 5000 } = {}) {
  const sock = await new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, rejectUnauthorized: !!ca, ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => resolve(s));
    s.once('error', reject);
    setTimeout(() => reject(new Error('TLS connect timeout')), timeoutMs).unref();
  });
  let buf = Buffer.alloc(0), waiter = null, closed = false;
  const check = () => {
    if (!waiter) return;
    const sep = buf.indexOf('\r\n\r\n');
    if (sep < 0) { if (closed) { waiter.reject(new Error('closed before an answer')); waiter = null; } return; }
    const head = buf.subarray(0, sep).toString('latin1');
    const len = Number(head.match(/\r\ncontent-length:\s*(\d+)/i)?.[1] ?? 0);
    if (buf.length < sep + 4 + len) return;
    const body = buf.subarray(sep + 4, sep + 4 + len).toString('utf8');
    buf = buf.subarray(sep + 4 + len);
    const w = waiter;
    waiter = null;
    w.resolve({ status: Number(head.split(' ')[1]), head, body });
  };
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); check(); });
  sock.on('close', () => { closed = true; check(); });
  sock.on('error', () => {});
  return {
    alpn: sock.alpnProtocol, cn: sock.getPeerCertificate().subject?.CN, sock,
    get closed() { return closed; },
    request(text) {
      return new Promise((resolve, reject) => {
        waiter = { resolve, reject };
        const t = setTimeout(() => { if (waiter) { waiter = null; reject(new Error('no HTTP answer in time')); } }, timeoutMs);
        t.unref();
        sock.write(text);
      });
    },
    close() { sock.destroy(); },
  };
}


// Runs coturn's turnutils_uclient with args; resolves {code, signal, out} (stdout and stderr
// together). Killed after timeoutMs.
export function uclient(args, timeoutMs = 60000) {
  return new Promise((resolve) => {
    const p = spawn('turnutils_uclient', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, out }); });
  });
}
