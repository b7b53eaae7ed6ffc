#include "jt809/jt809_vehicle.h"

#include "base/geo.h"
#include "jt808/jt808_internal.h"
#include "jt808/jt808_location.h"
#include "jt809/jt809_internal.h"

#define STATUS_SOUTH (1u << 2)
#define STATUS_WEST (1u << 3)

/* The 2011 fields after the encrypt byte: 35 bytes at r. */
static void hw_jt809_fields_2011(hw_jt809__r *r, hw_jt809_gnss *g) {
  g->day = hw_jt809__r8(r);
  g->month = hw_jt809__r8(r);
  g->year = hw_jt809__r16(r);
  g->hour = hw_jt809__r8(r);
  g->minute = hw_jt809__r8(r);
  g->second = hw_jt809__r8(r);
  g->lon = hw_jt809__r32(r);
  g->lat = hw_jt809__r32(r);
  g->vec1 = hw_jt809__r16(r);
  g->vec2 = hw_jt809__r16(r);
  g->vec3 = hw_jt809__r32(r);
  g->direction = hw_jt809__r16(r);
  g->altitude = hw_jt809__r16(r);
  g->state = hw_jt809__r32(r);
  g->alarm = hw_jt809__r32(r);
}

/* Length of the longest prefix of a 0x0200 body made of the fixed part and whole items. */
static size_t hw_jt809_loc_prefix(const uint8_t *p, size_t len) {
  size_t o = HW_JT808_LOCATION_MIN;
  if (len < o)
    return len;
  while (len - o >= 2 && len - o - 2 >= p[o + 1])
    o += 2 + (size_t)p[o + 1];
  return o;
}

static int hw_jt809_parse_loc(const uint8_t *p, size_t len, int64_t recv_ms, hw_fix *fix) {
  int rc = hw_jt808_parse_location(p, len, recv_ms, fix, NULL);
  if (rc == -EBADMSG && len > HW_JT808_LOCATION_MIN) {
    size_t n = hw_jt809_loc_prefix(p, len);
    if (n < len)
      rc = hw_jt808_parse_location(p, n, recv_ms, fix, NULL);
  }
  return rc;
}

int hw_jt809_parse_gnss(const uint8_t *p, size_t len, int is_2019, hw_jt809_gnss *g,
                        size_t *used) {
  hw_jt809__r r = {p, p + len, 0};
  memset(g, 0, sizeof *g);
  g->is_2019 = is_2019 ? 1 : 0;
  g->encrypted = hw_jt809__r8(&r);
  if (!is_2019) {
    hw_jt809_fields_2011(&r, g);
  } else {
    g->loc_len = hw_jt809__r32(&r);
    if (!r.err && hw_jt809__left(&r) < g->loc_len)
      r.err = -EBADMSG; /* a length larger than the body */
    if (!r.err) {
      g->loc = r.p;
      r.p += g->loc_len;
    }
    for (int i = 0; i < 3; i++) {
      const uint8_t *id = hw_jt809__take(&r, 11);
      hw_jt809__ascii(id, r.err ? 0 : 11, g->platform_id[i], sizeof g->platform_id[i]);
      g->platform_alarm[i] = hw_jt809__r32(&r);
    }
    if (!r.err && g->loc_len == 35) {
      hw_fix scratch;
      hw_jt809__r in = {g->loc, g->loc + 35, 0};
      hw_jt809_gnss alt = *g;
      hw_jt809_fields_2011(&in, &alt);
      if (hw_jt809_parse_loc(g->loc, 35, 0, &scratch) != 0 && alt.year >= 2000 &&
          alt.year <= 2099 && alt.month >= 1 && alt.month <= 12 && alt.day >= 1 && alt.day <= 31) {
        *g = alt;
        g->inner_2011 = 1;
      }
    }
  }
  if (r.err)
    return r.err;
  *used = (size_t)(r.p - p);
  return 0;
}

int hw_jt809_encode_gnss(const hw_jt809_gnss *g, uint8_t *out, size_t cap, size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  hw_jt809__w8(&w, g->encrypted);
  if (g->is_2019 && g->inner_2011)
    hw_jt809__w32(&w, 35);
  if (!g->is_2019 || g->inner_2011) {
    hw_jt809__w8(&w, g->day);
    hw_jt809__w8(&w, g->month);
    hw_jt809__w16(&w, g->year);
    hw_jt809__w8(&w, g->hour);
    hw_jt809__w8(&w, g->minute);
    hw_jt809__w8(&w, g->second);
    hw_jt809__w32(&w, g->lon);
    hw_jt809__w32(&w, g->lat);
    hw_jt809__w16(&w, g->vec1);
    hw_jt809__w16(&w, g->vec2);
    hw_jt809__w32(&w, g->vec3);
    hw_jt809__w16(&w, g->direction);
    hw_jt809__w16(&w, g->altitude);
    hw_jt809__w32(&w, g->state);
    hw_jt809__w32(&w, g->alarm);
  } else {
    hw_jt809__w32(&w, g->loc_len);
    hw_jt809__wbytes(&w, g->loc, g->loc_len);
  }
  if (g->is_2019) {
    for (int i = 0; i < 3; i++) {
      hw_jt809__wfixed(&w, g->platform_id[i], 11);
      hw_jt809__w32(&w, g->platform_alarm[i]);
    }
  }
  if (w.err)
    return w.err;
  *out_len = w.len;
  return 0;
}

int hw_jt809_parse_position(const uint8_t *data, size_t len, int is_2019, hw_jt809_gnss *g) {
  size_t used;
  return hw_jt809_parse_gnss(data, len, is_2019, g, &used);
}

