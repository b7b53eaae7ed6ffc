/* hw_rule_store: a daemon restart in the middle of a drive changes nothing about the violations.
 *
 * Each scenario drives one truck through the rules engine twice: once without interruption (the
 * reference), once with a restart: the first part is fed live and every fix stored in positions,
 * the rule state saved by hw_rule_store_stop and everything freed; then some fixes are only
 * stored (received after the last save, before the "crash"); a fresh registry and engine load
 * the state (hw_rule_store_load replays those stored fixes) and the rest is fed live. The events
 * of the restarted run must be exactly those of the reference, and the violations table (fed by
 * hw_violation_store) must hold one row per episode. */
#include "viol_util.h"

#include "registry/registry_cache.h"
#include "sinks/rule_store.h"
#include "rules/rules.h"
#include "sinks/violation_store.h"

#define DB "hw_test_rstore"
#define TID "013800000003"
#define MINUTE 60000LL
#define MAXEV 4096
#define MAXFIX 1024

typedef struct fixture {
  hw_test_loop env;
  char conninfo[512];
  PGconn *pg;
  hw_registry_snapshot *snap; /* the registry as the daemon would load it */
  const hw_vehicle *v;        /* TID's vehicle in snap */
  hw_fix fix[MAXFIX];         /* the drive */
  size_t nfix;
} fixture;

/* One engine run: its own terminal registry, engine and recorded events. */
typedef struct run {
  hw_registry reg;
  hw_rules *e;
  hw_violation_event *ev; /* owned */
  size_t nev;
  hw_violation_store *store; /* NULL: events are only recorded */
  const hw_vehicle *v;
} run;

static void run_cb(const hw_violation_event *ev, void *arg) {
  run *r = arg;
  assert_true(r->nev < MAXEV);
  r->ev[r->nev++] = *ev;
  if (r->store)
    hw_violation_store_put(r->store, ev, r->v);
}

static void run_init(run *r, const fixture *f, hw_violation_store *store) {
  memset(r, 0, sizeof *r);
  r->ev = calloc(MAXEV, sizeof *r->ev);
  assert_non_null(r->ev);
  r->store = store;
  r->v = f->v;
  hw_rules_config cfg;
  hw_rules_config_default(&cfg);
  /* The drive is in March 2026; fixes received after a crash are received now. */
  cfg.quality.max_past_ms = 400LL * 86400000;
  assert_int_equal(hw_rules_new(&cfg, run_cb, r, &r->e), 0);
}

/* Frees the engine and every terminal's state (hw_registry_free does not). Events are kept. */
static void run_free_engine(run *r) {
  hw_registry_foreach(&r->reg, t) {
    hw_rule_state_free(t->rules);
    t->rules = NULL;
  }
  hw_registry_free(&r->reg);
  hw_rules_free(r->e);
  r->e = NULL;
}

static void run_feed_as(run *r, const char *tid, const hw_fix *fixes, size_t from, size_t to) {
  hw_terminal *t;
  assert_int_equal(hw_registry_get(&r->reg, tid, &t), 0);
  for (size_t i = from; i < to; i++) {
    hw_fix f = fixes[i];
    assert_int_equal(hw_rules_on_fix(r->e, t, r->v, &f), 0);
    assert_int_equal(f.quality, 0);
  }
}

static void run_feed(run *r, const hw_fix *fixes, size_t from, size_t to) {
  run_feed_as(r, TID, fixes, from, to);
}

/* ---- the drive ---------------------------------------------------------------------------- */

/* 08:00 GMT+8: no night rules in the way. One fix a minute, 60 km/h north (1 km) or standing. */
static void drive(fixture *f, int minutes, int moving) {
  for (int i = f->nfix ? 0 : -1; i < minutes; i++) { /* the very first fix starts the drive */
    assert_true(f->nfix < MAXFIX - 1);
    hw_fix *p = &f->fix[f->nfix];
    const hw_fix *prev = f->nfix ? &f->fix[f->nfix - 1] : NULL;
    memset(p, 0, sizeof *p);
    p->ts_ms = prev ? prev->ts_ms + MINUTE : VU_T0;
    p->recv_ms = p->ts_ms + 1500;
    p->lat_e6 = prev ? prev->lat_e6 + (moving ? 8993 : 0) : 30000000;
    p->lon_e6 = 114000000;
    p->speed_dkmh = moving ? 600 : 0;
    p->heading = 0;
    p->alt_m = 80;
    p->status = HW_STATUS_POSITIONED | 0x1u;
    p->odometer_hm = prev ? prev->odometer_hm + (moving ? 10 : 0) : 123450;
    p->source = 1;
    p->has_driver = 1;
    snprintf(p->driver_id, sizeof p->driver_id, "110101199001011234");
    f->nfix++;
  }
}

