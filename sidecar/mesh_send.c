/*  mesh_send: the sending half of the mesh (see mesh_impl.h). */
#include "mesh_impl.h"

static uint64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// --- sending
// ------------------------------------------------------------------

static void s_free_sealed(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static void s_set_nodrop(mesh_t *self, bool on)
{
    if (self->nodrop != on) {
        int v = on;
        zmq_setsockopt(self->xpub, ZMQ_XPUB_NODROP, &v, sizeof v);
        self->nodrop = on;
    }
}

//  Send [frame1][frame2] without blocking. lossy: a full link drops it
//  (ZeroMQ's way); else a full link refuses it whole. Returns 0 (sent,
//  frame2 taken), 1 (a link is full: nothing sent, frame2 still ours),
//  -1 (failed, counted, frame2 freed).
static int s_try_send(mesh_t *self, const uint8_t *f1, size_t f1_len,
                      uint8_t *f2, size_t f2_len, bool lossy)
{
    s_set_nodrop(self, !lossy);
    if (zmq_send(self->xpub, f1, f1_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN && !lossy) {
            return 1;
        }
        self->stats->mesh_send_failed++;
        free(f2);
        return -1;
    }
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, f2, f2_len, s_free_sealed, NULL)) {
        free(f2);
        zmq_msg_init(&m); // the first frame went: end the message anyway
    }
    if (zmq_msg_send(&m, self->xpub, ZMQ_DONTWAIT) < 0) {
        //  the same links took frame 1: finish it whatever they say
        s_set_nodrop(self, false);
        if (zmq_msg_send(&m, self->xpub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            self->stats->mesh_send_failed++;
            return -1;
        }
    }
    return 0;
}

// --- backpressure
// -------------------------------------------------------------

static int s_send_frames(mesh_t *self, const uint8_t *f1, size_t f1_len,
                         uint8_t *f2, size_t f2_len, bool ordered);

//  Control: beats and acks do not wait behind data (they go when the
//  links take them, else in turn); presence and repair answers keep
//  their order with the data. frame2 is taken. Returns 0 (sent or held),
//  or -1 when ZeroMQ refused it (counted once).
static int s_send2(mesh_t *self, const uint8_t *f1, size_t f1_len, uint8_t *f2,
                   size_t f2_len)
{
    bool ordered = memcmp(f1, HB, PREFIX_LEN) != 0 &&
                   memcmp(f1, AK, PREFIX_LEN) != 0 &&
                   memcmp(f1, RQ, PREFIX_LEN) != 0;
    return s_send_frames(self, f1, f1_len, f2, f2_len, ordered);
}

//  Returns 0, or -1 (out of memory: counted, frame2 freed).
static int s_backlog_add(mesh_t *self, const uint8_t *f1, size_t f1_len,
                         uint8_t *f2, size_t f2_len)
{
    pending_t *p = malloc(sizeof *p);
    if (!p || f1_len > sizeof p->f1) {
        free(p);
        self->stats->mesh_send_failed++;
        free(f2);
        return -1;
    }
    memcpy(p->f1, f1, f1_len);
    p->f1_len = f1_len;
    p->f2 = f2;
    p->f2_len = f2_len;
    p->next = NULL;
    if (self->backlog_tail) {
        self->backlog_tail->next = p;
    } else {
        self->backlog = p;
    }
    self->backlog_tail = p;
    return 0;
}

typedef struct {
    mesh_t *self;
    uint64_t held_ms;
    unsigned named;
    unsigned again; // of them, cut before and not heard since
} cut_ctx_t;

//  A peer that hears us and was not heard while we were held (nor for two
//  of our beat periods: a beat may just be due) is taken for stalled.
static bool s_stalled(const cut_ctx_t *c, const meshctl_row_t *r)
{
    uint64_t quiet = 2 * c->self->cfg->heartbeat_ms;
    quiet = c->held_ms > quiet ? c->held_ms : quiet;
    return r->hears_us && (r->last_ms == UINT64_MAX || r->last_ms >= quiet);
}

