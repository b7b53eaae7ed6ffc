/* The crackdown lists end to end (issue 9): the registry imported with its masses through
 * `haulwatch registry import` (schema 014's import function), daily figures and violations
 * inserted directly, then the exact rows of `haulwatch report phaseout|registry-audit|
 * offline-movers` and of GET /api/v1/crackdown/... for users of two cities (scoping), the same
 * CSV from both front ends, JSON, XLSX and refused requests. No daemon: the lists read what the
 * daemon would have written.
 *
 * THE DATA. Converted tractors (retired after 2025-12-31, so days count from 2026-01-01):
 *   cd-t1 苏A70001 320102 active: days 2025-12-31 50 km (before: not counted), 2026-01-05
 *     12.5 km, 2026-01-06 0.4 km (online, under phaseout_min_km 1: not moved), 2026-02-01
 *     30.25 km, last fix 2026-02-01 18:00: moved 2, online 3, 43.150 km; retired_class
 *     violations 2026-01-05 (open) and 2026-02-01 (moved on to notified).
 *     --since 2026-01-06: moved 1 (02-01), online 2, 30.650 km, violations 1 (notified).
 *   cd-t2 苏A70002 320104 scrapped: 2026-01-10 5 km: moved 1, online 1.
 *   cd-t3 苏B70003 320211 (Wuxi) 2026-01-03 100 km: outside Nanjing.
 * Masses (the audit, tolerance 300 kg, load at least 50 % of curb for heavy vehicles):
 *   cd-h1 苏A70004 heavy_truck 2 axles 31000 = 12000 + 1500? no (13500): mismatch, over 18 t,
 *     load small; cd-h2 3 axles 25000 / 12000 / 12800: clean; cd-h3 苏A70006 tractor 6 axles
 *     49500 / 9000 / 40500: over 49 t only; cd-h4 苏B70007 (Wuxi) 3 axles 25000 / 15000 / 5000:
 *     mismatch and load small; cd-h5 scrapped, 40 t on 2 axles: not audited.
 * Offline displacement (measured m, evidence gap_s), --from 2026-11-02 --to 2026-11-03:
 *   cd-h1 (南京甲运输) 11-02 10:00 5000 m 1200 s, 11-03 09:00 12345 m 3600 s (closed);
 *   cd-h2 (南京甲运输) 11-02 12:00 2500 m 700 s; cd-h3 (南京乙物流) 11-03 23:59:59 8000 m
 *   900 s and 11-04 00:00:00 (after --to); cd-h4 (Wuxi) 11-02. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "webclient.h"

#define WAIT_MS 60000 /* a bound against hanging, not a performance assertion */

static hw_test_env env;
static int wport;
static wc_resp R;

static const char registry_csv[] =
    "plate,plate_colour,class,terminal_id,region,enterprise,status,axles,total_mass_kg,"
    "curb_mass_kg,rated_load_kg\n"
    "苏A70001,yellow,converted_tractor,cd-t1,320102,南京甲运输,active,,,,\n"
    "苏A70002,yellow,converted_tractor,cd-t2,320104,南京甲运输,scrapped,,,,\n"
    "苏B70003,yellow,converted_tractor,cd-t3,320211,无锡乙运输,active,,,,\n"
    "苏A70004,yellow,heavy_truck,cd-h1,320102,南京甲运输,active,2,31000,12000,1500\n"
    "苏A70005,yellow,heavy_truck,cd-h2,320102,南京甲运输,active,3,25000,12000,12800\n"
    "苏A70006,yellow,semi_trailer_tractor,cd-h3,320104,南京乙物流,active,6,49500,9000,40500\n"
    "苏B70007,yellow,heavy_truck,cd-h4,320211,无锡乙运输,active,3,25000,15000,5000\n"
    "苏A70008,yellow,heavy_truck,cd-h5,320102,,scrapped,2,40000,10000,1000\n";

static void sql(const char *q) { hw_test_pg_scalar(env.db, q); }

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

