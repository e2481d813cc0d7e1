/*  stats: the sidecar's counters, one plain struct that every module
    increments and the QUERY/metrics code reads. Monotonic unless noted. */
#ifndef RCD_STATS_H
#define RCD_STATS_H

#include <stddef.h>
#include <stdint.h>

//  Fanout duration buckets, upper bounds in microseconds (last is +Inf).
#define STATS_FANOUT_BUCKETS 9
extern const uint64_t stats_fanout_bounds_us[STATS_FANOUT_BUCKETS];

typedef struct {
    uint64_t clients_accepted; // connections accepted
    uint64_t clients_refused;  // refused (limit, shutdown)
    uint64_t publishes;        // PUB frames accepted
    uint64_t deliveries;       // MSG frames queued to a client
    uint64_t dropped_slow;     // MSG not queued: client over budget
    uint64_t closed_slow;      // clients closed as slow consumers
    uint64_t closed_proto;     // clients closed for protocol errors
    uint64_t errors_sent;      // ERR frames sent
    uint64_t bad_frames;       // frames that did not decode or validate
    uint64_t bytes_in;         // from clients
    uint64_t bytes_out;        // to clients
    uint64_t subscribes;       // SUB that joined a topic
    uint64_t unsubscribes;     // UNSUB that left a topic
    uint64_t queries;          // QUERY answered
    uint64_t presence_refused; // PSET refused (budget, key taken)
    //  Frames refused, by kind (each also counts in bad_frames):
    uint64_t refused_order;         // before HELLO, HELLO twice
    uint64_t refused_name;          // bad namespace, topic or presence key
    uint64_t refused_size;          // payload, meta or frame over its limit
    uint64_t refused_type;          // unknown type, or one the sidecar sends
    uint64_t refused_flags;         // unknown PUB flag bits
    uint64_t refused_query;         // unknown QUERY, or a bad argument
    uint64_t refused_version;       // HELLO of a version we do not speak
    uint64_t refused_protocol;      // bytes that are not the protocol
    uint64_t closed_partial;        // closed: a frame incomplete too long
    uint64_t closed_partial_budget; // closed: --partial-budget full
    uint64_t partial_bytes;         // gauge: held in incomplete frames
    uint64_t fanouts;               // messages fanned out (local or mesh)
    uint64_t env_sent;              // messages published to the mesh
    uint64_t env_batches;           // envelopes (batches) they went in
    uint64_t env_received;          // envelopes opened and delivered
    uint64_t env_undecryptable;     // did not open (other key, tampered)
    uint64_t env_malformed;         // opened but did not parse
    uint64_t env_refused_format;    // a format we do not speak (newer)
    uint64_t env_duplicates;        // dropped: seen already (two proxies)
    uint64_t env_own;               // dropped: our own, come back
    uint64_t env_stale;             // dropped: older than one delivered
    uint64_t gaps;                  // streams that skipped sequences
    uint64_t missed;                // messages those gaps skipped
    uint64_t control_received;      // heartbeats and acks
    uint64_t control_bad;           // control frames that did not open
    uint64_t control_replayed;      // beats and acks seen already (a
                                    // second proxy's copy, or late)
    uint64_t mesh_send_failed;      // zmq_send refused (HWM, no memory)
    uint64_t gossip_in;             // gossip datagrams received
    uint64_t gossip_out;            // gossip datagrams sent
    uint64_t gossip_undecryptable;  // did not open (other key, forged)
    uint64_t gossip_bad;            // opened but not SWIM
    uint64_t curve_refused;         // TCP handshakes refused (unknown key)
    uint64_t mem_refused_clients;   // --memory-limit: apps refused
    uint64_t mem_refused_subs;      // --memory-limit: SUB refused
    uint64_t mem_refused_presence;  // --memory-limit: PSET refused
    uint64_t mem_refused_pubs;      // --memory-limit: PUB refused
    uint64_t mem_shed_queues;       // --memory-limit: app queues dropped
    uint64_t dropped_memory;        // --memory-limit: MSG dropped from them

    //  Backpressure and repair between sidecars (mesh.c):
    uint64_t mesh_blocked;           // times a full peer link held apps
    uint64_t mesh_blocked_ms;        // ms apps were held in all
    uint64_t mesh_peers_cut;         // peers cut off past the stall timeout
    uint64_t repair_requests_sent;   // repair requests sent (retries too)
    uint64_t repair_requests_served; // peers' requests we answered
    uint64_t repair_resent;          // envelopes we re-sent for them
    uint64_t repaired;               // messages we got through a repair
    uint64_t repair_unrepaired;      // messages given up: told in GAPs
    uint64_t repair_timeouts;        // our requests given up unanswered
    uint64_t relinks;                // peers' links back: re-sent to them
    uint64_t relink_resent;          // envelopes re-sent for those
    uint64_t test_dropped;           // TEST HOOK --test-drop-every

    uint64_t fanout_us_sum;                     // total fanout time
    uint64_t fanout_hist[STATS_FANOUT_BUCKETS]; // by duration (not cumulative)
} stats_t;

//  Count one fanout that took us microseconds.
void stats_fanout_observe(stats_t *self, uint64_t us);

//  Count a refused frame once, in its kind and in the total.
#define STATS_REFUSED(st, kind) ((st)->refused_##kind++, (st)->bad_frames++)

#endif
