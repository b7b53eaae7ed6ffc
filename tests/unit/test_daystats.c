/* The daily figures accumulator (rules/daystats.h): each qualification check just inside and just
 * outside its bound, drift (and the fix after a drift judged against the fix before it), track
 * gaps, the GMT+8 day boundary, order, and that a day recomputed from the day before's carry
 * equals the same days fed in one stream (what the daemon and `report rebuild` rely on). */
#include "rules_test_util.h"
#include "base/geo.h"
#include "rules/daystats.h"

static hw_fix q_fix(int64_t ts, int32_t lat, int32_t lon) {
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.ts_ms = ts;
  f.recv_ms = ts + 1000;
  f.lat_e6 = lat;
  f.lon_e6 = lon;
  f.speed_dkmh = 500;
  f.heading = 90;
  f.alt_m = 30;
  f.status = HW_STATUS_POSITIONED;
  return f;
}

static void test_qualification_bounds(void **state) {
  (void)state;
  hw_daystats_config c;
  hw_daystats_config_default(&c);
  hw_fix f = q_fix(rt_cst(2026, 11, 2, 9, 0, 0), 32000000, 118000000);
  assert_int_equal(hw_daystats_defects(&c, &f), 0);
  hw_fix g;
#define BOUND(field, in, out, bit)                              \
  do {                                                          \
    g = f;                                                      \
    g.field = in;                                               \
    assert_int_equal(hw_daystats_defects(&c, &g), 0);           \
    g.field = out;                                              \
    assert_int_equal(hw_daystats_defects(&c, &g), bit);         \
  } while (0)
  BOUND(lon_e6, 73550000, 73549999, HW_DQ_LON);
  BOUND(lon_e6, 135083300, 135083301, HW_DQ_LON);
  BOUND(lat_e6, 3850000, 3849999, HW_DQ_LAT);
  BOUND(lat_e6, 53550000, 53550001, HW_DQ_LAT);
  BOUND(speed_dkmh, 1600, 1601, HW_DQ_SPEED);
  BOUND(speed_dkmh, 0, 1601, HW_DQ_SPEED);
  BOUND(alt_m, -200, -201, HW_DQ_ALT);
  BOUND(alt_m, 6500, 6501, HW_DQ_ALT);
  BOUND(heading, 359, 360, HW_DQ_HEADING);
  BOUND(heading, 0, 360, HW_DQ_HEADING);
  BOUND(status, HW_STATUS_POSITIONED, 0x1u, HW_DQ_NOT_POSITIONED);
  /* Device time at most max_future after receipt (600 s by default); any time before is fine. */
  BOUND(ts_ms, f.recv_ms + 600000, f.recv_ms + 600001, HW_DQ_FUTURE);
  BOUND(ts_ms, f.recv_ms - 86400000LL * 30, f.recv_ms + 3600000, HW_DQ_FUTURE);
#undef BOUND
  /* The quality bits the daemon stored do not matter. */
  g = f;
  g.quality = 0xffff;
  assert_int_equal(hw_daystats_defects(&c, &g), 0);
  /* Settings move the bounds. */
  c.max_speed_dkmh = 1200;
  g = f;
  g.speed_dkmh = 1201;
  assert_int_equal(hw_daystats_defects(&c, &g), HW_DQ_SPEED);
}

/* Three fixes 10 s apart: the second 5 km off (1800 km/h: drift), the third 800 m from the first
 * (144 km/h from it, but 4.2 km in 10 s from the drift point). */
