/* base/text.c: the one UTF-8 validator and truncation helper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/text.h"

#define VALID(lit) hw_utf8_valid(lit, sizeof(lit) - 1)

static void test_valid_accepts_well_formed(void **state) {
  (void)state;
  assert_true(VALID(""));
  assert_true(VALID("ABC-123"));
  assert_true(VALID("\xc2\x80"));             /* U+0080, smallest 2-byte */
  assert_true(VALID("\xdf\xbf"));             /* U+07FF */
  assert_true(VALID("\xe0\xa0\x80"));         /* U+0800, smallest 3-byte */
  assert_true(VALID("\xed\x9f\xbf"));         /* U+D7FF, just below the surrogates */
  assert_true(VALID("\xee\x80\x80"));         /* U+E000, just above them */
  assert_true(VALID("\xf0\x90\x80\x80"));     /* U+10000 */
  assert_true(VALID("\xf4\x8f\xbf\xbf"));     /* U+10FFFF, the last code point */
  assert_true(VALID("\xe4\xba\xac" "A12345")); /* a Beijing plate */
}

static void test_valid_refuses_ill_formed(void **state) {
  (void)state;
  assert_false(VALID("\x80"));             /* lone continuation */
  assert_false(VALID("\xc0\xaf"));         /* overlong '/' */
  assert_false(VALID("\xc1\xbf"));         /* overlong */
  assert_false(VALID("\xe0\x9f\xbf"));     /* overlong 3-byte */
  assert_false(VALID("\xed\xa0\x80"));     /* U+D800, a surrogate */
  assert_false(VALID("\xf0\x8f\xbf\xbf")); /* overlong 4-byte */
  assert_false(VALID("\xf4\x90\x80\x80")); /* above U+10FFFF */
  assert_false(VALID("\xf5\x80\x80\x80")); /* no such lead byte */
  assert_false(VALID("\xff"));
  assert_false(VALID("A\xe4\xba"));        /* cut short at the end */
  assert_false(VALID("\xe4\x41\xac"));     /* continuation missing */
  assert_false(VALID("\xc3"));
  /* GBK for a plate's province character: the spreadsheet saved in the wrong encoding. */
  assert_false(VALID("\xbe\xa9" "A12345"));
}

static void test_char_lengths(void **state) {
  (void)state;
  assert_int_equal(hw_utf8_char((const uint8_t *)"A", 1), 1);
  assert_int_equal(hw_utf8_char((const uint8_t *)"\xc3\xa9", 2), 2);
  assert_int_equal(hw_utf8_char((const uint8_t *)"\xe4\xba\xac", 3), 3);
  assert_int_equal(hw_utf8_char((const uint8_t *)"\xf0\x9f\x9a\x9a", 4), 4);
  /* len stops it even though the bytes after would complete it */
  assert_int_equal(hw_utf8_char((const uint8_t *)"\xe4\xba\xac", 2), 0);
}

static void test_truncate_never_cuts_a_character(void **state) {
  (void)state;
  char out[8];
  const char *s = "\xe4\xba\xac\xe4\xba\xac\xe4\xba\xac"; /* three 3-byte characters */
  /* 7 bytes of room: two characters (6 bytes), not 6 + the first byte of the third */
  assert_int_equal(hw_utf8_truncate(out, sizeof out, s, strlen(s)), 6);
  assert_string_equal(out, "\xe4\xba\xac\xe4\xba\xac");
  assert_true(hw_utf8_valid(out, strlen(out)));
  /* Every room size from 1 to 11 gives a valid prefix of the longest length that fits. */
  const char *mix = "a\xc3\xa9\xe4\xba\xac\xf0\x9f\x9a\x9a"; /* 1 + 2 + 3 + 4 bytes */
  const size_t fit[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10};
  for (size_t cap = 1; cap <= 11; cap++) {
    char buf[16];
    memset(buf, 'x', sizeof buf);
    size_t n = hw_utf8_truncate(buf, cap, mix, strlen(mix));
    assert_int_equal(n, fit[cap - 1]);
    assert_int_equal(buf[n], '\0');
    assert_memory_equal(buf, mix, n);
    assert_true(hw_utf8_valid(buf, n));
    assert_int_equal(buf[cap], 'x'); /* nothing written past cap */
  }
}

static void test_truncate_short_input_copied_whole(void **state) {
  (void)state;
  char out[16];
  assert_int_equal(hw_utf8_truncate(out, sizeof out, "abc", 3), 3);
  assert_string_equal(out, "abc");
  /* exactly cap - 1 bytes fit with no cut */
  assert_int_equal(hw_utf8_truncate(out, 4, "\xe4\xba\xac", 3), 3);
  assert_string_equal(out, "\xe4\xba\xac");
  assert_int_equal(hw_utf8_truncate(out, 1, "abc", 3), 0);
  assert_string_equal(out, "");
  /* only len bytes are read: the rest of the buffer may be anything */
  assert_int_equal(hw_utf8_truncate(out, sizeof out, "abcdef", 2), 2);
  assert_string_equal(out, "ab");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_accepts_well_formed),
      cmocka_unit_test(test_valid_refuses_ill_formed),
      cmocka_unit_test(test_char_lengths),
      cmocka_unit_test(test_truncate_never_cuts_a_character),
      cmocka_unit_test(test_truncate_short_input_copied_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
