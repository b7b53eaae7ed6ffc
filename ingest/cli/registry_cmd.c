/* haulwatch registry import FILE.csv: loads vehicles from a spreadsheet export. Every row is
 * checked before anything is written; one bad row and nothing is imported, every bad row is
 * named by its line. Rows are upserted by plate + colour in one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "cli/registry_csv.h"
#include "base/fix.h"
#include "base/options.h"

#define HW_REG_SCHEMA 2 /* vehicles, vehicle_classes */

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

/* Appends s to a COPY text-format buffer, escaped; NULL is \N. */
static size_t hw_copy_field(char *out, const char *s) {
  size_t n = 0;
  if (!s) {
    memcpy(out, "\\N", 2);
    return 2;
  }
  for (; *s; s++) {
    char e = *s == '\\' ? '\\' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : *s == '\t' ? 't' : 0;
    if (e) {
      out[n++] = '\\';
      out[n++] = e;
    } else {
      out[n++] = *s;
    }
  }
  return n;
}

static int hw_copy_rows(PGconn *conn, const hw_import *im) {
  PGresult *res = PQexec(conn, "COPY hw_import (line, plate, plate_colour, vin, class_code, "
                               "terminal_id, region, enterprise, permit_no, permit_expires, status) "
                               "FROM STDIN");
  int ok = PQresultStatus(res) == PGRES_COPY_IN;
  if (!ok)
    hw_cli_pg_report("registry import", "COPY", res);
  PQclear(res);
  if (!ok)
    return -EIO;
  /* Every field is at most 128 bytes and escaping at most doubles it. */
  char buf[HW_NCOLS * 2 * 128 + 64];
  for (size_t i = 0; i < im->nrows && ok; i++) {
    const hw_vrow *r = &im->rows[i];
    const char *v[] = {r->f[HW_COL_PLATE],      r->colour,
                       r->f[HW_COL_VIN],        r->f[HW_COL_CLASS],
                       r->f[HW_COL_TERMINAL],   r->f[HW_COL_REGION],
                       r->f[HW_COL_ENTERPRISE], r->f[HW_COL_PERMIT_NO],
                       r->f[HW_COL_PERMIT_EXPIRES],
                       r->f[HW_COL_STATUS] ? r->f[HW_COL_STATUS] : "active"};
    size_t n = (size_t)snprintf(buf, sizeof buf, "%u", r->line);
    for (size_t k = 0; k < HW_ARRAY_SIZE(v); k++) {
      buf[n++] = '\t';
      n += hw_copy_field(buf + n, v[k]);
    }
    buf[n++] = '\n';
    ok = PQputCopyData(conn, buf, (int)n) == 1;
  }
  if (PQputCopyEnd(conn, ok ? NULL : "client error") != 1)
    ok = 0;
  res = PQgetResult(conn);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_cli_pg_report("registry import", "COPY", res);
    ok = 0;
  }
  PQclear(res);
  while ((res = PQgetResult(conn)))
    PQclear(res);
  return ok ? 0 : -EIO;
}

/* Terminals the file gives to one vehicle while the database has them on another vehicle that
 * the file does not mention: importing would silently steal the terminal, so such rows are
 * reported like any other bad row. (Vehicles that are in the file may swap terminals.) */
static int hw_check_terminal_conflicts(PGconn *conn, const hw_import *im) {
  PGresult *res = PQexec(
      conn, "SELECT s.line, s.terminal_id, v.plate, v.plate_colour FROM hw_import s "
            "JOIN vehicles v ON v.terminal_id = s.terminal_id "
            "WHERE (v.plate, v.plate_colour) <> (s.plate, s.plate_colour) AND NOT EXISTS "
            "(SELECT 1 FROM hw_import o WHERE (o.plate, o.plate_colour) = (v.plate, v.plate_colour)) "
            "ORDER BY s.line");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("registry import", "checking terminals", res);
    PQclear(res);
    return -EIO;
  }
  int n = PQntuples(res);
  for (int i = 0; i < n; i++)
    fprintf(stderr, "%s:%s: terminal %s is bound to vehicle %s (colour %s), which is not in this "
                    "file; unbind it there first\n",
            im->path, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
            PQgetvalue(res, i, 3));
  PQclear(res);
  return n ? -EEXIST : 0;
}

static int hw_scalar(PGconn *conn, const char *sql, long *out) {
  PGresult *res = PQexec(conn, sql);
  int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
  if (ok)
    *out = atol(PQgetvalue(res, 0, 0));
  else
    hw_cli_pg_report("registry import", sql, res);
  PQclear(res);
  return ok ? 0 : -EIO;
}

static int hw_import_db(PGconn *conn, const hw_import *im) {
  long updated = 0;
  int rc;
  if ((rc = hw_cli_pg_exec(conn, "registry import", "BEGIN")))
    return rc;
  if ((rc = hw_cli_pg_exec(conn, "registry import",
                           "CREATE TEMP TABLE hw_import (line integer, plate text, "
                           "plate_colour smallint, vin text, class_code text, terminal_id text, "
                           "region text, enterprise text, permit_no text, permit_expires date, "
                           "status text) ON COMMIT DROP")) ||
      (rc = hw_copy_rows(conn, im)) || (rc = hw_check_terminal_conflicts(conn, im)) ||
      (rc = hw_scalar(conn, "SELECT count(*) FROM hw_import JOIN vehicles USING (plate, plate_colour)",
                      &updated)))
    goto rollback;
  /* Free the terminals that change hands inside the file first, so that the per-row unique
   * check of the upsert does not depend on the order of the rows. */
  if ((rc = hw_cli_pg_exec(conn, "registry import",
                           "UPDATE vehicles v SET terminal_id = NULL FROM hw_import s "
                           "WHERE (v.plate, v.plate_colour) = (s.plate, s.plate_colour) "
                           "AND v.terminal_id IS DISTINCT FROM s.terminal_id "
                           "AND v.terminal_id IS NOT NULL")) ||
      (rc = hw_cli_pg_exec(conn, "registry import",
                           "INSERT INTO vehicles (plate, plate_colour, vin, class_code, terminal_id, "
                           "region, enterprise, permit_no, permit_expires, status) "
                           "SELECT plate, plate_colour, vin, class_code, terminal_id, region, "
                           "enterprise, permit_no, permit_expires, status FROM hw_import "
                           "ORDER BY line ON CONFLICT (plate, plate_colour) DO UPDATE SET "
                           "vin = EXCLUDED.vin, class_code = EXCLUDED.class_code, "
                           "terminal_id = EXCLUDED.terminal_id, region = EXCLUDED.region, "
                           "enterprise = EXCLUDED.enterprise, permit_no = EXCLUDED.permit_no, "
                           "permit_expires = EXCLUDED.permit_expires, status = EXCLUDED.status")) ||
      (rc = hw_cli_pg_exec(conn, "registry import", "COMMIT")))
    goto rollback;
  printf("%s: imported %zu vehicles (%zu new, %ld updated)\n", im->path, im->nrows,
         im->nrows - (size_t)updated, updated);
  return 0;
rollback:
  PQclear(PQexec(conn, "ROLLBACK"));
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
