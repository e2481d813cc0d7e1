/*  chaos: fault-injection programs for roomcast (tests/chaos/run.sh, soak.sh).

    core.c runs a cluster of real roomcastd processes (the integration
    harness starts them) with apps on each that publish steadily and
    subscribe to every topic, and keeps an exact account of what every app
    received: per (receiver, publisher instance, topic), the set of
    sequence numbers seen.

    Accounting rules (the contract in docs/design.md and "Delivery across
    hosts" in docs/cluster.md):
      - duplicate: a (publisher instance, topic, sequence) that one
        receiver sees twice. Never allowed.
      - reorder: an older sequence after a newer one from the same
        publisher and topic. Never allowed.
      - loss: a stream runs in "stretches", one per pair of sidecar
        incarnations (the publisher's sidecar node id as the message says,
        the receiver's sidecar node id as its client says). Within a
        stretch every sequence must arrive: a skipped one is a loss. A
        stretch begins at the first message delivered through a new pair
        of incarnations, so messages published while one of the two
        sidecars was down or restarting (at-most-once, by design) are
        counted apart ("at restarts") and not as losses, while a restart
        of any other sidecar never excuses anything.
      - stall: a message published STALL_MS ago inside a live stretch that
        has not arrived. A loss.
      - resumption: after a sidecar restarts, every pair of apps that
        involves it must begin a new stretch within RESUME_MS.
    Scenarios can also suspend accounting for the pairs that involve one
    sidecar (a SIGSTOPped one) and set an "excused up to" sequence per
    pair once the cluster is healed and confirmed: every sequence after it
    must arrive. */
#ifndef RC_CHAOS_H
#define RC_CHAOS_H

#include "harness.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CH_MAX_SC 8
//  Every sidecar's --repair-buffer, in KiB, and what the memory checks
//  allow for it: twice its bytes, since its many small blocks (a blob, a
//  stream entry, an index per message when each app publishes once, as in
//  the churn) cost malloc more than the bytes the ring counts, and leave
//  the heap fragmented once freed (measured: churn ends 6.4 MiB above the
//  same run with the ring off)
#define CH_REPAIR_KIB     4096
#define CH_REPAIR_KIB_ARG "4096KiB"
#define CH_REPAIR_ALLOW   (2 * CH_REPAIR_KIB)
#define CH_MAX_APPS       32
#define CH_MAX_TOPICS     8
#define CH_HEX            33

//  Failure reporting: CHECK records and goes on, REQUIRE stops the program
//  (the sidecars' logs are saved to $CHAOS_LOGDIR first).
extern int ch_failures;
void ch_fail(const char *file, int line, const char *expr, bool fatal,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            ch_fail(__FILE__, __LINE__, #cond, false, __VA_ARGS__);            \
        }                                                                      \
    } while (0)
