/*  libroomcast: the client side of the app <-> sidecar protocol (wire.h).

    The client owns three descriptors: the Unix socket to the sidecar (it
    changes at every reconnect), a timerfd for the reconnect backoff, and an
    epoll set holding both, which is what rc_fd hands out so that an
    application's event loop keeps one stable descriptor across reconnects.
*/
#include "roomcast.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK    (64 * 1024)
#define READ_PER_CALL (1024 * 1024) // fairness: then return to the app
#define MAX_NAME      WIRE_MAX_NAME
#define FRAME_SLACK   4096 // frame bytes beyond the payload limit

//  Request ids carry the stage in their low two bits, so an ERR can be
//  attributed without remembering every request.
#define REQ_STAGE(req) ((rc_stage_t)((req)&3))

struct rc_msg_t {
    const char *ns;
    const char *topic;
    const uint8_t *data;
    size_t size;
    bool binary;
    uint64_t seq;
    //  The ids as hex, made when first asked for (most apps never ask):
    //  while origin[0] is 0, origin_id and node_id point at the raw ids in
    //  the frame being delivered (a view lives only in on_message, on the
    //  thread that dispatches; rc_msg_dup makes the hex before copying).
    char origin[RC_ID_HEX_SIZE];
    char origin_node[RC_ID_HEX_SIZE];
    const uint8_t *origin_id;
    const uint8_t *node_id;
    rc_msg_t *next; // rc_recv queue
    char storage[]; // ns\0 topic\0 data\0 when owned
};

struct rc_reply_t {
    size_t size;
    char **cells; // key, value, key, value ...
};

typedef struct {
    char *ns;
    char *topic;
    char *key;     // presence entries only
    uint8_t *meta; // presence entries only
    size_t meta_size;
    uint64_t req;    // of the last SUB sent
    bool acked;      // the sidecar confirmed the last SUB
    bool everywhere; // ... and every live peer of the sidecar holds it
} sub_t;

struct rc_client_t {
    rc_options_t opts;
    struct sockaddr_un addr;
    int fd;         // socket to the sidecar, -1 when disconnected
    int efd;        // epoll set: fd and tfd; what rc_fd returns
    int tfd;        // reconnect timer
    bool tfd_armed; // set and not yet read: s_work looks at it
    rc_state_t state;
    int backoff_ms;
    rc_status_t status;
    char detail[128];
    uint8_t instance[WIRE_ID_SIZE];
    char instance_hex[RC_ID_HEX_SIZE];
    char node_hex[RC_ID_HEX_SIZE];
    char channel[MAX_NAME + 1];
    size_t max_payload;
    wire_buf_t in;   // bytes read, not yet a whole frame
    wire_buf_t out;  // frames not yet written
    size_t out_sent; // bytes of out already written
    bool want_out;   // EPOLLOUT registered
    wire_decoder_t *decoder;
    bool welcomed;           // a WELCOME came before: the next one is a return
    zhashx_t *subs;          // key -> sub_t
    zhashx_t *pubseq;        // key -> uint64_t last sequence published
    zhashx_t *presence;      // key -> sub_t with key and meta: our entries
    rc_presence_fn *list_fn; // rc_presence_list in progress
    void *list_arg;
    int listed;
    rc_msg_t *queue; // for rc_recv
    rc_msg_t *queue_tail;
    uint64_t next_req;
    uint64_t wait_req; // request a blocking call waits for
    bool wait_done;
    int wait_err;
    rc_reply_t *wait_reply;
    int last_sub_err;
    int connect_err;      // an ERR received before WELCOME
    bool draining;        // reading what is left after a failed write
    const char *wait_key; // subscription rc_subscribe_wait waits for
    int delivered;        // messages handed over by the current s_work
    uint64_t dropped_echo;
};

// --- small helpers ----------------------------------------------------------

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_hex(const uint8_t *id, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * n] = 0;
}

static bool s_name_ok(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && len <= MAX_NAME;
}

//  Subscription and sequence keys: wire_topic_key, unique for any pair of
//  names (checked by the callers: at most MAX_NAME bytes each).
static void s_key(char *key, const char *ns, const char *topic)
{
    (void)wire_topic_key(key, ns, strlen(ns), topic, strlen(topic));
}
#define KEY_SIZE WIRE_TOPIC_KEY_MAX

static uint64_t s_next_req(rc_client_t *self, rc_stage_t stage)
{
    self->next_req += 4;
    return self->next_req | (uint64_t)stage;
}

static int s_errno_of(uint64_t code)
{
    switch (code) {
        case WIRE_E_TOOBIG:
            return EMSGSIZE;
        case WIRE_E_BADTYPE:
            return EBADMSG;
        case WIRE_E_BADNAME:
            return EINVAL;
        case WIRE_E_VERSION:
            return EPROTONOSUPPORT;
        case WIRE_E_SLOW:
            return ENOBUFS;
        case WIRE_E_SHUTDOWN:
            return ESHUTDOWN;
        case WIRE_E_BADQUERY:
            return EINVAL;
        case WIRE_E_LIMIT:
            return ENOSPC;
        case WIRE_E_DENIED:
            return EACCES;
        default:
            return EPROTO;
    }
}

static void s_error(rc_client_t *self, rc_stage_t stage, int err,
                    const char *text)
{
    if (self->opts.on_error) {
        self->opts.on_error(self, stage, err, text, self->opts.arg);
    }
}

static void s_status_changed(rc_client_t *self)
{
    self->status.state = self->state;
    self->status.detail = self->detail;
    if (self->opts.on_status) {
        self->opts.on_status(self, &self->status, self->opts.arg);
    }
}

