/*  node_impl: the coordinator's own state, shared by node.c (policies and
    paths) and node_query.c (the roomcastctl query backend). Nothing else
    includes it.
*/
#ifndef RCD_NODE_IMPL_H
#define RCD_NODE_IMPL_H

#include "config.h"
#include "conn.h"
#include "fanout.h"
#include "gossip.h"
#include "loop.h"
#include "mesh.h"
#include "node.h"
#include "ops.h"
#include "presence.h"
#include "registry.h"
#include "server.h"
#include "session.h"
#include "stats.h"

#include <stdbool.h>
#include <stdint.h>

//  A SUB waiting for every live peer to hold it.
typedef struct waiter_t {
    conn_t *conn; // held
    uint64_t req;
    char ns[256];
    char topic[256];
    uint64_t marker; // confirmed when io->confirmed reaches it
    uint64_t since;
    struct waiter_t *next;
} waiter_t;

//  Health as apps, /readyz and metrics see it.
typedef struct {
    bool readable;       // a live peer is heard (true when alone)
    bool writable;       // a live peer hears us (true when alone)
    unsigned live_peers; //
    char detail[128];    // e.g. "cluster of one"
} health_t;

struct node_t {
    loop_t *loop;
    const config_t *cfg;
    stats_t *stats;
    uint8_t id[16];
    char id_hex[33];
    registry_t *registry; // local subscriptions
    fanout_t *fanout;     // the one way to local apps
    session_t *session;   // frames from apps
    server_t *server;     // app connections
    presence_t *presence; // who is in a room, cluster-wide
    mesh_t *mesh;         // NULL: local only
    gossip_t *gossip;     // NULL: no membership
    ops_t *ops;           // NULL: no --http
    health_t health;
    waiter_t *waiters;
    int timer; // housekeeping: waiters, presence anti-entropy
    uint64_t ticks;
};

//  QUERY from an app (roomcastctl): node_query.c.
void node_query(node_t *self, conn_t *conn, const wire_frame_t *f);

//  CurveZMQ keys of the links: "ephemeral", "static" or "off" (node.c).
const char *node_curve(node_t *self);

#endif
