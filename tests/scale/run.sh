#!/bin/bash
# make scale: a hundred sidecars on this machine (issue 20).
#
#   tests/scale/run.sh [BUILD]      (BUILD: build/release, built with tests)
#
# Case "mesh" (SCALE_N sidecars, 100): all on 127.0.0.1, one gossip seed,
# started one after the other. Measured from each sidecar's own member
# events (its log lines "member node_id=... state=..."), /proc and the
# rc_scale tool (tests/tools/rc_scale.c), never by polling a CLI:
#   - time from the last start until every sidecar has logged all N-1
#     others alive;
#   - after 10 s to settle, idle CPU per sidecar (user+sys from
#     /proc/PID/stat over SCALE_IDLE seconds, 30), RSS and descriptors;
#   - one app subscribed on every sidecar, 5 messages published from the
#     first: how many remote subscribers got each, spread first-to-last;
#   - kill -9 of one sidecar: time until every other one logged it dead;
#   - rolling restart of 10% (SIGTERM, start again, 2 s apart) while one
#     app publishes 20 messages a second to subscribers on every sidecar
#     that stays up: every message must reach every one of them.
# Case "proxy" (SCALE_PROXY_N sidecars, 200, behind two `roomcastd proxy`):
# convergence, delivery, RSS and CPU of the proxies and sidecars. A proxy
# over SCALE_PROXY_RSS_CAP MiB (2048), or all of them over
# SCALE_TOTAL_RSS_CAP MiB (8192), ends the case early (not met).
#
# Prints one table with each target met or not; writes
# build/scale/results.json, table.md, the chart build/scale/scale.png
# (gnuplot-nox), the per-sidecar times (mesh_times.dat) and the logs of
# the last run (build/scale/logs/). SCALE_CASES="mesh proxy" picks cases;
# SCALE_SWIM_FLAGS is passed to every sidecar (default: none, the
# daemon's own defaults).
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${1:-build/release}
OUT=${SCALE_OUT:-build/scale}
N=${SCALE_N:-100}
PN=${SCALE_PROXY_N:-200}
IDLE=${SCALE_IDLE:-30}
CASES=${SCALE_CASES:-mesh proxy}
RSS_CAP=${SCALE_PROXY_RSS_CAP:-2048}
TOTAL_CAP=${SCALE_TOTAL_RSS_CAP:-8192}
read -ra SWIM_FLAGS <<<"${SCALE_SWIM_FLAGS:-}"

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'scale: %s\n' "$*" >&2; exit 1; }

tests/deps.sh gnuplot-nox || die "installing gnuplot-nox failed"
for t in roomcastd roomcastctl tests/tools/rc_scale; do
    [ -x "$B/$t" ] || die "$B/$t is missing: make BUILD=$B tests"
done
ulimit -n 65536 2>/dev/null || ulimit -n 4096
mkdir -p "$OUT"
T=$(mktemp -d /tmp/roomcast-scale.XXXXXX)
PIDS=() # index -> pid of every process started, until stopped
EXTRA=() # proxies
RESULTS=$T/results.txt # "case key value" lines
: >"$RESULTS"

