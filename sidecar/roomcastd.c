/*  roomcastd: the roomcast sidecar. See config.c (or --help) for the
    options and README.md for what it does. */
#include "config.h"
#include "gossip.h"

#include <czmq.h>
#include "log.h"
#include "keyring.h"
#include "loop.h"
#include "mesh.h"
#include "ops.h"
#include "proxy.h"
#include "server.h"
#include "stats.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

typedef struct {
    server_t *server;
    mesh_t *mesh;
    gossip_t *gossip;
} daemon_t;

static void s_on_signal(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)events;
    daemon_t *d = arg;
    struct signalfd_siginfo info;
    if (read(fd, &info, sizeof info) == (ssize_t)sizeof info) {
        log_info("signal", "signal=%s", strsignal((int)info.ssi_signo));
        if (d->gossip) {
            gossip_leave(d->gossip); // members mark us left at once
        }
        server_shutdown(d->server);
    }
}

//  The mesh, when the config asks for one. Returns 0 (and *mesh_p NULL
//  for a local-only sidecar) or -1 with err filled.
static int s_start_mesh(loop_t *loop, server_t *server, const config_t *cfg,
                        const uint8_t node_id[16], stats_t *stats,
                        mesh_t **mesh_p, char *err, size_t errlen)
{
    *mesh_p = NULL;
    if (!*cfg->bind && !cfg->peers.count && !cfg->proxies.count) {
        return 0;
    }
    if (!cfg->key_files.count) {
        snprintf(err, errlen,
                 "--bind needs --key-file: every envelope "
                 "between sidecars is sealed with the cluster key (create "
                 "one with roomcastctl keygen FILE)");
        return -1;
    }
    keyring_t *ring = keyring_new();
    for (size_t i = 0; ring && i < cfg->key_files.count; i++) {
        if (keyring_load_file(ring, cfg->key_files.items[i], err, errlen)) {
            keyring_destroy(&ring);
            return -1;
        }
    }
    char fp[KEYRING_FINGERPRINT_LEN + 1] = "",
                                      fp2[KEYRING_FINGERPRINT_LEN + 1] = "-";
    if (ring && keyring_size(ring) > 1 && keyring_fingerprint(ring, 1, fp2)) {
        fp2[0] = 0;
    }
    if (!ring || keyring_fingerprint(ring, 0, fp)) {
        keyring_destroy(&ring);
        snprintf(err, errlen, "cannot load the cluster key");
        return -1;
    }
    *mesh_p = mesh_new(loop, server, cfg, &ring, node_id, stats, err, errlen);
    if (!*mesh_p) {
        return -1;
    }
    server_set_mesh(server, *mesh_p);
    log_info("mesh_started",
             "mode=%s bind=%s peers=%zu proxies=%zu key_fingerprint=%s "
             "extra_key_fingerprint=%s",
             mesh_mode(*mesh_p), *cfg->bind ? cfg->bind : "-", cfg->peers.count,
             cfg->proxies.count, fp, fp2);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "proxy") == 0) {
        zsys_handler_set(NULL);
        signal(SIGPIPE, SIG_IGN);
        return proxy_main(argc - 1, argv + 1);
    }
    config_t cfg;
    char err[512];
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != CONFIG_OK) {
        if (rc == CONFIG_ERROR) {
            fprintf(stderr, "roomcastd: %s\n", err);
        }
        config_free(&cfg);
        return rc == CONFIG_EXIT ? 0 : 2;
    }
    if (log_set_level(cfg.log_level)) {
        fprintf(stderr,
                "roomcastd: --log-level: unknown level '%s' (error, "
                "warn, info, debug)\n",
                cfg.log_level);
        config_free(&cfg);
        return 2;
    }
    if (log_set_format(cfg.log_format)) {
        fprintf(stderr,
                "roomcastd: --log-format: unknown format '%s' "
                "(logfmt, json)\n",
                cfg.log_format);
        config_free(&cfg);
        return 2;
    }
    //  signals become events of the loop; a client that hangs up must not
    //  kill us with SIGPIPE; czmq must not install handlers of its own
    zsys_handler_set(NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    uint8_t node_id[16];
    stats_t stats = {0};
    loop_t *loop = loop_new();
    server_t *server = NULL;
    mesh_t *mesh = NULL;
    daemon_t daemon = {NULL, NULL, NULL};
    ops_t *ops = NULL;
    int status = 1;
    if (getrandom(node_id, sizeof node_id, 0) != sizeof node_id || !loop ||
        sfd < 0) {
        log_error("startup_failed", "error=\"%s\"", strerror(errno));
        goto done;
    }
    server = server_new(loop, &cfg, &stats, node_id);
    daemon.server = server;
    if (!server || loop_add_fd(loop, sfd, EPOLLIN, s_on_signal, &daemon)) {
        log_error("startup_failed", "error=\"out of memory\"");
        goto done;
    }
    if (server_listen(server, err, sizeof err)) {
        log_error("startup_failed", "error=\"%s\"", err);
        status = 2;
        goto done;
    }
    if (s_start_mesh(loop, server, &cfg, node_id, &stats, &mesh, err,
                     sizeof err)) {
        log_error("startup_failed", "error=\"%s\"", err);
        status = 2;
        goto done;
    }
    daemon.mesh = mesh;
    if (*cfg.gossip) {
        daemon.gossip = gossip_new(loop, &cfg, mesh_keyring(mesh), mesh,
                                   node_id, &stats, err, sizeof err);
        if (!daemon.gossip) {
            log_error("startup_failed", "error=\"%s\"", err);
            status = 2;
            goto done;
        }
        server_set_gossip(server, daemon.gossip);
    }
    if (*cfg.http) {
        ops = ops_new(loop, &cfg, server, &stats, node_id, err, sizeof err);
        if (!ops) {
            log_error("startup_failed", "error=\"%s\"", err);
            status = 2;
            goto done;
        }
        log_info("http_started", "address=%s port=%d", cfg.http, ops_port(ops));
    }
    char node[33];
    for (int i = 0; i < 16; i++) {
        sprintf(node + 2 * i, "%02x", node_id[i]);
    }
    log_info("started",
             "version=%s node_id=%s name=%s channel=%s socket=%s "
             "max_payload=%zu queue_budget=%zu config=%s",
             ROOMCAST_VERSION_STRING, node, cfg.name, cfg.channel,
             cfg.socket_path, cfg.max_payload, cfg.queue_budget,
             cfg.config_file ? cfg.config_file : "");
    if (!cfg.peers.count && !cfg.proxies.count && !*cfg.gossip) {
        log_info("cluster_of_one", "reason=\"no peers configured\"");
    }
    if (loop_run(loop) == 0) {
        status = 0;
        log_info("stopped", "publishes=%llu deliveries=%llu",
                 (unsigned long long)stats.publishes,
                 (unsigned long long)stats.deliveries);
    } else {
        log_error("loop_failed", "error=\"%s\"", strerror(errno));
    }
done:
    ops_destroy(&ops);
    if (server) {
        server_set_mesh(server, NULL);
        server_set_gossip(server, NULL);
    }
    gossip_destroy(&daemon.gossip); // it drives the mesh: before it
    mesh_destroy(&mesh); // first: it holds connections the server frees
    server_destroy(&server);
    if (sfd >= 0) {
        close(sfd);
    }
    loop_destroy(&loop);
    config_free(&cfg);
    return status;
}
