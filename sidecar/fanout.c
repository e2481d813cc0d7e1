/*  fanout: see fanout.h. */
#include "fanout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job_t {
    outbuf_t *buf;
    void **members; // held members still to serve
    size_t count;
    size_t next;
    struct job_t *link;
} job_t;

struct fanout_t {
    registry_t *registry;
    fanout_io_t io;
    size_t slice;
    stats_t *stats;
    job_t *head, *tail;
};

fanout_t *fanout_new(registry_t *registry, const fanout_io_t *io, size_t slice,
                     stats_t *stats)
{
    fanout_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->registry = registry;
    self->io = *io;
    self->slice = slice ? slice : 1024;
    self->stats = stats;
    return self;
}

static void s_job_free(fanout_t *self, job_t *job)
{
    for (size_t i = job->next; i < job->count; i++) {
        self->io.release(self->io.arg, job->members[i]);
    }
    outbuf_unref(&job->buf);
    free(job->members);
    free(job);
}

void fanout_destroy(fanout_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    fanout_t *self = *self_p;
    while (self->head) {
        job_t *next = self->head->link;
        s_job_free(self, self->head);
        self->head = next;
    }
    free(self);
    *self_p = NULL;
}

static uint64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static outbuf_t *s_encode(const msg_t *msg, uint64_t flags)
{
    wire_frame_t f = {.type = WIRE_MSG,
                      .ns = msg->ns,
                      .topic = msg->topic,
                      .flags = flags,
                      .id = {(const char *)msg->instance, WIRE_ID_SIZE},
                      .seq = msg->seq,
                      .payload = msg->payload,
                      .node = {(const char *)msg->node, WIRE_ID_SIZE}};
    return outbuf_encode(&f);
}

bool fanout_pending(const fanout_t *self)
{
    return self->head != NULL;
}

int fanout_deliver(fanout_t *self, const msg_t *msg, void *origin)
{
    registry_topic_t *topic =
        registry_lookup(self->registry, msg->ns.ptr, msg->ns.len,
                        msg->topic.ptr, msg->topic.len);
    if (!topic) {
        return 0;
    }
    uint64_t start = s_now_us();
    bool echo = (msg->flags & WIRE_F_ECHO) && origin;
    outbuf_t *buf = s_encode(msg, msg->flags & WIRE_F_BINARY);
    if (!buf) {
        return -1;
    }
    size_t reached = 0;
    if (!self->head && topic->count <= self->slice) {
        //  the common case: whole room now, no copy of the member list.
        //  Walked from the end because a delivery may close its member
        //  (the server's write failed) and take it out of the topic: the
        //  registry then moves the last member, already served, into its
        //  place, and frees the topic with its last member, which only
        //  happens at i == 0, after which the topic is not read again.
        for (size_t i = topic->count; i-- > 0;) {
            void *member = registry_member(topic, i);
            if (member != origin) {
                self->io.deliver(self->io.arg, member, buf);
                reached++;
            }
        }
    } else {
        job_t *job = calloc(1, sizeof *job);
        void **members = malloc(topic->count * sizeof *members);
        if (!job || !members) {
            free(job);
            free(members);
            outbuf_unref(&buf);
            errno = ENOMEM;
            return -1;
        }
        for (size_t i = 0; i < topic->count; i++) {
            void *member = registry_member(topic, i);
            if (member != origin) {
                self->io.hold(self->io.arg, member);
                members[job->count++] = member;
            }
        }
        job->buf = outbuf_ref(buf);
        job->members = members;
        reached = job->count;
        if (self->tail) {
            self->tail->link = job;
        } else {
            self->head = job;
        }
        self->tail = job;
    }
    if (echo) {
        outbuf_t *own =
            s_encode(msg, msg->flags & (WIRE_F_BINARY | WIRE_F_ECHO));
        if (own) {
            self->io.deliver(self->io.arg, origin, own);
            outbuf_unref(&own);
            reached++;
        }
    }
    outbuf_unref(&buf);
    stats_fanout_observe(self->stats, s_now_us() - start);
    return (int)reached;
}

bool fanout_run(fanout_t *self)
{
    size_t budget = self->slice;
    while (self->head && budget) {
        job_t *job = self->head;
        while (job->next < job->count && budget) {
            void *member = job->members[job->next++];
            self->io.deliver(self->io.arg, member, job->buf);
            self->io.release(self->io.arg, member);
            budget--;
        }
        if (job->next == job->count) {
            self->head = job->link;
            if (!self->head) {
                self->tail = NULL;
            }
            s_job_free(self, job);
        }
    }
    return self->head != NULL;
}
