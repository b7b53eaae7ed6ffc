/* rule_state: blocking load and replay at start, periodic chunked saves on the loop. */
#include "sinks/rule_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_array.h"
#include "sinks/pg_async.h"
#include "sinks/pg_conn.h"
#include "registry/zone_index.h"

#define HW_RSTORE_LOG "rulestate"
#define HW_RSTORE_SCAN 8192 /* records looked at per loop turn (about 5 ms) */
/* The mark is the start of the last complete save cycle less this: a wall clock stepped back by
 * less than it between a receipt and a save loses nothing. More only replays a little more. */
#define HW_RSTORE_MARK_SLACK_MS 1000
/* Grid of the zone index built for the replay (any size gives the same results). */
#define HW_RSTORE_ZONE_CELL_E6 20000

/* ---- load and replay ---------------------------------------------------------------------- */

static const char hw_q_states[] = "SELECT terminal_id, state FROM rule_state";
/* With ownership, a claimed terminal's state comes with its claim (owner_claim.h), never at
 * start: another daemon may own it now. */
static const char hw_q_states_unowned[] =
    "SELECT terminal_id, state FROM rule_state r "
    "WHERE NOT EXISTS (SELECT 1 FROM terminal_owner o WHERE o.terminal_id = r.terminal_id)";

/* Each state's horizon is exact in ms, as are stored device times, so "> horizon" is exactly the
 * fixes the engine has not evaluated. Columns are read by position in hw_rstore_fix. */
static const char hw_q_replay[] =
    HW_RSTORE_REPLAY_COLUMNS " "
    "FROM unnest($1::text[], $2::bigint[]) AS h(tid, hz) "
    "JOIN positions p ON p.terminal_id = h.tid "
    "AND p.ts > timestamptz 'epoch' + h.hz * interval '1 millisecond' "
    "WHERE (p.quality & ~" HW_XSTR(HW_Q_FIELD_ONLY) ") = 0 ORDER BY p.terminal_id, p.ts";

/* Terminals without an attached state ($1: the attached ids) are replayed from the mark: every
 * fix received since (rule_store.h). recv_ts has a block-range index (schema 008), as rows are
 * appended in receipt order, so this reads the recent blocks of each partition, not all of them.
 * Same columns as hw_q_replay. */
static const char hw_q_mark[] =
    "SELECT (extract(epoch FROM saved_before) * 1000)::bigint FROM rule_state_mark";
static const char hw_q_replay_new[] =
    HW_RSTORE_REPLAY_COLUMNS " "
    "FROM positions p "
    "WHERE p.recv_ts >= timestamptz 'epoch' + $2::bigint * interval '1 millisecond' "
    "AND (p.quality & ~" HW_XSTR(HW_Q_FIELD_ONLY) ") = 0 "
    "AND NOT EXISTS (SELECT 1 FROM unnest($1::text[]) AS h(tid) WHERE h.tid = p.terminal_id) "
    "ORDER BY p.terminal_id, p.ts";
static const char hw_q_replay_new_unowned[] =
    HW_RSTORE_REPLAY_COLUMNS " "
    "FROM positions p "
    "WHERE p.recv_ts >= timestamptz 'epoch' + $2::bigint * interval '1 millisecond' "
    "AND (p.quality & ~" HW_XSTR(HW_Q_FIELD_ONLY) ") = 0 "
    "AND NOT EXISTS (SELECT 1 FROM unnest($1::text[]) AS h(tid) WHERE h.tid = p.terminal_id) "
    "AND NOT EXISTS (SELECT 1 FROM terminal_owner o WHERE o.terminal_id = p.terminal_id) "
    "ORDER BY p.terminal_id, p.ts";

