/*  gossip: roomcastd's membership, swim.h on a sealed UDP socket.

    Binds --gossip HOST:PORT, seals every SWIM packet with the cluster key
    (XChaCha20-Poly1305, associated data "roomcast/gossip/v1" || channel;
    a packet that does not open is dropped and counted), keeps the SWIM
    timer armed on the loop, joins the --join seeds (HOST:PORT, or
    dns:NAME:PORT for every A/AAAA record, resolved without blocking the
    loop and again every few seconds while alone) and lets membership drive
    the mesh: a member that comes alive gets a SUB link to its data
    endpoint, a dead or left member's link is closed.

    THREAD SAFETY: one thread, the loop's (getaddrinfo_a's helper thread
    only resolves names and touches nothing of ours).
*/
#ifndef RCD_GOSSIP_H
#define RCD_GOSSIP_H

#include "config.h"
#include "keyring.h"
#include "loop.h"
#include "mesh.h"
#include "stats.h"

#include <stddef.h>
#include <stdint.h>

typedef struct gossip_t gossip_t;

//  Start membership. ring is borrowed (the mesh's) and must outlive it.
//  Returns NULL with err filled (bad address, bind failure).
gossip_t *gossip_new(loop_t *loop, const config_t *cfg, const keyring_t *ring,
                     mesh_t *mesh, const uint8_t node_id[16], stats_t *stats,
                     char *err, size_t errlen);
void gossip_destroy(gossip_t **self_p);

//  Announce that we leave (SIGTERM): peers mark us left at once.
void gossip_leave(gossip_t *self);

//  One row per known member (self included): key the node id (hex), value
//  "name=.. state=.. incarnation=.. endpoint=.. gossip=.. zone=..".
typedef void(gossip_row_fn)(void *arg, const char *key, const char *value);
void gossip_member_rows(gossip_t *self, gossip_row_fn *fn, void *arg);

//  Members alive, self included.
size_t gossip_alive(gossip_t *self);

#endif
