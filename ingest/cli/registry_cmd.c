/* haulwatch registry import FILE.csv: loads vehicles from a spreadsheet export. Every row is
 * checked before anything is written; one bad row and nothing is imported, every bad row is
 * named by its line. Rows are upserted by plate + colour in one transaction. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "registry/registry_csv.h"
#include "base/fix.h"
#include "base/options.h"

#define HW_REG_SCHEMA 14 /* vehicles (with the masses of 014), hw_admin_import_vehicles */

static const char hw_registry_usage[] =
    "usage: haulwatch registry import FILE.csv [--pg CONNINFO]\n"
    "\n"
    "Imports vehicles from a UTF-8 CSV file whose first row names the columns:\n"
    "  plate           plate number, e.g. 冀A12345 (required)\n"
    "  plate_colour    JT/T 697.7 code (1 blue, 2 yellow, 3 black, 4 white, 5 green, 9 other)\n"
    "                  or blue/yellow/black/white/green/other, 蓝/黄/黑/白/绿 (required)\n"
    "  vin             17 characters of [A-HJ-NPR-Z0-9]\n"
    "  class           vehicle class code or Chinese name, e.g. heavy_truck or 重型货车 (required)\n"
    "  terminal_id     terminal bound to the vehicle (JT/T 808 phone number, 1-32 of [0-9A-Za-z_-])\n"
    "  region          GB/T 2260 six-digit division code (required)\n"
    "  enterprise      operating enterprise\n"
    "  permit_no       road transport permit number\n"
    "  permit_expires  YYYY-MM-DD\n"
    "  status          active (default), scrapped, deregistered\n"
    "  axles           axle count, 2-12 (the registry audit: haulwatch report registry-audit)\n"
    "  total_mass_kg   total mass on the registration certificate, kg, 100-200000\n"
    "  curb_mass_kg    curb mass, kg, 100-200000\n"
    "  rated_load_kg   rated load, kg, 0-200000\n"
    "Every row is checked first: if any row is bad, each bad row is listed with its line number\n"
    "and nothing is imported (exit 1). Otherwise all rows are upserted by plate + colour in one\n"
    "transaction; an empty cell clears that field of an existing vehicle. Running daemons reload\n"
    "the registry within seconds.";

typedef struct hw_registry_settings {
  char pg[1024];
} hw_registry_settings;

static const hw_option hw_registry_options[] = {
    HW_OPT_S(hw_registry_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
};

/* Hands the checked rows to hw_admin_import_vehicles() (schema/011_admin_audit.sql), the one
 * implementation the web API's import runs too: terminal conflicts are checked and the rows
 * upserted in that one statement, audited with the actor 'cli' (the command line sees every
 * region: scope '%'). */
static int hw_import_db(PGconn *conn, hw_import *im) {
  cJSON *arr = hw_registry_rows_json(im);
  char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
  cJSON_Delete(arr);
  if (!text) {
    fprintf(stderr, "haulwatch registry import: out of memory\n");
    return -ENOMEM;
  }
  const char *p[1] = {text};
  PGresult *res = PQexecParams(
      conn, "SELECT hw_admin_import_vehicles($1::jsonb, '{%}', NULL, 'cli', false)", 1, NULL, p,
      NULL, NULL, 0);
  free(text);
  int rc = -EIO;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("registry import", "importing", res);
    goto out;
  }
  cJSON *out = cJSON_Parse(PQgetvalue(res, 0, 0));
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(out, "errors");
  const cJSON *e;
  if (out && !errs) {
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(out, "inserted");
    const cJSON *upd = cJSON_GetObjectItemCaseSensitive(out, "updated");
    printf("%s: imported %zu vehicles (%.0f new, %.0f updated)\n", im->path, im->nrows,
           cJSON_IsNumber(ins) ? ins->valuedouble : 0, cJSON_IsNumber(upd) ? upd->valuedouble : 0);
    rc = 0;
  }
  cJSON_ArrayForEach(e, errs) {
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(e, "line");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(e, "error");
    hw_import_report(im, cJSON_IsNumber(line) ? (unsigned)line->valueint : 0, "%s",
                     cJSON_IsString(why) ? why->valuestring : "?");
    rc = -EEXIST;
  }
  cJSON_Delete(out);
out:
  PQclear(res);
  return rc;
}

static int hw_registry_import(int argc, char **argv) {
  hw_registry_settings s = {{0}};
  char *pos[1];
  int npos = 0, rc, status = 1;
  rc = hw_options_parse(hw_registry_options, HW_ARRAY_SIZE(hw_registry_options), &s, argc, argv,
                        hw_registry_usage, pos, 1, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos != 1) {
    fprintf(stderr, "haulwatch registry import: which file? (see --help)\n");
    return 2;
  }
  hw_import im = {.path = pos[0]};
  PGconn *conn = NULL;
  PGresult *classes = NULL;
  FILE *f = fopen(pos[0], "rb");
  if (!f) {
    fprintf(stderr, "haulwatch registry import: cannot open %s: %s\n", pos[0], strerror(errno));
    return 1;
  }
  if (hw_cli_pg_connect(s.pg, HW_REG_SCHEMA, &conn))
    goto out;
  classes = PQexec(conn, "SELECT code, name_zh, name_en FROM vehicle_classes");
  if (PQresultStatus(classes) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("registry import", "reading vehicle classes", classes);
    goto out;
  }
  im.classes = classes;
  if (hw_registry_csv_read(&im, f) != 0) {
    fprintf(stderr, "haulwatch registry import: out of memory\n");
    goto out;
  }
  if (im.fatal || im.nbad) {
    if (im.nbad)
      fprintf(stderr, "%s: %u bad row%s; nothing imported\n", im.path, im.nbad,
              im.nbad == 1 ? "" : "s");
    else
      fprintf(stderr, "%s: cannot be read; nothing imported\n", im.path);
    goto out;
  }
  if (im.ncols == 0) {
    fprintf(stderr, "%s: empty file (the first row must name the columns)\n", im.path);
    goto out;
  }
  if (hw_import_db(conn, &im) == 0)
    status = 0;
  else
    fprintf(stderr, "%s: nothing imported\n", im.path);
out:
  hw_registry_csv_free(&im);
  PQclear(classes);
  PQfinish(conn);
  fclose(f);
  return status;
}

int hw_cmd_registry(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "import"))
    return hw_registry_import(argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    hw_options_help(hw_registry_options, HW_ARRAY_SIZE(hw_registry_options), hw_registry_usage);
    return 0;
  }
  fprintf(stderr, "usage: haulwatch registry import FILE.csv [--pg CONNINFO] (see --help)\n");
  return 2;
}
