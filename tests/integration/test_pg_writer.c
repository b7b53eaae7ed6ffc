/* The PostgreSQL writer (and the query client beside it) against a real server, each case on a
 * fresh database, driven on a private libuv loop. Every case ends with stop and proves the loop
 * closes (uv_loop_close returns 0: no handle leaked).
 *   HW_TEST_PG="host=127.0.0.1 port=54320 user=postgres" ./build/tests/test_pg_writer */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "base/log.h"
#include "sinks/pg_async.h"
#include "sinks/pg_writer.h"
#include "registry/terminal.h"

#define MAX_ACKS 200000
#define WAIT_MS 60000 /* guard against a hang, not a performance bound */

typedef struct ctx {
  uv_loop_t loop;
  hw_pg_writer *w;
  PGconn *db; /* blocking connection that checks what is visible */
  char conninfo[512];
  hw_terminal term; /* acks point at it; the writer never looks inside */
  /* acks: token = add order; rows_before[token] = rows added before that ack */
  uint64_t acks_added, acks_seen;
  long rows_added;
  long *rows_before;
  int check_visible;
  long visible_checks;
  int stopped;
  int64_t base_ms;
} ctx;

static ctx *ctx_new(const char *db, uint32_t batch_rows, uint32_t batch_ms, uint32_t conns);

static void on_durable(void *arg, const hw_ack_ref *acks, size_t n) {
  ctx *c = arg;
  assert_true(n > 0);
  for (size_t i = 0; i < n; i++) {
    /* In add order, each exactly once. */
    assert_int_equal(acks[i].token, c->acks_seen);
    assert_ptr_equal(acks[i].term, &c->term);
    assert_int_equal(acks[i].kind, 7);
    c->acks_seen++;
  }
  if (c->check_visible) {
    /* Every row added before the last ack handed over must already be visible to others. */
    long visible = hw_test_pg_scalar(c->db, "SELECT count(*) FROM positions");
    assert_true(visible >= c->rows_before[acks[n - 1].token]);
    c->visible_checks++;
  }
}

static void on_stopped(void *arg) {
  ctx *c = arg;
  c->stopped = 1;
}

static hw_fix make_fix(int64_t ts_ms, int64_t seq) {
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.seq = seq;
  f.ts_ms = ts_ms;
  f.recv_ms = hw_now_ms();
  f.lat_e6 = 31000000 + (int32_t)(seq % 1000);
  f.lon_e6 = -121000000 - (int32_t)(seq % 1000);
  f.speed_dkmh = (uint32_t)(seq % 1200);
  f.heading = (uint16_t)(seq % 360);
  f.alt_m = (int32_t)(seq % 50) - 10;
  f.alarm = 0x80000000u | (uint32_t)seq;
  f.status = 3;
  f.odometer_hm = (uint32_t)seq * 10 + 7;
  f.source = (uint8_t)(seq & 1);
  if (seq % 3 == 0) {
    f.has_driver = 1;
    snprintf(f.driver_id, sizeof f.driver_id, "D%lld", (long long)seq);
  }
  return f;
}

static void add_row(ctx *c, const char *tid, int64_t ts_ms, int64_t seq) {
  hw_fix f = make_fix(ts_ms, seq);
  assert_int_equal(hw_pg_writer_add(c->w, tid, &f), 0);
  c->rows_added++;
}

static void add_fix(ctx *c, const char *tid, const hw_fix *f, unsigned flags) {
  assert_int_equal(hw_pg_writer_add_flags(c->w, tid, f, flags), 0);
  c->rows_added++;
}

static void add_ack(ctx *c) {
  assert_true(c->acks_added < MAX_ACKS);
  c->rows_before[c->acks_added] = c->rows_added;
  hw_ack_ref a = {.term = &c->term, .session_gen = 1, .kind = 7, .token = c->acks_added};
  assert_int_equal(hw_pg_writer_add_ack(c->w, &a), 0);
  c->acks_added++;
}

/* Runs the loop until every ack added so far arrived. */
static void run_until_acked(ctx *c) {
  int64_t deadline = hw_now_ms() + WAIT_MS;
  while (c->acks_seen < c->acks_added) {
    assert_true(hw_now_ms() < deadline);
    uv_run(&c->loop, UV_RUN_ONCE);
  }
}

static void on_wake(uv_timer_t *t) { (void)t; }

/* Runs the loop for about ms (to show that something does not happen). */
static void run_for(ctx *c, int ms) {
  int64_t end = hw_now_ms() + ms;
  uv_timer_t t;
  uv_timer_init(&c->loop, &t);
  uv_timer_start(&t, on_wake, 5, 5); /* the loop never sleeps past end */
  while (hw_now_ms() < end)
    uv_run(&c->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&c->loop, UV_RUN_NOWAIT);
}

/* Runs sql on the checking connection while the loop keeps going: DDL may wait for a lock that
 * the writer only releases when it gets to run. */
static void exec_while_running(ctx *c, const char *sql) {
  assert_int_equal(PQsendQuery(c->db, sql), 1);
  uv_timer_t t;
  uv_timer_init(&c->loop, &t);
  uv_timer_start(&t, on_wake, 10, 10);
  int64_t deadline = hw_now_ms() + WAIT_MS;
  do {
    assert_true(hw_now_ms() < deadline);
    uv_run(&c->loop, UV_RUN_ONCE);
    assert_int_equal(PQconsumeInput(c->db), 1);
  } while (PQisBusy(c->db));
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&c->loop, UV_RUN_NOWAIT);
  PGresult *r;
  while ((r = PQgetResult(c->db))) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
  }
}

