/* hw_violation_store against a fresh database: batches, merging, idempotent replays, state
 * transitions left alone, refused data, retry after a lost connection, flush at stop. */
#include "viol_util.h"

#include "sinks/violation_store.h"

#define DB "hw_test_vstore"
#define TID "013800000001"
#define MINUTE 60000LL

typedef struct fixture {
  hw_test_loop env;
  char conninfo[512];
  PGconn *pg;
  hw_violation_store *s;
  uint64_t want_written; /* for wrote_enough */
} fixture;

static void fx_start(fixture *f) {
  memset(f, 0, sizeof *f);
  hw_test_fresh_db(DB, f->conninfo, sizeof f->conninfo);
  f->pg = hw_test_pg_connect(f->conninfo);
  hw_test_loop_init(&f->env);
  assert_int_equal(hw_violation_store_start(&f->s, &f->env.loop, f->conninfo), 0);
}

static void fx_stop(fixture *f) {
  int done = 0;
  hw_violation_store_stop(f->s, hw_test_on_done, &done);
  assert_int_equal(done, 0); /* never inside stop */
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &done));
  hw_test_loop_close(&f->env);
  PQfinish(f->pg);
}

static int wrote_enough(void *arg) {
  fixture *f = arg;
  hw_violation_store_stats st;
  hw_violation_store_get_stats(f->s, &st);
  return st.written >= f->want_written && st.pending == 0;
}

/* Puts n events and waits until they are all written (and nothing else waits). */
static void put_and_flush(fixture *f, const hw_violation_event *ev, size_t n, const hw_vehicle *v) {
  hw_violation_store_stats st;
  hw_violation_store_get_stats(f->s, &st);
  for (size_t i = 0; i < n; i++)
    hw_violation_store_put(f->s, &ev[i], v);
  f->want_written = st.written + 1; /* at least one episode record more */
  assert_true(hw_test_loop_run_until(&f->env, wrote_enough, f));
}

static hw_vehicle vehicle(const char *plate, const char *region, const char *enterprise) {
  hw_vehicle v;
  memset(&v, 0, sizeof v);
  snprintf(v.terminal_id, sizeof v.terminal_id, TID);
  snprintf(v.plate, sizeof v.plate, "%s", plate);
  snprintf(v.region, sizeof v.region, "%s", region);
  snprintf(v.enterprise, sizeof v.enterprise, "%s", enterprise);
  return v;
}

#define KEY_SPEED TID "/speeding/1772409600000"
#define ROW(col) "SELECT " col " FROM violations WHERE episode_key = '" KEY_SPEED "'"

/* One speeding episode: open, two updates arriving out of order in one batch, close, then every
 * event again (a restart's replay): one row, merged per the rules, untouched by the repeat. */
