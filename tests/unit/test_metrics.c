/*  Unit tests: metrics (Prometheus text for /metrics, the /readyz answer). */

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "loop.h"
#include "metrics.h"

//  Every counter a different value, so a line naming the wrong field shows.
static stats_t s_stats(void)
{
    stats_t st = {
        .clients_accepted = 101,
        .clients_refused = 102,
        .publishes = 103,
        .deliveries = 104,
        .dropped_slow = 105,
        .closed_slow = 106,
        .closed_proto = 107,
        .errors_sent = 108,
        .bad_frames = 109,
        .bytes_in = 110,
        .bytes_out = 111,
        .env_sent = 112,
        .env_received = 113,
        .env_undecryptable = 114,
        .env_malformed = 115,
        .env_duplicates = 116,
        .env_own = 117,
        .env_stale = 118,
        .gaps = 119,
        .missed = 120,
        .control_received = 121,
        .control_bad = 122,
        .mesh_send_failed = 18446744073709551615ull, // counters are 64-bit
        .fanout_us_sum = 1234567,
        .fanout_hist = {1, 2, 0, 3, 0, 0, 0, 0, 4},
        .fanouts = 10,
        .mem_refused_clients = 125,
        .mem_refused_subs = 126,
        .mem_refused_presence = 127,
        .mem_refused_pubs = 128,
        .mem_shed_queues = 129,
        .dropped_memory = 130,
        .partial_bytes = 131,
    };
    return st;
}

static metrics_input_t s_input(const stats_t *st)
{
    return (metrics_input_t){
        .stats = st,
        .clients = 3,
        .topics = 4,
        .subscriptions = 5,
        .readable = true,
        .writable = false,
        .live_peers = 6,
        .peers_down = 7,
        .mode = "mesh",
        .version = "0.1.0",
        .node_id = "00112233445566778899aabbccddeeff",
        .channel = "prod",
    };
}

//  The body as an array of lines (the body is changed in place).
typedef struct {
    char *lines[2048];
    size_t n;
} lines_t;

static void s_split(char *body, size_t len, lines_t *out)
{
    assert_true(len > 0);
    assert_int_equal(body[len - 1], '\n'); // every line ends
    out->n = 0;
    for (char *p = body; p < body + len;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        assert_true(out->n < sizeof out->lines / sizeof out->lines[0]);
        out->lines[out->n++] = p;
        p = nl + 1;
    }
}

static bool s_has(const lines_t *l, const char *line)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->lines[i], line) == 0) {
            return true;
        }
    }
    return false;
}

static void s_expect(const lines_t *l, const char *line)
{
    if (!s_has(l, line)) {
        fail_msg("missing line: %s", line);
    }
}

static void s_render(const metrics_input_t *in, http_reply_t *reply,
                     lines_t *lines)
{
    http_reply_init(reply);
    metrics_render(in, reply);
    assert_false(reply->failed);
    assert_int_equal(reply->status, 200);
    assert_string_equal(reply->content_type, METRICS_CONTENT_TYPE);
    assert_int_equal(strlen(reply->body), reply->len);
    s_split(reply->body, reply->len, lines);
}

