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
#include "base/options.h"
#include "base/table.h"

typedef enum { HW_KPI_BY_REGION = 0, HW_KPI_BY_ENTERPRISE, HW_KPI_BY_CLASS } hw_kpi_by;

/* The 2016 score table (README, "KPIs", score): points of each figure and its cut-off, in whole
 * percent. Each default is written once, here; the commands' settings tables take them with
 * HW_KPI_SCORE_OPTIONS. The rules give the points and cut-offs; how points fall between (the
 * rate times the points, the drift rate linear to its cut-off, speeding and fatigue linear from
 * the average of the groups compared to score_zero_at_pct of it) is haulwatch's reading. */
#define HW_KPI_DEF_CONNECTED 5
#define HW_KPI_DEF_CONNECTED_MIN_PCT 90
#define HW_KPI_DEF_ONLINE 5
#define HW_KPI_DEF_ONLINE_MIN_PCT 0
#define HW_KPI_DEF_TRACK 15
#define HW_KPI_DEF_TRACK_MIN_PCT 70
#define HW_KPI_DEF_QUALIFIED 15
#define HW_KPI_DEF_QUALIFIED_MIN_PCT 80
#define HW_KPI_DEF_DRIFT 10
#define HW_KPI_DEF_DRIFT_MAX_PCT 5
#define HW_KPI_DEF_SPEEDING 20
#define HW_KPI_DEF_FATIGUE 20
#define HW_KPI_DEF_ZERO_AT_PCT 200
#define HW_KPI_DEF_INSPECTION 10
typedef struct hw_kpi_score_cfg {
  uint32_t score_connected, score_connected_min_pct;
  uint32_t score_online, score_online_min_pct;
  uint32_t score_track, score_track_min_pct;
  uint32_t score_qualified, score_qualified_min_pct;
  uint32_t score_drift, score_drift_max_pct;
  uint32_t score_speeding, score_fatigue, score_zero_at_pct;
  uint32_t score_inspection;
} hw_kpi_score_cfg;

