/*  gossip: roomcastd's membership, swim.h on a sealed UDP socket.

    Binds --gossip HOST:PORT, seals every SWIM packet with the cluster key
    (XChaCha20-Poly1305, associated data "roomcast/gossip/v1" || channel;
    a packet that does not open is dropped and counted), keeps the SWIM
    timer armed on the loop, joins the --join seeds (HOST:PORT, or
    dns:NAME:PORT for every A/AAAA record, resolved without blocking the
    loop and again every few seconds while alone). It drives nothing
    itself: every change of a member goes to io->member, and the
    coordinator decides what follows (links opened and closed, keys
    admitted, apps told).

    THREAD SAFETY: one thread, the loop's (getaddrinfo_a's helper thread
    only resolves names and touches nothing of ours).
*/
#ifndef RCD_GOSSIP_H
#define RCD_GOSSIP_H

#include "keyring.h"
#include "loop.h"
#include "stats.h"
#include "swim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gossip_t gossip_t;

//  What membership needs to know of its sidecar (strings borrowed; they
//  must outlive the gossip_t).
typedef struct {
    const char *bind;         // --gossip HOST:PORT (":PORT": every interface)
    const char *const *joins; // --join seeds: HOST:PORT or dns:NAME:PORT
    size_t njoins;            //
    const char *channel;      // sealed into every packet's associated data
    const char *name;         // announced
    const char *zone;         // announced
    const char *endpoint;     // our data endpoint (--advertise or --bind)
    const uint8_t *pubkey;    // our CurveZMQ public key (32 bytes), or NULL
    uint32_t probe_interval_ms, probe_timeout_ms, suspicion_mult,
        indirect_checks, pushpull_interval_ms,
        dead_reap_ms; // 0: swim's default
} gossip_config_t;

//  How membership reports. member runs for every change of a member's
//  state or record (m is borrowed for the call; old_state as swim_state_t).
typedef struct {
    void *arg;
    void (*member)(void *arg, const swim_member_t *m, int old_state);
} gossip_io_t;

//  Start membership. cfg's strings, ring and stats are borrowed and must
//  outlive it. Returns NULL with err filled (bad address, bind failure).
gossip_t *gossip_new(loop_t *loop, const gossip_config_t *cfg,
                     const keyring_t *ring, const gossip_io_t *io,
                     const uint8_t node_id[16], stats_t *stats, char *err,
                     size_t errlen);
void gossip_destroy(gossip_t **self_p);

//  Announce that we leave (SIGTERM): peers mark us left at once.
void gossip_leave(gossip_t *self);

//  Whether a member other than m, alive or suspect, uses m's data endpoint
//  (or, with by_key, m's CurveZMQ key): a sidecar restarted on the same
//  address is a new member, and its old incarnation's death must not cut
//  the new one's link.
bool gossip_other_live(gossip_t *self, const swim_member_t *m, bool by_key);

//  One row per known member (self included): key the node id (hex), value
//  "name=.. state=.. incarnation=.. endpoint=.. gossip=.. zone=..".
typedef void(gossip_row_fn)(void *arg, const char *key, const char *value);
void gossip_member_rows(gossip_t *self, gossip_row_fn *fn, void *arg);

//  Members alive, self included.
size_t gossip_alive(gossip_t *self);

//  Members by state, self included: counts[SWIM_ALIVE], [SWIM_SUSPECT],
//  [SWIM_DEAD], [SWIM_LEFT] (dead and left until their tombstone period
//  ends); counts[0] unused (0).
void gossip_counts(gossip_t *self, size_t counts[5]);

#endif
