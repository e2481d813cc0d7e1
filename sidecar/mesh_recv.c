/*  mesh_recv: the receiving half of the mesh (see mesh_impl.h). */
#include "mesh_impl.h"

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
void mesh_sync_stats(mesh_t *self)
{
    repair_stats_t r;
    repair_stats(self->repair, &r);
    self->stats->repair_requests_sent = r.requests;
    self->stats->repaired = r.repaired;
    self->stats->repair_unrepaired = r.unrepaired;
    self->stats->repair_timeouts = r.timeouts;
}

//  repair.c's io: the apps get msg, after missed lost ones.
void mesh_repair_deliver(void *arg, const msg_t *msg, uint64_t missed,
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
void mesh_repair_request(void *arg, const uint8_t *origin, uint64_t req,
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
    mesh_send_control(self, f1, sizeof f1, buf, b.len);
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
    if (mesh_resend(self, f1, f1_len, f2, f2_len) == 0) {
        self->stats->repair_resent++;
    }
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
    mesh_send_control(self, f1, sizeof f1, buf, b.len);
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
        mesh_open_control(self, f1, f1_len, f2, f2_len, plain, sizeof plain);
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
int mesh_drain_sub(mesh_t *self)
{
    int n = s_drain_sub_batch(self);
    s_run_flush(self);
    if (n > 0) {
        mesh_sync_stats(self);
        mesh_rearm(self); // a repair asked for may be due before the timer
    }
    return n;
}

//  The XPUB gives us subscriptions: a peer's marker coming (meshctl acks
//  it) or going (its link to us ended). Returns the subscriptions handled.
int mesh_drain_xpub(mesh_t *self)
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
