/* The protobuf contract of proto/haulwatch.proto against the real daemon, PostgreSQL and Redis:
 * seqs and acks are per connection (a restarted counter, a skip, a daemon restart), one bad fix
 * is refused or flagged alone and never blocks its terminal, invalid UTF-8 is a bad message,
 * frames pipelined behind a Hello are handled, and the proto's bounds hold. Every Ack received is
 * checked against the database: it must never cover a fix that is not stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "pbclient.h"
#include "base/token.h"

static hw_test_env env;
static const char *logfile = "test_pb_contract.daemon.log";

/* Device times an hour ago (nothing flagged stale or future), one second apart per fix. */
static uint64_t t0;

static pid_t start_daemon(void) {
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--batch-ms", "20", NULL};
  pid_t pid = hw_test_spawn(argv, logfile);
  assert_int_equal(hw_test_wait_port(env.port, 15000), 0);
  return pid;
}

static void expect_hello_accepted(pbc *c) {
  Haulwatch__V1__ServerMessage *m = pbc_recv(c, 10000);
  assert_non_null(m);
  assert_int_equal(m->msg_case, HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT);
  assert_true(m->hello_result->accepted);
  /* the server keeps no seq across connections */
  assert_int_equal(m->hello_result->last_acked_seq, 0);
  haulwatch__v1__server_message__free_unpacked(m, NULL);
}

/* Fix number k of a terminal: device time t0 + k s, values derived from k. */
static void fill_fix(Haulwatch__V1__Fix *f, uint64_t seq, int k) {
  haulwatch__v1__fix__init(f);
  f->seq = seq;
  f->time_ms = t0 + (uint64_t)k * 1000;
  f->lat_e6 = 30000000 + k * 100;
  f->lon_e6 = 114000000 + k * 100;
  f->speed_dkmh = 500;
  f->heading = (uint32_t)(k % 360);
  f->status = 3;
  f->odometer_hm = (uint32_t)(1000 + k);
}

static long rows(const char *id) {
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM positions WHERE terminal_id = '%s'", id);
  return hw_test_pg_scalar(env.db, sql);
}

/* SQL expression expr over the row of id's fix of device time t0 + k s (0 when no row). */
static long fix_col(const char *id, int k, const char *expr) {
  char sql[384];
  snprintf(sql, sizeof sql,
           "SELECT %s FROM positions WHERE terminal_id = '%s' "
           "AND ts = timestamptz 'epoch' + %llu * interval '1 millisecond'",
           expr, id, (unsigned long long)(t0 + (uint64_t)k * 1000));
  return hw_test_pg_scalar(env.db, sql);
}

/* 1 when the fix of device time t0 + k s is stored for id. */
static int stored(const char *id, int k) { return fix_col(id, k, "count(*)") == 1; }

/* What one connection sent: seq -> fix number k (-1: expected to be refused), to check that an
 * Ack never covers a fix that is not stored. */
typedef struct sent_log {
  const char *id;
  uint64_t seq[256];
  int k[256];
  size_t n;
} sent_log;

static void sent_add(sent_log *l, uint64_t seq, int k) {
  assert_true(l->n < 256);
  l->seq[l->n] = seq;
  l->k[l->n++] = k;
}

typedef struct refusal {
  uint64_t seq;
  int reason;
} refusal;

/* Reads messages until an Ack with seq >= want; collects refusals; after every Ack checks that
 * each fix this connection sent with seq <= that Ack (and not refused) is in PostgreSQL.
 * Returns the highest Ack seen (-1 if none before the timeout or EOF). */
