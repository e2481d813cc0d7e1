/*  roomcastctl against a real sidecar, as an operator would type it. */
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
#include <sys/wait.h>
#include <cmocka.h>

static rcd_t s_d;

//  Run roomcastctl with args; its stdout into out. Returns the exit status.
static int s_ctl(const char *args, const char *input, char *out, size_t size)
{
    const char *bin = getenv("ROOMCASTCTL");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s%s%s timeout 10 %s -s %s %s",
             input ? "printf '%s' '" : "", input ? input : "",
             input ? "' |" : "", bin ? bin : "build/release/roomcastctl",
             s_d.socket, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int s_setup(void **state)
{
    (void)state;
    return rcd_start(&s_d, "ctltest", NULL);
}

static int s_teardown(void **state)
{
    (void)state;
    int rc = rcd_stop(&s_d, SIGTERM);
    rcd_cleanup(&s_d);
    return rc;
}

static void test_status_and_help(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(s_ctl("status", NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "channel"));
    assert_non_null(strstr(out, "ctltest"));
    assert_non_null(strstr(out, "readable"));
    assert_int_equal(s_ctl("--json status", NULL, out, sizeof out), 0);
    assert_int_equal(out[0], '{');
    assert_non_null(strstr(out, "\"channel\":\"ctltest\""));
    assert_non_null(strstr(out, "\"writable\":true"));
    assert_int_equal(s_ctl("--help", NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "subscribe TOPIC"));
    assert_int_equal(s_ctl("frobnicate", NULL, out, sizeof out), 2);
}

typedef struct {
    rc_client_t *c;
    const char *topic;
} numsub_t;

static bool s_has_sub(void *arg)
{
    numsub_t *n = arg;
    rc_reply_t *r;
    if (rc_query(n->c, "numsub", n->topic, &r, 1000)) {
        return false;
    }
    bool ok = strcmp(rc_reply_value(r, 0), "1") == 0;
    rc_reply_destroy(&r);
    return ok;
}

static void test_publish_subscribe_numsub_topics(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "timeout 10 %s -s %s --json subscribe room -c 2",
             getenv("ROOMCASTCTL") ? getenv("ROOMCASTCTL")
                                   : "build/release/roomcastctl",
             s_d.socket);
    FILE *tail = popen(cmd, "r");
    assert_non_null(tail);
    rc_client_t *c = rcd_client(&s_d, NULL);
    numsub_t n = {c, "default\troom"};
    assert_true(wait_for(s_has_sub, &n, NULL, 5000));
    char out[8192];
    assert_int_equal(s_ctl("numsub room", NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "room"));
    assert_non_null(strstr(out, " 1"));
    assert_int_equal(s_ctl("topics 'ro*'", NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "room"));
    assert_int_equal(s_ctl("topics 'zz*'", NULL, out, sizeof out), 0);
    assert_null(strstr(out, "room"));
    assert_int_equal(s_ctl("publish room 'hello world'", NULL, out, sizeof out),
                     0);
    assert_int_equal(s_ctl("publish --binary room -", "abc", out, sizeof out),
                     0);
    char got[4096];
    size_t len = fread(got, 1, sizeof got - 1, tail);
    got[len] = 0;
    assert_int_equal(WEXITSTATUS(pclose(tail)), 0);
    assert_non_null(strstr(got, "\"data\":\"hello world\""));
    assert_non_null(strstr(got, "\"kind\":\"binary\""));
    assert_non_null(strstr(got, "\"data\":\"YWJj\"")); // base64 of abc
    rc_close(&c);
}

//  A refusal by the sidecar is an error exit with the sidecar's reason,
//  never exit 0 (issue 16 item 8): a topic with a control character passes
//  the library's checks and is refused by the sidecar; removing a link
//  that is not there says so.
static void test_refusals_exit_non_zero_with_the_reason(void **state)
{
    (void)state;
    char out[4096];
    int rc =
        s_ctl("publish \"$(printf 'ro\\tom')\" x 2>&1", NULL, out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "refused by the sidecar"));
    assert_non_null(strstr(out, "control character"));
    rc = s_ctl("peer remove tcp://127.0.0.1:1 2>&1", NULL, out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "no mesh"));
    assert_null(strstr(out, "over-long name"));
}

int main(void)
{
    harness_deadline(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_help),
        cmocka_unit_test(test_publish_subscribe_numsub_topics),
        cmocka_unit_test(test_refusals_exit_non_zero_with_the_reason),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
