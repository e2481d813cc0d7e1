/*  hold_clients SOCKET N [TOPICS]: connect N libroomcast clients, each
    subscribed to TOPICS topics (default 1), print "ready", hold them until
    stdin closes. For memory measurements (make bench, closing notes). */
#include "roomcast.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: hold_clients SOCKET N [TOPICS]\n");
        return 2;
    }
    int n = atoi(argv[2]), topics = argc > 3 ? atoi(argv[3]) : 1;
    struct rlimit rl = {(rlim_t)n * 3 + 64, (rlim_t)n * 3 + 64};
    setrlimit(RLIMIT_NOFILE, &rl); // 3 descriptors per client
    rc_client_t **c = calloc((size_t)n, sizeof *c);
    for (int i = 0; i < n; i++) {
        c[i] = rc_connect(argv[1], NULL);
        if (!c[i]) {
            fprintf(stderr, "client %d: %s\n", i, rc_strerror(errno));
            return 1;
        }
        for (int t = 0; t < topics; t++) {
            char name[32];
            snprintf(name, sizeof name, "t%d", (i * topics + t) % 100000);
            if (rc_subscribe_wait(c[i], "bench", name, 5000)) {
                fprintf(stderr, "subscribe: %s\n", rc_strerror(errno));
                return 1;
            }
        }
    }
    printf("ready\n");
    fflush(stdout);
    while (getchar() != EOF) {
    }
    for (int i = 0; i < n; i++) {
        rc_close(&c[i]);
    }
    free(c);
    return 0;
}
