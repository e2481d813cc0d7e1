/*  chaos core: see chaos.h. */
#include "chaos.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESUME_MS   20000
#define MAX_REPORTS 20 // detailed lines per kind of violation

int ch_failures;

// --- failures and logs -------------------------------------------------------

#define MAX_LOGS 64
static struct {
    char path[300];
    char label[64];
} s_logs[MAX_LOGS];
static int s_nlogs;

void ch_track_log(const rcd_t *d, const char *label)
{
    for (int i = 0; i < s_nlogs; i++) {
        if (strcmp(s_logs[i].path, d->log) == 0) {
            return;
        }
    }
    if (s_nlogs < MAX_LOGS) {
        snprintf(s_logs[s_nlogs].path, sizeof s_logs[0].path, "%s", d->log);
        snprintf(s_logs[s_nlogs].label, sizeof s_logs[0].label, "%s", label);
        s_nlogs++;
    }
}

void ch_save_logs(void)
{
    const char *dir = getenv("CHAOS_LOGDIR");
    if (!dir || !*dir) {
        return;
    }
    mkdir(dir, 0755);
    for (int i = 0; i < s_nlogs; i++) {
        FILE *in = fopen(s_logs[i].path, "r");
        if (!in) {
            continue;
        }
        char out_path[600];
        snprintf(out_path, sizeof out_path, "%s/%s.log", dir, s_logs[i].label);
        FILE *out = fopen(out_path, "w");
        char buf[8192];
        size_t n;
        while (out && (n = fread(buf, 1, sizeof buf, in)) > 0) {
            fwrite(buf, 1, n, out);
        }
        if (out) {
            fclose(out);
        }
        fclose(in);
    }
    fprintf(stderr, "chaos: sidecar logs saved in %s\n", dir);
}

void ch_fail(const char *file, int line, const char *expr, bool fatal,
             const char *fmt, ...)
{
    ch_failures++;
    fprintf(stderr, "CHECK FAILED %s:%d: %s: ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (fatal) {
        ch_save_logs();
        fprintf(stderr, "chaos: stopping here\n");
        exit(1); // the harness kills the sidecars at exit
    }
}

// --- small helpers
// -------------------------------------------------------------

static uint64_t s_state = 88172645463325252ULL;

void ch_seed(uint64_t seed)
{
    s_state = seed ? seed : 88172645463325252ULL;
}

uint64_t ch_rand(void)
{
    s_state ^= s_state >> 12;
    s_state ^= s_state << 25;
    s_state ^= s_state >> 27;
    return s_state * 2685821657736338717ULL;
}

int ch_rand_between(int lo, int hi)
{
    return hi <= lo ? lo : lo + (int)(ch_rand() % (uint64_t)(hi - lo + 1));
}

long ch_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

int ch_open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        n += e->d_name[0] != '.';
    }
    if (d) {
        closedir(d);
    }
    return d ? n : -1;
}

bool ch_node_id(const char *socket, char out[CH_HEX])
{
    rc_client_t *c = rc_connect(socket, NULL);
    if (!c) {
        return false;
    }
    snprintf(out, CH_HEX, "%s", rc_node_id(c));
    rc_close(&c);
    return *out != 0;
}

bool ch_member_state(const char *socket, const char *node, char *state,
                     size_t size, unsigned long long *incarnation)
{
    rc_client_t *c = rc_connect(socket, NULL);
    rc_reply_t *r;
    bool ok = false;
    *state = 0;
    if (c && rc_query(c, "members", "", &r, 3000) == 0) {
        ok = true;
        for (size_t k = 0; k < rc_reply_size(r); k++) {
            if (strcmp(rc_reply_key(r, k), node) != 0) {
                continue;
            }
            const char *v = rc_reply_value(r, k);
            const char *s = strstr(v, "state=");
            const char *inc = strstr(v, "incarnation=");
            if (s) {
                size_t n = strcspn(s + 6, " ");
                snprintf(state, size, "%.*s", (int)n, s + 6);
            }
            if (inc && incarnation) {
                *incarnation = strtoull(inc + 12, NULL, 10);
            }
        }
        rc_reply_destroy(&r);
    }
    rc_close(&c);
    return ok;
}

