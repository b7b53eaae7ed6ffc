/* terminal_owner claims, in batches: epoch bumps, saved states, replay of the fixes after them
 * (owner_claim.h). */
#include "sinks/owner_claim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_array.h"
#include "sinks/pg_async.h"
#include "sinks/pg_conn.h"
#include "sinks/rule_store.h"

#define HW_OC_LOG "owner"
/* Fixes received this long before the first claim are replayed too for a terminal without a
 * saved state: a wall clock stepped back by less than it loses nothing. */
#define HW_OC_FIRST_SLACK_MS 1000

/* Claims in one statement at most. A claim waits while the statement before it runs, so a batch
 * is what arrived in about one round trip: one claim when logins are few, up to this many in a
 * login storm, where one statement and one commit per claim made the claims the bottleneck
 * (README, "Workers": what a claim costs). */
#define HW_OC_BATCH_MAX 256

/* One statement, so one transaction: the batch's row locks of the bumps are held while the states
 * are read. The locks are taken in terminal_id order, as the fenced writers take their FOR SHARE
 * locks (rule_store.c, violation_store.c), so a batch and a writer never wait for each other in a
 * cycle. A state read may be older than one a writer committed while a bump waited for its lock:
 * any saved state replayed with every stored fix after its horizon gives the same evaluation.
 * The ids of one batch are distinct (ON CONFLICT updates a row once per statement). */
static const char hw_oc_q_claim[] =
    "WITH c AS (INSERT INTO terminal_owner AS o (terminal_id, epoch, owner) "
    "SELECT u.id, 1, $2 FROM unnest($1::text[]) AS u(id) ORDER BY u.id "
    "ON CONFLICT (terminal_id) DO UPDATE SET epoch = o.epoch + 1, owner = EXCLUDED.owner, "
    "since = now() "
    "RETURNING o.terminal_id, o.epoch AS epoch, "
    "(extract(epoch FROM o.first_since) * 1000)::bigint AS first_ms, o.driver_id, "
    "o.driver_since_ms) "
    "SELECT c.terminal_id, c.epoch, c.first_ms, encode(s.state, 'hex'), c.driver_id, "
    "c.driver_since_ms FROM c "
    "LEFT JOIN rule_state s ON s.terminal_id = c.terminal_id";

/* The owner's record of the driver card, fenced: a daemon the terminal has left writes nothing. */
static const char hw_oc_q_card[] =
    "UPDATE terminal_owner SET driver_id = $2, driver_since_ms = $3::bigint "
    "WHERE terminal_id = $1 AND epoch = $4::bigint";

/* The fixes a batch's claims replay, in one read: $1/$2, the terminals with a saved state and its
 * horizon (the fixes after it, by device time); $3/$4, those without one and the time of their
 * first claim less the slack (the fixes received since). Each terminal's rows come together, in
 * device-time order; the columns are read by position (hw_rule_store_row_fix). */
#define HW_OC_GOOD "(p.quality & ~" HW_XSTR(HW_Q_FIELD_ONLY) ") = 0"
static const char hw_oc_q_replay[] =
    HW_RSTORE_REPLAY_COLUMNS " FROM unnest($1::text[], $2::bigint[]) AS h(tid, fr) "
    "JOIN positions p ON p.terminal_id = h.tid "
    "AND p.ts > timestamptz 'epoch' + h.fr * interval '1 millisecond' WHERE " HW_OC_GOOD " "
    "UNION ALL "
    HW_RSTORE_REPLAY_COLUMNS " FROM unnest($3::text[], $4::bigint[]) AS h(tid, fr) "
    "JOIN positions p ON p.terminal_id = h.tid "
    "AND p.recv_ts >= timestamptz 'epoch' + h.fr * interval '1 millisecond' WHERE " HW_OC_GOOD " "
    "ORDER BY 1, 2";

struct hw_owner_claim {
  hw_owner_claims *owner;
  hw_terminal *t;          /* borrowed registry record */
  hw_owner_claim_cb cb;    /* NULL once cancelled */
  void *arg;
  uint64_t epoch;
  int64_t t0_ms;            /* when the claim was asked for (hw_now_ms), for the log */
  struct hw_rule_state *st; /* owned until installed: the saved state (NULL: none or unusable) */
  size_t replayed, unevaluated;
  int loaded;               /* st is the saved state (else it replays from the first claim) */
  hw_owner_claim *next;     /* the waiting queue, then its batch */
};

