/* The daemon at its descriptor limit: `serve` under an open files limit of 96 (prlimit, soft and
 * hard) lowers max_connections to what the limit leaves after its reserve (48) and says so; a
 * terminal logs in, then a flood of raw connections, three times what it can hold. The daemon
 * does not crash or stop serving: connections beyond the limit are refused on the
 * max_connections path (counted, one rate-limited line, closed), never by running out of
 * descriptors (accept_failed stays 0); its PostgreSQL connections, cut while the flood holds
 * every session slot, come back (the reserve), so the terminal already in keeps getting its
 * fixes acknowledged; once the flood goes a new terminal logs in and is served. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define HW_T_NOFILE 96
#define FLOOD 160 /* more than the daemon can hold with HW_T_NOFILE descriptors */

static hw_test_env env;
static const char *logfile = "test_open_files.daemon.log";

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  /* The kernel completes the handshake into the backlog whether or not the daemon accepts. */
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* 1 when the peer closed fd (EOF or reset) within ms. */
static int closed_within(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, ms) <= 0)
    return 0;
  char b[256];
  ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

static long stat_value(const char *key) {
  FILE *f = fopen(logfile, "r");
  char line[4096];
  long v = -1;
  assert_non_null(f);
  while (fgets(line, sizeof line, f)) {
    char *p = strstr(line, key);
    if (p && strstr(line, " stats "))
      v = atol(p + strlen(key));
  }
  fclose(f);
  return v;
}

static int count_lines(const char *what) {
  FILE *f = fopen(logfile, "r");
  char line[4096];
  int n = 0;
  assert_non_null(f);
  while (fgets(line, sizeof line, f))
    n += strstr(line, what) != NULL;
  fclose(f);
  return n;
}

static void fill_fix(Haulwatch__V1__Fix *f, uint64_t seq) {
  haulwatch__v1__fix__init(f);
  f->seq = seq;
  f->time_ms = (uint64_t)time(NULL) * 1000 - 60000 + seq * 1000;
  f->lat_e6 = 30000000;
  f->lon_e6 = 114000000 + (int32_t)seq * 10;
  f->speed_dkmh = 500;
  f->status = 3;
}

static void send_fix(pbc *c, uint64_t seq) {
  Haulwatch__V1__Fix f, *fp[1] = {&f};
  fill_fix(&f, seq);
  assert_int_equal(pbc_report(c, fp, 1), 0);
  assert_int_equal(pbc_wait_ack(c, seq, 20000), (int64_t)seq);
}

static int setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_test_open_files");
  unlink(logfile);
  char nofile[32];
  snprintf(nofile, sizeof nofile, "--nofile=%d:%d", HW_T_NOFILE, HW_T_NOFILE);
  const char *argv[] = {"prlimit", nofile, HW_BINARY, "serve", "--listen", env.listen_addr,
                        "--pg", env.conninfo, "--redis", env.redis_addr, "--rules", "false",
                        "--stats-interval-s", "1", "--max-connections", "1000", "--workers", "1", NULL};
  /* prlimit sets the limit on itself and execs the daemon: the pid is the daemon's. */
  env.daemon_pid = hw_test_exec("/usr/bin/prlimit", argv, logfile);
  assert_int_equal(hw_test_wait_port(env.port, 20000), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  hw_test_env_down(&env); /* asserts the daemon exits 0 on SIGTERM */
  return 0;
}

static void test_accept_failure(void **state) {
  (void)state;
  char tok_in[HW_TOKEN_LEN + 1], tok_after[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "inside2", tok_in);
  hw_test_add_terminal(env.db, "after2", tok_after);
  pbc *in = hw_test_pb_login(env.port, "inside2", tok_in);
  send_fix(in, 1);

  int fds[FLOOD], closed = 0;
  for (int i = 0; i < FLOOD; i++)
    fds[i] = raw_connect(env.port);
  for (int i = 0; i < FLOOD; i++)
    closed += closed_within(fds[i], i == FLOOD - 1 ? 2000 : 20);
  /* Some were refused, not all: the daemon held what its limit allows. */
  assert_true(closed > 0);
  assert_true(closed < FLOOD);
  assert_int_equal(kill(env.daemon_pid, 0), 0);
  assert_int_equal(count_lines("max_connections lowered to 48"), 1);

  /* Every daemon connection to PostgreSQL cut while the flood holds the session slots: they
   * reconnect from the reserve, and the terminal inside is still served. */
  assert_true(hw_test_pg_scalar(env.db, "SELECT count(pg_terminate_backend(pid)) FROM "
                                        "pg_stat_activity WHERE datname = current_database() AND "
                                        "pid <> pg_backend_pid()") > 0);
  send_fix(in, 2);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions WHERE terminal_id "
                                             "= 'inside2'"), 2);
  /* Counted and logged on one line (a line per 10 s at most), not one per refused peer; no
   * accept ever failed for want of a descriptor. */
  long refused = -1;
  for (int waited = 0; waited < 5000 && refused <= 0; waited += 100) {
    usleep(100 * 1000);
    refused = stat_value("refused_max_connections=");
  }
  assert_true(refused >= closed);
  assert_int_equal(stat_value("accept_failed="), 0);
  int lines = count_lines("is the limit (max_connections)");
  assert_true(lines >= 1);
  assert_true(lines <= 2);

  /* The flood goes; a new terminal gets in and is served. */
  for (int i = 0; i < FLOOD; i++)
    close(fds[i]);
  pbc *c = NULL;
  for (int tries = 0; tries < 50 && !c; tries++) {
    usleep(100 * 1000);
    c = pbc_connect(env.port);
    if (c && pbc_hello(c, "after2", tok_after) == 0) {
      Haulwatch__V1__ServerMessage *m = pbc_recv(c, 2000);
      int ok = m && m->hello_result && m->hello_result->accepted;
      if (m)
        haulwatch__v1__server_message__free_unpacked(m, NULL);
      if (ok)
        break;
    }
    if (c)
      pbc_close(c);
    c = NULL;
  }
  assert_non_null(c);
  send_fix(c, 1);
  send_fix(in, 3);
  pbc_close(c);
  pbc_close(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_failure),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
