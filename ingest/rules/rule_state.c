/* The persistent form of hw_rule_state: magic byte 0xA7, version byte, then every persisted field in a fixed
 * order as varints (signed ones zigzagged) and length-prefixed strings. One function walks the
 * fields for both directions, so encoder and decoder cannot drift apart. A new field means a
 * new version; decode rejects versions it does not know (the daemon then starts that vehicle
 * fresh and replays from the horizon it has, which is the same as losing the snapshot). */
#include "rules/rules_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct hw_codec {
  uint8_t *buf; /* borrowed: output when writing, input when reading */
  size_t cap, pos;
  int writing;
  int err; /* first error, sticky */
} hw_codec;

static void hw_io_u64(hw_codec *c, uint64_t *v) {
  if (c->err)
    return;
  if (c->writing) {
    uint64_t x = *v;
    do {
      if (c->pos >= c->cap) {
        c->err = -ENOBUFS;
        return;
      }
      uint8_t b = x & 0x7F;
      x >>= 7;
      c->buf[c->pos++] = b | (x ? 0x80 : 0);
    } while (x);
    return;
  }
  uint64_t x = 0;
  for (int shift = 0;; shift += 7) {
    if (c->pos >= c->cap || shift > 63) {
      c->err = -EINVAL;
      return;
    }
    uint8_t b = c->buf[c->pos++];
    x |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80))
      break;
  }
  *v = x;
}