static void stop_and_close(ctx *c) {
  hw_pg_writer_stop(c->w, on_stopped, c);
  int64_t deadline = hw_now_ms() + WAIT_MS;
  while (!c->stopped) {
    assert_true(hw_now_ms() < deadline);
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  assert_int_equal(uv_run(&c->loop, UV_RUN_NOWAIT), 0);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  PQfinish(c->db);
  free(c->rows_before);
  free(c);
}

static ctx *ctx_new(const char *db, uint32_t batch_rows, uint32_t batch_ms, uint32_t conns) {
  ctx *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->rows_before = calloc(MAX_ACKS, sizeof *c->rows_before);
  assert_non_null(c->rows_before);
  hw_test_fresh_db(db, c->conninfo, sizeof c->conninfo);
  c->db = hw_test_pg_connect(c->conninfo);
  assert_int_equal(uv_loop_init(&c->loop), 0);
  hw_pg_writer_config cfg = {.conninfo = c->conninfo, .batch_rows = batch_rows,
                             .batch_ms = batch_ms, .connections = conns};
  assert_int_equal(hw_pg_writer_start(&c->w, &c->loop, &cfg, on_durable, c), 0);
  /* An hour back from now: inside the daily partitions the writer creates at start. */
  c->base_ms = hw_now_ms() - 3600 * 1000;
  return c;
}

static long scalar(ctx *c, const char *sql) { return hw_test_pg_scalar(c->db, sql); }

/* Many terminals, acks interleaved, three connections: batches commit out of order but acks
 * arrive in add order, exactly once, and only once their rows are visible. */
static void test_acks_in_order_after_visible(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_order", 500, 20, 3);
  c->check_visible = 1;
  const int terminals = 20, per = 600, frame = 10;
  long added = 0;
  int64_t t0 = hw_now_ms();
  for (int i = 0; i < per; i += frame) {
    for (int t = 0; t < terminals; t++) {
      char tid[16];
      snprintf(tid, sizeof tid, "T%02d", t);
      for (int k = 0; k < frame; k++)
        add_row(c, tid, c->base_ms + (i + k) * 1000, i + k + 1);
      added += frame;
      add_ack(c);
      if (t % 7 == 0)
        add_ack(c); /* no new row (a resent frame): behind everything so far */
    }
    /* Let the loop run a little between frames: batches overlap with accumulation. */
    uv_run(&c->loop, UV_RUN_NOWAIT);
  }
  run_until_acked(c);
  int64_t ms = hw_now_ms() - t0;
  assert_int_equal(c->acks_seen, c->acks_added);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions"), added);
  assert_int_equal(scalar(c, "SELECT count(DISTINCT terminal_id) FROM positions"), terminals);
  assert_int_equal(hw_pg_writer_backlog(c->w), 0);
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.rows_committed, (uint64_t)added);
  assert_true(st.batches_committed >= (uint64_t)added / 500);
  assert_int_equal(st.conflict_replays, 0);
  assert_true(c->visible_checks > 0);
  /* Column mapping end to end, for one row with a driver and one without. */
  char sql[512];
  hw_fix f = make_fix(c->base_ms + 299 * 1000, 300);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM positions WHERE terminal_id = 'T05' AND seq = 300 AND "
           "ts = to_timestamp(%lld / 1000.0) AND lat = %d / 1e6::float8 AND lon = %d / 1e6::float8 "
           "AND speed_kmh = (%u / 10.0)::real AND heading = %u AND alt_m = %d AND alarm = %u AND "
           "status = 3 AND odometer_km = %u / 10.0::float8 AND driver_id = 'D300' AND source = 0 "
           "AND recv_ts <= now()",
           (long long)f.ts_ms, f.lat_e6, f.lon_e6, f.speed_dkmh, f.heading, f.alt_m, f.alarm,
           f.odometer_hm);
  assert_int_equal(scalar(c, sql), 1);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'T05' AND "
                             "seq = 301 AND driver_id IS NULL AND source = 1"), 1);
  /* Rows of today's hours landed in daily partitions. */
  assert_int_equal(scalar(c, "SELECT count(*) FROM ONLY positions_default"), 0);
  fprintf(stderr, "  %ld rows, 3 connections, batches of 500: %lld ms\n", added, (long long)ms);
  stop_and_close(c);
}

/* Rows already stored come again mixed with new ones: the conflict path stores each key once. */
static void test_conflict_replay(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_conflict", 2000, 20, 1);
  for (int i = 0; i < 1000; i++)
    add_row(c, "DUP", c->base_ms + i * 1000, i + 1);
  add_ack(c);
  run_until_acked(c);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'DUP'"), 1000);
  /* Resend rows 500..999 with other values, then 500 new ones, and one key twice in the batch. */
  for (int i = 500; i < 1500; i++) {
    hw_fix f = make_fix(c->base_ms + i * 1000, i + 1);
    f.alt_m = 9999;
    assert_int_equal(hw_pg_writer_add(c->w, "DUP", &f), 0);
  }
  add_row(c, "DUP", c->base_ms + 1400 * 1000, 1401);
  add_ack(c);
  run_until_acked(c);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'DUP'"), 1500);
  /* What was stored first stays. */
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'DUP' AND "
                             "alt_m = 9999"), 500);
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_true(st.conflict_replays > 0);
  assert_int_equal(st.rows_committed, 2001);
  /* The staging table is reusable on the same session: another replay. */
  for (int i = 0; i < 10; i++)
    add_row(c, "DUP", c->base_ms + i * 1000, i + 1);
  add_row(c, "DUP", c->base_ms + 5000 * 1000, 5001);
  add_ack(c);
  run_until_acked(c);
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.conflict_replays, 2);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'DUP'"), 1501);
  assert_int_equal(hw_pg_writer_backlog(c->w), 0);
  stop_and_close(c);
}

