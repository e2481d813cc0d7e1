/*  Unit tests: config (flags, environment, config file, defaults). */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)

extern char **environ;

typedef struct {
    char dir[64];   // a fresh temporary directory
    char path[128]; // dir/roomcastd.conf
    char err[512];
    config_t cfg;
} fixture_t;

//  Every test starts without any ROOMCAST_ variable, whatever the caller's
//  environment holds.
static void s_clear_env(void)
{
    bool again = true;
    while (again) {
        again = false;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "ROOMCAST_", 9) == 0) {
                char name[128];
                size_t len = strcspn(*e, "=");
                assert_true(len < sizeof name);
                memcpy(name, *e, len);
                name[len] = 0;
                unsetenv(name);
                again = true;
                break;
            }
        }
    }
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx) {
        return -1;
    }
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_config.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/roomcastd.conf", fx->dir);
    s_clear_env();
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    config_free(&fx->cfg);
    unlink(fx->path);
    rmdir(fx->dir);
    s_clear_env();
    free(fx);
    return 0;
}

static void s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

//  config_load with a NULL-terminated argument list (argv[0] added).
static int s_load(fixture_t *fx, const char *arg, ...)
{
    char *argv[32] = {"roomcastd"};
    int argc = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a; a = va_arg(ap, const char *)) {
        assert_true(argc < 31);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    config_free(&fx->cfg);
    fx->err[0] = 0;
    return config_load(&fx->cfg, argc, argv, fx->err, sizeof fx->err);
}

//  config_parse_text on fresh defaults.
static int s_parse(fixture_t *fx, const char *text)
{
    config_free(&fx->cfg);
    config_defaults(&fx->cfg);
    fx->err[0] = 0;
    return config_parse_text(&fx->cfg, text, "test.conf", fx->err,
                             sizeof fx->err);
}

static void s_assert_err_has(const fixture_t *fx, const char *part)
{
    if (!strstr(fx->err, part)) {
        fail_msg("error '%s' does not mention '%s'", fx->err, part);
    }
}

//  Runs config_load with stdout sent to /dev/null (for --help, --version).
static int s_load_quiet(fixture_t *fx, const char *arg)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    assert_true(dup2(null, STDOUT_FILENO) >= 0);
    close(null);
    int rc = s_load(fx, arg, NULL);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    return rc;
}

// --- defaults ----------------------------------------------------------------

static void test_defaults(void **state)
{
    fixture_t *fx = *state;
    config_defaults(&fx->cfg);
    config_t *cfg = &fx->cfg;
    assert_null(cfg->channel); // required: no default
    assert_string_equal(cfg->socket_path, "/run/roomcast/roomcast.sock");
    assert_string_equal(cfg->socket_group, "");
    assert_string_equal(cfg->name, "");
    assert_int_equal(cfg->max_payload, MIB);
    assert_int_equal(cfg->queue_budget, 8 * MIB);
    assert_int_equal(cfg->slow_grace_ms, 5000);
    assert_int_equal(cfg->max_clients, 100000);
    assert_int_equal(cfg->fanout_slice, 1024);
    assert_int_equal(cfg->shutdown_timeout_ms, 5000);
    assert_string_equal(cfg->log_level, "info");
    assert_null(cfg->config_file);
    config_free(cfg);
    assert_null(cfg->socket_path);
    config_free(cfg); // twice is fine
}

static void test_load_with_only_a_channel_gives_defaults(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, "--channel", "prod", NULL), CONFIG_OK);
    assert_string_equal(fx->cfg.channel, "prod");
    assert_int_equal(fx->cfg.queue_budget, 8 * MIB);
    assert_int_equal(fx->cfg.max_payload, MIB);
    assert_null(fx->cfg.config_file);
    //  the node name defaults to the host name
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    assert_non_null(fx->cfg.name);
    assert_true(strlen(fx->cfg.name) > 0);
    if (*host) {
        assert_string_equal(fx->cfg.name, host);
    }
}

// --- config text -------------------------------------------------------------

