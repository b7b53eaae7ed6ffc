/* Identity and refusals through the daemon, against real PostgreSQL and Redis: a JT/T 808
 * registration cannot take over a terminal that holds a code (result 3) or a vehicle bound to
 * another terminal (result 1), unless it matches what `haulwatch terminal add` provisioned or an
 * operator reset it (`haulwatch terminal reset`, recorded); a refused registration changes
 * nothing stored. Refusals of both protocols are aggregated per source, visible within 3 s, and
 * expire by refusal_retention_days. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jt808client.h"
#include "pbclient.h"

static hw_test_env env;
static int jport;
static char jlisten_addr[64];
static const char *logfile = "test_identity.daemon.log";

/* A plate as a terminal sends it, in GBK: 京 is BE A9, the rest ASCII (the daemon stores UTF-8). */
#define PLATE(s) "\xBE\xA9" s
static const uint8_t *gbk(const char *s) { return (const uint8_t *)s; }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long scalar(const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  return hw_test_pg_scalar(env.db, sql);
}

/* Polls sql until it returns want or timeout_ms pass; returns the last value. */
static long wait_value(long want, int timeout_ms, const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  long n = hw_test_pg_scalar(env.db, sql);
  for (int waited = 0; waited < timeout_ms && n != want; waited += 20) {
    usleep(20000);
    n = hw_test_pg_scalar(env.db, sql);
  }
  return n;
}

/* Everything stored about a terminal, as one text: equal before and after = nothing changed. */
static void terminal_row(const char *id, char *out, size_t cap) {
  hw_test_pg_text(env.db, out, cap, "SELECT t::text FROM terminals t WHERE terminal_id = '%s'", id);
}

/* `haulwatch ARGS...`; returns its exit status. */
static int run_cli(const char *const *argv) {
  pid_t pid = hw_test_spawn(argv, "test_identity.cli.log");
  return hw_test_wait_exit(pid, 20000);
}

static void provision(const char *id, const char *device_id, const char *plate) {
  const char *argv[10] = {"terminal", "add", id, "--pg", env.conninfo};
  int n = 5;
  if (device_id) {
    argv[n++] = "--device-id";
    argv[n++] = device_id;
  }
  if (plate) {
    argv[n++] = "--plate";
    argv[n++] = plate;
  }
  argv[n] = NULL;
  assert_int_equal(run_cli(argv), 0);
}

static int do_auth(j8c *c, const char *code) {
  uint8_t body[128];
  size_t n = j8c_body_auth(body, c->is_2019, code);
  int flow = j8c_send(c, 0x0102, body, n);
  assert_true(flow >= 0);
  return j8c_wait_response(c, (uint16_t)flow, 0x0102, 10000);
}

/* A fresh connection as phone that registers (device, GBK plate): the 0x8100 result. */
static int try_register(const char *phone, const char *device, const char *plate, char *code) {
  j8c *c = j8c_connect(jport, phone);
  assert_non_null(c);
  int res = j8c_register(c, device, 1, gbk(plate), strlen(plate), code, 64);
  j8c_close(c);
  return res;
}

/* A fresh connection that authenticates with code: the 0x8001 result. */
static int try_auth(const char *phone, const char *code) {
  j8c *c = j8c_connect(jport, phone);
  assert_non_null(c);
  int res = do_auth(c, code);
  j8c_close(c);
  return res;
}

