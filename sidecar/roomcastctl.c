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
        "  -j, --json             machine-readable output (one JSON object "
        "per\n"
        "                         line for subscribe)\n"
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

static rc_client_t *s_connect(const opts_t *o)
{
    rc_options_t ro;
    rc_options_init(&ro);
    ro.name = "roomcastctl";
    ro.connect_timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    rc_client_t *c = rc_connect(o->socket, &ro);
    if (!c) {
        const char *path = o->socket ? o->socket : getenv("ROOMCAST_SOCKET");
        fprintf(stderr, "roomcastctl: cannot reach the sidecar at %s: %s\n",
                path && *path ? path : RC_DEFAULT_SOCKET, rc_strerror(errno));
    }
    return c;
}

static int s_query(const opts_t *o, const char *what, const char *arg)
{
    rc_client_t *c = s_connect(o);
    if (!c) {
        return 1;
    }
    rc_reply_t *reply;
    if (rc_query(c, what, arg, &reply,
                 o->timeout_ms > 0 ? o->timeout_ms : 5000)) {
        fprintf(stderr, "roomcastctl: %s: %s\n", what, rc_strerror(errno));
        rc_close(&c);
        return 1;
    }
    if (o->json) {
        printf("{");
        for (size_t i = 0; i < rc_reply_size(reply); i++) {
            const char *k = rc_reply_key(reply, i),
                       *v = rc_reply_value(reply, i);
            printf("%s", i ? "," : "");
            s_json_str(k, strlen(k));
            putchar(':');
            char *end;
            strtoull(v, &end, 10);
            bool number = *v && !*end && (*v != '0' || !v[1]);
            if (number || !strcmp(v, "true") || !strcmp(v, "false")) {
                printf("%s", v);
            } else {
                s_json_str(v, strlen(v));
            }
        }
        printf("}\n");
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
    return 0;
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
        if (rc_publish(c, o->ns, topic, data, len,
                       o->binary ? RC_BINARY : RC_TEXT) ||
            rc_flush(c, o->timeout_ms > 0 ? o->timeout_ms : 5000)) {
            fprintf(stderr, "roomcastctl: publish: %s\n", rc_strerror(errno));
        } else {
            rc = 0;
        }
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
        return s_query(&o, "status", "");
    }
    if (strcmp(cmd, "clients") == 0 && nargs == 1) {
        return s_query(&o, "clients", "");
    }
    if (strcmp(cmd, "topics") == 0 && nargs <= 2) {
        return s_query(&o, "topics", nargs == 2 ? args[1] : "");
    }
    if (strcmp(cmd, "numsub") == 0 && nargs == 2) {
        snprintf(arg, sizeof arg, "%s\t%s", o.ns, args[1]);
        return s_query(&o, "numsub", arg);
    }
    if (strcmp(cmd, "publish") == 0 && nargs == 3) {
        return s_publish(&o, args[1], args[2]);
    }
    if (strcmp(cmd, "peers") == 0 && nargs == 1) {
        return s_query(&o, "peers", "");
    }
    if (strcmp(cmd, "presence") == 0 && nargs == 2) {
        snprintf(arg, sizeof arg, "%s\t%s", o.ns, args[1]);
        return s_query(&o, "presence", arg);
    }
    if (strcmp(cmd, "members") == 0 && nargs == 1) {
        return s_query(&o, "members", "");
    }
    if (strcmp(cmd, "peer") == 0 && nargs == 3 &&
        (strcmp(args[1], "add") == 0 || strcmp(args[1], "remove") == 0)) {
        return s_query(&o,
                       strcmp(args[1], "add") == 0 ? "peer-add" : "peer-remove",
                       args[2]);
    }
    if (strcmp(cmd, "keygen") == 0 && nargs == 3 &&
        strcmp(args[1], "curve:") == 0) {
        char err[512];
        if (curve_generate(args[2], err, sizeof err)) {
            fprintf(stderr, "roomcastctl: keygen --curve: %s\n", err);
            return 1;
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
