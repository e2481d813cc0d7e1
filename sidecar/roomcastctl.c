/*  roomcastctl: talk to the local roomcastd through libroomcast. */
#include "curve.h"
#include "keyring.h"
#include "roomcast.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *socket;
    const char *ns;
    bool json;
    bool binary;
    bool echo;
    long count;
    int timeout_ms;
} opts_t;

static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: roomcastctl [OPTION]... COMMAND [ARG]...\n"
        "\n"
        "Talk to the local roomcast sidecar (roomcastd) over its Unix socket.\n"
        "\n"
        "Commands:\n"
        "  status                 node id, channel, health, clients, topics,\n"
        "                         counters\n"
        "  topics [PATTERN]       topics with local subscribers and their "
        "count;\n"
        "                         PATTERN is a glob on the topic (or "
        "NS<tab>TOPIC)\n"
        "  numsub TOPIC           local subscribers of TOPIC\n"
        "  clients                connected apps: pid, uid, topics, queue, "
        "drops\n"
        "  presence TOPIC         who is present in TOPIC, cluster-wide: key,\n"
        "                         owning sidecar, meta\n"
        "  publish TOPIC DATA     publish DATA (text, or --binary) to TOPIC;\n"
        "                         DATA '-' reads it from standard input\n"
        "  subscribe TOPIC...     print messages of TOPICs as they come, "
        "until\n"
        "                         interrupted or --count messages\n"
        "  peers                  mesh peers: node id, name, endpoint, live "
        "or\n"
        "                         down, whether they hear us; static links\n"
        "  members                gossip members: node id, name, state "
        "(alive,\n"
        "                         suspect, dead, left), incarnation, "
        "addresses\n"
        "  peer add ENDPOINT      connect to a peer's data endpoint now\n"
        "  peer remove ENDPOINT   disconnect from it\n"
        "  keygen FILE            write a new random cluster key to FILE "
        "(mode\n"
        "                         0600, refuses to overwrite); no sidecar "
        "needed\n"
        "  keygen --curve FILE    write a CurveZMQ key pair: FILE (public\n"
        "                         certificate) and FILE_secret (--curve-cert)\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH      sidecar socket (default $ROOMCAST_SOCKET, "
        "else\n"
        "                         " RC_DEFAULT_SOCKET ")\n"
        "  -n, --namespace NS     namespace of TOPIC (default \"default\")\n"
        "  -j, --json             typed JSON on stdout: status, numsub, "
        "publish,\n"
        "                         peer and keygen give an object; topics,\n"
        "                         clients, peers, members and presence an "
        "array\n"
        "                         of objects; subscribe one object per "
        "line\n"
        "  -b, --binary           publish: mark the payload binary\n"
        "  -c, --count N          subscribe: exit after N messages\n"
        "  -t, --timeout MS       give up waiting for the sidecar after MS\n"
        "                         (default 5000; subscribe: overall, 0 = "
        "none)\n"
        "  -h, --help             show this help\n"
        "  -V, --version          show the version\n"
        "\n"
        "Exit status: 0 ok, 1 the sidecar failed or refused, 2 bad usage,\n"
        "3 subscribe timed out before --count messages.\n");
}

