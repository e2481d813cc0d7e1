/*  Batching between sidecars (PROTOCOL.md, envelope format 2): what the
    apps of one sidecar publish in one loop turn goes out as one sealed
    envelope per routing key, and the receiver fans each message out in
    order. Across batch boundaries, and across a restart of the publishing
    sidecar that cuts a burst in two, every stream stays in order, no
    message arrives twice, and what is lost is told (a GAP), never silent.
*/
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define NS      "ns"
#define WAIT    10000
#define PUBS    2   // publishing apps on sidecar A
#define TOPICS  2   // routing keys they publish to
#define ROUNDS  30  // bursts
#define BURST   400 // messages per publisher per burst
#define MAX_ERR 8

static const char *const s_topics[TOPICS] = {"t0", "t1"};

//  What the subscriber saw: per (publisher, topic) stream, the last
//  counter and sequence, and everything that broke the rules.
typedef struct {
    long long received;
    long long last[PUBS][TOPICS]; // counter carried in the payload
    uint64_t seq[PUBS][TOPICS];   // rc_msg_sequence
    long long gaps, missed;       // GAP notices (RC_GAP_MESH) and their sum
    long long other_gaps;         // GAP notices of another reason
    int errors;
    char error[MAX_ERR][160];
} tally_t;

static void s_fail(tally_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_fail(tally_t *t, const char *fmt, ...)
{
    if (t->errors < MAX_ERR) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(t->error[t->errors], sizeof t->error[0], fmt, args);
        va_end(args);
    }
    t->errors++;
}

static int s_topic_index(const char *topic)
{
    for (int i = 0; i < TOPICS; i++) {
        if (strcmp(topic, s_topics[i]) == 0) {
            return i;
        }
    }
    return -1;
}

//  Payload "P<publisher> <counter>": counters go 1, 2, 3 ... per stream.
//  A counter at or below the last one is a duplicate or out of order; one
//  above last + 1 must have been announced by a GAP (checked after).
static void s_on_message(rc_client_t *c, const rc_msg_t *msg, void *arg)
{
    (void)c;
    tally_t *t = arg;
    char text[64];
    size_t len = rc_msg_size(msg) < 63 ? rc_msg_size(msg) : 63;
    memcpy(text, rc_msg_data(msg), len);
    text[len] = '\0';
    int pub = -1, topic = s_topic_index(rc_msg_topic(msg));
    long long counter = -1;
    if (sscanf(text, "P%d %lld", &pub, &counter) != 2 || pub < 0 ||
        pub >= PUBS || topic < 0) {
        s_fail(t, "unexpected message '%s' on %s", text, rc_msg_topic(msg));
        return;
    }
    t->received++;
    if (counter <= t->last[pub][topic]) {
        s_fail(t, "P%d %s: counter %lld after %lld (duplicate or reordered)",
               pub, s_topics[topic], counter, t->last[pub][topic]);
    }
    uint64_t seq = rc_msg_sequence(msg);
    if (seq <= t->seq[pub][topic]) {
        s_fail(t, "P%d %s: sequence %llu after %llu", pub, s_topics[topic],
               (unsigned long long)seq, (unsigned long long)t->seq[pub][topic]);
    }
    t->last[pub][topic] = counter;
    t->seq[pub][topic] = seq;
}

static void s_on_gap(rc_client_t *c, const rc_gap_t *gap, void *arg)
{
    (void)c;
    tally_t *t = arg;
    if (gap->reason == RC_GAP_MESH) {
        t->gaps++;
        t->missed += (long long)gap->missed;
    } else {
        t->other_gaps++;
    }
}

static rc_client_t *s_subscriber(const rcd_t *d, tally_t *t)
{
    rc_options_t o;
    rc_options_init(&o);
    o.gaps = true;
    o.on_message = s_on_message;
    o.on_gap = s_on_gap;
    o.arg = t;
    rc_client_t *sub = rcd_client(d, &o);
    assert_non_null(sub);
    for (int i = 0; i < TOPICS; i++) {
        assert_int_equal(rc_subscribe_wait(sub, NS, s_topics[i], WAIT), 0);
    }
    return sub;
}

//  Publish counter on one topic, waiting out a full send budget.
static void s_publish(rc_client_t *pub, int id, int topic, long long counter)
{
    char text[64];
    int len = snprintf(text, sizeof text, "P%d %lld", id, counter);
    while (rc_publish(pub, NS, s_topics[topic], text, (size_t)len, RC_TEXT)) {
        assert_int_equal(errno, EAGAIN);
        assert_true(rc_flush(pub, 1000) == 0 || errno == ETIMEDOUT);
    }
}

