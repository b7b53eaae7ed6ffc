#include "jt808/jt808_frame.h"

#include <string.h>

#define FLAG 0x7E
#define ESC 0x7D

enum {
  ST_HUNT = 0, /* before the first 7E of the connection */
  ST_IN,       /* after a 7E: collecting (the closing 7E of a frame opens the next one) */
  ST_SKIP,     /* a dropped frame: discarding up to the next 7E */
};

void hw_jt808_deframer_init(hw_jt808_deframer *d) {
  memset(&d->stats, 0, sizeof d->stats);
  d->len = 0;
  d->state = ST_HUNT;
  d->esc = 0;
}

void hw_jt808_deframer_save(const hw_jt808_deframer *d, hw_jt808_deframer_resume *r) {
  r->len = d->len;
  r->state = d->state;
  r->esc = d->esc;
}

void hw_jt808_deframer_restore(hw_jt808_deframer *d, const hw_jt808_deframer_resume *r,
                               const uint8_t *partial) {
  /* A zeroed resume is a fresh connection (ST_HUNT == 0); lengths are clamped so a corrupted one
   * can never write past buf. */
  d->len = r->len <= HW_JT808_FRAME_MAX ? r->len : 0;
  d->state = r->state <= ST_SKIP ? r->state : ST_HUNT;
  d->esc = r->esc != 0;
  if (d->len)
    memcpy(d->buf, partial, d->len);
}

uint8_t hw_jt808_xor(const uint8_t *p, size_t n) {
  /* Eight bytes at a time: this runs over every byte of every frame. */
  uint64_t w8 = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w8 ^= w;
  }
  w8 ^= w8 >> 32;
  w8 ^= w8 >> 16;
  w8 ^= w8 >> 8;
  uint8_t x = (uint8_t)w8;
  for (; i < n; i++)
    x ^= p[i];
  return x;
}

/* A 7E ended the bytes collected since the previous one. */
static int hw_jt808_close(hw_jt808_deframer *d, hw_jt808_frame_cb cb, void *arg) {
  size_t n = d->len;
  int lenient = d->esc;

  d->len = 0;
  d->esc = 0;
  if (lenient) {
    /* `7D 7E`: the 7D can only be an unescaped checksum; the XOR below decides. */
    if (n == HW_JT808_FRAME_MAX) {
      d->stats.bad_escape++;
      return cb(arg, HW_JT808_BAD_ESCAPE, d->buf, n);
    }
    d->buf[n++] = ESC;
  }
  if (n == 0)
    return 0; /* doubled delimiter */
  if (n < HW_JT808_FRAME_MIN) {
    /* Too short to be a frame: noise between frames, not a terminal error. */
    d->stats.garbage_bytes += n;
    return 0;
  }
  if (hw_jt808_xor(d->buf, n - 1) != d->buf[n - 1]) {
    if (lenient) {
      d->stats.bad_escape++;
      return cb(arg, HW_JT808_BAD_ESCAPE, d->buf, n);
    }
    d->stats.bad_checksum++;
    return cb(arg, HW_JT808_BAD_CHECKSUM, d->buf, n);
  }
  if (lenient)
    d->stats.lenient_7d++;
  d->stats.frames++;
  return cb(arg, HW_JT808_FRAME, d->buf, n - 1);
}

/* Drops the current frame: reported now, the rest is skipped up to the next 7E. */
static int hw_jt808_drop(hw_jt808_deframer *d, hw_jt808_frame_event ev, hw_jt808_frame_cb cb,
                         void *arg) {
  size_t n = d->len;
  d->len = 0;
  d->esc = 0;
  d->state = ST_SKIP;
  if (ev == HW_JT808_OVERSIZE)
    d->stats.oversize++;
  else
    d->stats.bad_escape++;
  return cb(arg, ev, d->buf, n);
}

/* Appends one unescaped byte; on overflow drops the frame. 0 to go on, 1 when dropped (state is
 * then ST_SKIP), or the callback's code. */