static void test_parse_text(void **state)
{
    fixture_t *fx = *state;
    const char *text = "# roomcastd settings\n"
                       "\n"
                       "channel = prod   # the cluster\n"
                       "   \n"
                       "\tqueue-budget\t=\t64KiB\t\n"
                       "max-payload=1MiB\n"
                       "  socket = /tmp/rc.sock  \n"
                       "slow-grace = 250\n"
                       "max-clients = 10\r\n"
                       "fanout-slice = 3\n"
                       "shutdown-timeout = 0\n"
                       "log-level = debug\n"
                       "name = node a\n"
                       "socket-group = roomcast"; // no final newline
    assert_int_equal(s_parse(fx, text), 0);
    config_t *cfg = &fx->cfg;
    assert_string_equal(cfg->channel, "prod");
    assert_int_equal(cfg->queue_budget, 64 * KIB);
    assert_int_equal(cfg->max_payload, MIB);
    assert_string_equal(cfg->socket_path, "/tmp/rc.sock");
    assert_int_equal(cfg->slow_grace_ms, 250);
    assert_int_equal(cfg->max_clients, 10);
    assert_int_equal(cfg->fanout_slice, 3);
    assert_int_equal(cfg->shutdown_timeout_ms, 0);
    assert_string_equal(cfg->log_level, "debug");
    assert_string_equal(cfg->name, "node a"); // inner spaces stay
    assert_string_equal(cfg->socket_group, "roomcast");
}

static void test_parse_empty_and_comment_only_texts(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_parse(fx, ""), 0);
    assert_int_equal(s_parse(fx, "\n\n\n"), 0);
    assert_int_equal(s_parse(fx, "# nothing = here\n  # or here\n"), 0);
    assert_int_equal(fx->cfg.queue_budget, 8 * MIB);
    //  a later line wins, and the first value is not leaked
    assert_int_equal(s_parse(fx, "channel = a\nchannel = b\n"), 0);
    assert_string_equal(fx->cfg.channel, "b");
}

static void test_size_suffixes(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"65536", 65536},   {"64KiB", 64 * KIB},
        {"64k", 64 * KIB},  {"64K", 64 * KIB},
        {"64kb", 64 * KIB}, {"1MiB", MIB},
        {"1m", MIB},        {"3MB", 3 * MIB},
        {"2GiB", 2 * GIB},  {"1g", GIB},
        {"0", 0},
    };
    char line[64];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(line, sizeof line, "queue-budget = %s\n", ok[i].text);
        assert_int_equal(s_parse(fx, line), 0);
        assert_int_equal(fx->cfg.queue_budget, ok[i].bytes);
    }
    static const char *bad[] = {
        "",
        "lots",
        "-1",
        "1TiB",
        "1 MiB",
        "1.5MiB",
        "MiB",
        "1MiBs",
        "99999999999999999999",
        "18446744073709551615k",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, "queue-budget = %s\n", bad[i]);
        if (s_parse(fx, line) != -1) {
            fail_msg("'%s' accepted", line);
        }
        s_assert_err_has(fx, "queue-budget");
        assert_int_equal(fx->cfg.queue_budget, 8 * MIB); // unchanged
    }
}

static void test_unknown_key_names_the_key_and_line(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(
        s_parse(fx, "# settings\nchannel = prod\n\nqueue-bugdet = 1MiB\n"), -1);
    s_assert_err_has(fx, "queue-bugdet");
    s_assert_err_has(fx, "test.conf:4");
}

static void test_bad_values_are_errors(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_parse(fx, "channel = prod\nslow-grace = soon\n"), -1);
    s_assert_err_has(fx, "slow-grace");
    s_assert_err_has(fx, "soon");
    s_assert_err_has(fx, "test.conf:2");
    assert_int_equal(s_parse(fx, "max-clients = -5\n"), -1);
    s_assert_err_has(fx, "max-clients");
    assert_int_equal(s_parse(fx, "max-clients = 5k\n"), -1); // no suffix
    assert_int_equal(s_parse(fx, "shutdown-timeout =\n"), -1);
    //  a line that is not "name = value"
    assert_int_equal(s_parse(fx, "channel prod\n"), -1);
    s_assert_err_has(fx, "test.conf:1");
}

// --- config_load: where a setting comes from ---------------------------------

