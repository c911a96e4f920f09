// Writes the named seed inputs of the stateful fuzz targets: fuzz/corpus/turn/seq-* (one per
// method and sequence of issue 11 point 8, in fuzz_turn.c's record format) and
// fuzz/corpus/api_seq/* (request sequences, fuzz_api_seq.c's format).
// Run from the repository root: node fuzz/make_seeds.mjs   (deterministic: same bytes each run)
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { A, CLASS, METHOD, encodeChannelData, encodeMessage } from '../tests/integration/lib/stun.mjs';

// ---- fuzz_turn: [op][len16][payload] ----------------------------------------------------------
// op & 7: 0 raw client message, 2 re-signed, 4 peer datagram, 5 clock, 6 lifecycle, 7 close;
// tuple << 3 (0, 1 UDP, 2 TCP, 3 TLS); 0x20 FINGERPRINT when re-signed; user << 6.
const rec = (op, payload) => {
  const p = Buffer.from(payload);
  const h = Buffer.alloc(3);
  h[0] = op;
  h.writeUInt16BE(p.length, 1);
  return Buffer.concat([h, p]);
};
let txn = 0;
const txid = (label) => createHash('sha256').update(`${label}/${txn++}`).digest().subarray(0, 12);
const req = (method, attrs, id) => encodeMessage({ cls: CLASS.REQUEST, method, txid: id ?? txid(method), attrs });
const signed = (tuple, user, msg, fp = false) => rec(2 | (tuple << 3) | (fp ? 0x20 : 0) | (user << 6), msg);
const raw = (tuple, msg) => rec(0 | (tuple << 3), msg);
const allocate = (t, u, extra = [], id) => signed(t, u, req(METHOD.ALLOCATE, [A.requestedTransport(), ...extra], id));
const refresh = (t, u, lifetime) =>
  signed(t, u, req(METHOD.REFRESH, lifetime === undefined ? [] : [A.lifetime(lifetime)]));
const permit = (t, u, peers) => signed(t, u, req(METHOD.CREATE_PERMISSION, peers.map((p) => A.xorPeer(p))));
const bind = (t, u, ch, peer) => signed(t, u, req(METHOD.CHANNEL_BIND, [A.channelNumber(ch), A.xorPeer(peer)]));
const send = (t, peer, data) =>
  raw(t, encodeMessage({ cls: CLASS.INDICATION, method: METHOD.SEND, txid: txid('send'), attrs: [A.xorPeer(peer), A.data(data)] }));
const chanData = (t, ch, data) => raw(t, encodeChannelData(ch, data, { pad: t >= 2 }));
// peer datagram: which allocation (last opened id minus back), which peer (see peer_addr), data
const fromPeer = (back, sel, data) => rec(4, Buffer.concat([Buffer.from([back, sel]), Buffer.from(data)]));
const clock = (ms) => { const b = Buffer.alloc(4); b.writeUInt32BE(ms); return rec(5, b); };
const life = (sel) => rec(6, [sel]);
const close = (t) => rec(7 | (t << 3), []);
const KEY_DELETED = (k) => 0 | (k << 3), REVOKED = (u) => 1 | (u << 3), AUTH_REJECT = 2, AUTH_EXPIRED = 3;
const AUTH_OK = 4, EXPIRES_IN_10S = (n) => 5 | (n << 3), NO_EXPIRY = 6;
// peer selectors (fuzz_turn.c peer_addr): 0 = 8.8.8.8:5000, 1 = 1.1.1.1:5000, 2 = 127.0.0.1 (allow-
// listed), 3 = 10.0.0.1 (denied); +4 = port 5001; 0x80 | n = [2600::n]:5000+(n&3); 0x40 in place
const P8 = '8.8.8.8:5000', P1 = '1.1.1.1:5000', LO = '127.0.0.1:5000', DENIED = '10.0.0.1:5000';
const P6 = '[2600::1]:5001';

