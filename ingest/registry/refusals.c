#include "registry/refusals.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "base/log.h"
#include "base/text.h"
#include "sinks/pg_array.h"

#define HW_REFUSALS_STOP_WAIT_MS 2000

typedef struct hw_refusal_entry {
  UT_hash_handle hh;
  /* The key: protocol, source (remote without its port) and reason, each NUL-terminated, packed
   * one after another into key[0..keylen). */
  char key[8 + HW_REFUSAL_REMOTE_MAX + 1 + HW_REFUSAL_REASON_MAX + 1];
  size_t keylen;
  const char *protocol, *source, *reason; /* into key */
  char terminal_id[HW_REFUSAL_ID_MAX + 1]; /* of the last attempt; "" = none */
  char plate[HW_REFUSAL_PLATE_MAX + 1];
  char remote[HW_REFUSAL_REMOTE_MAX + 1];
  uint64_t count;
  int64_t first_ms, last_ms;
} hw_refusal_entry;

/* A query in flight. Allocated apart from hw_refusals: one still in flight when r is freed (stop
 * gave up waiting) gets its answer later, and must then find owner NULL. */
typedef struct hw_refusals_q {
  hw_refusals *owner;
  hw_refusal_entry *batch; /* owned (uthash) for a flush; NULL for a purge */
  uint64_t attempts;       /* sum of the batch's counts */
} hw_refusals_q;

struct hw_refusals {
  uv_loop_t *loop;
  hw_pg_async *pg;       /* borrowed */
  uv_timer_t timer;      /* flush tick; after stop, the bound on waiting for the last flush */
  hw_refusal_entry *pending; /* owned, uthash */
  uint32_t npending;
  uint32_t retention_days;
  int64_t next_purge_ms; /* uv_now of the next purge */
  hw_refusals_q *flush_q, *purge_q; /* in flight, or NULL */
  int stopping;
  hw_refusals_stats stats;
  uint64_t dropped_logged;
  void (*done_cb)(void *);
  void *done_arg;
};

void hw_refusal_copy(char *out, size_t max, const char *s) {
  (void)hw_utf8_truncate(out, max + 1, s ? s : "", s ? strlen(s) : 0);
}

static void hw_refusals_drop(hw_refusals *r, uint64_t attempts, const char *why) {
  /* One line per 1000 lost: the flood itself is what the operator needs to see. */
  r->stats.dropped += attempts;
  if (r->dropped_logged == 0 || r->stats.dropped - r->dropped_logged >= 1000) {
    r->dropped_logged = r->stats.dropped;
    hw_warn("refusals", NULL, "refused attempts not recorded (%s): %llu so far", why,
            (unsigned long long)r->stats.dropped);
  }
}

static void hw_refusals_free_batch(hw_refusal_entry *batch) {
  hw_refusal_entry *e, *tmp;
  HASH_ITER(hh, batch, e, tmp) {
    HASH_DEL(batch, e);
    free(e);
  }
}

/* Merges e (owned) into the pending set: counts add up, the later attempt's claims win. */
static void hw_refusals_merge(hw_refusals *r, hw_refusal_entry *e) {
  hw_refusal_entry *have;
  HASH_FIND(hh, r->pending, e->key, e->keylen, have);
  if (!have) {
    if (r->npending >= HW_REFUSALS_MAX_PENDING) {
      hw_refusals_drop(r, e->count, "too many distinct sources pending");
      free(e);
      return;
    }
    HASH_ADD(hh, r->pending, key, e->keylen, e);
    r->npending++;
    return;
  }
  have->count += e->count;
  if (e->first_ms < have->first_ms)
    have->first_ms = e->first_ms;
  if (e->last_ms >= have->last_ms) {
    have->last_ms = e->last_ms;
    memcpy(have->terminal_id, e->terminal_id, sizeof have->terminal_id);
    memcpy(have->plate, e->plate, sizeof have->plate);
    memcpy(have->remote, e->remote, sizeof have->remote);
  }
  free(e);
}

void hw_refusals_add(hw_refusals *r, const char *protocol, const char *terminal_id,
                     const char *claimed_plate, const char *remote, const char *reason) {
  hw_refusal_entry *e = calloc(1, sizeof *e);
  if (!e) {
    hw_refusals_drop(r, 1, "out of memory");
    return;
  }
  char *k = e->key;
  hw_refusal_copy(k, 7, protocol);
  e->protocol = k;
  k += strlen(k) + 1;
  /* The source is the address without its port ("ip:port", IPv6 too: the port is after the
   * last colon): a client reconnecting from new ports is still one source. */
  hw_refusal_copy(k, HW_REFUSAL_REMOTE_MAX, remote);
  char *colon = strrchr(k, ':');
  if (colon)
    *colon = 0;
  e->source = k;
  k += strlen(k) + 1;
  hw_refusal_copy(k, HW_REFUSAL_REASON_MAX, reason);
  e->reason = k;
  k += strlen(k) + 1;
  e->keylen = (size_t)(k - e->key);
  hw_refusal_copy(e->terminal_id, HW_REFUSAL_ID_MAX, terminal_id);
  hw_refusal_copy(e->plate, HW_REFUSAL_PLATE_MAX, claimed_plate);
  hw_refusal_copy(e->remote, HW_REFUSAL_REMOTE_MAX, remote);
  e->count = 1;
  e->first_ms = e->last_ms = hw_now_ms();
  hw_refusals_merge(r, e);
}

