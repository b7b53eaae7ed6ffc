/* haulwatch report rebuild|kpi: the assessment KPIs (README, "KPIs"). `rebuild` recomputes the
 * daily figures per vehicle (vehicle_daily) from `positions` with the daemon's own accumulator
 * (rules/daystats.h through sinks/daily_store.h); `kpi` sums them per group with the one query
 * the web API also runs (sinks/kpi_query.h) and prints a table, CSV or JSON. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"
#include "base/table.h"
#include "base/text.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "rules/quality.h"
#include "sinks/crackdown_query.h"
#include "sinks/daily_store.h"
#include "sinks/kpi_query.h"
#include "sinks/platform_kpi.h"

#define HW_REPORT_SCHEMA 17 /* vehicle_daily (012), platform_links and inspections (016), vehicle_monthly (017) */

/* --- report rebuild --- */

typedef struct hw_rebuild_settings {
  char pg[1024];
  char from[16];
  char to[16];
  char terminal[64];
  /* The daemon's settings of the same names (serve): the rebuild must judge as it did. */
  uint32_t max_future_s;
  uint32_t track_gap_s;
  uint32_t drift_kmh;
  uint32_t qualified_max_speed_kmh;
} hw_rebuild_settings;

#define C hw_rebuild_settings
static const hw_option hw_rebuild_options[] = {
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(C, from, NULL, NULL, "first day (YYYY-MM-DD, GMT+8)"),
    HW_OPT_S(C, to, NULL, NULL, "last day, included"),
    HW_OPT_S(C, terminal, NULL, NULL, "only this terminal"),
    HW_OPT_N(C, max_future_s, HW_XSTR(HW_QUALITY_DEF_MAX_FUTURE_S), 0, 86400 * 365, NULL, "as serve: device time may be this far after receipt, s"),
    HW_OPT_N(C, track_gap_s, HW_XSTR(HW_DAYSTATS_DEF_TRACK_GAP_S), 1, 86400, NULL, "as serve: a track segment longer than this is incomplete, s"),
    HW_OPT_N(C, drift_kmh, HW_XSTR(HW_DAYSTATS_DEF_DRIFT_KMH), 1, 100000, NULL, "as serve: implied speed of a drift point, km/h"),
    HW_OPT_N(C, qualified_max_speed_kmh, HW_XSTR(HW_DAYSTATS_DEF_MAX_SPEED_KMH), 1, 2000, NULL, "as serve: highest valid reported speed, km/h"),
};
#undef C

static const char hw_rebuild_usage[] =
    "usage: haulwatch report rebuild --from YYYY-MM-DD --to YYYY-MM-DD [--terminal ID] [--pg CONNINFO]\n"
    "\n"
    "Recomputes the daily figures per vehicle of the days from --from to --to (GMT+8) from the\n"
    "stored fixes and replaces those rows of vehicle_daily, in one transaction. Give it the\n"
    "settings serve runs with (--config FILE takes the same file). Each vehicle's track starts from\n"
    "the row before --from; days after --to are not touched.";

typedef struct hw_rebuild_sink {
  PGconn *w; /* the writing connection (the other one streams the fixes) */
  char (*tids)[HW_TID_WIDE_MAX + 1];
  hw_day_figures *rows;
  size_t n;
  size_t written;
} hw_rebuild_sink;

#define HW_REBUILD_CHUNK 2000

static int hw_rebuild_flush(hw_rebuild_sink *k) {
  const char *tids[HW_REBUILD_CHUNK];
  for (size_t i = 0; i < k->n; i++)
    tids[i] = k->tids[i];
  int rc = k->n ? hw_daily_upsert(k->w, tids, k->rows, k->n) : 0;
  k->written += k->n;
  k->n = 0;
  return rc;
}

