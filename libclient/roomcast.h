/*  roomcast.h: libroomcast, the application side of roomcast.

    An application connects to the roomcastd sidecar of its host over a Unix
    socket, subscribes to topics and publishes to them. Every other
    application subscribed to a topic, on this host or (through the mesh) on
    any host of the cluster, receives each message once. The publisher does
    not get its own messages back unless it asks (RC_ECHO).

    Two styles, mixable on one client:
      - blocking: rc_recv (client, &msg, timeout_ms);
      - event loop: poll rc_fd (client) for readability (epoll, libuv,
        poll...) and call rc_dispatch (client) when it is readable; messages,
        errors and status changes arrive through the callbacks in
        rc_options_t. rc_fd stays the same descriptor across reconnects.

    Errors: functions return 0 (or a pointer) on success and -1 (or NULL)
    with errno set; rc_strerror (errno) gives a readable text. Failures of
    the sidecar or mesh never crash or block the application: they are
    reported through the error callback with a stage (subscribe, publish,
    delivery) and through status changes.

    Reconnect: when the sidecar goes away (restart, upgrade), the client
    reconnects with exponential backoff and restores every subscription;
    the application sees status changes, never a crash. Messages published
    while disconnected are not queued: rc_publish fails with ENOTCONN
    (delivery is at-most-once: roomcast(7), docs/design.md).

    THREAD SAFETY: a client belongs to one thread at a time. Calls on one
    client from two threads at once need the caller's own lock. Different
    clients are independent. Callbacks run inside rc_dispatch, rc_recv,
    rc_flush, rc_subscribe_wait and rc_query, on the caller's thread.
*/
#ifndef ROOMCAST_H
#define ROOMCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ROOMCAST_VERSION_MAJOR 0
#define ROOMCAST_VERSION_MINOR 1
#define ROOMCAST_VERSION_PATCH 0
#define ROOMCAST_MAKE_VERSION(major, minor, patch)                             \
    ((major)*10000 + (minor)*100 + (patch))
#define ROOMCAST_VERSION                                                       \
    ROOMCAST_MAKE_VERSION(ROOMCAST_VERSION_MAJOR, ROOMCAST_VERSION_MINOR,      \
                          ROOMCAST_VERSION_PATCH)

#define RC_DEFAULT_SOCKET "/run/roomcast/roomcast.sock"
#define RC_ID_HEX_SIZE    33 // instance and node ids as hex, with the NUL

#if defined(__GNUC__)
#define RC_EXPORT       __attribute__((visibility("default")))
#define RC_WUR          __attribute__((warn_unused_result))
#define RC_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#define RC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RC_EXPORT
#define RC_WUR
#define RC_NONNULL(...)
#define RC_PRINTF(f, a)
#endif

typedef struct rc_client_t rc_client_t;
typedef struct rc_msg_t rc_msg_t;
typedef struct rc_reply_t rc_reply_t;

//  Publish flags.
#define RC_TEXT       0x00  // payload is text (the default)
#define RC_BINARY     0x01  // payload is binary
#define RC_ECHO       0x02  // deliver this message to the publisher too
#define RC_MORE       0x04  // rc_publish: more publishes follow at once (below)
#define RC_MORE_BYTES 65536 // pending bytes past which RC_MORE writes anyway

//  Where a reported failure happened (as crossws's onError stages).
typedef enum {
    RC_STAGE_CONNECT = 0,   // reaching the sidecar, the handshake
    RC_STAGE_SUBSCRIBE = 1, // a subscription was refused
    RC_STAGE_PUBLISH = 2,   // a publish was refused or lost
    RC_STAGE_DELIVERY = 3   // receiving: slow consumer, bad frame
} rc_stage_t;

//  Connection state.
typedef enum {
    RC_DISCONNECTED = 0, // no sidecar; reconnecting with backoff
    RC_CONNECTING = 1,   // socket open, waiting for the sidecar's WELCOME
    RC_CONNECTED = 2,    // ready
    RC_CLOSED = 3        // rc_close was called (never seen by callbacks)
} rc_state_t;