static int64_t hw_rstore_val(const PGresult *r, int row, int col) {
  return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static uint32_t hw_rstore_u32(const PGresult *r, int row, int col) {
  int64_t v = hw_rstore_val(r, row, col);
  return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void hw_rule_store_row_fix(const PGresult *r, int row, hw_fix *f) {
  memset(f, 0, sizeof *f);
  f->ts_ms = hw_rstore_val(r, row, 1);
  f->recv_ms = hw_rstore_val(r, row, 2);
  f->lat_e6 = (int32_t)hw_rstore_val(r, row, 3);
  f->lon_e6 = (int32_t)hw_rstore_val(r, row, 4);
  f->speed_dkmh = hw_rstore_u32(r, row, 5);
  f->heading = (uint16_t)hw_rstore_u32(r, row, 6);
  f->alt_m = (int32_t)hw_rstore_val(r, row, 7);
  f->alarm = hw_rstore_u32(r, row, 8);
  f->status = hw_rstore_u32(r, row, 9);
  f->odometer_hm = hw_rstore_u32(r, row, 10);
  if (!PQgetisnull(r, row, 11)) {
    f->has_driver = 1;
    snprintf(f->driver_id, sizeof f->driver_id, "%s", PQgetvalue(r, row, 11));
  }
  f->source = (uint8_t)hw_rstore_u32(r, row, 12);
  f->seq = hw_rstore_val(r, row, 13);
  f->quality = 0;
}

/* Attaches every decodable state of rule_state; ids and horizons of the attached ones are
 * appended to the two arrays for the replay. */
static int hw_rstore_attach(PGconn *conn, hw_registry *reg, hw_registry_cache *cache,
                            hw_pg_array *ids, hw_pg_array *horizons, size_t *loaded, int unowned) {
  /* Binary results: the state comes as its bytes, no hex to decode. */
  PGresult *res = PQexecParams(conn, unowned ? hw_q_states_unowned : hw_q_states, 0, NULL, NULL,
                               NULL, NULL, 1);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_error(HW_RSTORE_LOG, NULL, "cannot read rule_state: %s", hw_pg_errmsg(res));
    PQclear(res);
    return -EIO;
  }
  size_t skipped = 0;
  int rc = 0;
  for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
    const char *id = PQgetvalue(res, i, 0);
    size_t idlen = (size_t)PQgetlength(res, i, 0);
    if (idlen == 0 || idlen > HW_TID_WIDE_MAX || strlen(id) != idlen) {
      hw_warn(HW_RSTORE_LOG, NULL, "rule_state row %d: unusable terminal id, skipped", i);
      skipped++;
      continue;
    }
    hw_terminal *t;
    if ((rc = hw_registry_get(reg, id, &t)))
      break;
    if (t->rules) {
      hw_warn(HW_RSTORE_LOG, id, "terminal already has a rule state; saved state not loaded");
      skipped++;
      continue;
    }
    struct hw_rule_state *st = NULL;
    int drc = hw_rule_state_decode((const uint8_t *)PQgetvalue(res, i, 1),
                                   (size_t)PQgetlength(res, i, 1), &st);
    if (drc == -ENOMEM) {
      rc = drc;
      break;
    }
    if (drc) {
      hw_warn(HW_RSTORE_LOG, id, "saved rule state not usable (%s): the terminal starts afresh",
              drc == -ENOTSUP ? "another encoding version" : "malformed");
      skipped++;
      continue;
    }
    t->rules = st;
    if (cache)
      hw_registry_cache_bind(cache, t);
    hw_pg_array_text(ids, id, idlen);
    hw_pg_array_i64(horizons, hw_rule_state_horizon_ms(st));
    (*loaded)++;
  }
  PQclear(res);
  if (skipped)
    hw_warn(HW_RSTORE_LOG, NULL, "%zu saved rule states skipped", skipped);
  return rc;
}

/* Streams a replay query (sql with its two parameters) row by row into the engine. create: the
 * terminals are not attached yet; their records are created (and bound through cache). */