/* Stores fixes[from, to) of terminal tid in positions with the given quality. */
static void store_fixes_as(fixture *f, const char *tid, const hw_fix *fixes, size_t from,
                           size_t to, int quality) {
  size_t cap = 256 + (to - from) * 320, len = 0;
  char *sql = malloc(cap);
  assert_non_null(sql);
  len += (size_t)snprintf(sql, cap, "INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, "
                          "speed_kmh, heading, alt_m, alarm, status, odometer_km, driver_id, source, "
                          "quality) VALUES ");
  for (size_t i = from; i < to; i++) {
    const hw_fix *p = &fixes[i];
    len += (size_t)snprintf(sql + len, cap - len,
                            "%s('%s', timestamptz 'epoch' + %lld * interval '1 ms', 0, "
                            "timestamptz 'epoch' + %lld * interval '1 ms', %d / 1e6, %d / 1e6, %u / 10.0, "
                            "%u, %d, %u, %u, %u / 10.0, '%s', %u, %d)",
                            i == from ? "" : ", ", tid, (long long)p->ts_ms, (long long)p->recv_ms,
                            p->lat_e6, p->lon_e6, p->speed_dkmh, p->heading, p->alt_m, p->alarm,
                            p->status, p->odometer_hm, p->driver_id, p->source, quality);
    assert_true(len < cap);
  }
  PGresult *res = PQexec(f->pg, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    fail_msg("storing fixes: %s", PQresultErrorMessage(res));
  PQclear(res);
  free(sql);
}

static void store_fixes(fixture *f, size_t from, size_t to, int quality) {
  store_fixes_as(f, TID, f->fix, from, to, quality);
}

static void fx_start(fixture *f) {
  memset(f, 0, sizeof *f);
  hw_test_fresh_db(DB, f->conninfo, sizeof f->conninfo);
  f->pg = hw_test_pg_connect(f->conninfo);
  free(vu_pg_text(f->pg, "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, "
                         "region, enterprise) VALUES ('冀A12345', 2, 'heavy_truck', '" TID "', "
                         "'130100', 'Hebei Haulage')"));
  assert_int_equal(hw_registry_snapshot_load(f->pg, &f->snap), 0);
  f->v = hw_registry_snapshot_vehicle(f->snap, TID);
  assert_non_null(f->v);
  hw_test_loop_init(&f->env);
}

static void fx_stop(fixture *f) {
  hw_test_loop_close(&f->env);
  hw_registry_snapshot_unref(f->snap);
  PQfinish(f->pg);
}

static int store_idle(void *arg) {
  hw_violation_store_stats st;
  hw_violation_store_get_stats(arg, &st);
  return st.pending == 0;
}

static void stop_store(fixture *f, hw_violation_store *s) {
  int done = 0;
  hw_violation_store_stop(s, hw_test_on_done, &done);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &done));
}

static void stop_rule_store(fixture *f, hw_rule_store *rs) {
  int done = 0;
  hw_rule_store_stop(rs, hw_test_on_done, &done);
  assert_int_equal(done, 0);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &done));
}

/* ---- comparing runs ----------------------------------------------------------------------- */

static void print_event(const char *who, size_t i, const hw_violation_event *e) {
  fprintf(stderr, "%s[%zu] %s %s %s %lld..%lld value %lld/%lld grade %d %s\n", who, i,
          hw_violation_kind_name(e->kind), hw_violation_phase_name(e->phase), e->episode_id,
          (long long)e->started_ms, (long long)e->ended_ms, (long long)e->value,
          (long long)e->limit, e->grade, e->evidence);
}

