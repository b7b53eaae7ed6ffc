/* haulwatch alarms list: the active-safety alarms (safety_alarms, schema 022) as an operator reads
 * them: filtered by terminal, kind and time, newest first, as a table, CSV or JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "base/safety_alarm.h"
#include "base/table.h"
#include "base/text.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"

#define HW_ALARMS_SCHEMA 22 /* safety_alarms */

typedef struct hw_alist_settings {
  char pg[1024];
  char terminal[64];
  char kind[16];
  char from[64];
  char to[64];
  char format[8];
  uint32_t limit;
} hw_alist_settings;

#define S hw_alist_settings
static const hw_option hw_alist_options[] = {
    HW_OPT_S(S, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(S, terminal, NULL, NULL, "only this terminal id"),
    HW_OPT_S(S, kind, NULL, NULL, "only this kind: adas, dsm, tpms or bsd"),
    HW_OPT_S(S, from, NULL, NULL, "alarms at or after this time (e.g. 2026-03-01 or \"2026-03-01 08:00\", GMT+8)"),
    HW_OPT_S(S, to, NULL, NULL, "alarms before this time (GMT+8)"),
    HW_OPT_S(S, format, "table", NULL, "table, csv or json"),
    HW_OPT_N(S, limit, "100", 1, 1000000, NULL, "at most this many, newest first"),
};
#undef S

static const char hw_alist_usage[] =
    "usage: haulwatch alarms list [--terminal ID] [--kind adas|dsm|tpms|bsd] [--from T] [--to T]\n"
    "                             [--format table|csv|json] [--limit N] [--pg CONNINFO]\n"
    "\n"
    "Lists active-safety alarms (ADAS, DSM, TPMS, BSD items of JT/T 808 location reports), newest\n"
    "first. Times are shown and read as GMT+8. TYPE is the device's alarm type, named where the\n"
    "standard names it; LEVEL is 1 or 2 (- for items without one); NO is the alarm\n"
    "identification number attachments are matched by.";

/* The columns of the table and of the CSV, in query order. */
static const hw_table_col hw_alist_cols[] = {
    {"id", HW_COL_INT},         {"alarm_at", HW_COL_TIME}, {"terminal_id", HW_COL_TEXT},
    {"vehicle", HW_COL_TEXT},   {"kind", HW_COL_TEXT},     {"type", HW_COL_INT},
    {"type_name", HW_COL_TEXT}, {"level", HW_COL_INT},     {"speed_kmh", HW_COL_INT},
    {"lat", HW_COL_NUM},        {"lon", HW_COL_NUM},       {"alarm_no", HW_COL_TEXT},
    {"attachments", HW_COL_INT},
};
#define HW_ALIST_NCOLS HW_ARRAY_SIZE(hw_alist_cols)

static const char *hw_alist_cell(const PGresult *res, int r, int c, char *buf, size_t cap) {
  if (c == 6) { /* the type's name, from kind and type */
    const char *k = PQgetvalue(res, r, 4);
    unsigned kind = !strcmp(k, "adas") ? HW_SAFETY_ADAS : !strcmp(k, "dsm") ? HW_SAFETY_DSM
                    : !strcmp(k, "tpms") ? HW_SAFETY_TPMS : !strcmp(k, "bsd") ? HW_SAFETY_BSD : 0;
    const char *n = hw_safety_type_name(kind, (unsigned)atoi(PQgetvalue(res, r, 5)));
    snprintf(buf, cap, "%s", n ? n : "");
    return buf;
  }
  int qc = c > 6 ? c - 1 : c;
  return PQgetisnull(res, r, qc) ? NULL : PQgetvalue(res, r, qc);
}

static void hw_alist_table(const PGresult *res, unsigned limit) {
  int n = PQntuples(res);
  size_t width[HW_ALIST_NCOLS];
  char buf[64];
  for (size_t c = 0; c < HW_ALIST_NCOLS; c++) {
    width[c] = strlen(hw_alist_cols[c].name);
    for (int r = 0; r < n; r++) {
      const char *v = hw_alist_cell(res, r, (int)c, buf, sizeof buf);
      size_t w = hw_utf8_display_width(v ? v : "-");
      if (w > width[c])
        width[c] = w;
    }
  }
  for (int r = -1; r < n; r++) {
    for (size_t c = 0; c < HW_ALIST_NCOLS; c++) {
      const char *v = r < 0 ? hw_alist_cols[c].name : hw_alist_cell(res, r, (int)c, buf, sizeof buf);
      if (!v)
        v = "-";
      fputs(v, stdout);
      if (c + 1 < HW_ALIST_NCOLS)
        for (size_t w = hw_utf8_display_width(v); w < width[c] + 2; w++)
          fputc(' ', stdout);
    }
    fputc('\n', stdout);
  }
  if ((unsigned)n == limit)
    printf("(the newest %d shown; --limit N for more)\n", n);
  else
    printf("(%d alarm%s)\n", n, n == 1 ? "" : "s");
}

static int hw_alist_csv(const PGresult *res) {
  char buf[64];
  for (size_t c = 0; c < HW_ALIST_NCOLS; c++)
    printf("%s%s", c ? "," : "", hw_alist_cols[c].name);
  printf("\n");
  for (int r = 0; r < PQntuples(res); r++) {
    for (size_t c = 0; c < HW_ALIST_NCOLS; c++) {
      if (c)
        fputc(',', stdout);
      if (hw_csv_fput(stdout, hw_alist_cell(res, r, (int)c, buf, sizeof buf), hw_alist_cols[c].type))
        return -1;
    }
    fputc('\n', stdout);
  }
  return 0;
}

static int hw_alarms_list(int argc, char **argv) {
  hw_alist_settings s;
  memset(&s, 0, sizeof s);
  char *pos[1];
  int npos = 0, status = 1;
  int rc = hw_options_parse(hw_alist_options, HW_ARRAY_SIZE(hw_alist_options), &s, argc, argv,
                            hw_alist_usage, pos, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  int json = !strcmp(s.format, "json"), csv = !strcmp(s.format, "csv");
  if (!json && !csv && strcmp(s.format, "table")) {
    fprintf(stderr, "haulwatch alarms list: --format is table, csv or json\n");
    return 2;
  }
  if (s.kind[0] && strcmp(s.kind, "adas") && strcmp(s.kind, "dsm") && strcmp(s.kind, "tpms") &&
      strcmp(s.kind, "bsd")) {
    fprintf(stderr, "haulwatch alarms list: unknown kind '%s' (adas, dsm, tpms, bsd)\n", s.kind);
    return 2;
  }
  /* One predicate per filter, on indexed columns; times are GMT+8 wall clock. */
  static const char *const preds[] = {"terminal_id = $%d", "kind = $%d",
                                      "alarm_at >= ($%d::timestamp AT TIME ZONE INTERVAL '+08:00')",
                                      "alarm_at < ($%d::timestamp AT TIME ZONE INTERVAL '+08:00')"};
  const char *vals[] = {s.terminal, s.kind, s.from, s.to};
  const char *params[HW_ARRAY_SIZE(vals) + 1];
  char where[512], limit[16];
  int np = hw_cli_pg_filters(preds, vals, HW_ARRAY_SIZE(vals), where, sizeof where, params);
  snprintf(limit, sizeof limit, "%u", s.limit);
  params[np++] = limit;
  char sql[2048];
  if (json)
    snprintf(sql, sizeof sql,
             "SELECT coalesce(json_agg(a ORDER BY a.alarm_at DESC, a.id DESC), '[]') FROM "
             "(SELECT id, terminal_id, vehicle, kind, type, level, alarm_id, flag, "
             "to_char(alarm_at AT TIME ZONE INTERVAL '+08:00', 'YYYY-MM-DD\"T\"HH24:MI:SS+08:00') AS alarm_at, "
             "lat, lon, speed_kmh, alarm_no, attachments, layout, fields FROM safety_alarms "
             "WHERE %s ORDER BY alarm_at DESC, id DESC LIMIT $%d) a",
             where, np);
  else
    snprintf(sql, sizeof sql,
             "SELECT id, to_char(alarm_at AT TIME ZONE INTERVAL '+08:00', 'YYYY-MM-DD HH24:MI:SS'), "
             "terminal_id, vehicle, kind, type, level, speed_kmh, round(lat::numeric, 6), "
             "round(lon::numeric, 6), alarm_no, attachments FROM safety_alarms WHERE %s "
             "ORDER BY alarm_at DESC, id DESC LIMIT $%d",
             where, np);
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s.pg, HW_ALARMS_SCHEMA, &conn))
    return 1;
  PGresult *res = PQexecParams(conn, sql, np, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("alarms list", "query", res);
  } else if (json) {
    printf("%s\n", PQgetvalue(res, 0, 0));
    status = 0;
  } else if (csv) {
    status = hw_alist_csv(res) ? 1 : 0;
  } else {
    hw_alist_table(res, s.limit);
    status = 0;
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

int hw_cmd_alarms(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "list"))
    return hw_alarms_list(argc - 1, argv + 1);
  FILE *out = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
  fprintf(out, "usage: haulwatch alarms list [OPTIONS]\n"
               "`haulwatch alarms list --help` tells more.\n");
  return out == stdout ? 0 : 2;
}
