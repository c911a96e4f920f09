// TURN over TLS: the certificate is reloaded on SIGHUP for new connections while live TLS
// allocations keep relaying; a bad new pair keeps the old one.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture } from './lib/server.mjs';

const haveTools = spawnSync('sh', ['-c', 'command -v turnutils_uclient && command -v turnutils_peer && command -v openssl']).status === 0;

function makePair(dir, name, cn) {
  const cert = join(dir, `${name}-cert.pem`), key = join(dir, `${name}-key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  return { cert, key };
}

function peerCertCN(port) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end();
      resolve(cn);
    });
    s.on('error', reject);
    setTimeout(() => reject(new Error('TLS connect timeout')), 3000).unref();
  });
}

async function freeUdpPort() {
  const s = createSocket('udp4');
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

describe('TURN over TLS: certificate reload', { skip: !haveTools && 'coturn tools or openssl missing' }, () => {
  let f, dir, live, peer, key;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'turnkey-tls-'));
    const a = makePair(dir, 'a', 'first.test');
    live = { cert: join(dir, 'live-cert.pem'), key: join(dir, 'live-key.pem') };
    copyFileSync(a.cert, live.cert);
    copyFileSync(a.key, live.key);
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--tls-cert', live.cert, '--tls-key', live.key] });
    const r = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
      method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' }, body: '{}',
    });
    key = (await r.json()).result;
  });
  after(async () => {
    peer?.kill('SIGTERM');
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('SIGHUP swaps the certificate for new connections without dropping a live TLS allocation', async () => {
    assert.equal(await peerCertCN(f.tlsPort), 'first.test');
    const peerPort = await freeUdpPort();
    peer = spawn('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
    const m = await fetch(`${f.url}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, {
      method: 'POST', headers: { authorization: `Bearer ${key.key}` },
    });
    const cred = (await m.json()).iceServers[1];
    // One TLS client sending 60 messages 50 ms apart (~3 s) while the certificate changes.
    const uc = spawn('turnutils_uclient', ['-t', '-S', '-c', '-n', '60', '-z', '50', '-l', '100', '-e', '127.0.0.1',
      '-r', String(peerPort), '-u', cred.username, '-w', cred.credential, '-p', String(f.tlsPort), '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    uc.stdout.on('data', (d) => { out += d; });
    uc.stderr.on('data', (d) => { out += d; });
    const done = new Promise((resolve) => uc.on('exit', (code) => resolve(code)));
    const killer = setTimeout(() => uc.kill('SIGKILL'), 60000);
    await new Promise((r) => setTimeout(r, 1500));
    const b = makePair(dir, 'b', 'second.test');
    copyFileSync(b.cert, live.cert);
    copyFileSync(b.key, live.key);
    f.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await peerCertCN(f.tlsPort), 'second.test', 'new connections see the new certificate');
    const code = await done;
    clearTimeout(killer);
    assert.equal(code, 0, out.slice(-1500));
    const totals = [...out.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/gm)].at(-1);
    assert.deepEqual([Number(totals[1]), Number(totals[2])], [60, 60], 'the live allocation kept relaying');
    assert.match(out, /Total lost packets 0 /);
  });

  test('SIGHUP with a broken pair keeps the old certificate', async () => {
    writeFileSync(live.cert, 'not a certificate\n');
    f.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await peerCertCN(f.tlsPort), 'second.test');
    assert.match(f.stderr(), /keeping the old TLS certificate/);
  });
});
