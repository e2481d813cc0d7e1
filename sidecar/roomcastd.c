/*  roomcastd: the roomcast sidecar. See config.c (or --help) for the
    options and README.md for what it does. main reads the settings, turns
    signals into loop events and runs the coordinator (node.c). */
#include "config.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "proxy.h"
#include "stats.h"

#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

typedef struct {
    node_t *node;
    int argc;
    char **argv;
} daemon_t;

//  SIGHUP: read the settings again and apply what can change now.
static void s_reload(daemon_t *d)
{
    config_t fresh;
    char err[512];
    int rc = config_load(&fresh, d->argc, d->argv, err, sizeof err);
    if (rc != CONFIG_OK) {
        log_warn("reload_failed",
                 "error=\"%s\" note=\"running on with the "
                 "settings in force\"",
                 rc == CONFIG_ERROR ? err : "no settings to read");
    } else if (node_reload(d->node, &fresh, err, sizeof err)) {
        log_warn("reload_failed",
                 "error=\"%s\" note=\"running on with the "
                 "settings in force\"",
                 err);
    }
    config_free(&fresh);
}

static void s_on_signal(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)events;
    daemon_t *d = arg;
    struct signalfd_siginfo info;
    if (read(fd, &info, sizeof info) != (ssize_t)sizeof info || !d->node) {
        return;
    }
    log_info("signal", "signal=%s", strsignal((int)info.ssi_signo));
    if (info.ssi_signo == SIGHUP) {
        s_reload(d);
    } else {
        node_stop(d->node);
    }
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
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    stats_t stats = {0};
    loop_t *loop = loop_new();
    daemon_t d = {NULL, argc, argv};
    int status = 1;
    if (!loop || sfd < 0 || loop_add_fd(loop, sfd, EPOLLIN, s_on_signal, &d)) {
        log_error("startup_failed", "error=\"%s\"", strerror(errno));
        goto done;
    }
    node_t *node = d.node = node_new(loop, &cfg, &stats, err, sizeof err);
    if (!node) {
        log_error("startup_failed", "error=\"%s\"", err);
        status = 2;
        goto done;
    }
    log_info("started",
             "version=%s node_id=%s name=%s channel=%s socket=%s "
             "max_payload=%zu queue_budget=%zu config=%s",
             ROOMCAST_VERSION_STRING, node_id(node), cfg.name, cfg.channel,
             cfg.socket_path, cfg.max_payload, cfg.queue_budget,
             cfg.config_file ? cfg.config_file : "");
    if (loop_run(loop) == 0) {
        status = 0;
        log_info("stopped", "publishes=%llu deliveries=%llu",
                 (unsigned long long)stats.publishes,
                 (unsigned long long)stats.deliveries);
    } else {
        log_error("loop_failed", "error=\"%s\"", strerror(errno));
    }
done:
    node_destroy(&d.node);
    if (sfd >= 0) {
        close(sfd);
    }
    loop_destroy(&loop);
    config_free(&cfg);
    return status;
}
