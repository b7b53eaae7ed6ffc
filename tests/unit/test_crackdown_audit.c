/* The 大吨小标 registry audit (sinks/crackdown_query.h) without a database: the GB 1589-2016
 * limit table per axle count, each reason at and beyond its boundary, several reasons at once,
 * undeclared figures, the table built from a result; and the registry CSV's four new columns
 * (registry/registry_csv.h), good and hostile, with the line of each bad value. The vehicle
 * classes and the query result are PGresults made by hand (PQmakeEmptyPGresult). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_csv.h"
#include "sinks/crackdown_query.h"

static hw_cd_config cfg(void) {
  hw_cd_config c;
  hw_cd_config_default(&c);
  return c;
}

static void test_defaults(void **state) {
  (void)state;
  hw_cd_config c = cfg();
  assert_int_equal(c.phaseout_min_km, 1);
  assert_int_equal(c.audit_tolerance_kg, 300);
  assert_int_equal(c.audit_min_load_pct, 50);
}

static void test_limit_table(void **state) {
  (void)state;
  /* Rigid trucks (GB 1589-2016 4.3.2). */
  assert_int_equal(hw_audit_limit_kg(2, 0), 18000);
  assert_int_equal(hw_audit_limit_kg(3, 0), 25000);
  assert_int_equal(hw_audit_limit_kg(4, 0), 31000);
  /* Articulated (semi-trailer tractor), 5 and 6 axles. */
  assert_int_equal(hw_audit_limit_kg(5, 1), 43000);
  assert_int_equal(hw_audit_limit_kg(6, 1), 49000);
  /* Not in the table: not judged against a limit. */
  assert_int_equal(hw_audit_limit_kg(1, 0), 0);
  assert_int_equal(hw_audit_limit_kg(5, 0), 0);
  assert_int_equal(hw_audit_limit_kg(6, 0), 0);
  assert_int_equal(hw_audit_limit_kg(2, 1), 0);
  assert_int_equal(hw_audit_limit_kg(7, 1), 0);
}

static unsigned check(const char *cls, int axles, int64_t total, int64_t curb, int64_t load) {
  hw_cd_config c = cfg();
  hw_audit_vehicle v = {cls, axles, total, curb, load};
  return hw_audit_check(&v, &c);
}

static void test_over_limit_per_axle_count(void **state) {
  (void)state;
  /* Curb + load always adds up here (total = curb + load), and load is plenty: only the limit
   * can flag. At the limit: fine; one kilogram over: flagged. */
  static const struct {
    const char *cls;
    int axles;
    int64_t limit;
  } cases[] = {
      {"heavy_truck", 2, 18000},          {"heavy_truck", 3, 25000},
      {"heavy_truck", 4, 31000},          {"semi_trailer_tractor", 5, 43000},
      {"semi_trailer_tractor", 6, 49000},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t curb = cases[i].limit / 3;
    assert_int_equal(check(cases[i].cls, cases[i].axles, cases[i].limit, curb, cases[i].limit - curb), 0);
    assert_int_equal(check(cases[i].cls, cases[i].axles, cases[i].limit + 1, curb, cases[i].limit + 1 - curb),
                     HW_AUDIT_OVER_LIMIT);
  }
  /* A heavy truck with 5 axles has no limit in the table: 60 t is not judged. */
  assert_int_equal(check("heavy_truck", 5, 60000, 20000, 40000), 0);
  /* A tractor with 3 axles neither. A rigid 2-axle's 18 t applies to every non-articulated
   * class (a dangerous-goods truck). */
  assert_int_equal(check("semi_trailer_tractor", 3, 40000, 15000, 25000), 0);
  assert_int_equal(check("dangerous_goods", 2, 18001, 8000, 10001), HW_AUDIT_OVER_LIMIT);
  /* No axle count, or no total: no limit check. */
  assert_int_equal(check("heavy_truck", -1, 90000, 30000, 60000), 0);
  assert_int_equal(check("heavy_truck", 2, -1, 30000, 60000), 0);
}