static int start_daemon(const char *retention_days) {
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--jt808-listen", jlisten_addr,
                        "--pg", env.conninfo, "--redis", env.redis_addr, "--batch-ms", "20",
                        "--refusal-retention-days", retention_days, "--log-level", "debug", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  return hw_test_wait_port(env.port, 15000) || hw_test_wait_port(jport, 15000) ? -1 : 0;
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_identity");
  jport = hw_test_free_port();
  snprintf(jlisten_addr, sizeof jlisten_addr, "127.0.0.1:%d", jport);
  unlink(logfile);
  return start_daemon("90");
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

/* Someone who knows a registered terminal's phone number (it is in every frame header) asks for
 * a code: result 3, nothing stored changes, the real terminal still authenticates. */
static void test_takeover_refused(void **state) {
  (void)state;
  const char *phone = "013800000101";
  char code[64], code2[64], before[2048], after[2048];
  provision(phone, NULL, NULL);
  assert_int_equal(try_register(phone, "T000001", PLATE("A10101"), code), 0);
  assert_int_equal(strlen(code), 16);
  terminal_row(phone, before, sizeof before);

  /* The same details, other details: a code is not given away by asking. */
  assert_int_equal(try_register(phone, "T000001", PLATE("A10101"), code2), 3);
  assert_string_equal(code2, "");
  assert_int_equal(try_register(phone, "EVIL001", PLATE("Z99999"), code2), 3);
  terminal_row(phone, after, sizeof after);
  assert_string_equal(before, after);

  assert_int_equal(try_auth(phone, code), 0);
  assert_int_equal(wait_value(1, 3000, "SELECT count(*) FROM auth_refusals WHERE protocol = 'jt808' "
                                       "AND reason = 'registration: terminal already registered' "
                                       "AND terminal_id = '%s' AND claimed_plate = '京Z99999' "
                                       "AND source = '127.0.0.1' AND remote_addr LIKE '127.0.0.1:%%'",
                              phone),
                   1);
}

/* A plate bound to another terminal (in vehicles, or provisioned) is result 1; the terminal the
 * registry binds a vehicle to must register with that vehicle's plate (else result 2). */
static void test_plate_bound_elsewhere(void **state) {
  (void)state;
  char code[64], before[2048], after[2048];
  provision("013800000111", NULL, NULL);
  provision("013800000112", NULL, NULL);
  provision("013800000113", NULL, "京C11300");
  PGresult *r = PQexec(env.db, "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region) "
                               "VALUES ('京B11100', 1, 'heavy_truck', '013800000111', '110000')");
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);

  terminal_row("013800000112", before, sizeof before);
  assert_int_equal(try_register("013800000112", "T000001", PLATE("B11100"), code), 1);
  assert_int_equal(try_register("013800000112", "T000001", PLATE("C11300"), code), 1);
  terminal_row("013800000112", after, sizeof after);
  assert_string_equal(before, after);
  assert_int_equal(scalar("SELECT count(*) FROM terminals WHERE terminal_id = '013800000112' "
                          "AND jt808_auth_hash IS NULL"), 1);

  /* The bound terminal itself: only with its vehicle's plate. */
  assert_int_equal(try_register("013800000111", "T000001", PLATE("A12345"), code), 2);
  assert_int_equal(try_register("013800000111", "T000001", PLATE("B11100"), code), 0);
  assert_int_equal(try_auth("013800000111", code), 0);

  /* Another plate is free to take. */
  assert_int_equal(try_register("013800000112", "T000001", PLATE("B11200"), code), 0);
  assert_int_equal(wait_value(1, 3000, "SELECT count(*) FROM auth_refusals WHERE protocol = 'jt808' "
                                       "AND reason = 'registration: vehicle bound to another terminal' "
                                       "AND count = 2"),
                   1);
}

/* A registration that carries the provisioned device id (and plate) re-registers a terminal
 * that holds a code: a replaced SIM card, a reflashed device. Anything else does not. */
static void test_provisioned_reregisters(void **state) {
  (void)state;
  const char *phone = "013800000121";
  char code1[64], code2[64], code[64], before[2048], after[2048];
  provision(phone, "DEV0121", "京D12100");
  assert_int_equal(scalar("SELECT count(*) FROM terminals WHERE terminal_id = '%s' AND "
                          "provisioned_device_id = 'DEV0121' AND provisioned_plate = '京D12100'", phone), 1);

  /* Nothing registered yet: a wrong device id is result 4, a wrong plate result 2. */
  terminal_row(phone, before, sizeof before);
  assert_int_equal(try_register(phone, "T000001", PLATE("D12100"), code), 4);
  assert_int_equal(try_register(phone, "DEV0121", PLATE("D99999"), code), 2);
  terminal_row(phone, after, sizeof after);
  assert_string_equal(before, after);

  assert_int_equal(try_register(phone, "DEV0121", PLATE("D12100"), code1), 0);
  assert_int_equal(try_register(phone, "DEV0121", PLATE("D12100"), code2), 0);
  assert_string_not_equal(code1, code2);
  assert_int_equal(try_auth(phone, code1), 1); /* replaced */
  assert_int_equal(try_auth(phone, code2), 0);
  assert_int_equal(scalar("SELECT count(*) FROM terminals WHERE terminal_id = '%s' AND "
                          "jt808_device_id = 'DEV0121' AND jt808_plate = '京D12100'", phone), 1);

  /* The provisioned device with another plate holds no more than a stranger. */
  terminal_row(phone, before, sizeof before);
  assert_int_equal(try_register(phone, "DEV0121", PLATE("D99999"), code), 3);
  assert_int_equal(try_register(phone, "T000001", PLATE("D12100"), code), 3);
  terminal_row(phone, after, sizeof after);
  assert_string_equal(before, after);
  assert_int_equal(try_auth(phone, code2), 0);
}

