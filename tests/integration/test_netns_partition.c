/*  Network faults between four hosts, one network namespace each, one
    roomcastd in each, found by gossip from one seed (A):

      - partition and heal: {A, B} split from {C, D}; each half marks the
        other dead and delivers inside; after the heal one alive view and
        delivery across;
      - a lone host cut off and plugged back: the three others, which never
        lost one another, must not mark one another dead nor lose messages
        when it comes back with its news that they are dead;
      - packet loss and delay (netem): nobody is marked dead, no message is
        lost.

    Needs root and `ip netns`; skipped otherwise. The loss case also needs
    `tc` and the netem qdisc, and is skipped alone without them.

      ns A: br0 192.0.2.1/24, ports vb0 and vx0    ns C: br1 192.0.2.3/24,
      ns B: vb1 192.0.2.2/24 (veth to vb0)               ports vd0 and vx1
                                                   ns D: vd1 192.0.2.4/24
                                                         (veth to vd0)
      vx0 (A) <-> vx1 (C): the trunk between the two halves

    Taking the trunk down (both ends) splits {A, B} from {C, D} while each
    half still reaches itself; bringing it up heals. vd0 down cuts D alone.
    For the loss case, netem sits on every host's own egress (br0, vb1, br1,
    vd1): whichever two hosts talk, each direction crosses it once.

    Not covered: a split held longer than the tombstone lifetime (60 s, not
    settable), past this binary's time budget. Sidecars only ask their
    --join seeds again while alone, so two halves of two or more that have
    forgotten each other never meet again.

    192.0.2.0/24 is TEST-NET-1 and only exists inside these namespaces.
    Every sidecar runs as `ip netns exec NS roomcastd ...` (a wrapper script
    given to the harness as $ROOMCASTD, so the harness starts, tracks and
    kills it); this process stays in the root namespace and talks to each
    sidecar through its Unix socket, which network namespaces do not scope.
    Sidecars, namespaces (with their links and qdiscs) and files are removed
    after every case, passed or failed, at exit, on SIGTERM, SIGINT and
    SIGHUP, and when the harness deadline fires (netns.c, shared with
    test_netns.c). */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define HOSTS    4
#define DPORT    "7440" // data: free in namespaces nothing else uses
#define GPORT    "7441" // gossip
#define CHANNEL  "partition"
#define WAIT     10000 // ms: any single step that should take well under
#define CONVERGE 10000 // ms: a fresh cluster, everyone alive everywhere
//  ms: both halves mark the other half dead after the trunk goes down.
//  Expected: a probe reaches the lost member within 3 periods (200 ms),
//  fails in one, then suspicion runs 4 x 200 ms: about 1.6 s.
#define SPLIT_BOUND 5000
//  ms: one alive view everywhere after the trunk comes back. Expected: a
//  push-pull to a dead member (every 1000 ms), then refutations ride the
//  next probes: a few seconds.
#define HEAL_BOUND 10000
//  ms the split is held once both halves saw it: each half has gossiped
//  its news about the other out (8 sends, two packets a period: under a
//  second) before the heal. Fresh news at the heal: the lone host case.
#define HOLD_MS    2000
#define STEADY_MS  5000 // loss case: no death over this long
#define LOSSY_MSGS 200

static const char *const s_addr[HOSTS] = {"192.0.2.1", "192.0.2.2", "192.0.2.3",
                                          "192.0.2.4"};

static char s_tc[64];    // path of tc, or empty
static rcd_t s_d[HOSTS]; // the sidecars

//  Clients, closed after every case whatever happened.
#define APPS 8
static rc_client_t *s_apps[APPS];
static rc_client_t *s_watchers[HOSTS]; // membership events, one a sidecar

// --- cleanup -----------------------------------------------------------------

//  After every case, passed, failed or skipped (cmocka runs the teardown
//  whatever the case did): clients, sidecars, namespaces, files.
static int s_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < APPS; i++) {
        rc_close(&s_apps[i]);
    }
    for (int i = 0; i < HOSTS; i++) {
        rc_close(&s_watchers[i]);
    }
    for (int i = 0; i < HOSTS; i++) {
        if (s_d[i].pid > 0) {
            rcd_stop(&s_d[i], SIGKILL);
        }
        if (*s_d[i].dir) {
            rcd_cleanup(&s_d[i]);
        }
        memset(&s_d[i], 0, sizeof s_d[i]);
    }
    netns_cleanup();
    return 0;
}

// --- the network -------------------------------------------------------------

