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
    uint64_t mem_limit;           // --memory-limit in bytes (0: no cap)
    int mem_level;                // memcap_level_t
    int mem_timer;                // samples resident memory (0: none)
    uint64_t mem_bytes_in;        // stats->bytes_in at the last sample
    uint64_t mem_trimmed;         // loop ms of the last malloc_trim
    metrics_peers_t sample_peers; // per-peer series of the last sample
};

//  QUERY from an app (roomcastctl): node_query.c.
void node_query(node_t *self, conn_t *conn, const wire_frame_t *f);

//  The memory cap (node_memory.c; memcap.h has the order it sheds in).
//  Start sampling when --memory-limit (or the cgroup) sets a cap. Returns
//  0, or -1 with err filled.
int node_memory_start(node_t *self, char *err, size_t errlen);
void node_memory_stop(node_t *self);
//  What an app asks that the cap may refuse.
typedef enum { NODE_MEM_SUB, NODE_MEM_PSET, NODE_MEM_PUB } node_mem_ask_t;
//  Whether the cap refuses it now; if so it is counted and the app got ERR
//  LIMIT for req (for a PUB, only while its queue holds less than
//  --max-payload: a flood that is not read gets no ERR per frame).
//  Once per loop turn: samples again when apps sent much since the last.
void node_memory_idle(node_t *self);
bool node_memory_refuses(node_t *self, conn_t *conn, uint64_t req,
                         node_mem_ask_t ask);
//  CurveZMQ keys of the links: "ephemeral", "static" or "off" (node.c).
const char *node_curve(node_t *self);

#endif
