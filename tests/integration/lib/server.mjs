// Test harness: starts the real turnkey binary ($TURNKEY_BIN) on a random loopback port
// with a fresh data directory, and runs the operator CLI on the same store.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.TURNKEY_BIN ?? new URL('../../../build/asan/turnkey', import.meta.url).pathname;

export function freshDataDir() {
  return mkdtempSync(join(tmpdir(), 'turnkey-it-'));
}

// Runs `turnkey <args...>`; returns {code, stdout, stderr}. Never throws on exit status.
export function cli(args, { env } = {}) {
  try {
    const stdout = execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    return { code: e.status ?? -1, stdout: e.stdout?.toString() ?? '', stderr: e.stderr?.toString() ?? '' };
  }
}

const lastLine = (s) => s.trim().split('\n').pop();

export function createAccount(data, name = 'test') {
  const r = cli(['account', 'create', '--data', data, '--name', name]);
  if (r.code !== 0) throw new Error(`account create failed: ${r.stderr}`);
  return lastLine(r.stdout);
}

export function createToken(data, account, permissions = 'calls:read,calls:write', extra = []) {
  const r = cli(['token', 'create', '--data', data, '--account', account, '--permissions', permissions, ...extra]);
  if (r.code !== 0) throw new Error(`token create failed: ${r.stderr}`);
  return lastLine(r.stdout);
}

// Starts `turnkey serve`; resolves to {url, port, proc, data, stop(), kill9()} once it prints
// "API listening on http://HOST:PORT". extraArgs are appended (e.g. ['--max-keys', '5']).
export async function startServer({ data = freshDataDir(), extraArgs = [], env = {} } = {}) {
  const args = ['serve', '--data', data, '--api-listen', '127.0.0.1:0', '--log-level', 'warn', ...extraArgs];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '', err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 15 s\nstdout: ${out}\nstderr: ${err}`)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/API listening on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}\nstderr: ${err}`)); });
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    url, port: Number(new URL(url).port), proc, data,
    stderr: () => err,
    // Graceful stop; resolves with the exit status (the sanitizer build reports leaks as non-zero).
    async stop() { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM'); return exited; },
    async kill9() { proc.kill('SIGKILL'); return exited; },
  };
}

// One fresh server + account + read/write token: the common fixture.
export async function fixture(opts = {}) {
  const data = opts.data ?? freshDataDir();
  const account = createAccount(data);
  const token = createToken(data, account);
  const server = await startServer({ ...opts, data });
  return {
    ...server, account, token,
    base: `${server.url}/client/v4`,
    async close() { const r = await server.stop(); if (!opts.keepData) rmSync(data, { recursive: true, force: true }); return r; },
  };
}
