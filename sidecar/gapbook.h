/*  gapbook: the losses one app is owed a report of. While an app reads too
    slowly, the messages dropped at its queue budget are counted here per
    stream (namespace, topic, publishing instance); once it catches up the
    server drains the book into GAP notices (reason "slow"), so no drop is
    silent and a burst of drops costs one notice per stream, not one per
    message. Bounded: past max_streams, further streams are only counted
    (gapbook_drain returns them for one summary).

    THREAD SAFETY: one thread.
*/
#ifndef RCD_GAPBOOK_H
#define RCD_GAPBOOK_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct gapbook_t gapbook_t;

//  Returns NULL on ENOMEM.
gapbook_t *gapbook_new(size_t max_streams);
void gapbook_destroy(gapbook_t **self_p);

//  n messages of (ns, topic) from instance (16 bytes) were lost.
void gapbook_add(gapbook_t *self, wire_str_t ns, wire_str_t topic,
                 const uint8_t *instance, uint64_t n);

//  Messages recorded and not drained yet.
uint64_t gapbook_total(const gapbook_t *self);

//  Call fn for every stream with its count (oldest first), forget them,
//  and return the messages of streams past max_streams (0: none).
typedef void(gapbook_fn)(void *arg, wire_str_t ns, wire_str_t topic,
                         const uint8_t *instance, uint64_t missed);
uint64_t gapbook_drain(gapbook_t *self, gapbook_fn *fn, void *arg);

#endif
