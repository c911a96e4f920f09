#!/usr/bin/env bash
# Runs every test suite against the binaries in $1 (default build/asan) and prints one
# summary line at the end: "total: N passed, N failed". Exits non-zero if anything failed.
#   TK_ONLY=unit|fuzz|integration   run one tier only
#   TK_FUZZ_SECONDS=N               seconds of fresh fuzzing per target after the corpus replay (default 5)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/asan}
only=${TK_ONLY:-}
passed=0; failed=0
logdir=build/test-logs; mkdir -p "$logdir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

count() { # $1 = log file, $2 = exit code, $3 = name
  local line p f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  else
    p=0; f=1
  fi
  if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  printf '%-40s %s passed, %s failed\n' "$3" "$p" "$f"
  if [ "$f" -ne 0 ]; then sed 's/^/    | /' "$1" | tail -n 60; fi
}

if [ -z "$only" ] || [ "$only" = unit ]; then
  echo "== unit tests ($build)"
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t"); log="$logdir/$n.log"
    timeout 300 "$t" >"$log" 2>&1; rc=$?
    count "$log" "$rc" "$n"
  done
fi

if [ -z "$only" ] || [ "$only" = fuzz ]; then
  echo "== fuzz targets (corpus replay + ${TK_FUZZ_SECONDS:-5}s fresh fuzzing each)"
  for t in build/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t"); name=${n#fuzz_}; log="$logdir/$n.log"
    corpus=fuzz/corpus/$name
    work=$(mktemp -d)
    (
      rc=0
      if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ]; then
        "$t" $(find "$corpus" -type f | sort) || rc=$?
      fi
      if [ $rc -eq 0 ]; then
        "$t" -max_total_time="${TK_FUZZ_SECONDS:-5}" -timeout=10 -rss_limit_mb=2048 "$work" $([ -d "$corpus" ] && echo "$corpus") || rc=$?
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
  echo "== integration tests (real binary $build/turnkey)"
  if [ -f tests/integration/package.json ]; then
    ( cd tests/integration && { [ -d node_modules ] && [ node_modules -nt package-lock.json ]; } || npm ci --no-audit --no-fund --loglevel=error >/dev/null ) || { echo "npm ci failed"; failed=$((failed + 1)); }
    log="$logdir/integration.log"
    TURNKEY_BIN="$PWD/$build/turnkey" timeout 1200 node --test --test-reporter=tap --test-concurrency=1 tests/integration/ >"$log" 2>&1; rc=$?
    p=$(grep -E '^# pass [0-9]+' "$log" | tail -n1 | awk '{print $3}'); f=$(grep -E '^# fail [0-9]+' "$log" | tail -n1 | awk '{print $3}')
    p=${p:-0}; f=${f:-1}
    echo "$p passed, $f failed" >>"$log"
    count "$log" "$rc" "integration (node --test)"
    if [ "$f" -ne 0 ]; then grep -E '^not ok|error:|expected|actual' "$log" | head -n 60; fi
  fi
fi

echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
