#!/bin/bash
# make bench: roomcast against Redis pub/sub and raw ZeroMQ, on loopback.
#
#   tests/bench/run.sh [BUILD]     (BUILD: build/release, built with tests)
#
# Installs what it needs (redis-server, libhiredis-dev, gnuplot-nox,
# valgrind, nftables), starts every process it measures on 127.0.0.1 (the
# flap case: in two network namespaces it makes) and stops them all
# (trap). Throughput and round trips run in rounds that interleave the
# systems (roomcast, Redis, raw ZeroMQ, then again), BENCH_ROUNDS of them
# (3): every figure is the median of its rounds, and each ratio is also
# given as the median of the per-round ratios, since Redis's own figure
# swings between runs on a shared machine. Writes to BENCH_OUT (default
# build/bench): results.json, table.md (the table it prints, with a line
# per target of issue 15, met or not), throughput.png, the raw figures
# (raw.txt), the sidecars' counters per run (counters.txt), the callgrind
# profiles (*.callgrind) and their summary (profile.txt).
#
# Every roomcast throughput run says where what was not received went,
# from the sidecars' own counters: lost between the two live sidecars
# (published into the sending sidecar, never handed to the subscriber by
# the receiving one), dropped at the subscriber's queue budget on its
# sidecar (dropped_slow), and anything else (still in the publishing
# library, or handed over but not read).
#
# BENCH_QUICK=1 cuts the counts to about a tenth (figures not comparable);
# BENCH_SMOKE=1 is the check that the script still works (make check: tiny
# counts, one round, no callgrind, no install, Redis only if present,
# seconds); BENCH_ROUNDS=N (BENCH_RUNS is the old name) sets the rounds;
# BENCH_TMP=DIR holds the temporary files (sockets, logs) instead of /tmp.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${1:-build/release}
OUT=${BENCH_OUT:-build/bench}
ROUNDS=${BENCH_ROUNDS:-${BENCH_RUNS:-3}}
QUICK=${BENCH_QUICK:-0}
SMOKE=${BENCH_SMOKE:-0}
SIZES="64 1024 65536" # one-way throughput
LAT_SIZES="64 1024"   # round trips
START=$(date +%s)

# Message counts per payload size: each run lasts about a second.
thr_count() { case $1 in 64) echo 500000 ;; 1024) echo 200000 ;; *) echo 10000 ;; esac; }
LAT_COUNT=5000  # timed round trips per run (after 1,000 untimed)
FAN_COUNT=20000 # messages, each to 200 apps
FAN_APPS=50     # subscribing apps per sidecar
CPU_COUNT=5000 # messages through the sidecars under callgrind
CPU_RUNS=$ROUNDS
# the flap cases: a paced stream, broken FLAP_AT seconds into it
# (FLAP_WAIT: seconds the subscriber waits for a message before it gives up)
FLAP_COUNT=300000 FLAP_RATE=100000 FLAP_AT=1.0 FLAP_WAIT=5
if [ "$QUICK" = 1 ]; then
    thr_count() { case $1 in 64) echo 50000 ;; 1024) echo 20000 ;; *) echo 1000 ;; esac; }
    LAT_COUNT=1000 FAN_COUNT=2000 CPU_COUNT=2000
fi
if [ "$SMOKE" = 1 ]; then
    thr_count() { case $1 in 64) echo 5000 ;; *) echo 2000 ;; esac; }
    SIZES="64 1024" LAT_COUNT=200 FAN_COUNT=200 FAN_APPS=5 CPU_RUNS=0
    FLAP_COUNT=10000 FLAP_RATE=20000 FLAP_AT=0.2 FLAP_WAIT=1
    ROUNDS=${BENCH_ROUNDS:-1}
fi

