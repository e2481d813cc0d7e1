/*  server: see server.h. Connection life and I/O live here; what each frame
    means is the coordinator's (io->frame). */
#include "server.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CHUNK      (64 * 1024)
#define READ_PER_WAKE   (256 * 1024) // then let other clients in
#define CLOSE_LINGER_MS 2000         // a closing client that does not read
#define SWEEP_MS        250
#define FLUSH_EARLY     (64 * 1024) // queued mid-turn: written at once

struct server_t {
    loop_t *loop;
    const config_t *cfg;
    stats_t *stats;
    server_io_t io;
    wire_decoder_t *decoder; // reads back a dropped MSG for its GAP
    int listen_fd;
    int reserve_fd;       // spare descriptor to refuse clients at EMFILE
    bool listening_owner; // we created the socket file
    conn_t *conns;        // every open connection
    size_t nconns;
    uint64_t next_id;
    conn_t *dirty; // connections with output to write
    bool shutting_down;
    bool paused;       // not reading apps: the mesh is full (server_pause)
    uid_t *allow_uids; // peer credentials allowed (none listed: all)
    size_t nallow_uids;
    gid_t *allow_gids;
    size_t nallow_gids;
    int sweep_timer;
    size_t budget;             // bytes per app queue (server_set_budget)
    const char *refusing;      // new apps refused with this (memory cap)
    uint64_t refused_unlogged; // refusals since the last client_refused log
    uint64_t refused_logged_at;
    uint8_t scratch[READ_CHUNK];
};

// --- connections ------------------------------------------------------------

static void s_conn_io(loop_t *loop, int fd, uint32_t events, void *arg);

static void s_conn_free(conn_t *conn)
{
    gapbook_destroy(&conn->owed);
    outq_clear(&conn->out);
    wire_buf_free(&conn->in);
    free(conn);
}

// --- incomplete frames
// ---------------------------------------------------------

static void s_close(server_t *self, conn_t *conn, const char *why);

//  Room for want more bytes of conn's partial frame, within the daemon's
//  --partial-budget (an unfinished frame pins its bytes: 200 apps sending
//  all but the last bytes of 1 MiB frames would otherwise hold 200 MiB).
//  Returns 0, or -1 with conn closing.
static int s_partial_reserve(server_t *self, conn_t *conn, size_t want)
{
    size_t before = conn->in.cap;
    size_t need = conn->in.len + want > before ? conn->in.len + want : before;
    if (self->stats->partial_bytes - before + need >
        self->cfg->partial_budget) {
        self->stats->closed_partial_budget++;
        log_warn("client_partial_budget", "client=%llu held=%llu budget=%zu",
                 (unsigned long long)conn->id,
                 (unsigned long long)self->stats->partial_bytes,
                 self->cfg->partial_budget);
        server_close_with(self, conn, WIRE_E_LIMIT,
                          "the sidecar's memory for incomplete frames "
                          "(--partial-budget) is full: connection closed");
        return -1;
    }
    if (wire_buf_reserve(&conn->in, want)) {
        s_close(self, conn, "out of memory");
        return -1;
    }
    self->stats->partial_bytes += conn->in.cap - before;
    if (!conn->partial_since) {
        conn->partial_since = loop_now(self->loop);
    }
    return 0;
}

//  conn holds no partial frame any more: its buffer goes (idle apps hold
//  none).
static void s_partial_release(server_t *self, conn_t *conn)
{
    self->stats->partial_bytes -= conn->in.cap;
    wire_buf_free(&conn->in);
    conn->partial_since = 0;
}

void server_hold(void *arg, void *member)
{
    (void)arg;
    ((conn_t *)member)->refs++;
}

void server_release(void *arg, void *member)
{
    (void)arg;
    conn_t *conn = member;
    if (--conn->refs == 0 && conn->fd < 0) {
        s_conn_free(conn);
    }
}

static void s_flush(server_t *self, conn_t *conn);

