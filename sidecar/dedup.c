/*  dedup - duplicate filter and sequence tracker. Contract in dedup.h.

    Both are built on s_table_t below: a fixed-capacity hash table of
    16-byte keys with chained buckets and an intrusive LRU list, all links
    32-bit indexes into one entry array. Indexes are stored plus one, so
    that calloc'ed (untouched, lazily mapped) memory reads as "empty".
    Bucket hashes are keyed SipHash with a per-table random key, so peers
    cannot aim collisions at one bucket.
*/

#include "dedup.h"
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

_Static_assert(crypto_shorthash_siphashx24_BYTES == DEDUP_ID_SIZE,
               "stream keys are 128-bit SipHash outputs");
_Static_assert(crypto_shorthash_KEYBYTES ==
                   crypto_shorthash_siphashx24_KEYBYTES,
               "one hash key serves both SipHash variants");

//  --- the LRU hash table -------------------------------------------------

typedef struct {
    uint8_t key[DEDUP_ID_SIZE]; // origin id, or stream digest
    uint32_t chain;             // next entry in the bucket, +1
    uint32_t newer;             // LRU neighbour towards the newest, +1
    uint32_t older;             // LRU neighbour towards the oldest, +1
    uint32_t bucket;            // bucket holding this entry
} s_link_t;

typedef struct {
    uint8_t *entries;   // cap entries of entry_size bytes, s_link_t first
    size_t entry_size;  // bytes per entry, a multiple of 8
    uint32_t *buckets;  // heads of the chains, +1
    size_t mask;        // bucket count - 1
    size_t cap;         // most entries
    size_t count;       // entries in use
    uint32_t used;      // entries ever handed out (never-used ones follow)
    uint32_t free_head; // released entries, linked by chain, +1
    uint32_t newest;    // most recently used, +1
    uint32_t oldest;    // least recently used, +1
    uint8_t hash_key[crypto_shorthash_KEYBYTES]; // random per table
} s_table_t;

static s_link_t *s_link(const s_table_t *table, uint32_t ref)
{
    assert(ref > 0 && ref <= table->used);
    return (s_link_t *)(table->entries + (size_t)(ref - 1) * table->entry_size);
}

static int s_table_init(s_table_t *table, size_t cap, size_t entry_size)
{
    assert(entry_size % 8 == 0 && entry_size >= sizeof(s_link_t));
    if (cap == 0 || cap > DEDUP_MAX_ENTRIES) {
        errno = EINVAL;
        return -1;
    }
    size_t buckets = 2;
    while (buckets < 2 * cap) {
        buckets *= 2;
    }
    memset(table, 0, sizeof *table);
    table->entries = calloc(cap, entry_size);
    table->buckets = calloc(buckets, sizeof(uint32_t));
    if (table->entries == NULL || table->buckets == NULL) {
        free(table->entries);
        free(table->buckets);
        errno = ENOMEM;
        return -1;
    }
    table->entry_size = entry_size;
    table->mask = buckets - 1;
    table->cap = cap;
    randombytes_buf(table->hash_key, sizeof table->hash_key);
    return 0;
}

static void s_table_destroy(s_table_t *table)
{
    free(table->entries);
    free(table->buckets);
    memset(table, 0, sizeof *table);
}

static uint32_t s_bucket_of(const s_table_t *table, uint64_t hash)
{
    return (uint32_t)(hash & table->mask);
}

static void s_lru_unlink(s_table_t *table, uint32_t ref)
{
    s_link_t *link = s_link(table, ref);
    if (link->newer) {
        s_link(table, link->newer)->older = link->older;
    } else {
        table->newest = link->older;
    }
    if (link->older) {
        s_link(table, link->older)->newer = link->newer;
    } else {
        table->oldest = link->newer;
    }
    link->newer = link->older = 0;
}

static void s_lru_push(s_table_t *table, uint32_t ref)
{
    s_link_t *link = s_link(table, ref);
    link->older = table->newest;
    link->newer = 0;
    if (table->newest) {
        s_link(table, table->newest)->newer = ref;
    } else {
        table->oldest = ref;
    }
    table->newest = ref;
}

