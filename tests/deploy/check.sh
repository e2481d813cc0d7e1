#!/bin/bash
# Checks of deploy/ (make check runs it after the C suites; it also runs
# alone: tests/deploy/check.sh). Offline apart from installing its tools:
#   kubernetes/  renders with kubectl kustomize (the base, the example app,
#                the host-network, existing-secret, per-pod and proxy-mode
#                variants, the monitoring kit); every object validates against the
#                Kubernetes API schemas and has no unknown field
#                (kubernetes-models + TypeScript, validate.mjs); selectors,
#                restart policies and limits are sound; the properties the
#                deployment promises hold (the per-pod variant meets Pod
#                Security "restricted"); the sidecar's settings start a
#                real roomcastd (smoke.mjs)
#   monitoring   promtool check rules and promtool test rules on the
#                PrometheusRule (rules.test.yaml); the dashboard parses and
#                uses only metrics a real roomcastd exports (monitoring.mjs)
#   roomcastctl  --json of every command against two real sidecars, each
#                checked against a JSON Schema (ctl-json.mjs)
#   docker/      Dockerfile lint and rules (dockerfile.mjs), RUN scripts
#                through shellcheck
#   systemd/     systemd-analyze verify and security (offline), the units'
#                promises, the env files' settings start a real roomcastd
#                and a real roomcastd proxy (proxy-smoke.mjs)
# Installs what is missing: Debian packages kubernetes-client (kubectl),
# systemd (systemd-analyze), shellcheck, binutils (readelf), prometheus
# (promtool), nodejs and npm
# (only when there is no node/npm at all), then the locked npm packages
# (npm ci, into tests/deploy/node_modules).
# Uses build/release/roomcastd and roomcastctl when built ($ROOMCASTD,
# $ROOMCASTCTL); without them the checks that run it are skipped.
# The last line is "deploy: N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
top=$(pwd)
here=$top/tests/deploy
start=$(date +%s)
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "PASS $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
skip() { echo "SKIP $*"; }
finish() {
    echo "deploy: took $(($(date +%s) - start)) s"
    echo "deploy: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}
# Run a node checker; count its PASS and FAIL lines.
run_node() {
    local out rc p f
    out=$(cd "$here" && node "$@" 2>&1)
    rc=$?
    echo "$out"
    p=$(grep -c '^PASS ' <<<"$out")
    f=$(grep -c '^FAIL ' <<<"$out")
    pass=$((pass + p))
    fail=$((fail + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        bad "node $1 exited $rc without a result"
    fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- tools -------------------------------------------------------------------

need=""
command -v kubectl >/dev/null 2>&1 || need="$need kubernetes-client"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
command -v readelf >/dev/null 2>&1 || need="$need binutils"
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
    # shellcheck disable=SC2086
    tests/deps.sh $need || bad "installing the Debian packages:$need"
fi
for tool in kubectl systemd-analyze shellcheck promtool node npm; do
    command -v "$tool" >/dev/null 2>&1 || bad "$tool is not installed"
done
if ! command -v node >/dev/null 2>&1; then finish; fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    bad "Node.js $(node --version) is too old: 18 or newer is needed"
    finish
fi

# npm ci when node_modules does not match package-lock.json (its hash is
# kept in node_modules after a successful install)
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
have=$(cat "$here/node_modules/.roomcast-lock" 2>/dev/null)
if [ "$want" != "$have" ]; then
    echo "npm ci (tests/deploy)"
    if (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
        echo "$want" >"$here/node_modules/.roomcast-lock"
    else
        bad "npm ci in tests/deploy (the npm registry must be reachable)"
        finish
    fi
fi

ROOMCASTD=${ROOMCASTD:-$top/build/release/roomcastd}
ROOMCASTCTL=${ROOMCASTCTL:-$top/build/release/roomcastctl}
HOLD_APP=${HOLD_APP:-$top/build/release/tests/tools/hold_app}
help=""
proxy_help=""
if [ -x "$ROOMCASTD" ] && [ -x "$ROOMCASTCTL" ]; then
    help=$tmp/roomcastd-help.txt
    "$ROOMCASTD" --help >"$help" 2>&1 || help=""
    proxy_help=$tmp/roomcastd-proxy-help.txt
    "$ROOMCASTD" proxy --help >"$proxy_help" 2>&1 || proxy_help=""
fi

# --- kubernetes ----------------------------------------------------------------

kv=$(kubectl version --client 2>/dev/null | grep -Eo 'v[0-9]+\.[0-9]+\.[0-9]+' | head -n2 | paste -sd/)
echo "== kubernetes (kubectl/kustomize ${kv:-unknown})"
# A copy, with a throwaway key: kustomize reads cluster.key from the base,
# and a developer's real key must not end up in a test file.
cp -r deploy/kubernetes "$tmp/base"
rm -f "$tmp/base/cluster.key"
if kubectl kustomize "$tmp/base" >/dev/null 2>&1; then
    bad "kustomize renders the base without cluster.key (no key must mean no deploy)"
else
    ok "kustomize refuses the base without cluster.key"
fi
if git rev-parse --git-dir >/dev/null 2>&1; then
    if git check-ignore -q deploy/kubernetes/cluster.key; then
        ok "deploy/kubernetes/cluster.key is git-ignored"
    else
        bad "deploy/kubernetes/cluster.key is not git-ignored: a key could be committed"
    fi
else
    skip "cluster.key git-ignored: not a git work tree"
fi
printf '%064d\n' 0 >"$tmp/base/cluster.key"
chmod 600 "$tmp/base/cluster.key"
# The host-network variant, as the README tells users to apply it: an
# overlay outside the base. bases/patchesStrategicMerge: the only syntax
# that both Debian's kubectl (1.20, kustomize 2.0) and current ones read.
mkdir -p "$tmp/hostnetwork"
cp deploy/kubernetes/variants/hostnetwork.yaml "$tmp/hostnetwork/"
printf 'bases:\n  - ../base\npatchesStrategicMerge:\n  - hostnetwork.yaml\n' \
    >"$tmp/hostnetwork/kustomization.yaml"
rendered=1
# The per-pod variant and existing-secret need no key file: rendered from
# the repository itself, so a key lying next to them would show.
for r in "base:$tmp/base" "example:$tmp/base/example-app" "hostnetwork:$tmp/hostnetwork" \
    "existing-secret:deploy/kubernetes/variants/existing-secret" \
    "per-pod:deploy/kubernetes/variants/per-pod" "monitoring:deploy/kubernetes/monitoring" \
    "proxy-mode:deploy/kubernetes/variants/proxy-mode"; do
    name=${r%%:*}
    dir=${r#*:}
    if kubectl kustomize "$dir" >"$tmp/$name.yaml" 2>"$tmp/$name.err"; then
        ok "kubectl kustomize renders $name ($(grep -c '^kind:' "$tmp/$name.yaml") objects)"
    else
        bad "kubectl kustomize $name: $(grep -v Warning "$tmp/$name.err" | head -3)"
        rendered=0
    fi
done
if [ "$rendered" -eq 1 ]; then
    args=(--emit-env "$tmp/env.json" --emit-proxy-env "$tmp/proxy-env.json")
    [ -n "$help" ] && args+=(--help-file "$help")
    [ -n "$proxy_help" ] && args+=(--proxy-help-file "$proxy_help")
    for name in base example hostnetwork existing-secret per-pod monitoring proxy-mode; do
        args+=("$name=$tmp/$name.yaml")
    done
    run_node validate.mjs "${args[@]}"
    if [ -n "$help" ] && [ -s "$tmp/env.json" ]; then
        run_node smoke.mjs "$ROOMCASTD" "$ROOMCASTCTL" "$help" k8s "$tmp/env.json"
    else
        skip "k8s sidecar settings start roomcastd: no roomcastd build"
    fi
    if [ -n "$proxy_help" ] && [ -s "$tmp/proxy-env.json" ]; then
        run_node proxy-smoke.mjs "$ROOMCASTD" k8s "$tmp/proxy-env.json"
    else
        skip "k8s proxy settings start roomcastd proxy: no roomcastd build"
    fi
fi

# --- roomcastctl --json, monitoring ----------------------------------------------

echo "== roomcastctl --json"
if [ -n "$help" ] && [ -x "$HOLD_APP" ]; then
    run_node ctl-json.mjs "$ROOMCASTD" "$ROOMCASTCTL" "$HOLD_APP" --metrics-out "$tmp/metrics.txt"
else
    skip "roomcastctl --json schemas: no roomcastd, roomcastctl or tests/tools/hold_app build"
fi

echo "== monitoring (promtool $(promtool --version 2>/dev/null | head -n1 | awk '{print $3}'))"
if [ -s "$tmp/monitoring.yaml" ] && command -v promtool >/dev/null 2>&1; then
    # promtool reads plain rule files: the PrometheusRule's spec
    mkdir -p "$tmp/rules"
    (cd "$here" && node -e '
        const { parseAllDocuments } = require("yaml");
        const fs = require("fs");
        const docs = parseAllDocuments(fs.readFileSync(process.argv[1], "utf8")).map((d) => d.toJS());
        const rule = docs.find((o) => o && o.kind === "PrometheusRule");
        fs.writeFileSync(process.argv[2], JSON.stringify(rule.spec, null, 1));
    ' "$tmp/monitoring.yaml" "$tmp/rules/roomcast-rules.yaml") ||
        bad "the PrometheusRule's spec could not be written out for promtool"
    cp "$here/rules.test.yaml" "$tmp/rules/"
    if out=$(cd "$tmp/rules" && promtool check rules roomcast-rules.yaml 2>&1); then
        ok "promtool check rules: $(grep -o '[0-9]* rules found' <<<"$out")"
    else
        bad "promtool check rules: $out"
    fi
    if out=$(cd "$tmp/rules" && promtool test rules rules.test.yaml 2>&1); then
        ok "promtool test rules: every alert fires and stays quiet as rules.test.yaml expects"
    else
        bad "promtool test rules:"
        echo "$out" | head -40
    fi
    # the tests must be able to fail: a rule that never fires
    sed -i 's/> 0.05/> 1e9/' "$tmp/rules/roomcast-rules.yaml"
    if (cd "$tmp/rules" && promtool test rules rules.test.yaml >/dev/null 2>&1); then
        bad "promtool test rules passed with the wrong-key rule disabled (self-test)"
    else
        ok "promtool test rules fails when the wrong-key rule cannot fire (self-test)"
    fi
    args=(deploy/kubernetes/monitoring/dashboards/roomcast.json "$tmp/monitoring.yaml" "$here/rules.test.yaml")
    [ -s "$tmp/metrics.txt" ] && args+=("$tmp/metrics.txt")
    run_node monitoring.mjs "${args[@]/#deploy/$top/deploy}"
else
    bad "monitoring: not checked (no promtool, or the kit did not render)"
fi

# --- docker --------------------------------------------------------------------

echo "== docker"
if [ -s "$tmp/base.yaml" ]; then
    run_node dockerfile.mjs "$top/deploy/docker/Dockerfile" "$top" "$tmp/base.yaml" "$tmp/run" \
        "$([ -n "$help" ] && echo "$ROOMCASTD")"
    if command -v shellcheck >/dev/null 2>&1 && ls "$tmp"/run/*.sh >/dev/null 2>&1; then
        if out=$(shellcheck -s sh "$tmp"/run/*.sh 2>&1); then
            ok "Dockerfile: every RUN script passes shellcheck ($(find "$tmp/run" -name '*.sh' | wc -l) scripts)"
        else
            bad "Dockerfile: shellcheck on the RUN scripts:"
            echo "$out" | head -20
        fi
    fi
else
    bad "Dockerfile: not checked (the base did not render)"
fi

# --- systemd -------------------------------------------------------------------

echo "== systemd"
unit=deploy/systemd/roomcastd.service
envfile=deploy/systemd/roomcastd.env
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants ExecStart to exist: point it at a real binary; the path
    # the unit names is checked below.
    exe=/bin/true
    [ -n "$help" ] && exe=$ROOMCASTD
    mkdir -p "$tmp/systemd"
    sed "s|^ExecStart=/usr/local/bin/roomcastd|ExecStart=$exe|" "$unit" >"$tmp/systemd/roomcastd.service"
    # verify returns 0 on warnings such as an unknown key: any output fails
    if out=$(cd "$tmp" && systemd-analyze verify --man=no "$tmp/systemd/roomcastd.service" 2>&1) &&
        [ -z "$out" ]; then
        ok "systemd-analyze verify roomcastd.service: clean"
    else
        bad "systemd-analyze verify roomcastd.service: $out"
    fi
    sed 's/^NoNewPrivileges=/NoNewPrivilege=/' "$tmp/systemd/roomcastd.service" >"$tmp/systemd/typo.service"
    out=$(cd "$tmp" && systemd-analyze verify --man=no "$tmp/systemd/typo.service" 2>&1)
    if grep -q "Unknown key" <<<"$out"; then
        ok "systemd-analyze verify reports a misspelt key (self-test)"
    else
        bad "systemd-analyze verify did not report a misspelt key: $out"
    fi
    # exposure 0 (locked down) to 10 (unsafe); 100 = 10.0
    out=$(systemd-analyze security --offline=true --threshold=20 "$tmp/systemd/roomcastd.service" 2>&1)
    rc=$?
    level=$(grep -o 'Overall exposure level for [^:]*: [0-9.]* [A-Z]*' <<<"$out" | sed 's/.*: //')
    if [ $rc -eq 0 ] && [ -n "$level" ]; then
        ok "systemd-analyze security: exposure $level (at most 2.0 allowed)"
    else
        bad "systemd-analyze security: exposure ${level:-unknown} (at most 2.0 allowed)"
        grep '✗' <<<"$out" | head -20
    fi
fi
key() { sed -n "s/^$1=//p" "$unit" | tail -n1; }
problems=""
[ "$(key ExecStart)" = /usr/local/bin/roomcastd ] ||
    problems="$problems; ExecStart is not /usr/local/bin/roomcastd (make install PREFIX=/usr/local)"
[ "$(key EnvironmentFile)" = /etc/roomcast/roomcastd.env ] ||
    problems="$problems; EnvironmentFile is not /etc/roomcast/roomcastd.env"
[ "$(key RuntimeDirectory)" = roomcast ] || problems="$problems; RuntimeDirectory is not roomcast"
sock=$(sed -n 's/^ROOMCAST_SOCKET=//p' "$envfile" | tail -n1)
[ -n "$sock" ] || sock=$(key Environment=ROOMCAST_SOCKET)
[ -n "$sock" ] || sock=$(sed -n 's/^Environment=ROOMCAST_SOCKET=//p' "$unit" | tail -n1)
case "$sock" in
/run/roomcast/*) ;;
*) problems="$problems; the socket ($sock) is not in the RuntimeDirectory /run/roomcast" ;;
esac
for k in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    PrivateDevices=yes RestrictSUIDSGID=yes CapabilityBoundingSet= MemoryDenyWriteExecute=yes; do
    grep -qx "$k" "$unit" || problems="$problems; no $k"
done
grep -qx 'DynamicUser=yes' "$unit" || grep -Eq '^User=[a-z]' "$unit" ||
    problems="$problems; runs as root (no DynamicUser=yes or User=)"
stop=$(key TimeoutStopSec | tr -d s)
shutdown=$(sed -n 's/^#\?ROOMCAST_SHUTDOWN_TIMEOUT=//p' "$envfile" | tail -n1)
shutdown=${shutdown:-5000}
[ -n "$stop" ] && [ $((stop * 1000)) -ge $((shutdown + 5000)) ] ||
    problems="$problems; TimeoutStopSec (${stop:-90}) does not leave 5 s over --shutdown-timeout ($shutdown ms)"
if [ -z "$problems" ]; then
    ok "roomcastd.service: /usr/local/bin, env file, socket in RuntimeDirectory, hardening, stop timeout"
else
    bad "roomcastd.service:${problems#;}"
fi
# The env file: NAME=value lines (systemd's syntax, no export), known names
bad_lines=$(grep -Ev '^\s*(#|$)' "$envfile" | grep -Ev '^ROOMCAST_[A-Z_]+=[^ "'"'"']*$')
if [ -n "$bad_lines" ]; then
    bad "roomcastd.env: not NAME=value: $bad_lines"
elif [ -n "$help" ]; then
    unknown=""
    for name in $(grep -Eo '^#?ROOMCAST_[A-Z_]+' "$envfile" | tr -d '#') \
        $(grep -Eo '^Environment=ROOMCAST_[A-Z_]+' "$unit" | cut -d= -f2); do
        grep -Eq "env ${name}[;)]" "$help" || unknown="$unknown $name"
    done
    if [ -z "$unknown" ]; then
        ok "roomcastd.env and the unit set only options roomcastd knows"
    else
        bad "roomcastd.env / unit: unknown to roomcastd --help:$unknown"
    fi
else
    skip "roomcastd.env option names: no roomcastd build"
fi
if [ -n "$help" ]; then
    run_node smoke.mjs "$ROOMCASTD" "$ROOMCASTCTL" "$help" systemd "$top/$unit" "$top/$envfile"
else
    skip "systemd settings start roomcastd: no roomcastd build"
fi

# The proxy's unit: the same checks, its own promises.
punit=deploy/systemd/roomcast-proxy.service
penv=deploy/systemd/roomcast-proxy.env
if command -v systemd-analyze >/dev/null 2>&1; then
    exe=/bin/true
    [ -n "$help" ] && exe=$ROOMCASTD
    sed "s|^ExecStart=/usr/local/bin/roomcastd|ExecStart=$exe|" "$punit" >"$tmp/systemd/roomcast-proxy.service"
    if out=$(cd "$tmp" && systemd-analyze verify --man=no "$tmp/systemd/roomcast-proxy.service" 2>&1) &&
        [ -z "$out" ]; then
        ok "systemd-analyze verify roomcast-proxy.service: clean"
    else
        bad "systemd-analyze verify roomcast-proxy.service: $out"
    fi
    out=$(systemd-analyze security --offline=true --threshold=20 "$tmp/systemd/roomcast-proxy.service" 2>&1)
    rc=$?
    level=$(grep -o 'Overall exposure level for [^:]*: [0-9.]* [A-Z]*' <<<"$out" | sed 's/.*: //')
    if [ $rc -eq 0 ] && [ -n "$level" ]; then
        ok "systemd-analyze security roomcast-proxy.service: exposure $level (at most 2.0 allowed)"
    else
        bad "systemd-analyze security roomcast-proxy.service: exposure ${level:-unknown} (at most 2.0 allowed)"
    fi
fi
pkey() { sed -n "s/^$1=//p" "$punit" | tail -n1; }
problems=""
[ "$(pkey ExecStart)" = "/usr/local/bin/roomcastd proxy" ] ||
    problems="$problems; ExecStart is not /usr/local/bin/roomcastd proxy"
[ "$(pkey EnvironmentFile)" = /etc/roomcast/roomcast-proxy.env ] ||
    problems="$problems; EnvironmentFile is not /etc/roomcast/roomcast-proxy.env"
for k in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    PrivateDevices=yes RestrictSUIDSGID=yes CapabilityBoundingSet= MemoryDenyWriteExecute=yes DynamicUser=yes; do
    grep -qx "$k" "$punit" || problems="$problems; no $k"
done
grep -q "^ROOMCAST_FRONTEND=tcp://" "$penv" || problems="$problems; the env file sets no ROOMCAST_FRONTEND"
rdir=$(sed -n 's/^Environment=ROOMCAST_RUNTIME_DIR=//p' "$punit")
[ "$rdir" = "/run/$(pkey RuntimeDirectory)" ] ||
    problems="$problems; ROOMCAST_RUNTIME_DIR ($rdir) is not the RuntimeDirectory"
if [ -z "$problems" ]; then
    ok "roomcast-proxy.service: roomcastd proxy, env file, runtime directory, hardening"
else
    bad "roomcast-proxy.service:${problems#;}"
fi
if [ -n "$proxy_help" ]; then
    unknown=""
    for name in $(grep -Eo '^#?ROOMCAST_[A-Z_]+' "$penv" | tr -d '#') \
        $(grep -Eo '^Environment=ROOMCAST_[A-Z_]+' "$punit" | cut -d= -f2); do
        grep -Eq "env ${name}[;)]" "$proxy_help" || unknown="$unknown $name"
    done
    if [ -z "$unknown" ]; then
        ok "roomcast-proxy.env and its unit set only options roomcastd proxy knows"
    else
        bad "roomcast-proxy.env / unit: unknown to roomcastd proxy --help:$unknown"
    fi
    run_node proxy-smoke.mjs "$ROOMCASTD" systemd "$top/$punit" "$top/$penv"
else
    skip "systemd proxy settings start roomcastd proxy: no roomcastd build"
fi

# --- this script ---------------------------------------------------------------

if command -v shellcheck >/dev/null 2>&1; then
    if out=$(shellcheck "$here/check.sh" 2>&1); then
        ok "tests/deploy/check.sh passes shellcheck"
    else
        bad "tests/deploy/check.sh: shellcheck:"
        echo "$out" | head -20
    fi
fi
finish