//  What the status callback receives.
typedef struct {
    rc_state_t state;
    bool readable;       // the sidecar receives from the mesh
    bool writable;       // the sidecar can publish to the mesh
    unsigned live_peers; // peers the sidecar hears from
    const char *detail;  // sidecar's words, borrowed, may be ""
} rc_status_t;

typedef void(rc_message_fn)(rc_client_t *client, const rc_msg_t *msg,
                            void *arg);
typedef void(rc_error_fn)(rc_client_t *client, rc_stage_t stage, int err,
                          const char *text, void *arg);
typedef void(rc_status_fn)(rc_client_t *client, const rc_status_t *status,
                           void *arg);
//  Why messages were lost (rc_gap_t.reason).
typedef enum {
    RC_GAP_MESH = 0,       // lost between sidecars and not repaired (older
                           // than the origin's repair window, no answer
                           // in time, or this sidecar was cut off as a
                           // stalled peer)
    RC_GAP_SLOW = 1,       // dropped at this client's queue budget on the
                           // sidecar: the app read too slowly
    RC_GAP_RECONNECT = 2,  // this client lost its sidecar (it restarted, or
                           // the connection broke): what was published to
                           // the topic meanwhile is lost
    RC_GAP_ORIGIN_GONE = 3 // the publisher's sidecar died (or its link
                           // ended) before re-sending what was lost
} rc_gap_reason_t;

//  A loss the app is told of: messages of (ns, topic) it was owed and will
//  not get. origin_hex is the publishing instance (32 hex digits), or ""
//  when the loss is not one publisher's (RC_GAP_RECONNECT); missed is the
//  number lost, 0 when it cannot be known (RC_GAP_RECONNECT). Borrowed for
//  the call.
typedef struct {
    const char *ns;
    const char *topic;
    const char *origin_hex;
    uint64_t missed;
    rc_gap_reason_t reason;
} rc_gap_t;

typedef void(rc_gap_fn)(rc_client_t *client, const rc_gap_t *gap, void *arg);

//  A presence entry: someone (key, with meta) is or is no longer in a
//  topic, on the sidecar node. Strings and meta are borrowed for the call.
typedef struct {
    const char *ns;
    const char *topic;
    const char *key;
    const void *meta;
    size_t meta_size;
    const char *node; // hex id of the sidecar that owns the entry
    bool present;     // false: the entry is gone
} rc_presence_t;
typedef void(rc_presence_fn)(rc_client_t *client, const rc_presence_t *p,
                             void *arg);

//  A cluster member (sidecar) changed state.
typedef enum {
    RC_MEMBER_ALIVE = 1,
    RC_MEMBER_SUSPECT = 2,
    RC_MEMBER_DEAD = 3,
    RC_MEMBER_LEFT = 4
} rc_member_state_t;
typedef struct {
    const char *node; // hex id
    const char *name;
    rc_member_state_t state;
    const char *endpoint; // its data endpoint
} rc_member_t;
typedef void(rc_member_fn)(rc_client_t *client, const rc_member_t *m,
                           void *arg);

//  Options for rc_connect. Initialise with rc_options_init, then set what
//  you need; fields not listed in a later version keep working.
typedef struct {
    const char *name;            // app name shown by roomcastctl, may be NULL
    int connect_timeout_ms;      // rc_connect waits this long for the
                                 // handshake (default 5000)
    bool retry;                  // when the sidecar is not there at rc_connect,
                                 // return a client that keeps trying (default
                                 // false: rc_connect fails)
    int reconnect_min_ms;        // first reconnect delay (default 50)
    int reconnect_max_ms;        // backoff cap (default 2000)
    size_t send_budget;          // bytes buffered toward the sidecar before
                                 // rc_publish fails with EAGAIN (default 8 MiB)
    bool gaps;                   // ask for GAP notices (on_gap): every
                                 // loss, with its reason; without it a
                                 // slow-consumer drop is an on_error
                                 // (RC_STAGE_DELIVERY, ENOBUFS)
    rc_message_fn *on_message;   // messages; when NULL they queue for rc_recv
    rc_error_fn *on_error;       // failures, with a stage
    rc_status_fn *on_status;     // state and health changes
    rc_gap_fn *on_gap;           // missed messages of a stream
    rc_presence_fn *on_presence; // entries coming and going in the topics
                                 // this client subscribed to
    rc_member_fn *on_member;     // cluster members up and down
    void *arg;                   // passed to every callback
} rc_options_t;

