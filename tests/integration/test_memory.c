/*  The daemon-wide memory cap (--memory-limit), through the binary: a flood
    toward apps that do not read makes the sidecar drop their queues (they
    are told by GAP), presence sets past the cap are refused and so are new
    apps, and the sidecar stays alive and near its limit; its metrics say
    what it did and what it holds. */
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

#define MIB (1024LL * 1024)

//  AddressSanitizer's allocator keeps freed memory (quarantine) and hands
//  none back to the kernel: the sidecars this test starts (they inherit
//  the environment) are told not to, so resident size means what it does
//  in a release build.
static void s_sanitizer_options(void)
{
#if defined(__SANITIZE_ADDRESS__)
    static char opts[1024];
    const char *was = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof opts,
             "%s%squarantine_size_mb=0:allocator_release_to_os_interval_ms=50",
             was ? was : "", was && *was ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
}

//  The value of a sample line "name value" in a /metrics answer, or -1.
static long long s_metric(int port, const char *sample)
{
    char *body = http_get(port, "/metrics");
    char want[200];
    snprintf(want, sizeof want, "\n%s ", sample);
    char *at = strstr(body, want);
    return at ? atoll(at + strlen(want)) : -1;
}

//  A "Name:   N kB" line of /proc/PID/status, in bytes; -1 when absent.
static long long s_status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long long v = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, name, strlen(name)) == 0 &&
            line[strlen(name)] == ':') {
            v = atoll(line + strlen(name) + 1) * 1024;
        }
    }
    if (f) {
        fclose(f);
    }
    return v;
}

//  Whether the daemon's log has a line holding every one of the words.
static bool s_logged(const rcd_t *d, const char *a, const char *b)
{
    FILE *f = fopen(d->log, "r");
    char line[4096];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f)) {
        found = strstr(line, a) && (!b || strstr(line, b));
    }
    if (f) {
        fclose(f);
    }
    return found;
}

//  Start d with --memory-limit at its resident size at rest plus headroom
//  (the size at rest differs between builds), an --http endpoint on a free
//  port and extra. Returns the limit.
static long long s_start_capped(rcd_t *d, int *port, long long headroom,
                                const char *const *extra)
{
    rcd_t probe;
    assert_int_equal(rcd_start(&probe, "memtest", NULL), 0);
    long long base = s_status_kb(probe.pid, "VmRSS");
    assert_int_equal(rcd_stop(&probe, SIGTERM), 0);
    rcd_cleanup(&probe);
    assert_true(base > 0);
    long long limit = (base + headroom + MIB - 1) / MIB * MIB;
    char http[64], cap[32];
    *port = free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", *port);
    snprintf(cap, sizeof cap, "%lldMiB", limit / MIB);
    const char *args[24] = {"--memory-limit", cap, "--http", http};
    size_t n = 4;
    for (size_t i = 0; extra && extra[i] && n < 23; i++) {
        args[n++] = extra[i];
    }
    args[n] = NULL;
    assert_int_equal(rcd_start(d, "memtest", args), 0);
    assert_int_equal(s_metric(*port, "roomcast_memory_limit_bytes"), limit);
    print_message("resident at rest %lld KiB, --memory-limit %s\n", base / 1024,
                  cap);
    return limit;
}

typedef struct {
    long long received;
    long long missed; // GAP (slow) notices
    long long slow_gaps;
    long long enospc; // ERR LIMIT
} app_t;

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    (void)m;
    ((app_t *)arg)->received++;
}

static void s_on_gap(rc_client_t *c, const rc_gap_t *gap, void *arg)
{
    (void)c;
    app_t *app = arg;
    if (gap->reason == RC_GAP_SLOW) {
        app->missed += (long long)gap->missed;
        app->slow_gaps++;
    }
}

static void s_on_error(rc_client_t *c, rc_stage_t stage, int err,
                       const char *text, void *arg)
{
    (void)c;
    (void)stage;
    (void)text;
    if (err == ENOSPC) {
        ((app_t *)arg)->enospc++;
    }
}

static rc_client_t *s_app(const rcd_t *d, app_t *app)
{
    rc_options_t o;
    rc_options_init(&o);
    o.gaps = true;
    o.on_message = s_on_message;
    o.on_gap = s_on_gap;
    o.on_error = s_on_error;
    o.arg = app;
    return rcd_client(d, &o);
}

