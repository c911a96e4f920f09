// A small, independent STUN/TURN client for the integration tests, written from RFC 8489
// (STUN), RFC 8656 (TURN) and RFC 5769 (test vectors). Only node:dgram, node:net and
// node:crypto; nothing is shared with the server's C code, so it checks the server instead of
// agreeing with it.
//
//   Codec:  encodeMessage / decodeMessage, attribute builders (A.*), XOR address coding,
//           MESSAGE-INTEGRITY (HMAC-SHA1), FINGERPRINT (CRC-32 ^ 0x5354554e), ChannelData.
//   Client: new TurnClient({host, port, transport: 'udp' | 'tcp' | 'tls'}) with binding(), allocate(),
//           refresh(), createPermission(), channelBind(), send(), sendChannel(), request(),
//           incoming Data indications / ChannelData as 'data' events and a queue (nextData()).
import { createSocket } from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';

export const MAGIC_COOKIE = 0x2112a442;
export const FINGERPRINT_XOR = 0x5354554e;

export const CLASS = Object.freeze({ REQUEST: 0, INDICATION: 1, SUCCESS: 2, ERROR: 3 });
export const METHOD = Object.freeze({
  BINDING: 0x001, ALLOCATE: 0x003, REFRESH: 0x004, SEND: 0x006, DATA: 0x007,
  CREATE_PERMISSION: 0x008, CHANNEL_BIND: 0x009,
  CONNECT: 0x00a, CONNECTION_BIND: 0x00b, CONNECTION_ATTEMPT: 0x00c, // RFC 6062
});
export const ATTR = Object.freeze({
  MAPPED_ADDRESS: 0x0001, USERNAME: 0x0006, MESSAGE_INTEGRITY: 0x0008, ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a, CHANNEL_NUMBER: 0x000c, LIFETIME: 0x000d, XOR_PEER_ADDRESS: 0x0012,
  DATA: 0x0013, REALM: 0x0014, NONCE: 0x0015, XOR_RELAYED_ADDRESS: 0x0016,
  REQUESTED_ADDRESS_FAMILY: 0x0017, EVEN_PORT: 0x0018, REQUESTED_TRANSPORT: 0x0019,
  DONT_FRAGMENT: 0x001a, MESSAGE_INTEGRITY_SHA256: 0x001c, PASSWORD_ALGORITHM: 0x001d,
  USERHASH: 0x001e, XOR_MAPPED_ADDRESS: 0x0020, RESERVATION_TOKEN: 0x0022, PRIORITY: 0x0024,
  USE_CANDIDATE: 0x0025, CONNECTION_ID: 0x002a, ADDITIONAL_ADDRESS_FAMILY: 0x8000, ADDRESS_ERROR_CODE: 0x8001,
  PASSWORD_ALGORITHMS: 0x8002, ALTERNATE_DOMAIN: 0x8003, SOFTWARE: 0x8022,
  ALTERNATE_SERVER: 0x8023, FINGERPRINT: 0x8028, ICE_CONTROLLED: 0x8029, ICE_CONTROLLING: 0x802a,
});
export const TRANSPORT = Object.freeze({ UDP: 17, TCP: 6 });

// ---- message type: 14 bits, class bits interleaved at positions 4 and 8 (RFC 8489 §5) --------

export function messageType(method, cls) {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) |
    ((cls & 1) << 4) | ((cls & 2) << 7);
}

export function splitType(type) {
  const cls = ((type >> 4) & 1) | ((type >> 7) & 2);
  const method = (type & 0x000f) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0f80);
  return { cls, method };
}

// ---- addresses ------------------------------------------------------------------------------

function ipv4ToBytes(s) {
  const parts = s.split('.');
  if (parts.length !== 4) throw new Error(`bad IPv4 address ${s}`);
  return Buffer.from(parts.map((p) => {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`bad IPv4 address ${s}`);
    return Number(p);
  }));
}

function ipv6ToBytes(s) {
  let str = s;
  let tail4 = null;
  const lastColon = str.lastIndexOf(':');
  if (lastColon >= 0 && str.slice(lastColon + 1).includes('.')) {
    tail4 = ipv4ToBytes(str.slice(lastColon + 1));
    str = `${str.slice(0, lastColon + 1)}0:0`;
    if (str.endsWith(':::0:0')) throw new Error(`bad IPv6 address ${s}`);
  }
  const halves = str.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address ${s}`);
  const groups = (h) => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || (halves.length === 2 && fill < 1)) throw new Error(`bad IPv6 address ${s}`);
  const all = [...head, ...Array(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address ${s}`);
    out.writeUInt16BE(parseInt(g, 16), 2 * i);
  });
  if (tail4) tail4.copy(out, 12);
  return out;
}

// Address text → {family: 4|6, bytes}.
export function ipToBytes(address) {
  if (net.isIPv4(address)) return { family: 4, bytes: ipv4ToBytes(address) };
  if (net.isIPv6(address)) return { family: 6, bytes: ipv6ToBytes(address) };
  throw new Error(`not an IP address: ${address}`);
}

