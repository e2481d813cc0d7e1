/*  presence: who is in a room, cluster-wide.

    An app sets presence (namespace, topic, key, meta) and clears it; each
    sidecar owns the entries of its own apps, with one version counter per
    sidecar. Changes go to the other sidecars as deltas over the sealed
    mesh control channel, and every few heartbeats (and when a peer
    appears) as a full snapshot, so a sidecar that missed a delta or
    joined late converges: a delta that is not the next version is ignored
    until the next snapshot replaces that sidecar's entries wholesale. The
    entries of an app vanish when it disconnects; those of a sidecar when
    it dies or leaves (membership or heartbeats say so).

    Apps that subscribed to a topic and asked for presence events
    (WIRE_HF_PRESENCE) get a PEVENT for every entry that comes or goes.

    Wire (mesh control, prefix "PR", body sealed like every control):
      delta     [channel, node, "d", version, op (1 set, 0 clear), ns,
                 topic, key, meta]
      snapshot  [channel, node, "s", version, [[ns, topic, key, meta]...]]

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_PRESENCE_H
#define RCD_PRESENCE_H

#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct presence_t presence_t;

//  One entry, as presence shows it (borrowed for the call).
typedef struct {
    uint8_t node[16];    // the sidecar whose app set it
    const char *ns;      //
    const char *topic;   //
    const char *key;     //
    const uint8_t *meta; // any bytes
    size_t meta_len;     //
} presence_entry_t;

//  How presence reports.
typedef struct {
    void *arg;
    //  Send a presence body to every other sidecar (NULL: local only).
    void (*send)(void *arg, const uint8_t *body, size_t len);
    //  An entry came (present) or went: tell the local apps that watch
    //  its topic.
    void (*event)(void *arg, const presence_entry_t *e, bool present);
} presence_io_t;

presence_t *presence_new(const presence_io_t *io, const uint8_t node_id[16],
                         const char *channel);
void presence_destroy(presence_t **self_p);

//  An app (owner, any pointer that names it) sets or clears its entry
//  (ns, topic, key). Returns 0, or -1 with ENOMEM or EEXIST (set: another
//  app of ours holds the key) or ENOENT (clear of an entry owner does not
//  own).
int presence_set(presence_t *self, const void *owner, wire_str_t ns,
                 wire_str_t topic, wire_str_t key, wire_str_t meta);
int presence_clear(presence_t *self, const void *owner, wire_str_t ns,
                   wire_str_t topic, wire_str_t key);
//  owner is gone: clear every entry it set.
void presence_owner_gone(presence_t *self, const void *owner);

//  Call fn for every entry of (ns, topic).
typedef void(presence_entry_fn)(void *arg, const presence_entry_t *e);
void presence_list(presence_t *self, wire_str_t ns, wire_str_t topic,
                   presence_entry_fn *fn, void *arg);

//  A body from another sidecar (opened, channel checked by the mesh).
//  Returns 0, or -1 with EPROTO when it does not parse.
int presence_on_remote(presence_t *self, const uint8_t *body, size_t len);
//  A sidecar died or left: its entries vanish.
void presence_node_gone(presence_t *self, const uint8_t node[16]);
//  Send our full snapshot now (a peer appeared, or periodically).
void presence_snapshot(presence_t *self);

#endif
