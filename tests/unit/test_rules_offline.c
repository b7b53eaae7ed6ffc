/* Gaps in the data: offline displacement, gaps as rest or driving, and back-filled data (the
 * late-data policy in rules.h). */
#include "rules_test_util.h"

static void test_gap_with_40km_gives_one_offline_displacement(void **state) {
  rt *r = *state;
  rt_start(r);
  int64_t t0 = r->now;
  rt_drive(r, 210);
  int64_t gap_start = r->now;
  int32_t gap_lat = r->lat;
  rt_move(r, 40000);
  rt_at(r, r->now + RT_HOUR, 600); /* back after an hour, 40 km further */
  rt_drive(r, 5);
  /* Held: the terminal may be about to upload what it stored. */
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 0);
  assert_int_equal(hw_rules_pending(&r->t), 6);
  /* A resent fix (same device time) is the same fix: not queued twice. */
  assert_int_equal(rt_feed(r, rt_fix(r, r->now, 600)), 0);
  assert_int_equal(hw_rules_pending(&r->t), 6);
  rt_settle(r);
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_OFFLINE_DISPLACEMENT, HW_PHASE_CLOSE, 0);
  assert_int_equal(ev->started_ms, gap_start);
  assert_int_equal(ev->ended_ms, gap_start + RT_HOUR);
  assert_int_equal(ev->lat_e6, gap_lat);
  assert_true(ev->value >= 39990 && ev->value <= 40010);
  assert_int_equal(ev->limit, 2000);
  assert_non_null(strstr(ev->evidence, "\"gap_s\":3600"));
  /* An hour over 40 km was driving: 210 min + 60 min passes 4 h inside the gap. */
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, 0)->started_ms,
                   t0 + 4 * RT_HOUR);
  /* Telling it again changes nothing. */
  rt_settle(r);
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 1);
}

static void test_gap_without_displacement_is_rest(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 230);
  rt_at(r, r->now + 30 * RT_MIN, 0); /* 30 min without data, same place */
  rt_drive(r, 20);
  rt_stop(r, 30);
  if (r->nev)
    rt_dump(r);
  assert_int_equal(r->nev, 0); /* the gap was a qualifying rest; no offline displacement */
}

static void test_short_gap_without_displacement_is_a_short_rest(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 230);
  rt_at(r, r->now + 15 * RT_MIN, 0); /* a gap, but only 15 min of rest */
  rt_drive(r, 20);
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0)->value, 250 * 60);
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 0);
}

static void test_night_parked_with_drift_is_rest(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 230);
  rt_move(r, 1500); /* cold-start drift or a short move before the terminal woke up */
  rt_at(r, r->now + 10 * RT_HOUR, 0);
  rt_drive(r, 30);
  rt_stop(r, 30);
  /* 1.5 km at 30 km/h is 3 minutes of driving at the end of the gap; the rest resets the count. */
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, -1), 0);
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 0); /* under 2 km */
}

/* The terminal loses the network for an hour, stores its fixes and uploads them after the first
 * live ones. in_loop: the hour is a loop back to where it started. */
static void backfill_scenario(rt *r, int in_loop, int upload) {
  rt_start(r);
  rt_drive(r, 210);
  int64_t gap_start = r->now;
  int32_t gap_lat = r->lat;
  /* The hour the server does not see yet. */
  hw_fix stored[59];
  int32_t lat = gap_lat;
  for (int i = 0; i < 59; i++) {
    lat += (in_loop && i >= 30 ? -1 : 1) * (int32_t)llround(1000 / 0.1111950802);
    r->lat = lat;
    stored[i] = rt_fix(r, gap_start + (i + 1) * RT_MIN, 600);
  }
  lat += (in_loop ? -1 : 1) * (int32_t)llround(1000 / 0.1111950802);
  r->lat = lat;
  rt_at(r, gap_start + RT_HOUR, 600); /* the first live fix after reconnecting */
  rt_drive(r, 5);
  if (upload) {
    /* Two minutes later, the backlog in 0x0704 batches. */
    for (int i = 0; i < 59; i++) {
      stored[i].recv_ms = gap_start + RT_HOUR + 2 * RT_MIN;
      assert_int_equal(rt_feed(r, stored[i]), 0);
    }
  }
  rt_drive(r, 5);
  rt_stop(r, 30);
  rt_settle(r);
}

static void test_backfilled_hour_is_driving_not_offline(void **state) {
  rt *r = *state;
  int64_t t0 = r->now;
  backfill_scenario(r, 0, 1);
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 0);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  const hw_violation_event *close = rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0);
  assert_int_equal(close->started_ms, t0 + 4 * RT_HOUR);
  assert_int_equal(close->value, (210 + 60 + 5 + 5) * 60);
}

