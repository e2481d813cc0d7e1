/*  memcap: the daemon-wide memory cap (--memory-limit), as numbers.

    The budgets of each part (an app's queue, incomplete frames, presence,
    a peer link) add up far past any container limit, and the kernel's OOM
    killer takes the bus away from every app on the host. memcap says how
    close resident memory is to the cap; the coordinator (node_memory.c)
    sheds, in this order, as the level rises:

      level    resident    what the sidecar does (each step adds to those
               (of limit)  before it)
      ok       < 85%       nothing
      refuse   >= 85%      new app connections, SUB and presence sets are
                           refused with ERR LIMIT (nothing held is lost)
      shed     >= 95%      each app's queue budget is cut to 1/8 (at least
                           --max-payload) and the largest app queues are
                           dropped, largest first, until the bytes dropped
                           cover the excess over 80%: those apps get a GAP
                           (slow) per stream, or one ERR, when they read
                           again; freed memory goes back to the kernel
      critical >= 100%     PUB from local apps is refused with ERR LIMIT
                           (nothing new enters the mesh queues)

    A level is left only 5% of the limit below where it starts, so the
    sidecar does not flap at a threshold.

    Resident memory is /proc/self/statm's resident pages (what the kernel
    counts against the process, shared library pages included), read at
    each sample: 3 system calls.

    THREAD SAFETY: pure functions but the readers of /proc and /sys.
*/
#ifndef RCD_MEMCAP_H
#define RCD_MEMCAP_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MEMCAP_OK = 0,
    MEMCAP_REFUSE = 1,
    MEMCAP_SHED = 2,
    MEMCAP_CRITICAL = 3
} memcap_level_t;

#define MEMCAP_MIN_LIMIT    (8u << 20) // smaller limits are refused at start
#define MEMCAP_AUTO_PERCENT 90         // "auto": this share of the cgroup's

//  The level for resident bytes under limit (> 0), coming from level
//  prev: thresholds as above, each left only 5% of the limit lower.
memcap_level_t memcap_level(uint64_t limit, uint64_t resident,
                            memcap_level_t prev);

//  Bytes to drop from app queues at level shed and above: resident minus
//  80% of the limit (0 below).
uint64_t memcap_shed_target(uint64_t limit, uint64_t resident);

//  "ok", "refuse", "shed", "critical".
const char *memcap_level_name(memcap_level_t level);

//  The memory limit of the cgroup the process at proc ("/proc") runs in,
//  under the cgroup file systems mounted at sys ("/sys/fs/cgroup"): v2's
//  memory.max, else v1's memory.limit_in_bytes, the lowest on the way from
//  the process's cgroup up to the root (in a cgroup namespace, as in a
//  container, its own cgroup is the root). Returns the bytes, or 0 when
//  there is none ("max", v1's unlimited, nothing readable). Tests give
//  directories of their own.
uint64_t memcap_cgroup_limit(const char *proc, const char *sys);

//  Resident bytes of the process (proc/self/statm). Returns 0 when it
//  cannot be read.
uint64_t memcap_resident(const char *proc);

#endif
