/* Helpers shared by the jt808_*.c files; not part of any public interface. */
#ifndef HW_JT808_INTERNAL_H
#define HW_JT808_INTERNAL_H

#include "base/common.h"

static inline uint16_t hw_jt808__be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline uint32_t hw_jt808__be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void hw_jt808__put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* One BCD byte as 0..99, or -1 when a nibble is above 9. */
static inline int hw_jt808__bcd(uint8_t b) {
  int hi = b >> 4, lo = b & 0x0F;
  return hi > 9 || lo > 9 ? -1 : hi * 10 + lo;
}

/* BCD[6] YYMMDDhhmmss in GMT+8 (years 2000-2099) to UTC ms. -EINVAL for a bad nibble or a field
 * out of range (month 0, 31 April, hour 24, ...). */
int hw_jt808__bcd_time(const uint8_t *p, int64_t *ms) HW_MUST_CHECK;

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t hw_jt808__days(int y, int m, int d);

/* Copies a fixed-size STRING field into out (size cap >= n + 1): NUL padding and spaces trimmed
 * at both ends (terminals pad either side), any other non-printable byte replaced by '?', so the
 * result is always a printable ASCII C string. For fields the standard defines as ASCII. */
void hw_jt808__ascii(const uint8_t *p, size_t n, char *out, size_t cap);

/* Converts a GBK (GB18030) STRING field into UTF-8 in out[0..cap), NUL terminated, after trimming
 * NUL padding and spaces at both ends. 0, -EILSEQ for bytes that are not GBK, -EOVERFLOW when out
 * is too small, -ENOMEM (iconv could not be opened). */
int hw_jt808__gbk(const uint8_t *p, size_t n, char *out, size_t cap) HW_MUST_CHECK;

#endif