static int hw_rstore_replay(PGconn *conn, hw_registry *reg, hw_rules *engine,
                            hw_registry_cache *cache, const hw_registry_snapshot *snap,
                            const char *sql, const char *p1, const char *p2, int create,
                            size_t *replayed, size_t *terminals) {
  const char *params[2] = {p1, p2};
  if (!PQsendQueryParams(conn, sql, 2, NULL, params, NULL, NULL, 0)) {
    hw_error(HW_RSTORE_LOG, NULL, "cannot send the replay query: %s", PQerrorMessage(conn));
    return -EIO;
  }
  if (!PQsetSingleRowMode(conn))
    hw_warn(HW_RSTORE_LOG, NULL, "single-row mode refused: the replay is read in one piece");
  int rc = 0;
  size_t failed = 0;
  hw_terminal *t = NULL;
  const hw_vehicle *v = NULL;
  PGresult *res;
  while ((res = PQgetResult(conn))) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK && PQntuples(res) == 0) {
      PQclear(res);
      continue; /* the end of a single-row stream */
    }
    if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK) {
      if (rc == 0) {
        hw_error(HW_RSTORE_LOG, NULL, "replay query failed: %s", hw_pg_errmsg(res));
        rc = -EIO;
      }
      PQclear(res);
      continue; /* drain to the end so conn is usable */
    }
    /* One row per result in single-row mode; all of them in one result without it. */
    for (int row = 0; row < PQntuples(res); row++) {
      const char *id = PQgetvalue(res, row, 0);
      if (!t || strcmp(t->id, id) != 0) {
        t = hw_registry_find(reg, id);
        if (!t && create && rc == 0 && strlen(id) <= HW_TID_WIDE_MAX) {
          int grc = hw_registry_get(reg, id, &t);
          if (grc) {
            rc = grc; /* out of memory: drain the stream, report it */
            t = NULL;
          } else if (cache) {
            hw_registry_cache_bind(cache, t);
          }
        }
        v = !t ? NULL : cache ? hw_registry_cache_vehicle(cache, id)
                              : hw_registry_snapshot_vehicle(snap, id);
        if (t)
          (*terminals)++;
      }
      if (!t)
        continue; /* attached terminals only, unless create */
      hw_fix f;
      hw_rule_store_row_fix(res, row, &f);
      int frc = hw_rules_on_fix(engine, t, v, &f);
      if (frc)
        failed++;
      (*replayed)++;
    }
    PQclear(res);
  }
  if (failed)
    hw_warn(HW_RSTORE_LOG, NULL, "%zu replayed fixes not evaluated (out of memory?)", failed);
  return rc;
}

/* The mark: fixes received from it on may be in no saved state. */
static int hw_rstore_read_mark(PGconn *conn, int64_t *mark_ms) {
  PGresult *res = PQexec(conn, hw_q_mark);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_error(HW_RSTORE_LOG, NULL, "cannot read rule_state_mark: %s", hw_pg_errmsg(res));
    rc = -EIO;
  } else if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
    /* Only a hand-edited table: without a mark, replay everything stored. */
    hw_warn(HW_RSTORE_LOG, NULL, "rule_state_mark is empty: terminals without a saved state are "
            "replayed from all their stored fixes");
    *mark_ms = 0;
  } else {
    *mark_ms = hw_rstore_val(res, 0, 0);
  }
  PQclear(res);
  return rc;
}

