#include "sinks/kpi_query.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/geo.h"
#include "base/log.h"
#include "sinks/daily_store.h"
#include "sinks/pg_conn.h"

#define HW_KPI_COLS(X)                                                                         \
  X("group", HW_COL_TEXT) X("vehicles_registered", HW_COL_INT) X("vehicles_connected", HW_COL_INT) \
  X("vehicles_online", HW_COL_INT) X("records", HW_COL_INT) X("records_qualified", HW_COL_INT)     \
  X("vehicles_drifting", HW_COL_INT) X("km_total", HW_COL_NUM) X("km_complete", HW_COL_NUM)        \
  X("speeding_count", HW_COL_INT) X("fatigue_hours", HW_COL_NUM) X("rate_connected", HW_COL_NUM)   \
  X("rate_online", HW_COL_NUM) X("rate_track_complete", HW_COL_NUM)                                \
  X("rate_qualified", HW_COL_NUM) X("rate_drifting", HW_COL_NUM)                                   \
  X("speeding_per_vehicle", HW_COL_NUM) X("fatigue_hours_per_vehicle", HW_COL_NUM)                 \
  X("score", HW_COL_NUM)
#define HW_KPI_DAILY_COLS(X)                                                                   \
  X("day", HW_COL_TEXT) X("vehicles_connected", HW_COL_INT) X("vehicles_online", HW_COL_INT)   \
  X("records", HW_COL_INT) X("records_qualified", HW_COL_INT) X("vehicles_drifting", HW_COL_INT) \
  X("km_total", HW_COL_NUM) X("km_complete", HW_COL_NUM) X("rate_online", HW_COL_NUM)          \
  X("rate_track_complete", HW_COL_NUM) X("rate_qualified", HW_COL_NUM)                          \
  X("rate_drifting", HW_COL_NUM)
#define HW_KPI_NAME_(n, t) n,
#define HW_KPI_COL_(n, t) {n, t},
const char *const hw_kpi_columns[HW_KPI_NCOLS] = {HW_KPI_COLS(HW_KPI_NAME_)};
const hw_table_col hw_kpi_cols[HW_KPI_NCOLS] = {HW_KPI_COLS(HW_KPI_COL_)};
const hw_table_col hw_kpi_daily_cols[HW_KPI_DAILY_NCOLS] = {HW_KPI_DAILY_COLS(HW_KPI_COL_)};


/* $1 first day, $2 last day (day numbers since 1970-01-01, GMT+8), $3 region prefix ('' = all),
 * $4 group kind (region|enterprise|class), $5 digits of the region code kept for the group,
 * $6 the score settings as integer[] (hw_kpi_bind's order), $7 the scope (text[] of LIKE
 * patterns). */
/* The vehicles in scope. Written as LIKE with a prefix (not left(region, n) = ...) so that the
 * planner estimates the rows from the column's statistics: with the default 0.5 % guess it took
 * 100,000 vehicles for 500 and chose nested loops of index scans (ops/bench-kpi: 25 s). */
#define HW_KPI_SCOPE \
  " FROM vehicles WHERE status = 'active' AND region LIKE $3::text || '%'" \
  " AND region LIKE ANY($7::text[])"
/* Points of a speeding or fatigue figure per vehicle (v) against the average of the groups (a),
 * as a fraction: 1 at or below a, 0 at or above m = score_zero_at_pct / 100 times a, linear
 * between; 0 when the group has no online vehicle (v NULL). */
#define HW_KPI_REL(v, a) \
  "CASE WHEN " v " IS NULL THEN 0 WHEN " v " <= " a " THEN 1" \
  " WHEN " v " >= w[13] / 100.0 * " a " THEN 0" \
  " ELSE (w[13] / 100.0 * " a " - " v ") / ((w[13] / 100.0 - 1) * " a ") END"
