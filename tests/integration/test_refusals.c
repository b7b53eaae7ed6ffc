/* registry/refusals against a fresh database, in process: attempts merged per (protocol, source,
 * reason) with their counts, the last claim kept, at most HW_REFUSALS_MAX_PENDING distinct keys
 * between writes (the rest counted as dropped), what is pending written at stop, merging into
 * rows already there, and expiry by retention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "registry/refusals.h"

#define DB "hw_test_refusals"

typedef struct fixture {
  hw_test_loop env;
  char conninfo[512];
  PGconn *db;
  hw_pg_async *pg;
  hw_refusals *r;
  uint64_t want_recorded;
} fixture;

static void fx_start(fixture *f, uint32_t retention_days, int fresh) {
  if (fresh) {
    memset(f, 0, sizeof *f);
    hw_test_fresh_db(DB, f->conninfo, sizeof f->conninfo);
    f->db = hw_test_pg_connect(f->conninfo);
  }
  hw_test_loop_init(&f->env);
  assert_int_equal(hw_pg_async_start(&f->pg, &f->env.loop, f->conninfo, "test"), 0);
  assert_int_equal(hw_refusals_start(&f->r, &f->env.loop, f->pg, retention_days), 0);
}

/* Stops refusals (which writes what is pending), then the connection and the loop. */
static void fx_stop(fixture *f, int close_db) {
  int done = 0;
  hw_refusals_stop(f->r, hw_test_on_done, &done);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &done));
  done = 0;
  hw_pg_async_stop(f->pg, hw_test_on_done, &done);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &done));
  hw_test_loop_close(&f->env);
  if (close_db)
    PQfinish(f->db);
}

static int recorded_enough(void *arg) {
  fixture *f = arg;
  hw_refusals_stats st;
  hw_refusals_get_stats(f->r, &st);
  return st.recorded >= f->want_recorded;
}

static long scalar(fixture *f, const char *sql) { return hw_test_pg_scalar(f->db, sql); }

static void text_value(fixture *f, char *out, size_t cap, const char *sql) {
  PGresult *r = PQexec(f->db, sql);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_int_equal(PQntuples(r), 1);
  snprintf(out, cap, "%s", PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0));
  PQclear(r);
}

/* 3000 attempts from one address with 1000 different claimed ids and two reasons, plus some from
 * a second address: three rows, the counts adding up, the last claim kept. */
static void test_merged_per_source(void **state) {
  (void)state;
  fixture f;
  char id[32], remote[32], got[512];
  fx_start(&f, 0, 1);
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "0138%08d", i);
    snprintf(remote, sizeof remote, "198.51.100.7:%d", 1024 + i);
    hw_refusals_add(f.r, "jt808", id, "京A12345", remote, "registration of an unknown terminal");
    hw_refusals_add(f.r, "jt808", id, NULL, remote, "registration of an unknown terminal");
    hw_refusals_add(f.r, "jt808", id, NULL, remote, "wrong auth code");
  }
  for (int i = 0; i < 5; i++)
    hw_refusals_add(f.r, "pb", "pb-x", NULL, "2001:db8::1:5000", "unknown terminal");
  f.want_recorded = 3005;
  assert_true(hw_test_loop_run_until(&f.env, recorded_enough, &f));
  assert_int_equal(scalar(&f, "SELECT count(*) FROM auth_refusals"), 3);
  text_value(&f, got, sizeof got,
             "SELECT count || '/' || terminal_id || '/' || coalesce(claimed_plate, '-') || '/' || remote_addr "
             "FROM auth_refusals WHERE source = '198.51.100.7' AND reason = 'registration of an unknown terminal'");
  assert_string_equal(got, "2000/013800000999/-/198.51.100.7:2023");
  /* IPv6: the port is after the last colon. */
  text_value(&f, got, sizeof got, "SELECT count || '/' || source FROM auth_refusals WHERE protocol = 'pb'");
  assert_string_equal(got, "5/2001:db8::1");

  /* More of the same later: added to the existing row, first_at kept. */
  text_value(&f, got, sizeof got, "SELECT first_at FROM auth_refusals WHERE reason = 'wrong auth code'");
  char first[512];
  snprintf(first, sizeof first, "%s", got);
  hw_test_loop_run_for(&f.env, 20);
  hw_refusals_add(f.r, "jt808", "013800000001", NULL, "198.51.100.7:9", "wrong auth code");
  f.want_recorded = 3006;
  assert_true(hw_test_loop_run_until(&f.env, recorded_enough, &f));
  text_value(&f, got, sizeof got,
             "SELECT count || '/' || terminal_id || '/' || (at > first_at)::text FROM auth_refusals "
             "WHERE reason = 'wrong auth code'");
  assert_string_equal(got, "1001/013800000001/true");
  text_value(&f, got, sizeof got, "SELECT first_at FROM auth_refusals WHERE reason = 'wrong auth code'");
  assert_string_equal(got, first);
  fx_stop(&f, 1);
}

