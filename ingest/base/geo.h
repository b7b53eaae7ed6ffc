/* Small geodesy and calendar helpers shared by data quality, the zone index and the rules. */
#ifndef HW_GEO_H
#define HW_GEO_H

#include "base/common.h"

/* Great-circle distance in metres between two points in 1e-6 degrees (haversine on a sphere of
 * the WGS 84 mean radius; an equirectangular shortcut below about 1 degree, where it agrees
 * to well under a metre). */
double hw_geo_distance_m(int32_t lat1_e6, int32_t lon1_e6, int32_t lat2_e6, int32_t lon2_e6);

/* China Standard Time, GMT+8, no daylight saving (none since 1991): the calendar every rule is
 * written in, JT/T 808 device clocks and the registry's dates. The one definition of the offset:
 * HW_CST_OFFSET_S stays a bare literal so that SQL text can embed it (HW_XSTR). */
#define HW_CST_OFFSET_S 28800
#define HW_CST_OFFSET_MS (HW_CST_OFFSET_S * 1000LL)
#define HW_DAY_MS (86400LL * 1000)

/* Days since 1970-01-01 of the GMT+8 calendar day that contains ts_ms (floored, so correct
 * before 1970 too). */
static inline int32_t hw_cst_day(int64_t ts_ms) {
  int64_t t = ts_ms + HW_CST_OFFSET_MS;
  int64_t d = t / HW_DAY_MS;
  if (t % HW_DAY_MS < 0)
    d--;
  return (int32_t)d;
}

/* First instant (UTC ms) of GMT+8 day `day`. */
static inline int64_t hw_cst_day_start(int32_t day) {
  return (int64_t)day * HW_DAY_MS - HW_CST_OFFSET_MS;
}

/* Milliseconds since GMT+8 midnight. */
static inline int64_t hw_cst_ms_of_day(int64_t ts_ms) {
  return ts_ms - hw_cst_day_start(hw_cst_day(ts_ms));
}

/* Writes the day as YYYYMMDD (9 bytes with the NUL). */
void hw_cst_day_format(int32_t day, char out[9]);

#endif