// --- output -----------------------------------------------------------------

static void s_read(rc_client_t *self);
static void s_disconnect(rc_client_t *self, int err, const char *why);

static void s_watch_out(rc_client_t *self, bool on)
{
    if (self->fd < 0 || self->want_out == on) {
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.fd = self->fd};
    if (epoll_ctl(self->efd, EPOLL_CTL_MOD, self->fd, &ev) == 0) {
        self->want_out = on;
    }
}

//  Write what is buffered. Returns 0, or -1 when the connection broke.
static int s_flush_some(rc_client_t *self)
{
    while (self->fd >= 0 && self->out_sent < self->out.len) {
        ssize_t n = send(self->fd, self->out.data + self->out_sent,
                         self->out.len - self->out_sent, MSG_NOSIGNAL);
        if (n > 0) {
            self->out_sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            //  A sidecar that refuses us (or cuts us off) writes why and
            //  closes: read that before giving up, so the caller learns
            //  the reason rather than a bare EPIPE.
            int err = errno;
            if (!self->draining) {
                self->draining = true;
                s_read(self);
                self->draining = false;
            }
            s_disconnect(self, err, "write to sidecar failed");
            return -1;
        }
    }
    if (self->out_sent == self->out.len) {
        self->out.len = self->out_sent = 0;
    } else if (self->out_sent > self->out.cap / 2) {
        wire_buf_consume(&self->out, self->out_sent);
        self->out_sent = 0;
    }
    s_watch_out(self, self->out.len > 0);
    return self->fd >= 0 ? 0 : -1;
}

static int s_send(rc_client_t *self, const wire_frame_t *frame)
{
    if (wire_encode(&self->out, frame)) {
        return -1;
    }
    return s_flush_some(self) ? (errno = ENOTCONN, -1) : 0;
}

static int s_send_sub(rc_client_t *self, sub_t *sub)
{
    sub->req = s_next_req(self, RC_STAGE_SUBSCRIBE);
    sub->acked = sub->everywhere = false;
    wire_frame_t f = {.type = WIRE_SUB,
                      .req = sub->req,
                      .ns = wire_str(sub->ns),
                      .topic = wire_str(sub->topic)};
    return s_send(self, &f);
}

static int s_send_pset(rc_client_t *self, sub_t *p)
{
    wire_frame_t f = {.type = WIRE_PSET,
                      .req = s_next_req(self, RC_STAGE_PUBLISH),
                      .ns = wire_str(p->ns),
                      .topic = wire_str(p->topic),
                      .arg = wire_str(p->key),
                      .meta = {(const char *)p->meta, (uint32_t)p->meta_size}};
    return s_send(self, &f);
}

// --- connection -------------------------------------------------------------

static void s_arm_reconnect(rc_client_t *self)
{
    int delay = self->backoff_ms;
    //  +-20% jitter so restarted sidecars do not see every app at once
    uint32_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == sizeof r) {
        delay = delay * 8 / 10 + (int)(r % (uint32_t)(delay * 4 / 10 + 1));
    }
    self->backoff_ms *= 2;
    if (self->backoff_ms > self->opts.reconnect_max_ms) {
        self->backoff_ms = self->opts.reconnect_max_ms;
    }
    struct itimerspec its = {
        .it_value = {delay / 1000, (long)(delay % 1000) * 1000000 + 1}};
    timerfd_settime(self->tfd, 0, &its, NULL);
    self->tfd_armed = true;
}

static void s_disconnect(rc_client_t *self, int err, const char *why)
{
    if (self->fd < 0) {
        return;
    }
    epoll_ctl(self->efd, EPOLL_CTL_DEL, self->fd, NULL);
    close(self->fd);
    self->fd = -1;
    self->want_out = false;
    size_t unsent = self->out.len - self->out_sent;
    self->out.len = self->out_sent = 0;
    self->in.len = 0;
    bool was_up = self->state == RC_CONNECTED;
    self->state = RC_DISCONNECTED;
    self->status.readable = self->status.writable = false;
    self->status.live_peers = 0;
    snprintf(self->detail, sizeof self->detail, "%s%s%s", why, err ? ": " : "",
             err ? strerror(err) : "");
    if (unsent) {
        char text[96];
        snprintf(text, sizeof text, "%zu bytes unsent at disconnect dropped",
                 unsent);
        s_error(self, RC_STAGE_PUBLISH, ENOTCONN, text);
    }
    if (self->wait_req) {
        self->wait_done = true;
        self->wait_err = ENOTCONN;
    }
    if (was_up || self->opts.retry) {
        s_status_changed(self);
    }
    s_arm_reconnect(self);
}

//  Open the socket and queue HELLO and every subscription. Returns 0, or -1
//  with errno when the sidecar cannot be reached.
static int s_connect(rc_client_t *self)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&self->addr, sizeof self->addr)) {
        int err = errno == EAGAIN ? ECONNREFUSED : errno;
        close(fd);
        errno = err;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(self->efd, EPOLL_CTL_ADD, fd, &ev)) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    self->fd = fd;
    self->state = RC_CONNECTING;
    wire_frame_t hello = {.type = WIRE_HELLO,
                          .version = WIRE_VERSION,
                          .id = {(const char *)self->instance, WIRE_ID_SIZE},
                          .name = wire_str(self->opts.name),
                          .flags =
                              (self->opts.gaps ? WIRE_HF_GAPS : 0) |
                              (self->opts.on_presence ? WIRE_HF_PRESENCE : 0) |
                              (self->opts.on_member ? WIRE_HF_MEMBERS : 0)};
    if (s_send(self, &hello)) {
        return -1;
    }
    for (sub_t *sub = zhashx_first(self->subs); sub && self->fd >= 0;
         sub = zhashx_next(self->subs)) {
        if (s_send_sub(self, sub)) {
            return -1;
        }
    }
    for (sub_t *p = zhashx_first(self->presence); p && self->fd >= 0;
         p = zhashx_next(self->presence)) {
        if (s_send_pset(self, p)) {
            return -1;
        }
    }
    return 0;
}