const turn = {};
// every method on every transport, one client each
for (const [t, name] of [[0, 'udp'], [2, 'tcp'], [3, 'tls']]) {
  turn[`methods-${name}`] = [
    allocate(t, 0), permit(t, 0, [P8]), bind(t, 0, 0x4000, P8), send(t, P8, 'send-data'),
    chanData(t, 0x4000, 'chan-data'), fromPeer(0, 0, 'peer-data'), fromPeer(0, 0x40, 'inplace'),
    fromPeer(0, 1, 'no permission'), refresh(t, 0, 600), refresh(t, 0, 0), chanData(t, 0x4000, 'after'),
  ];
}
turn['refresh-lifetimes'] = [
  allocate(0, 0, [A.lifetime(30)]), refresh(0, 0), refresh(0, 0, 7200), refresh(0, 0, 1), clock(599000),
  refresh(0, 0, 0), refresh(0, 0, 0), allocate(0, 0), clock(600000),
];
turn['refresh-errors'] = [
  refresh(1, 1, 600), allocate(1, 1), refresh(1, 3, 600), refresh(1, 1, 0), refresh(1, 1, 0),
];
turn['allocate-retransmit'] = (() => {
  const id = txid('retransmit');
  return [allocate(0, 0, [], id), allocate(0, 0, [], id), allocate(0, 0), allocate(0, 1, [], id)];
})();
turn['several-clients'] = [
  allocate(0, 0), allocate(1, 1), allocate(2, 2, [], undefined), allocate(3, 3),
  permit(0, 0, [P8]), permit(1, 1, [P1]), bind(2, 2, 0x4001, P8), send(0, P1, 'x'), send(1, P1, 'y'),
  fromPeer(0, 0, 'a'), fromPeer(1, 1, 'b'), fromPeer(2, 0, 'c'), close(2), refresh(1, 1, 0),
];
turn['quota-user-and-cap'] = [
  allocate(0, 0), allocate(1, 0), allocate(2, 0), allocate(3, 2), allocate(2, 1), allocate(2, 3),
  refresh(0, 0, 0), allocate(2, 0), close(2), close(3), allocate(3, 1),
];
turn['denied-peers'] = [
  allocate(0, 1), permit(0, 1, [DENIED]), bind(0, 1, 0x4000, DENIED), send(0, DENIED, 'x'),
  permit(0, 1, [LO]), send(0, LO, 'allow-listed'), fromPeer(0, 3, 'from denied'), fromPeer(0, 2, 'lo'),
];
turn['multi-peer-permission'] = [
  allocate(0, 0), permit(0, 0, [P8, DENIED]), send(0, P8, 'not installed'), permit(0, 0, [P8, P1]),
  send(0, P1, 'installed'), fromPeer(0, 1, 'back'), bind(0, 0, 0x4000, P1), chanData(0, 0x4000, 'c'),
];
turn['permission-expiry'] = [
  allocate(0, 0, [A.lifetime(3600)]), permit(0, 0, [P8]), clock(299999), send(0, P8, 'just in time'),
  clock(1), send(0, P8, 'expired'), fromPeer(0, 0, 'expired'), bind(0, 0, 0x4000, P8), clock(300000),
  chanData(0, 0x4000, 'lapsed'), permit(0, 0, [P8]), permit(0, 0, [P8]), chanData(0, 0x4000, 'renewed'),
];
turn['revoke'] = [
  allocate(0, 0), allocate(2, 2), permit(0, 0, [P8]), bind(0, 0, 0x4000, P8), life(REVOKED(0)),
  fromPeer(1, 0, 'to revoked'), send(0, P8, 'from revoked'), chanData(0, 0x4000, 'x'), allocate(0, 0),
  permit(2, 2, [P8]), send(2, P8, 'other user'), life(AUTH_OK), allocate(0, 0),
];
turn['key-delete'] = [
  allocate(0, 0), allocate(1, 1), allocate(2, 2), life(KEY_DELETED(0)), send(0, P8, 'x'),
  fromPeer(0, 0, 'x'), allocate(0, 2), refresh(1, 1, 600), life(KEY_DELETED(1)), life(AUTH_OK),
  allocate(0, 0),
];
turn['tcp-close'] = [
  allocate(2, 0), allocate(3, 1), bind(2, 0, 0x4000, P8), close(2), chanData(2, 0x4000, 'after close'),
  fromPeer(1, 0, 'to closed'), close(3), close(0), allocate(2, 0),
];
turn['credential-expiry'] = [
  life(EXPIRES_IN_10S(3)), allocate(0, 0, [A.lifetime(3600)]), refresh(0, 0, 3600), clock(29000),
  clock(1000), send(0, P8, 'x'), life(NO_EXPIRY), allocate(0, 0),
];
turn['auth-failures'] = [
  life(AUTH_REJECT), allocate(0, 0), life(AUTH_EXPIRED), allocate(0, 0), life(AUTH_OK), allocate(0, 0),
  life(AUTH_REJECT), refresh(0, 0, 600), permit(0, 0, [P8]), life(AUTH_OK), refresh(0, 0, 0),
];
turn['ipv6-relay'] = [
  allocate(0, 0, [A.requestedAddressFamily(6)]), permit(0, 0, [P6]), permit(0, 0, [P8]), send(0, P6, 'v6'),
  bind(0, 0, 0x4000, P6), fromPeer(0, 0x81, 'v6 peer'), fromPeer(0, 0xc1, 'v6 in place'),
  refresh(0, 0, 0),
];
turn['fingerprint'] = [
  signed(1, 3, req(METHOD.ALLOCATE, [A.requestedTransport()]), true),
  signed(1, 3, req(METHOD.CREATE_PERMISSION, [A.xorPeer(P8)]), true), send(1, P8, 'x'),
];

