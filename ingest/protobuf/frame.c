#include "protobuf/frame.h"

#include <stdlib.h>
#include <string.h>

void hw_frame_reader_init(hw_frame_reader *r, size_t max_frame) {
  memset(r, 0, sizeof *r);
  r->max_frame = max_frame;
}

void hw_frame_reader_free(hw_frame_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = r->need = 0;
}

size_t hw_varint_put(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

int hw_varint_get(const uint8_t *p, size_t len, uint64_t *v) {
  uint64_t x = 0;
  for (size_t i = 0; i < 10; i++) {
    if (i == len)
      return 0;
    uint8_t b = p[i];
    if (i == 9 && b > 1)
      return -EPROTO;
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *v = x;
      return (int)i + 1;
    }
  }
  return -EPROTO;
}

/* Parses the prefix at p; sets *total (prefix + payload) once known, 0 if more bytes needed. */
static int hw_frame_size(hw_frame_reader *r, const uint8_t *p, size_t len, size_t *total) {
  uint64_t n;
  int k = hw_varint_get(p, len, &n);
  if (k < 0)
    return k;
  if (k == 0) {
    *total = 0;
    return 0;
  }
  if (n > r->max_frame) {
    r->refused = n;
    return -EMSGSIZE;
  }
  *total = (size_t)k + (size_t)n;
  return k;
}

static int hw_frame_keep(hw_frame_reader *r, const uint8_t *data, size_t len) {
  size_t want = r->len + len;
  if (want > r->cap) {
    /* Grow to the frame's full size when known, so a large frame is copied once. */
    size_t cap = r->need > want ? r->need : want;
    if (cap < 64)
      cap = 64;
    uint8_t *nb = realloc(r->buf, cap);
    if (!nb)
      return -ENOMEM;
    r->buf = nb;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, data, len);
  r->len += len;
  return 0;
}

int hw_frame_feed(hw_frame_reader *r, const uint8_t *data, size_t len, hw_frame_cb cb, void *arg) {
  int rc;
  /* First finish a frame carried over from earlier reads. */
  while (r->len > 0 && len > 0) {
    if (r->need == 0) {
      /* Prefix incomplete: take one byte at a time until its length is known (at most 10). */
      if ((rc = hw_frame_keep(r, data, 1)))
        return rc;
      data++, len--;
      size_t total;
      if ((rc = hw_frame_size(r, r->buf, r->len, &total)) < 0)
        return rc;
      r->need = total;
      if (r->need == 0)
        continue;
    }
    size_t take = r->need - r->len;
    if (take > len)
      take = len;
    if ((rc = hw_frame_keep(r, data, take)))
      return rc;
    data += take, len -= take;
    if (r->len < r->need)
      return 0;
    size_t k = (size_t)hw_varint_get(r->buf, r->len, &(uint64_t){0});
    rc = cb(arg, r->buf + k, r->need - k);
    r->len = r->need = 0;
    if (r->cap > 4096) { /* do not keep a large frame's buffer for an idle connection */
      free(r->buf);
      r->buf = NULL;
      r->cap = 0;
    }
    if (rc < 0)
      return rc;
  }
  /* Then every complete frame straight from the read buffer. */
  while (len > 0) {
    size_t total;
    if ((rc = hw_frame_size(r, data, len, &total)) < 0)
      return rc;
    if (total == 0 || total > len) {
      r->need = total;
      return hw_frame_keep(r, data, len);
    }
    if ((rc = cb(arg, data + rc, total - (size_t)rc)) < 0)
      return rc;
    data += total, len -= total;
  }
  return 0;
}
