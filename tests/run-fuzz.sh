#!/bin/bash
# Run every fuzz target of a fuzz build for SECONDS each, starting from its
# seed corpus under tests/fuzz/corpus/NAME. New inputs go to a scratch
# directory, so the committed corpus only changes by hand (crashes found are
# added there as regression inputs).
set -u
build=${1:?usage: run-fuzz.sh BUILD SECONDS}
secs=${2:-10}
pass=0; fail=0
for t in "$build"/tests/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t"); name=${name#fuzz_}
    scratch=$(mktemp -d)
    log="$build/fuzz-$name.log"
    timeout -k 5 $((secs + 60)) "$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$build/crash-$name-" \
        "$scratch" "tests/fuzz/corpus/$name" > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$execs" ] || execs=$(grep -oE '#[0-9]+' "$log" | tail -n1 | tr -d '#')
    rm -rf "$scratch"
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        printf '  ok    fuzz/%-20s %s executions in %ss\n' "$name" "${execs:-?}" "$secs"
    else
        fail=$((fail + 1))
        printf '  FAIL  fuzz/%-20s exit %d (log: %s)\n' "$name" "$rc" "$log"
        tail -n 40 "$log" | sed 's/^/        /'
    fi
done
echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]
