/*  Single-host relay, end to end: real roomcastd, apps through roomcast.h. */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

//  What a client saw, through on_message.
typedef struct {
    int count;
    int per_topic[8];
    int wrong;        // messages of a topic not subscribed
    int dup_or_order; // sequence not strictly increasing per topic
    uint64_t last_seq[8];
    bool subscribed[8];
    int errors;
    int last_error;
} seen_t;

static int s_topic_index(const char *topic)
{
    return topic[0] == 't' ? atoi(topic + 1) : -1;
}

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    seen_t *seen = arg;
    int t = s_topic_index(rc_msg_topic(m));
    seen->count++;
    if (t < 0 || t >= 8 || !seen->subscribed[t]) {
        seen->wrong++;
        return;
    }
    seen->per_topic[t]++;
    if (rc_msg_sequence(m) <= seen->last_seq[t]) {
        seen->dup_or_order++;
    }
    seen->last_seq[t] = rc_msg_sequence(m);
}

static void s_on_error(rc_client_t *c, rc_stage_t stage, int err,
                       const char *text, void *arg)
{
    (void)c;
    (void)stage;
    (void)text;
    seen_t *seen = arg;
    seen->errors++;
    seen->last_error = err;
}

static rc_client_t *s_client(const rcd_t *d, seen_t *seen)
{
    rc_options_t o;
    rc_options_init(&o);
    o.on_message = seen ? s_on_message : NULL;
    o.on_error = seen ? s_on_error : NULL;
    o.arg = seen;
    rc_client_t *c = rcd_client(d, &o);
    assert_non_null(c);
    return c;
}

typedef struct {
    seen_t *seen;
    int n;
    int want;
} all_t;

static bool s_all_have(void *arg)
{
    all_t *a = arg;
    int total = 0;
    for (int i = 0; i < a->n; i++) {
        total += a->seen[i].count;
    }
    return total >= a->want;
}

