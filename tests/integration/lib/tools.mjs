// Small helpers shared by several suites: a throw-away TLS pair, the CN a TLS listener
// presents, a free loopback UDP port.
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect as tlsConnect } from 'node:tls';
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