/* The claims of one statement (then of its replay read), one per terminal, in queue order. */
typedef struct hw_oc_batch {
  hw_owner_claims *owner;
  hw_owner_claim *head; /* owned until each finishes */
  size_t n;
} hw_oc_batch;

struct hw_owner_claims {
  hw_pg_async *pg;  /* owned; NULL once stopped */
  hw_rules *engine; /* borrowed */
  char *node;       /* owned */
  hw_owner_claims_stats stats;
  /* Claims not sent yet, oldest first (owned). Empty whenever no claim statement is queued. */
  hw_owner_claim *wait_head, *wait_tail;
  int claiming;     /* a batch's claim statement is queued or running */
  int stopping;
  void (*done_cb)(void *arg);
  void *done_arg;
};

static int hw_oc_hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes hex (from encode(.., 'hex')) into a state; -EINVAL for a malformed one. */
static int hw_oc_decode(const char *hex, size_t n, struct hw_rule_state **out) {
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  if (n % 2 || n / 2 > sizeof buf)
    return -EINVAL;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hw_oc_hexval(hex[2 * i]), lo = hw_oc_hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -EINVAL;
    buf[i] = (uint8_t)(hi << 4 | lo);
  }
  return hw_rule_state_decode(buf, n / 2, out);
}

/* Runs q's callback and frees q (not unlinked: the caller owns the list it was on). */
static void hw_oc_finish(hw_owner_claim *q, int result) {
  hw_owner_claims *c = q->owner;
  if (result == 0)
    c->stats.claims++;
  else
    c->stats.failed++;
  hw_rule_state_free(q->st);
  if (q->cb)
    q->cb(q->arg, result);
  free(q);
}

/* Finishes every claim of b with result, then frees b. */
static void hw_oc_batch_fail(hw_oc_batch *b, int result) {
  for (hw_owner_claim *q = b->head, *next; q; q = next) {
    next = q->next;
    hw_oc_finish(q, result);
  }
  free(b);
}

/* Takes q out of b (to finish it apart). */
static void hw_oc_unlink(hw_oc_batch *b, hw_owner_claim *q) {
  for (hw_owner_claim **pp = &b->head; *pp; pp = &(*pp)->next)
    if (*pp == q) {
      *pp = q->next;
      q->next = NULL;
      b->n--;
      return;
    }
}

static void hw_oc_on_claim(void *arg, const PGresult *res);

/* Sends the next batch of waiting claims (one per terminal: a terminal claimed twice in a row
 * waits for the next batch) unless a claim statement is queued already. 0 (also when nothing
 * waits); on failure the claims stay waiting, in order, and the code is returned. */
static int hw_oc_send(hw_owner_claims *c) {
  if (c->claiming || !c->wait_head)
    return 0;
  hw_oc_batch *b = calloc(1, sizeof *b);
  if (!b)
    return -ENOMEM;
  b->owner = c;
  hw_owner_claim **pp = &c->wait_head, **tail = &b->head;
  while (*pp && b->n < HW_OC_BATCH_MAX) {
    hw_owner_claim *q = *pp;
    int dup = 0;
    for (hw_owner_claim *o = b->head; o && !dup; o = o->next)
      dup = o->t == q->t;
    if (dup) {
      pp = &q->next;
      continue;
    }
    *pp = q->next;
    q->next = NULL;
    *tail = q;
    tail = &q->next;
    b->n++;
  }
  hw_pg_array ids = {0};
  for (hw_owner_claim *q = b->head; q; q = q->next)
    hw_pg_array_text(&ids, q->t->id, strlen(q->t->id));
  const char *pids = hw_pg_array_finish(&ids);
  const char *params[2] = {pids, c->node};
  int rc = pids ? hw_pg_async_query(c->pg, hw_oc_q_claim, 2, params, hw_oc_on_claim, b) : -ENOMEM;
  hw_pg_array_free(&ids);
  if (rc) {
    /* Back to the front of the queue, in their order (the skipped ones were after them). */
    *tail = c->wait_head;
    c->wait_head = b->head;
    free(b);
  } else {
    c->claiming = 1;
    c->stats.batches++;
    hw_debug(HW_OC_LOG, NULL, "claiming %zu terminals in one statement", b->n);
  }
  c->wait_tail = NULL;
  for (hw_owner_claim *q = c->wait_head; q; q = q->next)
    c->wait_tail = q;
  return rc;
}