static void s_try_reconnect(rc_client_t *self)
{
    uint64_t expirations;
    if (read(self->tfd, &expirations, sizeof expirations) < 0) {
        return;
    }
    self->tfd_armed = false;
    if (self->fd >= 0) {
        return;
    }
    if (s_connect(self)) {
        s_arm_reconnect(self);
    }
}

// --- input ------------------------------------------------------------------

typedef void(handler_fn)(rc_client_t *self, const wire_frame_t *f);

static void s_gaps_after_reconnect(rc_client_t *self);

static void s_on_welcome(rc_client_t *self, const wire_frame_t *f)
{
    s_hex((const uint8_t *)f->node.ptr, WIRE_ID_SIZE, self->node_hex);
    snprintf(self->channel, sizeof self->channel, "%.*s", (int)f->channel.len,
             f->channel.ptr);
    self->max_payload = f->max_payload;
    self->state = RC_CONNECTED;
    self->backoff_ms = self->opts.reconnect_min_ms;
    snprintf(self->detail, sizeof self->detail, "connected");
    s_status_changed(self);
    if (self->welcomed) {
        s_gaps_after_reconnect(self);
    }
    self->welcomed = true;
}

static void s_copy_name(char *dst, wire_str_t s)
{
    size_t n = s.len < MAX_NAME ? s.len : MAX_NAME;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
}

static void s_queue(rc_client_t *self, rc_msg_t *msg)
{
    msg->next = NULL;
    if (self->queue_tail) {
        self->queue_tail->next = msg;
    } else {
        self->queue = msg;
    }
    self->queue_tail = msg;
}

static void s_on_msg(rc_client_t *self, const wire_frame_t *f)
{
    if (memcmp(f->id.ptr, self->instance, WIRE_ID_SIZE) == 0 &&
        !(f->flags & WIRE_F_ECHO)) {
        self->dropped_echo++; // our own publish, not asked for
        return;
    }
    char ns[MAX_NAME + 1], topic[MAX_NAME + 1];
    s_copy_name(ns, f->ns);
    s_copy_name(topic, f->topic);
    rc_msg_t view = {.ns = ns,
                     .topic = topic,
                     .data = (const uint8_t *)f->payload.ptr,
                     .size = f->payload.len,
                     .binary = (f->flags & WIRE_F_BINARY) != 0,
                     .seq = f->seq,
                     .origin_id = (const uint8_t *)f->id.ptr,
                     .node_id = (const uint8_t *)f->node.ptr};
    self->delivered++;
    if (self->opts.on_message) {
        self->opts.on_message(self, &view, self->opts.arg);
        return;
    }
    rc_msg_t *msg = rc_msg_dup(&view);
    if (!msg) {
        s_error(self, RC_STAGE_DELIVERY, ENOMEM, "message dropped: no memory");
        return;
    }
    s_queue(self, msg);
}

static void s_on_err(rc_client_t *self, const wire_frame_t *f)
{
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)f->text.len, f->text.ptr);
    int err = s_errno_of(f->code);
    rc_stage_t stage = f->req ? REQ_STAGE(f->req) : RC_STAGE_DELIVERY;
    if (self->state == RC_CONNECTING) {
        self->connect_err = err; // refused at the door: say why
        stage = RC_STAGE_CONNECT;
    }
    if (stage == RC_STAGE_SUBSCRIBE) {
        //  a refused subscription would be refused again at every
        //  reconnect: forget it
        for (sub_t *sub = zhashx_first(self->subs); sub;
             sub = zhashx_next(self->subs)) {
            if (sub->req == f->req) {
                self->last_sub_err = err;
                zhashx_delete(self->subs, zhashx_cursor(self->subs));
                break;
            }
        }
    }
    if (f->req && f->req == self->wait_req) {
        self->wait_done = true;
        self->wait_err = err;
    }
    s_error(self, stage, err, text);
}

static void s_on_ping(rc_client_t *self, const wire_frame_t *f)
{
    wire_frame_t pong = {.type = WIRE_PONG, .token = f->token};
    (void)s_send(self, &pong);
}

static void s_on_reply(rc_client_t *self, const wire_frame_t *f)
{
    if (f->req != self->wait_req || self->wait_reply) {
        return;
    }
    rc_reply_t *reply = calloc(1, sizeof *reply);
    if (reply && f->nrows) {
        reply->cells = calloc(2 * f->nrows, sizeof(char *));
    }
    if (!reply || (f->nrows && !reply->cells)) {
        free(reply);
        self->wait_err = ENOMEM;
        self->wait_done = true;
        return;
    }
    reply->size = f->nrows;
    for (size_t i = 0; i < 2 * f->nrows; i++) {
        reply->cells[i] = strndup(f->rows[i].ptr, f->rows[i].len);
    }
    self->wait_reply = reply;
    self->wait_done = true;
    self->wait_err = 0;
}

