/*  gossip: see gossip.h. */
#include "gossip.h"
#include "ids.h"
#include "log.h"
#include "swim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define AD_TAG     "roomcast/gossip/v1"
#define PACKET_MAX 1400 // plaintext; sealed + 40 fits 1472
#define RESOLVE_MS 5000 // re-resolve seeds this often while alone
#define MAX_SEEDS  64
#define WARN_MS    5000 // while not joined, or packets do not open: say so
#define POLL_MS    50   // a seed resolution pending: look this often
#define CHECK_MS   1000 // none pending: warnings, re-resolution, this often

typedef struct {
    char name[256]; // host name or "dns" name
    char port[8];
    bool dns;         // every record, not only the first
    struct gaicb req; // getaddrinfo_a request
    struct addrinfo hints;
    bool pending;
} seed_t;

struct gossip_t {
    loop_t *loop;
    gossip_io_t io;
    uint32_t pushpull_ms; // re-join seeds this often when not alone
    const keyring_t *ring;
    stats_t *stats;
    swim_t *swim;
    int fd;
    int timer; // armed at swim_next_deadline
    int resolve_timer;
    uint64_t resolved_at;     // last resolution started
    uint64_t rejoined_at;     // last time seeds were joined while not alone
    bool alone_when_resolved; // join every seed, or a few
    seed_t seeds[MAX_SEEDS];
    size_t nseeds;
    uint8_t ad[64 + 256];
    size_t ad_len;
    uint64_t started;   // loop ms
    uint64_t warned_at; // last not_joined / undecryptable warning
    uint64_t bad_since; // packets that did not open since that warning
    uint64_t in_since;  // packets received since that warning
    char bad_from[80];  // the last sender of one
};

// --- addresses
// ----------------------------------------------------------------

//  "1.2.3.4:5", "[::1]:5" -> sockaddr. Numeric only. Returns 0 or -1.
static int s_parse_addr(const char *addr, struct sockaddr_storage *out,
                        socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) {
        return -1;
    }
    size_t hlen = (size_t)(colon - addr);
    if (addr[0] == '[' && hlen >= 2 && addr[hlen - 1] == ']') {
        addr++;
        hlen -= 2;
    }
    if (hlen >= sizeof host) {
        return -1;
    }
    memcpy(host, addr, hlen);
    host[hlen] = 0;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_DGRAM};
    struct addrinfo *res;
    if (getaddrinfo(host, colon + 1, &hints, &res)) {
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void s_format_addr(const struct sockaddr *sa, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, size, "%s:%d", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, size, "[%s]:%d", host, port);
    }
}

// --- swim io
// ------------------------------------------------------------------

static void s_send(void *arg, const char *addr, const uint8_t *buf, size_t len)
{
    gossip_t *self = arg;
    struct sockaddr_storage sa;
    socklen_t salen;
    uint8_t sealed[PACKET_MAX + KEYRING_SEAL_OVERHEAD + 64];
    size_t sealed_len;
    if (s_parse_addr(addr, &sa, &salen) ||
        keyring_seal(self->ring, self->ad, self->ad_len, buf, len, sealed,
                     sizeof sealed, &sealed_len)) {
        return;
    }
    if (sendto(self->fd, sealed, sealed_len, MSG_DONTWAIT,
               (struct sockaddr *)&sa, salen) == (ssize_t)sealed_len) {
        self->stats->gossip_out++;
    }
}

bool gossip_other_live(gossip_t *self, const swim_member_t *m, bool by_key)
{
    for (const swim_member_t *o = swim_first(self->swim); o;
         o = swim_next(self->swim)) {
        if (memcmp(o->id, m->id, SWIM_ID_SIZE) == 0 ||
            (o->state != SWIM_ALIVE && o->state != SWIM_SUSPECT)) {
            continue;
        }
        if (by_key ? memcmp(o->pubkey, m->pubkey, SWIM_KEY_SIZE) == 0
                   : strcmp(o->endpoint, m->endpoint) == 0) {
            return true;
        }
    }
    return false;
}

