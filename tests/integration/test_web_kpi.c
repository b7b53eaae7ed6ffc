/* GET /api/v1/kpi and GET /api/v1/kpi/daily end to end (issue 9), lean: daily figures inserted
 * directly into vehicle_daily (no daemon), `haulwatch web` started on a port of the test's own.
 * Checked: every field of every group equals `haulwatch report kpi --format json` for the same
 * request (the same statement, names and score); scoping (no region: the user's regions; a
 * region outside them, or wider than them, 404); CSV and XLSX; the daily trend day by day as
 * computed by hand below; bad parameters 400 with a reason; no session 401; the statement's time
 * limit (kpi_timeout_ms): a KPI statement held up longer is cancelled and answered 504 with a
 * reason, the pool connection serves on, and the limit does not outlast the statement (an untimed
 * query held up longer on the same connection, the pool being one, still succeeds).
 *
 * Data: nj1 (320102) and nj2 (320115) in Nanjing, wx1 (320211) in Wuxi, hz1 (330102) in Hangzhou.
 *   terminal day        records qualified drift km_total km_complete
 *   nj1      2026-11-01 10      10        0     100      90
 *   nj1      2026-11-02 10       8        1      50      50
 *   nj2      2026-11-02  4       4        0      20      10
 *   wx1      2026-11-01  5       5        0      10      10
 *   hz1      2026-11-01  5       5        0      10      10
 * Trend of Nanjing 2026-11-01..03: 11-01 connected 1, online 1, records 10, qualified 10,
 * drifting 0, km 100/90: rate_online 1.0000, rate_track_complete 0.9000, rate_qualified 1.0000,
 * rate_drifting 0.0000; 11-02 connected 2 (nj2's first qualified day), online 2, records 14,
 * qualified 12, drifting 1 (nj1), km 70/60: 1.0000, 0.8571, 0.8571, 0.5000; 11-03 connected 2,
 * nothing sent: online 0, rate_online 0.0000, the other rates null. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "webclient.h"

#define WAIT_MS 60000 /* a bound against hanging, not a performance assertion */
/* The web's KPI time limit here: far above what the statement takes on the test's few rows
 * (milliseconds), short enough to keep the test lean. */
#define KPI_TIMEOUT_MS "1000"

static hw_test_env env;
static int wport;
static wc_resp R;
static char nj[256], js[256], hz[256];

static void sql(const char *q) { hw_test_pg_scalar(env.db, q); }

static void sql_on(PGconn *c, const char *q) {
  PGresult *res = PQexec(c, q);
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    fail_msg("%s: %s", q, PQerrorMessage(c));
  PQclear(res);
}

static void get_as(const char *auth, const char *path) {
  wc_request(wport, "GET", path, auth, NULL, 0, &R);
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_test_web_kpi");
  setenv("HAULWATCH_PG", env.conninfo, 1);
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) VALUES "
      "('苏A10001', 2, 'heavy_truck', 'nj1', '320102', 'NJ Freight'),"
      "('苏A10002', 2, 'dangerous_goods', 'nj2', '320115', 'NJ Freight'),"
      "('苏B10001', 2, 'heavy_truck', 'wx1', '320211', 'WX Haul'),"
      "('浙A10001', 2, 'heavy_truck', 'hz1', '330102', 'HZ Haul')");
  sql("INSERT INTO vehicle_daily (terminal_id, day, records, qualified, drift, km_total, "
      "km_complete) VALUES ('nj1', '2026-11-01', 10, 10, 0, 100, 90),"
      "('nj1', '2026-11-02', 10, 8, 1, 50, 50), ('nj2', '2026-11-02', 4, 4, 0, 20, 10),"
      "('wx1', '2026-11-01', 5, 5, 0, 10, 10), ('hz1', '2026-11-01', 5, 5, 0, 10, 10)");
  sql("INSERT INTO violations (kind, episode_key, terminal_id, region, started_at, ended_at) "
      "VALUES ('speeding', 'w1', 'wx1', '320211', '2026-11-01 10:00+08', '2026-11-01 10:05+08'),"
      "('fatigue_continuous', 'w2', 'nj1', '320102', '2026-11-01 10:00+08', '2026-11-01 16:00+08')");
  wc_user_add("nj_view", "viewer", "320100", "nj-viewer-pw");
  wc_user_add("js_view", "viewer", "320000", "js-viewer-pw");
  wc_user_add("hz_view", "viewer", "330100", "hz-viewer-pw");
  wport = hw_test_free_port();
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", wport);
  const char *argv[] = {"web", "--listen", listen, "--pg", env.conninfo, "--redis", env.redis_addr,
                        "--web-root", "", "--pg-pool", "1", "--kpi-timeout-ms", KPI_TIMEOUT_MS,
                        NULL};
  env.daemon_pid = hw_test_spawn(argv, "test_web_kpi.web.log");
  wc_wait_ready(wport, &R);
  wc_login(wport, "nj_view", "nj-viewer-pw", &R, nj, sizeof nj);
  wc_login(wport, "js_view", "js-viewer-pw", &R, js, sizeof js);
  wc_login(wport, "hz_view", "hz-viewer-pw", &R, hz, sizeof hz);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  free(R.body);
  return 0;
}

