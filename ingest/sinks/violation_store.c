/* Batched, merged upserts of violation events on one pg_async connection.
 *
 * Two sets of episodes: `pending` (a hash by episode id, where new events are merged) and `batch`
 * (an array taken out of pending: the statement in flight, or waiting to be sent again). Only one
 * statement is in flight, so an episode is never in two statements at once within a batch, and
 * ON CONFLICT DO UPDATE never meets the same key twice in one command. An event for an episode
 * whose batch is in flight starts a new pending entry: the database merges the two. */
#include "sinks/violation_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "base/log.h"
#include "base/text.h"
#include "sinks/pg_array.h"
#include "sinks/pg_async.h"
#include "sinks/pg_conn.h"

#define HW_VS_LOG "violations"

/* Column $n of each episode, in the order of hw_vs_sql's unnest. */
enum {
  HW_VS_P_KIND,
  HW_VS_P_KEY,
  HW_VS_P_TERMINAL,
  HW_VS_P_PLATE,
  HW_VS_P_REGION,
  HW_VS_P_ENTERPRISE,
  HW_VS_P_STARTED,
  HW_VS_P_LAST,
  HW_VS_P_CLOSED,
  HW_VS_P_LAT,
  HW_VS_P_LON,
  HW_VS_P_MEASURED,
  HW_VS_P_LIMIT,
  HW_VS_P_GRADE,
  HW_VS_P_EVIDENCE,
  HW_VS_P_EPOCH,
  HW_VS_P_COUNT
};

/* The merge rules of violation_store.h in SQL. `old_last` is how far the stored row reaches
 * (rows written before schema 006 have no last_at). limit_value IS NULL marks the kinds whose
 * value goes with the start (the registry kinds: the only ones stored without a limit). */
#define HW_VS_OLD_LAST "coalesce(v.last_at, v.ended_at, v.started_at)"
#define HW_VS_TS(col) "(timestamptz 'epoch' + " col " * interval '1 millisecond')"
#define HW_VS_VALUE_WINS                                                                           \
  "(CASE WHEN EXCLUDED.limit_value IS NULL THEN EXCLUDED.started_at < v.started_at "              \
  "ELSE (coalesce(EXCLUDED.grade, 0), EXCLUDED.measured) > "                                      \
  "(coalesce(v.grade, 0), coalesce(v.measured, '-Infinity')) END)"
#define HW_VS_EVIDENCE_WINS                                                                        \
  "(EXCLUDED.last_at > " HW_VS_OLD_LAST " OR (EXCLUDED.last_at = " HW_VS_OLD_LAST                 \
  " AND EXCLUDED.ended_at IS NOT NULL AND v.ended_at IS NULL))"

/* Fenced (docs/ownership.md): an episode with an epoch ($16, 0 = unfenced) is written only while
 * terminal_owner has that epoch for its terminal, checked under a FOR SHARE lock (a claim waits
 * for this statement, or this statement sees the claim); the refused ones come back as rows. The
 * rows are locked in terminal_id order, as a batch of claims takes them (owner_claim.c). */