static int64_t wait_ack_checked(pbc *c, sent_log *l, uint64_t want, refusal *ref, size_t *nref) {
  int64_t best = -1;
  while (best < (int64_t)want) {
    Haulwatch__V1__ServerMessage *m = pbc_recv(c, 10000);
    if (!m)
      return best;
    if (m->msg_case == HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK) {
      Haulwatch__V1__Ack *a = m->ack;
      assert_true((int64_t)a->seq >= best); /* never goes down on a connection */
      for (size_t i = 0; i < a->n_refused; i++) {
        assert_non_null(nref);
        ref[*nref].seq = a->refused[i]->seq;
        ref[*nref].reason = a->refused[i]->reason;
        (*nref)++;
      }
      best = (int64_t)a->seq;
      for (size_t i = 0; l && i < l->n; i++)
        if (l->seq[i] <= a->seq && l->k[i] >= 0 && !stored(l->id, l->k[i]))
          fail_msg("Ack(%llu) covers seq %llu (fix %d) of %s, which is not stored",
                   (unsigned long long)a->seq, (unsigned long long)l->seq[i], l->k[i], l->id);
    }
    haulwatch__v1__server_message__free_unpacked(m, NULL);
  }
  return best;
}

/* Sends fixes k = k0 .. k0 + n - 1 with seqs seq0 .. in one Report, logging them. */
static void send_run(pbc *c, sent_log *l, uint64_t seq0, int k0, int n) {
  Haulwatch__V1__Fix fs[64], *fp[64];
  assert_true(n <= 64);
  for (int i = 0; i < n; i++) {
    fill_fix(&fs[i], seq0 + (uint64_t)i, k0 + i);
    fp[i] = &fs[i];
    if (l)
      sent_add(l, seq0 + (uint64_t)i, k0 + i);
  }
  assert_int_equal(pbc_report(c, fp, (size_t)n), 0);
}

static void expect_error_then_eof(pbc *c, Haulwatch__V1__Error__Code code, const char *needle) {
  Haulwatch__V1__ServerMessage *m;
  int saw = 0;
  while ((m = pbc_recv(c, 5000))) {
    if (m->msg_case == HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR && m->error->code == code &&
        (!needle || strstr(m->error->reason, needle)))
      saw = 1;
    haulwatch__v1__server_message__free_unpacked(m, NULL);
  }
  assert_true(saw);
  assert_true(pbc_wait_eof(c, 2000));
}

