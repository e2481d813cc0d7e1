#!/bin/bash
# make bench: roomcast against Redis pub/sub and raw ZeroMQ, on loopback.
#
#   tests/bench/run.sh [BUILD]     (BUILD: build/release, built with tests)
#
# Installs what it needs (redis-server, libhiredis-dev, gnuplot-nox,
# valgrind), starts every process it measures on 127.0.0.1 and stops them
# all (trap). Each measurement runs BENCH_RUNS times (3); the median is
# reported. Writes build/bench/results.json, build/bench/table.md (the
# table it prints), build/bench/throughput.png, the raw figures
# (build/bench/raw.txt), the sidecars' drop counters (counters.txt), the
# callgrind profiles (build/bench/*.callgrind) and their summary
# (profile.txt).
#
# BENCH_QUICK=1 cuts the counts to about a tenth (a smoke run, figures not
# comparable); BENCH_RUNS=N runs each measurement N times; BENCH_OUT=DIR
# writes there instead of build/bench.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${1:-build/release}
OUT=${BENCH_OUT:-build/bench}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
SIZES="64 1024 65536"

# Message counts per payload size: each run lasts about a second or two.
thr_count() { case $1 in 64) echo 1000000 ;; 1024) echo 500000 ;; *) echo 20000 ;; esac; }
lat_count() { case $1 in 65536) echo 5000 ;; *) echo 10000 ;; esac; }
FAN_COUNT=20000 # messages, each to 200 apps
FAN_APPS=50     # subscribing apps per sidecar
CPU_COUNT=20000 # messages through the sidecars under callgrind
if [ "$QUICK" = 1 ]; then
    thr_count() { case $1 in 64) echo 100000 ;; 1024) echo 50000 ;; *) echo 2000 ;; esac; }
    lat_count() { echo 1000; }
    FAN_COUNT=2000 CPU_COUNT=2000
fi

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- what it needs ------------------------------------------------------

had_redis=$(dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -c "ok installed")
tests/deps.sh redis-server libhiredis-dev gnuplot-nox valgrind || die "installing failed"
if [ "$had_redis" = 0 ] && command -v systemctl >/dev/null &&
    systemctl is-active --quiet redis-server 2>/dev/null; then
    # the package starts a system Redis on 6379; the bench runs its own
    say "stopping the redis-server service the package started"
    systemctl stop redis-server && systemctl disable --quiet redis-server
fi
for t in roomcastd roomcastctl tests/tools/rc_bench tests/tools/rc_pingpong \
    tests/tools/rc_fanout tests/tools/hold_clients; do
    [ -x "$B/$t" ] || die "$B/$t is missing: make BUILD=$B tests"
done
mkdir -p "$OUT"
: >"$OUT/counters.txt"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
read -ra zmq_flags <<<"$(pkg-config --cflags --libs libzmq)"
read -ra hiredis_flags <<<"$(pkg-config --cflags --libs hiredis)"
cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$OUT/zmq_bench" \
    tests/bench/zmq_bench.c "${zmq_flags[@]}" || die "zmq_bench"
cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$OUT/redis_bench" \
    tests/bench/redis_bench.c "${hiredis_flags[@]}" || die "redis_bench"

# --- processes ----------------------------------------------------------

T=$(mktemp -d /tmp/roomcast-bench.XXXXXX)
PIDS=() # everything started in the background, until stopped
RAW=$T/raw.txt
: >"$RAW"

stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
cleanup() {
    [ -n "$CURRENT" ] && kill -TERM "$CURRENT" 2>/dev/null && wait "$CURRENT" 2>/dev/null
    stop_all
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_ports N: the first of N consecutive free TCP ports on 127.0.0.1
free_ports() {
    local base i busy
    while :; do
        base=$((20000 + RANDOM % 30000))
        busy=0
        for ((i = 0; i < $1; i++)); do
            if [ -n "$(ss -Htan "sport = :$((base + i))" 2>/dev/null)" ]; then
                busy=1
                break
            fi
        done
        [ $busy = 0 ] && echo $base && return
    done
}

# sidecar NAME [roomcastd args...]: socket $T/NAME.sock; prefix with
# RUNNER="valgrind ..." to run it under a tool
sidecar() {
    local name=$1
    shift
    ${RUNNER:-} "$B/roomcastd" --channel bench --socket "$T/$name.sock" \
        --log-level warn "$@" 2>>"$T/$name.log" &
    PIDS+=($!)
    eval "PID_$name=$!"
}

status_field() { "$B/roomcastctl" -s "$1" status 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'; }

# wait_live SOCK PEERS: until the sidecar answers and hears PEERS peers
wait_live() {
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(status_field "$1" live_peers)" = "$2" ] && return 0
        sleep 0.1
    done
    die "$1: not $2 live peers after 30 s (log: $(tail -3 "${1%.sock}.log"))"
}

# kv LINE KEY: the value of KEY=... in a tool's output line
kv() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# measure SECONDS CMD...: run a tool with a deadline; LINE is its last
# line. In the background and waited for, so that INT or TERM reach the
# trap at once, which stops it.
CURRENT=
measure() {
    local secs=$1
    shift
    timeout "$secs" "$@" >"$T/tool.out" 2>>"$T/tools.log" &
    CURRENT=$!
    wait "$CURRENT"
    CURRENT=
    LINE=$(tail -1 "$T/tool.out")
    [ -n "$LINE" ] || printf 'bench: no figure from: %s\n' "$*" >&2
}

record() { printf '%s\n' "$*" >>"$RAW"; }

# counters LABEL NAME...: where messages went missing, from the sidecars'
# own counters (build/bench/counters.txt)
counters() {
    local label=$1 name line
    shift
    for name in "$@"; do
        line=$("$B/roomcastctl" -s "$T/$name.sock" status 2>/dev/null | awk '
            $1 ~ /^(publishes|deliveries|dropped_slow|closed_slow|env_sent|env_received|gaps|missed|mesh_send_failed)$/ {
                printf "%s=%s ", $1, $2 }')
        printf '%s sidecar %s: %s\n' "$label" "$name" "$line" >>"$OUT/counters.txt"
        printf '  counters  %s %s: %s\n' "$label" "$name" "$line" >&2
    done
}

# thr_runs SYSTEM CMD...: one-way throughput, every size, RUNS times; the
# command gets SIZE COUNT appended
thr_runs() {
    local sys=$1 size run line
    shift
    for size in $SIZES; do
        for ((run = 1; run <= RUNS; run++)); do
            measure 120 "$@" "$size" "$(thr_count "$size")"
            line=$LINE
            [ -n "$line" ] || continue
            record thr "$sys" "$size" "$run" "$(kv "$line" msgs_per_s)" \
                "$(kv "$line" mb_per_s)" "$(kv "$line" lost)"
            printf '  %-9s %s\n' "$sys" "$line" >&2
        done
    done
}

# lat_runs SYSTEM CMD...: round trips, every size, RUNS times
lat_runs() {
    local sys=$1 size run line
    shift
    for size in $SIZES; do
        for ((run = 1; run <= RUNS; run++)); do
            measure 120 "$@" "$size" "$(lat_count "$size")"
            line=$LINE
            [ -n "$line" ] || continue
            record lat "$sys" "$size" "$run" "$(kv "$line" p50_us)" \
                "$(kv "$line" p99_us)" "$(kv "$line" p999_us)"
            printf '  %-9s %s\n' "$sys" "$line" >&2
        done
    done
}

start_redis() { # PORT [RUNNER]
    ${2:-} redis-server --port "$1" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --protected-mode yes \
        --client-output-buffer-limit 'pubsub 0 0 0' --dir "$T" \
        --logfile "$T/redis.log" 2>>"$T/redis.err" &
    PIDS+=($!)
    REDIS_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        timeout 1 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    die "redis-server did not answer on port $1"
}

# --- 1. raw ZeroMQ, the floor -------------------------------------------

say "raw ZeroMQ PUB/SUB, two processes"
port=$(free_ports 2)
thr_runs zmq "$OUT/zmq_bench" thr "$port"
lat_runs zmq "$OUT/zmq_bench" lat "$port"

# --- 2. Redis pub/sub ---------------------------------------------------

say "Redis pub/sub (redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'))"
port=$(free_ports 1)
start_redis "$port"
thr_runs redis "$OUT/redis_bench" thr "$port"
lat_runs redis "$OUT/redis_bench" lat "$port"
stop_all

# --- 3. roomcast: local, mesh, proxy --------------------------------------

"$B/roomcastctl" keygen "$T/cluster.key" >/dev/null || die "keygen"
KEY=(--key-file "$T/cluster.key")

say "roomcast local: app, sidecar, app"
sidecar L
wait_live "$T/L.sock" 0
thr_runs rc_local "$B/tests/tools/rc_bench" "$T/L.sock" "$T/L.sock"
counters "local, after the throughput runs:" L
lat_runs rc_local "$B/tests/tools/rc_pingpong" "$T/L.sock" "$T/L.sock"
stop_all

say "roomcast end to end, mesh: app, sidecar A, sidecar B, app"
port=$(free_ports 2)
sidecar A --bind "tcp://127.0.0.1:$port" --peer "tcp://127.0.0.1:$((port + 1))" "${KEY[@]}"
sidecar B --bind "tcp://127.0.0.1:$((port + 1))" --peer "tcp://127.0.0.1:$port" "${KEY[@]}"
wait_live "$T/A.sock" 1
wait_live "$T/B.sock" 1
thr_runs rc_mesh "$B/tests/tools/rc_bench" "$T/A.sock" "$T/B.sock"
counters "mesh, after the throughput runs:" A B
lat_runs rc_mesh "$B/tests/tools/rc_pingpong" "$T/A.sock" "$T/B.sock"
stop_all

say "roomcast end to end, proxy: app, sidecar A, proxy, sidecar B, app"
port=$(free_ports 2)
"$B/roomcastd" proxy --frontend "tcp://127.0.0.1:$port" --log-level warn 2>>"$T/proxy.log" &
PIDS+=($!)
sidecar A --proxy "tcp://127.0.0.1:$port" "${KEY[@]}"
sidecar B --proxy "tcp://127.0.0.1:$port" "${KEY[@]}"
wait_live "$T/A.sock" 1
wait_live "$T/B.sock" 1
thr_runs rc_proxy "$B/tests/tools/rc_bench" "$T/A.sock" "$T/B.sock"
counters "proxy, after the throughput runs:" A B
lat_runs rc_proxy "$B/tests/tools/rc_pingpong" "$T/A.sock" "$T/B.sock"
stop_all

# --- 4. fanout ------------------------------------------------------------

say "fanout: one publisher, four sidecars (mesh), $FAN_APPS apps on each"
port=$(free_ports 4)
for i in 0 1 2 3; do
    peers=()
    for j in 0 1 2 3; do
        [ $i = $j ] || peers+=(--peer "tcp://127.0.0.1:$((port + j))")
    done
    sidecar "F$i" --bind "tcp://127.0.0.1:$((port + i))" "${peers[@]}" "${KEY[@]}"
done
for i in 0 1 2 3; do wait_live "$T/F$i.sock" 3; done
for ((run = 1; run <= RUNS; run++)); do
    measure 120 "$B/tests/tools/rc_fanout" 64 "$FAN_COUNT" "$FAN_APPS" \
        "$T/F0.sock" "$T/F0.sock" "$T/F1.sock" "$T/F2.sock" "$T/F3.sock"
    line=$LINE
    [ -n "$line" ] || continue
    record fan mesh 64 "$run" "$(kv "$line" deliveries_per_s)" \
        "$(kv "$line" spread_p50_us)" "$(kv "$line" spread_p99_us)" \
        "$(kv "$line" spread_max_us)" "$(kv "$line" last_p50_us)" \
        "$(kv "$line" last_p99_us)" "$(kv "$line" delivered)" "$(kv "$line" expected)"
    printf '  fanout    %s\n' "$line" >&2
done
stop_all

# --- 5. memory ------------------------------------------------------------

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# hold SOCK CLIENTS TOPICS PROCS: hold_clients in PROCS processes (3
# descriptors per client, and the descriptor limit is per process) until
# all are ready (their stdin: descriptors 20, 21 ..., see release)
hold() {
    local i
    for ((i = 0; i < $4; i++)); do
        rm -f "$T/hold$i.in" "$T/hold$i.out"
        mkfifo "$T/hold$i.in"
        "$B/tests/tools/hold_clients" "$1" $(($2 / $4)) "$3" <"$T/hold$i.in" \
            >"$T/hold$i.out" 2>&1 &
        PIDS+=($!)
        eval "exec $((20 + i))>\"$T/hold$i.in\"" # their stdin stays open
    done
    for ((i = 0; i < $4; i++)); do
        local w
        for ((w = 0; w < 1200; w++)); do
            grep -q ready "$T/hold$i.out" && break
            kill -0 "${PIDS[-$4 + i]}" 2>/dev/null || break
            sleep 0.1
        done
        grep -q ready "$T/hold$i.out" || die "hold_clients: $(cat "$T/hold$i.out")"
    done
}
release() { # PROCS: close their stdin, they exit
    local i
    for ((i = 0; i < $1; i++)); do eval "exec $((20 + i))>&-"; done
}

# mem_case KEY CLIENTS TOPICS PROCS: a fresh sidecar, its RSS once they hold
mem_case() {
    local run kib
    for ((run = 1; run <= RUNS; run++)); do
        sidecar M
        wait_live "$T/M.sock" 0
        if [ "$2" -gt 0 ]; then
            hold "$T/M.sock" "$2" "$3" "$4"
        fi
        sleep 0.5
        kib=$(rss_kib "$PID_M")
        record mem "$1" "$run" "$kib"
        [ "$2" -gt 0 ] && release "$4"
        stop_all
    done
    printf '  %-12s %s KiB (last run)\n' "$1" "$kib" >&2
}

say "memory: roomcastd resident set"
mem_case idle 0 0 0
mem_case c1000 1000 1 1
mem_case c10000 10000 1 4
mem_case topics100k 10 10000 1
for ((run = 1; run <= RUNS; run++)); do
    port=$(free_ports 2)
    sidecar A --bind "tcp://127.0.0.1:$port" --peer "tcp://127.0.0.1:$((port + 1))" "${KEY[@]}"
    sidecar B --bind "tcp://127.0.0.1:$((port + 1))" --peer "tcp://127.0.0.1:$port" "${KEY[@]}"
    wait_live "$T/A.sock" 1
    sleep 1
    kib=$(rss_kib "$PID_A")
    record mem idle_mesh "$run" "$kib"
    record mem idle_mesh_peer "$run" "$(rss_kib "$PID_B")"
    # what a topic costs in a mesh: the subscribing apps' sidecar (A) and
    # the peer that holds the subscription (B), both sides measured
    hold "$T/A.sock" 10 10000 1
    sleep 1
    record mem topics100k_mesh "$run" "$(rss_kib "$PID_A")"
    record mem topics100k_mesh_peer "$run" "$(rss_kib "$PID_B")"
    release 1
    stop_all
done
printf '  %-12s %s KiB (last run)\n' idle_mesh "$kib" >&2

# --- 6. CPU: instructions per relayed message (callgrind) ---------------

# the Ir total of a callgrind dump
ir_total() { awk '/^totals:/ { print $2 }' "$1"; }

say "CPU: instructions per relayed message, end to end (mesh), callgrind"
rm -f "$OUT"/*.callgrind "$OUT"/*.callgrind.*
port=$(free_ports 2)
RUNNER="valgrind --tool=callgrind --callgrind-out-file=$T/cg.%p"
sidecar A --bind "tcp://127.0.0.1:$port" --peer "tcp://127.0.0.1:$((port + 1))" "${KEY[@]}"
sidecar B --bind "tcp://127.0.0.1:$((port + 1))" --peer "tcp://127.0.0.1:$port" "${KEY[@]}"
RUNNER=
wait_live "$T/A.sock" 1
wait_live "$T/B.sock" 1
# warm up (first subscriptions, allocations), then count from zero
measure 120 "$B/tests/tools/rc_bench" "$T/A.sock" "$T/B.sock" 64 2000
for ((run = 1; run <= RUNS; run++)); do
    callgrind_control -z "$PID_A" >/dev/null 2>&1
    callgrind_control -z "$PID_B" >/dev/null 2>&1
    measure 300 "$B/tests/tools/rc_bench" "$T/A.sock" "$T/B.sock" 64 "$CPU_COUNT"
    line=$LINE
    callgrind_control -d "$PID_A" >/dev/null 2>&1
    callgrind_control -d "$PID_B" >/dev/null 2>&1
    got=$(kv "$line" received)
    if [ -z "$got" ] || [ "$got" = 0 ]; then
        printf 'bench: callgrind run %d: nothing received\n' "$run" >&2
        continue
    fi
    a=$(ir_total "$T/cg.$PID_A.$run")
    b=$(ir_total "$T/cg.$PID_B.$run")
    record cpu rc_a "$run" $((a / CPU_COUNT))
    record cpu rc_b "$run" $((b / got))
    record cpu rc_e2e "$run" $((a / CPU_COUNT + b / got))
    printf '  run %d: sidecar A %d, sidecar B %d instructions/message (%s)\n' \
        "$run" $((a / CPU_COUNT)) $((b / got)) "$line" >&2
done
cp "$T/cg.$PID_A.$RUNS" "$OUT/sidecar-a.callgrind" 2>/dev/null
cp "$T/cg.$PID_B.$RUNS" "$OUT/sidecar-b.callgrind" 2>/dev/null
stop_all

say "CPU: instructions per message in redis-server, callgrind"
port=$(free_ports 1)
start_redis "$port" "valgrind --tool=callgrind --callgrind-out-file=$T/cg.redis.%p"
measure 120 "$OUT/redis_bench" thr "$port" 64 2000
for ((run = 1; run <= RUNS; run++)); do
    callgrind_control -z "$REDIS_PID" >/dev/null 2>&1
    measure 300 "$OUT/redis_bench" thr "$port" 64 "$CPU_COUNT"
    line=$LINE
    callgrind_control -d "$REDIS_PID" >/dev/null 2>&1
    r=$(ir_total "$T/cg.redis.$REDIS_PID.$run")
    [ -n "$r" ] || continue
    record cpu redis "$run" $((r / CPU_COUNT))
    printf '  run %d: redis-server %d instructions/message (%s)\n' \
        "$run" $((r / CPU_COUNT)) "$line" >&2
done
cp "$T/cg.redis.$REDIS_PID.$RUNS" "$OUT/redis.callgrind" 2>/dev/null
stop_all

# --- 7. report ------------------------------------------------------------

cp "$RAW" "$OUT/raw.txt"
machine="$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
awk -v json="$OUT/results.json" -v dat="$OUT/throughput.dat" \
    -v runs="$RUNS" -v machine="$machine" -v quick="$QUICK" \
    -v commit="$(git rev-parse --short HEAD 2>/dev/null)" \
    -v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -f tests/bench/report.awk "$OUT/raw.txt" >"$OUT/table.md" || die "report"
cat "$OUT/table.md"
gnuplot -e "datafile='$OUT/throughput.dat'; outfile='$OUT/throughput.png'" \
    tests/bench/throughput.gp || die "gnuplot"

# where the relay's instructions go (build/bench/profile.txt)
for f in sidecar-a sidecar-b; do
    [ -f "$OUT/$f.callgrind" ] || continue
    printf '\n%s: callgrind, last run, %d messages of 64 B (user space only)\n' \
        "$f" "$CPU_COUNT"
    callgrind_annotate --threshold=100 --auto=no "$OUT/$f.callgrind" 2>/dev/null |
        awk -v count="$CPU_COUNT" -v top=12 -f tests/bench/profile.awk
    callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$OUT/$f.callgrind" 2>/dev/null |
        awk -v count="$CPU_COUNT" -v top=12 -v inclusive=1 -f tests/bench/profile.awk
done | tee "$OUT/profile.txt"
printf '\nwrote %s, %s, %s, %s\n' "$OUT/results.json" "$OUT/table.md" \
    "$OUT/throughput.png" "$OUT/profile.txt"
