// Operator CLI: account / token commands and `turnkey serve` argument handling.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { cli, cliTimed, freshDataDir, listTokens, startServer, httpRequest, expectEnvelope } from './lib/server.mjs';

const lines = (s) => s.split('\n').filter((l) => l.trim() !== '');
const lastLine = (s) => lines(s).pop();

// Non-zero exit with exactly one non-empty line on stderr.
function assertFailsWithOneLine(r, what) {
  assert.equal(r.signal ?? null, null, `${what}: killed by ${r.signal}`);
  assert.notEqual(r.code, 0, `${what} should fail; stdout: ${r.stdout}`);
  assert.equal(lines(r.stderr).length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
}

// Non-zero exit; the last stderr line is the reason ("turnkey: ..."); any other stderr lines are
// structured log lines (level=...).
function assertFailsWithReason(r, what) {
  assert.equal(r.signal ?? null, null, `${what}: killed by ${r.signal}`);
  assert.notEqual(r.code, 0, `${what} should fail; stdout: ${r.stdout}`);
  const l = lines(r.stderr);
  assert.ok(l.length >= 1, `${what}: a reason on stderr`);
  assert.match(l.at(-1), /^turnkey: /, `${what}: reason line, got:\n${r.stderr}`);
  for (const x of l.slice(0, -1)) assert.match(x, / level=/, `${what}: unexpected stderr line ${x}`);
}

describe('control CLI: accounts and tokens', () => {
  let data, account;
  before(() => {
    data = freshDataDir(); // the first `account create` makes the store (list refuses an empty dir)
  });
  after(() => rmSync(data, { recursive: true, force: true }));

  test('account create prints a 32-hex id as its last line and exits 0; account list shows it', () => {
    const r = cli(['account', 'create', '--data', data, '--name', 'ops team']);
    assert.equal(r.code, 0, r.stderr);
    account = lastLine(r.stdout);
    assert.match(account, /^[0-9a-f]{32}$/);
    const r2 = cli(['account', 'create', '--data', data]);
    assert.equal(r2.code, 0);
    const other = lastLine(r2.stdout);
    assert.match(other, /^[0-9a-f]{32}$/);
    assert.notEqual(other, account);
    const l = cli(['account', 'list', '--data', data]);
    assert.equal(l.code, 0, l.stderr);
    const row = lines(l.stdout).find((x) => x.startsWith(account));
    assert.ok(row, l.stdout);
    assert.match(row, /ops team\s*$/);
    assert.ok(lines(l.stdout).some((x) => x.startsWith(other)));
  });

  test('account create with a bad --name (control character, > 1024 bytes) fails with one line', () => {
    for (const name of ['a\nb', 'x'.repeat(1025)]) {
      assertFailsWithOneLine(cliTimed(['account', 'create', '--data', data, '--name', name]), `--name ${JSON.stringify(name.slice(0, 10))}`);
    }
  });

  test('token create prints a 40-char token as its last stdout line; token list shows it active', () => {
    const before = listTokens(data).length;
    const r = cli(['token', 'create', '--data', data, '--account', account, '--permissions', 'calls:read,calls:write', '--name', 'ci']);
    assert.equal(r.code, 0, r.stderr);
    const tok = lastLine(r.stdout);
    assert.equal(tok.length, 40, tok);
    assert.match(tok, /^[A-Za-z0-9_-]{40}$/);
    const rows = listTokens(data);
    assert.equal(rows.length, before + 1);
    const row = rows.at(-1);
    assert.equal(row.account, account);
    assert.equal(row.status, 'active');
    assert.equal(row.permissions, 'calls:read,calls:write');
    assert.ok(!cli(['token', 'list', '--data', data]).stdout.includes(tok), 'token list never shows the secret');
    for (const p of ['calls:read', 'calls:write', 'calls:write,calls:read']) {
      const x = cli(['token', 'create', '--data', data, '--account', account, '--permissions', p]);
      assert.equal(x.code, 0, `${p}: ${x.stderr}`);
      assert.equal(lastLine(x.stdout).length, 40);
    }
  });

  test('token create without --permissions, with calls:admin, or with an empty list → non-zero, one stderr line, nothing created', () => {
    const before = listTokens(data).length;
    for (const extra of [[], ['--permissions', 'calls:admin'], ['--permissions', ''], ['--permissions', 'calls:read,calls:admin'], ['--permissions', 'admin']]) {
      assertFailsWithOneLine(cliTimed(['token', 'create', '--data', data, '--account', account, ...extra]), `token create ${extra.join(' ')}`);
    }
    assert.equal(listTokens(data).length, before);
  });

  test('token create --account <unknown> or without --account → non-zero, reason as the last stderr line, nothing created', () => {
    const before = listTokens(data).length;
    for (const acct of [['--account', 'c0ffee00c0ffee00c0ffee00c0ffee00'], ['--account', 'nope'], []]) {
      assertFailsWithReason(cliTimed(['token', 'create', '--data', data, ...acct, '--permissions', 'calls:read']), `token create ${acct.join(' ')}`);
    }
    assert.equal(listTokens(data).length, before);
  });

  test('token create --account <unknown> prints exactly one line on stderr', () => {
    assertFailsWithOneLine(cliTimed(['token', 'create', '--data', data, '--account', 'c0ffee00c0ffee00c0ffee00c0ffee00', '--permissions', 'calls:read']), 'token create --account unknown');
  });

  test('--expires-in 0, abc, -5s, 10x, "" are rejected; 90s / 15m / 12h / 30d accepted', () => {
    const before = listTokens(data).length;
    for (const d of ['0', 'abc', '-5s', '10x', '', '0s']) {
      assertFailsWithOneLine(cliTimed(['token', 'create', '--data', data, '--account', account, '--permissions', 'calls:read', '--expires-in', d]), `--expires-in ${JSON.stringify(d)}`);
    }
    assert.equal(listTokens(data).length, before);
    for (const d of ['90s', '15m', '12h', '30d']) {
      const r = cli(['token', 'create', '--data', data, '--account', account, '--permissions', 'calls:read', '--expires-in', d]);
      assert.equal(r.code, 0, `${d}: ${r.stderr}`);
      const row = listTokens(data).at(-1);
      assert.equal(row.status, 'active');
      assert.notEqual(row.expires, 'never');
    }
  });

  test('token revoke <unknown> → non-zero; token revoke <id> → 0 and the token shows revoked', () => {
    assertFailsWithOneLine(cliTimed(['token', 'revoke', '--data', data, 'c0ffee00c0ffee00c0ffee00c0ffee00']), 'revoke unknown');
    assertFailsWithOneLine(cliTimed(['token', 'revoke', '--data', data]), 'revoke without id');
    const id = listTokens(data)[0].id;
    const r = cli(['token', 'revoke', '--data', data, id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(listTokens(data).find((t) => t.id === id).status, 'revoked');
  });

  test('unknown subcommands and options → non-zero with one stderr line', () => {
    for (const args of [['account', 'frobnicate', '--data', data], ['token', 'frobnicate', '--data', data], ['account', 'list', '--data', data, '--bogus'],
      ['frobnicate'], ['token', 'create', '--data']]) {
      assertFailsWithOneLine(cliTimed(args), args.join(' '));
    }
  });
});

describe('control CLI: turnkey serve', () => {
  let data;
  before(() => { data = freshDataDir(); assert.equal(cli(['account', 'create', '--data', data]).code, 0); });
  after(() => rmSync(data, { recursive: true, force: true }));

  test('serve --help exits 0 and mentions --api-listen, --turn-listen, --data', () => {
    const r = cliTimed(['serve', '--help']);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout + r.stderr;
    for (const flag of ['--api-listen', '--turn-listen', '--data', '--max-keys']) assert.ok(text.includes(flag), `help mentions ${flag}`);
  });

  test('serve --api-listen nonsense exits non-zero with a one-line reason', () => {
    for (const addr of ['nonsense', '127.0.0.1', '127.0.0.1:99999', '127.0.0.1:-1', 'nohost.invalid:80', '']) {
      const r = cliTimed(['serve', '--data', data, '--log-level', 'warn', '--turn-listen', '127.0.0.1:0', '--tls-listen', '', '--api-listen', addr], { timeoutMs: 10000 });
      assertFailsWithOneLine(r, `--api-listen ${JSON.stringify(addr)}`);
    }
  });

  test('serve on an API port that is already taken exits non-zero with the reason (naming the port) as the last stderr line', async () => {
    const blocker = net.createServer();
    await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
    const port = blocker.address().port;
    try {
      const r = cliTimed(['serve', '--data', data, '--log-level', 'warn', '--turn-listen', '127.0.0.1:0', '--tls-listen', '', '--api-listen', `127.0.0.1:${port}`], { timeoutMs: 10000 });
      assertFailsWithReason(r, `port ${port} taken`);
      assert.match(lastLine(r.stderr), new RegExp(String(port)));
    } finally {
      await new Promise((res) => blocker.close(res));
    }
  });

  test('serve on a taken port prints exactly one line on stderr', async () => {
    const blocker = net.createServer();
    await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
    try {
      const r = cliTimed(['serve', '--data', data, '--log-level', 'warn', '--turn-listen', '127.0.0.1:0', '--tls-listen', '', '--api-listen', `127.0.0.1:${blocker.address().port}`], { timeoutMs: 10000 });
      assertFailsWithOneLine(r, 'port taken');
    } finally {
      await new Promise((res) => blocker.close(res));
    }
  });

  test('a second server on the same data dir shares the store: a token created by the CLI while both run works at once on both', async () => {
    const acct = lastLine(cli(['account', 'create', '--data', data]).stdout);
    const s1 = await startServer({ data });
    let s2;
    try {
      s2 = await startServer({ data });
      assert.notEqual(s1.port, s2.port);
      const tok = lastLine(cli(['token', 'create', '--data', data, '--account', acct, '--permissions', 'calls:read,calls:write']).stdout);
      const coll = (s) => `${s.url}/client/v4/accounts/${acct}/calls/turn_keys`;
      const k = expectEnvelope(await httpRequest(coll(s1), { method: 'POST', token: tok, body: { name: 'from-cli-token' } }), 201).result;
      // the second server sees the key the first one created, and can rename it
      const seen = expectEnvelope(await httpRequest(`${coll(s2)}/${k.uid}`, { token: tok }), 200).result;
      assert.equal(seen.name, 'from-cli-token');
      const r = expectEnvelope(await httpRequest(`${coll(s2)}/${k.uid}`, { method: 'PUT', token: tok, body: { name: 'renamed-on-2' } }), 200).result;
      assert.equal(r.name, 'renamed-on-2');
      assert.equal(expectEnvelope(await httpRequest(`${coll(s1)}/${k.uid}`, { token: tok }), 200).result.name, 'renamed-on-2');
      const kl = cli(['key', 'list', '--data', data, '--account', acct]);
      assert.equal(kl.code, 0, kl.stderr);
      assert.ok(kl.stdout.includes(k.uid) && kl.stdout.includes('renamed-on-2'), kl.stdout);
      assert.ok(!kl.stdout.includes(k.key), 'key list never prints the secret');
    } finally {
      const r1 = await s1.stop();
      assert.equal(r1.code, 0, `server 1 exit status (sanitizers) — stderr:\n${s1.stderr()}`);
      if (s2) {
        const r2 = await s2.stop();
        assert.equal(r2.code, 0, `server 2 exit status (sanitizers) — stderr:\n${s2.stderr()}`);
      }
    }
  });

});
