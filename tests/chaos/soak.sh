#!/bin/bash
# make soak DURATION=30m: tests/chaos/soak.sh BUILD [DURATION]
#
# 1. The chaos loop (chaos crash: five sidecars with gossip on loopback, two
#    apps on each publishing steadily to three topics and subscribed to all
#    of them, kill -9 of a random sidecar but node0 every few seconds and
#    a restart) for DURATION (90s, 30m, 1h; default 10m), sampling every
#    sidecar's RSS and the delivery counters every 5 s into
#    build/soak/samples.csv.
# 2. build/soak/soak.png: memory, delivery rate, duplicates/losses and
#    restarts over time (gnuplot; gnuplot-nox is installed when missing).
# 3. The integration suite with every sidecar under valgrind memcheck
#    (--leak-check=full --error-exitcode=99; ROOMCASTD is a wrapper), each
#    test binary bounded by SOAK_VALGRIND_TIMEOUT (900 s).
# 4. A summary with the figures. Exit status non-zero when anything failed.
#
# SOAK_SEED (default: the time), SOAK_RATE (messages/s per app, 100),
# SOAK_SKIP_VALGRIND=1, SOAK_SKIP_LOOP=1.
set -u
cd "$(dirname "$0")/../.." || exit 1
build=${1:-build/release}
duration=${2:-10m}
[ -n "$duration" ] || duration=10m
case $duration in
    *h) seconds=$(( ${duration%h} * 3600 )) ;;
    *m) seconds=$(( ${duration%m} * 60 )) ;;
    *s) seconds=${duration%s} ;;
    *[0-9]) seconds=$duration ;;
    *) echo "soak: DURATION like 90s, 30m, 1h (got '$duration')"; exit 2 ;;
esac
seed=${SOAK_SEED:-$(date +%s)}
rate=${SOAK_RATE:-100}
out=build/soak
mkdir -p "$out"
status=0
t_start=$(date +%s)

tests/chaos/build.sh "$build" "$out/chaos" || { echo "soak: cannot build"; exit 1; }

echo "== soak: chaos loop for $duration (${seconds}s), seed $seed, $rate msg/s per app"
echo "   machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(free -m | awk '/Mem:/ {print $2 " MiB"}')"
loop_rc=0
if [ "${SOAK_SKIP_LOOP:-0}" != 1 ]; then
    rm -f "$out/samples.csv" "$out/soak.png" "$out/crash.log"
    rm -rf "$out/sidecar-logs"
    ROOMCASTD="$PWD/$build/roomcastd" CHAOS_LOGDIR="$PWD/$out/sidecar-logs" \
        timeout -k 10 $((seconds + 900)) "$out/chaos" crash \
        --seconds "$seconds" --seed "$seed" --rate "$rate" \
        --csv "$out/samples.csv" --sample-ms 5000 > "$out/crash.log" 2>&1
    loop_rc=$?
    grep -v '^crash: *[0-9.]* s  kill' "$out/crash.log" | grep -E '^(crash|CHECK|chaos: (LOSS|STALL|DUP|TAIL|REORDER))' | head -n 40 | sed 's/^/   /'
    echo "   restarts logged: $(grep -c ' kill -9 node' "$out/crash.log"), exit $loop_rc (full log: $out/crash.log)"
    [ $loop_rc -eq 0 ] || status=1
fi

echo "== soak: chart"
if ! command -v gnuplot > /dev/null; then
    echo "   installing gnuplot-nox"
    (apt-get install -y -q gnuplot-nox > /dev/null 2>&1 ||
     { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q gnuplot-nox > /dev/null 2>&1; }) ||
        echo "   cannot install gnuplot-nox"
fi
if [ -s "$out/samples.csv" ] && command -v gnuplot > /dev/null; then
    nodes=$(head -n1 "$out/samples.csv" | tr ',' '\n' | grep -c '^rss_kb')
    gnuplot -e "csv='$out/samples.csv'; png='$out/soak.png'; nodes=$nodes; title='roomcast soak: $duration, kill -9 every few seconds (seed $seed)'" \
        tests/chaos/soak.gp && echo "   $out/soak.png"
else
    echo "   no chart (no samples or no gnuplot)"
fi

# Memory per sidecar from the samples: first, last, max (MiB).
if [ -s "$out/samples.csv" ]; then
    echo "== soak: memory per sidecar (RSS, MiB, from $(($(wc -l < "$out/samples.csv") - 1)) samples every 5 s)"
    awk -F, 'NR == 1 { for (i = 2; i <= NF; i++) if ($i ~ /^rss_kb/) n = i; next }
        { for (i = 2; i <= n; i++) if ($i > 0) { if (!(i in first)) first[i] = $i; last[i] = $i; if ($i > max[i]) max[i] = $i } }
        END { for (i = 2; i <= n; i++) printf "   node%d: start %.1f, end %.1f, max %.1f%s\n", i - 2, first[i] / 1024, last[i] / 1024, max[i] / 1024, i == 2 ? " (never killed)" : "" }' "$out/samples.csv"
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        NR > 2 { r = $(col["deliver_per_s"]); s += r; c++; if (r > mx) mx = r; if (c == 1 || r < mn) mn = r }
        END { if (c) printf "   delivery rate: mean %.0f msg/s, min %.0f, max %.0f (samples every 5 s)\n", s / c, mn, mx }' "$out/samples.csv"
