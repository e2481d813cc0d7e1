/*  Unit tests: session (what roomcastd does with each frame an app sends).

    Frames in, frames out: every test encodes the frames an app would send
    with wire_encode, hands their bodies to session_frame, and reads what
    the session did from a fake session_io_t that records each call in
    order (the frames it was given are encoded again on the way in, and
    decoded when the test looks at them, so they are checked as the app
    would see them on the wire).
*/

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

#include "conn.h"
#include "session.h"
#include "stats.h"
#include "wire.h"

#define MAX_PAYLOAD 4096
#define MAX_META    65536
#define MAX_CALLS   16

static const uint8_t s_node_id[16] = "node-0123456789";
static const char s_instance[16] = "inst-abcdefghij";

// --- the fake io
// --------------------------------------------------------------

typedef enum {
    IO_SEND,
    IO_CLOSE,
    IO_HELLO,
    IO_SUB,
    IO_UNSUB,
    IO_PUB,
    IO_PSET,
    IO_PCLEAR,
    IO_PLIST,
    IO_QUERY
} io_kind_t;

static const char *s_kind_name[] = {"send",  "close", "hello", "sub",
                                    "unsub", "pub",   "pset",  "pclear",
                                    "plist", "query"};

//  One call the session made.
typedef struct {
    io_kind_t kind;
    conn_t *conn;
    wire_buf_t frame; // the frame it was given, encoded (empty for hello)
    wire_err_t code;  // close
    char why[256];    // close
} call_t;

typedef struct {
    session_t *session;
    stats_t stats;
    call_t calls[MAX_CALLS];
    size_t ncalls;
    size_t seen;             // calls the test has looked at
    wire_decoder_t *decoder; // for the frames the test looks at
    wire_frame_t out;        // the last one looked at
    wire_buf_t in;           // what the app sends, encoded
    conn_t app;              // two apps on one sidecar
    conn_t other;            //
    char big[MAX_META + 2];  // long names and payloads
} fixture_t;

static call_t *s_record(fixture_t *fx, io_kind_t kind, conn_t *conn,
                        const wire_frame_t *f)
{
    if (fx->seen == fx->ncalls) {
        fx->seen = fx->ncalls = 0; // every call so far looked at: start over
    }
    assert_true(fx->ncalls < MAX_CALLS);
    call_t *call = &fx->calls[fx->ncalls++];
    call->kind = kind;
    call->conn = conn;
    call->frame.len = 0;
    if (f) {
        assert_int_equal(wire_encode(&call->frame, f), 0);
    }
    return call;
}

static void s_io_send(void *arg, conn_t *conn, const wire_frame_t *f)
{
    s_record(arg, IO_SEND, conn, f);
}

static void s_io_close(void *arg, conn_t *conn, wire_err_t code,
                       const char *why)
{
    call_t *call = s_record(arg, IO_CLOSE, conn, NULL);
    call->code = code;
    snprintf(call->why, sizeof call->why, "%s", why);
}

static void s_io_hello(void *arg, conn_t *conn)
{
    s_record(arg, IO_HELLO, conn, NULL);
}

#define IO_REQUEST(name, kind)                                                 \
    static void s_io_##name(void *arg, conn_t *conn, const wire_frame_t *f)    \
    {                                                                          \
        s_record(arg, kind, conn, f);                                          \
    }
