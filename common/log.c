/*  log: see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static log_level_t s_level = LOGL_INFO;
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

void log_event(log_level_t level, const char *event, const char *fmt, ...)
{
    if (level > s_level) {
        return;
    }
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s %s ",
                  ts.tv_nsec / 1000000, s_names[level], event);
    va_list args;
    va_start(args, fmt);
    if (n < (int)sizeof line) {
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, args);
    }
    va_end(args);
    fprintf(stderr, "%s\n", line);
}