static int hw_rstore_load(PGconn *conn, hw_registry *reg, hw_rules *engine,
                          hw_registry_cache *cache, size_t *loaded, size_t *replayed, int unowned) {
  size_t nloaded = 0, nreplayed = 0, nnew = 0, nnew_terminals = 0, nold_terminals = 0;
  hw_pg_array ids = {0}, horizons = {0};
  const hw_registry_snapshot *snap = NULL;
  hw_zone_index *zones = NULL;
  int64_t t0 = hw_now_ms(), mark_ms = 0;
  if (!conn || !reg || !engine)
    return -EINVAL;
  int rc = hw_rstore_attach(conn, reg, cache, &ids, &horizons, &nloaded, unowned);
  if (rc)
    goto out;
  const char *pids = hw_pg_array_finish(&ids), *phz = hw_pg_array_finish(&horizons);
  if (!pids || !phz) {
    rc = -ENOMEM;
    goto out;
  }
  if ((rc = hw_rstore_read_mark(conn, &mark_ms)))
    goto out;
  if (!cache) {
    hw_registry_snapshot *s = NULL;
    if ((rc = hw_registry_snapshot_load(conn, &s))) {
      hw_error(HW_RSTORE_LOG, NULL, "no registry to replay with: rule states loaded, not replayed");
      goto out;
    }
    snap = s;
    /* The replay judges zone rules and zone speed limits as live evaluation would. */
    if (snap->nzones &&
        hw_zone_index_build(snap->zones, snap->nzones, HW_RSTORE_ZONE_CELL_E6, &zones) == 0)
      hw_rules_set_zones(engine, zones);
    else if (snap->nzones)
      hw_warn(HW_RSTORE_LOG, NULL, "cannot index %zu zones: the replay is without zones",
              snap->nzones);
  }
  if (nloaded)
    rc = hw_rstore_replay(conn, reg, engine, cache, snap, hw_q_replay, pids, phz, 0, &nreplayed,
                          &nold_terminals);
  if (rc == 0) {
    char mark[32];
    snprintf(mark, sizeof mark, "%lld", (long long)(mark_ms > HW_RSTORE_MARK_SLACK_MS
                                                        ? mark_ms - HW_RSTORE_MARK_SLACK_MS : 0));
    rc = hw_rstore_replay(conn, reg, engine, cache, snap,
                          unowned ? hw_q_replay_new_unowned : hw_q_replay_new, pids, mark, 1,
                          &nnew, &nnew_terminals);
    nreplayed += nnew;
  }
out:
  if (zones) {
    hw_rules_set_zones(engine, NULL);
    hw_zone_index_free(zones);
  }
  hw_registry_snapshot_unref(snap);
  hw_pg_array_free(&ids);
  hw_pg_array_free(&horizons);
  if (rc == 0)
    hw_info(HW_RSTORE_LOG, NULL, "%zu rule states loaded, %zu stored fixes replayed (%zu of %zu "
            "terminals without a saved state, received since the last complete save) (%lld ms)",
            nloaded, nreplayed, nnew, nnew_terminals, (long long)(hw_now_ms() - t0));
  if (loaded)
    *loaded = nloaded;
  if (replayed)
    *replayed = nreplayed;
  return rc;
}

int hw_rule_store_load(PGconn *conn, hw_registry *reg, hw_rules *engine, hw_registry_cache *cache,
                       size_t *loaded, size_t *replayed) {
  return hw_rstore_load(conn, reg, engine, cache, loaded, replayed, 0);
}

int hw_rule_store_load_unowned(PGconn *conn, hw_registry *reg, hw_rules *engine,
                               hw_registry_cache *cache, size_t *loaded, size_t *replayed) {
  return hw_rstore_load(conn, reg, engine, cache, loaded, replayed, 1);
}

/* ---- periodic save ------------------------------------------------------------------------ */

/* Every state was encoded after the cycle started, so every fix received before then is in a
 * saved state (or newer than its horizon): what a restart owes a replay starts here. */
static const char hw_q_save_mark[] =
    "INSERT INTO rule_state_mark (id, saved_before) "
    "VALUES (1, timestamptz 'epoch' + $1::bigint * interval '1 millisecond') "
    "ON CONFLICT (id) DO UPDATE SET saved_before = EXCLUDED.saved_before";

/* Fenced (docs/ownership.md): a state with an epoch ($3, 0 = unfenced) is written only while
 * terminal_owner still has that epoch, checked under a FOR SHARE lock so a claim either waits for
 * this statement or this statement sees the claim. The refused terminals come back as rows. The
 * rows are locked in terminal_id order, as a batch of claims takes them (owner_claim.c), so the
 * two never wait for each other in a cycle. */
