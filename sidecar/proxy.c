/*  proxy: see proxy.h. The sockets, the monitors, the HTTP server and the
    signals are all on one loop (common/loop.c), as in the sidecar: the
    ZeroMQ descriptors only wake the loop, and the idle hook moves what is
    waiting, a batch per socket per turn, so a flood on one side never
    starves the other side, the probes or a SIGTERM. */
#include "proxy.h"
#include "config.h"
#include "curve.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <czmq.h>
#include <zmq.h>

#define BATCH       1024 // whole messages per direction per loop turn
#define TRIM_MS     1000 // give freed heap pages back this often (if busy)
#define MAX_SUB_MSG 1024 // bytes of a subscription message (XPUB input)

enum { PUBLISH = 0, SUBSCRIBE = 1 }; // directions: messages, subscriptions
enum { FRONTEND = 0, BACKEND = 1 };  // sockets

static const char *const s_direction[] = {"publish", "subscribe"};
static const char *const s_socket[] = {"frontend", "backend"};

//  What one direction moved.
typedef struct {
    uint64_t messages; // whole (multipart) messages
    uint64_t frames;   //
    uint64_t bytes;    // frame bytes
    uint64_t dropped;  // messages a full link did not get (publish only)
    uint64_t failed;   // sends libzmq refused otherwise: dropped
} traffic_t;

//  libzmq's monitor of one socket: the connections accepted and not yet
//  closed, by descriptor (a handshake's events carry no descriptor; a
//  refused one is closed at once, and its close is counted as any).
typedef struct {
    void *sock;       // monitored
    void *pair;       // the events arrive here
    uint8_t *up;      // up[fd]: that connection is a peer
    size_t cap;       //
    size_t peers;     // connected now
    uint64_t total;   // connections accepted, ever
    uint64_t refused; // handshakes refused (CurveZMQ, protocol)
} monitor_t;

typedef struct {
    const config_proxy_t *cfg;
    loop_t *loop;
    void *ctx;
    void *xsub; // frontend: sidecars publish into it
    void *xpub; // backend: sidecars subscribe here
    char backend[300];
    bool bound;           // both sockets bound
    bool ready;           // readiness last logged
    bool failed;          // the loop stopped on an error
    curve_t *curve;       // or NULL
    monitor_t mon[2];     // FRONTEND, BACKEND
    traffic_t fwd[2];     // PUBLISH, SUBSCRIBE
    size_t subscriptions; // distinct subscriptions held by the XPUB
    http_t *http;         // or NULL
    uint64_t trimmed_at;  // messages moved at the last malloc_trim
} proxy_t;

// --- forwarding --------------------------------------------------------------

//  The XPUB refuses a message when one of its links is full (NODROP on),
//  so that we see it; then sends it to the others, the full link
//  dropping it (NODROP off), until the message's last frame.
static void s_lossy(void *xpub, bool on)
{
    int nodrop = on ? 0 : 1;
    zmq_setsockopt(xpub, ZMQ_XPUB_NODROP, &nodrop, sizeof nodrop);
}

//  Move up to BATCH whole messages from one socket to the other. A part
//  the other socket refuses is dropped and counted; the message's other
//  parts still go through, so frames never mix across messages. Returns
//  whether the batch was full (more may wait), or -1 on a receive error.
static int s_forward(proxy_t *self, void *from, void *to, int dir)
{
    traffic_t *t = &self->fwd[dir];
    for (int n = 0; n < BATCH; n++) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, from, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return errno == EAGAIN ? 0 : -1;
        }
        if (dir == SUBSCRIBE && !zmq_msg_more(&part) &&
            zmq_msg_size(&part) > 0) {
            //  XPUB passes a topic's first subscribe and last unsubscribe
            const uint8_t *b = zmq_msg_data(&part);
            if (b[0] == 1) {
                self->subscriptions++;
            } else if (b[0] == 0 && self->subscriptions) {
                self->subscriptions--;
            }
        }
        bool failed = false, lossy = false;
        for (;;) {
            int more = zmq_msg_more(&part);
            int flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0);
            t->frames++;
            t->bytes += zmq_msg_size(&part);
            int rc = zmq_msg_send(&part, to, flags);
            if (rc < 0 && errno == EAGAIN && dir == PUBLISH && !lossy) {
                //  a link is full (ZMQ_XPUB_NODROP says so, at the first
                //  frame): the message goes to every other link, and it
                //  is counted
                s_lossy(to, true);
                lossy = true;
                t->dropped++;
                rc = zmq_msg_send(&part, to, flags);
            }
            if (rc < 0) {
                zmq_msg_close(&part);
                failed = true;
            }
            if (!more) {
                break;
            }
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, from, 0) < 0) { // parts come together
                zmq_msg_close(&part);
                return -1;
            }
        }
        if (lossy) {
            s_lossy(to, false);
        }
        t->messages++;
        t->failed += failed;
    }
    return 1;
}

