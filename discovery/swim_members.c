/*  swim_members.c - the member table of swim_t

    A sorted array of entry pointers: a binary search finds an id, an
    insert or remove moves pointers only. A hundred hosts or so is the
    expected size; SWIM_MEMBERS_MAX bounds it. The probe order holds ids,
    not pointers, so removals need not touch it: a stale id is skipped
    when its turn comes.
*/

#include "swim_members.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct swim_members_t {
    swim_entry_t **entries;       // sorted by id
    size_t size;                  // entries used
    size_t capacity;              // entries allocated
    size_t counts[SWIM_LEFT + 1]; // entries per state
    swim_rand_fn *rand_fn;        // randomness for order and picks
    void *rand_arg;
    uint8_t (*order)[SWIM_ID_SIZE]; // probe order, ids
    size_t order_size;              // ids in this round
    size_t order_pos;               // next to probe
    size_t order_cap;               // ids allocated
};

static bool s_live(int state)
{
    return state == SWIM_ALIVE || state == SWIM_SUSPECT;
}

swim_members_t *swim_members_new(swim_rand_fn *rand_fn, void *rand_arg)
{
    swim_members_t *self = (swim_members_t *)calloc(1, sizeof(swim_members_t));
    if (self) {
        self->rand_fn = rand_fn;
        self->rand_arg = rand_arg;
    }
    return self;
}

void swim_members_destroy(swim_members_t **self_p)
{
    assert(self_p);
    swim_members_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->size; i++) {
            free(self->entries[i]);
        }
        free(self->entries);
        free(self->order);
        free(self);
        *self_p = NULL;
    }
}

static int s_order_reserve(swim_members_t *self, size_t size)
{
    if (size <= self->order_cap) {
        return 0;
    }
    size_t cap = self->order_cap ? self->order_cap : 16;
    while (cap < size) {
        cap *= 2;
    }
    uint8_t(*order)[SWIM_ID_SIZE] =
        (uint8_t(*)[SWIM_ID_SIZE])realloc(self->order, cap * SWIM_ID_SIZE);
    if (order == NULL) {
        return -1;
    }
    self->order = order;
    self->order_cap = cap;
    return 0;
}

//  A member became live: a random place in the rest of this round.
static void s_order_insert(swim_members_t *self, const uint8_t *id)
{
    if (s_order_reserve(self, self->order_size + 1)) {
        return; // the next round will include it
    }
    size_t span = self->order_size - self->order_pos + 1;
    size_t at =
        self->order_pos + (size_t)(self->rand_fn(self->rand_arg) % span);
    memmove(self->order[at + 1], self->order[at],
            (self->order_size - at) * SWIM_ID_SIZE);
    memcpy(self->order[at], id, SWIM_ID_SIZE);
    self->order_size++;
}

static void s_order_rebuild(swim_members_t *self, const uint8_t *skip)
{
    self->order_size = 0;
    self->order_pos = 0;
    if (s_order_reserve(self, self->size)) {
        return;
    }
    for (size_t i = 0; i < self->size; i++) {
        const swim_member_t *rec = &self->entries[i]->rec;
        if (s_live(rec->state) && memcmp(rec->id, skip, SWIM_ID_SIZE)) {
            memcpy(self->order[self->order_size++], rec->id, SWIM_ID_SIZE);
        }
    }
    //  Fisher-Yates
    for (size_t i = self->order_size; i > 1; i--) {
        size_t j = (size_t)(self->rand_fn(self->rand_arg) % i);
        uint8_t tmp[SWIM_ID_SIZE];
        memcpy(tmp, self->order[i - 1], SWIM_ID_SIZE);
        memcpy(self->order[i - 1], self->order[j], SWIM_ID_SIZE);
        memcpy(self->order[j], tmp, SWIM_ID_SIZE);
    }
}

