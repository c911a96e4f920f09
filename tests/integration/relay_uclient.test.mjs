// Interop: coturn's turnutils_uclient (an independent TURN client) against the real binary,
// with credentials minted from the real API; turnutils_peer echoes every message back.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fixture } from './lib/server.mjs';
import { freeUdpPort, uclient } from './lib/tools.mjs';
import { CLASS, METHOD, decodeMessage, isStun } from './lib/stun.mjs';

const haveCoturn = spawnSync('sh', ['-c', 'command -v turnutils_uclient && command -v turnutils_peer']).status === 0;

// "start_mclient: tot_send_msgs=50, tot_recv_msgs=50" (the final totals line) and lost packets.
function totals(out) {
  const all = [...out.matchAll(/tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/gm)];
  const last = all.at(-1);
  const lost = out.match(/Total lost packets (\d+)/);
  return { sent: last ? Number(last[1]) : -1, recv: last ? Number(last[2]) : -1, lost: lost ? Number(lost[1]) : -1 };
}

// A UDP forwarder on 127.0.0.1 in front of the TURN port: each client address gets its own
// upstream socket; every STUN answer from turnkey is decoded and kept in .answers (with
// .authenticated set when the request it answers carried MESSAGE-INTEGRITY).
async function stunTap(turnPort) {
  const front = createSocket('udp4');
  const ups = new Map();
  const authTx = new Set();
  const answers = [];
  front.on('message', (buf, rinfo) => {
    const id = `${rinfo.address}:${rinfo.port}`;
    let up = ups.get(id);
    if (!up) {
      up = createSocket('udp4');
      up.on('message', (b) => {
        if (isStun(b)) {
          try {
            const m = decodeMessage(b);
            answers.push({ ...m, authenticated: authTx.has(m.txid.toString('hex')) });
          } catch { /* not ours to judge */ }
        }
        front.send(b, rinfo.port, rinfo.address);
      });
      up.bind(0, '127.0.0.1');
      ups.set(id, up);
    }
    if (isStun(buf)) {
      try { const m = decodeMessage(buf); if (m.hasIntegrity) authTx.add(m.txid.toString('hex')); } catch { /* forwarded as is */ }
    }
    up.send(buf, turnPort, '127.0.0.1');
  });
  await new Promise((r) => front.bind(0, '127.0.0.1', r));
  return {
    port: front.address().port, answers,
    close: async () => { for (const u of ups.values()) u.close(); await new Promise((r) => front.close(r)); },
  };
}