/* A day without a partition goes to the default one; a fix PostgreSQL would refuse is refused
 * by add and does not spoil its batch. */
static void test_default_partition_and_bad_fix(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_partition", 100, 20, 1);
  add_row(c, "NOW", c->base_ms, 1);
  add_row(c, "OLD", INT64_C(986140800000), 1); /* 2001-04-01 */
  hw_fix bad = make_fix(INT64_MAX, 2);
  assert_int_equal(hw_pg_writer_add(c->w, "NOW", &bad), -EINVAL);
  bad = make_fix(c->base_ms + 1000, 2);
  assert_int_equal(hw_pg_writer_add(c->w, "bad id!", &bad), -EINVAL);
  bad.heading = 40000;
  assert_int_equal(hw_pg_writer_add(c->w, "NOW", &bad), -EINVAL);
  add_row(c, "NOW", c->base_ms + 2000, 3);
  add_ack(c);
  run_until_acked(c);
  assert_int_equal(
      scalar(c, "SELECT count(*) FROM ONLY positions_default WHERE terminal_id = 'OLD'"), 1);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'NOW'"), 2);
  assert_int_equal(
      scalar(c, "SELECT count(*) FROM ONLY positions_default WHERE terminal_id = 'NOW'"), 0);
  /* The upkeep made yesterday through the day after tomorrow, besides the default partition. */
  assert_int_equal(
      scalar(c, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'positions'::regclass"), 5);
  stop_and_close(c);
}

/* Adaptive group commit (pg_writer.c, header). An idle writer commits what one loop iteration
 * added at once (batch_ms is an hour here, so only that can commit it); batch_rows bounds a
 * batch. */
static void test_batch_triggers(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_trigger", 1000000, 3600 * 1000, 1);
  for (int i = 0; i < 10; i++)
    add_row(c, "IDLE", c->base_ms + i * 1000, i + 1);
  add_ack(c);
  run_until_acked(c); /* fails after WAIT_MS, far below the hour */
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.batches_committed, 1); /* the ten rows of one iteration: one batch */
  assert_int_equal(st.rows_committed, 10);
  /* Idle again: one more row commits at once too. */
  add_row(c, "IDLE", c->base_ms + 10 * 1000, 11);
  add_ack(c);
  run_until_acked(c);
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.batches_committed, 2);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'IDLE'"), 11);
  stop_and_close(c);

  c = ctx_new("hw_pg_it_trigger", 100, 3600 * 1000, 1);
  for (int i = 0; i < 250; i++)
    add_row(c, "ROWS", c->base_ms + i * 1000, i + 1);
  add_ack(c);
  run_until_acked(c);
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.batches_committed, 3); /* 100, 100, 50 */
  assert_int_equal(st.rows_committed, 250);
  assert_int_equal(hw_pg_writer_backlog(c->w), 0);
  stop_and_close(c);
}

/* The only connection is busy (its COPY waits for another transaction's uncommitted row with
 * the same key) while rows arrive in separate loop iterations, each with its ack: nothing is
 * acknowledged meanwhile, and when the connection is free again what gathered goes as one
 * batch (batch_ms an hour), or as one batch per batch_ms of arrivals (batch_ms 50 ms, rows
 * 300 ms apart). */
static void busy_case(uint32_t batch_ms, int spacing_ms, uint64_t want_batches) {
  ctx *c = ctx_new("hw_pg_it_busy", 1000000, batch_ms, 1);
  add_row(c, "WARM", c->base_ms, 1); /* connects and does the upkeep */
  add_ack(c);
  run_until_acked(c);
  PGconn *other = hw_test_pg_connect(c->conninfo);
  hw_test_pg_scalar(other, "BEGIN");
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO positions VALUES ('BUSY', to_timestamp(%lld / 1000.0), 0, now(), 0, 0, 0, "
           "0, 424242, 0, 0, 0, NULL, 0)",
           (long long)c->base_ms);
  hw_test_pg_scalar(other, sql);
  add_row(c, "BUSY", c->base_ms, 1);
  add_ack(c);
  long waiting = 0;
  for (int i = 0; i < 100 && !waiting; i++) {
    run_for(c, 20);
    waiting = scalar(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'haulwatch-pgwriter' AND wait_event_type = 'Lock' "
                        "AND datname = current_database()");
  }
  assert_int_equal(waiting, 1);
  for (int i = 1; i <= 5; i++) {
    add_row(c, "BUSY", c->base_ms + i * 1000, i + 1);
    add_ack(c);
    run_for(c, spacing_ms);
  }
  assert_int_equal(c->acks_seen, 1); /* only the warm-up: nothing else is committed */
  hw_test_pg_scalar(other, "ROLLBACK"); /* no conflict after all: the COPY goes on */
  run_until_acked(c);
  PQfinish(other);
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.rows_committed, 7);
  assert_int_equal(st.batches_committed, want_batches);
  assert_int_equal(st.conflict_replays, 0);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'BUSY'"), 6);
  stop_and_close(c);
}

