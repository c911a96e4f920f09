// Control plane under concurrent writers: nothing lost, duplicated or mixed up.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import { fixture, httpRequest, expectEnvelope } from './lib/server.mjs';

const CLIENTS = 8;
const ITERATIONS = 60;

describe('control concurrency: 8 clients creating, renaming, deleting and listing', () => {
  let f, closed = false;
  before(async () => { f = await fixture({ extraArgs: ['--api-threads', '4'] }); });
  after(async () => { if (!closed) await f.close(); });

  const beliefs = []; // per client: Map uid -> name

  test(`${CLIENTS} clients × ${ITERATIONS} iterations of create → rename → maybe delete (+ list)`, async () => {
    const coll = `${f.base}/accounts/${f.account}/calls/turn_keys`;
    const problems = [];
    const client = async (c) => {
      const mine = new Map();
      beliefs[c] = mine;
      // even clients use the official SDK, odd ones raw fetch
      const cf = c % 2 === 0 ? new Cloudflare({ apiToken: f.token, baseURL: f.base, maxRetries: 0 }) : null;
      const create = async (name) => cf ? cf.calls.turn.create({ account_id: f.account, name })
        : expectEnvelope(await httpRequest(coll, { method: 'POST', token: f.token, body: { name } }), 201).result;
      const rename = async (uid, name) => cf ? cf.calls.turn.update(uid, { account_id: f.account, name })
        : expectEnvelope(await httpRequest(`${coll}/${uid}`, { method: 'PUT', token: f.token, body: { name } }), 200).result;
      const del = async (uid) => cf ? cf.calls.turn.delete(uid, { account_id: f.account })
        : expectEnvelope(await httpRequest(`${coll}/${uid}`, { method: 'DELETE', token: f.token }), 200).result;
      const list = async () => expectEnvelope(await httpRequest(coll, { token: f.token }), 200).result;
      for (let i = 0; i < ITERATIONS; i++) {
        const k = await create(`c${c}-i${i}`);
        assert.equal(k.name, `c${c}-i${i}`);
        mine.set(k.uid, k.name);
        // rename a random key of ours (often the new one)
        const uids = [...mine.keys()];
        const target = i % 2 === 0 ? k.uid : uids[(i * 7 + c) % uids.length];
        const u = await rename(target, `c${c}-i${i}-renamed`);
        assert.equal(u.uid, target);
        assert.equal(u.name, `c${c}-i${i}-renamed`);
        mine.set(target, u.name);
        if (i % 3 === 1) {
          const victim = uids[(i * 5 + c) % uids.length];
          const d = await del(victim);
          assert.equal(d.uid, victim);
          assert.equal(d.name, mine.get(victim), 'delete returns the current name');
          mine.delete(victim);
        }
        if (i % 10 === 9) {
          const all = await list();
          const theirs = new Map(all.map((x) => [x.uid, x.name]));
          if (theirs.size !== all.length) problems.push(`client ${c}: duplicate uids in list`);
          for (const [uid, name] of mine) if (theirs.get(uid) !== name) problems.push(`client ${c} iter ${i}: ${uid} expected ${name}, list has ${theirs.get(uid)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    assert.deepEqual(problems, []);
  });

  test("the server's list equals exactly the union of what every client believes exists", async () => {
    const items = expectEnvelope(await httpRequest(`${f.base}/accounts/${f.account}/calls/turn_keys`, { token: f.token }), 200).result;
    const server = new Map();
    for (const it of items) {
      assert.ok(!server.has(it.uid), `duplicate ${it.uid}`);
      server.set(it.uid, it.name);
    }
    const union = new Map();
    for (const m of beliefs) for (const [uid, name] of m) union.set(uid, name);
    // Each client creates ITERATIONS keys and deletes one of its own on every i % 3 === 1:
    // the count follows from the schedule alone, not from what the clients recorded.
    const deletes = Array.from({ length: ITERATIONS }, (_, i) => i).filter((i) => i % 3 === 1).length;
    assert.equal(server.size, CLIENTS * (ITERATIONS - deletes), 'keys on the server');
    assert.equal(union.size, server.size);
    assert.deepEqual(server, union);
    // every key the server holds carries the name its own creator gave it: no cross-client mix-ups
    for (const [uid, name] of server) {
      const m = /^c(\d+)-i\d+(-renamed)?$/.exec(name);
      assert.ok(m, `server name ${JSON.stringify(name)} of ${uid} was never sent by a client`);
      assert.equal(beliefs[Number(m[1])].get(uid), name, `${uid} named ${name} belongs to client ${m[1]}`);
    }
  });

  test('server exits with status 0 (no sanitizer report)', async () => {
    closed = true;
    const r = await f.close();
    assert.equal(r.code, 0, `server exit status (sanitizers) — stderr:\n${f.stderr()}`);
  });
});
