#!/usr/bin/env bash
# `make bench`: turnkey side by side with coturn and with a do-nothing relay, on loopback.
#
# make builds everything (turnkey, build/release/loadgen, build/release/echopeer); this script
# builds nothing. It starts one server at a time on the same fixed ports and relay range
# (figure by figure: turnkey, then coturn),
# drives it with bench/loadgen (closed loop, every echoed payload verified), runs every figure
# TK_BENCH_RUNS (3) times and prints ONE table: median [min-max] per server and the ratio.
# Then it stops what it started (by PID). Bounded: ~6 minutes in full, ~2 minutes with
# TK_BENCH_QUICK=1 (a subset); TK_BENCH_SECONDS sets each measurement's length (default 3).
# coturn (Debian `coturn`, `turnserver`) is optional: without it only turnkey's figures print.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
bin=$build/turnkey
lg=$build/loadgen
peer=$build/echopeer
quick=${TK_BENCH_QUICK:-0}
secs=${TK_BENCH_SECONDS:-$([ "$quick" = 1 ] && echo 2 || echo 3)}
runs=${TK_BENCH_RUNS:-3}
conns=${TK_BENCH_CONNS:-50}

# Fixed loopback ports, outside Linux's ephemeral range (32768-60999) so that the load
# generator's own sockets never take them; the same relay range for both servers.
TURN_PORT=7478 TLS_PORT=7349 API_PORT=7480 PEER_PORT=7490 NULL_PORT=7479
RELAY_LO=10000 RELAY_HI=31999
TURN=127.0.0.1:$TURN_PORT TLS=127.0.0.1:$TLS_PORT PEER=127.0.0.1:$PEER_PORT
SECRET=turnkey-bench-shared-secret
HOLD_N=10000

for f in "$bin" "$lg" "$peer"; do
  [ -x "$f" ] || { echo "bench: $f missing (run: make bench)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)" >&2; exit 1; }
have_coturn=0
command -v turnserver >/dev/null && have_coturn=1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # 10,000 allocations = 10,000 sockets

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started() { pids+=("$1"); }
stop() { # $1 = pid: SIGTERM, wait up to 5 s, then SIGKILL
  local p=$1 i
  kill "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  local keep=() q
  for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  pids=("${keep[@]}")
}
port_free() { ! (ss -Hlnu "sport = :$1"; ss -Hlnt "sport = :$1") 2>/dev/null | grep -q .; }
wait_udp() { # $1 = port: wait until something listens
  local i
  for i in $(seq 100); do ss -Hlnu "sport = :$1" | grep -q . && return 0; sleep 0.1; done
  return 1
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# ---- results: R[server,figure] = "median min max" --------------------------------------
declare -A R
declare -A NOTE
errors_seen=0

stats3() { # values... -> "median min max" (integers)
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=v[int((NR+1)/2)]; printf "%s %s %s", m, v[1], v[NR]}'
}
field() { sed -nE "s/.*[ ]$1=([0-9.]+).*/\\1/p" <<<"$2" | head -n1; }

