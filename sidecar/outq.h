/*  outq: what a connection still has to write, as shared frames.

    An outbuf_t is one encoded frame (or several), immutable and reference
    counted: a fanout encodes a message once and queues the same outbuf on
    every receiver. An outq_t is one connection's FIFO of outbufs with a byte
    count, written with writev. An idle connection's queue holds no memory.

    THREAD SAFETY: one thread (reference counts are not atomic).
*/
#ifndef RCD_OUTQ_H
#define RCD_OUTQ_H

#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    uint32_t refs;
    size_t len;
    uint8_t *data;
} outbuf_t;

//  Take the bytes of *buf (which is left empty) as a new outbuf with one
//  reference. Returns NULL with ENOMEM (buf is then emptied and freed too).
outbuf_t *outbuf_adopt(wire_buf_t *buf);
//  Encode one frame into a new outbuf. Returns NULL with errno.
outbuf_t *outbuf_encode(const wire_frame_t *frame);
outbuf_t *outbuf_ref(outbuf_t *self);
//  Drop a reference; the last one frees. *self_p becomes NULL.
void outbuf_unref(outbuf_t **self_p);

typedef struct {
    outbuf_t **ring; // cap slots, count used from head
    size_t cap;
    size_t head;
    size_t count;
    size_t offset; // bytes of ring[head] already written
    size_t bytes;  // bytes queued and not written
} outq_t;

//  The slow-consumer policy, decided for one more frame of len bytes:
//  within budget it is queued; over budget it is dropped, and *slow_since
//  (0 when not slow) records when the drops began; a client still over
//  budget grace_ms after that is closed.
typedef enum { OUTQ_QUEUE, OUTQ_DROP, OUTQ_CLOSE } outq_verdict_t;
outq_verdict_t outq_admit(const outq_t *self, size_t len, size_t budget,
                          uint64_t *slow_since, uint64_t now,
                          uint64_t grace_ms);
//  After a write: a client back under half its budget is no longer slow.
void outq_caught_up(const outq_t *self, size_t budget, uint64_t *slow_since);

//  Queue a reference to buf (taken, not consumed). Returns 0, or -1 with
//  ENOMEM.
int outq_push(outq_t *self, outbuf_t *buf) __attribute__((warn_unused_result));
//  Write as much as the socket takes, with writev. Returns the bytes
//  written (0 when the socket is full: EAGAIN), or -1 with errno when the
//  connection broke.
ssize_t outq_write(outq_t *self, int fd);
//  Drop everything queued but a frame already partly written (so the
//  stream stays whole for a last frame).
void outq_trim(outq_t *self);
//  Drop the queued frames drop(arg, buf) says true of, keeping the others
//  in order and a frame already partly written (memory pressure: the
//  messages go, answers stay). Returns the bytes dropped.
typedef bool(outq_drop_fn)(void *arg, const outbuf_t *buf);
size_t outq_shed(outq_t *self, outq_drop_fn *drop, void *arg);
//  Drop everything queued and free the ring.
void outq_clear(outq_t *self);

#endif
