/* The JT/T 808 deframer and frame encoder: every vector whole, byte by byte and split at every
 * offset; shared and doubled delimiters; garbage; broken frames reported and skipped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jt808/jt808_frame.h"
#include "jt808_vectors.h"

/* Every event the deframer reports, serialised (kind, length, bytes) so two runs compare with
 * memcmp. */
typedef struct evlog {
  uint8_t *buf;
  size_t len, cap;
  int frames, errors;
  int last_ev;
  int stop_after; /* return -ECANCELED from the callback after this many events (0: never) */
  int events;
} evlog;

static void evlog_put(evlog *l, const void *p, size_t n) {
  if (l->len + n > l->cap) {
    l->cap = (l->len + n) * 2 + 256;
    l->buf = realloc(l->buf, l->cap);
    assert_non_null(l->buf);
  }
  memcpy(l->buf + l->len, p, n);
  l->len += n;
}

static int evlog_cb(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  evlog *l = arg;
  uint8_t hdr[3] = {(uint8_t)ev, (uint8_t)(len >> 8), (uint8_t)len};
  assert_true(len <= HW_JT808_FRAME_MAX);
  evlog_put(l, hdr, sizeof hdr);
  evlog_put(l, data, len);
  if (ev == HW_JT808_FRAME) {
    assert_true(len >= HW_JT808_HEADER_MIN);
    l->frames++;
  } else {
    l->errors++;
  }
  l->last_ev = ev;
  l->events++;
  if (l->stop_after && l->events == l->stop_after)
    return -ECANCELED;
  return 0;
}

static void evlog_free(evlog *l) {
  free(l->buf);
  memset(l, 0, sizeof *l);
}

/* Feeds wire[0..n) cut into pieces at the given offsets (sorted, within 0..n). */
static void feed_cuts(const uint8_t *wire, size_t n, const size_t *cuts, size_t ncuts, evlog *l,
                      hw_jt808_deframer *d) {
  size_t at = 0;
  hw_jt808_deframer_init(d);
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    assert_int_equal(hw_jt808_deframer_feed(d, wire + at, to - at, evlog_cb, l), 0);
    at = to;
  }
}

/* Whole, byte by byte, and split in two at every offset: identical events every time. */
static void check_all_splits(const uint8_t *wire, size_t n, evlog *whole) {
  hw_jt808_deframer d;
  evlog l = {0};
  size_t *cuts = malloc((n + 1) * sizeof *cuts);
  assert_non_null(cuts);

  feed_cuts(wire, n, NULL, 0, whole, &d);

  for (size_t i = 0; i < n; i++)
    cuts[i] = i + 1;
  feed_cuts(wire, n, cuts, n > 0 ? n - 1 : 0, &l, &d);
  assert_int_equal(l.len, whole->len);
  assert_memory_equal(l.buf, whole->buf, whole->len);
  evlog_free(&l);

  for (size_t at = 0; at <= n; at++) {
    feed_cuts(wire, n, &at, 1, &l, &d);
    assert_int_equal(l.len, whole->len);
    assert_memory_equal(l.buf, whole->buf, whole->len);
    evlog_free(&l);
  }
  free(cuts);
}

/* Independent unescape of one wire frame: inner bytes without the checksum. */
static size_t ref_unescape(const uint8_t *w, size_t n, uint8_t *out) {
  size_t o = 0;
  for (size_t i = 1; i + 1 < n; i++) {
    if (w[i] == 0x7D && i + 2 < n) {
      out[o++] = w[i + 1] == 0x01 ? 0x7D : 0x7E;
      i++;
    } else {
      out[o++] = w[i];
    }
  }
  return o - 1; /* drop the checksum */
}

