#!/usr/bin/env bash
# A private PostgreSQL server for tests (never a system service): initdb + pg_ctl from
# Debian's postgresql package, run as the postgres user on a temporary directory, listening
# on 127.0.0.1 (a free port) and a Unix socket inside that directory.
#   tests/pg.sh start          starts one; prints "URL DIR" (URL: postgresql://…/postgres)
#   tests/pg.sh halt DIR       stops it, keeping its data (pg_ctl stop -m fast)
#   tests/pg.sh resume DIR     starts it again on the same port
#   tests/pg.sh stop DIR       stops it and removes DIR
set -euo pipefail
bin=${TK_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/initdb" ] || { echo "pg.sh: no initdb (install postgresql: scripts/deps.sh test)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

launch() { # $1 = dir; port from $1/port
  local dir=$1 port; port=$(cat "$dir/port")
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=60" start >/dev/null
}

case "${1:-}" in
start)
  dir=$(mktemp -d /tmp/tk-pg-XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 20000))
    echo "$port" | as_pg tee "$dir/port" >/dev/null
    if launch "$dir" 2>>"$dir/start.err"; then
      echo "postgresql://postgres@127.0.0.1:$port/postgres $dir"
      exit 0
    fi
  done
  cat "$dir/log" "$dir/start.err" >&2 || true
  exit 1
  ;;
halt)
  as_pg "$bin/pg_ctl" -D "$2/data" -m fast -w -t 60 stop >/dev/null
  ;;
resume)
  launch "$2"
  ;;
stop)
  case "$2" in /tmp/tk-pg-*) ;; *) echo "pg.sh: not a test server directory: $2" >&2; exit 2;; esac
  if [ -f "$2/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$2/data" -m immediate -w -t 60 stop >/dev/null || true
  fi
  rm -rf "$2"
  ;;
*)
  echo "usage: tests/pg.sh start | halt DIR | resume DIR | stop DIR" >&2; exit 2
  ;;
esac
