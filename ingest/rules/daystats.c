#include "rules/daystats.h"

#include <string.h>

#include "base/geo.h"
#include "rules/quality.h"

void hw_daystats_config_default(hw_daystats_config *c) {
  c->max_future_ms = HW_QUALITY_DEF_MAX_FUTURE_S * 1000LL;
  c->max_speed_dkmh = HW_DAYSTATS_DEF_MAX_SPEED_KMH * 10;
  c->drift_dkmh = HW_DAYSTATS_DEF_DRIFT_KMH * 10;
  c->track_gap_ms = HW_DAYSTATS_DEF_TRACK_GAP_S * 1000LL;
}

uint32_t hw_daystats_defects(const hw_daystats_config *c, const hw_fix *f) {
  uint32_t d = 0;
  if (!(f->status & HW_STATUS_POSITIONED))
    d |= HW_DQ_NOT_POSITIONED;
  /* Wider arithmetic: ts_ms comes from the wire. recv_ms is always set for a stored fix. */
  if (f->ts_ms > f->recv_ms &&
      (uint64_t)f->ts_ms - (uint64_t)f->recv_ms > (uint64_t)c->max_future_ms)
    d |= HW_DQ_FUTURE;
  if (f->lon_e6 < HW_DAYSTATS_LON_MIN_E6 || f->lon_e6 > HW_DAYSTATS_LON_MAX_E6)
    d |= HW_DQ_LON;
  if (f->lat_e6 < HW_DAYSTATS_LAT_MIN_E6 || f->lat_e6 > HW_DAYSTATS_LAT_MAX_E6)
    d |= HW_DQ_LAT;
  if (f->speed_dkmh > c->max_speed_dkmh)
    d |= HW_DQ_SPEED;
  if (f->alt_m < HW_DAYSTATS_ALT_MIN_M || f->alt_m > HW_DAYSTATS_ALT_MAX_M)
    d |= HW_DQ_ALT;
  if (f->heading > HW_DAYSTATS_HEADING_MAX)
    d |= HW_DQ_HEADING;
  return d;
}

void hw_daystats_init(hw_daystats *s, const hw_track_ref *carry) {
  memset(s, 0, sizeof *s);
  if (carry && carry->has)
    s->ref = *carry;
}

int hw_daystats_feed(const hw_daystats_config *c, hw_daystats *s, const hw_fix *f,
                     hw_day_figures *done) {
  if (!hw_daystats_in_order(s, f))
    return -EINVAL;
  int32_t day = hw_cst_day(f->ts_ms);
  int finished = 0;
  if (!s->has_day || s->cur.day != day) {
    if (s->has_day) {
      *done = s->cur;
      finished = 1;
    }
    memset(&s->cur, 0, sizeof s->cur);
    s->cur.day = day;
    s->has_day = 1;
  }
  hw_day_figures *d = &s->cur;
  s->last_ts_ms = f->ts_ms;
  d->records++;
  if (hw_daystats_defects(c, f) == 0) {
    d->qualified++;
    if (d->qualified == 1)
      d->first_ms = f->ts_ms;
    d->last_ms = f->ts_ms;
    if (!s->ref.has) {
      s->ref = (hw_track_ref){.ts_ms = f->ts_ms, .lat_e6 = f->lat_e6, .lon_e6 = f->lon_e6, .has = 1};
    } else {
      double m = hw_geo_distance_m(s->ref.lat_e6, s->ref.lon_e6, f->lat_e6, f->lon_e6);
      int64_t dt_ms = f->ts_ms - s->ref.ts_ms; /* > 0: the reference is an earlier record */
      /* implied 0.1 km/h = m / (dt_ms / 1000) * 3.6 * 10 = m * 36000 / dt_ms */
      if (m * 36000.0 > (double)c->drift_dkmh * (double)dt_ms) {
        d->drift++;
      } else {
        d->m_total += m;
        if (dt_ms <= c->track_gap_ms)
          d->m_complete += m;
        s->ref = (hw_track_ref){.ts_ms = f->ts_ms, .lat_e6 = f->lat_e6, .lon_e6 = f->lon_e6, .has = 1};
      }
    }
  }
  d->carry = s->ref;
  return finished;
}
