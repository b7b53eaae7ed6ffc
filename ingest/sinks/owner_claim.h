/* Claims terminals for this daemon when several share one database (docs/ownership.md): a claim
 * bumps the terminal's fencing epoch in terminal_owner (schema 020) and brings its rule state
 * here, so that exactly one daemon evaluates and writes a terminal at a time.
 *
 * Claims run on their own connection in batches: the claims that arrive while one batch's claim
 * statement runs make the next batch (at most 256, one per terminal), so a login storm costs a
 * statement and a commit per batch, not per claim. A batch:
 *   1. INSERT .. ON CONFLICT DO UPDATE SET epoch = epoch + 1 for each of its terminals, in
 *      terminal_id order (the row locks order it against the fenced writers, which lock the rows
 *      FOR SHARE in the same order), returning each new epoch E, the first claim's time and the
 *      terminal's saved rule state.
 *   2. If this daemon held E - 1 and still has the terminal's state, the state in memory is the
 *      newest there is: it is kept, the epoch becomes E, done. Otherwise the terminal is marked
 *      HW_OWNER_LOST while the stored good fixes after the saved state's horizon (without a saved
 *      state: those received since the first claim) are read, then the saved state replaces
 *      whatever was in memory, the epoch becomes E and the fixes are replayed through the engine
 *      in device-time order before cb runs, so before any new fix of the terminal is evaluated.
 *      The fixes of every such terminal of the batch come in one read.
 * A terminal claimed again before its claim finished waits for the next batch, which runs after
 * this one's replay (one connection, statements in order).
 * A claim whose requester went away (hw_owner_claim_cancel) still completes step 2: the
 * database says this daemon owns the terminal, memory agrees. Loop thread only. */
#ifndef HW_OWNER_CLAIM_H
#define HW_OWNER_CLAIM_H

#include <uv.h>

#include "registry/terminal.h"
#include "rules/rules.h"

typedef struct hw_owner_claims hw_owner_claims;
typedef struct hw_owner_claim hw_owner_claim;

/* result: 0 claimed (state loaded and replayed), -EAGAIN the database did not answer (the
 * terminal is not claimed, or claimed and left HW_OWNER_LOST: a later claim repairs it),
 * -ENOMEM. */
typedef void (*hw_owner_claim_cb)(void *arg, int result);

/* node: this daemon's name in terminal_owner.owner (copied); engine: borrowed, replays run
 * through it. Connects on the loop (conninfo copied). */
int hw_owner_claims_start(hw_owner_claims **out, uv_loop_t *loop, const char *conninfo,
                          const char *node, hw_rules *engine) HW_MUST_CHECK;

/* Starts a claim of t (a registry record: outlives the claims; bound to its vehicle already, the
 * replay judges with t->vehicle). cb runs later from the loop, never inside this call. *req
 * identifies the claim until cb has run. -ESHUTDOWN, -ENOMEM. */
int hw_owner_claim_start(hw_owner_claims *c, hw_terminal *t, hw_owner_claim_cb cb, void *arg,
                   hw_owner_claim **req) HW_MUST_CHECK;

/* Records t's driver card (t->card) beside its owner row, so that a daemon claiming t next takes
 * it with the claim (a claim that is not "kept" replaces t->card with the recorded one, when one
 * was recorded). Fenced by t's epoch: once another daemon has claimed t, nothing is written (and
 * that is logged). Queued behind the claims on the same connection; the outcome is only logged.
 * -EPERM when t is not claimed here, -ESHUTDOWN, -ENOMEM. */
int hw_owner_card_save(hw_owner_claims *c, const hw_terminal *t) HW_MUST_CHECK;

/* The requester is gone: cb will not run. The claim itself completes. */
void hw_owner_claim_cancel(hw_owner_claim *req);

typedef struct hw_owner_claims_stats {
  uint64_t claims;   /* completed */
  uint64_t kept;     /* this daemon held the previous epoch: the state in memory kept */
  uint64_t loaded;   /* saved states loaded */
  uint64_t replayed; /* stored fixes replayed */
  uint64_t failed;   /* claims the database did not complete */
  uint64_t batches;  /* claim statements sent (one per batch) */
} hw_owner_claims_stats;
void hw_owner_claims_get_stats(const hw_owner_claims *c, hw_owner_claims_stats *out);

/* Pending claims get -EAGAIN (cancelled ones nothing), the connection closes, c is freed, then
 * done_cb (may be NULL) runs. */
void hw_owner_claims_stop(hw_owner_claims *c, void (*done_cb)(void *arg), void *arg);

#endif