//  20 clients on 4 topics: each gets exactly its topics' messages, once,
//  and the publisher gets no echo.
static void test_twenty_clients_get_their_topics_once(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    enum { N = 20, TOPICS = 4, PER_TOPIC = 50 };
    seen_t seen[N + 1];
    rc_client_t *c[N + 2];
    memset(seen, 0, sizeof seen);
    int want = 0;
    for (int i = 0; i < N; i++) {
        c[i] = s_client(&d, &seen[i]);
        //  client i listens to topic i%4, and every fifth one to t3 too
        int topics[2] = {i % TOPICS, i % 5 == 0 ? 3 : -1};
        for (int k = 0; k < 2; k++) {
            if (topics[k] < 0 || seen[i].subscribed[topics[k]]) {
                continue;
            }
            char name[16];
            snprintf(name, sizeof name, "t%d", topics[k]);
            assert_int_equal(rc_subscribe_wait(c[i], "app", name, 5000), 0);
            seen[i].subscribed[topics[k]] = true;
            want += PER_TOPIC;
        }
    }
    //  the publisher is subscribed to everything, but sends no echo flag
    c[N] = s_client(&d, &seen[N]);
    for (int t = 0; t < TOPICS; t++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        assert_int_equal(rc_subscribe_wait(c[N], "app", name, 5000), 0);
        seen[N].subscribed[t] = true;
    }
    c[N + 1] = NULL;
    for (int k = 0; k < PER_TOPIC; k++) {
        for (int t = 0; t < TOPICS; t++) {
            char name[16], data[32];
            snprintf(name, sizeof name, "t%d", t);
            snprintf(data, sizeof data, "message %d", k);
            assert_int_equal(
                rc_publish(c[N], "app", name, data, strlen(data), RC_TEXT), 0);
        }
    }
    assert_int_equal(rc_flush(c[N], 5000), 0);
    all_t all = {seen, N, want};
    assert_true(wait_for(s_all_have, &all, c, 10000));
    //  anything extra would have arrived with the rest: a PING round trip
    //  through every client's socket proves the pipe is drained
    for (int i = 0; i < N; i++) {
        assert_true(query_counter(c[i], "clients") > 0);
        rc_dispatch(c[i]);
    }
    for (int i = 0; i < N; i++) {
        for (int t = 0; t < TOPICS; t++) {
            assert_int_equal(seen[i].per_topic[t],
                             seen[i].subscribed[t] ? PER_TOPIC : 0);
        }
        assert_int_equal(seen[i].wrong, 0);
        assert_int_equal(seen[i].dup_or_order, 0);
    }
    rc_dispatch(c[N]);
    assert_int_equal(seen[N].count, 0); // no echo
    for (int i = 0; i <= N; i++) {
        rc_close(&c[i]);
    }
    rc_close(&c[0]); // twice is safe
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  Echo: never by default, once with RC_ECHO; other local apps get both.
static void test_echo_only_when_asked(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    rc_client_t *pub = s_client(&d, NULL), *other = s_client(&d, NULL);
    assert_int_equal(rc_subscribe_wait(pub, "ns", "room", 5000), 0);
    assert_int_equal(rc_subscribe_wait(other, "ns", "room", 5000), 0);
    assert_int_equal(rc_publish(pub, "ns", "room", "one", 3, RC_TEXT), 0);
    assert_int_equal(rc_publish(pub, "ns", "room", "two", 3, RC_ECHO), 0);
    rc_msg_t *m;
    assert_int_equal(rc_recv(pub, &m, 5000), 0);
    assert_memory_equal(rc_msg_data(m), "two", 3);
    assert_string_equal(rc_msg_origin(m), rc_instance_id(pub));
    rc_msg_destroy(&m);
    assert_int_equal(rc_recv(pub, &m, 200), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(rc_recv(other, &m, 5000), 0);
    assert_memory_equal(rc_msg_data(m), "one", 3);
    assert_int_equal(rc_msg_sequence(m), 1);
    rc_msg_destroy(&m);
    assert_int_equal(rc_recv(other, &m, 5000), 0);
    assert_memory_equal(rc_msg_data(m), "two", 3);
    assert_int_equal(rc_msg_sequence(m), 2);
    rc_msg_destroy(&m);
    rc_close(&pub);
    rc_close(&other);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  RC_MORE pipelines: publishes wait in the library (the sidecar has seen
//  none, as another client's query shows) while rc_fd already polls
//  readable, so an event loop would write them; the first publish without
//  RC_MORE writes them all at once, and they arrive in order.
static void test_more_pipelines_until_the_burst_ends(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    rc_client_t *pub = s_client(&d, NULL), *sub = s_client(&d, NULL);
    rc_client_t *ctl = s_client(&d, NULL);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "room", 5000), 0);
    long long before = query_counter(ctl, "publishes");
    assert_true(before >= 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(
            rc_publish(pub, "ns", "room", "m", 1, RC_TEXT | RC_MORE), 0);
    }
    assert_int_equal(query_counter(ctl, "publishes"), before);
    struct pollfd p = {.fd = rc_fd(pub), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_int_equal(rc_publish(pub, "ns", "room", "end", 3, RC_TEXT), 0);
    rc_msg_t *m;
    for (uint64_t i = 1; i <= 101; i++) {
        assert_int_equal(rc_recv(sub, &m, 5000), 0);
        assert_int_equal(rc_msg_sequence(m), i);
        rc_msg_destroy(&m);
    }
    //  Past RC_MORE_BYTES pending the library writes without being asked.
    char big[4096] = {0};
    before = query_counter(ctl, "publishes");
    for (int i = 0; i < 2 * RC_MORE_BYTES / (int)sizeof big; i++) {
        assert_int_equal(
            rc_publish(pub, "ns", "room", big, sizeof big, RC_BINARY | RC_MORE),
            0);
    }
    for (int i = 0; i < 20; i++) {
        assert_int_equal(rc_recv(sub, &m, 5000), 0);
        rc_msg_destroy(&m);
    }
    assert_true(query_counter(ctl, "publishes") >= before + 20);
    assert_int_equal(rc_publish(pub, "ns", "room", "m", 1, 0x08), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rc_flush(pub, 5000), 0);
    rc_close(&pub);
    rc_close(&sub);
    rc_close(&ctl);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  Every byte value, text and binary kinds, and a payload at the 1 MiB
//  limit arrive unchanged; one byte more is refused.
static void test_payloads_arrive_intact(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    rc_client_t *pub = s_client(&d, NULL), *sub = s_client(&d, NULL);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "bin", 5000), 0);
    uint8_t all[256];
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
    }
    size_t big_len = 1024 * 1024;
    uint8_t *big = malloc(big_len + 1);
    assert_non_null(big);
    for (size_t i = 0; i <= big_len; i++) {
        big[i] = (uint8_t)(i * 7 + 3);
    }
    assert_int_equal(rc_publish(pub, "ns", "bin", all, 256, RC_BINARY), 0);
    assert_int_equal(rc_publish(pub, "ns", "bin", all, 256, RC_TEXT), 0);
    assert_int_equal(rc_publish(pub, "ns", "bin", NULL, 0, RC_TEXT), 0);
    assert_int_equal(rc_publish(pub, "ns", "bin", big, big_len, RC_BINARY), 0);
    assert_int_equal(rc_publish(pub, "ns", "bin", big, big_len + 1, RC_BINARY),
                     -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(rc_flush(pub, 5000), 0); // 1 MiB outgrows the socket
    rc_msg_t *m;
    assert_int_equal(rc_recv(sub, &m, 5000), 0);
    assert_true(rc_msg_is_binary(m));
    assert_int_equal(rc_msg_size(m), 256);
    assert_memory_equal(rc_msg_data(m), all, 256);
    rc_msg_destroy(&m);
    assert_int_equal(rc_recv(sub, &m, 5000), 0);
    assert_false(rc_msg_is_binary(m));
    assert_memory_equal(rc_msg_data(m), all, 256);
    rc_msg_destroy(&m);
    assert_int_equal(rc_recv(sub, &m, 5000), 0);
    assert_int_equal(rc_msg_size(m), 0);
    rc_msg_destroy(&m);
    assert_int_equal(rc_recv(sub, &m, 10000), 0);
    assert_true(rc_msg_is_binary(m));
    assert_int_equal(rc_msg_size(m), big_len);
    assert_memory_equal(rc_msg_data(m), big, big_len);
    assert_string_equal(rc_msg_topic(m), "bin");
    assert_string_equal(rc_msg_namespace(m), "ns");
    rc_msg_destroy(&m);
    free(big);
    rc_close(&pub);
    rc_close(&sub);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

typedef struct {
    uint64_t next; // sequence expected next
    uint64_t bad;  // out of order, duplicate, or wrong payload
} order_t;

static void s_on_ordered(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    order_t *o = arg;
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)o->next);
    if (rc_msg_sequence(m) != o->next || rc_msg_size(m) != strlen(want) ||
        memcmp(rc_msg_data(m), want, rc_msg_size(m)) != 0) {
        o->bad++;
    }
    o->next = rc_msg_sequence(m) + 1;
}

static bool s_order_done(void *arg)
{
    return ((order_t *)arg)->next > 100000;
}

//  One publisher's 100,000 messages arrive complete and in order.
static void test_hundred_thousand_in_order(void **state)
{
    (void)state;
    rcd_t d;
    assert_int_equal(rcd_start(&d, "itest", NULL), 0);
    order_t order = {1, 0};
    rc_options_t o;
    rc_options_init(&o);
    o.on_message = s_on_ordered;
    o.arg = &order;
    rc_client_t *sub = rcd_client(&d, &o), *pub = s_client(&d, NULL);
    assert_non_null(sub);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "seq", 5000), 0);
    rc_client_t *both[] = {sub, pub, NULL};
    for (uint64_t i = 1; i <= 100000; i++) {
        char data[32];
        int len = snprintf(data, sizeof data, "%llu", (unsigned long long)i);
        while (rc_publish(pub, "ns", "seq", data, (size_t)len, RC_TEXT)) {
            assert_int_equal(errno, EAGAIN); // a full buffer, never a loss
            rc_dispatch(sub);
            rc_dispatch(pub);
        }
        if (i % 1000 == 0) {
            rc_dispatch(sub);
        }
    }
    assert_true(wait_for(s_order_done, &order, both, 20000));
    assert_int_equal(order.bad, 0);
    assert_int_equal(order.next, 100001);
    rc_close(&sub);
    rc_close(&pub);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

