/* The page in a real browser: sets up PostgreSQL (registry, the demo's zones and region
 * outlines, an operator and a viewer), Redis, the daemon (`serve`), a paced fleet of simulated
 * trucks and `haulwatch web` serving the source tree's web/, then runs
 * tests/browser/page_test.mjs (playwright-core driving Debian's chromium; it says what it
 * checks) and requires it to pass. Afterwards checks in SQL what the browser did: the violation
 * it closed has its audit rows, by the operator, with the note.
 *
 * Needs `npm ci` in web/ and tests/browser/ (ops/test runs it) and /usr/bin/chromium (HW_DEPS):
 * missing, the test fails saying so. Without HW_TEST_PG (not run through ./ops/test) it is
 * skipped (exit 77), as ctest reports it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static hw_test_env env;
static const char *pw = "page-test-pw";
/* What the test started besides env's daemon and Redis; stopped by the teardown even when a
 * check failed half-way. */
static pid_t web_pid, sim_pid, node_pid;

static void sql(const char *q) { hw_test_pg_scalar(env.db, q); }

static void need_file(const char *path, const char *why) {
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "test_page: %s is missing: %s\n", path, why);
    fail();
  }
}

static void user_add(const char *name, const char *role, const char *region) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s user add %s --role %s --region %s --password-stdin", HW_BINARY,
           name, role, region);
  FILE *p = popen(cmd, "w");
  assert_non_null(p);
  fprintf(p, "%s\n", pw);
  assert_int_equal(pclose(p), 0);
}

static void cli(const char *const *argv) {
  assert_int_equal(hw_test_wait_exit(hw_test_spawn(argv, "test_page.cli.log"), 60000), 0);
}

static long geo_count(void) { return hw_test_redis_geo_count(env.redis_port); }

