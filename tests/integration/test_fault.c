/* Faults mid-stream: the daemon killed with SIGKILL and restarted, Redis killed and restarted.
 * The simulator keeps every unacknowledged fix and sends it again; afterwards nothing it was told
 * is durable may be missing, and nothing may be stored twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static hw_test_env env;

static pid_t start_daemon(void) {
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis", env.redis_addr,
                        "--batch-ms", "20", "--stats-interval-s", "1", NULL};
  pid_t pid = hw_test_spawn(argv, "test_fault.daemon.log");
  assert_int_equal(hw_test_wait_port(env.port, 15000), 0);
  return pid;
}

static pid_t start_sim(const char *prefix, const char *trucks, const char *fixes, const char *log) {
  const char *argv[] = {"--server", env.listen_addr, "--trucks", trucks, "--fixes", fixes,
                        "--interval-ms", "0", "--pg", env.conninfo, "--id-prefix", prefix,
                        "--timeout-s", "240", "--quiet", NULL};
  return hw_test_spawn_sim(argv, log);
}

static long count_rows(const char *prefix) {
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM positions WHERE terminal_id LIKE '%s%%'", prefix);
  return hw_test_pg_scalar(env.db, sql);
}

static void wait_rows_above(const char *prefix, long n) {
  for (int i = 0; i < 600 && count_rows(prefix) <= n; i++)
    usleep(50 * 1000);
  assert_true(count_rows(prefix) > n);
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_fault");
  unlink("test_fault.daemon.log");
  env.daemon_pid = start_daemon();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

static void test_daemon_killed_mid_stream(void **state) {
  (void)state;
  enum { TRUCKS = 40, FIXES = 3000 };
  pid_t sim = start_sim("kill", "40", "3000", "test_fault.sim1.log");
  wait_rows_above("kill", 5000);
  kill(env.daemon_pid, SIGKILL);
  waitpid(env.daemon_pid, NULL, 0);
  long at_kill = count_rows("kill");
  assert_true(at_kill < TRUCKS * FIXES); /* the kill really was mid-stream */
  usleep(500 * 1000);
  env.daemon_pid = start_daemon();
  /* exit 0: every fix the simulator generated was acknowledged */
  assert_int_equal(hw_test_wait_exit(sim, 240000), 0);
  assert_int_equal(count_rows("kill"), TRUCKS * FIXES);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(DISTINCT (terminal_id, seq)) FROM positions "
                                         "WHERE terminal_id LIKE 'kill%'"), TRUCKS * FIXES);
}

static void test_redis_restarted_mid_stream(void **state) {
  (void)state;
  enum { TRUCKS = 40, FIXES = 3000 };
  pid_t sim = start_sim("rr", "40", "3000", "test_fault.sim2.log");
  wait_rows_above("rr", 5000);
  kill(env.redis_pid, SIGKILL);
  waitpid(env.redis_pid, NULL, 0);
  long before = count_rows("rr");
  /* Ingest into PostgreSQL goes on without Redis. */
  wait_rows_above("rr", before);
  usleep(500 * 1000);
  env.redis_pid = hw_test_redis_start(env.redis_port); /* empty: no persistence */
  assert_int_equal(hw_test_wait_exit(sim, 240000), 0);
  assert_int_equal(count_rows("rr"), TRUCKS * FIXES);

  /* Latest state rebuilt: every truck's hash holds its newest device time. */
  redisContext *r = redisConnect("127.0.0.1", env.redis_port);
  assert_non_null(r);
  for (int t = 1; t <= TRUCKS; t++) {
    char id[32], sql[200], want[32];
    snprintf(id, sizeof id, "rr%06d", t);
    snprintf(sql, sizeof sql,
             "SELECT (extract(epoch FROM max(ts)) * 1000)::bigint FROM positions WHERE terminal_id = '%s'", id);
    snprintf(want, sizeof want, "%ld", hw_test_pg_scalar(env.db, sql));
    int ok = 0;
    for (int tries = 0; tries < 200 && !ok; tries++) {
      redisReply *rep = redisCommand(r, "HGET %s ts_ms", hw_test_veh_key(id));
      ok = rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, want);
      freeReplyObject(rep);
      if (!ok)
        usleep(50 * 1000);
    }
    if (!ok)
      fprintf(stderr, "terminal %s: Redis does not hold ts_ms %s\n", id, want);
    assert_true(ok);
  }
  redisFree(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_daemon_killed_mid_stream),
      cmocka_unit_test(test_redis_restarted_mid_stream),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
