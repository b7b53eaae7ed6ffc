/* hw_redis_state against real redis-server processes this test starts on free ports.
 * The module runs on a loop driven here; Redis is inspected with a blocking hiredis client. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "base/log.h"
#include "sinks/redis_keys.h"
#include "sinks/redis_state.h"

typedef hw_test_loop env;

static void env_init(env *e) {
  hw_test_loop_init(e);
  e->poll_ms = 20; /* some predicates read all of Redis */
}

/* Stops r and runs until done_cb. */
static void stop_state(env *e, hw_redis_state *r) {
  int done = 0;
  hw_redis_state_stop(r, hw_test_on_done, &done);
  assert_int_equal(done, 0); /* never synchronous */
  assert_true(hw_test_loop_run_until(e, hw_test_int_set, &done));
  assert_int_equal(done, 1);
}

static hw_redis_state *start_state(env *e, hw_registry *reg, int port, uint32_t max_in_flight) {
  hw_redis_state_config cfg = {.host = "127.0.0.1", .port = port, .max_in_flight = max_in_flight,
                               .timeout_ms = 2000};
  hw_redis_state *r = NULL;
  assert_int_equal(hw_redis_state_start(&r, &e->loop, &cfg, reg), 0);
  assert_non_null(r);
  return r;
}

/* redis-servers of the running test, so a failed assertion (which longjmps out of the test)
 * still stops them in the teardown. */
static pid_t redis_pids[4];

static pid_t start_redis(int port) {
  pid_t pid = hw_test_redis_start(port);
  for (size_t i = 0; i < HW_ARRAY_SIZE(redis_pids); i++) {
    if (!redis_pids[i]) {
      redis_pids[i] = pid;
      return pid;
    }
  }
  hw_test_stop_pid(pid);
  fail_msg("too many redis-servers in one test");
  return -1;
}

static void forget_redis(pid_t pid) {
  for (size_t i = 0; i < HW_ARRAY_SIZE(redis_pids); i++)
    if (redis_pids[i] == pid)
      redis_pids[i] = 0;
}

static void stop_redis(pid_t pid) {
  kill(pid, SIGCONT); /* in case a failed test left it stopped */
  hw_test_stop_pid(pid);
  forget_redis(pid);
}

static int teardown_redis(void **state) {
  (void)state;
  for (size_t i = 0; i < HW_ARRAY_SIZE(redis_pids); i++)
    if (redis_pids[i])
      stop_redis(redis_pids[i]);
  return 0;
}

static void kill_redis(pid_t pid) {
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
  forget_redis(pid);
}

/* ---- fixes and their expected Redis form ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 32);
}

/* Values all over their ranges (negative coordinates and altitudes, full 32-bit bit fields) so a
 * formatting slip shows up. */
static hw_fix make_fix(int64_t ts) {
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.ts_ms = ts;
  f.recv_ms = ts + (int64_t)(rng() % 5000);
  f.lat_e6 = (int32_t)(rng() % 170000001u) - 85000000;
  f.lon_e6 = (int32_t)(rng() % 360000001u) - 180000000;
  f.speed_dkmh = rng() % 2000;
  f.heading = (uint16_t)(rng() % 360);
  f.alt_m = (int32_t)(rng() % 6000) - 500;
  f.alarm = rng() % 3 == 0 ? 0xFFFFFFFFu : rng();
  f.status = rng();
  f.odometer_hm = rng() % 4 == 0 ? 0xFFFFFFFFu : rng() % 100000000u;
  if (rng() % 2) {
    f.has_driver = 1;
    snprintf(f.driver_id, sizeof f.driver_id, "D%08u", rng() % 100000000u);
  }
  return f;
}

static void expect_field(char *out, size_t n, const char *name, const hw_fix *f) {
  if (!strcmp(name, "lat"))
    snprintf(out, n, "%.6f", f->lat_e6 / 1e6);
  else if (!strcmp(name, "lon"))
    snprintf(out, n, "%.6f", f->lon_e6 / 1e6);
  else if (!strcmp(name, "speed_kmh"))
    snprintf(out, n, "%.1f", f->speed_dkmh / 10.0);
  else if (!strcmp(name, "heading"))
    snprintf(out, n, "%u", f->heading);
  else if (!strcmp(name, "alt_m"))
    snprintf(out, n, "%d", f->alt_m);
  else if (!strcmp(name, "ts_ms"))
    snprintf(out, n, "%lld", (long long)f->ts_ms);
  else if (!strcmp(name, "recv_ms"))
    snprintf(out, n, "%lld", (long long)f->recv_ms);
  else if (!strcmp(name, "alarm"))
    snprintf(out, n, "%u", f->alarm);
  else if (!strcmp(name, "status"))
    snprintf(out, n, "%u", f->status);
  else if (!strcmp(name, "odometer_km"))
    snprintf(out, n, "%.1f", f->odometer_hm / 10.0);
  else if (!strcmp(name, "driver_id"))
    snprintf(out, n, "%s", f->has_driver ? f->driver_id : "");
  else
    snprintf(out, n, "<unexpected field>");
}

