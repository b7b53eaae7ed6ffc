/* Active-safety alarms through the daemon, against real PostgreSQL and Redis: a 0x0200 carrying a
 * DSM item (苏标 layout, built here apart from the daemon's codec) is acknowledged only once its
 * alarm row is committed (the test holds a lock on safety_alarms and sees no ack until it lets
 * go), is stored once however often it is sent, and is published once on hw:alarms; a level-2
 * DSM fatigue alarm while moving becomes a dsm_fatigue violation naming the fatigue_continuous
 * episode it falls in, and that episode lists the alarm as evidence (view
 * fatigue_alarm_evidence); a level-1 phone alarm, and a level-2 one while stopped, do not; and
 * `haulwatch report safety-devices` gives exactly the figures of a small fleet seeded here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jt808client.h"

#define WAIT_MS 30000 /* a bound against hanging, not a performance assertion */

static hw_test_env env;
static int jport;
static char jlisten_addr[64];
static const char *logfile = "test_alarms.daemon.log";

/* Plates 京A2000n (GBK on the wire, UTF-8 in the registry), heavy trucks of one enterprise. */
static const char registry_csv[] =
    "plate,plate_colour,class,terminal_id,region,enterprise,permit_no,permit_expires,status\n"
    "京A20001,yellow,heavy_truck,013900000001,110100,北京测试物流有限公司,,,active\n"
    "京A20002,yellow,heavy_truck,013900000002,110100,北京测试物流有限公司,,,active\n"
    "京A20003,yellow,heavy_truck,013900000003,110100,北京测试物流有限公司,,,active\n";

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_true(fputs(text, f) >= 0);
  assert_int_equal(fclose(f), 0);
}

static void add_terminal(const char *id) {
  const char *params[1] = {id};
  PGresult *r = PQexecParams(env.db, "INSERT INTO terminals (terminal_id, token_hash) "
                                     "VALUES ($1, sha256(convert_to($1, 'UTF8')))",
                             1, NULL, params, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
}

/* Provisions, registers (plate 京A2000<last digit>) and authenticates terminal `phone`. */
static j8c *login(const char *phone) {
  uint8_t plate[] = {0xBE, 0xA9, 'A', '2', '0', '0', '0', (uint8_t)phone[11]};
  char code[64];
  add_terminal(phone);
  j8c *c = j8c_connect(jport, phone);
  assert_non_null(c);
  assert_int_equal(j8c_register(c, "T000001", 2, plate, sizeof plate, code, sizeof code), 0);
  uint8_t body[128];
  size_t n = j8c_body_auth(body, 0, code);
  int flow = j8c_send(c, 0x0102, body, n);
  assert_true(flow >= 0);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0102, WAIT_MS), 0);
  return c;
}

/* Fixes are dated yesterday in China (GMT+8): trusted whatever the hour now. */
static int day_yy, day_mo, day_dd;

static void pick_day(void) {
  time_t t = time(NULL) + 8 * 3600 - 86400;
  struct tm tm;
  gmtime_r(&t, &tm);
  day_yy = tm.tm_year % 100;
  day_mo = tm.tm_mon + 1;
  day_dd = tm.tm_mday;
}

static j8c_loc loc_at(int hh, int mm, int ss, uint16_t speed_dkmh) {
  j8c_loc l = {.status = 0x3, .lat_e6 = 39900000, .lon_e6 = 116400000, .alt_m = 45,
               .speed_dkmh = speed_dkmh, .heading = 90, .yy = day_yy, .mo = day_mo,
               .dd = day_dd, .hh = hh, .mi = mm, .ss = ss};
  return l;
}

static uint8_t bcd(int v) { return (uint8_t)((v / 10) << 4 | (v % 10)); }

/* A DSM item (0x65), 苏标 layout, 47 bytes of value: alarm id, flag 0, type, level, fatigue 3,
 * 4 reserved, speed, altitude, lat, lon, BCD time, vehicle status, then the alarm number
 * (terminal id "T000001", the same BCD time, sequence, attachment count, reserved 0). Written
 * from the standard's table, not with the daemon's codec. */
