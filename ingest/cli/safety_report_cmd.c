/* haulwatch report safety-devices: the active-safety device coverage of heavy trucks and
 * semi-trailer tractors (sinks/safety_query.h has the definitions): a summary, the vehicles
 * without a working device by enterprise, and the alarm rates by kind, type and level, as
 * aligned text, CSV (three sections, a blank line between) or one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/options.h"
#include "base/table.h"
#include "base/text.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "sinks/safety_query.h"

#define HW_SR_SCHEMA 22 /* safety_alarms */

typedef struct hw_sr_settings {
  char pg[1024];
  char region[16];
  char from[16];
  char to[16];
  char format[8];
  uint32_t coverage_days;
  uint32_t followed_within_s;
} hw_sr_settings;

#define C hw_sr_settings
static const hw_option hw_sr_options[] = {
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(C, region, NULL, NULL, "only this GB/T 2260 region and what lies under it"),
    HW_OPT_S(C, from, NULL, NULL, "first day of the period for the rates (YYYY-MM-DD, GMT+8; default: coverage_days days before --to)"),
    HW_OPT_S(C, to, NULL, NULL, "last day of the period, and the day coverage is judged at (default: yesterday, GMT+8)"),
    HW_OPT_S(C, format, "table", NULL, "table, csv or json"),
    HW_OPT_N(C, coverage_days, HW_XSTR(HW_SAFETY_DEF_COVERAGE_DAYS), 1, 366, NULL, "a vehicle is covered when its terminal sent an active-safety item in this many days up to the end of --to"),
    HW_OPT_N(C, followed_within_s, HW_XSTR(HW_SAFETY_DEF_FOLLOW_S), 1, 86400 * 7, NULL, "a level-2 alarm is followed by a violation that starts within this many seconds after it"),
};
#undef C

static const char hw_sr_usage[] =
    "usage: haulwatch report safety-devices [--region CODE] [--from DAY] [--to DAY]\n"
    "                                       [--format table|csv|json] [--pg CONNINFO]\n"
    "\n"
    "Active-safety devices on heavy trucks and semi-trailer tractors: how many are connected and\n"
    "covered (an ADAS/DSM/TPMS/BSD item in the last coverage_days days), the connected ones\n"
    "without a working device by enterprise, alarms per vehicle and per 100 km by kind, type and\n"
    "level, and the share of level-2 alarms followed by a violation (README, \"Active-safety\n"
    "alarms\").";

static const char *const hw_sr_summary_cols[] = {"vehicles", "connected", "covered", "covered_pct",
                                                 "level2_alarms", "level2_followed", "followed_pct"};
static const char *const hw_sr_uncovered_cols[] = {"enterprise", "plate", "terminal_id", "region",
                                                   "class", "last_item"};
static const char *const hw_sr_rates_cols[] = {"kind", "type", "level", "alarms", "vehicles",
                                               "per_vehicle", "km", "per_100km"};

static void hw_sr_table(const char *title, const char *const *cols, int ncols, const PGresult *res) {
  int n = PQntuples(res);
  size_t width[16];
  printf("%s\n", title);
  for (int c = 0; c < ncols; c++) {
    width[c] = strlen(cols[c]);
    for (int r = 0; r < n; r++) {
      size_t w = hw_utf8_display_width(PQgetisnull(res, r, c) ? "-" : PQgetvalue(res, r, c));
      if (w > width[c])
        width[c] = w;
    }
  }
  for (int r = -1; r < n; r++) {
    for (int c = 0; c < ncols; c++) {
      const char *v = r < 0 ? cols[c] : PQgetisnull(res, r, c) ? "-" : PQgetvalue(res, r, c);
      fputs(v, stdout);
      if (c + 1 < ncols)
        for (size_t w = hw_utf8_display_width(v); w < width[c] + 2; w++)
          fputc(' ', stdout);
    }
    fputc('\n', stdout);
  }
  fputc('\n', stdout);
}

static int hw_sr_csv(const char *const *cols, int ncols, const PGresult *res) {
  for (int r = -1; r < PQntuples(res); r++) {
    for (int c = 0; c < ncols; c++) {
      const char *v = r < 0 ? cols[c] : PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
      /* Only enterprise, plate, terminal id, region, class and kind are text. */
      hw_col_type t = r >= 0 && !(v && strspn(v, "0123456789.-") == strlen(v)) ? HW_COL_TEXT : HW_COL_NUM;
      if (hw_csv_fput(stdout, v, t))
        return -1;
      fputs(c + 1 == ncols ? "\r\n" : ",", stdout);
    }
  }
  fputs("\r\n", stdout);
  return 0;
}

