/* The data lifecycle (sinks/retention.h, schema/021_retention.sql): daily partitions of positions
 * for days 200, 190 and 10 days ago, each with a row, and violations from three years ago and
 * from last week. `haulwatch retention run --dry-run` changes nothing and names what is due; the
 * run drops exactly the 200-day partition (retain 195), moves exactly the 190-day one and its
 * index to an archive tablespace (archive after 100 days; a tablespace in a temporary directory
 * owned by postgres), keeps the 10-day one where it was, and leaves every violation. A second
 * node holding the retention lock makes the command do nothing (exit 1). Settings below the six
 * months the rules require are refused. The daemon's own runner (serve
 * --retention-interval-s 1) drops a 300-day partition by itself and logs it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static hw_test_env env;
static char ts_dir[256], ts_name[64];

/* positions_YYYYMMDD of the UTC day `ago` days before today. */
static void part_name(PGconn *db, int ago, char *out, size_t cap) {
  hw_test_pg_text(db, out, cap,
                  "SELECT 'positions_' || to_char((now() AT TIME ZONE 'UTC')::date - %d, 'YYYYMMDD')",
                  ago);
}

/* The day's partition (made as the writer makes them) with one row at its noon. */
static void make_day(PGconn *db, int ago, const char *terminal) {
  hw_test_pg_scalarf(db, "SELECT hw_ensure_partitions((now() AT TIME ZONE 'UTC')::date - %d, 1)", ago);
  hw_test_pg_scalarf(db,
                     "WITH i AS (INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, "
                     "speed_kmh, heading, alt_m, alarm, status, odometer_km) VALUES ('%s', "
                     "((now() AT TIME ZONE 'UTC')::date - %d)::timestamp AT TIME ZONE 'UTC' + "
                     "interval '12 hours', 0, now(), 32, 118, 50, 90, 10, 0, 3, 1000) RETURNING 1) "
                     "SELECT count(*) FROM i", terminal, ago);
}

static int part_exists(PGconn *db, int ago) {
  char name[64];
  part_name(db, ago, name, sizeof name);
  return (int)hw_test_pg_scalarf(db, "SELECT count(*) FROM pg_class WHERE relname = '%s'", name);
}

/* 1 when the partition and every one of its indexes are in tablespace ts ("" = the default). */
static int part_in(PGconn *db, int ago, const char *ts) {
  char name[64];
  part_name(db, ago, name, sizeof name);
  return (int)hw_test_pg_scalarf(
      db,
      "SELECT (count(*) = 1 + (SELECT count(*) FROM pg_index WHERE indrelid = '%s'::regclass))::int "
      "FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace "
      "WHERE (c.oid = '%s'::regclass OR c.oid IN (SELECT indexrelid FROM pg_index "
      "WHERE indrelid = '%s'::regclass)) AND coalesce(t.spcname, '') = '%s'",
      name, name, name, ts);
}

static long violations_sum(PGconn *db) {
  return hw_test_pg_scalar(db, "SELECT count(*) * 1000 + coalesce(sum(id), 0) FROM violations");
}

static int run_cli(const char *const *argv, const char *log) {
  unlink(log);
  pid_t pid = hw_test_spawn(argv, log);
  return hw_test_wait_exit(pid, 60000);
}

