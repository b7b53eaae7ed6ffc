/* JT/T 808 terminals through the daemon, against real PostgreSQL and Redis: registration and
 * authentication (and their refusals, recorded), positions acknowledged only once stored and
 * stored once, driver identity, broken frames, and the simulator end to end. The terminal side
 * is tests/integration/jt808client.c, written apart from the daemon's codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jt808client.h"
#include "pbclient.h"
#include "base/token.h"

static hw_test_env env;
static int jport; /* the daemon's JT/T 808 listener; env.port is its protobuf one */
static const char *logfile = "test_jt808.daemon.log";

/* 京A12345 in GBK */
static const uint8_t plate_gbk[] = {0xBE, 0xA9, 'A', '1', '2', '3', '4', '5'};

static void add_terminal(const char *id) {
  const char *params[1] = {id};
  /* JT/T 808 terminals need no token; the column does, so any hash will do. */
  PGresult *r = PQexecParams(env.db, "INSERT INTO terminals (terminal_id, token_hash) "
                                 "VALUES ($1, sha256(convert_to($1, 'UTF8')))",
                             1, NULL, params, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
}

static long scalar(const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  return hw_test_pg_scalar(env.db, sql);
}

/* Refusals are recorded asynchronously and never acknowledged: wait until the count is reached
 * (up to 15 s) and return the last count seen. */
static long wait_count(long want, const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  long n = hw_test_pg_scalar(env.db, sql);
  for (int i = 0; i < 750 && n < want; i++) {
    usleep(20000);
    n = hw_test_pg_scalar(env.db, sql);
  }
  return n;
}

/* Registers c's phone; returns the 0x8100 result and the code in code (>= 64 bytes). */
static int do_register(j8c *c, char *code) {
  uint8_t body[256];
  size_t n = j8c_body_register(body, c->is_2019, 1, plate_gbk, sizeof plate_gbk);
  int flow = j8c_send(c, 0x0100, body, n);
  assert_true(flow >= 0);
  j8c_msg m;
  for (;;) {
    assert_int_equal(j8c_recv(c, &m, 10000), 0);
    if (m.id == 0x8100)
      break;
  }
  assert_true(m.len >= 3);
  assert_int_equal(m.body[0] << 8 | m.body[1], flow);
  assert_string_equal(m.phone, c->phone);
  code[0] = 0;
  if (m.body[2] == 0) {
    assert_true(m.len - 3 < 64);
    memcpy(code, m.body + 3, m.len - 3);
    code[m.len - 3] = 0;
  }
  return m.body[2];
}

static int do_auth(j8c *c, const char *code) {
  uint8_t body[128];
  size_t n = j8c_body_auth(body, c->is_2019, code);
  int flow = j8c_send(c, 0x0102, body, n);
  assert_true(flow >= 0);
  return j8c_wait_response(c, (uint16_t)flow, 0x0102, 10000);
}

static j8c *login(const char *phone, char *code) {
  j8c *c = j8c_connect(jport, phone);
  assert_non_null(c);
  assert_int_equal(do_register(c, code), 0);
  assert_int_equal(do_auth(c, code), 0);
  return c;
}

/* Fixes are dated yesterday in China (GMT+8): recent enough to be trusted (the daemon flags fixes
 * days old or in the future and keeps them out of the latest state), whatever the hour now. */
static int day_yy, day_mo, day_dd;

static void pick_day(void) {
  time_t t = time(NULL) + 8 * 3600 - 86400;
  struct tm tm;
  gmtime_r(&t, &tm);
  day_yy = tm.tm_year % 100;
  day_mo = tm.tm_mon + 1;
  day_dd = tm.tm_mday;
}

/* A fix at hh:mm:ss GMT+8 on that day. */
static j8c_loc loc_at(int hh, int mm, int ss) {
  j8c_loc l = {.status = 0x3, .lat_e6 = 30500000, .lon_e6 = 114250000, .alt_m = 45,
               .speed_dkmh = 655, .heading = 271, .yy = day_yy, .mo = day_mo, .dd = day_dd,
               .hh = hh, .mi = mm, .ss = ss, .has_odometer = 1, .odometer_hm = 12345};
  return l;
}

/* The same instant in UTC seconds: the clock reading minus 8 hours. */
static long epoch_of(int hh, int mm, int ss) {
  struct tm tm = {.tm_year = 100 + day_yy, .tm_mon = day_mo - 1, .tm_mday = day_dd,
                  .tm_hour = hh, .tm_min = mm, .tm_sec = ss};
  return (long)timegm(&tm) - 8 * 3600;
}

static int send_location(j8c *c, const j8c_loc *l) {
  uint8_t body[128];
  size_t n = j8c_body_location(body, l);
  int flow = j8c_send(c, 0x0200, body, n);
  assert_true(flow >= 0);
  return flow;
}

static char jlisten_addr[64];

static int start_daemon(void) {
  /* Two workers whatever the machine's cores: test_driver_identity moves a terminal between
   * them. */
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--jt808-listen", jlisten_addr,
                        "--pg", env.conninfo, "--redis", env.redis_addr, "--batch-ms", "20",
                        "--redis-flush-ms", "50", "--log-level", "debug", "--workers", "2", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  return hw_test_wait_port(env.port, 15000) || hw_test_wait_port(jport, 15000) ? -1 : 0;
}

static int group_setup(void **state) {
  (void)state;
  pick_day();
  hw_test_env_up(&env, "hw_it_jt808");
  jport = hw_test_free_port();
  snprintf(jlisten_addr, sizeof jlisten_addr, "127.0.0.1:%d", jport);
  unlink(logfile);
  return start_daemon();
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

/* Register, authenticate, report singly and in batches of both types: every ack comes only once
 * the rows are in PostgreSQL, and the values arrive converted (sign from status bits, GMT+8). */
static void test_register_authenticate_report(void **state) {
  (void)state;
  const char *phone = "013800000001";
  char code[64], want_hex[80], got[128];
  add_terminal(phone);
  j8c *c = login(phone, code);
  assert_int_equal(strlen(code), 16);

  /* Only the code's SHA-256 is stored, with what the registration said. */
  uint8_t h[HW_TOKEN_HASH_LEN];
  hw_token_hash(code, strlen(code), h);
  for (int i = 0; i < HW_TOKEN_HASH_LEN; i++)
    sprintf(want_hex + 2 * i, "%02x", h[i]);
  hw_test_pg_text(env.db, got, sizeof got, "SELECT encode(jt808_auth_hash, 'hex') FROM terminals WHERE terminal_id = '%s'", phone);
  assert_string_equal(got, want_hex);
  hw_test_pg_text(env.db, got, sizeof got, "SELECT jt808_plate || '/' || jt808_plate_colour || '/' || jt808_version "
                              "FROM terminals WHERE terminal_id = '%s'", phone);
  assert_string_equal(got, "京A12345/1/2013");

  /* South and west from status bits 2 and 3; 08:00:00 GMT+8 is 00:00:00 UTC. Good quality:
   * the time was read as what it is (a wrong zone would put it in the future or days back). */
  j8c_loc l = loc_at(8, 0, 0);
  l.status |= 0x4 | 0x8;
  l.vendor_item = 1;
  int flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 10000), 0);
  /* No waiting here: the ack promises the row is there. */
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 1);
  assert_int_equal(scalar("SELECT extract(epoch FROM ts)::bigint FROM positions WHERE terminal_id = '%s'", phone),
                   epoch_of(8, 0, 0));
  assert_int_equal(scalar("SELECT round(lat * 1e6)::bigint FROM positions WHERE terminal_id = '%s'", phone), -30500000);
  assert_int_equal(scalar("SELECT round(lon * 1e6)::bigint FROM positions WHERE terminal_id = '%s'", phone), -114250000);
  assert_int_equal(scalar("SELECT round(odometer_km * 10)::bigint FROM positions WHERE terminal_id = '%s'", phone), 12345);
  assert_int_equal(scalar("SELECT source FROM positions WHERE terminal_id = '%s'", phone), 1);
  assert_int_equal(scalar("SELECT round(speed_kmh * 10)::bigint FROM positions WHERE terminal_id = '%s'", phone), 655);
  assert_int_equal(scalar("SELECT heading + 1000 * alt_m FROM positions WHERE terminal_id = '%s'", phone), 271 + 45000);
  assert_int_equal(scalar("SELECT status FROM positions WHERE terminal_id = '%s'", phone), 0xF);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s' AND driver_id IS NULL", phone), 1);
  assert_int_equal(scalar("SELECT quality FROM positions WHERE terminal_id = '%s'", phone), 0);

  /* A normal batch of 3 and a back-fill batch of 2: one ack each, all rows there. */
  j8c_loc b[3] = {loc_at(8, 1, 0), loc_at(8, 1, 30), loc_at(8, 2, 0)};
  b[1].odometer_hm = 12350;
  uint8_t body[1024];
  size_t n = j8c_body_batch(body, 0, b, 3);
  flow = j8c_send(c, 0x0704, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0704, 10000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 4);
  assert_int_equal(scalar("SELECT round(odometer_km * 10)::bigint FROM positions WHERE terminal_id = '%s' "
                          "AND extract(epoch FROM ts)::bigint = %ld", phone, epoch_of(8, 1, 30)), 12350);
  j8c_loc bf[2] = {loc_at(7, 0, 0), loc_at(7, 0, 10)};
  n = j8c_body_batch(body, 1, bf, 2);
  flow = j8c_send(c, 0x0704, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0704, 10000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 6);
  assert_int_equal(scalar("SELECT min(extract(epoch FROM ts))::bigint FROM positions WHERE terminal_id = '%s'", phone),
                   epoch_of(7, 0, 0));

  /* Redis holds the newest by device time (08:02:00), not the last received (07:00:10). */
  redisContext *r = redisConnect("127.0.0.1", env.redis_port);
  assert_non_null(r);
  char want_ts[32];
  snprintf(want_ts, sizeof want_ts, "%ld", epoch_of(8, 2, 0) * 1000);
  int ok = 0;
  for (int tries = 0; tries < 100 && !ok; tries++) {
    redisReply *rep = redisCommand(r, "HGET %s ts_ms", hw_test_veh_key(phone));
    ok = rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, want_ts);
    freeReplyObject(rep);
    if (!ok)
      usleep(50 * 1000);
  }
  assert_true(ok);
  redisReply *rep = redisCommand(r, "HGET %s lat", hw_test_veh_key(phone));
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_true(atof(rep->str) > 30.49 && atof(rep->str) < 30.51);
  freeReplyObject(rep);
  redisFree(r);

  /* Heartbeat, then logout: answered, then closed. */
  flow = j8c_send_empty(c, 0x0002);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0002, 5000), 0);
  flow = j8c_send_empty(c, 0x0003);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0003, 5000), 0);
  assert_true(j8c_wait_eof(c, 5000));
  j8c_close(c);
}

