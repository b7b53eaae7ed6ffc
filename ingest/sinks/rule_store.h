/* Persistence of the rules engine's per-terminal state (table rule_state), so that a restart
 * neither resets a fatigue count nor opens an episode a second time (rules.h, RESTART SAFETY).
 *
 * At start, before the loop runs: hw_rule_store_load decodes every saved state into its terminal
 * record, then replays through the engine the stored good fixes newer than each state's horizon
 * (they were stored but possibly not evaluated, or evaluated after the last save), and then, for
 * every terminal without a saved state, the good fixes received since the mark (below): such a
 * terminal was first seen after the last complete save, so its whole evaluation is in them.
 * Events of the replay go through the engine's callback as usual; they carry the episode ids of
 * the first run, so storing them (violation_store) is an idempotent upsert.
 *
 * While running: every interval the state of every terminal is encoded and compared with what
 * was last saved (a 64-bit hash of the bytes, kept here: terminal.h is not touched); the changed
 * ones are upserted, HW_RSTORE_CHUNK terminals per statement (one unnest of text[] ids and
 * hex-encoded states), the next chunk encoded when the previous one is written, so the loop is
 * never held long and a state is at most one interval plus one write old. A failed chunk ends
 * the cycle; its terminals stay "changed" and go in the next one. A cycle that wrote every
 * chunk ends by setting the mark (table rule_state_mark, schema/008) to the time it started:
 * every fix received before then is in a saved state, by its terminal's horizon.
 *
 * Cost of the start after a crash: the horizon replay is one index range per saved terminal;
 * the other is one query over the positions received since the mark (at most one interval plus
 * one cycle of data; a block-range index on recv_ts keeps it to the recent blocks of each
 * partition), without the saved terminals (a hashed anti-join), sorted per terminal in device
 * time and streamed row by row. Both read what arrived since the last complete save (and fixes
 * held behind a gap then), not the history. After a clean stop the mark is the final save's, so
 * nothing is replayed but what the horizons ask for. */
#ifndef HW_RULE_STORE_H
#define HW_RULE_STORE_H

#include <libpq-fe.h>
#include <uv.h>

#include "registry/registry_cache.h"
#include "rules/rules.h"
#include "registry/terminal.h"

#define HW_RSTORE_INTERVAL_MS 30000 /* default save interval */
#define HW_RSTORE_CHUNK 1000        /* terminals per statement */
#define HW_RSTORE_STOP_MS 10000     /* stop gives up the final save after this long */

/* BLOCKING: once at daemon start, before the loop runs and before live data. conn: a blocking
 * connection (left idle; no transaction is left open). For each row of rule_state: the
 * terminal's record in reg (created if needed) gets the decoded state in t->rules (a record that
 * already has a state keeps it; an undecodable state is logged and skipped: that terminal starts
 * fresh, like one without a saved state). Then the good fixes (quality 0) stored after each state's horizon, and those received
 * since the mark of every terminal without an attached state (its record created, its state
 * fresh), are fed, per terminal in device-time order, to hw_rules_on_fix(engine, t, vehicle, fix)
 * with their stored receipt time, streamed row by row. vehicle: the terminal's bound vehicle,
 * from cache when given (the records created here are bound with hw_registry_cache_bind; call
 * after the cache's first load, with the engine's zones set), else from a registry snapshot this
 * call loads and releases itself (records stay unbound; the engine gets the snapshot's zones for
 * the replay and none after it: set them again).
 * *loaded: states attached; *replayed: fixes fed (either may be NULL).
 * 0; -EIO a query failed (logged; states attached so far stay attached, the replay may be
 * partial); -ENOMEM. */
int hw_rule_store_load(PGconn *conn, hw_registry *reg, hw_rules *engine, hw_registry_cache *cache,
                       size_t *loaded, size_t *replayed) HW_MUST_CHECK;

/* The columns a replay reads from positions p (HW_RSTORE_REPLAY_COLUMNS, terminal id first), and
 * one row of them, in text, as a fix (quality 0): shared with the claims (owner_claim.c). */
