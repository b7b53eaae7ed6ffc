#include "base/table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

int hw_xlsx_table(const hw_table_col *cols, size_t ncols, size_t nrows, hw_table_cell_fn cell,
                  void *arg, char **out, size_t *out_len) {
  char path[] = "/tmp/haulwatch-xlsx-XXXXXX";
  int fd = mkstemp(path), ret = -EIO;
  FILE *f = NULL;
  char *buf = NULL;
  *out = NULL;
  *out_len = 0;
  if (fd < 0)
    return -EIO;
  close(fd);
  lxw_workbook *wb = workbook_new(path);
  if (!wb)
    goto cleanup;
  lxw_worksheet *ws = workbook_add_worksheet(wb, NULL);
  lxw_format *bold = workbook_add_format(wb);
  format_set_bold(bold);
  for (size_t c = 0; c < ncols; c++)
    worksheet_write_string(ws, 0, (lxw_col_t)c, cols[c].name, bold);
  for (size_t r = 0; r < nrows; r++)
    for (size_t c = 0; c < ncols; c++) {
      const char *s = cell(r, c, arg);
      if (!s)
        continue;
      char *end;
      double d;
      if ((cols[c].type == HW_COL_NUM || cols[c].type == HW_COL_INT) &&
          (d = strtod(s, &end), end != s && !*end && isfinite(d)))
        worksheet_write_number(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, d, NULL);
      else
        worksheet_write_string(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, s, NULL);
    }
  if (workbook_close(wb) != LXW_NO_ERROR)
    goto cleanup;
  f = fopen(path, "rb");
  if (!f || fseek(f, 0, SEEK_END))
    goto cleanup;
  long size = ftell(f);
  if (size <= 0 || fseek(f, 0, SEEK_SET))
    goto cleanup;
  if (!(buf = malloc((size_t)size))) {
    ret = -ENOMEM;
    goto cleanup;
  }
  if (fread(buf, 1, (size_t)size, f) != (size_t)size)
    goto cleanup;
  *out = buf;
  *out_len = (size_t)size;
  buf = NULL;
  ret = 0;
cleanup:
  free(buf);
  if (f)
    fclose(f);
  unlink(path);
  return ret;
}

int hw_csv_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < *len + n + 1)
      ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb)
      return -ENOMEM;
    *buf = nb;
    *cap = ncap;
  }
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = 0;
  return 0;
}

int hw_csv_cell(char **buf, size_t *len, size_t *cap, const char *s, hw_col_type type) {
  if (!s)
    return 0; /* an empty field */
  /* A text cell a spreadsheet would read as a formula (=, +, -, @, or a tab or CR that some
   * strip first) gets a leading apostrophe: shown as text, never run. Numbers and times come
   * from the database and are left alone (a negative longitude stays a number). */
  int neutralise = type == HW_COL_TEXT && strchr("=+-@\t\r", s[0]) && s[0];
  int quote = neutralise || strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ';
  int rc = 0;
  if (quote)
    rc |= hw_csv_put(buf, len, cap, "\"", 1);
  if (neutralise)
    rc |= hw_csv_put(buf, len, cap, "'", 1);
  for (const char *p = s; *p && !rc;) {
    size_t n = strcspn(p, "\"");
    rc |= hw_csv_put(buf, len, cap, p, n);
    p += n;
    if (*p == '"') {
      rc |= hw_csv_put(buf, len, cap, "\"\"", 2);
      p++;
    }
  }
  if (quote)
    rc |= hw_csv_put(buf, len, cap, "\"", 1);
  return rc ? -ENOMEM : 0;
}

int hw_csv_fput(FILE *f, const char *s, hw_col_type type) {
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = hw_csv_cell(&buf, &len, &cap, s, type);
  if (rc == 0 && len && fwrite(buf, 1, len, f) != len)
    rc = -EIO;
  free(buf);
  return rc;
}
