/*  harness: start and stop real roomcastd processes for integration tests.

    Every daemon runs in its own temporary directory, dies with the test
    process (PR_SET_PDEATHSIG), and is killed at exit if still running. The
    binary is $ROOMCASTD (tests/run-tests.sh sets it). */
#ifndef RC_TEST_HARNESS_H
#define RC_TEST_HARNESS_H

#include "roomcast.h"

#include <signal.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    char dir[256];
    char socket[300];
    char log[300];
} rcd_t;

//  Start roomcastd --channel CHANNEL --socket DIR/rc.sock plus extra args
//  (NULL-terminated, may be NULL) and wait until it accepts connections.
//  Returns 0, or -1 (the log is printed).
int rcd_start(rcd_t *d, const char *channel, const char *const *extra);
//  Like rcd_start, but ready as soon as the socket file exists (for a
//  sidecar that refuses our handshake on purpose).
int rcd_start_raw(rcd_t *d, const char *channel, const char *const *extra);
//  Start again on the same directory and socket.
int rcd_restart(rcd_t *d, const char *channel, const char *const *extra);
//  Run roomcastd with exactly these arguments (NULL-terminated, argv[0]
//  excluded) and wait for it to exit by itself (at most 10 s). Returns its
//  exit status, or -1 if it was still running (it is killed then). Its
//  stderr goes to errfile when not NULL.
int rcd_run(const char *const *args, const char *errfile);
//  Send sig and wait (up to 10 s) for the exit; returns the exit status,
//  128+signal when killed by a signal, or -1 on timeout.
int rcd_stop(rcd_t *d, int sig);
//  Remove the directory and every file in it (after rcd_stop).
void rcd_cleanup(rcd_t *d);

//  Connect a client to d with default options plus the given callbacks.
rc_client_t *rcd_client(const rcd_t *d, const rc_options_t *opts);

//  Milliseconds, monotonic.
long long now_ms(void);

//  Wait until cond(arg) holds, dispatching the clients given (NULL-
//  terminated array, may be NULL) in between; at most timeout_ms.
bool wait_for(bool (*cond)(void *arg), void *arg, rc_client_t **clients,
              int timeout_ms);

//  A counter from "roomcastctl status", read through client c; -1 on error.
long long query_counter(rc_client_t *c, const char *name);

//  A TCP port on 127.0.0.1 free right now (bind to port 0, read, close),
//  never one this process was given before.
int free_port(void);

//  PORT with PORT + 1 free too (a proxy's frontend and backend), below the
//  kernel's ephemeral range so no connection takes them meanwhile, above
//  min. -1 when none is found.
int free_port_pair(int min);

//  Write a new random cluster key (64 hex + newline, mode 0600) to path.
//  Returns 0 or -1.
int write_key(const char *path);

//  A counter (any "status" row) of the sidecar at socket path, through a
//  short-lived client; -1 on error.
long long sidecar_counter(const char *socket, const char *name);

//  Wait until the sidecar at socket hears at least n live peers (mesh
//  heartbeats). Returns true, or false after timeout_ms.
bool wait_live_peers(const char *socket, long long n, int timeout_ms);

//  Two sidecars in a mesh on loopback: a new cluster key at key (a path
//  the caller unlinks), each bound to a free port with the other as its
//  --peer, plus extra (NULL-terminated, may be NULL) for both; returns
//  once each hears the other. Returns 0, or -1 (logs printed).
int rcd_mesh_pair(rcd_t d[2], const char *channel, const char *key,
                  const char *const *extra);
//  Stop both with SIGTERM (0 when both exited 0) and clean up.
int rcd_mesh_pair_stop(rcd_t d[2]);

//  Start roomcastd proxy --frontend tcp://127.0.0.1:PORT (the backend at
//  PORT + 1) plus extra (NULL-terminated, may be NULL), stderr to
//  /dev/null, dying with the test. Returns its pid (-1 if fork failed).
pid_t rcd_proxy_start(int port, const char *const *extra);
//  SIGTERM it and wait: its exit status, or -1 if it did not exit.
int rcd_proxy_stop(pid_t pid);

//  Send raw bytes to 127.0.0.1:port and return the whole answer read
//  within 5 s ("" when nothing answers). The buffer is static: valid until
//  the next call.
char *http_request(int port, const char *request);
//  GET path from 127.0.0.1:port (HTTP/1.1), as http_request.
char *http_get(int port, const char *path);

//  Bound the whole test binary's run time.
void harness_deadline(unsigned seconds);

#endif
