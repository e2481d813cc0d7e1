/*  hold_app SOCKET NAME TOPIC KEY META [BINARY_META_BYTES]: one libroomcast
    client named NAME, subscribed to TOPIC (namespace "default") and present
    in it under KEY with META (text), and, when given, a second key KEY.bin
    with that many binary bytes of meta. Prints "ready" and holds until stdin
    closes. For tests that read what the sidecar lists (roomcastctl --json
    in tests/deploy). */
#include "roomcast.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: hold_app SOCKET NAME TOPIC KEY META "
                        "[BINARY_META_BYTES]\n");
        return 2;
    }
    rc_options_t o;
    rc_options_init(&o);
    o.name = argv[2];
    rc_client_t *c = rc_connect(argv[1], &o);
    if (!c) {
        fprintf(stderr, "hold_app: %s\n", rc_strerror(errno));
        return 1;
    }
    if (rc_subscribe_wait(c, "default", argv[3], 5000) ||
        rc_presence_set(c, "default", argv[3], argv[4], argv[5],
                        strlen(argv[5]))) {
        fprintf(stderr, "hold_app: %s\n", rc_strerror(errno));
        return 1;
    }
    if (argc > 6) {
        size_t n = (size_t)atoi(argv[6]);
        unsigned char *bin = calloc(n + 1, 1);
        char key[300];
        snprintf(key, sizeof key, "%s.bin", argv[4]);
        if (!bin || rc_presence_set(c, "default", argv[3], key, bin, n)) {
            return 1;
        }
        free(bin);
    }
    if (rc_flush(c, 5000)) {
        fprintf(stderr, "hold_app: %s\n", rc_strerror(errno));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (fgets(buf, sizeof buf, stdin)) {
    }
    rc_close(&c);
    return 0;
}
