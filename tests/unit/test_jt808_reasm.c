/* Sub-packaged JT/T 808 messages: SmallChi's two-package 0x1205, order, duplicates, both flow
 * conventions, limits, expiry and eviction. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "jt808/jt808_reasm.h"
#include "jt808_vectors.h"

static const hw_jt808_reasm_cfg cfg = {.max_total = 64, .max_bytes = 16 * 1024, .timeout_ms = 30000};

typedef struct pkg {
  jt808_one one;
  hw_jt808_header h;
  const uint8_t *body;
} pkg;

static void pkg_of(const char *name, pkg *p) {
  assert_int_equal(jt808_deframe(name, &p->one), 0);
  assert_int_equal(hw_jt808_header_parse(p->one.frame, p->one.len, &p->h, &p->body), 0);
  assert_true(p->h.subpackaged);
}

/* SmallChi JT808HeaderPackageTest: 0x1205 in two packages (930 + 56 bytes), flows 0xEB, 0xEC. The
 * joined body is one resource list: flow WORD, count DWORD 35, 35 x 28-byte entries. */
static void test_smallchi_two_packages(void **state) {
  (void)state;
  static pkg a, b;
  static uint8_t want[2048];
  hw_jt808_reasm r;
  const uint8_t *out;
  size_t out_len;

  pkg_of("subpkg_1", &a);
  pkg_of("subpkg_2", &b);
  assert_int_equal(a.h.pkg_total, 2);
  assert_int_equal(a.h.pkg_index, 1);
  assert_int_equal(b.h.pkg_index, 2);
  memcpy(want, a.body, a.h.body_len);
  memcpy(want + a.h.body_len, b.body, b.h.body_len);
  size_t wn = (size_t)a.h.body_len + b.h.body_len;
  assert_int_equal(wn, 986);

  for (int order = 0; order < 2; order++) {
    pkg *first = order ? &b : &a, *second = order ? &a : &b;
    hw_jt808_reasm_init(&r, &cfg);
    assert_int_equal(hw_jt808_reasm_add(&r, &first->h, first->body, first->h.body_len, 1000, &out,
                                        &out_len),
                     0);
    assert_int_equal(hw_jt808_reasm_pending(&r), 1);
    assert_int_equal(hw_jt808_reasm_add(&r, &second->h, second->body, second->h.body_len, 1001,
                                        &out, &out_len),
                     1);
    assert_int_equal(out_len, wn);
    assert_memory_equal(out, want, wn);
    assert_int_equal(out[2] << 24 | out[3] << 16 | out[4] << 8 | out[5], 35);
    assert_int_equal(out_len, 6 + 35 * 28);
    assert_int_equal(hw_jt808_reasm_pending(&r), 0);
    assert_int_equal(r.stats.completed, 1);
    hw_jt808_reasm_free(&r);
  }
}

/* A synthetic package: body = index repeated `len` times. */
static void mk(hw_jt808_header *h, uint8_t *body, uint16_t id, uint16_t flow, uint16_t total,
               uint16_t index, size_t len) {
  assert_int_equal(hw_jt808_header_init(h, 0, 0, "13800138000"), 0);
  h->msg_id = id;
  h->flow = flow;
  h->subpackaged = 1;
  h->pkg_total = total;
  h->pkg_index = index;
  h->body_len = (uint16_t)len;
  memset(body, index, len);
}

static void check_body(const uint8_t *out, size_t n, uint16_t total, size_t each) {
  assert_int_equal(n, total * each);
  for (uint16_t i = 0; i < total; i++)
    for (size_t j = 0; j < each; j++)
      assert_int_equal(out[i * each + j], i + 1);
}