static int same_event(const hw_violation_event *a, const hw_violation_event *b) {
  return a->kind == b->kind && a->phase == b->phase && a->grade == b->grade &&
         !strcmp(a->episode_id, b->episode_id) && a->started_ms == b->started_ms &&
         a->ended_ms == b->ended_ms && a->lat_e6 == b->lat_e6 && a->lon_e6 == b->lon_e6 &&
         a->value == b->value && a->limit == b->limit && !strcmp(a->evidence, b->evidence);
}

/* The restarted run's events (before, then after) are exactly the reference's. */
static void expect_same_events(const run *ref, const run *before, const run *after) {
  size_t n = before->nev + after->nev;
  int ok = n == ref->nev;
  for (size_t i = 0; ok && i < n; i++) {
    const hw_violation_event *e = i < before->nev ? &before->ev[i] : &after->ev[i - before->nev];
    ok = same_event(e, &ref->ev[i]);
  }
  if (ok)
    return;
  for (size_t i = 0; i < ref->nev; i++)
    print_event("reference", i, &ref->ev[i]);
  for (size_t i = 0; i < before->nev; i++)
    print_event("before", i, &before->ev[i]);
  for (size_t i = 0; i < after->nev; i++)
    print_event("after", i, &after->ev[i]);
  fail_msg("the restarted run's events differ from the uninterrupted run's");
}

static size_t count_kind(const run *r, int kind) {
  size_t n = 0;
  for (size_t i = 0; i < r->nev; i++)
    n += r->ev[i].kind == kind;
  return n;
}

/* ---- the scenario ------------------------------------------------------------------------- */

/* Fixes [0, cut) live before the restart, [cut, cut + nreplay) only stored, the rest live after.
 * Returns the two runs' events through before/after (freed by the caller). */
static void restart_scenario(fixture *f, size_t cut, size_t nreplay, run *ref, run *before,
                             run *after) {
  /* The reference: everything, no restart. */
  run_init(ref, f, NULL);
  run_feed(ref, f->fix, 0, f->nfix);
  run_free_engine(ref);

  /* First life: live fixes, stored as the pipeline would; the state is saved at stop. */
  hw_violation_store *vs;
  assert_int_equal(hw_violation_store_start(&vs, &f->env.loop, f->conninfo), 0);
  run_init(before, f, vs);
  hw_rule_store *rs;
  assert_int_equal(hw_rule_store_start(&rs, &f->env.loop, f->conninfo, &before->reg, 3600000), 0);
  run_feed(before, f->fix, 0, cut);
  store_fixes(f, 0, cut, 0);
  stop_rule_store(f, rs);
  assert_true(hw_test_loop_run_until(&f->env, store_idle, vs));
  stop_store(f, vs);
  run_free_engine(before);
  vu_expect(f->pg, "1", "SELECT count(*) FROM rule_state WHERE terminal_id = '" TID "'");

  /* Received after the last save, then the crash: stored, never evaluated. A flagged fix among
   * them must not be replayed. */
  store_fixes(f, cut, cut + nreplay, 0);
  hw_fix bad = f->fix[cut + nreplay / 2];
  bad.ts_ms += 20000;
  bad.lat_e6 += 5000000;
  f->fix[MAXFIX - 1] = bad;
  store_fixes(f, MAXFIX - 1, MAXFIX, 0x20);

  /* Second life. */
  assert_int_equal(hw_violation_store_start(&vs, &f->env.loop, f->conninfo), 0);
  run_init(after, f, vs);
  size_t loaded = 0, replayed = 0;
  assert_int_equal(hw_rule_store_load(f->pg, &after->reg, after->e, NULL, &loaded, &replayed), 0);
  assert_int_equal(loaded, 1);
  assert_int_equal(replayed, nreplay);
  hw_terminal *t = hw_registry_find(&after->reg, TID);
  assert_non_null(t);
  assert_non_null(t->rules);
  assert_null(t->vehicle); /* no cache given: records stay unbound */
  run_feed(after, f->fix, cut + nreplay, f->nfix);
  assert_true(hw_test_loop_run_until(&f->env, store_idle, vs));
  stop_store(f, vs);
  run_free_engine(after);

  expect_same_events(ref, before, after);
}