static void test_vectors_every_split(void **state) {
  (void)state;
  static uint8_t wire[4 * HW_JT808_FRAME_MAX], ref[HW_JT808_FRAME_MAX];
  for (size_t i = 0; i < JT808_NVECTORS; i++) {
    const jt808_vector *v = &jt808_vectors[i];
    size_t n = jt808_unhex(v->hex, wire, sizeof wire);
    evlog whole = {0};
    check_all_splits(wire, n, &whole);
    if (v->good) {
      assert_int_equal(whole.frames, 1);
      assert_int_equal(whole.errors, 0);
      size_t rn = ref_unescape(wire, n, ref);
      assert_int_equal(whole.len, 3 + rn);
      assert_memory_equal(whole.buf + 3, ref, rn);
    } else {
      assert_int_equal(whole.frames, 0);
      assert_int_equal(whole.errors, 1);
    }
    evlog_free(&whole);
  }
}

/* All good vectors in one stream, three ways: delimiters doubled (as recorded), shared, and with
 * noise between frames. Every way yields the same frames in order, whatever the chunking. */
static void test_stream_shared_doubled_garbage(void **state) {
  (void)state;
  static const char noise[] = "\r\nOK\r\n";
  size_t cap = 64 * 1024, n_doubled = 0, n_shared = 0, n_noisy = 0, nfr = 0;
  uint8_t *doubled = malloc(cap), *shared = malloc(cap), *noisy = malloc(cap);
  uint8_t one[4 * HW_JT808_FRAME_MAX];
  evlog a = {0}, b = {0}, c = {0};
  hw_jt808_deframer d;

  assert_non_null(doubled);
  assert_non_null(shared);
  assert_non_null(noisy);
  memcpy(noisy, "AT+CSQ\r\n", 8); /* before the first 7E */
  n_noisy = 8;
  for (size_t i = 0; i < JT808_NVECTORS; i++) {
    if (!jt808_vectors[i].good)
      continue;
    size_t n = jt808_unhex(jt808_vectors[i].hex, one, sizeof one);
    memcpy(doubled + n_doubled, one, n);
    n_doubled += n;
    /* shared: the closing 7E of the previous frame opens this one */
    memcpy(shared + n_shared, n_shared ? one + 1 : one, n_shared ? n - 1 : n);
    n_shared += n_shared ? n - 1 : n;
    memcpy(noisy + n_noisy, one, n);
    n_noisy += n;
    memcpy(noisy + n_noisy, noise, sizeof noise - 1);
    n_noisy += sizeof noise - 1;
    nfr++;
  }

  feed_cuts(doubled, n_doubled, NULL, 0, &a, &d);
  assert_int_equal(a.frames, (int)nfr);
  assert_int_equal(a.errors, 0);
  assert_int_equal(d.stats.garbage_bytes, 0);

  feed_cuts(shared, n_shared, NULL, 0, &b, &d);
  assert_int_equal(b.len, a.len);
  assert_memory_equal(b.buf, a.buf, a.len);

  feed_cuts(noisy, n_noisy, NULL, 0, &c, &d);
  assert_int_equal(c.len, a.len);
  assert_memory_equal(c.buf, a.buf, a.len);
  /* the noise after the last frame is never closed by a 7E: still pending */
  assert_int_equal(d.stats.garbage_bytes, 8 + (nfr - 1) * (sizeof noise - 1));
  assert_int_equal(d.stats.frames, nfr);
  evlog_free(&c);

  /* Chunked like TCP might: pseudo-random piece sizes, many patterns. */
  srand(808);
  for (int round = 0; round < 200; round++) {
    size_t cuts[64], nc = 0, at = 0;
    while (nc < 64) {
      at += 1 + (size_t)rand() % 700;
      if (at >= n_noisy)
        break;
      cuts[nc++] = at;
    }
    feed_cuts(noisy, n_noisy, cuts, nc, &c, &d);
    assert_int_equal(c.len, a.len);
    assert_memory_equal(c.buf, a.buf, a.len);
    evlog_free(&c);
  }
  evlog_free(&a);
  evlog_free(&b);
  evlog_free(&c);
  free(doubled);
  free(shared);
  free(noisy);
}

static size_t wire_of(const char *name, uint8_t *out, size_t cap) {
  return jt808_unhex(jt808_vector_get(name)->hex, out, cap);
}