bool ch_peer_live(const char *socket, const char *node)
{
    rc_client_t *c = rc_connect(socket, NULL);
    rc_reply_t *r;
    bool live = false;
    if (c && rc_query(c, "peers", "", &r, 3000) == 0) {
        for (size_t k = 0; k < rc_reply_size(r); k++) {
            const char *v = rc_reply_value(r, k);
            live |= strcmp(rc_reply_key(r, k), node) == 0 &&
                    strstr(v, "state=live ") && strstr(v, "heard_us=true ");
        }
        rc_reply_destroy(&r);
    }
    rc_close(&c);
    return live;
}

int ch_members_in(const char *socket, const char *state)
{
    rc_client_t *c = rc_connect(socket, NULL);
    rc_reply_t *r;
    int n = -1;
    if (c && rc_query(c, "members", "", &r, 3000) == 0) {
        char want[32];
        snprintf(want, sizeof want, "state=%s ", state);
        n = 0;
        for (size_t k = 0; k < rc_reply_size(r); k++) {
            n += strstr(rc_reply_value(r, k), want) != NULL;
        }
        rc_reply_destroy(&r);
    }
    rc_close(&c);
    return n;
}

static bool s_bit(const ch_bits_t *b, uint64_t i)
{
    return i / 8 < b->nbytes && (b->bits[i / 8] >> (i % 8)) & 1;
}

static void s_set_bit(ch_bits_t *b, uint64_t i)
{
    if (i / 8 >= b->nbytes) {
        size_t n = b->nbytes ? b->nbytes : 256;
        while (i / 8 >= n) {
            n *= 2;
        }
        uint8_t *bits = realloc(b->bits, n);
        REQUIRE(bits, "out of memory");
        memset(bits + b->nbytes, 0, n - b->nbytes);
        b->bits = bits;
        b->nbytes = n;
    }
    b->bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static ch_rx_t *s_rx(ch_cluster_t *cl, int app, int stream)
{
    return &cl->rx[(size_t)app * (size_t)cl->nstreams + (size_t)stream];
}

static long long s_ms(ch_cluster_t *cl)
{
    return now_ms() - cl->t0;
}

// --- the cluster
// -----------------------------------------------------------------

static void s_args(ch_cluster_t *cl, int i, const char *const *extra_args)
{
    const char **a = cl->extra[i];
    char(*b)[80] = cl->argbuf[i];
    int n = 0, nb = 0;
    snprintf(b[nb], 80, "tcp://127.0.0.1:%d", cl->dport[i]);
    a[n++] = "--bind";
    a[n++] = b[nb++];
    snprintf(b[nb], 80, "127.0.0.1:%d", cl->gport[i]);
    a[n++] = "--gossip";
    a[n++] = b[nb++];
    for (int j = 0; j < cl->n; j++) {
        if (j != i) {
            snprintf(b[nb], 80, "127.0.0.1:%d", cl->gport[j]);
            a[n++] = "--join";
            a[n++] = b[nb++];
        }
    }
    snprintf(b[nb], 80, "node%d", i);
    a[n++] = "--name";
    a[n++] = b[nb++];
    a[n++] = "--key-file";
    a[n++] = cl->key;
    //  the suite's fast timings (test_gossip.c): a dead member is found in
    //  about 2 s
    a[n++] = "--heartbeat";
    a[n++] = "100";
    a[n++] = "--probe-interval";
    a[n++] = "200";
    a[n++] = "--probe-timeout";
    a[n++] = "100";
    a[n++] = "--pushpull-interval";
    a[n++] = "1000";
    a[n++] = "--log-level";
    a[n++] = "info";
    //  the repair ring (sent envelopes kept for peers that miss some) at a
    //  known bound, which the memory checks count in (64 MiB by default)
    a[n++] = "--repair-buffer";
    a[n++] = CH_REPAIR_KIB_ARG;
    for (int k = 0; extra_args && extra_args[k] && n < 62; k++) {
        a[n++] = extra_args[k];
    }
    a[n] = NULL;
}

static bool s_converged(void *arg)
{
    ch_cluster_t *cl = arg;
    for (int i = 0; i < cl->n; i++) {
        if (ch_members_in(cl->d[i].socket, "alive") != cl->n ||
            sidecar_counter(cl->d[i].socket, "live_peers") != cl->n - 1) {
            return false;
        }
    }
    return true;
}

//  A port free for TCP and UDP on 127.0.0.1, below the kernel's ephemeral
//  range (ip_local_port_range), so that while a killed sidecar is down no
//  outgoing connection (its peers reconnecting to it) can take its port.
static bool s_free(int type, int port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static int s_low_port(ch_cluster_t *cl)
{
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1) {
            lo = 32768;
        }
        fclose(f);
    }
    int base = lo > 12000 ? lo - 10000 : 2000; // [base, lo)
    int span = lo - base;
    static unsigned salt;
    unsigned r =
        (unsigned)getpid() * 2654435761u + (unsigned)now_ms() + salt++ * 40503u;
    for (int tries = 0; tries < 4 * span; tries++) {
        int port = base + (int)((r + (unsigned)tries * 7919u) % (unsigned)span);
        bool taken = false;
        for (int i = 0; i < CH_MAX_SC; i++) {
            taken |= cl->gport[i] == port || cl->dport[i] == port;
        }
        if (!taken && s_free(SOCK_STREAM, port) && s_free(SOCK_DGRAM, port)) {
            return port;
        }
    }
    REQUIRE(false, "no free port below %d", lo);
    return -1;
}

