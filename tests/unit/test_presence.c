/*  Unit tests: presence (who is in a room, cluster-wide).

    Two sidecars, a and b, each with its own presence_t and a fake
    presence_io_t that keeps the bodies it sends (its outbox) and the
    events it reports. The test is the network between them: it passes a's
    bodies to b with presence_on_remote, in order, out of order, or not at
    all.
*/

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "presence.h"
#include "wire.h"

#define CHANNEL "test-channel"
#define RAW(s)                                                                 \
    {                                                                          \
        s, sizeof s - 1                                                        \
    }
#define MAX_BODIES 64
#define MAX_EVENTS 64

//  One event a sidecar reported to its apps.
typedef struct {
    uint8_t node[16];
    char text[600]; // "ns/topic/key=meta"
    bool present;
} event_t;

//  One body a sidecar sent to the others.
typedef struct {
    uint8_t *data;
    size_t len;
} body_t;

typedef struct {
    const char *name;
    presence_t *p;
    uint8_t id[16];
    body_t sent[MAX_BODIES]; // outbox
    size_t nsent;
    size_t passed; // bodies s_pass handed on so far
    event_t events[MAX_EVENTS];
    size_t nevents;
    size_t seen; // events the test looked at
} side_t;

typedef struct {
    side_t a, b;
} fixture_t;

//  Three apps of a sidecar: presence only compares the pointers.
static const int s_alice, s_bob, s_carol;
#define ALICE ((const void *)&s_alice)
#define BOB   ((const void *)&s_bob)
#define CAROL ((const void *)&s_carol)

// --- the fake io
// ----------------------------------------------------------------

static void s_io_send(void *arg, const uint8_t *body, size_t len)
{
    side_t *side = arg;
    assert_true(side->nsent < MAX_BODIES);
    body_t *b = &side->sent[side->nsent++];
    b->data = malloc(len);
    assert_non_null(b->data);
    memcpy(b->data, body, len);
    b->len = len;
}

static void s_io_event(void *arg, const presence_entry_t *e, bool present)
{
    side_t *side = arg;
    assert_true(side->nevents < MAX_EVENTS);
    event_t *ev = &side->events[side->nevents++];
    memcpy(ev->node, e->node, 16);
    snprintf(ev->text, sizeof ev->text, "%s/%s/%s=%.*s", e->ns, e->topic,
             e->key, (int)e->meta_len, (const char *)e->meta);
    ev->present = present;
}

static void s_side_init(side_t *side, const char *name)
{
    side->name = name;
    memset(side->id, 0, 16);
    snprintf((char *)side->id, 16, "node-%s", name);
    presence_io_t io = {.arg = side, .send = s_io_send, .event = s_io_event};
    side->p = presence_new(&io, side->id, CHANNEL, NULL);
    assert_non_null(side->p);
}

static void s_side_fini(side_t *side)
{
    presence_destroy(&side->p);
    presence_destroy(&side->p); // twice is fine
    assert_null(side->p);
    for (size_t i = 0; i < side->nsent; i++) {
        free(side->sent[i].data);
    }
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    s_side_init(&fx->a, "a");
    s_side_init(&fx->b, "b");
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    s_side_fini(&fx->a);
    s_side_fini(&fx->b);
    free(fx);
    return 0;
}

// --- helpers
// --------------------------------------------------------------------

static int s_set(side_t *side, const void *owner, const char *ns,
                 const char *topic, const char *key, const char *meta)
{
    return presence_set(side->p, owner, wire_str(ns), wire_str(topic),
                        wire_str(key), wire_str(meta));
}

static int s_clear(side_t *side, const void *owner, const char *ns,
                   const char *topic, const char *key)
{
    return presence_clear(side->p, owner, wire_str(ns), wire_str(topic),
                          wire_str(key));
}

//  The next event side reported: text ("ns/topic/key=meta") is there
//  (present) or gone, set by an app of origin.
static void s_expect_event(side_t *side, const side_t *origin, const char *text,
                           bool present)
{
    if (side->seen >= side->nevents) {
        fail_msg("%s: expected event %s %s, got none", side->name, text,
                 present ? "there" : "gone");
    }
    const event_t *ev = &side->events[side->seen++];
    assert_string_equal(ev->text, text);
    assert_int_equal(ev->present, present);
    assert_memory_equal(ev->node, origin->id, 16);
}

//  Events come in hash order when several go at once: the next n events,
//  sorted, as "+text -text ...".
static int s_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static const char *s_next_events(side_t *side, size_t n)
{
    static char out[2048];
    char *items[MAX_EVENTS];
    char texts[MAX_EVENTS][sizeof side->events[0].text + 1];
    assert_true(side->seen + n <= side->nevents);
    for (size_t i = 0; i < n; i++) {
        const event_t *ev = &side->events[side->seen++];
        snprintf(texts[i], sizeof texts[i], "%c%s", ev->present ? '+' : '-',
                 ev->text);
        items[i] = texts[i];
    }
    qsort(items, n, sizeof items[0], s_cmp);
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s",
                                i ? " " : "", items[i]);
    }
    return out;
}

static void s_no_more_events(const side_t *side)
{
    if (side->seen != side->nevents) {
        fail_msg("%s: unexpected event %s", side->name,
                 side->events[side->seen].text);
    }
}

