/* The assessment KPIs end to end (issue 9): a small fleet reports two days of fixes to the real
 * daemon over protobuf (unqualified records of each kind, a drift, a gap, a midnight crossing, a
 * back-filled hour, a future-dated record, a vehicle that never connects); the daily figures the
 * daemon writes as it goes are checked against values computed by hand below, then the row of
 * `haulwatch report kpi` column by column, then `haulwatch report rebuild` must give back exactly
 * the rows the daemon wrote.
 *
 * THE HAND COMPUTATION. Every move is north along longitude 118.78 by 0.009 degrees of latitude.
 * The daemon's distance (base/geo.c) for so short a step is R * dlat with R = 6371008.8 m:
 *   S = 6371008.8 * 0.009 * pi / 180 = 1000.755722 m.
 * Days: D1 = 2026-11-02 and D2 = 2026-11-03, GMT+8. Region scope 320100 (Nanjing, --level city).
 *
 * kpi-a (320102, heavy truck), D1, one fix a minute from 10:00:00:
 *   q1 10:00:00 32.000  q2 10:01:00 32.009  u1 10:01:30 not positioned
 *   q3 10:02:00 32.018  dr 10:03:00 32.300 (31 km in 60 s from q3: drift, no km, no reference)
 *   q4 10:04:00 32.027 (judged from q3: 1 S in 120 s, 30 km/h; 120 s <= 180 s: complete)
 *   u2 10:04:10 lon 72.0   u3 10:04:20 lat 3.0   u4 10:04:30 160.1 km/h   u5 10:04:40 6501 m
 *   u6 10:04:50 heading 360   q5 10:05:00 32.036
 *   records 12 (q1 q2 u1 q3 dr q4 u2..u6 q5), qualified 6 (q1..q5, dr), drift 1, km 4 S = 4.003 (q1-q2, q2-q3, q3-q4, q4-q5),
 *   all complete: 4.003. First 10:00:00, last 10:05:00.
 * kpi-a, D2: r1 09:00 32.036 (from q5 of D1: 0 m, incomplete), r2 09:01 32.045, r3 09:02 32.054,
 *   r4 09:06 32.063 (240 s: a gap), r5 09:07 32.072, r6 11:00 32.108; then, sent after r6, the
 *   back-filled hour b1 10:00 32.081, b2 10:01 32.090, b3 10:02 32.099. In device-time order:
 *   r1 0, r2 S, r3 S, r4 S (gap), r5 S, b1 S (53 min: gap), b2 S, b3 S, r6 S (58 min: gap)
 *   records 9, qualified 9, drift 0, km 8 S = 8.006, complete r2 r3 r5 b2 b3 = 5 S = 5.004.
 * kpi-b (320104, heavy truck): D1 23:58:00 32.000, 23:59:00 32.009; D2 00:00:30 32.018,
 *   00:01:30 32.027; then a record dated two days after now (unqualified: future).
 *   D1: records 2, qualified 2, km 1 S = 1.001 complete. D2: the segment across midnight belongs
 *   to D2: records 2, qualified 2, km 2 S = 2.002 complete.
 * kpi-c (320102, dangerous goods): registered, never sends: not connected.
 * kpi-d (320102, heavy truck): two records on D1, both not positioned: records 2, qualified 0.
 * kpi-e (320200, Wuxi): qualified fixes on D1, outside the scope. kpi-f (320102): scrapped,
 *   sends qualified fixes: not registered, not counted.
 *
 * report kpi --from D1 --to D2 --region 320100 --level city: one group, 320100:
 *   registered 4 (a b c d), connected 2 (a b), online 2, records 12+9+2+2+2 = 27,
 *   qualified 6+9+2+2 = 19, drifting 1 (a), km_total 4S+8S+1S+2S = 15 S = 15.011,
 *   km_complete 4S+5S+1S+2S = 12 S = 12.009,
 *   speeding (violations inserted below, started in the period, in scope): a D1 10:03 and
 *   b D2 23:59:59 = 2 (not: a 2026-11-01 23:59:59, b 2026-11-04 00:00:00, e in 320200);
 *   fatigue_continuous hours inside the period: a 2026-11-01 22:00 - D1 01:00 = 1 h inside,
 *   a D1 14:00 - 18:30 = 4.5 h, b open since D2 00:00:30, up to its last qualified fix
 *   00:01:30 = 1/60 h; a fatigue_daily and f's episode do not count: 5.516667 -> 5.5167.
 *   rate_connected 2/4 = 0.5000, rate_online 2/2 = 1.0000, rate_track_complete 12/15 = 0.8000,
 *   rate_qualified 19/27 = 0.7037, rate_drifting 1/2 = 0.5000, speeding_per_vehicle 2/2 =
 *   1.0000, fatigue_hours_per_vehicle 5.516667/2 = 2.7583.
 *
 * THE SCORE (README, "KPIs", score; default settings), from the printed rates. One group: the
 * average of the groups compared is its own figure. rate_connected 0.5 < 90 %: 0 of 5;
 * rate_online 1.0: 5 x 1 = 5; rate_track_complete 0.8 >= 70 %: 15 x 0.8 = 12; rate_qualified
 * 0.7037 < 80 %: 0 of 15; rate_drifting 0.5 >= 5 %: 0 of 10; speeding 1.0 <= the average 1.0: 20;
 * fatigue 2.7583 <= 2.7583: 20. 57 of the 90 points haulwatch measures (查岗 left out):
 * 100 x 57 / 90 = 63.33. With --score-connected-min-pct 50 the 0.5 counts: 5 x 0.5 = 2.5 more,
 * 100 x 59.5 / 90 = 66.11. */
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

