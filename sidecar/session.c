/*  session: see session.h. Every frame an app may send has one handler in
    s_handlers; a frame that fails validation is answered with an ERR that
    names the problem and counted, and touches no other client. */
#include "session.h"
#include "fanout.h"
#include "log.h"
#include "gossip.h"
#include "mesh.h"
#include "presence.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void(handler_fn)(server_t *server, conn_t *conn, const wire_frame_t *f);

// --- validation
// ----------------------------------------------------------------

//  A namespace or topic: 1 to 255 bytes, no control characters (so they
//  print safely and "\x01" and "\t" stay free as separators).
static const char *s_name_problem(wire_str_t name)
{
    if (name.len == 0) {
        return "is empty";
    }
    if (name.len > WIRE_MAX_NAME) {
        return "is longer than 255 bytes";
    }
    for (uint32_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.ptr[i];
        if (c < 0x20 || c == 0x7f) {
            return "holds a control character";
        }
    }
    return NULL;
}

static bool s_names_ok(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    const char *problem = s_name_problem(f->ns);
    const char *which = "namespace";
    if (!problem) {
        problem = s_name_problem(f->topic);
        which = "topic";
    }
    if (problem) {
        server_stats(server)->bad_frames++;
        conn_send_err(server, conn, f->req, WIRE_E_BADNAME, "%s %s %s",
                      wire_type_name(f->type), which, problem);
        return false;
    }
    return true;
}

// --- handlers
// -----------------------------------------------------------------

void session_send_status(server_t *server, conn_t *conn)
{
    const server_health_t *h = server_health(server);
    wire_frame_t f = {.type = WIRE_STATUS,
                      .readable = h->readable,
                      .writable = h->writable,
                      .count = h->live_peers,
                      .text = wire_str(h->detail)};
    conn_send(server, conn, &f);
}

static void s_hello(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    const config_t *cfg = server_config(server);
    if (conn->hello) {
        conn_send_err(server, conn, 0, WIRE_E_ORDER, "HELLO sent twice");
        return;
    }
    if (f->version != WIRE_VERSION) {
        char why[96];
        snprintf(why, sizeof why,
                 "protocol version %llu not supported (this sidecar: %d)",
                 (unsigned long long)f->version, WIRE_VERSION);
        conn_close_with(server, conn, WIRE_E_VERSION, why);
        return;
    }
    conn->hello = true;
    conn->hello_flags = (uint32_t)f->flags;
    memcpy(conn->instance, f->id.ptr, sizeof conn->instance);
    snprintf(conn->name, sizeof conn->name, "%.*s", (int)f->name.len,
             f->name.ptr);
    wire_frame_t w = {.type = WIRE_WELCOME,
                      .version = WIRE_VERSION,
                      .node = {(const char *)server_node_id(server), 16},
                      .channel = wire_str(cfg->channel),
                      .max_payload = cfg->max_payload,
                      .name = wire_str(ROOMCAST_VERSION_STRING)};
    conn_send(server, conn, &w);
    session_send_status(server, conn);
}

static void s_sub(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    if (!s_names_ok(server, conn, f)) {
        return;
    }
    int rc = registry_join(server_registry(server), &conn->reg, f->ns.ptr,
                           f->ns.len, f->topic.ptr, f->topic.len);
    if (rc < 0) {
        conn_send_err(server, conn, f->req, WIRE_E_LIMIT,
                      "SUB refused: sidecar out of memory");
        return;
    }
    server_stats(server)->subscribes += (uint64_t)rc;
    //  locally the subscription is in effect at once; the mesh says
    //  "everywhere" in a second SUBACK when every live peer holds it
    mesh_t *mesh = server_mesh(server);
    wire_frame_t ack = {.type = WIRE_SUBACK,
                        .req = f->req,
                        .ns = f->ns,
                        .topic = f->topic,
                        .everywhere = mesh == NULL};
    conn_send(server, conn, &ack);
    if (mesh) {
        mesh_confirm(mesh, conn, f->req, f);
    }
}

