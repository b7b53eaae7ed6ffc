/* Scenario scripts (sim_scenario.h): the fixes have the durations, speeds, gaps and positions the
 * header states, and the rules engine fed with them (all received at once, as a flat-out run
 * delivers them) finds exactly the violation each scenario is for, with the stated values.
 * Also: the simulator engine sends each scripted truck's fixes, and ordinary trucks of a mixed
 * fleet their own count, to a fake daemon. */
#include "rules_test_util.h"
#include "load/sim.h"
#include "sim_fake_server.h"
#include "load/sim_scenario.h"

#include "base/geo.h"

#define STEP 10000
#define T0 1764540000000LL /* any instant; the quality gate only compares it with receipt */

typedef struct run {
  hw_scn_script s;
  hw_fix *fix; /* owned: every fix of the script */
  int64_t n;
} run;

static void run_make(run *r, uint8_t kind, uint32_t param, uint32_t nth, uint32_t step) {
  assert_int_equal(hw_scn_script_init(&r->s, kind, param, nth, T0, step), 0);
  assert_true(r->s.nfixes > 0);
  r->fix = calloc((size_t)r->s.nfixes, sizeof *r->fix);
  assert_non_null(r->fix);
  hw_scn_gen g;
  hw_scn_gen_init(&g, &r->s, 1000.0);
  for (r->n = 0; r->n < r->s.nfixes; r->n++) {
    assert_int_equal(hw_scn_gen_next(&g, &r->fix[r->n]), 0);
    /* Any fix's time can be recomputed from its number alone (resends after reconnects). */
    assert_int_equal(r->fix[r->n].ts_ms, hw_scn_fix_ts(&r->s, r->n + 1));
    assert_int_equal(r->fix[r->n].seq, r->n + 1);
    if (r->n > 0)
      assert_true(r->fix[r->n].ts_ms > r->fix[r->n - 1].ts_ms);
  }
  hw_fix extra;
  assert_int_equal(hw_scn_gen_next(&g, &extra), -ENOENT);
  assert_int_equal(r->fix[0].ts_ms, T0);
  assert_int_equal(r->fix[r->n - 1].ts_ms - T0, r->s.span_ms);
}

static double dist(const hw_fix *a, const hw_fix *b) {
  return hw_geo_distance_m(a->lat_e6, a->lon_e6, b->lat_e6, b->lon_e6);
}

/* Runs of fixes at one speed: [from, to] indexes. Returns how many runs were found. */
typedef struct span {
  int64_t from, to;
  uint32_t speed;
} span;

static size_t spans(const run *r, span *out, size_t cap) {
  size_t n = 0;
  for (int64_t i = 0; i < r->n; i++) {
    if (n && out[n - 1].speed == r->fix[i].speed_dkmh) {
      out[n - 1].to = i;
      continue;
    }
    assert_true(n < cap);
    out[n++] = (span){i, i, r->fix[i].speed_dkmh};
  }
  return n;
}

static int64_t span_ms(const run *r, const span *s) { return r->fix[s->to].ts_ms - r->fix[s->from].ts_ms; }

/* Feeds every fix, all "received" one second after the last device time: nothing waits for a
 * receipt-time hold, as when a flat-out simulator delivers hours of device time in a second. */
static void feed(rt *t, const run *r) {
  int64_t recv = r->fix[r->n - 1].ts_ms + 1000;
  for (int64_t i = 0; i < r->n; i++) {
    hw_fix f = r->fix[i];
    f.recv_ms = recv;
    assert_int_equal(hw_rules_on_fix(t->e, &t->t, t->vp, &f), 0);
    assert_int_equal(f.quality, 0);
  }
  assert_int_equal(hw_rules_pending(&t->t), 0);
}

static void engine(rt *t) {
  rt_init(t);
  t->cls.speed_limit_dkmh = 800;      /* heavy truck off expressways, as seeded */
  t->cls.expressway_limit_dkmh = 1000;
}

static void run_free(run *r) { free(r->fix); }

/* --- parsing and fleets ---------------------------------------------------------------------- */

