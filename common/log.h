/*  log: one line per event on stderr, with a level and key=value fields.

      2026-11-23T18:44:31.123Z info listening socket=/run/roomcast/x.sock

    Never called per message on the hot path. THREAD SAFETY: the daemon has
    one thread; the level is set once at start.
*/
#ifndef RCD_LOG_H
#define RCD_LOG_H

typedef enum {
    LOGL_ERROR = 0,
    LOGL_WARN = 1,
    LOGL_INFO = 2,
    LOGL_DEBUG = 3
} log_level_t;

//  Set the level from its name ("error", "warn", "info", "debug").
//  Returns 0, or -1 with EINVAL for an unknown name.
int log_set_level(const char *name);
log_level_t log_level(void);

//  Log one event: fmt holds the key=value fields after the event name.
void log_event(log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(ev, ...) log_event(LOGL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...)  log_event(LOGL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...)  log_event(LOGL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_event(LOGL_DEBUG, ev, __VA_ARGS__)

#endif
