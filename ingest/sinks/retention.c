/* The daemon's retention runner (retention.h): a timer, its own non-blocking connection, and one
 * round at a time: try the advisory lock, read the plan, drop or move each partition in its own
 * statement (each logged), release the lock. Owns the connection, the timer and the plan. */
#include "sinks/retention.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_async.h"

#define HW_RET "retention"
#define HW_RET_FIRST_MS 10000u  /* the first round, unless the interval is shorter */
#define HW_RET_MAX_PLAN 4096    /* partitions handled per round: the rest in the next */

typedef struct hw_ret_item {
  char partition[64], day[16], action[8];
} hw_ret_item;

struct hw_retention {
  uv_loop_t *loop;
  hw_pg_async *pg; /* owned */
  uv_timer_t timer;
  hw_retention_config cfg; /* archive_tablespace points at tablespace */
  char tablespace[128];
  int busy;     /* a round is out */
  int stopping;
  hw_ret_item *plan; /* owned, nplan of them; next is the one being applied */
  size_t nplan, next;
  uint64_t round_dropped, round_moved, round_failed;
  hw_retention_stats stats;
  void (*done_cb)(void *);
  void *done_arg;
};

int hw_retention_check(const hw_retention_config *cfg, char *why, size_t cap) {
  const char *ts = cfg->archive_tablespace ? cfg->archive_tablespace : "";
  if (cfg->retain_days != 0 && cfg->retain_days < HW_RETENTION_MIN_DAYS) {
    snprintf(why, cap, "retain_positions_days %u is below %u: positions must be kept at least six "
                       "months (0 keeps them forever)", cfg->retain_days, HW_RETENTION_MIN_DAYS);
    return -EINVAL;
  }
  if (strlen(ts) >= 64) {
    snprintf(why, cap, "archive_tablespace is longer than a PostgreSQL name (63 bytes)");
    return -EINVAL;
  }
  if ((ts[0] != 0) != (cfg->archive_after_days != 0)) {
    snprintf(why, cap, "archive_tablespace and archive_after_days go together (both set or neither)");
    return -EINVAL;
  }
  if (ts[0] && cfg->retain_days && cfg->archive_after_days >= cfg->retain_days) {
    snprintf(why, cap, "archive_after_days %u is not below retain_positions_days %u: nothing would "
                       "ever be moved", cfg->archive_after_days, cfg->retain_days);
    return -EINVAL;
  }
  return 0;
}

int hw_retention_enabled(const hw_retention_config *cfg) {
  return cfg->retain_days != 0 ||
         (cfg->archive_tablespace && cfg->archive_tablespace[0] && cfg->archive_after_days);
}

static const char *hw_ret_err(const PGresult *res) {
  const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  return m ? m : res ? PQresultErrorMessage(res) : "connection lost";
}

static void hw_ret_round_end(hw_retention *r) {
  r->busy = 0;
  free(r->plan);
  r->plan = NULL;
  r->nplan = r->next = 0;
}

static void hw_ret_on_unlock(void *arg, const PGresult *res) {
  hw_retention *r = arg;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
    hw_warn(HW_RET, NULL, "releasing the retention lock failed: %s", hw_ret_err(res));
  if (r->round_dropped || r->round_moved || r->round_failed)
    hw_info(HW_RET, NULL, "round done: %llu partitions dropped, %llu moved, %llu failed",
            (unsigned long long)r->round_dropped, (unsigned long long)r->round_moved,
            (unsigned long long)r->round_failed);
  hw_ret_round_end(r);
}

static void hw_ret_apply_next(hw_retention *r);

static void hw_ret_on_apply(void *arg, const PGresult *res) {
  hw_retention *r = arg;
  hw_ret_item *it = &r->plan[r->next];
  if (!res) { /* stopping or the connection went: the session lock went with it */
    hw_warn(HW_RET, NULL, "partition %s (%s): %s not confirmed: connection lost", it->partition,
            it->day, it->action);
    hw_ret_round_end(r);
    return;
  }
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
    hw_info(HW_RET, NULL, "partition %s (day %s UTC): %s", it->partition, it->day,
            PQgetvalue(res, 0, 0));
    if (!strcmp(it->action, "drop")) {
      r->stats.dropped++;
      r->round_dropped++;
    } else {
      r->stats.moved++;
      r->round_moved++;
    }
  } else {
    /* Most often lock_timeout (writers busy on it): the next round tries again. */
    hw_warn(HW_RET, NULL, "partition %s (day %s UTC): %s failed: SQLSTATE %s: %s; next round tries "
            "again", it->partition, it->day, it->action,
            PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
                                                      : "?", hw_ret_err(res));
    r->stats.failures++;
    r->round_failed++;
  }
  r->next++;
  hw_ret_apply_next(r);
}

static void hw_ret_apply_next(hw_retention *r) {
  if (r->stopping) {
    hw_ret_round_end(r);
    return;
  }
  if (r->next >= r->nplan) {
    if (hw_pg_async_query(r->pg, HW_RETENTION_SQL_UNLOCK, 0, NULL, hw_ret_on_unlock, r)) {
      hw_warn(HW_RET, NULL, "cannot queue the lock release");
      hw_ret_round_end(r);
    }
    return;
  }
  hw_ret_item *it = &r->plan[r->next];
  char tmo[16];
  snprintf(tmo, sizeof tmo, "%u", HW_RETENTION_LOCK_TIMEOUT_MS);
  const char *params[4] = {it->partition, it->action, r->tablespace, tmo};
  if (hw_pg_async_query(r->pg, HW_RETENTION_SQL_APPLY, 4, params, hw_ret_on_apply, r)) {
    hw_warn(HW_RET, NULL, "cannot queue partition %s: round ended", it->partition);
    hw_ret_round_end(r);
  }
}

