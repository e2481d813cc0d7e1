/*  node_query: the roomcastctl query backend (QUERY frames), part of the
    coordinator: each query reads the components through their headers and
    answers with rows of (key, value) strings, within the reply size limit.
    The row formats are documented in roomcast.h (rc_query). */
#include "curve.h"
#include "ids.h"
#include "node_impl.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// --- queries
// ------------------------------------------------------------------

typedef struct {
    wire_str_t *cells;
    char **owned;
    size_t n, cap, bytes, limit;
    size_t left_out; // rows not added: over the reply size limit
} rows_t;

static void s_row(rows_t *rows, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_row(rows_t *rows, const char *key, const char *fmt, ...)
{
    char value[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(value, sizeof value, fmt, args);
    va_end(args);
    size_t size = strlen(key) + strlen(value) + 8;
    if (rows->bytes + size > rows->limit) {
        rows->left_out++;
        return;
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? 2 * rows->cap : 32;
        wire_str_t *cells = realloc(rows->cells, 2 * cap * sizeof *cells);
        char **owned =
            cells ? realloc(rows->owned, 2 * cap * sizeof *owned) : NULL;
        if (cells) {
            rows->cells = cells;
        }
        if (!owned) {
            rows->left_out++;
            return;
        }
        rows->owned = owned;
        rows->cap = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        rows->left_out++;
        return;
    }
    rows->owned[2 * rows->n] = k;
    rows->owned[2 * rows->n + 1] = v;
    rows->cells[2 * rows->n] = wire_str(k);
    rows->cells[2 * rows->n + 1] = wire_str(v);
    rows->n++;
    rows->bytes += size;
}

static int s_q_status(node_t *self, conn_t *conn, const char *arg, rows_t *rows)
{
    (void)conn;
    (void)arg;
    const config_t *cfg = self->cfg;
    const stats_t *st = self->stats;
    const health_t *h = &self->health;
    registry_t *reg = self->registry;
    s_row(rows, "node_id", "%s", self->id_hex);
    s_row(rows, "name", "%s", cfg->name);
    s_row(rows, "channel", "%s", cfg->channel);
    s_row(rows, "version", "%s", ROOMCAST_VERSION_STRING);
    mesh_t *mesh = self->mesh;
    s_row(rows, "mode", "%s", mesh ? mesh_mode(mesh) : "local");
    s_row(rows, "curve", "%s", node_curve(self));
    s_row(rows, "curve_key", "%s",
          mesh && mesh_curve(mesh) ? curve_public_z85(mesh_curve(mesh)) : "-");
    s_row(rows, "socket", "%s", cfg->socket_path);
    s_row(rows, "readable", "%s", h->readable ? "true" : "false");
    s_row(rows, "writable", "%s", h->writable ? "true" : "false");
    s_row(rows, "live_peers", "%u", h->live_peers);
    if (mesh) {
        unsigned live, down;
        mesh_peer_counts(mesh, &live, &down);
        s_row(rows, "peers_down", "%u", down);
        s_row(rows, "mesh_lost_out", "%llu",
              (unsigned long long)mesh_lost_out(mesh));
        size_t entries, cap;
        uint64_t overflows;
        mesh_peer_table(mesh, &entries, &cap, &overflows);
        s_row(rows, "peer_table", "%zu", entries);
        s_row(rows, "peer_table_cap", "%zu", cap);
        s_row(rows, "peer_table_overflows", "%llu",
              (unsigned long long)overflows);
    }
    if (self->gossip) {
        s_row(rows, "members_alive", "%zu", gossip_alive(self->gossip));
    }
    s_row(rows, "health", "%s", h->detail);
    s_row(rows, "clients", "%zu", server_clients(self->server));
    s_row(rows, "topics", "%zu", registry_topics(reg));
    s_row(rows, "subscriptions", "%zu", registry_memberships(reg));
#define COUNTER(name) s_row(rows, #name, "%llu", (unsigned long long)st->name)
    COUNTER(clients_accepted);
    COUNTER(clients_refused);
    COUNTER(publishes);
    COUNTER(deliveries);
    COUNTER(dropped_slow);
    COUNTER(closed_slow);
    COUNTER(closed_proto);
    COUNTER(bad_frames);
    COUNTER(errors_sent);
    COUNTER(bytes_in);
    COUNTER(bytes_out);
    COUNTER(fanouts);
    COUNTER(fanout_us_sum);
    COUNTER(env_sent);
    COUNTER(env_received);
    COUNTER(env_undecryptable);
    COUNTER(env_malformed);
    COUNTER(env_refused_format);
    COUNTER(env_batches);
    COUNTER(env_duplicates);
    COUNTER(env_own);
    COUNTER(env_stale);
    COUNTER(gaps);
    COUNTER(missed);
    COUNTER(control_received);
    COUNTER(control_bad);
    COUNTER(control_replayed);
    COUNTER(mesh_send_failed);
    COUNTER(mesh_blocked);
    COUNTER(mesh_blocked_ms);
    COUNTER(mesh_peers_cut);
    COUNTER(repair_requests_sent);
    COUNTER(repair_requests_served);
    COUNTER(repair_resent);
    COUNTER(repaired);
    COUNTER(repair_unrepaired);
    COUNTER(repair_timeouts);
    COUNTER(relinks);
    COUNTER(relink_resent);
    COUNTER(test_dropped);
    COUNTER(gossip_in);
    COUNTER(gossip_out);
    COUNTER(gossip_undecryptable);
    COUNTER(gossip_bad);
    COUNTER(curve_refused);
    COUNTER(presence_refused);
    COUNTER(refused_order);
    COUNTER(refused_name);
    COUNTER(refused_size);
    COUNTER(refused_type);
    COUNTER(refused_flags);
    COUNTER(refused_query);
    COUNTER(refused_version);
    COUNTER(refused_protocol);
    COUNTER(closed_partial);
    COUNTER(closed_partial_budget);
    COUNTER(partial_bytes);
#undef COUNTER
    return 0;
}

static int s_q_topics(node_t *self, conn_t *conn, const char *arg, rows_t *rows)
{
    (void)conn;
    registry_t *reg = self->registry;
    for (registry_topic_t *t = registry_first(reg); t; t = registry_next(reg)) {
        char key[2 * WIRE_MAX_NAME + 2];
        snprintf(key, sizeof key, "%.*s\t%.*s", (int)t->ns_len, t->ns,
                 (int)t->topic_len, t->topic);
        if (*arg && fnmatch(arg, key + t->ns_len + 1, 0) != 0 &&
            fnmatch(arg, key, 0) != 0) {
            continue;
        }
        s_row(rows, key, "%zu", t->count);
    }
    return 0;
}

static int s_q_numsub(node_t *self, conn_t *conn, const char *arg, rows_t *rows)
{
    (void)conn;
    const char *tab = strchr(arg, '\t');
    if (!tab) {
        errno = EINVAL;
        return -1;
    }
    registry_topic_t *t = registry_lookup(
        self->registry, arg, (size_t)(tab - arg), tab + 1, strlen(tab + 1));
    s_row(rows, arg, "%zu", t ? t->count : 0);
    return 0;
}

static int s_q_clients(node_t *self, conn_t *conn, const char *arg,
                       rows_t *rows)
{
    (void)conn;
    (void)arg;
    uint64_t now = loop_now(self->loop);
    for (conn_t *c = server_first_conn(self->server); c; c = c->next) {
        char id[24];
        snprintf(id, sizeof id, "%llu", (unsigned long long)c->id);
        s_row(rows, id,
              "name=%s pid=%d uid=%u gid=%u topics=%zu queued=%zu "
              "published=%llu dropped=%llu age_s=%llu",
              *c->name ? c->name : "-", (int)c->cred.pid, (unsigned)c->cred.uid,
              (unsigned)c->cred.gid, c->reg.count, c->out.bytes,
              (unsigned long long)c->published, (unsigned long long)c->dropped,
              (unsigned long long)((now - c->since) / 1000));
    }
    return 0;
}

static void s_peer_row(void *arg, const char *key, const char *value)
{
    s_row(arg, key, "%s", value);
}

static int s_q_peers(node_t *self, conn_t *conn, const char *arg, rows_t *rows)
{
    (void)conn;
    (void)arg;
    if (self->mesh) {
        mesh_peer_rows(self->mesh, s_peer_row, rows);
    }
    return 0;
}

static int s_q_members(node_t *self, conn_t *conn, const char *arg,
                       rows_t *rows)
{
    (void)conn;
    (void)arg;
    if (self->gossip) {
        gossip_member_rows(self->gossip, s_peer_row, rows);
    }
    return 0;
}

//  key the entry's key, value "node=<hex> meta=<text or [N bytes]>".
static void s_presence_row(void *arg, const presence_entry_t *e)
{
    bool text = true;
    for (size_t i = 0; i < e->meta_len; i++) {
        text &= e->meta[i] >= 0x20 && e->meta[i] < 0x7f;
    }
    char hex[IDS_HEX_SIZE];
    ids_hex(e->node, hex);
    if (text) {
        s_row(arg, e->key, "node=%s meta=%.*s", hex,
              (int)(e->meta_len > 200 ? 200 : e->meta_len),
              (const char *)e->meta);
    } else {
        s_row(arg, e->key, "node=%s meta=[%zu bytes]", hex, e->meta_len);
    }
}

static int s_q_presence(node_t *self, conn_t *conn, const char *arg,
                        rows_t *rows)
{
    (void)conn;
    const char *tab = strchr(arg, '\t');
    if (!tab) {
        errno = EINVAL;
        return -1;
    }
    presence_list(self->presence, (wire_str_t){arg, (uint32_t)(tab - arg)},
                  wire_str(tab + 1), s_presence_row, rows);
    return 0;
}

static int s_q_peer_add(node_t *self, conn_t *conn, const char *arg,
                        rows_t *rows)
{
    (void)conn;
    if (!self->mesh || mesh_peer_add(self->mesh, arg, NULL)) {
        return -1;
    }
    s_row(rows, "added", "%s", arg);
    return 0;
}

static int s_q_peer_remove(node_t *self, conn_t *conn, const char *arg,
                           rows_t *rows)
{
    (void)conn;
    if (!self->mesh || mesh_peer_remove(self->mesh, arg)) {
        return -1;
    }
    s_row(rows, "removed", "%s", arg);
    return 0;
}

typedef int(query_fn)(node_t *self, conn_t *conn, const char *arg,
                      rows_t *rows);

static const struct {
    const char *what;
    query_fn *fn;
} s_queries[] = {
    {"status", s_q_status},
    {"topics", s_q_topics},
    {"numsub", s_q_numsub},
    {"clients", s_q_clients},
    {"peers", s_q_peers},
    {"members", s_q_members},
    {"presence", s_q_presence},
    {"peer-add", s_q_peer_add},
    {"peer-remove", s_q_peer_remove},
};

void node_query(node_t *self, conn_t *conn, const wire_frame_t *f)
{
    char what[32], arg[2 * WIRE_MAX_NAME + 2];
    snprintf(what, sizeof what, "%.*s", (int)f->text.len, f->text.ptr);
    snprintf(arg, sizeof arg, "%.*s", (int)f->arg.len, f->arg.ptr);
    query_fn *fn = NULL;
    for (size_t i = 0; i < sizeof s_queries / sizeof s_queries[0]; i++) {
        if (strcmp(what, s_queries[i].what) == 0) {
            fn = s_queries[i].fn;
        }
    }
    if (!fn) {
        STATS_REFUSED(self->stats, query);
        session_err(self->session, conn, f->req, WIRE_E_BADQUERY,
                    "unknown QUERY '%s' (status, topics, numsub, clients, "
                    "peers, members, presence, peer-add, peer-remove)",
                    what);
        return;
    }
    rows_t rows = {.limit = self->cfg->max_payload};
    if (fn(self, conn, arg, &rows)) {
        STATS_REFUSED(self->stats, query);
        session_err(self->session, conn, f->req, WIRE_E_BADQUERY, "%s '%s': %s",
                    what, arg,
                    !self->mesh       ? "this sidecar has no mesh"
                    : errno == ENOENT ? "no such link (roomcastctl peers "
                                        "lists them)"
                    : errno == EEXIST ? "already linked"
                    : errno == ENOKEY ? "CurveZMQ is on: give the peer's "
                                        "key, ENDPOINT@KEY"
                    : errno == EINVAL && strncmp(what, "peer", 4) == 0
                        ? "not an endpoint (tcp://HOST:PORT)"
                        : "bad argument");
    } else {
        if (rows.left_out) {
            rows.limit += 64;
            s_row(&rows, "truncated", "%zu rows left out", rows.left_out);
        }
        self->stats->queries++;
        wire_frame_t r = {.type = WIRE_REPLY,
                          .req = f->req,
                          .rows = rows.cells,
                          .nrows = rows.n};
        server_send(self->server, conn, &r);
    }
    for (size_t i = 0; i < 2 * rows.n; i++) {
        free(rows.owned[i]);
    }
    free(rows.owned);
    free(rows.cells);
}