static void test_gauges_and_counters(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    const char *want[] = {
        "# HELP roomcast_clients Apps connected to this sidecar.",
        "# TYPE roomcast_clients gauge",
        "roomcast_clients 3",
        "roomcast_topics 4",
        "roomcast_subscriptions 5",
        "roomcast_readable 1",
        "roomcast_writable 0",
        "# TYPE roomcast_mesh_peers gauge",
        "roomcast_mesh_peers{state=\"live\"} 6",
        "roomcast_mesh_peers{state=\"down\"} 7",
        "roomcast_info{version=\"0.1.0\",node_id="
        "\"00112233445566778899aabbccddeeff\",channel=\"prod\",mode=\"mesh\"} "
        "1",
        "# TYPE roomcast_publishes_total counter",
        "roomcast_publishes_total 103",
        "roomcast_deliveries_total 104",
        "# TYPE roomcast_dropped_total counter",
        "roomcast_dropped_total{reason=\"slow_consumer\"} 105",
        "roomcast_dropped_total{reason=\"memory_limit\"} 130",
        "roomcast_dropped_total{reason=\"bad_frame\"} 109",
        "roomcast_clients_closed_total{reason=\"slow_consumer\"} 106",
        "roomcast_clients_closed_total{reason=\"protocol\"} 107",
        "roomcast_clients_accepted_total 101",
        "roomcast_clients_refused_total 102",
        "roomcast_errors_sent_total 108",
        "roomcast_bytes_total{direction=\"in\"} 110",
        "roomcast_bytes_total{direction=\"out\"} 111",
        "roomcast_envelopes_total{result=\"sent\"} 112",
        "roomcast_envelopes_total{result=\"received\"} 113",
        "roomcast_envelopes_total{result=\"undecryptable\"} 114",
        "roomcast_envelopes_total{result=\"malformed\"} 115",
        "roomcast_envelopes_total{result=\"duplicate\"} 116",
        "roomcast_envelopes_total{result=\"own\"} 117",
        "roomcast_envelopes_total{result=\"stale\"} 118",
        "roomcast_gaps_total 119",
        "roomcast_missed_total 120",
        "roomcast_control_messages_total{result=\"ok\"} 121",
        "roomcast_control_messages_total{result=\"bad\"} 122",
        "roomcast_mesh_send_failed_total 18446744073709551615",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        s_expect(&l, want[i]);
    }
    http_reply_free(&reply);
}

//  Whether the links are CurveZMQ, and with which keys.
static void test_curve_gauge(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    s_expect(&l, "# TYPE roomcast_curve gauge");
    s_expect(&l, "roomcast_curve{keys=\"none\"} 0");
    http_reply_free(&reply);
    in.curve = "ephemeral";
    s_render(&in, &reply, &l);
    s_expect(&l, "roomcast_curve{keys=\"ephemeral\"} 1");
    http_reply_free(&reply);
}

static void test_histogram(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    //  hist {1, 2, 0, 3, 0, 0, 0, 0, 4} over 10, 50, 100, 500 us ... +Inf,
    //  cumulative, in order, then the sum in seconds and the count
    const char *want[] = {
        "# TYPE roomcast_fanout_duration_seconds histogram",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.00001\"} 1",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.00005\"} 3",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.0001\"} 3",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.0005\"} 6",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.001\"} 6",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.005\"} 6",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.01\"} 6",
        "roomcast_fanout_duration_seconds_bucket{le=\"0.05\"} 6",
        "roomcast_fanout_duration_seconds_bucket{le=\"+Inf\"} 10",
        "roomcast_fanout_duration_seconds_sum 1.234567",
        "roomcast_fanout_duration_seconds_count 10",
    };
    size_t at = 0;
    for (size_t i = 0; i < l.n && at < sizeof want / sizeof want[0]; i++) {
        if (strcmp(l.lines[i], want[at]) == 0) {
            at++;
        }
    }
    if (at != sizeof want / sizeof want[0]) {
        fail_msg("missing or out of order: %s", want[at]);
    }
    http_reply_free(&reply);

    //  whole seconds and zero print without a fraction
    stats_t zero = {.fanout_us_sum = 3000000};
    in.stats = &zero;
    s_render(&in, &reply, &l);
    s_expect(&l, "roomcast_fanout_duration_seconds_sum 3");
    s_expect(&l, "roomcast_fanout_duration_seconds_bucket{le=\"+Inf\"} 0");
    s_expect(&l, "roomcast_fanout_duration_seconds_count 0");
    http_reply_free(&reply);
}

