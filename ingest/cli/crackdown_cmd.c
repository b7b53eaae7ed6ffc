/* haulwatch report phaseout|registry-audit|offline-movers: the crackdown lists (README,
 * "Crackdown lists") on the command line. The query, its request and the audit's rules are
 * sinks/crackdown_query.h's, shared with the web API and the monthly report; this file only reads
 * the options and writes the table (aligned text, CSV, JSON or an XLSX file). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

#include "base/options.h"
#include "base/text.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "sinks/crackdown_query.h"

#define HW_CD_SCHEMA 14 /* vehicles' masses (014), vehicle_daily (012) */

typedef struct hw_cd_settings {
  char pg[1024];
  char region[16];
  char since[16];
  char from[16];
  char to[16];
  char format[8];
  char out[1024];
  uint32_t phaseout_min_km;
  uint32_t audit_tolerance_kg;
  uint32_t audit_min_load_pct;
} hw_cd_settings;

#define C hw_cd_settings
static const hw_option hw_cd_options[] = {
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(C, region, NULL, NULL, "only this GB/T 2260 region and what lies under it"),
    HW_OPT_S(C, since, NULL, NULL, "phaseout: count days and km from this day (YYYY-MM-DD, GMT+8) instead of the day after retirement"),
    HW_OPT_S(C, from, NULL, NULL, "offline-movers: episodes started on or after this day (GMT+8)"),
    HW_OPT_S(C, to, NULL, NULL, "offline-movers: ... on or before this day"),
    HW_OPT_S(C, format, "table", NULL, "table, csv, json or xlsx (xlsx needs --out)"),
    HW_OPT_S(C, out, NULL, NULL, "write to this file instead of standard output"),
    HW_OPT_N(C, phaseout_min_km, HW_XSTR(HW_CD_DEF_PHASEOUT_MIN_KM), 0, 10000, NULL, "phaseout: a day counts as moved with at least this many km of track (and more than 0)"),
    HW_OPT_N(C, audit_tolerance_kg, HW_XSTR(HW_CD_DEF_AUDIT_TOLERANCE_KG), 0, 100000, NULL, "registry-audit: total mass may differ from curb mass + rated load by this much, kg"),
    HW_OPT_N(C, audit_min_load_pct, HW_XSTR(HW_CD_DEF_AUDIT_MIN_LOAD_PCT), 0, 1000, NULL, "registry-audit: a heavy vehicle's rated load below this % of its curb mass is flagged"),
};
#undef C

static const char hw_cd_usage[] =
    "usage: haulwatch report phaseout [--region CODE] [--since YYYY-MM-DD] [OPTIONS]\n"
    "       haulwatch report registry-audit [--region CODE] [OPTIONS]\n"
    "       haulwatch report offline-movers [--region CODE] [--from DAY] [--to DAY] [OPTIONS]\n"
    "\n"
    "The crackdown lists (README, \"Crackdown lists\"): every vehicle of a retired class with\n"
    "the days it moved since; the 大吨小标 suspects of the registry with their reasons; the\n"
    "vehicles that moved while offline, by enterprise. --format table|csv|json|xlsx.";

static int hw_cd_print_json(FILE *f, const hw_cd_table *t) {
  cJSON *arr = cJSON_CreateArray();
  if (!arr)
    return -ENOMEM;
  for (size_t r = 0; r < t->nrows; r++) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o))
      goto oom;
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = hw_cd_cell(t, r, c);
      cJSON *v = !s ? cJSON_CreateNull()
                 : t->cols[c].type == HW_COL_INT || t->cols[c].type == HW_COL_NUM
                     ? cJSON_CreateRaw(s) /* a number as PostgreSQL or the audit printed it */
                     : cJSON_CreateString(s);
      if (!v || !cJSON_AddItemToObject(o, t->cols[c].name, v)) {
        cJSON_Delete(v);
        goto oom;
      }
    }
  }
  char *text = cJSON_Print(arr);
  cJSON_Delete(arr);
  if (!text)
    return -ENOMEM;
  fputs(text, f);
  fputc('\n', f);
  cJSON_free(text);
  return 0;
oom:
  cJSON_Delete(arr);
  return -ENOMEM;
}

static int hw_cd_print_table(FILE *f, const hw_cd_table *t) {
  size_t *width = calloc(t->ncols, sizeof *width);
  if (!width)
    return -ENOMEM;
  for (size_t c = 0; c < t->ncols; c++) {
    width[c] = strlen(t->cols[c].name);
    for (size_t r = 0; r < t->nrows; r++) {
      const char *s = hw_cd_cell(t, r, c);
      size_t w = s ? hw_utf8_display_width(s) : 0;
      if (w > width[c])
        width[c] = w;
    }
  }
  for (size_t r = 0; r <= t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = r == 0 ? t->cols[c].name : hw_cd_cell(t, r - 1, c);
      if (!s)
        s = "";
      size_t w = hw_utf8_display_width(s);
      int right = t->cols[c].type == HW_COL_INT || t->cols[c].type == HW_COL_NUM;
      for (; right && w < width[c]; w++)
        fputc(' ', f);
      fputs(s, f);
      for (; !right && w < width[c] && c + 1 < t->ncols; w++)
        fputc(' ', f);
      fputs(c + 1 == t->ncols ? "\n" : "  ", f);
    }
  free(width);
  return 0;
}