static void hw_ret_on_plan(void *arg, const PGresult *res) {
  hw_retention *r = arg;
  if (!res) {
    hw_ret_round_end(r);
    return;
  }
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_warn(HW_RET, NULL, "reading the plan failed: %s", hw_ret_err(res));
    r->stats.failures++;
    r->nplan = 0;
    hw_ret_apply_next(r); /* releases the lock */
    return;
  }
  size_t n = (size_t)PQntuples(res);
  if (n > HW_RET_MAX_PLAN)
    n = HW_RET_MAX_PLAN;
  r->plan = n ? calloc(n, sizeof *r->plan) : NULL;
  if (n && !r->plan) {
    hw_warn(HW_RET, NULL, "out of memory for the plan of %zu partitions", n);
    n = 0;
  }
  for (size_t i = 0; i < n; i++) {
    snprintf(r->plan[i].partition, sizeof r->plan[i].partition, "%s", PQgetvalue(res, (int)i, 0));
    snprintf(r->plan[i].day, sizeof r->plan[i].day, "%s", PQgetvalue(res, (int)i, 1));
    snprintf(r->plan[i].action, sizeof r->plan[i].action, "%s", PQgetvalue(res, (int)i, 2));
  }
  r->nplan = n;
  r->next = 0;
  hw_ret_apply_next(r);
}

static void hw_ret_on_lock(void *arg, const PGresult *res) {
  hw_retention *r = arg;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    if (res)
      hw_warn(HW_RET, NULL, "taking the retention lock failed: %s", hw_ret_err(res));
    hw_ret_round_end(r);
    return;
  }
  if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
    r->stats.rounds_skipped_locked++;
    hw_debug(HW_RET, NULL, "another node holds the retention lock: round skipped");
    hw_ret_round_end(r);
    return;
  }
  r->stats.rounds++;
  r->round_dropped = r->round_moved = r->round_failed = 0;
  char days[16], after[16];
  snprintf(days, sizeof days, "%u", r->cfg.retain_days);
  snprintf(after, sizeof after, "%u", r->cfg.archive_after_days);
  const char *params[3] = {days, r->tablespace, after};
  if (r->stopping || hw_pg_async_query(r->pg, HW_RETENTION_SQL_PLAN, 3, params, hw_ret_on_plan, r))
    hw_ret_round_end(r); /* the session lock goes with the connection when it closes */
}

static void hw_ret_on_timer(uv_timer_t *t) {
  hw_retention *r = t->data;
  if (r->busy || r->stopping)
    return; /* a long move still running: the next tick looks again */
  r->busy = 1;
  if (hw_pg_async_query(r->pg, HW_RETENTION_SQL_LOCK, 0, NULL, hw_ret_on_lock, r))
    r->busy = 0;
}

int hw_retention_start(hw_retention **out, uv_loop_t *loop, const char *conninfo,
                       const hw_retention_config *cfg) {
  char why[256];
  int rc = hw_retention_check(cfg, why, sizeof why);
  if (rc) {
    hw_error(HW_RET, NULL, "%s", why);
    return rc;
  }
  hw_retention *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->loop = loop;
  r->cfg = *cfg;
  snprintf(r->tablespace, sizeof r->tablespace, "%s",
           cfg->archive_tablespace ? cfg->archive_tablespace : "");
  r->cfg.archive_tablespace = r->tablespace;
  if (r->cfg.interval_ms == 0)
    r->cfg.interval_ms = 3600u * 1000u;
  if ((rc = hw_pg_async_start(&r->pg, loop, conninfo, HW_RET))) {
    free(r);
    return rc;
  }
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uint32_t first = r->cfg.interval_ms < HW_RET_FIRST_MS ? r->cfg.interval_ms : HW_RET_FIRST_MS;
  uv_timer_start(&r->timer, hw_ret_on_timer, first, r->cfg.interval_ms);
  hw_info(HW_RET, NULL, "positions kept %u days%s%s%s, a round every %u s",
          r->cfg.retain_days, r->cfg.retain_days ? "" : " (forever)",
          r->tablespace[0] ? ", moved to tablespace " : "", r->tablespace, r->cfg.interval_ms / 1000u);
  *out = r;
  return 0;
}

void hw_retention_get_stats(const hw_retention *r, hw_retention_stats *out) { *out = r->stats; }

static void hw_ret_timer_closed(uv_handle_t *h) {
  hw_retention *r = h->data;
  void (*cb)(void *) = r->done_cb;
  void *arg = r->done_arg;
  free(r->plan);
  free(r);
  if (cb)
    cb(arg);
}

static void hw_ret_pg_stopped(void *arg) {
  hw_retention *r = arg;
  uv_close((uv_handle_t *)&r->timer, hw_ret_timer_closed);
}

void hw_retention_stop(hw_retention *r, void (*done_cb)(void *arg), void *arg) {
  r->stopping = 1;
  r->done_cb = done_cb;
  r->done_arg = arg;
  uv_timer_stop(&r->timer);
  hw_pg_async_stop(r->pg, hw_ret_pg_stopped, r);
}