# measure SERVER FIGURE FIELD[,FIELD2...] -- loadgen args...
# Runs loadgen `runs` times; records the median of each field (FIGURE, FIGURE.FIELD2...).
measure() {
  local srv=$1 fig=$2 fields=$3; shift 4
  local -A vals=()
  local i out f rc
  for i in $(seq "$runs"); do
    rc=0
    out=$("$lg" "$@" 2>"$tmp/lg.err") || rc=$?
    if ! grep -q '^RESULT' <<<"$out"; then
      echo "bench: $srv $fig: no result (rc $rc): $(tail -n3 "$tmp/lg.err")" >&2
      NOTE[$srv,$fig]="failed"
      return 0
    fi
    for f in ${fields//,/ }; do vals[$f]+="$(field "$f" "$out") "; done
    local e l b
    e=$(field errors "$out"); l=$(field lost "$out"); b=$(field broken "$out")
    if [ "${e:-0}" != 0 ] || [ "${b:-0}" != 0 ]; then
      errors_seen=1; NOTE[$srv,$fig]="payload errors ${e:-0}, broken streams ${b:-0}"
    fi
    if [ -n "$l" ] && [ "$l" != 0 ]; then NOTE[$srv,$fig]="${NOTE[$srv,$fig]:-}lost+=$l "; fi
    echo "  $srv $fig run $i: ${out#RESULT }" >>"$tmp/log"
  done
  local first=1
  for f in ${fields//,/ }; do
    if [ $first = 1 ]; then R[$srv,$fig]=$(stats3 ${vals[$f]}); first=0
    else R[$srv,$fig.$f]=$(stats3 ${vals[$f]}); fi
  done
}

# ---- servers ------------------------------------------------------------------------------
tk_pid= ct_pid= peer_pid= TK_USER= TK_PASS=

start_peer() {
  "$peer" --listen "$PEER" --max-seconds 900 & peer_pid=$!; started $peer_pid
  wait_udp $PEER_PORT || { echo "bench: echo peer did not start" >&2; exit 1; }
}

start_turnkey() { # $1 = log file
  "$bin" serve --drain-timeout 0 --data "$tmp/tk" --api-listen 127.0.0.1:$API_PORT --turn-listen "$TURN" \
    --tls-listen "$TLS" --relay-ports $RELAY_LO-$RELAY_HI --allow-peer 127.0.0.1/32 \
    --user-quota 100000 --max-allocations 1000000 --log-level warn >"$1" 2>&1 &
  tk_pid=$!; started $tk_pid
  local i
  for i in $(seq 100); do grep -q 'API listening' "$1" && break; sleep 0.1; done
  grep -q 'API listening' "$1" || { echo "bench: turnkey did not start:"; cat "$1"; exit 1; }
}

setup_turnkey_creds() { # key + one minted credential (all flows share it: --user-quota 100000)
  local acct tok key ice url=http://127.0.0.1:$API_PORT
  acct=$("$bin" account create --data "$tmp/tk" 2>/dev/null | tail -n1)
  tok=$("$bin" token create --data "$tmp/tk" --account "$acct" --permissions calls:read,calls:write 2>/dev/null | tail -n1)
  start_turnkey "$tmp/tk.log"
  key=$(curl -s -X POST "$url/client/v4/accounts/$acct/calls/turn_keys" -H "Authorization: Bearer $tok" -d '{"name":"bench"}')
  export TK_ACCOUNT=$acct TK_TOKEN=$tok
  TK_KEY_UID=$(sed -E 's/.*"uid":"([0-9a-f]{32})".*/\1/' <<<"$key"); export TK_KEY_UID
  TK_KEY=$(sed -E 's/.*"key":"([0-9a-f]{64})".*/\1/' <<<"$key"); export TK_KEY
  ice=$(curl -s -X POST "$url/v1/turn/keys/$TK_KEY_UID/credentials/generate-ice-servers" \
    -H "Authorization: Bearer $TK_KEY" -H 'Content-Type: application/json' -d '{"ttl":86400}')
  TK_USER=$(sed -E 's/.*"username":"([^"]*)".*/\1/' <<<"$ice")
  TK_PASS=$(sed -E 's/.*"credential":"([^"]*)".*/\1/' <<<"$ice")
  [ -n "$TK_USER" ] && [ "$TK_USER" != "$ice" ] || { echo "bench: mint failed: $ice" >&2; exit 1; }
}

write_coturn_conf() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$tmp/ct-key.pem" -out "$tmp/ct-cert.pem" -subj /CN=localhost >/dev/null 2>&1
  cat >"$tmp/coturn.conf" <<EOF
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=$TURN_PORT
tls-listening-port=$TLS_PORT
cert=$tmp/ct-cert.pem
pkey=$tmp/ct-key.pem
min-port=$RELAY_LO
max-port=$RELAY_HI
realm=turnkey
fingerprint
use-auth-secret
static-auth-secret=$SECRET
allow-loopback-peers
no-cli
no-rfc5780
no-dtls
no-multicast-peers
user-quota=0
total-quota=0
pidfile=$tmp/coturn.pid
log-file=$tmp/coturn.log
simple-log
EOF
}

start_coturn() {
  turnserver -c "$tmp/coturn.conf" >"$tmp/coturn.out" 2>&1 & ct_pid=$!; started $ct_pid
  wait_udp $TURN_PORT || { echo "bench: coturn did not start:"; tail "$tmp/coturn.out"; exit 1; }
  sleep 0.5 # its relay threads come up after the listener
}

# ---- the figures ----------------------------------------------------------------------------
# name | label | fields | loadgen args (server, credentials and --duration are added).
# Latency comes before Allocates: a run of Allocates creates and frees ~100,000 sockets, and
# the kernel's deferred freeing would otherwise land on the next server's latency runs.
FIGS_FULL=(
  "cd100_1|ChannelData echo/s, 100 B, 1 flow x32|echoes_per_s|echo --size 100 --flows 1"
  "cd100_10|ChannelData echo/s, 100 B, 10 flows x32|echoes_per_s|echo --size 100 --flows 10"
  "cd100_50|ChannelData echo/s, 100 B, 50 flows x32|echoes_per_s|echo --size 100 --flows 50"
  "cd100_200|ChannelData echo/s, 100 B, 200 flows x8|echoes_per_s|echo --size 100 --flows 200 --window 8"
  "cd1000_1|ChannelData echo/s, 1000 B, 1 flow x32|echoes_per_s|echo --size 1000 --flows 1"
  "cd1000_10|ChannelData echo/s, 1000 B, 10 flows x32|echoes_per_s|echo --size 1000 --flows 10"
  "cd1000_50|ChannelData echo/s, 1000 B, 50 flows x32|echoes_per_s|echo --size 1000 --flows 50"
  "cd1000_200|ChannelData echo/s, 1000 B, 200 flows x8|echoes_per_s|echo --size 1000 --flows 200 --window 8"
  "send50|Send-indication echo/s, 100 B, 50 flows|echoes_per_s|echo --send --size 100 --flows 50"
  "tcp50|TCP echo/s, 100 B, 50 flows|echoes_per_s|echo --tcp --size 100 --flows 50"
  "tls50|TLS echo/s, 100 B, 50 flows|echoes_per_s|echo --tls --size 100 --flows 50"
  "lat|echo latency p50 us @10k/s (10 flows, 100 B)|p50_us,p99_us|echo --size 100 --flows 10 --rate 10000"
  "alloc|authenticated Allocates/s, 50 in flight|allocs_per_s|alloc --inflight 50"
)
FIGS_QUICK=(
  "${FIGS_FULL[2]}" "${FIGS_FULL[6]}" "${FIGS_FULL[9]}" "${FIGS_FULL[11]}" "${FIGS_FULL[12]}"
)
if [ "$quick" = 1 ]; then FIGS=("${FIGS_QUICK[@]}"); else FIGS=("${FIGS_FULL[@]}"); fi

# One figure on one server (already started): $1 = server name, $2 = figure spec, then
# credential args.
run_figure() {
  local srv=$1 spec=$2; shift 2
  local name label fields args server
  IFS='|' read -r name label fields args <<<"$spec"
  server=$TURN
  [[ $args == *--tls* ]] && server=$TLS
  echo "  $srv: $label" >&2
  # shellcheck disable=SC2086
  measure "$srv" "$name" "$fields" -- $args --server "$server" --peer "$PEER" \
    --duration "$secs" --warmup 0.5 "$@"
}

# Each figure on turnkey, then at once on coturn (a fresh server each, the same ports), so the
# two columns of one row are measured minutes apart at most, not the whole bench apart: this
# VM's speed drifts, and a ratio should compare like with like.
run_figures_interleaved() {
  local spec
  for spec in "${FIGS[@]}"; do
    start_turnkey "$tmp/tk.log"
    run_figure turnkey "$spec" "${TK_CREDS[@]}"
    stop "$tk_pid"
    if [ $have_coturn = 1 ]; then
      start_coturn
      run_figure coturn "$spec" --secret "$SECRET"
      stop "$ct_pid"
    fi
  done
}

# RSS per allocation: a fresh server each run, RSS before and with HOLD_N allocations held.
measure_rss() { # $1 = server, $2 = start function, then credential args
  local srv=$1 startfn=$2; shift 2
  local vals="" i before after out pid lgpid
  echo "  $srv: RSS per allocation at $HOLD_N allocations" >&2
  for i in $(seq "$runs"); do
    $startfn "$tmp/hold.log"
    pid=$([ "$srv" = turnkey ] && echo "$tk_pid" || echo "$ct_pid")
    sleep 0.3
    before=$(rss_kb "$pid")
    mkfifo "$tmp/hold.in"
    "$lg" hold --server "$TURN" --count $HOLD_N --inflight 200 --hold 30 --timeout 60 "$@" \
      <"$tmp/hold.in" >"$tmp/hold.out" 2>"$tmp/hold.err" & lgpid=$!; started $lgpid
    exec 9>"$tmp/hold.in"
    for _ in $(seq 600); do grep -q '^READY\|^RESULT' "$tmp/hold.out" && break; sleep 0.1; done
    sleep 0.5
    after=$(rss_kb "$pid")
    exec 9>&-
    rm -f "$tmp/hold.in"
    stop $lgpid
    out=$(cat "$tmp/hold.out")
    echo "  $srv rss run $i: before=${before}kB after=${after}kB ${out//$'\n'/ }" >>"$tmp/log"
    if grep -q "^READY allocations=$HOLD_N" <<<"$out"; then
      vals+="$(awk -v a="$after" -v b="$before" -v n=$HOLD_N 'BEGIN {printf "%.2f", (a - b) * 1024 / n / 1024}') "
    else
      NOTE[$srv,rss]="hold failed: ${out//$'\n'/ }"
    fi
    stop "$pid"
  done
  [ -n "$vals" ] && R[$srv,rss]=$(stats3 $vals)
  return 0
}

# ---- run ---------------------------------------------------------------------------------
for p in $TURN_PORT $TLS_PORT $API_PORT $PEER_PORT $NULL_PORT; do
  port_free "$p" || { echo "bench: port $p is busy" >&2; exit 1; }
done
t_begin=$(date +%s)
load_begin=$(cut -d' ' -f1-3 /proc/loadavg)
echo "turnkey bench: $(nproc) cores, loopback, ${secs}s x $runs runs per figure$([ "$quick" = 1 ] && echo ', quick subset')" >&2
start_peer

echo "turnkey ($bin)$([ $have_coturn = 1 ] && echo " and coturn ($(turnserver --version 2>/dev/null | head -n1)), figure by figure")" >&2
[ $have_coturn = 1 ] || echo "coturn: turnserver not found (apt-get install coturn): turnkey-only figures" >&2
mkdir -p "$tmp/tk"
setup_turnkey_creds # starts turnkey: a key and a credential that every later start reuses
TK_CREDS=(--user "$TK_USER" --pass "$TK_PASS")
# HTTP: mints/s and TURN-key GETs/s with wrk (the original bench), against this server
wrk_measure() { # $1 = figure, $2 = lua
  local vals="" r i
  echo "  turnkey: HTTP $1" >&2
  for i in $(seq "$runs"); do
    r=$(wrk -t1 -c"$conns" -d"${secs}s" -s "bench/$2" "http://127.0.0.1:$API_PORT" 2>&1)
    if ! grep -q 'BENCH non2xx=0' <<<"$r"; then
      NOTE[turnkey,$1]="non-2xx answers"; errors_seen=1
    fi
    vals+="$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$r") "
  done
  R[turnkey,$1]=$(stats3 $vals)
}
wrk_measure mints mint.lua
wrk_measure gets get.lua
stop "$tk_pid"
[ $have_coturn = 1 ] && write_coturn_conf
run_figures_interleaved
start_turnkey_hold() { start_turnkey "$1"; }
measure_rss turnkey start_turnkey_hold "${TK_CREDS[@]}"
if [ $have_coturn = 1 ]; then
  start_coturn_hold() { start_coturn; }
  measure_rss coturn start_coturn_hold --secret "$SECRET"