IO_REQUEST(sub, IO_SUB)
IO_REQUEST(unsub, IO_UNSUB)
IO_REQUEST(pub, IO_PUB)
IO_REQUEST(pset, IO_PSET)
IO_REQUEST(pclear, IO_PCLEAR)
IO_REQUEST(plist, IO_PLIST)
IO_REQUEST(query, IO_QUERY)

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    session_config_t cfg = {.channel = "test-channel",
                            .node_id = s_node_id,
                            .max_payload = MAX_PAYLOAD};
    session_io_t io = {.arg = fx,
                       .send = s_io_send,
                       .close = s_io_close,
                       .hello = s_io_hello,
                       .sub = s_io_sub,
                       .unsub = s_io_unsub,
                       .pub = s_io_pub,
                       .pset = s_io_pset,
                       .pclear = s_io_pclear,
                       .plist = s_io_plist,
                       .query = s_io_query};
    fx->session = session_new(&cfg, &io, &fx->stats);
    assert_non_null(fx->session);
    fx->decoder = wire_decoder_new();
    assert_non_null(fx->decoder);
    fx->app.id = 1;
    fx->other.id = 2;
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    session_destroy(&fx->session);
    session_destroy(&fx->session); // twice is fine
    assert_null(fx->session);
    for (size_t i = 0; i < MAX_CALLS; i++) {
        wire_buf_free(&fx->calls[i].frame);
    }
    wire_buf_free(&fx->in);
    wire_decoder_destroy(&fx->decoder);
    free(fx);
    return 0;
}

// --- what the app sends, what the test expects ----------------------------

//  The app sends frame f on conn.
static void s_send(fixture_t *fx, conn_t *conn, const wire_frame_t *f)
{
    fx->in.len = 0;
    assert_int_equal(wire_encode(&fx->in, f), 0);
    session_frame(fx->session, conn, fx->in.data + WIRE_PREFIX,
                  fx->in.len - WIRE_PREFIX);
}

//  The app sends body bytes that need not be a frame at all.
static void s_send_raw(fixture_t *fx, conn_t *conn, const char *body,
                       size_t len)
{
    session_frame(fx->session, conn, (const uint8_t *)body, len);
}

//  The next call the session made is kind, about conn; its frame (if any)
//  decoded. Returns that frame.
static const wire_frame_t *s_next(fixture_t *fx, io_kind_t kind,
                                  const conn_t *conn)
{
    if (fx->seen >= fx->ncalls) {
        fail_msg("expected io.%s, the session made no further call",
                 s_kind_name[kind]);
    }
    const call_t *call = &fx->calls[fx->seen++];
    if (call->kind != kind) {
        fail_msg("expected io.%s, got io.%s", s_kind_name[kind],
                 s_kind_name[call->kind]);
    }
    assert_ptr_equal(call->conn, conn);
    memset(&fx->out, 0, sizeof fx->out);
    if (call->frame.len) {
        assert_int_equal(wire_decode(fx->decoder,
                                     call->frame.data + WIRE_PREFIX,
                                     call->frame.len - WIRE_PREFIX, &fx->out),
                         0);
    }
    return &fx->out;
}

//  The session made no call that the test did not look at.
static void s_no_more_calls(const fixture_t *fx)
{
    if (fx->seen != fx->ncalls) {
        fail_msg("unexpected io.%s", s_kind_name[fx->calls[fx->seen].kind]);
    }
}

static bool s_str_is(wire_str_t s, const char *expected)
{
    return s.len == strlen(expected) && memcmp(s.ptr, expected, s.len) == 0;
}

static bool s_str_has(wire_str_t s, const char *part)
{
    return memmem(s.ptr, s.len, part, strlen(part)) != NULL;
}

#define assert_str_is(s, expected) assert_true(s_str_is((s), (expected)))
#define assert_str_has(s, part)    assert_true(s_str_has((s), (part)))
#define assert_same_str(a, b)                                                  \
    do {                                                                       \
        assert_int_equal((a).len, (b).len);                                    \
        assert_memory_equal((a).ptr, (b).ptr, (a).len);                        \
    } while (0)

//  The next call answers conn's request req with ERR code and nothing
//  else happens. Returns the ERR.
static const wire_frame_t *s_expect_err(fixture_t *fx, const conn_t *conn,
                                        uint64_t req, wire_err_t code)
{
    const wire_frame_t *err = s_next(fx, IO_SEND, conn);
    assert_int_equal(err->type, WIRE_ERR);
    assert_int_equal(err->req, req);
    assert_int_equal(err->code, code);
    assert_true(err->text.len > 0);
    s_no_more_calls(fx);
    return err;
}

