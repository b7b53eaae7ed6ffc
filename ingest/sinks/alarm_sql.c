/* Formatting of safety_alarms rows and hw:alarms messages (see alarm_sql.h). */
#include "sinks/alarm_sql.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct out {
  char *p;
  size_t cap, len;
  int full;
} out;

static void put(out *o, const char *fmt, ...) {
  va_list ap;
  if (o->full)
    return;
  va_start(ap, fmt);
  int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len) {
    o->full = 1;
    return;
  }
  o->len += (size_t)n;
}

int hw_alarm_fields_json(const hw_safety_alarm *a, char *buf, size_t cap) {
  out o = {buf, cap, 0, 0};
  if (cap == 0)
    return -ENOSPC;
  buf[0] = 0;
  put(&o, "{\"alarm_id\":%u,\"flag\":%u,\"alt_m\":%u,\"vehicle_status\":%u", a->alarm_id, a->flag,
      a->alt_m, a->vehicle_status);
  if (a->kind == HW_SAFETY_ADAS)
    put(&o, ",\"front_speed_kmh\":%u,\"front_distance_ds\":%u,\"deviation\":%u,"
            "\"sign_type\":%u,\"sign_value\":%u",
        a->front_speed_kmh, a->front_distance_ds, a->deviation, a->sign_type, a->sign_value);
  if (a->kind == HW_SAFETY_DSM)
    put(&o, ",\"fatigue\":%u", a->fatigue);
  if (a->kind == HW_SAFETY_TPMS) {
    put(&o, ",\"tyre_count\":%u,\"tyres\":[", a->tyre_count);
    for (unsigned i = 0; i < a->tyres_kept; i++) {
      const hw_safety_tyre *t = &a->tyres[i];
      put(&o, "%s{\"position\":%u,\"alarm_type\":%u,\"pressure_kpa\":%u,\"temp_c\":%u,"
              "\"battery_pct\":%u}",
          i ? "," : "", t->position, t->alarm_type, t->pressure_kpa, t->temp_c, t->battery_pct);
    }
    put(&o, "]");
  }
  put(&o, ",\"no_reserved\":%u}", a->no.reserved);
  return o.full ? -ENOSPC : (int)o.len;
}

void hw_alarm_position(const hw_safety_alarm *a, const hw_fix *fix, int32_t *lat_e6,
                       int32_t *lon_e6) {
  if ((a->lat_e6 == 0 && a->lon_e6 == 0) || a->lat_e6 > 90000000u || a->lon_e6 > 180000000u) {
    *lat_e6 = fix->lat_e6;
    *lon_e6 = fix->lon_e6;
    return;
  }
  *lat_e6 = fix->lat_e6 < 0 ? -(int32_t)a->lat_e6 : (int32_t)a->lat_e6;
  *lon_e6 = fix->lon_e6 < 0 ? -(int32_t)a->lon_e6 : (int32_t)a->lon_e6;
}

int64_t hw_alarm_time_ms(const hw_safety_alarm *a, const hw_fix *fix) {
  return a->ts_ms ? a->ts_ms : fix->ts_ms;
}

static void put_ts(out *o, int64_t ms) {
  /* Device times are 2000-2099 (BCD YY): never negative. */
  put(o, "to_timestamp(%lld.%03lld)", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* What the row and the event both take from an alarm: the terminal id checked, the fields as
 * JSON (into fields, HW_ALARM_FIELDS_MAX), the alarm number as text (into no) and the position. */
static int hw_alarm_prepare(const char *tid, const hw_safety_alarm *a, const hw_fix *fix,
                            char *fields, char *no, int32_t *lat, int32_t *lon) {
  if (hw_terminal_id_check(tid, strlen(tid)))
    return -EINVAL;
  if (hw_alarm_fields_json(a, fields, HW_ALARM_FIELDS_MAX) < 0)
    return -ENOSPC;
  hw_safety_alarm_no_format(&a->no, no, HW_SAFETY_ALARM_NO_TEXT_MAX);
  hw_alarm_position(a, fix, lat, lon);
  return 0;
}

int hw_alarm_insert_sql(const char *tid, const hw_safety_alarm *a, const hw_fix *fix, char *buf,
                        size_t cap) {
  char fields[HW_ALARM_FIELDS_MAX], no[HW_SAFETY_ALARM_NO_TEXT_MAX];
  int32_t lat, lon;
  int rc = hw_alarm_prepare(tid, a, fix, fields, no, &lat, &lon);
  if (rc)
    return rc;
  out o = {buf, cap, 0, 0};
  if (cap == 0)
    return -ENOSPC;
  put(&o, "INSERT INTO safety_alarms (terminal_id, vehicle, kind, type, level, alarm_id, flag, "
          "alarm_at, fix_at, lat, lon, speed_kmh, alarm_no, attachments, layout, fields) VALUES "
          "('%s', (SELECT plate FROM vehicles WHERE terminal_id = '%s'), '%s', %u, ",
      tid, tid, hw_safety_kind_name(a->kind), a->type);
  if (a->has_level)
    put(&o, "%u, ", a->level);
  else
    put(&o, "NULL, ");
  put(&o, "%u, %u, ", a->alarm_id, a->flag);
  put_ts(&o, hw_alarm_time_ms(a, fix));
  put(&o, ", ");
  put_ts(&o, fix->ts_ms);
  /* Exact decimal degrees from the integers (|value| <= 180e6: no overflow in the negation). */
  put(&o, ", %s%d.%06d, %s%d.%06d, %u, '%s', %u, '%s', '%s') ON CONFLICT DO NOTHING; ",
      lat < 0 ? "-" : "", (lat < 0 ? -lat : lat) / 1000000, (lat < 0 ? -lat : lat) % 1000000,
      lon < 0 ? "-" : "", (lon < 0 ? -lon : lon) / 1000000, (lon < 0 ? -lon : lon) % 1000000,
      a->speed_kmh, no, a->no.attachments,
      a->layout == HW_SAFETY_YUE ? "yue" : "su", fields);
  return o.full ? -ENOSPC : (int)o.len;
}

int hw_alarm_event_json(const char *tid, const hw_safety_alarm *a, const hw_fix *fix, char *buf,
                        size_t cap) {
  char fields[HW_ALARM_FIELDS_MAX], no[HW_SAFETY_ALARM_NO_TEXT_MAX];
  int32_t lat, lon;
  int rc = hw_alarm_prepare(tid, a, fix, fields, no, &lat, &lon);
  if (rc)
    return rc;
  const char *tn = hw_safety_type_name(a->kind, a->type);
  out o = {buf, cap, 0, 0};
  if (cap == 0)
    return -ENOSPC;
  put(&o, "{\"terminal_id\":\"%s\",\"kind\":\"%s\",\"type\":%u,", tid,
      hw_safety_kind_name(a->kind), a->type);
  if (tn)
    put(&o, "\"type_name\":\"%s\",", tn);
  if (a->has_level)
    put(&o, "\"level\":%u,", a->level);
  put(&o, "\"alarm_at\":%lld,\"lat\":%.6f,\"lon\":%.6f,\"speed_kmh\":%u,\"alarm_no\":\"%s\","
          "\"attachments\":%u,\"fields\":%s}",
      (long long)hw_alarm_time_ms(a, fix), lat / 1e6, lon / 1e6, a->speed_kmh, no,
      a->no.attachments, fields);
  return o.full ? -ENOSPC : (int)o.len;
}
