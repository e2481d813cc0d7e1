#!/bin/bash
# The daemon's layering, checked from the sources (the Makefile's per-folder
# include paths enforce the folder rules at build time too):
#   1. common/ includes nothing of ours but common/; libclient/ nothing but
#      libclient/; discovery/ nothing but discovery/ and common/.
#   2. A star: the components (server, session, mesh, gossip, presence,
#      ops, fanout) never include each other's headers; only the
#      coordinator (node*.c, node_impl.h) and main see them all.
#   3. No include circle among the daemon's modules (a module is a .c and
#      its .h, with its parts: node_query.c and node_impl.h are node's,
#      swim_codec.c swim's).
# Then it checks itself: a copy of the tree with a forbidden include
# planted must fail. Last line: "layering: N passed, N failed".
#
#   tests/layering.sh            check this tree (and the self-test)
#   tests/layering.sh --tree DIR check DIR only (used by the self-test)
set -u
cd "$(dirname "$0")/.."
top=$PWD
self_test=1
if [ "${1:-}" = "--tree" ]; then
    cd "$2" || exit 2
    self_test=0
fi

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "  ok    $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL  $*"; }

# "file header" for every quoted include of our own sources
includes() {
    grep -H -o '^#include "[^"]*"' "$@" 2>/dev/null |
        sed -E 's/:#include "([^"]*)"/ \1/'
}

# 1. folders
check_folder() { # folder allowed-folders...
    local dir=$1
    shift
    local problems=""
    while read -r file hdr; do
        [ -n "$file" ] || continue
        local found=0
        for a in "$@"; do
            [ -f "$a/$(basename "$hdr")" ] && [ "$(basename "$hdr")" = "$hdr" ] &&
                found=1
        done
        [ $found -eq 1 ] || problems="$problems $file->$hdr"
    done < <(includes "$dir"/*.c "$dir"/*.h)
    if [ -z "$problems" ]; then
        ok "$dir/ includes only $*"
    else
        bad "$dir/ includes what it may not:$problems"
    fi
}
check_folder common common
check_folder libclient libclient
check_folder discovery discovery common

# 2. the star
components="server session mesh gossip presence ops fanout"
problems=""
for c in $components; do
    for f in sidecar/$c.c sidecar/$c.h discovery/$c.c discovery/$c.h; do
        [ -f "$f" ] || continue
        for other in $components; do
            [ "$other" = "$c" ] && continue
            if grep -q "^#include \"$other.h\"" "$f"; then
                problems="$problems $f->$other.h"
            fi
        done
    done
done
if [ -z "$problems" ]; then
    ok "components never include each other ($components)"
else
    bad "a component includes another's header:$problems"
fi

# 3. circles among modules
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
module() {
    local m
    m=$(basename "$1")
    m=${m%.*}
    echo "${m%%_*}" # parts of one module: node_query, swim_codec...
}
while read -r file hdr; do
    [ -n "$file" ] || continue
    a=$(module "$file")
    b=$(module "$hdr")
    [ "$a" != "$b" ] && echo "$a $b"
done < <(includes sidecar/*.[ch] discovery/*.[ch] common/*.[ch] libclient/*.[ch]) |
    sort -u > "$edges"
cycle=$(python3 - "$edges" <<'EOF'
import sys
graph = {}
for line in open(sys.argv[1]):
    a, b = line.split()
    graph.setdefault(a, []).append(b)
state, stack = {}, []
def visit(n):
    state[n] = 1
    stack.append(n)
    for m in graph.get(n, []):
        if state.get(m) == 1:
            return stack[stack.index(m):] + [m]
        if not state.get(m):
            c = visit(m)
            if c:
                return c
    stack.pop()
    state[n] = 2
    return None
for n in sorted(graph):
    if not state.get(n):
        c = visit(n)
        if c:
            print(" -> ".join(c))
            break
EOF
)
if [ -z "$cycle" ]; then
    ok "no include circle among $(cut -d' ' -f1 "$edges" | sort -u | wc -l) modules"
else
    bad "include circle: $cycle"
fi

# 4. libroomcast.so exports only the API (-fvisibility=hidden, RC_EXPORT)
so=${ROOMCAST_LIB:-$top/build/release/libroomcast.so}
if [ $self_test -eq 1 ] && [ -f "$so" ]; then
    others=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBR]$/ {print $3}' |
        grep -v '^rc_' | grep -v '^_' | tr '\n' ' ')
    n=$(nm -D --defined-only "$so" | awk '$2 == "T"' | grep -c ' rc_')
    if [ -z "$others" ] && [ "$n" -gt 0 ]; then
        ok "libroomcast.so exports only rc_* ($n functions)"
    else
        bad "libroomcast.so exports more than rc_*: $others"
    fi
fi

# the checker must be able to fail: plant a forbidden include in a copy
if [ $self_test -eq 1 ]; then
    tmp=$(mktemp -d)
    cp -r common discovery sidecar libclient "$tmp"/ 2>/dev/null
    rm -rf "$tmp/libclient/node"
    echo '#include "mesh.h"' >> "$tmp/discovery/swim.c"
    echo '#include "server.h"' >> "$tmp/sidecar/mesh.h"
    echo '#include "node.h"' >> "$tmp/common/loop.h"
    out=$("$top/tests/layering.sh" --tree "$tmp" 2>&1)
    rm -rf "$tmp"
    n=$(echo "$out" | grep -c '^  FAIL')
    if [ "$n" -ge 3 ]; then
        ok "self-test: planted includes caught ($n failures)"
    else
        bad "self-test: planted includes not caught: $out"
    fi
fi

echo "layering: $pass passed, $fail failed"
[ $fail -eq 0 ]