static void test_mass_mismatch_tolerance(void **state) {
  (void)state;
  /* curb 10000 + load 8000 = 18000; tolerance 300 both ways. */
  assert_int_equal(check("heavy_truck", 3, 18300, 10000, 8000), 0);
  assert_int_equal(check("heavy_truck", 3, 18301, 10000, 8000), HW_AUDIT_MASS_MISMATCH);
  assert_int_equal(check("heavy_truck", 3, 17700, 10000, 8000), 0);
  assert_int_equal(check("heavy_truck", 3, 17699, 10000, 8000), HW_AUDIT_MASS_MISMATCH);
  /* A figure missing: not judged. */
  assert_int_equal(check("heavy_truck", 3, 25000, -1, 8000), 0);
  assert_int_equal(check("heavy_truck", 3, 25000, 10000, -1), 0);
  /* The tolerance is a setting: 0 means exact. */
  hw_cd_config c = cfg();
  c.audit_tolerance_kg = 0;
  hw_audit_vehicle v = {"heavy_truck", 3, 18001, 10000, 8000};
  assert_int_equal(hw_audit_check(&v, &c), HW_AUDIT_MASS_MISMATCH);
  v.total_kg = 18000;
  assert_int_equal(hw_audit_check(&v, &c), 0);
}

static void test_load_small(void **state) {
  (void)state;
  /* 50 %: load * 100 < curb * 50. curb 12000: 6000 is fine, 5999 flagged (totals add up). */
  assert_int_equal(check("heavy_truck", 3, 18000, 12000, 6000), 0);
  assert_int_equal(check("heavy_truck", 3, 17999, 12000, 5999), HW_AUDIT_LOAD_SMALL);
  assert_int_equal(check("semi_trailer_tractor", 6, 17999, 12000, 5999), HW_AUDIT_LOAD_SMALL);
  /* Not a heavy class and under 12 t in total: not judged. */
  assert_int_equal(check("low_speed_truck", 2, 4500, 3500, 1000), 0);
  /* Any class at 12 t or more is heavy (N3); 11999 is not. */
  assert_int_equal(check("dangerous_goods", 3, 12000, 10000, 2000), HW_AUDIT_LOAD_SMALL);
  assert_int_equal(check("dangerous_goods", 3, 11999, 9999, 2000), 0);
  /* The ratio is a setting. */
  hw_cd_config c = cfg();
  c.audit_min_load_pct = 100;
  hw_audit_vehicle v = {"heavy_truck", 3, 24000, 12000, 11999};
  assert_int_equal(hw_audit_check(&v, &c) & HW_AUDIT_LOAD_SMALL, HW_AUDIT_LOAD_SMALL);
  v.load_kg = 12000;
  assert_int_equal(hw_audit_check(&v, &c) & HW_AUDIT_LOAD_SMALL, 0);
}

static void test_several_reasons(void **state) {
  (void)state;
  /* The classic 大吨小标: 2 axles, declared total 31 t, curb 12 t, load 1.5 t. */
  unsigned bits = check("heavy_truck", 2, 31000, 12000, 1500);
  assert_int_equal(bits, HW_AUDIT_MASS_MISMATCH | HW_AUDIT_OVER_LIMIT | HW_AUDIT_LOAD_SMALL);
  char codes[64];
  hw_audit_reason_codes(bits, codes, sizeof codes);
  assert_string_equal(codes, "mass_mismatch,over_limit,load_small");
  hw_audit_reason_codes(HW_AUDIT_LOAD_SMALL, codes, sizeof codes);
  assert_string_equal(codes, "load_small");
  hw_audit_reason_codes(0, codes, sizeof codes);
  assert_string_equal(codes, "");
  char tiny[12]; /* too small for two codes: cut at a whole code, still a string */
  hw_audit_reason_codes(HW_AUDIT_MASS_MISMATCH | HW_AUDIT_OVER_LIMIT, tiny, sizeof tiny);
  assert_true(strlen(tiny) < sizeof tiny);
}

