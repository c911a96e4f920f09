// The GraphQL analytics endpoint (issue 14 §3) against the real server: an independent TURN
// client (lib/stun.mjs) relays a known number of bytes, and Cloudflare's documented queries
// for callsTurnUsageAdaptiveGroups, sent unchanged but for the base URL, the account id and
// the dates, read them back to the byte. Query texts: the "Useful TURN analytics queries" of
// https://developers.cloudflare.com/realtime/turn/analytics/ and the curl example of
// https://developers.cloudflare.com/analytics/graphql-api/getting-started/execute-graphql-query/
import test, { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, createTurnKey, mintTurn, httpRequest, createToken } from './lib/server.mjs';
import { TurnClient, CLASS, echoPeer, egressMeter as meter, indicationBytes } from './lib/stun.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = 30000) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last?.ok) return last;
    if (Date.now() - start > ms) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await sleep(250);
  }
}


// "Top TURN custom identifiers" (the page's text).
const TOP_CUSTOM_IDENTIFIERS = `query topTurnCustomIdentifiers {
	viewer {
		accounts(filter: { accountTag: $accountId }) {
			callsTurnUsageAdaptiveGroups(
				filter: { date_geq: $dateFrom, date_leq: $dateTo }
				limit: 1
				orderBy: [sum_egressBytes_DESC]
			) {
				dimensions {
					customIdentifier
				}
				sum {
					egressBytes
				}
			}
		}
	}
}`;

// "Filter by specific key or identifier" (the page's text; the key id is ours).
const BY_KEY = (keyId) => `query {
	viewer {
		accounts(filter: { accountTag: $accountId }) {
			callsTurnUsageAdaptiveGroups(
				limit: 1000
				filter: {
					keyId: "${keyId}"
					date_geq: $dateFrom
					date_leq: $dateTo
				}
				orderBy: [datetimeFiveMinutes_ASC]
			) {
				dimensions {
					datetimeFiveMinutes
					keyId
				}
				sum {
					egressBytes
					ingressBytes
				}
				avg {
					concurrentConnectionsFiveMinutes
				}
			}
		}
	}
}`;

// "Combining multiple dimensions" (the page's text): hours by data center.
const HOURS_BY_DATACENTER = `query {
	viewer {
		accounts(filter: { accountTag: $accountId }) {
			callsTurnUsageAdaptiveGroups(
				limit: 10000
				filter: { date_geq: $dateFrom, date_leq: $dateTo }
				orderBy: [datetimeHour_ASC, sum_egressBytes_DESC]
			) {
				dimensions {
					datetimeHour
					datacenterCity
					datacenterCountry
				}
				sum {
					egressBytes
					ingressBytes
				}
			}
		}
	}
}`;

const day = (offset) => new Date(Date.now() + offset * 86400e3).toISOString().slice(0, 10);

