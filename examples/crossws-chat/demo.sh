#!/bin/bash
# The crossws chat demo: two roomcast sidecars in a mesh (two "hosts"), a
# crossws chat server attached to each, a scripted WebSocket client showing
# a message crossing from one server to the other, then everything stopped.
#
#   examples/crossws-chat/demo.sh BUILD_DIR        (BUILD_DIR: build/release)
#   HOLD_SECONDS=300 examples/crossws-chat/demo.sh build/release
#       keeps the two servers up that long so a person can open the pages
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-build/release}" 2>/dev/null && pwd) || { echo "crossws demo: no build dir ${1:-}"; exit 1; }
hold=${HOLD_SECONDS:-0}
command -v node >/dev/null 2>&1 || { echo "crossws demo: Node.js 20 or newer (and npm) is needed on PATH"; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { echo "crossws demo: timed out waiting for: $*"; exit 1; }
        sleep 0.1
    done
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# npm ci where node_modules does not match the lock file
npm_ready() {
    local want; want=$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)
    [ "$(cat "$1/node_modules/.roomcast-lock" 2>/dev/null)" = "$want" ] && return 0
    command -v npm >/dev/null 2>&1 || { echo "crossws demo: npm is needed"; exit 1; }
    (cd "$1" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "crossws demo: npm ci failed in $1"; exit 1; }
    echo "$want" > "$1/node_modules/.roomcast-lock"
}
say "npm packages (roomcast client, crossws, ws)"
npm_ready "$top/libclient/node"
npm_ready "$here"
echo "  ok"

say "two sidecars in a mesh: alpha and beta (channel crossws-demo)"
"$build/roomcastctl" keygen "$dir/cluster.key" >/dev/null
pa=$(free_port); pb=$(free_port)
for host in alpha beta; do
    if [ $host = alpha ]; then me=$pa; other=$pb; else me=$pb; other=$pa; fi
    "$build/roomcastd" --channel crossws-demo --name $host --socket "$dir/$host.sock" \
        --bind "tcp://127.0.0.1:$me" --peer "tcp://127.0.0.1:$other" \
        --key-file "$dir/cluster.key" --heartbeat 200 2>"$dir/$host.log" &
    pids+=($!)
done
one_peer() { "$build/roomcastctl" -s "$dir/$1.sock" status | grep -q '^live_peers *1$'; }
wait_for 10 one_peer alpha
wait_for 10 one_peer beta
echo "  alpha: $dir/alpha.sock, beta: $dir/beta.sock, each hears the other"

say "a crossws chat server on each sidecar"
declare -A url
for host in alpha beta; do
    port=$(free_port)
    node "$here/server.js" --port "$port" --socket "$dir/$host.sock" --name "$host" \
        >"$dir/server-$host.log" 2>&1 &
    pids+=($!)
    url[$host]="http://127.0.0.1:$port"
done
for host in alpha beta; do
    wait_for 10 grep -q 'ready: rooms are synced' "$dir/server-$host.log"
    echo "  server $host: ${url[$host]}/   (synced through sidecar $host)"
done

say "a scripted WebSocket client: bob on beta, alice on alpha, room lobby"
timeout 15 node "$here/demo-client.js" "${url[alpha]}" "${url[beta]}" || {
    echo "crossws demo: the message did not cross"; cat "$dir"/server-*.log; exit 1; }
"$build/roomcastctl" -s "$dir/alpha.sock" status | grep -E '^(env_sent) ' | sed 's/^/  alpha /'
"$build/roomcastctl" -s "$dir/beta.sock" status | grep -E '^(env_received) ' | sed 's/^/  beta  /'

if [ "$hold" -gt 0 ]; then
    say "open ${url[alpha]}/ and ${url[beta]}/ in a browser; stopping in $hold s (Ctrl-C to stop now)"
    sleep "$hold" & wait $!
fi
say "stopping everything"