#define HW_VS_FENCE_OK "EXISTS (SELECT 1 FROM ok WHERE ok.terminal_id = u.tid AND ok.epoch = u.ep)"
static const char hw_vs_sql[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::bigint[], $8::bigint[], $9::boolean[], $10::integer[], $11::integer[], "
    "$12::float8[], $13::float8[], $14::smallint[], $15::text[], $16::bigint[]) "
    "AS u(kind, key, tid, plate, region, ent, s, l, closed, lat, lon, m, lim, g, ev, ep)), "
    "ok AS (SELECT o.terminal_id, o.epoch FROM terminal_owner o "
    "WHERE o.terminal_id IN (SELECT u.tid FROM u WHERE u.ep > 0) ORDER BY o.terminal_id FOR SHARE), "
    "w AS (INSERT INTO violations AS v (kind, episode_key, terminal_id, plate, region, enterprise, "
    "started_at, ended_at, last_at, start_lat, start_lon, measured, limit_value, grade, evidence) "
    "SELECT u.kind, u.key, u.tid, u.plate, u.region, u.ent, " HW_VS_TS("u.s") ", "
    "CASE WHEN u.closed THEN " HW_VS_TS("u.l") " END, " HW_VS_TS("u.l") ", "
    "u.lat / 1e6::float8, u.lon / 1e6::float8, u.m, u.lim, u.g, u.ev::jsonb "
    "FROM u WHERE u.ep = 0 OR " HW_VS_FENCE_OK " "
    "ON CONFLICT (episode_key) DO UPDATE SET "
    "started_at = least(v.started_at, EXCLUDED.started_at), "
    "start_lat = CASE WHEN EXCLUDED.started_at < v.started_at THEN EXCLUDED.start_lat "
    "ELSE v.start_lat END, "
    "start_lon = CASE WHEN EXCLUDED.started_at < v.started_at THEN EXCLUDED.start_lon "
    "ELSE v.start_lon END, "
    "last_at = greatest(" HW_VS_OLD_LAST ", EXCLUDED.last_at), "
    "ended_at = CASE WHEN v.ended_at IS NOT NULL OR EXCLUDED.ended_at IS NOT NULL "
    "THEN greatest(" HW_VS_OLD_LAST ", EXCLUDED.last_at) END, "
    "measured = CASE WHEN " HW_VS_VALUE_WINS " THEN EXCLUDED.measured ELSE v.measured END, "
    "limit_value = CASE WHEN " HW_VS_VALUE_WINS " THEN EXCLUDED.limit_value ELSE v.limit_value END, "
    "grade = CASE WHEN " HW_VS_VALUE_WINS " THEN EXCLUDED.grade ELSE v.grade END, "
    "evidence = CASE WHEN " HW_VS_EVIDENCE_WINS " THEN EXCLUDED.evidence ELSE v.evidence END, "
    "plate = coalesce(v.plate, EXCLUDED.plate), region = coalesce(v.region, EXCLUDED.region), "
    "enterprise = coalesce(v.enterprise, EXCLUDED.enterprise) "
    /* A replayed or repeated event changes nothing: leave the row (and its updated_at) alone. */
    "WHERE EXCLUDED.started_at < v.started_at OR EXCLUDED.last_at > " HW_VS_OLD_LAST " "
    "OR (EXCLUDED.ended_at IS NOT NULL AND v.ended_at IS NULL) OR " HW_VS_VALUE_WINS " "
    "OR (v.plate IS NULL AND EXCLUDED.plate IS NOT NULL) "
    "OR (v.region IS NULL AND EXCLUDED.region IS NOT NULL) "
    "OR (v.enterprise IS NULL AND EXCLUDED.enterprise IS NOT NULL) RETURNING 1) "
    "SELECT u.tid, u.ep, u.key FROM u WHERE u.ep > 0 AND NOT " HW_VS_FENCE_OK;

/* One episode waiting to be written: every event seen for it, merged. */
typedef struct hw_vs_item {
  hw_violation_event ev; /* merged; ev.episode_id is the hash key */
  uint8_t closed;        /* a close event was seen */
  uint64_t epoch;        /* the owner epoch it is written under (0: unfenced) */
  hw_terminal *term;     /* borrowed registry record whose viol_waiting counts it; may be NULL */
  char plate[HW_PLATE_MAX + 1];
  char region[HW_REGION_LEN + 1];
  char enterprise[HW_ENTERPRISE_MAX + 1];
  UT_hash_handle hh;     /* in pending */
} hw_vs_item;

struct hw_violation_store {
  uv_loop_t *loop;
  hw_pg_async *pg;      /* owned; NULL once stopped */
  hw_vs_item *pending;  /* owned items, uthash by episode id */
  size_t npending;
  hw_vs_item **batch;   /* owned array of owned items; the statement in flight or to send again */
  size_t nbatch;
  size_t done;          /* items of batch already written (or dropped) while splitting */
  int splitting;        /* the batch was refused for its data: one episode per statement */
  int inflight;         /* a statement is at the connection */
  uint32_t backoff_ms;
  uint64_t last_send;   /* uv_now() of the last statement sent */
  uv_timer_t timer;     /* next flush, or the retry */
  uv_timer_t deadline;  /* stop */
  hw_violation_store_stats stats;
  hw_owner_fenced_fn fenced; /* may be NULL */
  void *fenced_arg;
  uint64_t drop_log_ms; /* rate limit of the drop warning */
  uint64_t drops_unlogged;
  int stopping, closing, handles;
  void (*done_cb)(void *arg);
  void *done_arg;
};

static void hw_vs_send(hw_violation_store *s);
static void hw_vs_close(hw_violation_store *s);

/* ---- merging ---------------------------------------------------------------------------- */

/* Kinds whose value is the speed at the first position: it goes with the start. */
static int hw_vs_value_with_start(int kind) { return hw_violation_unit(kind)[0] == '\0'; }

/* Plates and names are UTF-8: never cut a character in two. strnlen(cap) is enough to know
 * whether src must be cut. */
static void hw_vs_copy(char *dst, size_t cap, const char *src) {
  hw_utf8_truncate(dst, cap, src, strnlen(src, cap));
}

static void hw_vs_vehicle(hw_vs_item *it, const hw_vehicle *v) {
  if (!v)
    return;
  if (!it->plate[0])
    hw_vs_copy(it->plate, sizeof it->plate, v->plate);
  if (!it->region[0])
    hw_vs_copy(it->region, sizeof it->region, v->region);
  if (!it->enterprise[0])
    hw_vs_copy(it->enterprise, sizeof it->enterprise, v->enterprise);
}

/* Folds the newer event ev into it (see the rules in the header). */
static void hw_vs_merge(hw_vs_item *it, const hw_violation_event *ev) {
  hw_violation_event *m = &it->ev;
  int with_start = hw_vs_value_with_start(m->kind);
  if (ev->started_ms < m->started_ms) {
    m->started_ms = ev->started_ms;
    m->lat_e6 = ev->lat_e6;
    m->lon_e6 = ev->lon_e6;
    if (with_start) {
      m->value = ev->value;
      m->limit = ev->limit;
    }
  }
  if (!with_start && (ev->grade > m->grade || (ev->grade == m->grade && ev->value > m->value))) {
    m->value = ev->value;
    m->limit = ev->limit;
    m->grade = ev->grade;
  }
  /* In memory the later arrival wins a tie: it is the engine's latest word. */
  if (ev->ended_ms >= m->ended_ms) {
    m->ended_ms = ev->ended_ms;
    memcpy(m->evidence, ev->evidence, sizeof m->evidence);
  }
  if (ev->phase == HW_PHASE_CLOSE)
    it->closed = 1;
  m->phase = it->closed ? HW_PHASE_CLOSE : ev->phase;
}

/* ---- statement parameters -------------------------------------------------------------- */

static void hw_vs_str(hw_pg_array *a, const char *s, size_t max) {
  hw_pg_array_text(a, s, strnlen(s, max));
}

/* Optional registry data: "" is stored as NULL. */
static void hw_vs_opt(hw_pg_array *a, const char *s, size_t max) {
  if (s[0])
    hw_vs_str(a, s, max);
  else
    hw_pg_array_null(a);
}

/* Value and limit in the stored unit: 0.1 km/h become km/h, others as they are. */
static void hw_vs_measure(hw_pg_array *a, int kind, int64_t v) {
  if (!strcmp(hw_violation_unit(kind), "dkmh") || hw_vs_value_with_start(kind)) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.1f", (double)v / 10.0);
    hw_pg_array_raw(a, tmp, (size_t)n);
  } else {
    hw_pg_array_i64(a, v);
  }
}