static void test_batches_grow_while_busy(void **state) {
  (void)state;
  busy_case(3600 * 1000, 30, 3); /* warm-up, the blocked row, the five together */
  busy_case(50, 300, 7);         /* warm-up, the blocked row, five of their own */
}

/* Stop commits what is buffered, hands its acks over, then closes. */
static void test_stop_commits_buffered(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_stop", 100000, 3600 * 1000, 2);
  for (int i = 0; i < 250; i++)
    add_row(c, "STOP", c->base_ms + i * 1000, i + 1);
  add_ack(c);
  long rows = 250;
  PGconn *db = c->db;
  c->db = NULL;
  hw_pg_writer_stop(c->w, on_stopped, c);
  hw_fix f = make_fix(c->base_ms, 9);
  assert_int_equal(hw_pg_writer_add(c->w, "STOP", &f), -ESHUTDOWN);
  int64_t deadline = hw_now_ms() + WAIT_MS;
  while (!c->stopped) {
    assert_true(hw_now_ms() < deadline);
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  assert_int_equal(c->acks_seen, 1);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM positions"), rows);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  PQfinish(db);
  free(c->rows_before);
  free(c);
}

/* The writer's sessions are killed mid-stream: they reconnect, unacknowledged batches are sent
 * again, and still every row is stored once and every ack arrives once, in order. */
static void test_reconnect_replays(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_reconnect", 400, 10, 2);
  c->check_visible = 1;
  const int total = 12000;
  int killed = 0;
  for (int i = 0; i < total; i += 100) {
    for (int k = 0; k < 100; k++)
      add_row(c, "RC", c->base_ms + (i + k) * 100, i + k + 1);
    add_ack(c);
    uv_run(&c->loop, UV_RUN_NOWAIT);
    if (i == 4000 || i == 8000) {
      /* Both sessions up (again), and something committed already. */
      hw_pg_writer_stats st;
      int64_t deadline = hw_now_ms() + WAIT_MS;
      do {
        assert_true(hw_now_ms() < deadline);
        uv_run(&c->loop, UV_RUN_ONCE);
        hw_pg_writer_get_stats(c->w, &st);
      } while (c->acks_seen == 0 || st.reconnects < (uint64_t)killed ||
               scalar(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                         "'haulwatch-pgwriter' AND datname = current_database()") < 2);
      killed += (int)scalar(c, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM "
                               "pg_stat_activity WHERE application_name = 'haulwatch-pgwriter' "
                               "AND datname = current_database()");
    }
  }
  run_until_acked(c);
  assert_int_equal(killed, 4);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'RC'"), total);
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.reconnects, 4);
  assert_int_equal(hw_pg_writer_backlog(c->w), 0);
  fprintf(stderr, "  sessions killed %d, reconnects %llu, conflict replays %llu\n", killed,
          (unsigned long long)st.reconnects, (unsigned long long)st.conflict_replays);
  stop_and_close(c);
}

/* An error other than a duplicate key: logged, nothing acknowledged, the batch retried until
 * PostgreSQL takes it. */
static void test_other_error_retried(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_error", 100, 10, 1);
  add_row(c, "ERR", c->base_ms, 1);
  add_ack(c);
  run_until_acked(c);
  exec_while_running(c, "ALTER TABLE positions ADD CONSTRAINT hw_test_alt CHECK (alt_m < 1000) "
                        "NOT VALID");
  for (int i = 1; i < 50; i++)
    add_row(c, "ERR", c->base_ms + i * 1000, i + 1);
  hw_fix f = make_fix(c->base_ms + 50 * 1000, 51);
  f.alt_m = 5000; /* refused by the server's new rule, not by the encoder */
  assert_int_equal(hw_pg_writer_add(c->w, "ERR", &f), 0);
  c->rows_added++;
  add_ack(c);
  run_for(c, 700); /* several attempts at 100, 200, 400 ms */
  assert_int_equal(c->acks_seen, 1);
  assert_int_equal(hw_pg_writer_backlog(c->w), 50);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions"), 1);
  exec_while_running(c, "ALTER TABLE positions DROP CONSTRAINT hw_test_alt");
  run_until_acked(c);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions"), 51);
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.rows_committed, 51);
  assert_int_equal(st.conflict_replays, 0);
  assert_int_equal(st.reconnects, 0);
  stop_and_close(c);
}

/* The server stops reading mid-COPY (its first row waits for another transaction's uncommitted
 * row with the same key): the writer waits for the socket with ~11 MB queued, then that
 * transaction commits, the COPY fails with 23505 and the replay stores every other row. */
static void test_blocked_copy(void **state) {
  (void)state;
  const int rows = 100000;
  ctx *c = ctx_new("hw_pg_it_blocked", (uint32_t)rows, 10, 1);
  add_row(c, "BLK", c->base_ms - 1000, 1); /* lets the writer connect and do its upkeep */
  add_ack(c);
  run_until_acked(c);
  PGconn *other = hw_test_pg_connect(c->conninfo);
  hw_test_pg_scalar(other, "BEGIN");
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO positions VALUES ('BLK', to_timestamp(%lld / 1000.0), 0, now(), 0, 0, 0, "
           "0, 424242, 0, 0, 0, NULL, 0)",
           (long long)c->base_ms);
  hw_test_pg_scalar(other, sql);
  for (int i = 0; i < rows; i++)
    add_row(c, "BLK", c->base_ms + i * 10, i + 2);
  add_ack(c);
  long waiting = 0;
  for (int i = 0; i < 100 && !waiting; i++) {
    run_for(c, 20);
    waiting = scalar(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'haulwatch-pgwriter' AND wait_event_type = 'Lock' "
                        "AND datname = current_database()");
  }
  assert_int_equal(waiting, 1);
  run_for(c, 200);
  assert_int_equal(c->acks_seen, 1);
  hw_test_pg_scalar(other, "COMMIT");
  run_until_acked(c);
  PQfinish(other);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id = 'BLK'"), rows + 1);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE alt_m = 424242"), 1);
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.conflict_replays, 1);
  stop_and_close(c);
}

