/*  A bad endpoint, port or address is an error at start: the real
    roomcastd (sidecar and proxy) exits 2 with one line that names the
    setting, the value and what is wrong, before it binds or logs anything
    else. Nothing here listens on the network: every run stops at its
    configuration. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct {
    char err[64];  // the daemon's stderr
    char key[64];  // a valid cluster key (so only the address is wrong)
    char conf[64]; // a config file
    char sock[64]; // the app socket, were the sidecar to start
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx) {
        return -1;
    }
    snprintf(fx->err, sizeof fx->err, "/tmp/roomcast-cfgerr-%d.log",
             (int)getpid());
    snprintf(fx->key, sizeof fx->key, "/tmp/roomcast-cfgerr-%d.key",
             (int)getpid());
    snprintf(fx->conf, sizeof fx->conf, "/tmp/roomcast-cfgerr-%d.conf",
             (int)getpid());
    snprintf(fx->sock, sizeof fx->sock, "/tmp/roomcast-cfgerr-%d.sock",
             (int)getpid());
    if (write_key(fx->key)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    unlink(fx->err);
    unlink(fx->key);
    unlink(fx->conf);
    unlink(fx->sock);
    free(fx);
    return 0;
}

//  Run roomcastd with args (and a socket it could serve, so a sidecar
//  that took the value would start and run); it must exit 2 with exactly
//  one line on stderr holding every one of the NULL-terminated parts.
static void s_refused(fixture_t *fx, const char *const *args, ...)
{
    const char *argv[32];
    int n = 0;
    if (strcmp(args[0], "proxy") != 0) {
        argv[n++] = "--socket";
        argv[n++] = fx->sock;
    }
    for (int i = 0; args[i]; i++) {
        assert_true(n < 31);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    assert_int_equal(rcd_run(argv, fx->err), 2);
    FILE *f = fopen(fx->err, "r");
    assert_non_null(f);
    char out[4096];
    size_t len = fread(out, 1, sizeof out - 1, f);
    fclose(f);
    out[len] = 0;
    char *nl = strchr(out, '\n');
    if (!nl || nl[1] != 0) {
        fail_msg("not one line: '%s'", out);
    }
    va_list ap;
    va_start(ap, args);
    for (const char *part = va_arg(ap, const char *); part;
         part = va_arg(ap, const char *)) {
        if (!strstr(out, part)) {
            fail_msg("'%s' does not mention '%s'", out, part);
        }
    }
    va_end(ap);
}

static void test_bad_addresses_exit_2(void **state)
{
    fixture_t *fx = *state;
    const char *k = fx->key;
    //  the two: a port past 65535 (libzmq would bind it modulo
    //  65536) and a peer that is not an endpoint (dropped silently)
    const char *bind[] = {"--channel", "x",      "--key-file",
                          k,           "--bind", "tcp://127.0.0.1:87536",
                          NULL};
    s_refused(fx, bind, "bind", "tcp://127.0.0.1:87536", "port 87536",
              "1-65535", NULL);
    const char *peer[] = {"--channel",       "x", "--key-file", k, "--peer",
                          "not-an-endpoint", NULL};
    s_refused(fx, peer, "peer", "not-an-endpoint", "tcp://", NULL);
    const char *key[] = {"--channel", "x",      "--key-file",
                         k,           "--peer", "tcp://127.0.0.1:7440@tooshort",
                         NULL};
    s_refused(fx, key, "peer", "40 Z85 characters", NULL);
    const char *advertise[] = {
        "--channel",    "x",           "--key-file",   k,   "--bind",
        "tcp://*:7440", "--advertise", "tcp://*:7440", NULL};
    s_refused(fx, advertise, "advertise", "'*'", NULL);
    const char *proxy[] = {"--channel", "x",       "--key-file",
                           k,           "--proxy", "tcp://127.0.0.1:65535",
                           NULL};
    s_refused(fx, proxy, "proxy", "1-65534", NULL);
    const char *http[] = {"--channel", "x", "--http", "127.0.0.1:65536", NULL};
    s_refused(fx, http, "http", "127.0.0.1:65536", "port", NULL);
    const char *gossip[] = {"--channel", "x",           "--key-file",
                            k,           "--bind",      "tcp://127.0.0.1:7440",
                            "--gossip",  "127.0.0.1:0", NULL};
    s_refused(fx, gossip, "gossip", "port 0", NULL);
    const char *join[] = {"--channel",  "x",
                          "--key-file", k,
                          "--bind",     "tcp://127.0.0.1:7440",
                          "--gossip",   "127.0.0.1:7441",
                          "--join",     "dns:seeds",
                          NULL};
    s_refused(fx, join, "join", "dns:seeds", "PORT", NULL);
}

//  From the environment and from a file, the line says where.
static void test_errors_say_where_the_value_came_from(void **state)
{
    fixture_t *fx = *state;
    const char *args[] = {"--channel", "x", "--key-file", fx->key, NULL};
    setenv("ROOMCAST_PEERS", "tcp://127.0.0.1:7440,tcp://127.0.0.1:70000", 1);
    s_refused(fx, args, "ROOMCAST_PEERS", "tcp://127.0.0.1:70000", NULL);
    unsetenv("ROOMCAST_PEERS");
    FILE *f = fopen(fx->conf, "w");
    assert_non_null(f);
    fprintf(f, "# a typo in the port\nbind = tcp://127.0.0.1:7440x\n");
    fclose(f);
    const char *file[] = {"--channel", "x",      "--key-file", fx->key,
                          "--config",  fx->conf, NULL};
    s_refused(fx, file, fx->conf, ":2", "tcp://127.0.0.1:7440x", NULL);
}

static void test_proxy_refuses_bad_endpoints(void **state)
{
    fixture_t *fx = *state;
    const char *wrap[] = {"proxy", "--frontend", "tcp://127.0.0.1:65535", NULL};
    s_refused(fx, wrap, "frontend", "1-65534", NULL);
    const char *scheme[] = {"proxy", "--frontend", "127.0.0.1:7450", NULL};
    s_refused(fx, scheme, "frontend", "tcp://", NULL);
    const char *backend[] = {"proxy",
                             "--frontend",
                             "tcp://127.0.0.1:7450",
                             "--backend",
                             "tcp://127.0.0.1:99999",
                             NULL};
    s_refused(fx, backend, "backend", "port 99999", NULL);
}

//  What is wrong at run time (a gossip or HTTP port already taken) exits
//  2 too, and nothing says the mesh started before the error (issue 19
//  item 9: mesh_started used to come first).
static void test_a_taken_port_fails_before_anything_starts(void **state)
{
    fixture_t *fx = *state;
    int udp = socket(AF_INET, SOCK_DGRAM, 0),
        tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(udp, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(udp, (struct sockaddr *)&a, &alen), 0);
    char gossip[32], http[32], bind_ep[64];
    snprintf(gossip, sizeof gossip, "127.0.0.1:%d", ntohs(a.sin_port));
    a.sin_port = 0;
    assert_int_equal(bind(tcp, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(tcp, 1), 0);
    assert_int_equal(getsockname(tcp, (struct sockaddr *)&a, &alen), 0);
    snprintf(http, sizeof http, "127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(bind_ep, sizeof bind_ep, "tcp://127.0.0.1:%d", free_port());
    const char *cases[][2] = {{"--gossip", gossip}, {"--http", http}};
    for (int i = 0; i < 2; i++) {
        const char *argv[] = {"--channel",  "cfgerr",    "--socket", fx->sock,
                              "--key-file", fx->key,     "--bind",   bind_ep,
                              cases[i][0],  cases[i][1], NULL};
        assert_int_equal(rcd_run(argv, fx->err), 2);
        FILE *f = fopen(fx->err, "r");
        assert_non_null(f);
        char out[8192];
        size_t len = fread(out, 1, sizeof out - 1, f);
        fclose(f);
        out[len] = 0;
        if (!strstr(out, "startup_failed") || strstr(out, "mesh_started")) {
            fail_msg("%s %s: '%s'", cases[i][0], cases[i][1], out);
        }
    }
    close(udp);
    close(tcp);
}

int main(void)
{
    harness_deadline(60);
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_bad_addresses_exit_2),
        T(test_errors_say_where_the_value_came_from),
        T(test_a_taken_port_fails_before_anything_starts),
        T(test_proxy_refuses_bad_endpoints),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