//  Marks ref as the most recently used.
static void s_table_touch(s_table_t *table, uint32_t ref)
{
    if (table->newest != ref) {
        s_lru_unlink(table, ref);
        s_lru_push(table, ref);
    }
}

//  Returns the entry with this key, +1, or 0.
static uint32_t s_table_find(const s_table_t *table,
                             const uint8_t key[DEDUP_ID_SIZE], uint64_t hash)
{
    uint32_t ref = table->buckets[s_bucket_of(table, hash)];
    while (ref) {
        s_link_t *link = s_link(table, ref);
        if (memcmp(link->key, key, DEDUP_ID_SIZE) == 0) {
            return ref;
        }
        ref = link->chain;
    }
    return 0;
}

static void s_table_remove(s_table_t *table, uint32_t ref)
{
    s_link_t *link = s_link(table, ref);
    uint32_t *slot = &table->buckets[link->bucket];
    while (*slot != ref) {
        assert(*slot); // the entry is in its bucket's chain
        slot = &s_link(table, *slot)->chain;
    }
    *slot = link->chain;
    s_lru_unlink(table, ref);
    memset(link, 0, table->entry_size);
    link->chain = table->free_head;
    table->free_head = ref;
    table->count--;
}

//  Adds a key that is not in the table, as the newest entry; when full,
//  the oldest entry goes first and *evicted is set. The payload after the
//  link is zeroed. Returns the entry, +1.
static uint32_t s_table_insert(s_table_t *table,
                               const uint8_t key[DEDUP_ID_SIZE], uint64_t hash,
                               bool *evicted)
{
    *evicted = false;
    if (table->count == table->cap) {
        s_table_remove(table, table->oldest);
        *evicted = true;
    }
    uint32_t ref = table->free_head;
    if (ref) {
        table->free_head = s_link(table, ref)->chain;
    } else {
        assert(table->used < table->cap);
        ref = ++table->used;
    }
    s_link_t *link = s_link(table, ref);
    memset(link, 0, table->entry_size);
    memcpy(link->key, key, DEDUP_ID_SIZE);
    link->bucket = s_bucket_of(table, hash);
    link->chain = table->buckets[link->bucket];
    table->buckets[link->bucket] = ref;
    s_lru_push(table, ref);
    table->count++;
    return ref;
}

static uint64_t s_load64(const uint8_t *bytes)
{
    uint64_t value;
    memcpy(&value, bytes, sizeof value);
    return value;
}

//  --- duplicate filter ---------------------------------------------------

typedef struct {
    s_link_t link;         // key = origin node id
    uint64_t highest;      // highest event id seen
    uint64_t last_seen_ms; // now_ms of the last dedup_check
    uint64_t bits[];       // window bits; id's bit is id & (window - 1)
} s_origin_t;

struct _dedup_t {
    s_table_t table;     // of s_origin_t
    size_t window;       // a power of two, >= 64
    dedup_stats_t stats; // counters
};

