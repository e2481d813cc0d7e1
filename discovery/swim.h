/*  swim.h - membership by gossip: the SWIM protocol as a state machine

    swim_t keeps the member table of one roomcastd and runs the SWIM failure
    detector (Das et al., 2002) with the refinements of hashicorp/memberlist:
    round-robin probing, indirect probes through k other members, suspicion
    with incarnation numbers, dissemination of updates piggybacked on
    protocol packets and on a separate gossip round, push-pull anti-entropy,
    graceful leave, and two of Lifeguard's (Dadgar et al., 2018): local
    health awareness and telling a suspect that it is suspected.

    It does no I/O of its own. The caller (the daemon) owns the UDP socket,
    the clock and the cluster key:

      - packets to send come out of io->send as plaintext of at most
        max_packet bytes; the daemon seals them with the cluster key and
        sends one datagram each to the address string, which is a member's
        gossip address, a seed given to swim_join, or a from_addr that
        swim_recv was given (so it must resolve "host:port" strings);
      - every datagram that opened correctly goes into swim_recv with the
        sender's address as a string the daemon can send back to;
        datagrams that do not open are dropped before (swim_t never sees
        them);
      - times are milliseconds of one monotonic clock; the daemon keeps one
        timer armed at swim_next_deadline () and calls swim_tick () when it
        fires, and re-reads the deadline after every call into swim_t.

    Given the same inputs, times and random numbers, a swim_t does exactly
    the same thing: the tests run whole clusters on a simulated network.

    PROTOCOL SUMMARY (wire format in swim_codec.h)

    Each protocol period (probe_interval_ms) a member pings the next member
    of a shuffled round-robin list of the alive and suspect members. With no
    ack after probe_timeout_ms it asks indirect_checks other alive members
    to ping the target for it (ping-req); with still no ack by the end of
    the period the target becomes *suspect* (unless it has meanwhile shown
    a higher incarnation: a failed probe only speaks for the incarnation it
    probed). A suspect that stays so for

        suspicion_mult * max (1, log10 (n)) * probe_interval_ms

    (n = alive + suspect members, self included, when the suspicion starts)
    is declared *dead*. With the defaults that is 1.5 s up to 10 members,
    3 s at 100, 4.5 s at 1,000.

    Local health (Lifeguard's LHM): a member keeps a score from 0 to
    health_max - 1. A probe of ours that fails raises it by one, as does
    having to refute a suspicion of ourselves; a probe that is answered
    lowers it by one. Our probe period and our probe timeout are both
    multiplied by score + 1. A member that misses acks because it is the
    slow one (CPU-starved, its own link lossy) so probes less often and
    waits longer before it accuses anyone, instead of spreading false
    suspicions; a healthy cluster runs at score 0. A member that hears that it
   is suspect, dead or left (while it is not leaving) refutes: it sets its
   incarnation one above the one it heard and disseminates *alive*. A ping for
   another node id (the address now belongs to a restarted node with a new id)
   gets no ack.

    An update about a member replaces what we know when (i = incoming
    incarnation, j = known one):
      alive(i)   overrides anything with i > j (so a dead or left member
                 comes back with a higher incarnation);
      suspect(i) overrides alive(j) with i >= j and suspect(j) with i > j;
      dead(i)    overrides alive/suspect(j) with i >= j, dead/left(j) i > j;
      left(i)    overrides alive/suspect/dead(j) with i >= j, left(j) i > j.

    Dissemination: every accepted change is queued and piggybacked on later
    pings, acks, ping-reqs and leaves, up to retransmit_mult *
    ceil (ln (n + 1)) times each (12 with the defaults at 10 members),
    least-sent and newest first, as many as fit in max_packet. While the
    queue holds news, every gossip_interval_ms it also goes out in a gossip
    packet to gossip_nodes random alive members, as memberlist does: news
    then spreads in O(log n) gossip rounds instead of O(log n) probe
    periods. A gossip packet is an ack with sequence number 0, which no
    probe uses, so it carries news only and needs no answer; with an empty
    queue nothing is sent and no timer is armed. Before the
    queue, each such packet carries the sender's own record, so whoever we
    talk to learns our latest incarnation and state at once, and, when we
    hold the receiver suspect or dead, the receiver's record, so that it
    can refute in its answer. Each period we also ping up to
    indirect_checks of the members we suspect: a live one refutes in its
    ack before the suspicion runs out, even when gossip misses it (with
    this, 10-20% packet loss gives no false deaths in the tests).

    Anti-entropy: every pushpull_interval_ms (first one at a random point
    of the first interval) a member sends its whole table to one random
    alive member, and to one random dead one (so that a healed partition
    finds itself again); the receiver merges it and answers with its own.
    Beyond 32 live members the period grows as memberlist's pushPullScale
    does: times ceil (log2 (n) - 5) + 1 (3 at 100 members, 6 at 1,000), so
    that a member's share of anti-entropy (tables of n records) grows as
    n / log n, not n.
    In a table merge a member reported dead is only suspected (and refutes
    if it is alive); dead and left members the receiver does not know are
    not copied. Dead and left members stay as tombstones for dead_reap_ms,
    so that stale news with an old incarnation cannot bring them back, then
    are forgotten.

    THREAD SAFETY: a swim_t belongs to one thread (the event loop). The io
    callbacks run synchronously inside swim_new, swim_join, swim_recv,
    swim_tick, swim_leave and the setters; they may call swim_lookup,
    swim_self, swim_size, swim_count and swim_stats, and nothing else.
*/

