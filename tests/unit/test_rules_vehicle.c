/* Registry rules: retired class, deregistered vehicle, expired permit, restricted zones,
 * unregistered terminals. One violation per vehicle (zone) per GMT+8 day. */
#include "rules_test_util.h"

/* A converted tractor: retired at the end of 2025-12-31, GMT+8. */
static void tractor(rt *r) {
  snprintf(r->cls.code, sizeof r->cls.code, "converted_tractor");
  r->cls.speed_limit_dkmh = 400;
  r->cls.expressway_allowed = 0;
  r->cls.retired_after_ms = rt_cst(2026, 1, 1, 0, 0, 0);
}

static void test_retired_class_boundary_and_one_per_day(void **state) {
  rt *r = *state;
  tractor(r);
  r->now = rt_cst(2025, 12, 31, 23, 58, 0);
  rt_start(r);
  rt_step(r, 60, 300); /* 23:58 */
  rt_step(r, 60, 300); /* 23:59 */
  assert_int_equal(r->nev, 0);
  rt_step(r, 60, 0);   /* 00:00, standing: not moving */
  assert_int_equal(r->nev, 0);
  rt_at(r, rt_cst(2026, 1, 1, 0, 1, 0), 300); /* 00:01, moving */
  assert_int_equal(rt_count(r, HW_VIOL_RETIRED_CLASS, HW_PHASE_OPEN), 1);
  const hw_violation_event *open = rt_find(r, HW_VIOL_RETIRED_CLASS, HW_PHASE_OPEN, 0);
  assert_string_equal(open->episode_id, "013800000001/retired_class/20260101");
  assert_int_equal(open->started_ms, rt_cst(2026, 1, 1, 0, 1, 0));
  assert_non_null(strstr(open->evidence, "\"class\":\"converted_tractor\""));
  for (int i = 0; i < 600; i++) /* the rest of the morning, moving every minute */
    rt_step(r, 60, 300);
  assert_int_equal(rt_ids(r, HW_VIOL_RETIRED_CLASS), 1);
  assert_int_equal(rt_count(r, HW_VIOL_RETIRED_CLASS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_count(r, HW_VIOL_RETIRED_CLASS, HW_PHASE_CLOSE), 0);
  /* The next day: the first day's episode closes with its last position, a second one opens. */
  int32_t last_lat = r->lat;
  r->now = rt_cst(2026, 1, 2, 0, 4, 0);
  rt_step(r, 60, 300); /* after a night without data: held for a back-fill, then decided */
  rt_settle(r);
  assert_int_equal(rt_ids(r, HW_VIOL_RETIRED_CLASS), 2);
  assert_int_equal(rt_count(r, HW_VIOL_RETIRED_CLASS, HW_PHASE_OPEN), 2);
  const hw_violation_event *close = rt_find(r, HW_VIOL_RETIRED_CLASS, HW_PHASE_CLOSE, 0);
  assert_string_equal(close->episode_id, "013800000001/retired_class/20260101");
  assert_int_equal(close->ended_ms, rt_cst(2026, 1, 1, 10, 1, 0));
  char want[48];
  snprintf(want, sizeof want, "\"last_lat\":%.6f", last_lat / 1e6);
  assert_non_null(strstr(close->evidence, want));
  assert_string_equal(rt_find(r, HW_VIOL_RETIRED_CLASS, HW_PHASE_OPEN, 1)->episode_id,
                      "013800000001/retired_class/20260102");
}

static void test_deregistered_vehicle(void **state) {
  rt *r = *state;
  r->v.status = HW_VEH_SCRAPPED;
  rt_start(r);
  rt_stop(r, 30); /* parked: nothing */
  assert_int_equal(r->nev, 0);
  rt_drive(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_DEREGISTERED_VEHICLE, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_ids(r, HW_VIOL_DEREGISTERED_VEHICLE), 1);
  assert_non_null(strstr(rt_find(r, HW_VIOL_DEREGISTERED_VEHICLE, HW_PHASE_OPEN, 0)->evidence,
                         "\"status\":\"scrapped\""));
  assert_int_equal(rt_count(r, -1, -1), rt_count(r, HW_VIOL_DEREGISTERED_VEHICLE, -1));
}

static void test_active_vehicle_with_valid_permit_is_fine(void **state) {
  rt *r = *state;
  r->v.permit_expires_ms = rt_cst(2026, 3, 3, 0, 0, 0); /* end of 2026-03-02 */
  rt_start(r);
  rt_drive(r, 60);
  assert_int_equal(r->nev, 0);
}

static void test_expired_permit(void **state) {
  rt *r = *state;
  snprintf(r->v.permit_no, sizeof r->v.permit_no, "冀交运管130100001");
  r->v.permit_expires_ms = rt_cst(2026, 3, 2, 0, 0, 0); /* end of 2026-03-01 */
  r->now = rt_cst(2026, 3, 1, 23, 0, 0);
  rt_start(r);
  rt_drive(r, 59); /* until 23:59 */
  assert_int_equal(r->nev, 0);
  rt_drive(r, 31); /* from 00:00 */
  assert_int_equal(rt_count(r, HW_VIOL_EXPIRED_PERMIT, HW_PHASE_OPEN), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_EXPIRED_PERMIT, HW_PHASE_OPEN, 0);
  assert_int_equal(ev->started_ms, rt_cst(2026, 3, 2, 0, 0, 0));
  assert_string_equal(ev->episode_id, "013800000001/expired_permit/20260302");
  assert_non_null(strstr(ev->evidence, "\"permit_no\":\"冀交运管130100001\""));
}

static void test_restricted_zone_with_hours(void **state) {
  rt *r = *state;
  rzone z;
  /* City centre: no heavy trucks 07:00-22:00. */
  rzone_rect(&z, 4401, HW_ZONE_NO_ENTRY, 29900000, 113900000, 30200000, 114100000);
  snprintf(z.classes[0], sizeof z.classes[0], "heavy_truck");
  snprintf(z.classes[1], sizeof z.classes[1], "semi_trailer_tractor");
  z.z.nclasses = 2;
  z.z.from_min = 7 * 60;
  z.z.to_min = 22 * 60;
  hw_zone_index *ix = NULL;
  assert_int_equal(hw_zone_index_build(&z.z, 1, 0, &ix), 0);

  /* 05:00-06:58 inside: allowed. */
  r->now = rt_cst(2026, 3, 2, 5, 0, 0);
  rt_start(r);
  hw_rules_set_zones(r->e, ix);
  for (int i = 0; i < 119; i++)
    rt_step(r, 60, 60);
  assert_int_equal(r->nev, 0);
  /* 06:59-07:58, still inside and moving: one violation for the day, from 07:00. */
  for (int i = 0; i < 60; i++)
    rt_step(r, 60, 60);
  assert_int_equal(rt_count(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_ids(r, HW_VIOL_RESTRICTED_ZONE), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_OPEN, 0);
  assert_int_equal(ev->started_ms, rt_cst(2026, 3, 2, 7, 0, 0));
  assert_string_equal(ev->episode_id, "013800000001/restricted_zone/20260302/4401");
  /* Parked inside: not a new violation, and nothing opens again. */
  rt_stop(r, 60);
  assert_int_equal(rt_count(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_OPEN), 1);

  /* Still inside the next morning: the first day's episode is complete, a new one opens. */
  rt_at(r, rt_cst(2026, 3, 3, 7, 30, 0), 0);
  rt_settle(r);
  for (int i = 0; i < 5; i++)
    rt_step(r, 60, 60);
  assert_int_equal(rt_ids(r, HW_VIOL_RESTRICTED_ZONE), 2);
  const hw_violation_event *closed = rt_find(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_CLOSE, 0);
  assert_string_equal(closed->episode_id, "013800000001/restricted_zone/20260302/4401");
  assert_int_equal(closed->ended_ms, rt_cst(2026, 3, 2, 7, 58, 0)); /* the last moving fix */
  assert_string_equal(rt_find(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_OPEN, 1)->episode_id,
                      "013800000001/restricted_zone/20260303/4401");

  /* Another class is not concerned. */
  rt r2;
  rt_init(&r2);
  snprintf(r2.cls.code, sizeof r2.cls.code, "passenger_coach");
  r2.now = rt_cst(2026, 3, 2, 9, 0, 0);
  rt_start(&r2);
  hw_rules_set_zones(r2.e, ix);
  rt_drive(&r2, 10);
  assert_int_equal(r2.nev, 0);
  rt_free(&r2);
  hw_zone_index_free(ix);
}

static void test_new_zones_apply_at_once(void **state) {
  rt *r = *state;
  /* Zones south-west and north-east of the truck: it is inside the grid, in a cell no zone
   * touches, which the engine remembers... */
  rzone sw, ne, here;
  rzone_rect(&sw, 1, HW_ZONE_NO_ENTRY, 29000000, 113000000, 29100000, 113100000);
  rzone_rect(&ne, 3, HW_ZONE_NO_ENTRY, 31000000, 115000000, 31100000, 115100000);
  hw_zone two[2] = {sw.z, ne.z};
  hw_zone_index *ix1 = NULL, *ix2 = NULL;
  assert_int_equal(hw_zone_index_build(two, 2, 0, &ix1), 0);
  assert_int_not_equal(hw_zone_index_cell(ix1, r->lat, r->lon), HW_ZONE_NO_CELL);
  rt_start(r);
  hw_rules_set_zones(r->e, ix1);
  rt_step(r, 10, 300);
  rt_step(r, 10, 300);
  assert_int_equal(r->nev, 0);
  /* ...until a registry reload brings a no-entry zone right here. */
  rzone_rect(&here, 2, HW_ZONE_NO_ENTRY, 29000000, 113000000, 31000000, 115000000);
  hw_zone zs[3] = {sw.z, ne.z, here.z}; /* same extent, so the same cell numbers */
  assert_int_equal(hw_zone_index_build(zs, 3, 0, &ix2), 0);
  assert_int_equal(hw_zone_index_cell(ix2, r->lat, r->lon), hw_zone_index_cell(ix1, r->lat, r->lon));
  hw_rules_set_zones(r->e, ix2);
  hw_zone_index_free(ix1);
  rt_step(r, 10, 300);
  assert_int_equal(rt_count(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_OPEN), 1);
  hw_zone_index_free(ix2);
}

static void test_tractor_on_expressway(void **state) {
  rt *r = *state;
  snprintf(r->cls.code, sizeof r->cls.code, "tractor");
  r->cls.speed_limit_dkmh = 400;
  r->cls.expressway_allowed = 0;
  rzone z;
  rzone_rect(&z, 9, HW_ZONE_SPEED_LIMIT, 29900000, 113900000, 30200000, 114100000);
  z.z.is_expressway = 1;
  z.z.limit_dkmh = 1200;
  hw_zone_index *ix = NULL;
  assert_int_equal(hw_zone_index_build(&z.z, 1, 0, &ix), 0);
  rt_start(r);
  hw_rules_set_zones(r->e, ix);
  for (int i = 0; i < 10; i++)
    rt_step(r, 60, 350);
  assert_int_equal(rt_count(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_OPEN), 1);
  assert_string_equal(rt_find(r, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_OPEN, 0)->episode_id,
                      "013800000001/restricted_zone/20260302/9");
  assert_int_equal(rt_count(r, HW_VIOL_SPEEDING, -1), 0);
  hw_zone_index_free(ix);
}

static void test_unregistered_terminal_one_per_day(void **state) {
  rt *r = *state;
  r->vp = NULL;
  rt_start(r);
  rt_stop(r, 10); /* reporting positions is enough, moving or not */
  rt_drive(r, 600);
  assert_int_equal(rt_count(r, HW_VIOL_UNREGISTERED_TERMINAL, HW_PHASE_OPEN), 1);
  assert_string_equal(rt_find(r, HW_VIOL_UNREGISTERED_TERMINAL, HW_PHASE_OPEN, 0)->episode_id,
                      "013800000001/unregistered_terminal/20260302");
  rt_drive(r, 700); /* past midnight */
  assert_int_equal(rt_ids(r, HW_VIOL_UNREGISTERED_TERMINAL), 2);
  /* Only this rule applies to an unbound terminal: 1300 min of driving is not its fatigue. */
  assert_int_equal(rt_count(r, -1, -1), rt_count(r, HW_VIOL_UNREGISTERED_TERMINAL, -1));
  /* Bound now: the open episode closes, nothing new. */
  r->vp = &r->v;
  size_t opens = rt_count(r, HW_VIOL_UNREGISTERED_TERMINAL, HW_PHASE_OPEN);
  rt_drive(r, 5);
  assert_int_equal(rt_count(r, HW_VIOL_UNREGISTERED_TERMINAL, HW_PHASE_OPEN), opens);
  assert_int_equal(rt_count(r, HW_VIOL_UNREGISTERED_TERMINAL, HW_PHASE_CLOSE), 2);
}

static void test_late_fix_of_past_day_is_reported_for_that_day(void **state) {
  rt *r = *state;
  tractor(r);
  r->now = rt_cst(2026, 1, 3, 8, 0, 0);
  rt_start(r);
  rt_drive(r, 10);
  assert_int_equal(rt_ids(r, HW_VIOL_RETIRED_CLASS), 1);
  /* Back-filled from the day before, hours old: the day's episode, once per update interval. */
  int64_t keep = r->now;
  int32_t keep_lat = r->lat;
  r->lat -= 500000;
  for (int i = 0; i < 30; i++) {
    hw_fix f = rt_fix(r, rt_cst(2026, 1, 2, 15, 0, 0) + i * RT_MIN, 300);
    f.recv_ms = keep + 1000;
    assert_int_equal(rt_feed(r, f), 0);
    rt_move(r, 500);
  }
  assert_int_equal(rt_ids(r, HW_VIOL_RETIRED_CLASS), 2);
  size_t n = 0;
  for (size_t i = 0; i < r->nev; i++)
    if (strcmp(r->ev[i].episode_id, "013800000001/retired_class/20260102") == 0) {
      n++;
      assert_int_equal(r->ev[i].phase, HW_PHASE_CLOSE);
    }
  assert_true(n >= 1 && n <= 16); /* throttled, not one per fix */
  r->lat = keep_lat;
  r->now = keep;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_retired_class_boundary_and_one_per_day, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_deregistered_vehicle, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_active_vehicle_with_valid_permit_is_fine, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_expired_permit, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_restricted_zone_with_hours, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_tractor_on_expressway, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_new_zones_apply_at_once, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_unregistered_terminal_one_per_day, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_late_fix_of_past_day_is_reported_for_that_day, rt_setup,
                                      rt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
