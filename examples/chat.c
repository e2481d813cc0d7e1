/*  chat: a tiny chat-room app on libroomcast, in the event-loop style.

      chat [--socket PATH] [--room ROOM] [--name NAME]

    Lines typed on stdin are published to ROOM as "NAME: line"; messages of
    the other members of ROOM are printed as they come. NAME is present in
    ROOM (cluster-wide presence) while the app runs; others coming and
    going are shown on stderr. EOF on stdin sends
    what is left and exits. Run several, on one host or (with the mesh) on
    several: every other member sees every line once. */
#include "roomcast.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_on_message(rc_client_t *c, const rc_msg_t *m, void *arg)
{
    (void)c;
    (void)arg;
    printf("[%s] %.*s\n", rc_msg_topic(m), (int)rc_msg_size(m),
           (const char *)rc_msg_data(m));
    fflush(stdout);
}

static void s_on_error(rc_client_t *c, rc_stage_t stage, int err,
                       const char *text, void *arg)
{
    (void)c;
    (void)arg;
    fprintf(stderr, "chat: %s error: %s (%s)\n", rc_stage_name(stage), text,
            rc_strerror(err));
}

static void s_on_presence(rc_client_t *c, const rc_presence_t *p, void *arg)
{
    (void)c;
    (void)arg;
    fprintf(stderr, "chat: * %s %s %s\n", p->key, p->present ? "is in" : "left",
            p->topic);
}

static void s_on_status(rc_client_t *c, const rc_status_t *st, void *arg)
{
    (void)c;
    (void)arg;
    fprintf(stderr, "chat: sidecar %s%s%s\n", rc_state_name(st->state),
            *st->detail ? ": " : "", st->detail);
}

int main(int argc, char **argv)
{
    const char *socket = NULL, *room = "lobby", *name = "anonymous";
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"room", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "s:r:n:h", opts, NULL)) != -1) {
        switch (ch) {
            case 's':
                socket = optarg;
                break;
            case 'r':
                room = optarg;
                break;
            case 'n':
                name = optarg;
                break;
            default:
                fprintf(ch == 'h' ? stdout : stderr,
                        "usage: chat [--socket PATH] [--room ROOM] "
                        "[--name NAME]\n");
                return ch == 'h' ? 0 : 2;
        }
    }
    rc_options_t o;
    rc_options_init(&o);
    o.name = name;
    o.on_message = s_on_message;
    o.on_error = s_on_error;
    o.on_status = s_on_status;
    o.on_presence = s_on_presence;
    rc_client_t *c = rc_connect(socket, &o);
    if (!c) {
        fprintf(stderr, "chat: cannot connect: %s\n", rc_strerror(errno));
        return 1;
    }
    if (rc_subscribe_wait(c, "chat", room, 5000)) {
        fprintf(stderr, "chat: cannot join %s: %s\n", room, rc_strerror(errno));
        rc_close(&c);
        return 1;
    }
    if (rc_presence_set(c, "chat", room, name, "online", 6)) {
        fprintf(stderr, "chat: presence: %s\n", rc_strerror(errno));
    }
    fprintf(stderr, "chat: %s joined room %s\n", name, room);
    struct pollfd pfd[2] = {{.fd = 0, .events = POLLIN},
                            {.fd = rc_fd(c), .events = POLLIN}};
    char line[4096], text[4200];
    bool open_in = true;
    while (open_in) {
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
            break;
        }
        if (pfd[1].revents) {
            rc_dispatch(c);
        }
        if (pfd[0].revents) {
            if (!fgets(line, sizeof line, stdin)) {
                open_in = false;
                break;
            }
            line[strcspn(line, "\n")] = 0;
            int len = snprintf(text, sizeof text, "%s: %s", name, line);
            if (rc_publish(c, "chat", room, text, (size_t)len, RC_TEXT)) {
                fprintf(stderr, "chat: not sent: %s\n", rc_strerror(errno));
            }
        }
    }
    if (rc_flush(c, 2000)) {
        fprintf(stderr, "chat: last lines not sent: %s\n", rc_strerror(errno));
    }
    rc_close(&c);
    return 0;
}
