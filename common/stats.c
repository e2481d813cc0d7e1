/*  stats: see stats.h. */
#include "stats.h"

const uint64_t stats_fanout_bounds_us[STATS_FANOUT_BUCKETS] = {
    10, 50, 100, 500, 1000, 5000, 10000, 50000, UINT64_MAX};

void stats_fanout_observe(stats_t *self, uint64_t us)
{
    self->fanouts++;
    self->fanout_us_sum += us;
    for (int i = 0; i < STATS_FANOUT_BUCKETS; i++) {
        if (us <= stats_fanout_bounds_us[i]) {
            self->fanout_hist[i]++;
            return;
        }
    }
}
