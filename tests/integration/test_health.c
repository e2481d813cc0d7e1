/*  Health never lies: with seeds configured, a sidecar is not ready until
    it has joined; seeds that never answer and a wrong cluster key keep it
    not ready (apps, /readyz) and are said in the log at a warning level,
    on both sides. */
#include "harness.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct {
    rc_status_t last;
    int statuses;
} health_t;

static void s_on_status(rc_client_t *c, const rc_status_t *st, void *arg)
{
    (void)c;
    health_t *h = arg;
    h->last = *st;
    h->statuses++;
}

static rc_client_t *s_app(const rcd_t *d, health_t *h)
{
    rc_options_t o;
    rc_options_init(&o);
    o.on_status = s_on_status;
    o.arg = h;
    rc_client_t *c = rcd_client(d, &o);
    assert_non_null(c);
    return c;
}

static bool s_logged(const rcd_t *d, const char *word, const char *also)
{
    FILE *f = fopen(d->log, "r");
    bool found = false;
    char line[2048];
    while (f && !found && fgets(line, sizeof line, f)) {
        found = strstr(line, word) && (!also || strstr(line, also));
    }
    if (f) {
        fclose(f);
    }
    return found;
}

typedef struct {
    const rcd_t *d;
    const char *word, *also;
} logwait_t;

static bool s_log_has(void *arg)
{
    logwait_t *w = arg;
    return s_logged(w->d, w->word, w->also);
}

typedef struct {
    int port;
    const char *want; // "HTTP/1.1 200" or "HTTP/1.1 503"
} ready_t;

static bool s_readyz(void *arg)
{
    ready_t *r = arg;
    return strncmp(http_get(r->port, "/readyz"), r->want, strlen(r->want)) == 0;
}

typedef struct {
    rcd_t d;
    char key[300];
    char bind[64], gossip[32], http[32];
    int http_port, gossip_port;
    const char *extra[16];
} node_t;

//  A sidecar with membership and HTTP; join: a HOST:PORT seed or NULL.
static void s_node(node_t *n, const char *key, const char *join)
{
    memset(n, 0, sizeof *n);
    snprintf(n->key, sizeof n->key, "%s", key);
    snprintf(n->bind, sizeof n->bind, "tcp://127.0.0.1:%d", free_port());
    n->gossip_port = free_port();
    snprintf(n->gossip, sizeof n->gossip, "127.0.0.1:%d", n->gossip_port);
    n->http_port = free_port();
    snprintf(n->http, sizeof n->http, "127.0.0.1:%d", n->http_port);
    const char **a = n->extra;
    int k = 0;
    a[k++] = "--key-file";
    a[k++] = n->key;
    a[k++] = "--bind";
    a[k++] = n->bind;
    a[k++] = "--gossip";
    a[k++] = n->gossip;
    a[k++] = "--http";
    a[k++] = n->http;
    a[k++] = "--heartbeat";
    a[k++] = "100";
    if (join) {
        a[k++] = "--join";
        a[k++] = join;
    }
    a[k] = NULL;
    assert_int_equal(rcd_start(&n->d, "health", n->extra), 0);
}

static void s_stop(node_t *n)
{
    assert_int_equal(rcd_stop(&n->d, SIGTERM), 0);
    rcd_cleanup(&n->d);
}

//  A seed nobody answers at: not ready, for good, and said.
static void test_unanswered_seed_is_not_ready(void **state)
{
    (void)state;
    char key[300], seed[32];
    snprintf(key, sizeof key, "/tmp/roomcast-health-%d.key", (int)getpid());
    assert_int_equal(write_key(key), 0);
    snprintf(seed, sizeof seed, "127.0.0.1:%d", free_port()); // silent
    node_t n;
    s_node(&n, key, seed);
    health_t h = {0};
    rc_client_t *app = s_app(&n.d, &h);
    rc_client_t *both[] = {app, NULL};
    logwait_t warned = {&n.d, "not_joined", "seeds=1"};
    assert_true(wait_for(s_log_has, &warned, both, 10000));
    assert_true(s_logged(&n.d, "warn", "not_joined"));
    assert_false(h.last.readable);
    assert_false(h.last.writable);
    assert_true(strstr(h.last.detail, "not joined") != NULL);
    ready_t r = {n.http_port, "HTTP/1.1 503"};
    assert_true(s_readyz(&r));
    assert_non_null(strstr(http_get(n.http_port, "/readyz"), "not joined"));
    rc_close(&app);
    s_stop(&n);
    unlink(key);
}

