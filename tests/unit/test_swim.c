/*  test_swim.c - the SWIM state machine, alone and as whole clusters

    The cluster tests run N swim_t on the simulated network and clock of
    swim_sim.h with the default configuration (500 ms period, 250 ms probe
    timeout, k = 3, suspicion 1.5 s up to 10 members, gossip every 200 ms
    to 3 members, push-pull 30 s, tombstones 60 s) unless said otherwise.
    Each bound below is in seconds (P = 1000 ms) and explained where it is
    asserted. The bounds and the measured maxima in brackets date from the
    earlier defaults (1 s period, suspicion 4 s, no gossip rounds); the
    current defaults are faster everywhere, so the bounds still hold, with
    more margin (the 1,000-member figures are in test_swim_scale.c).
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>

#include "swim.h"
#include "swim_codec.h"
#include "swim_members.h"
#include "swim_queue.h"
#include "swim_sim.h"

#define P 1000 // one second, ms (the protocol period was 1 s)

#ifndef SEEDS
#define SEEDS 20 // runs of each cluster scenario, seeds 1..SEEDS
#endif

//  Bounds, with the defaults, for N <= 10 unless said otherwise. Measured
//  maxima over seeds 1..1000 are in brackets; each bound leaves margin.
//
//  Join: a joiner gets the seed's table at once, the seed gossips the
//  joiner; everyone knows everyone within a few rounds of dissemination
//  (each update retransmitted 4 * ceil (ln (n + 1)) = 12 times) [3.5 s].
#define JOIN_BOUND (5 * P)
//  Join of 24 nodes with 576-byte packets: little room for news [10 s].
#define JOIN_FRAG_BOUND (15 * P)
//  Crash to dead everywhere: someone probes the dead node within ~3 P, its
//  probe fails at the end of that period, suspicion lasts 4 P, the death
//  spreads in ~2 P [10.9 s].
#define DEATH_BOUND (12 * P)
//  Refutation: back alive everywhere before any suspicion timer (4 P)
//  runs out; asserted as such [2.6 s].
//  Leave: left everywhere, never dead, within one dissemination round
//  [3 s]; at least 3 members know within the link delay.
#define LEAVE_BOUND (4 * P)
//  Partition of 10 into 5 + 5: each half has the other dead [14.9 s].
#define PARTITION_BOUND (20 * P)
//  Heal: the first push-pull across (timers staggered over one 30 s
//  interval), then refutations spread [16 s].
#define HEAL_BOUND (30 * P + 5 * P)
//  Join with 10% or 20% loss (converged = no suspect at that moment)
//  [18.5 s at 20%].
#define LOSSY_JOIN_BOUND (25 * P)
#define LOSSY_PERIODS    300
#define LOSSY_SEEDS      5 // 300 periods are slow under ASan
//  Restart with the same id: back alive everywhere [3.8 s].
#define RESTART_BOUND (6 * P)
//  Restart with a new id on the same address: the old id, whose pings the
//  new node ignores, is found dead as after a crash [11.4 s].
#define NEW_ID_BOUND (15 * P)

//  --------------------------------------------------------------------------
//  Helpers for the tests that drive one swim_t by hand

typedef struct {
    int sends;
    char last_addr[SWIM_ADDR_MAX + 1];
    uint8_t last[SWIM_PACKET_MAX];
    size_t last_len;
    int changes;
    swim_member_t last_change;
    int last_old_state;
    uint64_t rng;
} probe_io_t;

static void s_capture_send(void *arg, const char *addr, const uint8_t *buf,
                           size_t len)
{
    probe_io_t *io = (probe_io_t *)arg;
    io->sends++;
    snprintf(io->last_addr, sizeof io->last_addr, "%s", addr);
    memcpy(io->last, buf, len);
    io->last_len = len;
}

static void s_capture_changed(void *arg, const swim_member_t *m, int old_state)
{
    probe_io_t *io = (probe_io_t *)arg;
    io->changes++;
    io->last_change = *m;
    io->last_old_state = old_state;
}

static uint64_t s_capture_random(void *arg)
{
    return sim_split(&((probe_io_t *)arg)->rng);
}

static swim_member_t s_record(uint8_t n, const char *addr)
{
    swim_member_t rec;
    memset(&rec, 0, sizeof rec);
    rec.id[0] = n;
    snprintf(rec.name, sizeof rec.name, "n%d", n);
    snprintf(rec.gossip_addr, sizeof rec.gossip_addr, "%s", addr);
    rec.state = SWIM_ALIVE;
    return rec;
}

static swim_t *s_solo(probe_io_t *io)
{
    memset(io, 0, sizeof *io);
    io->rng = 42;
    swim_member_t me = s_record(1, "10.1.0.1:7946");
    swim_io_t callbacks = {.arg = io,
                           .send = s_capture_send,
                           .changed = s_capture_changed,
                           .random = s_capture_random};
    swim_t *swim = swim_new(NULL, &me, &callbacks, 0);
    assert_non_null(swim);
    return swim;
}

//  Encode a packet of this type from sender with these updates.
static size_t s_packet(uint8_t *buf, int type, uint8_t sender,
                       swim_member_t *updates, size_t count)
{
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = type;
    msg.sender[0] = sender;
    msg.updates = updates;
    msg.update_count = count;
    if (type == SWIM_MSG_PP_REQ || type == SWIM_MSG_PP_RESP) {
        msg.members = updates;
        msg.member_count = count;
        msg.updates = NULL;
        msg.update_count = 0;
    }
    size_t len = 0;
    assert_int_equal(swim_codec_encode(&msg, buf, SWIM_PACKET_MAX, &len), 0);
    return len;
}

//  --------------------------------------------------------------------------
//  One node by hand

static void test_config_and_lifecycle(void **state)
{
    (void)state;
    swim_config_t cfg;
    swim_config_defaults(&cfg);
    assert_int_equal(cfg.probe_interval_ms, 500);
    assert_int_equal(cfg.probe_timeout_ms, 250);
    assert_int_equal(cfg.indirect_checks, 3);
    assert_int_equal(cfg.max_packet, 1400);
    assert_int_equal(cfg.gossip_interval_ms, 200);
    assert_int_equal(cfg.gossip_nodes, 3);
    assert_int_equal(cfg.health_max, 8);

    probe_io_t io;
    memset(&io, 0, sizeof io);
    swim_io_t callbacks = {.arg = &io, .send = s_capture_send};
    swim_member_t me = s_record(1, "10.1.0.1:7946");

    swim_config_t bad = cfg;
    bad.probe_timeout_ms = bad.probe_interval_ms;
    errno = 0;
    assert_null(swim_new(&bad, &me, &callbacks, 0));
    assert_int_equal(errno, EINVAL);
    bad = cfg;
    bad.max_packet = SWIM_PACKET_MIN - 1;
    assert_null(swim_new(&bad, &me, &callbacks, 0));
    bad = cfg;
    bad.suspicion_mult = 0;
    assert_null(swim_new(&bad, &me, &callbacks, 0));
    bad = cfg;
    bad.gossip_interval_ms = 0;
    assert_null(swim_new(&bad, &me, &callbacks, 0));
    bad = cfg;
    bad.health_max = 0;
    assert_null(swim_new(&bad, &me, &callbacks, 0));

    swim_member_t bad_rec = me;
    memset(bad_rec.id, 0, SWIM_ID_SIZE);
    assert_null(swim_new(&cfg, &bad_rec, &callbacks, 0));
    bad_rec = me;
    bad_rec.gossip_addr[0] = 0;
    assert_null(swim_new(&cfg, &bad_rec, &callbacks, 0));
    swim_io_t no_send = {.arg = &io};
    assert_null(swim_new(&cfg, &me, &no_send, 0));

    //  A cluster of one: no seeds, nothing to send, ever.
    swim_t *swim = swim_new(&cfg, &me, &callbacks, 1000);
    assert_non_null(swim);
    assert_int_equal(swim_size(swim), 1);
    assert_int_equal(swim_count(swim, SWIM_ALIVE), 1);
    const swim_member_t *self = swim_self(swim);
    assert_int_equal(self->state, SWIM_ALIVE);
    assert_memory_equal(self->id, me.id, SWIM_ID_SIZE);
    assert_ptr_equal(swim_lookup(swim, me.id), self);
    assert_ptr_equal(swim_first(swim), self);
    assert_null(swim_next(swim));
    for (uint64_t now = 1000; now < 100000;) {
        now = swim_next_deadline(swim);
        assert_true(now < UINT64_MAX);
        swim_tick(swim, now);
    }
    assert_int_equal(io.sends, 0);
    assert_string_equal(swim_state_name(SWIM_SUSPECT), "suspect");
    assert_string_equal(swim_state_name(99), "?");

    assert_int_equal(swim_join(swim, "", 0), -1);
    assert_int_equal(errno, EINVAL);
    char long_addr[SWIM_ADDR_MAX + 2];
    memset(long_addr, 'a', sizeof long_addr - 1);
    long_addr[sizeof long_addr - 1] = 0;
    assert_int_equal(swim_join(swim, long_addr, 0), -1);
    assert_int_equal(swim_join(swim, "10.1.0.2:7946", 100000), 0);
    assert_int_equal(io.sends, 1);
    assert_string_equal(io.last_addr, "10.1.0.2:7946");

    swim_destroy(&swim);
    assert_null(swim);
    swim_destroy(&swim);
}

static void test_recv_rejects_garbage(void **state)
{
    (void)state;
    probe_io_t io;
    swim_t *swim = s_solo(&io);
    const uint8_t junk[] = {0x95, 0x01, 0x01, 0xc4, 0x03, 1, 2, 3};
    errno = 0;
    assert_int_equal(swim_recv(swim, "10.1.0.9:1", junk, sizeof junk, 5), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(swim_recv(swim, "10.1.0.9:1", junk, 0, 5), -1);
    const uint8_t bomb[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(swim_recv(swim, "10.1.0.9:1", bomb, sizeof bomb, 5), -1);
    swim_stats_t stats;
    swim_stats(swim, &stats);
    assert_int_equal(stats.bad_packets, 3);
    assert_int_equal(stats.packets_in, 3);
    assert_int_equal(swim_size(swim), 1);

    //  A leave must come from the leaver itself.
    uint8_t buf[SWIM_PACKET_MAX];
    swim_member_t other = s_record(7, "10.1.0.7:7946");
    other.state = SWIM_LEFT;
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_LEAVE;
    msg.sender[0] = 8;
    msg.members = &other;
    msg.member_count = 1;
    size_t len;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), 0);
    assert_int_equal(swim_recv(swim, "10.1.0.8:7946", buf, len, 5), -1);
    assert_int_equal(errno, EPROTO);
    assert_null(swim_lookup(swim, other.id));
    swim_destroy(&swim);
}

static void test_ping_is_acked(void **state)
{
    (void)state;
    probe_io_t io;
    swim_t *swim = s_solo(&io);
    uint8_t buf[SWIM_PACKET_MAX];
    swim_member_t peer = s_record(2, "10.1.0.2:7946");
    size_t len = s_packet(buf, SWIM_MSG_PING, 2, &peer, 1);
    io.sends = 0;
    assert_int_equal(swim_recv(swim, "10.1.0.2:9999", buf, len, 10), 0);
    //  Answered to where it came from, and the sender is now known.
    assert_int_equal(io.sends, 1);
    assert_string_equal(io.last_addr, "10.1.0.2:9999");
    swim_msg_t ack;
    assert_int_equal(swim_codec_decode(io.last, io.last_len, &ack), 0);
    assert_int_equal(ack.type, SWIM_MSG_ACK);
    assert_int_equal(ack.sender[0], 1);
    swim_codec_clear(&ack);
    assert_int_equal(io.changes, 1);
    assert_int_equal(io.last_old_state, SWIM_NONE);
    assert_int_equal(io.last_change.state, SWIM_ALIVE);
    assert_non_null(swim_lookup(swim, peer.id));

    //  A ping meant for another id (who had our address before) is not
    //  acked.
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_PING;
    msg.sender[0] = 2;
    msg.target[0] = 99;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), 0);
    io.sends = 0;
    assert_int_equal(swim_recv(swim, "10.1.0.2:7946", buf, len, 20), 0);
    assert_int_equal(io.sends, 0);
    swim_destroy(&swim);
}

//  A helper pings the target for a ping-req and forwards the ack.
static void test_ping_req_forwarded(void **state)
{
    (void)state;
    probe_io_t io;
    swim_t *swim = s_solo(&io);
    uint8_t buf[SWIM_PACKET_MAX];
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_PING_REQ;
    msg.sender[0] = 2;
    msg.seq = 4242;
    msg.target[0] = 3;
    snprintf(msg.target_addr, sizeof msg.target_addr, "10.1.0.3:7946");
    size_t len;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), 0);
    io.sends = 0;
    assert_int_equal(swim_recv(swim, "10.1.0.2:7946", buf, len, 100), 0);
    assert_int_equal(io.sends, 1);
    assert_string_equal(io.last_addr, "10.1.0.3:7946");
    swim_msg_t ping;
    assert_int_equal(swim_codec_decode(io.last, io.last_len, &ping), 0);
    assert_int_equal(ping.type, SWIM_MSG_PING);
    assert_int_equal(ping.target[0], 3);
    uint32_t seq = ping.seq;
    swim_codec_clear(&ping);

    //  The target's ack goes back to the requester with its own seq.
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_ACK;
    msg.sender[0] = 3;
    msg.seq = seq;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), 0);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, 150), 0);
    assert_int_equal(io.sends, 2);
    assert_string_equal(io.last_addr, "10.1.0.2:7946");
    swim_msg_t ack;
    assert_int_equal(swim_codec_decode(io.last, io.last_len, &ack), 0);
    assert_int_equal(ack.type, SWIM_MSG_ACK);
    assert_int_equal(ack.seq, 4242);
    swim_codec_clear(&ack);
    //  Only once.
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, 160), 0);
    assert_int_equal(io.sends, 2);
    swim_destroy(&swim);
}

//  A push-pull request is merged and answered once, to its first part;
//  a leave marks its sender left at once.
static void test_pushpull_and_leave_by_hand(void **state)
{
    (void)state;
    probe_io_t io;
    swim_t *swim = s_solo(&io);
    uint8_t buf[SWIM_PACKET_MAX];
    swim_member_t table[2] = {s_record(2, "10.1.0.2:7946"),
                              s_record(3, "10.1.0.3:7946")};
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_PP_REQ;
    msg.sender[0] = 2;
    msg.part = 1;
    msg.members = table;
    msg.member_count = 2;
    size_t len;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), 0);
    io.sends = 0;
    assert_int_equal(swim_recv(swim, "10.1.0.2:7946", buf, len, 10), 0);
    assert_int_equal(io.sends, 0);
    assert_int_equal(swim_count(swim, SWIM_ALIVE), 3);
    msg.part = 0;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), 0);
    assert_int_equal(swim_recv(swim, "10.1.0.2:7946", buf, len, 20), 0);
    assert_int_equal(io.sends, 1);
    swim_msg_t resp;
    assert_int_equal(swim_codec_decode(io.last, io.last_len, &resp), 0);
    assert_int_equal(resp.type, SWIM_MSG_PP_RESP);
    assert_int_equal(resp.member_count, 3);
    swim_codec_clear(&resp);

    swim_member_t leaver = table[1];
    leaver.state = SWIM_LEFT;
    leaver.incarnation = 1;
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_LEAVE;
    msg.sender[0] = 3;
    msg.members = &leaver;
    msg.member_count = 1;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), 0);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, 30), 0);
    assert_int_equal(swim_lookup(swim, leaver.id)->state, SWIM_LEFT);
    assert_int_equal(io.last_change.state, SWIM_LEFT);
    assert_int_equal(io.last_old_state, SWIM_ALIVE);
    swim_stats_t stats;
    swim_stats(swim, &stats);
    assert_int_equal(stats.leaves, 1);
    assert_int_equal(stats.bad_packets, 0);
    swim_destroy(&swim);
}

static void test_precedence(void **state)
{
    (void)state;
    //  alive(i) beats anything with j < i, nothing else.
    assert_true(swim_members_overrides(SWIM_ALIVE, 5, SWIM_SUSPECT, 4));
    assert_false(swim_members_overrides(SWIM_ALIVE, 5, SWIM_SUSPECT, 5));
    assert_true(swim_members_overrides(SWIM_ALIVE, 5, SWIM_DEAD, 4));
    assert_true(swim_members_overrides(SWIM_ALIVE, 5, SWIM_LEFT, 4));
    assert_false(swim_members_overrides(SWIM_ALIVE, 4, SWIM_DEAD, 4));
    //  suspect(i) beats alive(j <= i), suspect(j < i), no tombstone.
    assert_true(swim_members_overrides(SWIM_SUSPECT, 5, SWIM_ALIVE, 5));
    assert_false(swim_members_overrides(SWIM_SUSPECT, 4, SWIM_ALIVE, 5));
    assert_false(swim_members_overrides(SWIM_SUSPECT, 5, SWIM_SUSPECT, 5));
    assert_true(swim_members_overrides(SWIM_SUSPECT, 6, SWIM_SUSPECT, 5));
    assert_false(swim_members_overrides(SWIM_SUSPECT, 9, SWIM_DEAD, 5));
    //  dead and left beat alive/suspect(j <= i).
    assert_true(swim_members_overrides(SWIM_DEAD, 5, SWIM_ALIVE, 5));
    assert_true(swim_members_overrides(SWIM_DEAD, 5, SWIM_SUSPECT, 5));
    assert_false(swim_members_overrides(SWIM_DEAD, 4, SWIM_ALIVE, 5));
    assert_false(swim_members_overrides(SWIM_DEAD, 5, SWIM_DEAD, 5));
    assert_true(swim_members_overrides(SWIM_LEFT, 5, SWIM_ALIVE, 5));
    assert_true(swim_members_overrides(SWIM_LEFT, 5, SWIM_DEAD, 5));
    assert_false(swim_members_overrides(SWIM_LEFT, 5, SWIM_LEFT, 5));
    assert_false(swim_members_overrides(SWIM_DEAD, 5, SWIM_LEFT, 5));
}

static void test_queue_order_and_limit(void **state)
{
    (void)state;
    swim_queue_t *queue = swim_queue_new();
    assert_non_null(queue);
    swim_member_t out[8];
    for (uint8_t i = 1; i <= 3; i++) {
        swim_member_t rec = s_record(i, "10.2.0.1:1");
        assert_int_equal(swim_queue_push(queue, &rec), 0);
    }
    //  Newest first.
    assert_int_equal(swim_queue_fill(queue, 10000, 2, out, 1), 1);
    assert_int_equal(out[0].id[0], 3);
    //  Then the least sent, newest first.
    assert_int_equal(swim_queue_fill(queue, 10000, 2, out, 8), 3);
    assert_int_equal(out[0].id[0], 2);
    assert_int_equal(out[1].id[0], 1);
    assert_int_equal(out[2].id[0], 3);
    //  Id 3 went twice: gone. Newer news replaces older about one id.
    assert_int_equal(swim_queue_size(queue), 2);
    swim_member_t rec = s_record(1, "10.2.0.1:1");
    rec.incarnation = 9;
    assert_int_equal(swim_queue_push(queue, &rec), 0);
    assert_int_equal(swim_queue_size(queue), 2);
    assert_int_equal(swim_queue_fill(queue, 10000, 2, out, 8), 2);
    assert_int_equal(out[0].id[0], 1);
    assert_int_equal(out[0].incarnation, 9);
    //  The budget is in encoded bytes: nothing fits in 10.
    assert_int_equal(swim_queue_fill(queue, 10, 2, out, 8), 0);
    swim_queue_destroy(&queue);
    swim_queue_destroy(&queue);
}

//  A dead member's tombstone refuses stale news, then is forgotten.
static void test_tombstone_and_reap(void **state)
{
    (void)state;
    probe_io_t io;
    swim_t *swim = s_solo(&io);
    uint8_t buf[SWIM_PACKET_MAX];
    swim_member_t peer = s_record(2, "10.1.0.2:7946");
    peer.incarnation = 3;
    size_t len = s_packet(buf, SWIM_MSG_ACK, 3, &peer, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, 0), 0);
    peer.state = SWIM_DEAD;
    len = s_packet(buf, SWIM_MSG_ACK, 3, &peer, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, 10), 0);
    //  Hearsay only makes us suspect it; our own timer declares it dead.
    assert_int_equal(swim_lookup(swim, peer.id)->state, SWIM_SUSPECT);
    assert_int_equal(io.last_old_state, SWIM_ALIVE);
    uint64_t now = 10;
    while (swim_lookup(swim, peer.id)->state != SWIM_DEAD) {
        now = swim_next_deadline(swim);
        assert_true(now < 10 + 4 * P + P); // suspicion: 4 periods here
        swim_tick(swim, now);
    }
    uint64_t died = now;
    //  A late alive at the same incarnation does not bring it back.
    peer.state = SWIM_ALIVE;
    len = s_packet(buf, SWIM_MSG_ACK, 3, &peer, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, now), 0);
    assert_int_equal(swim_lookup(swim, peer.id)->state, SWIM_DEAD);
    //  Forgotten dead_reap_ms after it died, with a last callback.
    while (swim_lookup(swim, peer.id) != NULL) {
        now = swim_next_deadline(swim);
        swim_tick(swim, now);
    }
    assert_true(now >= died + 60000 && now < died + 60000 + P);
    assert_int_equal(io.last_change.state, SWIM_NONE);
    assert_int_equal(io.last_old_state, SWIM_DEAD);
    //  Then a higher incarnation is simply a member again.
    peer.incarnation = 4;
    len = s_packet(buf, SWIM_MSG_ACK, 3, &peer, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, now), 0);
    assert_int_equal(swim_lookup(swim, peer.id)->state, SWIM_ALIVE);

    //  Dead news about a member never seen is kept silently.
    int changes = io.changes;
    swim_member_t ghost = s_record(9, "10.1.0.9:7946");
    ghost.state = SWIM_DEAD;
    len = s_packet(buf, SWIM_MSG_ACK, 3, &ghost, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, now), 0);
    assert_int_equal(swim_lookup(swim, ghost.id)->state, SWIM_DEAD);
    assert_int_equal(io.changes, changes);
    //  ... but a tombstone in a push-pull table is not copied.
    swim_member_t ghost2 = s_record(10, "10.1.0.10:7946");
    ghost2.state = SWIM_LEFT;
    len = s_packet(buf, SWIM_MSG_PP_RESP, 3, &ghost2, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, now), 0);
    assert_null(swim_lookup(swim, ghost2.id));
    swim_destroy(&swim);
}

//  News that we are suspect or dead is refuted with a higher incarnation.
static void test_refute_by_hand(void **state)
{
    (void)state;
    probe_io_t io;
    swim_t *swim = s_solo(&io);
    uint8_t buf[SWIM_PACKET_MAX];
    swim_member_t me = *swim_self(swim);
    me.state = SWIM_SUSPECT;
    me.incarnation = 7;
    size_t len = s_packet(buf, SWIM_MSG_ACK, 3, &me, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, 0), 0);
    assert_int_equal(swim_self(swim)->incarnation, 8);
    assert_int_equal(swim_self(swim)->state, SWIM_ALIVE);
    //  Stale news is not.
    me.state = SWIM_DEAD;
    me.incarnation = 7;
    len = s_packet(buf, SWIM_MSG_ACK, 3, &me, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.3:7946", buf, len, 0), 0);
    assert_int_equal(swim_self(swim)->incarnation, 8);
    swim_stats_t stats;
    swim_stats(swim, &stats);
    assert_int_equal(stats.refutations, 1);
    //  The refutation goes out on the next packet.
    swim_member_t peer = s_record(2, "10.1.0.2:7946");
    len = s_packet(buf, SWIM_MSG_PING, 2, &peer, 1);
    assert_int_equal(swim_recv(swim, "10.1.0.2:7946", buf, len, 1), 0);
    swim_msg_t ack;
    assert_int_equal(swim_codec_decode(io.last, io.last_len, &ack), 0);
    bool found = false;
    for (size_t i = 0; i < ack.update_count; i++) {
        if (ack.updates[i].id[0] == 1) {
            found = ack.updates[i].incarnation == 8 &&
                    ack.updates[i].state == SWIM_ALIVE;
        }
    }
    assert_true(found);
    swim_codec_clear(&ack);
    swim_destroy(&swim);
}

//  --------------------------------------------------------------------------
//  Clusters

static void s_join(int count, uint64_t seed, uint64_t bound)
{
    sim_t sim;
    sim_init(&sim, count, NULL, seed);
    sim_boot(&sim);
    uint64_t took = sim_run_until(&sim, 60 * P, sim_converged, 0);
    print_message("join of %d: converged in %lu ms\n", count,
                  (unsigned long)took);
    assert_true(took <= bound);
    for (int i = 0; i < count; i++) {
        assert_int_equal(sim_seen(&sim, i, SWIM_SUSPECT), 0);
        assert_int_equal(sim_seen(&sim, i, SWIM_DEAD), 0);
    }
    sim_destroy(&sim);
}

static void test_join_5(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        s_join(5, seed, JOIN_BOUND);
    }
}

static void test_join_10(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        s_join(10, seed, JOIN_BOUND);
    }
}

//  Boot a converged cluster of count nodes.
static void s_cluster(sim_t *sim, int count, const swim_config_t *cfg,
                      uint64_t seed)
{
    sim_init(sim, count, cfg, seed);
    sim_boot(sim);
    assert_true(sim_run_until(sim, 60 * P, sim_converged, 0) != UINT64_MAX);
    sim_run(sim, 2 * P);
}

static void test_join_fragmented(void **state)
{
    (void)state;
    //  24 members do not fit one 576-byte packet: the push-pull table goes
    //  in several parts.
    swim_config_t cfg;
    swim_config_defaults(&cfg);
    cfg.max_packet = SWIM_PACKET_MIN;
    sim_t sim;
    sim_init(&sim, 24, &cfg, 3);
    sim_boot(&sim);
    uint64_t took = sim_run_until(&sim, 60 * P, sim_converged, 0);
    print_message("join of 24, 576-byte packets: %lu ms, %u parts\n",
                  (unsigned long)took, sim.max_part + 1);
    assert_true(took <= JOIN_FRAG_BOUND);
    assert_true(sim.max_part >= 2);
    sim_destroy(&sim);
}

static void test_refute_in_cluster(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        sim_t sim;
        s_cluster(&sim, 8, NULL, seed);
        uint64_t inc = swim_self(sim.nodes[3].swim)->incarnation;
        //  Node 3 goes mute for 1 s at a time, 2 s apart, until someone
        //  suspects it. (Mute for longer than a suspicion timeout, it would
        //  declare others dead itself: its probes fail too.)
        uint64_t took = UINT64_MAX;
        for (int round = 0; round < 50 && took == UINT64_MAX; round++) {
            sim_partition(&sim, 3, 4, 0, 8, true);
            took = sim_run_until(&sim, P, sim_any_sees, 3 * 8 + SWIM_SUSPECT);
            sim_partition(&sim, 3, 4, 0, 8, false);
            if (took == UINT64_MAX) {
                sim_run(&sim, 2 * P);
            }
        }
        assert_true(took != UINT64_MAX);
        took = sim_run_until(&sim, 60 * P, sim_converged, 0);
        print_message("refute: alive again everywhere in %lu ms\n",
                      (unsigned long)took);
        //  It refutes before anyone's suspicion timeout (1.5 s) runs out.
        assert_true(took < 3 * P / 2);
        sim_run(&sim, 10 * P);
        assert_true(sim_converged(&sim, 0));
        for (int i = 0; i < 8; i++) {
            assert_int_equal(sim_seen(&sim, i, SWIM_DEAD), 0);
        }
        const swim_member_t *self3 = swim_self(sim.nodes[3].swim);
        assert_true(self3->incarnation > inc);
        for (int i = 0; i < 8; i++) {
            const swim_member_t *m = swim_lookup(sim.nodes[i].swim, self3->id);
            assert_int_equal(m->incarnation, self3->incarnation);
        }
        swim_stats_t stats;
        swim_stats(sim.nodes[3].swim, &stats);
        assert_true(stats.refutations >= 1);
        sim_destroy(&sim);
    }
}

static void test_failure_detected(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        sim_t sim;
        s_cluster(&sim, 10, NULL, seed);
        sim_stop(&sim, 7);
        uint64_t took =
            sim_run_until(&sim, 60 * P, sim_all_see, 7 * 8 + SWIM_DEAD);
        print_message("failure: dead everywhere after %lu ms\n",
                      (unsigned long)took);
        assert_true(took <= DEATH_BOUND);
        sim_run(&sim, 10 * P);
        for (int i = 0; i < 10; i++) {
            if (i != 7) {
                assert_int_equal(sim_seen(&sim, i, SWIM_DEAD), 0);
                assert_int_equal(sim_state(&sim, i, 7), SWIM_DEAD);
            }
        }
        sim_destroy(&sim);
    }
}

static void test_graceful_leave(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        sim_t sim;
        s_cluster(&sim, 10, NULL, seed);
        assert_int_equal(swim_leave(sim.nodes[4].swim, sim.now), 0);
        assert_int_equal(swim_leave(sim.nodes[4].swim, sim.now), 0);
        sim_touch(&sim, 4);
        assert_int_equal(swim_self(sim.nodes[4].swim)->state, SWIM_LEFT);
        //  The direct leave packets land within the link delay (<= 5 ms).
        sim_run(&sim, 10);
        int direct = 0;
        for (int i = 0; i < 10; i++) {
            direct += i != 4 && sim_state(&sim, i, 4) == SWIM_LEFT;
        }
        assert_true(direct >= 3);
        uint64_t took =
            10 + sim_run_until(&sim, 60 * P, sim_all_see, 4 * 8 + SWIM_LEFT);
        print_message("leave: %d at once, left everywhere in %lu ms\n", direct,
                      (unsigned long)took);
        assert_true(took <= LEAVE_BOUND);
        sim_stop(&sim, 4);
        sim_run(&sim, 20 * P);
        assert_int_equal(sim_seen(&sim, 4, SWIM_DEAD), 0);
        assert_int_equal(sim_seen(&sim, 4, SWIM_SUSPECT), 0);
        assert_true(sim_converged(&sim, 0));
        sim_destroy(&sim);
    }
}

//  Every node of [a0, a1) sees every node of [b0, b1) in state.
static bool s_group_sees(sim_t *sim, int a0, int a1, int b0, int b1, int state)
{
    for (int i = a0; i < a1; i++) {
        for (int j = b0; j < b1; j++) {
            if (sim_state(sim, i, j) != state) {
                return false;
            }
        }
    }
    return true;
}

static bool s_split_brain(sim_t *sim, int half)
{
    int n = sim->count;
    return s_group_sees(sim, 0, half, half, n, SWIM_DEAD) &&
           s_group_sees(sim, half, n, 0, half, SWIM_DEAD);
}

static void test_partition_and_heal(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        sim_t sim;
        s_cluster(&sim, 10, NULL, seed);
        sim_partition(&sim, 0, 5, 5, 10, true);
        uint64_t split = sim_run_until(&sim, 120 * P, s_split_brain, 5);
        print_message("partition: each half saw the other dead in %lu ms\n",
                      (unsigned long)split);
        assert_true(split <= PARTITION_BOUND);
        //  Nobody saw its own half die.
        for (int i = 0; i < 10; i++) {
            for (int j = 0; j < 10; j++) {
                if ((i < 5) == (j < 5)) {
                    assert_int_equal(sim.nodes[i].seen[j][SWIM_DEAD], 0);
                }
            }
        }
        sim_run(&sim, 5 * P);
        sim_partition(&sim, 0, 5, 5, 10, false);
        uint64_t healed = sim_run_until(&sim, 300 * P, sim_converged, 0);
        print_message("partition: healed in %lu ms\n", (unsigned long)healed);
        assert_true(healed <= HEAL_BOUND);
        sim_run(&sim, 10 * P);
        assert_true(sim_converged(&sim, 0));
        sim_destroy(&sim);
    }
}

static void s_lossy(unsigned loss, uint64_t seed)
{
    sim_t sim;
    sim_init(&sim, 10, NULL, seed);
    sim.loss_pct = loss;
    sim_boot(&sim);
    uint64_t took = sim_run_until(&sim, 120 * P, sim_converged, 0);
    assert_true(took <= LOSSY_JOIN_BOUND);
    sim_run(&sim, LOSSY_PERIODS * P);
    unsigned suspicions = 0, deaths = 0;
    for (int i = 0; i < 10; i++) {
        suspicions += sim_seen(&sim, i, SWIM_SUSPECT);
        deaths += sim_seen(&sim, i, SWIM_DEAD);
    }
    print_message("loss %u%%: joined in %lu ms; %d periods: %u suspicions, "
                  "%u deaths, %lu of %lu packets lost\n",
                  loss, (unsigned long)took, LOSSY_PERIODS, suspicions, deaths,
                  (unsigned long)sim.lost, (unsigned long)sim.sent);
    assert_int_equal(deaths, 0);
    assert_true(suspicions > 0); // the loss did bite
    //  Suspects refute; the view is whole again within a few periods.
    assert_true(sim_run_until(&sim, 20 * P, sim_converged, 0) != UINT64_MAX);
    sim_destroy(&sim);
}

static void test_packet_loss(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= LOSSY_SEEDS; seed++) {
        s_lossy(10, seed);
        s_lossy(20, seed);
    }
}

//  A node restarts with the same id. Its old self is dead everywhere.
static void s_restart(uint64_t seed, bool higher)
{
    sim_t sim;
    s_cluster(&sim, 6, NULL, seed);
    sim_stop(&sim, 2);
    assert_true(sim_run_until(&sim, 60 * P, sim_all_see, 2 * 8 + SWIM_DEAD) !=
                UINT64_MAX);
    uint64_t dead_inc =
        swim_lookup(sim.nodes[0].swim, swim_self(sim.nodes[1].swim)->id)
            ->incarnation;
    (void)dead_inc;
    //  Higher: the daemon's usual choice (start time). Lower: incarnation
    //  0 after a crash that lost it; the node refutes its own tombstone.
    sim_start(&sim, 2, higher ? 1000 : 0, 0);
    sim_join(&sim, 2, 0);
    uint64_t took = sim_run_until(&sim, 60 * P, sim_converged, 0);
    print_message("restart (%s incarnation): alive everywhere in %lu ms\n",
                  higher ? "higher" : "zero", (unsigned long)took);
    assert_true(took <= RESTART_BOUND);
    const swim_member_t *me = swim_self(sim.nodes[2].swim);
    assert_true(higher ? me->incarnation == 1000 : me->incarnation > 1);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(swim_lookup(sim.nodes[i].swim, me->id)->incarnation,
                         me->incarnation);
        //  Seen dead once, alive again after (old state dead -> alive).
        if (i != 2) {
            assert_int_equal(sim.nodes[i].seen[2][SWIM_DEAD], 1);
        }
    }
    sim_destroy(&sim);
}

static void test_restart_same_id(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        s_restart(seed, true);
        s_restart(seed, false);
    }
}

//  A node restarts at once with a new id on the same address: the old id
//  stops answering (pings name their target) and dies, the new one lives.
static void test_restart_new_id(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        sim_t sim;
        s_cluster(&sim, 6, NULL, seed);
        uint8_t old_id[SWIM_ID_SIZE];
        memcpy(old_id, swim_self(sim.nodes[2].swim)->id, SWIM_ID_SIZE);
        sim_start(&sim, 2, 1, 1);
        sim_join(&sim, 2, 0);
        uint64_t took = sim_run_until(&sim, 60 * P, sim_converged, 0);
        print_message("restart (new id): new id alive everywhere in %lu ms\n",
                      (unsigned long)took);
        //  Converged means the old id is dead: a crash detection.
        assert_true(took <= NEW_ID_BOUND);
        //  sim_converged counts alive members: the old id must be dead.
        for (int i = 0; i < 6; i++) {
            const swim_member_t *old = swim_lookup(sim.nodes[i].swim, old_id);
            assert_true(old == NULL || old->state == SWIM_DEAD);
        }
        sim_destroy(&sim);
    }
}

static bool s_endpoint_seen(sim_t *sim, int subject)
{
    const swim_member_t *me = swim_self(sim->nodes[subject].swim);
    for (int i = 0; i < sim->count; i++) {
        const swim_member_t *m = swim_lookup(sim->nodes[i].swim, me->id);
        if (strcmp(m->endpoint, me->endpoint) != 0 ||
            m->incarnation != me->incarnation) {
            return false;
        }
    }
    return true;
}

static void test_update_endpoint(void **state)
{
    (void)state;
    sim_t sim;
    s_cluster(&sim, 10, NULL, 9);
    unsigned before = sim.nodes[0].changes;
    uint64_t inc = swim_self(sim.nodes[5].swim)->incarnation;
    assert_int_equal(
        swim_set_endpoint(sim.nodes[5].swim, "tcp://10.9.9.9:7441", sim.now),
        0);
    sim_touch(&sim, 5);
    assert_int_equal(swim_self(sim.nodes[5].swim)->incarnation, inc + 1);
    uint64_t took = sim_run_until(&sim, 60 * P, s_endpoint_seen, 5);
    print_message("endpoint change: everywhere in %lu ms\n",
                  (unsigned long)took);
    assert_true(took <= LEAVE_BOUND);
    assert_int_equal(sim.nodes[0].changes, before + 1);
    assert_int_equal(sim.nodes[0].seen[5][SWIM_ALIVE], 2); // join, change
    swim_member_t rec = *swim_self(sim.nodes[5].swim);
    rec.id[0] = 99;
    assert_int_equal(swim_set_self(sim.nodes[5].swim, &rec, sim.now), -1);
    assert_int_equal(errno, EINVAL);
    sim_destroy(&sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_lifecycle),
        cmocka_unit_test(test_recv_rejects_garbage),
        cmocka_unit_test(test_ping_is_acked),
        cmocka_unit_test(test_ping_req_forwarded),
        cmocka_unit_test(test_pushpull_and_leave_by_hand),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_queue_order_and_limit),
        cmocka_unit_test(test_tombstone_and_reap),
        cmocka_unit_test(test_refute_by_hand),
        cmocka_unit_test(test_join_5),
        cmocka_unit_test(test_join_10),
        cmocka_unit_test(test_join_fragmented),
        cmocka_unit_test(test_failure_detected),
        cmocka_unit_test(test_refute_in_cluster),
        cmocka_unit_test(test_graceful_leave),
        cmocka_unit_test(test_partition_and_heal),
        cmocka_unit_test(test_packet_loss),
        cmocka_unit_test(test_restart_same_id),
        cmocka_unit_test(test_restart_new_id),
        cmocka_unit_test(test_update_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