/* Encodes m with its length prefix at out (independently of the daemon's codec). */
static size_t put_msg(uint8_t *out, size_t cap, const Haulwatch__V1__ClientMessage *m) {
  size_t n = haulwatch__v1__client_message__get_packed_size(m), k = 0;
  uint64_t v = n;
  assert_true(n + 10 <= cap);
  while (v >= 0x80) {
    out[k++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[k++] = (uint8_t)v;
  haulwatch__v1__client_message__pack(m, out + k);
  return k + n;
}

static size_t put_hello(uint8_t *out, size_t cap, const char *id, const char *token) {
  Haulwatch__V1__Hello h = HAULWATCH__V1__HELLO__INIT;
  h.terminal_id = (char *)id;
  h.token = (char *)token;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO;
  m.hello = &h;
  return put_msg(out, cap, &m);
}

static size_t put_report(uint8_t *out, size_t cap, Haulwatch__V1__Fix **fp, size_t n) {
  Haulwatch__V1__Report r = HAULWATCH__V1__REPORT__INIT;
  r.fixes = fp;
  r.n_fixes = n;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT;
  m.report = &r;
  return put_msg(out, cap, &m);
}

static int group_setup(void **state) {
  (void)state;
  t0 = (uint64_t)hw_now_ms() - 3600 * 1000;
  hw_test_env_up(&env, "hw_it_pb_contract");
  unlink(logfile);
  env.daemon_pid = start_daemon();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  return 0;
}

/* A device rebooted: its counter starts at 1 again on a new connection. Its new fixes must be
 * stored and acked (they were acked and dropped while the server remembered seq 30), and the
 * old fixes resent under the new counter are not stored twice. */
static void test_seq_restart_on_new_connection(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "reboot1", token);
  pbc *c = hw_test_pb_login(env.port, "reboot1", token);
  sent_log l = {.id = "reboot1"};
  send_run(c, &l, 1, 0, 30);
  assert_int_equal(wait_ack_checked(c, &l, 30, NULL, NULL), 30);
  pbc_close(c);

  c = hw_test_pb_login(env.port, "reboot1", token);
  sent_log l2 = {.id = "reboot1"};
  send_run(c, &l2, 1, 30, 10);  /* new fixes 30..39 under seqs 1..10 */
  send_run(c, &l2, 11, 25, 10); /* fixes 25..34 again: 25..29 stored before, 30..34 just now */
  assert_int_equal(wait_ack_checked(c, &l2, 20, NULL, NULL), 20);
  pbc_close(c);
  assert_int_equal(rows("reboot1"), 40);
  for (int k = 0; k < 40; k++)
    assert_true(stored("reboot1", k));
}

/* The same after a daemon restart, which used to forget the seqs: what is acked is stored,
 * nothing twice, whatever the counter does. */
static void test_seq_restart_across_daemon_restart(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "restart1", token);
  pbc *c = hw_test_pb_login(env.port, "restart1", token);
  sent_log l = {.id = "restart1"};
  send_run(c, &l, 100, 0, 20);
  assert_int_equal(wait_ack_checked(c, &l, 119, NULL, NULL), 119);
  pbc_close(c);

  hw_test_stop_pid(env.daemon_pid);
  env.daemon_pid = start_daemon();

  c = hw_test_pb_login(env.port, "restart1", token);
  sent_log l2 = {.id = "restart1"};
  send_run(c, &l2, 1, 10, 20);  /* 10..19 resent, 20..29 new, counter restarted at 1 */
  send_run(c, &l2, 21, 30, 5); /* more new ones */
  assert_int_equal(wait_ack_checked(c, &l2, 25, NULL, NULL), 25);
  pbc_close(c);
  assert_int_equal(rows("restart1"), 35);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(DISTINCT ts) FROM positions "
                                             "WHERE terminal_id = 'restart1'"), 35);
}

/* Ack(100) after Ack(10) covers only what this connection sent (10 and 100); a seq that goes
 * back is refused alone and the connection goes on; an Ack on one connection never covers fixes
 * sent on another. */
static void test_ack_skip_and_backwards_seq(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "skip1", token);
  pbc *c = hw_test_pb_login(env.port, "skip1", token);
  sent_log l = {.id = "skip1"};
  send_run(c, &l, 10, 0, 1);
  assert_int_equal(wait_ack_checked(c, &l, 10, NULL, NULL), 10);
  send_run(c, &l, 100, 1, 1);
  assert_int_equal(wait_ack_checked(c, &l, 100, NULL, NULL), 100);
  assert_int_equal(rows("skip1"), 2);

  /* backwards (50), repeated (100), zero: refused alone; 101 in the same report is stored */
  Haulwatch__V1__Fix fs[4], *fp[4] = {&fs[0], &fs[1], &fs[2], &fs[3]};
  fill_fix(&fs[0], 101, 2);
  fill_fix(&fs[1], 50, 3);
  fill_fix(&fs[2], 100, 4);
  fill_fix(&fs[3], 0, 5);
  sent_add(&l, 101, 2);
  assert_int_equal(pbc_report(c, fp, 4), 0);
  refusal ref[8];
  size_t nref = 0;
  assert_int_equal(wait_ack_checked(c, &l, 101, ref, &nref), 101);
  assert_int_equal(nref, 3);
  assert_int_equal(ref[0].seq, 50);
  assert_int_equal(ref[1].seq, 100);
  assert_int_equal(ref[2].seq, 0);
  for (size_t i = 0; i < nref; i++)
    assert_int_equal(ref[i].reason, HAULWATCH__V1__REFUSED_FIX__REASON__BAD_SEQ);
  assert_int_equal(rows("skip1"), 3);
  assert_false(stored("skip1", 3));
  assert_false(stored("skip1", 4));
  assert_false(stored("skip1", 5));

  /* A second connection's Ack covers its own fixes only: the first connection (replaced) sent
   * fix 6 as seq 200 and closed before its Ack; the second sends fix 7 as seq 300. */
  send_run(c, NULL, 200, 6, 1);
  pbc *d = hw_test_pb_login(env.port, "skip1", token);
  sent_log l2 = {.id = "skip1"};
  send_run(d, &l2, 300, 7, 1);
  assert_int_equal(wait_ack_checked(d, &l2, 300, NULL, NULL), 300);
  pbc_close(d);
  pbc_close(c);
}

