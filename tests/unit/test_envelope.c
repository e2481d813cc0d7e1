/*  Unit tests: envelope (the sealed mesh message). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>
#include <sodium.h>

#include "envelope.h"

#define MIB     (1024 * 1024)
#define CHANNEL "prod"

typedef struct {
    uint8_t key[KEYRING_KEY_SIZE];
    keyring_t *ring;                 // [key]
    rkeys_t *rk;                     // ring's routing keys on CHANNEL
    uint8_t rkey[KEYRING_RKEY_SIZE]; // of (CHANNEL, "chat", "room1")
    envelope_t env;                  // a valid message on that topic
} fixture_t;

static const uint8_t s_node[ENVELOPE_ID_SIZE] = "node-0123456789";
static const uint8_t s_instance[ENVELOPE_ID_SIZE] = "inst-0123456789";

static void s_rkey_of(const keyring_t *ring, const char *channel,
                      const char *ns, const char *topic,
                      uint8_t rkey[KEYRING_RKEY_SIZE])
{
    uint8_t all[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    assert_true(keyring_routing_keys(ring, channel, ns, topic, all) > 0);
    memcpy(rkey, all[0], KEYRING_RKEY_SIZE);
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(fixture_t));
    randombytes_buf(fx->key, sizeof fx->key);
    fx->ring = keyring_new();
    if (keyring_add(fx->ring, fx->key) != 0) {
        return -1;
    }
    fx->rk = rkeys_new(fx->ring, CHANNEL);
    if (!fx->rk) {
        return -1;
    }
    s_rkey_of(fx->ring, CHANNEL, "chat", "room1", fx->rkey);
    envelope_t env = {
        .sequence = 7,
        .event_id = 1001,
        .ns = "chat",
        .ns_len = 4,
        .topic = "room1",
        .topic_len = 5,
        .kind = ENVELOPE_KIND_TEXT,
        .payload = (const uint8_t *)"hello",
        .payload_len = 5,
        .timestamp_ms = 1700000000123,
    };
    memcpy(env.origin_node, s_node, ENVELOPE_ID_SIZE);
    memcpy(env.origin_instance, s_instance, ENVELOPE_ID_SIZE);
    fx->env = env;
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    rkeys_destroy(&fx->rk);
    keyring_destroy(&fx->ring);
    free(fx);
    return 0;
}

//  envelope_open as a node with ring on channel would (a fresh cache).
static int s_open_with(const keyring_t *ring, const char *channel,
                       const uint8_t *rkey, size_t rkey_len,
                       const uint8_t *sealed, size_t len, size_t max_payload,
                       envelope_opened_t *out)
{
    rkeys_t *rk = rkeys_new(ring, channel);
    assert_non_null(rk);
    int rc = envelope_open(rk, rkey, rkey_len, sealed, len, max_payload, out);
    int err = errno;
    rkeys_destroy(&rk);
    errno = err;
    return rc;
}

//  Opens sealed as the fixture's node would; returns 0 or errno.
static int s_open(const fixture_t *fx, const uint8_t *rkey,
                  const uint8_t *sealed, size_t len)
{
    envelope_opened_t opened;
    if (envelope_open(fx->rk, rkey, KEYRING_RKEY_SIZE, sealed, len, MIB,
                      &opened) != 0) {
        int err = errno;
        assert_null(opened.block_);
        envelope_opened_release(&opened); // harmless on a failed open
        return err;
    }
    envelope_opened_release(&opened);
    return 0;
}

static void s_assert_same(const envelope_t *got, const envelope_t *want)
{
    assert_memory_equal(got->origin_node, want->origin_node, ENVELOPE_ID_SIZE);
    assert_memory_equal(got->origin_instance, want->origin_instance,
                        ENVELOPE_ID_SIZE);
    assert_int_equal(got->sequence, want->sequence);
    assert_int_equal(got->event_id, want->event_id);
    assert_int_equal(got->ns_len, want->ns_len);
    assert_memory_equal(got->ns, want->ns, want->ns_len);
    assert_int_equal(got->ns[got->ns_len], '\0');
    assert_int_equal(got->topic_len, want->topic_len);
    assert_memory_equal(got->topic, want->topic, want->topic_len);
    assert_int_equal(got->topic[got->topic_len], '\0');
    assert_int_equal(got->kind, want->kind);
    assert_int_equal(got->payload_len, want->payload_len);
    if (want->payload_len > 0) {
        assert_memory_equal(got->payload, want->payload, want->payload_len);
    }
    assert_int_equal(got->timestamp_ms, want->timestamp_ms);
}

//  Seals env, opens it again, and compares.
static void s_round_trip(fixture_t *fx, const envelope_t *env,
                         size_t max_payload)
{
    uint8_t rkey[KEYRING_RKEY_SIZE];
    char ns[ENVELOPE_NAME_MAX + 1] = {0}, topic[ENVELOPE_NAME_MAX + 1] = {0};
    if (env->ns_len > 0) {
        memcpy(ns, env->ns, env->ns_len);
    }
    memcpy(topic, env->topic, env->topic_len);
    s_rkey_of(fx->ring, CHANNEL, ns, topic, rkey);

    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, env, rkey, &sealed, &len), 0);
    assert_non_null(sealed);
    assert_int_equal(sealed[0], ENVELOPE_FORMAT);
    assert_true(len <= ENVELOPE_MAX_SEALED(env->payload_len));

    envelope_opened_t opened;
    assert_int_equal(envelope_open(fx->rk, rkey, sizeof rkey, sealed, len,
                                   max_payload, &opened),
                     0);
    //  The opened message owns its memory: the frame can go.
    memset(sealed, 0, len);
    free(sealed);
    s_assert_same(&opened.env, env);
    assert_int_equal(opened.key_index, 0);
    envelope_opened_release(&opened);
    assert_null(opened.env.payload);
    envelope_opened_release(&opened); // twice is fine
}

// --- round trips -------------------------------------------------------------

static void test_round_trip_keeps_every_field(void **state)
{
    fixture_t *fx = *state;
    s_round_trip(fx, &fx->env, MIB);

    envelope_t big_numbers = fx->env;
    big_numbers.sequence = UINT64_MAX;
    big_numbers.event_id = UINT64_MAX - 1;
    big_numbers.timestamp_ms = 0;
    big_numbers.kind = ENVELOPE_KIND_BINARY;
    s_round_trip(fx, &big_numbers, MIB);
}

static void test_round_trip_every_byte_value(void **state)
{
    fixture_t *fx = *state;
    uint8_t payload[256];
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)i;
    }
    envelope_t env = fx->env;
    env.kind = ENVELOPE_KIND_BINARY;
    env.payload = payload;
    env.payload_len = sizeof payload;
    s_round_trip(fx, &env, sizeof payload);

    //  Text payloads are not checked or changed either.
    env.kind = ENVELOPE_KIND_TEXT;
    s_round_trip(fx, &env, sizeof payload);
}

static void test_round_trip_empty_and_one_mib_payloads(void **state)
{
    fixture_t *fx = *state;
    envelope_t env = fx->env;
    env.payload = NULL;
    env.payload_len = 0;
    s_round_trip(fx, &env, 0);

    uint8_t *big = malloc(MIB);
    randombytes_buf(big, MIB);
    env.payload = big;
    env.payload_len = MIB;
    env.kind = ENVELOPE_KIND_BINARY;
    s_round_trip(fx, &env, MIB);
    free(big);
}

static void test_round_trip_name_limits(void **state)
{
    fixture_t *fx = *state;
    char longest[ENVELOPE_NAME_MAX];
    memset(longest, 'n', sizeof longest);
    envelope_t env = fx->env;
    env.ns = longest;
    env.ns_len = sizeof longest;
    env.topic = longest;
    env.topic_len = sizeof longest;
    s_round_trip(fx, &env, MIB);

    env.ns = NULL; // an empty namespace needs no pointer
    env.ns_len = 0;
    env.topic = "t";
    env.topic_len = 1;
    s_round_trip(fx, &env, MIB);

    //  Names need not be NUL terminated for sealing.
    env.ns = "chatXXX";
    env.ns_len = 4;
    env.topic = "room1XXX";
    env.topic_len = 5;
    s_round_trip(fx, &env, MIB);
}

static void test_sealed_size_stays_within_the_bound(void **state)
{
    fixture_t *fx = *state;
    char longest[ENVELOPE_NAME_MAX];
    memset(longest, 'x', sizeof longest);
    envelope_t env = fx->env;
    env.ns = longest;
    env.ns_len = sizeof longest;
    env.topic = longest;
    env.topic_len = sizeof longest;
    env.sequence = env.event_id = env.timestamp_ms = UINT64_MAX;
    uint8_t rkey[KEYRING_RKEY_SIZE] = {0};
    const size_t sizes[] = {0, 1, 255, 256, 65535, 65536, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *payload = calloc(1, sizes[i] + 1);
        env.payload = payload;
        env.payload_len = sizes[i];
        uint8_t *sealed = NULL;
        size_t len = 0;
        assert_int_equal(envelope_seal(fx->ring, &env, rkey, &sealed, &len), 0);
        assert_true(len <= ENVELOPE_MAX_SEALED(sizes[i]));
        free(sealed);
        free(payload);
    }
}

// --- what sealing refuses ----------------------------------------------------

static void test_seal_refuses_bad_messages(void **state)
{
    fixture_t *fx = *state;
    char too_long[ENVELOPE_NAME_MAX + 1];
    memset(too_long, 'x', sizeof too_long);
    uint8_t *sealed = (uint8_t *)"untouched";
    size_t len = 99;
    envelope_t env;

    env = fx->env;
    env.topic_len = 0;
    assert_int_equal(envelope_seal(fx->ring, &env, fx->rkey, &sealed, &len),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_null(sealed);
    assert_int_equal(len, 0);

    env = fx->env;
    env.topic = too_long;
    env.topic_len = sizeof too_long;
    assert_int_equal(envelope_seal(fx->ring, &env, fx->rkey, &sealed, &len),
                     -1);
    assert_int_equal(errno, EINVAL);

    env = fx->env;
    env.ns = too_long;
    env.ns_len = sizeof too_long;
    assert_int_equal(envelope_seal(fx->ring, &env, fx->rkey, &sealed, &len),
                     -1);
    assert_int_equal(errno, EINVAL);

    env = fx->env;
    env.topic = "ro\0m1";
    assert_int_equal(envelope_seal(fx->ring, &env, fx->rkey, &sealed, &len),
                     -1);
    assert_int_equal(errno, EINVAL);

    env = fx->env;
    env.kind = 2;
    assert_int_equal(envelope_seal(fx->ring, &env, fx->rkey, &sealed, &len),
                     -1);
    assert_int_equal(errno, EINVAL);

    keyring_t *empty = keyring_new();
    assert_int_equal(envelope_seal(empty, &fx->env, fx->rkey, &sealed, &len),
                     -1);
    assert_int_equal(errno, ENOKEY);
    keyring_destroy(&empty);
}

// --- what opening refuses: does not open (EBADMSG) ---------------------------

static void test_wrong_key_does_not_open(void **state)
{
    fixture_t *fx = *state;
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, fx->rkey, &sealed, &len),
                     0);

    fixture_t other = *fx;
    uint8_t key[KEYRING_KEY_SIZE];
    randombytes_buf(key, sizeof key);
    other.ring = keyring_new();
    assert_int_equal(keyring_add(other.ring, key), 0);
    other.rk = rkeys_new(other.ring, CHANNEL);
    assert_int_equal(s_open(&other, fx->rkey, sealed, len), EBADMSG);
    rkeys_destroy(&other.rk);
    keyring_destroy(&other.ring);
    free(sealed);
}

static void test_rotation_opens_with_the_extra_key(void **state)
{
    fixture_t *fx = *state; // fx->ring is [old]
    uint8_t new_key[KEYRING_KEY_SIZE];
    randombytes_buf(new_key, sizeof new_key);
    keyring_t *new_old = keyring_new(); // step 2: [new, old]
    assert_int_equal(keyring_add(new_old, new_key), 0);
    assert_int_equal(keyring_add(new_old, fx->key), 0);
    keyring_t *new_only = keyring_new(); // step 3: [new]
    assert_int_equal(keyring_add(new_only, new_key), 0);

    //  An [old] node seals with old; the [new, old] node opens with key 1,
    //  and frame 1 is its routing key 1.
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, fx->rkey, &sealed, &len),
                     0);
    uint8_t rkeys[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    assert_int_equal(
        keyring_routing_keys(new_old, CHANNEL, "chat", "room1", rkeys), 2);
    assert_memory_equal(rkeys[1], fx->rkey, KEYRING_RKEY_SIZE);
    envelope_opened_t opened;
    assert_int_equal(s_open_with(new_old, CHANNEL, fx->rkey, KEYRING_RKEY_SIZE,
                                 sealed, len, MIB, &opened),
                     0);
    assert_int_equal(opened.key_index, 1);
    s_assert_same(&opened.env, &fx->env);
    envelope_opened_release(&opened);
    assert_int_equal(s_open_with(new_only, CHANNEL, fx->rkey, KEYRING_RKEY_SIZE,
                                 sealed, len, MIB, &opened),
                     -1);
    assert_int_equal(errno, EBADMSG);
    free(sealed);

    //  The [new, old] node seals with new, under routing key 0: an [old]
    //  node cannot open it, a [new] node can.
    assert_int_equal(envelope_seal(new_old, &fx->env, rkeys[0], &sealed, &len),
                     0);
    assert_int_equal(s_open(fx, rkeys[0], sealed, len), EBADMSG);
    assert_int_equal(s_open_with(new_only, CHANNEL, rkeys[0], KEYRING_RKEY_SIZE,
                                 sealed, len, MIB, &opened),
                     0);
    assert_int_equal(opened.key_index, 0);
    envelope_opened_release(&opened);
    free(sealed);
    keyring_destroy(&new_old);
    keyring_destroy(&new_only);
}

static void test_any_tampered_byte_fails(void **state)
{
    fixture_t *fx = *state;
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, fx->rkey, &sealed, &len),
                     0);
    const uint8_t flips[] = {0x01, 0x10, 0x80, 0xff};
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            sealed[pos] ^= flips[f];
            //  the format byte is outside the seal: another format is
            //  refused by name before anything is decrypted
            assert_int_equal(s_open(fx, fx->rkey, sealed, len),
                             pos == 0 ? ENOPROTOOPT : EBADMSG);
            sealed[pos] ^= flips[f];
        }
    }
    //  And frame 1, the associated data.
    uint8_t rkey[KEYRING_RKEY_SIZE];
    for (size_t pos = 0; pos < KEYRING_RKEY_SIZE; pos++) {
        memcpy(rkey, fx->rkey, sizeof rkey);
        rkey[pos] ^= 0x01;
        assert_int_equal(s_open(fx, rkey, sealed, len), EBADMSG);
    }
    assert_int_equal(s_open(fx, fx->rkey, sealed, len), 0);
    free(sealed);
}

static void test_truncated_at_every_length_fails(void **state)
{
    fixture_t *fx = *state;
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, fx->rkey, &sealed, &len),
                     0);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut ? cut : 1); // exact size for ASan
        memcpy(part, sealed, cut);
        assert_int_equal(s_open(fx, fx->rkey, part, cut), EBADMSG);
        free(part);
    }
    free(sealed);
}

static void test_routing_key_is_bound_to_the_body(void **state)
{
    fixture_t *fx = *state;
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, fx->rkey, &sealed, &len),
                     0);

    //  Replayed under another topic's routing key: does not open.
    uint8_t other[KEYRING_RKEY_SIZE];
    s_rkey_of(fx->ring, CHANNEL, "chat", "room2", other);
    assert_int_equal(s_open(fx, other, sealed, len), EBADMSG);

    //  Frame 1 of the wrong size.
    envelope_opened_t opened;
    for (size_t rkey_len = 0; rkey_len <= KEYRING_RKEY_SIZE + 1; rkey_len++) {
        if (rkey_len == KEYRING_RKEY_SIZE) {
            continue;
        }
        uint8_t rkey[KEYRING_RKEY_SIZE + 1] = {0};
        memcpy(rkey, fx->rkey, KEYRING_RKEY_SIZE);
        assert_int_equal(
            envelope_open(fx->rk, rkey, rkey_len, sealed, len, MIB, &opened),
            -1);
        assert_int_equal(errno, EBADMSG);
    }
    free(sealed);
}

// --- opens but is refused (EPROTO) -------------------------------------------

static void test_body_that_does_not_match_frame_1_is_refused(void **state)
{
    fixture_t *fx = *state;
    //  A buggy or hostile sender seals a "room1" body under room2's key.
    uint8_t room2[KEYRING_RKEY_SIZE];
    s_rkey_of(fx->ring, CHANNEL, "chat", "room2", room2);
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, room2, &sealed, &len),
                     0);
    assert_int_equal(s_open(fx, room2, sealed, len), EPROTO);
    free(sealed);
}

//  The routing-key cache keeps names apart: with ("ab", "c") and ("a",
//  "bc") both cached, a body of one under the other's key is refused, and
//  each opens under its own, again and again (cache hits).
static void test_cached_routing_keys_keep_names_apart(void **state)
{
    fixture_t *fx = *state;
    const char *names[2][2] = {{"ab", "c"}, {"a", "bc"}};
    uint8_t rkey[2][KEYRING_RKEY_SIZE];
    uint8_t *sealed[2];
    size_t len[2];
    for (int i = 0; i < 2; i++) {
        s_rkey_of(fx->ring, CHANNEL, names[i][0], names[i][1], rkey[i]);
        envelope_t env = fx->env;
        env.ns = names[i][0];
        env.ns_len = strlen(names[i][0]);
        env.topic = names[i][1];
        env.topic_len = strlen(names[i][1]);
        assert_int_equal(
            envelope_seal(fx->ring, &env, rkey[i], &sealed[i], &len[i]), 0);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 2; i++) {
            assert_int_equal(s_open(fx, rkey[i], sealed[i], len[i]), 0);
        }
    }
    for (int i = 0; i < 2; i++) {
        uint8_t *forged = NULL;
        size_t flen = 0;
        envelope_t env = fx->env;
        env.ns = names[i][0];
        env.ns_len = strlen(names[i][0]);
        env.topic = names[i][1];
        env.topic_len = strlen(names[i][1]);
        assert_int_equal(
            envelope_seal(fx->ring, &env, rkey[1 - i], &forged, &flen), 0);
        assert_int_equal(s_open(fx, rkey[1 - i], forged, flen), EPROTO);
        free(forged);
        free(sealed[i]);
    }
}

static void test_other_channel_is_refused(void **state)
{
    fixture_t *fx = *state;
    uint8_t staging[KEYRING_RKEY_SIZE];
    s_rkey_of(fx->ring, "staging", "chat", "room1", staging);
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, staging, &sealed, &len),
                     0);
    //  Same cluster key, so it opens; but we are on CHANNEL, not staging.
    assert_int_equal(s_open(fx, staging, sealed, len), EPROTO);
    envelope_opened_t opened;
    assert_int_equal(s_open_with(fx->ring, "staging", staging,
                                 KEYRING_RKEY_SIZE, sealed, len, MIB, &opened),
                     0);
    envelope_opened_release(&opened);
    free(sealed);
}

//  A body spec for hand-made bodies; s_body_ok() is a valid one.
typedef struct {
    int fields;          // array length announced
    int written;         // fields written, if not 0 (else fields)
    int nil_at;          // index of a field written as nil, or -1
    uint64_t version;    //
    size_t node_len;     // bytes of origin_node
    const char *ns;      // NUL-terminated unless ns_len is set
    size_t ns_len;       //
    const char *topic;   //
    size_t topic_len;    //
    uint64_t kind;       //
    size_t payload_len;  // of 'p' bytes
    bool payload_as_str; // payload written as str, not bin
    bool negative_seq;   // sequence written as -1
    bool trailing;       // one byte after the array
} body_t;

static body_t s_body_ok(void)
{
    body_t body = {
        .fields = 10,
        .nil_at = -1,
        .version = 1,
        .node_len = ENVELOPE_ID_SIZE,
        .ns = "chat",
        .ns_len = 4,
        .topic = "room1",
        .topic_len = 5,
        .kind = 0,
        .payload_len = 3,
    };
    return body;
}

static void s_pack_field(msgpack_packer *pk, const body_t *body, int i)
{
    static const uint8_t bytes[ENVELOPE_ID_SIZE + 1] = "0123456789abcdefg";
    static const char pay[64] = "ppppppppppppppppppppppppppppppppppppppppppp";
    if (i == body->nil_at) {
        msgpack_pack_nil(pk);
        return;
    }
    switch (i) {
        case 0:
            msgpack_pack_uint64(pk, body->version);
            break;
        case 1:
            msgpack_pack_bin_with_body(pk, bytes, body->node_len);
            break;
        case 2:
            msgpack_pack_bin_with_body(pk, bytes, ENVELOPE_ID_SIZE);
            break;
        case 3:
            if (body->negative_seq) {
                msgpack_pack_int64(pk, -1);
            } else {
                msgpack_pack_uint64(pk, 5);
            }
            break;
        case 4:
            msgpack_pack_uint64(pk, 6);
            break;
        case 5:
            msgpack_pack_str_with_body(pk, body->ns, body->ns_len);
            break;
        case 6:
            msgpack_pack_str_with_body(pk, body->topic, body->topic_len);
            break;
        case 7:
            msgpack_pack_uint64(pk, body->kind);
            break;
        case 8:
            if (body->payload_as_str) {
                msgpack_pack_str_with_body(pk, pay, body->payload_len);
            } else {
                msgpack_pack_bin_with_body(pk, pay, body->payload_len);
            }
            break;
        default:
            msgpack_pack_uint64(pk, 42);
            break;
    }
}

//  Seals raw body bytes the way envelope_seal frames them; returns errno of
//  opening them under the routing key of (CHANNEL, ns, topic), or 0.
static int s_open_raw(fixture_t *fx, const void *body, size_t len,
                      const char *ns, const char *topic)
{
    uint8_t rkey[KEYRING_RKEY_SIZE];
    s_rkey_of(fx->ring, CHANNEL, ns, topic, rkey);
    size_t cap = 1 + KEYRING_SEAL_OVERHEAD + len;
    uint8_t *sealed = malloc(cap);
    size_t sealed_len = 0;
    sealed[0] = ENVELOPE_FORMAT;
    assert_int_equal(keyring_seal(fx->ring, rkey, sizeof rkey, body, len,
                                  sealed + 1, cap - 1, &sealed_len),
                     0);
    envelope_opened_t opened;
    int rc = envelope_open(fx->rk, rkey, sizeof rkey, sealed, 1 + sealed_len,
                           32, &opened);
    int err = rc == 0 ? 0 : errno;
    envelope_opened_release(&opened);
    free(sealed);
    return err;
}

static int s_open_body(fixture_t *fx, const body_t *body)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)body->fields);
    int written = body->written ? body->written : body->fields;
    for (int i = 0; i < written; i++) {
        s_pack_field(&pk, body, i);
    }
    if (body->trailing) {
        msgpack_pack_nil(&pk);
    }
    char ns[ENVELOPE_NAME_MAX + 2] = {0}, topic[ENVELOPE_NAME_MAX + 2] = {0};
    memcpy(ns, body->ns, body->ns_len <= ENVELOPE_NAME_MAX ? body->ns_len : 0);
    memcpy(topic, body->topic,
           body->topic_len <= ENVELOPE_NAME_MAX ? body->topic_len : 0);
    int err = s_open_raw(fx, sbuf.data, sbuf.size, ns, topic);
    msgpack_sbuffer_destroy(&sbuf);
    return err;
}

static void test_hand_made_valid_body_opens(void **state)
{
    fixture_t *fx = *state;
    body_t body = s_body_ok();
    assert_int_equal(s_open_body(fx, &body), 0);
    body.ns = "";
    body.ns_len = 0;
    assert_int_equal(s_open_body(fx, &body), 0);
}

static void test_malformed_bodies_are_refused(void **state)
{
    fixture_t *fx = *state;
    char long_name[ENVELOPE_NAME_MAX + 1];
    memset(long_name, 'x', sizeof long_name);
    body_t body;

    for (int i = 0; i < 10; i++) { // each field of the wrong type
        body = s_body_ok();
        body.nil_at = i;
        assert_int_equal(s_open_body(fx, &body), EPROTO);
    }
    const int lengths[] = {0, 1, 9, 11, 15};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        body = s_body_ok();
        body.fields = lengths[i];
        assert_int_equal(s_open_body(fx, &body), EPROTO);
    }
    body = s_body_ok();
    body.written = 9; // announces ten, holds nine
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.version = 2;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.node_len = 15;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.node_len = 17;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.kind = 2;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.negative_seq = true;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.topic_len = 0;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.topic = long_name;
    body.topic_len = sizeof long_name;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.ns = long_name;
    body.ns_len = sizeof long_name;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.topic = "room1\0x";
    body.topic_len = 7;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.payload_as_str = true;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
    body = s_body_ok();
    body.trailing = true;
    assert_int_equal(s_open_body(fx, &body), EPROTO);
}

static void test_payload_over_the_limit_is_refused(void **state)
{
    fixture_t *fx = *state;
    body_t body = s_body_ok();
    body.payload_len = 32; // s_open_raw's limit
    assert_int_equal(s_open_body(fx, &body), 0);
    body.payload_len = 33;
    assert_int_equal(s_open_body(fx, &body), EMSGSIZE);

    //  Through the API: max_payload 4, payload 5.
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(envelope_seal(fx->ring, &fx->env, fx->rkey, &sealed, &len),
                     0);
    envelope_opened_t opened;
    assert_int_equal(envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, sealed,
                                   len, 4, &opened),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    free(sealed);

    //  A frame too long for any valid message is refused unopened.
    size_t huge = ENVELOPE_MAX_SEALED(10) + 1;
    uint8_t *junk = calloc(1, huge);
    junk[0] = ENVELOPE_FORMAT;
    assert_int_equal(envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, junk,
                                   huge, 10, &opened),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    free(junk);
}

static void test_hostile_msgpack_is_refused_cheaply(void **state)
{
    fixture_t *fx = *state;
    //  Headers that would make msgpack-c allocate gigabytes up front.
    const uint8_t array32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(s_open_raw(fx, array32, sizeof array32, "c", "t"), EPROTO);
    assert_int_equal(s_open_raw(fx, map32, sizeof map32, "c", "t"), EPROTO);
    //  ... or inside a valid header, in place of the version.
    const uint8_t nested[] = {0x9a, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(s_open_raw(fx, nested, sizeof nested, "c", "t"), EPROTO);
    const uint8_t fixarray[] = {0x9a, 0x91, 0x01};
    assert_int_equal(s_open_raw(fx, fixarray, sizeof fixarray, "c", "t"),
                     EPROTO);
    //  A str32 claiming 4 GiB in 10 bytes.
    const uint8_t long_str[] = {0x9a, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x41};
    assert_int_equal(s_open_raw(fx, long_str, sizeof long_str, "c", "t"),
                     EPROTO);
    //  A valid header of the wrong form (array16 of 10) and an empty body.
    const uint8_t array16[] = {0xdc, 0x00, 0x0a};
    assert_int_equal(s_open_raw(fx, array16, sizeof array16, "c", "t"), EPROTO);
    assert_int_equal(s_open_raw(fx, "", 0, "c", "t"), EPROTO);
}

static void test_wide_integer_encodings_are_accepted(void **state)
{
    fixture_t *fx = *state;
    //  Another encoder may write small numbers wide: uint64 1 as version,
    //  uint16 0 as kind, bin16 ids, str16 names.
    // clang-format off
    const uint8_t body[] = {
        0x9a,                                                 // array of 10
        0xcf, 0, 0, 0, 0, 0, 0, 0, 1,                         // version 1
        0xc5, 0, 16, '0', '1', '2', '3', '4', '5', '6', '7', // node
        '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',              //
        0xc4, 16, '0', '1', '2', '3', '4', '5', '6', '7',    // instance
        '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',              //
        0xce, 0, 0, 0, 5,                                     // sequence 5
        0x06,                                                 // event 6
        0xda, 0, 4, 'c', 'h', 'a', 't',                       // ns
        0xd9, 5, 'r', 'o', 'o', 'm', '1',                     // topic
        0xcd, 0, 1,                                           // kind 1
        0xc6, 0, 0, 0, 2, 'h', 'i',                           // payload
        0xcc, 42,                                             // timestamp
    };
    // clang-format on
    assert_int_equal(s_open_raw(fx, body, sizeof body, "chat", "room1"), 0);
}

//  --- format 2: batches ---------------------------------------------------

static const uint8_t s_other[ENVELOPE_ID_SIZE] = "othr-0123456789";

//  Seals a batch of n messages on (ns, topic) under fx's ring: message i is
//  from s_instance for i % 7 < 4 else s_other, sequence 100 + i, binary
//  when i is odd, payload i % 300 bytes of value i. Caller frees.
static uint8_t *s_batch(fixture_t *fx, envelope_batch_t *b, size_t n,
                        const char *ns, const char *topic, size_t *len)
{
    static uint8_t payload[300];
    uint8_t rkey[KEYRING_RKEY_SIZE];
    s_rkey_of(fx->ring, CHANNEL, ns, topic, rkey);
    assert_int_equal(
        envelope_batch_start(b, s_node, ns, strlen(ns), topic, strlen(topic)),
        0);
    for (size_t i = 0; i < n; i++) {
        memset(payload, (int)(i & 0xff), sizeof payload);
        assert_true(envelope_batch_fits(b, i % 300));
        assert_int_equal(envelope_batch_add(b, i % 7 < 4 ? s_instance : s_other,
                                            100 + i, (uint8_t)(i % 2), payload,
                                            i % 300),
                         0);
    }
    assert_int_equal(b->count, n);
    uint8_t *sealed = NULL;
    assert_int_equal(envelope_batch_seal(b, fx->ring, rkey, 5000, 1700000000999,
                                         &sealed, len),
                     0);
    assert_int_equal(b->count, 0);
    assert_int_equal(sealed[0], ENVELOPE_FORMAT2);
    return sealed;
}

//  Opens and checks every message of a batch made by s_batch.
static void s_check_batch(fixture_t *fx, const uint8_t *sealed, size_t len,
                          size_t n, const char *topic)
{
    uint8_t rkey[KEYRING_RKEY_SIZE];
    s_rkey_of(fx->ring, CHANNEL, "chat", topic, rkey);
    envelope_opened_t o;
    assert_int_equal(
        envelope_open(fx->rk, rkey, sizeof rkey, sealed, len, MIB, &o), 0);
    assert_int_equal(o.format, ENVELOPE_FORMAT2);
    assert_int_equal(o.count, n);
    size_t i = 0;
    do {
        const envelope_t *e = &o.env;
        assert_int_equal(o.index, i);
        assert_memory_equal(e->origin_node, s_node, ENVELOPE_ID_SIZE);
        assert_memory_equal(e->origin_instance,
                            i % 7 < 4 ? s_instance : s_other, ENVELOPE_ID_SIZE);
        assert_int_equal(e->sequence, 100 + i);
        assert_int_equal(e->event_id, 5000 + i);
        assert_string_equal(e->ns, "chat");
        assert_string_equal(e->topic, topic);
        assert_int_equal(e->kind, i % 2);
        assert_int_equal(e->payload_len, i % 300);
        for (size_t k = 0; k < e->payload_len; k++) {
            assert_int_equal(e->payload[k], i & 0xff);
        }
        assert_int_equal(e->timestamp_ms, 1700000000999);
        i++;
    } while (envelope_opened_next(&o));
    assert_int_equal(i, n);
    assert_false(envelope_opened_next(&o)); // stays at the end
    assert_int_equal(o.index, n - 1);
    envelope_opened_release(&o);
}

static void test_batch_round_trip_one_and_many(void **state)
{
    fixture_t *fx = *state;
    envelope_batch_t b = {0};
    size_t sizes[] = {1, 2, 7, 100, 220};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t len = 0;
        uint8_t *sealed = s_batch(fx, &b, sizes[k], "chat", "room1", &len);
        assert_true(len <= ENVELOPE_MAX_SEALED(300));
        s_check_batch(fx, sealed, len, sizes[k], "room1");
        free(sealed);
    }
    envelope_batch_release(&b);
    envelope_batch_release(&b); // twice is fine
}

//  A run of one app's messages names it once: a batch of 64 B messages
//  from one instance costs about 70 bytes a message, not 90.
static void test_batch_names_an_instance_once_per_run(void **state)
{
    fixture_t *fx = *state;
    envelope_batch_t b = {0};
    uint8_t payload[64] = {0};
    assert_int_equal(envelope_batch_start(&b, s_node, "chat", 4, "room1", 5),
                     0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(envelope_batch_add(&b, s_instance, (uint64_t)i + 1,
                                            ENVELOPE_KIND_BINARY, payload,
                                            sizeof payload),
                         0);
    }
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(
        envelope_batch_seal(&b, fx->ring, fx->rkey, 1, 1, &sealed, &len), 0);
    assert_true(len < 100 * 70 + 100);
    free(sealed);
    envelope_batch_release(&b);
}

static void test_batch_limits(void **state)
{
    fixture_t *fx = *state;
    envelope_batch_t b = {0};
    uint8_t *big = calloc(1, ENVELOPE_BATCH_BYTES * 2);
    assert_int_equal(envelope_batch_start(&b, s_node, "chat", 4, "room1", 5),
                     0);
    //  an empty batch takes anything: a large payload goes alone
    assert_true(envelope_batch_fits(&b, ENVELOPE_BATCH_BYTES * 2));
    assert_int_equal(
        envelope_batch_add(&b, s_instance, 1, 0, big, ENVELOPE_BATCH_BYTES * 2),
        0);
    assert_false(envelope_batch_fits(&b, 0));
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(
        envelope_batch_seal(&b, fx->ring, fx->rkey, 1, 1, &sealed, &len), 0);
    assert_true(len <= ENVELOPE_MAX_SEALED(ENVELOPE_BATCH_BYTES * 2));
    free(sealed);
    //  bytes: a batch stays within ENVELOPE_BATCH_BYTES of body
    assert_int_equal(envelope_batch_start(&b, s_node, "chat", 4, "room1", 5),
                     0);
    size_t n = 0;
    while (envelope_batch_fits(&b, 1000)) {
        assert_int_equal(envelope_batch_add(&b, s_instance, ++n, 0, big, 1000),
                         0);
    }
    assert_true(n > 50 && n <= ENVELOPE_BATCH_BYTES / 1000);
    assert_int_equal(
        envelope_batch_seal(&b, fx->ring, fx->rkey, 1, 1, &sealed, &len), 0);
    //  whatever a receiver's own payload limit, it takes the batch
    assert_true(len <= ENVELOPE_MAX_SEALED(1));
    envelope_opened_t o;
    assert_int_equal(envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, sealed,
                                   len, 1000, &o),
                     0);
    assert_int_equal(o.count, n);
    envelope_opened_release(&o);
    //  ... but every message is held to it
    assert_int_equal(envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, sealed,
                                   len, 999, &o),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    free(sealed);
    //  count: at most ENVELOPE_BATCH_MAX messages
    assert_int_equal(envelope_batch_start(&b, s_node, "chat", 4, "room1", 5),
                     0);
    for (n = 0; envelope_batch_fits(&b, 0); n++) {
        assert_int_equal(envelope_batch_add(&b, s_instance, n + 1, 0, NULL, 0),
                         0);
    }
    assert_int_equal(n, ENVELOPE_BATCH_MAX);
    //  event ids must not wrap
    assert_int_equal(envelope_batch_seal(&b, fx->ring, fx->rkey,
                                         UINT64_MAX - 10, 1, &sealed, &len),
                     -1);
    assert_int_equal(errno, EOVERFLOW);
    assert_int_equal(b.count, ENVELOPE_BATCH_MAX); // unchanged
    //  started until sealed or cleared
    assert_true(envelope_batch_started(&b));
    envelope_batch_clear(&b);
    assert_false(envelope_batch_started(&b));
    assert_int_equal(b.count, 0);
    //  bad names and kinds
    assert_int_equal(envelope_batch_start(&b, s_node, "chat", 4, "", 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(envelope_batch_start(&b, s_node, "ch\0t", 4, "x", 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(envelope_batch_start(&b, s_node, "chat", 4, "room1", 5),
                     0);
    assert_int_equal(envelope_batch_add(&b, s_instance, 1, 2, NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    free(big);
    envelope_batch_release(&b);
}

static void test_batch_any_tampered_byte_fails(void **state)
{
    fixture_t *fx = *state;
    envelope_batch_t b = {0};
    size_t len = 0;
    uint8_t *sealed = s_batch(fx, &b, 5, "chat", "room1", &len);
    for (size_t pos = 0; pos < len; pos++) {
        sealed[pos] ^= 0x01;
        int err = s_open(fx, fx->rkey, sealed, len);
        //  0x02 ^ 0x01 is format 3
        assert_int_equal(err, pos == 0 ? ENOPROTOOPT : EBADMSG);
        sealed[pos] ^= 0x01;
    }
    sealed[0] = ENVELOPE_FORMAT; // a batch passed off as format 1
    assert_int_equal(s_open(fx, fx->rkey, sealed, len), EBADMSG);
    sealed[0] = ENVELOPE_FORMAT2;
    for (size_t cut = 0; cut < len; cut++) {
        int err = s_open(fx, fx->rkey, sealed, cut);
        assert_true(err == EBADMSG);
    }
    assert_int_equal(s_open(fx, fx->rkey, sealed, len), 0);
    free(sealed);
    envelope_batch_release(&b);
}

//  A batch sealed for one topic with another topic's routing key as frame
//  1 opens (frame 1 is the associated data it was sealed with) but its
//  namespace and topic do not hash to frame 1: refused, nothing delivered.
static void test_batch_whose_topic_is_not_frame_1_is_refused(void **state)
{
    fixture_t *fx = *state;
    uint8_t rkey2[KEYRING_RKEY_SIZE];
    s_rkey_of(fx->ring, CHANNEL, "chat", "room2", rkey2);
    envelope_batch_t b = {0};
    assert_int_equal(envelope_batch_start(&b, s_node, "chat", 4, "room2", 5),
                     0);
    assert_int_equal(envelope_batch_add(&b, s_instance, 1, 0, NULL, 0), 0);
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_int_equal(
        envelope_batch_seal(&b, fx->ring, fx->rkey, 1, 1, &sealed, &len), 0);
    envelope_opened_t o;
    assert_int_equal(envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, sealed,
                                   len, MIB, &o),
                     -1);
    assert_int_equal(errno, EPROTO);
    assert_null(o.block_);
    assert_int_equal(o.count, 0);
    //  and under room2's key it was not sealed: does not open
    assert_int_equal(s_open(fx, rkey2, sealed, len), EBADMSG);
    free(sealed);
    envelope_batch_release(&b);
}

//  Format 1 (older sidecars) and format 2 open side by side; any other
//  format byte is refused by name, before decrypting.
static void test_formats_1_and_2_accepted_others_refused(void **state)
{
    fixture_t *fx = *state;
    uint8_t *one = NULL;
    size_t one_len = 0;
    assert_int_equal(
        envelope_seal(fx->ring, &fx->env, fx->rkey, &one, &one_len), 0);
    envelope_batch_t b = {0};
    size_t two_len = 0;
    uint8_t *two = s_batch(fx, &b, 3, "chat", "room1", &two_len);
    envelope_opened_t o;
    assert_int_equal(envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, one,
                                   one_len, MIB, &o),
                     0);
    assert_int_equal(o.format, ENVELOPE_FORMAT);
    assert_int_equal(o.count, 1);
    s_assert_same(&o.env, &fx->env);
    assert_false(envelope_opened_next(&o));
    envelope_opened_release(&o);
    s_check_batch(fx, two, two_len, 3, "room1");
    const uint8_t formats[] = {0x00, 0x03, 0x7f, 0xff};
    for (size_t i = 0; i < sizeof formats; i++) {
        two[0] = formats[i];
        assert_int_equal(envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, two,
                                       two_len, MIB, &o),
                         -1);
        assert_int_equal(errno, ENOPROTOOPT);
        assert_int_equal(o.format, formats[i]); // named for the log
        assert_null(o.block_);
        envelope_opened_release(&o);
    }
    //  one byte of an unknown format is refused as such too
    assert_int_equal(
        envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, two, 1, MIB, &o),
        -1);
    assert_int_equal(errno, ENOPROTOOPT);
    free(one);
    free(two);
    envelope_batch_release(&b);
}

//  A hand-written msgpack body of format 2; returns what opening it gives.
static int s_open_raw2(fixture_t *fx, const uint8_t *body, size_t len)
{
    size_t cap = 1 + KEYRING_SEAL_OVERHEAD + len;
    uint8_t *sealed = malloc(cap);
    size_t sealed_len = 0;
    sealed[0] = ENVELOPE_FORMAT2;
    uint8_t ad[KEYRING_RKEY_SIZE + 1];
    memcpy(ad, fx->rkey, KEYRING_RKEY_SIZE);
    ad[KEYRING_RKEY_SIZE] = ENVELOPE_FORMAT2;
    assert_int_equal(keyring_seal(fx->ring, ad, sizeof ad, body, len,
                                  sealed + 1, cap - 1, &sealed_len),
                     0);
    envelope_opened_t o;
    int rc = envelope_open(fx->rk, fx->rkey, KEYRING_RKEY_SIZE, sealed,
                           1 + sealed_len, 32, &o);
    int err = rc == 0 ? 0 : errno;
    if (rc == 0) {
        assert_int_equal(o.count, 2);
        assert_true(envelope_opened_next(&o));
        //  message 1 may name no instance: message 0's
        assert_memory_equal(o.env.origin_instance, s_instance,
                            ENVELOPE_ID_SIZE);
        assert_false(envelope_opened_next(&o));
    }
    envelope_opened_release(&o);
    free(sealed);
    return err;
}

//  Builds a two-message format-2 body into out with one element replaced
//  (bad_at: its index, bad: its bytes, bad_len; bad_at -1: valid), and an
//  element count of elements (0: the right one). Returns its length.
static size_t s_body2(uint8_t *out, int elements, int bad_at,
                      const uint8_t *bad, size_t bad_len, bool wide)
{
    size_t n = 0;
    int count = elements ? elements : 14;
    if (wide) {
        out[n++] = 0xdc; // array 16
        out[n++] = 0;
        out[n++] = (uint8_t)count;
    } else {
        out[n++] = (uint8_t)(0x90 | count); // fixarray
    }
    for (int i = 0; i < 14; i++) {
        if (i == bad_at) {
            memcpy(out + n, bad, bad_len);
            n += bad_len;
            continue;
        }
        switch (i) {
            case 0:
                out[n++] = 2; // version
                break;
            case 1:
            case 6:
                out[n++] = 0xc4;
                out[n++] = 16;
                memcpy(out + n, i == 1 ? s_node : s_instance, 16);
                n += 16;
                break;
            case 2:
                memcpy(out + n,
                       "\xa4"
                       "chat",
                       5);
                n += 5;
                break;
            case 3:
                memcpy(out + n,
                       "\xa5"
                       "room1",
                       6);
                n += 6;
                break;
            case 10:
                out[n++] = 0xc0; // nil: the same instance
                break;
            case 9:
            case 13:
                memcpy(out + n, "\xc4\x02hi", 4);
                n += 4;
                break;
            default:
                if (wide) {
                    memcpy(out + n, "\xcf\0\0\0\0\0\0\0\x01", 9);
                    n += 9;
                } else {
                    out[n++] = 1;
                }
                break;
        }
    }
    return n;
}

static void test_batch_hand_made_bodies(void **state)
{
    fixture_t *fx = *state;
    uint8_t body[512];
    size_t len;
    //  valid, narrow and wide encodings
    len = s_body2(body, 0, -1, NULL, 0, false);
    assert_int_equal(s_open_raw2(fx, body, len), 0);
    len = s_body2(body, 0, -1, NULL, 0, true);
    assert_int_equal(s_open_raw2(fx, body, len), 0);
    //  trailing byte
    body[len] = 0;
    assert_int_equal(s_open_raw2(fx, body, len + 1), EPROTO);
    //  cut anywhere
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(s_open_raw2(fx, body, cut), EPROTO);
    }
    //  element counts that are not 6 + 4n, n >= 1
    int counts[] = {6, 10 - 1, 13, 15};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        len = s_body2(body, counts[i], -1, NULL, 0, false);
        assert_int_equal(s_open_raw2(fx, body, len), EPROTO);
    }
    struct {
        int at;
        const char *bytes;
        size_t len;
        int err;
    } bad[] = {
        {0, "\x01", 1, EPROTO},     // version 1 in format 2
        {0, "\xd0\x02", 2, EPROTO}, // negative-capable int8
        {1,
         "\xc4\x0f"
         "node-012345678",
         17, EPROTO}, // 15-byte node
        {2,
         "\xa3"
         "c\0t",
         4, EPROTO},            // NUL in a name
        {3, "\xa0", 1, EPROTO}, // empty topic
        {3,
         "\xc4\x05"
         "room1",
         7, EPROTO},             // topic as bin
        {4, "\xa1x", 2, EPROTO}, // timestamp as str
        {5, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, EPROTO}, // wraps
        {6, "\xc0", 1, EPROTO},                 // nil instance first
        {6, "\xc4\x10", 2, EPROTO},             // instance cut short (overlaps)
        {8, "\x02", 1, EPROTO},                 // kind 2
        {9, "\xa2hi", 3, EPROTO},               // payload as str
        {9, "\xc6\xff\xff\xff\xff", 5, EPROTO}, // length past the end
        {13,
         "\xc4\x21"
         "0123456789abcdef0123456789abcdef!",
         35, EMSGSIZE},              // over the 32-byte limit
        {12, "\x91\x01", 2, EPROTO}, // a container
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        len = s_body2(body, 0, bad[i].at, (const uint8_t *)bad[i].bytes,
                      bad[i].len, false);
        if (s_open_raw2(fx, body, len) != bad[i].err) {
            fail_msg("bad body %zu (element %d) not refused as %d", i,
                     bad[i].at, bad[i].err);
        }
    }
    //  the routing key is checked against the body's names: a body for
    //  another topic sealed under room1's key is refused
    len = s_body2(body, 0, 3, (const uint8_t *)"\xa5room2", 6, false);
    assert_int_equal(s_open_raw2(fx, body, len), EPROTO);
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_round_trip_keeps_every_field),
        TEST(test_round_trip_every_byte_value),
        TEST(test_round_trip_empty_and_one_mib_payloads),
        TEST(test_round_trip_name_limits),
        TEST(test_sealed_size_stays_within_the_bound),
        TEST(test_seal_refuses_bad_messages),
        TEST(test_wrong_key_does_not_open),
        TEST(test_rotation_opens_with_the_extra_key),
        TEST(test_any_tampered_byte_fails),
        TEST(test_truncated_at_every_length_fails),
        TEST(test_routing_key_is_bound_to_the_body),
        TEST(test_body_that_does_not_match_frame_1_is_refused),
        TEST(test_other_channel_is_refused),
        TEST(test_cached_routing_keys_keep_names_apart),
        TEST(test_hand_made_valid_body_opens),
        TEST(test_malformed_bodies_are_refused),
        TEST(test_payload_over_the_limit_is_refused),
        TEST(test_hostile_msgpack_is_refused_cheaply),
        TEST(test_wide_integer_encodings_are_accepted),
        TEST(test_batch_round_trip_one_and_many),
        TEST(test_batch_names_an_instance_once_per_run),
        TEST(test_batch_limits),
        TEST(test_batch_any_tampered_byte_fails),
        TEST(test_batch_whose_topic_is_not_frame_1_is_refused),
        TEST(test_formats_1_and_2_accepted_others_refused),
        TEST(test_batch_hand_made_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
