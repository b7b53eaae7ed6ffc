/* Field helpers for the JT/T 808 parsers: BCD time, ASCII and GBK strings. */
#include <iconv.h>
#include <string.h>

#include "base/geo.h"
#include "jt808/jt808_internal.h"

int64_t hw_jt808__days(int y, int m, int d) {
  /* Howard Hinnant's days_from_civil: exact for every proleptic Gregorian date. */
  int64_t yy = y - (m <= 2);
  int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  int64_t yoe = yy - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int hw_jt808_mdays(int y, int m) {
  static const uint8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 ? 28 + leap : days[m - 1];
}

int hw_jt808__bcd_time(const uint8_t *p, int64_t *ms) {
  int v[6];
  for (int i = 0; i < 6; i++) {
    v[i] = hw_jt808__bcd(p[i]);
    if (v[i] < 0)
      return -EINVAL;
  }
  int y = 2000 + v[0], mo = v[1], d = v[2], h = v[3], mi = v[4], s = v[5];
  if (mo < 1 || mo > 12 || d < 1 || d > hw_jt808_mdays(y, mo) || h > 23 || mi > 59 || s > 59)
    return -EINVAL;
  int64_t secs = hw_jt808__days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  *ms = (secs - HW_CST_OFFSET_S) * 1000; /* device clocks run on Beijing time */
  return 0;
}

static int hw_jt808_pad(uint8_t c) { return c == 0 || c == ' '; }

/* Trims padding at both ends of p[0..*n); returns the new start. */
static const uint8_t *hw_jt808_trim(const uint8_t *p, size_t *n) {
  size_t a = 0, b = *n;
  while (a < b && hw_jt808_pad(p[a]))
    a++;
  while (b > a && hw_jt808_pad(p[b - 1]))
    b--;
  *n = b - a;
  return p + a;
}

void hw_jt808__ascii(const uint8_t *p, size_t n, char *out, size_t cap) {
  const uint8_t *s = hw_jt808_trim(p, &n);
  if (cap == 0)
    return;
  if (n >= cap)
    n = cap - 1;
  for (size_t i = 0; i < n; i++)
    out[i] = s[i] >= 0x20 && s[i] < 0x7F ? (char)s[i] : '?';
  out[n] = '\0';
}

int hw_jt808__gbk(const uint8_t *p, size_t n, char *out, size_t cap) {
  const uint8_t *s = hw_jt808_trim(p, &n);
  size_t i;

  if (cap == 0)
    return -EOVERFLOW;
  /* Pure ASCII (the common case for codes and numbers) needs no iconv. */
  for (i = 0; i < n && s[i] < 0x80; i++)
    ;
  if (i == n) {
    if (n >= cap)
      return -EOVERFLOW;
    memcpy(out, s, n);
    out[n] = '\0';
    for (i = 0; i < n; i++)
      if (out[i] < 0x20 || out[i] == 0x7F)
        return -EILSEQ; /* control bytes inside a name: not text */
    return 0;
  }

  /* GB18030 is a superset of GBK, so terminals that send either decode the same. Opened per call:
   * only registrations and driver cards carry GBK text, and a cached descriptor would have to be
   * per thread. */
  iconv_t cd = iconv_open("UTF-8", "GB18030");
  if (cd == (iconv_t)-1) {
    cd = iconv_open("UTF-8", "GBK");
    if (cd == (iconv_t)-1)
      return -ENOMEM;
  }
  char *in = (char *)(uintptr_t)s; /* iconv's prototype is not const-correct */
  size_t inleft = n;
  char *o = out;
  size_t oleft = cap - 1;
  int rc = 0;
  if (iconv(cd, &in, &inleft, &o, &oleft) == (size_t)-1)
    rc = errno == E2BIG ? -EOVERFLOW : -EILSEQ; /* EINVAL: truncated multibyte sequence */
  iconv_close(cd);
  if (rc)
    return rc;
  *o = '\0';
  for (char *c = out; c < o; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7F)
      return -EILSEQ;
  return 0;
}
