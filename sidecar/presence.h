/*  presence: who is in a room, cluster-wide.

    An app sets presence (namespace, topic, key, meta) and clears it; each
    sidecar owns the entries of its own apps, with one version counter per
    sidecar. Changes go to the other sidecars as deltas over the sealed
    mesh control channel. Anti-entropy costs a few bytes, and a constant
    number of messages per sidecar whatever the cluster's size:
      - a peer that sees a gap in our deltas asks for a snapshot at once;
      - a peer that hears us (presence_peer_up) gets our snapshot at the
        next tick, once for all that appeared, and none while we never
        held an entry (so N sidecars coming up together, through proxies
        too, exchange no presence at all); a peer that went down holding
        entries (presence_peer_down) is asked for its snapshot when heard
        again, since it may not have seen us go;
      - a summary (our version) goes out at the next summary tick after
        our version changed (so a lost last delta is found), and otherwise
        as a refresh every PRESENCE_REFRESH_TICKS * ceil (peers /
        PRESENCE_FAN_IN) ticks: each sidecar then receives about
        PRESENCE_FAN_IN refreshes per PRESENCE_REFRESH_TICKS ticks (1 a
        second) whatever the number of peers, not one per peer per
        summary period;
      - a peer whose copy is behind a summary asks for a snapshot; a
        snapshot asked for that has not come whole after
        PRESENCE_ASK_TICKS is asked for again (at the tick).
    Snapshots go out at most once per tick, however many asked. A snapshot is
    cut into chunks of at most PRESENCE_CHUNK_BYTES of entries (one entry
    at least), so no control message comes near a link's message limit
    whatever the table holds; the receiver replaces that sidecar's entries
    once the last chunk of one version came in order (a chunk missing:
    that snapshot is dropped and asked for again). The entries of
    an app vanish when it disconnects; those of a sidecar when it dies or
    leaves.

    Budgets: an app may hold at most app_entries entries and app_bytes
    bytes (names and meta), the sidecar's apps together entries and bytes;
    past them presence_set fails with ENOSPC and the table is unchanged.

    Apps that subscribed to a topic and asked for presence events
    (WIRE_HF_PRESENCE) get a PEVENT for every entry that comes or goes.

    Wire (mesh control, prefix "PR", body sealed like every control):
      delta     [channel, node, "d", version, op (1 set, 0 clear), ns,
                 topic, key, meta]
      summary   [channel, node, "v", version]
      request   [channel, node, "r", version, target node]
      snapshot  [channel, node, "s", version, chunk (from 0), last (bool),
                 [[ns, topic, key, meta]...]]

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

#define PRESENCE_CHUNK_BYTES   (60 * 1024) // entries per snapshot chunk
#define PRESENCE_SUMMARY_TICKS 5  // summary after a change: at most this often
#define PRESENCE_REFRESH_TICKS 20 // unchanged: a refresh, times the scale
#define PRESENCE_FAN_IN        10 // peers per refresh period before it scales
#define PRESENCE_ASK_TICKS     10 // a snapshot asked for not come: ask again

//  Budgets (0: the default in brackets).
typedef struct {
    size_t app_entries; // per app [10,000]
    size_t app_bytes;   // per app [8 MiB]
    size_t entries;     // all our apps [200,000]
    size_t bytes;       // all our apps [64 MiB]
} presence_limits_t;

presence_t *presence_new(const presence_io_t *io, const uint8_t node_id[16],
                         const char *channel, const presence_limits_t *limits);
void presence_destroy(presence_t **self_p);

//  An app (owner, any pointer that names it) sets or clears its entry
//  (ns, topic, key). Returns 0, or -1 with ENOMEM, EEXIST (set: another
//  app of ours holds the key), ENOSPC (set: over a budget) or ENOENT
//  (clear of an entry owner does not own).
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
//  Send our full snapshot now, in chunks.
void presence_snapshot(presence_t *self);
//  We hear node (first time, or again after silence): it gets our
//  snapshot at the next tick, and we ask for its own (our copy of its
//  entries was dropped when it went silent).
//  A first contact asks nothing: the peer sends its own snapshot when it
//  hears us, and one that never held an entry sends none (so N sidecars
//  coming up together exchange no presence at all). Only a peer that held
//  entries when it went down (presence_peer_down) is asked for its
//  snapshot: it may not have seen us go, and would not resend.
void presence_peer_up(presence_t *self, const uint8_t node[16]);
//  We no longer hear node (it may come back): its entries are dropped, and
//  if it held any, it is asked for its snapshot when heard again.
void presence_peer_down(presence_t *self, const uint8_t node[16]);
//  Once per tick (the coordinator's, 500 ms), with the number of peers we
//  hear: send the snapshot that peers asked for since the last tick (once,
//  however many asked), and a summary when due (see above).
void presence_tick(presence_t *self, size_t peers);

//  Entries and bytes our apps hold, for metrics.
void presence_usage(const presence_t *self, size_t *entries, size_t *bytes);

#endif
