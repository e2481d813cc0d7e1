/*  repair: see repair.h. A stream under repair holds: next, the sequence
    the apps get next; top, the highest seen; the messages held (copies,
    sorted by sequence) and the missing ranges still waiting for the
    origin. Everything between next and top is one of: held, in a waiting
    range, or given up (counted in lost, told with the next delivery).
*/
#include "repair.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t seq;
    uint64_t flags;
    size_t len;
    uint8_t *payload; // owned
} held_t;

typedef struct {
    uint64_t lo, hi;
    uint64_t req;
    uint64_t asked; // when last asked
    uint64_t deadline;
    int tries;
} range_t;

typedef struct {
    uint8_t origin[16];
    uint8_t instance[16];
    char ns[256];
    char topic[256];
    uint32_t ns_len, topic_len;
    uint64_t next; // next sequence the apps get
    uint64_t top;  // highest sequence seen
    held_t *held;  // sorted by seq
    size_t nheld, cap;
    range_t ranges[REPAIR_RANGES_MAX]; // waiting, sorted by lo
    size_t nranges;
    uint64_t lost; // given up before next, not told yet
    int reason;    // of the last range given up
} stream_t;

struct repair_t {
    repair_config_t cfg;
    repair_io_t io;
    stream_t **streams;
    size_t nstreams;
    uint64_t req;
    repair_stats_t stats;
};

void repair_config_defaults(repair_config_t *cfg)
{
    cfg->timeout_ms = 500;
    cfg->retry_ms = 200;
    cfg->max_held_bytes = 16u << 20;
    cfg->max_streams = 4096;
}