//  Whether node was cut last time and not heard since.
static bool s_cut_before(const mesh_t *self, const meshctl_row_t *r,
                         uint64_t now)
{
    for (size_t i = 0; i < self->ncut; i++) {
        if (memcmp(self->cut_ids[i], r->node, 16) == 0) {
            return r->last_ms == UINT64_MAX || r->last_ms >= now - self->cut_at;
        }
    }
    return false;
}

//  The peers that hear us but were not heard while we were held: stalled.
static void s_cut_row(void *arg, const meshctl_row_t *r)
{
    cut_ctx_t *c = arg;
    mesh_t *self = c->self;
    uint64_t now = loop_now(self->loop);
    if (!s_stalled(c, r)) {
        return;
    }
    char hex[IDS_HEX_SIZE];
    ids_hex(r->node, hex);
    c->named++;
    if (s_cut_before(self, r, now)) {
        c->again++; // its link took more and filled again: still stalled
        log_debug("peer_cut_again", "node_id=%s held_ms=%llu", hex,
                  (unsigned long long)c->held_ms);
        return;
    }
    log_warn("peer_cut",
             "node_id=%s name=%s endpoint=%s held_ms=%llu note=\"its link "
             "was full for --peer-stall-timeout: it now drops what that "
             "peer cannot take\"",
             hex, r->name, r->endpoint, (unsigned long long)c->held_ms);
}

//  Remember whom a cut named (a second cut of one not heard since is
//  not news: neither logged at warn nor counted again).
static void s_cut_remember(void *arg, const meshctl_row_t *r)
{
    cut_ctx_t *c = arg;
    mesh_t *self = c->self;
    if (s_stalled(c, r) && self->ncut < CUT_MAX) {
        memcpy(self->cut_ids[self->ncut++], r->node, 16);
    }
}

//  Held for --peer-stall-timeout: cut the stalled peers off, go on. The
//  message at the head of the backlog is sent lossy: the links still full
//  after all this time (the stalled peers': the others had the whole
//  stall to drain) drop it, and libzmq then skips those links (they drop
//  what is sent) until their reader drains them; the rest goes on
//  without loss. The stalled peer sees the gap when it reads again:
//  repaired from the ring if still there, else its apps get a GAP.
static void s_cut(mesh_t *self, uint64_t now)
{
    cut_ctx_t c = {self, now - self->blocked_since, 0, 0};
    meshctl_rows(self->ctl, now, s_cut_row, &c);
    self->ncut = 0;
    meshctl_rows(self->ctl, now, s_cut_remember, &c);
    self->cut_at = now;
    if (!c.named) {
        log_warn("peer_cut",
                 "node_id=unknown held_ms=%llu note=\"a peer that we still "
                 "hear reads too slowly: its link drops what it cannot "
                 "take\"",
                 (unsigned long long)c.held_ms);
    }
    //  counted once per stall: a peer cut again before heard is the same
    self->stats->mesh_peers_cut += c.named ? c.named - c.again : 1;
    pending_t *p = self->backlog;
    (void)s_try_send(self, p->f1, p->f1_len, p->f2, p->f2_len, true);
    self->backlog = p->next;
    free(p);
    self->stats->mesh_blocked_ms += now - self->blocked_since;
    self->blocked_since = now; // what still waits gets a stall of its own
}

//  Send what waits; the apps go on when it is all out.
void mesh_drain_backlog(mesh_t *self, uint64_t now)
{
    for (;;) {
        while (self->backlog) {
            pending_t *p = self->backlog;
            if (s_try_send(self, p->f1, p->f1_len, p->f2, p->f2_len, false) ==
                1) {
                break;
            }
            self->backlog = p->next;
            free(p);
        }
        if (!self->backlog ||
            now - self->blocked_since < self->cfg->peer_stall_timeout_ms) {
            break;
        }
        s_cut(self, now);
    }
    if (!self->backlog) {
        self->backlog_tail = NULL;
        if (self->blocked_since) {
            self->stats->mesh_blocked_ms += now - self->blocked_since;
            self->blocked_since = 0;
            if (self->io.blocked) {
                self->io.blocked(self->io.arg, false);
            }
        }
    }
}