static void s_unsub(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    if (!s_names_ok(server, conn, f)) {
        return;
    }
    int rc = registry_leave(server_registry(server), &conn->reg, f->ns.ptr,
                            f->ns.len, f->topic.ptr, f->topic.len);
    server_stats(server)->unsubscribes += (uint64_t)rc;
}

static void s_pub(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    const config_t *cfg = server_config(server);
    if (!s_names_ok(server, conn, f)) {
        return;
    }
    if (f->payload.len > cfg->max_payload) {
        server_stats(server)->bad_frames++;
        conn_send_err(server, conn, f->req, WIRE_E_TOOBIG,
                      "PUB payload of %u bytes is over the limit of %zu",
                      f->payload.len, cfg->max_payload);
        return;
    }
    if (f->flags & ~(uint64_t)(WIRE_F_BINARY | WIRE_F_ECHO)) {
        server_stats(server)->bad_frames++;
        conn_send_err(server, conn, f->req, WIRE_E_PROTO,
                      "PUB flags 0x%llx: unknown bits",
                      (unsigned long long)f->flags);
        return;
    }
    server_stats(server)->publishes++;
    conn->published++;
    fanout_msg_t msg = {.ns = f->ns,
                        .topic = f->topic,
                        .flags = f->flags,
                        .instance = conn->instance,
                        .node = server_node_id(server),
                        .seq = f->seq,
                        .payload = f->payload};
    if (fanout_deliver(server_fanout(server), &msg, conn) < 0) {
        conn_send_err(server, conn, f->req, WIRE_E_LIMIT,
                      "PUB dropped: sidecar out of memory");
    }
    if (server_mesh(server)) {
        mesh_publish(server_mesh(server), &msg);
    }
}

static bool s_key_ok(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    const char *problem = s_name_problem(f->arg);
    if (problem) {
        server_stats(server)->bad_frames++;
        conn_send_err(server, conn, f->req, WIRE_E_BADNAME,
                      "%s presence key %s", wire_type_name(f->type), problem);
        return false;
    }
    return true;
}

static void s_pset(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    if (!s_names_ok(server, conn, f) || !s_key_ok(server, conn, f)) {
        return;
    }
    if (f->meta.len > 65536) {
        conn_send_err(server, conn, f->req, WIRE_E_TOOBIG,
                      "PSET meta of %u bytes is over 64 KiB", f->meta.len);
        return;
    }
    if (presence_set(server_presence(server), conn, f->ns, f->topic, f->arg,
                     f->meta)) {
        conn_send_err(server, conn, f->req,
                      errno == EEXIST ? WIRE_E_DENIED : WIRE_E_LIMIT,
                      "PSET refused: %s",
                      errno == EEXIST ? "another app holds that key"
                                      : "sidecar out of memory");
    }
}

static void s_pclear(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    if (s_names_ok(server, conn, f) && s_key_ok(server, conn, f)) {
        //  clearing what is not there is fine: clear is idempotent
        (void)presence_clear(server_presence(server), conn, f->ns, f->topic,
                             f->arg);
    }
}

static void s_plist(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    if (!s_names_ok(server, conn, f)) {
        return;
    }
    presence_list(server_presence(server), conn, f->ns, f->topic);
    wire_frame_t done = {.type = WIRE_REPLY, .req = f->req};
    conn_send(server, conn, &done); // the PEVENTs before it are the list
}

static void s_ping(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    wire_frame_t pong = {.type = WIRE_PONG, .token = f->token};
    conn_send(server, conn, &pong);
}

static void s_pong(server_t *server, conn_t *conn, const wire_frame_t *f)
{
    (void)server;
    (void)conn;
    (void)f;
}

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

static void s_hex(const uint8_t *id, char *out)
{
    for (int i = 0; i < 16; i++) {
        sprintf(out + 2 * i, "%02x", id[i]);
    }
}

