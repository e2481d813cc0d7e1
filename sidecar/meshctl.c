/*  meshctl: see meshctl.h for the design and the wire format.

    The table is an array of pointers sorted by node id: a beat, an ack or
    an envelope finds its peer by binary search; inserts and removals
    (arrivals, departures) move pointers only. What a change of the table
    implies (the lowest ack among the peers we hear, the health) is
    recomputed once at the end of the call that changed it, not per peer.
*/
#include "meshctl.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_MAX  64     // markers waiting for acks, as ranges
#define INTERVAL_MAX 600000 // ms: longest beat interval believed

typedef struct {
    uint8_t node[MESHCTL_ID_SIZE];
    char name[MESHCTL_NAME_MAX + 1];
    char endpoint[MESHCTL_ENDPOINT_MAX + 1];
    int member;          // meshctl_member_t; 0 while SWIM said nothing
    bool heard;          // we hear it (link up)
    bool ever;           // we heard it once
    bool gone;           // GONE told, and not heard since
    bool deaf;           // its beats say it does not hear us
    uint64_t last_heard; // ms
    uint64_t touched;    // last time anything happened to it
    uint64_t beat;       // its highest beat seen
    uint64_t interval;   // ms between its beats, as it says
    uint64_t deaf_beat;  // its beat that last listed us
    uint64_t present;    // its marker subscribed on our XPUB, 0: none
    bool was_present;    // its marker was on our XPUB once
    uint64_t gone_at;    // ms: its marker last went away
    uint64_t acked;      // highest marker of ours it acked
    uint64_t received;   // its envelopes
    uint64_t missed;     // its messages lost on the way
    uint64_t told;       // missed, as our beats last told it
    uint64_t lost_to;    // our messages it says it missed (publish side)
} peer_t;

//  Markers (lo, hi] made since `since` and not yet confirmed.
typedef struct {
    uint64_t hi;
    uint64_t since;
} pending_t;

struct meshctl_t {
    meshctl_config_t cfg;
    meshctl_io_t io;
    uint8_t node[MESHCTL_ID_SIZE];
    char name[MESHCTL_NAME_MAX + 1];
    char endpoint[MESHCTL_ENDPOINT_MAX + 1];
    peer_t **peers; // sorted by node id
    size_t npeers;
    size_t cap;
    uint64_t beat;                   // beats sent
    uint64_t next_tick;              // ms: every beat_ms
    uint64_t next_send;              // ms: our next beat
    size_t told_down;                // down set size in our last beat
    uint64_t every;                  // ms between our beats
    uint8_t cursor[MESHCTL_ID_SIZE]; // last deaf id listed
    uint64_t marker;                 // our current marker, 0: none yet
    bool dirty;                      // a new marker is due
    uint64_t last_made;              // when the current marker was made
    uint64_t min_acked;              // lowest ack among the peers we hear
    size_t at_min;                   // how many of them have it
    uint64_t reported;               // highest marker told through io.confirmed
    pending_t pending[PENDING_MAX];
    size_t pend_head;
    size_t pend_count;
    bool recount;  // the heard set changed: min_acked is stale
    bool rehealth; // health may have changed
    meshctl_health_t health;
    meshctl_stats_t stats;
};

void meshctl_config_defaults(meshctl_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->beat_ms = 500;
    cfg->down_after = 4;
    cfg->forget_ms = 60000;
    cfg->confirm_timeout_ms = 30000;
    cfg->retry_ms = 2000;
    cfg->max_peers = 4096;
    cfg->fan_in = 10;
}

// --- small helpers -----------------------------------------------------------

static void s_copy(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size) {
        len = size - 1;
    }
    memcpy(dst, src, len);
    dst[len] = 0; // an embedded NUL ends it sooner
}

static bool s_tomb(const peer_t *p)
{
    return p->member == MESHCTL_DEAD || p->member == MESHCTL_LEFT;
}

static bool s_member_alive(const peer_t *p)
{
    return p->member == MESHCTL_ALIVE || p->member == MESHCTL_SUSPECT;
}