#define REQUIRE(cond, ...)                                                     \
    do {                                                                       \
        if (!(cond)) {                                                         \
            ch_fail(__FILE__, __LINE__, #cond, true, __VA_ARGS__);             \
        }                                                                      \
    } while (0)

//  Register a daemon whose log is saved on failure.
void ch_track_log(const rcd_t *d, const char *label);
void ch_save_logs(void);

typedef struct {
    uint8_t *bits;
    size_t nbytes;
} ch_bits_t;

//  What one receiving app knows of one stream.
typedef struct {
    uint64_t last;         // highest sequence received
    char onode[CH_HEX];    // stretch key: publisher's sidecar incarnation
    char rnode[CH_HEX];    //   and the receiver's
    uint64_t first;        // first sequence of the current stretch
    long long since;       // when it began (ms, monotonic)
    uint64_t excuse_upto;  // sequences up to this one may be missing
    bool suspended;        // gaps are not counted (a paused sidecar)
    bool stalled;          // a stall was reported for this stretch
    uint64_t counted_upto; // sequences up to this one counted as lost
    ch_bits_t seen;
} ch_rx_t;

//  One publisher's sequence on one topic.
typedef struct {
    int app;
    int topic;
    uint64_t seq;   // last sequence the library used
    uint32_t *when; // publish time per sequence (ms since t0)
    size_t cap;
} ch_stream_t;

typedef struct ch_cluster_t ch_cluster_t;

typedef struct {
    ch_cluster_t *cl;
    int idx;
    int sc; // its sidecar
    rc_client_t *c;
    char inst[CH_HEX];
    long long next_pub;
    int next_topic;
    uint64_t received;
    uint64_t refused; // rc_publish refused (sidecar down)
} ch_app_t;

typedef struct {
    long long rss_start_kb, rss_end_kb, rss_max_kb;
    int restarts;
} ch_scstat_t;

struct ch_cluster_t {
    int n; // sidecars
    int apps_per;
    int ntopics;
    int rate; // messages per second per app
    const char *channel;
    rcd_t d[CH_MAX_SC];
    bool up[CH_MAX_SC];
    bool paused[CH_MAX_SC];
    char node[CH_MAX_SC][CH_HEX]; // current incarnation ("" while down)
    int gport[CH_MAX_SC], dport[CH_MAX_SC];
    char key[300];
    char argbuf[CH_MAX_SC][CH_MAX_SC + 12][80];
    const char *extra[CH_MAX_SC][64];
    ch_app_t apps[CH_MAX_APPS];
    int napps;
    ch_stream_t streams[CH_MAX_APPS * CH_MAX_TOPICS];
    int nstreams;
    ch_rx_t *rx; // napps x nstreams
    long long t0;
    bool publishing;
    int stall_ms;
    long long next_stall_check;
    //  totals
    uint64_t published, delivered, duplicates, reorders, lost, stalls;
    uint64_t excused, corrupt, unknown, refused;
    uint64_t lost_reports; // detailed lines printed (capped)
    int resume_failures;
    ch_scstat_t sc[CH_MAX_SC];
    //  sampling
    FILE *csv;
    int sample_ms;
    long long next_sample;
    uint64_t last_pub, last_deliv;
    long long last_sample_at;
    int restarts_total;
};

//  Start n sidecars with gossip (fast timings) on loopback, every one
//  seeded with every other; extra_args (NULL-terminated, may be NULL) go
//  to every sidecar. Waits until every one sees n members alive and n-1
//  live peers.
void ch_cluster_start(ch_cluster_t *cl, int n, const char *channel,
                      const char *const *extra_args);
//  Apps: apps_per on every sidecar, each subscribed (confirmed everywhere)
//  to ntopics topics and publishing rate messages/s over them.
void ch_apps_start(ch_cluster_t *cl, int apps_per, int ntopics, int rate);
//  One turn: poll the apps up to timeout_ms, dispatch, publish what is
//  due, check stalls, sample.
void ch_pump(ch_cluster_t *cl, int timeout_ms);
//  Pump until cond holds or timeout_ms passes. Returns cond's last value.
bool ch_pump_until(ch_cluster_t *cl, bool (*cond)(ch_cluster_t *, void *),
                   void *arg, int timeout_ms);
//  kill -9 sidecar i / start it again (same directory, ports, arguments).
void ch_kill(ch_cluster_t *cl, int i);
void ch_restart(ch_cluster_t *cl, int i);
//  Every pair of apps that involves sidecar i is in a stretch of its
//  current incarnation (it "resumed"). With missing, print who is not.
bool ch_resumed(ch_cluster_t *cl, int i, bool print_missing);
//  Suspend gap accounting for the pairs that involve sidecar i / resume
//  it: every sequence published from now on must arrive.
void ch_suspend_pairs(ch_cluster_t *cl, int i);
void ch_excuse_until_now(ch_cluster_t *cl, int i);
//  Stop publishing, flush, and wait until every app holds every sequence
//  of every stream (the last ones included). Counts what is missing as
//  lost. Returns true when complete.
bool ch_drain(ch_cluster_t *cl, int timeout_ms);
//  Stop every sidecar with SIGTERM; CHECK each exits 0.
void ch_cluster_stop(ch_cluster_t *cl);
void ch_apps_close(ch_cluster_t *cl);
//  Print the figures.
void ch_report(ch_cluster_t *cl, const char *label);
void ch_sample(ch_cluster_t *cl);

//  Helpers.
long ch_rss_kb(pid_t pid);
int ch_open_fds(pid_t pid);
//  Node id of the sidecar at socket (hex) into out; false on error.
bool ch_node_id(const char *socket, char out[CH_HEX]);
//  State and incarnation of member node (hex) as the sidecar at socket
//  sees it: state into out ("" when not listed); incarnation may be NULL.
bool ch_member_state(const char *socket, const char *node, char *state,
                     size_t size, unsigned long long *incarnation);
//  The sidecar at socket hears peer node (hex) and is heard by it.
bool ch_peer_live(const char *socket, const char *node);
//  Members in state at socket; -1 on error.
int ch_members_in(const char *socket, const char *state);
//  Seeded PRNG (xorshift64*).
void ch_seed(uint64_t seed);
uint64_t ch_rand(void);
int ch_rand_between(int lo, int hi);

#endif