static void test_episode_across_batches(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  hw_vehicle v = vehicle("冀A12345", "130100", "Hebei \"Quote\" Haulage\\Co");
  hw_violation_event ev[4];
  ev[0] = vu_event(TID, HW_VIOL_SPEEDING, HW_PHASE_OPEN, VU_T0, VU_T0 + 30000, 1100, 1000, 1,
                   "{\"n\":0}");
  ev[1] = vu_event(TID, HW_VIOL_SPEEDING, HW_PHASE_UPDATE, VU_T0, VU_T0 + 90000, 1250, 1000, 2,
                   "{\"n\":2}");
  ev[2] = vu_event(TID, HW_VIOL_SPEEDING, HW_PHASE_UPDATE, VU_T0, VU_T0 + 60000, 1400, 1000, 1,
                   "{\"n\":1}");
  ev[3] = vu_event(TID, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, VU_T0, VU_T0 + 120000, 1150, 1000, 1,
                   "{\"n\":3}");

  put_and_flush(&f, &ev[0], 1, &v);
  vu_expect(f.pg, "1", "SELECT count(*) FROM violations");
  vu_expect(f.pg, "<null>", ROW("ended_at"));
  vu_expect(f.pg, "1772409630000", ROW("(extract(epoch FROM last_at) * 1000)::bigint"));
  vu_expect(f.pg, "110|100|1|open|0", ROW("measured || '|' || limit_value || '|' || grade || '|' || "
                                          "state || '|' || (evidence->>'n')"));
  vu_expect(f.pg, "冀A12345|130100|Hebei \"Quote\" Haulage\\Co", ROW("plate || '|' || region || '|' || enterprise"));
  vu_expect(f.pg, "30.000600|114.000000", ROW("to_char(start_lat, 'FM90.000000') || '|' || to_char(start_lon, 'FM990.000000')"));

  /* Both updates in one statement: merged before it (grade 2 beats a higher grade-1 speed). */
  put_and_flush(&f, &ev[1], 2, NULL);
  vu_expect(f.pg, "125|2|<null>|1772409690000|2", ROW("measured || '|' || grade || '|' || "
            "coalesce(ended_at::text, '<null>') || '|' || (extract(epoch FROM last_at) * 1000)::bigint || "
            "'|' || (evidence->>'n')"));

  hw_vehicle other = vehicle("京B99999", "110100", "Other");
  put_and_flush(&f, &ev[3], 1, &other);
  vu_expect(f.pg, "125|2|1772409720000|1772409720000|3|冀A12345",
            ROW("measured || '|' || grade || '|' || (extract(epoch FROM ended_at) * 1000)::bigint || "
                "'|' || (extract(epoch FROM last_at) * 1000)::bigint || '|' || (evidence->>'n') || "
                "'|' || plate"));
  char *updated = vu_pg_text(f.pg, ROW("updated_at::text"));

  /* The replay: every event again, in order, in one batch. Nothing changes, not even updated_at. */
  hw_violation_store_stats before, after;
  hw_violation_store_get_stats(f.s, &before);
  put_and_flush(&f, ev, 4, &v);
  hw_violation_store_get_stats(f.s, &after);
  assert_int_equal(after.merged - before.merged, 3);
  vu_expect(f.pg, "1", "SELECT count(*) FROM violations");
  vu_expect(f.pg, "125|2|1772409720000|3",
            ROW("measured || '|' || grade || '|' || (extract(epoch FROM ended_at) * 1000)::bigint || "
                "'|' || (evidence->>'n')"));
  vu_expect(f.pg, updated, ROW("updated_at::text"));
  free(updated);

  /* A late open alone (as a replay that starts mid-episode would send) cannot reopen it. */
  put_and_flush(&f, &ev[0], 1, NULL);
  vu_expect(f.pg, "1772409720000", ROW("(extract(epoch FROM ended_at) * 1000)::bigint"));
  fx_stop(&f);
}

/* A registry kind: the value (speed at the first position) and the position go with the
 * earliest start; no limit is stored. */
static void test_registry_kind_follows_start(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  int64_t day = VU_T0 + 3 * 3600000LL;
  hw_violation_event a = vu_event(TID, HW_VIOL_EXPIRED_PERMIT, HW_PHASE_OPEN, day, day, 300, 0, 0,
                                  "{\"last_ms\":1}");
  snprintf(a.episode_id, sizeof a.episode_id, TID "/expired_permit/20260302");
  hw_violation_event b = a; /* a late fix from earlier that day */
  b.phase = HW_PHASE_UPDATE;
  b.started_ms = day - 3600000;
  b.ended_ms = day + 60000;
  b.lat_e6 = 31000000;
  b.value = 200;
  put_and_flush(&f, &a, 1, NULL);
  put_and_flush(&f, &b, 1, NULL);
  const char *q = "SELECT measured || '|' || coalesce(limit_value::text, '<null>') || '|' || "
                  "start_lat || '|' || (extract(epoch FROM started_at) * 1000)::bigint || '|' || "
                  "coalesce(grade::text, '<null>') FROM violations WHERE kind = 'expired_permit'";
  vu_expect(f.pg, "20|<null>|31|1772416800000|<null>", "%s", q);
  /* And the earlier event arriving again with a later, smaller value changes nothing. */
  put_and_flush(&f, &a, 1, NULL);
  vu_expect(f.pg, "20|<null>|31|1772416800000|<null>", "%s", q);
  fx_stop(&f);
}

