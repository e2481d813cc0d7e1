/*  node: see node.h. The components report here; the policies that join
    them live here and nowhere else. */
#include "node_impl.h"
#include "curve.h"
#include "ids.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define TICK_MS     500   // housekeeping period
#define WAIT_MAX_MS 30000 // a confirmation nobody gives is forgotten

// --- health
// -------------------------------------------------------------------

static void s_send_status(node_t *self, conn_t *conn)
{
    const health_t *h = &self->health;
    wire_frame_t f = {.type = WIRE_STATUS,
                      .readable = h->readable,
                      .writable = h->writable,
                      .count = h->live_peers,
                      .text = wire_str(h->detail)};
    server_send(self->server, conn, &f);
}

//  What apps, /readyz and metrics see; every app is told of a change.
static void s_set_health(node_t *self, bool readable, bool writable,
                         unsigned live_peers, const char *detail)
{
    health_t *h = &self->health;
    if (h->readable == readable && h->writable == writable &&
        h->live_peers == live_peers && strcmp(h->detail, detail) == 0) {
        return;
    }
    h->readable = readable;
    h->writable = writable;
    h->live_peers = live_peers;
    snprintf(h->detail, sizeof h->detail, "%s", detail);
    for (conn_t *c = server_first_conn(self->server); c; c = c->next) {
        if (c->hello) {
            s_send_status(self, c);
        }
    }
}

// --- the publish path
// ---------------------------------------------------------

//  A valid PUB from an app: its local subscribers at once, whatever the
//  mesh's state, then the other sidecars.
static void s_on_pub(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_t *self = arg;
    if (node_memory_refuses(self, conn, f->req, NODE_MEM_PUB)) {
        return;
    }
    self->stats->publishes++;
    conn->published++;
    msg_t msg = {.ns = f->ns,
                 .topic = f->topic,
                 .flags = f->flags,
                 .instance = conn->instance,
                 .node = self->id,
                 .seq = f->seq,
                 .payload = f->payload};
    if (fanout_deliver(self->fanout, &msg, conn) < 0) {
        session_err(self->session, conn, f->req, WIRE_E_LIMIT,
                    "PUB dropped: sidecar out of memory");
    }
    if (self->mesh) {
        mesh_publish(self->mesh, &msg);
    }
}

// --- the receive path
// ---------------------------------------------------------

//  Tell the members of msg's topic that asked for GAP notices that missed
//  messages of msg's stream were lost, for reason (WIRE_GAP_*).
static void s_notify_gap(node_t *self, const msg_t *msg, uint64_t missed,
                         int reason)
{
    registry_topic_t *t =
        registry_lookup(self->registry, msg->ns.ptr, msg->ns.len,
                        msg->topic.ptr, msg->topic.len);
    wire_frame_t gap = {.type = WIRE_GAP,
                        .ns = msg->ns,
                        .topic = msg->topic,
                        .id = {(const char *)msg->instance, 16},
                        .count = missed,
                        .code = (uint64_t)reason};
    for (size_t i = 0; t && i < t->count; i++) {
        conn_t *conn = registry_member(t, i);
        if (conn->hello_flags & WIRE_HF_GAPS) {
            server_send(self->server, conn, &gap);
        }
    }
}

//  An envelope from another sidecar, opened and deduplicated by the mesh.
static void s_on_mesh_message(void *arg, const msg_t *msg, uint64_t missed)
{
    node_t *self = arg;
    if (missed) {
        s_notify_gap(self, msg, missed, WIRE_GAP_MESH);
    }
    fanout_deliver(self->fanout, msg, NULL);
}

//  Lost for another reason than the mesh's (the origin died before it
//  could re-send what we asked for); the message follows.
static void s_on_mesh_lost(void *arg, const msg_t *msg, uint64_t missed,
                           int reason)
{
    s_notify_gap(arg, msg, missed, reason);
}

//  A peer's link is full: the publishing apps wait (backpressure) rather
//  than their messages being dropped between live sidecars.
static void s_on_mesh_blocked(void *arg, bool on)
{
    node_t *self = arg;
    server_pause(self->server, on);
}

static void s_on_mesh_received(void *arg)
{
    node_t *self = arg;
    server_flush(self->server); // deliveries go out in the turn they came
}

// --- subscriptions and their confirmation
// -------------------------------------