static void s_mark_dirty(server_t *self, conn_t *conn)
{
    if (!conn->dirty && conn->fd >= 0) {
        conn->dirty = true;
        conn->dirty_next = self->dirty;
        self->dirty = conn;
    }
}

//  Close now: the coordinator forgets its topics and presence, the queue
//  is dropped, the memory freed when unreferenced.
static void s_close(server_t *self, conn_t *conn, const char *why)
{
    if (conn->fd < 0) {
        return;
    }
    log_debug("client_closed", "client=%llu reason=\"%s\" dropped=%llu",
              (unsigned long long)conn->id, why,
              (unsigned long long)conn->dropped);
    self->io.closed(self->io.arg, conn);
    loop_del_fd(self->loop, conn->fd);
    close(conn->fd);
    conn->fd = -1;
    outq_clear(&conn->out);
    s_partial_release(self, conn);
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else {
        self->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    self->nconns--;
    //  a dirty conn stays on the dirty list until the flush skips it
    if (!conn->dirty) {
        server_release(self, conn);
    }
}

void server_send(server_t *self, conn_t *conn, const wire_frame_t *frame)
{
    if (conn->fd < 0) {
        return;
    }
    self->stats->errors_sent += frame->type == WIRE_ERR;
    outbuf_t *buf = outbuf_encode(frame);
    if (!buf || outq_push(&conn->out, buf)) {
        outbuf_unref(&buf);
        s_close(self, conn, "out of memory");
        return;
    }
    outbuf_unref(&buf);
    s_mark_dirty(self, conn);
}

//  Closing: after CLOSE_LINGER_MS a client that does not read is closed.
void server_close_with(server_t *self, conn_t *conn, wire_err_t code,
                       const char *why)
{
    if (conn->fd < 0 || conn->closing) {
        return;
    }
    wire_frame_t f = {.type = WIRE_ERR, .code = code, .text = wire_str(why)};
    server_send(self, conn, &f);
    conn->closing = true;
    conn->closing_since = loop_now(self->loop);
    //  a refusal (protocol, slow, budget) is worth a look; a shutdown not
    log_event(code == WIRE_E_SHUTDOWN ? LOGL_INFO : LOGL_WARN, "client_closing",
              "client=%llu reason=\"%s\"", (unsigned long long)conn->id, why);
}

static void s_close_slow(server_t *self, conn_t *conn);

#define GAPBOOK_STREAMS 4096 // per slow app; more are counted together

//  A message for conn was dropped: it is owed a report, per stream when it
//  asked for GAP notices.
static void s_owe(server_t *self, conn_t *conn, const outbuf_t *buf)
{
    wire_frame_t f;
    if (!(conn->hello_flags & WIRE_HF_GAPS) ||
        (!conn->owed && !(conn->owed = gapbook_new(GAPBOOK_STREAMS))) ||
        wire_decode(self->decoder, buf->data + WIRE_PREFIX,
                    buf->len - WIRE_PREFIX, &f) ||
        f.type != WIRE_MSG) {
        conn->owed_drops++;
        return;
    }
    gapbook_add(conn->owed, f.ns, f.topic, (const uint8_t *)f.id.ptr, 1);
}

typedef struct {
    server_t *server;
    conn_t *conn;
} owed_ctx_t;

static void s_gap_notice(void *arg, wire_str_t ns, wire_str_t topic,
                         const uint8_t *instance, uint64_t missed)
{
    owed_ctx_t *ctx = arg;
    wire_frame_t gap = {.type = WIRE_GAP,
                        .ns = ns,
                        .topic = topic,
                        .id = {(const char *)instance, WIRE_ID_SIZE},
                        .count = missed,
                        .code = WIRE_GAP_SLOW};
    server_send(ctx->server, ctx->conn, &gap);
}

//  conn caught up after drops: tell it what it lost, one GAP per stream
//  (or one ERR when it did not ask for GAPs), after what did get through.
static void s_report_drops(server_t *self, conn_t *conn)
{
    owed_ctx_t ctx = {self, conn};
    if (conn->owed && gapbook_total(conn->owed)) {
        conn->owed_drops += gapbook_drain(conn->owed, s_gap_notice, &ctx);
    }
    if (conn->owed_drops) {
        char text[200];
        snprintf(text, sizeof text,
                 "%llu messages dropped: this app read too slowly (its queue "
                 "was over --queue-budget, or dropped under --memory-limit)%s",
                 (unsigned long long)conn->owed_drops,
                 conn->hello_flags & WIRE_HF_GAPS
                     ? " on more topics than GAP notices name"
                     : "; ask for GAP notices to learn which topics");
        wire_frame_t err = {
            .type = WIRE_ERR, .code = WIRE_E_SLOW, .text = wire_str(text)};
        server_send(self, conn, &err);
        conn->owed_drops = 0;
    }
}

//  The budget policy (see server.h).
void server_deliver(void *arg, void *member, outbuf_t *buf)
{
    server_t *self = arg;
    conn_t *conn = member;
    if (conn->fd < 0 || conn->closing) {
        return;
    }
    bool was_slow = conn->slow_since != 0;
    if (conn->out.bytes + buf->len > self->budget) {
        //  the queue fills within one batch of reads even for a client
        //  that keeps up: hand the kernel what it takes before judging
        s_flush(self, conn);
        if (conn->fd < 0) {
            return;
        }
    }
    switch (outq_admit(&conn->out, buf->len, self->budget, &conn->slow_since,
                       loop_now(self->loop), self->cfg->slow_grace_ms)) {
        case OUTQ_QUEUE:
            break;
        case OUTQ_DROP:
            self->stats->dropped_slow++;
            conn->dropped++;
            s_owe(self, conn, buf);
            if (!was_slow) {
                log_warn("client_slow", "client=%llu queued=%zu budget=%zu",
                         (unsigned long long)conn->id, conn->out.bytes,
                         self->budget);
            }
            return;
        case OUTQ_CLOSE:
            self->stats->dropped_slow++;
            conn->dropped++;
            s_close_slow(self, conn);
            return;
    }
    if (outq_push(&conn->out, buf)) {
        s_close(self, conn, "out of memory");
        return;
    }
    self->stats->deliveries++;
    //  A turn can fan out megabytes (one mesh drain: thousands of batched
    //  envelopes): written only at its end, the app would wait idle for it,
    //  then find its queue past budget. So the socket gets what is queued
    //  every FLUSH_EARLY bytes, and the app reads while the turn goes on
    //  (one write attempt per FLUSH_EARLY bytes even when the socket is
    //  full).
    conn->unflushed += buf->len;
    if (conn->unflushed >= FLUSH_EARLY) {
        s_flush(self, conn);
        return;
    }
    s_mark_dirty(self, conn);
}

static void s_close_slow(server_t *self, conn_t *conn)
{
    self->stats->closed_slow++;
    log_warn("client_slow_closed", "client=%llu dropped=%llu",
             (unsigned long long)conn->id, (unsigned long long)conn->dropped);
    //  keep only a frame already half written, then say why and go
    outq_trim(&conn->out);
    server_close_with(self, conn, WIRE_E_SLOW,
                      "slow consumer: queue over budget for too long");
}

static void s_flush(server_t *self, conn_t *conn)
{
    size_t before = conn->out.bytes;
    conn->unflushed = 0;
    ssize_t n = outq_write(&conn->out, conn->fd);
    if (n < 0) {
        s_close(self, conn, "write failed");
        return;
    }
    self->stats->bytes_out += (uint64_t)(before - conn->out.bytes);
    outq_caught_up(&conn->out, self->budget, &conn->slow_since);
    if (!conn->slow_since && (conn->owed_drops || conn->owed)) {
        s_report_drops(self, conn);
        gapbook_destroy(&conn->owed); // most apps are never slow again
    }
    if (conn->out.bytes == 0 && conn->closing) {
        s_close(self, conn, "closed after error");
        return;
    }
    bool want_out = conn->out.bytes > 0;
    if (want_out != conn->want_out) {
        conn->want_out = want_out;
        uint32_t ev = (conn->closing || self->paused ? 0 : EPOLLIN) |
                      (want_out ? EPOLLOUT : 0);
        loop_mod_fd(self->loop, conn->fd, ev);
    }
}

//  Handle every whole frame in data[0..len); returns the bytes used, or
//  -1 when the connection was closed.
static ssize_t s_frames(server_t *self, conn_t *conn, const uint8_t *data,
                        size_t len)
{
    size_t off = 0, body;
    int rc;
    size_t max_body = self->cfg->max_payload + 4096;
    while (!conn->closing &&
           (rc = wire_peek(data + off, len - off, max_body, &body)) == 1) {
        const uint8_t *p = data + off + WIRE_PREFIX;
        off += WIRE_PREFIX + body;
        self->io.frame(self->io.arg, conn, p, body);
        if (conn->fd < 0) {
            return -1;
        }
    }
    if (!conn->closing && rc < 0) {
        self->stats->closed_proto++;
        if (errno == EMSGSIZE) {
            STATS_REFUSED(self->stats, size);
            char why[128];
            snprintf(why, sizeof why,
                     "frame over the limit of %zu bytes: connection closed",
                     max_body);
            server_close_with(self, conn, WIRE_E_TOOBIG, why);
        } else {
            STATS_REFUSED(self->stats, protocol);
            server_close_with(self, conn, WIRE_E_PROTO,
                              "zero-length frame: not the roomcast protocol");
        }
    }
    return (ssize_t)off;
}

static void s_read(server_t *self, conn_t *conn)
{
    size_t total = 0;
    while (conn->fd >= 0 && !conn->closing && !self->paused &&
           total < READ_PER_WAKE) {
        uint8_t *dst;
        size_t room;
        if (conn->in.len == 0) {
            dst = self->scratch; // the common case: no partial frame
            room = sizeof self->scratch;
        } else {
            if (s_partial_reserve(self, conn, READ_CHUNK)) {
                return;
            }
            dst = conn->in.data + conn->in.len;
            room = conn->in.cap - conn->in.len;
        }
        ssize_t n = read(conn->fd, dst, room);
        if (n == 0) {
            s_close(self, conn, "client closed");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                s_close(self, conn, "read failed");
            }
            return;
        }
        total += (size_t)n;
        self->stats->bytes_in += (uint64_t)n;
        const uint8_t *data = dst == self->scratch ? dst : conn->in.data;
        size_t len =
            dst == self->scratch ? (size_t)n : conn->in.len + (size_t)n;
        ssize_t used = s_frames(self, conn, data, len);
        if (used < 0 || conn->closing) {
            return;
        }
        if (dst == self->scratch) {
            if ((size_t)used < len) {
                //  keep the partial frame for the next read
                if (s_partial_reserve(self, conn, len - (size_t)used)) {
                    return;
                }
                memcpy(conn->in.data, data + used, len - (size_t)used);
                conn->in.len = len - (size_t)used;
            }
        } else {
            conn->in.len = len;
            wire_buf_consume(&conn->in, (size_t)used);
            if (conn->in.len == 0) {
                s_partial_release(self, conn);
            }
        }
    }
}