typedef struct {
    tally_t *t;
    long long want;
} want_t;

static bool s_received(void *arg)
{
    want_t *w = arg;
    return w->t->received >= w->want;
}

static void s_assert_clean(const tally_t *t)
{
    for (int i = 0; i < t->errors && i < MAX_ERR; i++) {
        printf("error: %s\n", t->error[i]);
    }
    assert_int_equal(t->errors, 0);
}

//  Two apps on A publish bursts to two topics, each burst written at once,
//  so A reads many frames per turn from both and batches them per routing
//  key; B's app gets every message once, each stream in order.
static void s_bursts(const char *const *extra, bool batched)
{
    char key[300];
    snprintf(key, sizeof key, "/tmp/roomcast-batch-%d.key", (int)getpid());
    rcd_t d[2];
    assert_int_equal(rcd_mesh_pair(d, "batch", key, extra), 0);
    tally_t t = {0};
    rc_client_t *sub = s_subscriber(&d[1], &t);
    rc_client_t *pubs[PUBS];
    for (int p = 0; p < PUBS; p++) {
        pubs[p] = rcd_client(&d[0], NULL);
        assert_non_null(pubs[p]);
    }
    long long counter[PUBS][TOPICS] = {{0}};
    rc_client_t *clients[] = {sub, NULL};
    for (int round = 0; round < ROUNDS; round++) {
        for (int p = 0; p < PUBS; p++) {
            for (int i = 0; i < BURST; i++) {
                int topic = (i / 3) % TOPICS; // runs of 3 per topic
                s_publish(pubs[p], p, topic, ++counter[p][topic]);
            }
        }
        for (int p = 0; p < PUBS; p++) {
            assert_int_equal(rc_flush(pubs[p], WAIT), 0);
        }
        //  one burst in flight at a time: no queue anywhere fills
        want_t w = {&t, (long long)(round + 1) * PUBS * BURST};
        if (!wait_for(s_received, &w, clients, WAIT)) {
            s_assert_clean(&t);
            fail_msg("round %d: %lld of %lld received", round, t.received,
                     w.want);
        }
    }
    s_assert_clean(&t);
    long long total = (long long)ROUNDS * PUBS * BURST;
    assert_int_equal(t.received, total);
    for (int p = 0; p < PUBS; p++) {
        for (int k = 0; k < TOPICS; k++) {
            assert_int_equal(t.last[p][k], counter[p][k]);
        }
    }
    assert_int_equal(t.gaps + t.other_gaps, 0);
    long long sent = sidecar_counter(d[0].socket, "env_sent");
    long long batches = sidecar_counter(d[0].socket, "env_batches");
    printf("batch: %lld messages in %lld envelopes (%.1f per envelope)\n", sent,
           batches, batches ? (double)sent / (double)batches : 0.0);
    assert_int_equal(sent, total);
    if (batched) {
        //  the case is real: messages did share envelopes, and there were
        //  many batch boundaries to cross
        assert_true(batches > ROUNDS);
        assert_true(batches < sent / 2);
    } else {
        assert_int_equal(batches, sent); // format 1: one each
    }
    assert_int_equal(sidecar_counter(d[1].socket, "env_received"), total);
    assert_int_equal(sidecar_counter(d[1].socket, "env_duplicates"), 0);
    assert_int_equal(sidecar_counter(d[1].socket, "gaps"), 0);
    rc_close(&sub);
    for (int p = 0; p < PUBS; p++) {
        rc_close(&pubs[p]);
    }
    assert_int_equal(rcd_mesh_pair_stop(d), 0);
    unlink(key);
}

static void test_bursts_keep_order_and_arrive_once(void **state)
{
    (void)state;
    s_bursts(NULL, true);
}

//  --envelope-format 1, for a rolling upgrade from roomcast 0.1 (which
//  drops format 2): one envelope per message, opened by the same receive
//  path, the same order and exactly-once.
static void test_format_1_for_rolling_upgrades(void **state)
{
    (void)state;
    const char *extra[] = {"--envelope-format", "1", NULL};
    s_bursts(extra, false);
}

typedef struct {
    const tally_t *t;
    const long long *counter; // per topic, publisher 0's last counter
} ends_t;

//  Every stream of publisher 0 has reached its last counter.
static bool s_streams_end(void *arg)
{
    const ends_t *e = arg;
    for (int k = 0; k < TOPICS; k++) {
        if (e->t->last[0][k] < e->counter[k]) {
            return false;
        }
    }
    return true;
}