static size_t dsm_item(uint8_t *o, uint32_t alarm_id, uint8_t type, uint8_t level, uint8_t speed,
                       int hh, int mm, int ss, uint8_t seq, uint8_t attachments) {
  uint8_t *p = o;
  uint8_t t[6] = {bcd(day_yy), bcd(day_mo), bcd(day_dd), bcd(hh), bcd(mm), bcd(ss)};
  *p++ = 0x65;
  *p++ = 47;
  *p++ = (uint8_t)(alarm_id >> 24), *p++ = (uint8_t)(alarm_id >> 16);
  *p++ = (uint8_t)(alarm_id >> 8), *p++ = (uint8_t)alarm_id;
  *p++ = 0;     /* flag */
  *p++ = type;
  *p++ = level;
  *p++ = 3;     /* fatigue degree */
  memset(p, 0, 4), p += 4;
  *p++ = speed;
  *p++ = 0, *p++ = 45; /* altitude */
  uint32_t lat = 39900000, lon = 116400000;
  *p++ = (uint8_t)(lat >> 24), *p++ = (uint8_t)(lat >> 16), *p++ = (uint8_t)(lat >> 8), *p++ = (uint8_t)lat;
  *p++ = (uint8_t)(lon >> 24), *p++ = (uint8_t)(lon >> 16), *p++ = (uint8_t)(lon >> 8), *p++ = (uint8_t)lon;
  memcpy(p, t, 6), p += 6;
  *p++ = 0, *p++ = 1; /* vehicle status: ACC on */
  memcpy(p, "T000001", 7), p += 7;
  memcpy(p, t, 6), p += 6;
  *p++ = seq;
  *p++ = attachments;
  *p++ = 0;
  assert_int_equal(p - o, 2 + 47);
  return (size_t)(p - o);
}

/* Sends a 0x0200 at hh:mm:ss with one DSM item; returns the flow. */
static int send_alarm(j8c *c, int hh, int mm, int ss, uint16_t speed_dkmh, uint32_t alarm_id,
                      uint8_t type, uint8_t level, int flow) {
  uint8_t body[256];
  j8c_loc l = loc_at(hh, mm, ss, speed_dkmh);
  size_t n = j8c_body_location(body, &l);
  n += dsm_item(body + n, alarm_id, type, level, (uint8_t)(speed_dkmh / 10), hh, mm, ss, 1, 2);
  int f = flow >= 0 ? j8c_send_flow(c, 0x0200, (uint16_t)flow, body, n)
                    : j8c_send(c, 0x0200, body, n);
  assert_true(f >= 0);
  return f;
}

static int send_plain(j8c *c, int hh, int mm, int ss, uint16_t speed_dkmh) {
  uint8_t body[128];
  j8c_loc l = loc_at(hh, mm, ss, speed_dkmh);
  size_t n = j8c_body_location(body, &l);
  int f = j8c_send(c, 0x0200, body, n);
  assert_true(f >= 0);
  return f;
}

static int start_daemon(void) {
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--jt808-listen", jlisten_addr,
                        "--pg", env.conninfo, "--redis", env.redis_addr, "--batch-ms", "20",
                        "--log-level", "debug", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  return hw_test_wait_port(env.port, 15000) || hw_test_wait_port(jport, 15000) ? -1 : 0;
}

static int group_setup(void **state) {
  (void)state;
  pick_day();
  hw_test_env_up(&env, "hw_it_alarms");
  jport = hw_test_free_port();
  snprintf(jlisten_addr, sizeof jlisten_addr, "127.0.0.1:%d", jport);
  unlink(logfile);
  write_file("test_alarms.registry.csv", registry_csv);
  /* The class sets the continuous limit (4 h by default); a minute keeps the test short. */
  PGresult *u = PQexec(env.db, "UPDATE vehicle_classes SET continuous_limit_s = 60 "
                               "WHERE code = 'heavy_truck'");
  int ok = PQresultStatus(u) == PGRES_COMMAND_OK;
  PQclear(u);
  if (!ok)
    return -1;
  const char *reg[] = {"registry", "import", "test_alarms.registry.csv", "--pg", env.conninfo, NULL};
  pid_t pid = hw_test_spawn(reg, "test_alarms.cli.log");
  if (hw_test_wait_exit(pid, WAIT_MS) != 0)
    return -1;
  return start_daemon();
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

static redisContext *subscribe(void) {
  struct timeval tv = {5, 0};
  redisContext *r = redisConnectWithTimeout("127.0.0.1", env.redis_port, tv);
  assert_non_null(r);
  assert_int_equal(r->err, 0);
  redisReply *rep = redisCommand(r, "SUBSCRIBE hw:alarms");
  assert_non_null(rep);
  freeReplyObject(rep);
  return r;
}

/* The next hw:alarms message's payload into out, 0; -1 when none came within ms. */
static int next_alarm(redisContext *r, int ms, char *out, size_t cap) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  redisSetTimeout(r, tv);
  redisReply *rep = NULL;
  if (redisGetReply(r, (void **)&rep) != REDIS_OK || !rep) {
    r->err = 0; /* a timeout: the context stays usable for the test's next read */
    return -1;
  }
  int rc = -1;
  if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[2]->str) {
    snprintf(out, cap, "%s", rep->element[2]->str);
    rc = 0;
  }
  freeReplyObject(rep);
  return rc;
}