static const char *const fields[] = {"lat",     "lon",    "speed_kmh", "heading",
                                     "alt_m",   "ts_ms",  "recv_ms",   "alarm",
                                     "status",  "odometer_km", "driver_id"};

static redisContext *rconnect(int port) {
  struct timeval tv = {5, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  assert_non_null(c);
  assert_int_equal(c->err, 0);
  return c;
}

/* Compares Redis with the expected fix of each id. Returns the number of mismatching terminals;
 * describes the first in why. Checks every hash field, the geo member and its position. */
static size_t redis_mismatches(int port, const char *const *ids, const hw_fix *const *want,
                               size_t n, char *why, size_t whylen) {
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, (struct timeval){2, 0});
  if (!c || c->err) {
    snprintf(why, whylen, "cannot connect to redis");
    if (c)
      redisFree(c);
    return n ? n : 1;
  }
  for (size_t i = 0; i < n; i++) {
    (void)redisAppendCommand(c, "HGETALL %s", hw_test_veh_key(ids[i]));
    (void)redisAppendCommand(c, "GEOPOS %s %s", hw_test_geo_key(ids[i]), ids[i]);
  }
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    redisReply *h = NULL, *g = NULL;
    int ok = redisGetReply(c, (void **)&h) == REDIS_OK && redisGetReply(c, (void **)&g) == REDIS_OK;
    char problem[256] = "";
    if (!ok || !h || !g || h->type != REDIS_REPLY_ARRAY) {
      snprintf(problem, sizeof problem, "no reply");
    } else if (h->elements != 2 * HW_ARRAY_SIZE(fields)) {
      snprintf(problem, sizeof problem, "hash has %zu elements", h->elements);
    } else {
      for (size_t k = 0; k + 1 < h->elements && !problem[0]; k += 2) {
        char exp[64];
        expect_field(exp, sizeof exp, h->element[k]->str, want[i]);
        if (strcmp(exp, h->element[k + 1]->str))
          snprintf(problem, sizeof problem, "%s is '%s', want '%s'", h->element[k]->str,
                   h->element[k + 1]->str, exp);
      }
      int geo_ok = abs(want[i]->lat_e6) <= 85051128;
      redisReply *pos = g->type == REDIS_REPLY_ARRAY && g->elements == 1 ? g->element[0] : NULL;
      int has_pos = pos && pos->type == REDIS_REPLY_ARRAY && pos->elements == 2;
      if (!problem[0] && geo_ok != has_pos)
        snprintf(problem, sizeof problem, "geo member %s", has_pos ? "present" : "missing");
      if (!problem[0] && has_pos) {
        double lon = atof(pos->element[0]->str), lat = atof(pos->element[1]->str);
        if (fabs(lon - want[i]->lon_e6 / 1e6) > 1e-4 || fabs(lat - want[i]->lat_e6 / 1e6) > 1e-4)
          snprintf(problem, sizeof problem, "geo position %f,%f want %f,%f", lat, lon,
                   want[i]->lat_e6 / 1e6, want[i]->lon_e6 / 1e6);
      }
    }
    if (problem[0] && bad++ == 0)
      snprintf(why, whylen, "%s: %s", ids[i], problem);
    if (h)
      freeReplyObject(h);
    if (g)
      freeReplyObject(g);
  }
  redisFree(c);
  return bad;
}

/* A script that errors half-way keeps what it wrote before the error, so the data can look right
 * while every write fails: Redis' error counters must stay empty. */
static void assert_no_redis_errors(int port) {
  redisContext *c = rconnect(port);
  redisReply *info = redisCommand(c, "INFO errorstats");
  assert_non_null(info);
  assert_int_equal(info->type, REDIS_REPLY_STRING);
  if (strstr(info->str, "errorstat_"))
    fail_msg("redis counted errors:\n%s", info->str);
  freeReplyObject(info);
  redisFree(c);
}

/* A set of terminals in a registry with the newest fix the test gave each. */
typedef struct fleet {
  hw_registry reg;
  size_t n;
  hw_terminal **t;
  const char **ids;
  hw_fix *newest;
  const hw_fix **want;
  int port;
  char why[512];
} fleet;

