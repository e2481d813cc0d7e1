/*  zmq_bench: the floor for make bench, raw libzmq between two processes
    on loopback (compiled by tests/bench/run.sh with -lzmq).

    zmq_bench thr PORT SIZE COUNT
        A subscriber process (SUB, connected) and a publisher process
        (XPUB, bound to tcp://127.0.0.1:PORT). The publisher starts when
        the subscription reaches it (XPUB shows it), sends COUNT one-frame
        messages of SIZE bytes as fast as it can, and the subscriber times
        the first to the last arrival. No high-water mark: nothing is
        dropped, the publisher's backlog stays in memory (COUNT x SIZE).
        Prints "msgs_per_s=... mb_per_s=... received=... lost=...".

    zmq_bench lat PORT SIZE COUNT
        Ping-pong: the parent publishes on PORT, the child answers on
        PORT+1; COUNT timed round trips after 1,000 untimed ones.
        Prints "p50_us=... p99_us=... p999_us=... mean_us=...".

    Everything is one frame, subscribed to "": what libzmq alone costs. */
#include <zmq.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 1000

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    int hwm = 0, linger = 0; // no high-water mark: nothing dropped
    if (!s) {
        fprintf(stderr, "zmq_bench: zmq_socket: %s\n", zmq_strerror(errno));
        exit(1);
    }
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (type == ZMQ_SUB) {
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    }
    return s;
}

static void s_endpoint(char *buf, size_t size, int port)
{
    snprintf(buf, size, "tcp://127.0.0.1:%d", port);
}

static void s_bind(void *s, int port)
{
    char ep[64];
    s_endpoint(ep, sizeof ep, port);
    if (zmq_bind(s, ep)) {
        fprintf(stderr, "zmq_bench: bind %s: %s\n", ep, zmq_strerror(errno));
        exit(1);
    }
}

static void s_connect(void *s, int port)
{
    char ep[64];
    s_endpoint(ep, sizeof ep, port);
    if (zmq_connect(s, ep)) {
        fprintf(stderr, "zmq_bench: connect %s: %s\n", ep, zmq_strerror(errno));
        exit(1);
    }
}

//  An XPUB learns of a subscriber when its subscription frame arrives.
static void s_wait_subscriber(void *xpub)
{
    char buf[16];
    if (zmq_recv(xpub, buf, sizeof buf, 0) < 1 || buf[0] != 1) {
        fprintf(stderr, "zmq_bench: no subscription\n");
        exit(1);
    }
}

static int s_thr_subscriber(int port, size_t size, long count)
{
    void *ctx = zmq_ctx_new();
    void *sub = s_socket(ctx, ZMQ_SUB);
    int idle_ms = 2000;
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &idle_ms, sizeof idle_ms);
    s_connect(sub, port);
    char *buf = malloc(size + 1);
    long received = 0;
    double first = 0, last = 0;
    while (received < count) {
        if (zmq_recv(sub, buf, size + 1, 0) < 0) {
            break; // idle two seconds: the rest was dropped
        }
        last = s_now();
        if (received++ == 0) {
            first = last;
        }
    }
    double secs = last > first ? last - first : 1e-9;
    printf("size=%zu count=%ld received=%ld lost=%ld msgs_per_s=%.0f "
           "mb_per_s=%.1f\n",
           size, count, received, count - received, received / secs,
           received * (double)size / secs / 1e6);
    fflush(stdout);
    free(buf);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return 0;
}

static int s_thr(int port, size_t size, long count)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the bench
        _exit(s_thr_subscriber(port, size, count));
    }
    void *ctx = zmq_ctx_new();
    void *pub = s_socket(ctx, ZMQ_XPUB);
    s_bind(pub, port);
    s_wait_subscriber(pub);
    char *data = malloc(size);
    memset(data, 'x', size);
    for (long i = 0; i < count; i++) {
        zmq_send(pub, data, size, 0);
    }
    int status = 1;
    waitpid(pid, &status, 0); // keep the socket until all is read
    free(data);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

