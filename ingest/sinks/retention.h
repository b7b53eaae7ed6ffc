/* The data lifecycle of positions (schema/021_retention.sql, docs/retention.md): daily partitions
 * older than retain_days are dropped whole (never DELETE), those older than archive_after_days
 * moved to archive_tablespace. Violations are never touched. One runner at a time across every
 * node: the session advisory lock HW_RETENTION_LOCK_KEY, taken with try (a node that finds it held
 * skips its round). The statements are shared by `haulwatch retention run` (cli, blocking) and the
 * daemon's periodic runner below (its own non-blocking connection and timer). */
#ifndef HW_RETENTION_H
#define HW_RETENTION_H

#include <uv.h>

#include "base/common.h"

/* The dynamic supervision rules' six months, in days: the smallest retain_positions_days
 * accepted other than 0 (keep forever). */
#define HW_RETENTION_MIN_DAYS 184
#define HW_RETENTION_LOCK_KEY "7100184"
#define HW_RETENTION_LOCK_TIMEOUT_MS 5000

/* $1 retain_days, $2 archive_tablespace ('' none), $3 archive_after_days: rows (partition, day,
 * action 'drop'|'move'), oldest first. */
#define HW_RETENTION_SQL_PLAN \
  "SELECT partition, day::text, action FROM hw_retention_plan($1::integer, $2, $3::integer)"
/* $1 partition, $2 action, $3 archive_tablespace, $4 lock timeout ms: one row, what was done. */
#define HW_RETENTION_SQL_APPLY "SELECT hw_retention_apply($1, $2, $3, $4::integer)"
#define HW_RETENTION_SQL_LOCK "SELECT pg_try_advisory_lock(" HW_RETENTION_LOCK_KEY ")"
#define HW_RETENTION_SQL_UNLOCK "SELECT pg_advisory_unlock(" HW_RETENTION_LOCK_KEY ")"

/* The settings, as serve and `retention run` both take them (base/options.h): a settings struct
 * with uint32_t retain_positions_days, archive_after_days and char archive_tablespace[64]. */
#define HW_RETENTION_OPTIONS(st)                                                                   \
  HW_OPT_N(st, retain_positions_days, HW_XSTR(HW_RETENTION_MIN_DAYS), 0, 36500, NULL,             \
           "drop daily partitions of positions whose day is more than this many days ago (never "   \
           "DELETE); at least 184, six months, the supervision rules' minimum; 0 = keep forever; "  \
           "violations are never removed"),                                                        \
  HW_OPT_S(st, archive_tablespace, "", NULL,                                                       \
           "move daily partitions of positions older than archive_after_days to this PostgreSQL "   \
           "tablespace (empty: never move)"),                                                      \
  HW_OPT_N(st, archive_after_days, "0", 0, 36500, NULL,                                            \
           "... after this many days (0: never move); below retain_positions_days")

typedef struct hw_retention_config {
  uint32_t retain_days;         /* 0: keep positions forever */
  const char *archive_tablespace; /* "" or NULL: no moves; copied */
  uint32_t archive_after_days;  /* 0: no moves */
  uint32_t interval_ms;         /* between rounds; the first comes min(interval, 10 s) after start */
} hw_retention_config;

/* 0 when the settings are usable, else -EINVAL with the reason written to why (cap bytes). */
int hw_retention_check(const hw_retention_config *cfg, char *why, size_t cap) HW_MUST_CHECK;

/* 1 when the settings ask for any work (something to drop or to move). */
int hw_retention_enabled(const hw_retention_config *cfg);

typedef struct hw_retention hw_retention;

typedef struct hw_retention_stats {
  uint64_t rounds, rounds_skipped_locked, dropped, moved, failures;
} hw_retention_stats;

/* The daemon's runner: its own connection to conninfo (copied), a round every interval_ms. */
int hw_retention_start(hw_retention **out, uv_loop_t *loop, const char *conninfo,
                       const hw_retention_config *cfg) HW_MUST_CHECK;
void hw_retention_get_stats(const hw_retention *r, hw_retention_stats *out);
/* Abandons a round in progress (the statement running finishes or rolls back in the database;
 * the session lock goes with the connection), then closes.
 * done_cb (may be NULL) after everything is closed. */
void hw_retention_stop(hw_retention *r, void (*done_cb)(void *arg), void *arg);

#endif
