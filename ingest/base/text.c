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

size_t hw_utf8_display_width(const char *s) {
  size_t w = 0, len = strlen(s);
  const uint8_t *p = (const uint8_t *)s;
  while (len) {
    size_t k = hw_utf8_char(p, len);
    uint32_t cp;
    if (k == 0) {
      cp = '?';
      k = 1;
    } else if (k == 1) {
      cp = p[0];
    } else if (k == 2) {
      cp = ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
    } else if (k == 3) {
      cp = ((uint32_t)(p[0] & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
    } else {
      cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) |
           ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
    }
    w += (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
                 (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
                 (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
                 (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x20000 && cp <= 0x3fffd)
             ? 2
             : 1;
    p += k;
    len -= k;
  }
  return w;
}
