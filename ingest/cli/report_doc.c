/* The report document (report_doc.h): building it. */
#include "cli/report_doc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char *hw_rdoc_dup(hw_rdoc *d, const char *s) {
  if (!s)
    return NULL;
  char *p = strdup(s);
  if (!p)
    d->failed = 1;
  return p;
}

void hw_rdoc_init(hw_rdoc *d, const char *title, const char *subtitle) {
  memset(d, 0, sizeof *d);
  d->title = hw_rdoc_dup(d, title);
  d->subtitle = hw_rdoc_dup(d, subtitle);
}

static void hw_rtable_free(hw_rtable *t) {
  free(t->section);
  free(t->title);
  free(t->note);
  for (int c = 0; c < t->ncols; c++) {
    free(t->cols[c]);
    free(t->heads[c]);
  }
  for (size_t i = 0; i < (size_t)t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  free(t);
}

void hw_rdoc_free(hw_rdoc *d) {
  for (size_t i = 0; i < d->n; i++)
    hw_rtable_free(d->t[i]);
  free(d->t);
  free(d->title);
  free(d->subtitle);
  memset(d, 0, sizeof *d);
}

hw_rtable *hw_rdoc_table(hw_rdoc *d, const char *id, const char *title, int ncols,
                         const char *const *cols, const char *const *heads, uint32_t numeric) {
  if (ncols < 1 || ncols > HW_RDOC_MAX_COLS || strlen(id) >= 32) {
    d->failed = 1; /* a programming error: the caller's tables are fixed */
    return NULL;
  }
  if (d->n == d->cap) {
    size_t ncap = d->cap ? d->cap * 2 : 16;
    hw_rtable **nt = realloc(d->t, ncap * sizeof *nt);
    if (!nt) {
      d->failed = 1;
      return NULL;
    }
    d->t = nt;
    d->cap = ncap;
  }
  hw_rtable *t = calloc(1, sizeof *t);
  if (!t) {
    d->failed = 1;
    return NULL;
  }
  snprintf(t->id, sizeof t->id, "%s", id);
  t->title = hw_rdoc_dup(d, title);
  t->ncols = ncols;
  for (int c = 0; c < ncols; c++) {
    t->cols[c] = hw_rdoc_dup(d, cols[c]);
    t->heads[c] = hw_rdoc_dup(d, heads ? heads[c] : cols[c]);
  }
  t->numeric = numeric;
  t->chart = t->chart_prev = -1;
  d->t[d->n++] = t;
  return t;
}

void hw_rdoc_section(hw_rdoc *d, hw_rtable *t, const char *section) {
  if (!t)
    return;
  free(t->section);
  t->section = hw_rdoc_dup(d, section);
}

void hw_rdoc_note(hw_rdoc *d, hw_rtable *t, const char *fmt, ...) {
  if (!t)
    return;
  va_list ap;
  va_start(ap, fmt);
  char *p = NULL;
  if (vasprintf(&p, fmt, ap) < 0) {
    p = NULL;
    d->failed = 1;
  }
  va_end(ap);
  free(t->note);
  t->note = p;
}

void hw_rdoc_row(hw_rdoc *d, hw_rtable *t, const char *const *cells) {
  if (!t)
    return;
  if (t->nrows == t->caprows) {
    int ncap = t->caprows ? t->caprows * 2 : 16;
    char **nc = realloc(t->cells, (size_t)ncap * t->ncols * sizeof *nc);
    if (!nc) {
      d->failed = 1;
      return;
    }
    t->cells = nc;
    t->caprows = ncap;
  }
  char **row = t->cells + (size_t)t->nrows * t->ncols;
  for (int c = 0; c < t->ncols; c++)
    row[c] = hw_rdoc_dup(d, cells[c]);
  t->nrows++;
}
