/* See crackdown_query.h. The SQL reads the registry, vehicle_daily (schema 012) and violations;
 * the registry audit's rules run here in C (hw_audit_check) on the declared figures, so that a
 * unit test can hold them to every boundary without a database. */
#include "sinks/crackdown_query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/geo.h"
#include "base/log.h"
#include "sinks/daily_store.h"
#include "sinks/pg_conn.h"

void hw_cd_config_default(hw_cd_config *cfg) {
  cfg->phaseout_min_km = HW_CD_DEF_PHASEOUT_MIN_KM;
  cfg->audit_tolerance_kg = HW_CD_DEF_AUDIT_TOLERANCE_KG;
  cfg->audit_min_load_pct = HW_CD_DEF_AUDIT_MIN_LOAD_PCT;
}

/* --- the audit's rules ------------------------------------------------------------------------ */

/* GB 1589-2016, limits of total mass (kg) by axle count: 4.3.2 for trucks (货车), 4.3.3 for
 * articulated vehicles (铰接列车) as the issue lists them. */
static const struct {
  unsigned axles;
  int articulated;
  uint32_t limit_kg;
} hw_gb1589[] = {
    {2, 0, 18000}, {3, 0, 25000}, {4, 0, 31000}, {5, 1, 43000}, {6, 1, 49000},
};

uint32_t hw_audit_limit_kg(unsigned axles, int articulated) {
  for (size_t i = 0; i < HW_ARRAY_SIZE(hw_gb1589); i++)
    if (hw_gb1589[i].axles == axles && hw_gb1589[i].articulated == !!articulated)
      return hw_gb1589[i].limit_kg;
  return 0;
}

static int hw_audit_articulated(const char *cls) {
  return cls && !strcmp(cls, "semi_trailer_tractor");
}

unsigned hw_audit_check(const hw_audit_vehicle *v, const hw_cd_config *cfg) {
  unsigned bits = 0;
  if (v->total_kg >= 0 && v->curb_kg >= 0 && v->load_kg >= 0) {
    int64_t diff = v->total_kg - (v->curb_kg + v->load_kg);
    if (diff > (int64_t)cfg->audit_tolerance_kg || -diff > (int64_t)cfg->audit_tolerance_kg)
      bits |= HW_AUDIT_MASS_MISMATCH;
  }
  if (v->total_kg >= 0 && v->axles > 0) {
    uint32_t lim = hw_audit_limit_kg((unsigned)v->axles, hw_audit_articulated(v->class_code));
    if (lim && v->total_kg > (int64_t)lim)
      bits |= HW_AUDIT_OVER_LIMIT;
  }
  int heavy = (v->class_code && (!strcmp(v->class_code, "heavy_truck") ||
                                 !strcmp(v->class_code, "semi_trailer_tractor"))) ||
              v->total_kg >= HW_AUDIT_HEAVY_KG;
  if (heavy && v->curb_kg >= 0 && v->load_kg >= 0 &&
      v->load_kg * 100 < v->curb_kg * (int64_t)cfg->audit_min_load_pct)
    bits |= HW_AUDIT_LOAD_SMALL;
  return bits;
}

void hw_audit_reason_codes(unsigned bits, char *out, size_t cap) {
  static const char *const names[] = {"mass_mismatch", "over_limit", "load_small"};
  size_t off = 0;
  out[0] = '\0';
  for (unsigned i = 0; i < HW_ARRAY_SIZE(names); i++)
    if (bits & (1u << i)) {
      int n = snprintf(out + off, cap - off, "%s%s", off ? "," : "", names[i]);
      if (n < 0 || (size_t)n >= cap - off)
        return;
      off += (size_t)n;
    }
}

/* --- requests --------------------------------------------------------------------------------- */

static const char *const hw_cd_names[HW_CD__N] = {"phaseout", "registry-audit", "offline-movers"};

int hw_cd_list_of(const char *name, hw_cd_list *out) {
  for (int i = 0; i < HW_CD__N; i++)
    if (name && !strcmp(name, hw_cd_names[i])) {
      *out = (hw_cd_list)i;
      return 0;
    }
  return -EINVAL;
}

const char *hw_cd_list_name(hw_cd_list list) {
  return (unsigned)list < HW_CD__N ? hw_cd_names[list] : "?";
}