static void test_label_values_are_escaped(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    in.channel = "a\"b\\c\nd";
    in.mode = NULL;
    in.node_id = "caf\xc3\xa9"; // UTF-8 passes as is
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    s_expect(&l, "roomcast_info{version=\"0.1.0\",node_id=\"caf\xc3\xa9\","
                 "channel=\"a\\\"b\\\\c\\nd\",mode=\"\"} 1");
    http_reply_free(&reply);
}

//  The exposition grammar, line by line: comments are HELP or TYPE, every
//  sample is name{labels} value, every sample's family was typed before,
//  counters end in _total, no family is typed twice.
static void test_every_line_is_exposition_syntax(void **state)
{
    (void)state;
    const char *name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
    const char *label = "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\"";
    const char *value = "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|[+-]Inf|NaN)";
    char sample_re[512], comment_re[256];
    snprintf(sample_re, sizeof sample_re, "^(%s)(\\{%s(,%s)*\\})? %s$", name,
             label, label, value);
    snprintf(comment_re, sizeof comment_re,
             "^# (HELP (%s) [^\\\\]+|TYPE (%s) "
             "(counter|gauge|histogram|summary|untyped))$",
             name, name);
    regex_t sample, comment;
    assert_int_equal(regcomp(&sample, sample_re, REG_EXTENDED), 0);
    assert_int_equal(regcomp(&comment, comment_re, REG_EXTENDED), 0);

    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    in.channel = "we\"ird\\\nchan";
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    char typed[96][64];
    char types[96][16];
    size_t ntyped = 0, samples = 0;
    for (size_t i = 0; i < l.n; i++) {
        const char *line = l.lines[i];
        regmatch_t m[4];
        if (line[0] == '#') {
            if (regexec(&comment, line, 4, m, 0)) {
                fail_msg("not a HELP or TYPE line: %s", line);
            }
            if (strncmp(line, "# TYPE ", 7) == 0) {
                assert_true(ntyped < 96);
                assert_int_equal(sscanf(line, "# TYPE %63s %15s", typed[ntyped],
                                        types[ntyped]),
                                 2);
                for (size_t k = 0; k < ntyped; k++) {
                    if (strcmp(typed[k], typed[ntyped]) == 0) {
                        fail_msg("typed twice: %s", line);
                    }
                }
                size_t len = strlen(typed[ntyped]);
                bool total =
                    len > 6 && strcmp(typed[ntyped] + len - 6, "_total") == 0;
                assert_true(total == (strcmp(types[ntyped], "counter") == 0));
                ntyped++;
            }
            continue;
        }
        if (regexec(&sample, line, 2, m, 0)) {
            fail_msg("not a sample line: %s", line);
        }
        assert_true(ntyped > 0);
        //  the sample belongs to the family typed last
        const char *family = typed[ntyped - 1];
        size_t flen = strlen(family);
        size_t nlen = (size_t)(m[1].rm_eo - m[1].rm_so);
        bool ok = nlen == flen && strncmp(line, family, flen) == 0;
        if (strcmp(types[ntyped - 1], "histogram") == 0) {
            ok = strncmp(line, family, flen) == 0 &&
                 (strncmp(line + flen, "_bucket{", 8) == 0 ||
                  strncmp(line + flen, "_sum ", 5) == 0 ||
                  strncmp(line + flen, "_count ", 7) == 0);
        }
        if (!ok) {
            fail_msg("sample outside its family %s: %s", family, line);
        }
        samples++;
    }
    //  + members, 9 queue/presence/memory gauges, memory_shed_total, 7
    //  per-peer families (no peer given: none of their samples)
    assert_int_equal(ntyped, 67); // + envelope_batches_total, + 8 repair,
                                  // + curve, + 2 relink
    //  dropped_total 3 (was 7), memory_shed 5, members 4, 9 gauges, 1
    assert_int_equal(samples, 104); // + 9 repair, + 1 curve, + 2 relink
    // + 1 batches, + 1 refused_format,
    // + 1 control replayed
    regfree(&sample);
    regfree(&comment);
    http_reply_free(&reply);
}