/* A broken frame is reported once and the next good frame still comes through. */
static void check_error_then_good(const uint8_t *bad, size_t nbad, hw_jt808_frame_event want,
                                  hw_jt808_deframer *d) {
  uint8_t buf[8192];
  size_t n;
  evlog l = {0};
  assert_true(nbad < 4096);
  memcpy(buf, bad, nbad);
  n = nbad + wire_of("loc_go", buf + nbad, sizeof buf - nbad);
  feed_cuts(buf, n, NULL, 0, &l, d);
  assert_int_equal(l.events, 2);
  assert_int_equal(l.buf[0], want);
  assert_int_equal(l.frames, 1);
  assert_int_equal(l.last_ev, HW_JT808_FRAME);
  evlog_free(&l);
}

static void test_bad_checksum(void **state) {
  (void)state;
  uint8_t w[256];
  hw_jt808_deframer d;
  size_t n = wire_of("bad_cs_esc", w, sizeof w);
  check_error_then_good(w, n, HW_JT808_BAD_CHECKSUM, &d);
  assert_int_equal(d.stats.bad_checksum, 1);
  assert_int_equal(d.stats.frames, 1);

  /* One flipped bit anywhere inside a good frame is caught. */
  n = wire_of("loc_sc", w, sizeof w);
  for (size_t i = 1; i + 1 < n; i++) {
    if (w[i] == 0x7D || w[i] == 0x7E || (w[i] ^ 0x10) == 0x7D || (w[i] ^ 0x10) == 0x7E)
      continue;
    w[i] ^= 0x10;
    evlog l = {0};
    feed_cuts(w, n, NULL, 0, &l, &d);
    assert_int_equal(l.frames, 0);
    assert_int_equal(d.stats.bad_checksum, 1);
    evlog_free(&l);
    w[i] ^= 0x10;
  }
}

static void test_bad_escape(void **state) {
  (void)state;
  uint8_t w[64];
  hw_jt808_deframer d;
  size_t n = wire_of("bad_escape", w, sizeof w);
  check_error_then_good(w, n, HW_JT808_BAD_ESCAPE, &d);
  assert_int_equal(d.stats.bad_escape, 1);

  /* 7D then 7E with a wrong XOR: not the lenient case, a bad escape. */
  static const uint8_t lone[] = {0x7E, 0x00, 0x02, 0x00, 0x00, 0x01, 0x23, 0x45, 0x67,
                                 0x89, 0x01, 0x00, 0x00, 0x7D, 0x7E};
  check_error_then_good(lone, sizeof lone, HW_JT808_BAD_ESCAPE, &d);
  assert_int_equal(d.stats.bad_escape, 1);
  assert_int_equal(d.stats.lenient_7d, 0);
}

static void test_lenient_7d_checksum(void **state) {
  (void)state;
  jt808_one o;
  assert_int_equal(jt808_deframe("hb_cs7d_raw", &o), 0);
  assert_int_equal(o.len, 12);
  /* The XOR of the header is indeed 0x7D. */
  assert_int_equal(hw_jt808_xor(o.frame, o.len), 0x7D);
}

static void test_oversize(void **state) {
  (void)state;
  size_t n = 3000;
  uint8_t *w = malloc(n + 2);
  hw_jt808_deframer d;
  assert_non_null(w);
  w[0] = 0x7E;
  memset(w + 1, 0x11, n);
  w[n + 1] = 0x7E;
  check_error_then_good(w, n + 2, HW_JT808_OVERSIZE, &d);
  assert_int_equal(d.stats.oversize, 1);
  /* What followed the limit was skipped, up to the closing 7E. */
  assert_int_equal(d.stats.garbage_bytes, n - HW_JT808_FRAME_MAX - 1);

  /* A frame of exactly HW_JT808_FRAME_MAX unescaped bytes is still accepted. */
  w[0] = 0x7E;
  memset(w + 1, 0x11, HW_JT808_FRAME_MAX - 1);
  w[HW_JT808_FRAME_MAX] = hw_jt808_xor(w + 1, HW_JT808_FRAME_MAX - 1);
  w[HW_JT808_FRAME_MAX + 1] = 0x7E;
  evlog l = {0};
  feed_cuts(w, HW_JT808_FRAME_MAX + 2, NULL, 0, &l, &d);
  assert_int_equal(l.frames, 1);
  evlog_free(&l);
  free(w);
}