static int hw_cd_day(const char *s, int *has, int32_t *day) {
  *has = s && s[0];
  return *has ? hw_daily_day_parse(s, day) : 0;
}

int hw_cd_request_parse(hw_cd_request *r, hw_cd_list list, const char *region, const char *since,
                        const char *from, const char *to, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  r->list = list;
  if (region && region[0]) {
    if (strlen(region) != 6 || strspn(region, "0123456789") != 6 || !strncmp(region, "00", 2)) {
      snprintf(err, errlen, "region is a six-digit GB/T 2260 code");
      return -EINVAL;
    }
    memcpy(r->region, region, 7);
  }
  if ((since && since[0] && list != HW_CD_PHASEOUT) ||
      (((from && from[0]) || (to && to[0])) && list != HW_CD_OFFLINE_MOVERS)) {
    /* Worded for both front ends: the flags and the query parameters have the same names. */
    snprintf(err, errlen, "%s takes %s", hw_cd_names[list],
             list == HW_CD_PHASEOUT ? "since, not from or to"
             : list == HW_CD_OFFLINE_MOVERS ? "from and to, not since"
                                            : "no dates");
    return -EINVAL;
  }
  if (hw_cd_day(since, &r->has_since, &r->since_day) || hw_cd_day(from, &r->has_from, &r->from_day) ||
      hw_cd_day(to, &r->has_to, &r->to_day)) {
    snprintf(err, errlen, "dates are YYYY-MM-DD between 2000 and 2099 (GMT+8)");
    return -EINVAL;
  }
  if (r->has_from && r->has_to && r->from_day > r->to_day) {
    snprintf(err, errlen, "from %s is after to %s", from, to);
    return -EINVAL;
  }
  return 0;
}

/* --- the queries ------------------------------------------------------------------------------ */

/* A timestamptz as ISO 8601 in GMT+8, whatever the session's time zone. */
#define HW_CD_TS(col) \
  "to_char((" col ") AT TIME ZONE 'UTC' + interval '" HW_XSTR(HW_CST_OFFSET_S) " seconds', " \
  "'YYYY-MM-DD\"T\"HH24:MI:SS\"+08:00\"')"
/* The GMT+8 midnight starting day number p, as a timestamptz. */
#define HW_CD_MIDNIGHT(p) \
  "(timestamptz 'epoch' + (" p "::integer * 86400 - " HW_XSTR(HW_CST_OFFSET_S) ") * interval '1 second')"
/* The region filters every list shares: $1 the scope (LIKE patterns), $2 the --region prefix. */
#define HW_CD_REGION(col) \
  "coalesce(" col ", '') LIKE ANY($1::text[]) AND left(coalesce(" col ", ''), length($2::text)) = $2::text"

/* The vehicles of a class with a phase-out date (v, joined with its class c): where the phase-out
 * list and the page's live tractor panel both start. */
#define HW_CD_RETIRED_FROM " FROM vehicles v JOIN vehicle_classes c ON c.code = v.class_code"
#define HW_CD_RETIRED_WHERE " c.retired_after IS NOT NULL"

/* GET /api/v1/converted-tractors (web/web_api.c), moved here beside the phase-out list: $1 scope,
 * $2 cursor (terminal id), $3 limit. Whether it moved after the date is whether a retired_class
 * violation exists (live, from the rules), where and when last from that violation and the stored
 * position at or just before it; times as JSON writes them in the session's time zone. */
const char hw_cd_tractors_sql[] =
    "SELECT v.terminal_id, v.plate, v.region, v.enterprise, v.class_code, "
    "c.retired_after::text, lv.last_at IS NOT NULL, to_json(lv.last_at)#>>'{}', "
    "coalesce(lp.lat, lv.start_lat), coalesce(lp.lon, lv.start_lon), "
    "(SELECT count(*) FROM violations o WHERE o.terminal_id = v.terminal_id AND "
    "o.state <> 'closed')" HW_CD_RETIRED_FROM
    " LEFT JOIN LATERAL (SELECT coalesce(x.last_at, x.ended_at, x.started_at) AS last_at, "
    "x.start_lat, x.start_lon FROM violations x WHERE x.terminal_id = v.terminal_id AND "
    "x.kind = 'retired_class' ORDER BY 1 DESC LIMIT 1) lv ON true "
    "LEFT JOIN LATERAL (SELECT p.lat, p.lon FROM positions p WHERE p.terminal_id = "
    "v.terminal_id AND p.ts <= lv.last_at AND p.ts > lv.last_at - interval '1 day' "
    "ORDER BY p.ts DESC LIMIT 1) lp ON true "
    "WHERE" HW_CD_RETIRED_WHERE " AND v.terminal_id IS NOT NULL AND "
    "v.region LIKE ANY($1::text[]) AND v.terminal_id > $2 ORDER BY v.terminal_id LIMIT $3";