static int log_has(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[2048];
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

static int setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_test_retention");
  /* A tablespace lives in a directory the server owns; tablespaces are cluster-wide, so the
   * name is this run's own and it is dropped at the end. */
  snprintf(ts_dir, sizeof ts_dir, "/tmp/hw_retention_ts.XXXXXX");
  assert_non_null(mkdtemp(ts_dir));
  struct passwd *pw = getpwnam("postgres");
  assert_non_null(pw);
  assert_int_equal(chown(ts_dir, pw->pw_uid, pw->pw_gid), 0);
  snprintf(ts_name, sizeof ts_name, "hw_test_archive_%d", (int)getpid());
  char sql[512];
  snprintf(sql, sizeof sql, "CREATE TABLESPACE %s LOCATION '%s'", ts_name, ts_dir);
  PGresult *r = PQexec(env.db, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  /* The tablespace must be empty before it can go: drop what was moved there. */
  PGresult *r = PQexec(env.db, "SELECT 'DROP TABLE ' || c.oid::regclass::text FROM pg_class c "
                               "JOIN pg_tablespace t ON t.oid = c.reltablespace "
                               "WHERE t.spcname LIKE 'hw_test_archive_%' AND c.relkind = 'r'");
  for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
    PQclear(PQexec(env.db, PQgetvalue(r, i, 0)));
  PQclear(r);
  char sql[256];
  snprintf(sql, sizeof sql, "DROP TABLESPACE IF EXISTS %s", ts_name);
  PQclear(PQexec(env.db, sql));
  hw_test_env_down(&env);
  rmdir(ts_dir); /* empty once the tablespace is gone (PostgreSQL removes its PG_ directory) */
  return 0;
}

static void test_cli(void **state) {
  (void)state;
  PGconn *db = env.db;
  make_day(db, 200, "T200");
  make_day(db, 190, "T190");
  make_day(db, 10, "T10");
  /* Violations of any age: three years and a day ago, and last week; none may be removed. */
  hw_test_pg_scalar(db, "WITH i AS (INSERT INTO violations (kind, episode_key, terminal_id, "
                        "started_at, ended_at) VALUES "
                        "('speeding', 'k-old', 'T200', now() - interval '3 years 1 day', "
                        "now() - interval '3 years 1 day' + interval '5 minutes'), "
                        "('fatigue', 'k-new', 'T10', now() - interval '7 days', NULL) "
                        "RETURNING 1) SELECT count(*) FROM i");
  long viol = violations_sum(db);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM violations"), 2);

  const char *log = "test_retention_cli.log";
  /* Below six months: refused before anything is read. */
  const char *low[] = {"retention", "run", "--pg", env.conninfo, "--retain-positions-days", "183",
                       NULL};
  assert_int_equal(run_cli(low, log), 2);
  assert_true(log_has(log, "six months"));

  const char *dry[] = {"retention", "run", "--dry-run", "--pg", env.conninfo,
                       "--retain-positions-days", "195", "--archive-tablespace", ts_name,
                       "--archive-after-days", "100", NULL};
  assert_int_equal(run_cli(dry, log), 0);
  char p200[64], p190[64], p10[64], want[160];
  part_name(db, 200, p200, sizeof p200);
  part_name(db, 190, p190, sizeof p190);
  part_name(db, 10, p10, sizeof p10);
  snprintf(want, sizeof want, "%s", p200);
  assert_true(log_has(log, want));
  assert_true(log_has(log, "would drop"));
  snprintf(want, sizeof want, "would move to tablespace %s", ts_name);
  assert_true(log_has(log, want));
  assert_false(log_has(log, p10));
  assert_int_equal(part_exists(db, 200) + part_exists(db, 190) + part_exists(db, 10), 3);
  assert_true(part_in(db, 190, ""));
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM positions"), 3);

  /* Another node's round in progress: this one does nothing. */
  PGconn *other = hw_test_pg_connect(env.conninfo);
  assert_int_equal(hw_test_pg_scalar(other, "SELECT pg_try_advisory_lock(7100184)::int"), 1);
  const char *run[] = {"retention", "run", "--pg", env.conninfo, "--retain-positions-days", "195",
                       "--archive-tablespace", ts_name, "--archive-after-days", "100", NULL};
  assert_int_equal(run_cli(run, log), 1);
  assert_true(log_has(log, "another node"));
  assert_int_equal(part_exists(db, 200), 1);
  PQfinish(other); /* its session lock goes with it */

  assert_int_equal(run_cli(run, log), 0);
  snprintf(want, sizeof want, "%s", p200);
  assert_true(log_has(log, want));
  assert_true(log_has(log, "dropped"));
  snprintf(want, sizeof want, "moved to tablespace %s", ts_name);
  assert_true(log_has(log, want));
  /* Exactly: 200 gone, 190 in the archive (table and index) with its row, 10 untouched. */
  assert_int_equal(part_exists(db, 200), 0);
  assert_int_equal(part_exists(db, 190), 1);
  assert_true(part_in(db, 190, ts_name));
  assert_int_equal(part_exists(db, 10), 1);
  assert_true(part_in(db, 10, ""));
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM positions WHERE terminal_id = 'T200'"), 0);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM positions WHERE terminal_id = 'T190'"), 1);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM positions WHERE terminal_id = 'T10'"), 1);
  assert_int_equal(violations_sum(db), viol);
  /* The archived day still takes a late fix (it is an ordinary partition, elsewhere on disk). */
  hw_test_pg_scalarf(db, "WITH i AS (INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, "
                         "lon, speed_kmh, heading, alt_m, alarm, status, odometer_km) VALUES "
                         "('T190b', ((now() AT TIME ZONE 'UTC')::date - 190)::timestamp AT TIME "
                         "ZONE 'UTC' + interval '13 hours', 0, now(), 32, 118, 50, 90, 10, 0, 3, 1) "
                         "RETURNING 1) SELECT count(*) FROM i");
  assert_int_equal(hw_test_pg_scalarf(db, "SELECT count(*) FROM %s", p190), 2);

  /* A second run finds nothing due. */
  assert_int_equal(run_cli(run, log), 0);
  assert_true(log_has(log, "0 partitions dropped or moved"));
}

static void test_daemon(void **state) {
  (void)state;
  PGconn *db = env.db;
  make_day(db, 300, "T300");
  make_day(db, 11, "T11");
  long viol = violations_sum(db);
  const char *log = "test_retention_daemon.log";
  unlink(log);
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--rules", "false", "--retain-positions-days", "195",
                        "--retention-interval-s", "1", NULL};
  env.daemon_pid = hw_test_spawn(argv, log);
  char p300[64], sql[256];
  part_name(db, 300, p300, sizeof p300);
  snprintf(sql, sizeof sql, "SELECT (count(*) = 0)::int FROM pg_class WHERE relname = '%s'", p300);
  hw_test_pg_wait(db, "the daemon's retention round dropped the 300-day partition", sql, 20000);
  assert_int_equal(part_exists(db, 11), 1);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM positions WHERE terminal_id = 'T11'"), 1);
  assert_int_equal(violations_sum(db), viol);
  /* The line is written right after the statement returns: give it a moment to reach the file. */
  for (int i = 0; i < 100 && !log_has(log, p300); i++)
    usleep(20 * 1000);
  assert_true(log_has(log, p300));
  assert_true(log_has(log, "dropped"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cli),
      cmocka_unit_test(test_daemon),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