/* Runs `haulwatch ARGV`; stdout and stderr into out (NUL-terminated); the exit status. */
static int run_cli(const char *const *argv, char *out, size_t cap) {
  const char *log = "test_crackdown_e2e.cli.out";
  unlink(log);
  int st = hw_test_wait_exit(hw_test_spawn(argv, log), WAIT_MS);
  FILE *f = fopen(log, "r");
  assert_non_null(f);
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = 0;
  fclose(f);
  return st;
}

static void seed(void) {
  write_file("test_crackdown_e2e.registry.csv", registry_csv);
  char out[4096];
  const char *imp[] = {"registry", "import", "test_crackdown_e2e.registry.csv", "--pg",
                       env.conninfo, NULL};
  assert_int_equal(run_cli(imp, out, sizeof out), 0);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM vehicles WHERE total_mass_kg "
                                             "IS NOT NULL"), 5);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT rated_load_kg FROM vehicles WHERE "
                                             "terminal_id = 'cd-h3'"), 40500);
  sql("INSERT INTO vehicle_daily (terminal_id, day, records, qualified, drift, km_total, "
      "km_complete, first_fix, last_fix) VALUES "
      "('cd-t1', '2025-12-31', 10, 10, 0, 50, 50, '2025-12-31 08:00+08', '2025-12-31 17:00+08'),"
      "('cd-t1', '2026-01-05', 10, 10, 0, 12.5, 12.5, '2026-01-05 08:00+08', '2026-01-05 17:00+08'),"
      "('cd-t1', '2026-01-06', 10, 10, 0, 0.4, 0.4, '2026-01-06 08:00+08', '2026-01-06 17:00+08'),"
      "('cd-t1', '2026-02-01', 10, 10, 0, 30.25, 30, '2026-02-01 08:00+08', '2026-02-01 18:00+08'),"
      "('cd-t2', '2026-01-10', 5, 5, 0, 5, 5, '2026-01-10 08:00+08', '2026-01-10 09:30+08'),"
      "('cd-t3', '2026-01-03', 5, 5, 0, 100, 100, '2026-01-03 08:00+08', '2026-01-03 09:30+08')");
  sql("INSERT INTO violations (kind, episode_key, terminal_id, plate, region, enterprise, "
      "started_at, ended_at, measured, evidence) VALUES "
      "('retired_class', 'r1', 'cd-t1', '苏A70001', '320102', '南京甲运输', '2026-01-05 08:10+08', NULL, 30, '{}'),"
      "('retired_class', 'r2', 'cd-t1', '苏A70001', '320102', '南京甲运输', '2026-02-01 08:10+08', NULL, 30, '{}'),"
      "('offline_displacement', 'o1', 'cd-h1', '苏A70004', '320102', '南京甲运输', '2026-11-02 10:00+08', '2026-11-02 10:20+08', 5000, '{\"gap_s\": 1200}'),"
      "('offline_displacement', 'o2', 'cd-h1', '苏A70004', '320102', '南京甲运输', '2026-11-03 09:00+08', '2026-11-03 10:00+08', 12345, '{\"gap_s\": 3600}'),"
      "('offline_displacement', 'o3', 'cd-h2', '苏A70005', '320102', '南京甲运输', '2026-11-02 12:00+08', '2026-11-02 12:12+08', 2500, '{\"gap_s\": 700}'),"
      "('offline_displacement', 'o4', 'cd-h3', '苏A70006', '320104', '南京乙物流', '2026-11-03 23:59:59+08', '2026-11-04 00:15+08', 8000, '{\"gap_s\": 900}'),"
      "('offline_displacement', 'o5', 'cd-h3', '苏A70006', '320104', '南京乙物流', '2026-11-04 00:00+08', '2026-11-04 00:15+08', 9000, '{\"gap_s\": 900}'),"
      "('offline_displacement', 'o6', 'cd-h4', '苏B70007', '320211', '无锡乙运输', '2026-11-02 10:00+08', '2026-11-02 10:20+08', 7000, '{\"gap_s\": 800}')");
  sql("SELECT hw_violation_transition(id, 'notified', 'test', 'told the owner') FROM violations "
      "WHERE episode_key = 'r2'");
  /* o2 is closed: the episodes_open column leaves it out. */
  sql("SELECT hw_violation_transition(id, 'notified', 'test', 'told') FROM violations WHERE "
      "episode_key = 'o2'");
  sql("SELECT hw_violation_transition(id, 'rectifying', 'test', 'fixing') FROM violations WHERE "
      "episode_key = 'o2'");
  sql("SELECT hw_violation_transition(id, 'closed', 'test', 'terminal replaced') FROM violations "
      "WHERE episode_key = 'o2'");
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_test_crackdown");
  setenv("HAULWATCH_PG", env.conninfo, 1);
  seed();
  wc_user_add("nj_view", "viewer", "320100", "nj-viewer-pw");
  wc_user_add("wx_view", "viewer", "320200", "wx-viewer-pw");
  wport = hw_test_free_port();
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", wport);
  const char *argv[] = {"web", "--listen", listen, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--web-root", "", NULL};
  env.daemon_pid = hw_test_spawn(argv, "test_crackdown_e2e.web.log");
  wc_wait_ready(wport, &R);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  free(R.body);
  return 0;
}

