/*  config: see config.h. */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef enum { T_STR, T_SIZE, T_MS, T_COUNT, T_LIST } opt_type_t;

typedef struct {
    const char *name; // flag without dashes; env ROOMCAST_NAME
    opt_type_t type;
    size_t offset;   // into config_t
    const char *def; // default, as text
    const char *arg; // metavar for --help
    const char *help;
    const char *env; // environment name when not ROOMCAST_NAME
} opt_t;

#define OFF(f) offsetof(config_t, f)

static const opt_t s_opts[] = {
    {"channel", T_STR, OFF(channel), NULL, "NAME",
     "Cluster channel (required). Sidecars with different\n"
     "channels never exchange a message, even when pointed\n"
     "at each other.",
     NULL},
    {"socket", T_STR, OFF(socket_path), "/run/roomcast/roomcast.sock", "PATH",
     "Unix socket the apps connect to (mode 0660). A stale\n"
     "socket file is replaced; a socket a live sidecar\n"
     "serves is refused.",
     NULL},
    {"socket-group", T_STR, OFF(socket_group), "", "GROUP",
     "Group owning the app socket (default: unchanged).", NULL},
    {"allow-uid", T_LIST, OFF(allow_uids), "", "USER",
     "Only apps running as USER (name or uid) may connect\n"
     "(repeatable; env and file: comma-separated; with\n"
     "--allow-gid, either may match; default: anyone the\n"
     "socket mode lets in).",
     NULL},
    {"allow-gid", T_LIST, OFF(allow_gids), "", "GROUP",
     "Only apps whose primary group is GROUP (name or gid)\n"
     "may connect (repeatable; env and file: comma-\n"
     "separated).",
     NULL},
    {"name", T_STR, OFF(name), "", "NAME",
     "Node name shown to peers and by roomcastctl\n"
     "(default: the host name).",
     NULL},
    {"max-payload", T_SIZE, OFF(max_payload), "1MiB", "BYTES",
     "Largest message payload accepted, 1 byte to 64MiB\n"
     "(suffixes KiB, MiB). --queue-budget must be at\n"
     "least this.",
     NULL},
    {"queue-budget", T_SIZE, OFF(queue_budget), "8MiB", "BYTES",
     "Bytes queued toward one app before its messages are\n"
     "dropped and counted (slow consumer). Must be at\n"
     "least --max-payload, else roomcastd refuses to start.",
     NULL},
    {"slow-grace", T_MS, OFF(slow_grace_ms), "5000", "MS",
     "An app over its queue budget this long is closed as\n"
     "a slow consumer.",
     NULL},
    {"frame-timeout", T_MS, OFF(frame_timeout_ms), "10000", "MS",
     "An app whose frame stays incomplete this long is\n"
     "closed (an unfinished frame pins its bytes).",
     NULL},
    {"partial-budget", T_SIZE, OFF(partial_budget), "64MiB", "BYTES",
     "Bytes all apps together may hold in incomplete frames;\n"
     "an app that would go past it is closed with an error.",
     NULL},
    {"max-clients", T_COUNT, OFF(max_clients), "100000", "N",
     "Connected apps at once; more are refused with an\n"
     "error.",
     NULL},
    {"fanout-slice", T_COUNT, OFF(fanout_slice), "1024", "N",
     "Members served per step when fanning out to a large\n"
     "room.",
     NULL},
    {"shutdown-timeout", T_MS, OFF(shutdown_timeout_ms), "5000", "MS",
     "On SIGTERM/SIGINT, time allowed to flush app queues\n"
     "before exit.",
     NULL},
    {"log-level", T_STR, OFF(log_level), "info", "LEVEL",
     "error, warn, info or debug. Logs go to stderr, one\n"
     "line per event.",
     NULL},
    {"log-format", T_STR, OFF(log_format), "logfmt", "FORMAT",
     "logfmt or json: one line per event on stderr.", NULL},
    {"http", T_STR, OFF(http), "", "HOST:PORT",
     "Serve /metrics (Prometheus), /healthz and /readyz\n"
     "here, e.g. 127.0.0.1:9464 (off when empty).",
     NULL},
    {"bind", T_STR, OFF(bind), "", "ENDPOINT",
     "Mesh data socket to bind, e.g. tcp://0.0.0.0:7440.\n"
     "Needed in mesh mode when peers connect to us.",
     NULL},
    {"advertise", T_STR, OFF(advertise), "", "ENDPOINT",
     "Endpoint peers reach our data socket at, when it is\n"
     "not --bind (e.g. bind 0.0.0.0, advertise the host IP).",
     NULL},
    {"peer", T_LIST, OFF(peers), "", "ENDPOINT",
     "A peer sidecar's data endpoint (repeatable; env and\n"
     "file: comma-separated). Mesh mode.",
     "ROOMCAST_PEERS"},
    {"proxy", T_LIST, OFF(proxies), "", "ENDPOINT",
     "A proxy's endpoint, tcp://HOST:PORT (repeatable).\n"
     "Proxy mode: publish to PORT, subscribe at PORT+1.",
     "ROOMCAST_PROXIES"},
    {"key-file", T_LIST, OFF(key_files), "", "PATH",
     "Cluster key file (roomcastctl keygen), mode 0600\n"
     "(0640 and 0440 accepted: the group may read);\n"
     "required with --bind, --peer, --proxy and --gossip.\n"
     "A second --key-file is still accepted from others\n"
     "during a rotation (env and file: comma-separated).",
     NULL},
    {"curve-cert", T_STR, OFF(curve_cert), "", "FILE",
     "CurveZMQ secret certificate (roomcastctl keygen --curve\n"
     "FILE writes FILE and FILE_secret: give FILE_secret).\n"
     "Every TCP link is then encrypted and authenticated:\n"
     "only members' keys (from gossip) and --curve-allow\n"
     "certificates are admitted. Static peers and proxies\n"
     "are given as ENDPOINT@PUBLICKEY (Z85).",
     NULL},
    {"curve-allow", T_STR, OFF(curve_allow), "", "DIR",
     "Directory of public certificates also admitted.", NULL},
    {"curve", T_STR, OFF(curve), "auto", "MODE",
     "CurveZMQ on the TCP links: auto, on, static or off.\n"
     "auto: with --curve-cert, that certificate; else with\n"
     "--gossip and no --peer or --proxy, a key pair made at\n"
     "start and announced in the sealed gossip record, so\n"
     "only holders of the cluster key are admitted (no\n"
     "certificate files); else plaintext links, with a\n"
     "warning at start (static links cannot learn keys).\n"
     "on: as auto, but plaintext links are a start error.\n"
     "static: --curve-cert is required. off: plaintext\n"
     "links (envelopes stay sealed with the cluster key).",
     NULL},
    {"heartbeat", T_MS, OFF(heartbeat_ms), "500", "MS",
     "Mesh beat period (times ceil(peers / 10) beyond 10\n"
     "peers); a peer silent for 4 of its periods is down.",
     NULL},
    {"gossip", T_STR, OFF(gossip), "", "HOST:PORT",
     "Gossip (membership) UDP address to bind, e.g.\n"
     "10.0.0.1:7441. Members found by gossip get mesh\n"
     "links: no --peer list needed. Needs --bind.",
     NULL},
    {"join", T_LIST, OFF(joins), "", "SEED",
     "A gossip seed: HOST:PORT, or dns:NAME:PORT for every\n"
     "A/AAAA record of NAME (a headless Service), resolved\n"
     "again while alone (repeatable; env and file: comma-\n"
     "separated).",
     "ROOMCAST_JOIN"},
    {"zone", T_STR, OFF(zone), "", "ZONE",
     "Zone (rack, availability zone) shown to members.", NULL},
    {"probe-interval", T_MS, OFF(probe_interval_ms), "500", "MS",
     "SWIM protocol period: one member probed per period.", NULL},
    {"probe-timeout", T_MS, OFF(probe_timeout_ms), "250", "MS",
     "Wait for a direct ack before asking others to probe.", NULL},
    {"suspicion-mult", T_COUNT, OFF(suspicion_mult), "3", "N",
     "A suspect is dead after N x max(1, log10(members)) x\n"
     "probe interval (1.5 s up to 10 members).",
     NULL},
    {"indirect-checks", T_COUNT, OFF(indirect_checks), "3", "K",
     "Members asked to probe a member that did not answer.", NULL},
    {"pushpull-interval", T_MS, OFF(pushpull_interval_ms), "30000", "MS",
     "Full member-table exchange with one member (anti-\n"
     "entropy: heals partitions, speeds up joins).",
     NULL},
    {"tombstone", T_MS, OFF(tombstone_ms), "60000", "MS",
     "How long a dead or left member is remembered (so late\n"
     "news cannot revive it); then it leaves the member and\n"
     "peer tables.",
     NULL},
    {"mesh-hwm", T_COUNT, OFF(mesh_hwm), "100000", "N",
     "Messages queued per peer link. A full link holds the\n"
     "publishing apps back (see --peer-stall-timeout).",
     NULL},
    {"envelope-format", T_COUNT, OFF(envelope_format), "2", "N",
     "Envelopes sent to peers: 2 packs what the apps\n"
     "published to one topic in one loop turn into one\n"
     "sealed envelope; 1 sends one envelope per message, as\n"
     "roomcast 0.1 does. Receivers take both. To upgrade a\n"
     "cluster from 0.1 without loss, run the new version\n"
     "with 1 until every sidecar runs it, then restart them\n"
     "with 2 (0.1 drops format 2 as undecryptable).",
     NULL},
    {"peer-stall-timeout", T_MS, OFF(peer_stall_timeout_ms), "1000", "MS",
     "A peer whose link stays full this long is cut off:\n"
     "named in a warn log line, counted (mesh_peers_cut),\n"
     "and its link drops what it cannot take until it\n"
     "keeps up again, so the apps and the other peers go\n"
     "on; its sidecar repairs the gap or tells its apps\n"
     "(GAP). Until then the apps publishing here are held\n"
     "back (rc_publish buffers, then fails with EAGAIN), and\n"
     "the other peers hear nothing from us: keep it below\n"
     "4 x --heartbeat, after which they take us for silent.",
     NULL},
    {"repair-buffer", T_SIZE, OFF(repair_buffer), "64MiB", "BYTES",
     "Sent envelopes kept to re-send to a peer that missed\n"
     "them (0: repair off; peers' gaps become GAPs at\n"
     "once).",
     NULL},
    {"repair-age", T_MS, OFF(repair_age_ms), "10000", "MS",
     "How long sent envelopes are kept for repair.", NULL},
    {"repair-timeout", T_MS, OFF(repair_timeout_ms), "500", "MS",
     "A gap from a live peer waits this long at most for the\n"
     "missing messages (asked once, again at 2/5 of it),\n"
     "holding that stream's later messages; then the apps\n"
     "get a GAP. An origin found down or gone ends the\n"
     "wait at once.",
     NULL},
    {"test-drop-every", T_COUNT, OFF(test_drop_every), "0", "N",
     "TEST HOOK, never in production: drop every Nth\n"
     "envelope received from the mesh before opening it, to\n"
     "test repair (0: off).",
     NULL},
    {"memory-limit", T_STR, OFF(memory_limit), "auto", "BYTES",
     "Cap on the sidecar's resident memory (suffixes KiB,\n"
     "MiB, GiB; at least 8MiB), shed before the kernel's\n"
     "OOM killer would act, in this order: from 85% new\n"
     "apps, SUB and presence sets are refused (ERR LIMIT);\n"
     "from 95% app queue budgets are cut to 1/8 and the\n"
     "largest app queues dropped (those apps get GAP or\n"
     "ERR slow); from 100% PUB is refused. auto: 90% of\n"
     "the cgroup's memory limit (memory.max), no cap when\n"
     "there is none; off: no cap.",
     NULL},
};
#define NOPTS (sizeof s_opts / sizeof s_opts[0])

