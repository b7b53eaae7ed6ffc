/* Fatigue rules: continuous driving, rests, driver changes, daily and night limits. */
#include "rules_test_util.h"

static void test_continuous_4h05_gives_one(void **state) {
  rt *r = *state;
  rt_start(r);
  int64_t t0 = r->now;
  int32_t lat0 = r->lat;
  rt_drive(r, 245);
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE), 1);
  assert_int_equal(rt_ids(r, HW_VIOL_FATIGUE_CONTINUOUS), 1);
  const hw_violation_event *open = rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, 0);
  assert_int_equal(open->started_ms, t0 + 4 * RT_HOUR); /* the instant the limit was passed */
  assert_true(abs(open->lat_e6 - (lat0 + (int32_t)llround(240000 / 0.1111950802))) < 300);
  const hw_violation_event *close = rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0);
  assert_int_equal(close->started_ms, open->started_ms);
  assert_int_equal(close->ended_ms, t0 + 245 * RT_MIN);
  assert_int_equal(close->value, 245 * 60);
  assert_int_equal(close->limit, 4 * 3600);
  char want[64];
  snprintf(want, sizeof want, "013800000001/fatigue_continuous/%lld", (long long)(t0 + 4 * RT_HOUR));
  assert_string_equal(close->episode_id, want);
  assert_non_null(strstr(close->evidence, "\"driving_since_ms\":"));
  /* Nothing else: 60 km/h is legal, no gaps. */
  assert_int_equal(rt_count(r, -1, -1), rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, -1));
}

static void test_continuous_3h55_gives_none(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 235);
  rt_stop(r, 30);
  rt_drive(r, 235);
  rt_stop(r, 30);
  if (r->nev)
    rt_dump(r);
  assert_int_equal(r->nev, 0);
}

static void test_exactly_4h_gives_none(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 240); /* "more than 4 hours" */
  rt_stop(r, 30);
  assert_int_equal(r->nev, 0);
}

static void test_19_min_stop_does_not_reset(void **state) {
  rt *r = *state;
  rt_start(r);
  int64_t t0 = r->now;
  rt_drive(r, 120);
  rt_stop(r, 19);
  rt_drive(r, 125);
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_ids(r, HW_VIOL_FATIGUE_CONTINUOUS), 1);
  const hw_violation_event *close = rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0);
  /* 240 min of driving are reached 120 min after the stop; the stop itself is not driving. */
  assert_int_equal(close->started_ms, t0 + (120 + 19 + 120) * RT_MIN);
  assert_int_equal(close->value, 245 * 60);
}

static void test_20_min_stop_resets(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 120);
  rt_stop(r, 20);
  rt_drive(r, 125);
  rt_stop(r, 30);
  assert_int_equal(r->nev, 0);
}

static void test_short_stops_counted_when_configured(void **state) {
  rt *r = *state;
  r->cfg.count_short_stops = 1;
  rt_start(r);
  rt_drive(r, 120);
  rt_stop(r, 19);
  rt_drive(r, 102); /* 222 min driving + 19 stopped = 241 */
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0)->value, 241 * 60);
}

static void test_driver_change_resets(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_set_driver(r, "DRV-A");
  rt_drive(r, 120);
  rt_set_driver(r, "DRV-B");
  rt_drive(r, 125);
  rt_stop(r, 30);
  assert_int_equal(r->nev, 0);
}

static void test_card_removal_does_not_reset(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_set_driver(r, "DRV-A");
  rt_drive(r, 120);
  rt_set_driver(r, ""); /* card out: has_driver with an empty id */
  rt_drive(r, 60);
  rt_set_driver(r, "DRV-A"); /* back in */
  rt_drive(r, 65);
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_non_null(strstr(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0)->evidence,
                         "\"driver\":\"DRV-A\""));
}

static void test_first_card_after_unidentified_driving_does_not_reset(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 120);
  rt_set_driver(r, "DRV-A");
  rt_drive(r, 125);
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
}

static void test_driver_change_closes_open_episode(void **state) {
  rt *r = *state;
  rt_start(r);
  int64_t t0 = r->now;
  rt_set_driver(r, "DRV-A");
  rt_drive(r, 250);
  rt_set_driver(r, "DRV-B");
  rt_drive(r, 60);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  const hw_violation_event *close = rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0);
  assert_int_equal(close->ended_ms, t0 + 250 * RT_MIN);
  assert_int_equal(close->value, 250 * 60);
}

