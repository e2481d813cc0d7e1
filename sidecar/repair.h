/*  repair: a receiver's side of repair from peers, as a state machine.

    When a stream (origin node, origin instance, namespace, topic) skips
    sequences, the mesh does not tell the apps at once: it asks the origin
    for the missing ones (io->request, sent over the control channel to
    that node only) and holds the stream's later messages meanwhile, so the
    apps still get the stream in order. The origin re-publishes what its
    recent buffer (sentring.h) holds, then answers; the answer comes after
    the re-sent envelopes on the same link, so when it arrives whatever is
    still missing is gone.

    WHEN A GAP BECOMES A GAP NOTICE (io->deliver with missed > 0)

      - the origin answered and the messages did not come (reason
        REPAIR_MESH: lost between sidecars, older than its window);
      - no answer within timeout_ms (REPAIR_MESH);
      - the origin is not heard, when the gap is seen or while waiting
        (REPAIR_ORIGIN_GONE, at once: repair_origin_gone);
      - the held messages would go over max_held_bytes (REPAIR_MESH, at
        once for that stream: nothing waits without a bound).

    WHEN TO ASK, RETRIES
      At once when the gap is seen (one request per missing range); once
      more after retry_ms without an answer (a control message lost); given
      up at timeout_ms. A gap seen in a stream already under repair adds a
      range (at most REPAIR_RANGES_MAX per stream; past that the oldest is
      given up). Streams under repair are few (a gap is rare between live
      sidecars): they are kept in an array and found by a linear search,
      and repair_active () lets the mesh skip all of it when none is.

    Time is an argument (ms, monotonic); no I/O: io does it. Tests:
    tests/unit/test_repair.c, on a simulated clock.

    THREAD SAFETY: one thread. io callbacks run inside the calls below and
    must not call back into the same repair_t.
*/
#ifndef RCD_REPAIR_H
#define RCD_REPAIR_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPAIR_RANGES_MAX 8

//  Why messages were given up (the GAP notice's reason, as wire.h's).
#define REPAIR_MESH        0 // lost between sidecars, not repaired
#define REPAIR_ORIGIN_GONE 3 // the origin died before re-sending

typedef struct {
    uint32_t timeout_ms;   // give a request up, default 500
    uint32_t retry_ms;     // ask again once, default 200
    size_t max_held_bytes; // held behind gaps, all streams, default 16 MiB
    size_t max_streams;    // under repair at once, default 4096
} repair_config_t;

typedef struct {
    void *arg;
    //  Ask origin (16 bytes) for sequences [from, to] of the stream
    //  (instance, ns, topic); the answer echoes req. Required.
    void (*request)(void *arg, const uint8_t *origin, uint64_t req,
                    const uint8_t *instance, wire_str_t ns, wire_str_t topic,
                    uint64_t from, uint64_t to);
    //  Deliver msg to the apps; missed messages of its stream before it
    //  were lost, for reason (REPAIR_*). In stream order. Required.
    void (*deliver)(void *arg, const msg_t *msg, uint64_t missed, int reason);
} repair_io_t;

typedef struct {
    uint64_t requests;   // sent, retries included
    uint64_t retries;    // of them, asked again
    uint64_t answered;   // answers that matched a waiting request
    uint64_t timeouts;   // requests given up unanswered
    uint64_t repaired;   // messages that came through a repair
    uint64_t unrepaired; // messages given up (told in GAP notices)
    uint64_t copies;     // dropped: already delivered or held
    uint64_t overflows;  // streams given up for max_held_bytes or streams
    uint64_t streams;    // gauge: under repair now
    uint64_t held_bytes; // gauge: bytes held behind gaps
} repair_stats_t;

typedef struct repair_t repair_t;

void repair_config_defaults(repair_config_t *cfg);

//  cfg NULL: defaults. Returns NULL with errno EINVAL (io incomplete, a
//  zero timeout) or ENOMEM.
repair_t *repair_new(const repair_config_t *cfg, const repair_io_t *io)
    __attribute__((warn_unused_result));
//  Forget everything (nothing is delivered). Safe twice.
void repair_destroy(repair_t **self_p);

//  Whether any stream is under repair (cheap: check before the others).
bool repair_active(const repair_t *self) __attribute__((nonnull));

//  A message of a stream under repair that fills a hole (or a copy of one
//  already delivered or held): taken (delivered in order, held, or
//  dropped) and true. False when msg is not the repair's business: then
//  dedup and sequence tracking go on as usual, then repair_observe.
bool repair_claim(repair_t *self, uint64_t now, const msg_t *msg)
    __attribute__((nonnull));

//  A new message (not a duplicate, in order or after missed lost ones, as
//  sequence tracking says). Returns true when taken: held behind a stream
//  under repair, or it opened a repair (missed > 0 and can_repair: the
//  origin is heard). False: deliver it now (with missed, reason mesh).
bool repair_observe(repair_t *self, uint64_t now, const msg_t *msg,
                    uint64_t missed, bool can_repair) __attribute__((nonnull));

//  origin answered request req: what did not come is gone.
void repair_answer(repair_t *self, uint64_t now, const uint8_t *origin,
                   uint64_t req) __attribute__((nonnull));

//  origin is gone (dead, or its link ended): its repairs end at once.
void repair_origin_gone(repair_t *self, uint64_t now, const uint8_t *origin)
    __attribute__((nonnull));

//  Retries and time-outs due at now.
void repair_tick(repair_t *self, uint64_t now) __attribute__((nonnull));

//  When repair_tick is next due (absolute ms), UINT64_MAX when idle.
uint64_t repair_next_deadline(const repair_t *self) __attribute__((nonnull));

void repair_stats(const repair_t *self, repair_stats_t *stats)
    __attribute__((nonnull));

#endif