static bool s_connected(void *arg)
{
    return rc_state((rc_client_t *)arg) == RC_CONNECTED;
}

static bool s_disconnected(void *arg)
{
    return !s_connected(arg);
}

//  A burst is cut by a kill -9 of the publishing sidecar: part of it went
//  out in batches, part died in A. After A is back (same address, a new
//  node), the publisher's streams continue: B's app gets every message
//  published once the link is up again, no message twice, each stream in
//  order, and what died with A is announced by a GAP (reason mesh) whose
//  count makes the books balance exactly.
static void test_restart_splits_a_burst(void **state)
{
    (void)state;
    char key[300], ep[2][64];
    snprintf(key, sizeof key, "/tmp/roomcast-batch-r-%d.key", (int)getpid());
    assert_int_equal(write_key(key), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(ep[i], sizeof ep[i], "tcp://127.0.0.1:%d", free_port());
    }
    rcd_t d[2];
    const char *args[2][7];
    for (int i = 0; i < 2; i++) {
        const char *a[] = {"--key-file", key,       "--bind", ep[i],
                           "--peer",     ep[1 - i], NULL};
        memcpy(args[i], a, sizeof a);
        assert_int_equal(rcd_start(&d[i], "batch", args[i]), 0);
    }
    assert_true(wait_live_peers(d[0].socket, 1, WAIT));
    assert_true(wait_live_peers(d[1].socket, 1, WAIT));
    tally_t t = {0};
    rc_client_t *sub = s_subscriber(&d[1], &t);
    rc_options_t o;
    rc_options_init(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 100;
    rc_client_t *pub = rcd_client(&d[0], &o);
    assert_non_null(pub);
    rc_client_t *clients[] = {sub, NULL};

    //  a settled first burst, then a large one cut by the kill
    long long counter[TOPICS] = {0};
    for (int i = 0; i < BURST; i++) {
        s_publish(pub, 0, i % TOPICS, ++counter[i % TOPICS]);
    }
    assert_int_equal(rc_flush(pub, WAIT), 0);
    want_t w = {&t, BURST};
    assert_true(wait_for(s_received, &w, clients, WAIT));
    for (int i = 0; i < 20 * BURST; i++) {
        s_publish(pub, 0, i % TOPICS, ++counter[i % TOPICS]);
    }
    //  no rc_flush: part is relayed, part in A's socket buffer or batches,
    //  part still in the library's buffer when A dies
    assert_int_equal(rcd_stop(&d[0], SIGKILL), 128 + SIGKILL);
    long long relayed = sidecar_counter(d[1].socket, "env_received");
    rc_client_t *pubs[] = {pub, NULL};
    assert_true(wait_for(s_disconnected, pub, pubs, WAIT)); // it saw A go
    assert_int_equal(rcd_restart(&d[0], "batch", args[0]), 0);
    assert_true(wait_live_peers(d[0].socket, 1, WAIT));
    assert_true(wait_live_peers(d[1].socket, 1, WAIT));
    assert_true(wait_for(s_connected, pub, pubs, WAIT));

    //  B's subscriptions reach the new A when its SUB reconnects: publish
    //  one message at a time until B's app hears one, then bursts
    long long heard = t.received;
    for (int i = 0; t.received == heard; i++) {
        assert_true(i < 200);
        s_publish(pub, 0, 0, ++counter[0]);
        assert_int_equal(rc_flush(pub, WAIT), 0);
        rc_client_t *both[] = {sub, pub, NULL};
        w = (want_t){&t, heard + 1};
        wait_for(s_received, &w, both, 50);
    }
    //  then the rest. Wait for the last message of every stream, not for
    //  a count: a probe still in flight would make a count come early
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < BURST; i++) {
            s_publish(pub, 0, i % TOPICS, ++counter[i % TOPICS]);
        }
        assert_int_equal(rc_flush(pub, WAIT), 0);
    }
    ends_t ends = {&t, counter};
    if (!wait_for(s_streams_end, &ends, clients, WAIT)) {
        s_assert_clean(&t);
        fail_msg("after the restart: streams at %lld and %lld of %lld and "
                 "%lld (%lld received)",
                 t.last[0][0], t.last[0][1], counter[0], counter[1],
                 t.received);
    }
    s_assert_clean(&t);
    //  every stream ends at its last counter: nothing published after the
    //  link was back is missing
    for (int k = 0; k < TOPICS; k++) {
        assert_int_equal(t.last[0][k], counter[k]);
    }
    //  what died with A was told: received + missed is every message
    long long published = counter[0] + counter[1];
    printf("restart: %lld published, %lld received (B had %lld at the "
           "kill), %lld announced lost in %lld GAP notices\n",
           published, t.received, relayed, t.missed, t.gaps);
    assert_int_equal(t.received + t.missed, published);
    assert_true(t.gaps <= TOPICS); // one per stream at most
    assert_int_equal(t.other_gaps, 0);
    assert_int_equal(sidecar_counter(d[1].socket, "env_duplicates"), 0);
    assert_int_equal(sidecar_counter(d[1].socket, "env_stale"), 0);
    rc_close(&sub);
    rc_close(&pub);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rcd_stop(&d[i], SIGTERM), 0);
        rcd_cleanup(&d[i]);
    }
    unlink(key);
}

