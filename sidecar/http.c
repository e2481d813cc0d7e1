/*  http: see http.h. One small struct per connection, in a list (oldest
    first, so the one to evict is found at once); each has one loop timer,
    its deadline, so an idle or slow client costs nothing until it
    expires. */
#include "http.h"
#include "log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define ACCEPT_PER_WAKE 64    // then let the other descriptors in
#define ACCEPT_PAUSE_MS 100   // out of descriptors: try again after this
#define READ_INITIAL    512   // a probe's head fits; grows to HTTP_MAX_HEAD
#define DRAIN_MAX       65536 // bytes dropped after a reply before we close
#define PARSE_NEXT      2     // a line parsed, go on (not a parse result)

typedef enum {
    CONN_READING, // the head is not complete yet
    CONN_WRITING, // the reply is (partly) queued
    CONN_DRAINING // reply sent, write side shut: drop input until EOF
} conn_state_t;

typedef struct http_conn_t http_conn_t;
struct http_conn_t {
    http_t *http;        //
    int fd;              //
    int timer;           // the deadline
    uint64_t accepted;   // loop time of the accept
    conn_state_t state;  //
    char *in;            // the head so far
    size_t in_len;       //
    size_t in_cap;       //
    bool eof;            // the client shut its write side
    char out_head[512];  // status line and headers
    size_t out_head_len; //
    http_reply_t reply;  // the body (not sent for HEAD)
    size_t out_body_len; // 0 for HEAD
    size_t sent;         // of out_head then body
    bool drain;          // after the reply: shut down and drain, not close
    size_t drained;      //
    http_conn_t *prev;   //
    http_conn_t *next;   //
};

struct http_t {
    loop_t *loop;        //
    int fd;              // listener
    int port;            //
    int pause_timer;     // accept paused (EMFILE) until it fires; 0 if none
    http_handler_fn *fn; //
    void *arg;           //
    uint64_t timeout_ms; // accept to the last byte of the reply
    uint64_t head_timeout_ms; // accept to the end of the head
    http_conn_t *conns;       // oldest first
    http_conn_t *newest;      //
    size_t nconns;            //
};

// --- replies -----------------------------------------------------------------

void http_reply_init(http_reply_t *reply)
{
    *reply = (http_reply_t){.status = 200, .content_type = HTTP_TEXT};
}

void http_reply_free(http_reply_t *reply)
{
    free(reply->body);
    http_reply_init(reply);
}

static int s_reserve(http_reply_t *reply, size_t more)
{
    if (reply->failed) {
        errno = ENOMEM;
        return -1;
    }
    if (more < reply->cap - reply->len) {
        return 0; // room for more bytes and the NUL
    }
    size_t cap = reply->cap ? reply->cap : 256;
    while (cap - reply->len <= more) {
        if (cap > SIZE_MAX / 2) {
            cap = 0;
            break;
        }
        cap *= 2;
    }
    char *body = cap ? realloc(reply->body, cap) : NULL;
    if (!body) {
        reply->failed = true;
        errno = ENOMEM;
        return -1;
    }
    reply->body = body;
    reply->cap = cap;
    return 0;
}

int http_reply_append(http_reply_t *reply, const void *data, size_t len)
{
    if (s_reserve(reply, len)) {
        return -1;
    }
    if (len) {
        memcpy(reply->body + reply->len, data, len);
    }
    reply->len += len;
    reply->body[reply->len] = '\0';
    return 0;
}

int http_reply_printf(http_reply_t *reply, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || s_reserve(reply, (size_t)n)) {
        reply->failed = true;
        errno = ENOMEM;
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(reply->body + reply->len, reply->cap - reply->len, fmt, ap);
    va_end(ap);
    reply->len += (size_t)n;
    return 0;
}

// --- the parser --------------------------------------------------------------

//  tchar of RFC 9110: the bytes of a method or a header name.
static bool s_tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c && strchr(extra, c));
}

static bool s_target_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

static bool s_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

//  The first index from i on in buf[0, n) that is not ok (n if none).
static size_t s_span(const char *buf, size_t n, size_t i,
                     bool (*ok)(unsigned char))
{
    while (i < n && ok((unsigned char)buf[i])) {
        i++;
    }
    return i;
}

static int s_bad(http_request_t *out, const char *why)
{
    out->error = why;
    return HTTP_PARSE_BAD;
}

