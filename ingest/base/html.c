#include "base/html.h"

#include <string.h>

#include "base/text.h"

int hw_html_put(FILE *f, const char *s) {
  if (!s)
    return 0;
  size_t len = strlen(s);
  const uint8_t *p = (const uint8_t *)s;
  while (len) {
    size_t k = hw_utf8_char(p, len);
    const char *rep = NULL;
    if (k == 0) {
      rep = "\xef\xbf\xbd"; /* an ill-formed byte: U+FFFD, one byte at a time */
      k = 1;
    } else if (k == 1) {
      switch (p[0]) {
      case '&': rep = "&amp;"; break;
      case '<': rep = "&lt;"; break;
      case '>': rep = "&gt;"; break;
      case '"': rep = "&quot;"; break;
      case '\'': rep = "&#39;"; break;
      case '\t':
      case '\n': break;
      default:
        if (p[0] < 0x20 || p[0] == 0x7f)
          rep = "\xef\xbf\xbd";
      }
    }
    if (rep ? fputs(rep, f) < 0 : fwrite(p, 1, k, f) != k)
      return -EIO;
    p += k;
    len -= k;
  }
  return 0;
}