static const char hw_q_save[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(t, h, e)), "
    "ok AS (SELECT o.terminal_id, o.epoch FROM terminal_owner o "
    "WHERE o.terminal_id IN (SELECT u.t FROM u WHERE u.e > 0) ORDER BY o.terminal_id FOR SHARE), "
    "w AS (INSERT INTO rule_state (terminal_id, state, updated_at) "
    "SELECT u.t, decode(u.h, 'hex'), now() FROM u WHERE u.e = 0 "
    "OR EXISTS (SELECT 1 FROM ok WHERE ok.terminal_id = u.t AND ok.epoch = u.e) "
    "ON CONFLICT (terminal_id) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at "
    "RETURNING 1) "
    "SELECT u.t, u.e FROM u WHERE u.e > 0 "
    "AND NOT EXISTS (SELECT 1 FROM ok WHERE ok.terminal_id = u.t AND ok.epoch = u.e)";

/* What was last saved for a terminal: open addressing by record address (records never move
 * and are never freed while the store runs). */
typedef struct hw_rstore_slot {
  const hw_terminal *t; /* NULL = empty */
  uint64_t hash;
} hw_rstore_slot;

typedef struct hw_rstore_pending {
  const hw_terminal *t;
  uint64_t hash;
} hw_rstore_pending;

struct hw_rule_store {
  uv_loop_t *loop;
  hw_pg_async *pg;   /* owned; NULL once stopped */
  hw_registry *reg;  /* borrowed */
  uint32_t interval_ms;
  uv_timer_t timer;
  uv_idle_t next;      /* continues a cycle at the next loop turn after a slice of encoding */
  uv_timer_t deadline;

  hw_rstore_slot *slots; /* owned; power-of-two size */
  size_t nslots, used;

  int cycle;             /* a cycle is in progress */
  int final;             /* the cycle in progress is the one stop asked for */
  int final_pending;     /* stop came during a cycle: one more after it */
  hw_terminal *cursor;   /* next record to look at; NULL = end of the registry */
  hw_rstore_pending *chunk; /* owned: the terminals of the statement in flight */
  size_t nchunk;
  size_t cycle_terminals;
  uint64_t cycle_start;
  int64_t cycle_start_wall; /* hw_now_ms() at the start: the mark once the cycle completes */
  hw_rule_store_stats stats;
  hw_rule_store_hooks hooks; /* zero: one worker */
  hw_owner_hold_fn hold;   /* may be NULL */
  hw_owner_fenced_fn fenced; /* may be NULL */
  void *owner_arg;

  int stopping, closing, handles;
  void (*done_cb)(void *arg);
  void *done_arg;
};

static void hw_rstore_step(hw_rule_store *s);
static void hw_rstore_close(hw_rule_store *s);

static uint64_t hw_rstore_hash(const uint8_t *b, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static size_t hw_rstore_home(const hw_rule_store *s, const hw_terminal *t) {
  uint64_t x = (uint64_t)(uintptr_t)t * 0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 17) & (s->nslots - 1);
}

static hw_rstore_slot *hw_rstore_slot_of(hw_rule_store *s, const hw_terminal *t) {
  for (size_t i = hw_rstore_home(s, t);; i = (i + 1) & (s->nslots - 1))
    if (s->slots[i].t == t || !s->slots[i].t)
      return &s->slots[i];
}

static int hw_rstore_remember(hw_rule_store *s, const hw_terminal *t, uint64_t hash) {
  if ((s->used + 1) * 2 > s->nslots) {
    size_t n = s->nslots ? s->nslots * 2 : 1024;
    hw_rstore_slot *old = s->slots, *fresh = calloc(n, sizeof *fresh);
    if (!fresh)
      return -ENOMEM;
    size_t oldn = s->nslots;
    s->slots = fresh;
    s->nslots = n;
    for (size_t i = 0; i < oldn; i++)
      if (old[i].t)
        *hw_rstore_slot_of(s, old[i].t) = old[i];
    free(old);
  }
  hw_rstore_slot *sl = hw_rstore_slot_of(s, t);
  if (!sl->t) {
    sl->t = t;
    s->used++;
  }
  sl->hash = hash;
  return 0;
}