#define POFF(f) offsetof(config_proxy_t, f)

//  `roomcastd proxy`: its own table, read by the same code (file,
//  environment, flags), so the two cannot parse differently.
static const opt_t s_proxy_opts[] = {
    {"frontend", T_STR, POFF(frontend), NULL, "ENDPOINT",
     "Endpoint of the frontend (XSUB) to bind, where the\n"
     "sidecars publish, e.g. tcp://0.0.0.0:7450 (required).",
     NULL},
    {"backend", T_STR, POFF(backend), "", "ENDPOINT",
     "Endpoint of the backend (XPUB) to bind, where the\n"
     "sidecars subscribe (default: the frontend's PORT + 1,\n"
     "which --proxy tcp://HOST:PORT on a sidecar assumes).",
     NULL},
    {"hwm", T_COUNT, POFF(hwm), "10000", "N",
     "Messages queued per sidecar link, each way, 1 or more.\n"
     "A sidecar that does not read fast enough loses what\n"
     "is past it (its sidecar counts the gap); the proxy\n"
     "never grows its queues instead.",
     NULL},
    {"http", T_STR, POFF(http), "", "HOST:PORT",
     "Serve /metrics (Prometheus), /healthz and /readyz\n"
     "here, e.g. 127.0.0.1:9465 (off when empty).",
     NULL},
    {"ready-peers", T_COUNT, POFF(ready_peers), "0", "N",
     "/readyz says ready once both sockets are bound and at\n"
     "least N sidecars are connected to each.",
     NULL},
    {"curve-cert", T_STR, POFF(curve_cert), "", "FILE",
     "CurveZMQ secret certificate: both sockets encrypt and\n"
     "admit only the --curve-allow keys.",
     NULL},
    {"curve-allow", T_STR, POFF(curve_allow), "", "DIR",
     "Directory of the sidecars' public certificates.", NULL},
    {"runtime-dir", T_STR, POFF(runtime_dir), "/tmp", "DIR",
     "Where the admitted keys are kept (with --curve-cert).", NULL},
    {"log-level", T_STR, POFF(log_level), "info", "LEVEL",
     "error, warn, info or debug. Logs go to stderr, one\n"
     "line per event.",
     NULL},
    {"log-format", T_STR, POFF(log_format), "logfmt", "FORMAT",
     "logfmt or json: one line per event on stderr.", NULL},
};