static int hw_rebuild_row(void *arg, const char *t, const hw_day_figures *f) {
  hw_rebuild_sink *k = arg;
  snprintf(k->tids[k->n], sizeof k->tids[0], "%s", t);
  k->rows[k->n++] = *f;
  return k->n == HW_REBUILD_CHUNK ? hw_rebuild_flush(k) : 0;
}

static int hw_report_rebuild(int argc, char **argv) {
  hw_rebuild_settings s;
  memset(&s, 0, sizeof s);
  int npos, rc = hw_options_parse(hw_rebuild_options, HW_ARRAY_SIZE(hw_rebuild_options), &s, argc,
                                  argv, hw_rebuild_usage, NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  int32_t from, to;
  if (hw_daily_day_parse(s.from, &from) || hw_daily_day_parse(s.to, &to) || from > to) {
    fprintf(stderr, "report rebuild: --from and --to are days YYYY-MM-DD (2000..2099), --from first\n");
    return 2;
  }
  if (s.terminal[0] && hw_stored_tid_check(s.terminal, strlen(s.terminal))) {
    fprintf(stderr, "report rebuild: '%s' is not a terminal id\n", s.terminal);
    return 2;
  }
  hw_daystats_config cfg;
  hw_daystats_config_default(&cfg);
  cfg.max_future_ms = (int64_t)s.max_future_s * 1000;
  cfg.track_gap_ms = (int64_t)s.track_gap_s * 1000;
  cfg.drift_dkmh = s.drift_kmh * 10;
  cfg.max_speed_dkmh = s.qualified_max_speed_kmh * 10;
  PGconn *r = NULL, *w = NULL;
  hw_rebuild_sink k = {0};
  int ret = 1;
  if (hw_cli_pg_connect(s.pg, HW_REPORT_SCHEMA, &r) || hw_cli_pg_connect(s.pg, HW_REPORT_SCHEMA, &w))
    goto out;
  k.w = w;
  k.tids = malloc(HW_REBUILD_CHUNK * sizeof *k.tids);
  k.rows = malloc(HW_REBUILD_CHUNK * sizeof *k.rows);
  if (!k.tids || !k.rows) {
    fprintf(stderr, "report rebuild: out of memory\n");
    goto out;
  }
  char fs[16], ts[16];
  snprintf(fs, sizeof fs, "%d", from);
  snprintf(ts, sizeof ts, "%d", to);
  const char *dp[3] = {fs, ts, s.terminal[0] ? s.terminal : NULL};
  if (hw_cli_pg_exec(w, "report rebuild", "BEGIN"))
    goto out;
  PGresult *res = PQexecParams(w,
                               "DELETE FROM vehicle_daily WHERE day BETWEEN date '1970-01-01' + "
                               "$1::integer AND date '1970-01-01' + $2::integer "
                               "AND ($3::text IS NULL OR terminal_id = $3)",
                               3, NULL, dp, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_cli_pg_report("report rebuild", "cannot clear the days", res);
    PQclear(res);
    goto out;
  }
  long deleted = atol(PQcmdTuples(res));
  PQclear(res);
  if (hw_daily_recompute(r, &cfg, s.terminal[0] ? s.terminal : NULL, from, to, 0, NULL,
                         hw_rebuild_row, NULL, &k) ||
      hw_rebuild_flush(&k)) {
    fprintf(stderr, "report rebuild: failed, nothing changed (see the log above)\n");
    goto out;
  }
  if (hw_cli_pg_exec(w, "report rebuild", "COMMIT"))
    goto out;
  printf("rebuilt %s..%s: %zu vehicle-days written, %ld replaced\n", s.from, s.to, k.written, deleted);
  ret = 0;
out:
  free(k.tids);
  free(k.rows);
  if (r)
    PQfinish(r);
  if (w)
    PQfinish(w); /* an open transaction rolls back */
  return ret;
}

/* --- report kpi --- */

typedef struct hw_kpi_settings {
  char pg[1024];
  char from[16];
  char to[16];
  char region[16];
  char by[16];
  char level[16];
  char format[8];
  hw_kpi_score_cfg score;
} hw_kpi_settings;

#define C hw_kpi_settings
static const hw_option hw_kpi_options[] = {
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(C, from, NULL, NULL, "first day (YYYY-MM-DD, GMT+8)"),
    HW_OPT_S(C, to, NULL, NULL, "last day, included"),
    HW_OPT_S(C, region, NULL, NULL, "only this GB/T 2260 region and what lies under it (320200: the city and its counties)"),
    HW_OPT_S(C, by, "region", NULL, "one row per region, enterprise or class"),
    HW_OPT_S(C, level, NULL, NULL, "with --by region: province, city or county (default: one below --region, city without it)"),
    HW_OPT_S(C, format, "table", NULL, "table, csv, json or xlsx (xlsx: the workbook on standard output, which must not be a terminal)"),
    HW_KPI_SCORE_OPTIONS(C, score),
};
#undef C

static const char hw_kpi_usage[] =
    "usage: haulwatch report kpi --from YYYY-MM-DD --to YYYY-MM-DD [--region CODE]\n"
    "                            [--by region|enterprise|class] [--level province|city|county]\n"
    "                            [--format table|csv|json|xlsx] [--pg CONNINFO]\n"
    "\n"
    "The assessment KPIs of each group for the period (README, \"KPIs\"). Rates are fractions;\n"
    "one whose denominator is zero is empty (table, CSV) or null (JSON). The score (of 100)\n"
    "follows the 2016 score table with the --score-* settings.";

/* Prints res (column 0 text, the others numbers or NULL) as JSON objects named by cols. */
static int hw_report_print_json(const PGresult *res, const char *const *cols, int ncols) {
  cJSON *arr = cJSON_CreateArray();
  if (!arr)
    return -ENOMEM;
  for (int r = 0; r < PQntuples(res); r++) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o))
      goto oom;
    for (int c = 0; c < ncols; c++) {
      cJSON *v;
      if (PQgetisnull(res, r, c))
        v = cJSON_CreateNull();
      else if (c == 0)
        v = cJSON_CreateString(PQgetvalue(res, r, c));
      else
        v = cJSON_CreateRaw(PQgetvalue(res, r, c)); /* a number as PostgreSQL printed it */
      if (!v || !cJSON_AddItemToObject(o, cols[c], v)) {
        cJSON_Delete(v);
        goto oom;
      }
    }
  }
  char *text = cJSON_Print(arr);
  cJSON_Delete(arr);
  if (!text)
    return -ENOMEM;
  puts(text);
  cJSON_free(text);
  return 0;