static const char phaseout_nj[] =
    "plate,plate_colour,terminal_id,region,enterprise,class,retired_after,status,last_fix,"
    "days_moved,days_online,km_since,first_moved,last_moved,violations,violations_open,"
    "violation_states\r\n"
    "苏A70001,2,cd-t1,320102,南京甲运输,converted_tractor,2025-12-31,active,"
    "2026-02-01T18:00:00+08:00,2,3,43.150,2026-01-05,2026-02-01,2,2,\"open 1, notified 1\"\r\n"
    "苏A70002,2,cd-t2,320104,南京甲运输,converted_tractor,2025-12-31,scrapped,"
    "2026-01-10T09:30:00+08:00,1,1,5.000,2026-01-10,2026-01-10,0,0,\r\n";

static const char audit_nj[] =
    "plate,plate_colour,terminal_id,region,enterprise,class,axles,total_mass_kg,curb_mass_kg,"
    "rated_load_kg,limit_kg,reasons,detail\r\n"
    "苏A70004,2,cd-h1,320102,南京甲运输,heavy_truck,2,31000,12000,1500,18000,"
    "\"mass_mismatch,over_limit,load_small\",total 31000 kg vs curb 12000 + rated load 1500 = "
    "13500 kg (more than 300 kg apart); total 31000 kg above the GB 1589-2016 limit of 18000 kg "
    "for 2 axles; rated load 1500 kg below 50 % of the curb mass 12000 kg\r\n"
    "苏A70006,2,cd-h3,320104,南京乙物流,semi_trailer_tractor,6,49500,9000,40500,49000,"
    "over_limit,total 49500 kg above the GB 1589-2016 limit of 49000 kg for 6 axles "
    "(articulated)\r\n";

static const char movers_nj[] =
    "enterprise,plate,terminal_id,region,episodes,episodes_open,first_started_at,"
    "last_started_at,km_total,km_max,longest_gap_s,enterprise_vehicles,enterprise_episodes\r\n"
    "南京甲运输,苏A70004,cd-h1,320102,2,1,2026-11-02T10:00:00+08:00,2026-11-03T09:00:00+08:00,"
    "17.345,12.345,3600,2,3\r\n"
    "南京甲运输,苏A70005,cd-h2,320102,1,1,2026-11-02T12:00:00+08:00,2026-11-02T12:00:00+08:00,"
    "2.500,2.500,700,2,3\r\n"
    "南京乙物流,苏A70006,cd-h3,320104,1,1,2026-11-03T23:59:59+08:00,2026-11-03T23:59:59+08:00,"
    "8.000,8.000,900,1,1\r\n";