static void s_conn_io(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    conn_t *conn = arg;
    server_t *self = conn->server;
    server_hold(self, conn); // a close below must not free conn under our feet
    if (events & EPOLLIN) {
        s_read(self, conn);
    }
    if (conn->fd >= 0 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        s_flush(self, conn);
    }
    if (conn->fd >= 0 && (events & EPOLLHUP) && !(events & EPOLLIN)) {
        s_close(self, conn, "hang-up");
    }
    server_release(self, conn);
}

// --- accepting
// ----------------------------------------------------------------

//  Refuse a client we cannot serve: one ERR, written if the socket takes
//  it, then close.
static void s_refuse(server_t *self, int fd, wire_err_t code, const char *why)
{
    wire_frame_t f = {.type = WIRE_ERR, .code = code, .text = wire_str(why)};
    wire_buf_t buf = {0};
    if (wire_encode(&buf, &f) == 0) {
        ssize_t w = send(fd, buf.data, buf.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    wire_buf_free(&buf);
    close(fd);
    self->stats->clients_refused++;
    //  a client retrying in a loop must not flood the log: once a second
    uint64_t now = loop_now(self->loop);
    self->refused_unlogged++;
    if (!self->refused_logged_at || now - self->refused_logged_at >= 1000) {
        log_warn("client_refused", "reason=\"%s\" refused=%llu", why,
                 (unsigned long long)self->refused_unlogged);
        self->refused_unlogged = 0;
        self->refused_logged_at = now;
    }
}

static bool s_allowed(const server_t *self, const struct ucred *cred)
{
    if (!self->nallow_uids && !self->nallow_gids) {
        return true;
    }
    for (size_t i = 0; i < self->nallow_uids; i++) {
        if (cred->pid && self->allow_uids[i] == cred->uid) {
            return true;
        }
    }
    for (size_t i = 0; i < self->nallow_gids; i++) {
        if (cred->pid && self->allow_gids[i] == cred->gid) {
            return true;
        }
    }
    return false;
}

//  Names or numbers of --allow-uid/--allow-gid to ids. Returns 0, or -1
//  with err filled.
static int s_resolve_allow(server_t *self, char *err, size_t errlen)
{
    const config_list_t *u = &self->cfg->allow_uids,
                        *g = &self->cfg->allow_gids;
    self->allow_uids = calloc(u->count + 1, sizeof *self->allow_uids);
    self->allow_gids = calloc(g->count + 1, sizeof *self->allow_gids);
    if (!self->allow_uids || !self->allow_gids) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < u->count; i++) {
        char *end;
        unsigned long n = strtoul(u->items[i], &end, 10);
        struct passwd *pw = *end ? getpwnam(u->items[i]) : NULL;
        if (*end && !pw) {
            snprintf(err, errlen, "--allow-uid %s: no such user", u->items[i]);
            return -1;
        }
        self->allow_uids[self->nallow_uids++] = pw ? pw->pw_uid : (uid_t)n;
    }
    for (size_t i = 0; i < g->count; i++) {
        char *end;
        unsigned long n = strtoul(g->items[i], &end, 10);
        struct group *gr = *end ? getgrnam(g->items[i]) : NULL;
        if (*end && !gr) {
            snprintf(err, errlen, "--allow-gid %s: no such group", g->items[i]);
            return -1;
        }
        self->allow_gids[self->nallow_gids++] = gr ? gr->gr_gid : (gid_t)n;
    }
    return 0;
}

static void s_accept(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)events;
    server_t *self = arg;
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                //  out of descriptors: free the spare one to take the
                //  client off the backlog and tell it, or the listener
                //  would stay readable forever
                if (self->reserve_fd >= 0) {
                    close(self->reserve_fd);
                    self->reserve_fd = -1;
                    cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                    if (cfd >= 0) {
                        s_refuse(self, cfd, WIRE_E_LIMIT,
                                 "sidecar is out of file descriptors");
                    }
                    self->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                }
                log_warn("accept_failed", "error=\"%s\"", strerror(errno));
            }
            return;
        }
        if (self->refusing) {
            self->stats->mem_refused_clients++;
            s_refuse(self, cfd, WIRE_E_LIMIT, self->refusing);
            continue;
        }
        if (self->nconns >= self->cfg->max_clients) {
            s_refuse(self, cfd, WIRE_E_LIMIT,
                     "sidecar has reached --max-clients");
            continue;
        }
        struct ucred cred = {0};
        socklen_t clen = sizeof cred;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
            cred.pid = 0;
        }
        if (!s_allowed(self, &cred)) {
            log_warn("client_denied", "pid=%d uid=%u gid=%u", (int)cred.pid,
                     (unsigned)cred.uid, (unsigned)cred.gid);
            char why[96];
            snprintf(why, sizeof why,
                     "uid %u gid %u is not allowed by this "
                     "sidecar (--allow-uid, --allow-gid)",
                     (unsigned)cred.uid, (unsigned)cred.gid);
            s_refuse(self, cfd, WIRE_E_DENIED, why);
            continue;
        }
        conn_t *conn = calloc(1, sizeof *conn);
        if (!conn || loop_add_fd(self->loop, cfd, self->paused ? 0 : EPOLLIN,
                                 s_conn_io, conn)) {
            free(conn);
            s_refuse(self, cfd, WIRE_E_LIMIT, "sidecar is out of memory");
            continue;
        }
        conn->fd = cfd;
        conn->server = self;
        conn->id = ++self->next_id;
        conn->refs = 1;
        conn->reg.owner = conn;
        conn->since = loop_now(self->loop);
        conn->cred = cred; // recorded: roomcastctl clients shows it
        conn->next = self->conns;
        if (self->conns) {
            self->conns->prev = conn;
        }
        self->conns = conn;
        self->nconns++;
        self->stats->clients_accepted++;
    }
}

