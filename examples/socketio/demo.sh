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

DEMO="socket.io demo"
. "$top/examples/lib.sh"
need_node

say "npm packages (roomcast client, socket.io, socket.io-client)"
npm_ready "$top/libclient/node"
npm_ready "$here"
echo "  ok"

say "two sidecars in a mesh: alpha and beta (channel socketio-demo)"
mesh_pair "$build" socketio-demo

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
    cat "$dir"/server-*.log; die "failed"; }

say "what the servers did"
for host in alpha beta; do
    grep -v 'socket.io on\|ready, 2' "$dir/server-$host.log" | sed 's/^/  /'
done
"$build/roomcastctl" -s "$dir/alpha.sock" status | grep -E '^(env_sent|env_received) ' | sed 's/^/  sidecar alpha /'
"$build/roomcastctl" -s "$dir/beta.sock" status | grep -E '^(env_sent|env_received) ' | sed 's/^/  sidecar beta  /'
say "stopping everything"