static void test_readyz(void **state)
{
    (void)state;
    const struct {
        bool readable, writable;
        int status;
        const char *body;
    } cases[] = {
        {true, true, 200, "ready\n"},
        {false, true, 503, "not readable: no peer heard lately\n"},
        {true, false, 503, "not writable: no peer hears us\n"},
        {false, false, 503,
         "not readable: no peer heard lately\n"
         "not writable: no peer hears us\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_reply_t reply;
        http_reply_init(&reply);
        assert_int_equal(
            metrics_readyz(cases[i].readable, cases[i].writable, &reply),
            cases[i].status);
        assert_int_equal(reply.status, cases[i].status);
        assert_string_equal(reply.body, cases[i].body);
        http_reply_free(&reply);
    }
}

// --- over HTTP, wired as roomcastd wires it ----------------------------------

typedef struct {
    stats_t stats;
    bool readable;
    bool writable;
} app_t;

static int s_handler(void *arg, const char *path, http_reply_t *reply)
{
    app_t *app = arg;
    if (strcmp(path, "/metrics") == 0) {
        metrics_input_t in = s_input(&app->stats);
        in.readable = app->readable;
        in.writable = app->writable;
        metrics_render(&in, reply);
    } else if (strcmp(path, "/readyz") == 0) {
        metrics_readyz(app->readable, app->writable, reply);
    } else if (strcmp(path, "/healthz") == 0) {
        http_reply_printf(reply, "ok\n");
    } else {
        reply->status = 404;
        http_reply_printf(reply, "not found: try /metrics, /healthz, "
                                 "/readyz\n");
    }
    return 0;
}

//  The server in a child process; its port comes back on a pipe.
static pid_t s_serve(app_t *app, int *port)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char err[256];
        loop_t *loop = loop_new();
        http_t *http = loop ? http_new(loop, "127.0.0.1:0", s_handler, app, err,
                                       sizeof err)
                            : NULL;
        int bound = http ? http_port(http) : -1;
        if (write(p[1], &bound, sizeof bound) != sizeof bound || !http) {
            _exit(1);
        }
        loop_run(loop);
        _exit(0);
    }
    close(p[1]);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    assert_int_equal(read(p[0], port, sizeof *port), sizeof *port);
    assert_true(*port > 0);
    close(p[0]);
    return pid;
}

//  GET path; the whole response (caller frees).
static char *s_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
                     path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 10000), 1);
        assert_true(len + 1 < cap);
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        assert_true(r >= 0);
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

//  Remove the process_* families from a body, in place.
static void s_drop_process_lines(char *body)
{
    char *out = body;
    for (char *p = body; *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (strncmp(p, "process_", 8) && strncmp(p, "# HELP process_", 15) &&
            strncmp(p, "# TYPE process_", 15)) {
            memmove(out, p, len);
            out += len;
        }
        p += len;
    }
    *out = '\0';
}