fi

vg_status=0
if [ "${SOAK_SKIP_VALGRIND:-0}" != 1 ]; then
    echo "== soak: integration suite with every sidecar under valgrind memcheck"
    if ! command -v valgrind > /dev/null; then
        apt-get install -y -q valgrind > /dev/null 2>&1 ||
            { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q valgrind > /dev/null 2>&1; }
    fi
    vg="$out/valgrind"
    rm -rf "$vg"
    mkdir -p "$vg"
    cat > "$vg/roomcastd" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full --error-exitcode=99 \\
    --suppressions=$PWD/tests/chaos/valgrind.supp \\
    --log-file=$PWD/$vg/vg.%p.log $PWD/$build/roomcastd "\$@"
EOF
    chmod +x "$vg/roomcastd"
    limit=${SOAK_VALGRIND_TIMEOUT:-900}
    tpass=0; tfail=0
    for t in "$build"/tests/integration/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        s=$(date +%s)
        ROOMCASTD="$PWD/$vg/roomcastd" ROOMCASTCTL="$PWD/$build/roomcastctl" \
            ROOMCAST_TOOLS="$PWD/$build/tests/tools" \
            timeout -k 10 "$limit" "$t" > "$vg/$name.out" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            tpass=$((tpass + 1))
            printf '   ok    %-28s %4ss\n' "$name" $(($(date +%s) - s))
        else
            tfail=$((tfail + 1))
            printf '   FAIL  %-28s %4ss (exit %d, %s)\n' "$name" $(($(date +%s) - s)) $rc "$vg/$name.out"
            grep -E '^\[  FAILED  \]|harness:' "$vg/$name.out" | head -n 5 | sed 's/^/         /'
        fi
    done
    # Every daemon's log: errors, leaks; killed ones (kill -9 by a test)
    # have no summary, but an invalid access is reported when it happens.
    logs=$(find "$vg" -name 'vg.*.log' | wc -l)
    summaries=$(grep -l 'ERROR SUMMARY' "$vg"/vg.*.log 2>/dev/null | wc -l)
    errors=$(grep -h 'ERROR SUMMARY' "$vg"/vg.*.log 2>/dev/null | awk '{ s += $4 } END { print s + 0 }')
    invalid=$(cat "$vg"/vg.*.log 2>/dev/null | grep -cE 'Invalid (read|write|free)|uninitialised|Mismatched free|overlap')
    definitely=$(grep -h 'definitely lost:' "$vg"/vg.*.log 2>/dev/null | awk '{ gsub(",", "", $4); s += $4 } END { print s + 0 }')
    indirectly=$(grep -h 'indirectly lost:' "$vg"/vg.*.log 2>/dev/null | awk '{ gsub(",", "", $4); s += $4 } END { print s + 0 }')
    possibly=$(grep -h 'possibly lost:' "$vg"/vg.*.log 2>/dev/null | awk '{ gsub(",", "", $4); s += $4 } END { print s + 0 }')
    echo "   $logs sidecars ran under valgrind, $summaries exited by themselves (the others were killed by their test: no leak summary)"
    echo "   errors $errors, invalid accesses $invalid, definitely lost $definitely B, indirectly lost $indirectly B, possibly lost $possibly B"
    echo "   tests: $tpass passed, $tfail failed under valgrind (logs in $vg)"
    if [ "$errors" -ne 0 ] || [ "$invalid" -ne 0 ] || [ "$definitely" -ne 0 ] || [ "$indirectly" -ne 0 ]; then
        vg_status=1
        grep -lE 'ERROR SUMMARY: [1-9]|Invalid|definitely lost: [1-9]' "$vg"/vg.*.log | head -n 5 | sed 's/^/   see /'
    fi
    [ $tfail -eq 0 ] || vg_status=1
    [ $vg_status -eq 0 ] || status=1
fi

echo "== soak: summary ($(( ($(date +%s) - t_start) / 60 )) min, load now $(cut -d' ' -f1-3 /proc/loadavg))"
if [ -s "$out/crash.log" ]; then
    grep -E '^crash: (published|[0-9]+ restarts|witness)' "$out/crash.log" | sed 's/^/   /'
fi
echo "   chaos loop: $([ $loop_rc -eq 0 ] && echo clean || echo "FAILED (exit $loop_rc)")"
[ "${SOAK_SKIP_VALGRIND:-0}" = 1 ] || echo "   valgrind: $([ $vg_status -eq 0 ] && echo clean || echo FAILED)"
echo "soak: $([ $status -eq 0 ] && echo passed || echo failed)"
exit $status
