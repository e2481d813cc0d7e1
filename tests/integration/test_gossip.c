/*  Membership by gossip on loopback: sidecars find each other from one
    seed, notice deaths and leaves, carry presence cluster-wide. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

#define MAXN 40

typedef struct {
    int n;
    rcd_t d[MAXN];
    int gport[MAXN];
    int dport[MAXN];
    char key[300];
    char args[MAXN][6][64];
    const char *extra[MAXN][32];
} gcluster_t;

static gcluster_t s_c; // static: large, and the harness may need it late

static void s_args(gcluster_t *c, int i)
{
    const char **a = c->extra[i];
    int n = 0;
    snprintf(c->args[i][0], 64, "tcp://127.0.0.1:%d", c->dport[i]);
    snprintf(c->args[i][1], 64, "127.0.0.1:%d", c->gport[i]);
    snprintf(c->args[i][2], 64, "127.0.0.1:%d", c->gport[0]);
    snprintf(c->args[i][3], 64, "node%d", i);
    //  fast timings for the suite; ROOMCAST_GOSSIP_PROBE_MS=1000 measures
    //  the defaults
    const char *probe = getenv("ROOMCAST_GOSSIP_PROBE_MS");
    int p = probe ? atoi(probe) : 200;
    snprintf(c->args[i][4], 64, "%d", p);
    snprintf(c->args[i][5], 64, "%d", p / 2);
    a[n++] = "--bind";
    a[n++] = c->args[i][0];
    a[n++] = "--gossip";
    a[n++] = c->args[i][1];
    a[n++] = "--join";
    a[n++] = i == 0 ? c->args[i][1] : c->args[i][2]; // the seed: node 0
    a[n++] = "--name";
    a[n++] = c->args[i][3];
    a[n++] = "--key-file";
    a[n++] = c->key;
    a[n++] = "--heartbeat";
    a[n++] = "100";
    a[n++] = "--probe-interval";
    a[n++] = c->args[i][4];
    a[n++] = "--probe-timeout";
    a[n++] = c->args[i][5];
    a[n++] = "--pushpull-interval";
    a[n++] = p > 1000 ? "30000" : "1000";
    a[n++] = "--log-level";
    a[n++] = "warn";
    a[n] = NULL;
}

static void s_start(gcluster_t *c, int n)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    snprintf(c->key, sizeof c->key, "/tmp/roomcast-gkey-%d", (int)getpid());
    assert_int_equal(write_key(c->key), 0);
    for (int i = 0; i < n; i++) {
        c->gport[i] = free_port();
        c->dport[i] = free_port();
        s_args(c, i);
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(rcd_start(&c->d[i], "gossiptest", c->extra[i]), 0);
    }
}

static void s_stop(gcluster_t *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->d[i].pid > 0) {
            assert_int_equal(rcd_stop(&c->d[i], SIGTERM), 0);
        }
        rcd_cleanup(&c->d[i]);
    }
    unlink(c->key);
}

//  How many members sidecar i holds in state (from roomcastctl members).
static int s_count_state(gcluster_t *c, int i, const char *state)
{
    rc_client_t *cl = rc_connect(c->d[i].socket, NULL);
    rc_reply_t *r;
    int n = -1;
    if (cl && rc_query(cl, "members", "", &r, 2000) == 0) {
        char want[32];
        snprintf(want, sizeof want, "state=%s ", state);
        n = 0;
        for (size_t k = 0; k < rc_reply_size(r); k++) {
            n += strstr(rc_reply_value(r, k), want) != NULL;
        }
        rc_reply_destroy(&r);
    }
    rc_close(&cl);
    return n;
}

//  One logfmt value at *p (bare, or quoted with \\ \" \n \t escapes) into
//  out; *p moves past it.
static void s_logfmt_value(const char **p, char *out, size_t size)
{
    size_t n = 0;
    const char *q = *p;
    if (*q == '"') {
        for (q++; *q && *q != '"'; q++) {
            char ch = *q;
            if (ch == '\\' && q[1]) {
                q++;
                ch = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
            }
            if (n + 1 < size) {
                out[n++] = ch;
            }
        }
        q += *q == '"';
    } else {
        for (; *q && *q != ' ' && *q != '\n'; q++) {
            if (n + 1 < size) {
                out[n++] = *q;
            }
        }
    }
    out[n] = 0;
    *p = q;
}

//  The value of key in one logfmt line, or "" (a key inside a quoted
//  value is not a key: the line is parsed, not searched).
static void s_logfmt_get(const char *line, const char *key, char *out,
                         size_t size)
{
    out[0] = 0;
    for (const char *p = line; *p && *p != '\n';) {
        while (*p == ' ') {
            p++;
        }
        const char *eq = strchr(p, '=');
        if (!eq) {
            return;
        }
        bool match = (size_t)(eq - p) == strlen(key) &&
                     strncmp(p, key, strlen(key)) == 0;
        p = eq + 1;
        char value[512];
        s_logfmt_value(&p, value, sizeof value);
        if (match) {
            snprintf(out, size, "%s", value);
            return;
        }
    }
}

//  The level of the first line of d's log with event and, when given,
//  key=value ("" when there is none) into level.
static void s_log_level_of(const rcd_t *d, const char *event, const char *key,
                           const char *value, char *level, size_t size)
{
    FILE *f = fopen(d->log, "r");
    char line[4096], got[512];
    level[0] = 0;
    while (f && !level[0] && fgets(line, sizeof line, f)) {
        s_logfmt_get(line, "event", got, sizeof got);
        if (strcmp(got, event) != 0) {
            continue;
        }
        s_logfmt_get(line, key ? key : "event", got, sizeof got);
        if (!key || strcmp(got, value) == 0) {
            s_logfmt_get(line, "level", level, size);
        }
    }
    if (f) {
        fclose(f);
    }
}

typedef struct {
    gcluster_t *c;
    int skip;          // a sidecar not to ask (the dead one), or -1
    int alive;         // members each must see alive
    const char *state; // or: each must see one member in this state
} view_t;

static bool s_view(void *arg)
{
    view_t *v = arg;
    for (int i = 0; i < v->c->n; i++) {
        if (i == v->skip) {
            continue;
        }
        if (v->state ? s_count_state(v->c, i, v->state) < 1
                     : s_count_state(v->c, i, "alive") != v->alive) {
            return false;
        }
    }
    return true;
}

//  N sidecars from one seed: all alive everywhere; kill -9 one: dead
//  everywhere; restart it: alive again (a new node id, a higher
//  incarnation) with its mesh links. Prints the times for docs/cluster.md.
static void s_membership_case(int n)
{
    gcluster_t *c = &s_c;
    long long t0 = now_ms();
    s_start(c, n);
    long long started = now_ms();
    view_t all = {c, -1, n, NULL};
    assert_true(wait_for(s_view, &all, NULL, 30000));
    long long converged = now_ms();
    //  messages flow between two others while one dies and comes back
    rc_client_t *pub = rcd_client(&c->d[1], NULL),
                *sub = rcd_client(&c->d[2], NULL);
    assert_non_null(pub);
    assert_non_null(sub);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "flow", 10000), 0);
    int victim = n - 1;
    //  every link up (alive for SWIM comes first: with CurveZMQ a link
    //  waits for the peer's key from gossip), so that every survivor has
    //  a link to lose and logs it
    for (int i = 0; i < n; i++) {
        assert_true(wait_live_peers(c->d[i].socket, n - 1, 30000));
    }
    assert_int_equal(rcd_stop(&c->d[victim], SIGKILL), 128 + SIGKILL);
    long long killed = now_ms();
    view_t dead = {c, victim, 0, "dead"};
    int sent = 0, got = 0;
    long long deadline = now_ms() + 30000;
    while (!s_view(&dead)) {
        assert_true(now_ms() < deadline);
        char data[16];
        int len = snprintf(data, sizeof data, "%d", ++sent);
        assert_int_equal(rc_publish(pub, "ns", "flow", data, (size_t)len, 0),
                         0);
        rc_msg_t *m;
        while (rc_recv(sub, &m, 20) == 0) {
            got++;
            rc_msg_destroy(&m);
        }
    }
    long long marked_dead = now_ms();
    //  a death is logged at warn by every survivor (they run at --log-level
    //  warn, so info lines would not be there at all), its lost link too
    for (int i = 0; i < n; i++) {
        char level[16];
        if (i == victim) {
            continue;
        }
        s_log_level_of(&c->d[i], "member", "state", "dead", level,
                       sizeof level);
        assert_string_equal(level, "warn");
        s_log_level_of(&c->d[i], "peer_down", NULL, NULL, level, sizeof level);
        assert_string_equal(level, "warn");
    }
    rc_msg_t *m;
    while (got < sent && rc_recv(sub, &m, 2000) == 0) {
        got++;
        rc_msg_destroy(&m);
    }
    assert_int_equal(got, sent); // the others never stopped delivering
    assert_int_equal(rcd_restart(&c->d[victim], "gossiptest", c->extra[victim]),
                     0);
    view_t back = {c, -1, n, NULL}; // the old id stays dead
    assert_true(wait_for(s_view, &back, NULL, 30000));
    //  and its mesh links: a message from it reaches node 2
    rc_client_t *vpub = rcd_client(&c->d[victim], NULL);
    assert_non_null(vpub);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "back", 10000), 0);
    assert_int_equal(rc_publish(vpub, "ns", "back", "hi", 2, 0), 0);
    assert_int_equal(rc_recv(sub, &m, 10000), 0);
    assert_memory_equal(rc_msg_data(m), "hi", 2);
    rc_msg_destroy(&m);
    print_message("gossip n=%d: start %lld ms, converged %lld ms after the "
                  "last start, killed member dead everywhere %lld ms after "
                  "kill -9\n",
                  n, started - t0, converged - started, marked_dead - killed);
    rc_close(&vpub);
    rc_close(&pub);
    rc_close(&sub);
    s_stop(c);
}

static void test_ten_sidecars_from_one_seed(void **state)
{
    (void)state;
    const char *n = getenv("ROOMCAST_GOSSIP_N");
    s_membership_case(n ? atoi(n) : 10);
}

typedef struct {
    int up, down;
} members_seen_t;

static void s_on_member(rc_client_t *c, const rc_member_t *m, void *arg)
{
    (void)c;
    members_seen_t *s = arg;
    s->up += m->state == RC_MEMBER_ALIVE;
    s->down += m->state == RC_MEMBER_LEFT || m->state == RC_MEMBER_DEAD;
}

static bool s_seen_left(void *arg)
{
    return ((members_seen_t *)arg)->down > 0;
}

//  SIGTERM announces a leave: the others mark the member left at once,
//  and apps that asked are told.
static void test_graceful_leave_is_seen_at_once(void **state)
{
    (void)state;
    gcluster_t *c = &s_c;
    s_start(c, 3);
    view_t all = {c, -1, 3, NULL};
    assert_true(wait_for(s_view, &all, NULL, 20000));
    members_seen_t seen = {0};
    rc_options_t o;
    rc_options_init(&o);
    o.on_member = s_on_member;
    o.arg = &seen;
    rc_client_t *app = rcd_client(&c->d[0], &o);
    assert_non_null(app);
    long long t = now_ms();
    assert_int_equal(rcd_stop(&c->d[2], SIGTERM), 0);
    view_t left = {c, 2, 0, "left"};
    assert_true(wait_for(s_view, &left, NULL, 3000));
    long long took = now_ms() - t;
    rc_client_t *list[] = {app, NULL};
    assert_true(wait_for(s_seen_left, &seen, list, 3000));
    print_message("leave seen everywhere in %lld ms\n", took);
    assert_true(took < 2000); // not the failure detector's 1 s+ timeout
    //  a leave is the cluster's normal life: info, so not in a warn log
    char level[16];
    s_log_level_of(&c->d[0], "member", "state", "left", level, sizeof level);
    assert_string_equal(level, "");
    rc_close(&app);
    s_stop(c);
}

typedef struct {
    int n;
    char keys[8][32];
} plist_t;

static void s_collect(rc_client_t *c, const rc_presence_t *p, void *arg)
{
    (void)c;
    plist_t *l = arg;
    if (p->present && l->n < 8) {
        snprintf(l->keys[l->n++], 32, "%s", p->key);
    }
}

typedef struct {
    gcluster_t *c;
    int skip;
    int want;
} pwant_t;

static bool s_presence_everywhere(void *arg)
{
    pwant_t *w = arg;
    for (int i = 0; i < w->c->n; i++) {
        if (i == w->skip) {
            continue;
        }
        rc_client_t *cl = rc_connect(w->c->d[i].socket, NULL);
        plist_t l = {0};
        int n = cl ? rc_presence_list(cl, "chat", "lobby", s_collect, &l, 2000)
                   : -1;
        rc_close(&cl);
        if (n != w->want) {
            return false;
        }
    }
    return true;
}

//  Entries set on three hosts are listed on every host; a client that
//  disconnects takes its entry; a host killed takes its entries.
static void test_presence_cluster_wide(void **state)
{
    (void)state;
    gcluster_t *c = &s_c;
    s_start(c, 4);
    view_t all = {c, -1, 4, NULL};
    assert_true(wait_for(s_view, &all, NULL, 20000));
    rc_client_t *apps[3];
    for (int i = 0; i < 3; i++) {
        apps[i] = rcd_client(&c->d[i], NULL);
        assert_non_null(apps[i]);
        char key[16];
        snprintf(key, sizeof key, "user%d", i);
        assert_int_equal(
            rc_presence_set(apps[i], "chat", "lobby", key, "meta", 4), 0);
        assert_int_equal(rc_flush(apps[i], 2000), 0);
    }
    pwant_t three = {c, -1, 3};
    assert_true(wait_for(s_presence_everywhere, &three, NULL, 10000));
    rc_close(&apps[0]); // a disconnect removes its own entry
    pwant_t two = {c, -1, 2};
    assert_true(wait_for(s_presence_everywhere, &two, NULL, 10000));
    assert_int_equal(rcd_stop(&c->d[2], SIGKILL), 128 + SIGKILL);
    pwant_t one = {c, 2, 1}; // host 2's entry vanishes everywhere
    assert_true(wait_for(s_presence_everywhere, &one, NULL, 10000));
    rc_close(&apps[1]);
    rc_close(&apps[2]);
    s_stop(c);
}

//  Forged, truncated and random UDP packets are counted drops; the
//  cluster keeps its view.
static void test_forged_gossip_is_dropped(void **state)
{
    (void)state;
    gcluster_t *c = &s_c;
    s_start(c, 2);
    view_t all = {c, -1, 2, NULL};
    assert_true(wait_for(s_view, &all, NULL, 20000));
    long long before = sidecar_counter(c->d[0].socket, "gossip_undecryptable");
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)c->gport[0])};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    uint8_t buf[1500];
    uint32_t x = 12345;
    int sent = 0;
    for (int i = 0; i < 200; i++) {
        size_t len = (size_t)(i % 50) * 29 + 1; // 1 byte up to 1422
        for (size_t k = 0; k < len; k++) {
            x = x * 1103515245 + 12345;
            buf[k] = (uint8_t)(x >> 16);
        }
        if (sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof to) ==
            (ssize_t)len) {
            sent++;
        }
        //  UDP: a burst beyond the socket buffer is dropped by the kernel
        //  before the sidecar sees it; pace so every packet is judged
        long long pace = now_ms() + 5000;
        while (i % 20 == 19 &&
               sidecar_counter(c->d[0].socket, "gossip_undecryptable") -
                       before <
                   sent) {
            assert_true(now_ms() < pace);
        }
    }
    close(fd);
    long long deadline = now_ms() + 5000;
    long long got;
    while ((got = sidecar_counter(c->d[0].socket, "gossip_undecryptable") -
                  before) < sent) {
        if (now_ms() >= deadline) {
            fail_msg("%lld of %d forged packets counted", got, sent);
        }
    }
    assert_int_equal(sidecar_counter(c->d[0].socket, "gossip_bad"), 0);
    assert_true(s_view(&all)); // nothing changed
    s_stop(c);
}

//  --join dns:NAME:PORT joins every address NAME resolves to.
static void test_dns_seed(void **state)
{
    (void)state;
    gcluster_t *c = &s_c;
    s_start(c, 1);
    //  a second sidecar that only knows the seed by name
    rcd_t d2;
    char bind[64], gossip[64], join[64];
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", free_port());
    snprintf(gossip, sizeof gossip, "127.0.0.1:%d", free_port());
    snprintf(join, sizeof join, "dns:localhost:%d", c->gport[0]);
    const char *extra[] = {"--bind",
                           bind,
                           "--gossip",
                           gossip,
                           "--join",
                           join,
                           "--key-file",
                           c->key,
                           "--probe-interval",
                           "200",
                           "--probe-timeout",
                           "100",
                           NULL};
    assert_int_equal(rcd_start(&d2, "gossiptest", extra), 0);
    view_t both = {c, -1, 2, NULL};
    assert_true(wait_for(s_view, &both, NULL, 20000));
    assert_int_equal(rcd_stop(&d2, SIGTERM), 0);
    rcd_cleanup(&d2);
    s_stop(c);
}

int main(void)
{
    harness_deadline(280);
    if (getenv("TEST_FILTER")) {
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ten_sidecars_from_one_seed),
        cmocka_unit_test(test_graceful_leave_is_seen_at_once),
        cmocka_unit_test(test_presence_cluster_wide),
        cmocka_unit_test(test_forged_gossip_is_dropped),
        cmocka_unit_test(test_dns_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