//  Alive as far as we know: heard, or alive for SWIM.
static bool s_alive(const meshctl_t *self, const peer_t *p)
{
    return p->heard || (self->cfg.gossip && s_member_alive(p));
}

//  In our down set: we should hear it and do not.
static bool s_expected(const meshctl_t *self, const peer_t *p)
{
    if (p->heard || s_tomb(p)) {
        return false;
    }
    return self->cfg.gossip ? s_member_alive(p) : p->ever;
}

static bool s_hears_us(const peer_t *p)
{
    return p->present != 0 && !p->deaf && !s_tomb(p);
}

static void s_event(meshctl_t *self, const peer_t *p, int event)
{
    if (self->io.peer) {
        self->io.peer(self->io.arg, p->node, p->name, p->endpoint, event);
    }
}

// --- the table ---------------------------------------------------------------

//  Index of node, or where it would go (*found false).
static size_t s_search(const meshctl_t *self, const uint8_t *node, bool *found)
{
    size_t lo = 0, hi = self->npeers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(self->peers[mid]->node, node, MESHCTL_ID_SIZE);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static peer_t *s_find(const meshctl_t *self, const uint8_t *node)
{
    bool found;
    size_t i = s_search(self, node, &found);
    return found ? self->peers[i] : NULL;
}

static void s_remove(meshctl_t *self, size_t i)
{
    peer_t *p = self->peers[i];
    if (p->heard) {
        p->heard = false;
        s_event(self, p, MESHCTL_DOWN);
    }
    if (p->ever && !p->gone) {
        s_event(self, p, MESHCTL_GONE);
    }
    memmove(&self->peers[i], &self->peers[i + 1],
            (self->npeers - i - 1) * sizeof *self->peers);
    self->npeers--;
    free(p);
    self->recount = self->rehealth = true;
}

//  Make room: the oldest tombstone, else the oldest entry neither heard
//  nor alive for SWIM. Returns false when every entry is live.
static bool s_evict(meshctl_t *self)
{
    size_t victim = SIZE_MAX;
    bool victim_tomb = false;
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        bool tomb = s_tomb(p);
        if (!tomb && (p->heard || (self->cfg.gossip && s_member_alive(p)))) {
            continue;
        }
        if (victim == SIZE_MAX || (tomb && !victim_tomb) ||
            (tomb == victim_tomb &&
             p->touched < self->peers[victim]->touched)) {
            victim = i;
            victim_tomb = tomb;
        }
    }
    if (victim == SIZE_MAX) {
        return false;
    }
    s_remove(self, victim);
    self->stats.evicted++;
    return true;
}

//  The entry of node, made if new; NULL when the table is full of live
//  peers (or out of memory).
static peer_t *s_insert(meshctl_t *self, const uint8_t *node, uint64_t now)
{
    bool found;
    size_t at = s_search(self, node, &found);
    if (found) {
        return self->peers[at];
    }
    if (self->npeers >= self->cfg.max_peers) {
        if (!s_evict(self)) {
            self->stats.overflows++;
            return NULL;
        }
        at = s_search(self, node, &found);
    }
    if (self->npeers == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        peer_t **peers = realloc(self->peers, cap * sizeof *peers);
        if (!peers) {
            self->stats.overflows++;
            return NULL;
        }
        self->peers = peers;
        self->cap = cap;
    }
    peer_t *p = calloc(1, sizeof *p);
    if (!p) {
        self->stats.overflows++;
        return NULL;
    }
    memcpy(p->node, node, MESHCTL_ID_SIZE);
    p->touched = now;
    memmove(&self->peers[at + 1], &self->peers[at],
            (self->npeers - at) * sizeof *self->peers);
    self->peers[at] = p;
    self->npeers++;
    return p;
}

// --- link state --------------------------------------------------------------

static void s_heard(meshctl_t *self, peer_t *p, uint64_t now)
{
    p->last_heard = p->touched = now;
    if (p->heard) {
        return;
    }
    if (p->ever) {
        //  heard again after silence: its acks may predate a reconnect,
        //  so it confirms afresh, with a marker made after now
        p->acked = 0;
        self->dirty = true;
    }
    p->heard = p->ever = true;
    p->gone = false;
    self->recount = self->rehealth = true;
    s_event(self, p, MESHCTL_UP);
}

