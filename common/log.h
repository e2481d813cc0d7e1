/*  log: one line per event on stderr, in logfmt (the default) or JSON.

      ts=2026-11-23T18:44:31.123Z level=info event=listening socket=/x.sock
      {"ts":"2026-11-23T18:44:31.123Z","level":"info","event":"listening",
       "socket":"/x.sock"}

    Callers write the fields as a printf format of space-separated
    key=VALUE pairs, VALUE being one or more conversions and literal text
    ("node_id=%s name=%s silent_ms=%llu"); a VALUE may be written in double
    quotes (error=\"%s\"), which changes nothing. Each VALUE is formatted,
    then written as one value: in logfmt quoted and escaped when it is
    empty or holds a space, '=', '"', '\\' or a control byte, in JSON as a
    string (a number when VALUE is a lone integer conversion). So a value
    such as a node named "my node state=dead" stays one field and cannot
    forge another. Bytes that are not UTF-8 are written as U+FFFD. A value
    is cut at LOG_MAX_VALUE bytes and a line at LOG_MAX_LINE bytes (the
    fields left out are counted in truncated=N).

    Never called per message on the hot path. THREAD SAFETY: the daemon has
    one thread; the level and format are set once at start.
*/
#ifndef RCD_LOG_H
#define RCD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#define LOG_MAX_VALUE 512
#define LOG_MAX_LINE  4096

typedef enum {
    LOGL_ERROR = 0,
    LOGL_WARN = 1,
    LOGL_INFO = 2,
    LOGL_DEBUG = 3
} log_level_t;

typedef enum { LOG_LOGFMT = 0, LOG_JSON = 1 } log_format_t;

//  Set the level from its name ("error", "warn", "info", "debug").
//  Returns 0, or -1 with EINVAL for an unknown name.
int log_set_level(const char *name);
log_level_t log_level(void);

//  Set the line format from its name ("logfmt", "json"). Returns 0, or -1
//  with EINVAL for an unknown name.
int log_set_format(const char *name);

//  Where lines go (default stderr; NULL restores it). For tests.
void log_set_output(FILE *out);

//  Log one event: fmt holds the key=value fields after the event name.
void log_event(log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

//  Render one line (no newline) into out, as log_event writes it, with
//  the given timestamp text. Returns the line's length (< size). For tests.
size_t log_render(char *out, size_t size, log_format_t format, const char *ts,
                  log_level_t level, const char *event, const char *fmt,
                  va_list args) __attribute__((format(printf, 7, 0)));

#define log_error(ev, ...) log_event(LOGL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...)  log_event(LOGL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...)  log_event(LOGL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_event(LOGL_DEBUG, ev, __VA_ARGS__)

#endif