//  Hand every body from sent since the last pass to to, in order.
static void s_pass(side_t *from, side_t *to)
{
    for (; from->passed < from->nsent; from->passed++) {
        const body_t *b = &from->sent[from->passed];
        assert_int_equal(presence_on_remote(to->p, b->data, b->len), 0);
    }
}

//  The network loses what from sent since the last pass.
static void s_lose(side_t *from)
{
    from->passed = from->nsent;
}

//  Hand from's i-th body (0 the first it ever sent) to to.
static void s_pass_one(side_t *from, size_t i, side_t *to)
{
    assert_true(i < from->nsent);
    assert_int_equal(
        presence_on_remote(to->p, from->sent[i].data, from->sent[i].len), 0);
}

//  The kind of a presence body ('d', 'v', 'r', 's').
static char s_kind(const body_t *b)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(
        msgpack_unpack_next(&up, (const char *)b->data, b->len, NULL),
        MSGPACK_UNPACK_SUCCESS);
    assert_true(up.data.type == MSGPACK_OBJECT_ARRAY &&
                up.data.via.array.size >= 4 &&
                up.data.via.array.ptr[2].type == MSGPACK_OBJECT_STR);
    char kind = up.data.via.array.ptr[2].via.str.ptr[0];
    msgpack_unpacked_destroy(&up);
    return kind;
}

typedef struct {
    const side_t *sides[2];
    char *items[MAX_EVENTS];
    char texts[MAX_EVENTS][700];
    size_t n;
} list_t;

static void s_list_entry(void *arg, const presence_entry_t *e)
{
    list_t *list = arg;
    assert_true(list->n < MAX_EVENTS);
    const char *who = "?";
    for (int i = 0; i < 2; i++) {
        if (memcmp(e->node, list->sides[i]->id, 16) == 0) {
            who = list->sides[i]->name;
        }
    }
    char *text = list->texts[list->n];
    snprintf(text, sizeof list->texts[0], "%s/%s/%s=%.*s@%s", e->ns, e->topic,
             e->key, (int)e->meta_len, (const char *)e->meta, who);
    list->items[list->n++] = text;
}

//  What side lists for (ns, topic), sorted: "ns/topic/key=meta@node ...".
static const char *s_list(fixture_t *fx, side_t *side, const char *ns,
                          const char *topic)
{
    static char out[4096];
    static list_t list;
    list = (list_t){.sides = {&fx->a, &fx->b}};
    presence_list(side->p, wire_str(ns), wire_str(topic), s_list_entry, &list);
    qsort(list.items, list.n, sizeof list.items[0], s_cmp);
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < list.n; i++) {
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s",
                                i ? " " : "", list.items[i]);
    }
    return out;
}

// --- local changes -----------------------------------------------------------

//  Set and clear report an event to the local apps and send a delta to
//  the other sidecars; a delta is what presence.h says it is.
static void test_set_and_clear_report_events_and_deltas(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "here"), 0);
    s_expect_event(a, a, "chat/lobby/alice=here", true);
    s_no_more_events(a);
    assert_int_equal(a->nsent, 1);

    //  [channel, node, "d", version, op (1 set), ns, topic, key, meta]
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, (const char *)a->sent[0].data,
                                         a->sent[0].len, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(up.data.via.array.size, 9);
    const msgpack_object *f = up.data.via.array.ptr;
    assert_memory_equal(f[0].via.str.ptr, CHANNEL, strlen(CHANNEL));
    assert_memory_equal(f[1].via.bin.ptr, a->id, 16);
    assert_memory_equal(f[2].via.str.ptr, "d", 1);
    assert_int_equal(f[3].via.u64, 1);
    assert_int_equal(f[4].via.u64, 1);
    assert_memory_equal(f[7].via.str.ptr, "alice", 5);
    assert_int_equal(f[8].type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(f[8].via.bin.ptr, "here", 4);
    msgpack_unpacked_destroy(&up);

    //  the same again: nothing new to tell the apps, a delta all the same
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "here"), 0);
    s_no_more_events(a);
    assert_int_equal(a->nsent, 2);
    //  new meta: the apps hear it
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "away"), 0);
    s_expect_event(a, a, "chat/lobby/alice=away", true);
    assert_int_equal(a->nsent, 3);

    assert_int_equal(s_clear(a, ALICE, "chat", "lobby", "alice"), 0);
    s_expect_event(a, a, "chat/lobby/alice=away", false);
    s_no_more_events(a);
    assert_int_equal(a->nsent, 4);
    assert_string_equal(s_list(fx, a, "chat", "lobby"), "");
}

//  A key one app holds is not another app's to set.
static void test_a_key_another_owner_holds_is_eexist(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "desk-1", "alice"), 0);
    s_expect_event(a, a, "chat/lobby/desk-1=alice", true);

    errno = 0;
    assert_int_equal(s_set(a, BOB, "chat", "lobby", "desk-1", "bob"), -1);
    assert_int_equal(errno, EEXIST);
    s_no_more_events(a);
    assert_int_equal(a->nsent, 1); // nothing sent for a refusal

    //  the same key in another topic is another entry
    assert_int_equal(s_set(a, BOB, "chat", "kitchen", "desk-1", "bob"), 0);
    s_expect_event(a, a, "chat/kitchen/desk-1=bob", true);
    //  once alice clears it, bob may take it
    assert_int_equal(s_clear(a, ALICE, "chat", "lobby", "desk-1"), 0);
    s_expect_event(a, a, "chat/lobby/desk-1=alice", false);
    assert_int_equal(s_set(a, BOB, "chat", "lobby", "desk-1", "bob"), 0);
    s_expect_event(a, a, "chat/lobby/desk-1=bob", true);
    s_no_more_events(a);
}

