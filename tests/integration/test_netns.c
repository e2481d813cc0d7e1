/*  Three hosts: one network namespace per sidecar, joined by a bridge, so
    the mesh crosses real (virtual) interfaces with their own addresses
    instead of loopback. Needs root and `ip netns`; skipped otherwise.

      ns A: br0 192.0.2.1/24, ports vb0 and vc0
      ns B: vb1 192.0.2.2/24  (veth to vb0)
      ns C: vc1 192.0.2.3/24  (veth to vc0)

    192.0.2.0/24 is TEST-NET-1 and only exists inside these namespaces.
    Every sidecar runs as `ip netns exec NS roomcastd ...` (a wrapper script
    given to the harness as $ROOMCASTD, so the harness starts, tracks and
    kills it); this process stays in the root namespace and talks to each
    sidecar through its Unix socket, which network namespaces do not
    scope. Namespaces, links and files are removed at exit, on SIGTERM,
    SIGINT and SIGHUP, and when the harness deadline fires (netns.c, shared
    with test_netns_partition.c). */
#include "harness.h"
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define HOSTS 3
#define PORT  "7440" // free in namespaces nothing else uses
#define WAIT  10000

static const char *const s_addr[HOSTS] = {"192.0.2.1", "192.0.2.2",
                                          "192.0.2.3"};

static rcd_t s_d[HOSTS]; // the sidecars

// --- the network -------------------------------------------------------------