//  Two bridges, A's and C's, each with its host's address; B and D hang
//  off them; the trunk joins them. Returns false (ip said why) to skip.
static bool s_make_links(void)
{
    char *a = (char *)netns_name(0), *b = (char *)netns_name(1),
         *c = (char *)netns_name(2), *d = (char *)netns_name(3);
    char *const cmds[][16] = {
        {"ip", "-n", a, "link", "add", "br0", "type", "bridge", NULL},
        {"ip", "-n", a, "addr", "add", "192.0.2.1/24", "dev", "br0", NULL},
        {"ip", "-n", a, "link", "set", "br0", "up", NULL},
        {"ip", "-n", c, "link", "add", "br1", "type", "bridge", NULL},
        {"ip", "-n", c, "addr", "add", "192.0.2.3/24", "dev", "br1", NULL},
        {"ip", "-n", c, "link", "set", "br1", "up", NULL},
        {"ip", "-n", a, "link", "add", "vb0", "type", "veth", "peer", "name",
         "vb1", "netns", b, NULL},
        {"ip", "-n", a, "link", "set", "vb0", "master", "br0", "up", NULL},
        {"ip", "-n", b, "addr", "add", "192.0.2.2/24", "dev", "vb1", NULL},
        {"ip", "-n", b, "link", "set", "vb1", "up", NULL},
        {"ip", "-n", c, "link", "add", "vd0", "type", "veth", "peer", "name",
         "vd1", "netns", d, NULL},
        {"ip", "-n", c, "link", "set", "vd0", "master", "br1", "up", NULL},
        {"ip", "-n", d, "addr", "add", "192.0.2.4/24", "dev", "vd1", NULL},
        {"ip", "-n", d, "link", "set", "vd1", "up", NULL},
        {"ip", "-n", a, "link", "add", "vx0", "type", "veth", "peer", "name",
         "vx1", "netns", c, NULL},
        {"ip", "-n", a, "link", "set", "vx0", "master", "br0", "up", NULL},
        {"ip", "-n", c, "link", "set", "vx1", "master", "br1", "up", NULL},
        {"ip", "-n", a, "link", "set", "lo", "up", NULL},
        {"ip", "-n", b, "link", "set", "lo", "up", NULL},
        {"ip", "-n", c, "link", "set", "lo", "up", NULL},
        {"ip", "-n", d, "link", "set", "lo", "up", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (netns_run(netns_ip_path(), cmds[i], false, NULL, 0) != 0) {
            return false;
        }
    }
    return true;
}

//  The trunk, both ends: "down" splits the halves, "up" heals.
static void s_trunk(const char *updown)
{
    assert_int_equal(
        netns_ip("-n", netns_name(0), "link", "set", "vx0", updown, NULL), 0);
    assert_int_equal(
        netns_ip("-n", netns_name(2), "link", "set", "vx1", updown, NULL), 0);
}

//  Each host's own egress device.
static const char *const s_egress[HOSTS] = {"br0", "vb1", "br1", "vd1"};

//  tc -n NS qdisc add|del dev DEV root [netem loss 10% delay 20ms].
static int s_netem(int host, const char *op, char *err, size_t errlen)
{
    char *argv[] = {"tc",
                    "-n",
                    (char *)netns_name(host),
                    "qdisc",
                    (char *)op,
                    "dev",
                    (char *)s_egress[host],
                    "root",
                    strcmp(op, "add") == 0 ? "netem" : NULL,
                    "loss",
                    "10%",
                    "delay",
                    "20ms",
                    NULL};
    return netns_run(s_tc, argv, false, err, errlen);
}

static void s_skip_if_no_network(void)
{
    netns_skip_if_unavailable(s_make_links);
}

// --- the sidecars ------------------------------------------------------------

static void s_start_host(int i, const char *key)
{
    char bind[64], gossip[64], join[64], name[16];
    snprintf(bind, sizeof bind, "tcp://%s:%s", s_addr[i], DPORT);
    snprintf(gossip, sizeof gossip, "%s:%s", s_addr[i], GPORT);
    snprintf(join, sizeof join, "%s:%s", s_addr[0], GPORT);
    snprintf(name, sizeof name, "host-%c", 'a' + i);
    // clang-format off
    const char *args[] = {"--name", name,
                          "--gossip", gossip,
                          "--join", join,
                          "--bind", bind,
                          "--key-file", key,
                          "--probe-interval", "200",
                          "--probe-timeout", "100",
                          "--pushpull-interval", "1000",
                          "--heartbeat", "100",
                          NULL};
    // clang-format on
    assert_int_equal(netns_start(&s_d[i], i, CHANNEL, args), 0);
}

//  Member states as the "members" rows spell them.
enum { ST_UNKNOWN, ST_ALIVE, ST_SUSPECT, ST_DEAD, ST_LEFT };
static const char *const s_state_names[] = {"unknown", "alive", "suspect",
                                            "dead", "left"};

//  Every sidecar's view of every host.
typedef struct {
    int st[HOSTS][HOSTS];      // st[i][j]: host j as host i sees it
    char id[HOSTS][HOSTS][33]; // and its node id there
    int rows[HOSTS];           // members host i knows, itself included
} views_t;

//  "host-c" -> 2; -1 for anything else.
static int s_host_of(const char *name)
{
    if (strncmp(name, "host-", 5) == 0 && name[5] >= 'a' &&
        name[5] < 'a' + HOSTS && (name[6] == 0 || name[6] == ' ')) {
        return name[5] - 'a';
    }
    return -1;
}

static bool s_read_views(views_t *v)
{
    memset(v, 0, sizeof *v);
    for (int i = 0; i < HOSTS; i++) {
        rc_client_t *c = rc_connect(s_d[i].socket, NULL);
        rc_reply_t *r = NULL;
        if (!c || rc_query(c, "members", "", &r, 2000) != 0) {
            rc_close(&c);
            return false;
        }
        for (size_t k = 0; k < rc_reply_size(r); k++) {
            const char *value = rc_reply_value(r, k);
            const char *name = strstr(value, "name=");
            const char *state = strstr(value, " state=");
            int j = name ? s_host_of(name + 5) : -1;
            v->rows[i]++;
            if (j < 0 || !state) {
                continue;
            }
            state += 7;
            for (int s = ST_ALIVE; s <= ST_LEFT; s++) {
                size_t len = strlen(s_state_names[s]);
                if (strncmp(state, s_state_names[s], len) == 0 &&
                    state[len] == ' ') {
                    v->st[i][j] = s;
                }
            }
            snprintf(v->id[i][j], sizeof v->id[i][j], "%s", rc_reply_key(r, k));
        }
        rc_reply_destroy(&r);
        rc_close(&c);
    }
    return true;
}

//  One view: every host knows exactly the four, all alive, under the ids
//  they give themselves.
static bool s_one_view(const views_t *v)
{
    for (int i = 0; i < HOSTS; i++) {
        if (v->rows[i] != HOSTS) {
            return false;
        }
        for (int j = 0; j < HOSTS; j++) {
            if (v->st[i][j] != ST_ALIVE ||
                strcmp(v->id[i][j], v->id[j][j]) != 0) {
                return false;
            }
        }
    }
    return true;
}

static bool s_same_half(int i, int j)
{
    return (i < 2) == (j < 2);
}

//  Host i sees its own half alive and the other half dead.
static bool s_sees_split(const views_t *v, int i)
{
    for (int j = 0; j < HOSTS; j++) {
        if (v->st[i][j] != (s_same_half(i, j) ? ST_ALIVE : ST_DEAD)) {
            return false;
        }
    }
    return true;
}

static void s_print_views(const views_t *v)
{
    for (int i = 0; i < HOSTS; i++) {
        fprintf(stderr, "  host-%c sees:", 'a' + i);
        for (int j = 0; j < HOSTS; j++) {
            fprintf(stderr, " %c=%s", 'a' + j, s_state_names[v->st[i][j]]);
        }
        fprintf(stderr, " (%d rows)\n", v->rows[i]);
    }
}

static bool s_cond_one_view(void *arg)
{
    (void)arg;
    views_t v;
    return s_read_views(&v) && s_one_view(&v);
}

//  Every sidecar's mesh hears n peers.
static bool s_cond_live_peers(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < HOSTS; i++) {
        if (sidecar_counter(s_d[i].socket, "live_peers") != n) {
            return false;
        }
    }
    return true;
}

