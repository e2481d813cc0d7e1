/*  rc_bench PUB_SOCKET SUB_SOCKET SIZE COUNT: one-way throughput through
    roomcast. A subscriber thread on SUB_SOCKET, a publisher thread on
    PUB_SOCKET (the same socket for the local path, another sidecar's for
    end to end). Prints "msgs_per_s=... mb_per_s=... received=... lost=..."
    The publisher paces itself on EAGAIN only: what it measures is what the
    path sustains. */
#include "roomcast.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *s_pub_sock, *s_sub_sock;
static size_t s_size;
static long s_count;
static long s_received;
static double s_first, s_last;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    (void)m;
    (void)arg;
    if (s_received++ == 0) {
        s_first = s_now();
    }
    s_last = s_now();
}

static void *s_publisher(void *arg)
{
    (void)arg;
    rc_client_t *c = rc_connect(s_pub_sock, NULL);
    if (!c) {
        fprintf(stderr, "rc_bench: publisher: %s\n", rc_strerror(errno));
        exit(1);
    }
    char *data = malloc(s_size + 1);
    memset(data, 'x', s_size);
    for (long i = 0; i < s_count; i++) {
        while (rc_publish(c, "bench", "t", data, s_size, RC_BINARY)) {
            if (errno != EAGAIN) {
                fprintf(stderr, "rc_bench: publish: %s\n", rc_strerror(errno));
                exit(1);
            }
            if (rc_flush(c, 10) && errno != ETIMEDOUT) {
                fprintf(stderr, "rc_bench: flush: %s\n", rc_strerror(errno));
                exit(1);
            }
        }
    }
    if (rc_flush(c, 10000)) {
        fprintf(stderr, "rc_bench: final flush: %s\n", rc_strerror(errno));
    }
    free(data);
    rc_close(&c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: rc_bench PUB_SOCKET SUB_SOCKET SIZE COUNT\n");
        return 2;
    }
    s_pub_sock = argv[1];
    s_sub_sock = argv[2];
    s_size = (size_t)atol(argv[3]);
    s_count = atol(argv[4]);
    rc_options_t o;
    rc_options_init(&o);
    o.on_message = s_on_message;
    rc_client_t *sub = rc_connect(s_sub_sock, &o);
    if (!sub || rc_subscribe_wait(sub, "bench", "t", 10000)) {
        fprintf(stderr, "rc_bench: subscriber: %s\n", rc_strerror(errno));
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, s_publisher, NULL);
    double idle_since = s_now();
    long seen = 0;
    while (s_received < s_count && s_now() - idle_since < 2.0) {
        rc_msg_t *m;
        if (rc_recv(sub, &m, 100) == 0) { // callbacks count; nothing queues
            rc_msg_destroy(&m);
        }
        if (s_received != seen) {
            seen = s_received;
            idle_since = s_now();
        }
    }
    pthread_join(t, NULL);
    double secs = s_last > s_first ? s_last - s_first : 1e-9;
    printf("size=%zu count=%ld received=%ld lost=%ld msgs_per_s=%.0f "
           "mb_per_s=%.1f\n",
           s_size, s_count, s_received, s_count - s_received, s_received / secs,
           s_received * (double)s_size / secs / 1e6);
    rc_close(&sub);
    return 0;
}
