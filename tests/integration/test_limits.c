/* Limits on unauthenticated peers (issue 7, section 1), both protocols, against the daemon:
 * the authentication deadline (a trickle of bytes does not extend it; an authenticated terminal
 * that heartbeats outlives it), the pre-authentication buffer, the per-source limit (another
 * address is still served), the overall limit (the oldest makes room), and the counters and
 * rate-limited log lines that report them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jt808client.h"
#include "pbclient.h"
#include "base/token.h"

enum {
  AUTH_S = 3,        /* --auth-timeout-s */
  PREAUTH = 512,     /* --preauth-buffer */
  PER_SOURCE = 5,    /* --max-unauth-per-source */
  MAX_UNAUTH = 8,    /* --max-unauth */
  LOG_WINDOW_MS = 10000,
};

static hw_test_env env;
static int jport;
static char jlisten_addr[64];
static const char *logfile = "test_limits.daemon.log";
static int64_t first_source_refusal_ms;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A TCP connection to 127.0.0.1:port from address `from` (NULL: the default, 127.0.0.1). */
static int raw_connect(int port, const char *from) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  if (from) {
    struct sockaddr_in b = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, from, &b.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&b, sizeof b), 0);
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static pbc *pbc_from_fd(int fd) {
  pbc *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->fd = fd;
  return c;
}

static void send_all(int fd, const void *p, size_t n) {
  assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* 1 when the server closed fd within ms (whatever it sent first), 0 when it is still open. */
static int closed_within(int fd, int ms) {
  int64_t end = mono_ms() + ms;
  for (;;) {
    int left = (int)(end - mono_ms());
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, left) <= 0)
      return 0;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return 1;
  }
}

static pbc *pb_login(const char *id) {
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, id, token);
  return hw_test_pb_login(env.port, id, token);
}

static void pb_heartbeat(pbc *c) {
  Haulwatch__V1__Heartbeat hb = HAULWATCH__V1__HEARTBEAT__INIT;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT;
  m.heartbeat = &hb;
  assert_int_equal(pbc_send(c, &m), 0);
}

/* ---- the daemon's log ---- */

/* The value of `key` (e.g. "refused_per_source=") in the last "stats" line that has it, -1 if none. */
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

/* Waits (stats every second) until the counter reads want; returns what it read last. */
static long wait_stat(const char *key, long want) {
  long v = -1;
  for (int waited = 0; waited < 5000; waited += 100) {
    if ((v = stat_value(key)) == want)
      return v;
    usleep(100 * 1000);
  }
  return v;
}

/* Waits for the next stats line and returns the counter's value (-1: none). */
static long stat_now(const char *key) {
  usleep(1300 * 1000);
  return stat_value(key);
}

/* Lines of the daemon's log that contain what and also (unless NULL) and_what. */
static int count_lines2(const char *what, const char *and_what) {
  FILE *f = fopen(logfile, "r");
  char line[4096];
  int n = 0;
  assert_non_null(f);
  while (fgets(line, sizeof line, f))
    n += strstr(line, what) != NULL && (!and_what || strstr(line, and_what) != NULL);
  fclose(f);
  return n;
}

static int count_lines(const char *what) { return count_lines2(what, NULL); }

/* ---- tests ---- */

/* One byte a second does not keep an unauthenticated connection open past the deadline. */
static void test_pb_trickle_closed_at_deadline(void **state) {
  (void)state;
  long before = stat_now("closed_auth_timeout=");
  int fd = raw_connect(env.port, NULL);
  int64_t opened = mono_ms();
  uint8_t b = 0x40; /* a length prefix of 64, then payload bytes, one a second */
  int closed = 0;
  for (int i = 0; i < 3 * AUTH_S && !closed; i++) {
    send_all(fd, &b, 1);
    b = 0x0a;
    closed = closed_within(fd, 1000);
  }
  int64_t took = mono_ms() - opened;
  assert_true(closed);
  assert_true(took >= AUTH_S * 1000 - 100);
  assert_true(took <= AUTH_S * 1000 + 2000);
  close(fd);
  assert_int_equal(wait_stat("closed_auth_timeout=", before + 1), before + 1);
}