/* `haulwatch report kpi ARGS --format json` parsed (the caller deletes it). */
static cJSON *cli_kpi(const char *from, const char *to, const char *region, const char *by,
                      const char *level) {
  const char *argv[18] = {"report", "kpi", "--from", from, "--to", to, "--format", "json",
                          "--pg", env.conninfo};
  int n = 10;
  if (level) {
    argv[n++] = "--level";
    argv[n++] = level;
  }
  if (region) {
    argv[n++] = "--region";
    argv[n++] = region;
  }
  if (by) {
    argv[n++] = "--by";
    argv[n++] = by;
  }
  argv[n] = NULL;
  const char *log = "test_web_kpi.cli.out";
  unlink(log);
  assert_int_equal(hw_test_wait_exit(hw_test_spawn(argv, log), WAIT_MS), 0);
  static char out[65536];
  FILE *f = fopen(log, "r");
  assert_non_null(f);
  size_t len = fread(out, 1, sizeof out - 1, f);
  out[len] = 0;
  fclose(f);
  cJSON *j = cJSON_Parse(out);
  assert_non_null(j);
  return j;
}

/* The API's items equal the command's rows, field by field (names, nulls, numbers, texts). */
static void assert_same_rows(const cJSON *cli, const cJSON *items) {
  assert_int_equal(cJSON_GetArraySize(cli), cJSON_GetArraySize(items));
  assert_true(cJSON_GetArraySize(cli) > 0);
  for (int i = 0; i < cJSON_GetArraySize(cli); i++) {
    const cJSON *a = cJSON_GetArrayItem(cli, i), *b = cJSON_GetArrayItem(items, i);
    assert_int_equal(cJSON_GetArraySize(a), 19);
    assert_int_equal(cJSON_GetArraySize(b), 19);
    for (const cJSON *fa = a->child; fa; fa = fa->next) {
      const cJSON *fb = cJSON_GetObjectItemCaseSensitive(b, fa->string);
      assert_non_null(fb);
      if (cJSON_IsNull(fa))
        assert_true(cJSON_IsNull(fb));
      else if (cJSON_IsString(fa))
        assert_string_equal(fa->valuestring, fb->valuestring);
      else {
        assert_true(cJSON_IsNumber(fb));
        assert_true(fa->valuedouble == fb->valuedouble);
      }
    }
  }
}