// ---- fuzz_api_seq: lines of "OP arg arg ..." (see fuzz_api_seq.c) -----------------------------
const api = {
  'create-list-rename-delete': ['create 0 0 a', 'create 0 0 b', 'list 0 0', 'rename 0 0 0 renamed', 'get 0 0 0',
    'delete 0 0 1', 'get 0 0 1', 'list 0 0', 'delete 0 0 1', 'create 0 0 c'],
  'limit': ['create 0 0 k1', 'create 0 0 k2', 'create 0 0 k3', 'create 0 0 k4', 'create 0 0 k5',
    'delete 0 0 2', 'create 0 0 k6', 'list 0 0'],
  'cross-account': ['create 0 0 mine', 'create 1 2 theirs', 'get 1 2 0', 'get 0 0 1', 'delete 1 2 0',
    'rename 0 2 0 hijack', 'list 0 2', 'list 1 2', 'create 0 2 x'],
  'read-only-and-expired': ['create 0 1 ro', 'create 0 0 rw', 'list 0 1', 'rename 0 1 0 no', 'delete 0 1 0',
    'list 0 3', 'verify 1', 'verify 3', 'verify 0'],
  'mint-revoke': ['create 0 0 k', 'mint 0 0 3600', 'mint 0 0 60', 'revoke 0 0 0', 'revoke 0 0 0', 'revoke 0 0 1',
    'mint 0 0 86400', 'clock 61', 'revoke 0 0 1', 'delete 0 0 0', 'revoke 0 0 2', 'mint 0 0 10'],
  'revoke-other-key': ['create 0 0 a', 'create 1 2 b', 'mint 0 0 3600', 'mint 1 1 3600', 'revoke 1 0 0',
    'revoke 0 0 1', 'revoke 1 1 1', 'mint 1 0 3600'],
  'tokens': ['verify 0', 'verify 2', 'tokrevoke 0', 'verify 0', 'list 0 0', 'create 0 0 after', 'clock 7200',
    'verify 1', 'verify 3'],
};

mkdirSync('fuzz/corpus/turn', { recursive: true });
mkdirSync('fuzz/corpus/api_seq', { recursive: true });
for (const [name, recs] of Object.entries(turn)) writeFileSync(`fuzz/corpus/turn/seq-${name}`, Buffer.concat(recs));
for (const [name, lines] of Object.entries(api)) writeFileSync(`fuzz/corpus/api_seq/${name}`, lines.join('\n') + '\n');
console.log(`${Object.keys(turn).length} turn seeds, ${Object.keys(api).length} api_seq seeds`);