//  The next call closes conn with code; nothing else happens. Returns why.
static const char *s_expect_close(fixture_t *fx, const conn_t *conn,
                                  wire_err_t code)
{
    s_next(fx, IO_CLOSE, conn);
    s_no_more_calls(fx);
    const call_t *call = &fx->calls[fx->seen - 1];
    assert_int_equal(call->code, code);
    return call->why;
}

static wire_frame_t s_hello_frame(void)
{
    return (wire_frame_t){.type = WIRE_HELLO,
                          .version = WIRE_VERSION,
                          .id = {s_instance, 16},
                          .name = wire_str("chat-app"),
                          .flags = WIRE_HF_GAPS | WIRE_HF_PRESENCE};
}

//  conn says HELLO and is welcome.
static void s_hello(fixture_t *fx, conn_t *conn)
{
    wire_frame_t hello = s_hello_frame();
    s_send(fx, conn, &hello);
    assert_int_equal(s_next(fx, IO_SEND, conn)->type, WIRE_WELCOME);
    s_next(fx, IO_HELLO, conn);
    s_no_more_calls(fx);
}

//  A request of type with req, namespace and topic (and what each type
//  needs besides, valid).
static wire_frame_t s_request(int type, uint64_t req, const char *ns,
                              const char *topic)
{
    wire_frame_t f = {
        .type = type, .req = req, .ns = wire_str(ns), .topic = wire_str(topic)};
    if (type == WIRE_PUB) {
        f.flags = WIRE_F_BINARY;
        f.seq = 7;
        f.payload = wire_str("hello room");
    }
    if (type == WIRE_PSET || type == WIRE_PCLEAR) {
        f.arg = wire_str("alice");
    }
    if (type == WIRE_PSET) {
        f.meta = wire_str("{\"status\":\"away\"}");
    }
    return f;
}

//  The frame the coordinator got is the frame the app sent.
static void s_assert_same_request(const wire_frame_t *got,
                                  const wire_frame_t *sent)
{
    assert_int_equal(got->type, sent->type);
    assert_int_equal(got->req, sent->req);
    assert_same_str(got->ns, sent->ns);
    assert_same_str(got->topic, sent->topic);
    assert_int_equal(got->flags, sent->flags);
    assert_int_equal(got->seq, sent->seq);
    assert_same_str(got->payload, sent->payload);
    assert_same_str(got->text, sent->text);
    assert_same_str(got->arg, sent->arg);
    assert_same_str(got->meta, sent->meta);
}

//  Requests that carry a namespace and a topic, and the io call each makes.
static const struct {
    int type;
    io_kind_t kind;
} s_named[] = {
    {WIRE_SUB, IO_SUB},   {WIRE_UNSUB, IO_UNSUB},   {WIRE_PUB, IO_PUB},
    {WIRE_PSET, IO_PSET}, {WIRE_PCLEAR, IO_PCLEAR}, {WIRE_PLIST, IO_PLIST},
};
#define NNAMED (sizeof s_named / sizeof s_named[0])

// --- HELLO ------------------------------------------------------------------