static void hw_vs_add(hw_pg_array *p, const hw_vs_item *it) {
  const hw_violation_event *e = &it->ev;
  hw_vs_str(&p[HW_VS_P_KIND], hw_violation_kind_name(e->kind), 64);
  hw_vs_str(&p[HW_VS_P_KEY], e->episode_id, sizeof e->episode_id);
  hw_vs_str(&p[HW_VS_P_TERMINAL], e->terminal_id, sizeof e->terminal_id);
  hw_vs_opt(&p[HW_VS_P_PLATE], it->plate, sizeof it->plate);
  hw_vs_opt(&p[HW_VS_P_REGION], it->region, sizeof it->region);
  hw_vs_opt(&p[HW_VS_P_ENTERPRISE], it->enterprise, sizeof it->enterprise);
  hw_pg_array_i64(&p[HW_VS_P_STARTED], e->started_ms);
  hw_pg_array_i64(&p[HW_VS_P_LAST], e->ended_ms);
  hw_pg_array_raw(&p[HW_VS_P_CLOSED], it->closed ? "t" : "f", 1);
  hw_pg_array_i64(&p[HW_VS_P_LAT], e->lat_e6);
  hw_pg_array_i64(&p[HW_VS_P_LON], e->lon_e6);
  hw_vs_measure(&p[HW_VS_P_MEASURED], e->kind, e->value);
  if (hw_vs_value_with_start(e->kind))
    hw_pg_array_null(&p[HW_VS_P_LIMIT]);
  else
    hw_vs_measure(&p[HW_VS_P_LIMIT], e->kind, e->limit);
  if (e->grade)
    hw_pg_array_i64(&p[HW_VS_P_GRADE], e->grade);
  else
    hw_pg_array_null(&p[HW_VS_P_GRADE]);
  hw_vs_str(&p[HW_VS_P_EVIDENCE], e->evidence[0] ? e->evidence : "{}", sizeof e->evidence);
  hw_pg_array_i64(&p[HW_VS_P_EPOCH], (int64_t)it->epoch);
}