static int hw_rstore_saved(hw_rule_store *s, const hw_terminal *t, uint64_t hash) {
  if (!s->nslots)
    return 0;
  hw_rstore_slot *sl = hw_rstore_slot_of(s, t);
  return sl->t == t && sl->hash == hash;
}

static void hw_rstore_on_timer(uv_timer_t *t);

static void hw_rstore_begin(hw_rule_store *s) {
  s->cycle = 1;
  s->cursor = s->reg->by_id;
  s->cycle_terminals = 0;
  s->cycle_start = uv_now(s->loop);
  /* The same clock as the fixes' receipt times (recv_ts), which the mark is compared with. */
  s->cycle_start_wall = hw_now_ms();
  hw_rstore_step(s);
}

static void hw_rstore_end(hw_rule_store *s, int ok) {
  s->cycle = 0;
  s->final = 0;
  s->nchunk = 0;
  if (ok) {
    s->stats.cycles++;
    s->stats.terminals = s->cycle_terminals;
    s->stats.last_cycle_ms = (int64_t)(uv_now(s->loop) - s->cycle_start);
  } else {
    s->stats.cycles_failed++;
  }
  if (!s->stopping)
    return;
  if (s->final_pending) {
    s->final_pending = 0;
    s->final = 1;
    hw_rstore_begin(s);
    return;
  }
  hw_rstore_close(s);
}

static void hw_rstore_on_result(void *arg, const PGresult *res) {
  hw_rule_store *s = arg;
  if (s->closing)
    return;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    /* Nothing remembered for this chunk: its terminals are still "changed" next time. */
    hw_warn(HW_RSTORE_LOG, NULL, "saving %zu rule states failed: %s%s%s", s->nchunk,
            res ? hw_pg_sqlstate(res) : "", res ? " " : "", res ? hw_pg_errmsg(res) : "connection lost");
    hw_rstore_end(s, 0);
    return;
  }
  for (size_t i = 0; i < s->nchunk; i++)
    if (hw_rstore_remember(s, s->chunk[i].t, s->chunk[i].hash))
      break; /* out of memory: those are written again next time, harmless */
  int nrefused = PQntuples(res);
  for (int i = 0; i < nrefused; i++) {
    /* Another daemon claimed it: this one lost the terminal (ownership.md). */
    uint64_t e = strtoull(PQgetvalue(res, i, 1), NULL, 10);
    hw_warn(HW_RSTORE_LOG, PQgetvalue(res, i, 0), "rule state save refused: epoch %llu is no "
            "longer the terminal's (another daemon claimed it)", (unsigned long long)e);
    if (s->fenced)
      s->fenced(s->owner_arg, PQgetvalue(res, i, 0), e);
  }
  s->stats.refused += (uint64_t)nrefused;
  s->stats.saved += s->nchunk - (size_t)nrefused;
  s->nchunk = 0;
  hw_rstore_step(s);
}

static void hw_rstore_on_mark(void *arg, const PGresult *res) {
  hw_rule_store *s = arg;
  if (s->closing)
    return;
  if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
    /* The states are saved; only the mark stays behind, so a restart replays a little more. */
    hw_warn(HW_RSTORE_LOG, NULL, "saving the replay mark failed: %s%s%s",
            res ? hw_pg_sqlstate(res) : "", res ? " " : "", res ? hw_pg_errmsg(res) : "connection lost");
    hw_rstore_end(s, 0);
    return;
  }
  hw_rstore_end(s, 1);
}

void hw_rule_store_set_hooks(hw_rule_store *s, const hw_rule_store_hooks *hooks) {
  s->hooks = *hooks;
}

/* The last statement of a cycle whose states are all written. */
static void hw_rstore_save_mark(hw_rule_store *s) {
  char mark[32];
  int64_t at = s->hooks.mark ? s->hooks.mark(s->hooks.arg, s->cycle_start_wall) : s->cycle_start_wall;
  if (at <= 0) { /* another worker has not completed a cycle yet: its states may be unsaved */
    hw_rstore_end(s, 1);
    return;
  }
  snprintf(mark, sizeof mark, "%lld", (long long)at);
  const char *params[1] = {mark};
  int rc = hw_pg_async_query(s->pg, hw_q_save_mark, 1, params, hw_rstore_on_mark, s);
  if (rc) {
    hw_error(HW_RSTORE_LOG, NULL, "cannot queue the replay mark: %s", strerror(-rc));
    hw_rstore_end(s, 0);
  }
}