static void test_scrape_over_http(void **state)
{
    (void)state;
    app_t app = {.stats = s_stats(), .readable = true, .writable = false};
    int port;
    pid_t pid = s_serve(&app, &port);

    char *resp = s_get(port, "/metrics?name[]=x");
    assert_int_equal(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17), 0);
    assert_non_null(
        strstr(resp, "\r\nContent-Type: " METRICS_CONTENT_TYPE "\r\n"));
    http_reply_t want;
    metrics_input_t in = s_input(&app.stats);
    in.writable = false;
    http_reply_init(&want);
    metrics_render(&in, &want);
    char *body = strstr(resp, "\r\n\r\n") + 4;
    char cl[64];
    snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(resp, cl));
    //  the process_* lines are the serving child's own
    s_drop_process_lines(body);
    s_drop_process_lines(want.body);
    assert_string_equal(body, want.body);
    http_reply_free(&want);
    free(resp);

    resp = s_get(port, "/readyz");
    assert_int_equal(strncmp(resp, "HTTP/1.1 503 Service Unavailable\r\n", 34),
                     0);
    assert_non_null(strstr(resp, "\r\n\r\nnot writable: no peer hears us\n"));
    free(resp);

    resp = s_get(port, "/healthz");
    assert_int_equal(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17), 0);
    free(resp);

    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void test_build_info_and_process(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    s_expect(&l, "# TYPE roomcast_build_info gauge");
    s_expect(&l, "roomcast_build_info{version=\"0.1.0\"} 1");
    s_expect(&l, "# TYPE process_cpu_seconds_total counter");
    s_expect(&l, "# TYPE process_resident_memory_bytes gauge");
    double rss = -1, start = -1, fds = -1, max = -1, cpu = -1;
    for (size_t i = 0; i < l.n; i++) {
        sscanf(l.lines[i], "process_resident_memory_bytes %lf", &rss);
        sscanf(l.lines[i], "process_start_time_seconds %lf", &start);
        sscanf(l.lines[i], "process_open_fds %lf", &fds);
        sscanf(l.lines[i], "process_max_fds %lf", &max);
        sscanf(l.lines[i], "process_cpu_seconds_total %lf", &cpu);
    }
    //  this test process: some resident memory, started in the last day,
    //  stdin/out/err open
    assert_true(rss > 100 * 1024 && rss < 1e10);
    double now = (double)time(NULL);
    assert_true(start <= now + 1 && start > now - 86400);
    assert_true(fds >= 3 && fds < 1000);
    assert_true(max >= fds);
    assert_true(cpu >= 0);
    //  the same count as the kernel's table, minus nothing
    metrics_process_t p;
    assert_int_equal(metrics_process_read("/proc", "self", &p), 0);
    int extra = dup(0);
    metrics_process_t q;
    assert_int_equal(metrics_process_read("/proc", "self", &q), 0);
    assert_int_equal(q.open_fds, p.open_fds + 1);
    close(extra);
    http_reply_free(&reply);
}

