/*  harness: see harness.h. */
#include "harness.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DAEMONS 64
static pid_t s_pids[MAX_DAEMONS];
//  Copies, not pointers: a failed assertion leaves the tests' rcd_t behind
//  on dead stack frames.
static rcd_t s_dirs[MAX_DAEMONS]; // directories not removed yet (dir[0])
static bool s_atexit_set;

static void s_print_log(const rcd_t *d);

static int s_remove_one(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

//  The sidecar's directory and all in it: socket, log, key files a test
//  put there, and what a sidecar killed with SIGKILL could not remove (its
//  CurveZMQ certificate directory).
static void s_remove_dir(rcd_t *d)
{
    if (d->dir[0]) {
        nftw(d->dir, s_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static void s_kill_all(void)
{
    //  a failed assertion skips the test's own cleanup: do it here
    for (int i = 0; i < MAX_DAEMONS; i++) {
        if (s_dirs[i].dir[0]) {
            if (getenv("ROOMCAST_KEEP_LOGS")) {
                s_print_log(&s_dirs[i]);
            }
            s_remove_dir(&s_dirs[i]);
            s_dirs[i].dir[0] = 0;
        }
    }
    for (int i = 0; i < MAX_DAEMONS; i++) {
        if (s_pids[i] > 0) {
            kill(s_pids[i], SIGKILL);
            waitpid(s_pids[i], NULL, 0);
            s_pids[i] = 0;
        }
    }
}

static void s_track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_DAEMONS; i++) {
        if (add ? s_pids[i] == 0 : s_pids[i] == pid) {
            s_pids[i] = add ? pid : 0;
            return;
        }
    }
}

static void s_on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "harness: test binary ran past its deadline\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    for (int i = 0; i < MAX_DAEMONS; i++) {
        if (s_pids[i] > 0) {
            kill(s_pids[i], SIGKILL);
        }
    }
    _exit(124);
}

void harness_deadline(unsigned seconds)
{
    signal(SIGALRM, s_on_alarm);
    alarm(seconds);
}

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_print_log(const rcd_t *d)
{
    FILE *f = fopen(d->log, "r");
    char line[512];
    fprintf(stderr, "--- %s\n", d->log);
    while (f && fgets(line, sizeof line, f)) {
        fputs(line, stderr);
    }
    if (f) {
        fclose(f);
    }
}

static int s_spawn(rcd_t *d, const char *channel, const char *const *extra,
                   bool raw)
{
    const char *bin = getenv("ROOMCASTD");
    if (!bin) {
        bin = "build/release/roomcastd";
    }
    const char *argv[64] = {bin,       "--channel",   channel, "--socket",
                            d->socket, "--log-level", "debug"};
    int n = 7;
    for (int i = 0; extra && extra[i] && n < 62; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    if (!s_atexit_set) {
        atexit(s_kill_all);
        s_atexit_set = true;
    }
    d->pid = pid;
    s_track(pid, true);
    //  ready when a client completes the handshake
    long long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        struct stat st;
        if (raw && stat(d->socket, &st) == 0) {
            return 0;
        }
        rc_client_t *c = raw ? NULL : rc_connect(d->socket, NULL);
        if (c) {
            rc_close(&c);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            s_track(pid, false);
            d->pid = 0;
            break;
        }
        poll(NULL, 0, 10);
    }
    s_print_log(d);
    return -1;
}

static int s_start(rcd_t *d, const char *channel, const char *const *extra,
                   bool raw)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/roomcast-test-XXXXXX");
    if (!mkdtemp(d->dir)) {
        return -1;
    }
    snprintf(d->socket, sizeof d->socket, "%s/rc.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/roomcastd.log", d->dir);
    for (int i = 0; i < MAX_DAEMONS; i++) {
        if (!s_dirs[i].dir[0]) {
            s_dirs[i] = *d;
            break;
        }
    }
    return s_spawn(d, channel, extra, raw);
}