//  A table and how many entries it has.
typedef struct {
    const opt_t *opts;
    size_t n;
} schema_t;

static const schema_t s_sidecar = {s_opts, NOPTS};
static const schema_t s_proxy = {s_proxy_opts,
                                 sizeof s_proxy_opts / sizeof s_proxy_opts[0]};

static const opt_t *s_find(const schema_t *schema, const char *name, size_t len)
{
    for (size_t i = 0; i < schema->n; i++) {
        if (strlen(schema->opts[i].name) == len &&
            strncmp(schema->opts[i].name, name, len) == 0) {
            return &schema->opts[i];
        }
    }
    return NULL;
}

int config_parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || *text == '-') {
        return -1;
    }
    uint64_t mult = 1;
    if (*end) {
        if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0 ||
            strcasecmp(end, "kb") == 0) {
            mult = 1024;
        } else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0 ||
                   strcasecmp(end, "mb") == 0) {
            mult = 1024 * 1024;
        } else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gib") == 0 ||
                   strcasecmp(end, "gb") == 0) {
            mult = 1024 * 1024 * 1024;
        } else {
            return -1;
        }
    }
    if (n > UINT64_MAX / mult) {
        return -1;
    }
    *out = n * mult;
    return 0;
}

static int s_parse_uint(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || *end || *text == '-') {
        return -1;
    }
    *out = n;
    return 0;
}

static void s_list_clear(config_list_t *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i]);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static int s_list_add(config_list_t *list, const char *item, size_t len)
{
    char **items = realloc(list->items, (list->count + 2) * sizeof *items);
    if (!items) {
        return -1;
    }
    list->items = items;
    if (!(items[list->count] = strndup(item, len))) {
        return -1;
    }
    items[++list->count] = NULL;
    return 0;
}

//  "a, b,c" -> [a, b, c], replacing what the list held.
static int s_list_set(config_list_t *list, const char *value)
{
    s_list_clear(list);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ') {
            len--;
        }
        if (len && s_list_add(list, p, len)) {
            return -1;
        }
        p += strcspn(p, ",");
    }
    return 0;
}

// --- addresses ---------------------------------------------------------------

