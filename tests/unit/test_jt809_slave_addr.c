/* The slave link's address policy (jt809/jt809_slave.h): the address is the platform's word, so
 * only numeric unicast addresses are taken, and loopback and link-local ones only when the
 * platform's row allows them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>

#include "jt809/jt809_slave.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_policy)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
