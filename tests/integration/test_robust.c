/*  The sidecar under bad input and restarts: one connection's garbage never
    touches another, a restarted sidecar gets its clients back. */
#include "harness.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

//  A raw connection that speaks bytes, not libroomcast.
static int s_raw(const rcd_t *d)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, d->socket);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void s_raw_send(int fd, const void *data, size_t len)
{
    assert_int_equal(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void s_raw_frame(int fd, const wire_frame_t *f)
{
    wire_buf_t buf = {0};
    assert_int_equal(wire_encode(&buf, f), 0);
    s_raw_send(fd, buf.data, buf.len);
    wire_buf_free(&buf);
}

static void s_raw_hello(int fd)
{
    uint8_t id[16] = {1, 2, 3};
    wire_frame_t h = {.type = WIRE_HELLO,
                      .version = WIRE_VERSION,
                      .id = {(const char *)id, 16},
                      .name = wire_str("raw")};
    s_raw_frame(fd, &h);
}

//  Read frames until one of type `type` arrives (others skipped) or the
//  peer closes. Returns 1 with *code set for ERR, 0 on close, -1 on time.
typedef struct {
    int fd;
    wire_buf_t in;
    wire_decoder_t *dec;
} raw_reader_t;

static int s_raw_expect(raw_reader_t *r, int type, uint64_t *code)
{
    long long deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        size_t body;
        while (r->in.len &&
               wire_peek(r->in.data, r->in.len, 1 << 24, &body) == 1) {
            wire_frame_t f;
            int ok = wire_decode(r->dec, r->in.data + 4, body, &f) == 0;
            int t = f.type;
            uint64_t c = f.code;
            wire_buf_consume(&r->in, 4 + body);
            if (ok && t == type) {
                if (code) {
                    *code = c;
                }
                return 1;
            }
        }
        struct pollfd p = {r->fd, POLLIN, 0};
        poll(&p, 1, 50);
        assert_int_equal(wire_buf_reserve(&r->in, 65536), 0);
        ssize_t n = recv(r->fd, r->in.data + r->in.len, 65536, MSG_DONTWAIT);
        if (n == 0) {
            return 0;
        }
        if (n > 0) {
            r->in.len += (size_t)n;
        }
    }
    return -1;
}

static raw_reader_t s_reader(int fd)
{
    raw_reader_t r = {fd, {0}, wire_decoder_new()};
    return r;
}

static void s_reader_done(raw_reader_t *r)
{
    close(r->fd);
    wire_buf_free(&r->in);
    wire_decoder_destroy(&r->dec);
}

//  Two good clients exchange a message: the sidecar still serves.
static void s_still_serving(rc_client_t *a, rc_client_t *b)
{
    static int n;
    char data[32];
    int len = snprintf(data, sizeof data, "still %d", ++n);
    assert_int_equal(rc_publish(a, "ns", "ok", data, (size_t)len, RC_TEXT), 0);
    rc_msg_t *m;
    assert_int_equal(rc_recv(b, &m, 5000), 0);
    assert_int_equal(rc_msg_size(m), (size_t)len);
    assert_memory_equal(rc_msg_data(m), data, (size_t)len);
    rc_msg_destroy(&m);
}

static void test_bad_input_touches_only_its_connection(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    rc_client_t *a = rcd_client(&d, NULL), *b = rcd_client(&d, NULL);
    assert_int_equal(rc_subscribe_wait(b, "ns", "ok", 5000), 0);
    s_still_serving(a, b);
    uint64_t code = 0;

    //  bytes that are not the protocol: ERR PROTO, then closed
    raw_reader_t r = s_reader(s_raw(&d));
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(i * 37 + 11);
    }
    junk[0] = 0, junk[1] = 0, junk[2] = 0, junk[3] = 60; // a frame of junk
    s_raw_send(r.fd, junk, sizeof junk);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, &code), 1);
    assert_int_equal(code, WIRE_E_PROTO);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, NULL), 0); // closed
    s_reader_done(&r);
    s_still_serving(a, b);

    //  an oversize length prefix: ERR TOOBIG, then closed
    r = s_reader(s_raw(&d));
    s_raw_send(r.fd, "\x7f\xff\xff\xff", 4);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, &code), 1);
    assert_int_equal(code, WIRE_E_TOOBIG);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, NULL), 0);
    s_reader_done(&r);
    s_still_serving(a, b);

    //  valid frames in the wrong order or unknown: a clear ERR, and the
    //  connection stays usable
    r = s_reader(s_raw(&d));
    wire_frame_t pub = {.type = WIRE_PUB,
                        .req = 4,
                        .ns = wire_str("ns"),
                        .topic = wire_str("ok"),
                        .payload = wire_str("x")};
    s_raw_frame(r.fd, &pub);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, &code), 1);
    assert_int_equal(code, WIRE_E_ORDER);
    s_raw_hello(r.fd);
    assert_int_equal(s_raw_expect(&r, WIRE_WELCOME, NULL), 1);
    s_raw_send(r.fd, "\0\0\0\x02\x91\x63", 6); // [99]
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, &code), 1);
    assert_int_equal(code, WIRE_E_BADTYPE);
    wire_frame_t sub = {.type = WIRE_SUB,
                        .req = 8,
                        .ns = wire_str("ns"),
                        .topic = wire_str("")};
    s_raw_frame(r.fd, &sub);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, &code), 1);
    assert_int_equal(code, WIRE_E_BADNAME);
    sub.topic = wire_str("bad\ttopic");
    s_raw_frame(r.fd, &sub);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, &code), 1);
    assert_int_equal(code, WIRE_E_BADNAME);
    wire_frame_t msg = {.type = WIRE_WELCOME, .node = {"0123456789abcdef", 16}};
    s_raw_frame(r.fd, &msg);
    assert_int_equal(s_raw_expect(&r, WIRE_ERR, &code), 1);
    assert_int_equal(code, WIRE_E_BADTYPE);
    wire_frame_t ping = {.type = WIRE_PING, .token = 77};
    s_raw_frame(r.fd, &ping);
    assert_int_equal(s_raw_expect(&r, WIRE_PONG, NULL), 1);
    s_reader_done(&r);
    s_still_serving(a, b);

    //  a frame cut off mid-way, then a hang-up: nothing else notices
    r = s_reader(s_raw(&d));
    s_raw_send(r.fd, "\0\0\x10\0\x96\x05", 6);
    s_reader_done(&r);
    s_still_serving(a, b);
    assert_true(query_counter(a, "bad_frames") >= 6);
    assert_true(query_counter(a, "closed_proto") >= 2);
    rc_close(&a);
    rc_close(&b);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

