#include "jt808/jt808_location.h"

#include <string.h>

#include "jt808/jt808_internal.h"

#define STATUS_SOUTH (1u << 2)
#define STATUS_WEST (1u << 3)

/* Applies one additional item whose value is v[0..n). */
static void hw_jt808_item(uint8_t id, const uint8_t *v, uint8_t n, hw_fix *fix,
                          hw_jt808_loc_extra *ex) {
  switch (id) {
  case 0x01:
    if (n != 4)
      break;
    fix->odometer_hm = hw_jt808__be32(v);
    ex->has |= HW_JT808_HAS_ODOMETER;
    return;
  case 0x02:
    if (n != 2)
      break;
    ex->fuel_dl = hw_jt808__be16(v);
    ex->has |= HW_JT808_HAS_FUEL;
    return;
  case 0x03:
    if (n != 2)
      break;
    ex->rec_speed_dkmh = hw_jt808__be16(v);
    ex->has |= HW_JT808_HAS_REC_SPEED;
    return;
  case 0x25:
    if (n != 4)
      break;
    ex->ext_signals = hw_jt808__be32(v);
    ex->has |= HW_JT808_HAS_EXT_SIGNALS;
    return;
  case 0x2A:
    if (n != 2)
      break;
    ex->io = hw_jt808__be16(v);
    ex->has |= HW_JT808_HAS_IO;
    return;
  case 0x2B:
    if (n != 4)
      break;
    ex->analog = hw_jt808__be32(v);
    ex->has |= HW_JT808_HAS_ANALOG;
    return;
  case 0x30:
    if (n != 1)
      break;
    ex->signal = v[0];
    ex->has |= HW_JT808_HAS_SIGNAL;
    return;
  case 0x31:
    if (n != 1)
      break;
    ex->satellites = v[0];
    ex->has |= HW_JT808_HAS_SATELLITES;
    return;
  default:
    break;
  }
  /* Vendor extensions are everywhere; an item we do not know is never an error. */
  if (ex->skipped_items < UINT16_MAX)
    ex->skipped_items++;
}

int hw_jt808_parse_location(const uint8_t *body, size_t len, int64_t recv_ms, hw_fix *fix,
                            hw_jt808_loc_extra *extra) {
  hw_jt808_loc_extra scratch;
  hw_jt808_loc_extra *ex = extra ? extra : &scratch;
  const uint8_t *p = body, *end = body + len;
  int rc;

  memset(fix, 0, sizeof *fix);
  memset(ex, 0, sizeof *ex);
  fix->source = HW_SRC_JT808;
  fix->recv_ms = recv_ms;
  if (len < HW_JT808_LOCATION_MIN)
    return -EBADMSG;

  fix->alarm = hw_jt808__be32(p);
  fix->status = hw_jt808__be32(p + 4);
  uint32_t lat = hw_jt808__be32(p + 8);
  uint32_t lon = hw_jt808__be32(p + 12);
  fix->alt_m = hw_jt808__be16(p + 16); /* unsigned WORD: below sea level is not representable */
  fix->speed_dkmh = hw_jt808__be16(p + 18);
  uint16_t dir = hw_jt808__be16(p + 20);

  /* Items first: a truncated body is a framing fault that outranks bad values. */
  for (p = body + HW_JT808_LOCATION_MIN; p < end;) {
    if (end - p < 2)
      return -EBADMSG;
    uint8_t id = p[0], n = p[1];
    if ((size_t)(end - p - 2) < n)
      return -EBADMSG;
    hw_jt808_item(id, p + 2, n, fix, ex);
    p += 2 + n;
  }

  if (lat > 90000000u || lon > 180000000u)
    return -ERANGE;
  fix->lat_e6 = (fix->status & STATUS_SOUTH) ? -(int32_t)lat : (int32_t)lat;
  fix->lon_e6 = (fix->status & STATUS_WEST) ? -(int32_t)lon : (int32_t)lon;
  if (dir > 360)
    return -ERANGE;
  fix->heading = dir == 360 ? 0 : dir;
  rc = hw_jt808__bcd_time(body + 22, &fix->ts_ms);
  if (rc)
    return rc;
  return 0;
}

int hw_jt808_batch_begin(hw_jt808_batch *b, const uint8_t *body, size_t len) {
  memset(b, 0, sizeof *b);
  if (len < 3)
    return -EBADMSG;
  b->count = hw_jt808__be16(body);
  b->type = body[2];
  b->p = body + 3;
  b->end = body + len;
  return 0;
}

int hw_jt808_batch_next(hw_jt808_batch *b, int64_t recv_ms, hw_fix *fix, hw_jt808_loc_extra *extra,
                        int *item_rc) {
  if (b->seen == b->count)
    return 0;
  if (b->end - b->p < 2)
    goto cut;
  size_t n = hw_jt808__be16(b->p);
  if ((size_t)(b->end - b->p - 2) < n)
    goto cut;
  b->last = b->p + 2;
  b->last_len = n;
  *item_rc = hw_jt808_parse_location(b->p + 2, n, recv_ms, fix, extra);
  b->p += 2 + n;
  b->seen++;
  return 1;
cut:
  b->seen = b->count; /* nothing more can be trusted */
  return -EBADMSG;
}
