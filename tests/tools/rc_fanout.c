/*  rc_fanout SIZE COUNT APPS PUB_SOCK SUB_SOCK...: fanout through roomcast
    (make bench). APPS subscribing clients on each SUB_SOCK (one receiving
    thread per socket, polling its clients), one publisher on PUB_SOCK.

    Two phases on one topic:
      flood  COUNT messages as fast as the path takes them; deliveries per
             second from the first publish to the last delivery;
      paced  500 messages, one every 2 ms, so that
             nothing queues; for each message the spread between its first
             and its last delivery (all clients, all sockets), and the
             latency from publish to the last delivery.

    Prints one line: "deliveries_per_s=... expected=... delivered=...
    spread_p50_us=... spread_p99_us=... spread_max_us=... last_p50_us=...
    last_p99_us=...". */
#include "roomcast.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS        "bench"
#define TOPIC     "fan"
#define MAX_SOCKS 16
#define PACED     500  // messages in the paced phase
#define PACED_US  2000 // between two of them

typedef struct {
    const char *sock;     // the sidecar's socket
    int apps;             // clients on it
    rc_client_t **client; // its clients
    double *first;        // per message: earliest delivery here
    double *last;         // per message: latest delivery here
    atomic_long received; // deliveries to this thread's clients
    int failed;           // connecting or subscribing failed
} receiver_t;

static receiver_t s_recv[MAX_SOCKS];
static int s_nsocks;
static long s_total; // messages over both phases
static atomic_int s_ready, s_stop;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    receiver_t *r = arg;
    double t = s_now();
    uint32_t index;
    atomic_fetch_add(&r->received, 1);
    if (rc_msg_size(m) < sizeof index) {
        return;
    }
    memcpy(&index, rc_msg_data(m), sizeof index);
    if (index >= s_total) {
        return;
    }
    if (r->first[index] == 0 || t < r->first[index]) {
        r->first[index] = t;
    }
    if (t > r->last[index]) {
        r->last[index] = t;
    }
}

static void *s_receive(void *arg)
{
    receiver_t *r = arg;
    rc_options_t o;
    rc_options_init(&o);
    o.on_message = s_on_message;
    o.arg = r;
    struct pollfd *fds = calloc((size_t)r->apps, sizeof *fds);
    for (int i = 0; i < r->apps; i++) {
        r->client[i] = rc_connect(r->sock, &o);
        if (!r->client[i] ||
            rc_subscribe_wait(r->client[i], NS, TOPIC, 10000)) {
            fprintf(stderr, "rc_fanout: %s client %d: %s\n", r->sock, i,
                    rc_strerror(errno));
            r->failed = 1;
            break;
        }
        fds[i].fd = rc_fd(r->client[i]);
        fds[i].events = POLLIN;
    }
    atomic_fetch_add(&s_ready, 1);
    while (!r->failed && !atomic_load(&s_stop)) {
        if (poll(fds, (nfds_t)r->apps, 50) <= 0) {
            continue;
        }
        for (int i = 0; i < r->apps; i++) {
            if (fds[i].revents) {
                rc_dispatch(r->client[i]);
            }
        }
    }
    for (int i = 0; i < r->apps; i++) {
        rc_close(&r->client[i]);
    }
    free(fds);
    return NULL;
}

static long s_delivered(void)
{
    long n = 0;
    for (int i = 0; i < s_nsocks; i++) {
        n += atomic_load(&s_recv[i].received);
    }
    return n;
}

//  Wait until `expected` deliveries in all, or two seconds without one.
static void s_drain(long expected)
{
    long seen = -1;
    double idle_since = s_now();
    while (s_delivered() < expected && s_now() - idle_since < 2.0) {
        long n = s_delivered();
        if (n != seen) {
            seen = n;
            idle_since = s_now();
        }
        usleep(1000);
    }
}

