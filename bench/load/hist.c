/*
 * bench/load/hist.c: the log-bucketed latency histogram of ringflow-load (hist.h).
 *
 * Index layout: counters [0, 256) hold the values 0..255 exactly. A larger value v with
 * its highest set bit at position m (m >= 8) is shifted right by s = m - 7, which leaves
 * its top 8 bits t in [128, 256); its counter is 256 + (s - 1) * 128 + (t - 128). The
 * counter therefore stands for [t << s, ((t + 1) << s) - 1], a range of width 2^s over a
 * lower bound of at least 128 * 2^s: relative error under 1/128. rfl_hist_lowest and
 * rfl_hist_highest invert the mapping; the self-test checks the round trip at every
 * counter boundary.
 *
 * Recording is branch-light and touches one counter and four scalars: cheap enough to do
 * for every response on the data path. Merging and percentiles walk the 3,840 counters
 * and only run at the end.
 */
#include "bench/load/hist.h"

#include <string.h>

void rfl_hist_init(struct rfl_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

uint32_t rfl_hist_index(uint64_t ns)
{
    if (ns > RFL_HIST_MAX_NS)
        ns = RFL_HIST_MAX_NS;
    if (ns < RFL_HIST_LINEAR)
        return (uint32_t)ns;
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(ns);
    uint32_t shift = msb - RFL_HIST_SUB_BITS;
    uint32_t top = (uint32_t)(ns >> shift);
    return RFL_HIST_LINEAR + (shift - 1u) * 128u + (top - 128u);
}

uint64_t rfl_hist_lowest(uint32_t idx)
{
    if (idx < RFL_HIST_LINEAR)
        return idx;
    uint32_t k = idx - RFL_HIST_LINEAR;
    uint32_t shift = k / 128u + 1u;
    uint64_t top = k % 128u + 128u;
    return top << shift;
}

uint64_t rfl_hist_highest(uint32_t idx)
{
    if (idx < RFL_HIST_LINEAR)
        return idx;
    uint32_t k = idx - RFL_HIST_LINEAR;
    uint32_t shift = k / 128u + 1u;
    uint64_t top = k % 128u + 128u;
    return ((top + 1u) << shift) - 1u;
}

void rfl_hist_record(struct rfl_hist *h, uint64_t ns)
{
    if (ns > RFL_HIST_MAX_NS) {
        h->clamped++;
        ns = RFL_HIST_MAX_NS;
    }
    h->counters[rfl_hist_index(ns)]++;
    h->count++;
    h->sum_ns += (double)ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void rfl_hist_merge(struct rfl_hist *dst, const struct rfl_hist *src)
{
    for (uint32_t i = 0; i < RFL_HIST_COUNTERS; i++)
        dst->counters[i] += src->counters[i];
    dst->count += src->count;
    dst->clamped += src->clamped;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t rfl_hist_percentile(const struct rfl_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p < 0.0)
        p = 0.0;
    if (p > 100.0)
        p = 100.0;
    double exact = p / 100.0 * (double)h->count;
    uint64_t want = (uint64_t)exact;
    if ((double)want < exact)
        want++; /* ceil, without libm */
    if (want == 0)
        want = 1;
    if (want > h->count)
        want = h->count;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < RFL_HIST_COUNTERS; i++) {
        seen += h->counters[i];
        if (seen >= want) {
            uint64_t v = rfl_hist_highest(i);
            return v < h->max_ns ? v : h->max_ns;
        }
    }
    return h->max_ns;
}

double rfl_hist_mean(const struct rfl_hist *h)
{
    return h->count ? h->sum_ns / (double)h->count : 0.0;
}
