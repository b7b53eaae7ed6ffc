/* Terminal ids on the position path (registry/terminal.c): ordinary ids up to
 * HW_TERMINAL_ID_MAX, the jt809: form up to HW_TID_WIDE_MAX and nothing else longer, and the
 * registry record keeping an id of either length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "jt809/jt809_login.h"
#include "registry/terminal.h"

static void test_stored_tid_check(void **state) {
  (void)state;
  char id[HW_TID_WIDE_MAX + 2];
  assert_int_equal(hw_stored_tid_check("013800000001", 12), 0);
  memset(id, 'a', HW_TERMINAL_ID_MAX);
  assert_int_equal(hw_stored_tid_check(id, HW_TERMINAL_ID_MAX), 0);
  assert_int_equal(hw_stored_tid_check(id, HW_TERMINAL_ID_MAX + 1), -EINVAL); /* not jt809: */
  assert_int_equal(hw_stored_tid_check("", 0), -EINVAL);
  assert_int_equal(hw_stored_tid_check("a b", 3), -EINVAL);
  /* The longest id hw_jt809_vehicle_tid makes fits, one byte more does not. */
  char plate[HW_JT809_PLATE_MAX + 1];
  memset(plate, 'P', HW_JT809_PLATE_MAX);
  plate[HW_JT809_PLATE_MAX] = 0;
  assert_int_equal(hw_jt809_vehicle_tid(4294967295u, plate, 255, id, sizeof id), 0);
  assert_int_equal(strlen(id), HW_TID_WIDE_MAX);
  assert_int_equal(hw_stored_tid_check(id, strlen(id)), 0);
  memcpy(id + HW_TID_WIDE_MAX, "5", 2);
  assert_int_equal(hw_stored_tid_check(id, HW_TID_WIDE_MAX + 1), -EINVAL);
  assert_int_equal(hw_stored_tid_check("jt809:1:苏A12345:2", strlen("jt809:1:苏A12345:2")), 0);
  assert_int_equal(hw_stored_tid_check("jt809:1:A\n:2", 12), -EINVAL);
  assert_int_equal(hw_stored_tid_check("jt809:", 6), -EINVAL);
}

static void test_registry_wide_ids(void **state) {
  (void)state;
  hw_registry r = {0};
  hw_terminal *a, *b, *c;
  char plate[HW_JT809_PLATE_MAX + 1], wide[HW_TID_WIDE_MAX + 1], narrow33[34];
  memset(plate, 'Q', HW_JT809_PLATE_MAX);
  plate[HW_JT809_PLATE_MAX] = 0;
  assert_int_equal(hw_jt809_vehicle_tid(4294967295u, plate, 255, wide, sizeof wide), 0);
  assert_int_equal(hw_registry_get(&r, "013800000001", &a), 0);
  assert_int_equal(hw_registry_get(&r, wide, &b), 0);
  assert_string_equal(a->id, "013800000001");
  assert_string_equal(b->id, wide);
  assert_ptr_equal(hw_registry_find(&r, wide), b);
  assert_int_equal(hw_registry_get(&r, wide, &c), 0);
  assert_ptr_equal(c, b); /* the same record again */
  assert_int_equal(r.count, 2);
  memset(narrow33, 'n', 33);
  narrow33[33] = 0;
  assert_int_equal(hw_registry_get(&r, narrow33, &c), -EINVAL);
  assert_int_equal(hw_registry_get(&r, "", &c), -EINVAL);
  assert_int_equal(r.count, 2);
  hw_registry_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stored_tid_check),
      cmocka_unit_test(test_registry_wide_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