static void test_precedence_flag_env_file_default(void **state)
{
    fixture_t *fx = *state;
    s_write_file(fx->path, "channel = from-file\n"
                           "queue-budget = 16MiB\n"
                           "slow-grace = 100\n"
                           "max-clients = 7\n");
    //  file over default
    assert_int_equal(s_load(fx, "--config", fx->path, NULL), CONFIG_OK);
    assert_string_equal(fx->cfg.channel, "from-file");
    assert_int_equal(fx->cfg.queue_budget, 16 * MIB);
    assert_int_equal(fx->cfg.fanout_slice, 1024); // default
    assert_string_equal(fx->cfg.config_file, fx->path);

    //  environment over file
    setenv("ROOMCAST_QUEUE_BUDGET", "32MiB", 1);
    setenv("ROOMCAST_SLOW_GRACE", "200", 1);
    assert_int_equal(s_load(fx, "--config", fx->path, NULL), CONFIG_OK);
    assert_int_equal(fx->cfg.queue_budget, 32 * MIB);
    assert_int_equal(fx->cfg.slow_grace_ms, 200);
    assert_int_equal(fx->cfg.max_clients, 7); // from the file

    //  flag over environment
    assert_int_equal(
        s_load(fx, "--config", fx->path, "--queue-budget", "48MiB", NULL),
        CONFIG_OK);
    assert_int_equal(fx->cfg.queue_budget, 48 * MIB);
    assert_int_equal(fx->cfg.slow_grace_ms, 200); // env
    assert_int_equal(fx->cfg.max_clients, 7);     // file
    assert_string_equal(fx->cfg.channel, "from-file");

    //  --name=value, in any order
    assert_int_equal(s_load(fx, "--queue-budget=2MiB", "--channel=flagged",
                            "--config=", NULL),
                     CONFIG_OK);
    assert_int_equal(fx->cfg.queue_budget, 2 * MIB);
    assert_string_equal(fx->cfg.channel, "flagged");
    assert_null(fx->cfg.config_file);
}

static void test_config_file_from_the_environment(void **state)
{
    fixture_t *fx = *state;
    s_write_file(fx->path, "channel = env-file\nmax-clients = 9\n");
    setenv("ROOMCAST_CONFIG", fx->path, 1);
    assert_int_equal(s_load(fx, NULL), CONFIG_OK);
    assert_string_equal(fx->cfg.channel, "env-file");
    assert_int_equal(fx->cfg.max_clients, 9);
    assert_string_equal(fx->cfg.config_file, fx->path);
    //  dashes become underscores in the names
    setenv("ROOMCAST_MAX_CLIENTS", "11", 1);
    setenv("ROOMCAST_CHANNEL", "env", 1);
    assert_int_equal(s_load(fx, NULL), CONFIG_OK);
    assert_int_equal(fx->cfg.max_clients, 11);
    assert_string_equal(fx->cfg.channel, "env");
}

static void test_config_file_errors(void **state)
{
    fixture_t *fx = *state;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.conf", fx->dir);
    assert_int_equal(s_load(fx, "--channel", "x", "--config", missing, NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, missing);
    s_write_file(fx->path, "channel = x\nbogus = 1\n");
    assert_int_equal(s_load(fx, "--config", fx->path, NULL), CONFIG_ERROR);
    s_assert_err_has(fx, "bogus");
    s_assert_err_has(fx, ":2");
}

static void test_bad_environment_value_names_the_variable(void **state)
{
    fixture_t *fx = *state;
    setenv("ROOMCAST_QUEUE_BUDGET", "lots", 1);
    assert_int_equal(s_load(fx, "--channel", "prod", NULL), CONFIG_ERROR);
    s_assert_err_has(fx, "ROOMCAST_QUEUE_BUDGET");
    s_assert_err_has(fx, "lots");
}

static void test_missing_channel_is_an_error(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, NULL), CONFIG_ERROR);
    s_assert_err_has(fx, "--channel");
    assert_int_equal(s_load(fx, "--channel", "", NULL), CONFIG_ERROR);
    s_assert_err_has(fx, "--channel");
    assert_int_equal(s_load(fx, "--queue-budget", "2MiB", NULL), CONFIG_ERROR);
    s_assert_err_has(fx, "--channel");
}

