/*  loop: see loop.h. Handlers are indexed by descriptor number, which the
    kernel keeps small and dense; timers are few (housekeeping), so a plain
    array scanned for the earliest deadline is enough. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

typedef struct {
    loop_fd_fn *fn;
    void *arg;
} handler_t;

typedef struct {
    int id; // 0: free slot
    uint64_t due;
    uint64_t period; // 0: once
    uint64_t slack;  // may run this much after due (repeating: period / 4)
    loop_timer_fn *fn;
    void *arg;
} timer_t_;

struct loop_t {
    int epfd;
    handler_t *handlers; // by fd
    size_t nhandlers;
    timer_t_ *timers;
    size_t ntimers;
    int next_timer_id;
    loop_idle_fn *idle[LOOP_MAX_IDLE];
    void *idle_arg[LOOP_MAX_IDLE];
    int nidle;
    bool stop;
    uint64_t now;
};

uint64_t loop_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

loop_t *loop_new(void)
{
    loop_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        free(self);
        return NULL;
    }
    self->now = loop_clock_ms();
    return self;
}

void loop_destroy(loop_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    loop_t *self = *self_p;
    close(self->epfd);
    free(self->handlers);
    free(self->timers);
    free(self);
    *self_p = NULL;
}

int loop_add_fd(loop_t *self, int fd, uint32_t events, loop_fd_fn *fn,
                void *arg)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= self->nhandlers) {
        size_t n = self->nhandlers ? self->nhandlers : 64;
        while (n <= (size_t)fd) {
            n *= 2;
        }
        handler_t *h = realloc(self->handlers, n * sizeof *h);
        if (!h) {
            errno = ENOMEM;
            return -1;
        }
        memset(h + self->nhandlers, 0, (n - self->nhandlers) * sizeof *h);
        self->handlers = h;
        self->nhandlers = n;
    }
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        return -1;
    }
    self->handlers[fd] = (handler_t){fn, arg};
    return 0;
}

int loop_mod_fd(loop_t *self, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(self->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void loop_del_fd(loop_t *self, int fd)
{
    if (fd >= 0 && (size_t)fd < self->nhandlers) {
        epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL);
        self->handlers[fd] = (handler_t){NULL, NULL};
    }
}

int loop_add_timer(loop_t *self, uint64_t delay_ms, bool repeat,
                   loop_timer_fn *fn, void *arg)
{
    size_t slot = 0;
    while (slot < self->ntimers && self->timers[slot].id) {
        slot++;
    }
    if (slot == self->ntimers) {
        size_t n = self->ntimers ? 2 * self->ntimers : 8;
        timer_t_ *t = realloc(self->timers, n * sizeof *t);
        if (!t) {
            errno = ENOMEM;
            return -1;
        }
        memset(t + self->ntimers, 0, (n - self->ntimers) * sizeof *t);
        self->timers = t;
        self->ntimers = n;
    }
    if (++self->next_timer_id <= 0) {
        self->next_timer_id = 1;
    }
    uint64_t period = repeat ? (delay_ms ? delay_ms : 1) : 0;
    self->timers[slot] = (timer_t_){self->next_timer_id,
                                    loop_clock_ms() + delay_ms,
                                    period,
                                    period / 4,
                                    fn,
                                    arg};
    return self->next_timer_id;
}

void loop_cancel_timer(loop_t *self, int timer_id)
{
    for (size_t i = 0; i < self->ntimers; i++) {
        if (timer_id > 0 && self->timers[i].id == timer_id) {
            self->timers[i].id = 0;
        }
    }
}

int loop_add_idle(loop_t *self, loop_idle_fn *fn, void *arg)
{
    if (self->nidle == LOOP_MAX_IDLE) {
        errno = ENOSPC;
        return -1;
    }
    self->idle[self->nidle] = fn;
    self->idle_arg[self->nidle++] = arg;
    return 0;
}

void loop_stop(loop_t *self)
{
    self->stop = true;
}

uint64_t loop_now(const loop_t *self)
{
    return self->now;
}

//  Until the latest time a timer may run (its due time plus its slack):
//  a repeating timer then mostly runs on a wake-up that something else
//  caused (s_run_timers runs every timer that is due), not on one of its
//  own.
static int s_next_timeout(loop_t *self)
{
    int64_t best = -1;
    for (size_t i = 0; i < self->ntimers; i++) {
        if (self->timers[i].id) {
            int64_t left =
                (int64_t)(self->timers[i].due + self->timers[i].slack) -
                (int64_t)self->now;
            left = left < 0 ? 0 : left;
            best = best < 0 || left < best ? left : best;
        }
    }
    return (int)best;
}

static void s_run_timers(loop_t *self)
{
    for (size_t i = 0; i < self->ntimers; i++) {
        timer_t_ *t = &self->timers[i];
        if (!t->id || t->due > self->now) {
            continue;
        }
        int id = t->id;
        loop_timer_fn *fn = t->fn;
        void *arg = t->arg;
        if (t->period) {
            t->due = self->now + t->period;
        } else {
            t->id = 0;
        }
        fn(self, id, arg); // may add timers: t may move, so not used after
    }
}

int loop_run(loop_t *self)
{
    struct epoll_event events[MAX_EVENTS];
    bool busy = false;
    self->stop = false;
    while (!self->stop) {
        self->now = loop_clock_ms();
        int timeout = busy ? 0 : s_next_timeout(self);
        int n = epoll_wait(self->epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            return -1;
        }
        self->now = loop_clock_ms();
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            //  an earlier handler of this batch may have closed fd
            if ((size_t)fd < self->nhandlers && self->handlers[fd].fn) {
                self->handlers[fd].fn(self, fd, events[i].events,
                                      self->handlers[fd].arg);
            }
        }
        s_run_timers(self);
        busy = false;
        for (int i = 0; i < self->nidle; i++) {
            busy |= self->idle[i](self, self->idle_arg[i]);
        }
    }
    return 0;
}
