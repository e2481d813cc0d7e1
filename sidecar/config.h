/*  config: every roomcastd setting, from one table.

    A setting comes from, highest first: a command-line flag (--name VALUE
    or --name=VALUE), the environment (ROOMCAST_NAME, dashes as
    underscores), a config file (--config FILE or ROOMCAST_CONFIG: "name =
    value" lines, # comments), the default. The same table prints --help,
    so the help, the README table and the parser cannot disagree.

    THREAD SAFETY: used once, at start.
*/
#ifndef RCD_CONFIG_H
#define RCD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

//  A list setting: repeated flags append; the environment and the file
//  give a comma-separated list; a higher layer replaces a lower one.
typedef struct {
    char **items;
    size_t count;
} config_list_t;

typedef struct {
    char *channel;             // cluster scope; required
    char *socket_path;         // app socket
    char *socket_group;        // group of the app socket ("" = unchanged)
    config_list_t allow_uids;  // apps allowed by uid (user names or numbers)
    config_list_t allow_gids;  // apps allowed by gid (group names or numbers)
    char *name;                // node name (default: host name)
    size_t max_payload;        // bytes per message
    size_t queue_budget;       // bytes queued per client before drops
    uint64_t slow_grace_ms;    // over budget this long: closed
    uint64_t frame_timeout_ms; // an incomplete frame this old: closed
    size_t partial_budget;     // bytes in incomplete frames, all apps
    size_t max_clients;        // connected apps at once
    size_t fanout_slice;       // members per fanout step
    uint64_t shutdown_timeout_ms; // flush deadline on SIGTERM
    char *log_level;              // error, warn, info, debug
    char *log_format;             // logfmt, json
    char *http;                   // metrics and probes HOST:PORT ("" = off)
    char *bind;                   // data socket endpoint ("" = none)
    char *advertise;              // endpoint peers reach us at ("" = bind)
    config_list_t peers;          // static peers' data endpoints
    config_list_t proxies;        // proxies' endpoints (proxy mode)
    config_list_t key_files;      // cluster key files: current first
    char *curve_cert;             // our CurveZMQ secret certificate ("" = none)
    char *curve_allow;            // directory of admitted public certificates
    char *curve;                  // CurveZMQ: "auto", "static" or "off"
    uint64_t heartbeat_ms;        // mesh heartbeat period
    char *gossip;                 // gossip UDP bind ("" = no gossip)
    config_list_t joins;          // seeds: HOST:PORT or dns:NAME:PORT
    char *zone;                   // our zone, gossiped
    uint64_t probe_interval_ms;   // SWIM protocol period
    uint64_t probe_timeout_ms;    // SWIM direct ack wait
    size_t suspicion_mult;        // SWIM suspicion timeout factor
    size_t indirect_checks;       // SWIM ping-req fan-out
    uint64_t pushpull_interval_ms; // SWIM anti-entropy period
    uint64_t tombstone_ms;         // dead and left members remembered
    size_t mesh_hwm;               // messages queued per peer link
    size_t envelope_format;        // 1: one message per envelope, 2: batches
    char *memory_limit;            // "auto", "off" or BYTES (memcap.h)
    char *config_file;             // where settings were read from, or NULL

    //  Backpressure and repair between sidecars:
    uint64_t peer_stall_timeout_ms; // a full peer link holds apps this long
    size_t repair_buffer;           // bytes of sent envelopes kept (0: off)
    uint64_t repair_age_ms;         // how long they are kept
    uint64_t repair_timeout_ms;     // a repair request is given up after
    size_t test_drop_every;         // TEST HOOK: drop every Nth envelope in
} config_t;