static void s_silent(meshctl_t *self, peer_t *p)
{
    p->heard = false;
    self->recount = self->rehealth = true;
    s_event(self, p, MESHCTL_DOWN);
    if (!self->cfg.gossip && !p->gone) {
        p->gone = true; // no other failure detector
        s_event(self, p, MESHCTL_GONE);
    }
}

static void s_set_present(meshctl_t *self, peer_t *p, uint64_t n)
{
    bool before = s_hears_us(p);
    p->present = n;
    self->rehealth |= before != s_hears_us(p);
}

// --- health and confirmations ------------------------------------------------

static void s_health(meshctl_t *self)
{
    meshctl_health_t h = {false, false, 0, "no peer heard"};
    for (size_t i = 0; i < self->npeers; i++) {
        const peer_t *p = self->peers[i];
        h.live += p->heard;
        h.writable |= s_alive(self, p) && s_hears_us(p);
    }
    h.readable = h.live > 0;
    if (!self->cfg.expect_peers) {
        h.readable = h.writable = true;
        h.detail = "cluster of one";
    } else if (h.readable && h.writable) {
        h.detail = "peers live";
    } else if (h.readable) {
        h.detail = "peers do not hear us yet";
    } else if (h.writable) {
        h.detail = "peers hear us, none heard";
    }
    if (h.readable != self->health.readable ||
        h.writable != self->health.writable || h.live != self->health.live ||
        strcmp(h.detail, self->health.detail) != 0) {
        self->health = h;
        if (self->io.health) {
            self->io.health(self->io.arg, &h);
        }
    }
}

static void s_recount(meshctl_t *self)
{
    self->min_acked = UINT64_MAX;
    self->at_min = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        const peer_t *p = self->peers[i];
        if (!p->heard) {
            continue;
        }
        if (p->acked < self->min_acked) {
            self->min_acked = p->acked;
            self->at_min = 0;
        }
        self->at_min += p->acked == self->min_acked;
    }
}

static void s_pop_upto(meshctl_t *self, uint64_t upto)
{
    while (self->pend_count && self->pending[self->pend_head].hi <= upto) {
        self->pend_head = (self->pend_head + 1) % PENDING_MAX;
        self->pend_count--;
    }
}

//  What follows from the changes of one call: health, confirmations.
static void s_settle(meshctl_t *self)
{
    if (self->recount) {
        s_recount(self);
        self->recount = false;
    }
    if (self->rehealth) {
        s_health(self);
        self->rehealth = false;
    }
    uint64_t upto =
        self->min_acked < self->marker ? self->min_acked : self->marker;
    if (upto > self->reported) {
        self->reported = upto;
        s_pop_upto(self, upto);
        if (self->io.confirmed) {
            self->io.confirmed(self->io.arg, upto, true);
        }
    }
}

static void s_pending_add(meshctl_t *self, uint64_t hi, uint64_t since)
{
    size_t last = (self->pend_head + self->pend_count - 1) % PENDING_MAX;
    if (self->pend_count == PENDING_MAX ||
        (self->pend_count && self->pending[last].since == since)) {
        //  full, or a retry of the newest range: that range grows (it
        //  keeps its start)
        self->pending[last].hi = hi;
        return;
    }
    size_t at = (self->pend_head + self->pend_count) % PENDING_MAX;
    self->pending[at] = (pending_t){hi, since};
    self->pend_count++;
}

static void s_make_marker(meshctl_t *self, uint64_t now, uint64_t since)
{
    uint64_t old = self->marker;
    self->dirty = false;
    self->marker++;
    self->last_made = now;
    self->stats.markers++;
    self->io.marker(self->io.arg, self->marker, true);
    if (old) {
        self->io.marker(self->io.arg, old, false);
    }
    s_pending_add(self, self->marker, since);
}