dedup_t *dedup_new(size_t max_origins, size_t window)
{
    if (window == 0 || window > DEDUP_WINDOW_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (sodium_init() < 0) {
        errno = ENOSYS;
        return NULL;
    }
    size_t rounded = 64;
    while (rounded < window) {
        rounded *= 2;
    }
    dedup_t *self = calloc(1, sizeof(dedup_t));
    if (self == NULL) {
        return NULL;
    }
    self->window = rounded;
    if (s_table_init(&self->table, max_origins,
                     sizeof(s_origin_t) + rounded / 8) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void dedup_destroy(dedup_t **self_p)
{
    assert(self_p);
    dedup_t *self = *self_p;
    if (self == NULL) {
        return;
    }
    s_table_destroy(&self->table);
    free(self);
    *self_p = NULL;
}

static uint64_t s_origin_hash(const dedup_t *self,
                              const uint8_t origin[DEDUP_ID_SIZE])
{
    uint8_t hash[crypto_shorthash_BYTES];
    crypto_shorthash(hash, origin, DEDUP_ID_SIZE, self->table.hash_key);
    return s_load64(hash);
}

//  Clears the bits of the count ids from `from` on (count < window), a word
//  at a time: O(window / 64) at worst.
static void s_clear_ids(uint64_t *bits, size_t window, uint64_t from,
                        uint64_t count)
{
    size_t pos = (size_t)(from & (window - 1));
    while (count > 0) {
        size_t bit = pos % 64;
        uint64_t n = 64 - bit;
        if (n > count) {
            n = count;
        }
        uint64_t mask =
            n == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << n) - 1) << bit;
        bits[pos / 64] &= ~mask;
        count -= n;
        pos = (pos + (size_t)n) & (window - 1);
    }
}

//  Sets id's bit; returns whether it was set already.
static bool s_test_and_set(uint64_t *bits, size_t window, uint64_t id)
{
    size_t pos = (size_t)(id & (window - 1));
    uint64_t mask = UINT64_C(1) << (pos % 64);
    bool was = (bits[pos / 64] & mask) != 0;
    bits[pos / 64] |= mask;
    return was;
}

int dedup_check(dedup_t *self, const uint8_t origin[DEDUP_ID_SIZE],
                uint64_t event_id, uint64_t now_ms)
{
    assert(self);
    assert(origin);
    uint64_t hash = s_origin_hash(self, origin);
    uint32_t ref = s_table_find(&self->table, origin, hash);
    s_origin_t *entry = NULL;
    if (ref == 0) {
        bool evicted = false;
        ref = s_table_insert(&self->table, origin, hash, &evicted);
        self->stats.evictions += evicted;
        entry = (s_origin_t *)s_link(&self->table, ref);
        entry->highest = event_id; // bits are zeroed by the insert
    } else {
        s_table_touch(&self->table, ref);
        entry = (s_origin_t *)s_link(&self->table, ref);
    }
    entry->last_seen_ms = now_ms;

    if (event_id > entry->highest) {
        uint64_t ahead = event_id - entry->highest;
        if (ahead >= self->window) {
            memset(entry->bits, 0, self->window / 8);
        } else {
            s_clear_ids(entry->bits, self->window, entry->highest + 1, ahead);
        }
        entry->highest = event_id;
    } else if (entry->highest - event_id >= self->window) {
        self->stats.too_old++;
        return 0;
    }
    if (s_test_and_set(entry->bits, self->window, event_id)) {
        self->stats.duplicates++;
        return 0;
    }
    self->stats.accepted++;
    return 1;
}

int dedup_forget(dedup_t *self, const uint8_t origin[DEDUP_ID_SIZE])
{
    assert(self);
    assert(origin);
    uint32_t ref =
        s_table_find(&self->table, origin, s_origin_hash(self, origin));
    if (ref == 0) {
        errno = ENOENT;
        return -1;
    }
    s_table_remove(&self->table, ref);
    return 0;
}

size_t dedup_expire(dedup_t *self, uint64_t now_ms, uint64_t idle_ms)
{
    assert(self);
    size_t forgotten = 0;
    //  The LRU list is in last_seen_ms order (for a monotonic clock): stop
    //  at the first origin recent enough.
    while (self->table.oldest) {
        uint32_t ref = self->table.oldest;
        s_origin_t *entry = (s_origin_t *)s_link(&self->table, ref);
        if (now_ms < entry->last_seen_ms ||
            now_ms - entry->last_seen_ms < idle_ms) {
            break;
        }
        s_table_remove(&self->table, ref);
        forgotten++;
    }
    return forgotten;
}

size_t dedup_size(const dedup_t *self)
{
    assert(self);
    return self->table.count;
}

size_t dedup_window(const dedup_t *self)
{
    assert(self);
    return self->window;
}

void dedup_stats(const dedup_t *self, dedup_stats_t *stats)
{
    assert(self);
    assert(stats);
    *stats = self->stats;
}

//  --- sequence / gap tracker ---------------------------------------------

typedef struct {
    s_link_t link; // key = digest of (instance, ns, topic)
    uint64_t last; // last sequence delivered
} s_stream_t;

struct _seqtrack_t {
    s_table_t table;        // of s_stream_t
    seqtrack_stats_t stats; // counters
};

seqtrack_t *seqtrack_new(size_t max_streams)
{
    if (sodium_init() < 0) {
        errno = ENOSYS;
        return NULL;
    }
    seqtrack_t *self = calloc(1, sizeof(seqtrack_t));
    if (self == NULL) {
        return NULL;
    }
    if (s_table_init(&self->table, max_streams, sizeof(s_stream_t)) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void seqtrack_destroy(seqtrack_t **self_p)
{
    assert(self_p);
    seqtrack_t *self = *self_p;
    if (self == NULL) {
        return;
    }
    s_table_destroy(&self->table);
    free(self);
    *self_p = NULL;
}

//  The stream's key: SipHash-128 of instance || wire_topic_key (ns, topic)
//  (its length prefix keeps ("a", "bc") and ("ab", "c") apart).
static void s_stream_key(const seqtrack_t *self,
                         const uint8_t instance[DEDUP_ID_SIZE], const char *ns,
                         size_t ns_len, const char *topic, size_t topic_len,
                         uint8_t key[DEDUP_ID_SIZE])
{
    uint8_t buf[DEDUP_ID_SIZE + WIRE_TOPIC_KEY_MAX];
    memcpy(buf, instance, DEDUP_ID_SIZE);
    size_t len = wire_topic_key((char *)buf + DEDUP_ID_SIZE, ns, ns_len, topic,
                                topic_len);
    crypto_shorthash_siphashx24(key, buf, DEDUP_ID_SIZE + len,
                                self->table.hash_key);
}

int seqtrack_observe(seqtrack_t *self,
                     const uint8_t origin_instance[DEDUP_ID_SIZE],
                     const char *ns, size_t ns_len, const char *topic,
                     size_t topic_len, uint64_t sequence, uint64_t *missed)
{
    assert(self);
    assert(origin_instance);
    assert(missed);
    assert(ns || ns_len == 0);
    assert(topic || topic_len == 0);
    //  envelope_open guarantees these limits; longer names are our bug.
    assert(ns_len <= SEQTRACK_NAME_MAX && topic_len <= SEQTRACK_NAME_MAX);
    *missed = 0;

    uint8_t key[DEDUP_ID_SIZE];
    s_stream_key(self, origin_instance, ns, ns_len, topic, topic_len, key);
    uint64_t hash = s_load64(key); // already keyed and uniform
    uint32_t ref = s_table_find(&self->table, key, hash);
    if (ref == 0) {
        bool evicted = false;
        ref = s_table_insert(&self->table, key, hash, &evicted);
        self->stats.evictions += evicted;
        ((s_stream_t *)s_link(&self->table, ref))->last = sequence;
        return SEQTRACK_IN_ORDER;
    }
    s_table_touch(&self->table, ref);
    s_stream_t *stream = (s_stream_t *)s_link(&self->table, ref);

    if (sequence > stream->last) {
        uint64_t skipped = sequence - stream->last - 1;
        stream->last = sequence;
        if (skipped == 0) {
            return SEQTRACK_IN_ORDER;
        }
        *missed = skipped;
        self->stats.gaps++;
        self->stats.missed += skipped;
        return SEQTRACK_GAP;
    }
    if (sequence == 1 && stream->last > 1) {
        stream->last = sequence;
        self->stats.resets++;
        return SEQTRACK_IN_ORDER;
    }
    self->stats.stale++;
    return SEQTRACK_STALE;
}

size_t seqtrack_size(const seqtrack_t *self)
{
    assert(self);
    return self->table.count;
}

void seqtrack_stats(const seqtrack_t *self, seqtrack_stats_t *stats)
{
    assert(self);
    assert(stats);
    *stats = self->stats;
}