/* An idle handle, not a 0 ms timer: libuv runs a timer started from a timer callback in the same
 * pass, which would make the whole scan one long turn again. */
static void hw_rstore_on_next(uv_idle_t *h) {
  (void)uv_idle_stop(h);
  hw_rstore_step(h->data);
}

/* Encodes from the cursor until a chunk of changed states is full, and sends it; ends the cycle
 * at the end of the registry. Looks at HW_RSTORE_SCAN records per call at most, so that a
 * registry of unchanged states does not hold the loop for one long pass. */
static void hw_rstore_step(hw_rule_store *s) {
  hw_pg_array ids = {0}, states = {0}, epochs = {0};
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  size_t scanned = 0;
  s->nchunk = 0;
  while (s->cursor && s->nchunk < HW_RSTORE_CHUNK && scanned++ < HW_RSTORE_SCAN) {
    hw_terminal *t = s->cursor;
    s->cursor = t->hh.next;
    if (!t->rules || t->owner_epoch == HW_OWNER_LOST ||
        (s->hooks.owns && !s->hooks.owns(s->hooks.arg, t)))
      continue; /* lost, being claimed, or another worker's: not this one's to write */
    s->cycle_terminals++;
    /* Owned terminals whose violation events are not all written yet wait for the next cycle:
     * a state saved ahead of its events would let the next owner skip an episode whose events
     * the fence then refuses (ownership.md, "closed episodes"). */
    if (t->owner_epoch && s->hold && s->hold(s->owner_arg, t)) {
      s->stats.held++;
      continue;
    }
    size_t len = 0;
    if (hw_rule_state_encode(t->rules, buf, sizeof buf, &len)) {
      hw_error(HW_RSTORE_LOG, t->id, "rule state cannot be encoded; not saved");
      continue;
    }
    uint64_t h = hw_rstore_hash(buf, len);
    if (hw_rstore_saved(s, t, h)) {
      s->stats.unchanged++;
      continue;
    }
    hw_pg_array_text(&ids, t->id, strnlen(t->id, HW_TID_WIDE_MAX));
    hw_pg_array_hex(&states, buf, len);
    hw_pg_array_i64(&epochs, (int64_t)t->owner_epoch);
    s->chunk[s->nchunk].t = t;
    s->chunk[s->nchunk].hash = h;
    s->nchunk++;
  }
  if (s->nchunk == 0) {
    hw_pg_array_free(&ids);
    hw_pg_array_free(&states);
    hw_pg_array_free(&epochs);
    if (s->cursor)
      (void)uv_idle_start(&s->next, hw_rstore_on_next); /* the rest after other events */
    else
      hw_rstore_save_mark(s);
    return;
  }
  const char *params[3] = {hw_pg_array_finish(&ids), hw_pg_array_finish(&states),
                           hw_pg_array_finish(&epochs)};
  int rc = params[0] && params[1] && params[2]
               ? hw_pg_async_query(s->pg, hw_q_save, 3, params, hw_rstore_on_result, s)
               : -ENOMEM;
  hw_pg_array_free(&ids);
  hw_pg_array_free(&states);
  hw_pg_array_free(&epochs);
  if (rc) {
    hw_error(HW_RSTORE_LOG, NULL, "cannot queue a save of %zu rule states: %s", s->nchunk,
             strerror(-rc));
    hw_rstore_end(s, 0);
  }
}

static void hw_rstore_on_timer(uv_timer_t *t) {
  hw_rule_store *s = t->data;
  if (!s->cycle && !s->stopping)
    hw_rstore_begin(s);
}

