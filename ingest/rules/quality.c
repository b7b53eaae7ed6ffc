#include "rules/quality.h"

#include "base/geo.h"

void hw_quality_config_default(hw_quality_config *c) {
  c->max_future_ms = HW_QUALITY_DEF_MAX_FUTURE_S * 1000LL;
  c->max_past_ms = HW_QUALITY_DEF_MAX_PAST_S * 1000LL;
  c->max_speed_dkmh = HW_QUALITY_DEF_MAX_SPEED_KMH * 10;
  c->jump_slack_m = 500;
  c->require_positioned = 1;
  c->reanchor_after = 3;
}

uint16_t hw_quality_static(const hw_quality_config *c, const hw_fix *f) {
  uint16_t q = 0;
  if (c->require_positioned && !(f->status & HW_STATUS_POSITIONED))
    q |= HW_Q_NOT_POSITIONED;
  if (f->lat_e6 < -90000000 || f->lat_e6 > 90000000 || f->lon_e6 < -180000000 ||
      f->lon_e6 > 180000000)
    q |= HW_Q_BAD_COORD;
  else if (f->lat_e6 == 0 && f->lon_e6 == 0)
    q |= HW_Q_NULL_ISLAND;
  /* Whatever the receipt clock says, a device time outside 2000..2100 is a broken clock (and
   * keeps calendar arithmetic downstream far from overflow). */
  if (f->ts_ms < HW_Q_TS_MIN)
    q |= HW_Q_STALE;
  else if (f->ts_ms > HW_Q_TS_MAX)
    q |= HW_Q_FUTURE;
  if (f->recv_ms > 0) {
    /* Subtractions in a wider sense: ts_ms comes from the wire and may be anything. */
    if (f->ts_ms > f->recv_ms && (uint64_t)f->ts_ms - (uint64_t)f->recv_ms > (uint64_t)c->max_future_ms)
      q |= HW_Q_FUTURE;
    if (f->ts_ms < f->recv_ms && (uint64_t)f->recv_ms - (uint64_t)f->ts_ms > (uint64_t)c->max_past_ms)
      q |= HW_Q_STALE;
  }
  if (c->max_speed_dkmh && f->speed_dkmh > c->max_speed_dkmh)
    q |= HW_Q_BAD_SPEED;
  return q;
}

/* 1 when going from (ts1, a) to (ts2, b) needs more than the maximum speed. */
static int hw_quality_is_jump(const hw_quality_config *c, int64_t ts1, int32_t lat1, int32_t lon1,
                              int64_t ts2, int32_t lat2, int32_t lon2) {
  double dt_s = ts2 > ts1 ? (double)(ts2 - ts1) / 1000.0 : (double)(ts1 - ts2) / 1000.0;
  double allowed = (double)c->max_speed_dkmh / 36.0 * dt_s; /* 0.1 km/h -> m/s */
  if (allowed < c->jump_slack_m)
    allowed = c->jump_slack_m;
  return hw_geo_distance_m(lat1, lon1, lat2, lon2) > allowed;
}

static void hw_quality_take(hw_quality_ref *ref, const hw_fix *f) {
  if (!ref->has || f->ts_ms > ref->ts_ms) {
    ref->ts_ms = f->ts_ms;
    ref->lat_e6 = f->lat_e6;
    ref->lon_e6 = f->lon_e6;
    ref->has = 1;
  }
}

uint16_t hw_quality_check(const hw_quality_config *c, hw_quality_ref *ref, const hw_fix *f) {
  uint16_t q = hw_quality_static(c, f);
  if (!ref || q)
    return q;
  if (!ref->has || !c->max_speed_dkmh ||
      !hw_quality_is_jump(c, ref->ts_ms, ref->lat_e6, ref->lon_e6, f->ts_ms, f->lat_e6, f->lon_e6)) {
    ref->suspects = 0;
    hw_quality_take(ref, f);
    return 0;
  }
  /* A jump. Either this fix is wrong or the reference is: count suspects that agree with each
   * other, and let a consistent run move the reference. */
  if (ref->suspects &&
      !hw_quality_is_jump(c, ref->sus_ts_ms, ref->sus_lat_e6, ref->sus_lon_e6, f->ts_ms, f->lat_e6,
                          f->lon_e6)) {
    if (ref->suspects < UINT8_MAX)
      ref->suspects++;
  } else {
    ref->suspects = 1;
  }
  ref->sus_ts_ms = f->ts_ms;
  ref->sus_lat_e6 = f->lat_e6;
  ref->sus_lon_e6 = f->lon_e6;
  if (c->reanchor_after && ref->suspects >= c->reanchor_after) {
    ref->suspects = 0;
    ref->has = 0; /* the new position wins even when older than the discredited reference */
    hw_quality_take(ref, f);
    return 0;
  }
  return HW_Q_JUMP;
}
