/*  registry: see registry.h. Two hash tables: topics by key, and
    memberships by (topic, client) pointer pair, so leave is O(1) even for a
    client in 20,000 topics or a topic with 20,000 clients. */
#include "registry.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct registry_sub_t {
    registry_topic_t *topic;
    registry_client_t *client;
    size_t index;                // in topic->members
    registry_sub_t *prev, *next; // in client's list
    registry_sub_t *self_key[2]; // hash key: {topic, client} pointers
};

struct registry_t {
    zhashx_t *topics; // key -> registry_topic_t
    zhashx_t *subs;   // {topic, client} -> registry_sub_t
    size_t memberships;
    registry_hook_fn *on_first;
    registry_hook_fn *on_last;
    void *hook_arg;
};

static size_t s_pair_hash(const void *key)
{
    const uintptr_t *p = key;
    uint64_t h = (uint64_t)p[0] * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)p[1] * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

static int s_pair_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 2 * sizeof(void *));
}

//  Both tables borrow their keys from the item (topic->key, sub->self_key)
//  instead of copying them.
static void *s_key_borrow(const void *key)
{
    return (void *)key;
}

static void s_key_release(void **key)
{
    *key = NULL;
}

registry_t *registry_new(void)
{
    registry_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->topics = zhashx_new();
    self->subs = zhashx_new();
    if (!self->topics || !self->subs) {
        registry_destroy(&self);
        return NULL;
    }
    zhashx_set_key_hasher(self->subs, s_pair_hash);
    zhashx_set_key_comparator(self->subs, s_pair_cmp);
    zhashx_set_key_duplicator(self->subs, s_key_borrow);
    zhashx_set_key_destructor(self->subs, s_key_release);
    zhashx_set_key_duplicator(self->topics, s_key_borrow);
    zhashx_set_key_destructor(self->topics, s_key_release);
    return self;
}

static void s_topic_free(registry_topic_t *topic)
{
    free(topic->members);
    free(topic->key);
    free(topic);
}

void registry_destroy(registry_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    registry_t *self = *self_p;
    if (self->subs) {
        for (registry_sub_t *sub = zhashx_first(self->subs); sub;
             sub = zhashx_next(self->subs)) {
            free(sub);
        }
        zhashx_destroy(&self->subs);
    }
    if (self->topics) {
        for (registry_topic_t *t = zhashx_first(self->topics); t;
             t = zhashx_next(self->topics)) {
            s_topic_free(t);
        }
        zhashx_destroy(&self->topics);
    }
    free(self);
    *self_p = NULL;
}

void registry_set_hooks(registry_t *self, registry_hook_fn *on_first,
                        registry_hook_fn *on_last, void *arg)
{
    self->on_first = on_first;
    self->on_last = on_last;
    self->hook_arg = arg;
}

registry_topic_t *registry_lookup(registry_t *self, const char *ns,
                                  size_t ns_len, const char *topic,
                                  size_t topic_len)
{
    char key[WIRE_TOPIC_KEY_MAX];
    if (!wire_topic_key(key, ns, ns_len, topic, topic_len)) {
        return NULL;
    }
    return zhashx_lookup(self->topics, key);
}

static registry_topic_t *s_topic_new(registry_t *self, const char *ns,
                                     size_t ns_len, const char *topic,
                                     size_t topic_len)
{
    char buf[WIRE_TOPIC_KEY_MAX];
    size_t len = wire_topic_key(buf, ns, ns_len, topic, topic_len);
    registry_topic_t *t = calloc(1, sizeof *t);
    char *key = len ? malloc(len + 1) : NULL; // exactly: one per topic
    if (!t || !key) {
        free(t);
        free(key);
        return NULL;
    }
    memcpy(key, buf, len + 1);
    t->key = key;
    t->ns = key + 2; // wire_topic_key: "LL" ns topic
    t->ns_len = ns_len;
    t->topic = key + 2 + ns_len;
    t->topic_len = topic_len;
    if (zhashx_insert(self->topics, key, t)) {
        s_topic_free(t);
        return NULL;
    }
    return t;
}

