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

typedef struct hw_owners hw_owners;

/* nworkers: the workers whose save cycles make the mark. 0 or -ENOMEM. */
int hw_owners_new(hw_owners **out, unsigned nworkers) HW_MUST_CHECK;
void hw_owners_free(hw_owners *o);

/* Makes worker the owner of terminal id; *prev gets the owner before (-1: none since start).
 * 0 or -ENOMEM (then ownership is unchanged and *prev is -1). */
int hw_owners_claim(hw_owners *o, const char *id, int worker, int *prev) HW_MUST_CHECK;

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
