// The test STUN/TURN client (lib/stun.mjs) checked on its own, without the server: the RFC 5769
// sample messages decode, verify and re-encode byte for byte, and the codec round-trips.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  A, ATTR, CLASS, METHOD, MAGIC_COOKIE, crc32, decodeMessage, encodeMessage, longTermKey, messageType, splitType,
  encodeXorAddress, decodeXorAddress, ipToBytes, bytesToIp, encodeChannelData, decodeChannelData, splitStream, toPeer,
} from './lib/stun.mjs';

const hex = (s) => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

// RFC 5769 §2.1 Sample Request (short-term credential: the key is the password itself).
const SAMPLE_PASSWORD = Buffer.from('VOkJxbRl1RmTxUk/WvJxBt', 'utf8');
const TXID = hex('b7 e7 a7 01 bc 34 d6 86 fa 87 df ae');
const REQ_2_1 = hex(`
  00 01 00 58  21 12 a4 42  b7 e7 a7 01  bc 34 d6 86  fa 87 df ae
  80 22 00 10  53 54 55 4e  20 74 65 73  74 20 63 6c  69 65 6e 74   # SOFTWARE "STUN test client"
  00 24 00 04  6e 00 01 ff                                          # PRIORITY
  80 29 00 08  93 2f f9 b1  51 26 3b 36                             # ICE-CONTROLLED
  00 06 00 09  65 76 74 6a  3a 68 36 76  59 20 20 20                # USERNAME "evtj:h6vY" + 3 spaces of padding
  00 08 00 14  9a ea a7 0c  bf d8 cb 56  78 1e f2 b5  b2 d3 f2 49  c1 b5 71 a2
  80 28 00 04  e5 7a 3b cf`);
// RFC 5769 §2.2 Sample IPv4 Response.
const RES_2_2 = hex(`
  01 01 00 3c  21 12 a4 42  b7 e7 a7 01  bc 34 d6 86  fa 87 df ae
  80 22 00 0b  74 65 73 74  20 76 65 63  74 6f 72 20                # SOFTWARE "test vector" + 1 space
  00 20 00 08  00 01 a1 47  e1 12 a6 43                             # XOR-MAPPED-ADDRESS 192.0.2.1:32853
  00 08 00 14  2b 91 f5 99  fd 9e 90 c3  8c 74 89 f9  2a f9 ba 53  f0 6b e7 d7
  80 28 00 04  c0 7d 4c 96`);
// RFC 5769 §2.3 Sample IPv6 Response.
const RES_2_3 = hex(`
  01 01 00 48  21 12 a4 42  b7 e7 a7 01  bc 34 d6 86  fa 87 df ae
  80 22 00 0b  74 65 73 74  20 76 65 63  74 6f 72 20
  00 20 00 14  00 02 a1 47  01 13 a9 fa  a5 d3 f1 79  bc 25 f4 b5  be d2 b9 d9
  00 08 00 14  a3 82 95 4e  4b e6 7b f1  17 84 c9 7c  82 92 c2 75  bf e3 ed 41
  80 28 00 04  c8 fb 0b 4c`);
// RFC 5769 §2.4 Sample Request with Long-Term Authentication.
const REQ_2_4 = hex(`
  00 01 00 60  21 12 a4 42  78 ad 34 33  c6 ad 72 c0  29 da 41 2e
  00 06 00 12  e3 83 9e e3  83 88 e3 83  aa e3 83 83  e3 82 af e3  82 b9 00 00
  00 15 00 1c  66 2f 2f 34  39 39 6b 39  35 34 64 36  4f 4c 33 34  6f 4c 39 46  53 54 76 79  36 34 73 41
  00 14 00 0b  65 78 61 6d  70 6c 65 2e  6f 72 67 00
  00 08 00 14  f6 70 24 65  6d d6 4a 3e  02 b8 e0 71  2e 85 c9 a2  8c a8 96 66`);

