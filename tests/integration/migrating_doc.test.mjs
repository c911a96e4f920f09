// docs/migrating-from-coturn.md and the coturn table (src/cfg/cfg_coturn.c) agree: every
// coturn name the binary maps is in the doc, and every name the doc says is refused stops
// turnkey naming that line.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cliTimed, freshDataDir } from './lib/server.mjs';

const doc = readFileSync(new URL('../../docs/migrating-from-coturn.md', import.meta.url), 'utf8');
// Table rows: | `name`, `name` | turnkey | file / refused … |
const rows = doc.split('\n').filter((l) => /^\| `/.test(l)).map((l) => {
  const cells = l.split('|').slice(1, -1).map((c) => c.trim());
  return { names: [...cells[0].matchAll(/`([a-z0-9_-]+)(?:=[^`]*|\[[^`]*)?`/gi)].map((m) => m[1]), how: cells[2] };
});

test('every coturn name turnkey maps is in docs/migrating-from-coturn.md', () => {
  const data = freshDataDir();
  const r = cliTimed(['serve', '--data', data, '--print-config']);
  rmSync(data, { recursive: true, force: true });
  assert.equal(r.code, 0, r.stderr);
  const mapped = [...r.stdout.matchAll(/^#   ([a-z0-9_-]+)\s{2,}/gm)].map((m) => m[1]);
  assert.ok(mapped.length >= 20, r.stdout);
  const documented = new Set(rows.flatMap((x) => x.names));
  for (const n of mapped) assert.ok(documented.has(n), `${n} missing from the doc`);
  for (const n of mapped.filter((m) => !/refused/.test(r.stdout.split('\n').find((l) => l.startsWith(`#   ${m} `))))) {
    const row = rows.find((x) => x.names.includes(n));
    assert.match(row.how, /file/, `${n}: the doc must say the file accepts it`);
  }
});

test('every name the doc marks refused stops turnkey at its line', () => {
  const data = freshDataDir();
  const conf = join(data, 'turnserver.conf');
  const refused = rows.filter((x) => /^refused/.test(x.how)).flatMap((x) => x.names);
  assert.ok(refused.length >= 20, 'the doc lists refused names');
  for (const n of refused) {
    writeFileSync(conf, `realm=x\n${n}=1\n`, { mode: 0o600 });
    const r = cliTimed(['serve', '--config', conf, '--data', data, '--print-config']);
    assert.equal(r.code, 2, `${n}: ${r.stdout.slice(0, 200)}`);
    assert.match(r.stderr, new RegExp(`:2: (unknown setting '${n}'|${n} is not a file setting)`), n);
  }
  rmSync(data, { recursive: true, force: true });
});
