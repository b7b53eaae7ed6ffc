/* haulwatch registry import FILE.csv: loads vehicles from a spreadsheet export. Every row is
 * checked before anything is written; one bad row and nothing is imported, every bad row is
 * named by its line. Rows are upserted by plate + colour in one transaction. */
#include <csv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "base/fix.h"
#include "base/text.h"
#include "base/options.h"

#define HW_REG_SCHEMA 2 /* vehicles, vehicle_classes */

enum {
  HW_COL_PLATE,
  HW_COL_COLOUR,
  HW_COL_VIN,
  HW_COL_CLASS,
  HW_COL_TERMINAL,
  HW_COL_REGION,
  HW_COL_ENTERPRISE,
  HW_COL_PERMIT_NO,
  HW_COL_PERMIT_EXPIRES,
  HW_COL_STATUS,
  HW_NCOLS
};

static const char *const hw_col_names[HW_NCOLS] = {
    "plate", "plate_colour", "vin", "class", "terminal_id",
    "region", "enterprise", "permit_no", "permit_expires", "status"};
/* Columns every file must have; the others may be left out and are then empty (NULL). */
static const int hw_col_required[HW_NCOLS] = {1, 1, 0, 1, 0, 1, 0, 0, 0, 0};

/* Byte limits follow the vehicles table (schema/002_registry.sql) and hw_vehicle. */
static const size_t hw_col_max[HW_NCOLS] = {32, 16, 17, 64, 32, 6, 128, 64, 10, 16};

typedef struct hw_vrow {
  unsigned line;
  char *f[HW_NCOLS]; /* owned, NUL-terminated; NULL = empty */
  char colour[12];   /* plate colour code as decimal text */
} hw_vrow;

/* A value already used in the file (plate + colour, terminal id) and where. */
typedef struct hw_seen {
  UT_hash_handle hh;
  unsigned line;
  char key[]; /* owned with the struct */
} hw_seen;

typedef struct hw_import {
  const char *path;
  const PGresult *classes; /* code, name_zh, name_en; owned by the caller */
  unsigned line;           /* physical line being read, 1-based */
  unsigned rec_line;       /* line the current record starts on */
  char **fields;           /* current record's fields; array and strings owned */
  size_t nfields, fcap;
  int col_of[HW_NCOLS];    /* file column holding each known column, -1 when absent */
  size_t ncols;            /* header width; 0 until the header has been read */
  int fatal;               /* the file cannot be read on (bad header, CSV syntax, no memory) */
  int row_bad;             /* the current row has at least one error */
  unsigned nbad;
  hw_vrow *rows;           /* good rows; array and rows owned */
  size_t nrows, rcap;
  hw_seen *plates, *terminals; /* uthash heads; entries owned */
} hw_import;

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

static void hw_bad(hw_import *im, unsigned line, const char *fmt, ...) HW_PRINTF(3, 4);
static void hw_bad(hw_import *im, unsigned line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%u: ", im->path, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  im->row_bad = 1;
}

/* A spreadsheet saved as GBK fails hw_utf8_valid, with a message saying so, rather than
 * arriving as mojibake in the database. */
static int hw_has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

static int hw_all_digits(const char *s, size_t len) {
  if (strlen(s) != len)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

/* YYYY-MM-DD naming a real day. */
static int hw_date_valid(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return 0;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
    return 0;
  if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 0;
  return 1;
}

/* Plate colour as the code, or a name; -1 when neither. */
static int hw_colour_parse(const char *s) {
  static const struct {
    const char *name;
    int code;
  } names[] = {{"blue", 1},  {"蓝", 1}, {"蓝色", 1}, {"yellow", 2}, {"黄", 2},  {"黄色", 2},
               {"black", 3}, {"黑", 3}, {"黑色", 3}, {"white", 4},  {"白", 4},  {"白色", 4},
               {"green", 5}, {"绿", 5}, {"绿色", 5}, {"other", 9},  {"其他", 9}};
  if (*s && strlen(s) <= 3 && strspn(s, "0123456789") == strlen(s)) {
    int v = atoi(s);
    return v <= 255 ? v : -1;
  }
  for (size_t i = 0; i < HW_ARRAY_SIZE(names); i++)
    if (!strcasecmp(s, names[i].name))
      return names[i].code;
  return -1;
}

/* The class code for a code or a name (Chinese as is, English case-insensitive); NULL if none.
 * The result points into im->classes. */
static const char *hw_class_find(const hw_import *im, const char *s) {
  int n = PQntuples(im->classes);
  for (int i = 0; i < n; i++)
    if (!strcmp(s, PQgetvalue(im->classes, i, 0)) || !strcmp(s, PQgetvalue(im->classes, i, 1)) ||
        !strcasecmp(s, PQgetvalue(im->classes, i, 2)))
      return PQgetvalue(im->classes, i, 0);
  return NULL;
}

static int hw_vin_valid(char *vin) {
  if (strlen(vin) != 17)
    return 0;
  for (char *p = vin; *p; p++) {
    if (*p >= 'a' && *p <= 'z')
      *p = (char)(*p - 'a' + 'A'); /* lower case is a typing habit, not a different VIN */
    if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z')) || *p == 'I' || *p == 'O' ||
        *p == 'Q')
      return 0;
  }
  return 1;
}

