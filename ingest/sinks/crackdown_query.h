/* The crackdown lists (README, "Crackdown lists"): the converted-tractor phase-out evidence, the
 * 大吨小标 registry audit and the offline movers. One module owns each list's SQL, the parsing of
 * its request, the binding of its parameters and the turning of the result into a table of text
 * cells, so that `haulwatch report phaseout|registry-audit|offline-movers`, the web API
 * (GET /api/v1/crackdown/...) and the monthly report run exactly the same thing.
 *
 * The queries are plain text with parameters: a caller with a blocking connection uses
 * hw_cd_run; the web process queues hw_cd_sql with hw_cd_bind's parameters on its own pool and
 * hands the result to hw_cd_table_build. Region scope: every list takes a PostgreSQL text[]
 * literal of LIKE patterns (the web user's scope; "{%}" for the command line) besides the
 * request's own --region.
 *
 * "Moved" (phaseout): a GMT+8 day after the class's retired_after (and from --since) whose
 * vehicle_daily row has km_total > 0 and km_total >= phaseout_min_km, i.e. a track of at least
 * that length on qualified, drift-free fixes; a day with fixes but less distance (a parked truck
 * reporting, GPS jitter) is counted as online, not as moved. */
#ifndef HW_CRACKDOWN_QUERY_H
#define HW_CRACKDOWN_QUERY_H

#include <libpq-fe.h>

#include "base/common.h"
#include "base/table.h"

typedef enum { HW_CD_PHASEOUT = 0, HW_CD_REGISTRY_AUDIT, HW_CD_OFFLINE_MOVERS, HW_CD__N } hw_cd_list;

/* The settings of the lists (serve nothing; `report` and `web` take them, defaults here once). */
#define HW_CD_DEF_PHASEOUT_MIN_KM 1       /* km of track in a day for it to count as moved */
#define HW_CD_DEF_AUDIT_TOLERANCE_KG 300  /* total vs curb + rated load; the crew (65 kg a seat) */
#define HW_CD_DEF_AUDIT_MIN_LOAD_PCT 50   /* heavy vehicle: rated load below this % of curb mass */
typedef struct hw_cd_config {
  uint32_t phaseout_min_km;
  uint32_t audit_tolerance_kg;
  uint32_t audit_min_load_pct;
} hw_cd_config;
void hw_cd_config_default(hw_cd_config *cfg);

/* --- the registry audit's rules (pure; unit-tested) ----------------------------------------- */

/* GB 1589-2016 limits of total mass, one table: rigid trucks of 2, 3 and 4 axles; articulated
 * (semi-trailer tractor) 5 and 6 axles. 0 when the table has no limit for that combination (it is
 * then not judged against one). */
uint32_t hw_audit_limit_kg(unsigned axles, int articulated);

#define HW_AUDIT_MASS_MISMATCH 1u /* |total - (curb + rated load)| > audit_tolerance_kg */
#define HW_AUDIT_OVER_LIMIT 2u    /* total > the GB 1589-2016 limit for the axle count */
#define HW_AUDIT_LOAD_SMALL 4u    /* heavy, rated load * 100 < curb mass * audit_min_load_pct */
#define HW_AUDIT_HEAVY_KG 12000   /* total mass from which any class is heavy (N3, GB/T 15089) */
/* A vehicle's declared figures; -1 for one not declared. class: the class code. */
typedef struct hw_audit_vehicle {
  const char *class_code;
  int axles;
  int64_t total_kg, curb_kg, load_kg;
} hw_audit_vehicle;
/* The reasons (HW_AUDIT_* bits, 0: not flagged) for v. A rule whose figures are not all declared
 * is not applied. Articulated: class semi_trailer_tractor. Heavy: class heavy_truck or
 * semi_trailer_tractor, or a total mass of at least HW_AUDIT_HEAVY_KG. */
unsigned hw_audit_check(const hw_audit_vehicle *v, const hw_cd_config *cfg);
/* The reason codes of bits, comma-separated ("mass_mismatch,over_limit"), into out. */
void hw_audit_reason_codes(unsigned bits, char *out, size_t cap);

