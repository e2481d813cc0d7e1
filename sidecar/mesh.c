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
#include "mesh.h"
#include "curve.h"
#include "dedup.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "meshctl.h"
#include "repair.h"
#include "rkeys.h"
#include "sentring.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <czmq.h>
#include <libgen.h>
#include <zmq.h>

#define PREFIX_LEN  8
#define DRAIN_BATCH 2048 // messages per socket per loop turn
#define BATCH_SLOTS 64   // batches: a hash table by routing key
#define BATCH_KEYS  48   // routing keys batched at once in a loop turn
#define BATCH_SPANS 16   // publishing apps in one batch (more: it goes)
#define MARKER_LEN  (PREFIX_LEN + 16 + 8)
#define RETRY_MS    5    // a full link is tried again this often
#define SERVE_MAX   8192 // envelopes re-sent for one repair request
#define CUT_MAX     8    // stalled peers remembered from the last cut

static const uint8_t HB[PREFIX_LEN] = {0xff, 0xfd, 'R', 'C', 'h', 'b', 0, 1};
static const uint8_t AK[PREFIX_LEN] = {0xff, 0xfe, 'R', 'C', 'a', 'k', 0, 1};
static const uint8_t MK[PREFIX_LEN] = {0xff, 0xff, 'R', 'C', 'm', 'k', 0, 1};
static const uint8_t PR[PREFIX_LEN] = {0xff, 0xfc, 'R', 'C', 'p', 'r', 0, 1};
static const uint8_t RQ[PREFIX_LEN] = {0xff, 0xfb, 'R', 'C', 'r', 'q', 0, 1};
static const uint8_t RA[PREFIX_LEN] = {0xff, 0xfa, 'R', 'C', 'r', 'a', 0, 1};

//  A message a full link refused, waiting its turn (frame 2 owned).
typedef struct pending_t {
    struct pending_t *next;
    uint8_t f1[PREFIX_LEN + 16]; // a routing key or a control prefix
    size_t f1_len;
    uint8_t *f2;
    size_t f2_len;
} pending_t;

//  One connection of our SUB: where, and the server key it was made with
//  (a member restarted on the same address may come back with a new key).
typedef struct {
    char *endpoint;
    uint8_t key[CURVE_KEY_SIZE]; // all zero without CurveZMQ
} link_t;

struct mesh_t {
    loop_t *loop;
    mesh_io_t io;
    const config_t *cfg;
    keyring_t *ring;
    uint8_t node[16];
    stats_t *stats;
    void *zctx;
    void *xpub; // we publish here
    void *sub;  // we receive here
    bool proxy_mode;
    bool alone;         // no peer and no proxy configured
    char endpoint[128]; // what peers reach us at
    uint64_t event_id;
    meshctl_t *ctl;   // peers, beats, markers, acks, health
    size_t table_cap; // meshctl's max_peers
    struct {
        uint8_t origin[16];
        uint64_t received, missed;
    } run;         // envelopes from one origin not yet told to meshctl
    link_t *links; // endpoints our SUB is connected to
    size_t nlinks;
    dedup_t *dedup;
    seqtrack_t *seqtrack;
    int timer;
    curve_t *curve;               // CurveZMQ on every link, or NULL
    curve_monitor_t *monitor;     // refused handshakes on our XPUB
    curve_monitor_t *monitor_sub; // ... and on our SUB (we are refused)
    rkeys_t *rkeys;               // routing keys per (ns, topic)
    bool sent;                    // sent on the XPUB since the idle turn began
    struct {
        uint8_t rkey[KEYRING_RKEY_SIZE]; // routing key 0 of the batch
        uint64_t turn;                   // in use when self->turn
        envelope_batch_t batch;          // this turn's publishes to it
        char ns[ENVELOPE_NAME_MAX];      // its namespace and topic, and
        char topic[ENVELOPE_NAME_MAX];   // per publishing app the run of
        size_t ns_len, topic_len;        // sequences in it: what the
        struct {                         // repair ring indexes it by
            uint8_t instance[ENVELOPE_ID_SIZE];
            uint64_t lo, hi;
        } spans[BATCH_SPANS];
        size_t nspans;
    } pending[BATCH_SLOTS];          // sealed at the end of the turn
    uint64_t turn;                   // batching turns, from 1
    uint8_t order[BATCH_KEYS];       // slots in use, first used first
    size_t npending;                 // slots in use this turn
    uint8_t refused_logged[256 / 8]; // envelope formats logged already
    uint64_t timer_at;               // when the timer fires
    sentring_t *sentring;            // what we sent lately, for repair
    repair_t *repair;                // gaps waiting for their origin
    pending_t *backlog;              // envelopes a full link refused, in order
    pending_t *backlog_tail;         //
    uint64_t blocked_since;          // ms the apps have been held, 0: not held
    uint8_t cut_ids[CUT_MAX][16];    // the peers the last cut named
    size_t ncut;                     //
    uint64_t cut_at;                 // when
    bool nodrop;                     // ZMQ_XPUB_NODROP as set now
    uint64_t drop_n;                 // TEST HOOK --test-drop-every
};

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

