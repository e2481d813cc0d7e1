/*  Probes answer first: 2,000 idle or half-sent HTTP connections, each
    reopened as soon as the sidecar closes it, never keep /healthz or
    /readyz from answering within a second (the kubelet's default probe
    timeout). The sidecar runs alone on loopback; the probe loop runs in a
    second thread while this one keeps the crowd at 2,000. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define CROWD       2000 // connections held open against the endpoint
#define PROBE_MS    6000 // how long the probe loop runs
#define PROBE_LIMIT 1000 // every answer within this (ms)
#define PROBE_PAUSE 20   // ms between two probes
#define REOPEN_PER_MS                                                          \
    2 // reopens per ms at most: ports in TIME_WAIT
      // stay far below the ephemeral range

typedef struct {
    int port;
    volatile int done;  // the probe loop ended
    int probes;         // answered
    int failures;       // not answered, or not within PROBE_LIMIT
    long long worst_ms; //
    long long sum_ms;   //
    char first_failure[200];
} probes_t;

//  A non-blocking connection to 127.0.0.1:port, or -1 (EADDRNOTAVAIL,
//  EMFILE: the caller tries again later).
static int s_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

//  One probe on a new connection: the status line within PROBE_LIMIT ms
//  of the connect, or -1 with why.
static int s_probe(int port, const char *path, long long *ms, char *why,
                   size_t whylen)
{
    long long t0 = now_ms(), deadline = t0 + PROBE_LIMIT;
    int fd = s_open(port);
    if (fd < 0) {
        snprintf(why, whylen, "connect: %s", strerror(errno));
        return -1;
    }
    char req[128], answer[512];
    int reqlen = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "User-Agent: kube-probe/1.29\r\n\r\n",
                          path);
    size_t sent = 0, got = 0;
    int status = -1;
    while (status < 0 && now_ms() < deadline) {
        struct pollfd p = {
            fd, (short)(sent < (size_t)reqlen ? POLLOUT : POLLIN), 0};
        poll(&p, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0));
        if (sent < (size_t)reqlen) {
            ssize_t w =
                send(fd, req + sent, (size_t)reqlen - sent, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINPROGRESS &&
                errno != ENOTCONN) {
                snprintf(why, whylen, "send: %s", strerror(errno));
                break;
            }
            sent += w > 0 ? (size_t)w : 0;
            continue;
        }
        ssize_t r = recv(fd, answer + got, sizeof answer - 1 - got, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            snprintf(why, whylen, "closed after %zu bytes: %s", got,
                     r ? strerror(errno) : "EOF");
            break;
        }
        got += r > 0 ? (size_t)r : 0;
        answer[got] = 0;
        if (strchr(answer, '\n')) {
            if (sscanf(answer, "HTTP/1.1 %d ", &status) != 1) {
                snprintf(why, whylen, "not HTTP: %.40s", answer);
                break;
            }
        }
    }
    close(fd);
    *ms = now_ms() - t0;
    if (status < 0 && !why[0]) {
        snprintf(why, whylen, "no answer within %d ms", PROBE_LIMIT);
    }
    return status;
}

static void *s_probe_loop(void *arg)
{
    probes_t *p = arg;
    long long end = now_ms() + PROBE_MS;
    for (int i = 0; now_ms() < end; i++) {
        const char *path = i % 2 ? "/readyz" : "/healthz";
        char why[160] = "";
        long long ms = 0;
        int status = s_probe(p->port, path, &ms, why, sizeof why);
        //  alone, the sidecar is a ready cluster of one: 200 for both
        if (status != 200 || ms >= PROBE_LIMIT) {
            if (!p->failures++) {
                snprintf(p->first_failure, sizeof p->first_failure,
                         "%s: status %d after %lld ms (%s)", path, status, ms,
                         why);
            }
        } else {
            p->probes++;
            p->sum_ms += ms;
        }
        p->worst_ms = ms > p->worst_ms ? ms : p->worst_ms;
        usleep(PROBE_PAUSE * 1000);
    }
    p->done = 1;
    return NULL;
}

//  A line "Name:   N kB" of /proc/PID/status, in KiB; -1 if absent.
static long s_proc_kib(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            kib = atol(line + n + 1);
        }
    }
    if (f) {
        fclose(f);
    }
    return kib;
}

//  Half the crowd says nothing, the other half starts a request and never
//  ends it (slowloris).
static void s_crowd_send(int fd, int i)
{
    static const char partial[] = "GET /metrics HTTP/1.1\r\nHost: slow";
    if (i % 2) {
        (void)send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL);
    }
}

static void test_idle_crowd_never_starves_probes(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < CROWD + 200) {
        rl.rlim_cur = rl.rlim_max < CROWD + 200 ? rl.rlim_max : CROWD + 200;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < CROWD + 200) {
        skip(); // the hard limit forbids the crowd: nothing to show
    }
    int port = free_port();
    char http[64];
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    const char *extra[] = {"--http", http, NULL};
    rcd_t d;
    assert_int_equal(rcd_start(&d, "probetest", extra), 0);
    long rss_before = s_proc_kib(d.pid, "VmRSS");

    //  the crowd first: every slot the endpoint has, and far more
    static struct pollfd crowd[CROWD];
    for (int i = 0; i < CROWD; i++) {
        crowd[i] = (struct pollfd){.fd = s_open(port), .events = POLLIN};
        assert_true(crowd[i].fd >= 0);
        s_crowd_send(crowd[i].fd, i);
    }
    probes_t p = {.port = port};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_probe_loop, &p), 0);

    //  each connection the sidecar closes is opened again at once (at
    //  most REOPEN_PER_MS a millisecond)
    long long reopened = 0, t0 = now_ms();
    long rss_peak = rss_before;
    while (!p.done) {
        int n = poll(crowd, CROWD, 10);
        assert_true(n >= 0);
        for (int i = 0; i < CROWD; i++) {
            long long budget = (now_ms() - t0 + 1) * REOPEN_PER_MS - reopened;
            if (crowd[i].fd >= 0 && !crowd[i].revents) {
                continue;
            }
            if (crowd[i].fd >= 0) {
                char sink[256];
                ssize_t r = recv(crowd[i].fd, sink, sizeof sink, 0);
                if (r > 0 || (r < 0 && errno == EAGAIN)) {
                    continue; // a reply (to nothing we sent): keep reading
                }
                close(crowd[i].fd);
                crowd[i].fd = -1;
            }
            if (budget > 0) {
                crowd[i].fd = s_open(port);
                if (crowd[i].fd >= 0) {
                    s_crowd_send(crowd[i].fd, i);
                    reopened++;
                }
            }
        }
        long rss = s_proc_kib(d.pid, "VmRSS");
        rss_peak = rss > rss_peak ? rss : rss_peak;
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    long rss_after = s_proc_kib(d.pid, "VmRSS");
    long hwm = s_proc_kib(d.pid, "VmHWM");
    for (int i = 0; i < CROWD; i++) {
        if (crowd[i].fd >= 0) {
            close(crowd[i].fd);
        }
    }
    int answered = p.probes ? p.probes : 1;
    printf("probes: %d answered within %d ms, %d failed, mean %.1f ms, "
           "worst %lld ms; crowd %d, reopened %lld in %lld ms; sidecar RSS "
           "%ld KiB before, %ld KiB peak, %ld KiB after (VmHWM %ld KiB)\n",
           p.probes, PROBE_LIMIT, p.failures, (double)p.sum_ms / answered,
           p.worst_ms, CROWD, reopened, now_ms() - t0, rss_before, rss_peak,
           rss_after, hwm);
    if (p.failures) {
        fail_msg("%d of %d probes failed; first: %s", p.failures,
                 p.failures + p.probes, p.first_failure);
    }
    assert_true(p.probes >= 50);
    assert_true(reopened > CROWD); // the crowd was pushed out and came back
    assert_int_equal(rcd_stop(&d, SIGTERM), 0);
    rcd_cleanup(&d);
}

int main(void)
{
    harness_deadline(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_crowd_never_starves_probes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