int registry_join(registry_t *self, registry_client_t *client, const char *ns,
                  size_t ns_len, const char *topic, size_t topic_len)
{
    if (ns_len > WIRE_MAX_NAME || topic_len > WIRE_MAX_NAME) {
        errno = EINVAL;
        return -1;
    }
    registry_topic_t *t = registry_lookup(self, ns, ns_len, topic, topic_len);
    bool created = false;
    if (t) {
        void *pair[2] = {t, client};
        if (zhashx_lookup(self->subs, pair)) {
            return 0;
        }
    } else {
        t = s_topic_new(self, ns, ns_len, topic, topic_len);
        if (!t) {
            errno = ENOMEM;
            return -1;
        }
        created = true;
    }
    registry_sub_t *sub = calloc(1, sizeof *sub);
    if (sub && t->count == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4;
        registry_sub_t **m = realloc(t->members, cap * sizeof *m);
        if (m) {
            t->members = m;
            t->cap = cap;
        } else {
            free(sub);
            sub = NULL;
        }
    }
    if (!sub) {
        if (created) {
            zhashx_delete(self->topics, t->key);
            s_topic_free(t);
        }
        errno = ENOMEM;
        return -1;
    }
    sub->topic = t;
    sub->client = client;
    sub->self_key[0] = (registry_sub_t *)t;
    sub->self_key[1] = (registry_sub_t *)client;
    sub->index = t->count;
    t->members[t->count++] = sub;
    sub->next = client->first;
    if (client->first) {
        client->first->prev = sub;
    }
    client->first = sub;
    client->count++;
    zhashx_insert(self->subs, sub->self_key, sub);
    self->memberships++;
    if (created && self->on_first) {
        self->on_first(t, self->hook_arg);
    }
    return 1;
}

static void s_remove(registry_t *self, registry_sub_t *sub)
{
    registry_topic_t *t = sub->topic;
    registry_client_t *client = sub->client;
    zhashx_delete(self->subs, sub->self_key);
    //  swap the last member into the hole
    t->members[sub->index] = t->members[--t->count];
    t->members[sub->index]->index = sub->index;
    if (sub->prev) {
        sub->prev->next = sub->next;
    } else {
        client->first = sub->next;
    }
    if (sub->next) {
        sub->next->prev = sub->prev;
    }
    client->count--;
    self->memberships--;
    free(sub);
    if (t->count == 0) {
        if (self->on_last) {
            self->on_last(t, self->hook_arg);
        }
        zhashx_delete(self->topics, t->key);
        s_topic_free(t);
    }
}

int registry_leave(registry_t *self, registry_client_t *client, const char *ns,
                   size_t ns_len, const char *topic, size_t topic_len)
{
    registry_topic_t *t = registry_lookup(self, ns, ns_len, topic, topic_len);
    if (!t) {
        return 0;
    }
    void *pair[2] = {t, client};
    registry_sub_t *sub = zhashx_lookup(self->subs, pair);
    if (!sub) {
        return 0;
    }
    s_remove(self, sub);
    return 1;
}

void registry_leave_all(registry_t *self, registry_client_t *client)
{
    while (client->first) {
        s_remove(self, client->first);
    }
}

void *registry_member(const registry_topic_t *topic, size_t i)
{
    return topic->members[i]->client->owner;
}

size_t registry_topics(const registry_t *self)
{
    return zhashx_size(self->topics);
}

size_t registry_memberships(const registry_t *self)
{
    return self->memberships;
}

registry_topic_t *registry_first(registry_t *self)
{
    return zhashx_first(self->topics);
}

registry_topic_t *registry_next(registry_t *self)
{
    return zhashx_next(self->topics);
}