static const char *s_addr_usage(config_addr_t kind)
{
    switch (kind) {
        case CONFIG_ADDR_BIND:
            return "tcp://HOST:PORT, HOST an address, a name or *, e.g. "
                   "tcp://0.0.0.0:7440";
        case CONFIG_ADDR_CONNECT:
            return "tcp://HOST:PORT, e.g. tcp://10.0.0.5:7440";
        case CONFIG_ADDR_PEER:
            return "tcp://HOST:PORT or tcp://HOST:PORT@KEY, KEY the peer's "
                   "40-character Z85 public key";
        case CONFIG_ADDR_PROXY:
            return "tcp://HOST:PORT or tcp://HOST:PORT@KEY, PORT 1-65534 "
                   "(the proxy's backend is PORT+1)";
        case CONFIG_ADDR_FRONTEND:
            return "tcp://HOST:PORT, PORT 1-65534 (the backend is PORT+1 "
                   "unless --backend), e.g. tcp://0.0.0.0:7450";
        case CONFIG_ADDR_HTTP:
            return "HOST:PORT, HOST an IP address, localhost or empty for "
                   "every interface, e.g. 127.0.0.1:9464 or :9464";
        case CONFIG_ADDR_GOSSIP:
            return "HOST:PORT, HOST an IP address or empty for every "
                   "interface, e.g. 10.0.0.5:7441";
        case CONFIG_ADDR_SEED:
            return "HOST:PORT or dns:NAME:PORT, e.g. dns:roomcast-seeds:7441";
        default:
            return "an address";
    }
}

static bool s_addr_is_zmq(config_addr_t kind)
{
    return kind == CONFIG_ADDR_BIND || kind == CONFIG_ADDR_CONNECT ||
           kind == CONFIG_ADDR_PEER || kind == CONFIG_ADDR_PROXY ||
           kind == CONFIG_ADDR_FRONTEND;
}

//  PORT, the text after the last ':'. 0 or -1 with why.
static int s_check_port(config_addr_t kind, const char *port, char *why,
                        size_t whylen)
{
    unsigned most = kind == CONFIG_ADDR_PROXY || kind == CONFIG_ADDR_FRONTEND
                        ? 65534
                        : 65535;
    unsigned least = kind == CONFIG_ADDR_HTTP ? 0 : 1;
    size_t len = strlen(port), digits = strspn(port, "0123456789");
    if (len == 0 || digits != len) {
        snprintf(why, whylen, "the port '%.100s' is not a number", port);
        return -1;
    }
    unsigned long n = digits > 6 ? 1000000 : strtoul(port, NULL, 10);
    if (n < least || n > most) {
        snprintf(why, whylen, "the port %.100s is out of range %u-%u", port,
                 least, most);
        return -1;
    }
    return 0;
}

//  HOST, without the port. 0 or -1 with why.
static int s_check_host(config_addr_t kind, const char *host, char *why,
                        size_t whylen)
{
    size_t len = strlen(host);
    unsigned char buf[16];
    bool any_ok = kind == CONFIG_ADDR_HTTP || kind == CONFIG_ADDR_GOSSIP;
    bool name_ok = kind != CONFIG_ADDR_HTTP && kind != CONFIG_ADDR_GOSSIP;
    if (len == 0) {
        if (any_ok) {
            return 0;
        }
        snprintf(why, whylen, "the host is empty");
        return -1;
    }
    if (host[0] == '[') {
        char inner[64];
        if (host[len - 1] != ']' || len - 2 >= sizeof inner) {
            snprintf(why, whylen, "the host '%.100s' has no closing ']'", host);
            return -1;
        }
        snprintf(inner, sizeof inner, "%.*s", (int)(len - 2), host + 1);
        if (inet_pton(AF_INET6, inner, buf) != 1) {
            snprintf(why, whylen, "the host '%.100s' is not an IPv6 address",
                     host);
            return -1;
        }
        return 0;
    }
    if (strcmp(host, "*") == 0) {
        if (kind == CONFIG_ADDR_BIND || kind == CONFIG_ADDR_FRONTEND) {
            return 0;
        }
        snprintf(why, whylen,
                 "the host '*' (every interface) is only for a bind");
        return -1;
    }
    if (strchr(host, ':')) {
        snprintf(why, whylen,
                 "the host '%.100s' needs brackets if it is an IPv6 "
                 "address ([::1])",
                 host);
        return -1;
    }
    if (strspn(host, "0123456789.") == len) {
        if (inet_pton(AF_INET, host, buf) != 1) {
            snprintf(why, whylen, "the host '%.100s' is not an IPv4 address",
                     host);
            return -1;
        }
        return 0;
    }
    if (kind == CONFIG_ADDR_HTTP && strcmp(host, "localhost") == 0) {
        return 0;
    }
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789.-_";
    if (!name_ok || len > 253 || strspn(host, name_chars) != len) {
        snprintf(why, whylen, "the host '%.100s' is not %s", host,
                 name_ok ? "an IP address or a host name"
                         : "an IP address: no name lookup here");
        return -1;
    }
    return 0;
}

//  The reason, without the usage. 0 or -1.
static int s_check_addr(config_addr_t kind, const char *value, char *why,
                        size_t whylen)
{
    char text[512];
    const char *rest = value;
    if (s_addr_is_zmq(kind)) {
        if (strncmp(value, "tcp://", 6) != 0) {
            snprintf(why, whylen, "not a tcp:// endpoint");
            return -1;
        }
        rest = value + 6;
    } else if (kind == CONFIG_ADDR_SEED && strncmp(value, "dns:", 4) == 0) {
        rest = value + 4;
    }
    if (strlen(rest) >= sizeof text) {
        snprintf(why, whylen, "too long");
        return -1;
    }
    snprintf(text, sizeof text, "%s", rest);
    //  Z85 has '@' and ':' in its alphabet: a key is the last 40 characters
    size_t len = strlen(text);
    char *at =
        len > 41 && text[len - 41] == '@' ? text + len - 41 : strchr(text, '@');
    if (at) {
        uint8_t key[32];
        if (kind != CONFIG_ADDR_PEER && kind != CONFIG_ADDR_PROXY) {
            snprintf(why, whylen,
                     "a public key (@KEY) only goes with a "
                     "peer or a proxy");
            return -1;
        }
        if (strlen(at + 1) != 40 || !zmq_z85_decode(key, at + 1)) {
            snprintf(why, whylen,
                     "the public key after '@' is not 40 Z85 characters");
            return -1;
        }
        *at = 0;
    }
    char *colon = strrchr(text, ':');
    char *bracket = strrchr(text, ']');
    if (!colon || (bracket && colon < bracket)) {
        snprintf(why, whylen, "no :PORT");
        return -1;
    }
    *colon = 0;
    if (s_check_port(kind, colon + 1, why, whylen) ||
        s_check_host(kind, text, why, whylen)) {
        return -1;
    }
    return 0;
}