void ch_cluster_start(ch_cluster_t *cl, int n, const char *channel,
                      const char *const *extra_args)
{
    REQUIRE(n <= CH_MAX_SC, "too many sidecars");
    cl->n = n;
    cl->channel = channel;
    cl->t0 = now_ms();
    cl->stall_ms = 15000;
    cl->sample_ms = 1000;
    snprintf(cl->key, sizeof cl->key, "/tmp/roomcast-chaos-key-%d",
             (int)getpid());
    REQUIRE(write_key(cl->key) == 0, "cannot write the key");
    for (int i = 0; i < n; i++) {
        cl->gport[i] = s_low_port(cl);
        cl->dport[i] = s_low_port(cl);
    }
    for (int i = 0; i < n; i++) {
        s_args(cl, i, extra_args);
        REQUIRE(rcd_start(&cl->d[i], channel, cl->extra[i]) == 0,
                "sidecar %d did not start", i);
        char label[32];
        snprintf(label, sizeof label, "node%d", i);
        ch_track_log(&cl->d[i], label);
        cl->up[i] = true;
        REQUIRE(ch_node_id(cl->d[i].socket, cl->node[i]), "node id of %d", i);
        cl->sc[i].rss_start_kb = ch_rss_kb(cl->d[i].pid);
    }
    REQUIRE(wait_for(s_converged, cl, NULL, 30000),
            "%d sidecars did not see each other within 30 s", n);
}

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg);

void ch_apps_start(ch_cluster_t *cl, int apps_per, int ntopics, int rate)
{
    REQUIRE(cl->n * apps_per <= CH_MAX_APPS && ntopics <= CH_MAX_TOPICS,
            "too many apps or topics");
    cl->apps_per = apps_per;
    cl->ntopics = ntopics;
    cl->rate = rate;
    cl->napps = cl->n * apps_per;
    cl->nstreams = cl->napps * ntopics;
    cl->rx = calloc((size_t)cl->napps * (size_t)cl->nstreams, sizeof *cl->rx);
    REQUIRE(cl->rx, "out of memory");
    for (int s = 0; s < cl->nstreams; s++) {
        cl->streams[s].app = s / ntopics;
        cl->streams[s].topic = s % ntopics;
    }
    for (int a = 0; a < cl->napps; a++) {
        ch_app_t *app = &cl->apps[a];
        app->cl = cl;
        app->idx = a;
        app->sc = a / apps_per;
        rc_options_t o;
        rc_options_init(&o);
        char name[32];
        snprintf(name, sizeof name, "chaos-app%d", a);
        o.name = name;
        o.on_message = s_on_message;
        o.arg = app;
        app->c = rcd_client(&cl->d[app->sc], &o);
        REQUIRE(app->c, "app %d cannot connect: %s", a, rc_strerror(errno));
        snprintf(app->inst, sizeof app->inst, "%s", rc_instance_id(app->c));
    }
    for (int a = 0; a < cl->napps; a++) {
        for (int t = 0; t < ntopics; t++) {
            char topic[16];
            snprintf(topic, sizeof topic, "t%d", t);
            REQUIRE(rc_subscribe_wait(cl->apps[a].c, "chaos", topic, 20000) ==
                        0,
                    "app %d: subscribe %s: %s", a, topic, rc_strerror(errno));
        }
    }
    long long now = now_ms();
    for (int a = 0; a < cl->napps; a++) {
        //  spread the apps' ticks over one period
        cl->apps[a].next_pub = now + (1000 * a) / (rate * cl->napps + 1);
    }
    cl->publishing = true;
    cl->next_stall_check = now + 1000;
}

// --- receiving
// ------------------------------------------------------------------------

