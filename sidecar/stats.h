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
    uint64_t clients_accepted;   // connections accepted
    uint64_t clients_refused;    // refused (limit, shutdown)
    uint64_t publishes;          // PUB frames accepted
    uint64_t deliveries;         // MSG frames queued to a client
    uint64_t dropped_slow;       // MSG not queued: client over budget
    uint64_t closed_slow;        // clients closed as slow consumers
    uint64_t closed_proto;       // clients closed for protocol errors
    uint64_t errors_sent;        // ERR frames sent
    uint64_t bad_frames;         // frames that did not decode or validate
    uint64_t bytes_in;           // from clients
    uint64_t bytes_out;          // to clients
    uint64_t subscribes;         // SUB that joined a topic
    uint64_t unsubscribes;       // UNSUB that left a topic
    uint64_t queries;            // QUERY answered
    uint64_t fanouts;            // messages fanned out (local or mesh)
    uint64_t fanout_us_sum;      // total fanout time
    uint64_t fanout_hist[STATS_FANOUT_BUCKETS]; // by duration (not cumulative)
} stats_t;

//  Count one fanout that took us microseconds.
void stats_fanout_observe(stats_t *self, uint64_t us);

#endif