static void s_suback_everywhere(node_t *self, const waiter_t *w)
{
    wire_frame_t ack = {.type = WIRE_SUBACK,
                        .req = w->req,
                        .ns = wire_str(w->ns),
                        .topic = wire_str(w->topic),
                        .everywhere = true};
    server_send(self->server, w->conn, &ack);
}

//  Answer the waiters whose marker every live peer acked (upto), forget
//  those whose app left or that waited too long.
static void s_check_waiters(node_t *self, uint64_t upto)
{
    uint64_t now = loop_now(self->loop);
    waiter_t **pp = &self->waiters;
    while (*pp) {
        waiter_t *w = *pp;
        bool done = w->conn->fd < 0 || w->marker <= upto;
        bool expired = now - w->since > WAIT_MAX_MS;
        if (!done && !expired) {
            pp = &w->next;
            continue;
        }
        if (w->conn->fd >= 0 && done) {
            s_suback_everywhere(self, w);
        } else if (expired) {
            log_debug("confirm_expired", "topic=%s", w->topic);
        }
        server_release(self->server, w->conn);
        *pp = w->next;
        free(w);
    }
}

static void s_on_mesh_confirmed(void *arg, uint64_t upto)
{
    s_check_waiters(arg, upto);
}

//  Locally a subscription is in effect at once; with a mesh a second
//  SUBACK says "everywhere" once every live peer holds it.
static void s_on_sub(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_t *self = arg;
    if (node_memory_refuses(self, conn, f->req, NODE_MEM_SUB)) {
        return;
    }
    int rc = registry_join(self->registry, &conn->reg, f->ns.ptr, f->ns.len,
                           f->topic.ptr, f->topic.len);
    if (rc < 0) {
        session_err(self->session, conn, f->req, WIRE_E_LIMIT,
                    "SUB refused: sidecar out of memory");
        return;
    }
    self->stats->subscribes += (uint64_t)rc;
    uint64_t marker = 0;
    bool wait = self->mesh && mesh_sub_wait(self->mesh, &marker);
    wire_frame_t ack = {.type = WIRE_SUBACK,
                        .req = f->req,
                        .ns = f->ns,
                        .topic = f->topic,
                        .everywhere = self->mesh == NULL};
    server_send(self->server, conn, &ack);
    if (!self->mesh) {
        return;
    }
    waiter_t *w = calloc(1, sizeof *w);
    if (!w) {
        return; // the app's rc_subscribe_wait times out: it is told
    }
    w->conn = conn;
    w->req = f->req;
    snprintf(w->ns, sizeof w->ns, "%.*s", (int)f->ns.len, f->ns.ptr);
    snprintf(w->topic, sizeof w->topic, "%.*s", (int)f->topic.len,
             f->topic.ptr);
    if (!wait) {
        s_suback_everywhere(self, w);
        free(w);
        return;
    }
    w->marker = marker;
    w->since = loop_now(self->loop);
    server_hold(self->server, conn);
    w->next = self->waiters;
    self->waiters = w;
}

static void s_on_unsub(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_t *self = arg;
    int rc = registry_leave(self->registry, &conn->reg, f->ns.ptr, f->ns.len,
                            f->topic.ptr, f->topic.len);
    self->stats->unsubscribes += (uint64_t)rc;
}

//  Lazy interest: the mesh receives a topic while it has a local member.
static void s_on_first_member(registry_topic_t *t, void *arg)
{
    node_t *self = arg;
    if (self->mesh) {
        mesh_interest(self->mesh, t->ns, t->ns_len, t->topic, t->topic_len,
                      true);
    }
}

static void s_on_last_member(registry_topic_t *t, void *arg)
{
    node_t *self = arg;
    if (self->mesh) {
        mesh_interest(self->mesh, t->ns, t->ns_len, t->topic, t->topic_len,
                      false);
    }
}

// --- presence
// -----------------------------------------------------------------

static void s_on_pset(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_t *self = arg;
    if (node_memory_refuses(self, conn, f->req, NODE_MEM_PSET)) {
        return;
    }
    if (presence_set(self->presence, conn, f->ns, f->topic, f->arg, f->meta)) {
        self->stats->presence_refused++;
        session_err(self->session, conn, f->req,
                    errno == EEXIST ? WIRE_E_DENIED : WIRE_E_LIMIT,
                    "PSET refused: %s",
                    errno == EEXIST   ? "another app holds that key"
                    : errno == ENOSPC ? "over the presence budget (10,000 "
                                        "entries or 8 MiB per app, 200,000 "
                                        "entries or 64 MiB per sidecar)"
                                      : "sidecar out of memory");
    }
}