/* One report mixing good and bad fixes: heading 400 and a 40-byte driver id are stored flagged,
 * a device time in 1990 is refused alone with its reason; the good ones are stored and acked,
 * and sending the same report again (the old failure mode: refused whole, forever) changes
 * nothing and does not block the terminal. */
static void test_bad_fix_alone(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "badfix1", token);
  for (int round = 0; round < 2; round++) {
    pbc *c = hw_test_pb_login(env.port, "badfix1", token);
    sent_log l = {.id = "badfix1"};
    Haulwatch__V1__Fix fs[5], *fp[5];
    for (int i = 0; i < 5; i++) {
      fill_fix(&fs[i], (uint64_t)i + 1, i);
      fp[i] = &fs[i];
    }
    fs[1].heading = 400;
    fs[2].driver_id = "0123456789012345678901234567890123456789";
    fs[3].time_ms = 631152000000ULL; /* 1990-01-01 */
    sent_add(&l, 1, 0);
    sent_add(&l, 2, 1);
    sent_add(&l, 3, 2);
    sent_add(&l, 4, -1);
    sent_add(&l, 5, 4);
    assert_int_equal(pbc_report(c, fp, 5), 0);
    refusal ref[8];
    size_t nref = 0;
    assert_int_equal(wait_ack_checked(c, &l, 5, ref, &nref), 5);
    assert_int_equal(nref, 1);
    assert_int_equal(ref[0].seq, 4);
    assert_int_equal(ref[0].reason, HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE);
    /* the terminal goes on */
    send_run(c, &l, 6, 10 + round, 1);
    assert_int_equal(wait_ack_checked(c, &l, 6, NULL, NULL), 6);
    pbc_close(c);
  }
  assert_int_equal(rows("badfix1"), 6); /* 0, 1, 2, 4, 10, 11 */
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM positions "
                                             "WHERE terminal_id = 'badfix1' AND ts < '2000-01-01'"), 0);
  assert_int_equal(fix_col("badfix1", 0, "quality"), 0);
  assert_int_equal(fix_col("badfix1", 1, "quality"), 0x0100); /* BAD_HEADING */
  assert_int_equal(fix_col("badfix1", 1, "heading"), 400);    /* as sent */
  assert_int_equal(fix_col("badfix1", 2, "quality"), 0x0200); /* BAD_DRIVER */
  assert_int_equal(fix_col("badfix1", 2, "(driver_id IS NULL)::int"), 1);
}

/* A fix flagged only for one field (heading above 359) still has a trusted time and position:
 * it becomes the latest state in Redis (a device that always sends heading 360 must not vanish
 * from the map). */
