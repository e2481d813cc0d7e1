#!/bin/bash
# make demo-socketio: two roomcast sidecars in a mesh (two "hosts"), a
# socket.io server on each with the roomcast adapter, a client on each
# server in room 'lobby'; a room broadcast crosses from one server to the
# other, then an acknowledged serverSideEmit; then everything is stopped.
#
#   examples/socketio/demo.sh BUILD_DIR        (BUILD_DIR: build/release)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-build/release}" 2>/dev/null && pwd) || { echo "socket.io demo: no build dir ${1:-}"; exit 1; }
command -v node >/dev/null 2>&1 || { echo "socket.io demo: Node.js 20 or newer (and npm) is needed on PATH"; exit 1; }

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
        [ $SECONDS -lt $end ] || { echo "socket.io demo: timed out waiting for: $*"; cat "$dir"/*.log; exit 1; }
        sleep 0.1
    done
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# npm ci where node_modules does not match the lock file
npm_ready() {
    local want; want=$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)
    [ "$(cat "$1/node_modules/.roomcast-lock" 2>/dev/null)" = "$want" ] && return 0
    command -v npm >/dev/null 2>&1 || { echo "socket.io demo: npm is needed"; exit 1; }
    (cd "$1" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "socket.io demo: npm ci failed in $1"; exit 1; }
    echo "$want" > "$1/node_modules/.roomcast-lock"
}
say "npm packages (roomcast client, socket.io, socket.io-client)"
npm_ready "$top/libclient/node"
npm_ready "$here"
echo "  ok"

say "two sidecars in a mesh: alpha and beta (channel socketio-demo)"
"$build/roomcastctl" keygen "$dir/cluster.key" >/dev/null
pa=$(free_port); pb=$(free_port)
for host in alpha beta; do
    if [ $host = alpha ]; then me=$pa; other=$pb; else me=$pb; other=$pa; fi
    "$build/roomcastd" --channel socketio-demo --name $host --socket "$dir/$host.sock" \
        --bind "tcp://127.0.0.1:$me" --peer "tcp://127.0.0.1:$other" \
        --key-file "$dir/cluster.key" --heartbeat 200 2>"$dir/$host.log" &
    pids+=($!)
done
one_peer() { "$build/roomcastctl" -s "$dir/$1.sock" status | grep -q '^live_peers *1$'; }
wait_for 10 one_peer alpha
wait_for 10 one_peer beta
echo "  alpha: $dir/alpha.sock, beta: $dir/beta.sock, each hears the other"

say "a socket.io server on each sidecar: new Server(http, { adapter: createAdapter({ socket }) })"
declare -A url
for host in alpha beta; do
    port=$(free_port)
    node "$here/server.mjs" "$host" "$dir/$host.sock" "$port" >"$dir/server-$host.log" 2>&1 &
    pids+=($!)
    url[$host]="http://127.0.0.1:$port"
done
for host in alpha beta; do
    wait_for 15 grep -q 'ready, 2 servers' "$dir/server-$host.log"
    sed 's/^/  /' "$dir/server-$host.log"
done

say "bob on alpha and carol on beta join 'lobby'; bob says hello; bob asks every server who is there"
timeout 20 node "$here/client.mjs" "${url[alpha]}" "${url[beta]}" || {
    echo "socket.io demo: failed"; cat "$dir"/server-*.log; exit 1; }

say "what the servers did"
for host in alpha beta; do
    grep -v 'socket.io on\|ready, 2' "$dir/server-$host.log" | sed 's/^/  /'
done
"$build/roomcastctl" -s "$dir/alpha.sock" status | grep -E '^(env_sent|env_received) ' | sed 's/^/  sidecar alpha /'
"$build/roomcastctl" -s "$dir/beta.sock" status | grep -E '^(env_sent|env_received) ' | sed 's/^/  sidecar beta  /'
say "stopping everything"