static void s_on_pclear(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_t *self = arg;
    //  clearing what is not there is fine: clear is idempotent
    (void)presence_clear(self->presence, conn, f->ns, f->topic, f->arg);
}

static wire_frame_t s_pevent(const presence_entry_t *e, bool present)
{
    return (wire_frame_t){
        .type = WIRE_PEVENT,
        .ns = wire_str(e->ns),
        .topic = wire_str(e->topic),
        .arg = wire_str(e->key),
        .meta = {(const char *)e->meta, (uint32_t)e->meta_len},
        .node = {(const char *)e->node, 16},
        .present = present};
}

typedef struct {
    node_t *node;
    conn_t *conn;
} list_ctx_t;

static void s_list_entry(void *arg, const presence_entry_t *e)
{
    list_ctx_t *ctx = arg;
    wire_frame_t f = s_pevent(e, true);
    server_send(ctx->node->server, ctx->conn, &f);
}

static void s_on_plist(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_t *self = arg;
    list_ctx_t ctx = {self, conn};
    presence_list(self->presence, f->ns, f->topic, s_list_entry, &ctx);
    wire_frame_t done = {.type = WIRE_REPLY, .req = f->req};
    server_send(self->server, conn, &done); // the PEVENTs before it
}

//  An entry came or went: the apps on its topic that asked are told.
static void s_on_presence_event(void *arg, const presence_entry_t *e,
                                bool present)
{
    node_t *self = arg;
    registry_topic_t *t = registry_lookup(self->registry, e->ns, strlen(e->ns),
                                          e->topic, strlen(e->topic));
    wire_frame_t f = s_pevent(e, present);
    for (size_t i = 0; t && i < t->count; i++) {
        conn_t *conn = registry_member(t, i);
        if (conn->hello_flags & WIRE_HF_PRESENCE) {
            server_send(self->server, conn, &f);
        }
    }
}

static void s_on_presence_send(void *arg, const uint8_t *body, size_t len)
{
    node_t *self = arg;
    if (self->mesh) {
        mesh_send_presence(self->mesh, body, len);
    }
}

static int s_on_mesh_presence(void *arg, const uint8_t *body, size_t len)
{
    node_t *self = arg;
    return presence_on_remote(self->presence, body, len);
}

// --- peers and membership
// -----------------------------------------------------

//  Health is true: with seeds, peers or proxies configured, a sidecar
//  that hears nobody is not "a cluster of one" but not joined yet, and
//  neither readable nor writable (an isolated or wrong-key sidecar never
//  looks ready).
static void s_on_mesh_health(void *arg, const mesh_health_t *h)
{
    node_t *self = arg;
    const config_t *cfg = self->cfg;
    bool expect_peers =
        cfg->joins.count || cfg->peers.count || cfg->proxies.count;
    log_event(h->readable && h->writable ? LOGL_INFO : LOGL_WARN, "mesh_health",
              "readable=%s writable=%s live_peers=%u",
              h->readable ? "true" : "false", h->writable ? "true" : "false",
              h->live_peers);
    if (expect_peers && h->live_peers == 0) {
        s_set_health(self, false, false, 0,
                     "not joined: no peer heard yet (check --join or --peer, "
                     "the cluster key and the channel)");
    } else {
        s_set_health(self, h->readable, h->writable, h->live_peers, h->detail);
    }
}

static void s_on_peer_up(void *arg, const uint8_t node[16])
{
    node_t *self = arg;
    presence_peer_up(self->presence, node); // it learns ours, we its
}

static void s_on_peer_down(void *arg, const uint8_t node[16])
{
    node_t *self = arg;
    presence_peer_down(self->presence, node);
}

//  Tell the apps that asked (WIRE_HF_MEMBERS) that a member changed.
static void s_notify_member(node_t *self, const swim_member_t *m)
{
    wire_frame_t f = {.type = WIRE_MEMBER,
                      .node = {(const char *)m->id, 16},
                      .name = wire_str(m->name),
                      .count = (uint64_t)m->state,
                      .text = wire_str(m->endpoint)};
    for (conn_t *c = server_first_conn(self->server); c; c = c->next) {
        if (c->hello && (c->hello_flags & WIRE_HF_MEMBERS)) {
            server_send(self->server, c, &f);
        }
    }
}

