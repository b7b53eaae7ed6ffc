/* Restart safety: the rule state survives encode/decode, replays keep episode identities, and
 * the decoder rejects anything that is not a state this version wrote. */
#include "rules_test_util.h"
#include "rules/rules_internal.h"

/* Simulates a daemon restart: the engine and the terminal record are gone; a new engine gets
 * the state back from bytes. The event recorder and the truck carry on. */
static void restart(rt *r, const uint8_t *bytes, size_t len) {
  hw_rules_free(r->e);
  r->e = NULL;
  hw_rule_state_free(r->t.rules);
  memset(&r->t, 0, sizeof r->t);
  r->t.id = (char *)"013800000001";
  rt_start(r);
  struct hw_rule_state *st = NULL;
  assert_int_equal(hw_rule_state_decode(bytes, len, &st), 0);
  r->t.rules = st;
}

static size_t snapshot(rt *r, uint8_t *buf) {
  size_t len = 0;
  assert_int_equal(hw_rule_state_encode(r->t.rules, buf, HW_RULE_STATE_ENCODED_MAX, &len), 0);
  assert_true(len > 0 && len <= HW_RULE_STATE_ENCODED_MAX);
  return len;
}

static void test_restart_in_open_episode_gives_one(void **state) {
  rt *r = *state;
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  rt_start(r);
  rt_drive(r, 245); /* fatigue_continuous open */
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  size_t len = snapshot(r, buf);
  restart(r, buf, len);
  assert_int_equal(hw_rule_state_horizon_ms(r->t.rules), r->now);
  /* Terminals resend what was not acknowledged: the last five fixes come again. */
  r->logging = 0;
  int64_t end = r->now;
  int32_t lat = r->lat;
  for (int i = 4; i >= 0; i--) {
    r->lat = lat - i * (int32_t)llround(1000 / 0.1111950802);
    assert_int_equal(rt_feed(r, rt_fix(r, end - i * RT_MIN, 600)), 0);
  }
  r->lat = lat;
  rt_drive(r, 10);
  rt_stop(r, 30);
  assert_int_equal(rt_ids(r, HW_VIOL_FATIGUE_CONTINUOUS), 1);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE), 1);
  /* Counted once: the resent fixes did not add driving time. */
  assert_int_equal(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0)->value, 255 * 60);
}

static void test_restart_from_older_snapshot_replays_to_same_identity(void **state) {
  rt *r = *state;
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  rt_start(r);
  rt_drive(r, 238);
  size_t len = snapshot(r, buf); /* before the limit is passed */
  r->logging = 1;
  rt_drive(r, 12);              /* the old process opens the episode, then dies */
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 1);
  r->logging = 0;
  restart(r, buf, len);
  /* The daemon replays the stored fixes newer than the snapshot's horizon. */
  int64_t horizon = hw_rule_state_horizon_ms(r->t.rules);
  size_t replayed = 0;
  for (size_t i = 0; i < r->nlog; i++)
    if (r->log[i].ts_ms > horizon) {
      hw_fix f = r->log[i];
      f.quality = 0;
      assert_int_equal(hw_rules_on_fix(r->e, &r->t, r->vp, &f), 0);
      replayed++;
    }
  assert_int_equal(replayed, 12);
  rt_drive(r, 5);
  rt_stop(r, 30);
  /* Two OPEN events (one per process) for one episode. */
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN), 2);
  assert_int_equal(rt_ids(r, HW_VIOL_FATIGUE_CONTINUOUS), 1);
  const hw_violation_event *a = rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, 0);
  const hw_violation_event *b = rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_OPEN, 1);
  assert_string_equal(a->episode_id, b->episode_id);
  assert_int_equal(a->started_ms, b->started_ms);
  assert_int_equal(rt_find(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0)->value, 255 * 60);
}