repair_t *repair_new(const repair_config_t *cfg, const repair_io_t *io)
{
    repair_config_t defaults;
    if (!cfg) {
        repair_config_defaults(&defaults);
        cfg = &defaults;
    }
    if (!io || !io->request || !io->deliver || !cfg->timeout_ms ||
        !cfg->max_streams) {
        errno = EINVAL;
        return NULL;
    }
    repair_t *self = calloc(1, sizeof *self);
    if (!self ||
        !(self->streams = calloc(cfg->max_streams, sizeof *self->streams))) {
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    self->cfg = *cfg;
    self->io = *io;
    return self;
}

static void s_stream_free(repair_t *self, stream_t *s)
{
    for (size_t i = 0; i < s->nheld; i++) {
        self->stats.held_bytes -= s->held[i].len;
        free(s->held[i].payload);
    }
    free(s->held);
    free(s);
}

void repair_destroy(repair_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    repair_t *self = *self_p;
    for (size_t i = 0; i < self->nstreams; i++) {
        s_stream_free(self, self->streams[i]);
    }
    free(self->streams);
    free(self);
    *self_p = NULL;
}

bool repair_active(const repair_t *self)
{
    return self->nstreams > 0;
}

static bool s_same(const stream_t *s, const msg_t *m)
{
    return s->ns_len == m->ns.len && s->topic_len == m->topic.len &&
           memcmp(s->instance, m->instance, 16) == 0 &&
           memcmp(s->origin, m->node, 16) == 0 &&
           memcmp(s->topic, m->topic.ptr, m->topic.len) == 0 &&
           memcmp(s->ns, m->ns.ptr, m->ns.len) == 0;
}

static size_t s_find(const repair_t *self, const msg_t *m)
{
    for (size_t i = 0; i < self->nstreams; i++) {
        if (s_same(self->streams[i], m)) {
            return i;
        }
    }
    return SIZE_MAX;
}

static void s_ask(repair_t *self, uint64_t now, stream_t *s, range_t *r)
{
    r->asked = now;
    r->tries++;
    self->stats.requests++;
    self->stats.retries += r->tries > 1;
    self->io.request(self->io.arg, s->origin, r->req, s->instance,
                     (wire_str_t){s->ns, s->ns_len},
                     (wire_str_t){s->topic, s->topic_len}, r->lo, r->hi);
}

static void s_give_up(stream_t *s, size_t i, int reason)
{
    memmove(&s->ranges[i], &s->ranges[i + 1],
            (s->nranges - i - 1) * sizeof s->ranges[0]);
    s->nranges--;
    s->reason = reason;
}

static bool s_waiting(const stream_t *s, uint64_t seq)
{
    for (size_t i = 0; i < s->nranges; i++) {
        if (seq >= s->ranges[i].lo && seq <= s->ranges[i].hi) {
            return true;
        }
    }
    return false;
}

static void s_deliver_head(repair_t *self, stream_t *s)
{
    held_t h = s->held[0];
    memmove(&s->held[0], &s->held[1], (s->nheld - 1) * sizeof s->held[0]);
    s->nheld--;
    self->stats.held_bytes -= h.len;
    msg_t m = {.ns = {s->ns, s->ns_len},
               .topic = {s->topic, s->topic_len},
               .flags = h.flags,
               .instance = s->instance,
               .node = s->origin,
               .seq = h.seq,
               .payload = {(const char *)h.payload, (uint32_t)h.len}};
    uint64_t lost = s->lost;
    s->lost = 0;
    s->next = h.seq + 1;
    self->io.deliver(self->io.arg, &m, lost, s->reason);
    free(h.payload);
}

//  Deliver what is in order; count what was given up. Returns true when
//  the stream is done (and freed).
static bool s_advance(repair_t *self, size_t at)
{
    stream_t *s = self->streams[at];
    for (;;) {
        if (s->nheld && s->held[0].seq == s->next) {
            s_deliver_head(self, s);
            continue;
        }
        if (s->nheld == 0 || s_waiting(s, s->next)) {
            break;
        }
        //  given up: up to the next held message or waiting range
        uint64_t stop = s->held[0].seq;
        for (size_t i = 0; i < s->nranges; i++) {
            if (s->ranges[i].lo > s->next && s->ranges[i].lo < stop) {
                stop = s->ranges[i].lo;
            }
        }
        s->lost += stop - s->next;
        self->stats.unrepaired += stop - s->next;
        s->next = stop;
    }
    if (s->nheld || s->nranges) {
        return false;
    }
    s_stream_free(self, s);
    self->streams[at] = self->streams[--self->nstreams];
    self->stats.streams = self->nstreams;
    return true;
}

//  Give every waiting range of the stream up, deliver all it held.
static void s_give_up_all(repair_t *self, size_t at, int reason)
{
    stream_t *s = self->streams[at];
    while (s->nranges) {
        s_give_up(s, 0, reason);
    }
    s_advance(self, at);
}

//  Hold a copy of msg, sorted. Returns -1 on ENOMEM.
static int s_hold(repair_t *self, stream_t *s, const msg_t *m)
{
    if (s->nheld == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        held_t *held = realloc(s->held, cap * sizeof *held);
        if (!held) {
            return -1;
        }
        s->held = held;
        s->cap = cap;
    }
    uint8_t *copy = malloc(m->payload.len ? m->payload.len : 1);
    if (!copy) {
        return -1;
    }
    memcpy(copy, m->payload.ptr, m->payload.len);
    size_t i = s->nheld;
    while (i > 0 && s->held[i - 1].seq > m->seq) {
        i--;
    }
    memmove(&s->held[i + 1], &s->held[i], (s->nheld - i) * sizeof s->held[0]);
    s->held[i] = (held_t){m->seq, m->flags, m->payload.len, copy};
    s->nheld++;
    self->stats.held_bytes += m->payload.len;
    if (m->seq > s->top) {
        s->top = m->seq;
    }
    return 0;
}

static void s_add_range(repair_t *self, uint64_t now, size_t at, uint64_t lo,
                        uint64_t hi)
{
    stream_t *s = self->streams[at];
    if (s->nranges == REPAIR_RANGES_MAX) {
        s_give_up(s, 0, REPAIR_MESH); // the oldest
        self->stats.overflows++;
    }
    range_t *r = &s->ranges[s->nranges++];
    *r = (range_t){.lo = lo,
                   .hi = hi,
                   .req = ++self->req,
                   .deadline = now + self->cfg.timeout_ms};
    s_ask(self, now, s, r);
}

bool repair_claim(repair_t *self, uint64_t now, const msg_t *msg)
{
    (void)now;
    size_t at = s_find(self, msg);
    if (at == SIZE_MAX) {
        return false;
    }
    stream_t *s = self->streams[at];
    if (msg->seq > s->top) {
        return false; // new: sequence tracking first
    }
    bool held = false;
    for (size_t i = 0; i < s->nheld && !held; i++) {
        held = s->held[i].seq == msg->seq;
    }
    if (msg->seq < s->next || held || !s_waiting(s, msg->seq)) {
        self->stats.copies++; // had it, or gave it up: order says drop
        return true;
    }
    if (s_hold(self, s, msg)) {
        return true; // out of memory: the range times out, a GAP says it
    }
    self->stats.repaired++;
    //  a range wholly filled needs no answer
    for (size_t i = 0; i < s->nranges; i++) {
        range_t *r = &s->ranges[i];
        if (msg->seq >= r->lo && msg->seq <= r->hi) {
            uint64_t have = 0;
            for (size_t k = 0; k < s->nheld; k++) {
                have += s->held[k].seq >= r->lo && s->held[k].seq <= r->hi;
            }
            uint64_t done = r->lo < s->next ? s->next - r->lo : 0;
            if (have + done >= r->hi - r->lo + 1) {
                s_give_up(s, i, REPAIR_MESH);
            }
            break;
        }
    }
    s_advance(self, at);
    return true;
}

bool repair_observe(repair_t *self, uint64_t now, const msg_t *msg,
                    uint64_t missed, bool can_repair)
{
    size_t at = self->nstreams ? s_find(self, msg) : SIZE_MAX;
    if (at == SIZE_MAX) {
        if (!missed || !can_repair || msg->seq <= missed) {
            return false;
        }
        if (self->nstreams == self->cfg.max_streams) {
            self->stats.overflows++;
            return false;
        }
        stream_t *s = calloc(1, sizeof *s);
        if (!s) {
            return false;
        }
        memcpy(s->origin, msg->node, 16);
        memcpy(s->instance, msg->instance, 16);
        memcpy(s->ns, msg->ns.ptr, msg->ns.len);
        memcpy(s->topic, msg->topic.ptr, msg->topic.len);
        s->ns_len = msg->ns.len;
        s->topic_len = msg->topic.len;
        s->next = msg->seq - missed;
        s->top = msg->seq;
        if (s_hold(self, s, msg)) {
            s_stream_free(self, s);
            return false;
        }
        at = self->nstreams++;
        self->streams[at] = s;
        self->stats.streams = self->nstreams;
        s_add_range(self, now, at, msg->seq - missed, msg->seq - 1);
        return true;
    }
    stream_t *s = self->streams[at];
    if (missed && msg->seq > missed) {
        s_add_range(self, now, at, msg->seq - missed, msg->seq - 1);
    }
    if (s_hold(self, s, msg)) {
        s_give_up_all(self, at, REPAIR_MESH);
        return false; // delivered after what the stream held
    }
    if (self->stats.held_bytes > self->cfg.max_held_bytes) {
        self->stats.overflows++;
        s_give_up_all(self, at, REPAIR_MESH);
    } else {
        s_advance(self, at);
    }
    return true;
}

void repair_answer(repair_t *self, uint64_t now, const uint8_t *origin,
                   uint64_t req)
{
    (void)now;
    for (size_t at = 0; at < self->nstreams; at++) {
        stream_t *s = self->streams[at];
        if (memcmp(s->origin, origin, 16) != 0) {
            continue;
        }
        for (size_t i = 0; i < s->nranges; i++) {
            if (s->ranges[i].req == req) {
                self->stats.answered++;
                s_give_up(s, i, REPAIR_MESH);
                s_advance(self, at);
                return;
            }
        }
    }
}

void repair_origin_gone(repair_t *self, uint64_t now, const uint8_t *origin)
{
    (void)now;
    for (size_t at = self->nstreams; at-- > 0;) {
        if (memcmp(self->streams[at]->origin, origin, 16) == 0) {
            s_give_up_all(self, at, REPAIR_ORIGIN_GONE);
        }
    }
}

void repair_tick(repair_t *self, uint64_t now)
{
    for (size_t at = self->nstreams; at-- > 0;) {
        stream_t *s = self->streams[at];
        bool changed = false;
        for (size_t i = s->nranges; i-- > 0;) {
            range_t *r = &s->ranges[i];
            if (now >= r->deadline) {
                self->stats.timeouts++;
                s_give_up(s, i, REPAIR_MESH);
                changed = true;
            } else if (r->tries < 2 && now - r->asked >= self->cfg.retry_ms) {
                s_ask(self, now, s, r);
            }
        }
        if (changed) {
            s_advance(self, at);
        }
    }
}

uint64_t repair_next_deadline(const repair_t *self)
{
    uint64_t next = UINT64_MAX;
    for (size_t at = 0; at < self->nstreams; at++) {
        const stream_t *s = self->streams[at];
        for (size_t i = 0; i < s->nranges; i++) {
            const range_t *r = &s->ranges[i];
            uint64_t due =
                r->tries < 2 && r->asked + self->cfg.retry_ms < r->deadline
                    ? r->asked + self->cfg.retry_ms
                    : r->deadline;
            next = due < next ? due : next;
        }
    }
    return next;
}

void repair_stats(const repair_t *self, repair_stats_t *stats)
{
    *stats = self->stats;
}
