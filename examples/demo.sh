#!/bin/bash
# make demo: start a local roomcastd and three chat apps, show a message
# crossing between them, then stop everything this script started.
set -u
build=${1:-build/release}
dir=$(mktemp -d /tmp/roomcast-demo-XXXXXX)
sock="$dir/roomcast.sock"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { "$build/roomcastctl" -s "$sock" "$@"; }

# wait_for SECONDS COMMAND...: retry COMMAND until it succeeds
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { echo "demo: timed out waiting for: $*"; exit 1; }
        sleep 0.1
    done
}

say "starting roomcastd (channel demo, socket $sock)"
"$build/roomcastd" --channel demo --socket "$sock" 2>"$dir/roomcastd.log" &
pids+=($!)
wait_for 5 ctl status
ctl status | grep -E '^(node_id|channel|health) '

say "bob and carol join room 'lobby' (each is its own app process)"
for who in bob carol; do
    mkfifo "$dir/$who.in"
    "$build/examples/chat" --socket "$sock" --name "$who" --room lobby \
        <"$dir/$who.in" >"$dir/$who.out" 2>"$dir/$who.err" &
    pids+=($!)
    exec {fd}>"$dir/$who.in"   # keep their stdin open
done
numsub2() { ctl numsub --namespace chat lobby | grep -q ' 2$'; }
wait_for 5 numsub2
ctl --namespace chat numsub lobby

say "alice says hello in 'lobby'"
echo "hello everyone, this crossed the sidecar" |
    "$build/examples/chat" --socket "$sock" --name alice --room lobby 2>/dev/null

for who in bob carol; do
    wait_for 5 grep -q 'alice:' "$dir/$who.out"
    printf '%-6s received: %s\n' "$who" "$(cat "$dir/$who.out")"
done

say "bob answers; carol sees it, bob does not get his own message back"
echo "hi alice" >"$dir/bob.in" &
wait_for 5 grep -q 'bob: hi alice' "$dir/carol.out"
printf '%-6s received: %s\n' carol "$(tail -n1 "$dir/carol.out")"
printf '%-6s received: %s\n' bob "$(tail -n1 "$dir/bob.out")"

say "roomcastctl status (counters)"
ctl status | grep -E '^(clients|topics|publishes|deliveries|dropped_slow) '

say "stopping everything (SIGTERM: the sidecar flushes and exits 0)"
kill -TERM "${pids[0]}"
wait "${pids[0]}"; echo "roomcastd exited with status $?"
