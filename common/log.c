/*  log: see log.h. The caller's format is split into key=VALUE fields;
    each conversion is read from the va_list by its own type (the format
    attribute has the compiler check those types at every call), each VALUE
    is formatted on its own and only then escaped, so what a value holds
    can never open a field of its own. */
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

static log_level_t s_level = LOGL_INFO;
static log_format_t s_format = LOG_LOGFMT;
static FILE *s_out;
static const char *s_names[] = {"error", "warn", "info", "debug"};

int log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, s_names[i]) == 0) {
            s_level = (log_level_t)i;
            return 0;
        }
    }
    errno = EINVAL;
    return -1;
}

log_level_t log_level(void)
{
    return s_level;
}

int log_set_format(const char *name)
{
    if (strcmp(name, "logfmt") == 0) {
        s_format = LOG_LOGFMT;
    } else if (strcmp(name, "json") == 0) {
        s_format = LOG_JSON;
    } else {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

void log_set_output(FILE *out)
{
    s_out = out;
}

// --- bounded text ----------------------------------------------------------

typedef struct {
    char *buf;
    size_t size; // buf holds size - 1 characters and a NUL
    size_t len;
    bool full; // something did not fit
} text_t;

static void s_put(text_t *t, const char *s, size_t n)
{
    if (t->len + n >= t->size) {
        n = t->size - 1 - t->len;
        t->full = true;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = 0;
}

static void s_puts(text_t *t, const char *s)
{
    s_put(t, s, strlen(s));
}

//  Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none.
static size_t s_utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80) {
        return 1;
    }
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    // overlong 3- and 4-byte forms, surrogates, beyond U+10FFFF
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f)) {
        return 0;
    }
    return len;
}

//  Whether logfmt must quote the value: empty, or a byte a bare value
//  cannot hold (space, =, ", \, control, not UTF-8).
static bool s_needs_quotes(const char *v, size_t n)
{
    if (n == 0) {
        return true;
    }
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) {
            return true;
        }
        size_t len = s_utf8_len((const unsigned char *)v + i, n - i);
        if (len == 0) {
            return true;
        }
        i += len;
    }
    return false;
}

//  v as a quoted string, escaped the same way for logfmt and JSON.
static void s_quoted(text_t *t, const char *v, size_t n)
{
    s_put(t, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)v[i];
        size_t len = s_utf8_len((const unsigned char *)v + i, n - i);
        char esc[8];
        if (len == 0) {
            s_puts(t, "\\ufffd");
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            s_put(t, esc, 2);
        } else if (c == '\n') {
            s_puts(t, "\\n");
        } else if (c == '\r') {
            s_puts(t, "\\r");
        } else if (c == '\t') {
            s_puts(t, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            s_puts(t, esc);
        } else {
            s_put(t, v + i, len);
        }
        i += len;
    }
    s_put(t, "\"", 1);
}

// --- one conversion ---------------------------------------------------------

//  The format arrives as data here, by design: every conversion was
//  checked by the compiler at the caller, and is re-read one at a time.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

