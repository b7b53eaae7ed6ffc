/* ingest/web helpers that need no server: CSV cells (RFC 4180 quoting, formula injection
 * neutralised, numbers left alone), region patterns and the C twin of the SQL scope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/web_internal.h"

static char *csv(const char *s, hw_col_type t) {
  static char *buf;
  size_t len = 0, cap = 0;
  free(buf);
  buf = NULL;
  assert_int_equal(hw_csv_cell(&buf, &len, &cap, s, t), 0);
  return buf ? buf : "";
}

static void test_csv_cells(void **state) {
  (void)state;
  assert_string_equal(csv("plain", HW_COL_TEXT), "plain");
  assert_string_equal(csv("苏A00001", HW_COL_TEXT), "苏A00001");
  assert_string_equal(csv("a,b", HW_COL_TEXT), "\"a,b\"");
  assert_string_equal(csv("say \"hi\"", HW_COL_TEXT), "\"say \"\"hi\"\"\"");
  assert_string_equal(csv("two\r\nlines", HW_COL_TEXT), "\"two\r\nlines\"");
  assert_string_equal(csv("=1+1", HW_COL_TEXT), "\"'=1+1\"");
  assert_string_equal(csv("+86 25", HW_COL_TEXT), "\"'+86 25\"");
  assert_string_equal(csv("-2", HW_COL_TEXT), "\"'-2\"");
  assert_string_equal(csv("@SUM(A1)", HW_COL_TEXT), "\"'@SUM(A1)\"");
  assert_string_equal(csv("\t=cmd", HW_COL_TEXT), "\"'\t=cmd\"");
  assert_string_equal(csv("=HYPERLINK(\"x\")", HW_COL_TEXT), "\"'=HYPERLINK(\"\"x\"\")\"");
  assert_string_equal(csv("-118.5", HW_COL_NUM), "-118.5");
  assert_string_equal(csv("", HW_COL_TEXT), "");
  assert_string_equal(csv(NULL, HW_COL_TEXT), "");
}

/* The reports on the command line write the same fields to a stream. */
static void test_csv_fput(void **state) {
  (void)state;
  char *out = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&out, &n);
  assert_non_null(f);
  assert_int_equal(hw_csv_fput(f, "=cmd|' /C calc'!A0", HW_COL_TEXT), 0);
  assert_int_equal(hw_csv_fput(f, "-3.5", HW_COL_NUM), 0);
  assert_int_equal(hw_csv_fput(f, NULL, HW_COL_NUM), 0);
  assert_int_equal(fclose(f), 0);
  assert_string_equal(out, "\"'=cmd|' /C calc'!A0\"-3.5");
  free(out);
}

static void test_region_patterns(void **state) {
  (void)state;
  char p[8];
  hw_web_region_pattern("320000", p);
  assert_string_equal(p, "32%");
  hw_web_region_pattern("320100", p);
  assert_string_equal(p, "3201%");
  hw_web_region_pattern("320102", p);
  assert_string_equal(p, "320102");
  hw_web_region_pattern("000000", p);
  assert_string_equal(p, "%");
  assert_true(hw_web_region_code_ok("320102"));
  assert_false(hw_web_region_code_ok("32010"));
  assert_false(hw_web_region_code_ok("32010x"));
  assert_false(hw_web_region_code_ok("3201020"));

  hw_web_user u = {.nregions = 2};
  strcpy(u.regions[0], "320100");
  strcpy(u.regions[1], "330102");
  assert_true(hw_web_user_sees(&u, "320102"));
  assert_true(hw_web_user_sees(&u, "320100"));
  assert_false(hw_web_user_sees(&u, "320211"));
  assert_true(hw_web_user_sees(&u, "330102"));
  assert_false(hw_web_user_sees(&u, "330103"));
  u.nregions = 0;
  assert_false(hw_web_user_sees(&u, "320102"));
  u.nregions = 1;
  strcpy(u.regions[0], "000000");
  assert_true(hw_web_user_sees(&u, "650102"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_csv_cells),
      cmocka_unit_test(test_csv_fput),
      cmocka_unit_test(test_region_patterns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