//  Index of id if present (*found set), else where it would go.
static size_t s_search(swim_members_t *self, const uint8_t *id, bool *found)
{
    size_t lo = 0, hi = self->size;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = memcmp(self->entries[mid]->rec.id, id, SWIM_ID_SIZE);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

swim_entry_t *swim_members_lookup(swim_members_t *self, const uint8_t *id)
{
    bool found;
    size_t index = s_search(self, id, &found);
    return found ? self->entries[index] : NULL;
}

swim_entry_t *swim_members_insert(swim_members_t *self,
                                  const swim_member_t *rec)
{
    assert(rec->state >= SWIM_ALIVE && rec->state <= SWIM_LEFT);
    bool found;
    size_t index = s_search(self, rec->id, &found);
    assert(!found);
    if (self->size >= SWIM_MEMBERS_MAX) {
        errno = ENOSPC;
        return NULL;
    }
    if (self->size == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 16;
        swim_entry_t **entries = (swim_entry_t **)realloc(
            self->entries, capacity * sizeof(swim_entry_t *));
        if (entries == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        self->entries = entries;
        self->capacity = capacity;
    }
    swim_entry_t *entry = (swim_entry_t *)calloc(1, sizeof(swim_entry_t));
    if (entry == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    entry->rec = *rec;
    memmove(&self->entries[index + 1], &self->entries[index],
            (self->size - index) * sizeof(swim_entry_t *));
    self->entries[index] = entry;
    self->size++;
    self->counts[rec->state]++;
    if (s_live(rec->state)) {
        s_order_insert(self, rec->id);
    }
    return entry;
}

void swim_members_remove(swim_members_t *self, swim_entry_t *entry)
{
    bool found;
    size_t index = s_search(self, entry->rec.id, &found);
    assert(found && self->entries[index] == entry);
    self->counts[entry->rec.state]--;
    self->size--;
    memmove(&self->entries[index], &self->entries[index + 1],
            (self->size - index) * sizeof(swim_entry_t *));
    free(entry);
}

void swim_members_set_state(swim_members_t *self, swim_entry_t *entry,
                            int state)
{
    assert(state >= SWIM_ALIVE && state <= SWIM_LEFT);
    if (s_live(state) && !s_live(entry->rec.state)) {
        s_order_insert(self, entry->rec.id);
    }
    self->counts[entry->rec.state]--;
    self->counts[state]++;
    entry->rec.state = state;
}

size_t swim_members_size(swim_members_t *self)
{
    return self->size;
}

size_t swim_members_count(swim_members_t *self, int state)
{
    if (state < SWIM_ALIVE || state > SWIM_LEFT) {
        return 0;
    }
    return self->counts[state];
}

swim_entry_t *swim_members_at(swim_members_t *self, size_t index)
{
    assert(index < self->size);
    return self->entries[index];
}

static bool s_pickable(swim_entry_t *entry, unsigned state_mask,
                       const uint8_t *skip1, const uint8_t *skip2)
{
    return (state_mask & (1u << entry->rec.state)) &&
           !(skip1 && memcmp(entry->rec.id, skip1, SWIM_ID_SIZE) == 0) &&
           !(skip2 && memcmp(entry->rec.id, skip2, SWIM_ID_SIZE) == 0);
}

//  When most entries qualify, random draws find k of them in about k
//  tries instead of a pass over the whole table (a gossip round picks
//  members several times a second, in tables of a thousand).
static size_t s_pick_sparse(swim_members_t *self, unsigned state_mask,
                            const uint8_t *skip1, const uint8_t *skip2,
                            swim_entry_t **out, size_t k)
{
    size_t n = 0;
    for (size_t tries = 0; tries < 8 * k && n < k; tries++) {
        swim_entry_t *entry =
            self->entries[self->rand_fn(self->rand_arg) % self->size];
        bool dup = false;
        for (size_t j = 0; j < n; j++) {
            dup |= out[j] == entry;
        }
        if (!dup && s_pickable(entry, state_mask, skip1, skip2)) {
            out[n++] = entry;
        }
    }
    return n;
}

size_t swim_members_pick(swim_members_t *self, unsigned state_mask,
                         const uint8_t *skip1, const uint8_t *skip2,
                         swim_entry_t **out, size_t k)
{
    size_t matching = 0;
    for (int state = SWIM_ALIVE; state <= SWIM_LEFT; state++) {
        if (state_mask & (1u << state)) {
            matching += self->counts[state];
        }
    }
    if (k == 0 || matching == 0) {
        return 0;
    }
    if (self->size >= 64 && matching * 2 >= self->size &&
        s_pick_sparse(self, state_mask, skip1, skip2, out, k) == k) {
        return k;
    }
    //  Reservoir sampling: one pass, no scratch memory.
    size_t seen = 0;
    for (size_t i = 0; i < self->size && k > 0; i++) {
        swim_entry_t *entry = self->entries[i];
        if (!s_pickable(entry, state_mask, skip1, skip2)) {
            continue;
        }
        if (seen < k) {
            out[seen] = entry;
        } else {
            uint64_t slot = self->rand_fn(self->rand_arg) % (seen + 1);
            if (slot < k) {
                out[slot] = entry;
            }
        }
        seen++;
    }
    return seen < k ? seen : k;
}

swim_entry_t *swim_members_next_probe(swim_members_t *self, const uint8_t *skip)
{
    bool rebuilt = false;
    while (true) {
        if (self->order_pos >= self->order_size) {
            if (rebuilt) {
                return NULL;
            }
            s_order_rebuild(self, skip);
            rebuilt = true;
            if (self->order_size == 0) {
                return NULL;
            }
        }
        const uint8_t *id = self->order[self->order_pos++];
        swim_entry_t *entry = swim_members_lookup(self, id);
        if (entry && s_live(entry->rec.state) &&
            memcmp(id, skip, SWIM_ID_SIZE) != 0) {
            return entry;
        }
    }
}

bool swim_members_overrides(int state, uint64_t inc, int old_state,
                            uint64_t old_inc)
{
    bool old_live = old_state == SWIM_ALIVE || old_state == SWIM_SUSPECT;
    switch (state) {
        case SWIM_ALIVE:
            return inc > old_inc;
        case SWIM_SUSPECT:
            //  Suspicion never revives a tombstone: only the member can.
            return (old_state == SWIM_ALIVE && inc >= old_inc) ||
                   (old_state == SWIM_SUSPECT && inc > old_inc);
        case SWIM_DEAD:
            return (old_live && inc >= old_inc) || (!old_live && inc > old_inc);
        case SWIM_LEFT:
            return (old_state != SWIM_LEFT && inc >= old_inc) ||
                   (old_state == SWIM_LEFT && inc > old_inc);
        default:
            return false;
    }
}