static int s_q_status(server_t *server, conn_t *conn, const char *arg,
                      rows_t *rows)
{
    (void)conn;
    (void)arg;
    const config_t *cfg = server_config(server);
    const stats_t *st = server_stats(server);
    const server_health_t *h = server_health(server);
    registry_t *reg = server_registry(server);
    char node[33];
    s_hex(server_node_id(server), node);
    s_row(rows, "node_id", "%s", node);
    s_row(rows, "name", "%s", cfg->name);
    s_row(rows, "channel", "%s", cfg->channel);
    s_row(rows, "version", "%s", ROOMCAST_VERSION_STRING);
    mesh_t *mesh = server_mesh(server);
    s_row(rows, "mode", "%s", mesh ? mesh_mode(mesh) : "local");
    s_row(rows, "socket", "%s", cfg->socket_path);
    s_row(rows, "readable", "%s", h->readable ? "true" : "false");
    s_row(rows, "writable", "%s", h->writable ? "true" : "false");
    s_row(rows, "live_peers", "%u", h->live_peers);
    if (server_gossip(server)) {
        s_row(rows, "members_alive", "%zu",
              gossip_alive(server_gossip(server)));
    }
    s_row(rows, "health", "%s", h->detail);
    s_row(rows, "clients", "%zu", server_clients(server));
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
    COUNTER(env_duplicates);
    COUNTER(env_own);
    COUNTER(env_stale);
    COUNTER(gaps);
    COUNTER(missed);
    COUNTER(control_received);
    COUNTER(control_bad);
    COUNTER(mesh_send_failed);
    COUNTER(gossip_in);
    COUNTER(gossip_out);
    COUNTER(gossip_undecryptable);
    COUNTER(gossip_bad);
    COUNTER(curve_refused);
#undef COUNTER
    return 0;
}

