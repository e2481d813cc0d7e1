/*  ops: see ops.h. */
#include "ops.h"
#include "http.h"
#include "mesh.h"
#include "metrics.h"
#include "registry.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ops_t {
    http_t *http;
    const config_t *cfg;
    server_t *server;
    const stats_t *stats;
    char node_hex[33];
};

static int s_handle(void *arg, const char *path, http_reply_t *reply)
{
    ops_t *self = arg;
    const server_health_t *h = server_health(self->server);
    if (strcmp(path, "/metrics") == 0) {
        registry_t *reg = server_registry(self->server);
        mesh_t *mesh = server_mesh(self->server);
        unsigned live = 0, down = 0;
        if (mesh) {
            mesh_peer_counts(mesh, &live, &down);
        }
        metrics_input_t in = {.stats = self->stats,
                              .clients = server_clients(self->server),
                              .topics = registry_topics(reg),
                              .subscriptions = registry_memberships(reg),
                              .readable = h->readable,
                              .writable = h->writable,
                              .live_peers = live,
                              .peers_down = down,
                              .mode = mesh ? mesh_mode(mesh) : "local",
                              .version = ROOMCAST_VERSION_STRING,
                              .node_id = self->node_hex,
                              .channel = self->cfg->channel};
        metrics_render(&in, reply);
    } else if (strcmp(path, "/healthz") == 0) {
        http_reply_printf(reply, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        metrics_readyz(h->readable, h->writable, reply);
    } else {
        reply->status = 404;
        http_reply_printf(reply, "not found: try /metrics, /healthz, "
                                 "/readyz\n");
    }
    return 0;
}

ops_t *ops_new(loop_t *loop, const config_t *cfg, server_t *server,
               const stats_t *stats, const uint8_t node_id[16], char *err,
               size_t errlen)
{
    ops_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    self->server = server;
    self->stats = stats;
    for (int i = 0; i < 16; i++) {
        snprintf(self->node_hex + 2 * i, 3, "%02x", node_id[i]);
    }
    self->http = http_new(loop, cfg->http, s_handle, self, err, errlen);
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