//  Held behind a full link (the apps with it), never dropped between live
//  sidecars: ZeroMQ refuses the whole send when one link it goes to is
//  full (ZMQ_XPUB_NODROP). Never lossy but at a cut: a link that once
//  dropped is skipped by libzmq until it drains, so a lossy send would
//  make it lose what follows too. ordered: after what waits already
//  (else it may overtake it). frame2 is taken. Returns 0 (sent or held)
//  or -1 (refused, counted).
static int s_send_frames(mesh_t *self, const uint8_t *f1, size_t f1_len,
                         uint8_t *f2, size_t f2_len, bool ordered)
{
    self->sent = true;
    if (self->backlog && ordered) {
        return s_backlog_add(self, f1, f1_len, f2, f2_len); // after those
    }
    int rc = s_try_send(self, f1, f1_len, f2, f2_len, false);
    if (rc != 1) {
        return rc;
    }
    uint64_t now = loop_now(self->loop);
    if (s_backlog_add(self, f1, f1_len, f2, f2_len)) {
        return -1;
    }
    if (!self->blocked_since) {
        self->blocked_since = now;
        self->stats->mesh_blocked++;
        if (self->io.blocked) {
            self->io.blocked(self->io.arg, true);
        }
        mesh_rearm(self);
    }
    return 0;
}

//  An envelope, in order. Returns 0 (sent or held) or -1 (refused).
int mesh_send_env(mesh_t *self, const uint8_t *f1, uint8_t *f2, size_t f2_len)
{
    return s_send_frames(self, f1, KEYRING_RKEY_SIZE, f2, f2_len, true);
}

int mesh_resend(mesh_t *self, const uint8_t *f1, size_t f1_len,
                const uint8_t *f2, size_t f2_len)
{
    uint8_t *copy = malloc(f2_len ? f2_len : 1);
    if (f1_len != KEYRING_RKEY_SIZE || !copy) {
        free(copy);
        return -1;
    }
    memcpy(copy, f2, f2_len);
    return mesh_send_env(self, f1, copy, f2_len);
}

bool mesh_blocked(const mesh_t *self)
{
    return self->blocked_since != 0;
}

//  Associated data of a control frame: a domain tag (so no control seal can
//  pass for an envelope's, whose AD is a bare routing key), frame 1, and
//  the channel. Returns its length.
#define CTL_TAG "roomcast/ctl/v1"
static size_t s_control_ad(mesh_t *self, const uint8_t *f1, size_t f1_len,
                           uint8_t ad[64 + 256])
{
    size_t tlen = sizeof CTL_TAG - 1, clen = strlen(self->cfg->channel);
    memcpy(ad, CTL_TAG, tlen);
    memcpy(ad + tlen, f1, f1_len);
    memcpy(ad + tlen + f1_len, self->cfg->channel, clen);
    return tlen + f1_len + clen;
}

//  Seal body under the control AD and send it.
void mesh_send_control(mesh_t *self, const uint8_t *f1, size_t f1_len,
                       const uint8_t *body, size_t len)
{
    uint8_t ad[64 + 256];
    size_t ad_len = s_control_ad(self, f1, f1_len, ad);
    size_t cap = len + KEYRING_SEAL_OVERHEAD, sealed_len;
    uint8_t *sealed = malloc(cap);
    if (!sealed || keyring_seal(self->ring, ad, ad_len, body, len, sealed, cap,
                                &sealed_len)) {
        free(sealed);
        self->stats->mesh_send_failed++;
        return;
    }
    (void)s_send2(self, f1, f1_len, sealed, sealed_len);
}

//  Open a control frame into out (cap bytes). Returns the plaintext length
//  or -1.
ssize_t mesh_open_control(mesh_t *self, const uint8_t *f1, size_t f1_len,
                          const uint8_t *f2, size_t f2_len, uint8_t *out,
                          size_t cap)
{
    size_t len;
    uint8_t ad[64 + 256];
    if (f1_len > 40) {
        return -1;
    }
    size_t ad_len = s_control_ad(self, f1, f1_len, ad);
    if (keyring_open(self->ring, ad, ad_len, f2, f2_len, out, cap, &len,
                     NULL)) {
        return -1;
    }
    return (ssize_t)len;
}

