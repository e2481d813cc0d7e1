/*  ops: the operator's HTTP endpoint of roomcastd (--http HOST:PORT).

      /metrics  Prometheus text (metrics.c), from the live counters
      /healthz  200 while the process serves its loop
      /readyz   200 when readable and writable (DESIGN: health is two
                bits), else 503 saying which bit is down

    Built on http.c, so it never blocks the loop.

    THREAD SAFETY: one thread, the loop's.
*/
#ifndef RCD_OPS_H
#define RCD_OPS_H

#include "config.h"
#include "loop.h"
#include "server.h"
#include "stats.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ops_t ops_t;

//  Listen on cfg->http. Returns NULL with err filled.
ops_t *ops_new(loop_t *loop, const config_t *cfg, server_t *server,
               const stats_t *stats, const uint8_t node_id[16], char *err,
               size_t errlen);
void ops_destroy(ops_t **self_p);

//  The bound port (useful with port 0).
int ops_port(const ops_t *self);

#endif