// Bytes → text (IPv6 in RFC 5952 form: lower case, longest zero run of >= 2 groups as ::).
export function bytesToIp(bytes) {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length !== 16) throw new Error('address must be 4 or 16 bytes');
  const g = [];
  for (let i = 0; i < 8; i++) g.push(bytes.readUInt16BE(2 * i));
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

// Accepts {address, port}, "a.b.c.d:port", "[v6]:port" or a bare address (port `defPort`).
export function toPeer(p, defPort = 9) {
  if (typeof p === 'object' && p !== null) return { address: p.address, port: p.port ?? defPort };
  if (typeof p !== 'string') throw new Error(`bad peer ${p}`);
  if (net.isIP(p)) return { address: p, port: defPort };
  let m = p.match(/^\[([^\]]+)\]:(\d+)$/);
  if (m) return { address: m[1], port: Number(m[2]) };
  m = p.match(/^([0-9.]+):(\d+)$/);
  if (m) return { address: m[1], port: Number(m[2]) };
  throw new Error(`bad peer ${p}`);
}

// XOR-*-ADDRESS value (RFC 8489 §14.2): 0, family, port ^ (cookie >> 16), address ^ (cookie || txid).
export function encodeXorAddress(peer, txid) {
  const { address, port } = toPeer(peer);
  const { family, bytes } = ipToBytes(address);
  const out = Buffer.alloc(4 + bytes.length);
  out[0] = 0;
  out[1] = family === 4 ? 0x01 : 0x02;
  out.writeUInt16BE((port ^ (MAGIC_COOKIE >>> 16)) & 0xffff, 2);
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  Buffer.from(txid).copy(mask, 4);
  for (let i = 0; i < bytes.length; i++) out[4 + i] = bytes[i] ^ mask[i];
  return out;
}

export function decodeXorAddress(value, txid) {
  if (value.length < 4) throw new Error('XOR address too short');
  const fam = value[1];
  const n = fam === 0x01 ? 4 : fam === 0x02 ? 16 : 0;
  if (!n || value.length !== 4 + n) throw new Error(`bad XOR address (family ${fam}, length ${value.length})`);
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  Buffer.from(txid).copy(mask, 4);
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = value[4 + i] ^ mask[i];
  return { family: n === 4 ? 4 : 6, address: bytesToIp(bytes), port: value.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16) };
}

// ---- attribute builders -------------------------------------------------------------------------

const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0, 0); return b; };
const text = (s) => (Buffer.isBuffer(s) ? s : Buffer.from(String(s), 'utf8'));

export const A = {
  raw: (type, value = Buffer.alloc(0)) => ({ type, value: Buffer.from(value) }),
  username: (s) => ({ type: ATTR.USERNAME, value: text(s) }),
  realm: (s) => ({ type: ATTR.REALM, value: text(s) }),
  nonce: (s) => ({ type: ATTR.NONCE, value: text(s) }),
  software: (s) => ({ type: ATTR.SOFTWARE, value: text(s) }),
  lifetime: (n) => ({ type: ATTR.LIFETIME, value: u32(n) }),
  requestedTransport: (proto = TRANSPORT.UDP) => ({ type: ATTR.REQUESTED_TRANSPORT, value: Buffer.from([proto, 0, 0, 0]) }),
  requestedAddressFamily: (fam) => ({ type: ATTR.REQUESTED_ADDRESS_FAMILY, value: Buffer.from([fam === 6 ? 0x02 : fam === 4 ? 0x01 : fam, 0, 0, 0]) }),
  channelNumber: (n) => ({ type: ATTR.CHANNEL_NUMBER, value: Buffer.from([(n >> 8) & 0xff, n & 0xff, 0, 0]) }),
  data: (buf) => ({ type: ATTR.DATA, value: Buffer.from(buf) }),
  connectionId: (id) => ({ type: ATTR.CONNECTION_ID, value: u32(id) }),
  errorCode: (code, reason = '') => {
    const r = text(reason);
    const v = Buffer.alloc(4 + r.length);
    v[2] = Math.floor(code / 100) & 0x07;
    v[3] = code % 100;
    r.copy(v, 4);
    return { type: ATTR.ERROR_CODE, value: v };
  },
  // XOR addresses depend on the transaction id: encoded when the message is.
  xorPeer: (peer) => ({ type: ATTR.XOR_PEER_ADDRESS, xorAddress: toPeer(peer) }),
  xorMapped: (peer) => ({ type: ATTR.XOR_MAPPED_ADDRESS, xorAddress: toPeer(peer) }),
  xorRelayed: (peer) => ({ type: ATTR.XOR_RELAYED_ADDRESS, xorAddress: toPeer(peer) }),
};

// ---- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) ------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---- keys ---------------------------------------------------------------------------------------

// Long-term credential key (RFC 8489 §9.2.2, MD5 algorithm): MD5(username ":" realm ":" password).
export function longTermKey(username, realm, password) {
  return createHash('md5').update(Buffer.concat([text(username), Buffer.from(':'), text(realm), Buffer.from(':'), text(password)])).digest();
}