static void test_orders_and_flows(void **state) {
  (void)state;
  hw_jt808_reasm r;
  hw_jt808_header h;
  uint8_t body[HW_JT808_BODY_MAX];
  const uint8_t *out;
  size_t n;
  static const uint16_t order[] = {3, 1, 5, 2, 4};

  /* standard flows (base 100 + index - 1), any order, a duplicate in the middle */
  hw_jt808_reasm_init(&r, &cfg);
  for (int i = 0; i < 5; i++) {
    mk(&h, body, 0x0801, (uint16_t)(100 + order[i] - 1), 5, order[i], 1000);
    int rc = hw_jt808_reasm_add(&r, &h, body, 1000, 10, &out, &n);
    assert_int_equal(rc, i == 4 ? 1 : 0);
    if (i == 2) {
      assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 1000, 10, &out, &n), 0);
      assert_int_equal(r.stats.duplicates, 1);
    }
  }
  check_body(out, n, 5, 1000);

  /* one flow for every package (seen in the field), flows wrapping at 65535 */
  for (int i = 0; i < 5; i++) {
    mk(&h, body, 0x0801, 65535, 5, order[i], 7);
    assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 7, 20, &out, &n), i == 4 ? 1 : 0);
  }
  check_body(out, n, 5, 7);
  for (int i = 0; i < 5; i++) {
    mk(&h, body, 0x0801, (uint16_t)(65534 + order[i] - 1), 5, order[i], 3);
    assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 3, 30, &out, &n), i == 4 ? 1 : 0);
  }
  check_body(out, n, 5, 3);
  assert_int_equal(r.stats.completed, 3);
  assert_int_equal(hw_jt808_reasm_pending(&r), 0);

  /* two messages of the same id and total interleaved, told apart by their flows; and another
   * id in between */
  mk(&h, body, 0x0801, 200, 2, 1, 4);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 4, 40, &out, &n), 0);
  mk(&h, body, 0x0801, 300, 2, 1, 5);
  memset(body, 0xA1, 5);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 5, 40, &out, &n), 0);
  mk(&h, body, 0x0704, 201, 2, 1, 6);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 6, 40, &out, &n), 0);
  assert_int_equal(hw_jt808_reasm_pending(&r), 3);
  mk(&h, body, 0x0801, 301, 2, 2, 5);
  memset(body, 0xA2, 5);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 5, 41, &out, &n), 1);
  assert_int_equal(n, 10);
  assert_int_equal(out[0], 0xA1);
  assert_int_equal(out[9], 0xA2);
  mk(&h, body, 0x0801, 201, 2, 2, 4);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 4, 41, &out, &n), 1);
  check_body(out, n, 2, 4);
  assert_int_equal(hw_jt808_reasm_pending(&r), 1); /* the 0x0704 */
  hw_jt808_reasm_free(&r);
}

static void test_limits_expiry_eviction(void **state) {
  (void)state;
  hw_jt808_reasm r;
  hw_jt808_header h;
  uint8_t body[HW_JT808_BODY_MAX];
  const uint8_t *out;
  size_t n;

  hw_jt808_reasm_init(&r, &cfg);
  /* not sub-packaged */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "1"), 0);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 0, 0, &out, &n), -EINVAL);

  /* total above max_total */
  mk(&h, body, 0x0801, 1, 65, 1, 10);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 10, 0, &out, &n), -EMSGSIZE);
  assert_int_equal(hw_jt808_reasm_pending(&r), 0);

  /* bytes above max_bytes: 16 packages of 1023 > 16 KiB, the message is dropped */
  int rc = 0;
  for (uint16_t i = 1; i <= 17 && rc == 0; i++) {
    mk(&h, body, 0x0801, (uint16_t)(i - 1), 20, i, HW_JT808_BODY_MAX);
    rc = hw_jt808_reasm_add(&r, &h, body, HW_JT808_BODY_MAX, 0, &out, &n);
  }
  assert_int_equal(rc, -EMSGSIZE);
  assert_int_equal(hw_jt808_reasm_pending(&r), 0);
  assert_int_equal(r.stats.too_big, 2);

  /* expiry: package 1 at t=0; at t=timeout it is gone, so package 2 cannot complete it */
  mk(&h, body, 0x0801, 10, 2, 1, 3);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 3, 0, &out, &n), 0);
  assert_int_equal(hw_jt808_reasm_expire(&r, cfg.timeout_ms - 1), 0);
  assert_int_equal(hw_jt808_reasm_pending(&r), 1);
  mk(&h, body, 0x0801, 11, 2, 2, 3);
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 3, cfg.timeout_ms, &out, &n), 0);
  assert_int_equal(r.stats.expired, 1);
  assert_int_equal(hw_jt808_reasm_pending(&r), 1); /* package 2 waits for a new package 1 */
  assert_int_equal(hw_jt808_reasm_expire(&r, 2 * cfg.timeout_ms), 1);
  assert_int_equal(hw_jt808_reasm_pending(&r), 0);

  /* eviction: one message more than there are slots drops the oldest */
  for (uint16_t i = 0; i <= HW_JT808_REASM_SLOTS; i++) {
    mk(&h, body, (uint16_t)(0x0900 + i), 0, 2, 1, 1);
    assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 1, 100000 + i, &out, &n), 0);
  }
  assert_int_equal(r.stats.evicted, 1);
  assert_int_equal(hw_jt808_reasm_pending(&r), HW_JT808_REASM_SLOTS);
  mk(&h, body, 0x0902, 1, 2, 2, 1); /* a surviving one completes */
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 1, 100010, &out, &n), 1);
  mk(&h, body, 0x0900, 1, 2, 2, 1); /* the evicted one starts over: no completion */
  assert_int_equal(hw_jt808_reasm_add(&r, &h, body, 1, 100011, &out, &n), 0);
  assert_int_equal(r.stats.evicted, 1);
  assert_int_equal(hw_jt808_reasm_pending(&r), HW_JT808_REASM_SLOTS);
  hw_jt808_reasm_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_smallchi_two_packages),
      cmocka_unit_test(test_orders_and_flows),
      cmocka_unit_test(test_limits_expiry_eviction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