// --- membership events -------------------------------------------------------

//  What one sidecar told its watcher app (on_member), since the last reset.
typedef struct {
    long long first[HOSTS][5]; // first event per member and state, ms
    int count[HOSTS][5];       // events per member and state
} watch_t;
static watch_t s_watch[HOSTS];

static void s_on_member(rc_client_t *c, const rc_member_t *m, void *arg)
{
    (void)c;
    watch_t *w = arg;
    int j = m->name ? s_host_of(m->name) : -1;
    int s = (int)m->state;
    if (j >= 0 && s >= ST_ALIVE && s <= ST_LEFT) {
        if (!w->count[j][s]++) {
            w->first[j][s] = now_ms();
        }
    }
}

static void s_start_watchers(void)
{
    for (int i = 0; i < HOSTS; i++) {
        rc_options_t o;
        rc_options_init(&o);
        o.on_member = s_on_member;
        o.arg = &s_watch[i];
        s_watchers[i] = rcd_client(&s_d[i], &o);
        assert_non_null(s_watchers[i]);
    }
}

static void s_dispatch_watchers(void)
{
    for (int i = 0; i < HOSTS; i++) {
        rc_dispatch(s_watchers[i]);
    }
}

static void s_reset_watch(void)
{
    s_dispatch_watchers(); // take in what is due before
    memset(s_watch, 0, sizeof s_watch);
}

// --- messages ----------------------------------------------------------------

static rc_client_t *s_app(int host)
{
    for (int i = 0; i < APPS; i++) {
        if (!s_apps[i]) {
            s_apps[i] = rcd_client(&s_d[host], NULL);
            assert_non_null(s_apps[i]);
            return s_apps[i];
        }
    }
    fail_msg("too many apps");
    return NULL;
}

static void s_publish(rc_client_t *c, const char *ns, const char *topic,
                      const char *text)
{
    assert_int_equal(rc_publish(c, ns, topic, text, strlen(text), RC_TEXT), 0);
    assert_int_equal(rc_flush(c, WAIT), 0);
}

