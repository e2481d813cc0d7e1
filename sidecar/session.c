/*  session: see session.h. Every frame an app may send has one handler in
    s_handlers; a frame that fails validation is answered with an ERR that
    names the problem and counted, and touches no other client. */
#include "session.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct session_t {
    session_config_t cfg;
    session_io_t io;
    stats_t *stats;
    wire_decoder_t *decoder;
    uint64_t refused_unlogged;  // ERRs since the last frame_refused line
    uint64_t refused_logged_ms; // monotonic ms of that line (0: none yet)
};

typedef void(handler_fn)(session_t *self, conn_t *conn, const wire_frame_t *f);

void session_err(session_t *self, conn_t *conn, uint64_t req, wire_err_t code,
                 const char *fmt, ...)
{
    char text[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    wire_frame_t f = {
        .type = WIRE_ERR, .req = req, .code = code, .text = wire_str(text)};
    self->io.send(self->io.arg, conn, &f);
    //  a refusal is worth a look, but an app repeating a bad frame must
    //  not flood the log: the first, then at most one line a second
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    self->refused_unlogged++;
    if (!self->refused_logged_ms || now - self->refused_logged_ms >= 1000) {
        log_warn("frame_refused",
                 "client=%llu code=%d reason=\"%s\" refused=%llu",
                 (unsigned long long)conn->id, (int)code, text,
                 (unsigned long long)self->refused_unlogged);
        self->refused_unlogged = 0;
        self->refused_logged_ms = now ? now : 1;
    }
}

// --- validation
// ----------------------------------------------------------------

//  A namespace or topic: 1 to 255 bytes, no control characters (so they
//  print safely and "\x01" and "\t" stay free as separators).
static const char *s_name_problem(wire_str_t name)
{
    if (name.len == 0) {
        return "is empty";
    }
    if (name.len > WIRE_MAX_NAME) {
        return "is longer than 255 bytes";
    }
    for (uint32_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.ptr[i];
        if (c < 0x20 || c == 0x7f) {
            return "holds a control character";
        }
    }
    return NULL;
}

static bool s_names_ok(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    const char *problem = s_name_problem(f->ns);
    const char *which = "namespace";
    if (!problem) {
        problem = s_name_problem(f->topic);
        which = "topic";
    }
    if (problem) {
        STATS_REFUSED(self->stats, name);
        session_err(self, conn, f->req, WIRE_E_BADNAME, "%s %s %s",
                    wire_type_name(f->type), which, problem);
        return false;
    }
    return true;
}

// --- handlers
// -----------------------------------------------------------------

static void s_hello(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    if (conn->hello) {
        STATS_REFUSED(self->stats, order);
        session_err(self, conn, 0, WIRE_E_ORDER, "HELLO sent twice");
        return;
    }
    if (f->version != WIRE_VERSION) {
        char why[96];
        snprintf(why, sizeof why,
                 "protocol version %llu not supported (this sidecar: %d)",
                 (unsigned long long)f->version, WIRE_VERSION);
        STATS_REFUSED(self->stats, version);
        self->stats->closed_proto++;
        self->io.close(self->io.arg, conn, WIRE_E_VERSION, why);
        return;
    }
    conn->hello = true;
    conn->hello_flags = (uint32_t)f->flags;
    memcpy(conn->instance, f->id.ptr, sizeof conn->instance);
    snprintf(conn->name, sizeof conn->name, "%.*s", (int)f->name.len,
             f->name.ptr);
    wire_frame_t w = {.type = WIRE_WELCOME,
                      .version = WIRE_VERSION,
                      .node = {(const char *)self->cfg.node_id, 16},
                      .channel = wire_str(self->cfg.channel),
                      .max_payload = self->cfg.max_payload,
                      .name = wire_str(ROOMCAST_VERSION_STRING)};
    self->io.send(self->io.arg, conn, &w);
    self->io.hello(self->io.arg, conn);
}

static void s_sub(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    if (s_names_ok(self, conn, f)) {
        self->io.sub(self->io.arg, conn, f);
    }
}

static void s_unsub(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    if (s_names_ok(self, conn, f)) {
        self->io.unsub(self->io.arg, conn, f);
    }
}

static void s_pub(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    if (!s_names_ok(self, conn, f)) {
        return;
    }
    if (f->payload.len > self->cfg.max_payload) {
        STATS_REFUSED(self->stats, size);
        session_err(self, conn, f->req, WIRE_E_TOOBIG,
                    "PUB payload of %u bytes is over the limit of %zu",
                    f->payload.len, self->cfg.max_payload);
        return;
    }
    if (f->flags & ~(uint64_t)(WIRE_F_BINARY | WIRE_F_ECHO)) {
        STATS_REFUSED(self->stats, flags);
        session_err(self, conn, f->req, WIRE_E_PROTO,
                    "PUB flags 0x%llx: unknown bits",
                    (unsigned long long)f->flags);
        return;
    }
    self->io.pub(self->io.arg, conn, f);
}

static bool s_key_ok(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    const char *problem = s_name_problem(f->arg);
    if (problem) {
        STATS_REFUSED(self->stats, name);
        session_err(self, conn, f->req, WIRE_E_BADNAME, "%s presence key %s",
                    wire_type_name(f->type), problem);
        return false;
    }
    return true;
}

static void s_pset(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    if (!s_names_ok(self, conn, f) || !s_key_ok(self, conn, f)) {
        return;
    }
    if (f->meta.len > 65536) {
        STATS_REFUSED(self->stats, size);
        session_err(self, conn, f->req, WIRE_E_TOOBIG,
                    "PSET meta of %u bytes is over 64 KiB", f->meta.len);
        return;
    }
    self->io.pset(self->io.arg, conn, f);
}

static void s_pclear(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    if (s_names_ok(self, conn, f) && s_key_ok(self, conn, f)) {
        self->io.pclear(self->io.arg, conn, f);
    }
}

static void s_plist(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    if (s_names_ok(self, conn, f)) {
        self->io.plist(self->io.arg, conn, f);
    }
}

static void s_query(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    self->io.query(self->io.arg, conn, f);
}

static void s_ping(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    wire_frame_t pong = {.type = WIRE_PONG, .token = f->token};
    self->io.send(self->io.arg, conn, &pong);
}

static void s_pong(session_t *self, conn_t *conn, const wire_frame_t *f)
{
    (void)self;
    (void)conn;
    (void)f;
}

// --- dispatch
// -----------------------------------------------------------------

static handler_fn *const s_handlers[WIRE_TYPE_MAX] = {
    [WIRE_HELLO] = s_hello, [WIRE_SUB] = s_sub,   [WIRE_UNSUB] = s_unsub,
    [WIRE_PUB] = s_pub,     [WIRE_PING] = s_ping, [WIRE_PONG] = s_pong,
    [WIRE_QUERY] = s_query, [WIRE_PSET] = s_pset, [WIRE_PCLEAR] = s_pclear,
    [WIRE_PLIST] = s_plist,
};

void session_frame(session_t *self, conn_t *conn, const uint8_t *body,
                   size_t len)
{
    stats_t *st = self->stats;
    wire_frame_t f;
    if (wire_decode(self->decoder, body, len, &f)) {
        if (errno == EBADMSG) {
            STATS_REFUSED(st, type);
            session_err(self, conn, 0, WIRE_E_BADTYPE, "unknown frame type %d",
                        f.type);
        } else {
            //  not the protocol: nothing later on this stream can be
            //  trusted to be framed right
            STATS_REFUSED(st, protocol);
            st->closed_proto++;
            char why[160];
            snprintf(why, sizeof why, "bad frame (%s): connection closed",
                     wire_decoder_error(self->decoder));
            self->io.close(self->io.arg, conn, WIRE_E_PROTO, why);
        }
        return;
    }
    handler_fn *handler = s_handlers[f.type];
    if (!handler) {
        STATS_REFUSED(st, type);
        session_err(self, conn, f.req, WIRE_E_BADTYPE,
                    "%s is sent by the sidecar, not to it",
                    wire_type_name(f.type));
        return;
    }
    if (!conn->hello && f.type != WIRE_HELLO) {
        STATS_REFUSED(st, order);
        session_err(self, conn, f.req, WIRE_E_ORDER,
                    "%s before HELLO: say HELLO first", wire_type_name(f.type));
        return;
    }
    handler(self, conn, &f);
}

session_t *session_new(const session_config_t *cfg, const session_io_t *io,
                       stats_t *stats)
{
    session_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = *cfg;
    self->io = *io;
    self->stats = stats;
    self->decoder = wire_decoder_new();
    if (!self->decoder) {
        session_destroy(&self);
    }
    return self;
}

void session_destroy(session_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    wire_decoder_destroy(&(*self_p)->decoder);
    free(*self_p);
    *self_p = NULL;
}
