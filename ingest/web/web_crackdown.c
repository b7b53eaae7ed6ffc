/* GET /api/v1/crackdown/phaseout, /registry-audit, /offline-movers: the crackdown lists of
 * sinks/crackdown_query.h (the same query, request checks and audit rules as `haulwatch report`),
 * scoped to the user's regions, as JSON ({"items", "next_cursor": null, "truncated"}), CSV or
 * XLSX through web_table.c. Parameters: region, since (phaseout), from and to (offline-movers),
 * format, limit. Owns the call's request and result table until it is answered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/web_internal.h"

typedef struct hw_web_cd_state {
  hw_cd_request req;
  hw_web_format fmt;
  size_t limit;
  hw_cd_bufs bufs;
  const char *params[HW_CD_MAX_PARAMS];
  hw_cd_table table;
} hw_web_cd_state;

static void hw_web_cd_state_free(void *p) {
  hw_web_cd_state *st = p;
  hw_cd_table_free(&st->table);
  free(st);
}

static const char *hw_web_cd_cell(size_t row, size_t col, void *arg) {
  return hw_cd_cell(arg, row, col);
}

static void hw_web_cd_got(hw_web_call *call, const PGresult *res) {
  hw_web_cd_state *st = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, call->route->pattern);
    return;
  }
  int rc = hw_cd_table_build(&st->req, &call->app->cfg.crackdown, res, st->limit, &st->table);
  if (rc) {
    hw_web_reply_error(call, rc == -ENOMEM ? 503 : 500,
                       rc == -ENOMEM ? "out of memory" : "unexpected query result");
    return;
  }
  size_t ncols;
  const hw_web_col *cols = hw_cd_columns(st->req.list, &ncols);
  cJSON *extra = cJSON_CreateObject();
  if (extra)
    cJSON_AddBoolToObject(extra, "truncated", st->table.truncated);
  char filename[40];
  snprintf(filename, sizeof filename, "%s", hw_cd_list_name(st->req.list));
  hw_web_reply_table(call, st->fmt, filename, cols, ncols, st->table.nrows, hw_web_cd_cell,
                     &st->table, NULL, extra);
}

void hw_web_crackdown(hw_web_call *call) {
  const char *name = strrchr(call->route->pattern, '/') + 1;
  hw_web_cd_state *st = calloc(1, sizeof *st);
  if (!st) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  call->state = st;
  call->free_state = hw_web_cd_state_free;
  hw_cd_list list;
  if (hw_cd_list_of(name, &list)) {
    hw_web_reply_error(call, 404, "no such list");
    return;
  }
  char region[16], since[16], from[16], to[16], limit[16], err[160];
  if (hw_web_format_of(call, &st->fmt)) {
    hw_web_reply_error(call, 400, "format is json, csv or xlsx");
    return;
  }
  if (hw_web_qparam(call, "region", region, sizeof region) < 0 ||
      hw_web_qparam(call, "since", since, sizeof since) < 0 ||
      hw_web_qparam(call, "from", from, sizeof from) < 0 ||
      hw_web_qparam(call, "to", to, sizeof to) < 0 ||
      hw_web_qparam(call, "limit", limit, sizeof limit) < 0) {
    hw_web_reply_error(call, 400, "a query parameter is malformed or too long");
    return;
  }
  if (hw_cd_request_parse(&st->req, list, region, since, from, to, err, sizeof err)) {
    hw_web_reply_error(call, 400, err);
    return;
  }
  /* A list is one answer (no cursor): at most page_max rows in JSON, export_max_rows in a file;
   * truncated says when there were more. */
  unsigned max = st->fmt == HW_FMT_JSON ? call->app->cfg.page_max : call->app->cfg.export_max_rows;
  st->limit = max;
  if (limit[0]) {
    char *end;
    unsigned long n = strtoul(limit, &end, 10);
    if (*end || limit[0] == '-' || n < 1 || n > max) {
      hw_web_reply_error(call, 400, "limit is a whole number within the maximum");
      return;
    }
    st->limit = n;
  }
  int np = hw_cd_bind(&st->req, &call->app->cfg.crackdown, call->user.scope, &st->bufs, st->params);
  if (hw_web_query_read(call, hw_cd_sql(list), np, st->params, hw_web_cd_got)) {
  }
}