/* The statement reads roll-ups wherever a period holds whole GMT+8 months: the daily figures
 * per vehicle and month (vehicle_monthly, schema 017) and the speeding episodes and closed fatigue
 * seconds per vehicle and month (violation_monthly, schema 024); only the edge days of a period
 * that is not whole months, and the open fatigue episodes (they run to the vehicle's last fix,
 * which moves), are read from vehicle_daily and violations directly. A period of exactly one
 * calendar month (report monthly, the province month of ops/bench-kpi) thus reads one row per
 * vehicle from each roll-up and joins them to the vehicles in scope once, per group; the
 * branches not taken are switched off by p.one, a constant of the parameters (a one-time
 * filter), and never executed. Every figure is a sum or a count, so the pieces (months, edge
 * days, open episodes) add up exactly: seconds are numeric, turned into hours once. */
const char hw_kpi_sql[] =
    "WITH v AS NOT MATERIALIZED ("
    " SELECT terminal_id, CASE $4::text"
    "  WHEN 'region' THEN rpad(left(region, $5::integer), 6, '0')"
    "  WHEN 'enterprise' THEN coalesce(enterprise, '')"
    "  ELSE class_code END AS grp"
    HW_KPI_SCOPE "),"
    /* The period as whole months (ws..we, none when ws > we) and edge days: the months from the
     * roll-ups, the days before ws and after we directly. The two day ranges never overlap: the
     * second starts at ws or later. one: the period is exactly the month ws. As instants: the
     * period [tlo, thi), the edges [tlo, b1) and [a2, thi) (empty when the end is not after the
     * start). */
    " p AS ("
    " SELECT *, hw_cst_start(lo) AS tlo, hw_cst_start(hi + 1) AS thi,"
    "  hw_cst_start(least(hi, ws - 1) + 1) AS b1, hw_cst_start(greatest(lo, we + 1, ws)) AS a2"
    " FROM (SELECT lo, hi, ws, we, ws = lo AND we = hi AND ws = date_trunc('month', hi::timestamp) AS one"
    " FROM (SELECT lo, hi, (date_trunc('month', (lo - 1)::timestamp) + interval '1 month')::date AS ws,"
    "  (date_trunc('month', (hi + 1)::timestamp) - interval '1 day')::date AS we"
    " FROM (SELECT date '1970-01-01' + $1::integer AS lo, date '1970-01-01' + $2::integer AS hi) b) c) d),"
    /* Per vehicle with figures in the period: its online and drifting flags and its sums. */
    " pv AS ("
    " SELECT m.terminal_id, m.records, m.qualified, m.online_days > 0 AS online,"
    "  m.drift_days > 0 AS drifting, m.km_total, m.km_complete"
    " FROM vehicle_monthly m, p WHERE p.one AND m.month = p.lo"
    " UNION ALL"
    " SELECT u.terminal_id, sum(u.records), sum(u.qualified), bool_or(u.online), bool_or(u.drifting),"
    "  sum(u.km_total), sum(u.km_complete)"
    " FROM (SELECT m.terminal_id, m.records, m.qualified, m.online_days > 0 AS online,"
    "  m.drift_days > 0 AS drifting, m.km_total, m.km_complete"
    " FROM vehicle_monthly m, p WHERE m.month BETWEEN p.ws AND p.we"
    " UNION ALL"
    " SELECT x.terminal_id, x.records, x.qualified, x.qualified > 0, x.drift > 0, x.km_total,"
    "  x.km_complete"
    " FROM vehicle_daily x, p WHERE x.day BETWEEN p.lo AND least(p.hi, p.ws - 1)"
    " UNION ALL"
    " SELECT x.terminal_id, x.records, x.qualified, x.qualified > 0, x.drift > 0, x.km_total,"
    "  x.km_complete"
    " FROM vehicle_daily x, p WHERE x.day BETWEEN greatest(p.lo, p.we + 1, p.ws) AND p.hi) u, p"
    " WHERE NOT p.one GROUP BY u.terminal_id),"
    /* Per vehicle, its violation figures of the whole months. */
    " pw AS ("
    " SELECT w.terminal_id, w.speeding, w.fatigue_s FROM violation_monthly w, p"
    " WHERE p.one AND w.month = p.lo"
    " UNION ALL"
    " SELECT w.terminal_id, sum(w.speeding), sum(w.fatigue_s) FROM violation_monthly w, p"
    " WHERE NOT p.one AND w.month BETWEEN p.ws AND p.we GROUP BY w.terminal_id),"
    /* Per group. Connected: online in the period, or a qualified record before it (looked up,
     * in the roll-up's first online day, only for the vehicles not online). */
    " a AS ("
    " SELECT v.grp, count(*) AS registered,"
    "  count(*) FILTER (WHERE coalesce(pv.online, false) OR EXISTS (SELECT 1 FROM vehicle_monthly x"
    "   WHERE x.terminal_id = v.terminal_id AND x.first_online < date '1970-01-01' + $1::integer))"
    "  AS connected,"
    "  count(*) FILTER (WHERE pv.online) AS online,"
    "  coalesce(sum(pv.records), 0) AS records, coalesce(sum(pv.qualified), 0) AS qualified,"
    "  count(*) FILTER (WHERE pv.online AND pv.drifting) AS drifting,"
    "  coalesce(sum(pv.km_total), 0)::numeric AS km_total,"
    "  coalesce(sum(pv.km_complete), 0)::numeric AS km_complete,"
    "  coalesce(sum(pw.speeding), 0) AS speeding, coalesce(sum(pw.fatigue_s), 0) AS fatigue_s"
    " FROM v LEFT JOIN pv USING (terminal_id) LEFT JOIN pw USING (terminal_id) GROUP BY v.grp),"
    /* The violations read directly, per group: speeding episodes started in an edge range, the
     * seconds of closed fatigue episodes inside the edge ranges, and those of the open ones
     * inside the period, up to the vehicle's last fix. */
    " e AS ("
    " SELECT v.grp, count(*) FILTER (WHERE y.kind = 'speeding') AS speeding,"
    "  coalesce(sum(y.secs), 0) AS fatigue_s"
    " FROM (SELECT x.terminal_id, x.kind, NULL::numeric AS secs FROM violations x, p"
    "  WHERE NOT p.one AND x.kind = 'speeding'"
    "  AND ((x.started_at >= p.tlo AND x.started_at < p.b1) OR (x.started_at >= p.a2 AND x.started_at < p.thi))"
    " UNION ALL"
    " SELECT x.terminal_id, x.kind,"
    "  extract(epoch FROM greatest(least(x.ended_at, p.b1) - greatest(x.started_at, p.tlo), interval '0'))"
    "  + extract(epoch FROM greatest(least(x.ended_at, p.thi) - greatest(x.started_at, p.a2), interval '0'))"
    "  FROM violations x, p"
    "  WHERE NOT p.one AND x.kind = 'fatigue_continuous' AND x.ended_at IS NOT NULL"
    "  AND x.started_at < p.thi AND x.ended_at > p.tlo"
    " UNION ALL"
    " SELECT o.terminal_id, o.kind, extract(epoch FROM least(o.until, o.thi) - greatest(o.started_at, o.tlo))"
    "  FROM (SELECT x.terminal_id, x.kind, x.started_at, p.tlo, p.thi,"
    "  (SELECT max(y.last_fix) FROM vehicle_monthly y WHERE y.terminal_id = x.terminal_id) AS until"
    "  FROM violations x, p WHERE x.kind = 'fatigue_continuous' AND x.ended_at IS NULL"
    "  AND x.started_at < p.thi OFFSET 0) o"
    "  WHERE o.until > greatest(o.started_at, o.tlo)) y"
    " JOIN v USING (terminal_id) GROUP BY v.grp),"
    " g AS ("
    " SELECT a.grp, a.registered, a.connected, a.online, a.records, a.qualified, a.drifting,"
    "  a.km_total, a.km_complete, a.speeding + coalesce(e.speeding, 0) AS speeding,"
    "  (a.fatigue_s + coalesce(e.fatigue_s, 0)) / 3600 AS fatigue"
    " FROM a LEFT JOIN e USING (grp)),"
    /* The rates as printed (four decimals): the score is computed from them, so that a reader
     * can compute it again from the row and the averages. */
    " k AS ("
    " SELECT grp, registered, connected, online, records, qualified, drifting,"
    " round(km_total, 3) AS km_total, round(km_complete, 3) AS km_complete, speeding,"
    " round(fatigue, 4) AS fatigue,"
    " round(connected::numeric / nullif(registered, 0), 4) AS r_conn,"
    " round(online::numeric / nullif(connected, 0), 4) AS r_onl,"
    " round(km_complete / nullif(km_total, 0), 4) AS r_trk,"
    " round(qualified::numeric / nullif(records, 0), 4) AS r_q,"
    " round(drifting::numeric / nullif(online, 0), 4) AS r_dr,"
    " round(speeding::numeric / nullif(online, 0), 4) AS sp,"
    " round(fatigue / nullif(online, 0), 4) AS fa,"
    " round(sum(speeding) OVER () / nullif(sum(online) OVER (), 0), 4) AS sp_avg,"
    " round(sum(fatigue) OVER () / nullif(sum(online) OVER (), 0), 4) AS fa_avg"
    " FROM g)"
    " SELECT grp, registered, connected, online, records, qualified, drifting, km_total,"
    " km_complete, speeding, fatigue, r_conn, r_onl, r_trk, r_q, r_dr, sp, fa,"
    /* A rate with no denominator scores 0 (nothing delivered earns nothing); the inspection
     * response (w[14]) has no figure in haulwatch yet: left out, the rest scaled to 100. */
    " CASE WHEN registered = 0 THEN NULL ELSE round(100 * ("
    "  CASE WHEN r_conn >= w[2] / 100.0 THEN w[1] * r_conn ELSE 0 END"
    "  + CASE WHEN r_onl >= w[4] / 100.0 THEN w[3] * r_onl ELSE 0 END"
    "  + CASE WHEN r_trk >= w[6] / 100.0 THEN w[5] * r_trk ELSE 0 END"
    "  + CASE WHEN r_q >= w[8] / 100.0 THEN w[7] * r_q ELSE 0 END"
    "  + CASE WHEN r_dr < w[10] / 100.0 THEN w[9] * (1 - r_dr / (w[10] / 100.0)) ELSE 0 END"
    "  + w[11] * (" HW_KPI_REL("sp", "sp_avg") ")"
    "  + w[12] * (" HW_KPI_REL("fa", "fa_avg") ")"
    " ) / nullif(w[1] + w[3] + w[5] + w[7] + w[9] + w[11] + w[12], 0), 2) END"
    " FROM k, (SELECT $6::integer[] AS w) cfg ORDER BY grp";


