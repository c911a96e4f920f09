// The data directory (docs/operations.md "Data directory"): everything in it is 0700/0600
// whoever made the directory; a group/other-accessible file there stops turnkey with a message
// naming the path and the fix; operator commands given a directory without a store say so,
// exit non-zero and create nothing (only `account create` and `serve` create a store).
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, chmodSync, chownSync, statSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, cliTimed, startServer, createAccount } from './lib/server.mjs';

const mode = (p) => statSync(p).mode & 0o777;
const scratch = () => mkdtempSync(join(tmpdir(), 'turnkey-dd-'));

describe('data directory permissions', () => {
  test('a pre-made 0755 directory becomes 0700; the store, WAL, SHM and TLS pair are 0600', async () => {
    const parent = scratch();
    const data = join(parent, 'var');
    mkdirSync(data, { mode: 0o755 });
    chmodSync(data, 0o755);
    assert.equal(mode(data), 0o755);
    const s = await startServer({ data });
    try {
      assert.equal(mode(data), 0o700, 'directory tightened');
      // one write so the WAL and shared-memory files exist while the server runs
      assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
      const names = readdirSync(data).sort();
      for (const n of ['turnkey.db', 'turnkey.db-wal', 'turnkey.db-shm', 'tls-selfsigned-cert.pem', 'tls-selfsigned-key.pem'])
        assert.ok(names.includes(n), `${n} exists (have ${names.join(', ')})`);
      for (const n of names) assert.equal(mode(join(data, n)), 0o600, `${n} is 0600`);
      assert.match(s.stderr(), /data directory .* was mode 0755: changed to 0700/);
    } finally {
      const r = await s.stop();
      assert.equal(r.code, 0, s.stderr());
    }
    rmSync(parent, { recursive: true, force: true });
  });

  test('a 0644 store file: serve and operator commands refuse, naming the file and the fix', () => {
    const data = scratch();
    createAccount(data);
    const db = join(data, 'turnkey.db');
    chmodSync(db, 0o644);
    const r = cliTimed(['serve', '--data', data, '--api-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0', '--tls-listen', '']);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
    assert.match(r.stderr, new RegExp(`file ${db} is accessible to group/others \\(mode 0644\\).*chmod 600 ${db}`));
    assert.doesNotMatch(r.stdout, /listening/);
    const l = cli(['account', 'list', '--data', data]);
    assert.equal(l.code, 1);
    assert.match(l.stderr, /chmod 600/);
    assert.equal(mode(db), 0o644, 'the file is left for the operator to look at');
    chmodSync(db, 0o600);
    assert.equal(cli(['account', 'list', '--data', data]).code, 0);
    rmSync(data, { recursive: true, force: true });
  });

  test('a group-readable TLS key or subdirectory in the data directory is refused too', () => {
    const data = scratch();
    createAccount(data);
    mkdirSync(join(data, 'sub'), { mode: 0o750 });
    chmodSync(join(data, 'sub'), 0o750);
    const r = cliTimed(['serve', '--data', data, '--api-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0', '--tls-listen', '']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /directory .*\/sub is accessible to group\/others \(mode 0750\).*chmod 700/);
    rmSync(data, { recursive: true, force: true });
  });

  test("a directory someone else owns, open to others, is refused (not chmod'ed)", { skip: process.getuid() !== 0 && 'needs root to chown' }, () => {
    const parent = scratch();
    const data = join(parent, 'var');
    mkdirSync(data, { mode: 0o755 });
    chmodSync(data, 0o755);
    chownSync(data, 65534, 65534);
    const r = cliTimed(['serve', '--data', data, '--api-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0', '--tls-listen', '']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`directory ${data} is accessible to group/others \\(mode 0755\\).*chmod 700 ${data}`));
    assert.equal(mode(data), 0o755);
    assert.deepEqual(readdirSync(data), [], 'nothing created');
    rmSync(parent, { recursive: true, force: true });
  });
});

describe('operator commands on a directory without a store', () => {
  const cases = [
    ['account', 'list'],
    ['token', 'list'],
    ['token', 'create', '--account', '0'.repeat(32), '--permissions', 'calls:read'],
    ['token', 'revoke', '0'.repeat(32)],
    ['key', 'list', '--account', '0'.repeat(32)],
  ];
  for (const args of cases) {
    test(`${args.slice(0, 2).join(' ')}: says so, exits 1, creates nothing`, () => {
      const parent = scratch();
      const empty = join(parent, 'empty');
      mkdirSync(empty, { mode: 0o755 });
      chmodSync(empty, 0o755);
      const missing = join(parent, 'missing');
      for (const dir of [empty, missing]) {
        const r = cli([...args, '--data', dir]);
        assert.equal(r.code, 1, `${args.join(' ')} --data ${dir}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`no store in ${dir} \\(no turnkey.db there\\)`));
      }
      assert.deepEqual(readdirSync(empty), [], 'no empty store created');
      assert.equal(mode(empty), 0o755, 'not even chmod');
      assert.ok(!existsSync(missing), 'no directory created');
      rmSync(parent, { recursive: true, force: true });
    });
  }

  test('account create makes the directory (0700) and the store (0600)', () => {
    const parent = scratch();
    const data = join(parent, 'new');
    const r = cli(['account', 'create', '--data', data, '--name', 'first']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^[0-9a-f]{32}$/);
    assert.equal(mode(data), 0o700);
    assert.equal(mode(join(data, 'turnkey.db')), 0o600);
    assert.equal(cli(['account', 'list', '--data', data]).code, 0);
    rmSync(parent, { recursive: true, force: true });
  });
});
