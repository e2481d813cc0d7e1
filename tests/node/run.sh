#!/bin/bash
# The Node.js client and crossws driver tests (libclient/node), against the
# real roomcastd of build/release (or $ROOMCASTD / $ROOMCASTCTL). Installs
# the locked npm packages when node_modules is missing or stale. The last
# line is "node: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)
fail() { echo "node: $*" >&2; echo "node: 0 passed, 1 failed"; exit 1; }

command -v node >/dev/null 2>&1 ||
    fail "node is not on PATH: Node.js 20 or newer (and npm) is needed to test libclient/node"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || fail "Node.js $(node --version) is too old: 20 or newer is needed (Debian 12 ships 18)"
export ROOMCASTD=${ROOMCASTD:-$top/build/release/roomcastd}
export ROOMCASTCTL=${ROOMCASTCTL:-$top/build/release/roomcastctl}
[ -x "$ROOMCASTD" ] && [ -x "$ROOMCASTCTL" ] ||
    fail "no roomcastd/roomcastctl at $ROOMCASTD (run make first)"

cd libclient/node || exit 1
# npm ci when node_modules does not match package-lock.json (its hash is
# kept in node_modules after a successful install)
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat node_modules/.roomcast-lock 2>/dev/null)
if [ "$want" != "$have" ]; then
    command -v npm >/dev/null 2>&1 || fail "npm is not installed (apt-get install npm)"
    echo "npm ci (libclient/node)"
    timeout 300 npm ci --no-audit --no-fund --loglevel=error ||
        fail "npm ci failed (the npm registry must be reachable)"
    echo "$want" > node_modules/.roomcast-lock
fi

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
start=$(date +%s)
timeout --kill-after=10 300 node --test --test-concurrency=2 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" test/*.test.js
rc=$?
[ $rc -eq 124 ] && echo "node: tests timed out after 300 s"
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -n1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -n1)
if [ -z "$passed" ] || [ -z "$failed" ]; then
    passed=${passed:-0}
    failed=$(( ${failed:-0} + 1 )) # no summary: the runner did not finish
fi
[ $rc -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "node: took $(( $(date +%s) - start )) s"
echo "node: $passed passed, $failed failed"
[ $rc -eq 0 ] && [ "$failed" -eq 0 ]