void hw_refusals_get_stats(const hw_refusals *r, hw_refusals_stats *out) { *out = r->stats; }

/* ---- flush ---- */

static void hw_refusals_finish(hw_refusals *r);

static void hw_refusals_on_flushed(void *arg, const PGresult *res) {
  hw_refusals_q *q = arg;
  hw_refusals *r = q->owner;
  int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!r) {
    hw_refusals_free_batch(q->batch);
    free(q);
    return;
  }
  r->flush_q = NULL;
  if (ok) {
    r->stats.recorded += q->attempts;
    hw_refusals_free_batch(q->batch);
  } else {
    if (res)
      hw_warn("refusals", NULL, "cannot record refusals: %s", PQresultErrorMessage(res));
    /* Kept for the next flush: the counts of a source under attack are the point. */
    hw_refusal_entry *e, *tmp;
    HASH_ITER(hh, q->batch, e, tmp) {
      HASH_DEL(q->batch, e);
      hw_refusals_merge(r, e);
    }
  }
  free(q);
  if (r->stopping)
    hw_refusals_finish(r);
}

static void hw_refusals_flush(hw_refusals *r) {
  if (r->flush_q || !r->pending)
    return;
  hw_pg_array col[9];
  memset(col, 0, sizeof col);
  uint64_t attempts = 0;
  hw_refusal_entry *e, *tmp;
  HASH_ITER(hh, r->pending, e, tmp) {
    hw_pg_array_text(&col[0], e->protocol, strlen(e->protocol));
    hw_pg_array_text(&col[1], e->source, strlen(e->source));
    hw_pg_array_text(&col[2], e->reason, strlen(e->reason));
    if (e->terminal_id[0])
      hw_pg_array_text(&col[3], e->terminal_id, strlen(e->terminal_id));
    else
      hw_pg_array_null(&col[3]);
    if (e->plate[0])
      hw_pg_array_text(&col[4], e->plate, strlen(e->plate));
    else
      hw_pg_array_null(&col[4]);
    if (e->remote[0])
      hw_pg_array_text(&col[5], e->remote, strlen(e->remote));
    else
      hw_pg_array_null(&col[5]);
    hw_pg_array_i64(&col[6], (int64_t)e->count);
    hw_pg_array_i64(&col[7], e->first_ms);
    hw_pg_array_i64(&col[8], e->last_ms);
    attempts += e->count;
  }
  const char *params[9];
  int failed = 0;
  for (int i = 0; i < 9; i++)
    if (!(params[i] = hw_pg_array_finish(&col[i])))
      failed = 1;
  hw_refusals_q *q = failed ? NULL : calloc(1, sizeof *q);
  if (q) {
    q->owner = r;
    q->batch = r->pending;
    q->attempts = attempts;
    /* Keys are unique within a batch, so ON CONFLICT never meets the same row twice. The claims
     * of whichever attempt is later win, whatever order flushes from two daemons arrive in. */
    int rc = hw_pg_async_query(
        r->pg,
        "INSERT INTO auth_refusals AS r (protocol, source, reason, terminal_id, claimed_plate, "
        "remote_addr, count, first_at, at) "
        "SELECT p, s, why, t, pl, ra, n, to_timestamp(f / 1000.0), to_timestamp(l / 1000.0) "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
        "$7::bigint[], $8::bigint[], $9::bigint[]) AS u(p, s, why, t, pl, ra, n, f, l) "
        "ON CONFLICT (protocol, source, reason) DO UPDATE SET "
        "count = r.count + EXCLUDED.count, first_at = least(r.first_at, EXCLUDED.first_at), "
        "at = greatest(r.at, EXCLUDED.at), "
        "terminal_id = CASE WHEN EXCLUDED.at >= r.at THEN EXCLUDED.terminal_id ELSE r.terminal_id END, "
        "claimed_plate = CASE WHEN EXCLUDED.at >= r.at THEN EXCLUDED.claimed_plate ELSE r.claimed_plate END, "
        "remote_addr = CASE WHEN EXCLUDED.at >= r.at THEN EXCLUDED.remote_addr ELSE r.remote_addr END",
        9, params, hw_refusals_on_flushed, q);
    if (rc) {
      hw_warn("refusals", NULL, "cannot record refusals: %s", strerror(-rc));
      free(q);
      q = NULL;
    }
  }
  for (int i = 0; i < 9; i++)
    hw_pg_array_free(&col[i]);
  if (!q)
    return; /* still pending: the next tick tries again */
  r->flush_q = q;
  r->pending = NULL;
  r->npending = 0;
}

