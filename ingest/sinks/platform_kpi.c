/* JT/T 809 figures per platform (see platform_kpi.h). */
#include "sinks/platform_kpi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *const hw_platform_kpi_columns[HW_PLATFORM_KPI_NCOLS] = {
    "platform",          "inspections",   "answered",         "answered_in_time",
    "response_rate",     "mean_delay_s",  "period_s",         "main_up_s",
    "main_down_s",       "link_availability", "slave_up_s",   "slave_availability"};

/* A bound: a bare day is GMT+8 midnight (to: of the next day). */
#define HW_PK_BOUND(p, next)                                                                    \
  "CASE WHEN " p " ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN ((" p "::date + " next ")::timestamp " \
  "AT TIME ZONE 'Asia/Shanghai') ELSE " p "::timestamptz END"

static const char hw_platform_kpi_sql[] =
    "WITH period AS (SELECT " HW_PK_BOUND("$1", "0") " AS t0, least(" HW_PK_BOUND("$2", "1")
    ", now()) AS t1), "
    "links AS (SELECT l.platform, l.link, range_agg(tstzrange(greatest(l.up_at, p.t0), "
    "least(coalesce(l.down_at, now()), p.t1))) AS up FROM platform_links l, period p "
    "WHERE l.up_at < p.t1 AND coalesce(l.down_at, now()) > p.t0 GROUP BY l.platform, l.link), "
    "up AS (SELECT platform, link, (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), "
    "0) FROM unnest(links.up) r) AS s FROM links), "
    "insp AS (SELECT i.platform, count(*) AS n, count(i.answered_at) AS answered, "
    "count(*) FILTER (WHERE i.answered_at IS NOT NULL AND i.delay_ms <= i.answer_min * 60000) "
    "AS in_time, avg(i.delay_ms) AS delay FROM platform_inspections i, period p WHERE i.kind = "
    "'inspect' AND i.created_at >= p.t0 AND i.created_at < p.t1 GROUP BY i.platform) "
    "SELECT pl.id, coalesce(insp.n, 0), coalesce(insp.answered, 0), coalesce(insp.in_time, 0), "
    "round(insp.in_time::numeric / nullif(insp.n, 0), 4), round(insp.delay / 1000.0, 3), "
    "round(q.len::numeric, 3) AS period_s, "
    "round(coalesce(m.s, 0)::numeric, 3), "
    "round(greatest(q.len - coalesce(m.s, 0), 0)::numeric, 3), "
    "round((coalesce(m.s, 0) / nullif(q.len, 0))::numeric, 4), "
    "round(coalesce(sl.s, 0)::numeric, 3), "
    "round((coalesce(sl.s, 0) / nullif(q.len, 0))::numeric, 4) "
    "FROM platforms pl CROSS JOIN period p "
    /* A platform registered during the period is judged from its registration on. */
    "CROSS JOIN LATERAL (SELECT extract(epoch FROM p.t1 - greatest(p.t0, least(pl.created_at, "
    "p.t1))) AS len) q LEFT JOIN insp ON insp.platform = pl.id "
    "LEFT JOIN up m ON m.platform = pl.id AND m.link = 'main' "
    "LEFT JOIN up sl ON sl.platform = pl.id AND sl.link = 'slave' "
    "WHERE ($3::text IS NULL OR pl.id = $3) AND p.t1 > p.t0 ORDER BY pl.id";

int hw_platform_kpi_run(PGconn *conn, const char *from, const char *to, const char *platform,
                        PGresult **out, char *err, size_t errlen) {
  const char *p[3] = {from, to, platform};
  PGresult *res = PQexecParams(conn, hw_platform_kpi_sql, 3, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int bad_input = state && !strncmp(state, "22", 2); /* data exception: a bound */
    snprintf(err, errlen, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return bad_input ? -EINVAL : -EIO;
  }
  *out = res;
  return 0;
}