static void test_help_and_version_exit(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load_quiet(fx, "--help"), CONFIG_EXIT);
    assert_int_equal(s_load_quiet(fx, "-h"), CONFIG_EXIT);
    assert_int_equal(s_load_quiet(fx, "--version"), CONFIG_EXIT);
    assert_int_equal(s_load_quiet(fx, "-V"), CONFIG_EXIT);
    //  the help names every setting
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    assert_non_null(mem);
    config_usage(mem);
    fclose(mem);
    static const char *names[] = {
        "--channel",
        "--socket ",
        "--socket-group",
        "--name",
        "--max-payload",
        "--queue-budget",
        "--slow-grace",
        "--max-clients",
        "--fanout-slice",
        "--shutdown-timeout",
        "--log-level",
        "--config",
        "ROOMCAST_QUEUE_BUDGET",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strstr(text, names[i])) {
            free(text);
            fail_msg("--help does not mention %s", names[i]);
        }
    }
    free(text);
}

static void test_unknown_flags_and_arguments(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, "--channel", "x", "--bogus", "1", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "--bogus");
    assert_int_equal(s_load(fx, "--channel", "x", "--bogus=1", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "--bogus");
    assert_int_equal(s_load(fx, "--channel", "x", "stray", NULL), CONFIG_ERROR);
    s_assert_err_has(fx, "stray");
    assert_int_equal(s_load(fx, "--channel", "x", "-q", NULL), CONFIG_ERROR);
    //  a prefix of a name is not the name
    assert_int_equal(s_load(fx, "--channel", "x", "--queue", "1", NULL),
                     CONFIG_ERROR);
}

static void test_flag_values(void **state)
{
    fixture_t *fx = *state;
    //  a flag at the end without its value
    assert_int_equal(s_load(fx, "--channel", "x", "--queue-budget", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "queue-budget");
    assert_int_equal(
        s_load(fx, "--channel", "x", "--queue-budget", "lots", NULL),
        CONFIG_ERROR);
    s_assert_err_has(fx, "queue-budget");
    s_assert_err_has(fx, "lots");
    //  an empty value after '=' is a value
    assert_int_equal(s_load(fx, "--channel", "x", "--socket-group=", NULL),
                     CONFIG_OK);
    assert_string_equal(fx->cfg.socket_group, "");
    //  a flag given twice: the last wins
    assert_int_equal(s_load(fx, "--channel", "a", "--channel", "b", NULL),
                     CONFIG_OK);
    assert_string_equal(fx->cfg.channel, "b");
}

//  --config is a flag like the others: without its value it is an error,
//  not silently no config file.
static void test_config_flag_without_value_is_an_error(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, "--channel", "x", "--config", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "config");
}

static void test_checks_across_settings(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, "--channel", "x", "--max-payload", "0", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "--max-payload");
    assert_int_equal(
        s_load(fx, "--channel", "x", "--max-payload", "65MiB", NULL),
        CONFIG_ERROR);
    assert_int_equal(s_load(fx, "--channel", "x", "--max-payload", "2MiB",
                            "--queue-budget", "1MiB", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "--queue-budget");
    assert_int_equal(s_load(fx, "--channel", "x", "--max-clients", "0", NULL),
                     CONFIG_ERROR);
    assert_int_equal(s_load(fx, "--channel", "x", "--fanout-slice", "0", NULL),
                     CONFIG_ERROR);
    char long_channel[300];
    memset(long_channel, 'c', sizeof long_channel - 1);
    long_channel[sizeof long_channel - 1] = 0;
    assert_int_equal(s_load(fx, "--channel", long_channel, NULL), CONFIG_ERROR);
    s_assert_err_has(fx, "--channel");
    long_channel[255] = 0;
    assert_int_equal(s_load(fx, "--channel", long_channel, NULL), CONFIG_OK);
    assert_int_equal(
        s_load(fx, "--channel", "x", "--envelope-format", "3", NULL),
        CONFIG_ERROR);
    s_assert_err_has(fx, "--envelope-format");
    assert_int_equal(
        s_load(fx, "--channel", "x", "--envelope-format", "1", NULL),
        CONFIG_OK);
    assert_int_equal(fx->cfg.envelope_format, 1);
    //  the node name given is kept
    assert_int_equal(s_load(fx, "--channel", "x", "--name", "edge-1", NULL),
                     CONFIG_OK);
    assert_string_equal(fx->cfg.name, "edge-1");
}

