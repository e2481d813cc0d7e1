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

DEMO="crossws demo"
. "$top/examples/lib.sh"
need_node

say "npm packages (roomcast client, crossws, ws)"
npm_ready "$top/libclient/node"
npm_ready "$here"
echo "  ok"

say "two sidecars in a mesh: alpha and beta (channel crossws-demo)"
mesh_pair "$build" crossws-demo

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
    cat "$dir"/server-*.log; die "the message did not cross"; }
"$build/roomcastctl" -s "$dir/alpha.sock" status | grep -E '^(env_sent) ' | sed 's/^/  alpha /'
"$build/roomcastctl" -s "$dir/beta.sock" status | grep -E '^(env_received) ' | sed 's/^/  beta  /'

if [ "$hold" -gt 0 ]; then
    say "open ${url[alpha]}/ and ${url[beta]}/ in a browser; stopping in $hold s (Ctrl-C to stop now)"
    sleep "$hold" & wait $!
fi
say "stopping everything"
