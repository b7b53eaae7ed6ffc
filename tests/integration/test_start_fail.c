/* A start that fails part-way leaves nothing behind, the libuv way: `serve` runs in process on a
 * loop of the test's (hw_serve_run) with every start step made to fail in turn, and after each
 * failure the loop must run to completion and close (uv_loop_close() == 0: no handle left open);
 * under ASan, LeakSanitizer adds that no memory is left either.
 *
 * The steps fail through their fault points (base/fault.h): this test compiles pipeline.c and
 * serve.c again with HW_FAULT_INJECTION (tests/CMakeLists.txt) and provides hw_fault_hit, which
 * fails the Nth point reached. N counts up until a start reaches no failing point: that run must
 * start, accept a connection and stop cleanly on SIGTERM. Real failures too: a listen address in
 * use (either listener) and an unreachable PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "base/common.h"
#include "cli/cli.h"
#include "harness.h"

static hw_test_env env;
static char jt808_addr[64];

/* Fault injection state: which point fails (1-based; 0 = none), how many were reached, and the
 * names of those reached in the current run. */
static struct {
  int fail_at;
  int reached;
  char failed[64];
  char names[32][64];
} faults;

int hw_fault_hit(const char *step) {
  int n = ++faults.reached;
  if (n <= (int)HW_ARRAY_SIZE(faults.names))
    snprintf(faults.names[n - 1], sizeof faults.names[0], "%s", step);
  if (n != faults.fail_at)
    return 0;
  snprintf(faults.failed, sizeof faults.failed, "%s", step);
  return -EIO;
}

/* A run that leaves something open never ends by itself: it is stopped after this long and
 * fails (a bound against hanging, far above the second or so a run takes). */
#define RUN_DEADLINE_MS 30000
#define STOP_TICK_MS 100

/* The run that starts: after a while, proves the daemon accepts and stops it as an operator
 * would. Only when serve's SIGTERM handler is installed: SIGTERM must never reach a process that
 * would die of it (a failed start that is slow to close). */
typedef struct stopper {
  uv_timer_t timer;
  int port;
  int ticks;
  int accepted; /* a TCP connect to the listener succeeded */
  int signalled;
  int hung;     /* the deadline passed with the loop still running */
} stopper;

static void on_stop_timer(uv_timer_t *t) {
  stopper *st = t->data;
  if (++st->ticks * STOP_TICK_MS > RUN_DEADLINE_MS) {
    st->hung = 1;
    uv_stop(t->loop);
    return;
  }
  struct sigaction sa;
  assert_int_equal(sigaction(SIGTERM, NULL, &sa), 0);
  if (st->signalled || sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
    return;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)st->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* The kernel completes the handshake from the listen backlog: no need to turn the loop. */
  st->accepted = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  st->signalled = 1;
  assert_int_equal(raise(SIGTERM), 0);
}

typedef struct run_result {
  int rc;       /* hw_serve_run's exit code */
  int closed;   /* uv_loop_close() */
  int accepted, signalled, hung;
} run_result;

/* One serve on a fresh loop, with its own exit code and how the loop closed. */
static run_result run_serve(const char *listen, const char *jt808, const char *pg, int rules) {
  uv_loop_t loop;
  stopper st = {.port = env.port};
  run_result r = {0};
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_timer_init(&loop, &st.timer), 0);
  st.timer.data = &st;
  assert_int_equal(uv_timer_start(&st.timer, on_stop_timer, 500, STOP_TICK_MS), 0);
  uv_unref((uv_handle_t *)&st.timer); /* serve's own handles decide when the loop ends */
  char *argv[] = {"serve", "--listen", (char *)listen, "--jt808-listen", (char *)jt808,
                  "--pg", (char *)pg, "--redis", env.redis_addr, "--rules", rules ? "on" : "off",
                  "--stats-interval-s", "1", "--log-level", "warn",
                  /* port 0: any free one; the metrics server's start and stop are checked too */
                  "--metrics-listen", "127.0.0.1:0", NULL};
  r.rc = hw_serve_run(&loop, (int)HW_ARRAY_SIZE(argv) - 1, argv);
  r.accepted = st.accepted;
  r.signalled = st.signalled;
  r.hung = st.hung;
  /* Only the test's timer may be left: close it, then nothing else must be open. */
  uv_close((uv_handle_t *)&st.timer, NULL);
  if (!r.hung)
    (void)uv_run(&loop, UV_RUN_DEFAULT);
  r.closed = uv_loop_close(&loop);
  return r;
}