static void test_cli(void **state) {
  (void)state;
  static char out[16384];
  const char *po[] = {"report", "phaseout", "--region", "320100", "--format", "csv", "--pg",
                      env.conninfo, NULL};
  assert_int_equal(run_cli(po, out, sizeof out), 0);
  assert_string_equal(out, phaseout_nj);
  /* --since moves the first day counted; the violations started before it drop out. */
  const char *since[] = {"report", "phaseout", "--region", "320102", "--since", "2026-01-06",
                         "--format", "csv", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(since, out, sizeof out), 0);
  assert_non_null(strstr(out, "\r\n苏A70001,2,cd-t1,320102,南京甲运输,converted_tractor,2025-12-31,"
                              "active,2026-02-01T18:00:00+08:00,1,2,30.650,2026-02-01,2026-02-01,"
                              "1,1,notified 1\r\n"));
  assert_null(strstr(out, "苏A70002")); /* 320104 is not under 320102 */
  /* The whole country: Wuxi's tractor too, first (it moved once, as cd-t2: by plate). */
  const char *all[] = {"report", "phaseout", "--format", "json", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(all, out, sizeof out), 0);
  cJSON *j = cJSON_Parse(out);
  assert_non_null(j);
  assert_int_equal(cJSON_GetArraySize(j), 3);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "plate")->valuestring, "苏A70001");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "plate")->valuestring, "苏A70002");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 2), "plate")->valuestring, "苏B70003");
  assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "km_since")->valuedouble == 43.15);
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "violation_states")));
  cJSON_Delete(j);
  /* phaseout_min_km 0: every day with any km counts (cd-t1's 0.4 km day too). */
  const char *zero[] = {"report", "phaseout", "--region", "320102", "--phaseout-min-km", "0",
                        "--format", "csv", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(zero, out, sizeof out), 0);
  assert_non_null(strstr(out, ",3,3,43.150,2026-01-05,2026-02-01,"));

  const char *au[] = {"report", "registry-audit", "--region", "320100", "--format", "csv",
                      "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(au, out, sizeof out), 0);
  assert_string_equal(out, audit_nj);
  /* A tolerance of 5000 kg clears the Wuxi truck's mismatch (25000 vs 20000), not its load. */
  const char *au_wx[] = {"report", "registry-audit", "--region", "320211", "--audit-tolerance-kg",
                         "5000", "--format", "csv", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(au_wx, out, sizeof out), 0);
  assert_non_null(strstr(out, "\r\n苏B70007,2,cd-h4,320211,无锡乙运输,heavy_truck,3,25000,15000,5000,"
                              "25000,load_small,rated load 5000 kg below 50 % of the curb mass "
                              "15000 kg\r\n"));
  const char *au_wx2[] = {"report", "registry-audit", "--region", "320211", "--format", "csv",
                          "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(au_wx2, out, sizeof out), 0);
  assert_non_null(strstr(out, ",25000,\"mass_mismatch,load_small\","));

  const char *mv[] = {"report", "offline-movers", "--region", "320100", "--from", "2026-11-02",
                      "--to", "2026-11-03", "--format", "csv", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(mv, out, sizeof out), 0);
  assert_string_equal(out, movers_nj);
  /* Without dates: cd-h3's episode of 11-04 too, so 南京乙物流 has 2 and still comes second. */
  const char *mv_all[] = {"report", "offline-movers", "--region", "320100", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(mv_all, out, sizeof out), 0);
  assert_non_null(strstr(out, "南京乙物流"));
  const char *mv_j[] = {"report", "offline-movers", "--format", "json", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(mv_j, out, sizeof out), 0);
  j = cJSON_Parse(out);
  assert_non_null(j);
  assert_int_equal(cJSON_GetArraySize(j), 4);
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 2), "episodes")->valueint, 2);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 2), "plate")->valuestring, "苏A70006");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 3), "plate")->valuestring, "苏B70007");
  cJSON_Delete(j);

  /* XLSX is a file. */
  const char *xl[] = {"report", "registry-audit", "--format", "xlsx", "--out",
                      "test_crackdown_e2e.audit.xlsx", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(xl, out, sizeof out), 0);
  FILE *f = fopen("test_crackdown_e2e.audit.xlsx", "rb");
  assert_non_null(f);
  char magic[4] = {0};
  assert_int_equal(fread(magic, 1, 4, f), 4);
  fclose(f);
  assert_memory_equal(magic, "PK\3\4", 4);
  const char *xl_noout[] = {"report", "registry-audit", "--format", "xlsx", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(xl_noout, out, sizeof out), 2);
  assert_non_null(strstr(out, "--out"));

  /* Refused with a reason, exit 2. */
  const char *bad1[] = {"report", "offline-movers", "--since", "2026-01-01", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad1, out, sizeof out), 2);
  const char *bad2[] = {"report", "phaseout", "--region", "3201", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad2, out, sizeof out), 2);
  assert_non_null(strstr(out, "six-digit"));
  const char *bad3[] = {"report", "offline-movers", "--from", "2026-11-04", "--to", "2026-11-03",
                        "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad3, out, sizeof out), 2);
}

