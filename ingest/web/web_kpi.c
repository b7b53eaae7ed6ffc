/* GET /api/v1/kpi and GET /api/v1/kpi/daily: the assessment KPIs of `haulwatch report kpi`
 * (sinks/kpi_query.h: the same statement, parameters and field names, the score with the web
 * command's --score-* settings) and their trend per day for the page's KPI panel. Scoped like
 * every read: no region means the user's regions; a region outside them is not found (404), so
 * its existence is not told. Owns its state until the answer is sent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/kpi_query.h"
#include "web/web_internal.h"

typedef struct hw_web_kpi_state {
  hw_web_format fmt;
  int daily;
  char filename[64];
} hw_web_kpi_state;

static const char *hw_web_kpi_cell(size_t row, size_t col, void *arg) {
  const PGresult *res = arg;
  return PQgetisnull(res, (int)row, (int)col) ? NULL : PQgetvalue(res, (int)row, (int)col);
}

static void hw_web_kpi_done(hw_web_call *call, const PGresult *res) {
  hw_web_kpi_state *ks = call->state;
  size_t ncols = ks->daily ? HW_KPI_DAILY_NCOLS : HW_KPI_NCOLS;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQnfields(res) != ncols) {
    hw_web_reply_pg_error(call, res, call->route->pattern);
    return;
  }
  hw_web_reply_table(call, ks->fmt, ks->filename, ks->daily ? hw_kpi_daily_cols : hw_kpi_cols,
                     ncols, (size_t)PQntuples(res), hw_web_kpi_cell, (void *)res, NULL, NULL);
}

/* The request's error for a person, without the command line's "--" before the names. */
static void hw_web_kpi_bad(hw_web_call *call, const char *err) {
  char msg[200];
  size_t n = 0;
  for (const char *p = err; *p && n + 1 < sizeof msg; p++)
    if (!(p[0] == '-' && p[1] == '-') && !(p[0] == '-' && p > err && p[-1] == '-'))
      msg[n++] = *p;
  msg[n] = 0;
  hw_web_reply_error(call, 400, msg);
}

static void hw_web_kpi_common(hw_web_call *call, int daily) {
  char from[16], to[16], region[16], by[16], level[16];
  if (hw_web_qparam(call, "from", from, sizeof from) < 0 ||
      hw_web_qparam(call, "to", to, sizeof to) < 0 ||
      hw_web_qparam(call, "region", region, sizeof region) < 0 ||
      hw_web_qparam(call, "by", by, sizeof by) < 0 ||
      hw_web_qparam(call, "level", level, sizeof level) < 0) {
    hw_web_reply_error(call, 400, "a query parameter is malformed or too long");
    return;
  }
  hw_web_format fmt;
  if (hw_web_format_of(call, &fmt)) {
    hw_web_reply_error(call, 400, "format is json, csv or xlsx");
    return;
  }
  hw_kpi_request q;
  char err[160];
  if (hw_kpi_request_parse(&q, from, to, region, by, level, err, sizeof err)) {
    hw_web_kpi_bad(call, err);
    return;
  }
  if (daily && q.to_day - q.from_day >= HW_KPI_DAILY_MAX_DAYS) {
    hw_web_reply_error(call, 400, "the daily trend covers at most " HW_XSTR(HW_KPI_DAILY_MAX_DAYS) " days");
    return;
  }
  if (region[0] && !hw_web_user_sees(&call->user, region)) {
    hw_web_reply_error(call, 404, "no such region");
    return;
  }
  hw_web_kpi_state *ks = calloc(1, sizeof *ks);
  if (!ks) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  ks->fmt = fmt;
  ks->daily = daily;
  snprintf(ks->filename, sizeof ks->filename, "kpi%s-%s-%s%s%s", daily ? "-daily" : "", from, to,
           region[0] ? "-" : "", region);
  call->state = ks;
  call->free_state = free;
  q.score = call->app->cfg.kpi_score;
  q.scope = call->user.scope;
  hw_kpi_bufs bufs;
  const char *params[HW_KPI_NPARAMS];
  hw_kpi_bind(&q, &bufs, params); /* hw_web_query copies them */
  /* The statement can run for seconds over a province (README, "KPIs"): bounded, so that a
   * request cannot hold a pool connection for longer than kpi_timeout_ms. */
  if (hw_web_query_read_timed(call, daily ? hw_kpi_daily_sql : hw_kpi_sql, HW_KPI_NPARAMS,
                              params, call->app->cfg.kpi_timeout_ms, hw_web_kpi_done)) {
  }
}

/* GET /api/v1/kpi?from&to[&region][&by][&level][&format]: {"items": [one object per group with
 * the columns of report kpi], "next_cursor": null}, or a CSV / XLSX file of the same rows. */
void hw_web_kpi(hw_web_call *call) { hw_web_kpi_common(call, 0); }

/* GET /api/v1/kpi/daily?from&to[&region][&format]: one item per day of the period (at most
 * HW_KPI_DAILY_MAX_DAYS), the figures of sinks/kpi_query.h's hw_kpi_daily_sql. */
void hw_web_kpi_daily(hw_web_call *call) { hw_web_kpi_common(call, 1); }
