/*  ops: the operator's HTTP endpoint of roomcastd (--http HOST:PORT).

      /metrics  Prometheus text (metrics.c), from what io->sample fills in
      /healthz  200 while the process serves its loop
      /readyz   200 when readable and writable (DESIGN: health is two
                bits), else 503 saying which bit is down

    Built on http.c, so it never blocks the loop. It reads the rest of the
    sidecar only through io->sample.

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_OPS_H
#define RCD_OPS_H

#include "loop.h"
#include "metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ops_t ops_t;

//  How ops reads the sidecar: fill in everything but nothing else.
typedef struct {
    void *arg;
    void (*sample)(void *arg, metrics_input_t *in);
} ops_io_t;

//  Listen on address (HOST:PORT). Returns NULL with err filled.
ops_t *ops_new(loop_t *loop, const char *address, const ops_io_t *io, char *err,
               size_t errlen);
void ops_destroy(ops_t **self_p);

//  The bound port (useful with port 0).
int ops_port(const ops_t *self);

#endif
