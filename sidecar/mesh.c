/*  mesh: see mesh.h for the design. The ZeroMQ adapter of the control
    plane (meshctl.c): it owns the sockets, seals and opens, deduplicates
    and sequence-checks envelopes, and feeds meshctl what it receives and
    sees; meshctl decides about peers, beats, markers, acks and health.
    Wire, on both ZeroMQ sockets:

      envelope   [routing key (16)] [sealed envelope, envelope.c]
      control    [prefix (8) || ...] [seal(body)], bodies in meshctl.h:
        beat     [HB (8)]            to all (every SUB subscribes HB)
        ack      [AK (8) || node]    to node (only it subscribes that)
        presence [PR (8)]            to all (presence.h)
        repair   [RQ (8) || origin]  to the origin (only it subscribes
                                     that): [requester bin16, req uint,
                                     instance bin16, ns str, topic str,
                                     from uint, to uint], sequences
                                     [from, to] of that stream, please
        answer   [RA (8) || node]    to the requester, after the re-sent
                                     envelopes: [origin bin16, req uint,
                                     resent uint]; what did not come is
                                     gone
      marker     a subscription to MK (8) || node (16) || u64be marker

    Control seals use ad = "roomcast/ctl/v1" || frame 1 || channel, so a
    body sealed for one prefix or channel opens under no other.

    Control prefixes are 8 bytes starting 0xff: a subscription to a control
    prefix never matches a 16-byte routing key frame and vice versa (but for
    a 2^-64 chance), and markers sort after every other subscription, so a
    peer that reconnects and receives our subscriptions in trie order sees
    the marker last.
*/
#include "mesh_impl.h"

// --- the control plane's io (meshctl)
// -----------------------------------------

static void s_ctl_send(void *arg, int kind, const uint8_t *to,
                       const uint8_t *body, size_t len)
{
    mesh_t *self = arg;
    uint8_t f1[PREFIX_LEN + 16];
    memcpy(f1, kind == MESHCTL_BEAT ? HB : AK, PREFIX_LEN);
    if (to) {
        memcpy(f1 + PREFIX_LEN, to, 16);
    }
    mesh_send_control(self, f1, PREFIX_LEN + (to ? 16 : 0), body, len);
}

static void s_marker_bytes(uint8_t mk[MARKER_LEN], const uint8_t node[16],
                           uint64_t n)
{
    memcpy(mk, MK, PREFIX_LEN);
    memcpy(mk + PREFIX_LEN, node, 16);
    for (int i = 0; i < 8; i++) {
        mk[PREFIX_LEN + 16 + i] = (uint8_t)(n >> (56 - 8 * i));
    }
}

//  Our SUB subscribes (or drops) marker n: every peer's XPUB sees it after
//  every subscription made before it, and acks.
static void s_ctl_marker(void *arg, uint64_t n, bool on)
{
    mesh_t *self = arg;
    uint8_t mk[MARKER_LEN];
    s_marker_bytes(mk, self->node, n);
    zmq_setsockopt(self->sub, on ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, mk,
                   sizeof mk);
}

static void s_ctl_peer(void *arg, const uint8_t *node, const char *name,
                       const char *endpoint, int event)
{
    mesh_t *self = arg;
    char hex[IDS_HEX_SIZE];
    ids_hex(node, hex);
    if (event == MESHCTL_UP) {
        log_info("peer_up", "node_id=%s name=%s endpoint=%s", hex, name,
                 endpoint);
        self->io.peer_up(self->io.arg, node); // it learns our presence
    } else if (event == MESHCTL_DOWN) {
        log_warn("peer_down", "node_id=%s name=%s", hex, name);
        self->io.peer_down(self->io.arg, node);
        //  its link ended or it went silent: what we wait for from it
        //  will not come (GAP, reason origin gone, at once)
        repair_origin_gone(self->repair, loop_now(self->loop), node);
    } else {
        log_debug("peer_gone", "node_id=%s name=%s", hex, name);
        repair_origin_gone(self->repair, loop_now(self->loop), node);
    }
}