//  Only the app that set an entry clears it.
static void test_clearing_what_the_owner_does_not_own_is_enoent(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    errno = 0;
    assert_int_equal(s_clear(a, ALICE, "chat", "lobby", "alice"), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "here"), 0);
    s_expect_event(a, a, "chat/lobby/alice=here", true);
    errno = 0;
    assert_int_equal(s_clear(a, BOB, "chat", "lobby", "alice"), -1);
    assert_int_equal(errno, ENOENT);
    assert_string_equal(s_list(fx, a, "chat", "lobby"),
                        "chat/lobby/alice=here@a");

    //  an entry of another sidecar's app is not ours to clear
    assert_int_equal(s_set(b, CAROL, "chat", "lobby", "carol", "there"), 0);
    s_pass(b, a);
    s_expect_event(a, b, "chat/lobby/carol=there", true);
    errno = 0;
    assert_int_equal(s_clear(a, CAROL, "chat", "lobby", "carol"), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(s_clear(a, ALICE, "chat", "lobby", "alice"), 0);
    s_expect_event(a, a, "chat/lobby/alice=here", false);
    errno = 0;
    assert_int_equal(s_clear(a, ALICE, "chat", "lobby", "alice"), -1);
    assert_int_equal(errno, ENOENT);
    s_no_more_events(a);
    assert_int_equal(a->nsent, 2); // the set and the one clear
}

//  An app that disconnects takes its entries with it, each one told to
//  the local apps and to the other sidecars.
static void test_owner_gone_clears_its_entries(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "1"), 0);
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice-phone", "2"), 0);
    assert_int_equal(s_set(a, ALICE, "chat", "kitchen", "alice", "3"), 0);
    assert_int_equal(s_set(a, BOB, "chat", "lobby", "bob", "4"), 0);
    s_pass(a, b);
    assert_string_equal(s_next_events(a, 4),
                        "+chat/kitchen/alice=3 +chat/lobby/alice-phone=2 "
                        "+chat/lobby/alice=1 +chat/lobby/bob=4");
    assert_int_equal(b->nevents, 4);
    b->seen = 4;

    presence_owner_gone(a->p, ALICE);
    assert_string_equal(s_next_events(a, 3),
                        "-chat/kitchen/alice=3 -chat/lobby/alice-phone=2 "
                        "-chat/lobby/alice=1");
    s_no_more_events(a);
    assert_int_equal(a->nsent, 4 + 3);

    s_pass(a, b);
    assert_string_equal(s_next_events(b, 3),
                        "-chat/kitchen/alice=3 -chat/lobby/alice-phone=2 "
                        "-chat/lobby/alice=1");
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"), "chat/lobby/bob=4@a");
    assert_string_equal(s_list(fx, a, "chat", "lobby"), "chat/lobby/bob=4@a");

    presence_owner_gone(a->p, CAROL); // had nothing
    s_no_more_events(a);
    assert_int_equal(a->nsent, 7);
}

// --- remote changes
// -----------------------------------------------------------

//  A delta from another sidecar is applied: b's apps see a's entries
//  come and go, under a's node id.
static void test_a_delta_from_another_node_is_applied(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "here"), 0);
    assert_int_equal(s_set(b, BOB, "chat", "lobby", "bob", "there"), 0);
    s_pass(a, b);
    s_pass(b, a);
    b->seen = 1; // its own
    s_expect_event(b, a, "chat/lobby/alice=here", true);
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"),
                        "chat/lobby/alice=here@a chat/lobby/bob=there@b");
    char on_b[256];
    snprintf(on_b, sizeof on_b, "%s", s_list(fx, b, "chat", "lobby"));
    assert_string_equal(s_list(fx, a, "chat", "lobby"), on_b);

    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "away"), 0);
    assert_int_equal(s_clear(a, ALICE, "chat", "lobby", "alice"), 0);
    s_pass(a, b);
    s_expect_event(b, a, "chat/lobby/alice=away", true);
    s_expect_event(b, a, "chat/lobby/alice=away", false);
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"),
                        "chat/lobby/bob=there@b");
    assert_int_equal(b->nsent, 1); // b does not echo what it learns
}

//  A snapshot replaces what b knows of a wholesale: new entries come,
//  missing ones go, unchanged ones are not told again.
static void test_a_snapshot_from_another_node_is_applied(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "1"), 0);
    assert_int_equal(s_set(a, BOB, "chat", "lobby", "bob", "2"), 0);
    assert_int_equal(s_set(a, CAROL, "chat", "kitchen", "carol", "3"), 0);
    s_lose(a); // b joined late: it heard none of it
    assert_int_equal(s_set(b, CAROL, "chat", "lobby", "b-carol", "b"), 0);
    b->seen = 1;

    presence_snapshot(a->p);
    assert_int_equal(a->nsent, 4);
    s_pass(a, b);
    assert_string_equal(s_next_events(b, 3),
                        "+chat/kitchen/carol=3 +chat/lobby/alice=1 "
                        "+chat/lobby/bob=2");
    s_no_more_events(b);

    //  a's changes are lost again; the next snapshot settles them
    assert_int_equal(s_clear(a, BOB, "chat", "lobby", "bob"), 0);
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "1b"), 0);
    assert_int_equal(s_set(a, BOB, "chat", "hall", "bob", "5"), 0);
    s_lose(a);
    presence_snapshot(a->p);
    s_pass(a, b);
    assert_string_equal(s_next_events(b, 3),
                        "+chat/hall/bob=5 +chat/lobby/alice=1b "
                        "-chat/lobby/bob=2");
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"),
                        "chat/lobby/alice=1b@a chat/lobby/b-carol=b@b");

    //  a snapshot carries only the sender's own entries: a, knowing b's
    //  entry, does not send it back as its own
    s_lose(a);
    a->seen = a->nevents;
    presence_snapshot(b->p);
    s_pass(b, a); // b's delta, then its snapshot: one new entry
    s_expect_event(a, b, "chat/lobby/b-carol=b", true);
    s_no_more_events(a);
    presence_snapshot(a->p);
    s_pass(a, b);
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"),
                        "chat/lobby/alice=1b@a chat/lobby/b-carol=b@b");
}