//  HELLO is answered with WELCOME (who the sidecar is), then the
//  coordinator hears of the new app (to tell it the health).
static void test_hello_gets_welcome_then_io_hello(void **state)
{
    fixture_t *fx = *state;
    wire_frame_t hello = s_hello_frame();
    s_send(fx, &fx->app, &hello);

    const wire_frame_t *w = s_next(fx, IO_SEND, &fx->app);
    assert_int_equal(w->type, WIRE_WELCOME);
    assert_int_equal(w->version, WIRE_VERSION);
    assert_memory_equal(w->node.ptr, s_node_id, 16);
    assert_str_is(w->channel, "test-channel");
    assert_int_equal(w->max_payload, MAX_PAYLOAD);
    assert_str_is(w->name, ROOMCAST_VERSION_STRING);
    s_next(fx, IO_HELLO, &fx->app);
    s_no_more_calls(fx);

    //  what the app said about itself is kept on its connection
    assert_true(fx->app.hello);
    assert_int_equal(fx->app.hello_flags, WIRE_HF_GAPS | WIRE_HF_PRESENCE);
    assert_memory_equal(fx->app.instance, s_instance, 16);
    assert_string_equal(fx->app.name, "chat-app");
    assert_false(fx->other.hello);
    assert_int_equal(fx->stats.bad_frames, 0);
}

static void test_hello_twice_is_out_of_order(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    wire_frame_t again = s_hello_frame();
    again.name = wire_str("another-name");
    s_send(fx, &fx->app, &again);

    const wire_frame_t *err = s_expect_err(fx, &fx->app, 0, WIRE_E_ORDER);
    assert_str_has(err->text, "HELLO");
    assert_int_equal(fx->stats.bad_frames, 1);
    assert_string_equal(fx->app.name, "chat-app"); // the first one stands
}

//  A version the sidecar does not speak ends the connection: nothing else
//  it sends could be understood.
static void test_hello_with_another_version_closes(void **state)
{
    fixture_t *fx = *state;
    wire_frame_t hello = s_hello_frame();
    hello.version = WIRE_VERSION + 1;
    s_send(fx, &fx->app, &hello);

    const char *why = s_expect_close(fx, &fx->app, WIRE_E_VERSION);
    assert_non_null(strstr(why, "version 2"));
    assert_int_equal(fx->stats.closed_proto, 1);
    assert_false(fx->app.hello);
}

//  Every request before HELLO is refused (its req echoed) and reaches no
//  one.
static void test_requests_before_hello_are_out_of_order(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < NNAMED; i++) {
        wire_frame_t f = s_request(s_named[i].type, 10 + i, "ns", "t");
        s_send(fx, &fx->app, &f);
        const wire_frame_t *err =
            s_expect_err(fx, &fx->app, 10 + i, WIRE_E_ORDER);
        assert_str_has(err->text, wire_type_name(s_named[i].type));
        assert_str_has(err->text, "before HELLO");
    }
    wire_frame_t query = {
        .type = WIRE_QUERY, .req = 20, .text = wire_str("status")};
    s_send(fx, &fx->app, &query);
    s_expect_err(fx, &fx->app, 20, WIRE_E_ORDER);
    wire_frame_t ping = {.type = WIRE_PING, .token = 5};
    s_send(fx, &fx->app, &ping);
    s_expect_err(fx, &fx->app, 0, WIRE_E_ORDER);

    assert_int_equal(fx->stats.bad_frames, NNAMED + 2);
    assert_int_equal(fx->stats.closed_proto, 0);
}

// --- valid requests
// -----------------------------------------------------------

//  A valid request goes to the coordinator as it was sent; the session
//  answers nothing itself.
static void test_valid_requests_reach_the_coordinator(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    for (size_t i = 0; i < NNAMED; i++) {
        wire_frame_t f = s_request(s_named[i].type, 100 + i, "chat", "lobby");
        s_send(fx, &fx->app, &f);
        s_assert_same_request(s_next(fx, s_named[i].kind, &fx->app), &f);
        s_no_more_calls(fx);
    }
    wire_frame_t query = {.type = WIRE_QUERY,
                          .req = 200,
                          .text = wire_str("numsub"),
                          .arg = wire_str("chat\tlobby")};
    s_send(fx, &fx->app, &query);
    s_assert_same_request(s_next(fx, IO_QUERY, &fx->app), &query);
    s_no_more_calls(fx);
    assert_int_equal(fx->stats.bad_frames, 0);
}