//  At buf[*i], CRLF: 1 and *i past it, 0 need more, -1 not CRLF.
static int s_crlf(const char *buf, size_t n, size_t *i)
{
    if (*i < n && buf[*i] != '\r') {
        return -1;
    }
    if (*i + 1 < n && buf[*i + 1] != '\n') {
        return -1;
    }
    if (*i + 2 > n) {
        return 0;
    }
    *i += 2;
    return 1;
}

static int s_method(const char *buf, size_t len)
{
    if (len == 3 && memcmp(buf, "GET", 3) == 0) {
        return HTTP_GET;
    }
    if (len == 4 && memcmp(buf, "HEAD", 4) == 0) {
        return HTTP_HEAD;
    }
    return HTTP_OTHER;
}

//  The request line; PARSE_NEXT with *i past it, else a parse result.
static int s_request_line(const char *buf, size_t n, size_t *i,
                          http_request_t *out)
{
    static const char version[] = "HTTP/1.";
    size_t m = s_span(buf, n, 0, s_tchar);
    if (m < n && (m == 0 || buf[m] != ' ')) {
        return s_bad(out, "bad method");
    }
    if (m + 1 >= n) {
        return HTTP_PARSE_MORE;
    }
    out->method = (http_method_t)s_method(buf, m);
    size_t t = m + 1;
    if (buf[t] != '/') {
        return s_bad(out, "the path must start with '/'");
    }
    size_t p = s_span(buf, n, t, s_target_char);
    if (p < n && buf[p] != ' ') {
        return s_bad(out, "bad path (a space, a control or non-ASCII byte)");
    }
    for (size_t v = 0; v < sizeof version; v++) {
        size_t at = p + 1 + v;
        if (at >= n) {
            return HTTP_PARSE_MORE;
        }
        bool ok = v < sizeof version - 1 ? buf[at] == version[v]
                                         : buf[at] == '0' || buf[at] == '1';
        if (!ok) {
            return s_bad(out, "the version must be HTTP/1.0 or HTTP/1.1");
        }
    }
    out->minor = buf[p + sizeof version] - '0';
    *i = p + 1 + sizeof version;
    int crlf = s_crlf(buf, n, i);
    if (crlf < 0) {
        return s_bad(out, "the request line must end with CRLF");
    }
    if (crlf == 0) {
        return HTTP_PARSE_MORE;
    }
    const char *q = memchr(buf + t, '?', p - t);
    out->path = buf + t;
    out->path_len = q ? (size_t)(q - (buf + t)) : p - t;
    return PARSE_NEXT;
}

static bool s_name_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

//  The headers that say how long a body is. We take no body, so the one
//  framing we accept is at most one Content-Length of plain digits (its
//  value checked against the method at the end of the head) and no
//  Transfer-Encoding: anything else could be read as a body, or as a
//  second request, by a proxy in front of us. PARSE_NEXT or BAD.
static int s_framing(const char *name, size_t name_len, const char *value,
                     size_t value_len, http_request_t *out)
{
    if (s_name_is(name, name_len, "transfer-encoding")) {
        return s_bad(out, "Transfer-Encoding: a request carries no body here");
    }
    if (!s_name_is(name, name_len, "content-length")) {
        return PARSE_NEXT;
    }
    if (out->content_length >= 0) {
        return s_bad(out, "Content-Length given twice");
    }
    while (value_len && (*value == ' ' || *value == '\t')) {
        value++;
        value_len--;
    }
    while (value_len &&
           (value[value_len - 1] == ' ' || value[value_len - 1] == '\t')) {
        value_len--;
    }
    if (value_len == 0) {
        return s_bad(out, "Content-Length is not a number");
    }
    int64_t length = 0;
    for (size_t k = 0; k < value_len; k++) {
        if (value[k] < '0' || value[k] > '9') {
            return s_bad(out, "Content-Length is not a number");
        }
        int digit = value[k] - '0';
        if (length > (INT64_MAX - digit) / 10) {
            return s_bad(out, "Content-Length too large");
        }
        length = length * 10 + digit;
    }
    out->content_length = length;
    return PARSE_NEXT;
}