// --- monitors ----------------------------------------------------------------

static void s_monitor_mark(monitor_t *m, int fd, bool up)
{
    if (fd < 0) {
        return;
    }
    if ((size_t)fd >= m->cap) {
        if (!up) {
            return;
        }
        size_t cap = (size_t)fd * 2 + 64;
        uint8_t *grown = realloc(m->up, cap);
        if (!grown) {
            return; // not counted: the peer still works
        }
        memset(grown + m->cap, 0, cap - m->cap);
        m->up = grown;
        m->cap = cap;
    }
    if (up && !m->up[fd]) {
        m->up[fd] = 1;
        m->peers++;
        m->total++;
    } else if (!up && m->up[fd]) {
        m->up[fd] = 0;
        m->peers--;
    }
}

//  Read the monitor's events: [event u16, value u32] [address].
static void s_monitor_drain(proxy_t *self, int which)
{
    monitor_t *m = &self->mon[which];
    for (int n = 0; n < BATCH; n++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, m->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev)) {
            (void)zmq_msg_recv(&addr, m->pair, ZMQ_DONTWAIT);
        }
        if (zmq_msg_size(&ev) >= 6) {
            const uint8_t *b = zmq_msg_data(&ev);
            uint16_t event;
            int32_t value;
            memcpy(&event, b, 2);
            memcpy(&value, b + 2, 4);
            const char *a = zmq_msg_data(&addr);
            int alen = (int)zmq_msg_size(&addr);
            if (event == ZMQ_EVENT_ACCEPTED) {
                s_monitor_mark(m, value, true);
                log_debug("proxy_peer_up", "socket=%s address=%.*s peers=%zu",
                          s_socket[which], alen, a ? a : "", m->peers);
            } else if (event == ZMQ_EVENT_DISCONNECTED) {
                s_monitor_mark(m, value, false);
                log_debug("proxy_peer_down", "socket=%s address=%.*s peers=%zu",
                          s_socket[which], alen, a ? a : "", m->peers);
            } else {
                m->refused++;
            }
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

static void s_on_fd(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (void)arg; // the idle hook right after this batch looks at every socket
}

static int s_monitor_start(proxy_t *self, int which, void *sock)
{
    monitor_t *m = &self->mon[which];
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://roomcast-proxy-mon-%d",
             which);
    int fd;
    size_t fdlen = sizeof fd;
    m->sock = sock;
    if (zmq_socket_monitor(sock, endpoint,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) ||
        !(m->pair = zmq_socket(self->ctx, ZMQ_PAIR)) ||
        zmq_connect(m->pair, endpoint) ||
        zmq_getsockopt(m->pair, ZMQ_FD, &fd, &fdlen) ||
        loop_add_fd(self->loop, fd, EPOLLIN, s_on_fd, self)) {
        return -1;
    }
    return 0;
}

static void s_monitor_stop(proxy_t *self, int which)
{
    monitor_t *m = &self->mon[which];
    if (m->pair) {
        int fd;
        size_t fdlen = sizeof fd;
        if (zmq_getsockopt(m->pair, ZMQ_FD, &fd, &fdlen) == 0) {
            loop_del_fd(self->loop, fd);
        }
        zmq_socket_monitor(m->sock, NULL, 0);
        zmq_close(m->pair);
        m->pair = NULL;
    }
    free(m->up);
    m->up = NULL;
}