//  The next message on c is text on (ns, topic), sequence seq, from pub.
static void s_expect(rc_client_t *c, const char *ns, const char *topic,
                     const char *text, uint64_t seq, const rc_client_t *pub,
                     int timeout_ms)
{
    rc_msg_t *m;
    if (rc_recv(c, &m, timeout_ms)) {
        fail_msg("no message \"%s\" on %s/%s within %d ms: %s", text, ns, topic,
                 timeout_ms, rc_strerror(errno));
    }
    assert_string_equal(rc_msg_namespace(m), ns);
    assert_string_equal(rc_msg_topic(m), topic);
    assert_int_equal(rc_msg_size(m), strlen(text));
    assert_memory_equal(rc_msg_data(m), text, strlen(text));
    assert_int_equal(rc_msg_sequence(m), seq);
    assert_string_equal(rc_msg_origin(m), rc_instance_id(pub));
    assert_string_equal(rc_msg_origin_node(m), rc_node_id(pub));
    rc_msg_destroy(&m);
}

//  Nothing more arrives on c for ms: no duplicate.
static void s_expect_nothing(rc_client_t *c, int ms)
{
    rc_msg_t *m;
    if (rc_recv(c, &m, ms) == 0) {
        fail_msg("unexpected message %.*s (sequence %llu)", (int)rc_msg_size(m),
                 (const char *)rc_msg_data(m),
                 (unsigned long long)rc_msg_sequence(m));
    }
}

//  Subscribe and wait for every live peer's confirmation; returns the ms
//  it took.
static long long s_subscribe(rc_client_t *c, const char *ns, const char *topic)
{
    long long t = now_ms();
    if (rc_subscribe_wait(c, ns, topic, WAIT) != 0) {
        fail_msg("rc_subscribe_wait %s/%s: %s", ns, topic, rc_strerror(errno));
    }
    return now_ms() - t;
}

//  A steady stream from pub to sub (one message per step), checked in
//  order as it arrives: a lost message shows as a skipped sequence.
typedef struct {
    rc_client_t *pub, *sub;
    const char *ns, *topic;
    int sent, got, skipped;
} stream_t;

static void s_stream_take(stream_t *st, int timeout_ms)
{
    rc_msg_t *m;
    while (rc_recv(st->sub, &m, timeout_ms) == 0) {
        uint64_t seq = rc_msg_sequence(m);
        assert_true(seq > (uint64_t)st->got); // never twice, never back
        st->skipped += (int)(seq - (uint64_t)st->got - 1);
        st->got = (int)seq;
        rc_msg_destroy(&m);
        timeout_ms = 0;
    }
}

static void s_stream_step(stream_t *st)
{
    char text[16];
    snprintf(text, sizeof text, "s%d", st->sent + 1);
    assert_int_equal(
        rc_publish(st->pub, st->ns, st->topic, text, strlen(text), RC_TEXT), 0);
    st->sent++;
    rc_dispatch(st->pub);
    s_stream_take(st, 0);
}

//  Wait for the rest of the stream. Returns true when everything sent
//  arrived, in order, none lost; else why in err.
static bool s_stream_done(stream_t *st, char *err, size_t errlen)
{
    assert_int_equal(rc_flush(st->pub, WAIT), 0);
    long long deadline = now_ms() + WAIT;
    while (st->got < st->sent && now_ms() < deadline) {
        s_stream_take(st, 100);
    }
    snprintf(err, errlen,
             "%d of %d messages %s/%s arrived (%d lost on the "
             "way)",
             st->got - st->skipped, st->sent, st->ns, st->topic, st->skipped);
    return !st->skipped && st->got == st->sent;
}

//  Wait up to bound_ms for cond, a stream step (may be NULL) and the
//  watchers' events every 20 ms. Returns the ms it took, or -1.
static long long s_until(bool (*cond)(void *arg), void *arg, int bound_ms,
                         stream_t *st)
{
    long long t0 = now_ms();
    while (!cond(arg)) {
        if (now_ms() - t0 > bound_ms) {
            return -1;
        }
        if (st) {
            s_stream_step(st);
        }
        s_dispatch_watchers();
        poll(NULL, 0, 20);
    }
    return now_ms() - t0;
}

// --- setup shared by the cases -----------------------------------------------

//  Four sidecars, one per namespace, all alive everywhere and every mesh
//  link live. Returns how long convergence took, ms.
static long long s_start_cluster(void)
{
    const char *key = netns_make_files("/tmp/roomcast-part");
    long long t0 = now_ms();
    for (int i = 0; i < HOSTS; i++) {
        s_start_host(i, key);
    }
    long long started = now_ms();
    if (!wait_for(s_cond_one_view, NULL, NULL, CONVERGE)) {
        views_t v;
        if (s_read_views(&v)) {
            s_print_views(&v);
        }
        fail_msg("no single alive view within %d ms of the start", CONVERGE);
    }
    int three = HOSTS - 1;
    assert_true(wait_for(s_cond_live_peers, &three, NULL, WAIT));
    print_message("cluster: 4 sidecars started in %lld ms, one view and "
                  "every mesh link live %lld ms later\n",
                  started - t0, now_ms() - started);
    return now_ms() - started;
}

//  Stop every sidecar with SIGTERM: each must exit 0 (under ASan: no leak,
//  no error at exit), after all it went through.
static void s_stop_cluster(void)
{
    for (int i = 0; i < APPS; i++) {
        rc_close(&s_apps[i]);
    }
    for (int i = 0; i < HOSTS; i++) {
        rc_close(&s_watchers[i]);
    }
    for (int i = 0; i < HOSTS; i++) {
        assert_int_equal(rcd_stop(&s_d[i], SIGTERM), 0);
        rcd_cleanup(&s_d[i]);
        memset(&s_d[i], 0, sizeof s_d[i]);
    }
}

