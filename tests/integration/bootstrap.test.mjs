// `make run` starts `turnkey serve --bootstrap`: on an empty store it prints an account, a
// token and a curl line that works as printed; on the next start it prints neither again.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { BIN, freshDataDir } from './lib/server.mjs';

function serveOnce(data) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ['serve', '--bootstrap', '--data', data, '--api-listen', '127.0.0.1:0',
      '--turn-listen', '127.0.0.1:0', '--tls-listen', '', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`no start: ${out}`)); }, 15000);
    p.stdout.on('data', (d) => {
      out += d;
      if (/API listening on/.test(out)) { clearTimeout(timer); resolve({ p, out }); }
    });
  });
}

const stop = (p) => new Promise((resolve) => { p.on('exit', (code) => resolve(code)); p.kill('SIGTERM'); });

test('first run prints a curl line that creates a key as printed; later runs print no secrets', async () => {
  const data = freshDataDir();
  const first = await serveOnce(data);
  try {
    const token = first.out.match(/TOKEN=(\S+)/)[1];
    const lines = first.out.split('\n');
    const at = lines.findIndex((l) => l.includes('Create a TURN key'));
    const curl = lines.slice(at + 1, at + 4).join('\n');
    assert.match(curl, /^\s+curl /);
    const res = execFileSync('sh', ['-c', `${curl} -w '\\n%{http_code}'`], { encoding: 'utf8' });
    const [body, status] = res.trim().split('\n');
    assert.equal(status, '201', body);
    const key = JSON.parse(body).result;
    assert.equal(key.name, 'my-first-key');
    assert.match(key.key, /^[0-9a-f]{64}$/);
    assert.equal(await stop(first.p), 0);
    const second = await serveOnce(data);
    assert.ok(!second.out.includes(token), 'the token is never printed again');
    assert.match(second.out, /existing store/);
    assert.equal(await stop(second.p), 0);
  } finally {
    first.p.kill('SIGKILL');
  }
});
