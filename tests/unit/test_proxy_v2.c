/* PROXY protocol v2 header parser (net/proxy_v2.h): the headers HAProxy sends (TCP4, TCP6,
 * LOCAL, with extensions), every prefix of them asking for more, and hostile input refused at
 * the first wrong byte, never read past the buffer or past HW_PROXY_V2_MAX. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxy_v2.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A header: version/command byte, family byte, address block (alen bytes), tlv extra bytes. */
static size_t build(uint8_t *out, uint8_t vc, uint8_t fam, const uint8_t *addr, size_t alen,
                    size_t tlv) {
  memcpy(out, sig, 12);
  out[12] = vc;
  out[13] = fam;
  size_t body = alen + tlv;
  out[14] = (uint8_t)(body >> 8);
  out[15] = (uint8_t)body;
  if (alen) /* memcpy with NULL is undefined even for 0 bytes */
    memcpy(out + 16, addr, alen);
  memset(out + 16 + alen, 0xEE, tlv);
  return 16 + body;
}

static const uint8_t tcp4[12] = {203, 0, 113, 7, 127, 0, 0, 1, 0xC3, 0x50, 0x1B, 0xBC};

static void test_tcp4(void **state) {
  (void)state;
  uint8_t b[64];
  size_t n = build(b, 0x21, 0x11, tcp4, sizeof tcp4, 0);
  b[n] = 0x99; /* the protocol's first byte follows */
  hw_proxy_v2 p;
  assert_int_equal(hw_proxy_v2_parse(b, n + 1, &p), 28);
  assert_int_equal(p.command, 1);
  assert_int_equal(p.has_addr, 1);
  const struct sockaddr_in *s = (const struct sockaddr_in *)&p.src;
  assert_int_equal(s->sin_family, AF_INET);
  assert_int_equal(ntohs(s->sin_port), 50000);
  assert_int_equal(ntohl(s->sin_addr.s_addr), 0xCB007107u);
  assert_int_equal(ntohs(((const struct sockaddr_in *)&p.dst)->sin_port), 7100);
  char txt[64];
  hw_proxy_v2_format(&p, txt, sizeof txt);
  assert_string_equal(txt, "203.0.113.7:50000");
  /* Every proper prefix is a valid beginning: read more. */
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_proxy_v2_parse(b, k, NULL), 0);
}

static void test_tcp6_and_tlv(void **state) {
  (void)state;
  uint8_t a[36] = {0};
  a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[15] = 0x42; /* 2001:db8::42 */
  a[31] = 1;                                                      /* ::1 */
  a[32] = 0x04, a[33] = 0xD2;                                     /* 1234 */
  a[34] = 0x1B, a[35] = 0xBC;
  uint8_t b[256];
  size_t n = build(b, 0x21, 0x21, a, sizeof a, 40); /* with 40 bytes of extensions, skipped */
  hw_proxy_v2 p;
  assert_int_equal(hw_proxy_v2_parse(b, n, &p), (int)n);
  assert_int_equal(p.has_addr, 1);
  char txt[64];
  hw_proxy_v2_format(&p, txt, sizeof txt);
  assert_string_equal(txt, "2001:db8::42:1234");
  assert_int_equal(hw_proxy_v2_parse(b, n - 1, &p), 0);
}

static void test_local_and_unspec(void **state) {
  (void)state;
  uint8_t b[64];
  hw_proxy_v2 p;
  /* LOCAL (a health check of the front): no client address, even with one in the block. */
  size_t n = build(b, 0x20, 0x11, tcp4, sizeof tcp4, 0);
  assert_int_equal(hw_proxy_v2_parse(b, n, &p), 28);
  assert_int_equal(p.command, 0);
  assert_int_equal(p.has_addr, 0);
  /* LOCAL, UNSPEC, empty. */
  n = build(b, 0x20, 0x00, NULL, 0, 0);
  assert_int_equal(hw_proxy_v2_parse(b, n, &p), 16);
  assert_int_equal(p.has_addr, 0);
  /* PROXY with UNSPEC family: the connection's own address stays. */
  n = build(b, 0x21, 0x00, NULL, 0, 0);
  assert_int_equal(hw_proxy_v2_parse(b, n, &p), 16);
  assert_int_equal(p.has_addr, 0);
}

