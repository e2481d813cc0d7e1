/*  loop: the daemon's one event loop (epoll), with timers and an idle hook.

    File descriptors get a handler each; timers fire once or repeat; the
    idle hook runs after every batch of events and says whether it has more
    work (then the loop polls without sleeping), which is how long jobs
    (a fanout to a huge room, flushing queues) run in slices between I/O.

    THREAD SAFETY: a loop and everything registered on it belong to the
    thread that runs loop_run.
*/
#ifndef RCD_LOOP_H
#define RCD_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

typedef struct loop_t loop_t;

typedef void(loop_fd_fn)(loop_t *loop, int fd, uint32_t events, void *arg);
typedef void(loop_timer_fn)(loop_t *loop, int timer_id, void *arg);
//  Returns true when it has more work to do right away.
typedef bool(loop_idle_fn)(loop_t *loop, void *arg);

//  Create a loop. Returns NULL with errno on failure.
loop_t *loop_new(void);
void loop_destroy(loop_t **self_p);

//  Watch fd for events (EPOLLIN, EPOLLOUT); fn runs with the events seen.
//  Returns 0, or -1 with errno.
int loop_add_fd(loop_t *self, int fd, uint32_t events, loop_fd_fn *fn,
                void *arg) __attribute__((warn_unused_result));
int loop_mod_fd(loop_t *self, int fd, uint32_t events);
//  Stop watching fd (the caller closes it).
void loop_del_fd(loop_t *self, int fd);

//  Call fn after delay_ms, then every delay_ms when repeat. A repeating
//  timer may run up to a quarter of its period late, on a wake-up that
//  something else caused: an idle daemon's housekeeping then costs it few
//  wake-ups of its own. A one-shot timer runs on time. Returns a timer
//  id > 0, or -1 with ENOMEM.
int loop_add_timer(loop_t *self, uint64_t delay_ms, bool repeat,
                   loop_timer_fn *fn, void *arg);
//  Cancel a timer; unknown or already fired ids are ignored.
void loop_cancel_timer(loop_t *self, int timer_id);

//  Add a hook run after each batch of events, in the order added (at most
//  LOOP_MAX_IDLE). Returns 0, or -1 with ENOSPC.
#define LOOP_MAX_IDLE 4
int loop_add_idle(loop_t *self, loop_idle_fn *fn, void *arg);

//  Run until loop_stop. Returns 0, or -1 with errno if epoll fails.
int loop_run(loop_t *self);
void loop_stop(loop_t *self);

//  Monotonic milliseconds, read at the start of the current batch.
uint64_t loop_now(const loop_t *self);
//  Monotonic milliseconds, read now.
uint64_t loop_clock_ms(void);

#endif
