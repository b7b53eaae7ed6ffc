/* The safety rules end to end: `haulwatch sim --scenario` trucks (sim_scenario.h) report to the
 * daemon, which evaluates every fix against the registry and the zones imported with the CLI,
 * stores what it finds in table violations and publishes it on Redis channel hw:violations.
 * Each scenario must give exactly its one violation, with the scripted values; the variants
 * just under a limit give none; a daemon restart in the middle of an episode gives it once.
 *
 * "Exactly one" and "none" need to know the daemon is done with a run: the rules judge a fix
 * before it is acknowledged, and the violation store writes in the order events come, so once a
 * later run's violation is in the table, everything an earlier run produced is too. Runs that
 * should find nothing therefore go first, and their checks follow a later run's violation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "harness.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
#define STEP_MS 10000LL
#define WAIT_MS 60000 /* a bound against hanging, not a performance assertion */

static hw_test_env env;

/* Every terminal the tests use is bound here; pre-tractor and e2e-tractor are two converted
 * tractors (retired after 2025-12-31). */
static const char registry_csv[] =
    "plate,plate_colour,class,terminal_id,region,enterprise,permit_no,permit_expires,status\n"
    "苏A10001,yellow,heavy_truck,e2e-tired-001,320100,南京测试物流有限公司,苏交运管许可宁字320100000001号,2029-12-31,active\n"
    "苏A10002,yellow,heavy_truck,ok-tired-001,320100,南京测试物流有限公司,苏交运管许可宁字320100000002号,2029-12-31,active\n"
    "冀A10003,yellow,heavy_truck,e2e-speeder-001,130100,石家庄测试运输有限公司,冀交运管许可石字130100000003号,2029-12-31,active\n"
    "冀A10004,yellow,heavy_truck,pub-speeder-001,130100,石家庄测试运输有限公司,冀交运管许可石字130100000004号,2029-12-31,active\n"
    "鲁A10005,yellow,converted_tractor,pre-tractor-001,370100,济南测试农机合作社,,,active\n"
    "鲁A10006,yellow,converted_tractor,e2e-tractor-001,370100,济南测试农机合作社,,,active\n"
    "陕A10007,yellow,semi_trailer_tractor,e2e-dark-001,610100,西安测试货运有限公司,陕交运管许可西字610100000007号,2029-12-31,active\n"
    "苏A10008,yellow,heavy_truck,rst-tired-001,320100,南京测试物流有限公司,苏交运管许可宁字320100000008号,2029-12-31,active\n"
    "鲁A10009,yellow,converted_tractor,sig-tractor-001,370100,济南测试农机合作社,,,active\n"
    "冀A10010,yellow,heavy_truck,k9-speeder-001,130100,石家庄测试运输有限公司,冀交运管许可石字130100000010号,2029-12-31,active\n";

/* The expressway the speeder scenario drives on (trucks: 100 km/h there, 80 elsewhere). */
static const char zones_geojson[] =
    "{\"type\": \"FeatureCollection\", \"features\": [{\"type\": \"Feature\",\n"
    " \"properties\": {\"name\": \"G4京港澳高速(测试)\", \"kind\": \"speed_limit\",\n"
    "                \"is_expressway\": true, \"limit_kmh\": 120},\n"
    " \"geometry\": {\"type\": \"Polygon\", \"coordinates\": [[[114.30, 37.40], [114.34, 37.40],\n"
    "              [114.34, 38.40], [114.30, 38.40], [114.30, 37.40]]]}}]}\n";

/* Epoch milliseconds of a GMT+8 wall-clock time. */
static int64_t cst_ms(int y, int mo, int d, int h, int mi, int s) {
  y -= mo <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return ((days * 86400 + h * 3600 + mi * 60 + s) * 1000) - 8 * HOUR_MS;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

static void cli(const char *const *argv) {
  pid_t pid = hw_test_spawn(argv, "test_rules_e2e.cli.log");
  assert_int_equal(hw_test_wait_exit(pid, WAIT_MS), 0);
}

static pid_t start_daemon(void) {
  /* Device times back to 2025-12-31 pass the quality checks (default: a week). */
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis", env.redis_addr,
                        "--batch-ms", "20", "--max-past-s", "34560000", NULL};
  pid_t pid = hw_test_spawn(argv, "test_rules_e2e.daemon.log");
  assert_int_equal(hw_test_wait_port(env.port, 15000), 0);
  return pid;
}