describe('RFC 5769 test vectors', () => {
  test('§2.1 sample request: decodes, MESSAGE-INTEGRITY and FINGERPRINT verify', () => {
    const m = decodeMessage(REQ_2_1);
    assert.equal(m.cls, CLASS.REQUEST);
    assert.equal(m.method, METHOD.BINDING);
    assert.deepEqual(m.txid, TXID);
    assert.equal(m.software, 'STUN test client');
    assert.equal(m.get(ATTR.USERNAME).toString(), 'evtj:h6vY');
    assert.deepEqual(m.get(ATTR.PRIORITY), hex('6e 00 01 ff'));
    assert.deepEqual(m.get(ATTR.ICE_CONTROLLED), hex('93 2f f9 b1 51 26 3b 36'));
    assert.equal(m.hasIntegrity, true);
    assert.equal(m.integrityOk(SAMPLE_PASSWORD), true);
    assert.equal(m.integrityOk(Buffer.from('wrong')), false);
    assert.equal(m.hasFingerprint, true);
    assert.equal(m.fingerprintOk, true);
  });

  test('§2.1 sample request: re-encoded byte for byte', () => {
    const buf = encodeMessage({
      cls: CLASS.REQUEST, method: METHOD.BINDING, txid: TXID,
      attrs: [
        A.software('STUN test client'),
        A.raw(ATTR.PRIORITY, hex('6e 00 01 ff')),
        A.raw(ATTR.ICE_CONTROLLED, hex('93 2f f9 b1 51 26 3b 36')),
        { ...A.username('evtj:h6vY'), padByte: 0x20 }, // the sample pads with spaces
      ],
    }, { key: SAMPLE_PASSWORD, fingerprint: true });
    assert.equal(buf.toString('hex'), REQ_2_1.toString('hex'));
  });

  test('§2.2 sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853, integrity, fingerprint, re-encoding', () => {
    const m = decodeMessage(RES_2_2);
    assert.equal(m.cls, CLASS.SUCCESS);
    assert.equal(m.method, METHOD.BINDING);
    assert.equal(m.software, 'test vector');
    assert.deepEqual(m.xorMappedAddress, { family: 4, address: '192.0.2.1', port: 32853 });
    assert.equal(m.integrityOk(SAMPLE_PASSWORD), true);
    assert.equal(m.fingerprintOk, true);
    const buf = encodeMessage({
      cls: CLASS.SUCCESS, method: METHOD.BINDING, txid: TXID,
      attrs: [{ ...A.software('test vector'), padByte: 0x20 }, A.xorMapped({ address: '192.0.2.1', port: 32853 })],
    }, { key: SAMPLE_PASSWORD, fingerprint: true });
    assert.equal(buf.toString('hex'), RES_2_2.toString('hex'));
  });

  test('§2.3 sample IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853', () => {
    const m = decodeMessage(RES_2_3);
    assert.deepEqual(m.xorMappedAddress, { family: 6, address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
    assert.equal(m.integrityOk(SAMPLE_PASSWORD), true);
    assert.equal(m.fingerprintOk, true);
    const buf = encodeMessage({
      cls: CLASS.SUCCESS, method: METHOD.BINDING, txid: TXID,
      attrs: [{ ...A.software('test vector'), padByte: 0x20 }, A.xorMapped({ address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 })],
    }, { key: SAMPLE_PASSWORD, fingerprint: true });
    assert.equal(buf.toString('hex'), RES_2_3.toString('hex'));
  });

  test('§2.4 long-term credential: key = MD5(username:realm:password) verifies the sample', () => {
    const m = decodeMessage(REQ_2_4);
    const user = m.get(ATTR.USERNAME).toString('utf8');
    assert.equal(user, '\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9');
    assert.equal(m.nonce, 'f//499k954d6OL34oL9FSTvy64sA');
    assert.equal(m.realm, 'example.org');
    const key = longTermKey(user, 'example.org', 'TheMatrIX');
    assert.equal(m.integrityOk(key), true);
    assert.equal(m.hasFingerprint, false);
    const buf = encodeMessage({
      cls: CLASS.REQUEST, method: METHOD.BINDING, txid: m.txid,
      attrs: [A.username(user), A.nonce(m.nonce), A.realm(m.realm)],
    }, { key });
    assert.equal(buf.toString('hex'), REQ_2_4.toString('hex'));
  });

  test('any flipped byte breaks MESSAGE-INTEGRITY or FINGERPRINT', () => {
    for (let i = 20; i < REQ_2_1.length; i += 7) {
      const b = Buffer.from(REQ_2_1);
      b[i] ^= 0x01;
      let m;
      try { m = decodeMessage(b); } catch { continue; } // a length/structure byte: rejected outright
      assert.ok(!(m.integrityOk(SAMPLE_PASSWORD) && m.fingerprintOk), `byte ${i}`);
    }
  });
});

describe('codec', () => {
  test('CRC-32 check value', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  });

  test('message type interleaving (RFC 8489 §5) round-trips', () => {
    assert.equal(messageType(METHOD.BINDING, CLASS.REQUEST), 0x0001);
    assert.equal(messageType(METHOD.BINDING, CLASS.SUCCESS), 0x0101);
    assert.equal(messageType(METHOD.BINDING, CLASS.ERROR), 0x0111);
    assert.equal(messageType(METHOD.SEND, CLASS.INDICATION), 0x0016);
    assert.equal(messageType(METHOD.DATA, CLASS.INDICATION), 0x0017);
    assert.equal(messageType(METHOD.ALLOCATE, CLASS.ERROR), 0x0113);
    for (let m = 0; m < 0x1000; m += 37) for (let c = 0; c < 4; c++) assert.deepEqual(splitType(messageType(m, c)), { cls: c, method: m });
  });

  test('IPv6 text ↔ bytes, embedded IPv4 forms', () => {
    assert.equal(ipToBytes('::ffff:127.0.0.1').bytes.toString('hex'), '00000000000000000000ffff7f000001');
    assert.equal(ipToBytes('::127.0.0.1').bytes.toString('hex'), '0000000000000000000000007f000001');
    assert.equal(ipToBytes('64:ff9b::7f00:1').bytes.toString('hex'), '0064ff9b00000000000000007f000001');
    assert.equal(ipToBytes('2002:7f00:1::1').bytes.toString('hex'), '20027f00000100000000000000000001');
    assert.equal(ipToBytes('::').bytes.toString('hex'), '0'.repeat(32));
    assert.equal(ipToBytes('::1').bytes.toString('hex'), `${'0'.repeat(31)}1`);
    for (const a of ['::', '::1', 'fc00::1', 'fe80::1', 'ff02::1', '100::1', '2001:db8::1', '1:2:3:4:5:6:7:8', '1::8', '2001:db8:1234:5678:11:2233:4455:6677']) {
      assert.equal(bytesToIp(ipToBytes(a).bytes), a);
    }
  });

  test('XOR addresses round-trip for IPv4 and IPv6', () => {
    const txid = Buffer.alloc(12, 0xa5);
    for (const p of [{ address: '127.0.0.1', port: 3478 }, { address: '255.255.255.255', port: 65535 }, { address: '2001:db8::1', port: 1 }, { address: '::ffff:127.0.0.1', port: 9 }]) {
      const v = encodeXorAddress(p, txid);
      const d = decodeXorAddress(v, txid);
      assert.equal(d.port, p.port);
      assert.deepEqual(ipToBytes(d.address).bytes, ipToBytes(p.address).bytes);
    }
    assert.deepEqual(toPeer('[::1]:5'), { address: '::1', port: 5 });
    assert.deepEqual(toPeer('10.0.0.1:7'), { address: '10.0.0.1', port: 7 });
  });

  test('attributes are padded to 4 bytes; ERROR-CODE, LIFETIME, CHANNEL-NUMBER, REQUESTED-TRANSPORT decode', () => {
    const txid = Buffer.alloc(12, 1);
    const buf = encodeMessage({
      cls: CLASS.ERROR, method: METHOD.ALLOCATE, txid,
      attrs: [A.errorCode(438, 'Stale Nonce'), A.lifetime(600), A.channelNumber(0x4001), A.requestedTransport(17), A.realm('r'), A.nonce('abcde'), A.data(Buffer.from('xyz'))],
    }, { fingerprint: true });
    assert.equal(buf.length % 4, 0);
    assert.equal(buf.readUInt32BE(4), MAGIC_COOKIE);
    const m = decodeMessage(buf);
    assert.equal(m.errorCode, 438);
    assert.equal(m.reason, 'Stale Nonce');
    assert.equal(m.lifetime, 600);
    assert.equal(m.channelNumber, 0x4001);
    assert.deepEqual(m.get(ATTR.REQUESTED_TRANSPORT), Buffer.from([17, 0, 0, 0]));
    assert.equal(m.realm, 'r');
    assert.equal(m.nonce, 'abcde');
    assert.equal(m.data.toString(), 'xyz');
    assert.equal(m.fingerprintOk, true);
  });

  test('MESSAGE-INTEGRITY-SHA256 (alone, or after MESSAGE-INTEGRITY) with FINGERPRINT verifies; tampering breaks it', () => {
    const key = longTermKey('user', 'realm', 'pass');
    for (const integrity of ['sha256', 'both']) {
      const buf = encodeMessage({ cls: CLASS.REQUEST, method: METHOD.REFRESH, attrs: [A.username('user'), A.lifetime(5)] }, { key, integrity, fingerprint: true });
      const m = decodeMessage(buf);
      assert.equal(m.hasIntegritySha256, true);
      assert.equal(m.hasIntegrity, integrity === 'both');
      assert.equal(m.integritySha256Ok(key), true);
      if (integrity === 'both') assert.equal(m.integrityOk(key), true);
      assert.equal(m.integritySha256Ok(Buffer.alloc(16)), false);
      assert.equal(m.fingerprintOk, true);
      const bad = Buffer.from(buf);
      bad[26] ^= 1; // inside USERNAME
      assert.equal(decodeMessage(bad).integritySha256Ok(key), false);
    }
  });

  test('malformed messages are rejected', () => {
    const good = encodeMessage({ cls: CLASS.REQUEST, method: METHOD.BINDING, attrs: [A.software('x')] });
    assert.throws(() => decodeMessage(good.subarray(0, 19)));
    const badCookie = Buffer.from(good); badCookie[4] ^= 1;
    assert.throws(() => decodeMessage(badCookie));
    const badLen = Buffer.from(good); badLen.writeUInt16BE(badLen.readUInt16BE(2) + 4, 2);
    assert.throws(() => decodeMessage(badLen));
    const overrun = Buffer.from(good); overrun.writeUInt16BE(200, 22);
    assert.throws(() => decodeMessage(overrun));
  });

  test('ChannelData framing, with padding on streams; stream splitting', () => {
    const d = Buffer.from('hello');
    const udp = encodeChannelData(0x4000, d);
    assert.equal(udp.length, 9);
    const tcp = encodeChannelData(0x4000, d, { pad: true });
    assert.equal(tcp.length, 12);
    assert.deepEqual(decodeChannelData(tcp).data, d);
    const stun = encodeMessage({ cls: CLASS.INDICATION, method: METHOD.DATA, attrs: [A.data(Buffer.from('ab'))] });
    const stream = Buffer.concat([tcp, stun, encodeChannelData(0x7fff, Buffer.alloc(0), { pad: true }), tcp.subarray(0, 6)]);
    const { frames, rest } = splitStream(stream);
    assert.equal(frames.length, 3);
    assert.deepEqual(frames[0], tcp);
    assert.deepEqual(frames[1], stun);
    assert.equal(frames[2].length, 4);
    assert.equal(rest.length, 6);
  });
});
