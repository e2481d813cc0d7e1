/*  Unit tests: dedup (duplicate filter) and seqtrack (gap tracker). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dedup.h"

static const uint8_t A[DEDUP_ID_SIZE] = "origin-AAAAAAAA";
static const uint8_t B[DEDUP_ID_SIZE] = "origin-BBBBBBBB";
static const uint8_t C[DEDUP_ID_SIZE] = "origin-CCCCCCCC";

// --- duplicate filter --------------------------------------------------------

static void test_dedup_new_checks_its_arguments(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(0, 1024);
    assert_null(dedup);
    assert_int_equal(errno, EINVAL);
    assert_null(dedup_new(10, 0));
    assert_null(dedup_new(10, DEDUP_WINDOW_MAX + 1));
    assert_null(dedup_new(DEDUP_MAX_ENTRIES + 1, 64));

    dedup = dedup_new(10, 1000);
    assert_non_null(dedup);
    assert_int_equal(dedup_window(dedup), 1024); // a power of two
    dedup_destroy(&dedup);
    dedup = dedup_new(10, 1);
    assert_int_equal(dedup_window(dedup), 64); // at least a word
    dedup_destroy(&dedup);
    assert_null(dedup);
    dedup_destroy(&dedup);
}

static void test_dedup_drops_the_second_copy(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(16, 1024);
    assert_int_equal(dedup_check(dedup, A, 1, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 1, 0), 0);
    assert_int_equal(dedup_check(dedup, A, 2, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 2, 0), 0);
    assert_int_equal(dedup_check(dedup, A, 1, 0), 0);
    //  Origins are independent.
    assert_int_equal(dedup_check(dedup, B, 1, 0), 1);
    assert_int_equal(dedup_check(dedup, B, 2, 0), 1);
    assert_int_equal(dedup_size(dedup), 2);

    dedup_stats_t stats;
    dedup_stats(dedup, &stats);
    assert_int_equal(stats.accepted, 4);
    assert_int_equal(stats.duplicates, 3);
    assert_int_equal(stats.too_old, 0);
    dedup_destroy(&dedup);
}

static void test_dedup_accepts_reordered_copies_within_the_window(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(16, 1024);
    //  Two proxies: each id arrives twice, copies interleaved and
    //  overtaking each other.
    const struct {
        uint64_t id;
        int fresh;
    } arrivals[] = {
        {10, 1}, {11, 1}, {10, 0}, {12, 1}, {11, 0}, {14, 1},
        {13, 1}, {12, 0}, {15, 1}, {14, 0}, {13, 0}, {15, 0},
    };
    for (size_t i = 0; i < sizeof arrivals / sizeof arrivals[0]; i++) {
        assert_int_equal(dedup_check(dedup, A, arrivals[i].id, 0),
                         arrivals[i].fresh);
    }
    //  An older id never seen is still new, if within the window.
    assert_int_equal(dedup_check(dedup, A, 5, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 5, 0), 0);
    dedup_destroy(&dedup);
}

static void test_dedup_window_edges(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(16, 1024);
    assert_int_equal(dedup_check(dedup, A, 2000, 0), 1);
    //  The window is the 1024 ids 977..2000.
    assert_int_equal(dedup_check(dedup, A, 2000 - 1023, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 2000 - 1023, 0), 0);
    assert_int_equal(dedup_check(dedup, A, 2000 - 1024, 0), 0); // too old
    assert_int_equal(dedup_check(dedup, A, 0, 0), 0);
    dedup_stats_t stats;
    dedup_stats(dedup, &stats);
    assert_int_equal(stats.too_old, 2);
    assert_int_equal(stats.duplicates, 1);

    //  Moving ahead by exactly the window forgets all of it...
    assert_int_equal(dedup_check(dedup, A, 3024, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 2000, 0), 0); // too old now
    //  ... and bits of ids that left the window do not linger when their
    //  slot is reused: 3024 - 1024 + 1 = 2001 was never seen.
    assert_int_equal(dedup_check(dedup, A, 2001, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 3023, 0), 1);
    dedup_destroy(&dedup);
}

static void test_dedup_sliding_clears_exactly_the_new_ids(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(4, 64);
    //  See every id from 1 to 200 once, in steps of various sizes, checking
    //  that each old id within the window stays a duplicate.
    uint64_t highest = 0;
    const uint64_t steps[] = {1, 3, 63, 1, 64, 2, 65, 7, 40, 1};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        uint64_t next = highest + steps[s];
        //  Fill in everything up to next, out of order: next first.
        assert_int_equal(dedup_check(dedup, A, next, 0), 1);
        for (uint64_t id = next - 1; id > highest && next - id < 64; id--) {
            assert_int_equal(dedup_check(dedup, A, id, 0), 1);
        }
        highest = next;
        for (uint64_t id = highest; id > 0 && highest - id < 64; id--) {
            assert_int_equal(dedup_check(dedup, A, id, 0), 0);
        }
        if (highest >= 64) {
            assert_int_equal(dedup_check(dedup, A, highest - 64, 0), 0);
        }
    }
    dedup_destroy(&dedup);
}

static void test_dedup_extreme_ids(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(4, 64);
    assert_int_equal(dedup_check(dedup, A, 0, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 0, 0), 0);
    assert_int_equal(dedup_check(dedup, A, UINT64_MAX, 0), 1);
    assert_int_equal(dedup_check(dedup, A, UINT64_MAX, 0), 0);
    assert_int_equal(dedup_check(dedup, A, UINT64_MAX - 63, 0), 1);
    assert_int_equal(dedup_check(dedup, A, UINT64_MAX - 64, 0), 0);
    assert_int_equal(dedup_check(dedup, A, 0, 0), 0);
    dedup_destroy(&dedup);
}

static void test_dedup_evicts_the_least_recently_seen_origin(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(2, 64);
    assert_int_equal(dedup_check(dedup, A, 1, 0), 1);
    assert_int_equal(dedup_check(dedup, B, 1, 0), 1);
    assert_int_equal(dedup_check(dedup, A, 2, 0), 1); // A is fresher now
    assert_int_equal(dedup_check(dedup, C, 1, 0), 1); // evicts B
    assert_int_equal(dedup_size(dedup), 2);
    //  A is remembered; B was forgotten, so its old id reads as new.
    assert_int_equal(dedup_check(dedup, A, 1, 0), 0);
    assert_int_equal(dedup_check(dedup, B, 1, 0), 1); // evicts C
    assert_int_equal(dedup_check(dedup, A, 2, 0), 0);
    assert_int_equal(dedup_check(dedup, C, 1, 0), 1); // evicts B
    dedup_stats_t stats;
    dedup_stats(dedup, &stats);
    assert_int_equal(stats.evictions, 3);
    dedup_destroy(&dedup);
}

static void test_dedup_many_origins_churn(void **state)
{
    (void)state;
    //  More origins than room, many times over: the table stays consistent.
    dedup_t *dedup = dedup_new(100, 64);
    for (uint32_t round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < 1000; i++) {
            uint8_t origin[DEDUP_ID_SIZE] = {0};
            memcpy(origin, &i, sizeof i);
            assert_int_equal(dedup_check(dedup, origin, round, 0), 1);
            assert_int_equal(dedup_check(dedup, origin, round, 0), 0);
        }
        assert_int_equal(dedup_size(dedup), 100);
    }
    for (uint32_t i = 900; i < 1000; i++) {
        uint8_t origin[DEDUP_ID_SIZE] = {0};
        memcpy(origin, &i, sizeof i);
        assert_int_equal(dedup_forget(dedup, origin), 0);
    }
    assert_int_equal(dedup_size(dedup), 0);
    dedup_destroy(&dedup);
}

static void test_dedup_forget_and_expire(void **state)
{
    (void)state;
    dedup_t *dedup = dedup_new(8, 64);
    assert_int_equal(dedup_check(dedup, A, 5, 1000), 1);
    assert_int_equal(dedup_check(dedup, B, 5, 2000), 1);
    assert_int_equal(dedup_check(dedup, C, 5, 3000), 1);

    assert_int_equal(dedup_forget(dedup, B), 0);
    assert_int_equal(dedup_forget(dedup, B), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(dedup_check(dedup, B, 5, 3500), 1); // new again

    //  Idle for 2500 ms at 4000: A (1000) only; B and C were seen later.
    assert_int_equal(dedup_expire(dedup, 4000, 2500), 1);
    assert_int_equal(dedup_size(dedup), 2);
    assert_int_equal(dedup_check(dedup, A, 5, 4000), 1);
    //  A check refreshes: C (3000) goes at 6000, A and B stay.
    assert_int_equal(dedup_expire(dedup, 6000, 2600), 1);
    assert_int_equal(dedup_check(dedup, C, 5, 6000), 1);
    assert_int_equal(dedup_expire(dedup, 6000, 0), 3);
    assert_int_equal(dedup_size(dedup), 0);
    assert_int_equal(dedup_expire(dedup, 6000, 0), 0);
    dedup_destroy(&dedup);
}

// --- sequence / gap tracker --------------------------------------------------

static int s_observe(seqtrack_t *track, const uint8_t *instance,
                     const char *topic, uint64_t sequence, uint64_t *missed)
{
    return seqtrack_observe(track, instance, "chat", 4, topic, strlen(topic),
                            sequence, missed);
}

static void test_seqtrack_new_checks_its_arguments(void **state)
{
    (void)state;
    assert_null(seqtrack_new(0));
    assert_int_equal(errno, EINVAL);
    assert_null(seqtrack_new(DEDUP_MAX_ENTRIES + 1));
    seqtrack_t *track = seqtrack_new(1);
    assert_non_null(track);
    seqtrack_destroy(&track);
    assert_null(track);
    seqtrack_destroy(&track);
}

static void test_seqtrack_in_order_and_first_sight(void **state)
{
    (void)state;
    seqtrack_t *track = seqtrack_new(16);
    uint64_t missed = 99;
    //  Joining late: the first message seen starts the stream, no gap.
    assert_int_equal(s_observe(track, A, "room1", 40, &missed),
                     SEQTRACK_IN_ORDER);
    assert_int_equal(missed, 0);
    for (uint64_t seq = 41; seq < 50; seq++) {
        assert_int_equal(s_observe(track, A, "room1", seq, &missed),
                         SEQTRACK_IN_ORDER);
        assert_int_equal(missed, 0);
    }
    seqtrack_stats_t stats;
    seqtrack_stats(track, &stats);
    assert_int_equal(stats.gaps, 0);
    assert_int_equal(stats.stale, 0);
    seqtrack_destroy(&track);
}

static void test_seqtrack_reports_gaps(void **state)
{
    (void)state;
    seqtrack_t *track = seqtrack_new(16);
    uint64_t missed = 0;
    assert_int_equal(s_observe(track, A, "room1", 1, &missed), 0);
    assert_int_equal(s_observe(track, A, "room1", 2, &missed), 0);
    assert_int_equal(s_observe(track, A, "room1", 5, &missed), SEQTRACK_GAP);
    assert_int_equal(missed, 2); // 3 and 4
    assert_int_equal(s_observe(track, A, "room1", 6, &missed),
                     SEQTRACK_IN_ORDER);
    assert_int_equal(missed, 0);
    assert_int_equal(s_observe(track, A, "room1", 1006, &missed), SEQTRACK_GAP);
    assert_int_equal(missed, 999);
    seqtrack_stats_t stats;
    seqtrack_stats(track, &stats);
    assert_int_equal(stats.gaps, 2);
    assert_int_equal(stats.missed, 1001);
    seqtrack_destroy(&track);
}

static void test_seqtrack_stale_messages_are_flagged(void **state)
{
    (void)state;
    seqtrack_t *track = seqtrack_new(16);
    uint64_t missed = 0;
    assert_int_equal(s_observe(track, A, "room1", 3, &missed), 0);
    assert_int_equal(s_observe(track, A, "room1", 5, &missed), SEQTRACK_GAP);
    //  4 arrives late (a slower path): already reported missing, drop it.
    assert_int_equal(s_observe(track, A, "room1", 4, &missed), SEQTRACK_STALE);
    assert_int_equal(missed, 0);
    assert_int_equal(s_observe(track, A, "room1", 5, &missed), SEQTRACK_STALE);
    //  The stream goes on from 5.
    assert_int_equal(s_observe(track, A, "room1", 6, &missed),
                     SEQTRACK_IN_ORDER);
    seqtrack_stats_t stats;
    seqtrack_stats(track, &stats);
    assert_int_equal(stats.stale, 2);
    seqtrack_destroy(&track);
}

static void test_seqtrack_restart_at_one_is_a_new_stream(void **state)
{
    (void)state;
    seqtrack_t *track = seqtrack_new(16);
    uint64_t missed = 0;
    for (uint64_t seq = 1; seq <= 10; seq++) {
        assert_int_equal(s_observe(track, A, "room1", seq, &missed), 0);
    }
    //  The publisher's sequences were reset.
    assert_int_equal(s_observe(track, A, "room1", 1, &missed),
                     SEQTRACK_IN_ORDER);
    assert_int_equal(missed, 0);
    assert_int_equal(s_observe(track, A, "room1", 2, &missed),
                     SEQTRACK_IN_ORDER);
    assert_int_equal(s_observe(track, A, "room1", 4, &missed), SEQTRACK_GAP);
    assert_int_equal(missed, 1);
    //  Only 1 means a restart: 2 after 4 is stale.
    assert_int_equal(s_observe(track, A, "room1", 2, &missed), SEQTRACK_STALE);
    //  And 1 right after 1 is a repeat, not a restart.
    seqtrack_stats_t stats;
    seqtrack_stats(track, &stats);
    assert_int_equal(stats.resets, 1);
    assert_int_equal(s_observe(track, B, "room1", 1, &missed), 0);
    assert_int_equal(s_observe(track, B, "room1", 1, &missed), SEQTRACK_STALE);
    seqtrack_destroy(&track);
}

static void test_seqtrack_streams_are_independent(void **state)
{
    (void)state;
    seqtrack_t *track = seqtrack_new(16);
    uint64_t missed = 0;
    assert_int_equal(s_observe(track, A, "room1", 10, &missed), 0);
    assert_int_equal(s_observe(track, A, "room2", 50, &missed), 0);
    assert_int_equal(s_observe(track, B, "room1", 90, &missed), 0);
    assert_int_equal(s_observe(track, A, "room1", 11, &missed), 0);
    assert_int_equal(s_observe(track, A, "room2", 51, &missed), 0);
    assert_int_equal(s_observe(track, B, "room1", 91, &missed), 0);
    assert_int_equal(seqtrack_size(track), 3);

    //  ("a", "bc") and ("ab", "c") are different streams.
    assert_int_equal(seqtrack_observe(track, C, "a", 1, "bc", 2, 100, &missed),
                     0);
    assert_int_equal(seqtrack_observe(track, C, "ab", 2, "c", 1, 5, &missed),
                     0);
    assert_int_equal(seqtrack_observe(track, C, "a", 1, "bc", 2, 101, &missed),
                     0);
    //  Empty namespace; names are not NUL terminated.
    assert_int_equal(
        seqtrack_observe(track, C, NULL, 0, "bcXXX", 2, 7, &missed), 0);
    assert_int_equal(seqtrack_observe(track, C, "", 0, "bc", 2, 8, &missed), 0);
    assert_int_equal(seqtrack_size(track), 6);
    seqtrack_destroy(&track);
}

static void test_seqtrack_evicts_the_least_recent_stream(void **state)
{
    (void)state;
    seqtrack_t *track = seqtrack_new(2);
    uint64_t missed = 0;
    assert_int_equal(s_observe(track, A, "room1", 1, &missed), 0);
    assert_int_equal(s_observe(track, A, "room2", 1, &missed), 0);
    assert_int_equal(s_observe(track, A, "room1", 2, &missed), 0);
    assert_int_equal(s_observe(track, A, "room3", 1, &missed), 0); // -room2
    assert_int_equal(seqtrack_size(track), 2);
    //  room1 is remembered: 5 is a gap. room2 starts over: 9 is no gap.
    assert_int_equal(s_observe(track, A, "room1", 5, &missed), SEQTRACK_GAP);
    assert_int_equal(s_observe(track, A, "room2", 9, &missed), 0); // -room3
    assert_int_equal(missed, 0);
    seqtrack_stats_t stats;
    seqtrack_stats(track, &stats);
    assert_int_equal(stats.evictions, 2);

    //  Churn through many streams: stays bounded and consistent.
    char topic[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(topic, sizeof topic, "t%d", i);
        assert_int_equal(s_observe(track, B, topic, 1, &missed), 0);
        assert_int_equal(s_observe(track, B, topic, 2, &missed), 0);
    }
    assert_int_equal(seqtrack_size(track), 2);
    seqtrack_destroy(&track);
}

static void test_seqtrack_extreme_sequences(void **state)
{
    (void)state;
    seqtrack_t *track = seqtrack_new(4);
    uint64_t missed = 0;
    assert_int_equal(s_observe(track, A, "t", 0, &missed), 0);
    assert_int_equal(s_observe(track, A, "t", UINT64_MAX, &missed),
                     SEQTRACK_GAP);
    assert_int_equal(missed, UINT64_MAX - 1);
    assert_int_equal(s_observe(track, A, "t", UINT64_MAX, &missed),
                     SEQTRACK_STALE);
    assert_int_equal(s_observe(track, A, "t", 1, &missed), SEQTRACK_IN_ORDER);
    seqtrack_destroy(&track);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_new_checks_its_arguments),
        cmocka_unit_test(test_dedup_drops_the_second_copy),
        cmocka_unit_test(test_dedup_accepts_reordered_copies_within_the_window),
        cmocka_unit_test(test_dedup_window_edges),
        cmocka_unit_test(test_dedup_sliding_clears_exactly_the_new_ids),
        cmocka_unit_test(test_dedup_extreme_ids),
        cmocka_unit_test(test_dedup_evicts_the_least_recently_seen_origin),
        cmocka_unit_test(test_dedup_many_origins_churn),
        cmocka_unit_test(test_dedup_forget_and_expire),
        cmocka_unit_test(test_seqtrack_new_checks_its_arguments),
        cmocka_unit_test(test_seqtrack_in_order_and_first_sight),
        cmocka_unit_test(test_seqtrack_reports_gaps),
        cmocka_unit_test(test_seqtrack_stale_messages_are_flagged),
        cmocka_unit_test(test_seqtrack_restart_at_one_is_a_new_stream),
        cmocka_unit_test(test_seqtrack_streams_are_independent),
        cmocka_unit_test(test_seqtrack_evicts_the_least_recent_stream),
        cmocka_unit_test(test_seqtrack_extreme_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
