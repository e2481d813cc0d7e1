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
    scope. Namespaces, links and files are removed at exit, on SIGTERM and
    SIGINT, and when the harness deadline fires. */
#include "harness.h"

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

extern char **environ;

static const char *const s_addr[HOSTS] = {"192.0.2.1", "192.0.2.2",
                                          "192.0.2.3"};

//  What cleanup needs, set up before anything is created so a signal
//  handler can undo it with async-signal-safe calls only.
static char s_ip[64];                 // path of the ip binary
static char s_ns[HOSTS][32];          // namespace names
static bool s_ns_made[HOSTS];         // created by us
static char s_dir[64];                // temp dir: key, wrappers
static char s_files[HOSTS + 1][128];  // files in s_dir
static char *s_del_argv[HOSTS][5];    // ip netns del NAME
static struct sigaction s_prev_alarm; // the harness's deadline handler
static rcd_t s_d[HOSTS];              // the sidecars

// --- running ip --------------------------------------------------------------

static bool s_find_ip(void)
{
    const char *paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip",
                           "/bin/ip"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (access(paths[i], X_OK) == 0) {
            snprintf(s_ip, sizeof s_ip, "%s", paths[i]);
            return true;
        }
    }
    return false;
}

//  Run ip with argv, quietly unless it fails (then its stderr is shown),
//  bounded.
//  Only async-signal-safe calls when quiet_errors is set (cleanup path).
static int s_run_ip(char *const *argv, bool quiet_errors)
{
    int err[2] = {-1, -1};
    if (!quiet_errors && pipe(err) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(quiet_errors ? null : err[1], 2);
        execve(s_ip, argv, environ);
        _exit(127);
    }
    if (!quiet_errors) {
        close(err[1]);
    }
    if (pid < 0) {
        if (!quiet_errors) {
            close(err[0]);
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
    if (!quiet_errors) {
        char buf[512];
        ssize_t n = read(err[0], buf, sizeof buf - 1);
        close(err[0]);
        if (rc != 0) {
            buf[n > 0 ? n : 0] = 0;
            fprintf(stderr, "ip:");
            for (int i = 1; argv[i]; i++) {
                fprintf(stderr, " %s", argv[i]);
            }
            fprintf(stderr, ": exit %d: %s", rc, buf);
        }
    }
    return rc;
}

//  ip ARGS... (NULL-terminated). Returns ip's exit status.
static int s_ip_cmd(const char *first, ...)
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
    return s_run_ip(argv, false);
}

// --- cleanup -----------------------------------------------------------------

static void s_cleanup(void)
{
    for (int i = 0; i < HOSTS; i++) {
        if (s_ns_made[i]) {
            s_run_ip(s_del_argv[i], true); // its links go with it
            s_ns_made[i] = false;
        }
    }
    for (int i = 0; i < HOSTS + 1; i++) {
        if (*s_files[i]) {
            unlink(s_files[i]);
        }
    }
    if (*s_dir) {
        rmdir(s_dir);
        *s_dir = 0;
    }
}

//  On a signal: kill the sidecars and remove their files (the harness's
//  deadline handler kills them but leaves the files), then ours.
static void s_signal_cleanup(void)
{
    for (int i = 0; i < HOSTS; i++) {
        if (s_d[i].pid > 0) {
            kill(s_d[i].pid, SIGKILL);
            waitpid(s_d[i].pid, NULL, 0);
            s_d[i].pid = 0;
        }
        if (*s_d[i].dir) {
            unlink(s_d[i].socket);
            unlink(s_d[i].log);
            rmdir(s_d[i].dir);
        }
    }
    s_cleanup();
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

//  Names, paths and handlers, before anything exists.
static void s_prepare(void)
{
    for (int i = 0; i < HOSTS; i++) {
        snprintf(s_ns[i], sizeof s_ns[i], "roomcast-%d-%c", (int)getpid(),
                 'a' + i);
        s_del_argv[i][0] = "ip";
        s_del_argv[i][1] = "netns";
        s_del_argv[i][2] = "del";
        s_del_argv[i][3] = s_ns[i];
        s_del_argv[i][4] = NULL;
    }
    atexit(s_cleanup); // runs after the harness's, which kills sidecars
    struct sigaction sa = {.sa_handler = s_on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &s_prev_alarm);
    sa.sa_handler = s_on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

// --- the network -------------------------------------------------------------

//  Create the namespaces, or explain why not. Returns false to skip.
static bool s_make_namespaces(void)
{
    for (int i = 0; i < HOSTS; i++) {
        if (s_ip_cmd("netns", "add", s_ns[i], NULL) != 0) {
            return false;
        }
        s_ns_made[i] = true;
    }
    return true;
}

//  The bridge in A, a veth from it to each other namespace, addresses,
//  every link up. Returns false (ip said why on stderr) to skip.
static bool s_make_links(void)
{
    char *a = s_ns[0], *b = s_ns[1], *c = s_ns[2];
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
        if (s_run_ip(cmds[i], false) != 0) {
            return false;
        }
    }
    return true;
}

//  A key and one wrapper per namespace that runs roomcastd inside it.
static void s_make_files(const char **key)
{
    const char *bin = getenv("ROOMCASTD");
    char real[512];
    assert_non_null(realpath(bin ? bin : "build/release/roomcastd", real));
    snprintf(s_dir, sizeof s_dir, "/tmp/roomcast-netns-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    snprintf(s_files[HOSTS], sizeof s_files[HOSTS], "%s/cluster.key", s_dir);
    assert_int_equal(write_key(s_files[HOSTS]), 0);
    *key = s_files[HOSTS];
    for (int i = 0; i < HOSTS; i++) {
        snprintf(s_files[i], sizeof s_files[i], "%s/roomcastd-%c", s_dir,
                 'a' + i);
        FILE *f = fopen(s_files[i], "w");
        assert_non_null(f);
        fprintf(f, "#!/bin/sh\nexec %s netns exec %s '%s' \"$@\"\n", s_ip,
                s_ns[i], real);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(s_files[i], 0700), 0);
    }
}

// --- the test ----------------------------------------------------------------

static bool s_skip_reason(char *why, size_t size)
{
    if (geteuid() != 0) {
        snprintf(why, size, "not root");
        return true;
    }
    if (!s_find_ip()) {
        snprintf(why, size, "no ip binary (iproute2)");
        return true;
    }
    if (!s_make_namespaces()) {
        snprintf(why, size, "ip netns add failed");
        return true;
    }
    if (!s_make_links()) {
        snprintf(why, size, "bridge or veth links could not be made");
        return true;
    }
    return false;
}

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
    const char *saved = getenv("ROOMCASTD");
    char keep[512];
    snprintf(keep, sizeof keep, "%s", saved ? saved : "");
    setenv("ROOMCASTD", s_files[i], 1);
    int rc = rcd_start(d, "netns", args);
    if (*keep) {
        setenv("ROOMCASTD", keep, 1);
    } else {
        unsetenv("ROOMCASTD");
    }
    assert_int_equal(rc, 0);
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
    char why[128];
    if (s_skip_reason(why, sizeof why)) {
        printf("skipped: needs root and ip netns (%s)\n", why);
        fflush(stdout);
        s_cleanup();
        skip();
    }
    const char *key;
    s_make_files(&key);
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
    s_cleanup();
    for (int i = 0; i < HOSTS; i++) {
        char path[128];
        snprintf(path, sizeof path, "/run/netns/%s", s_ns[i]);
        assert_int_equal(access(path, F_OK), -1);
    }
}

int main(void)
{
    harness_deadline(50);
    s_prepare();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_hosts_in_namespaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
