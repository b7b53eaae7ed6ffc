#include "sinks/monthly_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/geo.h"
#include "base/log.h"
#include "sinks/pg_array.h"
#include "sinks/pg_conn.h"

/* The one mapping of vehicle classes (schema 002's seeds) to industries. Every class that moves
 * goods other than dangerous goods is freight; converted tractors, tractors, three-wheel and
 * low-speed trucks carry goods too (that is why they are phased out of it). */
const hw_industry_map hw_monthly_industries[] = {
    {"heavy_truck", "freight"},         {"semi_trailer_tractor", "freight"},
    {"converted_tractor", "freight"},   {"low_speed_truck", "freight"},
    {"three_wheel", "freight"},         {"tractor", "freight"},
    {"dangerous_goods", "dangerous_goods"}, {"passenger_coach", "passenger"},
};
const size_t hw_monthly_nindustries = HW_ARRAY_SIZE(hw_monthly_industries);

const hw_industry_name hw_monthly_industry_names[] = {
    {"freight", "普通货运", "freight"},
    {"dangerous_goods", "危险货物运输", "dangerous goods"},
    {"passenger", "旅客运输", "passenger"},
    {"other", "其他", "other"},
};
const size_t hw_monthly_nindustry_names = HW_ARRAY_SIZE(hw_monthly_industry_names);

const char *const hw_monthly_rect_columns[HW_MONTHLY_RECT_NCOLS] = {
    "opened", "closed", "closed_7d", "closed_30d", "still_open", "overdue"};
const char *const hw_monthly_overdue_columns[HW_MONTHLY_OVERDUE_NCOLS] = {
    "id", "kind", "plate", "enterprise", "region", "started", "state", "days_open"};

