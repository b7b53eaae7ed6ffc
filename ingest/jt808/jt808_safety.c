/* Active-safety additional items (0x64-0x67): layout by length, decoding, the alarm number's text.
 * See jt808_safety.h for the layouts; docs/active-safety.md for the tables in full. */
#include "jt808/jt808_safety.h"

#include <stdio.h>
#include <string.h>

#include "jt808/jt808_internal.h"
#include "jt808/jt808_location.h"

#define HEAD 5  /* alarm id DWORD, flag BYTE */
#define TAIL 19 /* speed, altitude, latitude, longitude, time, vehicle status */
#define TPMS_EVENT 9

int hw_safety_alarm_no_parse(const uint8_t *p, size_t len, hw_safety_alarm_no *out) {
  size_t tid_len;
  memset(out, 0, sizeof *out);
  if (len == HW_SAFETY_ALARM_NO_SU_LEN) {
    out->layout = HW_SAFETY_SU;
    tid_len = 7;
  } else if (len == HW_SAFETY_ALARM_NO_YUE_LEN) {
    out->layout = HW_SAFETY_YUE;
    tid_len = 30;
  } else {
    return -EBADMSG;
  }
  out->raw_len = (uint8_t)len;
  memcpy(out->raw, p, len);

  /* Terminal id: the standard says ASCII digits and capitals, padded with NUL (粤标) or spaces;
   * anything else is shown as hex so that the text form stays safe to store and compare. */
  size_t a = 0, b = tid_len;
  while (b > a && (p[b - 1] == 0 || p[b - 1] == ' '))
    b--;
  while (a < b && p[a] == ' ')
    a++;
  int plain = 1;
  for (size_t i = a; i < b; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'Z') ||
          (p[i] >= 'a' && p[i] <= 'z')))
      plain = 0;
  if (plain) {
    memcpy(out->terminal_id, p + a, b - a);
    out->terminal_id[b - a] = 0;
  } else {
    static const char hex[] = "0123456789abcdef";
    char *o = out->terminal_id;
    memcpy(o, "hex:", 4);
    o += 4;
    for (size_t i = 0; i < tid_len; i++) {
      *o++ = hex[p[i] >> 4];
      *o++ = hex[p[i] & 15];
    }
    *o = 0;
  }
  const uint8_t *q = p + tid_len;
  memcpy(out->bcd_time, q, 6);
  if (hw_jt808__bcd_time(q, &out->ts_ms))
    out->ts_ms = 0;
  out->seq = q[6];
  out->attachments = q[7];
  out->reserved = out->layout == HW_SAFETY_SU ? q[8] : hw_jt808__be16(q + 8);
  return 0;
}

/* The common tail at v[off..off+TAIL), then the alarm number of no_len bytes. */
static int hw_safety_tail(const uint8_t *v, size_t off, size_t no_len, hw_safety_alarm *a) {
  const uint8_t *p = v + off;
  a->speed_kmh = p[0];
  a->alt_m = hw_jt808__be16(p + 1);
  a->lat_e6 = hw_jt808__be32(p + 3);
  a->lon_e6 = hw_jt808__be32(p + 7);
  memcpy(a->bcd_time, p + 11, 6);
  if (hw_jt808__bcd_time(p + 11, &a->ts_ms))
    a->ts_ms = 0; /* kept: the alarm still happened; the 0x0200 time stands in for it */
  a->vehicle_status = hw_jt808__be16(p + 17);
  return hw_safety_alarm_no_parse(p + TAIL, no_len, &a->no);
}

