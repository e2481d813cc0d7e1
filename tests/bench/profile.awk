# profile.awk: where a sidecar's instructions go, from
# `callgrind_annotate --threshold=100 --auto=no FILE` (make bench).
#   awk -v count=MESSAGES -v top=N -f tests/bench/profile.awk
# Prints instructions per message by component (libsodium, msgpack,
# malloc, libzmq, roomcastd, ...) and the top N functions by self cost.
# With -v inclusive=1 (and callgrind_annotate --inclusive=yes): the top N
# roomcastd functions by inclusive cost, the relay path's steps.
#
# The counters were zeroed while the event loop and the ZeroMQ I/O thread
# were running: callgrind_annotate then shows the frames that were on the
# stack (main, loop_run, thread entry points) with their thread's whole
# cost. Those lines (within 1% of a thread total) are left out.

function component(fn, obj) {
    if (obj ~ /libsodium/) return "libsodium (seal/open, routing-key hashes)"
    if (obj ~ /libmsgpack/) return "msgpack (libmsgpackc)"
    if (obj ~ /libzmq/) return "libzmq"
    if (fn ~ /malloc\.c:/) return "malloc/free (glibc)"
    if (fn ~ /printf|libio|stdio/) return "printf family (glibc)"
    if (obj ~ /libc\.so/) return "other glibc (memcpy, memset, ...)"
    if (obj ~ /roomcastd/) return "roomcastd's own code"
    return "other"
}

/^ *[0-9,]+ \(/ {
    v = $1
    gsub(/,/, "", v)
    v += 0
    if ($0 ~ /PROGRAM TOTALS/) { total = v; next }
    line = $0
    sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", line)
    obj = line
    if (match(line, / \[[^]]*\]$/)) {
        obj = substr(line, RSTART + 2, RLENGTH - 3)
        line = substr(line, 1, RSTART - 1)
    }
    n++
    cost[n] = v; fn[n] = line; object[n] = obj
    if (line ~ /\(below main\)|start_thread/) thread[v] = 1
}

END {
    if (!count) count = 1
    if (inclusive) {
        printf "  relay path, roomcastd functions (instructions per message, inclusive):\n"
        for (i = 1; i <= n && shown_fn < top; i++) {
            if (object[i] !~ /roomcastd$/ || fn[i] ~ /below main|:main$/) continue
            f = fn[i]
            sub(/^.*\//, "", f)
            printf "    %8.0f  %4.1f%%  %s\n", cost[i] / count, 100 * cost[i] / total, f
            shown_fn++
        }
        exit
    }
    for (i = 1; i <= n; i++) {
        skip[i] = 0
        for (t in thread) {
            if (cost[i] >= 0.99 * t && cost[i] <= 1.01 * t) skip[i] = 1
        }
        if (skip[i]) continue
        c = component(fn[i], object[i])
        bycomp[c] += cost[i]
        counted += cost[i]
    }
    printf "  by component (instructions per message, self cost):\n"
    # simple selection sort, largest first
    while (1) {
        best = ""
        for (c in bycomp) if (!(c in shown) && (best == "" || bycomp[c] > bycomp[best])) best = c
        if (best == "") break
        shown[best] = 1
        printf "    %8.0f  %4.1f%%  %s\n", bycomp[best] / count, 100 * bycomp[best] / total, best
    }
    printf "  top %d functions (instructions per message, self cost):\n", top
    shown_fn = 0
    for (i = 1; i <= n && shown_fn < top; i++) {
        if (skip[i]) continue
        f = fn[i]
        sub(/^.*\//, "", f)
        o = object[i]
        sub(/^.*\//, "", o)
        printf "    %8.0f  %4.1f%%  %s [%s]\n", cost[i] / count, 100 * cost[i] / total, f, o
        shown_fn++
    }
}