static void fleet_init(fleet *f, size_t n, const char *fmt, int port) {
  memset(f, 0, sizeof *f);
  f->n = n;
  f->port = port;
  f->t = calloc(n, sizeof *f->t);
  f->ids = calloc(n, sizeof *f->ids);
  f->newest = calloc(n, sizeof *f->newest);
  f->want = calloc(n, sizeof *f->want);
  assert_true(f->t && f->ids && f->newest && f->want);
  for (size_t i = 0; i < n; i++) {
    char id[HW_TERMINAL_ID_MAX + 1];
    snprintf(id, sizeof id, fmt, (unsigned)i);
    assert_int_equal(hw_registry_get(&f->reg, id, &f->t[i]), 0);
    f->ids[i] = f->t[i]->id;
    f->want[i] = &f->newest[i];
  }
}

static void fleet_free(fleet *f) {
  hw_registry_free(&f->reg);
  free(f->t);
  free(f->ids);
  free(f->newest);
  free(f->want);
}

/* Puts fix for terminal i, tracking independently which fix must win (newest ts; ties: the first
 * stays, with the alarm bits of both). */
static void fleet_put(fleet *f, hw_redis_state *r, size_t i, const hw_fix *fix) {
  if (f->newest[i].ts_ms == 0 || fix->ts_ms > f->newest[i].ts_ms)
    f->newest[i] = *fix;
  else if (fix->ts_ms == f->newest[i].ts_ms)
    f->newest[i].alarm |= fix->alarm;
  hw_redis_state_put(r, f->t[i], fix);
}

static int fleet_in_redis(void *arg) {
  fleet *f = arg;
  return redis_mismatches(f->port, f->ids, f->want, f->n, f->why, sizeof f->why) == 0;
}

static void assert_fleet_in_redis(env *e, fleet *f) {
  if (!hw_test_loop_run_until(e, fleet_in_redis, f))
    fail_msg("redis does not hold the newest state: %s", f->why);
}

/* Most tests run one fleet of n terminals (ids from fmt) on a loop of their own against a Redis
 * on a free port, started unless redis is NULL. Returns the port. */
static int begin_test(env *e, fleet *f, size_t n, const char *fmt, pid_t *redis) {
  int port = hw_test_free_port();
  if (redis)
    *redis = start_redis(port);
  env_init(e);
  fleet_init(f, n, fmt, port);
  return port;
}

static void end_test(env *e, fleet *f, hw_redis_state *r, pid_t redis) {
  stop_state(e, r);
  hw_test_loop_close(e);
  fleet_free(f);
  stop_redis(redis);
}

/* Puts a fix of device time ts for every terminal of f. */
static void fleet_put_all(fleet *f, hw_redis_state *r, int64_t ts) {
  for (size_t i = 0; i < f->n; i++) {
    hw_fix fix = make_fix(ts);
    fleet_put(f, r, i, &fix);
  }
}

/* ---- tests ---- */

typedef struct writes_at_least {
  hw_redis_state *r;
  uint64_t n;
} writes_at_least;

static int writes_reached(void *arg) {
  writes_at_least *w = arg;
  hw_redis_state_stats st;
  hw_redis_state_get_stats(w->r, &st);
  return st.writes >= w->n && st.dirty == 0;
}


static void test_newest_state_wins(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 3000, "0138%08u", &redis);
  /* A small window so the dirty list really backs up and coalesces. */
  hw_redis_state *r = start_state(&e, &f.reg, port, 64);

  /* Rounds of fixes with jittered timestamps: every terminal sees older data after newer, equal
   * timestamps, and the loop runs in between so some states are written and then superseded. */
  for (int round = 0; round < 20; round++) {
    for (size_t i = 0; i < f.n; i++) {
      int64_t ts = 1700000000000 + 1000 * (int64_t)(rng() % 40);
      hw_fix fix = make_fix(ts);
      fleet_put(&f, r, i, &fix);
    }
    uv_run(&e.loop, UV_RUN_NOWAIT);
  }
  /* Edge cases: above GEOADD's latitude limit (hash only), south-west, exactly zero. */
  hw_fix polar = make_fix(1800000000000), sw = make_fix(1800000000000), zero = make_fix(1800000000000);
  polar.lat_e6 = 89500000;
  sw.lat_e6 = -33868820, sw.lon_e6 = -151209296;
  zero.lat_e6 = 0, zero.lon_e6 = 0, zero.alt_m = 0, zero.speed_dkmh = 0, zero.has_driver = 0;
  fleet_put(&f, r, 0, &polar);
  fleet_put(&f, r, 1, &sw);
  fleet_put(&f, r, 2, &zero);

  assert_fleet_in_redis(&e, &f);
  /* Redis may have run the last calls before their replies are read here. */
  writes_at_least w = {r, f.n};
  assert_true(hw_test_loop_run_until(&e, writes_reached, &w));

  assert_int_equal(hw_test_redis_geo_count(port), (long)f.n - 1); /* all but the polar one */

  hw_redis_state_stats st;
  hw_redis_state_get_stats(r, &st);
  assert_int_equal(st.connected, 1);
  assert_int_equal(st.dirty, 0);
  assert_true(st.writes >= f.n);
  assert_true(st.writes < 20 * f.n); /* coalesced: far fewer writes than puts */
  assert_int_equal(st.reconnects, 0);
  assert_no_redis_errors(port);

  end_test(&e, &f, r, redis);
}