stop_all() {
    local p
    for p in "${PIDS[@]}" "${EXTRA[@]}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}" "${EXTRA[@]}"; do
        [ -n "$p" ] || continue
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
    EXTRA=()
}
cleanup() {
    stop_all
    rm -rf "$OUT/logs"
    mkdir -p "$OUT/logs"
    cp "$T"/*.log "$OUT/logs/" 2>/dev/null
    [ -d "$T/mesh-logs" ] && cp -r "$T/mesh-logs" "$OUT/logs/mesh"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

put() { echo "$1 $2 $3" >>"$RESULTS"; }
get() { awk -v c="$1" -v k="$2" '$1 == c && $2 == k { v = $3 } END { print v }' "$RESULTS"; }

# Seconds since midnight UTC, with ms: the clock of the log lines.
tod() { date -u +%H:%M:%S.%N | awk -F: '{ printf "%.3f\n", $1 * 3600 + $2 * 60 + $3 }'; }

# A base port with COUNT free TCP and UDP ports above it on 127.0.0.1,
# below the kernel's ephemeral range: a hundred sidecars open thousands of
# outgoing connections, whose local ports would otherwise take the ports
# the next sidecars bind.
free_base() {
    local used base low
    low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
    low=${low:-32768}
    used=$(ss -Htuan 2>/dev/null | awk '{ n = split($5, a, ":"); print a[n] }')
    while :; do
        base=$((10000 + RANDOM % (low - 10000 - $1)))
        if ! awk -v lo="$base" -v hi=$((base + $1)) \
            '$1 >= lo && $1 < hi { found = 1 } END { exit !found }' <<<"$used"; then
            echo "$base"
            return
        fi
    done
}

"$B/roomcastctl" keygen "$T/key" >/dev/null || die "keygen"

# sidecar I ARGS...: sidecar I of the current case (socket $T/sI.sock,
# log $T/sI.log, appended to across restarts)
sidecar() {
    local i=$1
    shift
    "$B/roomcastd" --channel scale --socket "$T/s$i.sock" --name "s$i" \
        --key-file "$T/key" --gossip "127.0.0.1:$((GPORT + i))" \
        "${SWIM_FLAGS[@]}" "$@" 2>>"$T/s$i.log" &
    PIDS[i]=$!
}

# For every log given: the time (seconds of day) at which it had logged
# WANT other members alive at once, or "-" if never.
saw_all_alive() {
    local want=$1 f
    shift
    for f in "$@"; do
        awk -v want="$want" '
            / event=member / {
                id = ""; st = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^node_id=/) { id = substr($i, 9) }
                    if ($i ~ /^state=/) { st = substr($i, 7) }
                }
                if (st == "alive" && !(id in alive)) { alive[id] = 1; n++ }
                if (st != "alive" && (id in alive)) { delete alive[id]; n-- }
                if (n >= want) {
                    split($1, t, "T"); split(t[2], h, ":")
                    printf "%.3f\n", h[1] * 3600 + h[2] * 60 + h[3]
                    found = 1; exit
                }
            }
            END { if (!found) print "-" }' "$f"
    done
}

# wait_alive COUNT TIMEOUT: until each of sidecars 0..COUNT-1 logged all
# others alive; sets CONVERGED (s after LAST_START, or "-") and writes the
# per-sidecar times to $T/alive.txt.
wait_alive() {
    local count=$1 timeout=$2 start logs i
    start=$(date +%s)
    logs=()
    for ((i = 0; i < count; i++)); do logs+=("$T/s$i.log"); done
    while :; do
        saw_all_alive $((count - 1)) "${logs[@]}" >"$T/alive.txt"
        if ! grep -q -- - "$T/alive.txt"; then
            break
        fi
        if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
            CONVERGED="-"
            say "not converged after ${timeout}s: $(grep -c -- - "$T/alive.txt") sidecars see fewer than $((count - 1)) alive"
            return 1
        fi
        sleep 0.5
    done
    CONVERGED=$(awk -v s="$LAST_START" '{ d = $1 - s; if (d < 0) d = 0; if (d > m) m = d } END { printf "%.2f", m }' "$T/alive.txt")
}

# CPU ticks (user + sys) of a pid.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# idle CASE PID...: CPU over IDLE s per pid; writes the stats of the list.
idle_cpu() {
    local case=$1 p hz
    shift
    hz=$(getconf CLK_TCK)
    local -a before=()
    for p in "$@"; do before+=("$(ticks "$p")"); done
    sleep "$IDLE"
    local i=0
    for p in "$@"; do
        echo $(($(ticks "$p") - before[i]))
        i=$((i + 1))
    done | sort -n | awk -v hz="$hz" -v s="$IDLE" -v c="$case" '
        { v[NR] = $1 / hz / s * 100; t += v[NR] }
        END {
            printf "%s cpu_pct_median %.3f\n", c, v[int((NR + 1) / 2)]
            printf "%s cpu_pct_max %.3f\n", c, v[NR]
            printf "%s cpu_pct_total %.2f\n", c, t
        }' >>"$RESULTS"
}

mem_stats() {
    local case=$1 p
    shift
    for p in "$@"; do echo "$(rss_kib "$p") $(fds "$p")"; done >"$T/mem.txt"
    sort -n -k1 "$T/mem.txt" | awk -v c="$case" '
        { r[NR] = $1 } END {
            printf "%s rss_mib_median %.1f\n", c, r[int((NR + 1) / 2)] / 1024
            printf "%s rss_mib_max %.1f\n", c, r[NR] / 1024 }' >>"$RESULTS"
    sort -n -k2 "$T/mem.txt" | awk -v c="$case" '
        { f[NR] = $2 } END {
            printf "%s fds_median %d\n", c, f[int((NR + 1) / 2)]
            printf "%s fds_max %d\n", c, f[NR] }' >>"$RESULTS"
}

# deliver CASE COUNT: rc_scale deliver, sidecar 0 publishing.
deliver() {
    local case=$1 count=$2 i socks=() line
    for ((i = 0; i < count; i++)); do socks+=("$T/s$i.sock"); done
    line=$(timeout 120 "$B/tests/tools/rc_scale" deliver "$T/s0.sock" "${socks[@]}" 2>"$T/deliver.err")
    say "deliver: ${line:-failed: $(tail -1 "$T/deliver.err")}"
    put "$case" expected "$(sed -nE 's/.*expected=([0-9]+).*/\1/p' <<<"$line")"
    put "$case" delivered "$(sed -nE 's/.*delivered_min=([0-9]+).*/\1/p' <<<"$line")"
    put "$case" spread_ms "$(sed -nE 's/.*spread_ms_max=([0-9.]+).*/\1/p' <<<"$line")"
    put "$case" last_ms "$(sed -nE 's/.*last_ms_max=([0-9.]+).*/\1/p' <<<"$line")"
    put "$case" unconfirmed "$(sed -nE 's/.*unconfirmed=([0-9]+).*/\1/p' <<<"$line")"
}

