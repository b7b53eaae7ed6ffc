/* The safety-device coverage queries (see safety_query.h). Parameters of all three:
 * $1 scope (LIKE patterns), $2 region prefix, $3 from day, $4 to day (dates, GMT+8),
 * $5 coverage days, $6 follow_s. */
#include "sinks/safety_query.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_conn.h"

/* GMT+8 midnight of a date as a timestamptz. */
#define HW_SQ_MIDNIGHT(d) "((" d ")::timestamp AT TIME ZONE INTERVAL '+08:00')"
#define HW_SQ_END HW_SQ_MIDNIGHT("$4::date + 1")

#define HW_SQ_SCOPE \
  "WITH s AS (" \
  " SELECT v.plate, v.terminal_id, v.region, v.enterprise, v.class_code FROM vehicles v" \
  " WHERE v.class_code IN ('heavy_truck', 'semi_trailer_tractor') AND v.status = 'active'" \
  " AND coalesce(v.region, '') LIKE ANY($1::text[])" \
  " AND left(coalesce(v.region, ''), length($2::text)) = $2::text), " \
  "c AS (" \
  " SELECT s.*, s.terminal_id IS NOT NULL AND EXISTS (SELECT 1 FROM vehicle_daily d" \
  "  WHERE d.terminal_id = s.terminal_id AND d.qualified > 0 AND d.day <= $4::date) AS connected," \
  " (SELECT max(a.alarm_at) FROM safety_alarms a WHERE a.terminal_id = s.terminal_id" \
  "  AND a.alarm_at < " HW_SQ_END ") AS last_item FROM s), " \
  "cov AS (SELECT * FROM c WHERE connected AND last_item >= " HW_SQ_END \
  " - $5::integer * interval '1 day') "

static const char hw_sq_summary_sql[] =
    HW_SQ_SCOPE ", "
    "l2 AS (SELECT a.terminal_id, a.alarm_at FROM safety_alarms a JOIN s USING (terminal_id)"
    " WHERE a.level = 2 AND a.alarm_at >= " HW_SQ_MIDNIGHT("$3::date") " AND a.alarm_at < " HW_SQ_END "), "
    "f AS (SELECT count(*) AS n, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM violations x"
    " WHERE x.terminal_id = l2.terminal_id AND x.kind NOT LIKE 'dsm\\_%' AND x.kind NOT LIKE 'adas\\_%'"
    " AND x.started_at >= l2.alarm_at AND x.started_at < l2.alarm_at + $6::integer * interval '1 second'))"
    " AS followed FROM l2) "
    "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM c WHERE connected),"
    " (SELECT count(*) FROM cov),"
    " round(100.0 * (SELECT count(*) FROM cov) / nullif((SELECT count(*) FROM c WHERE connected), 0), 2),"
    " f.n, f.followed, round(100.0 * f.followed / nullif(f.n, 0), 2) FROM f";

static const char hw_sq_uncovered_sql[] =
    HW_SQ_SCOPE
    "SELECT enterprise, plate, terminal_id, region, class_code,"
    " to_char(last_item AT TIME ZONE INTERVAL '+08:00', 'YYYY-MM-DD HH24:MI:SS')"
    " FROM c WHERE connected AND terminal_id NOT IN (SELECT terminal_id FROM cov)"
    " ORDER BY enterprise NULLS LAST, plate";

static const char hw_sq_rates_sql[] =
    HW_SQ_SCOPE ", "
    "km AS (SELECT coalesce(sum(d.km_total), 0) AS km FROM vehicle_daily d JOIN cov USING (terminal_id)"
    " WHERE d.day BETWEEN $3::date AND $4::date), "
    "n AS (SELECT count(*) AS vehicles FROM cov), "
    "a AS (SELECT a.kind, a.type, a.level, count(*) AS alarms FROM safety_alarms a"
    " JOIN cov USING (terminal_id) WHERE a.alarm_at >= " HW_SQ_MIDNIGHT("$3::date")
    " AND a.alarm_at < " HW_SQ_END " GROUP BY 1, 2, 3) "
    "SELECT a.kind, a.type, a.level, a.alarms, n.vehicles,"
    " round(a.alarms::numeric / nullif(n.vehicles, 0), 3),"
    " round(km.km::numeric, 1), round(a.alarms * 100 / nullif(km.km, 0)::numeric, 3)"
    " FROM a, n, km ORDER BY a.kind, a.type, a.level NULLS FIRST";