// --- housekeeping
// -------------------------------------------------------------

void server_flush(server_t *self)
{
    while (self->dirty) {
        conn_t *conn = self->dirty;
        self->dirty = conn->dirty_next;
        conn->dirty = false;
        if (conn->fd >= 0) {
            s_flush(self, conn);
        } else {
            server_release(self, conn); // closed while dirty
        }
    }
}

static bool s_idle(loop_t *loop, void *arg)
{
    (void)loop;
    server_t *self = arg;
    bool more = self->io.idle && self->io.idle(self->io.arg);
    server_flush(self);
    if (self->shutting_down && self->nconns == 0) {
        loop_stop(self->loop);
    }
    return more || self->dirty;
}

static void s_sweep(loop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    server_t *self = arg;
    uint64_t now = loop_now(loop);
    conn_t *next;
    for (conn_t *conn = self->conns; conn; conn = next) {
        next = conn->next;
        if (conn->closing && !self->shutting_down &&
            now - conn->closing_since >= CLOSE_LINGER_MS) {
            s_close(self, conn, "did not read its last frames");
        } else if (!conn->closing && conn->partial_since &&
                   now - conn->partial_since >= self->cfg->frame_timeout_ms) {
            self->stats->closed_partial++;
            log_info("client_partial_timeout", "client=%llu held=%zu",
                     (unsigned long long)conn->id, conn->in.len);
            s_partial_release(self, conn); // its bytes go now, not at close
            server_close_with(self, conn, WIRE_E_PROTO,
                              "frame incomplete for longer than "
                              "--frame-timeout: connection closed");
        } else if (!conn->closing && conn->slow_since &&
                   outq_admit(&conn->out, 0, 0, &conn->slow_since, now,
                              self->cfg->slow_grace_ms) == OUTQ_CLOSE) {
            s_close_slow(self, conn);
        }
    }
}

