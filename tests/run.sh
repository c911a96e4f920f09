#!/usr/bin/env bash
# Runs every test suite against the binaries in $1 (default build/asan) and prints one
# summary line at the end: "total: N passed, N failed, N skipped". Exits non-zero if anything failed.
#   TK_ONLY=unit|fuzz|integration|tsan   run one tier only
#   TK_TSAN_BUILD=DIR               the ThreadSanitizer build for the tsan tier (default build/tsan)
#   TK_FUZZ_SECONDS=N               seconds of fresh fuzzing per target after the corpus replay (default 5)
#   CI=true                         any skipped test is a failure (CI must run everything)
# Always a failure: a unit-test source or fuzz target without its built binary, a failing
# before/after hook, and a run (or a tier) that executed no test at all.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/asan}
only=${TK_ONLY:-}
strict=false; case "${CI:-}" in true|1|yes) strict=true;; esac
passed=0; failed=0; skipped=0
logdir=build/test-logs; mkdir -p "$logdir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fail() { # $1 = what; counts one failure and says why
  failed=$((failed + 1)); printf '%-40s FAILED: %s\n' "${2:-error}" "$1"
}

count() { # $1 = log file, $2 = exit code, $3 = name
  local line p f s
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
    s=$(echo "$line" | awk '{print ($5 == "" ? 0 : $5)}')
  else
    p=0; f=1; s=0
  fi
  if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then f=1; echo "no test ran" >>"$1"; fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  printf '%-40s %s passed, %s failed, %s skipped\n' "$3" "$p" "$f" "$s"
  if [ "$f" -ne 0 ]; then sed 's/^/    | /' "$1" | tail -n 60; fi
  if [ "$s" -ne 0 ]; then grep '^SKIPPED' "$1" | sed 's/^/    | /'; fi
}

# Every source must have produced its binary: a missing one is a failure, not a smaller run.
require_bins() { # $1 = binary dir, $2 = source pattern
  local src n
  for src in $2; do
    [ -e "$src" ] || continue
    n=$(basename "$src" .c)
    [ -x "$1/$n" ] || fail "$src has no built binary $1/$n" "$n"
  done
}

