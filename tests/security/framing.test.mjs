// Issue 11 point 7: framing and foreign bytes on the TURN ports. Each case sends raw bytes on
// a fresh TCP (or TLS, or UDP) connection and checks what comes back: the answers expected
// and nothing else — never an answer to a request hidden inside another message, never a
// byte the client did not cause (no memory echoed), and a clean close on a framing error.
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { createSocket } from 'node:dgram';
import { fixture, createTurnKey, mintTurn } from '../integration/lib/server.mjs';
import { TurnClient, CLASS, METHOD, A, TRANSPORT, encodeMessage, decodeMessage, newTxid, splitStream, encodeChannelData, echoPeer } from '../integration/lib/stun.mjs';

const binding = (txid = newTxid()) => ({ txid, buf: encodeMessage({ cls: CLASS.REQUEST, method: METHOD.BINDING, txid, attrs: [] }) });
const hex = (b) => Buffer.from(b).toString('hex');

// Writes each chunk (a small pause between them), then collects what the server sends until it
// closes or waitMs passes. Returns {data, closed, frames}.
async function stream(port, chunks, { useTls = false, waitMs = 1500, pauseMs = 5 } = {}) {
  const sock = await new Promise((resolve, reject) => {
    const s = useTls ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(s))
      : net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
  if (!useTls) sock.setNoDelay(true);
  let data = Buffer.alloc(0), closed = false;
  sock.on('data', (d) => { data = Buffer.concat([data, d]); });
  sock.on('error', () => {});
  const done = new Promise((resolve) => sock.on('close', () => { closed = true; resolve(); }));
  for (const c of chunks) {
    sock.write(c);
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, waitMs))]);
  sock.destroy();
  let frames = [];
  try { frames = splitStream(data).frames.map((f) => decodeMessage(f)); } catch { frames = null; }
  return { data, closed, frames };
}

