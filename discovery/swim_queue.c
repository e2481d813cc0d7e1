/*  swim_queue.c - the dissemination queue of swim_t

    A small unsorted array: it holds at most one item per member and
    usually a handful, so each fill simply sorts it.
*/

#include "swim_queue.h"
#include "swim_codec.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    swim_member_t rec;  // the news
    size_t size;        // its encoded size
    uint32_t transmits; // times sent
    uint64_t serial;    // queueing order, higher is newer
} s_item_t;

struct swim_queue_t {
    s_item_t *items;
    size_t size;
    size_t capacity;
    uint64_t serial; // last serial given
};

swim_queue_t *swim_queue_new(void)
{
    return (swim_queue_t *)calloc(1, sizeof(swim_queue_t));
}

void swim_queue_destroy(swim_queue_t **self_p)
{
    assert(self_p);
    swim_queue_t *self = *self_p;
    if (self) {
        free(self->items);
        free(self);
        *self_p = NULL;
    }
}

int swim_queue_push(swim_queue_t *self, const swim_member_t *rec)
{
    s_item_t *item = NULL;
    for (size_t i = 0; i < self->size; i++) {
        if (memcmp(self->items[i].rec.id, rec->id, SWIM_ID_SIZE) == 0) {
            item = &self->items[i];
            break;
        }
    }
    if (item == NULL) {
        if (self->size >= SWIM_MEMBERS_MAX) {
            errno = ENOSPC;
            return -1;
        }
        if (self->size == self->capacity) {
            size_t capacity = self->capacity ? self->capacity * 2 : 16;
            s_item_t *items =
                (s_item_t *)realloc(self->items, capacity * sizeof(s_item_t));
            if (items == NULL) {
                errno = ENOMEM;
                return -1;
            }
            self->items = items;
            self->capacity = capacity;
        }
        item = &self->items[self->size++];
    }
    item->rec = *rec;
    item->size = swim_codec_record_size(rec);
    item->transmits = 0;
    item->serial = ++self->serial;
    return 0;
}

static int s_compare(const void *a, const void *b)
{
    const s_item_t *x = (const s_item_t *)a;
    const s_item_t *y = (const s_item_t *)b;
    if (x->transmits != y->transmits) {
        return x->transmits < y->transmits ? -1 : 1;
    }
    //  Serials are unique, so the order is total and qsort deterministic.
    return x->serial > y->serial ? -1 : 1;
}

size_t swim_queue_fill(swim_queue_t *self, size_t budget, uint32_t limit,
                       swim_member_t *out, size_t max)
{
    if (self->size == 0 || max == 0) {
        return 0;
    }
    qsort(self->items, self->size, sizeof(s_item_t), s_compare);
    size_t count = 0;
    for (size_t i = 0; i < self->size && count < max; i++) {
        s_item_t *item = &self->items[i];
        if (item->size <= budget) {
            out[count++] = item->rec;
            budget -= item->size;
            item->transmits++;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < self->size; i++) {
        if (self->items[i].transmits < limit) {
            self->items[kept++] = self->items[i];
        }
    }
    self->size = kept;
    return count;
}

size_t swim_queue_size(swim_queue_t *self)
{
    return self->size;
}
