/*  sentring: see sentring.h. Blobs live in a FIFO (a circular array of
    pointers, oldest at head); each stream keeps its spans in a circular
    array in the same order, so evicting the oldest blob pops the head of
    each of its streams' spans. Streams are found by a chained hash of
    their key (instance || len || ns || len || topic).
*/
#include "sentring.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX      (SENTRING_ID_SIZE + 2 + 2 * SENTRING_NAME_MAX)
#define BLOB_COST    64 // bytes counted per blob beyond its frames
#define SPAN_COST    32 // and per span
#define STREAM_COST  96 // and per stream
#define SPANS_MAX    255
#define BUCKETS_INIT 64

typedef struct blob_t blob_t;
typedef struct stream_t stream_t;

typedef struct {
    blob_t *blob;
    uint64_t lo, hi;
} ref_t;

struct stream_t {
    stream_t *next; // in its bucket
    uint64_t hash;
    ref_t *refs; // circular, oldest at head
    size_t head, count, cap;
    uint64_t served_lo, served_hi; // last range re-sent
    uint64_t served_at;            // when, 0: never
    size_t klen;
    uint8_t key[]; // klen bytes
};

struct blob_t {
    uint64_t time;
    size_t f1_len, f2_len;
    size_t nspans;
    size_t cost;
    stream_t **streams; // nspans, in the same allocation
    uint8_t *data;      // f1 then f2, in the same allocation
};

struct sentring_t {
    size_t max_bytes;
    uint64_t max_age_ms;
    blob_t **blobs; // circular, oldest at head
    size_t head, count, cap;
    stream_t **buckets;
    size_t nbuckets; // power of two
    sentring_stats_t stats;
};

static uint64_t s_hash(const uint8_t *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; // FNV-1a: peers are authenticated
    for (size_t i = 0; i < len; i++) {
        h = (h ^ key[i]) * 0x100000001b3ull;
    }
    return h;
}

static size_t s_key(uint8_t key[KEY_MAX], const uint8_t *instance,
                    const char *ns, size_t ns_len, const char *topic,
                    size_t topic_len)
{
    memcpy(key, instance, SENTRING_ID_SIZE);
    size_t n = SENTRING_ID_SIZE;
    key[n++] = (uint8_t)ns_len;
    memcpy(key + n, ns, ns_len);
    n += ns_len;
    key[n++] = (uint8_t)topic_len;
    memcpy(key + n, topic, topic_len);
    return n + topic_len;
}