static const hw_cd_col hw_cd_phaseout_cols[] = {
    {"plate", HW_COL_TEXT},          {"plate_colour", HW_COL_INT},    {"terminal_id", HW_COL_TEXT},
    {"region", HW_COL_TEXT},         {"enterprise", HW_COL_TEXT},     {"class", HW_COL_TEXT},
    {"retired_after", HW_COL_TEXT},  {"status", HW_COL_TEXT},         {"last_fix", HW_COL_TIME},
    {"days_moved", HW_COL_INT},      {"days_online", HW_COL_INT},     {"km_since", HW_COL_NUM},
    {"first_moved", HW_COL_TEXT},    {"last_moved", HW_COL_TEXT},     {"violations", HW_COL_INT},
    {"violations_open", HW_COL_INT}, {"violation_states", HW_COL_TEXT},
};

/* $1 scope, $2 region prefix, $3 --since day number or NULL, $4 phaseout_min_km. Days are
 * counted from the later of the day after retired_after and --since. Every vehicle of a retired
 * class is listed, whatever its status and whether it has a terminal: the list is the evidence
 * of who is still registered as well as who still drives. */
static const char hw_cd_phaseout_sql[] =
    "WITH v AS ("
    " SELECT v.plate, v.plate_colour, v.terminal_id, v.region, v.enterprise, v.class_code,"
    "  c.retired_after, v.status,"
    "  greatest(c.retired_after + 1, date '1970-01-01' + $3::integer) AS count_from"
    HW_CD_RETIRED_FROM " WHERE" HW_CD_RETIRED_WHERE " AND " HW_CD_REGION("v.region") "),"
    " d AS ("
    " SELECT v.terminal_id, max(x.last_fix) AS last_fix,"
    "  count(*) FILTER (WHERE x.day >= v.count_from AND x.km_total > 0"
    "   AND x.km_total >= $4::double precision) AS moved,"
    "  count(*) FILTER (WHERE x.day >= v.count_from AND x.online) AS online,"
    "  coalesce(sum(x.km_total) FILTER (WHERE x.day >= v.count_from), 0) AS km,"
    "  min(x.day) FILTER (WHERE x.day >= v.count_from AND x.km_total > 0"
    "   AND x.km_total >= $4::double precision) AS first_moved,"
    "  max(x.day) FILTER (WHERE x.day >= v.count_from AND x.km_total > 0"
    "   AND x.km_total >= $4::double precision) AS last_moved"
    " FROM v JOIN vehicle_daily x ON x.terminal_id = v.terminal_id GROUP BY v.terminal_id),"
    " s AS ("
    " SELECT x.terminal_id, x.state, count(*) AS n FROM violations x JOIN v USING (terminal_id)"
    " WHERE x.kind = 'retired_class' AND ($3::integer IS NULL OR x.started_at >= "
    HW_CD_MIDNIGHT("$3") ") GROUP BY x.terminal_id, x.state),"
    " w AS ("
    " SELECT terminal_id, sum(n) AS n, coalesce(sum(n) FILTER (WHERE state <> 'closed'), 0) AS open,"
    "  string_agg(state || ' ' || n, ', ' ORDER BY"
    "   array_position(ARRAY['open', 'notified', 'rectifying', 'closed'], state)) AS states"
    " FROM s GROUP BY terminal_id)"
    " SELECT v.plate, v.plate_colour, v.terminal_id, v.region, v.enterprise, v.class_code,"
    "  v.retired_after::text, v.status, " HW_CD_TS("d.last_fix") ","
    "  coalesce(d.moved, 0), coalesce(d.online, 0), round(coalesce(d.km, 0)::numeric, 3),"
    "  d.first_moved::text, d.last_moved::text, coalesce(w.n, 0), coalesce(w.open, 0), w.states"
    " FROM v LEFT JOIN d USING (terminal_id) LEFT JOIN w USING (terminal_id)"
    " ORDER BY coalesce(d.moved, 0) DESC, v.plate, v.plate_colour";

