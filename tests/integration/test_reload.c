/*  SIGHUP reloads what can be reloaded and says so; it never ends the
    sidecar. Key rotation: two sidecars whose key file changes, each told
    with SIGHUP, go on relaying under the new key. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

//  How many lines of d's log hold every one of the words.
static int s_log_count(const rcd_t *d, const char *a, const char *b)
{
    FILE *f = fopen(d->log, "r");
    int n = 0;
    char line[2048];
    while (f && fgets(line, sizeof line, f)) {
        n += strstr(line, a) && (!b || strstr(line, b));
    }
    if (f) {
        fclose(f);
    }
    return n;
}

typedef struct {
    const rcd_t *d;
    const char *a, *b;
    int want;
} logwait_t;

static bool s_logged(void *arg)
{
    logwait_t *w = arg;
    return s_log_count(w->d, w->a, w->b) >= w->want;
}

static void s_wait_log(const rcd_t *d, const char *a, const char *b, int want)
{
    logwait_t w = {d, a, b, want};
    assert_true(wait_for(s_logged, &w, NULL, 10000));
}

//  A message from pub reaches sub (retried: a subscription may still be
//  on its way after a rotation).
static void s_flows(rc_client_t *pub, rc_client_t *sub, const char *text)
{
    long long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        assert_int_equal(
            rc_publish(pub, "ns", "room", text, strlen(text), RC_TEXT), 0);
        rc_msg_t *m;
        if (rc_recv(sub, &m, 200) == 0) {
            assert_memory_equal(rc_msg_data(m), text, strlen(text));
            rc_msg_destroy(&m);
            while (rc_recv(sub, &m, 100) == 0) { // retries that got through
                rc_msg_destroy(&m);
            }
            return;
        }
    }
    fail_msg("'%s' did not cross the mesh", text);
}

static void test_sighup_reloads_keys_and_never_exits(void **state)
{
    (void)state;
    char key[300], fp_before[64] = "";
    snprintf(key, sizeof key, "/tmp/roomcast-reload-%d.key", (int)getpid());
    rcd_t d[2];
    const char *fast[] = {"--heartbeat", "100", NULL};
    assert_int_equal(rcd_mesh_pair(d, "reload", key, fast), 0);
    rc_client_t *pub = rcd_client(&d[0], NULL), *sub = rcd_client(&d[1], NULL);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "room", 10000), 0);
    s_flows(pub, sub, "before");

    //  same key: reloaded, unchanged, still running
    assert_int_equal(kill(d[0].pid, SIGHUP), 0);
    s_wait_log(&d[0], "reloaded", "keys=unchanged", 1);
    {
        FILE *log = fopen(d[0].log, "r");
        char line[2048];
        while (log && fgets(line, sizeof line, log)) {
            char *p = strstr(line, "key_fingerprint=");
            if (p && strstr(line, "reloaded")) {
                sscanf(p, "key_fingerprint=%63s", fp_before);
            }
        }
        if (log) {
            fclose(log);
        }
    }
    assert_true(*fp_before);

    //  a new key in the file: both sidecars rotate and relay on
    assert_int_equal(write_key(key), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kill(d[i].pid, SIGHUP), 0);
        s_wait_log(&d[i], "reloaded", "keys=rotated", 1);
    }
    assert_int_equal(s_log_count(&d[0], "reloaded", fp_before), 1);
    s_flows(pub, sub, "after rotation");

    //  an unreadable key file: the reload fails, loudly; nothing else does
    assert_int_equal(unlink(key), 0);
    assert_int_equal(kill(d[0].pid, SIGHUP), 0);
    s_wait_log(&d[0], "reload_failed", NULL, 1);
    s_flows(pub, sub, "after a failed reload");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kill(d[i].pid, 0), 0); // alive
    }
    rc_close(&pub);
    rc_close(&sub);
    assert_int_equal(rcd_mesh_pair_stop(d), 0);
}

int main(void)
{
    harness_deadline(120);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sighup_reloads_keys_and_never_exits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