/* The 2019 layout: 20-digit phone, 2019 register and authenticate bodies. */
static void test_2019_terminal(void **state) {
  (void)state;
  const char *phone = "00000000013800000019";
  char code[64], got[128];
  add_terminal(phone);
  j8c *c = login(phone, code);
  hw_test_pg_text(env.db, got, sizeof got, "SELECT jt808_version || '/' || jt808_model FROM terminals WHERE terminal_id = '%s'", phone);
  assert_string_equal(got, "2019/HW-808-MODEL");
  j8c_loc l = loc_at(9, 0, 0);
  int flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 10000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 1);
  j8c_close(c);
}

/* A wrong code is answered "fail", recorded, and the connection closed; the stored code still
 * works afterwards. */
static void test_wrong_auth_code(void **state) {
  (void)state;
  const char *phone = "013800000002";
  char code[64];
  add_terminal(phone);
  j8c *c = j8c_connect(jport, phone);
  assert_int_equal(do_register(c, code), 0);
  assert_int_equal(do_auth(c, "0123456789abcdef"), 1);
  assert_true(j8c_wait_eof(c, 5000));
  j8c_close(c);
  assert_int_equal(wait_count(1, "SELECT count(*) FROM auth_refusals WHERE protocol = 'jt808' AND terminal_id = '%s' "
                                 "AND reason = 'wrong auth code' AND remote_addr LIKE '127.0.0.1:%%'", phone), 1);
  c = j8c_connect(jport, phone);
  assert_int_equal(do_auth(c, code), 0);
  j8c_close(c);

  /* Never registered: refused the same way, recorded with its own reason. */
  add_terminal("013800000003");
  c = j8c_connect(jport, "013800000003");
  assert_int_equal(do_auth(c, "0123456789abcdef"), 1);
  assert_true(j8c_wait_eof(c, 5000));
  j8c_close(c);
  assert_int_equal(wait_count(1, "SELECT count(*) FROM auth_refusals WHERE terminal_id = '013800000003' "
                                 "AND reason = 'terminal never registered'"), 1);
}

