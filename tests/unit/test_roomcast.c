/*  Unit tests: libroomcast's checks of its arguments and its error texts,
    on a client with no sidecar behind it (opts.retry). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "roomcast.h"

static int s_setup(void **state)
{
    rc_options_t o;
    rc_options_init(&o);
    o.retry = true;
    rc_client_t *c = rc_connect("/nonexistent/roomcast-unit.sock", &o);
    *state = c;
    return c ? 0 : -1;
}

static int s_teardown(void **state)
{
    rc_client_t *c = *state;
    rc_close(&c);
    return 0;
}

//  EINVAL is a bad name, flag or question: its text says so, not only
//  "name" (a control character in a topic is refused by the sidecar with
//  the same code).
static void test_einval_text_names_every_cause(void **state)
{
    (void)state;
    const char *text = rc_strerror(EINVAL);
    assert_non_null(strstr(text, "name"));
    assert_non_null(strstr(text, "control character"));
    assert_non_null(strstr(text, "flag"));
    assert_non_null(strstr(text, "query"));
}

static void test_every_documented_errno_has_a_text(void **state)
{
    (void)state;
    const int errs[] = {ENOTCONN,  EAGAIN,       EMSGSIZE,  EINVAL,
                        ETIMEDOUT, ENOBUFS,      ESHUTDOWN, EPROTO,
                        ENOENT,    ECONNREFUSED, EACCES,    ENOSPC};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const char *text = rc_strerror(errs[i]);
        assert_non_null(text);
        assert_string_not_equal(text, strerror(errs[i]));
    }
}

static void test_publish_refuses_bad_flags_and_names(void **state)
{
    rc_client_t *c = *state;
    assert_int_equal(rc_state(c), RC_DISCONNECTED);
    assert_int_equal(rc_publish(c, "ns", "t", "x", 1, 0x80), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rc_publish(c, "", "t", "x", 1, RC_TEXT), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rc_publish(c, "ns", "t", NULL, 1, RC_TEXT), -1);
    assert_int_equal(errno, EINVAL);
    //  a good publish without a sidecar is ENOTCONN, not EINVAL
    assert_int_equal(rc_publish(c, "ns", "t", "x", 1, RC_BINARY | RC_ECHO), -1);
    assert_int_equal(errno, ENOTCONN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_einval_text_names_every_cause),
        cmocka_unit_test(test_every_documented_errno_has_a_text),
        cmocka_unit_test_setup_teardown(
            test_publish_refuses_bad_flags_and_names, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