static int s_app_of(ch_cluster_t *cl, const char *inst)
{
    for (int a = 0; a < cl->napps; a++) {
        if (strcmp(cl->apps[a].inst, inst) == 0) {
            return a;
        }
    }
    return -1;
}

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    ch_app_t *app = arg;
    ch_cluster_t *cl = app->cl;
    app->received++;
    cl->delivered++;
    int p = s_app_of(cl, rc_msg_origin(m));
    const char *topic = rc_msg_topic(m);
    int t = topic[0] == 't' ? atoi(topic + 1) : -1;
    if (p < 0 || t < 0 || t >= cl->ntopics) {
        cl->unknown++;
        return;
    }
    int si = p * cl->ntopics + t;
    ch_stream_t *st = &cl->streams[si];
    uint64_t s = rc_msg_sequence(m);
    //  the payload names the sequence the publisher expected
    char expect[64];
    int elen =
        snprintf(expect, sizeof expect, "a%d t%d s%" PRIu64 " ", p, t, s);
    if (rc_msg_size(m) < (size_t)elen ||
        memcmp(rc_msg_data(m), expect, (size_t)elen) != 0 || s == 0 ||
        s > st->seq) {
        if (cl->corrupt++ < MAX_REPORTS) {
            fprintf(stderr,
                    "chaos: app %d got a message that does not match "
                    "its sequence: origin app %d topic %d seq %" PRIu64
                    " (published up to %" PRIu64 "), payload '%.*s'\n",
                    app->idx, p, t, s, st->seq,
                    (int)(rc_msg_size(m) < 40 ? rc_msg_size(m) : 40),
                    (const char *)rc_msg_data(m));
        }
        return;
    }
    ch_rx_t *rx = s_rx(cl, app->idx, si);
    if (s_bit(&rx->seen, s)) {
        if (cl->duplicates++ < MAX_REPORTS) {
            fprintf(stderr,
                    "chaos: DUPLICATE app %d (node%d) got app %d "
                    "(node%d) t%d seq %" PRIu64 " twice (at %lld ms)\n",
                    app->idx, app->sc, p, cl->apps[p].sc, t, s, s_ms(cl));
        }
        return;
    }
    s_set_bit(&rx->seen, s);
    const char *rnode = rc_node_id(c);
    const char *onode = rc_msg_origin_node(m);
    if (strcmp(rx->onode, onode) != 0 || strcmp(rx->rnode, rnode) != 0) {
        //  a new pair of incarnations: a new stretch; what the last one
        //  did not get is excused, but for what a stall counted as lost
        uint64_t floor =
            rx->counted_upto > rx->last ? rx->counted_upto : rx->last;
        if (s > floor + 1) {
            cl->excused += s - floor - 1;
        }
        snprintf(rx->onode, sizeof rx->onode, "%s", onode);
        snprintf(rx->rnode, sizeof rx->rnode, "%s", rnode);
        rx->first = s;
        rx->since = now_ms();
        rx->stalled = false;
    } else if (s > rx->last + 1) {
        uint64_t from = rx->last + 1, to = s - 1; // missing, inclusive
        if (rx->counted_upto >= from) { // a stall counted these already
            from = rx->counted_upto + 1;
        }
        uint64_t strict_from =
            rx->excuse_upto + 1 > from ? rx->excuse_upto + 1 : from;
        uint64_t strict =
            rx->suspended || strict_from > to ? 0 : to - strict_from + 1;
        cl->excused += from <= to ? (to - from + 1) - strict : 0;
        if (strict) {
            cl->lost += strict;
            if (cl->lost_reports++ < MAX_REPORTS) {
                fprintf(stderr,
                        "chaos: LOSS app %d (node%d) missed %" PRIu64
                        " message(s) of app %d (node%d) t%d: seq %" PRIu64
                        "..%" PRIu64 " (got %" PRIu64 " at %lld ms; both "
                        "sidecars up in the same incarnation)\n",
                        app->idx, app->sc, strict, p, cl->apps[p].sc, t,
                        strict_from, to, s, s_ms(cl));
            }
        }
    } else if (s < rx->last) {
        if (cl->reorders++ < MAX_REPORTS) {
            fprintf(stderr,
                    "chaos: REORDER app %d got app %d t%d seq %" PRIu64
                    " after %" PRIu64 "\n",
                    app->idx, p, t, s, rx->last);
        }
    }
    if (s > rx->last) {
        rx->last = s;
    }
}

// --- publishing
// -------------------------------------------------------------------------

