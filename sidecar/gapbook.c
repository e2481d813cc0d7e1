/*  gapbook: see gapbook.h. A hash of streams (the key is the instance and
    the wire_topic_key, so streams never collide) and a list in arrival
    order for draining. */
#include "gapbook.h"
#include "ids.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char ns[WIRE_MAX_NAME + 1];
    char topic[WIRE_MAX_NAME + 1];
    uint8_t instance[WIRE_ID_SIZE];
    uint64_t missed;
} stream_t;

struct gapbook_t {
    zhashx_t *streams; // key -> stream_t (owned)
    zlistx_t *order;   // stream_t, oldest first (borrowed)
    size_t max;
    uint64_t total;
    uint64_t overflow;
};

static void s_free(void **item)
{
    free(*item);
    *item = NULL;
}

gapbook_t *gapbook_new(size_t max_streams)
{
    gapbook_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->streams = zhashx_new();
    self->order = zlistx_new();
    self->max = max_streams;
    if (!self->streams || !self->order) {
        gapbook_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->streams, s_free);
    return self;
}

void gapbook_destroy(gapbook_t **self_p)
{
    if (self_p && *self_p) {
        gapbook_t *self = *self_p;
        zlistx_destroy(&self->order);
        zhashx_destroy(&self->streams); // frees the streams
        free(self);
        *self_p = NULL;
    }
}

void gapbook_add(gapbook_t *self, wire_str_t ns, wire_str_t topic,
                 const uint8_t *instance, uint64_t n)
{
    char key[IDS_HEX_SIZE + WIRE_TOPIC_KEY_MAX];
    ids_hex(instance, key);
    self->total += n;
    if (!wire_topic_key(key + IDS_HEX_SIZE - 1, ns.ptr, ns.len, topic.ptr,
                        topic.len)) {
        self->overflow += n; // names checked before: cannot happen
        return;
    }
    stream_t *s = zhashx_lookup(self->streams, key);
    if (!s && zhashx_size(self->streams) < self->max &&
        (s = calloc(1, sizeof *s))) {
        memcpy(s->ns, ns.ptr, ns.len);
        memcpy(s->topic, topic.ptr, topic.len);
        memcpy(s->instance, instance, WIRE_ID_SIZE);
        zhashx_insert(self->streams, key, s);
        zlistx_add_end(self->order, s);
    }
    if (s) {
        s->missed += n;
    } else {
        self->overflow += n;
    }
}

uint64_t gapbook_total(const gapbook_t *self)
{
    return self->total;
}

uint64_t gapbook_drain(gapbook_t *self, gapbook_fn *fn, void *arg)
{
    for (stream_t *s = zlistx_first(self->order); s;
         s = zlistx_next(self->order)) {
        fn(arg, wire_str(s->ns), wire_str(s->topic), s->instance, s->missed);
    }
    uint64_t overflow = self->overflow;
    zlistx_purge(self->order);
    zhashx_purge(self->streams);
    self->total = self->overflow = 0;
    return overflow;
}