#include "base/common.h"
#include "harness.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
#define WAIT_MS 60000 /* a bound against hanging, not a performance assertion */
#define LON 118780000

static hw_test_env env;

static const char registry_csv[] =
    "plate,plate_colour,class,terminal_id,region,enterprise,permit_no,permit_expires,status\n"
    "苏A90001,yellow,heavy_truck,kpi-a,320102,南京考核物流有限公司,,,active\n"
    "苏A90002,yellow,heavy_truck,kpi-b,320104,南京考核物流有限公司,,,active\n"
    "苏A90003,yellow,dangerous_goods,kpi-c,320102,南京危货运输有限公司,,,active\n"
    "苏A90004,yellow,heavy_truck,kpi-d,320102,南京考核物流有限公司,,,active\n"
    "苏B90005,yellow,heavy_truck,kpi-e,320200,无锡考核物流有限公司,,,active\n"
    "苏A90006,yellow,heavy_truck,kpi-f,320102,南京考核物流有限公司,,,scrapped\n";

static int64_t cst_ms(int y, int mo, int d, int h, int mi, int s) {
  y -= mo <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return ((days * 86400 + h * 3600 + mi * 60 + s) * 1000) - 8 * HOUR_MS;
}
#define D1(h, m, s) cst_ms(2026, 11, 2, h, m, s)
#define D2(h, m, s) cst_ms(2026, 11, 3, h, m, s)

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

/* Runs `haulwatch ARGV`, its stdout and stderr into out (cap bytes, NUL-terminated); returns the
 * exit status. */
static int run_cli(const char *const *argv, char *out, size_t cap) {
  const char *log = "test_kpi_e2e.cli.out";
  unlink(log);
  int st = hw_test_wait_exit(hw_test_spawn(argv, log), WAIT_MS);
  if (out) {
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
  }
  return st;
}

#define q(...) hw_test_pg_scalarf(env.db, __VA_ARGS__)

static void wait_for(const char *what, const char *sql) {
  hw_test_pg_wait(env.db, what, sql, WAIT_MS);
}

typedef struct {
  int64_t ts;
  int32_t lat, lon;
  uint32_t speed, heading, status;
  int32_t alt;
} fx;

/* A qualified fix at lat (1e-6 degrees) on LON. */
static fx good(int64_t ts, int32_t lat) { return (fx){ts, lat, LON, 600, 0, 3, 20}; }

typedef struct {
  pbc *c;
  uint64_t seq;
} term;

static void login(term *t, const char *id) {
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, id, token);
  t->c = hw_test_pb_login(env.port, id, token);
  t->seq = 0;
}