static void test_parse(void **state) {
  (void)state;
  uint8_t k;
  uint32_t p;
  assert_int_equal(hw_scn_parse("tired", &k, &p), 0);
  assert_int_equal(k, HW_SCN_TIRED);
  assert_int_equal(p, 0);
  assert_int_equal(hw_scn_parse("tired:235", &k, &p), 0);
  assert_int_equal(p, 235);
  assert_int_equal(hw_scn_parse("speeder:130", &k, &p), 0);
  assert_int_equal(k, HW_SCN_SPEEDER);
  assert_int_equal(hw_scn_parse("dark:15", &k, &p), 0);
  assert_int_equal(hw_scn_parse("mixed", &k, &p), 0);
  assert_int_equal(k, HW_SCN_MIXED);
  assert_int_equal(hw_scn_parse("tractor", &k, &p), 0);
  const char *bad[] = {"", "tire", "tiredx", "tired:", "tired:9", "tired:1201", "tired:-5",
                       "tired:12a", "dark:14", "tractor:3", "mixed:1", "normal", "speeder:241",
                       ":5"};
  for (size_t i = 0; i < HW_ARRAY_SIZE(bad); i++)
    if (hw_scn_parse(bad[i], &k, &p) != -EINVAL)
      fail_msg("'%s' accepted", bad[i]);
  assert_string_equal(hw_scn_kind_name(HW_SCN_DARK), "dark");
  assert_null(hw_scn_kind_name(HW_SCN__COUNT));
  hw_scn_script s;
  assert_int_equal(hw_scn_script_init(&s, HW_SCN_TIRED, 0, 1, T0, 7000), -EINVAL);
  assert_int_equal(hw_scn_script_init(&s, HW_SCN_TIRED, 0, 0, T0, STEP), -EINVAL);
  assert_int_equal(hw_scn_script_init(&s, HW_SCN_MIXED, 0, 1, T0, STEP), -EINVAL);
  assert_int_equal(hw_scn_script_init(&s, HW_SCN_TRACTOR, 5, 1, T0, STEP), -EINVAL);
  assert_int_equal(hw_scn_script_init(&s, HW_SCN_NORMAL, 0, 1, T0, STEP), 0);
  assert_int_equal(s.nfixes, 0);
}

static void test_mixed_fleet(void **state) {
  (void)state;
  uint32_t count[HW_SCN__COUNT] = {0}, nth;
  for (uint32_t i = 0; i < 100; i++) {
    uint8_t k = hw_scn_kind_of(HW_SCN_MIXED, i, &nth);
    assert_true(k < HW_SCN_MIXED);
    count[k]++;
    /* Numbered 1, 2, ... within each kind, in fleet order. */
    assert_int_equal(nth, count[k]);
  }
  assert_int_equal(count[HW_SCN_TIRED], 5);
  assert_int_equal(count[HW_SCN_SPEEDER], 5);
  assert_int_equal(count[HW_SCN_TRACTOR], 5);
  assert_int_equal(count[HW_SCN_DARK], 5);
  assert_int_equal(count[HW_SCN_NORMAL], 80);
  assert_int_equal(hw_scn_kind_of(HW_SCN_TIRED, 6, &nth), HW_SCN_TIRED);
  assert_int_equal(nth, 7);
}

/* --- tired ----------------------------------------------------------------------------------- */

static void test_tired_fixes(void **state) {
  (void)state;
  run r;
  run_make(&r, HW_SCN_TIRED, 0, 3, STEP);
  /* 70 km/h for 2 h, stopped, 70 km/h for 2 h 30, stopped. */
  span sp[8];
  assert_int_equal(spans(&r, sp, 8), 4);
  assert_int_equal(sp[0].speed, 700);
  assert_int_equal(span_ms(&r, &sp[0]), 2 * RT_HOUR);
  assert_int_equal(sp[1].speed, 0);
  assert_int_equal(sp[2].speed, 700);
  assert_int_equal(span_ms(&r, &sp[2]), 150 * RT_MIN);
  /* The stop: 10 min from the last moving fix to the next. */
  assert_int_equal(r.fix[sp[2].from].ts_ms - r.fix[sp[0].to].ts_ms, 10 * RT_MIN);
  /* The final rest: 25 min after the last moving fix. */
  assert_int_equal(sp[3].speed, 0);
  assert_int_equal(r.fix[sp[3].to].ts_ms - r.fix[sp[2].to].ts_ms, 25 * RT_MIN);
  /* A fix every 10 s throughout. */
  for (int64_t i = 1; i < r.n; i++)
    assert_int_equal(r.fix[i].ts_ms - r.fix[i - 1].ts_ms, STEP);
  /* Starts at 30.54 N 104.00 E (third truck: two rows of 0.02 degree north), heads east. */
  assert_int_equal(r.fix[0].lat_e6, 30540000);
  assert_int_equal(r.fix[0].lon_e6, 104000000);
  assert_int_equal(r.fix[0].heading, 90);
  assert_true(r.fix[100].lon_e6 > r.fix[0].lon_e6);
  /* 70 km/h: 194.4 m per 10 s; stopped: not a metre; a stop or start costs half a step. */
  for (int64_t i = sp[0].from + 1; i <= sp[0].to; i++)
    assert_true(fabs(dist(&r.fix[i - 1], &r.fix[i]) - 194.44) < 1.0);
  for (int64_t i = sp[1].from + 1; i <= sp[1].to; i++)
    assert_true(dist(&r.fix[i - 1], &r.fix[i]) < 0.2);
  assert_true(fabs(dist(&r.fix[sp[0].to], &r.fix[sp[1].from]) - 97.2) < 1.0);
  assert_true(fabs(dist(&r.fix[0], &r.fix[sp[0].to]) - 140000) < 50);
  /* ACC off only while stopped; always positioned. */
  assert_int_equal(r.fix[0].status, 3);
  assert_int_equal(r.fix[sp[1].from].status, 2);
  run_free(&r);
}

