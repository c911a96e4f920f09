// Test harness: starts the real turnkey binary ($TURNKEY_BIN) on a random loopback port
// with a fresh data directory, and runs the operator CLI on the same store.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import net from 'node:net';
import assert from 'node:assert/strict';
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
// prefix: a command that runs the binary (e.g. ['prlimit', '--nofile=256:256']); it must exec
// it, so proc.pid is the server's pid. bin: another build of turnkey (default $TURNKEY_BIN).
export async function startServer({ data = freshDataDir(), extraArgs = [], env = {}, prefix = [], bin = BIN } = {}) {
  // The relay listens on a free port unless the test names one (parallel servers never clash).
  // stop() sends SIGTERM: no drain wait for allocations a test leaves behind, unless the test
  // sets --drain-timeout itself (lifecycle_signals.test.mjs).
  const turnArgs = [
    ...(extraArgs.includes('--turn-listen') ? [] : ['--turn-listen', '127.0.0.1:0']),
    ...(extraArgs.includes('--tls-listen') ? [] : ['--tls-listen', '127.0.0.1:0']),
    ...(extraArgs.includes('--drain-timeout') ? [] : ['--drain-timeout', '0']),
  ];
  const args = ['serve', '--data', data, '--api-listen', '127.0.0.1:0', '--log-level', 'warn', ...turnArgs, ...extraArgs];
  const [cmd, ...pre] = [...prefix, bin];
  const proc = spawn(cmd, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '', err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 15 s\nstdout: ${out}\nstderr: ${err}`)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/API listening on (https?:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}\nstderr: ${err}`)); });
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const tm = out.match(/TURN listening on ([0-9.]+|\[[0-9a-f:]+\]):(\d+)/);
  const tlsm = out.match(/TURN\/TLS listening on ([0-9.]+|\[[0-9a-f:]+\]):(\d+)/);
  const sharedm = out.match(/HTTPS API and TURN\/TLS share https:\/\/([0-9.]+|\[[0-9a-f:]+\]):(\d+)/);
  return {
    url, port: Number(new URL(url).port), proc, data,
    turnHost: tm ? tm[1] : null, turnPort: tm ? Number(tm[2]) : null,
    tlsPort: tlsm ? Number(tlsm[2]) : null,
    sharedPort: sharedm ? Number(sharedm[2]) : null,
    stderr: () => err,
    stdout: () => out,
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

// ---- helpers for the control-plane suites (control_*.test.mjs) --------------------------

// Like cli() but with a timeout (ms) so a command that unexpectedly keeps running (e.g. a
// `serve` that should have failed) cannot hang the suite. Returns {code, signal, stdout, stderr}.
export function cliTimed(args, { env, timeoutMs = 15000 } = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

// Rows of `turnkey token list --data D`: [{id, account, permissions, status, expires, name}].
export function listTokens(data) {
  const r = cli(['token', 'list', '--data', data]);
  if (r.code !== 0) throw new Error(`token list failed: ${r.stderr}`);
  return r.stdout.trim().split('\n').slice(1).filter(Boolean).map((l) => {
    const [id, account, permissions, status, expires, ...name] = l.trim().split(/\s+/);
    return { id, account, permissions, status, expires, name: name.join(' ') };
  });
}

// Creates a token and finds its id by diffing `token list` before/after. Returns {token, id}.
export function createTokenWithId(data, account, permissions = 'calls:read,calls:write', extra = []) {
  const before = new Set(listTokens(data).map((t) => t.id));
  const token = createToken(data, account, permissions, extra);
  const added = listTokens(data).filter((t) => !before.has(t.id));
  if (added.length !== 1) throw new Error(`expected one new token in token list, got ${added.length}`);
  return { token, id: added[0].id };
}

// Raw HTTP through fetch. body: string/Buffer sent as-is, or an object (JSON.stringify'd).
// Returns {status, headers, text, json} (json undefined when the body is not JSON).
export async function httpRequest(url, { method = 'GET', token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  let b = body;
  if (b !== undefined && typeof b !== 'string' && !(b instanceof Uint8Array)) b = JSON.stringify(b);
  if (b !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers: h, body: b });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

// Writes one complete raw HTTP/1.1 request (Buffer or string) on a fresh TCP connection,
// then reads until the server closes (or a full Content-Length body has arrived).
// Returns {status, headers (lower-case names), body, raw, reset}.
export function rawHttp(port, request, { timeoutMs = 20000, host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const chunks = [];
    let done = false;
    const finish = (reset = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      const sep = raw.indexOf('\r\n\r\n');
      if (sep < 0) { resolve({ status: 0, headers: {}, body: '', raw, reset }); return; }
      const head = raw.subarray(0, sep).toString('latin1').split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const headers = {};
      for (const l of head.slice(1)) { const i = l.indexOf(':'); headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim(); }
      resolve({ status, headers, body: raw.subarray(sep + 4).toString('utf8'), raw, reset });
    };
    const timer = setTimeout(() => { if (!done) { done = true; sock.destroy(); reject(new Error('rawHttp timed out')); } }, timeoutMs);
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d) => {
      chunks.push(d);
      const raw = Buffer.concat(chunks);
      const sep = raw.indexOf('\r\n\r\n');
      if (sep >= 0) {
        const m = raw.subarray(0, sep).toString('latin1').match(/\r\ncontent-length:\s*(\d+)/i);
        if (m && raw.length - sep - 4 >= Number(m[1])) finish();
      }
    });
    sock.on('end', () => finish());
    sock.on('close', () => finish());
    sock.on('error', (e) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') finish(true); else if (!done) { done = true; clearTimeout(timer); reject(e); } });
  });
}

// Runs fn(item, index) over items with at most `limit` in flight; resolves to the results in order.
export async function pool(limit, items, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); } };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// Asserts the Cloudflare v4 envelope on an httpRequest()/rawHttp() answer: JSON content type,
// all four keys present; on errors, `errors[0].code` equals `code`. Returns the parsed body.
export function expectEnvelope(res, status, code) {
  const ctype = typeof res.headers?.get === 'function' ? res.headers.get('content-type') : res.headers?.['content-type'];
  const body = res.json ?? (() => { try { return JSON.parse(res.body); } catch { return undefined; } })();
  const ctx = `HTTP ${res.status} ${res.text ?? res.body}`;
  assert.equal(res.status, status, ctx);
  assert.match(ctype ?? '', /^application\/json\b/, `content-type: ${ctx}`);
  assert.ok(body && typeof body === 'object' && !Array.isArray(body), `JSON object body: ${ctx}`);
  for (const k of ['success', 'errors', 'messages', 'result']) assert.ok(k in body, `envelope has ${k}: ${ctx}`);
  assert.ok(Array.isArray(body.errors) && Array.isArray(body.messages), ctx);
  if (status < 300) {
    assert.equal(body.success, true, ctx);
    assert.deepEqual(body.errors, [], ctx);
  } else {
    assert.equal(body.success, false, ctx);
    assert.equal(body.result, null, ctx);
    assert.ok(body.errors.length >= 1, ctx);
    for (const e of body.errors) {
      assert.equal(typeof e.code, 'number', ctx);
      assert.ok(e.code >= 1000, ctx);
      assert.equal(typeof e.message, 'string', ctx);
      assert.ok(e.message.length > 0, ctx);
    }
    if (code !== undefined) assert.equal(body.errors[0].code, code, ctx);
  }
  return body;
}

// Creates a TURN key through the control plane of fixture f; returns the key object (with `key`).
export async function createTurnKey(f, name = 'k') {
  const r = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
    method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }),
  });
  assert.equal(r.status, 201);
  return (await r.json()).result;
}

// Mints TURN credentials for key through generate-ice-servers; every call gets its own
// customIdentifier (prefix-N), so usernames are recognisable in the server's logs.
let mintSeq = 0;
export async function mintTurn(f, key, { ttl = 86400, prefix = 'mint' } = {}) {
  const r = await fetch(`${f.url}/v1/turn/keys/${key.uid}/credentials/generate-ice-servers`, {
    method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ttl, customIdentifier: `${prefix}-${++mintSeq}` }),
  });
  assert.equal(r.status, 201);
  const { username, credential } = (await r.json()).iceServers[1];
  return { username, password: credential };
}
