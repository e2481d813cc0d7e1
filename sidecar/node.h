/*  node: the coordinator of roomcastd (in the manner of zyre_node.c).

    It owns the components (server and session for the apps, registry and
    fanout for local delivery, mesh for the other sidecars, gossip for
    membership, presence, ops for HTTP) and holds the policies that join
    them; the components report to it through their io structs and never
    include each other. Here, each readable top to bottom:

      publish path   s_on_pub: local fanout first, then the mesh
      receive path   s_on_mesh_message: GAP notice if something was
                     missed, then the same local fanout
      membership     s_on_member: links opened and closed, keys admitted,
                     peers marked gone, apps that asked told
      health         s_set_health: what apps, /readyz and metrics see
      confirmations  SUBACK "everywhere" once every live peer holds a SUB

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_NODE_H
#define RCD_NODE_H

#include "config.h"
#include "loop.h"
#include "stats.h"

#include <stddef.h>

typedef struct node_t node_t;

//  Start the sidecar on loop: listen on the app socket, then the mesh,
//  membership and HTTP as cfg asks. cfg, loop and stats are borrowed and
//  must outlive it. Returns NULL with err filled when a setting cannot be
//  served (the caller exits 2) or on ENOMEM.
node_t *node_new(loop_t *loop, const config_t *cfg, stats_t *stats, char *err,
                 size_t errlen);
void node_destroy(node_t **self_p);

//  SIGTERM: announce leave, refuse new clients, flush, stop the loop.
void node_stop(node_t *self);

//  SIGHUP: apply what can change without a restart from fresh settings
//  (read again from flags, environment and file): the log level, and the
//  cluster key files (rotation; subscriptions move to the new routing
//  keys). Logs what it did. Returns 0, or -1 with err filled (the old
//  settings stay in force).
int node_reload(node_t *self, const config_t *fresh, char *err, size_t errlen);

//  Our node id as 32 hex digits (borrowed).
const char *node_id(const node_t *self);

#endif
