/*  mesh_impl.h - the insides of the mesh module, shared by its parts:
      mesh.c       sockets and links, the control plane's io, the loop's
                   hooks and timer, setup, the queries;
      mesh_send.c  sending: batches and the seal, backpressure (the
                   backlog of what a full link refused, the cut of a
                   stalled peer), control seals;
      mesh_recv.c  receiving: envelopes and control opened, dedup and
                   sequence checks, repair (asking and answering).
    Only sidecar/mesh*.c include it; mesh.h is the module's API.
*/
#ifndef RC_MESH_IMPL_H_INCLUDED
#define RC_MESH_IMPL_H_INCLUDED

#include "mesh.h"
#include "curve.h"
#include "dedup.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "meshctl.h"
#include "repair.h"
#include "rkeys.h"
#include "sentring.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <czmq.h>
#include <libgen.h>
#include <zmq.h>

#define PREFIX_LEN       8
#define DRAIN_BATCH      2048 // messages per socket per loop turn
#define BATCH_SLOTS      64   // batches: a hash table by routing key
#define BATCH_KEYS       48   // routing keys batched at once in a loop turn
#define BATCH_SPANS      16   // publishing apps in one batch (more: it goes)
#define MARKER_LEN       (PREFIX_LEN + 16 + 8)
#define RETRY_MS         5          // a full link is tried again this often
#define SERVE_MAX        8192       // envelopes re-sent for one repair request
#define RELINK_MARGIN_MS 1000       // re-sent from before a link ended
#define RELINK_MAX_BYTES (8u << 20) // re-sent per second for links back
#define CUT_MAX          8 // stalled peers remembered from the last cut

static const uint8_t HB[PREFIX_LEN] = {0xff, 0xfd, 'R', 'C', 'h', 'b', 0, 1};
static const uint8_t AK[PREFIX_LEN] = {0xff, 0xfe, 'R', 'C', 'a', 'k', 0, 1};
static const uint8_t MK[PREFIX_LEN] = {0xff, 0xff, 'R', 'C', 'm', 'k', 0, 1};
static const uint8_t PR[PREFIX_LEN] = {0xff, 0xfc, 'R', 'C', 'p', 'r', 0, 1};
static const uint8_t RQ[PREFIX_LEN] = {0xff, 0xfb, 'R', 'C', 'r', 'q', 0, 1};
static const uint8_t RA[PREFIX_LEN] = {0xff, 0xfa, 'R', 'C', 'r', 'a', 0, 1};

//  A message a full link refused, waiting its turn (frame 2 owned).
typedef struct pending_t {
    struct pending_t *next;
    uint8_t f1[PREFIX_LEN + 16]; // a routing key or a control prefix
    size_t f1_len;
    uint8_t *f2;
    size_t f2_len;
} pending_t;

//  One connection of our SUB: where, and the server key it was made with
//  (a member restarted on the same address may come back with a new key).
typedef struct {
    char *endpoint;
    uint8_t key[CURVE_KEY_SIZE]; // all zero without CurveZMQ
} link_t;

