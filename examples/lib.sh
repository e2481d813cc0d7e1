# examples/lib.sh: what the demo scripts share. Source it after setting
# DEMO (the name errors start with); it sets up a temporary directory $dir,
# a list of started processes $pids stopped on exit (and descriptors $fds
# closed), and these helpers:
#
#   say TEXT...                  a bold section title
#   die TEXT...                  print "$DEMO: TEXT" and exit 1
#   wait_for SECONDS CMD...      retry CMD every 0.1 s until it succeeds
#   free_port                    a free TCP port on 127.0.0.1
#   need_node                    exit unless Node.js 20+ and npm are here
#   npm_ready DIR                npm ci in DIR unless node_modules matches
#                                its package-lock.json
#   mesh_pair BUILD CHANNEL      start sidecars alpha and beta in a mesh on
#                                loopback ($dir/alpha.sock, $dir/beta.sock),
#                                return once each hears the other
dir=$(mktemp -d /tmp/roomcast-demo-XXXXXX)
pids=()
fds=()
demo_cleanup() {
    for fd in "${fds[@]}"; do exec {fd}>&-; done 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap demo_cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "$DEMO: $*"; exit 1; }

wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $end ]; then
            tail -n 5 "$dir"/*.log 2>/dev/null
            die "timed out waiting for: $*"
        fi
        sleep 0.1
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

need_node() {
    command -v node >/dev/null 2>&1 &&
        node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
        die "Node.js 20 or newer (and npm) is needed on PATH"
}

npm_ready() {
    local want; want=$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)
    [ "$(cat "$1/node_modules/.roomcast-lock" 2>/dev/null)" = "$want" ] && return 0
    command -v npm >/dev/null 2>&1 || die "npm is needed"
    (cd "$1" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) ||
        die "npm ci failed in $1"
    echo "$want" > "$1/node_modules/.roomcast-lock"
}

mesh_pair() {
    local build=$1 channel=$2 pa pb host me other
    "$build/roomcastctl" keygen "$dir/cluster.key" >/dev/null || die "keygen failed"
    pa=$(free_port); pb=$(free_port)
    for host in alpha beta; do
        if [ $host = alpha ]; then me=$pa; other=$pb; else me=$pb; other=$pa; fi
        "$build/roomcastd" --channel "$channel" --name $host --socket "$dir/$host.sock" \
            --bind "tcp://127.0.0.1:$me" --peer "tcp://127.0.0.1:$other" \
            --key-file "$dir/cluster.key" --heartbeat 200 2>"$dir/$host.log" &
        pids+=($!)
    done
    for host in alpha beta; do
        wait_for 10 eval "'$build/roomcastctl' -s '$dir/$host.sock' status | grep -q '^live_peers *1$'"
    done
    echo "  alpha: $dir/alpha.sock, beta: $dir/beta.sock, each hears the other"
}