/* Every item is freed here: its terminal's count of waiting episodes goes down with it. */
static void hw_vs_item_free(hw_vs_item *it) {
  if (!it)
    return;
  if (it->term && it->term->viol_waiting)
    it->term->viol_waiting--;
  free(it);
}

/* ---- batches ----------------------------------------------------------------------------- */

static void hw_vs_free_batch(hw_violation_store *s) {
  for (size_t i = s->done; i < s->nbatch; i++)
    hw_vs_item_free(s->batch[i]);
  free(s->batch);
  s->batch = NULL;
  s->nbatch = s->done = 0;
  s->splitting = 0;
}

static size_t hw_vs_waiting(const hw_violation_store *s) {
  return s->npending + (s->nbatch - s->done);
}

/* Moves up to HW_VSTORE_MAX_BATCH episodes, oldest first, from pending into a new batch. */
static int hw_vs_take_batch(hw_violation_store *s) {
  size_t n = s->npending < HW_VSTORE_MAX_BATCH ? s->npending : HW_VSTORE_MAX_BATCH;
  s->batch = malloc(n * sizeof *s->batch);
  if (!s->batch)
    return -ENOMEM;
  hw_vs_item *it, *tmp;
  size_t i = 0;
  HASH_ITER(hh, s->pending, it, tmp) {
    if (i == n)
      break;
    HASH_DEL(s->pending, it);
    s->batch[i++] = it;
  }
  s->npending -= n;
  s->nbatch = n;
  s->done = 0;
  s->splitting = 0;
  return 0;
}

static void hw_vs_on_timer(uv_timer_t *t);

static void hw_vs_schedule(hw_violation_store *s, uint64_t delay_ms) {
  if (s->closing)
    return;
  (void)uv_timer_start(&s->timer, hw_vs_on_timer, delay_ms, 0); /* cannot fail on a live timer */
}

/* grow: the database refused; wait longer each time. Otherwise the session was lost: pg_async
 * holds a query until the next session is up, so the short first delay only spaces attempts
 * when sessions keep dying under the statement. */
static void hw_vs_retry_later(hw_violation_store *s, int grow) {
  s->stats.retries++;
  hw_vs_schedule(s, grow ? s->backoff_ms : HW_VSTORE_RETRY_MIN_MS);
  if (grow)
    s->backoff_ms = s->backoff_ms * 2 > HW_VSTORE_RETRY_MAX_MS ? HW_VSTORE_RETRY_MAX_MS
                                                               : s->backoff_ms * 2;
}