/* Two daemons (separate registries and connections) write one terminal; Redis decides. */
static void test_two_writers_newest_wins(void **state) {
  (void)state;
  int port = hw_test_free_port();
  pid_t redis = start_redis(port);
  env e;
  env_init(&e);
  fleet a, b;
  fleet_init(&a, 1, "TWO%u", port);
  fleet_init(&b, 1, "TWO%u", port);
  hw_redis_state *ra = start_state(&e, &a.reg, port, 16);
  hw_redis_state *rb = start_state(&e, &b.reg, port, 16);

  /* 10000 then 9000: compared as strings "9000" would win; numerically it must not. */
  hw_fix x = make_fix(10000), y = make_fix(9000);
  x.alarm = 0x80000001u;
  fleet_put(&a, ra, 0, &x);
  assert_fleet_in_redis(&e, &a);
  hw_redis_state_put(rb, b.t[0], &y);
  writes_at_least wb = {rb, 1};
  assert_true(hw_test_loop_run_until(&e, writes_reached, &wb)); /* B's write reached Redis ... */
  assert_int_equal(redis_mismatches(port, a.ids, a.want, 1, a.why, sizeof a.why), 0); /* ... and lost */

  /* Equal device time from the other daemon (newer in its memory): A's state stays and gains
   * B's alarm bits, as in positions. Bit 31 set both ways: the OR must not go negative. */
  hw_fix x2 = make_fix(10000), z = make_fix(10000);
  x2.alarm = 0x2; /* A, same second, other values: only the alarm bit is kept */
  fleet_put(&a, ra, 0, &x2);
  assert_fleet_in_redis(&e, &a);
  z.alarm = 0x80000100u;
  hw_redis_state_put(rb, b.t[0], &z);
  wb.n = 2;
  assert_true(hw_test_loop_run_until(&e, writes_reached, &wb));
  a.newest[0].alarm |= z.alarm;
  assert_int_equal(a.newest[0].alarm, 0x80000103u);
  assert_int_equal(a.newest[0].lat_e6, x.lat_e6);
  assert_int_equal(redis_mismatches(port, a.ids, a.want, 1, a.why, sizeof a.why), 0);

  /* A moves on; B's late data stays out. */
  hw_fix w = make_fix(20000), old = make_fix(15000);
  fleet_put(&a, ra, 0, &w);
  assert_fleet_in_redis(&e, &a);
  hw_redis_state_put(rb, b.t[0], &old);
  wb.n = 3;
  assert_true(hw_test_loop_run_until(&e, writes_reached, &wb));
  assert_int_equal(redis_mismatches(port, a.ids, a.want, 1, a.why, sizeof a.why), 0);
  assert_no_redis_errors(port);

  stop_state(&e, ra);
  stop_state(&e, rb);
  hw_test_loop_close(&e);
  fleet_free(&a);
  fleet_free(&b);
  stop_redis(redis);
}

static int both_connected(void *arg) {
  hw_redis_state **r = arg;
  hw_redis_state_stats sa, sb;
  hw_redis_state_get_stats(r[0], &sa);
  hw_redis_state_get_stats(r[1], &sb);
  return sa.connected && sb.connected;
}

/* Two writers (separate registries and connections, as two nodes or two workers after a truck
 * reconnected) each get a random half of every terminal's fixes, in shuffled device-time order,
 * while both flush: each call carries many vehicles of a bucket, some newer and some older than
 * what the other writer already put there. Redis must end with every terminal's newest fix, its
 * geo member at that fix's position, and no write may have failed. */
