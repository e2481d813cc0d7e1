/*  conn: the record of one app connection. A data type, not a component:
    server.c owns its life and I/O, session.c its protocol state (hello,
    flags, instance), the coordinator its topics (reg). Fanout and the
    registry hold it as an opaque member pointer.

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_CONN_H
#define RCD_CONN_H

#include "gapbook.h"
#include "outq.h"
#include "registry.h"
#include "wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct conn_t conn_t;

struct conn_t {
    int fd;                 // -1 once closed
    uint64_t id;            // for logs and roomcastctl
    void *server;           // the server_t that owns it
    uint32_t refs;          // 1 while open, + holders (fanout jobs, waiters)
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
    gapbook_t *owed;        // drops not reported yet, per stream (GAPs)
    uint64_t owed_drops;    // drops not reported yet (apps without GAPs)
    uint64_t published;     //
    uint32_t hello_flags;   // WIRE_HF_*
    uint8_t instance[16];   // from HELLO
    char name[64];          // from HELLO
    struct ucred cred;      // peer pid, uid, gid
    wire_buf_t in;          // a partial frame, if any
    uint64_t partial_since; // loop ms the partial frame began (0: none)
    outq_t out;             // frames to write
    size_t unflushed;       // bytes queued since the last write
    registry_client_t reg;  // topics joined
};

#endif
