#!/usr/bin/env bash
# `make run`: starts turnkey on the embedded SQLite store. On the first run (empty store)
# it creates one account and one write token and prints them with ready-to-paste curl lines.
set -euo pipefail
bin=$1 data=$2 api=$3
mkdir -p -m 700 "$data"   # private from the start (turnkey refuses a data dir others can read)
exec "$bin" serve --data "$data" --api-listen "$api" --bootstrap
