/* The daemon end to end against real PostgreSQL and Redis: what is acknowledged is stored
 * exactly once, latest state follows device time, and bad clients only hurt themselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pbclient.h"
#include "base/token.h"
#include "protobuf/frame.h"

/* A device time an hour ago, so no quality check flags it. */
#define T0 ((uint64_t)hw_now_ms() - 3600 * 1000)

static hw_test_env env;
static const char *logfile = "test_ingest.daemon.log";

static void fill_fix(Haulwatch__V1__Fix *f, uint64_t seq, uint64_t ts, int k) {
  haulwatch__v1__fix__init(f);
  f->seq = seq;
  f->time_ms = ts;
  f->lat_e6 = 30000000 + k * 1000;
  f->lon_e6 = 114000000 + (int32_t)seq * 10;
  f->speed_dkmh = (uint32_t)(seq % 900);
  f->heading = (uint32_t)(seq % 360);
  f->alt_m = 40;
  f->status = 3;
  f->odometer_hm = (uint32_t)(1000 + seq);
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_ingest");
  unlink(logfile);
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis", env.redis_addr,
                        "--batch-ms", "20", "--idle-timeout-s", "3", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  return hw_test_wait_port(env.port, 15000);
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

/* M terminals send N fixes each, device times shuffled within each report, every report after
 * the first also repeats the previous one's last 5 fixes, and each terminal reconnects half-way and
 * resends everything since its last ack. Expect exactly M*N rows, every seq acked, and Redis
 * holding each terminal's newest fix by device time. */
static void test_exactly_once_and_latest(void **state) {
  (void)state;
  enum { M = 8, N = 400, PER = 40 };
  char ids[M][16], tokens[M][HW_TOKEN_LEN + 1];
  static Haulwatch__V1__Fix fixes[M][N];
  /* Recent device times: older ones would be flagged stale and kept out of the latest state. */
  uint64_t base = (uint64_t)hw_now_ms() - 3600 * 1000;
  for (int t = 0; t < M; t++) {
    snprintf(ids[t], sizeof ids[t], "it%03d", t);
    hw_test_add_terminal(env.db, ids[t], tokens[t]);
    for (int i = 0; i < N; i++) {
      /* Device time is a permutation: within each block of PER, the order is reversed, so later
       * seqs often carry older times (late data). */
      int block = i / PER, in = i % PER;
      uint64_t ts = base + (uint64_t)(block * PER + (PER - 1 - in)) * 1000;
      fill_fix(&fixes[t][i], (uint64_t)i + 1, ts, t);
    }
  }
  for (int t = 0; t < M; t++) {
    pbc *c = hw_test_pb_login(env.port, ids[t], tokens[t]);
    Haulwatch__V1__Fix *fp[PER + 5];
    for (int start = 0; start < N; start += PER) {
      if (start == N / 2) {
        /* Reconnect mid-stream without waiting for acks: resend the last two reports. */
        pbc_close(c);
        c = hw_test_pb_login(env.port, ids[t], tokens[t]);
        for (int r = start - 2 * PER; r < start; r += PER) {
          for (int i = 0; i < PER; i++)
            fp[i] = &fixes[t][r + i];
          assert_int_equal(pbc_report(c, fp, PER), 0);
        }
      }
      int n = 0;
      for (int i = start - 5; i < start + PER; i++)
        if (i >= 0)
          fp[n++] = &fixes[t][i];
      /* the repeated 5 go again on the same connection: refused alone (BAD_SEQ), their first
       * copies acked as usual */
      assert_int_equal(pbc_report(c, fp, (size_t)n), 0);
    }
    assert_int_equal(pbc_wait_ack(c, N, 15000), N);
    pbc_close(c);
  }
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions WHERE terminal_id LIKE 'it%'"), M * N);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(DISTINCT (terminal_id, seq)) FROM positions "
                                         "WHERE terminal_id LIKE 'it%'"), M * N);
  /* Values made it through unchanged (spot check one row). */
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT odometer_km * 10 FROM positions WHERE terminal_id = 'it003' AND seq = 77"), 1077);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT round(lat * 1e6) FROM positions WHERE terminal_id = 'it003' AND seq = 77"), 30003000);

  /* Redis: latest = newest device time, not last seq. Give the coalescing writer a moment. */
  redisContext *r = redisConnect("127.0.0.1", env.redis_port);
  assert_non_null(r);
  for (int t = 0; t < M; t++) {
    char want_ts[32], sql[256];
    snprintf(sql, sizeof sql,
             "SELECT (extract(epoch FROM max(ts)) * 1000)::bigint FROM positions WHERE terminal_id = '%s'",
             ids[t]);
    long newest = hw_test_pg_scalar(env.db, sql);
    snprintf(want_ts, sizeof want_ts, "%ld", newest);
    int ok = 0;
    for (int tries = 0; tries < 100 && !ok; tries++) {
      redisReply *rep = redisCommand(r, "HGET %s ts_ms", hw_test_veh_key(ids[t]));
      ok = rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, want_ts);
      freeReplyObject(rep);
      if (!ok)
        usleep(50 * 1000);
    }
    assert_true(ok);
    redisReply *rep = redisCommand(r, "ZSCORE %s %s", hw_test_geo_key(ids[t]), ids[t]);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    freeReplyObject(rep);
  }
  redisFree(r);
}