static void test_restart_in_speeding_episode(void **state) {
  rt *r = *state;
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  rt_start(r);
  rt_step(r, 10, 900);
  for (int i = 0; i < 3; i++)
    rt_step(r, 10, 1150); /* 20 s: not yet a violation */
  size_t len = snapshot(r, buf);
  restart(r, buf, len);
  for (int i = 0; i < 3; i++)
    rt_step(r, 10, 1250);
  rt_step(r, 10, 900);
  assert_int_equal(rt_ids(r, HW_VIOL_SPEEDING), 1);
  const hw_violation_event *ev = rt_find(r, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(ev->ended_ms - ev->started_ms, 50000); /* the run spans the restart */
  assert_int_equal(ev->value, 1250);
}

static void test_restart_keeps_per_day_identity(void **state) {
  rt *r = *state;
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  r->v.status = HW_VEH_DEREGISTERED;
  rt_start(r);
  rt_drive(r, 10);
  size_t len = snapshot(r, buf);
  restart(r, buf, len);
  rt_drive(r, 10);
  assert_int_equal(rt_count(r, HW_VIOL_DEREGISTERED_VEHICLE, HW_PHASE_OPEN), 1);
  assert_int_equal(rt_ids(r, HW_VIOL_DEREGISTERED_VEHICLE), 1);
}

#define TS_LIMIT 100000000000000LL /* the decoder's bound for times and durations */

/* A state with every section in use, every string at its longest, every number at its bound. */
static struct hw_rule_state *full_state(void) {
  struct hw_rule_state *st = calloc(1, sizeof *st);
  assert_non_null(st);
  st->qref.has = 1;
  st->qref.ts_ms = -TS_LIMIT;
  st->qref.suspects = 255;
  st->qref.sus_ts_ms = TS_LIMIT;
  st->qref.lat_e6 = INT32_MIN;
  st->has_prev = 1;
  st->prev.ts_ms = TS_LIMIT;
  st->prev.speed_dkmh = UINT32_MAX;
  memset(st->driver, 'D', HW_DRIVER_ID_MAX);
  st->cont_ms = -TS_LIMIT;
  st->rest_ms = TS_LIMIT;
  st->cont_ep.open = 1;
  st->cont_ep.start_ms = -TS_LIMIT;
  st->speed_ep.active = st->speed_ep.opened = 1;
  st->speed_ep.worst_zone = INT64_MIN;
  hw_rule_extra *x = st->x = calloc(1, sizeof *st->x);
  assert_non_null(x);
  x->night_ep.open = 1;
  x->night_ep.lat_e6 = INT32_MAX;
  x->daily_day = -1200000;
  for (int i = 0; i < HW_RULE_DRIVERS; i++) {
    x->daily[i].used = 1;
    memset(x->daily[i].driver, 'a' + i, HW_DRIVER_ID_MAX);
    x->daily[i].drive_ms = -TS_LIMIT + i;
    x->daily[i].ep.open = 1;
    x->daily[i].ep.emit_ms = TS_LIMIT - i;
  }
  x->night_speed_ep.active = 1;
  x->night_speed_ep.max_speed = UINT32_MAX;
  for (int i = 0; i < HW_VDAY__N; i++) {
    x->vday[i].open = 1;
    x->vday[i].key = INT64_MIN;
    x->vday[i].day = 1200000;
  }
  for (int i = 0; i < HW_RULE_ZONE_SLOTS; i++) {
    x->zday[i].open = 1;
    x->zday[i].key = INT64_MAX - i;
    x->zday[i].speed_dkmh = UINT32_MAX;
    x->zday[i].start_ms = -TS_LIMIT;
  }
  return st;
}

static void test_roundtrip_and_bound(void **state) {
  (void)state;
  struct hw_rule_state *st = full_state();
  uint8_t a[HW_RULE_STATE_ENCODED_MAX], b[HW_RULE_STATE_ENCODED_MAX];
  size_t la = 0, lb = 0;
  assert_int_equal(hw_rule_state_encode(st, a, sizeof a, &la), 0);
  assert_true(la <= HW_RULE_STATE_ENCODED_MAX);
  struct hw_rule_state *back = NULL;
  assert_int_equal(hw_rule_state_decode(a, la, &back), 0);
  assert_int_equal(hw_rule_state_encode(back, b, sizeof b, &lb), 0);
  assert_int_equal(la, lb);
  assert_memory_equal(a, b, la);
  assert_string_equal(back->driver, st->driver);
  assert_non_null(back->x);
  assert_int_equal(back->x->daily[3].drive_ms, -TS_LIMIT + 3);
  assert_int_equal(back->x->zday[1].key, INT64_MAX - 1);
  assert_int_equal(back->prev.ts_ms, TS_LIMIT);
  assert_int_equal(hw_rule_state_horizon_ms(back), TS_LIMIT);
  /* Too small a buffer is an error, never an overrun. */
  size_t l = 0;
  assert_int_equal(hw_rule_state_encode(st, a, la - 1, &l), -ENOBUFS);
  hw_rule_state_free(back);
  hw_rule_state_free(st);
}

static void test_decode_rejects_bad_input(void **state) {
  (void)state;
  struct hw_rule_state *st = full_state();
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX + 1];
  size_t len = 0;
  assert_int_equal(hw_rule_state_encode(st, buf, HW_RULE_STATE_ENCODED_MAX, &len), 0);
  hw_rule_state_free(st);
  struct hw_rule_state *out = NULL;
  for (size_t n = 0; n < len; n++) /* every truncation */
    assert_int_equal(hw_rule_state_decode(buf, n, &out), -EINVAL);
  buf[len] = 0;
  assert_int_equal(hw_rule_state_decode(buf, len + 1, &out), -EINVAL); /* trailing byte */
  buf[1] = 2;
  assert_int_equal(hw_rule_state_decode(buf, len, &out), -ENOTSUP); /* another version */
  buf[0] = 0;
  assert_int_equal(hw_rule_state_decode(buf, len, &out), -EINVAL); /* not a state */
  /* Garbage never crashes; whatever decodes can be encoded again. */
  uint64_t x = 88172645463325252ull;
  for (int round = 0; round < 20000; round++) {
    size_t n = 2 + (size_t)(round % 300);
    buf[0] = 0xA7;
    buf[1] = 1;
    for (size_t i = 2; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      buf[i] = (uint8_t)(round & 1 ? x & 0x01 : x);
    }
    out = NULL;
    if (hw_rule_state_decode(buf, n, &out) == 0) {
      uint8_t again[HW_RULE_STATE_ENCODED_MAX];
      size_t l2 = 0;
      assert_int_equal(hw_rule_state_encode(out, again, sizeof again, &l2), 0);
      hw_rule_state_free(out);
    }
  }
}