//  Fill *opts with the defaults.
RC_EXPORT void rc_options_init(rc_options_t *opts) RC_NONNULL(1);

//  Connect to the sidecar at socket_path (NULL: $ROOMCAST_SOCKET, else
//  RC_DEFAULT_SOCKET) and complete the handshake. opts may be NULL for the
//  defaults; it is copied. Returns a client the caller owns (rc_close), or
//  NULL with errno: ENOENT or ECONNREFUSED (no sidecar there), ETIMEDOUT
//  (no answer), EACCES (the sidecar does not allow this uid/gid), ENOSPC
//  (it is full: --max-clients or out of descriptors), EPROTO (not a
//  roomcast sidecar), ENAMETOOLONG, ENOMEM.
RC_EXPORT rc_client_t *rc_connect(const char *socket_path,
                                  const rc_options_t *opts) RC_WUR;

//  Close the connection and free the client; *client_p becomes NULL. Safe
//  with NULL or an already closed pointer. Unsent bytes are dropped: call
//  rc_flush first to send them.
RC_EXPORT void rc_close(rc_client_t **client_p);

//  Subscribe to (ns, topic). Idempotent: subscribing twice is one
//  subscription. Kept across reconnects until rc_unsubscribe. Returns at
//  once; a refusal by the sidecar arrives through on_error with
//  RC_STAGE_SUBSCRIBE. Returns -1 with EINVAL for an empty or over-long
//  (255 bytes) namespace or topic, or ENOMEM.
RC_EXPORT int rc_subscribe(rc_client_t *client, const char *ns,
                           const char *topic) RC_NONNULL(1, 2, 3) RC_WUR;

//  Subscribe and wait until the sidecar confirms the subscription is in
//  effect on it and on every live peer of the mesh ("subscribed
//  everywhere"), so a message published by anyone, on any host, after this
//  returns reaches this client. Returns 0, or -1 with ETIMEDOUT, ENOTCONN,
//  EINVAL, or the error the sidecar answered (EPERM, EINVAL).
RC_EXPORT int rc_subscribe_wait(rc_client_t *client, const char *ns,
                                const char *topic, int timeout_ms)
    RC_NONNULL(1, 2, 3) RC_WUR;

//  Leave (ns, topic). Idempotent. Returns 0, or -1 with EINVAL.
RC_EXPORT int rc_unsubscribe(rc_client_t *client, const char *ns,
                             const char *topic) RC_NONNULL(1, 2, 3) RC_WUR;

//  Publish len bytes of data to (ns, topic). flags: RC_TEXT or RC_BINARY,
//  optionally | RC_ECHO. Returns at once, never blocks: 0 when the message
//  is sent or buffered toward the sidecar; -1 with errno EINVAL (bad name
//  or flags), EMSGSIZE (over the sidecar's payload limit), ENOTCONN (not
//  connected: the message is dropped), EAGAIN (the send buffer is over
//  send_budget: the sidecar is not keeping up; this message is not sent,
//  publish it again later, e.g. after rc_flush).
//  The data is copied; the caller keeps it. What the socket does not take
//  at once stays buffered and is written by the next calls on this client
//  (rc_dispatch when rc_fd polls readable, rc_recv, rc_publish): call
//  rc_flush to wait until it is all written.
//  RC_MORE (pipelining, as a Redis client pipelines): this publish may wait
//  in the buffer, to share one write with the ones after it, until a
//  publish without RC_MORE, rc_flush, rc_dispatch or rc_recv, or until
//  RC_MORE_BYTES are pending; rc_fd polls readable meanwhile, so a loop on
//  rc_fd and rc_dispatch writes it at its next turn. Publish the last
//  message of a burst without RC_MORE (or call rc_flush) so nothing waits.
//  BACKPRESSURE: between live sidecars nothing is dropped. When a link to
//  a peer sidecar is full, the sidecar stops reading its apps until the
//  link takes more (for at most its --peer-stall-timeout, 1 s by default:
//  then the stalled peer alone is cut off). Meanwhile rc_publish buffers
//  here up to send_budget, then fails with EAGAIN; rc_flush waits.
RC_EXPORT int rc_publish(rc_client_t *client, const char *ns, const char *topic,
                         const void *data, size_t len, int flags)
    RC_NONNULL(1, 2, 3) RC_WUR;

