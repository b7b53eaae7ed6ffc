/* Text fields of JT/T 809: fixed ASCII, and GBK to and from UTF-8 through iconv (GB18030 being
 * the superset every platform's GBK decodes with). Unlike JT/T 808, where GBK is rare
 * (registrations), every JT/T 809 position carries a GBK plate, so the GBK-to-UTF-8 descriptor
 * is opened once per thread and kept (iconv_open costs about a microsecond; see
 * tests/bench/bench_jt809_decode.c). Trimming and checks follow JT/T 808's helper. */
#include <iconv.h>

#include "jt808/jt808_internal.h"
#include "jt809/jt809_internal.h"
#include "jt809/jt809_msg.h"

void hw_jt809__ascii(const uint8_t *p, size_t n, char *out, size_t cap) {
  hw_jt808__ascii(p, n, out, cap);
}

int hw_jt809_text(const uint8_t *p, size_t n, char *out, size_t cap) {
  static _Thread_local iconv_t cd = (iconv_t)-1; /* owned by the thread, never closed */
  size_t a = 0, b = n, i;

  while (a < b && (p[a] == 0 || p[a] == ' '))
    a++;
  while (b > a && (p[b - 1] == 0 || p[b - 1] == ' '))
    b--;
  for (i = a; i < b && p[i] < 0x80; i++)
    ;
  if (i == b) /* ASCII: JT/T 808's helper has the checks, no iconv needed */
    return hw_jt808__gbk(p, n, out, cap);
  if (cap == 0)
    return -EOVERFLOW;
  if (cd == (iconv_t)-1) {
    cd = iconv_open("UTF-8", "GB18030");
    if (cd == (iconv_t)-1)
      return hw_jt808__gbk(p, n, out, cap); /* tries GBK, or says -ENOMEM */
  }
  iconv(cd, NULL, NULL, NULL, NULL); /* back to the initial state after an earlier error */
  char *in = (char *)(uintptr_t)(p + a), *o = out;
  size_t inleft = b - a, oleft = cap - 1;
  if (iconv(cd, &in, &inleft, &o, &oleft) == (size_t)-1)
    return errno == E2BIG ? -EOVERFLOW : -EILSEQ;
  *o = '\0';
  for (char *c = out; c < o; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7F)
      return -EILSEQ;
  return 0;
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