//  Membership drives the mesh: a member alive gets a link to its data
//  endpoint (its CurveZMQ key admitted first, as authenticated gossip
//  vouches for it); a dead, left or forgotten one is down at once, its
//  presence vanishes, and its link and key go unless a live member (the
//  same host restarted) still uses them.
static void s_on_member(void *arg, const swim_member_t *m, int old_state)
{
    node_t *self = arg;
    bool gone =
        m->state == SWIM_DEAD || m->state == SWIM_LEFT || m->state == SWIM_NONE;
    if (m->state != old_state) {
        if (self->mesh) {
            mesh_member_changed(self->mesh, m->id, m->state, m->name,
                                m->endpoint);
        }
        if (gone) {
            presence_node_gone(self->presence, m->id);
        }
        s_notify_member(self, m);
    }
    if (!self->mesh || !*m->endpoint) {
        return;
    }
    static const uint8_t zero[SWIM_KEY_SIZE];
    bool keyed = memcmp(m->pubkey, zero, SWIM_KEY_SIZE) != 0;
    curve_t *curve = mesh_curve(self->mesh);
    if (m->state == SWIM_ALIVE) {
        if (curve && keyed) {
            (void)curve_admit(curve, m->pubkey, m->name);
        }
        if (mesh_peer_add(self->mesh, m->endpoint, keyed ? m->pubkey : NULL) &&
            errno != EEXIST) {
            log_warn("link_failed", "endpoint=%s error=\"%s\"", m->endpoint,
                     errno == ENOKEY ? "member has no CurveZMQ key"
                                     : strerror(errno));
        }
    } else if (gone) {
        if (!gossip_other_live(self->gossip, m, false)) {
            (void)mesh_peer_remove(self->mesh, m->endpoint);
        }
        if (curve && keyed && !gossip_other_live(self->gossip, m, true)) {
            (void)curve_forget(curve, m->pubkey);
        }
    }
}

// --- apps: session and server io
// ----------------------------------------------

static void s_on_send(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_t *self = arg;
    server_send(self->server, conn, f);
}

static void s_on_close(void *arg, conn_t *conn, wire_err_t code,
                       const char *why)
{
    node_t *self = arg;
    server_close_with(self->server, conn, code, why);
}

static void s_on_hello(void *arg, conn_t *conn)
{
    s_send_status(arg, conn);
}

static void s_on_query(void *arg, conn_t *conn, const wire_frame_t *f)
{
    node_query(arg, conn, f);
}

static void s_on_frame(void *arg, conn_t *conn, const uint8_t *body, size_t len)
{
    node_t *self = arg;
    session_frame(self->session, conn, body, len);
}

//  An app is gone: its topics and presence with it (its waiters notice).
static void s_on_closed(void *arg, conn_t *conn)
{
    node_t *self = arg;
    presence_owner_gone(self->presence, conn);
    registry_leave_all(self->registry, &conn->reg);
}

static bool s_on_idle(void *arg)
{
    node_t *self = arg;
    node_memory_idle(self);
    return fanout_run(self->fanout);
}

// --- ops
// ----------------------------------------------------------------------

static void s_offer_peer(void *arg, const mesh_peer_t *p)
{
    metrics_peer_t m = {.state = p->state,
                        .hears_us = p->hears_us,
                        .last_ms = p->last_ms,
                        .received = p->received,
                        .missed = p->missed,
                        .lost_to = p->lost_to};
    ids_hex(p->node, m.node_id);
    snprintf(m.name, sizeof m.name, "%s", p->name);
    metrics_peers_offer(arg, &m);
}

//  Members, per-peer series, queues, presence, the memory cap.
static void s_sample_more(node_t *self, metrics_input_t *in)
{
    if (self->gossip) {
        gossip_counts(self->gossip, in->members);
    }
    if (self->mesh) {
        metrics_peers_reset(&self->sample_peers);
        mesh_peer_each(self->mesh, s_offer_peer, &self->sample_peers);
        in->peers = &self->sample_peers;
    }
    server_queues_t q;
    server_queue_totals(self->server, &q);
    in->queue_bytes = q.bytes;
    in->queue_frames = q.frames;
    in->queue_largest = q.largest;
    in->apps_slow = q.slow;
    presence_usage(self->presence, &in->presence_entries, &in->presence_bytes);
    in->memory_limit = self->mem_limit;
    in->memory_pressure = self->mem_level;
}