static void test_two_writers_batched_newest_wins(void **state) {
  (void)state;
  enum { N = 2000, ROUNDS = 10 };
  int port = hw_test_free_port();
  pid_t redis = start_redis(port);
  env e;
  env_init(&e);
  fleet a, b, want;
  fleet_init(&a, N, "BW%05u", port);
  fleet_init(&b, N, "BW%05u", port);
  fleet_init(&want, N, "BW%05u", port); /* only its newest[] is used: the expected state */
  hw_redis_state *ra = start_state(&e, &a.reg, port, 1024);
  hw_redis_state *rb = start_state(&e, &b.reg, port, 1024);
  /* Both up before the fixes come: a stop while not yet connected writes nothing (by design). */
  assert_true(hw_test_loop_run_until(&e, both_connected, (hw_redis_state *[]){ra, rb}));

  static int64_t order[N][ROUNDS];
  for (size_t i = 0; i < N; i++) {
    for (int k = 0; k < ROUNDS; k++)
      order[i][k] = 1700000000000 + 1000 * (int64_t)k; /* distinct: no cross-writer ties */
    for (int k = ROUNDS - 1; k > 0; k--) {
      int j = (int)(rng() % (uint32_t)(k + 1));
      int64_t tmp = order[i][k];
      order[i][k] = order[i][j];
      order[i][j] = tmp;
    }
  }
  size_t older_after_newer = 0;
  for (int k = 0; k < ROUNDS; k++) {
    for (size_t i = 0; i < N; i++) {
      hw_fix fix = make_fix(order[i][k]);
      if (want.newest[i].ts_ms > fix.ts_ms)
        older_after_newer++;
      if (want.newest[i].ts_ms < fix.ts_ms)
        want.newest[i] = fix;
      if (rng() % 2)
        hw_redis_state_put(ra, a.t[i], &fix);
      else
        hw_redis_state_put(rb, b.t[i], &fix);
    }
    for (int spin = 0; spin < 5; spin++)
      uv_run(&e.loop, UV_RUN_NOWAIT); /* some of this round reaches Redis before the next */
  }
  assert_true(older_after_newer > N); /* the order really mixed old after new */
  /* Stopping flushes both writers completely: whatever reached Redis last, the newest stays. */
  stop_state(&e, ra);
  stop_state(&e, rb);
  assert_int_equal(redis_mismatches(port, want.ids, want.want, N, want.why, sizeof want.why), 0);
  assert_int_equal(hw_test_redis_geo_count(port), N);
  assert_no_redis_errors(port);
  hw_test_loop_close(&e);
  fleet_free(&a);
  fleet_free(&b);
  fleet_free(&want);
  stop_redis(redis);
}

/* One call writes several vehicles of a bucket: far fewer calls than vehicle states. */
static void test_writes_are_batched(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 4000, "BT%06u", &redis);
  hw_redis_state *r = start_state(&e, &f.reg, port, 1024);
  fleet_put_all(&f, r, 1700000000000);
  assert_fleet_in_redis(&e, &f);
  writes_at_least w = {r, f.n}; /* Redis may have run the last call before we read its reply */
  assert_true(hw_test_loop_run_until(&e, writes_reached, &w));
  hw_redis_state_stats st;
  hw_redis_state_get_stats(r, &st);
  assert_int_equal(st.writes, f.n);
  /* 4,000 vehicles over 256 buckets, taken 4,096 at a time: about 16 a call, so at most a few
   * hundred calls (one per bucket, more where a bucket has over 64). */
  assert_true(st.calls >= 256 / 2 && st.calls <= 2 * 256);
  /* The layout is a contract with every reader (README, "Redis keys"): FNV-1a of the id modulo
   * 256, computed independently (Python) for this id. */
  assert_string_equal(hw_test_veh_key("013800138000"), "hw:veh:{f1}:013800138000");
  assert_string_equal(hw_test_geo_key("013800138000"), "hw:geo:{f1}");
  /* Each key's slot: every vehicle's hash and its geo set carry the same hash tag. */
  for (size_t i = 0; i < f.n; i += 97) {
    const char *vk = hw_test_veh_key(f.ids[i]), *gk = hw_test_geo_key(f.ids[i]);
    assert_memory_equal(strchr(vk, '{'), strchr(gk, '{'), 4);
    assert_int_equal(strchr(vk, '}') - strchr(vk, '{'), 3);
  }
  end_test(&e, &f, r, redis);
}

typedef struct reconnects_at_least {
  hw_redis_state *r;
  uint64_t n;
} reconnects_at_least;

static int reconnects_reached(void *arg) {
  reconnects_at_least *w = arg;
  hw_redis_state_stats st;
  hw_redis_state_get_stats(w->r, &st);
  return st.reconnects >= w->n;
}

