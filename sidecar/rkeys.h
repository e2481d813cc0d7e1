/*  rkeys - routing keys of (namespace, topic) for one ring and channel,
    cached.

    keyring_routing_keys is a keyed BLAKE2b: computed per message it was a
    sixth of a publish and a seventh of a receive. A sidecar publishes to,
    subscribes to and hears from the same topics again and again, so the
    keys are kept per (namespace, topic); past RKEYS_CACHE_MAX topics the
    cache starts over. The mesh uses one rkeys_t to stamp frame 1, to
    subscribe, and (through envelope_open) to check frame 1 on receipt;
    it also holds the keyring_cache_t of senders' subkeys envelope_open
    opens with.

    THREAD SAFETY: none; an rkeys_t belongs to one thread. The ring must
    outlive it and keep its keys while it exists.
*/

#ifndef RC_RKEYS_H_INCLUDED
#define RC_RKEYS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "keyring.h"

#define RKEYS_CACHE_MAX 65536 // topics kept before the cache starts over

typedef struct rkeys_t rkeys_t;

//  A cache for ring's routing keys under channel (copied). Returns NULL
//  with errno ENOMEM.
rkeys_t *rkeys_new(const keyring_t *ring, const char *channel);

//  Free the cache (not the ring). Nulls *self_p; safe to call twice.
void rkeys_destroy(rkeys_t **self_p);

//  The ring the keys are derived from.
const keyring_t *rkeys_ring(const rkeys_t *self);

//  The cache of senders' sealing subkeys (keyring.h) that envelope_open
//  opens with, owned by self.
keyring_cache_t *rkeys_open_cache(rkeys_t *self);

//  The ring's keys changed: forget every cached routing key.
void rkeys_reset(rkeys_t *self);

//  What keyring_routing_keys gives for (channel, ns, topic), from the
//  cache when it can. Names are ns_len and topic_len bytes, not NUL
//  terminated, at most 255 bytes each and holding no NUL. Returns the number
//  of keys (1 or 2), or -1 with errno EINVAL (a name too long or holding a
//  NUL), ENOKEY (empty ring) or ENOMEM.
int rkeys_get(rkeys_t *self, const char *ns, size_t ns_len, const char *topic,
              size_t topic_len,
              uint8_t out[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE]);

#endif