//  Give up what waited too long; make a new marker when the oldest
//  waiting one is stuck (an ack lost): it keeps the oldest one's start, so
//  retries end with it.
static void s_expire(meshctl_t *self, uint64_t now)
{
    while (self->pend_count) {
        pending_t *head = &self->pending[self->pend_head];
        if (now - head->since < self->cfg.confirm_timeout_ms) {
            break;
        }
        uint64_t hi = head->hi;
        self->pend_head = (self->pend_head + 1) % PENDING_MAX;
        self->pend_count--;
        if (hi > self->reported) {
            self->reported = hi;
            self->stats.expired++;
            if (self->io.confirmed) {
                self->io.confirmed(self->io.arg, hi, false);
            }
        }
    }
    if (self->pend_count && !self->dirty &&
        now - self->pending[self->pend_head].since >= self->cfg.retry_ms &&
        now - self->last_made >= self->cfg.retry_ms) {
        self->stats.retries++;
        s_make_marker(self, now, self->pending[self->pend_head].since);
    }
}

// --- codec -------------------------------------------------------------------

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
} wbuf_t;

static int s_write(void *data, const char *p, size_t n)
{
    wbuf_t *w = data;
    if (n > w->cap - w->len) {
        return -1;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} rd_t;

static bool s_take(rd_t *r, size_t n, uint64_t *v)
{
    if ((size_t)(r->end - r->p) < n) {
        return false;
    }
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        *v = *v << 8 | *r->p++;
    }
    return true;
}

static bool s_rd_array(rd_t *r, uint64_t *n)
{
    uint64_t t;
    if (!s_take(r, 1, &t)) {
        return false;
    }
    if ((t & 0xf0) == 0x90) {
        *n = t & 0x0f;
        return true;
    }
    return (t == 0xdc && s_take(r, 2, n)) || (t == 0xdd && s_take(r, 4, n));
}

static bool s_rd_uint(rd_t *r, uint64_t *v)
{
    uint64_t t;
    if (!s_take(r, 1, &t)) {
        return false;
    }
    if (t <= 0x7f) {
        *v = t;
        return true;
    }
    return t >= 0xcc && t <= 0xcf && s_take(r, (size_t)1 << (t - 0xcc), v);
}

//  A str (bin false) or bin (bin true): its bytes stay in the body.
static bool s_rd_raw(rd_t *r, bool bin, const uint8_t **ptr, size_t *len)
{
    uint64_t t, n;
    if (!s_take(r, 1, &t)) {
        return false;
    }
    bool ok;
    if (!bin && (t & 0xe0) == 0xa0) {
        n = t & 0x1f;
        ok = true;
    } else {
        uint8_t base = bin ? 0xc4 : 0xd9;
        size_t width = t == base        ? 1
                       : t == base + 1u ? 2
                       : t == base + 2u ? 4
                                        : 0;
        ok = width && s_take(r, width, &n);
    }
    if (!ok || (uint64_t)(r->end - r->p) < n) {
        return false;
    }
    *ptr = r->p;
    *len = (size_t)n;
    r->p += n;
    return true;
}

static bool s_rd_node(rd_t *r, const uint8_t **node)
{
    size_t len;
    return s_rd_raw(r, true, node, &len) && len == MESHCTL_ID_SIZE;
}

// --- sending -----------------------------------------------------------------