/* Nothing listening at start: keeps retrying without holding the loop; data arrives later. */
static void test_refused_then_redis_appears(void **state) {
  (void)state;
  env e;
  fleet f;
  int port = begin_test(&e, &f, 200, "R%u", NULL);
  hw_redis_state *r = start_state(&e, &f.reg, port, 32);
  for (size_t i = 0; i < f.n; i++) {
    hw_fix fix = make_fix(1000 + (int64_t)i);
    fleet_put(&f, r, i, &fix);
  }

  uint64_t ticks0 = e.ticks;
  reconnects_at_least w = {r, 3};
  assert_true(hw_test_loop_run_until(&e, reconnects_reached, &w));
  /* The 5 ms tick kept firing while connects were refused: the loop was never blocked. */
  assert_true(e.ticks - ticks0 >= 20);
  hw_redis_state_stats st;
  hw_redis_state_get_stats(r, &st);
  assert_int_equal(st.connected, 0);
  assert_int_equal(st.dirty, f.n);
  assert_int_equal(st.writes, 0);

  /* Fixes keep coming while Redis is away; only the newest is kept. */
  for (size_t i = 0; i < f.n; i += 2) {
    hw_fix fix = make_fix(5000 + (int64_t)i);
    fleet_put(&f, r, i, &fix);
  }
  pid_t redis = start_redis(port);
  assert_fleet_in_redis(&e, &f);
  hw_redis_state_get_stats(r, &st);
  assert_int_equal(st.connected, 1);
  assert_true(st.reconnects >= 3);

  end_test(&e, &f, r, redis);
}

/* Feeds a round of newer fixes to every terminal on each tick while feeding is on. */
typedef struct feeder {
  fleet *f;
  hw_redis_state *r;
  int on;
  size_t stride; /* feed every stride-th terminal */
  int64_t ts;
} feeder;

static void feed_tick(env *e) {
  feeder *fd = e->user;
  if (!fd->on)
    return;
  fd->ts += 10;
  for (size_t i = 0; i < fd->f->n; i += fd->stride) {
    hw_fix fix = make_fix(fd->ts + (int64_t)(rng() % 10));
    fleet_put(fd->f, fd->r, i, &fix);
  }
}

static int is_connected_fwd(void *arg) {
  hw_redis_state_stats st;
  hw_redis_state_get_stats(arg, &st);
  return st.connected;
}

/* Feeds every terminal but one on each tick. */
typedef struct all_but_one {
  fleet *f;
  hw_redis_state *r;
  size_t skip;
  int64_t ts;
} all_but_one;

static void feed_all_but_one(env *e) {
  all_but_one *fd = e->user;
  fd->ts += 10;
  for (size_t i = 0; i < fd->f->n; i++) {
    if (i == fd->skip)
      continue;
    hw_fix fix = make_fix(fd->ts);
    fleet_put(fd->f, fd->r, i, &fix);
  }
}

typedef struct one_terminal {
  fleet *f;
  size_t i;
} one_terminal;

static int one_in_redis(void *arg) {
  one_terminal *o = arg;
  return redis_mismatches(o->f->port, o->f->ids + o->i, o->f->want + o->i, 1, o->f->why,
                          sizeof o->f->why) == 0;
}

/* A window of 2 calls and 2,000 terminals of every bucket that never stop getting dirty: a vehicle
 * of a high bucket, put once, still gets its turn (passes go round the buckets). */
static void test_busy_buckets_do_not_starve_others(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 2000, "S%05u", &redis);
  size_t x = f.n;
  for (size_t i = 0; i < f.n && x == f.n; i++)
    if (hw_redis_bucket(f.ids[i], strlen(f.ids[i])) >= 240)
      x = i;
  assert_true(x < f.n);
  hw_redis_state *r = start_state(&e, &f.reg, port, 2);
  assert_true(hw_test_loop_run_until(&e, is_connected_fwd, r));
  all_but_one fd = {&f, r, x, 1700000000000};
  e.user = &fd;
  feed_all_but_one(&e);
  hw_fix once = make_fix(1600000000000);
  fleet_put(&f, r, x, &once);
  e.on_tick = feed_all_but_one;
  one_terminal o = {&f, x};
  assert_true(hw_test_loop_run_until(&e, one_in_redis, &o));
  hw_redis_state_stats st;
  hw_redis_state_get_stats(r, &st);
  assert_true(st.dirty > 0); /* the others were still queueing: the window really was full */
  e.on_tick = NULL;
  end_test(&e, &f, r, redis);
}

