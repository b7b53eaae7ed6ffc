/* The simulated truck stays plausible: bounded speeds and positions, movement consistent with the
 * reported speeds, stops at lights, rests within the 4-hour rule, and determinism per seed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "load/sim_truck.h"

#define STEP_MS 10000
#define DAY_FIXES (24 * 3600 * 1000 / STEP_MS)

static hw_fix *run_truck(uint64_t seed, uint32_t index, size_t n, uint32_t step_ms) {
  hw_sim_truck t;
  hw_sim_truck_init(&t, seed, index, 1700000000000LL, step_ms);
  hw_fix *f = calloc(n, sizeof *f);
  assert_non_null(f);
  for (size_t i = 0; i < n; i++)
    hw_sim_truck_next(&t, &f[i]);
  return f;
}

static void test_bounds_and_sequence(void **state) {
  (void)state;
  for (uint32_t idx = 1; idx <= 20; idx++) {
    hw_fix *f = run_truck(42, idx, DAY_FIXES, STEP_MS);
    size_t cruising = 0, moving = 0;
    for (size_t i = 0; i < DAY_FIXES; i++) {
      assert_int_equal(f[i].seq, (int64_t)i + 1);
      assert_int_equal(f[i].ts_ms, 1700000000000LL + (int64_t)(i + 1) * STEP_MS);
      assert_true(f[i].speed_dkmh <= 1000);
      assert_true(f[i].heading < 360);
      /* Started inside lat 22-45 / lon 100-122 and steered back when outside. */
      assert_true(f[i].lat_e6 > 21000000 && f[i].lat_e6 < 46000000);
      assert_true(f[i].lon_e6 > 99000000 && f[i].lon_e6 < 123000000);
      assert_true(f[i].alt_m > -100 && f[i].alt_m < 5000);
      assert_true(f[i].status & 2u); /* positioned */
      assert_true(f[i].has_driver && strlen(f[i].driver_id) > 0);
      if (i > 0)
        assert_true(f[i].odometer_hm >= f[i - 1].odometer_hm);
      if (f[i].speed_dkmh > 0)
        moving++;
      if (f[i].speed_dkmh >= 600)
        cruising++;
    }
    /* Mostly on the road, mostly at cruising speed while on it. */
    assert_true(moving > DAY_FIXES / 2);
    assert_true(cruising > moving / 2);
    free(f);
  }
}

static void test_moves_with_speed(void **state) {
  (void)state;
  uint32_t steps[] = {1000, STEP_MS, 30000};
  for (size_t s = 0; s < HW_ARRAY_SIZE(steps); s++) {
    size_t n = 2 * 3600 * 1000 / steps[s] * 6;
    hw_fix *f = run_truck(7, 3, n, steps[s]);
    double dt = steps[s] / 1000.0, total = 0;
    for (size_t i = 1; i < n; i++) {
      double d = hw_sim_distance_m(f[i - 1].lat_e6 / 1e6, f[i - 1].lon_e6 / 1e6, f[i].lat_e6 / 1e6,
                                   f[i].lon_e6 / 1e6);
      double v0 = f[i - 1].speed_dkmh / 36.0, v1 = f[i].speed_dkmh / 36.0;
      double lo = (v0 < v1 ? v0 : v1) * dt, hi = (v0 > v1 ? v0 : v1) * dt;
      /* Speed changes monotonically within a step, so the distance lies between the slower and
       * the faster speed times the step; the slack covers rounding to 0.1 km/h and 1e-6 degrees. */
      double tol = 0.5 + 0.03 * dt;
      if (d < lo - tol || d > hi + tol)
        fail_msg("step %zu (dt %.0f s): moved %.2f m at %.1f..%.1f km/h, expected %.2f..%.2f m", i,
                 dt, d, v0 * 3.6, v1 * 3.6, lo, hi);
      total += d;
    }
    /* The odometer counts the same distance (it is kept in 0.1 km units). */
    double odo = (f[n - 1].odometer_hm - f[0].odometer_hm) * 100.0;
    assert_true(total > 10000);
    assert_true(odo > total - 200 && odo < total + 200);
    free(f);
  }
}

static void test_lights_and_rests(void **state) {
  (void)state;
  size_t n = 2 * DAY_FIXES;
  int total_rests = 0;
  for (uint32_t idx = 1; idx <= 10; idx++) {
    hw_fix *f = run_truck(99, idx, n, STEP_MS);
    int light_stops = 0, rests = 0;
    int64_t on_since = f[0].ts_ms, off_since = -1;
    for (size_t i = 0; i < n; i++) {
      int acc = f[i].status & 1u;
      if (acc && f[i].speed_dkmh == 0 && (i == 0 || f[i - 1].speed_dkmh > 0))
        light_stops++;
      if (!acc) {
        assert_int_equal(f[i].speed_dkmh, 0); /* never moving with the engine off */
        if (off_since < 0)
          off_since = f[i].ts_ms;
      } else if (off_since >= 0) {
        int64_t rest = f[i].ts_ms - off_since;
        assert_true(rest >= 20 * 60000 - STEP_MS && rest <= 40 * 60000 + STEP_MS);
        rests++;
        off_since = -1;
        on_since = f[i].ts_ms;
      }
      /* Never more than 4 hours of driving without a rest. */
      if (acc)
        assert_true(f[i].ts_ms - on_since <= 4 * 3600 * 1000);
    }
    assert_true(light_stops >= 10);
    /* 48 hours at up to 3.8 hours between rests: several rests. */
    assert_true(rests >= 8);
    total_rests += rests;
    free(f);
  }
  assert_true(total_rests >= 80);
}

static void test_deterministic(void **state) {
  (void)state;
  size_t n = 5000;
  hw_fix *a = run_truck(1234, 17, n, STEP_MS);
  hw_fix *b = run_truck(1234, 17, n, STEP_MS);
  hw_fix *c = run_truck(1235, 17, n, STEP_MS);
  hw_fix *d = run_truck(1234, 18, n, STEP_MS);
  size_t diff_c = 0, diff_d = 0;
  for (size_t i = 0; i < n; i++) {
    assert_memory_equal(&a[i], &b[i], sizeof a[i]);
    diff_c += a[i].lat_e6 != c[i].lat_e6;
    diff_d += a[i].lat_e6 != d[i].lat_e6;
  }
  assert_true(diff_c > n / 2);
  assert_true(diff_d > n / 2);
  free(a), free(b), free(c), free(d);
}

static void test_rec_roundtrip(void **state) {
  (void)state;
  hw_sim_truck t;
  hw_sim_truck_init(&t, 5, 9, 1600000000000LL, STEP_MS);
  for (int i = 0; i < 3000; i++) {
    hw_fix f, g;
    memset(&f, 0, sizeof f);
    memset(&g, 0xff, sizeof g);
    hw_sim_truck_next(&t, &f);
    hw_sim_rec rec;
    hw_sim_rec_pack(&rec, &f, t.driver_no);
    hw_sim_rec_unpack(&t, t.k, &rec, &g);
    assert_memory_equal(&f, &g, offsetof(hw_fix, driver_id));
    assert_string_equal(f.driver_id, g.driver_id);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bounds_and_sequence),
      cmocka_unit_test(test_moves_with_speed),
      cmocka_unit_test(test_lights_and_rests),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_rec_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