static void test_refused(void **state) {
  (void)state;
  uint8_t b[2048];
  size_t n;
  /* Not the signature: a terminal speaking straight to the port, or v1 text. Refused at the
   * first byte that differs, without waiting for more. */
  const uint8_t pb_hello[] = {0x0A, 0x10};
  assert_int_equal(hw_proxy_v2_parse(pb_hello, 1, NULL), -EPROTO);
  assert_int_equal(hw_proxy_v2_parse((const uint8_t *)"PROXY TCP4 1.2.3.4", 18, NULL), -EPROTO);
  const uint8_t jt808[] = {0x7E, 0x01, 0x02};
  assert_int_equal(hw_proxy_v2_parse(jt808, 3, NULL), -EPROTO);
  memcpy(b, sig, 12);
  b[5] ^= 1;
  assert_int_equal(hw_proxy_v2_parse(b, 6, NULL), -EPROTO);
  /* Version 1 in the binary form, version 3, command 2..15. */
  n = build(b, 0x11, 0x11, tcp4, 12, 0);
  assert_int_equal(hw_proxy_v2_parse(b, 13, NULL), -EPROTO);
  n = build(b, 0x31, 0x11, tcp4, 12, 0);
  assert_int_equal(hw_proxy_v2_parse(b, n, NULL), -EPROTO);
  n = build(b, 0x22, 0x11, tcp4, 12, 0);
  assert_int_equal(hw_proxy_v2_parse(b, n, NULL), -EPROTO);
  /* Datagram transport, unknown family. */
  n = build(b, 0x21, 0x12, tcp4, 12, 0);
  assert_int_equal(hw_proxy_v2_parse(b, 14, NULL), -EPROTO);
  n = build(b, 0x21, 0x41, tcp4, 12, 0);
  assert_int_equal(hw_proxy_v2_parse(b, n, NULL), -EPROTO);
  /* Addresses shorter than the family needs: refused from the header alone. */
  n = build(b, 0x21, 0x11, tcp4, 11, 0);
  assert_int_equal(hw_proxy_v2_parse(b, 16, NULL), -EPROTO);
  n = build(b, 0x21, 0x21, tcp4, 12, 0);
  assert_int_equal(hw_proxy_v2_parse(b, 16, NULL), -EPROTO);
  /* Longer than we accept: refused from the length, before the body is read. */
  memcpy(b, sig, 12);
  b[12] = 0x21, b[13] = 0x11, b[14] = 0xFF, b[15] = 0xFF;
  assert_int_equal(hw_proxy_v2_parse(b, 16, NULL), -EMSGSIZE);
  n = build(b, 0x21, 0x11, tcp4, 12, HW_PROXY_V2_MAX - 16 - 12 + 1);
  assert_int_equal(hw_proxy_v2_parse(b, 16, NULL), -EMSGSIZE);
  /* Exactly the maximum is accepted. */
  n = build(b, 0x21, 0x11, tcp4, 12, HW_PROXY_V2_MAX - 16 - 12);
  assert_int_equal(n, HW_PROXY_V2_MAX);
  assert_int_equal(hw_proxy_v2_parse(b, n, NULL), HW_PROXY_V2_MAX);
}

/* Random bytes after a valid signature: never more than HW_PROXY_V2_MAX consumed, never more
 * than given, and a result of 0 only below the maximum (the caller's buffer bound). Run under
 * ASan this also shows nothing past buf is read (buf is exactly len bytes, malloc'd). */
static void test_random(void **state) {
  (void)state;
  uint32_t x = 12345;
  for (int i = 0; i < 20000; i++) {
    size_t len = 12 + (x % 300);
    uint8_t *b = malloc(len);
    assert_non_null(b);
    memcpy(b, sig, 12);
    for (size_t k = 12; k < len; k++) {
      x = x * 1103515245u + 12345u;
      b[k] = (uint8_t)(x >> 16);
    }
    /* half of them with a plausible version and family, to get past the checks */
    if (i % 2 && len >= 15)
      b[12] = 0x21, b[13] = (uint8_t)(i % 4 ? 0x11 : 0x21), b[14] = 0;
    int r = hw_proxy_v2_parse(b, len, NULL);
    assert_true(r <= (int)len);
    assert_true(r <= HW_PROXY_V2_MAX);
    if (r == 0)
      assert_true(len < HW_PROXY_V2_MAX);
    assert_true(r >= 0 || r == -EPROTO || r == -EMSGSIZE);
    free(b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tcp4),           cmocka_unit_test(test_tcp6_and_tlv),
      cmocka_unit_test(test_local_and_unspec), cmocka_unit_test(test_refused),
      cmocka_unit_test(test_random),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
