/*  Unit tests: registry (which local clients are in which topic). */

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

#include "registry.h"
#include "wire.h"

//  A connection as the server has one: the registry part embedded.
typedef struct {
    int id;
    registry_client_t reg;
} conn_t;

static void s_conn_init(conn_t *conn, int id)
{
    memset(conn, 0, sizeof *conn);
    conn->id = id;
    conn->reg.owner = conn;
}

//  Join and leave by NUL-terminated names.
static int s_join(registry_t *r, conn_t *conn, const char *ns,
                  const char *topic)
{
    return registry_join(r, &conn->reg, ns, strlen(ns), topic, strlen(topic));
}

static int s_leave(registry_t *r, conn_t *conn, const char *ns,
                   const char *topic)
{
    return registry_leave(r, &conn->reg, ns, strlen(ns), topic, strlen(topic));
}

static registry_topic_t *s_lookup(registry_t *r, const char *ns,
                                  const char *topic)
{
    return registry_lookup(r, ns, strlen(ns), topic, strlen(topic));
}

static bool s_has_member(const registry_topic_t *t, const conn_t *conn)
{
    for (size_t i = 0; i < t->count; i++) {
        if (registry_member(t, i) == conn) {
            return true;
        }
    }
    return false;
}

//  Hook bookkeeping: every call is checked against what the header says.
typedef struct {
    size_t firsts;
    size_t lasts;
    size_t live;     // firsts - lasts
    registry_t *reg; // to check the topic is (still) there
} hooks_t;

static void s_on_first(registry_topic_t *t, void *arg)
{
    hooks_t *h = arg;
    //  after the first member joined
    assert_int_equal(t->count, 1);
    assert_null(t->user);
    assert_ptr_equal(
        registry_lookup(h->reg, t->ns, t->ns_len, t->topic, t->topic_len), t);
    //  the mesh hangs its state here
    t->user = malloc(16);
    assert_non_null(t->user);
    h->firsts++;
    h->live++;
}

static void s_on_last(registry_topic_t *t, void *arg)
{
    hooks_t *h = arg;
    //  before the topic with no member left is freed
    assert_int_equal(t->count, 0);
    assert_non_null(t->user);
    free(t->user);
    t->user = NULL;
    assert_true(h->live > 0);
    h->lasts++;
    h->live--;
}

// --- join and leave ----------------------------------------------------------

static void test_join_and_leave_are_idempotent(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    assert_non_null(r);
    conn_t a, b;
    s_conn_init(&a, 1);
    s_conn_init(&b, 2);

    assert_int_equal(s_join(r, &a, "chat", "room-1"), 1);
    assert_int_equal(s_join(r, &a, "chat", "room-1"), 0);
    assert_int_equal(a.reg.count, 1);
    assert_int_equal(registry_memberships(r), 1);
    assert_int_equal(registry_topics(r), 1);

    assert_int_equal(s_join(r, &b, "chat", "room-1"), 1);
    registry_topic_t *t = s_lookup(r, "chat", "room-1");
    assert_non_null(t);
    assert_int_equal(t->count, 2);
    assert_true(s_has_member(t, &a));
    assert_true(s_has_member(t, &b));
    assert_int_equal(t->ns_len, 4);
    assert_memory_equal(t->ns, "chat", 4);
    assert_int_equal(t->topic_len, 6);
    assert_memory_equal(t->topic, "room-1", 6);

    assert_int_equal(s_leave(r, &a, "chat", "room-1"), 1);
    assert_int_equal(s_leave(r, &a, "chat", "room-1"), 0);
    assert_int_equal(a.reg.count, 0);
    assert_null(a.reg.first);
    t = s_lookup(r, "chat", "room-1");
    assert_non_null(t);
    assert_int_equal(t->count, 1);
    assert_ptr_equal(registry_member(t, 0), &b);
    //  leaving a topic that does not exist
    assert_int_equal(s_leave(r, &a, "chat", "nowhere"), 0);
    assert_int_equal(s_leave(r, &a, "other", "room-1"), 0);
    assert_int_equal(registry_memberships(r), 1);

    registry_destroy(&r);
    assert_null(r);
    registry_destroy(&r); // twice is fine
}

