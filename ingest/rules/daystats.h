/* Daily figures per vehicle for the platform assessment KPIs (交运发〔2014〕267号, revised 2016;
 * README, "KPIs"): records, qualified records, drift records, km in total and on a complete
 * track, first and last qualified fix, per GMT+8 day of device time.
 *
 * Pure computation, no I/O: the daemon (sinks/daily_store.c) feeds it fixes as they come and
 * `haulwatch report rebuild` feeds it the stored fixes; both use this code in the same order
 * (device time), so they produce the same doubles.
 *
 * Definitions (issue 9):
 *   qualified  the assessment's field checks, whatever quality bits the daemon stored:
 *              positioned (status bit 1), device time not after receipt + max_future, longitude
 *              73.55..135.0833 and latitude 3.85..53.55 (the national valid area), reported speed
 *              0..max_speed, altitude -200..6500 m, heading 0..359;
 *   drift      a qualified fix whose implied speed from the reference (the previous qualified,
 *              non-drift fix) exceeds drift_kmh; it is not a place the truck was, so it is not
 *              a reference and adds no km (the next fix is compared with the one before it);
 *   km         the distance from the reference to each qualified non-drift fix; the segment is
 *              incomplete when the two are more than track_gap apart, and belongs to the day of
 *              its later fix.
 * The reference crosses days: each day's row keeps it (its carry) so that a day can be
 * recomputed on its own from the day before. */
#ifndef HW_DAYSTATS_H
#define HW_DAYSTATS_H

#include "base/fix.h"

/* Defaults of the settings (serve and report rebuild quote them as text: bare literals). */
#define HW_DAYSTATS_DEF_MAX_SPEED_KMH 160 /* the assessment's valid speed, 0-160 km/h */
#define HW_DAYSTATS_DEF_DRIFT_KMH 160     /* implied speed of a drift point (a setting: the
                                             rules define none) */
#define HW_DAYSTATS_DEF_TRACK_GAP_S 180   /* longer gaps break track completeness */

/* The national valid area, 73°33′-135°05′E, 3°51′-53°33′N, in 1e-6 degrees (issue 9 quotes it
 * as 73.55..135.0833, 3.85..53.55). */
#define HW_DAYSTATS_LON_MIN_E6 73550000
#define HW_DAYSTATS_LON_MAX_E6 135083300
#define HW_DAYSTATS_LAT_MIN_E6 3850000
#define HW_DAYSTATS_LAT_MAX_E6 53550000
#define HW_DAYSTATS_ALT_MIN_M (-200)
#define HW_DAYSTATS_ALT_MAX_M 6500
#define HW_DAYSTATS_HEADING_MAX 359

/* Why a record is not qualified (hw_daystats_defects); 0 = qualified. */
#define HW_DQ_NOT_POSITIONED 0x01u
#define HW_DQ_FUTURE 0x02u
#define HW_DQ_LON 0x04u
#define HW_DQ_LAT 0x08u
#define HW_DQ_SPEED 0x10u
#define HW_DQ_ALT 0x20u
#define HW_DQ_HEADING 0x40u

typedef struct hw_daystats_config {
  int64_t max_future_ms;   /* device time may be this far after receipt (serve's max_future_s) */
  uint32_t max_speed_dkmh; /* highest valid reported speed, 0.1 km/h */
  uint32_t drift_dkmh;     /* implied speed above this is drift, 0.1 km/h */
  int64_t track_gap_ms;    /* a segment longer than this is incomplete */
} hw_daystats_config;

void hw_daystats_config_default(hw_daystats_config *c);

/* The reference of the track: the last qualified, non-drift fix (has = 0: none yet). */
typedef struct hw_track_ref {
  int64_t ts_ms;
  int32_t lat_e6, lon_e6;
  uint8_t has;
} hw_track_ref;

/* One vehicle's figures for one GMT+8 day. */
typedef struct hw_day_figures {
  int32_t day; /* days since 1970-01-01, GMT+8 (base/geo.h hw_cst_day) */
  uint32_t records, qualified, drift;
  double m_total, m_complete; /* metres, summed in device-time order */
  int64_t first_ms, last_ms;  /* first and last qualified fix (0 when qualified == 0) */
  hw_track_ref carry;         /* the reference after the day's last record */
} hw_day_figures;

/* One vehicle's running state: the current day and the track reference. */
typedef struct hw_daystats {
  hw_day_figures cur; /* valid when has_day */
  hw_track_ref ref;
  int64_t last_ts_ms; /* newest record fed (any record) */
  uint8_t has_day;
} hw_daystats;

/* HW_DQ_* bits of the checks f fails; 0 = qualified. */
uint32_t hw_daystats_defects(const hw_daystats_config *c, const hw_fix *f);

/* A fresh state whose track continues from carry (NULL or has = 0: no reference). */
void hw_daystats_init(hw_daystats *s, const hw_track_ref *carry);

/* 1 when f can be fed next: the state is fresh or f is newer than every record fed. */
static inline int hw_daystats_in_order(const hw_daystats *s, const hw_fix *f) {
  return !s->has_day || f->ts_ms > s->last_ts_ms;
}

/* Feeds the next record in device-time order. When f starts a new day the finished day is
 * copied to *done and 1 is returned; 0 otherwise; -EINVAL (nothing changed) when f is not in
 * order (hw_daystats_in_order). */
int hw_daystats_feed(const hw_daystats_config *c, hw_daystats *s, const hw_fix *f,
                     hw_day_figures *done) HW_MUST_CHECK;

#endif
