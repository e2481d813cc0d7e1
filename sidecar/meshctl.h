/*  meshctl: the mesh's control plane as a state machine

    meshctl_t holds one sidecar's peer table and decides, from what the
    ZeroMQ adapter (sidecar/mesh.c) tells it and the time it passes in, which
    links we hear, which peers hear us, when a subscription is confirmed,
    and the health. It does no I/O: control bodies come out of meshctl_io_t
    as plaintext msgpack, which the adapter seals under the cluster key and
    sends (as gossip.c does with what swim.c emits); what the adapter
    receives and opens goes back in. Given the same inputs and times it does
    the same thing: tests/unit/test_meshctl.c runs whole meshes on a
    simulated clock and network (tests/unit/meshctl_sim.h).

    WHO SAYS WHAT

    Gone (the peer left the cluster) is SWIM's to say, through
    meshctl_member: dead, left or forgotten. Link beats never remove a
    member. Without gossip (static --peer lists, cfg.gossip false) link
    silence (and a withdrawn marker, below) is the only failure detector: a
    peer silent for down_after of its beat intervals is down and gone.

    "We hear P": something authenticated from P within down_after of its
    beat intervals: a beat, an ack, or an envelope P originated
    (meshctl_on_data: data proves life as a beat does).

    "P hears us": P's marker is subscribed on our XPUB (the adapter reports
    meshctl_on_marker_seen, and meshctl_on_marker_gone when libzmq withdraws
    it) and P's latest beat does not list us as deaf. A marker carries P's
    node id; P's SUB sends it only over a link whose handshake is done,
    after every subscription P made before it (subscriptions travel in
    order, and a marker sorts last when libzmq resends them on reconnect),
    and libzmq withdraws it when that link ends. So it proves more than "P
    gets our beats": P's subscriptions are in place here, our publishes
    reach P. The deaf list covers what a subscription cannot see: a link
    that stays connected while what we send no longer arrives. A withdrawn
    marker means P's link to us ended, which mostly means P died or
    restarted: P is then down at once (not heard), until heard again; if
    only that one link broke, P's next beat brings it back. When P's marker
    comes back after it was withdrawn, io->relinked says so (with when it
    went): what we sent P about then may be lost, and P's subscriptions
    are in place again, so the adapter can send it again now.

    WHAT IS SENT WHEN (N alive peers: heard, or alive for SWIM)

      beat   to all, every I = beat_ms * max (1, ceil (N / fan_in)) ms: who
             we are, I, and the peers we expect to hear but do not (our
             "down" set; at most MESHCTL_DEAF_MAX ids per beat, taking
             turns when there are more). In a healthy cluster that list is
             empty, so a beat has a constant size. When that set changed
             since our last beat, the beat goes at the next beat_ms.
      ack    addressed to P, when our XPUB sees a new marker of P.
      marker a subscription MK || node || n, made by meshctl_flush (once per
             loop turn at most) when our subscriptions changed, when a peer
             we heard before is heard again (it must confirm afresh), and
             when a confirmation is stuck for retry_ms (at most once per
             retry_ms, while one is pending). The previous marker is
             unsubscribed after the new one is subscribed.

    IDLE COST, per sidecar, per beat_ms, with N peers that all see about N:
    it receives N beats every I, that is at most about fan_in beats (10 by
    default: 20 a second at 500 ms) whatever N, and sends one beat every I,
    which ZeroMQ writes to N links (again about fan_in writes per beat_ms);
    each beat is B bytes, B independent of N (about 27 bytes of plaintext
    plus the name and endpoint; 48 more with the seal and frame 1); no ack,
    no marker. Up to fan_in + 1 peers (11) nothing changes: a beat every
    beat_ms. The price is detection by silence alone: down_after * I (4 *
    5 s at 100 peers), which is why it is only a backstop: SWIM says who is
    dead (8 s at 100 members), a withdrawn marker says at once that a link
    ended (a killed process closes its connections), and a peer first
    connecting is heard at once through its ack of our marker. The
    heartbeat this replaces went out every beat_ms and carried every peer
    heard (18 bytes each): per sidecar N beats of 18 N bytes per beat_ms.
    Measured on loopback, what an idle sidecar spends goes with the number
    of messages (wake-ups, system calls), not their size: hence a bound on
    the messages, not only on the bytes. Receiving a beat is O(log N) (a
    binary search in the table, sorted by node id); meshctl_tick scans the
    table once per beat_ms, O(N), without a system call. A beat is not
    skipped when data flows: ZeroMQ's filtering sends data only to the
    peers that subscribed, and the sender cannot know which peers got
    none. A receiver counts data as hearing a peer all the same.

    THE TABLE, BOUNDED AND FORGETTING

    An entry appears when a peer is heard, SWIM reports it alive or suspect,
    or its marker is seen. Dead and left members (SWIM) stay as tombstones,
    which late beats cannot revive, until SWIM forgets them or forget_ms has
    passed; an entry that is neither heard, nor alive or suspect for SWIM,
    nor subscribed on our XPUB, is dropped forget_ms after anything last
    happened to it (without gossip: forget_ms after it went silent). The
    table holds at most max_peers entries (default 4096, as swim.h's
    SWIM_MEMBERS_MAX). When full, a new entry evicts the oldest tombstone,
    else the oldest entry that is neither heard nor alive for SWIM; a heard
    or SWIM-alive one is never evicted, and only when every entry is one of
    those is the new one not kept (counted in overflows). So the table
    holds the live cluster plus what went quiet in the last forget_ms.

    Down (roomcastctl, metrics) counts the members SWIM says are alive or
    suspect whose link we do not hear; without gossip, the peers heard
    before that went silent, until they are forgotten.

    HEALTH

    With nothing configured (cfg.expect_peers false): "cluster of one",
    readable and writable. Otherwise readable when we hear a peer, writable
    when a peer that is alive (heard, or alive or suspect for SWIM) hears
    us, both false until that is so.

    CONFIRMATIONS

    A SUB made now is in effect everywhere once every peer we hear has
    acked a marker >= meshctl_marker_for_sub (). A peer heard for the first
    time acks our current marker by itself: our SUB resends every
    subscription, the marker last, to a new link. A peer heard again after
    silence must confirm afresh (its acks are forgotten, a new marker is
    made). io->confirmed (upto, true) says every marker <= upto is
    confirmed; io->confirmed (upto, false) that markers <= upto waited
    longer than confirm_timeout_ms and are given up (a peer never acked).

    WIRE (plaintext msgpack bodies; the adapter seals them under the
    cluster key, associated data "roomcast/ctl/v1" || frame 1 || channel)

      kind          frame 1 (adapter's)        body
      MESHCTL_BEAT  HB (8 bytes)               [node bin16, beat uint,
                    every SUB subscribes HB     interval uint (ms),
                                                name str, endpoint str,
                                                deaf_total uint,
                                                [deaf node bin16 ...],
                                                [[node bin16, missed
                                                  uint] ...]]
      MESHCTL_ACK   AK (8) || to node (16)     [acker node bin16,
                    only "to" subscribes it     marker uint,
                                                interval uint (ms)]
      marker        a subscription, not a message: MK (8) || node (16) ||
                    marker (u64 big-endian)
      (repair)      RQ (8) || origin (16) and RA (8) || requester (16):
                    repair requests and answers, addressed as acks are;
                    their bodies are mesh.c's, the decisions repair.h's
                    (a receiver's state machine), not meshctl's

    HB, AK and MK are mesh.c's 8-byte prefixes starting 0xff. beat counts
    up from 1 per boot (node id): a beat not above the last one seen from
    that node is a replay or came late, and is ignored (a recorded beat
    cannot keep a dead peer heard). interval is I, the time to the sender's
    next beat (a receiver waits down_after times it, at least beat_ms, and
    believes at most 600 s); an ack carries the acker's interval too, so a
    peer first heard through its ack is not taken for silent before its
    first beat. A peer heard only through data is given our own interval.
    deaf_total is the size of the sender's down set; the list holds up to
    MESHCTL_DEAF_MAX of them, in node id order, the next ones on the next
    beat. The last list says, for up to MESHCTL_DEAF_MAX peers whose
    count moved since the sender's last beat, how many of that peer's
    messages the sender missed in all (sequence gaps): a publisher learns
    from it what was lost on the way to each peer (publish-side drops,
    per link), and an idle beat carries it empty.
    A receiver is deaf-listed while it is in the list, or, when
    deaf_total > MESHCTL_DEAF_MAX, while it was listed within the last
    ceil (deaf_total / MESHCTL_DEAF_MAX) beats.

    THREAD SAFETY: a meshctl_t belongs to one thread (the event loop). The
    io callbacks run synchronously inside the calls below; they may call
    the query functions (meshctl_health, meshctl_counts, meshctl_rows,
    meshctl_stats, meshctl_size, meshctl_is_confirmed, meshctl_marker_for_sub)
    and nothing else.
*/
#ifndef RCD_MESHCTL_H
#define RCD_MESHCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESHCTL_ID_SIZE      16
#define MESHCTL_NAME_MAX     64  // bytes, NUL excluded
#define MESHCTL_ENDPOINT_MAX 255 // bytes, NUL excluded
#define MESHCTL_DEAF_MAX     8   // deaf ids per beat
#define MESHCTL_BODY_MAX     600 // largest body meshctl emits