const char *node_curve(node_t *self)
{
    curve_t *curve = self->mesh ? mesh_curve(self->mesh) : NULL;
    return !curve ? "off" : curve_ephemeral(curve) ? "ephemeral" : "static";
}

static void s_on_sample(void *arg, metrics_input_t *in)
{
    node_t *self = arg;
    unsigned live = 0, down = 0;
    size_t table = 0, cap = 0;
    uint64_t overflows = 0, lost_out = 0;
    if (self->mesh) {
        mesh_peer_counts(self->mesh, &live, &down);
        mesh_peer_table(self->mesh, &table, &cap, &overflows);
        lost_out = mesh_lost_out(self->mesh);
    }
    *in =
        (metrics_input_t){.stats = self->stats,
                          .clients = server_clients(self->server),
                          .topics = registry_topics(self->registry),
                          .subscriptions = registry_memberships(self->registry),
                          .readable = self->health.readable,
                          .writable = self->health.writable,
                          .live_peers = live,
                          .peers_down = down,
                          .peer_table = table,
                          .peer_table_cap = cap,
                          .peer_table_overflows = overflows,
                          .lost_out = lost_out,
                          .mode = self->mesh ? mesh_mode(self->mesh) : "local",
                          .version = ROOMCAST_VERSION_STRING,
                          .node_id = self->id_hex,
                          .channel = self->cfg->channel,
                          .detail = self->health.detail};
    s_sample_more(self, in);
    in->curve = self->mesh && mesh_curve(self->mesh) ? node_curve(self) : NULL;
}

// --- housekeeping
// -------------------------------------------------------------

static void s_on_tick(loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    self->ticks++;
    if (self->waiters) {
        s_check_waiters(self, 0); // the app left, or it waited too long
    }
    if (self->mesh) {
        unsigned live, down;
        mesh_peer_counts(self->mesh, &live, &down);
        presence_tick(self->presence, live); // anti-entropy
    }
}

// --- start and stop
// -----------------------------------------------------------

//  The cluster key ring from --key-file. Returns NULL with err filled.
static keyring_t *s_load_keys(const config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->key_files.count) {
        snprintf(err, errlen,
                 "--bind needs --key-file: every envelope "
                 "between sidecars is sealed with the cluster key (create "
                 "one with roomcastctl keygen FILE)");
        return NULL;
    }
    keyring_t *ring = keyring_new();
    if (!ring) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->key_files.count; i++) {
        if (keyring_load_file(ring, cfg->key_files.items[i], err, errlen)) {
            keyring_destroy(&ring);
            return NULL;
        }
    }
    return ring;
}

//  The mesh, when the config asks for one. Returns 0 or -1 with err.
static int s_start_mesh(node_t *self, char *err, size_t errlen)
{
    const config_t *cfg = self->cfg;
    if (!*cfg->bind && !cfg->peers.count && !cfg->proxies.count) {
        return 0;
    }
    keyring_t *ring = s_load_keys(cfg, err, errlen);
    if (!ring) {
        return -1;
    }
    mesh_io_t io = {.arg = self,
                    .message = s_on_mesh_message,
                    .received = s_on_mesh_received,
                    .presence = s_on_mesh_presence,
                    .health = s_on_mesh_health,
                    .peer_up = s_on_peer_up,
                    .peer_down = s_on_peer_down,
                    .confirmed = s_on_mesh_confirmed,
                    .blocked = s_on_mesh_blocked,
                    .lost = s_on_mesh_lost};
    self->mesh = mesh_new(self->loop, cfg, &ring, self->id, self->stats, &io,
                          err, errlen);
    return self->mesh ? 0 : -1;
}