//  Be present in (ns, topic) under key, with meta (any bytes, up to
//  64 KiB, copied). Every sidecar of the cluster lists it until
//  rc_presence_clear, until this client closes or its sidecar dies; it is
//  set again after a reconnect. Setting the same key again replaces meta.
//  Returns 0, or -1 with EINVAL (bad names) or ENOMEM; a refusal by the
//  sidecar arrives through on_error (EACCES: another app holds that key).
RC_EXPORT int rc_presence_set(rc_client_t *client, const char *ns,
                              const char *topic, const char *key,
                              const void *meta, size_t meta_size)
    RC_NONNULL(1, 2, 3, 4) RC_WUR;

//  Stop being present under key. Idempotent. Returns 0, or -1 (EINVAL).
RC_EXPORT int rc_presence_clear(rc_client_t *client, const char *ns,
                                const char *topic, const char *key)
    RC_NONNULL(1, 2, 3, 4) RC_WUR;

//  Call fn for every entry of (ns, topic) across the cluster, as the
//  sidecar knows it now. Waits up to timeout_ms. Returns the number of
//  entries, or -1 with ETIMEDOUT, ENOTCONN, EINVAL.
RC_EXPORT int rc_presence_list(rc_client_t *client, const char *ns,
                               const char *topic, rc_presence_fn *fn, void *arg,
                               int timeout_ms) RC_NONNULL(1, 2, 3, 4) RC_WUR;

//  Wait up to timeout_ms (-1: forever, 0: do not wait) for the next
//  message. Returns 0 with *msg_p a message the caller owns
//  (rc_msg_destroy), or -1 with errno ETIMEDOUT. Runs the callbacks of
//  everything else that arrives meanwhile. With on_message set, messages go
//  to the callback and rc_recv only times out.
RC_EXPORT int rc_recv(rc_client_t *client, rc_msg_t **msg_p, int timeout_ms)
    RC_NONNULL(1, 2) RC_WUR;

//  A descriptor that polls readable when rc_dispatch has work (input,
//  output to flush, a reconnect due). Stable for the client's life; do not
//  read, write or close it.
RC_EXPORT int rc_fd(const rc_client_t *client) RC_NONNULL(1);

//  Do all the work that is ready without blocking: read and deliver
//  frames, flush output, reconnect when due. Returns the number of
//  messages delivered to on_message or queued for rc_recv, or -1 with
//  errno ENOMEM.
RC_EXPORT int rc_dispatch(rc_client_t *client) RC_NONNULL(1);

//  Wait up to timeout_ms until every buffered byte is written to the
//  sidecar (while the sidecar holds its apps back because a peer's link
//  is full, that is when the link takes more). Returns 0, or -1 with
//  ETIMEDOUT or ENOTCONN.
RC_EXPORT int rc_flush(rc_client_t *client, int timeout_ms)
    RC_NONNULL(1) RC_WUR;

//  Current connection state.
RC_EXPORT rc_state_t rc_state(const rc_client_t *client) RC_NONNULL(1);

//  This client's instance id (32 hex digits), stamped on every publish.
//  Borrowed, valid for the client's life.
RC_EXPORT const char *rc_instance_id(const rc_client_t *client) RC_NONNULL(1);

//  The sidecar's node id (hex) and channel, as its last WELCOME said, or
//  "" before the first. Borrowed, valid until the next reconnect.
RC_EXPORT const char *rc_node_id(const rc_client_t *client) RC_NONNULL(1);
RC_EXPORT const char *rc_channel(const rc_client_t *client) RC_NONNULL(1);