static void s_send_beat(meshctl_t *self, uint64_t interval)
{
    uint8_t body[MESHCTL_BODY_MAX];
    wbuf_t w = {body, 0, sizeof body};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, s_write);
    //  the down set, up to MESHCTL_DEAF_MAX of it, after the last listed
    size_t total = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        total += s_expected(self, self->peers[i]);
    }
    const peer_t *deaf[MESHCTL_DEAF_MAX];
    size_t n = 0;
    if (total) {
        bool found;
        size_t start = total <= MESHCTL_DEAF_MAX
                           ? 0
                           : s_search(self, self->cursor, &found) + found;
        for (size_t k = 0; k < self->npeers && n < MESHCTL_DEAF_MAX; k++) {
            const peer_t *p = self->peers[(start + k) % self->npeers];
            if (s_expected(self, p)) {
                deaf[n++] = p;
            }
        }
        memcpy(self->cursor, deaf[n - 1]->node, MESHCTL_ID_SIZE);
    }
    //  what we missed of peers' messages, for the peers whose count moved
    //  since our last beat (empty while nothing is lost: a constant size)
    const peer_t *lost[MESHCTL_DEAF_MAX];
    size_t nlost = 0;
    for (size_t i = 0; i < self->npeers && nlost < MESHCTL_DEAF_MAX; i++) {
        peer_t *p = self->peers[i];
        if (p->missed != p->told) {
            p->told = p->missed;
            lost[nlost++] = p;
        }
    }
    msgpack_pack_array(&pk, 8);
    msgpack_pack_bin_with_body(&pk, self->node, MESHCTL_ID_SIZE);
    msgpack_pack_uint64(&pk, ++self->beat);
    msgpack_pack_uint64(&pk, interval);
    msgpack_pack_str_with_body(&pk, self->name, strlen(self->name));
    msgpack_pack_str_with_body(&pk, self->endpoint, strlen(self->endpoint));
    msgpack_pack_uint64(&pk, total);
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_bin_with_body(&pk, deaf[i]->node, MESHCTL_ID_SIZE);
    }
    msgpack_pack_array(&pk, (uint32_t)nlost);
    for (size_t i = 0; i < nlost; i++) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_bin_with_body(&pk, lost[i]->node, MESHCTL_ID_SIZE);
        msgpack_pack_uint64(&pk, lost[i]->missed);
    }
    self->stats.beats_sent++;
    self->io.send(self->io.arg, MESHCTL_BEAT, NULL, body, w.len);
}

static void s_send_ack(meshctl_t *self, const uint8_t *to, uint64_t n)
{
    uint8_t body[64];
    wbuf_t w = {body, 0, sizeof body};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, s_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_bin_with_body(&pk, self->node, MESHCTL_ID_SIZE);
    msgpack_pack_uint64(&pk, n);
    msgpack_pack_uint64(&pk, self->every);
    self->stats.acks_sent++;
    self->io.send(self->io.arg, MESHCTL_ACK, to, body, w.len);
}

// --- receiving ---------------------------------------------------------------

static int s_fail(meshctl_t *self, int err)
{
    if (err == EPROTO) {
        self->stats.bad++;
    } else {
        self->stats.replays++;
    }
    errno = err;
    return -1;
}