int hw_rule_store_start(hw_rule_store **out, uv_loop_t *loop, const char *conninfo,
                        hw_registry *reg, uint32_t interval_ms) {
  if (!out || !loop || !conninfo || !reg)
    return -EINVAL;
  hw_rule_store *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->chunk = calloc(HW_RSTORE_CHUNK, sizeof *s->chunk);
  if (!s->chunk) {
    free(s);
    return -ENOMEM;
  }
  s->loop = loop;
  s->reg = reg;
  s->interval_ms = interval_ms ? interval_ms : HW_RSTORE_INTERVAL_MS;
  int rc = hw_pg_async_start(&s->pg, loop, conninfo, HW_RSTORE_LOG);
  if (rc) {
    free(s->chunk);
    free(s);
    return rc;
  }
  (void)uv_timer_init(loop, &s->timer); /* only initialises memory */
  (void)uv_idle_init(loop, &s->next);
  (void)uv_timer_init(loop, &s->deadline);
  s->timer.data = s->next.data = s->deadline.data = s;
  (void)uv_timer_start(&s->timer, hw_rstore_on_timer, s->interval_ms, s->interval_ms);
  *out = s;
  return 0;
}

void hw_rule_store_get_stats(const hw_rule_store *s, hw_rule_store_stats *out) { *out = s->stats; }

void hw_rule_store_set_owner(hw_rule_store *s, hw_owner_hold_fn hold, hw_owner_fenced_fn fenced,
                             void *arg) {
  s->hold = hold;
  s->fenced = fenced;
  s->owner_arg = arg;
}

static void hw_rstore_maybe_done(hw_rule_store *s) {
  if (s->handles > 0 || s->pg)
    return;
  void (*cb)(void *) = s->done_cb;
  void *arg = s->done_arg;
  free(s->slots);
  free(s->chunk);
  free(s);
  if (cb)
    cb(arg);
}

static void hw_rstore_on_handle_closed(uv_handle_t *h) {
  hw_rule_store *s = h->data;
  s->handles--;
  hw_rstore_maybe_done(s);
}

static void hw_rstore_on_pg_stopped(void *arg) {
  hw_rule_store *s = arg;
  s->pg = NULL;
  hw_rstore_maybe_done(s);
}

static void hw_rstore_close(hw_rule_store *s) {
  if (s->closing)
    return;
  s->closing = 1;
  hw_info(HW_RSTORE_LOG, NULL, "stopped: %llu cycles (%llu failed), %llu states saved, %zu "
          "terminals with a state", (unsigned long long)s->stats.cycles,
          (unsigned long long)s->stats.cycles_failed, (unsigned long long)s->stats.saved,
          s->stats.terminals);
  s->handles = 3;
  uv_close((uv_handle_t *)&s->timer, hw_rstore_on_handle_closed);
  uv_close((uv_handle_t *)&s->next, hw_rstore_on_handle_closed);
  uv_close((uv_handle_t *)&s->deadline, hw_rstore_on_handle_closed);
  hw_pg_async_stop(s->pg, hw_rstore_on_pg_stopped, s);
}

static void hw_rstore_on_deadline(uv_timer_t *t) {
  hw_rule_store *s = t->data;
  hw_error(HW_RSTORE_LOG, NULL, "stop: final save not done after %d ms; states changed since the "
           "last save are lost (a restart replays stored fixes from the saved horizons)",
           HW_RSTORE_STOP_MS);
  hw_rstore_close(s);
}

void hw_rule_store_stop(hw_rule_store *s, void (*done_cb)(void *arg), void *arg) {
  if (s->stopping)
    return;
  s->stopping = 1;
  s->done_cb = done_cb;
  s->done_arg = arg;
  uv_timer_stop(&s->timer);
  (void)uv_timer_start(&s->deadline, hw_rstore_on_deadline, HW_RSTORE_STOP_MS, 0);
  if (s->cycle) {
    s->final_pending = 1; /* states changed while this cycle ran may be behind it */
    return;
  }
  s->final = 1;
  hw_rstore_begin(s);
}
