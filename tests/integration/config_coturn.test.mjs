// A coturn turnserver.conf mostly works as a turnkey config file: coturn's names for the same
// settings (listening-ip/-port, tls-listening-port, min-port/max-port, realm, user-quota,
// total-quota, allowed-peer-ip, denied-peer-ip, no-tls, ...), "name=value" without spaces
// and bare flags. An unknown name stops turnkey with the file and line.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, freshDataDir, createAccount, createToken, cliTimed, mintTurn } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer } from './lib/stun.mjs';
import { freeUdpPort } from './lib/tools.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function serve(args) {
  const proc = spawn(BIN, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  return {
    proc, exited, out: () => out, err: () => err,
    async started() {
      const t0 = Date.now();
      while (!/API listening on (\S+)/.test(out)) {
        if (proc.exitCode !== null) throw new Error(`exited ${proc.exitCode}: ${err}`);
        if (Date.now() - t0 > 15000) throw new Error(`no start in 15 s: ${out}${err}`);
        await sleep(50);
      }
      return out.match(/API listening on (\S+)/)[1];
    },
  };
}

describe('coturn names in the config file', () => {
  test('a turnserver.conf-style file configures listeners, relay ports, realm, quotas and peers', async () => {
    const data = freshDataDir();
    const account = createAccount(data);
    const token = createToken(data, account);
    const port = await freeUdpPort();
    const conf = join(data, 'turnserver.conf');
    writeFileSync(conf, [
      '# coturn-style configuration',
      'listening-ip=127.0.0.1',
      `listening-port=${port}`,
      'no-tls',
      'min-port=40000',
      'max-port=40099',
      'realm=coturn.example',
      'user-quota=1',
      'total-quota=0',
      'allowed-peer-ip=127.0.0.1',
      'denied-peer-ip=203.0.113.0-203.0.113.255',
      'fingerprint',
      'lt-cred-mech',
      'no-cli',
      'no-multicast-peers',
      '',
    ].join('\n'), { mode: 0o600 });
    const s = serve(['--config', conf, '--data', data, '--api-listen', '127.0.0.1:0']);
    const url = await s.started();
    assert.match(s.out(), new RegExp(`TURN listening on 127\\.0\\.0\\.1:${port} udp\\+tcp \\(realm coturn\\.example\\)`));
    assert.doesNotMatch(s.out(), /TURN\/TLS/, 'no-tls turned TLS off');
    const base = `${url}/client/v4`;
    const kr = await fetch(`${base}/accounts/${account}/calls/turn_keys`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}',
    });
    const key = (await kr.json()).result;
    const cred = await mintTurn({ url }, key, { ttl: 600, prefix: 'coturn' });
    const peer = await echoPeer();
    const c = new TurnClient({ port });
    const a = await c.allocate(cred);
    assert.equal(a.cls, CLASS.SUCCESS, `Allocate: ${a.errorCode} ${a.reason}`);
    assert.equal(a.xorRelayedAddress.address, '127.0.0.1');
    assert.ok(a.xorRelayedAddress.port >= 40000 && a.xorRelayedAddress.port <= 40099, `relay port ${a.xorRelayedAddress.port} in min-port..max-port`);
    // allowed-peer-ip opened 127.0.0.1: relaying to the local echo peer works
    assert.equal((await c.channelBind(0x4000, { address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
    await c.sendChannel(0x4000, Buffer.from('hello'));
    const d = await c.nextData({ timeoutMs: 5000 });
    assert.equal(d.data.toString(), 'hello');
    // denied-peer-ip: a public documentation range listed as an IPv4 range is denied
    const p = await c.createPermission([{ address: '203.0.113.77', port: 9 }]);
    assert.equal(p.cls, CLASS.ERROR);
    assert.equal(p.errorCode, 403);
    // user-quota=1: the same username's second allocation gets 486
    const c2 = new TurnClient({ port });
    const a2 = await c2.allocate(cred);
    assert.equal(a2.errorCode, 486);
    await c2.close();
    assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS); // no allocation left: SIGTERM exits at once
    await c.close();
    await peer.close();
    s.proc.kill('SIGTERM');
    const ex = await s.exited;
    assert.deepEqual(ex, { code: 0, signal: null }, s.err());
    rmSync(data, { recursive: true, force: true });
  });

  test('no-udp: the listener answers over TCP only', async () => {
    const data = freshDataDir();
    const port = await freeUdpPort();
    const conf = join(data, 'turnserver.conf');
    writeFileSync(conf, `listening-ip=127.0.0.1\nlistening-port=${port}\nno-udp\nno-tls\n`, { mode: 0o600 });
    const s = serve(['--config', conf, '--data', data, '--api-listen', '127.0.0.1:0']);
    await s.started();
    assert.match(s.out(), new RegExp(`TURN listening on 127\\.0\\.0\\.1:${port} tcp \\(`));
    const tcp = new TurnClient({ port, transport: 'tcp' });
    assert.equal((await tcp.binding()).cls, CLASS.SUCCESS, 'Binding over TCP');
    await tcp.close();
    const udp = new TurnClient({ port, transport: 'udp', timeoutMs: 1500 });
    await assert.rejects(udp.binding(), 'no answer over UDP');
    await udp.close();
    s.proc.kill('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null }, s.err());
    rmSync(data, { recursive: true, force: true });
  });

  test('an unknown coturn name stops turnkey with the file and line', () => {
    const data = freshDataDir();
    const conf = join(data, 'turnserver.conf');
    writeFileSync(conf, 'listening-port=3478\nrealm=x\nuserdb=/var/lib/turn/turndb\n', { mode: 0o600 });
    const r = cliTimed(['serve', '--config', conf, '--data', data, '--api-listen', '127.0.0.1:0']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), `turnkey: ${conf}:3: unknown setting 'userdb'`);
    assert.doesNotMatch(r.stdout, /listening/);
    rmSync(data, { recursive: true, force: true });
  });

  test('use-auth-secret / static-auth-secret stop turnkey and say where shared secrets live', () => {
    const data = freshDataDir();
    const conf = join(data, 'turnserver.conf');
    for (const line of ['use-auth-secret', 'static-auth-secret=abc']) {
      writeFileSync(conf, `realm=x\n${line}\n`, { mode: 0o600 });
      const r = cliTimed(['serve', '--config', conf, '--data', data, '--api-listen', '127.0.0.1:0']);
      assert.equal(r.code, 2, line);
      assert.match(r.stderr, new RegExp(`^turnkey: ${conf}:2: ${line.split('=')[0]} is not a file setting in turnkey: .*turnkey key secret add`));
      assert.ok(!r.stderr.includes('abc'), 'the secret is not echoed');
      assert.doesNotMatch(r.stdout, /listening/);
    }
    rmSync(data, { recursive: true, force: true });
  });
});