describe('GraphQL analytics', () => {
  let f, key, peer, peer2, analytics, cred;
  const meterState = { egress: 0, ingress: 0 };
  const gql = (query, variables, token = analytics) =>
    httpRequest(`${f.base}/graphql`, { method: 'POST', token, body: { query, variables } });
  const vars = () => ({ accountId: f.account, dateFrom: day(-1), dateTo: day(1) }); // midnight-proof
  const groupsOf = (r, alias = 'accounts') => r.json?.data?.viewer?.[alias]?.[0]?.callsTurnUsageAdaptiveGroups;

  before(async () => {
    f = await fixture({ extraArgs: ['--allow-peer', '127.0.0.1/32', '--usage-flush-interval', '1', '--node-name', 'it-node'] });
    analytics = createToken(f.data, f.account, 'analytics:read');
    key = await createTurnKey(f, 'graphql');
    peer = await echoPeer();
    peer2 = await echoPeer();
    // relay a known number of bytes: 30 ChannelData of 100 bytes, 10 Send indications of 13
    cred = await mintTurn(f, key, { prefix: 'gql' });
    const c = new TurnClient({ port: f.turnPort });
    await c.ready;
    const m = meter(c);
    assert.equal((await c.allocate(cred)).cls, CLASS.SUCCESS);
    assert.equal((await c.channelBind(0x4001, { address: '127.0.0.1', port: peer.port })).cls, CLASS.SUCCESS);
    assert.equal((await c.createPermission({ address: '127.0.0.1', port: peer2.port })).cls, CLASS.SUCCESS);
    for (let i = 0; i < 30; i++) { await c.sendChannel(0x4001, Buffer.alloc(100, 1)); meterState.ingress += 4 + 100; }
    for (let i = 0; i < 10; i++) {
      await c.send({ address: '127.0.0.1', port: peer2.port }, Buffer.alloc(13, 2));
      meterState.ingress += indicationBytes(13);
    }
    await waitFor('every echo back at the client', async () => ({ ok: m.frames === 40, frames: m.frames }));
    meterState.egress = m.egress;
    assert.equal(m.egress, 30 * 104 + 10 * indicationBytes(13));
    assert.equal((await c.refresh(0)).cls, CLASS.SUCCESS);
    await c.close();
  });
  after(async () => {
    await peer?.close();
    await peer2?.close();
    const r = await f?.close();
    assert.equal(r?.code, 0, `server exit status — stderr:\n${f?.stderr()}`);
  });

  test('Cloudflare\'s "Top TURN custom identifiers" shows the relayed egress to the byte', async () => {
    const cid = cred.username.split(':').find((x) => x.startsWith('gql-'));
    const r = await waitFor('the usage', async () => {
      const res = await gql(TOP_CUSTOM_IDENTIFIERS, vars());
      assert.equal(res.status, 200, res.text);
      const g = groupsOf(res);
      return { ok: g?.[0]?.sum?.egressBytes === meterState.egress, res };
    });
    assert.deepEqual(r.res.json, {
      data: { viewer: { accounts: [{ callsTurnUsageAdaptiveGroups: [
        { dimensions: { customIdentifier: cid }, sum: { egressBytes: meterState.egress } }] }] } },
      errors: null,
    });
  });

  test('"Filter by specific key": egress and ingress per five minutes add up; avg > 0', async () => {
    const r = await waitFor('the usage', async () => {
      const res = await gql(BY_KEY(key.uid), vars());
      const g = groupsOf(res) ?? [];
      const t = g.reduce((a, x) => ({ e: a.e + x.sum.egressBytes, i: a.i + x.sum.ingressBytes }), { e: 0, i: 0 });
      return { ok: t.e === meterState.egress && t.i === meterState.ingress, g, t, text: res.text };
    });
    for (const x of r.g) {
      assert.equal(x.dimensions.keyId, key.uid);
      assert.match(x.dimensions.datetimeFiveMinutes, /^\d{4}-\d\d-\d\dT\d\d:[0-5][05]:00Z$/);
      assert.ok(x.avg.concurrentConnectionsFiveMinutes >= 0);
    }
    assert.ok(r.g.some((x) => x.avg.concurrentConnectionsFiveMinutes > 0), JSON.stringify(r.g));
    const times = r.g.map((x) => x.dimensions.datetimeFiveMinutes);
    assert.deepEqual(times, [...times].sort());
  });

  test('"Combining multiple dimensions": the node is the data center', async () => {
    const res = await gql(HOURS_BY_DATACENTER, vars());
    assert.equal(res.status, 200, res.text);
    const g = groupsOf(res);
    assert.ok(g.length >= 1);
    for (const x of g) {
      assert.equal(x.dimensions.datacenterCity, 'it-node');
      assert.equal(x.dimensions.datacenterCountry, null);
    }
    assert.equal(g.reduce((a, x) => a + x.sum.egressBytes, 0), meterState.egress);
  });

  test('the 2024 text with literal datetimeMinute_gt/_lt and an alias, and a filter variable', async () => {
    const from = new Date(Date.now() - 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
    const to = new Date(Date.now() + 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
    const q = `query{ viewer { usage: accounts(filter: { accountTag: "${f.account}" }) { callsTurnUsageAdaptiveGroups( filter: { datetimeMinute_gt: "${from}" datetimeMinute_lt: "${to}" } limit: 2 orderBy: [sum_egressBytes_DESC] ) { dimensions { keyId } sum { egressBytes } } } } }`;
    const res = await gql(q);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(groupsOf(res, 'usage'), [{ dimensions: { keyId: key.uid }, sum: { egressBytes: meterState.egress } }]);
    // the curl example's shape: the whole filter in one variable, the account too
    const curl = await gql(
      '{ viewer { accounts(filter: { accountTag: $accountTag }) { callsTurnUsageAdaptiveGroups(filter: $filter limit: 10 orderBy: [datetimeMinute_DESC]) { dimensions { datetimeMinute username } sum { ingressBytes } } } } }',
      { accountTag: f.account, filter: { datetime_geq: from, datetime_leq: to, username: cred.username } });
    assert.equal(curl.status, 200, curl.text);
    const g = groupsOf(curl);
    assert.ok(g.length >= 1);
    assert.ok(g.every((x) => x.dimensions.username === cred.username));
    assert.equal(g.reduce((a, x) => a + x.sum.ingressBytes, 0), meterState.ingress);
  });

  test('refusals: permission, account, method, unsupported parts', async () => {
    const noPerm = await gql(TOP_CUSTOM_IDENTIFIERS, vars(), f.token); // calls:read,calls:write
    assert.equal(noPerm.status, 403);
    assert.equal(noPerm.json.data, null);
    assert.match(noPerm.json.errors[0].message, /analytics:read/);
    const other = await gql(TOP_CUSTOM_IDENTIFIERS, { ...vars(), accountId: '0123456789abcdef0123456789abcdef' });
    assert.equal(other.status, 403);
    assert.equal(other.json.errors[0].message, 'not authorized for that account');
    assert.deepEqual(other.json.errors[0].path, ['viewer', 'accounts']);
    assert.match(other.json.errors[0].extensions.timestamp, /^\d{4}-\d\d-\d\dT/);
    const get = await httpRequest(`${f.base}/graphql`, { token: analytics });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    const anon = await httpRequest(`${f.base}/graphql`, { method: 'POST', body: { query: '{ viewer { x } }' } });
    assert.equal(anon.status, 401);
    const frag = await gql('{ viewer { ...V } } fragment V on viewer { accounts }');
    assert.equal(frag.status, 400);
    assert.equal(frag.json.errors[0].message, 'fragments (fragment spreads and inline fragments) are not supported');
    assert.deepEqual(frag.json.errors[0].locations, [{ line: 1, column: 12 }]);
    const or = await gql('{ viewer { accounts(filter: {accountTag: $accountId}) { callsTurnUsageAdaptiveGroups(filter: {OR: [{keyId: "a"}, {keyId: "b"}]}) { sum { egressBytes } } } } }', vars());
    assert.equal(or.status, 400);
    assert.equal(or.json.errors[0].message, 'the filter OR is not supported');
  });
});
