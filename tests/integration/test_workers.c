/* `serve --workers 2` end to end: many protobuf terminals connect through the one port, the
 * kernel spreads them over both workers (each worker's accepted count in /metrics is above zero),
 * every fix is stored exactly once and acknowledged; a terminal's second connection closes its
 * first whichever worker either landed on (one owner per terminal); and a SIGTERM with fixes buffered on both
 * workers (batch_ms 3 s) drains both: every fix the daemon received is committed and
 * acknowledged before it exits 0, and each worker logs its own stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "pbclient.h"
#include "base/common.h"
#include "base/token.h"

enum { M = 40, K = 25, R = 12 }; /* terminals, fixes per report, terminals that reconnect */

static hw_test_env env;
static int mport;
static char maddr[64];
static const char *logfile = "test_workers.daemon.log";
static char tids[M][16];
static char tokens[M][HW_TOKEN_LEN + 1];
static pbc *conns[M];
static char body[1 << 20];
static long stored; /* fixes the tests sent and expect stored */

/* GET /metrics on its own connection; the body in `body`. */
static void scrape(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  static const char req[] = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
  static char raw[sizeof body + 4096];
  size_t len = 0;
  ssize_t k;
  while ((k = read(fd, raw + len, sizeof raw - 1 - len)) > 0)
    len += (size_t)k;
  close(fd);
  raw[len] = 0;
  assert_non_null(strstr(raw, "HTTP/1.1 200"));
  char *b = strstr(raw, "\r\n\r\n");
  assert_non_null(b);
  snprintf(body, sizeof body, "%s", b + 4);
}

static double metric(const char *series) {
  char key[256];
  snprintf(key, sizeof key, "\n%s ", series);
  const char *p = strstr(body, key);
  return p ? atof(p + strlen(key)) : -1;
}

static void send_report(pbc *c, int term, uint64_t seq0) {
  static Haulwatch__V1__Fix fixes[K];
  Haulwatch__V1__Fix *fp[K];
  uint64_t base = (uint64_t)hw_now_ms() - 3600 * 1000;
  for (int i = 0; i < K; i++) {
    haulwatch__v1__fix__init(&fixes[i]);
    fixes[i].seq = seq0 + (uint64_t)i;
    fixes[i].time_ms = base + (seq0 + (uint64_t)i) * 1000;
    fixes[i].lat_e6 = 31000000 + term * 1000 + i;
    fixes[i].lon_e6 = 121000000;
    fixes[i].speed_dkmh = 400;
    fixes[i].status = 3;
    fp[i] = &fixes[i];
  }
  assert_int_equal(pbc_report(c, fp, K), 0);
}

static int group_setup(void **state) {
  hw_test_env_up(&env, "hw_it_workers");
  for (int i = 0; i < M; i++) {
    snprintf(tids[i], sizeof tids[i], "wrk%03d", i);
    hw_test_add_terminal(env.db, tids[i], tokens[i]);
  }
  mport = hw_test_free_port();
  snprintf(maddr, sizeof maddr, "127.0.0.1:%d", mport);
  unlink(logfile);
  /* batch_ms 3000: while its writers are busy, a worker gathers arrivals for 3 s at most. */
  const char *argv[] = {"serve", "--workers", "2", "--listen", env.listen_addr, "--pg",
                        env.conninfo, "--redis", env.redis_addr, "--batch-ms", "3000",
                        "--metrics-listen", maddr, "--stats-interval-s", "0", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  if (hw_test_wait_port(env.port, 15000) || hw_test_wait_port(mport, 15000))
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  for (int i = 0; i < M; i++)
    if (conns[i])
      pbc_close(conns[i]);
  hw_test_env_down(&env);
  return 0;
}

/* Both workers accept, every fix of the first round is stored once and acknowledged. */
static void test_spread_and_store(void **state) {
  for (int i = 0; i < M; i++)
    conns[i] = hw_test_pb_login(env.port, tids[i], tokens[i]);
  for (int i = 0; i < M; i++)
    send_report(conns[i], i, 1);
  for (int i = 0; i < M; i++)
    assert_int_equal(pbc_wait_ack(conns[i], K, 15000), K);
  stored = M * K;
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions"), M * K);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(DISTINCT (terminal_id, ts)) FROM positions"),
                   M * K);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(DISTINCT terminal_id) FROM positions"), M);

  scrape();
  assert_true(metric("haulwatch_workers") == 2);
  double a0 = metric("haulwatch_worker_connections_accepted_total{worker=\"0\"}");
  double a1 = metric("haulwatch_worker_connections_accepted_total{worker=\"1\"}");
  printf("workers: connections accepted by worker 0: %.0f, by worker 1: %.0f\n", a0, a1);
  assert_true(a0 > 0 && a1 > 0);
  assert_true(a0 + a1 == metric("haulwatch_connections_accepted_total"));
  assert_true(metric("haulwatch_worker_connections{worker=\"0\"}") +
                  metric("haulwatch_worker_connections{worker=\"1\"}") == M);
  assert_true(metric("haulwatch_connections{protocol=\"pb\",state=\"authenticated\"}") == M);
  assert_true(metric("haulwatch_fixes_received_total{protocol=\"pb\"}") == M * K);
  double c0 = metric("haulwatch_worker_positions_committed_total{worker=\"0\"}");
  double c1 = metric("haulwatch_worker_positions_committed_total{worker=\"1\"}");
  assert_true(c0 > 0 && c1 > 0 && c0 + c1 == M * K);
  assert_true(metric("haulwatch_positions_committed_total") == M * K);
  assert_true(metric("haulwatch_redis_connected") == 1);
  assert_true(metric("haulwatch_ready") == 1);
}