static void test_unknown_terminal_register(void **state) {
  (void)state;
  char code[64], got[128];
  j8c *c = j8c_connect(jport, "013899999999");
  assert_int_equal(do_register(c, code), 4);
  /* The connection lives: a heartbeat is still answered. */
  int flow = j8c_send_empty(c, 0x0002);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0002, 5000), 0);
  j8c_close(c);
  assert_int_equal(wait_count(1, "SELECT count(*) FROM auth_refusals WHERE terminal_id = '013899999999'"), 1);
  hw_test_pg_text(env.db, got, sizeof got, "SELECT protocol || '/' || claimed_plate || '/' || reason FROM auth_refusals "
                              "WHERE terminal_id = '013899999999'");
  assert_string_equal(got, "jt808/京A12345/registration of an unknown terminal");
}

static void test_report_before_auth(void **state) {
  (void)state;
  const char *phone = "013800000004";
  add_terminal(phone);
  j8c *c = j8c_connect(jport, phone);
  j8c_loc l = loc_at(10, 0, 0);
  int flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 5000), 1);
  j8c_close(c);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 0);
  assert_int_equal(wait_count(1, "SELECT count(*) FROM auth_refusals WHERE terminal_id = '%s' "
                                 "AND reason = 'message before authentication'", phone), 1);

  /* Heartbeats are answered before authentication, a few: a connection cannot idle forever
   * without ever authenticating. */
  c = j8c_connect(jport, phone);
  for (int i = 0; i < 5; i++) {
    flow = j8c_send_empty(c, 0x0002);
    assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0002, 5000), 0);
  }
  assert_true(j8c_send_empty(c, 0x0002) >= 0);
  assert_true(j8c_wait_eof(c, 5000));
  j8c_close(c);
}

