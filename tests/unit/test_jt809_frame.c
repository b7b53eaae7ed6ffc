/* The JT/T 809 deframer, CRC, cipher and frame builder: every vector whole, byte by byte and
 * split at every offset; strict and tolerant escapes; broken frames reported with the right
 * kind and skipped; frames rebuilt byte for byte as the other suites expect them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jt809/jt809_frame.h"
#include "jt809/jt809_header.h"
#include "jt809_vectors.h"

#define BUFCAP 4096

/* Every event, serialised (kind, length, bytes) so two runs compare with memcmp. */
typedef struct evlog {
  uint8_t *buf;
  size_t len, cap;
  int frames, errors, last_ev, events, stop_after;
  int kinds[8];
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

static int evlog_cb(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  evlog *l = arg;
  uint8_t hdr[5] = {(uint8_t)ev, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
  evlog_put(l, hdr, sizeof hdr);
  evlog_put(l, data, len);
  if (ev == HW_JT809_FRAME) {
    assert_true(len >= HW_JT809_HEADER_2011);
    l->frames++;
  } else {
    l->errors++;
  }
  l->kinds[ev]++;
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

static uint8_t fbuf[BUFCAP];

static void feed_cuts(const uint8_t *wire, size_t n, const size_t *cuts, size_t ncuts, evlog *l,
                      hw_jt809_deframer *d, int strict) {
  size_t at = 0;
  assert_int_equal(hw_jt809_deframer_init(d, fbuf, sizeof fbuf), 0);
  d->strict = (uint8_t)strict;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    assert_int_equal(hw_jt809_deframer_feed(d, wire + at, to - at, evlog_cb, l), 0);
    at = to;
  }
}

/* Whole, byte by byte, and split in two at every offset: identical events every time. */
static void check_all_splits(const uint8_t *wire, size_t n, evlog *whole, int strict) {
  hw_jt809_deframer d;
  evlog l = {0};
  size_t *cuts = malloc((n + 1) * sizeof *cuts);
  assert_non_null(cuts);
  feed_cuts(wire, n, NULL, 0, whole, &d, strict);
  for (size_t i = 0; i < n; i++)
    cuts[i] = i + 1;
  feed_cuts(wire, n, cuts, n > 0 ? n - 1 : 0, &l, &d, strict);
  assert_int_equal(l.len, whole->len);
  assert_memory_equal(l.buf, whole->buf, whole->len);
  evlog_free(&l);
  for (size_t at = 0; at <= n; at++) {
    feed_cuts(wire, n, &at, 1, &l, &d, strict);
    assert_int_equal(l.len, whole->len);
    assert_memory_equal(l.buf, whole->buf, whole->len);
    evlog_free(&l);
  }
  free(cuts);
}

/* Independent reading of one wire frame (delimiters included): inner bytes without the CRC.
 * *odd is set when the standard's escapes do not explain it: a frame sent without escaping
 * (its length field counts the bytes as sent while they hold 5A/5B/5D/5E: taken as sent), or
 * 5A/5E not followed by 01/02 (taken literally). */
static size_t ref_unescape(const uint8_t *w, size_t n, uint8_t *out, int *odd) {
  size_t o = 0;
  *odd = 0;
  uint32_t lf = (uint32_t)w[1] << 24 | (uint32_t)w[2] << 16 | (uint32_t)w[3] << 8 | w[4];
  if (lf == n) {
    for (size_t i = 1; i + 1 < n; i++)
      *odd |= w[i] == 0x5A || w[i] == 0x5B || w[i] == 0x5D || w[i] == 0x5E;
    memcpy(out, w + 1, n - 2);
    return n - 4;
  }
  for (size_t i = 1; i + 1 < n; i++) {
    if ((w[i] == 0x5A || w[i] == 0x5E) && i + 2 < n && (w[i + 1] == 1 || w[i + 1] == 2)) {
      out[o++] = w[i] == 0x5A ? (w[i + 1] == 1 ? 0x5B : 0x5A) : (w[i + 1] == 1 ? 0x5D : 0x5E);
      i++;
    } else {
      if (w[i] == 0x5A || w[i] == 0x5E)
        (*odd)++;
      out[o++] = w[i];
    }
  }
  return o - 2;
}

static void test_crc_and_cipher(void **state) {
  (void)state;
  /* CRC-16/CCITT-FALSE check value (the catalogue's "123456789"). */
  assert_int_equal(hw_jt809_crc16(0xFFFF, (const uint8_t *)"123456789", 9), 0x29B1);
  /* continuing a CRC over pieces gives the same */
  uint16_t c = hw_jt809_crc16(0xFFFF, (const uint8_t *)"1234", 4);
  assert_int_equal(hw_jt809_crc16(c, (const uint8_t *)"56789", 5), 0x29B1);

  /* SmallChi/JT809: src/JT809.Protocol.Test/JT809Encrypt/JT809EncryptTest.cs: 01..07, key 256178,
   * M1 30000000, IA1 = IC1 = 20000000 -> D3 4C 70 78 A7 3A 41, and back. */
  uint8_t b[7] = {1, 2, 3, 4, 5, 6, 7};
  const uint8_t enc[7] = {0xD3, 0x4C, 0x70, 0x78, 0xA7, 0x3A, 0x41};
  hw_jt809_crypt(&jt809_ciphers[C_SC], 256178, b, 7);
  assert_memory_equal(b, enc, 7);
  hw_jt809_crypt(&jt809_ciphers[C_SC], 256178, b, 7);
  for (int i = 0; i < 7; i++)
    assert_int_equal(b[i], i + 1);

  /* key 0 is key 1 and M1 0 is M1 1 (the standard's reference code): no division by zero */
  uint8_t x[4] = {0}, y[4] = {0};
  hw_jt809_crypt(&jt809_ciphers[C_SC], 0, x, 4);
  hw_jt809_crypt(&jt809_ciphers[C_SC], 1, y, 4);
  assert_memory_equal(x, y, 4);
  hw_jt809_cipher zero = {0, 3, 5};
  hw_jt809_crypt(&zero, 7, x, 4);
  /* the stepwise form (encoders) equals the one-shot form */
  uint8_t z[16], w[16];
  for (int i = 0; i < 16; i++)
    z[i] = w[i] = (uint8_t)(i * 37);
  hw_jt809_crypt(&jt809_ciphers[C_GJ], 0x3b89, z, 16);
  uint32_t k = 0x3b89;
  for (int i = 0; i < 16; i++)
    w[i] ^= hw_jt809_crypt_step(&jt809_ciphers[C_GJ], &k);
  assert_memory_equal(z, w, 16);
}

static void test_vectors_every_split(void **state) {
  (void)state;
  static uint8_t wire[8192], ref[8192];
  for (size_t i = 0; i < JT809_NVECTORS; i++) {
    const jt809_vector *v = &jt809_vectors[i];
    size_t n = jt809_unhex(v->hex, wire, sizeof wire);
    int odd;
    evlog whole = {0};
    check_all_splits(wire, n, &whole, 0);
    if (v->event == HW_JT809_FRAME) {
      size_t rn = ref_unescape(wire, n, ref, &odd);
      if (whole.frames != 1 || whole.errors != 0)
        fail_msg("%s (%s): %d frames, %d errors", v->name, v->source, whole.frames, whole.errors);
      /* the delivered bytes are the independent unescape without the CRC */
      assert_int_equal(whole.len, 5 + rn);
      assert_memory_equal(whole.buf + 5, ref, rn);
      /* strict: the frames of platforms that do not escape are refused, the others pass */
      evlog st = {0};
      check_all_splits(wire, n, &st, 1);
      if (odd) {
        assert_int_equal(st.frames, 0);
        assert_true(st.errors >= 1);
      } else {
        assert_int_equal(st.len, whole.len);
        assert_memory_equal(st.buf, whole.buf, whole.len);
      }
      evlog_free(&st);
    } else {
      if (whole.frames != 0 || whole.errors != 1 || whole.last_ev != v->event)
        fail_msg("%s: %d frames, %d errors, last %d", v->name, whole.frames, whole.errors,
                 whole.last_ev);
    }
    evlog_free(&whole);
  }
}

/* Every vector in one stream with noise between: each frame delivered once, in order. */
static void test_stream_of_all(void **state) {
  (void)state;
  static uint8_t wire[65536];
  size_t n = 0;
  int good = 0, bad = 0;
  for (size_t i = 0; i < JT809_NVECTORS; i++) {
    const char *noise = i % 2 ? "\r\nOK\r\n" : "\x5d\x5a\x01";
    memcpy(wire + n, noise, strlen(noise));
    n += strlen(noise);
    n += jt809_unhex(jt809_vectors[i].hex, wire + n, sizeof wire - n);
    if (jt809_vectors[i].event == HW_JT809_FRAME)
      good++;
    else
      bad++;
  }
  evlog l = {0};
  hw_jt809_deframer d;
  /* read sizes 1, 7, 64, whole: the same */
  static const size_t sizes[] = {1, 7, 64, 65536};
  for (size_t s = 0; s < 4; s++) {
    evlog_free(&l);
    assert_int_equal(hw_jt809_deframer_init(&d, fbuf, sizeof fbuf), 0);
    for (size_t at = 0; at < n; at += sizes[s]) {
      size_t k = n - at < sizes[s] ? n - at : sizes[s];
      assert_int_equal(hw_jt809_deframer_feed(&d, wire + at, k, evlog_cb, &l), 0);
    }
    assert_int_equal(l.frames, good);
    assert_int_equal(l.errors, bad);
    assert_int_equal(d.stats.frames, (uint64_t)good);
    assert_true(d.stats.garbage_bytes > 0);
  }
  evlog_free(&l);
}

/* A valid 2011 frame with body b[0..bn) in wire; returns its size. */
static size_t make_frame(uint8_t *wire, size_t cap, const uint8_t *b, size_t bn, uint16_t id) {
  hw_jt809_header h = {.sn = 7, .msg_id = id, .center_id = 1234, .version = {1, 0, 0}};
  size_t n;
  assert_int_equal(hw_jt809_build(wire, cap, &n, &h, NULL, b, bn), 0);
  return n;
}

static int feed_one(const uint8_t *wire, size_t n, size_t cap, int strict, evlog *l) {
  hw_jt809_deframer d;
  assert_int_equal(hw_jt809_deframer_init(&d, fbuf, cap), 0);
  d.strict = (uint8_t)strict;
  assert_int_equal(hw_jt809_deframer_feed(&d, wire, n, evlog_cb, l), 0);
  return l->last_ev;
}

static void test_hostile(void **state) {
  (void)state;
  uint8_t body[40], wire[256], w2[256];
  evlog l = {0};
  for (int i = 0; i < 40; i++)
    body[i] = (uint8_t)(0x58 + i % 8); /* 58..5F: every special byte */
  size_t n = make_frame(wire, sizeof wire, body, sizeof body, 0x1005);

  /* the frame itself is good */
  feed_one(wire, n, BUFCAP, 1, &l);
  assert_int_equal(l.frames, 1);
  evlog_free(&l);

  /* a flipped body byte: bad CRC (in both modes) */
  memcpy(w2, wire, n);
  w2[30] ^= 0x01;
  assert_true(w2[30] != 0x5A && w2[30] != 0x5E && w2[30] != 0x5B && w2[30] != 0x5D);
  assert_int_equal(feed_one(w2, n, BUFCAP, 0, &l), HW_JT809_BAD_CRC);
  assert_int_equal(l.errors, 1);
  evlog_free(&l);

  /* 5A 03: strict reports a bad escape at once; tolerant takes 5A literally, the CRC then fails
   * and it is still reported as a bad escape (not a CRC error) */
  memcpy(w2, wire, n);
  w2[30] = 0x5A;
  w2[31] = 0x03;
  assert_int_equal(feed_one(w2, n, BUFCAP, 1, &l), HW_JT809_BAD_ESCAPE);
  assert_int_equal(l.events, 1);
  evlog_free(&l);
  assert_int_equal(feed_one(w2, n, BUFCAP, 0, &l), HW_JT809_BAD_ESCAPE);
  assert_int_equal(l.events, 1);
  evlog_free(&l);
  /* 5A right before 5D */
  memcpy(w2, wire, n);
  w2[n - 2] = 0x5A;
  assert_int_equal(feed_one(w2, n, BUFCAP, 1, &l), HW_JT809_BAD_ESCAPE);
  evlog_free(&l);
  assert_int_equal(feed_one(w2, n, BUFCAP, 0, &l), HW_JT809_BAD_ESCAPE);
  evlog_free(&l);

  /* truncated: the 5D lost, the next frame follows: one unterminated, then the frame */
  memcpy(w2, wire, n - 1);
  memcpy(w2 + n - 1, wire, n);
  feed_one(w2, 2 * n - 1, BUFCAP, 0, &l);
  assert_int_equal(l.kinds[HW_JT809_UNTERMINATED], 1);
  assert_int_equal(l.frames, 1);
  evlog_free(&l);

  /* oversize: a max frame setting smaller than the frame; the next frame still gets through */
  uint8_t small[8];
  size_t sn = make_frame(w2, sizeof w2, small, 0, 0x1005); /* 26 bytes unescaped inside */
  memcpy(w2 + sn, wire, n);
  hw_jt809_deframer d;
  assert_int_equal(hw_jt809_deframer_init(&d, fbuf, 30), 0);
  assert_int_equal(hw_jt809_deframer_feed(&d, w2 + sn, n, evlog_cb, &l), 0);
  assert_int_equal(l.last_ev, HW_JT809_OVERSIZE);
  assert_int_equal(hw_jt809_deframer_feed(&d, w2, sn, evlog_cb, &l), 0);
  assert_int_equal(l.frames, 1);
  assert_int_equal(d.stats.oversize, 1);
  evlog_free(&l);
  assert_int_equal(hw_jt809_deframer_init(&d, fbuf, HW_JT809_FRAME_MIN - 1), -EINVAL);
  assert_int_equal(hw_jt809_deframer_init(&d, NULL, 100), -EINVAL);

  /* the length field disagrees with the frame (CRC made right for the wrong length) */
  uint8_t raw[64];
  memset(raw, 0, sizeof raw);
  raw[3] = 22 + 4 + 1; /* says one byte more than there is */
  size_t wn;
  assert_int_equal(hw_jt809_frame_encode(raw, 22, w2, sizeof w2, &wn), 0);
  assert_int_equal(feed_one(w2, wn, BUFCAP, 0, &l), HW_JT809_BAD_LENGTH);
  evlog_free(&l);
  raw[3] = 22 + 4;
  assert_int_equal(hw_jt809_frame_encode(raw, 22, w2, sizeof w2, &wn), 0);
  feed_one(w2, wn, BUFCAP, 0, &l);
  assert_int_equal(l.frames, 1);
  evlog_free(&l);
  /* a length field of 0xFFFFFFFF must not overflow anything */
  memset(raw, 0xFF, 4);
  assert_int_equal(hw_jt809_frame_encode(raw, 22, w2, sizeof w2, &wn), 0);
  assert_int_equal(feed_one(w2, wn, BUFCAP, 0, &l), HW_JT809_BAD_LENGTH);
  evlog_free(&l);

  /* a lying length field (256 for a 26-byte frame) keeps the tolerant deframer collecting past
   * the 5D: it swallows what follows up to the length it claims, reports one bad escape (or an unterminated frame at the 5B that ends it), and the
   * frames after that get through; strict loses only the lying frame */
  static uint8_t lie[4096];
  size_t ln = make_frame(lie, sizeof lie, NULL, 0, 0x1005);
  lie[3] = 0x01; /* length field (wire bytes 1-4) 0x00000100; the CRC is now wrong too */
  lie[4] = 0x00;
  for (int i = 0; i < 10; i++)
    ln += make_frame(lie + ln, sizeof lie - ln, body, sizeof body, 0x1005);
  assert_int_equal(hw_jt809_deframer_init(&d, fbuf, BUFCAP), 0);
  assert_int_equal(hw_jt809_deframer_feed(&d, lie, ln, evlog_cb, &l), 0);
  assert_int_equal(l.errors, 1);
  assert_int_equal(l.kinds[HW_JT809_BAD_ESCAPE] + l.kinds[HW_JT809_UNTERMINATED], 1);
  assert_true(l.frames >= 10 - (256 / (int)n + 1));
  assert_true(l.frames < 10);
  evlog_free(&l);
  assert_int_equal(hw_jt809_deframer_init(&d, fbuf, BUFCAP), 0);
  d.strict = 1;
  assert_int_equal(hw_jt809_deframer_feed(&d, lie, ln, evlog_cb, &l), 0);
  assert_int_equal(l.errors, 1);
  assert_int_equal(l.frames, 10);
  evlog_free(&l);

  /* runts: 5B 5D is nothing, a few bytes are a bad length */
  static const uint8_t empty[] = {0x5B, 0x5D}, runt[] = {0x5B, 1, 2, 3, 0x5D};
  feed_one(empty, sizeof empty, BUFCAP, 0, &l);
  assert_int_equal(l.events, 0);
  assert_int_equal(feed_one(runt, sizeof runt, BUFCAP, 0, &l), HW_JT809_BAD_LENGTH);
  evlog_free(&l);

  /* a callback's error stops the feed at once */
  uint8_t two[512];
  memcpy(two, wire, n);
  memcpy(two + n, wire, n);
  l.stop_after = 1;
  assert_int_equal(hw_jt809_deframer_init(&d, fbuf, BUFCAP), 0);
  assert_int_equal(hw_jt809_deframer_feed(&d, two, 2 * n, evlog_cb, &l), -ECANCELED);
  assert_int_equal(l.frames, 1);
  evlog_free(&l);
  assert_string_equal(hw_jt809_event_name(HW_JT809_BAD_CRC), "bad_crc");
}

/* Escaping round trip over every byte value; -ENOSPC at every size short of the need. */
static void test_encode_roundtrip(void **state) {
  (void)state;
  uint8_t raw[300], wire[700];
  size_t wn, need;
  for (int i = 0; i < 300; i++)
    raw[i] = (uint8_t)(i * 7 + 0x5A);
  raw[0] = 0;
  raw[1] = 0;
  raw[2] = 0x01;
  raw[3] = 0x30; /* length field: 1 + 300 + 2 + 1 = 304 */
  assert_int_equal(hw_jt809_frame_encode(raw, 300, wire, sizeof wire, &need), 0);
  assert_true(need <= 2 * 300 + 6);
  for (size_t c = 0; c < need; c++)
    assert_int_equal(hw_jt809_frame_encode(raw, 300, wire, c, &wn), -ENOSPC);
  for (size_t i = 1; i + 1 < need; i++)
    assert_true(wire[i] != 0x5B && wire[i] != 0x5D);
  evlog l = {0};
  feed_one(wire, need, BUFCAP, 1, &l);
  assert_int_equal(l.frames, 1);
  assert_int_equal(l.len, 5 + 300);
  assert_memory_equal(l.buf + 5, raw, 300);
  evlog_free(&l);
}

/* hw_jt809_build reproduces SmallChi's serialised frames exactly, plain and encrypted. */
static void test_build_matches_suite(void **state) {
  (void)state;
  static const uint8_t body[] = {
      0x01, 0x33, 0xEF, 0xB8, '2', '0', '1', '8', '0', '9', '2', '0', '1', '2', '7', '.',
      '0',  '.',  '0',  '.',  '1', 0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,    0,    0,    0,    0,   0,   0,   0,   0,   0,   0,   0,   0x03, 0x29};
  uint8_t wire[256], want[256];
  size_t n, wn;
  /* JT809_0x1001PackageTest.cs Test1: sn 133, key 9999 (flag 0), centre 20180920, v1.0.0 */
  hw_jt809_header h = {.sn = 133, .msg_id = 0x1001, .center_id = 20180920,
                       .version = {1, 0, 0}, .key = 9999};
  assert_int_equal(hw_jt809_build(wire, sizeof wire, &n, &h, NULL, body, sizeof body), 0);
  wn = jt809_unhex(jt809_vector_get("login_2011")->hex, want, sizeof want);
  assert_int_equal(n, wn);
  assert_memory_equal(wire, want, wn);
  /* JT809_0x1001EncryptPackageTest.cs Test1: flag 1, key 256178 */
  h.encrypted = 1;
  h.key = 256178;
  assert_int_equal(hw_jt809_build(wire, sizeof wire, &n, &h, NULL, body, sizeof body), -ENOKEY);
  assert_int_equal(
      hw_jt809_build(wire, sizeof wire, &n, &h, &jt809_ciphers[C_SC], body, sizeof body), 0);
  wn = jt809_unhex(jt809_vector_get("login_2011_enc")->hex, want, sizeof want);
  assert_int_equal(n, wn);
  assert_memory_equal(wire, want, wn);
  /* too small a buffer, at every size */
  for (size_t c = 0; c < wn; c++)
    assert_int_equal(
        hw_jt809_build(wire, c, &n, &h, &jt809_ciphers[C_SC], body, sizeof body), -ENOSPC);
  assert_true(hw_jt809_wire_max(sizeof body) >= wn);
  h.encrypted = 2;
  assert_int_equal(hw_jt809_build(wire, sizeof wire, &n, &h, NULL, body, sizeof body), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc_and_cipher),     cmocka_unit_test(test_vectors_every_split),
      cmocka_unit_test(test_stream_of_all),      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_encode_roundtrip),   cmocka_unit_test(test_build_matches_suite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