static void s_on_status(rc_client_t *self, const wire_frame_t *f)
{
    self->status.readable = f->readable;
    self->status.writable = f->writable;
    self->status.live_peers = (unsigned)f->count;
    snprintf(self->detail, sizeof self->detail, "%.*s", (int)f->text.len,
             f->text.ptr);
    s_status_changed(self);
}

static void s_on_gap(rc_client_t *self, const wire_frame_t *f)
{
    if (!self->opts.on_gap) {
        return;
    }
    char ns[MAX_NAME + 1], topic[MAX_NAME + 1], origin[RC_ID_HEX_SIZE];
    s_copy_name(ns, f->ns);
    s_copy_name(topic, f->topic);
    s_hex((const uint8_t *)f->id.ptr, WIRE_ID_SIZE, origin);
    rc_gap_t gap = {ns, topic, origin, f->count, (rc_gap_reason_t)f->code};
    self->opts.on_gap(self, &gap, self->opts.arg);
}

//  Back after losing the sidecar: every topic this client holds may have
//  missed messages meanwhile (how many, nobody can say).
static void s_gaps_after_reconnect(rc_client_t *self)
{
    if (!self->opts.on_gap) {
        return;
    }
    for (sub_t *sub = zhashx_first(self->subs); sub;
         sub = zhashx_next(self->subs)) {
        rc_gap_t gap = {sub->ns, sub->topic, "", 0, RC_GAP_RECONNECT};
        self->opts.on_gap(self, &gap, self->opts.arg);
    }
}

static void s_on_suback(rc_client_t *self, const wire_frame_t *f)
{
    char key[KEY_SIZE], ns[MAX_NAME + 1], topic[MAX_NAME + 1];
    s_copy_name(ns, f->ns);
    s_copy_name(topic, f->topic);
    s_key(key, ns, topic);
    sub_t *sub = zhashx_lookup(self->subs, key);
    if (sub && sub->req == f->req) {
        sub->acked = true;
        sub->everywhere |= f->everywhere;
    }
}

static void s_on_pevent(rc_client_t *self, const wire_frame_t *f)
{
    char ns[MAX_NAME + 1], topic[MAX_NAME + 1], key[MAX_NAME + 1];
    char node[RC_ID_HEX_SIZE];
    s_copy_name(ns, f->ns);
    s_copy_name(topic, f->topic);
    s_copy_name(key, f->arg);
    s_hex((const uint8_t *)f->node.ptr, WIRE_ID_SIZE, node);
    rc_presence_t p = {ns,          topic, key,       f->meta.ptr,
                       f->meta.len, node,  f->present};
    if (self->list_fn) {
        self->listed++;
        self->list_fn(self, &p, self->list_arg);
    } else if (self->opts.on_presence) {
        self->opts.on_presence(self, &p, self->opts.arg);
    }
}

static void s_on_member(rc_client_t *self, const wire_frame_t *f)
{
    if (!self->opts.on_member) {
        return;
    }
    char name[MAX_NAME + 1], endpoint[MAX_NAME + 1], node[RC_ID_HEX_SIZE];
    s_copy_name(name, f->name);
    s_copy_name(endpoint, f->text);
    s_hex((const uint8_t *)f->node.ptr, WIRE_ID_SIZE, node);
    rc_member_t m = {node, name, (rc_member_state_t)f->count, endpoint};
    self->opts.on_member(self, &m, self->opts.arg);
}

//  Frames a sidecar sends; others are ignored (a newer sidecar may send
//  more types than this library knows).
static handler_fn *const s_handlers[WIRE_TYPE_MAX] = {
    [WIRE_WELCOME] = s_on_welcome, [WIRE_MSG] = s_on_msg,
    [WIRE_ERR] = s_on_err,         [WIRE_PING] = s_on_ping,
    [WIRE_REPLY] = s_on_reply,     [WIRE_STATUS] = s_on_status,
    [WIRE_GAP] = s_on_gap,         [WIRE_SUBACK] = s_on_suback,
    [WIRE_PEVENT] = s_on_pevent,   [WIRE_MEMBER] = s_on_member,
};

//  Read what the socket has (bounded per call) and handle every whole
//  frame.
static void s_read(rc_client_t *self)
{
    size_t total = 0;
    size_t max_body =
        (self->max_payload ? self->max_payload : WIRE_MAX_FRAME_DEFAULT) +
        FRAME_SLACK;
    while (self->fd >= 0 && total < READ_PER_CALL) {
        //  in holds at most the head of one frame (whole ones are handled
        //  and moved out after each read). The head of a frame larger
        //  than a read is completed by a read of just its rest: that read
        //  ends on the frame's end, and nothing is left to move to the
        //  front (moving the head of every 64 KiB message was most of the
        //  subscriber's instructions at that size).
        size_t room = 0, body = 0;
        if (self->in.len >= WIRE_PREFIX &&
            wire_peek(self->in.data, self->in.len, max_body, &body) == 0 &&
            WIRE_PREFIX + body > READ_CHUNK) {
            room = WIRE_PREFIX + body - self->in.len;
        }
        if (wire_buf_reserve(&self->in, room ? room : READ_CHUNK)) {
            s_disconnect(self, ENOMEM, "no memory for input");
            return;
        }
        if (!room) {
            room = READ_CHUNK;
        }
        ssize_t n = read(self->fd, self->in.data + self->in.len, room);
        if (n == 0) {
            s_disconnect(self, 0, "sidecar closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                s_disconnect(self, errno, "read from sidecar failed");
            }
            return;
        }
        //  less than there was room for: the socket is empty, and a read
        //  more would only say EAGAIN (the epoll set is level-triggered)
        bool drained = (size_t)n < room;
        self->in.len += (size_t)n;
        total += (size_t)n;
        size_t off = 0;
        int rc;
        while (self->fd >= 0 &&
               (rc = wire_peek(self->in.data + off, self->in.len - off,
                               max_body, &body)) == 1) {
            wire_frame_t f;
            const uint8_t *p = self->in.data + off + WIRE_PREFIX;
            off += WIRE_PREFIX + body;
            if (wire_decode(self->decoder, p, body, &f) == 0 &&
                s_handlers[f.type]) {
                //  draining after a failed write: only why we were cut
                //  off matters (no app callback runs inside a publish)
                if (self->draining && f.type != WIRE_ERR) {
                    continue;
                }
                s_handlers[f.type](self, &f);
            } else if (errno == EPROTO) {
                s_error(self, RC_STAGE_DELIVERY, EPROTO,
                        wire_decoder_error(self->decoder));
            }
        }
        if (self->fd < 0) {
            return;
        }
        if (rc < 0) {
            s_disconnect(self, errno, "bad frame from sidecar");
            return;
        }
        wire_buf_consume(&self->in, off);
        if (drained) {
            return;
        }
    }
}

