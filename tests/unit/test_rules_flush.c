/* Open episodes at the edges (rules.h, OPEN EPISODES AT THE EDGES): updates are throttled to one
 * per update_interval_s of device time, so an open episode's last emitted event lags its newest
 * fix; a quiet terminal (hw_rules_tick after flush_quiet_s) and shutdown (hw_rules_flush) bring
 * it to the true last fix, once, and touch nothing when nothing lags. */
#include "rules_test_util.h"

/* A converted tractor: retired at the end of 2025-12-31, GMT+8. */
static void tractor(rt *r) {
  snprintf(r->cls.code, sizeof r->cls.code, "converted_tractor");
  r->cls.speed_limit_dkmh = 400;
  r->cls.expressway_allowed = 0;
  r->cls.retired_after_ms = rt_cst(2026, 1, 1, 0, 0, 0);
}

/* The newest event of an episode kind (any phase). */
static const hw_violation_event *last_of(const rt *r, int kind) { return rt_find(r, kind, -1, 1); }

static void expect_evidence_last(const hw_violation_event *ev, int64_t ts, int32_t lat) {
  char want[64];
  snprintf(want, sizeof want, "\"last_ms\":%lld,", (long long)ts);
  if (!strstr(ev->evidence, want))
    fail_msg("evidence %s lacks %s", ev->evidence, want);
  snprintf(want, sizeof want, "\"last_lat\":%.6f,", lat / 1e6);
  if (!strstr(ev->evidence, want))
    fail_msg("evidence %s lacks %s", ev->evidence, want);
}

static void tick(rt *r, int64_t now_ms) {
  assert_int_equal(hw_rules_tick(r->e, &r->t, r->vp, now_ms), 0);
}

/* The outside tester's case: a converted tractor driving 00:00:00-00:10:00 every 10 s. The last
 * update is at most 60 s of device time old; once the terminal has been quiet for
 * flush_quiet_s, the tick emits one update with the 00:10:00 fix, and only one. */
static void test_quiet_terminal_gets_its_last_fix(void **state) {
  rt *r = *state;
  tractor(r);
  r->now = rt_cst(2026, 1, 1, 0, 0, 0);
  rt_start(r);
  for (int i = 0; i < 60; i++)
    rt_step(r, 10, 300);
  rt_step(r, 5, 300); /* 00:10:05: off the 60 s grid of updates */
  int64_t last_ts = r->now, last_recv = r->now + r->recv_lag;
  int32_t last_lat = r->lat;
  assert_int_equal(rt_ids(r, HW_VIOL_RETIRED_CLASS), 1);
  assert_true(last_of(r, HW_VIOL_RETIRED_CLASS)->ended_ms < last_ts); /* the lag being fixed */

  /* Not quiet yet: nothing, whatever the tick. */
  size_t before = r->nev;
  tick(r, last_recv + r->cfg.flush_quiet_s * 1000LL - 1);
  assert_int_equal(r->nev, before);
  /* Quiet: one update carrying the last fix. */
  tick(r, last_recv + r->cfg.flush_quiet_s * 1000LL);
  assert_int_equal(r->nev, before + 1);
  const hw_violation_event *ev = &r->ev[r->nev - 1];
  assert_int_equal(ev->kind, HW_VIOL_RETIRED_CLASS);
  assert_int_equal(ev->phase, HW_PHASE_UPDATE);
  assert_int_equal(ev->ended_ms, last_ts);
  assert_int_equal(ev->started_ms, rt_cst(2026, 1, 1, 0, 0, 0));
  expect_evidence_last(ev, last_ts, last_lat);
  /* Up to date now: later ticks and a stop flush emit nothing. */
  tick(r, last_recv + 10 * r->cfg.flush_quiet_s * 1000LL);
  size_t n = 99;
  assert_int_equal(hw_rules_flush(r->e, &r->t, r->vp, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(r->nev, before + 1);

  /* Reporting again, the throttle works from the flushed fix as before. */
  rt_step(r, 10, 300);
  assert_int_equal(r->nev, before + 1);
}

/* Shutdown: a speeding episode whose worst point is its last fix, and continuous driving past
 * the limit, both between two updates; hw_rules_flush brings value, worst point and end to the
 * last fix. */
static void test_stop_flush_carries_last_value(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 240);
  for (int i = 0; i < 6; i++) /* 4 h 1 min of driving at 10 s steps, 110 km/h */
    rt_step(r, 10, 1100);
  for (int i = 0; i < 5; i++)
    rt_step(r, 10, 1100);
  rt_step(r, 10, 1300); /* the worst point, last: 4 h 2 min of driving */
  int64_t last_ts = r->now;
  const hw_violation_event *sp = last_of(r, HW_VIOL_SPEEDING);
  assert_true(sp->ended_ms < last_ts);
  assert_int_equal(sp->value, 1100);
  const hw_violation_event *ft = last_of(r, HW_VIOL_FATIGUE_CONTINUOUS);
  assert_true(ft->ended_ms < last_ts);

  size_t before = r->nev, n = 0;
  assert_int_equal(hw_rules_flush(r->e, &r->t, r->vp, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(r->nev, before + 2);
  sp = last_of(r, HW_VIOL_SPEEDING);
  assert_int_equal(sp->phase, HW_PHASE_UPDATE);
  assert_int_equal(sp->ended_ms, last_ts);
  assert_int_equal(sp->value, 1300);
  assert_int_equal(sp->limit, 1000);
  assert_int_equal(sp->grade, 2);
  ft = last_of(r, HW_VIOL_FATIGUE_CONTINUOUS);
  assert_int_equal(ft->phase, HW_PHASE_UPDATE);
  assert_int_equal(ft->ended_ms, last_ts);
  /* 240 min, then 12 steps of 10 s. */
  assert_int_equal(ft->value, 240 * 60 + 120);
  assert_int_equal(ft->started_ms, rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, 0)->started_ms);
  /* Flushing twice is free. */
  assert_int_equal(hw_rules_flush(r->e, &r->t, r->vp, &n), 0);
  assert_int_equal(n, 0);
}

/* A terminal with nothing to bring up to date is left alone by the tick: its encoded state (what
 * the rule store saves, and compares to skip unchanged ones) does not change. */
static void test_tick_leaves_settled_state_alone(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 30);
  uint8_t a[HW_RULE_STATE_ENCODED_MAX], b[HW_RULE_STATE_ENCODED_MAX];
  size_t na, nb;
  assert_int_equal(hw_rule_state_encode(r->t.rules, a, sizeof a, &na), 0);
  size_t before = r->nev;
  tick(r, r->now + 5000);                 /* not quiet */
  tick(r, r->now + 24 * RT_HOUR);         /* quiet, nothing open */
  assert_int_equal(hw_rule_state_encode(r->t.rules, b, sizeof b, &nb), 0);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, na);
  assert_int_equal(r->nev, before);
  /* A terminal without a state: nothing to do, no state created. */
  hw_terminal other;
  memset(&other, 0, sizeof other);
  other.id = (char *)"013800000002";
  assert_int_equal(hw_rules_tick(r->e, &other, NULL, r->now), 0);
  assert_null(other.rules);
  assert_int_equal(hw_rules_flush(r->e, &other, NULL, NULL), 0);
  assert_int_equal(hw_rules_flush(NULL, &other, NULL, NULL), -EINVAL);
}

