/*  Unit tests: keyring (cluster keys, seal/open, routing keys, key files). */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "keyring.h"

#define MIB (1024 * 1024)

static const uint8_t s_ad[] = "routing-key-16by";

//  A ring holding `first`, then `second` if not NULL.
static keyring_t *s_ring(const uint8_t *first, const uint8_t *second)
{
    keyring_t *ring = keyring_new();
    assert_non_null(ring);
    if (first) {
        assert_int_equal(keyring_add(ring, first), 0);
    }
    if (second) {
        assert_int_equal(keyring_add(ring, second), 0);
    }
    return ring;
}

static void s_random_key(uint8_t key[KEYRING_KEY_SIZE])
{
    randombytes_buf(key, KEYRING_KEY_SIZE);
}

//  Seals plain under ring into a fresh buffer; caller frees.
static uint8_t *s_seal(const keyring_t *ring, const void *plain, size_t len,
                       size_t *sealed_len)
{
    uint8_t *sealed = malloc(len + KEYRING_SEAL_OVERHEAD);
    assert_non_null(sealed);
    assert_int_equal(keyring_seal(ring, s_ad, 16, plain, len, sealed,
                                  len + KEYRING_SEAL_OVERHEAD, sealed_len),
                     0);
    assert_int_equal(*sealed_len, len + KEYRING_SEAL_OVERHEAD);
    return sealed;
}

//  Opens with ring; returns 0 or errno, and the key index through *index.
static int s_open(const keyring_t *ring, const uint8_t *sealed, size_t len,
                  size_t *index)
{
    uint8_t plain[256];
    size_t plain_len = 0;
    size_t key_index = 99;
    if (keyring_open(ring, s_ad, 16, sealed, len, plain, sizeof plain,
                     &plain_len, &key_index) != 0) {
        return errno;
    }
    if (index) {
        *index = key_index;
    }
    return 0;
}

// --- lifecycle ---------------------------------------------------------------

static void test_new_and_destroy_twice(void **state)
{
    (void)state;
    keyring_t *ring = keyring_new();
    assert_non_null(ring);
    assert_int_equal(keyring_size(ring), 0);
    keyring_destroy(&ring);
    assert_null(ring);
    keyring_destroy(&ring);
}

static void test_holds_at_most_two_keys(void **state)
{
    (void)state;
    uint8_t a[KEYRING_KEY_SIZE], b[KEYRING_KEY_SIZE], c[KEYRING_KEY_SIZE];
    s_random_key(a);
    s_random_key(b);
    s_random_key(c);
    keyring_t *ring = s_ring(a, NULL);
    assert_int_equal(keyring_size(ring), 1);
    //  The same key again changes nothing.
    assert_int_equal(keyring_add(ring, a), 0);
    assert_int_equal(keyring_size(ring), 1);
    assert_int_equal(keyring_add(ring, b), 0);
    assert_int_equal(keyring_size(ring), 2);
    assert_int_equal(keyring_add(ring, b), 0);
    assert_int_equal(keyring_add(ring, c), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(keyring_size(ring), 2);
    keyring_destroy(&ring);
}

// --- seal and open -----------------------------------------------------------

static void test_round_trip_every_byte_value(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);
    uint8_t plain[256];
    for (size_t i = 0; i < sizeof plain; i++) {
        plain[i] = (uint8_t)i;
    }
    size_t sealed_len = 0;
    uint8_t *sealed = s_seal(ring, plain, sizeof plain, &sealed_len);
    //  Ciphertext does not show the plaintext.
    assert_memory_not_equal(sealed + KEYRING_NONCE_SIZE, plain, sizeof plain);

    uint8_t opened[256];
    size_t opened_len = 0;
    size_t index = 99;
    assert_int_equal(keyring_open(ring, s_ad, 16, sealed, sealed_len, opened,
                                  sizeof opened, &opened_len, &index),
                     0);
    assert_int_equal(opened_len, sizeof plain);
    assert_memory_equal(opened, plain, sizeof plain);
    assert_int_equal(index, 0);
    free(sealed);
    keyring_destroy(&ring);
}

