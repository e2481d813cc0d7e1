#!/bin/bash
# Idle cost of a sidecar against the cluster's size (issue 20, parts 2-3).
#
#   tests/scale/idle.sh [BUILD] [N ...]     (default: build/release 10 30 60 100)
#
# For each N: N sidecars on 127.0.0.1 from one gossip seed (as make scale
# starts them), wait until the first 3 have seen all N-1 others alive, let
# them settle SETTLE s (20), then over IDLE s (30) per sidecar:
#   - CPU: user+sys ticks from /proc/PID/stat (all N; median and max, in
#     ms of CPU per second): depends on the machine's load;
#   - counts that do not: mesh control messages received and gossip
#     datagrams in/out (from /metrics), read and write system calls
#     (/proc/PID/io syscr, syscw) and voluntary context switches of all
#     threads, that is wake-ups (/proc/PID/task/*/status): per second,
#     median over the sidecars;
#   - RSS (median, max), of it the private part (RssAnon: heap, ZeroMQ's
#     buffers; the rest is shared libraries' pages, shared by every
#     sidecar on the host), and descriptors.
# Prints one table row per N (markdown) with the load average at the
# start and end of the window. IDLE_FLAGS: more sidecar flags; IDLE_HOOK:
# a command run during the window (see below). Leaves no process behind.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=build/release
if [ $# -gt 0 ] && [ -d "$1" ]; then
    B=$1
    shift
fi
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10 30 60 100)
IDLE=${IDLE:-30}
SETTLE=${SETTLE:-20}
read -ra EXTRA_FLAGS <<<"${IDLE_FLAGS:-}"

[ -x "$B/roomcastd" ] || { echo "idle: $B/roomcastd missing" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n 4096
T=$(mktemp -d /tmp/roomcast-idle.XXXXXX)
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
trap 'stop_all; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
"$B/roomcastctl" keygen "$T/key" >/dev/null || exit 1
HZ=$(getconf CLK_TCK)

free_base() {
    local used base low
    low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range)
    used=$(ss -Htuan 2>/dev/null | awk '{ n = split($5, a, ":"); print a[n] }')
    while :; do
        base=$((10000 + RANDOM % (low - 10000 - $1)))
        if ! awk -v lo="$base" -v hi=$((base + $1)) \
            '$1 >= lo && $1 < hi { f = 1 } END { exit !f }' <<<"$used"; then
            echo "$base"
            return
        fi
    done
}

alive_seen() { # log: members currently alive in its member lines
    awk '/event=member / { id = ""; st = ""
        for (i = 1; i <= NF; i++) {
            if ($i ~ /^node_id=/) id = substr($i, 9)
            if ($i ~ /^state=/) st = substr($i, 7) }
        a[id] = (st == "alive") }
        END { for (k in a) n += a[k]; print n + 0 }' "$1"
}