describe('framing on TURN TCP and TLS ports', () => {
  let f;
  before(async () => { f = await fixture(); assert.ok(f.tlsPort); });
  after(async () => {
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  for (const useTls of [false, true]) {
    const port = () => (useTls ? f.tlsPort : f.turnPort);
    const name = useTls ? 'TLS' : 'TCP';

    test(`${name}: two messages in one segment get two answers, in order`, async () => {
      const a = binding(), b = binding();
      const r = await stream(port(), [Buffer.concat([a.buf, b.buf])], { waitMs: 800, useTls });
      assert.deepEqual(r.frames.map((m) => hex(m.txid)), [hex(a.txid), hex(b.txid)]);
    });

    test(`${name}: one message in 1-byte segments gets one answer`, async () => {
      const a = binding();
      const chunks = [...a.buf].map((x) => Buffer.from([x]));
      const r = await stream(port(), chunks, { waitMs: 800, useTls, pauseMs: 2 });
      assert.deepEqual(r.frames.map((m) => hex(m.txid)), [hex(a.txid)]);
    });

    test(`${name}: a STUN length not a multiple of 4 closes the connection; the request after it is not answered`, async () => {
      const bad = Buffer.from(binding().buf); bad.writeUInt16BE(5, 2);
      const next = binding();
      const r = await stream(port(), [Buffer.concat([bad, Buffer.alloc(5), next.buf])], { useTls });
      assert.ok(r.closed, 'closed');
      assert.equal(r.data.length, 0, `answered ${r.data.length} bytes`);
    });

    test(`${name}: a request hidden in the body of a 0xFFFC-byte message is never answered`, async () => {
      const hidden = binding();
      const outer = Buffer.alloc(20 + 0xfffc);
      binding().buf.copy(outer, 0, 0, 20);
      outer.writeUInt16BE(0xfffc, 2);
      for (let off = 20; off + hidden.buf.length <= outer.length; off += 512) hidden.buf.copy(outer, off);
      const r = await stream(port(), [outer], { useTls, waitMs: 2000 });
      assert.ok(!r.frames || r.frames.every((m) => hex(m.txid) !== hex(hidden.txid)), 'the hidden request got an answer');
      assert.ok(r.closed || r.data.length === 0, 'closed, or silent');
    });

    test(`${name}: an attribute whose length overruns the message: no answer, nothing echoed`, async () => {
      const m = binding();
      const body = Buffer.from([0x80, 0x22, 0x01, 0x00, 0x41, 0x41, 0x41, 0x41]); // SOFTWARE claims 256 bytes
      const buf = Buffer.concat([m.buf.subarray(0, 20), body]);
      buf.writeUInt16BE(body.length, 2);
      const next = binding();
      const r = await stream(port(), [Buffer.concat([buf, next.buf])], { useTls, waitMs: 1000 });
      // The broken message is dropped (no answer); the stream stays framed, so the next request is answered.
      assert.ok(r.frames, 'the answers are well framed');
      assert.deepEqual(r.frames.map((x) => hex(x.txid)), [hex(next.txid)]);
    });

    test(`${name}: an HTTP request is closed without a byte of answer`, async () => {
      const r = await stream(port(), [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], { useTls });
      assert.ok(r.closed, 'closed');
      assert.equal(r.data.length, 0);
    });
  }

  test('TLS: a TLS record (ClientHello) inside TLS is closed without an answer', async () => {
    const hello = Buffer.from('16030100a5010000a10303' + '00'.repeat(32) + '000002130101000076', 'hex');
    const r = await stream(f.tlsPort, [hello], { useTls: true });
    assert.ok(r.closed, 'closed');
    assert.equal(r.data.length, 0);
  });

  test('UDP: an attribute overrunning the datagram, and a truncated header, get no answer', async () => {
    const m = binding();
    const body = Buffer.from([0x80, 0x22, 0x01, 0x00, 0x41, 0x41, 0x41, 0x41]);
    const buf = Buffer.concat([m.buf.subarray(0, 20), body]);
    buf.writeUInt16BE(body.length, 2);
    const s = createSocket('udp4');
    const got = [];
    s.on('message', (x) => got.push(x));
    await new Promise((r) => s.bind(0, '127.0.0.1', r));
    s.send(buf, f.turnPort, '127.0.0.1');
    s.send(m.buf.subarray(0, 12), f.turnPort, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 500));
    s.close();
    assert.equal(got.length, 0);
  });
});

describe('ChannelData padding on TCP', () => {
  let f, key, c, peer;
  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32'] });
    key = await createTurnKey(f, 'sec-frame');
    peer = await echoPeer({ echo: false });
    c = new TurnClient({ port: f.turnPort, transport: 'tcp' });
    const r = await c.allocate({ ...(await mintTurn(f, key, { prefix: 'sec-frame' })), transport: TRANSPORT.UDP });
    assert.equal(r.cls, CLASS.SUCCESS);
    const b = await c.channelBind(0x4001, { address: '127.0.0.1', port: peer.port });
    assert.equal(b.cls, CLASS.SUCCESS);
  });
  after(async () => {
    await c?.close();
    await peer?.close();
    const r = await f?.close();
    assert.equal(r.code, 0, `server exit status — stderr:\n${f.stderr()}`);
  });

  test('unpadded ChannelData followed by a request: the padding is taken from the next bytes, so the request is never answered out of step', async () => {
    const next = binding();
    const unpadded = encodeChannelData(0x4001, Buffer.from('abcde'), { pad: false });
    await c.sendRaw(Buffer.concat([unpadded, next.buf]));
    const until = Date.now() + 3000;
    while (peer.seen.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(peer.seen.map((s) => s.data.toString()), ['abcde'], 'exactly the channel payload is relayed');
    assert.ok(!c.unmatched.some((m) => hex(m.txid) === hex(next.txid)), 'the desynchronised request was answered');
    assert.ok(c.tcpClosed, 'the connection is closed on the framing error that follows');
  });
});