static void test_tired_violation(void **state) {
  (void)state;
  run r;
  run_make(&r, HW_SCN_TIRED, 0, 1, STEP);
  rt t;
  engine(&t);
  rt_start(&t);
  feed(&t, &r);
  if (rt_ids(&t, HW_VIOL_FATIGUE_CONTINUOUS) != 1 || t.nev != rt_count(&t, HW_VIOL_FATIGUE_CONTINUOUS, -1))
    rt_dump(&t);
  /* Exactly one violation of one kind: 4 h 30 of driving; the 10 min stop did not reset it. */
  assert_int_equal(rt_ids(&t, HW_VIOL_FATIGUE_CONTINUOUS), 1);
  assert_int_equal(t.nev, rt_count(&t, HW_VIOL_FATIGUE_CONTINUOUS, -1));
  const hw_violation_event *c = rt_find(&t, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE, 0);
  assert_int_equal(rt_count(&t, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_CLOSE), 1);
  assert_int_equal(c->value, 270 * 60);
  assert_int_equal(c->limit, 4 * 3600);
  /* Opens when the limit is passed: 2 h + 10 min + 2 h after the first fix. */
  assert_int_equal(c->started_ms, T0 + 250 * RT_MIN);
  assert_int_equal(c->ended_ms, T0 + 280 * RT_MIN);
  rt_free(&t);
  run_free(&r);
}

static void test_tired_under_limit(void **state) {
  (void)state;
  /* 3 h 55 of driving, same stop: nothing at all. */
  run r;
  run_make(&r, HW_SCN_TIRED, 235, 1, STEP);
  span sp[8];
  assert_int_equal(spans(&r, sp, 8), 4);
  assert_int_equal(span_ms(&r, &sp[0]) + span_ms(&r, &sp[2]), 235 * RT_MIN);
  rt t;
  engine(&t);
  rt_start(&t);
  feed(&t, &r);
  if (t.nev)
    rt_dump(&t);
  assert_int_equal(t.nev, 0);
  rt_free(&t);
  run_free(&r);
  /* Short scripts have no stop in the middle. */
  run_make(&r, HW_SCN_TIRED, 60, 1, STEP);
  assert_int_equal(spans(&r, sp, 8), 2);
  assert_int_equal(span_ms(&r, &sp[0]), RT_HOUR);
  run_free(&r);
}

/* --- speeder --------------------------------------------------------------------------------- */