/* Records key as used on `line`; returns the earlier line when it was already used, 0 when new,
 * -ENOMEM. */
static long hw_seen_add(hw_seen **head, const char *key, unsigned line) {
  hw_seen *s = NULL;
  HASH_FIND_STR(*head, key, s);
  if (s)
    return s->line;
  size_t len = strlen(key);
  s = malloc(sizeof *s + len + 1);
  if (!s)
    return -ENOMEM;
  s->line = line;
  memcpy(s->key, key, len + 1);
  HASH_ADD_STR(*head, key, s);
  return 0;
}

static void hw_seen_free(hw_seen **head) {
  hw_seen *s, *tmp;
  HASH_ITER(hh, *head, s, tmp) {
    HASH_DEL(*head, s);
    free(s);
  }
}

static void hw_vrow_free(hw_vrow *r) {
  for (int c = 0; c < HW_NCOLS; c++)
    free(r->f[c]);
}

static void hw_header(hw_import *im) {
  for (int c = 0; c < HW_NCOLS; c++)
    im->col_of[c] = -1;
  for (size_t i = 0; i < im->nfields; i++) {
    char *field = im->fields[i];
    if (i == 0 && !strncmp(field, "\xef\xbb\xbf", 3)) /* Excel writes a byte-order mark */
      memmove(field, field + 3, strlen(field + 3) + 1);
    for (char *p = field; *p; p++)
      if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p - 'A' + 'a');
    const char *name = field;
    if (!strcmp(name, "plate_color") || !strcmp(name, "colour") || !strcmp(name, "color"))
      name = "plate_colour";
    int c = 0;
    while (c < HW_NCOLS && strcmp(name, hw_col_names[c]))
      c++;
    if (c == HW_NCOLS) {
      hw_bad(im, im->rec_line, "unknown column '%s' in the header", name);
      im->fatal = 1;
    } else if (im->col_of[c] >= 0) {
      hw_bad(im, im->rec_line, "column '%s' appears twice in the header", name);
      im->fatal = 1;
    } else {
      im->col_of[c] = (int)i;
    }
  }
  for (int c = 0; c < HW_NCOLS; c++)
    if (hw_col_required[c] && im->col_of[c] < 0) {
      hw_bad(im, im->rec_line, "the header has no '%s' column", hw_col_names[c]);
      im->fatal = 1;
    }
  if (im->fatal)
    fprintf(stderr, "%s: the first row must name the columns: plate, plate_colour, vin, class, "
                    "terminal_id, region, enterprise, permit_no, permit_expires, status\n",
            im->path);
  im->ncols = im->nfields;
}