static void s_changed(void *arg, const swim_member_t *m, int old_state)
{
    gossip_t *self = arg;
    if (m->state != old_state) {
        char hex[IDS_HEX_SIZE];
        //  a death is something to look at; joins, suspicion and leaves
        //  are the cluster's normal life
        log_event(m->state == SWIM_DEAD ? LOGL_WARN : LOGL_INFO, "member",
                  "node_id=%s name=%s state=%s was=%s gossip=%s "
                  "endpoint=%s",
                  ids_hex(m->id, hex), m->name, swim_state_name(m->state),
                  swim_state_name(old_state), m->gossip_addr, m->endpoint);
    }
    if (self->io.member) {
        self->io.member(self->io.arg, m, old_state);
    }
}

static uint64_t s_random(void *arg)
{
    (void)arg;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) {
        r = (uint64_t)time(NULL);
    }
    return r;
}

// --- timers and input
// ---------------------------------------------------------

static void s_on_timer(loop_t *loop, int timer_id, void *arg);

static void s_rearm(gossip_t *self)
{
    uint64_t now = loop_clock_ms();
    uint64_t deadline = swim_next_deadline(self->swim);
    loop_cancel_timer(self->loop, self->timer);
    self->timer = 0;
    if (deadline != UINT64_MAX) {
        self->timer =
            loop_add_timer(self->loop, deadline > now ? deadline - now : 0,
                           false, s_on_timer, self);
    }
}

static void s_on_timer(loop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    gossip_t *self = arg;
    self->timer = 0; // fired: a one-shot is gone
    swim_tick(self->swim, loop_clock_ms());
    (void)loop;
    s_rearm(self);
}

static void s_on_packet(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)events;
    gossip_t *self = arg;
    for (int n = 0; n < 256; n++) {
        uint8_t buf[65536], plain[65536];
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        ssize_t len = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT,
                               (struct sockaddr *)&sa, &salen);
        if (len < 0) {
            break;
        }
        self->stats->gossip_in++;
        self->in_since++;
        size_t plain_len;
        if (keyring_open(self->ring, self->ad, self->ad_len, buf, (size_t)len,
                         plain, sizeof plain, &plain_len, NULL)) {
            self->stats->gossip_undecryptable++;
            self->bad_since++;
            s_format_addr((struct sockaddr *)&sa, self->bad_from,
                          sizeof self->bad_from);
            continue;
        }
        char from[80];
        s_format_addr((struct sockaddr *)&sa, from, sizeof from);
        if (swim_recv(self->swim, from, plain, plain_len, loop_clock_ms())) {
            self->stats->gossip_bad++;
        }
    }
    s_rearm(self);
}

// --- seeds
// ----------------------------------------------------------------------

//  "HOST:PORT" or "dns:NAME:PORT" -> a seed. Returns 0 or -1.
static int s_add_seed(gossip_t *self, const char *spec)
{
    if (self->nseeds == MAX_SEEDS) {
        return -1;
    }
    seed_t *s = &self->seeds[self->nseeds];
    memset(s, 0, sizeof *s);
    const char *rest = spec;
    if (strncmp(spec, "dns:", 4) == 0) {
        s->dns = true;
        rest = spec + 4;
    }
    const char *colon = strrchr(rest, ':');
    if (!colon || colon == rest || strlen(colon + 1) >= sizeof s->port ||
        atoi(colon + 1) <= 0 || (size_t)(colon - rest) >= sizeof s->name) {
        return -1;
    }
    size_t hlen = (size_t)(colon - rest);
    if (rest[0] == '[' && hlen > 2 && rest[hlen - 1] == ']') {
        memcpy(s->name, rest + 1, hlen - 2);
    } else {
        memcpy(s->name, rest, hlen);
    }
    snprintf(s->port, sizeof s->port, "%s", colon + 1);
    self->nseeds++;
    return 0;
}

static void s_resolve_start(gossip_t *self)
{
    for (size_t i = 0; i < self->nseeds; i++) {
        seed_t *s = &self->seeds[i];
        if (s->pending) {
            continue;
        }
        s->hints = (struct addrinfo){.ai_socktype = SOCK_DGRAM};
        s->req = (struct gaicb){
            .ar_name = s->name, .ar_service = s->port, .ar_request = &s->hints};
        struct gaicb *list[] = {&s->req};
        if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) == 0) {
            s->pending = true;
        }
    }
}