static void s_shutdown_deadline(loop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    server_t *self = arg;
    log_warn("shutdown_deadline", "clients_unflushed=%zu", self->nconns);
    loop_stop(loop);
}

// --- public
// -------------------------------------------------------------------

server_t *server_new(loop_t *loop, const config_t *cfg, stats_t *stats,
                     const server_io_t *io)
{
    server_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->loop = loop;
    self->cfg = cfg;
    self->stats = stats;
    self->listen_fd = -1;
    self->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    self->io = *io;
    self->budget = cfg->queue_budget;
    self->decoder = wire_decoder_new();
    if (!self->decoder || loop_add_idle(loop, s_idle, self)) {
        server_destroy(&self);
        return NULL;
    }
    self->sweep_timer = loop_add_timer(loop, SWEEP_MS, true, s_sweep, self);
    return self;
}

void server_destroy(server_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    server_t *self = *self_p;
    while (self->conns) {
        s_close(self, self->conns, "sidecar stopping");
    }
    while (self->dirty) {
        conn_t *conn = self->dirty;
        self->dirty = conn->dirty_next;
        conn->dirty = false;
        server_release(self, conn);
    }
    if (self->listen_fd >= 0) {
        loop_del_fd(self->loop, self->listen_fd);
        close(self->listen_fd);
        if (self->listening_owner) {
            unlink(self->cfg->socket_path);
        }
    }
    if (self->reserve_fd >= 0) {
        close(self->reserve_fd);
    }
    loop_cancel_timer(self->loop, self->sweep_timer);
    wire_decoder_destroy(&self->decoder);
    free(self->allow_uids);
    free(self->allow_gids);
    free(self);
    *self_p = NULL;
}