/* PostgreSQL unreachable: rows wait, stop drops them unacknowledged and still closes cleanly. */
static void test_unreachable_stop(void **state) {
  (void)state;
  ctx *c = calloc(1, sizeof *c);
  assert_non_null(c);
  snprintf(c->conninfo, sizeof c->conninfo, "host=127.0.0.1 port=%d user=postgres dbname=none",
           hw_test_free_port());
  assert_int_equal(uv_loop_init(&c->loop), 0);
  hw_pg_writer_config cfg = {.conninfo = c->conninfo, .batch_rows = 10, .connections = 2};
  assert_int_equal(hw_pg_writer_start(&c->w, &c->loop, &cfg, on_durable, c), 0);
  c->rows_before = calloc(MAX_ACKS, sizeof *c->rows_before);
  for (int i = 0; i < 25; i++)
    add_row(c, "GONE", hw_now_ms() + i, i + 1);
  add_ack(c);
  run_for(c, 400); /* a few refused attempts with backoff */
  assert_int_equal(c->acks_seen, 0);
  assert_int_equal(hw_pg_writer_backlog(c->w), 25);
  hw_pg_writer_stop(c->w, on_stopped, c);
  int64_t deadline = hw_now_ms() + WAIT_MS;
  while (!c->stopped) {
    assert_true(hw_now_ms() < deadline);
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  assert_int_equal(c->acks_seen, 0);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  free(c->rows_before);
  free(c);
}

/* printf-style scalar query on the checking connection. */
static long scalarf(ctx *c, const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  return hw_test_pg_scalar(c->db, sql);
}

static hw_pg_writer_stats stats_of(ctx *c) {
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  return st;
}

/* Commits what was added: one ack behind it, run until it arrives. */
static void commit_now(ctx *c) {
  add_ack(c);
  run_until_acked(c);
}

/* Two different fixes in one device second (JT/T 808 times are whole seconds): one row, the
 * alarm bits of both, the other columns of the fix received first; within one batch, across
 * batches, against a row another session stored; a true resend and a replayed batch change
 * nothing (the row's xmin shows whether it was written again). */
static void test_same_key_merge(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_merge", 1000, 20, 1);
  const int64_t ts = c->base_ms;
  const char *row = "terminal_id = 'SAME' AND ts = to_timestamp(%lld / 1000.0)";
  char where[256];
  snprintf(where, sizeof where, row, (long long)ts);

  /* Within one batch, no hint: the COPY fails on its own second row and the merge folds them. */
  hw_fix a = make_fix(ts, 1), b = make_fix(ts, 2);
  a.alarm = 0x100;
  a.status = 0x3;
  b.alarm = 0x1; /* emergency */
  b.status = 0x1;
  b.lat_e6 = a.lat_e6 + 5000;
  b.recv_ms = a.recv_ms + 300;
  add_fix(c, "SAME", &a, 0);
  add_fix(c, "SAME", &b, 0);
  commit_now(c);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE terminal_id = 'SAME'"), 1);
  assert_int_equal(scalarf(c, "SELECT alarm FROM positions WHERE %s", where), 0x101);
  assert_int_equal(scalarf(c, "SELECT status FROM positions WHERE %s", where), 0x3);
  assert_int_equal(scalarf(c, "SELECT round(lat * 1e6)::bigint FROM positions WHERE %s", where),
                   a.lat_e6);
  assert_int_equal(scalarf(c, "SELECT seq FROM positions WHERE %s", where), 1);
  hw_pg_writer_stats st = stats_of(c);
  assert_int_equal(st.conflict_replays, 1);
  assert_int_equal(st.merge_batches, 0);
  assert_int_equal(st.rows_folded, 1);
  long xmin = scalarf(c, "SELECT xmin::text::bigint FROM positions WHERE %s", where);

  /* A true resend (same values, received later) with and without the hint, and the second fix
   * exactly as added before (a batch replayed after its COMMIT outcome was lost): no write. */
  hw_fix again = a;
  again.recv_ms += 5000;
  add_fix(c, "SAME", &again, HW_PG_ROW_MAYBE_DUP);
  commit_now(c);
  add_fix(c, "SAME", &again, 0);
  add_fix(c, "SAME", &b, 0);
  commit_now(c);
  assert_int_equal(scalarf(c, "SELECT xmin::text::bigint FROM positions WHERE %s", where), xmin);
  assert_int_equal(scalarf(c, "SELECT alarm FROM positions WHERE %s", where), 0x101);
  st = stats_of(c);
  assert_int_equal(st.merge_batches, 1);
  assert_int_equal(st.conflict_replays, 2);
  assert_int_equal(st.rows_folded, 1 + 1 + 2);

  /* Across batches: the first committed, then a second fix of that second with a new bit. */
  hw_fix d = make_fix(ts + 1000, 3), e = make_fix(ts + 1000, 4);
  d.alarm = 0x4;
  e.alarm = 0x80000001u; /* bit 31 too: stored as bigint, must stay positive */
  e.recv_ms = d.recv_ms + 1000;
  e.lat_e6 = d.lat_e6 - 7000;
  add_fix(c, "SAME", &d, 0);
  commit_now(c);
  add_fix(c, "SAME", &e, 0);
  commit_now(c);
  snprintf(where, sizeof where, row, (long long)(ts + 1000));
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE %s", where), 1);
  assert_int_equal(scalarf(c, "SELECT alarm FROM positions WHERE %s", where), 0x80000005L);
  assert_int_equal(scalarf(c, "SELECT round(lat * 1e6)::bigint FROM positions WHERE %s", where),
                   d.lat_e6);

  /* Committed in the other order (a later batch on another connection, or a replay): the fix
   * received first still gives the columns, so the result does not depend on commit order. */
  hw_fix early = make_fix(ts + 2000, 5), late = make_fix(ts + 2000, 6);
  early.alarm = 0x2;
  late.alarm = 0;
  late.recv_ms = early.recv_ms + 2000;
  late.lat_e6 = early.lat_e6 + 9000;
  add_fix(c, "SAME", &late, 0);
  commit_now(c);
  add_fix(c, "SAME", &early, HW_PG_ROW_MAYBE_DUP);
  commit_now(c);
  snprintf(where, sizeof where, row, (long long)(ts + 2000));
  assert_int_equal(scalarf(c, "SELECT alarm FROM positions WHERE %s", where), 0x2);
  assert_int_equal(scalarf(c, "SELECT round(lat * 1e6)::bigint FROM positions WHERE %s", where),
                   early.lat_e6);
  assert_int_equal(scalarf(c, "SELECT seq FROM positions WHERE %s", where), 5);
  assert_int_equal(scalarf(c, "SELECT (extract(epoch FROM recv_ts) * 1000)::bigint FROM positions "
                              "WHERE %s", where), early.recv_ms);

  /* A row another session stored (another daemon): merged into, not duplicated. */
  exec_while_running(c, "INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, "
                        "speed_kmh, heading, alt_m, alarm, status, odometer_km, source) "
                        "VALUES ('OTHER', date_trunc('second', now() - interval '1 hour'), 0, "
                        "now() - interval '1 hour', "
                        "1, 2, 0, 0, 0, 16, 3, 0, 1)");
  long other_ms = scalarf(c, "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM positions "
                             "WHERE terminal_id = 'OTHER'");
  hw_fix o = make_fix(other_ms, 7);
  o.alarm = 0x1;
  add_fix(c, "OTHER", &o, 0);
  commit_now(c);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE terminal_id = 'OTHER'"), 1);
  assert_int_equal(scalarf(c, "SELECT alarm FROM positions WHERE terminal_id = 'OTHER'"), 0x11);
  assert_int_equal(scalarf(c, "SELECT lat FROM positions WHERE terminal_id = 'OTHER'"), 1);

  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions"), 4);
  assert_int_equal(c->acks_seen, c->acks_added);
  assert_int_equal(hw_pg_writer_backlog(c->w), 0);
  stop_and_close(c);
}

/* HW_PG_ROW_MAYBE_DUP: a batch holding such a row goes to the merge at once (no failed COPY:
 * conflict_replays does not move); batches without it keep the plain COPY and its fallback. */
static void test_maybe_dup_hint(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_hint", 100000, 20, 1);
  hw_fix f = make_fix(c->base_ms, 1);
  assert_int_equal(hw_pg_writer_add_flags(c->w, "HINT", &f, 0x2), -EINVAL);
  assert_int_equal(hw_pg_writer_backlog(c->w), 0);

  /* Without the hint: plain COPY. */
  hw_fix first[100];
  for (int i = 0; i < 100; i++) {
    first[i] = make_fix(c->base_ms + i * 1000, i + 1);
    add_fix(c, "HINT", &first[i], 0);
  }
  commit_now(c);
  hw_pg_writer_stats st = stats_of(c);
  assert_int_equal(st.merge_batches, 0);
  assert_int_equal(st.conflict_replays, 0);
  long xmin_a = scalarf(c, "SELECT min(xmin::text::bigint) FROM positions");
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE xmin::text::bigint = %ld",
                           xmin_a), 100);

  /* All hinted: 50 resends of the batch above (received later) and 50 new rows. */
  for (int i = 50; i < 150; i++) {
    hw_fix g = i < 100 ? first[i] : make_fix(c->base_ms + i * 1000, i + 1);
    g.recv_ms += 1000;
    add_fix(c, "HINT", &g, HW_PG_ROW_MAYBE_DUP);
  }
  commit_now(c);
  st = stats_of(c);
  assert_int_equal(st.merge_batches, 1);
  assert_int_equal(st.conflict_replays, 0);
  assert_int_equal(st.rows_folded, 50);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions"), 150);
  /* The resent rows were not written again. */
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE xmin::text::bigint = %ld",
                           xmin_a), 100);

  /* Mixed: 40 new rows without the hint, 10 rows of the first batch again without the hint but
   * with a new alarm bit, and one hinted row: straight to the merge, no COPY failed. */
  for (int i = 150; i < 190; i++)
    add_row(c, "HINT", c->base_ms + i * 1000, i + 1);
  for (int i = 0; i < 10; i++) {
    hw_fix g = first[i];
    g.recv_ms += 2000;
    g.alarm |= 0x1;
    g.lat_e6 += 1000;
    add_fix(c, "HINT", &g, 0);
  }
  hw_fix h = make_fix(c->base_ms + 190 * 1000, 191);
  add_fix(c, "HINT", &h, HW_PG_ROW_MAYBE_DUP);
  commit_now(c);
  st = stats_of(c);
  assert_int_equal(st.merge_batches, 2);
  assert_int_equal(st.conflict_replays, 0);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions"), 191);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE alarm & 1 = 1 AND seq <= 10"),
                   10);
  /* First-received columns: the first batch's latitude stayed. */
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE seq <= 10 AND "
                              "round(lat * 1e6)::bigint = 31000000 + seq"), 10);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE seq <= 10 AND "
                              "alarm = (x'80000000'::bigint | seq | 1)"), 10);

  /* No hint again, with a resend: the COPY fails and the fallback merges it. */
  hw_fix r = first[99];
  r.recv_ms += 3000;
  add_fix(c, "HINT", &r, 0);
  add_row(c, "HINT", c->base_ms + 191 * 1000, 192);
  commit_now(c);
  st = stats_of(c);
  assert_int_equal(st.merge_batches, 2);
  assert_int_equal(st.conflict_replays, 1);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions"), 192);
  assert_int_equal(c->acks_seen, c->acks_added);
  stop_and_close(c);
}