static void test_jt808_trickle_closed_at_deadline(void **state) {
  (void)state;
  long before = stat_now("closed_auth_timeout=");
  int fd = raw_connect(jport, NULL);
  int64_t opened = mono_ms();
  uint8_t b = 0x7e; /* a frame's start, then one byte of it a second */
  int closed = 0;
  for (int i = 0; i < 3 * AUTH_S && !closed; i++) {
    send_all(fd, &b, 1);
    b = 0x01;
    closed = closed_within(fd, 1000);
  }
  int64_t took = mono_ms() - opened;
  assert_true(closed);
  assert_true(took >= AUTH_S * 1000 - 100);
  assert_true(took <= AUTH_S * 1000 + 2000);
  close(fd);
  assert_int_equal(wait_stat("closed_auth_timeout=", before + 1), before + 1);
}

/* Authenticated terminals that heartbeat live on past the deadline, on both protocols, and an
 * authenticated protobuf terminal may send frames larger than the pre-authentication buffer. */
static void test_authenticated_heartbeat_survives(void **state) {
  (void)state;
  pbc *c = pb_login("lim-pb-1");
  const char *phone = "013900000001";
  const char *params[1] = {phone};
  PGresult *r = PQexecParams(env.db, "INSERT INTO terminals (terminal_id, token_hash) "
                                 "VALUES ($1, sha256(convert_to($1, 'UTF8')))",
                             1, NULL, params, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  j8c *j = j8c_connect(jport, phone);
  assert_non_null(j);
  uint8_t body[256];
  static const uint8_t plate_gbk[] = {0xBE, 0xA9, 'B', '1', '2', '3', '4', '5'};
  int flow = j8c_send(j, 0x0100, body, j8c_body_register(body, 0, 1, plate_gbk, sizeof plate_gbk));
  assert_true(flow >= 0);
  j8c_msg m;
  do
    assert_int_equal(j8c_recv(j, &m, 10000), 0);
  while (m.id != 0x8100);
  assert_true(m.len > 3);
  assert_int_equal(m.body[2], 0);
  char code[64];
  memcpy(code, m.body + 3, m.len - 3);
  code[m.len - 3] = 0;
  flow = j8c_send(j, 0x0102, body, j8c_body_auth(body, 0, code));
  assert_int_equal(j8c_wait_response(j, (uint16_t)flow, 0x0102, 10000), 0);

  for (int i = 0; i < 2 * AUTH_S + 1; i++) {
    pb_heartbeat(c);
    flow = j8c_send_empty(j, 0x0002);
    assert_int_equal(j8c_wait_response(j, (uint16_t)flow, 0x0002, 5000), 0);
    usleep(1000 * 1000);
  }
  /* Still served, with a report far larger than PREAUTH bytes. */
  enum { N = 60 };
  static Haulwatch__V1__Fix fx[N];
  Haulwatch__V1__Fix *fp[N];
  uint64_t ts = (uint64_t)hw_now_ms() - 3600 * 1000;
  for (int i = 0; i < N; i++) {
    haulwatch__v1__fix__init(&fx[i]);
    fx[i].seq = (uint64_t)i + 1;
    fx[i].time_ms = ts + (uint64_t)i * 1000;
    fx[i].lat_e6 = 30000000 + i;
    fx[i].lon_e6 = 114000000;
    fx[i].status = 3;
    fp[i] = &fx[i];
  }
  Haulwatch__V1__Report rep = HAULWATCH__V1__REPORT__INIT;
  rep.n_fixes = N;
  rep.fixes = fp;
  Haulwatch__V1__ClientMessage cm = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  cm.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT;
  cm.report = &rep;
  assert_true(haulwatch__v1__client_message__get_packed_size(&cm) > PREAUTH);
  assert_int_equal(pbc_send(c, &cm), 0);
  assert_int_equal(pbc_wait_ack(c, N, 10000), N);
  flow = j8c_send_empty(j, 0x0002);
  assert_int_equal(j8c_wait_response(j, (uint16_t)flow, 0x0002, 5000), 0);
  pbc_close(c);
  j8c_close(j);
}

static void test_pb_preauth_buffer(void **state) {
  (void)state;
  long before = stat_now("closed_preauth_buffer=");
  /* A frame announced one byte larger than the buffer: refused before any of it is held. */
  pbc *c = pbc_from_fd(raw_connect(env.port, NULL));
  uint8_t prefix[2] = {(uint8_t)((PREAUTH + 1) | 0x80), (uint8_t)((PREAUTH + 1) >> 7)};
  send_all(c->fd, prefix, sizeof prefix);
  Haulwatch__V1__ServerMessage *m = pbc_recv(c, 5000);
  assert_non_null(m);
  assert_int_equal(m->msg_case, HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR);
  assert_int_equal(m->error->code, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED);
  haulwatch__v1__server_message__free_unpacked(m, NULL);
  assert_true(closed_within(c->fd, 2000));
  pbc_close(c);
  /* Within the buffer: still open (until the deadline). */
  int fd = raw_connect(env.port, NULL);
  uint8_t partial[2 + PREAUTH - 30] = {(uint8_t)((PREAUTH - 20) | 0x80), (uint8_t)((PREAUTH - 20) >> 7)};
  send_all(fd, partial, sizeof partial);
  assert_false(closed_within(fd, 700));
  close(fd);
  assert_int_equal(wait_stat("closed_preauth_buffer=", before + 1), before + 1);
}

static void test_jt808_preauth_buffer(void **state) {
  (void)state;
  long before = stat_now("closed_preauth_buffer=");
  /* A frame's start and more bytes of it than the buffer holds (fewer than a frame's maximum,
   * so the deframer alone would keep them). */
  uint8_t big[1 + PREAUTH + 88];
  memset(big, 0x01, sizeof big);
  big[0] = 0x7e;
  int fd = raw_connect(jport, NULL);
  send_all(fd, big, sizeof big);
  assert_true(closed_within(fd, 2000));
  close(fd);
  /* Within the buffer: still open. */
  fd = raw_connect(jport, NULL);
  send_all(fd, big, PREAUTH - 100);
  assert_false(closed_within(fd, 700));
  close(fd);
  assert_int_equal(wait_stat("closed_preauth_buffer=", before + 1), before + 1);
}

/* PER_SOURCE unauthenticated connections from one address; the next is refused at once while
 * another address is served, and authenticated ones from the same address do not count. */
static void test_per_source_limit(void **state) {
  (void)state;
  long before = stat_now("refused_per_source=");
  int lines_before = count_lines("max_unauth_per_source");
  pbc *authed = pb_login("lim-pb-2"); /* from 127.0.0.1 too, bound: not counted */
  int fds[PER_SOURCE];
  for (int i = 0; i < PER_SOURCE; i++)
    fds[i] = raw_connect(i % 2 ? jport : env.port, NULL); /* both listeners count together */
  usleep(200 * 1000);
  for (int i = 0; i < PER_SOURCE; i++)
    assert_false(closed_within(fds[i], 10));
  /* Refused: four more, on either listener. */
  first_source_refusal_ms = mono_ms();
  for (int i = 0; i < 4; i++) {
    int fd = raw_connect(i % 2 ? jport : env.port, NULL);
    assert_true(closed_within(fd, 2000));
    close(fd);
  }
  /* Another address is still accepted. */
  int other = raw_connect(env.port, "127.0.0.2");
  assert_false(closed_within(other, 300));
  /* One of the five leaves: its address may open one again. */
  close(fds[0]);
  usleep(200 * 1000);
  fds[0] = raw_connect(env.port, NULL);
  assert_false(closed_within(fds[0], 300));
  for (int i = 0; i < PER_SOURCE; i++)
    close(fds[i]);
  close(other);
  /* The authenticated connection was never touched. */
  pb_heartbeat(authed);
  assert_false(closed_within(authed->fd, 100));
  pbc_close(authed);
  assert_int_equal(wait_stat("refused_per_source=", before + 4), before + 4);
  /* Four refusals within 10 s: one log line. */
  assert_int_equal(count_lines("max_unauth_per_source"), lines_before + 1);
}

/* MAX_UNAUTH unauthenticated connections in all, from several addresses each under its own
 * limit: a newcomer is admitted and the oldest is closed. */
static void test_max_unauth_evicts_oldest(void **state) {
  (void)state;
  long before = stat_now("evicted_unauth=");
  static const char *const from[] = {"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"};
  int fds[MAX_UNAUTH];
  for (int i = 0; i < MAX_UNAUTH; i++) {
    fds[i] = raw_connect(i % 2 ? jport : env.port, from[i % 4]);
    usleep(20 * 1000); /* a clear order of age */
  }
  usleep(200 * 1000);
  for (int i = 0; i < MAX_UNAUTH; i++)
    assert_false(closed_within(fds[i], 10));
  int newcomer = raw_connect(env.port, "127.0.0.7");
  assert_true(closed_within(fds[0], 2000));
  assert_false(closed_within(newcomer, 200));
  for (int i = 1; i < MAX_UNAUTH; i++)
    assert_false(closed_within(fds[i], 10));
  for (int i = 0; i < MAX_UNAUTH; i++)
    close(fds[i]);
  close(newcomer);
  assert_int_equal(wait_stat("evicted_unauth=", before + 1), before + 1);
  assert_true(count_lines("(max_unauth)") >= 1);
}

/* The next refusal after the log window says how many lines were left out. */
static void test_rate_limited_line_counts_suppressed(void **state) {
  (void)state;
  assert_true(first_source_refusal_ms > 0);
  int64_t wait = first_source_refusal_ms + LOG_WINDOW_MS + 500 - mono_ms();
  if (wait > 0)
    usleep((useconds_t)wait * 1000);
  int fds[PER_SOURCE];
  for (int i = 0; i < PER_SOURCE; i++)
    fds[i] = raw_connect(env.port, NULL);
  usleep(200 * 1000);
  int fd = raw_connect(env.port, NULL);
  assert_true(closed_within(fd, 2000));
  close(fd);
  for (int i = 0; i < PER_SOURCE; i++)
    close(fds[i]);
  usleep(300 * 1000);
  assert_int_equal(count_lines2("(max_unauth_per_source)", "(and 3 more like it in the last"), 1);
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_limits");
  jport = hw_test_free_port();
  snprintf(jlisten_addr, sizeof jlisten_addr, "127.0.0.1:%d", jport);
  unlink(logfile);
  char auth[16], pre[16], per[16], all[16];
  snprintf(auth, sizeof auth, "%d", AUTH_S);
  snprintf(pre, sizeof pre, "%d", PREAUTH);
  snprintf(per, sizeof per, "%d", PER_SOURCE);
  snprintf(all, sizeof all, "%d", MAX_UNAUTH);
  /* One worker: these limits are per worker (README "Workers"), and the test counts exact
   * refusals and evictions of one set of them. */
  const char *argv[] = {"serve", "--workers", "1", "--listen", env.listen_addr, "--jt808-listen", jlisten_addr,
                        "--pg", env.conninfo, "--redis", env.redis_addr, "--batch-ms", "20",
                        "--idle-timeout-s", "60", "--auth-timeout-s", auth, "--preauth-buffer",
                        pre, "--max-unauth-per-source", per, "--max-unauth", all, "--stats-interval-s", "1",
                        NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  return hw_test_wait_port(env.port, 15000) || hw_test_wait_port(jport, 15000) ? -1 : 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_per_source_limit),
      cmocka_unit_test(test_pb_trickle_closed_at_deadline),
      cmocka_unit_test(test_jt808_trickle_closed_at_deadline),
      cmocka_unit_test(test_authenticated_heartbeat_survives),
      cmocka_unit_test(test_pb_preauth_buffer),
      cmocka_unit_test(test_jt808_preauth_buffer),
      cmocka_unit_test(test_max_unauth_evicts_oldest),
      cmocka_unit_test(test_rate_limited_line_counts_suppressed),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