/* --- requests ------------------------------------------------------------------------------ */

typedef struct hw_cd_request {
  hw_cd_list list;
  char region[7];          /* six digits, or "" for every region (within the scope) */
  int has_since;           /* phaseout: count from this day on (else the day after retirement) */
  int32_t since_day;       /* GMT+8 day number */
  int has_from, has_to;    /* offline-movers: episodes started in [from, to], both included */
  int32_t from_day, to_day;
} hw_cd_request;

/* The list by its command/route name (phaseout, registry-audit, offline-movers); -EINVAL. */
int hw_cd_list_of(const char *name, hw_cd_list *out) HW_MUST_CHECK;
const char *hw_cd_list_name(hw_cd_list list);

/* Parses the text fields (NULL or "" = not given): region six digits; since, from, to
 * YYYY-MM-DD (GMT+8). since only for phaseout, from/to only for offline-movers. 0, or -EINVAL
 * with a reason for a person in err. */
int hw_cd_request_parse(hw_cd_request *r, hw_cd_list list, const char *region, const char *since,
                        const char *from, const char *to, char *err, size_t errlen) HW_MUST_CHECK;

/* --- the queries ---------------------------------------------------------------------------- */

#define HW_CD_MAX_PARAMS 5
typedef struct hw_cd_bufs {
  char b[HW_CD_MAX_PARAMS][16];
} hw_cd_bufs;
/* The list's statement. */
const char *hw_cd_sql(hw_cd_list list);
/* Its parameters into params (pointing into bufs and at scope, which must outlive the query);
 * returns their count. scope: text[] literal of LIKE patterns ("{%}": all). */
int hw_cd_bind(const hw_cd_request *r, const hw_cd_config *cfg, const char *scope,
               hw_cd_bufs *bufs, const char *params[HW_CD_MAX_PARAMS]);

/* The page's live converted-tractor panel (GET /api/v1/converted-tractors), kept beside the
 * phase-out list so that both start from the same retired vehicles: $1 scope, $2 cursor (the
 * last terminal id of the previous page, '' first), $3 limit. 11 columns: terminal_id, plate,
 * region, enterprise, class, retired_after, moved (a retired_class violation exists), last moved
 * at, lat, lon, open violations. */
extern const char hw_cd_tractors_sql[];

/* --- the result as a table ------------------------------------------------------------------ */

/* A column: its name and type, as every table writer takes them (base/table.h). */
typedef hw_table_col hw_cd_col;
/* The list's columns (static), their count in *n. */
const hw_cd_col *hw_cd_columns(hw_cd_list list, size_t *n);

typedef struct hw_cd_table {
  const hw_cd_col *cols; /* static */
  size_t ncols, nrows;
  int truncated;         /* more rows than the limit asked */
  char **cells;          /* owned: nrows * ncols, each owned, NULL for no value */
} hw_cd_table;
/* The rows of res (a result of hw_cd_sql(r->list)), at most limit (0: all), the audit's rules
 * applied (only flagged vehicles, with their reasons). 0, -EIO (res is not the list's result:
 * wrong shape), -ENOMEM; *t is valid (freeable) in every case. */
int hw_cd_table_build(const hw_cd_request *r, const hw_cd_config *cfg, const PGresult *res,
                      size_t limit, hw_cd_table *t) HW_MUST_CHECK;
void hw_cd_table_free(hw_cd_table *t);
static inline const char *hw_cd_cell(const hw_cd_table *t, size_t row, size_t col) {
  return t->cells[row * t->ncols + col];
}

/* Blocking: runs the list's query on conn and builds *t (free with hw_cd_table_free). 0, -EIO
 * (message logged), -ENOMEM. */
int hw_cd_run(PGconn *conn, const hw_cd_request *r, const hw_cd_config *cfg, const char *scope,
              size_t limit, hw_cd_table *t) HW_MUST_CHECK;

#endif
