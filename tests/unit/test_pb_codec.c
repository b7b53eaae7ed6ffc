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
  int reason = -1;
  assert_int_equal(hw_pb_fix_from_wire(m->report->fixes[0], &out, &reason, &why), 0);
  assert_int_equal(reason, 0);
  assert_int_equal(out.quality, 0);
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

static void expect_refused(Haulwatch__V1__Fix *f, int want_reason, const char *needle) {
  hw_fix out;
  const char *why = NULL;
  int reason = 0;
  assert_int_equal(hw_pb_fix_from_wire(f, &out, &reason, &why), -EINVAL);
  assert_int_equal(reason, want_reason);
  assert_non_null(why);
  assert_non_null(strstr(why, needle));
}

static void expect_stored(Haulwatch__V1__Fix *f, hw_fix *out) {
  const char *why = "unset";
  int reason = -1;
  assert_int_equal(hw_pb_fix_from_wire(f, out, &reason, &why), 0);
  assert_int_equal(reason, 0);
}

/* Only what cannot be stored meaningfully is refused (bad seq, no usable device time); the
 * rest is stored, flagged, within the proto's bounds. */
static void test_fix_bounds(void **state) {
  (void)state;
  Haulwatch__V1__Fix f = HAULWATCH__V1__FIX__INIT;
  f.seq = 1;
  f.time_ms = 1764400000000ULL;
  hw_fix out;
  expect_stored(&f, &out);
  assert_int_equal(out.has_driver, 0);
  assert_int_equal(out.quality, 0);

  f.seq = 0;
  expect_refused(&f, HAULWATCH__V1__REFUSED_FIX__REASON__BAD_SEQ, "seq");
  f.seq = (uint64_t)INT64_MAX + 1;
  expect_refused(&f, HAULWATCH__V1__REFUSED_FIX__REASON__BAD_SEQ, "seq");
  f.seq = (uint64_t)INT64_MAX;
  expect_stored(&f, &out);
  assert_int_equal(out.seq, INT64_MAX);
  f.seq = 1;

  f.time_ms = 0;
  expect_refused(&f, HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE, "time_ms");
  f.time_ms = 5000000000000ULL;
  expect_refused(&f, HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE, "time_ms");
  f.time_ms = UINT64_MAX; /* would be negative as int64 */
  expect_refused(&f, HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE, "time_ms");
  f.time_ms = (uint64_t)HW_TS_MIN_MS - 1;
  expect_refused(&f, HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE, "time_ms");
  f.time_ms = (uint64_t)HW_TS_MAX_MS;
  expect_refused(&f, HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE, "time_ms");
  f.time_ms = (uint64_t)HW_TS_MIN_MS; /* both ends of [2000, 2100) */
  expect_stored(&f, &out);
  f.time_ms = (uint64_t)HW_TS_MAX_MS - 1;
  expect_stored(&f, &out);
  f.time_ms = 1764400000000ULL;

  f.heading = 360;
  expect_stored(&f, &out);
  assert_int_equal(out.quality, HW_Q_BAD_HEADING);
  assert_int_equal(out.heading, 360);
  f.heading = UINT32_MAX; /* within the smallint column */
  expect_stored(&f, &out);
  assert_int_equal(out.quality, HW_Q_BAD_HEADING);
  assert_int_equal(out.heading, HW_PB_HEADING_STORE_MAX);
  f.heading = 359;
  expect_stored(&f, &out);
  assert_int_equal(out.quality, 0);

  f.driver_id = "0123456789012345678901234567890123"; /* 34 bytes */
  expect_stored(&f, &out);
  assert_int_equal(out.quality, HW_Q_BAD_DRIVER);
  assert_int_equal(out.has_driver, 0);
  assert_string_equal(out.driver_id, "");
  f.driver_id = "01234567890123456789012345678901"; /* 32 bytes: the limit */
  expect_stored(&f, &out);
  assert_int_equal(out.quality, 0);
  assert_int_equal(out.has_driver, 1);
  assert_string_equal(out.driver_id, f.driver_id);

  /* Speeds are the quality checks' to judge: stored as sent. */
  f.speed_dkmh = UINT32_MAX;
  expect_stored(&f, &out);
  assert_int_equal(out.speed_dkmh, UINT32_MAX);
}

/* A Report of two fixes, the second with driver_id = "\xff" + tail, as raw bytes: protobuf-c
 * 1.4 unpacks it; hw_pb_check_utf8 must not. */
static void test_invalid_utf8_anywhere(void **state) {
  (void)state;
  Haulwatch__V1__Fix a = HAULWATCH__V1__FIX__INIT, b = HAULWATCH__V1__FIX__INIT;
  a.seq = 1, a.time_ms = 1764400000000ULL, a.driver_id = "\xe4\xba\xac" "A1"; /* valid */
  b.seq = 2, b.time_ms = 1764400001000ULL, b.driver_id = "D\xff" "1";
  Haulwatch__V1__Fix *fp[2] = {&a, &b};
  uint8_t buf[256];
  size_t len = pack_report(buf, sizeof buf, fp, 2);
  uint64_t flen;
  int k = hw_varint_get(buf, len, &flen);
  Haulwatch__V1__ClientMessage *m = hw_pb_decode_client(buf + k, (size_t)flen);
  assert_non_null(m);
  const char *field = NULL;
  assert_int_equal(hw_pb_check_utf8(&m->base, &field), -EILSEQ);
  assert_string_equal(field, "driver_id");

  b.driver_id = "D1";
  len = pack_report(buf, sizeof buf, fp, 2);
  k = hw_varint_get(buf, len, &flen);
  m = hw_pb_decode_client(buf + k, (size_t)flen);
  assert_non_null(m);
  assert_int_equal(hw_pb_check_utf8(&m->base, &field), 0);

  /* Hello: every string field, not only the first. */
  Haulwatch__V1__Hello h = HAULWATCH__V1__HELLO__INIT;
  h.terminal_id = "T1";
  h.token = "tok";
  h.client_version = "v\xed\xa0\x80"; /* a surrogate */
  Haulwatch__V1__ClientMessage hm = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  hm.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO;
  hm.hello = &h;
  len = (size_t)hw_pb_encode_delimited(&hm.base, buf, sizeof buf);
  k = hw_varint_get(buf, len, &flen);
  m = hw_pb_decode_client(buf + k, (size_t)flen);
  assert_non_null(m);
  assert_int_equal(hw_pb_check_utf8(&m->base, &field), -EILSEQ);
  assert_string_equal(field, "client_version");
  /* A oneof member that is not set is not read, whatever its memory holds. */
  hm.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT;
  Haulwatch__V1__Heartbeat hb = HAULWATCH__V1__HEARTBEAT__INIT;
  hm.heartbeat = &hb;
  assert_int_equal(hw_pb_check_utf8(&hm.base, &field), 0);
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
      cmocka_unit_test(test_fix_bounds),
      cmocka_unit_test(test_invalid_utf8_anywhere),
      cmocka_unit_test(test_garbage_is_not_a_message),
      cmocka_unit_test(test_large_report_spills_arena),
      cmocka_unit_test(test_encode_too_small),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