static void s_record(ch_cluster_t *cl, ch_stream_t *st)
{
    st->seq++;
    if (st->seq >= st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4096;
        uint32_t *w = realloc(st->when, cap * sizeof *w);
        REQUIRE(w, "out of memory");
        st->when = w;
        st->cap = cap;
    }
    st->when[st->seq] = (uint32_t)s_ms(cl);
}

static void s_publish_one(ch_cluster_t *cl, ch_app_t *app)
{
    int t = app->next_topic;
    app->next_topic = (t + 1) % cl->ntopics;
    ch_stream_t *st = &cl->streams[app->idx * cl->ntopics + t];
    char topic[16], data[128];
    snprintf(topic, sizeof topic, "t%d", t);
    //  64 bytes: "a<app> t<topic> s<seq> " then filler
    int len = snprintf(data, sizeof data, "a%d t%d s%" PRIu64 " ", app->idx, t,
                       st->seq + 1);
    while (len < 64) {
        data[len++] = 'x';
    }
    rc_state_t before = rc_state(app->c);
    if (rc_publish(app->c, "chaos", topic, data, (size_t)len, RC_TEXT) == 0) {
        s_record(cl, st);
        cl->published++;
        return;
    }
    int err = errno;
    //  the library used the sequence when the write itself failed (the
    //  sidecar died under it): keep counting with it
    if (before == RC_CONNECTED && err == ENOTCONN &&
        rc_state(app->c) != RC_CONNECTED) {
        s_record(cl, st);
    }
    app->refused++;
    cl->refused++;
}

static void s_publish_due(ch_cluster_t *cl)
{
    if (!cl->publishing || cl->rate <= 0) {
        return;
    }
    long long now = now_ms();
    long long period = 1000 / cl->rate > 0 ? 1000 / cl->rate : 1;
    for (int a = 0; a < cl->napps; a++) {
        ch_app_t *app = &cl->apps[a];
        if (now - app->next_pub > 1000) {
            app->next_pub = now; // do not burst after a stall of the loop
        }
        while (app->next_pub <= now) {
            s_publish_one(cl, app);
            app->next_pub += period;
        }
    }
}

// --- stalls
// ------------------------------------------------------------------------------

static bool s_pair_live(ch_cluster_t *cl, const ch_rx_t *rx, int recv_sc,
                        int pub_sc)
{
    return cl->up[recv_sc] && cl->up[pub_sc] && !cl->paused[recv_sc] &&
           !cl->paused[pub_sc] && !rx->suspended &&
           strcmp(rx->onode, cl->node[pub_sc]) == 0 &&
           strcmp(rx->rnode, cl->node[recv_sc]) == 0;
}

