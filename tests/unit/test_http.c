/*  Unit tests: http (the tiny GET server for /metrics and the probes).

    The server runs as in roomcastd, on a loop, here in a second thread; a
    byte on a pipe stops it. The test thread is a plain blocking client
    (every wait bounded by poll) and holds every assertion. */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "loop.h"

#define WAIT_MS  10000              // the longest any read waits
#define BIG_BODY (16 * 1024 * 1024) // more than the socket buffers hold

// --- the server, in its own thread -------------------------------------------

typedef struct {
    loop_t *loop;
    http_t *http;
    int stop[2];      // a byte on stop[1] stops the loop
    pthread_t thread; //
    bool running;     //
    int run_rc;       // loop_run's result, read after the join
    int port;         //
} fixture_t;

//  The application: a few paths that show what a handler can do.
static int s_handler(void *arg, const char *path, http_reply_t *reply)
{
    (void)arg;
    if (strcmp(path, "/") == 0) {
        http_reply_printf(reply, "hello\n");
    } else if (strncmp(path, "/echo", 5) == 0) {
        http_reply_printf(reply, "%s", path);
    } else if (strcmp(path, "/json") == 0) {
        reply->content_type = "application/json";
        http_reply_printf(reply, "{\"ok\":%d}", 1);
    } else if (strcmp(path, "/big") == 0) {
        char chunk[26 * 64];
        for (size_t i = 0; i < sizeof chunk; i++) {
            chunk[i] = (char)('a' + i % 26);
        }
        while (reply->len < BIG_BODY) {
            size_t left = BIG_BODY - reply->len;
            http_reply_append(reply, chunk,
                              left < sizeof chunk ? left : sizeof chunk);
        }
    } else if (strcmp(path, "/fail") == 0) {
        return -1;
    } else {
        reply->status = 404;
        http_reply_printf(reply, "no such page: %s\n", path);
    }
    return 0;
}

static void s_on_stop(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)events;
    (void)arg;
    char byte;
    if (read(fd, &byte, 1) >= 0) {
        loop_stop(loop);
    }
}

static void *s_run(void *arg)
{
    fixture_t *fx = arg;
    fx->run_rc = loop_run(fx->loop);
    return NULL;
}

static void s_start(fixture_t *fx, const char *addr, uint64_t timeout_ms)
{
    char err[256] = "";
    fx->loop = loop_new();
    assert_non_null(fx->loop);
    fx->http = http_new(fx->loop, addr, s_handler, NULL, err, sizeof err);
    if (!fx->http) {
        fail_msg("http_new(%s): %s", addr, err);
    }
    if (timeout_ms) {
        http_set_timeouts_ms(fx->http, timeout_ms, timeout_ms);
    }
    fx->port = http_port(fx->http);
    assert_true(fx->port > 0);
    assert_int_equal(pipe(fx->stop), 0);
    assert_int_equal(
        loop_add_fd(fx->loop, fx->stop[0], EPOLLIN, s_on_stop, NULL), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, s_run, fx), 0);
    fx->running = true;
}

//  Stop the loop, join, and free everything; the test thread owns the
//  server again after the join.
static void s_stop(fixture_t *fx)
{
    if (!fx->running) {
        return;
    }
    fx->running = false;
    assert_int_equal(write(fx->stop[1], "x", 1), 1);
    assert_int_equal(pthread_join(fx->thread, NULL), 0);
    assert_int_equal(fx->run_rc, 0);
    http_destroy(&fx->http);
    http_destroy(&fx->http); // twice is fine
    assert_null(fx->http);
    loop_del_fd(fx->loop, fx->stop[0]);
    close(fx->stop[0]);
    close(fx->stop[1]);
    loop_destroy(&fx->loop);
}

static int s_setup(void **state)
{
    *state = calloc(1, sizeof(fixture_t));
    return *state ? 0 : -1;
}

static int s_teardown(void **state)
{
    s_stop(*state);
    free(*state);
    return 0;
}

// --- the client --------------------------------------------------------------

//  A blocking TCP connection to 127.0.0.1:port (rcvbuf 0: the default).
static int s_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf) {
        assert_int_equal(
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void s_send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        len -= (size_t)w;
    }
}

//  Whether fd has something to read (data or EOF) within ms.
static bool s_readable(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, ms);
    assert_true(n >= 0);
    return n == 1;
}