//  A sidecar holding another key joins a live one: it is not ready, the
//  live side warns with its address, the live side stays ready; with the
//  right key the same join makes both ready.
static void test_wrong_key_is_not_ready_and_said(void **state)
{
    (void)state;
    char key[300], other[300];
    snprintf(key, sizeof key, "/tmp/roomcast-health-%d.key", (int)getpid());
    snprintf(other, sizeof other, "/tmp/roomcast-health-%d.other",
             (int)getpid());
    assert_int_equal(write_key(key), 0);
    assert_int_equal(write_key(other), 0);
    node_t a, b, c;
    s_node(&a, key, NULL); // the first of a cluster: no seed, ready alone
    ready_t a_ready = {a.http_port, "HTTP/1.1 200"};
    assert_true(wait_for(s_readyz, &a_ready, NULL, 5000));

    s_node(&b, other, a.gossip);
    health_t hb = {0};
    rc_client_t *app = s_app(&b.d, &hb);
    rc_client_t *both[] = {app, NULL};
    char from[48];
    snprintf(from, sizeof from, "from=127.0.0.1:%d", b.gossip_port);
    logwait_t live_side = {&a.d, "gossip_undecryptable", from};
    assert_true(wait_for(s_log_has, &live_side, both, 10000));
    logwait_t new_side = {&b.d, "not_joined", NULL};
    assert_true(wait_for(s_log_has, &new_side, both, 10000));
    assert_false(hb.last.readable);
    assert_false(hb.last.writable);
    ready_t b_ready = {b.http_port, "HTTP/1.1 503"};
    assert_true(s_readyz(&b_ready));
    assert_true(s_readyz(&a_ready));
    rc_close(&app);
    s_stop(&b);

    s_node(&c, key, a.gossip);
    ready_t c_ready = {c.http_port, "HTTP/1.1 200"};
    assert_true(wait_for(s_readyz, &c_ready, NULL, 10000));
    assert_true(wait_for(s_readyz, &a_ready, NULL, 10000));
    s_stop(&c);
    s_stop(&a);
    unlink(key);
    unlink(other);
}

typedef struct {
    bool writable;
} wbit_t;

static void s_on_wstatus(rc_client_t *c, const rc_status_t *st, void *arg)
{
    (void)c;
    ((wbit_t *)arg)->writable = st->state == RC_CONNECTED && st->writable;
}

static bool s_writable(void *arg)
{
    return ((wbit_t *)arg)->writable;
}

//  Writable means heard: a sidecar restarted under its app says writable
//  only once its peer hears it, so what the app publishes at that moment
//  reaches the peer's subscriber, every time (it used to say "cluster of
//  one", writable, at once, and lost 1 to 3 messages in 4 of 11 tries).
static void test_writable_means_a_peer_hears_us(void **state)
{
    (void)state;
    char key[300], ep[2][64];
    snprintf(key, sizeof key, "/tmp/roomcast-health-%d.wkey", (int)getpid());
    assert_int_equal(write_key(key), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(ep[i], sizeof ep[i], "tcp://127.0.0.1:%d", free_port());
    }
    //  A, the first of the cluster; B joins it by gossip at every start
    char gossip[2][32];
    for (int i = 0; i < 2; i++) {
        snprintf(gossip[i], sizeof gossip[i], "127.0.0.1:%d", free_port());
    }
    const char *args[2][20];
    rcd_t d[2];
    for (int i = 0; i < 2; i++) {
        const char *a[] = {"--key-file",
                           key,
                           "--bind",
                           ep[i],
                           "--gossip",
                           gossip[i],
                           "--heartbeat",
                           "100",
                           "--probe-interval",
                           "200",
                           "--probe-timeout",
                           "100",
                           i ? "--join" : NULL,
                           gossip[0],
                           NULL};
        memcpy(args[i], a, sizeof a);
        assert_int_equal(rcd_start(&d[i], "health", args[i]), 0);
    }
    assert_true(wait_live_peers(d[0].socket, 1, 10000));
    rc_client_t *sub = rcd_client(&d[0], NULL);
    assert_non_null(sub);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "w", 10000), 0);
    for (int round = 0; round < 10; round++) {
        assert_int_equal(rcd_stop(&d[1], SIGKILL), 128 + SIGKILL);
        assert_int_equal(rcd_restart(&d[1], "health", args[1]), 0);
        wbit_t w = {false};
        rc_options_t o;
        rc_options_init(&o);
        o.on_status = s_on_wstatus;
        o.arg = &w;
        rc_client_t *pub = rcd_client(&d[1], &o);
        assert_non_null(pub);
        rc_client_t *both[] = {pub, sub, NULL};
        assert_true(wait_for(s_writable, &w, both, 10000));
        char msg[16];
        int len = snprintf(msg, sizeof msg, "round %d", round);
        assert_int_equal(rc_publish(pub, "ns", "w", msg, (size_t)len, 0), 0);
        assert_int_equal(rc_flush(pub, 5000), 0);
        rc_msg_t *m;
        if (rc_recv(sub, &m, 5000)) {
            fail_msg("round %d: published once writable, never arrived", round);
        }
        assert_memory_equal(rc_msg_data(m), msg, (size_t)len);
        rc_msg_destroy(&m);
        rc_close(&pub);
    }
    rc_close(&sub);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rcd_stop(&d[i], SIGTERM), 0);
        rcd_cleanup(&d[i]);
    }
    unlink(key);
}

int main(void)
{
    harness_deadline(120);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unanswered_seed_is_not_ready),
        cmocka_unit_test(test_wrong_key_is_not_ready_and_said),
        cmocka_unit_test(test_writable_means_a_peer_hears_us),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