static int hw_jt808_push(hw_jt808_deframer *d, uint8_t c, hw_jt808_frame_cb cb, void *arg) {
  int rc;
  if (d->len == HW_JT808_FRAME_MAX) {
    rc = hw_jt808_drop(d, HW_JT808_OVERSIZE, cb, arg);
    return rc ? rc : 1;
  }
  d->buf[d->len++] = c;
  return 0;
}

int hw_jt808_deframer_feed(hw_jt808_deframer *d, const uint8_t *data, size_t len,
                           hw_jt808_frame_cb cb, void *arg) {
  const uint8_t *p = data, *end = data + len;
  int rc;

  while (p < end) {
    const uint8_t *flag = memchr(p, FLAG, (size_t)(end - p));
    const uint8_t *stop = flag ? flag : end;

    if (d->state != ST_IN) {
      /* Hunting for the first 7E, or skipping the rest of a dropped frame. */
      d->stats.garbage_bytes += (uint64_t)(stop - p);
      if (!flag)
        return 0;
      p = flag + 1;
      d->state = ST_IN;
      d->len = 0;
      d->esc = 0;
      continue;
    }

    /* Unescape p..stop in runs: memchr and memcpy instead of a branch per byte. */
    while (p < stop) {
      if (d->esc) {
        uint8_t c = *p++;
        d->esc = 0;
        if (c != 0x01 && c != 0x02) {
          rc = hw_jt808_drop(d, HW_JT808_BAD_ESCAPE, cb, arg);
          if (rc)
            return rc;
          break;
        }
        rc = hw_jt808_push(d, c == 0x01 ? ESC : FLAG, cb, arg);
        if (rc < 0)
          return rc;
        if (rc)
          break;
        continue;
      }
      const uint8_t *e = memchr(p, ESC, (size_t)(stop - p));
      const uint8_t *run_end = e ? e : stop;
      size_t run = (size_t)(run_end - p), room = HW_JT808_FRAME_MAX - d->len;
      if (run > room) {
        /* Fill up to the limit; the first byte beyond it drops the frame. */
        memcpy(d->buf + d->len, p, room);
        d->len = HW_JT808_FRAME_MAX;
        p += room + 1;
        rc = hw_jt808_drop(d, HW_JT808_OVERSIZE, cb, arg);
        if (rc)
          return rc;
        break;
      }
      memcpy(d->buf + d->len, p, run);
      d->len = (uint16_t)(d->len + run);
      p = run_end;
      if (e) {
        d->esc = 1;
        p++;
      }
    }
    if (d->state != ST_IN)
      continue; /* dropped: the outer loop skips up to the next 7E (p may be before it) */
    if (!flag)
      return 0;
    p = flag + 1;
    rc = hw_jt808_close(d, cb, arg);
    if (rc)
      return rc;
  }
  return 0;
}

static inline int hw_jt808_put(uint8_t *out, size_t cap, size_t *o, uint8_t c) {
  if (c == FLAG || c == ESC) {
    if (cap - *o < 2)
      return -ENOSPC;
    out[(*o)++] = ESC;
    out[(*o)++] = c == FLAG ? 0x02 : 0x01;
    return 0;
  }
  if (cap - *o < 1)
    return -ENOSPC;
  out[(*o)++] = c;
  return 0;
}

int hw_jt808_frame_encode(const uint8_t *raw, size_t n, uint8_t *out, size_t cap,
                          size_t *out_len) {
  size_t o = 0;
  uint8_t x = 0;

  if (cap < 1)
    return -ENOSPC;
  out[o++] = FLAG;
  for (size_t i = 0; i < n; i++) {
    x ^= raw[i];
    if (hw_jt808_put(out, cap, &o, raw[i]))
      return -ENOSPC;
  }
  if (hw_jt808_put(out, cap, &o, x))
    return -ENOSPC;
  if (cap - o < 1)
    return -ENOSPC;
  out[o++] = FLAG;
  *out_len = o;
  return 0;
}