static void runs_free(run *a, run *b, run *c) {
  free(a->ev);
  free(b->ev);
  free(c->ev);
}

/* 3 h before the restart, 20 min replayed, 1 h 40 min after: one fatigue episode (4 h reached
 * after the restart), as if nothing had happened. A state lost at restart would count 2 h only. */
static void test_restart_before_the_limit(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  drive(&f, 300, 1);
  run ref, before, after;
  restart_scenario(&f, 181, 20, &ref, &before, &after);
  assert_int_equal(count_kind(&before, HW_VIOL_FATIGUE_CONTINUOUS), 0);
  assert_true(count_kind(&after, HW_VIOL_FATIGUE_CONTINUOUS) >= 2); /* open and updates */
  vu_expect(f.pg, "1", "SELECT count(*) FROM violations");
  const hw_violation_event *last = &after.ev[after.nev - 1];
  char want[256];
  snprintf(want, sizeof want, "fatigue_continuous|%s|%lld|<null>|冀A12345", last->episode_id,
           (long long)last->value);
  vu_expect(f.pg, want, "SELECT kind || '|' || episode_key || '|' || measured || '|' || "
            "coalesce(ended_at::text, '<null>') || '|' || plate FROM violations");
  runs_free(&ref, &before, &after);
  fx_stop(&f);
}

/* The episode is open across the restart (4.5 h before), the replay covers the start of the
 * rest, the rest closes it after: the events before and after share one episode id. */
static void test_restart_inside_an_episode(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  drive(&f, 270, 1);
  drive(&f, 30, 0);
  drive(&f, 30, 1);
  run ref, before, after;
  restart_scenario(&f, 271, 10, &ref, &before, &after);
  size_t nb = count_kind(&before, HW_VIOL_FATIGUE_CONTINUOUS);
  assert_true(nb >= 1);
  assert_true(count_kind(&after, HW_VIOL_FATIGUE_CONTINUOUS) >= 1);
  const char *id = NULL;
  int closed = 0;
  for (size_t i = 0; i < before.nev + after.nev; i++) {
    const hw_violation_event *e = i < before.nev ? &before.ev[i] : &after.ev[i - before.nev];
    if (e->kind != HW_VIOL_FATIGUE_CONTINUOUS)
      continue;
    if (!id)
      id = e->episode_id;
    assert_string_equal(e->episode_id, id);
    closed |= e->phase == HW_PHASE_CLOSE;
  }
  assert_true(closed);
  vu_expect(f.pg, "1|1", "SELECT count(*) || '|' || count(ended_at) FROM violations WHERE kind = "
            "'fatigue_continuous'");
  char want[160];
  snprintf(want, sizeof want, "%s", id);
  vu_expect(f.pg, want, "SELECT episode_key FROM violations WHERE kind = 'fatigue_continuous'");
  runs_free(&ref, &before, &after);
  fx_stop(&f);
}

/* The periodic save writes a state only when its bytes changed. */
static int cycles_at_least(void *arg) {
  hw_rule_store_stats st;
  hw_rule_store_get_stats(((void **)arg)[0], &st);
  return st.cycles >= *(uint64_t *)((void **)arg)[1];
}