/* After a claim statement: the next batch, or, when it cannot be sent, every waiting claim fails
 * (its terminal comes back and claims again). */
static void hw_oc_next(hw_owner_claims *c) {
  if (c->stopping)
    return;
  int rc = hw_oc_send(c);
  if (!rc)
    return;
  hw_warn(HW_OC_LOG, NULL, "cannot queue the next claims: %s", strerror(-rc));
  hw_owner_claim *q = c->wait_head;
  c->wait_head = c->wait_tail = NULL;
  for (hw_owner_claim *next; q; q = next) {
    next = q->next;
    hw_oc_finish(q, rc == -ENOMEM ? -ENOMEM : -EAGAIN);
  }
}

static hw_owner_claim *hw_oc_find(hw_oc_batch *b, const char *id) {
  for (hw_owner_claim *q = b->head; q; q = q->next)
    if (!strcmp(q->t->id, id))
      return q;
  return NULL;
}

static void hw_oc_on_fixes(void *arg, const PGresult *res) {
  hw_oc_batch *b = arg;
  hw_owner_claims *c = b->owner;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    /* Left HW_OWNER_LOST: nothing of them is written until a claim succeeds. */
    hw_warn(HW_OC_LOG, NULL, "claims of %zu terminals: cannot read the fixes to replay: %s", b->n,
            res ? hw_pg_errmsg(res) : "connection lost");
    hw_oc_batch_fail(b, -EAGAIN);
    return;
  }
  /* The saved states (or none: a fresh one on the first fix) replace what memory had, and the
   * epochs are set before the replay: what it emits is written under the new epoch. */
  for (hw_owner_claim *q = b->head; q; q = q->next) {
    hw_terminal *t = q->t;
    hw_rule_state_free(t->rules);
    t->rules = q->st;
    q->st = NULL;
    t->owner_epoch = q->epoch;
  }
  hw_owner_claim *q = NULL;
  size_t n = (size_t)PQntuples(res);
  for (size_t row = 0; row < n; row++) {
    const char *id = PQgetvalue(res, (int)row, 0);
    if (!q || strcmp(q->t->id, id))
      q = hw_oc_find(b, id);
    if (!q)
      continue; /* cannot be: the read names only the batch's terminals */
    hw_fix f;
    hw_rule_store_row_fix(res, (int)row, &f);
    if (hw_rules_on_fix(c->engine, q->t, q->t->vehicle, &f))
      q->unevaluated++;
    q->replayed++;
  }
  c->stats.replayed += n;
  for (hw_owner_claim *next, *r = b->head; r; r = next) {
    next = r->next;
    if (r->unevaluated)
      hw_warn(HW_OC_LOG, r->t->id, "claim: %zu replayed fixes not evaluated (out of memory?)",
              r->unevaluated);
    hw_info(HW_OC_LOG, r->t->id, "claimed, epoch %llu: %s, %zu stored fixes replayed (%lld ms)",
            (unsigned long long)r->epoch, r->loaded ? "saved rule state loaded"
                                                    : "no saved rule state",
            r->replayed, (long long)(hw_now_ms() - r->t0_ms));
    hw_oc_finish(r, 0);
  }
  free(b);
}

/* One claim's row of the claim statement. 1: kept (this daemon held the epoch before: nothing to
 * read); 0: to be replayed from *from, after a saved state's horizon (*by_ts) or received since
 * the first claim; -ENOMEM. */
