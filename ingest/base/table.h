/* A table of typed text cells written as an XLSX workbook of one sheet (libxlsxwriter) or as CSV
 * fields: the one spreadsheet writer of the web API's exports and of the reports on the command
 * line. Cells are
 * text as PostgreSQL printed them; a numeric column's cells that parse as finite numbers are
 * written as numbers, everything else as strings (write_string never makes a formula, so text
 * needs no neutralising here). */
#ifndef HW_TABLE_H
#define HW_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "base/common.h"

typedef enum { HW_COL_TEXT = 0, HW_COL_NUM, HW_COL_INT, HW_COL_BOOL, HW_COL_TIME } hw_col_type;
typedef struct hw_table_col {
  const char *name;
  hw_col_type type;
} hw_table_col;

/* cell(row, col, arg): the text of a cell, NULL for none. */
typedef const char *(*hw_table_cell_fn)(size_t row, size_t col, void *arg);

/* Blocking (writes a temporary file and zips it): off the event loop. The workbook's bytes into
 * *out (malloc'd, the caller's to free) and *out_len; a bold header row of the column names.
 * 0, -EIO or -ENOMEM. */
int hw_xlsx_table(const hw_table_col *cols, size_t ncols, size_t nrows, hw_table_cell_fn cell,
                  void *arg, char **out, size_t *out_len) HW_MUST_CHECK;

/* Appends one CSV field (RFC 4180) for s to *buf (malloc'd and grown here, the caller's to free;
 * NUL-terminated): quoted when it must be; a text cell a spreadsheet would run as a formula (=,
 * +, -, @, or a tab or CR that some strip first) gets a leading apostrophe, shown as text and
 * never run. Numbers and times are left alone (a negative longitude stays a number). NULL is an
 * empty field. 0 or -ENOMEM. The one CSV writer of the web API's exports and the reports. */
int hw_csv_cell(char **buf, size_t *len, size_t *cap, const char *s, hw_col_type type) HW_MUST_CHECK;

/* Appends n raw bytes (a separator, a line end, a header already safe) to *buf as hw_csv_cell
 * does. 0 or -ENOMEM. */
int hw_csv_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n) HW_MUST_CHECK;

/* The same field written to f. 0, -ENOMEM or -EIO. */
int hw_csv_fput(FILE *f, const char *s, hw_col_type type) HW_MUST_CHECK;

#endif