/* R terminals connect a second time: each first connection is closed, whether the second landed
 * on its worker (replaced on that loop) or on the other (the owner moved: the old worker is told
 * and closes it). The new connections store and are acknowledged. */
static void test_reconnect_moves_owner(void **state) {
  pbc *fresh[R];
  for (int i = 0; i < R; i++) {
    fresh[i] = hw_test_pb_login(env.port, tids[i], tokens[i]);
    assert_int_equal(pbc_wait_eof(conns[i], 10000), 1);
    pbc_close(conns[i]);
    conns[i] = fresh[i];
  }
  for (int i = 0; i < R; i++)
    send_report(conns[i], i, 1);
  for (int i = 0; i < R; i++)
    assert_int_equal(pbc_wait_ack(conns[i], K, 15000), K);
  stored += R * K;
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions"), stored);
  scrape();
  assert_true(metric("haulwatch_connections{protocol=\"pb\",state=\"authenticated\"}") == M);
  /* with R = 12 reconnects, all landing on their old worker has odds 1 in 4096 */
  FILE *f = fopen(logfile, "r");
  assert_non_null(f);
  char line[1200];
  int moved = 0, replaced = 0;
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "taken over by a connection on another worker: closing this one"))
      moved++;
    if (strstr(line, "replaces the session from"))
      replaced++;
  }
  fclose(f);
  printf("workers: of %d reconnects, %d moved to the other worker, %d stayed\n", R, moved, replaced);
  assert_true(moved > 0);
  assert_int_equal(moved + replaced, R);
}

/* A last round, uncommitted when SIGTERM arrives: both workers drain. The test holds a lock on
 * positions that the writers' COPY waits for, so that every fix of the round is still
 * uncommitted at the signal however fast the machine (an idle writer commits at once: without
 * the lock the round was sometimes committed before the signal, on a busy machine). */
static void test_sigterm_drains_both(void **state) {
  assert_int_equal(hw_test_pg_scalar(env.db, "BEGIN"), 0);
  assert_int_equal(hw_test_pg_scalar(env.db, "LOCK TABLE positions IN SHARE MODE"), 0);
  for (int i = 0; i < M; i++)
    send_report(conns[i], i, 1 + K);
  /* every fix read by the daemon (both workers' counters), none committed yet */
  int64_t t0 = hw_now_ms();
  do {
    scrape();
    if (metric("haulwatch_fixes_received_total{protocol=\"pb\"}") == stored + M * K)
      break;
    usleep(20000);
  } while (hw_now_ms() - t0 < 10000);
  assert_true(metric("haulwatch_fixes_received_total{protocol=\"pb\"}") == stored + M * K);
  double c0 = metric("haulwatch_worker_positions_committed_total{worker=\"0\"}");
  double c1 = metric("haulwatch_worker_positions_committed_total{worker=\"1\"}");
  stored += M * K;
  printf("workers: at SIGTERM, %.0f of %ld fixes uncommitted\n", (double)stored - c0 - c1, stored);
  assert_true(c0 + c1 == stored - M * K); /* the whole round is left for the drain */
  assert_int_equal(kill(env.daemon_pid, SIGTERM), 0);
  usleep(200 * 1000); /* the signal reaches both workers while their commits wait */
  assert_int_equal(hw_test_pg_scalar(env.db, "COMMIT"), 0);
  for (int i = 0; i < M; i++) {
    assert_int_equal(pbc_wait_ack(conns[i], 2 * K, 15000), 2 * K);
    assert_int_equal(pbc_wait_eof(conns[i], 15000), 1);
  }
  assert_int_equal(hw_test_wait_exit(env.daemon_pid, 30000), 0);
  env.daemon_pid = 0;
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions"), stored);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(DISTINCT (terminal_id, ts)) FROM positions"),
                   stored);
  /* each worker logged its own stop */
  FILE *f = fopen(logfile, "r");
  assert_non_null(f);
  char line[1200];
  int stopped0 = 0, stopped1 = 0, all = 0;
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, " serve worker=0 terminal=- stopped"))
      stopped0++;
    if (strstr(line, " serve worker=1 terminal=- stopped"))
      stopped1++;
    if (strstr(line, "all 2 workers stopped"))
      all++;
  }
  fclose(f);
  assert_int_equal(stopped0, 1);
  assert_int_equal(stopped1, 1);
  assert_int_equal(all, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spread_and_store),
      cmocka_unit_test(test_reconnect_moves_owner),
      cmocka_unit_test(test_sigterm_drains_both),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