//  Seal pending slot i and send it: one seal and one ZeroMQ message for
//  every message of the batch, event ids consecutive in it.
static void s_batch_send(mesh_t *self, size_t i)
{
    envelope_batch_t *batch = &self->pending[i].batch;
    size_t n = batch->count;
    if (n == 0) {
        return;
    }
    uint8_t *sealed;
    size_t len;
    if (envelope_batch_seal(batch, self->ring, self->pending[i].rkey,
                            self->event_id + 1, s_wall_ms(), &sealed, &len)) {
        self->stats->mesh_send_failed += n;
        envelope_batch_clear(batch); // its slot starts again if used again
        return;
    }
    self->event_id += n;
    self->stats->env_sent += n;
    self->stats->env_batches++;
    //  kept for repair: the sealed bytes as they are, indexed by stream
    sentring_span_t spans[BATCH_SPANS];
    size_t nspans = self->pending[i].nspans;
    for (size_t k = 0; k < nspans; k++) {
        spans[k] = (sentring_span_t){self->pending[i].spans[k].instance,
                                     self->pending[i].ns,
                                     self->pending[i].ns_len,
                                     self->pending[i].topic,
                                     self->pending[i].topic_len,
                                     self->pending[i].spans[k].lo,
                                     self->pending[i].spans[k].hi};
    }
    (void)sentring_put(self->sentring, loop_now(self->loop),
                       self->pending[i].rkey, KEYRING_RKEY_SIZE, sealed, len,
                       spans, nspans);
    self->pending[i].nspans = 0;
    if (mesh_send_env(self, self->pending[i].rkey, sealed, len)) {
        self->stats->mesh_send_failed += n - 1; // one each, as when alone
    }
}

//  Whether msg fits the spans of slot i: the run of its app's sequences
//  goes on, or there is room for a new run.
static bool s_span_fits(const mesh_t *self, size_t i, const msg_t *msg)
{
    size_t n = self->pending[i].nspans;
    for (size_t k = 0; k < n; k++) {
        if (memcmp(self->pending[i].spans[k].instance, msg->instance,
                   ENVELOPE_ID_SIZE) == 0 &&
            self->pending[i].spans[k].hi + 1 == msg->seq) {
            return true;
        }
    }
    return n < BATCH_SPANS;
}

static void s_span_add(mesh_t *self, size_t i, const msg_t *msg)
{
    size_t n = self->pending[i].nspans;
    for (size_t k = 0; k < n; k++) {
        if (memcmp(self->pending[i].spans[k].instance, msg->instance,
                   ENVELOPE_ID_SIZE) == 0 &&
            self->pending[i].spans[k].hi + 1 == msg->seq) {
            self->pending[i].spans[k].hi = msg->seq;
            return;
        }
    }
    memcpy(self->pending[i].spans[n].instance, msg->instance, ENVELOPE_ID_SIZE);
    self->pending[i].spans[n].lo = self->pending[i].spans[n].hi = msg->seq;
    self->pending[i].nspans = n + 1;
}

//  The end of a loop turn: what the apps published in it goes out, one
//  envelope per routing key. Never waits for more (no timer).
void mesh_batches_flush(mesh_t *self)
{
    for (size_t i = 0; i < self->npending; i++) {
        s_batch_send(self, self->order[i]);
    }
    self->npending = 0;
    self->turn++; // every slot is free again
}

//  The pending slot of routing key rkey for (ns, topic), started when new.
//  Returns its index, or -1 (a bad name: counted).
static int s_batch_for(mesh_t *self, const uint8_t *rkey, const msg_t *msg)
{
    //  open addressing: routing keys are uniformly random bytes
    size_t i = rkey[0] % BATCH_SLOTS;
    while (self->pending[i].turn == self->turn &&
           memcmp(self->pending[i].rkey, rkey, KEYRING_RKEY_SIZE) != 0) {
        i = (i + 1) % BATCH_SLOTS; // a free slot exists: npending < SLOTS
    }
    if (self->pending[i].turn != self->turn) { // a new key in this turn
        if (self->npending == BATCH_KEYS) {
            mesh_batches_flush(self); // many topics in one turn: make room
            i = rkey[0] % BATCH_SLOTS;
        }
        self->pending[i].turn = self->turn;
        memcpy(self->pending[i].rkey, rkey, KEYRING_RKEY_SIZE);
        envelope_batch_clear(&self->pending[i].batch);
        self->order[self->npending++] = (uint8_t)i;
    }
    //  new, sent because it was full, or cleared by a failure
    if (!envelope_batch_started(&self->pending[i].batch)) {
        if (envelope_batch_start(&self->pending[i].batch, self->node,
                                 msg->ns.ptr, msg->ns.len, msg->topic.ptr,
                                 msg->topic.len)) {
            return -1;
        }
        //  names checked by envelope_batch_start: at most 255 bytes
        memcpy(self->pending[i].ns, msg->ns.ptr, msg->ns.len);
        self->pending[i].ns_len = msg->ns.len;
        memcpy(self->pending[i].topic, msg->topic.ptr, msg->topic.len);
        self->pending[i].topic_len = msg->topic.len;
        self->pending[i].nspans = 0;
    }
    return (int)i;
}