static void test_field_flag_keeps_latest_state(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "badhead1", token);
  pbc *c = hw_test_pb_login(env.port, "badhead1", token);
  sent_log l = {.id = "badhead1"};
  Haulwatch__V1__Fix f, *fp = &f;
  fill_fix(&f, 1, 7);
  f.heading = 360;
  sent_add(&l, 1, 7);
  assert_int_equal(pbc_report(c, &fp, 1), 0);
  assert_int_equal(wait_ack_checked(c, &l, 1, NULL, NULL), 1);
  pbc_close(c);
  assert_int_equal(fix_col("badhead1", 7, "quality"), 0x0100);
  char want_ts[32];
  snprintf(want_ts, sizeof want_ts, "%llu", (unsigned long long)f.time_ms);
  redisContext *r = redisConnect("127.0.0.1", env.redis_port);
  assert_non_null(r);
  int ok = 0;
  for (int tries = 0; tries < 100 && !ok; tries++) { /* the state is written within ~1 s */
    redisReply *rep = redisCommand(r, "HGET %s ts_ms", hw_test_veh_key("badhead1"));
    ok = rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, want_ts);
    freeReplyObject(rep);
    if (!ok)
      usleep(50 * 1000);
  }
  redisFree(r);
  assert_true(ok);
}

/* Invalid UTF-8 in a driver id (protobuf-c lets it through) is Error BAD_MESSAGE naming the
 * field, not INTERNAL; the connection is closed, nothing of it stored, and another terminal is
 * not affected. */
static void test_invalid_utf8_is_bad_message(void **state) {
  (void)state;
  char tok_good[HW_TOKEN_LEN + 1], tok_bad[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "utf8good", tok_good);
  hw_test_add_terminal(env.db, "utf8bad", tok_bad);
  pbc *good = hw_test_pb_login(env.port, "utf8good", tok_good);
  pbc *bad = hw_test_pb_login(env.port, "utf8bad", tok_bad);
  Haulwatch__V1__Fix fs[2], *fp[2] = {&fs[0], &fs[1]};
  fill_fix(&fs[0], 1, 0);
  fill_fix(&fs[1], 2, 1);
  fs[1].driver_id = "D\xc0\xaf"; /* an overlong '/' */
  assert_int_equal(pbc_report(bad, fp, 2), 0);
  expect_error_then_eof(bad, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "driver_id");
  pbc_close(bad);

  sent_log l = {.id = "utf8good"};
  send_run(good, &l, 1, 0, 3);
  assert_int_equal(wait_ack_checked(good, &l, 3, NULL, NULL), 3);
  pbc_close(good);
  assert_int_equal(rows("utf8bad"), 0);
  assert_int_equal(rows("utf8good"), 3);

  /* the same in a Hello field */
  pbc *c = pbc_connect(env.port);
  uint8_t buf[256];
  size_t n = put_hello(buf, sizeof buf, "utf8good", "\xff\xfe");
  assert_int_equal(pbc_send_raw(c, buf, n), 0);
  expect_error_then_eof(c, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "token");
  pbc_close(c);
}

/* Hello, Report, Heartbeat, empty Report and Report in one write: accepted, both reports acked,
 * in order; the empty one gets no answer. */