/* Same parameters as hw_kpi_sql ($4, $5, $6 unused but typed, so that one binding serves). */
const char hw_kpi_daily_sql[] =
    "WITH v AS (SELECT terminal_id" HW_KPI_SCOPE
    " AND $4::text IS NOT NULL AND $5::integer IS NOT NULL AND $6::integer[] IS NOT NULL),"
    " fc AS ("
    " SELECT first, count(*) AS n FROM (SELECT x.terminal_id, min(x.day) AS first"
    "  FROM vehicle_daily x JOIN v USING (terminal_id)"
    "  WHERE x.qualified > 0 AND x.day <= date '1970-01-01' + $2::integer"
    "  GROUP BY x.terminal_id) t GROUP BY first),"
    " d AS ("
    " SELECT x.day, count(*) FILTER (WHERE x.qualified > 0) AS online, sum(x.records) AS records,"
    "  sum(x.qualified) AS qualified,"
    "  count(*) FILTER (WHERE x.qualified > 0 AND x.drift > 0) AS drifting,"
    "  sum(x.km_total)::numeric AS km_total, sum(x.km_complete)::numeric AS km_complete"
    " FROM vehicle_daily x JOIN v USING (terminal_id)"
    " WHERE x.day BETWEEN date '1970-01-01' + $1::integer AND date '1970-01-01' + $2::integer"
    " GROUP BY x.day),"
    " t AS ("
    " SELECT n.day::date AS day, (SELECT coalesce(sum(fc.n), 0) FROM fc WHERE fc.first <= n.day)"
    "  AS connected, coalesce(d.online, 0) AS online, coalesce(d.records, 0) AS records,"
    "  coalesce(d.qualified, 0) AS qualified, coalesce(d.drifting, 0) AS drifting,"
    "  coalesce(d.km_total, 0) AS km_total, coalesce(d.km_complete, 0) AS km_complete"
    " FROM generate_series(date '1970-01-01' + $1::integer, date '1970-01-01' + $2::integer,"
    "  interval '1 day') n(day) LEFT JOIN d ON d.day = n.day::date)"
    " SELECT to_char(day, 'YYYY-MM-DD'), connected, online, records, qualified, drifting,"
    " round(km_total, 3), round(km_complete, 3),"
    " round(online::numeric / nullif(connected, 0), 4),"
    " round(km_complete / nullif(km_total, 0), 4),"
    " round(qualified::numeric / nullif(records, 0), 4),"
    " round(drifting::numeric / nullif(online, 0), 4)"
    " FROM t ORDER BY day";

