/*  Unit tests: wire (the app <-> sidecar frame codec). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "wire.h"

#define MIB      (1024 * 1024)
#define MAX_BODY WIRE_MAX_FRAME_DEFAULT

// --- helpers -----------------------------------------------------------------

//  A seeded PRNG (splitmix64), so every run is the same run.
static uint64_t s_seed;

static uint64_t s_rand(void)
{
    uint64_t z = (s_seed += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char s_instance[WIRE_ID_SIZE] = "inst-0123456789";
static const char s_node[WIRE_ID_SIZE] = "node-abcdefghij";

static const wire_str_t s_rows3[] = {
    {"peers", 5}, {"3", 1}, {"topics", 6}, {"", 0}, {"", 0}, {"empty key", 9},
};

//  A frame of type with every field its type carries set to something
//  recognisable; the fields it does not carry stay zero.
static wire_frame_t s_sample(int type)
{
    wire_frame_t f = {.type = type};
    wire_str_t instance = {s_instance, WIRE_ID_SIZE};
    wire_str_t node = {s_node, WIRE_ID_SIZE};
    switch (type) {
        case WIRE_HELLO:
            f.version = WIRE_VERSION;
            f.id = instance;
            f.name = wire_str("chat-server");
            f.flags = WIRE_HF_GAPS;
            break;
        case WIRE_WELCOME:
            f.version = WIRE_VERSION;
            f.node = node;
            f.channel = wire_str("prod");
            f.max_payload = MIB;
            f.name = wire_str("0.1.0");
            break;
        case WIRE_SUB:
        case WIRE_UNSUB:
            f.req = 42;
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            break;
        case WIRE_PUB:
            f.req = UINT64_MAX;
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            f.flags = WIRE_F_BINARY | WIRE_F_ECHO;
            f.seq = 1ull << 40;
            f.payload = wire_str("hello, room");
            break;
        case WIRE_MSG:
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            f.flags = WIRE_F_BINARY;
            f.id = instance;
            f.seq = 7;
            f.payload = wire_str("hello, room");
            f.node = node;
            break;
        case WIRE_ERR:
            f.req = 9;
            f.code = WIRE_E_BADNAME;
            f.text = wire_str("topic is empty");
            break;
        case WIRE_PING:
            f.token = 0x0123456789abcdefull;
            break;
        case WIRE_PONG:
            f.token = 1;
            break;
        case WIRE_QUERY:
            f.req = 5;
            f.text = wire_str("numsub");
            f.arg = wire_str("chat/room-1");
            break;
        case WIRE_REPLY:
            f.req = 5;
            f.rows = s_rows3;
            f.nrows = 3;
            break;
        case WIRE_STATUS:
            f.readable = true;
            f.writable = false;
            f.count = 12;
            f.text = wire_str("1 peer unreachable");
            break;
        case WIRE_GAP:
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            f.id = instance;
            f.count = 1000;
            break;
        case WIRE_SUBACK:
            f.req = 42;
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            f.everywhere = true;
            break;
        case WIRE_PSET:
            f.req = 43;
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            f.arg = wire_str("alice");
            f.meta = wire_str("{\"status\":\"online\"}");
            break;
        case WIRE_PCLEAR:
            f.req = 44;
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            f.arg = wire_str("alice");
            break;
        case WIRE_PLIST:
            f.req = 45;
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            break;
        case WIRE_PEVENT:
            f.ns = wire_str("chat");
            f.topic = wire_str("room-1");
            f.arg = wire_str("alice");
            f.meta = wire_str("");
            f.node = node;
            f.present = true;
            break;
        case WIRE_MEMBER:
            f.node = node;
            f.name = wire_str("host-7");
            f.count = 4;
            f.text = wire_str("tcp://10.0.0.7:7440");
            break;
        default:
            fail_msg("no sample for type %d", type);
    }
    return f;
}

static void s_assert_str_equal(wire_str_t want, wire_str_t got)
{
    assert_int_equal(got.len, want.len);
    if (want.len) {
        assert_non_null(got.ptr);
        assert_memory_equal(got.ptr, want.ptr, want.len);
    }
}

//  Every field equal (strings by content, not by pointer).
static void s_assert_frame_equal(const wire_frame_t *want,
                                 const wire_frame_t *got)
{
    assert_int_equal(got->type, want->type);
    assert_int_equal(got->req, want->req);
    assert_int_equal(got->version, want->version);
    assert_int_equal(got->flags, want->flags);
    assert_int_equal(got->seq, want->seq);
    assert_int_equal(got->code, want->code);
    assert_int_equal(got->count, want->count);
    assert_int_equal(got->max_payload, want->max_payload);
    assert_int_equal(got->token, want->token);
    assert_int_equal(got->readable, want->readable);
    assert_int_equal(got->writable, want->writable);
    assert_int_equal(got->everywhere, want->everywhere);
    assert_int_equal(got->present, want->present);
    s_assert_str_equal(want->meta, got->meta);
    s_assert_str_equal(want->id, got->id);
    s_assert_str_equal(want->node, got->node);
    s_assert_str_equal(want->name, got->name);
    s_assert_str_equal(want->channel, got->channel);
    s_assert_str_equal(want->ns, got->ns);
    s_assert_str_equal(want->topic, got->topic);
    s_assert_str_equal(want->payload, got->payload);
    s_assert_str_equal(want->text, got->text);
    s_assert_str_equal(want->arg, got->arg);
    assert_int_equal(got->nrows, want->nrows);
    for (size_t i = 0; i < 2 * want->nrows; i++) {
        s_assert_str_equal(want->rows[i], got->rows[i]);
    }
}

//  Encodes frame alone into a fresh buffer.
static wire_buf_t s_encode(const wire_frame_t *frame)
{
    wire_buf_t buf = {0};
    assert_int_equal(wire_encode(&buf, frame), 0);
    return buf;
}

//  The body of the single frame in buf, checked with wire_peek.
static const uint8_t *s_body_of(const wire_buf_t *buf, size_t *body_len)
{
    assert_int_equal(wire_peek(buf->data, buf->len, SIZE_MAX, body_len), 1);
    assert_int_equal(WIRE_PREFIX + *body_len, buf->len);
    return buf->data + WIRE_PREFIX;
}

//  Encode, peek, decode, compare; then encoding the decoded frame gives the
//  same bytes.
static void s_round_trip(wire_decoder_t *decoder, const wire_frame_t *frame)
{
    wire_buf_t buf = s_encode(frame);
    size_t body_len;
    const uint8_t *body = s_body_of(&buf, &body_len);
    assert_true(wire_msgpack_bounded(body, body_len));
    wire_frame_t got;
    assert_int_equal(wire_decode(decoder, body, body_len, &got), 0);
    s_assert_frame_equal(frame, &got);
    wire_buf_t again = s_encode(&got);
    assert_int_equal(again.len, buf.len);
    assert_memory_equal(again.data, buf.data, buf.len);
    wire_buf_free(&again);
    wire_buf_free(&buf);
}

//  Decodes a body copied to a heap block of exactly len bytes (so ASan sees
//  any read past it). Returns 0 or errno.
static int s_decode_exact(wire_decoder_t *decoder, const uint8_t *body,
                          size_t len, wire_frame_t *frame)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) {
        memcpy(copy, body, len);
    }
    errno = 0;
    int rc = wire_decode(decoder, copy, len, frame);
    int err = rc ? errno : 0;
    free(copy);
    if (rc) {
        assert_int_not_equal(err, 0);
    }
    return err;
}

static int s_setup(void **state)
{
    wire_decoder_t *decoder = wire_decoder_new();
    *state = decoder;
    s_seed = 20240601;
    return decoder ? 0 : -1;
}

static int s_teardown(void **state)
{
    wire_decoder_t *decoder = *state;
    wire_decoder_destroy(&decoder);
    assert_null(decoder);
    wire_decoder_destroy(&decoder); // twice is fine
    return 0;
}

// --- round trips -------------------------------------------------------------

static void test_every_type_round_trips(void **state)
{
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        wire_frame_t frame = s_sample(type);
        s_round_trip(*state, &frame);
    }
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(wire_type_name(WIRE_HELLO), "HELLO");
    assert_string_equal(wire_type_name(WIRE_PUB), "PUB");
    assert_string_equal(wire_type_name(WIRE_SUBACK), "SUBACK");
    assert_string_equal(wire_type_name(0), "?");
    assert_string_equal(wire_type_name(WIRE_TYPE_MAX), "?");
    assert_string_equal(wire_type_name(-1), "?");
    wire_str_t s = wire_str("abc");
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "abc", 3);
    s = wire_str(NULL);
    assert_int_equal(s.len, 0);
    assert_non_null(s.ptr);
}

static void test_payload_holds_every_byte_value(void **state)
{
    char all[256];
    for (int i = 0; i < 256; i++) {
        all[i] = (char)i;
    }
    wire_frame_t pub = s_sample(WIRE_PUB);
    pub.payload = (wire_str_t){all, sizeof all};
    s_round_trip(*state, &pub);
    wire_frame_t msg = s_sample(WIRE_MSG);
    msg.payload = (wire_str_t){all, sizeof all};
    s_round_trip(*state, &msg);
    //  strings are bytes too: the codec does not check UTF-8
    wire_frame_t err = s_sample(WIRE_ERR);
    err.text = (wire_str_t){all, sizeof all};
    s_round_trip(*state, &err);
    //  one byte each, every value
    for (int i = 0; i < 256; i++) {
        pub.payload = (wire_str_t){&all[i], 1};
        s_round_trip(*state, &pub);
    }
}

static void test_empty_payload_and_strings(void **state)
{
    wire_frame_t pub = s_sample(WIRE_PUB);
    pub.payload = wire_str("");
    pub.ns = wire_str("");
    pub.topic = wire_str("");
    s_round_trip(*state, &pub);
    wire_frame_t msg = s_sample(WIRE_MSG);
    msg.payload = wire_str(NULL);
    s_round_trip(*state, &msg);
    wire_frame_t query = s_sample(WIRE_QUERY);
    query.arg = wire_str(NULL);
    s_round_trip(*state, &query);
}

//  A frame with a string field left zero ({NULL, 0}) is an empty string:
//  rc_publish (client, ns, topic, NULL, 0, 0) sends exactly this.
static void test_zeroed_string_fields_encode_as_empty(void **state)
{
    wire_frame_t pub = {.type = WIRE_PUB,
                        .req = 1,
                        .ns = wire_str("chat"),
                        .topic = wire_str("room-1"),
                        .seq = 1};
    assert_null(pub.payload.ptr);
    s_round_trip(*state, &pub);
    wire_frame_t query = {.type = WIRE_QUERY, .req = 2};
    s_round_trip(*state, &query);
}

static void test_one_mib_payload(void **state)
{
    char *big = malloc(MIB);
    assert_non_null(big);
    for (size_t i = 0; i < MIB; i++) {
        big[i] = (char)s_rand();
    }
    wire_frame_t pub = s_sample(WIRE_PUB);
    pub.payload = (wire_str_t){big, MIB};
    s_round_trip(*state, &pub);

    //  the default limit takes a full payload with its headers
    wire_buf_t buf = s_encode(&pub);
    size_t body_len;
    assert_int_equal(wire_peek(buf.data, buf.len, MAX_BODY, &body_len), 1);
    assert_true(body_len > MIB);
    assert_true(wire_msgpack_bounded(buf.data + WIRE_PREFIX, body_len));
    //  cut short, it is refused
    wire_frame_t got;
    assert_int_equal(
        wire_decode(*state, buf.data + WIRE_PREFIX, body_len - 1, &got), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(
        wire_decode(*state, buf.data + WIRE_PREFIX, body_len / 2, &got), -1);
    assert_int_equal(errno, EPROTO);
    //  one byte over the limit
    assert_int_equal(wire_peek(buf.data, buf.len, body_len - 1, &body_len), -1);
    assert_int_equal(errno, EMSGSIZE);
    wire_buf_free(&buf);
    free(big);
}

static void test_reply_rows_round_trip(void **state)
{
    wire_frame_t reply = {.type = WIRE_REPLY, .req = 77};
    //  no rows
    s_round_trip(*state, &reply);
    //  one row
    wire_str_t one[2] = {wire_str("version"), wire_str("0.1.0")};
    reply.rows = one;
    reply.nrows = 1;
    s_round_trip(*state, &reply);
    //  many rows, some empty, some long
    enum { N = 2000 };
    wire_str_t *rows = calloc(2 * N, sizeof *rows);
    char(*text)[40] = calloc(2 * N, sizeof *text);
    assert_non_null(rows);
    assert_non_null(text);
    for (size_t i = 0; i < 2 * N; i++) {
        int n =
            snprintf(text[i], sizeof text[i], "%s-%zu", i % 2 ? "v" : "k", i);
        rows[i] = (wire_str_t){text[i], (uint32_t)(i % 7 == 0 ? 0 : n)};
    }
    reply.rows = rows;
    reply.nrows = N;
    s_round_trip(*state, &reply);
    free(text);
    free(rows);
}

//  Frames decoded one after the other reuse the decoder: each decode sees
//  only its own frame.
static void test_decoder_is_reused(void **state)
{
    wire_frame_t reply = s_sample(WIRE_REPLY);
    wire_frame_t ping = s_sample(WIRE_PING);
    for (int i = 0; i < 100; i++) {
        s_round_trip(*state, i % 2 ? &reply : &ping);
    }
}

static void test_encode_refuses_unknown_types(void **state)
{
    (void)state;
    wire_buf_t buf = {0};
    wire_frame_t ok = s_sample(WIRE_PING);
    assert_int_equal(wire_encode(&buf, &ok), 0);
    size_t len = buf.len;
    int bad[] = {0, -1, WIRE_TYPE_MAX, 99};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wire_frame_t frame = {.type = bad[i]};
        errno = 0;
        assert_int_equal(wire_encode(&buf, &frame), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(buf.len, len); // nothing appended
    }
    wire_buf_free(&buf);
    assert_null(buf.data);
    assert_int_equal(buf.len, 0);
}

// --- framing: wire_peek ------------------------------------------------------

//  A reader: bytes go in, whole frames come out and are checked against the
//  frames expected, in order.
typedef struct {
    wire_buf_t in;
    wire_decoder_t *decoder;
    const wire_frame_t *want;
    size_t nwant;
    size_t got; // frames extracted so far
} reader_t;

static void s_reader_feed(reader_t *r, const uint8_t *data, size_t len)
{
    //  at least one byte, so data is never NULL for wire_peek
    assert_int_equal(wire_buf_reserve(&r->in, len ? len : 1), 0);
    if (len) {
        memcpy(r->in.data + r->in.len, data, len);
    }
    r->in.len += len;
    size_t off = 0, body;
    int rc;
    while ((rc = wire_peek(r->in.data + off, r->in.len - off, MAX_BODY,
                           &body)) == 1) {
        wire_frame_t f;
        assert_int_equal(
            wire_decode(r->decoder, r->in.data + off + WIRE_PREFIX, body, &f),
            0);
        assert_true(r->got < r->nwant);
        s_assert_frame_equal(&r->want[r->got], &f);
        r->got++;
        off += WIRE_PREFIX + body;
    }
    assert_int_equal(rc, 0); // the rest needs more bytes
    wire_buf_consume(&r->in, off);
}

//  Every sample, plus an empty PUB and a REPLY without rows.
static size_t s_stream(wire_frame_t *frames, wire_buf_t *buf, size_t *ends)
{
    size_t n = 0;
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        frames[n++] = s_sample(type);
    }
    frames[n] = s_sample(WIRE_PUB);
    frames[n++].payload = wire_str("");
    frames[n++] = (wire_frame_t){.type = WIRE_REPLY, .req = 3};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(wire_encode(buf, &frames[i]), 0);
        ends[i] = buf->len;
    }
    return n;
}

static void test_peek_every_split_of_a_stream(void **state)
{
    wire_frame_t frames[WIRE_TYPE_MAX + 2];
    size_t ends[WIRE_TYPE_MAX + 2];
    wire_buf_t stream = {0};
    size_t n = s_stream(frames, &stream, ends);
    for (size_t split = 0; split <= stream.len; split++) {
        reader_t r = {.decoder = *state, .want = frames, .nwant = n};
        s_reader_feed(&r, stream.data, split);
        size_t complete = 0;
        while (complete < n && ends[complete] <= split) {
            complete++;
        }
        assert_int_equal(r.got, complete);
        //  what is left is exactly the partial frame
        assert_int_equal(r.in.len, split - (complete ? ends[complete - 1] : 0));
        s_reader_feed(&r, stream.data + split, stream.len - split);
        assert_int_equal(r.got, n);
        assert_int_equal(r.in.len, 0);
        wire_buf_free(&r.in);
    }
    wire_buf_free(&stream);
}

static void test_peek_needs_the_whole_prefix_and_body(void **state)
{
    (void)state;
    wire_frame_t ping = s_sample(WIRE_PING);
    wire_buf_t buf = s_encode(&ping);
    size_t body = 12345;
    for (size_t len = 0; len < WIRE_PREFIX; len++) {
        assert_int_equal(wire_peek(buf.data, len, MAX_BODY, &body), 0);
    }
    for (size_t len = WIRE_PREFIX; len < buf.len; len++) {
        assert_int_equal(wire_peek(buf.data, len, MAX_BODY, &body), 0);
        assert_int_equal(body, buf.len - WIRE_PREFIX);
    }
    assert_int_equal(wire_peek(buf.data, buf.len, MAX_BODY, &body), 1);
    assert_int_equal(body, buf.len - WIRE_PREFIX);
    //  a body exactly at the limit is fine
    assert_int_equal(wire_peek(buf.data, buf.len, body, &body), 1);
    wire_buf_free(&buf);
}

static void test_peek_refuses_oversize_and_zero_lengths(void **state)
{
    (void)state;
    size_t body = 0;
    //  announced length one over the limit: refused from the prefix alone
    uint8_t over[WIRE_PREFIX] = {0x00, 0x10, 0x10, 0x01};
    size_t announced = 0x101001;
    errno = 0;
    assert_int_equal(wire_peek(over, sizeof over, announced - 1, &body), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(wire_peek(over, sizeof over, announced, &body), 0);
    assert_int_equal(body, announced);
    uint8_t huge[WIRE_PREFIX] = {0xff, 0xff, 0xff, 0xff};
    errno = 0;
    assert_int_equal(wire_peek(huge, sizeof huge, MAX_BODY, &body), -1);
    assert_int_equal(errno, EMSGSIZE);
    uint8_t zero[WIRE_PREFIX + 2] = {0, 0, 0, 0, 0x91, 0x08};
    errno = 0;
    assert_int_equal(wire_peek(zero, sizeof zero, MAX_BODY, &body), -1);
    assert_int_equal(errno, EPROTO);
    errno = 0;
    assert_int_equal(wire_peek(zero, WIRE_PREFIX, MAX_BODY, &body), -1);
    assert_int_equal(errno, EPROTO);
}

//  A reader that gets 1..7 bytes per read extracts every frame as soon as
//  it is complete, and no earlier.
static void test_partial_reads_of_a_stream(void **state)
{
    wire_frame_t frames[WIRE_TYPE_MAX + 2];
    size_t ends[WIRE_TYPE_MAX + 2];
    wire_buf_t stream = {0};
    size_t n = s_stream(frames, &stream, ends);
    for (int round = 0; round < 50; round++) {
        reader_t r = {.decoder = *state, .want = frames, .nwant = n};
        size_t sent = 0;
        while (sent < stream.len) {
            size_t chunk = 1 + s_rand() % 7;
            if (chunk > stream.len - sent) {
                chunk = stream.len - sent;
            }
            s_reader_feed(&r, stream.data + sent, chunk);
            sent += chunk;
            size_t complete = 0;
            while (complete < n && ends[complete] <= sent) {
                complete++;
            }
            assert_int_equal(r.got, complete);
        }
        assert_int_equal(r.got, n);
        assert_int_equal(r.in.len, 0);
        wire_buf_free(&r.in);
    }
    wire_buf_free(&stream);
}

static void test_buf_consume(void **state)
{
    (void)state;
    wire_buf_t buf = {0};
    assert_int_equal(wire_buf_reserve(&buf, 10), 0);
    assert_true(buf.cap >= 10);
    memcpy(buf.data, "0123456789", 10);
    buf.len = 10;
    wire_buf_consume(&buf, 0);
    assert_int_equal(buf.len, 10);
    wire_buf_consume(&buf, 3);
    assert_int_equal(buf.len, 7);
    assert_memory_equal(buf.data, "3456789", 7);
    wire_buf_consume(&buf, 7);
    assert_int_equal(buf.len, 0);
    wire_buf_consume(&buf, 5); // more than there is
    assert_int_equal(buf.len, 0);
    wire_buf_free(&buf);
    wire_buf_free(&buf); // twice is fine
    assert_int_equal(buf.cap, 0);
}

// --- decoding what is not a valid frame --------------------------------------

static void test_every_truncated_body_is_refused(void **state)
{
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        wire_frame_t frame = s_sample(type);
        wire_buf_t buf = s_encode(&frame);
        size_t body_len;
        const uint8_t *body = s_body_of(&buf, &body_len);
        for (size_t cut = 0; cut < body_len; cut++) {
            wire_frame_t got;
            assert_int_equal(s_decode_exact(*state, body, cut, &got), EPROTO);
            assert_true(strlen(wire_decoder_error(*state)) > 0);
        }
        wire_frame_t got;
        assert_int_equal(s_decode_exact(*state, body, body_len, &got), 0);
        assert_string_equal(wire_decoder_error(*state), "");
        wire_buf_free(&buf);
    }
}

static void test_trailing_bytes_are_refused(void **state)
{
    static const uint8_t extra[][3] = {{0xc0}, {0x01}, {0x91, 0x08}};
    static const size_t extra_len[] = {1, 1, 2};
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        wire_frame_t frame = s_sample(type);
        for (size_t e = 0; e < 3; e++) {
            wire_buf_t buf = s_encode(&frame);
            assert_int_equal(wire_buf_reserve(&buf, 3), 0);
            memcpy(buf.data + buf.len, extra[e], extra_len[e]);
            buf.len += extra_len[e];
            wire_frame_t got;
            assert_int_equal(s_decode_exact(*state, buf.data + WIRE_PREFIX,
                                            buf.len - WIRE_PREFIX, &got),
                             EPROTO);
            wire_buf_free(&buf);
        }
    }
}

//  The protocol table, written here from wire.c's header comment: field
//  kinds (U uint, S str, B bin, I 16-byte bin, b bool, R rows) and the
//  wire_frame_t member each one fills.
typedef struct {
    const char *kinds;
    const char *fields[7];
} shape_t;

static const shape_t s_shapes[WIRE_TYPE_MAX] = {
    [WIRE_HELLO] = {"UISU", {"version", "id", "name", "flags"}},
    [WIRE_WELCOME] = {"UISUS",
                      {"version", "node", "channel", "max_payload", "name"}},
    [WIRE_SUB] = {"USS", {"req", "ns", "topic"}},
    [WIRE_UNSUB] = {"USS", {"req", "ns", "topic"}},
    [WIRE_PUB] = {"USSUUB", {"req", "ns", "topic", "flags", "seq", "payload"}},
    [WIRE_MSG] = {"SSUIUBI",
                  {"ns", "topic", "flags", "id", "seq", "payload", "node"}},
    [WIRE_ERR] = {"UUS", {"req", "code", "text"}},
    [WIRE_PING] = {"U", {"token"}},
    [WIRE_PONG] = {"U", {"token"}},
    [WIRE_QUERY] = {"USS", {"req", "text", "arg"}},
    [WIRE_REPLY] = {"UR", {"req", "rows"}},
    [WIRE_STATUS] = {"bbUS", {"readable", "writable", "count", "text"}},
    [WIRE_GAP] = {"SSIUU", {"ns", "topic", "id", "count", "code"}},
    [WIRE_SUBACK] = {"USSb", {"req", "ns", "topic", "everywhere"}},
    [WIRE_PSET] = {"USSSB", {"req", "ns", "topic", "arg", "meta"}},
    [WIRE_PCLEAR] = {"USSS", {"req", "ns", "topic", "arg"}},
    [WIRE_PLIST] = {"USS", {"req", "ns", "topic"}},
    [WIRE_PEVENT] = {"SSSBIb",
                     {"ns", "topic", "arg", "meta", "node", "present"}},
    [WIRE_MEMBER] = {"ISUS", {"node", "name", "count", "text"}},
};

//  Wrong values per kind: how many, and packing the i-th.
static size_t s_wrong_count(char kind)
{
    switch (kind) {
        case 'U':
            return 6;
        case 'S':
            return 4;
        case 'B':
            return 3;
        case 'I':
            return 5;
        case 'b':
            return 3;
        case 'R':
            return 9;
    }
    fail_msg("kind %c", kind);
    return 0;
}

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void s_pack_bin(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_bin_with_body(pk, s, len);
}

static void s_pack_row(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_array(pk, 2);
    s_pack_str(pk, k);
    s_pack_str(pk, v);
}

static void s_pack_good(msgpack_packer *pk, char kind)
{
    switch (kind) {
        case 'U':
            msgpack_pack_uint64(pk, 7);
            break;
        case 'S':
            s_pack_str(pk, "s");
            break;
        case 'B':
            s_pack_bin(pk, "b", 1);
            break;
        case 'I':
            s_pack_bin(pk, s_node, WIRE_ID_SIZE);
            break;
        case 'b':
            msgpack_pack_true(pk);
            break;
        case 'R':
            msgpack_pack_array(pk, 1);
            s_pack_row(pk, "k", "v");
            break;
    }
}

static void s_pack_wrong(msgpack_packer *pk, char kind, size_t which)
{
    if (which == 0) {
        msgpack_pack_nil(pk); // wrong for every kind
        return;
    }
    switch (kind) {
        case 'U':
            if (which == 1) {
                msgpack_pack_int64(pk, -1);
            } else if (which == 2) {
                s_pack_str(pk, "7");
            } else if (which == 3) {
                msgpack_pack_true(pk);
            } else if (which == 4) {
                msgpack_pack_double(pk, 7.0);
            } else {
                msgpack_pack_array(pk, 1);
                msgpack_pack_uint64(pk, 7);
            }
            break;
        case 'S':
            if (which == 1) {
                s_pack_bin(pk, "s", 1);
            } else if (which == 2) {
                msgpack_pack_uint64(pk, 7);
            } else {
                msgpack_pack_array(pk, 1);
                s_pack_str(pk, "s");
            }
            break;
        case 'B':
            if (which == 1) {
                s_pack_str(pk, "b");
            } else {
                msgpack_pack_uint64(pk, 7);
            }
            break;
        case 'I':
            if (which == 1) {
                s_pack_bin(pk, s_node, WIRE_ID_SIZE - 1);
            } else if (which == 2) {
                char id[WIRE_ID_SIZE + 1] = {0};
                s_pack_bin(pk, id, sizeof id);
            } else if (which == 3) {
                msgpack_pack_str_with_body(pk, s_node, WIRE_ID_SIZE);
            } else {
                s_pack_bin(pk, "", 0);
            }
            break;
        case 'b':
            if (which == 1) {
                msgpack_pack_uint64(pk, 1);
            } else {
                s_pack_str(pk, "true");
            }
            break;
        case 'R':
            switch (which) {
                case 1: // a map instead of rows
                    msgpack_pack_map(pk, 1);
                    s_pack_str(pk, "k");
                    s_pack_str(pk, "v");
                    break;
                case 2: // a row of one
                    msgpack_pack_array(pk, 1);
                    msgpack_pack_array(pk, 1);
                    s_pack_str(pk, "k");
                    break;
                case 3: // a row of three
                    msgpack_pack_array(pk, 1);
                    msgpack_pack_array(pk, 3);
                    s_pack_str(pk, "k");
                    s_pack_str(pk, "v");
                    s_pack_str(pk, "w");
                    break;
                case 4: // a bin value
                    msgpack_pack_array(pk, 1);
                    msgpack_pack_array(pk, 2);
                    s_pack_str(pk, "k");
                    s_pack_bin(pk, "v", 1);
                    break;
                case 5: // an int key
                    msgpack_pack_array(pk, 1);
                    msgpack_pack_array(pk, 2);
                    msgpack_pack_uint64(pk, 1);
                    s_pack_str(pk, "v");
                    break;
                case 6: // flat instead of pairs
                    msgpack_pack_array(pk, 2);
                    s_pack_str(pk, "k");
                    s_pack_str(pk, "v");
                    break;
                case 7: // a good row, then a bad one
                    msgpack_pack_array(pk, 2);
                    s_pack_row(pk, "k", "v");
                    msgpack_pack_uint64(pk, 7);
                    break;
                default: // a string
                    s_pack_str(pk, "k=v");
                    break;
            }
            break;
    }
}

//  Packs [type, fields...] with nfields fields of the shape (extra ones
//  are nil); field bad (if < nfields) gets wrong value `which`.
static void s_pack_body(msgpack_sbuffer *sb, int type, size_t nfields,
                        size_t bad, size_t which)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    const char *kinds = s_shapes[type].kinds;
    msgpack_pack_array(&pk, 1 + nfields);
    msgpack_pack_uint64(&pk, (uint64_t)type);
    for (size_t i = 0; i < nfields; i++) {
        char kind = i < strlen(kinds) ? kinds[i] : 0;
        if (!kind) {
            msgpack_pack_nil(&pk);
        } else if (i == bad) {
            s_pack_wrong(&pk, kind, which);
        } else {
            s_pack_good(&pk, kind);
        }
    }
}

static void test_table_in_the_comment_matches_the_codec(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        size_t n = strlen(s_shapes[type].kinds);
        s_pack_body(&sb, type, n, SIZE_MAX, 0);
        wire_frame_t got;
        assert_int_equal(
            s_decode_exact(*state, (uint8_t *)sb.data, sb.size, &got), 0);
        assert_int_equal(got.type, type);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void test_wrong_field_kinds_are_refused_by_name(void **state)
{
    char why[200] = "";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        const shape_t *shape = &s_shapes[type];
        size_t n = strlen(shape->kinds);
        for (size_t bad = 0; bad < n; bad++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", wire_type_name(type),
                     shape->fields[bad]);
            for (size_t which = 0; which < s_wrong_count(shape->kinds[bad]);
                 which++) {
                s_pack_body(&sb, type, n, bad, which);
                wire_frame_t got;
                int err =
                    s_decode_exact(*state, (uint8_t *)sb.data, sb.size, &got);
                if (!*why && (err != EPROTO || got.type != type ||
                              !strstr(wire_decoder_error(*state), name))) {
                    snprintf(why, sizeof why,
                             "%s, wrong value %zu: errno %d, error '%s'", name,
                             which, err, wire_decoder_error(*state));
                }
            }
        }
    }
    msgpack_sbuffer_destroy(&sb);
    if (*why) {
        fail_msg("%s", why);
    }
}

static void test_wrong_field_counts_are_refused(void **state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        size_t n = strlen(s_shapes[type].kinds);
        size_t counts[] = {0, n - 1, n + 1, n + 5};
        for (size_t c = 0; c < 4; c++) {
            if (counts[c] == n) {
                continue;
            }
            s_pack_body(&sb, type, counts[c], SIZE_MAX, 0);
            wire_frame_t got;
            assert_int_equal(
                s_decode_exact(*state, (uint8_t *)sb.data, sb.size, &got),
                EPROTO);
            assert_non_null(
                strstr(wire_decoder_error(*state), wire_type_name(type)));
        }
    }
    msgpack_sbuffer_destroy(&sb);
}

static void test_not_an_array_of_type_is_refused(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\x08", 1},            // a bare int
        {"\x90", 1},            // []
        {"\x91\xc0", 2},        // [nil]
        {"\x92\xa3PUB\x00", 5}, // ["PUB", 0]
        {"\x91\xff", 2},        // [-1]
        {"\x81\x01\x02", 3},    // {1: 2}
        {"\xc1", 1},            // never used
        {"\x92\x08\xc1", 3},    // [8, never used]
        {"\xa4ping", 5},        // "ping"
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wire_frame_t got;
        assert_int_equal(s_decode_exact(*state, (const uint8_t *)bad[i].bytes,
                                        bad[i].len, &got),
                         EPROTO);
        assert_true(strlen(wire_decoder_error(*state)) > 0);
    }
}

//  An unknown type is not a broken stream: EBADMSG, and the type it
//  carried, for the ERR that answers it.
static void test_unknown_types_are_ebadmsg_with_the_type(void **state)
{
    uint64_t types[] = {0, WIRE_TYPE_MAX, WIRE_TYPE_MAX + 1, 99, 127, 200};
    char why[128] = "";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        for (size_t nfields = 0; nfields < 3; nfields++) {
            msgpack_sbuffer_clear(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 1 + nfields);
            msgpack_pack_uint64(&pk, types[i]);
            for (size_t f = 0; f < nfields; f++) {
                s_pack_str(&pk, "future field");
            }
            wire_frame_t got;
            int err = s_decode_exact(*state, (uint8_t *)sb.data, sb.size, &got);
            if (!*why && (err != EBADMSG || got.type != (int)types[i])) {
                snprintf(why, sizeof why, "type %llu: errno %d, frame->type %d",
                         (unsigned long long)types[i], err, got.type);
            }
        }
    }
    //  a type that does not fit an int is still EBADMSG, never a known type
    msgpack_sbuffer_clear(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, (1ull << 32) + WIRE_PING);
    msgpack_pack_uint64(&pk, 1);
    wire_frame_t got;
    assert_int_equal(s_decode_exact(*state, (uint8_t *)sb.data, sb.size, &got),
                     EBADMSG);
    assert_true(got.type <= 0 || got.type >= WIRE_TYPE_MAX);
    msgpack_sbuffer_destroy(&sb);
    if (*why) {
        fail_msg("%s", why);
    }
}

// --- wire_msgpack_bounded ----------------------------------------------------

static void test_bounded_refuses_huge_announcements(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\xdd\x80\x00\x00\x00", 5},             // array32 of 2^31
        {"\xdd\x80\x00\x00\x00\xc0\xc0\xc0", 8}, // ... with 3 bytes after
        {"\xdd\xff\xff\xff\xff", 5},             // array32 of 2^32-1
        {"\xdf\x80\x00\x00\x00", 5},             // map32 of 2^31
        {"\xdc\xff\xff\xc0", 4},                 // array16 of 65535
        {"\xde\x00\x02\xc0\xc0\xc0", 6},         // map16 of 2: 4 items
        {"\x9f\xc0\xc0", 3},                     // fixarray of 15
        {"\x82\xc0\xc0\xc0", 4},                 // fixmap of 2
        {"\xdb\x7f\xff\xff\xff", 5},             // str32 of 2^31-1
        {"\xc6\x00\x01\x00\x00\x00", 6},         // bin32 of 65536
        {"\xc5\x00\x02\x00", 4},                 // bin16 of 2, 1 there
        {"\xd9\x05wxyz", 6},                     // str8 of 5, 4 there
        {"\xc9\xff\xff\xff\xff\x01", 6},         // ext32
        {"\x92\x91\xdd\x7f\xff\xff\xff", 7},     // nested
        {"\xdd\x00\x00", 3},                     // header cut
        {"", 0},                                 // nothing
        {"\x92\x01", 2},                         // an element missing
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *copy = malloc(bad[i].len + 1);
        memcpy(copy, bad[i].bytes, bad[i].len);
        if (wire_msgpack_bounded(copy, bad[i].len)) {
            fail_msg("case %zu accepted", i);
        }
        wire_frame_t got;
        assert_int_equal(s_decode_exact(*state, copy, bad[i].len, &got),
                         EPROTO);
        free(copy);
    }
}

static void test_bounded_accepts_every_valid_body(void **state)
{
    (void)state;
    for (int type = WIRE_HELLO; type < WIRE_TYPE_MAX; type++) {
        wire_frame_t frame = s_sample(type);
        wire_buf_t buf = s_encode(&frame);
        assert_true(wire_msgpack_bounded(buf.data + WIRE_PREFIX,
                                         buf.len - WIRE_PREFIX));
        wire_buf_free(&buf);
    }
    static const struct {
        const char *bytes;
        size_t len;
    } good[] = {
        {"\xc0", 1},
        {"\x90", 1},
        {"\xdd\x00\x00\x00\x00", 5},
        {"\xdd\x00\x00\x00\x02\xc0\xc0", 7},
        {"\xdf\x00\x00\x00\x01\xc0\xc0", 7},
        {"\xcb\x00\x00\x00\x00\x00\x00\x00\x00", 9},
        {"\xd8\x01ghijklmnopqrstuv", 18},
        {"\xc7\x02\x01xy", 5},
        {"\x93\xa0\xc4\x00\x80", 5},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!wire_msgpack_bounded((const uint8_t *)good[i].bytes,
                                  good[i].len)) {
            fail_msg("case %zu refused", i);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_round_trips),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_payload_holds_every_byte_value),
        cmocka_unit_test(test_empty_payload_and_strings),
        cmocka_unit_test(test_zeroed_string_fields_encode_as_empty),
        cmocka_unit_test(test_one_mib_payload),
        cmocka_unit_test(test_reply_rows_round_trip),
        cmocka_unit_test(test_decoder_is_reused),
        cmocka_unit_test(test_encode_refuses_unknown_types),
        cmocka_unit_test(test_peek_every_split_of_a_stream),
        cmocka_unit_test(test_peek_needs_the_whole_prefix_and_body),
        cmocka_unit_test(test_peek_refuses_oversize_and_zero_lengths),
        cmocka_unit_test(test_partial_reads_of_a_stream),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_every_truncated_body_is_refused),
        cmocka_unit_test(test_trailing_bytes_are_refused),
        cmocka_unit_test(test_table_in_the_comment_matches_the_codec),
        cmocka_unit_test(test_wrong_field_kinds_are_refused_by_name),
        cmocka_unit_test(test_wrong_field_counts_are_refused),
        cmocka_unit_test(test_not_an_array_of_type_is_refused),
        cmocka_unit_test(test_unknown_types_are_ebadmsg_with_the_type),
        cmocka_unit_test(test_bounded_refuses_huge_announcements),
        cmocka_unit_test(test_bounded_accepts_every_valid_body),
    };
    return cmocka_run_group_tests_name("wire", tests, s_setup, s_teardown);
}
