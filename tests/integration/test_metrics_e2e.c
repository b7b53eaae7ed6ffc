/* `serve --metrics-listen` end to end: /healthz, /readyz (ready, then 503 naming Redis when the
 * test's Redis stops), /metrics counters that move with real traffic, and the live exposition
 * accepted by `promtool check metrics`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "webclient.h"
#include "pbclient.h"
#include "base/common.h"
#include "base/token.h"

static hw_test_env env;
static int mport;
static char maddr[64];
static const char *logfile = "test_metrics_e2e.daemon.log";
static char tid[] = "met001";
static char token[HW_TOKEN_LEN + 1];

typedef struct http_resp {
  int status;
  char body[1 << 20];
} http_resp;

static http_resp resp;

/* One request on its own connection (Connection: close); the whole answer in resp. */
static void http_do(const char *method, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char req[256];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                   method, path);
  assert_int_equal(write(fd, req, (size_t)n), n);
  static char raw[sizeof resp.body + 4096];
  size_t len = 0;
  ssize_t k;
  while ((k = read(fd, raw + len, sizeof raw - 1 - len)) > 0)
    len += (size_t)k;
  close(fd);
  raw[len] = 0;
  assert_int_equal(sscanf(raw, "HTTP/1.1 %d", &resp.status), 1);
  char *body = strstr(raw, "\r\n\r\n");
  assert_non_null(body);
  snprintf(resp.body, sizeof resp.body, "%s", body + 4);
  /* Content-Length tells the truth */
  char *cl = strstr(raw, "Content-Length: ");
  assert_non_null(cl);
  assert_int_equal(atol(cl + 16), (long)strlen(body + 4));
}

/* The value of the sample line starting with `series ` in the last /metrics body, or -1. */
static double metric(const char *series) {
  char key[256];
  snprintf(key, sizeof key, "\n%s ", series);
  const char *p = strstr(resp.body, key);
  return p ? atof(p + strlen(key)) : -1;
}

static int wait_ready(int want_status, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    http_do("GET", "/readyz");
    if (resp.status == want_status)
      return 0;
    usleep(100000);
  }
  return -1;
}

static int group_setup(void **state) {
  hw_test_env_up(&env, "hw_it_metrics");
  hw_test_add_terminal(env.db, tid, token);
  mport = hw_test_free_port();
  snprintf(maddr, sizeof maddr, "127.0.0.1:%d", mport);
  unlink(logfile);
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--batch-ms", "20", "--metrics-listen", maddr, NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  if (hw_test_wait_port(env.port, 15000) || hw_test_wait_port(mport, 15000))
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  hw_test_env_down(&env);
  return 0;
}

static void test_health_and_ready(void **state) {
  http_do("GET", "/healthz");
  assert_int_equal(resp.status, 200);
  assert_string_equal(resp.body, "{\"status\":\"ok\"}");
  assert_int_equal(wait_ready(200, 15000), 0);
  assert_non_null(strstr(resp.body, "\"ready\":true"));
  assert_non_null(strstr(resp.body, "\"redis\":\"ok\""));
  http_do("GET", "/nope");
  assert_int_equal(resp.status, 404);
  assert_non_null(strstr(resp.body, "\"error\""));
  http_do("POST", "/metrics");
  assert_int_equal(resp.status, 405);
}