void hw_kpi_score_defaults(hw_kpi_score_cfg *cfg) {
  *cfg = (hw_kpi_score_cfg){
      .score_connected = HW_KPI_DEF_CONNECTED,
      .score_connected_min_pct = HW_KPI_DEF_CONNECTED_MIN_PCT,
      .score_online = HW_KPI_DEF_ONLINE,
      .score_online_min_pct = HW_KPI_DEF_ONLINE_MIN_PCT,
      .score_track = HW_KPI_DEF_TRACK,
      .score_track_min_pct = HW_KPI_DEF_TRACK_MIN_PCT,
      .score_qualified = HW_KPI_DEF_QUALIFIED,
      .score_qualified_min_pct = HW_KPI_DEF_QUALIFIED_MIN_PCT,
      .score_drift = HW_KPI_DEF_DRIFT,
      .score_drift_max_pct = HW_KPI_DEF_DRIFT_MAX_PCT,
      .score_speeding = HW_KPI_DEF_SPEEDING,
      .score_fatigue = HW_KPI_DEF_FATIGUE,
      .score_zero_at_pct = HW_KPI_DEF_ZERO_AT_PCT,
      .score_inspection = HW_KPI_DEF_INSPECTION,
  };
}

static const char *const hw_kpi_by_names[] = {"region", "enterprise", "class"};