static void test_kpi_same_as_cli_and_scoped(void **state) {
  (void)state;
  /* Nanjing's viewer, no region: the city's one group, as report kpi --region 320100. */
  get_as(nj, "/api/v1/kpi?from=2026-11-01&to=2026-11-02&level=city");
  assert_int_equal(R.status, 200);
  cJSON *api = cJSON_Parse(R.body);
  assert_non_null(api);
  cJSON *items = cJSON_GetObjectItem(api, "items");
  cJSON *cli = cli_kpi("2026-11-01", "2026-11-02", "320100", NULL, "city");
  assert_same_rows(cli, items);
  cJSON *g = cJSON_GetArrayItem(items, 0);
  assert_string_equal(cJSON_GetObjectItem(g, "group")->valuestring, "320100");
  assert_int_equal(cJSON_GetObjectItem(g, "records")->valueint, 24);
  assert_true(cJSON_GetObjectItem(g, "rate_track_complete")->valuedouble == 0.8824);
  /* fatigue 6 h over 2 online; one group: its own average, full marks. Points: 5 + 5 +
   * 15 x 0.8824 + 15 x 0.9167 + drift 0.5: 0 + 20 + 20 = 76.9865 of 90 = 85.54. */
  assert_true(cJSON_GetObjectItem(g, "fatigue_hours_per_vehicle")->valuedouble == 3.0);
  assert_true(cJSON_GetObjectItem(g, "score")->valuedouble == 85.54);
  cJSON_Delete(api);
  cJSON_Delete(cli);

  /* The province's viewer sees Nanjing and Wuxi (not Hangzhou); scores against both. */
  get_as(js, "/api/v1/kpi?from=2026-11-01&to=2026-11-02");
  assert_int_equal(R.status, 200);
  api = cJSON_Parse(R.body);
  items = cJSON_GetObjectItem(api, "items");
  cli = cli_kpi("2026-11-01", "2026-11-02", "320000", NULL, NULL);
  assert_same_rows(cli, items);
  assert_int_equal(cJSON_GetArraySize(items), 2);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 1), "group")->valuestring,
                      "320200");
  cJSON_Delete(api);
  cJSON_Delete(cli);

  /* By enterprise within a region the user sees. */
  get_as(js, "/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=320100&by=enterprise");
  assert_int_equal(R.status, 200);
  api = cJSON_Parse(R.body);
  cli = cli_kpi("2026-11-01", "2026-11-02", "320100", "enterprise", NULL);
  assert_same_rows(cli, cJSON_GetObjectItem(api, "items"));
  cJSON_Delete(api);
  cJSON_Delete(cli);

  /* Hangzhou's viewer without a region: Hangzhou only, nothing of Jiangsu. */
  get_as(hz, "/api/v1/kpi?from=2026-11-01&to=2026-11-02&by=enterprise");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"group\":\"HZ Haul\""));
  assert_null(strstr(R.body, "NJ Freight"));
  assert_null(strstr(R.body, "WX Haul"));

  /* Outside the scope, or wider than it: 404, as for any scoped read. */
  static const char *const outside[] = {
      "/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=320200",
      "/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=320000",
      "/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=330102",
      "/api/v1/kpi/daily?from=2026-11-01&to=2026-11-02&region=320211"};
  for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
    get_as(nj, outside[i]);
    assert_int_equal(R.status, 404);
  }
  get_as(js, "/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=320115&level=county");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"group\":\"320115\""));
  get_as(NULL, "/api/v1/kpi?from=2026-11-01&to=2026-11-02");
  assert_int_equal(R.status, 401);
}

