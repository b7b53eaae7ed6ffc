/* The JT/T 809 assessment figures per subordinate platform for a period (README, "JT/T 809
 * platforms"): inspection response rate (查岗响应率) and link availability (平台连通率), one SQL
 * statement over platform_inspections and platform_links (schema 013, 016).
 *
 * The period is [from, to): each bound a PostgreSQL timestamp, or a day YYYY-MM-DD (GMT+8), in
 * which case --to means the end of that day; the end is cut at now(). An inspection (kind
 * inspect) counts in the period it was created in; it is answered in time when its answer came
 * within its answer_min minutes (10 unless the inspect command said otherwise). A link is up from
 * its row's up_at to its down_at; a row still open counts up to now (a daemon that died leaves
 * its rows open: the next start's logins do not close them, see README). Overlapping rows (a
 * second login replacing the first) count once. A platform registered during the period is judged
 * from its registration on (period_s is its share of the period). Rates are fractions rounded to four decimals,
 * NULL without a denominator. */
#ifndef HW_PLATFORM_KPI_H
#define HW_PLATFORM_KPI_H

#include <libpq-fe.h>

#include "base/common.h"

#define HW_PLATFORM_KPI_NCOLS 12
extern const char *const hw_platform_kpi_columns[HW_PLATFORM_KPI_NCOLS];

/* Blocking. from, to: as above (text, checked by PostgreSQL); platform: one id or NULL for all.
 * *out: one row per platform, ordered by id, HW_PLATFORM_KPI_NCOLS text columns (column 0 the
 * id, the others numbers). 0, or -EINVAL (bounds refused: message in err), -EIO. */
int hw_platform_kpi_run(PGconn *conn, const char *from, const char *to, const char *platform,
                        PGresult **out, char *err, size_t errlen) HW_MUST_CHECK;

#endif
