#include "jt808/jt808_reasm.h"

#include <stdlib.h>
#include <string.h>

static void hw_jt808_slot_clear(hw_jt808_reasm_slot *s) {
  free(s->data);
  free(s->parts);
  memset(s, 0, sizeof *s);
}

void hw_jt808_reasm_init(hw_jt808_reasm *r, const hw_jt808_reasm_cfg *cfg) {
  memset(r, 0, sizeof *r);
  r->cfg = *cfg;
}

void hw_jt808_reasm_free(hw_jt808_reasm *r) {
  for (size_t i = 0; i < HW_JT808_REASM_SLOTS; i++)
    hw_jt808_slot_clear(&r->slot[i]);
  free(r->done);
  r->done = NULL;
}

size_t hw_jt808_reasm_expire(hw_jt808_reasm *r, int64_t now_ms) {
  size_t n = 0;
  for (size_t i = 0; i < HW_JT808_REASM_SLOTS; i++) {
    hw_jt808_reasm_slot *s = &r->slot[i];
    if (s->used && now_ms - s->started_ms >= (int64_t)r->cfg.timeout_ms) {
      hw_jt808_slot_clear(s);
      r->stats.expired++;
      n++;
    }
  }
  return n;
}

size_t hw_jt808_reasm_pending(const hw_jt808_reasm *r) {
  size_t n = 0;
  for (size_t i = 0; i < HW_JT808_REASM_SLOTS; i++)
    n += r->slot[i].used;
  return n;
}

static hw_jt808_reasm_slot *hw_jt808_find(hw_jt808_reasm *r, const hw_jt808_header *h,
                                          uint16_t base) {
  for (size_t i = 0; i < HW_JT808_REASM_SLOTS; i++) {
    hw_jt808_reasm_slot *s = &r->slot[i];
    if (!s->used || s->msg_id != h->msg_id || s->total != h->pkg_total)
      continue;
    if ((s->base_ok && s->base_flow == base) || (s->same_ok && s->same_flow == h->flow))
      return s;
  }
  return NULL;
}

/* A free slot, or the oldest one emptied. */
static hw_jt808_reasm_slot *hw_jt808_take(hw_jt808_reasm *r) {
  hw_jt808_reasm_slot *old = &r->slot[0];
  for (size_t i = 0; i < HW_JT808_REASM_SLOTS; i++) {
    if (!r->slot[i].used)
      return &r->slot[i];
    if (r->slot[i].started_ms < old->started_ms)
      old = &r->slot[i];
  }
  hw_jt808_slot_clear(old);
  r->stats.evicted++;
  return old;
}

/* Hands the finished body of s to r->done, in index order. */
static int hw_jt808_finish(hw_jt808_reasm *r, hw_jt808_reasm_slot *s) {
  uint32_t off = 0;
  int in_order = 1;

  for (uint16_t i = 0; i < s->total; i++) {
    if (s->parts[i].off != off)
      in_order = 0;
    off += s->parts[i].len;
  }
  if (in_order) {
    /* The usual case: packages came in order and data already is the body. */
    r->done = s->data;
    s->data = NULL;
  } else {
    r->done = malloc(s->bytes ? s->bytes : 1);
    if (!r->done)
      return -ENOMEM;
    off = 0;
    for (uint16_t i = 0; i < s->total; i++) {
      memcpy(r->done + off, s->data + s->parts[i].off, s->parts[i].len);
      off += s->parts[i].len;
    }
  }
  return 0;
}

int hw_jt808_reasm_add(hw_jt808_reasm *r, const hw_jt808_header *h, const uint8_t *body,
                       size_t len, int64_t now_ms, const uint8_t **out, size_t *out_len) {
  hw_jt808_reasm_slot *s;
  hw_jt808_reasm_part *part;
  uint16_t base;
  int rc;

  free(r->done);
  r->done = NULL;
  if (!h->subpackaged || h->pkg_index == 0 || h->pkg_index > h->pkg_total ||
      len > HW_JT808_BODY_MAX)
    return -EINVAL;
  hw_jt808_reasm_expire(r, now_ms);
  if (h->pkg_total > r->cfg.max_total || len > r->cfg.max_bytes) {
    r->stats.too_big++;
    return -EMSGSIZE;
  }
  base = (uint16_t)(h->flow - (h->pkg_index - 1));
  s = hw_jt808_find(r, h, base);
  if (!s) {
    s = hw_jt808_take(r);
    s->parts = calloc(h->pkg_total, sizeof *s->parts);
    if (!s->parts)
      return -ENOMEM;
    s->used = 1;
    s->base_ok = s->same_ok = 1;
    s->msg_id = h->msg_id;
    s->total = h->pkg_total;
    s->base_flow = base;
    s->same_flow = h->flow;
    s->started_ms = now_ms;
  }
  part = &s->parts[h->pkg_index - 1];
  if (part->have) {
    r->stats.duplicates++;
    return 0;
  }
  if ((size_t)s->bytes + len > r->cfg.max_bytes) {
    hw_jt808_slot_clear(s);
    r->stats.too_big++;
    return -EMSGSIZE;
  }
  if (s->base_flow != base)
    s->base_ok = 0;
  if (s->same_flow != h->flow)
    s->same_ok = 0;

  if ((size_t)s->bytes + len > s->cap || !s->data) {
    size_t cap = s->cap ? (size_t)s->cap * 2 : 1024;
    if (cap < (size_t)s->bytes + len)
      cap = (size_t)s->bytes + len;
    if (cap > r->cfg.max_bytes)
      cap = r->cfg.max_bytes > 0 ? r->cfg.max_bytes : 1;
    uint8_t *nd = realloc(s->data, cap);
    if (!nd) {
      hw_jt808_slot_clear(s);
      return -ENOMEM;
    }
    s->data = nd;
    s->cap = (uint32_t)cap;
  }
  if (len)
    memcpy(s->data + s->bytes, body, len);
  part->off = s->bytes;
  part->len = (uint16_t)len;
  part->have = 1;
  s->bytes += (uint32_t)len;
  s->received++;
  if (s->received < s->total)
    return 0;

  size_t total_bytes = s->bytes;
  rc = hw_jt808_finish(r, s);
  hw_jt808_slot_clear(s);
  if (rc)
    return rc;
  r->stats.completed++;
  *out = r->done;
  *out_len = total_bytes;
  return 1;
}