//  The bridge in A, a veth from it to each other namespace, addresses,
//  every link up. Returns false (ip said why on stderr) to skip.
static bool s_make_links(void)
{
    char *a = (char *)netns_name(0), *b = (char *)netns_name(1),
         *c = (char *)netns_name(2);
    char *const cmds[][16] = {
        {"ip", "-n", a, "link", "add", "br0", "type", "bridge", NULL},
        {"ip", "-n", a, "addr", "add", "192.0.2.1/24", "dev", "br0", NULL},
        {"ip", "-n", a, "link", "set", "br0", "up", NULL},
        {"ip", "-n", a, "link", "add", "vb0", "type", "veth", "peer", "name",
         "vb1", "netns", b, NULL},
        {"ip", "-n", a, "link", "set", "vb0", "master", "br0", "up", NULL},
        {"ip", "-n", b, "addr", "add", "192.0.2.2/24", "dev", "vb1", NULL},
        {"ip", "-n", b, "link", "set", "vb1", "up", NULL},
        {"ip", "-n", a, "link", "add", "vc0", "type", "veth", "peer", "name",
         "vc1", "netns", c, NULL},
        {"ip", "-n", a, "link", "set", "vc0", "master", "br0", "up", NULL},
        {"ip", "-n", c, "addr", "add", "192.0.2.3/24", "dev", "vc1", NULL},
        {"ip", "-n", c, "link", "set", "vc1", "up", NULL},
        {"ip", "-n", a, "link", "set", "lo", "up", NULL},
        {"ip", "-n", b, "link", "set", "lo", "up", NULL},
        {"ip", "-n", c, "link", "set", "lo", "up", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (netns_run(netns_ip_path(), cmds[i], false, NULL, 0) != 0) {
            return false;
        }
    }
    return true;
}

// --- the test ----------------------------------------------------------------

static void s_start_host(rcd_t *d, int i, const char *key)
{
    char bind[64], peers[HOSTS][64], name[16];
    snprintf(bind, sizeof bind, "tcp://%s:%s", s_addr[i], PORT);
    snprintf(name, sizeof name, "host-%c", 'a' + i);
    const char *args[32] = {"--name",     name, "--bind",      bind,
                            "--key-file", key,  "--heartbeat", "100"};
    int n = 8;
    for (int j = 0; j < HOSTS; j++) {
        if (j != i) {
            snprintf(peers[j], sizeof peers[j], "tcp://%s:%s", s_addr[j], PORT);
            args[n++] = "--peer";
            args[n++] = peers[j];
        }
    }
    args[n] = NULL;
    assert_int_equal(netns_start(d, i, "netns", args), 0);
}

typedef struct {
    rcd_t *d;
    int n;
} hosts_t;

//  Every sidecar hears both others.
static bool s_all_live(void *arg)
{
    hosts_t *h = arg;
    for (int i = 0; i < h->n; i++) {
        if (sidecar_counter(h->d[i].socket, "live_peers") != h->n - 1) {
            return false;
        }
    }
    return true;
}

static void s_expect_bytes(rc_client_t *c, const uint8_t *data, size_t len,
                           bool binary, uint64_t seq, const char *origin,
                           const char *node)
{
    rc_msg_t *m;
    if (rc_recv(c, &m, WAIT)) {
        fail_msg("no message %llu: %s", (unsigned long long)seq,
                 rc_strerror(errno));
    }
    assert_int_equal(rc_msg_size(m), len);
    assert_memory_equal(rc_msg_data(m), data, len);
    assert_int_equal(rc_msg_is_binary(m), binary);
    assert_int_equal(rc_msg_sequence(m), seq);
    assert_string_equal(rc_msg_namespace(m), "netns");
    assert_string_equal(rc_msg_topic(m), "all-bytes");
    assert_string_equal(rc_msg_origin(m), origin);
    assert_string_equal(rc_msg_origin_node(m), node);
    rc_msg_destroy(&m);
}

static void test_three_hosts_in_namespaces(void **state)
{
    (void)state;
    netns_skip_if_unavailable(s_make_links);
    const char *key = netns_make_files("/tmp/roomcast-netns");
    rcd_t *d = s_d; // static: the harness cleans up after a failure
    for (int i = 0; i < HOSTS; i++) {
        s_start_host(&d[i], i, key);
    }
    hosts_t all = {d, HOSTS};
    assert_true(wait_for(s_all_live, &all, NULL, WAIT));

    //  B and C subscribe, confirmed by every live peer (A among them)
    rc_client_t *pub = rcd_client(&d[0], NULL), *sub[HOSTS] = {NULL};
    assert_non_null(pub);
    for (int i = 1; i < HOSTS; i++) {
        sub[i] = rcd_client(&d[i], NULL);
        assert_non_null(sub[i]);
        assert_int_equal(rc_subscribe_wait(sub[i], "netns", "all-bytes", WAIT),
                         0);
    }
    uint8_t every[256];
    for (int i = 0; i < 256; i++) {
        every[i] = (uint8_t)i;
    }
    assert_int_equal(
        rc_publish(pub, "netns", "all-bytes", every, sizeof every, RC_BINARY),
        0);
    //  a second message, same stream: a duplicate of the first would come
    //  before it (per origin, per topic FIFO)
    assert_int_equal(rc_publish(pub, "netns", "all-bytes", "end", 3, RC_TEXT),
                     0);
    assert_int_equal(rc_flush(pub, WAIT), 0);
    char origin[RC_ID_HEX_SIZE], node[RC_ID_HEX_SIZE];
    snprintf(origin, sizeof origin, "%s", rc_instance_id(pub));
    snprintf(node, sizeof node, "%s", rc_node_id(pub));
    for (int i = 1; i < HOSTS; i++) {
        s_expect_bytes(sub[i], every, sizeof every, true, 1, origin, node);
        s_expect_bytes(sub[i], (const uint8_t *)"end", 3, false, 2, origin,
                       node);
        rc_msg_t *m;
        assert_int_equal(rc_recv(sub[i], &m, 0), -1);
        assert_int_equal(sidecar_counter(d[i].socket, "env_received"), 2);
        assert_int_equal(sidecar_counter(d[i].socket, "env_duplicates"), 0);
        assert_int_equal(sidecar_counter(d[i].socket, "gaps"), 0);
    }
    assert_int_equal(sidecar_counter(d[0].socket, "env_sent"), 2);

    rc_close(&pub);
    for (int i = 1; i < HOSTS; i++) {
        rc_close(&sub[i]);
    }
    for (int i = 0; i < HOSTS; i++) {
        assert_int_equal(rcd_stop(&d[i], SIGTERM), 0);
        rcd_cleanup(&d[i]);
    }
    netns_cleanup();
    for (int i = 0; i < HOSTS; i++) {
        char path[128];
        snprintf(path, sizeof path, "/run/netns/%s", netns_name(i));
        assert_int_equal(access(path, F_OK), -1);
    }
}

int main(void)
{
    harness_deadline(50);
    netns_prepare("roomcast", HOSTS, s_d);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_hosts_in_namespaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