static void s_publish(rc_client_t *c, char *data, size_t size, uint32_t index)
{
    memcpy(data, &index, sizeof index);
    while (rc_publish(c, NS, TOPIC, data, size, RC_BINARY)) {
        if (errno != EAGAIN) {
            fprintf(stderr, "rc_fanout: publish: %s\n", rc_strerror(errno));
            exit(1);
        }
        if (rc_flush(c, 10) && errno != ETIMEDOUT) {
            fprintf(stderr, "rc_fanout: flush: %s\n", rc_strerror(errno));
            exit(1);
        }
    }
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_pct(const double *sorted, long n, double p)
{
    long i = (long)(p * (double)n);
    return n ? sorted[i < n ? i : n - 1] : 0;
}

//  Spread and publish-to-last latency of the paced messages, in us.
static void s_report_paced(long from, long to, const double *sent_at)
{
    long n = 0;
    double *spread = calloc((size_t)(to - from), sizeof(double));
    double *last = calloc((size_t)(to - from), sizeof(double));
    for (long m = from; m < to; m++) {
        double lo = 0, hi = 0;
        for (int i = 0; i < s_nsocks; i++) {
            double f = s_recv[i].first[m], l = s_recv[i].last[m];
            if (f != 0 && (lo == 0 || f < lo)) {
                lo = f;
            }
            if (l > hi) {
                hi = l;
            }
        }
        if (lo != 0) {
            spread[n] = (hi - lo) * 1e6;
            last[n++] = (hi - sent_at[m - from]) * 1e6;
        }
    }
    qsort(spread, (size_t)n, sizeof *spread, s_cmp);
    qsort(last, (size_t)n, sizeof *last, s_cmp);
    printf(" spread_p50_us=%.0f spread_p99_us=%.0f spread_max_us=%.0f "
           "last_p50_us=%.0f last_p99_us=%.0f\n",
           s_pct(spread, n, 0.5), s_pct(spread, n, 0.99), n ? spread[n - 1] : 0,
           s_pct(last, n, 0.5), s_pct(last, n, 0.99));
    free(spread);
    free(last);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: rc_fanout SIZE COUNT APPS PUB_SOCK "
                        "SUB_SOCK...\n");
        return 2;
    }
    size_t size = (size_t)atol(argv[1]);
    long count = atol(argv[2]);
    int apps = atoi(argv[3]);
    long paced = PACED;
    s_nsocks = argc - 5;
    if (size < sizeof(uint32_t) || count <= 0 || apps <= 0 ||
        s_nsocks > MAX_SOCKS) {
        fprintf(stderr, "rc_fanout: bad SIZE, COUNT, APPS or too many "
                        "sockets\n");
        return 2;
    }
    s_total = count + paced;
    pthread_t threads[MAX_SOCKS];
    for (int i = 0; i < s_nsocks; i++) {
        receiver_t *r = &s_recv[i];
        r->sock = argv[5 + i];
        r->apps = apps;
        r->client = calloc((size_t)apps, sizeof *r->client);
        r->first = calloc((size_t)s_total, sizeof(double));
        r->last = calloc((size_t)s_total, sizeof(double));
        pthread_create(&threads[i], NULL, s_receive, r);
    }
    rc_client_t *pub = rc_connect(argv[4], NULL);
    if (!pub) {
        fprintf(stderr, "rc_fanout: publisher: %s\n", rc_strerror(errno));
        return 1;
    }
    while (atomic_load(&s_ready) < s_nsocks) {
        usleep(1000);
    }
    int failed = 0;
    for (int i = 0; i < s_nsocks; i++) {
        failed |= s_recv[i].failed;
    }
    long per_msg = (long)apps * s_nsocks;
    char *data = calloc(1, size);
    if (!failed) {
        double t0 = s_now();
        for (long m = 0; m < count; m++) {
            s_publish(pub, data, size, (uint32_t)m);
        }
        if (rc_flush(pub, 10000)) {
            fprintf(stderr, "rc_fanout: flush: %s\n", rc_strerror(errno));
        }
        s_drain(count * per_msg);
        long flood = s_delivered();
        double end = 0;
        for (int i = 0; i < s_nsocks; i++) {
            for (long m = 0; m < count; m++) {
                end = s_recv[i].last[m] > end ? s_recv[i].last[m] : end;
            }
        }
        printf("size=%zu apps=%ld deliveries_per_s=%.0f expected=%ld "
               "delivered=%ld",
               size, per_msg, end > t0 ? flood / (end - t0) : 0,
               count * per_msg, flood);
        double *sent_at = calloc((size_t)paced, sizeof(double));
        for (long m = 0; m < paced; m++) {
            sent_at[m] = s_now();
            s_publish(pub, data, size, (uint32_t)(count + m));
            if (rc_flush(pub, 1000)) {
                fprintf(stderr, "rc_fanout: flush: %s\n", rc_strerror(errno));
            }
            while (s_now() - sent_at[m] < PACED_US / 1e6) {
                usleep(100);
            }
        }
        s_drain(flood + paced * per_msg);
        s_report_paced(count, s_total, sent_at);
        free(sent_at);
    }
    atomic_store(&s_stop, 1);
    for (int i = 0; i < s_nsocks; i++) {
        pthread_join(threads[i], NULL);
        free(s_recv[i].client);
        free(s_recv[i].first);
        free(s_recv[i].last);
    }
    free(data);
    rc_close(&pub);
    return failed;
}