/* Broken frames are dropped and the connection lives, up to a limit; garbage between frames is
 * skipped; unknown ids are "unsupported"; an invalid fix is a "message error" and not stored. */
static void test_bad_frames(void **state) {
  (void)state;
  const char *phone = "013800000005";
  char code[64];
  add_terminal(phone);
  j8c *c = login(phone, code);
  uint8_t body[128], out[512];
  j8c_loc l = loc_at(11, 0, 0);
  size_t n = j8c_body_location(body, &l);
  size_t fl = j8c_frame(c, 0x0200, 500, body, n, 1, out, sizeof out);
  assert_int_equal(j8c_send_raw(c, out, fl), 0);
  /* garbage, then a heartbeat split over two writes with the split inside an escape-free run */
  uint8_t junk[] = {0x01, 0x02, 0x03, 0xFF};
  assert_int_equal(j8c_send_raw(c, junk, sizeof junk), 0);
  size_t hl = j8c_frame(c, 0x0002, 501, NULL, 0, 0, out, sizeof out);
  assert_int_equal(j8c_send_raw(c, out, 5), 0);
  usleep(50000);
  assert_int_equal(j8c_send_raw(c, out + 5, hl - 5), 0);
  assert_int_equal(j8c_wait_response(c, 501, 0x0002, 5000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 0);

  int flow = j8c_send(c, 0x0F01, (const uint8_t *)"\x01\x02", 2);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0F01, 5000), 3);

  /* Latitude beyond 90 degrees (swapped with longitude), and an item running past the body. */
  l.lat_e6 = 114250000;
  l.lon_e6 = 30500000;
  flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 5000), 2);
  l = loc_at(11, 0, 5);
  l.broken_item = 1;
  flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 5000), 2);
  l = loc_at(11, 0, 10);
  flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 5000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 1);

  /* One bad frame so far; ten more and the terminal is gone. */
  for (int i = 0; i < 10; i++) {
    fl = j8c_frame(c, 0x0002, (uint16_t)(600 + i), NULL, 0, 1, out, sizeof out);
    assert_int_equal(j8c_send_raw(c, out, fl), 0);
  }
  assert_true(j8c_wait_eof(c, 5000));
  j8c_close(c);
}

/* A 0x0200 sent again (no ack seen, new connection) has the same device time: stored once. */
static void test_resent_location_stored_once(void **state) {
  (void)state;
  const char *phone = "013800000006";
  char code[64];
  add_terminal(phone);
  j8c *c = login(phone, code);
  j8c_loc l = loc_at(12, 0, 0);
  int f1 = send_location(c, &l);
  /* again at once, with its own flow: both land in the same batch */
  int f2 = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)f1, 0x0200, 10000), 0);
  assert_int_equal(j8c_wait_response(c, (uint16_t)f2, 0x0200, 10000), 0);
  j8c_close(c);
  c = j8c_connect(jport, phone);
  assert_int_equal(do_auth(c, code), 0);
  int f3 = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)f3, 0x0200, 10000), 0);
  uint8_t body[1024];
  j8c_loc b[2] = {l, loc_at(12, 0, 30)};
  size_t n = j8c_body_batch(body, 1, b, 2);
  int f4 = j8c_send(c, 0x0704, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)f4, 0x0704, 10000), 0);
  j8c_close(c);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 2);
}

/* Two different 0x0200 in one device second, the second with the emergency alarm (bit 0): both
 * acknowledged, one row, the alarm bit set, the other columns of the first. In one batch (back to
 * back, and two items of one 0x0704), across batches (the second sent once the first is
 * acknowledged, so committed), and a true resend writes nothing. Redis shows the alarm too. */