int hw_safety_parse_item(uint8_t id, const uint8_t *v, size_t n, hw_safety_alarm *a) {
  size_t mid, no_len;
  memset(a, 0, sizeof *a);
  if (id < HW_SAFETY_ITEM_ADAS || id > HW_SAFETY_ITEM_BSD)
    return -ENOENT;
  a->item_id = id;
  a->kind = (uint8_t)(id - HW_SAFETY_ITEM_ADAS + HW_SAFETY_ADAS);

  if (id == HW_SAFETY_ITEM_TPMS) {
    const size_t base_su = HEAD + TAIL + HW_SAFETY_ALARM_NO_SU_LEN + 1;   /* 41 */
    const size_t base_yue = HEAD + TAIL + HW_SAFETY_ALARM_NO_YUE_LEN + 1; /* 65 */
    size_t base;
    if (n >= base_su && (n - base_su) % TPMS_EVENT == 0)
      base = base_su, no_len = HW_SAFETY_ALARM_NO_SU_LEN;
    else if (n >= base_yue && (n - base_yue) % TPMS_EVENT == 0)
      base = base_yue, no_len = HW_SAFETY_ALARM_NO_YUE_LEN;
    else
      return -EBADMSG;
    a->layout = no_len == HW_SAFETY_ALARM_NO_SU_LEN ? HW_SAFETY_SU : HW_SAFETY_YUE;
    a->alarm_id = hw_jt808__be32(v);
    a->flag = v[4];
    if (hw_safety_tail(v, HEAD, no_len, a))
      return -EBADMSG;
    a->tyre_count = v[base - 1];
    /* The events present, whatever the count byte claims: never read past the item. */
    size_t have = (n - base) / TPMS_EVENT;
    if (have > a->tyre_count)
      have = a->tyre_count;
    if (have > HW_SAFETY_TYRES_MAX)
      have = HW_SAFETY_TYRES_MAX;
    a->tyres_kept = (uint8_t)have;
    for (size_t i = 0; i < have; i++) {
      const uint8_t *e = v + base + i * TPMS_EVENT;
      hw_safety_tyre *t = &a->tyres[i];
      t->position = e[0];
      t->alarm_type = hw_jt808__be16(e + 1);
      t->pressure_kpa = hw_jt808__be16(e + 3);
      t->temp_c = hw_jt808__be16(e + 5);
      t->battery_pct = hw_jt808__be16(e + 7);
      a->type |= (uint8_t)t->alarm_type;
    }
    return 0;
  }

  /* ADAS, DSM: 7 bytes between head and tail; BSD: 1, or 2 with a level byte. */
  int bsd = id == HW_SAFETY_ITEM_BSD;
  if (n == HEAD + TAIL + HW_SAFETY_ALARM_NO_SU_LEN + (bsd ? 1 : 7))
    mid = bsd ? 1 : 7, no_len = HW_SAFETY_ALARM_NO_SU_LEN;
  else if (n == HEAD + TAIL + HW_SAFETY_ALARM_NO_YUE_LEN + (bsd ? 1 : 7))
    mid = bsd ? 1 : 7, no_len = HW_SAFETY_ALARM_NO_YUE_LEN;
  else if (bsd && n == HEAD + TAIL + HW_SAFETY_ALARM_NO_SU_LEN + 2)
    mid = 2, no_len = HW_SAFETY_ALARM_NO_SU_LEN;
  else if (bsd && n == HEAD + TAIL + HW_SAFETY_ALARM_NO_YUE_LEN + 2)
    mid = 2, no_len = HW_SAFETY_ALARM_NO_YUE_LEN;
  else
    return -EBADMSG;
  a->layout = no_len == HW_SAFETY_ALARM_NO_SU_LEN ? HW_SAFETY_SU : HW_SAFETY_YUE;
  a->alarm_id = hw_jt808__be32(v);
  a->flag = v[4];
  const uint8_t *m = v + HEAD;
  a->type = m[0];
  if (mid >= 2) {
    a->has_level = 1;
    a->level = m[1];
  }
  if (id == HW_SAFETY_ITEM_ADAS) {
    a->front_speed_kmh = m[2];
    a->front_distance_ds = m[3];
    a->deviation = m[4];
    a->sign_type = m[5];
    a->sign_value = m[6];
  } else if (id == HW_SAFETY_ITEM_DSM) {
    a->fatigue = m[2]; /* m[3..7) reserved */
  }
  if (hw_safety_tail(v, HEAD + mid, no_len, a))
    return -EBADMSG;
  return 0;
}

int hw_safety_scan(const uint8_t *body, size_t len, hw_safety_alarm *out, size_t max, size_t *n,
                   size_t *bad) {
  const uint8_t *p, *end = body + len;
  *n = 0;
  *bad = 0;
  if (len < HW_JT808_LOCATION_MIN)
    return -EBADMSG;
  for (p = body + HW_JT808_LOCATION_MIN; p < end;) {
    if (end - p < 2)
      return -EBADMSG;
    uint8_t id = p[0], l = p[1];
    if ((size_t)(end - p - 2) < l)
      return -EBADMSG;
    if (id >= HW_SAFETY_ITEM_ADAS && id <= HW_SAFETY_ITEM_BSD) {
      if (*n < max && hw_safety_parse_item(id, p + 2, l, &out[*n]) == 0)
        (*n)++;
      else
        (*bad)++;
    }
    p += 2 + l;
  }
  return 0;
}