typedef struct {
    int changes;
    rc_state_t last;
    bool saw_down;
} status_log_t;

static void s_on_status(rc_client_t *c, const rc_status_t *st, void *arg)
{
    (void)c;
    status_log_t *log = arg;
    log->changes++;
    log->last = st->state;
    log->saw_down |= st->state == RC_DISCONNECTED;
}

static bool s_down(void *arg)
{
    return ((status_log_t *)arg)->saw_down;
}

static bool s_back_up(void *arg)
{
    status_log_t *log = arg;
    return log->saw_down && log->last == RC_CONNECTED;
}

typedef struct {
    rc_client_t *c;
} numsub_t;

static bool s_resubscribed(void *arg)
{
    rc_reply_t *reply;
    if (rc_query(((numsub_t *)arg)->c, "numsub", "ns\troom", &reply, 1000)) {
        return false;
    }
    bool ok =
        rc_reply_size(reply) == 1 && strcmp(rc_reply_value(reply, 0), "1") == 0;
    rc_reply_destroy(&reply);
    return ok;
}

//  kill -9 and restart: the client reconnects by itself, with its
//  subscriptions, and sees status changes rather than errors.
static void test_restart_restores_subscriptions(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    status_log_t log = {0};
    rc_options_t o;
    rc_options_init(&o);
    o.on_status = s_on_status;
    o.arg = &log;
    o.reconnect_max_ms = 200;
    rc_client_t *sub = rcd_client(&d, &o);
    assert_non_null(sub);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "room", 5000), 0);
    assert_int_equal(rcd_stop(&d, SIGKILL), 128 + SIGKILL);
    rc_client_t *both[] = {sub, NULL};
    assert_true(wait_for(s_down, &log, both, 5000));
    assert_int_equal(rc_state(sub), RC_DISCONNECTED);
    assert_int_equal(rc_publish(sub, "ns", "room", "x", 1, RC_TEXT), -1);
    assert_int_equal(errno, ENOTCONN);
    assert_int_equal(rcd_restart(&d, "itest", NULL), 0); // stale socket
    assert_true(wait_for(s_back_up, &log, both, 10000));
    rc_client_t *pub = rcd_client(&d, NULL);
    numsub_t ns = {pub};
    assert_true(wait_for(s_resubscribed, &ns, both, 5000));
    assert_int_equal(rc_publish(pub, "ns", "room", "after", 5, RC_TEXT), 0);
    rc_msg_t *m;
    assert_int_equal(rc_recv(sub, &m, 5000), 0);
    assert_memory_equal(rc_msg_data(m), "after", 5);
    rc_msg_destroy(&m);
    rc_close(&pub);
    rc_close(&sub);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  SIGTERM: queued messages are flushed, clients are told, exit 0, the