static void test_kpi_files(void **state) {
  (void)state;
  get_as(nj, "/api/v1/kpi?from=2026-11-01&to=2026-11-02&format=csv&level=county");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(wc_header(&R, "Content-Type"), "text/csv"));
  static const char head[] =
      "group,vehicles_registered,vehicles_connected,vehicles_online,records,records_qualified,"
      "vehicles_drifting,km_total,km_complete,speeding_count,fatigue_hours,rate_connected,"
      "rate_online,rate_track_complete,rate_qualified,rate_drifting,speeding_per_vehicle,"
      "fatigue_hours_per_vehicle,score\r\n";
  assert_true(!strncmp(R.body, head, strlen(head)));
  assert_non_null(strstr(R.body, "\r\n320102,1,1,1,20,18,1,150.000,140.000,0,"));
  get_as(nj, "/api/v1/kpi?from=2026-11-01&to=2026-11-02&format=xlsx&level=city");
  assert_int_equal(R.status, 200);
  assert_true(R.len > 100 && !memcmp(R.body, "PK", 2));
  FILE *f = fopen("test_web_kpi.xlsx", "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(R.body, 1, R.len, f), R.len);
  assert_int_equal(fclose(f), 0);
  char sheet[16384];
  FILE *p = popen("unzip -p test_web_kpi.xlsx xl/worksheets/sheet1.xml", "r");
  assert_non_null(p);
  size_t n = fread(sheet, 1, sizeof sheet - 1, p);
  sheet[n] = 0;
  assert_int_equal(pclose(p), 0);
  /* The score cell, a number (libxlsxwriter prints 16 significant digits: 85.54000000000001). */
  const char *cell = strstr(sheet, "<c r=\"S2\"><v>");
  assert_non_null(cell);
  double score = strtod(cell + strlen("<c r=\"S2\"><v>"), NULL);
  assert_true(fabs(score - 85.54) < 1e-9);
}

static void test_kpi_daily(void **state) {
  (void)state;
  get_as(nj, "/api/v1/kpi/daily?from=2026-11-01&to=2026-11-03");
  assert_int_equal(R.status, 200);
  cJSON *api = cJSON_Parse(R.body);
  assert_non_null(api);
  cJSON *items = cJSON_GetObjectItem(api, "items");
  assert_int_equal(cJSON_GetArraySize(items), 3);
  static const struct {
    const char *day;
    int connected, online, records, qualified, drifting;
    double km_total, km_complete, r_onl, r_trk, r_q, r_dr; /* -1: null */
  } want[] = {{"2026-11-01", 1, 1, 10, 10, 0, 100, 90, 1, 0.9, 1, 0},
              {"2026-11-02", 2, 2, 14, 12, 1, 70, 60, 1, 0.8571, 0.8571, 0.5},
              {"2026-11-03", 2, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1}};
  for (int i = 0; i < 3; i++) {
    cJSON *d = cJSON_GetArrayItem(items, i);
    assert_string_equal(cJSON_GetObjectItem(d, "day")->valuestring, want[i].day);
    assert_int_equal(cJSON_GetObjectItem(d, "vehicles_connected")->valueint, want[i].connected);
    assert_int_equal(cJSON_GetObjectItem(d, "vehicles_online")->valueint, want[i].online);
    assert_int_equal(cJSON_GetObjectItem(d, "records")->valueint, want[i].records);
    assert_int_equal(cJSON_GetObjectItem(d, "records_qualified")->valueint, want[i].qualified);
    assert_int_equal(cJSON_GetObjectItem(d, "vehicles_drifting")->valueint, want[i].drifting);
    assert_true(cJSON_GetObjectItem(d, "km_total")->valuedouble == want[i].km_total);
    assert_true(cJSON_GetObjectItem(d, "km_complete")->valuedouble == want[i].km_complete);
    const char *rn[] = {"rate_online", "rate_track_complete", "rate_qualified", "rate_drifting"};
    const double rv[] = {want[i].r_onl, want[i].r_trk, want[i].r_q, want[i].r_dr};
    for (int k = 0; k < 4; k++) {
      cJSON *v = cJSON_GetObjectItem(d, rn[k]);
      if (rv[k] < 0)
        assert_true(cJSON_IsNull(v));
      else
        assert_true(cJSON_IsNumber(v) && v->valuedouble == rv[k]);
    }
  }
  cJSON_Delete(api);
  /* Wuxi's day for the province viewer with region=320200: one fix-day, nothing of Nanjing. */
  get_as(js, "/api/v1/kpi/daily?from=2026-11-01&to=2026-11-01&region=320200");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"records\":5,"));
}

