/*  server: the app side of roomcastd. Listens on the Unix socket, owns the
    client connections, reads and answers their frames (dispatch by type),
    and queues their output within a byte budget. Local publishes go to
    fanout_deliver, the path mesh messages take too.

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_SERVER_H
#define RCD_SERVER_H

#include "config.h"
#include "fanout.h"
#include "loop.h"
#include "registry.h"
#include "stats.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct server_t server_t;

//  Health as apps and roomcastctl see it.
typedef struct {
    bool readable;       // hearing from the mesh (true when alone)
    bool writable;       // can publish to the mesh (true when alone)
    unsigned live_peers; //
    const char *detail;  // e.g. "cluster of one"
} server_health_t;

//  Create the server; nothing listens until server_listen. cfg, loop and
//  stats are borrowed and must outlive it. Returns NULL on ENOMEM.
server_t *server_new(loop_t *loop, const config_t *cfg, stats_t *stats,
                     const uint8_t node_id[16]);
void server_destroy(server_t **self_p);

//  Bind the socket: a stale socket file is replaced, one a live sidecar
//  answers on is refused. Returns 0, or -1 with err filled.
int server_listen(server_t *self, char *err, size_t errlen);

//  Stop accepting, tell every client, flush their queues, then stop the
//  loop when all are flushed or after cfg->shutdown_timeout_ms.
void server_shutdown(server_t *self);

//  Write what connections have queued, now rather than at the end of the
//  loop's turn (the mesh calls it after a batch of deliveries, so they go
//  out in the turn that received them).
void server_flush(server_t *self);

//  Registry and fanout, for the mesh to plug into.
registry_t *server_registry(server_t *self);
fanout_t *server_fanout(server_t *self);

//  The mesh relaying this server's publishes, or NULL (local only).
//  Borrowed.
typedef struct mesh_t mesh_t;
void server_set_mesh(server_t *self, mesh_t *mesh);
mesh_t *server_mesh(server_t *self);

//  Membership (gossip), or NULL. Borrowed.
typedef struct gossip_t gossip_t;
void server_set_gossip(server_t *self, gossip_t *gossip);
gossip_t *server_gossip(server_t *self);

//  Presence of this sidecar's apps and of the cluster's. Owned.
typedef struct presence_t presence_t;
presence_t *server_presence(server_t *self);

//  Tell the apps that asked (WIRE_HF_MEMBERS) that a member changed.
void server_notify_member(server_t *self, const uint8_t node[16],
                          const char *name, int state, const char *endpoint);

//  Tell every client about a health change.
void server_set_health(server_t *self, const server_health_t *health);

//  Connected clients now.
size_t server_clients(const server_t *self);

#endif