//  Is a live process serving path? A stale file refuses the connection.
static bool s_socket_alive(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    bool alive = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0;
    close(fd);
    return alive;
}

int server_listen(server_t *self, char *err, size_t errlen)
{
    const char *path = self->cfg->socket_path;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (s_resolve_allow(self, err, errlen)) {
        return -1;
    }
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(err, errlen, "socket path too long (max %zu bytes): %s",
                 sizeof addr.sun_path - 1, path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen,
                     "%s exists and is not a socket; refusing "
                     "to replace it",
                     path);
            return -1;
        }
        if (s_socket_alive(&addr)) {
            snprintf(err, errlen,
                     "%s is in use by a running sidecar; stop "
                     "it first or choose another --socket",
                     path);
            return -1;
        }
        unlink(path); // stale: left by a sidecar that died
        log_info("stale_socket_removed", "socket=%s", path);
    }
    //  Bound and listening under a temporary name, then renamed: the
    //  socket file appears only once it accepts (no ECONNREFUSED window),
    //  with its mode and group already set.
    struct sockaddr_un tmp = {.sun_family = AF_UNIX};
    if (snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.new", path) >=
        (int)sizeof tmp.sun_path) {
        tmp = addr; // no room for a suffix: bind in place
    }
    unlink(tmp.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    mode_t old = umask(0117); // the file is born 0660: no window at 0777
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&tmp, sizeof tmp);
    umask(old);
    const char *why = NULL;
    struct group *gr = NULL;
    if (rc || listen(fd, 1024) || chmod(tmp.sun_path, 0660)) {
        why = strerror(errno);
    } else if (*self->cfg->socket_group &&
               (!(gr = getgrnam(self->cfg->socket_group)) ||
                chown(tmp.sun_path, (uid_t)-1, gr->gr_gid))) {
        snprintf(err, errlen, "cannot give %s to group %s: %s", path,
                 self->cfg->socket_group,
                 gr ? strerror(errno) : "no such group");
    } else if (loop_add_fd(self->loop, fd, EPOLLIN, s_accept, self)) {
        snprintf(err, errlen, "cannot watch socket: %s", strerror(errno));
    } else if (strcmp(tmp.sun_path, path) != 0 && rename(tmp.sun_path, path)) {
        why = strerror(errno);
        loop_del_fd(self->loop, fd);
    } else {
        self->listening_owner = true;
        self->listen_fd = fd;
        return 0;
    }
    if (why) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, why);
    }
    if (fd >= 0) {
        close(fd);
        unlink(tmp.sun_path);
    }
    return -1;
}

