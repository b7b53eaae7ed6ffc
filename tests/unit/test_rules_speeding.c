/* Speeding and night speeding: minimum duration, grade, maximum, zone and expressway limits. */
#include "rules_test_util.h"

/* Fixes every 10 s at the given speeds, then one at 90 km/h. */
static void run(rt *r, const uint32_t *speeds, size_t n) {
  for (size_t i = 0; i < n; i++)
    rt_step(r, 10, speeds[i]);
  rt_step(r, 10, 900);
}

static void test_shorter_than_minimum_gives_nothing(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_step(r, 10, 900);
  static const uint32_t s[] = {1100, 1500, 1100}; /* 20 s above the limit, minimum is 30 s */
  run(r, s, HW_ARRAY_SIZE(s));
  assert_int_equal(r->nev, 0);
}

static void test_longer_gives_one_with_grade_and_max(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_step(r, 10, 900);
  int64_t start = r->now + 10000;
  int32_t lat_start = r->lat + (int32_t)llround(1100 / 36.0 * 10 / 0.1111950802);
  static const uint32_t s[] = {1100, 1300, 1250, 1100}; /* 30 s, worst 130 km/h = 30 % over */
  run(r, s, HW_ARRAY_SIZE(s));
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE), 1);
  assert_int_equal(rt_ids(r, HW_VIOL_SPEEDING), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(ev->started_ms, start);
  assert_int_equal(ev->ended_ms, start + 30000);
  assert_int_equal(ev->value, 1300);
  assert_int_equal(ev->limit, 1000);
  assert_int_equal(ev->grade, 2);
  assert_true(abs(ev->lat_e6 - lat_start) <= 1);
  assert_non_null(strstr(ev->evidence, "\"max_kmh\":130.0"));
  assert_non_null(strstr(ev->evidence, "\"duration_s\":30"));
  assert_int_equal(r->nev, 2);
}

/* Grade bands at their exact edges: worst speed -> grade. */
static void test_grade_boundaries(void **state) {
  (void)state;
  static const uint32_t worst[] = {1001, 1199, 1200, 1499, 1500, 2400};
  static const int grade[] = {1, 1, 2, 2, 3, 3};
  for (size_t i = 0; i < HW_ARRAY_SIZE(worst); i++) {
    rt r;
    rt_init(&r);
    rt_start(&r);
    rt_step(&r, 10, 900);
    uint32_t s[] = {1001, worst[i], 1001, 1001};
    run(&r, s, 4);
    const hw_violation_event *ev = rt_find(&r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
    assert_int_equal(ev->value, worst[i]);
    if (ev->grade != grade[i])
      fail_msg("worst %u: grade %d, want %d", worst[i], ev->grade, grade[i]);
    rt_free(&r);
  }
}

static void test_long_episode_is_one_violation(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_step(r, 10, 900);
  for (int i = 0; i < 60; i++) /* 10 minutes at 110-119 km/h */
    rt_step(r, 10, 1100 + (uint32_t)(i % 10) * 10);
  rt_step(r, 10, 900);
  assert_int_equal(rt_ids(r, HW_VIOL_SPEEDING), 1);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE), 1);
  assert_true(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_UPDATE) >= 5); /* about once a minute */
  assert_true(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_UPDATE) <= 10);
  assert_int_equal(rt_find(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0)->value, 1190);
}

static void test_zone_limit_lower_than_class(void **state) {
  rt *r = *state;
  rzone z;
  /* A 60 km/h zone from 30.0 to 30.1 N around the route. */
  rzone_rect(&z, 77, HW_ZONE_SPEED_LIMIT, 30000000, 113900000, 30100000, 114100000);
  z.z.limit_dkmh = 600;
  hw_zone_index *ix = NULL;
  assert_int_equal(hw_zone_index_build(&z.z, 1, 0, &ix), 0);
  rt_start(r);
  hw_rules_set_zones(r->e, ix);
  rt_step(r, 10, 550);
  static const uint32_t s[] = {700, 700, 710, 700, 700}; /* worst 18 % over 60 */
  for (size_t i = 0; i < HW_ARRAY_SIZE(s); i++)
    rt_step(r, 10, s[i]);
  rt_step(r, 10, 550);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(ev->limit, 600);
  assert_int_equal(ev->value, 710);
  assert_int_equal(ev->grade, 1);
  assert_non_null(strstr(ev->evidence, "\"zone_id\":77"));

  /* The same driving north of the zone is legal. */
  rt r2;
  rt_init(&r2);
  r2.lat = 30500000;
  rt_start(&r2);
  hw_rules_set_zones(r2.e, ix);
  rt_step(&r2, 10, 550);
  for (size_t i = 0; i < HW_ARRAY_SIZE(s); i++)
    rt_step(&r2, 10, s[i]);
  rt_step(&r2, 10, 550);
  assert_int_equal(r2.nev, 0);
  rt_free(&r2);
  hw_zone_index_free(ix);
}