/* Two connections commit overlapping batches in parallel: each key comes in eight rounds, each
 * with its own alarm bit and position, rounds 2 and 3 hinted. Adjacent batches share their keys
 * and race (a COPY waits for the other session's uncommitted rows, fails, replays; two merges
 * lock keys in the same order). Whatever the commit order: one row per key, every bit, the
 * columns of round 0 (received first). */
static void test_parallel_same_keys(void **state) {
  (void)state;
  ctx *c = ctx_new("hw_pg_it_parallel", 50, 5, 2);
  const int keys = 25, rounds = 8;
  int64_t recv0 = hw_now_ms();
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < keys; k++) {
      hw_fix f = make_fix(c->base_ms + k * 1000, r * 100 + k + 1);
      f.alarm = 1u << r;
      f.lat_e6 = 30000000 + r * 1000 + k;
      f.recv_ms = recv0 + r * 10;
      add_fix(c, "PAR", &f, r == 2 || r == 3 ? HW_PG_ROW_MAYBE_DUP : 0);
    }
    add_ack(c);
  }
  run_until_acked(c);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE terminal_id = 'PAR'"), keys);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE terminal_id = 'PAR' AND "
                              "alarm = 255"), keys);
  assert_int_equal(scalarf(c, "SELECT count(*) FROM positions WHERE terminal_id = 'PAR' AND "
                              "round(lat * 1e6)::bigint = 30000000 + seq - 1"), keys);
  hw_pg_writer_stats st = stats_of(c);
  assert_int_equal(st.batches_committed, (uint64_t)rounds / 2);
  /* Every batch holds each key twice: the unhinted three fail their COPY, the hinted one does
   * not try; each folds one row per key into the other. */
  assert_int_equal(st.merge_batches, 1);
  assert_int_equal(st.conflict_replays, 3);
  assert_int_equal(st.rows_folded, (uint64_t)rounds / 2 * keys);
  fprintf(stderr, "  parallel same keys: conflict replays %llu, merges %llu\n",
          (unsigned long long)st.conflict_replays, (unsigned long long)st.merge_batches);
  stop_and_close(c);
}

