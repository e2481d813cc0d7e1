/*  test_swim_codec.c - the gossip packet codec

    Round trips of every packet type, the size bounds the state machine
    relies on, and rejection of everything off the grammar: truncations,
    trailing bytes, wrong types and bounds, allocation bombs, random bytes
    and bit flips.
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <msgpack.h>
#include <string.h>

#include "swim_codec.h"

static uint64_t s_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static swim_member_t s_member(uint8_t n)
{
    swim_member_t m;
    memset(&m, 0, sizeof m);
    m.id[0] = n;
    m.id[15] = 0xff;
    snprintf(m.name, sizeof m.name, "host-%d", n);
    m.incarnation = 1000000000000ULL + n;
    m.state = SWIM_ALIVE + n % 4;
    snprintf(m.endpoint, sizeof m.endpoint, "tcp://10.0.0.%d:7440", n);
    snprintf(m.gossip_addr, sizeof m.gossip_addr, "10.0.0.%d:7946", n);
    memset(m.pubkey, n, sizeof m.pubkey);
    snprintf(m.zone, sizeof m.zone, "eu-west-%d", n % 3);
    m.start_ms = 1700000000000ULL + n;
    return m;
}

//  The largest record: every string at its bound, wide integers.
static swim_member_t s_member_max(void)
{
    swim_member_t m = s_member(7);
    memset(m.name, 'n', SWIM_NAME_MAX);
    m.name[SWIM_NAME_MAX] = 0;
    memset(m.endpoint, 'e', SWIM_ENDPOINT_MAX);
    m.endpoint[SWIM_ENDPOINT_MAX] = 0;
    memset(m.gossip_addr, 'g', SWIM_ADDR_MAX);
    m.gossip_addr[SWIM_ADDR_MAX] = 0;
    memset(m.zone, 'z', SWIM_ZONE_MAX);
    m.zone[SWIM_ZONE_MAX] = 0;
    m.incarnation = UINT64_MAX;
    m.start_ms = UINT64_MAX;
    return m;
}

static void s_assert_member_equal(const swim_member_t *a,
                                  const swim_member_t *b)
{
    assert_memory_equal(a->id, b->id, SWIM_ID_SIZE);
    assert_string_equal(a->name, b->name);
    assert_true(a->incarnation == b->incarnation);
    assert_int_equal(a->state, b->state);
    assert_string_equal(a->endpoint, b->endpoint);
    assert_string_equal(a->gossip_addr, b->gossip_addr);
    assert_memory_equal(a->pubkey, b->pubkey, SWIM_KEY_SIZE);
    assert_string_equal(a->zone, b->zone);
    assert_true(a->start_ms == b->start_ms);
}

static size_t s_encode(const swim_msg_t *msg, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    assert_int_equal(swim_codec_encode(msg, buf, cap, &len), 0);
    assert_int_equal(len, swim_codec_size(msg));
    return len;
}

static int s_decode(const uint8_t *buf, size_t len)
{
    swim_msg_t msg;
    int rc = swim_codec_decode(buf, len, &msg);
    int saved = errno;
    if (rc == 0) {
        for (size_t i = 0; i < msg.member_count; i++) {
            assert_true(swim_codec_record_valid(&msg.members[i]));
        }
        for (size_t i = 0; i < msg.update_count; i++) {
            assert_true(swim_codec_record_valid(&msg.updates[i]));
        }
    } else {
        assert_int_equal(saved, EPROTO);
        assert_null(msg.members);
        assert_null(msg.updates);
    }
    swim_codec_clear(&msg);
    errno = saved;
    return rc;
}

static void test_round_trip(void **state)
{
    (void)state;
    swim_member_t members[5];
    for (uint8_t i = 0; i < 5; i++) {
        members[i] = s_member((uint8_t)(i + 1));
    }
    members[4].state = SWIM_LEFT; // the leave record
    for (int type = SWIM_MSG_PING; type < SWIM_MSG_TYPES; type++) {
        swim_msg_t msg;
        memset(&msg, 0, sizeof msg);
        msg.type = type;
        memset(msg.sender, 0xab, SWIM_ID_SIZE);
        msg.seq = type == SWIM_MSG_ACK ? UINT32_MAX : 77;
        if (type == SWIM_MSG_PING || type == SWIM_MSG_PING_REQ) {
            memset(msg.target, 0x5a, SWIM_ID_SIZE);
        }
        if (type == SWIM_MSG_PING_REQ) {
            snprintf(msg.target_addr, sizeof msg.target_addr,
                     "[fe80::1%%eth0]:7946");
        }
        if (type == SWIM_MSG_PP_REQ || type == SWIM_MSG_PP_RESP) {
            msg.part = 3;
            msg.members = members;
            msg.member_count = 4;
        } else {
            msg.updates = members;
            msg.update_count = 3;
        }
        if (type == SWIM_MSG_LEAVE) {
            msg.members = &members[4];
            msg.member_count = 1;
        }
        uint8_t buf[4096];
        size_t len = s_encode(&msg, buf, sizeof buf);
        swim_msg_t out;
        assert_int_equal(swim_codec_decode(buf, len, &out), 0);
        assert_int_equal(out.type, type);
        assert_memory_equal(out.sender, msg.sender, SWIM_ID_SIZE);
        assert_int_equal(out.member_count, msg.member_count);
        assert_int_equal(out.update_count, msg.update_count);
        for (size_t i = 0; i < out.member_count; i++) {
            s_assert_member_equal(&out.members[i], &msg.members[i]);
        }
        for (size_t i = 0; i < out.update_count; i++) {
            s_assert_member_equal(&out.updates[i], &msg.updates[i]);
        }
        if (type == SWIM_MSG_PING || type == SWIM_MSG_ACK ||
            type == SWIM_MSG_PING_REQ) {
            assert_int_equal(out.seq, msg.seq);
        }
        if (type == SWIM_MSG_PING || type == SWIM_MSG_PING_REQ) {
            assert_memory_equal(out.target, msg.target, SWIM_ID_SIZE);
        }
        if (type == SWIM_MSG_PING_REQ) {
            assert_string_equal(out.target_addr, msg.target_addr);
        }
        if (type == SWIM_MSG_PP_REQ || type == SWIM_MSG_PP_RESP) {
            assert_int_equal(out.part, 3);
        }
        swim_codec_clear(&out);
        swim_codec_clear(&out);
    }
}

static void test_size_bounds(void **state)
{
    (void)state;
    //  The smallest record: empty strings but a 1-byte gossip address.
    swim_member_t min;
    memset(&min, 0, sizeof min);
    min.id[0] = 1;
    min.state = SWIM_ALIVE;
    min.gossip_addr[0] = 'x';
    assert_int_equal(swim_codec_record_size(&min), SWIM_CODEC_RECORD_MIN);
    swim_member_t max = s_member_max();
    assert_int_equal(swim_codec_record_size(&max), SWIM_CODEC_RECORD_MAX);

    //  One largest record fits SWIM_PACKET_MIN in every packet type that
    //  must carry one: push-pull parts, leave, and our own record on a
    //  ping or an ack.
    uint8_t buf[SWIM_PACKET_MIN];
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.sender[0] = 1;
    msg.seq = UINT32_MAX;
    msg.part = UINT32_MAX;
    memset(msg.target, 0xff, SWIM_ID_SIZE);
    msg.members = &max;
    msg.member_count = 1;
    int types[] = {SWIM_MSG_PP_REQ, SWIM_MSG_PP_RESP, SWIM_MSG_LEAVE};
    for (size_t i = 0; i < 3; i++) {
        msg.type = types[i];
        (void)s_encode(&msg, buf, sizeof buf);
    }
    msg.members = NULL;
    msg.member_count = 0;
    msg.updates = &max;
    msg.update_count = 1;
    msg.type = SWIM_MSG_PING;
    (void)s_encode(&msg, buf, sizeof buf);
    msg.type = SWIM_MSG_ACK;
    (void)s_encode(&msg, buf, sizeof buf);

    //  Too small a buffer is EMSGSIZE; a bad record EINVAL.
    size_t len;
    assert_int_equal(swim_codec_encode(&msg, buf, 100, &len), -1);
    assert_int_equal(errno, EMSGSIZE);
    max.state = SWIM_NONE;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), -1);
    assert_int_equal(errno, EINVAL);
    msg.type = SWIM_MSG_LEAVE; // without its record
    msg.update_count = 0;
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), -1);
    assert_int_equal(errno, EINVAL);
    msg.type = SWIM_MSG_PING_REQ; // without an address
    assert_int_equal(swim_codec_encode(&msg, buf, sizeof buf, &len), -1);
    assert_int_equal(errno, EINVAL);
}

static size_t s_sample(uint8_t *buf, size_t cap)
{
    swim_member_t members[3] = {s_member(1), s_member(2), s_member(3)};
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_PING_REQ;
    msg.sender[0] = 9;
    msg.seq = 1234567;
    msg.target[0] = 2;
    snprintf(msg.target_addr, sizeof msg.target_addr, "10.0.0.2:7946");
    msg.updates = members;
    msg.update_count = 3;
    return s_encode(&msg, buf, cap);
}

static void test_truncated_and_trailing(void **state)
{
    (void)state;
    uint8_t buf[2048];
    size_t len = s_sample(buf, sizeof buf);
    assert_int_equal(s_decode(buf, len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        errno = 0;
        assert_int_equal(s_decode(buf, cut), -1);
        assert_int_equal(errno, EPROTO);
    }
    buf[len] = 0xc0;
    assert_int_equal(s_decode(buf, len + 1), -1);
    assert_int_equal(swim_codec_decode(NULL, 0, &(swim_msg_t){0}), -1);
}

//  --------------------------------------------------------------------------
//  Hand-built packets: a valid ping with one update, or one thing broken.

typedef enum {
    VALID = 0,
    //  rejected
    BAD_VERSION,
    TYPE_ZERO,
    TYPE_HIGH,
    SENDER_SHORT,
    SENDER_ZERO,
    SENDER_STR,
    BODY_NOT_ARRAY,
    BODY_SHORT,
    SEQ_TOO_BIG,
    SEQ_NEGATIVE,
    SEQ_FLOAT,
    TARGET_LONG,
    UPDATES_MAP,
    PACKET_SHORT,
    MEMBER_SHORT,
    ID_ZERO,
    NAME_LONG,
    NAME_NUL,
    INC_NEGATIVE,
    STATE_ZERO,
    STATE_HIGH,
    ENDPOINT_LONG,
    GOSSIP_EMPTY,
    GOSSIP_LONG,
    KEY_SHORT,
    ZONE_BIN,
    START_NIL,
    TOO_MANY_UPDATES,
    REJECTED_END,
    //  accepted: later versions may add elements anywhere
    EXTRA_PACKET = REJECTED_END,
    EXTRA_BODY,
    EXTRA_MEMBER,
    ACCEPTED_END
} mutation_t;

static void s_pk_bin(msgpack_packer *pk, uint8_t fill, size_t len)
{
    uint8_t bytes[64];
    memset(bytes, fill, sizeof bytes);
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, bytes, len);
}

static void s_pk_str(msgpack_packer *pk, const char *str, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, str, len);
}

static void s_pk_uint(msgpack_packer *pk, uint64_t value, int mutation,
                      int negative, int real)
{
    if (mutation == negative) {
        msgpack_pack_int64(pk, -1);
    } else if (mutation == real) {
        msgpack_pack_double(pk, (double)value);
    } else {
        msgpack_pack_uint64(pk, value);
    }
}

static void s_pk_extra(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
}

static void s_pk_member(msgpack_packer *pk, int mut)
{
    static const char big[300] = {0};
    char long_str[300];
    memset(long_str, 'x', sizeof long_str);
    msgpack_pack_array(pk, mut == MEMBER_SHORT   ? 8
                           : mut == EXTRA_MEMBER ? 10
                                                 : 9);
    s_pk_bin(pk, mut == ID_ZERO ? 0 : 3, SWIM_ID_SIZE);
    if (mut == NAME_LONG) {
        s_pk_str(pk, long_str, SWIM_NAME_MAX + 1);
    } else {
        s_pk_str(pk, mut == NAME_NUL ? "ho\0st" : "host",
                 mut == NAME_NUL ? 5 : 4);
    }
    s_pk_uint(pk, 7, mut, INC_NEGATIVE, -1);
    msgpack_pack_uint64(pk, mut == STATE_ZERO ? 0 : mut == STATE_HIGH ? 5 : 2);
    s_pk_str(pk, long_str, mut == ENDPOINT_LONG ? SWIM_ENDPOINT_MAX + 1 : 20);
    s_pk_str(pk, mut == GOSSIP_EMPTY ? big : long_str,
             mut == GOSSIP_EMPTY  ? 0
             : mut == GOSSIP_LONG ? SWIM_ADDR_MAX + 1
                                  : 12);
    s_pk_bin(pk, 0, mut == KEY_SHORT ? SWIM_KEY_SIZE - 1 : SWIM_KEY_SIZE);
    if (mut == ZONE_BIN) {
        s_pk_bin(pk, 'z', 4);
    } else {
        s_pk_str(pk, "zone", 4);
    }
    if (mut == START_NIL) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_uint64(pk, 1700000000000ULL);
    }
    if (mut == MEMBER_SHORT) {
        return;
    }
    if (mut == EXTRA_MEMBER) {
        s_pk_extra(pk);
    }
}

static void s_build(msgpack_sbuffer *sb, int mut)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, mut == PACKET_SHORT   ? 4
                            : mut == EXTRA_PACKET ? 6
                                                  : 5);
    msgpack_pack_uint64(&pk, mut == BAD_VERSION ? 2 : 1);
    msgpack_pack_uint64(&pk, mut == TYPE_ZERO   ? 0
                             : mut == TYPE_HIGH ? SWIM_MSG_TYPES
                                                : SWIM_MSG_PING);
    if (mut == SENDER_STR) {
        s_pk_str(&pk, "0123456789abcdef", SWIM_ID_SIZE);
    } else {
        s_pk_bin(&pk, mut == SENDER_ZERO ? 0 : 1,
                 mut == SENDER_SHORT ? SWIM_ID_SIZE - 1 : SWIM_ID_SIZE);
    }
    if (mut == BODY_NOT_ARRAY) {
        msgpack_pack_uint64(&pk, 5);
    } else {
        msgpack_pack_array(&pk, mut == BODY_SHORT   ? 1
                                : mut == EXTRA_BODY ? 3
                                                    : 2);
        s_pk_uint(&pk, mut == SEQ_TOO_BIG ? (uint64_t)UINT32_MAX + 1 : 42, mut,
                  SEQ_NEGATIVE, SEQ_FLOAT);
        if (mut != BODY_SHORT) {
            s_pk_bin(&pk, 2,
                     mut == TARGET_LONG ? SWIM_ID_SIZE + 1 : SWIM_ID_SIZE);
        }
        if (mut == EXTRA_BODY) {
            s_pk_extra(&pk);
        }
    }
    if (mut == PACKET_SHORT) {
        return;
    }
    if (mut == UPDATES_MAP) {
        msgpack_pack_map(&pk, 0);
    } else if (mut == TOO_MANY_UPDATES) {
        //  More records than the packet could hold, each a tiny array.
        msgpack_pack_array(&pk, 40);
        for (int i = 0; i < 40; i++) {
            msgpack_pack_array(&pk, 0);
        }
    } else {
        msgpack_pack_array(&pk, 1);
        s_pk_member(&pk, mut);
    }
    if (mut == EXTRA_PACKET) {
        s_pk_extra(&pk);
    }
}

static void test_malformed_rejected(void **state)
{
    (void)state;
    msgpack_sbuffer valid, sb;
    s_build(&valid, VALID);
    assert_int_equal(s_decode((uint8_t *)valid.data, valid.size), 0);
    for (int mut = VALID + 1; mut < REJECTED_END; mut++) {
        s_build(&sb, mut);
        //  Each mutation does change the packet.
        assert_true(sb.size != valid.size ||
                    memcmp(sb.data, valid.data, sb.size) != 0);
        errno = 0;
        if (s_decode((uint8_t *)sb.data, sb.size) != -1) {
            fail_msg("mutation %d accepted", mut);
        }
        assert_int_equal(errno, EPROTO);
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_sbuffer_destroy(&valid);
}

static void test_extensions_accepted(void **state)
{
    (void)state;
    for (int mut = EXTRA_PACKET; mut < ACCEPTED_END; mut++) {
        msgpack_sbuffer sb;
        s_build(&sb, mut);
        swim_msg_t msg;
        assert_int_equal(swim_codec_decode((uint8_t *)sb.data, sb.size, &msg),
                         0);
        assert_int_equal(msg.type, SWIM_MSG_PING);
        assert_int_equal(msg.seq, 42);
        assert_int_equal(msg.update_count, 1);
        assert_string_equal(msg.updates[0].name, "host");
        assert_int_equal(msg.updates[0].state, SWIM_SUSPECT);
        swim_codec_clear(&msg);
        msgpack_sbuffer_destroy(&sb);
    }
}

//  Headers announcing far more than the packet holds never reach the
//  allocator (msgpack-c would allocate count * 32 bytes up front).
static void test_bombs_rejected(void **state)
{
    (void)state;
    static const uint8_t array32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0, 0};
    static const uint8_t str32[] = {0x91, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t bin32[] = {0x91, 0xc6, 0x7f, 0xff, 0xff, 0xff, 0};
    static const uint8_t ext32[] = {0xc9, 0x00, 0x00, 0x10, 0x00, 1, 2};
    static const uint8_t inner[] = {0x95, 0x01, 0x01, 0xdd, 0x10,
                                    0x00, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t never[] = {0x91, 0xc1};
    struct {
        const uint8_t *bytes;
        size_t len;
    } bombs[] = {{array32, sizeof array32}, {map32, sizeof map32},
                 {str32, sizeof str32},     {bin32, sizeof bin32},
                 {ext32, sizeof ext32},     {inner, sizeof inner},
                 {never, sizeof never}};
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        assert_int_equal(s_decode(bombs[i].bytes, bombs[i].len), -1);
    }
    //  Deep nesting: 100 one-element arrays.
    uint8_t deep[101];
    memset(deep, 0x91, 100);
    deep[100] = 0x01;
    assert_int_equal(s_decode(deep, sizeof deep), -1);
}

static void test_garbage_and_bit_flips(void **state)
{
    (void)state;
    uint64_t rng = 1;
    uint8_t buf[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(s_rand(&rng) % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)s_rand(&rng);
        }
        if (len > 0 && round % 2) {
            buf[0] = 0x95; // an array of 5, to get further in
        }
        (void)s_decode(buf, len);
    }
    uint8_t good[2048];
    size_t len = s_sample(good, sizeof good);
    int accepted = 0;
    for (size_t bit = 0; bit < len * 8; bit++) {
        memcpy(buf, good, len);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        accepted += s_decode(buf, len) == 0;
    }
    //  Flips inside strings and numbers still decode; the rest must not.
    assert_true(accepted > 0 && (size_t)accepted < len * 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_size_bounds),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_malformed_rejected),
        cmocka_unit_test(test_extensions_accepted),
        cmocka_unit_test(test_bombs_rejected),
        cmocka_unit_test(test_garbage_and_bit_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
