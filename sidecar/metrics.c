/*  metrics: see metrics.h. The counters are a table of (family, labels,
    stats field) so adding one is one line; the gauges, the info line and
    the histogram are written out. Seconds are printed from microseconds
    with integer arithmetic, so bucket bounds and sums are exact. */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "roomcast_"

typedef struct {
    const char *labels; // e.g. reason="own", or NULL
    size_t field;       // offsetof(stats_t, ...)
} sample_t;

typedef struct {
    const char *name;    // after the prefix, with _total
    const char *help;    //
    sample_t samples[8]; // nsamples used
    size_t nsamples;     //
} counter_t;

#define F(field) offsetof(stats_t, field)

static const counter_t s_counters[] = {
    {"publishes_total",
     "PUB frames accepted from local apps.",
     {{NULL, F(publishes)}},
     1},
    {"deliveries_total",
     "Messages queued to local apps.",
     {{NULL, F(deliveries)}},
     1},
    {"dropped_total",
     "Messages for local apps dropped, and app frames refused, by reason "
     "(mesh drops: envelopes_total).",
     {{"reason=\"slow_consumer\"", F(dropped_slow)},
      {"reason=\"memory_limit\"", F(dropped_memory)},
      {"reason=\"bad_frame\"", F(bad_frames)}},
     3},
    {"clients_closed_total",
     "App connections closed by the sidecar.",
     {{"reason=\"slow_consumer\"", F(closed_slow)},
      {"reason=\"protocol\"", F(closed_proto)}},
     2},
    {"clients_accepted_total",
     "App connections accepted.",
     {{NULL, F(clients_accepted)}},
     1},
    {"clients_refused_total",
     "App connections refused (limit, shutdown).",
     {{NULL, F(clients_refused)}},
     1},
    {"errors_sent_total",
     "ERR frames sent to apps.",
     {{NULL, F(errors_sent)}},
     1},
    {"bytes_total",
     "Bytes on app connections.",
     {{"direction=\"in\"", F(bytes_in)}, {"direction=\"out\"", F(bytes_out)}},
     2},
    {"envelopes_total",
     "Mesh envelopes, by result.",
     {{"result=\"sent\"", F(env_sent)},
      {"result=\"received\"", F(env_received)},
      {"result=\"undecryptable\"", F(env_undecryptable)},
      {"result=\"malformed\"", F(env_malformed)},
      {"result=\"refused_format\"", F(env_refused_format)},
      {"result=\"duplicate\"", F(env_duplicates)},
      {"result=\"own\"", F(env_own)},
      {"result=\"stale\"", F(env_stale)}},
     8},
    {"envelope_batches_total",
     "Sealed envelopes sent to the mesh (each holds one or more messages).",
     {{NULL, F(env_batches)}},
     1},
    {"gaps_total",
     "Publisher streams that skipped sequence numbers.",
     {{NULL, F(gaps)}},
     1},
    {"missed_total", "Messages those gaps skipped.", {{NULL, F(missed)}}, 1},
    {"control_messages_total",
     "Mesh heartbeats and acks, by result.",
     {{"result=\"ok\"", F(control_received)},
      {"result=\"bad\"", F(control_bad)},
      {"result=\"replayed\"", F(control_replayed)}},
     3},
    {"mesh_send_failed_total",
     "Envelopes the mesh socket refused to queue.",
     {{NULL, F(mesh_send_failed)}},
     1},
    {"mesh_blocked_total",
     "Times a full peer link held the publishing apps back.",
     {{NULL, F(mesh_blocked)}},
     1},
    {"mesh_blocked_milliseconds_total",
     "Time the publishing apps were held back by a full peer link.",
     {{NULL, F(mesh_blocked_ms)}},
     1},
    {"mesh_peers_cut_total",
     "Peers cut off: their link stayed full past --peer-stall-timeout.",
     {{NULL, F(mesh_peers_cut)}},
     1},
    {"repair_requests_total",
     "Repair requests, sent (ours, retries too) and served (peers').",
     {{"direction=\"sent\"", F(repair_requests_sent)},
      {"direction=\"served\"", F(repair_requests_served)}},
     2},
    {"repair_resent_total",
     "Envelopes re-sent to peers that asked for them.",
     {{NULL, F(repair_resent)}},
     1},
    {"relinks_total",
     "Peers whose link from us came back after it ended: what we sent "
     "them shortly before and since was re-sent.",
     {{NULL, F(relinks)}},
     1},
    {"relink_resent_total",
     "Envelopes re-sent to peers whose link came back.",
     {{NULL, F(relink_resent)}},
     1},
    {"repaired_total",
     "Messages lost on the way that came back through a repair.",
     {{NULL, F(repaired)}},
     1},
    {"repair_unrepaired_total",
     "Messages lost on the way and not repaired (told in GAP notices).",
     {{NULL, F(repair_unrepaired)}},
     1},
    {"repair_timeouts_total",
     "Repair requests given up unanswered.",
     {{NULL, F(repair_timeouts)}},
     1},
    {"gossip_packets_total",
     "Gossip (membership) datagrams, by result.",
     {{"result=\"in\"", F(gossip_in)},
      {"result=\"out\"", F(gossip_out)},
      {"result=\"undecryptable\"", F(gossip_undecryptable)},
      {"result=\"bad\"", F(gossip_bad)}},
     4},
    {"refused_frames_total",
     "App frames refused, by kind (their sum is dropped_total "
     "reason=bad_frame).",
     {{"kind=\"order\"", F(refused_order)},
      {"kind=\"name\"", F(refused_name)},
      {"kind=\"size\"", F(refused_size)},
      {"kind=\"type\"", F(refused_type)},
      {"kind=\"flags\"", F(refused_flags)},
      {"kind=\"query\"", F(refused_query)},
      {"kind=\"version\"", F(refused_version)},
      {"kind=\"protocol\"", F(refused_protocol)}},
     8},
    {"presence_refused_total",
     "PSET refused: a presence budget, or a key another app holds.",
     {{NULL, F(presence_refused)}},
     1},
    {"clients_partial_closed_total",
     "Apps closed for an incomplete frame, by reason.",
     {{"reason=\"timeout\"", F(closed_partial)},
      {"reason=\"budget\"", F(closed_partial_budget)}},
     2},
    {"curve_refused_total",
     "TCP handshakes refused: a CurveZMQ key not admitted.",
     {{NULL, F(curve_refused)}},
     1},
    {"memory_shed_total",
     "What the memory cap (--memory-limit) did, by action.",
     {{"action=\"refuse_client\"", F(mem_refused_clients)},
      {"action=\"refuse_subscribe\"", F(mem_refused_subs)},
      {"action=\"refuse_presence\"", F(mem_refused_presence)},
      {"action=\"refuse_publish\"", F(mem_refused_pubs)},
      {"action=\"drop_queue\"", F(mem_shed_queues)}},
     5},
};