int config_check_addr(config_addr_t kind, const char *value, char *why,
                      size_t whylen)
{
    char reason[256];
    if (s_check_addr(kind, value, reason, sizeof reason) == 0) {
        return 0;
    }
    snprintf(why, whylen, "%s (expected %s)", reason, s_addr_usage(kind));
    return -1;
}

//  The settings that hold addresses, and what kind.
static config_addr_t s_addr_kind(const opt_t *opt)
{
    static const struct {
        const char *name;
        config_addr_t kind;
    } kinds[] = {
        {"bind", CONFIG_ADDR_BIND},    {"advertise", CONFIG_ADDR_CONNECT},
        {"peer", CONFIG_ADDR_PEER},    {"proxy", CONFIG_ADDR_PROXY},
        {"http", CONFIG_ADDR_HTTP},    {"gossip", CONFIG_ADDR_GOSSIP},
        {"join", CONFIG_ADDR_SEED},    {"frontend", CONFIG_ADDR_BIND},
        {"backend", CONFIG_ADDR_BIND},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(opt->name, kinds[i].name) == 0) {
            return kinds[i].kind;
        }
    }
    return CONFIG_ADDR_NONE;
}

//  An address setting's value, item by item for a list. 0 or -1 with err.
static int s_check_value(const opt_t *opt, const char *value,
                         const char *origin, char *err, size_t errlen)
{
    char why[512];
    config_addr_t kind = s_addr_kind(opt);
    if (kind == CONFIG_ADDR_NONE || !*value ||
        config_check_addr(kind, value, why, sizeof why) == 0) {
        return 0;
    }
    snprintf(err, errlen, "%s: bad value '%s' for %s: %s", origin, value,
             opt->name, why);
    return -1;
}

static int s_set(void *cfg, const opt_t *opt, const char *value,
                 const char *origin, char *err, size_t errlen)
{
    char *at = (char *)cfg + opt->offset;
    uint64_t n = 0;
    if (opt->type == T_LIST) {
        config_list_t *list = (config_list_t *)at;
        if (s_list_set(list, value)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < list->count; i++) {
            if (s_check_value(opt, list->items[i], origin, err, errlen)) {
                return -1;
            }
        }
        return 0;
    }
    if (opt->type == T_STR) {
        if (s_check_value(opt, value, origin, err, errlen)) {
            return -1;
        }
        char *copy = strdup(value);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*(char **)at);
        *(char **)at = copy;
        return 0;
    }
    int bad = opt->type == T_SIZE ? config_parse_size(value, &n)
                                  : s_parse_uint(value, &n);
    if (bad) {
        snprintf(err, errlen, "%s: bad value '%s' for %s (expected %s)", origin,
                 value, opt->name,
                 opt->type == T_SIZE ? "bytes, e.g. 65536 or 1MiB"
                                     : "a whole number");
        return -1;
    }
    if (opt->type == T_MS) {
        *(uint64_t *)at = n;
    } else {
        *(size_t *)at = (size_t)n;
    }
    return 0;
}

static void s_defaults(const schema_t *schema, void *cfg)
{
    char err[8];
    for (size_t i = 0; i < schema->n; i++) {
        if (schema->opts[i].def) {
            (void)s_set(cfg, &schema->opts[i], schema->opts[i].def, "default",
                        err, sizeof err);
        }
    }
}

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    s_defaults(&s_sidecar, cfg);
}

static void s_free(const schema_t *schema, void *cfg)
{
    for (size_t i = 0; i < schema->n; i++) {
        const opt_t *opt = &schema->opts[i];
        if (opt->type == T_STR) {
            char **at = (char **)((char *)cfg + opt->offset);
            free(*at);
            *at = NULL;
        } else if (opt->type == T_LIST) {
            s_list_clear((config_list_t *)((char *)cfg + opt->offset));
        }
    }
}

void config_free(config_t *cfg)
{
    s_free(&s_sidecar, cfg);
    free(cfg->config_file);
    cfg->config_file = NULL;
}

static char *s_trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        *--end = 0;
    }
    return s;
}

static int s_parse_text(const schema_t *schema, void *cfg, const char *text,
                        const char *origin, char *err, size_t errlen)
{
    char *copy = strdup(text), *save = NULL;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int lineno = 0, rc = 0;
    //  strtok_r would merge empty lines and miscount; walk by hand
    for (char *line = copy; line && rc == 0; line = save) {
        lineno++;
        save = strchr(line, '\n');
        if (save) {
            *save++ = 0;
        }
        //  a comment starts a line or follows a blank: '#' is a Z85
        //  character, so a peer's @KEY may hold one
        for (char *hash = strchr(line, '#'); hash;
             hash = strchr(hash + 1, '#')) {
            if (hash == line || hash[-1] == ' ' || hash[-1] == '\t') {
                *hash = 0;
                break;
            }
        }
        char *s = s_trim(line);
        if (!*s) {
            continue;
        }
        char *eq = strchr(s, '=');
        char where[300];
        snprintf(where, sizeof where, "%s:%d", origin, lineno);
        if (!eq) {
            snprintf(err, errlen, "%s: expected 'name = value'", where);
            rc = -1;
            break;
        }
        *eq = 0;
        char *name = s_trim(s), *value = s_trim(eq + 1);
        const opt_t *opt = s_find(schema, name, strlen(name));
        if (!opt) {
            snprintf(err, errlen, "%s: unknown setting '%s'", where, name);
            rc = -1;
            break;
        }
        rc = s_set(cfg, opt, value, where, err, errlen);
    }
    free(copy);
    return rc;
}

