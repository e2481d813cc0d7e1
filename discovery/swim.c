/*  swim.c - membership by gossip: the SWIM protocol as a state machine

    The contract and the protocol summary are in swim.h, the wire format in
    swim_codec.h. This file holds the timers (one probe in flight at most,
    suspicion and tombstone deadlines per member, push-pull and join
    retries) and the packet handlers. The member table and probe order are
    swim_members.c, the probe and ping-req bookkeeping swim_probe.c, the
    dissemination queue swim_queue.c.
*/

#include "swim.h"
#include "swim_codec.h"
#include "swim_members.h"
#include "swim_probe.h"
#include "swim_queue.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEEDS_MAX    32 // join addresses remembered
#define INDIRECT_MAX 16 // largest indirect_checks accepted
#define LEAVE_FANOUT 3  // direct leave packets, at least

#define LIVE_MASK ((1u << SWIM_ALIVE) | (1u << SWIM_SUSPECT))

struct swim_t {
    swim_config_t cfg;
    swim_io_t io;
    swim_members_t *members; // everyone, us included
    swim_queue_t *queue;     // news to piggyback
    swim_entry_t *me;        // our entry, never removed
    bool left;               // swim_leave was called
    uint64_t rng;            // fallback generator state
    swim_probe_t *probe;     // probe in flight, forwards
    uint64_t next_probe_at;
    uint64_t next_pushpull_at;
    uint64_t next_gossip_at; // while the queue holds news
    size_t learned;          // members new to us since our last push-pull
    uint64_t last_pushpull;  // when we last started one
    uint32_t health;         // Lifeguard local health score
    uint64_t member_due;     // no entry deadline before this
    char seeds[SEEDS_MAX][SWIM_ADDR_MAX + 1];
    size_t seed_count;
    uint64_t next_join_at;
    uint64_t join_backoff;  // ms until the next join retry
    uint8_t *packet;        // encode buffer, max_packet bytes
    swim_member_t *scratch; // records of one packet
    size_t scratch_max;
    size_t cursor; // swim_first / swim_next
    swim_stats_t stats;
};

typedef void(s_handler_fn)(swim_t *self, const char *from,
                           const swim_msg_t *msg, uint64_t now);

static const uint8_t s_zero_id[SWIM_ID_SIZE];

//  --------------------------------------------------------------------------
//  Helpers

