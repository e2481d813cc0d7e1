#!/bin/bash
# make bench-socketio: the same socket.io broadcast through
# @socket.io/redis-adapter and through roomcast/socket.io
# (libclient/node/bench/socketio.mjs). Installs redis-server (Debian) if
# missing and stops the service its package starts; the bench runs its own
# redis-server on 127.0.0.1 and stops it. Prints a Markdown table.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${1:-build/release}
die() { printf 'bench-socketio: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "Node.js 20 or newer (and npm) is needed on PATH"
had_redis=$(dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -c "ok installed")
tests/deps.sh redis-server || die "installing redis-server failed"
if [ "$had_redis" = 0 ] && command -v systemctl >/dev/null &&
    systemctl is-active --quiet redis-server 2>/dev/null; then
    echo "stopping the redis-server service the package started" >&2
    systemctl stop redis-server && systemctl disable --quiet redis-server
fi
[ -x "$B/roomcastd" ] || die "$B/roomcastd is missing: make BUILD=$B"

cd libclient/node || exit 1
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$want" != "$(cat node_modules/.roomcast-lock 2>/dev/null)" ]; then
    timeout 300 npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
    echo "$want" > node_modules/.roomcast-lock
fi
ROOMCASTD=$(cd "../../$B" && pwd)/roomcastd ROOMCASTCTL=$(cd "../../$B" && pwd)/roomcastctl \
    timeout --kill-after=10 900 node bench/socketio.mjs