static int s_start_gossip(node_t *self, char *err, size_t errlen)
{
    const config_t *cfg = self->cfg;
    if (!*cfg->gossip) {
        return 0;
    }
    if (!self->mesh) {
        snprintf(err, errlen,
                 "--gossip needs --bind (and --key-file): membership "
                 "announces our data endpoint and seals with the cluster key");
        return -1;
    }
    curve_t *curve = mesh_curve(self->mesh);
    gossip_config_t gc = {
        .bind = cfg->gossip,
        .joins = (const char *const *)cfg->joins.items,
        .njoins = cfg->joins.count,
        .channel = cfg->channel,
        .name = cfg->name,
        .zone = cfg->zone,
        .endpoint = *cfg->advertise ? cfg->advertise : cfg->bind,
        .pubkey = curve ? curve_public(curve) : NULL,
        .probe_interval_ms = (uint32_t)cfg->probe_interval_ms,
        .probe_timeout_ms = (uint32_t)cfg->probe_timeout_ms,
        .suspicion_mult = (uint32_t)cfg->suspicion_mult,
        .indirect_checks = (uint32_t)cfg->indirect_checks,
        .pushpull_interval_ms = (uint32_t)cfg->pushpull_interval_ms,
        .dead_reap_ms = (uint32_t)cfg->tombstone_ms};
    gossip_io_t io = {.arg = self, .member = s_on_member};
    self->gossip = gossip_new(self->loop, &gc, mesh_keyring(self->mesh), &io,
                              self->id, self->stats, err, errlen);
    return self->gossip ? 0 : -1;
}

static int s_start_ops(node_t *self, char *err, size_t errlen)
{
    if (!*self->cfg->http) {
        return 0;
    }
    ops_io_t io = {.arg = self, .sample = s_on_sample};
    self->ops = ops_new(self->loop, self->cfg->http, &io, err, errlen);
    if (!self->ops) {
        return -1;
    }
    log_info("http_started", "address=%s port=%d", self->cfg->http,
             ops_port(self->ops));
    return 0;
}

static void s_log_mesh_started(node_t *self)
{
    const config_t *cfg = self->cfg;
    if (!self->mesh) {
        return;
    }
    const keyring_t *ring = mesh_keyring(self->mesh);
    char fp[KEYRING_FINGERPRINT_LEN + 1] = "?";
    char fp2[KEYRING_FINGERPRINT_LEN + 1] = "-";
    if (keyring_fingerprint(ring, 0, fp)) {
        fp[0] = 0;
    }
    if (keyring_size(ring) > 1 && keyring_fingerprint(ring, 1, fp2)) {
        fp2[0] = 0;
    }
    log_info("mesh_started",
             "mode=%s bind=%s peers=%zu proxies=%zu key_fingerprint=%s "
             "extra_key_fingerprint=%s",
             mesh_mode(self->mesh), *cfg->bind ? cfg->bind : "-",
             cfg->peers.count, cfg->proxies.count, fp, fp2);
}

node_t *node_new(loop_t *loop, const config_t *cfg, stats_t *stats, char *err,
                 size_t errlen)
{
    node_t *self = calloc(1, sizeof *self);
    if (!self || getrandom(self->id, sizeof self->id, 0) != sizeof self->id) {
        snprintf(err, errlen, "%s", strerror(errno));
        free(self);
        return NULL;
    }
    self->loop = loop;
    self->cfg = cfg;
    self->stats = stats;
    ids_hex(self->id, self->id_hex);
    self->health = (health_t){true, true, 0, "cluster of one"};
    session_config_t sc = {.channel = cfg->channel,
                           .node_id = self->id,
                           .max_payload = cfg->max_payload};
    session_io_t sio = {.arg = self,
                        .send = s_on_send,
                        .close = s_on_close,
                        .hello = s_on_hello,
                        .sub = s_on_sub,
                        .unsub = s_on_unsub,
                        .pub = s_on_pub,
                        .pset = s_on_pset,
                        .pclear = s_on_pclear,
                        .plist = s_on_plist,
                        .query = s_on_query};
    server_io_t vio = {.arg = self,
                       .frame = s_on_frame,
                       .closed = s_on_closed,
                       .idle = s_on_idle};
    presence_io_t pio = {
        .arg = self, .send = s_on_presence_send, .event = s_on_presence_event};
    self->registry = registry_new();
    self->session = session_new(&sc, &sio, stats);
    self->server = server_new(loop, cfg, stats, &vio);
    self->presence = presence_new(&pio, self->id, cfg->channel, NULL);
    fanout_io_t fio = {self->server, server_deliver, server_hold,
                       server_release};
    self->fanout =
        self->registry && self->server
            ? fanout_new(self->registry, &fio, cfg->fanout_slice, stats)
            : NULL;
    self->timer = loop_add_timer(loop, TICK_MS, true, s_on_tick, self);
    if (!self->registry || !self->session || !self->server || !self->presence ||
        !self->fanout || self->timer < 0) {
        snprintf(err, errlen, "out of memory");
        node_destroy(&self);
        return NULL;
    }
    registry_set_hooks(self->registry, s_on_first_member, s_on_last_member,
                       self);
    if (server_listen(self->server, err, errlen) ||
        s_start_mesh(self, err, errlen) || s_start_gossip(self, err, errlen) ||
        s_start_ops(self, err, errlen) ||
        node_memory_start(self, err, errlen)) {
        node_destroy(&self);
        return NULL;
    }
    s_log_mesh_started(self); // once everything it needs is up
    if (!cfg->peers.count && !cfg->proxies.count && !*cfg->gossip) {
        log_info("cluster_of_one", "reason=\"no peers configured\"");
    }
    return self;
}