static void s_json_str(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20 || c == 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

//  The sidecar's last refusal, in its own words (ERR frames reach us
//  through on_error): printed instead of a bare errno text.
static char s_refusal[300];
static int s_refusal_err;

static void s_on_error(rc_client_t *c, rc_stage_t stage, int err,
                       const char *text, void *arg)
{
    (void)c;
    (void)stage;
    (void)arg;
    s_refusal_err = err;
    snprintf(s_refusal, sizeof s_refusal, "%s", text);
}

//  Why what failed: the sidecar's words when it refused, else errno's.
static void s_fail(const char *what)
{
    if (*s_refusal) {
        fprintf(stderr, "roomcastctl: %s: refused by the sidecar: %s (%s)\n",
                what, s_refusal, rc_strerror(s_refusal_err));
    } else {
        fprintf(stderr, "roomcastctl: %s: %s\n", what, rc_strerror(errno));
    }
}

static rc_client_t *s_connect(const opts_t *o)
{
    rc_options_t ro;
    rc_options_init(&ro);
    ro.name = "roomcastctl";
    ro.on_error = s_on_error;
    ro.connect_timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    rc_client_t *c = rc_connect(o->socket, &ro);
    if (!c) {
        const char *path = o->socket ? o->socket : getenv("ROOMCAST_SOCKET");
        fprintf(stderr, "roomcastctl: cannot reach the sidecar at %s: %s\n",
                path && *path ? path : RC_DEFAULT_SOCKET, rc_strerror(errno));
    }
    return c;
}

// --- --json: the sidecar's rows as typed JSON
// ----------------------------------

//  The sidecar answers a query with (key, value) rows; list rows carry
//  their fields in the value as "k1=v1 k2=v2 ..." in a fixed order, values
//  unescaped. Each list is parsed against its field list: a field whose
//  type has no spaces ends at the first " next=", free text (names, zone,
//  meta) at the last one after which the remaining fields still parse, so
//  a name such as "my node state=dead" stays one name.

typedef enum {
    V_STR,  // no spaces
    V_TEXT, // anything
    V_UINT, // decimal digits
    V_INT,  // optional '-', digits
    V_BOOL  // true or false
} vtype_t;

typedef struct {
    const char *key;  // in the row
    const char *json; // in the output
    vtype_t type;
    bool dash_null; // "-" means none: null
} field_t;

typedef struct {
    const char *ptr;
    size_t len;
} span_t;

static bool s_valid(vtype_t type, const char *v, size_t len)
{
    if (type == V_TEXT) {
        return true;
    }
    if (type == V_BOOL) {
        return (len == 4 && !strncmp(v, "true", 4)) ||
               (len == 5 && !strncmp(v, "false", 5));
    }
    if (type == V_INT && len > 0 && *v == '-') {
        v++;
        len--;
    }
    if (type == V_UINT || type == V_INT) {
        if (len == 0 || len > 20) {
            return false;
        }
        for (size_t i = 0; i < len; i++) {
            if (v[i] < '0' || v[i] > '9') {
                return false;
            }
        }
        return true;
    }
    return memchr(v, ' ', len) == NULL;
}

//  Parse s ("k1=v1 k2=v2 ...") against fields; the values into out.
static bool s_fields(const char *s, const field_t *f, size_t n, span_t *out)
{
    size_t kl = strlen(f->key);
    if (strncmp(s, f->key, kl) != 0 || s[kl] != '=') {
        return false;
    }
    const char *v = s + kl + 1;
    if (n == 1) {
        out->ptr = v;
        out->len = strlen(v);
        return s_valid(f->type, v, out->len);
    }
    char next[48];
    snprintf(next, sizeof next, " %s=", f[1].key);
    const char *at[64];
    size_t nat = 0;
    for (const char *p = strstr(v, next); p && nat < 64;
         p = strstr(p + 1, next)) {
        at[nat++] = p;
    }
    for (size_t k = 0; k < nat; k++) {
        // free text: the longest value first; the others end at a space
        const char *end = f->type == V_TEXT ? at[nat - 1 - k] : at[k];
        if (s_valid(f->type, v, (size_t)(end - v)) &&
            s_fields(end + 1, f + 1, n - 1, out + 1)) {
            out->ptr = v;
            out->len = (size_t)(end - v);
            return true;
        }
    }
    return false;
}

static void s_json_value(const field_t *f, const char *v, size_t len)
{
    if (f->dash_null && len == 1 && *v == '-') {
        printf("null");
    } else if (f->type == V_UINT || f->type == V_INT || f->type == V_BOOL) {
        printf("%.*s", (int)len, v);
    } else {
        s_json_str(v, len);
    }
}

static void s_json_key(const char *key, bool *first)
{
    printf("%s\"%s\":", *first ? "" : ",", key);
    *first = false;
}

//  What a query's rows are.
typedef enum {
    R_OBJECT,   // one object: key -> value (status, peer add/remove)
    R_TOPICS,   // [{namespace, topic, subscribers}]
    R_NUMSUB,   // {namespace, topic, subscribers}
    R_CLIENTS,  // [{id, name, pid, ...}]
    R_PEERS,    // [{kind: "peer", node_id, name, ...} | {kind: "link", ...}]
    R_MEMBERS,  // [{node_id, name, state, ...}]
    R_PRESENCE, // [{key, node_id, meta, meta_bytes}]
} rows_kind_t;

static const field_t s_client_fields[] = {
    {"name", "name", V_TEXT, true},
    {"pid", "pid", V_INT, false},
    {"uid", "uid", V_UINT, false},
    {"gid", "gid", V_UINT, false},
    {"topics", "topics", V_UINT, false},
    {"queued", "queued", V_UINT, false},
    {"published", "published", V_UINT, false},
    {"dropped", "dropped", V_UINT, false},
    {"age_s", "age_s", V_UINT, false},
};
static const field_t s_peer_fields[] = {
    {"name", "name", V_TEXT, false},
    {"endpoint", "endpoint", V_STR, false},
    {"state", "state", V_STR, false},
    {"heard_us", "heard_us", V_BOOL, false},
    {"last_ms", "last_ms", V_UINT, false},
    {"received", "received", V_UINT, false},
    {"missed", "missed", V_UINT, false},
    {"lost_to", "lost_to", V_UINT, false},
};
static const field_t s_member_fields[] = {
    {"name", "name", V_TEXT, false},
    {"state", "state", V_STR, false},
    {"incarnation", "incarnation", V_UINT, false},
    {"endpoint", "endpoint", V_STR, false},
    {"gossip", "gossip", V_STR, false},
    {"zone", "zone", V_TEXT, true},
};
static const field_t s_presence_fields[] = {
    {"node", "node_id", V_STR, false},
    {"meta", "meta", V_TEXT, false},
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

//  One row of a list as an object; false (and nothing printed) when the
//  row does not parse.
static bool s_json_row(rows_kind_t kind, const char *key, const char *value)
{
    bool first = true;
    if (kind == R_TOPICS || kind == R_NUMSUB) {
        const char *tab = strchr(key, '\t');
        if (!tab || !s_valid(V_UINT, value, strlen(value))) {
            return false;
        }
        printf("{");
        s_json_key("namespace", &first);
        s_json_str(key, (size_t)(tab - key));
        s_json_key("topic", &first);
        s_json_str(tab + 1, strlen(tab + 1));
        s_json_key("subscribers", &first);
        printf("%s}", value);
        return true;
    }
    if (kind == R_PEERS && strcmp(key, "link") == 0) {
        printf("{\"kind\":\"link\",\"endpoint\":");
        s_json_str(value, strlen(value));
        printf("}");
        return true;
    }
    const field_t *fields = s_presence_fields;
    size_t n = NFIELDS(s_presence_fields);
    const char *key_name = "key";
    if (kind == R_CLIENTS) {
        fields = s_client_fields;
        n = NFIELDS(s_client_fields);
        key_name = "id";
    } else if (kind == R_PEERS) {
        fields = s_peer_fields;
        n = NFIELDS(s_peer_fields);
        key_name = "node_id";
    } else if (kind == R_MEMBERS) {
        fields = s_member_fields;
        n = NFIELDS(s_member_fields);
        key_name = "node_id";
    }
    span_t spans[16];
    if ((kind == R_CLIENTS && !s_valid(V_UINT, key, strlen(key))) ||
        !s_fields(value, fields, n, spans)) {
        return false;
    }
    printf("{");
    if (kind == R_PEERS) {
        printf("\"kind\":\"peer\"");
        first = false;
    }
    s_json_key(key_name, &first);
    if (kind == R_CLIENTS) {
        printf("%s", key);
    } else {
        s_json_str(key, strlen(key));
    }
    for (size_t i = 0; i < n; i++) {
        s_json_key(fields[i].json, &first);
        unsigned long long bytes;
        char tail;
        if (kind == R_PRESENCE && i == 1 &&
            sscanf(spans[i].ptr, "[%llu bytes%c", &bytes, &tail) == 2 &&
            tail == ']' && spans[i].ptr[spans[i].len - 1] == ']') {
            // binary meta: the sidecar gives its size only
            printf("null,\"meta_bytes\":%llu", bytes);
            continue;
        }
        s_json_value(&fields[i], spans[i].ptr, spans[i].len);
        if (kind == R_PRESENCE && i == 1) {
            printf(",\"meta_bytes\":%zu", spans[i].len);
        }
    }
    printf("}");
    return true;
}

//  The reply as JSON on stdout. Returns 0, or 1 when a row did not parse
//  (the sidecar and roomcastctl disagree on a format).
static int s_print_json(rows_kind_t kind, const rc_reply_t *reply)
{
    if (kind == R_OBJECT) {
        printf("{");
        for (size_t i = 0; i < rc_reply_size(reply); i++) {
            const char *k = rc_reply_key(reply, i),
                       *v = rc_reply_value(reply, i);
            printf("%s", i ? "," : "");
            s_json_str(k, strlen(k));
            putchar(':');
            //  names and text stay strings whatever they hold (a node
            //  named "42"); the counters and health bits are typed
            static const char *text[] = {"node_id",   "name",  "channel",
                                         "version",   "mode",  "socket",
                                         "health",    "added", "removed",
                                         "truncated", "curve", "curve_key"};
            bool is_text = false;
            for (size_t t = 0; t < sizeof text / sizeof text[0]; t++) {
                is_text |= strcmp(k, text[t]) == 0;
            }
            char *end;
            strtoull(v, &end, 10);
            bool number = *v && !*end && (*v != '0' || !v[1]);
            if (!is_text &&
                (number || !strcmp(v, "true") || !strcmp(v, "false"))) {
                printf("%s", v);
            } else {
                s_json_str(v, strlen(v));
            }
        }
        printf("}\n");
        return 0;
    }
    int rc = 0;
    size_t printed = 0;
    printf("%s", kind == R_NUMSUB ? "" : "[");
    for (size_t i = 0; i < rc_reply_size(reply); i++) {
        const char *k = rc_reply_key(reply, i), *v = rc_reply_value(reply, i);
        if (strcmp(k, "truncated") == 0) {
            fprintf(stderr, "roomcastctl: the sidecar left rows out: %s\n", v);
            continue;
        }
        if (kind == R_NUMSUB && printed) {
            break;
        }
        printf("%s", printed ? "," : "");
        if (!s_json_row(kind, k, v)) {
            //  an object still, so the output stays JSON
            printf("{\"unparsed_key\":");
            s_json_str(k, strlen(k));
            printf(",\"unparsed\":");
            s_json_str(v, strlen(v));
            printf("}");
            fprintf(stderr,
                    "roomcastctl: cannot read the sidecar's row "
                    "'%s': %s\n",
                    k, v);
            rc = 1;
        }
        printed++;
    }
    printf("%s\n", kind == R_NUMSUB ? "" : "]");
    return rc;
}

static int s_query(const opts_t *o, const char *what, const char *arg,
                   rows_kind_t kind)
{
    rc_client_t *c = s_connect(o);
    if (!c) {
        return 1;
    }
    rc_reply_t *reply;
    if (rc_query(c, what, arg, &reply,
                 o->timeout_ms > 0 ? o->timeout_ms : 5000)) {
        s_fail(what);
        rc_close(&c);
        return 1;
    }
    int rc = 0;
    if (o->json) {
        rc = s_print_json(kind, reply);
    } else {
        size_t width = 0;
        for (size_t i = 0; i < rc_reply_size(reply); i++) {
            size_t w = strlen(rc_reply_key(reply, i));
            width = w > width ? w : width;
        }
        for (size_t i = 0; i < rc_reply_size(reply); i++) {
            char key[600];
            snprintf(key, sizeof key, "%s", rc_reply_key(reply, i));
            for (char *p = key; *p; p++) {
                *p = *p == '\t' ? ' ' : *p; // "ns<tab>topic" reads as two words
            }
            printf("%-*s  %s\n", (int)width, key, rc_reply_value(reply, i));
        }
    }
    rc_reply_destroy(&reply);
    rc_close(&c);
    return rc;
}

static int s_publish(const opts_t *o, const char *topic, const char *data)
{
    char *buf = NULL;
    size_t len = 0;
    if (strcmp(data, "-") == 0) {
        FILE *mem = open_memstream(&buf, &len);
        char chunk[65536];
        size_t n;
        while (mem && (n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
            fwrite(chunk, 1, n, mem);
        }
        if (mem) {
            fclose(mem);
        }
        data = buf ? buf : "";
    } else {
        len = strlen(data);
    }
    rc_client_t *c = s_connect(o);
    int rc = 1;
    if (c) {
        //  The sidecar answers frames in order: once a query sent after
        //  the PUB is answered, any refusal of the PUB has come in.
        rc_reply_t *barrier = NULL;
        int timeout = o->timeout_ms > 0 ? o->timeout_ms : 5000;
        if (rc_publish(c, o->ns, topic, data, len,
                       o->binary ? RC_BINARY : RC_TEXT) ||
            rc_flush(c, timeout) ||
            rc_query(c, "status", "", &barrier, timeout) || *s_refusal) {
            s_fail("publish");
        } else {
            rc = 0;
            if (o->json) {
                printf("{\"namespace\":");
                s_json_str(o->ns, strlen(o->ns));
                printf(",\"topic\":");
                s_json_str(topic, strlen(topic));
                printf(",\"kind\":\"%s\",\"bytes\":%zu}\n",
                       o->binary ? "binary" : "text", len);
            }
        }
        rc_reply_destroy(&barrier);
        rc_close(&c);
    }
    free(buf);
    return rc;
}

static void s_print_msg(const opts_t *o, const rc_msg_t *m)
{
    const char *data = rc_msg_data(m);
    size_t size = rc_msg_size(m);
    if (o->json) {
        printf("{\"namespace\":");
        s_json_str(rc_msg_namespace(m), strlen(rc_msg_namespace(m)));
        printf(",\"topic\":");
        s_json_str(rc_msg_topic(m), strlen(rc_msg_topic(m)));
        printf(",\"kind\":\"%s\",\"origin\":\"%s\",\"seq\":%llu,\"data\":",
               rc_msg_is_binary(m) ? "binary" : "text", rc_msg_origin(m),
               (unsigned long long)rc_msg_sequence(m));
        if (rc_msg_is_binary(m)) {
            size_t b64len =
                sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_ORIGINAL);
            char *b64 = malloc(b64len);
            if (b64) {
                sodium_bin2base64(b64, b64len, (const unsigned char *)data,
                                  size, sodium_base64_VARIANT_ORIGINAL);
                printf("\"%s\"", b64);
                free(b64);
            }
        } else {
            s_json_str(data, size);
        }
        printf("}\n");
    } else if (rc_msg_is_binary(m)) {
        printf("%s\t[binary, %zu bytes]\n", rc_msg_topic(m), size);
    } else {
        printf("%s\t%.*s\n", rc_msg_topic(m), (int)size, data);
    }
    fflush(stdout);
}

static int s_subscribe(const opts_t *o, char **topics, int ntopics)
{
    rc_client_t *c = s_connect(o);
    if (!c) {
        return 1;
    }
    for (int i = 0; i < ntopics; i++) {
        if (rc_subscribe_wait(c, o->ns, topics[i], 5000)) {
            fprintf(stderr, "roomcastctl: subscribe %s: %s\n", topics[i],
                    rc_strerror(errno));
            rc_close(&c);
            return 1;
        }
    }
    signal(SIGINT, s_on_sigint);
    signal(SIGTERM, s_on_sigint);
    long seen = 0;
    int waited = 0;
    while (!s_interrupted && (o->count <= 0 || seen < o->count)) {
        rc_msg_t *m;
        if (rc_recv(c, &m, 200) == 0) {
            s_print_msg(o, m);
            rc_msg_destroy(&m);
            seen++;
        } else if (o->timeout_ms > 0 && (waited += 200) >= o->timeout_ms) {
            break;
        }
    }
    rc_close(&c);
    return o->count > 0 && seen < o->count && !s_interrupted ? 3 : 0;
}

int main(int argc, char **argv)
{
    opts_t o = {.ns = "default", .timeout_ms = -1};
    //  "keygen --curve FILE": --curve belongs to the command, not to us
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "keygen") == 0 &&
            strcmp(argv[i + 1], "--curve") == 0) {
            argv[i + 1] = "curve:";
        }
    }
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"namespace", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"binary", no_argument, NULL, 'b'},
        {"count", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "s:n:jbc:t:hV", longopts, NULL)) !=
           -1) {
        switch (ch) {
            case 's':
                o.socket = optarg;
                break;
            case 'n':
                o.ns = optarg;
                break;
            case 'j':
                o.json = true;
                break;
            case 'b':
                o.binary = true;
                break;
            case 'c':
                o.count = strtol(optarg, NULL, 10);
                break;
            case 't':
                o.timeout_ms = atoi(optarg);
                break;
            case 'h':
                s_usage(stdout);
                return 0;
            case 'V':
                printf("roomcastctl %s\n", ROOMCAST_VERSION_STRING);
                return 0;
            default:
                s_usage(stderr);
                return 2;
        }
    }
    if (sodium_init() < 0) {
        return 1;
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs < 1) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = args[0];
    char arg[600];
    if (strcmp(cmd, "status") == 0 && nargs == 1) {
        return s_query(&o, "status", "", R_OBJECT);
    }
    if (strcmp(cmd, "clients") == 0 && nargs == 1) {
        return s_query(&o, "clients", "", R_CLIENTS);
    }
    if (strcmp(cmd, "topics") == 0 && nargs <= 2) {
        return s_query(&o, "topics", nargs == 2 ? args[1] : "", R_TOPICS);
    }
    if (strcmp(cmd, "numsub") == 0 && nargs == 2) {
        snprintf(arg, sizeof arg, "%s\t%s", o.ns, args[1]);
        return s_query(&o, "numsub", arg, R_NUMSUB);
    }
    if (strcmp(cmd, "publish") == 0 && nargs == 3) {
        return s_publish(&o, args[1], args[2]);
    }
    if (strcmp(cmd, "peers") == 0 && nargs == 1) {
        return s_query(&o, "peers", "", R_PEERS);
    }
    if (strcmp(cmd, "presence") == 0 && nargs == 2) {
        snprintf(arg, sizeof arg, "%s\t%s", o.ns, args[1]);
        return s_query(&o, "presence", arg, R_PRESENCE);
    }
    if (strcmp(cmd, "members") == 0 && nargs == 1) {
        return s_query(&o, "members", "", R_MEMBERS);
    }
    if (strcmp(cmd, "peer") == 0 && nargs == 3 &&
        (strcmp(args[1], "add") == 0 || strcmp(args[1], "remove") == 0)) {
        return s_query(&o,
                       strcmp(args[1], "add") == 0 ? "peer-add" : "peer-remove",
                       args[2], R_OBJECT);
    }
    if (strcmp(cmd, "keygen") == 0 && nargs == 3 &&
        strcmp(args[1], "curve:") == 0) {
        char err[512];
        if (curve_generate(args[2], err, sizeof err)) {
            fprintf(stderr, "roomcastctl: keygen --curve: %s\n", err);
            return 1;
        }
        if (o.json) {
            printf("{\"public\":");
            s_json_str(args[2], strlen(args[2]));
            printf(",\"secret\":");
            char secret[600];
            snprintf(secret, sizeof secret, "%s_secret", args[2]);
            s_json_str(secret, strlen(secret));
            printf("}\n");
            return 0;
        }
        printf("wrote a CurveZMQ key pair: %s (public, share it) and "
               "%s_secret (mode 0600, give it to --curve-cert)\n",
               args[2], args[2]);
        return 0;
    }
    if (strcmp(cmd, "keygen") == 0 && nargs == 2) {
        char err[512];
        if (keyring_generate_file(args[1], err, sizeof err)) {
            fprintf(stderr, "roomcastctl: keygen: %s\n", err);
            return 1;
        }
        if (o.json) {
            printf("{\"key_file\":");
            s_json_str(args[1], strlen(args[1]));
            printf("}\n");
            return 0;
        }
        printf("wrote a new cluster key to %s (mode 0600); give the same "
               "file to every sidecar of the cluster (--key-file)\n",
               args[1]);
        return 0;
    }
    if (strcmp(cmd, "subscribe") == 0 && nargs >= 2) {
        return s_subscribe(&o, args + 1, nargs - 1);
    }
    fprintf(stderr,
            "roomcastctl: unknown command or wrong arguments: %s "
            "(see --help)\n",
            cmd);
    return 2;
}
