/*  redis_bench: the Redis pub/sub baseline for make bench, against a
    redis-server that tests/bench/run.sh started on 127.0.0.1 (compiled by
    run.sh with -lhiredis).

    redis_bench thr PORT SIZE COUNT
        A subscriber process (one connection, SUBSCRIBE bench) and a
        publisher process (another connection) that pipelines PUBLISH
        commands, PIPELINE at a time, reading the replies of one batch
        after sending it. The subscriber times the first to the last
        arrival. Prints "msgs_per_s=... mb_per_s=... received=...".

    redis_bench lat PORT SIZE COUNT
        Ping-pong: the parent publishes to "ping", the child, subscribed
        to it, publishes each message back to "pong"; COUNT timed round
        trips after 1,000 untimed ones.
        Prints "p50_us=... p99_us=... p999_us=... mean_us=...". */
#include <hiredis/hiredis.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIPELINE 128
#define WARMUP   1000

static int s_port;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static redisContext *s_connect(void)
{
    redisContext *c = redisConnect("127.0.0.1", s_port);
    if (!c || c->err) {
        fprintf(stderr, "redis_bench: connect: %s\n", c ? c->errstr : "oom");
        exit(1);
    }
    return c;
}

static void s_command(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    if (!r) {
        fprintf(stderr, "redis_bench: %s\n", c->errstr);
        exit(1);
    }
    freeReplyObject(r);
}

//  The next pub/sub message's payload, or NULL after timeout (the
//  context's timeout) or an error. Caller frees *reply_p.
static redisReply *s_next_message(redisContext *c, redisReply **reply_p)
{
    void *r;
    while (redisGetReply(c, &r) == REDIS_OK) {
        redisReply *m = r;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
            m->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(m->element[0]->str, "message") == 0) {
            *reply_p = m;
            return m->element[2];
        }
        freeReplyObject(m);
    }
    return NULL;
}

static int s_thr_subscriber(int ready_fd, size_t size, long count)
{
    redisContext *c = s_connect();
    s_command(c, "SUBSCRIBE %s", "bench"); // in effect once answered
    if (write(ready_fd, "r", 1) != 1) {
        return 1;
    }
    close(ready_fd);
    struct timeval idle = {2, 0};
    redisSetTimeout(c, idle);
    long received = 0;
    double first = 0, last = 0;
    redisReply *r;
    while (received < count && s_next_message(c, &r)) {
        last = s_now();
        if (received++ == 0) {
            first = last;
        }
        freeReplyObject(r);
    }
    double secs = last > first ? last - first : 1e-9;
    printf("size=%zu count=%ld received=%ld lost=%ld msgs_per_s=%.0f "
           "mb_per_s=%.1f\n",
           size, count, received, count - received, received / secs,
           received * (double)size / secs / 1e6);
    fflush(stdout);
    redisFree(c);
    return 0;
}