//  Nothing of ours is left: namespaces, links (they lived in them), files.
static void s_assert_nothing_left(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "%s", netns_dir());
    netns_cleanup();
    for (int i = 0; i < HOSTS; i++) {
        char path[192];
        snprintf(path, sizeof path, "/run/netns/%s", netns_name(i));
        assert_int_equal(access(path, F_OK), -1);
    }
    assert_int_equal(access(dir, F_OK), -1);
}

// --- the cases ---------------------------------------------------------------

//  Split {A, B} from {C, D}: each half marks the other dead within
//  SPLIT_BOUND and keeps delivering inside; heal: one alive view within
//  HEAL_BOUND and a message from A reaches C and D once. A streams to B
//  all along: the cut and the heal lose none of it.
static void test_partition_and_heal(void **state)
{
    (void)state;
    s_skip_if_no_network();
    s_start_cluster();
    s_start_watchers();

    //  an app on B subscribed before the split, one on A publishes
    rc_client_t *pub_a = s_app(0), *sub_b = s_app(1);
    rc_client_t *pub_c = s_app(2), *sub_d = s_app(3);
    s_subscribe(sub_b, "part", "half-ab");
    rc_client_t *stream_b = s_app(1);
    s_subscribe(stream_b, "part", "stream-ab");
    stream_t st = {pub_a, stream_b, "part", "stream-ab", 0, 0, 0};

    //  split
    s_reset_watch();
    long long cut = now_ms();
    s_trunk("down");
    //  A to B at once, while C and D still count as alive
    s_publish(pub_a, "part", "half-ab", "during-1");
    s_expect(sub_b, "part", "half-ab", "during-1", 1, pub_a, WAIT);
    long long early = now_ms() - cut;

    //  each half marks the other half dead (gossip), and each mesh hears
    //  its own half only
    long long seen[HOSTS], mesh_seen[HOSTS]; // ms after the cut, or -1
    for (int i = 0; i < HOSTS; i++) {
        seen[i] = mesh_seen[i] = -1;
    }
    views_t v;
    int done = 0;
    while (done < 2 * HOSTS) {
        long long now = now_ms();
        if (now - cut > SPLIT_BOUND) {
            if (s_read_views(&v)) {
                s_print_views(&v);
            }
            fail_msg("%d of 8 (4 gossip views, 4 meshes) saw the split "
                     "within %d ms",
                     done, SPLIT_BOUND);
        }
        if (s_read_views(&v)) {
            for (int i = 0; i < HOSTS; i++) {
                if (seen[i] < 0 && s_sees_split(&v, i)) {
                    seen[i] = now - cut;
                    done++;
                }
            }
        }
        for (int i = 0; i < HOSTS; i++) {
            if (mesh_seen[i] < 0 &&
                sidecar_counter(s_d[i].socket, "live_peers") == 1) {
                mesh_seen[i] = now - cut;
                done++;
            }
        }
        s_stream_step(&st);
        s_dispatch_watchers();
        poll(NULL, 0, 10);
    }
    long long split = 0, mesh_split = 0;
    for (int i = 0; i < HOSTS; i++) {
        split = seen[i] > split ? seen[i] : split;
        mesh_split = mesh_seen[i] > mesh_split ? mesh_seen[i] : mesh_split;
    }

    //  delivery inside each half goes on: A to B on the subscription made
    //  before, C to D on one made during the split (confirmed by the live
    //  peers: C only)
    s_publish(pub_a, "part", "half-ab", "during-2");
    s_expect(sub_b, "part", "half-ab", "during-2", 2, pub_a, WAIT);
    long long sub_split = s_subscribe(sub_d, "part", "half-cd");
    s_publish(pub_c, "part", "half-cd", "during-3");
    s_expect(sub_d, "part", "half-cd", "during-3", 1, pub_c, WAIT);
    s_expect_nothing(sub_b, 0);

    //  what the apps were told: the other half suspect (maybe) then dead,
    //  never a member of one's own half
    s_dispatch_watchers();
    long long suspect_max = 0;
    for (int i = 0; i < HOSTS; i++) {
        for (int j = 0; j < HOSTS; j++) {
            watch_t *w = &s_watch[i];
            if (i == j) {
                continue;
            }
            if (s_same_half(i, j)) {
                if (w->count[j][ST_SUSPECT] || w->count[j][ST_DEAD] ||
                    w->count[j][ST_LEFT]) {
                    fail_msg("host-%c: host-%c of its own half went "
                             "suspect %d, dead %d, left %d times",
                             'a' + i, 'a' + j, w->count[j][ST_SUSPECT],
                             w->count[j][ST_DEAD], w->count[j][ST_LEFT]);
                }
                continue;
            }
            if (w->count[j][ST_DEAD] != 1) {
                fail_msg("host-%c: %d dead events for host-%c", 'a' + i,
                         w->count[j][ST_DEAD], 'a' + j);
            }
            if (w->count[j][ST_SUSPECT]) {
                assert_true(w->first[j][ST_SUSPECT] <= w->first[j][ST_DEAD]);
                if (w->first[j][ST_SUSPECT] - cut > suspect_max) {
                    suspect_max = w->first[j][ST_SUSPECT] - cut;
                }
            }
        }
    }
    print_message("split: A->B delivered %lld ms after the cut; dead seen "
                  "by A %lld, B %lld, C %lld, D %lld ms (all within %lld "
                  "ms, bound %d; last first suspicion at %lld ms); every "
                  "mesh down to its half by %lld ms; subscribe_wait in a "
                  "half %lld ms\n",
                  early, seen[0], seen[1], seen[2], seen[3], split, SPLIT_BOUND,
                  suspect_max, mesh_split, sub_split);

    //  the split holds: same views, and nobody of a half is suspected
    long long hold = now_ms();
    while (now_ms() - hold < HOLD_MS) {
        assert_true(s_read_views(&v));
        for (int i = 0; i < HOSTS; i++) {
            if (!s_sees_split(&v, i)) {
                s_print_views(&v);
                fail_msg("the split view of host-%c changed %lld ms into "
                         "the hold",
                         'a' + i, now_ms() - hold);
            }
        }
        s_stream_step(&st);
        s_dispatch_watchers();
        poll(NULL, 0, 20);
    }
    for (int i = 0; i < HOSTS; i++) {
        for (int j = 0; j < HOSTS; j++) {
            if (i != j && s_same_half(i, j) &&
                (s_watch[i].count[j][ST_SUSPECT] ||
                 s_watch[i].count[j][ST_DEAD])) {
                fail_msg("host-%c suspected host-%c of its own half during "
                         "the hold",
                         'a' + i, 'a' + j);
            }
        }
    }

    //  heal
    s_reset_watch();
    long long healed_at = now_ms();
    s_trunk("up");
    long long heal = s_until(s_cond_one_view, NULL, HEAL_BOUND, &st);
    if (heal < 0) {
        if (s_read_views(&v)) {
            s_print_views(&v);
        }
        fail_msg("no single alive view within %d ms of the heal", HEAL_BOUND);
    }
    int three = HOSTS - 1;
    assert_true(s_until(s_cond_live_peers, &three, WAIT, &st) >= 0);
    long long mesh_heal = now_ms() - healed_at;
    //  the apps were told: the other half alive again, and nobody died
    s_dispatch_watchers();
    for (int i = 0; i < HOSTS; i++) {
        for (int j = 0; j < HOSTS; j++) {
            if (i != j && !s_same_half(i, j) &&
                s_watch[i].count[j][ST_ALIVE] < 1) {
                fail_msg("host-%c was not told host-%c is alive again", 'a' + i,
                         'a' + j);
            }
            if (s_watch[i].count[j][ST_DEAD] || s_watch[i].count[j][ST_LEFT]) {
                fail_msg("host-%c: host-%c went dead %d, left %d times "
                         "while healing",
                         'a' + i, 'a' + j, s_watch[i].count[j][ST_DEAD],
                         s_watch[i].count[j][ST_LEFT]);
            }
        }
    }

    //  delivery across the healed cut: A to apps on C and D, once each
    rc_client_t *sub_c = s_app(2), *sub_d2 = s_app(3);
    long long sub_c_ms = s_subscribe(sub_c, "part", "healed");
    long long sub_d_ms = s_subscribe(sub_d2, "part", "healed");
    long long t = now_ms();
    s_publish(pub_a, "part", "healed", "after-heal");
    s_expect(sub_c, "part", "healed", "after-heal", 1, pub_a, WAIT);
    s_expect(sub_d2, "part", "healed", "after-heal", 1, pub_a, WAIT);
    long long delivered = now_ms() - t;
    s_expect_nothing(sub_c, 300);
    s_expect_nothing(sub_d2, 0);
    s_expect_nothing(sub_b, 0);
    char stream_err[128];
    if (!s_stream_done(&st, stream_err, sizeof stream_err)) {
        fail_msg("A -> B through the split and the heal: %s", stream_err);
    }
    print_message("heal (after a %d ms hold): one alive view %lld ms after "
                  "the trunk came up (bound %d), every mesh link live at "
                  "%lld ms; subscribe_wait on C %lld ms, on D %lld ms; A->C "
                  "and D delivered in %lld ms; A->B streamed %d messages "
                  "throughout, none lost\n",
                  HOLD_MS, heal, HEAL_BOUND, mesh_heal, sub_c_ms, sub_d_ms,
                  delivered, st.sent);

    s_stop_cluster();
    s_assert_nothing_left();
}