static int disconnected(void *arg) {
  hw_redis_state_stats st;
  hw_redis_state_get_stats(arg, &st);
  return !st.connected;
}

static int is_connected(void *arg) {
  hw_redis_state_stats st;
  hw_redis_state_get_stats(arg, &st);
  return st.connected;
}

/* Redis dies mid-stream and comes back empty: everything known is written again. */
static void test_redis_killed_and_restarted_empty(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 1000, "K%04u", &redis);
  hw_redis_state *r = start_state(&e, &f.reg, port, 128);
  feeder fd = {&f, r, 1, 1, 1700000000000};
  e.user = &fd;
  e.on_tick = feed_tick;

  writes_at_least w = {r, 3000};
  int64_t deadline = hw_now_ms() + HW_TEST_WAIT_MS;
  hw_redis_state_stats st;
  do {
    uv_run(&e.loop, UV_RUN_ONCE);
    hw_redis_state_get_stats(r, &st);
  } while (st.writes < w.n && hw_now_ms() < deadline);
  assert_true(st.writes >= w.n);

  /* Odd terminals go quiet and reach Redis; even ones keep streaming through the kill. After the
   * restart nothing new comes for the odd ones, so only the resend after reconnect can bring
   * them back. */
  fd.stride = 2;
  fleet odd = f;
  const char *odd_ids[500];
  const hw_fix *odd_want[500];
  odd.n = 0;
  odd.ids = odd_ids;
  odd.want = odd_want;
  for (size_t i = 1; i < f.n; i += 2, odd.n++) {
    odd_ids[odd.n] = f.ids[i];
    odd_want[odd.n] = f.want[i];
  }
  assert_fleet_in_redis(&e, &odd);

  kill_redis(redis); /* SIGKILL: no goodbye, writes in flight are lost */
  assert_true(hw_test_loop_run_until(&e, disconnected, r));
  hw_test_loop_run_for(&e, 300); /* the even half keeps coming while Redis is down */
  fd.on = 0;

  redis = start_redis(port); /* same port, empty (no persistence) */
  assert_fleet_in_redis(&e, &f);
  hw_redis_state_get_stats(r, &st);
  assert_int_equal(st.connected, 1);
  assert_true(st.reconnects >= 1);
  assert_no_redis_errors(port);

  end_test(&e, &f, r, redis);
}

/* Redis stops answering (SIGSTOP: the kernel still accepts connections and buffers commands):
 * the reply timeout drops the connection, reconnects time out on SCRIPT LOAD, and once Redis
 * answers again everything is written. Commands the stopped Redis buffered on the dropped
 * connection run late, after newer ones: the script must keep them from winning. */
static void test_unresponsive_redis_times_out(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 300, "U%u", &redis);
  hw_redis_state_config cfg = {.host = "127.0.0.1", .port = port, .max_in_flight = 64,
                               .timeout_ms = 300};
  hw_redis_state *r = NULL;
  assert_int_equal(hw_redis_state_start(&r, &e.loop, &cfg, &f.reg), 0);
  fleet_put_all(&f, r, 1000);
  assert_fleet_in_redis(&e, &f);

  assert_int_equal(kill(redis, SIGSTOP), 0);
  fleet_put_all(&f, r, 2000);
  assert_true(hw_test_loop_run_until(&e, disconnected, r)); /* reply timeout */
  reconnects_at_least w = {r, 2};
  assert_true(hw_test_loop_run_until(&e, reconnects_reached, &w)); /* connect timeouts, retried */
  hw_redis_state_stats st;
  hw_redis_state_get_stats(r, &st);
  assert_int_equal(st.connected, 0);

  fleet_put_all(&f, r, 3000);
  assert_int_equal(kill(redis, SIGCONT), 0);
  assert_fleet_in_redis(&e, &f);
  hw_test_loop_run_for(&e, 300); /* let any late buffered commands run */
  assert_int_equal(redis_mismatches(port, f.ids, f.want, f.n, f.why, sizeof f.why), 0);

  end_test(&e, &f, r, redis);
}

/* stop() while Redis hangs: bounded by the timeout, not by Redis. */
static void test_stop_bounded_when_redis_hangs(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 100, "H%u", &redis);
  hw_redis_state_config cfg = {.host = "127.0.0.1", .port = port, .max_in_flight = 16,
                               .timeout_ms = 300};
  hw_redis_state *r = NULL;
  assert_int_equal(hw_redis_state_start(&r, &e.loop, &cfg, &f.reg), 0);
  assert_true(hw_test_loop_run_until(&e, is_connected, r));
  assert_int_equal(kill(redis, SIGSTOP), 0);
  fleet_put_all(&f, r, 1);
  stop_state(&e, r);
  hw_test_loop_close(&e);
  assert_int_equal(kill(redis, SIGCONT), 0);
  fleet_free(&f);
  stop_redis(redis);
}