//  Control kinds (the adapter maps them to frame 1, see WIRE above).
typedef enum { MESHCTL_BEAT = 1, MESHCTL_ACK = 2 } meshctl_kind_t;

//  Member states, numbered as swim_state_t.
typedef enum {
    MESHCTL_FORGOTTEN = 0,
    MESHCTL_ALIVE = 1,
    MESHCTL_SUSPECT = 2,
    MESHCTL_DEAD = 3,
    MESHCTL_LEFT = 4
} meshctl_member_t;

//  Link events.
typedef enum {
    MESHCTL_UP = 1,   // we hear the peer (first time or again)
    MESHCTL_DOWN = 2, // we no longer hear it
    MESHCTL_GONE = 3  // it is gone (SWIM; without gossip, link silence)
} meshctl_event_t;

typedef struct {
    uint32_t beat_ms;            // beat period (--heartbeat), default 500
    uint32_t down_after;         // beats missed: not heard, default 4
    uint32_t forget_ms;          // tombstone period, default 60000
    uint32_t confirm_timeout_ms; // give a confirmation up, default 30000
    uint32_t retry_ms;           // stuck confirmation: new marker, def. 2000
    size_t max_peers;            // table cap, default 4096
    uint32_t fan_in;             // beats received per beat_ms, default 10
    bool gossip;                 // SWIM feeds meshctl_member
    bool expect_peers;           // peers, proxies or seeds configured
} meshctl_config_t;