void server_shutdown(server_t *self)
{
    if (self->shutting_down) {
        return;
    }
    self->shutting_down = true;
    if (self->listen_fd >= 0) {
        loop_del_fd(self->loop, self->listen_fd);
        close(self->listen_fd);
        self->listen_fd = -1;
        unlink(self->cfg->socket_path);
    }
    log_info("shutting_down", "clients=%zu deadline_ms=%llu", self->nconns,
             (unsigned long long)self->cfg->shutdown_timeout_ms);
    for (conn_t *conn = self->conns; conn; conn = conn->next) {
        //  the deadline below rules, not the linger of a closing client
        server_close_with(self, conn, WIRE_E_SHUTDOWN, "sidecar shutting down");
    }
    loop_add_timer(self->loop, self->cfg->shutdown_timeout_ms, false,
                   s_shutdown_deadline, self);
}

void server_set_budget(server_t *self, size_t budget)
{
    self->budget = budget;
}

void server_refuse_new(server_t *self, const char *why)
{
    self->refusing = why;
}

typedef struct {
    server_t *server;
    conn_t *conn;
    size_t messages;
} shed_ctx_t;

//  outq_shed's predicate: messages go (owed to the app as a GAP or an
//  ERR), answers and notices stay.
static bool s_shed_msg(void *arg, const outbuf_t *buf)
{
    shed_ctx_t *ctx = arg;
    wire_frame_t f;
    if (buf->len <= WIRE_PREFIX ||
        wire_decode(ctx->server->decoder, buf->data + WIRE_PREFIX,
                    buf->len - WIRE_PREFIX, &f) ||
        f.type != WIRE_MSG) {
        return false;
    }
    s_owe(ctx->server, ctx->conn, buf);
    ctx->messages++;
    return true;
}