static void s_family(http_reply_t *r, const char *name, const char *type,
                     const char *help)
{
    http_reply_printf(r, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n",
                      name, help, name, type);
}

static void s_gauge(http_reply_t *r, const char *name, const char *help,
                    unsigned long long value)
{
    s_family(r, name, "gauge", help);
    http_reply_printf(r, PREFIX "%s %llu\n", name, value);
}

//  A label value as the exposition format wants it: \ " and newline
//  escaped, every other byte as is.
static void s_label_value(http_reply_t *r, const char *value)
{
    for (const char *p = value ? value : ""; *p; p++) {
        switch (*p) {
            case '\\':
                http_reply_append(r, "\\\\", 2);
                break;
            case '"':
                http_reply_append(r, "\\\"", 2);
                break;
            case '\n':
                http_reply_append(r, "\\n", 2);
                break;
            default:
                http_reply_append(r, p, 1);
        }
    }
}

//  Microseconds as decimal seconds, exact: 10 -> "0.00001".
static void s_seconds(http_reply_t *r, uint64_t us)
{
    char frac[8];
    snprintf(frac, sizeof frac, "%06" PRIu64, us % 1000000);
    int n = 6;
    while (n > 0 && frac[n - 1] == '0') {
        n--;
    }
    if (n == 0) {
        http_reply_printf(r, "%" PRIu64, us / 1000000);
    } else {
        http_reply_printf(r, "%" PRIu64 ".%.*s", us / 1000000, n, frac);
    }
}

static void s_counter(http_reply_t *r, const stats_t *st, const counter_t *c)
{
    s_family(r, c->name, "counter", c->help);
    for (size_t i = 0; i < c->nsamples; i++) {
        const sample_t *s = &c->samples[i];
        uint64_t v = *(const uint64_t *)((const char *)st + s->field);
        if (s->labels) {
            http_reply_printf(r, PREFIX "%s{%s} %" PRIu64 "\n", c->name,
                              s->labels, v);
        } else {
            http_reply_printf(r, PREFIX "%s %" PRIu64 "\n", c->name, v);
        }
    }
}

