/* The terminal registry: one record per terminal seen since start, shared by every protocol
 * session and every sink. Records live until the daemon exits, so sinks may hold pointers to
 * them; the session that currently owns a terminal is found through `session`/`session_gen`. */
#ifndef HW_TERMINAL_H
#define HW_TERMINAL_H

#include <uthash.h>

#include "base/fix.h"

struct hw_session;
struct hw_rule_state;
struct hw_daily_state;
struct hw_vehicle;

#define HW_OWNER_LOST UINT64_MAX

struct hw_terminal;
/* A fenced write (rule state, violation) of terminal_id under epoch was refused: another daemon
 * claimed the terminal (docs/ownership.md). */
typedef void (*hw_owner_fenced_fn)(void *arg, const char *terminal_id, uint64_t epoch);
/* Nonzero: t's rule state must not be saved yet (its violation events are not all written). */
typedef int (*hw_owner_hold_fn)(void *arg, const struct hw_terminal *t);

/* A terminal's driver card: a fix whose device time is at or after since_ms carries driver_id;
 * has_driver = 0 (and driver_id "") after the card's removal or without one. Also what follows a
 * terminal between workers (pipeline/owners.h). */
typedef struct hw_driver_card {
  char driver_id[HW_DRIVER_ID_MAX + 1]; /* NUL-terminated */
  int64_t since_ms;
  uint8_t has_driver;
} hw_driver_card;

typedef struct hw_terminal {
  /* NUL-terminated, at most HW_TID_WIDE_MAX bytes; records made by hw_registry_get own it (it
   * follows the record in its allocation); records built elsewhere (tests) point it at theirs. */
  char *id;
  /* Owning session, or NULL. session_gen changes every time ownership changes, so an ack that
   * was meant for an older connection is recognised and dropped. */
  struct hw_session *session;
  uint32_t session_gen;
  /* Ownership (docs/ownership.md): the epoch this daemon claimed the terminal under, which its
   * rule-state saves and violation writes carry; 0 = unfenced (ownership off, or a terminal no
   * session claims, such as a JT/T 809 link's); HW_OWNER_LOST = another daemon claimed it since:
   * nothing of it is written any more. */
  uint64_t owner_epoch;
  /* Violation episodes of it waiting to be written (sinks/violation_store.c keeps the count):
   * while nonzero an owned terminal's rule state is not saved (docs/ownership.md). */
  uint32_t viol_waiting;

  /* Latest state (newest device time seen), owned by the Redis state module. */
  hw_fix latest;
  uint8_t has_latest;
  uint8_t redis_dirty;             /* on the Redis dirty list */
  struct hw_terminal *redis_next;  /* dirty list link */
  uint64_t redis_dirty_ms;         /* loop time it joined the dirty list (the Redis lag) */

  /* Safety rules: the vehicle bound to this terminal (registry cache, NULL when unbound) and
   * the rules' per-vehicle state (owned by the rules engine). */
  const struct hw_vehicle *vehicle;
  struct hw_rule_state *rules;
  /* The assessment's daily figures being kept for it (sinks/daily_store.c), or NULL. */
  struct hw_daily_state *daily;

  /* The driver at the wheel as the terminal last reported it (JT/T 808 0x0702 IC card), kept
   * here rather than on the connection because the card stays in across reconnects. */
  hw_driver_card card;

  UT_hash_handle hh;
} hw_terminal;

typedef struct hw_registry {
  hw_terminal *by_id; /* uthash head */
  size_t count;
} hw_registry;

/* Finds the record of `id`, creating it when absent. *out is owned by the registry. */
int hw_registry_get(hw_registry *r, const char *id, hw_terminal **out) HW_MUST_CHECK;
/* NULL when absent. */
hw_terminal *hw_registry_find(hw_registry *r, const char *id);
void hw_registry_free(hw_registry *r);

#define hw_registry_foreach(r, t) for (hw_terminal *t = (r)->by_id; t; t = t->hh.next)

#endif
