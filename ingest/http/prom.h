/* The Prometheus text exposition format (version 0.0.4), written into a growing buffer the
 * writer owns: HELP and TYPE lines per family, samples with escaped label values, histograms as
 * cumulative _bucket{le} lines with _sum and _count. Pure: no I/O, no knowledge of what is
 * measured (the daemon's metric table is cli/metrics.c). An allocation failure is remembered and
 * reported once by hw_prom_finish, so callers write without checking every line. */
#ifndef HW_PROM_H
#define HW_PROM_H

#include "base/common.h"
#include "base/hist.h"

#define HW_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct hw_prom {
  char *data; /* owned; NUL-terminated */
  size_t len, cap;
  int err;    /* -ENOMEM once an append failed */
} hw_prom;

typedef struct hw_prom_label {
  const char *name, *value; /* value is escaped on output */
} hw_prom_label;

void hw_prom_init(hw_prom *p);
void hw_prom_free(hw_prom *p);
/* 0, or -ENOMEM if any line could not be written (the text is then incomplete). */
int hw_prom_finish(const hw_prom *p) HW_MUST_CHECK;

/* Starts a family: "# HELP name help" and "# TYPE name type" (type: counter, gauge,
 * histogram). */
void hw_prom_family(hw_prom *p, const char *name, const char *type, const char *help);
/* name{labels} value; nlabels may be 0. Integers are written exactly. */
void hw_prom_u64(hw_prom *p, const char *name, const hw_prom_label *labels, size_t nlabels,
                 uint64_t v);
void hw_prom_double(hw_prom *p, const char *name, const hw_prom_label *labels, size_t nlabels,
                    double v);
/* The samples of a latency histogram (microseconds recorded) in seconds: name_bucket{le=...}
 * for every bound and +Inf, name_sum, name_count; labels are prepended to le. */
void hw_prom_lat_hist(hw_prom *p, const char *name, const hw_prom_label *labels, size_t nlabels,
                      const hw_lat_hist *h);

/* A declarative metric table (the daemon's is cli/metrics.c, the web process's
 * web/web_metrics.c): each row names, types and describes one family once. A row without emit is
 * one unlabelled sample read at off in the snapshot (a uint64_t; an hw_lat_hist for a
 * histogram); a row with emit writes its own labelled samples (the table writes HELP and TYPE). */
typedef struct hw_prom_metric hw_prom_metric;
struct hw_prom_metric {
  const char *name;
  const char *type; /* counter, gauge, histogram */
  const char *help;
  size_t off;
  void (*emit)(hw_prom *p, const hw_prom_metric *d, const void *snapshot);
};
/* Renders every row of table[0..n) from snapshot into out; 0 or -ENOMEM. */
int hw_prom_render(hw_prom *out, const hw_prom_metric *table, size_t n, const void *snapshot)
    HW_MUST_CHECK;

#endif