/* The query results again as JSON, built by PostgreSQL-free code: numbers stay numbers. */
static void hw_sr_json_rows(const char *name, const char *const *cols, int ncols,
                            const PGresult *res, int one) {
  printf("\"%s\":%s", name, one ? "" : "[");
  for (int r = 0; r < PQntuples(res); r++) {
    printf("%s{", r ? "," : "");
    for (int c = 0; c < ncols; c++) {
      printf("%s\"%s\":", c ? "," : "", cols[c]);
      if (PQgetisnull(res, r, c)) {
        printf("null");
        continue;
      }
      const char *v = PQgetvalue(res, r, c);
      Oid t = PQftype(res, c);
      /* int8, int4, int2, numeric */
      if (t == 20 || t == 23 || t == 21 || t == 1700) {
        printf("%s", v);
      } else {
        fputc('"', stdout);
        for (const char *p = v; *p; p++) {
          if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
          else if ((unsigned char)*p < 0x20)
            printf("\\u%04x", (unsigned char)*p);
          else
            fputc(*p, stdout);
        }
        fputc('"', stdout);
      }
    }
    printf("}");
    if (one)
      break;
  }
  if (one && PQntuples(res) == 0)
    printf("null");
  if (!one)
    printf("]");
}

int hw_cmd_report_safety(int argc, char **argv) {
  hw_sr_settings s;
  memset(&s, 0, sizeof s);
  char *pos[1];
  int npos = 0;
  int rc = hw_options_parse(hw_sr_options, HW_ARRAY_SIZE(hw_sr_options), &s, argc, argv,
                            hw_sr_usage, pos, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  int json = !strcmp(s.format, "json"), csv = !strcmp(s.format, "csv");
  if (!json && !csv && strcmp(s.format, "table")) {
    fprintf(stderr, "report safety-devices: --format is table, csv or json\n");
    return 2;
  }
  /* Defaults: yesterday (GMT+8), and the coverage window before it. */
  if (!s.to[0] || !s.from[0]) {
    time_t now = time(NULL) + 8 * 3600;
    struct tm tm;
    time_t to_t = now - 86400;
    if (s.to[0]) {
      struct tm t0 = {0};
      if (sscanf(s.to, "%4d-%2d-%2d", &t0.tm_year, &t0.tm_mon, &t0.tm_mday) == 3) {
        t0.tm_year -= 1900;
        t0.tm_mon -= 1;
        to_t = timegm(&t0);
      }
    } else {
      gmtime_r(&to_t, &tm);
      strftime(s.to, sizeof s.to, "%Y-%m-%d", &tm);
    }
    if (!s.from[0]) {
      time_t from_t = to_t - (time_t)(s.coverage_days - 1) * 86400;
      gmtime_r(&from_t, &tm);
      strftime(s.from, sizeof s.from, "%Y-%m-%d", &tm);
    }
  }
  hw_safety_request q;
  char err[160];
  if (hw_safety_request_parse(&q, s.region, s.from, s.to, s.coverage_days, s.followed_within_s,
                              err, sizeof err)) {
    fprintf(stderr, "report safety-devices: %s\n", err);
    return 2;
  }
  PGconn *conn;
  if (hw_cli_pg_connect(s.pg, HW_SR_SCHEMA, &conn))
    return 1;
  hw_safety_report rep;
  int ret = 1;
  if (hw_safety_report_run(conn, &q, "{%}", &rep)) {
    fprintf(stderr, "report safety-devices: the query failed (see the log above)\n");
    goto out;
  }
  if (json) {
    printf("{\"region\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"coverage_days\":%u,",
           q.region, q.from, q.to, q.coverage_days);
    hw_sr_json_rows("summary", hw_sr_summary_cols, 7, rep.summary, 1);
    printf(",");
    hw_sr_json_rows("without_device", hw_sr_uncovered_cols, 6, rep.uncovered, 0);
    printf(",");
    hw_sr_json_rows("rates", hw_sr_rates_cols, 8, rep.rates, 0);
    printf("}\n");
  } else if (csv) {
    if (hw_sr_csv(hw_sr_summary_cols, 7, rep.summary) ||
        hw_sr_csv(hw_sr_uncovered_cols, 6, rep.uncovered) ||
        hw_sr_csv(hw_sr_rates_cols, 8, rep.rates)) {
      fprintf(stderr, "report safety-devices: write error\n");
      goto out_free;
    }
  } else {
    printf("Active-safety devices, %s to %s%s%s, covered = an item in %u days\n\n", q.from, q.to,
           q.region[0] ? ", region " : "", q.region, q.coverage_days);
    hw_sr_table("Summary", hw_sr_summary_cols, 7, rep.summary);
    hw_sr_table("Connected without a working device", hw_sr_uncovered_cols, 6, rep.uncovered);
    hw_sr_table("Alarms of covered vehicles", hw_sr_rates_cols, 8, rep.rates);
  }
  ret = fflush(stdout) ? 1 : 0;
out_free:
  hw_safety_report_free(&rep);
out:
  PQfinish(conn);
  return ret;
}