/* More distinct keys than may wait between writes: the excess is counted as dropped, never
 * stored; the rest all are. */
static void test_pending_bounded(void **state) {
  (void)state;
  fixture f;
  char remote[32], why[32];
  fx_start(&f, 0, 1);
  const int extra = 100;
  for (int i = 0; i < HW_REFUSALS_MAX_PENDING + extra; i++) {
    snprintf(remote, sizeof remote, "10.%d.%d.%d:1", i >> 16 & 255, i >> 8 & 255, i & 255);
    snprintf(why, sizeof why, "unknown terminal");
    hw_refusals_add(f.r, "pb", NULL, NULL, remote, why);
  }
  hw_refusals_stats st;
  hw_refusals_get_stats(f.r, &st);
  assert_int_equal(st.dropped, extra);
  f.want_recorded = HW_REFUSALS_MAX_PENDING;
  assert_true(hw_test_loop_run_until(&f.env, recorded_enough, &f));
  assert_int_equal(scalar(&f, "SELECT count(*) FROM auth_refusals"), HW_REFUSALS_MAX_PENDING);
  assert_int_equal(scalar(&f, "SELECT sum(count) FROM auth_refusals"), HW_REFUSALS_MAX_PENDING);
  fx_stop(&f, 1);
}

/* What is pending when the daemon stops is written before stop completes; a restart with a
 * retention deletes older rows and keeps newer ones. */
static void test_flush_at_stop_and_expiry(void **state) {
  (void)state;
  fixture f;
  fx_start(&f, 0, 1);
  hw_refusals_add(f.r, "pb", "x", NULL, "203.0.113.9:1", "unknown terminal");
  hw_refusals_add(f.r, "pb", "y", NULL, "203.0.113.9:2", "unknown terminal");
  fx_stop(&f, 0); /* before the first tick */
  assert_int_equal(scalar(&f, "SELECT count FROM auth_refusals WHERE source = '203.0.113.9'"), 2);

  PGresult *r = PQexec(f.db, "INSERT INTO auth_refusals (protocol, source, reason, count, first_at, at) VALUES "
                             "('pb', '203.0.113.1', 'unknown terminal', 4, now() - interval '9 days', now() - interval '8 days'),"
                             "('pb', '203.0.113.2', 'unknown terminal', 5, now() - interval '9 days', now() - interval '6 days')");
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  fx_start(&f, 7, 0);
  hw_refusals_stats st;
  for (int i = 0; i < 200; i++) {
    hw_test_loop_run_for(&f.env, 50);
    hw_refusals_get_stats(f.r, &st);
    if (st.purged)
      break;
  }
  assert_int_equal(st.purged, 1);
  assert_int_equal(scalar(&f, "SELECT count(*) FROM auth_refusals WHERE source = '203.0.113.1'"), 0);
  assert_int_equal(scalar(&f, "SELECT count(*) FROM auth_refusals WHERE source IN ('203.0.113.2', '203.0.113.9')"), 2);
  fx_stop(&f, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merged_per_source),
      cmocka_unit_test(test_pending_bounded),
      cmocka_unit_test(test_flush_at_stop_and_expiry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