//  Highest sequence of st published at or before ms (since t0).
static uint64_t s_published_by(const ch_stream_t *st, long long ms)
{
    uint64_t lo = 0, hi = st->seq;
    while (lo < hi) {
        uint64_t mid = (lo + hi + 1) / 2;
        if ((long long)st->when[mid] <= ms) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

static void s_check_stalls(ch_cluster_t *cl)
{
    long long cut = s_ms(cl) - cl->stall_ms;
    if (cut <= 0) {
        return;
    }
    for (int a = 0; a < cl->napps; a++) {
        for (int si = 0; si < cl->nstreams; si++) {
            ch_stream_t *st = &cl->streams[si];
            if (st->app == a) {
                continue;
            }
            ch_rx_t *rx = s_rx(cl, a, si);
            if (rx->stalled ||
                !s_pair_live(cl, rx, cl->apps[a].sc, cl->apps[st->app].sc)) {
                continue;
            }
            uint64_t due = s_published_by(st, cut);
            uint64_t floor =
                rx->first > rx->excuse_upto ? rx->first : rx->excuse_upto;
            if (due > floor && due > rx->last) {
                rx->stalled = true;
                cl->stalls++;
                cl->lost += due - rx->last;
                rx->counted_upto = due;
                if (cl->lost_reports++ < MAX_REPORTS) {
                    fprintf(stderr,
                            "chaos: STALL app %d (node%d) has not got "
                            "app %d (node%d) t%d seq %" PRIu64 "..%" PRIu64
                            " published over %d ms ago (at %lld ms), both "
                            "sidecars up in the same incarnation\n",
                            a, cl->apps[a].sc, st->app, cl->apps[st->app].sc,
                            st->topic, rx->last + 1, due, cl->stall_ms,
                            s_ms(cl));
                }
            }
        }
    }
}

// --- sampling
// ------------------------------------------------------------------------------

void ch_sample(ch_cluster_t *cl)
{
    long long now = now_ms();
    long rss[CH_MAX_SC];
    for (int i = 0; i < cl->n; i++) {
        rss[i] = cl->up[i] ? ch_rss_kb(cl->d[i].pid) : 0;
        if (rss[i] > 0) {
            if (cl->sc[i].rss_start_kb <= 0) {
                cl->sc[i].rss_start_kb = rss[i];
            }
            cl->sc[i].rss_end_kb = rss[i];
            if (rss[i] > cl->sc[i].rss_max_kb) {
                cl->sc[i].rss_max_kb = rss[i];
            }
        }
    }
    if (!cl->csv) {
        return;
    }
    //  sidecar counters, current incarnations (through the first app of
    //  each sidecar: its callbacks keep running meanwhile)
    long long env_dup = 0, gaps = 0, missed = 0, live_min = -1;
    for (int i = 0; i < cl->n; i++) {
        ch_app_t *app = &cl->apps[i * cl->apps_per];
        if (!cl->up[i] || cl->paused[i] || !app->c ||
            rc_state(app->c) != RC_CONNECTED) {
            continue;
        }
        rc_reply_t *r;
        if (rc_query(app->c, "status", "", &r, 2000) == 0) {
            for (size_t k = 0; k < rc_reply_size(r); k++) {
                const char *key = rc_reply_key(r, k);
                long long v = atoll(rc_reply_value(r, k));
                if (strcmp(key, "env_duplicates") == 0) {
                    env_dup += v;
                } else if (strcmp(key, "gaps") == 0) {
                    gaps += v;
                } else if (strcmp(key, "missed") == 0) {
                    missed += v;
                } else if (strcmp(key, "live_peers") == 0 &&
                           (live_min < 0 || v < live_min)) {
                    live_min = v;
                }
            }
            rc_reply_destroy(&r);
        }
    }
    double secs =
        cl->last_sample_at ? (double)(now - cl->last_sample_at) / 1000.0 : 0;
    double pub_rate =
        secs > 0 ? (double)(cl->published - cl->last_pub) / secs : 0;
    double del_rate =
        secs > 0 ? (double)(cl->delivered - cl->last_deliv) / secs : 0;
    fprintf(cl->csv, "%.1f", (double)(now - cl->t0) / 1000.0);
    for (int i = 0; i < cl->n; i++) {
        fprintf(cl->csv, ",%ld", rss[i]);
    }
    fprintf(cl->csv,
            ",%" PRIu64 ",%" PRIu64 ",%.0f,%.0f,%d,%" PRIu64 ",%" PRIu64
            ",%" PRIu64 ",%lld,%lld,%lld,%lld\n",
            cl->published, cl->delivered, pub_rate, del_rate,
            cl->restarts_total, cl->duplicates, cl->lost, cl->excused, env_dup,
            gaps, missed, live_min);
    fflush(cl->csv);
    cl->last_pub = cl->published;
    cl->last_deliv = cl->delivered;
    cl->last_sample_at = now;
}

// --- the loop
// --------------------------------------------------------------------------------

void ch_pump(ch_cluster_t *cl, int timeout_ms)
{
    struct pollfd pfds[CH_MAX_APPS];
    int n = 0;
    for (int a = 0; a < cl->napps; a++) {
        pfds[n++] =
            (struct pollfd){.fd = rc_fd(cl->apps[a].c), .events = POLLIN};
    }
    long long now = now_ms();
    int wait = timeout_ms;
    if (cl->publishing) {
        for (int a = 0; a < cl->napps; a++) {
            long long until = cl->apps[a].next_pub - now;
            if (until < wait) {
                wait = until < 0 ? 0 : (int)until;
            }
        }
    }
    poll(pfds, (nfds_t)n, wait);
    for (int a = 0; a < cl->napps; a++) {
        rc_dispatch(cl->apps[a].c);
    }
    s_publish_due(cl);
    now = now_ms();
    if (now >= cl->next_stall_check) {
        //  whatever is readable now is read before judging
        for (int a = 0; a < cl->napps; a++) {
            rc_dispatch(cl->apps[a].c);
        }
        s_check_stalls(cl);
        cl->next_stall_check = now + 1000;
    }
    if (cl->sample_ms > 0 && now >= cl->next_sample) {
        ch_sample(cl);
        cl->next_sample = now + cl->sample_ms;
    }
}

bool ch_pump_until(ch_cluster_t *cl, bool (*cond)(ch_cluster_t *, void *),
                   void *arg, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    while (!cond(cl, arg)) {
        if (now_ms() >= deadline) {
            return cond(cl, arg);
        }
        ch_pump(cl, 5);
    }
    return true;
}

// --- faults
// ---------------------------------------------------------------------------------

void ch_kill(ch_cluster_t *cl, int i)
{
    //  last memory reading of this incarnation
    long rss = ch_rss_kb(cl->d[i].pid);
    if (rss > cl->sc[i].rss_max_kb) {
        cl->sc[i].rss_max_kb = rss;
    }
    //  a stalled stretch through it ends here: what was published until
    //  now and never arrived is lost
    for (int a = 0; a < cl->napps; a++) {
        for (int si = 0; si < cl->nstreams; si++) {
            ch_stream_t *st = &cl->streams[si];
            ch_rx_t *rx = s_rx(cl, a, si);
            if (!rx->stalled ||
                (cl->apps[a].sc != i && cl->apps[st->app].sc != i)) {
                continue;
            }
            if (st->seq > rx->counted_upto) {
                cl->lost += st->seq - rx->counted_upto;
                rx->counted_upto = st->seq;
            }
            rx->stalled = false;
        }
    }
    int rc = rcd_stop(&cl->d[i], SIGKILL);
    REQUIRE(rc == 128 + SIGKILL,
            "node%d: kill -9 gave %d (it had died "
            "before?)",
            i, rc);
    cl->up[i] = false;
    cl->node[i][0] = 0;
}

void ch_restart(ch_cluster_t *cl, int i)
{
    REQUIRE(rcd_restart(&cl->d[i], cl->channel, cl->extra[i]) == 0,
            "node%d did not restart", i);
    cl->up[i] = true;
    REQUIRE(ch_node_id(cl->d[i].socket, cl->node[i]), "node id of %d", i);
    cl->sc[i].restarts++;
    cl->restarts_total++;
}

bool ch_resumed(ch_cluster_t *cl, int i, bool print_missing)
{
    bool all = true;
    for (int a = 0; a < cl->napps; a++) {
        for (int si = 0; si < cl->nstreams; si++) {
            int p = cl->streams[si].app;
            int rs = cl->apps[a].sc, ps = cl->apps[p].sc;
            if (p == a || (rs != i && ps != i)) {
                continue;
            }
            ch_rx_t *rx = s_rx(cl, a, si);
            if (strcmp(rx->onode, cl->node[ps]) != 0 ||
                strcmp(rx->rnode, cl->node[rs]) != 0) {
                all = false;
                if (print_missing) {
                    fprintf(stderr,
                            "chaos:   app %d (node%d, %s) has nothing "
                            "yet from app %d (node%d) t%d since the restart "
                            "(last seq %" PRIu64 " of %" PRIu64 ")\n",
                            a, rs, rc_state_name(rc_state(cl->apps[a].c)), p,
                            ps, cl->streams[si].topic, rx->last,
                            cl->streams[si].seq);
                }
            }
        }
    }
    return all;
}

void ch_suspend_pairs(ch_cluster_t *cl, int i)
{
    for (int a = 0; a < cl->napps; a++) {
        for (int si = 0; si < cl->nstreams; si++) {
            int p = cl->streams[si].app;
            if (cl->apps[a].sc == i || cl->apps[p].sc == i) {
                s_rx(cl, a, si)->suspended = true;
            }
        }
    }
}

void ch_excuse_until_now(ch_cluster_t *cl, int i)
{
    for (int a = 0; a < cl->napps; a++) {
        for (int si = 0; si < cl->nstreams; si++) {
            int p = cl->streams[si].app;
            if (cl->apps[a].sc == i || cl->apps[p].sc == i) {
                ch_rx_t *rx = s_rx(cl, a, si);
                rx->suspended = false;
                rx->excuse_upto = cl->streams[si].seq;
                rx->stalled = false;
                //  what arrived meanwhile is the floor for stalls
                rx->first = rx->last;
            }
        }
    }
}

typedef struct {
    uint64_t missing;
} drain_t;

static bool s_drained(ch_cluster_t *cl, void *arg)
{
    drain_t *d = arg;
    d->missing = 0;
    for (int a = 0; a < cl->napps; a++) {
        for (int si = 0; si < cl->nstreams; si++) {
            if (cl->streams[si].app != a) {
                ch_rx_t *rx = s_rx(cl, a, si);
                d->missing += cl->streams[si].seq - rx->last;
            }
        }
    }
    return d->missing == 0;
}

bool ch_drain(ch_cluster_t *cl, int timeout_ms)
{
    cl->publishing = false;
    for (int a = 0; a < cl->napps; a++) {
        if (rc_flush(cl->apps[a].c, 5000)) {
            fprintf(stderr, "chaos: app %d: flush: %s\n", a,
                    rc_strerror(errno));
        }
    }
    drain_t d = {0};
    bool ok = ch_pump_until(cl, s_drained, &d, timeout_ms);
    if (!ok) {
        for (int a = 0; a < cl->napps; a++) {
            for (int si = 0; si < cl->nstreams; si++) {
                ch_stream_t *st = &cl->streams[si];
                ch_rx_t *rx = s_rx(cl, a, si);
                if (st->app == a || rx->last == st->seq) {
                    continue;
                }
                uint64_t floor =
                    rx->counted_upto > rx->last ? rx->counted_upto : rx->last;
                cl->lost += st->seq > floor ? st->seq - floor : 0;
                if (cl->lost_reports++ < MAX_REPORTS) {
                    fprintf(stderr,
                            "chaos: TAIL app %d (node%d) never got "
                            "app %d (node%d) t%d seq %" PRIu64 "..%" PRIu64
                            "\n",
                            a, cl->apps[a].sc, st->app, cl->apps[st->app].sc,
                            st->topic, rx->last + 1, st->seq);
                }
            }
        }
    }
    return ok;
}

void ch_apps_close(ch_cluster_t *cl)
{
    for (int a = 0; a < cl->napps; a++) {
        rc_close(&cl->apps[a].c);
    }
}

void ch_cluster_stop(ch_cluster_t *cl)
{
    for (int i = 0; i < cl->n; i++) {
        if (cl->d[i].pid > 0) {
            long rss = ch_rss_kb(cl->d[i].pid);
            if (rss > 0) {
                cl->sc[i].rss_end_kb = rss;
            }
            if (cl->paused[i]) {
                kill(cl->d[i].pid, SIGCONT);
            }
            int rc = rcd_stop(&cl->d[i], SIGTERM);
            CHECK(rc == 0,
                  "node%d: SIGTERM gave exit status %d (0 expected: "
                  "a clean shutdown%s)",
                  i, rc, getenv("ASAN_OPTIONS") ? ", no leak" : "");
        }
    }
    //  a sanitizer or valgrind report in any incarnation's log fails
    for (int i = 0; i < cl->n; i++) {
        char line[1024];
        int reports = 0;
        FILE *f = fopen(cl->d[i].log, "r");
        while (f && fgets(line, sizeof line, f)) {
            if (strstr(line, "ERROR: AddressSanitizer") ||
                strstr(line, "ERROR: LeakSanitizer") ||
                strstr(line, "runtime error:") ||
                strstr(line, "Invalid read") || strstr(line, "Invalid write")) {
                if (reports++ < 3) {
                    fprintf(stderr, "chaos: node%d: %s", i, line);
                }
            }
        }
        if (f) {
            fclose(f);
        }
        CHECK(reports == 0, "node%d's log has %d memory-error report(s)", i,
              reports);
    }
    if (ch_failures) {
        ch_save_logs();
    }
    for (int i = 0; i < cl->n; i++) {
        rcd_cleanup(&cl->d[i]);
    }
    unlink(cl->key);
}

void ch_report(ch_cluster_t *cl, const char *label)
{
    printf("%s: published %" PRIu64 ", delivered %" PRIu64 " (to %d apps on "
           "%d sidecars), duplicates %" PRIu64 ", reordered %" PRIu64
           ", lost %" PRIu64 " (stalls %" PRIu64 "), lost at restarts "
           "(at-most-once, excused) %" PRIu64 ", corrupt %" PRIu64
           ", unknown %" PRIu64 ", publishes refused while down %" PRIu64 "\n",
           label, cl->published, cl->delivered, cl->napps, cl->n,
           cl->duplicates, cl->reorders, cl->lost, cl->stalls, cl->excused,
           cl->corrupt, cl->unknown, cl->refused);
    for (int i = 0; i < cl->n; i++) {
        printf("%s: node%d rss start %.1f MiB, end %.1f MiB, max %.1f MiB, "
               "restarts %d\n",
               label, i, (double)cl->sc[i].rss_start_kb / 1024.0,
               (double)cl->sc[i].rss_end_kb / 1024.0,
               (double)cl->sc[i].rss_max_kb / 1024.0, cl->sc[i].restarts);
    }
}
