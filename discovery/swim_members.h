/*  swim_members.h - the member table of swim_t

    A set of member records keyed by node id, kept sorted by id (lookup is
    a binary search, walks are in id order), with a count per state, the
    round-robin probe order and the SWIM precedence rule. Entries are
    allocated one by one, so an entry pointer stays valid until that entry
    is removed, whatever else is inserted or removed. Internal to
    discovery/.

    Probe order: every live (alive or suspect) member once per round, in a
    fresh random order each round. A member that becomes live mid-round
    (inserted, or set back to alive) gets a random place in what is left
    of the round, so it is probed within this round or the next.
*/

#ifndef SWIM_MEMBERS_H_INCLUDED
#define SWIM_MEMBERS_H_INCLUDED

#include "swim.h"

typedef struct {
    swim_member_t rec; // the record; first, swim_t hands out &entry->rec
    uint64_t deadline; // suspect: dead at; dead or left: forgotten at
    bool announced;    // the daemon was told about it (io->changed)
} swim_entry_t;

typedef struct swim_members_t swim_members_t;

//  Random source: 64 random bits.
typedef uint64_t(swim_rand_fn)(void *arg);

//  Create an empty table drawing randomness from rand_fn (rand_arg).
//  Returns NULL on ENOMEM.
swim_members_t *swim_members_new(swim_rand_fn *rand_fn, void *rand_arg)
    __attribute__((warn_unused_result, nonnull(1)));

//  Destroy the table and its entries; nulls the pointer, safe twice.
void swim_members_destroy(swim_members_t **self_p);

//  The entry with this id, or NULL.
swim_entry_t *swim_members_lookup(swim_members_t *self, const uint8_t *id)
    __attribute__((nonnull));

//  Insert a copy of rec (its id must not be in the table: asserted), with
//  deadline 0 and not announced. Returns the entry, or NULL with ENOSPC
//  (SWIM_MEMBERS_MAX records) or ENOMEM.
swim_entry_t *swim_members_insert(swim_members_t *self,
                                  const swim_member_t *rec)
    __attribute__((nonnull));

//  Remove and free an entry of this table.
void swim_members_remove(swim_members_t *self, swim_entry_t *entry)
    __attribute__((nonnull));

//  Change an entry's state; always go through here so the counts stay true.
void swim_members_set_state(swim_members_t *self, swim_entry_t *entry,
                            int state) __attribute__((nonnull));

//  Number of entries, and of entries in one state.
size_t swim_members_size(swim_members_t *self) __attribute__((nonnull));
size_t swim_members_count(swim_members_t *self, int state)
    __attribute__((nonnull));

//  Entry number index (0 .. size - 1) in id order.
swim_entry_t *swim_members_at(swim_members_t *self, size_t index)
    __attribute__((nonnull));

//  Choose up to k distinct entries at random among those whose state is in
//  state_mask (bits 1 << state) and whose id is neither skip1 nor skip2
//  (either may be NULL). Fills out[0..n-1] and returns n <= k.
size_t swim_members_pick(swim_members_t *self, unsigned state_mask,
                         const uint8_t *skip1, const uint8_t *skip2,
                         swim_entry_t **out, size_t k)
    __attribute__((nonnull(1, 5)));

//  The next member to probe in the round-robin order, never the one with
//  id skip (ourselves); starts a new round when one ends. NULL when no
//  live member is left to probe.
swim_entry_t *swim_members_next_probe(swim_members_t *self, const uint8_t *skip)
    __attribute__((nonnull));

//  The SWIM precedence rule (see swim.h): true if news (state, inc) about
//  a member replaces what we hold (old_state, old_inc).
bool swim_members_overrides(int state, uint64_t inc, int old_state,
                            uint64_t old_inc);

#endif
