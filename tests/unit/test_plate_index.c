/* registry/plate_index.c: registry vehicles found by plate and colour (JT/T 809 names vehicles
 * that way), exact bytes, the colour part of the key, plates that cannot be indexed, and a
 * duplicate refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "registry/plate_index.h"

static hw_vehicle veh(const char *plate, uint8_t colour, const char *tid) {
  hw_vehicle v;
  memset(&v, 0, sizeof v);
  snprintf(v.plate, sizeof v.plate, "%s", plate);
  v.plate_colour = colour;
  snprintf(v.terminal_id, sizeof v.terminal_id, "%s", tid);
  return v;
}

static void test_find(void **state) {
  (void)state;
  hw_vehicle vs[5] = {veh("苏A12345", 2, "013800000001"), veh("苏A12345", 1, "013800000002"),
                      veh("鲁B00001", 2, "sim000003"), veh("", 2, "sim000004"),
                      veh("A", 9, "sim000005")};
  /* A plate of exactly HW_PLATE_MAX bytes is indexed; the key has room for it. */
  memset(vs[4].plate, 'Z', HW_PLATE_MAX);
  vs[4].plate[HW_PLATE_MAX] = 0;
  hw_plate_index *ix = NULL;
  char err[128] = "";
  assert_int_equal(hw_plate_index_build(vs, 5, &ix, err, sizeof err), 0);
  assert_int_equal(hw_plate_index_count(ix), 4); /* the empty plate is not indexed */
  assert_ptr_equal(hw_plate_index_find(ix, "苏A12345", 2), &vs[0]);
  assert_ptr_equal(hw_plate_index_find(ix, "苏A12345", 1), &vs[1]); /* colour is part of it */
  assert_null(hw_plate_index_find(ix, "苏A12345", 3));
  assert_ptr_equal(hw_plate_index_find(ix, "鲁B00001", 2), &vs[2]);
  assert_null(hw_plate_index_find(ix, "鲁B0000", 2));   /* no prefix match */
  assert_null(hw_plate_index_find(ix, "鲁B000012", 2)); /* nor a longer plate */
  assert_null(hw_plate_index_find(ix, "鲁b00001", 2));  /* bytes, not case-folded */
  assert_null(hw_plate_index_find(ix, "", 2));
  assert_null(hw_plate_index_find(ix, NULL, 2));
  assert_ptr_equal(hw_plate_index_find(ix, vs[4].plate, 9), &vs[4]);
  char longer[HW_PLATE_MAX + 2];
  memset(longer, 'Z', HW_PLATE_MAX + 1);
  longer[HW_PLATE_MAX + 1] = 0;
  assert_null(hw_plate_index_find(ix, longer, 9)); /* longer than any registry plate */
  assert_null(hw_plate_index_find(NULL, "苏A12345", 2));
  hw_plate_index_free(ix);
}

static void test_duplicate_refused(void **state) {
  (void)state;
  hw_vehicle vs[3] = {veh("冀A34567", 2, "a1"), veh("冀A34568", 2, "a2"), veh("冀A34567", 2, "a3")};
  hw_plate_index *ix = NULL;
  char err[128] = "";
  assert_int_equal(hw_plate_index_build(vs, 3, &ix, err, sizeof err), -EPROTO);
  assert_null(ix);
  assert_non_null(strstr(err, "冀A34567"));
}

static void test_empty(void **state) {
  (void)state;
  hw_plate_index *ix = NULL;
  char err[8];
  assert_int_equal(hw_plate_index_build(NULL, 0, &ix, err, sizeof err), 0);
  assert_int_equal(hw_plate_index_count(ix), 0);
  assert_null(hw_plate_index_find(ix, "苏A12345", 2));
  hw_plate_index_free(ix);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_find),
      cmocka_unit_test(test_duplicate_refused),
      cmocka_unit_test(test_empty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
