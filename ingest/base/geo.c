#include "base/geo.h"

#include <math.h>
#include <stdlib.h>

#define HW_EARTH_R_M 6371008.8
#define HW_DEG_RAD (M_PI / 180.0)

double hw_geo_distance_m(int32_t lat1_e6, int32_t lon1_e6, int32_t lat2_e6, int32_t lon2_e6) {
  double lat1 = lat1_e6 * 1e-6 * HW_DEG_RAD, lat2 = lat2_e6 * 1e-6 * HW_DEG_RAD;
  int64_t dlon_e6 = (int64_t)lon2_e6 - lon1_e6;
  /* Across the antimeridian the short way round is the other way. */
  if (dlon_e6 > 180000000)
    dlon_e6 -= 360000000;
  else if (dlon_e6 < -180000000)
    dlon_e6 += 360000000;
  double dlat = lat2 - lat1, dlon = (double)dlon_e6 * 1e-6 * HW_DEG_RAD;
  if (fabs(dlat) < 0.0175 && fabs(dlon) < 0.0175) {
    /* Consecutive fixes are close together: this is the hot path, keep it to one cos(). */
    double x = dlon * cos(0.5 * (lat1 + lat2));
    return HW_EARTH_R_M * sqrt(x * x + dlat * dlat);
  }
  double s1 = sin(0.5 * dlat), s2 = sin(0.5 * dlon);
  double a = s1 * s1 + cos(lat1) * cos(lat2) * s2 * s2;
  if (a > 1.0)
    a = 1.0;
  return 2.0 * HW_EARTH_R_M * asin(sqrt(a));
}

void hw_cst_day_format(int32_t day, char out[9]) {
  /* Civil-from-days (Howard Hinnant's algorithm): no gmtime, no locale, no time zone files. */
  int64_t z = (int64_t)day + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2)
    y++;
  if (y < 0 || y > 9999)
    y = 0;
  /* Digits by hand: the ranges are known, and snprintf's truncation warning cannot see them. */
  unsigned v = (unsigned)y;
  for (int i = 3; i >= 0; i--, v /= 10)
    out[i] = (char)('0' + v % 10);
  out[4] = (char)('0' + m / 10);
  out[5] = (char)('0' + m % 10);
  out[6] = (char)('0' + d / 10);
  out[7] = (char)('0' + d % 10);
  out[8] = '\0';
}
