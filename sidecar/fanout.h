/*  fanout: the one path by which a message reaches local subscribers.

    A local publish and an envelope from the mesh both call fanout_deliver.
    It encodes the MSG frame once and hands the same outbuf to every member
    of the topic (the io.deliver callback applies that member's budget).
    Rooms larger than a slice are walked a slice at a time from the loop's
    idle hook (fanout_run), so a huge room never stalls timers and I/O;
    while any job is pending new messages queue behind it, which keeps
    per-publisher per-topic order for every member.

    THREAD SAFETY: one thread.
*/
#ifndef RCD_FANOUT_H
#define RCD_FANOUT_H

#include "msg.h"
#include "outq.h"
#include "registry.h"
#include "stats.h"

#include <stdbool.h>

typedef struct fanout_t fanout_t;

typedef struct {
    void *arg;
    //  Queue buf (a reference is taken by the callee if it keeps it).
    //  It may take member out of its topics (a connection closed because
    //  a write failed): the other members are still served once each.
    void (*deliver)(void *arg, void *member, outbuf_t *buf);
    //  Keep member alive across slices; release undoes one hold.
    void (*hold)(void *arg, void *member);
    void (*release)(void *arg, void *member);
} fanout_io_t;

//  slice: members handled per step (0: 1024). Returns NULL on ENOMEM.
fanout_t *fanout_new(registry_t *registry, const fanout_io_t *io, size_t slice,
                     stats_t *stats);
void fanout_destroy(fanout_t **self_p);

//  Deliver msg to every member of its topic but origin (the publishing
//  member, NULL for a message from the mesh), and to origin too when
//  msg->flags has WIRE_F_ECHO. Returns the members it was or will be
//  queued to, or -1 with ENOMEM.
int fanout_deliver(fanout_t *self, const msg_t *msg, void *origin);

//  Run one slice of pending work. Returns true while work remains.
bool fanout_run(fanout_t *self);

//  True while a job waits for later slices.
bool fanout_pending(const fanout_t *self);

#endif