#define MANY 60 // topics in one burst: more than a turn batches at once (48)

typedef struct {
    long long received, errors, gaps;
    long long last[MANY];
} many_t;

static void s_on_many(rc_client_t *c, const rc_msg_t *msg, void *arg)
{
    (void)c;
    many_t *t = arg;
    int topic = -1;
    long long counter = -1;
    char text[32];
    size_t len = rc_msg_size(msg) < 31 ? rc_msg_size(msg) : 31;
    memcpy(text, rc_msg_data(msg), len);
    text[len] = '\0';
    if (sscanf(rc_msg_topic(msg), "m%d", &topic) != 1 || topic < 0 ||
        topic >= MANY || sscanf(text, "%lld", &counter) != 1 ||
        counter != t->last[topic] + 1) {
        t->errors++;
        return;
    }
    t->last[topic] = counter;
    t->received++;
}

static void s_on_many_gap(rc_client_t *c, const rc_gap_t *gap, void *arg)
{
    (void)c;
    (void)gap;
    ((many_t *)arg)->gaps++;
}

static bool s_many_received(void *arg)
{
    many_t *t = arg;
    return t->received + t->errors >= (long long)MANY * 50;
}

//  One burst to more topics than the sidecar batches in one turn: the
//  batches of the first ones go out early to make room, and still every
//  topic's messages arrive once and in order.
static void test_many_topics_in_one_turn(void **state)
{
    (void)state;
    char key[300];
    snprintf(key, sizeof key, "/tmp/roomcast-batch-m-%d.key", (int)getpid());
    rcd_t d[2];
    assert_int_equal(rcd_mesh_pair(d, "batch", key, NULL), 0);
    many_t t = {0};
    rc_options_t o;
    rc_options_init(&o);
    o.gaps = true;
    o.on_message = s_on_many;
    o.on_gap = s_on_many_gap;
    o.arg = &t;
    rc_client_t *sub = rcd_client(&d[1], &o);
    rc_client_t *pub = rcd_client(&d[0], NULL);
    assert_non_null(sub);
    assert_non_null(pub);
    char topic[16], text[32];
    for (int k = 0; k < MANY; k++) {
        snprintf(topic, sizeof topic, "m%d", k);
        assert_int_equal(rc_subscribe_wait(sub, NS, topic, WAIT), 0);
    }
    for (int i = 1; i <= 50; i++) {
        for (int k = 0; k < MANY; k++) {
            snprintf(topic, sizeof topic, "m%d", k);
            int len = snprintf(text, sizeof text, "%d", i);
            assert_int_equal(
                rc_publish(pub, NS, topic, text, (size_t)len, RC_TEXT), 0);
        }
    }
    assert_int_equal(rc_flush(pub, WAIT), 0);
    rc_client_t *clients[] = {sub, NULL};
    assert_true(wait_for(s_many_received, &t, clients, WAIT));
    assert_int_equal(t.errors, 0);
    assert_int_equal(t.gaps, 0);
    assert_int_equal(t.received, (long long)MANY * 50);
    printf("many topics: %lld messages in %lld envelopes\n",
           sidecar_counter(d[0].socket, "env_sent"),
           sidecar_counter(d[0].socket, "env_batches"));
    rc_close(&sub);
    rc_close(&pub);
    assert_int_equal(rcd_mesh_pair_stop(d), 0);
    unlink(key);
}

int main(void)
{
    harness_deadline(120);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bursts_keep_order_and_arrive_once),
        cmocka_unit_test(test_format_1_for_rolling_upgrades),
        cmocka_unit_test(test_restart_splits_a_burst),
        cmocka_unit_test(test_many_topics_in_one_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