say() { printf '== %s (%ds)\n' "$*" $(($(date +%s) - START)) >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- what it needs ------------------------------------------------------

HAVE_REDIS=1
if [ "$SMOKE" = 1 ]; then
    # never install from make check: Redis only when it is there
    command -v redis-server >/dev/null && pkg-config --exists hiredis || HAVE_REDIS=0
else
    had_redis=$(dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -c "ok installed")
    tests/deps.sh redis-server libhiredis-dev gnuplot-nox valgrind nftables ||
        die "installing failed"
    if [ "$had_redis" = 0 ] && command -v systemctl >/dev/null &&
        systemctl is-active --quiet redis-server 2>/dev/null; then
        # the package starts a system Redis on 6379; the bench runs its own
        say "stopping the redis-server service the package started"
        systemctl stop redis-server && systemctl disable --quiet redis-server
    fi
fi
for t in roomcastd roomcastctl tests/tools/rc_bench tests/tools/rc_pingpong \
    tests/tools/rc_fanout tests/tools/hold_clients; do
    [ -x "$B/$t" ] || die "$B/$t is missing: make BUILD=$B tests"
done
mkdir -p "$OUT"
: >"$OUT/counters.txt"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
read -ra zmq_flags <<<"$(pkg-config --cflags --libs libzmq)"
cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$OUT/zmq_bench" \
    tests/bench/zmq_bench.c "${zmq_flags[@]}" || die "zmq_bench"
if [ "$HAVE_REDIS" = 1 ]; then
    read -ra hiredis_flags <<<"$(pkg-config --cflags --libs hiredis)"
    cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$OUT/redis_bench" \
        tests/bench/redis_bench.c "${hiredis_flags[@]}" || die "redis_bench"
fi

# --- processes ----------------------------------------------------------

T=$(mktemp -d "${BENCH_TMP:-/tmp}/roomcast-bench.XXXXXX")
PIDS=() # everything started in the background, until stopped
RAW=$T/raw.txt
: >"$RAW"
NETNS=() # network namespaces made for the flap case, until removed

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
netns_del() {
    local ns
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    NETNS=()
}
cleanup() {
    [ -n "$CURRENT" ] && kill -TERM "$CURRENT" 2>/dev/null && wait "$CURRENT" 2>/dev/null
    stop_all
    netns_del
    # the tools' and the sidecars' stderr, for when a figure is missing
    mkdir -p "$OUT/logs" && cp "$T"/*.log "$OUT/logs/" 2>/dev/null
    rm -rf "$T"
}
CURRENT=
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

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
# RUNNER="valgrind ..." (or "ip netns exec NS") to run it under a tool
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
# (in bash: it runs several times a run, and a fork is dear under load)
kv() {
    local w
    for w in $1; do
        if [ "${w%%=*}" = "$2" ]; then
            echo "${w#*=}"
            return
        fi
    done
}

# measure SECONDS CMD...: run a tool with a deadline; LINE is its last
# line. In the background and waited for, so that INT or TERM reach the
# trap at once, which stops it.
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

# snap NAME: the sidecar's message counters, as "key=value ..."
COUNTERS='publishes|deliveries|dropped_slow|closed_slow|closed_proto|closed_partial|env_sent|env_received|gaps|missed|mesh_send_failed|mesh_blocked|mesh_peers_cut|repair_requests_sent|repair_requests_served|repair_resent|repaired|repair_unrepaired'
snap() {
    "$B/roomcastctl" -s "$T/$1.sock" status 2>/dev/null |
        awk -v re="^($COUNTERS)\$" '$1 ~ re { printf "%s=%s ", $1, $2 }'
}
# delta BEFORE AFTER KEY: how much KEY grew (0 when unknown)
delta() {
    local a b
    a=$(kv "$1" "$3")
    b=$(kv "$2" "$3")
    echo $((${b:-0} - ${a:-0}))
}
# deltas BEFORE AFTER: every counter that grew, "key=+N ..."
deltas() {
    awk -v b="$1" -v a="$2" 'BEGIN {
        n = split(b, w, " ")
        for (i = 1; i <= n; i++) { split(w[i], kv, "="); before[kv[1]] = kv[2] }
        n = split(a, w, " ")
        for (i = 1; i <= n; i++) {
            split(w[i], kv, "=")
            d = kv[2] - before[kv[1]]
            if (d) out = out (out == "" ? "" : " ") kv[1] "=+" d
        }
        print out
    }'
}

# metrics URL [NETNS]: the repair counters of a sidecar's /metrics, one
# series a line ("name{labels} value"); nothing when it has none
metrics() {
    local url=$1 ns=${2:-}
    if [ -n "$ns" ]; then
        ip netns exec "$ns" curl -fs --max-time 2 "$url/metrics" 2>/dev/null
    else
        curl -fs --max-time 2 "$url/metrics" 2>/dev/null
    fi | awk '/^roomcast_repair/ && NF >= 2 { print $1, $NF }'
}
# repaired BEFORE AFTER: what the repair counters with "repaired" in their
# name or labels grew by, summed; "n/a" when the sidecars have none (from
# metrics outputs, both sidecars' concatenated)
repaired_metrics() {
    printf '%s\n' "$1" | sed 's/^/b /' >"$T/rep.txt"
    printf '%s\n' "$2" | sed 's/^/a /' >>"$T/rep.txt"
    awk 'NF < 3 { next } $1 == "b" { before[$2] = $3 } $1 == "a" { after[$2] = $3; n++ }
        END {
            if (!n) { print "n/a"; exit }
            for (k in after) if (k ~ /repaired/) s += after[k] - before[k]
            printf "%d\n", s
        }' "$T/rep.txt"
}

# repaired PUB_BEFORE PUB_AFTER SUB_BEFORE SUB_AFTER METRICS_BEFORE
# METRICS_AFTER: messages repaired during a run, from the sidecars' status
# ("repaired", when they have it), else from their /metrics; n/a when
# neither knows repair
repaired() {
    if [ -n "$(kv "$4" repaired)" ]; then
        if [ "$1" = "$3" ]; then
            delta "$3" "$4" repaired
        else
            echo $(($(delta "$1" "$2" repaired) + $(delta "$3" "$4" repaired)))
        fi
    else
        repaired_metrics "$5" "$6"
    fi
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

# --- 1. throughput and round trips, interleaved round by round ----------

"$B/roomcastctl" keygen "$T/cluster.key" >/dev/null || die "keygen"
KEY=(--key-file "$T/cluster.key")

say "starting: Redis, raw ZeroMQ ports, roomcast local (L), mesh (A, B), proxy (C, proxy, D)"
ZMQ_PORT=$(free_ports 2)
if [ "$HAVE_REDIS" = 1 ]; then
    REDIS_PORT=$(free_ports 1)
    start_redis "$REDIS_PORT"
    say "Redis is redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
else
    say "no redis-server or hiredis: Redis skipped (smoke run)"
fi
sidecar L
port=$(free_ports 4)
MESH_HTTP=("http://127.0.0.1:$((port + 2))" "http://127.0.0.1:$((port + 3))")
sidecar A --bind "tcp://127.0.0.1:$port" --peer "tcp://127.0.0.1:$((port + 1))" \
    --http "127.0.0.1:$((port + 2))" "${KEY[@]}"
sidecar B --bind "tcp://127.0.0.1:$((port + 1))" --peer "tcp://127.0.0.1:$port" \
    --http "127.0.0.1:$((port + 3))" "${KEY[@]}"
port=$(free_ports 4) # the proxy takes two
PROXY_HTTP=("http://127.0.0.1:$((port + 2))" "http://127.0.0.1:$((port + 3))")
"$B/roomcastd" proxy --frontend "tcp://127.0.0.1:$port" --log-level warn 2>>"$T/proxy.log" &
PIDS+=($!)
sidecar C --proxy "tcp://127.0.0.1:$port" --http "127.0.0.1:$((port + 2))" "${KEY[@]}"
sidecar D --proxy "tcp://127.0.0.1:$port" --http "127.0.0.1:$((port + 3))" "${KEY[@]}"
wait_live "$T/L.sock" 0
for s in A B C D; do wait_live "$T/$s.sock" 1; done

# rc_thr SYSTEM PUB SUB HTTP... : one roomcast throughput run (SIZE,
# ROUND set), with where the missing messages went
rc_thr() {
    local sys=$1 pub=$2 sub=$3 count b_pub b_sub a_pub a_sub m0 m1
    shift 3
    count=$(thr_count "$SIZE")
    b_pub=$(snap "$pub")
    b_sub=$(snap "$sub")
    m0=$(for u in "$@"; do metrics "$u"; done)
    measure 120 "$B/tests/tools/rc_bench" "$T/$pub.sock" "$T/$sub.sock" "$SIZE" "$count"
    a_pub=$(snap "$pub")
    a_sub=$(snap "$sub")
    m1=$(for u in "$@"; do metrics "$u"; done)
    [ -n "$LINE" ] || return
    local got published handed dropped mesh other rep
    got=$(kv "$LINE" received)
    published=$(delta "$b_pub" "$a_pub" publishes)
    handed=$(delta "$b_sub" "$a_sub" deliveries)
    dropped=$(delta "$b_sub" "$a_sub" dropped_slow)
    if [ "$pub" = "$sub" ]; then
        mesh=-
    else
        mesh=$((published - handed - dropped))
    fi
    other=$((count - published + handed - got))
    rep=$(repaired "$b_pub" "$a_pub" "$b_sub" "$a_sub" "$m0" "$m1")
    record thr "$sys" "$SIZE" "$ROUND" "$(kv "$LINE" msgs_per_s)" \
        "$(kv "$LINE" mb_per_s)" "$(kv "$LINE" lost)" "$mesh" "$dropped" \
        "$other" "$rep"
    printf '  %-9s %s\n' "$sys" "$LINE" >&2
    printf '            lost between sidecars %s, dropped_slow at %s %s, elsewhere %s, repaired %s\n' \
        "$mesh" "$sub" "$dropped" "$other" "$rep" >&2
    {
        printf 'round %s %s %s B: %s\n' "$ROUND" "$sys" "$SIZE" "$LINE"
        printf '  sidecar %s (publisher): %s\n' "$pub" "$(deltas "$b_pub" "$a_pub")"
        [ "$pub" = "$sub" ] ||
            printf '  sidecar %s (subscriber): %s\n' "$sub" "$(deltas "$b_sub" "$a_sub")"
        [ -z "$m1" ] || printf '  repair counters after: %s\n' "$(printf "%s" "$m1" | tr "\n" " ")"
    } >>"$OUT/counters.txt"
}

# other_thr SYSTEM CMD...: a baseline's throughput run (SIZE, ROUND set)
other_thr() {
    local sys=$1
    shift
    measure 120 "$@" "$SIZE" "$(thr_count "$SIZE")"
    [ -n "$LINE" ] || return
    record thr "$sys" "$SIZE" "$ROUND" "$(kv "$LINE" msgs_per_s)" \
        "$(kv "$LINE" mb_per_s)" "$(kv "$LINE" lost)" - - - -
    printf '  %-9s %s\n' "$sys" "$LINE" >&2
}

# lat SYSTEM CMD...: a round-trip run (SIZE, ROUND set)
lat() {
    local sys=$1
    shift
    measure 120 "$@" "$SIZE" "$LAT_COUNT"
    [ -n "$LINE" ] || return
    record lat "$sys" "$SIZE" "$ROUND" "$(kv "$LINE" p50_us)" \
        "$(kv "$LINE" p99_us)" "$(kv "$LINE" p999_us)"
    printf '  %-9s %s\n' "$sys" "$LINE" >&2
}

RC_BENCH=$B/tests/tools/rc_bench
RC_PING=$B/tests/tools/rc_pingpong
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    say "round $ROUND of $ROUNDS: one-way throughput"
    for SIZE in $SIZES; do
        rc_thr rc_mesh A B "${MESH_HTTP[@]}"
        rc_thr rc_local L L
        rc_thr rc_proxy C D "${PROXY_HTTP[@]}"
        [ "$HAVE_REDIS" = 0 ] || other_thr redis "$OUT/redis_bench" thr "$REDIS_PORT"
        other_thr zmq "$OUT/zmq_bench" thr "$ZMQ_PORT"
    done
    say "round $ROUND of $ROUNDS: round trips"
    for SIZE in $LAT_SIZES; do
        lat rc_mesh "$RC_PING" "$T/A.sock" "$T/B.sock"
        lat rc_local "$RC_PING" "$T/L.sock" "$T/L.sock"
        lat rc_proxy "$RC_PING" "$T/C.sock" "$T/D.sock"
        [ "$HAVE_REDIS" = 0 ] || lat redis "$OUT/redis_bench" lat "$REDIS_PORT"
        lat zmq "$OUT/zmq_bench" lat "$ZMQ_PORT"
    done
done
stop_all

# --- 2. the flap cases: the link between two live sidecars broken ---------

# A stream of 64 B messages at FLAP_RATE from an app on sidecar FA to one
# on FB (rc_bench -c: every sequence checked), broken FLAP_AT seconds in:
#   cut        FA and FB in two network namespaces joined by a veth; an
#              nftables rule in FB's namespace drops everything on the veth,
#              both ways, for 500 ms (TCP retransmits; the ZeroMQ link stays
#              up unless a side gives up on it). Needs root, ip and nft.
#   reconnect  FA and FB on loopback; their mesh TCP connections killed
#              (ss -K): ZeroMQ reconnects, and what its pipes held is gone
#              unless repaired. Needs root and ss.
# Each is skipped, with why, when it cannot be done.
TAG=${BENCH_TAG:-$$} # names the namespaces (rcbench-TAG-a, -b) and the veth
NS_A=rcbench-$TAG-a NS_B=rcbench-$TAG-b VETH_A=rcb${TAG}a VETH_B=rcb${TAG}b
flap_netns() {
    [ "$(id -u)" = 0 ] || { FLAP_WHY="not root"; return 1; }
    command -v ip >/dev/null || { FLAP_WHY="no ip (iproute2)"; return 1; }
    command -v nft >/dev/null || { FLAP_WHY="no nft (nftables)"; return 1; }
    ip netns add "$NS_A" 2>"$T/netns.err" || { FLAP_WHY="ip netns add: $(cat "$T/netns.err")"; return 1; }
    NETNS+=("$NS_A")
    ip netns add "$NS_B" 2>"$T/netns.err" || { FLAP_WHY="ip netns add: $(cat "$T/netns.err")"; return 1; }
    NETNS+=("$NS_B")
    {
        ip link add "$VETH_A" type veth peer name "$VETH_B" &&
            ip link set "$VETH_A" netns "$NS_A" && ip link set "$VETH_B" netns "$NS_B" &&
            ip -n "$NS_A" addr add 10.231.0.1/24 dev "$VETH_A" &&
            ip -n "$NS_B" addr add 10.231.0.2/24 dev "$VETH_B" &&
            ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
            ip -n "$NS_A" link set "$VETH_A" up && ip -n "$NS_B" link set "$VETH_B" up &&
            ip netns exec "$NS_B" nft -f - <<NFT
table inet rcbench_flap {
    chain in { type filter hook input priority 0; policy accept; }
    chain out { type filter hook output priority 0; policy accept; }
}
NFT
    } 2>"$T/netns.err" || { FLAP_WHY="veth or nft: $(tail -1 "$T/netns.err")"; return 1; }
    RUNNER="ip netns exec $NS_A" sidecar FA --bind tcp://10.231.0.1:7001 \
        --peer tcp://10.231.0.2:7001 --http 127.0.0.1:7080 "${KEY[@]}"
    RUNNER="ip netns exec $NS_B" sidecar FB --bind tcp://10.231.0.2:7001 \
        --peer tcp://10.231.0.1:7001 --http 127.0.0.1:7080 "${KEY[@]}"
    wait_live "$T/FA.sock" 1
    wait_live "$T/FB.sock" 1
    FLAP_DESC="link cut for 500 ms (veth between two network namespaces, nftables drop)"
    flap_metrics() {
        metrics http://127.0.0.1:7080 "$NS_A"
        metrics http://127.0.0.1:7080 "$NS_B"
    }
    flap_cut() {
        ip netns exec "$NS_B" nft -f - <<NFT
add rule inet rcbench_flap in iifname "$VETH_B" drop
add rule inet rcbench_flap out oifname "$VETH_B" drop
NFT
        sleep 0.5
        ip netns exec "$NS_B" nft flush chain inet rcbench_flap in
        ip netns exec "$NS_B" nft flush chain inet rcbench_flap out
    }
}
flap_reconnect() {
    [ "$(id -u)" = 0 ] || { FLAP_WHY="not root"; return 1; }
    command -v ss >/dev/null || { FLAP_WHY="no ss (iproute2)"; return 1; }
    local port
    port=$(free_ports 4)
    sidecar FA --bind "tcp://127.0.0.1:$port" --peer "tcp://127.0.0.1:$((port + 1))" \
        --http "127.0.0.1:$((port + 2))" "${KEY[@]}"
    sidecar FB --bind "tcp://127.0.0.1:$((port + 1))" --peer "tcp://127.0.0.1:$port" \
        --http "127.0.0.1:$((port + 3))" "${KEY[@]}"
    wait_live "$T/FA.sock" 1
    wait_live "$T/FB.sock" 1
    FLAP_PORTS="( sport = :$port or dport = :$port or sport = :$((port + 1)) or dport = :$((port + 1)) )"
    FLAP_HTTP="$((port + 2)) $((port + 3))"
    FLAP_DESC="forced reconnect (the two sidecars' mesh TCP connections killed, ss -K)"
    flap_metrics() {
        local p
        for p in $FLAP_HTTP; do metrics "http://127.0.0.1:$p"; done
    }
    flap_cut() {
        ss -K "$FLAP_PORTS" >"$T/ss.out" 2>&1
        [ "$(grep -c ESTAB "$T/ss.out")" -gt 0 ] ||
            printf 'bench: ss -K killed no connection (%s)\n' "$(tail -1 "$T/ss.out")" >&2
    }
}

# flap_run METHOD: the stream through FA and FB, broken by flap_cut
flap_run() {
    local b_a b_b m0 a_a a_b m1 i got published handed dropped mesh rep
    b_a=$(snap FA)
    b_b=$(snap FB)
    m0=$(flap_metrics)
    rm -f "$T/flap.start"
    timeout 120 "$RC_BENCH" -c -w "$FLAP_WAIT" -r "$FLAP_RATE" -s "$T/flap.start" \
        "$T/FA.sock" "$T/FB.sock" 64 "$FLAP_COUNT" >"$T/tool.out" 2>>"$T/tools.log" &
    CURRENT=$!
    for ((i = 0; i < 150; i++)); do
        [ -e "$T/flap.start" ] && break
        sleep 0.1
    done
    sleep "$FLAP_AT"
    flap_cut
    wait "$CURRENT"
    CURRENT=
    LINE=$(tail -1 "$T/tool.out")
    a_a=$(snap FA)
    a_b=$(snap FB)
    m1=$(flap_metrics)
    if [ -z "$LINE" ]; then
        printf 'bench: flap %s: no figure from rc_bench\n' "$1" >&2
        return
    fi
    got=$(kv "$LINE" received)
    published=$(delta "$b_a" "$a_a" publishes)
    handed=$(delta "$b_b" "$a_b" deliveries)
    dropped=$(delta "$b_b" "$a_b" dropped_slow)
    mesh=$((published - handed - dropped))
    rep=$(repaired "$b_a" "$a_a" "$b_b" "$a_b" "$m0" "$m1")
    record flap "$1" "$FLAP_COUNT" "$got" "$((FLAP_COUNT - got))" "$mesh" \
        "$dropped" "$(kv "$LINE" gap_mesh)" "$(kv "$LINE" behind)" "$rep" "${FLAP_DESC// /_}"
    printf '  flap      %s: %s\n' "$FLAP_DESC" "$LINE" >&2
    printf '            lost between sidecars %s, dropped_slow %s, repaired %s\n' \
        "$mesh" "$dropped" "$rep" >&2
    {
        printf 'flap, %s: %s\n' "$FLAP_DESC" "$LINE"
        printf '  sidecar FA (publisher): %s\n' "$(deltas "$b_a" "$a_a")"
        printf '  sidecar FB (subscriber): %s\n' "$(deltas "$b_b" "$a_b")"
        [ -z "$m1" ] || printf '  repair counters after: %s\n' "$(printf "%s" "$m1" | tr "\n" " ")"
    } >>"$OUT/counters.txt"
}

say "flap: the link between two live sidecars cut for 500 ms mid-stream"
FLAP_WHY=
if flap_netns; then
    flap_run cut
else
    printf '  flap      cut skipped: %s\n' "$FLAP_WHY" >&2
    record flap cut skipped "${FLAP_WHY// /_}"
fi
stop_all
netns_del
say "flap: a forced reconnect between two live sidecars mid-stream"
FLAP_WHY=
if flap_reconnect; then
    flap_run reconnect
else
    printf '  flap      reconnect skipped: %s\n' "$FLAP_WHY" >&2
    record flap reconnect skipped "${FLAP_WHY// /_}"
fi
stop_all

# --- 3. fanout ------------------------------------------------------------

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
for ((run = 1; run <= ROUNDS; run++)); do
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

# --- 4. memory ------------------------------------------------------------

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

# mem_case KEY CLIENTS TOPICS PROCS RUNS: a fresh sidecar, its RSS once
# they hold
mem_case() {
    local run kib
    for ((run = 1; run <= $5; run++)); do
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
# RSS hardly moves from run to run: the idle cases (a target) run every
# round, the loaded ones once
mem_case idle 0 0 0 "$ROUNDS"
if [ "$SMOKE" = 0 ]; then
    mem_case c1000 1000 1 1 1
    mem_case c10000 10000 1 4 1
    mem_case topics100k 10 10000 1 1
fi
for ((run = 1; run <= ROUNDS; run++)); do
    port=$(free_ports 2)
    sidecar A --bind "tcp://127.0.0.1:$port" --peer "tcp://127.0.0.1:$((port + 1))" "${KEY[@]}"
    sidecar B --bind "tcp://127.0.0.1:$((port + 1))" --peer "tcp://127.0.0.1:$port" "${KEY[@]}"
    wait_live "$T/A.sock" 1
    sleep 1
    kib=$(rss_kib "$PID_A")
    record mem idle_mesh "$run" "$kib"
    record mem idle_mesh_peer "$run" "$(rss_kib "$PID_B")"
    if [ "$run" -gt 1 ] || [ "$SMOKE" = 1 ]; then
        stop_all
        continue
    fi
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

# --- 5. CPU: instructions per relayed message (callgrind) ---------------

# the Ir total of a callgrind dump
ir_total() { awk '/^totals:/ { print $2 }' "$1"; }

if [ "$CPU_RUNS" -gt 0 ]; then
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
measure 120 "$B/tests/tools/rc_bench" -w 30 "$T/A.sock" "$T/B.sock" 64 2000
for ((run = 1; run <= CPU_RUNS; run++)); do
    callgrind_control -z "$PID_A" >/dev/null 2>&1
    callgrind_control -z "$PID_B" >/dev/null 2>&1
    # (-w 30: under callgrind a sidecar may be silent for seconds)
    measure 300 "$B/tests/tools/rc_bench" -w 30 "$T/A.sock" "$T/B.sock" 64 "$CPU_COUNT"
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
cp "$T/cg.$PID_A.$CPU_RUNS" "$OUT/sidecar-a.callgrind" 2>/dev/null
cp "$T/cg.$PID_B.$CPU_RUNS" "$OUT/sidecar-b.callgrind" 2>/dev/null
stop_all

say "CPU: instructions per message in redis-server, callgrind"
port=$(free_ports 1)
start_redis "$port" "valgrind --tool=callgrind --callgrind-out-file=$T/cg.redis.%p"
measure 120 "$OUT/redis_bench" thr "$port" 64 2000
for ((run = 1; run <= CPU_RUNS; run++)); do
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
cp "$T/cg.redis.$REDIS_PID.$CPU_RUNS" "$OUT/redis.callgrind" 2>/dev/null
stop_all
fi

# --- 6. report ------------------------------------------------------------

cp "$RAW" "$OUT/raw.txt"
machine="$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
awk -v json="$OUT/results.json" -v dat="$OUT/throughput.dat" \
    -v rounds="$ROUNDS" -v machine="$machine" -v quick="$QUICK" -v smoke="$SMOKE" \
    -v sizes="$SIZES" -v lat_sizes="$LAT_SIZES" -v flap_desc="${FLAP_DESC:-}" \
    -v flap_rate="$FLAP_RATE" -v flap_at="$FLAP_AT" -v fan_apps="$FAN_APPS" \
    -v seconds=$(($(date +%s) - START)) \
    -v commit="$(git rev-parse --short HEAD 2>/dev/null)" \
    -v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -f tests/bench/report.awk "$OUT/raw.txt" >"$OUT/table.md" || die "report"
cat "$OUT/table.md"
if command -v gnuplot >/dev/null; then
    # the figures are written by now: a chart that fails is said, not fatal
    gnuplot -e "datafile='$OUT/throughput.dat'; outfile='$OUT/throughput.png'" \
        tests/bench/throughput.gp || printf 'bench: gnuplot failed: no chart\n' >&2
fi

# where the relay's instructions go (profile.txt)
for f in sidecar-a sidecar-b; do
    [ -f "$OUT/$f.callgrind" ] || continue
    printf '\n%s: callgrind, last run, %d messages of 64 B (user space only)\n' \
        "$f" "$CPU_COUNT"
    callgrind_annotate --threshold=100 --auto=no "$OUT/$f.callgrind" 2>/dev/null |
        awk -v count="$CPU_COUNT" -v top=12 -f tests/bench/profile.awk
    callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$OUT/$f.callgrind" 2>/dev/null |
        awk -v count="$CPU_COUNT" -v top=12 -v inclusive=1 -f tests/bench/profile.awk
done | tee "$OUT/profile.txt"
printf '\nwrote %s, %s, %s, %s, %s in %d s\n' "$OUT/results.json" "$OUT/table.md" \
    "$OUT/throughput.png" "$OUT/profile.txt" "$OUT/counters.txt" $(($(date +%s) - START))