//  The child: echo every ping back until a 0-byte one.
static int s_lat_echo(int port, size_t size)
{
    void *ctx = zmq_ctx_new();
    void *sub = s_socket(ctx, ZMQ_SUB);
    void *pub = s_socket(ctx, ZMQ_XPUB);
    s_connect(sub, port);
    s_bind(pub, port + 1);
    s_wait_subscriber(pub);
    char *buf = malloc(size + 1);
    int n;
    while ((n = zmq_recv(sub, buf, size + 1, 0)) > 0) {
        zmq_send(pub, buf, (size_t)n, 0);
    }
    free(buf);
    zmq_close(sub);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_pct(const double *sorted, long n, double p)
{
    long i = (long)(p * (double)n);
    return sorted[i < n ? i : n - 1];
}

//  One round trip: the pong carrying seq. Returns the seconds it took, or
//  -1 when none came within timeout_ms (the path was not up yet).
static double s_round_trip(void *pub, void *sub, char *buf, size_t size,
                           uint64_t seq, int timeout_ms)
{
    memcpy(buf, &seq, sizeof seq);
    double t0 = s_now();
    zmq_send(pub, buf, size, 0);
    while (1) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        int left = timeout_ms - (int)((s_now() - t0) * 1000);
        if (left <= 0 || zmq_poll(&item, 1, left) < 1) {
            return -1;
        }
        uint64_t got;
        if (zmq_recv(sub, buf, size, 0) >= (int)sizeof got) {
            memcpy(&got, buf, sizeof got);
            if (got == seq) {
                return s_now() - t0;
            }
        }
    }
}

static int s_lat(int port, size_t size, long count)
{
    if (size < sizeof(uint64_t)) {
        size = sizeof(uint64_t);
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the bench
        _exit(s_lat_echo(port, size));
    }
    void *ctx = zmq_ctx_new();
    void *pub = s_socket(ctx, ZMQ_XPUB);
    void *sub = s_socket(ctx, ZMQ_SUB);
    s_bind(pub, port);
    s_wait_subscriber(pub);
    s_connect(sub, port + 1);
    char *buf = calloc(1, size);
    uint64_t seq = 1;
    //  the child's XPUB may not hold our subscription yet: retry until a
    //  pong comes back
    for (int i = 0; i < 100 && s_round_trip(pub, sub, buf, size, seq, 100) < 0;
         i++) {
        seq++;
    }
    double *rtt = malloc(sizeof(double) * (size_t)count);
    int status = 1;
    long n = 0;
    for (long i = 0; i < WARMUP + count; i++) {
        double t = s_round_trip(pub, sub, buf, size, ++seq, 2000);
        if (t < 0) {
            fprintf(stderr, "zmq_bench: a ping was lost\n");
            break;
        }
        if (i >= WARMUP) {
            rtt[n++] = t;
        }
    }
    zmq_send(pub, "", 0, 0); // the child stops
    waitpid(pid, &status, 0);
    if (n == count) {
        double sum = 0;
        for (long i = 0; i < n; i++) {
            sum += rtt[i];
        }
        qsort(rtt, (size_t)n, sizeof *rtt, s_cmp);
        printf("size=%zu count=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f "
               "mean_us=%.1f\n",
               size, n, s_pct(rtt, n, 0.50) * 1e6, s_pct(rtt, n, 0.99) * 1e6,
               s_pct(rtt, n, 0.999) * 1e6, sum / (double)n * 1e6);
    }
    free(rtt);
    free(buf);
    zmq_close(pub);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return n == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: zmq_bench thr|lat PORT SIZE COUNT\n");
        return 2;
    }
    int port = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    long count = atol(argv[4]);
    if (port <= 0 || count <= 0) {
        fprintf(stderr, "zmq_bench: bad PORT or COUNT\n");
        return 2;
    }
    if (strcmp(argv[1], "thr") == 0) {
        return s_thr(port, size, count);
    }
    if (strcmp(argv[1], "lat") == 0) {
        return s_lat(port, size, count);
    }
    fprintf(stderr, "zmq_bench: unknown mode %s\n", argv[1]);
    return 2;
}