static void test_speeder(void **state) {
  (void)state;
  run r;
  run_make(&r, HW_SCN_SPEEDER, 0, 2, STEP);
  span sp[8];
  assert_int_equal(spans(&r, sp, 8), 4);
  assert_int_equal(sp[0].speed, 950);
  assert_int_equal(span_ms(&r, &sp[0]), 10 * RT_MIN);
  assert_int_equal(sp[1].speed, 1300);
  assert_int_equal(span_ms(&r, &sp[1]), 2 * RT_MIN);
  assert_int_equal(sp[2].speed, 950);
  assert_int_equal(span_ms(&r, &sp[2]), 5 * RT_MIN);
  assert_int_equal(sp[3].speed, 0);
  /* Every speeder takes the same road: north along 114.32 E from 37.60 N. */
  assert_int_equal(r.fix[0].lat_e6, 37600000);
  for (int64_t i = 0; i < r.n; i++)
    assert_true(abs(r.fix[i].lon_e6 - 114320000) <= 1);
  assert_true(r.fix[r.n - 1].lat_e6 > 37800000 && r.fix[r.n - 1].lat_e6 < 37900000);
  assert_true(fabs(dist(&r.fix[sp[1].from + 1], &r.fix[sp[1].from + 2]) - 361.1) < 1.0);

  rt t;
  engine(&t);
  t.cls.speed_limit_dkmh = 1000; /* the expressway's 100 km/h (tested with a zone end to end) */
  rt_start(&t);
  feed(&t, &r);
  if (rt_ids(&t, HW_VIOL_SPEEDING) != 1)
    rt_dump(&t);
  assert_int_equal(rt_ids(&t, HW_VIOL_SPEEDING), 1);
  assert_int_equal(t.nev, rt_count(&t, HW_VIOL_SPEEDING, -1));
  const hw_violation_event *c = rt_find(&t, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(c->grade, 2);
  assert_int_equal(c->value, 1300);
  assert_int_equal(c->limit, 1000);
  assert_int_equal(c->started_ms, r.fix[sp[1].from].ts_ms);
  assert_int_equal(c->ended_ms - c->started_ms, 2 * RT_MIN);
  rt_free(&t);

  /* Off the expressway (80 km/h) the 95 km/h stretches would be speeding too: the scenario
   * needs its expressway zone. */
  engine(&t);
  rt_start(&t);
  feed(&t, &r);
  assert_int_equal(rt_ids(&t, HW_VIOL_SPEEDING), 1); /* one long episode, 17 min */
  c = rt_find(&t, HW_VIOL_SPEEDING, HW_PHASE_CLOSE, 0);
  assert_int_equal(c->grade, 3);
  rt_free(&t);
  run_free(&r);

  /* The peak is a parameter. */
  run_make(&r, HW_SCN_SPEEDER, 160, 1, STEP);
  assert_int_equal(spans(&r, sp, 8), 4);
  assert_int_equal(sp[1].speed, 1600);
  run_free(&r);
}

/* --- tractor --------------------------------------------------------------------------------- */

static void test_tractor(void **state) {
  (void)state;
  run r;
  run_make(&r, HW_SCN_TRACTOR, 0, 1, STEP);
  span sp[4];
  assert_int_equal(spans(&r, sp, 4), 2);
  assert_int_equal(sp[0].speed, 300);
  assert_int_equal(span_ms(&r, &sp[0]), 90 * RT_MIN);
  assert_int_equal(r.fix[0].lat_e6, 36000000);
  assert_int_equal(r.fix[0].lon_e6, 117000000);
  assert_true(fabs(dist(&r.fix[0], &r.fix[sp[0].to]) - 45000) < 50);

  /* Retired before the drive: one retired_class. */
  rt t;
  engine(&t);
  snprintf(t.cls.code, sizeof t.cls.code, "converted_tractor");
  t.cls.speed_limit_dkmh = 400;
  t.cls.retired_after_ms = T0 - 3 * 24 * RT_HOUR;
  rt_start(&t);
  feed(&t, &r);
  if (rt_ids(&t, HW_VIOL_RETIRED_CLASS) != 1)
    rt_dump(&t);
  assert_int_equal(rt_ids(&t, HW_VIOL_RETIRED_CLASS), 1);
  assert_int_equal(t.nev, rt_count(&t, HW_VIOL_RETIRED_CLASS, -1));
  assert_int_equal(rt_find(&t, HW_VIOL_RETIRED_CLASS, -1, 0)->started_ms, T0);
  rt_free(&t);

  /* Retired a minute after the last fix: nothing. */
  engine(&t);
  t.cls.speed_limit_dkmh = 400;
  t.cls.retired_after_ms = r.fix[r.n - 1].ts_ms + RT_MIN;
  rt_start(&t);
  feed(&t, &r);
  assert_int_equal(t.nev, 0);
  rt_free(&t);
  run_free(&r);
}

/* --- dark ------------------------------------------------------------------------------------ */

static void test_dark(void **state) {
  (void)state;
  run r;
  run_make(&r, HW_SCN_DARK, 0, 1, STEP);
  /* Exactly one interval longer than a step: the 45 min silence, across which it moved 40 km. */
  int64_t gap_at = -1;
  for (int64_t i = 1; i < r.n; i++) {
    int64_t dt = r.fix[i].ts_ms - r.fix[i - 1].ts_ms;
    if (dt == STEP)
      continue;
    assert_int_equal(gap_at, -1);
    gap_at = i;
    assert_int_equal(dt, 45 * RT_MIN);
    assert_true(fabs(dist(&r.fix[i - 1], &r.fix[i]) - 40000) < 10);
  }
  assert_int_equal(gap_at, 181); /* after 30 min of fixes, 10 s apart */
  assert_int_equal(r.fix[gap_at - 1].speed_dkmh, 600);
  assert_int_equal(r.fix[gap_at].speed_dkmh, 600);
  /* Enough fixes after the gap for the engine to decide it without waiting for back-fill. */
  rt t;
  engine(&t);
  assert_true(r.n - gap_at > (int64_t)t.cfg.max_pending);
  rt_start(&t);
  feed(&t, &r);
  if (rt_ids(&t, HW_VIOL_OFFLINE_DISPLACEMENT) != 1 || t.nev != 1)
    rt_dump(&t);
  assert_int_equal(t.nev, 1);
  const hw_violation_event *c = rt_find(&t, HW_VIOL_OFFLINE_DISPLACEMENT, HW_PHASE_CLOSE, 0);
  assert_true(llabs(c->value - 40000) < 10);
  assert_int_equal(c->started_ms, r.fix[gap_at - 1].ts_ms);
  assert_int_equal(c->ended_ms, r.fix[gap_at].ts_ms);
  rt_free(&t);
  run_free(&r);

  run_make(&r, HW_SCN_DARK, 90, 1, STEP);
  assert_int_equal(r.fix[181].ts_ms - r.fix[180].ts_ms, 90 * RT_MIN);
  run_free(&r);
}

/* Other steps keep the stated durations (1 s and 1 min). */
static void test_steps(void **state) {
  (void)state;
  uint32_t steps[] = {1000, 60000};
  for (size_t i = 0; i < HW_ARRAY_SIZE(steps); i++) {
    run r;
    run_make(&r, HW_SCN_TIRED, 0, 1, steps[i]);
    span sp[8];
    assert_int_equal(spans(&r, sp, 8), 4);
    assert_int_equal(span_ms(&r, &sp[0]), 2 * RT_HOUR);
    assert_int_equal(r.fix[sp[2].from].ts_ms - r.fix[sp[0].to].ts_ms, 10 * RT_MIN);
    assert_int_equal(r.s.span_ms, hw_scn_span_ms(HW_SCN_TIRED, 0, steps[i]));
    run_free(&r);
  }
}

/* --- through the simulator engine ------------------------------------------------------------ */

/* --- trucks with active-safety devices --------------------------------------------------- */

/* dsm: exactly two fixes carry a DSM item, a level-2 phone alarm (2 attachments) at minute 10
 * and a level-2 fatigue alarm (3) at minute 40, each at its fix's time; nodevice: only its first
 * fix, an automatic-capture event dated 10 days before it. Other kinds carry none. */
static void test_device_alarms(void **state) {
  (void)state;
  hw_scn_script s;
  hw_scn_alarm a;
  uint8_t k;
  uint32_t p;
  assert_int_equal(hw_scn_parse("dsm:45", &k, &p), 0);
  assert_int_equal(k, HW_SCN_DSM);
  assert_int_equal(p, 45);
  assert_int_equal(hw_scn_parse("dsm:44", &k, &p), -EINVAL);
  assert_int_equal(hw_scn_parse("nodevice", &k, &p), 0);
  assert_int_equal(k, HW_SCN_NODEVICE);
  assert_int_equal(hw_scn_parse("nodevice:3", &k, &p), -EINVAL);
  for (uint32_t m = 45; m <= 60; m += 15) {
    assert_int_equal(hw_scn_script_init(&s, HW_SCN_DSM, m, 2, T0, STEP), 0);
    int n = 0;
    for (int64_t i = 1; i <= s.nfixes; i++) {
      if (!hw_scn_alarm_of(&s, i, &a))
        continue;
      n++;
      int64_t off = hw_scn_fix_ts(&s, i) - T0;
      assert_int_equal(a.ts_ms, hw_scn_fix_ts(&s, i));
      assert_int_equal(a.item, 0x65);
      assert_int_equal(a.level, 2);
      if (off == 10 * 60000) {
        assert_int_equal(a.type, 0x02);
        assert_int_equal(a.attachments, 2);
        assert_int_equal(a.alarm_id, 201);
      } else {
        assert_int_equal(off, 40 * 60000);
        assert_int_equal(a.type, 0x01);
        assert_int_equal(a.attachments, 3);
        assert_int_equal(a.alarm_id, 202);
      }
    }
    assert_int_equal(n, 2);
  }
  assert_int_equal(hw_scn_script_init(&s, HW_SCN_NODEVICE, 0, 1, T0, STEP), 0);
  assert_int_equal(s.nfixes, 60 * 6 + 1 + 10 * 6);
  assert_int_equal(hw_scn_alarm_of(&s, 1, &a), 1);
  assert_int_equal(a.type, 0x10);
  assert_int_equal(a.ts_ms, T0 - 10LL * 86400 * 1000);
  for (int64_t i = 2; i <= s.nfixes; i++)
    assert_int_equal(hw_scn_alarm_of(&s, i, &a), 0);
  assert_int_equal(hw_scn_alarm_of(&s, 0, &a), 0);
  assert_int_equal(hw_scn_script_init(&s, HW_SCN_TIRED, 0, 1, T0, STEP), 0);
  for (int64_t i = 1; i <= s.nfixes; i++)
    assert_int_equal(hw_scn_alarm_of(&s, i, &a), 0);
}

static void test_sim_run_scripts(void **state) {
  (void)state;
  enum { N = 24 };
  static char idb[N][HW_TERMINAL_ID_MAX + 1];
  static char *ids[N], *tokens[N];
  static hw_scn_script scripts[N];
  fake_server *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->token = "secret";
  s->drop_every = 53; /* resends after reconnects must not disturb the scripts */
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  memset(&cfg, 0, sizeof cfg);
  assert_int_equal(uv_ip4_addr("127.0.0.1", s->port, (struct sockaddr_in *)&cfg.addr), 0);
  cfg.proto = &hw_sim_proto_pb;
  cfg.trucks = N;
  cfg.step_ms = STEP;
  cfg.start_ms = T0 - STEP;
  for (uint32_t i = 0; i < N; i++) {
    uint32_t nth;
    uint8_t k = hw_scn_kind_of(HW_SCN_MIXED, i, &nth);
    snprintf(idb[i], sizeof idb[i], "m%06u", i + 1); /* the fake server wants a number */
    ids[i] = idb[i];
    tokens[i] = "secret";
    assert_int_equal(hw_scn_script_init(&scripts[i], k, 0, nth, T0, STEP), 0);
    if ((uint64_t)scripts[i].nfixes > cfg.fixes)
      cfg.fixes = (uint64_t)scripts[i].nfixes;
  }
  cfg.ids = ids;
  cfg.tokens = tokens;
  cfg.scripts = scripts;
  cfg.report_fixes = 50;
  cfg.window = 200;
  cfg.timeout_s = 60;
  cfg.seed = 5;
  hw_sim_result res;
  assert_int_equal(hw_sim_run(&cfg, &res), 0);
  fake_server_stop(s);
  assert_false(res.timed_out);
  assert_true(s->drops > 0);
  uint64_t total = 0;
  for (uint32_t i = 0; i < N; i++) {
    uint64_t want = scripts[i].kind == HW_SCN_NORMAL ? cfg.fixes : (uint64_t)scripts[i].nfixes;
    assert_int_equal(s->terms[i + 1].stored, want);
    total += want;
  }
  assert_int_equal(res.acked, total);
  assert_int_equal(res.generated, total);
  assert_int_equal(s->gaps, 0);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_mixed_fleet),
      cmocka_unit_test(test_tired_fixes),
      cmocka_unit_test(test_tired_violation),
      cmocka_unit_test(test_tired_under_limit),
      cmocka_unit_test(test_speeder),
      cmocka_unit_test(test_tractor),
      cmocka_unit_test(test_dark),
      cmocka_unit_test(test_steps),
      cmocka_unit_test(test_device_alarms),
      cmocka_unit_test(test_sim_run_scripts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