int rcd_start(rcd_t *d, const char *channel, const char *const *extra)
{
    return s_start(d, channel, extra, false);
}

int rcd_start_raw(rcd_t *d, const char *channel, const char *const *extra)
{
    return s_start(d, channel, extra, true);
}

int rcd_restart(rcd_t *d, const char *channel, const char *const *extra)
{
    return s_spawn(d, channel, extra, false);
}

int rcd_run(const char *const *args, const char *errfile)
{
    const char *bin = getenv("ROOMCASTD");
    const char *argv[64] = {bin ? bin : "build/release/roomcastd"};
    int n = 1;
    for (int i = 0; args[i] && n < 63; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(errfile ? errfile : "/dev/null",
                      O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    rcd_t d = {.pid = pid};
    s_track(pid, true);
    long long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s_track(pid, false);
            return WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);
        }
        poll(NULL, 0, 5);
    }
    rcd_stop(&d, SIGKILL);
    return -1;
}

int rcd_stop(rcd_t *d, int sig)
{
    if (d->pid <= 0) {
        return -1;
    }
    kill(d->pid, sig);
    long long deadline = now_ms() + 10000;
    int status;
    while (now_ms() < deadline) {
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid) {
            s_track(d->pid, false);
            d->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);
        }
        poll(NULL, 0, 5);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    s_track(d->pid, false);
    d->pid = 0;
    return -1;
}

void rcd_cleanup(rcd_t *d)
{
    if (d->pid > 0) {
        rcd_stop(d, SIGKILL);
    }
    if (getenv("ROOMCAST_KEEP_LOGS")) {
        s_print_log(d);
    }
    s_remove_dir(d);
    for (int i = 0; i < MAX_DAEMONS; i++) {
        if (strcmp(s_dirs[i].dir, d->dir) == 0) {
            s_dirs[i].dir[0] = 0;
        }
    }
}

rc_client_t *rcd_client(const rcd_t *d, const rc_options_t *opts)
{
    return rc_connect(d->socket, opts);
}

bool wait_for(bool (*cond)(void *arg), void *arg, rc_client_t **clients,
              int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (now_ms() >= deadline) {
            return false;
        }
        struct pollfd pfds[64];
        int n = 0;
        for (int i = 0; clients && clients[i] && n < 64; i++) {
            pfds[n++] =
                (struct pollfd){.fd = rc_fd(clients[i]), .events = POLLIN};
        }
        poll(pfds, (nfds_t)n, 10);
        for (int i = 0; clients && clients[i]; i++) {
            rc_dispatch(clients[i]);
        }
    }
    return true;
}

long long query_counter(rc_client_t *c, const char *name)
{
    rc_reply_t *reply;
    if (rc_query(c, "status", "", &reply, 5000)) {
        return -1;
    }
    long long value = -1;
    for (size_t i = 0; i < rc_reply_size(reply); i++) {
        if (strcmp(rc_reply_key(reply, i), name) == 0) {
            value = atoll(rc_reply_value(reply, i));
        }
    }
    rc_reply_destroy(&reply);
    return value;
}

static int s_any_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

int free_port(void)
{
    //  The kernel picks a random free port each time, and one handed out
    //  a moment ago is free again until its daemon binds it: about one
    //  pick in 14,000 repeats a given earlier one (odd ports of 32768-
    //  60999), so a test that hands out 20 ports has a clash in ~1.3% of
    //  runs (a daemon then fails to bind). Never hand out the same port
    //  twice in one test binary.
    static int s_given[4096];
    static int s_ngiven;
    for (int tries = 0; tries < 100; tries++) {
        int port = s_any_port();
        bool seen = false;
        for (int i = 0; i < s_ngiven && !seen; i++) {
            seen = s_given[i] == port;
        }
        if (port < 0 || !seen) {
            if (port >= 0 && s_ngiven < 4096) {
                s_given[s_ngiven++] = port;
            }
            return port;
        }
    }
    return -1;
}

static bool s_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

