/*  swim_queue.c - the dissemination queue of swim_t

    Items live in lists by times sent (one list per count, the last one
    for every higher count), so a fill takes the least-sent items from
    the front of the first lists without looking at the rest, and a hash
    on the member id finds the item that newer news replaces. With a
    thousand members the queue holds hundreds of items while news about
    many members spreads, and every packet sent fills from it: a fill
    costs what it takes, never a pass over the queue.

    Order: the unsent list is newest first (news is pushed in front). An
    item sent moves to the next list: to its front if it is newer than
    everything there, else to its back. So fresh news is sent again and
    again before older news with as many transmissions (a join after a
    mass start, while hundreds of older items wait, still spreads in a
    second), and older news goes round in turn.
*/

#include "swim_queue.h"
#include "swim_codec.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LISTS      64 // by times sent; the last holds every higher count
#define FILL_SKIPS 16 // items that do not fit, looked at per fill at most

typedef struct s_item_t s_item_t;
struct s_item_t {
    swim_member_t rec;  // the news
    size_t size;        // its encoded size
    uint32_t transmits; // times sent
    uint64_t serial;    // queueing order, higher is newer
    s_item_t *prev;     // in its list
    s_item_t *next;
    s_item_t *chain; // in its hash slot
};

typedef struct {
    s_item_t *head;
    s_item_t *tail;
} s_list_t;

struct swim_queue_t {
    s_list_t lists[LISTS];
    s_item_t **slots; // hash on id, chained
    size_t slot_count;
    size_t size;
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
        for (size_t l = 0; l < LISTS; l++) {
            s_item_t *item = self->lists[l].head;
            while (item) {
                s_item_t *next = item->next;
                free(item);
                item = next;
            }
        }
        free(self->slots);
        free(self);
        *self_p = NULL;
    }
}

static size_t s_hash(const uint8_t *id)
{
    uint64_t h = 1469598103934665603ULL; // FNV-1a
    for (size_t i = 0; i < SWIM_ID_SIZE; i++) {
        h = (h ^ id[i]) * 1099511628211ULL;
    }
    return (size_t)h;
}

static s_list_t *s_list(swim_queue_t *self, uint32_t transmits)
{
    return &self->lists[transmits < LISTS ? transmits : LISTS - 1];
}

static void s_unlink(s_list_t *list, s_item_t *item)
{
    if (item->prev) {
        item->prev->next = item->next;
    } else {
        list->head = item->next;
    }
    if (item->next) {
        item->next->prev = item->prev;
    } else {
        list->tail = item->prev;
    }
    item->prev = item->next = NULL;
}

static void s_push_front(s_list_t *list, s_item_t *item)
{
    item->prev = NULL;
    item->next = list->head;
    if (list->head) {
        list->head->prev = item;
    } else {
        list->tail = item;
    }
    list->head = item;
}

static void s_push_back(s_list_t *list, s_item_t *item)
{
    item->next = NULL;
    item->prev = list->tail;
    if (list->tail) {
        list->tail->next = item;
    } else {
        list->head = item;
    }
    list->tail = item;
}

static void s_chain_remove(swim_queue_t *self, s_item_t *item)
{
    s_item_t **link = &self->slots[s_hash(item->rec.id) % self->slot_count];
    while (*link != item) {
        link = &(*link)->chain;
    }
    *link = item->chain;
}

static void s_drop(swim_queue_t *self, s_item_t *item)
{
    s_unlink(s_list(self, item->transmits), item);
    s_chain_remove(self, item);
    free(item);
    self->size--;
}

//  Room for one more item in the hash (a slot per item at most).
static int s_grow(swim_queue_t *self)
{
    if (self->size < self->slot_count) {
        return 0;
    }
    size_t count = self->slot_count ? self->slot_count * 2 : 16;
    s_item_t **slots = (s_item_t **)calloc(count, sizeof(s_item_t *));
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < self->slot_count; i++) {
        s_item_t *item = self->slots[i];
        while (item) {
            s_item_t *chain = item->chain;
            size_t slot = s_hash(item->rec.id) % count;
            item->chain = slots[slot];
            slots[slot] = item;
            item = chain;
        }
    }
    free(self->slots);
    self->slots = slots;
    self->slot_count = count;
    return 0;
}

int swim_queue_push(swim_queue_t *self, const swim_member_t *rec)
{
    s_item_t *item = NULL;
    if (self->slot_count) {
        item = self->slots[s_hash(rec->id) % self->slot_count];
        while (item && memcmp(item->rec.id, rec->id, SWIM_ID_SIZE) != 0) {
            item = item->chain;
        }
    }
    if (item) {
        s_unlink(s_list(self, item->transmits), item);
    } else {
        if (self->size >= SWIM_MEMBERS_MAX) {
            errno = ENOSPC;
            return -1;
        }
        if (s_grow(self) ||
            (item = (s_item_t *)calloc(1, sizeof(s_item_t))) == NULL) {
            errno = ENOMEM;
            return -1;
        }
        size_t slot = s_hash(rec->id) % self->slot_count;
        item->chain = self->slots[slot];
        self->slots[slot] = item;
        self->size++;
    }
    item->rec = *rec;
    item->size = swim_codec_record_size(rec);
    item->transmits = 0;
    item->serial = ++self->serial;
    s_push_front(&self->lists[0], item);
    return 0;
}

size_t swim_queue_fill(swim_queue_t *self, size_t budget, uint32_t limit,
                       swim_member_t *out, size_t max)
{
    size_t count = 0, skips = 0;
    s_item_t *sent[256];
    if (max > 256) {
        max = 256;
    }
    for (size_t l = 0; l < LISTS && count < max; l++) {
        s_item_t *item = self->lists[l].head;
        while (item && count < max && skips < FILL_SKIPS &&
               budget >= SWIM_CODEC_RECORD_MIN) {
            s_item_t *next = item->next;
            if (item->transmits >= limit) {
                s_drop(self, item); // the cluster shrank: sent enough
            } else if (item->size <= budget) {
                out[count] = item->rec;
                sent[count++] = item;
                budget -= item->size;
                s_unlink(&self->lists[l], item);
            } else {
                skips++;
            }
            item = next;
        }
    }
    for (size_t i = 0; i < count; i++) {
        s_item_t *item = sent[i];
        item->transmits++;
        if (item->transmits >= limit) {
            s_chain_remove(self, item);
            free(item);
            self->size--;
        } else {
            s_list_t *list = s_list(self, item->transmits);
            if (list->head == NULL || item->serial > list->head->serial) {
                s_push_front(list, item);
            } else {
                s_push_back(list, item);
            }
        }
    }
    return count;
}

size_t swim_queue_size(swim_queue_t *self)
{
    return self->size;
}