int config_parse_text(config_t *cfg, const char *text, const char *origin,
                      char *err, size_t errlen)
{
    return s_parse_text(&s_sidecar, cfg, text, origin, err, errlen);
}

static int s_load_file(const schema_t *schema, void *cfg, const char *path,
                       char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    char chunk[4096];
    size_t n;
    while (mem && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        fwrite(chunk, 1, n, mem);
    }
    fclose(f);
    if (!mem) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fclose(mem);
    int rc = s_parse_text(schema, cfg, text, path, err, errlen);
    free(text);
    return rc;
}

static void s_env_name(const opt_t *opt, char *out, size_t size)
{
    if (opt->env) {
        snprintf(out, size, "%s", opt->env);
        return;
    }
    size_t n = (size_t)snprintf(out, size, "ROOMCAST_");
    for (const char *p = opt->name; *p && n + 1 < size; p++) {
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    }
    out[n] = 0;
}

//  One entry per option: flag, help, env and default.
static void s_usage_opts(const schema_t *schema, FILE *out)
{
    for (size_t i = 0; i < schema->n; i++) {
        const opt_t *opt = &schema->opts[i];
        char flag[64], env[64];
        snprintf(flag, sizeof flag, "--%s %s", opt->name, opt->arg);
        s_env_name(opt, env, sizeof env);
        if (strlen(flag) > 21) { // no room for the two spaces: own line
            fprintf(out, "  %s\n  %-22s ", flag, "");
        } else {
            fprintf(out, "  %-22s ", flag);
        }
        for (const char *p = opt->help; *p; p++) {
            fputc(*p, out);
            if (*p == '\n') {
                fprintf(out, "  %-22s ", "");
            }
        }
        fprintf(out, "\n  %-22s [env %s; default: %s]\n", "", env,
                opt->def ? (*opt->def ? opt->def : "none") : "none, required");
    }
}

void config_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: roomcastd --channel NAME [OPTION]...\n"
        "\n"
        "roomcastd is the roomcast sidecar: applications on this host connect\n"
        "to its Unix socket (through libroomcast) to publish and subscribe to\n"
        "room messages; every other subscribed app receives each message "
        "once.\n"
        "\n"
        "Every option can also be set in the environment (ROOMCAST_NAME, "
        "dashes\n"
        "as underscores) or in a config file (\"name = value\" lines). "
        "Precedence:\n"
        "flag, then environment, then file, then default.\n"
        "\n"
        "Options:\n"
        "  --config FILE          read settings from FILE (env "
        "ROOMCAST_CONFIG)\n");
    s_usage_opts(&s_sidecar, out);
    fprintf(out, "  -h, --help             show this help and exit\n"
                 "  -V, --version          show the version and exit\n"
                 "\n"
                 "Signals: SIGTERM or SIGINT stops accepting apps, flushes "
                 "their queues\n"
                 "within --shutdown-timeout and exits 0.\n"
                 "\n"
                 "Exit status: 0 after a clean stop, 1 on a runtime failure, 2 "
                 "on a bad\n"
                 "option or setting.\n"
                 "\n"
                 "See also: roomcastd(8), roomcastctl(1), roomcast(7).\n");
}

//  The layers above the defaults, lowest first: the file (--config or
//  ROOMCAST_CONFIG, kept in *config_file), the environment, the flags.
//  usage prints --help. CONFIG_OK, CONFIG_EXIT or CONFIG_ERROR.
static int s_load(const schema_t *schema, void *cfg, char **config_file,
                  void (*usage)(FILE *out), int argc, char **argv, char *err,
                  size_t errlen)
{
    //  the file first: it is the lowest layer above the defaults
    const char *file = getenv("ROOMCAST_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 == argc) {
            snprintf(err, errlen, "option --config needs a value");
            return CONFIG_ERROR;
        }
        if (strcmp(argv[i], "--config") == 0) {
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    if (file && *file) {
        if (s_load_file(schema, cfg, file, err, errlen)) {
            return CONFIG_ERROR;
        }
        *config_file = strdup(file);
    }
    for (size_t i = 0; i < schema->n; i++) {
        char env[64];
        s_env_name(&schema->opts[i], env, sizeof env);
        const char *value = getenv(env);
        if (value && s_set(cfg, &schema->opts[i], value, env, err, errlen)) {
            return CONFIG_ERROR;
        }
    }
    bool flag_seen[sizeof s_opts / sizeof s_opts[0] + 16] = {false};
    assert(schema->n <= sizeof flag_seen / sizeof flag_seen[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CONFIG_EXIT;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("roomcastd %s\n", ROOMCAST_VERSION_STRING);
            return CONFIG_EXIT;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        if (len == 6 && strncmp(name, "config", 6) == 0) {
            i += value ? 0 : 1;
            continue;
        }
        const opt_t *opt = s_find(schema, name, len);
        if (!opt) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option --%s needs a value", opt->name);
                return CONFIG_ERROR;
            }
            value = argv[++i];
        }
        size_t index = (size_t)(opt - schema->opts);
        if (opt->type == T_LIST && flag_seen[index]) {
            config_list_t *list = (config_list_t *)((char *)cfg + opt->offset);
            if (s_check_value(opt, value, "command line", err, errlen)) {
                return CONFIG_ERROR;
            }
            if (s_list_add(list, value, strlen(value))) {
                snprintf(err, errlen, "out of memory");
                return CONFIG_ERROR;
            }
            continue;
        }
        flag_seen[index] = true;
        if (s_set(cfg, opt, value, "command line", err, errlen)) {
            return CONFIG_ERROR;
        }
    }
    return CONFIG_OK;
}

