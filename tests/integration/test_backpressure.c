/* Backpressure end to end, through the wiring: the pipeline reports HW_FLOW_HIGH_WATER and
 * HW_FLOW_LOW_WATER to serve, which pauses and resumes the server. With a high_water far below
 * what a flat-out simulator queues, the daemon must pause reading (logged), and every pause must
 * be followed by a resume: otherwise the simulator, which waits for an ack of every fix, would
 * time out. Every fix is stored exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define LOG "test_backpressure.daemon.log"
#define TRUCKS 20
#define FIXES 500

static hw_test_env env;

/* Lines of the daemon's log that contain what. */
static int count_lines(const char *what) {
  FILE *f = fopen(LOG, "r");
  assert_non_null(f);
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof line, f))
    n += strstr(line, what) != NULL;
  fclose(f);
  return n;
}

static void test_pauses_and_resumes(void **state) {
  (void)state;
  unlink(LOG);
  const char *daemon[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo,
                          "--redis", env.redis_addr, "--rules", "off",
                          /* minimum high_water; batches of up to 1000 rows every 200 ms */
                          "--high-water", "1000", "--low-water", "500",
                          "--batch-rows", "1000", "--batch-ms", "200", "--pg-writers", "1",
                          "--log-level", "info", NULL};
  env.daemon_pid = hw_test_spawn(daemon, LOG);
  assert_int_equal(hw_test_wait_port(env.port, 15000), 0);

  char trucks[16], fixes[16];
  snprintf(trucks, sizeof trucks, "%d", TRUCKS);
  snprintf(fixes, sizeof fixes, "%d", FIXES);
  const char *sim[] = {"--server", env.listen_addr, "--trucks", trucks, "--fixes", fixes,
                       "--interval-ms", "0", "--pg", env.conninfo, "--id-prefix", "bp",
                       "--timeout-s", "120", "--quiet", NULL};
  pid_t pid = hw_test_spawn_sim(sim, "test_backpressure.sim.log");
  /* 0: every fix acknowledged, so reading always resumed after a pause. */
  assert_int_equal(hw_test_wait_exit(pid, 150000), 0);

  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions"), TRUCKS * FIXES);
  int paused = count_lines("reading paused until PostgreSQL catches up");
  int resumed = count_lines("reading again");
  assert_true(paused >= 1);
  /* Each pause ends in one resume (the last may come after the simulator is done). */
  assert_in_range(resumed, paused - 1, paused);
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_backpressure");
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pauses_and_resumes),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
