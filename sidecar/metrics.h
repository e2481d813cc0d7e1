/*  metrics: the sidecar's state in the Prometheus text exposition format
    (version 0.0.4), for GET /metrics, and the /readyz answer.

    It reads a plain struct the caller fills (no dependency on the server,
    registry or mesh), so it can be rendered and tested alone. Families,
    prefix roomcast_ (counters end in _total):

      clients, topics, subscriptions           gauge
      readable, writable                       gauge 0/1 (health bits)
      mesh_peers{state="live"|"down"}          gauge
      info{version,node_id,channel,mode}       gauge, always 1
      curve{keys="ephemeral"|"static"|"none"}  gauge 1/0: CurveZMQ links
      publishes_total, deliveries_total        counter
      dropped_total{reason=}                   counter: slow_consumer,
                           bad_frame, undecryptable, malformed, duplicate,
                           own, stale
      clients_closed_total{reason=}            counter: slow_consumer, protocol
      clients_accepted_total, clients_refused_total, errors_sent_total
      bytes_total{direction="in"|"out"}        counter (app connections)
      envelopes_total{result=}                 counter: sent, received,
                           undecryptable, malformed, duplicate, own, stale
      gaps_total, missed_total                 counter
      control_messages_total{result="ok"|"bad"} counter
      mesh_send_failed_total                   counter
      fanout_duration_seconds                  histogram (stats.fanout_hist)
      build_info{version}                      gauge, always 1
      members{state="alive"|"suspect"|"dead"|"left"}  gauge (gossip; 0
                           without), self included
      peer_up, peer_hears_us{node_id,name}     gauge 0/1, per peer
      peer_last_heard_seconds{node_id,name}    gauge (left out: never heard)
      peer_received_total, peer_missed_total,
      peer_lost_to_total{node_id,name}         counter, per peer
      peer_series_omitted                      gauge: peers past the cap
      app_queue_bytes, app_queue_frames,
      app_queue_largest_bytes, apps_slow       gauge (queues toward apps)
      partial_frame_bytes                      gauge
      presence_entries, presence_bytes         gauge (our apps' entries)
      memory_limit_bytes                       gauge (0: no cap)
      memory_pressure                          gauge 0 ok, 1 refuse, 2 shed,
                                               3 critical (memcap.h)
      memory_shed_total{action=}               counter: refuse_client,
                           refuse_subscribe, refuse_presence,
                           refuse_publish, drop_queue

    and the process families every Prometheus client exports (read from
    /proc at each scrape, left out where /proc cannot be read):

      process_resident_memory_bytes, process_virtual_memory_bytes  gauge
      process_cpu_seconds_total (user + system)                    counter
      process_open_fds, process_max_fds                            gauge
      process_start_time_seconds (since the epoch)                 gauge

    dropped_total counts messages meant for local apps that they never
    got (slow_consumer, memory_limit) and app frames refused (bad_frame);
    what the mesh drops on receipt is counted once, in envelopes_total.

    Per-peer series are bounded: at most METRICS_PEERS_MAX peers, chosen
    worst first (not live, then most messages lost either way, then
    longest silent; ties by node id, so a healthy cluster shows a stable
    set); the rest are counted in peer_series_omitted.

    THREAD SAFETY: pure functions; the caller reads the state on the loop.
*/
#ifndef RCD_METRICS_H
#define RCD_METRICS_H

#include "http.h"
#include "stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#define METRICS_PEERS_MAX 64 // per-peer series at most

//  One peer, for the per-peer series.
typedef struct {
    char node_id[33];  // hex
    char name[65];     //
    const char *state; // "live", "down", "silent" (static)
    bool hears_us;     //
    uint64_t last_ms;  // since heard, UINT64_MAX if never
    uint64_t received; // its envelopes that reached us
    uint64_t missed;   // its messages lost on the way to us
    uint64_t lost_to;  // ours it says were lost on the way to it
} metrics_peer_t;

//  The peers the series show: the worst METRICS_PEERS_MAX of those
//  offered (see above), and how many were offered.
typedef struct {
    metrics_peer_t items[METRICS_PEERS_MAX];
    size_t count; // items used
    size_t total; // offered
} metrics_peers_t;

//  Empty set.
void metrics_peers_reset(metrics_peers_t *set) __attribute__((nonnull));
//  Offer one peer (copied): kept while there is room, else in place of the
//  best kept one when it ranks worse.
void metrics_peers_offer(metrics_peers_t *set, const metrics_peer_t *peer)
    __attribute__((nonnull));

typedef struct {
    const stats_t *stats;  // the counters (borrowed)
    size_t clients;        // apps connected now (server_clients)
    size_t topics;         // topics with a local member (registry_topics)
    size_t subscriptions;  // memberships (registry_memberships)
    bool readable;         // server_health_t.readable
    bool writable;         // server_health_t.writable
    unsigned live_peers;   // peers heard lately
    unsigned peers_down;   // known peers not heard lately
    size_t peer_table;     // entries in the peer table (live, down, tombstones)
    size_t peer_table_cap; // its cap
    uint64_t peer_table_overflows; // newcomers not kept: table full of live
    uint64_t lost_out;   // ours the peers say they missed (publish side)
    const char *mode;    // "mesh", "proxy" or "local"
    const char *curve;   // CurveZMQ keys: "ephemeral", "static" or NULL (off)
    const char *version; // ROOMCAST_VERSION_STRING
    const char *node_id; // 32 hex digits
    const char *channel; // cluster channel
    const char *detail;  // health in words (e.g. "not joined: ..."), or NULL
    size_t members[5];   // gossip members by swim state (1 alive .. 4 left)
    const metrics_peers_t *peers; // per-peer series, or NULL (no mesh)
    size_t queue_bytes;           // queued toward apps, not written yet
    size_t queue_frames;          //
    size_t queue_largest;         // one app's largest queue
    size_t apps_slow;             // apps over their queue budget now
    size_t presence_entries;      // our apps' presence entries
    size_t presence_bytes;        //
    uint64_t memory_limit;        // --memory-limit in bytes (0: none)
    int memory_pressure;          // memcap_level_t
} metrics_input_t;

//  The process as /proc shows it.
typedef struct {
    uint64_t resident_bytes; // rss pages x page size
    uint64_t virtual_bytes;  // vsize
    double cpu_seconds;      // utime + stime
    double start_time;       // seconds since the epoch
    uint64_t open_fds;       // entries of fd/
    uint64_t max_fds;        // "Max open files" soft limit (0: unlimited)
} metrics_process_t;

//  Read the process PID ("self", or a number) from the proc file system
//  mounted at proc ("/proc"; tests give a directory of their own). Returns
//  0, or -1 with errno when a file cannot be read or parsed.
int metrics_process_read(const char *proc, const char *pid,
                         metrics_process_t *out) __attribute__((nonnull));

//  Append every metric to reply's body and set its content type. Strings
//  may hold any byte (label values are escaped); NULL strings render as "".
//  On ENOMEM reply->failed is set (the server then answers 500).
void metrics_render(const metrics_input_t *in, http_reply_t *reply)
    __attribute__((nonnull));

//  Append only the process_* families (roomcastd proxy uses them too).
void metrics_render_process(http_reply_t *reply) __attribute__((nonnull));

//  /readyz: 200 "ready" when both health bits are up, else 503 with one
//  line per bit down ("not readable: no peer heard lately", "not writable:
//  no peer hears us"). Sets reply's status and body; returns the status.
int metrics_readyz(bool readable, bool writable, http_reply_t *reply)
    __attribute__((nonnull));

#endif