static const hw_cd_col hw_cd_audit_cols[] = {
    {"plate", HW_COL_TEXT},         {"plate_colour", HW_COL_INT},  {"terminal_id", HW_COL_TEXT},
    {"region", HW_COL_TEXT},        {"enterprise", HW_COL_TEXT},   {"class", HW_COL_TEXT},
    {"axles", HW_COL_INT},          {"total_mass_kg", HW_COL_INT}, {"curb_mass_kg", HW_COL_INT},
    {"rated_load_kg", HW_COL_INT},  {"limit_kg", HW_COL_INT},      {"reasons", HW_COL_TEXT},
    {"detail", HW_COL_TEXT},
};
#define HW_CD_AUDIT_PG_COLS 10 /* the columns before limit_kg come from the query */

/* $1 scope, $2 region prefix. Active vehicles with any declared figure; the rules are C's. */
static const char hw_cd_audit_sql[] =
    "SELECT plate, plate_colour, terminal_id, region, enterprise, class_code, axles,"
    " total_mass_kg, curb_mass_kg, rated_load_kg FROM vehicles"
    " WHERE status = 'active' AND (axles IS NOT NULL OR total_mass_kg IS NOT NULL"
    " OR curb_mass_kg IS NOT NULL OR rated_load_kg IS NOT NULL) AND " HW_CD_REGION("region")
    " ORDER BY region, enterprise NULLS LAST, plate, plate_colour";

static const hw_cd_col hw_cd_movers_cols[] = {
    {"enterprise", HW_COL_TEXT},         {"plate", HW_COL_TEXT},
    {"terminal_id", HW_COL_TEXT},        {"region", HW_COL_TEXT},
    {"episodes", HW_COL_INT},            {"episodes_open", HW_COL_INT},
    {"first_started_at", HW_COL_TIME},   {"last_started_at", HW_COL_TIME},
    {"km_total", HW_COL_NUM},            {"km_max", HW_COL_NUM},
    {"longest_gap_s", HW_COL_INT},       {"enterprise_vehicles", HW_COL_INT},
    {"enterprise_episodes", HW_COL_INT},
};

/* $1 scope, $2 region prefix (both on the violation's own region, copied when it was found, as
 * every violation list), $3 first day, $4 last day (started_at, GMT+8; NULL: open-ended).
 * measured is the displacement in metres (rules/rule_offline.c), evidence.gap_s the silence. A
 * vehicle's plate, region and enterprise are those of its latest episode. */
static const char hw_cd_movers_sql[] =
    "WITH x AS ("
    " SELECT * FROM violations WHERE kind = 'offline_displacement' AND " HW_CD_REGION("region")
    " AND ($3::integer IS NULL OR started_at >= " HW_CD_MIDNIGHT("$3") ")"
    " AND ($4::integer IS NULL OR started_at < " HW_CD_MIDNIGHT("($4::integer + 1)") ")),"
    " g AS ("
    " SELECT terminal_id,"
    "  (array_agg(enterprise ORDER BY started_at DESC, id DESC))[1] AS enterprise,"
    "  (array_agg(plate ORDER BY started_at DESC, id DESC))[1] AS plate,"
    "  (array_agg(region ORDER BY started_at DESC, id DESC))[1] AS region,"
    "  count(*) AS n, count(*) FILTER (WHERE state <> 'closed') AS open,"
    "  min(started_at) AS first_at, max(started_at) AS last_at,"
    "  round((coalesce(sum(measured), 0) / 1000)::numeric, 3) AS km,"
    "  round((coalesce(max(measured), 0) / 1000)::numeric, 3) AS km_max,"
    "  max(CASE WHEN jsonb_typeof(evidence->'gap_s') = 'number'"
    "   THEN (evidence->>'gap_s')::numeric END)::bigint AS gap"
    " FROM x GROUP BY terminal_id)"
    " SELECT enterprise, plate, terminal_id, region, n, open, " HW_CD_TS("first_at") ","
    "  " HW_CD_TS("last_at") ", km, km_max, gap,"
    "  count(*) OVER (PARTITION BY enterprise), sum(n) OVER (PARTITION BY enterprise)"
    " FROM g ORDER BY 13 DESC, 1 NULLS LAST, 5 DESC, 3";