static int s_on_beat(meshctl_t *self, uint64_t now, rd_t *r)
{
    const uint8_t *node, *name, *endpoint;
    size_t name_len, ep_len;
    uint64_t fields, beat, interval, total, listed, nlost;
    if (!s_rd_array(r, &fields) || fields != 8 || !s_rd_node(r, &node) ||
        !s_rd_uint(r, &beat) || beat == 0 || !s_rd_uint(r, &interval) ||
        !s_rd_raw(r, false, &name, &name_len) ||
        !s_rd_raw(r, false, &endpoint, &ep_len) || !s_rd_uint(r, &total) ||
        !s_rd_array(r, &listed) || listed > MESHCTL_DEAF_MAX ||
        listed > total) {
        return s_fail(self, EPROTO);
    }
    bool us = false;
    for (uint64_t i = 0; i < listed; i++) {
        const uint8_t *id;
        if (!s_rd_node(r, &id)) {
            return s_fail(self, EPROTO);
        }
        us |= memcmp(id, self->node, MESHCTL_ID_SIZE) == 0;
    }
    //  [[node, missed]...]: what the sender missed of each; ours is what
    //  was lost on the way from us to it (counted here, the publish side)
    uint64_t lost_to = 0;
    bool told_us = false;
    if (!s_rd_array(r, &nlost) || nlost > MESHCTL_DEAF_MAX) {
        return s_fail(self, EPROTO);
    }
    for (uint64_t i = 0; i < nlost; i++) {
        const uint8_t *id;
        uint64_t pair, missed;
        if (!s_rd_array(r, &pair) || pair != 2 || !s_rd_node(r, &id) ||
            !s_rd_uint(r, &missed)) {
            return s_fail(self, EPROTO);
        }
        if (memcmp(id, self->node, MESHCTL_ID_SIZE) == 0) {
            lost_to = missed;
            told_us = true;
        }
    }
    if (r->p != r->end) {
        return s_fail(self, EPROTO);
    }
    if (memcmp(node, self->node, MESHCTL_ID_SIZE) == 0) {
        return 0; // our own, back through a proxy
    }
    peer_t *p = s_insert(self, node, now);
    if (!p) {
        return 0;
    }
    if (s_tomb(p) || beat <= p->beat) {
        return s_fail(self, EALREADY);
    }
    self->stats.beats_received++;
    p->beat = beat;
    if (told_us) {
        p->lost_to = lost_to;
    }
    p->interval = interval < INTERVAL_MAX ? interval : INTERVAL_MAX;
    s_copy(p->name, sizeof p->name, (const char *)name, name_len);
    s_copy(p->endpoint, sizeof p->endpoint, (const char *)endpoint, ep_len);
    s_heard(self, p, now);
    bool deaf;
    if (us) {
        p->deaf_beat = beat;
        deaf = true;
    } else if (total <= MESHCTL_DEAF_MAX) {
        deaf = false;
    } else {
        uint64_t turns = (total + MESHCTL_DEAF_MAX - 1) / MESHCTL_DEAF_MAX;
        deaf = p->deaf_beat && beat - p->deaf_beat <= turns;
    }
    if (deaf != p->deaf) {
        bool before = s_hears_us(p);
        p->deaf = deaf;
        self->rehealth |= before != s_hears_us(p);
    }
    return 0;
}

static int s_on_ack(meshctl_t *self, uint64_t now, rd_t *r)
{
    const uint8_t *node;
    uint64_t fields, n, interval;
    if (!s_rd_array(r, &fields) || fields != 3 || !s_rd_node(r, &node) ||
        !s_rd_uint(r, &n) || !s_rd_uint(r, &interval) || r->p != r->end) {
        return s_fail(self, EPROTO);
    }
    if (memcmp(node, self->node, MESHCTL_ID_SIZE) == 0) {
        return 0;
    }
    peer_t *p = s_insert(self, node, now);
    if (!p) {
        return 0;
    }
    if (s_tomb(p)) {
        return s_fail(self, EALREADY);
    }
    self->stats.acks_received++;
    p->interval = interval < INTERVAL_MAX ? interval : INTERVAL_MAX;
    s_heard(self, p, now);
    if (n == 0 || n > self->marker || n <= p->acked) {
        return 0; // not a marker we made, or old news
    }
    if (!self->recount && p->acked == self->min_acked && --self->at_min == 0) {
        self->recount = true;
    }
    p->acked = n;
    return 0;
}

// --- the API -----------------------------------------------------------------

meshctl_t *meshctl_new(const meshctl_config_t *cfg, const uint8_t *node,
                       const char *name, const char *endpoint,
                       const meshctl_io_t *io, uint64_t now)
{
    meshctl_config_t defaults;
    if (!cfg) {
        meshctl_config_defaults(&defaults);
        cfg = &defaults;
    }
    if (!cfg->beat_ms || !cfg->down_after || !cfg->forget_ms || !cfg->fan_in ||
        !cfg->confirm_timeout_ms || !cfg->retry_ms || !cfg->max_peers ||
        !io->send || !io->marker) {
        errno = EINVAL;
        return NULL;
    }
    meshctl_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->cfg = *cfg;
    self->io = *io;
    memcpy(self->node, node, MESHCTL_ID_SIZE);
    s_copy(self->name, sizeof self->name, name, strlen(name));
    s_copy(self->endpoint, sizeof self->endpoint, endpoint, strlen(endpoint));
    self->next_tick = self->next_send = now;
    self->every = cfg->beat_ms;
    self->dirty = true; // the first marker: peers learn we hear them
    self->min_acked = UINT64_MAX;
    self->health.detail = "";
    self->rehealth = true;
    s_settle(self);
    return self;
}

