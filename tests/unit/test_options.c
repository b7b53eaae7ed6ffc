/* The declarative settings table: defaults, config file, environment and command line, in that
 * order of precedence, and clear refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"

typedef struct {
  char name[16];
  uint32_t count;
  uint32_t flag;
} cfg_t;

static const hw_option table[] = {
    HW_OPT_S(cfg_t, name, "dflt", "HW_TEST_OPT_NAME", "a name"),
    HW_OPT_N(cfg_t, count, "5", 1, 100, NULL, "a count"),
    HW_OPT_B(cfg_t, flag, "true", "a switch"),
};

static int parse(cfg_t *c, int argc, char **argv) {
  char *pos[2];
  int npos;
  memset(c, 0, sizeof *c);
  return hw_options_parse(table, HW_ARRAY_SIZE(table), c, argc, argv, "usage", pos, 0, &npos);
}

static void test_defaults(void **state) {
  (void)state;
  cfg_t c;
  char *argv[] = {"cmd"};
  unsetenv("HW_TEST_OPT_NAME");
  assert_int_equal(parse(&c, 1, argv), 0);
  assert_string_equal(c.name, "dflt");
  assert_int_equal(c.count, 5);
  assert_int_equal(c.flag, 1);
}

static void test_bool_forms(void **state) {
  (void)state;
  cfg_t c;
  char *a1[] = {"cmd", "--flag", "off"};
  assert_int_equal(parse(&c, 3, a1), 0);
  assert_int_equal(c.flag, 0);
  char *a2[] = {"cmd", "--flag=no"};
  assert_int_equal(parse(&c, 2, a2), 0);
  assert_int_equal(c.flag, 0);
  char *a3[] = {"cmd", "--flag=off", "--flag"};
  assert_int_equal(parse(&c, 3, a3), 0);
  assert_int_equal(c.flag, 1);
  /* A word that is not a boolean after a bare switch stays an argument (and is refused here). */
  char *a4[] = {"cmd", "--flag", "maybe"};
  assert_int_equal(parse(&c, 3, a4), -EINVAL);
  char *a5[] = {"cmd", "--flag=maybe"};
  assert_int_equal(parse(&c, 2, a5), -EINVAL);
}

static void test_precedence(void **state) {
  (void)state;
  char path[] = "/tmp/hw_test_opt_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "[serve]\nname = fromfile\ncount = 7\n");
  fclose(f);
  cfg_t c;
  char *a1[] = {"cmd", "--config", path};
  unsetenv("HW_TEST_OPT_NAME");
  assert_int_equal(parse(&c, 3, a1), 0);
  assert_string_equal(c.name, "fromfile");
  assert_int_equal(c.count, 7);
  setenv("HW_TEST_OPT_NAME", "fromenv", 1);
  assert_int_equal(parse(&c, 3, a1), 0);
  assert_string_equal(c.name, "fromenv");
  char *a2[] = {"cmd", "--name", "fromflag", "--config", path, "--count=9"};
  assert_int_equal(parse(&c, 6, a2), 0);
  assert_string_equal(c.name, "fromflag");
  assert_int_equal(c.count, 9);
  unsetenv("HW_TEST_OPT_NAME");
  unlink(path);
}

static void test_refusals(void **state) {
  (void)state;
  cfg_t c;
  char *bad_range[] = {"cmd", "--count", "101"};
  assert_int_equal(parse(&c, 3, bad_range), -EINVAL);
  char *not_number[] = {"cmd", "--count", "12x"};
  assert_int_equal(parse(&c, 3, not_number), -EINVAL);
  char *negative[] = {"cmd", "--count", "-1"};
  assert_int_equal(parse(&c, 3, negative), -EINVAL);
  char *unknown[] = {"cmd", "--nope", "1"};
  assert_int_equal(parse(&c, 3, unknown), -EINVAL);
  char *missing[] = {"cmd", "--count"};
  assert_int_equal(parse(&c, 2, missing), -EINVAL);
  char *too_long[] = {"cmd", "--name", "0123456789abcdef"};
  assert_int_equal(parse(&c, 3, too_long), -EINVAL);
  char *no_file[] = {"cmd", "--config", "/nonexistent/haulwatch.ini"};
  assert_int_equal(parse(&c, 3, no_file), -EINVAL);
}

static void test_hostport(void **state) {
  (void)state;
  char host[32];
  int port;
  assert_int_equal(hw_parse_hostport("127.0.0.1:7100", host, sizeof host, &port), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 7100);
  assert_int_equal(hw_parse_hostport("::1:7100", host, sizeof host, &port), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(hw_parse_hostport("127.0.0.1", host, sizeof host, &port), -EINVAL);
  assert_int_equal(hw_parse_hostport("h:0", host, sizeof host, &port), -EINVAL);
  assert_int_equal(hw_parse_hostport("h:65536", host, sizeof host, &port), -EINVAL);
  assert_int_equal(hw_parse_hostport(":80", host, sizeof host, &port), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),   cmocka_unit_test(test_bool_forms),
      cmocka_unit_test(test_precedence), cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_hostport),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
