/*  server: the app side of roomcastd. Listens on the Unix socket, owns the
    client connections (conn.h) and their I/O, cuts the byte stream into
    frames and hands each frame body to io->frame, and queues output within
    a byte budget (the slow-consumer policy, for fanout's deliveries).
    What a frame means is not decided here: the coordinator decides, and
    answers through server_send.

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_SERVER_H
#define RCD_SERVER_H

#include "config.h"
#include "conn.h"
#include "loop.h"
#include "outq.h"
#include "stats.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct server_t server_t;

//  How the server reports.
typedef struct {
    void *arg;
    //  A whole frame body from conn (borrowed for the call).
    void (*frame)(void *arg, conn_t *conn, const uint8_t *body, size_t len);
    //  conn is closing for good (its topics and presence are the caller's
    //  to drop); its memory lives on while someone holds it.
    void (*closed)(void *arg, conn_t *conn);
    //  Once per loop turn before output is written; returns true while it
    //  has more to do (fanout slices).
    bool (*idle)(void *arg);
} server_io_t;

//  Create the server; nothing listens until server_listen. cfg, loop and
//  stats are borrowed and must outlive it. Returns NULL on ENOMEM.
server_t *server_new(loop_t *loop, const config_t *cfg, stats_t *stats,
                     const server_io_t *io);
void server_destroy(server_t **self_p);

//  Bind the socket: a stale socket file is replaced, one a live sidecar
//  answers on is refused. Returns 0, or -1 with err filled.
int server_listen(server_t *self, char *err, size_t errlen);

//  Stop accepting, tell every client, flush their queues, then stop the
//  loop when all are flushed or after cfg->shutdown_timeout_ms.
void server_shutdown(server_t *self);

//  Write what connections have queued, now rather than at the end of the
//  loop's turn (after a batch of deliveries from the mesh, so they go out
//  in the turn that received them).
void server_flush(server_t *self);

//  Queue a frame for conn regardless of its budget (answers, errors).
void server_send(server_t *self, conn_t *conn, const wire_frame_t *frame);

//  Answer with a last ERR, stop reading, close once it is written (or
//  after a linger if the client does not read).
void server_close_with(server_t *self, conn_t *conn, wire_err_t code,
                       const char *why);

//  Fanout's deliver: queue buf for member (a conn_t) within its budget;
//  over budget the message is dropped and counted, over budget for longer
//  than the grace the client is closed as a slow consumer.
void server_deliver(void *self, void *member, outbuf_t *buf);

//  Keep a conn's memory past its close (fanout jobs, waiters); release
//  undoes one hold. A closed conn has fd < 0. (void * for fanout_io_t.)
void server_hold(void *self, void *member);
void server_release(void *self, void *member);

//  The memory cap (node_memory.c). The queue budget of every app from now
//  on (cfg->queue_budget at start).
void server_set_budget(server_t *self, size_t budget);
//  Refuse new apps with ERR LIMIT why (a static string), counted in
//  stats->mem_refused_clients; NULL accepts them again.
void server_refuse_new(server_t *self, const char *why);
//  Drop the queued messages (not answers or notices) of the apps with the
//  largest queues, largest first, until want bytes are dropped or none is
//  left. Each such app counts as slow and is told what it lost (a GAP per
//  stream, or one ERR) once it reads again; counted in
//  stats->mem_shed_queues and dropped_memory. Returns the bytes dropped.
size_t server_shed_queues(server_t *self, size_t want);

//  What the apps' queues hold now (a walk of the connections).
typedef struct {
    size_t bytes;   // queued to every app, not yet written
    size_t frames;  //
    size_t largest; // the largest one app's queue holds
    size_t slow;    // apps over budget now (dropping)
} server_queues_t;
void server_queue_totals(const server_t *self, server_queues_t *out);

//  Stop (true) or go on (false) reading every app: the mesh cannot send
//  now, so publishing apps are held back (their own buffers fill, then
//  rc_publish says EAGAIN) instead of their messages being dropped.
//  Output to apps goes on. New apps are accepted and wait too.
void server_pause(server_t *self, bool paused);

//  The open connections (conn->next walks on), and how many.
conn_t *server_first_conn(server_t *self);
size_t server_clients(const server_t *self);

#endif
