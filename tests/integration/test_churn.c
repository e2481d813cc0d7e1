/*  A peer table that forgets: one sidecar is killed (kill -9) and
    restarted 2,000 times against a long-lived one, every life a new node
    id at the same addresses. The long-lived one is ready whenever a peer
    is up, its peer table stays bounded (what died within --tombstone,
    never past the cap), "down" counts no dead member, and a third sidecar
    started at the end gets its link at once. (Issue 16 item 5: the table
    used to only grow, to a cap of 1,024 that then kept a new member
    out.) */
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

#if defined(__SANITIZE_ADDRESS__)
#define CYCLES 200 // ASan sidecars start several times slower
#else
#define CYCLES 2000
#endif
#define CHECK_EVERY 250
#define TOMBSTONE   "1500"

typedef struct {
    char bind[64], gossip[32], http[32];
    int http_port;
    const char *argv[32];
} side_t;

static void s_side(side_t *s, const char *key, const char *join)
{
    memset(s, 0, sizeof *s);
    snprintf(s->bind, sizeof s->bind, "tcp://127.0.0.1:%d", free_port());
    snprintf(s->gossip, sizeof s->gossip, "127.0.0.1:%d", free_port());
    s->http_port = free_port();
    snprintf(s->http, sizeof s->http, "127.0.0.1:%d", s->http_port);
    const char *a[] = {"--key-file",
                       key,
                       "--bind",
                       s->bind,
                       "--gossip",
                       s->gossip,
                       "--http",
                       s->http,
                       "--heartbeat",
                       "100",
                       "--probe-interval",
                       "100",
                       "--probe-timeout",
                       "50",
                       "--suspicion-mult",
                       "1",
                       "--pushpull-interval",
                       "1000",
                       "--tombstone",
                       TOMBSTONE,
                       "--log-level",
                       "warn",
                       NULL,
                       NULL,
                       NULL};
    size_t n = sizeof a / sizeof a[0] - 3;
    memcpy(s->argv, a, sizeof a);
    if (join) {
        s->argv[n] = "--join";
        s->argv[n + 1] = join;
    }
}

static long long s_status(rc_client_t *c, const char *row)
{
    return query_counter(c, row);
}

typedef struct {
    rc_client_t *c;
    int port;
} probe_t;

static bool s_ready_with_a_peer(void *arg)
{
    probe_t *p = arg;
    return s_status(p->c, "live_peers") >= 1 &&
           strncmp(http_get(p->port, "/readyz"), "HTTP/1.1 200", 12) == 0;
}

typedef struct {
    rc_client_t *c;
} joined_t;

//  This life of B has joined: A answered it, so A holds its record.
static bool s_joined(void *arg)
{
    return query_counter(((joined_t *)arg)->c, "members_alive") >= 2;
}

static void test_two_thousand_restarts_leave_a_bounded_table(void **state)
{
    (void)state;
    char key[300];
    snprintf(key, sizeof key, "/tmp/roomcast-churn-%d.key", (int)getpid());
    assert_int_equal(write_key(key), 0);
    side_t a, b, c;
    s_side(&a, key, NULL);
    rcd_t da, db, dc;
    assert_int_equal(rcd_start(&da, "churn", a.argv), 0);
    rc_client_t *app = rcd_client(&da, NULL);
    assert_non_null(app);
    s_side(&b, key, a.gossip); // the same addresses every life
    long long table_max = 0, start = now_ms();
    for (int i = 1; i <= CYCLES; i++) {
        assert_int_equal(rcd_start_raw(&db, "churn", b.argv), 0);
        rc_client_t *bc = rcd_client(&db, NULL);
        joined_t j = {bc};
        assert_non_null(bc);
        if (!wait_for(s_joined, &j, NULL, 5000)) {
            fail_msg("cycle %d: B did not join A", i);
        }
        rc_close(&bc);
        if (i % CHECK_EVERY == 0) {
            //  this life stays: A hears it, is ready, and is not weighed
            //  down by the dead ones
            probe_t p = {app, a.http_port};
            if (!wait_for(s_ready_with_a_peer, &p, NULL, 10000)) {
                fail_msg("cycle %d: A not ready with B up (live %lld, "
                         "down %lld, table %lld)",
                         i, s_status(app, "live_peers"),
                         s_status(app, "peers_down"),
                         s_status(app, "peer_table"));
            }
        }
        long long table = s_status(app, "peer_table");
        table_max = table > table_max ? table : table_max;
        assert_true(table <= s_status(app, "peer_table_cap"));
        assert_int_equal(rcd_stop(&db, SIGKILL), 128 + SIGKILL);
        rcd_cleanup(&db);
    }
    long long secs = (now_ms() - start) / 1000 + 1;
    //  the tombstones go: what is left is what died within the last
    //  --tombstone (plus the time SWIM takes to call it dead)
    long long settle = now_ms() + 30000; // SWIM may have stretched its
    // timeouts (Lifeguard) after so many failed probes: detection is slower
    while (s_status(app, "peer_table") > 1 && now_ms() < settle) {
        usleep(100 * 1000);
    }
    long long left = s_status(app, "peer_table");
    assert_int_equal(s_status(app, "peer_table_overflows"), 0);
    printf("churn: %d restarts in %lld s; peer table at most %lld entries "
           "(cap %lld), %lld after the tombstone period\n",
           CYCLES, secs, table_max, s_status(app, "peer_table_cap"), left);
    assert_true(left <= 1);

    //  a newcomer gets its link at once
    s_side(&c, key, a.gossip);
    long long t0 = now_ms();
    assert_int_equal(rcd_start(&dc, "churn", c.argv), 0);
    assert_true(wait_live_peers(dc.socket, 1, 3000));
    assert_true(wait_live_peers(da.socket, 1, 3000));
    printf("churn: a third sidecar heard both ways %lld ms after its start\n",
           now_ms() - t0);
    probe_t p = {app, a.http_port};
    assert_true(wait_for(s_ready_with_a_peer, &p, NULL, 3000));
    assert_int_equal(s_status(app, "peers_down"), 0);
    rc_close(&app);
    assert_int_equal(rcd_stop(&dc, SIGTERM), 0);
    rcd_cleanup(&dc);
    assert_int_equal(rcd_stop(&da, SIGTERM), 0);
    rcd_cleanup(&da);
    unlink(key);
}

int main(void)
{
    harness_deadline(280);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_thousand_restarts_leave_a_bounded_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