static void s_histogram(http_reply_t *r, const stats_t *st)
{
    const char *name = "fanout_duration_seconds";
    s_family(r, name, "histogram",
             "Time to fan one message out to the local subscribers.");
    uint64_t count = 0;
    for (int i = 0; i < STATS_FANOUT_BUCKETS; i++) {
        count += st->fanout_hist[i];
        uint64_t bound = stats_fanout_bounds_us[i];
        if (bound == UINT64_MAX) {
            continue; // the +Inf bucket below holds every count
        }
        http_reply_printf(r, PREFIX "%s_bucket{le=\"", name);
        s_seconds(r, bound);
        http_reply_printf(r, "\"} %" PRIu64 "\n", count);
    }
    http_reply_printf(r, PREFIX "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name,
                      count);
    http_reply_printf(r, PREFIX "%s_sum ", name);
    s_seconds(r, st->fanout_us_sum);
    http_reply_printf(r, "\n" PREFIX "%s_count %" PRIu64 "\n", name, count);
}

//  The first line of path starting with prefix, into line. 0 or -1.
static int s_read_line(const char *path, const char *prefix, char *line,
                       size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    int rc = -1;
    while (fgets(line, (int)size, f)) {
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            rc = 0;
            break;
        }
    }
    fclose(f);
    if (rc) {
        errno = EPROTO;
    }
    return rc;
}

int metrics_process_read(const char *proc, const char *pid,
                         metrics_process_t *out)
{
    char path[512], line[1024];
    memset(out, 0, sizeof *out);
    //  pid (comm) state ...: comm may hold spaces and ')', so the fields
    //  are counted from the last ')'; utime is field 14, rss field 24.
    snprintf(path, sizeof path, "%s/%s/stat", proc, pid);
    if (s_read_line(path, "", line, sizeof line)) {
        return -1;
    }
    char *p = strrchr(line, ')');
    unsigned long long utime, stime, start, vsize, rss;
    if (!p || sscanf(p + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                     "%*d %*d %*d %*d %*d %*d %llu %llu %llu",
                     &utime, &stime, &start, &vsize, &rss) != 5) {
        errno = EPROTO;
        return -1;
    }
    snprintf(path, sizeof path, "%s/stat", proc);
    unsigned long long btime;
    if (s_read_line(path, "btime ", line, sizeof line) ||
        sscanf(line, "btime %llu", &btime) != 1) {
        errno = EPROTO;
        return -1;
    }
    double hz = (double)sysconf(_SC_CLK_TCK);
    out->cpu_seconds = (double)(utime + stime) / hz;
    out->start_time = (double)btime + (double)start / hz;
    out->virtual_bytes = vsize;
    out->resident_bytes = rss * (uint64_t)sysconf(_SC_PAGESIZE);
    snprintf(path, sizeof path, "%s/%s/limits", proc, pid);
    char soft[64];
    if (s_read_line(path, "Max open files", line, sizeof line) ||
        sscanf(line, "Max open files %63s", soft) != 1) {
        errno = EPROTO;
        return -1;
    }
    out->max_fds = strcmp(soft, "unlimited") ? strtoull(soft, NULL, 10) : 0;
    snprintf(path, sizeof path, "%s/%s/fd", proc, pid);
    DIR *dir = opendir(path);
    if (!dir) {
        return -1;
    }
    for (struct dirent *e; (e = readdir(dir));) {
        out->open_fds += e->d_name[0] != '.';
    }
    closedir(dir); // the count included this DIR's own descriptor
    out->open_fds -= out->open_fds > 0 && strcmp(pid, "self") == 0;
    return 0;
}

static void s_process(http_reply_t *r)
{
    metrics_process_t p;
    if (metrics_process_read("/proc", "self", &p)) {
        return;
    }
    http_reply_printf(
        r,
        "# HELP process_resident_memory_bytes Resident memory size in "
        "bytes.\n# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes %" PRIu64 "\n"
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
        "# TYPE process_virtual_memory_bytes gauge\n"
        "process_virtual_memory_bytes %" PRIu64 "\n"
        "# HELP process_cpu_seconds_total Total user and system CPU time "
        "spent in seconds.\n# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total %.2f\n"
        "# HELP process_open_fds Number of open file descriptors.\n"
        "# TYPE process_open_fds gauge\nprocess_open_fds %" PRIu64 "\n"
        "# HELP process_start_time_seconds Start time of the process since "
        "unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds %.2f\n",
        p.resident_bytes, p.virtual_bytes, p.cpu_seconds, p.open_fds,
        p.start_time);
    if (p.max_fds) {
        http_reply_printf(r,
                          "# HELP process_max_fds Maximum number of open "
                          "file descriptors.\n# TYPE process_max_fds gauge\n"
                          "process_max_fds %" PRIu64 "\n",
                          p.max_fds);
    }
}