oom:
  cJSON_Delete(arr);
  return -ENOMEM;
}

/* Both reports' rows are a group's or a platform's name, then numbers: the name is the one text
 * cell (a hostile enterprise name never becomes a spreadsheet formula). 0 or -ENOMEM. */
static int hw_report_print_csv(const PGresult *res, const char *const *cols, int ncols) {
  for (int r = -1; r < PQntuples(res); r++)
    for (int c = 0; c < ncols; c++) {
      if (hw_csv_fput(stdout, r < 0 ? cols[c] : PQgetvalue(res, r, c),
                      r < 0 || c == 0 ? HW_COL_TEXT : HW_COL_NUM))
        return -ENOMEM;
      fputs(c == ncols - 1 ? "\r\n" : ",", stdout);
    }
  return 0;
}

static void hw_report_print_table(const PGresult *res, const char *const *cols, int ncols) {
  int n = PQntuples(res);
  size_t width[32];
  if (ncols > 32)
    ncols = 32;
  for (int c = 0; c < ncols; c++) {
    width[c] = strlen(cols[c]);
    for (int r = 0; r < n; r++) {
      size_t w = hw_utf8_display_width(PQgetvalue(res, r, c));
      if (w > width[c])
        width[c] = w;
    }
  }
  for (int r = -1; r < n; r++) {
    for (int c = 0; c < ncols; c++) {
      const char *s = r < 0 ? cols[c] : PQgetvalue(res, r, c);
      size_t w = hw_utf8_display_width(s);
      /* Numbers right-aligned, the group left. */
      if (c > 0)
        for (; w < width[c]; w++)
          fputc(' ', stdout);
      fputs(s, stdout);
      if (c == 0)
        for (; w < width[c]; w++)
          fputc(' ', stdout);
      fputs(c == ncols - 1 ? "\n" : "  ", stdout);
    }
  }
}