typedef struct {
    rc_client_t *ctl;
    long long closed;
} slow_t;

static bool s_slow_closed(void *arg)
{
    slow_t *s = arg;
    s->closed = query_counter(s->ctl, "closed_slow");
    return s->closed >= 1;
}

static bool s_slow_told(void *arg)
{
    return ((seen_t *)arg)->last_error == ENOBUFS;
}

//  A client that never reads: its messages are dropped and counted, then
//  it is closed as a slow consumer; a reading client loses nothing.
static void test_slow_consumer_dropped_then_closed(void **state)
{
    (void)state;
    rcd_t d;
    //  the budget must hold what one batch of reads fans out (256 KiB)
    const char *extra[] = {"--queue-budget",
                           "512KiB",
                           "--max-payload",
                           "16KiB",
                           "--slow-grace",
                           "200",
                           NULL};
    assert_int_equal(rcd_start(&d, "itest", extra), 0);
    seen_t fast = {0}, slow = {0};
    fast.subscribed[1] = slow.subscribed[1] = true;
    rc_client_t *f = s_client(&d, &fast), *s = s_client(&d, &slow);
    rc_client_t *pub = s_client(&d, NULL);
    assert_int_equal(rc_subscribe_wait(f, "ns", "t1", 5000), 0);
    assert_int_equal(rc_subscribe_wait(s, "ns", "t1", 5000), 0);
    enum { MSGS = 3000 };
    char data[1024];
    memset(data, 'x', sizeof data);
    rc_client_t *readers[] = {f, pub, NULL};
    for (int i = 0; i < MSGS; i++) {
        while (rc_publish(pub, "ns", "t1", data, sizeof data, RC_TEXT)) {
            assert_int_equal(errno, EAGAIN);
            rc_dispatch(f);
            rc_dispatch(pub);
        }
        if (i % 100 == 99) {
            //  f reads as fast as it can (as its own process would): it
            //  stays within its budget while s, which never reads, does not
            all_t sofar = {&fast, 1, i + 1};
            assert_true(wait_for(s_all_have, &sofar, readers, 10000));
        }
    }
    all_t all = {&fast, 1, MSGS};
    assert_true(wait_for(s_all_have, &all, readers, 10000));
    assert_int_equal(fast.per_topic[1], MSGS);
    assert_int_equal(fast.dup_or_order, 0);
    slow_t st = {pub, 0};
    assert_true(wait_for(s_slow_closed, &st, readers, 5000));
    assert_true(query_counter(pub, "dropped_slow") > 0);
    //  the slow client, reading at last, hears why and that it was cut off
    rc_state_t before = rc_state(s);
    assert_int_equal(before, RC_CONNECTED);
    rc_client_t *just_s[] = {s, NULL};
    assert_true(wait_for(s_slow_told, &slow, just_s, 5000));
    assert_true(slow.count < MSGS);
    rc_close(&f);
    rc_close(&s);
    rc_close(&pub);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

int main(void)
{
    harness_deadline(240);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twenty_clients_get_their_topics_once),
        cmocka_unit_test(test_echo_only_when_asked),
        cmocka_unit_test(test_more_pipelines_until_the_burst_ends),
        cmocka_unit_test(test_payloads_arrive_intact),
        cmocka_unit_test(test_hundred_thousand_in_order),
        cmocka_unit_test(test_slow_consumer_dropped_then_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