/* `haulwatch terminal reset` lets the next registration through, once, and is recorded. */
static void test_operator_reset(void **state) {
  (void)state;
  const char *phone = "013800000131";
  char code1[64], code2[64], code[64], got[256];
  provision(phone, NULL, NULL);
  assert_int_equal(try_register(phone, "T000001", PLATE("E13100"), code1), 0);
  assert_int_equal(try_register(phone, "NEW0131", PLATE("E13100"), code), 3);

  const char *no_reason[] = {"terminal", "reset", phone, "--pg", env.conninfo, "--actor", "ops", NULL};
  assert_int_equal(run_cli(no_reason), 2);
  const char *unknown[] = {"terminal", "reset", "013899990131", "--pg", env.conninfo, "--actor", "ops",
                           "--reason", "x", NULL};
  assert_int_equal(run_cli(unknown), 1);
  const char *reset[] = {"terminal", "reset", phone, "--pg", env.conninfo, "--actor", "ops-lee",
                         "--reason", "device replaced after an accident", NULL};
  assert_int_equal(run_cli(reset), 0);
  assert_int_equal(scalar("SELECT count(*) FROM terminal_resets WHERE terminal_id = '%s' AND used_at IS NULL", phone), 1);

  /* Until the new registration the old code still works. */
  assert_int_equal(try_auth(phone, code1), 0);
  assert_int_equal(try_register(phone, "NEW0131", PLATE("E13100"), code2), 0);
  assert_int_equal(try_auth(phone, code2), 0);
  assert_int_equal(try_auth(phone, code1), 1);
  hw_test_pg_text(env.db, got, sizeof got, "SELECT actor || '/' || reason || '/' || (at <= used_at)::text || '/' || "
                              "(used_by LIKE '127.0.0.1:%%')::text FROM terminal_resets WHERE terminal_id = '%s'",
             phone);
  assert_string_equal(got, "ops-lee/device replaced after an accident/true/true");
  /* Used once. */
  assert_int_equal(try_register(phone, "NEW0131", PLATE("E13100"), code), 3);
  assert_int_equal(scalar("SELECT count(*) FROM terminals WHERE terminal_id = '%s' AND jt808_device_id = 'NEW0131'",
                          phone), 1);
}

/* A flood of refused attempts from one address, with random claimed ids, is one row per reason
 * with its count, written within 3 s. */
static void test_refusals_aggregated(void **state) {
  (void)state;
  const int n = 40;
  char code[64], id[16], got[256];
  const char *phone = "013800000141";
  provision(phone, NULL, NULL);
  assert_int_equal(try_register(phone, "T000001", PLATE("F14100"), code), 0);
  /* Earlier tests' attempts of the same reasons from 127.0.0.1 are in the rows already. */
  usleep(1500 * 1000);
  long taken0 = scalar("SELECT coalesce(sum(count), 0) FROM auth_refusals WHERE reason = "
                       "'registration: terminal already registered' AND source = '127.0.0.1'");
  long unknown0 = scalar("SELECT coalesce(sum(count), 0) FROM auth_refusals WHERE reason = "
                         "'registration of an unknown terminal' AND source = '127.0.0.1'");
  long rows0 = scalar("SELECT count(*) FROM auth_refusals");

  j8c *c = j8c_connect(jport, phone);
  assert_non_null(c);
  srand((unsigned)time(NULL));
  for (int i = 0; i < n; i++) {
    /* Two strikes per attempt, and more than ten close a connection: a new one every four. */
    if (i % 4 == 0) {
      j8c_close(c);
      c = j8c_connect(jport, phone);
      assert_non_null(c);
    }
    memcpy(c->phone, phone, 13);
    assert_int_equal(j8c_register(c, "T000001", 1, gbk(PLATE("F14100")), 8, code, sizeof code), 3);
    snprintf(id, sizeof id, "0139%08d", rand() % 100000000);
    memcpy(c->phone, id, 13);
    assert_int_equal(j8c_register(c, "T000001", 1, gbk(PLATE("F14100")), 8, code, sizeof code), 4);
  }
  j8c_close(c);
  int64_t t0 = now_ms();
  assert_int_equal(wait_value(taken0 + n, 3000, "SELECT coalesce(sum(count), 0) FROM auth_refusals WHERE reason = "
                                                 "'registration: terminal already registered' AND source = '127.0.0.1'"),
                   taken0 + n);
  assert_int_equal(wait_value(unknown0 + n, 3000, "SELECT coalesce(sum(count), 0) FROM auth_refusals WHERE reason = "
                                                   "'registration of an unknown terminal' AND source = '127.0.0.1'"),
                   unknown0 + n);
  assert_true(now_ms() - t0 < 3000);
  /* One row each, whatever the ids claimed; at most two new rows in all. */
  assert_int_equal(scalar("SELECT count(*) FROM auth_refusals WHERE source = '127.0.0.1' AND reason IN "
                          "('registration: terminal already registered', 'registration of an unknown terminal')"),
                   2);
  assert_true(scalar("SELECT count(*) FROM auth_refusals") <= rows0 + 2);
  /* The row keeps the first and last time and the last claim. */
  hw_test_pg_text(env.db, got, sizeof got, "SELECT (first_at < at)::text || '/' || (terminal_id = '%s')::text || '/' || "
                              "(terminal_id LIKE '0139%%')::text FROM auth_refusals WHERE source = '127.0.0.1' "
                              "AND reason = 'registration of an unknown terminal'", id);
  assert_string_equal(got, "true/true/true");
}