static int s_by_queue_desc(const void *a, const void *b)
{
    size_t x = (*(conn_t *const *)a)->out.bytes;
    size_t y = (*(conn_t *const *)b)->out.bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

//  One app's queued messages go: it is slow now, and told when it reads.
static size_t s_shed_conn(server_t *self, conn_t *conn)
{
    shed_ctx_t ctx = {self, conn, 0};
    size_t bytes = outq_shed(&conn->out, s_shed_msg, &ctx);
    if (!ctx.messages) {
        return 0;
    }
    self->stats->mem_shed_queues++;
    self->stats->dropped_memory += ctx.messages;
    conn->dropped += ctx.messages;
    if (!conn->slow_since) {
        conn->slow_since = loop_now(self->loop);
    }
    log_warn("client_queue_shed",
             "client=%llu messages=%zu bytes=%zu reason=\"--memory-limit\"",
             (unsigned long long)conn->id, ctx.messages, bytes);
    s_mark_dirty(self, conn); // its GAP or ERR once the socket takes it
    return bytes;
}

size_t server_shed_queues(server_t *self, size_t want)
{
    size_t n = 0, freed = 0;
    for (conn_t *c = self->conns; c; c = c->next) {
        n += c->out.bytes > 0 && !c->closing;
    }
    conn_t **order = n ? calloc(n, sizeof *order) : NULL;
    if (!order) {
        //  no room even for the list: every queue, in list order
        for (conn_t *c = self->conns; c && freed < want; c = c->next) {
            freed += c->closing ? 0 : s_shed_conn(self, c);
        }
        return freed;
    }
    size_t i = 0;
    for (conn_t *c = self->conns; c; c = c->next) {
        if (c->out.bytes > 0 && !c->closing) {
            order[i++] = c;
        }
    }
    qsort(order, n, sizeof *order, s_by_queue_desc);
    for (i = 0; i < n && freed < want; i++) {
        freed += s_shed_conn(self, order[i]);
    }
    free(order);
    return freed;
}

void server_queue_totals(const server_t *self, server_queues_t *out)
{
    *out = (server_queues_t){0};
    for (const conn_t *c = self->conns; c; c = c->next) {
        out->bytes += c->out.bytes;
        out->frames += c->out.count;
        if (c->out.bytes > out->largest) {
            out->largest = c->out.bytes;
        }
        out->slow += c->slow_since != 0;
    }
}

void server_pause(server_t *self, bool paused)
{
    if (self->paused == paused) {
        return;
    }
    self->paused = paused;
    for (conn_t *conn = self->conns; conn; conn = conn->next) {
        if (!conn->closing) {
            uint32_t ev =
                (paused ? 0 : EPOLLIN) | (conn->want_out ? EPOLLOUT : 0);
            loop_mod_fd(self->loop, conn->fd, ev);
        }
    }
    if (!paused) {
        //  what arrived meanwhile: level-triggered epoll reports it
        log_debug("apps_resumed", "clients=%zu", self->nconns);
    }
}

conn_t *server_first_conn(server_t *self)
{
    return self->conns;
}

size_t server_clients(const server_t *self)
{
    return self->nconns;
}