static const struct {
  const char *sql;
  const hw_cd_col *cols;
  size_t ncols;
  size_t pgcols; /* columns of the query's result */
} hw_cd_lists[HW_CD__N] = {
    [HW_CD_PHASEOUT] = {hw_cd_phaseout_sql, hw_cd_phaseout_cols, HW_ARRAY_SIZE(hw_cd_phaseout_cols),
                        HW_ARRAY_SIZE(hw_cd_phaseout_cols)},
    [HW_CD_REGISTRY_AUDIT] = {hw_cd_audit_sql, hw_cd_audit_cols, HW_ARRAY_SIZE(hw_cd_audit_cols),
                              HW_CD_AUDIT_PG_COLS},
    [HW_CD_OFFLINE_MOVERS] = {hw_cd_movers_sql, hw_cd_movers_cols, HW_ARRAY_SIZE(hw_cd_movers_cols),
                              HW_ARRAY_SIZE(hw_cd_movers_cols)},
};

const char *hw_cd_sql(hw_cd_list list) { return hw_cd_lists[list].sql; }

const hw_cd_col *hw_cd_columns(hw_cd_list list, size_t *n) {
  *n = hw_cd_lists[list].ncols;
  return hw_cd_lists[list].cols;
}

int hw_cd_bind(const hw_cd_request *r, const hw_cd_config *cfg, const char *scope,
               hw_cd_bufs *bufs, const char *params[HW_CD_MAX_PARAMS]) {
  int n = 0;
  params[n++] = scope;
  snprintf(bufs->b[1], sizeof bufs->b[1], "%s", r->region);
  /* 320000 is the province and everything in it: the prefix is the code without its zeros of
   * the levels below (as kpi_query.c). */
  size_t own = !r->region[0] ? 0 : !strcmp(r->region + 2, "0000") ? 2 : !strcmp(r->region + 4, "00") ? 4 : 6;
  bufs->b[1][own] = '\0';
  params[n++] = bufs->b[1];
  switch (r->list) {
  case HW_CD_PHASEOUT:
    snprintf(bufs->b[2], sizeof bufs->b[2], "%d", r->since_day);
    params[n++] = r->has_since ? bufs->b[2] : NULL;
    snprintf(bufs->b[3], sizeof bufs->b[3], "%u", cfg->phaseout_min_km);
    params[n++] = bufs->b[3];
    break;
  case HW_CD_OFFLINE_MOVERS:
    snprintf(bufs->b[2], sizeof bufs->b[2], "%d", r->from_day);
    params[n++] = r->has_from ? bufs->b[2] : NULL;
    snprintf(bufs->b[3], sizeof bufs->b[3], "%d", r->to_day);
    params[n++] = r->has_to ? bufs->b[3] : NULL;
    break;
  default:
    break;
  }
  return n;
}

/* --- the table -------------------------------------------------------------------------------- */

void hw_cd_table_free(hw_cd_table *t) {
  if (t->cells)
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
      free(t->cells[i]);
  free(t->cells);
  t->cells = NULL;
  t->nrows = 0;
}