//  Names at the limits are fine: 255 bytes, any byte but a control one.
static void test_names_at_the_limits_are_valid(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    memset(fx->big, 'n', WIRE_MAX_NAME);
    fx->big[WIRE_MAX_NAME] = 0;
    const char *names[] = {fx->big, "x", "caf\xc3\xa9 ~ \x80\xff", " "};
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        for (size_t i = 0; i < NNAMED; i++) {
            wire_frame_t f = s_request(s_named[i].type, 1, names[n], names[n]);
            if (s_named[i].type == WIRE_PSET ||
                s_named[i].type == WIRE_PCLEAR) {
                f.arg = wire_str(names[n]);
            }
            s_send(fx, &fx->app, &f);
            s_assert_same_request(s_next(fx, s_named[i].kind, &fx->app), &f);
            s_no_more_calls(fx);
        }
    }
    assert_int_equal(fx->stats.bad_frames, 0);
}

// --- refused requests -------------------------------------------------------

//  A namespace, topic or presence key that is empty, over 255 bytes or
//  holds a control character is refused with BADNAME, which says which
//  one and what is wrong with it.
static void test_bad_names_are_refused(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    memset(fx->big, 'n', WIRE_MAX_NAME + 1);
    fx->big[WIRE_MAX_NAME + 1] = 0;
    const struct {
        const char *name;
        const char *problem;
    } bad[] = {
        {"", "is empty"},
        {fx->big, "longer than 255"},
        {"tab\there", "control character"},
        {"new\nline", "control character"},
        {"del\x7f", "control character"},
        {"\x1b[31m", "control character"},
    };
    uint64_t refused = 0;
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        for (size_t i = 0; i < NNAMED; i++) {
            int type = s_named[i].type;
            bool has_key = type == WIRE_PSET || type == WIRE_PCLEAR;
            for (int which = 0; which < (has_key ? 3 : 2); which++) {
                wire_frame_t f = s_request(type, 40 + b, "ns", "topic");
                const char *field = "namespace";
                if (which == 0) {
                    f.ns = wire_str(bad[b].name);
                } else if (which == 1) {
                    f.topic = wire_str(bad[b].name);
                    field = "topic";
                } else {
                    f.arg = wire_str(bad[b].name);
                    field = "presence key";
                }
                s_send(fx, &fx->app, &f);
                const wire_frame_t *err =
                    s_expect_err(fx, &fx->app, 40 + b, WIRE_E_BADNAME);
                assert_str_has(err->text, wire_type_name(type));
                assert_str_has(err->text, field);
                assert_str_has(err->text, bad[b].problem);
                refused++;
            }
        }
    }
    assert_int_equal(fx->stats.bad_frames, refused);
    assert_int_equal(fx->stats.closed_proto, 0);
}

static void test_pub_over_max_payload_is_too_big(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    memset(fx->big, 'p', MAX_PAYLOAD + 1);
    wire_frame_t pub = s_request(WIRE_PUB, 3, "ns", "t");

    pub.payload = (wire_str_t){fx->big, MAX_PAYLOAD};
    s_send(fx, &fx->app, &pub);
    s_assert_same_request(s_next(fx, IO_PUB, &fx->app), &pub);
    s_no_more_calls(fx);

    pub.payload.len = MAX_PAYLOAD + 1;
    s_send(fx, &fx->app, &pub);
    const wire_frame_t *err = s_expect_err(fx, &fx->app, 3, WIRE_E_TOOBIG);
    assert_str_has(err->text, "4097 bytes");
    assert_str_has(err->text, "4096");
    assert_int_equal(fx->stats.bad_frames, 1);
}