// --- public API
// ---------------------------------------------------------------

void rc_options_init(rc_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->connect_timeout_ms = 5000;
    opts->reconnect_min_ms = 50;
    opts->reconnect_max_ms = 2000;
    opts->send_budget = 8 * 1024 * 1024;
}

static void s_sub_destroy(void **item)
{
    sub_t *sub = *item;
    if (sub) {
        free(sub->ns);
        free(sub->topic);
        free(sub->key);
        free(sub->meta);
        free(sub);
        *item = NULL;
    }
}

static void s_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

static int s_work(rc_client_t *self);
static bool s_waited(rc_client_t *self);

//  Run the client until done() holds or the deadline passes (-1: none).
static int s_wait_until(rc_client_t *self, bool (*done)(rc_client_t *),
                        int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    while (!done(self)) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - s_now_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait = (int)left;
        }
        struct pollfd pfd = {.fd = self->efd, .events = POLLIN};
        if (poll(&pfd, 1, wait) < 0 && errno != EINTR) {
            return -1;
        }
        if (s_work(self) < 0) {
            return -1;
        }
    }
    return 0;
}

static bool s_is_connected(rc_client_t *self)
{
    return self->state == RC_CONNECTED || (self->fd < 0 && !self->opts.retry);
}

rc_client_t *rc_connect(const char *socket_path, const rc_options_t *opts)
{
    if (!socket_path) {
        socket_path = getenv("ROOMCAST_SOCKET");
    }
    if (!socket_path || !*socket_path) {
        socket_path = RC_DEFAULT_SOCKET;
    }
    rc_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    if (opts) {
        self->opts = *opts;
    } else {
        rc_options_init(&self->opts);
    }
    if (self->opts.reconnect_min_ms <= 0) {
        self->opts.reconnect_min_ms = 50;
    }
    if (self->opts.reconnect_max_ms < self->opts.reconnect_min_ms) {
        self->opts.reconnect_max_ms = self->opts.reconnect_min_ms;
    }
    self->backoff_ms = self->opts.reconnect_min_ms;
    self->fd = -1;
    self->addr.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof self->addr.sun_path) {
        free(self);
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(self->addr.sun_path, socket_path);
    if (getrandom(self->instance, WIRE_ID_SIZE, 0) != WIRE_ID_SIZE) {
        free(self);
        return NULL;
    }
    s_hex(self->instance, WIRE_ID_SIZE, self->instance_hex);
    self->efd = epoll_create1(EPOLL_CLOEXEC);
    self->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    self->decoder = wire_decoder_new();
    self->subs = zhashx_new();
    self->pubseq = zhashx_new();
    self->presence = zhashx_new();
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = self->tfd};
    if (self->efd < 0 || self->tfd < 0 || !self->decoder || !self->subs ||
        !self->pubseq || !self->presence ||
        epoll_ctl(self->efd, EPOLL_CTL_ADD, self->tfd, &ev)) {
        rc_close(&self);
        errno = ENOMEM;
        return NULL;
    }
    zhashx_set_destructor(self->subs, s_sub_destroy);
    zhashx_set_destructor(self->presence, s_sub_destroy);
    zhashx_set_destructor(self->pubseq, s_free_item);
    if (s_connect(self)) {
        int err = self->connect_err ? self->connect_err : errno;
        if (!self->opts.retry) {
            rc_close(&self);
            errno = err;
            return NULL;
        }
        snprintf(self->detail, sizeof self->detail, "cannot reach %s: %s",
                 socket_path, strerror(err));
        s_arm_reconnect(self);
        return self;
    }
    if (s_wait_until(self, s_is_connected, self->opts.connect_timeout_ms) ||
        (self->state != RC_CONNECTED && !self->opts.retry)) {
        int err = self->state == RC_CONNECTED ? 0
                  : self->connect_err         ? self->connect_err
                  : errno == ETIMEDOUT        ? ETIMEDOUT
                                              : ECONNREFUSED;
        if (!self->opts.retry) {
            rc_close(&self);
            errno = err ? err : EPROTO;
            return NULL;
        }
    }
    return self;
}