/* The ack of a 0x0200 with an alarm waits for the alarm's row: while the test holds a lock that
 * keeps the writer's INSERT from committing, no ack comes; once it lets go the ack comes and the
 * row is there. Sent again, the same report is acknowledged and stores and publishes nothing. */
static void test_alarm_stored_before_ack(void **state) {
  (void)state;
  const char *phone = "013900000001";
  redisContext *sub = subscribe();
  j8c *c = login(phone);
  PGconn *lock = PQconnectdb(env.conninfo);
  assert_int_equal(PQstatus(lock), CONNECTION_OK);
  PGresult *r = PQexec(lock, "BEGIN; LOCK TABLE safety_alarms IN EXCLUSIVE MODE");
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);

  int flow = send_alarm(c, 10, 0, 0, 600, 77, 0x02, 2, -1);
  /* Held: two seconds is a hundred batch periods. */
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 2000), -1);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "terminal_id = '%s'", phone), 0);
  r = PQexec(lock, "COMMIT");
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  PQfinish(lock);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, WAIT_MS), 0);
  /* At the moment the ack is read the row is committed. */
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "terminal_id = '%s'", phone), 1);
  char t[256];
  hw_test_pg_text(env.db, t, sizeof t,
                  "SELECT concat_ws('|', kind, type, level, speed_kmh, alarm_no, attachments, "
                  "vehicle, layout, fields->>'fatigue', round(lat::numeric, 6)) FROM "
                  "safety_alarms WHERE terminal_id = '%s'", phone);
  char want[256];
  snprintf(want, sizeof want, "dsm|2|2|60|T000001-%02d%02d%02d100000-1|2|京A20001|su|3|39.900000",
           day_yy, day_mo, day_dd);
  assert_string_equal(t, want);

  /* Published once, after the commit. */
  char msg[2048];
  assert_int_equal(next_alarm(sub, WAIT_MS, msg, sizeof msg), 0);
  assert_non_null(strstr(msg, "\"kind\" : \"dsm\""));
  assert_non_null(strstr(msg, "\"terminal_id\" : \"013900000001\""));

  /* The same report again (a lost ack), same flow and a new one: stored and published once. */
  int f2 = send_alarm(c, 10, 0, 0, 600, 77, 0x02, 2, flow);
  assert_int_equal(j8c_wait_response(c, (uint16_t)f2, 0x0200, WAIT_MS), 0);
  int f3 = send_alarm(c, 10, 0, 0, 600, 77, 0x02, 2, -1);
  assert_int_equal(j8c_wait_response(c, (uint16_t)f3, 0x0200, WAIT_MS), 0);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "terminal_id = '%s'", phone), 1);
  assert_int_equal(next_alarm(sub, 1000, msg, sizeof msg), -1);
  redisFree(sub);
  j8c_close(c);
}

/* Three minutes of driving (a fix every 20 s at 60 km/h) pass the 60 s continuous limit; a level-2
 * DSM fatigue alarm then is a dsm_fatigue violation naming the open episode, and the episode has
 * the alarm as evidence. A level-1 phone alarm while moving and a level-2 phone alarm while
 * stopped are stored, and are no violation. */