int free_port_pair(int min)
{
    for (int tries = 0; tries < 1000; tries++) {
        int port = 20000 + (int)((getpid() * 7919 + tries * 104729) % 12000);
        if (port > min && s_port_free(port) && s_port_free(port + 1)) {
            return port;
        }
    }
    return -1;
}

int write_key(const char *path)
{
    uint8_t key[32];
    if (getrandom(key, sizeof key, 0) != sizeof key) {
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    char hex[66];
    sodium_bin2hex(hex, 65, key, 32);
    hex[64] = '\n';
    ssize_t w = write(fd, hex, 65);
    close(fd);
    return w == 65 ? 0 : -1;
}

long long sidecar_counter(const char *socket, const char *name)
{
    rc_client_t *c = rc_connect(socket, NULL);
    if (!c) {
        return -1;
    }
    long long v = query_counter(c, name);
    rc_close(&c);
    return v;
}

typedef struct {
    const char *socket;
    long long want;
} live_t;

static bool s_live(void *arg)
{
    live_t *l = arg;
    return sidecar_counter(l->socket, "live_peers") >= l->want;
}

bool wait_live_peers(const char *socket, long long n, int timeout_ms)
{
    live_t l = {socket, n};
    return wait_for(s_live, &l, NULL, timeout_ms);
}

//  Send raw bytes to 127.0.0.1:port, return the whole answer (or "").
char *http_request(int port, const char *request)
{
    static char answer[1 << 20];
    answer[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return answer;
    }
    if (send(fd, request, strlen(request), MSG_NOSIGNAL) !=
        (ssize_t)strlen(request)) {
        close(fd);
        return answer;
    }
    size_t len = 0;
    long long deadline = now_ms() + 5000;
    while (len < sizeof answer - 1 && now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 100);
        ssize_t n =
            recv(fd, answer + len, sizeof answer - 1 - len, MSG_DONTWAIT);
        if (n == 0) {
            break;
        }
        if (n > 0) {
            len += (size_t)n;
        }
    }
    answer[len] = 0;
    close(fd);
    return answer;
}

char *http_get(int port, const char *path)
{
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    return http_request(port, req);
}

int rcd_mesh_pair(rcd_t d[2], const char *channel, const char *key,
                  const char *const *extra)
{
    char ep[2][64];
    if (write_key(key)) {
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        snprintf(ep[i], sizeof ep[i], "tcp://127.0.0.1:%d", free_port());
    }
    for (int i = 0; i < 2; i++) {
        const char *args[40] = {"--key-file", key,      "--bind",
                                ep[i],        "--peer", ep[1 - i]};
        size_t n = 6;
        for (size_t k = 0; extra && extra[k] && n < 39; k++) {
            args[n++] = extra[k];
        }
        args[n] = NULL;
        if (rcd_start(&d[i], channel, args)) {
            if (i) {
                rcd_cleanup(&d[0]);
            }
            return -1;
        }
    }
    return wait_live_peers(d[0].socket, 1, 10000) &&
                   wait_live_peers(d[1].socket, 1, 10000)
               ? 0
               : -1;
}

int rcd_mesh_pair_stop(rcd_t d[2])
{
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        rc |= rcd_stop(&d[i], SIGTERM);
        rcd_cleanup(&d[i]);
    }
    return rc;
}

pid_t rcd_proxy_start(int port, const char *const *extra)
{
    char front[64];
    snprintf(front, sizeof front, "tcp://127.0.0.1:%d", port);
    const char *args[32] = {"roomcastd", "proxy", "--frontend", front};
    size_t n = 4;
    for (size_t k = 0; extra && extra[k] && n < 31; k++) {
        args[n++] = extra[k];
    }
    args[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // dies with the test, whatever
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        const char *bin = getenv("ROOMCASTD");
        execv(bin ? bin : "build/release/roomcastd", (char *const *)args);
        _exit(127);
    }
    return pid;
}

int rcd_proxy_stop(pid_t pid)
{
    int status;
    kill(pid, SIGTERM);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}