static int hw_oc_claimed(hw_owner_claim *q, const PGresult *res, int row, int64_t *from,
                         int *by_ts) {
  hw_owner_claims *c = q->owner;
  hw_terminal *t = q->t;
  q->epoch = strtoull(PQgetvalue(res, row, 1), NULL, 10);
  int64_t first_ms = strtoll(PQgetvalue(res, row, 2), NULL, 10);
  if (t->rules && t->owner_epoch && t->owner_epoch != HW_OWNER_LOST &&
      t->owner_epoch + 1 == q->epoch) {
    /* Nobody claimed it since this daemon did: memory is at least as new as anything saved. */
    t->owner_epoch = q->epoch;
    c->stats.kept++;
    hw_debug(HW_OC_LOG, t->id, "claimed again, epoch %llu: rule state in memory kept",
             (unsigned long long)q->epoch);
    return 1;
  }
  /* Someone else may have evaluated it since: nothing of ours is written until it is reloaded. */
  t->owner_epoch = HW_OWNER_LOST;
  /* ...and its driver card is the one the owner before recorded, if any was (schema 025). */
  if (!PQgetisnull(res, row, 5)) {
    memset(&t->card, 0, sizeof t->card);
    t->card.since_ms = strtoll(PQgetvalue(res, row, 5), NULL, 10);
    if (!PQgetisnull(res, row, 4)) {
      snprintf(t->card.driver_id, sizeof t->card.driver_id, "%s", PQgetvalue(res, row, 4));
      t->card.has_driver = t->card.driver_id[0] != '\0';
    }
    hw_debug(HW_OC_LOG, t->id, "claim: driver card %s%s from the owner before",
             t->card.has_driver ? "of " : "", t->card.has_driver ? t->card.driver_id : "none");
  }
  *by_ts = 0;
  *from = first_ms > HW_OC_FIRST_SLACK_MS ? first_ms - HW_OC_FIRST_SLACK_MS : 0;
  if (!PQgetisnull(res, row, 3)) {
    int drc = hw_oc_decode(PQgetvalue(res, row, 3), (size_t)PQgetlength(res, row, 3), &q->st);
    if (drc == -ENOMEM)
      return -ENOMEM;
    if (drc)
      hw_warn(HW_OC_LOG, t->id, "saved rule state not usable (%s): replayed from the first claim",
              drc == -ENOTSUP ? "another encoding version" : "malformed");
    else {
      c->stats.loaded++;
      q->loaded = 1;
      *by_ts = 1;
      *from = hw_rule_state_horizon_ms(q->st);
    }
  }
  return 0;
}

static void hw_oc_on_claim(void *arg, const PGresult *res) {
  hw_oc_batch *b = arg;
  hw_owner_claims *c = b->owner;
  c->claiming = 0;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != b->n) {
    hw_warn(HW_OC_LOG, NULL, "claims of %zu terminals failed: %s", b->n,
            !res ? "connection lost" : PQresultStatus(res) != PGRES_TUPLES_OK ? hw_pg_errmsg(res)
                                                                             : "rows missing");
    hw_oc_batch_fail(b, -EAGAIN);
    hw_oc_next(c);
    return;
  }
  /* The batch keeps the claims to replay; the others finish now. */
  hw_pg_array saved = {0}, horizons = {0}, fresh = {0}, firsts = {0};
  for (int row = 0; row < PQntuples(res); row++) {
    hw_owner_claim *q = hw_oc_find(b, PQgetvalue(res, row, 0));
    if (!q)
      continue; /* cannot be: one row per id sent, each id once */
    int64_t from = 0;
    int by_ts = 0, rc = hw_oc_claimed(q, res, row, &from, &by_ts);
    if (rc) {
      hw_oc_unlink(b, q);
      hw_oc_finish(q, rc > 0 ? 0 : rc);
      continue;
    }
    hw_pg_array_text(by_ts ? &saved : &fresh, q->t->id, strlen(q->t->id));
    hw_pg_array_i64(by_ts ? &horizons : &firsts, from);
  }
  int rc = 0;
  if (b->head) {
    const char *params[4] = {hw_pg_array_finish(&saved), hw_pg_array_finish(&horizons),
                             hw_pg_array_finish(&fresh), hw_pg_array_finish(&firsts)};
    rc = params[0] && params[1] && params[2] && params[3]
             ? hw_pg_async_query(c->pg, hw_oc_q_replay, 4, params, hw_oc_on_fixes, b)
             : -ENOMEM;
  }
  hw_pg_array_free(&saved);
  hw_pg_array_free(&horizons);
  hw_pg_array_free(&fresh);
  hw_pg_array_free(&firsts);
  if (!b->head) {
    free(b);
  } else if (rc) {
    hw_warn(HW_OC_LOG, NULL, "claims of %zu terminals: cannot queue the replay: %s", b->n,
            strerror(-rc));
    hw_oc_batch_fail(b, rc == -ENOMEM ? -ENOMEM : -EAGAIN);
  }
  /* Queued behind this batch's replay read, so its rows are read after this batch's states are
   * in: a terminal claimed again in it finds its epoch set. */
  hw_oc_next(c);
}