//  One header line or the empty line at *i; PARSE_NEXT with *i past it,
//  else a parse result (DONE after the empty line).
static int s_header(const char *buf, size_t n, size_t *i, http_request_t *out)
{
    if (*i < n && buf[*i] == '\r') {
        int crlf = s_crlf(buf, n, i);
        if (crlf < 0) {
            return s_bad(out, "a header line must end with CRLF");
        }
        if (crlf == 0) {
            return HTTP_PARSE_MORE;
        }
        out->head_len = *i;
        return HTTP_PARSE_DONE;
    }
    if (*i == n) {
        return HTTP_PARSE_MORE;
    }
    size_t name = s_span(buf, n, *i, s_tchar);
    if (name < n && (name == *i || buf[name] != ':')) {
        return s_bad(out, "bad header name");
    }
    if (++out->headers > HTTP_MAX_HEADERS) {
        return s_bad(out, "too many header lines");
    }
    if (name >= n) {
        return HTTP_PARSE_MORE;
    }
    size_t start = *i;
    *i = s_span(buf, n, name + 1, s_value_char);
    size_t value_end = *i;
    int crlf = s_crlf(buf, n, i);
    if (crlf < 0) {
        return s_bad(out, "bad header value (a control byte or bare LF)");
    }
    if (crlf == 0) {
        return HTTP_PARSE_MORE;
    }
    return s_framing(buf + start, name - start, buf + name + 1,
                     value_end - name - 1, out);
}

int http_parse_head(const char *buf, size_t len, http_request_t *out)
{
    *out = (http_request_t){.method = HTTP_OTHER, .content_length = -1};
    size_t n = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    size_t i = 0;
    int rc = s_request_line(buf, n, &i, out);
    while (rc == PARSE_NEXT) {
        rc = s_header(buf, n, &i, out);
    }
    if (rc == HTTP_PARSE_DONE && out->method != HTTP_OTHER &&
        out->content_length > 0) {
        rc = s_bad(out, "a GET or HEAD carries no body (Content-Length "
                        "must be 0)");
    }
    if (rc == HTTP_PARSE_DONE) {
        return rc;
    }
    out->path = NULL; // the request line may have been whole
    out->path_len = 0;
    if (rc == HTTP_PARSE_MORE && len >= HTTP_MAX_HEAD) {
        return s_bad(out, "request head over 8 KiB");
    }
    return rc;
}

// --- connections -------------------------------------------------------------

static void s_conn_io(loop_t *loop, int fd, uint32_t events, void *arg);

static void s_conn_close(http_conn_t *conn)
{
    http_t *self = conn->http;
    loop_del_fd(self->loop, conn->fd);
    close(conn->fd);
    loop_cancel_timer(self->loop, conn->timer);
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else {
        self->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    } else {
        self->newest = conn->prev;
    }
    self->nconns--;
    http_reply_free(&conn->reply);
    free(conn->in);
    free(conn);
}

static void s_expire(loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    http_conn_t *conn = arg;
    conn->timer = 0; // fired: nothing to cancel
    log_debug("http_timeout", "state=%d bytes=%zu", (int)conn->state,
              conn->in_len);
    s_conn_close(conn);
}

