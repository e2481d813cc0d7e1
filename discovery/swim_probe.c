/*  swim_probe.c - the failure detector's bookkeeping for swim_t

    Forwards live in a small fixed array: a member serves a ping-req only
    for the few members that chose it as a helper this period.
*/

#include "swim_probe.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FORWARDS_MAX 64 // ping-reqs served at once

typedef struct {
    uint32_t seq;                 // our ping to the target
    uint32_t req_seq;             // the requester's, echoed in the ack
    char addr[SWIM_ADDR_MAX + 1]; // the requester
    uint64_t expires;             // forgotten then
} s_forward_t;

struct swim_probe_t {
    uint32_t timeout_ms;          // direct ack wait
    uint32_t interval_ms;         // protocol period
    uint32_t seq;                 // last sequence number given
    bool active;                  // a probe waits for its ack
    bool indirect;                // INDIRECT was said
    uint8_t target[SWIM_ID_SIZE]; // probed member
    uint64_t incarnation;         // its incarnation then
    uint32_t probe_seq;           // its ping
    uint64_t timeout_at;          // INDIRECT then
    uint64_t end_at;              // FAILED then
    s_forward_t forwards[FORWARDS_MAX];
    size_t forward_count;
};

//  Sequence number 0 is never given: the caller may use it for pings that
//  are no probe.
static uint32_t s_next_seq(swim_probe_t *self)
{
    if (++self->seq == 0) {
        self->seq = 1;
    }
    return self->seq;
}

swim_probe_t *swim_probe_new(uint32_t timeout_ms, uint32_t interval_ms)
{
    assert(timeout_ms < interval_ms);
    swim_probe_t *self = (swim_probe_t *)calloc(1, sizeof(swim_probe_t));
    if (self) {
        self->timeout_ms = timeout_ms;
        self->interval_ms = interval_ms;
    }
    return self;
}

void swim_probe_destroy(swim_probe_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

void swim_probe_set_timings(swim_probe_t *self, uint32_t timeout_ms,
                            uint32_t interval_ms)
{
    assert(timeout_ms < interval_ms);
    self->timeout_ms = timeout_ms;
    self->interval_ms = interval_ms;
}

uint32_t swim_probe_start(swim_probe_t *self, const uint8_t *target,
                          uint64_t incarnation, uint64_t now)
{
    self->incarnation = incarnation;
    self->active = true;
    self->indirect = false;
    memcpy(self->target, target, SWIM_ID_SIZE);
    self->probe_seq = s_next_seq(self);
    self->timeout_at = now + self->timeout_ms;
    self->end_at = now + self->interval_ms;
    return self->probe_seq;
}

void swim_probe_cancel(swim_probe_t *self)
{
    self->active = false;
}

bool swim_probe_active(swim_probe_t *self)
{
    return self->active;
}

const uint8_t *swim_probe_target(swim_probe_t *self)
{
    return self->target;
}

uint64_t swim_probe_incarnation(swim_probe_t *self)
{
    return self->incarnation;
}

uint32_t swim_probe_seq(swim_probe_t *self)
{
    return self->probe_seq;
}

int swim_probe_check(swim_probe_t *self, uint64_t now)
{
    size_t i = 0;
    while (i < self->forward_count) {
        if (self->forwards[i].expires <= now) {
            self->forwards[i] = self->forwards[--self->forward_count];
        } else {
            i++;
        }
    }
    if (!self->active) {
        return SWIM_PROBE_WAIT;
    }
    if (!self->indirect && now >= self->timeout_at) {
        self->indirect = true;
        if (self->end_at <= now) {
            //  We ran late (a stalled loop): give the helpers their time.
            self->end_at = now + self->interval_ms - self->timeout_ms;
        }
        return SWIM_PROBE_INDIRECT;
    }
    if (now >= self->end_at) {
        self->active = false;
        return SWIM_PROBE_FAILED;
    }
    return SWIM_PROBE_WAIT;
}

int swim_probe_forward(swim_probe_t *self, uint32_t req_seq, const char *addr,
                       uint64_t now, uint32_t *seq)
{
    size_t len = strnlen(addr, SWIM_ADDR_MAX + 1);
    assert(len > 0 && len <= SWIM_ADDR_MAX);
    if (self->forward_count == FORWARDS_MAX) {
        errno = ENOSPC;
        return -1;
    }
    s_forward_t *forward = &self->forwards[self->forward_count++];
    forward->seq = s_next_seq(self);
    forward->req_seq = req_seq;
    memcpy(forward->addr, addr, len + 1);
    forward->expires = now + self->interval_ms - self->timeout_ms;
    *seq = forward->seq;
    return 0;
}

int swim_probe_ack(swim_probe_t *self, uint32_t seq, uint32_t *req_seq,
                   char *addr)
{
    if (self->active && seq == self->probe_seq) {
        self->active = false;
        return SWIM_ACK_PROBE;
    }
    for (size_t i = 0; i < self->forward_count; i++) {
        s_forward_t *forward = &self->forwards[i];
        if (forward->seq == seq) {
            *req_seq = forward->req_seq;
            memcpy(addr, forward->addr, sizeof forward->addr);
            *forward = self->forwards[--self->forward_count];
            return SWIM_ACK_FORWARD;
        }
    }
    return SWIM_ACK_UNKNOWN;
}

uint64_t swim_probe_deadline(swim_probe_t *self)
{
    uint64_t next = UINT64_MAX;
    if (self->active) {
        next = self->indirect ? self->end_at : self->timeout_at;
    }
    for (size_t i = 0; i < self->forward_count; i++) {
        if (self->forwards[i].expires < next) {
            next = self->forwards[i].expires;
        }
    }
    return next;
}