static void test_same_second_alarm_kept(void **state) {
  (void)state;
  const char *phone = "013800000808";
  char code[64];
  add_terminal(phone);
  j8c *c = login(phone, code);
  const char *key = "terminal_id = '%s' AND extract(epoch FROM ts)::bigint = %ld";

  /* Back to back: most likely one batch. 11 m apart: not a position jump. */
  j8c_loc a = loc_at(14, 0, 0), b = loc_at(14, 0, 0);
  b.alarm = 0x1;
  b.status = 0x3 | 0x1000; /* another status: the first fix's stays with its position */
  b.lat_e6 += 100;
  int fa = send_location(c, &a), fb = send_location(c, &b);
  assert_int_equal(j8c_wait_response(c, (uint16_t)fa, 0x0200, 10000), 0);
  assert_int_equal(j8c_wait_response(c, (uint16_t)fb, 0x0200, 10000), 0);
  long t0 = epoch_of(14, 0, 0);
  char where[160];
  snprintf(where, sizeof where, key, phone, t0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 1);
  assert_int_equal(scalar("SELECT alarm FROM positions WHERE %s", where), 0x1);
  assert_int_equal(scalar("SELECT status FROM positions WHERE %s", where), 0x3);
  assert_int_equal(scalar("SELECT round(lat * 1e6)::bigint FROM positions WHERE %s", where), 30500000);

  /* Two items of one 0x0704 in the same second: surely one batch. */
  j8c_loc items[2] = {loc_at(14, 0, 10), loc_at(14, 0, 10)};
  items[1].alarm = 0x1 | 0x2; /* emergency and overspeed */
  items[1].lat_e6 += 50;
  uint8_t body[1024];
  size_t n = j8c_body_batch(body, 0, items, 2);
  int fbatch = j8c_send(c, 0x0704, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)fbatch, 0x0704, 10000), 0);
  snprintf(where, sizeof where, key, phone, epoch_of(14, 0, 10));
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE %s", where), 1);
  assert_int_equal(scalar("SELECT alarm FROM positions WHERE %s", where), 0x3);
  assert_int_equal(scalar("SELECT round(lat * 1e6)::bigint FROM positions WHERE %s", where), 30500000);

  /* Across batches: the first is acknowledged (committed) before the second is sent. */
  j8c_loc d = loc_at(14, 0, 20), e = loc_at(14, 0, 20);
  d.alarm = 0x4; /* fatigue */
  e.alarm = 0x1;
  e.lat_e6 += 100;
  int fd = send_location(c, &d);
  assert_int_equal(j8c_wait_response(c, (uint16_t)fd, 0x0200, 10000), 0);
  int fe = send_location(c, &e);
  assert_int_equal(j8c_wait_response(c, (uint16_t)fe, 0x0200, 10000), 0);
  snprintf(where, sizeof where, key, phone, epoch_of(14, 0, 20));
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE %s", where), 1);
  assert_int_equal(scalar("SELECT alarm FROM positions WHERE %s", where), 0x5);
  assert_int_equal(scalar("SELECT round(lat * 1e6)::bigint FROM positions WHERE %s", where), 30500000);

  /* A true resend of the second fix: acknowledged, and the row is not written again. */
  long xmin = scalar("SELECT xmin::text::bigint FROM positions WHERE %s", where);
  int fr = send_location(c, &e);
  assert_int_equal(j8c_wait_response(c, (uint16_t)fr, 0x0200, 10000), 0);
  assert_int_equal(scalar("SELECT xmin::text::bigint FROM positions WHERE %s", where), xmin);
  assert_int_equal(scalar("SELECT alarm FROM positions WHERE %s", where), 0x5);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 3);
  j8c_close(c);

  /* The latest state (14:00:20) carries both alarms, at the first fix's position. */
  redisContext *r = redisConnect("127.0.0.1", env.redis_port);
  assert_non_null(r);
  char want_ts[32];
  snprintf(want_ts, sizeof want_ts, "%ld", epoch_of(14, 0, 20) * 1000);
  int ok = 0;
  for (int tries = 0; tries < 100 && !ok; tries++) {
    redisReply *rep = redisCommand(r, "HMGET %s ts_ms alarm lat", hw_test_veh_key(phone));
    ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
         rep->element[0]->type == REDIS_REPLY_STRING && !strcmp(rep->element[0]->str, want_ts) &&
         rep->element[1]->type == REDIS_REPLY_STRING && !strcmp(rep->element[1]->str, "5") &&
         rep->element[2]->type == REDIS_REPLY_STRING && atof(rep->element[2]->str) == 30.5;
    freeReplyObject(rep);
    if (!ok)
      usleep(50 * 1000);
  }
  redisFree(r);
  assert_true(ok);
}

/* The worker that answered phone's n-th authentication (n from 1), from the daemon's log (with
 * several workers each line names its worker); waits for the line (it is written just after the
 * answer is sent). */
static int auth_worker(const char *phone, int n) {
  char needle[64];
  snprintf(needle, sizeof needle, " terminal=%s peer=", phone);
  for (int waited = 0; waited < 10000; waited += 20) {
    FILE *f = fopen(logfile, "r");
    assert_non_null(f);
    char line[1200];
    int seen = 0, worker = -1;
    while (fgets(line, sizeof line, f))
      if (strstr(line, " jt808 ") && strstr(line, needle) && strstr(line, " authenticated (") &&
          ++seen == n) {
        const char *w = strstr(line, " worker=");
        assert_non_null(w); /* the daemon runs two workers (start_daemon) */
        worker = atoi(w + strlen(" worker="));
      }
    fclose(f);
    if (worker >= 0)
      return worker;
    usleep(20000);
  }
  fail_msg("no authentication %d of %s in %s", n, phone, logfile);
  return -1;
}

/* The driver_id stored with phone's fix at hh:mm:ss ("<null>" without one). */
static void driver_at(const char *phone, int hh, int mm, int ss, char *out, size_t cap) {
  hw_test_pg_text(env.db, out, cap, "SELECT driver_id FROM positions WHERE terminal_id = '%s' "
                                    "AND extract(epoch FROM ts)::bigint = %ld",
                  phone, epoch_of(hh, mm, ss));
}

