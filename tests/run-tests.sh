#!/bin/bash
# Run the test binaries of one build: tests/run-tests.sh BUILD [unit|integration|all]
# Each binary is bounded by a timeout; the summary line counts binaries.
# Prints "N passed, N failed" and exits non-zero when anything failed.
set -u
build=${1:?usage: run-tests.sh BUILD [unit|integration|all]}
what=${2:-all}
case $what in
    unit) dirs="unit" ;;
    integration) dirs="integration" ;;
    *) dirs="unit integration" ;;
esac
export ROOMCASTD="$PWD/$build/roomcastd"
export ROOMCASTCTL="$PWD/$build/roomcastctl"
export ROOMCAST_TOOLS="$PWD/$build/tests/tools"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
limit=${TEST_TIMEOUT:-300}
pass=0; fail=0; failed=""
logdir="$build/test-logs"
mkdir -p "$logdir"
for d in $dirs; do
    for t in "$build"/tests/$d/test_*; do
        [ -x "$t" ] || continue
        name="$d/$(basename "$t")"
        start=$(date +%s%N)
        timeout -k 5 "$limit" "$t" > "$logdir/$(basename "$t").log" 2>&1
        rc=$?
        ms=$(( ($(date +%s%N) - start) / 1000000 ))
        secs="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
        if [ $rc -eq 0 ]; then
            pass=$((pass + 1))
            n=$(grep -c '^\[       OK \]' "$logdir/$(basename "$t").log")
            printf '  ok    %-40s %4s cases  %6ss\n' "$name" "$n" "$secs"
        else
            fail=$((fail + 1)); failed="$failed $name"
            printf '  FAIL  %-40s (exit %d, log: %s)\n' "$name" "$rc" "$logdir/$(basename "$t").log"
            tail -n 30 "$logdir/$(basename "$t").log" | sed 's/^/        /'
        fi
    done
done
echo "$build: $pass passed, $fail failed"
[ $fail -eq 0 ]
