/*  swim_probe.h - the failure detector's bookkeeping for swim_t

    At most one probe in flight (our ping to one member, then our ping-reqs
    for it) and the pings we send for other members' ping-reqs, whose acks
    we forward. It owns the ping sequence numbers, shared by both, so an ack
    names exactly one of them. Times only: no packets, no member table.
    Internal to discovery/.

    A probe started at t waits for a direct ack until t + timeout; then
    swim_probe_check says INDIRECT once (send the ping-reqs); with still no
    ack at t + interval it says FAILED once and the probe is over. If check
    is called so late that the direct wait and the period are both over,
    it says INDIRECT first and gives the helpers interval - timeout more.
    A forwarded ping is remembered for interval - timeout: the requester
    gives up by then.
*/

#ifndef SWIM_PROBE_H_INCLUDED
#define SWIM_PROBE_H_INCLUDED

#include "swim.h"

typedef struct swim_probe_t swim_probe_t;

typedef enum {
    SWIM_PROBE_WAIT = 0,     // nothing to do now
    SWIM_PROBE_INDIRECT = 1, // send ping-reqs for the probe
    SWIM_PROBE_FAILED = 2    // no ack this period: suspect the target
} swim_probe_action_t;

typedef enum {
    SWIM_ACK_UNKNOWN = 0, // late, duplicate or not ours
    SWIM_ACK_PROBE = 1,   // our probe is answered and over
    SWIM_ACK_FORWARD = 2  // a ping done for a ping-req: forward the ack
} swim_ack_kind_t;

//  Create with the protocol's timings (timeout_ms < interval_ms). Returns
//  NULL on ENOMEM.
swim_probe_t *swim_probe_new(uint32_t timeout_ms, uint32_t interval_ms)
    __attribute__((warn_unused_result));

//  Destroy; nulls the pointer, safe twice.
void swim_probe_destroy(swim_probe_t **self_p);

//  Change the timings (timeout_ms < interval_ms) for the probes started
//  from now on: local health stretches them.
void swim_probe_set_timings(swim_probe_t *self, uint32_t timeout_ms,
                            uint32_t interval_ms) __attribute__((nonnull));

//  Start probing target, known at this incarnation, at now, forgetting
//  any probe in flight. Returns the sequence number for the ping.
uint32_t swim_probe_start(swim_probe_t *self, const uint8_t *target,
                          uint64_t incarnation, uint64_t now)
    __attribute__((nonnull));

//  Forget the probe in flight, if any.
void swim_probe_cancel(swim_probe_t *self) __attribute__((nonnull));

//  True while a probe waits for its ack.
bool swim_probe_active(swim_probe_t *self) __attribute__((nonnull));

//  The probe's target id, its incarnation when the probe started, and the
//  sequence number (meaningful while active or just after check said
//  FAILED). A failure says nothing about a later incarnation.
const uint8_t *swim_probe_target(swim_probe_t *self) __attribute__((nonnull));
uint64_t swim_probe_incarnation(swim_probe_t *self) __attribute__((nonnull));
uint32_t swim_probe_seq(swim_probe_t *self) __attribute__((nonnull));

//  Run the timers due at now: expire forwards, and say what the probe
//  needs (swim_probe_action_t). After it, swim_probe_deadline () > now.
int swim_probe_check(swim_probe_t *self, uint64_t now) __attribute__((nonnull));

//  Remember a ping-req from addr (1..SWIM_ADDR_MAX bytes) with sequence
//  number req_seq; *seq gets the number for our ping to the target.
//  Returns 0, or -1 with ENOSPC when too many are pending.
int swim_probe_forward(swim_probe_t *self, uint32_t req_seq, const char *addr,
                       uint64_t now, uint32_t *seq) __attribute__((nonnull));

//  An ack with seq arrived. For SWIM_ACK_FORWARD, *req_seq and addr
//  (SWIM_ADDR_MAX + 1 bytes) say where to forward it. Returns a
//  swim_ack_kind_t.
int swim_probe_ack(swim_probe_t *self, uint32_t seq, uint32_t *req_seq,
                   char *addr) __attribute__((nonnull));

//  Earliest time check has something to do; UINT64_MAX if never.
uint64_t swim_probe_deadline(swim_probe_t *self) __attribute__((nonnull));

#endif
