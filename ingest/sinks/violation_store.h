/* Stores the rules engine's events (violation.h) in table violations, on the loop, in batches.
 *
 * Each event is an upsert keyed by its episode id (violations.episode_key), so an event stored
 * twice, or re-emitted by a replay after a restart, changes nothing. Events are merged in memory
 * per episode and written every HW_VSTORE_FLUSH_MS, or as soon as HW_VSTORE_BATCH episodes wait,
 * as one INSERT ... SELECT FROM unnest(...) ON CONFLICT (episode_key) DO UPDATE statement.
 *
 * Merge rules (the same in memory and in SQL; violation.h):
 *   started_at, start_lat/lon  from the event with the least started_ms;
 *   last_at                    the greatest ended_ms (how far the episode is known to reach);
 *   ended_at                   NULL while the episode is open; once a close event is stored it is
 *                              set to last_at and never goes back to NULL (close is final);
 *   measured/limit_value/grade speeding kinds: of the event with the greatest grade, ties the
 *                              greater value; fatigue, night driving, offline displacement: the
 *                              greatest value; the registry kinds (value = speed at the first
 *                              position, no limit) go with the start;
 *   evidence                   of the event reaching furthest (greatest ended_ms; at a tie a
 *                              close wins, else what is stored stays);
 *   plate/region/enterprise    copied from the vehicle the first time they are known, then kept
 *                              (the record stands even if the vehicle changes);
 *   state, closed_*            never touched: they belong to hw_violation_transition.
 * Units: measured and limit_value in km/h for speeds (the engine's 0.1 km/h / 10), seconds for
 * driving times, metres for displacements; limit_value is NULL for the registry kinds.
 *
 * Failures. A statement lost with the connection is sent again, the same batch, on the next
 * session; one refused for a reason that may pass (schema not there yet, serialisation,
 * resources) after a backoff (HW_VSTORE_RETRY_MIN_MS doubling to HW_VSTORE_RETRY_MAX_MS). A
 * batch refused for its data (SQLSTATE class 22 or 23) is split and its episodes sent one per
 * statement; an episode refused on its own is dropped and logged (stats.rejected). Memory is bounded: at most
 * HW_VSTORE_MAX_PENDING episodes wait (the batch included); an event for an episode not already
 * waiting is dropped beyond that and counted (stats.dropped, logged at most once a second). A
 * later event of a dropped episode stores it again, since every event carries the whole record.
 * Loop thread only. */
#ifndef HW_VIOLATION_STORE_H
#define HW_VIOLATION_STORE_H

#include <uv.h>

#include "registry/registry.h"
#include "registry/terminal.h"
#include "rules/violation.h"

#define HW_VSTORE_FLUSH_MS 200
#define HW_VSTORE_BATCH 500         /* a write starts at once when this many episodes wait */
#define HW_VSTORE_MAX_BATCH 1000    /* episodes per statement (about 10 ms of building) */
#define HW_VSTORE_MAX_PENDING 32768 /* about 900 bytes each */
#define HW_VSTORE_RETRY_MIN_MS 500
#define HW_VSTORE_RETRY_MAX_MS 30000
#define HW_VSTORE_STOP_MS 10000     /* stop gives up flushing after this long */

typedef struct hw_violation_store hw_violation_store;

/* Connects (conninfo copied; its own connection) from the loop. -EINVAL, -ENOMEM, libuv errors. */
int hw_violation_store_start(hw_violation_store **out, uv_loop_t *loop, const char *conninfo)
    HW_MUST_CHECK;

/* Queues ev (copied) for writing; v is the vehicle bound to the terminal (NULL when unbound or
 * unknown), whose plate, region and enterprise are copied. Never blocks, never calls back.
 * Events put after hw_violation_store_stop are dropped (counted). */
void hw_violation_store_put(hw_violation_store *s, const hw_violation_event *ev, const hw_vehicle *v);

/* The same for an event of registry record t (may be NULL: as hw_violation_store_put), with
 * ownership (docs/ownership.md): written under t->owner_epoch (0 unfenced; HW_OWNER_LOST: dropped
 * and counted as fenced), and counted in t->viol_waiting until written or dropped (t must
 * outlive the store). */
void hw_violation_store_put_owned(hw_violation_store *s, const hw_violation_event *ev,
                                  const hw_vehicle *v, hw_terminal *t);

/* Called for every episode a fenced write refused (another daemon owns the terminal now). */
void hw_violation_store_set_fenced(hw_violation_store *s, hw_owner_fenced_fn fenced, void *arg);

typedef struct hw_violation_store_stats {
  uint64_t events;     /* put */
  uint64_t merged;     /* events folded into an episode already waiting */
  uint64_t written;    /* episode records in committed statements */
  uint64_t statements; /* committed */
  uint64_t retries;    /* statements that failed and were (or will be) sent again */
  uint64_t dropped;    /* events refused: too many episodes waiting, or stopped */
  uint64_t rejected;   /* episodes refused by the database on their own and dropped */
  uint64_t fenced;     /* episodes refused by the ownership fence, or put for a lost terminal */
  size_t pending;      /* episodes waiting, the batch in flight included */
} hw_violation_store_stats;
void hw_violation_store_get_stats(const hw_violation_store *s, hw_violation_store_stats *out);

/* Writes everything waiting (for at most HW_VSTORE_STOP_MS; what is left then is logged as lost),
 * closes the connection, frees s, then calls done_cb (may be NULL) from the loop. */
void hw_violation_store_stop(hw_violation_store *s, void (*done_cb)(void *arg), void *arg);

#endif