static void test_daily_limit(void **state) {
  rt *r = *state;
  r->cls.daily_limit_s = 8 * 3600;
  r->now = rt_cst(2026, 3, 2, 6, 0, 0);
  rt_start(r);
  rt_drive(r, 230);
  rt_stop(r, 30);
  rt_drive(r, 230);
  rt_stop(r, 30);
  rt_drive(r, 30);
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_DAILY, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_DAILY, HW_PHASE_CLOSE), 0); /* the day is not over */
  /* Parked overnight: the next fix, after midnight, completes the day. */
  rt_at(r, rt_cst(2026, 3, 3, 1, 0, 0), 0);
  assert_int_equal(hw_rules_pending(&r->t), 1); /* behind a gap: held for back-filled data */
  rt_settle(r);
  const hw_violation_event *close = rt_find(r, HW_VIOL_FATIGUE_DAILY, HW_PHASE_CLOSE, 0);
  assert_int_equal(close->started_ms, rt_cst(2026, 3, 2, 15, 0, 0)); /* 480 min of driving */
  assert_int_equal(close->value, 490 * 60);
  assert_int_equal(close->limit, 8 * 3600);
  assert_string_equal(close->episode_id, "013800000001/fatigue_daily/20260302/-");
  assert_int_equal(rt_ids(r, HW_VIOL_FATIGUE_DAILY), 1);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, -1), 0);
}

static void test_daily_limit_is_per_driver(void **state) {
  rt *r = *state;
  r->cls.daily_limit_s = 8 * 3600;
  r->now = rt_cst(2026, 3, 2, 6, 0, 0);
  rt_start(r);
  rt_set_driver(r, "DRV-A");
  rt_drive(r, 230);
  rt_set_driver(r, "DRV-B");
  rt_drive(r, 230);
  rt_set_driver(r, "DRV-A");
  rt_drive(r, 200); /* A: 430 min, B: 230 min, the truck: 660 min */
  rt_stop(r, 30);
  if (r->nev)
    rt_dump(r);
  assert_int_equal(r->nev, 0);
}

static void test_daily_splits_at_midnight(void **state) {
  rt *r = *state;
  r->cls.daily_limit_s = 3 * 3600;
  r->now = rt_cst(2026, 3, 2, 22, 0, 0);
  rt_start(r);
  rt_drive(r, 200); /* 22:00-01:20: 120 min on the 2nd, 80 on the 3rd */
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_DAILY, -1), 0);
}

static void test_night_continuous(void **state) {
  rt *r = *state;
  r->cls.night_rules = 1;
  r->cls.night_continuous_limit_s = 2 * 3600;
  r->cls.night_speed_pct = 80;
  r->now = rt_cst(2026, 3, 2, 21, 0, 0);
  rt_start(r);
  rt_drive(r, 190); /* 21:00-00:10: 130 min at night */
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_NIGHT_DRIVING, HW_PHASE_OPEN), 1);
  const hw_violation_event *close = rt_find(r, HW_VIOL_NIGHT_DRIVING, HW_PHASE_CLOSE, 0);
  assert_int_equal(close->started_ms, rt_cst(2026, 3, 3, 0, 0, 0));
  assert_int_equal(close->ended_ms, rt_cst(2026, 3, 3, 0, 10, 0));
  assert_int_equal(close->value, 130 * 60);
  assert_int_equal(close->limit, 2 * 3600);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, -1), 0);
  assert_int_equal(rt_count(r, HW_VIOL_NIGHT_SPEEDING, -1), 0); /* 60 < 80 km/h */
}

static void test_night_ends_at_six(void **state) {
  rt *r = *state;
  r->cls.night_rules = 1;
  r->cls.night_continuous_limit_s = 2 * 3600;
  r->now = rt_cst(2026, 3, 2, 4, 30, 0);
  rt_start(r);
  rt_drive(r, 150); /* 04:30-07:00: 90 min at night, then day */
  rt_stop(r, 30);
  assert_int_equal(r->nev, 0);
}

static void test_night_rules_only_for_classes_with_them(void **state) {
  rt *r = *state;
  r->now = rt_cst(2026, 3, 2, 21, 0, 0);
  rt_start(r);
  rt_drive(r, 190);
  rt_stop(r, 30);
  assert_int_equal(r->nev, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_continuous_4h05_gives_one, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_continuous_3h55_gives_none, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_exactly_4h_gives_none, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_19_min_stop_does_not_reset, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_20_min_stop_resets, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_short_stops_counted_when_configured, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_driver_change_resets, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_card_removal_does_not_reset, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_first_card_after_unidentified_driving_does_not_reset,
                                      rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_driver_change_closes_open_episode, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_daily_limit, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_daily_limit_is_per_driver, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_daily_splits_at_midnight, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_night_continuous, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_night_ends_at_six, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_night_rules_only_for_classes_with_them, rt_setup, rt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