fi

echo "do-nothing relay baseline" >&2
# as many threads as turnkey has relay workers (one per core), so the ceiling is comparable
"$peer" --null-relay 127.0.0.1:$NULL_PORT --peer "$PEER" --threads "$(nproc)" --max-seconds 600 & null_pid=$!; started $null_pid
wait_udp $NULL_PORT
measure baseline cd100_50 echoes_per_s -- echo --baseline --size 100 --flows 50 \
  --server 127.0.0.1:$NULL_PORT --peer "$PEER" --duration "$secs" --warmup 0.5
stop $null_pid
stop $peer_pid

# ---- the table -------------------------------------------------------------------------------
cell() { # "median min max" -> "median [min-max]"
  [ -n "${1:-}" ] || { echo "${2:-—}"; return; }
  read -r m lo hi <<<"$1"
  echo "$m [$lo-$hi]"
}
ratio() { # turnkey coturn -> turnkey/coturn
  [ -n "${1:-}" ] && [ -n "${2:-}" ] || { echo "—"; return; }
  awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "—" }'
}
row() { printf '| %-48s | %-24s | %-24s | %-6s |\n' "$1" "$2" "$3" "$4"; }

echo
echo "turnkey vs coturn — $(nproc) cores shared by client, peer and server, loopback;"
echo "median [min-max] of $runs runs of ${secs}s; ratio = turnkey / coturn (rates: higher is better)."
echo "load average at start: $load_begin (other work on the machine distorts every figure)"
echo
row "figure" "turnkey" "coturn" "ratio"
row "------------------------------------------------" "------------------------" "------------------------" "------"
for spec in "${FIGS[@]}"; do
  IFS='|' read -r name label fields _ <<<"$spec"
  ctd=$([ $have_coturn = 1 ] && echo "" || echo "not installed")
  if [ "$name" = lat ]; then
    row "echo latency p50 us @10k/s, 10 flows, 100 B (v)" "$(cell "${R[turnkey,lat]:-}")" "$(cell "${R[coturn,lat]:-}" "$ctd")" "$(ratio "${R[turnkey,lat]:-}" "${R[coturn,lat]:-}")"
    row "echo latency p99 us @10k/s, 10 flows, 100 B (v)" "$(cell "${R[turnkey,lat.p99_us]:-}")" "$(cell "${R[coturn,lat.p99_us]:-}" "$ctd")" "$(ratio "${R[turnkey,lat.p99_us]:-}" "${R[coturn,lat.p99_us]:-}")"
    continue
  fi
  row "$label" "$(cell "${R[turnkey,$name]:-}")" "$(cell "${R[coturn,$name]:-}" "$ctd")" "$(ratio "${R[turnkey,$name]:-}" "${R[coturn,$name]:-}")"