int hw_kpi_request_parse(hw_kpi_request *r, const char *from, const char *to, const char *region,
                         const char *by, const char *level, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  hw_kpi_score_defaults(&r->score);
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
  const hw_kpi_score_cfg *w = &r->score;
  /* w[1..14] in the SQL: this order. */
  snprintf(bufs->b[5], sizeof bufs->b[5],
           "{%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32
           ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 "}",
           w->score_connected, w->score_connected_min_pct, w->score_online,
           w->score_online_min_pct, w->score_track, w->score_track_min_pct, w->score_qualified,
           w->score_qualified_min_pct, w->score_drift, w->score_drift_max_pct, w->score_speeding,
           w->score_fatigue, w->score_zero_at_pct < 101 ? 101 : w->score_zero_at_pct,
           w->score_inspection);
  snprintf(bufs->b[6], sizeof bufs->b[6], "{%%}");
  for (int i = 0; i < HW_KPI_NPARAMS; i++)
    params[i] = bufs->b[i];
  if (r->scope)
    params[6] = r->scope; /* borrowed: may be longer than a buffer */
}

static int hw_kpi_exec(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -EIO;
  if (rc)
    hw_error("kpi", NULL, "%s failed: %s", sql, hw_pg_errmsg(res));
  PQclear(res);
  return rc;
}

int hw_kpi_run(PGconn *conn, const hw_kpi_request *r, PGresult **out) {
  hw_kpi_bufs bufs;
  const char *params[HW_KPI_NPARAMS];
  hw_kpi_bind(r, &bufs, params);
  /* The settings only for this statement (SET LOCAL, in a transaction of its own unless the
   * caller has one): see HW_KPI_SETTINGS. */
  int own = PQtransactionStatus(conn) == PQTRANS_IDLE;
  if ((own && hw_kpi_exec(conn, "BEGIN")) || hw_kpi_exec(conn, HW_KPI_SETTINGS))
    goto fail;
  PGresult *res = PQexecParams(conn, hw_kpi_sql, HW_KPI_NPARAMS, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != HW_KPI_NCOLS) {
    hw_error("kpi", NULL, "query failed: %s", hw_pg_errmsg(res));
    PQclear(res);
    goto fail;
  }
  if (own && hw_kpi_exec(conn, "COMMIT")) {
    PQclear(res);
    return -EIO;
  }
  *out = res;
  return 0;
fail:
  if (own)
    PQclear(PQexec(conn, "ROLLBACK"));
  return -EIO;
}