node_id() { sed -nE 's/.* event=started .*node_id=([0-9a-f]+).*/\1/p' "$T/s$1.log" | tail -1; }

# --- mesh ---------------------------------------------------------------

case_mesh() {
    local i victim id killed_at
    say "mesh: starting $N sidecars from one seed"
    GPORT=$(free_base $((3 * N + 10)))
    local DPORT=$((GPORT + N)) HPORT=$((GPORT + 2 * N))
    mesh_args() { echo --bind "tcp://127.0.0.1:$((DPORT + $1))" --http "127.0.0.1:$((HPORT + $1))"; }
    for ((i = 0; i < N; i++)); do
        : >"$T/s$i.log"
        # shellcheck disable=SC2046
        if [ "$i" = 0 ]; then
            sidecar 0 $(mesh_args 0)
            sleep 0.2
        else
            sidecar "$i" --join "127.0.0.1:$GPORT" $(mesh_args "$i")
        fi
        sleep 0.02
    done
    LAST_START=$(tod)
    wait_alive "$N" 120
    say "mesh: every sidecar saw all $N alive ${CONVERGED}s after the last start"
    put mesh converge_s "$CONVERGED"
    cp "$T/alive.txt" "$T/alive_mesh.txt"
    MESH_LAST_START=$LAST_START # the proxy case sets LAST_START again

    say "mesh: settling 10 s, then idle CPU over ${IDLE}s"
    sleep 10
    idle_cpu mesh "${PIDS[@]}"
    mem_stats mesh "${PIDS[@]}"
    say "mesh: idle CPU median $(get mesh cpu_pct_median)% of a core, RSS median $(get mesh rss_mib_median) MiB, fds median $(get mesh fds_median)"

    deliver mesh "$N"

    victim=$((N / 2))
    id=$(node_id "$victim")
    say "mesh: kill -9 of sidecar $victim ($id)"
    killed_at=$(tod)
    kill -KILL "${PIDS[victim]}"
    wait "${PIDS[victim]}" 2>/dev/null
    PIDS[victim]=""
    local start logs=()
    start=$(date +%s)
    for ((i = 0; i < N; i++)); do [ "$i" != "$victim" ] && logs+=("$T/s$i.log"); done
    while :; do
        for f in "${logs[@]}"; do
            awk -v id="$id" '$0 ~ " event=member " && $0 ~ "node_id=" id && / state=dead / {
                split($1, t, "T"); split(t[2], h, ":")
                printf "%.3f\n", h[1] * 3600 + h[2] * 60 + h[3]; found = 1; exit }
                END { if (!found) print "-" }' "$f"
        done >"$T/dead.txt"
        grep -q -- - "$T/dead.txt" || break
        if [ $(($(date +%s) - start)) -ge 60 ]; then
            say "mesh: $(grep -c -- - "$T/dead.txt") sidecars never saw it dead"
            break
        fi
        sleep 0.5
    done
    if grep -q -- - "$T/dead.txt"; then
        put mesh dead_s "-"
    else
        put mesh dead_s "$(awk -v s="$killed_at" '{ d = $1 - s; if (d > m) m = d } END { printf "%.2f", m }' "$T/dead.txt")"
    fi
    awk -v s="$killed_at" '$1 != "-" { printf "%.3f\n", $1 - s }' "$T/dead.txt" | sort -n >"$T/dead_mesh.txt"
    say "mesh: seen dead by all in $(get mesh dead_s)s"

    # Rolling restart: every tenth sidecar but the seed and the victim.
    local restart=() stable=()
    for ((i = 1; i < N; i++)); do
        [ "$i" = "$victim" ] && continue
        if [ $((i % 10)) = 5 ]; then restart+=("$i"); else stable+=("$T/s$i.sock"); fi
    done
    say "mesh: rolling restart of ${#restart[@]} sidecars under 20 msgs/s to ${#stable[@]}+1 subscribers"
    local secs=$((${#restart[@]} * 3 + 15))
    "$B/tests/tools/rc_scale" traffic "$secs" 20 "$T/s0.sock" "$T/s0.sock" "${stable[@]}" \
        >"$T/traffic.out" 2>"$T/traffic.err" &
    local tpid=$!
    for _ in $(seq 600); do
        grep -q subscribed "$T/traffic.out" && break
        kill -0 "$tpid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2
    for i in "${restart[@]}"; do
        kill -TERM "${PIDS[i]}"
        wait "${PIDS[i]}" 2>/dev/null
        # shellcheck disable=SC2046
        sidecar "$i" --join "127.0.0.1:$GPORT" $(mesh_args "$i")
        sleep 2
    done
    wait "$tpid"
    local line
    line=$(grep sent= "$T/traffic.out")
    say "mesh: traffic: ${line:-failed: $(tail -1 "$T/traffic.err")}"
    put mesh restarted "${#restart[@]}"
    put mesh traffic_sent "$(sed -nE 's/.*sent=([0-9]+).*/\1/p' <<<"$line")"
    put mesh traffic_lost "$(sed -nE 's/.*lost=([0-9]+).*/\1/p' <<<"$line")"
    put mesh traffic_dups "$(sed -nE 's/.*duplicates=([0-9]+).*/\1/p' <<<"$line")"
    stop_all
    mkdir -p "$T/mesh-logs"
    mv "$T"/s*.log "$T/mesh-logs/"
}

# --- proxy --------------------------------------------------------------

case_proxy() {
    local i p1 p2
    say "proxy: two proxies, $PN sidecars from one seed"
    GPORT=$(free_base $((PN + 10)))
    p1=$((GPORT + PN + 2))
    p2=$((p1 + 2))
    "$B/roomcastd" proxy --frontend "tcp://127.0.0.1:$p1" 2>>"$T/proxy1.log" &
    EXTRA+=($!)
    "$B/roomcastd" proxy --frontend "tcp://127.0.0.1:$p2" 2>>"$T/proxy2.log" &
    EXTRA+=($!)
    local proxies=("${EXTRA[@]}")
    for ((i = 0; i < PN; i++)); do
        : >"$T/s$i.log"
        if [ "$i" = 0 ]; then
            sidecar 0 --proxy "tcp://127.0.0.1:$p1" --proxy "tcp://127.0.0.1:$p2"
            sleep 0.2
        else
            sidecar "$i" --join "127.0.0.1:$GPORT" --proxy "tcp://127.0.0.1:$p1" \
                --proxy "tcp://127.0.0.1:$p2"
        fi
        sleep 0.02
    done
    LAST_START=$(tod)
    # A proxy (or the lot) that balloons would take the machine, shared
    # with others, with it: over the caps the case ends, marked not met.
    (
        while sleep 1; do
            total=0
            for p in "${proxies[@]}"; do
                r=$(rss_kib "$p")
                total=$((total + ${r:-0}))
                if [ "${r:-0}" -gt $((RSS_CAP * 1024)) ]; then
                    echo "proxy $p over ${RSS_CAP} MiB: stopped" >>"$T/proxy_capped"
                    kill -KILL "$p"
                fi
            done
            for p in "${PIDS[@]}"; do
                [ -n "$p" ] && r=$(rss_kib "$p") && total=$((total + ${r:-0}))
            done
            if [ "$total" -gt $((TOTAL_CAP * 1024)) ]; then
                echo "sidecars and proxies over ${TOTAL_CAP} MiB in all: stopped" >>"$T/proxy_capped"
                kill -KILL "${proxies[@]}" "${PIDS[@]}" 2>/dev/null
            fi
        done
    ) &
    local watchdog=$!
    wait_alive "$PN" 120
    put proxy converge_s "$CONVERGED"
    say "proxy: every sidecar saw all $PN alive ${CONVERGED}s after the last start"
    sleep 10
    # the proxies' CPU over the same idle window as the sidecars'
    local p t0=() n=1
    for p in "${proxies[@]}"; do t0+=("$(ticks "$p")"); done
    idle_cpu proxy "${PIDS[@]}"
    for p in "${proxies[@]}"; do
        put proxy "proxy${n}_cpu_pct" "$(awk -v d=$(($(ticks "$p") - t0[n - 1])) -v hz="$(getconf CLK_TCK)" -v s="$IDLE" 'BEGIN { printf "%.2f", d / hz / s * 100 }')"
        n=$((n + 1))
    done
    mem_stats proxy "${PIDS[@]}"
    deliver proxy "$PN"
    # the proxies' RSS after the delivery
    n=1
    for p in "${proxies[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            put proxy "proxy${n}_rss_mib" "$(awk -v r="$(rss_kib "$p")" 'BEGIN { printf "%.1f", r / 1024 }')"
        else
            put proxy "proxy${n}_rss_mib" "-"
        fi
        n=$((n + 1))
    done
    if [ -f "$T/proxy_capped" ]; then
        say "proxy: $(sort -u "$T/proxy_capped" | tr '\n' ' ')"
        put proxy capped 1
    else
        put proxy capped 0
    fi
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    stop_all
    # what each proxy forwarded and what its full links dropped, from its
    # last log line
    for n in 1 2; do
        put proxy "proxy${n}_messages" "$(sed -nE 's/.*proxy_stopped.* messages=([0-9]+).*/\1/p' "$T/proxy$n.log" | tail -1)"
        put proxy "proxy${n}_dropped" "$(sed -nE 's/.*proxy_stopped.* dropped=([0-9]+).*/\1/p' "$T/proxy$n.log" | tail -1)"
    done
}

for c in $CASES; do
    case $c in
        mesh) case_mesh ;;
        proxy) case_proxy ;;
        *) die "unknown case $c" ;;
    esac
