/* List answers: one table of typed cells written as JSON ({"items": [...], "next_cursor"}), CSV
 * (RFC 4180, formula injection neutralised) or XLSX (base/table.h, built on the thread pool
 * since it writes a temporary file and zips it). Owns the buffers it builds; an XLSX job owns a
 * copy of every cell until its answer is sent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "web/web_internal.h"

int hw_web_format_of(hw_web_call *call, hw_web_format *out) {
  char f[16];
  int rc = hw_web_qparam(call, "format", f, sizeof f);
  *out = HW_FMT_JSON;
  if (rc < 0)
    return -EINVAL;
  if (rc == 0 || !strcmp(f, "json"))
    return 0;
  if (!strcmp(f, "csv")) {
    *out = HW_FMT_CSV;
    return 0;
  }
  if (!strcmp(f, "xlsx")) {
    *out = HW_FMT_XLSX;
    return 0;
  }
  return -EINVAL;
}

static cJSON *hw_web_cell_json(const char *s, hw_col_type type) {
  if (!s)
    return cJSON_CreateNull();
  switch (type) {
  case HW_COL_NUM:
  case HW_COL_INT: {
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !isfinite(d))
      return cJSON_CreateNull();
    if (type == HW_COL_INT && strlen(s) > 15)
      return cJSON_CreateString(s); /* beyond a double's exact integers: keep every digit */
    return cJSON_CreateNumber(d);
  }
  case HW_COL_BOOL:
    return cJSON_CreateBool(s[0] == 't' || s[0] == '1');
  default:
    return cJSON_CreateString(s);
  }
}

typedef struct hw_web_xlsx_job {
  uv_work_t work;
  hw_web_call *call;
  hw_web *app;
  size_t ncols, nrows;
  const hw_web_col *cols; /* static tables of the routes */
  char **cells;           /* owned: nrows * ncols, NULL for no value */
  char *out;              /* owned: the file's bytes */
  size_t out_len;
  int failed;
  char filename[64];
} hw_web_xlsx_job;

static void hw_web_xlsx_free(void *p) {
  hw_web_xlsx_job *j = p;
  if (j->cells)
    for (size_t i = 0; i < j->nrows * j->ncols; i++)
      free(j->cells[i]);
  free(j->cells);
  free(j->out);
  free(j);
}

static const char *hw_web_xlsx_cell(size_t row, size_t col, void *arg) {
  const hw_web_xlsx_job *j = arg;
  return j->cells[row * j->ncols + col];
}

/* On the thread pool: no loop, no call, only the job's own copy of the cells. */
static void hw_web_xlsx_work(uv_work_t *w) {
  hw_web_xlsx_job *j = w->data;
  j->failed = hw_xlsx_table(j->cols, j->ncols, j->nrows, hw_web_xlsx_cell, j, &j->out,
                            &j->out_len) != 0;
}

static void hw_web_xlsx_after(uv_work_t *w, int status) {
  hw_web_xlsx_job *j = w->data;
  hw_web_call *call = j->call;
  hw_web *app = j->app;
  int alive = hw_web_async_done(call);
  hw_web_release(app);
  if (!alive)
    return;
  if (status || j->failed) {
    hw_error(HW_WEB_COMPONENT, NULL, "export %s.xlsx for user=%s failed", j->filename,
             call->user.name);
    hw_web_reply_error(call, 500, "the spreadsheet could not be made");
    return;
  }
  char disp[128];
  snprintf(disp, sizeof disp, "attachment; filename=\"%s.xlsx\"", j->filename);
  if (hw_http_add_header(call->req, "Content-Disposition", disp)) {
  }
  hw_web_reply_raw(call, 200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                   j->out, j->out_len);
}

void hw_web_reply_table(hw_web_call *call, hw_web_format fmt, const char *filename,
                        const hw_web_col *cols, size_t ncols, size_t nrows,
                        const char *(*cell)(size_t row, size_t col, void *arg), void *arg,
                        const char *next_cursor, cJSON *extra) {
  if (fmt == HW_FMT_JSON) {
    cJSON *o = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (size_t r = 0; r < nrows; r++) {
      cJSON *it = cJSON_CreateObject();
      for (size_t c = 0; c < ncols; c++)
        cJSON_AddItemToObject(it, cols[c].name, hw_web_cell_json(cell(r, c, arg), cols[c].type));
      cJSON_AddItemToArray(items, it);
    }
    cJSON_AddItemToObject(o, "next_cursor",
                          next_cursor ? cJSON_CreateString(next_cursor) : cJSON_CreateNull());
    while (extra && extra->child) {
      cJSON *m = cJSON_DetachItemViaPointer(extra, extra->child);
      cJSON_AddItemToObject(o, m->string, m);
    }
    cJSON_Delete(extra);
    hw_web_reply_json(call, 200, o);
    return;
  }
  cJSON_Delete(extra);
  char disp[128];
  if (fmt == HW_FMT_CSV) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (size_t c = 0; c < ncols; c++)
      rc |= hw_csv_put(&buf, &len, &cap, cols[c].name, strlen(cols[c].name)) |
            hw_csv_put(&buf, &len, &cap, c + 1 < ncols ? "," : "\r\n", c + 1 < ncols ? 1 : 2);
    for (size_t r = 0; r < nrows && !rc; r++)
      for (size_t c = 0; c < ncols; c++)
        rc |= hw_csv_cell(&buf, &len, &cap, cell(r, c, arg), cols[c].type) |
              hw_csv_put(&buf, &len, &cap, c + 1 < ncols ? "," : "\r\n", c + 1 < ncols ? 1 : 2);
    if (rc) {
      free(buf);
      hw_web_reply_error(call, 503, "out of memory");
      return;
    }
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.csv\"", filename);
    if (hw_http_add_header(call->req, "Content-Disposition", disp)) {
    }
    hw_web_reply_raw(call, 200, "text/csv; charset=utf-8", buf, len);
    free(buf);
    return;
  }
  hw_web_xlsx_job *j = calloc(1, sizeof *j);
  if (!j || !(j->cells = calloc(nrows * ncols + 1, sizeof *j->cells))) {
    free(j);
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  j->call = call;
  j->app = call->app;
  j->ncols = ncols;
  j->nrows = nrows;
  j->cols = cols;
  snprintf(j->filename, sizeof j->filename, "%s", filename);
  for (size_t r = 0; r < nrows; r++)
    for (size_t c = 0; c < ncols; c++) {
      const char *s = cell(r, c, arg);
      if (s && !(j->cells[r * ncols + c] = strdup(s))) {
        hw_web_xlsx_free(j);
        hw_web_reply_error(call, 503, "out of memory");
        return;
      }
    }
  j->work.data = j;
  if (call->free_state)
    call->free_state(call->state);
  call->state = j;
  call->free_state = hw_web_xlsx_free;
  if (uv_queue_work(call->app->loop, &j->work, hw_web_xlsx_work, hw_web_xlsx_after)) {
    hw_web_reply_error(call, 503, "try again");
    return;
  }
  hw_web_hold(call->app);
  hw_web_async_begin(call);
}