static void test_hello_and_report_in_one_write(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "pipe1", token);
  static uint8_t buf[8192];
  size_t n = put_hello(buf, sizeof buf, "pipe1", token);
  Haulwatch__V1__Fix fs[4], *fp[4];
  sent_log l = {.id = "pipe1"};
  for (int i = 0; i < 4; i++) {
    fill_fix(&fs[i], (uint64_t)i + 1, i);
    fp[i] = &fs[i];
    sent_add(&l, (uint64_t)i + 1, i);
  }
  n += put_report(buf + n, sizeof buf - n, fp, 2);
  Haulwatch__V1__Heartbeat hb = HAULWATCH__V1__HEARTBEAT__INIT;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT;
  m.heartbeat = &hb;
  n += put_msg(buf + n, sizeof buf - n, &m);
  n += put_report(buf + n, sizeof buf - n, NULL, 0);
  n += put_report(buf + n, sizeof buf - n, fp + 2, 2);
  pbc *c = pbc_connect(env.port);
  assert_non_null(c);
  assert_int_equal(pbc_send_raw(c, buf, n), 0);
  expect_hello_accepted(c);
  assert_int_equal(wait_ack_checked(c, &l, 4, NULL, NULL), 4);
  pbc_close(c);
  assert_int_equal(rows("pipe1"), 4);

  /* A refused Hello takes its pipelined frames with it: nothing of them is stored. */
  Haulwatch__V1__Fix other;
  Haulwatch__V1__Fix *op[1] = {&other};
  fill_fix(&other, 5, 50);
  n = put_hello(buf, sizeof buf, "pipe1", "wrong-token");
  n += put_report(buf + n, sizeof buf - n, op, 1);
  c = pbc_connect(env.port);
  assert_int_equal(pbc_send_raw(c, buf, n), 0);
  Haulwatch__V1__ServerMessage *hr = pbc_recv(c, 10000);
  assert_non_null(hr);
  assert_int_equal(hr->msg_case, HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT);
  assert_false(hr->hello_result->accepted);
  haulwatch__v1__server_message__free_unpacked(hr, NULL);
  expect_error_then_eof(c, HAULWATCH__V1__ERROR__CODE__AUTH_FAILED, NULL);
  pbc_close(c);
  usleep(300 * 1000); /* ample for a wrongly queued fix to commit (batch_ms is 20) */
  assert_false(stored("pipe1", 50));

  /* More than the 4096 bytes the proto allows behind a Hello: NOT_AUTHENTICATED, nothing stored. */
  Haulwatch__V1__Fix big[80], *bp[80];
  for (int i = 0; i < 80; i++) {
    fill_fix(&big[i], (uint64_t)i + 1, 100 + i);
    big[i].driver_id = "0123456789012345678901234567890"; /* fatter fixes */
    bp[i] = &big[i];
  }
  n = put_hello(buf, sizeof buf, "pipe1", token);
  size_t rep = put_report(buf + n, sizeof buf - n, bp, 80);
  assert_true(rep > 4096);
  n += rep;
  c = pbc_connect(env.port);
  assert_int_equal(pbc_send_raw(c, buf, n), 0);
  expect_error_then_eof(c, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED, "4096");
  pbc_close(c);
  assert_int_equal(rows("pipe1"), 4);
}

/* A Report of 4097 fixes is a bad message (4096 is the bound); 4096 fixes are stored and acked. */
static void test_fixes_per_report_bound(void **state) {
  (void)state;
  char token[HW_TOKEN_LEN + 1];
  hw_test_add_terminal(env.db, "bound1", token);
  enum { N = 4097 };
  static Haulwatch__V1__Fix fs[N];
  static Haulwatch__V1__Fix *fp[N];
  for (int i = 0; i < N; i++) {
    haulwatch__v1__fix__init(&fs[i]);
    fs[i].seq = (uint64_t)i + 1;
    fs[i].time_ms = t0 + (uint64_t)i * 1000;
    fs[i].status = 3;
    fp[i] = &fs[i];
  }
  pbc *c = hw_test_pb_login(env.port, "bound1", token);
  assert_int_equal(pbc_report(c, fp, N), 0);
  expect_error_then_eof(c, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "4096");
  pbc_close(c);
  assert_int_equal(rows("bound1"), 0);
  c = hw_test_pb_login(env.port, "bound1", token);
  assert_int_equal(pbc_report(c, fp, N - 1), 0);
  assert_int_equal(wait_ack_checked(c, NULL, N - 1, NULL, NULL), N - 1);
  pbc_close(c);
  assert_int_equal(rows("bound1"), N - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seq_restart_on_new_connection),
      cmocka_unit_test(test_seq_restart_across_daemon_restart),
      cmocka_unit_test(test_ack_skip_and_backwards_seq),
      cmocka_unit_test(test_bad_fix_alone),
      cmocka_unit_test(test_field_flag_keeps_latest_state),
      cmocka_unit_test(test_invalid_utf8_is_bad_message),
      cmocka_unit_test(test_hello_and_report_in_one_write),
      cmocka_unit_test(test_fixes_per_report_bound),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
