/* The binary COPY row encoder. Expected bytes were produced by PostgreSQL 15 itself:
 *   COPY (SELECT '013912345678'::text, '2024-03-01 08:30:15.123+00'::timestamptz, ...)
 *   TO STDOUT (FORMAT binary)
 * with the 19-byte header and the trailer cut off. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sinks/pg_copy.h"

/* 013912345678 | 2024-03-01 08:30:15.123+00 | 42 | 2024-03-01 08:30:15.456+00 | 31.230416 |
 * -121.473701 | 65.3::real | 270::int2 | -12 | 2147483649 | 3 | 123456.7 | 'D-42' | 1::int2 | 33::int2 */
static const uint8_t row1_pg[] = {
    0x00, 0x0f, 0x00, 0x00, 0x00, 0x0c, 0x30, 0x31, 0x33, 0x39, 0x31, 0x32, 0x33, 0x34, 0x35,
    0x36, 0x37, 0x38, 0x00, 0x00, 0x00, 0x08, 0x00, 0x02, 0xb5, 0x93, 0xf4, 0x31, 0x74, 0x38,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x02, 0xb5, 0x93, 0xf4, 0x36, 0x89, 0x00, 0x00, 0x00, 0x00, 0x08, 0x40, 0x3f,
    0x3a, 0xfc, 0x8b, 0x00, 0x79, 0xa3, 0x00, 0x00, 0x00, 0x08, 0xc0, 0x5e, 0x5e, 0x51, 0x1d,
    0xff, 0xc5, 0x48, 0x00, 0x00, 0x00, 0x04, 0x42, 0x82, 0x99, 0x9a, 0x00, 0x00, 0x00, 0x02,
    0x01, 0x0e, 0x00, 0x00, 0x00, 0x04, 0xff, 0xff, 0xff, 0xf4, 0x00, 0x00, 0x00, 0x08, 0x00,
    0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x40, 0xfe, 0x24, 0x0b, 0x33, 0x33, 0x33,
    0x33, 0x00, 0x00, 0x00, 0x04, 0x44, 0x2d, 0x34, 0x32, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x02, 0x00, 0x21};

/* T1 | 1999-12-31 23:59:59.999+00 | -7 | 2000-01-01 00:00:00+00 | -90 | 180 | 0::real |
 * 359::int2 | 0 | 0 | 4294967295 | 0 | NULL | 0::int2 | 0::int2 */
static const uint8_t row2_pg[] = {
    0x00, 0x0f, 0x00, 0x00, 0x00, 0x02, 0x54, 0x31, 0x00, 0x00, 0x00, 0x08, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xfc, 0x18, 0x00, 0x00, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xf9, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x08, 0xc0, 0x56, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,
    0x40, 0x66, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x67, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00};

static hw_fix fix1(void) {
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.ts_ms = INT64_C(1709281815123); /* 2024-03-01T08:30:15.123Z */
  f.seq = 42;
  f.recv_ms = INT64_C(1709281815456);
  f.lat_e6 = 31230416;
  f.lon_e6 = -121473701;
  f.speed_dkmh = 653;
  f.heading = 270;
  f.alt_m = -12;
  f.alarm = 0x80000001u;
  f.status = 3;
  f.odometer_hm = 1234567;
  f.has_driver = 1;
  strcpy(f.driver_id, "D-42");
  f.source = HW_SRC_JT808;
  f.quality = 33;
  return f;
}