/* Sends c's fix at hh:mm:ss, waits for its answer and checks the driver_id stored with it
 * (want; "<null>": none). */
static void fix_carries(j8c *c, const char *phone, int hh, int mm, int ss, const char *want) {
  j8c_loc l = loc_at(hh, mm, ss);
  int flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 10000), 0);
  char got[64];
  driver_at(phone, hh, mm, ss, got, sizeof got);
  assert_string_equal(got, want);
}

/* Reads until the server's 0x8702 (report your driver identity): 0, or -1 if none comes. */
static int wait_driver_request(j8c *c) {
  j8c_msg m;
  while (j8c_recv(c, &m, 5000) == 0)
    if (m.id == 0x8702)
      return m.len == 0 ? 0 : -1;
  return -1;
}

/* Sends 0x0702, the card inserted (name, certificate) or removed (inserted 0), at hh:mm:00, and
 * waits for its answer. */
static void send_card(j8c *c, int inserted, const char *name, const char *certificate, int hh,
                      int mm) {
  uint8_t body[256];
  const int t[6] = {day_yy, day_mo, day_dd, hh, mm, 0};
  size_t n = j8c_body_driver(body, inserted, name, certificate, t);
  int flow = j8c_send(c, 0x0702, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0702, 5000), 0);
}

/* Reconnects c's terminal (closing c) until the new connection lands on worker `want` (or, with
 * want -1, on another worker than `away_from`), at most 20 times; after each authentication a fix
 * at hh:mm:(attempt) is acknowledged and must carry driver_id `expect` ("<null>": none), wherever
 * the connection landed. *auths counts the authentications so far. */
static j8c *reconnect_until(j8c *c, const char *phone, const char *code, int *auths, int want,
                            int away_from, int hh, int mm, const char *expect) {
  for (int attempt = 0; attempt < 20; attempt++) {
    j8c_close(c);
    c = j8c_connect(jport, phone);
    assert_non_null(c);
    assert_int_equal(do_auth(c, code), 0);
    int w = auth_worker(phone, ++*auths);
    fix_carries(c, phone, hh, mm, attempt, expect);
    if (want >= 0 ? w == want : w != away_from)
      return c;
  }
  fail_msg("20 reconnects of %s never landed where wanted (worker %d, away from %d)", phone, want,
           away_from);
  return c;
}

/* 0x0702: fixes after the card was inserted carry its certificate number; after removal none.
 * The card stays in across reconnects, whichever of the daemon's two workers a connection lands
 * on (the kernel picks by the addresses): it follows the terminal to the other worker, and a
 * removal follows it back to the worker whose own record still names the driver. */
static void test_driver_identity(void **state) {
  (void)state;
  const char *phone = "013800000007";
  const char *card = "110101199001011234";
  char code[64];
  add_terminal(phone);
  j8c *c = login(phone, code);
  int auths = 1, first = auth_worker(phone, 1);
  send_card(c, 1, "Zhang San", card, 13, 0);
  fix_carries(c, phone, 12, 59, 0, "<null>"); /* before the card's time */
  fix_carries(c, phone, 13, 1, 0, card);

  /* The card stays in across reconnects, to the other worker too. */
  c = reconnect_until(c, phone, code, &auths, -1, first, 13, 2, card);
  int second = auth_worker(phone, auths);
  assert_int_not_equal(second, first);

  /* Removed on the second worker... */
  send_card(c, 0, NULL, NULL, 13, 5);
  fix_carries(c, phone, 13, 6, 0, "<null>");

  /* ...and back on the first, whose own record of the terminal still has the card: no driver. */
  c = reconnect_until(c, phone, code, &auths, first, -1, 13, 7, "<null>");
  j8c_close(c);
}

/* The card follows the terminal to another daemon sharing the database (schema 025): the owner
 * records each change beside its claim in terminal_owner, and the daemon that claims the terminal
 * next takes the card with the claim. Without that, the second daemon's fixes would carry no
 * driver until the terminal reported its card again. */