static void every_step_fails_in_turn(int rules, const char *const *expected, size_t nexpected) {
  int failures = 0;
  for (int n = 1;; n++) {
    memset(&faults, 0, sizeof faults);
    faults.fail_at = n;
    run_result r = run_serve(env.listen_addr, jt808_addr, env.conninfo, rules);
    if (faults.reached < n) {
      /* No point failed: the daemon started, accepted, and stopped on SIGTERM. */
      assert_int_equal(r.rc, 0);
      assert_false(r.hung);
      assert_true(r.signalled);
      assert_true(r.accepted);
      assert_int_equal(r.closed, 0);
      /* Every step the start path is known to have was reached, so each of them was failed in
       * one of the runs before. */
      assert_int_equal(failures, faults.reached);
      for (size_t i = 0; i < nexpected; i++) {
        int found = 0;
        for (int k = 0; k < faults.reached; k++)
          found |= strcmp(faults.names[k], expected[i]) == 0;
        if (!found)
          fail_msg("start step %s has no fault point or was not reached", expected[i]);
      }
      return;
    }
    if (r.rc != 1 || r.closed != 0 || r.hung)
      fail_msg("start step %d (%s) failed: exit code %d (want 1), uv_loop_close %s (want 0)%s", n,
               faults.failed, r.rc, r.closed ? uv_err_name(r.closed) : "0",
               r.hung ? ", the loop was still running after the deadline" : "");
    assert_false(r.signalled);
    failures++;
  }
}

static void test_every_step_fails_rules_on(void **state) {
  (void)state;
  static const char *const steps[] = {
      "serve.auth", "pipeline.pg_writer", "pipeline.redis_state", "pipeline.rules",
      "pipeline.violation_store", "pipeline.rule_store", "pipeline.violation_relay",
      "pipeline.registry_cache", "pipeline.daily_store", "pipeline.restore_rules", "serve.server", "serve.listen",
      "serve.listen_jt808", "serve.metrics"};
  every_step_fails_in_turn(1, steps, HW_ARRAY_SIZE(steps));
}

static void test_every_step_fails_rules_off(void **state) {
  (void)state;
  static const char *const steps[] = {"serve.auth", "pipeline.pg_writer", "pipeline.redis_state",
                                      "pipeline.daily_store", "serve.server", "serve.listen", "serve.listen_jt808",
                                      "serve.metrics"};
  every_step_fails_in_turn(0, steps, HW_ARRAY_SIZE(steps));
}

/* A listener on 127.0.0.1:port held by the test, so that serve's bind fails for real. */
static int hold_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 1), 0);
  return fd;
}

static void test_listen_address_in_use(void **state) {
  (void)state;
  memset(&faults, 0, sizeof faults);
  int fd = hold_port(env.port);
  run_result r = run_serve(env.listen_addr, jt808_addr, env.conninfo, 1);
  close(fd);
  assert_false(r.hung);
  assert_int_equal(r.rc, 1);
  assert_int_equal(r.closed, 0);
  assert_false(r.signalled);
}

static void test_jt808_address_in_use(void **state) {
  (void)state;
  memset(&faults, 0, sizeof faults);
  int jport = atoi(strrchr(jt808_addr, ':') + 1);
  int fd = hold_port(jport);
  /* The protobuf listener is up by then: it must be closed too. */
  run_result r = run_serve(env.listen_addr, jt808_addr, env.conninfo, 1);
  close(fd);
  assert_false(r.hung);
  assert_int_equal(r.rc, 1);
  assert_int_equal(r.closed, 0);
  assert_false(r.signalled);
}

static void test_postgres_unreachable(void **state) {
  (void)state;
  memset(&faults, 0, sizeof faults);
  char pg[128];
  snprintf(pg, sizeof pg, "host=127.0.0.1 port=%d dbname=nowhere connect_timeout=2",
           hw_test_free_port());
  run_result r = run_serve(env.listen_addr, jt808_addr, pg, 1);
  assert_int_equal(r.rc, 1);
  assert_int_equal(r.closed, 0);
  assert_int_equal(faults.reached, 0); /* refused before anything started */
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_start_fail");
  snprintf(jt808_addr, sizeof jt808_addr, "127.0.0.1:%d", hw_test_free_port());
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_step_fails_rules_on),
      cmocka_unit_test(test_every_step_fails_rules_off),
      cmocka_unit_test(test_listen_address_in_use),
      cmocka_unit_test(test_jt808_address_in_use),
      cmocka_unit_test(test_postgres_unreachable),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