void node_stop(node_t *self)
{
    if (self->gossip) {
        gossip_leave(self->gossip); // members mark us left at once
    }
    server_shutdown(self->server);
}

//  Whether two rings hold the same keys, in the same order.
static bool s_same_keys(const keyring_t *a, const keyring_t *b)
{
    if (keyring_size(a) != keyring_size(b)) {
        return false;
    }
    for (size_t i = 0; i < keyring_size(a); i++) {
        char fa[KEYRING_FINGERPRINT_LEN + 1], fb[KEYRING_FINGERPRINT_LEN + 1];
        if (keyring_fingerprint(a, i, fa) || keyring_fingerprint(b, i, fb) ||
            strcmp(fa, fb) != 0) {
            return false;
        }
    }
    return true;
}

static void s_interest_all(node_t *self, bool on)
{
    for (registry_topic_t *t = registry_first(self->registry); t;
         t = registry_next(self->registry)) {
        mesh_interest(self->mesh, t->ns, t->ns_len, t->topic, t->topic_len, on);
    }
}

int node_reload(node_t *self, const config_t *fresh, char *err, size_t errlen)
{
    keyring_t *ring = NULL;
    if (self->mesh && !(ring = s_load_keys(fresh, err, errlen))) {
        return -1;
    }
    if (log_set_level(fresh->log_level)) {
        keyring_destroy(&ring);
        snprintf(err, errlen, "--log-level: unknown level '%s'",
                 fresh->log_level);
        return -1;
    }
    const char *keys = "none";
    if (ring && s_same_keys(ring, mesh_keyring(self->mesh))) {
        keys = "unchanged";
        keyring_destroy(&ring);
    } else if (ring) {
        keys = "rotated";
        s_interest_all(self, false);
        mesh_rekey(self->mesh, &ring);
        s_interest_all(self, true);
    }
    char fp[KEYRING_FINGERPRINT_LEN + 1] = "-";
    if (self->mesh && keyring_fingerprint(mesh_keyring(self->mesh), 0, fp)) {
        fp[0] = 0;
    }
    log_info("reloaded",
             "log_level=%s keys=%s key_fingerprint=%s note=\"other settings "
             "take effect at the next start\"",
             fresh->log_level, keys, fp);
    return 0;
}

const char *node_id(const node_t *self)
{
    return self->id_hex;
}

void node_destroy(node_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    node_t *self = *self_p;
    node_memory_stop(self);
    ops_destroy(&self->ops);
    gossip_destroy(&self->gossip); // reports to the mesh: before it
    while (self->waiters) {
        waiter_t *w = self->waiters;
        self->waiters = w->next;
        server_release(self->server, w->conn);
        free(w);
    }
    mesh_destroy(&self->mesh);
    if (self->registry) {
        registry_set_hooks(self->registry, NULL, NULL, NULL);
    }
    //  closing the apps reports to us: presence and registry still there
    server_destroy(&self->server);
    fanout_destroy(&self->fanout); // releases the members it held
    presence_destroy(&self->presence);
    registry_destroy(&self->registry);
    session_destroy(&self->session);
    if (self->timer > 0) {
        loop_cancel_timer(self->loop, self->timer);
    }
    free(self);
    *self_p = NULL;
}
