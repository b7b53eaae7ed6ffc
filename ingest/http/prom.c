/* Prometheus text exposition: see prom.h. Owns only its output buffer. */
#include "http/prom.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hw_prom_init(hw_prom *p) { memset(p, 0, sizeof *p); }

void hw_prom_free(hw_prom *p) {
  free(p->data);
  memset(p, 0, sizeof *p);
}

int hw_prom_finish(const hw_prom *p) { return p->err; }

static int hw_prom_reserve(hw_prom *p, size_t more) {
  if (p->err)
    return p->err;
  if (p->len + more + 1 <= p->cap)
    return 0;
  size_t cap = p->cap ? p->cap : 4096;
  while (cap < p->len + more + 1)
    cap *= 2;
  char *d = realloc(p->data, cap);
  if (!d)
    return p->err = -ENOMEM;
  p->data = d;
  p->cap = cap;
  return 0;
}

static void hw_prom_put(hw_prom *p, const char *s, size_t n) {
  if (hw_prom_reserve(p, n))
    return;
  memcpy(p->data + p->len, s, n);
  p->len += n;
  p->data[p->len] = 0;
}

static void hw_prom_puts(hw_prom *p, const char *s) { hw_prom_put(p, s, strlen(s)); }

/* Label values escape backslash, double quote and newline; HELP text backslash and newline. */
static void hw_prom_escaped(hw_prom *p, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\')
      hw_prom_put(p, "\\\\", 2);
    else if (*s == '\n')
      hw_prom_put(p, "\\n", 2);
    else if (*s == '"' && quote)
      hw_prom_put(p, "\\\"", 2);
    else
      hw_prom_put(p, s, 1);
  }
}

void hw_prom_family(hw_prom *p, const char *name, const char *type, const char *help) {
  hw_prom_puts(p, "# HELP ");
  hw_prom_puts(p, name);
  hw_prom_puts(p, " ");
  hw_prom_escaped(p, help, 0);
  hw_prom_puts(p, "\n# TYPE ");
  hw_prom_puts(p, name);
  hw_prom_puts(p, " ");
  hw_prom_puts(p, type);
  hw_prom_puts(p, "\n");
}

static void hw_prom_head(hw_prom *p, const char *name, const char *suffix,
                         const hw_prom_label *labels, size_t n, const char *le) {
  hw_prom_puts(p, name);
  hw_prom_puts(p, suffix);
  if (n == 0 && !le)
    return;
  hw_prom_puts(p, "{");
  for (size_t i = 0; i < n; i++) {
    if (i)
      hw_prom_puts(p, ",");
    hw_prom_puts(p, labels[i].name);
    hw_prom_puts(p, "=\"");
    hw_prom_escaped(p, labels[i].value, 1);
    hw_prom_puts(p, "\"");
  }
  if (le) {
    hw_prom_puts(p, n ? ",le=\"" : "le=\"");
    hw_prom_puts(p, le);
    hw_prom_puts(p, "\"");
  }
  hw_prom_puts(p, "}");
}

static void hw_prom_value_u64(hw_prom *p, uint64_t v) {
  char b[32];
  int n = snprintf(b, sizeof b, " %llu\n", (unsigned long long)v);
  hw_prom_put(p, b, (size_t)n);
}

void hw_prom_u64(hw_prom *p, const char *name, const hw_prom_label *labels, size_t n, uint64_t v) {
  hw_prom_head(p, name, "", labels, n, NULL);
  hw_prom_value_u64(p, v);
}

void hw_prom_double(hw_prom *p, const char *name, const hw_prom_label *labels, size_t n,
                    double v) {
  char b[48];
  hw_prom_head(p, name, "", labels, n, NULL);
  int k = snprintf(b, sizeof b, " %.17g\n", v);
  hw_prom_put(p, b, (size_t)k);
}

void hw_prom_lat_hist(hw_prom *p, const char *name, const hw_prom_label *labels, size_t n,
                      const hw_lat_hist *h) {
  uint64_t cum = 0;
  char le[32];
  for (size_t i = 0; i < HW_LAT_BUCKETS; i++) {
    cum += h->counts[i];
    snprintf(le, sizeof le, "%g", (double)hw_lat_bounds_us[i] / 1e6);
    hw_prom_head(p, name, "_bucket", labels, n, le);
    hw_prom_value_u64(p, cum);
  }
  cum += h->counts[HW_LAT_BUCKETS];
  hw_prom_head(p, name, "_bucket", labels, n, "+Inf");
  hw_prom_value_u64(p, cum);
  char b[48];
  hw_prom_head(p, name, "_sum", labels, n, NULL);
  int k = snprintf(b, sizeof b, " %.6f\n", (double)h->sum_us / 1e6);
  hw_prom_put(p, b, (size_t)k);
  hw_prom_head(p, name, "_count", labels, n, NULL);
  hw_prom_value_u64(p, h->count);
}

int hw_prom_render(hw_prom *out, const hw_prom_metric *table, size_t n, const void *snapshot) {
  for (size_t i = 0; i < n; i++) {
    const hw_prom_metric *d = &table[i];
    const char *at = (const char *)snapshot + d->off;
    hw_prom_family(out, d->name, d->type, d->help);
    if (d->emit)
      d->emit(out, d, snapshot);
    else if (!strcmp(d->type, "histogram"))
      hw_prom_lat_hist(out, d->name, NULL, 0, (const hw_lat_hist *)(const void *)at);
    else
      hw_prom_u64(out, d->name, NULL, 0, *(const uint64_t *)(const void *)at);
  }
  return hw_prom_finish(out);
}
