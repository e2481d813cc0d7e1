/*  rkeys: see rkeys.h. */
#include "rkeys.h"
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#define S_NAME_MAX 255

struct rkeys_t {
    const keyring_t *ring;
    char *channel;
    zhashx_t *cache;        // "<ns length, 2 hex digits>ns topic" -> s_entry_t
    keyring_cache_t *opens; // senders' sealing subkeys
};

typedef struct {
    int n;
    uint8_t keys[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
} s_entry_t;

static void s_free_entry(void **item)
{
    free(*item);
    *item = NULL;
}

rkeys_t *rkeys_new(const keyring_t *ring, const char *channel)
{
    assert(ring);
    assert(channel);
    rkeys_t *self = calloc(1, sizeof *self);
    if (self) {
        self->ring = ring;
        self->channel = strdup(channel);
        self->cache = zhashx_new();
        self->opens = keyring_cache_new();
    }
    if (!self || !self->channel || !self->cache || !self->opens) {
        rkeys_destroy(&self);
        errno = ENOMEM;
        return NULL;
    }
    zhashx_set_destructor(self->cache, s_free_entry);
    return self;
}

void rkeys_destroy(rkeys_t **self_p)
{
    if (self_p && *self_p) {
        rkeys_t *self = *self_p;
        zhashx_destroy(&self->cache);
        keyring_cache_destroy(&self->opens);
        free(self->channel);
        free(self);
        *self_p = NULL;
    }
}

void rkeys_reset(rkeys_t *self)
{
    zhashx_purge(self->cache);
}

keyring_cache_t *rkeys_open_cache(rkeys_t *self)
{
    return self->opens;
}

const keyring_t *rkeys_ring(const rkeys_t *self)
{
    return self->ring;
}

int rkeys_get(rkeys_t *self, const char *ns, size_t ns_len, const char *topic,
              size_t topic_len,
              uint8_t out[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE])
{
    assert(self);
    assert(ns || ns_len == 0);
    assert(topic || topic_len == 0);
    if (ns_len > S_NAME_MAX || topic_len > S_NAME_MAX ||
        (ns_len && memchr(ns, '\0', ns_len)) ||
        (topic_len && memchr(topic, '\0', topic_len))) {
        errno = EINVAL;
        return -1;
    }
    char key[WIRE_TOPIC_KEY_MAX];
    if (!wire_topic_key(key, ns, ns_len, topic, topic_len)) {
        errno = EINVAL;
        return -1;
    }
    s_entry_t *entry = zhashx_lookup(self->cache, key);
    if (!entry) {
        char ns_z[S_NAME_MAX + 1], topic_z[S_NAME_MAX + 1];
        memcpy(ns_z, ns, ns_len);
        ns_z[ns_len] = '\0';
        memcpy(topic_z, topic, topic_len);
        topic_z[topic_len] = '\0';
        s_entry_t fresh;
        fresh.n = keyring_routing_keys(self->ring, self->channel, ns_z, topic_z,
                                       fresh.keys);
        if (fresh.n < 1) {
            return -1; // ENOKEY
        }
        entry = malloc(sizeof *entry);
        if (!entry) {
            errno = ENOMEM;
            return -1;
        }
        *entry = fresh;
        if (zhashx_size(self->cache) >= RKEYS_CACHE_MAX) {
            zhashx_purge(self->cache);
        }
        zhashx_insert(self->cache, key, entry);
    }
    memcpy(out, entry->keys, sizeof entry->keys);
    return entry->n;
}