#define HW_RSTORE_REPLAY_COLUMNS                                                                   \
  "SELECT p.terminal_id, (extract(epoch FROM p.ts) * 1000)::bigint, "                              \
  "(extract(epoch FROM p.recv_ts) * 1000)::bigint, round(p.lat * 1e6)::integer, "                  \
  "round(p.lon * 1e6)::integer, round(p.speed_kmh::float8 * 10)::bigint, p.heading, p.alt_m, "    \
  "p.alarm, p.status, round(p.odometer_km * 10)::bigint, p.driver_id, p.source, p.seq"
void hw_rule_store_row_fix(const PGresult *r, int row, hw_fix *f);

/* The same for a daemon running with ownership (docs/ownership.md): only the terminals no daemon
 * has claimed (terminal_owner) are loaded and replayed; a claimed one gets its state when a
 * session claims it here (owner_claim.h). */
int hw_rule_store_load_unowned(PGconn *conn, hw_registry *reg, hw_rules *engine,
                               hw_registry_cache *cache, size_t *loaded, size_t *replayed)
    HW_MUST_CHECK;

typedef struct hw_rule_store hw_rule_store;

/* Connects (conninfo copied; its own connection) and saves every interval_ms (0 = default) the
 * states of reg's terminals (borrowed: reg and its records must outlive the store). */
int hw_rule_store_start(hw_rule_store **out, uv_loop_t *loop, const char *conninfo,
                        hw_registry *reg, uint32_t interval_ms) HW_MUST_CHECK;

/* Several workers (serve --workers, pipeline/owners.h): each store saves only the terminals its
 * worker owns (owns(arg, t) == 1), and writes as the mark what mark(arg, its cycle's start)
 * returns, the oldest complete cycle of every worker (0: not yet, no mark written). Without
 * hooks (one worker) every terminal is saved and the mark is the cycle's own start. */
typedef struct hw_rule_store_hooks {
  int (*owns)(void *arg, const hw_terminal *t);
  int64_t (*mark)(void *arg, int64_t cycle_start_ms);
  void *arg;
} hw_rule_store_hooks;
void hw_rule_store_set_hooks(hw_rule_store *s, const hw_rule_store_hooks *hooks);

typedef struct hw_rule_store_stats {
  uint64_t cycles;        /* save cycles completed */
  uint64_t cycles_failed; /* ended early by a failed statement */
  uint64_t saved;         /* states written */
  uint64_t unchanged;     /* states skipped: the same bytes as last saved */
  size_t terminals;       /* terminals with a state at the last completed cycle */
  int64_t last_cycle_ms;  /* duration of the last completed cycle */
  uint64_t refused;       /* fenced: saves refused, the terminal claimed by another daemon */
  uint64_t held;          /* owned terminals left for the next cycle: violation events unwritten */
} hw_rule_store_stats;
void hw_rule_store_get_stats(const hw_rule_store *s, hw_rule_store_stats *out);

/* Ownership (docs/ownership.md). A terminal's state is saved with t->owner_epoch (0: unfenced;
 * HW_OWNER_LOST: not saved). hold(arg, t): nonzero = an owned terminal is not saved this cycle
 * (its violation events are not all written). fenced(arg, terminal_id, epoch): a save was
 * refused, the terminal's epoch has moved on. Both may be NULL. */
void hw_rule_store_set_owner(hw_rule_store *s, hw_owner_hold_fn hold, hw_owner_fenced_fn fenced,
                             void *arg);

/* Saves once more (waiting for a cycle in progress, then a full one; at most HW_RSTORE_STOP_MS),
 * closes the connection, frees s, then calls done_cb (may be NULL) from the loop. Call after the
 * sessions are closed (no more fixes) and before the registry is freed. */
void hw_rule_store_stop(hw_rule_store *s, void (*done_cb)(void *arg), void *arg);

#endif