/* Checks one data row; a good one is kept in im->rows, a bad one is reported and dropped. */
static void hw_row(hw_import *im) {
  unsigned line = im->rec_line;
  hw_vrow r = {.line = line};
  im->row_bad = 0;
  if (im->nfields != im->ncols) {
    hw_bad(im, line, "%zu fields, but the header has %zu", im->nfields, im->ncols);
    im->nbad++;
    return;
  }
  for (int c = 0; c < HW_NCOLS; c++) {
    if (im->col_of[c] < 0 || im->fields[im->col_of[c]][0] == '\0')
      continue;
    r.f[c] = im->fields[im->col_of[c]];
    im->fields[im->col_of[c]] = NULL; /* ownership moves to the row */
  }
  for (int c = 0; c < HW_NCOLS; c++) {
    if (!r.f[c]) {
      if (hw_col_required[c])
        hw_bad(im, line, "%s is empty", hw_col_names[c]);
      continue;
    }
    if (!hw_utf8_valid(r.f[c], strlen(r.f[c]))) {
      hw_bad(im, line, "%s is not valid UTF-8 (save the file as UTF-8)", hw_col_names[c]);
      free(r.f[c]);
      r.f[c] = NULL;
    } else if (hw_has_control(r.f[c])) {
      hw_bad(im, line, "%s contains a control character or line break", hw_col_names[c]);
      free(r.f[c]);
      r.f[c] = NULL;
    } else if (strlen(r.f[c]) > hw_col_max[c]) {
      hw_bad(im, line, "%s '%s' is longer than %zu bytes", hw_col_names[c], r.f[c], hw_col_max[c]);
      free(r.f[c]);
      r.f[c] = NULL;
    }
  }
  const char *plate = r.f[HW_COL_PLATE] ? r.f[HW_COL_PLATE] : "?";
  int colour = -1;
  if (r.f[HW_COL_COLOUR] && (colour = hw_colour_parse(r.f[HW_COL_COLOUR])) < 0)
    hw_bad(im, line, "plate_colour '%s' is not a colour code (0-255) or a colour name",
           r.f[HW_COL_COLOUR]);
  snprintf(r.colour, sizeof r.colour, "%d", colour < 0 ? 0 : colour);
  if (r.f[HW_COL_VIN] && !hw_vin_valid(r.f[HW_COL_VIN]))
    hw_bad(im, line, "vin '%s' is not 17 characters of [A-HJ-NPR-Z0-9]", r.f[HW_COL_VIN]);
  if (r.f[HW_COL_CLASS]) {
    const char *code = hw_class_find(im, r.f[HW_COL_CLASS]);
    char *copy = code ? strdup(code) : NULL;
    if (!code)
      hw_bad(im, line, "class '%s' does not exist (see table vehicle_classes)", r.f[HW_COL_CLASS]);
    else if (!copy)
      im->fatal = 1;
    free(r.f[HW_COL_CLASS]);
    r.f[HW_COL_CLASS] = copy;
  }
  if (r.f[HW_COL_TERMINAL] &&
      hw_terminal_id_check(r.f[HW_COL_TERMINAL], strlen(r.f[HW_COL_TERMINAL])) != 0)
    hw_bad(im, line, "terminal_id '%s' is not 1-32 characters of [0-9A-Za-z_-]",
           r.f[HW_COL_TERMINAL]);
  if (r.f[HW_COL_REGION] && !hw_all_digits(r.f[HW_COL_REGION], 6))
    hw_bad(im, line, "region '%s' is not a six-digit GB/T 2260 code", r.f[HW_COL_REGION]);
  if (r.f[HW_COL_PERMIT_EXPIRES] && !hw_date_valid(r.f[HW_COL_PERMIT_EXPIRES]))
    hw_bad(im, line, "permit_expires '%s' is not a date YYYY-MM-DD", r.f[HW_COL_PERMIT_EXPIRES]);
  if (r.f[HW_COL_STATUS]) {
    char *s = r.f[HW_COL_STATUS];
    for (char *p = s; *p; p++)
      if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p - 'A' + 'a');
    if (strcmp(s, "active") && strcmp(s, "scrapped") && strcmp(s, "deregistered"))
      hw_bad(im, line, "status '%s' is not active, scrapped or deregistered", s);
  }
  /* Duplicates are checked only on values that are themselves valid. */
  if (r.f[HW_COL_PLATE] && colour >= 0) {
    char key[64]; /* plate <= 32 bytes, separator, colour <= 3 digits */
    snprintf(key, sizeof key, "%s\x1f%d", plate, colour);
    long prev = hw_seen_add(&im->plates, key, line);
    if (prev > 0)
      hw_bad(im, line, "plate %s (colour %d) is also on line %ld", plate, colour, prev);
    else if (prev < 0)
      im->fatal = 1;
  }
  if (r.f[HW_COL_TERMINAL]) {
    long prev = hw_seen_add(&im->terminals, r.f[HW_COL_TERMINAL], line);
    if (prev > 0)
      hw_bad(im, line, "terminal %s is also on line %ld", r.f[HW_COL_TERMINAL], prev);
    else if (prev < 0)
      im->fatal = 1;
  }
  if (im->row_bad || im->fatal) {
    im->nbad += im->row_bad;
    hw_vrow_free(&r);
    return;
  }
  if (im->nrows == im->rcap) {
    size_t cap = im->rcap ? im->rcap * 2 : 256;
    hw_vrow *rows = realloc(im->rows, cap * sizeof *rows);
    if (!rows) {
      im->fatal = 1;
      hw_vrow_free(&r);
      return;
    }
    im->rows = rows, im->rcap = cap;
  }
  im->rows[im->nrows++] = r;
}

