// A private PostgreSQL server for integration tests, started with tests/pg.sh (initdb +
// pg_ctl on a temp directory, loopback port): start() resolves to
// {url, dir, newDatabase(name) -> url, halt(), resume(), stop()}.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PG_SH = fileURLToPath(new URL('../../pg.sh', import.meta.url));
let seq = 0;

export function startPostgres() {
  const [url, dir] = execFileSync(PG_SH, ['start'], { encoding: 'utf8' }).trim().split(/\s+/);
  const psql = (db, sql) => execFileSync('psql', [db, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], { encoding: 'utf8' }).trim();
  return {
    url, dir,
    newDatabase(prefix = 'it') {
      const name = `${prefix}_${process.pid}_${++seq}`;
      psql(url, `CREATE DATABASE ${name}`);
      return url.replace(/\/[^/]*$/, `/${name}`);
    },
    sql: psql,
    halt() { execFileSync(PG_SH, ['halt', dir]); },
    resume() { execFileSync(PG_SH, ['resume', dir]); },
    stop() { execFileSync(PG_SH, ['stop', dir]); },
  };
}