static bool s_ready(const proxy_t *self, http_reply_t *why);

//  Log readiness (at start, then when it changes).
static void s_log_ready(proxy_t *self)
{
    self->ready = s_ready(self, NULL);
    log_info("proxy_ready", "ready=%s frontend_peers=%zu backend_peers=%zu",
             self->ready ? "true" : "false", self->mon[FRONTEND].peers,
             self->mon[BACKEND].peers);
}

// --- the loop's turn ---------------------------------------------------------

static bool s_readable(void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == 0 &&
           (events & ZMQ_POLLIN);
}

static void s_log_refusal(void *arg, const char *key_z85, const char *address)
{
    (void)arg;
    log_warn("curve_refused",
             "address=%s key=%s reason=\"not in --curve-allow\" "
             "note=\"logged once per key\"",
             address, key_z85);
}

//  ZMQ_FD is edge-triggered and a send may take the signal of input that
//  came meanwhile: look at every socket on every turn, and ask for one
//  more turn after moving anything.
static bool s_idle(loop_t *loop, void *arg)
{
    proxy_t *self = arg;
    bool more = false;
    int rc;
    for (int which = 0; which < 2; which++) {
        if (s_readable(self->mon[which].pair)) {
            s_monitor_drain(self, which);
            if (s_ready(self, NULL) != self->ready) {
                s_log_ready(self);
            }
        }
    }
    if (s_readable(self->xsub)) {
        rc = s_forward(self, self->xsub, self->xpub, PUBLISH);
        more |= rc != 0;
        if (rc < 0) {
            log_error("proxy_failed", "error=\"%s\"", zmq_strerror(errno));
            self->failed = true;
            loop_stop(loop);
        }
    }
    if (s_readable(self->xpub)) {
        rc = s_forward(self, self->xpub, self->xsub, SUBSCRIBE);
        more |= rc != 0;
        if (rc < 0) {
            log_error("proxy_failed", "error=\"%s\"", zmq_strerror(errno));
            self->failed = true;
            loop_stop(loop);
        }
    }
    if (self->curve) {
        (void)curve_refusals(self->curve, s_log_refusal, self);
    }
    return more;
}

static void s_on_signal(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)events;
    (void)arg;
    struct signalfd_siginfo info;
    if (read(fd, &info, sizeof info) == (ssize_t)sizeof info) {
        log_info("signal", "signal=%s", strsignal((int)info.ssi_signo));
        loop_stop(loop);
    }
}

//  Messages are allocated by libzmq's I/O thread and freed by whichever
//  thread sends them last, so a burst (200 sidecars starting) leaves the
//  heaps holding pages nothing uses: hand them back, so RSS (and the
//  memory limit it is held to) follows what is queued now.
static void s_on_trim(loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    proxy_t *self = arg;
    uint64_t moved =
        self->fwd[PUBLISH].messages + self->fwd[SUBSCRIBE].messages;
    if (moved != self->trimmed_at) { // idle: nothing new to give back
        self->trimmed_at = moved;
        malloc_trim(0);
    }
}

// --- HTTP --------------------------------------------------------------------

//  Ready: both sockets bound and --ready-peers sidecars on each. Fills
//  why (one line per reason) when not.
static bool s_ready(const proxy_t *self, http_reply_t *why)
{
    size_t want = self->cfg->ready_peers;
    bool ok = self->bound;
    if (!self->bound && why) {
        http_reply_printf(why, "not ready: sockets not bound\n");
    }
    for (int which = 0; which < 2; which++) {
        if (self->mon[which].peers < want) {
            ok = false;
            if (why) {
                http_reply_printf(why,
                                  "not ready: %zu of %zu sidecars connected "
                                  "to the %s\n",
                                  self->mon[which].peers, want,
                                  s_socket[which]);
            }
        }
    }
    return ok;
}

