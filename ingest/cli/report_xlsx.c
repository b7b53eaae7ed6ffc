/* The report document (report_doc.h) as an XLSX workbook (libxlsxwriter): one sheet per table,
 * named by the table's id, with the title (and note) above the header row. Cells of numeric
 * columns are numbers; everything else is written as a string, never as a formula, so hostile
 * text from the registry stays text. libxlsxwriter writes to its own temporary files and zips
 * them into path when the workbook closes. */
#include <math.h>
#include <stdlib.h>
#include <xlsxwriter.h>

#include "base/log.h"
#include "cli/report_doc.h"

int hw_report_xlsx_write(const char *path, const hw_rdoc *d) {
  lxw_workbook *wb = workbook_new(path);
  if (!wb) {
    hw_error("report", path, "cannot create the workbook");
    return -EIO;
  }
  lxw_format *bold = workbook_add_format(wb);
  if (bold)
    format_set_bold(bold);
  int rc = 0;
  for (size_t i = 0; i < d->n && !rc; i++) {
    const hw_rtable *t = d->t[i];
    lxw_worksheet *ws = workbook_add_worksheet(wb, t->id);
    if (!ws) {
      rc = -EIO;
      break;
    }
    lxw_row_t row = 0;
    lxw_error e = worksheet_write_string(ws, row++, 0, t->title, bold);
    if (t->note && !e)
      e = worksheet_write_string(ws, row++, 0, t->note, NULL);
    for (int c = 0; c < t->ncols && !e; c++)
      e = worksheet_write_string(ws, row, (lxw_col_t)c, t->heads[c], bold);
    row++;
    for (int r = 0; r < t->nrows && !e; r++, row++)
      for (int c = 0; c < t->ncols && !e; c++) {
        const char *s = hw_rdoc_cell(t, r, c);
        char *end;
        double v;
        if (!s || !*s)
          continue; /* a null stays an empty cell */
        if (t->numeric & (1u << c) && (v = strtod(s, &end), !*end && isfinite(v)))
          e = worksheet_write_number(ws, row, (lxw_col_t)c, v, NULL);
        else
          e = worksheet_write_string(ws, row, (lxw_col_t)c, s, NULL);
      }
    if (e) {
      hw_error("report", path, "sheet %s: %s", t->id, lxw_strerror(e));
      rc = -EIO;
    }
  }
  lxw_error e = workbook_close(wb); /* frees wb whatever happened */
  if (e != LXW_NO_ERROR) {
    hw_error("report", path, "cannot write the workbook: %s", lxw_strerror(e));
    rc = -EIO;
  }
  return rc;
}