static void s_write(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_process_read_parses_proc(void **state)
{
    (void)state;
    char dir[] = "/tmp/rc-proc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/42", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/42/fd", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    s_write(path, "0", "");
    s_write(path, "1", "");
    s_write(path, "7", "");
    s_write(dir, "stat", "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n");
    long hz = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    char stat[512];
    //  a command name with spaces and ')' in it
    snprintf(stat, sizeof stat,
             "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 %ld %ld 0 "
             "0 20 0 1 0 %ld 123456789 1000 18446744073709551615\n",
             3 * hz, hz, 50 * hz);
    snprintf(path, sizeof path, "%s/42", dir);
    s_write(path, "stat", stat);
    s_write(path, "limits",
            "Limit                     Soft Limit           Hard Limit   "
            "        Units\n"
            "Max cpu time              unlimited            unlimited    "
            "        seconds\n"
            "Max open files            1024                 524288       "
            "        files\n");
    metrics_process_t p;
    assert_int_equal(metrics_process_read(dir, "42", &p), 0);
    assert_true(p.cpu_seconds > 3.99 && p.cpu_seconds < 4.01);
    assert_true(p.start_time > 1700000049.99 && p.start_time < 1700000050.01);
    assert_int_equal(p.virtual_bytes, 123456789);
    assert_int_equal(p.resident_bytes, 1000 * (uint64_t)page);
    assert_int_equal(p.max_fds, 1024);
    assert_int_equal(p.open_fds, 3);
    //  a stat line cut short is an error, not zeros
    s_write(path, "stat", "42 (x) S 1 42\n");
    assert_int_equal(metrics_process_read(dir, "42", &p), -1);
    assert_int_equal(metrics_process_read(dir, "43", &p), -1);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

//  Each envelope result once: dropped_total no longer repeats them.
static void test_drops_are_counted_once(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    size_t dropped = 0;
    for (size_t i = 0; i < l.n; i++) {
        dropped += strncmp(l.lines[i], "roomcast_dropped_total{", 23) == 0;
        assert_null(strstr(l.lines[i], "reason=\"undecryptable\""));
    }
    assert_int_equal(dropped, 3);
    http_reply_free(&reply);
}

static void test_members_queues_and_memory(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    in.members[1] = 5;
    in.members[2] = 1;
    in.members[3] = 2;
    in.members[4] = 3;
    in.queue_bytes = 1000;
    in.queue_frames = 10;
    in.queue_largest = 600;
    in.apps_slow = 1;
    in.presence_entries = 7;
    in.presence_bytes = 700;
    in.memory_limit = 483183820;
    in.memory_pressure = 2;
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    const char *want[] = {
        "# TYPE roomcast_members gauge",
        "roomcast_members{state=\"alive\"} 5",
        "roomcast_members{state=\"suspect\"} 1",
        "roomcast_members{state=\"dead\"} 2",
        "roomcast_members{state=\"left\"} 3",
        "roomcast_app_queue_bytes 1000",
        "roomcast_app_queue_frames 10",
        "roomcast_app_queue_largest_bytes 600",
        "roomcast_apps_slow 1",
        "roomcast_partial_frame_bytes 131",
        "roomcast_presence_entries 7",
        "roomcast_presence_bytes 700",
        "# TYPE roomcast_memory_limit_bytes gauge",
        "roomcast_memory_limit_bytes 483183820",
        "roomcast_memory_pressure 2",
        "# TYPE roomcast_memory_shed_total counter",
        "roomcast_memory_shed_total{action=\"refuse_client\"} 125",
        "roomcast_memory_shed_total{action=\"refuse_subscribe\"} 126",
        "roomcast_memory_shed_total{action=\"refuse_presence\"} 127",
        "roomcast_memory_shed_total{action=\"refuse_publish\"} 128",
        "roomcast_memory_shed_total{action=\"drop_queue\"} 129",
        "roomcast_peer_series_omitted 0",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        s_expect(&l, want[i]);
    }
    http_reply_free(&reply);
}

static metrics_peer_t s_peer(unsigned n, const char *state, uint64_t lost,
                             uint64_t last_ms)
{
    metrics_peer_t p = {.state = state,
                        .hears_us = true,
                        .last_ms = last_ms,
                        .received = 1000 + n,
                        .missed = lost,
                        .lost_to = 0};
    snprintf(p.node_id, sizeof p.node_id, "%032x", n);
    snprintf(p.name, sizeof p.name, "node-%u", n);
    return p;
}

static void test_peer_series(void **state)
{
    (void)state;
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    static metrics_peers_t set;
    metrics_peers_reset(&set);
    metrics_peer_t a = s_peer(1, "live", 3, 1500);
    a.lost_to = 4;
    snprintf(a.name, sizeof a.name, "we\"ird"); // escaped as a label
    metrics_peer_t b = s_peer(2, "down", 0, UINT64_MAX);
    b.hears_us = false;
    metrics_peers_offer(&set, &a);
    metrics_peers_offer(&set, &b);
    in.peers = &set;
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    const char *la = "{node_id=\"00000000000000000000000000000001\","
                     "name=\"we\\\"ird\"}";
    const char *lb = "{node_id=\"00000000000000000000000000000002\","
                     "name=\"node-2\"}";
    char want[300];
    const struct {
        const char *name;
        const char *labels;
        const char *value;
    } rows[] = {
        {"peer_up", la, "1"},
        {"peer_up", lb, "0"},
        {"peer_hears_us", la, "1"},
        {"peer_hears_us", lb, "0"},
        {"peer_last_heard_seconds", la, "1.5"},
        {"peer_received_total", la, "1001"},
        {"peer_received_total", lb, "1002"},
        {"peer_missed_total", la, "3"},
        {"peer_lost_to_total", la, "4"},
        {"peer_lost_to_total", lb, "0"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(want, sizeof want, "roomcast_%s%s %s", rows[i].name,
                 rows[i].labels, rows[i].value);
        s_expect(&l, want);
    }
    //  never heard: no last-heard sample rather than a made-up one
    snprintf(want, sizeof want, "roomcast_peer_last_heard_seconds%s", lb);
    for (size_t i = 0; i < l.n; i++) {
        assert_true(strncmp(l.lines[i], want, strlen(want)) != 0);
    }
    s_expect(&l, "# TYPE roomcast_peer_received_total counter");
    s_expect(&l, "roomcast_peer_series_omitted 0");
    http_reply_free(&reply);
}

static bool s_kept(const metrics_peers_t *set, unsigned n)
{
    char id[33];
    snprintf(id, sizeof id, "%032x", n);
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->items[i].node_id, id) == 0) {
            return true;
        }
    }
    return false;
}

