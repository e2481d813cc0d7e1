/*  outq: see outq.h. */
#include "outq.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

//  frames per sendmsg: IOV_MAX (1024), so 64 B messages (~120 B frames) go
//  ~120 KiB per call, not 7.5 KiB (8,500 calls per 500,000 messages before)
#define IOV_BATCH 1024

outbuf_t *outbuf_adopt(wire_buf_t *buf)
{
    outbuf_t *self = malloc(sizeof *self);
    if (!self) {
        wire_buf_free(buf);
        errno = ENOMEM;
        return NULL;
    }
    self->refs = 1;
    self->len = buf->len;
    self->data = buf->data;
    buf->data = NULL;
    buf->len = buf->cap = 0;
    return self;
}

outbuf_t *outbuf_encode(const wire_frame_t *frame)
{
    //  One block: the outbuf, then the frame (a malloc and a free less per
    //  message and receiver).
    size_t cap = sizeof(outbuf_t) + wire_frame_bound(frame);
    wire_buf_t buf = {malloc(cap), sizeof(outbuf_t), cap};
    if (!buf.data) {
        errno = ENOMEM;
        return NULL;
    }
    if (wire_encode(&buf, frame)) {
        wire_buf_free(&buf);
        return NULL;
    }
    outbuf_t *self = (outbuf_t *)buf.data;
    self->refs = 1;
    self->len = buf.len - sizeof *self;
    self->data = (uint8_t *)(self + 1);
    return self;
}

outbuf_t *outbuf_ref(outbuf_t *self)
{
    self->refs++;
    return self;
}

void outbuf_unref(outbuf_t **self_p)
{
    if (self_p && *self_p) {
        outbuf_t *self = *self_p;
        if (--self->refs == 0) {
            if (self->data != (uint8_t *)(self + 1)) {
                free(self->data); // adopted, not encoded in place
            }
            free(self);
        }
        *self_p = NULL;
    }
}

outq_verdict_t outq_admit(const outq_t *self, size_t len, size_t budget,
                          uint64_t *slow_since, uint64_t now, uint64_t grace_ms)
{
    if (self->bytes + len <= budget) {
        return OUTQ_QUEUE;
    }
    if (!*slow_since) {
        *slow_since = now ? now : 1;
        return OUTQ_DROP;
    }
    return now - *slow_since >= grace_ms ? OUTQ_CLOSE : OUTQ_DROP;
}

void outq_caught_up(const outq_t *self, size_t budget, uint64_t *slow_since)
{
    if (*slow_since && self->bytes < budget / 2) {
        *slow_since = 0;
    }
}

int outq_push(outq_t *self, outbuf_t *buf)
{
    if (buf->len == 0) {
        return 0; // nothing to write; an empty head would stall writev
    }
    if (self->count == self->cap) {
        size_t cap = self->cap ? 2 * self->cap : 4;
        outbuf_t **ring = malloc(cap * sizeof *ring);
        if (!ring) {
            errno = ENOMEM;
            return -1;
        }
        for (size_t i = 0; i < self->count; i++) {
            ring[i] = self->ring[(self->head + i) % self->cap];
        }
        free(self->ring);
        self->ring = ring;
        self->cap = cap;
        self->head = 0;
    }
    self->ring[(self->head + self->count) % self->cap] = outbuf_ref(buf);
    self->count++;
    self->bytes += buf->len;
    return 0;
}

static void s_pop(outq_t *self)
{
    outbuf_unref(&self->ring[self->head]);
    self->head = (self->head + 1) % self->cap;
    self->count--;
    self->offset = 0;
}

ssize_t outq_write(outq_t *self, int fd)
{
    ssize_t total = 0;
    while (self->count) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        size_t want = 0, at = self->head;
        for (size_t i = 0; i < self->count && n < IOV_BATCH; i++, n++) {
            outbuf_t *b = self->ring[at];
            at = at + 1 == self->cap ? 0 : at + 1;
            size_t skip = i == 0 ? self->offset : 0;
            iov[n].iov_base = b->data + skip;
            iov[n].iov_len = b->len - skip;
            want += b->len - skip;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            return -1;
        }
        total += w;
        self->bytes -= (size_t)w;
        size_t left = (size_t)w;
        while (left) {
            outbuf_t *b = self->ring[self->head];
            size_t rest = b->len - self->offset;
            if (left >= rest) {
                left -= rest;
                s_pop(self);
            } else {
                self->offset += left;
                left = 0;
            }
        }
        if ((size_t)w < want) {
            break; // the socket is full: asking again would be EAGAIN
        }
    }
    if (self->count == 0 && self->cap > 64) {
        //  a burst grew the ring: give the memory back when idle
        free(self->ring);
        self->ring = NULL;
        self->cap = self->head = 0;
    }
    return total;
}

void outq_trim(outq_t *self)
{
    size_t keep = self->offset > 0 ? 1 : 0;
    while (self->count > keep) {
        size_t last = (self->head + self->count - 1) % self->cap;
        self->bytes -= self->ring[last]->len;
        outbuf_unref(&self->ring[last]);
        self->count--;
    }
}

size_t outq_shed(outq_t *self, outq_drop_fn *drop, void *arg)
{
    size_t kept = self->offset > 0 ? 1 : 0, dropped = 0;
    for (size_t i = kept; i < self->count; i++) {
        outbuf_t **at = &self->ring[(self->head + i) % self->cap];
        if (drop(arg, *at)) {
            dropped += (*at)->len;
            outbuf_unref(at);
        } else {
            self->ring[(self->head + kept++) % self->cap] = *at;
        }
    }
    self->count = kept;
    self->bytes -= dropped;
    return dropped;
}

void outq_clear(outq_t *self)
{
    while (self->count) {
        s_pop(self);
    }
    free(self->ring);
    self->ring = NULL;
    self->cap = self->head = self->offset = self->bytes = 0;
}