static void test_empty_topics_are_removed(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    conn_t a, b;
    s_conn_init(&a, 1);
    s_conn_init(&b, 2);
    assert_int_equal(s_join(r, &a, "chat", "room-1"), 1);
    assert_int_equal(s_join(r, &b, "chat", "room-1"), 1);
    assert_int_equal(s_join(r, &a, "chat", "room-2"), 1);
    assert_int_equal(registry_topics(r), 2);

    assert_int_equal(s_leave(r, &a, "chat", "room-2"), 1);
    assert_null(s_lookup(r, "chat", "room-2"));
    assert_int_equal(registry_topics(r), 1);

    assert_int_equal(s_leave(r, &a, "chat", "room-1"), 1);
    assert_non_null(s_lookup(r, "chat", "room-1"));
    assert_int_equal(s_leave(r, &b, "chat", "room-1"), 1);
    assert_null(s_lookup(r, "chat", "room-1"));
    assert_int_equal(registry_topics(r), 0);
    assert_int_equal(registry_memberships(r), 0);
    assert_null(registry_first(r));

    //  a topic can come back after it was removed
    assert_int_equal(s_join(r, &b, "chat", "room-1"), 1);
    assert_int_equal(registry_topics(r), 1);
    registry_destroy(&r);
}

static void test_names_are_taken_by_length(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    conn_t a;
    s_conn_init(&a, 1);
    //  not NUL-terminated where the lengths end
    const char *text = "chatroom-1-and-more";
    assert_int_equal(registry_join(r, &a.reg, text, 4, text + 4, 6), 1);
    assert_non_null(s_lookup(r, "chat", "room-1"));
    assert_int_equal(s_join(r, &a, "chat", "room-1"), 0);
    //  the split between namespace and topic matters
    assert_int_equal(s_join(r, &a, "cha", "troom-1"), 1);
    assert_int_equal(s_join(r, &a, "chatr", "oom-1"), 1);
    assert_int_equal(registry_topics(r), 3);
    //  empty parts are still names
    assert_int_equal(s_join(r, &a, "", "x"), 1);
    assert_int_equal(s_join(r, &a, "x", ""), 1);
    assert_int_equal(registry_topics(r), 5);
    assert_int_equal(a.reg.count, 5);
    //  the longest names the protocol allows
    char ns[WIRE_MAX_NAME + 1], topic[WIRE_MAX_NAME + 1];
    memset(ns, 'n', sizeof ns);
    memset(topic, 't', sizeof topic);
    assert_int_equal(
        registry_join(r, &a.reg, ns, WIRE_MAX_NAME, topic, WIRE_MAX_NAME), 1);
    registry_topic_t *t =
        registry_lookup(r, ns, WIRE_MAX_NAME, topic, WIRE_MAX_NAME);
    assert_non_null(t);
    assert_int_equal(t->ns_len, WIRE_MAX_NAME);
    assert_int_equal(t->topic_len, WIRE_MAX_NAME);
    assert_memory_equal(t->topic, topic, WIRE_MAX_NAME);
    registry_leave_all(r, &a.reg);
    assert_int_equal(registry_topics(r), 0);
    registry_destroy(&r);
}

