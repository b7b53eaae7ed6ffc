#include "sinks/kpi_query.h"

#include <stdio.h>
#include <string.h>

#include "base/geo.h"
#include "base/log.h"
#include "sinks/daily_store.h"
#include "sinks/pg_conn.h"

const char *const hw_kpi_columns[HW_KPI_NCOLS] = {
    "group", "vehicles_registered", "vehicles_connected", "vehicles_online", "records",
    "records_qualified", "vehicles_drifting", "km_total", "km_complete", "speeding_count",
    "fatigue_hours", "rate_connected", "rate_online", "rate_track_complete", "rate_qualified",
    "rate_drifting", "speeding_per_vehicle", "fatigue_hours_per_vehicle", "score"};

/* $1 first day, $2 last day (day numbers since 1970-01-01, GMT+8), $3 region prefix ('' = all),
 * $4 group kind (region|enterprise|class), $5 digits of the region code kept for the group.
 * The period in UTC is [lo, hi): GMT+8 midnights. */
#define HW_KPI_LO "(timestamptz 'epoch' + ($1::integer * 86400 - " HW_XSTR(HW_CST_OFFSET_S) ") * interval '1 second')"
#define HW_KPI_HI "(timestamptz 'epoch' + (($2::integer + 1) * 86400 - " HW_XSTR(HW_CST_OFFSET_S) ") * interval '1 second')"
const char hw_kpi_sql[] =
    "WITH v AS ("
    " SELECT terminal_id, CASE $4::text"
    "  WHEN 'region' THEN rpad(left(region, $5::integer), 6, '0')"
    "  WHEN 'enterprise' THEN coalesce(enterprise, '')"
    "  ELSE class_code END AS grp"
    " FROM vehicles WHERE status = 'active' AND left(region, length($3::text)) = $3::text),"
    " d AS ("
    " SELECT x.terminal_id, sum(x.records) AS records, sum(x.qualified) AS qualified,"
    "  bool_or(x.qualified > 0) AS online, bool_or(x.drift > 0) AS drifting,"
    "  sum(x.km_total) AS km_total, sum(x.km_complete) AS km_complete"
    " FROM vehicle_daily x JOIN v USING (terminal_id)"
    " WHERE x.day BETWEEN date '1970-01-01' + $1::integer AND date '1970-01-01' + $2::integer"
    " GROUP BY x.terminal_id),"
    " c AS ("
    " SELECT v.terminal_id FROM v WHERE EXISTS (SELECT 1 FROM vehicle_daily x"
    "  WHERE x.terminal_id = v.terminal_id AND x.day <= date '1970-01-01' + $2::integer"
    "  AND x.qualified > 0)),"
    " s AS ("
    " SELECT x.terminal_id, count(*) AS n FROM violations x JOIN v USING (terminal_id)"
    " WHERE x.kind = 'speeding' AND x.started_at >= " HW_KPI_LO " AND x.started_at < " HW_KPI_HI
    " GROUP BY x.terminal_id),"
    " fe AS ("
    " SELECT x.terminal_id, x.started_at,"
    "  coalesce(x.ended_at, (SELECT max(y.last_fix) FROM vehicle_daily y"
    "   WHERE y.terminal_id = x.terminal_id)) AS until"
    " FROM violations x JOIN v USING (terminal_id)"
    " WHERE x.kind = 'fatigue_continuous' AND x.started_at < " HW_KPI_HI
    " AND (x.ended_at IS NULL OR x.ended_at > " HW_KPI_LO ")),"
    " f AS ("
    " SELECT terminal_id, sum(extract(epoch FROM least(until, " HW_KPI_HI ")"
    "  - greatest(started_at, " HW_KPI_LO "))) / 3600 AS h"
    " FROM fe WHERE until > greatest(started_at, " HW_KPI_LO ") GROUP BY terminal_id),"
    " g AS ("
    " SELECT v.grp, count(*) AS registered, count(c.terminal_id) AS connected,"
    "  count(*) FILTER (WHERE d.online) AS online,"
    "  coalesce(sum(d.records), 0) AS records, coalesce(sum(d.qualified), 0) AS qualified,"
    "  count(*) FILTER (WHERE d.online AND d.drifting) AS drifting,"
    "  coalesce(sum(d.km_total), 0)::numeric AS km_total,"
    "  coalesce(sum(d.km_complete), 0)::numeric AS km_complete,"
    "  coalesce(sum(s.n), 0) AS speeding, coalesce(sum(f.h), 0)::numeric AS fatigue"
    " FROM v LEFT JOIN d USING (terminal_id) LEFT JOIN c USING (terminal_id)"
    " LEFT JOIN s USING (terminal_id) LEFT JOIN f USING (terminal_id)"
    " GROUP BY v.grp)"
    " SELECT grp, registered, connected, online, records, qualified, drifting,"
    " round(km_total, 3), round(km_complete, 3), speeding, round(fatigue, 4),"
    " round(connected::numeric / nullif(registered, 0), 4),"
    " round(online::numeric / nullif(connected, 0), 4),"
    " round(km_complete / nullif(km_total, 0), 4),"
    " round(qualified::numeric / nullif(records, 0), 4),"
    " round(drifting::numeric / nullif(online, 0), 4),"
    " round(speeding::numeric / nullif(online, 0), 4),"
    " round(fatigue / nullif(online, 0), 4),"
    " NULL::numeric"
    " FROM g ORDER BY grp";