static const char *s_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {200, "OK"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {400, "Bad Request"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    return "Status";
}

//  A reply of our own (400, 405, 500) in place of whatever was built.
static void s_error_reply(http_conn_t *conn, int status, const char *text)
{
    http_reply_free(&conn->reply);
    conn->reply.status = status;
    if (http_reply_printf(&conn->reply, "%s\n", text)) {
        http_reply_free(&conn->reply); // an empty 500 then
        conn->reply.status = status;
    }
}

//  Send what is left of the reply; close or drain once it is all out.
static void s_send(http_conn_t *conn)
{
    http_t *self = conn->http;
    size_t total = conn->out_head_len + conn->out_body_len;
    while (conn->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (conn->sent < conn->out_head_len) {
            iov[n++] = (struct iovec){conn->out_head + conn->sent,
                                      conn->out_head_len - conn->sent};
        }
        size_t body_off = conn->sent > conn->out_head_len
                              ? conn->sent - conn->out_head_len
                              : 0;
        if (body_off < conn->out_body_len) {
            iov[n++] = (struct iovec){conn->reply.body + body_off,
                                      conn->out_body_len - body_off};
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(conn->fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (loop_mod_fd(self->loop, conn->fd, EPOLLOUT)) {
                s_conn_close(conn);
            }
            return;
        }
        if (w <= 0) {
            s_conn_close(conn); // the client went away
            return;
        }
        conn->sent += (size_t)w;
    }
    if (!conn->drain || conn->eof) {
        s_conn_close(conn);
        return;
    }
    //  the client may still be sending: closing now would reset the
    //  connection and could destroy the reply before it is read
    http_reply_free(&conn->reply);
    conn->out_body_len = 0;
    conn->state = CONN_DRAINING;
    if (shutdown(conn->fd, SHUT_WR) ||
        loop_mod_fd(self->loop, conn->fd, EPOLLIN)) {
        s_conn_close(conn);
    }
}

//  The head is in: the deadline moves from the head's (short: a probe or
//  a scraper sends its head at once) to the whole exchange's.
static int s_rearm(http_conn_t *conn)
{
    http_t *self = conn->http;
    uint64_t elapsed = loop_now(self->loop) - conn->accepted;
    if (self->timeout_ms <= self->head_timeout_ms ||
        elapsed >= self->timeout_ms) {
        return 0; // the head's deadline is already the whole one
    }
    loop_cancel_timer(self->loop, conn->timer);
    conn->timer = loop_add_timer(self->loop, self->timeout_ms - elapsed, false,
                                 s_expire, conn);
    return conn->timer > 0 ? 0 : -1;
}

//  The head is parsed (rc DONE or BAD): build the reply and send it.
static void s_respond(http_conn_t *conn, int rc, const http_request_t *req)
{
    http_t *self = conn->http;
    const char *allow = "";
    bool head = false;
    http_reply_init(&conn->reply);
    if (rc == HTTP_PARSE_BAD) {
        log_debug("http_bad_request", "reason=\"%s\"", req->error);
        char text[128];
        snprintf(text, sizeof text, "bad request: %s", req->error);
        s_error_reply(conn, 400, text);
        conn->drain = true;
    } else if (req->method == HTTP_OTHER) {
        s_error_reply(conn, 405, "method not allowed: GET or HEAD only");
        allow = "Allow: GET, HEAD\r\n";
        conn->drain = true;
    } else {
        head = req->method == HTTP_HEAD;
        //  the path ends where the query or the request line's space was
        conn->in[req->path - conn->in + req->path_len] = '\0';
        if (self->fn(self->arg, req->path, &conn->reply) ||
            conn->reply.failed) {
            s_error_reply(conn, 500, "internal error");
        }
        conn->drain = conn->in_len > req->head_len;
    }
    http_reply_t *r = &conn->reply;
    assert(r->status >= 100 && r->status <= 599);
    const char *type = r->content_type ? r->content_type : HTTP_TEXT;
    int n = snprintf(conn->out_head, sizeof conn->out_head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "\r\n",
                     r->status, s_reason(r->status), type, r->len, allow);
    assert(n > 0 && (size_t)n < sizeof conn->out_head);
    conn->out_head_len = (size_t)n;
    conn->out_body_len = head ? 0 : r->len;
    if (s_rearm(conn)) {
        s_conn_close(conn);
        return;
    }
    conn->sent = 0;
    conn->state = CONN_WRITING;
    free(conn->in); // the path is not needed any more
    conn->in = NULL;
    conn->in_cap = 0;
    s_send(conn);
}

//  Some bytes that end a line or cannot be in a head: worth a parse. Other
//  bytes never complete a head (its last byte is LF) and a line they spoil
//  is refused at its end, so a client dribbling bytes costs one scan per
//  line, not one per byte (and at most HTTP_MAX_HEADERS lines).
static bool s_worth_parsing(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return true;
        }
    }
    return false;
}