static void s_rearm(mesh_t *self);
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
static void s_on_timer(loop_t *loop, int timer_id, void *arg);

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
static void s_drain_backlog(mesh_t *self, uint64_t now)
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
        s_rearm(self);
    }
    return 0;
}

//  An envelope, in order. Returns 0 (sent or held) or -1 (refused).
static int s_send_env(mesh_t *self, const uint8_t *f1, uint8_t *f2,
                      size_t f2_len)
{
    return s_send_frames(self, f1, KEYRING_RKEY_SIZE, f2, f2_len, true);
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
static void s_send_control(mesh_t *self, const uint8_t *f1, size_t f1_len,
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
static ssize_t s_open_control(mesh_t *self, const uint8_t *f1, size_t f1_len,
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
    if (s_send_env(self, self->pending[i].rkey, sealed, len)) {
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
static void s_batches_flush(mesh_t *self)
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
            s_batches_flush(self); // many topics in one turn: make room
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
    (void)s_send_env(self, rkey, sealed, len);
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
    s_send_control(self, f1, PREFIX_LEN + (to ? 16 : 0), body, len);
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

// --- receiving
// ----------------------------------------------------------------

//  Tell meshctl of the run of envelopes from one origin just received.
static void s_run_flush(mesh_t *self)
{
    if (self->run.received) {
        meshctl_on_data(self->ctl, loop_now(self->loop), self->run.origin,
                        self->run.received, self->run.missed);
        self->run.received = self->run.missed = 0;
    }
}

// --- repair
// ------------------------------------------------------------------

//  Keep the counters of repair.c in stats (they are read elsewhere).
static void s_sync_stats(mesh_t *self)
{
    repair_stats_t r;
    repair_stats(self->repair, &r);
    self->stats->repair_requests_sent = r.requests;
    self->stats->repaired = r.repaired;
    self->stats->repair_unrepaired = r.unrepaired;
    self->stats->repair_timeouts = r.timeouts;
}

//  repair.c's io: the apps get msg, after missed lost ones.
static void s_repair_deliver(void *arg, const msg_t *msg, uint64_t missed,
                             int reason)
{
    mesh_t *self = arg;
    if (missed && reason != REPAIR_MESH && self->io.lost) {
        self->io.lost(self->io.arg, msg, missed, reason);
        missed = 0;
    }
    self->io.message(self->io.arg, msg, missed);
}

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
} body_t;

static int s_body_write(void *data, const char *p, size_t n)
{
    body_t *b = data;
    if (n > b->cap - b->len) {
        return -1;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return 0;
}

//  repair.c's io: ask origin, on RQ || origin (only it subscribes that).
static void s_repair_request(void *arg, const uint8_t *origin, uint64_t req,
                             const uint8_t *instance, wire_str_t ns,
                             wire_str_t topic, uint64_t from, uint64_t to)
{
    mesh_t *self = arg;
    uint8_t buf[128 + 2 * 256];
    body_t b = {buf, 0, sizeof buf};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, s_body_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_bin_with_body(&pk, self->node, 16);
    msgpack_pack_uint64(&pk, req);
    msgpack_pack_bin_with_body(&pk, instance, 16);
    msgpack_pack_str_with_body(&pk, ns.ptr, ns.len);
    msgpack_pack_str_with_body(&pk, topic.ptr, topic.len);
    msgpack_pack_uint64(&pk, from);
    msgpack_pack_uint64(&pk, to);
    uint8_t f1[PREFIX_LEN + 16];
    memcpy(f1, RQ, PREFIX_LEN);
    memcpy(f1 + PREFIX_LEN, origin, 16);
    s_send_control(self, f1, sizeof f1, buf, b.len);
}

static bool s_obj_bin16(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == 16;
}

static bool s_obj_uint(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

static void s_resend(void *arg, const uint8_t *f1, size_t f1_len,
                     const uint8_t *f2, size_t f2_len)
{
    mesh_t *self = arg;
    uint8_t *copy = malloc(f2_len ? f2_len : 1);
    if (f1_len != KEYRING_RKEY_SIZE || !copy) {
        free(copy);
        return;
    }
    memcpy(copy, f2, f2_len);
    self->stats->repair_resent++;
    (void)s_send_env(self, f1, copy, f2_len);
}

//  A peer asks us for what it missed: re-send it as it was sealed, then
//  answer (after it on the same link: what did not come is gone). While
//  a link is full we re-send nothing (the answer says so at once).
static void s_on_repair_request(mesh_t *self, const uint8_t *body, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    const msgpack_object *f = NULL;
    if (msgpack_unpack_next(&u, (const char *)body, len, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        off == len && u.data.type == MSGPACK_OBJECT_ARRAY &&
        u.data.via.array.size == 7) {
        f = u.data.via.array.ptr;
    }
    if (!f || !s_obj_bin16(&f[0]) || !s_obj_uint(&f[1]) ||
        !s_obj_bin16(&f[2]) || f[3].type != MSGPACK_OBJECT_STR ||
        f[4].type != MSGPACK_OBJECT_STR || !s_obj_uint(&f[5]) ||
        !s_obj_uint(&f[6]) || f[5].via.u64 > f[6].via.u64) {
        self->stats->control_bad++;
        msgpack_unpacked_destroy(&u);
        return;
    }
    const uint8_t *requester = (const uint8_t *)f[0].via.bin.ptr;
    uint64_t oldest, resent = 0;
    if (!self->backlog) {
        resent = sentring_find(
            self->sentring, loop_now(self->loop),
            (const uint8_t *)f[2].via.bin.ptr, f[3].via.str.ptr,
            f[3].via.str.size, f[4].via.str.ptr, f[4].via.str.size,
            f[5].via.u64, f[6].via.u64, SERVE_MAX, s_resend, self, &oldest);
    }
    self->stats->repair_requests_served++;
    uint8_t buf[64];
    body_t b = {buf, 0, sizeof buf};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, s_body_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_bin_with_body(&pk, self->node, 16);
    msgpack_pack_uint64(&pk, f[1].via.u64);
    msgpack_pack_uint64(&pk, resent);
    uint8_t f1[PREFIX_LEN + 16];
    memcpy(f1, RA, PREFIX_LEN);
    memcpy(f1 + PREFIX_LEN, requester, 16);
    s_send_control(self, f1, sizeof f1, buf, b.len);
    msgpack_unpacked_destroy(&u);
}

//  The origin answered: what it re-sent came before this.
static void s_on_repair_answer(mesh_t *self, const uint8_t *body, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, (const char *)body, len, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        off == len && u.data.type == MSGPACK_OBJECT_ARRAY &&
        u.data.via.array.size == 3 && s_obj_bin16(&u.data.via.array.ptr[0]) &&
        s_obj_uint(&u.data.via.array.ptr[1])) {
        repair_answer(self->repair, loop_now(self->loop),
                      (const uint8_t *)u.data.via.array.ptr[0].via.bin.ptr,
                      u.data.via.array.ptr[1].via.u64);
    } else {
        self->stats->control_bad++;
    }
    msgpack_unpacked_destroy(&u);
}

static void s_on_message(mesh_t *self, const envelope_t *e);

//  One message opened from an envelope: own, duplicate, a hole a repair
//  fills, stale, or new (delivered now, or held behind a gap asked of its
//  origin). The receive path's decisions, per message.
static void s_on_message(mesh_t *self, const envelope_t *e)
{
    uint64_t missed = 0, now = loop_now(self->loop);
    int seq;
    msg_t msg = {
        .ns = {e->ns, (uint32_t)e->ns_len},
        .topic = {e->topic, (uint32_t)e->topic_len},
        .flags = e->kind == ENVELOPE_KIND_BINARY ? WIRE_F_BINARY : 0,
        .instance = e->origin_instance,
        .node = e->origin_node,
        .seq = e->sequence,
        .payload = {(const char *)e->payload, (uint32_t)e->payload_len}};
    bool fresh = false;
    if (memcmp(e->origin_node, self->node, 16) == 0) {
        self->stats->env_own++; // came back through a proxy
    } else if (!(fresh = dedup_check(self->dedup, e->origin_node, e->event_id,
                                     now)) &&
               !repair_active(self->repair)) {
        self->stats->env_duplicates++;
    } else if (repair_active(self->repair) &&
               repair_claim(self->repair, now, &msg)) {
        //  a hole filled (delivered in order), or a copy of one: repair's
    } else if (!fresh) {
        self->stats->env_duplicates++;
    } else if ((seq = seqtrack_observe(self->seqtrack, e->origin_instance,
                                       e->ns, e->ns_len, e->topic, e->topic_len,
                                       e->sequence, &missed)) ==
               SEQTRACK_STALE) {
        self->stats->env_stale++;
    } else {
        self->stats->env_received++;
        if (seq == SEQTRACK_GAP) {
            self->stats->gaps++;
            self->stats->missed += missed;
        } else {
            missed = 0;
        }
        //  beats queue behind data: a flood is proof of life too, told
        //  to meshctl once per run of one origin's envelopes
        if (self->run.received &&
            memcmp(self->run.origin, e->origin_node, 16) != 0) {
            s_run_flush(self);
        }
        memcpy(self->run.origin, e->origin_node, 16);
        self->run.received++;
        self->run.missed += missed;
        //  a gap is asked of its origin first (the stream waits, in
        //  order), even from an origin taken for down: a peer whose link
        //  just came back sends data before its beat says it is alive;
        //  one that is dead ends the repair when meshctl says so, or the
        //  repair times out
        if (!repair_observe(self->repair, now, &msg, missed, true)) {
            self->io.message(self->io.arg, &msg, missed);
        }
    }
}

//  An envelope of a format we do not speak: counted, and logged once per
//  format (the SUB socket does not say which peer sent it; a sidecar of a
//  newer version is the likely one).
static void s_refused_format(mesh_t *self, uint8_t format)
{
    self->stats->env_refused_format++;
    uint8_t bit = (uint8_t)(1u << (format % 8));
    if (!(self->refused_logged[format / 8] & bit)) {
        self->refused_logged[format / 8] |= bit;
        log_warn("envelope_format_refused",
                 "format=%u note=\"a peer sends envelopes of a format this "
                 "sidecar does not speak (a newer version?): dropped and "
                 "counted in env_refused_format\"",
                 (unsigned)format);
    }
}

//  One open per envelope, then every message it holds, in order.
static void s_on_envelope(mesh_t *self, const uint8_t *rkey,
                          const uint8_t *sealed, size_t len)
{
    if (self->cfg->test_drop_every &&
        ++self->drop_n % self->cfg->test_drop_every == 0) {
        self->stats->test_dropped++; // TEST HOOK: lost on the way
        return;
    }
    envelope_opened_t o;
    if (envelope_open(self->rkeys, rkey, KEYRING_RKEY_SIZE, sealed, len,
                      self->cfg->max_payload, &o)) {
        if (errno == ENOPROTOOPT) {
            s_refused_format(self, o.format);
        } else if (errno == EPROTO) {
            self->stats->env_malformed++;
        } else {
            self->stats->env_undecryptable++;
        }
        return;
    }
    do {
        s_on_message(self, &o.env);
    } while (envelope_opened_next(&o));
    envelope_opened_release(&o);
}

static void s_on_control(mesh_t *self, const uint8_t *f1, size_t f1_len,
                         const uint8_t *f2, size_t f2_len)
{
    static uint8_t plain[1 << 20]; // presence snapshots can be large
    ssize_t len =
        s_open_control(self, f1, f1_len, f2, f2_len, plain, sizeof plain);
    if (len < 0) {
        self->stats->control_bad++;
        return;
    }
    self->stats->control_received++;
    int kind = 0;
    if (f1_len == PREFIX_LEN && memcmp(f1, HB, PREFIX_LEN) == 0) {
        kind = MESHCTL_BEAT;
    } else if (f1_len == PREFIX_LEN + 16 && memcmp(f1, AK, PREFIX_LEN) == 0 &&
               memcmp(f1 + PREFIX_LEN, self->node, 16) == 0) {
        kind = MESHCTL_ACK;
    } else if (f1_len == PREFIX_LEN && memcmp(f1, PR, PREFIX_LEN) == 0) {
        if (self->io.presence(self->io.arg, plain, (size_t)len)) {
            self->stats->control_bad++;
        }
        return;
    } else if (f1_len == PREFIX_LEN + 16 &&
               memcmp(f1 + PREFIX_LEN, self->node, 16) == 0 &&
               (memcmp(f1, RQ, PREFIX_LEN) == 0 ||
                memcmp(f1, RA, PREFIX_LEN) == 0)) {
        if (f1[1] == RQ[1]) {
            s_on_repair_request(self, plain, (size_t)len);
        } else {
            s_on_repair_answer(self, plain, (size_t)len);
        }
        return;
    }
    //  malformed, or a replayed or late beat (through two proxies every
    //  beat arrives twice): counted apart, never trusted
    if (kind && meshctl_on_control(self->ctl, loop_now(self->loop), kind, plain,
                                   (size_t)len)) {
        if (errno == EPROTO) {
            self->stats->control_bad++;
        } else {
            self->stats->control_replayed++;
        }
    }
}

static int s_drain_sub_batch(mesh_t *self)
{
    int n = 0;
    for (; n < DRAIN_BATCH; n++) {
        zmq_msg_t f1, f2;
        zmq_msg_init(&f1);
        if (zmq_msg_recv(&f1, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f1);
            break;
        }
        zmq_msg_init(&f2);
        bool two = zmq_msg_more(&f1) &&
                   zmq_msg_recv(&f2, self->sub, ZMQ_DONTWAIT) >= 0;
        while (zmq_msg_more(two ? &f2 : &f1)) { // skip extra frames
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            int rc = zmq_msg_recv(&extra, self->sub, ZMQ_DONTWAIT);
            bool more = rc >= 0 && zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            two = false;
            if (!more) {
                break;
            }
        }
        const uint8_t *p1 = zmq_msg_data(&f1), *p2 = zmq_msg_data(&f2);
        size_t l1 = zmq_msg_size(&f1), l2 = zmq_msg_size(&f2);
        if (!two) {
            self->stats->env_malformed++;
        } else if (l1 == KEYRING_RKEY_SIZE) {
            s_on_envelope(self, p1, p2, l2);
        } else if (l1 >= PREFIX_LEN && p1[0] == 0xff) {
            s_on_control(self, p1, l1, p2, l2);
        } else {
            self->stats->env_malformed++;
        }
        zmq_msg_close(&f1);
        zmq_msg_close(&f2);
    }
    return n;
}

//  Drain the SUB socket, a batch at most; what was heard is told to
//  meshctl before returning. Returns the messages handled.
static int s_drain_sub(mesh_t *self)
{
    int n = s_drain_sub_batch(self);
    s_run_flush(self);
    if (n > 0) {
        s_sync_stats(self);
        s_rearm(self); // a repair asked for may be due before the timer
    }
    return n;
}

//  The XPUB gives us subscriptions: a peer's marker coming (meshctl acks
//  it) or going (its link to us ended). Returns the subscriptions handled.
static int s_drain_xpub(mesh_t *self)
{
    int n = 0;
    for (; n < DRAIN_BATCH; n++) {
        uint8_t buf[64];
        int len = zmq_recv(self->xpub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (len < 0) {
            break;
        }
        if (len == 1 + MARKER_LEN && buf[0] <= 1 &&
            memcmp(buf + 1, MK, PREFIX_LEN) == 0) {
            const uint8_t *node = buf + 1 + PREFIX_LEN;
            uint64_t marker = 0;
            for (int i = 0; i < 8; i++) {
                marker = marker << 8 | node[16 + i];
            }
            uint64_t now = loop_now(self->loop);
            if (buf[0] == 1) {
                meshctl_on_marker_seen(self->ctl, now, node, marker);
            } else {
                meshctl_on_marker_gone(self->ctl, now, node, marker);
            }
        }
    }
    return n;
}

//  ZMQ_FD only signals a change: after our own sends and receives it may
//  stay quiet while input waits, so ask the socket itself.
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
    s_batches_flush(self);
    self->sent = false;
    bool more = false;
    if (self->backlog) {
        s_drain_backlog(self, loop_now(loop)); // a link may have room now
    }
    if (s_readable(self->xpub)) {
        more |= s_drain_xpub(self) == DRAIN_BATCH;
    }
    if (s_readable(self->sub)) {
        int n = s_drain_sub(self);
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
static void s_rearm(mesh_t *self)
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
        s_drain_backlog(self, now);
    }
    s_sync_stats(self);
    self->io.received(self->io.arg); // what repair delivered goes out
    s_rearm(self);
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
    s_batches_flush(self); // sealed under the key they were routed with
    keyring_swap(self->ring, *ring_p);
    keyring_destroy(ring_p);
    rkeys_reset(self->rkeys);
}

void mesh_send_presence(mesh_t *self, const uint8_t *body, size_t len)
{
    if (!self->alone) {
        s_send_control(self, PR, PREFIX_LEN, body, len);
    }
}

void mesh_member_changed(mesh_t *self, const uint8_t node[16], int state)
{
    //  SWIM's states are meshctl's numbers
    meshctl_member(self->ctl, loop_now(self->loop), node, state, NULL, NULL);
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
    repair_io_t rio = {
        .arg = self, .request = s_repair_request, .deliver = s_repair_deliver};
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
                        .confirmed = s_ctl_confirmed};
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