static void s_relink_resend(void *arg, const uint8_t *f1, size_t f1_len,
                            const uint8_t *f2, size_t f2_len)
{
    mesh_t *self = arg;
    self->relink.bytes += f1_len + f2_len;
    if (mesh_resend(self, f1, f1_len, f2, f2_len) == 0) {
        self->stats->relink_resent++;
    }
}

//  A peer's link from us came back (its marker is on our XPUB again) after
//  it ended at gone_at. What was on the way then (our queue, the kernels'
//  buffers) and what we sent while it was away is lost for it, and if
//  nothing follows on those streams it would never see a gap: re-send what
//  the ring holds from a margin before the end (the stall timeout, which
//  bounds how long a full link holds our sends), now, ahead of anything
//  newer. It has its subscriptions here again, so it gets them; it drops
//  what it had by event id, and so do the other subscribers.
//  Bounded: RELINK_MAX_BYTES a second for all peers (many links coming
//  back at once, our own network's blip, must not flood the rest). Through
//  proxies one re-send reaches every peer behind them: the links that come
//  back with the proxy's within a second share it.
static void s_ctl_relinked(void *arg, const uint8_t *node, uint64_t gone_at)
{
    mesh_t *self = arg;
    uint64_t now = loop_now(self->loop);
    uint64_t margin = self->cfg->peer_stall_timeout_ms > RELINK_MARGIN_MS
                          ? self->cfg->peer_stall_timeout_ms
                          : RELINK_MARGIN_MS;
    uint64_t since = gone_at > margin ? gone_at - margin : 0;
    char hex[IDS_HEX_SIZE];
    ids_hex(node, hex);
    self->stats->relinks++;
    if (self->proxy_mode && self->relink.last_at &&
        now - self->relink.last_at < 1000 && since >= self->relink.last_since) {
        log_debug("peer_relinked",
                  "node_id=%s resent=0 note=\"shared the "
                  "re-send made for the proxy's return\"",
                  hex);
        return;
    }
    if (now - self->relink.window_at >= 1000) {
        self->relink.window_at = now;
        self->relink.bytes = 0;
    }
    size_t n = 0;
    bool capped = self->relink.bytes >= RELINK_MAX_BYTES;
    if (!capped) {
        n = sentring_since(self->sentring, now, since,
                           RELINK_MAX_BYTES - self->relink.bytes,
                           s_relink_resend, self, &capped);
        self->relink.last_at = now;
        self->relink.last_since = since;
    }
    if (capped) {
        log_warn("relink_capped",
                 "node_id=%s resent=%zu note=\"its link came back; not all "
                 "it may have missed was re-sent (%u MiB a second at most): "
                 "a lost message with none after it on its topic goes "
                 "unreported\"",
                 hex, n, RELINK_MAX_BYTES >> 20);
    } else {
        log_info("peer_relinked", "node_id=%s resent=%zu away_ms=%llu", hex, n,
                 (unsigned long long)(now - gone_at));
    }
}

static void s_ctl_health(void *arg, const meshctl_health_t *h)
{
    mesh_t *self = arg;
    mesh_health_t mh = {h->readable, h->writable, h->live, h->detail};
    self->io.health(self->io.arg, &mh);
}

static void s_ctl_confirmed(void *arg, uint64_t upto, bool ok)
{
    mesh_t *self = arg;
    if (ok) {
        self->io.confirmed(self->io.arg, upto);
    } else {
        //  a peer never acked: the waiters expire on their own clock
        log_debug("confirm_given_up", "marker=%llu", (unsigned long long)upto);
    }
}

bool mesh_sub_wait(mesh_t *self, uint64_t *marker)
{
    *marker = meshctl_marker_for_sub(self->ctl);
    return !meshctl_is_confirmed(self->ctl, *marker);
}