static void test_fatigue_alarm_violation(void **state) {
  (void)state;
  const char *phone = "013900000002";
  j8c *c = login(phone);
  int flow = -1;
  for (int s = 0; s <= 180; s += 20)
    flow = send_plain(c, 11, s / 60, s % 60, 600);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, WAIT_MS), 0);
  flow = send_alarm(c, 11, 3, 20, 600, 501, 0x01, 2, -1);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, WAIT_MS), 0);
  flow = send_alarm(c, 11, 3, 40, 600, 502, 0x02, 1, -1);   /* phone, level 1 */
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, WAIT_MS), 0);
  flow = send_alarm(c, 11, 4, 0, 0, 503, 0x02, 2, -1);      /* phone, level 2, stopped */
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, WAIT_MS), 0);
  flow = send_alarm(c, 11, 4, 20, 600, 504, 0x03, 2, -1);   /* smoking, level 2, moving */
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, WAIT_MS), 0);
  j8c_close(c);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "terminal_id = '%s'", phone), 4);
  char sql[512];
  /* The violation store writes in event order: once dsm_smoking (the last) is in, so is the rest. */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM violations WHERE terminal_id = '%s' AND "
                            "kind = 'dsm_smoking'", phone);
  hw_test_pg_wait(env.db, "the dsm_smoking violation", sql, WAIT_MS);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM violations WHERE "
                                              "terminal_id = '%s' AND kind LIKE 'dsm_%%'", phone), 2);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM violations WHERE "
                                              "terminal_id = '%s' AND kind = 'dsm_fatigue' AND "
                                              "state = 'open' AND ended_at = started_at", phone), 1);
  /* The violation names the episode, and the episode's evidence is the alarm. */
  char ep[256], named[256];
  hw_test_pg_text(env.db, ep, sizeof ep, "SELECT episode_key FROM violations WHERE terminal_id = "
                  "'%s' AND kind = 'fatigue_continuous'", phone);
  assert_non_null(strstr(ep, "/fatigue_continuous/"));
  hw_test_pg_text(env.db, named, sizeof named, "SELECT evidence->>'fatigue_episode' FROM "
                  "violations WHERE terminal_id = '%s' AND kind = 'dsm_fatigue'", phone);
  assert_string_equal(named, ep);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM fatigue_alarm_evidence e "
                                              "JOIN safety_alarms a ON a.id = e.alarm_id WHERE "
                                              "e.episode_key = '%s' AND a.alarm_id = 501", ep), 1);
  /* Only the fatigue alarm is the episode's evidence (phone and smoking are not fatigue). */
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM fatigue_alarm_evidence "
                                              "WHERE episode_key = '%s'", ep), 1);
}

/* Runs `haulwatch ARGV`; stdout and stderr into out (NUL-terminated); the exit status. */
static int run_cli(const char *const *argv, char *out, size_t cap) {
  const char *log = "test_alarms.cli.out";
  unlink(log);
  int st = hw_test_wait_exit(hw_test_spawn(argv, log), WAIT_MS);
  FILE *f = fopen(log, "r");
  assert_non_null(f);
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = 0;
  fclose(f);
  return st;
}

static void exec_sql(const char *sql) {
  PGresult *r = PQexec(env.db, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  PQclear(r);
}

static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  assert_true(cJSON_IsNumber(v));
  return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  assert_true(cJSON_IsString(v));
  return v->valuestring;
}

/* A fleet in region 120100 (Tianjin), 2026-11-01 to 2026-11-07, seeded straight into the tables
 * the report reads (the daemon's part is the tests above):
 *   cov-1 heavy truck, connected (100 km), a level-2 fatigue alarm followed 30 min later by a
 *     fatigue_continuous violation, a level-1 phone alarm, a level-2 forward-collision alarm
 *     followed by nothing;
 *   cov-2 semi-trailer tractor, connected (300 km), a level-2 phone alarm followed by its own
 *     dsm_phone violation (made of the alarm: not "followed") and 10 min later by speeding;
 *   cov-3 connected, last item on 10-20: outside the 7 days, so without a working device (B公司);
 *   cov-4 connected, never an item (A公司);
 *   cov-5 never connected, a level-2 alarm: in scope, not connected, not covered;
 *   cov-6 dangerous goods, cov-7 another region: out of scope.
 * Expected: 5 vehicles, 4 connected, 2 covered (50 %), 4 level-2 alarms of which 2 followed
 * (50 %); without a device cov-4 then cov-3; rates over 2 vehicles and 400 km. */