#ifndef SWIM_H_INCLUDED
#define SWIM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SWIM_ID_SIZE      16  // node id bytes
#define SWIM_KEY_SIZE     32  // CurveZMQ public key bytes
#define SWIM_NAME_MAX     64  // longest name, bytes, NUL excluded
#define SWIM_ENDPOINT_MAX 255 // longest data endpoint
#define SWIM_ADDR_MAX     64  // longest gossip address ("ip:port")
#define SWIM_ZONE_MAX     64  // longest zone

#define SWIM_PACKET_MIN  576   // smallest max_packet accepted
#define SWIM_PACKET_MAX  65507 // largest max_packet accepted (UDP limit)
#define SWIM_MEMBERS_MAX 4096  // records kept, tombstones included

//  Member states. NONE is never stored: it is the old state of a member
//  seen for the first time and the new state of a forgotten one.
typedef enum {
    SWIM_NONE = 0,
    SWIM_ALIVE = 1,
    SWIM_SUSPECT = 2,
    SWIM_DEAD = 3,
    SWIM_LEFT = 4
} swim_state_t;

//  One member record. Strings are NUL-terminated and hold no other NUL.
typedef struct {
    uint8_t id[SWIM_ID_SIZE];             // node id, never all zero
    char name[SWIM_NAME_MAX + 1];         // host name, may be empty
    uint64_t incarnation;                 // bumped only by the member
    int state;                            // swim_state_t
    char endpoint[SWIM_ENDPOINT_MAX + 1]; // data endpoint, may be empty
    char gossip_addr[SWIM_ADDR_MAX + 1];  // "ip:port", never empty
    uint8_t pubkey[SWIM_KEY_SIZE];        // CurveZMQ key or all zero
    char zone[SWIM_ZONE_MAX + 1];         // may be empty
    uint64_t start_ms;                    // member's start time
} swim_member_t;

//  The defaults are chosen for a hundred hosts or so on one LAN (see
//  docs/scale.md for the simulated figures behind them): memberlist's LAN
//  gossip timings with a 500 ms protocol period and a suspicion factor of
//  3, so that a crash is seen dead everywhere within about 5 s at 100
//  members, with no false death at 10% packet loss or with 5% of the
//  members starved of CPU.
typedef struct {
    uint32_t probe_interval_ms;    // protocol period, default 500
    uint32_t probe_timeout_ms;     // direct ack wait, default 250
    uint32_t indirect_checks;      // k ping-req helpers, default 3
    uint32_t suspicion_mult;       // suspicion timeout factor, default 3
    uint32_t retransmit_mult;      // dissemination factor, default 4
    uint32_t pushpull_interval_ms; // anti-entropy period, default 30000
    uint32_t dead_reap_ms;         // tombstone lifetime, default 60000
    size_t max_packet;             // plaintext bytes per packet, def. 1400
    uint32_t gossip_interval_ms;   // gossip round while news waits, def. 200
    uint32_t gossip_nodes;         // members per gossip round, default 3
    uint32_t health_max;           // local health ceiling (1 = off), def. 8
} swim_config_t;

typedef struct {
    void *arg; // passed to every callback
    //  Send one plaintext packet to addr. buf is valid during the call
    //  only; len <= max_packet. Required.
    void (*send)(void *arg, const char *addr, const uint8_t *buf, size_t len);
    //  Another member's record changed: state, or any field but the
    //  incarnation. old_state is SWIM_NONE for a member seen for the first
    //  time; m->state is SWIM_NONE when a tombstone is forgotten. m is
    //  valid during the call only. A member first heard of as dead or left
    //  is kept silently (no callbacks) unless it comes back. Optional.
    void (*changed)(void *arg, const swim_member_t *m, int old_state);
    //  64 random bits. Optional: when NULL a generator seeded from the
    //  node id is used (deterministic, fine for tests only).
    uint64_t (*random)(void *arg);
} swim_io_t;

typedef struct {
    uint64_t packets_in;  // datagrams given to swim_recv
    uint64_t packets_out; // datagrams sent
    uint64_t bytes_in;    // their bytes
    uint64_t bytes_out;   // their bytes
    uint64_t bad_packets; // rejected by swim_recv (EPROTO)
    uint64_t probes;      // probes started
    uint64_t indirect;    // probes that needed ping-req
    uint64_t suspicions;  // probes that failed: we suspected the target
    uint64_t refutations; // times we refuted news about ourselves
    uint64_t deaths;      // members we marked dead (our timer or news)
    uint64_t leaves;      // members we marked left
    uint64_t pushpulls;   // push-pull exchanges we started (joins incl.)
    uint64_t overflows;   // updates or members dropped: table full
    uint64_t gossips;     // gossip packets sent
    uint64_t health;      // local health score now (0 = healthy)
} swim_stats_t;