static int64_t hw_cd_kg(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The audit's computed cells of one flagged row: limit_kg, reasons, detail (owned strings). */
static int hw_cd_audit_cells(const hw_audit_vehicle *v, unsigned bits, const hw_cd_config *cfg,
                             char **out) {
  char buf[512];
  uint32_t lim = v->axles > 0 ? hw_audit_limit_kg((unsigned)v->axles, hw_audit_articulated(v->class_code)) : 0;
  if (lim) {
    snprintf(buf, sizeof buf, "%u", lim);
    if (!(out[0] = strdup(buf)))
      return -ENOMEM;
  }
  hw_audit_reason_codes(bits, buf, sizeof buf);
  if (!(out[1] = strdup(buf)))
    return -ENOMEM;
  size_t off = 0;
  buf[0] = '\0';
  if (bits & HW_AUDIT_MASS_MISMATCH)
    off += (size_t)snprintf(buf + off, sizeof buf - off,
                            "total %lld kg vs curb %lld + rated load %lld = %lld kg (more than %u "
                            "kg apart)",
                            (long long)v->total_kg, (long long)v->curb_kg, (long long)v->load_kg,
                            (long long)(v->curb_kg + v->load_kg), cfg->audit_tolerance_kg);
  if ((bits & HW_AUDIT_OVER_LIMIT) && off < sizeof buf)
    off += (size_t)snprintf(buf + off, sizeof buf - off,
                            "%stotal %lld kg above the GB 1589-2016 limit of %u kg for %d axles%s",
                            off ? "; " : "", (long long)v->total_kg, lim, v->axles,
                            hw_audit_articulated(v->class_code) ? " (articulated)" : "");
  if ((bits & HW_AUDIT_LOAD_SMALL) && off < sizeof buf)
    snprintf(buf + off, sizeof buf - off,
             "%srated load %lld kg below %u %% of the curb mass %lld kg", off ? "; " : "",
             (long long)v->load_kg, cfg->audit_min_load_pct, (long long)v->curb_kg);
  return (out[2] = strdup(buf)) ? 0 : -ENOMEM;
}

int hw_cd_table_build(const hw_cd_request *r, const hw_cd_config *cfg, const PGresult *res,
                      size_t limit, hw_cd_table *t) {
  memset(t, 0, sizeof *t);
  t->cols = hw_cd_lists[r->list].cols;
  t->ncols = hw_cd_lists[r->list].ncols;
  size_t pgcols = hw_cd_lists[r->list].pgcols;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQnfields(res) != pgcols)
    return -EIO;
  size_t n = (size_t)PQntuples(res);
  if (!(t->cells = calloc(n * t->ncols + 1, sizeof *t->cells)))
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    unsigned bits = 0;
    hw_audit_vehicle v;
    if (r->list == HW_CD_REGISTRY_AUDIT) {
      v = (hw_audit_vehicle){.class_code = PQgetvalue(res, (int)i, 5),
                             .axles = (int)hw_cd_kg(res, (int)i, 6),
                             .total_kg = hw_cd_kg(res, (int)i, 7),
                             .curb_kg = hw_cd_kg(res, (int)i, 8),
                             .load_kg = hw_cd_kg(res, (int)i, 9)};
      if (!(bits = hw_audit_check(&v, cfg)))
        continue;
    }
    if (limit && t->nrows == limit) {
      t->truncated = 1;
      break;
    }
    char **row = t->cells + t->nrows * t->ncols;
    t->nrows++; /* counted before it is filled: a failure below leaves it freeable */
    for (size_t c = 0; c < pgcols; c++)
      if (!PQgetisnull(res, (int)i, (int)c) && !(row[c] = strdup(PQgetvalue(res, (int)i, (int)c))))
        return -ENOMEM;
    if (r->list == HW_CD_REGISTRY_AUDIT && hw_cd_audit_cells(&v, bits, cfg, row + pgcols))
      return -ENOMEM;
  }
  return 0;
}

int hw_cd_run(PGconn *conn, const hw_cd_request *r, const hw_cd_config *cfg, const char *scope,
              size_t limit, hw_cd_table *t) {
  hw_cd_bufs bufs;
  const char *params[HW_CD_MAX_PARAMS];
  int np = hw_cd_bind(r, cfg, scope, &bufs, params);
  memset(t, 0, sizeof *t);
  PGresult *res = PQexecParams(conn, hw_cd_sql(r->list), np, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_error("crackdown", hw_cd_list_name(r->list), "query failed: %s", hw_pg_errmsg(res));
    PQclear(res);
    return -EIO;
  }
  int rc = hw_cd_table_build(r, cfg, res, limit, t);
  if (rc == -EIO)
    hw_error("crackdown", hw_cd_list_name(r->list), "the query's result has %d columns", PQnfields(res));
  PQclear(res);
  return rc;
}