static void test_coverage_report(void **state) {
  (void)state;
  exec_sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) VALUES "
           "('津C00001', 2, 'heavy_truck', 'cov-1', '120101', 'A公司'),"
           "('津C00002', 2, 'semi_trailer_tractor', 'cov-2', '120101', 'A公司'),"
           "('津C00003', 2, 'heavy_truck', 'cov-3', '120102', 'B公司'),"
           "('津C00004', 2, 'heavy_truck', 'cov-4', '120102', 'A公司'),"
           "('津C00005', 2, 'heavy_truck', 'cov-5', '120102', 'A公司'),"
           "('津C00006', 2, 'dangerous_goods', 'cov-6', '120102', 'A公司'),"
           "('冀C00007', 2, 'heavy_truck', 'cov-7', '130100', 'A公司')");
  exec_sql("INSERT INTO vehicle_daily (terminal_id, day, records, qualified, drift, km_total, km_complete) VALUES "
           "('cov-1', '2026-11-02', 10, 10, 0, 100, 100), ('cov-2', '2026-11-03', 10, 10, 0, 300, 300),"
           "('cov-3', '2026-11-01', 10, 10, 0, 50, 50), ('cov-4', '2026-11-04', 10, 10, 0, 70, 70),"
           "('cov-6', '2026-11-04', 10, 10, 0, 80, 80), ('cov-7', '2026-11-04', 10, 10, 0, 90, 90)");
#define ALARM(tid, kind, type, level, id, at) \
  "('" tid "', '" kind "', " #type ", " #level ", " #id ", 0, '" at "+08', '" at "+08', 'T000001-261101000000-" #id "', 0, 'su')"
  exec_sql("INSERT INTO safety_alarms (terminal_id, kind, type, level, alarm_id, flag, alarm_at, fix_at, alarm_no, attachments, layout) VALUES "
           ALARM("cov-1", "dsm", 1, 2, 1, "2026-11-03 10:00:00") ","
           ALARM("cov-1", "dsm", 2, 1, 2, "2026-11-04 10:00:00") ","
           ALARM("cov-1", "adas", 1, 2, 3, "2026-11-05 10:00:00") ","
           ALARM("cov-2", "dsm", 2, 2, 4, "2026-11-06 12:00:00") ","
           ALARM("cov-3", "dsm", 1, 2, 5, "2026-10-20 12:00:00") ","
           ALARM("cov-5", "dsm", 1, 2, 6, "2026-11-02 12:00:00") ","
           ALARM("cov-6", "dsm", 1, 2, 7, "2026-11-02 12:00:00") ","
           ALARM("cov-7", "dsm", 1, 2, 8, "2026-11-02 12:00:00"));
  exec_sql("INSERT INTO violations (kind, episode_key, terminal_id, started_at) VALUES "
           "('fatigue_continuous', 'cov-1/fatigue_continuous/x', 'cov-1', '2026-11-03 10:30:00+08'),"
           "('dsm_phone', 'cov-2/dsm_phone/x', 'cov-2', '2026-11-06 12:00:00+08'),"
           "('speeding', 'cov-2/speeding/x', 'cov-2', '2026-11-06 12:10:00+08'),"
           "('speeding', 'cov-1/speeding/late', 'cov-1', '2026-11-05 12:00:00+08')");
  char out[16384];
  const char *argv[] = {"report", "safety-devices", "--region", "120000", "--from", "2026-11-01",
                        "--to", "2026-11-07", "--format", "json", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(argv, out, sizeof out), 0);
  const char *j = strstr(out, "{\"region\"");
  assert_non_null(j);
  cJSON *o = cJSON_Parse(j);
  assert_non_null(o);
  const cJSON *sum = cJSON_GetObjectItemCaseSensitive(o, "summary");
  assert_non_null(sum);
  assert_int_equal(num(sum, "vehicles"), 5);
  assert_int_equal(num(sum, "connected"), 4);
  assert_int_equal(num(sum, "covered"), 2);
  assert_true(num(sum, "covered_pct") == 50.0);
  assert_int_equal(num(sum, "level2_alarms"), 4);
  assert_int_equal(num(sum, "level2_followed"), 2);
  assert_true(num(sum, "followed_pct") == 50.0);
  const cJSON *un = cJSON_GetObjectItemCaseSensitive(o, "without_device");
  assert_int_equal(cJSON_GetArraySize(un), 2);
  assert_string_equal(str(cJSON_GetArrayItem(un, 0), "terminal_id"), "cov-4");
  assert_string_equal(str(cJSON_GetArrayItem(un, 0), "enterprise"), "A公司");
  assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(un, 0), "last_item")));
  assert_string_equal(str(cJSON_GetArrayItem(un, 1), "terminal_id"), "cov-3");
  assert_string_equal(str(cJSON_GetArrayItem(un, 1), "last_item"), "2026-10-20 12:00:00");
  const cJSON *rates = cJSON_GetObjectItemCaseSensitive(o, "rates");
  assert_int_equal(cJSON_GetArraySize(rates), 4);
  static const struct {
    const char *kind;
    int type, level;
  } want[] = {{"adas", 1, 2}, {"dsm", 1, 2}, {"dsm", 2, 1}, {"dsm", 2, 2}};
  for (int i = 0; i < 4; i++) {
    const cJSON *r = cJSON_GetArrayItem(rates, i);
    assert_string_equal(str(r, "kind"), want[i].kind);
    assert_int_equal(num(r, "type"), want[i].type);
    assert_int_equal(num(r, "level"), want[i].level);
    assert_int_equal(num(r, "alarms"), 1);
    assert_int_equal(num(r, "vehicles"), 2);
    assert_true(num(r, "per_vehicle") == 0.5);
    assert_true(num(r, "km") == 400.0);
    assert_true(num(r, "per_100km") == 0.25);
  }
  cJSON_Delete(o);
  /* A bad region is a usage error. */
  const char *bad[] = {"report", "safety-devices", "--region", "12", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad, out, sizeof out), 2);
}

