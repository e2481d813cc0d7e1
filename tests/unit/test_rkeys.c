/*  Unit tests: rkeys (the cache of routing keys per namespace and topic). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "rkeys.h"

#define CHANNEL "prod"

static keyring_t *s_ring(size_t keys)
{
    keyring_t *ring = keyring_new();
    assert_non_null(ring);
    for (size_t i = 0; i < keys; i++) {
        uint8_t key[KEYRING_KEY_SIZE];
        randombytes_buf(key, sizeof key);
        assert_int_equal(keyring_add(ring, key), 0);
    }
    return ring;
}

typedef struct {
    keyring_t *ring; // one key
    rkeys_t *rk;     // its cache on CHANNEL
} fixture_t;

static int s_setup(void **state)
{
    static fixture_t fx;
    fx.ring = s_ring(1);
    fx.rk = rkeys_new(fx.ring, CHANNEL);
    *state = &fx;
    return fx.rk ? 0 : -1;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    rkeys_destroy(&fx->rk);
    keyring_destroy(&fx->ring);
    return 0;
}

//  rkeys_get (from the cache or not) must give what the keyring does.
static void s_assert_same(rkeys_t *rk, const keyring_t *ring, const char *ns,
                          const char *topic)
{
    uint8_t want[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    uint8_t got[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    int n = keyring_routing_keys(ring, CHANNEL, ns, topic, want);
    assert_true(n > 0);
    assert_int_equal(rkeys_get(rk, ns, strlen(ns), topic, strlen(topic), got),
                     n);
    assert_memory_equal(got, want, (size_t)n * KEYRING_RKEY_SIZE);
}

static void test_same_keys_as_the_keyring_hit_or_miss(void **state)
{
    (void)state;
    for (size_t keys = 1; keys <= KEYRING_MAX_KEYS; keys++) {
        keyring_t *ring = s_ring(keys);
        rkeys_t *rk = rkeys_new(ring, CHANNEL);
        assert_non_null(rk);
        assert_ptr_equal(rkeys_ring(rk), ring);
        for (int round = 0; round < 2; round++) { // miss, then hit
            s_assert_same(rk, ring, "chat", "room1");
            s_assert_same(rk, ring, "", "room1");
            s_assert_same(rk, ring, "ab", "c");
            s_assert_same(rk, ring, "a", "bc");
        }
        rkeys_destroy(&rk);
        rkeys_destroy(&rk); // safe twice
        keyring_destroy(&ring);
    }
}

//  Names are given with their lengths: the bytes after them do not count.
static void test_names_are_taken_by_length(void **state)
{
    fixture_t *fx = *state;
    uint8_t a[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    uint8_t b[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    assert_int_equal(rkeys_get(fx->rk, "chatXX", 4, "room1YY", 5, a), 1);
    s_assert_same(fx->rk, fx->ring, "chat", "room1");
    assert_int_equal(rkeys_get(fx->rk, "chat", 4, "room1", 5, b), 1);
    assert_memory_equal(a[0], b[0], KEYRING_RKEY_SIZE);
}

static void test_bad_names_and_empty_ring_are_refused(void **state)
{
    fixture_t *fx = *state;
    uint8_t out[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    char long_name[257];
    memset(long_name, 'x', sizeof long_name);
    assert_int_equal(rkeys_get(fx->rk, long_name, 256, "t", 1, out), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rkeys_get(fx->rk, "ns", 2, long_name, 256, out), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rkeys_get(fx->rk, "n\0s", 3, "t", 1, out), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rkeys_get(fx->rk, "ns", 2, "t\0", 2, out), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rkeys_get(fx->rk, long_name, 255, long_name, 255, out), 1);

    keyring_t *empty = keyring_new();
    rkeys_t *rk = rkeys_new(empty, CHANNEL);
    assert_int_equal(rkeys_get(rk, "ns", 2, "t", 1, out), -1);
    assert_int_equal(errno, ENOKEY);
    rkeys_destroy(&rk);
    keyring_destroy(&empty);
}

//  Past RKEYS_CACHE_MAX topics the cache starts over; keys stay right.
static void test_cache_starts_over_when_full(void **state)
{
    fixture_t *fx = *state;
    uint8_t out[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    char topic[32];
    for (int i = 0; i < RKEYS_CACHE_MAX + 10; i++) {
        int len = snprintf(topic, sizeof topic, "t%d", i);
        assert_int_equal(rkeys_get(fx->rk, "ns", 2, topic, (size_t)len, out),
                         1);
    }
    s_assert_same(fx->rk, fx->ring, "ns", "t0");
    s_assert_same(fx->rk, fx->ring, "ns", "t65540");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_keys_as_the_keyring_hit_or_miss),
        cmocka_unit_test_setup_teardown(test_names_are_taken_by_length, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(
            test_bad_names_and_empty_ring_are_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cache_starts_over_when_full,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