/* hw_violation_transition owns the state: the engine's later upserts keep it. */
static void test_transition_survives_upserts(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  int64_t s0 = VU_T0 + 4 * 3600000LL;
  hw_violation_event open = vu_event(TID, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, s0, s0, 14400,
                                     14400, 0, "{}");
  put_and_flush(&f, &open, 1, NULL);
  char *id = vu_pg_text(f.pg, "SELECT id FROM violations");
  vu_expect(f.pg, "open", "SELECT hw_violation_transition(%s, 'notified', 'operator 7', NULL)", id);
  vu_expect(f.pg, "notified", "SELECT hw_violation_transition(%s, 'rectifying', 'operator 7', NULL)", id);

  hw_violation_event upd = open, close = open;
  upd.phase = HW_PHASE_UPDATE;
  upd.ended_ms = s0 + 10 * MINUTE;
  upd.value = 14400 + 600;
  close.phase = HW_PHASE_CLOSE;
  close.ended_ms = s0 + 25 * MINUTE;
  close.value = 14400 + 1500;
  put_and_flush(&f, &upd, 1, NULL);
  put_and_flush(&f, &close, 1, NULL);
  vu_expect(f.pg, "rectifying|15900|14400|<null>|1", "SELECT state || '|' || measured || '|' || "
            "limit_value || '|' || coalesce(closed_at::text, '<null>') || '|' || count(*) OVER () "
            "FROM violations");
  vu_expect(f.pg, "2", "SELECT count(*) FROM violation_audit WHERE violation_id = %s", id);
  /* Closed by the operator, then the engine repeats itself: still closed, still one row. */
  vu_expect(f.pg, "rectifying", "SELECT hw_violation_transition(%s, 'closed', 'operator 7', 'driver warned')", id);
  hw_violation_event again[2] = {upd, close};
  put_and_flush(&f, again, 2, NULL);
  vu_expect(f.pg, "closed|1", "SELECT state || '|' || count(*) OVER () FROM violations");
  free(id);
  fx_stop(&f);
}

/* A batch refused for its data is split; the bad episode alone is dropped, the others stored. */
static void test_bad_episode_rejected_alone(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  hw_violation_event ev[3];
  for (int i = 0; i < 3; i++)
    ev[i] = vu_event(TID, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, VU_T0 + i * 10 * MINUTE,
                     VU_T0 + i * 10 * MINUTE + 40000, 1200, 1000, 2, "{}");
  snprintf(ev[1].evidence, sizeof ev[1].evidence, "{not json");
  hw_vehicle v = vehicle("冀A1", "13010X", ""); /* a region the CHECK refuses */
  for (int i = 0; i < 3; i++)
    hw_violation_store_put(f.s, &ev[i], i == 2 ? &v : NULL);
  hw_violation_store_stats st;
  for (int64_t until = hw_now_ms() + HW_TEST_WAIT_MS; hw_now_ms() < until;) {
    hw_violation_store_get_stats(f.s, &st);
    if (st.pending == 0)
      break;
    uv_run(&f.env.loop, UV_RUN_ONCE);
  }
  hw_violation_store_get_stats(f.s, &st);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.rejected, 2);
  assert_int_equal(st.written, 1);
  vu_expect(f.pg, "1772409600000", "SELECT string_agg((extract(epoch FROM started_at) * 1000)::bigint::text, ',') FROM violations");
  fx_stop(&f);
}

static int backend_gone(void *arg) {
  fixture *f = arg;
  char *n = vu_pg_text(f->pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                              "'haulwatch-violations' AND datname = '" DB "'");
  int gone = !strcmp(n, "0");
  free(n);
  return gone;
}

static int backend_back(void *arg) { return !backend_gone(arg); }