static void hw_io_i64(hw_codec *c, int64_t *v) {
  uint64_t z = c->writing ? ((uint64_t)*v << 1) ^ (uint64_t)(*v >> 63) : 0;
  hw_io_u64(c, &z);
  if (!c->writing && !c->err)
    *v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

/* Timestamps and durations (ms): any value a state can legitimately hold is far inside
 * +-1e14 (year 5138), and keeping decoded ones there keeps the engine's sums from overflowing. */
#define HW_RULE_TS_LIMIT 100000000000000LL

static void hw_io_ts(hw_codec *c, int64_t *v) {
  hw_io_i64(c, v);
  if (!c->writing && !c->err && (*v > HW_RULE_TS_LIMIT || *v < -HW_RULE_TS_LIMIT))
    c->err = -EINVAL;
}

static void hw_io_i32(hw_codec *c, int32_t *v) {
  int64_t x = *v;
  hw_io_i64(c, &x);
  if (!c->writing && !c->err) {
    if (x < INT32_MIN || x > INT32_MAX)
      c->err = -EINVAL;
    else
      *v = (int32_t)x;
  }
}

static void hw_io_day(hw_codec *c, int32_t *v) {
  hw_io_i32(c, v);
  if (!c->writing && !c->err && (*v > 1200000 || *v < -1200000))
    c->err = -EINVAL;
}

static void hw_io_u32(hw_codec *c, uint32_t *v) {
  uint64_t x = *v;
  hw_io_u64(c, &x);
  if (!c->writing && !c->err) {
    if (x > UINT32_MAX)
      c->err = -EINVAL;
    else
      *v = (uint32_t)x;
  }
}

static void hw_io_u8(hw_codec *c, uint8_t *v, uint8_t max) {
  uint64_t x = *v;
  hw_io_u64(c, &x);
  if (!c->writing && !c->err) {
    if (x > max)
      c->err = -EINVAL;
    else
      *v = (uint8_t)x;
  }
}

/* s: a NUL-terminated string in a buffer of size cap. */
static void hw_io_str(hw_codec *c, char *s, size_t cap) {
  uint64_t n = c->writing ? strnlen(s, cap - 1) : 0;
  hw_io_u64(c, &n);
  if (c->err)
    return;
  if (c->writing) {
    if (c->cap - c->pos < n) {
      c->err = -ENOBUFS;
      return;
    }
    memcpy(c->buf + c->pos, s, n);
  } else {
    if (n >= cap || c->cap - c->pos < n || memchr(c->buf + c->pos, 0, n)) {
      c->err = -EINVAL;
      return;
    }
    memcpy(s, c->buf + c->pos, n);
    s[n] = '\0';
  }
  c->pos += n;
}

static void hw_io_time_ep(hw_codec *c, hw_time_ep *ep) {
  hw_io_u8(c, &ep->open, 1);
  if (!ep->open)
    return; /* closed episodes carry nothing worth keeping */
  hw_io_ts(c, &ep->start_ms);
  hw_io_ts(c, &ep->last_ms);
  hw_io_ts(c, &ep->emit_ms);
  hw_io_i32(c, &ep->lat_e6);
  hw_io_i32(c, &ep->lon_e6);
}

static void hw_io_speed_ep(hw_codec *c, hw_speed_ep *ep) {
  hw_io_u8(c, &ep->active, 1);
  if (!ep->active)
    return;
  hw_io_u8(c, &ep->opened, 1);
  hw_io_ts(c, &ep->start_ms);
  hw_io_ts(c, &ep->last_ms);
  hw_io_ts(c, &ep->emit_ms);
  hw_io_i32(c, &ep->lat_e6);
  hw_io_i32(c, &ep->lon_e6);
  hw_io_u32(c, &ep->worst_speed);
  hw_io_u32(c, &ep->worst_limit);
  hw_io_u32(c, &ep->max_speed);
  hw_io_i64(c, &ep->worst_zone);
}

static void hw_io_day_ep(hw_codec *c, hw_day_ep *ep) {
  hw_io_u8(c, &ep->open, 1);
  if (!ep->open)
    return;
  hw_io_day(c, &ep->day);
  hw_io_i64(c, &ep->key);
  hw_io_ts(c, &ep->start_ms);
  hw_io_ts(c, &ep->last_ms);
  hw_io_ts(c, &ep->emit_ms);
  hw_io_i32(c, &ep->lat_e6);
  hw_io_i32(c, &ep->lon_e6);
  hw_io_i32(c, &ep->last_lat_e6);
  hw_io_i32(c, &ep->last_lon_e6);
  hw_io_u32(c, &ep->speed_dkmh);
}

/* One byte as it is (the header is not varint-coded, so it stays at fixed offsets). */
static void hw_io_raw8(hw_codec *c, uint8_t *v) {
  if (c->err)
    return;
  if (c->pos >= c->cap) {
    c->err = c->writing ? -ENOBUFS : -EINVAL;
    return;
  }
  if (c->writing)
    c->buf[c->pos] = *v;
  else
    *v = c->buf[c->pos];
  c->pos++;
}

static void hw_io_state(hw_codec *c, hw_rule_state *st) {
  /* Header: magic byte, version byte. */
  uint8_t magic = HW_RULE_STATE_MAGIC, version = HW_RULE_STATE_VERSION;
  hw_io_raw8(c, &magic);
  if (!c->writing && !c->err && magic != HW_RULE_STATE_MAGIC)
    c->err = -EINVAL;
  hw_io_raw8(c, &version);
  if (!c->writing && !c->err && version != HW_RULE_STATE_VERSION)
    c->err = -ENOTSUP;

  hw_quality_ref *q = &st->qref;
  hw_io_u8(c, &q->has, 1);
  hw_io_ts(c, &q->ts_ms);
  hw_io_i32(c, &q->lat_e6);
  hw_io_i32(c, &q->lon_e6);
  hw_io_u8(c, &q->suspects, UINT8_MAX);
  hw_io_ts(c, &q->sus_ts_ms);
  hw_io_i32(c, &q->sus_lat_e6);
  hw_io_i32(c, &q->sus_lon_e6);

  hw_io_u8(c, &st->has_prev, 1);
  hw_io_ts(c, &st->prev.ts_ms);
  hw_io_i32(c, &st->prev.lat_e6);
  hw_io_i32(c, &st->prev.lon_e6);
  hw_io_u32(c, &st->prev.speed_dkmh);
  hw_io_ts(c, &st->clock_ms);

  hw_io_str(c, st->driver, sizeof st->driver);
  hw_io_ts(c, &st->cont_ms);
  hw_io_ts(c, &st->cont_since_ms);
  hw_io_ts(c, &st->rest_ms);
  hw_io_ts(c, &st->rest_since_ms);
  hw_io_ts(c, &st->last_drive_ms);
  hw_io_time_ep(c, &st->cont_ep);
  hw_io_speed_ep(c, &st->speed_ep);

  /* The extension, when there is one. */
  uint8_t has_x = st->x != NULL;
  hw_io_u8(c, &has_x, 1);
  if (!has_x || c->err)
    return;
  if (!c->writing) {
    st->x = calloc(1, sizeof *st->x);
    if (!st->x) {
      c->err = -ENOMEM;
      return;
    }
  }
  hw_rule_extra *x = st->x;
  hw_io_ts(c, &x->night_ms);
  hw_io_ts(c, &x->last_night_drive_ms);
  hw_io_time_ep(c, &x->night_ep);
  hw_io_speed_ep(c, &x->night_speed_ep);
  hw_io_day(c, &x->daily_day);
  for (int i = 0; i < HW_RULE_DRIVERS; i++) {
    hw_daily_slot *s = &x->daily[i];
    hw_io_u8(c, &s->used, 1);
    if (!s->used)
      continue;
    hw_io_str(c, s->driver, sizeof s->driver);
    hw_io_ts(c, &s->drive_ms);
    hw_io_ts(c, &s->last_drive_ms);
    hw_io_time_ep(c, &s->ep);
  }
  for (int i = 0; i < HW_VDAY__N; i++)
    hw_io_day_ep(c, &x->vday[i]);
  for (int i = 0; i < HW_RULE_ZONE_SLOTS; i++)
    hw_io_day_ep(c, &x->zday[i]);
  if (!c->writing) {
    /* Derived, not stored: which per-day episodes are open. */
    st->day_open = 0;
    for (int i = 0; i < HW_VDAY__N; i++)
      st->day_open |= (uint8_t)(x->vday[i].open << i);
    for (int i = 0; i < HW_RULE_ZONE_SLOTS; i++)
      st->day_open |= (uint8_t)(x->zday[i].open << (HW_VDAY__N + i));
  }
}

int hw_rule_state_encode(const struct hw_rule_state *st, uint8_t *buf, size_t cap, size_t *len) {
  if (!st || !buf || !len)
    return -EINVAL;
  hw_codec c = {.buf = buf, .cap = cap, .writing = 1};
  /* The walk takes non-const pointers for the reading direction; writing never modifies. */
  hw_io_state(&c, (hw_rule_state *)st);
  if (c.err)
    return c.err;
  *len = c.pos;
  return 0;
}

int hw_rule_state_decode(const uint8_t *buf, size_t len, struct hw_rule_state **out) {
  if (!buf || !out)
    return -EINVAL;
  hw_rule_state *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  hw_codec c = {.buf = (uint8_t *)buf, .cap = len, .writing = 0};
  hw_io_state(&c, st);
  if (!c.err && c.pos != len)
    c.err = -EINVAL; /* trailing bytes: not something this version wrote */
  if (c.err) {
    hw_rule_state_free(st);
    return c.err;
  }
  *out = st;
  return 0;
}