/* Starts `sim --scenario SCENARIO --id-prefix PREFIX` with the first fix at first_ms + STEP (0:
 * the data ends now), flat out unless interval_ms is given. */
static pid_t start_sim(const char *scenario, const char *prefix, int64_t start_ms,
                       const char *interval_ms) {
  char server[64], start[32], log[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", env.port);
  snprintf(start, sizeof start, "%lld", (long long)start_ms);
  snprintf(log, sizeof log, "test_rules_e2e.sim-%s.log", prefix);
  const char *argv[24] = {"--server", server, "--scenario", scenario, "--id-prefix", prefix,
                          "--pg", env.conninfo, "--timeout-s", "240", "--quiet"};
  size_t n = 11;
  if (start_ms) {
    argv[n++] = "--start-time-ms";
    argv[n++] = start;
  }
  if (interval_ms) {
    argv[n++] = "--interval-ms";
    argv[n++] = interval_ms;
    argv[n++] = "--report-fixes";
    argv[n++] = "1";
  }
  argv[n] = NULL;
  return hw_test_spawn_sim(argv, log);
}

/* Runs a scenario to its end: exit 0 means every fix was acknowledged (and judged). */
static void run_sim(const char *scenario, const char *prefix, int64_t start_ms) {
  assert_int_equal(hw_test_wait_exit(start_sim(scenario, prefix, start_ms, NULL), 240000), 0);
}

#define q(...) hw_test_pg_scalarf(env.db, __VA_ARGS__)

/* Polls `sql` (a count) until it is at least 1; fails after WAIT_MS. */
static void wait_for(const char *what, const char *sql) {
  hw_test_pg_wait(env.db, what, sql, WAIT_MS);
}

static void wait_closed(const char *terminal, const char *kind) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM violations WHERE terminal_id = '%s' AND kind = '%s' "
           "AND ended_at IS NOT NULL", terminal, kind);
  wait_for(sql, sql);
}

static long count_of(const char *terminal, const char *kind) {
  if (kind)
    return q("SELECT count(*) FROM violations WHERE terminal_id = '%s' AND kind = '%s'", terminal, kind);
  return q("SELECT count(*) FROM violations WHERE terminal_id = '%s'", terminal);
}

/* A column of the terminal's only violation, as a whole number (times: epoch ms). */
static long col(const char *terminal, const char *expr) {
  return q("SELECT round(%s)::bigint FROM violations WHERE terminal_id = '%s'", expr, terminal);
}

#define STARTED_MS "extract(epoch FROM started_at) * 1000"
#define ENDED_MS "extract(epoch FROM ended_at) * 1000"

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_rules_e2e");
  write_file("test_rules_e2e.registry.csv", registry_csv);
  write_file("test_rules_e2e.zones.geojson", zones_geojson);
  unlink("test_rules_e2e.cli.log");
  unlink("test_rules_e2e.daemon.log");
  const char *reg[] = {"registry", "import", "test_rules_e2e.registry.csv", "--pg", env.conninfo, NULL};
  cli(reg);
  const char *zones[] = {"zones", "import", "test_rules_e2e.zones.geojson", "--pg", env.conninfo, NULL};
  cli(zones);
  env.daemon_pid = start_daemon();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