static void test_api(void **state) {
  (void)state;
  char nj[256], wx[256];
  wc_login(wport, "nj_view", "nj-viewer-pw", &R, nj, sizeof nj);
  wc_login(wport, "wx_view", "wx-viewer-pw", &R, wx, sizeof wx);
  /* The same CSV as the command line, from the user's regions. */
  wc_request(wport, "GET", "/api/v1/crackdown/phaseout?format=csv", nj, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  assert_string_equal(R.body, phaseout_nj);
  wc_request(wport, "GET", "/api/v1/crackdown/registry-audit?format=csv", nj, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  assert_string_equal(R.body, audit_nj);
  wc_request(wport, "GET", "/api/v1/crackdown/offline-movers?format=csv&from=2026-11-02&to=2026-11-03",
             nj, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  assert_string_equal(R.body, movers_nj);
  /* Wuxi's user sees Wuxi's only; asking for Nanjing gives nothing, not Nanjing's rows. */
  wc_request(wport, "GET", "/api/v1/crackdown/phaseout", wx, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  cJSON *j = cJSON_Parse(R.body);
  assert_non_null(j);
  cJSON *items = cJSON_GetObjectItem(j, "items");
  assert_int_equal(cJSON_GetArraySize(items), 1);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "plate")->valuestring, "苏B70003");
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "days_moved")->valueint, 1);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "truncated")));
  cJSON_Delete(j);
  wc_request(wport, "GET", "/api/v1/crackdown/registry-audit?region=320100", wx, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  j = cJSON_Parse(R.body);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 0);
  cJSON_Delete(j);
  wc_request(wport, "GET", "/api/v1/crackdown/offline-movers", wx, NULL, 0, &R);
  j = cJSON_Parse(R.body);
  items = cJSON_GetObjectItem(j, "items");
  assert_int_equal(cJSON_GetArraySize(items), 1);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "terminal_id")->valuestring, "cd-h4");
  assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "km_total")->valuedouble == 7.0);
  cJSON_Delete(j);
  /* limit and truncated. */
  wc_request(wport, "GET", "/api/v1/crackdown/phaseout?limit=1", nj, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  j = cJSON_Parse(R.body);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 1);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")));
  cJSON_Delete(j);
  /* XLSX through web_table.c. */
  wc_request(wport, "GET", "/api/v1/crackdown/offline-movers?format=xlsx", nj, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  assert_true(R.len > 4);
  assert_memory_equal(R.body, "PK\3\4", 4);
  assert_non_null(strstr(wc_header(&R, "Content-Disposition"), "offline-movers.xlsx"));
  /* Refused: no login, bad parameters. */
  wc_request(wport, "GET", "/api/v1/crackdown/phaseout", NULL, NULL, 0, &R);
  assert_int_equal(R.status, 401);
  static const char *const bad[] = {
      "/api/v1/crackdown/phaseout?region=3201",
      "/api/v1/crackdown/phaseout?from=2026-01-01",
      "/api/v1/crackdown/offline-movers?since=2026-01-01",
      "/api/v1/crackdown/offline-movers?from=2026-13-01",
      "/api/v1/crackdown/registry-audit?format=pdf",
      "/api/v1/crackdown/registry-audit?limit=0",
      "/api/v1/crackdown/registry-audit?limit=999999999",
      "/api/v1/crackdown/registry-audit?region=%ff",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wc_request(wport, "GET", bad[i], nj, NULL, 0, &R);
    if (R.status != 400)
      fail_msg("%s: %d %s", bad[i], R.status, R.body);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cli),
      cmocka_unit_test(test_api),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