//  socket file is gone; a second sidecar on a live socket is refused.
static void test_sigterm_flushes_and_exits_zero(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    struct stat st;
    assert_int_equal(stat(d.socket, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    const char *twin[] = {"--channel", "itest", "--socket", d.socket, NULL};
    assert_int_equal(rcd_run(twin, NULL), 2); // in use: refused
    rc_client_t *sub = rcd_client(&d, NULL), *pub = rcd_client(&d, NULL);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "t", 5000), 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(rc_publish(pub, "ns", "t", "payload", 7, RC_TEXT), 0);
    }
    assert_int_equal(rc_flush(pub, 5000), 0);
    assert_int_equal(query_counter(pub, "publishes"), 1000);
    //  the subscriber reads while the sidecar shuts down: what it is owed
    //  may not fit the socket's buffer at once, and a sidecar cannot flush
    //  to an app that does not read (past --shutdown-timeout it exits)
    assert_int_equal(kill(d.pid, SIGTERM), 0);
    int got = 0;
    rc_msg_t *m;
    while (got < 1000 && rc_recv(sub, &m, 5000) == 0) {
        got++;
        rc_msg_destroy(&m);
    }
    assert_int_equal(got, 1000);          // flushed before exit
    assert_int_equal(rcd_stop(&d, 0), 0); // exits 0 by itself
    assert_int_equal(stat(d.socket, &st), -1);
    rc_close(&sub);
    rc_close(&pub);
    rcd_cleanup(&d);
}