int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    config_defaults(cfg);
    int rc = s_load(&s_sidecar, cfg, &cfg->config_file, config_usage, argc,
                    argv, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    if (!cfg->channel || !*cfg->channel) {
        snprintf(err, errlen,
                 "--channel is required: it names the cluster, and sidecars "
                 "only talk to sidecars of the same channel (e.g. "
                 "--channel prod-chat, or ROOMCAST_CHANNEL)");
        return CONFIG_ERROR;
    }
    if (strlen(cfg->channel) > 255) {
        snprintf(err, errlen, "--channel is longer than 255 bytes");
        return CONFIG_ERROR;
    }
    if (cfg->max_payload == 0 || cfg->max_payload > 64 * 1024 * 1024) {
        snprintf(err, errlen, "--max-payload must be 1 byte to 64MiB");
        return CONFIG_ERROR;
    }
    if (cfg->queue_budget < cfg->max_payload) {
        snprintf(err, errlen, "--queue-budget must be at least --max-payload");
        return CONFIG_ERROR;
    }
    if (cfg->max_clients == 0 || cfg->fanout_slice == 0) {
        snprintf(err, errlen, "--max-clients and --fanout-slice must be > 0");
        return CONFIG_ERROR;
    }
    if ((cfg->peers.count || cfg->proxies.count) && !cfg->key_files.count) {
        snprintf(err, errlen,
                 "--peer and --proxy need --key-file: every envelope between "
                 "sidecars is sealed with the cluster key (create one with "
                 "roomcastctl keygen FILE)");
        return CONFIG_ERROR;
    }
    if (cfg->key_files.count > 2) {
        snprintf(err, errlen, "at most two --key-file (current, previous)");
        return CONFIG_ERROR;
    }
    if (cfg->peers.count && cfg->proxies.count) {
        snprintf(err, errlen,
                 "--peer (mesh mode) and --proxy (proxy mode) "
                 "cannot be mixed");
        return CONFIG_ERROR;
    }
    if (*cfg->gossip && !*cfg->bind && !cfg->proxies.count) {
        snprintf(err, errlen,
                 "--gossip needs --bind (the data endpoint "
                 "members connect to) or --proxy");
        return CONFIG_ERROR;
    }
    if (*cfg->gossip && !cfg->key_files.count) {
        snprintf(err, errlen,
                 "--gossip needs --key-file: gossip packets "
                 "are sealed with the cluster key");
        return CONFIG_ERROR;
    }
    if (cfg->joins.count && !*cfg->gossip) {
        snprintf(err, errlen, "--join needs --gossip HOST:PORT");
        return CONFIG_ERROR;
    }
    if (cfg->probe_interval_ms < 10 || cfg->probe_timeout_ms < 1 ||
        cfg->probe_timeout_ms >= cfg->probe_interval_ms ||
        cfg->suspicion_mult < 1 || cfg->indirect_checks > 16 ||
        cfg->pushpull_interval_ms < cfg->probe_interval_ms ||
        cfg->tombstone_ms < cfg->probe_interval_ms ||
        cfg->tombstone_ms > UINT32_MAX) {
        snprintf(err, errlen,
                 "gossip timings: need probe-timeout < "
                 "probe-interval <= pushpull-interval and <= tombstone, "
                 "suspicion-mult >= 1, indirect-checks <= 16");
        return CONFIG_ERROR;
    }
    if (cfg->envelope_format < 1 || cfg->envelope_format > 2) {
        snprintf(err, errlen,
                 "--envelope-format: 1 (one message per envelope) or 2 "
                 "(batches)");
        return CONFIG_ERROR;
    }
    if (strcmp(cfg->curve, "auto") != 0 && strcmp(cfg->curve, "on") != 0 &&
        strcmp(cfg->curve, "static") != 0 && strcmp(cfg->curve, "off") != 0) {
        snprintf(err, errlen,
                 "--curve: unknown mode '%s' (auto, on, static, off)",
                 cfg->curve);
        return CONFIG_ERROR;
    }
    if (strcmp(cfg->curve, "on") == 0 &&
        config_curve(cfg) == CONFIG_CURVE_OFF &&
        (*cfg->bind || cfg->peers.count || cfg->proxies.count)) {
        snprintf(err, errlen,
                 "--curve=on: static --peer or --proxy links cannot learn "
                 "keys from gossip; give --curve-cert (and the peers' keys "
                 "as ENDPOINT@KEY), or use --gossip without --peer");
        return CONFIG_ERROR;
    }
    if (strcmp(cfg->curve, "static") == 0 && !*cfg->curve_cert) {
        snprintf(err, errlen,
                 "--curve=static needs --curve-cert (roomcastctl keygen "
                 "--curve FILE)");
        return CONFIG_ERROR;
    }
    if (strcmp(cfg->curve, "off") == 0 && *cfg->curve_cert) {
        snprintf(err, errlen, "--curve=off and --curve-cert contradict");
        return CONFIG_ERROR;
    }
    if (*cfg->curve_allow && config_curve(cfg) == CONFIG_CURVE_OFF) {
        snprintf(err, errlen,
                 "--curve-allow needs CurveZMQ: --curve-cert, or "
                 "--gossip without --peer or --proxy");
        return CONFIG_ERROR;
    }
    uint64_t cap = 0;
    if (strcmp(cfg->memory_limit, "auto") != 0 &&
        strcmp(cfg->memory_limit, "off") != 0 &&
        (config_parse_size(cfg->memory_limit, &cap) ||
         (cap && cap < 8 * 1024 * 1024))) {
        snprintf(err, errlen,
                 "--memory-limit: expected auto, off, 0 or bytes of at "
                 "least 8MiB (e.g. 460MiB), not '%s'",
                 cfg->memory_limit);
        return CONFIG_ERROR;
    }
    if (cfg->heartbeat_ms < 10 || cfg->heartbeat_ms > 60000) {
        snprintf(err, errlen, "--heartbeat must be 10 to 60000 ms");
        return CONFIG_ERROR;
    }
    if (cfg->peer_stall_timeout_ms < 10 || cfg->repair_timeout_ms < 10 ||
        cfg->repair_timeout_ms > 60000 || cfg->repair_age_ms > 3600000) {
        snprintf(err, errlen,
                 "--peer-stall-timeout and --repair-timeout must be at "
                 "least 10 ms (--repair-timeout at most 60000), "
                 "--repair-age at most 3600000");
        return CONFIG_ERROR;
    }
    if (!cfg->name || !*cfg->name) {
        char host[256] = "roomcastd";
        gethostname(host, sizeof host - 1);
        free(cfg->name);
        cfg->name = strdup(host);
    }
    return CONFIG_OK;
}

