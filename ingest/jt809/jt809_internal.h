/* Helpers shared by the jt809_*.c files; not part of any public interface. */
#ifndef HW_JT809_INTERNAL_H
#define HW_JT809_INTERNAL_H

#include <string.h>

#include "base/common.h"

static inline uint16_t hw_jt809__be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline uint32_t hw_jt809__be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t hw_jt809__be64(const uint8_t *p) {
  return (uint64_t)hw_jt809__be32(p) << 32 | hw_jt809__be32(p + 4);
}

static inline void hw_jt809__put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline void hw_jt809__put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static inline void hw_jt809__put64(uint8_t *p, uint64_t v) {
  hw_jt809__put32(p, (uint32_t)(v >> 32));
  hw_jt809__put32(p + 4, (uint32_t)v);
}

/* A writer over a caller buffer: every put checks room once; `err` sticks at -ENOSPC. */
typedef struct hw_jt809__w {
  uint8_t *p;
  size_t cap, len;
  int err;
} hw_jt809__w;

static inline uint8_t *hw_jt809__room(hw_jt809__w *w, size_t n) {
  if (w->err)
    return NULL; /* the first error stands */
  if (w->cap - w->len < n) {
    w->err = -ENOSPC;
    return NULL;
  }
  uint8_t *r = w->p + w->len;
  w->len += n;
  return r;
}

static inline void hw_jt809__w8(hw_jt809__w *w, uint8_t v) {
  uint8_t *p = hw_jt809__room(w, 1);
  if (p)
    p[0] = v;
}
static inline void hw_jt809__w16(hw_jt809__w *w, uint16_t v) {
  uint8_t *p = hw_jt809__room(w, 2);
  if (p)
    hw_jt809__put16(p, v);
}
static inline void hw_jt809__w32(hw_jt809__w *w, uint32_t v) {
  uint8_t *p = hw_jt809__room(w, 4);
  if (p)
    hw_jt809__put32(p, v);
}
static inline void hw_jt809__w64(hw_jt809__w *w, uint64_t v) {
  uint8_t *p = hw_jt809__room(w, 8);
  if (p)
    hw_jt809__put64(p, v);
}
static inline void hw_jt809__wbytes(hw_jt809__w *w, const void *s, size_t n) {
  uint8_t *p = hw_jt809__room(w, n);
  if (p && n)
    memcpy(p, s, n);
}
/* A fixed-size field: s (strlen) left-aligned, NUL padded; -EOVERFLOW when it does not fit. */
static inline void hw_jt809__wfixed(hw_jt809__w *w, const char *s, size_t n) {
  size_t l = s ? strlen(s) : 0;
  if (l > n) {
    if (!w->err)
      w->err = -EOVERFLOW;
    return;
  }
  uint8_t *p = hw_jt809__room(w, n);
  if (!p)
    return;
  if (l)
    memcpy(p, s, l);
  memset(p + l, 0, n - l);
}

/* A reader over a body: every take checks the bytes are there; `err` sticks at -EBADMSG and
 * a failed take returns a pointer to zeros, so parsers read straight through and check once. */
typedef struct hw_jt809__r {
  const uint8_t *p, *end;
  int err;
} hw_jt809__r;

static inline const uint8_t *hw_jt809__take(hw_jt809__r *r, size_t n) {
  static const uint8_t zeros[64];
  if (r->err || (size_t)(r->end - r->p) < n) {
    r->err = -EBADMSG;
    r->p = r->end;
    return n <= sizeof zeros ? zeros : NULL;
  }
  const uint8_t *q = r->p;
  r->p += n;
  return q;
}
static inline uint8_t hw_jt809__r8(hw_jt809__r *r) { return hw_jt809__take(r, 1)[0]; }
static inline uint16_t hw_jt809__r16(hw_jt809__r *r) { return hw_jt809__be16(hw_jt809__take(r, 2)); }
static inline uint32_t hw_jt809__r32(hw_jt809__r *r) { return hw_jt809__be32(hw_jt809__take(r, 4)); }
static inline uint64_t hw_jt809__r64(hw_jt809__r *r) { return hw_jt809__be64(hw_jt809__take(r, 8)); }
static inline size_t hw_jt809__left(const hw_jt809__r *r) { return (size_t)(r->end - r->p); }

/* Fixed ASCII field to a C string: NUL padding and spaces trimmed, non-printable bytes as '?'. */
void hw_jt809__ascii(const uint8_t *p, size_t n, char *out, size_t cap);

/* UTF-8 text (s[0..n)) to GBK (GB18030) into out[0..cap); *out_len its length. -EILSEQ,
 * -EOVERFLOW, -ENOMEM. */
int hw_jt809__to_gbk(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len)
    HW_MUST_CHECK;

/* A fixed GBK field (plate): converted and written NUL padded to n bytes. */
void hw_jt809__wgbk(hw_jt809__w *w, const char *utf8, size_t n);

/* Appends byte c to out[*o..cap) as it goes on the wire: 5B, 5A, 5D, 5E each as two bytes
 * (5A 01, 5A 02, 5E 01, 5E 02), any other as itself. -ENOSPC when it does not fit. */
static inline int hw_jt809__put_escaped(uint8_t *out, size_t cap, size_t *o, uint8_t c) {
  uint8_t e = 0, v = 0;
  switch (c) {
  case 0x5B: e = 0x5A; v = 0x01; break;
  case 0x5A: e = 0x5A; v = 0x02; break;
  case 0x5D: e = 0x5E; v = 0x01; break;
  case 0x5E: e = 0x5E; v = 0x02; break;
  default:
    if (cap - *o < 1)
      return -ENOSPC;
    out[(*o)++] = c;
    return 0;
  }
  if (cap - *o < 2)
    return -ENOSPC;
  out[(*o)++] = e;
  out[(*o)++] = v;
  return 0;
}

#endif
