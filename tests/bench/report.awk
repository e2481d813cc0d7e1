# report.awk: make bench's figures, from the raw lines run.sh records, as
# Markdown tables and a line per target of issue 15 (stdout), a JSON file
# (-v json=FILE) and gnuplot data (-v dat=FILE). Each figure is the median
# of its rounds; each ratio is given as the median of the per-round ratios
# (the systems ran interleaved, round by round) and as the ratio of the
# medians.
#
# Raw lines (one per run; "-" where a figure does not apply):
#   thr SYSTEM SIZE ROUND MSGS_PER_S MB_PER_S LOST LOST_MESH DROPPED_SLOW
#       LOST_ELSEWHERE REPAIRED
#       (LOST: sent - received by the subscribing tool; for roomcast,
#       LOST_MESH: published into the sending sidecar and never handed to
#       the subscriber by the receiving one ("-" on one sidecar);
#       DROPPED_SLOW: dropped at the subscriber's queue budget on its
#       sidecar; LOST_ELSEWHERE: the rest (in the publishing library, or
#       handed over and not read); REPAIRED: what the sidecars' repair
#       counters say they repaired, or n/a)
#   lat SYSTEM SIZE ROUND P50_US P99_US P999_US
#   flap METHOD SENT RECEIVED LOST LOST_MESH DROPPED_SLOW GAP_MESH BEHIND
#       REPAIRED DESCRIPTION        or: flap METHOD skipped WHY
#       (METHOD: cut, reconnect; words of DESCRIPTION and WHY joined by _)
#   fan mesh SIZE RUN DELIVERIES_PER_S SPREAD_P50 SPREAD_P99 SPREAD_MAX
#       LAST_P50 LAST_P99 DELIVERED EXPECTED
#   mem KEY RUN KIB          (idle, idle_mesh, idle_mesh_peer, c1000, c10000,
#                            topics100k, topics100k_mesh, topics100k_mesh_peer)
#   cpu KEY RUN INSTRUCTIONS (rc_a, rc_b, rc_e2e, redis: per message)
# Systems: zmq, redis, rc_local, rc_mesh, rc_proxy.
# Variables: rounds, sizes, lat_sizes, machine, commit, date, quick, smoke,
# flap_rate, flap_at, fan_apps, seconds.

function add(key, v) { vals[key] = (key in vals) ? vals[key] " " v : v }

function median_of(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) {
        t = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    return a[int((n + 1) / 2)] + 0
}

function median(key) { return (key in vals) ? median_of(vals[key]) : "" }