static int s_thr(size_t size, long count)
{
    int ready[2];
    char byte;
    if (pipe(ready)) {
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the bench
        close(ready[0]);
        _exit(s_thr_subscriber(ready[1], size, count));
    }
    close(ready[1]);
    if (read(ready[0], &byte, 1) != 1) {
        fprintf(stderr, "redis_bench: the subscriber failed\n");
        return 1;
    }
    redisContext *c = s_connect();
    char *data = malloc(size + 1);
    memset(data, 'x', size);
    for (long sent = 0; sent < count;) {
        long batch = count - sent < PIPELINE ? count - sent : PIPELINE;
        for (long i = 0; i < batch; i++) {
            redisAppendCommand(c, "PUBLISH bench %b", data, size);
        }
        for (long i = 0; i < batch; i++) {
            void *r;
            if (redisGetReply(c, &r) != REDIS_OK) {
                fprintf(stderr, "redis_bench: publish: %s\n", c->errstr);
                exit(1);
            }
            freeReplyObject(r);
        }
        sent += batch;
    }
    int status = 1;
    waitpid(pid, &status, 0);
    free(data);
    redisFree(c);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

//  The child: publish every ping back to "pong" until a 0-byte one.
static int s_lat_echo(int ready_fd)
{
    redisContext *sub = s_connect(), *pub = s_connect();
    s_command(sub, "SUBSCRIBE %s", "ping");
    if (write(ready_fd, "r", 1) != 1) {
        return 1;
    }
    close(ready_fd);
    redisReply *r;
    redisReply *payload;
    while ((payload = s_next_message(sub, &r)) && payload->len > 0) {
        redisReply *ack =
            redisCommand(pub, "PUBLISH pong %b", payload->str, payload->len);
        freeReplyObject(ack);
        freeReplyObject(r);
    }
    if (payload) {
        freeReplyObject(r);
    }
    redisFree(sub);
    redisFree(pub);
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_pct(const double *sorted, long n, double p)
{
    long i = (long)(p * (double)n);
    return sorted[i < n ? i : n - 1];
}

static int s_lat(size_t size, long count)
{
    if (size < sizeof(uint64_t)) {
        size = sizeof(uint64_t);
    }
    int ready[2];
    char byte;
    if (pipe(ready)) {
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the bench
        close(ready[0]);
        _exit(s_lat_echo(ready[1]));
    }
    close(ready[1]);
    redisContext *sub = s_connect(), *pub = s_connect();
    s_command(sub, "SUBSCRIBE %s", "pong");
    if (read(ready[0], &byte, 1) != 1) {
        fprintf(stderr, "redis_bench: the echo process failed\n");
        return 1;
    }
    struct timeval limit = {2, 0};
    redisSetTimeout(sub, limit);
    char *buf = calloc(1, size);
    double *rtt = malloc(sizeof(double) * (size_t)count);
    long n = 0;
    for (uint64_t seq = 1; seq <= (uint64_t)(WARMUP + count); seq++) {
        memcpy(buf, &seq, sizeof seq);
        double t0 = s_now();
        redisReply *ack = redisCommand(pub, "PUBLISH ping %b", buf, size);
        freeReplyObject(ack);
        redisReply *r, *payload;
        uint64_t got = 0;
        while (got != seq && (payload = s_next_message(sub, &r))) {
            if (payload->len >= sizeof got) {
                memcpy(&got, payload->str, sizeof got);
            }
            freeReplyObject(r);
        }
        if (got != seq) {
            fprintf(stderr, "redis_bench: a ping was lost\n");
            break;
        }
        if (seq > WARMUP) {
            rtt[n++] = s_now() - t0;
        }
    }
    redisReply *stop = redisCommand(pub, "PUBLISH ping %b", "", (size_t)0);
    freeReplyObject(stop);
    waitpid(pid, NULL, 0);
    if (n == count) {
        double sum = 0;
        for (long i = 0; i < n; i++) {
            sum += rtt[i];
        }
        qsort(rtt, (size_t)n, sizeof *rtt, s_cmp);
        printf("size=%zu count=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f "
               "mean_us=%.1f\n",
               size, n, s_pct(rtt, n, 0.50) * 1e6, s_pct(rtt, n, 0.99) * 1e6,
               s_pct(rtt, n, 0.999) * 1e6, sum / (double)n * 1e6);
    }
    free(buf);
    free(rtt);
    redisFree(sub);
    redisFree(pub);
    return n == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: redis_bench thr|lat PORT SIZE COUNT\n");
        return 2;
    }
    s_port = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    long count = atol(argv[4]);
    if (s_port <= 0 || count <= 0) {
        fprintf(stderr, "redis_bench: bad PORT or COUNT\n");
        return 2;
    }
    if (strcmp(argv[1], "thr") == 0) {
        return s_thr(size, count);
    }
    if (strcmp(argv[1], "lat") == 0) {
        return s_lat(size, count);
    }
    fprintf(stderr, "redis_bench: unknown mode %s\n", argv[1]);
    return 2;
}