describe('turnutils_uclient interop', { skip: !haveCoturn && 'coturn tools not installed' }, () => {
  let f, peer, peerPort, key;
  const mint = async (ttl = 600) => {
    const r = await fetch(`${f.url}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, {
      method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ttl }),
    });
    assert.equal(r.status, 201);
    const body = await r.json();
    return body.iceServers[1];
  };
  const base = (cred, extra = []) => ['-c', '-e', '127.0.0.1', '-r', String(peerPort), '-u', cred.username, '-w', cred.credential,
    '-p', String(f.turnPort), ...extra, '127.0.0.1'];

  before(async () => {
    // uclient's concurrent clients share one username: lift the per-username quota (10).
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--user-quota', '1000'] });
    assert.ok(f.turnPort, 'server printed its TURN port');
    const r = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
      method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' }, body: '{"name":"relay"}',
    });
    key = (await r.json()).result;
    peerPort = await freeUdpPort();
    peer = spawn('turnutils_peer', ['-L', '127.0.0.1', '-p', String(peerPort)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
  });
  after(async () => {
    peer?.kill('SIGTERM');
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });

  test('UDP, ChannelData: every message echoed', async () => {
    const r = await uclient(base(await mint(), ['-n', '20', '-l', '100']));
    const t = totals(r.out);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.equal(t.sent, 20);
    assert.equal(t.recv, 20);
    assert.equal(t.lost, 0);
  });

  test('UDP, Send/Data indications: every message echoed', async () => {
    const r = await uclient(base(await mint(), ['-s', '-n', '20', '-l', '100']));
    const t = totals(r.out);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.deepEqual([t.sent, t.recv, t.lost], [20, 20, 0]);
  });

  test('TCP, ChannelData: every message echoed', async () => {
    const r = await uclient(base(await mint(), ['-t', '-n', '20', '-l', '100']));
    const t = totals(r.out);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.deepEqual([t.sent, t.recv, t.lost], [20, 20, 0]);
  });

  test('TCP, Send/Data indications: every message echoed', async () => {
    const r = await uclient(base(await mint(), ['-t', '-s', '-n', '20', '-l', '100']));
    const t = totals(r.out);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.deepEqual([t.sent, t.recv, t.lost], [20, 20, 0]);
  });

  test('50 concurrent UDP clients: every message echoed', async () => {
    const r = await uclient(base(await mint(), ['-m', '50', '-n', '10', '-l', '120']), 90000);
    const t = totals(r.out);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.deepEqual([t.sent, t.recv, t.lost], [500, 500, 0]);
  });

  test('50 concurrent TCP clients: every message echoed', async () => {
    const r = await uclient(base(await mint(), ['-t', '-m', '50', '-n', '10', '-l', '120']), 90000);
    const t = totals(r.out);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.deepEqual([t.sent, t.recv, t.lost], [500, 500, 0]);
  });

  test('TLS, ChannelData, 10 concurrent clients: every message echoed', async () => {
    // uclient -S picks a random TLS version per connection, 1.0/1.1 included: those get a
    // protocol_version alert and uclient retries, so every client ends up on TLS 1.2/1.3.
    assert.ok(f.tlsPort, 'server printed its TLS port');
    const cred = await mint();
    const args = ['-t', '-S', '-c', '-m', '10', '-n', '10', '-l', '100', '-e', '127.0.0.1', '-r', String(peerPort),
      '-u', cred.username, '-w', cred.credential, '-p', String(f.tlsPort), '127.0.0.1'];
    const r = await uclient(args, 90000);
    const t = totals(r.out);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.deepEqual([t.sent, t.recv, t.lost], [100, 100, 0]);
  });

  // uclient prints only "Cannot complete Allocation" whatever went wrong, so its exit code
  // proves nothing about why. A UDP tap between uclient and turnkey decodes every answer
  // (lib/stun.mjs): the refusal must be turnkey's 401 to the authenticated Allocate, and the
  // same run with the right credential must get the allocation (so the tap itself works).
  async function tappedAllocate(cred, extra = ['-n', '3']) {
    const tap = await stunTap(f.turnPort);
    try {
      const args = ['-c', '-e', '127.0.0.1', '-r', String(peerPort), '-u', cred.username, '-w', cred.credential,
        '-p', String(tap.port), ...extra, '127.0.0.1'];
      const r = await uclient(args, 30000);
      const allocs = tap.answers.filter((m) => m.method === METHOD.ALLOCATE);
      return { ...r, allocs, authenticated: allocs.filter((m) => m.authenticated) };
    } finally { await tap.close(); }
  }

  test('a wrong password is refused with 401 to the authenticated Allocate', async () => {
    const cred = await mint();
    const ok = await tappedAllocate(cred);
    assert.equal(ok.code, 0, ok.out.slice(-1500));
    assert.ok(ok.authenticated.some((m) => m.cls === CLASS.SUCCESS), 'control: the right password allocates through the tap');
    const bad = await tappedAllocate({ ...cred, credential: cred.credential.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) });
    assert.notEqual(bad.code, 0);
    assert.ok(bad.authenticated.length > 0, 'uclient sent an authenticated Allocate');
    for (const m of bad.authenticated) assert.deepEqual([m.cls, m.errorCode], [CLASS.ERROR, 401], `answer ${m.errorCode} ${m.reason}`);
  });

  test('an expired credential is refused with 401 (and worked before it expired)', async () => {
    const cred = await mint(3);
    const ok = await tappedAllocate(cred, ['-n', '1']);
    assert.equal(ok.code, 0, `fresh credential: ${ok.out.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 3200));
    const bad = await tappedAllocate(cred);
    assert.notEqual(bad.code, 0);
    assert.ok(bad.authenticated.length > 0, 'uclient sent an authenticated Allocate');
    assert.ok(!bad.allocs.some((m) => m.cls === CLASS.SUCCESS), 'no Allocate succeeded');
    for (const m of bad.authenticated) assert.deepEqual([m.cls, m.errorCode], [CLASS.ERROR, 401], `answer ${m.errorCode} ${m.reason}`);
  });
});
