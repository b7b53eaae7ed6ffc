/* A log-bucketed histogram of non-negative integers (latencies in microseconds, say): 32 buckets
 * per power of two, so any percentile is within about 3 % of the true value, in fixed memory
 * (15 KiB) whatever the number of samples. HdrHistogram's idea without its generality. */
#ifndef HW_HIST_H
#define HW_HIST_H

#include "base/common.h"

#define HW_HIST_SUB 32
#define HW_HIST_BUCKETS (HW_HIST_SUB + 59 * HW_HIST_SUB)

typedef struct hw_hist {
  uint64_t counts[HW_HIST_BUCKETS];
  uint64_t total;
  uint64_t min, max;
  double sum;
} hw_hist;

void hw_hist_init(hw_hist *h);
void hw_hist_record(hw_hist *h, uint64_t v);
/* Adds every sample of src to dst. */
void hw_hist_merge(hw_hist *dst, const hw_hist *src);
/* The value at percentile p (0..100): the middle of its bucket, clamped to [min, max]; 0 when
 * empty. */
uint64_t hw_hist_percentile(const hw_hist *h, double p);
double hw_hist_mean(const hw_hist *h);

/* A latency histogram with fixed bucket bounds, for export (Prometheus histograms need the same
 * bounds in every sample and every process): a counter increment and a short scan per sample,
 * 128 bytes. Histograms of several loops merge by adding (hw_lat_hist_merge). */
#define HW_LAT_BUCKETS 14
/* Upper bounds, microseconds: 1 ms .. 30 s (the last bucket, +Inf, is counts[HW_LAT_BUCKETS]). */
extern const uint64_t hw_lat_bounds_us[HW_LAT_BUCKETS];

typedef struct hw_lat_hist {
  uint64_t counts[HW_LAT_BUCKETS + 1]; /* per bucket, not cumulative */
  uint64_t count;
  uint64_t sum_us;
} hw_lat_hist;

void hw_lat_hist_record(hw_lat_hist *h, uint64_t us);
void hw_lat_hist_merge(hw_lat_hist *dst, const hw_lat_hist *src);

#endif