typedef struct {
    char *raw;           // everything read until EOF, NUL-terminated
    size_t len;          //
    int status;          // from the status line
    long content_length; // -1 when absent
    const char *body;    // into raw, after the head
    size_t body_len;     //
} response_t;

//  Read until the server closes (at most WAIT_MS between bytes).
static void s_read_all(int fd, response_t *resp)
{
    size_t cap = 4096;
    *resp = (response_t){.raw = malloc(cap), .content_length = -1};
    assert_non_null(resp->raw);
    for (;;) {
        if (!s_readable(fd, WAIT_MS)) {
            fail_msg("no EOF from the server within %d ms", WAIT_MS);
        }
        if (resp->len + 1 == cap) {
            cap *= 2;
            resp->raw = realloc(resp->raw, cap);
            assert_non_null(resp->raw);
        }
        ssize_t r = read(fd, resp->raw + resp->len, cap - 1 - resp->len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            fail_msg("read: %s", strerror(errno));
        }
        if (r == 0) {
            break;
        }
        resp->len += (size_t)r;
    }
    resp->raw[resp->len] = '\0';
}

//  Split what was read into status, Content-Length and body.
static void s_parse(response_t *resp)
{
    if (resp->len == 0) {
        return;
    }
    assert_int_equal(sscanf(resp->raw, "HTTP/1.1 %d ", &resp->status), 1);
    const char *end = strstr(resp->raw, "\r\n\r\n");
    assert_non_null(end);
    const char *cl = strstr(resp->raw, "\r\nContent-Length: ");
    if (cl && cl < end) {
        resp->content_length = strtol(cl + 18, NULL, 10);
    }
    resp->body = end + 4;
    resp->body_len = resp->len - (size_t)(resp->body - resp->raw);
}

static bool s_has_header(const response_t *resp, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    const char *end = strstr(resp->raw, "\r\n\r\n");
    const char *at = strstr(resp->raw, want);
    return at && end && at < end + 2;
}

//  One request on a fresh connection; the whole response, parsed.
static void s_request(int port, const void *req, size_t len, response_t *resp)
{
    int fd = s_connect(port, 0);
    s_send_all(fd, req, len);
    s_read_all(fd, resp);
    close(fd);
    s_parse(resp);
}

static void s_get(int port, const char *req, response_t *resp)
{
    s_request(port, req, strlen(req), resp);
}

static void s_free(response_t *resp)
{
    free(resp->raw);
    resp->raw = NULL;
}

// --- requests that work ------------------------------------------------------