//  Format the conversion at *pp ('%' first) into t, taking its arguments
//  from ap, and move *pp past it. Sets *integer for d, i and u.
static void s_conversion(const char **pp, va_list *ap, text_t *t, bool *integer)
{
    const char *p = *pp + 1;
    char spec[48] = "%";
    size_t n = 1;
#define SPEC_ADD(c)                                                            \
    do {                                                                       \
        if (n + 1 < sizeof spec) {                                             \
            spec[n++] = (c);                                                   \
            spec[n] = 0;                                                       \
        }                                                                      \
    } while (0)
    while (*p && strchr("-+ #0", *p)) {
        SPEC_ADD(*p++);
    }
    if (*p == '*') {
        snprintf(spec + n, sizeof spec - n, "%d", va_arg(*ap, int));
        n = strlen(spec);
        p++;
    }
    while (*p >= '0' && *p <= '9') {
        SPEC_ADD(*p++);
    }
    if (*p == '.') {
        SPEC_ADD(*p++);
        if (*p == '*') {
            snprintf(spec + n, sizeof spec - n, "%d", va_arg(*ap, int));
            n = strlen(spec);
            p++;
        }
        while (*p >= '0' && *p <= '9') {
            SPEC_ADD(*p++);
        }
    }
    char length[3] = "";
    while (*p && strchr("hlzjtL", *p) && strlen(length) < 2) {
        length[strlen(length)] = *p;
        SPEC_ADD(*p++);
    }
    char conv = *p ? *p++ : '%';
    SPEC_ADD(conv);
#undef SPEC_ADD
    *pp = p;
    char out[LOG_MAX_VALUE + 1];
    out[0] = 0;
    bool l = !strcmp(length, "l"), ll = !strcmp(length, "ll");
    bool z = !strcmp(length, "z"), j = !strcmp(length, "j");
    bool pt = !strcmp(length, "t");
    switch (conv) {
        case 'd':
        case 'i':
            *integer = true;
            if (ll) {
                snprintf(out, sizeof out, spec, va_arg(*ap, long long));
            } else if (l) {
                snprintf(out, sizeof out, spec, va_arg(*ap, long));
            } else if (z) {
                snprintf(out, sizeof out, spec, va_arg(*ap, ssize_t));
            } else if (j) {
                snprintf(out, sizeof out, spec, va_arg(*ap, intmax_t));
            } else if (pt) {
                snprintf(out, sizeof out, spec, va_arg(*ap, ptrdiff_t));
            } else {
                snprintf(out, sizeof out, spec, va_arg(*ap, int));
            }
            break;
        case 'u':
        case 'x':
        case 'X':
        case 'o':
            *integer = conv == 'u';
            if (ll) {
                snprintf(out, sizeof out, spec,
                         va_arg(*ap, unsigned long long));
            } else if (l) {
                snprintf(out, sizeof out, spec, va_arg(*ap, unsigned long));
            } else if (z) {
                snprintf(out, sizeof out, spec, va_arg(*ap, size_t));
            } else if (j) {
                snprintf(out, sizeof out, spec, va_arg(*ap, uintmax_t));
            } else if (pt) {
                snprintf(out, sizeof out, spec, va_arg(*ap, ptrdiff_t));
            } else {
                snprintf(out, sizeof out, spec, va_arg(*ap, unsigned));
            }
            break;
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
        case 'a':
        case 'A':
            if (!strcmp(length, "L")) {
                snprintf(out, sizeof out, spec, va_arg(*ap, long double));
            } else {
                snprintf(out, sizeof out, spec, va_arg(*ap, double));
            }
            break;
        case 'c':
            snprintf(out, sizeof out, spec, va_arg(*ap, int));
            break;
        case 's': {
            const char *s = va_arg(*ap, const char *);
            snprintf(out, sizeof out, spec, s ? s : "(null)");
            break;
        }
        case 'p':
            snprintf(out, sizeof out, spec, va_arg(*ap, void *));
            break;
        case 'n': // writes nothing here; its argument is skipped
            (void)va_arg(*ap, void *);
            break;
        default: // "%%", or a conversion we do not know: written as is
            snprintf(out, sizeof out, "%s", conv == '%' ? "%" : spec);
    }
    s_puts(t, out);
}

#pragma GCC diagnostic pop

// --- the line ----------------------------------------------------------------

//  Whether s is a JSON integer (no padding, no leading zero).
static bool s_json_integer(const char *s)
{
    s += *s == '-';
    if (*s < '0' || *s > '9' || (*s == '0' && s[1])) {
        return false;
    }
    while (*s >= '0' && *s <= '9') {
        s++;
    }
    return *s == 0;
}