/* ---- retention ---- */

static void hw_refusals_on_purged(void *arg, const PGresult *res) {
  hw_refusals_q *q = arg;
  hw_refusals *r = q->owner;
  free(q);
  if (!r)
    return;
  r->purge_q = NULL;
  if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
    uint64_t n = strtoull(PQcmdTuples((PGresult *)res), NULL, 10);
    r->stats.purged += n;
    if (n)
      hw_info("refusals", NULL, "deleted %llu auth_refusals rows older than %u days",
              (unsigned long long)n, r->retention_days);
  } else if (res) {
    hw_warn("refusals", NULL, "cannot expire old refusals: %s", PQresultErrorMessage(res));
  }
  if (r->stopping)
    hw_refusals_finish(r);
}

static void hw_refusals_purge(hw_refusals *r) {
  char days[16];
  if (r->purge_q || r->retention_days == 0)
    return;
  hw_refusals_q *q = calloc(1, sizeof *q);
  if (!q)
    return;
  q->owner = r;
  snprintf(days, sizeof days, "%u", r->retention_days);
  const char *params[1] = {days};
  if (hw_pg_async_query(r->pg, "DELETE FROM auth_refusals WHERE at < now() - make_interval(days => $1::int)",
                        1, params, hw_refusals_on_purged, q)) {
    free(q);
    return;
  }
  r->purge_q = q;
}

static void hw_refusals_on_tick(uv_timer_t *t) {
  hw_refusals *r = t->data;
  if (r->stopping) {
    /* The database did not answer in time: give up on what is in flight. */
    if (r->flush_q)
      hw_refusals_drop(r, r->flush_q->attempts, "database unavailable at shutdown");
    hw_refusals_finish(r);
    return;
  }
  int64_t now = (int64_t)uv_now(r->loop);
  if (now >= r->next_purge_ms) {
    r->next_purge_ms = now + HW_REFUSALS_PURGE_MS;
    hw_refusals_purge(r);
  }
  hw_refusals_flush(r);
}

int hw_refusals_start(hw_refusals **out, uv_loop_t *loop, hw_pg_async *pg,
                      uint32_t retention_days) {
  hw_refusals *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->loop = loop;
  r->pg = pg;
  r->retention_days = retention_days;
  r->next_purge_ms = 0; /* at the first tick */
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, hw_refusals_on_tick, HW_REFUSALS_FLUSH_MS, HW_REFUSALS_FLUSH_MS);
  *out = r;
  return 0;
}

/* ---- stop ---- */

static void hw_refusals_on_closed(uv_handle_t *h) {
  hw_refusals *r = h->data;
  void (*cb)(void *) = r->done_cb;
  void *arg = r->done_arg;
  hw_refusals_free_batch(r->pending);
  free(r);
  if (cb)
    cb(arg);
}

/* Done once nothing is in flight (or the wait ran out): queries still out are disowned. */
static void hw_refusals_finish(hw_refusals *r) {
  if (uv_is_closing((uv_handle_t *)&r->timer))
    return;
  if (r->flush_q && uv_is_active((uv_handle_t *)&r->timer))
    return; /* still waiting for it */
  if (r->flush_q) {
    r->flush_q->owner = NULL;
    r->flush_q = NULL;
  }
  if (r->purge_q) {
    r->purge_q->owner = NULL;
    r->purge_q = NULL;
  }
  uint64_t lost = 0;
  hw_refusal_entry *e, *tmp;
  HASH_ITER(hh, r->pending, e, tmp)
    lost += e->count;
  if (lost)
    hw_refusals_drop(r, lost, "database unavailable at shutdown");
  uv_close((uv_handle_t *)&r->timer, hw_refusals_on_closed);
}

void hw_refusals_stop(hw_refusals *r, void (*done_cb)(void *arg), void *arg) {
  r->done_cb = done_cb;
  r->done_arg = arg;
  r->stopping = 1;
  uv_timer_stop(&r->timer);
  hw_refusals_flush(r);
  if (r->flush_q) {
    /* Bounded wait: the tick then gives up. */
    uv_timer_start(&r->timer, hw_refusals_on_tick, HW_REFUSALS_STOP_WAIT_MS, 0);
    return;
  }
  hw_refusals_finish(r);
}
