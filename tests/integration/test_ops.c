/*  The operator's endpoint: /metrics moves with traffic, /readyz follows
    the mesh, bad requests get 400. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

//  The value of a sample line "name value" in a /metrics answer, or -1.
static long long s_metric(int port, const char *sample)
{
    char *body = http_get(port, "/metrics");
    char want[200];
    snprintf(want, sizeof want, "\n%s ", sample);
    char *at = strstr(body, want);
    return at ? atoll(at + strlen(want)) : -1;
}

typedef struct {
    int port;
    const char *status;
} ready_t;

static bool s_ready_is(void *arg)
{
    ready_t *r = arg;
    return strncmp(http_get(r->port, "/readyz"), r->status,
                   strlen(r->status)) == 0;
}

static void test_metrics_follow_traffic_and_readyz_follows_peers(void **st)
{
    (void)st;
    char key[64], ba[64], bb[64], http[64];
    snprintf(key, sizeof key, "/tmp/roomcast-ops-key-%d", (int)getpid());
    assert_int_equal(write_key(key), 0);
    snprintf(ba, sizeof ba, "tcp://127.0.0.1:%d", free_port());
    snprintf(bb, sizeof bb, "tcp://127.0.0.1:%d", free_port());
    int port = free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    const char *ea[] = {"--bind",      ba,    "--peer", bb,   "--key-file", key,
                        "--heartbeat", "100", "--http", http, NULL};
    const char *eb[] = {"--bind",      bb,    "--peer", ba, "--key-file", key,
                        "--heartbeat", "100", NULL};
    rcd_t a, b;
    assert_int_equal(rcd_start(&a, "opstest", ea), 0);
    assert_int_equal(rcd_start(&b, "opstest", eb), 0);
    assert_true(wait_live_peers(a.socket, 1, 10000));
    assert_non_null(strstr(http_get(port, "/healthz"), "200 OK"));
    ready_t ready = {port, "HTTP/1.1 200"};
    assert_true(wait_for(s_ready_is, &ready, NULL, 5000));

    long long pubs = s_metric(port, "roomcast_publishes_total");
    long long sent =
        s_metric(port, "roomcast_envelopes_total{result=\"sent\"}");
    assert_true(pubs >= 0 && sent >= 0);
    rc_client_t *pub = rcd_client(&a, NULL), *sub = rcd_client(&b, NULL);
    rc_client_t *local = rcd_client(&a, NULL);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "t", 10000), 0);
    assert_int_equal(rc_subscribe_wait(local, "ns", "t", 10000), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rc_publish(pub, "ns", "t", "m", 1, 0), 0);
    }
    assert_int_equal(rc_flush(pub, 5000), 0);
    rc_msg_t *m;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rc_recv(sub, &m, 5000), 0);
        rc_msg_destroy(&m);
        assert_int_equal(rc_recv(local, &m, 5000), 0);
        rc_msg_destroy(&m);
    }
    assert_int_equal(s_metric(port, "roomcast_publishes_total"), pubs + 10);
    assert_int_equal(
        s_metric(port, "roomcast_envelopes_total{result=\"sent\"}"), sent + 10);
    assert_true(s_metric(port, "roomcast_deliveries_total") >= 10);
    assert_int_equal(s_metric(port, "roomcast_clients"), 2);
    assert_int_equal(s_metric(port, "roomcast_topics"), 1);
    assert_int_equal(s_metric(port, "roomcast_mesh_peers{state=\"live\"}"), 1);
    assert_non_null(
        strstr(http_get(port, "/metrics"),
               "roomcast_fanout_duration_seconds_bucket{le=\"+Inf\"}"));

    //  the peer dies: not readable, not writable, 503 with the reason
    assert_int_equal(rcd_stop(&b, SIGKILL), 128 + SIGKILL);
    ready_t unready = {port, "HTTP/1.1 503"};
    assert_true(wait_for(s_ready_is, &unready, NULL, 5000));
    assert_int_equal(s_metric(port, "roomcast_readable"), 0);
    assert_non_null(strstr(http_get(port, "/healthz"), "200 OK")); // still up
    //  back: ready again
    assert_int_equal(rcd_restart(&b, "opstest", eb), 0);
    assert_true(wait_for(s_ready_is, &ready, NULL, 10000));

    //  strict parsing: bad requests get 400, the endpoint keeps serving
    assert_non_null(
        strstr(http_request(port, "GET /metrics\r\n\r\n"), " 400 "));
    assert_non_null(strstr(http_request(port, "BLAH\r\n\r\n"), " 400 "));
    assert_non_null(
        strstr(http_request(port, "POST /metrics HTTP/1.1\r\n\r\n"), " 405 "));
    assert_non_null(strstr(http_get(port, "/nope"), " 404 "));
    assert_non_null(strstr(http_get(port, "/healthz"), "200 OK"));

    rc_close(&pub);
    rc_close(&sub);
    rc_close(&local);
    assert_int_equal(rcd_stop(&b, SIGTERM), 0);
    assert_int_equal(rcd_stop(&a, SIGTERM), 0);
    rcd_cleanup(&a);
    rcd_cleanup(&b);
    unlink(key);
}

int main(void)
{
    harness_deadline(60);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_follow_traffic_and_readyz_follows_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