static void test_zone_limit_with_hours_and_classes(void **state) {
  rt *r = *state;
  rzone z[2];
  /* School zone 07:00-09:00 at 30 km/h; a 40 km/h zone for dangerous goods only. */
  rzone_rect(&z[0], 1, HW_ZONE_SPEED_LIMIT, 29000000, 113000000, 31000000, 115000000);
  z[0].z.limit_dkmh = 300;
  z[0].z.from_min = 7 * 60;
  z[0].z.to_min = 9 * 60;
  rzone_rect(&z[1], 2, HW_ZONE_SPEED_LIMIT, 29000000, 113000000, 31000000, 115000000);
  z[1].z.limit_dkmh = 400;
  snprintf(z[1].classes[0], sizeof z[1].classes[0], "dangerous_goods");
  z[1].z.nclasses = 1;
  hw_zone zones[2] = {z[0].z, z[1].z};
  hw_zone_index *ix = NULL;
  assert_int_equal(hw_zone_index_build(zones, 2, 0, &ix), 0);
  r->now = rt_cst(2026, 3, 2, 10, 0, 0);
  rt_start(r);
  hw_rules_set_zones(r->e, ix);
  for (int i = 0; i < 6; i++)
    rt_step(r, 10, 500); /* 50 km/h at 10:00 for a heavy truck: no zone applies */
  assert_int_equal(r->nev, 0);
  rt_free(r);
  rt_init(r);
  r->now = rt_cst(2026, 3, 2, 8, 0, 0);
  rt_start(r);
  hw_rules_set_zones(r->e, ix);
  for (int i = 0; i < 6; i++)
    rt_step(r, 10, 500); /* at 08:00 the school zone applies */
  rt_step(r, 10, 200);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(ev->limit, 300);
  assert_int_equal(ev->grade, 3); /* 50 on 30: 67 % over */
  hw_zone_index_free(ix);
}

static void test_expressway_limit_replaces_class_limit(void **state) {
  rt *r = *state;
  r->cls.speed_limit_dkmh = 800;      /* ordinary roads */
  r->cls.expressway_limit_dkmh = 1000;
  rzone z;
  rzone_rect(&z, 5, HW_ZONE_SPEED_LIMIT, 30000000, 113900000, 30200000, 114100000);
  z.z.is_expressway = 1;
  z.z.limit_dkmh = 1200;
  hw_zone_index *ix = NULL;
  assert_int_equal(hw_zone_index_build(&z.z, 1, 0, &ix), 0);
  rt_start(r);
  hw_rules_set_zones(r->e, ix);
  for (int i = 0; i < 6; i++)
    rt_step(r, 10, 900); /* 90 on the expressway: legal */
  assert_int_equal(rt_count(r, HW_VIOL_RESTRICTED_ZONE, -1), 0);
  rt r2; /* off the expressway */
  rt_init(&r2);
  r2.cls.speed_limit_dkmh = 800;
  r2.lat = 30500000;
  rt_start(&r2);
  hw_rules_set_zones(r2.e, ix);
  for (int i = 0; i < 6; i++)
    rt_step(&r2, 10, 900);
  rt_step(&r2, 10, 700);
  assert_int_equal(rt_count(&r2, HW_VIOL_SPEEDING, HW_PHASE_CLOSE), 1);
  assert_int_equal(rt_find(&r2, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0)->limit, 800);
  rt_free(&r2);
  hw_zone_index_free(ix);
}

static void test_gap_splits_episodes(void **state) {
  rt *r = *state;
  rt_start(r);
  for (int i = 0; i < 3; i++)
    rt_step(r, 10, 1200); /* 20 s */
  rt_move(r, 12000);
  rt_at(r, r->now + 10 * RT_MIN, 1200); /* 10 minutes without data */
  rt_step(r, 10, 1200);
  rt_step(r, 10, 900);
  rt_settle(r);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, -1), 0);
}

static void test_night_speeding(void **state) {
  rt *r = *state;
  r->cls.night_rules = 1;
  r->cls.night_speed_pct = 80;
  r->now = rt_cst(2026, 3, 2, 23, 0, 0);
  rt_start(r);
  rt_step(r, 10, 700);
  for (int i = 0; i < 6; i++)
    rt_step(r, 10, 850);
  rt_step(r, 10, 700);
  assert_int_equal(rt_count(r, HW_VIOL_NIGHT_SPEEDING, HW_PHASE_CLOSE), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_NIGHT_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(ev->limit, 800);
  assert_int_equal(ev->value, 850);
  assert_int_equal(ev->grade, 1);
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, -1), 0);

  /* The same at 15:00 is legal. */
  rt r2;
  rt_init(&r2);
  r2.cls.night_rules = 1;
  r2.cls.night_speed_pct = 80;
  r2.now = rt_cst(2026, 3, 2, 15, 0, 0);
  rt_start(&r2);
  for (int i = 0; i < 8; i++)
    rt_step(&r2, 10, 850);
  assert_int_equal(r2.nev, 0);
  rt_free(&r2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_shorter_than_minimum_gives_nothing, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_longer_gives_one_with_grade_and_max, rt_setup, rt_teardown),
      cmocka_unit_test(test_grade_boundaries),
      cmocka_unit_test_setup_teardown(test_long_episode_is_one_violation, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_zone_limit_lower_than_class, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_zone_limit_with_hours_and_classes, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_expressway_limit_replaces_class_limit, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_gap_splits_episodes, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_night_speeding, rt_setup, rt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