//  What an address setting holds; config_load checks every one at start.
typedef enum {
    CONFIG_ADDR_NONE = 0, // not an address
    CONFIG_ADDR_BIND,     // tcp://HOST:PORT; HOST may be * (every interface)
    CONFIG_ADDR_CONNECT,  // tcp://HOST:PORT, HOST not * (--advertise)
    CONFIG_ADDR_PEER,     // tcp://HOST:PORT or tcp://HOST:PORT@KEY (--peer)
    CONFIG_ADDR_PROXY,    // like PEER, PORT at most 65534 (PORT+1: backend)
    CONFIG_ADDR_FRONTEND, // like BIND, PORT at most 65534 (proxy --frontend)
    CONFIG_ADDR_HTTP,     // HOST:PORT; HOST an IP, localhost or empty (all
                          // interfaces); PORT 0 picks a free port
    CONFIG_ADDR_GOSSIP,   // HOST:PORT; HOST an IP address or empty
    CONFIG_ADDR_SEED      // HOST:PORT or dns:NAME:PORT (--join)
} config_addr_t;

//  Whether value is a well-formed address of that kind: "tcp://" for the
//  ZeroMQ endpoints; a non-empty HOST (an IPv4 address, an IPv6 address in
//  brackets, or a host name; empty only where it means every interface);
//  PORT decimal 1-65535 (0 only for HTTP); KEY 40 Z85 characters that
//  decode (PEER and PROXY only). Names are not resolved. Returns 0, or -1
//  with why filled with one line (the reason, then "expected ..."), which
//  does not name the option.
int config_check_addr(config_addr_t kind, const char *value, char *why,
                      size_t whylen) __attribute__((nonnull(2, 3)));

//  Outcome of config_load.
#define CONFIG_OK    0
#define CONFIG_EXIT  1  // --help or --version printed: exit 0
#define CONFIG_ERROR -1 // err holds a message for the user: exit 2

//  Fill cfg from defaults, file, environment and argv (argv[0] skipped).
//  Returns CONFIG_OK, CONFIG_EXIT, or CONFIG_ERROR with err filled.
int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen);

//  Parse one "name = value" text (a config file's content) into cfg.
//  Returns 0, or -1 with err filled. Exposed for the fuzzer.
int config_parse_text(config_t *cfg, const char *text, const char *origin,
                      char *err, size_t errlen);

//  "1MiB", "512k", "65536" (suffixes k, m, g with or without "iB"/"B",
//  all powers of 1024) -> bytes. Returns 0, or -1 when it is not one.
int config_parse_size(const char *text, uint64_t *out)
    __attribute__((nonnull, warn_unused_result));

//  Set defaults (config_load does it first).
void config_defaults(config_t *cfg);

//  What --curve, --curve-cert, --gossip, --peer and --proxy make of the
//  links (see --curve in --help).
typedef enum {
    CONFIG_CURVE_OFF = 0,  // plaintext links
    CONFIG_CURVE_CERT,     // our key pair from --curve-cert
    CONFIG_CURVE_EPHEMERAL // a key pair made at start, announced by gossip
} config_curve_t;
config_curve_t config_curve(const config_t *cfg);

//  Print the --help text.
void config_usage(FILE *out);

void config_free(config_t *cfg);

//  `roomcastd proxy`: its settings, from the same layers (flag,
//  ROOMCAST_NAME, --config file, default) and the same code.
typedef struct {
    char *frontend;     // XSUB bind, tcp://HOST:PORT; required
    char *backend;      // XPUB bind ("" = the frontend's PORT + 1)
    size_t hwm;         // messages queued per link, each way
    char *http;         // metrics and probes HOST:PORT ("" = off)
    size_t ready_peers; // sidecars on each socket before /readyz says ready
    char *curve_cert;   // our CurveZMQ secret certificate ("" = none)
    char *curve_allow;  // directory of admitted public certificates
    char *runtime_dir;  // where the admitted keys are kept
    char *log_level;    // error, warn, info, debug
    char *log_format;   // logfmt, json
    char *config_file;  // where settings were read from, or NULL
} config_proxy_t;

//  Fill cfg for `roomcastd proxy ARGS` (argv[0] is "proxy", skipped).
//  Returns CONFIG_OK, CONFIG_EXIT (--help, --version) or CONFIG_ERROR with
//  err filled. Call config_proxy_free after, whatever it returned.
int config_proxy_load(config_proxy_t *cfg, int argc, char **argv, char *err,
                      size_t errlen);
void config_proxy_usage(FILE *out);
void config_proxy_free(config_proxy_t *cfg);

#endif