static void test_round_trip_empty_and_one_mib(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);

    size_t sealed_len = 0;
    uint8_t *sealed = s_seal(ring, NULL, 0, &sealed_len);
    assert_int_equal(sealed_len, KEYRING_SEAL_OVERHEAD);
    size_t opened_len = 99;
    assert_int_equal(keyring_open(ring, s_ad, 16, sealed, sealed_len, NULL, 0,
                                  &opened_len, NULL),
                     0);
    assert_int_equal(opened_len, 0);
    free(sealed);

    uint8_t *big = malloc(MIB);
    uint8_t *back = malloc(MIB);
    assert_non_null(big);
    assert_non_null(back);
    randombytes_buf(big, MIB);
    sealed = s_seal(ring, big, MIB, &sealed_len);
    assert_int_equal(keyring_open(ring, s_ad, 16, sealed, sealed_len, back, MIB,
                                  &opened_len, NULL),
                     0);
    assert_int_equal(opened_len, MIB);
    assert_memory_equal(back, big, MIB);
    free(sealed);
    free(big);
    free(back);
    keyring_destroy(&ring);
}

static void test_seal_in_place(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);
    const char text[] = "sealed where it was written";
    uint8_t buf[KEYRING_SEAL_OVERHEAD + sizeof text];
    memcpy(buf + KEYRING_NONCE_SIZE, text, sizeof text);
    size_t sealed_len = 0;
    assert_int_equal(keyring_seal(ring, s_ad, 16, buf + KEYRING_NONCE_SIZE,
                                  sizeof text, buf, sizeof buf, &sealed_len),
                     0);
    uint8_t opened[sizeof text];
    size_t opened_len = 0;
    assert_int_equal(keyring_open(ring, s_ad, 16, buf, sealed_len, opened,
                                  sizeof opened, &opened_len, NULL),
                     0);
    assert_memory_equal(opened, text, sizeof text);
    keyring_destroy(&ring);
}

static void test_seal_refuses_empty_ring_and_small_buffer(void **state)
{
    (void)state;
    keyring_t *ring = keyring_new();
    uint8_t out[64];
    size_t out_len = 0;
    assert_int_equal(
        keyring_seal(ring, NULL, 0, (const uint8_t *)"x", 1, out, 64, &out_len),
        -1);
    assert_int_equal(errno, ENOKEY);

    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    assert_int_equal(keyring_add(ring, key), 0);
    assert_int_equal(keyring_seal(ring, NULL, 0, (const uint8_t *)"xy", 2, out,
                                  KEYRING_SEAL_OVERHEAD + 1, &out_len),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(keyring_seal(ring, NULL, 0, NULL, 0, out,
                                  KEYRING_SEAL_OVERHEAD - 1, &out_len),
                     -1);
    assert_int_equal(errno, EMSGSIZE);

    //  And open wants room for the whole plaintext.
    assert_int_equal(keyring_seal(ring, s_ad, 16, (const uint8_t *)"xy", 2, out,
                                  sizeof out, &out_len),
                     0);
    uint8_t small[1];
    size_t small_len = 0;
    assert_int_equal(keyring_open(ring, s_ad, 16, out, out_len, small,
                                  sizeof small, &small_len, NULL),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    keyring_destroy(&ring);
}

static void test_nonces_never_repeat(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);
    size_t len_a = 0, len_b = 0;
    uint8_t *a = s_seal(ring, "same", 4, &len_a);
    uint8_t *b = s_seal(ring, "same", 4, &len_b);
    assert_memory_not_equal(a, b, KEYRING_NONCE_SIZE);
    assert_memory_not_equal(a + KEYRING_NONCE_SIZE, b + KEYRING_NONCE_SIZE,
                            len_a - KEYRING_NONCE_SIZE);
    //  a second ring with the same key (a restarted sidecar) starts with
    //  other nonces, and a ring's nonces stay distinct over many seals
    keyring_t *again = s_ring(key, NULL);
    size_t len_c = 0;
    uint8_t *c = s_seal(again, "same", 4, &len_c);
    assert_memory_not_equal(a, c, KEYRING_NONCE_SIZE);
    assert_memory_not_equal(b, c, KEYRING_NONCE_SIZE);
    enum { N = 1000 };
    static uint8_t seen[N][KEYRING_NONCE_SIZE];
    for (size_t i = 0; i < N; i++) {
        size_t len = 0;
        uint8_t *x = s_seal(ring, "same", 4, &len);
        memcpy(seen[i], x, KEYRING_NONCE_SIZE);
        free(x);
        for (size_t j = 0; j < i; j++) {
            assert_memory_not_equal(seen[i], seen[j], KEYRING_NONCE_SIZE);
        }
    }
    free(a);
    free(b);
    free(c);
    keyring_destroy(&again);
    keyring_destroy(&ring);
}

static void test_wrong_key_does_not_open(void **state)
{
    (void)state;
    uint8_t mine[KEYRING_KEY_SIZE], theirs[KEYRING_KEY_SIZE];
    s_random_key(mine);
    s_random_key(theirs);
    keyring_t *sender = s_ring(mine, NULL);
    keyring_t *stranger = s_ring(theirs, NULL);
    keyring_t *empty = keyring_new();
    size_t len = 0;
    uint8_t *sealed = s_seal(sender, "secret", 6, &len);
    assert_int_equal(s_open(stranger, sealed, len, NULL), EBADMSG);
    assert_int_equal(s_open(empty, sealed, len, NULL), EBADMSG);
    free(sealed);
    keyring_destroy(&sender);
    keyring_destroy(&stranger);
    keyring_destroy(&empty);
}

static void test_wrong_associated_data_does_not_open(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);
    size_t len = 0;
    uint8_t *sealed = s_seal(ring, "secret", 6, &len);
    uint8_t plain[16];
    size_t plain_len = 0;
    const uint8_t other_ad[] = "routing-key-16bz";
    assert_int_equal(keyring_open(ring, other_ad, 16, sealed, len, plain,
                                  sizeof plain, &plain_len, NULL),
                     -1);
    assert_int_equal(errno, EBADMSG);
    assert_int_equal(keyring_open(ring, s_ad, 15, sealed, len, plain,
                                  sizeof plain, &plain_len, NULL),
                     -1);
    assert_int_equal(errno, EBADMSG);
    free(sealed);
    keyring_destroy(&ring);
}

