/*  mesh: the sidecar <-> sidecar relay over ZeroMQ.

    Mesh mode: one XPUB bound at --bind, one SUB connected to every peer's
    data endpoint. Proxy mode: the XPUB connects to every proxy's frontend,
    the SUB to every proxy's backend. Either way the local publishes of
    one loop turn are sealed once per routing key (envelope.c, format 2:
    a batch) and sent once, at the end of the turn (the mesh's idle hook;
    never on a timer); XPUB filtering sends them only to the sidecars that
    subscribed to their routing key, which they do while they have a local
    subscriber (registry hooks: lazy interest).

    Received envelopes are opened once, and each message they hold, in
    order, is deduplicated per origin node (two proxies deliver twice),
    sequence-checked per (publisher, topic) (gaps counted) and reported to
    io->message with what was missed before it. The mesh
    includes no other component: what follows (local fanout, GAP notices,
    presence, apps told of health) is the coordinator's.

    Control traffic on the same sockets, sealed under the cluster key, is
    decided by the control plane, sidecar/meshctl.h (its design, idle cost
    and wire format): the mesh feeds it what arrives and what the XPUB sees,
    and sends what it says.
      beat       to all, every --heartbeat ms (times ceil (peers / 10)
                 beyond 10 peers: a sidecar gets about 10 beats per period
                 whatever the cluster size): node id, name, endpoint, and
                 the peers we should hear but do not (empty when all is
                 well: a beat's size does not grow with the cluster)
      marker     a subscription "MK" || node || n, made after subscription
                 changes; subscriptions travel in order on a link, so a
                 peer that sees marker n holds every subscription sent
                 before it, and answers with
      ack        on "AK" || node: (acker, n). A SUB is confirmed
                 ("everywhere") when every peer we hear acked a marker made
                 after it; a peer heard again after silence gets a fresh
                 marker. A peer's marker subscribed on our XPUB also says
                 that it hears us (writable).
    SWIM membership (mesh_member_changed) says when a peer is gone; without
    gossip, a peer silent for 4 of its beat periods, or whose link to us
    ended, is.
    The SUB and XPUB queues for subscriptions are unbounded (HWM 0 on that
    direction) so a bulk resubscribe after a reconnect is never dropped
    (libzmq#4064); data queues are bounded by --mesh-hwm.

    BACKPRESSURE (no loss between live sidecars). The XPUB does not drop
    envelopes (ZMQ_XPUB_NODROP): when a peer's queue is full a send fails,
    the envelope waits in a backlog (what the apps' current reads hold, no
    more) and io->blocked (true) asks the coordinator to stop reading its
    apps until io->blocked (false). The backlog is tried again every turn
    and every 5 ms. Blocked for --peer-stall-timeout, the peers are "cut":
    the peers that hear us but were not heard since the block began are
    named in a warn log line (peer_cut) and counted (mesh_peers_cut), the
    backlog goes out and, until no send has found a full queue for another
    --peer-stall-timeout, a send that would wait is made without waiting,
    so the full queue (the stalled peer's) drops it while the others get
    it. The stalled peer sees the gap once it reads again: repaired from
    our ring if still there, else its apps get a GAP. Control messages
    (beats, acks, presence, repair) are never held: they are sent lossy.

    REPAIR. Every envelope sent is kept in a ring (sentring.h, bounded by
    --repair-buffer bytes and --repair-age). A receiver that sees a gap
    asks the origin (repair.h decides when, holds the stream in order, and
    when to give up); the origin re-publishes the stored envelopes as they
    are (receivers that had them drop the copies by event id) and then
    answers, so the receiver knows what did not come is gone. An origin
    whose link ends or that goes silent ends its repairs at once (GAP,
    reason origin gone).

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_MESH_H
#define RCD_MESH_H

#include "config.h"
#include "keyring.h"
#include "loop.h"
#include "msg.h"
#include "stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mesh_t mesh_t;

//  Health of the links (DESIGN: two bits).
typedef struct {
    bool readable;       // a live peer is heard
    bool writable;       // a live peer hears us
    unsigned live_peers; //
    const char *detail;  // e.g. "peers live" (static string)
} mesh_health_t;

//  How the mesh reports (every pointer argument borrowed for the call).
typedef struct {
    void *arg;
    //  An envelope from another sidecar, opened and deduplicated; missed
    //  messages of its stream were lost before it (0: none).
    void (*message)(void *arg, const msg_t *msg, uint64_t missed);
    //  A batch of received messages ends: write what it queued.
    void (*received)(void *arg);
    //  A presence body from another sidecar (opened, channel checked).
    //  Returns 0, or -1 when it does not parse (counted).
    int (*presence)(void *arg, const uint8_t *body, size_t len);
    //  Health changed.
    void (*health)(void *arg, const mesh_health_t *health);
    //  A peer's link came up (it should learn our presence) or went down.
    void (*peer_up)(void *arg, const uint8_t node[16]);
    void (*peer_down)(void *arg, const uint8_t node[16]);
    //  Every live peer holds the subscriptions made before marker upto
    //  (UINT64_MAX: there is no live peer).
    void (*confirmed)(void *arg, uint64_t upto);
    //  A peer's queue is full: stop reading the apps (on) until told
    //  (off). Optional.
    void (*blocked)(void *arg, bool on);
    //  missed messages of msg's stream were lost before it for reason (a
    //  wire GAP reason other than 0: 3, the origin is gone); io->message
    //  (msg, 0) follows. Optional.
    void (*lost)(void *arg, const msg_t *msg, uint64_t missed, int reason);
} mesh_io_t;

//  Start the mesh: bind or connect the sockets, join the loop. ring is
//  taken (destroyed with the mesh, or on failure). Returns NULL with err
//  filled.
mesh_t *mesh_new(loop_t *loop, const config_t *cfg, keyring_t **ring_p,
                 const uint8_t node_id[16], stats_t *stats, const mesh_io_t *io,
                 char *err, size_t errlen);
void mesh_destroy(mesh_t **self_p);

//  Relay a local publish to the other sidecars: it joins this loop turn's
//  batch for its routing key (msg is copied), sent when the turn ends.
void mesh_publish(mesh_t *self, const msg_t *msg);

//  Receive (on) or stop receiving (off) a topic from the other sidecars
//  (lazy interest: while it has a local subscriber).
void mesh_interest(mesh_t *self, const char *ns, size_t ns_len,
                   const char *topic, size_t topic_len, bool on);

//  A subscription was just made: returns false when every live peer holds
//  it already, else true with *marker set to what io->confirmed must reach.
bool mesh_sub_wait(mesh_t *self, uint64_t *marker);

//  Rotate the cluster keys (SIGHUP): ring's keys replace ours in place
//  (gossip, which borrows our ring, follows). ring is taken. The caller
//  withdraws interest before and renews it after, as routing keys change.
void mesh_rekey(mesh_t *self, keyring_t **ring_p);

//  Send a presence body to every other sidecar.
void mesh_send_presence(mesh_t *self, const uint8_t *body, size_t len);

//  Connect to / disconnect from a peer's data endpoint at run time. spec
//  is ENDPOINT or ENDPOINT@Z85KEY; key (32 bytes, or NULL) is the peer's
//  CurveZMQ public key when spec has none. Returns 0, or -1 with errno
//  (EINVAL: bad endpoint or key, ENOKEY: CurveZMQ on and no key, EEXIST,
//  ENOENT).
int mesh_peer_add(mesh_t *self, const char *spec, const uint8_t *key);
int mesh_peer_remove(mesh_t *self, const char *endpoint);

//  Membership says node changed (state as swim_state_t: 1 alive, 2
//  suspect, 3 dead, 4 left, 0 forgotten): a dead or left one is down at
//  once (health, confirmations). name and endpoint, from its gossip record
//  (NULL or "" if unknown), name the peer in `peers` before its first beat.
void mesh_member_changed(mesh_t *self, const uint8_t node[16], int state,
                         const char *name, const char *endpoint);

//  CurveZMQ of the links (borrowed), or NULL when off.
typedef struct curve_t curve_t;
curve_t *mesh_curve(mesh_t *self);

//  The cluster keys (borrowed, the mesh's), for gossip to seal with.
const keyring_t *mesh_keyring(const mesh_t *self);

//  Peers heard lately (live), and members alive for SWIM (without gossip:
//  peers heard before) that we do not hear (down).
void mesh_peer_counts(mesh_t *self, unsigned *live, unsigned *down);

//  Our messages the peers say were lost on the way to them (sequence gaps
//  they saw, reported in their beats): the publish-side drops.
uint64_t mesh_lost_out(mesh_t *self);

//  The peer table: entries now, its cap, and the newcomers not kept
//  because every entry was a live peer (a live member is never evicted).
void mesh_peer_table(mesh_t *self, size_t *entries, size_t *cap,
                     uint64_t *overflows);

//  Whether the mesh is holding the apps back now (a peer's queue full).
bool mesh_blocked(const mesh_t *self);

//  "mesh" or "proxy".
const char *mesh_mode(const mesh_t *self);

//  For roomcastctl: one row per peer, key the node id (hex), value
//  "name=.. endpoint=.. state=live|down|silent heard_us=.. last_ms=..
//  received=.. missed=.." (silent: known, neither heard nor expected;
//  last_ms "-" when never heard; missed: its messages lost on the way, the
//  per-peer drops), then one "link" row per endpoint our SUB connects to.
typedef void(mesh_row_fn)(void *arg, const char *key, const char *value);
void mesh_peer_rows(mesh_t *self, mesh_row_fn *fn, void *arg);

//  For metrics: each peer of the table but tombstones (dead and left
//  members), as mesh_peer_rows shows them. Strings and node are borrowed
//  for the call.
typedef struct {
    const uint8_t *node; // 16 bytes
    const char *name;    //
    const char *state;   // "live", "down" or "silent"
    bool hears_us;       //
    uint64_t last_ms;    // since heard, UINT64_MAX if never
    uint64_t received;   // its envelopes that reached us
    uint64_t missed;     // its messages lost on the way to us
    uint64_t lost_to;    // ours it says were lost on the way to it
} mesh_peer_t;
typedef void(mesh_peer_fn)(void *arg, const mesh_peer_t *peer);
void mesh_peer_each(mesh_t *self, mesh_peer_fn *fn, void *arg);

#endif
