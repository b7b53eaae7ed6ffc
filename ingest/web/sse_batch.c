/* Position batches of the live feed: see sse_batch.h. */
#include "web/sse_batch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends s[0..len) when it fits; returns the new length (past cap: the caller's check). */
static size_t hw_sb_put(char *out, size_t cap, size_t n, const char *s, size_t len) {
  if (n + len <= cap)
    memcpy(out + n, s, len);
  return n + len;
}

/* A number with at most `decimals` decimals, trailing zeros (and a bare point) cut: 32.0001, 60,
 * 118.8. The daemon's values come from integers (1e-6 degrees, 0.1 km/h, ms) that it printed with
 * as many decimals, so rounding to them is exact; done with integers, as snprintf of a double
 * was most of the cost of a position. */
static size_t hw_sb_num(char *out, size_t cap, size_t n, double v, int decimals) {
  static const int64_t scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
  if (isnan(v))
    return hw_sb_put(out, cap, n, "null", 4);
  if (!isfinite(v) || fabs(v) * (double)scale[decimals] > 9e18)
    v = 0; /* cannot come from JSON text the daemon wrote; keep the output valid */
  int64_t q = llround(v * (double)scale[decimals]);
  char b[48], *e = b + sizeof b, *p = e;
  int neg = q < 0;
  uint64_t u = neg ? (uint64_t)0 - (uint64_t)q : (uint64_t)q;
  uint64_t ip = u / (uint64_t)scale[decimals], fp = u % (uint64_t)scale[decimals];
  if (fp) {
    int d = decimals;
    while (fp % 10 == 0) { /* trailing zeros cut */
      fp /= 10;
      d--;
    }
    for (; d > 0; d--, fp /= 10)
      *--p = (char)('0' + fp % 10);
    *--p = '.';
  }
  do {
    *--p = (char)('0' + ip % 10);
    ip /= 10;
  } while (ip);
  if (neg)
    *--p = '-';
  return hw_sb_put(out, cap, n, p, (size_t)(e - p));
}

size_t hw_sse_pos_encode(char *out, size_t cap, const char *tid, double ts_ms, double lat,
                         double lon, double speed_kmh, double heading) {
  size_t tlen = strlen(tid);
  if (!tlen || tlen > HW_SSE_TID_MAX)
    return 0;
  size_t n = hw_sb_put(out, cap, 0, "[\"", 2);
  for (size_t i = 0; i < tlen; i++) {
    unsigned char ch = (unsigned char)tid[i];
    char esc[8];
    if (ch == '"' || ch == '\\') {
      esc[0] = '\\';
      esc[1] = (char)ch;
      n = hw_sb_put(out, cap, n, esc, 2);
    } else if (ch < 0x20 || ch == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      n = hw_sb_put(out, cap, n, esc, 6);
    } else {
      n = hw_sb_put(out, cap, n, (const char *)&ch, 1);
    }
  }
  n = hw_sb_put(out, cap, n, "\",", 2);
  n = hw_sb_num(out, cap, n, ts_ms, 0);
  n = hw_sb_put(out, cap, n, ",", 1);
  n = hw_sb_num(out, cap, n, lat, 6);
  n = hw_sb_put(out, cap, n, ",", 1);
  n = hw_sb_num(out, cap, n, lon, 6);
  n = hw_sb_put(out, cap, n, ",", 1);
  n = hw_sb_num(out, cap, n, speed_kmh, 1);
  n = hw_sb_put(out, cap, n, ",", 1);
  n = hw_sb_num(out, cap, n, isnan(heading) ? heading : round(heading), 0);
  return hw_sb_put(out, cap, n, "]", 1);
}

static uint32_t hw_sb_hash(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* The idx slot of tid: its entry's, or the empty one where it would go. */
static size_t hw_sb_slot(const hw_sse_pending *p, const char *tid) {
  size_t mask = p->idx_cap - 1, i = hw_sb_hash(tid) & mask;
  while (p->idx[i] && strcmp(p->v[p->idx[i] - 1].tid, tid) != 0)
    i = (i + 1) & mask;
  return i;
}

static int hw_sb_grow(hw_sse_pending *p) {
  size_t cap = p->cap ? p->cap * 2 : 1024;
  hw_sse_pend *v = realloc(p->v, cap * sizeof *v);
  if (!v)
    return -ENOMEM;
  p->v = v; /* larger, and still p->cap until the index is too */
  uint32_t *idx = calloc(cap * 2, sizeof *idx);
  if (!idx)
    return -ENOMEM;
  p->cap = cap;
  free(p->idx);
  p->idx = idx;
  p->idx_cap = cap * 2;
  for (size_t k = 0; k < p->n; k++)
    p->idx[hw_sb_slot(p, p->v[k].tid)] = (uint32_t)k + 1;
  return 0;
}

int hw_sse_pending_put(hw_sse_pending *p, const char *tid, const char *region,
                       const char *enterprise, double ts_ms, const char *enc, size_t len) {
  size_t tlen = strlen(tid);
  if (!tlen || tlen > HW_SSE_TID_MAX || len > HW_SSE_POS_MAX || len == 0)
    return -EINVAL;
  if (p->n == p->cap && hw_sb_grow(p))
    return -ENOMEM;
  size_t slot = hw_sb_slot(p, tid);
  hw_sse_pend *e;
  int rc;
  if (p->idx[slot]) {
    e = &p->v[p->idx[slot] - 1];
    if (ts_ms < e->ts_ms)
      return 2;
    if (strcmp(e->enterprise, enterprise) != 0) {
      char *d = strdup(enterprise);
      if (!d)
        return -ENOMEM;
      free(e->enterprise);
      e->enterprise = d;
    }
    p->bytes -= e->len;
    rc = 0;
  } else {
    e = &p->v[p->n];
    e->enterprise = strdup(enterprise);
    if (!e->enterprise)
      return -ENOMEM;
    memcpy(e->tid, tid, tlen + 1);
    p->idx[slot] = (uint32_t)++p->n;
    rc = 1;
  }
  snprintf(e->region, sizeof e->region, "%s", region);
  e->ts_ms = ts_ms;
  e->len = (uint16_t)len;
  memcpy(e->enc, enc, len);
  p->bytes += len;
  return rc;
}

void hw_sse_pending_clear(hw_sse_pending *p) {
  for (size_t k = 0; k < p->n; k++)
    free(p->v[k].enterprise);
  if (p->n)
    memset(p->idx, 0, p->idx_cap * sizeof *p->idx);
  p->n = 0;
  p->bytes = 0;
}

void hw_sse_pending_free(hw_sse_pending *p) {
  hw_sse_pending_clear(p);
  free(p->v);
  free(p->idx);
  memset(p, 0, sizeof *p);
}
