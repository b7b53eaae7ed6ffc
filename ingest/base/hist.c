#include "base/hist.h"

#include <math.h>
#include <string.h>

void hw_hist_init(hw_hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

/* Values below HW_HIST_SUB have a bucket each; above, bucket = octave and the next 5 bits. */
static size_t hw_hist_index(uint64_t v) {
  if (v < HW_HIST_SUB)
    return (size_t)v;
  int e = 63 - __builtin_clzll(v); /* 5..63 */
  size_t m = (size_t)(v >> (e - 5)) - HW_HIST_SUB;
  return HW_HIST_SUB + (size_t)(e - 5) * HW_HIST_SUB + m;
}

static uint64_t hw_hist_value(size_t i) {
  if (i < HW_HIST_SUB)
    return i;
  int e = (int)((i - HW_HIST_SUB) / HW_HIST_SUB) + 5;
  uint64_t m = (i - HW_HIST_SUB) % HW_HIST_SUB + HW_HIST_SUB;
  uint64_t lo = m << (e - 5);
  return lo + ((1ull << (e - 5)) >> 1);
}

void hw_hist_record(hw_hist *h, uint64_t v) {
  h->counts[hw_hist_index(v)]++;
  h->total++;
  h->sum += (double)v;
  if (v < h->min)
    h->min = v;
  if (v > h->max)
    h->max = v;
}

void hw_hist_merge(hw_hist *dst, const hw_hist *src) {
  for (size_t i = 0; i < HW_HIST_BUCKETS; i++)
    dst->counts[i] += src->counts[i];
  dst->total += src->total;
  dst->sum += src->sum;
  if (src->min < dst->min)
    dst->min = src->min;
  if (src->max > dst->max)
    dst->max = src->max;
}

uint64_t hw_hist_percentile(const hw_hist *h, double p) {
  if (h->total == 0)
    return 0;
  uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
  if (rank < 1)
    rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < HW_HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t v = hw_hist_value(i);
      return v < h->min ? h->min : v > h->max ? h->max : v;
    }
  }
  return h->max;
}

double hw_hist_mean(const hw_hist *h) { return h->total ? h->sum / (double)h->total : 0; }

const uint64_t hw_lat_bounds_us[HW_LAT_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000};

void hw_lat_hist_record(hw_lat_hist *h, uint64_t us) {
  size_t i = 0;
  while (i < HW_LAT_BUCKETS && us > hw_lat_bounds_us[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum_us += us;
}

void hw_lat_hist_merge(hw_lat_hist *dst, const hw_lat_hist *src) {
  for (size_t i = 0; i <= HW_LAT_BUCKETS; i++)
    dst->counts[i] += src->counts[i];
  dst->count += src->count;
  dst->sum_us += src->sum_us;
}