if [ -z "$only" ] || [ "$only" = unit ]; then
  # The store tests run on PostgreSQL too: one private server for the unit tier (tests/pg.sh).
  if [ -z "${TK_PG_URL:-}" ] && pg_out=$(tests/pg.sh start); then
    export TK_PG_URL=${pg_out%% *} TK_PG_DIR=${pg_out#* }
    trap 'tests/pg.sh stop "$TK_PG_DIR"' EXIT
  fi
  echo "== unit tests ($build)"
  require_bins "$build/tests" 'tests/unit/test_*.c'
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t"); log="$logdir/$n.log"
    timeout 300 "$t" >"$log" 2>&1; rc=$?
    count "$log" "$rc" "$n"
  done
fi

if [ -z "$only" ] || [ "$only" = fuzz ]; then
  echo "== fuzz targets (corpus replay + ${TK_FUZZ_SECONDS:-5}s fresh fuzzing each)"
  require_bins build/fuzz 'fuzz/fuzz_*.c'
  for t in build/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t"); name=${n#fuzz_}; log="$logdir/$n.log"
    corpus=fuzz/corpus/$name
    work=$(mktemp -d)
    (
      rc=0
      if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ]; then
        "$t" $(find "$corpus" -type f | sort) || rc=$?
      else
        echo "no seed corpus in $corpus"; rc=1
      fi
      if [ $rc -eq 0 ]; then
        "$t" -max_total_time="${TK_FUZZ_SECONDS:-5}" -timeout=10 -rss_limit_mb=2048 "$work" "$corpus" || rc=$?
      fi
      if [ $rc -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
      exit $rc
    ) >"$log" 2>&1
    rc=$?
    rm -rf "$work"
    count "$log" "$rc" "$n"
  done
fi

if [ -z "$only" ] || [ "$only" = integration ]; then
  echo "== integration + security tests (real binary $build/turnkey)"
  if [ ! -x "$build/turnkey" ]; then
    fail "$build/turnkey is missing" "integration (node --test)"
  elif ( cd tests/integration && { { [ -d node_modules ] && [ node_modules -nt package-lock.json ]; } || npm ci --no-audit --no-fund --loglevel=error >/dev/null; } ); then
    log="$logdir/integration.log"; tap="$logdir/integration.tap"
    TURNKEY_BIN="$PWD/$build/turnkey" timeout 1500 node --test --test-concurrency=1 \
      --test-reporter=./tests/integration/lib/count-reporter.mjs --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$tap" \
      tests/integration/ tests/security/ >"$log" 2>&1; rc=$?
    count "$log" "$rc" "integration (node --test)"
    if [ "$rc" -ne 0 ]; then grep -E '^not ok|error:|expected|actual' "$tap" | head -n 60; fi
  else
    fail "npm ci failed in tests/integration" "integration (node --test)"
  fi
fi

# ThreadSanitizer: every unit test, then the integration suites whose server runs several
# threads at once (relay workers, HTTP threads, the key cache and quota they share), against
# the TSan binary. A race report from the server (its log_path files) fails the tier even when
# every test passed. Suppressions (third-party code only): tests/tsan.supp.
integration_tsan() { # $1 = binary
  local tlog=$logdir/tsan-integration.log tdir=$logdir/tsan-reports files f
  rm -rf "$tdir"; mkdir -p "$tdir"
  files=$(ls tests/integration/relay_*.test.mjs tests/integration/control_concurrency.test.mjs \
    tests/integration/cred_*.test.mjs tests/integration/usage*.test.mjs \
    tests/integration/webhooks.test.mjs tests/integration/policy*.test.mjs 2>/dev/null)
  TSAN_OPTIONS="$TSAN_OPTIONS log_path=$PWD/$tdir/turnkey" TURNKEY_BIN="$PWD/$1" \
    timeout 1500 node --test --test-concurrency=1 \
    --test-reporter=./tests/integration/lib/count-reporter.mjs --test-reporter-destination=stdout \
    $files >"$tlog" 2>&1; rc=$?
  for f in "$tdir"/turnkey.*; do
    [ -e "$f" ] || continue
    echo "ThreadSanitizer report from the server: $f" >>"$tlog"; cat "$f" >>"$tlog"; rc=1
  done
  count "$tlog" "$rc" "tsan integration (relay, cred, concurrency)"
}

if [ -z "$only" ] || [ "$only" = tsan ]; then
  tbuild=${TK_TSAN_BUILD:-build/tsan}
  echo "== tsan: unit tests and threaded integration suites ($tbuild)"
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
  require_bins "$tbuild/tests" 'tests/unit/test_*.c'
  for t in "$tbuild"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t"); log="$logdir/tsan-$n.log"
    timeout 600 "$t" >"$log" 2>&1; rc=$?
    count "$log" "$rc" "tsan $n"
  done
  if [ ! -x "$tbuild/turnkey" ]; then
    fail "$tbuild/turnkey is missing" "tsan integration"
  elif ( cd tests/integration && { { [ -d node_modules ] && [ node_modules -nt package-lock.json ]; } || npm ci --no-audit --no-fund --loglevel=error >/dev/null; } ); then
    integration_tsan "$tbuild/turnkey"
  else
    fail "npm ci failed in tests/integration" "tsan integration"
  fi
fi

if [ $((passed + failed)) -eq 0 ]; then fail "no test ran at all" "total"; fi
if $strict && [ "$skipped" -ne 0 ]; then
  echo "CI=true: $skipped skipped test(s) count as failures (install what they need: scripts/deps.sh test)"
  failed=$((failed + skipped))
fi
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