static void test_runts_and_leading_garbage(void **state) {
  (void)state;
  uint8_t w[512];
  size_t n = 0;
  hw_jt808_deframer d;
  evlog l = {0};
  memcpy(w, "junk", 4);
  n = 4;
  n += wire_of("hb_2013", w + n, sizeof w - n);
  static const uint8_t runt[] = {0x01, 0x02, 0x03, 0x7E}; /* after the shared 7E */
  memcpy(w + n, runt, sizeof runt);
  n += sizeof runt;
  n += wire_of("hb_2019", w + n, sizeof w - n);
  feed_cuts(w, n, NULL, 0, &l, &d);
  assert_int_equal(l.frames, 2);
  assert_int_equal(l.errors, 0);
  assert_int_equal(d.stats.garbage_bytes, 4 + 3);
  evlog_free(&l);
}

static void test_callback_stops_feed(void **state) {
  (void)state;
  uint8_t w[256];
  size_t n = wire_of("hb_2013", w, sizeof w);
  n += wire_of("hb_2019", w + n, sizeof w - n);
  hw_jt808_deframer d;
  evlog l = {0};
  l.stop_after = 1;
  hw_jt808_deframer_init(&d);
  assert_int_equal(hw_jt808_deframer_feed(&d, w, n, evlog_cb, &l), -ECANCELED);
  assert_int_equal(l.frames, 1);
  evlog_free(&l);
}

/* encode(deframe(v)) == v for every good vector: same escaping, same checksum. */
static void test_encode_roundtrip(void **state) {
  (void)state;
  static uint8_t wire[4 * HW_JT808_FRAME_MAX], out[4 * HW_JT808_FRAME_MAX];
  for (size_t i = 0; i < JT808_NVECTORS; i++) {
    const jt808_vector *v = &jt808_vectors[i];
    jt808_one o;
    size_t n, on;
    if (!v->good || strcmp(v->name, "hb_cs7d_raw") == 0)
      continue;
    n = jt808_unhex(v->hex, wire, sizeof wire);
    assert_int_equal(jt808_deframe(v->name, &o), 0);
    assert_int_equal(hw_jt808_frame_encode(o.frame, o.len, out, sizeof out, &on), 0);
    assert_int_equal(on, n);
    assert_memory_equal(out, wire, n);
  }
}

/* go-jt808 protocol/jt808/packet_codec_test.go, Test_escape: the input there carries its
 * checksum, ours is computed. */
static void test_encode_go_escape(void **state) {
  (void)state;
  uint8_t raw[64], want[128], out[128];
  size_t n = jt808_unhex("000140050100000000017299841738ffff007b01c803", raw, sizeof raw);
  size_t wn = jt808_unhex("7e000140050100000000017299841738ffff007b01c803b57e", want, sizeof want);
  size_t on;
  assert_int_equal(hw_jt808_frame_encode(raw, n, out, sizeof out, &on), 0);
  assert_int_equal(on, wn);
  assert_memory_equal(out, want, wn);

  /* Their second case escapes bytes whose last one is not a real checksum; with the checksum
   * computed (0x7E here) it is escaped too. */
  n = jt808_unhex("0800407e08010000000001727d99841738ffff0000007b00000701", raw, sizeof raw);
  wn = jt808_unhex("7e0800407d0208010000000001727d0199841738ffff0000007b000007017d027e", want,
                   sizeof want);
  assert_int_equal(hw_jt808_xor(raw, n), 0x7E);
  assert_int_equal(hw_jt808_frame_encode(raw, n, out, sizeof out, &on), 0);
  assert_int_equal(on, wn);
  assert_memory_equal(out, want, wn);

  /* Too small: never a partial write past cap. */
  for (size_t cap = 0; cap < wn; cap++)
    assert_int_equal(hw_jt808_frame_encode(raw, n, out, cap, &on), -ENOSPC);
}

