/*  http: a tiny HTTP/1.0-1.1 server on the loop, for GET and HEAD only,
    serving /metrics, /healthz and /readyz to Prometheus and probes.

    One request per connection: the head is read into a per-connection
    buffer (at most HTTP_MAX_HEAD bytes), parsed strictly, handed to the
    handler, and the reply is written with non-blocking writes (EPOLLOUT for
    the rest) with Content-Length and "Connection: close"; then the
    connection is closed. Nothing ever blocks the loop:

      - a request line or header that is not exactly the grammar below, or a
        head over HTTP_MAX_HEAD bytes, gets 400; a method other than GET or
        HEAD gets 405; HEAD gets GET's headers without the body;
      - a connection whose head is not whole HTTP_HEAD_TIMEOUT_MS after
        accept (idle, or slow), or whose reply is not out HTTP_TIMEOUT_MS
        after accept, is closed without a reply;
      - at most HTTP_MAX_CONNS connections are open; when a new one comes,
        the oldest that is not being answered (idle, slow, or draining)
        is closed to make room, so idle connections push out only each
        other and a probe is never refused; the head already waiting on a
        new connection is read and answered at accept;
      - after an error reply, or when the client sent more than the head
        (a body, a second request), the write side is shut and what still
        comes is read and dropped until the client closes or the timeout,
        so the client reads the whole reply instead of a reset.

    Grammar (RFC 9112, strict; no obs-fold, no bare LF, no absolute-form):

      request-line = method SP path SP ( "HTTP/1.0" / "HTTP/1.1" ) CRLF
      method       = 1*tchar
      path         = "/" *( %x21-7E )      ; visible ASCII, no space
      header       = 1*tchar ":" *( HTAB / SP / %x21-7E / %x80-FF ) CRLF
      head         = request-line *header CRLF   ; at most HTTP_MAX_HEADERS

    Body framing, strict because we take no body and may sit behind a
    proxy that would read the framing another way (request smuggling): a
    Transfer-Encoding header, a Content-Length that is not 1*DIGIT (with
    optional spaces around) or too large for 63 bits, a second
    Content-Length (even equal, even in another case), and on a GET or
    HEAD any Content-Length but 0 all get 400. Header names are compared
    without case.

    The handler sees the path as sent up to the first '?' (the query is
    stripped; no percent-decoding).

    Why not libmicrohttpd (0.9.75, external epoll mode, strictest
    options): it answers 200 to a duplicated or conflicting Content-Length,
    Transfer-Encoding on a GET, obs-fold, bare LF, control bytes in the
    path, absolute-form and HTTP/1.2; at its connection limit it stops
    accepting instead of closing an idle connection, so probes wait
    behind a crowd; and its idle timeout is in whole seconds.

    THREAD SAFETY: an http_t belongs to the loop's thread. http_parse_head
    and the http_reply_ functions are pure and may be used anywhere.
*/
#ifndef RCD_HTTP_H
#define RCD_HTTP_H

#include "loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD        8192 // bytes of request line + headers + CRLF
#define HTTP_MAX_HEADERS     100  // header lines in one head
#define HTTP_MAX_CONNS       256  // open connections; then the oldest idle goes
#define HTTP_TIMEOUT_MS      5000 // from accept to the last byte of the reply
#define HTTP_HEAD_TIMEOUT_MS 2000 // from accept to the end of the head

// --- replies -----------------------------------------------------------------

//  What a handler answers. Zero it (or http_reply_init) before use; the
//  body grows as it is appended to.
typedef struct {
    int status;               // 100-599; 200 after init
    const char *content_type; // static string; NULL means text/plain
    char *body;               // NUL-terminated once anything is appended
    size_t len;               // body bytes, without the NUL
    size_t cap;               //
    bool failed;              // an append ran out of memory: answer 500
} http_reply_t;

#define HTTP_TEXT "text/plain; charset=utf-8"

//  Status 200, text/plain, empty body.
void http_reply_init(http_reply_t *reply) __attribute__((nonnull));
//  Append to the body. Returns 0, or -1 with ENOMEM (then reply->failed).
int http_reply_printf(http_reply_t *reply, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), nonnull(1, 2)));
int http_reply_append(http_reply_t *reply, const void *data, size_t len)
    __attribute__((nonnull(1)));
//  Free the body; the reply is empty again (init state). Safe twice.
void http_reply_free(http_reply_t *reply) __attribute__((nonnull));

// --- the server --------------------------------------------------------------

typedef struct http_t http_t;

//  Fill reply for path (query stripped, NUL-terminated, borrowed for the
//  call), for a GET or a HEAD (the server drops the body for HEAD). Set
//  reply->status for anything but 200 (404 for an unknown path). Return 0;
//  -1 answers 500 "internal error". Runs on the loop: must not block.
typedef int(http_handler_fn)(void *arg, const char *path, http_reply_t *reply);

//  Listen on addr, "HOST:PORT": "127.0.0.1:9464", "0.0.0.0:9464",
//  "[::1]:9464", "localhost:9464", or ":9464" for every interface (IPv6
//  and IPv4 where the host has IPv6, else IPv4). HOST is an IP address or
//  "localhost" (no name lookup); PORT 0 picks a free port (see http_port).
//  Non-blocking, SO_REUSEADDR. loop is borrowed and must outlive the
//  server; fn(arg, ...) answers every well-formed GET and HEAD.
//  Returns NULL with err filled ("bad HTTP address ...", "cannot listen on
//  ...: Address already in use").
http_t *http_new(loop_t *loop, const char *addr, http_handler_fn *fn, void *arg,
                 char *err, size_t errlen) __attribute__((nonnull(1, 2, 3, 5)));
//  Close every connection and the listener. Safe twice; nulls *self_p.
void http_destroy(http_t **self_p);

//  The port bound (the one picked when addr asked for port 0).
int http_port(const http_t *self) __attribute__((nonnull));

//  How long a connection may take from accept to the end of its head
//  (default HTTP_HEAD_TIMEOUT_MS) and to the last byte of its reply
//  (default HTTP_TIMEOUT_MS; the head's deadline is never later). Applies
//  to connections accepted after.
void http_set_timeouts_ms(http_t *self, uint64_t head_ms, uint64_t total_ms)
    __attribute__((nonnull));

// --- the parser --------------------------------------------------------------

typedef enum {
    HTTP_GET = 0,
    HTTP_HEAD = 1,
    HTTP_OTHER = 2 // well-formed but not ours: 405
} http_method_t;

typedef struct {
    http_method_t method;   //
    const char *path;       // into buf, starts with '/', no '?'; not NUL-ended
    size_t path_len;        //
    int minor;              // HTTP/1.<minor>: 0 or 1
    size_t headers;         // header lines
    size_t head_len;        // bytes up to and including the empty line
    int64_t content_length; // -1 when absent
    const char *error;      // why, when HTTP_PARSE_BAD (static string)
} http_request_t;

#define HTTP_PARSE_BAD  (-1) // not HTTP as above, or over HTTP_MAX_HEAD: 400
#define HTTP_PARSE_MORE 0    // a valid beginning: read more
#define HTTP_PARSE_DONE 1    // a whole head in buf[0, out->head_len)

//  Parse the request head at the start of buf[0, len) (bytes after the
//  head are ignored). Fills out on every result (path and head_len only on
//  DONE, error only on BAD). Looks at no more than HTTP_MAX_HEAD bytes: a
//  buffer that long without a whole head is BAD. Pure, any bytes.
int http_parse_head(const char *buf, size_t len, http_request_t *out)
    __attribute__((nonnull(3)));

#endif