static void test_hooks_once_per_topic_life(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    hooks_t h = {.reg = r};
    registry_set_hooks(r, s_on_first, s_on_last, &h);
    conn_t a, b;
    s_conn_init(&a, 1);
    s_conn_init(&b, 2);

    assert_int_equal(s_join(r, &a, "chat", "room-1"), 1);
    assert_int_equal(h.firsts, 1);
    assert_int_equal(s_join(r, &a, "chat", "room-1"), 0);
    assert_int_equal(s_join(r, &b, "chat", "room-1"), 1);
    assert_int_equal(h.firsts, 1); // not for the second member
    assert_int_equal(s_leave(r, &a, "chat", "room-1"), 1);
    assert_int_equal(h.lasts, 0); // b is still there
    assert_int_equal(s_leave(r, &a, "chat", "room-1"), 0);
    assert_int_equal(s_leave(r, &b, "chat", "room-1"), 1);
    assert_int_equal(h.lasts, 1);
    assert_int_equal(s_leave(r, &b, "chat", "room-1"), 0);
    assert_int_equal(h.lasts, 1);

    //  a second life of the same topic is a second pair of calls
    assert_int_equal(s_join(r, &b, "chat", "room-1"), 1);
    assert_int_equal(h.firsts, 2);
    registry_leave_all(r, &b.reg);
    assert_int_equal(h.lasts, 2);
    assert_int_equal(h.live, 0);

    //  without hooks nothing is called
    registry_set_hooks(r, NULL, NULL, NULL);
    assert_int_equal(s_join(r, &a, "chat", "room-1"), 1);
    assert_int_equal(s_leave(r, &a, "chat", "room-1"), 1);
    assert_int_equal(h.firsts, 2);
    registry_destroy(&r);
}

static void test_leave_all_cleans_every_topic_of_a_client(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    hooks_t h = {.reg = r};
    registry_set_hooks(r, s_on_first, s_on_last, &h);
    conn_t a, b;
    s_conn_init(&a, 1);
    s_conn_init(&b, 2);
    char topic[32];
    for (int i = 0; i < 100; i++) {
        snprintf(topic, sizeof topic, "room-%d", i);
        assert_int_equal(s_join(r, &a, "chat", topic), 1);
        if (i % 3 == 0) {
            assert_int_equal(s_join(r, &b, "chat", topic), 1);
        }
    }
    assert_int_equal(a.reg.count, 100);
    assert_int_equal(b.reg.count, 34);
    assert_int_equal(registry_memberships(r), 134);

    registry_leave_all(r, &a.reg);
    assert_int_equal(a.reg.count, 0);
    assert_null(a.reg.first);
    assert_int_equal(registry_topics(r), 34);
    assert_int_equal(registry_memberships(r), 34);
    assert_int_equal(h.lasts, 66);
    for (int i = 0; i < 100; i++) {
        snprintf(topic, sizeof topic, "room-%d", i);
        registry_topic_t *t = s_lookup(r, "chat", topic);
        if (i % 3 == 0) {
            assert_non_null(t);
            assert_int_equal(t->count, 1);
            assert_ptr_equal(registry_member(t, 0), &b);
        } else {
            assert_null(t);
        }
    }
    //  a client in nothing: a no-op; then it can join again
    registry_leave_all(r, &a.reg);
    assert_int_equal(s_join(r, &a, "chat", "room-0"), 1);
    registry_leave_all(r, &a.reg);
    registry_leave_all(r, &b.reg);
    assert_int_equal(registry_topics(r), 0);
    assert_int_equal(h.live, 0);
    registry_destroy(&r);
}

static void test_iterate_topics(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    conn_t a;
    s_conn_init(&a, 1);
    bool seen[10] = {false};
    char topic[32];
    for (int i = 0; i < 10; i++) {
        snprintf(topic, sizeof topic, "room-%d", i);
        assert_int_equal(s_join(r, &a, "chat", topic), 1);
    }
    size_t n = 0;
    for (registry_topic_t *t = registry_first(r); t; t = registry_next(r)) {
        int i;
        assert_int_equal(sscanf(t->topic, "room-%d", &i), 1);
        assert_in_range(i, 0, 9);
        assert_false(seen[i]);
        seen[i] = true;
        n++;
    }
    assert_int_equal(n, 10);
    registry_destroy(&r); // with members still in: nothing leaks
}