static void test_decoded_garbage_state_is_safe_to_run(void **state) {
  rt *r = *state;
  /* States that decode but hold nonsense (a bug elsewhere, a bit flip in storage) must not
   * crash or hang the engine: mutate a real mid-episode state and run fixes through each. */
  rt_start(r);
  r->cls.daily_limit_s = 3600;
  r->cls.night_rules = 1;
  rt_drive(r, 250);
  uint8_t good[HW_RULE_STATE_ENCODED_MAX], buf[HW_RULE_STATE_ENCODED_MAX];
  size_t len = snapshot(r, good);
  int64_t t_end = r->now;
  int32_t lat_end = r->lat;
  uint64_t x = 0x2545F4914F6CDD1Dull;
  size_t decoded = 0;
  for (int round = 0; round < 3000; round++) {
    memcpy(buf, good, len);
    for (int k = 0; k < 3; k++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      buf[2 + x % (len - 2)] ^= (uint8_t)(1u << (x >> 32) % 8);
    }
    struct hw_rule_state *st = NULL;
    if (hw_rule_state_decode(buf, len, &st) != 0)
      continue;
    decoded++;
    hw_rule_state_free(r->t.rules);
    r->t.rules = st;
    r->now = t_end;
    r->lat = lat_end;
    r->nev = 0;
    for (int i = 1; i <= 5; i++) { /* fixes may be flagged now (a mutated jump reference) */
      rt_move(r, i <= 3 ? 1000 : 0);
      hw_fix f = rt_fix(r, t_end + i * RT_MIN, i <= 3 ? 600 : 0);
      assert_int_equal(hw_rules_on_fix(r->e, &r->t, r->vp, &f), 0);
    }
    assert_int_equal(hw_rules_tick(r->e, &r->t, r->vp, t_end + 24 * RT_HOUR), 0);
    assert_true(r->nev < 100);
  }
  assert_true(decoded > 100);
}

static void test_extension_only_while_needed(void **state) {
  rt *r = *state;
  rt_start(r);
  rt_drive(r, 245); /* fatigue and driving: all in the core state */
  rt_stop(r, 30);
  assert_int_equal(rt_count(r, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE), 1);
  assert_null(r->t.rules->x);
  /* A per-day episode needs it... */
  r->v.status = HW_VEH_DEREGISTERED;
  rt_drive(r, 5);
  assert_non_null(r->t.rules->x);
  /* ...until the day is over and nothing is running. */
  r->v.status = HW_VEH_ACTIVE;
  rt_at(r, rt_cst(2026, 3, 3, 8, 0, 0), 0);
  rt_settle(r);
  rt_stop(r, 2);
  assert_int_equal(rt_count(r, HW_VIOL_DEREGISTERED_VEHICLE, HW_PHASE_CLOSE), 1);
  assert_null(r->t.rules->x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_restart_in_open_episode_gives_one, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_restart_from_older_snapshot_replays_to_same_identity,
                                      rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_restart_in_speeding_episode, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_restart_keeps_per_day_identity, rt_setup, rt_teardown),
      cmocka_unit_test_setup_teardown(test_extension_only_while_needed, rt_setup, rt_teardown),
      cmocka_unit_test(test_roundtrip_and_bound),
      cmocka_unit_test(test_decode_rejects_bad_input),
      cmocka_unit_test_setup_teardown(test_decoded_garbage_state_is_safe_to_run, rt_setup, rt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