static void test_drift(void **state) {
  (void)state;
  hw_daystats_config c;
  hw_daystats_config_default(&c);
  hw_daystats s;
  hw_daystats_init(&s, NULL);
  hw_day_figures done;
  int64_t t0 = rt_cst(2026, 11, 2, 9, 0, 0);
  /* 1e-6 degree of latitude is 0.1112 m: 7194 e-6 is about 800 m, 44966 about 5 km. */
  hw_fix a = q_fix(t0, 32000000, 118000000);
  hw_fix b = q_fix(t0 + 10000, 32044966, 118000000);
  hw_fix d = q_fix(t0 + 20000, 32007194, 118000000);
  assert_int_equal(hw_daystats_feed(&c, &s, &a, &done), 0);
  assert_int_equal(hw_daystats_feed(&c, &s, &b, &done), 0);
  assert_int_equal(s.cur.drift, 1);
  assert_true(s.cur.m_total == 0.0);
  assert_true(s.ref.ts_ms == a.ts_ms); /* the drift is no reference */
  assert_int_equal(hw_daystats_feed(&c, &s, &d, &done), 0);
  assert_int_equal(s.cur.drift, 1);
  double ad = hw_geo_distance_m(a.lat_e6, a.lon_e6, d.lat_e6, d.lon_e6);
  assert_true(ad > 790 && ad < 810);
  assert_true(s.cur.m_total == ad);
  assert_true(s.cur.m_complete == ad);
  assert_int_equal(s.cur.records, 3);
  assert_int_equal(s.cur.qualified, 3);
  assert_true(s.cur.first_ms == a.ts_ms && s.cur.last_ms == d.ts_ms);
  /* 800 m in 20 s is 144 km/h; with drift_kmh 140 the third fix is drift too. */
  c.drift_dkmh = 1400;
  hw_daystats_init(&s, NULL);
  assert_int_equal(hw_daystats_feed(&c, &s, &a, &done), 0);
  assert_int_equal(hw_daystats_feed(&c, &s, &d, &done), 0);
  assert_int_equal(s.cur.drift, 1);
  c.drift_dkmh = 1450; /* just above 144 km/h: not drift */
  hw_daystats_init(&s, NULL);
  assert_int_equal(hw_daystats_feed(&c, &s, &a, &done), 0);
  assert_int_equal(hw_daystats_feed(&c, &s, &d, &done), 0);
  assert_int_equal(s.cur.drift, 0);
}

/* Unqualified records count as records and nothing else: no km, no reference, no first/last. */
static void test_unqualified_stay_off_the_track(void **state) {
  (void)state;
  hw_daystats_config c;
  hw_daystats_config_default(&c);
  hw_daystats s;
  hw_daystats_init(&s, NULL);
  hw_day_figures done;
  int64_t t0 = rt_cst(2026, 11, 2, 9, 0, 0);
  hw_fix a = q_fix(t0, 32000000, 118000000);
  hw_fix bad = q_fix(t0 - 5000, 32000900, 118000000);
  bad.status = 0;
  hw_fix b = q_fix(t0 + 10000, 32000900, 118000000);
  assert_int_equal(hw_daystats_feed(&c, &s, &bad, &done), 0);
  assert_false(s.ref.has);
  assert_int_equal(hw_daystats_feed(&c, &s, &a, &done), 0);
  hw_fix bad2 = bad;
  bad2.ts_ms = t0 + 6000;
  assert_int_equal(hw_daystats_feed(&c, &s, &bad2, &done), 0);
  assert_int_equal(hw_daystats_feed(&c, &s, &b, &done), 0);
  assert_int_equal(s.cur.records, 4);
  assert_int_equal(s.cur.qualified, 2);
  assert_true(s.cur.first_ms == a.ts_ms);
  assert_true(s.cur.m_total == hw_geo_distance_m(a.lat_e6, a.lon_e6, b.lat_e6, b.lon_e6));
}

/* A segment of exactly track_gap (180 s) is complete, one millisecond more is not. */
static void test_gaps(void **state) {
  (void)state;
  hw_daystats_config c;
  hw_daystats_config_default(&c);
  hw_daystats s;
  hw_daystats_init(&s, NULL);
  hw_day_figures done;
  int64_t t0 = rt_cst(2026, 11, 2, 9, 0, 0);
  hw_fix a = q_fix(t0, 32000000, 118000000);
  hw_fix b = q_fix(t0 + 180000, 32010000, 118000000);
  hw_fix d = q_fix(t0 + 360001, 32020000, 118000000);
  assert_int_equal(hw_daystats_feed(&c, &s, &a, &done), 0);
  assert_int_equal(hw_daystats_feed(&c, &s, &b, &done), 0);
  double ab = hw_geo_distance_m(a.lat_e6, a.lon_e6, b.lat_e6, b.lon_e6);
  assert_true(s.cur.m_total == ab && s.cur.m_complete == ab);
  assert_int_equal(hw_daystats_feed(&c, &s, &d, &done), 0);
  double bd = hw_geo_distance_m(b.lat_e6, b.lon_e6, d.lat_e6, d.lon_e6);
  assert_true(s.cur.m_total == ab + bd);
  assert_true(s.cur.m_complete == ab);
}

/* GMT+8 midnight splits days (UTC midnight, 08:00 GMT+8, does not); the segment across it
 * belongs to the later fix's day. */