int hw_owner_claims_start(hw_owner_claims **out, uv_loop_t *loop, const char *conninfo,
                          const char *node, hw_rules *engine) {
  if (!out || !loop || !conninfo || !node || !engine)
    return -EINVAL;
  hw_owner_claims *c = calloc(1, sizeof *c);
  if (!c || !(c->node = strdup(node))) {
    free(c);
    return -ENOMEM;
  }
  c->engine = engine;
  int rc = hw_pg_async_start(&c->pg, loop, conninfo, HW_OC_LOG);
  if (rc) {
    free(c->node);
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int hw_owner_claim_start(hw_owner_claims *c, hw_terminal *t, hw_owner_claim_cb cb, void *arg,
                   hw_owner_claim **req) {
  if (c->stopping)
    return -ESHUTDOWN;
  hw_owner_claim *q = calloc(1, sizeof *q);
  if (!q)
    return -ENOMEM;
  q->owner = c;
  q->t = t;
  q->t0_ms = hw_now_ms();
  q->cb = cb;
  q->arg = arg;
  if (c->wait_tail)
    c->wait_tail->next = q;
  else
    c->wait_head = q;
  c->wait_tail = q;
  int rc = hw_oc_send(c);
  if (rc) {
    /* Nothing was claiming, so nothing else waited: q is the whole queue. */
    c->wait_head = c->wait_tail = NULL;
    free(q);
    return rc;
  }
  if (req)
    *req = q;
  return 0;
}

static void hw_oc_on_card(void *arg, const PGresult *res) {
  char *id = arg; /* owned */
  if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
    hw_warn(HW_OC_LOG, id, "driver card not recorded for the next owner: %s",
            res ? hw_pg_errmsg(res) : "connection lost");
  else if (!strcmp(PQcmdTuples((PGresult *)res), "0"))
    hw_info(HW_OC_LOG, id, "driver card not recorded: the terminal has another owner now");
  free(id);
}

int hw_owner_card_save(hw_owner_claims *c, const hw_terminal *t) {
  if (c->stopping)
    return -ESHUTDOWN;
  if (!t->owner_epoch || t->owner_epoch == HW_OWNER_LOST)
    return -EPERM; /* not claimed here (yet): the claim brings the owner's card */
  char since[24], epoch[24];
  snprintf(since, sizeof since, "%lld", (long long)t->card.since_ms);
  snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)t->owner_epoch);
  const char *params[4] = {t->id, t->card.has_driver ? t->card.driver_id : NULL, since, epoch};
  char *id = strdup(t->id);
  if (!id)
    return -ENOMEM;
  int rc = hw_pg_async_query(c->pg, hw_oc_q_card, 4, params, hw_oc_on_card, id);
  if (rc)
    free(id);
  return rc;
}

void hw_owner_claim_cancel(hw_owner_claim *req) {
  if (req)
    req->cb = NULL;
}

void hw_owner_claims_get_stats(const hw_owner_claims *c, hw_owner_claims_stats *out) {
  *out = c->stats;
}

static void hw_oc_on_stopped(void *arg) {
  hw_owner_claims *c = arg;
  void (*cb)(void *) = c->done_cb;
  void *cb_arg = c->done_arg;
  hw_info(HW_OC_LOG, NULL, "stopped: %llu claims in %llu statements, %llu kept, %llu states "
          "loaded, %llu fixes replayed, %llu failed", (unsigned long long)c->stats.claims,
          (unsigned long long)c->stats.batches, (unsigned long long)c->stats.kept,
          (unsigned long long)c->stats.loaded, (unsigned long long)c->stats.replayed,
          (unsigned long long)c->stats.failed);
  free(c->node);
  free(c);
  if (cb)
    cb(cb_arg);
}

void hw_owner_claims_stop(hw_owner_claims *c, void (*done_cb)(void *arg), void *arg) {
  c->stopping = 1;
  c->done_cb = done_cb;
  c->done_arg = arg;
  /* Claims never sent fail as the pending ones do. */
  hw_owner_claim *q = c->wait_head;
  c->wait_head = c->wait_tail = NULL;
  for (hw_owner_claim *next; q; q = next) {
    next = q->next;
    hw_oc_finish(q, -EAGAIN);
  }
  hw_pg_async_stop(c->pg, hw_oc_on_stopped, c); /* pending claims finish with NULL: -EAGAIN */
}