void rc_close(rc_client_t **client_p)
{
    if (!client_p || !*client_p) {
        return;
    }
    rc_client_t *self = *client_p;
    if (self->fd >= 0) {
        close(self->fd);
    }
    if (self->efd >= 0) {
        close(self->efd);
    }
    if (self->tfd >= 0) {
        close(self->tfd);
    }
    wire_buf_free(&self->in);
    wire_buf_free(&self->out);
    wire_decoder_destroy(&self->decoder);
    zhashx_destroy(&self->subs);
    zhashx_destroy(&self->pubseq);
    zhashx_destroy(&self->presence);
    while (self->queue) {
        rc_msg_t *next = self->queue->next;
        free(self->queue);
        self->queue = next;
    }
    rc_reply_destroy(&self->wait_reply);
    free(self);
    *client_p = NULL;
}

int rc_subscribe(rc_client_t *self, const char *ns, const char *topic)
{
    if (!s_name_ok(ns) || !s_name_ok(topic)) {
        errno = EINVAL;
        return -1;
    }
    char key[KEY_SIZE];
    s_key(key, ns, topic);
    if (zhashx_lookup(self->subs, key)) {
        return 0;
    }
    sub_t *sub = calloc(1, sizeof *sub);
    if (!sub || !(sub->ns = strdup(ns)) || !(sub->topic = strdup(topic))) {
        void *item = sub;
        s_sub_destroy(&item);
        errno = ENOMEM;
        return -1;
    }
    zhashx_insert(self->subs, key, sub);
    if (self->fd >= 0) {
        (void)s_send_sub(self, sub); // a broken link resends on reconnect
    }
    return 0;
}

static bool s_sub_settled(rc_client_t *self)
{
    sub_t *sub = zhashx_lookup(self->subs, self->wait_key);
    return !sub || sub->everywhere;
}

int rc_subscribe_wait(rc_client_t *self, const char *ns, const char *topic,
                      int timeout_ms)
{
    if (rc_subscribe(self, ns, topic)) {
        return -1;
    }
    char key[KEY_SIZE];
    s_key(key, ns, topic);
    self->last_sub_err = 0;
    self->wait_key = key;
    int rc = s_wait_until(self, s_sub_settled, timeout_ms);
    self->wait_key = NULL;
    if (rc) {
        return -1;
    }
    if (!zhashx_lookup(self->subs, key)) {
        errno = self->last_sub_err ? self->last_sub_err : EINVAL;
        return -1;
    }
    return 0;
}

int rc_unsubscribe(rc_client_t *self, const char *ns, const char *topic)
{
    if (!s_name_ok(ns) || !s_name_ok(topic)) {
        errno = EINVAL;
        return -1;
    }
    char key[KEY_SIZE];
    s_key(key, ns, topic);
    if (!zhashx_lookup(self->subs, key)) {
        return 0;
    }
    zhashx_delete(self->subs, key);
    if (self->fd >= 0) {
        wire_frame_t f = {.type = WIRE_UNSUB,
                          .req = s_next_req(self, RC_STAGE_SUBSCRIBE),
                          .ns = wire_str(ns),
                          .topic = wire_str(topic)};
        (void)s_send(self, &f);
    }
    return 0;
}

int rc_publish(rc_client_t *self, const char *ns, const char *topic,
               const void *data, size_t len, int flags)
{
    if (!s_name_ok(ns) || !s_name_ok(topic) ||
        (flags & ~(RC_BINARY | RC_ECHO | RC_MORE)) || (len && !data)) {
        errno = EINVAL;
        return -1;
    }
    if (self->state != RC_CONNECTED) {
        errno = ENOTCONN;
        return -1;
    }
    if (len > self->max_payload) {
        errno = EMSGSIZE;
        return -1;
    }
    if (self->out.len - self->out_sent > self->opts.send_budget) {
        (void)s_flush_some(self);
        if (self->out.len - self->out_sent > self->opts.send_budget) {
            errno = self->fd >= 0 ? EAGAIN : ENOTCONN;
            return -1;
        }
    }
    char key[KEY_SIZE];
    s_key(key, ns, topic);
    uint64_t *seq = zhashx_lookup(self->pubseq, key);
    if (!seq) {
        seq = calloc(1, sizeof *seq);
        if (!seq) {
            errno = ENOMEM;
            return -1;
        }
        zhashx_insert(self->pubseq, key, seq);
    }
    wire_frame_t f = {.type = WIRE_PUB,
                      .req = s_next_req(self, RC_STAGE_PUBLISH),
                      .ns = wire_str(ns),
                      .topic = wire_str(topic),
                      .flags = (uint64_t)(flags & ~RC_MORE),
                      .seq = ++*seq,
                      .payload = {(const char *)data, (uint32_t)len}};
    if ((flags & RC_MORE) && self->fd >= 0) {
        //  Pipelined: write when the burst ends or the buffer fills; until
        //  then rc_fd polls writable, so an event loop flushes it anyway.
        if (wire_encode(&self->out, &f)) {
            return -1;
        }
        if (self->out.len - self->out_sent < RC_MORE_BYTES) {
            s_watch_out(self, true);
            return 0;
        }
        return s_flush_some(self) ? (errno = ENOTCONN, -1) : 0;
    }
    return s_send(self, &f);
}

static void s_key3(char *out, size_t size, const char *ns, const char *topic,
                   const char *key)
{
    snprintf(out, size, "%zu:%zu:%s%s%s", strlen(ns), strlen(topic), ns, topic,
             key);
}
#define KEY3_SIZE (3 * MAX_NAME + 16)