/* A result shaped as hw_cd_sql(HW_CD_REGISTRY_AUDIT)'s: plate, plate_colour, terminal_id,
 * region, enterprise, class_code, axles, total, curb, load. */
static PGresult *audit_result(const char *const rows[][10], int n) {
  static const char *const names[10] = {"plate", "plate_colour", "terminal_id", "region",
                                        "enterprise", "class_code", "axles", "total_mass_kg",
                                        "curb_mass_kg", "rated_load_kg"};
  PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  assert_non_null(res);
  PGresAttDesc att[10];
  memset(att, 0, sizeof att);
  for (int c = 0; c < 10; c++) {
    att[c].name = (char *)names[c];
    att[c].typid = 25;
    att[c].typlen = -1;
    att[c].atttypmod = -1;
  }
  assert_int_equal(PQsetResultAttrs(res, 10, att), 1);
  for (int r = 0; r < n; r++)
    for (int c = 0; c < 10; c++)
      assert_int_equal(PQsetvalue(res, r, c, (char *)rows[r][c], rows[r][c] ? (int)strlen(rows[r][c]) : -1), 1);
  return res;
}

static void test_table_build(void **state) {
  (void)state;
  static const char *const rows[][10] = {
      {"苏A1", "2", "t1", "320102", "甲", "heavy_truck", "2", "31000", "12000", "1500"},
      {"苏A2", "2", "t2", "320102", "甲", "heavy_truck", "3", "25000", "12000", "12800"}, /* ok */
      {"苏A3", "2", NULL, "320104", NULL, "semi_trailer_tractor", "6", "49001", "9000", "40001"},
      {"苏A4", "2", "t4", "320104", "乙", "heavy_truck", NULL, NULL, "15000", NULL}, /* ok */
  };
  PGresult *res = audit_result(rows, 4);
  hw_cd_request r;
  char err[128];
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_REGISTRY_AUDIT, NULL, NULL, NULL, NULL, err, sizeof err), 0);
  hw_cd_config c = cfg();
  hw_cd_table t;
  assert_int_equal(hw_cd_table_build(&r, &c, res, 0, &t), 0);
  assert_int_equal(t.ncols, 13);
  assert_string_equal(t.cols[10].name, "limit_kg");
  assert_string_equal(t.cols[11].name, "reasons");
  assert_int_equal(t.nrows, 2);
  assert_string_equal(hw_cd_cell(&t, 0, 0), "苏A1");
  assert_string_equal(hw_cd_cell(&t, 0, 10), "18000");
  assert_string_equal(hw_cd_cell(&t, 0, 11), "mass_mismatch,over_limit,load_small");
  assert_string_equal(hw_cd_cell(&t, 0, 12),
                      "total 31000 kg vs curb 12000 + rated load 1500 = 13500 kg (more than 300 "
                      "kg apart); total 31000 kg above the GB 1589-2016 limit of 18000 kg for 2 "
                      "axles; rated load 1500 kg below 50 % of the curb mass 12000 kg");
  assert_string_equal(hw_cd_cell(&t, 1, 0), "苏A3");
  assert_null(hw_cd_cell(&t, 1, 2)); /* NULL stays NULL */
  assert_string_equal(hw_cd_cell(&t, 1, 10), "49000");
  assert_string_equal(hw_cd_cell(&t, 1, 11), "over_limit");
  assert_false(t.truncated);
  hw_cd_table_free(&t);
  /* A limit of one row: the first flagged, and truncated says there were more. */
  assert_int_equal(hw_cd_table_build(&r, &c, res, 1, &t), 0);
  assert_int_equal(t.nrows, 1);
  assert_true(t.truncated);
  hw_cd_table_free(&t);
  /* A result of another shape is refused, not read out of bounds. */
  r.list = HW_CD_PHASEOUT;
  assert_int_equal(hw_cd_table_build(&r, &c, res, 0, &t), -EIO);
  hw_cd_table_free(&t);
  PQclear(res);
}

