/*  sentring: the envelopes a sidecar sent lately, kept for repair.

    Every sealed envelope the mesh publishes is copied here as an opaque
    blob (frame 1 and frame 2, whatever the envelope format), indexed by
    what the caller says it holds: one span per stream, a stream being
    (origin instance, namespace, topic) and a span the sequences of that
    stream in the blob. A batch of several messages is one blob with one
    span per stream it carries. When a peer asks for sequences [from, to]
    of a stream (a repair request), sentring_find hands back the blobs that
    hold any of them, oldest first, to be published again as they are
    (receivers drop what they have already, by event id).

    Coalescing (as Aeron's NAKs): what is re-sent goes to every peer that
    subscribes to it, so a loss many peers saw (a burst the origin's own
    links dropped) is re-sent once: a find whose range lies within the
    range last re-sent for that stream less than SENTRING_COALESCE_MS ago
    hands nothing back (counted in coalesced): the copies are on their
    way, ahead of the answer the caller sends after this call.

    Bounded by bytes (blob bytes plus a small overhead per blob and span)
    and by age: the oldest blobs go first. max_bytes 0 keeps nothing (the
    repair is off: every request is answered with nothing).

    Cost: one malloc and one copy per blob; a hash lookup per span; a find
    is a binary search in the stream's spans. Sequences of one stream are
    expected to grow blob after blob (a publisher that restarts its
    sequences gets a new instance id); if they do not, a find may miss
    blobs, which the receiver sees as a gap it could not repair.

    THREAD SAFETY: one thread.
*/
#ifndef RCD_SENTRING_H
#define RCD_SENTRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SENTRING_ID_SIZE     16
#define SENTRING_NAME_MAX    255
#define SENTRING_COALESCE_MS 50

typedef struct sentring_t sentring_t;

//  What a blob holds of one stream.
typedef struct {
    const uint8_t *instance; // SENTRING_ID_SIZE bytes
    const char *ns;          // 0..255 bytes, not NUL terminated
    size_t ns_len;
    const char *topic; // 1..255 bytes
    size_t topic_len;
    uint64_t seq_lo, seq_hi; // sequences in the blob, lo <= hi
} sentring_span_t;

typedef struct {
    uint64_t blobs;     // held now
    uint64_t bytes;     // held now, with overheads
    uint64_t streams;   // held now
    uint64_t put;       // blobs stored
    uint64_t evicted;   // blobs dropped for bytes or age
    uint64_t coalesced; // finds answered by a re-send just made
} sentring_stats_t;

//  Keep up to max_bytes for up to max_age_ms. Returns NULL on ENOMEM.
sentring_t *sentring_new(size_t max_bytes, uint64_t max_age_ms);
void sentring_destroy(sentring_t **self_p);

//  Store a copy of the blob [f1][f2] sent at now, holding spans (1..255).
//  Returns 0, or -1 with errno EINVAL (bad span), EMSGSIZE (alone it is
//  over max_bytes: not kept) or ENOMEM. With max_bytes 0: 0, nothing kept.
int sentring_put(sentring_t *self, uint64_t now, const uint8_t *f1,
                 size_t f1_len, const uint8_t *f2, size_t f2_len,
                 const sentring_span_t *spans, size_t nspans);

//  Drop what is older than max_age_ms at now.
void sentring_expire(sentring_t *self, uint64_t now);

//  Call fn for each blob holding sequences of [from, to] of the stream,
//  oldest first, at most max of them (none when coalesced, above).
//  Returns how many; *oldest is set to the lowest sequence of that stream
//  still held (UINT64_MAX: none).
typedef void(sentring_fn)(void *arg, const uint8_t *f1, size_t f1_len,
                          const uint8_t *f2, size_t f2_len);
size_t sentring_find(sentring_t *self, uint64_t now, const uint8_t *instance,
                     const char *ns, size_t ns_len, const char *topic,
                     size_t topic_len, uint64_t from, uint64_t to, size_t max,
                     sentring_fn *fn, void *arg, uint64_t *oldest);

//  Call fn for each blob stored at or after since (ms, as now), oldest
//  first, until max_bytes of blobs (frames 1 and 2) have gone; at least
//  one blob goes when any is held. Returns how many; *capped is set when
//  blobs were left out for max_bytes. For a peer whose link came back: it
//  re-sends what the link may have lost, all of it, to every subscriber
//  (no coalescing: a peer that was away got none of the earlier re-sends).
size_t sentring_since(sentring_t *self, uint64_t now, uint64_t since,
                      size_t max_bytes, sentring_fn *fn, void *arg,
                      bool *capped);

void sentring_stats(const sentring_t *self, sentring_stats_t *stats);

#endif
