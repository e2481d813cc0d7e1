/*  Building against libroomcast the way an app's build does, with
    pkg-config only: from the build tree (roomcast-uninstalled.pc), and the
    installed roomcast.pc following PREFIX from one make to the next. */
#include "harness.h"

#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

static char s_build[1024]; // absolute, e.g. /src/build/release
static char s_tmp[256];

//  Run a shell command; its stdout (and stderr) into out. Returns the exit
//  status.
static int s_sh(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_sh(char *out, size_t size, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
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
    const char *d = getenv("ROOMCASTD");
    char path[1024];
    snprintf(path, sizeof path, "%s", d ? d : "build/release/roomcastd");
    if (!realpath(dirname(path), s_build)) {
        return -1;
    }
    snprintf(s_tmp, sizeof s_tmp, "/tmp/rc-pkgconfig-XXXXXX");
    return mkdtemp(s_tmp) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char out[256];
    return s_sh(out, sizeof out, "rm -rf '%s'", s_tmp);
}

static void test_chat_builds_from_the_build_tree(void **state)
{
    (void)state;
    char out[8192];
    //  the build tree's .pc wins, and points into the tree
    assert_int_equal(s_sh(out, sizeof out,
                          "PKG_CONFIG_PATH='%s' pkg-config --cflags --libs "
                          "roomcast",
                          s_build),
                     0);
    assert_non_null(strstr(out, "/libclient"));
    char want[1100];
    snprintf(want, sizeof want, "-L%s ", s_build);
    assert_non_null(strstr(out, want));
    assert_int_equal(s_sh(out, sizeof out,
                          "PKG_CONFIG_PATH='%s' pkg-config --modversion "
                          "roomcast-uninstalled",
                          s_build),
                     0);
    //  examples/chat.c with nothing but what pkg-config says, out of the tree
    assert_int_equal(
        s_sh(out, sizeof out,
             "cd '%s' && cp '%s/../../examples/chat.c' . && "
             "cc -o chat chat.c $(PKG_CONFIG_PATH='%s' pkg-config --cflags "
             "--libs roomcast)",
             s_tmp, s_build, s_build),
        0);
    //  and it runs against the library in the tree: no sidecar there, so
    //  it says it cannot connect (not that a library is missing)
    int rc = s_sh(out, sizeof out,
                  "cd '%s' && LD_LIBRARY_PATH='%s' timeout 10 ./chat "
                  "--socket '%s/none.sock' </dev/null",
                  s_tmp, s_build, s_tmp);
    assert_int_not_equal(rc, 127);
    assert_null(strstr(out, "error while loading shared libraries"));
    assert_int_equal(s_sh(out, sizeof out,
                          "cd '%s' && LD_LIBRARY_PATH='%s' ldd ./chat", s_tmp,
                          s_build),
                     0);
    snprintf(want, sizeof want, "%s/libroomcast.so.0", s_build);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, "not found"));
}

static void test_installed_pc_follows_prefix(void **state)
{
    (void)state;
    char out[8192];
    //  a build directory of its own (only the .pc is made there), so the
    //  suite's build keeps its PREFIX
    const char *prefixes[] = {"/opt/rc-a", "/opt/rc-b", "/opt/rc-b",
                              "/usr/local"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s_sh(out, sizeof out,
                              "make --no-print-directory -s -C '%s/../..' "
                              "BUILD='%s/b' PREFIX=%s '%s/b/roomcast.pc' "
                              ">/dev/null && head -n1 '%s/b/roomcast.pc'",
                              s_build, s_tmp, prefixes[i], s_tmp, s_tmp),
                         0);
        char want[64];
        snprintf(want, sizeof want, "prefix=%s\n", prefixes[i]);
        assert_string_equal(out, want);
    }
}

int main(void)
{
    harness_deadline(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_builds_from_the_build_tree),
        cmocka_unit_test(test_installed_pc_follows_prefix),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