# sample PID HPORT: "ticks control gossip_in gossip_out syscalls ctxsw"
sample() {
    local p=$1 m t c gi go io cs
    t=$(awk '{ print $14 + $15 }' "/proc/$p/stat")
    m=$(curl -s --max-time 5 "http://127.0.0.1:$2/metrics")
    c=$(awk '/^roomcast_control_messages_total\{result="ok"\}/ { print $2 }' <<<"$m")
    gi=$(awk '/^roomcast_gossip_packets_total\{result="in"\}/ { print $2 }' <<<"$m")
    go=$(awk '/^roomcast_gossip_packets_total\{result="out"\}/ { print $2 }' <<<"$m")
    io=$(awk '/^sysc[rw]:/ { s += $2 } END { print s }' "/proc/$p/io")
    cs=$(cat /proc/"$p"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }')
    echo "$t ${c:-0} ${gi:-0} ${go:-0} $io $cs"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
maxof() { sort -n | tail -1; }

echo "| N | load (start, end) | CPU ms/s median / max | control msgs/s in | gossip pkts/s in / out | syscalls/s | wake-ups/s | RSS MiB median / max | RssAnon MiB median | fds median |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for N in "${SIZES[@]}"; do
    G=$(free_base $((3 * N + 10)))
    D=$((G + N))
    H=$((G + 2 * N))
    for ((i = 0; i < N; i++)); do
        join=()
        [ "$i" -gt 0 ] && join=(--join "127.0.0.1:$G")
        "$B/roomcastd" --channel idle --socket "$T/s$i.sock" --name "s$i" \
            --key-file "$T/key" --gossip "127.0.0.1:$((G + i))" \
            --bind "tcp://127.0.0.1:$((D + i))" --http "127.0.0.1:$((H + i))" \
            "${join[@]}" "${EXTRA_FLAGS[@]}" 2>"$T/s$i.log" &
        PIDS[i]=$!
        [ "$i" = 0 ] && sleep 0.2
        sleep 0.02
    done
    for _ in $(seq 240); do
        ok=1
        for i in 0 1 $((N - 1)); do
            [ "$(alive_seen "$T/s$i.log")" -ge $((N - 1)) ] || ok=0
        done
        [ "$ok" = 1 ] && break
        sleep 0.5
    done
    [ "$ok" = 1 ] || echo "idle: N=$N did not converge in 120 s" >&2
    sleep "$SETTLE"
    load0=$(cut -d' ' -f1 /proc/loadavg)
    for ((i = 0; i < N; i++)); do sample "${PIDS[i]}" $((H + i)); done >"$T/before"
    # IDLE_HOOK: a command run meanwhile with PID (sidecar 1's) exported,
    # e.g. 'perf record -g -p $PID -o /tmp/perf.data -- sleep 20'
    hook=""
    if [ -n "${IDLE_HOOK:-}" ]; then
        PID=${PIDS[1]} N=$N bash -c "$IDLE_HOOK" &
        hook=$!
    fi
    sleep "$IDLE"
    [ -n "$hook" ] && wait "$hook"
    for ((i = 0; i < N; i++)); do sample "${PIDS[i]}" $((H + i)); done >"$T/after"
    load1=$(cut -d' ' -f1 /proc/loadavg)
    paste -d' ' "$T/before" "$T/after" | awk -v hz="$HZ" -v s="$IDLE" '
        { printf "%.3f %.2f %.2f %.2f %.1f %.1f\n", ($7 - $1) * 1000 / hz / s,
            ($8 - $2) / s, ($9 - $3) / s, ($10 - $4) / s, ($11 - $5) / s,
            ($12 - $6) / s }' >"$T/rates"
    col() { awk -v c="$1" '{ print $c }' "$T/rates"; }
    for ((i = 0; i < N; i++)); do
        echo "$(awk '/^VmRSS/ { print $2 }' "/proc/${PIDS[i]}/status") $(find "/proc/${PIDS[i]}/fd" -mindepth 1 -maxdepth 1 | wc -l) $(awk '/^RssAnon/ { print $2 }' "/proc/${PIDS[i]}/status")"
    done >"$T/mem"
    printf '| %d | %s, %s | %s / %s | %s | %s / %s | %s | %s | %.1f / %.1f | %.1f | %s |\n' \
        "$N" "$load0" "$load1" "$(col 1 | median)" "$(col 1 | maxof)" \
        "$(col 2 | median)" "$(col 3 | median)" "$(col 4 | median)" \
        "$(col 5 | median)" "$(col 6 | median)" \
        "$(awk '{ print $1 }' "$T/mem" | median | awk '{ print $1 / 1024 }')" \
        "$(awk '{ print $1 }' "$T/mem" | maxof | awk '{ print $1 / 1024 }')" \
        "$(awk '{ print $3 }' "$T/mem" | median | awk '{ print $1 / 1024 }')" \
        "$(awk '{ print $2 }' "$T/mem" | median)"
    [ -n "${IDLE_KEEP:-}" ] && cp "$T/rates" "$T/mem" "${IDLE_KEEP}" 2>/dev/null
    stop_all
done