void meshctl_destroy(meshctl_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    meshctl_t *self = *self_p;
    for (size_t i = 0; i < self->npeers; i++) {
        free(self->peers[i]);
    }
    free(self->peers);
    free(self);
    *self_p = NULL;
}

void meshctl_tick(meshctl_t *self, uint64_t now)
{
    if (now >= self->next_tick) {
        uint64_t beat_ms = self->cfg.beat_ms, alive = 0;
        size_t down = 0;
        for (size_t i = self->npeers; i-- > 0;) {
            peer_t *p = self->peers[i];
            //  its interval, or ours while it has not said (heard by data)
            uint64_t every = p->interval ? p->interval : self->every;
            every = every > beat_ms ? every : beat_ms;
            if (p->heard &&
                now - p->last_heard >= every * self->cfg.down_after) {
                s_silent(self, p);
            }
            alive += s_alive(self, p);
            down += s_expected(self, p);
            bool keep = p->heard ||
                        (!s_tomb(p) && (s_member_alive(p) || p->present != 0));
            if (!keep && now - p->touched >= self->cfg.forget_ms) {
                s_remove(self, i);
                self->stats.forgotten++;
            }
        }
        //  a changed down set goes out at once: peers learn without
        //  waiting a long interval that we hear them now (or no longer)
        if (now >= self->next_send || down != self->told_down) {
            //  each of our alive peers gets our beats: so many that every
            //  sidecar gets about fan_in beats per beat_ms in all
            uint64_t every =
                beat_ms * ((alive + self->cfg.fan_in - 1) / self->cfg.fan_in);
            every = every < beat_ms ? beat_ms : every;
            every = every > INTERVAL_MAX ? INTERVAL_MAX : every;
            s_send_beat(self, every);
            self->told_down = down;
            self->every = every;
            self->next_send = now + every;
        }
        self->next_tick += beat_ms;
        if (self->next_tick <= now) {
            self->next_tick = now + beat_ms;
        }
    }
    s_expire(self, now);
    meshctl_flush(self, now);
}

uint64_t meshctl_next_deadline(const meshctl_t *self)
{
    return self->next_tick;
}

void meshctl_flush(meshctl_t *self, uint64_t now)
{
    if (self->dirty) {
        s_make_marker(self, now, now);
    }
    s_settle(self);
}

int meshctl_on_control(meshctl_t *self, uint64_t now, int kind,
                       const uint8_t *body, size_t len)
{
    if (!body && len) {
        return s_fail(self, EPROTO);
    }
    rd_t r = {body, body + len};
    int rc = kind == MESHCTL_BEAT  ? s_on_beat(self, now, &r)
             : kind == MESHCTL_ACK ? s_on_ack(self, now, &r)
                                   : s_fail(self, EPROTO);
    int err = errno;
    s_settle(self);
    errno = err;
    return rc;
}

void meshctl_on_data(meshctl_t *self, uint64_t now, const uint8_t *node,
                     uint64_t received, uint64_t missed)
{
    peer_t *p = s_find(self, node);
    if (!p || s_tomb(p)) {
        return;
    }
    p->received += received;
    p->missed += missed;
    s_heard(self, p, now);
    s_settle(self);
}

void meshctl_on_marker_seen(meshctl_t *self, uint64_t now, const uint8_t *node,
                            uint64_t n)
{
    if (memcmp(node, self->node, MESHCTL_ID_SIZE) == 0 || n == 0) {
        return; // ours, back through a proxy
    }
    s_send_ack(self, node, n);
    peer_t *p = s_insert(self, node, now);
    if (p && n > p->present) {
        bool relinked = p->present == 0 && p->was_present;
        p->touched = now;
        p->was_present = true;
        s_set_present(self, p, n);
        if (relinked && self->io.relinked) {
            self->io.relinked(self->io.arg, node, p->gone_at);
        }
    }
    s_settle(self);
}