typedef struct swim_t swim_t;

//  Fill cfg with the defaults above.
void swim_config_defaults(swim_config_t *cfg);

//  Create a node. cfg may be NULL for the defaults; self is our own record
//  (its state is ignored: we start alive), copied. The daemon should start
//  with a node id that is new or an incarnation higher than any it used
//  before (the start time in ms is a good one); if neither holds, the node
//  refutes the old news about itself and comes back alive all the same.
//  Returns NULL with errno EINVAL (bad config or record: probe_timeout_ms
//  must be below probe_interval_ms, max_packet within SWIM_PACKET_MIN..
//  SWIM_PACKET_MAX, every period non-zero, gossip_nodes and
//  indirect_checks at most 16, health_max at least 1, io->send set) or
//  ENOMEM.
swim_t *swim_new(const swim_config_t *cfg, const swim_member_t *self,
                 const swim_io_t *io, uint64_t now_ms)
    __attribute__((warn_unused_result, nonnull(2, 3)));

//  Destroy a node and null the pointer. Safe on NULL and twice. Sends
//  nothing: call swim_leave first for a graceful exit.
void swim_destroy(swim_t **self_p);

//  Send a join (push-pull request with our table) to a seed address. The
//  seed's id is unknown until it answers. The address is remembered: while
//  we know no other alive member we ask every remembered seed again, after
//  probe_interval_ms and then twice as late each time, up to
//  pushpull_interval_ms. Call it again to heal a partition older than
//  dead_reap_ms (the two sides have forgotten each other). Returns 0, or -1
//  with EINVAL (empty or too long address, or after swim_leave), ENOSPC
//  (32 seeds already).
int swim_join(swim_t *self, const char *addr, uint64_t now_ms)
    __attribute__((nonnull(1, 2)));

//  Process one received plaintext packet. from_addr (1..SWIM_ADDR_MAX
//  bytes) is where it came from: answers go there. Returns 0 (also for our
//  own packets, ignored), or -1 with EPROTO when the packet is malformed or
//  inconsistent (counted in bad_packets, nothing changed), EINVAL for a bad
//  from_addr, ENOMEM. Never aborts and never reads outside buf, whatever
//  the bytes.
int swim_recv(swim_t *self, const char *from_addr, const uint8_t *buf,
              size_t len, uint64_t now_ms) __attribute__((nonnull(1, 2)));

//  Run every timer due at now_ms. After it, swim_next_deadline () > now_ms.
void swim_tick(swim_t *self, uint64_t now_ms) __attribute__((nonnull));

//  Absolute time (ms) of the next timer; UINT64_MAX when there is none.
uint64_t swim_next_deadline(swim_t *self) __attribute__((nonnull));

//  Leave gracefully: mark ourselves left with incarnation + 1, send a leave
//  packet at once to up to max (3, indirect_checks) random members and
//  disseminate it. Afterwards we no longer probe, suspect or push-pull but
//  still answer, so the news spreads; the daemon should keep the node
//  running for about one protocol period, then destroy it. Returns 0
//  (also when called twice).
int swim_leave(swim_t *self, uint64_t now_ms) __attribute__((nonnull));

//  Change our data endpoint; disseminated with incarnation + 1. Returns 0,
//  or -1 with EINVAL (too long, or after swim_leave).
int swim_set_endpoint(swim_t *self, const char *endpoint, uint64_t now_ms)
    __attribute__((nonnull));

//  Change our record: name, endpoint, gossip address, public key and zone
//  are taken from rec (id must be ours; incarnation, state and start time
//  are ignored); disseminated with incarnation + 1. Returns 0, or -1 with
//  EINVAL (another id, a field out of bounds, or after swim_leave).
int swim_set_self(swim_t *self, const swim_member_t *rec, uint64_t now_ms)
    __attribute__((nonnull));

//  Our own record, borrowed, valid until the next call that is not a
//  read-only one.
const swim_member_t *swim_self(swim_t *self) __attribute__((nonnull));

//  A member by node id (ourselves included), borrowed as above; NULL if
//  unknown.
const swim_member_t *swim_lookup(swim_t *self, const uint8_t *id)
    __attribute__((nonnull));

//  Number of records kept: us, alive, suspect members and tombstones.
size_t swim_size(swim_t *self) __attribute__((nonnull));

//  Number of records in one state (ourselves included).
size_t swim_count(swim_t *self, int state) __attribute__((nonnull));

//  Iterate over every record, ourselves included, in node id order.
//  Records are borrowed; any call but the read-only ones ends the walk.
const swim_member_t *swim_first(swim_t *self) __attribute__((nonnull));
const swim_member_t *swim_next(swim_t *self) __attribute__((nonnull));

//  Copy the counters.
void swim_stats(swim_t *self, swim_stats_t *stats) __attribute__((nonnull));

//  "alive", "suspect", "dead", "left", "none"; "?" for anything else.
const char *swim_state_name(int state);

#ifdef __cplusplus
}
#endif

#endif