int rc_presence_set(rc_client_t *self, const char *ns, const char *topic,
                    const char *key, const void *meta, size_t meta_size)
{
    if (!s_name_ok(ns) || !s_name_ok(topic) || !s_name_ok(key) ||
        meta_size > 65536 || (meta_size && !meta)) {
        errno = EINVAL;
        return -1;
    }
    sub_t *p = calloc(1, sizeof *p);
    if (!p || !(p->ns = strdup(ns)) || !(p->topic = strdup(topic)) ||
        !(p->key = strdup(key)) ||
        (meta_size && !(p->meta = malloc(meta_size)))) {
        void *item = p;
        s_sub_destroy(&item);
        errno = ENOMEM;
        return -1;
    }
    if (meta_size) {
        memcpy(p->meta, meta, meta_size);
    }
    p->meta_size = meta_size;
    char k[KEY3_SIZE];
    s_key3(k, sizeof k, ns, topic, key);
    zhashx_update(self->presence, k, p);
    if (self->fd >= 0) {
        (void)s_send_pset(self, p); // a broken link resends on reconnect
    }
    return 0;
}

int rc_presence_clear(rc_client_t *self, const char *ns, const char *topic,
                      const char *key)
{
    if (!s_name_ok(ns) || !s_name_ok(topic) || !s_name_ok(key)) {
        errno = EINVAL;
        return -1;
    }
    char k[KEY3_SIZE];
    s_key3(k, sizeof k, ns, topic, key);
    zhashx_delete(self->presence, k);
    if (self->fd >= 0) {
        wire_frame_t f = {.type = WIRE_PCLEAR,
                          .req = s_next_req(self, RC_STAGE_PUBLISH),
                          .ns = wire_str(ns),
                          .topic = wire_str(topic),
                          .arg = wire_str(key)};
        (void)s_send(self, &f);
    }
    return 0;
}

int rc_presence_list(rc_client_t *self, const char *ns, const char *topic,
                     rc_presence_fn *fn, void *arg, int timeout_ms)
{
    if (!s_name_ok(ns) || !s_name_ok(topic)) {
        errno = EINVAL;
        return -1;
    }
    if (self->state != RC_CONNECTED) {
        errno = ENOTCONN;
        return -1;
    }
    wire_frame_t f = {.type = WIRE_PLIST,
                      .req = s_next_req(self, RC_STAGE_CONNECT),
                      .ns = wire_str(ns),
                      .topic = wire_str(topic)};
    self->wait_req = f.req;
    self->wait_done = false;
    self->wait_err = 0;
    self->list_fn = fn;
    self->list_arg = arg;
    self->listed = 0;
    int rc = s_send(self, &f) ? -1 : s_wait_until(self, s_waited, timeout_ms);
    self->wait_req = 0;
    self->list_fn = NULL;
    rc_reply_destroy(&self->wait_reply);
    if (rc == 0 && self->wait_err) {
        errno = self->wait_err;
        rc = -1;
    }
    return rc == 0 ? self->listed : -1;
}

//  Everything ready, without blocking. Returns messages delivered or -1.
static int s_work(rc_client_t *self)
{
    self->delivered = 0;
    //  only a reconnect timer needs the epoll set asked: the socket is read
    //  anyway (a call less per dispatch while connected)
    if (self->tfd_armed) {
        struct epoll_event evs[4];
        int n = epoll_wait(self->efd, evs, 4, 0);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == self->tfd) {
                s_try_reconnect(self);
            }
        }
    }
    if (self->fd >= 0) {
        s_read(self);
    }
    if (self->fd >= 0 && self->out.len) {
        (void)s_flush_some(self);
    }
    return self->delivered;
}

int rc_dispatch(rc_client_t *self)
{
    return s_work(self);
}

static bool s_has_msg(rc_client_t *self)
{
    return self->queue != NULL;
}

int rc_recv(rc_client_t *self, rc_msg_t **msg_p, int timeout_ms)
{
    *msg_p = NULL;
    if (!self->queue) {
        (void)s_work(self);
    }
    if (s_wait_until(self, s_has_msg, timeout_ms)) {
        return -1;
    }
    rc_msg_t *msg = self->queue;
    self->queue = msg->next;
    if (!self->queue) {
        self->queue_tail = NULL;
    }
    msg->next = NULL;
    *msg_p = msg;
    return 0;
}

int rc_fd(const rc_client_t *self)
{
    return self->efd;
}

static bool s_flushed(rc_client_t *self)
{
    return self->out.len == 0 || self->fd < 0;
}

int rc_flush(rc_client_t *self, int timeout_ms)
{
    if (s_wait_until(self, s_flushed, timeout_ms)) {
        return -1;
    }
    if (self->out.len || (self->fd < 0)) {
        errno = ENOTCONN;
        return -1;
    }
    return 0;
}

rc_state_t rc_state(const rc_client_t *self)
{
    return self->state;
}

const char *rc_instance_id(const rc_client_t *self)
{
    return self->instance_hex;
}

const char *rc_node_id(const rc_client_t *self)
{
    return self->node_hex;
}

const char *rc_channel(const rc_client_t *self)
{
    return self->channel;
}

static bool s_waited(rc_client_t *self)
{
    return self->wait_done;
}

