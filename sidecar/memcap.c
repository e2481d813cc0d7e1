/*  memcap: see memcap.h. */
#include "memcap.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Where each level starts, in percent of the limit.
static const unsigned s_enter[] = {0, 85, 95, 100};
#define HYSTERESIS 5 // a level is left this many percent below its start
#define SHED_TO    80

//  resident as a share of limit, in hundredths of a percent (no overflow
//  for any 64-bit value).
static uint64_t s_basis(uint64_t limit, uint64_t resident)
{
    return (uint64_t)((unsigned __int128)resident * 10000 / limit);
}

memcap_level_t memcap_level(uint64_t limit, uint64_t resident,
                            memcap_level_t prev)
{
    uint64_t at = s_basis(limit, resident);
    memcap_level_t level = MEMCAP_OK;
    for (int l = MEMCAP_CRITICAL; l > MEMCAP_OK; l--) {
        uint64_t start = s_enter[l] * 100u;
        if (at >= start || (l <= (int)prev && at >= start - HYSTERESIS * 100)) {
            level = (memcap_level_t)l;
            break;
        }
    }
    return level;
}

uint64_t memcap_shed_target(uint64_t limit, uint64_t resident)
{
    uint64_t floor = (uint64_t)((unsigned __int128)limit * SHED_TO / 100);
    return resident > floor ? resident - floor : 0;
}

const char *memcap_level_name(memcap_level_t level)
{
    static const char *names[] = {"ok", "refuse", "shed", "critical"};
    return level <= MEMCAP_CRITICAL ? names[level] : "?";
}

//  The first line of path, into buf. 0 or -1.
static int s_read(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        return -1;
    }
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (!ok) {
        return -1;
    }
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

//  A limit file's value: bytes, or 0 for "max", unlimited or unreadable.
static uint64_t s_limit_file(const char *path)
{
    char text[64];
    if (s_read(path, text, sizeof text) || strcmp(text, "max") == 0) {
        return 0;
    }
    char *end;
    unsigned long long n = strtoull(text, &end, 10);
    if (end == text || *end) {
        return 0;
    }
    //  v1 says "unlimited" as the largest page multiple below 2^63
    return n >= (1ull << 62) ? 0 : (uint64_t)n;
}

//  The process's cgroup path for v2 ("0::PATH") or for v1's memory
//  controller ("N:...memory...:PATH"), into path. 0 or -1.
static int s_cgroup_path(const char *proc, bool v2, char *path, size_t size)
{
    char file[512], line[1024];
    snprintf(file, sizeof file, "%s/self/cgroup", proc);
    FILE *f = fopen(file, "re");
    if (!f) {
        return -1;
    }
    int rc = -1;
    while (rc && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) {
            continue;
        }
        *c2 = 0;
        const char *controllers = c1 + 1;
        bool match = v2 ? strncmp(line, "0:", 2) == 0 && !*controllers
                        : strstr(controllers, "memory") != NULL;
        if (match) {
            snprintf(path, size, "%s", c2 + 1);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

//  The smallest limit file on the way from sys/dir/cg up to sys/dir (a
//  cgroup's limit is its own or an ancestor's, whichever is lower; in a
//  cgroup namespace, as in a container, the process's cgroup is the root).
static uint64_t s_lowest(const char *sys, const char *dir, const char *cg,
                         const char *name)
{
    char path[512], file[1200];
    snprintf(path, sizeof path, "%s", cg);
    uint64_t lowest = 0;
    for (;;) {
        size_t len = strlen(path);
        while (len && path[len - 1] == '/') {
            path[--len] = 0;
        }
        snprintf(file, sizeof file, "%s%s%s/%s", sys, dir, path, name);
        uint64_t n = s_limit_file(file);
        if (n && (!lowest || n < lowest)) {
            lowest = n;
        }
        char *slash = strrchr(path, '/');
        if (!len) {
            break;
        }
        if (slash) {
            *slash = 0;
        } else {
            path[0] = 0;
        }
    }
    return lowest;
}

uint64_t memcap_cgroup_limit(const char *proc, const char *sys)
{
    char cg[512];
    if (s_cgroup_path(proc, true, cg, sizeof cg)) {
        cg[0] = 0;
    }
    uint64_t n = s_lowest(sys, "", cg, "memory.max");
    if (n) {
        return n;
    }
    if (s_cgroup_path(proc, false, cg, sizeof cg)) {
        cg[0] = 0;
    }
    return s_lowest(sys, "/memory", cg, "memory.limit_in_bytes");
}

uint64_t memcap_resident(const char *proc)
{
    char path[512], text[256];
    snprintf(path, sizeof path, "%s/self/statm", proc);
    unsigned long long size, resident;
    if (s_read(path, text, sizeof text) ||
        sscanf(text, "%llu %llu", &size, &resident) != 2) {
        return 0;
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}