static void test_request_parse(void **state) {
  (void)state;
  hw_cd_request r;
  char err[160];
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_PHASEOUT, "320200", "2026-01-01", NULL, NULL, err, sizeof err), 0);
  assert_true(r.has_since);
  assert_string_equal(r.region, "320200");
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_PHASEOUT, "32020", NULL, NULL, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "six-digit"));
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_PHASEOUT, NULL, "2026-02-30", NULL, NULL, err, sizeof err), -EINVAL);
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_PHASEOUT, NULL, NULL, "2026-01-01", NULL, err, sizeof err), -EINVAL);
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_OFFLINE_MOVERS, NULL, NULL, "2026-11-03", "2026-11-02", err, sizeof err), -EINVAL);
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_OFFLINE_MOVERS, NULL, "2026-11-03", NULL, NULL, err, sizeof err), -EINVAL);
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_OFFLINE_MOVERS, "320000", NULL, "2026-11-02", NULL, err, sizeof err), 0);
  assert_true(r.has_from);
  assert_false(r.has_to);
  /* The region prefix bound: a province keeps two digits, a city four, a county six. */
  hw_cd_config c = cfg();
  hw_cd_bufs b;
  const char *p[HW_CD_MAX_PARAMS];
  assert_int_equal(hw_cd_bind(&r, &c, "{%}", &b, p), 4);
  assert_string_equal(p[0], "{%}");
  assert_string_equal(p[1], "32");
  assert_non_null(p[2]);
  assert_null(p[3]);
  assert_int_equal(hw_cd_request_parse(&r, HW_CD_REGISTRY_AUDIT, "320200", NULL, NULL, NULL, err, sizeof err), 0);
  assert_int_equal(hw_cd_bind(&r, &c, "{%}", &b, p), 2);
  assert_string_equal(p[1], "3202");
  hw_cd_list l;
  assert_int_equal(hw_cd_list_of("registry-audit", &l), 0);
  assert_int_equal(l, HW_CD_REGISTRY_AUDIT);
  assert_int_equal(hw_cd_list_of("registry_audit", &l), -EINVAL);
}

/* --- the registry CSV's new columns -------------------------------------------------------- */

static PGresult *classes_result(void) {
  static const char *const names[3] = {"code", "name_zh", "name_en"};
  static const char *const rows[][3] = {{"heavy_truck", "重型货车", "heavy truck"},
                                        {"semi_trailer_tractor", "半挂牵引车", "semi-trailer tractor"}};
  PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  PGresAttDesc att[3];
  memset(att, 0, sizeof att);
  for (int c = 0; c < 3; c++) {
    att[c].name = (char *)names[c];
    att[c].typid = 25;
    att[c].typlen = -1;
    att[c].atttypmod = -1;
  }
  assert_int_equal(PQsetResultAttrs(res, 3, att), 1);
  for (int r = 0; r < 2; r++)
    for (int c = 0; c < 3; c++)
      assert_int_equal(PQsetvalue(res, r, c, (char *)rows[r][c], (int)strlen(rows[r][c])), 1);
  return res;
}

typedef struct {
  char text[4096];
  size_t len;
} report_buf;

static void collect(void *arg, unsigned line, const char *msg) {
  report_buf *b = arg;
  int n = snprintf(b->text + b->len, sizeof b->text - b->len, "%u: %s\n", line, msg);
  if (n > 0 && (size_t)n < sizeof b->text - b->len)
    b->len += (size_t)n;
}

static void read_csv(const char *csv, hw_import *im, report_buf *rb, PGresult *classes) {
  memset(im, 0, sizeof *im);
  im->path = "mem.csv";
  im->classes = classes;
  im->report = collect;
  im->report_arg = rb;
  FILE *f = fmemopen((void *)csv, strlen(csv), "r");
  assert_non_null(f);
  assert_int_equal(hw_registry_csv_read(im, f), 0);
  fclose(f);
}