done
row "RSS per allocation, KB, $HOLD_N allocations (v)" "$(cell "${R[turnkey,rss]:-}")" "$(cell "${R[coturn,rss]:-}" "${ctd:-}")" "$(ratio "${R[turnkey,rss]:-}" "${R[coturn,rss]:-}")"
row "mints/s (HTTP, wrk -c$conns)" "$(cell "${R[turnkey,mints]:-}")" "n/a" "—"
row "TURN-key GETs/s (HTTP, wrk -c$conns)" "$(cell "${R[turnkey,gets]:-}")" "n/a" "—"
row "do-nothing relay echo/s, 100 B, 50 flows x32" "$(cell "${R[baseline,cd100_50]:-}")" "(same baseline)" ""
frac() { [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN {printf "%.0f%%", 100 * a / b}' || echo "—"; }
row "fraction of do-nothing relay (100 B, 50 flows)" "$(frac "${R[turnkey,cd100_50]:-}" "${R[baseline,cd100_50]:-}")" "$(frac "${R[coturn,cd100_50]:-}" "${R[baseline,cd100_50]:-}")" ""
echo
for k in "${!NOTE[@]}"; do echo "note: ${k/,/ }: ${NOTE[$k]}"; done | sort
echo "((v) lower is better; Allocates are released with Refresh LIFETIME 0 before the socket closes;"
echo " lost = UDP echoes not back within 100 ms, retried in a fresh slot; every echoed payload is checked)"
echo "bench took $(( $(date +%s) - t_begin ))s; per-run lines: TK_BENCH_VERBOSE=1"
[ "${TK_BENCH_VERBOSE:-0}" = 1 ] && cat "$tmp/log"
if [ $errors_seen = 1 ]; then echo "bench: payload errors or non-2xx answers (see notes)" >&2; exit 1; fi
exit 0
