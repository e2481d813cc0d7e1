# report.awk: make bench's figures, from the raw lines run.sh records, as
# one Markdown table (stdout), a JSON file (-v json=FILE) and gnuplot data
# (-v dat=FILE). Each figure is the median of its runs.
#
# Raw lines (one per run):
#   thr SYSTEM SIZE RUN MSGS_PER_S MB_PER_S LOST
#   lat SYSTEM SIZE RUN P50_US P99_US P999_US
#   fan mesh SIZE RUN DELIVERIES_PER_S SPREAD_P50 SPREAD_P99 SPREAD_MAX
#       LAST_P50 LAST_P99 DELIVERED EXPECTED
#   mem KEY RUN KIB          (idle, idle_mesh, idle_mesh_peer, c1000, c10000,
#                            topics100k, topics100k_mesh, topics100k_mesh_peer)
#   cpu KEY RUN INSTRUCTIONS (rc_a, rc_b, rc_e2e, redis: per message)
# Systems: zmq, redis, rc_local, rc_mesh, rc_proxy.

function add(key, v) { vals[key] = (key in vals) ? vals[key] " " v : v }

function median(key,    a, n, i, j, t) {
    if (!(key in vals)) return ""
    n = split(vals[key], a, " ")
    for (i = 2; i <= n; i++) {
        t = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    return a[int((n + 1) / 2)] + 0
}

function runs_json(key,    a, n, i, s) {
    n = split(vals[key], a, " ")
    s = "["
    for (i = 1; i <= n; i++) s = s (i > 1 ? ", " : "") (a[i] + 0)
    return s "]"
}

function commas(x,    s, neg, out) {
    s = sprintf("%.0f", x)
    neg = substr(s, 1, 1) == "-"
    if (neg) s = substr(s, 2)
    out = ""
    while (length(s) > 3) {
        out = "," substr(s, length(s) - 2) out
        s = substr(s, 1, length(s) - 3)
    }
    return (neg ? "-" : "") s out
}

function num(x) { return x == "" ? "null" : x }

# 3 significant figures, thousands separated
function sig3(x,    e) {
    if (x == "") return "-"
    if (x < 1000) return (x < 10) ? sprintf("%.2g", x) : sprintf("%.0f", x)
    e = 1
    while (x / e >= 1000) e *= 10
    return commas(int(x / e + 0.5) * e)
}

function mb(x) { return x == "" ? "-" : (x < 10 ? sprintf("%.1f", x) : sprintf("%.0f", x)) }
function us(x) { return x == "" ? "-" : (x < 100 ? sprintf("%.0f", x) : sig3(x)) }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function size_name(s) { return s == 64 ? "64 B" : (s == 1024 ? "1 KiB" : (s == 65536 ? "64 KiB" : s " B")) }
function mib(kib) { return kib == "" ? "-" : sprintf("%.1f MiB", kib / 1024) }
function met(ok) { return ok ? "met" : "**not met**" }

function row(measure, rc, redis, zmq, r1, r2, target, verdict) {
    printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", measure, rc, redis,
        zmq, r1, r2, target, verdict
}

function target(name, value, limit, ok, unit) {
    ntargets++
    tjson = tjson (ntargets > 1 ? ",\n" : "") sprintf(\
        "    {\"target\": \"%s\", \"value\": %s, \"limit\": %s, \"unit\": \"%s\", \"met\": %s}", \
        name, value == "" ? "null" : value, limit == "" ? "null" : limit, unit, \
        ok ? "true" : "false")
    if (ok) nmet++
}

{
    if ($1 == "thr") { add("thr " $2 " " $3 " msgs", $5); add("thr " $2 " " $3 " mb", $6); add("thr " $2 " " $3 " lost", $7) }
    else if ($1 == "lat") { add("lat " $2 " " $3 " p50", $5); add("lat " $2 " " $3 " p99", $6); add("lat " $2 " " $3 " p999", $7) }
    else if ($1 == "fan") {
        add("fan dps", $5); add("fan s50", $6); add("fan s99", $7); add("fan smax", $8)
        add("fan l50", $9); add("fan l99", $10); add("fan delivered", $11); add("fan expected", $12)
    }
    else if ($1 == "mem") add("mem " $2, $4)
    else if ($1 == "cpu") add("cpu " $2, $4)
}

END {
    split("64 1024 65536", sizes, " ")
    split("rc_local rc_mesh rc_proxy", rcs, " ")
    label["rc_local"] = "local (app, sidecar, app)"
    label["rc_mesh"] = "end to end, mesh"
    label["rc_proxy"] = "end to end, one proxy"

    print "| measure | roomcast | Redis | raw ZeroMQ | roomcast / Redis | roomcast / ZeroMQ | target | |"
    print "|---|---|---|---|---|---|---|---|"

    # throughput
    for (i = 1; i <= 3; i++) {
        s = sizes[i]
        rm = median("thr redis " s " msgs"); zm = median("thr zmq " s " msgs")
        for (k = 1; k <= 3; k++) {
            sys = rcs[k]
            m = median("thr " sys " " s " msgs")
            lost = median("thr " sys " " s " lost")
            cell = sig3(m) " (" mb(median("thr " sys " " s " mb")) ")"
            if (lost > 0) cell = cell " [" sig3(lost) " lost]"
            tg = ""; v = ""
            if (sys != "rc_local" && s == 64) {
                ok1 = (m != "" && rm != "" && m >= 2 * rm)
                ok2 = (m != "" && zm != "" && m >= 0.5 * zm)
                tg = ">= 2x Redis, >= 0.5x ZeroMQ"
                v = met(ok1) ", " met(ok2)
                target(sys " 64 B msgs/s >= 2x Redis", m, 2 * rm, ok1, "msgs/s")
                target(sys " 64 B msgs/s >= 0.5x raw ZeroMQ", m, 0.5 * zm, ok2, "msgs/s")
            }
            if (sys != "rc_local" && s == 1024) {
                ok1 = (m != "" && rm != "" && m >= rm)
                tg = ">= Redis"; v = met(ok1)
                target(sys " 1 KiB msgs/s >= Redis", m, rm, ok1, "msgs/s")
            }
            row(size_name(s) " msgs/s (MB/s), " label[sys], cell,
                sig3(rm) " (" mb(median("thr redis " s " mb")) ")",
                sig3(zm) " (" mb(median("thr zmq " s " mb")) ")",
                ratio(m, rm), ratio(m, zm), tg, v)
        }
    }
    # latency
    for (i = 1; i <= 3; i++) {
        s = sizes[i]
        rp = median("lat redis " s " p99"); zp = median("lat zmq " s " p99")
        for (k = 1; k <= 3; k++) {
            sys = rcs[k]
            p = median("lat " sys " " s " p99")
            tg = ""; v = ""
            if (sys != "rc_local") {
                ok1 = (p != "" && rp != "" && p <= rp)
                tg = "p99 <= Redis"; v = met(ok1)
                target(sys " " size_name(s) " round trip p99 <= Redis", p, rp, ok1, "us")
            }
            row(size_name(s) " round trip p50 / p99 / p99.9 us, " label[sys],
                us(median("lat " sys " " s " p50")) " / " us(p) " / " us(median("lat " sys " " s " p999")),
                us(median("lat redis " s " p50")) " / " us(rp) " / " us(median("lat redis " s " p999")),
                us(median("lat zmq " s " p50")) " / " us(zp) " / " us(median("lat zmq " s " p999")),
                ratio(p, rp) " (p99)", ratio(p, zp) " (p99)", tg, v)
        }
    }
    # fanout
    fd = median("fan delivered"); fe = median("fan expected")
    row("fanout 64 B, 1 publisher, 4 sidecars (mesh) x 50 apps: deliveries/s", \
        sig3(median("fan dps")) (fd < fe ? " [" sig3(fe - fd) " lost]" : ""), "-", "-", "", "", "", "")
    row("fanout, paced: spread first to last delivery p50 / p99 / max us", \
        us(median("fan s50")) " / " us(median("fan s99")) " / " us(median("fan smax")), "-", "-", "", "", "", "")
    row("fanout, paced: publish to last delivery p50 / p99 us", \
        us(median("fan l50")) " / " us(median("fan l99")), "-", "-", "", "", "", "")
    # memory
    idle = median("mem idle"); idlem = median("mem idle_mesh")
    c1 = median("mem c1000"); c10 = median("mem c10000"); tp = median("mem topics100k")
    per_client = (c10 != "" && idle != "") ? (c10 - idle) / 10000 : ""
    per_topic = (tp != "" && idle != "") ? (tp - idle) * 1024 / 100000 : ""
    idlep = median("mem idle_mesh_peer")
    tm = median("mem topics100k_mesh"); tmp = median("mem topics100k_mesh_peer")
    per_topic_m = (tm != "" && idlem != "") ? (tm - idlem) * 1024 / 100000 : ""
    per_topic_p = (tmp != "" && idlep != "") ? (tmp - idlep) * 1024 / 100000 : ""
    ok1 = idle != "" && idle < 8192; ok2 = idlem != "" && idlem < 8192
    ok3 = per_client != "" && per_client < 16
    target("roomcastd idle RSS (no peers) < 8 MiB", idle, 8192, ok1, "KiB")
    target("roomcastd idle RSS (mesh, one peer) < 8 MiB", idlem, 8192, ok2, "KiB")
    target("RSS per idle connected client < 16 KiB", per_client == "" ? "" : sprintf("%.2f", per_client), 16, ok3, "KiB")
    row("roomcastd RSS, idle (no peers)", mib(idle), "-", "-", "", "", "< 8 MiB", met(ok1))
    row("roomcastd RSS, idle (mesh, one peer live)", mib(idlem), "-", "-", "", "", "< 8 MiB", met(ok2))
    row("roomcastd RSS, 1,000 connected clients (1 topic each)", mib(c1), "-", "-", "", "", "", "")
    row("roomcastd RSS, 10,000 connected clients (1 topic each)", mib(c10), "-", "-", "", "", "", "")
    row("RSS per connected client (10,000 vs idle)", per_client == "" ? "-" : sprintf("%.2f KiB", per_client), "-", "-", "", "", "< 16 KiB", met(ok3))
    row("roomcastd RSS, 100,000 subscribed topics (10 clients), a lone sidecar (no peers)", mib(tp), "-", "-", "", "", "", "")
    row("RSS per subscribed topic, a lone sidecar (no peers)", per_topic == "" ? "-" : sprintf("%.0f B", per_topic), "-", "-", "", "", "", "")
    row("RSS per subscribed topic in a mesh of two: the subscribers' sidecar", per_topic_m == "" ? "-" : sprintf("%.0f B", per_topic_m), "-", "-", "", "", "", "")
    row("RSS per subscribed topic in a mesh of two: each peer (holds the subscription)", per_topic_p == "" ? "-" : sprintf("%.0f B", per_topic_p), "-", "-", "", "", "", "")
    # CPU
    e2e = median("cpu rc_e2e"); rr = median("cpu redis")
    row("instructions per relayed message (user space, callgrind), 64 B, end to end mesh: sidecar A + B (Redis: redis-server)", sig3(e2e), sig3(rr), "-", ratio(e2e, rr), "", "", "")
    row("... of which sidecar A (app to mesh: decode, seal, send)", sig3(median("cpu rc_a")), "-", "-", "", "", "", "")
    row("... of which sidecar B (mesh to app: open, dedup, encode)", sig3(median("cpu rc_b")), "-", "-", "", "", "", "")
    printf "\nTargets: %d of %d met. Medians of %d runs%s; MB/s = 10^6 bytes of payload; round trips in microseconds.\n", nmet, ntargets, runs, quick == 1 ? " (BENCH_QUICK: smoke figures)" : ""
    printf "Machine: %s; roomcast %s; %s.\n", machine, commit, date

    # JSON
    printf "{\n  \"date\": \"%s\",\n  \"commit\": \"%s\",\n  \"machine\": \"%s\",\n  \"runs\": %d,\n  \"quick\": %s,\n", \
        date, commit, machine, runs, quick == 1 ? "true" : "false" > json
    split("zmq redis rc_local rc_mesh rc_proxy", all, " ")
    printf "  \"throughput\": [\n" > json
    n = 0
    for (k = 1; k <= 5; k++) for (i = 1; i <= 3; i++) {
        key = "thr " all[k] " " sizes[i]
        if (!((key " msgs") in vals)) continue
        printf "%s    {\"system\": \"%s\", \"size\": %d, \"msgs_per_s\": %s, \"mb_per_s\": %s, \"lost\": %s, \"runs_msgs_per_s\": %s}", \
            n++ ? ",\n" : "", all[k], sizes[i], num(median(key " msgs")), num(median(key " mb")), num(median(key " lost")), runs_json(key " msgs") > json
    }
    printf "\n  ],\n  \"latency_us\": [\n" > json
    n = 0
    for (k = 1; k <= 5; k++) for (i = 1; i <= 3; i++) {
        key = "lat " all[k] " " sizes[i]
        if (!((key " p99") in vals)) continue
        printf "%s    {\"system\": \"%s\", \"size\": %d, \"p50\": %s, \"p99\": %s, \"p999\": %s, \"runs_p99\": %s}", \
            n++ ? ",\n" : "", all[k], sizes[i], num(median(key " p50")), num(median(key " p99")), num(median(key " p999")), runs_json(key " p99") > json
    }
    printf "\n  ],\n" > json
    if ("fan dps" in vals)
        printf "  \"fanout\": {\"size\": 64, \"sidecars\": 4, \"apps_per_sidecar\": 50, \"deliveries_per_s\": %s, \"spread_us\": {\"p50\": %s, \"p99\": %s, \"max\": %s}, \"publish_to_last_us\": {\"p50\": %s, \"p99\": %s}, \"delivered\": %s, \"expected\": %s, \"runs_deliveries_per_s\": %s},\n", \
            num(median("fan dps")), num(median("fan s50")), num(median("fan s99")), num(median("fan smax")), num(median("fan l50")), num(median("fan l99")), num(fd), num(fe), runs_json("fan dps") > json
    printf "  \"memory_kib\": {\"idle\": %s, \"idle_mesh\": %s, \"idle_mesh_peer\": %s, \"clients_1000\": %s, \"clients_10000\": %s, \"topics_100000\": %s, \"topics_100000_mesh\": %s, \"topics_100000_mesh_peer\": %s, \"per_client\": %s, \"per_topic_bytes\": %s, \"per_topic_bytes_mesh\": %s, \"per_topic_bytes_mesh_peer\": %s},\n", \
        num(idle), num(idlem), num(idlep), num(c1), num(c10), num(tp), num(tm), num(tmp), \
        per_client == "" ? "null" : sprintf("%.2f", per_client), per_topic == "" ? "null" : sprintf("%.0f", per_topic), \
        per_topic_m == "" ? "null" : sprintf("%.0f", per_topic_m), per_topic_p == "" ? "null" : sprintf("%.0f", per_topic_p) > json
    printf "  \"instructions_per_message\": {\"size\": 64, \"roomcast_e2e_mesh\": %s, \"sidecar_a\": %s, \"sidecar_b\": %s, \"redis_server\": %s, \"runs_e2e\": %s},\n", \
        num(e2e), num(median("cpu rc_a")), num(median("cpu rc_b")), num(rr), ("cpu rc_e2e" in vals) ? runs_json("cpu rc_e2e") : "[]" > json
    printf "  \"targets\": [\n%s\n  ],\n  \"targets_met\": %d,\n  \"targets_total\": %d\n}\n", tjson, nmet, ntargets > json

    # gnuplot data: size label, then msgs/s and MB/s per system
    print "# size zmq redis rc_local rc_mesh rc_proxy (msgs/s), then the same in MB/s" > dat
    for (i = 1; i <= 3; i++) {
        line = "\"" size_name(sizes[i]) "\""
        for (k = 1; k <= 5; k++) { v = median("thr " all[k] " " sizes[i] " msgs"); line = line " " (v == "" ? "NaN" : v) }
        for (k = 1; k <= 5; k++) { v = median("thr " all[k] " " sizes[i] " mb"); line = line " " (v == "" ? "NaN" : v) }
        print line > dat
    }
}