static void test_counters_move(void **state) {
  enum { N = 20 };
  http_do("GET", "/metrics");
  assert_int_equal(resp.status, 200);
  double fixes0 = metric("haulwatch_fixes_received_total{protocol=\"pb\"}");
  double rows0 = metric("haulwatch_positions_committed_total");
  double acks0 = metric("haulwatch_ack_latency_seconds_count");
  double bad0 = metric("haulwatch_bad_frames_total{protocol=\"pb\",reason=\"length\"}");
  double batches0 = metric("haulwatch_batch_commit_duration_seconds_count");
  double accepted0 = metric("haulwatch_connections_accepted_total");
  double preauth0 = metric("haulwatch_connections_limited_total{limit=\"preauth_buffer\"}");
  assert_true(fixes0 >= 0 && rows0 >= 0 && acks0 >= 0 && bad0 >= 0 && batches0 >= 0);
  assert_true(accepted0 >= 0 && preauth0 >= 0);

  pbc *c = pbc_connect(env.port);
  assert_non_null(c);
  assert_int_equal(pbc_hello(c, tid, token), 0);
  Haulwatch__V1__ServerMessage *m = pbc_recv(c, 10000);
  assert_non_null(m);
  assert_true(m->hello_result->accepted);
  haulwatch__v1__server_message__free_unpacked(m, NULL);
  static Haulwatch__V1__Fix fixes[N];
  Haulwatch__V1__Fix *fp[N];
  uint64_t base = (uint64_t)hw_now_ms() - 600 * 1000;
  for (int i = 0; i < N; i++) {
    haulwatch__v1__fix__init(&fixes[i]);
    fixes[i].seq = (uint64_t)i + 1;
    fixes[i].time_ms = base + (uint64_t)i * 1000;
    fixes[i].lat_e6 = 31000000 + i * 100;
    fixes[i].lon_e6 = 121000000;
    fixes[i].speed_dkmh = 500;
    fixes[i].status = 3;
    fp[i] = &fixes[i];
  }
  assert_int_equal(pbc_report(c, fp, N), 0);
  assert_int_equal(pbc_wait_ack(c, N, 10000), N);

  /* a client sending a broken length prefix: refused, counted by reason */
  pbc *bad = pbc_connect(env.port);
  assert_non_null(bad);
  static const uint8_t junk[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(pbc_send_raw(bad, junk, sizeof junk), 0);
  assert_int_equal(pbc_wait_eof(bad, 10000), 1);
  pbc_close(bad);
  /* one announcing a 5,000-byte frame before authenticating: over the pre-auth buffer */
  pbc *big = pbc_connect(env.port);
  assert_non_null(big);
  static const uint8_t len5000[2] = {0x88, 0x27};
  assert_int_equal(pbc_send_raw(big, len5000, sizeof len5000), 0);
  assert_int_equal(pbc_wait_eof(big, 10000), 1);
  pbc_close(big);

  http_do("GET", "/metrics");
  assert_int_equal(resp.status, 200);
  assert_true(metric("haulwatch_fixes_received_total{protocol=\"pb\"}") == fixes0 + N);
  assert_true(metric("haulwatch_positions_committed_total") >= rows0 + N);
  assert_true(metric("haulwatch_ack_latency_seconds_count") >= acks0 + 1);
  assert_true(metric("haulwatch_batch_commit_duration_seconds_count") >= batches0 + 1);
  assert_true(metric("haulwatch_bad_frames_total{protocol=\"pb\",reason=\"length\"}") == bad0 + 1);
  assert_true(metric("haulwatch_connections{protocol=\"pb\",state=\"authenticated\"}") == 1);
  assert_true(metric("haulwatch_connections_accepted_total") == accepted0 + 3);
  assert_true(metric("haulwatch_connections_limited_total{limit=\"preauth_buffer\"}") == preauth0 + 1);
  assert_true(metric("haulwatch_redis_connected") == 1);
  assert_true(metric("haulwatch_redis_lag_seconds") >= 0);
  assert_true(metric("haulwatch_redis_lag_seconds") < 10);
  assert_true(metric("haulwatch_ready") == 1);
  assert_true(metric("haulwatch_postgres_writer_connections") >= 1);
  pbc_close(c);
}

static void test_promtool_accepts(void **state) {
  /* a figure for the report, not a performance assertion: a scrape's size and time */
  int64_t t0 = hw_now_ms();
  for (int i = 0; i < 200; i++) {
    http_do("GET", "/metrics");
    assert_int_equal(resp.status, 200);
  }
  printf("metrics: %zu bytes per scrape, %.2f ms per scrape (200 scrapes, a connection each)\n",
         strlen(resp.body), (double)(hw_now_ms() - t0) / 200.0);
  wc_promtool_check(resp.body, strlen(resp.body));
}

/* Last: stops the test's Redis. */
static void test_not_ready_without_redis(void **state) {
  hw_test_stop_pid(env.redis_pid);
  env.redis_pid = 0;
  assert_int_equal(wait_ready(503, 15000), 0);
  assert_non_null(strstr(resp.body, "\"ready\":false"));
  assert_non_null(strstr(resp.body, "\"redis\":\"disconnected\""));
  assert_non_null(strstr(resp.body, "\"postgres\":\"ok\""));
  http_do("GET", "/healthz");
  assert_int_equal(resp.status, 200);
  http_do("GET", "/metrics");
  assert_true(metric("haulwatch_ready") == 0);
  assert_true(metric("haulwatch_redis_connected") == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_and_ready),
      cmocka_unit_test(test_counters_move),
      cmocka_unit_test(test_promtool_accepts),
      cmocka_unit_test(test_not_ready_without_redis),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
