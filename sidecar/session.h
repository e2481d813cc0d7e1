/*  session: what roomcastd does with each frame an app sends, one handler
    per frame type (a table), and the connection record it works on.
    Internal to the sidecar: server.c owns the connections' life and I/O,
    session.c their protocol state.

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_SESSION_H
#define RCD_SESSION_H

#include "fanout.h"
#include "outq.h"
#include "registry.h"
#include "server.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct conn_t conn_t;

struct conn_t {
    int fd;                 // -1 once closed
    uint64_t id;            // for logs and roomcastctl
    server_t *server;       //
    uint32_t refs;          // 1 while open, + fanout jobs holding it
    bool hello;             // HELLO accepted
    bool closing;           // last frames queued; no more reading
    bool want_out;          // EPOLLOUT registered
    bool dirty;             // on the server's dirty list
    conn_t *dirty_next;     //
    conn_t *prev, *next;    // server's list of open connections
    uint64_t since;         // connect time, loop ms
    uint64_t closing_since; //
    uint64_t slow_since;    // first drop of the current over-budget spell
    uint64_t dropped;       // messages dropped for this client
    uint64_t published;     //
    uint32_t hello_flags;   // WIRE_HF_*
    uint8_t instance[16];   // from HELLO
    char name[64];          // from HELLO
    struct ucred cred;      // peer pid, uid, gid
    wire_buf_t in;          // a partial frame, if any
    outq_t out;             // frames to write
    registry_client_t reg;  // topics joined
};

//  Decode and handle one frame body from conn.
void session_frame(server_t *server, conn_t *conn, wire_decoder_t *decoder,
                   const uint8_t *body, size_t len);
//  Tell the members of msg's topic that asked for GAP notices that missed
//  messages of msg's stream were lost.
void session_notify_gap(server_t *server, const fanout_msg_t *msg,
                        uint64_t missed);
//  Send the current health to conn.
void session_send_status(server_t *server, conn_t *conn);

//  From server.c, for the handlers.
void conn_send(server_t *server, conn_t *conn, const wire_frame_t *frame);
void conn_send_err(server_t *server, conn_t *conn, uint64_t req,
                   wire_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void conn_close(server_t *server, conn_t *conn, const char *why);
void conn_close_with(server_t *server, conn_t *conn, wire_err_t code,
                     const char *why);
void conn_close_slow(server_t *server, conn_t *conn);
//  Keep conn's memory past its close (for a later answer); release undoes
//  one hold. A closed conn has fd < 0.
void conn_hold(conn_t *conn);
void conn_release(conn_t *conn);
const config_t *server_config(const server_t *server);
stats_t *server_stats(server_t *server);
const uint8_t *server_node_id(const server_t *server);
const server_health_t *server_health(const server_t *server);
conn_t *server_first_conn(server_t *server);
uint64_t server_now(const server_t *server);

#endif
