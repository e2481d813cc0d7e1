/*  swim_queue.h - the dissemination queue of swim_t

    News about members waiting to be piggybacked on outgoing packets. There
    is at most one item per member id: newer news replaces older news about
    the same member. Each item goes out a bounded number of times (the
    limit, given at each fill, follows the cluster size), least-sent first;
    unsent news newest first; among news sent equally often, the newest
    first when it is newer than all the others, else in the order it got
    there. Internal to discovery/.
*/

#ifndef SWIM_QUEUE_H_INCLUDED
#define SWIM_QUEUE_H_INCLUDED

#include "swim.h"

typedef struct swim_queue_t swim_queue_t;

//  Create an empty queue. Returns NULL on ENOMEM.
swim_queue_t *swim_queue_new(void) __attribute__((warn_unused_result));

//  Destroy the queue; nulls the pointer, safe twice.
void swim_queue_destroy(swim_queue_t **self_p);

//  Queue a copy of rec as news, sent zero times so far, replacing pending
//  news about the same id. Returns 0, or -1 with ENOSPC (SWIM_MEMBERS_MAX
//  items) or ENOMEM.
int swim_queue_push(swim_queue_t *self, const swim_member_t *rec)
    __attribute__((nonnull));

//  Choose news for one packet: copy up to max items into out in the order
//  above, skipping a few whose encoded size does not fit in what is left
//  of budget bytes. Each chosen item counts one transmission;
//  items sent limit times leave the queue. Returns the number copied.
size_t swim_queue_fill(swim_queue_t *self, size_t budget, uint32_t limit,
                       swim_member_t *out, size_t max) __attribute__((nonnull));

//  Number of items waiting.
size_t swim_queue_size(swim_queue_t *self) __attribute__((nonnull));

#endif