/* Sends the fixes in one report and waits for their ack (they are committed). */
static void send_fixes(term *t, const fx *f, size_t n) {
  Haulwatch__V1__Fix pf[16], *pp[16];
  assert_true(n <= 16);
  for (size_t i = 0; i < n; i++) {
    haulwatch__v1__fix__init(&pf[i]);
    pf[i].seq = ++t->seq;
    pf[i].time_ms = (uint64_t)f[i].ts;
    pf[i].lat_e6 = f[i].lat;
    pf[i].lon_e6 = f[i].lon;
    pf[i].speed_dkmh = f[i].speed;
    pf[i].heading = f[i].heading;
    pf[i].alt_m = f[i].alt;
    pf[i].status = f[i].status;
    pp[i] = &pf[i];
  }
  assert_int_equal(pbc_report(t->c, pp, n), 0);
  assert_int_equal(pbc_wait_ack(t->c, t->seq, 15000), (int64_t)t->seq);
}

/* One day row as "records qualified drift km_total km_complete first last online" (km rounded to
 * metres, times GMT+8), or "<null>" when there is none. */
static void day_row(const char *tid, const char *day, char *out, size_t cap) {
  hw_test_pg_text(env.db, out, cap,
                  "SELECT concat_ws(' ', records, qualified, drift, round(km_total::numeric, 3), "
                  "round(km_complete::numeric, 3), coalesce(to_char(first_fix AT TIME ZONE "
                  "'Asia/Shanghai', 'HH24:MI:SS'), '-'), coalesce(to_char(last_fix AT TIME ZONE "
                  "'Asia/Shanghai', 'HH24:MI:SS'), '-'), online) FROM vehicle_daily "
                  "WHERE terminal_id = '%s' AND day = '%s'", tid, day);
}

/* Every row of vehicle_daily as text, in key order (float8 prints its shortest exact form, so
 * equal text is equal doubles). */
static char *all_rows(void) {
  static char buf[2][8192];
  static int k;
  char *out = buf[k ^= 1];
  hw_test_pg_text(env.db, out, sizeof buf[0],
                  "SELECT string_agg(concat_ws('|', terminal_id, day, records, qualified, drift, "
                  "km_total, km_complete, first_fix, last_fix, online, carry_ts, carry_lat_e6, "
                  "carry_lon_e6), E'\\n' ORDER BY terminal_id, day) FROM vehicle_daily");
  return out;
}

/* The monthly roll-up (schema 017) against the months computed again from vehicle_daily: the
 * number of rows that differ either way (0 when exact). Each month here has at most two days per
 * vehicle, so the float sums cannot differ by the order of addition. */
static long rollup_diff(void) {
  return q("WITH r AS (SELECT terminal_id, date_trunc('month', day::timestamp)::date AS month, "
           "sum(records) AS records, sum(qualified) AS qualified, "
           "count(*) FILTER (WHERE qualified > 0) AS online_days, "
           "count(*) FILTER (WHERE drift > 0) AS drift_days, sum(km_total) AS km_total, "
           "sum(km_complete) AS km_complete, min(day) FILTER (WHERE qualified > 0) AS first_online, "
           "max(last_fix) AS last_fix FROM vehicle_daily GROUP BY 1, 2), "
           "m AS (SELECT terminal_id, month, records, qualified, online_days, drift_days, km_total, "
           "km_complete, first_online, last_fix FROM vehicle_monthly) "
           "SELECT (SELECT count(*) FROM (TABLE r EXCEPT TABLE m) a) "
           "+ (SELECT count(*) FROM (TABLE m EXCEPT TABLE r) b)");
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_kpi_e2e");
  write_file("test_kpi_e2e.registry.csv", registry_csv);
  unlink("test_kpi_e2e.daemon.log");
  const char *reg[] = {"registry", "import", "test_kpi_e2e.registry.csv", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(reg, NULL, 0), 0);
  /* Written every second, so the test sees the figures kept as data flows. */
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--batch-ms", "20", "--daily-flush-s", "1",
                        "--stats-interval-s", "1", NULL};
  env.daemon_pid = hw_test_spawn(argv, "test_kpi_e2e.daemon.log");
  return hw_test_wait_port(env.port, 15000);
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

static void split_csv_line(char *line, char **cells, int max, int *n) {
  *n = 0;
  char *p = line;
  while (*n < max) {
    cells[(*n)++] = p;
    char *c = strchr(p, ',');
    if (!c)
      break;
    *c = 0;
    p = c + 1;
  }
}