int rc_query(rc_client_t *self, const char *what, const char *arg,
             rc_reply_t **reply_p, int timeout_ms)
{
    *reply_p = NULL;
    if (self->state != RC_CONNECTED) {
        errno = ENOTCONN;
        return -1;
    }
    wire_frame_t f = {.type = WIRE_QUERY,
                      .req = s_next_req(self, RC_STAGE_CONNECT),
                      .text = wire_str(what),
                      .arg = wire_str(arg)};
    self->wait_req = f.req;
    self->wait_done = false;
    self->wait_err = 0;
    int rc = s_send(self, &f) ? -1 : s_wait_until(self, s_waited, timeout_ms);
    self->wait_req = 0;
    if (rc == 0 && self->wait_err) {
        errno = self->wait_err;
        rc = -1;
    }
    if (rc == 0) {
        *reply_p = self->wait_reply;
    } else {
        rc_reply_destroy(&self->wait_reply);
    }
    self->wait_reply = NULL;
    return rc;
}

size_t rc_reply_size(const rc_reply_t *reply)
{
    return reply->size;
}

const char *rc_reply_key(const rc_reply_t *reply, size_t index)
{
    return index < reply->size && reply->cells[2 * index]
               ? reply->cells[2 * index]
               : "";
}

const char *rc_reply_value(const rc_reply_t *reply, size_t index)
{
    return index < reply->size && reply->cells[2 * index + 1]
               ? reply->cells[2 * index + 1]
               : "";
}

void rc_reply_destroy(rc_reply_t **reply_p)
{
    if (!reply_p || !*reply_p) {
        return;
    }
    rc_reply_t *reply = *reply_p;
    for (size_t i = 0; i < 2 * reply->size; i++) {
        free(reply->cells[i]);
    }
    free(reply->cells);
    free(reply);
    *reply_p = NULL;
}

// --- messages ---------------------------------------------------------------

const char *rc_msg_namespace(const rc_msg_t *msg)
{
    return msg->ns;
}

const char *rc_msg_topic(const rc_msg_t *msg)
{
    return msg->topic;
}

const void *rc_msg_data(const rc_msg_t *msg)
{
    return msg->data;
}

size_t rc_msg_size(const rc_msg_t *msg)
{
    return msg->size;
}

bool rc_msg_is_binary(const rc_msg_t *msg)
{
    return msg->binary;
}

//  Make the hex ids of a view (a cache: the message's value is unchanged).
static void s_msg_hex(const rc_msg_t *msg)
{
    if (!msg->origin[0] && msg->origin_id) {
        rc_msg_t *m = (rc_msg_t *)msg;
        s_hex(m->origin_id, WIRE_ID_SIZE, m->origin);
        s_hex(m->node_id, WIRE_ID_SIZE, m->origin_node);
    }
}

const char *rc_msg_origin(const rc_msg_t *msg)
{
    s_msg_hex(msg);
    return msg->origin;
}

const char *rc_msg_origin_node(const rc_msg_t *msg)
{
    s_msg_hex(msg);
    return msg->origin_node;
}

uint64_t rc_msg_sequence(const rc_msg_t *msg)
{
    return msg->seq;
}

rc_msg_t *rc_msg_dup(const rc_msg_t *src)
{
    size_t ns_len = strlen(src->ns), topic_len = strlen(src->topic);
    rc_msg_t *msg =
        malloc(sizeof *msg + ns_len + 1 + topic_len + 1 + src->size + 1);
    if (!msg) {
        return NULL;
    }
    s_msg_hex(src);
    *msg = *src;
    msg->origin_id = msg->node_id = NULL; // the frame's bytes go away
    char *p = msg->storage;
    memcpy(p, src->ns, ns_len + 1);
    msg->ns = p;
    p += ns_len + 1;
    memcpy(p, src->topic, topic_len + 1);
    msg->topic = p;
    p += topic_len + 1;
    if (src->size) {
        memcpy(p, src->data, src->size);
    }
    p[src->size] = 0; // text payloads can be used as C strings
    msg->data = (const uint8_t *)p;
    msg->next = NULL;
    return msg;
}

void rc_msg_destroy(rc_msg_t **msg_p)
{
    if (msg_p && *msg_p) {
        free(*msg_p);
        *msg_p = NULL;
    }
}

// --- names ------------------------------------------------------------------

const char *rc_strerror(int err)
{
    switch (err) {
        case ENOTCONN:
            return "not connected to the sidecar (reconnecting)";
        case EAGAIN:
            return "send buffer full: the sidecar is not keeping up";
        case EMSGSIZE:
            return "payload over the sidecar's size limit";
        case EINVAL:
            return "invalid argument: a name empty, over 255 bytes or with "
                   "a control character, a bad flag, or an unknown query";
        case ETIMEDOUT:
            return "timed out";
        case ENOBUFS:
            return "closed by the sidecar as a slow consumer";
        case ESHUTDOWN:
            return "the sidecar is shutting down";
        case EPROTO:
            return "protocol error (not a roomcast sidecar?)";
        case ENOENT:
            return "no sidecar socket at that path";
        case ECONNREFUSED:
            return "no sidecar listening on that socket";
        case EACCES:
            return "permission denied by the sidecar";
        case ENOSPC:
            return "a sidecar limit was reached";
        default:
            return strerror(err);
    }
}

const char *rc_stage_name(rc_stage_t stage)
{
    static const char *names[] = {"connect", "subscribe", "publish",
                                  "delivery"};
    return (unsigned)stage < 4 ? names[stage] : "?";
}

const char *rc_gap_reason_name(rc_gap_reason_t reason)
{
    static const char *names[] = {"mesh", "slow", "reconnect", "origin_gone"};
    return (unsigned)reason < 4 ? names[reason] : "?";
}

const char *rc_state_name(rc_state_t state)
{
    static const char *names[] = {"disconnected", "connecting", "connected",
                                  "closed"};
    return (unsigned)state < 4 ? names[state] : "?";
}