static void expect_error_then_eof(pbc *c, Haulwatch__V1__Error__Code code) {
  Haulwatch__V1__ServerMessage *m;
  int saw = 0;
  while ((m = pbc_recv(c, 5000))) {
    if (m->msg_case == HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR && m->error->code == code)
      saw = 1;
    haulwatch__v1__server_message__free_unpacked(m, NULL);
  }
  assert_true(saw);
  assert_true(pbc_wait_eof(c, 2000));
}

static void test_bad_token_refused(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "badtok", token);
  pbc *c = pbc_connect(env.port);
  assert_int_equal(pbc_hello(c, "badtok", "0000000000000000000000000000000000000000000000000000000000000000"), 0);
  Haulwatch__V1__ServerMessage *m = pbc_recv(c, 5000);
  assert_non_null(m);
  assert_int_equal(m->msg_case, HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT);
  assert_false(m->hello_result->accepted);
  haulwatch__v1__server_message__free_unpacked(m, NULL);
  expect_error_then_eof(c, HAULWATCH__V1__ERROR__CODE__AUTH_FAILED);
  pbc_close(c);
  /* An unknown terminal gets the same answer. */
  c = pbc_connect(env.port);
  assert_int_equal(pbc_hello(c, "nosuchterminal", token), 0);
  m = pbc_recv(c, 5000);
  assert_non_null(m);
  assert_false(m->hello_result->accepted);
  haulwatch__v1__server_message__free_unpacked(m, NULL);
  pbc_close(c);
}

static void test_report_before_hello_refused(void **state) {
  (void)state;
  pbc *c = pbc_connect(env.port);
  Haulwatch__V1__Fix f, *fp[1] = {&f};
  fill_fix(&f, 1, T0, 0);
  assert_int_equal(pbc_report(c, fp, 1), 0);
  expect_error_then_eof(c, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED);
  pbc_close(c);
}

