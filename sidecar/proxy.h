/*  proxy: `roomcastd proxy`, a forwarder between sidecars for proxy mode.

    An XSUB bound at the frontend (sidecars publish into it) and an XPUB
    bound at the backend (sidecars subscribe there); messages go frontend to
    backend, subscriptions backend to frontend. It holds no key: envelopes
    are sealed and routing keys are opaque hashes, so it reads nothing. By
    convention the backend is the frontend's port + 1, which is what
    `roomcastd --proxy tcp://HOST:PORT` assumes.

    Settings come from config.c (config_proxy_load: flags, ROOMCAST_*
    environment, --config file), logs from common/log.c (--log-format), and
    with --http it serves /metrics, /healthz and /readyz (http.c). Ready
    means both sockets bound and at least --ready-peers sidecars connected
    to each (counted from libzmq's socket monitor: connections accepted minus
    those connections closed).

    Queues are bounded: --hwm messages per link each way; the XPUB drops
    for a link that is full (ZMQ_XPUB_NODROP off) rather than grow or stop
    the other links. Subscriptions are the exception (never dropped, as
    many as the sidecars hold).
*/
#ifndef RCD_PROXY_H
#define RCD_PROXY_H

//  Run `roomcastd proxy ARGS...` (argv[0] is "proxy"). Returns the exit
//  status: 0 after SIGTERM/SIGINT, 1 on failure, 2 on bad usage.
int proxy_main(int argc, char **argv);

#endif
