// Credential plane: minting (generate-ice-servers, legacy generate), request body validation
// and the iceServers URLs derived from --public-host / --turn-listen / --tls-listen.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { rmSync } from 'node:fs';
import { fixture, freshDataDir, cliTimed } from './lib/server.mjs';

// The relay binds --turn-listen (UDP + TCP) and TLS binds --tls-listen, so a test naming a
// fixed port must not collide with another server on this host: use `preferred` when both
// TCP and UDP can bind it on 127.0.0.1, else any free port.
async function canBind(port) {
  const tcp = await new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(srv));
  });
  if (!tcp) return 0;
  const got = tcp.address().port;
  const udp = await new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', () => { sock.close(); resolve(false); });
    sock.bind({ address: '127.0.0.1', port: got, exclusive: true }, () => { sock.close(); resolve(true); });
  });
  await new Promise((r) => tcp.close(r));
  return udp ? got : 0;
}
async function freePort(preferred) {
  if (await canBind(preferred)) return preferred;
  for (let i = 0; i < 20; i++) { const p = await canBind(0); if (p) return p; }
  throw new Error('no free port');
}

const USERNAME_RE = /^([1-9][0-9]{0,18}):([0-9a-f]{32}):[0-9a-f]{16}:([0-9a-f]{32})(?::([A-Za-z0-9._:-]{1,64}))?$/;
const PASSWORD_RE = /^[A-Za-z0-9+/]{43}=$/;
const nowS = () => Math.floor(Date.now() / 1000);

