/* Text fields of JT/T 809: fixed ASCII, and GBK to and from UTF-8 (through iconv, GB18030 being
 * the superset every platform's GBK decodes with). The GBK-to-UTF-8 direction is JT/T 808's
 * (the same plates, the same trimming), reused rather than written twice. */
#include <iconv.h>

#include "jt808/jt808_internal.h"
#include "jt809/jt809_internal.h"
#include "jt809/jt809_msg.h"

void hw_jt809__ascii(const uint8_t *p, size_t n, char *out, size_t cap) {
  hw_jt808__ascii(p, n, out, cap);
}

int hw_jt809_text(const uint8_t *p, size_t n, char *out, size_t cap) {
  return hw_jt808__gbk(p, n, out, cap);
}

int hw_jt809__to_gbk(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len) {
  size_t i;
  for (i = 0; i < n && (unsigned char)s[i] < 0x80; i++)
    ;
  if (i == n) {
    if (n > cap)
      return -EOVERFLOW;
    memcpy(out, s, n);
    *out_len = n;
    return 0;
  }
  iconv_t cd = iconv_open("GB18030", "UTF-8");
  if (cd == (iconv_t)-1)
    return -ENOMEM;
  char *in = (char *)(uintptr_t)s, *o = (char *)out;
  size_t inleft = n, oleft = cap;
  int rc = 0;
  if (iconv(cd, &in, &inleft, &o, &oleft) == (size_t)-1)
    rc = errno == E2BIG ? -EOVERFLOW : -EILSEQ;
  iconv_close(cd);
  if (rc)
    return rc;
  *out_len = cap - oleft;
  return 0;
}

void hw_jt809__wgbk(hw_jt809__w *w, const char *utf8, size_t n) {
  uint8_t *p;
  size_t l = 0;
  int rc;
  if (w->err)
    return;
  if (!(p = hw_jt809__room(w, n)))
    return;
  memset(p, 0, n);
  if (utf8 && (rc = hw_jt809__to_gbk(utf8, strlen(utf8), p, n, &l)))
    w->err = rc;
}
