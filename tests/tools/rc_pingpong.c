/*  rc_pingpong SOCK_A SOCK_B SIZE COUNT: round-trip latency through
    roomcast (make bench). An echo thread on SOCK_B subscribes to "ping"
    and publishes each message back to "pong"; the main thread on SOCK_A
    subscribes to "pong" and times COUNT round trips of SIZE bytes after
    1,000 untimed ones. SOCK_A = SOCK_B: app, sidecar, app on one host;
    two sidecars' sockets: end to end.
    Prints "p50_us=... p99_us=... p999_us=... mean_us=...". */
#include "roomcast.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARMUP 1000
#define NS     "bench"

static const char *s_sock_b;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_cond = PTHREAD_COND_INITIALIZER;
static int s_echo_ready;  // 1 subscribed, -1 failed
static atomic_int s_stop; // the echo thread ends

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void s_set_ready(int value)
{
    pthread_mutex_lock(&s_lock);
    s_echo_ready = value;
    pthread_cond_broadcast(&s_cond);
    pthread_mutex_unlock(&s_lock);
}

//  Echo every ping back until a 0-byte one.
static void *s_echo(void *arg)
{
    (void)arg;
    rc_client_t *c = rc_connect(s_sock_b, NULL);
    if (!c || rc_subscribe_wait(c, NS, "ping", 10000)) {
        fprintf(stderr, "rc_pingpong: echo: %s\n", rc_strerror(errno));
        s_set_ready(-1);
        rc_close(&c);
        return NULL;
    }
    s_set_ready(1);
    while (!atomic_load(&s_stop)) {
        rc_msg_t *m;
        if (rc_recv(c, &m, 100)) {
            continue;
        }
        size_t size = rc_msg_size(m);
        if (size == 0) {
            rc_msg_destroy(&m);
            break;
        }
        if (rc_publish(c, NS, "pong", rc_msg_data(m), size, RC_BINARY)) {
            fprintf(stderr, "rc_pingpong: pong: %s\n", rc_strerror(errno));
        }
        rc_msg_destroy(&m);
    }
    rc_close(&c);
    return NULL;
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

//  One round trip; its seconds, or -1 when the pong did not come back.
static double s_round_trip(rc_client_t *c, char *buf, size_t size, uint64_t seq)
{
    memcpy(buf, &seq, sizeof seq);
    double t0 = s_now();
    if (rc_publish(c, NS, "ping", buf, size, RC_BINARY)) {
        return -1;
    }
    while (1) {
        rc_msg_t *m;
        if (rc_recv(c, &m, 2000)) {
            return -1;
        }
        uint64_t got = 0;
        if (rc_msg_size(m) >= sizeof got) {
            memcpy(&got, rc_msg_data(m), sizeof got);
        }
        rc_msg_destroy(&m);
        if (got == seq) {
            return s_now() - t0;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: rc_pingpong SOCK_A SOCK_B SIZE COUNT\n");
        return 2;
    }
    s_sock_b = argv[2];
    size_t size = (size_t)atol(argv[3]);
    long count = atol(argv[4]);
    if (count <= 0) {
        fprintf(stderr, "rc_pingpong: bad COUNT\n");
        return 2;
    }
    if (size < sizeof(uint64_t)) {
        size = sizeof(uint64_t);
    }
    rc_client_t *c = rc_connect(argv[1], NULL);
    if (!c || rc_subscribe_wait(c, NS, "pong", 10000)) {
        fprintf(stderr, "rc_pingpong: %s\n", rc_strerror(errno));
        return 1;
    }
    pthread_t echo;
    pthread_create(&echo, NULL, s_echo, NULL);
    pthread_mutex_lock(&s_lock);
    while (s_echo_ready == 0) {
        pthread_cond_wait(&s_cond, &s_lock);
    }
    pthread_mutex_unlock(&s_lock);
    char *buf = calloc(1, size);
    double *rtt = malloc(sizeof(double) * (size_t)count);
    long n = 0;
    for (long i = 0; s_echo_ready > 0 && i < WARMUP + count; i++) {
        double t = s_round_trip(c, buf, size, (uint64_t)i + 1);
        if (t < 0) {
            fprintf(stderr, "rc_pingpong: round trip %ld lost\n", i);
            break;
        }
        if (i >= WARMUP) {
            rtt[n++] = t;
        }
    }
    if (s_echo_ready > 0 && rc_publish(c, NS, "ping", "", 0, RC_BINARY) == 0) {
        if (rc_flush(c, 1000)) {
            fprintf(stderr, "rc_pingpong: flush: %s\n", rc_strerror(errno));
        }
    }
    atomic_store(&s_stop, 1); // in case the 0-byte ping is lost
    pthread_join(echo, NULL);
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
    free(buf);
    free(rtt);
    rc_close(&c);
    return n == count ? 0 : 1;
}