static void s_on_timer(loop_t *loop, int timer_id, void *arg);

static bool s_readable(void *socket)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(socket, ZMQ_EVENTS, &events, &len) == 0 &&
           (events & ZMQ_POLLIN);
}

static bool s_idle(loop_t *loop, void *arg)
{
    mesh_t *self = arg;
    //  ZMQ_FD is edge-triggered: look on every turn, not only on wake-ups.
    //  One ZMQ_EVENTS per socket and turn, and a receive only when it says
    //  so: every libzmq call that finds nothing costs a poll(2) and a
    //  getpid(2). A drain that ends in EAGAIN has looked at its socket; one
    //  more turn is needed only when a batch stopped at its limit, or when
    //  we sent on the XPUB after looking at it (a send may take the signal
    //  of input that came meanwhile). This turn's publishes go first.
    mesh_batches_flush(self);
    self->sent = false;
    bool more = false;
    if (self->backlog) {
        mesh_drain_backlog(self, loop_now(loop)); // a link may have room now
    }
    if (s_readable(self->xpub)) {
        more |= mesh_drain_xpub(self) == DRAIN_BATCH;
    }
    if (s_readable(self->sub)) {
        int n = mesh_drain_sub(self);
        more |= n == DRAIN_BATCH;
        if (n > 0) {
            self->io.received(self->io.arg); // deliveries go out this turn
        }
    }
    //  the marker subscription changes of this turn, once
    meshctl_flush(self->ctl, loop_now(loop));
    if (self->monitor) {
        curve_monitor_turn(self->monitor);
    }
    return more || self->sent;
}

static void s_on_zmq_fd(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (void)arg; // the idle hook right after this batch drains both sockets
}

//  The next of: meshctl's deadline, repair's, a full link's retry.
void mesh_rearm(mesh_t *self)
{
    uint64_t now = loop_now(self->loop);
    uint64_t next = meshctl_next_deadline(self->ctl);
    uint64_t due = repair_next_deadline(self->repair);
    next = due < next ? due : next;
    if (self->backlog && now + RETRY_MS < next) {
        next = now + RETRY_MS;
    }
    if (self->timer >= 0 && self->timer_at <= next) {
        return;
    }
    if (self->timer >= 0) {
        loop_cancel_timer(self->loop, self->timer);
    }
    self->timer_at = next > now ? next : now + 1;
    self->timer = loop_add_timer(self->loop, self->timer_at - now, false,
                                 s_on_timer, self);
}

//  The mesh's clock: beats, silence, forgetting, given-up confirmations
//  (meshctl); repair retries and time-outs; a full link tried again.
static void s_on_timer(loop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    mesh_t *self = arg;
    uint64_t now = loop_now(loop);
    self->timer = -1; // fired
    meshctl_tick(self->ctl, now);
    dedup_expire(self->dedup, now, 600000);
    sentring_expire(self->sentring, now);
    repair_tick(self->repair, now);
    if (self->backlog) {
        mesh_drain_backlog(self, now);
    }
    mesh_sync_stats(self);
    self->io.received(self->io.arg); // what repair delivered goes out
    mesh_rearm(self);
}

// --- interest
// ----------------------------------------------------------------

