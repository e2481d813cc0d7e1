/*  dedup - exactly-once delivery to apps, and visible gaps.

    Two small tables with bounded memory and O(1) work per message, both
    least-recently-used bounded:

    dedup_t      drops the second copy of a message (two proxies, or a
                 resend), by (origin node, event id). Per origin it keeps the
                 highest event id seen and a sliding bitmap of the `window`
                 ids at or below it, so copies that arrive out of order are
                 still told apart. An id more than window-1 below the highest
                 is "too old" and treated as a duplicate (dropped).
                 Memory: 48 + window/8 bytes per origin (176 with a window
                 of 1024), plus 8 to 16 bytes of hash buckets.

    seqtrack_t   follows the sequence of each (origin instance, namespace,
                 topic) stream, to report gaps (messages lost on the way) and
                 stale messages (older than one already delivered).
                 A stream is keyed by a 16-byte keyed SipHash of its three
                 names (random key per table: collisions are not a practical
                 concern), so memory does not depend on name lengths: 40
                 bytes per stream plus 8 to 16 bytes of hash buckets.

    Both tables are allocated once by _new; their pages are touched only as
    entries are used. Evicted or forgotten state is simply lost: a duplicate
    of a message from an evicted origin is accepted again, and an evicted
    stream restarts without reporting a gap. Size the tables for the number
    of origins and of active streams you expect.

    Requirement on senders: one origin node's event ids never go backwards.
    A sidecar that restarts must use a new origin node id, or start its
    event ids above any it used before (e.g. from a wall-clock
    microsecond count), or receivers will drop its messages as too old.

    THREAD SAFETY: a table belongs to one thread at a time.
*/

#ifndef RC_DEDUP_H_INCLUDED
#define RC_DEDUP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define DEDUP_ID_SIZE     16         // origin node / instance id bytes
#define DEDUP_MAX_ENTRIES (1u << 24) // largest max_origins / max_streams
#define DEDUP_WINDOW_MAX  (1u << 20) // largest window, in event ids
#define SEQTRACK_NAME_MAX 255        // bytes in a namespace or a topic

//  --- duplicate filter ---------------------------------------------------

typedef struct _dedup_t dedup_t;

typedef struct {
    uint64_t accepted;   // dedup_check returned 1
    uint64_t duplicates; // seen before, within the window
    uint64_t too_old;    // below the window
    uint64_t evictions;  // origins dropped to make room
} dedup_stats_t;

//  Create a filter for up to max_origins origins (1..DEDUP_MAX_ENTRIES),
//  remembering window event ids per origin (rounded up to a power of two,
//  at least 64, at most DEDUP_WINDOW_MAX). Returns NULL with errno EINVAL
//  or ENOMEM.
dedup_t *dedup_new(size_t max_origins, size_t window);

//  Free the filter. Nulls *self_p; safe to call twice.
void dedup_destroy(dedup_t **self_p);

//  Record that a message (origin, event_id) arrived at now_ms (a monotonic
//  clock in ms). Returns 1 if it is new (deliver it), 0 if it is a
//  duplicate or too old (drop it). An unknown origin starts a new record,
//  evicting the least recently seen origin when max_origins are known.
int dedup_check(dedup_t *self, const uint8_t origin[DEDUP_ID_SIZE],
                uint64_t event_id, uint64_t now_ms);

//  Forget an origin (e.g. a member that left). Returns 0, or -1 with errno
//  ENOENT if it is not known.
int dedup_forget(dedup_t *self, const uint8_t origin[DEDUP_ID_SIZE]);

//  Forget every origin not seen since now_ms - idle_ms; call it from a
//  timer. Returns how many were forgotten. Runs in time proportional to
//  that number.
size_t dedup_expire(dedup_t *self, uint64_t now_ms, uint64_t idle_ms);

//  Origins currently known.
size_t dedup_size(const dedup_t *self);

//  The window in event ids, after rounding.
size_t dedup_window(const dedup_t *self);

//  Copy the counters to *stats.
void dedup_stats(const dedup_t *self, dedup_stats_t *stats);

//  --- sequence / gap tracker ---------------------------------------------

typedef struct _seqtrack_t seqtrack_t;

//  What seqtrack_observe says about a message.
#define SEQTRACK_IN_ORDER 0  // deliver: next in its stream, or first seen
#define SEQTRACK_GAP      1  // deliver, and tell the app *missed were lost
#define SEQTRACK_STALE    -1 // older than one already delivered: drop

typedef struct {
    uint64_t gaps;      // SEQTRACK_GAP results
    uint64_t missed;    // sum of *missed over all gaps
    uint64_t stale;     // SEQTRACK_STALE results
    uint64_t resets;    // streams that restarted at sequence 1
    uint64_t evictions; // streams dropped to make room
} seqtrack_stats_t;

//  Create a tracker for up to max_streams streams (1..DEDUP_MAX_ENTRIES).
//  Returns NULL with errno EINVAL or ENOMEM.
seqtrack_t *seqtrack_new(size_t max_streams);

//  Free the tracker. Nulls *self_p; safe to call twice.
void seqtrack_destroy(seqtrack_t **self_p);

//  Observe message `sequence` of the stream (origin_instance, ns, topic);
//  names are 0..255 bytes, not NUL terminated (as envelope_open gives
//  them). Feed it messages that passed dedup_check. Sets *missed (0 unless
//  a gap) and returns, with last the stream's last sequence:
//    SEQTRACK_IN_ORDER  first message seen of the stream (whatever its
//                       sequence: we may have joined late), or last + 1, or
//                       a restart: sequence 1 when last is above 1 (the
//                       publisher's sequences were reset; counted in
//                       resets, no gap reported);
//    SEQTRACK_GAP       sequence > last + 1: *missed = sequence - last - 1;
//    SEQTRACK_STALE     sequence <= last otherwise: a late copy overtaken by
//                       a newer one (per-topic FIFO says drop it). last is
//                       unchanged. Not an error: errno is not set.
//  A stream unseen for long enough to be evicted starts over as first seen.
int seqtrack_observe(seqtrack_t *self,
                     const uint8_t origin_instance[DEDUP_ID_SIZE],
                     const char *ns, size_t ns_len, const char *topic,
                     size_t topic_len, uint64_t sequence, uint64_t *missed);

//  Streams currently tracked.
size_t seqtrack_size(const seqtrack_t *self);

//  Copy the counters to *stats.
void seqtrack_stats(const seqtrack_t *self, seqtrack_stats_t *stats);

#endif