//  Join every address a finished resolution gave.
static void s_resolve_collect(gossip_t *self)
{
    bool joined_any = false;
    for (size_t i = 0; i < self->nseeds; i++) {
        seed_t *s = &self->seeds[i];
        if (!s->pending || gai_error(&s->req) == EAI_INPROGRESS) {
            continue;
        }
        s->pending = false;
        int rc = gai_error(&s->req);
        if (rc) {
            log_warn("seed_unresolved", "seed=%s%s:%s error=\"%s\"",
                     s->dns ? "dns:" : "", s->name, s->port, gai_strerror(rc));
            continue;
        }
        int joined = 0;
        //  alone: every address; in a cluster (healing a long partition)
        //  a few are enough, a push-pull each
        int most = self->alone_when_resolved ? 1 << 30 : 3;
        for (struct addrinfo *ai = s->req.ar_result; ai && joined < most;
             ai = ai->ai_next) {
            char addr[80];
            s_format_addr(ai->ai_addr, addr, sizeof addr);
            swim_join(self->swim, addr, loop_clock_ms());
            joined++;
            joined_any = true;
            if (!s->dns) {
                break; // a plain HOST:PORT seed is one address
            }
        }
        freeaddrinfo(s->req.ar_result);
        s->req.ar_result = NULL;
        log_debug("seed_resolved", "seed=%s%s:%s addresses=%d",
                  s->dns ? "dns:" : "", s->name, s->port, joined);
    }
    if (joined_any) {
        s_rearm(self); // swim_join sent and set a timer
    }
}

//  An isolated sidecar must never look fine: every WARN_MS, say that the
//  seeds have not answered (and what came instead), and that packets that
//  do not open arrive (another cluster key or channel), with the sender.
static void s_warn(gossip_t *self, uint64_t now, bool alone)
{
    if (now - self->warned_at < WARN_MS) {
        return;
    }
    if (self->bad_since) {
        log_warn("gossip_undecryptable",
                 "packets=%llu from=%s hint=\"sealed with another cluster key "
                 "or channel: check --key-file and --channel on both\"",
                 (unsigned long long)self->bad_since, self->bad_from);
    }
    if (alone && self->nseeds && now - self->started >= WARN_MS) {
        log_warn("not_joined",
                 "seeds=%zu waited_ms=%llu packets_in=%llu undecryptable=%llu "
                 "hint=\"no seed answered: check --join, that a sidecar "
                 "listens there, and the cluster key\"",
                 self->nseeds, (unsigned long long)(now - self->started),
                 (unsigned long long)self->in_since,
                 (unsigned long long)self->bad_since);
    }
    self->warned_at = now;
    self->bad_since = self->in_since = 0;
}

static void s_on_resolve_timer(loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    gossip_t *self = arg;
    self->resolve_timer = 0; // fired: a one-shot is gone
    s_resolve_collect(self);
    uint64_t now = loop_clock_ms();
    bool alone = swim_count(self->swim, SWIM_ALIVE) <= 1;
    s_warn(self, now, alone);
    if (alone && now - self->resolved_at >= RESOLVE_MS) {
        self->resolved_at = now;
        self->alone_when_resolved = true;
        s_resolve_start(self); // alone: the seeds may have come up since
    } else if (!alone && self->nseeds &&
               now - self->rejoined_at >= self->pushpull_ms) {
        //  Two halves of a partition that lasted longer than the dead
        //  members' tombstones have forgotten each other: only the seeds
        //  can bring them together again.
        self->rejoined_at = self->resolved_at = now;
        self->alone_when_resolved = false;
        s_resolve_start(self);
    }
    //  An idle sidecar wakes for this once a second, not 20 times: the
    //  short period only while a resolution is under way.
    bool pending = false;
    for (size_t i = 0; i < self->nseeds; i++) {
        pending |= self->seeds[i].pending;
    }
    self->resolve_timer = loop_add_timer(loop, pending ? POLL_MS : CHECK_MS,
                                         false, s_on_resolve_timer, self);
}