// --- addresses and endpoints
// ---------------------------------------------------

//  A CurveZMQ public key from the ZeroMQ guide: 40 Z85 characters, '@'
//  among them.
#define KEY "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

//  One option with one value on the command line (plus what it needs to
//  be accepted at all).
static int s_load_one(fixture_t *fx, const char *flag, const char *value)
{
    return s_load(fx, "--channel", "x", "--key-file", "/k", "--bind",
                  "tcp://127.0.0.1:7440", "--gossip", "127.0.0.1:7441", flag,
                  value, NULL);
}

static void test_endpoints_are_checked(void **state)
{
    fixture_t *fx = *state;
    const struct {
        const char *flag, *value, *why;
    } bad[] = {
        {"--bind", "tcp://127.0.0.1:87536", "port"},
        {"--bind", "tcp://127.0.0.1:65536", "port"},
        {"--bind", "tcp://127.0.0.1:0", "port"},
        {"--bind", "tcp://127.0.0.1:*", "port"},
        {"--bind", "tcp://127.0.0.1:", "port"},
        {"--bind", "tcp://127.0.0.1:74x0", "port"},
        {"--bind", "tcp://127.0.0.1:-1", "port"},
        {"--bind", "tcp://127.0.0.1", "tcp://HOST:PORT"},
        {"--bind", "127.0.0.1:7440", "tcp://"},
        {"--bind", "udp://127.0.0.1:7440", "tcp://"},
        {"--bind", "ipc:///tmp/x", "tcp://"},
        {"--bind", "tcp://:7440", "host"},
        {"--bind", "tcp://10.0.0.5:7440@" KEY, "key"},
        {"--bind", "tcp://999.1.1.1:7440", "host"},
        {"--bind", "tcp://10.0.0.1;10.0.0.2:7440", "host"},
        {"--advertise", "tcp://*:7440", "host"},
        {"--advertise", "tcp://10.0.0.5:99999", "port"},
        {"--peer", "not-an-endpoint", "tcp://"},
        {"--peer", "tcp://10.0.0.2:7440@short", "key"},
        {"--peer",
         "tcp://10.0.0.2:7440@~q:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "key"},
        {"--peer", "tcp://[::1:7440", "host"},
        {"--peer", "tcp://[zz::1]:7440", "host"},
        {"--peer", "tcp://*:7440", "host"},
        {"--proxy", "tcp://proxy1:65535", "port"},
        {"--proxy", "tcp://proxy1", "tcp://HOST:PORT"},
        {"--gossip", "10.0.0.1:99999", "port"},
        {"--gossip", "10.0.0.1", "HOST:PORT"},
        {"--gossip", "10.0.0.1:0", "port"},
        {"--gossip", "host.example:7441", "host"},
        {"--gossip", "tcp://10.0.0.1:7441", "host"},
        {"--join", "10.0.0.1:0", "port"},
        {"--join", "10.0.0.1:70000", "port"},
        {"--join", ":7441", "host"},
        {"--join", "dns::7441", "host"},
        {"--join", "dns:svc", "HOST:PORT"},
        {"--join", "seed.example", "HOST:PORT"},
        {"--http", "127.0.0.1:65536", "port"},
        {"--http", "127.0.0.1", "HOST:PORT"},
        {"--http", "example.com:9464", "host"},
        {"--http", "127.0.0.1:http", "port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (s_load_one(fx, bad[i].flag, bad[i].value) != CONFIG_ERROR) {
            fail_msg("%s %s was accepted", bad[i].flag, bad[i].value);
        }
        //  one line that names the option, the value and what is wrong
        s_assert_err_has(fx, bad[i].flag + 2);
        s_assert_err_has(fx, bad[i].value);
        s_assert_err_has(fx, bad[i].why);
        assert_null(strchr(fx->err, '\n'));
    }
    const struct {
        const char *flag, *value;
    } good[] = {
        {"--bind", "tcp://0.0.0.0:7440"},
        {"--bind", "tcp://*:7440"},
        {"--bind", "tcp://[::]:7440"},
        {"--bind", "tcp://eth0:1"},
        {"--bind", "tcp://127.0.0.1:65535"},
        {"--advertise", "tcp://10.0.0.5:7440"},
        {"--advertise", "tcp://node-1.example.com:7440"},
        {"--peer", "tcp://10.0.0.2:7440@" KEY},
        {"--peer", "tcp://[fd00::2]:7440"},
        {"--peer", "tcp://roomcast-b:7440"},
        {"--proxy", "tcp://proxy1:65534@" KEY},
        {"--gossip", "10.0.0.5:7441"},
        {"--gossip", ":7441"},
        {"--gossip", "0.0.0.0:7441"},
        {"--gossip", "[::1]:7441"},
        {"--join", "10.0.0.1:7441"},
        {"--join", "dns:roomcast-seeds.default.svc:7441"},
        {"--join", "seed.example:7441"},
        {"--join", "[fd00::1]:7441"},
        {"--http", "127.0.0.1:9464"},
        {"--http", ":9464"},
        {"--http", "[::1]:9464"},
        {"--http", "localhost:9464"},
        {"--http", "127.0.0.1:0"}, // any free port: the log says which
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (s_load_one(fx, good[i].flag, good[i].value) != CONFIG_OK) {
            fail_msg("%s %s: %s", good[i].flag, good[i].value, fx->err);
        }
    }
}

//  The same checks for the environment and the file, which say where the
//  bad value came from; each item of a list is checked.
static void test_endpoint_errors_say_where(void **state)
{
    fixture_t *fx = *state;
    setenv("ROOMCAST_PEERS", "tcp://10.0.0.2:7440, tcp://10.0.0.3:70000", 1);
    assert_int_equal(s_load(fx, "--channel", "x", "--key-file", "/k", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "ROOMCAST_PEERS");
    s_assert_err_has(fx, "tcp://10.0.0.3:70000");
    unsetenv("ROOMCAST_PEERS");
    //  a repeated flag: the second one is checked too
    assert_int_equal(s_load(fx, "--channel", "x", "--key-file", "/k", "--peer",
                            "tcp://a:1", "--peer", "tcp://b", NULL),
                     CONFIG_ERROR);
    s_assert_err_has(fx, "tcp://b");
    assert_int_equal(s_parse(fx, "channel = x\njoin = 10.0.0.1:7441, nope\n"),
                     -1);
    s_assert_err_has(fx, "test.conf:2");
    s_assert_err_has(fx, "nope");
    //  '#' is a Z85 character: inside a value it is not a comment
#define HASH_KEY "K8N@K6zf?-MV#T]8#OKaPmyupblWbFR?/4Vd?7*<"
    assert_int_equal(s_parse(fx, "peer = tcp://10.0.0.2:7440@" HASH_KEY
                                 " # peer B\n# a comment\nzone = a#b\t#c\n"),
                     0);
    assert_int_equal(fx->cfg.peers.count, 1);
    assert_string_equal(fx->cfg.peers.items[0],
                        "tcp://10.0.0.2:7440@" HASH_KEY);
    assert_string_equal(fx->cfg.zone, "a#b");
    //  empty means "none" where the default is none
    assert_int_equal(s_parse(fx, "bind =\nhttp =\ngossip =\nadvertise =\n"), 0);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_defaults),
        TEST(test_load_with_only_a_channel_gives_defaults),
        TEST(test_parse_text),
        TEST(test_parse_empty_and_comment_only_texts),
        TEST(test_size_suffixes),
        TEST(test_unknown_key_names_the_key_and_line),
        TEST(test_bad_values_are_errors),
        TEST(test_precedence_flag_env_file_default),
        TEST(test_config_file_from_the_environment),
        TEST(test_config_file_errors),
        TEST(test_bad_environment_value_names_the_variable),
        TEST(test_missing_channel_is_an_error),
        TEST(test_help_and_version_exit),
        TEST(test_unknown_flags_and_arguments),
        TEST(test_flag_values),
        TEST(test_config_flag_without_value_is_an_error),
        TEST(test_checks_across_settings),
        TEST(test_endpoints_are_checked),
        TEST(test_endpoint_errors_say_where),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