struct mesh_t {
    loop_t *loop;
    mesh_io_t io;
    const config_t *cfg;
    keyring_t *ring;
    uint8_t node[16];
    stats_t *stats;
    void *zctx;
    void *xpub; // we publish here
    void *sub;  // we receive here
    bool proxy_mode;
    bool alone;         // no peer and no proxy configured
    char endpoint[128]; // what peers reach us at
    uint64_t event_id;
    meshctl_t *ctl;   // peers, beats, markers, acks, health
    size_t table_cap; // meshctl's max_peers
    struct {
        uint8_t origin[16];
        uint64_t received, missed;
    } run;         // envelopes from one origin not yet told to meshctl
    link_t *links; // endpoints our SUB is connected to
    size_t nlinks;
    dedup_t *dedup;
    seqtrack_t *seqtrack;
    int timer;
    curve_t *curve;               // CurveZMQ on every link, or NULL
    curve_monitor_t *monitor;     // refused handshakes on our XPUB
    curve_monitor_t *monitor_sub; // ... and on our SUB (we are refused)
    rkeys_t *rkeys;               // routing keys per (ns, topic)
    bool sent;                    // sent on the XPUB since the idle turn began
    struct {
        uint8_t rkey[KEYRING_RKEY_SIZE]; // routing key 0 of the batch
        uint64_t turn;                   // in use when self->turn
        envelope_batch_t batch;          // this turn's publishes to it
        char ns[ENVELOPE_NAME_MAX];      // its namespace and topic, and
        char topic[ENVELOPE_NAME_MAX];   // per publishing app the run of
        size_t ns_len, topic_len;        // sequences in it: what the
        struct {                         // repair ring indexes it by
            uint8_t instance[ENVELOPE_ID_SIZE];
            uint64_t lo, hi;
        } spans[BATCH_SPANS];
        size_t nspans;
    } pending[BATCH_SLOTS];          // sealed at the end of the turn
    uint64_t turn;                   // batching turns, from 1
    uint8_t order[BATCH_KEYS];       // slots in use, first used first
    size_t npending;                 // slots in use this turn
    uint8_t refused_logged[256 / 8]; // envelope formats logged already
    uint64_t timer_at;               // when the timer fires
    sentring_t *sentring;            // what we sent lately, for repair
    repair_t *repair;                // gaps waiting for their origin
    pending_t *backlog;              // envelopes a full link refused, in order
    pending_t *backlog_tail;         //
    uint64_t blocked_since;          // ms the apps have been held, 0: not held
    uint8_t cut_ids[CUT_MAX][16];    // the peers the last cut named
    size_t ncut;                     //
    uint64_t cut_at;                 // when
    bool nodrop;                     // ZMQ_XPUB_NODROP as set now
    uint64_t drop_n;                 // TEST HOOK --test-drop-every
    struct {
        uint64_t window_at; // the current second of re-sending began
        size_t bytes;       // re-sent in it
        uint64_t last_at;   // the last re-send, and from when
        uint64_t last_since;
    } relink; // re-sends to peers whose link came back (mesh.c)
};

// --- between the parts ------------------------------------------------------

//  mesh_send.c
//  Send an envelope (frame 2 taken) in order behind what waits; 0 (sent or
//  held back) or -1 (refused, counted).
int mesh_send_env(mesh_t *self, const uint8_t *f1, uint8_t *f2, size_t f2_len);
//  Send a copy of a stored envelope again (repair, a link back), in order;
//  0 (sent or held back) or -1 (not sent).
int mesh_resend(mesh_t *self, const uint8_t *f1, size_t f1_len,
                const uint8_t *f2, size_t f2_len);
//  Seal a control body under the control associated data and send it.
void mesh_send_control(mesh_t *self, const uint8_t *f1, size_t f1_len,
                       const uint8_t *body, size_t len);
//  Open a control frame into out (cap bytes): its length, or -1.
ssize_t mesh_open_control(mesh_t *self, const uint8_t *f1, size_t f1_len,
                          const uint8_t *f2, size_t f2_len, uint8_t *out,
                          size_t cap);
//  The end of a loop turn: this turn's batches go out.
void mesh_batches_flush(mesh_t *self);
//  Send what a full link held back; cut a peer stalled past the timeout.
void mesh_drain_backlog(mesh_t *self, uint64_t now);

//  mesh_recv.c
//  Read our SUB (envelopes, control) and XPUB (subscriptions, markers), a
//  batch at a time: how many messages were read.
int mesh_drain_sub(mesh_t *self);
int mesh_drain_xpub(mesh_t *self);
//  repair_io_t: deliver what a repair filled or gave up; ask an origin.
void mesh_repair_deliver(void *arg, const msg_t *msg, uint64_t missed,
                         int reason);
void mesh_repair_request(void *arg, const uint8_t *origin, uint64_t req,
                         const uint8_t *instance, wire_str_t ns,
                         wire_str_t topic, uint64_t from, uint64_t to);
//  Copy repair.c's counters into the stats.
void mesh_sync_stats(mesh_t *self);

//  mesh.c
//  Set the timer to the next deadline (meshctl, repair, a full link).
void mesh_rearm(mesh_t *self);

#endif