static void test_any_tampered_byte_fails(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);
    size_t len = 0;
    uint8_t *sealed = s_seal(ring, "hello", 5, &len);
    const uint8_t flips[] = {0x01, 0x80, 0xff};
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            sealed[pos] ^= flips[f];
            assert_int_equal(s_open(ring, sealed, len, NULL), EBADMSG);
            sealed[pos] ^= flips[f];
        }
    }
    assert_int_equal(s_open(ring, sealed, len, NULL), 0);
    free(sealed);
    keyring_destroy(&ring);
}

static void test_truncated_at_every_length_fails(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);
    size_t len = 0;
    uint8_t *sealed = s_seal(ring, "hello", 5, &len);
    for (size_t cut = 0; cut < len; cut++) {
        //  A copy of exactly cut bytes, so ASan sees any read past it.
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, sealed, cut);
        assert_int_equal(s_open(ring, part, cut, NULL), EBADMSG);
        free(part);
    }
    free(sealed);
    keyring_destroy(&ring);
}

// --- rotation ----------------------------------------------------------------

static void test_rotation_steps_interoperate(void **state)
{
    (void)state;
    uint8_t old_key[KEYRING_KEY_SIZE], new_key[KEYRING_KEY_SIZE];
    s_random_key(old_key);
    s_random_key(new_key);
    keyring_t *step0 = s_ring(old_key, NULL);    // [old]
    keyring_t *step1 = s_ring(old_key, new_key); // [old, new]
    keyring_t *step2 = s_ring(new_key, old_key); // [new, old]
    keyring_t *step3 = s_ring(new_key, NULL);    // [new]
    size_t index = 99;
    size_t len = 0;

    //  Step 1 still seals with old: step 0 and step 2 nodes open it.
    uint8_t *sealed = s_seal(step1, "m", 1, &len);
    assert_int_equal(s_open(step0, sealed, len, &index), 0);
    assert_int_equal(index, 0);
    assert_int_equal(s_open(step2, sealed, len, &index), 0);
    assert_int_equal(index, 1); // opened with its extra key
    free(sealed);

    //  Step 0 seals with old: a step 2 node ([new, old]) opens it.
    sealed = s_seal(step0, "m", 1, &len);
    assert_int_equal(s_open(step1, sealed, len, &index), 0);
    assert_int_equal(index, 0);
    assert_int_equal(s_open(step2, sealed, len, &index), 0);
    assert_int_equal(index, 1);
    assert_int_equal(s_open(step3, sealed, len, NULL), EBADMSG);
    free(sealed);

    //  Step 2 seals with new: step 1 (extra key) and step 3 open it.
    sealed = s_seal(step2, "m", 1, &len);
    assert_int_equal(s_open(step1, sealed, len, &index), 0);
    assert_int_equal(index, 1);
    assert_int_equal(s_open(step3, sealed, len, &index), 0);
    assert_int_equal(index, 0);
    assert_int_equal(s_open(step0, sealed, len, NULL), EBADMSG);
    free(sealed);

    //  Step 3 seals with new: step 2 opens it.
    sealed = s_seal(step3, "m", 1, &len);
    assert_int_equal(s_open(step2, sealed, len, &index), 0);
    assert_int_equal(index, 0);
    free(sealed);

    keyring_destroy(&step0);
    keyring_destroy(&step1);
    keyring_destroy(&step2);
    keyring_destroy(&step3);
}

