// node:test reporter that counts what really ran, for tests/run.sh. It ends with one line
//   "N passed, N failed, N skipped"
// preceded by one "FAILED <file>:<line> <name>" / "SKIPPED <file>:<line> <name> (reason)" line
// per failure or skip, so nothing passes silently:
// - a failing before/after hook counts as a failure (node reports it on the suite only, and
//   its "# fail" total leaves it out);
// - a test cancelled by its parent counts as a failure;
// - a skipped or todo test counts as skipped; a skipped describe counts every test() or it()
//   written inside it (node 20 reports such a suite as one passing suite and never runs
//   its tests), at least one;
// - a suite that failed only because a child failed adds nothing (the child is counted).
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const sourceCache = new Map();

// Counts test( / it( calls lexically inside the describe( call that starts at line:column.
export function testsInSuite(file, line, column) {
  let src = sourceCache.get(file);
  if (src === undefined) {
    try { src = readFileSync(file, 'utf8'); } catch { src = null; }
    sourceCache.set(file, src);
  }
  if (!src || !line) return 1;
  const lines = src.split('\n');
  let pos = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, (column ?? 1) - 1);
  const open = src.indexOf('(', pos);
  if (open < 0) return 1;
  let depth = 0, end = src.length;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '(') depth++;
    else if (c === ')' && --depth === 0) { end = i; break; }
  }
  const body = src.slice(open + 1, end);
  const n = (body.match(/(^|[^.\w$])(test|it)\s*\(/g) ?? []).length;
  return Math.max(1, n);
}

function where(d) {
  const f = d.file ? relative(process.cwd(), d.file) : '?';
  return `${f}:${d.line ?? '?'} ${d.name}`;
}

export default async function* countReporter(source) {
  let passed = 0, failed = 0, skipped = 0;
  for await (const ev of source) {
    const d = ev.data;
    if (ev.type === 'test:pass') {
      const suite = d.details?.type === 'suite';
      if (d.skip !== undefined || d.todo !== undefined) {
        const n = suite ? testsInSuite(d.file, d.line, d.column) : 1;
        skipped += n;
        const why = typeof d.skip === 'string' ? d.skip : typeof d.todo === 'string' ? `todo: ${d.todo}` : d.todo ? 'todo' : 'skip';
        yield `SKIPPED ${where(d)}${suite ? ` (suite of ${n} tests)` : ''} (${why})\n`;
      } else if (!suite) {
        passed++;
      }
    } else if (ev.type === 'test:fail') {
      const type = d.details?.error?.failureType;
      if (type === 'subtestsFailed') continue;
      failed++;
      const msg = String(d.details?.error?.cause?.message ?? d.details?.error?.message ?? '').split('\n')[0];
      yield `FAILED ${where(d)} [${type ?? 'failure'}] ${msg}\n`;
    }
  }
  yield `${passed} passed, ${failed} failed, ${skipped} skipped\n`;
}
