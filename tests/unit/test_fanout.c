/*  Unit tests: fanout (the one path by which a message reaches local
    subscribers).

    A real registry says who is in which topic; a fake fanout_io_t stands
    in for the server: it keeps every outbuf it is handed, per member, and
    counts holds and releases. A member can be "closed by its delivery",
    as the server does when a write to a dead client fails: the coordinator
    then takes it out of every topic, in the middle of the fanout.
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

#include "fanout.h"
#include "msg.h"
#include "outq.h"
#include "registry.h"
#include "stats.h"
#include "wire.h"

#define MEMBERS 12
#define SLICE   4

static const uint8_t s_instance[16] = "inst-publisher1";
static const uint8_t s_node[16] = "node-sidecar-01";

// --- the fake server
// ----------------------------------------------------------

//  An app connection, as the server has one: the registry part embedded.
typedef struct {
    registry_client_t reg;
    int id;
    int holds;         // held by fanout jobs
    bool closed;       // the server dropped it: deliveries go nowhere
    bool close_on_msg; // its next delivery fails and closes it
} member_t;

//  One outbuf handed to one member.
typedef struct {
    member_t *member;
    outbuf_t *buf; // a reference of ours
} delivery_t;

typedef struct {
    registry_t *registry;
    fanout_t *fanout;
    stats_t stats;
    member_t members[MEMBERS];
    member_t outsider; // a publisher in no topic
    delivery_t log[256];
    size_t nlog;
    size_t holds;    // total, for balance
    size_t releases; //
    wire_decoder_t *decoder;
    wire_frame_t frame; // the last one decoded
} fixture_t;

static void s_io_deliver(void *arg, void *member, outbuf_t *buf)
{
    fixture_t *fx = arg;
    member_t *m = member;
    assert_true(fx->nlog < sizeof fx->log / sizeof fx->log[0]);
    fx->log[fx->nlog++] = (delivery_t){m, outbuf_ref(buf)};
    if (m->close_on_msg && !m->closed) {
        //  server_deliver: the write fails, the connection is closed and
        //  the coordinator leaves its topics, all inside this call
        m->closed = true;
        registry_leave_all(fx->registry, &m->reg);
    }
}

static void s_io_hold(void *arg, void *member)
{
    fixture_t *fx = arg;
    ((member_t *)member)->holds++;
    fx->holds++;
}

static void s_io_release(void *arg, void *member)
{
    fixture_t *fx = arg;
    member_t *m = member;
    assert_true(m->holds > 0); // never released more than held
    m->holds--;
    fx->releases++;
}

//  Forget the deliveries so far.
static void s_forget(fixture_t *fx)
{
    for (size_t i = 0; i < fx->nlog; i++) {
        outbuf_unref(&fx->log[i].buf);
    }
    fx->nlog = 0;
}

static int s_setup_slice(void **state, size_t slice)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->registry = registry_new();
    assert_non_null(fx->registry);
    fanout_io_t io = {fx, s_io_deliver, s_io_hold, s_io_release};
    fx->fanout = fanout_new(fx->registry, &io, slice, &fx->stats);
    assert_non_null(fx->fanout);
    fx->decoder = wire_decoder_new();
    assert_non_null(fx->decoder);
    for (int i = 0; i < MEMBERS; i++) {
        fx->members[i].id = i;
        fx->members[i].reg.owner = &fx->members[i];
    }
    fx->outsider.id = -1;
    fx->outsider.reg.owner = &fx->outsider;
    *state = fx;
    return 0;
}

//  A slice larger than every room: each message goes out at once.
static int s_setup(void **state)
{
    return s_setup_slice(state, 0);
}

static int s_setup_small_slice(void **state)
{
    return s_setup_slice(state, SLICE);
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    fanout_destroy(&fx->fanout);
    fanout_destroy(&fx->fanout); // twice is fine
    //  whatever fanout held, it released
    assert_int_equal(fx->holds, fx->releases);
    for (int i = 0; i < MEMBERS; i++) {
        assert_int_equal(fx->members[i].holds, 0);
        registry_leave_all(fx->registry, &fx->members[i].reg);
    }
    registry_destroy(&fx->registry);
    s_forget(fx);
    wire_decoder_destroy(&fx->decoder);
    free(fx);
    return 0;
}

// --- helpers
// ------------------------------------------------------------------

static void s_join(fixture_t *fx, member_t *m, const char *ns,
                   const char *topic)
{
    assert_int_equal(registry_join(fx->registry, &m->reg, ns, strlen(ns), topic,
                                   strlen(topic)),
                     1);
}

//  members[from, to) join (ns, topic).
static void s_room(fixture_t *fx, const char *ns, const char *topic, int from,
                   int to)
{
    for (int i = from; i < to; i++) {
        s_join(fx, &fx->members[i], ns, topic);
    }
}

static msg_t s_msg(const char *ns, const char *topic, uint64_t flags,
                   uint64_t seq, const char *payload)
{
    return (msg_t){.ns = wire_str(ns),
                   .topic = wire_str(topic),
                   .flags = flags,
                   .instance = s_instance,
                   .node = s_node,
                   .seq = seq,
                   .payload = wire_str(payload)};
}

//  The one MSG frame in buf, decoded.
static const wire_frame_t *s_decode(fixture_t *fx, const outbuf_t *buf)
{
    size_t body = 0;
    assert_int_equal(wire_peek(buf->data, buf->len, buf->len, &body), 1);
    assert_int_equal(WIRE_PREFIX + body, buf->len); // one frame, whole
    assert_int_equal(
        wire_decode(fx->decoder, buf->data + WIRE_PREFIX, body, &fx->frame), 0);
    assert_int_equal(fx->frame.type, WIRE_MSG);
    return &fx->frame;
}

//  The frame says exactly what msg says, with these flags.
static void s_assert_msg(const wire_frame_t *f, const msg_t *msg,
                         uint64_t flags)
{
    assert_int_equal(f->ns.len, msg->ns.len);
    assert_memory_equal(f->ns.ptr, msg->ns.ptr, msg->ns.len);
    assert_int_equal(f->topic.len, msg->topic.len);
    assert_memory_equal(f->topic.ptr, msg->topic.ptr, msg->topic.len);
    assert_int_equal(f->flags, flags);
    assert_memory_equal(f->id.ptr, msg->instance, 16);
    assert_memory_equal(f->node.ptr, msg->node, 16);
    assert_int_equal(f->seq, msg->seq);
    assert_int_equal(f->payload.len, msg->payload.len);
    assert_memory_equal(f->payload.ptr, msg->payload.ptr, msg->payload.len);
}

//  How many deliveries m got.
static size_t s_got(const fixture_t *fx, const member_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->nlog; i++) {
        n += fx->log[i].member == m;
    }
    return n;
}

//  The seq of every MSG m got, in the order it got them, as "1 2 3".
static const char *s_seqs(fixture_t *fx, const member_t *m)
{
    static char out[256];
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < fx->nlog; i++) {
        if (fx->log[i].member == m) {
            const wire_frame_t *f = s_decode(fx, fx->log[i].buf);
            len += (size_t)snprintf(out + len, sizeof out - len, "%s%llu",
                                    len ? " " : "", (unsigned long long)f->seq);
        }
    }
    return out;
}

//  Run the pending slices; returns how many it took.
static int s_drain(fixture_t *fx)
{
    int runs = 0;
    while (fanout_pending(fx->fanout)) {
        bool more = fanout_run(fx->fanout);
        runs++;
        assert_int_equal(more, fanout_pending(fx->fanout));
        assert_true(runs < 1000);
    }
    return runs;
}

// --- a room smaller than a slice: at once ------------------------------------

//  A local publish: every member but the publisher gets the one MSG,
//  encoded once (the same outbuf), at once, with nothing held.
static void test_every_member_but_the_origin_gets_the_same_outbuf(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "chat", "lobby", 0, 5);
    msg_t msg = s_msg("chat", "lobby", WIRE_F_BINARY, 42, "\x00\x01hi");
    msg.payload.len = 4;

    assert_int_equal(fanout_deliver(fx->fanout, &msg, &fx->members[0]), 4);

    assert_int_equal(fx->nlog, 4);
    assert_int_equal(s_got(fx, &fx->members[0]), 0);
    for (int i = 1; i < 5; i++) {
        assert_int_equal(s_got(fx, &fx->members[i]), 1);
    }
    for (size_t i = 0; i < fx->nlog; i++) {
        assert_ptr_equal(fx->log[i].buf, fx->log[0].buf);
    }
    s_assert_msg(s_decode(fx, fx->log[0].buf), &msg, WIRE_F_BINARY);
    assert_false(fanout_pending(fx->fanout));
    assert_int_equal(fx->holds, 0);
    assert_int_equal(fx->stats.fanouts, 1);
}

//  From the mesh there is no origin: every member gets it, and an ECHO
//  flag the publisher set elsewhere does not reach the apps.
static void test_a_message_from_the_mesh_reaches_every_member(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "chat", "lobby", 0, 5);
    msg_t msg = s_msg("chat", "lobby", WIRE_F_ECHO, 7, "from afar");

    assert_int_equal(fanout_deliver(fx->fanout, &msg, NULL), 5);

    assert_int_equal(fx->nlog, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s_got(fx, &fx->members[i]), 1);
    }
    s_assert_msg(s_decode(fx, fx->log[0].buf), &msg, 0);
}

//  ECHO: the publisher gets its own message too, in a frame of its own
//  that keeps the flag; the others' frame does not carry it.
static void test_echo_includes_the_origin(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "chat", "lobby", 0, 5);
    msg_t msg = s_msg("chat", "lobby", WIRE_F_BINARY | WIRE_F_ECHO, 1, "me");
    member_t *origin = &fx->members[2];

    assert_int_equal(fanout_deliver(fx->fanout, &msg, origin), 5);

    assert_int_equal(fx->nlog, 5);
    for (size_t i = 0; i < fx->nlog; i++) {
        const wire_frame_t *f = s_decode(fx, fx->log[i].buf);
        bool own = fx->log[i].member == origin;
        s_assert_msg(f, &msg,
                     own ? WIRE_F_BINARY | WIRE_F_ECHO : WIRE_F_BINARY);
    }
    assert_int_equal(s_got(fx, origin), 1);

    //  a publisher that did not join the topic still gets its echo
    s_forget(fx);
    assert_int_equal(fanout_deliver(fx->fanout, &msg, &fx->outsider), 6);
    assert_int_equal(s_got(fx, &fx->outsider), 1);
}

//  Only the members of that (namespace, topic): names are compared whole.
static void test_only_the_topic_s_members_get_it(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "chat", "lobby", 0, 2);
    s_room(fx, "chat", "lobby2", 2, 4);
    s_room(fx, "chat2", "lobby", 4, 6);
    s_room(fx, "cha", "tlobby", 6, 8);

    msg_t nobody = s_msg("chat", "kitchen", 0, 1, "anyone?");
    assert_int_equal(fanout_deliver(fx->fanout, &nobody, NULL), 0);
    assert_int_equal(fx->nlog, 0);
    assert_int_equal(fx->stats.fanouts, 0);

    msg_t msg = s_msg("chat", "lobby", 0, 2, "lobby only");
    assert_int_equal(fanout_deliver(fx->fanout, &msg, NULL), 2);
    assert_int_equal(s_got(fx, &fx->members[0]), 1);
    assert_int_equal(s_got(fx, &fx->members[1]), 1);
    assert_int_equal(fx->nlog, 2);
}

//  The server closes a member whose write fails inside its delivery, and
//  the coordinator takes it out of the topic right then: the members
//  after it in the room still get the message, once each.
static void test_a_member_closed_by_its_delivery_hides_no_other(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "chat", "lobby", 0, 6);
    for (int dead = 0; dead < 6; dead++) {
        s_forget(fx);
        fx->members[dead].close_on_msg = true;
        msg_t msg = s_msg("chat", "lobby", 0, (uint64_t)dead, "x");
        fanout_deliver(fx->fanout, &msg, NULL);
        for (int i = dead; i < 6; i++) {
            assert_int_equal(s_got(fx, &fx->members[i]), 1);
        }
    }
    //  and the last one leaving frees the topic under the fanout's feet
    s_join(fx, &fx->members[6], "chat", "alone");
    fx->members[6].close_on_msg = true;
    msg_t msg = s_msg("chat", "alone", 0, 9, "bye");
    fanout_deliver(fx->fanout, &msg, NULL);
    assert_int_equal(s_got(fx, &fx->members[6]), 1);
    assert_null(registry_lookup(fx->registry, "chat", 4, "alone", 5));
}

// --- rooms larger than a slice ----------------------------------------------

//  A room larger than a slice is walked a slice per fanout_run (the loop's
//  idle hook), every member held until served.
static void test_a_large_room_goes_out_a_slice_per_run(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "big", "room", 0, 10);
    msg_t msg = s_msg("big", "room", 0, 5, "to many");
    member_t *origin = &fx->members[3];

    assert_int_equal(fanout_deliver(fx->fanout, &msg, origin), 9);
    assert_int_equal(fx->nlog, 0); // nothing yet
    assert_true(fanout_pending(fx->fanout));
    assert_int_equal(fx->holds, 9);
    assert_int_equal(origin->holds, 0);

    size_t expect[] = {4, 8, 9};
    for (int run = 0; run < 3; run++) {
        bool more = fanout_run(fx->fanout);
        assert_int_equal(fx->nlog, expect[run]);
        assert_int_equal(more, run < 2);
        assert_int_equal(fx->releases, expect[run]); // released once served
    }
    assert_false(fanout_pending(fx->fanout));
    assert_false(fanout_run(fx->fanout)); // nothing left: a no-op

    assert_int_equal(s_got(fx, origin), 0);
    for (size_t i = 0; i < fx->nlog; i++) {
        assert_ptr_equal(fx->log[i].buf, fx->log[0].buf);
        assert_int_equal(fx->log[i].member->holds, 0);
    }
    s_assert_msg(s_decode(fx, fx->log[0].buf), &msg, 0);
    assert_int_equal(fx->stats.fanouts, 1);
}

//  While a job is pending every later message queues behind it, even to
//  a small room, so each member gets a publisher's messages in order.
static void test_later_messages_queue_behind_a_pending_job(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "ns", "big", 0, 10);
    s_room(fx, "ns", "small", 0, 2);
    member_t *publisher = &fx->members[9];

    msg_t m1 = s_msg("ns", "big", 0, 1, "one");
    msg_t m2 = s_msg("ns", "big", 0, 2, "two");
    msg_t m3 = s_msg("ns", "small", 0, 3, "three");
    assert_int_equal(fanout_deliver(fx->fanout, &m1, publisher), 9);
    assert_int_equal(fanout_run(fx->fanout), true); // part of m1 out
    assert_int_equal(fanout_deliver(fx->fanout, &m2, publisher), 9);
    assert_int_equal(fanout_deliver(fx->fanout, &m3, publisher), 2);
    assert_int_equal(fx->nlog, SLICE); // m2 and m3 wait

    //  20 deliveries, 4 per run, one run done already
    assert_int_equal(s_drain(fx), 4);
    assert_int_equal(fx->nlog, 20);
    assert_string_equal(s_seqs(fx, &fx->members[0]), "1 2 3");
    assert_string_equal(s_seqs(fx, &fx->members[1]), "1 2 3");
    for (int i = 2; i < 9; i++) {
        assert_string_equal(s_seqs(fx, &fx->members[i]), "1 2");
    }
    assert_string_equal(s_seqs(fx, publisher), "");
    assert_int_equal(fx->holds, 20);
    assert_int_equal(fx->releases, 20);

    //  with nothing pending the small room goes out at once again
    msg_t m4 = s_msg("ns", "small", 0, 4, "four");
    assert_int_equal(fanout_deliver(fx->fanout, &m4, NULL), 2);
    assert_string_equal(s_seqs(fx, &fx->members[0]), "1 2 3 4");
    assert_int_equal(fx->holds, 20);
}

//  A member that leaves (its app closed) while a job still holds it is
//  released all the same; it is not in the jobs that come after.
static void test_a_member_that_leaves_mid_job_is_released(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "big", "room", 0, 10);
    member_t *gone = &fx->members[8];
    msg_t m1 = s_msg("big", "room", 0, 1, "one");
    assert_int_equal(fanout_deliver(fx->fanout, &m1, NULL), 10);
    assert_true(fanout_run(fx->fanout));
    assert_int_equal(gone->holds, 1);

    //  the server closes it: the coordinator leaves its topics, the
    //  connection stays allocated while held
    gone->closed = true;
    registry_leave_all(fx->registry, &gone->reg);
    msg_t m2 = s_msg("big", "room", 0, 2, "two");
    assert_int_equal(fanout_deliver(fx->fanout, &m2, NULL), 9);
    assert_int_equal(gone->holds, 1); // m1 only

    s_drain(fx);
    assert_int_equal(gone->holds, 0);
    //  handed m1 as it was held (a closed connection drops it), not m2
    assert_string_equal(s_seqs(fx, gone), "1");
    assert_string_equal(s_seqs(fx, &fx->members[0]), "1 2");
    assert_int_equal(fx->holds, 19);
    assert_int_equal(fx->releases, 19);
}

//  A member closed by its own delivery inside a slice (the write failed)
//  is released like the others.
static void test_a_member_closed_in_a_slice_is_released(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "big", "room", 0, 10);
    fx->members[5].close_on_msg = true;
    msg_t m1 = s_msg("big", "room", 0, 1, "one");
    assert_int_equal(fanout_deliver(fx->fanout, &m1, NULL), 10);
    s_drain(fx);
    assert_int_equal(fx->nlog, 10);
    assert_int_equal(fx->members[5].holds, 0);
    assert_int_equal(registry_lookup(fx->registry, "big", 3, "room", 4)->count,
                     9);
}

//  fanout_destroy with jobs still pending releases every member they held.
static void test_destroy_releases_what_pending_jobs_hold(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "big", "room", 0, 10);
    msg_t m1 = s_msg("big", "room", 0, 1, "one");
    msg_t m2 = s_msg("big", "room", 0, 2, "two");
    assert_int_equal(fanout_deliver(fx->fanout, &m1, NULL), 10);
    assert_int_equal(fanout_deliver(fx->fanout, &m2, NULL), 10);
    assert_true(fanout_run(fx->fanout));
    assert_int_equal(fx->holds, 20);
    assert_int_equal(fx->releases, SLICE);

    fanout_destroy(&fx->fanout);
    assert_null(fx->fanout);
    assert_int_equal(fx->releases, 20);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(fx->members[i].holds, 0);
    }
}

//  ECHO with a job pending: the publisher's own copy is not queued, only
//  the room's.
static void test_echo_to_a_large_room(void **state)
{
    fixture_t *fx = *state;
    s_room(fx, "big", "room", 0, 10);
    member_t *origin = &fx->members[0];
    msg_t msg = s_msg("big", "room", WIRE_F_ECHO, 3, "and me");
    assert_int_equal(fanout_deliver(fx->fanout, &msg, origin), 10);
    assert_int_equal(fx->nlog, 1);
    assert_ptr_equal(fx->log[0].member, origin);
    s_assert_msg(s_decode(fx, fx->log[0].buf), &msg, WIRE_F_ECHO);
    assert_int_equal(origin->holds, 0);
    s_drain(fx);
    assert_int_equal(fx->nlog, 10);
    assert_int_equal(s_got(fx, origin), 1);
    s_assert_msg(s_decode(fx, fx->log[9].buf), &msg, 0);
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
#define SLICED(name)                                                           \
    cmocka_unit_test_setup_teardown(name, s_setup_small_slice, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_every_member_but_the_origin_gets_the_same_outbuf),
        CASE(test_a_message_from_the_mesh_reaches_every_member),
        CASE(test_echo_includes_the_origin),
        CASE(test_only_the_topic_s_members_get_it),
        CASE(test_a_member_closed_by_its_delivery_hides_no_other),
        SLICED(test_a_large_room_goes_out_a_slice_per_run),
        SLICED(test_later_messages_queue_behind_a_pending_job),
        SLICED(test_a_member_that_leaves_mid_job_is_released),
        SLICED(test_a_member_closed_in_a_slice_is_released),
        SLICED(test_destroy_releases_what_pending_jobs_hold),
        SLICED(test_echo_to_a_large_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