static void test_scenario(void **state) {
  (void)state;
  term a, b, d, e, f;
  char row[256];
  login(&a, "kpi-a");
  /* a's first fix: the daemon has no figures for it since start, so it recomputes the day from
   * the stored fixes; the later ones it adds as they come. */
  fx a1[] = {good(D1(10, 0, 0), 32000000)};
  send_fixes(&a, a1, 1);
  wait_for("a's first day row",
           "SELECT count(*) FROM vehicle_daily WHERE terminal_id = 'kpi-a' AND records = 1");
  fx a2[] = {good(D1(10, 1, 0), 32009000),
             {D1(10, 1, 30), 32013500, LON, 600, 0, 0, 20}, /* not positioned */
             good(D1(10, 2, 0), 32018000),
             good(D1(10, 3, 0), 32300000),                    /* drift */
             good(D1(10, 4, 0), 32027000),
             {D1(10, 4, 10), 32027000, 72000000, 600, 0, 3, 20}, /* longitude */
             {D1(10, 4, 20), 3000000, LON, 600, 0, 3, 20},       /* latitude */
             {D1(10, 4, 30), 32027000, LON, 1601, 0, 3, 20},     /* 160.1 km/h */
             {D1(10, 4, 40), 32027000, LON, 600, 0, 3, 6501},    /* altitude */
             {D1(10, 4, 50), 32027000, LON, 600, 360, 3, 20},    /* heading */
             good(D1(10, 5, 0), 32036000)};
  send_fixes(&a, a2, HW_ARRAY_SIZE(a2));
  fx a3[] = {good(D2(9, 0, 0), 32036000), good(D2(9, 1, 0), 32045000), good(D2(9, 2, 0), 32054000),
             good(D2(9, 6, 0), 32063000), good(D2(9, 7, 0), 32072000), good(D2(11, 0, 0), 32108000)};
  send_fixes(&a, a3, HW_ARRAY_SIZE(a3));
  /* Written as they flow, before any back-fill: D1 complete, D2 so far: 6 records, km r2 r3 r4
   * r5 one S each and r5-r6 4 S (32.072 to 32.108) = 8 S = 8.006, complete r2 r3 r5 = 3.002. */
  wait_for("a's days before the back-fill",
           "SELECT count(*) FROM vehicle_daily WHERE terminal_id = 'kpi-a' AND "
           "day = '2026-11-03' AND records = 6");
  day_row("kpi-a", "2026-11-02", row, sizeof row);
  assert_string_equal(row, "12 6 1 4.003 4.003 10:00:00 10:05:00 t");
  day_row("kpi-a", "2026-11-03", row, sizeof row);
  assert_string_equal(row, "6 6 0 8.006 3.002 09:00:00 11:00:00 t");
  /* The back-filled hour. */
  fx a4[] = {good(D2(10, 0, 0), 32081000), good(D2(10, 1, 0), 32090000), good(D2(10, 2, 0), 32099000)};
  send_fixes(&a, a4, HW_ARRAY_SIZE(a4));
  wait_for("a's second day after the back-fill",
           "SELECT count(*) FROM vehicle_daily WHERE terminal_id = 'kpi-a' AND "
           "day = '2026-11-03' AND records = 9");
  day_row("kpi-a", "2026-11-03", row, sizeof row);
  assert_string_equal(row, "9 9 0 8.006 5.004 09:00:00 11:00:00 t");
  pbc_close(a.c);

  login(&b, "kpi-b");
  fx b1[] = {good(D1(23, 58, 0), 32000000), good(D1(23, 59, 0), 32009000),
             good(D2(0, 0, 30), 32018000), good(D2(0, 1, 30), 32027000),
             good((hw_now_ms() / 1000) * 1000 + 48 * HOUR_MS, 32036000)};
  send_fixes(&b, b1, HW_ARRAY_SIZE(b1));
  pbc_close(b.c);
  login(&d, "kpi-d");
  fx d1[] = {{D1(8, 0, 0), 32000000, LON, 0, 0, 0, 20}, {D1(8, 1, 0), 32000000, LON, 0, 0, 1, 20}};
  send_fixes(&d, d1, HW_ARRAY_SIZE(d1));
  pbc_close(d.c);
  login(&e, "kpi-e");
  fx e1[] = {good(D1(12, 0, 0), 31500000), good(D1(12, 1, 0), 31509000)};
  send_fixes(&e, e1, HW_ARRAY_SIZE(e1));
  pbc_close(e.c);
  login(&f, "kpi-f");
  fx f1[] = {good(D1(12, 0, 0), 32000000), good(D1(12, 1, 0), 32009000)};
  send_fixes(&f, f1, HW_ARRAY_SIZE(f1));
  pbc_close(f.c);

  /* a's 17 fixes after its first, before the back-fill, were added as they came (not recomputed):
   * the daemon's stats lines say so. Each worker logs its own counters (a line names its worker,
   * `stats worker=N`, with more than one), so the process's count is the sum of every worker's
   * latest line, not the file's last line, which is one worker's. */
  long incremental = -1;
  for (int waited = 0; waited < WAIT_MS && incremental < 17; waited += 200) {
    usleep(200 * 1000);
    FILE *lf = fopen("test_kpi_e2e.daemon.log", "r");
    assert_non_null(lf);
    char line[1024];
    long latest[64];
    for (int w = 0; w < 64; w++)
      latest[w] = 0;
    while (fgets(line, sizeof line, lf)) {
      const char *k = strstr(line, "daily fixes_incremental=");
      if (!k)
        continue;
      const char *wk = strstr(line, " worker=");
      int w = wk && wk < k ? atoi(wk + strlen(" worker=")) : 0;
      assert_true(w >= 0 && w < 64);
      latest[w] = atol(k + strlen("daily fixes_incremental="));
    }
    fclose(lf);
    incremental = 0;
    for (int w = 0; w < 64; w++)
      incremental += latest[w];
  }
  assert_true(incremental >= 17);

  /* A clean stop writes what is held. */
  assert_int_equal(hw_test_stop_pid(env.daemon_pid), 0);
  env.daemon_pid = 0;
  day_row("kpi-a", "2026-11-02", row, sizeof row);
  assert_string_equal(row, "12 6 1 4.003 4.003 10:00:00 10:05:00 t");
  day_row("kpi-a", "2026-11-03", row, sizeof row);
  assert_string_equal(row, "9 9 0 8.006 5.004 09:00:00 11:00:00 t");
  day_row("kpi-b", "2026-11-02", row, sizeof row);
  assert_string_equal(row, "2 2 0 1.001 1.001 23:58:00 23:59:00 t");
  day_row("kpi-b", "2026-11-03", row, sizeof row);
  assert_string_equal(row, "2 2 0 2.002 2.002 00:00:30 00:01:30 t");
  assert_int_equal(q("SELECT count(*) FROM vehicle_daily WHERE terminal_id = 'kpi-b' AND "
                     "day > '2026-11-03' AND records = 1 AND qualified = 0"), 1);
  day_row("kpi-d", "2026-11-02", row, sizeof row);
  assert_string_equal(row, "2 0 0 0.000 0.000 - - f");
  assert_int_equal(q("SELECT count(*) FROM vehicle_daily WHERE terminal_id = 'kpi-c'"), 0);

  /* Violations, as the rules engine would have stored them (episode_key is its identity). */
  assert_int_equal(
      q("WITH ins AS (INSERT INTO violations (kind, episode_key, terminal_id, started_at, ended_at) "
        "VALUES "
        "('speeding', 's1', 'kpi-a', '2026-11-02 10:03:00+08', '2026-11-02 10:04:00+08'), "
        "('speeding', 's2', 'kpi-a', '2026-11-01 23:59:59+08', '2026-11-02 00:01:00+08'), "
        "('speeding', 's3', 'kpi-b', '2026-11-03 23:59:59+08', '2026-11-04 00:01:00+08'), "
        "('speeding', 's4', 'kpi-b', '2026-11-04 00:00:00+08', '2026-11-04 00:01:00+08'), "
        "('speeding', 's5', 'kpi-e', '2026-11-02 12:00:00+08', '2026-11-02 12:01:00+08'), "
        "('fatigue_continuous', 'f1', 'kpi-a', '2026-11-01 22:00:00+08', '2026-11-02 01:00:00+08'), "
        "('fatigue_continuous', 'f2', 'kpi-a', '2026-11-02 14:00:00+08', '2026-11-02 18:30:00+08'), "
        "('fatigue_continuous', 'f3', 'kpi-b', '2026-11-03 00:00:30+08', NULL), "
        "('fatigue_daily', 'f4', 'kpi-a', '2026-11-02 12:00:00+08', '2026-11-02 20:00:00+08'), "
        "('fatigue_continuous', 'f5', 'kpi-f', '2026-11-02 12:00:00+08', '2026-11-02 20:00:00+08') "
        "RETURNING 1) SELECT count(*) FROM ins"),
      10);

  /* The roll-up the query reads holds the daemon's days exactly. */
  assert_true(q("SELECT count(*) FROM vehicle_monthly") >= 4);
  assert_int_equal(rollup_diff(), 0);

  /* The KPI row, column by column. */
  char out[8192];
  const char *kpi[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03", "--region",
                       "320100", "--level", "city", "--format", "csv", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(kpi, out, sizeof out), 0);
  static const char *const want[][2] = {
      {"group", "320100"}, {"vehicles_registered", "4"}, {"vehicles_connected", "2"},
      {"vehicles_online", "2"}, {"records", "27"}, {"records_qualified", "19"},
      {"vehicles_drifting", "1"}, {"km_total", "15.011"}, {"km_complete", "12.009"},
      {"speeding_count", "2"}, {"fatigue_hours", "5.5167"}, {"rate_connected", "0.5000"},
      {"rate_online", "1.0000"}, {"rate_track_complete", "0.8000"}, {"rate_qualified", "0.7037"},
      {"rate_drifting", "0.5000"}, {"speeding_per_vehicle", "1.0000"},
      {"fatigue_hours_per_vehicle", "2.7583"}, {"score", "63.33"}};
  char *nl = strstr(out, "\r\n");
  assert_non_null(nl);
  *nl = 0;
  char *body = nl + 2, *end = strstr(body, "\r\n");
  assert_non_null(end);
  *end = 0;
  assert_string_equal(end + 2, ""); /* one group */
  char *head[32], *cells[32];
  int nh, nc;
  split_csv_line(out, head, 32, &nh);
  split_csv_line(body, cells, 32, &nc);
  assert_int_equal(nh, 19);
  assert_int_equal(nc, 19);
  for (int i = 0; i < 19; i++) {
    assert_string_equal(head[i], want[i][0]);
    assert_string_equal(cells[i], want[i][1]);
  }

  /* --level county splits the city: 320102 has a c d (registered 3, connected 1, records 12+9+2
   * = 23, qualified 15, km 12 S = 12.009, complete 9 S = 9.007, speeding 1, fatigue 5.5 h; rates
   * 1/3, 1/1, 9/12, 15/23 = 0.6522, 1/1, 1/1, 5.5/1); 320104 has b (4 records, all qualified,
   * 3 S = 3.002 complete, speeding 1, fatigue 1/60 = 0.0167 h). --by class has a group with no
   * connected vehicle, whose rates without a denominator are null in JSON.
   * Scores, against the averages of the two counties: speeding (1+1)/(1+1) = 1.0000, fatigue
   * (5.5 + 0.016667)/2 = 2.7583, zero at 200 % of it = 5.5166. 320102: online 5 + track
   * 15 x 0.75 = 11.25 + speeding 1.0 <= 1.0: 20 + fatigue 5.5 between the average and 5.5166:
   * 20 x (5.5166 - 5.5) / (5.5166 - 2.7583) = 0.120364 (connected 0.3333, qualified 0.6522 and
   * drifting 1.0 beyond their cut-offs: 0) = 36.370364 -> 100 x / 90 = 40.41. 320104: every
   * rate full (drifting 0: 10 x (1 - 0 / 0.05) = 10), speeding and fatigue at or below the
   * averages: 90 -> 100.00. By class: dangerous_goods (registered, nothing sent: every figure
   * without a denominator scores 0) 0.00; heavy_truck (a b d: connected 2/3 < 90 %, the rest as
   * the city row) 63.33. */
  const char *county[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03", "--region",
                          "320100", "--level", "county", "--format", "csv", "--pg", env.conninfo,
                          NULL};
  assert_int_equal(run_cli(county, out, sizeof out), 0);
  assert_non_null(strstr(out, "\r\n320102,3,1,1,23,15,1,12.009,9.007,1,5.5000,0.3333,1.0000,0.7500,0.6522,1.0000,1.0000,5.5000,40.41\r\n"));
  assert_non_null(strstr(out, "\r\n320104,1,1,1,4,4,0,3.002,3.002,1,0.0167,1.0000,1.0000,1.0000,1.0000,0.0000,1.0000,0.0167,100.00\r\n"));
  const char *byclass[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03", "--region",
                           "320100", "--by", "class", "--format", "json", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(byclass, out, sizeof out), 0);
  cJSON *j = cJSON_Parse(out);
  assert_non_null(j);
  assert_int_equal(cJSON_GetArraySize(j), 2);
  cJSON *dg = cJSON_GetArrayItem(j, 0);
  assert_string_equal(cJSON_GetObjectItem(dg, "group")->valuestring, "dangerous_goods");
  assert_int_equal(cJSON_GetObjectItem(dg, "vehicles_registered")->valueint, 1);
  assert_int_equal(cJSON_GetObjectItem(dg, "vehicles_connected")->valueint, 0);
  assert_true(cJSON_GetObjectItem(dg, "rate_connected")->valuedouble == 0.0);
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(dg, "rate_online")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(dg, "rate_qualified")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(dg, "rate_track_complete")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(dg, "speeding_per_vehicle")));
  assert_true(cJSON_GetObjectItem(dg, "score")->valuedouble == 0.0);
  cJSON *ht = cJSON_GetArrayItem(j, 1);
  assert_string_equal(cJSON_GetObjectItem(ht, "group")->valuestring, "heavy_truck");
  assert_int_equal(cJSON_GetObjectItem(ht, "vehicles_registered")->valueint, 3);
  assert_true(cJSON_GetObjectItem(ht, "rate_qualified")->valuedouble == 0.7037);
  assert_true(cJSON_GetObjectItem(ht, "score")->valuedouble == 63.33);
  cJSON_Delete(j);

  /* The score's settings are read: a lower cut-off for rate_connected earns its 2.5 points, the
   * same setting from a config file (the web command's table takes the same entries). */
  const char *cut[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03", "--region",
                       "320100", "--level", "city", "--score-connected-min-pct", "50", "--format", "csv", "--pg",
                       env.conninfo, NULL};
  assert_int_equal(run_cli(cut, out, sizeof out), 0);
  assert_non_null(strstr(out, ",2.7583,66.11\r\n"));
  write_file("test_kpi_e2e.ini", "score_connected_min_pct = 50\n");
  const char *cutini[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03", "--region",
                          "320100", "--level", "city", "--config", "test_kpi_e2e.ini", "--format", "csv", "--pg",
                          env.conninfo, NULL};
  assert_int_equal(run_cli(cutini, out, sizeof out), 0);
  assert_non_null(strstr(out, ",2.7583,66.11\r\n"));
  const char *badcut[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03",
                          "--score-zero-at-pct", "100", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(badcut, out, sizeof out), 2); /* zero at the average: no slope */

  /* --format xlsx: the same row in a workbook (numbers as numbers, the group as a string). */
  const char *xlsx[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03", "--region",
                        "320100", "--level", "city", "--format", "xlsx", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(xlsx, NULL, 0), 0);
  char sheet[16384];
  FILE *p = popen("unzip -p test_kpi_e2e.cli.out xl/worksheets/sheet1.xml xl/sharedStrings.xml", "r");
  assert_non_null(p);
  size_t sn = fread(sheet, 1, sizeof sheet - 1, p);
  sheet[sn] = 0;
  assert_int_equal(pclose(p), 0);
  assert_non_null(strstr(sheet, "<v>63.33</v>"));
  assert_non_null(strstr(sheet, "<v>15.011</v>"));
  assert_non_null(strstr(sheet, ">fatigue_hours_per_vehicle<"));
  assert_non_null(strstr(sheet, ">320100<"));

  /* Bad requests are refused with a reason, exit 2. */
  const char *bad1[] = {"report", "kpi", "--from", "2026-11-03", "--to", "2026-11-02", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad1, out, sizeof out), 2);
  const char *bad2[] = {"report", "kpi", "--from", "2026-11-02", "--to", "2026-11-03", "--region", "32010x", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad2, out, sizeof out), 2);
  const char *bad3[] = {"report", "kpi", "--from", "2026-02-30", "--to", "2026-11-03", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad3, out, sizeof out), 2);

  /* report rebuild gives back exactly what the daemon wrote, after the rows were spoiled. */
  char daemon_rows[8192];
  snprintf(daemon_rows, sizeof daemon_rows, "%s", all_rows());
  assert_true(strlen(daemon_rows) > 100);
  assert_int_equal(q("WITH u AS (UPDATE vehicle_daily SET records = records + 7, km_total = 0 "
                     "RETURNING 1) SELECT count(*) FROM u"), 8);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(q("SELECT count(*) FROM vehicle_monthly WHERE km_total = 0"),
                   q("SELECT count(DISTINCT (terminal_id, date_trunc('month', day::timestamp))) "
                     "FROM vehicle_daily"));
  char to[16];
  hw_test_pg_text(env.db, to, sizeof to,
                  "SELECT to_char((now() AT TIME ZONE 'Asia/Shanghai')::date + 3, 'YYYY-MM-DD')");
  const char *rebuild[] = {"report", "rebuild", "--from", "2026-11-01", "--to", to, "--pg",
                           env.conninfo, NULL};
  assert_int_equal(run_cli(rebuild, out, sizeof out), 0);
  assert_non_null(strstr(out, "8 vehicle-days written, 8 replaced"));
  assert_string_equal(all_rows(), daemon_rows);
  assert_int_equal(rollup_diff(), 0); /* the spoiled months too: the rows equal the daemon's */

  /* Any writer keeps the roll-up exact: an insert in other months, an upsert, a day moved to
   * another month, a delete, a truncate. */
  assert_int_equal(q("WITH i AS (INSERT INTO vehicle_daily (terminal_id, day, records, qualified, "
                     "drift, km_total, km_complete) VALUES ('kpi-x', '2026-10-31', 5, 3, 1, 1.5, 1.25), "
                     "('kpi-x', '2026-12-01', 4, 0, 0, 0, 0), ('kpi-a', '2026-12-02', 2, 2, 0, 0.5, 0.5) "
                     "RETURNING 1) SELECT count(*) FROM i"), 3);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(q("SELECT (first_online IS NULL)::int FROM vehicle_monthly WHERE terminal_id = 'kpi-x' "
                     "AND month = '2026-12-01'"), 1);
  assert_int_equal(q("WITH i AS (INSERT INTO vehicle_daily (terminal_id, day, records, qualified, "
                     "drift, km_total, km_complete) VALUES ('kpi-x', '2026-12-01', 9, 9, 0, 2, 2) "
                     "ON CONFLICT (terminal_id, day) DO UPDATE SET records = EXCLUDED.records, "
                     "qualified = EXCLUDED.qualified, km_total = EXCLUDED.km_total, "
                     "km_complete = EXCLUDED.km_complete RETURNING 1) SELECT count(*) FROM i"), 1);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(q("SELECT records FROM vehicle_monthly WHERE terminal_id = 'kpi-x' "
                     "AND month = '2026-12-01'"), 9);
  assert_int_equal(q("WITH u AS (UPDATE vehicle_daily SET day = '2026-11-15' WHERE terminal_id = "
                     "'kpi-x' AND day = '2026-10-31' RETURNING 1) SELECT count(*) FROM u"), 1);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(q("SELECT count(*) FROM vehicle_monthly WHERE terminal_id = 'kpi-x' "
                     "AND month = '2026-10-01'"), 0);
  assert_int_equal(q("WITH d AS (DELETE FROM vehicle_daily WHERE terminal_id = 'kpi-x' "
                     "RETURNING 1) SELECT count(*) FROM d"), 2);
  assert_int_equal(rollup_diff(), 0);
  assert_int_equal(q("SELECT count(*) FROM vehicle_monthly WHERE terminal_id = 'kpi-x'"), 0);
  PGresult *tr = PQexec(env.db, "TRUNCATE vehicle_daily");
  assert_int_equal(PQresultStatus(tr), PGRES_COMMAND_OK);
  PQclear(tr);
  assert_int_equal(q("SELECT count(*) FROM vehicle_monthly"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scenario),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