typedef struct {
    bool readable;      // a peer is heard
    bool writable;      // an alive peer hears us
    unsigned live;      // peers heard
    const char *detail; // "cluster of one", "peers live", ... (static)
} meshctl_health_t;

typedef struct {
    void *arg; // passed to every callback
    //  Send a control body of kind: to all when to is NULL, else to that
    //  node only. body is valid during the call. Required.
    void (*send)(void *arg, int kind, const uint8_t *to, const uint8_t *body,
                 size_t len);
    //  Subscribe (on) or unsubscribe our marker n (MK || our node || n).
    //  Required.
    void (*marker)(void *arg, uint64_t n, bool on);
    //  A link event (meshctl_event_t) about node; name and endpoint as
    //  known (may be ""). Optional.
    void (*peer)(void *arg, const uint8_t *node, const char *name,
                 const char *endpoint, int event);
    //  Health changed. Optional.
    void (*health)(void *arg, const meshctl_health_t *health);
    //  Markers <= upto are confirmed (ok) or given up (!ok). Optional.
    void (*confirmed)(void *arg, uint64_t upto, bool ok);
    //  node's marker is back on our XPUB after its link from us ended at
    //  gone_at (ms): what we sent it about then may be lost on the way.
    //  Its subscriptions are in place again (the marker sorts last), so
    //  what we send now reaches it. Optional.
    void (*relinked)(void *arg, const uint8_t *node, uint64_t gone_at);
} meshctl_io_t;

typedef struct {
    uint64_t beats_sent;
    uint64_t beats_received; // accepted
    uint64_t acks_sent;
    uint64_t acks_received; // accepted
    uint64_t replays;       // beats not above the last seen, or a tombstone's
    uint64_t bad;           // bodies that did not decode (EPROTO)
    uint64_t markers;       // markers made
    uint64_t retries;       // of them, for a stuck confirmation
    uint64_t expired;       // confirmations given up
    uint64_t evicted;       // entries dropped to make room
    uint64_t overflows;     // entries not kept: table full of live peers
    uint64_t forgotten;     // entries dropped after forget_ms or by SWIM
    uint64_t lost_to_peers; // ours the peers in the table say they missed
} meshctl_stats_t;

//  One table entry, for roomcastctl. Strings and node are borrowed.
typedef struct {
    const uint8_t *node;
    const char *name;
    const char *endpoint;
    const char *state; // "live", "down", "silent", "dead", "left"
    int member;        // meshctl_member_t, 0 when SWIM said nothing
    bool hears_us;     // see "P hears us"
    uint64_t last_ms;  // since heard, UINT64_MAX if never
    uint64_t acked;    // highest of our markers it acked
    uint64_t received; // its envelopes (meshctl_on_data)
    uint64_t missed;   // its messages lost on the way
    uint64_t lost_to;  // ours it says were lost on the way to it
} meshctl_row_t;