//  A delta that is not the next version means one was missed: it and the
//  ones after it are ignored until the next snapshot brings b up to date.
static void test_an_out_of_order_delta_waits_for_a_snapshot(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "x", "1"), 0); // v1
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "y", "2"), 0); // v2
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "z", "3"), 0); // v3

    s_pass_one(a, 1, b); // v2 before v1: ignored, and b asks at once
    s_no_more_events(b);
    assert_int_equal(b->nsent, 1);
    assert_int_equal(s_kind(&b->sent[0]), 'r');
    s_pass_one(a, 0, b); // v1: applied
    s_expect_event(b, a, "chat/lobby/x=1", true);
    s_pass_one(a, 2, b); // v3 after v1: v2 was missed, ignored; b asks
    s_no_more_events(b);
    assert_int_equal(b->nsent, 2);
    assert_int_equal(s_kind(&b->sent[1]), 'r');
    s_pass_one(a, 0, b); // v1 again: a duplicate, ignored
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"), "chat/lobby/x=1@a");

    presence_snapshot(a->p); // v3
    s_pass_one(a, 3, b);
    assert_string_equal(s_next_events(b, 2), "+chat/lobby/y=2 +chat/lobby/z=3");
    s_no_more_events(b);

    //  back in step: the next delta (v4) applies
    assert_int_equal(s_clear(a, ALICE, "chat", "lobby", "x"), 0);
    s_pass_one(a, 4, b);
    s_expect_event(b, a, "chat/lobby/x=1", false);
    //  an older snapshot arriving late changes nothing
    s_pass_one(a, 3, b);
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"),
                        "chat/lobby/y=2@a chat/lobby/z=3@a");
}

//  A sidecar that died or left takes its entries with it; others' stay.
//  If it comes back, its next snapshot brings them back.
static void test_node_gone_removes_that_node_s_entries(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "1"), 0);
    assert_int_equal(s_set(a, ALICE, "chat", "kitchen", "alice", "2"), 0);
    assert_int_equal(s_set(b, BOB, "chat", "lobby", "bob", "3"), 0);
    s_pass(a, b);
    b->seen = b->nevents;

    presence_node_gone(b->p, a->id);
    assert_string_equal(s_next_events(b, 2),
                        "-chat/kitchen/alice=2 -chat/lobby/alice=1");
    s_no_more_events(b);
    assert_string_equal(s_list(fx, b, "chat", "lobby"), "chat/lobby/bob=3@b");
    assert_int_equal(b->nsent, 1); // a's entries are not b's to announce

    presence_node_gone(b->p, a->id); // again: nothing left
    s_no_more_events(b);

    //  a was only unreachable: its deltas no longer follow from what b
    //  knows, its snapshot does
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "1b"), 0);
    s_pass(a, b);
    s_no_more_events(b);
    presence_snapshot(a->p);
    s_pass(a, b);
    assert_string_equal(s_next_events(b, 2),
                        "+chat/kitchen/alice=2 +chat/lobby/alice=1b");
}

//  presence_list names the entries of one (namespace, topic), every
//  sidecar's, and no other topic's.
static void test_list_lists_one_topic_only(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "1"), 0);
    assert_int_equal(s_set(a, ALICE, "chat", "lobby2", "alice", "2"), 0);
    assert_int_equal(s_set(a, ALICE, "chat2", "lobby", "alice", "3"), 0);
    assert_int_equal(s_set(a, ALICE, "cha", "tlobby", "alice", "4"), 0);
    assert_int_equal(s_set(a, ALICE, "chat", "lobb", "alice", "5"), 0);
    assert_int_equal(s_set(b, BOB, "chat", "lobby", "bob", ""), 0);
    assert_int_equal(s_set(b, BOB, "chat", "lobby3", "bob", "6"), 0);
    s_pass(b, a);

    assert_string_equal(s_list(fx, a, "chat", "lobby"),
                        "chat/lobby/alice=1@a chat/lobby/bob=@b");
    assert_string_equal(s_list(fx, a, "chat", "lobby2"),
                        "chat/lobby2/alice=2@a");
    assert_string_equal(s_list(fx, a, "cha", "tlobby"), "cha/tlobby/alice=4@a");
    assert_string_equal(s_list(fx, a, "chat", "nowhere"), "");
}