// ---- encode / decode ----------------------------------------------------------------------------

const pad4 = (n) => (4 - (n % 4)) % 4;

function encodeAttr(a, txid) {
  const value = a.xorAddress ? encodeXorAddress(a.xorAddress, txid) : text(a.value ?? Buffer.alloc(0));
  const out = Buffer.alloc(4 + value.length + pad4(value.length), a.padByte ?? 0);
  out.writeUInt16BE(a.type, 0);
  out.writeUInt16BE(a.length ?? value.length, 2); // `length` override: malformed probes
  value.copy(out, 4);
  return out;
}

export function newTxid() {
  return randomBytes(12);
}

// msg = {cls, method, txid?, attrs: [{type, value} | {type, xorAddress}]}
// opts.key: adds MESSAGE-INTEGRITY (HMAC-SHA1 under key); opts.integrity: 'sha1' (default),
// 'sha256' (MESSAGE-INTEGRITY-SHA256 only, RFC 8489 §14.6) or 'both'; opts.fingerprint: adds
// FINGERPRINT.
export function encodeMessage(msg, { key, fingerprint = false, integrity = 'sha1' } = {}) {
  const txid = msg.txid ?? newTxid();
  if (txid.length !== 12) throw new Error('transaction id must be 12 bytes');
  const body = Buffer.concat((msg.attrs ?? []).map((a) => encodeAttr(a, txid)));
  const header = Buffer.alloc(20);
  header.writeUInt16BE(messageType(msg.method, msg.cls), 0);
  header.writeUInt16BE(body.length, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  Buffer.from(txid).copy(header, 8);
  let buf = Buffer.concat([header, body]);
  if (key && integrity !== 'sha256') {
    // The length field counts up to the end of MESSAGE-INTEGRITY while hashing (§14.5).
    buf.writeUInt16BE(buf.length - 20 + 24, 2);
    const mac = createHmac('sha1', key).update(buf).digest();
    const attr = Buffer.alloc(24);
    attr.writeUInt16BE(ATTR.MESSAGE_INTEGRITY, 0);
    attr.writeUInt16BE(20, 2);
    mac.copy(attr, 4);
    buf = Buffer.concat([buf, attr]);
  }
  if (key && (integrity === 'sha256' || integrity === 'both')) {
    buf.writeUInt16BE(buf.length - 20 + 36, 2);
    const mac = createHmac('sha256', key).update(buf).digest();
    const attr = Buffer.alloc(36);
    attr.writeUInt16BE(ATTR.MESSAGE_INTEGRITY_SHA256, 0);
    attr.writeUInt16BE(32, 2);
    mac.copy(attr, 4);
    buf = Buffer.concat([buf, attr]);
  }
  if (fingerprint) {
    buf.writeUInt16BE(buf.length - 20 + 8, 2);
    const attr = Buffer.alloc(8);
    attr.writeUInt16BE(ATTR.FINGERPRINT, 0);
    attr.writeUInt16BE(4, 2);
    attr.writeUInt32BE((crc32(buf) ^ FINGERPRINT_XOR) >>> 0, 4);
    buf = Buffer.concat([buf, attr]);
  }
  return buf;
}

const ERROR_CODE_NAMES = {
  300: 'Try Alternate', 400: 'Bad Request', 401: 'Unauthenticated', 403: 'Forbidden', 420: 'Unknown Attribute',
  437: 'Allocation Mismatch', 438: 'Stale Nonce', 440: 'Address Family not Supported', 441: 'Wrong Credentials',
  442: 'Unsupported Transport Protocol', 443: 'Peer Address Family Mismatch', 486: 'Allocation Quota Reached',
  500: 'Server Error', 508: 'Insufficient Capacity',
};
export const errorName = (code) => ERROR_CODE_NAMES[code] ?? String(code);

// True if buf starts like a STUN message (first two bits 0, magic cookie).
export function isStun(buf) {
  return buf.length >= 20 && (buf[0] & 0xc0) === 0 && buf.readUInt32BE(4) === MAGIC_COOKIE;
}

// Parses one complete STUN message (throws on anything malformed). The result:
//   {cls, method, type, txid, attrs: [{type, value, offset}], raw,
//    get(type), all(type), errorCode, reason, realm, nonce, software, lifetime, data,
//    xorMappedAddress, xorRelayedAddress, xorPeerAddress, unknownAttributes, channelNumber,
//    hasIntegrity, hasIntegritySha256, hasFingerprint, fingerprintOk, integrityOk(key), integritySha256Ok(key)}
export function decodeMessage(raw) {
  const buf = Buffer.from(raw);
  if (buf.length < 20) throw new Error('STUN message shorter than its header');
  if ((buf[0] & 0xc0) !== 0) throw new Error('first two bits of a STUN message must be zero');
  if (buf.readUInt32BE(4) !== MAGIC_COOKIE) throw new Error('bad magic cookie');
  const length = buf.readUInt16BE(2);
  if (length % 4 !== 0) throw new Error('STUN length not a multiple of 4');
  if (length + 20 !== buf.length) throw new Error(`STUN length ${length} does not match ${buf.length - 20} bytes`);
  const type = buf.readUInt16BE(0);
  const { cls, method } = splitType(type);
  const txid = buf.subarray(8, 20);
  const attrs = [];
  let miOffset = -1, mi256Offset = -1, fpOffset = -1;
  for (let off = 20; off < buf.length;) {
    if (off + 4 > buf.length) throw new Error('truncated attribute header');
    const at = buf.readUInt16BE(off), alen = buf.readUInt16BE(off + 2);
    if (off + 4 + alen > buf.length) throw new Error(`attribute 0x${at.toString(16)} overruns the message`);
    if (fpOffset >= 0) throw new Error('attribute after FINGERPRINT');
    if (miOffset >= 0 && at !== ATTR.FINGERPRINT && at !== ATTR.MESSAGE_INTEGRITY_SHA256) throw new Error(`attribute 0x${at.toString(16)} after MESSAGE-INTEGRITY`);
    if (mi256Offset >= 0 && at !== ATTR.FINGERPRINT) throw new Error(`attribute 0x${at.toString(16)} after MESSAGE-INTEGRITY-SHA256`);
    if (at === ATTR.MESSAGE_INTEGRITY_SHA256) { if (alen < 16 || alen > 32 || alen % 4) throw new Error('MESSAGE-INTEGRITY-SHA256 length'); mi256Offset = off; }
    if (at === ATTR.MESSAGE_INTEGRITY) { if (alen !== 20) throw new Error('MESSAGE-INTEGRITY length'); miOffset = off; }
    if (at === ATTR.FINGERPRINT) { if (alen !== 4) throw new Error('FINGERPRINT length'); fpOffset = off; }
    attrs.push({ type: at, value: buf.subarray(off + 4, off + 4 + alen), offset: off });
    off += 4 + alen + pad4(alen);
    if (off > buf.length) throw new Error('attribute padding overruns the message');
  }
  const get = (t) => attrs.find((a) => a.type === t)?.value;
  const all = (t) => attrs.filter((a) => a.type === t).map((a) => a.value);
  const str = (t) => { const v = get(t); return v === undefined ? undefined : v.toString('utf8'); };
  const xor = (t) => { const v = get(t); return v === undefined ? undefined : decodeXorAddress(v, txid); };
  const msg = { cls, method, type, length, txid: Buffer.from(txid), attrs, raw: buf, get, all };
  const ec = get(ATTR.ERROR_CODE);
  if (ec) {
    if (ec.length < 4) throw new Error('ERROR-CODE too short');
    msg.errorCode = (ec[2] & 0x07) * 100 + ec[3];
    msg.reason = ec.subarray(4).toString('utf8');
  }
  msg.realm = str(ATTR.REALM);
  msg.nonce = str(ATTR.NONCE);
  msg.software = str(ATTR.SOFTWARE);
  const lt = get(ATTR.LIFETIME);
  if (lt) { if (lt.length !== 4) throw new Error('LIFETIME length'); msg.lifetime = lt.readUInt32BE(0); }
  msg.data = get(ATTR.DATA);
  msg.xorMappedAddress = xor(ATTR.XOR_MAPPED_ADDRESS);
  msg.xorRelayedAddress = xor(ATTR.XOR_RELAYED_ADDRESS);
  msg.xorPeerAddress = xor(ATTR.XOR_PEER_ADDRESS);
  const ua = get(ATTR.UNKNOWN_ATTRIBUTES);
  if (ua) { msg.unknownAttributes = []; for (let i = 0; i + 1 < ua.length; i += 2) msg.unknownAttributes.push(ua.readUInt16BE(i)); }
  const cn = get(ATTR.CHANNEL_NUMBER);
  if (cn) msg.channelNumber = cn.readUInt16BE(0);
  const cid = get(ATTR.CONNECTION_ID);
  if (cid && cid.length === 4) msg.connectionId = cid.readUInt32BE(0);
  msg.hasIntegrity = miOffset >= 0;
  msg.hasIntegritySha256 = mi256Offset >= 0;
  msg.integritySha256Ok = (key) => {
    if (mi256Offset < 0) return false;
    const alen = buf.readUInt16BE(mi256Offset + 2);
    const copy = Buffer.from(buf.subarray(0, mi256Offset));
    copy.writeUInt16BE(mi256Offset + 4 + alen - 20, 2);
    const mac = createHmac('sha256', key).update(copy).digest().subarray(0, alen);
    return mac.equals(buf.subarray(mi256Offset + 4, mi256Offset + 4 + alen));
  };
  msg.hasFingerprint = fpOffset >= 0;
  if (fpOffset >= 0) {
    const copy = Buffer.from(buf.subarray(0, fpOffset));
    copy.writeUInt16BE(fpOffset + 8 - 20, 2);
    msg.fingerprintOk = ((crc32(copy) ^ FINGERPRINT_XOR) >>> 0) === buf.readUInt32BE(fpOffset + 4);
  }
  msg.integrityOk = (key) => {
    if (miOffset < 0) return false;
    const copy = Buffer.from(buf.subarray(0, miOffset));
    copy.writeUInt16BE(miOffset + 24 - 20, 2);
    const mac = createHmac('sha1', key).update(copy).digest();
    return mac.equals(buf.subarray(miOffset + 4, miOffset + 24));
  };
  return msg;
}

// ---- ChannelData (RFC 8656 §12.4) ------------------------------------------------------------

// 2 bytes channel number, 2 bytes length, data; padded to a multiple of 4 when pad (TCP/TLS).
export function encodeChannelData(channel, data, { pad = false } = {}) {
  const d = Buffer.from(data);
  const out = Buffer.alloc(4 + d.length + (pad ? pad4(d.length) : 0));
  out.writeUInt16BE(channel, 0);
  out.writeUInt16BE(d.length, 2);
  d.copy(out, 4);
  return out;
}

export function isChannelData(buf) {
  return buf.length >= 4 && (buf[0] & 0xc0) === 0x40;
}

export function decodeChannelData(buf) {
  if (!isChannelData(buf)) throw new Error('not ChannelData');
  const channel = buf.readUInt16BE(0), len = buf.readUInt16BE(2);
  if (4 + len > buf.length) throw new Error('ChannelData shorter than its length field');
  return { channel, data: Buffer.from(buf.subarray(4, 4 + len)), padding: buf.length - 4 - len };
}

// Cuts a TCP byte stream into frames: STUN messages (20 + length) and ChannelData (4 + length,
// padded to 4). Returns {frames, rest}; throws on a first byte that is neither.
export function splitStream(buf) {
  const frames = [];
  let off = 0;
  while (buf.length - off >= 4) {
    const top = buf[off] & 0xc0;
    let total;
    if (top === 0x00) total = 20 + buf.readUInt16BE(off + 2);
    else if (top === 0x40) { const l = buf.readUInt16BE(off + 2); total = 4 + l + pad4(l); }
    else throw new Error(`stream out of sync: first byte 0x${buf[off].toString(16)}`);
    if (buf.length - off < total) break;
    frames.push(buf.subarray(off, off + total));
    off += total;
  }
  return { frames, rest: buf.subarray(off) };
}

// ---- the client ---------------------------------------------------------------------------------

export class StunTimeoutError extends Error {}

// new TurnClient({host, port, transport: 'udp'|'tcp'|'tls', timeoutMs = 2000, fingerprint = false,
//                 localAddress, connect}) — localAddress: the UDP socket's bind address (default
// loopback); connect: a connected UDP socket (datagrams from any other source are dropped)
// ('tls' accepts any certificate: the tests' servers use self-signed ones; .tlsInfo has the
// negotiated protocol and the server certificate's subject once ready; alpn: the ALPN
// protocols offered, e.g. ['stun.turn'] (none by default); .tlsInfo.alpn is the one chosen.)
// Events: 'data' {via: 'indication'|'channel', peer?, channel?, data, at}, 'message' (every
// decoded STUN message that matched no transaction), 'malformed' (Buffer, error).
export class TurnClient extends EventEmitter {
  constructor({ host = '127.0.0.1', port, transport = 'udp', timeoutMs = 2000, fingerprint = false, localAddress, connect = false, alpn } = {}) {
    super();
    this.alpn = alpn;
    this.localAddress = localAddress;
    this.connected = connect;
    if (!port) throw new Error('TurnClient needs a port');
    this.host = host;
    this.port = port;
    this.transport = transport;
    this.timeoutMs = timeoutMs;
    this.fingerprint = fingerprint;
    this.pending = new Map(); // txid hex → {resolve, reject, timers}
    this.received = [];       // queued Data indications / ChannelData
    this.waiters = [];
    this.unmatched = [];      // STUN messages that matched no transaction
    this.malformed = [];      // frames we could not parse
    this.closed = false;
    this.username = undefined; this.password = undefined; this.realm = undefined;
    this.nonce = undefined; this.key = undefined;
    this.relayed = undefined; this.mapped = undefined;
    this.stream = transport === 'tcp' || transport === 'tls';
    this.ready = this.stream ? this.#openTcp() : this.#openUdp();
    this.ready.catch(() => {});
  }

  #openUdp() {
    return new Promise((resolve, reject) => {
      const fam = net.isIPv6(this.host) ? 'udp6' : 'udp4';
      this.sock = createSocket(fam);
      this.sock.on('message', (buf) => this.#onFrame(buf, false));
      this.sock.on('error', (e) => { this.emit('socketError', e); });
      this.sock.once('error', reject);
      this.sock.bind(0, this.localAddress ?? (fam === 'udp6' ? '::1' : '127.0.0.1'), () => {
        this.local = this.sock.address();
        if (!this.connected) { this.sock.off('error', reject); resolve(); return; }
        this.sock.connect(this.port, this.host, () => { this.sock.off('error', reject); resolve(); });
      });
    });
  }

  #openTcp() {
    return new Promise((resolve, reject) => {
      const tcp = net.connect({ host: this.host, port: this.port });
      tcp.setNoDelay(true);
      this.sock = this.transport === 'tls'
        ? tls.connect({ socket: tcp, rejectUnauthorized: false, servername: net.isIP(this.host) ? undefined : this.host, ...(this.alpn ? { ALPNProtocols: this.alpn } : {}) })
        : tcp;
      let acc = Buffer.alloc(0);
      this.sock.on('data', (d) => {
        if (this.rawMode) { this.#rawIn(d); return; }
        acc = Buffer.concat([acc, d]);
        if (this.bindTxid) { acc = this.#bindFrames(acc); if (this.rawMode) return; }
        let r;
        try { r = splitStream(acc); } catch (e) { this.malformed.push({ buf: acc, error: e }); this.emit('malformed', acc, e); acc = Buffer.alloc(0); return; }
        acc = Buffer.from(r.rest);
        for (const f of r.frames) this.#onFrame(f, true);
      });
      this.sock.on('error', (e) => { this.emit('socketError', e); });
      this.sock.on('close', () => { this.tcpClosed = true; this.emit('tcpClose'); });
      this.sock.once('error', reject);
      this.sock.once(this.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        this.sock.off('error', reject);
        this.local = { address: tcp.localAddress, port: tcp.localPort, family: tcp.localFamily };
        if (this.transport === 'tls') this.tlsInfo = { protocol: this.sock.getProtocol(), subject: this.sock.getPeerCertificate()?.subject, alpn: this.sock.alpnProtocol };
        resolve();
      });
    });
  }

  // While a ConnectionBind is outstanding, frames are taken one by one: once its success
  // arrives, every later byte is the peer's (RFC 6062 §5.4), not TURN framing.
  #bindFrames(acc) {
    while (acc.length >= 20 && !this.rawMode) {
      const n = 20 + acc.readUInt16BE(2);
      if (acc.length < n) break;
      this.#onFrame(acc.subarray(0, n), true);
      acc = acc.subarray(n);
    }
    if (this.rawMode && acc.length) this.#rawIn(acc);
    return this.rawMode ? Buffer.alloc(0) : acc;
  }

  #rawIn(d) {
    this.rawData = Buffer.concat([this.rawData ?? Buffer.alloc(0), d]);
    this.emit('raw', d);
  }

  // Resolves once n raw bytes (after a ConnectionBind) arrived, with them; rejects after timeoutMs.
  rawBytes(n, { timeoutMs = this.timeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if ((this.rawData?.length ?? 0) < n) return false;
        clearTimeout(timer);
        this.off('raw', check);
        const out = this.rawData.subarray(0, n);
        this.rawData = this.rawData.subarray(n);
        resolve(Buffer.from(out));
        return true;
      };
      const timer = setTimeout(() => { this.off('raw', check); reject(new StunTimeoutError(`${this.rawData?.length ?? 0} of ${n} raw bytes within ${timeoutMs} ms`)); }, timeoutMs);
      if (!check()) this.on('raw', check);
    });
  }

  // Raw bytes on a data connection (after a successful ConnectionBind).
  async writeRaw(buf) { await this.#write(Buffer.from(buf)); }

  #onFrame(buf, stream) {
    const at = performance.now();
    if (isChannelData(buf)) {
      try {
        const cd = decodeChannelData(buf);
        if (!stream && cd.padding) throw new Error('UDP ChannelData longer than its length field');
        this.#deliver({ via: 'channel', channel: cd.channel, data: cd.data, at });
      } catch (e) { this.malformed.push({ buf, error: e }); this.emit('malformed', buf, e); }
      return;
    }
    let msg;
    try { msg = decodeMessage(buf); } catch (e) { this.malformed.push({ buf, error: e }); this.emit('malformed', buf, e); return; }
    msg.at = at;
    if (msg.cls === CLASS.INDICATION && msg.method === METHOD.DATA) {
      this.#deliver({ via: 'indication', peer: msg.xorPeerAddress, data: msg.data ? Buffer.from(msg.data) : undefined, msg, at });
      return;
    }
    const p = (msg.cls === CLASS.SUCCESS || msg.cls === CLASS.ERROR) && this.pending.get(msg.txid.toString('hex'));
    if (p && this.bindTxid === msg.txid.toString('hex') && msg.cls === CLASS.SUCCESS) this.rawMode = true;
    if (p) {
      this.pending.delete(msg.txid.toString('hex'));
      p.timers.forEach(clearTimeout);
      p.resolve(msg);
      return;
    }
    this.unmatched.push(msg);
    this.emit('message', msg);
  }

  #deliver(item) {
    const i = this.waiters.findIndex((w) => w.filter(item));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(item);
    } else {
      this.received.push(item);
    }
    this.emit('data', item);
  }

  // Next queued (or future) Data indication / ChannelData matching filter; rejects after timeoutMs.
  nextData({ timeoutMs = this.timeoutMs, filter = () => true } = {}) {
    const i = this.received.findIndex(filter);
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { filter, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new StunTimeoutError(`no relayed data within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  drainData() { const r = this.received; this.received = []; return r; }

  async #write(buf) {
    await this.ready;
    if (this.closed) throw new Error('client closed');
    if (this.stream) {
      await new Promise((resolve, reject) => this.sock.write(buf, (e) => (e ? reject(e) : resolve())));
    } else {
      const cb = (resolve, reject) => (e) => (e ? reject(e) : resolve());
      await new Promise((resolve, reject) => (this.connected ? this.sock.send(buf, cb(resolve, reject))
        : this.sock.send(buf, this.port, this.host, cb(resolve, reject))));
    }
  }

  // Sends raw bytes (for malformed probes).
  async sendRaw(buf) { await this.#write(Buffer.from(buf)); }

  // Sends one request and waits for its response (matched by transaction id). UDP requests are
  // retransmitted (RFC 8489 §6.2.1 style, 250 ms doubling) until timeoutMs.
  async transact(buf, txid, { timeoutMs = this.timeoutMs, retransmit = this.transport === 'udp' } = {}) {
    await this.ready;
    const id = Buffer.from(txid).toString('hex');
    const done = new Promise((resolve, reject) => {
      const timers = [];
      timers.push(setTimeout(() => {
        this.pending.delete(id);
        timers.forEach(clearTimeout);
        reject(new StunTimeoutError(`no response within ${timeoutMs} ms`));
      }, timeoutMs));
      if (retransmit) {
        for (let t = 250, d = 250; t < timeoutMs; d *= 2, t += d) {
          timers.push(setTimeout(() => { if (this.pending.has(id)) this.#write(buf).catch(() => {}); }, t));
        }
      }
      this.pending.set(id, { resolve, reject, timers });
    });
    try {
      await this.#write(buf);
    } catch (e) {
      const p = this.pending.get(id);
      if (p) { p.timers.forEach(clearTimeout); this.pending.delete(id); }
      throw e;
    }
    return done;
  }

  // Raw request. attrs: attribute list (A.*). opts.auth: false (none), true (the credential
  // remembered by allocate()), or {username, password | key, realm, nonce} overriding parts of
  // it. opts.retryStale (default true when authenticated): on 438, take the new NONCE and retry
  // once. opts.fingerprint, opts.timeoutMs, opts.txid as wanted.
  async request(method, attrs = [], opts = {}) {
    const { auth = false, fingerprint = this.fingerprint, timeoutMs, txid, retransmit, integrity = 'sha1' } = opts;
    const retryStale = opts.retryStale ?? Boolean(auth);
    const build = () => {
      const list = [...attrs];
      let key;
      if (auth) {
        const o = auth === true ? {} : auth;
        const username = o.username ?? this.username;
        const realm = o.realm ?? this.realm;
        const nonce = o.nonce ?? this.nonce;
        key = o.key ?? (o.password !== undefined ? longTermKey(username, realm, o.password)
          : username === this.username && realm === this.realm ? this.key : undefined);
        if (username !== undefined) list.push(A.username(username));
        if (realm !== undefined) list.push(A.realm(realm));
        if (nonce !== undefined) list.push(A.nonce(nonce));
        if (!key) throw new Error('authenticated request without a key (allocate first, or pass auth.password)');
      }
      const t = txid ?? newTxid();
      return { t, key, buf: encodeMessage({ cls: CLASS.REQUEST, method, txid: t, attrs: list }, { key, fingerprint, integrity }) };
    };
    let { t, key, buf } = build();
    let res = await this.transact(buf, t, { timeoutMs, retransmit });
    res.key = key;
    if (retryStale && res.cls === CLASS.ERROR && res.errorCode === 438 && res.nonce) {
      this.nonce = res.nonce;
      if (auth !== true && auth.nonce !== undefined) return res; // the caller pinned the nonce
      ({ t, key, buf } = build());
      res = await this.transact(buf, t, { timeoutMs, retransmit });
      res.key = key;
    }
    if (res.cls === CLASS.ERROR && (res.errorCode === 401 || res.errorCode === 438) && res.nonce) this.nonce = res.nonce;
    return res;
  }

  async binding({ fingerprint = this.fingerprint, attrs = [] } = {}) {
    return this.request(METHOD.BINDING, attrs, { fingerprint });
  }

  // The long-term credential dance: unauthenticated Allocate → 401 with REALM and NONCE →
  // the same request with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (and one more try on a
  // 438). transport: the REQUESTED-TRANSPORT protocol (17 = UDP), null to omit it.
  async allocate({ username, password, lifetime, transport = TRANSPORT.UDP, attrs = [], family } = {}) {
    const list = [];
    if (transport !== null && transport !== undefined) list.push(A.requestedTransport(transport));
    if (family) list.push(A.requestedAddressFamily(family));
    if (lifetime !== undefined) list.push(A.lifetime(lifetime));
    list.push(...attrs);
    const first = await this.request(METHOD.ALLOCATE, list);
    this.firstAllocateResponse = first;
    if (!(first.cls === CLASS.ERROR && first.errorCode === 401 && first.realm !== undefined && first.nonce !== undefined)) return first;
    this.username = username;
    this.password = password;
    this.realm = first.realm;
    this.nonce = first.nonce;
    this.key = longTermKey(username, this.realm, password);
    const res = await this.request(METHOD.ALLOCATE, list, { auth: true });
    if (res.cls === CLASS.SUCCESS) {
      this.relayed = res.xorRelayedAddress;
      this.mapped = res.xorMappedAddress;
    }
    return res;
  }

  async refresh(lifetime, opts = {}) {
    return this.request(METHOD.REFRESH, lifetime === undefined ? [] : [A.lifetime(lifetime)], { auth: true, ...opts });
  }

  async createPermission(peers, opts = {}) {
    const list = (Array.isArray(peers) ? peers : [peers]).map((p) => A.xorPeer(toPeer(p)));
    return this.request(METHOD.CREATE_PERMISSION, list, { auth: true, ...opts });
  }

  async channelBind(channel, peer, opts = {}) {
    return this.request(METHOD.CHANNEL_BIND, [A.channelNumber(channel), A.xorPeer(toPeer(peer))], { auth: true, ...opts });
  }

  // Send indication (no response).
  async send(peer, data, { fingerprint = this.fingerprint } = {}) {
    const buf = encodeMessage({ cls: CLASS.INDICATION, method: METHOD.SEND, attrs: [A.xorPeer(toPeer(peer)), A.data(data)] }, { fingerprint });
    await this.#write(buf);
  }

  // RFC 6062 Connect (on the control connection of a TCP allocation): res.connectionId.
  async connect(peer, opts = {}) {
    return this.request(METHOD.CONNECT, [A.xorPeer(toPeer(peer))], { auth: true, ...opts });
  }

  // RFC 6062 ConnectionBind, on a fresh TurnClient over TCP/TLS (the data connection): the
  // long-term credential dance with {username, password}; on success the connection is a
  // raw byte pipe to the peer (rawBytes / writeRaw).
  async connectionBind(cid, { username, password, timeoutMs } = {}) {
    const attrs = [A.connectionId(cid)];
    const first = await this.request(METHOD.CONNECTION_BIND, attrs, { timeoutMs });
    if (!(first.cls === CLASS.ERROR && first.errorCode === 401 && first.nonce)) return first;
    this.username = username;
    this.realm = first.realm;
    this.nonce = first.nonce;
    this.key = longTermKey(username, this.realm, password);
    const t = newTxid();
    this.bindTxid = t.toString('hex');
    const list = [...attrs, A.username(username), A.realm(this.realm), A.nonce(this.nonce)];
    const buf = encodeMessage({ cls: CLASS.REQUEST, method: METHOD.CONNECTION_BIND, txid: t, attrs: list }, { key: this.key, fingerprint: this.fingerprint });
    const res = await this.transact(buf, t, { timeoutMs });
    this.bindTxid = undefined;
    return res;
  }

  async sendChannel(channel, data) {
    await this.#write(encodeChannelData(channel, data, { pad: this.stream }));
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    for (const [, p] of this.pending) { p.timers.forEach(clearTimeout); p.reject(new Error('client closed')); }
    this.pending.clear();
    for (const w of this.waiters) { clearTimeout(w.timer); w.resolve(undefined); }
    this.waiters = [];
    try { await this.ready; } catch { return; }
    if (this.stream) {
      await new Promise((resolve) => { if (this.tcpClosed) resolve(); else { this.sock.once('close', resolve); this.sock.destroy(); } });
    } else {
      await new Promise((resolve) => this.sock.close(resolve));
    }
  }
}

// A UDP echo peer on 127.0.0.1 (or `host`): every datagram goes back to its sender. Records
// what it saw. close() stops it.
export async function echoPeer({ host = '127.0.0.1', echo = true } = {}) {
  const sock = createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const seen = [];
  sock.on('message', (buf, rinfo) => {
    seen.push({ data: Buffer.from(buf), from: { address: rinfo.address, port: rinfo.port }, at: performance.now() });
    if (echo) sock.send(buf, rinfo.port, rinfo.address);
  });
  await new Promise((resolve) => sock.bind(0, host, resolve));
  const { address, port } = sock.address();
  return { address, port, seen, sock, close: () => new Promise((resolve) => sock.close(resolve)) };
}

// Usage accounting helpers (usage and GraphQL suites). egressMeter(c): what c received as
// relayed data, as on the wire (UDP: one ChannelData / Data indication frame a datagram):
// {egress: bytes, frames}. indicationBytes(n): a Send / Data indication carrying n bytes
// to/from an IPv4 peer, no FINGERPRINT: header 20 + XOR-PEER-ADDRESS (4 + 8) + DATA (4 + n,
// padded to 4).
export function egressMeter(c) {
  const m = { egress: 0, frames: 0 };
  c.sock.on('message', (buf) => {
    const channelData = buf.length >= 4 && (buf[0] & 0xc0) === 0x40;
    const dataIndication = buf.length >= 20 && buf.readUInt16BE(0) === 0x0017;
    if (channelData || dataIndication) { m.egress += buf.length; m.frames++; }
  });
  return m;
}
export const indicationBytes = (n) => 20 + 12 + 4 + ((n + 3) & ~3);