/* The protobuf side records a Report or a Heartbeat sent before any Hello. */
static void test_pb_before_hello(void **state) {
  (void)state;
  const char *q = "SELECT coalesce(sum(count), 0) FROM auth_refusals WHERE protocol = 'pb' "
                  "AND reason = 'message before Hello' AND source = '127.0.0.1' AND terminal_id IS NULL";
  long before = scalar("%s", q);
  pbc *c = pbc_connect(env.port);
  assert_non_null(c);
  Haulwatch__V1__Fix f = HAULWATCH__V1__FIX__INIT, *fp[1] = {&f};
  f.seq = 1;
  assert_int_equal(pbc_report(c, fp, 1), 0);
  assert_true(pbc_wait_eof(c, 5000));
  pbc_close(c);

  c = pbc_connect(env.port);
  assert_non_null(c);
  Haulwatch__V1__Heartbeat hb = HAULWATCH__V1__HEARTBEAT__INIT;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT;
  m.heartbeat = &hb;
  assert_int_equal(pbc_send(c, &m), 0);
  assert_true(pbc_wait_eof(c, 5000));
  pbc_close(c);
  assert_int_equal(wait_value(before + 2, 3000, "%s", q), before + 2);
}

/* Rows whose last attempt is older than refusal_retention_days are deleted by the daemon (at
 * start, then every 10 minutes); newer ones stay. */
static void test_refusals_expire(void **state) {
  (void)state;
  PGresult *r = PQexec(env.db,
                       "INSERT INTO auth_refusals (protocol, source, remote_addr, reason, count, first_at, at) VALUES "
                       "('pb', '192.0.2.1', '192.0.2.1:4000', 'unknown terminal', 7, now() - interval '40 days', now() - interval '31 days'),"
                       "('pb', '192.0.2.2', '192.0.2.2:4000', 'unknown terminal', 3, now() - interval '40 days', now() - interval '29 days')");
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  assert_int_equal(scalar("SELECT count(*) FROM auth_refusals WHERE source LIKE '192.0.2.%%'"), 2);
  /* The running daemon keeps 90 days; restarted with 30 it drops the 31-day-old row. */
  kill(env.daemon_pid, SIGTERM);
  assert_int_equal(hw_test_wait_exit(env.daemon_pid, 15000), 0);
  assert_int_equal(scalar("SELECT count(*) FROM auth_refusals WHERE source LIKE '192.0.2.%%'"), 2);
  assert_int_equal(start_daemon("30"), 0);
  assert_int_equal(wait_value(0, 5000, "SELECT count(*) FROM auth_refusals WHERE source = '192.0.2.1'"), 0);
  assert_int_equal(scalar("SELECT count(*) FROM auth_refusals WHERE source = '192.0.2.2' AND count = 3"), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_takeover_refused),
      cmocka_unit_test(test_plate_bound_elsewhere),
      cmocka_unit_test(test_provisioned_reregisters),
      cmocka_unit_test(test_operator_reset),
      cmocka_unit_test(test_refusals_aggregated),
      cmocka_unit_test(test_pb_before_hello),
      cmocka_unit_test(test_refusals_expire),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
