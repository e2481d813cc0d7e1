/*  ops: see ops.h. */
#include "ops.h"
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ops_t {
    http_t *http;
    ops_io_t io;
};

static int s_handle(void *arg, const char *path, http_reply_t *reply)
{
    ops_t *self = arg;
    metrics_input_t in = {0};
    self->io.sample(self->io.arg, &in);
    if (strcmp(path, "/metrics") == 0) {
        metrics_render(&in, reply);
    } else if (strcmp(path, "/healthz") == 0) {
        http_reply_printf(reply, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        if (metrics_readyz(in.readable, in.writable, reply) != 200 &&
            in.detail) {
            http_reply_printf(reply, "%s\n", in.detail); // e.g. not joined
        }
    } else {
        reply->status = 404;
        http_reply_printf(reply, "not found: try /metrics, /healthz, "
                                 "/readyz\n");
    }
    return 0;
}

ops_t *ops_new(loop_t *loop, const char *address, const ops_io_t *io, char *err,
               size_t errlen)
{
    ops_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->io = *io;
    self->http = http_new(loop, address, s_handle, self, err, errlen);
    if (!self->http) {
        free(self);
        return NULL;
    }
    return self;
}

void ops_destroy(ops_t **self_p)
{
    if (self_p && *self_p) {
        http_destroy(&(*self_p)->http);
        free(*self_p);
        *self_p = NULL;
    }
}

int ops_port(const ops_t *self)
{
    return http_port(self->http);
}
