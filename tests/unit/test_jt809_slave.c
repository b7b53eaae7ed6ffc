/* The slave link: its address policy (jt809/jt809_slave.h: the address is the platform's word,
 * so only numeric unicast addresses are taken, and loopback and link-local ones only when the
 * platform's row allows them) and its state machine (jt809/jt809_slave_sm.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>

#include "jt809/jt809_msg.h"
#include "jt809/jt809_slave.h"
#include "jt809/jt809_slave_sm.h"

static int ok(const char *ip, uint16_t port, int local_ok) {
  struct sockaddr_storage sa;
  const char *why = NULL;
  int rc = hw_jt809_slave_addr(ip, port, local_ok, &sa, &why);
  if (rc)
    assert_non_null(why);
  return rc == 0;
}

static void test_policy(void **state) {
  (void)state;
  /* Unicast addresses, public and private: taken. */
  assert_true(ok("203.0.113.7", 9000, 0));
  assert_true(ok("10.1.2.3", 9000, 0));
  assert_true(ok("2001:db8::1", 9000, 0));
  /* Loopback and link-local: only when allowed. */
  static const char *const local[] = {"127.0.0.1", "127.255.0.9", "169.254.1.1", "::1",
                                      "fe80::1"};
  for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
    assert_false(ok(local[i], 9000, 0));
    assert_true(ok(local[i], 9000, 1));
  }
  /* Never: unspecified, multicast, broadcast/reserved, IPv4-mapped, names, port 0, junk. */
  static const char *const never[] = {"0.0.0.0",  "0.1.2.3",         "224.0.0.1",
                                      "255.255.255.255", "::",     "ff02::1",
                                      "::ffff:127.0.0.1", "localhost", "example.com",
                                      "",         "1.2.3.4 ",        "1.2.3"};
  for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
    assert_false(ok(never[i], 9000, 0));
    assert_false(ok(never[i], 9000, 1));
  }
  assert_false(ok("203.0.113.7", 0, 1));
  /* The address and port come out as given. */
  struct sockaddr_storage sa;
  const char *why;
  assert_int_equal(hw_jt809_slave_addr("203.0.113.7", 9001, 0, &sa, &why), 0);
  const struct sockaddr_in *v4 = (const struct sockaddr_in *)&sa;
  assert_int_equal(v4->sin_family, AF_INET);
  assert_int_equal(ntohs(v4->sin_port), 9001);
  assert_int_equal(ntohl(v4->sin_addr.s_addr), 0xCB007107u);
}

#define CENTER 0x10F3B

/* One frame as the deframer delivers it (header + body, no CRC). */
static size_t mk(uint8_t *out, uint16_t msg_id, uint32_t center, const uint8_t *body, size_t bl,
                 int encrypted) {
  uint8_t wire[256], buf[256];
  size_t n;
  hw_jt809_header h;
  memset(&h, 0, sizeof h);
  h.msg_id = msg_id;
  h.center_id = center;
  h.is_2019 = 1;
  h.encrypted = (uint8_t)encrypted;
  h.key = 7;
  hw_jt809_cipher c = {30000000, 20000000, 20000000};
  assert_int_equal(hw_jt809_build(wire, sizeof wire, &n, &h, encrypted ? &c : NULL, body, bl), 0);
  /* Unescape: our frames here hold no 5A/5B/5D/5E but the delimiters (checked). */
  assert_int_equal(wire[0], 0x5b);
  assert_int_equal(wire[n - 1], 0x5d);
  for (size_t i = 1; i + 1 < n; i++)
    assert_true(wire[i] != 0x5a && wire[i] != 0x5e);
  memcpy(buf, wire + 1, n - 4); /* without 5B, CRC and 5D */
  memcpy(out, buf, n - 4);
  return n - 4;
}

static hw_j9s_act step(int state, uint16_t msg_id, uint32_t center, const uint8_t *body,
                       size_t bl, int encrypted, const char **why) {
  uint8_t f[256], code;
  size_t n = mk(f, msg_id, center, body, bl, encrypted);
  hw_j9s_act a = hw_jt809_slave_step(state, 1, CENTER, f, n, &code, why);
  assert_true((a == HW_J9S_END) == (*why != NULL));
  return a;
}

static void test_state_machine(void **state) {
  (void)state;
  const char *why;
  static const uint8_t ok[] = {0}, bad_verify[] = {1}, busy[] = {2};
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x9002, CENTER, ok, 1, 0, &why), HW_J9S_UP);
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x9002, CENTER, bad_verify, 1, 0, &why), HW_J9S_END);
  assert_string_equal(why, "refused: verify code wrong (0x9002 1)");
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x9002, CENTER, busy, 1, 0, &why), HW_J9S_END);
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x9002, CENTER, NULL, 0, 0, &why), HW_J9S_END);
  assert_string_equal(why, "0x9002 malformed");
  /* Out of turn, another access code, encrypted: the link ends. */
  assert_int_equal(step(HW_J9S_SM_UP, 0x9002, CENTER, ok, 1, 0, &why), HW_J9S_END);
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x9006, CENTER, NULL, 0, 0, &why), HW_J9S_END);
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x9002, CENTER + 1, ok, 1, 0, &why), HW_J9S_END);
  assert_string_equal(why, "frame naming another access code");
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x9002, CENTER, ok, 1, 1, &why), HW_J9S_END);
  assert_int_equal(step(HW_J9S_SM_LOGIN, 0x1200, CENTER, ok, 1, 0, &why), HW_J9S_END);
  /* Up: keep-alive answers, notices, other data ignored, logout and close end it. */
  assert_int_equal(step(HW_J9S_SM_UP, 0x9006, CENTER, NULL, 0, 0, &why), HW_J9S_ALIVE);
  assert_int_equal(step(HW_J9S_SM_UP, 0x1007, CENTER, ok, 1, 0, &why), HW_J9S_NOTE);
  assert_int_equal(step(HW_J9S_SM_UP, 0x1200, CENTER, ok, 1, 0, &why), HW_J9S_IGNORE);
  assert_int_equal(step(HW_J9S_SM_UP, 0x9004, CENTER, NULL, 0, 0, &why), HW_J9S_END);
  assert_int_equal(step(HW_J9S_SM_UP, 0x1008, CENTER, ok, 1, 0, &why), HW_J9S_END);
  /* A frame shorter than a header. */
  uint8_t shortf[10] = {0};
  uint8_t code;
  assert_int_equal(hw_jt809_slave_step(HW_J9S_SM_UP, 1, CENTER, shortf, sizeof shortf, &code,
                                       &why),
                   HW_J9S_END);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_policy),
                                     cmocka_unit_test(test_state_machine)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
