/*  rc_scale - the app side of make scale (tests/scale/run.sh)

      rc_scale deliver PUB_SOCK SUB_SOCK...
          one subscriber on each SUB_SOCK (room scale/room), subscribed
          everywhere (rc_subscribe_wait); then one publisher on PUB_SOCK
          publishes 5 messages, 500 ms apart. For each: how many
          subscribers got it (the one on PUB_SOCK's own sidecar, if
          listed, counts apart as local), the spread from the first
          delivery to the last, and the time from publish to the last.
          Prints "expected=N delivered_min=.. delivered_max=..
          spread_ms_max=.. last_ms_max=.. local=0|1 unconfirmed=.." for the
          remote subscribers (unconfirmed: subscriptions not confirmed
          everywhere within 60 s; the run goes on regardless).

      rc_scale traffic SECONDS RATE PUB_SOCK SUB_SOCK...
          the same subscribers; PUB_SOCK publishes RATE messages a second
          for SECONDS (numbered, room scale/traffic), then waits for the
          stragglers (up to 5 s without a delivery). Prints "sent=..
          subscribers=.. received_min=.. lost=.. duplicates=.." where
          lost counts, over every subscriber, the numbers it never got.
          Meant for the sidecars that stay up while others restart.

    Exit status 0 when it ran (the figures say how well), 1 when a
    subscriber could not connect or subscribe, 2 on bad arguments.
    One thread; every client is polled.
*/
#include "roomcast.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS         "scale"
#define DELIVER    5   // messages of the deliver run
#define DELIVER_MS 500 // between them

typedef struct {
    rc_client_t *client;
    const char *sock;
    bool local;      // on the publisher's sidecar
    uint8_t *got;    // per message number: deliveries
    double *at;      // deliver: arrival time per message
    long duplicates; // deliveries of a number already had
    long received;   // distinct numbers
} sub_t;

static sub_t *s_subs;
static int s_nsubs;
static long s_total;      // message numbers in use
static int s_unconfirmed; // subscriptions not confirmed everywhere

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    sub_t *sub = arg;
    uint32_t n;
    if (rc_msg_size(m) < sizeof n) {
        return;
    }
    memcpy(&n, rc_msg_data(m), sizeof n);
    if (n >= s_total) {
        return;
    }
    if (sub->got[n]) {
        sub->duplicates++;
    } else {
        sub->received++;
        if (sub->at) {
            sub->at[n] = s_now();
        }
    }
    if (sub->got[n] < 255) {
        sub->got[n]++;
    }
}

//  Serve every client for up to ms.
static void s_pump(struct pollfd *fds, int ms)
{
    if (poll(fds, (nfds_t)s_nsubs, ms) <= 0) {
        return;
    }
    for (int i = 0; i < s_nsubs; i++) {
        if (fds[i].revents) {
            rc_dispatch(s_subs[i].client);
        }
    }
}

static struct pollfd *s_subscribe(const char *topic, const char *pub_sock,
                                  bool timed)
{
    rc_options_t o;
    rc_options_init(&o);
    o.on_message = s_on_message;
    o.name = "rc_scale";
    struct pollfd *fds = calloc((size_t)s_nsubs, sizeof *fds);
    for (int i = 0; i < s_nsubs; i++) {
        sub_t *sub = &s_subs[i];
        sub->local = strcmp(sub->sock, pub_sock) == 0;
        sub->got = calloc((size_t)s_total, 1);
        sub->at = timed ? calloc((size_t)s_total, sizeof(double)) : NULL;
        o.arg = sub;
        sub->client = rc_connect(sub->sock, &o);
        if (!sub->client || rc_subscribe(sub->client, NS, topic)) {
            fprintf(stderr, "rc_scale: %s: %s\n", sub->sock,
                    rc_strerror(errno));
            exit(1);
        }
        fds[i].fd = rc_fd(sub->client);
        fds[i].events = POLLIN;
    }
    //  All asked at once; now wait until each is in effect everywhere,
    //  60 s for all of them: past that, the run goes on and says how many
    //  were not confirmed (their deliveries are counted all the same).
    double deadline = s_now() + 60.0;
    s_unconfirmed = 0;
    for (int i = 0; i < s_nsubs; i++) {
        int left = (int)((deadline - s_now()) * 1e3);
        if (rc_subscribe_wait(s_subs[i].client, NS, topic,
                              left > 0 ? left : 0)) {
            fprintf(stderr, "rc_scale: %s: not subscribed everywhere: %s\n",
                    s_subs[i].sock, rc_strerror(errno));
            s_unconfirmed++;
        }
    }
    return fds;
}

static void s_publish(rc_client_t *pub, const char *topic, uint32_t n,
                      struct pollfd *fds)
{
    char data[64];
    memset(data, 'x', sizeof data);
    memcpy(data, &n, sizeof n);
    while (rc_publish(pub, NS, topic, data, sizeof data, RC_BINARY)) {
        if (errno != EAGAIN) {
            fprintf(stderr, "rc_scale: publish: %s\n", rc_strerror(errno));
            exit(1);
        }
        if (rc_flush(pub, 10) && errno != ETIMEDOUT) {
            fprintf(stderr, "rc_scale: flush: %s\n", rc_strerror(errno));
            exit(1);
        }
        s_pump(fds, 0);
    }
    if (rc_flush(pub, 100) && errno != ETIMEDOUT) {
        fprintf(stderr, "rc_scale: flush: %s\n", rc_strerror(errno));
    }
}