static int hw_month_days(int y, int m) {
  static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return d[m - 1] + (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

static int hw_month_request(hw_kpi_request *k, int y, int m, const char *region, const char *by,
                            char *err, size_t errlen) {
  char from[16], to[16];
  snprintf(from, sizeof from, "%04d-%02d-01", y, m);
  snprintf(to, sizeof to, "%04d-%02d-%02d", y, m, hw_month_days(y, m));
  return hw_kpi_request_parse(k, from, to, region, by, NULL, err, errlen);
}

int hw_monthly_request_parse(hw_monthly_request *r, const char *month, const char *region,
                             uint32_t overdue_days, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  if (!month || strlen(month) != 7 || month[4] != '-' || strspn(month, "0123456789") != 4 ||
      strspn(month + 5, "0123456789") != 2) {
    snprintf(err, errlen, "--month is YYYY-MM");
    return -EINVAL;
  }
  int y = atoi(month), m = atoi(month + 5);
  if (y < 2000 || y > 2099 || m < 1 || m > 12 || (y == 2000 && m == 1)) {
    snprintf(err, errlen, "--month is a month from 2000-02 to 2099-12");
    return -EINVAL;
  }
  /* A province (or no region) is compared city by city, a city or county enterprise by
   * enterprise (the 通报 of each level ranks what lies directly under it). */
  int province = !region || !region[0] || (strlen(region) == 6 && !strcmp(region + 2, "0000"));
  const char *by = province ? "region" : "enterprise";
  int py = m == 1 ? y - 1 : y, pm = m == 1 ? 12 : m - 1;
  if (hw_month_request(&r->cur, y, m, region, by, err, errlen) ||
      hw_month_request(&r->prev, py, pm, region, by, err, errlen))
    return -EINVAL;
  /* The modulos tell the compiler what the checks above already ensured. */
  snprintf(r->month, sizeof r->month, "%04u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u);
  snprintf(r->prev_month, sizeof r->prev_month, "%04u-%02u", (unsigned)py % 10000u,
           (unsigned)pm % 100u);
  r->overdue_days = overdue_days;
  return 0;
}

/* $1 first day, $2 last day (day numbers, GMT+8), $3 region prefix ('' = all): the same scope
 * as the KPI query. The month in UTC is [LO, HI). */
#define HW_M_LO "(timestamptz 'epoch' + ($1::integer * 86400 - " HW_XSTR(HW_CST_OFFSET_S) ") * interval '1 second')"
#define HW_M_HI "(timestamptz 'epoch' + (($2::integer + 1) * 86400 - " HW_XSTR(HW_CST_OFFSET_S) ") * interval '1 second')"
#define HW_M_SCOPE "vehicles WHERE status = 'active' AND left(region, length($3::text)) = $3::text"
/* The cut-off: the end of the month, or now while the month runs. */
#define HW_M_CUT "least(" HW_M_HI ", now())"

/* $4 digits of the region code kept, $5 class codes, $6 their industries. */
static const char hw_monthly_violations_sql[] =
    "WITH v AS (SELECT terminal_id, rpad(left(region, $4::integer), 6, '0') AS reg, class_code"
    "  FROM " HW_M_SCOPE "),"
    " m AS (SELECT c, i FROM unnest($5::text[], $6::text[]) AS t(c, i)),"
    " x AS (SELECT x.kind, v.reg, coalesce(m.i, 'other') AS industry"
    "  FROM violations x JOIN v USING (terminal_id) LEFT JOIN m ON m.c = v.class_code"
    "  WHERE x.started_at >= " HW_M_LO " AND x.started_at < " HW_M_HI ")"
    " SELECT CASE WHEN GROUPING(kind) = 0 THEN 'kind' WHEN GROUPING(reg) = 0 THEN 'region'"
    "  ELSE 'industry' END AS dim, coalesce(kind, reg, industry) AS key, count(*)"
    " FROM x GROUP BY GROUPING SETS ((kind), (reg), (industry)) ORDER BY 1, 2";

/* $4 overdue days. closed_at at or after the cut-off is "not closed yet" as of the cut-off. */
static const char hw_monthly_rectify_sql[] =
    "WITH v AS (SELECT terminal_id FROM " HW_M_SCOPE "),"
    " x AS (SELECT x.started_at, CASE WHEN x.closed_at < " HW_M_CUT " THEN x.closed_at END AS cl"
    "  FROM violations x JOIN v USING (terminal_id)"
    "  WHERE x.started_at >= " HW_M_LO " AND x.started_at < " HW_M_HI ")"
    " SELECT count(*), count(cl),"
    "  count(*) FILTER (WHERE cl <= started_at + interval '7 days'),"
    "  count(*) FILTER (WHERE cl <= started_at + interval '30 days'),"
    "  count(*) FILTER (WHERE cl IS NULL),"
    "  count(*) FILTER (WHERE cl IS NULL AND started_at < " HW_M_CUT " - $4::integer * interval '1 day')"
    " FROM x";

static const char hw_monthly_overdue_sql[] =
    "SELECT x.id, x.kind, coalesce(v.plate, x.plate), coalesce(v.enterprise, ''), v.region,"
    "  to_char((x.started_at AT TIME ZONE 'UTC') + interval '" HW_XSTR(HW_CST_OFFSET_S) " seconds',"
    "   'YYYY-MM-DD HH24:MI'),"
    "  coalesce((SELECT a.to_state FROM violation_audit a WHERE a.violation_id = x.id"
    "   AND a.at < " HW_M_CUT " ORDER BY a.at DESC, a.id DESC LIMIT 1), 'open'),"
    "  floor(extract(epoch FROM " HW_M_CUT " - x.started_at) / 86400)::integer"
    " FROM violations x JOIN vehicles v USING (terminal_id)"
    " WHERE v.status = 'active' AND left(v.region, length($3::text)) = $3::text"
    " AND x.started_at < " HW_M_CUT " - $4::integer * interval '1 day'"
    " AND (x.closed_at IS NULL OR x.closed_at >= " HW_M_CUT ")"
    " ORDER BY x.started_at, x.id";

/* Parameter types given, so that a statement need not mention every one. */
static const Oid hw_monthly_types[6] = {23 /* int4 */, 23, 25 /* text */, 23, 1009 /* text[] */,
                                        1009};

/* Runs sql with $1..$3 the scope of r->cur and extra[0..nextra) as $4... */
static int hw_monthly_exec(PGconn *conn, const char *what, const hw_monthly_request *r,
                           const char *sql, const char *const *extra, int nextra, int ncols,
                           PGresult **out) {
  hw_kpi_bufs bufs;
  const char *kp[HW_KPI_NPARAMS];
  hw_kpi_bind(&r->cur, &bufs, kp); /* $1 from, $2 to, $3 region prefix: the KPI query's */
  const char *params[6];
  params[0] = kp[0];
  params[1] = kp[1];
  params[2] = kp[2];
  for (int i = 0; i < nextra; i++)
    params[3 + i] = extra[i];
  PGresult *res = PQexecParams(conn, sql, 3 + nextra, hw_monthly_types, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != ncols) {
    hw_error("monthly", r->month, "%s query failed: %s", what, hw_pg_errmsg(res));
    PQclear(res);
    return -EIO;
  }
  *out = res;
  return 0;
}

int hw_monthly_violations_run(PGconn *conn, const hw_monthly_request *r, PGresult **out) {
  hw_pg_array cls = {0}, ind = {0};
  for (size_t i = 0; i < hw_monthly_nindustries; i++) {
    hw_pg_array_text(&cls, hw_monthly_industries[i].class_code,
                     strlen(hw_monthly_industries[i].class_code));
    hw_pg_array_text(&ind, hw_monthly_industries[i].industry,
                     strlen(hw_monthly_industries[i].industry));
  }
  char level[8];
  snprintf(level, sizeof level, "%u", r->cur.level);
  const char *extra[3] = {level, hw_pg_array_finish(&cls), hw_pg_array_finish(&ind)};
  int rc = -ENOMEM;
  if (extra[1] && extra[2])
    rc = hw_monthly_exec(conn, "violations", r, hw_monthly_violations_sql, extra, 3, 3, out);
  else
    hw_error("monthly", r->month, "violations query: out of memory");
  hw_pg_array_free(&cls);
  hw_pg_array_free(&ind);
  return rc;
}

int hw_monthly_rectify_run(PGconn *conn, const hw_monthly_request *r, PGresult **out) {
  char days[16];
  snprintf(days, sizeof days, "%u", r->overdue_days);
  const char *extra[1] = {days};
  return hw_monthly_exec(conn, "rectification", r, hw_monthly_rectify_sql, extra, 1,
                         HW_MONTHLY_RECT_NCOLS, out);
}

int hw_monthly_overdue_run(PGconn *conn, const hw_monthly_request *r, PGresult **out) {
  char days[16];
  snprintf(days, sizeof days, "%u", r->overdue_days);
  const char *extra[1] = {days};
  return hw_monthly_exec(conn, "overdue", r, hw_monthly_overdue_sql, extra, 1,
                         HW_MONTHLY_OVERDUE_NCOLS, out);
}

static int hw_rank_cmp(const void *a, const void *b, void *arg) {
  const hw_rank_item *items = arg;
  const hw_rank_item *x = &items[*(const size_t *)a], *y = &items[*(const size_t *)b];
  if (x->scored != y->scored)
    return x->scored ? -1 : 1;
  if (x->scored && x->score != y->score)
    return x->score > y->score ? -1 : 1;
  return strcmp(x->group ? x->group : "", y->group ? y->group : "");
}

void hw_monthly_rank(const hw_rank_item *items, size_t n, size_t *order, unsigned *rank) {
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  qsort_r(order, n, sizeof *order, hw_rank_cmp, (void *)items); /* glibc's (_GNU_SOURCE) */
  for (size_t k = 0; k < n; k++) {
    const hw_rank_item *it = &items[order[k]];
    if (!it->scored)
      rank[order[k]] = 0;
    else if (k > 0 && items[order[k - 1]].scored && items[order[k - 1]].score == it->score)
      rank[order[k]] = rank[order[k - 1]];
    else
      rank[order[k]] = (unsigned)k + 1;
  }
}

void hw_monthly_lists(const hw_rank_item *items, const size_t *order, size_t n,
                      size_t red[HW_MONTHLY_LIST_LEN], size_t *nred,
                      size_t black[HW_MONTHLY_LIST_LEN], size_t *nblack) {
  size_t scored = 0;
  while (scored < n && items[order[scored]].scored)
    scored++; /* the scored groups come first in the order */
  *nred = scored < HW_MONTHLY_LIST_LEN ? scored : HW_MONTHLY_LIST_LEN;
  for (size_t k = 0; k < *nred; k++)
    red[k] = order[k];
  size_t rest = scored - *nred;
  *nblack = rest < HW_MONTHLY_LIST_LEN ? rest : HW_MONTHLY_LIST_LEN;
  for (size_t k = 0; k < *nblack; k++)
    black[k] = order[scored - 1 - k];
}