/* After a statement: what to write next, and when. */
static void hw_vs_next(hw_violation_store *s) {
  if (s->stopping && hw_vs_waiting(s) == 0) {
    hw_vs_close(s);
    return;
  }
  if (s->nbatch) { /* splitting: the next episode on its own, at once */
    hw_vs_send(s);
    return;
  }
  if (!s->npending)
    return; /* the next put arms the timer */
  uint64_t since = uv_now(s->loop) - s->last_send;
  if (s->stopping || s->npending >= HW_VSTORE_BATCH || since >= HW_VSTORE_FLUSH_MS)
    hw_vs_schedule(s, 0);
  else
    hw_vs_schedule(s, HW_VSTORE_FLUSH_MS - since);
}

static int hw_vs_data_error(const char *sqlstate) {
  return !strncmp(sqlstate, "22", 2) || !strncmp(sqlstate, "23", 2);
}

static void hw_vs_on_result(void *arg, const PGresult *res) {
  hw_violation_store *s = arg;
  s->inflight = 0;
  if (s->closing)
    return; /* hw_pg_async_stop answers what was queued with NULL; the batch is logged as lost */
  size_t n = s->splitting ? 1 : s->nbatch;
  if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
    int nrefused = PQntuples(res);
    for (int i = 0; i < nrefused; i++) {
      uint64_t e = strtoull(PQgetvalue(res, i, 1), NULL, 10);
      hw_warn(HW_VS_LOG, PQgetvalue(res, i, 0), "episode %s refused: epoch %llu is no longer the "
              "terminal's (another daemon claimed it)", PQgetvalue(res, i, 2), (unsigned long long)e);
      if (s->fenced)
        s->fenced(s->fenced_arg, PQgetvalue(res, i, 0), e);
    }
    s->stats.fenced += (uint64_t)nrefused;
    n -= (size_t)nrefused <= n ? (size_t)nrefused : n;
    s->stats.statements++;
    s->stats.written += n;
    s->backoff_ms = HW_VSTORE_RETRY_MIN_MS;
    if (s->splitting) {
      hw_vs_item_free(s->batch[s->done]);
      s->batch[s->done++] = NULL;
      if (s->done == s->nbatch)
        hw_vs_free_batch(s);
    } else {
      hw_vs_free_batch(s);
    }
    hw_vs_next(s);
    return;
  }
  if (!res) {
    hw_warn(HW_VS_LOG, NULL, "write of %zu episodes lost with the connection; sending again on "
            "the next session", n);
    hw_vs_retry_later(s, 0);
    return;
  }
  const char *state = hw_pg_sqlstate(res);
  if (hw_vs_data_error(state) && !s->splitting && s->nbatch > 1) {
    hw_warn(HW_VS_LOG, NULL, "batch of %zu episodes refused (%s %s); writing them one by one",
            s->nbatch, state, hw_pg_errmsg(res));
    s->stats.retries++;
    s->splitting = 1;
    hw_vs_send(s);
    return;
  }
  if (hw_vs_data_error(state)) {
    hw_vs_item *it = s->batch[s->done];
    hw_error(HW_VS_LOG, it->ev.terminal_id, "episode %s (%s) refused and dropped: %s %s",
             it->ev.episode_id, hw_violation_phase_name(it->ev.phase), state, hw_pg_errmsg(res));
    s->stats.rejected++;
    if (s->splitting) {
      hw_vs_item_free(it);
      s->batch[s->done++] = NULL;
      if (s->done == s->nbatch)
        hw_vs_free_batch(s);
    } else {
      hw_vs_free_batch(s);
    }
    hw_vs_next(s);
    return;
  }
  hw_warn(HW_VS_LOG, NULL, "write of %zu episodes failed: %s %s; sending again in %u ms", n, state,
          hw_pg_errmsg(res), s->backoff_ms);
  hw_vs_retry_later(s, 1);
}

