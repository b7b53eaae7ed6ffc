/* What the monthly report (通报, README "Monthly report") reads besides the KPI rows of
 * sinks/kpi_query.h: violations of the month by kind, region and industry, the rectification
 * figures of the hazard list, and the overdue (督办) list; plus the ranking of the groups by
 * score, pure, so that a unit test can give it any scores.
 *
 * Scope is the KPI query's: violations of vehicles active in the registry as it is now, in the
 * region. Industry comes from the vehicle class through hw_monthly_industries, the one table
 * that maps them. Every query blocks; results belong to the caller (PQclear). */
#ifndef HW_MONTHLY_QUERY_H
#define HW_MONTHLY_QUERY_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "base/common.h"
#include "sinks/kpi_query.h"

typedef struct hw_monthly_request {
  hw_kpi_request cur;  /* the month */
  hw_kpi_request prev; /* the month before, same scope and grouping */
  char month[16];      /* YYYY-MM */
  char prev_month[16];
  uint32_t overdue_days; /* an item still open this many days after it started is overdue */
} hw_monthly_request;

/* month: YYYY-MM (GMT+8, 2000-02..2099-12); region: six digits or NULL/"". Groups: cities
 * (--by region --level city) without a region or for a province, enterprises for a city or a
 * county. 0, or -EINVAL with a reason for a person in err. */
int hw_monthly_request_parse(hw_monthly_request *r, const char *month, const char *region,
                             uint32_t overdue_days, char *err, size_t errlen) HW_MUST_CHECK;

/* Industry of a vehicle class (issue 9: freight, dangerous goods, passenger). A class not in the
 * table (one an operator added) is counted as "other", shown only when it has violations. */
typedef struct hw_industry_map {
  const char *class_code;
  const char *industry; /* key: freight | dangerous_goods | passenger */
} hw_industry_map;
extern const hw_industry_map hw_monthly_industries[];
extern const size_t hw_monthly_nindustries;
/* The industries in report order, with their labels. */
typedef struct hw_industry_name {
  const char *key, *zh, *en;
} hw_industry_name;
extern const hw_industry_name hw_monthly_industry_names[];
extern const size_t hw_monthly_nindustry_names;

/* Violations started in the month, counted three ways: rows (dim, key, count) with dim "kind"
 * (key: the kind), "region" (key: the vehicle's region rolled up to the request's level) or
 * "industry" (key: an industry key, or "other"); ordered by dim, then key. */
int hw_monthly_violations_run(PGconn *conn, const hw_monthly_request *r, PGresult **out)
    HW_MUST_CHECK;

/* The hazard list's rectification figures, as things stood at the cut-off (the end of the
 * month, or now when that is earlier), one row of bigint columns: opened (started in the
 * month), closed (of those, closed before the cut-off), closed_7d, closed_30d (closed at most 7
 * or 30 days after they started), still_open (not closed at the cut-off), overdue (still open
 * and started more than overdue_days before the cut-off). */
#define HW_MONTHLY_RECT_NCOLS 6
extern const char *const hw_monthly_rect_columns[HW_MONTHLY_RECT_NCOLS];
int hw_monthly_rectify_run(PGconn *conn, const hw_monthly_request *r, PGresult **out)
    HW_MUST_CHECK;

/* The 督办 list: every item in scope, of any month, still open at the cut-off and started more
 * than overdue_days before it; oldest first. Columns: id, kind, plate, enterprise, region,
 * started (GMT+8, YYYY-MM-DD HH24:MI), state (at the cut-off), days_open (whole days). */
#define HW_MONTHLY_OVERDUE_NCOLS 8
extern const char *const hw_monthly_overdue_columns[HW_MONTHLY_OVERDUE_NCOLS];
int hw_monthly_overdue_run(PGconn *conn, const hw_monthly_request *r, PGresult **out)
    HW_MUST_CHECK;

/* Ranking by score: highest first, groups without a score last, ties in group order (strcmp).
 * order[0..n) receives the indices of items in that order; rank[i] (for item i) is 1 + the
 * number of groups with a strictly higher score (equal scores share a rank), 0 without one. */
typedef struct hw_rank_item {
  const char *group;
  bool scored;
  double score;
} hw_rank_item;
void hw_monthly_rank(const hw_rank_item *items, size_t n, size_t *order, unsigned *rank);

/* Red and black lists from an order of hw_monthly_rank: the red list is the first min(5, scored)
 * scored groups, best first; the black list the last scored groups not on the red list, at most
 * five, worst first (so no group is on both). Indices into items; returns the counts. */
#define HW_MONTHLY_LIST_LEN 5
void hw_monthly_lists(const hw_rank_item *items, const size_t *order, size_t n,
                      size_t red[HW_MONTHLY_LIST_LEN], size_t *nred,
                      size_t black[HW_MONTHLY_LIST_LEN], size_t *nblack);

#endif
