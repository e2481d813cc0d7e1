/*  test_meshctl.c - the mesh control plane, alone and as whole meshes

    The mesh tests run N meshctl_t on the simulated ZeroMQ network and
    clock of meshctl_sim.h, with the default timings (beats every 500 ms,
    a link silent for 4 beats is down, forget after 60 s, confirmations
    given up after 30 s, retried after 2 s) unless said otherwise.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "meshctl.h"
#include "meshctl_sim.h"

#include <msgpack.h>

#define B 500 // beat period, ms

static meshctl_config_t s_cfg(bool gossip)
{
    meshctl_config_t cfg;
    meshctl_config_defaults(&cfg);
    cfg.expect_peers = true;
    cfg.gossip = gossip;
    return cfg;
}

static void s_boot(msim_t *sim, int count, bool star, bool gossip,
                   uint64_t seed)
{
    meshctl_config_t cfg = s_cfg(gossip);
    msim_init(sim, count, star, &cfg, seed);
    for (int i = 0; i < count; i++) {
        msim_start(sim, i, 0);
    }
    if (gossip) {
        for (int i = 0; i < count; i++) {
            msim_member_all(sim, i, MESHCTL_ALIVE);
        }
    }
}

static void s_converge(msim_t *sim, uint64_t bound)
{
    assert_true(msim_run_until(sim, bound, msim_converged, 0) <= bound);
}

static meshctl_health_t s_health(msim_t *sim, int i)
{
    meshctl_health_t h;
    meshctl_health(sim->nodes[i].ctl, &h);
    return h;
}

static meshctl_stats_t s_stats(msim_t *sim, int i)
{
    meshctl_stats_t st;
    meshctl_stats(sim->nodes[i].ctl, &st);
    return st;
}

// --- one node, by hand -------------------------------------------------------

typedef struct {
    int sends;
    int kind;
    uint8_t to[16];
    bool addressed;
    uint8_t body[MESHCTL_BODY_MAX];
    size_t len;
    uint64_t marker;
    int health_calls;
    meshctl_health_t health;
    int relinks;
    uint64_t relink_gone_at;
    uint8_t relink_node[16];
} hand_t;

static void s_hand_send(void *arg, int kind, const uint8_t *to,
                        const uint8_t *body, size_t len)
{
    hand_t *h = (hand_t *)arg;
    h->sends++;
    h->kind = kind;
    h->addressed = to != NULL;
    if (to) {
        memcpy(h->to, to, 16);
    }
    memcpy(h->body, body, len);
    h->len = len;
}

static void s_hand_marker(void *arg, uint64_t n, bool on)
{
    if (on) {
        ((hand_t *)arg)->marker = n;
    }
}

static void s_hand_health(void *arg, const meshctl_health_t *health)
{
    hand_t *h = (hand_t *)arg;
    h->health_calls++;
    h->health = *health;
}

static void s_hand_relinked(void *arg, const uint8_t *node, uint64_t gone_at)
{
    hand_t *h = (hand_t *)arg;
    h->relinks++;
    h->relink_gone_at = gone_at;
    memcpy(h->relink_node, node, 16);
}

static meshctl_t *s_hand(hand_t *h, bool expect)
{
    memset(h, 0, sizeof *h);
    meshctl_config_t cfg = s_cfg(false);
    cfg.expect_peers = expect;
    uint8_t me[16] = {1};
    meshctl_io_t io = {.arg = h,
                       .send = s_hand_send,
                       .marker = s_hand_marker,
                       .health = s_hand_health,
                       .relinked = s_hand_relinked};
    meshctl_t *ctl = meshctl_new(&cfg, me, "me", "tcp://me:1", &io, 0);
    assert_non_null(ctl);
    return ctl;
}

static void test_new_rejects_bad_config(void **state)
{
    (void)state;
    hand_t h;
    meshctl_io_t io = {.arg = &h, .send = s_hand_send};
    meshctl_config_t cfg;
    meshctl_config_defaults(&cfg);
    uint8_t me[16] = {1};
    assert_null(meshctl_new(&cfg, me, "", "", &io, 0)); // no marker
    assert_int_equal(errno, EINVAL);
    io.marker = s_hand_marker;
    cfg.beat_ms = 0;
    assert_null(meshctl_new(&cfg, me, "", "", &io, 0));
    assert_int_equal(errno, EINVAL);
    meshctl_t *ctl = meshctl_new(NULL, me, "", "", &io, 0);
    assert_non_null(ctl);
    meshctl_destroy(&ctl);
    meshctl_destroy(&ctl);
    assert_null(ctl);
}

//  Nothing configured: a cluster of one, confirmed at once.
static void test_cluster_of_one(void **state)
{
    (void)state;
    hand_t h;
    meshctl_t *ctl = s_hand(&h, false);
    assert_true(h.health.readable && h.health.writable);
    assert_string_equal(h.health.detail, "cluster of one");
    meshctl_tick(ctl, 0);
    assert_int_equal(h.kind, MESHCTL_BEAT);
    assert_int_equal(h.marker, 1);
    meshctl_subscriptions_changed(ctl);
    uint64_t m = meshctl_marker_for_sub(ctl);
    assert_int_equal(m, 2);
    assert_false(meshctl_is_confirmed(ctl, m));
    meshctl_flush(ctl, 1);
    assert_true(meshctl_is_confirmed(ctl, m));
    meshctl_destroy(&ctl);
}

//  Peers configured: neither readable nor writable until heard.
static void test_expected_peers_start_unhealthy(void **state)
{
    (void)state;
    hand_t h;
    meshctl_t *ctl = s_hand(&h, true);
    assert_false(h.health.readable || h.health.writable);
    assert_string_equal(h.health.detail, "no peer heard");
    meshctl_expect_peers(ctl, 0, false);
    assert_true(h.health.readable && h.health.writable);
    meshctl_destroy(&ctl);
}

//  A beat from node; with lost_of non-NULL it says it missed lost of
//  lost_of's messages.
static size_t s_pack_beat_lost(uint8_t *buf, size_t cap, const uint8_t *node,
                               uint64_t beat, const uint8_t *lost_of,
                               uint64_t lost)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 8);
    msgpack_pack_bin_with_body(&pk, node, 16);
    msgpack_pack_uint64(&pk, beat);
    msgpack_pack_uint64(&pk, B);
    msgpack_pack_str_with_body(&pk, "peer", 4);
    msgpack_pack_str_with_body(&pk, "tcp://p:1", 9);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_array(&pk, lost_of ? 1 : 0);
    if (lost_of) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_bin_with_body(&pk, lost_of, 16);
        msgpack_pack_uint64(&pk, lost);
    }
    assert_true(sb.size <= cap);
    memcpy(buf, sb.data, sb.size);
    size_t len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return len;
}

static size_t s_pack_beat(uint8_t *buf, size_t cap, const uint8_t *node,
                          uint64_t beat)
{
    return s_pack_beat_lost(buf, cap, node, beat, NULL, 0);
}

//  Bad bodies are refused and counted, never trusted; a replayed beat
//  keeps no one heard.
static void test_bad_bodies_and_replays(void **state)
{
    (void)state;
    hand_t h;
    meshctl_t *ctl = s_hand(&h, true);
    uint8_t peer[16] = {2}, buf[256];
    size_t len = s_pack_beat(buf, sizeof buf, peer, 7);
    //  every truncation, and random bytes, are EPROTO
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(meshctl_on_control(ctl, 10, MESHCTL_BEAT, buf, cut),
                         -1);
        assert_int_equal(errno, EPROTO);
    }
    uint64_t rng = 7;
    uint8_t junk[64];
    for (int i = 0; i < 2000; i++) {
        for (size_t k = 0; k < sizeof junk; k++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            junk[k] = (uint8_t)(rng >> 56);
        }
        junk[0] = i & 1 ? 0x98 : 0x93; // an 8- or 3-array, then anything
        (void)meshctl_on_control(ctl, 10, 1 + i % 3, junk,
                                 1 + (size_t)i % sizeof junk);
    }
    assert_int_equal(meshctl_on_control(ctl, 10, 9, buf, len), -1);
    assert_int_equal(meshctl_on_control(ctl, 10, MESHCTL_ACK, buf, len), -1);
    meshctl_stats_t st;
    meshctl_stats(ctl, &st);
    assert_true(st.bad >= len + 2);
    //  the genuine beat is accepted once; again, it is a replay
    assert_int_equal(meshctl_on_control(ctl, 10, MESHCTL_BEAT, buf, len), 0);
    unsigned live, down;
    meshctl_counts(ctl, &live, &down);
    assert_int_equal(live, 1);
    assert_true(h.health.readable);
    assert_int_equal(meshctl_on_control(ctl, 20, MESHCTL_BEAT, buf, len), -1);
    assert_int_equal(errno, EALREADY);
    //  replays every 100 ms do not keep it heard past 4 beats
    for (uint64_t t = 100; t <= 3000; t += 100) {
        (void)meshctl_on_control(ctl, t, MESHCTL_BEAT, buf, len);
        if (t % B == 0) {
            meshctl_tick(ctl, t);
        }
    }
    meshctl_counts(ctl, &live, &down);
    assert_int_equal(live, 0);
    assert_int_equal(down, 1);
    assert_false(h.health.readable);
    //  our own beat (through a proxy) is ignored
    uint8_t me[16] = {1};
    len = s_pack_beat(buf, sizeof buf, me, 99);
    assert_int_equal(meshctl_on_control(ctl, 3000, MESHCTL_BEAT, buf, len), 0);
    assert_int_equal(meshctl_size(ctl), 1);
    meshctl_destroy(&ctl);
}

//  A marker seen on our XPUB is answered by an ack to its node alone.
static void test_marker_seen_is_acked(void **state)
{
    (void)state;
    hand_t h;
    meshctl_t *ctl = s_hand(&h, true);
    uint8_t peer[16] = {3};
    meshctl_on_marker_seen(ctl, 5, peer, 42);
    assert_int_equal(h.kind, MESHCTL_ACK);
    assert_true(h.addressed);
    assert_memory_equal(h.to, peer, 16);
    //  [me bin16, 42, 500 (our beat interval)]
    assert_int_equal(h.len, 1 + 2 + 16 + 1 + 3);
    assert_int_equal(h.body[0], 0x93);
    assert_int_equal(h.body[19], 42);
    assert_int_equal(h.body[20], 0xcd); // uint16
    assert_int_equal(h.body[21] << 8 | h.body[22], B);
    meshctl_destroy(&ctl);
}

//  A peer's marker back on our XPUB after its link ended is a relink
//  (what we sent it about then may be lost), told with when it ended; its
//  first marker, and a new marker replacing the old one while the link
//  stays up (subscribed, then the old one withdrawn), are not.
static void test_marker_back_is_a_relink(void **state)
{
    (void)state;
    hand_t h;
    meshctl_t *ctl = s_hand(&h, true);
    uint8_t peer[16] = {3};
    meshctl_on_marker_seen(ctl, 5, peer, 1); // first contact
    meshctl_on_marker_seen(ctl, 6, peer, 2); // its subscriptions changed
    meshctl_on_marker_gone(ctl, 7, peer, 1);
    assert_int_equal(h.relinks, 0);
    meshctl_on_marker_gone(ctl, 100, peer, 2); // its link from us ended
    assert_int_equal(h.relinks, 0);
    meshctl_on_marker_seen(ctl, 250, peer, 2); // and came back
    assert_int_equal(h.relinks, 1);
    assert_int_equal(h.relink_gone_at, 100);
    assert_memory_equal(h.relink_node, peer, 16);
    meshctl_on_marker_seen(ctl, 260, peer, 3); // a new marker, link up
    assert_int_equal(h.relinks, 1);
    uint8_t other[16] = {4};
    meshctl_on_marker_seen(ctl, 270, other, 1); // someone new
    assert_int_equal(h.relinks, 1);
    meshctl_destroy(&ctl);
}

// --- meshes ------------------------------------------------------------------

//  Ten nodes hear each other, are readable and writable, confirm.
static void test_mesh_of_ten(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 10, false, false, 1);
    s_converge(&sim, 2 * B);
    for (int i = 0; i < 10; i++) {
        assert_string_equal(s_health(&sim, i).detail, "peers live");
        assert_int_equal(msim_down(&sim, i), 0);
        assert_int_equal(sim.nodes[i].ups, 9);
        //  each peer acked the first marker by itself: no second one
        assert_int_equal(s_stats(&sim, i).markers, 1);
        assert_int_equal(sim.nodes[i].ok_upto, 1);
    }
    //  a subscription is confirmed once all nine acked its marker
    meshctl_t *c0 = sim.nodes[0].ctl;
    meshctl_subscriptions_changed(c0);
    uint64_t m = meshctl_marker_for_sub(c0);
    assert_false(meshctl_is_confirmed(c0, m));
    sim.nodes[0].touched = true;
    msim_run(&sim, 20);
    assert_true(meshctl_is_confirmed(c0, m));
    assert_int_equal(sim.nodes[0].ok_upto, m);
    msim_destroy(&sim);
}

//  Node 1's SUB cannot connect to node 0 (refused): node 0 hears node 1
//  but node 1 does not hear node 0. Node 0 is readable, not writable.
//  Node 1 is writable only when gossip says node 0 is alive.
static void test_one_way_peer(void **state)
{
    (void)state;
    for (int gossip = 0; gossip < 2; gossip++) {
        msim_t sim;
        meshctl_config_t cfg = s_cfg(gossip);
        msim_init(&sim, 2, false, &cfg, 2);
        *msim_at(&sim, sim.refuse, 0, 1) = 1;
        msim_start(&sim, 0, 0);
        msim_start(&sim, 1, 0);
        if (gossip) {
            msim_member_all(&sim, 0, MESHCTL_ALIVE);
            msim_member_all(&sim, 1, MESHCTL_ALIVE);
        }
        msim_run(&sim, 10 * B);
        meshctl_health_t h0 = s_health(&sim, 0), h1 = s_health(&sim, 1);
        assert_true(h0.readable);
        assert_false(h0.writable);
        assert_string_equal(h0.detail, "peers do not hear us yet");
        assert_false(h1.readable);
        assert_true(h1.writable == (gossip == 1));
        //  with gossip, node 1 counts node 0 down (alive, not heard) and
        //  tells it in every beat
        assert_int_equal(msim_down(&sim, 1), gossip ? 1 : 0);
        //  the link comes: both healthy
        *msim_at(&sim, sim.refuse, 0, 1) = 0;
        msim_link_all(&sim);
        s_converge(&sim, 2 * B);
        msim_destroy(&sim);
    }
}

//  The link from node 0 to node 1 stays connected but what node 0 sends
//  no longer arrives: node 1 lists node 0 as deaf in its beats, so node 0
//  is no longer writable, though its marker is still subscribed at node 1.
static void test_deaf_link(void **state)
{
    (void)state;
    for (int gossip = 0; gossip < 2; gossip++) {
        msim_t sim;
        s_boot(&sim, 2, false, gossip, 3);
        s_converge(&sim, 2 * B);
        *msim_at(&sim, sim.drop, 0, 1) = 1;
        msim_run(&sim, 6 * B);
        assert_true(s_health(&sim, 0).readable);
        assert_false(s_health(&sim, 0).writable);
        assert_int_equal(msim_down(&sim, 1), 1);
        *msim_at(&sim, sim.drop, 0, 1) = 0;
        s_converge(&sim, 2 * B);
        assert_true(s_health(&sim, 0).writable);
        msim_destroy(&sim);
    }
}

//  Envelopes prove life: a peer whose beats are all lost stays heard
//  while its data arrives.
static void test_data_proves_life(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 2, false, false, 4);
    s_converge(&sim, 2 * B);
    *msim_at(&sim, sim.drop, 1, 0) = 1;
    for (int i = 0; i < 40; i++) {
        msim_run(&sim, 100);
        meshctl_on_data(sim.nodes[0].ctl, sim.now, sim.nodes[1].id, 1, i == 5);
    }
    assert_int_equal(msim_live(&sim, 0), 1);
    assert_int_equal(sim.nodes[0].downs, 0);
    msim_run(&sim, 6 * B);
    assert_int_equal(msim_live(&sim, 0), 0);
    assert_int_equal(sim.nodes[0].downs, 1);
    msim_destroy(&sim);
}

static void s_row_find(void *arg, const meshctl_row_t *row)
{
    meshctl_row_t *want = (meshctl_row_t *)arg;
    if (memcmp(row->node, want->node, 16) == 0) {
        *want = *row;
    }
}

//  Publish-side drops per link: what a peer missed of our messages (its
//  sequence gaps) comes back in its next beat, so the publisher counts
//  what was lost on the way to each peer; an idle beat carries nothing.
static void test_losses_are_told_to_the_publisher(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 3, false, false, 4);
    s_converge(&sim, 2 * B);
    meshctl_on_data(sim.nodes[1].ctl, sim.now, sim.nodes[0].id, 1, 3);
    meshctl_on_data(sim.nodes[2].ctl, sim.now, sim.nodes[0].id, 1, 4);
    meshctl_on_data(sim.nodes[1].ctl, sim.now, sim.nodes[2].id, 1, 2);
    msim_run(&sim, 2 * B);
    meshctl_stats_t st;
    meshctl_stats(sim.nodes[0].ctl, &st);
    assert_int_equal(st.lost_to_peers, 7);
    meshctl_row_t want = {0};
    want.node = sim.nodes[1].id;
    meshctl_rows(sim.nodes[0].ctl, sim.now, s_row_find, &want);
    assert_int_equal(want.lost_to, 3);
    meshctl_stats(sim.nodes[2].ctl, &st);
    assert_int_equal(st.lost_to_peers, 2);
    //  told once: the next beats are back to their idle size
    uint64_t bytes = sim.nodes[0].recv_bytes, msgs = sim.nodes[0].recvs;
    msim_run(&sim, 4 * B);
    assert_true(sim.nodes[0].recvs > msgs);
    uint64_t per =
        (sim.nodes[0].recv_bytes - bytes) / (sim.nodes[0].recvs - msgs);
    assert_true(per < 64); // an idle beat: no loss list
    meshctl_stats(sim.nodes[0].ctl, &st);
    assert_int_equal(st.lost_to_peers, 7); // cumulative, not re-added
    msim_destroy(&sim);
}

//  A peer that never acks: the confirmation is retried, then given up
//  after 30 s, and then nothing more is sent for it.
static void test_confirmation_expires(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 3, false, false, 5);
    s_converge(&sim, 2 * B);
    sim.nodes[2].no_ack = true;
    meshctl_t *c0 = sim.nodes[0].ctl;
    meshctl_subscriptions_changed(c0);
    uint64_t m = meshctl_marker_for_sub(c0);
    sim.nodes[0].touched = true;
    msim_run(&sim, 29000);
    assert_false(meshctl_is_confirmed(c0, m));
    assert_int_equal(sim.nodes[0].fail_upto, 0);
    meshctl_stats_t st = s_stats(&sim, 0);
    assert_true(st.retries >= 10 && st.retries <= 15);
    msim_run(&sim, 3 * B); // given up at the first beat after 30 s
    assert_true(sim.nodes[0].fail_upto >= m);
    assert_int_equal(s_stats(&sim, 0).expired, 1);
    //  node 0's row of node 2 shows what it acked
    meshctl_row_t row = {.node = sim.nodes[2].id};
    meshctl_rows(c0, sim.now, s_row_find, &row);
    assert_string_equal(row.state, "live");
    assert_true(row.acked < m);
    //  given up: no more markers at idle
    uint64_t markers = s_stats(&sim, 0).markers;
    msim_run(&sim, 60000);
    assert_int_equal(s_stats(&sim, 0).markers, markers);
    msim_destroy(&sim);
}

static bool s_confirmed(msim_t *sim, int arg)
{
    return meshctl_is_confirmed(sim->nodes[arg / 1000].ctl,
                                (uint64_t)(arg % 1000));
}

//  10% of control messages lost: health holds, confirmations complete
//  (a lost ack is made good by a retry), nothing is given up.
static void test_loss(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 10, false, false, 6);
    sim.loss_pct = 10;
    s_converge(&sim, 4 * B);
    unsigned flaps = 0;
    for (int round = 0; round < 30; round++) {
        int who = round % 10;
        meshctl_t *c = sim.nodes[who].ctl;
        meshctl_subscriptions_changed(c);
        uint64_t m = meshctl_marker_for_sub(c);
        sim.nodes[who].touched = true;
        //  a retry every 2 s: 4 rounds lost in a row are 1 in 10^4
        assert_true(msim_run_until(&sim, 10000, s_confirmed,
                                   who * 1000 + (int)m) <= 10000);
        msim_run(&sim, 1000);
        for (int i = 0; i < 10; i++) {
            meshctl_health_t h = s_health(&sim, i);
            assert_true(h.readable && h.writable);
        }
    }
    for (int i = 0; i < 10; i++) {
        flaps += sim.nodes[i].downs;
        assert_int_equal(sim.nodes[i].fail_upto, 0);
    }
    printf("loss 10%%: %llu messages lost, %u link flaps in 120 s\n",
           (unsigned long long)sim.lost, flaps);
    msim_destroy(&sim);
}

//  Control messages take 1..1200 ms: beats overtake each other. Older
//  ones are ignored, no link is lost, confirmations complete.
static void test_reordering(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 6, false, false, 7);
    sim.max_delay = 1200;
    s_converge(&sim, 6 * B);
    meshctl_t *c = sim.nodes[3].ctl;
    meshctl_subscriptions_changed(c);
    uint64_t m = meshctl_marker_for_sub(c);
    sim.nodes[3].touched = true;
    msim_run(&sim, 60000);
    assert_true(meshctl_is_confirmed(c, m));
    uint64_t replays = 0;
    for (int i = 0; i < 6; i++) {
        replays += s_stats(&sim, i).replays;
        assert_int_equal(sim.nodes[i].downs, 0);
        assert_true(s_health(&sim, i).writable);
    }
    assert_true(replays > 0);
    printf("reordering: %llu late beats ignored\n",
           (unsigned long long)replays);
    msim_destroy(&sim);
}

//  Node 1 is killed and comes back with a new node id. The old id goes
//  (SWIM dead, or link silence without gossip), the new one is heard and
//  confirms on its own; a subscription made meanwhile waits for it.
static void test_restart_with_new_id(void **state)
{
    (void)state;
    for (int gossip = 0; gossip < 2; gossip++) {
        msim_t sim;
        s_boot(&sim, 3, false, gossip, 8);
        s_converge(&sim, 2 * B);
        msim_stop(&sim, 1);
        msim_run(&sim, 100);
        if (gossip) {
            msim_member_all(&sim, 1, MESHCTL_DEAD);
            assert_int_equal(sim.nodes[0].gones, 1);
            assert_int_equal(msim_live(&sim, 0), 1);
        } else {
            msim_run(&sim, 5 * B); // silent 4 beats: down and gone
            assert_int_equal(sim.nodes[0].gones, 1);
            assert_int_equal(msim_down(&sim, 0), 1);
        }
        uint8_t old[16];
        memcpy(old, sim.nodes[1].id, 16);
        msim_start(&sim, 1, 1);
        if (gossip) {
            msim_member_all(&sim, 1, MESHCTL_ALIVE);
        }
        //  a subscription at node 0 now: not confirmed until the new
        //  node 1 acked
        meshctl_t *c0 = sim.nodes[0].ctl;
        meshctl_subscriptions_changed(c0);
        uint64_t m = meshctl_marker_for_sub(c0);
        sim.nodes[0].touched = true;
        msim_run(&sim, 1);
        assert_false(meshctl_is_confirmed(c0, m));
        assert_true(msim_run_until(&sim, 2 * B, s_confirmed, (int)m) <= B);
        s_converge(&sim, 2 * B);
        meshctl_row_t row = {.node = sim.nodes[1].id};
        meshctl_rows(c0, sim.now, s_row_find, &row);
        assert_true(row.acked >= m && row.hears_us);
        //  the old id is forgotten: by SWIM, or after forget_ms
        if (gossip) {
            assert_int_equal(msim_down(&sim, 0), 0);
            meshctl_member(c0, sim.now, old, MESHCTL_FORGOTTEN, NULL, NULL);
        } else {
            assert_int_equal(msim_down(&sim, 0), 1);
            msim_run(&sim, 60000);
            assert_int_equal(msim_down(&sim, 0), 0);
        }
        assert_int_equal(meshctl_size(c0), 2);
        msim_destroy(&sim);
    }
}

//  A peer silent past down_after and heard again must confirm afresh: a
//  new marker, and its old acks no longer count.
static void test_reappearing_peer_confirms_afresh(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 2, false, false, 9);
    s_converge(&sim, 2 * B);
    uint64_t markers = s_stats(&sim, 0).markers;
    *msim_at(&sim, sim.drop, 1, 0) = 1;
    msim_run(&sim, 6 * B);
    assert_int_equal(msim_live(&sim, 0), 0);
    *msim_at(&sim, sim.drop, 1, 0) = 0;
    sim.nodes[1].no_ack = true;
    msim_run(&sim, 2 * B);
    assert_int_equal(msim_live(&sim, 0), 1);
    assert_int_equal(s_stats(&sim, 0).markers, markers + 1);
    meshctl_t *c0 = sim.nodes[0].ctl;
    assert_false(meshctl_is_confirmed(c0, meshctl_marker_for_sub(c0)));
    sim.nodes[1].no_ack = false;
    msim_run(&sim, 5 * B); // the retry's marker is acked
    assert_true(meshctl_is_confirmed(c0, meshctl_marker_for_sub(c0)));
    msim_destroy(&sim);
}

//  With gossip, down counts members SWIM says alive whose link we do not
//  hear; dead, left and forgotten ones leave the count and the table.
static void test_down_counts_alive_members_only(void **state)
{
    (void)state;
    msim_t sim;
    s_boot(&sim, 2, false, true, 10);
    s_converge(&sim, 2 * B);
    meshctl_t *c0 = sim.nodes[0].ctl;
    uint8_t ghost[16] = {0x6d, 0, 9};
    meshctl_member(c0, sim.now, ghost, MESHCTL_ALIVE, "ghost", "tcp://g:1");
    assert_int_equal(msim_down(&sim, 0), 1);
    meshctl_member(c0, sim.now, ghost, MESHCTL_SUSPECT, NULL, NULL);
    assert_int_equal(msim_down(&sim, 0), 1);
    meshctl_member(c0, sim.now, ghost, MESHCTL_LEFT, NULL, NULL);
    assert_int_equal(msim_down(&sim, 0), 0);
    assert_int_equal(meshctl_size(c0), 2); // a tombstone
    msim_run(&sim, 61000);
    assert_int_equal(meshctl_size(c0), 1); // forgotten after forget_ms
    assert_true(s_health(&sim, 0).readable && s_health(&sim, 0).writable);
    msim_destroy(&sim);
}

//  The table's cap never keeps a live member out: silent entries and
//  tombstones make room; only a table full of live peers refuses.
static void test_cap_never_blocks_live(void **state)
{
    (void)state;
    msim_t sim;
    meshctl_config_t cfg = s_cfg(false);
    cfg.max_peers = 4;
    msim_init(&sim, 7, true, &cfg, 11);
    for (int i = 0; i < 5; i++) {
        msim_start(&sim, i, 0);
    }
    s_converge(&sim, 2 * B);
    for (int i = 1; i < 5; i++) {
        msim_stop(&sim, i);
    }
    msim_run(&sim, 6 * B); // four silent entries fill the table
    assert_int_equal(meshctl_size(sim.nodes[0].ctl), 4);
    assert_int_equal(msim_down(&sim, 0), 4);
    for (int i = 1; i < 5; i++) {
        msim_start(&sim, i, 1); // new ids: each evicts a silent one
    }
    s_converge(&sim, 2 * B);
    meshctl_stats_t st = s_stats(&sim, 0);
    assert_int_equal(st.evicted, 4);
    assert_int_equal(st.overflows, 0);
    msim_start(&sim, 5, 0); // a fifth live peer: no room
    msim_run(&sim, 2 * B);
    assert_int_equal(msim_live(&sim, 0), 4);
    assert_true(s_stats(&sim, 0).overflows > 0);
    msim_destroy(&sim);
}

//  2,000 kill -9 and restart cycles of node 1 (a new node id each time)
//  against node 0, short timings (beats every 100 ms, forget after 3 s).
//  The table of node 0 stays bounded: its live peer, plus the ids that
//  went quiet in the last forget_ms, plus one; node 0 is healthy after
//  every restart; a third node started at the end is heard within a beat.
static void test_two_thousand_restarts(void **state)
{
    (void)state;
    enum { CYCLES = 2000, CYCLE_MS = 600, FORGET = 3000, REAP_CYCLES = 5 };
    for (int gossip = 0; gossip < 2; gossip++) {
        msim_t sim;
        meshctl_config_t cfg = s_cfg(gossip);
        cfg.beat_ms = 100;
        cfg.forget_ms = FORGET;
        msim_init(&sim, 3, false, &cfg, 12);
        msim_start(&sim, 0, 0);
        msim_start(&sim, 1, 0);
        if (gossip) {
            msim_member_all(&sim, 1, MESHCTL_ALIVE);
        }
        size_t most = 0;
        for (int c = 1; c <= CYCLES; c++) {
            msim_stop(&sim, 1);
            msim_run(&sim, 200);
            if (gossip) {
                //  SWIM: the old id dead now, forgotten REAP_CYCLES later
                msim_member_all(&sim, 1, MESHCTL_DEAD);
                if (c > REAP_CYCLES) {
                    uint8_t id[16];
                    msim_id(1, (uint16_t)(c - REAP_CYCLES - 1), id);
                    meshctl_member(sim.nodes[0].ctl, sim.now, id,
                                   MESHCTL_FORGOTTEN, NULL, NULL);
                }
            }
            msim_start(&sim, 1, (uint16_t)c);
            if (gossip) {
                msim_member_all(&sim, 1, MESHCTL_ALIVE);
            }
            msim_run(&sim, CYCLE_MS - 200);
            meshctl_health_t h = s_health(&sim, 0);
            assert_true(h.readable && h.writable);
            size_t size = meshctl_size(sim.nodes[0].ctl);
            most = size > most ? size : most;
        }
        //  bound: 1 live + silenced within forget_ms (FORGET / CYCLE_MS)
        //  + 1 being silenced; with gossip, REAP_CYCLES tombstones + 1
        size_t bound = gossip ? 1 + REAP_CYCLES + 1 : 1 + FORGET / CYCLE_MS + 1;
        printf("%s: table of node 0 held at most %zu entries over %d "
               "restarts (bound %zu)\n",
               gossip ? "gossip" : "static", most, CYCLES, bound);
        assert_true(most <= bound);
        msim_start(&sim, 2, 0);
        if (gossip) {
            msim_member_all(&sim, 2, MESHCTL_ALIVE);
        }
        uint64_t start = sim.now;
        msim_run_until(&sim, 2 * cfg.beat_ms, msim_converged, 0);
        assert_true(sim.now - start <= cfg.beat_ms + 10);
        msim_destroy(&sim);
    }
}

//  A node joins a mesh of 60 (beats every 3 s) before SWIM tells anyone:
//  it hears each peer first through its ack, which says how long to wait
//  for the first beat; no link is taken for silent, here or there.
static void test_join_big_mesh_without_flaps(void **state)
{
    (void)state;
    msim_t sim;
    meshctl_config_t cfg = s_cfg(true);
    msim_init(&sim, 61, false, &cfg, 14);
    for (int i = 0; i < 60; i++) {
        msim_start(&sim, i, 0);
    }
    for (int i = 0; i < 60; i++) {
        msim_member_all(&sim, i, MESHCTL_ALIVE);
    }
    s_converge(&sim, 4 * B);
    msim_run(&sim, 10000);
    //  just after node 0's beat (the others beat in step with it): the
    //  next beats come 3 s later, after 4 * 500 ms
    uint64_t sends = sim.nodes[0].sends;
    while (sim.nodes[0].sends == sends) {
        msim_run(&sim, 10);
    }
    msim_run(&sim, 100);
    msim_start(&sim, 60, 0);
    msim_run(&sim, 20000);
    msim_member_all(&sim, 60, MESHCTL_ALIVE);
    for (int i = 0; i < 60; i++) {
        msim_member_all(&sim, i, MESHCTL_ALIVE); // node 60 learns them
    }
    msim_run(&sim, 20000);
    assert_true(msim_converged(&sim, 0));
    for (int i = 0; i < 61; i++) {
        assert_int_equal(sim.nodes[i].downs, 0);
    }
    msim_destroy(&sim);
}

//  Idle cost per node per simulated second, once links are up: control
//  messages and bytes sent and received, in full meshes of 10, 100 and 300
//  (each node sees N - 1 peers), and a star of 1000 (node 0 has 999 peers,
//  each of them one). In a mesh every node gets about fan_in (10) beats
//  per beat interval whatever N (its peers beat every beat_ms * ceil (N /
//  10)), sends one beat per such interval, which goes to N - 1 links (again
//  about 10 copies per beat interval), every message the same size at any
//  N; no ack, no marker at idle. In the star, node 0 gets one beat per
//  leaf per beat interval (each leaf has a single peer): never more than
//  one per peer per interval.
typedef struct {
    double sends, wire, recvs, recv_bytes, per_msg, sent_per_msg;
} cost_t;

static bool s_converged_slowly(msim_t *sim, uint64_t bound)
{
    for (uint64_t t = 0; t < bound; t += 100) {
        if (msim_converged(sim, 0)) {
            return true;
        }
        msim_run(sim, 100);
    }
    return msim_converged(sim, 0);
}

static cost_t s_idle_cost(int n, bool star)
{
    msim_t sim;
    s_boot(&sim, n, star, true, 13);
    assert_true(s_converged_slowly(&sim, 8 * B));
    msim_run(&sim, 20000); // past the first beat interval (15 s at 300)
    msim_node_t *x = &sim.nodes[0];
    meshctl_stats_t before = s_stats(&sim, 0);
    x->sends = x->wire_bytes = x->recvs = x->recv_bytes = 0;
    enum { SECONDS = 30 };
    msim_run(&sim, SECONDS * 1000);
    meshctl_stats_t after = s_stats(&sim, 0);
    assert_int_equal(after.acks_sent, before.acks_sent);
    assert_int_equal(after.markers, before.markers);
    assert_true(s_health(&sim, 0).readable && s_health(&sim, 0).writable);
    assert_int_equal(msim_live(&sim, 0), n - 1);
    assert_int_equal(sim.nodes[0].downs, 0);
    cost_t c = {(double)x->sends / SECONDS,
                (double)x->wire_bytes / SECONDS,
                (double)x->recvs / SECONDS,
                (double)x->recv_bytes / SECONDS,
                (double)x->recv_bytes / (double)x->recvs,
                (double)x->wire_bytes / (double)(x->sends * (uint64_t)(n - 1))};
    printf("N=%4d %-4s node 0: sends %.2f/s (%.0f B/s on the wire), "
           "receives %.1f/s (%.0f B/s), %.1f B per message\n",
           n, star ? "star" : "mesh", c.sends, c.wire, c.recvs, c.recv_bytes,
           c.per_msg);
    msim_destroy(&sim);
    return c;
}

static void test_idle_cost_flat_in_n(void **state)
{
    (void)state;
    double per_s = 1000.0 / B; // beat intervals per second
    int sizes[] = {10, 100, 300};
    cost_t c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = s_idle_cost(sizes[i], false);
        //  about fan_in (10) beats in, 10 copies out per beat interval
        assert_true(c[i].recvs <= 10 * per_s * 1.15);
        assert_true(c[i].sends <= per_s + 0.1);
        assert_true(c[i].wire / c[i].sent_per_msg <= 10 * per_s * 1.15);
        //  of a size that does not grow with N (names differ by a digit)
        assert_true(c[i].per_msg <= c[0].per_msg + 4);
        assert_true(c[i].per_msg <= 75);
    }
    cost_t s = s_idle_cost(1000, true);
    assert_true(s.recvs <= 999 * per_s * 1.01);
    assert_true(s.per_msg <= c[0].per_msg + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_config),
        cmocka_unit_test(test_cluster_of_one),
        cmocka_unit_test(test_marker_back_is_a_relink),
        cmocka_unit_test(test_losses_are_told_to_the_publisher),
        cmocka_unit_test(test_expected_peers_start_unhealthy),
        cmocka_unit_test(test_bad_bodies_and_replays),
        cmocka_unit_test(test_marker_seen_is_acked),
        cmocka_unit_test(test_mesh_of_ten),
        cmocka_unit_test(test_one_way_peer),
        cmocka_unit_test(test_deaf_link),
        cmocka_unit_test(test_data_proves_life),
        cmocka_unit_test(test_confirmation_expires),
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_reordering),
        cmocka_unit_test(test_restart_with_new_id),
        cmocka_unit_test(test_reappearing_peer_confirms_afresh),
        cmocka_unit_test(test_down_counts_alive_members_only),
        cmocka_unit_test(test_cap_never_blocks_live),
        cmocka_unit_test(test_two_thousand_restarts),
        cmocka_unit_test(test_join_big_mesh_without_flaps),
        cmocka_unit_test(test_idle_cost_flat_in_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