typedef struct {
    app_t *apps;
    int n;
    long long each; // messages published to each app's topic
} told_t;

//  Every slow app got or was told of every message of its topic.
static bool s_all_told(void *arg)
{
    told_t *t = arg;
    for (int i = 0; i < t->n; i++) {
        if (t->apps[i].received + t->apps[i].missed < t->each) {
            return false;
        }
    }
    return true;
}

typedef struct {
    int port;
    const char *sample;
    long long at_least;
} metric_t;

static bool s_metric_reaches(void *arg)
{
    metric_t *m = arg;
    return s_metric(m->port, m->sample) >= m->at_least;
}

#define SLOW 4

//  Four apps that do not read, one topic each, and a publisher flooding
//  them with 48 MiB: without the cap their queues (8 MiB budget each) would
//  hold 32 MiB. With --memory-limit 24MiB the sidecar drops their queues,
//  stays alive and near the limit, and each app, reading at last, gets or
//  is told of every message.
static void test_flood_to_slow_apps_sheds_queues(void **state)
{
    (void)state;
    const char *extra[] = {
        "--queue-budget", "8MiB", "--max-payload", "64KiB", "--slow-grace",
        "600000",         NULL};
    rcd_t d;
    int port;
    long long limit = s_start_capped(&d, &port, 16 * MIB, extra);
    app_t apps[SLOW];
    memset(apps, 0, sizeof apps);
    rc_client_t *slow[SLOW + 1] = {NULL};
    char topic[16];
    for (int i = 0; i < SLOW; i++) {
        slow[i] = s_app(&d, &apps[i]);
        assert_non_null(slow[i]);
        snprintf(topic, sizeof topic, "t%d", i);
        assert_int_equal(rc_subscribe_wait(slow[i], "ns", topic, 5000), 0);
    }
    rc_client_t *pub = rcd_client(&d, NULL);
    assert_non_null(pub);
    enum { SIZE = 16 * 1024, EACH = 768 }; // 12 MiB per topic
    static char data[SIZE];
    memset(data, 'm', sizeof data);
    long long deadline = now_ms() + 60000;
    for (int n = 0; n < EACH; n++) {
        for (int i = 0; i < SLOW; i++) {
            snprintf(topic, sizeof topic, "t%d", i);
            while (rc_publish(pub, "ns", topic, data, sizeof data, RC_TEXT)) {
                assert_int_equal(errno, EAGAIN);
                assert_true(now_ms() < deadline);
                rc_dispatch(pub);
                usleep(1000);
            }
        }
        rc_dispatch(pub);
    }
    assert_int_equal(rc_flush(pub, 10000), 0);
    metric_t shed = {port, "roomcast_memory_shed_total{action=\"drop_queue\"}",
                     1};
    assert_true(wait_for(s_metric_reaches, &shed, NULL, 10000));
    //  alive, serving, and never far past its limit
    assert_int_equal(kill(d.pid, 0), 0);
    assert_non_null(strstr(http_get(port, "/healthz"), "200"));
    long long peak = s_status_kb(d.pid, "VmHWM");
    print_message("peak resident %lld KiB (limit %lld KiB), queues dropped "
                  "%lld\n",
                  peak / 1024, limit / 1024,
                  s_metric(port, "roomcast_memory_shed_total{action="
                                 "\"drop_queue\"}"));
    assert_true(peak > 0 && peak <= limit + 8 * MIB);
    //  what it says it holds is what the kernel says (within the kernel's
    //  own batching of resident counts: 64 pages per thread)
    long long before = s_status_kb(d.pid, "VmRSS");
    long long said = s_metric(port, "process_resident_memory_bytes");
    long long after = s_status_kb(d.pid, "VmRSS");
    long long low = before < after ? before : after;
    long long high = before > after ? before : after;
    print_message("resident %lld..%lld, metric %lld\n", low, high, said);
    assert_true(said >= low - 512 * 1024 && said <= high + 512 * 1024);
    assert_true(s_metric(port, "roomcast_dropped_total{reason=\"memory_"
                               "limit\"}") > 0);
    assert_true(s_logged(&d, "level=warn", "event=client_queue_shed"));
    assert_true(s_logged(&d, "level=warn", "event=memory_pressure"));
    //  each app, reading now, gets or is told of every message
    told_t told = {apps, SLOW, EACH};
    assert_true(wait_for(s_all_told, &told, slow, 30000));
    for (int i = 0; i < SLOW; i++) {
        assert_int_equal(apps[i].received + apps[i].missed, EACH);
    }
    long long gaps = 0;
    for (int i = 0; i < SLOW; i++) {
        gaps += apps[i].slow_gaps;
        rc_close(&slow[i]);
    }
    assert_true(gaps > 0);
    rc_close(&pub);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

typedef struct {
    rc_client_t *c;
    app_t *app;
    long long at_least;
} refused_t;

static bool s_refused(void *arg)
{
    refused_t *r = arg;
    return r->app->enospc >= r->at_least;
}

//  Presence sets past the cap are refused (ERR LIMIT), and so are new apps
//  and SUBs while it lasts; once the entries go, apps are let in again.
static void test_presence_past_the_cap_is_refused(void **state)
{
    (void)state;
    rcd_t d;
    int port;
    (void)s_start_capped(&d, &port, 6 * MIB, NULL);
    app_t app = {0};
    rc_client_t *c = s_app(&d, &app);
    assert_non_null(c);
    static char meta[16 * 1024];
    memset(meta, 'p', sizeof meta);
    enum { KEYS = 2000 }; // 32 MiB of meta, far past the headroom
    char key[32];
    rc_client_t *only[] = {c, NULL};
    for (int i = 0; i < KEYS && app.enospc == 0; i++) {
        snprintf(key, sizeof key, "k%d", i);
        while (rc_presence_set(c, "ns", "room", key, meta, sizeof meta)) {
            assert_int_equal(errno, EAGAIN);
            rc_dispatch(c);
            usleep(1000);
        }
        rc_dispatch(c);
    }
    refused_t r = {c, &app, 1};
    assert_true(wait_for(s_refused, &r, only, 10000));
    long long refused = s_metric(port, "roomcast_memory_shed_total{action="
                                       "\"refuse_presence\"}");
    assert_true(refused >= 1);
    assert_true(s_metric(port, "roomcast_memory_pressure") >= 1);
    assert_true(s_metric(port, "roomcast_presence_entries") < KEYS);
    //  a new app is refused: the sidecar is full
    rc_options_t o;
    rc_options_init(&o);
    rc_client_t *late = rc_connect(d.socket, &o);
    assert_null(late);
    assert_int_equal(errno, ENOSPC);
    assert_true(s_metric(port, "roomcast_memory_shed_total{action="
                               "\"refuse_client\"}") >= 1);
    //  and so is a SUB
    long long before = app.enospc;
    assert_int_equal(rc_subscribe(c, "ns", "more"), 0);
    r.at_least = before + 1;
    assert_true(wait_for(s_refused, &r, only, 10000));
    assert_true(s_logged(&d, "level=warn", "event=client_refused"));
    assert_true(s_logged(&d, "level=warn", "event=frame_refused"));
    //  the app leaves, its entries go, and apps are welcome again
    rc_close(&c);
    long long until = now_ms() + 10000;
    while (s_metric(port, "roomcast_memory_pressure") != 0 &&
           now_ms() < until) {
        usleep(50 * 1000);
    }
    assert_int_equal(s_metric(port, "roomcast_memory_pressure"), 0);
    late = rc_connect(d.socket, &o);
    assert_non_null(late);
    rc_close(&late);
    assert_int_equal(kill(d.pid, 0), 0);
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

//  A bad --memory-limit stops the start (exit 2), with the reason.
static void test_bad_limit_is_refused_at_start(void **state)
{
    (void)state;
    const char *small[] = {"--channel", "x", "--memory-limit", "1MiB", NULL};
    const char *word[] = {"--channel", "x", "--memory-limit", "lots", NULL};
    assert_int_equal(rcd_run(small, NULL), 2);
    assert_int_equal(rcd_run(word, NULL), 2);
}

int main(void)
{
    harness_deadline(240);
    s_sanitizer_options();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_to_slow_apps_sheds_queues),
        cmocka_unit_test(test_presence_past_the_cap_is_refused),
        cmocka_unit_test(test_bad_limit_is_refused_at_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