//  What a sidecar sent, back through a proxy, changes nothing; bodies
//  that do not parse are refused with EPROTO and change nothing either.
static void test_own_bodies_and_garbage_change_nothing(void **state)
{
    fixture_t *fx = *state;
    side_t *a = &fx->a, *b = &fx->b;
    assert_int_equal(s_set(a, ALICE, "chat", "lobby", "alice", "1"), 0);
    a->seen = 1;
    s_pass_one(a, 0, a);
    s_no_more_events(a);

    //  a's delta as another channel would send it
    presence_t *other = presence_new(
        &(presence_io_t){.arg = b, .send = s_io_send, .event = s_io_event},
        (const uint8_t *)"node-other-chan", "other-channel", NULL);
    assert_non_null(other);
    size_t sent = b->nsent;
    assert_int_equal(presence_set(other, ALICE, wire_str("chat"),
                                  wire_str("lobby"), wire_str("x"),
                                  wire_str("y")),
                     0);
    presence_destroy(&other);
    assert_int_equal(b->nsent, sent + 1);
    b->seen = b->nevents; // other's own event
    errno = 0;
    assert_int_equal(
        presence_on_remote(a->p, b->sent[sent].data, b->sent[sent].len), -1);
    assert_int_equal(errno, EPROTO);

    const struct {
        const char *body;
        size_t len;
    } garbage[] = {
        RAW("\xc1"),                 // not msgpack
        RAW("\x93\xa1x\xa1y\xa1z"),  // too few fields
        RAW("\xdd\xff\xff\xff\xff"), // 4 billion fields
        RAW("\x97\xactest-channel\xc4\x10node-zzzzzzzzzzz\xa1"
            "s\x01\x00\xc3\x91\x01"), // a snapshot of a number
        //  [CHANNEL, node, "d", 1, 1, "chat", "lo\tbby", "k", ""]
        RAW("\x99\xactest-channel\xc4\x10node-zzzzzzzzzzz\xa1"
            "d\x01\x01\xa4"
            "chat\xa6lo\tbby\xa1k\xc4\x00"),
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        errno = 0;
        assert_int_equal(presence_on_remote(a->p,
                                            (const uint8_t *)garbage[i].body,
                                            garbage[i].len),
                         -1);
        assert_int_equal(errno, EPROTO);
    }
    s_no_more_events(a);
    assert_string_equal(s_list(fx, a, "chat", "lobby"), "chat/lobby/alice=1@a");
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

// --- big tables, anti-entropy, budgets (their own small world)
// ----------------------------------------------------------------

//  A sidecar whose outbox grows as needed and whose events are counted.
typedef struct {
    presence_t *p;
    uint8_t id[16];
    body_t *out;
    size_t nout, cap;
    long present, gone; // events
} big_t;

static void s_big_send(void *arg, const uint8_t *body, size_t len)
{
    big_t *b = arg;
    if (b->nout == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->out = realloc(b->out, b->cap * sizeof *b->out);
        assert_non_null(b->out);
    }
    b->out[b->nout].data = malloc(len);
    assert_non_null(b->out[b->nout].data);
    memcpy(b->out[b->nout].data, body, len);
    b->out[b->nout++].len = len;
}

static void s_big_event(void *arg, const presence_entry_t *e, bool present)
{
    (void)e;
    big_t *b = arg;
    *(present ? &b->present : &b->gone) += 1;
}

static void s_big_init(big_t *b, const char *name,
                       const presence_limits_t *limits)
{
    memset(b, 0, sizeof *b);
    snprintf((char *)b->id, 16, "big-%s", name);
    presence_io_t io = {.arg = b, .send = s_big_send, .event = s_big_event};
    b->p = presence_new(&io, b->id, CHANNEL, limits);
    assert_non_null(b->p);
}

static void s_big_drop_outbox(big_t *b)
{
    for (size_t i = 0; i < b->nout; i++) {
        free(b->out[i].data);
    }
    b->nout = 0;
}

static void s_big_fini(big_t *b)
{
    s_big_drop_outbox(b);
    free(b->out);
    presence_destroy(&b->p);
}

//  Hand from's outbox to to, skipping body number skip (SIZE_MAX: none).
static void s_big_pass(big_t *from, big_t *to, size_t skip)
{
    for (size_t i = 0; i < from->nout; i++) {
        if (i != skip) {
            assert_int_equal(
                presence_on_remote(to->p, from->out[i].data, from->out[i].len),
                0);
        }
    }
    s_big_drop_outbox(from);
}

static void s_count_entry(void *arg, const presence_entry_t *e)
{
    (void)e;
    (*(long *)arg)++;
}

//  Requests ("r") in b's outbox.
static int s_big_requests(const big_t *b)
{
    int n = 0;
    for (size_t i = 0; i < b->nout; i++) {
        n += s_kind(&b->out[i]) == 'r';
    }
    return n;
}

static long s_big_count(big_t *b, const char *topic)
{
    long n = 0;
    presence_list(b->p, wire_str("chat"), wire_str(topic), s_count_entry, &n);
    return n;
}

//  3,000 entries of 1 KiB meta: the snapshot goes as chunks that each
//  stay near PRESENCE_CHUNK_BYTES (far under a link's message limit), and
//  applies whole; a snapshot with a chunk lost removes nothing and the
//  next one completes it.
static void test_a_big_table_goes_in_chunks(void **state)
{
    (void)state;
    big_t a, b;
    s_big_init(&a, "a", NULL);
    s_big_init(&b, "b", NULL);
    char meta[1024], key[32];
    memset(meta, 'm', sizeof meta - 1);
    meta[sizeof meta - 1] = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                      wire_str("lobby"), wire_str(key),
                                      wire_str(meta)),
                         0);
    }
    s_big_drop_outbox(&a); // b missed every delta
    presence_snapshot(a.p);
    assert_true(a.nout > 40);
    for (size_t i = 0; i < a.nout; i++) {
        assert_true(a.out[i].len < PRESENCE_CHUNK_BYTES + 4096);
    }
    size_t chunks = a.nout;
    s_big_pass(&a, &b, 1); // chunk 1 lost: that snapshot is dropped
    long partial = s_big_count(&b, "lobby");
    assert_true(partial > 0 && partial < 3000); // chunk 0 came in
    presence_snapshot(a.p);
    assert_int_equal(a.nout, chunks);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(s_big_count(&b, "lobby"), 3000);
    assert_int_equal(b.present, 3000);
    assert_int_equal(b.gone, 0);
    s_big_fini(&a);
    s_big_fini(&b);
}

