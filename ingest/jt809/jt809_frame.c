#include "jt809/jt809_frame.h"
#include "jt809/jt809_internal.h"

#include <string.h>

#define START 0x5B
#define END 0x5D
#define ESC_A 0x5A /* escapes 5B (01) and 5A (02) */
#define ESC_E 0x5E /* escapes 5D (01) and 5E (02) */

enum {
  ST_OUT = 0, /* outside a frame (start of the stream, after a 5D, after a dropped frame) */
  ST_IN,      /* after a 5B: collecting */
};

const char *hw_jt809_event_name(hw_jt809_frame_event ev) {
  switch (ev) {
  case HW_JT809_FRAME: return "frame";
  case HW_JT809_BAD_CRC: return "bad_crc";
  case HW_JT809_BAD_ESCAPE: return "bad_escape";
  case HW_JT809_OVERSIZE: return "oversize";
  case HW_JT809_BAD_LENGTH: return "bad_length";
  case HW_JT809_UNTERMINATED: return "unterminated";
  }
  return "unknown";
}

int hw_jt809_deframer_init(hw_jt809_deframer *d, uint8_t *buf, size_t cap) {
  memset(d, 0, sizeof *d);
  if (!buf || cap < HW_JT809_FRAME_MIN)
    return -EINVAL;
  d->buf = buf;
  d->cap = cap;
  d->state = ST_OUT;
  return 0;
}

/* Table-driven, one table lookup per byte; built at compile time from the polynomial. */
#define C1(c) (((c) & 0x8000) ? (uint16_t)(((c) << 1) ^ 0x1021) : (uint16_t)((c) << 1))
#define C8(c) C1(C1(C1(C1(C1(C1(C1(C1((uint16_t)(c) << 8))))))))
#define R4(i) C8(i), C8(i + 1), C8(i + 2), C8(i + 3)
#define R16(i) R4(i), R4(i + 4), R4(i + 8), R4(i + 12)
#define R64(i) R16(i), R16(i + 16), R16(i + 32), R16(i + 48)
static const uint16_t crc_table[256] = {R64(0), R64(64), R64(128), R64(192)};

uint16_t hw_jt809_crc16(uint16_t crc, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    crc = (uint16_t)(crc << 8) ^ crc_table[(crc >> 8) ^ p[i]];
  return crc;
}

void hw_jt809_crypt(const hw_jt809_cipher *c, uint32_t key, uint8_t *p, size_t n) {
  uint32_t k = key ? key : 1, m = c->m1 ? c->m1 : 1;
  for (size_t i = 0; i < n; i++) {
    k = c->ia1 * (k % m) + c->ic1; /* uint32_t: wraps as the standard's UINT32 does */
    p[i] ^= (uint8_t)(k >> 20);
  }
}

/* Reports and forgets the bytes collected: a dropped frame. */
static int hw_jt809_drop(hw_jt809_deframer *d, hw_jt809_frame_event ev, hw_jt809_frame_cb cb,
                         void *arg) {
  size_t n = d->len;
  d->len = 0;
  switch (ev) {
  case HW_JT809_BAD_CRC: d->stats.bad_crc++; break;
  case HW_JT809_BAD_ESCAPE: d->stats.bad_escape++; break;
  case HW_JT809_OVERSIZE: d->stats.oversize++; break;
  case HW_JT809_BAD_LENGTH: d->stats.bad_length++; break;
  case HW_JT809_UNTERMINATED: d->stats.unterminated++; break;
  case HW_JT809_FRAME: break;
  }
  return cb(arg, ev, d->buf, n);
}

static uint32_t hw_jt809_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int hw_jt809_special(uint8_t c) { return c == START || c == END || c == ESC_A || c == ESC_E; }

/* The length field of the frame collected so far, read both ways (as sent, and unescaped);
 * 1 when both say the frame is longer than the bytes collected plus the flags and the byte now
 * arriving: a 5B or 5D seen now is then taken as a byte of a frame from a platform that does
 * not escape (tolerant mode). Bounded by the buffer: a lying length field costs at most one
 * buffer of swallowed bytes, reported as a bad escape at the end. */
static int hw_jt809_claims_more(const hw_jt809_deframer *d) {
  uint8_t head[4];
  size_t i = 0, h = 0;
  if (d->len < 4)
    return 0;
  uint64_t raw = hw_jt809_be32(d->buf);
  while (h < 4 && i < d->len) {
    uint8_t c = d->buf[i++];
    if ((c == ESC_A || c == ESC_E) && i < d->len && (d->buf[i] == 1 || d->buf[i] == 2))
      c = c == ESC_A ? (d->buf[i++] == 1 ? START : ESC_A) : (d->buf[i++] == 1 ? END : ESC_E);
    head[h++] = c;
  }
  if (h < 4)
    return 0;
  uint64_t esc = hw_jt809_be32(head), have = (uint64_t)d->len + 3;
  return raw > have && esc > have && raw <= (uint64_t)d->cap + 2 && esc <= (uint64_t)d->cap + 2;
}

/* A 5D arrived; buf holds the frame's bytes as sent. 0 when delivered or reported, 1 when the
 * 5D is to be taken as data (hw_jt809_claims_more), or the callback's code. */