/* Volume through full batches with the pipeline's backpressure (the backlog kept under 50000):
 * 60,000 rows of 100 terminals in batches of at most 5000, an ack every 10 rows; every row is
 * stored once and the batches are bounded. flags HW_PG_ROW_MAYBE_DUP sends the same volume down
 * the merge path (no row stored before, so none folds). How fast is ops/bench's question, not a
 * test's. */
static void volume(uint32_t conns, unsigned flags) {
  ctx *c = ctx_new("hw_pg_it_volume", 5000, 50, conns);
  const int terminals = 100, per = 600;
  long total = (long)terminals * per;
  for (int i = 0; i < per; i += 10) {
    for (int t = 0; t < terminals; t++) {
      char tid[16];
      snprintf(tid, sizeof tid, "R%03d", t);
      for (int k = 0; k < 10; k++) {
        hw_fix f = make_fix(c->base_ms + (i + k) * 100, i + k + 1);
        add_fix(c, tid, &f, flags);
      }
      add_ack(c);
    }
    while (hw_pg_writer_backlog(c->w) > 50000)
      uv_run(&c->loop, UV_RUN_ONCE);
    uv_run(&c->loop, UV_RUN_NOWAIT);
  }
  run_until_acked(c);
  assert_int_equal(scalar(c, "SELECT count(*) FROM positions WHERE terminal_id LIKE 'R%'"), total);
  assert_int_equal(scalar(c, "SELECT count(DISTINCT (terminal_id, ts)) FROM positions"), total);
  hw_pg_writer_stats st;
  hw_pg_writer_get_stats(c->w, &st);
  assert_int_equal(st.rows_committed, (uint64_t)total);
  assert_true(st.batches_committed >= (uint64_t)total / 5000);
  assert_int_equal(st.rows_folded, 0);
  if (flags)
    assert_true(st.merge_batches == st.batches_committed);
  else
    assert_int_equal(st.merge_batches, 0);
  stop_and_close(c);
}