static void s_family(http_reply_t *r, const char *name, const char *type,
                     const char *help)
{
    http_reply_printf(r, "# HELP roomcast_%s %s\n# TYPE roomcast_%s %s\n", name,
                      help, name, type);
}

static void s_render(proxy_t *self, http_reply_t *r)
{
    r->content_type = METRICS_CONTENT_TYPE;
    static const struct {
        const char *name, *help;
        size_t field;
    } counters[] = {
        {"proxy_messages_total",
         "Whole messages forwarded: publish (sidecars' envelopes and "
         "control, frontend to backend), subscribe (subscriptions, backend "
         "to frontend).",
         offsetof(traffic_t, messages)},
        {"proxy_frames_total", "Frames forwarded, by direction.",
         offsetof(traffic_t, frames)},
        {"proxy_bytes_total", "Frame bytes forwarded, by direction.",
         offsetof(traffic_t, bytes)},
        {"proxy_dropped_total",
         "Messages at least one sidecar's full link (--hwm) did not get; "
         "the others did (publish only; that sidecar counts the gap).",
         offsetof(traffic_t, dropped)},
        {"proxy_send_failed_total",
         "Messages a socket refused for another reason, dropped, by "
         "direction.",
         offsetof(traffic_t, failed)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        s_family(r, counters[i].name, "counter", counters[i].help);
        for (int dir = 0; dir < 2; dir++) {
            uint64_t v = *(const uint64_t *)((const char *)&self->fwd[dir] +
                                             counters[i].field);
            http_reply_printf(r, "roomcast_%s{direction=\"%s\"} %" PRIu64 "\n",
                              counters[i].name, s_direction[dir], v);
        }
    }
    s_family(r, "proxy_subscriptions", "gauge",
             "Distinct subscriptions held (routing keys and control "
             "prefixes the sidecars asked for).");
    http_reply_printf(r, "roomcast_proxy_subscriptions %zu\n",
                      self->subscriptions);
    s_family(r, "proxy_peers", "gauge", "Sidecars connected, by socket.");
    for (int which = 0; which < 2; which++) {
        http_reply_printf(r, "roomcast_proxy_peers{socket=\"%s\"} %zu\n",
                          s_socket[which], self->mon[which].peers);
    }
    s_family(r, "proxy_connections_total", "counter",
             "Sidecar connections accepted, by socket.");
    for (int which = 0; which < 2; which++) {
        http_reply_printf(r,
                          "roomcast_proxy_connections_total{socket=\"%s\"} "
                          "%" PRIu64 "\n",
                          s_socket[which], self->mon[which].total);
    }
    s_family(r, "curve_refused_total", "counter",
             "Handshakes refused: a CurveZMQ key not admitted, or a "
             "protocol error.");
    http_reply_printf(r, "roomcast_curve_refused_total %" PRIu64 "\n",
                      self->mon[0].refused + self->mon[1].refused);
    s_family(r, "proxy_hwm", "gauge",
             "Messages queued per sidecar link, each way, at most (--hwm).");
    http_reply_printf(r, "roomcast_proxy_hwm %zu\n", self->cfg->hwm);
    s_family(r, "proxy_ready", "gauge",
             "1 when /readyz answers 200 (both sockets bound, "
             "--ready-peers sidecars on each).");
    http_reply_printf(r, "roomcast_proxy_ready %d\n", s_ready(self, NULL));
    s_family(r, "build_info", "gauge",
             "The build of this roomcastd; the value is always 1.");
    http_reply_printf(r, "roomcast_build_info{version=\"%s\"} 1\n",
                      ROOMCAST_VERSION_STRING);
    metrics_render_process(r);
}

static int s_handle(void *arg, const char *path, http_reply_t *reply)
{
    proxy_t *self = arg;
    if (strcmp(path, "/metrics") == 0) {
        s_render(self, reply);
    } else if (strcmp(path, "/healthz") == 0) {
        http_reply_printf(reply, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        http_reply_t why;
        http_reply_init(&why);
        bool ready = s_ready(self, &why);
        if (ready) {
            http_reply_printf(reply, "ready\n");
        } else {
            reply->status = 503;
            http_reply_append(reply, why.body, why.len);
        }
        http_reply_free(&why);
    } else {
        reply->status = 404;
        http_reply_printf(reply, "not found: try /metrics, /healthz, "
                                 "/readyz\n");
    }
    return 0;
}

// --- start and stop ----------------------------------------------------------

static int s_setup(proxy_t *self, char *err, size_t errlen)
{
    const config_proxy_t *cfg = self->cfg;
    if (*cfg->backend) {
        snprintf(self->backend, sizeof self->backend, "%s", cfg->backend);
    } else {
        const char *colon = strrchr(cfg->frontend, ':');
        snprintf(self->backend, sizeof self->backend, "%.*s:%d",
                 (int)(colon - cfg->frontend), cfg->frontend,
                 atoi(colon + 1) + 1);
    }
    if (*cfg->curve_cert &&
        !(self->curve = curve_new(cfg->curve_cert, cfg->curve_allow,
                                  cfg->runtime_dir, err, errlen))) {
        return -1;
    }
    self->ctx = zsys_init(); // czmq's: zauth shares it
    self->xsub = zmq_socket(self->ctx, ZMQ_XSUB);
    self->xpub = zmq_socket(self->ctx, ZMQ_XPUB);
    if (!self->xsub || !self->xpub) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    //  Messages: at most --hwm per link each way; the XPUB drops for a
    //  link that is full, and only for it (one slow sidecar must not stop
    //  the others, nor make us grow): ZMQ_XPUB_NODROP is on only so that
    //  the send tells us a link is full (s_forward then sends lossy and
    //  counts). Subscriptions are never dropped (a lost one would
    //  silently cut a topic off): that queue grows only while a sidecar
    //  does not read them, as the sidecars' own (mesh.h, libzmq#4064).
    int hwm = (int)cfg->hwm, unbounded = 0, linger = 0, nodrop = 1;
    int64_t max_sub = MAX_SUB_MSG;
    zmq_setsockopt(self->xsub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->xsub, ZMQ_SNDHWM, &unbounded, sizeof unbounded);
    zmq_setsockopt(self->xpub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->xpub, ZMQ_RCVHWM, &unbounded, sizeof unbounded);
    zmq_setsockopt(self->xpub, ZMQ_XPUB_NODROP, &nodrop, sizeof nodrop);
    zmq_setsockopt(self->xpub, ZMQ_MAXMSGSIZE, &max_sub, sizeof max_sub);
    zmq_setsockopt(self->xsub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->xpub, ZMQ_LINGER, &linger, sizeof linger);
    if (self->curve && (curve_server(self->curve, self->xsub) ||
                        curve_server(self->curve, self->xpub))) {
        snprintf(err, errlen, "cannot set up CurveZMQ on the sockets");
        return -1;
    }
    if (s_monitor_start(self, FRONTEND, self->xsub) ||
        s_monitor_start(self, BACKEND, self->xpub)) {
        snprintf(err, errlen, "cannot monitor the sockets");
        return -1;
    }
    if (zmq_bind(self->xsub, cfg->frontend)) {
        snprintf(err, errlen, "cannot bind the frontend %s: %s", cfg->frontend,
                 zmq_strerror(errno));
        return -1;
    }
    if (zmq_bind(self->xpub, self->backend)) {
        snprintf(err, errlen, "cannot bind the backend %s: %s", self->backend,
                 zmq_strerror(errno));
        return -1;
    }
    self->bound = true;
    void *both[] = {self->xsub, self->xpub};
    for (int i = 0; i < 2; i++) {
        int fd;
        size_t fdlen = sizeof fd;
        if (zmq_getsockopt(both[i], ZMQ_FD, &fd, &fdlen) ||
            loop_add_fd(self->loop, fd, EPOLLIN, s_on_fd, self)) {
            snprintf(err, errlen, "cannot watch the sockets");
            return -1;
        }
    }
    if (loop_add_timer(self->loop, TRIM_MS, true, s_on_trim, self) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return loop_add_idle(self->loop, s_idle, self);
}

static void s_teardown(proxy_t *self)
{
    http_destroy(&self->http);
    for (int which = 0; which < 2; which++) {
        s_monitor_stop(self, which);
    }
    void *both[] = {self->xsub, self->xpub};
    for (int i = 0; i < 2; i++) {
        if (both[i]) {
            int fd;
            size_t fdlen = sizeof fd;
            if (zmq_getsockopt(both[i], ZMQ_FD, &fd, &fdlen) == 0) {
                loop_del_fd(self->loop, fd);
            }
            zmq_close(both[i]);
        }
    }
    curve_destroy(&self->curve); // the context is czmq's: it ends at exit
}

int proxy_main(int argc, char **argv)
{
    config_proxy_t cfg;
    char err[512];
    int rc = config_proxy_load(&cfg, argc, argv, err, sizeof err);
    if (rc == CONFIG_OK && log_set_level(cfg.log_level)) {
        snprintf(err, sizeof err,
                 "--log-level: unknown level '%s' (error, warn, info, debug)",
                 cfg.log_level);
        rc = CONFIG_ERROR;
    } else if (rc == CONFIG_OK && log_set_format(cfg.log_format)) {
        snprintf(err, sizeof err,
                 "--log-format: unknown format '%s' (logfmt, json)",
                 cfg.log_format);
        rc = CONFIG_ERROR;
    }
    if (rc != CONFIG_OK) {
        if (rc == CONFIG_ERROR) {
            fprintf(stderr, "roomcastd proxy: %s\n", err);
        }
        config_proxy_free(&cfg);
        return rc == CONFIG_EXIT ? 0 : 2;
    }
    //  one heap for libzmq's I/O thread and ours (before either allocates
    //  much): a message is allocated by one and freed by the other, and
    //  per-thread arenas would each keep their own free pages
    mallopt(M_ARENA_MAX, 1);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    proxy_t self = {.cfg = &cfg, .loop = loop_new()};
    int status = 1;
    if (!self.loop || sfd < 0 ||
        loop_add_fd(self.loop, sfd, EPOLLIN, s_on_signal, &self)) {
        log_error("proxy_failed", "error=\"%s\"", strerror(errno));
        goto done;
    }
    //  HTTP first: a taken port fails before anything is bound
    if (*cfg.http && !(self.http = http_new(self.loop, cfg.http, s_handle,
                                            &self, err, sizeof err))) {
        log_error("proxy_failed", "error=\"%s\"", err);
        status = 2;
        goto done;
    }
    if (s_setup(&self, err, sizeof err)) {
        log_error("proxy_failed", "frontend=%s backend=%s error=\"%s\"",
                  cfg.frontend, self.backend, err);
        goto done;
    }
    log_info("proxy_started",
             "version=%s frontend=%s backend=%s hwm=%zu http=%s "
             "ready_peers=%zu curve=%s config=%s",
             ROOMCAST_VERSION_STRING, cfg.frontend, self.backend, cfg.hwm,
             self.http ? cfg.http : "", cfg.ready_peers,
             self.curve ? curve_public_z85(self.curve) : "off",
             cfg.config_file ? cfg.config_file : "");
    s_log_ready(&self);
    if (loop_run(self.loop) == 0 && !self.failed) {
        status = 0;
        log_info("proxy_stopped",
                 "messages=%" PRIu64 " subscription_messages=%" PRIu64
                 " dropped=%" PRIu64 " failed=%" PRIu64,
                 self.fwd[PUBLISH].messages, self.fwd[SUBSCRIBE].messages,
                 self.fwd[PUBLISH].dropped,
                 self.fwd[PUBLISH].failed + self.fwd[SUBSCRIBE].failed);
    } else {
        log_error("loop_failed", "error=\"%s\"", strerror(errno));
    }
done:
    s_teardown(&self);
    loop_destroy(&self.loop);
    if (sfd >= 0) {
        close(sfd);
    }
    config_proxy_free(&cfg);
    return status;
}