// --- routing keys ------------------------------------------------------------

static void test_routing_keys_are_stable_and_distinct(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE];
    s_random_key(key);
    keyring_t *ring = s_ring(key, NULL);
    uint8_t a[2][KEYRING_RKEY_SIZE], b[2][KEYRING_RKEY_SIZE];

    assert_int_equal(keyring_routing_keys(ring, "prod", "chat", "room1", a), 1);
    assert_int_equal(keyring_routing_keys(ring, "prod", "chat", "room1", b), 1);
    assert_memory_equal(a[0], b[0], KEYRING_RKEY_SIZE);

    const char *variants[][3] = {
        {"prod", "chat", "room2"}, // another topic
        {"prod", "game", "room1"}, // another namespace
        {"test", "chat", "room1"}, // another channel
        {"prod", "", "chatroom1"}, // same bytes, other boundaries
        {"prod", "chatroom1", ""}, //
        {"prodchat", "", "room1"}, //
        {"pro", "dchat", "room1"},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        assert_int_equal(keyring_routing_keys(ring, variants[i][0],
                                              variants[i][1], variants[i][2],
                                              b),
                         1);
        assert_memory_not_equal(a[0], b[0], KEYRING_RKEY_SIZE);
    }
    //  The classic: ("a", "bc") against ("ab", "c").
    assert_int_equal(keyring_routing_keys(ring, "ch", "a", "bc", a), 1);
    assert_int_equal(keyring_routing_keys(ring, "ch", "ab", "c", b), 1);
    assert_memory_not_equal(a[0], b[0], KEYRING_RKEY_SIZE);

    //  Another cluster key gives other routing keys.
    uint8_t other[KEYRING_KEY_SIZE];
    s_random_key(other);
    keyring_t *ring2 = s_ring(other, NULL);
    assert_int_equal(keyring_routing_keys(ring2, "ch", "a", "bc", b), 1);
    assert_memory_not_equal(a[0], b[0], KEYRING_RKEY_SIZE);
    keyring_destroy(&ring2);
    keyring_destroy(&ring);
}

static void test_routing_keys_follow_key_order(void **state)
{
    (void)state;
    uint8_t old_key[KEYRING_KEY_SIZE], new_key[KEYRING_KEY_SIZE];
    s_random_key(old_key);
    s_random_key(new_key);
    keyring_t *old_ring = s_ring(old_key, NULL);
    keyring_t *new_ring = s_ring(new_key, NULL);
    keyring_t *both = s_ring(new_key, old_key);
    keyring_t *empty = keyring_new();
    uint8_t rk_old[2][KEYRING_RKEY_SIZE], rk_new[2][KEYRING_RKEY_SIZE];
    uint8_t rk_both[2][KEYRING_RKEY_SIZE];

    assert_int_equal(keyring_routing_keys(old_ring, "c", "n", "t", rk_old), 1);
    assert_int_equal(keyring_routing_keys(new_ring, "c", "n", "t", rk_new), 1);
    assert_int_equal(keyring_routing_keys(both, "c", "n", "t", rk_both), 2);
    assert_memory_equal(rk_both[0], rk_new[0], KEYRING_RKEY_SIZE);
    assert_memory_equal(rk_both[1], rk_old[0], KEYRING_RKEY_SIZE);

    assert_int_equal(keyring_routing_keys(empty, "c", "n", "t", rk_old), -1);
    assert_int_equal(errno, ENOKEY);
    keyring_destroy(&old_ring);
    keyring_destroy(&new_ring);
    keyring_destroy(&both);
    keyring_destroy(&empty);
}

static void test_fingerprints_identify_keys(void **state)
{
    (void)state;
    uint8_t a[KEYRING_KEY_SIZE], b[KEYRING_KEY_SIZE];
    s_random_key(a);
    s_random_key(b);
    keyring_t *ab = s_ring(a, b);
    keyring_t *ba = s_ring(b, a);
    char fa[KEYRING_FINGERPRINT_LEN + 1], fb[KEYRING_FINGERPRINT_LEN + 1];
    char fx[KEYRING_FINGERPRINT_LEN + 1];
    assert_int_equal(keyring_fingerprint(ab, 0, fa), 0);
    assert_int_equal(keyring_fingerprint(ab, 1, fb), 0);
    assert_int_equal(strlen(fa), KEYRING_FINGERPRINT_LEN);
    assert_string_not_equal(fa, fb);
    assert_int_equal(keyring_fingerprint(ba, 1, fx), 0);
    assert_string_equal(fx, fa);
    assert_int_equal(keyring_fingerprint(ab, 2, fx), -1);
    assert_int_equal(errno, ENOENT);

    //  The fingerprint is not the key in hex.
    char hex[2 * KEYRING_KEY_SIZE + 1];
    sodium_bin2hex(hex, sizeof hex, a, sizeof a);
    assert_null(strstr(hex, fa));
    keyring_destroy(&ab);
    keyring_destroy(&ba);
}