static void test_page_in_browser(void **state) {
  (void)state;
  need_file("/usr/bin/chromium", "install Debian's chromium (ops/lib.sh HW_DEPS)");
  need_file(HW_SOURCE_DIR "/web/node_modules/maplibre-gl/dist/maplibre-gl.js",
            "run npm ci in web/ (ops/test does)");
  need_file(HW_SOURCE_DIR "/tests/browser/node_modules/playwright-core/package.json",
            "run npm ci in tests/browser/ (ops/test does)");
  hw_test_env_up(&env, "hw_test_page");
  setenv("HAULWATCH_PG", env.conninfo, 1);

  /* In the users' province (Hebei, 13): 30 paced trucks, the scripted speeder and a converted
   * tractor whose plate is an HTML injection attempt; outside it (Jiangsu, 32): 10 more. */
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) "
      "SELECT '冀A' || lpad(i::text, 5, '0'), 2, 'heavy_truck', 'sim' || lpad(i::text, 6, '0'), "
      "'130102', '石家庄通达物流' FROM generate_series(1, 30) i");
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) "
      "SELECT '苏A' || lpad(i::text, 5, '0'), 2, 'heavy_truck', 'sim' || lpad(i::text, 6, '0'), "
      "'320102', '南京快运' FROM generate_series(31, 40) i");
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) VALUES "
      "('冀A9S001', 2, 'heavy_truck', 'pg-speeder-001', '130104', '石家庄安捷冷链物流'),"
      "('<img src=x onerror=alert(1)>', 5, 'converted_tractor', 'pg-tractor-001', '130105', "
      "'<b>农机合作社</b>')");
  /* The JT/T 808 truck with a DSM device the browser test drives (haulwatch-sim --scenario dsm
   * registers with plate 京D + its id's last five digits). */
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) VALUES "
      "('京D00001', 2, 'heavy_truck', '013950000001', '130106', '石家庄安捷冷链物流')");
  /* Daily figures of the Hebei fleet for the six days before today (GMT+8), as the daemon would
   * have written them, for the KPI panel: each truck online on five of them, one in ten
   * drifting, a gap or two in the track. */
  sql("INSERT INTO vehicle_daily (terminal_id, day, records, qualified, drift, km_total, km_complete) "
      "SELECT 'sim' || lpad(i::text, 6, '0'), (now() AT TIME ZONE 'Asia/Shanghai')::date - d, "
      "100 + i, 95 + i, CASE WHEN i % 10 = 0 THEN 1 ELSE 0 END, 200 + i, 190 + i "
      "FROM generate_series(1, 30) i, generate_series(1, 6) d WHERE (i + d) % 6 <> 0");
  const char *zones[] = {"zones", "import", HW_SOURCE_DIR "/ops/demo-data/zones.geojson", NULL};
  cli(zones);
  const char *regions[] = {"regions", "import", HW_SOURCE_DIR "/ops/demo-data/regions.geojson",
                           NULL};
  cli(regions);
  user_add("hb_op", "operator", "130000");
  user_add("hb_view", "viewer", "130000");

  /* JT/T 808 and the attachment listener: the DSM truck's alarms are asked for their files. */
  char jlisten[64], alisten[64], adir[256];
  int jport = hw_test_free_port();
  snprintf(jlisten, sizeof jlisten, "127.0.0.1:%d", jport);
  snprintf(alisten, sizeof alisten, "127.0.0.1:%d", hw_test_free_port());
  snprintf(adir, sizeof adir, "%s/tests/page-attachments", HW_BUILD_DIR);
  char rm[300];
  snprintf(rm, sizeof rm, "rm -rf '%s'", adir);
  assert_int_equal(system(rm), 0);
  const char *serve[] = {"serve", "--listen", env.listen_addr, "--jt808-listen", jlisten,
                         "--attachment-listen", alisten, "--attachment-dir", adir, "--pg",
                         env.conninfo, "--redis", env.redis_addr, "--batch-ms", "20",
                         "--daily-flush-s", "2", NULL};
  env.daemon_pid = hw_test_spawn(serve, "test_page.daemon.log");
  assert_int_equal(hw_test_wait_port(env.port, 20000), 0);
  assert_int_equal(hw_test_wait_port(jport, 20000), 0);
  int wport = hw_test_free_port();
  char wlisten[64], url[64];
  snprintf(wlisten, sizeof wlisten, "127.0.0.1:%d", wport);
  snprintf(url, sizeof url, "http://127.0.0.1:%d", wport);
  const char *web[] = {"web", "--listen", wlisten, "--pg", env.conninfo, "--redis", env.redis_addr,
                       "--web-root", HW_SOURCE_DIR "/web", NULL};
  web_pid = hw_test_spawn(web, "test_page.web.log");
  assert_int_equal(hw_test_wait_port(wport, 20000), 0);

  /* The paced fleet drives for the whole test; the browser sees it once all 40 are in Redis. */
  const char *sim[] = {"--server", env.listen_addr, "--trucks", "40", "--duration", "150",
                       "--interval-ms", "1000", "--pg", env.conninfo, "--quiet", NULL};
  sim_pid = hw_test_spawn_sim(sim, "test_page.sim.log");
  int waited = 0;
  while (geo_count() < 40 && waited < 30000) {
    usleep(100 * 1000);
    waited += 100;
  }
  assert_int_equal(geo_count(), 40);

  setenv("HW_PAGE_URL", url, 1);
  setenv("HW_SIM_BINARY", HW_SIM_BINARY, 1);
  setenv("HW_DAEMON", env.listen_addr, 1);
  setenv("HW_JT808", jlisten, 1);
  setenv("HW_PG", env.conninfo, 1);
  setenv("HW_SCREENSHOT", HW_BUILD_DIR "/tests/page.png", 1);
  setenv("HW_OPERATOR", "hb_op", 1);
  setenv("HW_VIEWER", "hb_view", 1);
  setenv("HW_PASSWORD", pw, 1);
  setenv("HW_EXPECT_VEHICLES", "30", 1);
  const char *node[] = {"node", HW_SOURCE_DIR "/tests/browser/page_test.mjs", NULL};
  node_pid = hw_test_exec("/usr/bin/node", node, NULL);
  int node_rc = hw_test_wait_exit(node_pid, 150000);
  node_pid = 0;

  assert_true(hw_test_stop_pid(sim_pid) >= 0);
  sim_pid = 0;
  int web_rc = hw_test_stop_pid(web_pid);
  web_pid = 0;
  assert_int_equal(node_rc, 0);
  /* Under the sanitizers, 0 also means no report at exit (a leak, say). */
  assert_int_equal(web_rc, 0);

  /* What the browser did, as the database has it: the speeder's violation closed by the
   * operator through the API, one audit row per step, the note on the last. */
  assert_int_equal(hw_test_pg_scalar(env.db,
                                     "SELECT count(*) FROM violations v JOIN violation_audit a ON "
                                     "a.violation_id = v.id JOIN web_users u ON u.id = a.user_id "
                                     "WHERE v.terminal_id = 'pg-speeder-001' AND v.state = "
                                     "'closed' AND u.name = 'hb_op'"),
                   3);
  assert_int_equal(hw_test_pg_scalar(env.db,
                                     "SELECT count(*) FROM violation_audit a JOIN violations v ON "
                                     "v.id = a.violation_id WHERE v.terminal_id = 'pg-speeder-001' "
                                     "AND a.to_state = 'closed' AND a.actor = 'hb_op' AND a.note "
                                     "= 'page test: driver warned, fined 200 yuan'"),
                   1);
}

static int teardown(void **state) {
  (void)state;
  hw_test_stop_pid(node_pid);
  hw_test_stop_pid(sim_pid);
  hw_test_stop_pid(web_pid);
  if (env.db)
    hw_test_env_down(&env);
  return 0;
}

int main(void) {
  if (!getenv("HW_TEST_PG") || !*getenv("HW_TEST_PG")) {
    fprintf(stderr, "test_page: HW_TEST_PG is not set (run through ./ops/test): skipped\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_page_in_browser, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