static void hw_fields_clear(hw_import *im) {
  for (size_t i = 0; i < im->nfields; i++)
    free(im->fields[i]);
  im->nfields = 0;
}

static void hw_csv_field(void *data, size_t len, void *arg) {
  hw_import *im = arg;
  if (im->fatal)
    return;
  if (im->nfields == 0)
    im->rec_line = im->line;
  /* Line breaks inside quoted fields still count, so later rows keep their true line numbers. */
  for (const char *p = data; p && (p = memchr(p, '\n', len - (size_t)(p - (const char *)data)));
       p++)
    im->line++;
  if (im->nfields == im->fcap) {
    size_t cap = im->fcap ? im->fcap * 2 : 16;
    char **f = realloc(im->fields, cap * sizeof *f);
    if (!f) {
      im->fatal = 1;
      return;
    }
    im->fields = f, im->fcap = cap;
  }
  char *copy = malloc(len + 1);
  if (!copy) {
    im->fatal = 1;
    return;
  }
  if (len)
    memcpy(copy, data, len);
  copy[len] = '\0';
  if (strlen(copy) != len)
    copy[0] = '\x01'; /* an embedded NUL: make it fail the control-character check */
  im->fields[im->nfields++] = copy;
}

/* With CSV_REPALL_NL every unquoted line break arrives here, as the end of a record or alone. */
static void hw_csv_record(int term, void *arg) {
  hw_import *im = arg;
  int blank = im->nfields == 0 || (im->nfields == 1 && im->fields[0][0] == '\0');
  if (!im->fatal && !blank) {
    if (im->ncols == 0)
      hw_header(im);
    else
      hw_row(im);
  }
  hw_fields_clear(im);
  if (term == '\n')
    im->line++;
}

static int hw_csv_read(hw_import *im, FILE *f) {
  struct csv_parser p;
  char buf[65536];
  size_t n;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL) != 0)
    return -ENOMEM;
  im->line = 1;
  while (!im->fatal && (n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (csv_parse(&p, buf, n, hw_csv_field, hw_csv_record, im) != n) {
      fprintf(stderr, "%s:%u: not valid CSV: %s (a quote inside an unquoted field, or a quote "
                      "not followed by a comma?)\n", im->path, im->line, csv_strerror(csv_error(&p)));
      im->fatal = 1;
    }
  }
  if (!im->fatal && ferror(f)) {
    fprintf(stderr, "%s: read error\n", im->path);
    im->fatal = 1;
  }
  if (!im->fatal && csv_fini(&p, hw_csv_field, hw_csv_record, im) != 0) {
    fprintf(stderr, "%s:%u: not valid CSV: %s (a quoted field from here on is never closed)\n",
            im->path, im->line, csv_strerror(csv_error(&p)));
    im->fatal = 1;
  }
  csv_free(&p);
  hw_fields_clear(im);
  return 0;
}

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

static void hw_import_free(hw_import *im) {
  for (size_t i = 0; i < im->nrows; i++)
    hw_vrow_free(&im->rows[i]);
  free(im->rows);
  hw_fields_clear(im);
  free(im->fields);
  hw_seen_free(&im->plates);
  hw_seen_free(&im->terminals);
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
  if (hw_csv_read(&im, f) != 0) {
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
  hw_import_free(&im);
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