static void test_day_boundary(void **state) {
  (void)state;
  hw_daystats_config c;
  hw_daystats_config_default(&c);
  hw_daystats s;
  hw_daystats_init(&s, NULL);
  hw_day_figures done;
  hw_fix u1 = q_fix(rt_cst(2026, 11, 2, 7, 59, 50), 32000000, 118000000);
  hw_fix u2 = q_fix(rt_cst(2026, 11, 2, 8, 0, 10), 32001000, 118000000);
  hw_fix a = q_fix(rt_cst(2026, 11, 2, 23, 59, 50), 32002000, 118000000);
  hw_fix b = q_fix(rt_cst(2026, 11, 3, 0, 0, 10), 32003000, 118000000);
  assert_int_equal(hw_daystats_feed(&c, &s, &u1, &done), 0);
  assert_int_equal(hw_daystats_feed(&c, &s, &u2, &done), 0);
  assert_int_equal(hw_daystats_feed(&c, &s, &a, &done), 0);
  int32_t day1 = s.cur.day;
  assert_int_equal(day1, hw_cst_day(u1.ts_ms));
  double d1 = hw_geo_distance_m(u1.lat_e6, u1.lon_e6, u2.lat_e6, u2.lon_e6) +
              hw_geo_distance_m(u2.lat_e6, u2.lon_e6, a.lat_e6, a.lon_e6);
  assert_int_equal(hw_daystats_feed(&c, &s, &b, &done), 1);
  assert_int_equal(done.day, day1);
  assert_int_equal(done.records, 3);
  assert_true(done.m_total == d1);
  assert_true(done.carry.ts_ms == a.ts_ms);
  assert_int_equal(s.cur.day, day1 + 1);
  assert_int_equal(s.cur.records, 1);
  assert_true(s.cur.m_total == hw_geo_distance_m(a.lat_e6, a.lon_e6, b.lat_e6, b.lon_e6));
  assert_true(s.cur.m_complete == s.cur.m_total); /* 20 s apart */
}

/* Out of order is refused and changes nothing; a day recomputed from the carry of the day before
 * is the same, double for double, as the days fed in one stream. */
static void test_order_and_carry(void **state) {
  (void)state;
  hw_daystats_config c;
  hw_daystats_config_default(&c);
  hw_fix fx[40];
  int64_t t0 = rt_cst(2026, 11, 2, 22, 0, 0);
  for (int i = 0; i < 40; i++) {
    /* Every 5 minutes (so every segment is a gap), wandering, one drift at i == 30 (day 2). */
    fx[i] = q_fix(t0 + i * 300000LL, 32000000 + i * 1337 + (i == 30 ? 900000 : 0),
                  118000000 + (i * i * 71) % 5000);
    if (i == 7)
      fx[i].alt_m = 9000; /* unqualified */
  }
  hw_daystats one, part;
  hw_day_figures done, d1 = {0};
  hw_daystats_init(&one, NULL);
  int finished = 0;
  for (int i = 0; i < 40; i++) {
    int rc = hw_daystats_feed(&c, &one, &fx[i], &done);
    assert_true(rc >= 0);
    if (rc == 1) {
      d1 = done;
      finished++;
    }
  }
  assert_int_equal(finished, 1);
  assert_int_equal(one.cur.drift, 1);
  hw_daystats before = one;
  assert_false(hw_daystats_in_order(&one, &fx[39]));
  assert_int_equal(hw_daystats_feed(&c, &one, &fx[39], &done), -EINVAL);
  assert_int_equal(hw_daystats_feed(&c, &one, &fx[3], &done), -EINVAL);
  assert_memory_equal(&before, &one, sizeof one);
  /* Day 2 on its own, from day 1's carry. */
  hw_daystats_init(&part, &d1.carry);
  for (int i = 0; i < 40; i++)
    if (hw_cst_day(fx[i].ts_ms) == one.cur.day)
      assert_int_equal(hw_daystats_feed(&c, &part, &fx[i], &done), 0);
  assert_memory_equal(&part.cur, &one.cur, sizeof one.cur);
  assert_true(part.cur.m_total > 0 && part.cur.m_complete == 0.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qualification_bounds),
      cmocka_unit_test(test_drift),
      cmocka_unit_test(test_unqualified_stay_off_the_track),
      cmocka_unit_test(test_gaps),
      cmocka_unit_test(test_day_boundary),
      cmocka_unit_test(test_order_and_carry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
