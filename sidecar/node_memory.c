/*  node_memory: the coordinator's memory cap policy (--memory-limit). The
    levels and the order they shed in are memcap.h's; this file applies
    them to the server (accepting, budgets, queues) and to what apps ask
    (SUB, PSET, PUB). */
#include "log.h"
#include "memcap.h"
#include "node_impl.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>

#define SAMPLE_MS 100  // resident memory read this often (3 system calls)
#define TRIM_MS   1000 // under pressure, freed heap handed back this often
#define STEP_DIV  64   // and read again when apps sent limit / STEP_DIV

#define WHY_REFUSE                                                             \
    "sidecar over its memory limit (--memory-limit): try later or another "    \
    "host"

//  --memory-limit as bytes: "auto" takes MEMCAP_AUTO_PERCENT of the
//  cgroup's limit (none: no cap), "off" or 0 none. source says which.
static int s_resolve(const char *text, uint64_t *limit, const char **source,
                     char *err, size_t errlen)
{
    *limit = 0;
    *source = "off";
    if (strcmp(text, "off") == 0) {
        return 0;
    }
    if (strcmp(text, "auto") == 0) {
        uint64_t cg = memcap_cgroup_limit("/proc", "/sys/fs/cgroup");
        *limit = cg / 100 * MEMCAP_AUTO_PERCENT;
        *source = cg ? "auto: 90% of the cgroup's memory limit"
                     : "auto: no cgroup memory limit";
        if (*limit && *limit < MEMCAP_MIN_LIMIT) {
            log_warn("memory_limit_off",
                     "cgroup_limit=%llu reason=\"90%% of the cgroup's limit "
                     "is under 8MiB: no cap\"",
                     (unsigned long long)cg);
            *limit = 0;
        }
        return 0;
    }
    if (config_parse_size(text, limit)) {
        snprintf(err, errlen, "--memory-limit: bad value '%s'", text);
        return -1;
    }
    *source = "--memory-limit";
    return 0;
}

//  What each level turns on, from scratch (levels rise and fall).
static void s_apply(node_t *self, memcap_level_t level)
{
    const config_t *cfg = self->cfg;
    server_refuse_new(self->server, level >= MEMCAP_REFUSE ? WHY_REFUSE : NULL);
    size_t cut = cfg->queue_budget / 8;
    server_set_budget(self->server, level < MEMCAP_SHED ? cfg->queue_budget
                                    : cut > cfg->max_payload
                                        ? cut
                                        : cfg->max_payload);
}

//  Read resident memory and act on its level.
static void s_check(node_t *self)
{
    self->mem_bytes_in = self->stats->bytes_in;
    uint64_t resident = memcap_resident("/proc");
    if (!resident) {
        return; // no /proc: nothing to go by
    }
    memcap_level_t was = (memcap_level_t)self->mem_level;
    memcap_level_t level = memcap_level(self->mem_limit, resident, was);
    if (level != was) {
        self->mem_level = (int)level;
        s_apply(self, level);
        log_event(level > was ? LOGL_WARN : LOGL_INFO, "memory_pressure",
                  "level=%s was=%s resident=%llu limit=%llu",
                  memcap_level_name(level), memcap_level_name(was),
                  (unsigned long long)resident,
                  (unsigned long long)self->mem_limit);
    }
    size_t freed = 0;
    if (level >= MEMCAP_SHED) {
        uint64_t want = memcap_shed_target(self->mem_limit, resident);
        freed = server_shed_queues(self->server, (size_t)want);
        if (freed) {
            log_warn("memory_shed", "resident=%llu limit=%llu dropped=%zu",
                     (unsigned long long)resident,
                     (unsigned long long)self->mem_limit, freed);
        }
    }
    //  freed blocks stay in the heap unless handed back, and the level
    //  would never fall: trim after a shed, and now and then under
    //  pressure (it walks the free lists: not every sample)
    uint64_t now = loop_now(self->loop);
    if (freed || (level > MEMCAP_OK && now - self->mem_trimmed >= TRIM_MS)) {
        malloc_trim(0);
        self->mem_trimmed = now;
    }
}

static void s_sample(loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_check(arg);
}

void node_memory_idle(node_t *self)
{
    //  a flood from apps grows queues faster than the timer looks
    if (self->mem_timer && self->stats->bytes_in - self->mem_bytes_in >
                               self->mem_limit / STEP_DIV) {
        s_check(self);
    }
}

int node_memory_start(node_t *self, char *err, size_t errlen)
{
    const char *source;
    if (s_resolve(self->cfg->memory_limit, &self->mem_limit, &source, err,
                  errlen)) {
        return -1;
    }
    if (!self->mem_limit) {
        log_info("memory_limit", "limit=off source=\"%s\"", source);
        return 0;
    }
    self->mem_timer =
        loop_add_timer(self->loop, SAMPLE_MS, true, s_sample, self);
    if (self->mem_timer < 0) {
        self->mem_timer = 0;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    log_info("memory_limit", "limit=%llu source=\"%s\" resident=%llu",
             (unsigned long long)self->mem_limit, source,
             (unsigned long long)memcap_resident("/proc"));
    return 0;
}

void node_memory_stop(node_t *self)
{
    if (self->mem_timer > 0) {
        loop_cancel_timer(self->loop, self->mem_timer);
        self->mem_timer = 0;
    }
}

bool node_memory_refuses(node_t *self, conn_t *conn, uint64_t req,
                         node_mem_ask_t ask)
{
    static const struct {
        memcap_level_t from;
        size_t counter; // offsetof (stats_t, ...)
        const char *what;
    } asks[] = {
        [NODE_MEM_SUB] = {MEMCAP_REFUSE, offsetof(stats_t, mem_refused_subs),
                          "SUB"},
        [NODE_MEM_PSET] = {MEMCAP_REFUSE,
                           offsetof(stats_t, mem_refused_presence), "PSET"},
        [NODE_MEM_PUB] = {MEMCAP_CRITICAL, offsetof(stats_t, mem_refused_pubs),
                          "PUB"},
    };
    if (self->mem_level < (int)asks[ask].from) {
        return false;
    }
    (*(uint64_t *)((char *)self->stats + asks[ask].counter))++;
    //  an app that floods PUBs and does not read gets no ERR per frame: its
    //  queue would grow by what the cap refuses
    if (ask != NODE_MEM_PUB || conn->out.bytes < self->cfg->max_payload) {
        session_err(self->session, conn, req, WIRE_E_LIMIT, "%s refused: %s",
                    asks[ask].what, WHY_REFUSE);
    }
    return true;
}