/* Sends the batch (or, when splitting, its next episode). */
static void hw_vs_send(hw_violation_store *s) {
  if (s->inflight || s->closing || !s->nbatch)
    return;
  hw_pg_array p[HW_VS_P_COUNT];
  const char *params[HW_VS_P_COUNT];
  memset(p, 0, sizeof p);
  size_t from = s->splitting ? s->done : 0, to = s->splitting ? s->done + 1 : s->nbatch;
  for (size_t i = from; i < to; i++)
    hw_vs_add(p, s->batch[i]);
  int rc = 0;
  for (int i = 0; i < HW_VS_P_COUNT; i++)
    if (!(params[i] = hw_pg_array_finish(&p[i])))
      rc = -ENOMEM;
  if (rc == 0)
    rc = hw_pg_async_query(s->pg, hw_vs_sql, HW_VS_P_COUNT, params, hw_vs_on_result, s);
  for (int i = 0; i < HW_VS_P_COUNT; i++)
    hw_pg_array_free(&p[i]);
  if (rc) {
    hw_error(HW_VS_LOG, NULL, "cannot queue a write of %zu episodes: %s; retrying", to - from,
             strerror(-rc));
    hw_vs_retry_later(s, 1);
    return;
  }
  s->inflight = 1;
  s->last_send = uv_now(s->loop);
}

static void hw_vs_on_timer(uv_timer_t *t) {
  hw_violation_store *s = t->data;
  if (s->inflight || s->closing)
    return;
  if (!s->nbatch) {
    if (!s->npending)
      return;
    if (hw_vs_take_batch(s)) {
      hw_vs_retry_later(s, 1);
      return;
    }
  }
  hw_vs_send(s);
}

/* ---- public ------------------------------------------------------------------------------ */

int hw_violation_store_start(hw_violation_store **out, uv_loop_t *loop, const char *conninfo) {
  if (!out || !loop || !conninfo)
    return -EINVAL;
  hw_violation_store *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->loop = loop;
  s->backoff_ms = HW_VSTORE_RETRY_MIN_MS;
  int rc = hw_pg_async_start(&s->pg, loop, conninfo, "violations");
  if (rc) {
    free(s);
    return rc;
  }
  (void)uv_timer_init(loop, &s->timer); /* only initialises memory */
  (void)uv_timer_init(loop, &s->deadline);
  s->timer.data = s->deadline.data = s;
  *out = s;
  return 0;
}

static void hw_vs_log_drop(hw_violation_store *s, const hw_violation_event *ev, const char *why) {
  uint64_t now = uv_now(s->loop);
  s->stats.dropped++;
  if (s->drop_log_ms && now - s->drop_log_ms < 1000) {
    s->drops_unlogged++;
    return;
  }
  hw_error(HW_VS_LOG, ev->terminal_id, "violation event %s dropped: %s (%llu dropped in all, %zu "
           "episodes waiting)", ev->episode_id, why, (unsigned long long)s->stats.dropped,
           hw_vs_waiting(s));
  s->drop_log_ms = now;
  s->drops_unlogged = 0;
}

void hw_violation_store_put(hw_violation_store *s, const hw_violation_event *ev, const hw_vehicle *v) {
  hw_violation_store_put_owned(s, ev, v, NULL);
}

void hw_violation_store_set_fenced(hw_violation_store *s, hw_owner_fenced_fn fenced, void *arg) {
  s->fenced = fenced;
  s->fenced_arg = arg;
}