//  200 peers: the series show 64, worst first (down, then lossy, then
//  silent longest, then the lowest ids), whatever the order they come in.
static void test_peer_series_are_capped_worst_first(void **state)
{
    (void)state;
    static metrics_peers_t fwd, rev;
    metrics_peers_reset(&fwd);
    metrics_peers_reset(&rev);
    enum { N = 200 };
    static metrics_peer_t peers[N];
    for (unsigned i = 0; i < N; i++) {
        //  ids 150..159 down, 100..119 lossy, 50..59 silent 9 s, others
        //  healthy and heard 100 ms ago
        bool down = i >= 150 && i < 160;
        uint64_t lost = i >= 100 && i < 120 ? i : 0;
        uint64_t last = i >= 50 && i < 60 ? 9000 : 100;
        peers[i] = s_peer(i, down ? "down" : "live", lost, last);
    }
    for (unsigned i = 0; i < N; i++) {
        metrics_peers_offer(&fwd, &peers[i]);
        metrics_peers_offer(&rev, &peers[N - 1 - i]);
    }
    assert_int_equal(fwd.count, METRICS_PEERS_MAX);
    assert_int_equal(fwd.total, N);
    for (unsigned i = 0; i < N; i++) {
        bool want = (i >= 150 && i < 160) || (i >= 100 && i < 120) ||
                    (i >= 50 && i < 60) || i < 24; // 40 bad + 24 lowest
        if (s_kept(&fwd, i) != want || s_kept(&rev, i) != want) {
            fail_msg("peer %u: kept %d/%d, want %d", i, s_kept(&fwd, i),
                     s_kept(&rev, i), want);
        }
    }
    stats_t st = s_stats();
    metrics_input_t in = s_input(&st);
    in.peers = &fwd;
    http_reply_t reply;
    lines_t l;
    s_render(&in, &reply, &l);
    s_expect(&l, "roomcast_peer_series_omitted 136");
    size_t up = 0;
    for (size_t i = 0; i < l.n; i++) {
        up += strncmp(l.lines[i], "roomcast_peer_up{", 17) == 0;
    }
    assert_int_equal(up, METRICS_PEERS_MAX);
    http_reply_free(&reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gauges_and_counters),
        cmocka_unit_test(test_curve_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_every_line_is_exposition_syntax),
        cmocka_unit_test(test_readyz),
        cmocka_unit_test(test_scrape_over_http),
        cmocka_unit_test(test_build_info_and_process),
        cmocka_unit_test(test_process_read_parses_proc),
        cmocka_unit_test(test_drops_are_counted_once),
        cmocka_unit_test(test_members_queues_and_memory),
        cmocka_unit_test(test_peer_series),
        cmocka_unit_test(test_peer_series_are_capped_worst_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