// --- setup
// --------------------------------------------------------------------

//  Our gossip address as others reach it: the bind address, or, when it is
//  a wildcard, the host of --advertise/--bind with the gossip port.
static int s_own_addr(const gossip_config_t *cfg, char *out, size_t size)
{
    const char *addr = cfg->bind;
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        return -1;
    }
    size_t hlen = (size_t)(colon - addr);
    bool wildcard = hlen == 0 || strncmp(addr, "0.0.0.0", hlen) == 0 ||
                    strncmp(addr, "[::]", hlen) == 0;
    if (!wildcard) {
        snprintf(out, size, "%s", addr);
        return 0;
    }
    const char *data = cfg->endpoint ? cfg->endpoint : "";
    const char *host = strstr(data, "://");
    const char *dcolon = data ? strrchr(data, ':') : NULL;
    if (!host || !dcolon || dcolon <= host + 3) {
        return -1;
    }
    host += 3;
    if (strncmp(host, "0.0.0.0", 7) == 0 || *host == '*') {
        return -1;
    }
    snprintf(out, size, "%.*s%s", (int)(dcolon - host), host, colon);
    return 0;
}

gossip_t *gossip_new(loop_t *loop, const gossip_config_t *cfg,
                     const keyring_t *ring, const gossip_io_t *io,
                     const uint8_t node_id[16], stats_t *stats, char *err,
                     size_t errlen)
{
    gossip_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->io = *io;
    self->ring = ring;
    self->stats = stats;
    self->fd = -1;
    size_t tlen = strlen(AD_TAG), clen = strlen(cfg->channel);
    memcpy(self->ad, AD_TAG, tlen);
    memcpy(self->ad + tlen, cfg->channel, clen);
    self->ad_len = tlen + clen;

    swim_member_t me = {.state = SWIM_ALIVE};
    memcpy(me.id, node_id, 16);
    snprintf(me.name, sizeof me.name, "%s", cfg->name);
    snprintf(me.zone, sizeof me.zone, "%s", cfg->zone);
    snprintf(me.endpoint, sizeof me.endpoint, "%s",
             cfg->endpoint ? cfg->endpoint : "");
    me.start_ms = (uint64_t)time(NULL) * 1000;
    if (cfg->pubkey) {
        memcpy(me.pubkey, cfg->pubkey, SWIM_KEY_SIZE);
    }
    me.incarnation = me.start_ms; // above any earlier life of this id
    struct sockaddr_storage sa;
    socklen_t salen;
    if (s_own_addr(cfg, me.gossip_addr, sizeof me.gossip_addr) ||
        s_parse_addr(me.gossip_addr, &sa, &salen)) {
        snprintf(err, errlen,
                 "--gossip %s: need a numeric HOST:PORT (with "
                 "0.0.0.0, also --advertise tcp://IP:PORT so peers know "
                 "where to reach us)",
                 cfg->bind);
        gossip_destroy(&self);
        return NULL;
    }
    struct sockaddr_storage bind_sa;
    socklen_t bind_len;
    if (s_parse_addr(cfg->bind, &bind_sa, &bind_len) &&
        s_parse_addr(me.gossip_addr, &bind_sa, &bind_len)) {
        snprintf(err, errlen, "--gossip %s: not a HOST:PORT", cfg->bind);
        gossip_destroy(&self);
        return NULL;
    }
    if (strncmp(cfg->bind, ":", 1) == 0) {
        //  ":PORT" binds every interface
        ((struct sockaddr_in *)&bind_sa)->sin_family = AF_INET;
        ((struct sockaddr_in *)&bind_sa)->sin_addr.s_addr = INADDR_ANY;
        ((struct sockaddr_in *)&bind_sa)->sin_port =
            htons((uint16_t)atoi(cfg->bind + 1));
        bind_len = sizeof(struct sockaddr_in);
    }
    self->fd =
        socket(bind_sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rcvbuf = 1 << 20; // bursts of a push-pull; the kernel may cap it
    if (self->fd >= 0) {
        setsockopt(self->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    if (self->fd < 0 || bind(self->fd, (struct sockaddr *)&bind_sa, bind_len) ||
        loop_add_fd(loop, self->fd, EPOLLIN, s_on_packet, self)) {
        snprintf(err, errlen, "cannot bind gossip socket %s: %s", cfg->bind,
                 strerror(errno));
        gossip_destroy(&self);
        return NULL;
    }
    swim_config_t sc;
    swim_config_defaults(&sc);
#define TAKE(field)                                                            \
    if (cfg->field) {                                                          \
        sc.field = cfg->field;                                                 \
    }
    TAKE(probe_interval_ms);
    TAKE(probe_timeout_ms);
    TAKE(suspicion_mult);
    TAKE(indirect_checks);
    TAKE(pushpull_interval_ms);
    TAKE(dead_reap_ms);
#undef TAKE
    self->pushpull_ms = sc.pushpull_interval_ms;
    sc.max_packet = PACKET_MAX;
    swim_io_t sio = {
        .arg = self, .send = s_send, .changed = s_changed, .random = s_random};
    self->swim = swim_new(&sc, &me, &sio, loop_clock_ms());
    if (!self->swim) {
        snprintf(err, errlen, "bad gossip timings (see --help)");
        gossip_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < cfg->njoins; i++) {
        if (s_add_seed(self, cfg->joins[i])) {
            snprintf(err, errlen,
                     "--join %s: expected HOST:PORT or "
                     "dns:NAME:PORT",
                     cfg->joins[i]);
            gossip_destroy(&self);
            return NULL;
        }
    }
    if (self->nseeds == 0) {
        log_info("cluster_of_one", "reason=\"no --join seed: waiting for "
                                   "others to join us\"");
    }
    self->alone_when_resolved = true;
    s_resolve_start(self);
    self->resolved_at = self->rejoined_at = loop_clock_ms();
    self->started = self->warned_at = loop_clock_ms();
    self->resolve_timer =
        loop_add_timer(loop, POLL_MS, false, s_on_resolve_timer, self);
    log_info("gossip_started", "bind=%s address=%s seeds=%zu probe_ms=%u",
             cfg->bind, me.gossip_addr, self->nseeds, sc.probe_interval_ms);
    s_rearm(self);
    return self;
}

void gossip_leave(gossip_t *self)
{
    if (self && self->swim) {
        swim_leave(self->swim, loop_clock_ms());
        s_rearm(self);
    }
}

void gossip_destroy(gossip_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    gossip_t *self = *self_p;
    for (size_t i = 0; i < self->nseeds; i++) {
        if (self->seeds[i].pending) {
            gai_cancel(&self->seeds[i].req);
            if (gai_error(&self->seeds[i].req) == 0 &&
                self->seeds[i].req.ar_result) {
                freeaddrinfo(self->seeds[i].req.ar_result);
            }
        }
    }
    loop_cancel_timer(self->loop, self->timer);
    loop_cancel_timer(self->loop, self->resolve_timer);
    if (self->fd >= 0) {
        loop_del_fd(self->loop, self->fd);
        close(self->fd);
    }
    swim_destroy(&self->swim);
    free(self);
    *self_p = NULL;
}

void gossip_member_rows(gossip_t *self, gossip_row_fn *fn, void *arg)
{
    for (const swim_member_t *m = swim_first(self->swim); m;
         m = swim_next(self->swim)) {
        char hex[IDS_HEX_SIZE], value[700];
        ids_hex(m->id, hex);
        snprintf(value, sizeof value,
                 "name=%s state=%s incarnation=%llu endpoint=%s gossip=%s "
                 "zone=%s",
                 m->name, swim_state_name(m->state),
                 (unsigned long long)m->incarnation, m->endpoint,
                 m->gossip_addr, *m->zone ? m->zone : "-");
        fn(arg, hex, value);
    }
}

void gossip_counts(gossip_t *self, size_t counts[5])
{
    counts[0] = 0;
    for (int state = SWIM_ALIVE; state <= SWIM_LEFT; state++) {
        counts[state] = swim_count(self->swim, state);
    }
}

size_t gossip_alive(gossip_t *self)
{
    return swim_count(self->swim, SWIM_ALIVE);
}
