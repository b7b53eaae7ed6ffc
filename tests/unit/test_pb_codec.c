/* The protobuf codec: wire messages <-> internal fix records, and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "protobuf/frame.h"
#include "protobuf/pb_codec.h"

static size_t pack_report(uint8_t *out, size_t cap, Haulwatch__V1__Fix **fixes, size_t n) {
  Haulwatch__V1__Report rep = HAULWATCH__V1__REPORT__INIT;
  rep.n_fixes = n;
  rep.fixes = fixes;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT;
  m.report = &rep;
  int k = hw_pb_encode_delimited(&m.base, out, cap);
  assert_true(k > 0);
  return (size_t)k;
}

static void test_report_roundtrip(void **state) {
  (void)state;
  Haulwatch__V1__Fix f = HAULWATCH__V1__FIX__INIT;
  f.seq = 42;
  f.time_ms = 1764400000123ULL;
  f.lat_e6 = -33868800; /* south: sign survives zigzag encoding */
  f.lon_e6 = 151209300;
  f.speed_dkmh = 853;
  f.heading = 359;
  f.alt_m = -12;
  f.alarm = 0x80000001u;
  f.status = 0x3;
  f.odometer_hm = 1234567;
  f.driver_id = "D123";
  Haulwatch__V1__Fix *fp[1] = {&f};
  uint8_t buf[256];
  size_t len = pack_report(buf, sizeof buf, fp, 1);

  uint64_t flen;
  int k = hw_varint_get(buf, len, &flen);
  assert_true(k > 0);
  assert_int_equal((size_t)k + flen, len);
  Haulwatch__V1__ClientMessage *m = hw_pb_decode_client(buf + k, (size_t)flen);
  assert_non_null(m);
  assert_int_equal(m->msg_case, HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT);
  assert_int_equal(m->report->n_fixes, 1);
  hw_fix out;
  const char *why = NULL;
  assert_int_equal(hw_pb_fix_from_wire(m->report->fixes[0], &out, &why), 0);
  assert_int_equal(out.seq, 42);
  assert_int_equal(out.ts_ms, 1764400000123LL);
  assert_int_equal(out.lat_e6, -33868800);
  assert_int_equal(out.lon_e6, 151209300);
  assert_int_equal(out.speed_dkmh, 853);
  assert_int_equal(out.heading, 359);
  assert_int_equal(out.alt_m, -12);
  assert_int_equal(out.alarm, 0x80000001u);
  assert_int_equal(out.status, 3);
  assert_int_equal(out.odometer_hm, 1234567);
  assert_int_equal(out.has_driver, 1);
  assert_string_equal(out.driver_id, "D123");
  assert_int_equal(out.source, HW_SRC_PROTOBUF);
}

static void expect_invalid(Haulwatch__V1__Fix *f, const char *needle) {
  hw_fix out;
  const char *why = NULL;
  assert_int_equal(hw_pb_fix_from_wire(f, &out, &why), -EINVAL);
  assert_non_null(why);
  assert_non_null(strstr(why, needle));
}

static void test_fix_validation(void **state) {
  (void)state;
  Haulwatch__V1__Fix f = HAULWATCH__V1__FIX__INIT;
  f.seq = 1;
  f.time_ms = 1764400000000ULL;
  hw_fix out;
  const char *why;
  assert_int_equal(hw_pb_fix_from_wire(&f, &out, &why), 0);
  assert_int_equal(out.has_driver, 0);

  f.seq = 0;
  expect_invalid(&f, "seq");
  f.seq = 1;
  f.time_ms = 0;
  expect_invalid(&f, "time_ms");
  f.time_ms = 5000000000000ULL;
  expect_invalid(&f, "time_ms");
  f.time_ms = 1764400000000ULL;
  f.heading = 360;
  expect_invalid(&f, "heading");
  f.heading = 0;
  f.driver_id = "0123456789012345678901234567890123";
  expect_invalid(&f, "driver_id");
}

static void test_garbage_is_not_a_message(void **state) {
  (void)state;
  /* Field 2 (report) declared as a length-delimited field longer than the buffer. */
  uint8_t junk[] = {0x12, 0x7f, 0x01, 0x02};
  assert_null(hw_pb_decode_client(junk, sizeof junk));
  /* Wire type 7 does not exist. */
  uint8_t bad_wt[] = {0x0f, 0x00};
  assert_null(hw_pb_decode_client(bad_wt, sizeof bad_wt));
}

static void test_large_report_spills_arena(void **state) {
  (void)state;
  /* 20,000 fixes unpack to more than the 1 MiB arena: the spill path must hold them all. */
  enum { N = 20000 };
  static Haulwatch__V1__Fix fs[N];
  static Haulwatch__V1__Fix *fp[N];
  for (size_t i = 0; i < N; i++) {
    haulwatch__v1__fix__init(&fs[i]);
    fs[i].seq = i + 1;
    fs[i].time_ms = 1764400000000ULL + i;
    fp[i] = &fs[i];
  }
  static uint8_t buf[1 << 20];
  size_t len = pack_report(buf, sizeof buf, fp, N);
  uint64_t flen;
  int k = hw_varint_get(buf, len, &flen);
  for (int round = 0; round < 3; round++) {
    Haulwatch__V1__ClientMessage *m = hw_pb_decode_client(buf + k, (size_t)flen);
    assert_non_null(m);
    assert_int_equal(m->report->n_fixes, N);
    assert_int_equal(m->report->fixes[N - 1]->seq, N);
  }
}

static void test_encode_too_small(void **state) {
  (void)state;
  Haulwatch__V1__Error e = HAULWATCH__V1__ERROR__INIT;
  e.reason = "a reason longer than the buffer";
  Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR;
  m.error = &e;
  uint8_t buf[8];
  assert_int_equal(hw_pb_encode_delimited(&m.base, buf, sizeof buf), -ENOSPC);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_report_roundtrip),
      cmocka_unit_test(test_fix_validation),
      cmocka_unit_test(test_garbage_is_not_a_message),
      cmocka_unit_test(test_large_report_spills_arena),
      cmocka_unit_test(test_encode_too_small),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