static void test_kpi_bad_requests(void **state) {
  (void)state;
  static const struct {
    const char *path, *reason;
  } bad[] = {
      {"/api/v1/kpi", "from and to are required"},
      {"/api/v1/kpi?from=2026-11-01", "from and to are required"},
      {"/api/v1/kpi?from=2026-11-31&to=2026-12-01", "YYYY-MM-DD"},
      {"/api/v1/kpi?from=2026-11-02&to=2026-11-01", "is after"},
      {"/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=3201", "six-digit"},
      {"/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=32010%27", "six-digit"},
      {"/api/v1/kpi?from=2026-11-01&to=2026-11-02&by=plate", "by is region, enterprise or class"},
      {"/api/v1/kpi?from=2026-11-01&to=2026-11-02&level=town", "level is province"},
      {"/api/v1/kpi?from=2026-11-01&to=2026-11-02&format=pdf", "format is json, csv or xlsx"},
      {"/api/v1/kpi?from=2026-11-01&to=2026-11-02&region=%zz", "malformed"},
      {"/api/v1/kpi/daily?from=2025-01-01&to=2026-11-02", "at most 366 days"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    get_as(nj, bad[i].path);
    assert_int_equal(R.status, 400);
    assert_non_null(strstr(R.body, "\"error\""));
    if (!strstr(R.body, bad[i].reason))
      fail_msg("%s: %s", bad[i].path, R.body);
  }
  /* Still serving. */
  get_as(nj, "/api/v1/kpi?from=2026-11-01&to=2026-11-01");
  assert_int_equal(R.status, 200);
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Another session holds an ACCESS EXCLUSIVE lock on vehicles, which every KPI statement reads:
 * the statement waits for it past kpi_timeout_ms and the database cancels it. */
static void test_kpi_timeout(void **state) {
  (void)state;
  PGconn *locker = hw_test_pg_connect(env.conninfo);
  sql_on(locker, "BEGIN");
  sql_on(locker, "LOCK TABLE vehicles IN ACCESS EXCLUSIVE MODE");
  for (int daily = 0; daily <= 1; daily++) {
    long t0 = now_ms();
    get_as(js, daily ? "/api/v1/kpi/daily?from=2026-11-01&to=2026-11-03"
                     : "/api/v1/kpi?from=2026-11-01&to=2026-11-30");
    long took = now_ms() - t0;
    assert_int_equal(R.status, 504);
    assert_non_null(strstr(R.body, "\"error\""));
    if (!strstr(R.body, "took longer than the server allows"))
      fail_msg("504 without its reason: %s", R.body);
    /* Cancelled by the limit, not by anything sooner. */
    if (took < atol(KPI_TIMEOUT_MS))
      fail_msg("504 after %ld ms, before the limit of " KPI_TIMEOUT_MS " ms", took);
  }
  /* The limit is the KPI statement's only: an untimed read held up for longer than it on the
   * same (only) pool connection waits and succeeds. The read is made by a child process while
   * this one keeps the lock for 1.5 times the limit, then releases it. */
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    wc_resp r = {0};
    wc_request(wport, "GET", "/api/v1/vehicles?limit=10", js, NULL, 0, &r);
    _exit(r.status == 200 && r.body && strstr(r.body, "nj1") ? 0 : 1);
  }
  usleep(atoi(KPI_TIMEOUT_MS) * 1500);
  sql_on(locker, "ROLLBACK");
  int st = 0;
  assert_int_equal(waitpid(child, &st, 0), child);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("an untimed read on the pool was cut short or failed after a KPI time limit");
  PQfinish(locker);
  /* And the KPI answers again once nothing holds it up. */
  get_as(js, "/api/v1/kpi?from=2026-11-01&to=2026-11-30");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"records\":"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kpi_same_as_cli_and_scoped),
      cmocka_unit_test(test_kpi_files),
      cmocka_unit_test(test_kpi_daily),
      cmocka_unit_test(test_kpi_bad_requests),
      cmocka_unit_test(test_kpi_timeout),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
