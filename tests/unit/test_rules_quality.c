/* Data quality: flags on single fixes, the jump test with its re-anchoring, and flagged fixes
 * kept out of the rules. */
#include "rules_test_util.h"
#include "rules/rules_internal.h"

static hw_fix good_fix(void) {
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.ts_ms = rt_cst(2026, 3, 2, 8, 0, 0);
  f.recv_ms = f.ts_ms + 2000;
  f.lat_e6 = 30000000;
  f.lon_e6 = 114000000;
  f.speed_dkmh = 600;
  f.status = HW_STATUS_POSITIONED;
  return f;
}

static void test_static_flags(void **state) {
  (void)state;
  hw_quality_config c;
  hw_quality_config_default(&c);
  hw_fix f = good_fix();
  assert_int_equal(hw_quality_static(&c, &f), 0);

  hw_fix g = f;
  g.status = 0x1; /* ACC on, not positioned */
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_NOT_POSITIONED);
  c.require_positioned = 0;
  assert_int_equal(hw_quality_static(&c, &g), 0);
  c.require_positioned = 1;

  g = f;
  g.lat_e6 = g.lon_e6 = 0;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_NULL_ISLAND);
  g.lat_e6 = 0; /* one coordinate at 0 is a real place (the equator) */
  g.lon_e6 = 114000000;
  assert_int_equal(hw_quality_static(&c, &g), 0);
  g = f;
  g.lat_e6 = 90000001;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_BAD_COORD);
  g.lat_e6 = 90000000;
  assert_int_equal(hw_quality_static(&c, &g), 0);
  g.lat_e6 = -90000001;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_BAD_COORD);
  g = f;
  g.lon_e6 = 180000001;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_BAD_COORD);

  /* Time window against receipt: +10 min / -7 days, boundaries allowed. */
  g = f;
  g.ts_ms = g.recv_ms + 10 * RT_MIN;
  assert_int_equal(hw_quality_static(&c, &g), 0);
  g.ts_ms++;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_FUTURE);
  g.ts_ms = g.recv_ms - 7 * 24 * RT_HOUR;
  assert_int_equal(hw_quality_static(&c, &g), 0);
  g.ts_ms--;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_STALE);
  g.ts_ms = 0; /* 1970: a terminal without a clock */
  g.recv_ms = 0;
  assert_int_equal(hw_quality_static(&c, &g) & HW_Q_STALE, HW_Q_STALE);
  g.ts_ms = INT64_MAX;
  assert_int_equal(hw_quality_static(&c, &g) & HW_Q_FUTURE, HW_Q_FUTURE);

  g = f;
  g.speed_dkmh = 2501;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_BAD_SPEED);

  /* Several at once. */
  g = f;
  g.status = 0;
  g.lat_e6 = g.lon_e6 = 0;
  g.ts_ms = g.recv_ms + RT_HOUR;
  assert_int_equal(hw_quality_static(&c, &g), HW_Q_NOT_POSITIONED | HW_Q_NULL_ISLAND | HW_Q_FUTURE);
}

static void test_jump_and_reanchor(void **state) {
  (void)state;
  hw_quality_config c;
  hw_quality_config_default(&c);
  hw_quality_ref ref;
  memset(&ref, 0, sizeof ref);
  hw_fix f = good_fix();
  assert_int_equal(hw_quality_check(&c, &ref, &f), 0);
  assert_int_equal(ref.ts_ms, f.ts_ms);

  /* 10 s later, 1 km away: 360 km/h implied. */
  hw_fix j = f;
  j.ts_ms += 10000;
  j.recv_ms += 10000;
  j.lat_e6 += 8993;
  assert_int_equal(hw_quality_check(&c, &ref, &j), HW_Q_JUMP);
  assert_int_equal(ref.ts_ms, f.ts_ms); /* the reference did not move */
  /* 10 s later, 600 m: 216 km/h, plausible. */
  hw_fix ok = f;
  ok.ts_ms += 10000;
  ok.recv_ms += 10000;
  ok.lat_e6 += 5396;
  assert_int_equal(hw_quality_check(&c, &ref, &ok), 0);
  /* Same second, 400 m: within the slack for GPS noise. */
  hw_fix same = ok;
  same.lat_e6 += 3597;
  assert_int_equal(hw_quality_check(&c, &ref, &same), 0);

  /* The reference was wrong (drift at power-up): the vehicle keeps reporting 50 km away,
   * consistently. Two are flagged, the third moves the reference, then all is well. */
  hw_fix far = ok;
  far.lat_e6 += 450000;
  for (int i = 0; i < 2; i++) {
    far.ts_ms += 10000;
    far.recv_ms += 10000;
    far.lat_e6 += 1000;
    assert_int_equal(hw_quality_check(&c, &ref, &far), HW_Q_JUMP);
  }
  far.ts_ms += 10000;
  far.recv_ms += 10000;
  far.lat_e6 += 1000;
  assert_int_equal(hw_quality_check(&c, &ref, &far), 0);
  assert_int_equal(ref.lat_e6, far.lat_e6);
  far.ts_ms += 10000;
  far.recv_ms += 10000;
  assert_int_equal(hw_quality_check(&c, &ref, &far), 0);

  /* A reflection that puts every other fix at the same wrong place never re-anchors: a good
   * fix in between ends the run of suspects. */
  hw_fix good = far, ghost = far;
  for (int i = 0; i < 10; i++) {
    good.ts_ms += 10000;
    good.recv_ms += 10000;
    good.lat_e6 += 100;
    assert_int_equal(hw_quality_check(&c, &ref, &good), 0);
    ghost.ts_ms = good.ts_ms + 5000;
    ghost.recv_ms = good.recv_ms + 5000;
    ghost.lat_e6 = far.lat_e6 + 200000 + i * 10;
    assert_int_equal(hw_quality_check(&c, &ref, &ghost), HW_Q_JUMP);
  }
  far = good;

  /* Jumps that disagree with each other never re-anchor. */
  hw_fix spike = far;
  for (int i = 0; i < 10; i++) {
    spike.ts_ms += 10000;
    spike.recv_ms += 10000;
    spike.lat_e6 = far.lat_e6 + (i & 1 ? 900000 : -900000);
    assert_int_equal(hw_quality_check(&c, &ref, &spike), HW_Q_JUMP);
  }
}