//  Swapping the last member into a hole keeps the dense array right.
static void test_members_stay_dense(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    enum { N = 40 };
    conn_t conns[N];
    for (int i = 0; i < N; i++) {
        s_conn_init(&conns[i], i);
        assert_int_equal(s_join(r, &conns[i], "chat", "big"), 1);
    }
    //  leave from the front, the middle and the back
    int order[] = {0, 39, 20, 1, 38, 19, 21, 2};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        assert_int_equal(s_leave(r, &conns[order[k]], "chat", "big"), 1);
        registry_topic_t *t = s_lookup(r, "chat", "big");
        assert_int_equal(t->count, N - 1 - k);
        for (int i = 0; i < N; i++) {
            bool left = false;
            for (size_t j = 0; j <= k; j++) {
                left = left || order[j] == i;
            }
            assert_int_equal(s_has_member(t, &conns[i]), !left);
        }
    }
    registry_destroy(&r);
}

//  A leave moves the last member into the place of the one that left, and
//  nothing else moves: a walk from the end (fanout's) survives the member
//  of the current turn leaving.
static void test_a_leave_moves_the_last_member_into_its_place(void **state)
{
    (void)state;
    registry_t *r = registry_new();
    conn_t conns[5];
    for (int i = 0; i < 5; i++) {
        s_conn_init(&conns[i], i);
        assert_int_equal(s_join(r, &conns[i], "chat", "room"), 1);
    }
    registry_topic_t *t = s_lookup(r, "chat", "room");
    assert_int_equal(s_leave(r, &conns[1], "chat", "room"), 1);
    const conn_t *expect[] = {&conns[0], &conns[4], &conns[2], &conns[3]};
    assert_int_equal(t->count, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_ptr_equal(registry_member(t, i), expect[i]);
    }
    assert_int_equal(s_leave(r, &conns[3], "chat", "room"), 1); // the last
    assert_int_equal(t->count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_ptr_equal(registry_member(t, i), expect[i]);
    }
    registry_destroy(&r);
}

// --- randomized against a model ----------------------------------------------

#define CLIENTS 50
#define TOPICS  200
#define STEPS   20000

static uint64_t s_seed;