/* The connection is killed under the store: what it was given still arrives, once. */
static void test_survives_lost_connection(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  hw_violation_event a = vu_event(TID, HW_VIOL_NIGHT_DRIVING, HW_PHASE_OPEN, VU_T0, VU_T0 + MINUTE,
                                  7200, 7200, 0, "{}");
  put_and_flush(&f, &a, 1, NULL);
  for (int round = 0; round < 3; round++) {
    free(vu_pg_text(f.pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "application_name = 'haulwatch-violations' AND datname = '" DB "'"));
    /* Sent at once, onto the dying connection or the next one. */
    hw_violation_event b = a;
    b.phase = HW_PHASE_UPDATE;
    b.ended_ms = VU_T0 + (round + 2) * MINUTE;
    b.value = 7200 + (round + 1) * 60;
    hw_violation_store_put(f.s, &b, NULL);
    f.want_written = 0;
    assert_true(hw_test_loop_run_until(&f.env, wrote_enough, &f));
    assert_true(hw_test_loop_run_until(&f.env, backend_back, &f));
    char want[64];
    snprintf(want, sizeof want, "%d|1", 7200 + (round + 1) * 60);
    vu_expect(f.pg, want, "SELECT measured || '|' || count(*) OVER () FROM violations");
  }
  fx_stop(&f);
}

static int retried(void *arg) {
  fixture *f = arg;
  hw_violation_store_stats st;
  hw_violation_store_get_stats(f->s, &st);
  return st.retries >= 2;
}

/* Refused for a reason that passes (here the table is missing for a while): kept, sent again
 * with backoff, written once the table is back. */
static void test_kept_until_the_table_is_back(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  free(vu_pg_text(f.pg, "ALTER TABLE violations RENAME TO violations_away"));
  hw_violation_event a = vu_event(TID, HW_VIOL_FATIGUE_DAILY, HW_PHASE_OPEN, VU_T0, VU_T0 + MINUTE,
                                  30000, 28800, 0, "{}");
  hw_violation_store_put(f.s, &a, NULL);
  assert_true(hw_test_loop_run_until(&f.env, retried, &f));
  hw_violation_store_stats st;
  hw_violation_store_get_stats(f.s, &st);
  assert_int_equal(st.pending, 1);
  assert_int_equal(st.written, 0);
  free(vu_pg_text(f.pg, "ALTER TABLE violations_away RENAME TO violations"));
  f.want_written = 1;
  assert_true(hw_test_loop_run_until(&f.env, wrote_enough, &f));
  vu_expect(f.pg, "30000|28800", "SELECT measured || '|' || limit_value FROM violations");
  fx_stop(&f);
}

/* Stop writes what waits, then frees everything (the loop closes clean in fx_stop). */
static void test_stop_flushes(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  enum { N = 1200 }; /* past HW_VSTORE_BATCH: a write is due at once, but stop comes first */
  hw_violation_event *ev = calloc(N, sizeof *ev);
  assert_non_null(ev);
  for (int i = 0; i < N; i++) {
    char tid[16];
    snprintf(tid, sizeof tid, "0138%08d", i);
    ev[i] = vu_event(tid, HW_VIOL_OFFLINE_DISPLACEMENT, HW_PHASE_CLOSE, VU_T0, VU_T0 + 20 * MINUTE,
                     5000 + i, 2000, 0, "{\"gap_s\":1200}");
    hw_violation_store_put(f.s, &ev[i], NULL);
  }
  free(ev);
  int done = 0;
  hw_violation_store_stop(f.s, hw_test_on_done, &done);
  assert_true(hw_test_loop_run_until(&f.env, hw_test_int_set, &done));
  vu_expect(f.pg, "1200|1|5000|6199", "SELECT count(*) || '|' || count(DISTINCT limit_value) || '|' || "
            "min(measured) || '|' || max(measured) FROM violations WHERE ended_at IS NOT NULL");
  hw_test_loop_close(&f.env);
  PQfinish(f.pg);
}

int main(void) {
  vu_log_level();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_episode_across_batches),
      cmocka_unit_test(test_registry_kind_follows_start),
      cmocka_unit_test(test_transition_survives_upserts),
      cmocka_unit_test(test_bad_episode_rejected_alone),
      cmocka_unit_test(test_survives_lost_connection),
      cmocka_unit_test(test_kept_until_the_table_is_back),
      cmocka_unit_test(test_stop_flushes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