static void test_driver_card_between_daemons(void **state) {
  (void)state;
  const char *phone = "013800000017";
  const char *card = "110101199202025678";
  char code[64], sql[256];
  add_terminal(phone);
  j8c *c = login(phone, code);
  send_card(c, 1, "Li Si", card, 15, 0);
  fix_carries(c, phone, 15, 1, 0, card);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM terminal_owner WHERE terminal_id = '%s' AND "
                            "driver_id = '%s' AND driver_since_ms = %ld000", phone, card,
           epoch_of(15, 0, 0));
  hw_test_pg_wait(env.db, "the card beside the owner", sql, 10000);
  j8c_close(c);

  /* A second daemon on the same database and Redis: --ownership true, as several daemons need. */
  char paddr[64], jaddr[64];
  int p2 = hw_test_free_port(), j2 = hw_test_free_port();
  snprintf(paddr, sizeof paddr, "127.0.0.1:%d", p2);
  snprintf(jaddr, sizeof jaddr, "127.0.0.1:%d", j2);
  const char *argv[] = {"serve", "--listen", paddr, "--jt808-listen", jaddr, "--pg", env.conninfo,
                        "--redis", env.redis_addr, "--batch-ms", "20", "--workers", "1",
                        "--ownership", "true", "--node-name", "second", NULL};
  pid_t second = hw_test_spawn(argv, "test_jt808.second.log");
  assert_int_equal(hw_test_wait_port(j2, 15000), 0);
  c = j8c_connect(j2, phone);
  assert_non_null(c);
  assert_int_equal(do_auth(c, code), 0);
  /* The new owner asks the terminal for its card (0x8702) ... */
  assert_int_equal(wait_driver_request(c), 0);
  /* An answer that repeats the card the claim brought writes nothing: a marker put in the row
   * stays through the answer and an acknowledged fix after it (frames are handled in order, and
   * a save would be queued at once). */
  (void)scalar("UPDATE terminal_owner SET driver_id = 'marker' WHERE terminal_id = '%s'", phone);
  send_card(c, 1, "Li Si", card, 15, 0);
  fix_carries(c, phone, 15, 2, 0, card);
  usleep(500 * 1000);
  assert_int_equal(scalar("SELECT count(*) FROM terminal_owner WHERE terminal_id = '%s' AND "
                          "driver_id = 'marker'", phone), 1);
  (void)scalar("UPDATE terminal_owner SET driver_id = '%s' WHERE terminal_id = '%s'", card, phone);
  /* The first daemon no longer owns it: its records of the terminal cannot change the row. */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM terminal_owner WHERE terminal_id = '%s' AND "
                            "owner = 'second'", phone);
  assert_int_equal(hw_test_pg_scalar(env.db, sql), 1);
  j8c_close(c);

  /* ... which is what mends a card change the fence refused: here the driver changed at 15:03
   * while the terminal moved (as if read by the first daemon during the second's claim, so never
   * recorded). The next owner's record says Li Si; asked at login, the terminal says Wang Wu, and
   * from then on the fixes and the row beside the owner say so too. */
  const char *card2 = "110101199303036789";
  c = j8c_connect(jport, phone);
  assert_non_null(c);
  assert_int_equal(do_auth(c, code), 0);
  assert_int_equal(wait_driver_request(c), 0);
  send_card(c, 1, "Wang Wu", card2, 15, 3);
  fix_carries(c, phone, 15, 4, 0, card2);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM terminal_owner WHERE terminal_id = '%s' AND "
                            "owner <> 'second' AND driver_id = '%s' AND driver_since_ms = %ld000",
           phone, card2, epoch_of(15, 3, 0));
  hw_test_pg_wait(env.db, "the card the terminal reported beside the new owner", sql, 10000);
  j8c_close(c);
  assert_int_equal(hw_test_stop_pid(second), 0);
}

/* A batch sent in two sub-packages is put together and acknowledged as its last package. */
static void test_subpackaged_batch(void **state) {
  (void)state;
  const char *phone = "013800000008";
  char code[64];
  add_terminal(phone);
  j8c *c = login(phone, code);
  j8c_loc b[4] = {loc_at(14, 0, 0), loc_at(14, 0, 10), loc_at(14, 0, 20), loc_at(14, 0, 30)};
  uint8_t body[1024];
  size_t n = j8c_body_batch(body, 0, b, 4), half = n / 2;
  assert_true(j8c_send_pkg(c, 0x0704, 2, 1, body, half) >= 0);
  int flow = j8c_send_pkg(c, 0x0704, 2, 2, body + half, n - half);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0704, 10000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id = '%s'", phone), 4);
  j8c_close(c);
}

/* A message naming another phone on an authenticated connection is refused, not stored. */
static void test_other_phone_on_connection(void **state) {
  (void)state;
  char code[64];
  add_terminal("013800000009");
  add_terminal("013800000010");
  j8c *c = login("013800000009", code);
  memcpy(c->phone, "013800000010", 13);
  j8c_loc l = loc_at(15, 0, 0);
  int flow = send_location(c, &l);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 5000), 1);
  j8c_close(c);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id IN ('013800000009', '013800000010')"), 0);
}

/* Protobuf refusals land in the same table. */
static void test_pb_refusal_recorded(void **state) {
  (void)state;
  pbc *c = pbc_connect(env.port);
  assert_non_null(c);
  assert_int_equal(pbc_hello(c, "pb-nosuch", "0000"), 0);
  assert_true(pbc_wait_eof(c, 5000));
  pbc_close(c);
  assert_int_equal(wait_count(1, "SELECT count(*) FROM auth_refusals WHERE protocol = 'pb' AND terminal_id = 'pb-nosuch' "
                                 "AND reason = 'unknown terminal' AND remote_addr LIKE '127.0.0.1:%%'"), 1);
}

