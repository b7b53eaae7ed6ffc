/* The safety-device coverage report (README, "Active-safety alarms"): which heavy trucks and
 * semi-trailer tractors have a working active-safety device, the alarm rates of those that do,
 * and how often a level-2 alarm is followed by a violation. Read by `haulwatch report
 * safety-devices` and by the monthly report. Blocking queries (libpq) for the command line.
 *
 * Definitions (one period [from, to], GMT+8 days; "the end" is the midnight after `to`):
 *   in scope: active vehicles of class heavy_truck or semi_trailer_tractor, within the region;
 *   connected: its terminal sent a qualified record on some day up to `to` (vehicle_daily, as
 *     the KPIs' 入网);
 *   covered: connected, and its terminal sent an active-safety item (any of 0x64-0x67, alarm or
 *     event) in the coverage_days days before the end (alarm time);
 *   alarm rates: alarms in the period of covered vehicles, per kind, type and level; per vehicle
 *     = alarms / covered vehicles; per 100 km = alarms * 100 / the covered vehicles' km in the
 *     period (vehicle_daily.km_total);
 *   followed: a level-2 alarm (of a vehicle in scope, in the period) after which the same
 *     terminal started a violation of a rule kind (not one made of an alarm: dsm_*, adas_*)
 *     within follow_s seconds. */
#ifndef HW_SAFETY_QUERY_H
#define HW_SAFETY_QUERY_H

#include <libpq-fe.h>

#include "base/common.h"

#define HW_SAFETY_DEF_COVERAGE_DAYS 7
#define HW_SAFETY_DEF_FOLLOW_S 3600

typedef struct hw_safety_request {
  char region[7];   /* six digits or "" */
  char from[11];    /* YYYY-MM-DD */
  char to[11];      /* YYYY-MM-DD */
  uint32_t coverage_days;
  uint32_t follow_s;
} hw_safety_request;

/* Checks region (six digits, not 00....), from and to (YYYY-MM-DD, from <= to, at most 366
 * days) and copies them. 0 or -EINVAL with err set. */
int hw_safety_request_parse(hw_safety_request *r, const char *region, const char *from,
                            const char *to, uint32_t coverage_days, uint32_t follow_s, char *err,
                            size_t errlen) HW_MUST_CHECK;

/* The three results, owned by the caller (PQclear each); NULL when not run. */
typedef struct hw_safety_report {
  /* One row: vehicles, connected, covered, covered_pct, level2_alarms, level2_followed,
   * followed_pct. */
  PGresult *summary;
  /* Connected and not covered: enterprise, plate, terminal_id, region, class, last_item (GMT+8
   * text, NULL: never), ordered by enterprise, plate. */
  PGresult *uncovered;
  /* kind, type, level (NULL: none), alarms, vehicles, per_vehicle, km, per_100km. */
  PGresult *rates;
} hw_safety_report;

/* Runs the three queries on conn within scope (a text[] literal of LIKE patterns on the region,
 * "{%}" for all). 0, or -EIO (logged, with the SQLSTATE) with *out cleared. */
int hw_safety_report_run(PGconn *conn, const hw_safety_request *r, const char *scope,
                         hw_safety_report *out) HW_MUST_CHECK;
void hw_safety_report_free(hw_safety_report *out);

#endif
