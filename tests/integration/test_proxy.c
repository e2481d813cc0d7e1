/*  roomcastd proxy, through the binaries (issue 17, proxy parity): a proxy
    configured by a file and the environment, two sidecars in proxy mode
    behind it, a message crossing, and /metrics, /healthz and /readyz
    telling the truth before, while and after the sidecars are there. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static char s_dir[] = "/tmp/roomcast-proxy-XXXXXX";

typedef struct {
    pid_t pid;
    int port;      // frontend; the backend is port + 1
    int http;      // its HTTP port
    char log[300]; // its stderr
} proxy_t;

//  Start `roomcastd proxy` with only a config file (ROOMCAST_CONFIG) and
//  the environment: the file names the frontend, --ready-peers 2 and
//  --hwm 3; the environment sets the HTTP address, JSON logs and --hwm 5,
//  which must win over the file's.
static void s_proxy_start(proxy_t *p)
{
    p->port = free_port_pair(0);
    p->http = free_port();
    assert_true(p->port > 0 && p->http > 0);
    char conf[300], text[512], http[64];
    snprintf(conf, sizeof conf, "%s/proxy.conf", s_dir);
    snprintf(p->log, sizeof p->log, "%s/proxy.log", s_dir);
    snprintf(text, sizeof text,
             "# roomcastd proxy settings\n"
             "frontend = tcp://127.0.0.1:%d\n"
             "ready-peers = 2\n"
             "hwm = 3\n",
             p->port);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(http, sizeof http, "127.0.0.1:%d", p->http);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // dies with the test, whatever
        if (!freopen(p->log, "w", stderr)) {
            _exit(127);
        }
        setenv("ROOMCAST_CONFIG", conf, 1);
        setenv("ROOMCAST_HTTP", http, 1);
        setenv("ROOMCAST_LOG_FORMAT", "json", 1);
        setenv("ROOMCAST_HWM", "5", 1);
        const char *bin = getenv("ROOMCASTD");
        execl(bin ? bin : "build/release/roomcastd", "roomcastd", "proxy",
              (char *)NULL);
        _exit(127);
    }
}

//  The status code of GET path, 0 when nothing answers.
static int s_status(int port, const char *path, char *body, size_t size)
{
    const char *r = http_get(port, path);
    int status = 0;
    if (sscanf(r, "HTTP/1.1 %d", &status) != 1) {
        return 0;
    }
    const char *b = strstr(r, "\r\n\r\n");
    if (body) {
        snprintf(body, size, "%s", b ? b + 4 : "");
    }
    return status;
}

typedef struct {
    int port;
    const char *path;
    int want;
} probe_t;

static bool s_answers(void *arg)
{
    probe_t *p = arg;
    return s_status(p->port, p->path, NULL, 0) == p->want;
}

//  The value of one sample line of /metrics ("name{labels}"), -1 if absent.
static double s_metric(int port, const char *sample)
{
    char *r = http_get(port, "/metrics");
    size_t len = strlen(sample);
    for (char *line = strstr(r, "\r\n\r\n"); line; line = strchr(line, '\n')) {
        line++;
        if (strncmp(line, sample, len) == 0 && line[len] == ' ') {
            return strtod(line + len + 1, NULL);
        }
    }
    return -1;
}

static void test_proxy_parity(void **state)
{
    (void)state;
    proxy_t p;
    s_proxy_start(&p);
    probe_t health = {p.http, "/healthz", 200};
    assert_true(wait_for(s_answers, &health, NULL, 10000));

    //  bound, but no sidecar yet: not ready, and it says why
    char body[1024];
    assert_int_equal(s_status(p.http, "/readyz", body, sizeof body), 503);
    assert_non_null(strstr(body, "0 of 2 sidecars connected to the frontend"));
    assert_true(s_metric(p.http, "roomcast_proxy_ready") == 0);
    assert_true(s_metric(p.http, "roomcast_proxy_hwm") == 5); // env > file

    char key[300], via[64];
    snprintf(key, sizeof key, "%s/cluster.key", s_dir);
    assert_int_equal(write_key(key), 0);
    snprintf(via, sizeof via, "tcp://127.0.0.1:%d", p.port);
    const char *extra[] = {"--proxy",     via,   "--key-file", key,
                           "--heartbeat", "100", NULL};
    rcd_t a, b;
    assert_int_equal(rcd_start(&a, "proxytest", extra), 0);
    assert_int_equal(rcd_start(&b, "proxytest", extra), 0);
    assert_true(wait_live_peers(a.socket, 1, 10000));
    assert_true(wait_live_peers(b.socket, 1, 10000));
    probe_t ready = {p.http, "/readyz", 200};
    assert_true(wait_for(s_answers, &ready, NULL, 10000));

    //  a message crosses the proxy
    rc_client_t *pub = rcd_client(&a, NULL), *sub = rcd_client(&b, NULL);
    assert_non_null(pub);
    assert_non_null(sub);
    assert_int_equal(rc_subscribe_wait(sub, "ns", "room", 10000), 0);
    assert_int_equal(rc_publish(pub, "ns", "room", "across", 6, 0), 0);
    rc_msg_t *m;
    assert_int_equal(rc_recv(sub, &m, 10000), 0);
    assert_int_equal(rc_msg_size(m), 6);
    assert_memory_equal(rc_msg_data(m), "across", 6);
    rc_msg_destroy(&m);

    //  what /metrics says is what happened
    assert_true(s_metric(p.http, "roomcast_proxy_peers{socket=\"frontend\"}") ==
                2);
    assert_true(s_metric(p.http, "roomcast_proxy_peers{socket=\"backend\"}") ==
                2);
    assert_true(s_metric(p.http, "roomcast_proxy_ready") == 1);
    assert_true(
        s_metric(p.http,
                 "roomcast_proxy_messages_total{direction=\"publish\"}") > 0);
    assert_true(
        s_metric(p.http, "roomcast_proxy_bytes_total{direction=\"publish\"}") >
        0);
    assert_true(s_metric(p.http, "roomcast_proxy_messages_total{direction="
                                 "\"subscribe\"}") > 0);
    //  HB, PR, and per sidecar its ack address, a marker, the room's key
    assert_true(s_metric(p.http, "roomcast_proxy_subscriptions") >= 6);
    assert_true(s_metric(p.http, "process_resident_memory_bytes") > 0);
    assert_true(
        s_metric(p.http,
                 "roomcast_build_info{version=\"" ROOMCAST_VERSION_STRING
                 "\"}") == 1);
    rc_close(&pub);
    rc_close(&sub);

    //  one sidecar gone: not ready again (2 wanted on each socket)
    assert_int_equal(rcd_stop(&a, SIGTERM), 0);
    probe_t unready = {p.http, "/readyz", 503};
    assert_true(wait_for(s_answers, &unready, NULL, 10000));
    assert_int_equal(s_status(p.http, "/readyz", body, sizeof body), 503);
    assert_non_null(strstr(body, "1 of 2 sidecars"));
    assert_int_equal(rcd_stop(&b, SIGTERM), 0);
    rcd_cleanup(&a);
    rcd_cleanup(&b);

    kill(p.pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(p.pid, &status, 0), p.pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    //  logs: JSON lines (ROOMCAST_LOG_FORMAT), the file named in them
    FILE *f = fopen(p.log, "r");
    assert_non_null(f);
    char line[2048];
    bool started = false, stopped = false;
    while (fgets(line, sizeof line, f)) {
        assert_true(line[0] == '{');
        if (strstr(line, "\"event\":\"proxy_started\"")) {
            started = strstr(line, "proxy.conf") && strstr(line, "\"hwm\":5");
        }
        stopped |= strstr(line, "\"event\":\"proxy_stopped\"") != NULL;
    }
    fclose(f);
    assert_true(started);
    assert_true(stopped);
}

//  A sidecar that stops reading (SIGSTOP) loses what its proxy link cannot
//  hold (--hwm 5 here), the proxy counts it, and the other sidecar still
//  gets messages: the proxy neither stops nor grows for one slow link.
static void test_proxy_drops_for_a_stopped_sidecar(void **state)
{
    (void)state;
    proxy_t p;
    s_proxy_start(&p);
    probe_t health = {p.http, "/healthz", 200};
    assert_true(wait_for(s_answers, &health, NULL, 10000));
    char key[300], via[64];
    snprintf(key, sizeof key, "%s/cluster2.key", s_dir);
    assert_int_equal(write_key(key), 0);
    snprintf(via, sizeof via, "tcp://127.0.0.1:%d", p.port);
    const char *extra[] = {"--proxy",     via,   "--key-file", key,
                           "--heartbeat", "100", NULL};
    rcd_t d[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rcd_start(&d[i], "proxydrop", extra), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(wait_live_peers(d[i].socket, 2, 10000));
    }
    rc_client_t *pub = rcd_client(&d[0], NULL);
    rc_client_t *slow = rcd_client(&d[1], NULL);
    rc_client_t *fast = rcd_client(&d[2], NULL);
    assert_int_equal(rc_subscribe_wait(slow, "ns", "flood", 10000), 0);
    assert_int_equal(rc_subscribe_wait(fast, "ns", "flood", 10000), 0);
    kill(d[1].pid, SIGSTOP);
    static char payload[1000];
    memset(payload, 'x', sizeof payload);
    int sent = 0, got = 0;
    rc_msg_t *m;
    for (; sent < 20000; sent++) { // 20 MB: past every socket buffer
        while (rc_publish(pub, "ns", "flood", payload, sizeof payload, 0)) {
            assert_int_equal(errno, EAGAIN);
            rc_dispatch(pub);
            while (rc_recv(fast, &m, 0) == 0) {
                got++;
                rc_msg_destroy(&m);
            }
        }
    }
    assert_int_equal(rc_flush(pub, 30000), 0);
    while (got < sent && rc_recv(fast, &m, 1000) == 0) { // until quiet
        got++;
        rc_msg_destroy(&m);
    }
    //  the other link carried on (at --hwm 5 a flood overflows it too,
    //  now and then: what it got is counted, not required whole)
    assert_true(got > 0);
    double dropped =
        s_metric(p.http, "roomcast_proxy_dropped_total{direction=\"publish\"}");
    assert_true(dropped > 0);
    assert_true(s_metric(p.http, "process_resident_memory_bytes") <
                64.0 * 1024 * 1024);
    kill(d[1].pid, SIGCONT);
    rc_close(&pub);
    rc_close(&slow);
    rc_close(&fast);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rcd_stop(&d[i], SIGTERM), 0);
        rcd_cleanup(&d[i]);
    }
    kill(p.pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(p.pid, &status, 0), p.pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

//  A flag wins over the environment, and a bad setting in the file is
//  refused with the file and line named, exit 2.
static void test_proxy_settings_layers(void **state)
{
    (void)state;
    char conf[300], err[300];
    snprintf(conf, sizeof conf, "%s/bad.conf", s_dir);
    snprintf(err, sizeof err, "%s/bad.err", s_dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs("frontend = tcp://127.0.0.1:7450\nchannel = x\n", f);
    fclose(f);
    const char *args[] = {"proxy", "--config", conf, NULL};
    assert_int_equal(rcd_run(args, err), 2);
    f = fopen(err, "r");
    assert_non_null(f);
    char line[1024] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "bad.conf:2: unknown setting 'channel'"));

    //  ROOMCAST_HWM=0 is refused (exit 2), unless a flag overrides it: then
    //  the proxy gets as far as binding a port we hold (exit 1)
    int port = free_port_pair(0);
    assert_true(port > 0);
    int held = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(held, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(held, 1), 0);
    char front[64];
    snprintf(front, sizeof front, "tcp://127.0.0.1:%d", port);
    setenv("ROOMCAST_HWM", "0", 1);
    const char *env_only[] = {"proxy", "--frontend", front, NULL};
    assert_int_equal(rcd_run(env_only, err), 2);
    const char *flag[] = {"proxy", "--frontend", front, "--hwm", "9", NULL};
    assert_int_equal(rcd_run(flag, err), 1);
    unsetenv("ROOMCAST_HWM");
    close(held);
}

static int s_setup(void **state)
{
    (void)state;
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    harness_deadline(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_parity),
        cmocka_unit_test(test_proxy_drops_for_a_stopped_sidecar),
        cmocka_unit_test(test_proxy_settings_layers),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
