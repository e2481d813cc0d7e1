/*  Fuzz target: an HTTP request head, as a client of /metrics sends it.

    The input is the bytes read so far on a connection; http_parse_head
    must answer BAD (with a reason), MORE or DONE, read nothing outside the
    buffer, and keep its promises: a DONE head is a whole head that parses
    the same alone and is MORE one byte short, with no Transfer-Encoding
    and, for GET and HEAD, no Content-Length but 0; a MORE stays MORE for
    every prefix; a BAD stays BAD whatever follows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_parse(const uint8_t *data, size_t size, http_request_t *req)
{
    //  an exact-size copy, so the sanitizer sees any read past the end
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        abort();
    }
    if (size) {
        memcpy(buf, data, size);
    }
    int rc = http_parse_head(buf, size, req);
    if (req->path) {
        //  rebase into data, which outlives buf
        req->path = (const char *)data + (req->path - buf);
    }
    free(buf);
    return rc;
}

//  Whether a line of head[0, len) starts with "Transfer-Encoding:", in
//  any case.
static int s_has_transfer_encoding(const char *head, size_t len)
{
    static const char name[] = "\r\ntransfer-encoding:";
    size_t n = sizeof name - 1;
    for (size_t i = 0; i + n <= len; i++) {
        size_t k = 0;
        while (k < n &&
               (head[i + k] | (name[k] >= 'a' ? 0x20 : 0)) == name[k]) {
            k++;
        }
        if (k == n) {
            return 1;
        }
    }
    return 0;
}

static void s_check_done(const uint8_t *data, size_t size,
                         const http_request_t *req)
{
    const char *start = (const char *)data;
    if (req->head_len < 16 || req->head_len > size ||
        req->head_len > HTTP_MAX_HEAD ||
        memcmp(start + req->head_len - 4, "\r\n\r\n", 4) != 0 ||
        req->path < start || req->path_len == 0 ||
        req->path + req->path_len > start + req->head_len ||
        req->path[0] != '/' || (req->minor != 0 && req->minor != 1) ||
        req->headers > HTTP_MAX_HEADERS || req->error) {
        __builtin_trap();
    }
    for (size_t i = 0; i < req->path_len; i++) {
        unsigned char c = (unsigned char)req->path[i];
        if (c < 0x21 || c > 0x7e || c == '?') {
            __builtin_trap();
        }
    }
    //  a head we answer has no body framing but one Content-Length: 0
    if (req->content_length < -1 ||
        (req->method != HTTP_OTHER && req->content_length > 0) ||
        s_has_transfer_encoding(start, req->head_len)) {
        __builtin_trap();
    }
    int get = memcmp(data, "GET ", 4) == 0,
        head = memcmp(data, "HEAD ", 5) == 0;
    if ((req->method == HTTP_GET) != get ||
        (req->method == HTTP_HEAD) != head) {
        __builtin_trap();
    }
    http_request_t alone, short_one;
    if (s_parse(data, req->head_len, &alone) != HTTP_PARSE_DONE ||
        alone.head_len != req->head_len || alone.path != req->path ||
        alone.path_len != req->path_len || alone.method != req->method ||
        alone.minor != req->minor || alone.headers != req->headers ||
        alone.content_length != req->content_length ||
        s_parse(data, req->head_len - 1, &short_one) != HTTP_PARSE_MORE) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_request_t req;
    int rc = s_parse(data, size, &req);
    if (rc == HTTP_PARSE_DONE) {
        s_check_done(data, size, &req);
    } else if (rc == HTTP_PARSE_MORE) {
        http_request_t shorter;
        if (req.error || req.path || size >= HTTP_MAX_HEAD ||
            (size && s_parse(data, size - 1, &shorter) != HTTP_PARSE_MORE) ||
            s_parse(data, size / 2, &shorter) != HTTP_PARSE_MORE) {
            __builtin_trap();
        }
    } else if (rc == HTTP_PARSE_BAD) {
        if (!req.error || !req.error[0] || req.path) {
            __builtin_trap(); // a refusal always says why
        }
        //  more bytes never mend it
        uint8_t *more = malloc(size + 4);
        if (!more) {
            abort();
        }
        memcpy(more, data, size);
        memcpy(more + size, "\r\n\r\n", 4);
        http_request_t again;
        if (s_parse(more, size + 4, &again) != HTTP_PARSE_BAD) {
            __builtin_trap();
        }
        free(more);
    } else {
        __builtin_trap();
    }
    return 0;
}
