// --turn-listen ADDR:0 binds UDP on a port the kernel picks, then TCP on the same number,
// which another process may already hold for TCP. That was a start-up failure ("cannot open
// the TURN TCP listener …: Address already in use") seen on loaded CI machines; now the
// relay tries another port. Made deterministic in a network namespace of our own whose
// ephemeral range has 4 ports, 3 of them held for TCP by a blocker: before the fix 3 of 4
// starts failed.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { startServer, freshDataDir, createAccount } from './lib/server.mjs';

const isRoot = process.getuid?.() === 0;
const haveIp = spawnSync('sh', ['-c', 'command -v ip']).status === 0;
const NS = `tkport0-${process.pid}`;
const LO = 40000, HI = 40003;

describe('TURN listener on port 0: a TCP port taken by another process is not fatal', { skip: !(isRoot && haveIp) && 'needs root and iproute2 (network namespace)' }, () => {
  let blocker, data;
  before(async () => {
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', `net.ipv4.ip_local_port_range=${LO} ${HI}`]);
    // hold TCP on LO..HI-1 inside the namespace; one TCP port of the range stays free
    const script = `const net=require('net');let n=0;for(let p=${LO};p<${HI};p++)net.createServer().listen(p,'127.0.0.1',()=>{if(++n===${HI - LO})console.log('ready')});`;
    blocker = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
      blocker.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
      blocker.on('exit', (c) => reject(new Error(`blocker exited ${c}`)));
    });
    data = freshDataDir();
    createAccount(data);
  });
  after(() => {
    blocker?.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', NS]);
    if (data) rmSync(data, { recursive: true, force: true });
  });

  test('8 starts in a row all bind UDP and TCP on one port of the range (3 of its 4 ports are taken for TCP)', async () => {
    for (let i = 0; i < 8; i++) {
      const s = await startServer({
        data, prefix: ['ip', 'netns', 'exec', NS],
        // the API on a fixed port outside the tiny ephemeral range (a namespace of our own)
        extraArgs: ['--api-listen', '127.0.0.1:18080', '--turn-listen', '127.0.0.1:0', '--tls-listen', '', '--relay-ports', '50000-50100'],
      });
      try {
        assert.ok(s.turnPort >= LO && s.turnPort <= HI, `port ${s.turnPort} from the namespace's range`);
        assert.equal(s.turnPort, HI, 'the only port free for TCP');
      } finally {
        const r = await s.stop();
        assert.equal(r.code, 0, `exit status — stderr:\n${s.stderr()}`);
      }
    }
  });
});
