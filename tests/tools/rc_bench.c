/*  rc_bench [-r RATE] [-w SECONDS] [-c] [-s FILE] PUB_SOCKET SUB_SOCKET
             SIZE COUNT

    One-way throughput through roomcast (make bench). A subscriber on
    SUB_SOCKET (the main thread), a publisher thread on PUB_SOCKET (the
    same socket for the local path, another sidecar's for end to end).

    The subscriber reads as fast as the library lets it: it polls rc_fd
    and calls rc_dispatch, and its on_message callback only counts (the
    clock is read once per rc_dispatch, not per message), so what it
    measures is the path, and a loss at its sidecar's queue budget is the
    library's, not the benchmark's. It asks for GAP notices and counts
    what they say was lost, by reason.

    The publisher sends COUNT messages of SIZE bytes, each starting with
    its sequence number (from 1, when SIZE >= 8), as fast as the path
    takes them (pacing itself on EAGAIN only), or at RATE messages per
    second with -r. It stops at an error (said on stderr), or when the
    subscriber gives up.

    -w SECONDS  stop waiting after this long without a message (2)
    -c          check every message's sequence: count those behind the
                next one due (duplicates or out of order; per-message
                work: not for throughput figures)
    -s FILE     create FILE when the publisher starts sending (a script
                waits for it to act mid-stream)

    Prints one line: "size=... count=... sent=... received=... lost=...
    gap_mesh=... gap_slow=... gap_other=... [behind=...]
    msgs_per_s=... mb_per_s=...", lost being COUNT - received and the gap_
    figures the messages GAP notices reported, by reason (mesh: lost
    between sidecars and not repaired; slow: dropped at this client's
    queue budget; other: reconnect, origin gone). */
#include "roomcast.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *s_pub_sock, *s_sub_sock, *s_start_file;
static size_t s_size;
static long s_count;
static double s_rate;
static long s_received;
static atomic_long s_sent; // published (rc_publish said 0)
static atomic_int s_stop;  // the subscriber is done: stop publishing
static uint64_t s_gap[3];  // messages reported lost: mesh, slow, other
static uint64_t s_next = 1, s_behind; // -c: next sequence due, late ones

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

//  The hot path: nothing but a count.
static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    (void)m;
    (void)arg;
    s_received++;
}

//  -c: the same, and the sequence checked.
static void s_on_message_check(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    s_received++;
    uint64_t seq;
    if (rc_msg_size(m) < sizeof seq) {
        return;
    }
    memcpy(&seq, rc_msg_data(m), sizeof seq);
    if (seq == s_next) {
        s_next++;
    } else if (seq > s_next) {
        s_next = seq + 1; // a gap: counted as lost by received < count
    } else {
        s_behind++; // a duplicate or out of order: neither may happen
    }
}

static void s_on_gap(rc_client_t *c, const rc_gap_t *gap, void *arg)
{
    (void)c;
    (void)arg;
    int i = gap->reason == RC_GAP_MESH ? 0 : gap->reason == RC_GAP_SLOW ? 1 : 2;
    s_gap[i] += gap->missed;
}