static int s_q_topics(server_t *server, conn_t *conn, const char *arg,
                      rows_t *rows)
{
    (void)conn;
    registry_t *reg = server_registry(server);
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

static int s_q_numsub(server_t *server, conn_t *conn, const char *arg,
                      rows_t *rows)
{
    (void)conn;
    const char *tab = strchr(arg, '\t');
    if (!tab) {
        errno = EINVAL;
        return -1;
    }
    registry_topic_t *t =
        registry_lookup(server_registry(server), arg, (size_t)(tab - arg),
                        tab + 1, strlen(tab + 1));
    s_row(rows, arg, "%zu", t ? t->count : 0);
    return 0;
}

static int s_q_clients(server_t *server, conn_t *conn, const char *arg,
                       rows_t *rows)
{
    (void)conn;
    (void)arg;
    uint64_t now = server_now(server);
    for (conn_t *c = server_first_conn(server); c; c = c->next) {
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

static int s_q_peers(server_t *server, conn_t *conn, const char *arg,
                     rows_t *rows)
{
    (void)conn;
    (void)arg;
    if (server_mesh(server)) {
        mesh_peer_rows(server_mesh(server), s_peer_row, rows);
    }
    return 0;
}

static int s_q_members(server_t *server, conn_t *conn, const char *arg,
                       rows_t *rows)
{
    (void)conn;
    (void)arg;
    if (server_gossip(server)) {
        gossip_member_rows(server_gossip(server), s_peer_row, rows);
    }
    return 0;
}

static int s_q_presence(server_t *server, conn_t *conn, const char *arg,
                        rows_t *rows)
{
    (void)conn;
    const char *tab = strchr(arg, '\t');
    if (!tab) {
        errno = EINVAL;
        return -1;
    }
    presence_list_rows(server_presence(server),
                       (wire_str_t){arg, (uint32_t)(tab - arg)},
                       wire_str(tab + 1), s_peer_row, rows);
    return 0;
}

static int s_q_peer_add(server_t *server, conn_t *conn, const char *arg,
                        rows_t *rows)
{
    (void)conn;
    if (!server_mesh(server) || mesh_peer_add(server_mesh(server), arg, NULL)) {
        return -1;
    }
    s_row(rows, "added", "%s", arg);
    return 0;
}

static int s_q_peer_remove(server_t *server, conn_t *conn, const char *arg,
                           rows_t *rows)
{
    (void)conn;
    if (!server_mesh(server) || mesh_peer_remove(server_mesh(server), arg)) {
        return -1;
    }
    s_row(rows, "removed", "%s", arg);
    return 0;
}

typedef int(query_fn)(server_t *server, conn_t *conn, const char *arg,
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

static void s_query(server_t *server, conn_t *conn, const wire_frame_t *f)
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
        conn_send_err(server, conn, f->req, WIRE_E_BADQUERY,
                      "unknown QUERY '%s' (status, topics, numsub, clients, "
                      "peers, members, peer-add, peer-remove)",
                      what);
        return;
    }
    rows_t rows = {.limit = server_config(server)->max_payload};
    if (fn(server, conn, arg, &rows)) {
        conn_send_err(server, conn, f->req, WIRE_E_BADQUERY,
                      "QUERY %s: bad argument '%s'", what, arg);
    } else {
        if (rows.left_out) {
            rows.limit += 64;
            s_row(&rows, "truncated", "%zu rows left out", rows.left_out);
        }
        server_stats(server)->queries++;
        wire_frame_t r = {.type = WIRE_REPLY,
                          .req = f->req,
                          .rows = rows.cells,
                          .nrows = rows.n};
        conn_send(server, conn, &r);
    }
    for (size_t i = 0; i < 2 * rows.n; i++) {
        free(rows.owned[i]);
    }
    free(rows.owned);
    free(rows.cells);
}

void session_notify_gap(server_t *server, const fanout_msg_t *msg,
                        uint64_t missed)
{
    registry_topic_t *t =
        registry_lookup(server_registry(server), msg->ns.ptr, msg->ns.len,
                        msg->topic.ptr, msg->topic.len);
    wire_frame_t gap = {.type = WIRE_GAP,
                        .ns = msg->ns,
                        .topic = msg->topic,
                        .id = {(const char *)msg->instance, 16},
                        .count = missed};
    for (size_t i = 0; t && i < t->count; i++) {
        conn_t *conn = registry_member(t, i);
        if (conn->hello_flags & WIRE_HF_GAPS) {
            conn_send(server, conn, &gap);
        }
    }
}

// --- dispatch
// -----------------------------------------------------------------

static handler_fn *const s_handlers[WIRE_TYPE_MAX] = {
    [WIRE_HELLO] = s_hello, [WIRE_SUB] = s_sub,   [WIRE_UNSUB] = s_unsub,
    [WIRE_PUB] = s_pub,     [WIRE_PING] = s_ping, [WIRE_PONG] = s_pong,
    [WIRE_QUERY] = s_query, [WIRE_PSET] = s_pset, [WIRE_PCLEAR] = s_pclear,
    [WIRE_PLIST] = s_plist,
};

void session_frame(server_t *server, conn_t *conn, wire_decoder_t *decoder,
                   const uint8_t *body, size_t len)
{
    stats_t *st = server_stats(server);
    wire_frame_t f;
    if (wire_decode(decoder, body, len, &f)) {
        st->bad_frames++;
        if (errno == EBADMSG) {
            conn_send_err(server, conn, 0, WIRE_E_BADTYPE,
                          "unknown frame type %d", f.type);
        } else {
            //  not the protocol: nothing later on this stream can be
            //  trusted to be framed right
            st->closed_proto++;
            char why[160];
            snprintf(why, sizeof why, "bad frame (%s): connection closed",
                     wire_decoder_error(decoder));
            conn_close_with(server, conn, WIRE_E_PROTO, why);
        }
        return;
    }
    handler_fn *handler = s_handlers[f.type];
    if (!handler) {
        st->bad_frames++;
        conn_send_err(server, conn, f.req, WIRE_E_BADTYPE,
                      "%s is sent by the sidecar, not to it",
                      wire_type_name(f.type));
        return;
    }
    if (!conn->hello && f.type != WIRE_HELLO) {
        st->bad_frames++;
        conn_send_err(server, conn, f.req, WIRE_E_ORDER,
                      "%s before HELLO: say HELLO first",
                      wire_type_name(f.type));
        return;
    }
    handler(server, conn, &f);
}
