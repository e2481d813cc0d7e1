#!/bin/bash
# make demo: three sidecars on loopback (three "hosts"), a chat app on each,
# a message crossing hosts, then one host stopped and the others carrying
# on. Stops everything it started.
set -u
build=${1:-build/release}
DEMO=demo
. "$(dirname "$0")/lib.sh"
ctl() { local host=$1; shift; "$build/roomcastctl" -s "$dir/$host.sock" "$@"; }

say "a cluster key for the three sidecars (roomcastctl keygen)"
"$build/roomcastctl" keygen "$dir/cluster.key"

declare -A port gport
for host in alpha beta gamma; do port[$host]=$(free_port); gport[$host]=$(free_port); done
seed="127.0.0.1:${gport[alpha]}"
say "starting three sidecars on loopback: alpha, beta, gamma (channel demo)"
echo "  no peer list: each joins the gossip seed $seed (alpha) and finds the rest"
for host in alpha beta gamma; do
    "$build/roomcastd" --channel demo --name "$host" \
        --socket "$dir/$host.sock" --bind "tcp://127.0.0.1:${port[$host]}" \
        --gossip "127.0.0.1:${gport[$host]}" --join "$seed" \
        --key-file "$dir/cluster.key" --heartbeat 200 --probe-interval 300 \
        --probe-timeout 150 --pushpull-interval 2000 \
        2>"$dir/$host.log" &
    pids+=($!)
    echo "  $host: app socket $dir/$host.sock, data tcp://127.0.0.1:${port[$host]}, gossip 127.0.0.1:${gport[$host]}"
done
two_peers() { ctl "$1" status | grep -q '^live_peers *2$'; }
for host in alpha beta gamma; do wait_for 10 two_peers "$host"; done
ctl alpha members | sed 's/^/  /'

say "bob joins room 'lobby' on beta, carol on gamma"
for who in bob:beta carol:gamma; do
    name=${who%%:*}; host=${who##*:}
    mkfifo "$dir/$name.in"
    "$build/examples/chat" --socket "$dir/$host.sock" --name "$name" --room lobby \
        <"$dir/$name.in" >"$dir/$name.out" 2>"$dir/$name.err" &
    pids+=($!)
    exec {fd}>"$dir/$name.in"   # keep their stdin open
    fds+=($fd)
done
joined() { grep -q joined "$dir/$1.err"; }
wait_for 10 joined bob
wait_for 10 joined carol

say "presence: bob and carol are in 'lobby', as alpha sees it"
two_present() { [ "$(ctl alpha --namespace chat presence lobby | wc -l)" -eq 2 ]; }
wait_for 10 two_present
ctl alpha --namespace chat presence lobby | sed 's/^/  /'

say "alice, on alpha, says hello in 'lobby'"
echo "hello from alpha" |
    "$build/examples/chat" --socket "$dir/alpha.sock" --name alice --room lobby 2>/dev/null
for who in bob:beta carol:gamma; do
    name=${who%%:*}; host=${who##*:}
    wait_for 10 grep -q 'alice: hello from alpha' "$dir/$name.out"
    printf '  %-6s on %-6s received: %s\n' "$name" "$host" "$(tail -n1 "$dir/$name.out")"
done

say "stopping gamma (SIGTERM): it announces its leave; alpha and beta carry on"
kill -TERM "${pids[2]}"; wait "${pids[2]}" 2>/dev/null
echo "  gamma exited with status $?"
gamma_left() { ctl alpha members | grep -q 'name=gamma state=left'; }
wait_for 10 gamma_left
ctl alpha members | grep 'name=gamma' | sed 's/^/  alpha sees: /'
ctl alpha --namespace chat presence lobby | sed 's/^/  presence now: /'
echo "still here?" |
    "$build/examples/chat" --socket "$dir/alpha.sock" --name alice --room lobby 2>/dev/null
wait_for 10 grep -q 'alice: still here' "$dir/bob.out"
printf '  %-6s on %-6s received: %s\n' bob beta "$(tail -n1 "$dir/bob.out")"
one_peer() { ctl alpha status | grep -q '^live_peers *1$'; }
wait_for 10 one_peer
ctl alpha status | grep -E '^(live_peers|readable|writable|env_sent) ' | sed 's/^/  alpha /'
ctl beta status | grep -E '^(env_received|env_undecryptable) ' | sed 's/^/  beta  /'

say "stopping the three sidecars"

# The same cluster idea from Node.js: two crossws chat servers on two
# sidecars (roomcast as crossws's sync backplane), when Node 20+ is here.
if command -v node >/dev/null 2>&1 &&
    node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
    say "crossws: two WebSocket chat servers on two sidecars (examples/crossws-chat)"
    examples/crossws-chat/demo.sh "$build"
else
    say "crossws demo skipped: it needs Node.js 20 or newer (node not found or older)"
fi
