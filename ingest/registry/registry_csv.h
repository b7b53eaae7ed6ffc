/* The parse-and-validate step of `haulwatch registry import` (cli/registry_cmd.c) and of
 * POST /api/v1/admin/registry (web/web_admin.c): a UTF-8 CSV export of the vehicle registry in,
 * checked rows out. Pure: no database, no network; the vehicle classes it checks against are a
 * result the caller already fetched. Every bad row is reported through im->report, by default on
 * stderr as "PATH:LINE: why", so both front ends give the same messages. Lives below both front
 * ends (registry/) for that reason. Fuzzed by tests/fuzz/fuzz_registry_csv.c. */
#ifndef HW_REGISTRY_CSV_H
#define HW_REGISTRY_CSV_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <uthash.h>

#include "base/common.h"

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
  /* Optional (schema 014): the declared axle count and masses, whole numbers, checked against
   * hw_registry_num_range. */
  HW_COL_AXLES,
  HW_COL_TOTAL_MASS,
  HW_COL_CURB_MASS,
  HW_COL_RATED_LOAD,
  HW_NCOLS
};


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

/* Where a problem goes: line (1-based; 0 for the file as a whole) and the message without the
 * "PATH:LINE: " prefix. msg is only valid during the call. */
typedef void (*hw_import_report_fn)(void *arg, unsigned line, const char *msg);

typedef struct hw_import {
  const char *path;
  hw_import_report_fn report; /* NULL: stderr, "PATH:LINE: msg" */
  void *report_arg;
  const PGresult *classes; /* code, name_zh, name_en; owned by the caller (data only: no I/O) */
  unsigned line;           /* physical line being read, 1-based */
  unsigned rec_line;       /* line the current record starts on */
  int after_cr;            /* the last thing parsed was an unquoted CR (CRLF: one line end) */
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

/* Reads and checks the whole file f into *im, which the caller zeroes and gives path (for
 * messages) and classes. Afterwards: im->fatal when the file cannot be read on (bad header, CSV
 * syntax, read error), im->nbad bad rows (each reported), im->ncols 0 for an empty file, and
 * im->rows[0..nrows) the good rows. Returns 0, or -ENOMEM (csv parser). Free with
 * hw_registry_csv_free in every case. */
int hw_registry_csv_read(hw_import *im, FILE *f) HW_MUST_CHECK;
/* Reports a problem the way the reader does (for the checks the callers make after it). */
void hw_import_report(hw_import *im, unsigned line, const char *fmt, ...) HW_PRINTF(3, 4);
void hw_registry_csv_free(hw_import *im);
/* The accepted range of a numeric column (axles, masses in kg), for the messages and the tests;
 * 0 and *lo = *hi = 0 for a column that is not numeric. */
int hw_registry_num_range(int col, long *lo, long *hi);
/* The good rows as the JSON array hw_admin_import_vehicles() takes (schema/011_admin_audit.sql):
 * [{line, plate, plate_colour, vin, class_code, terminal_id, region, enterprise, permit_no,
 * permit_expires, status, axles, total_mass_kg, curb_mass_kg, rated_load_kg}] (schema 014's
 * version of the function), empty cells null. Owned by the caller; NULL when out of memory. */
cJSON *hw_registry_rows_json(const hw_import *im);

#endif