/* 4 h 30 of driving with only a 10 min stop: one fatigue_continuous; 3 h 55: nothing. */
static void test_tired(void **state) {
  (void)state;
  int64_t start = (hw_now_ms() / 1000) * 1000 - 6 * HOUR_MS, first = start + STEP_MS;
  run_sim("tired:235", "ok", start);
  run_sim("tired", "e2e", start);
  wait_closed("e2e-tired-001", "fatigue_continuous");
  assert_int_equal(count_of("e2e-tired-001", NULL), 1);
  assert_int_equal(count_of("e2e-tired-001", "fatigue_continuous"), 1);
  assert_int_equal(col("e2e-tired-001", "measured"), 270 * 60);
  assert_int_equal(col("e2e-tired-001", "limit_value"), 4 * 3600);
  /* From the moment 4 h of driving were passed (2 h, the 10 min stop, 2 h) to the last moving
   * fix, 30 min later. */
  assert_int_equal(col("e2e-tired-001", STARTED_MS), first + 250 * MIN_MS);
  assert_int_equal(col("e2e-tired-001", ENDED_MS), first + 280 * MIN_MS);
  assert_int_equal(q("SELECT count(*) FROM violations WHERE terminal_id = 'e2e-tired-001' "
                     "AND plate = '苏A10001' AND region = '320100'"), 1);
  /* Stored before e2e's: the 3 h 55 truck broke nothing. */
  assert_int_equal(count_of("ok-tired-001", NULL), 0);
}

/* 2 min at 130 km/h on an expressway where trucks may do 100: one speeding, grade 2. */
static void test_speeder(void **state) {
  (void)state;
  run_sim("speeder", "e2e", 0);
  wait_closed("e2e-speeder-001", "speeding");
  assert_int_equal(count_of("e2e-speeder-001", NULL), 1);
  assert_int_equal(col("e2e-speeder-001", "grade"), 2);
  assert_int_equal(col("e2e-speeder-001", "measured"), 130);
  assert_int_equal(col("e2e-speeder-001", "limit_value"), 100);
  assert_int_equal(col("e2e-speeder-001", ENDED_MS) - col("e2e-speeder-001", STARTED_MS), 2 * MIN_MS);
}

/* A converted tractor moving until 23:59 on 2025-12-31 (GMT+8) is within the rules; one moving
 * on 2026-01-05 is a retired_class. Two vehicles of the class: the same one would also be an
 * offline_displacement, as its script starts again where it started on the 31st. */
static void test_tractor(void **state) {
  (void)state;
  /* 90 min of driving ending at 23:59:00, then stopped past midnight. */
  int64_t first_pre = cst_ms(2025, 12, 31, 23, 59, 0) - 90 * MIN_MS;
  run_sim("tractor", "pre", first_pre - STEP_MS);
  int64_t first = cst_ms(2026, 1, 5, 10, 0, 0);
  run_sim("tractor", "e2e", first - STEP_MS);
  wait_for("the retired_class of e2e-tractor-001",
           "SELECT count(*) FROM violations WHERE terminal_id = 'e2e-tractor-001' "
           "AND kind = 'retired_class'");
  assert_int_equal(count_of("e2e-tractor-001", NULL), 1);
  assert_int_equal(col("e2e-tractor-001", STARTED_MS), first);
  assert_int_equal(count_of("pre-tractor-001", NULL), 0);
}

/* Silent for 45 min, back 40 km on: one offline_displacement. */
static void test_dark(void **state) {
  (void)state;
  run_sim("dark", "e2e", 0);
  wait_closed("e2e-dark-001", "offline_displacement");
  assert_int_equal(count_of("e2e-dark-001", NULL), 1);
  long m = col("e2e-dark-001", "measured");
  assert_in_range(m, 40000 - 20, 40000 + 20);
  assert_int_equal(col("e2e-dark-001", ENDED_MS) - col("e2e-dark-001", STARTED_MS), 45 * MIN_MS);
}

static void stop_daemon(int sig) {
  assert_true(env.daemon_pid > 0); /* kill(0, ...) would signal the whole test run */
  assert_int_equal(kill(env.daemon_pid, sig), 0);
  int status = hw_test_wait_exit(env.daemon_pid, 60000);
  env.daemon_pid = 0;
  if (sig == SIGTERM)
    assert_int_equal(status, 0);
  else
    assert_int_not_equal(status, -1);
}