static void test_csv_mass_columns_good(void **state) {
  (void)state;
  PGresult *classes = classes_result();
  hw_import im;
  report_buf rb = {{0}, 0};
  read_csv("plate,plate_colour,class,region,Axles,total_mass_kg,curb_mass_kg,rated_load_kg\n"
           "苏A1,2,heavy_truck,320102,3,25000,12000,12805\n"
           "苏A2,2,heavy_truck,320102,,,,\n"          /* all optional: empty */
           "苏A3,2,semi_trailer_tractor,320102,12,200000,100,0\n", /* the range's ends */
           &im, &rb, classes);
  assert_int_equal(im.fatal, 0);
  assert_int_equal(im.nbad, 0);
  assert_string_equal(rb.text, "");
  assert_int_equal(im.nrows, 3);
  assert_string_equal(im.rows[0].f[HW_COL_AXLES], "3");
  assert_string_equal(im.rows[0].f[HW_COL_TOTAL_MASS], "25000");
  assert_string_equal(im.rows[0].f[HW_COL_CURB_MASS], "12000");
  assert_string_equal(im.rows[0].f[HW_COL_RATED_LOAD], "12805");
  assert_null(im.rows[1].f[HW_COL_AXLES]);
  cJSON *j = hw_registry_rows_json(&im);
  assert_non_null(j);
  char *text = cJSON_PrintUnformatted(cJSON_GetArrayItem(j, 0));
  assert_non_null(strstr(text, "\"axles\":\"3\",\"total_mass_kg\":\"25000\",\"curb_mass_kg\":\"12000\",\"rated_load_kg\":\"12805\""));
  cJSON_free(text);
  text = cJSON_PrintUnformatted(cJSON_GetArrayItem(j, 1));
  assert_non_null(strstr(text, "\"axles\":null,\"total_mass_kg\":null"));
  cJSON_free(text);
  cJSON_Delete(j);
  hw_registry_csv_free(&im);
  /* A file without the columns is as before. */
  memset(&rb, 0, sizeof rb);
  read_csv("plate,plate_colour,class,region\n苏A1,2,heavy_truck,320102\n", &im, &rb, classes);
  assert_int_equal(im.nbad, 0);
  assert_int_equal(im.nrows, 1);
  assert_null(im.rows[0].f[HW_COL_TOTAL_MASS]);
  hw_registry_csv_free(&im);
  PQclear(classes);
}

/* Rows keep their true line numbers whatever ends the lines: LF, CRLF (one line end, not two)
 * or a lone CR (the registry exports of old office software); a quoted line break counts. */
static void test_csv_line_ends(void **state) {
  (void)state;
  PGresult *classes = classes_result();
  static const char *const files[] = {
      "plate,plate_colour,class,region\n苏A1,2,heavy_truck,320102\n\n苏A2,2,heavy_truck,320102\n",
      "plate,plate_colour,class,region\r\n苏A1,2,heavy_truck,320102\r\n\r\n苏A2,2,heavy_truck,320102\r\n",
      "plate,plate_colour,class,region\r苏A1,2,heavy_truck,320102\r\r苏A2,2,heavy_truck,320102\r",
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    hw_import im;
    report_buf rb = {{0}, 0};
    read_csv(files[i], &im, &rb, classes);
    assert_int_equal(im.nbad, 0);
    assert_int_equal(im.nrows, 2);
    assert_int_equal(im.rows[0].line, 2);
    assert_int_equal(im.rows[1].line, 4);
    hw_registry_csv_free(&im);
  }
  hw_import im;
  report_buf rb = {{0}, 0};
  read_csv("plate,plate_colour,class,region\r\n\"苏A1\",2,heavy_truck,320102\r\n"
           "苏A2,2,nope,320102\r\n", &im, &rb, classes);
  assert_true(strncmp(rb.text, "3: ", 3) == 0); /* the bad class is reported on line 3 */
  hw_registry_csv_free(&im);
  PQclear(classes);
}

