/*  proxy: see proxy.h. */
#include "proxy.h"
#include "config.h"
#include "curve.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <czmq.h>
#include <zmq.h>

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: roomcastd proxy --frontend ENDPOINT [--backend ENDPOINT]\n"
        "\n"
        "Forward sealed envelopes between sidecars in proxy mode. Sidecars\n"
        "started with --proxy tcp://HOST:PORT publish to the frontend (PORT)\n"
        "and subscribe at the backend (PORT+1). The proxy holds no key and\n"
        "can read nothing; run two for redundancy (receivers drop the\n"
        "duplicate copies).\n"
        "\n"
        "  --frontend ENDPOINT   bind the XSUB here, e.g. tcp://0.0.0.0:7450\n"
        "  --backend ENDPOINT    bind the XPUB here (default: frontend's\n"
        "                        port + 1)\n"
        "  --hwm N               messages queued per link (default 100000)\n"
        "  --curve-cert FILE     CurveZMQ secret certificate: both sockets\n"
        "                        encrypt and admit only --curve-allow keys\n"
        "  --curve-allow DIR     public certificates of the sidecars\n"
        "  --runtime-dir DIR     where the admitted keys are kept (default\n"
        "                        /tmp)\n"
        "  --log-level LEVEL     error, warn, info, debug (default info)\n"
        "  -h, --help            show this help\n");
}

//  Move one whole multipart message from one socket to the other.
static int s_forward(void *from, void *to, unsigned long long *count)
{
    for (int n = 0; n < 1024; n++) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, from, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return errno == EAGAIN ? 0 : -1;
        }
        int more;
        do {
            more = zmq_msg_more(&part);
            if (zmq_msg_send(&part, to, more ? ZMQ_SNDMORE : 0) < 0) {
                zmq_msg_close(&part);
            }
            if (more) {
                zmq_msg_init(&part);
                if (zmq_msg_recv(&part, from, 0) < 0) {
                    zmq_msg_close(&part);
                    return -1;
                }
            }
        } while (more);
        (*count)++;
    }
    return 0;
}

int proxy_main(int argc, char **argv)
{
    const char *frontend = NULL, *backend_arg = NULL;
    const char *curve_cert = NULL, *curve_allow = NULL, *runtime = "/tmp";
    int hwm = 100000;
    static const struct option opts[] = {
        {"frontend", required_argument, NULL, 'f'},
        {"backend", required_argument, NULL, 'b'},
        {"hwm", required_argument, NULL, 'w'},
        {"log-level", required_argument, NULL, 'l'},
        {"curve-cert", required_argument, NULL, 'c'},
        {"curve-allow", required_argument, NULL, 'a'},
        {"runtime-dir", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
            case 'f':
                frontend = optarg;
                break;
            case 'b':
                backend_arg = optarg;
                break;
            case 'w':
                hwm = atoi(optarg);
                break;
            case 'l':
                if (log_set_level(optarg)) {
                    fprintf(stderr, "roomcastd proxy: unknown log level\n");
                    return 2;
                }
                break;
            case 'c':
                curve_cert = optarg;
                break;
            case 'a':
                curve_allow = optarg;
                break;
            case 'r':
                runtime = optarg;
                break;
            case 'h':
                s_usage(stdout);
                return 0;
            default:
                s_usage(stderr);
                return 2;
        }
    }
    char why[512];
    const char *bad = NULL;
    if (frontend &&
        config_check_addr(backend_arg ? CONFIG_ADDR_BIND : CONFIG_ADDR_FRONTEND,
                          frontend, why, sizeof why)) {
        bad = "--frontend";
    } else if (backend_arg && config_check_addr(CONFIG_ADDR_BIND, backend_arg,
                                                why, sizeof why)) {
        bad = "--backend";
    }
    if (bad) {
        fprintf(stderr, "roomcastd proxy: bad value '%s' for %s: %s\n",
                bad[2] == 'f' ? frontend : backend_arg, bad + 2, why);
        return 2;
    }
    char backend[300];
    const char *colon = frontend ? strrchr(frontend, ':') : NULL;
    if (!frontend || (!backend_arg && (!colon || atoi(colon + 1) <= 0))) {
        fprintf(stderr, "roomcastd proxy: --frontend tcp://HOST:PORT is "
                        "required (see --help)\n");
        return 2;
    }
    if (backend_arg) {
        snprintf(backend, sizeof backend, "%s", backend_arg);
    } else {
        snprintf(backend, sizeof backend, "%.*s:%d", (int)(colon - frontend),
                 frontend, atoi(colon + 1) + 1);
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    char err[512];
    curve_t *curve = NULL;
    if (curve_cert) {
        curve = curve_new(curve_cert, curve_allow, runtime, err, sizeof err);
        if (!curve) {
            fprintf(stderr, "roomcastd proxy: %s\n", err);
            return 2;
        }
    }
    void *ctx = zsys_init(); // czmq's: zauth shares it
    void *xsub = zmq_socket(ctx, ZMQ_XSUB), *xpub = zmq_socket(ctx, ZMQ_XPUB);
    int zero = 0;
    zmq_setsockopt(xsub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(xsub, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(xpub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(xpub, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(xsub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(xpub, ZMQ_LINGER, &zero, sizeof zero);
    int status = 1;
    if (curve && (curve_server(curve, xsub) || curve_server(curve, xpub))) {
        log_error("proxy_failed", "error=\"cannot set up CurveZMQ\"");
        goto done;
    }
    if (sfd < 0 || zmq_bind(xsub, frontend) || zmq_bind(xpub, backend)) {
        log_error("proxy_failed", "frontend=%s backend=%s error=\"%s\"",
                  frontend, backend, zmq_strerror(errno));
        goto done;
    }
    log_info("proxy_started", "frontend=%s backend=%s curve=%s", frontend,
             backend, curve ? curve_public_z85(curve) : "off");
    unsigned long long messages = 0, subscriptions = 0;
    for (;;) {
        zmq_pollitem_t items[] = {{xsub, 0, ZMQ_POLLIN, 0},
                                  {xpub, 0, ZMQ_POLLIN, 0},
                                  {NULL, sfd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 3, -1) < 0 && errno != EINTR) {
            break;
        }
        if (items[2].revents) {
            log_info("proxy_stopped", "messages=%llu subscriptions=%llu",
                     messages, subscriptions);
            status = 0;
            break;
        }
        if ((items[0].revents && s_forward(xsub, xpub, &messages)) ||
            (items[1].revents && s_forward(xpub, xsub, &subscriptions))) {
            log_error("proxy_failed", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
    }
done:
    zmq_close(xsub);
    zmq_close(xpub);
    curve_destroy(&curve); // the context is czmq's: it ends at exit
    if (sfd >= 0) {
        close(sfd);
    }
    return status;
}