//  Anti-entropy is a summary: a peer that is behind asks, and one
//  snapshot goes out at the next tick however many asked.
static void test_a_summary_brings_a_late_peer_up_to_date(void **state)
{
    (void)state;
    big_t a, b, c;
    s_big_init(&a, "a", NULL);
    s_big_init(&b, "b", NULL);
    s_big_init(&c, "c", NULL);
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                  wire_str("lobby"), wire_str("alice"),
                                  wire_str("hi")),
                     0);
    s_big_drop_outbox(&a); // the delta was lost
    presence_tick(a.p, 2); // a summary (the first tick's)
    assert_int_equal(a.nout, 1);
    assert_true(a.out[0].len < 64); // a few bytes, whatever the table
    body_t summary = {malloc(a.out[0].len), a.out[0].len};
    memcpy(summary.data, a.out[0].data, summary.len);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(presence_on_remote(c.p, summary.data, summary.len), 0);
    assert_int_equal(b.nout, 1); // b asks
    assert_int_equal(c.nout, 1); // so does c
    assert_int_equal(presence_on_remote(b.p, summary.data, summary.len), 0);
    assert_int_equal(b.nout, 1); // once per version
    s_big_pass(&b, &a, SIZE_MAX);
    s_big_pass(&c, &a, SIZE_MAX);
    assert_int_equal(a.nout, 0); // nothing before the tick
    presence_tick(a.p, 2);
    assert_int_equal(a.nout, 1); // one snapshot (one chunk), no summary
    body_t snap = {malloc(a.out[0].len), a.out[0].len};
    memcpy(snap.data, a.out[0].data, snap.len);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(presence_on_remote(c.p, snap.data, snap.len), 0);
    assert_int_equal(s_big_count(&b, "lobby"), 1);
    assert_int_equal(s_big_count(&c, "lobby"), 1);
    //  in step now, and nothing changed: no summary until the refresh,
    //  which asks nothing
    for (int i = 0; i < PRESENCE_REFRESH_TICKS - 2; i++) {
        presence_tick(a.p, 2);
    }
    assert_int_equal(a.nout, 0);
    presence_tick(a.p, 2);
    assert_int_equal(a.nout, 1);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(b.nout, 0);
    free(summary.data);
    free(snap.data);
    s_big_fini(&a);
    s_big_fini(&b);
    s_big_fini(&c);
}

//  Summaries per tick received by one sidecar from all its peers, when
//  each of peers sidecars ticks alone for ticks ticks with nothing to say.
static double s_idle_summaries(size_t peers, int ticks)
{
    big_t a;
    s_big_init(&a, "a", NULL);
    size_t sent = 0;
    for (int i = 0; i < ticks; i++) {
        presence_tick(a.p, peers);
        sent += a.nout;
        s_big_drop_outbox(&a);
    }
    s_big_fini(&a);
    //  every peer sends as many, each to all: one sidecar gets peers times
    return (double)sent * (double)peers / ticks;
}

//  Idle anti-entropy costs each sidecar about as many messages whatever
//  the number of peers: about PRESENCE_FAN_IN per PRESENCE_REFRESH_TICKS
//  ticks, not a summary from every peer every PRESENCE_SUMMARY_TICKS.
static void test_idle_summaries_do_not_grow_with_the_peers(void **state)
{
    (void)state;
    int ticks = 40 * PRESENCE_REFRESH_TICKS * 100 / PRESENCE_FAN_IN;
    double per_tick = (double)PRESENCE_FAN_IN / PRESENCE_REFRESH_TICKS;
    size_t sizes[] = {1, 10, 30, 100, 300, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        double got = s_idle_summaries(sizes[i], ticks);
        if (got > 1.1 * per_tick) {
            fail_msg("%zu peers: %.3f summaries per tick received, over %.3f",
                     sizes[i], got, per_tick);
        }
    }
    //  before, every peer's summary every PRESENCE_SUMMARY_TICKS: 100 peers
    //  sent 100 / PRESENCE_SUMMARY_TICKS per tick
    assert_true(s_idle_summaries(100, ticks) * PRESENCE_SUMMARY_TICKS < 100);
}

