/*  Unit tests: memcap (the memory cap's levels, its shed target, the
    cgroup limit and resident size read from a /proc and /sys of the
    test's own). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "memcap.h"

#define MIB (1024ull * 1024)

static void test_levels_rise_at_their_thresholds(void **state)
{
    (void)state;
    uint64_t limit = 100 * MIB;
    const struct {
        uint64_t resident;
        memcap_level_t want;
    } rows[] = {
        {0, MEMCAP_OK},
        {84 * MIB, MEMCAP_OK},
        {85 * MIB, MEMCAP_REFUSE},
        {94 * MIB, MEMCAP_REFUSE},
        {95 * MIB, MEMCAP_SHED},
        {99 * MIB, MEMCAP_SHED},
        {100 * MIB, MEMCAP_CRITICAL},
        {500 * MIB, MEMCAP_CRITICAL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_int_equal(memcap_level(limit, rows[i].resident, MEMCAP_OK),
                         rows[i].want);
    }
}

//  A level is left 5% below where it starts: no flapping at a threshold.
static void test_levels_fall_with_hysteresis(void **state)
{
    (void)state;
    uint64_t limit = 100 * MIB;
    assert_int_equal(memcap_level(limit, 81 * MIB, MEMCAP_REFUSE),
                     MEMCAP_REFUSE);
    assert_int_equal(memcap_level(limit, 80 * MIB - 1, MEMCAP_REFUSE),
                     MEMCAP_OK);
    assert_int_equal(memcap_level(limit, 91 * MIB, MEMCAP_SHED), MEMCAP_SHED);
    assert_int_equal(memcap_level(limit, 89 * MIB, MEMCAP_SHED), MEMCAP_REFUSE);
    assert_int_equal(memcap_level(limit, 96 * MIB, MEMCAP_CRITICAL),
                     MEMCAP_CRITICAL);
    assert_int_equal(memcap_level(limit, 94 * MIB, MEMCAP_CRITICAL),
                     MEMCAP_SHED);
    assert_int_equal(memcap_level(limit, 10 * MIB, MEMCAP_CRITICAL), MEMCAP_OK);
    //  the hysteresis only holds a level, never raises one
    assert_int_equal(memcap_level(limit, 91 * MIB, MEMCAP_REFUSE),
                     MEMCAP_REFUSE);
    //  huge values do not overflow
    assert_int_equal(memcap_level(UINT64_MAX, UINT64_MAX, MEMCAP_OK),
                     MEMCAP_CRITICAL);
    assert_int_equal(memcap_level(1, UINT64_MAX, MEMCAP_OK), MEMCAP_CRITICAL);
}

static void test_shed_target_is_the_excess_over_80_percent(void **state)
{
    (void)state;
    assert_int_equal(memcap_shed_target(100 * MIB, 97 * MIB), 17 * MIB);
    assert_int_equal(memcap_shed_target(100 * MIB, 80 * MIB), 0);
    assert_int_equal(memcap_shed_target(100 * MIB, 10 * MIB), 0);
    assert_string_equal(memcap_level_name(MEMCAP_SHED), "shed");
    assert_string_equal(memcap_level_name(MEMCAP_CRITICAL), "critical");
}

//  A directory tree of the test's own.
static char s_root[64];

static void s_write(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_root, rel);
    for (char *p = path + strlen(s_root) + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_root, sizeof s_root, "/tmp/memcap-test-%d", (int)getpid());
    mkdir(s_root, 0755);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_root);
    return system(cmd) == 0 ? 0 : -1;
}

static uint64_t s_limit(void)
{
    char proc[128], sys[128];
    snprintf(proc, sizeof proc, "%s/proc", s_root);
    snprintf(sys, sizeof sys, "%s/sys", s_root);
    return memcap_cgroup_limit(proc, sys);
}

static void test_cgroup_v2_limit(void **state)
{
    (void)state;
    s_teardown(NULL);
    s_setup(NULL);
    s_write("proc/self/cgroup", "0::/kubepods/pod1/c1\n");
    s_write("sys/kubepods/pod1/c1/memory.max", "536870912\n");
    s_write("sys/kubepods/pod1/memory.max", "max\n");
    s_write("sys/memory.max", "max\n");
    assert_int_equal(s_limit(), 512 * MIB);
    //  an ancestor's lower limit rules
    s_write("sys/kubepods/memory.max", "268435456\n");
    assert_int_equal(s_limit(), 256 * MIB);
    //  "max" all the way up: no limit
    s_write("sys/kubepods/memory.max", "max\n");
    s_write("sys/kubepods/pod1/c1/memory.max", "max\n");
    assert_int_equal(s_limit(), 0);
}

//  In a cgroup namespace (a container) the process's cgroup is the root.
static void test_cgroup_v2_namespaced_root(void **state)
{
    (void)state;
    s_teardown(NULL);
    s_setup(NULL);
    s_write("proc/self/cgroup", "0::/\n");
    s_write("sys/memory.max", "104857600\n");
    assert_int_equal(s_limit(), 100 * MIB);
}

static void test_cgroup_v1_limit(void **state)
{
    (void)state;
    s_teardown(NULL);
    s_setup(NULL);
    s_write("proc/self/cgroup",
            "9:pids:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n");
    s_write("sys/memory/docker/abc/memory.limit_in_bytes", "67108864\n");
    s_write("sys/memory/memory.limit_in_bytes", "9223372036854771712\n");
    assert_int_equal(s_limit(), 64 * MIB);
    //  v1's "unlimited": the largest page multiple below 2^63
    s_write("sys/memory/docker/abc/memory.limit_in_bytes",
            "9223372036854771712\n");
    assert_int_equal(s_limit(), 0);
}

static void test_no_cgroup_no_limit(void **state)
{
    (void)state;
    s_teardown(NULL);
    s_setup(NULL);
    assert_int_equal(s_limit(), 0);
    s_write("proc/self/cgroup", "0::/x\n");
    s_write("sys/x/memory.max", "not a number\n");
    assert_int_equal(s_limit(), 0);
}

static void test_resident_from_statm(void **state)
{
    (void)state;
    s_teardown(NULL);
    s_setup(NULL);
    char proc[128];
    snprintf(proc, sizeof proc, "%s/proc", s_root);
    assert_int_equal(memcap_resident(proc), 0); // no file
    s_write("proc/self/statm", "5000 1000 400 6 0 89 0\n");
    assert_int_equal(memcap_resident(proc),
                     1000 * (uint64_t)sysconf(_SC_PAGESIZE));
    //  and this process's own, from the real /proc
    assert_true(memcap_resident("/proc") > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_rise_at_their_thresholds),
        cmocka_unit_test(test_levels_fall_with_hysteresis),
        cmocka_unit_test(test_shed_target_is_the_excess_over_80_percent),
        cmocka_unit_test(test_cgroup_v2_limit),
        cmocka_unit_test(test_cgroup_v2_namespaced_root),
        cmocka_unit_test(test_cgroup_v1_limit),
        cmocka_unit_test(test_no_cgroup_no_limit),
        cmocka_unit_test(test_resident_from_statm),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
