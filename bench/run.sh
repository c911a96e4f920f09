#!/usr/bin/env bash
# `make bench`: HTTP throughput of the credential plane (mints/s) and the control plane
# (TURN-key GETs/s) over keep-alive, measured with wrk against a release build on loopback.
# Bounded: each measurement runs TK_BENCH_SECONDS (default 5) seconds, 3 runs, median shown.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
bin=$build/turnkey
secs=${TK_BENCH_SECONDS:-5}
conns=${TK_BENCH_CONNS:-50}
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)" >&2; exit 1; }
data=$(mktemp -d)
out=$(mktemp)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$data" "$out"; }
trap cleanup EXIT
acct=$("$bin" account create --data "$data" 2>/dev/null | tail -n1)
tok=$("$bin" token create --data "$data" --account "$acct" --permissions calls:read,calls:write 2>/dev/null | tail -n1)
"$bin" serve --data "$data" --api-listen 127.0.0.1:0 --turn-listen 127.0.0.1:0 --log-level warn >"$out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'API listening' "$out" && break; sleep 0.1; done
url=$(grep -o 'API listening on http://[0-9.:]*' "$out" | awk '{print $4}')
[ -n "$url" ] || { echo "bench: server did not start"; cat "$out"; exit 1; }
key=$(curl -s -X POST "$url/client/v4/accounts/$acct/calls/turn_keys" -H "Authorization: Bearer $tok" -d '{"name":"bench"}')
export TK_ACCOUNT=$acct TK_TOKEN=$tok
TK_KEY_UID=$(echo "$key" | sed -E 's/.*"uid":"([0-9a-f]{32})".*/\1/'); export TK_KEY_UID
TK_KEY=$(echo "$key" | sed -E 's/.*"key":"([0-9a-f]{64})".*/\1/'); export TK_KEY

measure() { # $1 = label, $2 = lua script
  local rates=() r
  for i in 1 2 3; do
    r=$(wrk -t1 -c"$conns" -d"${secs}s" -s "bench/$2" "$url" 2>&1)
    if ! echo "$r" | grep -q 'BENCH non2xx=0'; then echo "bench: $1 had non-2xx answers:"; echo "$r"; exit 1; fi
    rates+=("$(echo "$r" | awk '/Requests\/sec/ {printf "%d", $2}')")
  done
  sorted=($(printf '%s\n' "${rates[@]}" | sort -n))
  printf '%-34s median %8s/s   (min %s, max %s; wrk -t1 -c%s, %ss x3)\n' "$1" "${sorted[1]}" "${sorted[0]}" "${sorted[2]}" "$conns" "$secs"
}
echo "turnkey HTTP bench ($(nproc) cores, loopback, release build)"
measure "mints (generate-ice-servers)" mint.lua
measure "TURN-key GET (control plane)" get.lua
