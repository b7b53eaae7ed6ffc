/* A printed report as data: a title and a list of tables of text cells, each optionally with a
 * bar chart of one column. `report monthly` fills one (report_monthly.c); report_html.c writes it
 * as one HTML page and report_xlsx.c as a workbook with one sheet per table, so both outputs
 * always hold the same cells. The document owns every string it holds (copies). Allocation
 * failures are sticky: build freely and check hw_rdoc.failed once before writing. */
#ifndef HW_REPORT_DOC_H
#define HW_REPORT_DOC_H

#include <stdint.h>
#include <stdio.h>

#include "base/common.h"

#define HW_RDOC_MAX_COLS 24

typedef struct hw_rtable {
  char id[32];     /* [a-z0-9_-]: the HTML table's id and the sheet's name (at most 31) */
  char *section;   /* a heading printed before this table, or NULL */
  char *title;
  char *note;      /* a paragraph under the title, or NULL */
  int ncols;
  char *cols[HW_RDOC_MAX_COLS];  /* keys: data-col of the cells */
  char *heads[HW_RDOC_MAX_COLS]; /* headers shown */
  uint32_t numeric;              /* bit c: column c holds numbers (right-aligned, XLSX numbers) */
  int key_col;                   /* the column whose text is each row's data-group */
  int chart, chart_prev;         /* bar chart of column chart (and chart_prev, lighter beside
                                    it) per row, labelled by key_col; -1: none */
  int nrows, caprows;
  char **cells; /* nrows * ncols; NULL is an empty cell (a null) */
} hw_rtable;

typedef struct hw_rdoc {
  char *title, *subtitle;
  hw_rtable **t;
  size_t n, cap;
  int failed;
} hw_rdoc;

void hw_rdoc_init(hw_rdoc *d, const char *title, const char *subtitle);
void hw_rdoc_free(hw_rdoc *d);
/* A new table with ncols columns (keys and headers copied); NULL when allocation failed (the
 * document is then failed; later calls with a NULL table do nothing). */
hw_rtable *hw_rdoc_table(hw_rdoc *d, const char *id, const char *title, int ncols,
                         const char *const *cols, const char *const *heads, uint32_t numeric);
void hw_rdoc_section(hw_rdoc *d, hw_rtable *t, const char *section);
void hw_rdoc_note(hw_rdoc *d, hw_rtable *t, const char *fmt, ...) HW_PRINTF(3, 4);
/* Appends a row of t->ncols cells (copied; NULL stays a null). */
void hw_rdoc_row(hw_rdoc *d, hw_rtable *t, const char *const *cells);
static inline const char *hw_rdoc_cell(const hw_rtable *t, int r, int c) {
  return t->cells[(size_t)r * t->ncols + c];
}

/* The writers: 0, or a negative errno (the reason logged). */
int hw_report_html_write(FILE *f, const hw_rdoc *d) HW_MUST_CHECK;
int hw_report_xlsx_write(const char *path, const hw_rdoc *d) HW_MUST_CHECK;

#endif