// --- key files ---------------------------------------------------------------

typedef struct {
    char dir[64];   // mkdtemp'ed
    char path[128]; // scratch path in dir
    char err[512];  // error messages
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(fixture_t));
    strcpy(fx->dir, "/tmp/test_keyring.XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

//  Writes len bytes to dir/name with the given mode; returns the path.
static const char *s_file(fixture_t *fx, const char *name, const void *bytes,
                          size_t len, mode_t mode)
{
    snprintf(fx->path, sizeof fx->path, "%s/%s", fx->dir, name);
    unlink(fx->path);
    int fd = open(fx->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return fx->path;
}

//  Loads path into a fresh ring; returns 0 or errno, message in fx->err.
static int s_load(fixture_t *fx, const char *path)
{
    keyring_t *ring = keyring_new();
    fx->err[0] = '\0';
    int rc = keyring_load_file(ring, path, fx->err, sizeof fx->err);
    int err = rc == 0 ? 0 : errno;
    if (rc == 0) {
        assert_int_equal(keyring_size(ring), 1);
        assert_string_equal(fx->err, "");
    } else {
        assert_int_equal(keyring_size(ring), 0);
        assert_true(strlen(fx->err) > 0);
        assert_non_null(strstr(fx->err, path));
    }
    keyring_destroy(&ring);
    return err;
}

static const char s_hex[] =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static void test_generate_file_round_trip(void **state)
{
    fixture_t *fx = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/cluster.key", fx->dir);
    assert_int_equal(keyring_generate_file(path, fx->err, sizeof fx->err), 0);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 2 * KEYRING_KEY_SIZE + 1);
    char text[80] = {0};
    FILE *file = fopen(path, "r");
    assert_non_null(file);
    assert_int_equal(fread(text, 1, sizeof text, file), 65);
    fclose(file);
    assert_int_equal(text[64], '\n');
    assert_int_equal(strspn(text, "0123456789abcdef"), 64);

    //  Two nodes loading the file share the key.
    keyring_t *one = keyring_new();
    keyring_t *two = keyring_new();
    assert_int_equal(keyring_load_file(one, path, fx->err, sizeof fx->err), 0);
    assert_int_equal(keyring_load_file(two, path, NULL, 0), 0);
    size_t len = 0;
    uint8_t *sealed = s_seal(one, "hi", 2, &len);
    assert_int_equal(s_open(two, sealed, len, NULL), 0);
    free(sealed);
    keyring_destroy(&one);
    keyring_destroy(&two);

    //  A second generate gives another key.
    char path2[140];
    snprintf(path2, sizeof path2, "%s/second.key", fx->dir);
    assert_int_equal(keyring_generate_file(path2, NULL, 0), 0);
    char text2[80] = {0};
    file = fopen(path2, "r");
    assert_int_equal(fread(text2, 1, sizeof text2, file), 65);
    fclose(file);
    assert_memory_not_equal(text, text2, 64);
}

static void test_generate_file_never_overwrites(void **state)
{
    fixture_t *fx = *state;
    const char *path = s_file(fx, "existing.key", s_hex, 64, 0600);
    assert_int_equal(keyring_generate_file(path, fx->err, sizeof fx->err), -1);
    assert_int_equal(errno, EEXIST);
    assert_non_null(strstr(fx->err, path));
    char text[80] = {0};
    FILE *file = fopen(path, "r");
    assert_int_equal(fread(text, 1, sizeof text, file), 64);
    fclose(file);
    assert_string_equal(text, s_hex);

    char missing_dir[160];
    snprintf(missing_dir, sizeof missing_dir, "%s/nope/k", fx->dir);
    assert_int_equal(keyring_generate_file(missing_dir, NULL, 0), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_load_refuses_files_open_to_others(void **state)
{
    fixture_t *fx = *state;
    const char *path = s_file(fx, "k", s_hex, 64, 0644);
    assert_int_equal(s_load(fx, path), EACCES);
    char expect[300];
    snprintf(expect, sizeof expect,
             "key file %s is open to others (mode 0644): only its owner "
             "may write it, only its owner and group read it; "
             "run: chmod 600 %s",
             path, path);
    assert_string_equal(fx->err, expect);
    assert_null(strstr(fx->err, s_hex)); // never quotes the key

    const mode_t refused[] = {0604, 0660, 0620, 0602, 0601, 0610, 0666, 0644};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        path = s_file(fx, "k", s_hex, 64, refused[i]);
        assert_int_equal(s_load(fx, path), EACCES);
        assert_non_null(strstr(fx->err, "chmod 600"));
    }
    const mode_t accepted[] = {0600, 0400, 0640, 0440}; // group may read
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        path = s_file(fx, "k", s_hex, 64, accepted[i]);
        assert_int_equal(s_load(fx, path), 0);
    }
}

//  The rule README states: others get nothing, the group may read (a
//  Kubernetes Secret with defaultMode 0440 or 0640 and fsGroup), only the
//  owner writes; the error names what is wrong.
static void test_load_key_file_modes(void **state)
{
    fixture_t *fx = *state;
    const struct {
        mode_t mode;
        const char *refusal; // NULL: accepted
    } cases[] = {
        {0600, NULL},
        {0640, NULL},
        {0440, NULL},
        {0400, NULL},
        {0644, "is open to others (mode 0644)"},
        {0666, "is open to others (mode 0666)"},
        {0604, "is open to others (mode 0604)"},
        {0641, "is open to others (mode 0641)"},
        {0660, "is writable by its group (mode 0660)"},
        {0620, "is writable by its group (mode 0620)"},
        {0610, "is executable by its group (mode 0610)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = s_file(fx, "k", s_hex, 64, cases[i].mode);
        if (!cases[i].refusal) {
            assert_int_equal(s_load(fx, path), 0);
            continue;
        }
        assert_int_equal(s_load(fx, path), EACCES);
        if (!strstr(fx->err, cases[i].refusal)) {
            fail_msg("mode %04o: '%s'", (unsigned)cases[i].mode, fx->err);
        }
        assert_non_null(strstr(fx->err, "only its owner and group read it"));
    }
}

static void test_load_accepts_hex_and_raw_forms(void **state)
{
    fixture_t *fx = *state;
    uint8_t key[KEYRING_KEY_SIZE];
    assert_int_equal(
        sodium_hex2bin(key, sizeof key, s_hex, 64, NULL, NULL, NULL), 0);
    keyring_t *reference = s_ring(key, NULL);
    uint8_t expect[2][KEYRING_RKEY_SIZE];
    assert_int_equal(keyring_routing_keys(reference, "c", "n", "t", expect), 1);

    char upper[65];
    for (size_t i = 0; i < 64; i++) {
        upper[i] = (char)toupper((unsigned char)s_hex[i]);
    }
    char with_lf[66], with_crlf[67];
    snprintf(with_lf, sizeof with_lf, "%s\n", s_hex);
    snprintf(with_crlf, sizeof with_crlf, "%s\r\n", s_hex);
    struct {
        const void *bytes;
        size_t len;
    } forms[] = {
        {s_hex, 64}, {with_lf, 65}, {with_crlf, 66}, {upper, 64}, {key, 32},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        const char *path = s_file(fx, "k", forms[i].bytes, forms[i].len, 0600);
        keyring_t *ring = keyring_new();
        assert_int_equal(keyring_load_file(ring, path, fx->err, sizeof fx->err),
                         0);
        uint8_t got[2][KEYRING_RKEY_SIZE];
        assert_int_equal(keyring_routing_keys(ring, "c", "n", "t", got), 1);
        assert_memory_equal(got[0], expect[0], KEYRING_RKEY_SIZE);
        keyring_destroy(&ring);
    }
    keyring_destroy(&reference);
}

static void test_load_refuses_bad_contents(void **state)
{
    fixture_t *fx = *state;
    char bad_hex[65];
    memcpy(bad_hex, s_hex, 65);
    bad_hex[10] = 'g';
    const char *path = s_file(fx, "k", bad_hex, 64, 0600);
    assert_int_equal(s_load(fx, path), EINVAL);
    assert_non_null(strstr(fx->err, "hex"));
    assert_null(strstr(fx->err, "0011223344")); // never quotes the contents

    char spaced[66];
    snprintf(spaced, sizeof spaced, " %s", s_hex);
    char two_lines[67];
    snprintf(two_lines, sizeof two_lines, "%s\n\n", s_hex);
    uint8_t raw[33];
    randombytes_buf(raw, sizeof raw);
    struct {
        const void *bytes;
        size_t len;
    } bad[] = {
        {"", 0},         // empty
        {s_hex, 63},     // one hex digit short
        {s_hex, 62},     // one byte short
        {spaced, 65},    // leading space
        {two_lines, 66}, // two newlines
        {raw, 31},       // raw, one byte short
        {raw, 33},       // raw, one byte long
        {s_hex, 32},     // half a hex key, which is 32 bytes long
        {"\n", 1},       // a bare newline
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = s_file(fx, "k", bad[i].bytes, bad[i].len, 0600);
        assert_int_equal(s_load(fx, path), EINVAL);
    }
    //  A long file is refused without being read whole.
    char long_text[1000];
    memset(long_text, 'a', sizeof long_text);
    path = s_file(fx, "k", long_text, sizeof long_text, 0600);
    assert_int_equal(s_load(fx, path), EINVAL);
}

static void test_load_refuses_missing_and_odd_files(void **state)
{
    fixture_t *fx = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/missing.key", fx->dir);
    assert_int_equal(s_load(fx, path), ENOENT);
    assert_non_null(strstr(fx->err, "No such file"));

    assert_int_equal(s_load(fx, fx->dir), EINVAL); // a directory
    assert_non_null(strstr(fx->err, "not a regular file"));
}

static void test_load_follows_symlinks(void **state)
{
    //  Kubernetes mounts a Secret's keys as symlinks into ..data/.
    fixture_t *fx = *state;
    const char *target = s_file(fx, "real.key", s_hex, 64, 0400);
    char link[128];
    snprintf(link, sizeof link, "%s/link.key", fx->dir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(s_load(fx, link), 0);
}

static void test_load_two_files_for_rotation(void **state)
{
    fixture_t *fx = *state;
    char current[128], extra[128], third[128];
    snprintf(current, sizeof current, "%s/current.key", fx->dir);
    snprintf(extra, sizeof extra, "%s/extra.key", fx->dir);
    snprintf(third, sizeof third, "%s/third.key", fx->dir);
    assert_int_equal(keyring_generate_file(current, NULL, 0), 0);
    assert_int_equal(keyring_generate_file(extra, NULL, 0), 0);
    assert_int_equal(keyring_generate_file(third, NULL, 0), 0);

    keyring_t *ring = keyring_new();
    assert_int_equal(keyring_load_file(ring, current, NULL, 0), 0);
    assert_int_equal(keyring_load_file(ring, extra, NULL, 0), 0);
    assert_int_equal(keyring_size(ring), 2);
    assert_int_equal(keyring_load_file(ring, third, fx->err, sizeof fx->err),
                     -1);
    assert_int_equal(errno, ENOSPC);
    assert_non_null(strstr(fx->err, third));

    //  What the ring seals, a ring of the current key alone opens.
    keyring_t *current_only = keyring_new();
    assert_int_equal(keyring_load_file(current_only, current, NULL, 0), 0);
    size_t len = 0;
    size_t index = 99;
    uint8_t *sealed = s_seal(ring, "x", 1, &len);
    assert_int_equal(s_open(current_only, sealed, len, &index), 0);
    assert_int_equal(index, 0);
    free(sealed);
    keyring_destroy(&current_only);
    keyring_destroy(&ring);
}

//  keyring_seal skips HChaCha20 per seal (keyring.h): what it writes must
//  still be XChaCha20-Poly1305 IETF under the seal subkey, byte for byte,
//  and what libsodium's XChaCha20 seals must open, with or without cache.
static void test_seal_is_xchacha20poly1305(void **state)
{
    (void)state;
    uint8_t key[KEYRING_KEY_SIZE], sub[KEYRING_KEY_SIZE];
    s_random_key(key);
    crypto_kdf_derive_from_key(sub, sizeof sub, 1, "roomcast", key);
    keyring_t *ring = s_ring(key, NULL);
    keyring_cache_t *cache = keyring_cache_new();
    assert_non_null(cache);
    uint8_t plain[3000], back[3000];
    randombytes_buf(plain, sizeof plain);
    for (size_t len = 0; len <= sizeof plain; len += 499) {
        size_t sealed_len = 0;
        uint8_t *sealed = s_seal(ring, plain, len, &sealed_len);
        unsigned long long mlen = 0;
        assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                             back, &mlen, NULL, sealed + KEYRING_NONCE_SIZE,
                             sealed_len - KEYRING_NONCE_SIZE, s_ad, 16, sealed,
                             sub),
                         0);
        assert_int_equal(mlen, len);
        assert_memory_equal(back, plain, len);
        free(sealed);

        //  the other way: libsodium seals, we open (a cache miss, then hits)
        uint8_t theirs[3000 + KEYRING_SEAL_OVERHEAD];
        unsigned long long clen = 0;
        randombytes_buf(theirs, KEYRING_NONCE_SIZE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(theirs + KEYRING_NONCE_SIZE,
                                                   &clen, plain, len, s_ad, 16,
                                                   NULL, theirs, sub);
        for (int round = 0; round < 3; round++) {
            size_t out_len = 0, index = 9;
            assert_int_equal(
                keyring_open_cached(ring, round ? cache : NULL, s_ad, 16,
                                    theirs, KEYRING_NONCE_SIZE + clen, back,
                                    sizeof back, &out_len, &index),
                0);
            assert_int_equal(out_len, len);
            assert_int_equal(index, 0);
            assert_memory_equal(back, plain, len);
        }
    }
    keyring_cache_destroy(&cache);
    keyring_cache_destroy(&cache); // twice is fine
    keyring_destroy(&ring);
}

//  A cached subkey belongs to the ring and keys it was made under: after a
//  rotation (keyring_swap) the old key's subkey must not open anything.
static void test_cache_follows_key_changes(void **state)
{
    (void)state;
    uint8_t k1[KEYRING_KEY_SIZE], k2[KEYRING_KEY_SIZE];
    s_random_key(k1);
    s_random_key(k2);
    keyring_t *sender = s_ring(k1, NULL);
    keyring_t *receiver = s_ring(k1, NULL);
    keyring_cache_t *cache = keyring_cache_new();
    const char msg[] = "hello";
    size_t sealed_len = 0, out_len = 0;
    uint8_t back[16];
    uint8_t *sealed = s_seal(sender, msg, sizeof msg, &sealed_len);
    assert_int_equal(keyring_open_cached(receiver, cache, s_ad, 16, sealed,
                                         sealed_len, back, sizeof back,
                                         &out_len, NULL),
                     0);
    keyring_t *fresh = s_ring(k2, NULL);
    keyring_swap(receiver, fresh); // receiver holds k2 only now
    assert_int_equal(keyring_open_cached(receiver, cache, s_ad, 16, sealed,
                                         sealed_len, back, sizeof back,
                                         &out_len, NULL),
                     -1);
    assert_int_equal(errno, EBADMSG);
    //  and a key added to a ring is seen too (k1 as the extra key)
    assert_int_equal(keyring_add(receiver, k1), 0);
    size_t index = 0;
    assert_int_equal(keyring_open_cached(receiver, cache, s_ad, 16, sealed,
                                         sealed_len, back, sizeof back,
                                         &out_len, &index),
                     0);
    assert_int_equal(index, 1);
    free(sealed);
    keyring_cache_destroy(&cache);
    keyring_destroy(&fresh);
    keyring_destroy(&receiver);
    keyring_destroy(&sender);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_is_xchacha20poly1305),
        cmocka_unit_test(test_cache_follows_key_changes),
        cmocka_unit_test(test_new_and_destroy_twice),
        cmocka_unit_test(test_holds_at_most_two_keys),
        cmocka_unit_test(test_round_trip_every_byte_value),
        cmocka_unit_test(test_round_trip_empty_and_one_mib),
        cmocka_unit_test(test_seal_in_place),
        cmocka_unit_test(test_seal_refuses_empty_ring_and_small_buffer),
        cmocka_unit_test(test_nonces_never_repeat),
        cmocka_unit_test(test_wrong_key_does_not_open),
        cmocka_unit_test(test_wrong_associated_data_does_not_open),
        cmocka_unit_test(test_any_tampered_byte_fails),
        cmocka_unit_test(test_truncated_at_every_length_fails),
        cmocka_unit_test(test_rotation_steps_interoperate),
        cmocka_unit_test(test_routing_keys_are_stable_and_distinct),
        cmocka_unit_test(test_routing_keys_follow_key_order),
        cmocka_unit_test(test_fingerprints_identify_keys),
        cmocka_unit_test_setup_teardown(test_generate_file_round_trip, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_generate_file_never_overwrites,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_files_open_to_others,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_key_file_modes, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_load_accepts_hex_and_raw_forms,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_bad_contents, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_missing_and_odd_files,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_follows_symlinks, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_load_two_files_for_rotation,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