static void test_csv_mass_columns_hostile(void **state) {
  (void)state;
  PGresult *classes = classes_result();
  hw_import im;
  report_buf rb = {{0}, 0};
  read_csv("plate,plate_colour,class,region,axles,total_mass_kg,curb_mass_kg,rated_load_kg\n"
           "苏B1,2,heavy_truck,320102,1,,,\n"                 /* 2: axles below 2 */
           "苏B2,2,heavy_truck,320102,13,,,\n"                /* 3: axles above 12 */
           "苏B3,2,heavy_truck,320102,,18t,,\n"               /* 4: unit in the cell */
           "苏B4,2,heavy_truck,320102,,200001,,\n"            /* 5: too heavy */
           "苏B5,2,heavy_truck,320102,,,99,\n"                /* 6: curb too light */
           "苏B6,2,heavy_truck,320102,,,,-5\n"                /* 7: negative */
           "苏B7,2,heavy_truck,320102,,1.8e4,,\n"             /* 8: not plain */
           "苏B8,2,heavy_truck,320102,,99999999999999999999,,\n" /* 9: overflow */
           "苏B9,2,heavy_truck,320102,2,\" 18000\",,\n"       /* 10: a space */
           "苏B10,2,heavy_truck,320102,3,25000,12000,12000\n", /* 11: good */
           &im, &rb, classes);
  assert_int_equal(im.fatal, 0);
  assert_int_equal(im.nbad, 9);
  assert_int_equal(im.nrows, 1);
  static const char *const want[] = {
      "2: axles '1' is not a whole number from 2 to 12\n",
      "3: axles '13' is not a whole number from 2 to 12\n",
      "4: total_mass_kg '18t' is not a whole number from 100 to 200000 (kg)\n",
      "5: total_mass_kg '200001' is not a whole number from 100 to 200000 (kg)\n",
      "6: curb_mass_kg '99' is not a whole number from 100 to 200000 (kg)\n",
      "7: rated_load_kg '-5' is not a whole number from 0 to 200000 (kg)\n",
      "8: total_mass_kg '1.8e4' is not a whole number",
      "9: total_mass_kg '99999999999999999999' is longer than 16 bytes\n",
      "10: total_mass_kg ' 18000' is not a whole number",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    if (!strstr(rb.text, want[i]))
      fail_msg("missing \"%s\" in:\n%s", want[i], rb.text);
  }
  assert_null(strstr(rb.text, "11:"));
  hw_registry_csv_free(&im);
  /* A column named twice is refused as a whole. */
  memset(&rb, 0, sizeof rb);
  read_csv("plate,plate_colour,class,region,axles,axles\n苏A1,2,heavy_truck,320102,2,3\n", &im,
           &rb, classes);
  assert_true(im.fatal);
  assert_non_null(strstr(rb.text, "1: column 'axles' appears twice in the header"));
  hw_registry_csv_free(&im);
  long lo, hi;
  assert_int_equal(hw_registry_num_range(HW_COL_RATED_LOAD, &lo, &hi), 1);
  assert_int_equal(lo, 0);
  assert_int_equal(hi, 200000);
  assert_int_equal(hw_registry_num_range(HW_COL_PLATE, &lo, &hi), 0);
  PQclear(classes);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_limit_table),
      cmocka_unit_test(test_over_limit_per_axle_count),
      cmocka_unit_test(test_mass_mismatch_tolerance),
      cmocka_unit_test(test_load_small),
      cmocka_unit_test(test_several_reasons),
      cmocka_unit_test(test_table_build),
      cmocka_unit_test(test_request_parse),
      cmocka_unit_test(test_csv_mass_columns_good),
      cmocka_unit_test(test_csv_mass_columns_hostile),
      cmocka_unit_test(test_csv_line_ends),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