static void s_pace(double t0, long i)
{
    double due = t0 + (double)i / s_rate, now = s_now();
    if (due > now) {
        double d = due - now;
        struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

//  Publish until COUNT, an error, or s_stop (the subscriber gave up: a
//  publisher held by EAGAIN forever would hang the run).
static void *s_publisher(void *arg)
{
    (void)arg;
    rc_client_t *c = rc_connect(s_pub_sock, NULL);
    if (!c) {
        fprintf(stderr, "rc_bench: publisher: %s\n", rc_strerror(errno));
        atomic_store(&s_stop, 1);
        return NULL;
    }
    char *data = calloc(1, s_size + sizeof(uint64_t));
    memset(data, 'x', s_size);
    if (s_start_file) {
        int fd = open(s_start_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            close(fd);
        }
    }
    double t0 = s_now();
    long i;
    for (i = 0; i < s_count && !atomic_load(&s_stop); i++) {
        if (s_rate > 0 && i % 64 == 0) {
            s_pace(t0, i);
        }
        if (s_size >= sizeof(uint64_t)) {
            uint64_t seq = (uint64_t)i + 1;
            memcpy(data, &seq, sizeof seq);
        }
        //  Pipelined as a Redis client pipelines: a write per 64 messages
        //  (or per RC_MORE_BYTES), the last one of each 64 without RC_MORE.
        int flags = RC_BINARY | ((i + 1) % 64 && i + 1 < s_count ? RC_MORE : 0);
        int rc;
        while ((rc = rc_publish(c, "bench", "t", data, s_size, flags)) &&
               errno == EAGAIN && !atomic_load(&s_stop)) {
            if (rc_flush(c, 10) && errno != ETIMEDOUT) {
                break; // rc_publish says why next
            }
        }
        if (rc) {
            if (errno != EAGAIN) {
                fprintf(stderr, "rc_bench: publish %ld: %s\n", i + 1,
                        rc_strerror(errno));
            }
            break;
        }
    }
    atomic_store(&s_sent, i);
    if (rc_flush(c, 10000)) {
        fprintf(stderr, "rc_bench: final flush: %s\n", rc_strerror(errno));
    }
    free(data);
    rc_close(&c);
    return NULL;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: rc_bench [-r RATE] [-w SECONDS] [-c] [-s FILE] "
                    "PUB_SOCKET SUB_SOCKET SIZE COUNT\n");
    return 2;
}

int main(int argc, char **argv)
{
    double idle_limit = 2.0;
    bool check = false;
    int opt;
    while ((opt = getopt(argc, argv, "r:w:cs:")) != -1) {
        switch (opt) {
            case 'r':
                s_rate = atof(optarg);
                break;
            case 'w':
                idle_limit = atof(optarg);
                break;
            case 'c':
                check = true;
                break;
            case 's':
                s_start_file = optarg;
                break;
            default:
                return s_usage();
        }
    }
    if (argc - optind < 4) {
        return s_usage();
    }
    s_pub_sock = argv[optind];
    s_sub_sock = argv[optind + 1];
    s_size = (size_t)atol(argv[optind + 2]);
    s_count = atol(argv[optind + 3]);
    rc_options_t o;
    rc_options_init(&o);
    o.on_message = check ? s_on_message_check : s_on_message;
    o.gaps = true;
    o.on_gap = s_on_gap;
    rc_client_t *sub = rc_connect(s_sub_sock, &o);
    if (!sub || rc_subscribe_wait(sub, "bench", "t", 10000)) {
        fprintf(stderr, "rc_bench: subscriber: %s\n", rc_strerror(errno));
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, s_publisher, NULL);
    struct pollfd p = {.fd = rc_fd(sub), .events = POLLIN};
    double first = 0, last = 0, idle_since = s_now();
    while (s_received < s_count && !atomic_load(&s_stop)) {
        if (poll(&p, 1, 100) < 0 && errno != EINTR) {
            break;
        }
        double before = s_now();
        long had = s_received;
        if (rc_dispatch(sub) < 0) {
            break;
        }
        if (s_received != had) {
            if (had == 0) {
                first = before;
            }
            last = idle_since = s_now();
        } else if (before - idle_since >= idle_limit) {
            break;
        }
    }
    atomic_store(&s_stop, 1);
    pthread_join(t, NULL);
    double secs = last > first ? last - first : 1e-9;
    printf("size=%zu count=%ld sent=%ld received=%ld lost=%ld gap_mesh=%llu "
           "gap_slow=%llu gap_other=%llu",
           s_size, s_count, atomic_load(&s_sent), s_received,
           s_count - s_received, (unsigned long long)s_gap[0],
           (unsigned long long)s_gap[1], (unsigned long long)s_gap[2]);
    if (check) {
        printf(" behind=%llu", (unsigned long long)s_behind);
    }
    printf(" msgs_per_s=%.0f mb_per_s=%.1f\n", s_received / secs,
           s_received * (double)s_size / secs / 1e6);
    rc_close(&sub);
    return 0;
}
