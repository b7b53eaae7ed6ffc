#include "sinks/pg_copy.h"

#include "base/text.h"

#include <string.h>

const uint8_t hw_pg_copy_header[HW_PG_COPY_HEADER_LEN] = {
    'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0, /* signature */
    0,   0,   0,   0,                                        /* flags: no OIDs */
    0,   0,   0,   0};                                       /* header extension length */

const uint8_t hw_pg_copy_trailer[HW_PG_COPY_TRAILER_LEN] = {0xff, 0xff};

/* 2000-01-01 00:00 UTC in Unix ms: PostgreSQL's epoch. */
#define HW_PG_EPOCH_UNIX_MS INT64_C(946684800000)
/* MIN_TIMESTAMP and END_TIMESTAMP of PostgreSQL's datatype/timestamp.h, divided by 1000 (both are
 * whole milliseconds, so the range check in ms is exact). */
#define HW_PG_TS_MIN_MS INT64_C(-211813488000000)
#define HW_PG_TS_END_MS INT64_C(9223371331200000)

int hw_pg_copy_timestamp(int64_t unix_ms, int64_t *pg_us) {
  /* Compare before subtracting: unix_ms near INT64_MIN must not overflow. */
  if (unix_ms < HW_PG_TS_MIN_MS + HW_PG_EPOCH_UNIX_MS ||
      unix_ms >= HW_PG_TS_END_MS + HW_PG_EPOCH_UNIX_MS)
    return -EINVAL;
  *pg_us = (unix_ms - HW_PG_EPOCH_UNIX_MS) * 1000;
  return 0;
}

static inline uint8_t *hw_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
  return p + 2;
}

static inline uint8_t *hw_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
  return p + 4;
}

static inline uint8_t *hw_put64(uint8_t *p, uint64_t v) {
  p = hw_put32(p, (uint32_t)(v >> 32));
  return hw_put32(p, (uint32_t)v);
}

/* Each field: its length, then its big-endian value. */
static inline uint8_t *hw_field_i16(uint8_t *p, int16_t v) {
  return hw_put16(hw_put32(p, 2), (uint16_t)v);
}

static inline uint8_t *hw_field_i32(uint8_t *p, int32_t v) {
  return hw_put32(hw_put32(p, 4), (uint32_t)v);
}

static inline uint8_t *hw_field_i64(uint8_t *p, int64_t v) {
  return hw_put64(hw_put32(p, 8), (uint64_t)v);
}

static inline uint8_t *hw_field_f64(uint8_t *p, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return hw_put64(hw_put32(p, 8), bits);
}

static inline uint8_t *hw_field_f32(uint8_t *p, float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  return hw_put32(hw_put32(p, 4), bits);
}

static inline uint8_t *hw_field_text(uint8_t *p, const char *s, size_t len) {
  p = hw_put32(p, (uint32_t)len);
  memcpy(p, s, len);
  return p + len;
}

int hw_pg_copy_row(uint8_t *out, const char *terminal_id, const hw_fix *fix, size_t *len) {
  size_t id_len = strnlen(terminal_id, HW_TID_WIDE_MAX + 1);
  if (hw_stored_tid_check(terminal_id, id_len))
    return -EINVAL;
  int64_t ts, recv_ts;
  if (hw_pg_copy_timestamp(fix->ts_ms, &ts) || hw_pg_copy_timestamp(fix->recv_ms, &recv_ts))
    return -EINVAL;
  /* smallint: a larger value would be stored wrapped, not rejected. */
  if (fix->heading > INT16_MAX)
    return -EINVAL;
  size_t driver_len = 0;
  if (fix->has_driver) {
    driver_len = strnlen(fix->driver_id, sizeof fix->driver_id);
    if (driver_len == sizeof fix->driver_id ||
        !hw_utf8_valid(fix->driver_id, driver_len))
      return -EINVAL;
  }
  /* Every float below comes from an integer, so none can be NaN or infinite. */
  uint8_t *p = hw_put16(out, HW_PG_COPY_NCOLS);
  p = hw_field_text(p, terminal_id, id_len);
  p = hw_field_i64(p, ts);
  p = hw_field_i64(p, fix->seq);
  p = hw_field_i64(p, recv_ts);
  p = hw_field_f64(p, fix->lat_e6 / 1e6);
  p = hw_field_f64(p, fix->lon_e6 / 1e6);
  p = hw_field_f32(p, (float)(fix->speed_dkmh / 10.0));
  p = hw_field_i16(p, (int16_t)fix->heading);
  p = hw_field_i32(p, fix->alt_m);
  p = hw_field_i64(p, fix->alarm);
  p = hw_field_i64(p, fix->status);
  p = hw_field_f64(p, fix->odometer_hm / 10.0);
  if (fix->has_driver)
    p = hw_field_text(p, fix->driver_id, driver_len);
  else
    p = hw_put32(p, UINT32_MAX); /* length -1: NULL */
  p = hw_field_i16(p, fix->source);
  p = hw_field_i16(p, (int16_t)fix->quality);
  *len = (size_t)(p - out);
  return 0;
}