//  One host cut off alone (its switch port down) and plugged back as soon
//  as it sees the three others dead: they mark it dead and it marks them
//  dead; after the heal one alive view, and the three that never lost one
//  another never mark one another dead (nor tear down the links between
//  them), nor lose a message between them. The lone host comes back with
//  its news "the three are dead" not yet gossiped (it had nobody to tell):
//  that news, at the incarnations the three still hold, must not kill
//  members that answer their peers' probes all along.
static void test_lone_host_cut_off_and_back(void **state)
{
    (void)state;
    s_skip_if_no_network();
    s_start_cluster();
    s_start_watchers();
    rc_client_t *pub_a = s_app(0), *sub_b = s_app(1);
    s_subscribe(sub_b, "lone", "a-to-b");
    stream_t st = {pub_a, sub_b, "lone", "a-to-b", 0, 0, 0};

    //  D alone: the three see it dead, it sees the three dead
    s_reset_watch();
    long long cut = now_ms();
    assert_int_equal(
        netns_ip("-n", netns_name(2), "link", "set", "vd0", "down", NULL), 0);
    views_t v;
    for (;;) {
        bool split = s_read_views(&v);
        for (int i = 0; split && i < HOSTS; i++) {
            for (int j = 0; j < HOSTS; j++) {
                int want = i == j || (i < 3 && j < 3) ? ST_ALIVE : ST_DEAD;
                split &= v.st[i][j] == want;
            }
        }
        if (split) {
            break;
        }
        if (now_ms() - cut > SPLIT_BOUND) {
            s_print_views(&v);
            fail_msg("D and the three did not see each other dead within "
                     "%d ms",
                     SPLIT_BOUND);
        }
        s_stream_step(&st);
        s_dispatch_watchers();
        poll(NULL, 0, 20);
    }
    long long split = now_ms() - cut;

    //  back: one view, while A keeps publishing to B
    s_reset_watch();
    assert_int_equal(
        netns_ip("-n", netns_name(2), "link", "set", "vd0", "up", NULL), 0);
    long long heal = s_until(s_cond_one_view, NULL, HEAL_BOUND, &st);
    if (heal < 0) {
        if (s_read_views(&v)) {
            s_print_views(&v);
        }
        fail_msg("no single alive view within %d ms of the heal", HEAL_BOUND);
    }
    //  one more second of stream after it
    for (long long t = now_ms(); now_ms() - t < 1000;) {
        s_stream_step(&st);
        s_dispatch_watchers();
        poll(NULL, 0, 20);
    }
    //  what the three told their apps about one another, and the stream
    char stream_err[128];
    bool stream_ok = s_stream_done(&st, stream_err, sizeof stream_err);
    s_dispatch_watchers();
    int suspicions = 0, deaths = 0;
    char died[256] = "";
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            suspicions += s_watch[i].count[j][ST_SUSPECT];
            int n = s_watch[i].count[j][ST_DEAD] + s_watch[i].count[j][ST_LEFT];
            if (n) {
                size_t len = strlen(died);
                snprintf(died + len, sizeof died - len, "%shost-%c->host-%c",
                         deaths ? ", " : "", 'a' + i, 'a' + j);
                deaths += n;
            }
        }
    }
    print_message("lone host: D and the three saw each other dead %lld ms "
                  "after the cut (bound %d), plugged back at once; one alive "
                  "view %lld ms after (bound %d); among the three meanwhile "
                  "%d suspicions, %d deaths; A->B throughout: %s\n",
                  split, SPLIT_BOUND, heal, HEAL_BOUND, suspicions, deaths,
                  stream_err);
    if (deaths || !stream_ok) {
        fail_msg("when host-d came back, the three that never lost one "
                 "another marked one another dead %d times (%s); A -> B "
                 "meanwhile: %s",
                 deaths, died, stream_err);
    }
    s_stop_cluster();
    s_assert_nothing_left();
}