//  Ask the sidecar a question: what is "status", "topics" (arg: a glob
//  pattern or ""), "numsub" (arg: "NAMESPACE\tTOPIC"), "clients", "peers",
//  "members", "presence" (arg: "NAMESPACE\tTOPIC"). Waits up to timeout_ms.
//  Returns 0 with *reply_p (caller owns, rc_reply_destroy), or -1 with
//  ETIMEDOUT, ENOTCONN, EINVAL (unknown question). Rows (key: value):
//    status    one per field: node_id, name, channel, version, mode,
//              curve, curve_key, socket, readable, writable, live_peers,
//              health, clients, topics, subscriptions, then counters
//              (decimal numbers)
//    topics    "NAMESPACE\tTOPIC": local subscribers
//    numsub    the arg: local subscribers (one row)
//    clients   connection id: "name=N pid=P uid=U gid=G topics=N
//              queued=BYTES published=N dropped=N age_s=S"
//    peers     node id (hex): "name=N endpoint=E state=live|down
//              heard_us=true|false last_ms=MS received=N missed=N";
//              "link": a configured endpoint
//    members   node id (hex): "name=N state=alive|suspect|dead|left
//              incarnation=N endpoint=E gossip=HOST:PORT zone=Z"
//    presence  entry key: "node=HEX meta=TEXT" or "node=HEX meta=[N bytes]"
//  Every status field and counter: docs/c-api.md, "Query replies".
RC_EXPORT int rc_query(rc_client_t *client, const char *what, const char *arg,
                       rc_reply_t **reply_p, int timeout_ms)
    RC_NONNULL(1, 2, 4) RC_WUR;

//  A reply is rows of (key, value) strings, borrowed from the reply.
RC_EXPORT size_t rc_reply_size(const rc_reply_t *reply) RC_NONNULL(1);
RC_EXPORT const char *rc_reply_key(const rc_reply_t *reply, size_t index)
    RC_NONNULL(1);
RC_EXPORT const char *rc_reply_value(const rc_reply_t *reply, size_t index)
    RC_NONNULL(1);
RC_EXPORT void rc_reply_destroy(rc_reply_t **reply_p);

//  A received message. Strings and data are borrowed from the message:
//  valid until rc_msg_destroy (for rc_recv) or until the callback returns
//  (on_message: copy with rc_msg_dup to keep it).
RC_EXPORT const char *rc_msg_namespace(const rc_msg_t *msg) RC_NONNULL(1);
RC_EXPORT const char *rc_msg_topic(const rc_msg_t *msg) RC_NONNULL(1);
RC_EXPORT const void *rc_msg_data(const rc_msg_t *msg) RC_NONNULL(1);
RC_EXPORT size_t rc_msg_size(const rc_msg_t *msg) RC_NONNULL(1);
RC_EXPORT bool rc_msg_is_binary(const rc_msg_t *msg) RC_NONNULL(1);
//  Instance id (hex) of the publishing client, and of its sidecar.
RC_EXPORT const char *rc_msg_origin(const rc_msg_t *msg) RC_NONNULL(1);
RC_EXPORT const char *rc_msg_origin_node(const rc_msg_t *msg) RC_NONNULL(1);
//  The publisher's sequence number on this topic (1, 2, 3 ...).
RC_EXPORT uint64_t rc_msg_sequence(const rc_msg_t *msg) RC_NONNULL(1);
//  A copy the caller owns, or NULL on ENOMEM.
RC_EXPORT rc_msg_t *rc_msg_dup(const rc_msg_t *msg) RC_NONNULL(1) RC_WUR;
RC_EXPORT void rc_msg_destroy(rc_msg_t **msg_p);

//  Text for an errno value as libroomcast uses it. Borrowed, static.
RC_EXPORT const char *rc_strerror(int err);

//  Name of a stage ("subscribe") or a state ("connected"). Static.
RC_EXPORT const char *rc_stage_name(rc_stage_t stage);
//  "mesh", "slow", "reconnect", "origin_gone" (static strings).
RC_EXPORT const char *rc_gap_reason_name(rc_gap_reason_t reason);
RC_EXPORT const char *rc_state_name(rc_state_t state);

#ifdef __cplusplus
}
#endif

#endif