static int hw_jt809_close(hw_jt809_deframer *d, hw_jt809_frame_cb cb, void *arg) {
  size_t n = d->len, o = 0;
  int lenient = 0, specials = 0;
  uint8_t *b = d->buf;

  if (n == 0) {
    d->state = ST_OUT;
    return 0; /* 5B 5D: nothing to report */
  }
  if (n >= HW_JT809_FRAME_MIN && hw_jt809_be32(b) == (uint64_t)n + 2) {
    /* The length field matches the bytes as sent: either nothing needed escaping, or the sender
     * escapes nothing (real platforms do: an escaped frame is longer than its length field).
     * The CRC decides; strict deframers accept only the first case. */
    for (size_t i = 0; i < n; i++)
      specials |= hw_jt809_special(b[i]);
    if ((!specials || !d->strict) &&
        hw_jt809_crc16(0xFFFF, b, n - 2) == (uint16_t)(b[n - 2] << 8 | b[n - 1])) {
      d->state = ST_OUT;
      d->len = 0;
      d->stats.frames++;
      if (specials)
        d->stats.unescaped++;
      return cb(arg, HW_JT809_FRAME, b, n - 2);
    }
  }
  if (!d->strict && hw_jt809_claims_more(d))
    return 1;
  d->state = ST_OUT;
  /* Unescape in place (the output never overtakes the input). */
  for (size_t i = 0; i < n; i++) {
    uint8_t c = b[i];
    if (c == ESC_A || c == ESC_E) {
      if (i + 1 < n && (b[i + 1] == 0x01 || b[i + 1] == 0x02)) {
        c = c == ESC_A ? (b[++i] == 0x01 ? START : ESC_A) : (b[++i] == 0x01 ? END : ESC_E);
      } else if (d->strict) {
        return hw_jt809_drop(d, HW_JT809_BAD_ESCAPE, cb, arg);
      } else {
        lenient = 1; /* taken literally: platforms that escape 5B and 5D only */
      }
    } else if (c == START || c == END) {
      lenient = 1; /* only in frames kept open by hw_jt809_claims_more */
    }
    b[o++] = c;
  }
  d->len = n = o;
  if (n < HW_JT809_FRAME_MIN)
    return hw_jt809_drop(d, HW_JT809_BAD_LENGTH, cb, arg);
  uint16_t crc = (uint16_t)(b[n - 2] << 8 | b[n - 1]);
  /* A frame read with a tolerated escape that does not add up was a bad escape after all. */
  if (hw_jt809_crc16(0xFFFF, b, n - 2) != crc)
    return hw_jt809_drop(d, lenient ? HW_JT809_BAD_ESCAPE : HW_JT809_BAD_CRC, cb, arg);
  /* The length field counts the whole unescaped frame: 5B, header, body, CRC, 5D. */
  if (hw_jt809_be32(b) != (uint64_t)n + 2)
    return hw_jt809_drop(d, lenient ? HW_JT809_BAD_ESCAPE : HW_JT809_BAD_LENGTH, cb, arg);
  d->len = 0;
  d->stats.frames++;
  if (lenient)
    d->stats.lenient_escape++;
  return cb(arg, HW_JT809_FRAME, b, n - 2);
}

int hw_jt809_deframer_feed(hw_jt809_deframer *d, const uint8_t *data, size_t len,
                           hw_jt809_frame_cb cb, void *arg) {
  const uint8_t *p = data, *end = data + len;
  int rc;

  while (p < end) {
    if (d->state == ST_OUT) {
      const uint8_t *s = memchr(p, START, (size_t)(end - p));
      d->stats.garbage_bytes += (uint64_t)((s ? s : end) - p);
      if (!s)
        return 0;
      p = s + 1;
      d->state = ST_IN;
      d->len = 0;
      continue;
    }
    /* Collect up to the next 5B or 5D as sent; unescaping happens at the 5D. */
    const uint8_t *q = p;
    while (q < end && *q != START && *q != END)
      q++;
    size_t run = (size_t)(q - p);
    if (run > d->cap - d->len) {
      size_t room = d->cap - d->len;
      memcpy(d->buf + d->len, p, room); /* what fits is reported with the event */
      d->stats.garbage_bytes += run - room;
      d->len = d->cap;
      d->state = ST_OUT;
      p = q;
      if ((rc = hw_jt809_drop(d, HW_JT809_OVERSIZE, cb, arg)))
        return rc;
      continue;
    }
    memcpy(d->buf + d->len, p, run);
    d->len += run;
    p = q;
    if (p == end)
      return 0;
    uint8_t c = *p++;
    if (c == START) {
      if (!d->strict && d->len < d->cap && hw_jt809_claims_more(d)) {
        d->buf[d->len++] = c; /* inside a frame from a platform that does not escape */
        continue;
      }
      /* A frame never holds a raw 5B: the one before lost its end. */
      if (d->len && (rc = hw_jt809_drop(d, HW_JT809_UNTERMINATED, cb, arg)))
        return rc;
      d->len = 0;
      continue;
    }
    rc = hw_jt809_close(d, cb, arg);
    if (rc < 0)
      return rc;
    if (rc == 1) {
      if (d->len == d->cap) {
        d->state = ST_OUT;
        if ((rc = hw_jt809_drop(d, HW_JT809_OVERSIZE, cb, arg)))
          return rc;
        continue;
      }
      d->buf[d->len++] = c;
    }
  }
  return 0;
}

int hw_jt809_frame_encode(const uint8_t *raw, size_t n, uint8_t *out, size_t cap,
                          size_t *out_len) {
  size_t o = 0;
  uint16_t crc = hw_jt809_crc16(0xFFFF, raw, n);

  if (cap < 1)
    return -ENOSPC;
  out[o++] = START;
  for (size_t i = 0; i < n; i++)
    if (hw_jt809__put_escaped(out, cap, &o, raw[i]))
      return -ENOSPC;
  if (hw_jt809__put_escaped(out, cap, &o, (uint8_t)(crc >> 8)) || hw_jt809__put_escaped(out, cap, &o, (uint8_t)crc))
    return -ENOSPC;
  if (cap - o < 1)
    return -ENOSPC;
  out[o++] = END;
  *out_len = o;
  return 0;
}