/* The daemon stopped (SIGTERM) right after a converted tractor's last fix: its open retired_class
 * carries that fix (time, position), not the last throttled update. The drive crosses the
 * retirement at 00:00:00 with fixes at :00 and :30 offsets, so the updates (every 60 s from
 * 00:00:00) miss the last moving fix, at hh:mm:30, by 30 s. */
static void test_stop_flushes_open_episode(void **state) {
  (void)state;
  int64_t first = cst_ms(2025, 12, 31, 23, 50, 30);
  run_sim("tractor", "sig", first - STEP_MS);
  stop_daemon(SIGTERM);
  /* Up again for the next tests before anything can fail; it changes nothing of this episode
   * (its state was saved at stop with the last fix as horizon). */
  env.daemon_pid = start_daemon();
  long last_ms = q("SELECT (extract(epoch FROM max(ts)) * 1000)::bigint FROM positions "
                   "WHERE terminal_id = 'sig-tractor-001' AND speed_kmh >= 5");
  assert_int_equal(last_ms % MIN_MS, 30000); /* the case this test is about */
  assert_int_equal(count_of("sig-tractor-001", NULL), 1);
  assert_int_equal(count_of("sig-tractor-001", "retired_class"), 1);
  assert_int_equal(col("sig-tractor-001", STARTED_MS), cst_ms(2026, 1, 1, 0, 0, 0));
  assert_int_equal(col("sig-tractor-001", "extract(epoch FROM last_at) * 1000"), last_ms);
  assert_int_equal(col("sig-tractor-001", "(evidence->>'last_ms')::bigint"), last_ms);
  /* The last position in the evidence is that fix's. */
  assert_int_equal(q("SELECT count(*) FROM violations v JOIN positions p ON p.terminal_id = "
                     "v.terminal_id AND p.ts = v.last_at WHERE v.terminal_id = 'sig-tractor-001' "
                     "AND round(p.lat * 1e6) = round((v.evidence->>'last_lat')::numeric * 1e6) "
                     "AND round(p.lon * 1e6) = round((v.evidence->>'last_lon')::numeric * 1e6)"), 1);
  assert_int_equal(q("SELECT count(*) FROM violations WHERE terminal_id = 'sig-tractor-001' "
                     "AND ended_at IS NULL"), 1); /* still open: the day is not over */
}

/* kill -9 within the save window (30 s from start) for a terminal never saved: after the
 * restart its fixes, received since the last complete save, are replayed (with the zones: the
 * limit is the expressway's), and its episode is there once with the scripted values. What the
 * first daemon may have stored of it before the crash is removed first, so that only the replay
 * can bring it back. */
static void test_crash_replays_unsaved_terminal(void **state) {
  (void)state;
  stop_daemon(SIGTERM);
  env.daemon_pid = start_daemon(); /* its first save is 30 s away */
  int64_t t0 = hw_now_ms();
  run_sim("speeder", "k9", 0);
  stop_daemon(SIGKILL);
  if (hw_now_ms() - t0 >= 25000)
    fail_msg("the scenario took %lld ms: not within the save window", (long long)(hw_now_ms() - t0));
  assert_int_equal(q("SELECT count(*) FROM rule_state WHERE terminal_id = 'k9-speeder-001'"), 0);
  assert_int_equal(q("SELECT count(*) FROM positions WHERE terminal_id = 'k9-speeder-001'") > 0, 1);
  hw_test_pg_scalar(env.db, "DELETE FROM violations WHERE terminal_id = 'k9-speeder-001'");
  env.daemon_pid = start_daemon();
  wait_closed("k9-speeder-001", "speeding");
  assert_int_equal(count_of("k9-speeder-001", NULL), 1);
  assert_int_equal(col("k9-speeder-001", "grade"), 2);
  assert_int_equal(col("k9-speeder-001", "measured"), 130);
  assert_int_equal(col("k9-speeder-001", "limit_value"), 100);
  assert_int_equal(col("k9-speeder-001", ENDED_MS) - col("k9-speeder-001", STARTED_MS), 2 * MIN_MS);
}