//  A change is summarized once, at the next summary tick (a lost last
//  delta is found then), not every period after.
static void test_a_change_is_summarized_once(void **state)
{
    (void)state;
    big_t a;
    s_big_init(&a, "a", NULL);
    presence_tick(a.p, 50); // the first summary
    assert_int_equal(a.nout, 1);
    s_big_drop_outbox(&a);
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                  wire_str("lobby"), wire_str("alice"),
                                  wire_str("hi")),
                     0);
    s_big_drop_outbox(&a); // the delta
    size_t summaries = 0;
    for (int i = 0; i < PRESENCE_REFRESH_TICKS * 5 - 2; i++) {
        presence_tick(a.p, 50);
        summaries += a.nout;
        if (a.nout) {
            //  PRESENCE_SUMMARY_TICKS after the last one at the soonest
            assert_int_equal(i + 1, PRESENCE_SUMMARY_TICKS);
        }
        s_big_drop_outbox(&a);
    }
    assert_int_equal(summaries, 1);
    s_big_fini(&a);
}

//  A peer we hear (again) asks for our snapshot and gets one at our next
//  tick; b, which dropped a's entries while a was silent, gets them back
//  without waiting for a summary. An unanswered request is asked again
//  after PRESENCE_ASK_TICKS.
static void test_a_peer_heard_again_is_asked_for_its_snapshot(void **state)
{
    (void)state;
    big_t a, b;
    s_big_init(&a, "a", NULL);
    s_big_init(&b, "b", NULL);
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                  wire_str("lobby"), wire_str("alice"),
                                  wire_str("hi")),
                     0);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(s_big_count(&b, "lobby"), 1);
    presence_peer_down(b.p, a.id); // a went silent for b
    assert_int_equal(s_big_count(&b, "lobby"), 0);
    presence_peer_up(b.p, a.id); // and is heard again
    assert_int_equal(b.nout, 1); // a request, at once
    s_big_pass(&b, &a, SIZE_MAX);
    presence_tick(b.p, 1); // b's own snapshot (a learns b's), a summary
    s_big_pass(&b, &a, SIZE_MAX);
    presence_tick(a.p, 1); // a's snapshot, and its first summary
    assert_int_equal(a.nout, 2);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(s_big_count(&b, "lobby"), 1);
    assert_int_equal(b.nout, 0);

    //  a summary of a version b does not hold: b asks once, then again
    //  only after PRESENCE_ASK_TICKS when nothing came
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                  wire_str("lobby"), wire_str("bob"),
                                  wire_str("hi")),
                     0);
    s_big_drop_outbox(&a); // the delta is lost
    for (int i = 0; i < PRESENCE_SUMMARY_TICKS && !a.nout; i++) {
        presence_tick(a.p, 1);
    }
    assert_int_equal(a.nout, 1); // the summary of the change
    body_t summary = {malloc(a.out[0].len), a.out[0].len};
    memcpy(summary.data, a.out[0].data, summary.len);
    s_big_drop_outbox(&a);
    assert_int_equal(presence_on_remote(b.p, summary.data, summary.len), 0);
    assert_int_equal(b.nout, 1);
    s_big_drop_outbox(&b); // the request is lost
    assert_int_equal(presence_on_remote(b.p, summary.data, summary.len), 0);
    assert_int_equal(b.nout, 0); // asked already
    for (int i = 0; i < PRESENCE_ASK_TICKS - 1; i++) {
        presence_tick(b.p, 1);
    }
    assert_int_equal(s_big_requests(&b), 0);
    presence_tick(b.p, 1);
    assert_int_equal(s_big_requests(&b), 1); // asked again, at the tick
    s_big_pass(&b, &a, SIZE_MAX);
    presence_tick(a.p, 1);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(s_big_count(&b, "lobby"), 2);
    free(summary.data);
    s_big_fini(&a);
    s_big_fini(&b);
}

//  A snapshot asked for that does not come whole (a chunk lost) is asked
//  for again after PRESENCE_ASK_TICKS, at the tick, with no summary.
static void test_a_lost_snapshot_is_asked_for_again(void **state)
{
    (void)state;
    big_t a, b;
    s_big_init(&a, "a", NULL);
    s_big_init(&b, "b", NULL);
    char meta[1024], key[32];
    memset(meta, 'm', sizeof meta - 1);
    meta[sizeof meta - 1] = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                      wire_str("lobby"), wire_str(key),
                                      wire_str(meta)),
                         0);
    }
    s_big_drop_outbox(&a);       // b missed every delta
    presence_peer_up(a.p, b.id); // a hears b: its snapshot at the next tick
    presence_tick(a.p, 1);       // the snapshot (4 chunks) and a summary
    assert_true(a.nout > 2);
    s_big_pass(&a, &b, 1); // chunk 1 lost: the snapshot is dropped
    assert_true(s_big_count(&b, "lobby") < 200);
    s_big_drop_outbox(&b); // what a's summary made b ask: lost as well
    for (int i = 0; i < PRESENCE_ASK_TICKS - 1; i++) {
        presence_tick(b.p, 1);
    }
    assert_int_equal(s_big_requests(&b), 0);
    s_big_drop_outbox(&b); // b's own snapshot and summary
    presence_tick(b.p, 1);
    assert_int_equal(s_big_requests(&b), 1); // asked again
    s_big_pass(&b, &a, SIZE_MAX);
    presence_tick(a.p, 1);
    s_big_pass(&a, &b, SIZE_MAX);
    assert_int_equal(s_big_count(&b, "lobby"), 200);
    for (int i = 0; i < 3 * PRESENCE_ASK_TICKS; i++) {
        presence_tick(b.p, 1);
    }
    assert_int_equal(s_big_requests(&b), 0); // whole now: no more asking
    s_big_fini(&a);
    s_big_fini(&b);
}