static void test_flagged_fixes_stay_out_of_rules(void **state) {
  (void)state;
  rt r;
  rt_init(&r);
  rt_start(&r);
  int64_t t0 = r.now;
  rt_drive(&r, 100);
  /* Between good fixes: a 0/0 burst, a latitude beyond 90, a fix from an hour ahead, an
   * impossible jump, an unpositioned fix, all "at 150 km/h". Evaluated, any of them would make
   * speeding, offline displacement or a wrong horizon. */
  int64_t t = r.now;
  uint16_t seen = 0;
  for (int i = 1; i <= 5; i++) {
    hw_fix f = rt_fix(&r, t + i * 10000, 1500);
    f.lat_e6 = f.lon_e6 = 0;
    seen |= rt_feed(&r, f);
  }
  hw_fix f = rt_fix(&r, t + 51000, 1500);
  f.lat_e6 = 91000000;
  seen |= rt_feed(&r, f);
  f = rt_fix(&r, t + RT_HOUR, 1500);
  f.recv_ms = t + 52000;
  seen |= rt_feed(&r, f);
  for (int i = 0; i < 2; i++) {
    f = rt_fix(&r, t + 53000 + i * 1000, 1500);
    f.lat_e6 += 1000000 + i * 100;
    seen |= rt_feed(&r, f);
  }
  f = rt_fix(&r, t + 56000, 1500);
  f.status = 0;
  f.lat_e6 += 2000000;
  seen |= rt_feed(&r, f);
  assert_int_equal(seen, HW_Q_NULL_ISLAND | HW_Q_BAD_COORD | HW_Q_FUTURE | HW_Q_JUMP |
                             HW_Q_NOT_POSITIONED);
  assert_int_equal(r.nev, 0);
  assert_int_equal(hw_rule_state_horizon_ms(r.t.rules), t); /* nothing moved the horizon */
  /* The good fixes carry on as if nothing happened: the timeline is intact. */
  rt_drive(&r, 145);
  rt_stop(&r, 30);
  assert_int_equal(rt_count(&r, -1, -1), rt_count(&r, HW_VIOL_FATIGUE_CONTINUOUS, -1));
  assert_int_equal(rt_count(&r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_find(&r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, 0)->started_ms,
                   t0 + 4 * RT_HOUR);
  rt_free(&r);
}

static void test_preflagged_fix_is_not_evaluated(void **state) {
  (void)state;
  rt r;
  rt_init(&r);
  rt_start(&r);
  rt_step(&r, 10, 900);
  int64_t t = r.now;
  for (int i = 1; i <= 6; i++) {
    hw_fix f = rt_fix(&r, t + i * 10000, 1500);
    f.quality = 0x8000; /* a decoder's own reason */
    assert_int_equal(hw_rules_on_fix(r.e, &r.t, r.vp, &f), 0);
    assert_int_equal(f.quality, 0x8000);
  }
  assert_int_equal(r.nev, 0);
  assert_int_equal(hw_rule_state_horizon_ms(r.t.rules), t);
  rt_free(&r);
}

static void test_event_text_formatting(void **state) {
  (void)state;
  char buf[64];
  hw_sbuf b;
  struct {
    int64_t v;
    int dec;
    const char *want;
  } fx[] = {{1300, 1, "130.0"},          {5, 6, "0.000005"},         {-5, 6, "-0.000005"},
            {30123456, 6, "30.123456"}, {-122419400, 6, "-122.419400"}, {0, 1, "0.0"},
            {0, 0, "0"},               {INT64_MIN, 0, "-9223372036854775808"}};
  for (size_t i = 0; i < HW_ARRAY_SIZE(fx); i++) {
    hw__sb_init(&b, buf, sizeof buf);
    hw__sb_fixed(&b, fx[i].v, fx[i].dec);
    assert_string_equal(buf, fx[i].want);
  }
  /* JSON strings: escapes, UTF-8 kept, broken bytes and controls replaced, never cut open. */
  hw__sb_init(&b, buf, sizeof buf);
  hw__sb_json(&b, "a\"b\\c\n\xff\xe5\x86\x80\xe5\x86", 32);
  assert_string_equal(buf, "\"a\\\"b\\\\c??\xe5\x86\x80??\"");
  char small[12];
  hw__sb_init(&b, small, sizeof small);
  hw__sb_json(&b, "0123456789abcdef", 32);
  assert_true(strlen(small) < sizeof small);
  assert_int_equal(small[strlen(small) - 1], '"');
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_static_flags),
      cmocka_unit_test(test_jump_and_reanchor),
      cmocka_unit_test(test_flagged_fixes_stay_out_of_rules),
      cmocka_unit_test(test_preflagged_fix_is_not_evaluated),
      cmocka_unit_test(test_event_text_formatting),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