/* A malformed frame and an oversize frame close only their own connection. */
static void test_bad_frames_close_only_their_connection(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "good1", token);
  pbc *good = hw_test_pb_login(env.port, "good1", token);
  Haulwatch__V1__Fix f, *fp[1] = {&f};
  fill_fix(&f, 1, T0, 1);
  assert_int_equal(pbc_report(good, fp, 1), 0);
  assert_int_equal(pbc_wait_ack(good, 1, 10000), 1);

  pbc *bad = pbc_connect(env.port);
  uint8_t garbage[] = {0x05, 0xff, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(pbc_send_raw(bad, garbage, sizeof garbage), 0);
  expect_error_then_eof(bad, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE);
  pbc_close(bad);

  bad = pbc_connect(env.port);
  uint8_t huge[] = {0xff, 0xff, 0xff, 0x7f}; /* 256 MiB announced */
  assert_int_equal(pbc_send_raw(bad, huge, sizeof huge), 0);
  expect_error_then_eof(bad, HAULWATCH__V1__ERROR__CODE__BAD_FRAME);
  pbc_close(bad);

  /* A frame that does not even hold a ClientMessage's first field closes its connection too. */
  char token2[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "bad2", token2);
  bad = hw_test_pb_login(env.port, "bad2", token2);
  uint8_t cut[] = {0x03, 0x12, 0x7f, 0x08}; /* report declared 127 bytes long, 1 present */
  assert_int_equal(pbc_send_raw(bad, cut, sizeof cut), 0);
  expect_error_then_eof(bad, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE);
  pbc_close(bad);

  fill_fix(&f, 2, T0 + 1000, 1);
  assert_int_equal(pbc_report(good, fp, 1), 0);
  assert_int_equal(pbc_wait_ack(good, 2, 10000), 2);
  pbc_close(good);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions WHERE terminal_id = 'bad2'"), 0);
}

static void test_newer_connection_replaces_older(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "twice", token);
  pbc *a = hw_test_pb_login(env.port, "twice", token);
  pbc *b = hw_test_pb_login(env.port, "twice", token);
  expect_error_then_eof(a, HAULWATCH__V1__ERROR__CODE__REPLACED);
  Haulwatch__V1__Fix f, *fp[1] = {&f};
  fill_fix(&f, 1, T0, 2);
  assert_int_equal(pbc_report(b, fp, 1), 0);
  assert_int_equal(pbc_wait_ack(b, 1, 10000), 1);
  pbc_close(a);
  pbc_close(b);
}

static void test_idle_connection_times_out(void **state) {
  (void)state;
  pbc *c = pbc_connect(env.port);
  /* idle timeout is 3 s in this daemon */
  expect_error_then_eof(c, HAULWATCH__V1__ERROR__CODE__IDLE_TIMEOUT);
  pbc_close(c);
}

/* Segments carrying data that the client's socket has received so far (the kernel counts):
 * tcpi_data_segs_in of the kernel's struct tcp_info, at offset 152 (linux/tcp.h, Linux 4.6 on;
 * the ABI only grows). glibc's struct tcp_info (netinet/tcp.h, which uv.h includes, so
 * linux/tcp.h cannot be included beside it) stops before that field. */
#define TCPI_DATA_SEGS_IN_OFF 152
static uint32_t data_segs_in(int fd) {
  uint8_t ti[512];
  socklen_t len = sizeof ti;
  memset(ti, 0, sizeof ti);
  assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len), 0);
  assert_true(len >= TCPI_DATA_SEGS_IN_OFF + sizeof(uint32_t));
  uint32_t v;
  memcpy(&v, ti + TCPI_DATA_SEGS_IN_OFF, sizeof v);
  return v;
}

/* K reports of one fix each, in one write: the daemon reads them at once, commits them in one
 * batch, and their K acks leave in one write (net/session.c, ack coalescing), so the client's
 * socket receives them in one data segment (two at most if the reports were read in two
 * reads); written one by one they would be K segments (TCP_NODELAY). */