//  Past an app's or the sidecar's budget a set is refused (ENOSPC) and
//  changes nothing; clearing or leaving makes room again.
static void test_budgets_refuse_and_free(void **state)
{
    (void)state;
    presence_limits_t limits = {
        .app_entries = 3, .app_bytes = 4096, .entries = 5, .bytes = 1 << 20};
    big_t a;
    s_big_init(&a, "a", &limits);
    char key[16];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                      wire_str("t"), wire_str(key),
                                      wire_str("m")),
                         0);
    }
    errno = 0;
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"), wire_str("t"),
                                  wire_str("k3"), wire_str("m")),
                     -1);
    assert_int_equal(errno, ENOSPC);
    //  replacing an entry is no new entry
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"), wire_str("t"),
                                  wire_str("k0"), wire_str("m2")),
                     0);
    //  but its bytes count: meta past the app's bytes is refused
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    errno = 0;
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"), wire_str("t"),
                                  wire_str("k0"), wire_str(big)),
                     -1);
    assert_int_equal(errno, ENOSPC);
    //  the sidecar's budget: Bob gets two, not three
    assert_int_equal(presence_set(a.p, BOB, wire_str("chat"), wire_str("t"),
                                  wire_str("b0"), wire_str("m")),
                     0);
    assert_int_equal(presence_set(a.p, BOB, wire_str("chat"), wire_str("t"),
                                  wire_str("b1"), wire_str("m")),
                     0);
    assert_int_equal(presence_set(a.p, BOB, wire_str("chat"), wire_str("t"),
                                  wire_str("b2"), wire_str("m")),
                     -1);
    assert_int_equal(errno, ENOSPC);
    size_t entries, bytes;
    presence_usage(a.p, &entries, &bytes);
    assert_int_equal(entries, 5);
    assert_int_equal(s_big_count(&a, "t"), 5);
    //  Alice leaves: room for Bob again
    presence_owner_gone(a.p, ALICE);
    assert_int_equal(presence_set(a.p, BOB, wire_str("chat"), wire_str("t"),
                                  wire_str("b2"), wire_str("m")),
                     0);
    presence_usage(a.p, &entries, &bytes);
    assert_int_equal(entries, 3);
    presence_owner_gone(a.p, BOB);
    presence_usage(a.p, &entries, &bytes);
    assert_int_equal(entries, 0);
    assert_int_equal(bytes, 0);
    s_big_fini(&a);
}

//  Through proxies every sidecar hears every other's presence traffic:
//  what a sidecar sends while peers come up must not grow with them
//  (issue 20). Nothing while it holds no entry (200 peers appear: no
//  snapshot, no request), then one snapshot per tick for all the peers
//  that appeared in it; a first contact asks nothing, only a peer that
//  went down holding entries is asked when heard again.
static void test_presence_traffic_does_not_grow_with_the_peers(void **state)
{
    (void)state;
    big_t a;
    s_big_init(&a, "a", NULL);
    uint8_t peer[16] = {0};
    for (int i = 0; i < 200; i++) {
        peer[0] = (uint8_t)i;
        peer[1] = 0xee;
        presence_peer_up(a.p, peer); // 200 peers appear: nothing to tell
    }
    presence_tick(a.p, 200);
    assert_int_equal(s_big_requests(&a), 0);
    size_t first = a.nout; // the first summary, nothing else
    assert_true(first <= 1);
    s_big_drop_outbox(&a);
    assert_int_equal(presence_set(a.p, ALICE, wire_str("chat"),
                                  wire_str("lobby"), wire_str("alice"),
                                  wire_str("hi")),
                     0);
    assert_int_equal(a.nout, 1); // the delta
    s_big_drop_outbox(&a);
    for (int i = 0; i < 50; i++) {
        peer[0] = (uint8_t)i;
        peer[1] = 0xdd;
        presence_peer_up(a.p, peer); // 50 peers appear within one tick
    }
    presence_tick(a.p, 250);
    assert_int_equal(s_big_requests(&a), 0);
    assert_true(a.nout >= 1 && a.nout <= 2); // one snapshot (+ a summary)
    s_big_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_set_and_clear_report_events_and_deltas),
        CASE(test_a_key_another_owner_holds_is_eexist),
        CASE(test_clearing_what_the_owner_does_not_own_is_enoent),
        CASE(test_owner_gone_clears_its_entries),
        CASE(test_a_delta_from_another_node_is_applied),
        CASE(test_a_snapshot_from_another_node_is_applied),
        CASE(test_an_out_of_order_delta_waits_for_a_snapshot),
        CASE(test_node_gone_removes_that_node_s_entries),
        CASE(test_list_lists_one_topic_only),
        CASE(test_own_bodies_and_garbage_change_nothing),
        cmocka_unit_test(test_a_big_table_goes_in_chunks),
        cmocka_unit_test(test_a_summary_brings_a_late_peer_up_to_date),
        cmocka_unit_test(test_idle_summaries_do_not_grow_with_the_peers),
        cmocka_unit_test(test_a_change_is_summarized_once),
        cmocka_unit_test(test_a_peer_heard_again_is_asked_for_its_snapshot),
        cmocka_unit_test(test_a_lost_snapshot_is_asked_for_again),
        cmocka_unit_test(test_budgets_refuse_and_free),
        cmocka_unit_test(test_presence_traffic_does_not_grow_with_the_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