static void test_saves_only_changes(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  drive(&f, 30, 1);
  run r;
  run_init(&r, &f, NULL);
  hw_terminal *idle;
  assert_int_equal(hw_registry_get(&r.reg, "013800000099", &idle), 0); /* no state: not saved */
  hw_rule_store *rs;
  assert_int_equal(hw_rule_store_start(&rs, &f.env.loop, f.conninfo, &r.reg, 50), 0);
  run_feed(&r, f.fix, 0, 10);
  uint64_t want = 3;
  void *args[2] = {rs, &want};
  assert_true(hw_test_loop_run_until(&f.env, cycles_at_least, args));
  hw_rule_store_stats st;
  hw_rule_store_get_stats(rs, &st);
  assert_int_equal(st.saved, 1);
  assert_true(st.unchanged >= 2);
  assert_int_equal(st.terminals, 1);
  char *saved1 = vu_pg_text(f.pg, "SELECT encode(state, 'hex') FROM rule_state");

  run_feed(&r, f.fix, 10, 11);
  want = st.cycles + 2;
  assert_true(hw_test_loop_run_until(&f.env, cycles_at_least, args));
  hw_rule_store_get_stats(rs, &st);
  assert_int_equal(st.saved, 2);
  char *saved2 = vu_pg_text(f.pg, "SELECT encode(state, 'hex') FROM rule_state");
  assert_string_not_equal(saved1, saved2);
  free(saved1);
  free(saved2);
  vu_expect(f.pg, "1", "SELECT count(*) FROM rule_state");

  /* Stop saves what changed since the last cycle. */
  run_feed(&r, f.fix, 11, 20);
  stop_rule_store(&f, rs);
  hw_terminal *t = hw_registry_find(&r.reg, TID);
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  size_t len;
  assert_int_equal(hw_rule_state_encode(t->rules, buf, sizeof buf, &len), 0);
  char hex[2 * HW_RULE_STATE_ENCODED_MAX + 1];
  for (size_t i = 0; i < len; i++)
    snprintf(hex + 2 * i, 3, "%02x", buf[i]);
  vu_expect(f.pg, hex, "SELECT encode(state, 'hex') FROM rule_state");
  run_free_engine(&r);
  free(r.ev);
  fx_stop(&f);
}

/* A state that cannot be decoded is skipped: the terminal starts afresh, others load. */
static void test_bad_state_skipped(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  drive(&f, 5, 1);
  run r;
  run_init(&r, &f, NULL);
  hw_rule_store *rs;
  assert_int_equal(hw_rule_store_start(&rs, &f.env.loop, f.conninfo, &r.reg, 3600000), 0);
  run_feed(&r, f.fix, 0, 5);
  stop_rule_store(&f, rs);
  run_free_engine(&r);
  free(r.ev);
  free(vu_pg_text(f.pg, "INSERT INTO rule_state (terminal_id, state) VALUES ('013800000098', "
                        "'\\x00ff00'::bytea)"));
  run_init(&r, &f, NULL);
  size_t loaded = 0, replayed = 7;
  assert_int_equal(hw_rule_store_load(f.pg, &r.reg, r.e, NULL, &loaded, &replayed), 0);
  assert_int_equal(loaded, 1);
  assert_int_equal(replayed, 0);
  assert_non_null(hw_registry_find(&r.reg, TID)->rules);
  hw_terminal *bad = hw_registry_find(&r.reg, "013800000098");
  assert_true(bad == NULL || bad->rules == NULL);
  run_free_engine(&r);
  free(r.ev);
  fx_stop(&f);
}


/* kill -9 within the save window, for a terminal first seen after the last save: it has no
 * rule_state row, so no horizon asks for its fixes; the mark does. Its fixes received since the
 * last complete save are replayed from a fresh state: the events are exactly those of an
 * uninterrupted run and its episode is stored once, with the values of its last fix. A terminal
 * without a row whose fixes were all received before the mark is not read (the replay costs what
 * arrived since the last save, not the history). */
#define TID2 "013800000004"
#define TID3 "013800000005"

