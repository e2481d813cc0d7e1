#!/bin/bash
# make check: the bench script's smoke run (BENCH_SMOKE=1: tiny counts, one
# round, no callgrind, nothing installed, Redis only when present), so that
# make bench does not rot between the times someone runs it. Checks that it
# ends well and writes its table (a line per target of issue 15), its JSON
# and its counters; the figures themselves mean nothing here.
#   tests/bench/check.sh [BUILD]
# Prints "bench: N passed, N failed" last.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${1:-build/release}
out=$(mktemp -d /tmp/roomcast-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0
check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "  ok    $name"
        pass=$((pass + 1))
    else
        echo "  FAIL  $name"
        fail=$((fail + 1))
    fi
}

start=$(date +%s)
if BENCH_SMOKE=1 BENCH_OUT="$out/bench" BENCH_TMP="$out" BENCH_TAG="s$$" timeout 240 tests/bench/run.sh "$B" \
    >"$out/log" 2>&1; then
    echo "  ok    the smoke run ends with 0 ($(($(date +%s) - start)) s)"
    pass=$((pass + 1))
else
    echo "  FAIL  the smoke run ended with $?; its last lines:"
    tail -15 "$out/log" | sed 's/^/        /'
    fail=$((fail + 1))
fi
t=$out/bench/table.md
j=$out/bench/results.json
check "table: a throughput row with losses between live sidecars" \
    grep -Eq '^\| 64 B, end to end, mesh .* \| [0-9,]+ \| [0-9,]+ \|' "$t"
check "table: round trips, p99 per round" grep -q ' vs ' "$t"
check "table: the flap cases (run or skipped, with why)" \
    grep -Eq '^\| (cut|reconnect): ' "$t"
check "table: a line per target of issue 15" \
    test "$(grep -Ec '^- .*: (met|\*\*not met\*\*) \(' "$t")" -ge 8
check "results.json: targets and flap" grep -q '"targets_total": [0-9]' "$j"
check "counters.txt: the sidecars' counters per run" \
    grep -q 'sidecar B (subscriber): .*deliveries=' "$out/bench/counters.txt"
# (functions, not bash -c: pgrep -f would find that shell's own command line)
none_running() { ! pgrep -f -- "--socket $out/" >/dev/null; }
no_netns() { ! ip netns list 2>/dev/null | grep -q "^rcbench-s$$-"; }
check "nothing left running" none_running
check "no network namespace left" no_netns
echo "bench: $pass passed, $fail failed"
[ "$fail" = 0 ]