static uint64_t s_random(swim_t *self)
{
    if (self->io.random) {
        return self->io.random(self->io.arg);
    }
    //  splitmix64
    uint64_t z = (self->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t s_random_cb(void *arg)
{
    return s_random((swim_t *)arg);
}

static bool s_is_me(swim_t *self, const uint8_t *id)
{
    return memcmp(id, self->me->rec.id, SWIM_ID_SIZE) == 0;
}

static bool s_live(int state)
{
    return state == SWIM_ALIVE || state == SWIM_SUSPECT;
}

//  Members that take part: alive and suspect, us included.
static size_t s_live_count(swim_t *self)
{
    return swim_members_count(self->members, SWIM_ALIVE) +
           swim_members_count(self->members, SWIM_SUSPECT);
}

//  Gossip rounds run while there is news and someone to tell it to.
static bool s_gossiping(swim_t *self)
{
    return swim_queue_size(self->queue) > 0 &&
           swim_members_count(self->members, SWIM_ALIVE) > 1;
}

static uint64_t s_suspicion_timeout(swim_t *self)
{
    double n = (double)s_live_count(self);
    double scale = n > 10.0 ? log10(n) : 1.0;
    return (uint64_t)(self->cfg.suspicion_mult * scale *
                      self->cfg.probe_interval_ms);
}

//  Local health: our probe timings, stretched while we are the slow one.
static void s_health(swim_t *self, int delta)
{
    if (delta < 0 && self->health > 0) {
        self->health--;
    } else if (delta > 0 && self->health + 1 < self->cfg.health_max) {
        self->health++;
    }
    self->stats.health = self->health;
}

//  Set an entry's deadline, keeping member_due at or before the earliest.
static void s_deadline(swim_t *self, swim_entry_t *entry, uint64_t at)
{
    entry->deadline = at;
    if (at != 0 && at < self->member_due) {
        self->member_due = at;
    }
}

static uint32_t s_retransmit_limit(swim_t *self)
{
    double n = (double)s_live_count(self);
    return self->cfg.retransmit_mult * (uint32_t)ceil(log(n + 1.0));
}

static void s_queue(swim_t *self, const swim_member_t *rec)
{
    if (swim_queue_push(self->queue, rec)) {
        self->stats.overflows++;
    }
}

//  Add one record to a packet's news if it fits in *budget.
static void s_attach(swim_msg_t *msg, const swim_member_t *rec, size_t *budget)
{
    size_t size = swim_codec_record_size(rec);
    if (size <= *budget) {
        msg->updates[msg->update_count++] = *rec;
        *budget -= size;
    }
}

//  Send one packet to addr, which is member dest_id if known (else NULL).
//  With piggyback, the news is: our own record, so that whoever we talk to
//  knows our latest; then the receiver's own record if we hold it suspect
//  or dead, so that it can refute at once; then the queue, as room allows.
static void s_send(swim_t *self, const char *addr, const uint8_t *dest_id,
                   swim_msg_t *msg, bool piggyback)
{
    memcpy(msg->sender, self->me->rec.id, SWIM_ID_SIZE);
    msg->updates = NULL;
    msg->update_count = 0;
    if (piggyback) {
        //  The updates array header grows by 2 bytes past 15 items.
        size_t base = swim_codec_size(msg) + 2;
        size_t budget =
            base < self->cfg.max_packet ? self->cfg.max_packet - base : 0;
        msg->updates = self->scratch;
        s_attach(msg, &self->me->rec, &budget);
        swim_entry_t *dest =
            dest_id ? swim_members_lookup(self->members, dest_id) : NULL;
        if (dest && dest != self->me &&
            (dest->rec.state == SWIM_SUSPECT || dest->rec.state == SWIM_DEAD)) {
            s_attach(msg, &dest->rec, &budget);
        }
        size_t fixed = msg->update_count;
        size_t queued =
            swim_queue_fill(self->queue, budget, s_retransmit_limit(self),
                            self->scratch + fixed, self->scratch_max - fixed);
        //  Queued news about the records already attached is older.
        for (size_t i = fixed; i < fixed + queued; i++) {
            bool dup = false;
            for (size_t j = 0; j < fixed; j++) {
                dup |= memcmp(self->scratch[i].id, self->scratch[j].id,
                              SWIM_ID_SIZE) == 0;
            }
            if (!dup) {
                self->scratch[msg->update_count++] = self->scratch[i];
            }
        }
    }
    size_t len = 0;
    int rc = swim_codec_encode(msg, self->packet, self->cfg.max_packet, &len);
    assert(rc == 0); // every packet is sized before it is built
    (void)rc;
    self->stats.packets_out++;
    self->stats.bytes_out += len;
    self->io.send(self->io.arg, addr, self->packet, len);
}

static void s_send_ping(swim_t *self, const char *addr, const uint8_t *target,
                        uint32_t seq)
{
    swim_msg_t msg = {.type = SWIM_MSG_PING, .seq = seq};
    memcpy(msg.target, target, SWIM_ID_SIZE);
    s_send(self, addr, target, &msg, true);
}

static void s_send_ack(swim_t *self, const char *addr, const uint8_t *dest_id,
                       uint32_t seq)
{
    swim_msg_t msg = {.type = SWIM_MSG_ACK, .seq = seq};
    s_send(self, addr, dest_id, &msg, true);
}

//  Our whole table, in as many parts as it takes.
static void s_send_table(swim_t *self, const char *addr, int type)
{
    size_t size = swim_members_size(self->members);
    size_t next = 0;
    uint32_t part = 0;
    do {
        swim_msg_t msg = {.type = type, .part = part, .members = self->scratch};
        size_t used = swim_codec_size(&msg) + 2; // members header growth
        while (next < size && msg.member_count < self->scratch_max) {
            const swim_member_t *rec =
                &swim_members_at(self->members, next)->rec;
            size_t rec_size = swim_codec_record_size(rec);
            if (used + rec_size > self->cfg.max_packet) {
                break;
            }
            self->scratch[msg.member_count++] = *rec;
            used += rec_size;
            next++;
        }
        assert(msg.member_count > 0); // one record always fits
        s_send(self, addr, NULL, &msg, false);
        part++;
    } while (next < size);
}

static bool s_same_fields(const swim_member_t *a, const swim_member_t *b)
{
    return strcmp(a->name, b->name) == 0 &&
           strcmp(a->endpoint, b->endpoint) == 0 &&
           strcmp(a->gossip_addr, b->gossip_addr) == 0 &&
           memcmp(a->pubkey, b->pubkey, SWIM_KEY_SIZE) == 0 &&
           strcmp(a->zone, b->zone) == 0 && a->start_ms == b->start_ms;
}

static void s_notify(swim_t *self, const swim_member_t *rec, int old_state)
{
    if (self->io.changed) {
        self->io.changed(self->io.arg, rec, old_state);
    }
}

//  --------------------------------------------------------------------------
//  Applying news

//  Put news (with state, which may differ from news->state) into an entry
//  it overrides; start or stop timers, count, notify and re-disseminate.
static void s_update(swim_t *self, swim_entry_t *entry,
                     const swim_member_t *news, int state, uint64_t now)
{
    swim_member_t old = entry->rec;
    swim_member_t rec = *news; // news may be entry->rec itself
    rec.state = old.state;     // set_state keeps the counts true
    entry->rec = rec;
    swim_members_set_state(self->members, entry, state);
    if (state == SWIM_ALIVE) {
        entry->deadline = 0;
    } else if (state == SWIM_SUSPECT) {
        if (old.state != SWIM_SUSPECT) {
            s_deadline(self, entry, now + s_suspicion_timeout(self));
        }
    } else if (s_live(old.state)) {
        s_deadline(self, entry, now + self->cfg.dead_reap_ms);
    }
    if (state == SWIM_DEAD && old.state != SWIM_DEAD) {
        self->stats.deaths++;
    }
    if (state == SWIM_LEFT && old.state != SWIM_LEFT) {
        self->stats.leaves++;
    }
    s_queue(self, &entry->rec);
    if (!entry->announced) {
        if (s_live(state)) {
            entry->announced = true;
            s_notify(self, &entry->rec, SWIM_NONE);
        }
    } else if (state != old.state || !s_same_fields(&old, &entry->rec)) {
        s_notify(self, &entry->rec, old.state);
    }
}

//  News about a member we do not know.
static void s_add(swim_t *self, const swim_member_t *news, int state,
                  uint64_t now)
{
    swim_member_t rec = *news;
    rec.state = state;
    swim_entry_t *entry = swim_members_insert(self->members, &rec);
    if (entry == NULL) {
        self->stats.overflows++;
        return;
    }
    if (s_live(state)) {
        if (state == SWIM_SUSPECT) {
            s_deadline(self, entry, now + s_suspicion_timeout(self));
        }
        self->learned++;
        entry->announced = true;
        s_notify(self, &entry->rec, SWIM_NONE);
    } else {
        //  A tombstone, kept silently: it only stops stale news.
        s_deadline(self, entry, now + self->cfg.dead_reap_ms);
    }
    s_queue(self, &entry->rec);
}

//  One gossip address holds one process: a new member alive at an address
//  where an earlier life (an earlier start) still counts as alive or
//  suspect is that process restarted, and the earlier life is dead now.
//  Without this a host restarted faster than probes find its old lives
//  piles up ghosts that count as "down" until each is probed in turn.
static void s_supersede(swim_t *self, const swim_member_t *news, uint64_t now)
{
    for (size_t i = 0; i < swim_members_size(self->members); i++) {
        swim_entry_t *e = swim_members_at(self->members, i);
        if (e && e != self->me && s_live(e->rec.state) &&
            memcmp(e->rec.id, news->id, SWIM_ID_SIZE) != 0 &&
            e->rec.start_ms < news->start_ms &&
            strcmp(e->rec.gossip_addr, news->gossip_addr) == 0) {
            s_update(self, e, &e->rec, SWIM_DEAD, now);
        }
    }
}

//  News about ourselves: anything that says we are not alive at our
//  current incarnation or later is refuted with a higher one.
static void s_refute(swim_t *self, const swim_member_t *news)
{
    swim_member_t *me = &self->me->rec;
    if (self->left || news->incarnation < me->incarnation ||
        news->incarnation == UINT64_MAX ||
        (news->state == SWIM_ALIVE && news->incarnation == me->incarnation)) {
        return;
    }
    me->incarnation = news->incarnation + 1;
    self->stats.refutations++;
    //  Others thought us gone: maybe we are the slow one.
    s_health(self, +1);
    s_queue(self, me);
}

//  Apply one piece of news. In a table merge (push-pull) a member reported
//  dead is only suspected, as memberlist does: it gets the chance to
//  refute, which is what makes a healed partition whole again. Tombstones
//  in a merged table are not copied, so that two tables cannot keep
//  handing a forgotten member back and forth.
static void s_apply(swim_t *self, const swim_member_t *news, uint64_t now,
                    bool merge)
{
    if (s_is_me(self, news->id)) {
        s_refute(self, news);
        return;
    }
    swim_entry_t *entry = swim_members_lookup(self->members, news->id);
    int state = news->state;
    if (merge && !s_live(state) && entry == NULL) {
        return;
    }
    //  Hearsay never kills: news that a member we hold alive is dead (a
    //  host back from a cut-off spreading its stale view, or a table merge)
    //  only makes us suspect it, so our own suspicion timer decides and a
    //  live member has the time to refute. Leaves still apply at once.
    if (state == SWIM_DEAD && entry != NULL && s_live(entry->rec.state)) {
        state = SWIM_SUSPECT;
    }
    if (entry == NULL) {
        s_add(self, news, state, now);
        if (s_live(state) && *news->gossip_addr) {
            s_supersede(self, news, now);
        }
    } else if (swim_members_overrides(state, news->incarnation,
                                      entry->rec.state,
                                      entry->rec.incarnation)) {
        s_update(self, entry, news, state, now);
    }
}

//  --------------------------------------------------------------------------
//  Timers

static void s_probe_start(swim_t *self, uint64_t now)
{
    swim_entry_t *target =
        swim_members_next_probe(self->members, self->me->rec.id);
    if (target == NULL) {
        return;
    }
    uint32_t mult = self->health + 1;
    swim_probe_set_timings(self->probe, self->cfg.probe_timeout_ms * mult,
                           self->cfg.probe_interval_ms * mult);
    uint32_t seq = swim_probe_start(self->probe, target->rec.id,
                                    target->rec.incarnation, now);
    self->stats.probes++;
    s_send_ping(self, target->rec.gossip_addr, target->rec.id, seq);
}

static void s_probe_indirect(swim_t *self)
{
    self->stats.indirect++;
    swim_entry_t *target =
        swim_members_lookup(self->members, swim_probe_target(self->probe));
    if (target == NULL || !s_live(target->rec.state)) {
        return;
    }
    swim_entry_t *helpers[INDIRECT_MAX];
    size_t count =
        swim_members_pick(self->members, 1u << SWIM_ALIVE, self->me->rec.id,
                          target->rec.id, helpers, self->cfg.indirect_checks);
    for (size_t i = 0; i < count; i++) {
        swim_msg_t msg = {.type = SWIM_MSG_PING_REQ,
                          .seq = swim_probe_seq(self->probe)};
        memcpy(msg.target, target->rec.id, SWIM_ID_SIZE);
        memcpy(msg.target_addr, target->rec.gossip_addr,
               sizeof msg.target_addr);
        s_send(self, helpers[i]->rec.gossip_addr, helpers[i]->rec.id, &msg,
               true);
    }
}

//  Each period up to k suspects get a ping carrying their suspicion (see
//  s_send): a live one refutes in its ack rather than waiting for gossip to
//  reach it before a suspicion timer runs out. Sequence number 0 is never a
//  probe's, so these acks bring news only.
static void s_ping_suspects(swim_t *self)
{
    if (swim_members_count(self->members, SWIM_SUSPECT) == 0) {
        return;
    }
    const uint8_t *probed =
        swim_probe_active(self->probe) ? swim_probe_target(self->probe) : NULL;
    swim_entry_t *suspects[INDIRECT_MAX];
    size_t k = self->cfg.indirect_checks ? self->cfg.indirect_checks : 1;
    size_t count = swim_members_pick(self->members, 1u << SWIM_SUSPECT,
                                     self->me->rec.id, probed, suspects, k);
    for (size_t i = 0; i < count; i++) {
        s_send_ping(self, suspects[i]->rec.gossip_addr, suspects[i]->rec.id, 0);
    }
}

static void s_probe_timers(swim_t *self, uint64_t now)
{
    int action = swim_probe_check(self->probe, now);
    if (action == SWIM_PROBE_INDIRECT) {
        s_probe_indirect(self);
    } else if (action == SWIM_PROBE_FAILED) {
        s_health(self, +1);
        swim_entry_t *target =
            swim_members_lookup(self->members, swim_probe_target(self->probe));
        if (target && target->rec.state == SWIM_ALIVE &&
            target->rec.incarnation == swim_probe_incarnation(self->probe)) {
            self->stats.suspicions++;
            s_update(self, target, &target->rec, SWIM_SUSPECT, now);
        }
    }
    if (!self->left && !swim_probe_active(self->probe) &&
        now >= self->next_probe_at) {
        self->next_probe_at =
            now + self->cfg.probe_interval_ms * (self->health + 1);
        s_probe_start(self, now);
        s_ping_suspects(self);
    }
}

//  Suspects whose time is up die; tombstones whose time is up go.
static void s_member_timers(swim_t *self, uint64_t now)
{
    if (now < self->member_due) {
        return;
    }
    self->member_due = UINT64_MAX;
    size_t i = 0;
    while (i < swim_members_size(self->members)) {
        swim_entry_t *entry = swim_members_at(self->members, i);
        if (entry->deadline == 0 || entry->deadline > now) {
            if (entry->deadline != 0 && entry->deadline < self->member_due) {
                self->member_due = entry->deadline;
            }
            i++;
        } else if (entry->rec.state == SWIM_SUSPECT) {
            s_update(self, entry, &entry->rec, SWIM_DEAD, now); // new deadline
            i++;
        } else {
            swim_member_t gone = entry->rec;
            bool announced = entry->announced;
            swim_members_remove(self->members, entry);
            if (announced) {
                int old_state = gone.state;
                gone.state = SWIM_NONE;
                s_notify(self, &gone, old_state);
            }
        }
    }
}

//  News waiting: send it to a few random alive members, in an ack with
//  sequence number 0 (see swim.h). Nothing waiting: no packet, no timer.
static void s_gossip_timer(swim_t *self, uint64_t now)
{
    if (now < self->next_gossip_at) {
        return;
    }
    self->next_gossip_at = now + self->cfg.gossip_interval_ms;
    if (!s_gossiping(self)) {
        return;
    }
    swim_entry_t *peers[INDIRECT_MAX];
    size_t count =
        swim_members_pick(self->members, 1u << SWIM_ALIVE, self->me->rec.id,
                          NULL, peers, self->cfg.gossip_nodes);
    for (size_t i = 0; i < count && swim_queue_size(self->queue) > 0; i++) {
        self->stats.gossips++;
        s_send_ack(self, peers[i]->rec.gossip_addr, peers[i]->rec.id, 0);
    }
}

//  A cluster that grows fast (many members starting at once) is learnt
//  quicker from whole tables than from gossip, whose packets carry a few
//  records each: once we have learnt of enough new members since our last
//  push-pull, the next one comes after two protocol periods rather than
//  at its usual time.
static bool s_growing(swim_t *self)
{
    size_t live = s_live_count(self);
    size_t threshold = live / 16 > 4 ? live / 16 : 4;
    return self->learned >= threshold;
}

static uint64_t s_pushpull_due(swim_t *self)
{
    uint64_t due = self->next_pushpull_at;
    if (s_growing(self)) {
        uint64_t soon = self->last_pushpull + 2 * self->cfg.probe_interval_ms;
        if (soon < due) {
            due = soon;
        }
    }
    return due;
}

//  The push-pull period grows with the cluster as memberlist's
//  pushPullScale: x1 up to PUSHPULL_SCALE_AT members, then one more per
//  doubling (x3 at 100, x6 at 1,000). A table is n records, so what an
//  idle member sends and receives for anti-entropy grows as n / log n
//  instead of n.
#define PUSHPULL_SCALE_AT 32
static uint64_t s_pushpull_period(swim_t *self)
{
    size_t n = s_live_count(self);
    uint64_t period = self->cfg.pushpull_interval_ms;
    if (n <= PUSHPULL_SCALE_AT) {
        return period;
    }
    double mult = ceil(log2((double)n) - log2((double)PUSHPULL_SCALE_AT)) + 1.0;
    return (uint64_t)((double)period * mult);
}

static void s_pushpull_timer(swim_t *self, uint64_t now)
{
    if (self->left || now < s_pushpull_due(self)) {
        return;
    }
    if (now >= self->next_pushpull_at) {
        self->next_pushpull_at = now + s_pushpull_period(self);
    }
    self->last_pushpull = now;
    self->learned = 0;
    //  One alive member, and one dead one: if it is alive after all (a
    //  partition healed) both sides learn so from the exchange.
    unsigned masks[2] = {1u << SWIM_ALIVE, 1u << SWIM_DEAD};
    for (size_t i = 0; i < 2; i++) {
        swim_entry_t *peer;
        if (swim_members_pick(self->members, masks[i], self->me->rec.id, NULL,
                              &peer, 1) == 1) {
            self->stats.pushpulls++;
            s_send_table(self, peer->rec.gossip_addr, SWIM_MSG_PP_REQ);
        }
    }
}

static void s_join_timer(swim_t *self, uint64_t now)
{
    if (self->left || self->seed_count == 0 || now < self->next_join_at) {
        return;
    }
    if (s_live_count(self) > 1) {
        self->join_backoff = self->cfg.probe_interval_ms;
    } else {
        for (size_t i = 0; i < self->seed_count; i++) {
            self->stats.pushpulls++;
            s_send_table(self, self->seeds[i], SWIM_MSG_PP_REQ);
        }
        self->join_backoff *= 2;
        if (self->join_backoff > self->cfg.pushpull_interval_ms) {
            self->join_backoff = self->cfg.pushpull_interval_ms;
        }
    }
    self->next_join_at = now + self->join_backoff;
}

//  --------------------------------------------------------------------------
//  Packet handlers, by type

static void s_on_ping(swim_t *self, const char *from, const swim_msg_t *msg,
                      uint64_t now)
{
    (void)now;
    //  A ping for another id is for whoever had our address before us: no
    //  ack, so that its old id is found dead.
    if (memcmp(msg->target, s_zero_id, SWIM_ID_SIZE) != 0 &&
        !s_is_me(self, msg->target)) {
        return;
    }
    s_send_ack(self, from, msg->sender, msg->seq);
}

static void s_on_ack(swim_t *self, const char *from, const swim_msg_t *msg,
                     uint64_t now)
{
    (void)from;
    (void)now;
    uint32_t req_seq;
    char addr[SWIM_ADDR_MAX + 1];
    int kind = swim_probe_ack(self->probe, msg->seq, &req_seq, addr);
    if (kind == SWIM_ACK_FORWARD) {
        s_send_ack(self, addr, NULL, req_seq);
    } else if (kind == SWIM_ACK_PROBE) {
        s_health(self, -1);
    }
}

static void s_on_ping_req(swim_t *self, const char *from, const swim_msg_t *msg,
                          uint64_t now)
{
    if (s_is_me(self, msg->target)) {
        s_send_ack(self, from, msg->sender, msg->seq);
        return;
    }
    uint32_t seq;
    if (swim_probe_forward(self->probe, msg->seq, from, now, &seq)) {
        self->stats.overflows++;
        return;
    }
    s_send_ping(self, msg->target_addr, msg->target, seq);
}

static void s_merge(swim_t *self, const swim_msg_t *msg, uint64_t now)
{
    for (size_t i = 0; i < msg->member_count; i++) {
        s_apply(self, &msg->members[i], now, true);
    }
}

static void s_on_pp_req(swim_t *self, const char *from, const swim_msg_t *msg,
                        uint64_t now)
{
    s_merge(self, msg, now);
    //  One answer per exchange, to its first part; after the merge, so it
    //  carries any refutation the request provoked.
    if (msg->part == 0) {
        s_send_table(self, from, SWIM_MSG_PP_RESP);
    }
}

static void s_on_pp_resp(swim_t *self, const char *from, const swim_msg_t *msg,
                         uint64_t now)
{
    (void)from;
    s_merge(self, msg, now);
}

static void s_on_leave(swim_t *self, const char *from, const swim_msg_t *msg,
                       uint64_t now)
{
    (void)from;
    s_apply(self, &msg->members[0], now, false);
}

static s_handler_fn *const s_handlers[SWIM_MSG_TYPES] = {
    [SWIM_MSG_PING] = s_on_ping,         [SWIM_MSG_ACK] = s_on_ack,
    [SWIM_MSG_PING_REQ] = s_on_ping_req, [SWIM_MSG_PP_REQ] = s_on_pp_req,
    [SWIM_MSG_PP_RESP] = s_on_pp_resp,   [SWIM_MSG_LEAVE] = s_on_leave,
};

//  --------------------------------------------------------------------------
//  Public API

void swim_config_defaults(swim_config_t *cfg)
{
    assert(cfg);
    cfg->probe_interval_ms = 500;
    cfg->probe_timeout_ms = 250;
    cfg->indirect_checks = 3;
    cfg->suspicion_mult = 3;
    cfg->retransmit_mult = 4;
    cfg->pushpull_interval_ms = 30000;
    cfg->dead_reap_ms = 60000;
    cfg->max_packet = 1400;
    cfg->gossip_interval_ms = 200;
    cfg->gossip_nodes = 3;
    cfg->health_max = 8;
}

static bool s_config_valid(const swim_config_t *cfg)
{
    return cfg->probe_interval_ms > 0 && cfg->probe_timeout_ms > 0 &&
           cfg->probe_timeout_ms < cfg->probe_interval_ms &&
           cfg->indirect_checks <= INDIRECT_MAX && cfg->suspicion_mult > 0 &&
           cfg->retransmit_mult > 0 && cfg->pushpull_interval_ms > 0 &&
           cfg->dead_reap_ms > 0 && cfg->gossip_interval_ms > 0 &&
           cfg->gossip_nodes <= INDIRECT_MAX && cfg->health_max > 0 &&
           cfg->max_packet >= SWIM_PACKET_MIN &&
           cfg->max_packet <= SWIM_PACKET_MAX;
}

swim_t *swim_new(const swim_config_t *cfg, const swim_member_t *self_rec,
                 const swim_io_t *io, uint64_t now_ms)
{
    swim_config_t defaults;
    if (cfg == NULL) {
        swim_config_defaults(&defaults);
        cfg = &defaults;
    }
    swim_member_t rec = *self_rec;
    rec.state = SWIM_ALIVE;
    if (!s_config_valid(cfg) || io->send == NULL ||
        !swim_codec_record_valid(&rec)) {
        errno = EINVAL;
        return NULL;
    }
    swim_t *self = (swim_t *)calloc(1, sizeof(swim_t));
    if (self == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    self->cfg = *cfg;
    self->io = *io;
    self->scratch_max = cfg->max_packet / SWIM_CODEC_RECORD_MIN + 1;
    self->members = swim_members_new(s_random_cb, self);
    self->probe = swim_probe_new(cfg->probe_timeout_ms, cfg->probe_interval_ms);
    self->queue = swim_queue_new();
    self->packet = (uint8_t *)malloc(cfg->max_packet);
    self->scratch =
        (swim_member_t *)calloc(self->scratch_max, sizeof(swim_member_t));
    if (self->members == NULL || self->probe == NULL || self->queue == NULL ||
        self->packet == NULL || self->scratch == NULL ||
        (self->me = swim_members_insert(self->members, &rec)) == NULL) {
        swim_destroy(&self);
        errno = ENOMEM;
        return NULL;
    }
    self->me->announced = true;
    for (size_t i = 0; i < SWIM_ID_SIZE; i++) {
        self->rng = self->rng * 131 + rec.id[i];
    }
    //  Spread the first probe over a period, so that nodes started
    //  together do not probe in step.
    self->next_probe_at = now_ms + s_random(self) % cfg->probe_interval_ms;
    self->next_pushpull_at =
        now_ms + s_random(self) % cfg->pushpull_interval_ms;
    self->next_gossip_at = now_ms;
    self->last_pushpull = now_ms;
    self->member_due = UINT64_MAX;
    self->join_backoff = cfg->probe_interval_ms;
    s_queue(self, &self->me->rec);
    return self;
}

void swim_destroy(swim_t **self_p)
{
    assert(self_p);
    swim_t *self = *self_p;
    if (self) {
        swim_members_destroy(&self->members);
        swim_probe_destroy(&self->probe);
        swim_queue_destroy(&self->queue);
        free(self->packet);
        free(self->scratch);
        free(self);
        *self_p = NULL;
    }
}

int swim_join(swim_t *self, const char *addr, uint64_t now_ms)
{
    size_t len = strnlen(addr, SWIM_ADDR_MAX + 1);
    if (self->left || len == 0 || len > SWIM_ADDR_MAX) {
        errno = EINVAL;
        return -1;
    }
    size_t i = 0;
    while (i < self->seed_count && strcmp(self->seeds[i], addr) != 0) {
        i++;
    }
    if (i == self->seed_count) {
        if (self->seed_count == SEEDS_MAX) {
            errno = ENOSPC;
            return -1;
        }
        memcpy(self->seeds[self->seed_count++], addr, len + 1);
    }
    self->stats.pushpulls++;
    s_send_table(self, addr, SWIM_MSG_PP_REQ);
    self->last_pushpull = now_ms;
    self->join_backoff = self->cfg.probe_interval_ms;
    self->next_join_at = now_ms + self->join_backoff;
    return 0;
}

int swim_recv(swim_t *self, const char *from_addr, const uint8_t *buf,
              size_t len, uint64_t now_ms)
{
    self->stats.packets_in++;
    self->stats.bytes_in += len;
    size_t from_len = strnlen(from_addr, SWIM_ADDR_MAX + 1);
    if (from_len == 0 || from_len > SWIM_ADDR_MAX) {
        errno = EINVAL;
        return -1;
    }
    swim_msg_t msg;
    if (swim_codec_decode(buf, len, &msg)) {
        if (errno != ENOMEM) {
            self->stats.bad_packets++;
            errno = EPROTO;
        }
        return -1;
    }
    //  Only the leaver may announce its leave.
    if (msg.type == SWIM_MSG_LEAVE &&
        (msg.members[0].state != SWIM_LEFT ||
         memcmp(msg.members[0].id, msg.sender, SWIM_ID_SIZE) != 0)) {
        swim_codec_clear(&msg);
        self->stats.bad_packets++;
        errno = EPROTO;
        return -1;
    }
    //  Our own packets (a seed list that names us) are not news.
    if (!s_is_me(self, msg.sender)) {
        for (size_t i = 0; i < msg.update_count; i++) {
            s_apply(self, &msg.updates[i], now_ms, false);
        }
        s_handlers[msg.type](self, from_addr, &msg, now_ms);
    }
    swim_codec_clear(&msg);
    return 0;
}

void swim_tick(swim_t *self, uint64_t now_ms)
{
    s_probe_timers(self, now_ms);
    s_member_timers(self, now_ms);
    s_gossip_timer(self, now_ms);
    s_pushpull_timer(self, now_ms);
    s_join_timer(self, now_ms);
}

uint64_t swim_next_deadline(swim_t *self)
{
    uint64_t next = UINT64_MAX;
#define S_EARLIER(t)                                                           \
    if ((t) < next) {                                                          \
        next = (t);                                                            \
    }
    S_EARLIER(swim_probe_deadline(self->probe));
    if (!self->left && !swim_probe_active(self->probe)) {
        S_EARLIER(self->next_probe_at);
    }
    if (!self->left) {
        S_EARLIER(s_pushpull_due(self));
        if (self->seed_count > 0) {
            S_EARLIER(self->next_join_at);
        }
    }
    if (s_gossiping(self)) {
        S_EARLIER(self->next_gossip_at);
    }
    //  member_due may be early (a deadline was cleared since): the tick
    //  then finds nothing due and computes it again.
    S_EARLIER(self->member_due);
#undef S_EARLIER
    return next;
}

int swim_leave(swim_t *self, uint64_t now_ms)
{
    (void)now_ms;
    if (self->left) {
        return 0;
    }
    self->left = true;
    swim_probe_cancel(self->probe);
    swim_members_set_state(self->members, self->me, SWIM_LEFT);
    self->me->rec.incarnation++;
    s_queue(self, &self->me->rec);
    size_t fanout = self->cfg.indirect_checks > LEAVE_FANOUT
                        ? self->cfg.indirect_checks
                        : LEAVE_FANOUT;
    swim_entry_t *peers[INDIRECT_MAX];
    size_t count = swim_members_pick(self->members, LIVE_MASK, self->me->rec.id,
                                     NULL, peers, fanout);
    for (size_t i = 0; i < count; i++) {
        swim_member_t rec = self->me->rec;
        swim_msg_t msg = {
            .type = SWIM_MSG_LEAVE, .members = &rec, .member_count = 1};
        s_send(self, peers[i]->rec.gossip_addr, peers[i]->rec.id, &msg, true);
    }
    return 0;
}

int swim_set_self(swim_t *self, const swim_member_t *rec, uint64_t now_ms)
{
    (void)now_ms;
    swim_member_t next = self->me->rec;
    memcpy(next.name, rec->name, sizeof next.name);
    memcpy(next.endpoint, rec->endpoint, sizeof next.endpoint);
    memcpy(next.gossip_addr, rec->gossip_addr, sizeof next.gossip_addr);
    memcpy(next.pubkey, rec->pubkey, sizeof next.pubkey);
    memcpy(next.zone, rec->zone, sizeof next.zone);
    if (self->left || !s_is_me(self, rec->id) ||
        !swim_codec_record_valid(&next)) {
        errno = EINVAL;
        return -1;
    }
    next.incarnation++;
    self->me->rec = next;
    s_queue(self, &self->me->rec);
    return 0;
}

int swim_set_endpoint(swim_t *self, const char *endpoint, uint64_t now_ms)
{
    size_t len = strnlen(endpoint, SWIM_ENDPOINT_MAX + 1);
    if (len > SWIM_ENDPOINT_MAX) {
        errno = EINVAL;
        return -1;
    }
    swim_member_t rec = self->me->rec;
    memcpy(rec.endpoint, endpoint, len + 1);
    return swim_set_self(self, &rec, now_ms);
}

const swim_member_t *swim_self(swim_t *self)
{
    return &self->me->rec;
}

const swim_member_t *swim_lookup(swim_t *self, const uint8_t *id)
{
    swim_entry_t *entry = swim_members_lookup(self->members, id);
    return entry ? &entry->rec : NULL;
}

size_t swim_size(swim_t *self)
{
    return swim_members_size(self->members);
}

size_t swim_count(swim_t *self, int state)
{
    return swim_members_count(self->members, state);
}

const swim_member_t *swim_first(swim_t *self)
{
    self->cursor = 0;
    return swim_next(self);
}

const swim_member_t *swim_next(swim_t *self)
{
    if (self->cursor >= swim_members_size(self->members)) {
        return NULL;
    }
    return &swim_members_at(self->members, self->cursor++)->rec;
}

void swim_stats(swim_t *self, swim_stats_t *stats)
{
    *stats = self->stats;
}

const char *swim_state_name(int state)
{
    static const char *names[] = {"none", "alive", "suspect", "dead", "left"};
    if (state < SWIM_NONE || state > SWIM_LEFT) {
        return "?";
    }
    return names[state];
}