static stream_t **s_slot(sentring_t *self, const uint8_t *key, size_t klen,
                         uint64_t hash)
{
    stream_t **pp = &self->buckets[hash & (self->nbuckets - 1)];
    while (*pp && ((*pp)->hash != hash || (*pp)->klen != klen ||
                   memcmp((*pp)->key, key, klen) != 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

static void s_grow_buckets(sentring_t *self)
{
    size_t n = self->nbuckets * 2;
    stream_t **b = calloc(n, sizeof *b);
    if (!b) {
        return; // longer chains, still correct
    }
    for (size_t i = 0; i < self->nbuckets; i++) {
        stream_t *s = self->buckets[i], *next;
        for (; s; s = next) {
            next = s->next;
            s->next = b[s->hash & (n - 1)];
            b[s->hash & (n - 1)] = s;
        }
    }
    free(self->buckets);
    self->buckets = b;
    self->nbuckets = n;
}

static stream_t *s_stream(sentring_t *self, const uint8_t *key, size_t klen)
{
    uint64_t hash = s_hash(key, klen);
    stream_t **pp = s_slot(self, key, klen, hash);
    if (*pp) {
        return *pp;
    }
    stream_t *s = calloc(1, sizeof *s + klen);
    if (!s) {
        return NULL;
    }
    s->hash = hash;
    s->klen = klen;
    memcpy(s->key, key, klen);
    *pp = s;
    self->stats.streams++;
    self->stats.bytes += STREAM_COST;
    if (self->stats.streams > self->nbuckets) {
        s_grow_buckets(self);
    }
    return s;
}

static void s_stream_drop(sentring_t *self, stream_t *s)
{
    stream_t **pp = s_slot(self, s->key, s->klen, s->hash);
    if (*pp == s) {
        *pp = s->next;
    }
    free(s->refs);
    free(s);
    self->stats.streams--;
    self->stats.bytes -= STREAM_COST;
}

static int s_ref_push(stream_t *s, blob_t *b, uint64_t lo, uint64_t hi)
{
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        ref_t *refs = malloc(cap * sizeof *refs);
        if (!refs) {
            return -1;
        }
        for (size_t i = 0; i < s->count; i++) {
            refs[i] = s->refs[(s->head + i) % s->cap];
        }
        free(s->refs);
        s->refs = refs;
        s->head = 0;
        s->cap = cap;
    }
    s->refs[(s->head + s->count) % s->cap] = (ref_t){b, lo, hi};
    s->count++;
    return 0;
}

static ref_t *s_ref(const stream_t *s, size_t i)
{
    return &s->refs[(s->head + i) % s->cap];
}

//  Drop the oldest blob; its spans are the heads of their streams.
static void s_pop(sentring_t *self)
{
    blob_t *b = self->blobs[self->head];
    self->head = (self->head + 1) % self->cap;
    self->count--;
    for (size_t i = 0; i < b->nspans; i++) {
        stream_t *s = b->streams[i];
        if (!s) {
            continue;
        }
        if (s->count && s_ref(s, 0)->blob == b) {
            s->head = (s->head + 1) % s->cap;
            s->count--;
        }
        if (s->count == 0) {
            s_stream_drop(self, s);
            //  the same stream twice in one blob: forget the other mention
            for (size_t j = i + 1; j < b->nspans; j++) {
                if (b->streams[j] == s) {
                    b->streams[j] = NULL;
                }
            }
        }
    }
    self->stats.blobs--;
    self->stats.bytes -= b->cost;
    free(b);
}

sentring_t *sentring_new(size_t max_bytes, uint64_t max_age_ms)
{
    sentring_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->max_bytes = max_bytes;
    self->max_age_ms = max_age_ms;
    self->nbuckets = BUCKETS_INIT;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    if (!self->buckets) {
        free(self);
        return NULL;
    }
    return self;
}

void sentring_destroy(sentring_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    sentring_t *self = *self_p;
    while (self->count) {
        s_pop(self);
    }
    free(self->blobs);
    free(self->buckets);
    free(self);
    *self_p = NULL;
}

void sentring_expire(sentring_t *self, uint64_t now)
{
    while (self->count &&
           now - self->blobs[self->head]->time >= self->max_age_ms) {
        s_pop(self);
        self->stats.evicted++;
    }
}

static int s_push_blob(sentring_t *self, blob_t *b)
{
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        blob_t **blobs = malloc(cap * sizeof *blobs);
        if (!blobs) {
            return -1;
        }
        for (size_t i = 0; i < self->count; i++) {
            blobs[i] = self->blobs[(self->head + i) % self->cap];
        }
        free(self->blobs);
        self->blobs = blobs;
        self->head = 0;
        self->cap = cap;
    }
    self->blobs[(self->head + self->count) % self->cap] = b;
    self->count++;
    return 0;
}

int sentring_put(sentring_t *self, uint64_t now, const uint8_t *f1,
                 size_t f1_len, const uint8_t *f2, size_t f2_len,
                 const sentring_span_t *spans, size_t nspans)
{
    if (self->max_bytes == 0) {
        return 0;
    }
    if (nspans == 0 || nspans > SPANS_MAX) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < nspans; i++) {
        const sentring_span_t *sp = &spans[i];
        if (!sp->instance || sp->ns_len > SENTRING_NAME_MAX ||
            sp->topic_len > SENTRING_NAME_MAX || sp->seq_lo > sp->seq_hi) {
            errno = EINVAL;
            return -1;
        }
    }
    size_t cost = BLOB_COST + f1_len + f2_len + nspans * SPAN_COST;
    if (cost + nspans * STREAM_COST > self->max_bytes) {
        errno = EMSGSIZE;
        return -1;
    }
    sentring_expire(self, now);
    while (self->count &&
           self->stats.bytes + cost + nspans * STREAM_COST > self->max_bytes) {
        s_pop(self);
        self->stats.evicted++;
    }
    blob_t *b =
        malloc(sizeof *b + nspans * sizeof(stream_t *) + f1_len + f2_len);
    if (!b || s_push_blob(self, b)) {
        free(b);
        errno = ENOMEM;
        return -1;
    }
    b->time = now;
    b->f1_len = f1_len;
    b->f2_len = f2_len;
    b->nspans = nspans;
    b->cost = cost;
    b->streams = (stream_t **)(b + 1);
    b->data = (uint8_t *)(b->streams + nspans);
    memcpy(b->data, f1, f1_len);
    memcpy(b->data + f1_len, f2, f2_len);
    self->stats.blobs++;
    self->stats.bytes += cost;
    self->stats.put++;
    for (size_t i = 0; i < nspans; i++) {
        const sentring_span_t *sp = &spans[i];
        uint8_t key[KEY_MAX];
        size_t klen = s_key(key, sp->instance, sp->ns, sp->ns_len, sp->topic,
                            sp->topic_len);
        stream_t *s = s_stream(self, key, klen);
        if (s && s_ref_push(s, b, sp->seq_lo, sp->seq_hi)) {
            if (s->count == 0) {
                s_stream_drop(self, s);
            }
            s = NULL;
        }
        b->streams[i] = s; // NULL: out of memory, that span is not indexed
    }
    return 0;
}