//  PUB flags the sidecar does not know are refused, not ignored: the app
//  would believe they meant something.
static void test_pub_with_unknown_flags_is_refused(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    const uint64_t flags[] = {0, WIRE_F_BINARY, WIRE_F_ECHO,
                              WIRE_F_BINARY | WIRE_F_ECHO};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        wire_frame_t pub = s_request(WIRE_PUB, 4, "ns", "t");
        pub.flags = flags[i];
        s_send(fx, &fx->app, &pub);
        s_assert_same_request(s_next(fx, IO_PUB, &fx->app), &pub);
        s_no_more_calls(fx);
    }
    const uint64_t unknown[] = {0x04, WIRE_F_BINARY | 0x80, 1ull << 63};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        wire_frame_t pub = s_request(WIRE_PUB, 5, "ns", "t");
        pub.flags = unknown[i];
        s_send(fx, &fx->app, &pub);
        const wire_frame_t *err = s_expect_err(fx, &fx->app, 5, WIRE_E_PROTO);
        assert_str_has(err->text, "unknown bits");
    }
    assert_int_equal(fx->stats.bad_frames, 3);
    assert_int_equal(fx->stats.closed_proto, 0); // refused, not closed
}

static void test_pset_meta_over_64k_is_too_big(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    memset(fx->big, 'm', MAX_META + 1);
    wire_frame_t pset = s_request(WIRE_PSET, 6, "ns", "t");

    pset.meta = (wire_str_t){fx->big, MAX_META};
    s_send(fx, &fx->app, &pset);
    s_assert_same_request(s_next(fx, IO_PSET, &fx->app), &pset);
    s_no_more_calls(fx);

    pset.meta.len = MAX_META + 1;
    s_send(fx, &fx->app, &pset);
    const wire_frame_t *err = s_expect_err(fx, &fx->app, 6, WIRE_E_TOOBIG);
    assert_str_has(err->text, "64 KiB");
    assert_int_equal(fx->stats.bad_frames, 1);
}

//  Frames only the sidecar sends are refused with BADTYPE (req echoed
//  where the frame has one); the connection goes on.
static void test_sidecar_frames_are_bad_type(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    const wire_str_t id = {s_instance, 16};
    const wire_frame_t frames[] = {
        {.type = WIRE_WELCOME, .node = id},
        {.type = WIRE_MSG, .id = id, .node = id, .ns = {"ns", 2}},
        {.type = WIRE_ERR, .req = 8, .code = WIRE_E_PROTO},
        {.type = WIRE_REPLY, .req = 9},
        {.type = WIRE_STATUS, .readable = true},
        {.type = WIRE_GAP, .id = id, .count = 3},
        {.type = WIRE_SUBACK, .req = 11, .everywhere = true},
        {.type = WIRE_PEVENT, .node = id},
        {.type = WIRE_MEMBER, .node = id},
    };
    size_t n = sizeof frames / sizeof frames[0];
    for (size_t i = 0; i < n; i++) {
        s_send(fx, &fx->app, &frames[i]);
        const wire_frame_t *err =
            s_expect_err(fx, &fx->app, frames[i].req, WIRE_E_BADTYPE);
        assert_str_has(err->text, wire_type_name(frames[i].type));
        assert_str_has(err->text, "sent by the sidecar");
    }
    //  types no one sends: [0], [20], [99]
    const char *unknown[] = {"\x91\x00", "\x91\x14", "\x91\x63"};
    for (size_t i = 0; i < 3; i++) {
        s_send_raw(fx, &fx->app, unknown[i], 2);
        const wire_frame_t *err = s_expect_err(fx, &fx->app, 0, WIRE_E_BADTYPE);
        assert_str_has(err->text, "unknown frame type");
    }
    assert_int_equal(fx->stats.bad_frames, n + 3);
    assert_int_equal(fx->stats.closed_proto, 0);

    wire_frame_t ping = {.type = WIRE_PING, .token = 1};
    s_send(fx, &fx->app, &ping);
    assert_int_equal(s_next(fx, IO_SEND, &fx->app)->type, WIRE_PONG);
}