/* The daemon stopped (SIGTERM) and started again while the tired truck's episode is open: still
 * one violation, closed with the whole 4 h 30. The simulator keeps driving meanwhile (paced) and
 * sends what was not acknowledged once the daemon is back. */
static void test_restart_mid_episode(void **state) {
  (void)state;
  int64_t start = (hw_now_ms() / 1000) * 1000 - 6 * HOUR_MS, first = start + STEP_MS;
  /* 1,830 fixes, one every 20 ms: the episode stays open for about 6 s of wall time. */
  pid_t sim = start_sim("tired", "rst", start, "20");
  wait_for("the open episode of rst-tired-001",
           "SELECT count(*) FROM violations WHERE terminal_id = 'rst-tired-001'");
  /* Really in the middle: opened, not yet closed. */
  assert_int_equal(q("SELECT count(*) FROM violations WHERE terminal_id = 'rst-tired-001' "
                     "AND ended_at IS NULL"), 1);
  stop_daemon(SIGTERM);
  env.daemon_pid = start_daemon();
  assert_int_equal(hw_test_wait_exit(sim, 240000), 0);
  wait_closed("rst-tired-001", "fatigue_continuous");
  assert_int_equal(count_of("rst-tired-001", NULL), 1);
  assert_int_equal(col("rst-tired-001", "measured"), 270 * 60);
  assert_int_equal(col("rst-tired-001", STARTED_MS), first + 250 * MIN_MS);
  assert_int_equal(col("rst-tired-001", ENDED_MS), first + 280 * MIN_MS);
}

/* A new violation is announced on Redis channel hw:violations. */
static void test_redis_feed(void **state) {
  (void)state;
  struct timeval tv = {5, 0};
  redisContext *sub = redisConnectWithTimeout("127.0.0.1", env.redis_port, tv);
  assert_non_null(sub);
  assert_int_equal(sub->err, 0);
  redisReply *r = redisCommand(sub, "SUBSCRIBE hw:violations");
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  freeReplyObject(r);

  pid_t sim = start_sim("speeder", "pub", 0, NULL);
  int found = 0;
  int64_t deadline = hw_now_ms() + WAIT_MS;
  while (!found && hw_now_ms() < deadline) {
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(sub->reader, &reply), REDIS_OK);
    if (!reply) {
      struct pollfd p = {.fd = sub->fd, .events = POLLIN};
      if (poll(&p, 1, 100) == 1)
        assert_int_equal(redisBufferRead(sub), REDIS_OK);
      continue;
    }
    r = reply;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[1]->str, "hw:violations");
    cJSON *j = cJSON_Parse(r->element[2]->str);
    if (!j)
      fail_msg("not JSON: %s", r->element[2]->str);
    const cJSON *tid = cJSON_GetObjectItemCaseSensitive(j, "terminal_id");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    if (cJSON_IsString(tid) && !strcmp(tid->valuestring, "pub-speeder-001") && cJSON_IsString(ev) &&
        !strcmp(ev->valuestring, "new")) {
      assert_true(cJSON_IsString(kind));
      assert_string_equal(kind->valuestring, "speeding");
      found = 1;
    }
    cJSON_Delete(j);
    freeReplyObject(r);
  }
  redisFree(sub);
  assert_int_equal(hw_test_wait_exit(sim, 240000), 0);
  if (!found)
    fail_msg("no 'new' message for pub-speeder-001 on hw:violations within %d s", WAIT_MS / 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tired),
      cmocka_unit_test(test_speeder),
      cmocka_unit_test(test_tractor),
      cmocka_unit_test(test_dark),
      cmocka_unit_test(test_stop_flushes_open_episode),
      cmocka_unit_test(test_crash_replays_unsaved_terminal),
      cmocka_unit_test(test_restart_mid_episode),
      cmocka_unit_test(test_redis_feed),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