static void test_backfilled_loop_is_not_a_false_rest(void **state) {
  rt *r = *state;
  int64_t t0 = r->now;
  backfill_scenario(r, 1, 1);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, 0)->started_ms,
                   t0 + 4 * RT_HOUR);
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 0);
}

/* Control for the two above: without the upload, the loop looks like an hour's rest and the
 * straight hour like an offline displacement. */
static void test_without_backfill_the_gap_is_decided_as_it_is(void **state) {
  rt *r = *state;
  backfill_scenario(r, 1, 0);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, -1), 0);
  rt r2;
  rt_init(&r2);
  backfill_scenario(&r2, 0, 0);
  assert_int_equal(rt_count(&r2, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 1);
  rt_free(&r2);
}

static void test_backfill_after_the_decision_reopens_nothing(void **state) {
  rt *r = *state;
  r->cfg.hold_s = 60;
  rt_start(r);
  rt_drive(r, 210);
  int64_t gap_start = r->now;
  int32_t gap_lat = r->lat;
  rt_move(r, 60000);
  rt_at(r, gap_start + RT_HOUR, 600);
  rt_drive(r, 5); /* the receipt clock passes the 60 s hold: the gap is decided */
  assert_int_equal(hw_rules_pending(&r->t), 0);
  assert_int_equal(rt_count(r, HW_VIOL_OFFLINE_DISPLACEMENT, -1), 1);
  size_t before = r->nev;
  int64_t keep_now = r->now;
  int32_t keep_lat = r->lat;
  /* The stored hour arrives ten minutes later: older than the horizon. */
  r->lat = gap_lat;
  for (int i = 1; i < 60; i++) {
    rt_move(r, 1000);
    hw_fix f = rt_fix(r, gap_start + i * RT_MIN, 1500); /* even at 150 km/h: no speeding now */
    f.recv_ms = keep_now + 10 * RT_MIN;
    assert_int_equal(rt_feed(r, f), 0);
  }
  assert_int_equal(r->nev, before);
  r->now = keep_now;
  r->lat = keep_lat;
  rt_drive(r, 5);
  rt_stop(r, 30);
  /* The count went on from the decision: 210 + 60 + 10 min, one episode. */
  assert_int_equal(rt_ids(r, HW_VIOL_FATIGUE_CONTINUOUS), 1);
  assert_int_equal(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0)->value, 280 * 60);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, -1), 0);
}

static void test_reorder_window(void **state) {
  rt *r = *state;
  r->cfg.reorder_s = 30;
  rt_start(r);
  rt_step(r, 10, 900);
  /* Fixes at +10, +30, +20 s, the one at +20 s under the limit: with the window it is still
   * evaluated in order and splits the run (without, it would be late and ignored). */
  int64_t base = r->now;
  int32_t lat = r->lat;
  static const int order[] = {1, 3, 2, 4, 5, 6, 7, 8, 9, 10};
  for (size_t i = 0; i < HW_ARRAY_SIZE(order); i++) {
    r->lat = lat + order[i] * (int32_t)llround(1200 / 36.0 * 10 / 0.1111950802);
    hw_fix f = rt_fix(r, base + order[i] * 10000, order[i] == 2 ? 900 : 1200);
    f.recv_ms = base + (int64_t)i * 10000 + 1000;
    assert_int_equal(rt_feed(r, f), 0);
  }
  r->lat = lat + 11 * (int32_t)llround(1200 / 36.0 * 10 / 0.1111950802);
  hw_fix f = rt_fix(r, base + 110000, 900);
  f.recv_ms = base + 111000;
  assert_int_equal(rt_feed(r, f), 0);
  rt_settle(r);
  assert_int_equal(rt_ids(r, HW_VIOL_SPEEDING), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(ev->started_ms, base + 30000);
  assert_int_equal(ev->ended_ms, base + 100000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_gap_with_40km_gives_one_offline_displacement, rt_setup,
                                      rt_teardown),
      cmocka_unit_test_setup_teardown(test_gap_without_displacement_is_rest, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_short_gap_without_displacement_is_a_short_rest, rt_setup,
                                      rt_teardown),
      cmocka_unit_test_setup_teardown(test_night_parked_with_drift_is_rest, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_backfilled_hour_is_driving_not_offline, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_backfilled_loop_is_not_a_false_rest, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_without_backfill_the_gap_is_decided_as_it_is, rt_setup,
                                      rt_teardown),
      cmocka_unit_test_setup_teardown(test_backfill_after_the_decision_reopens_nothing, rt_setup,
                                      rt_teardown),
      cmocka_unit_test_setup_teardown(test_reorder_window, rt_setup, rt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