/* The simulator's trucks with devices over JT/T 808: a dsm truck's two scripted alarms land with
 * their attachment counts and levels, and the nodevice truck's one item, 10 days older than its
 * fix. */
static void test_sim_device_trucks(void **state) {
  (void)state;
  char server[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", jport);
  for (int i = 0; i < 2; i++) {
    const char *argv[] = {"--protocol", "jt808", "--server", server, "--scenario",
                          i ? "nodevice" : "dsm", "--pg", env.conninfo, "--quiet", NULL};
    pid_t sim = hw_test_spawn_sim(argv, "test_alarms.sim.log");
    assert_int_equal(hw_test_wait_exit(sim, WAIT_MS), 0);
  }
  /* Every fix was acknowledged (the sim exits 0 only then), so its alarms are stored. */
  char t[256];
  hw_test_pg_text(env.db, t, sizeof t,
                  "SELECT string_agg(concat_ws('/', kind, type, level, attachments, alarm_id), ' ' "
                  "ORDER BY alarm_at) FROM safety_alarms WHERE terminal_id = '013950000001'");
  assert_string_equal(t, "dsm/2/2/2/101 dsm/1/2/3/102");
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "terminal_id = '013960000001' AND type = 16 AND "
                                              "fix_at - alarm_at = interval '10 days'"), 1);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "terminal_id = '013960000001'"), 1);

  /* haulwatch alarms list: the same two, newest first, the types named; a bad kind refused. */
  char out[16384];
  const char *tab[] = {"alarms", "list", "--terminal", "013950000001", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(tab, out, sizeof out), 0);
  const char *fat = strstr(out, "fatigue"), *ph = strstr(out, "phone");
  assert_non_null(fat);
  assert_non_null(ph);
  assert_true(fat < ph);
  assert_non_null(strstr(out, "(2 alarms)"));
  const char *csv[] = {"alarms", "list", "--kind", "dsm", "--terminal", "013950000001",
                       "--format", "csv", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(csv, out, sizeof out), 0);
  assert_non_null(strstr(out, "id,alarm_at,terminal_id,vehicle,kind,type,type_name,level,"));
  assert_non_null(strstr(out, ",013950000001,,dsm,2,phone,2,70,"));
  const char *js[] = {"alarms", "list", "--format", "json", "--kind", "tpms", "--pg",
                      env.conninfo, NULL};
  assert_int_equal(run_cli(js, out, sizeof out), 0);
  assert_non_null(strstr(out, "[]"));
  const char *bad[] = {"alarms", "list", "--kind", "radar", "--pg", env.conninfo, NULL};
  assert_int_equal(run_cli(bad, out, sizeof out), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alarm_stored_before_ack),
      cmocka_unit_test(test_fatigue_alarm_violation),
      cmocka_unit_test(test_coverage_report),
      cmocka_unit_test(test_sim_device_trucks),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
