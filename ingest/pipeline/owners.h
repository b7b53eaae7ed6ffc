/* Which worker owns each terminal, process-wide (serve --workers N, N > 1; NULL with one worker).
 * A terminal's owner is the worker whose session authenticated it last (hw_pipeline_bind, the one
 * place a session becomes a terminal's owner); before that, worker 0 owns every terminal whose
 * rule state was restored at start. Only the owner evaluates a terminal's quiet and held fixes
 * (the rules tick) and saves its rule state; the others keep their copy untouched. A worker that
 * takes a terminal over from another starts it with a fresh rule state (the state does not move
 * between workers; moving it, between nodes too, is fencing work that starts at this seam).
 *
 * The worker a terminal is taken from is told (hw_owners_attach's wake, then
 * hw_owners_take_lost), so that it closes its connection of that terminal: one connection per
 * terminal in the process, as on one loop (net/session.h hw_session_bind).
 *
 * Beside the owner, the terminal's JT/T 808 driver card (0x0702): the card stays in across a
 * reconnect, but each worker keeps its own terminal records, so the card the last owner saw is
 * kept here and copied into the new owner's record at a take-over (hw_owners_claim). Only the
 * owner records a change (hw_owners_set_card): a worker the terminal has moved on from may still
 * read a frame of its closing connection, and its card would be older than the new owner's.
 *
 * Also where the rule stores of the workers agree on the replay mark (rule_store.h): the mark a
 * store may write is the oldest start among the last complete save cycles of every worker, since
 * each saves only its own terminals.
 *
 * Thread-safe (a read-write lock); owns its table and the copied ids. */
#ifndef HW_OWNERS_H
#define HW_OWNERS_H

#include <stdint.h>
#include <uv.h>

#include "base/common.h"
#include "base/fix.h"
#include "registry/terminal.h"

typedef struct hw_owners hw_owners;

/* nworkers: the workers whose save cycles make the mark. 0 or -ENOMEM. */
int hw_owners_new(hw_owners **out, unsigned nworkers) HW_MUST_CHECK;
void hw_owners_free(hw_owners *o);

/* Makes worker the owner of terminal id; *prev gets the owner before (-1: none since start).
 * card (may be NULL) gets the terminal's card as recorded up to this claim, read under the same
 * lock, so no change recorded by the previous owner is missed or half-copied. 0 or -ENOMEM (then
 * ownership is unchanged, *prev is -1 and *card no driver). */
int hw_owners_claim(hw_owners *o, const char *id, int worker, int *prev, hw_driver_card *card)
    HW_MUST_CHECK;

/* Worker's session of terminal id read a new card: recorded if worker owns id. 0; -EPERM when
 * another worker has claimed id since (ignored: the terminal has moved on, and what its new
 * owner records wins); -ENOENT when no session has claimed id (not recorded; nothing to follow). */
int hw_owners_set_card(hw_owners *o, const char *id, int worker, const hw_driver_card *card)
    HW_MUST_CHECK;

/* Worker's wake-up: when another worker claims one of its terminals, the id is queued for it and
 * wake is sent (uv_async_send, from the claiming thread). NULL detaches: no send after this
 * returns, so the handle may then be closed. */
void hw_owners_attach(hw_owners *o, int worker, uv_async_t *wake);

/* A terminal taken over from a worker (owned by the caller: free it; `next` links the list). */
typedef struct hw_owners_lost {
  struct hw_owners_lost *next;
  char id[];
} hw_owners_lost;
/* The terminals taken from worker since the last call, oldest first; NULL when none. */
hw_owners_lost *hw_owners_take_lost(hw_owners *o, int worker);

/* 1 when worker owns terminal id (worker 0 for a terminal no session has claimed yet). */
int hw_owners_owns(hw_owners *o, const char *id, int worker);

/* Worker completed a save cycle that began at start_ms (wall clock). The mark every worker
 * allows: the oldest of their last complete cycles' starts; 0 while some worker has completed
 * none (then no mark is written). */
int64_t hw_owners_mark(hw_owners *o, int worker, int64_t start_ms);

#endif