static const char *const hw_kpi_by_names[] = {"region", "enterprise", "class"};

int hw_kpi_request_parse(hw_kpi_request *r, const char *from, const char *to, const char *region,
                         const char *by, const char *level, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  if (!from || !to || !from[0] || !to[0]) {
    snprintf(err, errlen, "--from and --to are required (YYYY-MM-DD, GMT+8)");
    return -EINVAL;
  }
  if (hw_daily_day_parse(from, &r->from_day) || hw_daily_day_parse(to, &r->to_day)) {
    snprintf(err, errlen, "dates are YYYY-MM-DD between 2000 and 2099");
    return -EINVAL;
  }
  if (r->from_day > r->to_day) {
    snprintf(err, errlen, "--from %s is after --to %s", from, to);
    return -EINVAL;
  }
  unsigned own = 0; /* digits of the scope's own level */
  if (region && region[0]) {
    if (strlen(region) != 6 || strspn(region, "0123456789") != 6 || !strncmp(region, "00", 2)) {
      snprintf(err, errlen, "--region is a six-digit GB/T 2260 code");
      return -EINVAL;
    }
    memcpy(r->region, region, 7);
    own = !strcmp(region + 2, "0000") ? 2 : !strcmp(region + 4, "00") ? 4 : 6;
  }
  r->by = HW_KPI_BY_REGION;
  if (by && by[0]) {
    unsigned i;
    for (i = 0; i < HW_ARRAY_SIZE(hw_kpi_by_names) && strcmp(by, hw_kpi_by_names[i]); i++)
      ;
    if (i == HW_ARRAY_SIZE(hw_kpi_by_names)) {
      snprintf(err, errlen, "--by is region, enterprise or class");
      return -EINVAL;
    }
    r->by = (hw_kpi_by)i;
  }
  if (level && level[0]) {
    if (!strcmp(level, "province"))
      r->level = 2;
    else if (!strcmp(level, "city"))
      r->level = 4;
    else if (!strcmp(level, "county"))
      r->level = 6;
    else {
      snprintf(err, errlen, "--level is province, city or county");
      return -EINVAL;
    }
  } else {
    r->level = own == 0 || own == 2 ? 4 : 6;
  }
  return 0;
}

void hw_kpi_bind(const hw_kpi_request *r, hw_kpi_bufs *bufs, const char *params[HW_KPI_NPARAMS]) {
  snprintf(bufs->b[0], sizeof bufs->b[0], "%d", r->from_day);
  snprintf(bufs->b[1], sizeof bufs->b[1], "%d", r->to_day);
  unsigned own = !r->region[0] ? 0 : !strcmp(r->region + 2, "0000") ? 2 : !strcmp(r->region + 4, "00") ? 4 : 6;
  snprintf(bufs->b[2], sizeof bufs->b[2], "%.*s", (int)own, r->region);
  snprintf(bufs->b[3], sizeof bufs->b[3], "%s", hw_kpi_by_names[r->by]);
  snprintf(bufs->b[4], sizeof bufs->b[4], "%u", r->level);
  for (int i = 0; i < HW_KPI_NPARAMS; i++)
    params[i] = bufs->b[i];
}

int hw_kpi_run(PGconn *conn, const hw_kpi_request *r, PGresult **out) {
  hw_kpi_bufs bufs;
  const char *params[HW_KPI_NPARAMS];
  hw_kpi_bind(r, &bufs, params);
  PGresult *res = PQexecParams(conn, hw_kpi_sql, HW_KPI_NPARAMS, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != HW_KPI_NCOLS) {
    hw_error("kpi", NULL, "query failed: %s", hw_pg_errmsg(res));
    PQclear(res);
    return -EIO;
  }
  *out = res;
  return 0;
}