done

# --- table, JSON, chart ----------------------------------------------------

# row LABEL TARGET VALUE TEST: TEST is an awk condition on v ("" = none)
row() {
    local verdict
    if [ -z "$4" ]; then
        verdict=""
    elif [ -z "$3" ] || [ "$3" = "-" ]; then
        verdict="**not met**"
    elif awk -v v="$3" "BEGIN { exit !($4) }"; then
        verdict="met"
    else
        verdict="**not met**"
    fi
    printf '| %s | %s | %s | %s |\n' "$1" "$2" "${3:--}" "$verdict"
}

{
    echo "make scale, $(date -u +%Y-%m-%d), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| measure | target | measured | |"
    echo "|---|---|---|---|"
    if [[ " $CASES " == *" mesh "* ]]; then
        row "mesh, $N sidecars: all see all alive after the last start (s)" "<= 3" "$(get mesh converge_s)" "v <= 3"
        row "mesh: kill -9 seen dead by all (s)" "<= 6" "$(get mesh dead_s)" "v <= 6"
        row "mesh: idle CPU per sidecar, median (% of a core)" "<= 0.3" "$(get mesh cpu_pct_median)" "v <= 0.3"
        row "mesh: idle CPU per sidecar, max (% of a core)" "" "$(get mesh cpu_pct_max)" ""
        row "mesh: idle CPU, all sidecars (% of a core)" "" "$(get mesh cpu_pct_total)" ""
        row "mesh: RSS per sidecar, median / max (MiB)" "<= 12" "$(get mesh rss_mib_median) / $(get mesh rss_mib_max)" ""
        row "mesh: RSS per sidecar, max (MiB)" "<= 12" "$(get mesh rss_mib_max)" "v <= 12"
        row "mesh: descriptors per sidecar, median / max" "" "$(get mesh fds_median) / $(get mesh fds_max)" ""
        row "mesh: room message delivered to remote subscribers (of $(get mesh expected))" "all" "$(get mesh delivered)" "v == $(get mesh expected)"
        row "mesh: delivery spread first-to-last / publish-to-last (ms)" "" "$(get mesh spread_ms) / $(get mesh last_ms)" ""
        row "mesh: subscriptions not confirmed everywhere within 60 s" "" "$(get mesh unconfirmed)" ""
        row "mesh: rolling restart of $(get mesh restarted): lost between sidecars that stayed up (of $(get mesh traffic_sent) x subscribers)" "0" "$(get mesh traffic_lost)" "v == 0"
        row "mesh: rolling restart: duplicates" "0" "$(get mesh traffic_dups)" "v == 0"
    fi
    if [[ " $CASES " == *" proxy "* ]]; then
        row "proxy, $PN sidecars, 2 proxies: all see all alive after the last start (s)" "converge" "$(get proxy converge_s)" "v >= 0"
        row "proxy: room message delivered to remote subscribers (of $(get proxy expected))" "all" "$(get proxy delivered)" "v == $(get proxy expected)"
        row "proxy: delivery spread first-to-last / publish-to-last (ms)" "" "$(get proxy spread_ms) / $(get proxy last_ms)" ""
        row "proxy: subscriptions not confirmed everywhere within 60 s" "" "$(get proxy unconfirmed)" ""
        row "proxy: RSS of proxy 1 / 2 (MiB)" "<= 64 each" "$(get proxy proxy1_rss_mib) / $(get proxy proxy2_rss_mib)" ""
        row "proxy: RSS of proxy 1 (MiB)" "<= 64" "$(get proxy proxy1_rss_mib)" "v <= 64"
        row "proxy: RSS of proxy 2 (MiB)" "<= 64" "$(get proxy proxy2_rss_mib)" "v <= 64"
        row "proxy: idle CPU of proxy 1 / 2 (% of a core)" "reported" "$(get proxy proxy1_cpu_pct) / $(get proxy proxy2_cpu_pct)" ""
        row "proxy: messages forwarded by proxy 1 / 2, whole run" "" "$(get proxy proxy1_messages) / $(get proxy proxy2_messages)" ""
        row "proxy: of them dropped by a full link (--hwm), proxy 1 / 2" "" "$(get proxy proxy1_dropped) / $(get proxy proxy2_dropped)" ""
        row "proxy: idle CPU per sidecar, median (% of a core)" "" "$(get proxy cpu_pct_median)" ""
        row "proxy: stopped early by the memory caps (1 = yes)" "0" "$(get proxy capped)" "v == 0"
        row "proxy: RSS per sidecar, median / max (MiB)" "" "$(get proxy rss_mib_median) / $(get proxy rss_mib_max)" ""
        row "proxy: descriptors per sidecar, median / max" "" "$(get proxy fds_median) / $(get proxy fds_max)" ""
    fi
    echo
    echo "Sidecar flags beyond the defaults: ${SCALE_SWIM_FLAGS:-none}."
} >"$OUT/table.md"
cat "$OUT/table.md"

awk 'BEGIN { printf "{" }
     { if (!($1 in seen)) { if (n++) printf "},"; printf "\n  \"%s\": {", $1; seen[$1] = 1; m = 0 }
       v = $3; if (v !~ /^-?[0-9.]+$/) v = "null"
       printf "%s\"%s\": %s", (m++ ? ", " : ""), $2, v }
     END { if (n) printf "}"; printf "\n}\n" }' "$RESULTS" >"$OUT/results.json"

if [ -f "$T/alive_mesh.txt" ]; then
    awk -v s="$MESH_LAST_START" '$1 != "-" { d = $1 - s; printf "%.3f\n", d < 0 ? 0 : d }' "$T/alive_mesh.txt" | sort -n >"$T/a.txt"
    paste -d' ' <(awk '{ print NR, $1 }' "$T/a.txt") \
        <(awk '{ print $1 }' "$T/dead_mesh.txt" 2>/dev/null) >"$OUT/mesh_times.dat"
    gnuplot -e "datafile='$OUT/mesh_times.dat'; outfile='$OUT/scale.png'; n=$N" \
        tests/scale/scale.gp 2>/dev/null || say "gnuplot failed"
fi
say "wrote $OUT/results.json, $OUT/table.md, $OUT/scale.png"
