/* The assessment KPIs (README, "KPIs") for a period, per region, enterprise or vehicle class: one
 * SQL statement over vehicle_daily (schema 012), violations and the registry, with its request
 * checked and bound here, so that `haulwatch report kpi` and the web API run the same query.
 *
 * Registered = active vehicles of the registry as it is now, in the region scope (a GB/T 2260
 * code: 320000 the province, 320200 the city and its counties, 320202 the county). Connected =
 * sent a qualified record on some day up to the period's end; online = in the period. Rates are
 * fractions rounded to four decimals, NULL when the denominator is zero. fatigue_hours counts
 * each fatigue_continuous episode's hours inside the period (an open one up to the vehicle's last
 * qualified fix). */
#ifndef HW_KPI_QUERY_H
#define HW_KPI_QUERY_H

#include <libpq-fe.h>

#include "base/common.h"

typedef enum { HW_KPI_BY_REGION = 0, HW_KPI_BY_ENTERPRISE, HW_KPI_BY_CLASS } hw_kpi_by;

typedef struct hw_kpi_request {
  int32_t from_day, to_day; /* GMT+8 day numbers, both included */
  char region[7];           /* six digits, or "" for every region */
  hw_kpi_by by;
  unsigned level;           /* --by region: 2 province, 4 city, 6 county (code digits kept) */
} hw_kpi_request;

/* The result's columns, in order (issue 9 names them). Column 0 (group) is text, the others
 * numbers; NULL where a rate has no denominator, and score (not computed yet) always NULL. */
#define HW_KPI_NCOLS 19
extern const char *const hw_kpi_columns[HW_KPI_NCOLS];

/* Parses the request's text fields (from, to: YYYY-MM-DD; region: six digits or NULL/""; by:
 * region|enterprise|class or NULL; level: province|city|county or NULL = one below the region's
 * own level, city when none). 0, or -EINVAL with a reason for a person in err. */
int hw_kpi_request_parse(hw_kpi_request *r, const char *from, const char *to, const char *region,
                         const char *by, const char *level, char *err, size_t errlen) HW_MUST_CHECK;

/* The statement and its text parameters ($1..$HW_KPI_NPARAMS), pointing into bufs. */
#define HW_KPI_NPARAMS 5
extern const char hw_kpi_sql[];
typedef struct hw_kpi_bufs {
  char b[HW_KPI_NPARAMS][16];
} hw_kpi_bufs;
void hw_kpi_bind(const hw_kpi_request *r, hw_kpi_bufs *bufs, const char *params[HW_KPI_NPARAMS]);

/* Blocking: runs the query. *out (owned by the caller, PQclear) has HW_KPI_NCOLS text columns,
 * one row per group in group order. 0 or -EIO (message logged). */
int hw_kpi_run(PGconn *conn, const hw_kpi_request *r, PGresult **out) HW_MUST_CHECK;

#endif