//  Sum of TCP RetransSegs in the namespace of process pid (from
//  /proc/PID/net/snmp, which shows that process's namespace); -1 if
//  unreadable.
static long long s_tcp_retrans(pid_t pid)
{
    char path[64], line[1024], head[1024] = "";
    snprintf(path, sizeof path, "/proc/%d/net/snmp", (int)pid);
    FILE *f = fopen(path, "r");
    long long value = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "Tcp:", 4) != 0) {
            continue;
        }
        if (!*head) {
            snprintf(head, sizeof head, "%s", line); // field names first
            continue;
        }
        //  the values: find RetransSegs's column
        char *hs, *vs;
        char *h = strtok_r(head, " \n", &hs);
        char *val = strtok_r(line, " \n", &vs);
        while (h && val) {
            if (strcmp(h, "RetransSegs") == 0) {
                value = atoll(val);
            }
            h = strtok_r(NULL, " \n", &hs);
            val = strtok_r(NULL, " \n", &vs);
        }
        break;
    }
    if (f) {
        fclose(f);
    }
    return value;
}

//  10% loss and 20 ms delay on every host's egress: over STEADY_MS nobody
//  is marked dead, and LOSSY_MSGS messages A -> C all arrive, in order,
//  once (TCP retransmits under ZeroMQ).
static void test_loss_and_delay(void **state)
{
    (void)state;
    s_skip_if_no_network();
    char why[256] = "";
    if (!netns_find(s_tc, sizeof s_tc, "tc")) {
        snprintf(why, sizeof why, "no tc binary");
    } else if (s_netem(0, "add", why, sizeof why) != 0 ||
               s_netem(0, "del", NULL, 0) != 0) {
        if (!*why) {
            snprintf(why, sizeof why, "tc qdisc add ... netem failed");
        }
    } else {
        *why = 0;
    }
    if (*why) {
        printf("skipped: needs tc and the netem qdisc in the namespaces "
               "(%s)\n",
               why);
        fflush(stdout);
        netns_cleanup();
        skip();
    }
    s_start_cluster();
    s_start_watchers();
    rc_client_t *pub_a = s_app(0), *sub_c = s_app(2);
    s_subscribe(sub_c, "lossy", "a-to-c");

    for (int i = 0; i < HOSTS; i++) {
        assert_int_equal(s_netem(i, "add", NULL, 0), 0);
    }
    s_reset_watch();
    long long t0 = now_ms();
    long long retrans0 = s_tcp_retrans(s_d[0].pid);

    //  steady state: nobody dead, at any look and in any event
    views_t v;
    int looks = 0;
    while (now_ms() - t0 < STEADY_MS) {
        assert_true(s_read_views(&v));
        looks++;
        for (int i = 0; i < HOSTS; i++) {
            for (int j = 0; j < HOSTS; j++) {
                if (v.st[i][j] == ST_DEAD || v.st[i][j] == ST_LEFT ||
                    v.st[i][j] == ST_UNKNOWN) {
                    s_print_views(&v);
                    fail_msg("host-%c sees host-%c %s %lld ms into the "
                             "loss",
                             'a' + i, 'a' + j, s_state_names[v.st[i][j]],
                             now_ms() - t0);
                }
            }
        }
        s_dispatch_watchers();
        poll(NULL, 0, 100);
    }

    //  200 messages A -> C, one every 10 ms
    long long t1 = now_ms();
    for (int k = 1; k <= LOSSY_MSGS; k++) {
        char text[16];
        snprintf(text, sizeof text, "m%03d", k);
        assert_int_equal(
            rc_publish(pub_a, "lossy", "a-to-c", text, strlen(text), RC_TEXT),
            0);
        rc_dispatch(pub_a);
        s_dispatch_watchers();
        poll(NULL, 0, 10);
    }
    assert_int_equal(rc_flush(pub_a, WAIT), 0);
    int got = 0;
    long long deadline = now_ms() + 2 * WAIT;
    while (got < LOSSY_MSGS) {
        rc_msg_t *m;
        int left = (int)(deadline - now_ms());
        if (left <= 0 || rc_recv(sub_c, &m, left) != 0) {
            fail_msg("%d of %d messages A -> C arrived under loss", got,
                     LOSSY_MSGS);
        }
        char text[16];
        snprintf(text, sizeof text, "m%03d", got + 1);
        assert_int_equal(rc_msg_sequence(m), got + 1); // in order, no gap
        assert_int_equal(rc_msg_size(m), strlen(text));
        assert_memory_equal(rc_msg_data(m), text, strlen(text));
        rc_msg_destroy(&m);
        got++;
    }
    long long delivered = now_ms() - t1;
    s_expect_nothing(sub_c, 300);
    assert_int_equal(sidecar_counter(s_d[2].socket, "gaps"), 0);
    long long retrans = s_tcp_retrans(s_d[0].pid);

    //  nobody was marked dead by anyone, through the whole time under loss
    s_dispatch_watchers();
    int suspicions = 0;
    for (int i = 0; i < HOSTS; i++) {
        for (int j = 0; j < HOSTS; j++) {
            suspicions += s_watch[i].count[j][ST_SUSPECT];
            if (s_watch[i].count[j][ST_DEAD] || s_watch[i].count[j][ST_LEFT]) {
                fail_msg("host-%c marked host-%c dead %d times, left %d "
                         "times under loss",
                         'a' + i, 'a' + j, s_watch[i].count[j][ST_DEAD],
                         s_watch[i].count[j][ST_LEFT]);
            }
        }
    }
    //  a suspicion still running at the end is refuted soon enough
    long long settle = s_until(s_cond_one_view, NULL, WAIT, NULL);
    assert_true(settle >= 0);
    print_message("loss 10%% + delay 20 ms: %d looks over %d ms, no death "
                  "(%d suspicions refuted); %d/%d messages A->C in %lld ms "
                  "(published over %d ms); TCP retransmits in A: %lld\n",
                  looks, STEADY_MS, suspicions, got, LOSSY_MSGS, delivered,
                  LOSSY_MSGS * 10,
                  retrans >= 0 && retrans0 >= 0 ? retrans - retrans0 : -1);

    for (int i = 0; i < HOSTS; i++) {
        assert_int_equal(s_netem(i, "del", NULL, 0), 0);
    }
    s_stop_cluster();
    s_assert_nothing_left();
}

int main(void)
{
    harness_deadline(55);
    if (getenv("TEST_FILTER")) {
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    }
    netns_prepare("rcpart", HOSTS, s_d);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_partition_and_heal, s_teardown),
        cmocka_unit_test_teardown(test_lone_host_cut_off_and_back, s_teardown),
        cmocka_unit_test_teardown(test_loss_and_delay, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
