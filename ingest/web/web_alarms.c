/* GET /api/v1/alarms: the active-safety alarms (safety_alarms, schema 022) within the user's
 * regions, newest first, filtered like `haulwatch alarms list`, paged with a cursor, as JSON, CSV
 * or XLSX. An alarm's region is its vehicle's (the registry's, now); alarms of terminals bound to
 * no vehicle are seen only by users whose scope is everything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/web_internal.h"

#define HW_ISO(col) "to_json(" col ")#>>'{}'"

static const hw_web_col hw_alarm_cols[] = {
    {"id", HW_COL_INT},          {"terminal_id", HW_COL_TEXT}, {"vehicle", HW_COL_TEXT},
    {"region", HW_COL_TEXT},     {"enterprise", HW_COL_TEXT},  {"kind", HW_COL_TEXT},
    {"type", HW_COL_INT},        {"level", HW_COL_INT},        {"alarm_at", HW_COL_TIME},
    {"lat", HW_COL_NUM},         {"lon", HW_COL_NUM},          {"speed_kmh", HW_COL_INT},
    {"alarm_no", HW_COL_TEXT},   {"attachments", HW_COL_INT},  {"fields", HW_COL_TEXT},
};
#define HW_ALARM_NCOLS HW_ARRAY_SIZE(hw_alarm_cols)

typedef struct hw_alarms_state {
  hw_web_format fmt;
  unsigned limit;
} hw_alarms_state;

static const char *hw_alarm_cell(size_t row, size_t col, void *arg) {
  const PGresult *res = arg;
  return PQgetisnull(res, (int)row, (int)col) ? NULL : PQgetvalue(res, (int)row, (int)col);
}

static void hw_alarms_listed(hw_web_call *call, const PGresult *res) {
  hw_alarms_state *st = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "alarms list");
    return;
  }
  size_t n = (size_t)PQntuples(res);
  char cursor[48], *next = NULL;
  if (n > st->limit) {
    n = st->limit;
    snprintf(cursor, sizeof cursor, "%s_%s", PQgetvalue(res, (int)n - 1, (int)HW_ALARM_NCOLS),
             PQgetvalue(res, (int)n - 1, 0));
    next = cursor;
  }
  hw_web_reply_table(call, st->fmt, "alarms", hw_alarm_cols, HW_ALARM_NCOLS, n, hw_alarm_cell,
                     (void *)res, next, NULL);
}

void hw_web_alarms_list(hw_web_call *call) {
  hw_alarms_state *st = calloc(1, sizeof *st);
  if (!st) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  call->state = st;
  call->free_state = free;
  char kind[16], tid[40], since[72], until[72], cursor[48], region[16], level[8];
  char regpat[8], limit[16], c_us[24], c_id[24], lim[16];
  if (hw_web_format_of(call, &st->fmt)) {
    hw_web_reply_error(call, 400, "format is json, csv or xlsx");
    return;
  }
  unsigned max = st->fmt == HW_FMT_JSON ? call->app->cfg.page_max : call->app->cfg.export_max_rows;
  if (hw_web_qparam(call, "kind", kind, sizeof kind) < 0 ||
      hw_web_qparam(call, "terminal_id", tid, sizeof tid) < 0 ||
      hw_web_qparam(call, "since", since, sizeof since) < 0 ||
      hw_web_qparam(call, "until", until, sizeof until) < 0 ||
      hw_web_qparam(call, "region", region, sizeof region) < 0 ||
      hw_web_qparam(call, "level", level, sizeof level) < 0 ||
      hw_web_qparam(call, "cursor", cursor, sizeof cursor) < 0 ||
      hw_web_qparam(call, "limit", lim, sizeof lim) < 0) {
    hw_web_reply_error(call, 400, "a query parameter is malformed or too long");
    return;
  }
  st->limit = st->fmt == HW_FMT_JSON ? (max < 100 ? max : 100) : max;
  if (lim[0]) {
    char *end;
    unsigned long v = strtoul(lim, &end, 10);
    if (*end || lim[0] == '-' || v < 1 || v > max) {
      hw_web_reply_error(call, 400, "limit is a whole number within the maximum");
      return;
    }
    st->limit = (unsigned)v;
  }
  if (kind[0] && strcmp(kind, "adas") && strcmp(kind, "dsm") && strcmp(kind, "tpms") &&
      strcmp(kind, "bsd")) {
    hw_web_reply_error(call, 400, "kind is adas, dsm, tpms or bsd");
    return;
  }
  if (level[0] && strcmp(level, "1") && strcmp(level, "2")) {
    hw_web_reply_error(call, 400, "level is 1 or 2");
    return;
  }
  if (hw_web_list_filters(call, tid, region, regpat, cursor, c_us, c_id))
    return;
  snprintf(limit, sizeof limit, "%u", st->limit + 1);
  const char *params[12];
  int np = 0;
  char where[1024] = "coalesce(v.region, '') LIKE ANY($1::text[])";
  params[np++] = call->user.scope;
  if (kind[0]) { params[np++] = kind; hw_web_add_pred(where, sizeof where, "a.kind = $%d", np); }
  if (level[0]) { params[np++] = level; hw_web_add_pred(where, sizeof where, "a.level = $%d::smallint", np); }
  if (tid[0]) { params[np++] = tid; hw_web_add_pred(where, sizeof where, "a.terminal_id = $%d", np); }
  if (region[0]) { params[np++] = regpat; hw_web_add_pred(where, sizeof where, "v.region LIKE $%d", np); }
  if (since[0]) { params[np++] = since; hw_web_add_pred(where, sizeof where, "a.alarm_at >= $%d::timestamptz", np); }
  if (until[0]) { params[np++] = until; hw_web_add_pred(where, sizeof where, "a.alarm_at < $%d::timestamptz", np); }
  if (cursor[0]) {
    params[np++] = c_us;
    params[np++] = c_id;
    hw_web_add_keyset(where, sizeof where, "a.alarm_at", "a.id", np - 1);
  }
  params[np++] = limit;
  char sql[2048];
  snprintf(sql, sizeof sql,
           "SELECT a.id, a.terminal_id, a.vehicle, v.region, v.enterprise, a.kind, a.type, "
           "a.level, " HW_ISO("a.alarm_at") ", a.lat, a.lon, a.speed_kmh, a.alarm_no, "
           "a.attachments, a.fields::text, (extract(epoch FROM a.alarm_at) * 1000000)::bigint "
           "FROM safety_alarms a LEFT JOIN vehicles v ON v.terminal_id = a.terminal_id "
           "WHERE %s ORDER BY a.alarm_at DESC, a.id DESC LIMIT $%d",
           where, np);
  if (hw_web_query(call, sql, np, params, hw_alarms_listed)) {
  }
}