static void test_volume(void **state) {
  (void)state;
  volume(1, 0);
  volume(2, 0);
  volume(1, HW_PG_ROW_MAYBE_DUP);
  volume(2, HW_PG_ROW_MAYBE_DUP);
}

/* --- pg_async ---------------------------------------------------------------------------- */

typedef struct async_ctx {
  int calls;
  int order[8];
  char values[8][64];
  int nulls;
} async_ctx;

typedef struct async_req {
  async_ctx *ac;
  int n;
} async_req;

static void on_async(void *arg, const PGresult *res) {
  async_req *r = arg;
  async_ctx *ac = r->ac;
  int i = ac->calls++;
  ac->order[i] = r->n;
  if (!res) {
    ac->nulls++;
    snprintf(ac->values[i], sizeof ac->values[i], "(null)");
  } else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    snprintf(ac->values[i], sizeof ac->values[i], "%s",
             PQgetisnull(res, 0, 0) ? "NULL" : PQgetvalue(res, 0, 0));
  } else {
    snprintf(ac->values[i], sizeof ac->values[i], "ERR %s",
             PQresultErrorField(res, PG_DIAG_SQLSTATE));
  }
}

static void on_async_stopped(void *arg) { *(int *)arg = 1; }

static void test_pg_async(void **state) {
  (void)state;
  char conninfo[512];
  hw_test_fresh_db("hw_pg_it_async", conninfo, sizeof conninfo);
  PGconn *db = hw_test_pg_connect(conninfo);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  hw_pg_async *a;
  assert_int_equal(hw_pg_async_start(&a, &loop, conninfo, "pgtest"), 0);
  async_ctx ac;
  memset(&ac, 0, sizeof ac);
  async_req r[8];
  for (int i = 0; i < 8; i++)
    r[i] = (async_req){&ac, i};
  char p0[] = "a'b";
  const char *params0[] = {p0, NULL};
  assert_int_equal(hw_pg_async_query(a, "SELECT $1::text || coalesce($2, '-')", 2, params0,
                                     on_async, &r[0]), 0);
  p0[0] = 'X'; /* params were copied */
  assert_int_equal(hw_pg_async_query(a, "SELECT 1/0", 0, NULL, on_async, &r[1]), 0);
  assert_int_equal(hw_pg_async_query(a, "SELECT 40 + 2", 0, NULL, on_async, &r[2]), 0);
  int64_t deadline = hw_now_ms() + WAIT_MS;
  while (ac.calls < 3) {
    assert_true(hw_now_ms() < deadline);
    uv_run(&loop, UV_RUN_ONCE);
  }
  assert_int_equal(ac.order[0], 0);
  assert_string_equal(ac.values[0], "a'b-");
  assert_string_equal(ac.values[1], "ERR 22012");
  assert_string_equal(ac.values[2], "42");
  /* The session is killed while idle: the next query runs on a new one. */
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                                         "FROM pg_stat_activity WHERE application_name = "
                                         "'haulwatch-pgtest' AND datname = current_database()"), 1);
  /* A query in flight when its session dies gets NULL; the one behind it still runs. */
  assert_int_equal(hw_pg_async_query(a, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL,
                                     on_async, &r[3]), 0);
  assert_int_equal(hw_pg_async_query(a, "SELECT 'after'", 0, NULL, on_async, &r[4]), 0);
  while (ac.calls < 5) {
    assert_true(hw_now_ms() < deadline);
    uv_run(&loop, UV_RUN_ONCE);
  }
  assert_int_equal(ac.order[3], 3);
  assert_string_equal(ac.values[3], "(null)"); /* its session died under it */
  assert_int_equal(ac.order[4], 4);
  assert_string_equal(ac.values[4], "after");
  assert_int_equal(ac.nulls, 1);
  /* Queued at stop: NULL, then the loop closes. */
  assert_int_equal(hw_pg_async_query(a, "SELECT pg_sleep(10)", 0, NULL, on_async, &r[5]), 0);
  assert_int_equal(hw_pg_async_query(a, "SELECT 6", 0, NULL, on_async, &r[6]), 0);
  int stopped = 0;
  hw_pg_async_stop(a, on_async_stopped, &stopped);
  assert_int_equal(ac.calls, 7);
  assert_string_equal(ac.values[5], "(null)");
  assert_string_equal(ac.values[6], "(null)");
  while (!stopped)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&loop), 0);
  PQfinish(db);
}

int main(void) {
  hw_test_pg_admin();
  if (getenv("HW_TEST_FILTER")) /* e.g. "test_conflict*" */
    cmocka_set_test_filter(getenv("HW_TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_acks_in_order_after_visible),
      cmocka_unit_test(test_conflict_replay),
      cmocka_unit_test(test_same_key_merge),
      cmocka_unit_test(test_maybe_dup_hint),
      cmocka_unit_test(test_parallel_same_keys),
      cmocka_unit_test(test_default_partition_and_bad_fix),
      cmocka_unit_test(test_batch_triggers),
      cmocka_unit_test(test_batches_grow_while_busy),
      cmocka_unit_test(test_stop_commits_buffered),
      cmocka_unit_test(test_reconnect_replays),
      cmocka_unit_test(test_other_error_retried),
      cmocka_unit_test(test_blocked_copy),
      cmocka_unit_test(test_unreachable_stop),
      cmocka_unit_test(test_pg_async),
      cmocka_unit_test(test_volume),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