/* The lag survives a save (emit times are part of the state): after a restart, the first tick
 * (the replayed fixes' receipt times are old) brings the episode up to date. */
static void test_flush_after_restore(void **state) {
  rt *r = *state;
  tractor(r);
  r->now = rt_cst(2026, 1, 1, 0, 0, 0);
  rt_start(r);
  for (int i = 0; i < 20; i++)
    rt_step(r, 10, 300);
  rt_step(r, 5, 300);
  int64_t last_ts = r->now;
  int32_t last_lat = r->lat;
  assert_true(last_of(r, HW_VIOL_RETIRED_CLASS)->ended_ms < last_ts);
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  size_t len;
  assert_int_equal(hw_rule_state_encode(r->t.rules, buf, sizeof buf, &len), 0);
  hw_rule_state_free(r->t.rules);
  r->t.rules = NULL;
  assert_int_equal(hw_rule_state_decode(buf, len, &r->t.rules), 0);
  size_t before = r->nev;
  tick(r, hw_now_ms()); /* the daemon's clock, long after 2026-01-01 */
  assert_int_equal(r->nev, before + 1);
  assert_int_equal(r->ev[before].ended_ms, last_ts);
  expect_evidence_last(&r->ev[before], last_ts, last_lat);
}

/* Fixes held behind a gap are not evaluated by a flush; once their hold ends the tick decides
 * them, and a later tick brings the episode to them. */
static void test_held_fixes_are_not_flushed(void **state) {
  rt *r = *state;
  tractor(r);
  r->now = rt_cst(2026, 1, 1, 0, 0, 0);
  rt_start(r);
  for (int i = 0; i < 10; i++)
    rt_step(r, 10, 300);
  rt_step(r, 5, 300);
  int64_t before_gap = r->now;
  r->now += 20 * RT_MIN; /* a gap without displacement: held for back-fill */
  rt_step(r, 10, 300);
  int64_t held_ts = r->now, held_recv = r->now + r->recv_lag;
  assert_int_equal(hw_rules_pending(&r->t), 1);
  size_t n = 0;
  assert_int_equal(hw_rules_flush(r->e, &r->t, r->vp, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(last_of(r, HW_VIOL_RETIRED_CLASS)->ended_ms, before_gap);
  assert_int_equal(hw_rules_pending(&r->t), 1);
  /* The hold ends: the held fix is evaluated (and, the terminal being quiet, flushed). */
  tick(r, held_recv + r->cfg.hold_s * 1000LL);
  assert_int_equal(hw_rules_pending(&r->t), 0);
  assert_int_equal(last_of(r, HW_VIOL_RETIRED_CLASS)->ended_ms, held_ts);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_quiet_terminal_gets_its_last_fix, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_stop_flush_carries_last_value, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_tick_leaves_settled_state_alone, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_flush_after_restore, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_held_fixes_are_not_flushed, rt_setup, rt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