//  Bytes that are not a frame close the connection (with PROTO): nothing
//  after them on the stream can be trusted to be framed right. The other
//  app does not notice.
static void test_garbage_closes_with_proto(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    s_hello(fx, &fx->other);
    const struct {
        const char *body;
        size_t len;
    } garbage[] = {
        {"\xc1", 1},                 // not msgpack
        {"\x07", 1},                 // not an array
        {"\x90", 1},                 // an empty array
        {"\x91\xa3PUB", 5},          // type is not a number
        {"\x92\x08", 2},             // array cut short
        {"\x91\x08", 2},             // PING without its token
        {"\x92\x08\xa1x", 4},        // PING token of the wrong kind
        {"\x92\x08\x01\x02", 4},     // trailing bytes
        {"\xdd\xff\xff\xff\xff", 5}, // announces 4 billion items
        {"GET / HTTP/1.1\r\n", 16},  // someone else's protocol
    };
    size_t n = sizeof garbage / sizeof garbage[0];
    for (size_t i = 0; i < n; i++) {
        s_send_raw(fx, &fx->app, garbage[i].body, garbage[i].len);
        const char *why = s_expect_close(fx, &fx->app, WIRE_E_PROTO);
        assert_non_null(strstr(why, "bad frame"));
    }
    assert_int_equal(fx->stats.closed_proto, n);
    assert_int_equal(fx->stats.bad_frames, n);

    wire_frame_t ping = {.type = WIRE_PING, .token = 2};
    s_send(fx, &fx->other, &ping);
    assert_int_equal(s_next(fx, IO_SEND, &fx->other)->token, 2);
    s_no_more_calls(fx);
}

//  PING is answered at once with a PONG that carries its token; a PONG
//  from the app needs no answer.
static void test_ping_gets_pong_with_the_token(void **state)
{
    fixture_t *fx = *state;
    s_hello(fx, &fx->app);
    const uint64_t tokens[] = {0, 1, 0xfeedfacecafebeefull, UINT64_MAX};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        wire_frame_t ping = {.type = WIRE_PING, .token = tokens[i]};
        s_send(fx, &fx->app, &ping);
        const wire_frame_t *pong = s_next(fx, IO_SEND, &fx->app);
        assert_int_equal(pong->type, WIRE_PONG);
        assert_int_equal(pong->token, tokens[i]);
        s_no_more_calls(fx);
    }
    wire_frame_t pong = {.type = WIRE_PONG, .token = 9};
    s_send(fx, &fx->app, &pong);
    s_no_more_calls(fx);
    assert_int_equal(fx->stats.bad_frames, 0);
}

//  session_err is the ERR the coordinator sends for what it refuses.
static void test_session_err_formats_the_text(void **state)
{
    fixture_t *fx = *state;
    session_err(fx->session, &fx->other, 77, WIRE_E_DENIED,
                "PSET refused: %s holds %d keys", "bob", 3);
    const wire_frame_t *err = s_expect_err(fx, &fx->other, 77, WIRE_E_DENIED);
    assert_str_is(err->text, "PSET refused: bob holds 3 keys");
    assert_int_equal(fx->stats.bad_frames, 0); // the coordinator's call
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_hello_gets_welcome_then_io_hello),
        CASE(test_hello_twice_is_out_of_order),
        CASE(test_hello_with_another_version_closes),
        CASE(test_requests_before_hello_are_out_of_order),
        CASE(test_valid_requests_reach_the_coordinator),
        CASE(test_names_at_the_limits_are_valid),
        CASE(test_bad_names_are_refused),
        CASE(test_pub_over_max_payload_is_too_big),
        CASE(test_pub_with_unknown_flags_is_refused),
        CASE(test_pset_meta_over_64k_is_too_big),
        CASE(test_sidecar_frames_are_bad_type),
        CASE(test_garbage_closes_with_proto),
        CASE(test_ping_gets_pong_with_the_token),
        CASE(test_session_err_formats_the_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