static void test_acks_of_one_commit_in_one_write(void **state) {
  (void)state;
  enum { K = 10 };
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "coalesce1", token);
  pbc *c = hw_test_pb_login(env.port, "coalesce1", token);
  static Haulwatch__V1__Fix fixes[K];
  uint8_t out[K * 128];
  size_t len = 0;
  uint64_t base = T0;
  for (int i = 0; i < K; i++) {
    fill_fix(&fixes[i], (uint64_t)i + 1, base + (uint64_t)i * 1000, 7);
    Haulwatch__V1__Fix *fp = &fixes[i];
    Haulwatch__V1__Report r = HAULWATCH__V1__REPORT__INIT;
    r.n_fixes = 1;
    r.fixes = &fp;
    Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
    m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT;
    m.report = &r;
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    assert_true(len + n + 10 <= sizeof out);
    len += hw_varint_put(out + len, n);
    protobuf_c_message_pack(&m.base, out + len);
    len += n;
  }
  uint32_t before = data_segs_in(c->fd);
  assert_int_equal(pbc_send_raw(c, out, len), 0);
  int acks = 0;
  int64_t best = -1;
  while (best < K) {
    Haulwatch__V1__ServerMessage *m = pbc_recv(c, 10000);
    assert_non_null(m);
    if (m->msg_case == HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK) {
      acks++;
      assert_true((int64_t)m->ack->seq > best); /* in order */
      best = (int64_t)m->ack->seq;
    }
    haulwatch__v1__server_message__free_unpacked(m, NULL);
  }
  assert_int_equal(best, K);
  uint32_t segs = data_segs_in(c->fd) - before;
  print_message("  %d acks in %u data segments\n", acks, segs);
  assert_true(segs >= 1 && segs <= 2);
  assert_true(acks >= 1 && acks <= K);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM positions WHERE terminal_id = "
                                      "'coalesce1'"), K);
  pbc_close(c);
}

/* haulwatch-probe, the latency bench's client: it logs in with its token, every report it sends
 * is stored, and --samples holds one line per counted ack, in sending order (ops/bench-latency
 * pools these across rounds). */
static void test_probe_samples(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "probe1", token);
  const char *samples = "test_ingest.probe.samples", *plog = "test_ingest.probe.log";
  unlink(samples);
  unlink(plog);
  const char *argv[] = {"--server", env.listen_addr, "--token", token, "--id", "probe1",
                        "--interval-ms", "20", "--duration", "1", "--warmup", "2",
                        "--samples", samples, NULL};
  assert_int_equal(hw_test_wait_exit(hw_test_spawn_probe(argv, plog), 30000), 0);
  unsigned long long sent = 0, acked = 0;
  double max_ms = -1;
  char line[512];
  FILE *f = fopen(plog, "r");
  assert_non_null(f);
  while (fgets(line, sizeof line, f)) {
    const char *m = strstr(line, "max_ms=");
    if (!strncmp(line, "probe: ", 7) && m &&
        sscanf(line, "probe: sent=%llu acked=%llu", &sent, &acked) == 2)
      max_ms = atof(m + 7);
  }
  fclose(f);
  /* 1 s at 20 ms: about 50 counted (fewer if acks were slow), the 2 warm-up reports besides. */
  assert_true(acked >= 10 && acked <= 51);
  assert_int_equal(sent, acked + 2);
  assert_true(max_ms > 0);
  f = fopen(samples, "r");
  assert_non_null(f);
  unsigned long long n = 0;
  double at, lat, prev_at = -1, top = 0;
  long long wall, prev_wall = 0;
  while (fscanf(f, "%lf %lld %lf", &at, &wall, &lat) == 3) {
    assert_true(at > prev_at && wall > prev_wall); /* in sending order */
    assert_true(lat > 0);
    top = lat > top ? lat : top;
    prev_at = at;
    prev_wall = wall;
    n++;
  }
  assert_true(feof(f));
  fclose(f);
  assert_int_equal(n, acked);
  assert_true(top <= max_ms + 0.01 && top >= max_ms - 0.01); /* the summary's max is a sample */
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM positions WHERE terminal_id = "
                                      "'probe1'"), (long long)sent);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exactly_once_and_latest),
      cmocka_unit_test(test_acks_of_one_commit_in_one_write),
      cmocka_unit_test(test_bad_token_refused),
      cmocka_unit_test(test_report_before_hello_refused),
      cmocka_unit_test(test_bad_frames_close_only_their_connection),
      cmocka_unit_test(test_newer_connection_replaces_older),
      cmocka_unit_test(test_idle_connection_times_out),
      cmocka_unit_test(test_probe_samples),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
