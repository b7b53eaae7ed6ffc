/* libFuzzer target for the registry CSV importer's parse-and-validate step (registry/registry_csv.c,
 * what `haulwatch registry import` runs before touching the database), on libcsv.
 *
 * Input: the file's bytes. The vehicle classes are the ones schema/002_registry.sql installs,
 * built as an in-memory libpq result (no server).
 * Oracles: the read returns 0; a file that cannot be read on is not also given rows; every good
 * row has the required columns, NUL-terminated values within the column limits, a class that is
 * one of the codes, and a line number inside the file; no plate+colour and no terminal id twice.
 * Bad rows are reported on stderr, as the command does. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_csv.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

static const char *const classes[][3] = {
    {"heavy_truck", "重型货车", "heavy truck"},
    {"semi_trailer_tractor", "半挂牵引车", "semi-trailer tractor"},
    {"dangerous_goods", "危险货物运输车", "dangerous-goods vehicle"},
    {"converted_tractor", "变型拖拉机", "converted tractor"},
    {"low_speed_truck", "低速货车", "low-speed truck"},
    {"three_wheel", "三轮汽车", "three-wheel vehicle"},
    {"tractor", "拖拉机", "tractor"},
};

static PGresult *classes_result(void) {
  PGresAttDesc att[3];
  static const char *const names[3] = {"code", "name_zh", "name_en"};
  PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK); /* lives as long as the process */
  CHECK(r);
  memset(att, 0, sizeof att);
  for (int i = 0; i < 3; i++) {
    att[i].name = (char *)names[i];
    att[i].typid = 25; /* text */
    att[i].typlen = -1;
    att[i].atttypmod = -1;
  }
  CHECK(PQsetResultAttrs(r, 3, att));
  for (int row = 0; row < (int)(sizeof classes / sizeof classes[0]); row++)
    for (int c = 0; c < 3; c++)
      CHECK(PQsetvalue(r, row, c, (char *)classes[row][c], (int)strlen(classes[row][c])));
  return r;
}

static int is_class(const char *s) {
  for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
    if (!strcmp(s, classes[i][0]))
      return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static PGresult *cls;
  static const size_t max[HW_NCOLS] = {32, 16, 17, 64, 32, 6, 128, 64, 10, 16, 16, 16, 16, 16};
  if (!cls)
    cls = classes_result();
  if (size == 0)
    return 0; /* fmemopen refuses an empty buffer; the command reads an empty file as "empty" */
  FILE *f = fmemopen((void *)data, size, "rb");
  CHECK(f);
  hw_import im = {.path = "fuzz.csv", .classes = cls};
  CHECK(hw_registry_csv_read(&im, f) == 0);
  fclose(f);
  unsigned lines = 1;
  for (size_t i = 0; i < size; i++) /* LF, CRLF and a lone CR each end a line */
    lines += data[i] == '\n' || (data[i] == '\r' && (i + 1 == size || data[i + 1] != '\n'));
  for (size_t i = 0; i < im.nrows; i++) {
    const hw_vrow *r = &im.rows[i];
    CHECK(r->line >= 2 && r->line <= lines);
    CHECK(r->f[HW_COL_PLATE] && r->f[HW_COL_CLASS] && r->f[HW_COL_REGION]);
    CHECK(memchr(r->colour, 0, sizeof r->colour) && r->colour[0]);
    CHECK(is_class(r->f[HW_COL_CLASS]));
    for (int c = 0; c < HW_NCOLS; c++) {
      CHECK(!r->f[c] || strlen(r->f[c]) <= max[c]);
      long lo, hi; /* a kept number is plain digits within its column's range */
      if (r->f[c] && hw_registry_num_range(c, &lo, &hi))
        CHECK(strspn(r->f[c], "0123456789") == strlen(r->f[c]) && atol(r->f[c]) >= lo &&
              atol(r->f[c]) <= hi);
    }
    for (size_t j = 0; j < i; j++) {
      const hw_vrow *o = &im.rows[j];
      CHECK(strcmp(o->f[HW_COL_PLATE], r->f[HW_COL_PLATE]) || strcmp(o->colour, r->colour));
      CHECK(!o->f[HW_COL_TERMINAL] || !r->f[HW_COL_TERMINAL] ||
            strcmp(o->f[HW_COL_TERMINAL], r->f[HW_COL_TERMINAL]));
    }
  }
  hw_registry_csv_free(&im);
  return 0;
}