// --- roomcastd proxy ---------------------------------------------------------

void config_proxy_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: roomcastd proxy --frontend ENDPOINT [OPTION]...\n"
        "\n"
        "roomcastd proxy forwards sealed envelopes between sidecars in proxy\n"
        "mode, so that each sidecar keeps one link per proxy instead of one\n"
        "per peer. Sidecars started with --proxy tcp://HOST:PORT publish to\n"
        "the frontend (an XSUB at PORT) and subscribe at the backend (an XPUB\n"
        "at PORT+1); messages go frontend to backend, subscriptions back. The\n"
        "proxy holds no cluster key: routing keys are opaque hashes and\n"
        "bodies are sealed, so it reads nothing. Run two, on two hosts, and\n"
        "give every sidecar both (receivers drop the duplicate copies).\n"
        "\n"
        "Every option can also be set in the environment (ROOMCAST_NAME, "
        "dashes\n"
        "as underscores) or in a config file (\"name = value\" lines), as "
        "for the\n"
        "sidecar. Precedence: flag, then environment, then file, then "
        "default.\n"
        "\n"
        "Options:\n"
        "  --config FILE          read settings from FILE (env "
        "ROOMCAST_CONFIG)\n");
    s_usage_opts(&s_proxy, out);
    fprintf(
        out,
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "Queues: every link holds at most --hwm messages each way; a sidecar\n"
        "that does not keep up loses what comes past them (its sidecar sees\n"
        "the sequence gap and reports it; the publisher learns it from the\n"
        "receiver's beats; the proxy counts it too). Subscriptions are never\n"
        "dropped (a lost one would cut a topic off without a trace): their\n"
        "queue grows only while a sidecar does not read them.\n"
        "\n"
        "HTTP (--http): /metrics in the Prometheus text format (messages,\n"
        "frames and bytes forwarded each way, messages a full link dropped,\n"
        "subscriptions held, sidecars connected, refused handshakes,\n"
        "build_info, process_*); /healthz 200 while the loop runs; /readyz\n"
        "200 when ready, else 503 saying why. Ready means: both sockets are\n"
        "bound and at least --ready-peers sidecars are connected to each\n"
        "(0: bound is ready).\n"
        "\n"
        "Signals: SIGTERM or SIGINT stops forwarding and exits 0.\n"
        "\n"
        "Exit status: 0 after a clean stop, 1 on a runtime failure (a socket\n"
        "that cannot be bound), 2 on a bad option or setting.\n"
        "\n"
        "See also: roomcastd(8), roomcast(7).\n");
}

void config_proxy_free(config_proxy_t *cfg)
{
    s_free(&s_proxy, cfg);
    free(cfg->config_file);
    cfg->config_file = NULL;
}

int config_proxy_load(config_proxy_t *cfg, int argc, char **argv, char *err,
                      size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    s_defaults(&s_proxy, cfg);
    int rc = s_load(&s_proxy, cfg, &cfg->config_file, config_proxy_usage, argc,
                    argv, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    char why[512];
    if (!cfg->frontend || !*cfg->frontend) {
        snprintf(err, errlen,
                 "--frontend tcp://HOST:PORT is required (env "
                 "ROOMCAST_FRONTEND; see --help)");
        return CONFIG_ERROR;
    }
    //  without --backend the backend is PORT+1: PORT must leave room
    if (!*cfg->backend && config_check_addr(CONFIG_ADDR_FRONTEND, cfg->frontend,
                                            why, sizeof why)) {
        snprintf(err, errlen, "bad value '%s' for frontend: %s", cfg->frontend,
                 why);
        return CONFIG_ERROR;
    }
    if (cfg->hwm < 1 || cfg->hwm > INT32_MAX) {
        snprintf(err, errlen, "--hwm must be 1 or more");
        return CONFIG_ERROR;
    }
    if (*cfg->curve_allow && !*cfg->curve_cert) {
        snprintf(err, errlen, "--curve-allow needs --curve-cert");
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

config_curve_t config_curve(const config_t *cfg)
{
    if (!cfg->curve || strcmp(cfg->curve, "off") == 0) {
        return CONFIG_CURVE_OFF;
    }
    if (*cfg->curve_cert) {
        return CONFIG_CURVE_CERT;
    }
    if (strcmp(cfg->curve, "static") != 0 && *cfg->gossip &&
        !cfg->peers.count && !cfg->proxies.count) {
        return CONFIG_CURVE_EPHEMERAL;
    }
    return CONFIG_CURVE_OFF;
}