static int hw_jt809_mdays(int y, int m) {
  static const uint8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 ? 28 + leap : days[m - 1];
}

int hw_jt809_gnss_to_fix(const hw_jt809_gnss *g, int64_t recv_ms, hw_fix *fix) {
  int rc;
  if (g->is_2019 && !g->inner_2011) {
    rc = hw_jt809_parse_loc(g->loc, g->loc_len, recv_ms, fix);
    fix->source = HW_SRC_JT809;
    return rc;
  }
  memset(fix, 0, sizeof *fix);
  fix->source = HW_SRC_JT809;
  fix->recv_ms = recv_ms;
  fix->alarm = g->alarm;
  fix->status = g->state;
  fix->alt_m = g->altitude; /* unsigned in the standard, as in JT/T 808 */
  fix->speed_dkmh = (uint32_t)g->vec1 * 10;
  fix->odometer_hm = g->vec3 > UINT32_MAX / 10 ? UINT32_MAX : g->vec3 * 10;
  if (g->lat > 90000000u || g->lon > 180000000u)
    return -ERANGE;
  fix->lat_e6 = (g->state & STATUS_SOUTH) ? -(int32_t)g->lat : (int32_t)g->lat;
  fix->lon_e6 = (g->state & STATUS_WEST) ? -(int32_t)g->lon : (int32_t)g->lon;
  if (g->direction > 360)
    return -ERANGE;
  fix->heading = g->direction == 360 ? 0 : g->direction;
  /* Same window as JT/T 808's BCD years (2000-2099): anything else is a broken clock. */
  if (g->year < 2000 || g->year > 2099 || g->month < 1 || g->month > 12 || g->day < 1 ||
      g->day > hw_jt809_mdays(g->year, g->month) || g->hour > 23 || g->minute > 59 ||
      g->second > 59)
    return -EINVAL;
  int64_t secs = hw_jt808__days(g->year, g->month, g->day) * 86400 + g->hour * 3600 +
                 g->minute * 60 + g->second;
  fix->ts_ms = (secs - HW_CST_OFFSET_S) * 1000; /* GMT+8, as JT/T 808 */
  return 0;
}

int hw_jt809_batch_begin(hw_jt809_batch *b, const uint8_t *data, size_t len, int is_2019) {
  memset(b, 0, sizeof *b);
  if (len < 1)
    return -EBADMSG;
  b->count = data[0];
  b->p = data + 1;
  b->end = data + len;
  b->is_2019 = is_2019 ? 1 : 0;
  return 0;
}

int hw_jt809_batch_next(hw_jt809_batch *b, hw_jt809_gnss *g) {
  size_t used;
  if (b->seen == b->count)
    return 0;
  if (hw_jt809_parse_gnss(b->p, (size_t)(b->end - b->p), b->is_2019, g, &used)) {
    b->seen = b->count; /* nothing after a cut record can be trusted */
    return -EBADMSG;
  }
  b->p += used;
  b->seen++;
  return 1;
}

int hw_jt809_encode_batch(const hw_jt809_gnss *g, size_t n, uint8_t *out, size_t cap,
                          size_t *out_len) {
  size_t o = 1, l;
  int rc;
  if (n > UINT8_MAX)
    return -EOVERFLOW;
  if (cap < 1)
    return -ENOSPC;
  out[0] = (uint8_t)n;
  for (size_t i = 0; i < n; i++) {
    if ((rc = hw_jt809_encode_gnss(&g[i], out + o, cap - o, &l)))
      return rc;
    o += l;
  }
  *out_len = o;
  return 0;
}

/* Field widths of the three 0x1201 layouts: platform, producer, model, IMEI, terminal, SIM. */
static const uint8_t *hw_jt809_reg_widths(size_t len) {
  static const uint8_t w49[6] = {11, 11, 8, 0, 7, 12}, w61[6] = {11, 11, 20, 0, 7, 12},
                       w110[6] = {11, 11, 30, 15, 30, 13};
  return len == 49 ? w49 : len == 61 ? w61 : len == 110 ? w110 : NULL;
}

int hw_jt809_parse_register(const uint8_t *data, size_t len, hw_jt809_register *out) {
  const uint8_t *w = hw_jt809_reg_widths(len);
  const uint8_t *p = data;
  memset(out, 0, sizeof *out);
  if (!w)
    return -EBADMSG;
  out->layout = (uint8_t)len;
  char *dst[6] = {out->platform_id, out->producer_id, out->model, out->imei, out->terminal_id,
                  out->sim};
  size_t cap[6] = {sizeof out->platform_id, sizeof out->producer_id, sizeof out->model,
                   sizeof out->imei, sizeof out->terminal_id, sizeof out->sim};
  for (int i = 0; i < 6; i++) {
    hw_jt809__ascii(p, w[i], dst[i], cap[i]);
    p += w[i];
  }
  return 0;
}

int hw_jt809_encode_register(const hw_jt809_register *r, uint8_t *out, size_t cap,
                             size_t *out_len) {
  const uint8_t *wd = hw_jt809_reg_widths(r->layout);
  hw_jt809__w w = {out, cap, 0, 0};
  if (!wd)
    return -EINVAL;
  const char *src[6] = {r->platform_id, r->producer_id, r->model, r->imei, r->terminal_id, r->sim};
  for (int i = 0; i < 6; i++)
    if (wd[i])
      hw_jt809__wfixed(&w, src[i], wd[i]);
  if (w.err)
    return w.err;
  *out_len = w.len;
  return 0;
}