static int hw_sq_date(const char *s, int *y, int *m, int *d) {
  if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d", y, m, d) != 3 || s[4] != '-' || s[7] != '-' ||
      strspn(s, "0123456789-") != 10 || *y < 2000 || *y > 2099 || *m < 1 || *m > 12 || *d < 1 ||
      *d > 31)
    return -EINVAL;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*d > mdays[*m - 1] || (*m == 2 && *d == 29 && (*y % 4 != 0)))
    return -EINVAL;
  return 0;
}

static long hw_sq_days(int y, int m, int d) { /* days since 1970-01-01 */
  y -= m <= 2;
  long era = y / 400, yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int hw_safety_request_parse(hw_safety_request *r, const char *region, const char *from,
                            const char *to, uint32_t coverage_days, uint32_t follow_s, char *err,
                            size_t errlen) {
  int y1, m1, d1, y2, m2, d2;
  memset(r, 0, sizeof *r);
  if (region && region[0]) {
    if (strlen(region) != 6 || strspn(region, "0123456789") != 6 || !strncmp(region, "00", 2)) {
      snprintf(err, errlen, "region is a six-digit GB/T 2260 code");
      return -EINVAL;
    }
    memcpy(r->region, region, 7);
  }
  if (!from || !to || hw_sq_date(from, &y1, &m1, &d1) || hw_sq_date(to, &y2, &m2, &d2)) {
    snprintf(err, errlen, "from and to are days YYYY-MM-DD between 2000 and 2099 (GMT+8)");
    return -EINVAL;
  }
  long a = hw_sq_days(y1, m1, d1), b = hw_sq_days(y2, m2, d2);
  if (a > b || b - a > 365) {
    snprintf(err, errlen, "from %s to %s: from must not be after to, at most 366 days", from, to);
    return -EINVAL;
  }
  if (coverage_days < 1 || coverage_days > 366) {
    snprintf(err, errlen, "coverage days are 1 to 366");
    return -EINVAL;
  }
  memcpy(r->from, from, 11);
  memcpy(r->to, to, 11);
  r->coverage_days = coverage_days;
  r->follow_s = follow_s;
  return 0;
}

void hw_safety_report_free(hw_safety_report *out) {
  PQclear(out->summary);
  PQclear(out->uncovered);
  PQclear(out->rates);
  memset(out, 0, sizeof *out);
}

int hw_safety_report_run(PGconn *conn, const hw_safety_request *r, const char *scope,
                         hw_safety_report *out) {
  char prefix[7], days[16], follow[16];
  memset(out, 0, sizeof *out);
  /* 320000 is the province and everything in it: the prefix is the code without the zeros of
   * the levels below (as the KPIs and crackdown lists). */
  snprintf(prefix, sizeof prefix, "%s", r->region);
  size_t own = !r->region[0] ? 0 : !strcmp(r->region + 2, "0000") ? 2
             : !strcmp(r->region + 4, "00") ? 4 : 6;
  prefix[own] = '\0';
  snprintf(days, sizeof days, "%u", r->coverage_days);
  snprintf(follow, sizeof follow, "%u", r->follow_s);
  const char *params[6] = {scope, prefix, r->from, r->to, days, follow};
  /* Typed here: not every query uses every parameter (text[], text, date, date, int4, int4). */
  static const Oid types[6] = {1009, 25, 1082, 1082, 23, 23};
  const char *sqls[3] = {hw_sq_summary_sql, hw_sq_uncovered_sql, hw_sq_rates_sql};
  PGresult **res[3] = {&out->summary, &out->uncovered, &out->rates};
  for (int i = 0; i < 3; i++) {
    *res[i] = PQexecParams(conn, sqls[i], 6, types, params, NULL, NULL, 0);
    if (PQresultStatus(*res[i]) != PGRES_TUPLES_OK) {
      hw_error("safety-report", NULL, "query %d failed: SQLSTATE %s: %s", i,
               hw_pg_sqlstate(*res[i]), hw_pg_errmsg(*res[i]));
      hw_safety_report_free(out);
      return -EIO;
    }
  }
  return 0;
}