/* A cell of the KPI result for the workbook: NULL when SQL NULL. */
static const char *hw_kpi_cell(size_t row, size_t col, void *arg) {
  const PGresult *res = arg;
  return PQgetisnull(res, (int)row, (int)col) ? NULL : PQgetvalue(res, (int)row, (int)col);
}

static int hw_report_kpi(int argc, char **argv) {
  hw_kpi_settings s;
  memset(&s, 0, sizeof s);
  int npos, rc = hw_options_parse(hw_kpi_options, HW_ARRAY_SIZE(hw_kpi_options), &s, argc, argv,
                                  hw_kpi_usage, NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  hw_kpi_request q;
  char err[160];
  if (hw_kpi_request_parse(&q, s.from, s.to, s.region, s.by, s.level, err, sizeof err)) {
    fprintf(stderr, "report kpi: %s\n", err);
    return 2;
  }
  q.score = s.score;
  int json = !strcmp(s.format, "json"), csv = !strcmp(s.format, "csv");
  int xlsx = !strcmp(s.format, "xlsx");
  if (!json && !csv && !xlsx && strcmp(s.format, "table")) {
    fprintf(stderr, "report kpi: --format is table, csv, json or xlsx\n");
    return 2;
  }
  if (xlsx && isatty(STDOUT_FILENO)) {
    fprintf(stderr, "report kpi: --format xlsx writes a workbook: redirect it to a file\n");
    return 2;
  }
  PGconn *conn;
  if (hw_cli_pg_connect(s.pg, HW_REPORT_SCHEMA, &conn))
    return 1;
  PGresult *res = NULL;
  int ret = 1;
  if (hw_kpi_run(conn, &q, &res)) {
    fprintf(stderr, "report kpi: the query failed (see the log above)\n");
    goto out;
  }
  if (json) {
    if (hw_report_print_json(res, hw_kpi_columns, HW_KPI_NCOLS)) {
      fprintf(stderr, "report kpi: out of memory\n");
      goto out;
    }
  } else if (xlsx) {
    char *book = NULL;
    size_t len = 0;
    if (hw_xlsx_table(hw_kpi_cols, HW_KPI_NCOLS, (size_t)PQntuples(res), hw_kpi_cell, res, &book,
                      &len)) {
      fprintf(stderr, "report kpi: the workbook could not be written\n");
      goto out;
    }
    size_t put = fwrite(book, 1, len, stdout);
    free(book);
    if (put != len)
      goto out;
  } else if (csv) {
    if (hw_report_print_csv(res, hw_kpi_columns, HW_KPI_NCOLS)) {
      fprintf(stderr, "report kpi: out of memory\n");
      goto out;
    }
  } else {
    hw_report_print_table(res, hw_kpi_columns, HW_KPI_NCOLS);
  }
  ret = fflush(stdout) ? 1 : 0;
out:
  PQclear(res);
  PQfinish(conn);
  return ret;
}

/* --- report platforms --- */

typedef struct hw_rplat_settings {
  char pg[1024];
  char from[40];
  char to[40];
  char platform[40];
  char format[8];
} hw_rplat_settings;

#define C hw_rplat_settings
static const hw_option hw_rplat_options[] = {
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(C, from, NULL, NULL, "start: a day YYYY-MM-DD (GMT+8 midnight) or a timestamp"),
    HW_OPT_S(C, to, NULL, NULL, "end: a day (included: up to its end) or a timestamp; cut at now"),
    HW_OPT_S(C, platform, NULL, NULL, "only this platform"),
    HW_OPT_S(C, format, "table", NULL, "table, csv or json"),
};
#undef C

static const char hw_rplat_usage[] =
    "usage: haulwatch report platforms --from DAY|TIME --to DAY|TIME [--platform ID]\n"
    "                                  [--format table|csv|json]\n"
    "\n"
    "Per JT/T 809 platform: inspections (查岗) created in the period, answered, answered within\n"
    "their answer time (10 minutes unless inspect said otherwise), the response rate, the mean\n"
    "delay; the main link's up and down seconds and its availability (平台连通率: up / period),\n"
    "the slave link's up seconds and availability.";

static int hw_report_platforms(int argc, char **argv) {
  hw_rplat_settings s;
  memset(&s, 0, sizeof s);
  int npos, rc = hw_options_parse(hw_rplat_options, HW_ARRAY_SIZE(hw_rplat_options), &s, argc,
                                  argv, hw_rplat_usage, NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  int json = !strcmp(s.format, "json"), csv = !strcmp(s.format, "csv");
  if (!s.from[0] || !s.to[0] || (!json && !csv && strcmp(s.format, "table"))) {
    fprintf(stderr, "report platforms: give --from and --to; --format is table, csv or json\n");
    return 2;
  }
  PGconn *conn;
  if (hw_cli_pg_connect(s.pg, 16, &conn)) /* platform_inspections */
    return 1;
  PGresult *res = NULL;
  char err[256];
  int ret = 1;
  rc = hw_platform_kpi_run(conn, s.from, s.to, s.platform[0] ? s.platform : NULL, &res, err,
                           sizeof err);
  if (rc) {
    fprintf(stderr, "report platforms: %s%s", rc == -EINVAL ? "bad --from or --to: " : "", err);
    ret = rc == -EINVAL ? 2 : 1;
    goto out;
  }
  if (json) {
    if (hw_report_print_json(res, hw_platform_kpi_columns, HW_PLATFORM_KPI_NCOLS)) {
      fprintf(stderr, "report platforms: out of memory\n");
      goto out;
    }
  } else if (csv) {
    if (hw_report_print_csv(res, hw_platform_kpi_columns, HW_PLATFORM_KPI_NCOLS)) {
      fprintf(stderr, "report platforms: out of memory\n");
      goto out;
    }
  } else {
    hw_report_print_table(res, hw_platform_kpi_columns, HW_PLATFORM_KPI_NCOLS);
  }
  ret = fflush(stdout) ? 1 : 0;
out:
  PQclear(res);
  PQfinish(conn);
  return ret;
}

int hw_cmd_report(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "platforms"))
    return hw_report_platforms(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "rebuild"))
    return hw_report_rebuild(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "kpi"))
    return hw_report_kpi(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "monthly"))
    return hw_cmd_report_monthly(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "safety-devices"))
    return hw_cmd_report_safety(argc - 1, argv + 1);
  hw_cd_list list;
  if (argc >= 2 && hw_cd_list_of(argv[1], &list) == 0)
    return hw_cmd_crackdown(argc - 1, argv + 1);
  FILE *out = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
  fprintf(out, "usage: haulwatch report kpi --from DAY --to DAY [OPTIONS]\n"
               "       haulwatch report rebuild --from DAY --to DAY [--terminal ID]\n"
               "       haulwatch report phaseout|registry-audit|offline-movers [OPTIONS]\n"
               "       haulwatch report monthly --month YYYY-MM --out FILE.html|FILE.xlsx\n"
               "       haulwatch report platforms --from DAY --to DAY [--format table|csv|json]\n"
               "       haulwatch report safety-devices [--region CODE] [--from DAY] [--to DAY]\n"
               "`haulwatch report kpi --help` and `... rebuild --help` tell more.\n");
  return out == stdout ? 0 : 2;
}