void meshctl_on_marker_gone(meshctl_t *self, uint64_t now, const uint8_t *node,
                            uint64_t n)
{
    peer_t *p = s_find(self, node);
    if (p && p->present == n) {
        p->touched = now;
        p->gone_at = now;
        s_set_present(self, p, 0);
        if (p->heard) {
            s_silent(self, p); // its link ended: down until heard again
        }
    }
    s_settle(self);
}

void meshctl_member(meshctl_t *self, uint64_t now, const uint8_t *node,
                    int state, const char *name, const char *endpoint)
{
    if (memcmp(node, self->node, MESHCTL_ID_SIZE) == 0) {
        return;
    }
    if (state == MESHCTL_FORGOTTEN) {
        bool found;
        size_t i = s_search(self, node, &found);
        if (found) {
            s_remove(self, i);
            self->stats.forgotten++;
        }
    } else if (state == MESHCTL_ALIVE || state == MESHCTL_SUSPECT) {
        peer_t *p = s_insert(self, node, now);
        if (p) {
            p->member = state;
            p->touched = now;
            if (name && *name) {
                s_copy(p->name, sizeof p->name, name, strlen(name));
            }
            if (endpoint && *endpoint) {
                s_copy(p->endpoint, sizeof p->endpoint, endpoint,
                       strlen(endpoint));
            }
            self->rehealth = true;
        }
    } else if (state == MESHCTL_DEAD || state == MESHCTL_LEFT) {
        peer_t *p = s_find(self, node);
        if (p) {
            if (p->heard) {
                p->heard = false;
                s_event(self, p, MESHCTL_DOWN);
            }
            p->member = state;
            p->touched = now;
            if (!p->gone) {
                p->gone = true;
                s_event(self, p, MESHCTL_GONE);
            }
            self->recount = self->rehealth = true;
        }
    }
    s_settle(self);
}

void meshctl_expect_peers(meshctl_t *self, uint64_t now, bool expect)
{
    (void)now;
    if (self->cfg.expect_peers != expect) {
        self->cfg.expect_peers = expect;
        self->rehealth = true;
        s_settle(self);
    }
}

void meshctl_subscriptions_changed(meshctl_t *self)
{
    self->dirty = true;
}

uint64_t meshctl_marker_for_sub(const meshctl_t *self)
{
    return self->dirty ? self->marker + 1 : self->marker;
}

bool meshctl_is_confirmed(const meshctl_t *self, uint64_t n)
{
    return n <= self->marker && n <= self->min_acked;
}

void meshctl_health(const meshctl_t *self, meshctl_health_t *health)
{
    *health = self->health;
}

void meshctl_counts(const meshctl_t *self, unsigned *live, unsigned *down)
{
    *live = *down = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        *live += self->peers[i]->heard;
        *down += s_expected(self, self->peers[i]);
    }
}

size_t meshctl_size(const meshctl_t *self)
{
    return self->npeers;
}

void meshctl_stats(const meshctl_t *self, meshctl_stats_t *stats)
{
    *stats = self->stats;
    stats->lost_to_peers = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        stats->lost_to_peers += self->peers[i]->lost_to;
    }
}

void meshctl_rows(const meshctl_t *self, uint64_t now, meshctl_row_fn *fn,
                  void *arg)
{
    for (size_t i = 0; i < self->npeers; i++) {
        const peer_t *p = self->peers[i];
        meshctl_row_t row = {.node = p->node,
                             .name = p->name,
                             .endpoint = p->endpoint,
                             .state = p->member == MESHCTL_DEAD   ? "dead"
                                      : p->member == MESHCTL_LEFT ? "left"
                                      : p->heard                  ? "live"
                                      : s_expected(self, p)       ? "down"
                                                                  : "silent",
                             .member = p->member,
                             .hears_us = s_hears_us(p),
                             .last_ms =
                                 p->ever ? now - p->last_heard : UINT64_MAX,
                             .acked = p->acked,
                             .received = p->received,
                             .missed = p->missed,
                             .lost_to = p->lost_to};
        fn(arg, &row);
    }
}