/* One sheet named after the list: the header in bold, numbers as numbers, text as text (never a
 * formula: worksheet_write_string). */
static int hw_cd_write_xlsx(const char *path, const char *sheet, const hw_cd_table *t) {
  lxw_workbook *wb = workbook_new(path);
  if (!wb)
    return -EIO;
  lxw_worksheet *ws = workbook_add_worksheet(wb, sheet);
  lxw_format *bold = workbook_add_format(wb);
  format_set_bold(bold);
  for (size_t c = 0; c < t->ncols; c++)
    worksheet_write_string(ws, 0, (lxw_col_t)c, t->cols[c].name, bold);
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = hw_cd_cell(t, r, c);
      char *end;
      if (!s)
        continue;
      double d = strtod(s, &end);
      if ((t->cols[c].type == HW_COL_INT || t->cols[c].type == HW_COL_NUM) && end != s && !*end)
        worksheet_write_number(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, d, NULL);
      else
        worksheet_write_string(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, s, NULL);
    }
  return workbook_close(wb) == LXW_NO_ERROR ? 0 : -EIO;
}

int hw_cmd_crackdown(int argc, char **argv) {
  hw_cd_list list;
  if (argc < 1 || hw_cd_list_of(argv[0], &list)) {
    fprintf(stderr, "%s", hw_cd_usage);
    return 2;
  }
  hw_cd_settings s;
  memset(&s, 0, sizeof s);
  int npos, rc = hw_options_parse(hw_cd_options, HW_ARRAY_SIZE(hw_cd_options), &s, argc, argv,
                                  hw_cd_usage, NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  const char *name = hw_cd_list_name(list);
  hw_cd_request q;
  char err[160];
  if (hw_cd_request_parse(&q, list, s.region, s.since, s.from, s.to, err, sizeof err)) {
    fprintf(stderr, "report %s: %s\n", name, err);
    return 2;
  }
  int json = !strcmp(s.format, "json"), csv = !strcmp(s.format, "csv");
  int xlsx = !strcmp(s.format, "xlsx");
  if (!json && !csv && !xlsx && strcmp(s.format, "table")) {
    fprintf(stderr, "report %s: --format is table, csv, json or xlsx\n", name);
    return 2;
  }
  if (xlsx && !s.out[0]) {
    fprintf(stderr, "report %s: --format xlsx writes a file: give --out FILE.xlsx\n", name);
    return 2;
  }
  hw_cd_config cfg = {s.phaseout_min_km, s.audit_tolerance_kg, s.audit_min_load_pct};
  PGconn *conn;
  if (hw_cli_pg_connect(s.pg, HW_CD_SCHEMA, &conn))
    return 1;
  hw_cd_table t = {0};
  FILE *f = NULL;
  int ret = 1;
  rc = hw_cd_run(conn, &q, &cfg, "{%}", 0, &t);
  if (rc) {
    fprintf(stderr, "report %s: %s\n", name,
            rc == -ENOMEM ? "out of memory" : "the query failed (see the log above)");
    goto out;
  }
  if (xlsx) {
    if (hw_cd_write_xlsx(s.out, name, &t)) {
      fprintf(stderr, "report %s: cannot write %s\n", name, s.out);
      goto out;
    }
    ret = 0;
    goto out;
  }
  f = s.out[0] ? fopen(s.out, "w") : stdout;
  if (!f) {
    fprintf(stderr, "report %s: cannot open %s: %s\n", name, s.out, strerror(errno));
    goto out;
  }
  if (json) {
    rc = hw_cd_print_json(f, &t);
  } else if (csv) {
    for (size_t r = 0; r <= t.nrows; r++)
      for (size_t c = 0; c < t.ncols; c++) {
        if (!rc)
          rc = hw_csv_fput(f, r ? hw_cd_cell(&t, r - 1, c) : t.cols[c].name,
                           r ? t.cols[c].type : HW_COL_TEXT);
        fputs(c + 1 == t.ncols ? "\r\n" : ",", f);
      }
  } else {
    rc = hw_cd_print_table(f, &t);
  }
  if (rc) {
    fprintf(stderr, "report %s: %s\n", name, rc == -ENOMEM ? "out of memory" : "write error");
    goto out;
  }
  ret = fflush(f) || ferror(f) ? 1 : 0;
  if (ret)
    fprintf(stderr, "report %s: write error\n", name);
out:
  if (f && f != stdout && fclose(f) && !ret) {
    fprintf(stderr, "report %s: write error on %s\n", name, s.out);
    ret = 1;
  }
  hw_cd_table_free(&t);
  PQfinish(conn);
  return ret;
}