/* Settings-table entries (base/options.h) for a hw_kpi_score_cfg member m of struct st. */
#define HW_KPI_OPT_(st, m, f, def, lo, hi, help) \
  {#f, HW_OPT_U32, offsetof(st, m.f), sizeof(uint32_t), HW_XSTR(def), NULL, lo, hi, help}
#define HW_KPI_SCORE_OPTIONS(st, m)                                                                 \
  HW_KPI_OPT_(st, m, score_connected, HW_KPI_DEF_CONNECTED, 0, 100, "score: points of rate_connected (入网率)"), \
  HW_KPI_OPT_(st, m, score_connected_min_pct, HW_KPI_DEF_CONNECTED_MIN_PCT, 0, 100, "score: rate_connected below this percent scores 0"), \
  HW_KPI_OPT_(st, m, score_online, HW_KPI_DEF_ONLINE, 0, 100, "score: points of rate_online (上线率)"), \
  HW_KPI_OPT_(st, m, score_online_min_pct, HW_KPI_DEF_ONLINE_MIN_PCT, 0, 100, "score: rate_online below this percent scores 0"), \
  HW_KPI_OPT_(st, m, score_track, HW_KPI_DEF_TRACK, 0, 100, "score: points of rate_track_complete (轨迹完整率)"), \
  HW_KPI_OPT_(st, m, score_track_min_pct, HW_KPI_DEF_TRACK_MIN_PCT, 0, 100, "score: rate_track_complete below this percent scores 0"), \
  HW_KPI_OPT_(st, m, score_qualified, HW_KPI_DEF_QUALIFIED, 0, 100, "score: points of rate_qualified (数据合格率)"), \
  HW_KPI_OPT_(st, m, score_qualified_min_pct, HW_KPI_DEF_QUALIFIED_MIN_PCT, 0, 100, "score: rate_qualified below this percent scores 0"), \
  HW_KPI_OPT_(st, m, score_drift, HW_KPI_DEF_DRIFT, 0, 100, "score: points of rate_drifting (漂移车辆率), full at 0"), \
  HW_KPI_OPT_(st, m, score_drift_max_pct, HW_KPI_DEF_DRIFT_MAX_PCT, 1, 100, "score: rate_drifting at or above this percent scores 0"), \
  HW_KPI_OPT_(st, m, score_speeding, HW_KPI_DEF_SPEEDING, 0, 100, "score: points of speeding_per_vehicle, full at or below the groups' average"), \
  HW_KPI_OPT_(st, m, score_fatigue, HW_KPI_DEF_FATIGUE, 0, 100, "score: points of fatigue_hours_per_vehicle, full at or below the groups' average"), \
  HW_KPI_OPT_(st, m, score_zero_at_pct, HW_KPI_DEF_ZERO_AT_PCT, 101, 10000, "score: speeding or fatigue per vehicle at this percent of the groups' average scores 0"), \
  HW_KPI_OPT_(st, m, score_inspection, HW_KPI_DEF_INSPECTION, 0, 100, "score: points of the inspection response (查岗): no figure yet, left out and the score scaled to 100")

/* The defaults above into *cfg. */
void hw_kpi_score_defaults(hw_kpi_score_cfg *cfg);

typedef struct hw_kpi_request {
  int32_t from_day, to_day; /* GMT+8 day numbers, both included */
  char region[7];           /* six digits, or "" for every region */
  hw_kpi_by by;
  unsigned level;           /* --by region: 2 province, 4 city, 6 county (code digits kept) */
  hw_kpi_score_cfg score;   /* the defaults after hw_kpi_request_parse; a command may set them */
  /* PostgreSQL text[] of LIKE patterns the vehicles' regions must match besides region (the web
   * user's scope, borrowed); NULL: every region. */
  const char *scope;
} hw_kpi_request;

/* The result's columns, in order (issue 9 names them). Column 0 (group) is text, the others
 * numbers; NULL where a rate has no denominator, and score NULL for a group with no registered
 * vehicle. The score of a row depends on the other rows (speeding and fatigue against their
 * average), so it is that of this result's groups. */
#define HW_KPI_NCOLS 19
extern const char *const hw_kpi_columns[HW_KPI_NCOLS];
extern const hw_table_col hw_kpi_cols[HW_KPI_NCOLS]; /* the same names with their types */

/* Parses the request's text fields (from, to: YYYY-MM-DD; region: six digits or NULL/""; by:
 * region|enterprise|class or NULL; level: province|city|county or NULL = one below the region's
 * own level, city when none). 0, or -EINVAL with a reason for a person in err. */
int hw_kpi_request_parse(hw_kpi_request *r, const char *from, const char *to, const char *region,
                         const char *by, const char *level, char *err, size_t errlen) HW_MUST_CHECK;

/* The statement and its text parameters ($1..$HW_KPI_NPARAMS), pointing into bufs. */
#define HW_KPI_NPARAMS 7
extern const char hw_kpi_sql[];
typedef struct hw_kpi_bufs {
  char b[HW_KPI_NPARAMS][128];
} hw_kpi_bufs;
void hw_kpi_bind(const hw_kpi_request *r, hw_kpi_bufs *bufs, const char *params[HW_KPI_NPARAMS]);

/* Set (SET LOCAL) around hw_kpi_sql by hw_kpi_run. jit off: the planner's cost of the statement
 * (its estimates of the correlated lookups are large) passes jit_above_cost, and compiling took
 * longer than the whole query (ops/bench-kpi, EXPLAIN ANALYZE). work_mem 64MB: the aggregation
 * per vehicle of a province (100,000 vehicles) fits in a hash table; with the default 16MB of
 * ops/lib.sh's clusters the planner sorts the rows instead, twice as slow. */
#define HW_KPI_SETTINGS "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"

/* Blocking: runs the query. *out (owned by the caller, PQclear) has HW_KPI_NCOLS text columns,
 * one row per group in group order. 0 or -EIO (message logged). */
int hw_kpi_run(PGconn *conn, const hw_kpi_request *r, PGresult **out) HW_MUST_CHECK;

/* The trend per day (GET /api/v1/kpi/daily, the page's lines): one row per GMT+8 day of the
 * request's period (every day, zeros when none), for the vehicles of its region and scope (by
 * and level unused): day (YYYY-MM-DD), vehicles_connected (up to that day), vehicles_online,
 * records, records_qualified, vehicles_drifting, km_total, km_complete, rate_online,
 * rate_track_complete, rate_qualified, rate_drifting, defined as for the period. Parameters:
 * hw_kpi_bind's. Periods of at most HW_KPI_DAILY_MAX_DAYS. */
#define HW_KPI_DAILY_NCOLS 12
#define HW_KPI_DAILY_MAX_DAYS 366
extern const hw_table_col hw_kpi_daily_cols[HW_KPI_DAILY_NCOLS];
extern const char hw_kpi_daily_sql[];

#endif