/* SCRIPT FLUSH under a live connection: NOSCRIPT makes it load the script again, nothing lost. */
static void test_script_flush_reloads(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 500, "F%u", &redis);
  hw_redis_state *r = start_state(&e, &f.reg, port, 32);
  fleet_put_all(&f, r, 1000);
  assert_fleet_in_redis(&e, &f);

  redisContext *c = rconnect(port);
  redisReply *rep = redisCommand(c, "SCRIPT FLUSH");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  fleet_put_all(&f, r, 2000);
  assert_fleet_in_redis(&e, &f);
  rep = redisCommand(c, "INFO errorstats");
  assert_non_null(rep);
  assert_non_null(strstr(rep->str, "errorstat_NOSCRIPT")); /* the path was really taken */
  freeReplyObject(rep);
  redisFree(c);
  hw_redis_state_stats st;
  hw_redis_state_get_stats(r, &st);
  assert_int_equal(st.reconnects, 0);
  assert_int_equal(st.connected, 1);

  end_test(&e, &f, r, redis);
}

/* stop() writes out what is dirty before closing. */
static void test_stop_flushes(void **state) {
  (void)state;
  env e;
  fleet f;
  pid_t redis;
  int port = begin_test(&e, &f, 5000, "S%u", &redis);
  hw_redis_state *r = start_state(&e, &f.reg, port, 8);
  assert_true(hw_test_loop_run_until(&e, is_connected, r));
  fleet_put_all(&f, r, 42);
  stop_state(&e, r); /* no loop turn between the puts and stop */
  assert_int_equal(redis_mismatches(port, f.ids, f.want, f.n, f.why, sizeof f.why), 0);
  hw_test_loop_close(&e);
  fleet_free(&f);
  stop_redis(redis);
}

/* Stopping while nothing answers must not wait for Redis. */
static void test_stop_while_disconnected(void **state) {
  (void)state;
  env e;
  fleet f;
  int port = begin_test(&e, &f, 3, "D%u", NULL);
  hw_redis_state *r = start_state(&e, &f.reg, port, 8);
  hw_fix fix = make_fix(1);
  fleet_put(&f, r, 0, &fix);
  reconnects_at_least w = {r, 1};
  assert_true(hw_test_loop_run_until(&e, reconnects_reached, &w));
  stop_state(&e, r);
  hw_test_loop_close(&e);
  fleet_free(&f);
}

static void test_start_rejects_bad_config(void **state) {
  (void)state;
  env e;
  env_init(&e);
  hw_registry reg = {0};
  hw_redis_state *r = NULL;
  hw_redis_state_config nohost = {.host = NULL, .port = 6379};
  hw_redis_state_config badport = {.host = "127.0.0.1", .port = 70000};
  assert_int_equal(hw_redis_state_start(&r, &e.loop, &nohost, &reg), -EINVAL);
  assert_int_equal(hw_redis_state_start(&r, &e.loop, &badport, &reg), -EINVAL);
  assert_null(r);
  hw_test_loop_close(&e);
}

int main(void) {
  if (hw_log_set_level(getenv("HW_TEST_LOG") ? getenv("HW_TEST_LOG") : "warn") != 0)
    return 2;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_newest_state_wins, teardown_redis),
      cmocka_unit_test_teardown(test_two_writers_newest_wins, teardown_redis),
      cmocka_unit_test_teardown(test_two_writers_batched_newest_wins, teardown_redis),
      cmocka_unit_test_teardown(test_writes_are_batched, teardown_redis),
      cmocka_unit_test_teardown(test_busy_buckets_do_not_starve_others, teardown_redis),
      cmocka_unit_test_teardown(test_refused_then_redis_appears, teardown_redis),
      cmocka_unit_test_teardown(test_redis_killed_and_restarted_empty, teardown_redis),
      cmocka_unit_test_teardown(test_unresponsive_redis_times_out, teardown_redis),
      cmocka_unit_test_teardown(test_stop_bounded_when_redis_hangs, teardown_redis),
      cmocka_unit_test_teardown(test_script_flush_reloads, teardown_redis),
      cmocka_unit_test_teardown(test_stop_flushes, teardown_redis),
      cmocka_unit_test_teardown(test_stop_while_disconnected, teardown_redis),
      cmocka_unit_test_teardown(test_start_rejects_bad_config, teardown_redis),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
