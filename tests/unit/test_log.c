/*  Unit tests: log (logfmt with escaping, JSON, levels). Each line is read
    back with a small logfmt parser written from the format's rules
    (go-logfmt's reading of key=value, "quoted" with backslash escapes), so
    a value that could forge a field shows up as an extra key. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

#define TS "2026-11-23T18:44:31.123Z"

static char s_line[LOG_MAX_LINE + 1];

static const char *s_render(log_format_t format, log_level_t level,
                            const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static const char *s_render(log_format_t format, log_level_t level,
                            const char *event, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    size_t n =
        log_render(s_line, LOG_MAX_LINE, format, TS, level, event, fmt, args);
    va_end(args);
    assert_int_equal(n, strlen(s_line));
    assert_true(n < LOG_MAX_LINE);
    return s_line;
}

// --- a logfmt reader
// -----------------------------------------------------------

typedef struct {
    char key[64];
    char value[LOG_MAX_LINE];
} pair_t;

//  Parse a logfmt line into pairs; returns the count, -1 on a syntax error.
static int s_parse(const char *line, pair_t *pairs, int max)
{
    int n = 0;
    const char *p = line;
    while (*p) {
        if (*p == ' ') {
            p++;
            continue;
        }
        if (n == max) {
            return -1;
        }
        size_t k = 0;
        while (*p && *p != '=' && *p != ' ' && *p != '"') {
            if (k + 1 < sizeof pairs[n].key) {
                pairs[n].key[k++] = *p;
            }
            p++;
        }
        pairs[n].key[k] = 0;
        if (*p != '=' || k == 0) {
            return -1;
        }
        p++;
        size_t v = 0;
        char *out = pairs[n].value;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    p++;
                    switch (*p) {
                        case 'n':
                            out[v++] = '\n';
                            break;
                        case 't':
                            out[v++] = '\t';
                            break;
                        case 'r':
                            out[v++] = '\r';
                            break;
                        case 'u': {
                            unsigned cp;
                            if (sscanf(p + 1, "%4x", &cp) != 1) {
                                return -1;
                            }
                            out[v++] = cp < 0x80 ? (char)cp : '?';
                            p += 4;
                            break;
                        }
                        case '"':
                        case '\\':
                            out[v++] = *p;
                            break;
                        default:
                            return -1;
                    }
                    p++;
                } else {
                    out[v++] = *p++;
                }
            }
            if (*p != '"') {
                return -1;
            }
            p++;
            if (*p && *p != ' ') {
                return -1;
            }
        } else {
            while (*p && *p != ' ') {
                if (*p == '"' || *p == '=') {
                    return -1; // a bare value may not hold these
                }
                out[v++] = *p++;
            }
        }
        out[v] = 0;
        n++;
    }
    return n;
}

static const char *s_get(pair_t *pairs, int n, const char *key)
{
    const char *found = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(pairs[i].key, key) == 0) {
            assert_null(found); // a key twice: a forged field
            found = pairs[i].value;
        }
    }
    return found;
}

// --- tests
// -----------------------------------------------------------------------

static void test_logfmt_fields(void **state)
{
    (void)state;
    const char *line =
        s_render(LOG_LOGFMT, LOGL_INFO, "peer_up",
                 "node_id=%s name=%s silent_ms=%llu", "44df", "node-a", 42ull);
    assert_string_equal(line, "ts=" TS " level=info event=peer_up "
                              "node_id=44df name=node-a silent_ms=42");
    pair_t p[16];
    int n = s_parse(line, p, 16);
    assert_int_equal(n, 6);
    assert_string_equal(s_get(p, n, "ts"), TS);
    assert_string_equal(s_get(p, n, "level"), "info");
    assert_string_equal(s_get(p, n, "event"), "peer_up");
    assert_string_equal(s_get(p, n, "silent_ms"), "42");
}

static void test_hostile_node_name_cannot_forge_a_field(void **state)
{
    (void)state;
    const char *names[] = {
        "my node state=dead",
        "x\" state=\"dead",
        "a\\\" state=dead \\",
        "line\nts=1999 level=error event=forged",
        "",
        "=",
        "tab\there\x01\x7f",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *line =
            s_render(LOG_LOGFMT, LOGL_WARN, "peer_down",
                     "node_id=%s name=%s state=%s", "44df", names[i], "down");
        assert_null(strchr(line, '\n'));
        pair_t p[16];
        int n = s_parse(line, p, 16);
        assert_int_equal(n, 6);
        assert_string_equal(s_get(p, n, "state"), "down");
        assert_string_equal(s_get(p, n, "level"), "warn");
        assert_string_equal(s_get(p, n, "ts"), TS);
        if (i < 3 || i == 4 || i == 5) {
            assert_string_equal(s_get(p, n, "name"), names[i]);
        }
    }
    const char *line =
        s_render(LOG_LOGFMT, LOGL_INFO, "member", "name=%s state=%s",
                 "my node state=dead", "alive");
    assert_non_null(strstr(line, " name=\"my node state=dead\" state=alive"));
}

static void test_quoted_format_values_and_literals(void **state)
{
    (void)state;
    // callers wrote error=\"%s\" before values were escaped: same result
    const char *line =
        s_render(LOG_LOGFMT, LOGL_ERROR, "startup_failed",
                 "error=\"%s\" seed=%s%s:%s reason=\"no seed: waiting\"",
                 "say \"hi\"", "dns:", "roomcast-seeds", "7441");
    pair_t p[16];
    int n = s_parse(line, p, 16);
    assert_int_equal(n, 6);
    assert_string_equal(s_get(p, n, "error"), "say \"hi\"");
    assert_string_equal(s_get(p, n, "seed"), "dns:roomcast-seeds:7441");
    assert_string_equal(s_get(p, n, "reason"), "no seed: waiting");
    assert_non_null(strstr(line, "error=\"say \\\"hi\\\"\""));
}

static void test_every_conversion_keeps_arguments_in_step(void **state)
{
    (void)state;
    const char *line = s_render(
        LOG_LOGFMT, LOGL_DEBUG, "types",
        "a=%d b=%u c=%ld d=%llu e=%zu f=%x g=%.2f h=%c i=%.*s j=%5d k=%% l=%s",
        -1, 2u, -3l, 4ull, (size_t)5, 255u, 1.5, 'z', 3, "abcdef", 7, "end");
    pair_t p[20];
    int n = s_parse(line, p, 20);
    assert_int_equal(n, 15);
    assert_string_equal(s_get(p, n, "a"), "-1");
    assert_string_equal(s_get(p, n, "d"), "4");
    assert_string_equal(s_get(p, n, "e"), "5");
    assert_string_equal(s_get(p, n, "f"), "ff");
    assert_string_equal(s_get(p, n, "g"), "1.50");
    assert_string_equal(s_get(p, n, "h"), "z");
    assert_string_equal(s_get(p, n, "i"), "abc");
    assert_string_equal(s_get(p, n, "j"), "    7");
    assert_string_equal(s_get(p, n, "k"), "%");
    assert_string_equal(s_get(p, n, "l"), "end");
}

static void test_json(void **state)
{
    (void)state;
    const char *line =
        s_render(LOG_JSON, LOGL_WARN, "peer_down",
                 "name=%s silent_ms=%llu error=\"%s\" bin=%s",
                 "my node state=dead", 1500ull, "a\"b\\c\nd", "\xff\x01");
    assert_string_equal(line, "{\"ts\":\"" TS "\",\"level\":\"warn\","
                              "\"event\":\"peer_down\",\"name\":\"my node "
                              "state=dead\",\"silent_ms\":1500,"
                              "\"error\":\"a\\\"b\\\\c\\nd\","
                              "\"bin\":\"\\ufffd\\u0001\"}");
    // a number only when the value is one integer conversion alone
    line = s_render(LOG_JSON, LOGL_INFO, "x", "port=%d addr=%s:%d", 7, "h", 8);
    assert_non_null(strstr(line, "\"port\":7,\"addr\":\"h:8\"}"));
    // padded or zero-filled integers are not JSON numbers: strings
    line = s_render(LOG_JSON, LOGL_INFO, "x", "a=%5d b=%03u c=%d", 7, 8u, -9);
    assert_non_null(strstr(line, "\"a\":\"    7\",\"b\":\"008\",\"c\":-9}"));
}

static void test_utf8_kept_invalid_replaced(void **state)
{
    (void)state;
    const char *line = s_render(LOG_LOGFMT, LOGL_INFO, "x", "name=%s bad=%s",
                                "n\xc3\xa9ud", "\xc3(");
    assert_non_null(strstr(line, " name=n\xc3\xa9ud "));
    assert_non_null(strstr(line, " bad=\"\\ufffd(\""));
}

static void test_long_values_and_lines_are_cut(void **state)
{
    (void)state;
    static char big[3 * LOG_MAX_VALUE];
    memset(big, 'a', sizeof big - 1);
    const char *line =
        s_render(LOG_LOGFMT, LOGL_INFO, "big", "v=%s w=%s", big, "after");
    pair_t p[8];
    int n = s_parse(line, p, 8);
    assert_int_equal(n, 5);
    assert_int_equal(strlen(s_get(p, n, "v")), LOG_MAX_VALUE);
    assert_string_equal(s_get(p, n, "w"), "after");
    // control bytes escape to 6 characters: 20 fields cannot all fit
    static char ctl[LOG_MAX_VALUE];
    memset(ctl, 1, sizeof ctl - 1);
    line = s_render(LOG_JSON, LOGL_INFO, "big",
                    "a=%s b=%s c=%s d=%s e=%s f=%s g=%s h=%s n=%d", ctl, ctl,
                    ctl, ctl, ctl, ctl, ctl, ctl, 5);
    assert_non_null(strstr(line, "\"truncated\":"));
    assert_int_equal(line[strlen(line) - 1], '}');
    line = s_render(LOG_LOGFMT, LOGL_INFO, "big",
                    "a=%s b=%s c=%s d=%s e=%s f=%s g=%s h=%s n=%d", ctl, ctl,
                    ctl, ctl, ctl, ctl, ctl, ctl, 5);
    assert_non_null(strstr(line, " truncated="));
    assert_true(s_parse(line, p, 8) > 0);
}

static void test_levels_formats_and_output(void **state)
{
    (void)state;
    assert_int_equal(log_set_level("warn"), 0);
    assert_int_equal(log_level(), LOGL_WARN);
    assert_int_equal(log_set_level("loud"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(log_set_format("yaml"), -1);
    assert_int_equal(errno, EINVAL);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    log_set_output(out);
    assert_int_equal(log_set_format("json"), 0);
    log_info("hidden", "k=%d", 1);
    log_warn("shown", "name=%s", "a b");
    assert_int_equal(log_set_format("logfmt"), 0);
    log_error("also", "n=%d", 2);
    log_set_output(NULL);
    fclose(out);
    assert_null(strstr(buf, "hidden"));
    char *second = strchr(buf, '\n');
    assert_non_null(second);
    assert_int_equal(buf[0], '{');
    assert_non_null(strstr(buf, "\"event\":\"shown\",\"name\":\"a b\"}\n"));
    assert_non_null(strstr(second + 1, " level=error event=also n=2\n"));
    assert_int_equal(strncmp(second + 1, "ts=", 3), 0);
    free(buf);
    assert_int_equal(log_set_level("info"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logfmt_fields),
        cmocka_unit_test(test_hostile_node_name_cannot_forge_a_field),
        cmocka_unit_test(test_quoted_format_values_and_literals),
        cmocka_unit_test(test_every_conversion_keeps_arguments_in_step),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_utf8_kept_invalid_replaced),
        cmocka_unit_test(test_long_values_and_lines_are_cut),
        cmocka_unit_test(test_levels_formats_and_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