static void s_read_head(http_conn_t *conn)
{
    size_t before = conn->in_len;
    while (!conn->eof && conn->in_len < HTTP_MAX_HEAD) {
        if (conn->in_len == conn->in_cap) {
            size_t cap = conn->in_cap ? 2 * conn->in_cap : READ_INITIAL;
            cap = cap < HTTP_MAX_HEAD ? cap : HTTP_MAX_HEAD;
            char *in = realloc(conn->in, cap);
            if (!in) {
                s_conn_close(conn);
                return;
            }
            conn->in = in;
            conn->in_cap = cap;
        }
        ssize_t r = read(conn->fd, conn->in + conn->in_len,
                         conn->in_cap - conn->in_len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (r < 0) {
            s_conn_close(conn);
            return;
        }
        if (r == 0) {
            conn->eof = true;
        }
        conn->in_len += (size_t)r;
    }
    if (conn->eof && conn->in_len == 0) {
        s_conn_close(conn); // connected and left: nothing to answer
        return;
    }
    if (!conn->eof && conn->in_len < HTTP_MAX_HEAD &&
        !s_worth_parsing(conn->in + before, conn->in_len - before)) {
        return;
    }
    http_request_t req;
    int rc = http_parse_head(conn->in, conn->in_len, &req);
    if (rc == HTTP_PARSE_MORE && conn->eof) {
        rc = HTTP_PARSE_BAD;
        req.error = "the connection ended inside the request head";
    }
    if (rc != HTTP_PARSE_MORE) {
        s_respond(conn, rc, &req);
    }
}

//  After the reply: drop input until the client closes.
static void s_drain(http_conn_t *conn)
{
    char sink[4096];
    for (;;) {
        ssize_t r = read(conn->fd, sink, sizeof sink);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        conn->drained += r > 0 ? (size_t)r : 0;
        if (r <= 0 || conn->drained > DRAIN_MAX) {
            s_conn_close(conn);
            return;
        }
    }
}

//  Events are hints: a stale one (this descriptor number reused within a
//  batch) only leads to a read or write that finds EAGAIN.
static void s_conn_io(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    http_conn_t *conn = arg;
    switch (conn->state) {
        case CONN_READING:
            if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                s_read_head(conn);
            }
            break;
        case CONN_WRITING:
            if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
                s_send(conn);
            }
            break;
        case CONN_DRAINING:
            if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                s_drain(conn);
            }
            break;
    }
}

// --- accepting ---------------------------------------------------------------

static void s_accept(loop_t *loop, int fd, uint32_t events, void *arg);

static void s_resume(loop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    http_t *self = arg;
    self->pause_timer = 0;
    if (loop_mod_fd(loop, self->fd, EPOLLIN)) {
        log_error("http_accept_failed", "error=\"%s\"", strerror(errno));
    }
}

//  Out of descriptors or memory: the listener would stay readable and spin
//  the loop, so stop watching it for a moment.
static void s_pause(http_t *self)
{
    log_warn("http_accept_failed", "error=\"%s\" pause_ms=%d", strerror(errno),
             ACCEPT_PAUSE_MS);
    int timer =
        loop_add_timer(self->loop, ACCEPT_PAUSE_MS, false, s_resume, self);
    if (timer > 0 && loop_mod_fd(self->loop, self->fd, 0) == 0) {
        self->pause_timer = timer;
    } else if (timer > 0) {
        loop_cancel_timer(self->loop, timer);
    }
}

//  Full: the oldest connection that is not being answered (idle, slow, or
//  draining after its reply) makes room for the new one, else the oldest.
//  A crowd of idle connections then only pushes itself out, and a new
//  probe is answered instead of refused.
static void s_evict(http_t *self)
{
    http_conn_t *victim = self->conns;
    for (http_conn_t *c = self->conns; c; c = c->next) {
        if (c->state != CONN_WRITING) {
            victim = c;
            break;
        }
    }
    log_debug("http_evicted", "conns=%zu state=%d age_ms=%llu", self->nconns,
              (int)victim->state,
              (unsigned long long)(loop_now(self->loop) - victim->accepted));
    s_conn_close(victim);
}

static void s_accept(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)events;
    http_t *self = arg;
    for (int i = 0; i < ACCEPT_PER_WAKE; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                s_pause(self);
            }
            return; // EAGAIN, or a connection that died in the backlog
        }
        if (self->nconns >= HTTP_MAX_CONNS) {
            s_evict(self);
        }
        uint64_t deadline = self->timeout_ms < self->head_timeout_ms
                                ? self->timeout_ms
                                : self->head_timeout_ms;
        http_conn_t *conn = calloc(1, sizeof *conn);
        int timer =
            conn ? loop_add_timer(loop, deadline, false, s_expire, conn) : -1;
        if (timer < 0 || loop_add_fd(loop, cfd, EPOLLIN, s_conn_io, conn)) {
            if (timer > 0) {
                loop_cancel_timer(loop, timer);
            }
            free(conn);
            close(cfd);
            continue;
        }
        conn->http = self;
        conn->fd = cfd;
        conn->timer = timer;
        conn->accepted = loop_now(loop);
        conn->state = CONN_READING;
        http_reply_init(&conn->reply);
        conn->prev = self->newest;
        if (self->newest) {
            self->newest->next = conn;
        } else {
            self->conns = conn;
        }
        self->newest = conn;
        self->nconns++;
        //  a probe's request is usually here already: answered now, it
        //  never holds a slot
        s_read_head(conn);
    }
}