static void test_crash_replays_unsaved_terminal(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  free(vu_pg_text(f.pg, "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, "
                        "region, enterprise) VALUES ('冀A12346', 2, 'heavy_truck', '" TID2 "', "
                        "'130100', 'Hebei Haulage')"));
  hw_registry_snapshot *snap2 = NULL;
  assert_int_equal(hw_registry_snapshot_load(f.pg, &snap2), 0);
  const hw_vehicle *v2 = hw_registry_snapshot_vehicle(snap2, TID2);
  assert_non_null(v2);
  drive(&f, 270, 1); /* 4 h 30 without a rest: fatigue_continuous open since 4 h */

  /* First life: TID only, saved at stop, which sets the mark. */
  int64_t before_stop = hw_now_ms();
  hw_violation_store *vs;
  assert_int_equal(hw_violation_store_start(&vs, &f.env.loop, f.conninfo), 0);
  run before;
  run_init(&before, &f, vs);
  hw_rule_store *rs;
  assert_int_equal(hw_rule_store_start(&rs, &f.env.loop, f.conninfo, &before.reg, 3600000), 0);
  run_feed(&before, f.fix, 0, 31);
  store_fixes(&f, 0, 31, 0);
  stop_rule_store(&f, rs);
  assert_true(hw_test_loop_run_until(&f.env, store_idle, vs));
  stop_store(&f, vs);
  run_free_engine(&before);
  free(before.ev);
  int64_t mark = hw_test_pg_scalar(f.pg, "SELECT (extract(epoch FROM saved_before) * 1000)::bigint "
                                          "FROM rule_state_mark");
  assert_in_range(mark, before_stop, hw_now_ms());
  vu_expect(f.pg, "1|0", "SELECT count(*) FILTER (WHERE terminal_id = '" TID "') || '|' || "
            "count(*) FILTER (WHERE terminal_id = '" TID2 "') FROM rule_state");

  /* The crash window: TID2's whole drive received (and stored) after the save, never evaluated
   * by a saved state; a flagged fix among it; TID3's fixes received before the save. */
  static hw_fix fix2[MAXFIX];
  int64_t recv0 = hw_now_ms() + 1000;
  for (size_t i = 0; i < f.nfix; i++) {
    fix2[i] = f.fix[i];
    fix2[i].recv_ms = recv0 + (int64_t)i;
  }
  store_fixes_as(&f, TID2, fix2, 0, f.nfix, 0);
  hw_fix bad = fix2[100];
  bad.ts_ms += 20000;
  bad.lat_e6 += 5000000;
  store_fixes_as(&f, TID2, &bad, 0, 1, 0x20);
  store_fixes_as(&f, TID3, f.fix, 0, 10, 0); /* recv_ts in March 2026 */

  /* Second life. */
  assert_int_equal(hw_violation_store_start(&vs, &f.env.loop, f.conninfo), 0);
  run after;
  run_init(&after, &f, vs);
  after.v = v2; /* the events recorded from here on are TID2's */
  size_t loaded = 0, replayed = 0;
  assert_int_equal(hw_rule_store_load(f.pg, &after.reg, after.e, NULL, &loaded, &replayed), 0);
  assert_int_equal(loaded, 1);
  assert_int_equal(replayed, f.nfix);
  hw_terminal *t2 = hw_registry_find(&after.reg, TID2);
  assert_non_null(t2);
  assert_non_null(t2->rules);
  assert_int_equal(hw_rule_state_horizon_ms(t2->rules), f.fix[f.nfix - 1].ts_ms);
  assert_null(hw_registry_find(&after.reg, TID3));
  assert_true(hw_test_loop_run_until(&f.env, store_idle, vs));
  stop_store(&f, vs);
  run_free_engine(&after);

  /* The reference: TID2's drive evaluated live. */
  run ref;
  run_init(&ref, &f, NULL);
  ref.v = v2;
  run_feed_as(&ref, TID2, fix2, 0, f.nfix);
  run_free_engine(&ref);
  run none = {0};
  expect_same_events(&ref, &none, &after);
  assert_true(count_kind(&after, HW_VIOL_FATIGUE_CONTINUOUS) >= 2);

  const hw_violation_event *last = &after.ev[after.nev - 1];
  assert_int_equal(last->ended_ms, f.fix[f.nfix - 1].ts_ms);
  assert_int_equal(last->value, 270 * 60);
  char want[256];
  snprintf(want, sizeof want, "1|%s|%lld|%lld|<null>|冀A12346", last->episode_id,
           (long long)last->value, (long long)last->ended_ms);
  vu_expect(f.pg, want, "SELECT count(*) OVER () || '|' || episode_key || '|' || measured || '|' || "
            "(extract(epoch FROM last_at) * 1000)::bigint || '|' || "
            "coalesce(ended_at::text, '<null>') || '|' || plate FROM violations "
            "WHERE terminal_id = '" TID2 "'");
  free(ref.ev);
  free(after.ev);
  hw_registry_snapshot_unref(snap2);
  fx_stop(&f);
}

int main(void) {
  vu_log_level();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_restart_before_the_limit),
      cmocka_unit_test(test_restart_inside_an_episode),
      cmocka_unit_test(test_saves_only_changes),
      cmocka_unit_test(test_bad_state_skipped),
      cmocka_unit_test(test_crash_replays_unsaved_terminal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
