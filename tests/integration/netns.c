/*  netns.c - network namespaces for the integration tests: see netns.h.
    Shared by test_netns.c and test_netns_partition.c. */
#include "netns.h"

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

extern char **environ;

static int s_hosts;                      // namespaces in use
static rcd_t *s_d;                       // the sidecars, s_hosts of them
static char s_ip[64];                    // path of the ip binary
static char s_ns[NETNS_MAX][32];         // namespace names
static bool s_ns_made[NETNS_MAX];        // created by us
static char s_dir[64];                   // temp dir: key, wrappers
static char s_files[NETNS_MAX + 1][128]; // files in s_dir (key last)
static char *s_del_argv[NETNS_MAX][5];   // ip netns del NAME
static struct sigaction s_prev_alarm;    // the harness's deadline handler

bool netns_find(char *out, size_t size, const char *name)
{
    const char *dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        if (access(path, X_OK) == 0) {
            snprintf(out, size, "%s", path);
            return true;
        }
    }
    *out = 0;
    return false;
}

int netns_run(const char *bin, char *const *argv, bool quiet, char *err,
              size_t errlen)
{
    int pfd[2] = {-1, -1};
    if (!quiet && pipe(pfd) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(quiet ? null : pfd[1], 2);
        execve(bin, argv, environ);
        _exit(127);
    }
    if (!quiet) {
        close(pfd[1]);
    }
    if (pid < 0) {
        if (!quiet) {
            close(pfd[0]);
        }
        return -1;
    }
    int status = -1;
    for (int i = 0; i < 1000; i++) { // 10 s
        if (waitpid(pid, &status, WNOHANG) == pid) {
            break;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        status = -1;
    }
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    int rc = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (!quiet) {
        char buf[512];
        ssize_t n = read(pfd[0], buf, sizeof buf - 1);
        close(pfd[0]);
        buf[n > 0 ? n : 0] = 0;
        char *nl = strchr(buf, '\n');
        if (nl) {
            *nl = 0;
        }
        if (err && errlen) {
            size_t k = strnlen(buf, errlen - 1);
            memcpy(err, buf, k);
            err[k] = 0;
        }
        if (rc != 0) {
            fprintf(stderr, "%s:", bin);
            for (int i = 1; argv[i]; i++) {
                fprintf(stderr, " %s", argv[i]);
            }
            fprintf(stderr, ": exit %d: %s\n", rc, buf);
        }
    }
    return rc;
}

int netns_ip(const char *first, ...)
{
    char *argv[24] = {"ip", (char *)first};
    int n = 2;
    va_list ap;
    va_start(ap, first);
    char *a;
    while (n < 23 && (a = va_arg(ap, char *))) {
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    return netns_run(s_ip, argv, false, NULL, 0);
}

const char *netns_name(int i)
{
    assert_true(i >= 0 && i < s_hosts);
    return s_ns[i];
}

const char *netns_ip_path(void)
{
    return s_ip;
}

const char *netns_dir(void)
{
    return s_dir;
}

// --- cleanup -----------------------------------------------------------------

//  Namespaces (their links and qdiscs go with them) and our files.
void netns_cleanup(void)
{
    for (int i = 0; i < s_hosts; i++) {
        if (s_ns_made[i]) {
            netns_run(s_ip, s_del_argv[i], true, NULL, 0);
            s_ns_made[i] = false;
        }
    }
    for (int i = 0; i < NETNS_MAX + 1; i++) {
        if (*s_files[i]) {
            unlink(s_files[i]);
            *s_files[i] = 0;
        }
    }
    if (*s_dir) {
        rmdir(s_dir);
        *s_dir = 0;
    }
}

static void s_cleanup_at_exit(void)
{
    netns_cleanup();
}

//  On a signal: kill the sidecars and remove their files (the harness's
//  deadline handler kills them but leaves the files), then ours.
static void s_signal_cleanup(void)
{
    for (int i = 0; i < s_hosts && s_d; i++) {
        if (s_d[i].pid > 0) {
            kill(s_d[i].pid, SIGKILL);
            waitpid(s_d[i].pid, NULL, 0);
            s_d[i].pid = 0;
        }
        if (*s_d[i].dir) {
            unlink(s_d[i].socket);
            unlink(s_d[i].log);
            rmdir(s_d[i].dir);
            *s_d[i].dir = 0;
        }
    }
    netns_cleanup();
}

static void s_on_alarm(int sig)
{
    s_signal_cleanup();
    if (s_prev_alarm.sa_handler != SIG_DFL &&
        s_prev_alarm.sa_handler != SIG_IGN) {
        s_prev_alarm.sa_handler(sig); // the harness's: message, exit 124
    }
    _exit(124);
}

static void s_on_term(int sig)
{
    s_signal_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

void netns_prepare(const char *prefix, int hosts, rcd_t *sidecars)
{
    assert_true(hosts > 0 && hosts <= NETNS_MAX);
    s_hosts = hosts;
    s_d = sidecars;
    for (int i = 0; i < hosts; i++) {
        snprintf(s_ns[i], sizeof s_ns[i], "%s-%d-%c", prefix, (int)getpid(),
                 'a' + i);
        s_del_argv[i][0] = "ip";
        s_del_argv[i][1] = "netns";
        s_del_argv[i][2] = "del";
        s_del_argv[i][3] = s_ns[i];
        s_del_argv[i][4] = NULL;
    }
    atexit(s_cleanup_at_exit); // after the harness's, which kills sidecars
    struct sigaction sa = {.sa_handler = s_on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &s_prev_alarm);
    sa.sa_handler = s_on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

// --- the network -------------------------------------------------------------

static bool s_make_namespaces(void)
{
    for (int i = 0; i < s_hosts; i++) {
        if (netns_ip("netns", "add", s_ns[i], NULL) != 0) {
            return false;
        }
        s_ns_made[i] = true;
    }
    return true;
}

//  Namespaces and links, or why not: returns true with why filled.
static bool s_skip_reason(char *why, size_t size, bool (*make_links)(void))
{
    if (geteuid() != 0) {
        snprintf(why, size, "not root");
        return true;
    }
    if (!netns_find(s_ip, sizeof s_ip, "ip")) {
        snprintf(why, size, "no ip binary (iproute2)");
        return true;
    }
    if (!s_make_namespaces()) {
        snprintf(why, size, "ip netns add failed");
        return true;
    }
    if (!make_links()) {
        snprintf(why, size, "bridge or veth links could not be made");
        return true;
    }
    return false;
}

void netns_skip_if_unavailable(bool (*make_links)(void))
{
    char why[128];
    if (s_skip_reason(why, sizeof why, make_links)) {
        printf("skipped: needs root and ip netns (%s)\n", why);
        fflush(stdout);
        netns_cleanup();
        skip();
    }
}

const char *netns_make_files(const char *dir_prefix)
{
    const char *bin = getenv("ROOMCASTD");
    char real[512];
    assert_non_null(realpath(bin ? bin : "build/release/roomcastd", real));
    snprintf(s_dir, sizeof s_dir, "%s-XXXXXX", dir_prefix);
    assert_non_null(mkdtemp(s_dir));
    snprintf(s_files[NETNS_MAX], sizeof s_files[NETNS_MAX], "%s/cluster.key",
             s_dir);
    assert_int_equal(write_key(s_files[NETNS_MAX]), 0);
    for (int i = 0; i < s_hosts; i++) {
        snprintf(s_files[i], sizeof s_files[i], "%s/roomcastd-%c", s_dir,
                 'a' + i);
        FILE *f = fopen(s_files[i], "w");
        assert_non_null(f);
        fprintf(f, "#!/bin/sh\nexec %s netns exec %s '%s' \"$@\"\n", s_ip,
                s_ns[i], real);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(s_files[i], 0700), 0);
    }
    return s_files[NETNS_MAX];
}

int netns_start(rcd_t *d, int i, const char *channel, const char *const *args)
{
    assert_true(i >= 0 && i < s_hosts);
    const char *saved = getenv("ROOMCASTD");
    char keep[512];
    snprintf(keep, sizeof keep, "%s", saved ? saved : "");
    setenv("ROOMCASTD", s_files[i], 1);
    int rc = rcd_start(d, channel, args);
    if (*keep) {
        setenv("ROOMCASTD", keep, 1);
    } else {
        unsetenv("ROOMCASTD");
    }
    return rc;
}