//  --envelope-format 1 (a rolling upgrade from 0.1): one envelope per
//  message, sent now, kept for repair like a batch of one.
static void s_publish_one(mesh_t *self, const uint8_t *rkey, const msg_t *msg)
{
    envelope_t env = {.sequence = msg->seq,
                      .event_id = self->event_id + 1,
                      .ns = msg->ns.ptr,
                      .ns_len = msg->ns.len,
                      .topic = msg->topic.ptr,
                      .topic_len = msg->topic.len,
                      .kind = (msg->flags & WIRE_F_BINARY)
                                  ? ENVELOPE_KIND_BINARY
                                  : ENVELOPE_KIND_TEXT,
                      .payload = (const uint8_t *)msg->payload.ptr,
                      .payload_len = msg->payload.len,
                      .timestamp_ms = s_wall_ms()};
    memcpy(env.origin_node, self->node, ENVELOPE_ID_SIZE);
    memcpy(env.origin_instance, msg->instance, ENVELOPE_ID_SIZE);
    uint8_t *sealed;
    size_t len;
    if (envelope_seal(self->ring, &env, rkey, &sealed, &len)) {
        self->stats->mesh_send_failed++;
        return;
    }
    self->event_id++;
    self->stats->env_sent++;
    self->stats->env_batches++;
    sentring_span_t span = {msg->instance,  msg->ns.ptr,    msg->ns.len,
                            msg->topic.ptr, msg->topic.len, msg->seq,
                            msg->seq};
    (void)sentring_put(self->sentring, loop_now(self->loop), rkey,
                       KEYRING_RKEY_SIZE, sealed, len, &span, 1);
    (void)mesh_send_env(self, rkey, sealed, len);
}

//  A local publish joins this turn's batch for its routing key; the batch
//  is sealed and sent by s_idle, at the end of the turn (or now, when it
//  is full).
void mesh_publish(mesh_t *self, const msg_t *msg)
{
    if (self->alone) {
        return;
    }
    uint8_t rkeys[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    if (rkeys_get(self->rkeys, msg->ns.ptr, msg->ns.len, msg->topic.ptr,
                  msg->topic.len, rkeys) < 1) {
        return;
    }
    if (self->cfg->envelope_format == 1) {
        s_publish_one(self, rkeys[0], msg);
        return;
    }
    int i = s_batch_for(self, rkeys[0], msg);
    if (i < 0) {
        self->stats->mesh_send_failed++;
        return;
    }
    envelope_batch_t *batch = &self->pending[i].batch;
    if (!envelope_batch_fits(batch, msg->payload.len) ||
        !s_span_fits(self, (size_t)i, msg)) {
        s_batch_send(self, (size_t)i); // full: it goes now, this one next
        i = s_batch_for(self, rkeys[0], msg); // the same slot, started
        if (i < 0) {
            self->stats->mesh_send_failed++;
            return;
        }
        batch = &self->pending[i].batch;
    }
    uint8_t kind = (msg->flags & WIRE_F_BINARY) ? ENVELOPE_KIND_BINARY
                                                : ENVELOPE_KIND_TEXT;
    if (envelope_batch_add(batch, msg->instance, msg->seq, kind,
                           (const uint8_t *)msg->payload.ptr,
                           msg->payload.len)) {
        self->stats->mesh_send_failed++;
        return;
    }
    s_span_add(self, (size_t)i, msg);
}
