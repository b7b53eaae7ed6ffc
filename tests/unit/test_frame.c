/* Length-delimited framing: the same frames must come out however TCP cuts the bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "protobuf/frame.h"

typedef struct {
  size_t n;
  size_t lens[64];
  uint8_t data[64][700];
} seen_t;

static int collect(void *arg, const uint8_t *f, size_t len) {
  seen_t *s = arg;
  assert_true(s->n < 64);
  assert_true(len <= sizeof s->data[0]);
  s->lens[s->n] = len;
  memcpy(s->data[s->n], f, len);
  s->n++;
  return 0;
}

/* Builds a stream of frames with payload sizes 0, 1, 127, 128 (two-byte prefix), 300 and 600. */
static size_t make_stream(uint8_t *out, size_t *sizes, size_t *count) {
  static const size_t sz[] = {0, 1, 127, 128, 300, 600, 5};
  size_t off = 0;
  for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
    off += hw_varint_put(out + off, sz[i]);
    for (size_t j = 0; j < sz[i]; j++)
      out[off + j] = (uint8_t)(i * 31 + j);
    off += sz[i];
    sizes[i] = sz[i];
  }
  *count = sizeof sz / sizeof sz[0];
  return off;
}

static void check_seen(const seen_t *s, const size_t *sizes, size_t count) {
  assert_int_equal(s->n, count);
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(s->lens[i], sizes[i]);
    for (size_t j = 0; j < sizes[i]; j++)
      assert_int_equal(s->data[i][j], (uint8_t)(i * 31 + j));
  }
}

static void test_whole_read(void **state) {
  (void)state;
  uint8_t buf[4096];
  size_t sizes[16], count;
  size_t len = make_stream(buf, sizes, &count);
  hw_frame_reader r;
  hw_frame_reader_init(&r, 1024);
  seen_t s = {0};
  assert_int_equal(hw_frame_feed(&r, buf, len, collect, &s), 0);
  check_seen(&s, sizes, count);
  assert_int_equal(r.len, 0);
  hw_frame_reader_free(&r);
}

static void test_byte_by_byte(void **state) {
  (void)state;
  uint8_t buf[4096];
  size_t sizes[16], count;
  size_t len = make_stream(buf, sizes, &count);
  hw_frame_reader r;
  hw_frame_reader_init(&r, 1024);
  seen_t s = {0};
  for (size_t i = 0; i < len; i++)
    assert_int_equal(hw_frame_feed(&r, buf + i, 1, collect, &s), 0);
  check_seen(&s, sizes, count);
  hw_frame_reader_free(&r);
}

static void test_split_everywhere(void **state) {
  (void)state;
  uint8_t buf[4096];
  size_t sizes[16], count;
  size_t len = make_stream(buf, sizes, &count);
  /* Every pair of cut points: three reads of arbitrary lengths. */
  for (size_t a = 0; a <= len; a += 7) {
    for (size_t b = a; b <= len; b++) {
      hw_frame_reader r;
      hw_frame_reader_init(&r, 1024);
      seen_t s = {0};
      assert_int_equal(hw_frame_feed(&r, buf, a, collect, &s), 0);
      assert_int_equal(hw_frame_feed(&r, buf + a, b - a, collect, &s), 0);
      assert_int_equal(hw_frame_feed(&r, buf + b, len - b, collect, &s), 0);
      check_seen(&s, sizes, count);
      hw_frame_reader_free(&r);
    }
  }
}

static void test_oversize_refused_before_buffering(void **state) {
  (void)state;
  uint8_t pre[10];
  size_t k = hw_varint_put(pre, 1u << 20);
  hw_frame_reader r;
  hw_frame_reader_init(&r, 65536);
  seen_t s = {0};
  /* Only the prefix arrives: the size is known, so the frame is refused without waiting. */
  assert_int_equal(hw_frame_feed(&r, pre, k, collect, &s), -EMSGSIZE);
  assert_int_equal(s.n, 0);
  assert_int_equal(r.refused, 1u << 20); /* what was announced, for the caller's answer */
  assert_true(hw_frame_buffered(&r) < 64 + 1);
  hw_frame_reader_free(&r);

  /* Same when the prefix is split across reads. */
  hw_frame_reader_init(&r, 65536);
  assert_int_equal(hw_frame_feed(&r, pre, 1, collect, &s), 0);
  assert_int_equal(hw_frame_feed(&r, pre + 1, k - 1, collect, &s), -EMSGSIZE);
  assert_int_equal(r.refused, 1u << 20);
  hw_frame_reader_free(&r);
}

static void test_frame_at_limit_accepted(void **state) {
  (void)state;
  uint8_t buf[600];
  size_t k = hw_varint_put(buf, 512);
  memset(buf + k, 0xab, 512);
  hw_frame_reader r;
  hw_frame_reader_init(&r, 512);
  seen_t s = {0};
  assert_int_equal(hw_frame_feed(&r, buf, k + 512, collect, &s), 0);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.lens[0], 512);
  hw_frame_reader_free(&r);
}

static void test_garbage_prefix(void **state) {
  (void)state;
  uint8_t junk[12];
  memset(junk, 0xff, sizeof junk);
  hw_frame_reader r;
  hw_frame_reader_init(&r, 65536);
  seen_t s = {0};
  /* Eleven continuation bytes can never be a length. (0xff.. also exceeds max_frame first.) */
  int rc = hw_frame_feed(&r, junk, sizeof junk, collect, &s);
  assert_true(rc == -EPROTO || rc == -EMSGSIZE);
  assert_int_equal(s.n, 0);
  hw_frame_reader_free(&r);

  /* A 10-byte varint whose last byte is > 1 overflows 64 bits. */
  uint64_t v;
  uint8_t over[10] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02};
  assert_int_equal(hw_varint_get(over, 10, &v), -EPROTO);
}

static void test_varint_roundtrip(void **state) {
  (void)state;
  uint64_t vals[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    uint8_t b[10];
    uint64_t v = 0;
    size_t k = hw_varint_put(b, vals[i]);
    assert_int_equal(hw_varint_get(b, k, &v), (int)k);
    assert_true(v == vals[i]);
    if (k > 1)
      assert_int_equal(hw_varint_get(b, k - 1, &v), 0);
  }
}

static int stop_at_second(void *arg, const uint8_t *f, size_t len) {
  (void)f;
  (void)len;
  int *n = arg;
  return ++*n == 2 ? -ECANCELED : 0;
}

static void test_callback_error_stops(void **state) {
  (void)state;
  uint8_t buf[64];
  size_t off = 0;
  for (int i = 0; i < 3; i++) {
    off += hw_varint_put(buf + off, 2);
    buf[off++] = 1;
    buf[off++] = 2;
  }
  hw_frame_reader r;
  hw_frame_reader_init(&r, 100);
  int n = 0;
  assert_int_equal(hw_frame_feed(&r, buf, off, stop_at_second, &n), -ECANCELED);
  assert_int_equal(n, 2);
  hw_frame_reader_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_read),
      cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_split_everywhere),
      cmocka_unit_test(test_oversize_refused_before_buffering),
      cmocka_unit_test(test_frame_at_limit_accepted),
      cmocka_unit_test(test_garbage_prefix),
      cmocka_unit_test(test_varint_roundtrip),
      cmocka_unit_test(test_callback_error_stops),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