/* The simulator speaks JT/T 808 end to end: registration, authentication, single reports and
 * batches, every fix acknowledged and stored exactly once. */
static void test_sim_end_to_end(void **state) {
  (void)state;
  char server[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", jport);
  const char *argv[] = {"--protocol", "jt808", "--server", server, "--trucks", "50",
                        "--fixes", "200", "--interval-ms", "0", "--report-fixes", "20", "--id-prefix", "013810",
                        "--pg", env.conninfo, "--quiet", NULL};
  pid_t sim = hw_test_spawn_sim(argv, "test_jt808.sim.log");
  assert_int_equal(hw_test_wait_exit(sim, 240000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id LIKE '013810%%' AND source = 1"),
                   50 * 200);
  assert_int_equal(scalar("SELECT count(DISTINCT terminal_id) FROM positions WHERE terminal_id LIKE '013810%%'"), 50);
  /* Drivers come through 0x0702 and match the simulator's. */
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id LIKE '013810%%' AND driver_id IS NULL"), 0);
}

/* A terminal that lost its code registers again. The simulator provisions its terminals with the
 * device ids they register with, as a fleet is provisioned, so a second run on the same database
 * (new process, no codes) is answered 0 "matches provisioning", not 3 "already registered", and
 * its trucks log in and report. This is also what a simulated truck does when the 0x8100 to its
 * first registration comes after its login timeout. */
static void test_sim_registers_again(void **state) {
  (void)state;
  char server[64], start[2][32];
  snprintf(server, sizeof server, "127.0.0.1:%d", jport);
  long long t0 = (long long)time(NULL) * 1000 - 3600000;
  for (int run = 0; run < 2; run++) {
    snprintf(start[run], sizeof start[run], "%lld", t0 + run * 1000000LL);
    const char *argv[] = {"--protocol", "jt808", "--server", server, "--trucks", "5",
                          "--fixes", "10", "--interval-ms", "0", "--start-time-ms", start[run],
                          "--id-prefix", "013812", "--pg", env.conninfo, "--quiet", NULL};
    pid_t sim = hw_test_spawn_sim(argv, run ? "test_jt808.sim-again2.log" : "test_jt808.sim-again1.log");
    assert_int_equal(hw_test_wait_exit(sim, 120000), 0);
  }
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id LIKE '013812%%'"), 2 * 5 * 10);
  assert_int_equal(scalar("SELECT count(*) FROM terminals WHERE terminal_id LIKE '013812%%' "
                          "AND provisioned_device_id = jt808_device_id"),
                   5);
  assert_int_equal(scalar("SELECT count(*) FROM auth_refusals WHERE terminal_id LIKE '013812%%'"), 0);
}

/* The daemon dies mid-run (SIGKILL: nothing buffered is acknowledged) and comes back: the
 * terminals authenticate again with the codes they hold, send what was not acknowledged as
 * back-fill, and every fix ends up stored exactly once. */
static void test_sim_daemon_killed(void **state) {
  (void)state;
  char server[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", jport);
  const char *argv[] = {"--protocol", "jt808", "--server", server, "--trucks", "20",
                        "--fixes", "20000", "--interval-ms", "0", "--step-ms", "1000",
                        "--id-prefix", "013811", "--pg", env.conninfo, "--timeout-s", "240",
                        "--quiet", NULL};
  pid_t sim = hw_test_spawn_sim(argv, "test_jt808.sim-kill.log");
  assert_int_equal(wait_count(20000, "SELECT count(*) FROM positions WHERE terminal_id LIKE '013811%%'") >= 20000, 1);
  kill(env.daemon_pid, SIGKILL);
  assert_int_equal(hw_test_wait_exit(env.daemon_pid, 5000), 128 + SIGKILL);
  assert_int_equal(start_daemon(), 0);
  assert_int_equal(hw_test_wait_exit(sim, 240000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id LIKE '013811%%'"), 20 * 20000);
  assert_int_equal(scalar("SELECT count(DISTINCT (terminal_id, ts)) FROM positions WHERE terminal_id LIKE '013811%%'"),
                   20 * 20000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register_authenticate_report),
      cmocka_unit_test(test_2019_terminal),
      cmocka_unit_test(test_wrong_auth_code),
      cmocka_unit_test(test_unknown_terminal_register),
      cmocka_unit_test(test_report_before_auth),
      cmocka_unit_test(test_bad_frames),
      cmocka_unit_test(test_resent_location_stored_once),
      cmocka_unit_test(test_same_second_alarm_kept),
      cmocka_unit_test(test_driver_identity),
      cmocka_unit_test(test_driver_card_between_daemons),
      cmocka_unit_test(test_subpackaged_batch),
      cmocka_unit_test(test_other_phone_on_connection),
      cmocka_unit_test(test_pb_refusal_recorded),
      cmocka_unit_test(test_sim_end_to_end),
      cmocka_unit_test(test_sim_registers_again),
      cmocka_unit_test(test_sim_daemon_killed),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