void mesh_interest(mesh_t *self, const char *ns, size_t ns_len,
                   const char *topic, size_t topic_len, bool on)
{
    uint8_t rkeys[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    int n = rkeys_get(self->rkeys, ns, ns_len, topic, topic_len, rkeys);
    int option = on ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE;
    for (int i = 0; i < n; i++) {
        zmq_setsockopt(self->sub, option, rkeys[i], KEYRING_RKEY_SIZE);
    }
    if (on) {
        meshctl_subscriptions_changed(self->ctl); // a new marker will say
    }
}

// --- setup
// --------------------------------------------------------------------

static int s_link_index(mesh_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->nlinks; i++) {
        if (strcmp(self->links[i].endpoint, endpoint) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int mesh_peer_add(mesh_t *self, const char *spec, const uint8_t *key)
{
    char endpoint[256];
    uint8_t spec_key[CURVE_KEY_SIZE];
    int has_key = curve_split(spec, endpoint, sizeof endpoint, spec_key);
    if (has_key < 0) {
        errno = EINVAL;
        return -1;
    }
    if (!key && has_key) {
        key = spec_key;
    }
    if (self->curve && !key) {
        errno = ENOKEY; // with CurveZMQ every link needs the server's key
        return -1;
    }
    if (strcmp(endpoint, self->endpoint) == 0) {
        errno = EINVAL; // ourselves
        return -1;
    }
    uint8_t link_key[CURVE_KEY_SIZE] = {0};
    if (self->curve) {
        memcpy(link_key, key, CURVE_KEY_SIZE);
    }
    int i = s_link_index(self, endpoint);
    if (i >= 0 && memcmp(self->links[i].key, link_key, CURVE_KEY_SIZE) == 0) {
        errno = EEXIST;
        return -1;
    }
    if (i >= 0) {
        //  the member at this address came back with another key: the
        //  handshake with the old one can never succeed, so reconnect
        zmq_disconnect(self->sub, endpoint);
    } else {
        link_t *links =
            realloc(self->links, (self->nlinks + 1) * sizeof *links);
        char *copy = strdup(endpoint);
        if (links) {
            self->links = links;
        }
        if (!links || !copy) {
            free(copy);
            errno = ENOMEM;
            return -1;
        }
        i = (int)self->nlinks++;
        self->links[i].endpoint = copy;
    }
    memcpy(self->links[i].key, link_key, CURVE_KEY_SIZE);
    if ((self->curve && curve_client(self->curve, self->sub, key)) ||
        zmq_connect(self->sub, endpoint)) {
        free(self->links[i].endpoint);
        self->links[i] = self->links[--self->nlinks];
        errno = EINVAL;
        return -1;
    }
    self->alone = false;
    meshctl_expect_peers(self->ctl, loop_now(self->loop), true);
    log_info("link_added", "endpoint=%s", endpoint);
    return 0;
}

//  Whether a link endpoint names a host rather than an address.
static bool s_named(const char *endpoint)
{
    const char *host = strstr(endpoint, "://");
    host = host ? host + 3 : endpoint;
    size_t len = strcspn(host, ":");
    return host[0] != '[' && strspn(host, "0123456789.") < len;
}

//  The server at endpoint refused our SUB's handshake, and libzmq does
//  not retry that: connect again, if it is still a link. The monitor
//  names the address it dialled, which is the link's unless the link
//  names a host: then a link naming a host, on that port.
static bool s_redial(void *arg, const char *endpoint)
{
    mesh_t *self = arg;
    int i = s_link_index(self, endpoint);
    const char *port = strrchr(endpoint, ':');
    for (size_t j = 0; i < 0 && port && j < self->nlinks; j++) {
        const char *p = strrchr(self->links[j].endpoint, ':');
        i = p && strcmp(p, port) == 0 && s_named(self->links[j].endpoint)
                ? (int)j
                : -1;
    }
    if (i < 0) {
        return false;
    }
    link_t *l = &self->links[i];
    zmq_disconnect(self->sub, l->endpoint);
    if (curve_client(self->curve, self->sub, l->key) ||
        zmq_connect(self->sub, l->endpoint)) {
        log_warn("link_failed", "endpoint=%s error=\"%s\"", l->endpoint,
                 zmq_strerror(errno));
        return false;
    }
    log_debug("link_redialled", "endpoint=%s", l->endpoint);
    return true;
}

int mesh_peer_remove(mesh_t *self, const char *endpoint)
{
    int i = s_link_index(self, endpoint);
    if (i < 0) {
        errno = ENOENT;
        return -1;
    }
    zmq_disconnect(self->sub, endpoint);
    free(self->links[i].endpoint);
    self->links[i] = self->links[--self->nlinks];
    log_info("link_removed", "endpoint=%s", endpoint);
    return 0;
}

void mesh_rekey(mesh_t *self, keyring_t **ring_p)
{
    mesh_batches_flush(self); // sealed under the key they were routed with
    keyring_swap(self->ring, *ring_p);
    keyring_destroy(ring_p);
    rkeys_reset(self->rkeys);
}

void mesh_send_presence(mesh_t *self, const uint8_t *body, size_t len)
{
    if (!self->alone) {
        mesh_send_control(self, PR, PREFIX_LEN, body, len);
    }
}

void mesh_member_changed(mesh_t *self, const uint8_t node[16], int state,
                         const char *name, const char *endpoint)
{
    //  SWIM's states are meshctl's numbers
    meshctl_member(self->ctl, loop_now(self->loop), node, state, name,
                   endpoint);
}

curve_t *mesh_curve(mesh_t *self)
{
    return self->curve;
}

const keyring_t *mesh_keyring(const mesh_t *self)
{
    return self->ring;
}

void mesh_peer_counts(mesh_t *self, unsigned *live, unsigned *down)
{
    meshctl_counts(self->ctl, live, down);
}

uint64_t mesh_lost_out(mesh_t *self)
{
    meshctl_stats_t st;
    meshctl_stats(self->ctl, &st);
    return st.lost_to_peers;
}

void mesh_peer_table(mesh_t *self, size_t *entries, size_t *cap,
                     uint64_t *overflows)
{
    meshctl_stats_t st;
    meshctl_stats(self->ctl, &st);
    *entries = meshctl_size(self->ctl);
    *cap = self->table_cap;
    *overflows = st.overflows;
}

const char *mesh_mode(const mesh_t *self)
{
    return self->proxy_mode ? "proxy" : "mesh";
}

typedef struct {
    mesh_row_fn *fn;
    void *arg;
} rows_t;

static void s_row(void *arg, const meshctl_row_t *r)
{
    rows_t *rows = arg;
    if (r->member == MESHCTL_DEAD || r->member == MESHCTL_LEFT) {
        return; // tombstones: SWIM's members list shows them
    }
    char hex[IDS_HEX_SIZE], value[512], last[24] = "-";
    if (r->last_ms != UINT64_MAX) {
        snprintf(last, sizeof last, "%llu", (unsigned long long)r->last_ms);
    }
    snprintf(value, sizeof value,
             "name=%s endpoint=%s state=%s heard_us=%s last_ms=%s "
             "received=%llu missed=%llu lost_to=%llu",
             r->name, r->endpoint, r->state, r->hears_us ? "true" : "false",
             last, (unsigned long long)r->received,
             (unsigned long long)r->missed, (unsigned long long)r->lost_to);
    rows->fn(rows->arg, ids_hex(r->node, hex), value);
}

void mesh_peer_rows(mesh_t *self, mesh_row_fn *fn, void *arg)
{
    rows_t rows = {fn, arg};
    meshctl_rows(self->ctl, loop_now(self->loop), s_row, &rows);
    for (size_t i = 0; i < self->nlinks; i++) {
        fn(arg, "link", self->links[i].endpoint);
    }
}

typedef struct {
    mesh_peer_fn *fn;
    void *arg;
} each_t;

static void s_each(void *arg, const meshctl_row_t *r)
{
    each_t *each = arg;
    if (r->member == MESHCTL_DEAD || r->member == MESHCTL_LEFT) {
        return; // tombstones, as in mesh_peer_rows
    }
    mesh_peer_t p = {r->node,    r->name,     r->state,  r->hears_us,
                     r->last_ms, r->received, r->missed, r->lost_to};
    each->fn(each->arg, &p);
}

void mesh_peer_each(mesh_t *self, mesh_peer_fn *fn, void *arg)
{
    each_t each = {fn, arg};
    meshctl_rows(self->ctl, loop_now(self->loop), s_each, &each);
}

//  tcp://host:port -> tcp://host:port+1 (a proxy's backend).
static int s_backend_of(const char *frontend, char *out, size_t size)
{
    const char *colon = strrchr(frontend, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || port <= 0 || port >= 65535) {
        return -1;
    }
    snprintf(out, size, "%.*s:%d", (int)(colon - frontend), frontend, port + 1);
    return 0;
}

static int s_setup_sockets(mesh_t *self, char *err, size_t errlen)
{
    const config_t *cfg = self->cfg;
    int hwm = (int)cfg->mesh_hwm, unbounded = 0, linger = 0;
    int ivl = 100, ivl_max = 2000;
    self->xpub = zmq_socket(self->zctx, ZMQ_XPUB);
    self->sub = zmq_socket(self->zctx, ZMQ_SUB);
    if (!self->xpub || !self->sub) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    zmq_setsockopt(self->xpub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    //  a full link refuses a send instead of dropping it (backpressure)
    int nodrop = 1;
    zmq_setsockopt(self->xpub, ZMQ_XPUB_NODROP, &nodrop, sizeof nodrop);
    self->nodrop = true;
    zmq_setsockopt(self->xpub, ZMQ_RCVHWM, &unbounded, sizeof unbounded);
    zmq_setsockopt(self->sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sub, ZMQ_SNDHWM, &unbounded, sizeof unbounded);
    //  a peer sending a frame larger than any envelope we accept loses its
    //  link at once instead of making us buffer it; the XPUB only ever
    //  receives subscriptions
    int64_t max_in = (int64_t)ENVELOPE_MAX_SEALED(cfg->max_payload);
    int64_t max_sub = 1024;
    zmq_setsockopt(self->sub, ZMQ_MAXMSGSIZE, &max_in, sizeof max_in);
    zmq_setsockopt(self->xpub, ZMQ_MAXMSGSIZE, &max_sub, sizeof max_sub);
    void *both[] = {self->xpub, self->sub};
    for (int i = 0; i < 2; i++) {
        zmq_setsockopt(both[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(both[i], ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(both[i], ZMQ_RECONNECT_IVL_MAX, &ivl_max,
                       sizeof ivl_max);
    }
    if (self->curve && *cfg->bind && curve_server(self->curve, self->xpub)) {
        snprintf(err, errlen, "cannot make the data socket a CURVE server");
        return -1;
    }
    if (*cfg->bind && zmq_bind(self->xpub, cfg->bind)) {
        snprintf(err, errlen, "cannot bind data socket %s: %s", cfg->bind,
                 zmq_strerror(errno));
        return -1;
    }
    snprintf(self->endpoint, sizeof self->endpoint, "%s",
             *cfg->advertise ? cfg->advertise : cfg->bind);
    //  every sidecar hears heartbeats, and acks addressed to it
    uint8_t ak[PREFIX_LEN + 16];
    memcpy(ak, AK, PREFIX_LEN);
    memcpy(ak + PREFIX_LEN, self->node, 16);
    zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, HB, PREFIX_LEN);
    zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, PR, PREFIX_LEN);
    zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, ak, sizeof ak);
    //  ... and repair requests and answers addressed to it
    memcpy(ak, RQ, PREFIX_LEN);
    zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, ak, sizeof ak);
    memcpy(ak, RA, PREFIX_LEN);
    zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, ak, sizeof ak);
    //  Refused handshakes are counted on both sockets, from before the
    //  first connect: a member refusing our key (our SUB, or our XPUB
    //  towards a proxy) counts as much as a stranger we refuse.
    if (self->curve &&
        (!(self->monitor = curve_monitor_new(
               self->curve, self->zctx, self->xpub, self->loop,
               &self->stats->curve_refused, NULL, NULL, err, errlen)) ||
         !(self->monitor_sub = curve_monitor_new(
               self->curve, self->zctx, self->sub, self->loop,
               &self->stats->curve_refused, self->proxy_mode ? NULL : s_redial,
               self, err, errlen)))) {
        return -1;
    }
    for (size_t i = 0; i < cfg->proxies.count; i++) {
        char backend[300], front[256];
        uint8_t key[CURVE_KEY_SIZE];
        int has_key =
            curve_split(cfg->proxies.items[i], front, sizeof front, key);
        if (has_key < 0 || (self->curve && !has_key)) {
            snprintf(err, errlen, "--proxy '%s': %s", cfg->proxies.items[i],
                     has_key < 0 ? "bad public key (40 Z85 characters)"
                                 : "with --curve-cert, give the proxy's key: "
                                   "tcp://HOST:PORT@PUBLICKEY");
            return -1;
        }
        if (s_backend_of(front, backend, sizeof backend) ||
            (self->curve && (curve_client(self->curve, self->xpub, key) ||
                             curve_client(self->curve, self->sub, key))) ||
            zmq_connect(self->xpub, front) || zmq_connect(self->sub, backend)) {
            snprintf(err, errlen,
                     "bad --proxy endpoint '%s' (expected "
                     "tcp://HOST:PORT)",
                     front);
            return -1;
        }
        log_info("proxy_added", "frontend=%s backend=%s", front, backend);
    }
    for (size_t i = 0; i < cfg->peers.count; i++) {
        const char *peer = cfg->peers.items[i];
        if (mesh_peer_add(self, peer, NULL) && errno != EEXIST &&
            errno != EINVAL) {
            snprintf(err, errlen, "--peer '%s': %s", peer,
                     errno == ENOKEY ? "with --curve-cert, give the peer's "
                                       "key: tcp://HOST:PORT@PUBLICKEY"
                                     : "bad endpoint");
            return -1;
        }
    }
    int fds[2];
    size_t fdlen = sizeof fds[0];
    for (int i = 0; i < 2; i++) {
        if (zmq_getsockopt(both[i], ZMQ_FD, &fds[i], &fdlen) ||
            loop_add_fd(self->loop, fds[i], EPOLLIN, s_on_zmq_fd, self)) {
            snprintf(err, errlen, "cannot watch the data sockets");
            return -1;
        }
    }
    return 0;
}

mesh_t *mesh_new(loop_t *loop, const config_t *cfg, keyring_t **ring_p,
                 const uint8_t node_id[16], stats_t *stats, const mesh_io_t *io,
                 char *err, size_t errlen)
{
    mesh_t *self = calloc(1, sizeof *self);
    if (!self) {
        keyring_destroy(ring_p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->io = *io;
    self->cfg = cfg;
    self->ring = *ring_p;
    *ring_p = NULL;
    self->stats = stats;
    memcpy(self->node, node_id, 16);
    self->proxy_mode = cfg->proxies.count > 0;
    self->alone = cfg->peers.count == 0 && cfg->proxies.count == 0;
    self->timer = -1;
    self->turn = 1; // slots of turn 0 (all, zeroed) are free
    //  czmq's context: zauth must share it with the sockets it guards
    self->zctx = zsys_init();
    config_curve_t curve = config_curve(cfg);
    if (curve != CONFIG_CURVE_OFF) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s", cfg->socket_path);
        self->curve =
            curve_new(curve == CONFIG_CURVE_CERT ? cfg->curve_cert : NULL,
                      cfg->curve_allow, dirname(dir), err, errlen);
        if (!self->curve) {
            mesh_destroy(&self);
            return NULL;
        }
    } else if (strcmp(cfg->curve, "off") != 0) {
        log_warn("curve_off",
                 "reason=\"static --peer or --proxy links cannot learn keys "
                 "from gossip\" note=\"links are plaintext (envelopes stay "
                 "sealed); give --curve-cert for CurveZMQ\"");
    }
    self->dedup = dedup_new(4096, 4096);
    self->rkeys = rkeys_new(self->ring, cfg->channel);
    self->seqtrack = seqtrack_new(1 << 20);
    self->sentring = sentring_new(cfg->repair_buffer, cfg->repair_age_ms);
    repair_config_t rc;
    repair_config_defaults(&rc);
    rc.timeout_ms = (uint32_t)cfg->repair_timeout_ms;
    rc.retry_ms = rc.timeout_ms * 2 / 5;
    repair_io_t rio = {.arg = self,
                       .request = mesh_repair_request,
                       .deliver = mesh_repair_deliver};
    self->repair = repair_new(&rc, &rio);
    //  meshctl tells io the first health at once
    meshctl_config_t cc;
    meshctl_config_defaults(&cc);
    cc.beat_ms = (uint32_t)cfg->heartbeat_ms;
    cc.retry_ms = 4 * cc.beat_ms;
    cc.gossip = *cfg->gossip != 0;
    cc.expect_peers = !self->alone;
    self->table_cap = cc.max_peers;
    cc.forget_ms = (uint32_t)cfg->tombstone_ms;
    meshctl_io_t cio = {.arg = self,
                        .send = s_ctl_send,
                        .marker = s_ctl_marker,
                        .peer = s_ctl_peer,
                        .health = s_ctl_health,
                        .confirmed = s_ctl_confirmed,
                        .relinked = s_ctl_relinked};
    self->ctl = meshctl_new(&cc, self->node, cfg->name,
                            *cfg->advertise ? cfg->advertise : cfg->bind, &cio,
                            loop_now(loop));
    if (!self->zctx || !self->dedup || !self->seqtrack || !self->rkeys ||
        !self->ctl || !self->sentring || !self->repair) {
        snprintf(err, errlen, "out of memory");
        mesh_destroy(&self);
        return NULL;
    }
    if (s_setup_sockets(self, err, errlen) ||
        loop_add_idle(loop, s_idle, self)) {
        mesh_destroy(&self);
        return NULL;
    }
    self->timer_at = loop_now(loop) + 1;
    self->timer = loop_add_timer(loop, 1, false, s_on_timer, self);
    return self;
}

void mesh_destroy(mesh_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh_t *self = *self_p;
    curve_monitor_destroy(&self->monitor);
    curve_monitor_destroy(&self->monitor_sub);
    void *both[] = {self->xpub, self->sub};
    for (int i = 0; i < 2; i++) {
        if (both[i]) {
            int fd;
            size_t fdlen = sizeof fd;
            if (zmq_getsockopt(both[i], ZMQ_FD, &fd, &fdlen) == 0) {
                loop_del_fd(self->loop, fd);
            }
            zmq_close(both[i]);
        }
    }
    curve_destroy(&self->curve); // the context is czmq's: it ends at exit
    if (self->timer >= 0) {
        loop_cancel_timer(self->loop, self->timer);
    }
    meshctl_destroy(&self->ctl);
    for (size_t i = 0; i < self->nlinks; i++) {
        free(self->links[i].endpoint);
    }
    free(self->links);
    for (size_t i = 0; i < BATCH_SLOTS; i++) {
        envelope_batch_release(&self->pending[i].batch);
    }
    while (self->backlog) {
        pending_t *p = self->backlog;
        self->backlog = p->next;
        free(p->f2);
        free(p);
    }
    sentring_destroy(&self->sentring);
    repair_destroy(&self->repair);
    dedup_destroy(&self->dedup);
    rkeys_destroy(&self->rkeys);
    seqtrack_destroy(&self->seqtrack);
    keyring_destroy(&self->ring);
    free(self);
    *self_p = NULL;
}
