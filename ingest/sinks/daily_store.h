/* The assessment's daily figures per vehicle (rules/daystats.h), kept as fixes flow and written
 * to vehicle_daily (schema 012) every flush_ms and at a clean stop.
 *
 * In memory, per terminal (hw_terminal.daily): the current day's figures and the track
 * reference, updated by each fix that comes in device-time order, plus finished days not yet
 * written. A fix out of order (back-fill, a resend, a second fix of the same second) or the first
 * fix of a terminal since start cannot be applied incrementally: the terminal is marked dirty
 * from that fix's day and, once every fix it sent is committed (the pipeline's ack counter, see
 * hw_daily_store_put), its days from then on are recomputed from `positions` with the same
 * accumulator, starting from the carry of the row before (hw_daily_recompute, also what
 * `haulwatch report rebuild` runs). Until the recompute is issued, later fixes only widen the
 * dirty range; once it is, the fixes taken while it runs wait in memory and are replayed onto its
 * result, except those it read already (committed in time: it reports the device times of the
 * fixes received at or after the terminal's latest receipt time at issue). A replayed fix the
 * result has passed (out of order) makes the terminal dirty again.
 *
 * Database work (writes and recomputes) runs on a libuv worker thread with its own blocking
 * connection, one job at a time, so the loop never waits on PostgreSQL. If a job fails its rows
 * are kept and written by the next one. Sees no session and no protocol. */
#ifndef HW_DAILY_STORE_H
#define HW_DAILY_STORE_H

#include <libpq-fe.h>
#include <uv.h>

#include "registry/terminal.h"
#include "rules/daystats.h"

#define HW_DAILY_DEF_FLUSH_S 60

typedef struct hw_daily_store hw_daily_store;

typedef struct hw_daily_store_config {
  const char *conninfo; /* copied */
  hw_daystats_config stats;
  uint32_t flush_ms;    /* write and recompute this often */
} hw_daily_store_config;

/* Starts the flush timer; connects on the first job. The registry is borrowed: its terminals
 * carry the per-terminal state, freed by stop. */
int hw_daily_store_start(hw_daily_store **out, uv_loop_t *loop, const hw_daily_store_config *cfg,
                         hw_registry *reg) HW_MUST_CHECK;

/* Takes one fix of t that the pipeline has just handed to the PostgreSQL writer. ack_seq: the
 * number of the ack that will follow it (acks are counted from 1 in the order they are added to
 * the writer); the fix is committed once that many acks are durable. */
int hw_daily_store_put(hw_daily_store *ds, hw_terminal *t, const hw_fix *f, uint64_t ack_seq)
    HW_MUST_CHECK;

/* Every ack up to number `acks` is durable (so is every fix before it). */
void hw_daily_store_durable(hw_daily_store *ds, uint64_t acks);

typedef struct hw_daily_store_stats {
  uint64_t rows_written, recomputes, jobs, job_failures, fixes_incremental, fixes_deferred;
} hw_daily_store_stats;
void hw_daily_store_get_stats(const hw_daily_store *ds, hw_daily_store_stats *out);

/* Writes what is held (every fix is taken as committed: call after the writer drained), waits
 * for it, frees the per-terminal states and ds, then done_cb (may be NULL). */
void hw_daily_store_stop(hw_daily_store *ds, void (*done_cb)(void *arg), void *arg);

/* --- Blocking, for the worker thread and `haulwatch report rebuild` --- */

/* Called with each day computed, in (terminal, day) order; t is the terminal id. */
typedef int (*hw_daily_row_cb)(void *arg, const char *t, const hw_day_figures *f);
/* Called once per terminal after its last day, with its final state. May be NULL. */
typedef void (*hw_daily_final_cb)(void *arg, const char *t, const hw_daystats *s);

/* Recomputes the days [from_day, to_day] (GMT+8 day numbers; to_day INT32_MAX: open) of one
 * terminal (NULL: every terminal with fixes in the range) from `positions`, each terminal's track
 * starting from the carry of its latest vehicle_daily row before from_day. Streams the fixes
 * (single-row mode). seen_cb (may be NULL) learns which fixes received since recv_cut_ms it
 * read (the daemon's recompute, to replay only the others). 0 or -EIO (logged) or what a callback
 * returned. */
/* Called with the device time of each fix read whose receipt time is at or after recv_cut_ms. */
typedef int (*hw_daily_seen_cb)(void *arg, int64_t ts_ms);
int hw_daily_recompute(PGconn *conn, const hw_daystats_config *cfg, const char *terminal,
                       int32_t from_day, int32_t to_day, int64_t recv_cut_ms,
                       hw_daily_seen_cb seen_cb, hw_daily_row_cb row_cb,
                       hw_daily_final_cb final_cb, void *arg) HW_MUST_CHECK;

/* Upserts rows (terminal ids tids[i], figures rows[i]) into vehicle_daily in one statement per
 * chunk; a stored day further along (a later last qualified fix, or the same and more records)
 * is left as it is: a stale writer's figures never replace a newer writer's. 0 or -EIO/-ENOMEM
 * (logged). */
int hw_daily_upsert(PGconn *conn, const char *const *tids, const hw_day_figures *rows, size_t n)
    HW_MUST_CHECK;

/* vehicle_daily's day column for a GMT+8 day number, and back: "YYYY-MM-DD". */
void hw_daily_day_text(int32_t day, char out[11]);
int hw_daily_day_parse(const char *s, int32_t *day) HW_MUST_CHECK;

#endif