async function createKey(f, name = 'k') {
  const res = await fetch(`${f.base}/accounts/${f.account}/calls/turn_keys`, {
    method: 'POST', headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  assert.equal(res.status, 201);
  const { result } = await res.json();
  return { uid: result.uid, key: result.key };
}

// POST to the credential plane. body: undefined = no body at all; a string is sent verbatim;
// anything else is JSON.stringify'd.
async function credPost(f, k, tail, body, { bearer = k.key, method = 'POST' } = {}) {
  const headers = {};
  if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(`${f.url}/v1/turn/keys/${k.uid}/credentials/${tail}`, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
}

const mintIce = (f, k, body, opts) => credPost(f, k, 'generate-ice-servers', body, opts);

function assertJsonError(r, status, code, pointer) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(r.json.success, false);
  assert.ok(Array.isArray(r.json.errors) && r.json.errors.length >= 1, r.text);
  assert.equal(typeof r.json.errors[0].message, 'string');
  assert.ok(r.json.errors[0].message.length > 0);
  if (code !== undefined) assert.equal(r.json.errors[0].code, code, r.text);
  if (pointer !== undefined) assert.equal(r.json.errors[0].source?.pointer, pointer, r.text);
}

// Checks a generate-ice-servers 201 answer; returns {stun, turn, username, credential, parts}.
function assertIceServers(r, k) {
  assert.equal(r.status, 201, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(r.json), ['iceServers']);
  const ice = r.json.iceServers;
  assert.ok(Array.isArray(ice), 'iceServers is an array');
  assert.equal(ice.length, 2, r.text);
  assert.deepEqual(Object.keys(ice[0]).sort(), ['urls']);
  assert.deepEqual(Object.keys(ice[1]).sort(), ['credential', 'urls', 'username']);
  assert.ok(Array.isArray(ice[0].urls) && Array.isArray(ice[1].urls));
  const { username, credential } = ice[1];
  const m = USERNAME_RE.exec(username);
  assert.ok(m, `username grammar: ${username}`);
  assert.equal(m[2], k.uid, 'the username carries the key id');
  assert.match(credential, PASSWORD_RE);
  return { stun: ice[0].urls, turn: ice[1].urls, username, credential, expiry: Number(m[1]), cid: m[4] };
}

function assertNoPort53(urls) {
  for (const u of urls) assert.doesNotMatch(u, /:53(\?|$)/, `port 53 advertised: ${u}`);
}

describe('credential plane: minting (public host turn.example.test, UDP/TCP 3478, TLS 5349)', () => {
  let f, k, P, T; // P = turn port (3478 when free), T = TLS port (5349 when free)
  before(async () => {
    P = await freePort(3478);
    T = await freePort(5349);
    f = await fixture({ extraArgs: ['--public-host', 'turn.example.test', '--turn-listen', `127.0.0.1:${P}`, '--tls-listen', `127.0.0.1:${T}`] });
    k = await createKey(f);
  });
  after(async () => { await f?.close(); });

  test('generate-ice-servers {"ttl":600} → 201, exact shape, URLs from configuration, expiry = now + ttl', async () => {
    const t0 = nowS();
    const r = await mintIce(f, k, { ttl: 600 });
    const t1 = nowS();
    const ice = assertIceServers(r, k);
    assert.deepEqual(ice.stun, [`stun:turn.example.test:${P}`]);
    assert.deepEqual(ice.turn, [
      `turn:turn.example.test:${P}?transport=udp`,
      `turn:turn.example.test:${P}?transport=tcp`,
      `turns:turn.example.test:${T}?transport=tcp`,
    ]);
    assertNoPort53([...ice.stun, ...ice.turn]);
    assert.ok(ice.expiry >= t0 + 600 - 2 && ice.expiry <= t1 + 600 + 2, `expiry ${ice.expiry} vs now ${t0}+600`);
    assert.equal(ice.cid, undefined);
  });

  test('two mints give different credentials', async () => {
    const a = assertIceServers(await mintIce(f, k, { ttl: 600, customIdentifier: 'a' }), k);
    const b = assertIceServers(await mintIce(f, k, { ttl: 600, customIdentifier: 'b' }), k);
    assert.notEqual(a.username, b.username);
    assert.notEqual(a.credential, b.credential);
  });

  test('legacy generate → 201 with iceServers a single object {urls, username, credential}', async () => {
    const t0 = nowS();
    const r = await credPost(f, k, 'generate', { ttl: 600 });
    assert.equal(r.status, 201, r.text);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(Object.keys(r.json), ['iceServers']);
    const s = r.json.iceServers;
    assert.ok(s && typeof s === 'object' && !Array.isArray(s), 'iceServers is an object, not an array');
    assert.deepEqual(Object.keys(s).sort(), ['credential', 'urls', 'username']);
    assert.deepEqual(s.urls, [
      `stun:turn.example.test:${P}`,
      `turn:turn.example.test:${P}?transport=udp`,
      `turn:turn.example.test:${P}?transport=tcp`,
      `turns:turn.example.test:${T}?transport=tcp`,
    ]);
    const m = USERNAME_RE.exec(s.username);
    assert.ok(m, s.username);
    assert.equal(m[2], k.uid);
    assert.ok(Math.abs(Number(m[1]) - (t0 + 600)) <= 2);
    assert.match(s.credential, PASSWORD_RE);
  });

  test('legacy generate: validation and customIdentifier work the same', async () => {
    const bad = await credPost(f, k, 'generate', { ttl: 0 });
    assertJsonError(bad, 400, 10001, '/ttl');
    const ok = await credPost(f, k, 'generate', { ttl: 60, customIdentifier: 'legacy-1' });
    assert.equal(ok.status, 201, ok.text);
    assert.match(ok.json.iceServers.username, /:legacy-1$/);
  });

  test('no body at all → defaults (ttl 86400)', async () => {
    const t0 = nowS();
    const r = await mintIce(f, k, undefined);
    const ice = assertIceServers(r, k);
    assert.ok(Math.abs(ice.expiry - (t0 + 86400)) <= 2, `expiry ${ice.expiry}`);
    assert.equal(ice.cid, undefined);
  });

  test('{} and {"ttl":null} → default ttl; {"customIdentifier":null} → none', async () => {
    for (const body of [{}, { ttl: null }, { ttl: null, customIdentifier: null }]) {
      const t0 = nowS();
      const ice = assertIceServers(await mintIce(f, k, body), k);
      assert.ok(Math.abs(ice.expiry - (t0 + 86400)) <= 2, `${JSON.stringify(body)}: expiry ${ice.expiry}`);
      assert.equal(ice.cid, undefined);
    }
  });

  test('ttl bounds: 1 and 172800 → 201 with the right expiry', async () => {
    for (const ttl of [1, 172800]) {
      const t0 = nowS();
      const ice = assertIceServers(await mintIce(f, k, { ttl }), k);
      assert.ok(Math.abs(ice.expiry - (t0 + ttl)) <= 2, `ttl ${ttl}: expiry ${ice.expiry}`);
    }
  });

  for (const ttl of [0, -1, 172801, 1.5, '60', true, {}, [], '', 1e20, -9007199254740993]) {
    test(`bad ttl ${JSON.stringify(ttl)} → 400 with a JSON error body`, async () => {
      const r = await mintIce(f, k, { ttl });
      assertJsonError(r, 400, undefined);
      assert.ok([10001, 6007].includes(r.json.errors[0].code), r.text);
    });
  }

  test('bad ttl codes: 0, -1, 172801, 1.5, "60", true, {} → 10001 pointing at /ttl', async () => {
    for (const ttl of [0, -1, 172801, 1.5, '60', true, {}]) {
      assertJsonError(await mintIce(f, k, { ttl }), 400, 10001, '/ttl');
    }
  });

  test('ttl written as 600.0 or 6e2 (JSON reals) → 400', async () => {
    assertJsonError(await mintIce(f, k, '{"ttl":600.0}'), 400, 10001, '/ttl');
    assertJsonError(await mintIce(f, k, '{"ttl":6e2}'), 400, 10001, '/ttl');
  });

  test('customIdentifier "room-42:user.7" is carried in the username', async () => {
    const ice = assertIceServers(await mintIce(f, k, { ttl: 600, customIdentifier: 'room-42:user.7' }), k);
    assert.equal(ice.cid, 'room-42:user.7');
    assert.ok(ice.username.endsWith(':room-42:user.7'));
  });

  test('customIdentifier of exactly 64 chars of the allowed set → 201', async () => {
    const cid = 'A-z0_9.:'.repeat(8);
    assert.equal(cid.length, 64);
    const ice = assertIceServers(await mintIce(f, k, { ttl: 600, customIdentifier: cid }), k);
    assert.equal(ice.cid, cid);
  });

  for (const cid of ['has space', 'x'.repeat(65), 123, '', 'a/b', 'é', true, ['a'], { a: 1 }, 'a\u0000b']) {
    test(`invalid customIdentifier ${JSON.stringify(cid).slice(0, 30)} → 400`, async () => {
      assertJsonError(await mintIce(f, k, { ttl: 600, customIdentifier: cid }), 400, 10001, '/customIdentifier');
    });
  }

  test('malformed JSON and non-object JSON → 400 code 6007', async () => {
    for (const raw of ['{"ttl":', 'not json', '[]', '600', '"x"', 'null', '{"ttl":1,"ttl":2}']) {
      assertJsonError(await mintIce(f, k, raw), 400, 6007);
    }
  });

  test('unknown fields are ignored', async () => {
    assertIceServers(await mintIce(f, k, { ttl: 600, foo: 'bar' }), k);
  });

  test('body over 64 KiB → 413 JSON error (complete response)', async () => {
    const big = JSON.stringify({ ttl: 600, pad: 'x'.repeat(70000) });
    const r = await mintIce(f, k, big);
    assertJsonError(r, 413, 10003);
  });

  test('GET on generate-ice-servers / generate → 405 with Allow: POST', async () => {
    for (const tail of ['generate-ice-servers', 'generate']) {
      const r = await credPost(f, k, tail, undefined, { method: 'GET' });
      assertJsonError(r, 405, 10005);
      assert.equal(r.headers.get('allow'), 'POST');
    }
  });

  test('unknown credential-plane route → JSON error code 7000', async () => {
    const r = await credPost(f, k, 'bogus', { ttl: 600 });
    assertJsonError(r, 404, 7000);
  });

  test('server stops with exit code 0 (sanitizers clean)', async () => {
    const r = await f.stop();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });
});

describe('credential plane: --tls-listen \'\' advertises no turns URL', () => {
  let f, k, P;
  before(async () => {
    P = await freePort(3478);
    f = await fixture({ extraArgs: ['--public-host', 'turn.example.test', '--turn-listen', `127.0.0.1:${P}`, '--tls-listen', ''] });
    k = await createKey(f);
  });
  after(async () => { await f?.close(); });

  test('generate-ice-servers lists only stun + turn udp/tcp', async () => {
    const ice = assertIceServers(await mintIce(f, k, { ttl: 600 }), k);
    assert.deepEqual(ice.stun, [`stun:turn.example.test:${P}`]);
    assert.deepEqual(ice.turn, [`turn:turn.example.test:${P}?transport=udp`, `turn:turn.example.test:${P}?transport=tcp`]);
    for (const u of [...ice.stun, ...ice.turn]) assert.doesNotMatch(u, /^turns:|:5349/);
    assertNoPort53([...ice.stun, ...ice.turn]);
  });

  test('legacy generate lists no turns URL either', async () => {
    const r = await credPost(f, k, 'generate', { ttl: 600 });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.json.iceServers.urls, [
      `stun:turn.example.test:${P}`,
      `turn:turn.example.test:${P}?transport=udp`,
      `turn:turn.example.test:${P}?transport=tcp`,
    ]);
  });

  test('server stops with exit code 0', async () => {
    const r = await f.stop();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });
});

describe('credential plane: other listener / host configurations', () => {
  test('two public hosts and non-default ports → URLs for each host, nothing else', async () => {
    const P = await freePort(3479), T = await freePort(5350);
    const f = await fixture({ extraArgs: ['--public-host', 'a.example.test,b.example.test', '--turn-listen', `127.0.0.1:${P}`, '--tls-listen', `127.0.0.1:${T}`] });
    try {
      const k = await createKey(f);
      const ice = assertIceServers(await mintIce(f, k, { ttl: 600 }), k);
      assert.deepEqual(ice.stun, [`stun:a.example.test:${P}`, `stun:b.example.test:${P}`]);
      assert.deepEqual(ice.turn, [
        `turn:a.example.test:${P}?transport=udp`, `turn:a.example.test:${P}?transport=tcp`, `turns:a.example.test:${T}?transport=tcp`,
        `turn:b.example.test:${P}?transport=udp`, `turn:b.example.test:${P}?transport=tcp`, `turns:b.example.test:${T}?transport=tcp`,
      ]);
      assertNoPort53([...ice.stun, ...ice.turn]);
    } finally {
      const r = await f.close();
      assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
    }
  });

  test('no --public-host → URLs name the turn-listen host', async () => {
    const P = await freePort(3478), T = await freePort(5349);
    const f = await fixture({ extraArgs: ['--turn-listen', `127.0.0.1:${P}`, '--tls-listen', `127.0.0.1:${T}`] });
    try {
      const k = await createKey(f);
      const ice = assertIceServers(await mintIce(f, k, { ttl: 600 }), k);
      assert.deepEqual(ice.stun, [`stun:127.0.0.1:${P}`]);
      assert.deepEqual(ice.turn, [`turn:127.0.0.1:${P}?transport=udp`, `turn:127.0.0.1:${P}?transport=tcp`, `turns:127.0.0.1:${T}?transport=tcp`]);
    } finally {
      const r = await f.close();
      assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
    }
  });

  // Was a bug: with --turn-listen '' (TLS only) the server answered {"iceServers":[{"urls":[]},{…}]}.
  // An RTCIceServer with an empty urls list makes `new RTCPeerConnection()` throw SyntaxError
  // (W3C webrtc-pc, "set the configuration": "If urls is empty, throw a SyntaxError").
  // Decided: a TLS-only relay is refused at startup with a clear reason (one relay serves
  // UDP/TCP and TLS), so no such answer can be minted.
  test('TLS only (--turn-listen \'\'): refused at startup with a reason, nothing served', async () => {
    const T = await freePort(5349);
    const data = freshDataDir();
    try {
      const r = cliTimed(['serve', '--data', data, '--api-listen', '127.0.0.1:0', '--public-host', 'turn.example.test',
        '--turn-listen', '', '--tls-listen', `127.0.0.1:${T}`]);
      assert.equal(r.signal, null, 'exited by itself');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /--tls-listen needs --turn-listen/);
      assert.doesNotMatch(r.stdout, /API listening/);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  // Product spec §3: "Never advertise a port nothing listens on."
  test('every advertised TCP port (turn …?transport=tcp, turns) accepts a connection', async () => {
    const P = await freePort(3478), T = await freePort(5349);
    const f = await fixture({ extraArgs: ['--turn-listen', `127.0.0.1:${P}`, '--tls-listen', `127.0.0.1:${T}`] });
    try {
      const k = await createKey(f);
      const ice = assertIceServers(await mintIce(f, k, { ttl: 600 }), k);
      for (const u of ice.turn.filter((x) => x.endsWith('?transport=tcp'))) {
        const port = Number(/:(\d+)\?/.exec(u)[1]);
        const ok = await new Promise((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port });
          const t = setTimeout(() => { s.destroy(); resolve(false); }, 2000);
          s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
          s.once('error', () => { clearTimeout(t); resolve(false); });
        });
        assert.ok(ok, `nothing listens on 127.0.0.1:${port}, advertised as ${u}`);
      }
    } finally {
      const r = await f.close();
      assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
    }
  });

  // Was a gap: with both listeners off the server served the API and the legacy /generate
  // answered {"iceServers":{"urls":[]}} — credentials for no server. Decided: refused at startup.
  test('both listeners off: refused at startup with a reason, nothing served', async () => {
    const data = freshDataDir();
    try {
      const r = cliTimed(['serve', '--data', data, '--api-listen', '127.0.0.1:0', '--turn-listen', '', '--tls-listen', '']);
      assert.equal(r.signal, null, 'exited by itself (before: kept serving until killed)');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /no TURN listener/);
      assert.doesNotMatch(r.stdout, /API listening/);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

});