// --- per-peer series
// -----------------------------------------------------------

//  How bad a peer looks, for the cap: not live first, then most messages
//  lost, then longest silent; > 0 when a ranks worse than b. Ties by node
//  id (the lower is kept), so the set is stable in a healthy cluster.
static int s_worse(const metrics_peer_t *a, const metrics_peer_t *b)
{
    bool a_down = strcmp(a->state, "live") != 0;
    bool b_down = strcmp(b->state, "live") != 0;
    if (a_down != b_down) {
        return a_down ? 1 : -1;
    }
    uint64_t al = a->missed + a->lost_to, bl = b->missed + b->lost_to;
    if (al != bl) {
        return al > bl ? 1 : -1;
    }
    if (a->last_ms != b->last_ms) {
        return a->last_ms > b->last_ms ? 1 : -1;
    }
    return strcmp(b->node_id, a->node_id);
}

void metrics_peers_reset(metrics_peers_t *set)
{
    set->count = set->total = 0;
}

void metrics_peers_offer(metrics_peers_t *set, const metrics_peer_t *peer)
{
    set->total++;
    if (set->count < METRICS_PEERS_MAX) {
        set->items[set->count++] = *peer;
        return;
    }
    size_t best = 0;
    for (size_t i = 1; i < set->count; i++) {
        if (s_worse(&set->items[best], &set->items[i]) > 0) {
            best = i;
        }
    }
    if (s_worse(peer, &set->items[best]) > 0) {
        set->items[best] = *peer;
    }
}

//  The labels of one peer's series.
static void s_peer_labels(http_reply_t *r, const char *name,
                          const metrics_peer_t *p)
{
    http_reply_printf(r, PREFIX "%s{node_id=\"", name);
    s_label_value(r, p->node_id);
    http_reply_printf(r, "\",name=\"");
    s_label_value(r, p->name);
    http_reply_printf(r, "\"} ");
}

static void s_peers(http_reply_t *r, const metrics_peers_t *set)
{
    static const struct {
        const char *name;
        const char *type;
        const char *help;
        size_t field; // offsetof (metrics_peer_t, ...), or SIZE_MAX
    } series[] = {
        {"peer_up", "gauge", "1 while the peer is heard (live), else 0.",
         SIZE_MAX},
        {"peer_hears_us", "gauge", "1 while the peer hears us.", SIZE_MAX},
        {"peer_last_heard_seconds", "gauge",
         "Seconds since the peer was last heard (absent: never).", SIZE_MAX},
        {"peer_received_total", "counter",
         "The peer's envelopes that reached us.",
         offsetof(metrics_peer_t, received)},
        {"peer_missed_total", "counter",
         "The peer's messages lost on the way to us.",
         offsetof(metrics_peer_t, missed)},
        {"peer_lost_to_total", "counter",
         "Our messages the peer says were lost on the way to it.",
         offsetof(metrics_peer_t, lost_to)},
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        s_family(r, series[k].name, series[k].type, series[k].help);
        for (size_t i = 0; set && i < set->count; i++) {
            const metrics_peer_t *p = &set->items[i];
            if (k == 2 && p->last_ms == UINT64_MAX) {
                continue;
            }
            s_peer_labels(r, series[k].name, p);
            if (k == 0) {
                http_reply_printf(r, "%d\n", strcmp(p->state, "live") == 0);
            } else if (k == 1) {
                http_reply_printf(r, "%d\n", p->hears_us);
            } else if (k == 2) {
                s_seconds(r, p->last_ms * 1000);
                http_reply_printf(r, "\n");
            } else {
                http_reply_printf(
                    r, "%" PRIu64 "\n",
                    *(const uint64_t *)((const char *)p + series[k].field));
            }
        }
    }
    s_gauge(r, "peer_series_omitted",
            "Peers left out of the per-peer series (past the cap of 64).",
            set && set->total > set->count ? set->total - set->count : 0);
}