static long s_all_received(void)
{
    long n = 0;
    for (int i = 0; i < s_nsubs; i++) {
        n += s_subs[i].received;
    }
    return n;
}

//  Serve until every subscriber has `each` numbers or `quiet` s pass
//  without a delivery.
static void s_drain(struct pollfd *fds, long each, double quiet)
{
    long seen = -1;
    double since = s_now();
    while (s_all_received() < each * s_nsubs && s_now() - since < quiet) {
        s_pump(fds, 20);
        if (s_all_received() != seen) {
            seen = s_all_received();
            since = s_now();
        }
    }
}

static int s_deliver(const char *pub_sock)
{
    s_total = DELIVER;
    struct pollfd *fds = s_subscribe("room", pub_sock, true);
    rc_client_t *pub = rc_connect(pub_sock, NULL);
    if (!pub) {
        fprintf(stderr, "rc_scale: %s: %s\n", pub_sock, rc_strerror(errno));
        return 1;
    }
    double sent[DELIVER];
    for (uint32_t n = 0; n < DELIVER; n++) {
        sent[n] = s_now();
        s_publish(pub, "room", n, fds);
        double until = s_now() + DELIVER_MS / 1000.0;
        while (s_now() < until) {
            s_pump(fds, 20);
        }
    }
    s_drain(fds, DELIVER, 3.0);
    int expected = 0;
    long dmin = -1, dmax = 0;
    double spread_max = 0, last_max = 0;
    int local = 0;
    for (uint32_t n = 0; n < DELIVER; n++) {
        long delivered = 0;
        double first = 0, last = 0;
        expected = 0;
        for (int i = 0; i < s_nsubs; i++) {
            sub_t *sub = &s_subs[i];
            if (sub->local) {
                local = sub->got[n] > 0;
                continue;
            }
            expected++;
            if (sub->got[n]) {
                delivered++;
                double t = sub->at[n];
                first = first == 0 || t < first ? t : first;
                last = t > last ? t : last;
            }
        }
        dmin = dmin < 0 || delivered < dmin ? delivered : dmin;
        dmax = delivered > dmax ? delivered : dmax;
        if (delivered) {
            spread_max =
                (last - first) > spread_max ? last - first : spread_max;
            last_max = (last - sent[n]) > last_max ? last - sent[n] : last_max;
        }
    }
    printf("expected=%d delivered_min=%ld delivered_max=%ld "
           "spread_ms_max=%.1f last_ms_max=%.1f local=%d unconfirmed=%d\n",
           expected, dmin, dmax, spread_max * 1e3, last_max * 1e3, local,
           s_unconfirmed);
    rc_close(&pub);
    for (int i = 0; i < s_nsubs; i++) {
        rc_close(&s_subs[i].client);
    }
    free(fds);
    return 0;
}

static int s_traffic(double seconds, double rate, const char *pub_sock)
{
    s_total = (long)(seconds * rate) + 1;
    struct pollfd *fds = s_subscribe("traffic", pub_sock, false);
    rc_client_t *pub = rc_connect(pub_sock, NULL);
    if (!pub) {
        fprintf(stderr, "rc_scale: %s: %s\n", pub_sock, rc_strerror(errno));
        return 1;
    }
    printf("subscribed\n");
    fflush(stdout);
    double start = s_now();
    uint32_t sent = 0;
    while (sent < (uint32_t)(seconds * rate)) {
        double due = start + sent / rate;
        if (s_now() >= due) {
            s_publish(pub, "traffic", sent++, fds);
        } else {
            int ms = (int)((due - s_now()) * 1e3);
            s_pump(fds, ms > 0 ? ms : 0);
        }
    }
    s_drain(fds, sent, 5.0);
    long lost = 0, dup = 0, rmin = -1;
    for (int i = 0; i < s_nsubs; i++) {
        sub_t *sub = &s_subs[i];
        for (uint32_t n = 0; n < sent; n++) {
            lost += sub->got[n] == 0;
        }
        dup += sub->duplicates;
        rmin = rmin < 0 || sub->received < rmin ? sub->received : rmin;
    }
    printf("sent=%u subscribers=%d received_min=%ld lost=%ld duplicates=%ld "
           "unconfirmed=%d\n",
           sent, s_nsubs, rmin, lost, dup, s_unconfirmed);
    rc_close(&pub);
    for (int i = 0; i < s_nsubs; i++) {
        rc_close(&s_subs[i].client);
    }
    free(fds);
    return 0;
}

int main(int argc, char **argv)
{
    int first;
    if (argc >= 4 && strcmp(argv[1], "deliver") == 0) {
        first = 3;
    } else if (argc >= 6 && strcmp(argv[1], "traffic") == 0) {
        first = 5;
    } else {
        fprintf(stderr, "usage: rc_scale deliver PUB_SOCK SUB_SOCK...\n"
                        "       rc_scale traffic SECONDS RATE PUB_SOCK "
                        "SUB_SOCK...\n");
        return 2;
    }
    s_nsubs = argc - first;
    s_subs = calloc((size_t)s_nsubs, sizeof *s_subs);
    for (int i = 0; i < s_nsubs; i++) {
        s_subs[i].sock = argv[first + i];
    }
    if (strcmp(argv[1], "deliver") == 0) {
        return s_deliver(argv[2]);
    }
    return s_traffic(atof(argv[2]), atof(argv[3]), argv[4]);
}
