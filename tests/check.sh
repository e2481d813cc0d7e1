#!/bin/bash
# make check: build and run the suite plainly, then under ASan/UBSan, then run
# each fuzz target briefly. Prints one "N passed, N failed" line at the end.
set -u
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
jobs=$(nproc 2>/dev/null || echo 2)
status=0
step() { echo; echo "== $*"; }

step "build (release)"
make --no-print-directory -j"$jobs" BUILD=build/release tests || exit 1
step "build (ASan/UBSan)"
make --no-print-directory -j"$jobs" BUILD=build/asan SAN=1 tests || exit 1
step "build (fuzz)"
make --no-print-directory -j"$jobs" BUILD=build/fuzz FUZZ=1 fuzz-build || exit 1

step "tests (release)"
tests/run-tests.sh build/release all | tee build/release/summary.txt
r1=${PIPESTATUS[0]}
step "tests (ASan/UBSan)"
tests/run-tests.sh build/asan all | tee build/asan/summary.txt
r2=${PIPESTATUS[0]}
step "fuzz (${FUZZ_SECONDS}s per target)"
tests/run-fuzz.sh build/fuzz "$FUZZ_SECONDS" | tee build/fuzz/summary.txt
r3=${PIPESTATUS[0]}

# Suites outside C: each script prints "<suite>: N passed, N failed" last.
extra=""
for script in tests/layering.sh tests/node/run.sh tests/deploy/check.sh \
    tests/docs/run.sh tests/chaos/run.sh tests/bench/check.sh; do
    [ -x "$script" ] || continue
    name=$(basename "$(dirname "$script")")
    [ "$name" = tests ] && name=$(basename "$script" .sh)
    step "$name ($script)"
    "$script" | tee "build/release/summary-$name.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    extra="$extra build/release/summary-$name.txt"
done

p=0; f=0
for s in build/release/summary.txt build/asan/summary.txt build/fuzz/summary.txt $extra; do
    line=$(tail -n1 "$s")
    p=$((p + $(echo "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')))
    f=$((f + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
done
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ $r3 -eq 0 ] || status=1
echo
echo "check: $p passed, $f failed"
exit $status
