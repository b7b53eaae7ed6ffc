/* haulwatch web --pg-read: the read routes query the replica, everything else the primary. A
 * second database stands in for the streaming replica and holds different data (the same
 * violation id with another plate, other vehicles and zones), so each answer shows which database
 * it was read from: lists, a violation, the vehicle list, the summary and the zones come from
 * the "replica"; the login and its session, and a violation's state change, go to the primary
 * (the replica stand-in has no such user, and its violation stays open). A --pg-read that cannot
 * be reached at start is refused (exit 1), as a wrong --pg is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "webclient.h"

static hw_test_env env;
static char replica[512];
static PGconn *rdb;
static int wport;
static wc_resp R;

static void seed(PGconn *db, const char *plate, const char *tid, const char *zone) {
  char q[1024];
  snprintf(q, sizeof q,
           "INSERT INTO violations (kind, episode_key, terminal_id, plate, region, started_at) "
           "VALUES ('speeding', 'k1', '%s', '%s', '320100', now() - interval '1 hour')",
           tid, plate);
  hw_test_pg_scalar(db, q);
  snprintf(q, sizeof q,
           "INSERT INTO vehicles (terminal_id, plate, plate_colour, class_code, region) VALUES "
           "('%s', '%s', 2, (SELECT min(code) FROM vehicle_classes), '320100')", tid, plate);
  hw_test_pg_scalar(db, q);
  snprintf(q, sizeof q,
           "INSERT INTO zones (name, kind, limit_kmh, geom) VALUES ('%s', 'speed_limit', 60, "
           "ST_Multi(ST_GeomFromText('POLYGON((118 32, 118.1 32, 118.1 32.1, 118 32.1, 118 32))', 4326)))",
           zone);
  hw_test_pg_scalar(db, q);
}

static int setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_test_web_read");
  hw_test_fresh_db("hw_test_web_read_replica", replica, sizeof replica);
  rdb = hw_test_pg_connect(replica);
  seed(env.db, "PRIMARY-A1", "tprimary", "zone-on-primary");
  seed(rdb, "REPLICA-B1", "treplica", "zone-on-replica");
  setenv("HAULWATCH_PG", env.conninfo, 1);
  wc_user_add("admin", "admin", "000000", "admin-pw");
  wport = hw_test_free_port();
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", wport);
  const char *argv[] = {"web", "--listen", listen, "--pg", env.conninfo, "--pg-read", replica,
                        "--redis", env.redis_addr, "--pg-pool", "2", NULL};
  env.daemon_pid = hw_test_spawn(argv, "test_web_read.web.log");
  wc_wait_ready(wport, &R);
  /* Readiness is the primary's: the replica's connections may come up a moment later. */
  for (int i = 0; i < 200 && !strstr(R.body, "\"postgres_read\":\"ok\""); i++) {
    usleep(50 * 1000);
    wc_request(wport, "GET", "/readyz", NULL, NULL, 0, &R);
  }
  assert_non_null(strstr(R.body, "\"postgres_read\":\"ok\""));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  PQfinish(rdb);
  hw_test_env_down(&env);
  free(R.body);
  return 0;
}

static void get(const char *cookie, const char *path) {
  wc_request(wport, "GET", path, cookie, NULL, 0, &R);
}

static void test_reads_and_writes(void **state) {
  (void)state;
  char cookie[256];
  /* The user exists on the primary only: the login is checked there, the session written there. */
  wc_login(wport, "admin", "admin-pw", &R, cookie, sizeof cookie);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM web_sessions"), 1);
  assert_int_equal(hw_test_pg_scalar(rdb, "SELECT count(*) FROM web_sessions"), 0);
  get(cookie, "/api/v1/me"); /* the session is looked up on the primary */
  assert_int_equal(R.status, 200);

  get(cookie, "/api/v1/violations");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "REPLICA-B1"));
  assert_null(strstr(R.body, "PRIMARY-A1"));
  get(cookie, "/api/v1/violations/1");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "REPLICA-B1"));
  get(cookie, "/api/v1/vehicles");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "treplica"));
  assert_null(strstr(R.body, "tprimary"));
  get(cookie, "/api/v1/zones");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "zone-on-replica"));
  assert_null(strstr(R.body, "zone-on-primary"));
  get(cookie, "/api/v1/summary");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"vehicles\":1"));

  /* A state change is a write: on the primary, never on the replica. */
  wc_post_json(wport, cookie, "/api/v1/violations/1/transition", "{\"to\":\"notified\"}", &R);
  assert_int_equal(R.status, 200);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM violations WHERE id = 1 AND "
                                             "state = 'notified'"), 1);
  assert_int_equal(hw_test_pg_scalar(rdb, "SELECT count(*) FROM violations WHERE id = 1 AND "
                                          "state = 'open'"), 1);
  assert_int_equal(hw_test_pg_scalar(rdb, "SELECT count(*) FROM violation_audit"), 0);
  /* The admin screens read the primary (what an admin just changed must show at once). */
  get(cookie, "/api/v1/admin/users");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"admin\""));
}

static void test_unreachable_replica_refused(void **state) {
  (void)state;
  int port = hw_test_free_port();
  char listen[64], bad[128];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", hw_test_free_port());
  snprintf(bad, sizeof bad, "host=127.0.0.1 port=%d dbname=none connect_timeout=2", port);
  const char *argv[] = {"web", "--listen", listen, "--pg", env.conninfo, "--pg-read", bad,
                        "--redis", env.redis_addr, NULL};
  pid_t pid = hw_test_spawn(argv, "test_web_read.bad.log");
  assert_int_equal(hw_test_wait_exit(pid, 20000), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reads_and_writes),
      cmocka_unit_test(test_unreachable_replica_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