/* Two connections through one shared deframer, saving and restoring around every read, give
 * each connection exactly what a deframer of its own gives. */
static void test_shared_deframer(void **state) {
  (void)state;
  static uint8_t a[8192], b[8192];
  size_t na = 0, nb = 0;
  static const char *va[] = {"reg_2019", "auth_2019", "loc_sc_esc", "bad_cs_esc", "batch_hy"};
  static const char *vb[] = {"hb_cs7e", "loc_2019_adas", "bad_escape", "hb_cs7d", "subpkg_2"};
  for (size_t i = 0; i < 5; i++) {
    na += wire_of(va[i], a + na, sizeof a - na);
    nb += wire_of(vb[i], b + nb, sizeof b - nb);
  }
  memcpy(b + nb, "tail", 4); /* garbage after the last frame */
  nb += 4;

  evlog own_a = {0}, own_b = {0}, sh_a = {0}, sh_b = {0};
  hw_jt808_deframer d, shared;
  feed_cuts(a, na, NULL, 0, &own_a, &d);
  feed_cuts(b, nb, NULL, 0, &own_b, &d);

  hw_jt808_deframer_resume ra = {0}, rb = {0};
  static uint8_t pa[HW_JT808_FRAME_MAX], pb[HW_JT808_FRAME_MAX];
  size_t at_a = 0, at_b = 0, step = 1;
  hw_jt808_deframer_init(&shared);
  memset(shared.buf, 0xEE, sizeof shared.buf); /* stale bytes of "another connection" */
  while (at_a < na || at_b < nb) {
    size_t n = na - at_a < step ? na - at_a : step;
    hw_jt808_deframer_restore(&shared, &ra, pa);
    assert_int_equal(hw_jt808_deframer_feed(&shared, a + at_a, n, evlog_cb, &sh_a), 0);
    hw_jt808_deframer_save(&shared, &ra);
    memcpy(pa, shared.buf, ra.len);
    at_a += n;
    memset(shared.buf, 0xEE, sizeof shared.buf);

    n = nb - at_b < step + 3 ? nb - at_b : step + 3;
    hw_jt808_deframer_restore(&shared, &rb, pb);
    assert_int_equal(hw_jt808_deframer_feed(&shared, b + at_b, n, evlog_cb, &sh_b), 0);
    hw_jt808_deframer_save(&shared, &rb);
    memcpy(pb, shared.buf, rb.len);
    at_b += n;
    memset(shared.buf, 0xEE, sizeof shared.buf);
    step = step * 3 % 97 + 1;
  }
  assert_int_equal(sh_a.len, own_a.len);
  assert_memory_equal(sh_a.buf, own_a.buf, own_a.len);
  assert_int_equal(sh_b.len, own_b.len);
  assert_memory_equal(sh_b.buf, own_b.buf, own_b.len);
  assert_int_equal(sh_a.frames + sh_b.frames, 8);
  assert_int_equal(rb.len, 4); /* "tail" is held as the start of a frame */
  evlog_free(&own_a);
  evlog_free(&own_b);
  evlog_free(&sh_a);
  evlog_free(&sh_b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors_every_split),
      cmocka_unit_test(test_stream_shared_doubled_garbage),
      cmocka_unit_test(test_bad_checksum),
      cmocka_unit_test(test_bad_escape),
      cmocka_unit_test(test_lenient_7d_checksum),
      cmocka_unit_test(test_oversize),
      cmocka_unit_test(test_runts_and_leading_garbage),
      cmocka_unit_test(test_callback_stops_feed),
      cmocka_unit_test(test_shared_deframer),
      cmocka_unit_test(test_encode_roundtrip),
      cmocka_unit_test(test_encode_go_escape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