void hw_violation_store_put_owned(hw_violation_store *s, const hw_violation_event *ev,
                                  const hw_vehicle *v, hw_terminal *t) {
  uint64_t epoch = t ? t->owner_epoch : 0;
  s->stats.events++;
  if (epoch == HW_OWNER_LOST) {
    /* Lost, or being claimed again: the owner that evaluates it now writes its episodes. */
    s->stats.fenced++;
    return;
  }
  if (s->stopping) {
    hw_vs_log_drop(s, ev, "the store is stopping");
    return;
  }
  size_t klen = strnlen(ev->episode_id, sizeof ev->episode_id);
  if (!hw_violation_kind_name(ev->kind) || klen == 0 || klen == sizeof ev->episode_id ||
      strnlen(ev->terminal_id, sizeof ev->terminal_id) == sizeof ev->terminal_id) {
    hw_vs_log_drop(s, ev, "malformed event");
    return;
  }
  hw_vs_item *it = NULL;
  HASH_FIND(hh, s->pending, ev->episode_id, klen, it);
  if (it) {
    s->stats.merged++;
    hw_vs_merge(it, ev);
    hw_vs_vehicle(it, v);
    if (epoch > it->epoch)
      it->epoch = epoch;
    return;
  }
  if (hw_vs_waiting(s) >= HW_VSTORE_MAX_PENDING) {
    hw_vs_log_drop(s, ev, "too many episodes waiting for PostgreSQL");
    return;
  }
  it = calloc(1, sizeof *it);
  if (!it) {
    hw_vs_log_drop(s, ev, "out of memory");
    return;
  }
  it->ev = *ev;
  it->ev.evidence[sizeof it->ev.evidence - 1] = '\0';
  it->closed = ev->phase == HW_PHASE_CLOSE;
  it->epoch = epoch;
  if (t) {
    it->term = t;
    t->viol_waiting++;
  }
  hw_vs_vehicle(it, v);
  HASH_ADD(hh, s->pending, ev.episode_id, klen, it);
  s->npending++;
  if (s->nbatch || s->inflight)
    return; /* the statement's completion schedules the next */
  if (s->npending >= HW_VSTORE_BATCH)
    hw_vs_schedule(s, 0);
  else if (!uv_is_active((uv_handle_t *)&s->timer))
    hw_vs_schedule(s, HW_VSTORE_FLUSH_MS);
}

void hw_violation_store_get_stats(const hw_violation_store *s, hw_violation_store_stats *out) {
  *out = s->stats;
  out->pending = hw_vs_waiting(s);
}

static void hw_vs_maybe_done(hw_violation_store *s) {
  if (s->handles > 0 || s->pg)
    return;
  hw_vs_item *it, *tmp;
  HASH_ITER(hh, s->pending, it, tmp) {
    HASH_DEL(s->pending, it);
    hw_vs_item_free(it);
  }
  hw_vs_free_batch(s);
  void (*cb)(void *) = s->done_cb;
  void *arg = s->done_arg;
  free(s);
  if (cb)
    cb(arg);
}

static void hw_vs_on_handle_closed(uv_handle_t *h) {
  hw_violation_store *s = h->data;
  s->handles--;
  hw_vs_maybe_done(s);
}

static void hw_vs_on_pg_stopped(void *arg) {
  hw_violation_store *s = arg;
  s->pg = NULL;
  hw_vs_maybe_done(s);
}

static void hw_vs_close(hw_violation_store *s) {
  if (s->closing)
    return;
  s->closing = 1;
  size_t lost = hw_vs_waiting(s);
  if (lost)
    hw_error(HW_VS_LOG, NULL, "stopped with %zu episodes unwritten (PostgreSQL unreachable or too "
             "slow for %d ms); a replay after restart re-emits what the saved rule state allows",
             lost, HW_VSTORE_STOP_MS);
  hw_info(HW_VS_LOG, NULL, "stopped: %llu events, %llu episode writes in %llu statements, %llu "
          "retries, %llu dropped, %llu rejected", (unsigned long long)s->stats.events,
          (unsigned long long)s->stats.written, (unsigned long long)s->stats.statements,
          (unsigned long long)s->stats.retries, (unsigned long long)s->stats.dropped,
          (unsigned long long)s->stats.rejected);
  s->handles = 2;
  uv_close((uv_handle_t *)&s->timer, hw_vs_on_handle_closed);
  uv_close((uv_handle_t *)&s->deadline, hw_vs_on_handle_closed);
  hw_pg_async_stop(s->pg, hw_vs_on_pg_stopped, s);
}

static void hw_vs_on_deadline(uv_timer_t *t) { hw_vs_close(t->data); }

void hw_violation_store_stop(hw_violation_store *s, void (*done_cb)(void *arg), void *arg) {
  if (s->stopping)
    return;
  s->stopping = 1;
  s->done_cb = done_cb;
  s->done_arg = arg;
  if (hw_vs_waiting(s) == 0 && !s->inflight) {
    hw_vs_close(s);
    return;
  }
  (void)uv_timer_start(&s->deadline, hw_vs_on_deadline, HW_VSTORE_STOP_MS, 0);
  if (!s->inflight)
    hw_vs_schedule(s, 0); /* also cuts a retry backoff short */
}