static void test_header_and_trailer(void **state) {
  (void)state;
  static const uint8_t pg_header[19] = {0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a,
                                        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  assert_memory_equal(hw_pg_copy_header, pg_header, sizeof pg_header);
  assert_int_equal(hw_pg_copy_trailer[0], 0xff);
  assert_int_equal(hw_pg_copy_trailer[1], 0xff);
}

static void test_row_matches_postgres(void **state) {
  (void)state;
  uint8_t out[HW_PG_COPY_ROW_MAX];
  size_t len = 0;
  hw_fix f = fix1();
  assert_int_equal(hw_pg_copy_row(out, "013912345678", &f, &len), 0);
  assert_int_equal(len, sizeof row1_pg);
  assert_memory_equal(out, row1_pg, sizeof row1_pg);
}

static void test_null_driver_and_edges(void **state) {
  (void)state;
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.ts_ms = INT64_C(946684799999); /* 1 ms before PostgreSQL's epoch: negative microseconds */
  f.seq = -7;
  f.recv_ms = INT64_C(946684800000);
  f.lat_e6 = -90000000;
  f.lon_e6 = 180000000;
  f.heading = 359;
  f.status = UINT32_MAX;
  f.has_driver = 0;
  memset(f.driver_id, 0xff, sizeof f.driver_id); /* ignored without has_driver */
  uint8_t out[HW_PG_COPY_ROW_MAX];
  size_t len = 0;
  assert_int_equal(hw_pg_copy_row(out, "T1", &f, &len), 0);
  assert_int_equal(len, sizeof row2_pg);
  assert_memory_equal(out, row2_pg, sizeof row2_pg);
}

static void test_timestamp(void **state) {
  (void)state;
  int64_t us = 1;
  assert_int_equal(hw_pg_copy_timestamp(INT64_C(946684800000), &us), 0);
  assert_int_equal(us, 0);
  assert_int_equal(hw_pg_copy_timestamp(INT64_C(1709281815123), &us), 0);
  assert_int_equal(us, INT64_C(762597015123000));
  assert_int_equal(hw_pg_copy_timestamp(0, &us), 0); /* 1970-01-01 */
  assert_int_equal(us, INT64_C(-946684800000000));
  /* 4714-11-24 00:00 BC is the first value PostgreSQL accepts, 294277-01-01 the first it does
   * not. */
  const int64_t min_ms = INT64_C(-211813488000000) + INT64_C(946684800000);
  const int64_t end_ms = INT64_C(9223371331200000) + INT64_C(946684800000);
  assert_int_equal(hw_pg_copy_timestamp(min_ms, &us), 0);
  assert_int_equal(us, INT64_C(-211813488000000000));
  assert_int_equal(hw_pg_copy_timestamp(min_ms - 1, &us), -EINVAL);
  assert_int_equal(hw_pg_copy_timestamp(end_ms - 1, &us), 0);
  assert_int_equal(hw_pg_copy_timestamp(end_ms, &us), -EINVAL);
  assert_int_equal(hw_pg_copy_timestamp(INT64_MIN, &us), -EINVAL);
  assert_int_equal(hw_pg_copy_timestamp(INT64_MAX, &us), -EINVAL);
}

/* A rejected row leaves the output untouched. */
static void expect_rejected(const char *id, const hw_fix *f) {
  uint8_t out[HW_PG_COPY_ROW_MAX], pristine[HW_PG_COPY_ROW_MAX];
  memset(out, 0xaa, sizeof out);
  memset(pristine, 0xaa, sizeof pristine);
  size_t len = 12345;
  assert_int_equal(hw_pg_copy_row(out, id, f, &len), -EINVAL);
  assert_int_equal(len, 12345);
  assert_memory_equal(out, pristine, sizeof out);
}

static void test_rejects(void **state) {
  (void)state;
  hw_fix f = fix1();
  expect_rejected("", &f);
  expect_rejected("bad id", &f);
  expect_rejected("0123456789012345678901234567890123", &f); /* 34 chars */
  expect_rejected("a\xc3\xa9", &f);

  f = fix1();
  f.ts_ms = INT64_MAX;
  expect_rejected("T1", &f);
  f = fix1();
  f.recv_ms = INT64_MIN;
  expect_rejected("T1", &f);
  f = fix1();
  f.heading = 32768; /* would wrap in smallint */
  expect_rejected("T1", &f);

  static const char *const bad_utf8[] = {
      "\xc0\x80",         /* overlong NUL */
      "\xe0\x80\xaf",     /* overlong */
      "\xed\xa0\x80",     /* surrogate */
      "\xf4\x90\x80\x80", /* above U+10FFFF */
      "\xf5\x80\x80\x80", /* never valid */
      "ab\xe5\xbc",       /* truncated */
      "\x80",             /* stray continuation */
      "\xe5\x41\x89",     /* bad continuation */
  };
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
    f = fix1();
    strcpy(f.driver_id, bad_utf8[i]);
    expect_rejected("T1", &f);
  }
  f = fix1();
  memset(f.driver_id, 'x', sizeof f.driver_id); /* no terminator */
  expect_rejected("T1", &f);
}

static void test_largest_row_and_utf8(void **state) {
  (void)state;
  hw_fix f = fix1();
  /* 张三 followed by ASCII up to the 32-byte limit. */
  strcpy(f.driver_id, "\xe5\xbc\xa0\xe4\xb8\x89" "abcdefghijklmnopqrstuvwxyz");
  assert_int_equal(strlen(f.driver_id), HW_DRIVER_ID_MAX);
  /* The longest id a row may carry: a jt809: id of HW_TID_WIDE_MAX bytes (an ordinary id
   * stops at 32, see test_rejects). */
  char id[HW_TID_WIDE_MAX + 1];
  memset(id, 'P', HW_TID_WIDE_MAX);
  memcpy(id, "jt809:4294967295:", 17);
  id[HW_TID_WIDE_MAX] = 0;
  uint8_t out[HW_PG_COPY_ROW_MAX + 16];
  memset(out, 0xaa, sizeof out);
  size_t len = 0;
  assert_int_equal(hw_pg_copy_row(out, id, &f, &len), 0);
  assert_int_equal(len, HW_PG_COPY_ROW_MAX); /* the bound is exact, so it cannot be too small */
  assert_int_equal(out[HW_PG_COPY_ROW_MAX], 0xaa);
  /* driver_id is the 13th field: length 32 then the bytes, just before source and quality
   * (2 x (4 + 2) bytes). */
  const uint8_t *drv = out + len - 12 - HW_DRIVER_ID_MAX - 4;
  static const uint8_t len32[4] = {0, 0, 0, 32};
  assert_memory_equal(drv, len32, 4);
  assert_memory_equal(drv + 4, f.driver_id, HW_DRIVER_ID_MAX);
  /* terminal_id is the first field. */
  static const uint8_t head[6] = {0, 15, 0, 0, 0, HW_TID_WIDE_MAX};
  assert_memory_equal(out, head, sizeof head);
  assert_memory_equal(out + 6, id, HW_TID_WIDE_MAX);
  /* One byte longer, or an ordinary id longer than 32 bytes: refused. */
  char longer[HW_TID_WIDE_MAX + 2];
  memcpy(longer, id, HW_TID_WIDE_MAX);
  memcpy(longer + HW_TID_WIDE_MAX, "P", 2);
  assert_int_equal(hw_pg_copy_row(out, longer, &f, &len), -EINVAL);
  assert_int_equal(hw_pg_copy_row(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-01234", &f, &len), -EINVAL);
  assert_int_equal(hw_pg_copy_row(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-0123", &f, &len), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_and_trailer),   cmocka_unit_test(test_row_matches_postgres),
      cmocka_unit_test(test_null_driver_and_edges), cmocka_unit_test(test_timestamp),
      cmocka_unit_test(test_rejects),               cmocka_unit_test(test_largest_row_and_utf8),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
