/*  Unit tests: repair from peers. The origin's ring of sent envelopes
    (sentring) and the receiver's state machine (repair), on a simulated
    clock: when to ask, what is held, when a gap becomes a GAP notice. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repair.h"
#include "sentring.h"

static const uint8_t NODE[16] = "node-AAAAAAAAAAA";
static const uint8_t INST[16] = "inst-AAAAAAAAAAA";
static const uint8_t INST2[16] = "inst-BBBBBBBBBBB";

// --- sentring ----------------------------------------------------------------

typedef struct {
    int n;
    char got[64][16];
} found_t;

static void s_found(void *arg, const uint8_t *f1, size_t f1_len,
                    const uint8_t *f2, size_t f2_len)
{
    found_t *f = arg;
    assert_int_equal(f1_len, 2);
    assert_true(f2_len < 16);
    memcpy(f->got[f->n], f2, f2_len);
    f->got[f->n][f2_len] = 0;
    f->n++;
    (void)f1;
}

static void s_put(sentring_t *r, uint64_t now, const uint8_t *inst,
                  const char *topic, uint64_t lo, uint64_t hi, const char *tag)
{
    sentring_span_t sp = {inst, "ns", 2, topic, strlen(topic), lo, hi};
    assert_int_equal(sentring_put(r, now, (const uint8_t *)"rk", 2,
                                  (const uint8_t *)tag, strlen(tag), &sp, 1),
                     0);
}

static size_t s_find(sentring_t *r, uint64_t now, const uint8_t *inst,
                     const char *topic, uint64_t from, uint64_t to, found_t *f,
                     uint64_t *oldest)
{
    memset(f, 0, sizeof *f);
    return sentring_find(r, now, inst, "ns", 2, topic, strlen(topic), from, to,
                         64, s_found, f, oldest);
}

static void test_sentring_finds_what_it_holds(void **state)
{
    (void)state;
    sentring_t *r = sentring_new(1 << 20, 10000);
    assert_non_null(r);
    for (int i = 1; i <= 10; i++) {
        char tag[8];
        snprintf(tag, sizeof tag, "m%d", i);
        s_put(r, 100, INST, "room", (uint64_t)i, (uint64_t)i, tag);
        s_put(r, 100, INST2, "room", (uint64_t)i, (uint64_t)i, "other");
    }
    //  a batch: one blob, two streams
    sentring_span_t two[2] = {{INST, "ns", 2, "room", 4, 11, 13},
                              {INST, "ns", 2, "hall", 4, 1, 2}};
    assert_int_equal(sentring_put(r, 100, (const uint8_t *)"rk", 2,
                                  (const uint8_t *)"batch", 5, two, 2),
                     0);
    found_t f;
    uint64_t oldest;
    assert_int_equal(s_find(r, 200, INST, "room", 4, 6, &f, &oldest), 3);
    assert_string_equal(f.got[0], "m4");
    assert_string_equal(f.got[2], "m6");
    assert_int_equal(oldest, 1);
    assert_int_equal(s_find(r, 200, INST, "room", 10, 12, &f, &oldest), 2);
    assert_string_equal(f.got[1], "batch");
    assert_int_equal(s_find(r, 200, INST, "hall", 2, 2, &f, &oldest), 1);
    assert_string_equal(f.got[0], "batch");
    assert_int_equal(s_find(r, 200, INST, "none", 1, 5, &f, &oldest), 0);
    assert_int_equal(oldest, UINT64_MAX);
    assert_int_equal(s_find(r, 200, INST, "room", 14, 20, &f, &oldest), 0);
    //  the same range asked again at once (another peer saw the loss):
    //  the re-send just made reaches it too
    assert_int_equal(s_find(r, 210, INST, "room", 4, 6, &f, &oldest), 3);
    assert_int_equal(s_find(r, 230, INST, "room", 5, 6, &f, &oldest), 0);
    assert_int_equal(s_find(r, 230, INST, "room", 5, 7, &f, &oldest), 3);
    assert_int_equal(s_find(r, 280, INST, "room", 5, 7, &f, &oldest), 3);
    sentring_stats_t st;
    sentring_stats(r, &st);
    assert_int_equal(st.coalesced, 1);
    assert_int_equal(st.blobs, 21);
    assert_int_equal(st.streams, 3);
    sentring_destroy(&r);
    assert_null(r);
    sentring_destroy(&r);
}

//  What a peer whose link came back is re-sent: every blob stored since a
//  time, oldest first, whatever its stream, within a byte cap (at least
//  one), never coalesced (the peer got none of the earlier re-sends).
static void test_sentring_since(void **state)
{
    (void)state;
    sentring_t *r = sentring_new(1 << 20, 10000);
    s_put(r, 10, INST, "room", 1, 1, "a");
    s_put(r, 20, INST2, "hall", 1, 1, "bb");
    s_put(r, 20, INST, "room", 2, 2, "cc");
    s_put(r, 30, INST, "room", 3, 3, "dd");
    found_t f = {0};
    bool capped;
    assert_int_equal(sentring_since(r, 40, 15, 1 << 20, s_found, &f, &capped),
                     3);
    assert_false(capped);
    assert_string_equal(f.got[0], "bb");
    assert_string_equal(f.got[1], "cc");
    assert_string_equal(f.got[2], "dd");
    memset(&f, 0, sizeof f); // again at once: all of it again
    assert_int_equal(sentring_since(r, 41, 0, 1 << 20, s_found, &f, &capped),
                     4);
    assert_string_equal(f.got[0], "a");
    //  the cap counts both frames ("rk" + 2 bytes per blob): two fit in 8
    memset(&f, 0, sizeof f);
    assert_int_equal(sentring_since(r, 42, 15, 8, s_found, &f, &capped), 2);
    assert_true(capped);
    assert_string_equal(f.got[1], "cc");
    memset(&f, 0, sizeof f); // one goes, whatever the cap
    assert_int_equal(sentring_since(r, 43, 15, 1, s_found, &f, &capped), 1);
    assert_true(capped);
    memset(&f, 0, sizeof f); // nothing since then; and past the age
    assert_int_equal(sentring_since(r, 44, 31, 1 << 20, s_found, &f, &capped),
                     0);
    assert_false(capped);
    assert_int_equal(sentring_since(r, 20000, 0, 1 << 20, s_found, &f, &capped),
                     0);
    sentring_destroy(&r);
}

static void test_sentring_is_bounded_by_age_and_bytes(void **state)
{
    (void)state;
    sentring_t *r = sentring_new(4096, 1000);
    found_t f;
    uint64_t oldest;
    s_put(r, 0, INST, "room", 1, 1, "old");
    s_put(r, 500, INST, "room", 2, 2, "mid");
    assert_int_equal(s_find(r, 999, INST, "room", 1, 2, &f, &oldest), 2);
    //  age: the first is 1000 ms old at 1000
    //  (1..3: not within the range just re-sent, which would coalesce)
    assert_int_equal(s_find(r, 1000, INST, "room", 1, 3, &f, &oldest), 1);
    assert_int_equal(oldest, 2);
    assert_int_equal(s_find(r, 1500, INST, "room", 1, 2, &f, &oldest), 0);
    sentring_stats_t st;
    sentring_stats(r, &st);
    assert_int_equal(st.blobs, 0);
    assert_int_equal(st.streams, 0);
    assert_int_equal(st.bytes, 0);
    //  bytes: many small blobs, the oldest go
    for (uint64_t i = 1; i <= 200; i++) {
        s_put(r, 2000, INST, "room", i, i, "x");
    }
    sentring_stats(r, &st);
    assert_true(st.bytes <= 4096);
    assert_true(st.blobs < 200 && st.blobs > 10);
    assert_int_equal(s_find(r, 2000, INST, "room", 200, 200, &f, &oldest), 1);
    assert_int_equal(oldest, 200 - st.blobs + 1);
    //  one blob larger than the whole ring is refused
    uint8_t big[5000] = {0};
    sentring_span_t sp = {INST, "ns", 2, "room", 4, 201, 201};
    assert_int_equal(sentring_put(r, 2000, big, 2, big, sizeof big, &sp, 1),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    sentring_destroy(&r);
    //  size 0: repair off, nothing kept
    r = sentring_new(0, 1000);
    s_put(r, 0, INST, "room", 1, 1, "x");
    assert_int_equal(s_find(r, 0, INST, "room", 1, 1, &f, &oldest), 0);
    sentring_destroy(&r);
}

// --- repair: a simulated receiver
// ---------------------------------------------

typedef struct {
    uint64_t req;
    uint64_t from, to;
    int count;
} asked_t;

typedef struct {
    asked_t asked;
    int requests;
    uint64_t seqs[256]; // delivered, in order
    int n;
    uint64_t missed;
    int reason;
    int gaps;
} sim_t;

static void s_request(void *arg, const uint8_t *origin, uint64_t req,
                      const uint8_t *instance, wire_str_t ns, wire_str_t topic,
                      uint64_t from, uint64_t to)
{
    sim_t *s = arg;
    assert_memory_equal(origin, NODE, 16);
    assert_memory_equal(instance, INST, 16);
    assert_int_equal(ns.len, 2);
    assert_int_equal(topic.len, 4);
    s->asked = (asked_t){req, from, to, 0};
    s->requests++;
}

static void s_deliver(void *arg, const msg_t *msg, uint64_t missed, int reason)
{
    sim_t *s = arg;
    assert_int_equal(msg->payload.len, 8);
    uint64_t v;
    memcpy(&v, msg->payload.ptr, 8);
    assert_int_equal(v, msg->seq); // the payload came along
    s->seqs[s->n++] = msg->seq;
    if (missed) {
        s->missed += missed;
        s->reason = reason;
        s->gaps++;
    }
}

static repair_t *s_repair(sim_t *s)
{
    memset(s, 0, sizeof *s);
    repair_io_t io = {.arg = s, .request = s_request, .deliver = s_deliver};
    repair_config_t cfg;
    repair_config_defaults(&cfg);
    cfg.max_held_bytes = 1000;
    repair_t *r = repair_new(&cfg, &io);
    assert_non_null(r);
    return r;
}

static msg_t s_msg(uint64_t *seq)
{
    return (msg_t){.ns = {"ns", 2},
                   .topic = {"room", 4},
                   .instance = INST,
                   .node = NODE,
                   .seq = *seq,
                   .payload = {(const char *)seq, 8}};
}

//  What the mesh does with a message: claim, else observe (what sequence
//  tracking would say: missed is passed in), else deliver now.
static void s_arrive(repair_t *r, sim_t *s, uint64_t now, uint64_t seq,
                     uint64_t missed, bool can_repair)
{
    msg_t m = s_msg(&seq);
    if (repair_active(r) && repair_claim(r, now, &m)) {
        return;
    }
    if (!repair_observe(r, now, &m, missed, can_repair)) {
        s_deliver(s, &m, missed, REPAIR_MESH);
    }
}

static void test_repair_fills_a_gap_in_order(void **state)
{
    (void)state;
    sim_t s;
    repair_t *r = s_repair(&s);
    assert_int_equal(repair_next_deadline(r), UINT64_MAX);
    s_arrive(r, &s, 0, 1, 0, true);
    s_arrive(r, &s, 0, 2, 0, true);
    s_arrive(r, &s, 1, 5, 2, true); // 3 and 4 lost on the way
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.asked.from, 3);
    assert_int_equal(s.asked.to, 4);
    assert_true(repair_active(r));
    s_arrive(r, &s, 2, 6, 0, true); // held behind the gap
    assert_int_equal(s.n, 2);
    s_arrive(r, &s, 3, 3, 0, true); // re-sent
    s_arrive(r, &s, 3, 3, 0, true); // a copy
    assert_int_equal(s.n, 3);
    s_arrive(r, &s, 3, 4, 0, true);
    assert_int_equal(s.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(s.seqs[i], (uint64_t)i + 1);
    }
    assert_int_equal(s.gaps, 0);
    assert_false(repair_active(r));         // filled: no answer needed
    repair_answer(r, 4, NODE, s.asked.req); // a late answer: nothing
    repair_stats_t st;
    repair_stats(r, &st);
    assert_int_equal(st.repaired, 2);
    assert_int_equal(st.unrepaired, 0);
    assert_int_equal(st.copies, 1);
    assert_int_equal(st.held_bytes, 0);
    repair_destroy(&r);
}

static void test_repair_answer_without_data_is_a_gap_at_once(void **state)
{
    (void)state;
    sim_t s;
    repair_t *r = s_repair(&s);
    s_arrive(r, &s, 0, 1, 0, true);
    s_arrive(r, &s, 0, 5, 3, true);
    s_arrive(r, &s, 0, 3, 0, true); // one of three came back
    assert_int_equal(s.n, 1);
    repair_answer(r, 10, NODE, s.asked.req); // it had no more
    assert_int_equal(s.n, 3);
    assert_int_equal(s.seqs[1], 3);
    assert_int_equal(s.seqs[2], 5);
    assert_int_equal(s.missed, 2); // 2 before 3, 4 before 5
    assert_int_equal(s.gaps, 2);
    assert_int_equal(s.reason, REPAIR_MESH);
    assert_false(repair_active(r));
    s_arrive(r, &s, 11, 4, 0, true); // too late: order says drop it...
    assert_int_equal(s.n, 4); // ...but the stream is done: seqtrack's job
    repair_destroy(&r);
}

static void test_repair_retries_then_times_out(void **state)
{
    (void)state;
    sim_t s;
    repair_t *r = s_repair(&s);
    s_arrive(r, &s, 1000, 1, 0, true);
    s_arrive(r, &s, 1000, 3, 1, true);
    assert_int_equal(s.requests, 1);
    assert_int_equal(repair_next_deadline(r), 1200);
    repair_tick(r, 1199);
    assert_int_equal(s.requests, 1);
    repair_tick(r, 1200);
    assert_int_equal(s.requests, 2); // asked once more
    assert_int_equal(repair_next_deadline(r), 1500);
    repair_tick(r, 1499);
    assert_int_equal(s.n, 1);
    repair_tick(r, 1500);
    assert_int_equal(s.requests, 2);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.missed, 1);
    assert_false(repair_active(r));
    assert_int_equal(repair_next_deadline(r), UINT64_MAX);
    repair_stats_t st;
    repair_stats(r, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.unrepaired, 1);
    repair_destroy(&r);
}

static void test_repair_origin_gone_is_a_gap_at_once(void **state)
{
    (void)state;
    sim_t s;
    repair_t *r = s_repair(&s);
    s_arrive(r, &s, 0, 1, 0, true);
    s_arrive(r, &s, 0, 4, 2, true);
    s_arrive(r, &s, 0, 5, 0, true);
    repair_origin_gone(r, 1, INST); // another node: nothing
    assert_int_equal(s.n, 1);
    repair_origin_gone(r, 1, NODE);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.missed, 2);
    assert_int_equal(s.reason, REPAIR_ORIGIN_GONE);
    assert_false(repair_active(r));
    //  an origin not heard (can_repair false): delivered with the gap
    s_arrive(r, &s, 2, 9, 3, false);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.missed, 5);
    repair_destroy(&r);
}

static void test_repair_second_gap_and_held_budget(void **state)
{
    (void)state;
    sim_t s;
    repair_t *r = s_repair(&s);
    s_arrive(r, &s, 0, 1, 0, true);
    s_arrive(r, &s, 0, 3, 1, true); // range [2, 2]
    s_arrive(r, &s, 0, 6, 2, true); // range [4, 5]
    assert_int_equal(s.requests, 2);
    assert_int_equal(s.asked.from, 4);
    s_arrive(r, &s, 0, 4, 0, true);
    s_arrive(r, &s, 0, 2, 0, true); // 2, 3, 4 go
    assert_int_equal(s.n, 4);
    assert_true(repair_active(r)); // 5 still waited for
    //  held budget 1000 bytes, 8 per message: 125 more go over it
    for (uint64_t q = 7; q < 7 + 130; q++) {
        s_arrive(r, &s, 0, q, 0, true);
    }
    assert_false(repair_active(r)); // given up: everything delivered
    assert_int_equal(s.missed, 1);  // 5
    assert_int_equal(s.seqs[s.n - 1], 136);
    repair_stats_t st;
    repair_stats(r, &st);
    assert_int_equal(st.overflows, 1);
    assert_int_equal(st.held_bytes, 0);
    repair_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentring_finds_what_it_holds),
        cmocka_unit_test(test_sentring_is_bounded_by_age_and_bytes),
        cmocka_unit_test(test_sentring_since),
        cmocka_unit_test(test_repair_fills_a_gap_in_order),
        cmocka_unit_test(test_repair_answer_without_data_is_a_gap_at_once),
        cmocka_unit_test(test_repair_retries_then_times_out),
        cmocka_unit_test(test_repair_origin_gone_is_a_gap_at_once),
        cmocka_unit_test(test_repair_second_gap_and_held_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