function runs_json(key,    a, n, i, s) {
    if (!(key in vals)) return "[]"
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
function jstr(x) { gsub(/["\\]/, "\\\\&", x); return "\"" x "\"" }

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
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : sprintf("%.2f", a / b) }
function size_name(s) { return s == 64 ? "64 B" : (s == 1024 ? "1 KiB" : (s == 65536 ? "64 KiB" : s " B")) }
function mib(kib) { return kib == "" ? "-" : sprintf("%.1f MiB", kib / 1024) }
function met(ok) { return ok ? "met" : "**not met**" }

# the value of FIELD for SYSTEM SIZE in round R ("" when not measured)
function at(kind, sys, s, r, field,    k) {
    k = kind SUBSEP sys SUBSEP s SUBSEP r SUBSEP field
    return (k in cell) ? cell[k] : ""
}

# per-round ratios of FIELD, system a over system b: "r1 r2 ..."
function round_ratios(kind, a, b, s, field,    r, x, y, out) {
    out = ""
    for (r = 1; r <= nround; r++) {
        x = at(kind, a, s, r, field); y = at(kind, b, s, r, field)
        if (x != "" && y != "" && y + 0 > 0) out = out (out == "" ? "" : " ") sprintf("%.4f", x / y)
    }
    return out
}

# "a, b, c" of a per-round field, commas; "-" when none
function per_round(kind, sys, s, field,    r, v, out, any) {
    out = ""
    for (r = 1; r <= nround; r++) {
        v = at(kind, sys, s, r, field)
        if (v == "") v = "-"
        else { any = 1; if (v ~ /^-?[0-9.]+$/) v = commas(v) }
        out = out (r > 1 ? ", " : "") v
    }
    return any ? out : "-"
}

# the sum of a per-round field over the rounds ("" when none is a number)
function sum_rounds(kind, sys, s, field,    r, v, t, any) {
    for (r = 1; r <= nround; r++) {
        v = at(kind, sys, s, r, field)
        if (v ~ /^-?[0-9.]+$/) { t += v; any = 1 }
    }
    return any ? t : ""
}

function list_json(list,    a, n, i, s) {
    n = split(list, a, " ")
    s = "["
    for (i = 1; i <= n; i++) s = s (i > 1 ? ", " : "") (a[i] + 0)
    return s "]"
}

function rounds_json(kind, sys, s, field,    r, v, out) {
    out = "["
    for (r = 1; r <= nround; r++) {
        v = at(kind, sys, s, r, field)
        out = out (r > 1 ? ", " : "") (v ~ /^-?[0-9.]+$/ ? v + 0 : (v == "" || v == "-" ? "null" : jstr(v)))
    }
    return out "]"
}

function target(name, value, limit, ok, text) {
    ntargets++
    tname[ntargets] = name; ttexts[ntargets] = text; tok[ntargets] = ok
    tjson = tjson (ntargets > 1 ? ",\n" : "") sprintf(\
        "    {\"target\": %s, \"value\": %s, \"limit\": %s, \"met\": %s}", \
        jstr(name), jstr(text), jstr(limit), ok ? "true" : "false")
    if (ok) nmet++
}

{
    if ($1 == "thr" || $1 == "lat") {
        if ($4 + 0 > nround) nround = $4 + 0
        n = split($1 == "thr" ? "msgs mb lost mesh dropped other repaired" : "p50 p99 p999", f, " ")
        for (i = 1; i <= n; i++) {
            cell[$1, $2, $3, $4, f[i]] = $(4 + i)
            if ($(4 + i) ~ /^-?[0-9.]+$/) add($1 " " $2 " " $3 " " f[i], $(4 + i))
        }
    }
    else if ($1 == "flap") {
        nflap++
        fm[nflap] = $2
        if ($3 == "skipped") { fskip[nflap] = 1; fwhy[nflap] = $4; gsub(/_/, " ", fwhy[nflap]) }
        else {
            fsent[nflap] = $3; fgot[nflap] = $4; flost[nflap] = $5; fmesh[nflap] = $6
            fdrop[nflap] = $7; fgap[nflap] = $8; fbehind[nflap] = $9; frep[nflap] = $10
            fdesc[nflap] = $11; gsub(/_/, " ", fdesc[nflap])
        }
    }
    else if ($1 == "fan") {
        add("fan dps", $5); add("fan s50", $6); add("fan s99", $7); add("fan smax", $8)
        add("fan l50", $9); add("fan l99", $10); add("fan delivered", $11); add("fan expected", $12)
    }
    else if ($1 == "mem") add("mem " $2, $4)
    else if ($1 == "cpu") add("cpu " $2, $4)
}

END {
    nsz = split(sizes, sz, " ")
    nlz = split(lat_sizes, lz, " ")
    split("rc_mesh rc_local rc_proxy", rcs, " ")
    label["rc_local"] = "local (app, sidecar, app)"
    label["rc_mesh"] = "end to end, mesh (app, sidecar A, sidecar B, app)"
    label["rc_proxy"] = "end to end, one proxy"
    short["rc_local"] = "local"; short["rc_mesh"] = "mesh"; short["rc_proxy"] = "proxy"
    need["rc_mesh 64"] = 1.5; need["rc_mesh 1024"] = 1.2; need["rc_local 64"] = 1.5

    # --- throughput
    print "One-way throughput, msgs/s (MB/s): median of the rounds; ratios: median of the per-round ratios (ratio of the medians)."
    print ""
    print "| payload, path | roomcast | Redis | raw ZeroMQ | roomcast / Redis | roomcast / ZeroMQ | lost between live sidecars, per round | dropped at the subscriber's sidecar (dropped_slow), per round | repaired | target | |"
    print "|---|---|---|---|---|---|---|---|---|---|---|"
    mesh_bad = 0; drop_bad = 0; mesh_seen = 0; drop_seen = 0
    for (i = 1; i <= nsz; i++) {
        s = sz[i]
        rm = median("thr redis " s " msgs"); zm = median("thr zmq " s " msgs")
        for (k = 1; k <= 3; k++) {
            sys = rcs[k]
            m = median("thr " sys " " s " msgs")
            if (m == "") continue
            rr = round_ratios("thr", sys, "redis", s, "msgs")
            zr = round_ratios("thr", sys, "zmq", s, "msgs")
            mr = median_of(rr); mz = median_of(zr)
            vs_redis = mr == "" ? "-" : sprintf("%.2f (%s)", mr, ratio(m, rm))
            vs_zmq = mz == "" ? "-" : sprintf("%.2f (%s)", mz, ratio(m, zm))
            lost_cell = "-"
            if (sys != "rc_local") {
                lost_cell = per_round("thr", sys, s, "mesh")
                t = sum_rounds("thr", sys, s, "mesh")
                if (t != "") mesh_seen = 1
                if (t != "" && t != 0) {
                    mesh_bad = 1
                    mesh_rows = mesh_rows (mesh_rows == "" ? "" : ", ") size_name(s) " " short[sys] " " commas(t)
                }
            } else lost_cell = "n/a (one sidecar)"
            drop_cell = per_round("thr", sys, s, "dropped")
            t = sum_rounds("thr", sys, s, "dropped")
            if (t != "") drop_seen = 1
            if (t != "" && t != 0) {
                drop_bad = 1
                drop_rows = drop_rows (drop_rows == "" ? "" : ", ") size_name(s) " " short[sys] " " commas(t)
            }
            t = sum_rounds("thr", sys, s, "other")
            if (t != "" && t != 0) drop_cell = drop_cell " (+" commas(t) " lost elsewhere)"
            rep = sum_rounds("thr", sys, s, "repaired")
            rep = rep == "" ? "n/a" : commas(rep)
            tg = ""; v = ""
            if ((sys " " s) in need) {
                ok = mr != "" && mr >= need[sys " " s]
                tg = ">= " need[sys " " s] "x Redis"; v = met(ok)
                target(size_name(s) " " (sys == "rc_local" ? "local" : "end to end, mesh") \
                    ": >= " need[sys " " s] "x Redis", mr, need[sys " " s], ok, \
                    mr == "" ? "not measured" : sprintf("%.2fx Redis, the median of the per-round ratios; the ratio of the medians: %s", mr, ratio(m, rm)))
            }
            printf "| %s, %s | %s (%s) | %s (%s) | %s (%s) | %s | %s | %s | %s | %s | %s | %s |\n", \
                size_name(s), label[sys], sig3(m), mb(median("thr " sys " " s " mb")), \
                sig3(rm), mb(median("thr redis " s " mb")), sig3(zm), mb(median("thr zmq " s " mb")), \
                vs_redis, vs_zmq, lost_cell, drop_cell, rep, tg, v
        }
    }
    printf "\nRedis lost %s and raw ZeroMQ %s of what they were sent (all rounds, all sizes).\n", \
        commas(sum_all("redis")), commas(sum_all("zmq"))

    # --- round trips
    print ""
    print "Round trips, microseconds: median of the rounds; ratio: median of the per-round p99 ratios (ratio of the medians)."
    print ""
    print "| payload, path | roomcast p50 / p99 / p99.9 | Redis | raw ZeroMQ | p99 roomcast / Redis | p99 per round, roomcast vs Redis | target | |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= nlz; i++) {
        s = lz[i]
        rp = median("lat redis " s " p99")
        for (k = 1; k <= 3; k++) {
            sys = rcs[k]
            p = median("lat " sys " " s " p99")
            if (p == "") continue
            rr = round_ratios("lat", sys, "redis", s, "p99")
            mr = median_of(rr)
            pr = ""; all_ok = 1; nr = 0
            for (r = 1; r <= nround; r++) {
                x = at("lat", sys, s, r, "p99"); y = at("lat", "redis", s, r, "p99")
                pr = pr (r > 1 ? ", " : "") us(x) " vs " us(y)
                if (x == "" || y == "" || x + 0 > y + 0) all_ok = 0
                else nr++
            }
            tg = ""; v = ""
            if (sys == "rc_mesh") {
                ok = all_ok && nr > 0
                tg = "p99 <= Redis, every round"; v = met(ok)
                target(size_name(s) " round trip p99, end to end, mesh: <= Redis in every round", \
                    mr, 1, ok, sprintf("%d of %d rounds; %s", nr, nround, pr))
            }
            printf "| %s, %s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %s | %s | %s | %s |\n", \
                size_name(s), label[sys], \
                us(median("lat " sys " " s " p50")), us(p), us(median("lat " sys " " s " p999")), \
                us(median("lat redis " s " p50")), us(rp), us(median("lat redis " s " p999")), \
                us(median("lat zmq " s " p50")), us(median("lat zmq " s " p99")), us(median("lat zmq " s " p999")), \
                mr == "" ? "-" : sprintf("%.2f (%s)", mr, ratio(p, rp)), pr, tg, v
        }
    }

    # --- flap
    print ""
    printf "Flap cases: a stream of 64 B messages paced at %s msg/s from an app on one sidecar to an app on another, broken %s s in.\n\n", \
        commas(flap_rate), flap_at
    print "| case | sent | delivered | lost | lost between live sidecars | dropped_slow | GAP notices (mesh) | duplicates or out of order | repaired |"
    print "|---|---|---|---|---|---|---|---|---|"
    flap_ok = nflap > 0; flap_text = ""
    for (i = 1; i <= nflap; i++) {
        if (fskip[i]) {
            printf "| %s: skipped (%s) | | | | | | | | |\n", fm[i], fwhy[i]
            flap_text = flap_text (flap_text == "" ? "" : "; ") fm[i] " skipped"
            flap_ok = 0
            continue
        }
        printf "| %s: %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", fm[i], fdesc[i], \
            commas(fsent[i]), commas(fgot[i]), commas(flost[i]), commas(fmesh[i]), \
            commas(fdrop[i]), fgap[i] == "" ? "-" : commas(fgap[i]), \
            fbehind[i] == "" ? "-" : commas(fbehind[i]), frep[i] ~ /^[0-9]+$/ ? commas(frep[i]) : "n/a"
        if (flost[i] != 0 || fmesh[i] != 0 || fbehind[i] + 0 != 0) flap_ok = 0
        if (fdrop[i] + 0 != 0) flap_drop_bad = 1
        flap_text = flap_text (flap_text == "" ? "" : "; ") sprintf("%s: %s lost of %s, %s between the sidecars, %s repaired", \
            fm[i], commas(flost[i]), commas(fsent[i]), commas(fmesh[i]), frep[i] ~ /^[0-9]+$/ ? commas(frep[i]) : "n/a")
    }
    if (nflap == 0) flap_text = "not run"

    # --- the rest
    print ""
    print "| measure | roomcast | Redis | target | |"
    print "|---|---|---|---|---|"
    fd = median("fan delivered"); fe = median("fan expected")
    if ("fan dps" in vals) {
        printf "| fanout 64 B, 1 publisher, 4 sidecars (mesh) x %s apps: deliveries/s | %s | - | | |\n", \
            fan_apps, sig3(median("fan dps")) (fd < fe ? " [" sig3(fe - fd) " lost]" : "")
        printf "| fanout, paced: spread first to last delivery p50 / p99 / max us | %s / %s / %s | - | | |\n", \
            us(median("fan s50")), us(median("fan s99")), us(median("fan smax"))
        printf "| fanout, paced: publish to last delivery p50 / p99 us | %s / %s | - | | |\n", \
            us(median("fan l50")), us(median("fan l99"))
    }
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
    printf "| roomcastd RSS, idle (no peers) | %s | - | < 8 MiB | %s |\n", mib(idle), met(ok1)
    printf "| roomcastd RSS, idle (mesh, one peer live) | %s | - | < 8 MiB | %s |\n", mib(idlem), met(ok2)
    if (c1 != "") printf "| roomcastd RSS, 1,000 connected clients (1 topic each) | %s | - | | |\n", mib(c1)
    if (c10 != "") {
        printf "| roomcastd RSS, 10,000 connected clients (1 topic each) | %s | - | | |\n", mib(c10)
        printf "| RSS per connected client (10,000 vs idle) | %.2f KiB | - | < 16 KiB | %s |\n", per_client, met(ok3)
    }
    if (tp != "") {
        printf "| roomcastd RSS, 100,000 subscribed topics (10 clients), a lone sidecar (no peers) | %s | - | | |\n", mib(tp)
        printf "| RSS per subscribed topic, a lone sidecar (no peers) | %.0f B | - | | |\n", per_topic
    }
    if (per_topic_m != "") {
        printf "| RSS per subscribed topic in a mesh of two: the subscribers' sidecar | %.0f B | - | | |\n", per_topic_m
        printf "| RSS per subscribed topic in a mesh of two: each peer (holds the subscription) | %.0f B | - | | |\n", per_topic_p
    }
    e2e = median("cpu rc_e2e"); rcpu = median("cpu redis")
    if (e2e != "") {
        printf "| instructions per relayed 64 B message (user space, callgrind): sidecar A + B, end to end mesh (Redis: redis-server) | %s | %s (%sx) | | |\n", \
            sig3(e2e), sig3(rcpu), ratio(e2e, rcpu)
        printf "| ... of which sidecar A (app to mesh) | %s | - | | |\n", sig3(median("cpu rc_a"))
        printf "| ... of which sidecar B (mesh to app) | %s | - | | |\n", sig3(median("cpu rc_b"))
    }

    # --- targets of issue 15 (the throughput and round-trip ones above)
    ok = mesh_seen && !mesh_bad && flap_ok
    target("0 lost between live sidecars: every throughput row and the flap cases", \
        "", 0, ok, sprintf("throughput rows: %s; flap: %s", \
        !mesh_seen ? "not measured" : (mesh_bad ? "lost, all rounds: " mesh_rows : "0 in every run"), flap_text))
    ok = drop_seen && !drop_bad && !flap_drop_bad
    target("0 dropped at a subscribing rc_bench (dropped_slow at its sidecar)", \
        "", 0, ok, !drop_seen ? "not measured" : (drop_bad ? "dropped, all rounds: " drop_rows : "0 in every run") \
        (flap_drop_bad ? "; and in a flap case" : ""))
    target("idle RSS < 8 MiB", idle, 8192, ok1 && ok2, \
        sprintf("%s alone, %s with one peer", mib(idle), mib(idlem)))

    print ""
    printf "Targets of issue 15: %d of %d met.\n\n", nmet, ntargets
    for (i = 1; i <= ntargets; i++)
        printf "- %s: %s (%s)\n", tname[i], tok[i] ? "met" : "**not met**", ttexts[i]
    if (e2e != "")
        printf "- instructions per relayed 64 B message: %s in the two sidecars, %s in redis-server (reported, no target).\n", \
            commas(e2e), commas(rcpu)
    printf "\nMedians of %d rounds%s%s; MB/s = 10^6 bytes of payload; make bench took %d s.\n", \
        nround, quick == 1 ? " (BENCH_QUICK: figures not comparable)" : "", \
        smoke == 1 ? " (BENCH_SMOKE: a check that the script runs, figures meaningless)" : "", seconds
    printf "Machine: %s; roomcast %s; %s.\n", machine, commit, date

    # --- JSON
    printf "{\n  \"date\": %s,\n  \"commit\": %s,\n  \"machine\": %s,\n  \"rounds\": %d,\n  \"seconds\": %d,\n  \"quick\": %s,\n  \"smoke\": %s,\n", \
        jstr(date), jstr(commit), jstr(machine), nround, seconds, \
        quick == 1 ? "true" : "false", smoke == 1 ? "true" : "false" > json
    split("zmq redis rc_local rc_mesh rc_proxy", all, " ")
    printf "  \"throughput\": [\n" > json
    n = 0
    for (k = 1; k <= 5; k++) for (i = 1; i <= nsz; i++) {
        sys = all[k]; s = sz[i]; key = "thr " sys " " s
        if (!((key " msgs") in vals)) continue
        printf "%s    {\"system\": \"%s\", \"size\": %d, \"msgs_per_s\": %s, \"mb_per_s\": %s, \"rounds_msgs_per_s\": %s, \"rounds_lost\": %s, \"rounds_lost_between_sidecars\": %s, \"rounds_dropped_slow\": %s, \"rounds_lost_elsewhere\": %s, \"rounds_repaired\": %s, \"vs_redis_rounds\": %s, \"vs_redis_median\": %s, \"vs_zmq_median\": %s}", \
            n++ ? ",\n" : "", sys, s, num(median(key " msgs")), num(median(key " mb")), \
            rounds_json("thr", sys, s, "msgs"), rounds_json("thr", sys, s, "lost"), \
            rounds_json("thr", sys, s, "mesh"), rounds_json("thr", sys, s, "dropped"), \
            rounds_json("thr", sys, s, "other"), rounds_json("thr", sys, s, "repaired"), \
            list_json(round_ratios("thr", sys, "redis", s, "msgs")), \
            num(median_of(round_ratios("thr", sys, "redis", s, "msgs"))), \
            num(median_of(round_ratios("thr", sys, "zmq", s, "msgs"))) > json
    }
    printf "\n  ],\n  \"latency_us\": [\n" > json
    n = 0
    for (k = 1; k <= 5; k++) for (i = 1; i <= nlz; i++) {
        sys = all[k]; s = lz[i]; key = "lat " sys " " s
        if (!((key " p99") in vals)) continue
        printf "%s    {\"system\": \"%s\", \"size\": %d, \"p50\": %s, \"p99\": %s, \"p999\": %s, \"rounds_p99\": %s, \"p99_vs_redis_rounds\": %s}", \
            n++ ? ",\n" : "", sys, s, num(median(key " p50")), num(median(key " p99")), \
            num(median(key " p999")), rounds_json("lat", sys, s, "p99"), \
            list_json(round_ratios("lat", sys, "redis", s, "p99")) > json
    }
    printf "\n  ],\n" > json
    printf "  \"flap\": [\n" > json
    for (i = 1; i <= nflap; i++) {
        if (fskip[i])
            printf "%s    {\"case\": %s, \"skipped\": %s}", (i > 1 ? ",\n" : ""), jstr(fm[i]), jstr(fwhy[i]) > json
        else
            printf "%s    {\"case\": %s, \"description\": %s, \"size\": 64, \"rate\": %s, \"at_s\": %s, \"sent\": %s, \"delivered\": %s, \"lost\": %s, \"lost_between_sidecars\": %s, \"dropped_slow\": %s, \"gap_mesh\": %s, \"duplicates_or_out_of_order\": %s, \"repaired\": %s}", \
                (i > 1 ? ",\n" : ""), jstr(fm[i]), jstr(fdesc[i]), num(flap_rate), num(flap_at), num(fsent[i]), num(fgot[i]), \
                num(flost[i]), num(fmesh[i]), num(fdrop[i]), num(fgap[i]), num(fbehind[i]), \
                frep[i] ~ /^[0-9]+$/ ? frep[i] : "null" > json
    }
    printf "\n  ],\n" > json
    if ("fan dps" in vals)
        printf "  \"fanout\": {\"size\": 64, \"sidecars\": 4, \"deliveries_per_s\": %s, \"spread_us\": {\"p50\": %s, \"p99\": %s, \"max\": %s}, \"publish_to_last_us\": {\"p50\": %s, \"p99\": %s}, \"delivered\": %s, \"expected\": %s, \"runs_deliveries_per_s\": %s},\n", \
            num(median("fan dps")), num(median("fan s50")), num(median("fan s99")), num(median("fan smax")), num(median("fan l50")), num(median("fan l99")), num(fd), num(fe), runs_json("fan dps") > json
    printf "  \"memory_kib\": {\"idle\": %s, \"idle_mesh\": %s, \"idle_mesh_peer\": %s, \"clients_1000\": %s, \"clients_10000\": %s, \"topics_100000\": %s, \"topics_100000_mesh\": %s, \"topics_100000_mesh_peer\": %s, \"per_client\": %s, \"per_topic_bytes\": %s, \"per_topic_bytes_mesh\": %s, \"per_topic_bytes_mesh_peer\": %s},\n", \
        num(idle), num(idlem), num(idlep), num(c1), num(c10), num(tp), num(tm), num(tmp), \
        per_client == "" ? "null" : sprintf("%.2f", per_client), per_topic == "" ? "null" : sprintf("%.0f", per_topic), \
        per_topic_m == "" ? "null" : sprintf("%.0f", per_topic_m), per_topic_p == "" ? "null" : sprintf("%.0f", per_topic_p) > json
    printf "  \"instructions_per_message\": {\"size\": 64, \"roomcast_e2e_mesh\": %s, \"sidecar_a\": %s, \"sidecar_b\": %s, \"redis_server\": %s, \"runs_e2e\": %s},\n", \
        num(e2e), num(median("cpu rc_a")), num(median("cpu rc_b")), num(rcpu), runs_json("cpu rc_e2e") > json
    printf "  \"targets\": [\n%s\n  ],\n  \"targets_met\": %d,\n  \"targets_total\": %d\n}\n", tjson, nmet, ntargets > json

    # gnuplot data: size label, then msgs/s and MB/s per system
    print "# size zmq redis rc_local rc_mesh rc_proxy (msgs/s), then the same in MB/s" > dat
    for (i = 1; i <= nsz; i++) {
        line = "\"" size_name(sz[i]) "\""
        for (k = 1; k <= 5; k++) { v = median("thr " all[k] " " sz[i] " msgs"); line = line " " (v == "" ? "NaN" : v) }
        for (k = 1; k <= 5; k++) { v = median("thr " all[k] " " sz[i] " mb"); line = line " " (v == "" ? "NaN" : v) }
        print line > dat
    }
}

# what a baseline lost, all rounds and sizes
function sum_all(sys,    i, t) {
    for (i = 1; i <= nsz; i++) t += sum_rounds("thr", sys, sz[i], "lost")
    return t + 0
}