//  One field: key, then its value formatted from vfmt (vlen bytes).
static void s_field(text_t *line, log_format_t format, const char *key,
                    size_t klen, const char *vfmt, size_t vlen, va_list *ap,
                    size_t *dropped)
{
    char vbuf[LOG_MAX_VALUE + 1];
    text_t value = {vbuf, sizeof vbuf, 0, false};
    vbuf[0] = 0;
    int conversions = 0;
    bool integer = false, literal = false;
    for (const char *p = vfmt; p < vfmt + vlen;) {
        if (*p == '%') {
            s_conversion(&p, ap, &value, &integer);
            conversions++;
        } else {
            s_put(&value, p++, 1);
            literal = true;
        }
    }
    // the field on its own first: it goes in whole or not at all
    char fbuf[LOG_MAX_LINE];
    text_t f = {fbuf, sizeof fbuf, 0, false};
    fbuf[0] = 0;
    if (format == LOG_JSON) {
        s_put(&f, ",", 1);
        s_quoted(&f, key, klen);
        s_put(&f, ":", 1);
        bool number = conversions == 1 && integer && !literal && !value.full &&
                      s_json_integer(value.buf);
        if (number) {
            s_put(&f, value.buf, value.len);
        } else {
            s_quoted(&f, value.buf, value.len);
        }
    } else {
        s_put(&f, " ", 1);
        s_put(&f, key, klen);
        s_put(&f, "=", 1);
        if (s_needs_quotes(value.buf, value.len)) {
            s_quoted(&f, value.buf, value.len);
        } else {
            s_put(&f, value.buf, value.len);
        }
    }
    // room is kept for ' truncated=NNNN' or ',"truncated":NNNN}'
    if (f.full || line->len + f.len + 24 >= line->size) {
        (*dropped)++;
        return;
    }
    s_put(line, f.buf, f.len);
}

//  Whether a key is a name (letters, digits, _ . -): anything else in the
//  format is not a key=VALUE pair and is logged as a "msg" field.
static bool s_is_key(const char *k, size_t n)
{
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

size_t log_render(char *out, size_t size, log_format_t format, const char *ts,
                  log_level_t level, const char *event, const char *fmt,
                  va_list args)
{
    text_t line = {out, size, 0, false};
    out[0] = 0;
    const char *lv = s_names[level <= LOGL_DEBUG ? level : LOGL_DEBUG];
    if (format == LOG_JSON) {
        s_puts(&line, "{\"ts\":");
        s_quoted(&line, ts, strlen(ts));
        s_puts(&line, ",\"level\":");
        s_quoted(&line, lv, strlen(lv));
        s_puts(&line, ",\"event\":");
        s_quoted(&line, event, strlen(event));
    } else {
        s_puts(&line, "ts=");
        s_puts(&line, ts);
        s_puts(&line, " level=");
        s_puts(&line, lv);
        s_puts(&line, " event=");
        if (s_needs_quotes(event, strlen(event))) {
            s_quoted(&line, event, strlen(event));
        } else {
            s_puts(&line, event);
        }
    }
    va_list ap;
    va_copy(ap, args);
    size_t dropped = 0;
    for (const char *p = fmt; *p;) {
        while (*p == ' ') {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *key = p;
        while (*p && *p != '=' && *p != ' ') {
            p++;
        }
        size_t klen = (size_t)(p - key);
        const char *vfmt = key;
        if (*p == '=' && s_is_key(key, klen)) {
            vfmt = ++p;
        } else {
            klen = 0;
            p = key;
        }
        const char *vend;
        if (*p == '"') {
            vfmt = ++p;
            while (*p && *p != '"') {
                p++;
            }
            vend = p;
            if (*p) {
                p++;
            }
        } else {
            while (*p && *p != ' ') {
                p++;
            }
            vend = p;
        }
        s_field(&line, format, klen ? key : "msg", klen ? klen : 3, vfmt,
                (size_t)(vend - vfmt), &ap, &dropped);
    }
    va_end(ap);
    if (dropped) {
        char more[40];
        snprintf(more, sizeof more,
                 format == LOG_JSON ? ",\"truncated\":%zu" : " truncated=%zu",
                 dropped);
        s_puts(&line, more);
    }
    if (format == LOG_JSON) {
        s_puts(&line, "}");
    }
    return line.len;
}

void log_event(log_level_t level, const char *event, const char *fmt, ...)
{
    if (level > s_level) {
        return;
    }
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    char line[LOG_MAX_LINE + 1];
    va_list args;
    va_start(args, fmt);
    n = log_render(line, LOG_MAX_LINE, s_format, ts, level, event, fmt, args);
    va_end(args);
    line[n++] = '\n';
    fwrite(line, 1, n, s_out ? s_out : stderr);
}