static uint64_t s_rand(void)
{
    uint64_t z = (s_seed += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    registry_t *reg;
    hooks_t hooks;
    conn_t conns[CLIENTS];
    char ns[TOPICS][16];
    char topic[TOPICS][16];
    bool in[CLIENTS][TOPICS]; // the model
} world_t;

static size_t s_column(const world_t *w, int t)
{
    size_t n = 0;
    for (int c = 0; c < CLIENTS; c++) {
        n += w->in[c][t];
    }
    return n;
}

static size_t s_row(const world_t *w, int c)
{
    size_t n = 0;
    for (int t = 0; t < TOPICS; t++) {
        n += w->in[c][t];
    }
    return n;
}

static registry_topic_t *s_topic_of(world_t *w, int t)
{
    return s_lookup(w->reg, w->ns[t], w->topic[t]);
}

//  One topic against its column of the model.
static void s_check_topic(world_t *w, int t)
{
    registry_topic_t *topic = s_topic_of(w, t);
    size_t want = s_column(w, t);
    if (want == 0) {
        assert_null(topic);
        return;
    }
    assert_non_null(topic);
    assert_int_equal(topic->count, want);
    assert_non_null(topic->user); // on_first ran, on_last did not
    bool seen[CLIENTS] = {false};
    for (size_t i = 0; i < topic->count; i++) {
        conn_t *owner = registry_member(topic, i);
        assert_true(owner >= &w->conns[0] && owner < &w->conns[CLIENTS]);
        int c = owner->id;
        assert_ptr_equal(owner, &w->conns[c]);
        assert_false(seen[c]);
        seen[c] = true;
        assert_true(w->in[c][t]);
    }
}

static void s_check_all(world_t *w)
{
    size_t total = 0, live = 0;
    for (int t = 0; t < TOPICS; t++) {
        s_check_topic(w, t);
        live += s_column(w, t) > 0;
    }
    for (int c = 0; c < CLIENTS; c++) {
        size_t row = s_row(w, c);
        assert_int_equal(w->conns[c].reg.count, row);
        assert_int_equal(w->conns[c].reg.first == NULL, row == 0);
        total += row;
    }
    assert_int_equal(registry_memberships(w->reg), total);
    assert_int_equal(registry_topics(w->reg), live);
    assert_int_equal(w->hooks.live, live);
    //  iteration sees only topics with members
    size_t n = 0;
    for (registry_topic_t *topic = registry_first(w->reg); topic;
         topic = registry_next(w->reg)) {
        assert_true(topic->count > 0);
        n++;
    }
    assert_int_equal(n, live);
}

static void test_random_operations_match_a_model(void **state)
{
    (void)state;
    world_t *w = calloc(1, sizeof *w);
    assert_non_null(w);
    s_seed = 0x5eed0001;
    w->reg = registry_new();
    w->hooks.reg = w->reg;
    registry_set_hooks(w->reg, s_on_first, s_on_last, &w->hooks);
    for (int c = 0; c < CLIENTS; c++) {
        s_conn_init(&w->conns[c], c);
    }
    for (int t = 0; t < TOPICS; t++) {
        snprintf(w->ns[t], sizeof w->ns[t], "ns%d", t % 3);
        snprintf(w->topic[t], sizeof w->topic[t], "room-%d", t);
    }
    size_t joins = 0, leaves = 0, alls = 0;
    for (int step = 0; step < STEPS; step++) {
        int c = (int)(s_rand() % CLIENTS);
        int t = (int)(s_rand() % TOPICS);
        unsigned op = (unsigned)(s_rand() % 100);
        conn_t *conn = &w->conns[c];
        //  phases that fill and drain, so topics die and come back often
        unsigned join_pct = (step / 2500) % 2 ? 10 : 60;
        if (op >= join_pct && op < 97 && s_rand() % 2) {
            //  half the leaves hit a topic the client is in, if any
            int k = (int)(s_rand() % TOPICS);
            for (int j = 0; j < TOPICS && !w->in[c][t]; j++) {
                t = (k + j) % TOPICS;
            }
        }
        if (op < join_pct) {
            int rc = s_join(w->reg, conn, w->ns[t], w->topic[t]);
            assert_int_equal(rc, w->in[c][t] ? 0 : 1);
            w->in[c][t] = true;
            joins++;
        } else if (op < 97) {
            int rc = s_leave(w->reg, conn, w->ns[t], w->topic[t]);
            assert_int_equal(rc, w->in[c][t] ? 1 : 0);
            w->in[c][t] = false;
            leaves++;
        } else {
            registry_leave_all(w->reg, &conn->reg);
            for (int k = 0; k < TOPICS; k++) {
                if (w->in[c][k]) {
                    w->in[c][k] = false;
                    s_check_topic(w, k);
                }
            }
            alls++;
        }
        //  every step: what it touched
        s_check_topic(w, t);
        assert_int_equal(conn->reg.count, s_row(w, c));
        if (step % 100 == 99) {
            s_check_all(w);
        }
    }
    s_check_all(w);
    assert_true(joins > 0 && leaves > 0 && alls > 0);
    assert_int_equal(w->hooks.firsts - w->hooks.lasts, registry_topics(w->reg));
    print_message("topic lives: %zu, joins %zu leaves %zu leave_all %zu\n",
                  w->hooks.firsts, joins, leaves, alls);
    //  topics died and came back many times
    assert_true(w->hooks.lasts > 1000);
    for (int c = 0; c < CLIENTS; c++) {
        registry_leave_all(w->reg, &w->conns[c].reg);
    }
    assert_int_equal(registry_topics(w->reg), 0);
    assert_int_equal(registry_memberships(w->reg), 0);
    assert_int_equal(w->hooks.live, 0);
    registry_destroy(&w->reg);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_and_leave_are_idempotent),
        cmocka_unit_test(test_empty_topics_are_removed),
        cmocka_unit_test(test_names_are_taken_by_length),
        cmocka_unit_test(test_hooks_once_per_topic_life),
        cmocka_unit_test(test_leave_all_cleans_every_topic_of_a_client),
        cmocka_unit_test(test_iterate_topics),
        cmocka_unit_test(test_members_stay_dense),
        cmocka_unit_test(test_a_leave_moves_the_last_member_into_its_place),
        cmocka_unit_test(test_random_operations_match_a_model),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