//  No sidecar: rc_connect says so at once; with retry it waits for one.
static void test_connect_without_sidecar(void **state)
{
    (void)state;
    assert_null(rc_connect("/nonexistent/roomcast.sock", NULL));
    assert_int_equal(errno, ENOENT);
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rc_options_t o;
    rc_options_init(&o);
    o.retry = true;
    o.reconnect_max_ms = 100;
    status_log_t log = {.saw_down = true};
    o.on_status = s_on_status;
    o.arg = &log;
    rc_client_t *c = rc_connect(d.socket, &o);
    assert_non_null(c);
    assert_int_equal(rc_state(c), RC_DISCONNECTED);
    assert_int_equal(rcd_restart(&d, "itest", NULL), 0);
    rc_client_t *cs[] = {c, NULL};
    assert_true(wait_for(s_back_up, &log, cs, 5000));
    assert_string_equal(rc_channel(c), "itest");
    assert_int_equal(strlen(rc_node_id(c)), 32);
    rc_close(&c);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  Start-up errors are clear and exit 2: no channel, unknown option, bad
//  value; --help exits 0.
static void test_startup_errors(void **state)
{
    (void)state;
    char err[] = "/tmp/roomcast-err-XXXXXX";
    int fd = mkstemp(err);
    assert_true(fd >= 0);
    close(fd);
    const char *none[] = {"--socket", "/tmp/unused.sock", NULL};
    assert_int_equal(rcd_run(none, err), 2);
    FILE *f = fopen(err, "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "--channel is required"));
    const char *unknown[] = {"--channel", "x", "--bogus", "1", NULL};
    assert_int_equal(rcd_run(unknown, err), 2);
    const char *bad[] = {"--channel", "x", "--max-payload", "lots", NULL};
    assert_int_equal(rcd_run(bad, err), 2);
    const char *help[] = {"--help", NULL};
    assert_int_equal(rcd_run(help, err), 0);
    unlink(err);
}

//  --allow-uid/--allow-gid: a client whose credentials are not listed is
//  refused with a clear error; a listed one is served.
static void test_unix_socket_allowlist(void **state)
{
    (void)state;
    rcd_t d;
    char me[16];
    snprintf(me, sizeof me, "%u", (unsigned)getuid());
    const char *other[] = {"--allow-uid", "54321", "--allow-gid", "54321",
                           NULL};
    assert_int_equal(rcd_start_raw(&d, "itest", other), 0);
    assert_null(rc_connect(d.socket, NULL));
    assert_int_equal(errno, EACCES);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
    const char *mine[] = {"--allow-uid", "54321", "--allow-uid", me, NULL};
    assert_int_equal(rcd_start(&d, "itest", mine), 0);
    rc_client_t *c = rcd_client(&d, NULL);
    assert_non_null(c);
    rc_close(&c);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  At --max-clients a new app is refused with the sidecar's reason
//  (ENOSPC), never a bare ENOTCONN, however the refusal races its HELLO;
//  the app already connected is served, and a freed slot is taken again.
static void test_limit_refusal_is_reported(void **state)
{
    (void)state;
    rcd_t d;
    const char *one[] = {"--max-clients", "1", NULL};
    assert_int_equal(rcd_start(&d, "itest", one), 0);
    rc_client_t *c = rcd_client(&d, NULL);
    assert_non_null(c);
    for (int i = 0; i < 50; i++) {
        errno = 0;
        assert_null(rc_connect(d.socket, NULL));
        assert_int_equal(errno, ENOSPC);
    }
    assert_int_equal(rc_subscribe_wait(c, "ns", "room", 5000), 0);
    assert_int_equal(rc_publish(c, "ns", "room", "still", 5, RC_TEXT), 0);
    rc_close(&c);
    long long deadline = now_ms() + 5000;
    while (!c && now_ms() < deadline) {
        c = rc_connect(d.socket, NULL); // the slot frees once it sees EOF
    }
    assert_non_null(c);
    rc_close(&c);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  Every refusal is counted once, in its kind (refused_*) and in the
//  total (bad_frames); a refusal that closes counts closed_proto too.
typedef struct {
    const char *kind; // the refused_* counter that must move
    bool hello;       // say HELLO first
    bool closes;      // the sidecar closes the connection for it
    wire_frame_t f;   // what is sent (type 0: raw bytes below)
    const char *raw;
    size_t raw_len;
} refusal_t;

static void test_every_refusal_is_counted_once(void **state)
{
    (void)state;
    rcd_t d;
    const char *extra[] = {"--max-payload", "8192", NULL};
    assert_int_equal(rcd_start(&d, "itest", extra), 0);
    rc_client_t *c = rcd_client(&d, NULL);
    static char big[9000];
    memset(big, 'x', sizeof big);
    static const uint8_t id[16] = {9};
    const refusal_t cases[] = {
        {.kind = "order",
         .hello = false,
         .closes = false,
         .f = {.type = WIRE_SUB,
               .req = 4,
               .ns = wire_str("n"),
               .topic = wire_str("t")}},
        {.kind = "order",
         .hello = true,
         .closes = false,
         .f = {.type = WIRE_HELLO,
               .version = WIRE_VERSION,
               .id = {(const char *)id, 16},
               .name = wire_str("twice")}},
        {.kind = "name",
         .hello = true,
         .closes = false,
         .f = {.type = WIRE_SUB,
               .req = 4,
               .ns = wire_str("n"),
               .topic = wire_str("a\tb")}},
        {.kind = "name",
         .hello = true,
         .closes = false,
         .f = {.type = WIRE_PSET,
               .req = 4,
               .ns = wire_str("n"),
               .topic = wire_str("t"),
               .arg = wire_str("")}},
        {.kind = "size",
         .hello = true,
         .closes = false,
         .f = {.type = WIRE_PUB,
               .req = 4,
               .ns = wire_str("n"),
               .topic = wire_str("t"),
               .payload = {big, sizeof big}}},
        {.kind = "type",
         .hello = true,
         .closes = false,
         .f = {.type = WIRE_MSG,
               .ns = wire_str("n"),
               .topic = wire_str("t"),
               .id = {(const char *)id, 16},
               .node = {(const char *)id, 16}}},
        {.kind = "flags",
         .hello = true,
         .closes = false,
         .f = {.type = WIRE_PUB,
               .req = 4,
               .ns = wire_str("n"),
               .topic = wire_str("t"),
               .flags = 0x80}},
        {.kind = "query",
         .hello = true,
         .closes = false,
         .f = {.type = WIRE_QUERY,
               .req = 4,
               .text = wire_str("frobnicate"),
               .arg = wire_str("")}},
        {.kind = "version",
         .hello = false,
         .closes = true,
         .f = {.type = WIRE_HELLO,
               .version = WIRE_VERSION + 7,
               .id = {(const char *)id, 16},
               .name = wire_str("old")}},
        {.kind = "protocol",
         .hello = false,
         .closes = true,
         .raw = "\x00\x00\x00\x03\xc1\xc1\xc1",
         .raw_len = 7},
        {.kind = "protocol",
         .hello = false,
         .closes = true,
         .raw = "\x00\x00\x00\x00",
         .raw_len = 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const refusal_t *r = &cases[i];
        char name[32];
        snprintf(name, sizeof name, "refused_%s", r->kind);
        long long kind0 = query_counter(c, name);
        long long bad0 = query_counter(c, "bad_frames");
        long long proto0 = query_counter(c, "closed_proto");
        raw_reader_t rd = s_reader(s_raw(&d));
        if (r->hello) {
            s_raw_hello(rd.fd);
            assert_int_equal(s_raw_expect(&rd, WIRE_WELCOME, NULL), 1);
        }
        if (r->f.type) {
            s_raw_frame(rd.fd, &r->f);
        } else {
            s_raw_send(rd.fd, r->raw, r->raw_len);
        }
        uint64_t code = 0;
        assert_int_equal(s_raw_expect(&rd, WIRE_ERR, &code), 1);
        if (r->closes) {
            assert_int_equal(s_raw_expect(&rd, WIRE_ERR, NULL), 0); // closed
        }
        s_reader_done(&rd);
        if (query_counter(c, name) != kind0 + 1 ||
            query_counter(c, "bad_frames") != bad0 + 1 ||
            query_counter(c, "closed_proto") != proto0 + r->closes) {
            fail_msg("case %zu (%s): %s %lld -> %lld, bad_frames %lld -> "
                     "%lld, closed_proto %lld -> %lld",
                     i, r->kind, name, kind0, query_counter(c, name), bad0,
                     query_counter(c, "bad_frames"), proto0,
                     query_counter(c, "closed_proto"));
        }
    }
    rc_close(&c);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

int main(void)
{
    harness_deadline(120);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input_touches_only_its_connection),
        cmocka_unit_test(test_restart_restores_subscriptions),
        cmocka_unit_test(test_sigterm_flushes_and_exits_zero),
        cmocka_unit_test(test_connect_without_sidecar),
        cmocka_unit_test(test_startup_errors),
        cmocka_unit_test(test_unix_socket_allowlist),
        cmocka_unit_test(test_limit_refusal_is_reported),
        cmocka_unit_test(test_every_refusal_is_counted_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