typedef struct meshctl_t meshctl_t;

//  Fill cfg with the defaults above (gossip and expect_peers false).
void meshctl_config_defaults(meshctl_config_t *cfg);

//  Create the control plane of node (16 bytes) with this name and data
//  endpoint (truncated to the maxima). cfg NULL: defaults. io is copied.
//  Returns NULL with errno EINVAL (a zero period, down_after 0,
//  max_peers 0, io->send or io->marker NULL) or ENOMEM.
meshctl_t *meshctl_new(const meshctl_config_t *cfg, const uint8_t *node,
                       const char *name, const char *endpoint,
                       const meshctl_io_t *io, uint64_t now)
    __attribute__((warn_unused_result, nonnull(2, 3, 4, 5)));

//  Destroy and null the pointer; safe on NULL and twice. Sends nothing.
void meshctl_destroy(meshctl_t **self_p);

//  Run what is due at now (beats, silence, forgetting, confirmation
//  expiry and retry). Then meshctl_next_deadline () > now.
void meshctl_tick(meshctl_t *self, uint64_t now) __attribute__((nonnull));

//  When meshctl_tick is next due (absolute ms).
uint64_t meshctl_next_deadline(const meshctl_t *self) __attribute__((nonnull));

//  End of a loop turn: make the marker that subscription changes or a
//  reappearing peer asked for, if any. Cheap when there is nothing to do.
void meshctl_flush(meshctl_t *self, uint64_t now) __attribute__((nonnull));

//  An opened control body of kind (the adapter checked that frame 1 was
//  that kind's, addressed to us for an ack). Returns 0, or -1 with errno
//  EPROTO (malformed, counted in bad) or EALREADY (a beat not above the
//  last seen, or from a dead or left member: ignored, counted in replays).
int meshctl_on_control(meshctl_t *self, uint64_t now, int kind,
                       const uint8_t *body, size_t len)
    __attribute__((nonnull(1)));

//  received envelopes that origin node sent reached us (opened, not
//  duplicates; the adapter may sum a run of them from one node into one
//  call); missed: messages of it lost on the way (sequence gaps). Proves
//  life.
void meshctl_on_data(meshctl_t *self, uint64_t now, const uint8_t *node,
                     uint64_t received, uint64_t missed)
    __attribute__((nonnull));

//  Our XPUB got marker n of node subscribed (answered with an ack) or
//  withdrawn.
void meshctl_on_marker_seen(meshctl_t *self, uint64_t now, const uint8_t *node,
                            uint64_t n) __attribute__((nonnull));
void meshctl_on_marker_gone(meshctl_t *self, uint64_t now, const uint8_t *node,
                            uint64_t n) __attribute__((nonnull));

//  SWIM says node is now in state (meshctl_member_t), with this name and
//  data endpoint (NULL or "" keep what is known).
void meshctl_member(meshctl_t *self, uint64_t now, const uint8_t *node,
                    int state, const char *name, const char *endpoint)
    __attribute__((nonnull(1, 3)));

//  Whether peers are expected (a --peer added at run time turns it on).
void meshctl_expect_peers(meshctl_t *self, uint64_t now, bool expect)
    __attribute__((nonnull));

//  Our SUB subscribed something: the next meshctl_flush makes a marker.
void meshctl_subscriptions_changed(meshctl_t *self) __attribute__((nonnull));

//  The marker a SUB made now must see acked (wait for io->confirmed with
//  upto >= it, unless meshctl_is_confirmed says it already is).
uint64_t meshctl_marker_for_sub(const meshctl_t *self) __attribute__((nonnull));

//  Whether marker n is made and acked by every peer we hear.
bool meshctl_is_confirmed(const meshctl_t *self, uint64_t n)
    __attribute__((nonnull));

//  Queries.
void meshctl_health(const meshctl_t *self, meshctl_health_t *health)
    __attribute__((nonnull));
void meshctl_counts(const meshctl_t *self, unsigned *live, unsigned *down)
    __attribute__((nonnull));
size_t meshctl_size(const meshctl_t *self) __attribute__((nonnull));
void meshctl_stats(const meshctl_t *self, meshctl_stats_t *stats)
    __attribute__((nonnull));
typedef void(meshctl_row_fn)(void *arg, const meshctl_row_t *row);
void meshctl_rows(const meshctl_t *self, uint64_t now, meshctl_row_fn *fn,
                  void *arg) __attribute__((nonnull(1, 3)));

#endif
