#!/bin/bash
# The short chaos suite (make check runs it after building build/release and
# build/asan): crash and restart under load, pause, client churn, slow
# consumers and floods, the file-descriptor limit; the short crash loop and
# the quick cases again with ASan/UBSan sidecars. About two minutes on two
# cores. Network faults (partition, loss, delay in network namespaces) are
# tests/integration/test_netns_partition.c, run by the integration suite.
#
#   tests/chaos/run.sh [BUILD]        BUILD defaults to build/release
#   CHAOS_SECONDS=45 CHAOS_SEED=1     length of the crash loop, its PRNG seed
#
# Last line: "chaos: N passed, N failed"; exit status non-zero on failure.
set -u
cd "$(dirname "$0")/../.." || exit 1
build=${1:-build/release}
seconds=${CHAOS_SECONDS:-45}
seed=${CHAOS_SEED:-1}
out="$build/chaos"
logs="$out/logs"
rm -rf "$logs"
mkdir -p "$logs"

tests/chaos/build.sh "$build" "$out/chaos" || {
    echo "chaos: cannot build the chaos program"
    echo "chaos: 0 passed, 1 failed"
    exit 1
}

pass=0; fail=0; failed=""
# run NAME DAEMON TIMEOUT ARGS...: one case, bounded, output kept in $logs
run() {
    local name=$1 daemon=$2 limit=$3
    shift 3
    local log="$logs/$name.log" start rc ms
    start=$(date +%s%N)
    ROOMCASTD="$PWD/$daemon" CHAOS_LOGDIR="$PWD/$logs/$name" \
        timeout -k 5 "$limit" "$out/chaos" "$@" > "$log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        printf '  ok    %-14s %6s.%ss\n' "$name" $((ms / 1000)) $(((ms % 1000) / 100))
        grep -E '^[a-z]+: (published|[0-9]+ restarts|node2 stopped|[0-9]+ clients|afterwards|node0|2 publishers|node0 limited|witness)' "$log" | sed 's/^/        /'
    else
        fail=$((fail + 1)); failed="$failed $name"
        printf '  FAIL  %-14s (exit %d after %ss, log: %s)\n' "$name" $rc $((ms / 1000)) "$log"
        grep -E 'CHECK FAILED|harness:|^[a-z]+: (published|[0-9]+ restarts)' "$log" | head -n 20 | sed 's/^/        /'
        grep -E '^chaos: (LOSS|STALL|DUPLICATE|REORDER|TAIL)' "$log" | head -n 5 | sed 's/^/        /'
    fi
}

echo "chaos: seed $seed, crash loop ${seconds}s, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
run crash "$build/roomcastd" $((seconds + 200)) crash --seconds "$seconds" --seed "$seed"
run pause "$build/roomcastd" 150 pause
run churn "$build/roomcastd" 200 churn --seed "$seed"
run slow "$build/roomcastd" 150 slow
run fdlimit "$build/roomcastd" 150 fdlimit
asan=build/asan/roomcastd
if [ -x "$asan" ]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    # memory figures mean nothing under ASan (its quarantine keeps what is
    # freed): those checks are the release runs'
    run crash-asan "$asan" 200 crash --seconds 20 --sidecars 3 --seed "$seed" --no-memory-checks
    run pause-asan "$asan" 150 pause
    run churn-asan "$asan" 200 churn --seed "$seed" --clients 3000 --no-memory-checks
    run slow-asan "$asan" 150 slow --no-memory-checks
    run fdlimit-asan "$asan" 150 fdlimit
else
    echo "  skip  *-asan         ($asan not built: make BUILD=build/asan SAN=1)"
fi
echo "  skip  network faults (tests/integration/test_netns_partition.c: partition, loss, delay)"
[ -z "$failed" ] || echo "chaos: failed:$failed (logs in $logs)"
echo "chaos: $pass passed, $fail failed"
[ $fail -eq 0 ]