static void test_get(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    response_t r;
    s_get(fx->port, "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 6);
    assert_int_equal(r.body_len, 6);
    assert_memory_equal(r.body, "hello\n", 6);
    assert_true(s_has_header(&r, "Connection: close"));
    assert_true(s_has_header(&r, "Content-Type: text/plain; charset=utf-8"));
    assert_int_equal(strncmp(r.raw, "HTTP/1.1 200 OK\r\n", 17), 0);
    s_free(&r);

    //  HTTP/1.0, no headers at all
    s_get(fx->port, "GET / HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello\n");
    s_free(&r);

    //  the handler's content type
    s_get(fx->port, "GET /json HTTP/1.1\r\n\r\n", &r);
    assert_true(s_has_header(&r, "Content-Type: application/json"));
    assert_string_equal(r.body, "{\"ok\":1}");
    assert_int_equal(r.content_length, 8);
    s_free(&r);
}

static void test_head(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    response_t r;
    s_get(fx->port, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 6); // what GET would send
    assert_int_equal(r.body_len, 0);
    s_free(&r);
}

static void test_query_is_stripped(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    const struct {
        const char *req;
        const char *path;
    } cases[] = {
        {"GET /echo?x=y HTTP/1.1\r\n\r\n", "/echo"},
        {"GET /echo/a?b?c HTTP/1.1\r\n\r\n", "/echo/a"},
        {"GET /echo? HTTP/1.1\r\n\r\n", "/echo"},
        {"GET /echo/%20x HTTP/1.1\r\n\r\n", "/echo/%20x"}, // not decoded
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        response_t r;
        s_get(fx->port, cases[i].req, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, cases[i].path);
        assert_int_equal(r.content_length, (long)strlen(cases[i].path));
        s_free(&r);
    }
}

static void test_handler_answers_404_and_500(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    response_t r;
    s_get(fx->port, "GET /nope HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "no such page: /nope\n");
    assert_int_equal(r.content_length, (long)r.body_len);
    s_free(&r);

    s_get(fx->port, "GET /fail HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "internal error\n");
    s_free(&r);
}

static void test_hundred_sequential_requests(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    for (int i = 0; i < 100; i++) {
        char req[64], path[32];
        snprintf(path, sizeof path, "/echo/%d", i);
        snprintf(req, sizeof req, "GET %s?i=%d HTTP/1.1\r\n\r\n", path, i);
        response_t r;
        s_get(fx->port, req, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, path);
        s_free(&r);
    }
}

//  A request sent one byte per segment is put together.
static void test_request_in_pieces(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    const char *req = "GET /echo/bytes HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n";
    int fd = s_connect(fx->port, 0);
    int one = 1;
    assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
                     0);
    for (size_t i = 0; req[i]; i++) {
        s_send_all(fd, req + i, 1);
    }
    response_t r;
    s_read_all(fd, &r);
    close(fd);
    s_parse(&r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "/echo/bytes");
    s_free(&r);
}

//  A reply larger than the socket takes is written as the client reads;
//  meanwhile the loop serves others.
static void test_big_reply_does_not_block(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    int slow = s_connect(fx->port, 4096);
    s_send_all(slow, "GET /big HTTP/1.1\r\n\r\n", 21);

    response_t r;
    s_get(fx->port, "GET / HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    s_free(&r);

    s_read_all(slow, &r);
    close(slow);
    s_parse(&r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, BIG_BODY);
    assert_int_equal(r.body_len, BIG_BODY);
    for (size_t i = 0; i < r.body_len; i++) {
        if (r.body[i] != (char)('a' + i % 26)) {
            fail_msg("body byte %zu is wrong", i);
        }
    }
    s_free(&r);
}

//  One request per connection: a second one in the same write is dropped
//  (and the reply to the first still arrives whole, then EOF).
static void test_one_request_per_connection(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    response_t r;
    s_get(fx->port, "GET /echo/1 HTTP/1.1\r\n\r\nGET /echo/2 HTTP/1.1\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "/echo/1");
    assert_null(strstr(r.raw + 1, "HTTP/1.1"));
    s_free(&r);
}

// --- requests refused --------------------------------------------------------

#define CASE(s)                                                                \
    {                                                                          \
        s, sizeof(s) - 1                                                       \
    }

static void test_malformed_requests_get_400(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    const struct {
        const char *req;
        size_t len;
    } cases[] = {
        CASE("GET /metrics\r\n"),                     // no version
        CASE("GET metrics HTTP/1.1\r\n\r\n"),         // not a path
        CASE("GET http://h/x HTTP/1.1\r\n\r\n"),      // absolute form
        CASE("GET /x HTTP/2.0\r\n\r\n"),              // version
        CASE("GET /x HTTP/1.2\r\n\r\n"),              //
        CASE("GET /x http/1.1\r\n\r\n"),              //
        CASE("GET /x HTTP/1.1 \r\n\r\n"),             //
        CASE("G\x01T / HTTP/1.1\r\n\r\n"),            // control byte in method
        CASE("GET /\x7f HTTP/1.1\r\n\r\n"),           // in the path
        CASE("GET /\0 HTTP/1.1\r\n\r\n"),             //
        CASE("GET /\xc3\xa9 HTTP/1.1\r\n\r\n"),       // non-ASCII path
        CASE("GET  /x HTTP/1.1\r\n\r\n"),             // two spaces
        CASE("GET /x  HTTP/1.1\r\n\r\n"),             //
        CASE("\r\n\r\n"),                             // no request line
        CASE(" GET / HTTP/1.1\r\n\r\n"),              //
        CASE("GET / HTTP/1.1\n\n"),                   // bare LF
        CASE("GET / HTTP/1.1\r\r\n\r\n"),             //
        CASE("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),   // space before colon
        CASE("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),    //
        CASE("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), // obs-fold
        CASE("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n"),   // control byte in value
        CASE("GET / HTTP/1.1\r\nA: b\n\r\n"),         // bare LF after a header
        CASE("GET / HTTP/1.1\r\n\n"),                 //
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        response_t r;
        s_request(fx->port, cases[i].req, cases[i].len, &r);
        if (r.status != 400) {
            fail_msg("case %zu: status %d", i, r.status);
        }
        assert_int_equal(strncmp(r.body, "bad request: ", 13), 0);
        assert_int_equal(r.content_length, (long)r.body_len);
        assert_true(s_has_header(&r, "Connection: close"));
        s_free(&r);
    }
}

static void test_oversized_heads_get_400(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    //  one 9 KiB header
    size_t len = 9 * 1024;
    char *req = malloc(len + 64);
    assert_non_null(req);
    int n = snprintf(req, 64, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', len);
    memcpy(req + n + len, "\r\n\r\n", 4);
    response_t r;
    s_request(fx->port, req, (size_t)n + len + 4, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "bad request: request head over 8 KiB\n");
    s_free(&r);

    //  just under the limit is fine: 8 KiB exactly, with the empty line
    memset(req, 'a', HTTP_MAX_HEAD);
    n = snprintf(req, 64, "GET / HTTP/1.1\r\nX-Big: ");
    req[n] = 'a';
    memcpy(req + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
    s_request(fx->port, req, HTTP_MAX_HEAD, &r);
    assert_int_equal(r.status, 200);
    s_free(&r);

    //  too many header lines
    size_t off = (size_t)snprintf(req, 64, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_MAX_HEADERS; i++) {
        off += (size_t)sprintf(req + off, "A%d: b\r\n", i);
    }
    off += (size_t)sprintf(req + off, "\r\n");
    s_request(fx->port, req, off, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "bad request: too many header lines\n");
    s_free(&r);
    free(req);
}

static void test_other_methods_get_405(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    const char *cases[] = {
        "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "PUT / HTTP/1.1\r\n\r\n",
        "DELETE /nope HTTP/1.0\r\n\r\n",
        "OPTIONS / HTTP/1.1\r\n\r\n",
        "get / HTTP/1.1\r\n\r\n", // methods are case-sensitive
        "GETS / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        response_t r;
        s_get(fx->port, cases[i], &r);
        assert_int_equal(r.status, 405);
        assert_true(s_has_header(&r, "Allow: GET, HEAD"));
        assert_int_equal(r.content_length, (long)r.body_len);
        s_free(&r);
    }
}

//  The body framing headers: a GET or HEAD carries no body, so any
//  Content-Length but one well-formed 0, and any Transfer-Encoding, is a
//  request we cannot frame for sure (smuggling, desync): 400.
static void test_body_framing_gets_400(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    const char *bad[] = {
        "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "HEAD / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0\r\ncontent-length: 5\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0, 0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: +0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0x0\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0 0\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 0\r\n\r\n",
        "HEAD / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", // 400 before 405
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        response_t r;
        s_get(fx->port, bad[i], &r);
        if (r.status != 400) {
            fail_msg("case %zu: status %d for %s", i, r.status, bad[i]);
        }
        assert_int_equal(strncmp(r.body, "bad request: ", 13), 0);
        assert_true(s_has_header(&r, "Connection: close"));
        s_free(&r);
    }
    const char *good[] = {
        "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\ncontent-length:  0 \r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 000\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Content-Length: 5\r\nContent-Lengthy: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Transfer-Encoding: chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        response_t r;
        s_get(fx->port, good[i], &r);
        if (r.status != 200) {
            fail_msg("good case %zu: status %d for %s", i, r.status, good[i]);
        }
        assert_string_equal(r.body, "hello\n");
        s_free(&r);
    }
}

//  The same rules, on the parser alone: the reason given, and the length
//  read when it is accepted.
static void test_parser_body_framing(void **state)
{
    (void)state;
    const struct {
        const char *head;
        const char *error; // NULL: DONE
        int64_t length;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", NULL, -1},
        {"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", NULL, 0},
        {"GET / HTTP/1.1\r\nCONTENT-LENGTH:\t00\t\r\n\r\n", NULL, 0},
        {"PUT / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", NULL,
         INT64_MAX},
        {"PUT / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
         "Content-Length too large", 0},
        {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
         "Content-Length is not a number", 0},
        {"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n",
         "Content-Length is not a number", 0},
        {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-length: 1\r\n",
         "Content-Length given twice", 0},
        {"GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
         "a GET or HEAD carries no body (Content-Length must be 0)", 0},
        {"HEAD / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n",
         "Transfer-Encoding: a request carries no body here", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_request_t req;
        int rc = http_parse_head(cases[i].head, strlen(cases[i].head), &req);
        if (cases[i].error) {
            assert_int_equal(rc, HTTP_PARSE_BAD);
            assert_string_equal(req.error, cases[i].error);
        } else {
            assert_int_equal(rc, HTTP_PARSE_DONE);
            assert_true(req.content_length == cases[i].length);
        }
    }
    //  a framing header cut short is MORE, not yet a verdict
    const char *part = "GET / HTTP/1.1\r\nContent-Length: -";
    http_request_t req;
    assert_int_equal(http_parse_head(part, strlen(part), &req),
                     HTTP_PARSE_MORE);
}

//  The client stops sending mid-head (half-close): 400, not a hang.
static void test_eof_inside_head_gets_400(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    int fd = s_connect(fx->port, 0);
    s_send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n", 25);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    response_t r;
    s_read_all(fd, &r);
    close(fd);
    s_parse(&r);
    assert_int_equal(r.status, 400);
    s_free(&r);
}

// --- time and numbers --------------------------------------------------------

//  Connects, sends what it is given, and is closed by the server after
//  the timeout without a reply, while another client is served.
static void s_check_timeout(fixture_t *fx, const char *sent, uint64_t timeout)
{
    uint64_t t0 = loop_clock_ms();
    int idle = s_connect(fx->port, 0);
    s_send_all(idle, sent, strlen(sent));

    response_t r;
    s_get(fx->port, "GET / HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    s_free(&r);
    //  the server's deadline is at least t0 + timeout: before that the
    //  idle connection must still be open
    if (loop_clock_ms() - t0 < timeout) {
        assert_false(s_readable(idle, 0));
    }

    s_read_all(idle, &r);
    assert_true(loop_clock_ms() - t0 >= timeout);
    assert_int_equal(r.len, 0); // closed without a word
    s_free(&r);
    close(idle);
}

static void test_idle_connection_times_out(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 300);
    s_check_timeout(fx, "", 300);
    s_check_timeout(fx, "GET / HTTP/1.1\r\nHost: slow", 300); // slowloris
    s_check_timeout(fx, "GET /no-line-end", 300);
}

//  With no timeout given, a head must be whole HTTP_HEAD_TIMEOUT_MS after
//  accept, well before the whole exchange's HTTP_TIMEOUT_MS.
static void test_head_deadline_is_short(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    uint64_t t0 = loop_clock_ms();
    s_check_timeout(fx, "GET / HTTP/1.1\r\nHost: slow", HTTP_HEAD_TIMEOUT_MS);
    assert_true(loop_clock_ms() - t0 < HTTP_TIMEOUT_MS);
}

//  Whether fd was closed by the server without a byte, within ms.
static bool s_closed_silently(int fd, int ms)
{
    if (!s_readable(fd, ms)) {
        return false;
    }
    char byte;
    ssize_t r = recv(fd, &byte, 1, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

//  Full, the endpoint makes room for a newcomer by closing the oldest
//  connection that has not sent a whole head: a crowd of idle or slow
//  connections can only push itself out, never keep a probe away.
static void test_full_endpoint_evicts_oldest_idle(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 60000); // nothing times out in this test
    static int fds[HTTP_MAX_CONNS];
    for (int i = 0; i < HTTP_MAX_CONNS; i++) {
        fds[i] = s_connect(fx->port, 0);
        if (i % 2) { // half of them slow, half silent
            s_send_all(fds[i], "GET / HTTP/1.1\r\nHost: sl", 24);
        }
    }
    //  three newcomers, one after the other: each is served, and each
    //  time the oldest of the crowd is the one closed (and comes back, the
    //  youngest now, so the endpoint is full again)
    for (int k = 0; k < 3; k++) {
        response_t r;
        s_get(fx->port, "GET /echo/probe HTTP/1.1\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "/echo/probe");
        s_free(&r);
        assert_true(s_closed_silently(fds[k], WAIT_MS));
        close(fds[k]);
        fds[k] = s_connect(fx->port, 0);
    }
    //  the rest are still open and still served
    for (int i = 3; i < HTTP_MAX_CONNS; i++) {
        assert_false(s_readable(fds[i], 0));
    }
    s_send_all(fds[3], "ow\r\n\r\n", 6);
    response_t r;
    s_read_all(fds[3], &r);
    s_parse(&r);
    assert_int_equal(r.status, 200);
    s_free(&r);
    for (int i = 0; i < HTTP_MAX_CONNS; i++) {
        close(fds[i]);
    }
}

//  Out of descriptors, the server stops watching the listener for a while
//  (instead of spinning on it) and serves the waiting client after.
static void test_out_of_descriptors_pauses_accept(void **state)
{
    fixture_t *fx = *state;
    s_start(fx, "127.0.0.1:0", 0);
    int log[2];
    assert_int_equal(pipe(log), 0);
    int saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    //  every lower descriptor is taken (fd was the lowest free one): with
    //  this limit the server's accept finds none
    low = (struct rlimit){.rlim_cur = (rlim_t)fd + 1, .rlim_max = old.rlim_max};
    assert_int_equal(dup2(log[1], 2), 2);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)fx->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    s_send_all(fd, "GET / HTTP/1.1\r\n\r\n", 18);
    //  no assertion until the limit and stderr are back
    char line[512] = "";
    size_t len = 0;
    while (!strstr(line, "http_accept_failed") && len < sizeof line - 1 &&
           s_readable(log[0], WAIT_MS)) {
        ssize_t r = read(log[0], line + len, sizeof line - 1 - len);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
        line[len] = '\0';
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(dup2(saved_stderr, 2), 2);
    close(saved_stderr);
    close(log[0]);
    close(log[1]);
    assert_non_null(strstr(line, "http_accept_failed"));
    assert_non_null(strstr(line, "Too many open files"));

    response_t r;
    s_read_all(fd, &r);
    close(fd);
    s_parse(&r);
    assert_int_equal(r.status, 200);
    s_free(&r);
}

// --- addresses ---------------------------------------------------------------

static bool s_have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void test_addresses(void **state)
{
    fixture_t *fx = *state;
    const char *good[] = {"127.0.0.1:0", ":0", "0.0.0.0:0", "localhost:0",
                          "[::1]:0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (good[i][0] == '[' && !s_have_ipv6_loopback()) {
            continue;
        }
        s_start(fx, good[i], 0);
        if (good[i][0] != '[') { // the client speaks IPv4
            response_t r;
            s_get(fx->port, "GET / HTTP/1.1\r\n\r\n", &r);
            assert_int_equal(r.status, 200);
            s_free(&r);
        }
        s_stop(fx);
    }

    loop_t *loop = loop_new();
    assert_non_null(loop);
    const char *bad[] = {"",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:x",
                         "127.0.0.1:65536",
                         "127.0.0.1:-1",
                         "127.0.0.1: 80",
                         "[::1:80",
                         "[::1]80",
                         "::1:80",
                         "1.2.3.4.5:80",
                         "example.com:80",
                         "[127.0.0.1]:80",
                         "[localhost]:80",
                         "[]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        http_t *http = http_new(loop, bad[i], s_handler, NULL, err, sizeof err);
        if (http) {
            fail_msg("'%s' was taken", bad[i]);
        }
        assert_non_null(strstr(err, "bad HTTP address"));
    }

    //  a port in use
    char err[256] = "";
    http_t *first =
        http_new(loop, "127.0.0.1:0", s_handler, NULL, err, sizeof err);
    assert_non_null(first);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_port(first));
    assert_null(http_new(loop, addr, s_handler, NULL, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
    assert_non_null(strstr(err, "Address already in use"));
    http_destroy(&first);
    loop_destroy(&loop);
}

// --- replies -----------------------------------------------------------------

static void test_reply_buffer(void **state)
{
    (void)state;
    http_reply_t reply;
    http_reply_init(&reply);
    assert_int_equal(reply.status, 200);
    assert_int_equal(reply.len, 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(http_reply_printf(&reply, "%d,", i), 0);
    }
    assert_int_equal(http_reply_append(&reply, "end", 3), 0);
    assert_int_equal(strncmp(reply.body, "0,1,2,", 6), 0);
    assert_int_equal(strlen(reply.body), reply.len);
    assert_string_equal(reply.body + reply.len - 7, "999,end");
    assert_false(reply.failed);
    http_reply_free(&reply);
    http_reply_free(&reply);
    assert_null(reply.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
        T(test_get),
        T(test_head),
        T(test_query_is_stripped),
        T(test_handler_answers_404_and_500),
        T(test_hundred_sequential_requests),
        T(test_request_in_pieces),
        T(test_big_reply_does_not_block),
        T(test_one_request_per_connection),
        T(test_malformed_requests_get_400),
        T(test_oversized_heads_get_400),
        T(test_other_methods_get_405),
        T(test_body_framing_gets_400),
        T(test_parser_body_framing),
        T(test_eof_inside_head_gets_400),
        T(test_idle_connection_times_out),
        T(test_head_deadline_is_short),
        T(test_full_endpoint_evicts_oldest_idle),
        T(test_out_of_descriptors_pauses_accept),
        T(test_addresses),
        T(test_reply_buffer),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
