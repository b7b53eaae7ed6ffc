/* terminal_owner claims: epoch bump, saved state, replay of the fixes after it (owner_claim.h). */
#include "sinks/owner_claim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_async.h"
#include "sinks/pg_conn.h"
#include "sinks/rule_store.h"

#define HW_OC_LOG "owner"
/* Fixes received this long before the first claim are replayed too for a terminal without a
 * saved state: a wall clock stepped back by less than it loses nothing. */
#define HW_OC_FIRST_SLACK_MS 1000

/* One statement, so one transaction: the row lock of the bump is held while the state is read.
 * The state read may be older than one a writer committed while the bump waited for its lock:
 * any saved state replayed with every stored fix after its horizon gives the same evaluation. */
static const char hw_oc_q_claim[] =
    "WITH c AS (INSERT INTO terminal_owner AS o (terminal_id, epoch, owner) VALUES ($1, 1, $2) "
    "ON CONFLICT (terminal_id) DO UPDATE SET epoch = o.epoch + 1, owner = EXCLUDED.owner, "
    "since = now() "
    "RETURNING o.epoch AS epoch, (extract(epoch FROM o.first_since) * 1000)::bigint AS first_ms) "
    "SELECT c.epoch, c.first_ms, encode(s.state, 'hex') FROM c "
    "LEFT JOIN rule_state s ON s.terminal_id = $1";

#define HW_OC_GOOD "(p.quality & ~" HW_XSTR(HW_Q_FIELD_ONLY) ") = 0"
static const char hw_oc_q_after_horizon[] =
    HW_RSTORE_REPLAY_COLUMNS " FROM positions p WHERE p.terminal_id = $1 "
    "AND p.ts > timestamptz 'epoch' + $2::bigint * interval '1 millisecond' AND " HW_OC_GOOD
    " ORDER BY p.ts";
static const char hw_oc_q_since_first[] =
    HW_RSTORE_REPLAY_COLUMNS " FROM positions p WHERE p.terminal_id = $1 "
    "AND p.recv_ts >= timestamptz 'epoch' + $2::bigint * interval '1 millisecond' AND " HW_OC_GOOD
    " ORDER BY p.ts";

struct hw_owner_claim {
  hw_owner_claims *owner;
  hw_terminal *t;          /* borrowed registry record */
  hw_owner_claim_cb cb;    /* NULL once cancelled */
  void *arg;
  uint64_t epoch;
  int64_t t0_ms;            /* when the claim was asked for (hw_now_ms), for the log */
  struct hw_rule_state *st; /* owned until installed: the saved state (NULL: none or unusable) */
};

struct hw_owner_claims {
  hw_pg_async *pg;  /* owned; NULL once stopped */
  hw_rules *engine; /* borrowed */
  char *node;       /* owned */
  hw_owner_claims_stats stats;
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

static void hw_oc_on_fixes(void *arg, const PGresult *res) {
  hw_owner_claim *q = arg;
  hw_owner_claims *c = q->owner;
  hw_terminal *t = q->t;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    /* Left HW_OWNER_LOST: nothing of t is written until a claim succeeds. */
    hw_warn(HW_OC_LOG, t->id, "claim epoch %llu: cannot read the fixes to replay: %s",
            (unsigned long long)q->epoch, res ? hw_pg_errmsg(res) : "connection lost");
    hw_oc_finish(q, -EAGAIN);
    return;
  }
  /* The saved state (or none: a fresh one on the first fix) replaces what memory had. */
  int loaded = q->st != NULL;
  hw_rule_state_free(t->rules);
  t->rules = q->st;
  q->st = NULL;
  t->owner_epoch = q->epoch; /* before the replay: what it emits is written under the new epoch */
  size_t failed = 0, n = (size_t)PQntuples(res);
  for (size_t row = 0; row < n; row++) {
    hw_fix f;
    hw_rule_store_row_fix(res, (int)row, &f);
    if (hw_rules_on_fix(c->engine, t, t->vehicle, &f))
      failed++;
  }
  c->stats.replayed += n;
  if (failed)
    hw_warn(HW_OC_LOG, t->id, "claim: %zu replayed fixes not evaluated (out of memory?)", failed);
  hw_info(HW_OC_LOG, t->id, "claimed, epoch %llu: %s, %zu stored fixes replayed (%lld ms)",
          (unsigned long long)q->epoch, loaded ? "saved rule state loaded" : "no saved rule state",
          n, (long long)(hw_now_ms() - q->t0_ms));
  hw_oc_finish(q, 0);
}

static void hw_oc_on_claim(void *arg, const PGresult *res) {
  hw_owner_claim *q = arg;
  hw_owner_claims *c = q->owner;
  hw_terminal *t = q->t;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_warn(HW_OC_LOG, t->id, "claim failed: %s",
            !res ? "connection lost" : PQresultStatus(res) != PGRES_TUPLES_OK ? hw_pg_errmsg(res)
                                                                             : "no row");
    hw_oc_finish(q, -EAGAIN);
    return;
  }
  q->epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
  int64_t first_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
  if (t->rules && t->owner_epoch && t->owner_epoch != HW_OWNER_LOST &&
      t->owner_epoch + 1 == q->epoch) {
    /* Nobody claimed it since this daemon did: memory is at least as new as anything saved. */
    t->owner_epoch = q->epoch;
    c->stats.kept++;
    hw_debug(HW_OC_LOG, t->id, "claimed again, epoch %llu: rule state in memory kept",
             (unsigned long long)q->epoch);
    hw_oc_finish(q, 0);
    return;
  }
  /* Someone else may have evaluated it since: nothing of ours is written until it is reloaded. */
  t->owner_epoch = HW_OWNER_LOST;
  char p2[32];
  const char *sql = hw_oc_q_since_first;
  int64_t from = first_ms > HW_OC_FIRST_SLACK_MS ? first_ms - HW_OC_FIRST_SLACK_MS : 0;
  if (!PQgetisnull(res, 0, 2)) {
    int drc = hw_oc_decode(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2), &q->st);
    if (drc == -ENOMEM) {
      hw_oc_finish(q, -ENOMEM);
      return;
    }
    if (drc)
      hw_warn(HW_OC_LOG, t->id, "saved rule state not usable (%s): replayed from the first claim",
              drc == -ENOTSUP ? "another encoding version" : "malformed");
    else {
      c->stats.loaded++;
      sql = hw_oc_q_after_horizon;
      from = hw_rule_state_horizon_ms(q->st);
    }
  }
  snprintf(p2, sizeof p2, "%lld", (long long)from);
  const char *params[2] = {t->id, p2};
  int rc = hw_pg_async_query(c->pg, sql, 2, params, hw_oc_on_fixes, q);
  if (rc) {
    hw_warn(HW_OC_LOG, t->id, "claim: cannot queue the replay: %s", strerror(-rc));
    hw_oc_finish(q, rc == -ENOMEM ? -ENOMEM : -EAGAIN);
  }
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
  const char *params[2] = {t->id, c->node};
  int rc = hw_pg_async_query(c->pg, hw_oc_q_claim, 2, params, hw_oc_on_claim, q);
  if (rc) {
    free(q);
    return rc;
  }
  if (req)
    *req = q;
  return 0;
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
  free(c->node);
  free(c);
  if (cb)
    cb(cb_arg);
}

void hw_owner_claims_stop(hw_owner_claims *c, void (*done_cb)(void *arg), void *arg) {
  c->stopping = 1;
  c->done_cb = done_cb;
  c->done_arg = arg;
  hw_pg_async_stop(c->pg, hw_oc_on_stopped, c); /* pending claims finish with NULL: -EAGAIN */
}