//  Members, queues, presence and the memory cap.
static void s_state_gauges(http_reply_t *r, const metrics_input_t *in)
{
    static const char *states[] = {NULL, "alive", "suspect", "dead", "left"};
    s_family(r, "members", "gauge",
             "Gossip members by state, this sidecar included (0 without "
             "gossip).");
    for (int i = 1; i <= 4; i++) {
        http_reply_printf(r, PREFIX "members{state=\"%s\"} %zu\n", states[i],
                          in->members[i]);
    }
    s_gauge(r, "app_queue_bytes",
            "Bytes queued toward local apps, not written yet.",
            in->queue_bytes);
    s_gauge(r, "app_queue_frames", "Frames queued toward local apps.",
            in->queue_frames);
    s_gauge(r, "app_queue_largest_bytes",
            "The largest queue toward one app, in bytes.", in->queue_largest);
    s_gauge(r, "apps_slow", "Apps over their queue budget now (dropping).",
            in->apps_slow);
    s_gauge(r, "partial_frame_bytes",
            "Bytes held in incomplete frames from apps (--partial-budget).",
            in->stats->partial_bytes);
    s_gauge(r, "presence_entries", "Presence entries our apps hold.",
            in->presence_entries);
    s_gauge(r, "presence_bytes", "Bytes of the presence entries our apps hold.",
            in->presence_bytes);
    s_gauge(r, "memory_limit_bytes",
            "The memory cap (--memory-limit); 0 when there is none.",
            in->memory_limit);
    s_gauge(r, "memory_pressure",
            "The memory cap's level: 0 ok, 1 refusing new work, 2 shedding "
            "app queues, 3 refusing publishes.",
            (unsigned long long)in->memory_pressure);
}

void metrics_render(const metrics_input_t *in, http_reply_t *reply)
{
    reply->content_type = METRICS_CONTENT_TYPE;
    s_gauge(reply, "clients", "Apps connected to this sidecar.", in->clients);
    s_gauge(reply, "topics", "Topics with at least one local subscriber.",
            in->topics);
    s_gauge(reply, "subscriptions", "Local (app, topic) subscriptions.",
            in->subscriptions);
    s_gauge(reply, "readable",
            "Health bit: 1 while the mesh is heard (1 when alone).",
            in->readable);
    s_gauge(reply, "writable",
            "Health bit: 1 while the mesh hears us (1 when alone).",
            in->writable);
    s_family(reply, "mesh_peers", "gauge", "Known peers, by state.");
    http_reply_printf(reply,
                      PREFIX "mesh_peers{state=\"live\"} %u\n" PREFIX
                             "mesh_peers{state=\"down\"} %u\n",
                      in->live_peers, in->peers_down);
    s_gauge(reply, "mesh_lost_out",
            "Our messages the peers say were lost on the way to them "
            "(publish-side drops, per the peers' own gap counts).",
            in->lost_out);
    s_gauge(reply, "peer_table_entries",
            "Entries in the mesh peer table (live, down, tombstones).",
            in->peer_table);
    s_gauge(reply, "peer_table_cap", "The peer table's cap.",
            in->peer_table_cap);
    s_gauge(reply, "peer_table_overflows",
            "Newcomers not kept because every entry was a live peer.",
            in->peer_table_overflows);
    s_family(reply, "info", "gauge", "This sidecar; the value is always 1.");
    const char *names[] = {"version", "node_id", "channel", "mode"};
    const char *values[] = {in->version, in->node_id, in->channel, in->mode};
    http_reply_printf(reply, PREFIX "info{");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        http_reply_printf(reply, "%s%s=\"", i ? "," : "", names[i]);
        s_label_value(reply, values[i]);
        http_reply_printf(reply, "\"");
    }
    http_reply_printf(reply, "} 1\n");
    s_family(reply, "curve", "gauge",
             "1 when every TCP link is CurveZMQ (keys: ephemeral, made at "
             "start and announced by gossip, or static, --curve-cert), 0 "
             "when links are plaintext.");
    http_reply_printf(reply, PREFIX "curve{keys=\"%s\"} %d\n",
                      in->curve ? in->curve : "none", in->curve != NULL);
    for (size_t i = 0; i < sizeof s_counters / sizeof s_counters[0]; i++) {
        s_counter(reply, in->stats, &s_counters[i]);
    }
    s_histogram(reply, in->stats);
    s_state_gauges(reply, in);
    s_peers(reply, in->peers);
    s_family(reply, "build_info", "gauge",
             "The build of this roomcastd; the value is always 1.");
    http_reply_printf(reply, PREFIX "build_info{version=\"");
    s_label_value(reply, in->version);
    http_reply_printf(reply, "\"} 1\n");
    s_process(reply);
}

int metrics_readyz(bool readable, bool writable, http_reply_t *reply)
{
    reply->content_type = HTTP_TEXT;
    if (readable && writable) {
        reply->status = 200;
        http_reply_printf(reply, "ready\n");
        return 200;
    }
    reply->status = 503;
    if (!readable) {
        http_reply_printf(reply, "not readable: no peer heard lately\n");
    }
    if (!writable) {
        http_reply_printf(reply, "not writable: no peer hears us\n");
    }
    return 503;
}

void metrics_render_process(http_reply_t *reply)
{
    s_process(reply);
}
