#include "base/text.h"

#include <string.h>

size_t hw_utf8_char(const uint8_t *s, size_t len) {
  uint8_t c = s[0];
  if (c < 0x80)
    return 1;
  size_t n;
  uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0)
      lo = 0xa0; /* overlong */
    else if (c == 0xed)
      hi = 0x9f; /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0)
      lo = 0x90; /* overlong */
    else if (c == 0xf4)
      hi = 0x8f; /* above U+10FFFF */
  } else {
    return 0; /* continuation byte, overlong lead 0xc0/0xc1, or 0xf5.. */
  }
  if (len < n || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t k = 2; k < n; k++)
    if ((s[k] & 0xc0) != 0x80)
      return 0;
  return n;
}

int hw_utf8_valid(const char *s, size_t len) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0;
  while (i < len) {
    size_t n = hw_utf8_char(p + i, len - i);
    if (n == 0)
      return 0;
    i += n;
  }
  return 1;
}

size_t hw_utf8_truncate(char *dst, size_t cap, const char *s, size_t len) {
  size_t n = len;
  if (n > cap - 1) {
    n = cap - 1;
    /* s[n] is the first byte left out: while it continues a character, that character started
     * at or before n - 1 and must go too. */
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--;
  }
  memcpy(dst, s, n);
  dst[n] = '\0';
  return n;
}