size_t sentring_find(sentring_t *self, uint64_t now, const uint8_t *instance,
                     const char *ns, size_t ns_len, const char *topic,
                     size_t topic_len, uint64_t from, uint64_t to, size_t max,
                     sentring_fn *fn, void *arg, uint64_t *oldest)
{
    sentring_expire(self, now);
    *oldest = UINT64_MAX;
    if (ns_len > SENTRING_NAME_MAX || topic_len > SENTRING_NAME_MAX) {
        return 0;
    }
    uint8_t key[KEY_MAX];
    size_t klen = s_key(key, instance, ns, ns_len, topic, topic_len);
    stream_t *s = *s_slot(self, key, klen, s_hash(key, klen));
    if (!s || s->count == 0) {
        return 0;
    }
    *oldest = s_ref(s, 0)->lo;
    if (s->served_at && now - s->served_at < SENTRING_COALESCE_MS &&
        from >= s->served_lo && to <= s->served_hi) {
        self->stats.coalesced++;
        return 0; // re-sent to every subscriber just now
    }
    //  first span that ends at or after from
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_ref(s, mid)->hi < from) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t n = 0;
    const blob_t *last = NULL;
    for (size_t i = lo; i < s->count && n < max; i++) {
        const ref_t *r = s_ref(s, i);
        if (r->lo > to) {
            break;
        }
        if (r->blob == last) {
            continue; // one blob, two spans of this stream
        }
        last = r->blob;
        fn(arg, r->blob->data, r->blob->f1_len, r->blob->data + r->blob->f1_len,
           r->blob->f2_len);
        n++;
    }
    if (n) {
        s->served_lo = from;
        s->served_hi = to;
        s->served_at = now ? now : 1;
    }
    return n;
}

size_t sentring_since(sentring_t *self, uint64_t now, uint64_t since,
                      size_t max_bytes, sentring_fn *fn, void *arg,
                      bool *capped)
{
    sentring_expire(self, now);
    *capped = false;
    //  blobs are stored in time order: the first at or after since
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->blobs[(self->head + mid) % self->cap]->time < since) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t n = 0, bytes = 0;
    for (size_t i = lo; i < self->count; i++) {
        const blob_t *b = self->blobs[(self->head + i) % self->cap];
        if (n && bytes + b->f1_len + b->f2_len > max_bytes) {
            *capped = true;
            break;
        }
        bytes += b->f1_len + b->f2_len;
        fn(arg, b->data, b->f1_len, b->data + b->f1_len, b->f2_len);
        n++;
    }
    return n;
}

void sentring_stats(const sentring_t *self, sentring_stats_t *stats)
{
    *stats = self->stats;
}