// --- the server --------------------------------------------------------------

//  Split "HOST:PORT" into an address. Returns 0, or -1 with err filled.
static int s_parse_addr(const char *addr, struct sockaddr_storage *ss,
                        socklen_t *sslen, bool *any, char *err, size_t errlen)
{
    const char *usage = "(e.g. 127.0.0.1:9464, [::1]:9464, :9464)";
    char host[64];
    const char *colon;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':' || (size_t)(close - addr) > sizeof host) {
            snprintf(err, errlen, "bad HTTP address '%s': want [IPv6]:PORT %s",
                     addr, usage);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(close - addr - 1), addr + 1);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host) {
            snprintf(err, errlen, "bad HTTP address '%s': want HOST:PORT %s",
                     addr, usage);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    }
    const char *port = colon + 1;
    char *end;
    errno = 0;
    unsigned long p = strtoul(port, &end, 10);
    if (!*port || *end || errno || p > 65535 || port[0] < '0' ||
        port[0] > '9') {
        snprintf(err, errlen, "bad HTTP address '%s': bad port '%s' %s", addr,
                 port, usage);
        return -1;
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    *any = host[0] == '\0' && addr[0] != '[';
    if (*any) {
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_any;
    } else if (addr[0] != '[' && strcmp(host, "localhost") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (addr[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else if (addr[0] == '[' &&
               inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
    } else {
        snprintf(err, errlen,
                 "bad HTTP address '%s': '%s' is not an IP address %s", addr,
                 host, usage);
        return -1;
    }
    if (ss->ss_family == AF_INET) {
        v4->sin_port = htons((uint16_t)p);
        *sslen = sizeof *v4;
    } else {
        v6->sin6_port = htons((uint16_t)p);
        *sslen = sizeof *v6;
    }
    return 0;
}

//  A listening socket on ss, or -1 with errno.
static int s_listen(const struct sockaddr_storage *ss, socklen_t sslen,
                    bool dual)
{
    int fd =
        socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (dual &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero)) ||
        bind(fd, (const struct sockaddr *)ss, sslen) || listen(fd, SOMAXCONN)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

http_t *http_new(loop_t *loop, const char *addr, http_handler_fn *fn, void *arg,
                 char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    bool any;
    if (s_parse_addr(addr, &ss, &sslen, &any, err, errlen)) {
        return NULL;
    }
    int fd = s_listen(&ss, sslen, any);
    if (fd < 0 && any && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
        //  a host without IPv6: every IPv4 interface then
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        uint16_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;
        memset(&ss, 0, sizeof ss);
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = port;
        fd = s_listen(&ss, sizeof *v4, false);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    http_t *self = calloc(1, sizeof *self);
    if (!self || getsockname(fd, (struct sockaddr *)&bound, &blen) ||
        loop_add_fd(loop, fd, EPOLLIN, s_accept, self)) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr,
                 strerror(self ? errno : ENOMEM));
        free(self);
        close(fd);
        return NULL;
    }
    self->loop = loop;
    self->fd = fd;
    self->port = ntohs(bound.ss_family == AF_INET
                           ? ((struct sockaddr_in *)&bound)->sin_port
                           : ((struct sockaddr_in6 *)&bound)->sin6_port);
    self->fn = fn;
    self->arg = arg;
    self->timeout_ms = HTTP_TIMEOUT_MS;
    self->head_timeout_ms = HTTP_HEAD_TIMEOUT_MS;
    return self;
}

void http_destroy(http_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    http_t *self = *self_p;
    while (self->conns) {
        s_conn_close(self->conns);
    }
    if (self->pause_timer) {
        loop_cancel_timer(self->loop, self->pause_timer);
    }
    loop_del_fd(self->loop, self->fd);
    close(self->fd);
    free(self);
    *self_p = NULL;
}

int http_port(const http_t *self)
{
    return self->port;
}

void http_set_timeouts_ms(http_t *self, uint64_t head_ms, uint64_t total_ms)
{
    self->head_timeout_ms = head_ms;
    self->timeout_ms = total_ms;
}
