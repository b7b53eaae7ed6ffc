/* attach/attach_due.c: the 0x9208 requests a session owes until their alarm is durable. An alarm
 * is handed back only with the ack of the message that carried it, in order; a resent alarm
 * number is not noted twice; alarms whose ack was skipped are dropped, not sent; the pending list
 * is bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "attach/attach_due.h"

/* The 16 raw bytes of an alarm number: terminal "DEV0001", a fixed time, sequence seq, count 2. */
static void raw_no(uint8_t out[16], uint8_t seq) {
  static const uint8_t t[6] = {0x26, 0x12, 0x07, 0x10, 0x00, 0x00};
  memcpy(out, "DEV0001", 7);
  memcpy(out + 7, t, 6);
  out[13] = seq;
  out[14] = 2;
  out[15] = 0;
}

static void test_take_by_ack(void **state) {
  (void)state;
  hw_attach_due d;
  memset(&d, 0, sizeof d);
  uint8_t a[16], b[16], c[16];
  raw_no(a, 1), raw_no(b, 2), raw_no(c, 3);
  assert_int_equal(hw_attach_due_note(&d, 100, a), 0);
  assert_int_equal(hw_attach_due_note(&d, 100, b), 0);
  assert_int_equal(hw_attach_due_note(&d, 101, c), 0);
  hw_attach_alarm_no out[HW_ATTACH_DUE_PENDING];
  size_t dropped = 99;
  /* An ack of something else: nothing handed back, nothing lost. */
  assert_int_equal(hw_attach_due_take(&d, 7, out, HW_ATTACH_DUE_PENDING, &dropped), 0);
  assert_int_equal(dropped, 0);
  assert_int_equal(d.npending, 3);
  /* The ack of 100: its two alarms, in order, with their numbers as read. */
  assert_int_equal(hw_attach_due_take(&d, 100, out, HW_ATTACH_DUE_PENDING, &dropped), 2);
  assert_int_equal(dropped, 0);
  assert_int_equal(out[0].seq, 1);
  assert_int_equal(out[1].seq, 2);
  assert_int_equal(out[0].count, 2);
  assert_memory_equal(out[0].terminal, "DEV0001", 7);
  /* Taken once only. */
  assert_int_equal(hw_attach_due_take(&d, 100, out, HW_ATTACH_DUE_PENDING, &dropped), 0);
  assert_int_equal(hw_attach_due_take(&d, 101, out, HW_ATTACH_DUE_PENDING, &dropped), 1);
  assert_int_equal(out[0].seq, 3);
  assert_int_equal(d.npending, 0);
}

static void test_resend_not_twice(void **state) {
  (void)state;
  hw_attach_due d;
  memset(&d, 0, sizeof d);
  uint8_t a[16];
  raw_no(a, 9);
  assert_int_equal(hw_attach_due_note(&d, 5, a), 0);
  /* The same alarm resent (same or another flow), before or after its ack: not again. */
  assert_int_equal(hw_attach_due_note(&d, 5, a), -EALREADY);
  assert_int_equal(hw_attach_due_note(&d, 6, a), -EALREADY);
  hw_attach_alarm_no out[HW_ATTACH_DUE_PENDING];
  size_t dropped;
  assert_int_equal(hw_attach_due_take(&d, 5, out, HW_ATTACH_DUE_PENDING, &dropped), 1);
  assert_int_equal(hw_attach_due_note(&d, 7, a), -EALREADY);
  /* Forgotten only after HW_ATTACH_DUE_RECENT newer ones. */
  for (int i = 0; i < HW_ATTACH_DUE_RECENT; i++) {
    uint8_t o[16];
    raw_no(o, (uint8_t)(100 + i));
    assert_int_equal(hw_attach_due_note(&d, 1000 + (uint64_t)i, o), 0);
    assert_int_equal(hw_attach_due_take(&d, 1000 + (uint64_t)i, out, HW_ATTACH_DUE_PENDING, &dropped), 1);
  }
  assert_int_equal(hw_attach_due_note(&d, 8, a), 0);
}

static void test_skipped_ack_dropped_and_bounded(void **state) {
  (void)state;
  hw_attach_due d;
  memset(&d, 0, sizeof d);
  uint8_t a[16], b[16];
  raw_no(a, 1), raw_no(b, 2);
  assert_int_equal(hw_attach_due_note(&d, 1, a), 0);
  assert_int_equal(hw_attach_due_note(&d, 2, b), 0);
  hw_attach_alarm_no out[HW_ATTACH_DUE_PENDING];
  size_t dropped;
  /* Acks come in order: the ack of 2 means that of 1 never comes (its store failed). */
  assert_int_equal(hw_attach_due_take(&d, 2, out, HW_ATTACH_DUE_PENDING, &dropped), 1);
  assert_int_equal(dropped, 1);
  assert_int_equal(out[0].seq, 2);
  assert_int_equal(d.npending, 0);
  /* Bounded: one more than HW_ATTACH_DUE_PENDING is refused, not queued. */
  for (int i = 0; i < HW_ATTACH_DUE_PENDING; i++) {
    uint8_t o[16];
    raw_no(o, (uint8_t)(10 + i));
    assert_int_equal(hw_attach_due_note(&d, 3, o), 0);
  }
  uint8_t x[16];
  raw_no(x, 200);
  assert_int_equal(hw_attach_due_note(&d, 3, x), -ENOBUFS);
  assert_int_equal(hw_attach_due_take(&d, 3, out, HW_ATTACH_DUE_PENDING, &dropped),
                   HW_ATTACH_DUE_PENDING);
  assert_int_equal(dropped, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_take_by_ack),
      cmocka_unit_test(test_resend_not_twice),
      cmocka_unit_test(test_skipped_ack_dropped_and_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
