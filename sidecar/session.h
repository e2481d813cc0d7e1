/*  session: what roomcastd does with each frame an app sends. One handler
    per frame type (a table) decodes and validates it; a frame that fails
    is answered with an ERR that names the problem and counted, and touches
    no other client. What a valid request means for the rest of the sidecar
    (publish, subscribe, presence, queries) is not decided here: it goes to
    the coordinator through session_io_t. Frames in, frames out: the unit
    tests drive it with a fake io.

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_SESSION_H
#define RCD_SESSION_H

#include "conn.h"
#include "stats.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct session_t session_t;

//  What the sidecar tells apps in WELCOME (strings borrowed).
typedef struct {
    const char *channel;    // cluster channel
    const uint8_t *node_id; // 16 bytes
    size_t max_payload;     // PUB payload limit
} session_config_t;

//  Where valid requests go (f is borrowed for the call). The answers to
//  requests that need the rest of the sidecar are the callee's to send.
typedef struct {
    void *arg;
    //  Queue a frame for conn / close it after a last ERR (code, why).
    void (*send)(void *arg, conn_t *conn, const wire_frame_t *f);
    void (*close)(void *arg, conn_t *conn, wire_err_t code, const char *why);
    //  conn said HELLO and got WELCOME: tell it the health.
    void (*hello)(void *arg, conn_t *conn);
    void (*sub)(void *arg, conn_t *conn, const wire_frame_t *f);
    void (*unsub)(void *arg, conn_t *conn, const wire_frame_t *f);
    void (*pub)(void *arg, conn_t *conn, const wire_frame_t *f);
    void (*pset)(void *arg, conn_t *conn, const wire_frame_t *f);
    void (*pclear)(void *arg, conn_t *conn, const wire_frame_t *f);
    void (*plist)(void *arg, conn_t *conn, const wire_frame_t *f);
    void (*query)(void *arg, conn_t *conn, const wire_frame_t *f);
} session_io_t;

//  cfg's strings and stats are borrowed and must outlive it. Returns NULL
//  on ENOMEM.
session_t *session_new(const session_config_t *cfg, const session_io_t *io,
                       stats_t *stats);
void session_destroy(session_t **self_p);

//  Decode and handle one frame body from conn.
void session_frame(session_t *self, conn_t *conn, const uint8_t *body,
                   size_t len);

//  Answer conn's request req with an ERR (counted in errors_sent by the
//  server's send).
void session_err(session_t *self, conn_t *conn, uint64_t req, wire_err_t code,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
