#!/bin/bash
# Checks of the documentation (make check runs it; it also runs alone:
# tests/docs/run.sh):
#   man pages    man/gen.sh builds roomcastd(8), roomcastctl(1), roomcast(3)
#                and roomcast(7); each passes mandoc -T lint and groff -ww
#                and renders with man -l
#   drift        the generated blocks of docs/ (the option reference, the
#                proxy's and roomcastctl's usage) equal what the binaries
#                print; every status row of a real sidecar is documented
#   links        every relative link of README.md and docs/ reaches a file
#                and, with #anchor, a heading; README stays a front door
#   node         the documented install command works from a copy of the
#                sources without node_modules (and the plain folder install
#                it replaces does not); index.d.ts type-checks the
#                documented usage (tsc, tests/docs/package.json)
# Uses build/release/roomcastd and roomcastctl ($ROOMCASTD, $ROOMCASTCTL).
# The last line is "docs: N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
top=$(pwd)
here=$top/tests/docs
start=$(date +%s)
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
finish() {
    echo "docs: took $(($(date +%s) - start)) s"
    echo "docs: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}
tmp=$(mktemp -d)
pids=()
cleanup() {
    # shellcheck disable=SC2317 # run by the EXIT trap
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

ROOMCASTD=${ROOMCASTD:-$top/build/release/roomcastd}
ROOMCASTCTL=${ROOMCASTCTL:-$top/build/release/roomcastctl}
if [ ! -x "$ROOMCASTD" ] || [ ! -x "$ROOMCASTCTL" ]; then
    bad "no roomcastd/roomcastctl at $ROOMCASTD (run make first)"
    finish
fi
bin=$tmp/bin
mkdir -p "$bin"
ln -s "$ROOMCASTD" "$bin/roomcastd"
ln -s "$ROOMCASTCTL" "$bin/roomcastctl"

# --- man pages -----------------------------------------------------------------

need=""
command -v mandoc >/dev/null 2>&1 || need="$need mandoc"
command -v groff >/dev/null 2>&1 || need="$need groff-base"
command -v man >/dev/null 2>&1 || need="$need man-db"
# shellcheck disable=SC2086
[ -z "$need" ] || tests/deps.sh $need >/dev/null || bad "installing$need"

if man/gen.sh man "$bin" "$tmp/man" 2>"$tmp/gen.err"; then
    ok "man/gen.sh builds the man pages"
else
    bad "man/gen.sh man: $(head -3 "$tmp/gen.err")"
fi
for page in roomcastd.8 roomcastctl.1 roomcast.3 roomcast.7; do
    f=$tmp/man/$page
    [ -s "$f" ] || { bad "$page was not generated"; continue; }
    out=$(mandoc -T lint -W warning "$f" 2>&1)
    [ -z "$out" ] && ok "mandoc -T lint $page" || bad "mandoc -T lint $page: $out"
    out=$(groff -ww -man -z "$f" 2>&1)
    [ -z "$out" ] && ok "groff -ww $page" || bad "groff -ww $page: $out"
    out=$(MANWIDTH=80 man -l "$f" 2>&1 >"$tmp/$page.txt")
    if [ -z "$out" ] && grep -q '^NAME' "$tmp/$page.txt" &&
        grep -q 'SEE ALSO' "$tmp/$page.txt"; then
        ok "man -l $page renders ($(wc -l <"$tmp/$page.txt") lines)"
    else
        bad "man -l $page: ${out:-no NAME or SEE ALSO section}"
    fi
done
# what each page is made from must show in it
grep -q -- '--queue-budget' "$tmp/roomcastd.8.txt" &&
    grep -q -- '--frontend' "$tmp/roomcastd.8.txt" &&
    grep -q 'keygen --curve' "$tmp/roomcastctl.1.txt" &&
    grep -q 'rc_subscribe_wait' "$tmp/roomcast.3.txt" &&
    grep -q 'THE CONTRACT' "$tmp/roomcast.7.txt" &&
    ok "each page holds its source (options, proxy, commands, API, contract)" ||
    bad "a man page lacks what its source says"
missing=""
nfn=0
for fn in $(sed -n 's/^RC_EXPORT [^(]*[ *]\(rc_[a-z_]*\) *(.*/\1/p' libclient/roomcast.h); do
    nfn=$((nfn + 1))
    grep -q "^   .*\b$fn\b" "$tmp/roomcast.3.txt" || missing="$missing $fn"
done
[ "$nfn" -gt 30 ] && [ -z "$missing" ] &&
    ok "roomcast(3) has a section for each of the $nfn exported functions" ||
    bad "roomcast(3) lacks:$missing (found $nfn functions in roomcast.h)"

# --- drift -------------------------------------------------------------------------

mkdir -p "$tmp/root/docs"
cp docs/*.md "$tmp/root/docs/"
if man/gen.sh docs "$bin" "$tmp/root" 2>"$tmp/gen.err"; then
    for f in configuration.md operations.md; do
        if diff -u "docs/$f" "$tmp/root/docs/$f" >"$tmp/drift.diff"; then
            ok "docs/$f: generated blocks match the binaries"
        else
            bad "docs/$f differs from what the binaries print; run: man/gen.sh docs build/release"
            head -40 "$tmp/drift.diff"
        fi
    done
else
    bad "man/gen.sh docs: $(head -3 "$tmp/gen.err")"
fi
grep -c '^| `--' docs/configuration.md | {
    read -r rows
    opts=$("$ROOMCASTD" --help | grep -c '^  --[a-z]')
    [ "$rows" -eq "$opts" ] && ok "the option reference has all $opts options" ||
        bad "the option reference has $rows rows, --help $opts options"
}

# every row of a real sidecar's status, every query and every metric it
# exports are documented
sock=$tmp/s.sock
for _ in 1 2 3; do # another port if this one is taken
    port=$((20000 + RANDOM % 20000))
    "$ROOMCASTD" --channel docs --socket "$sock" --http "127.0.0.1:$port" \
        2>"$tmp/rcd.log" &
    pids+=($!)
    for _ in $(seq 50); do
        [ -S "$sock" ] || kill -0 "${pids[-1]}" 2>/dev/null || break
        [ -S "$sock" ] && break
        sleep 0.1
    done
    [ -S "$sock" ] && break
done
# GET /metrics, once the HTTP port answers (it opens after the socket)
get_metrics() {
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
    cat <&3
    exec 3<&-
}
for _ in $(seq 50); do
    get_metrics >"$tmp/metrics.txt" 2>/dev/null && break
    sleep 0.1
done
if grep -q '^# TYPE' "$tmp/metrics.txt" 2>/dev/null; then
    missing=""
    metrics=$(awk '$1 == "#" && $2 == "TYPE" { sub(/^roomcast_/, "", $3); print $3 }' "$tmp/metrics.txt")
    for m in $metrics; do
        grep -q "\`${m}[\`{]" docs/operations.md || missing="$missing $m"
    done
    if [ -z "$metrics" ]; then
        bad "no metrics from the sidecar's /metrics (log: $(tail -2 "$tmp/rcd.log"))"
    elif [ -z "$missing" ]; then
        ok "docs/operations.md names all $(wc -w <<<"$metrics") exported metrics"
    else
        bad "metrics not in docs/operations.md:$missing"
    fi
else
    bad "cannot reach the sidecar's HTTP port $port (log: $(tail -2 "$tmp/rcd.log"))"
fi
if "$ROOMCASTCTL" -s "$sock" status >"$tmp/status.txt" 2>&1; then
    missing=""
    while read -r key _; do
        grep -q "\`$key\`" docs/c-api.md || missing="$missing $key"
    done <"$tmp/status.txt"
    [ -z "$missing" ] &&
        ok "docs/c-api.md documents all $(wc -l <"$tmp/status.txt") status rows" ||
        bad "status rows not in docs/c-api.md:$missing"
else
    bad "roomcastctl status: $(head -3 "$tmp/status.txt")"
fi
for q in status topics numsub clients peers members presence peer-add; do
    grep -q "^| \`$q\`\|, \`$q\`" docs/c-api.md || bad "query $q is not in docs/c-api.md"
done

# --- links -------------------------------------------------------------------------

# GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes
anchors() {
    grep '^#' "$1" | sed -e 's/^#* //' | tr '[:upper:]' '[:lower:]' |
        sed -e 's/[^a-z0-9 _-]//g' -e 's/ /-/g'
}
broken=""
nlinks=0
for f in README.md PROTOCOL.md docs/*.md; do
    dir=$(dirname "$f")
    # inline links outside code blocks: ](target)
    while read -r target; do
        nlinks=$((nlinks + 1))
        path=${target%%#*}
        anchor=""
        [ "$path" != "$target" ] && anchor=${target#*#}
        file=$f
        [ -n "$path" ] && file=$dir/$path
        if [ ! -e "$file" ]; then
            broken="$broken $f:$target"
        elif [ -n "$anchor" ] && ! anchors "$file" | grep -qx "$anchor"; then
            broken="$broken $f:$target"
        fi
    done < <(awk '/^```/ { code = !code; next } !code' "$f" |
        grep -o '](\([^)]*\))' | sed -e 's/^](//' -e 's/)$//' |
        grep -v '^[a-z]*://')
done
[ -z "$broken" ] && ok "all $nlinks relative links of README.md, PROTOCOL.md and docs/ resolve" ||
    bad "broken links:$broken"
lines=$(wc -l <README.md)
[ "$lines" -le 300 ] && ok "README.md is a front door ($lines lines)" ||
    bad "README.md has $lines lines (at most 300: move the rest to docs/)"
orphans=""
for page in docs/*.md; do
    grep -q "($page)" README.md || orphans="$orphans $page"
done
[ -z "$orphans" ] && ok "README.md links every docs/ page" ||
    bad "docs pages README.md does not link:$orphans"

# --- node ------------------------------------------------------------------------

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    bad "node and npm are needed (apt-get install nodejs npm)"
    finish
fi
npmq() { timeout 300 npm --no-audit --no-fund --prefer-offline --loglevel=error "$@"; }

# The install command as docs/node.md gives it, from a copy of the sources
# as a fresh clone has them (no node_modules).
cmd=$(grep -o 'npm install --install-links /path/to/roomcast/libclient/node' docs/node.md | head -1)
grep -q "$cmd" README.md || bad "README.md and docs/node.md give different install commands"
mkdir -p "$tmp/src" "$tmp/app" "$tmp/plain"
git ls-files -z libclient/node | xargs -0 cp --parents -t "$tmp/src" 2>/dev/null ||
    cp -r libclient --parents -t "$tmp/src"
rm -rf "$tmp/src/libclient/node/node_modules"
probe='import("roomcast").then(async (m) => { await import("roomcast/crossws"); new m.RoomcastError("ENOTCONN"); console.log("ok"); })'
# the documented words, the path pointing at the copy
read -r -a words <<<"${cmd/\/path\/to\/roomcast/$tmp/src}"
if [ -z "$cmd" ]; then
    bad "docs/node.md gives no 'npm install --install-links' command"
elif (cd "$tmp/app" && echo '{"name":"app","private":true,"type":"module"}' >package.json &&
    npmq "${words[@]:1}" >"$tmp/npm.log" 2>&1 &&
    node -e "$probe" 2>&1 | grep -qx ok); then
    ok "the documented install works from a fresh copy: $cmd"
else
    bad "the documented install ($cmd) does not work: $(tail -3 "$tmp/npm.log")"
fi
# the folder install it replaces links without installing @msgpack/msgpack
(cd "$tmp/plain" && echo '{"name":"plain","private":true,"type":"module"}' >package.json &&
    npmq install "$tmp/src/libclient/node" >/dev/null 2>&1)
if (cd "$tmp/plain" && node -e "$probe" 2>&1) | grep -q ERR_MODULE_NOT_FOUND; then
    ok "a plain 'npm install FOLDER' still fails from a fresh copy (the check can fail)"
else
    bad "a plain 'npm install FOLDER' no longer fails: the check above proves nothing"
fi

# index.d.ts and crossws.d.ts against the documented usage (types.ts)
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
have=$(cat "$here/node_modules/.roomcast-lock" 2>/dev/null)
if [ "$want" != "$have" ]; then
    echo "npm ci (tests/docs)"
    if (cd "$here" && npmq ci); then
        echo "$want" >"$here/node_modules/.roomcast-lock"
    else
        bad "npm ci in tests/docs (the npm registry must be reachable)"
        finish
    fi
fi
# types.ts, then every JavaScript example of README.md and docs/node.md
mkdir -p "$tmp/snippets"
for f in README.md docs/node.md; do
    awk -v out="$tmp/snippets/$(basename "$f" .md)" '
        /^```js$/ { n++; on = 1; next }
        /^```/ { on = 0 }
        on { print > (out "-" n ".ts") }' "$f"
done
nsnip=$(find "$tmp/snippets" -name '*.ts' | wc -l)
cat >"$tmp/tsconfig.json" <<EOF
{
  "extends": "$here/tsconfig.json",
  "compilerOptions": { "typeRoots": ["$here/node_modules/@types"] },
  "files": ["$here/types.ts"],
  "include": ["snippets/*.ts"]
}
EOF
if out=$(node "$here/node_modules/typescript/bin/tsc" -p "$tmp/tsconfig.json" 2>&1); then
    ok "tsc: types.ts and the $nsnip JavaScript examples of the docs type-check against index.d.ts and crossws.d.ts"
else
    bad "tsc: $out"
fi

finish
