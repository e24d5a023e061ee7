/*
 * bench/load/hist.h: a fixed-size, log-bucketed latency histogram in the manner of
 * HdrHistogram, for ringflow-load.
 *
 * Values are nanoseconds. Below 256 ns every value has its own counter; above, a value
 * keeps its top 8 significant bits (the highest set bit plus 7 more), so each counter
 * covers a range no wider than 1/128 of its lower bound: better than 2 significant
 * decimal digits (1 %) everywhere. Values above RFL_HIST_MAX_NS (60 s) are clamped into
 * the last counter and counted in `clamped`; the exact minimum, maximum and sum (for the
 * mean) are kept beside the counters. Memory is fixed: RFL_HIST_COUNTERS 64-bit counters
 * (30 KiB), nothing allocated, so one histogram lives inside each thread's statistics and
 * recording is an index computation and an increment.
 *
 * Percentiles follow HdrHistogram: the value at percentile p is the highest value
 * equivalent to the counter in which the cumulative count first reaches ceil(p/100 * n),
 * capped at the recorded maximum. Threads record into their own histograms; main() merges
 * them (counter-wise sums) after joining the threads. No function here is thread-safe on
 * one histogram; different histograms are independent.
 */
#ifndef RFL_HIST_H
#define RFL_HIST_H

#include <stdint.h>

#define RFL_HIST_SUB_BITS 7u                             /* 128 sub-buckets per power of two */
#define RFL_HIST_MAX_NS   60000000000ull                 /* 60 s: larger values are clamped */
#define RFL_HIST_LINEAR   256u                           /* values below this are exact */
#define RFL_HIST_COUNTERS (RFL_HIST_LINEAR + 28u * 128u) /* up to 2^36 ns > 60 s */

struct rfl_hist {
    uint64_t count;   /* values recorded */
    uint64_t clamped; /* values over RFL_HIST_MAX_NS (recorded as the max) */
    uint64_t min_ns, max_ns;
    double sum_ns; /* for the mean; a double does not overflow over a long run */
    uint64_t counters[RFL_HIST_COUNTERS];
};

/* Empty the histogram (h borrowed). */
void rfl_hist_init(struct rfl_hist *h);

/* Record one value in ns (h borrowed). */
void rfl_hist_record(struct rfl_hist *h, uint64_t ns);

/* Add every counter of src into dst (both borrowed; they may not alias). */
void rfl_hist_merge(struct rfl_hist *dst, const struct rfl_hist *src);

/* The value in ns at percentile p in [0, 100] (h borrowed); 0 when empty. */
uint64_t rfl_hist_percentile(const struct rfl_hist *h, double p);

/* The mean in ns; 0 when empty. */
double rfl_hist_mean(const struct rfl_hist *h);

/* Counter index of a value, and the lowest and highest value a counter stands for.
 * Exposed for the self-test. */
uint32_t rfl_hist_index(uint64_t ns);
uint64_t rfl_hist_lowest(uint32_t idx);
uint64_t rfl_hist_highest(uint32_t idx);

#endif
