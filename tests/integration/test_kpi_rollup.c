/* The violations' monthly roll-up (schema 024, violation_monthly) and the KPI statement that
 * reads it (sinks/kpi_query.c), against the episodes themselves. No daemon: a fresh database,
 * violations written by plain SQL as any writer might (multi-row inserts, the daemon's upsert on
 * episode_key, updates of every kind, deletes, a truncate), from a seeded generator: 12 vehicles
 * in two counties, episodes from 2026-09-20 to 2026-12-10 of speeding, fatigue_continuous (up to
 * 45 days long, so across months, one in six still open) and fatigue_daily (never counted).
 *
 * After every step the roll-up must equal a reference computed here from violations with another
 * formulation (each month's GMT+8 bounds written as text, the overlap clipped at 0), row for row:
 * nothing missing, nothing extra, no row left at zero. Then `report kpi`'s statement, by county,
 * over periods that are one whole month, two whole months, whole months with edge days, edge days
 * only, and a week inside a month: speeding_count and fatigue_hours of every group must equal the
 * reference (episodes started in the period; fatigue seconds inside it, an open episode running to
 * the vehicle's last fix, in hours to four decimals).
 *
 * Last, the daemon's write of a vehicle's day (hw_daily_upsert): a day is replaced only by figures
 * at least as far along (a later last qualified fix, or the same and at least as many records),
 * so a worker's stale pending write of a terminal that moved to another worker cannot undo what
 * the new owner wrote; the monthly roll-up follows what was kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sinks/daily_store.h"
#include "sinks/kpi_query.h"

#define NVEH 12

static PGconn *db;
static uint64_t rng = 20261207;

static unsigned rnd(unsigned n) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (unsigned)(rng >> 33) % n;
}

static void sql(const char *q) { hw_test_pg_scalar(db, q); }

/* Rows of (reference EXCEPT roll-up) plus (roll-up EXCEPT reference). */
#define REF_MONTHS                                                                                 \
  "SELECT to_char(m, 'YYYY-MM-DD') AS d, (to_char(m, 'YYYY-MM-DD') || ' 00:00+08')::timestamptz AS s," \
  " (to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00+08')::timestamptz AS e"              \
  " FROM generate_series(timestamp '2026-08-01', timestamp '2027-03-01', interval '1 month') m"
#define REF_ROLLUP                                                                                 \
  "SELECT terminal_id, month, speeding, fatigue_s FROM ("                                          \
  " SELECT x.terminal_id, mo.d::date AS month,"                                                    \
  "  count(*) FILTER (WHERE x.kind = 'speeding' AND x.started_at >= mo.s AND x.started_at < mo.e) AS speeding," \
  "  coalesce(sum(extract(epoch FROM least(x.ended_at, mo.e) - greatest(x.started_at, mo.s)))"    \
  "   FILTER (WHERE x.kind = 'fatigue_continuous' AND x.ended_at IS NOT NULL"                      \
  "   AND least(x.ended_at, mo.e) > greatest(x.started_at, mo.s)), 0) AS fatigue_s"                \
  " FROM violations x, (" REF_MONTHS ") mo GROUP BY 1, 2) r WHERE speeding > 0 OR fatigue_s > 0"

static void check_rollup(const char *step) {
  long diff = hw_test_pg_scalar(
      db, "SELECT (SELECT count(*) FROM (" REF_ROLLUP " EXCEPT SELECT terminal_id, month, speeding,"
          " fatigue_s FROM violation_monthly) a) + (SELECT count(*) FROM (SELECT terminal_id, month,"
          " speeding, fatigue_s FROM violation_monthly EXCEPT " REF_ROLLUP ") b)");
  long rows = hw_test_pg_scalar(db, "SELECT count(*) FROM violation_monthly");
  print_message("%s: %ld roll-up rows, %ld differ from the episodes\n", step, rows, diff);
  assert_int_equal(diff, 0);
}

static void random_interval(char *start, char *end, size_t cap, const char *kind) {
  /* 2026-09-20 00:00+08 plus up to 81 days, in seconds. */
  unsigned off = rnd(81 * 86400);
  unsigned len = !strcmp(kind, "speeding") ? 60 + rnd(3600) : rnd(45 * 86400);
  snprintf(start, cap, "timestamptz '2026-09-20 00:00+08' + interval '%u seconds'", off);
  if (strcmp(kind, "speeding") && rnd(6) == 0)
    snprintf(end, cap, "NULL");
  else
    snprintf(end, cap, "timestamptz '2026-09-20 00:00+08' + interval '%u seconds'", off + len);
}

static const char *random_kind(void) {
  static const char *const kinds[] = {"speeding", "speeding", "fatigue_continuous",
                                      "fatigue_continuous", "fatigue_daily"};
  return kinds[rnd(5)];
}

/* count episodes in statements of up to 10 rows, keys from key0. */
static void insert_episodes(int key0, int count) {
  char q[8192], start[128], end[128];
  for (int k = key0; k < key0 + count;) {
    int n = snprintf(q, sizeof q, "INSERT INTO violations (kind, episode_key, terminal_id, started_at, ended_at) VALUES ");
    for (int i = 0; i < 10 && k < key0 + count; i++, k++) {
      const char *kind = random_kind();
      random_interval(start, end, sizeof start, kind);
      n += snprintf(q + n, sizeof q - (size_t)n, "%s('%s', 'e%d', 'r%u', %s, %s)", i ? ", " : "",
                    kind, k, rnd(NVEH), start, end);
    }
    sql(q);
  }
}

static void test_rollup_follows_every_write(void **state) {
  (void)state;
  char q[2048], start[128], end[128];
  check_rollup("empty");
  insert_episodes(0, 300);
  check_rollup("300 inserted");
  /* The daemon's upsert on episode_key: an open episode extended, then closed. */
  for (int i = 0; i < 40; i++) {
    const char *kind = random_kind();
    random_interval(start, end, sizeof start, kind);
    snprintf(q, sizeof q,
             "INSERT INTO violations (kind, episode_key, terminal_id, started_at, ended_at) "
             "SELECT kind, episode_key, terminal_id, started_at, greatest(started_at, %s) FROM violations "
             "WHERE episode_key = 'e%u' ON CONFLICT (episode_key) DO UPDATE SET ended_at = excluded.ended_at",
             strcmp(end, "NULL") ? end : "timestamptz '2026-12-31 00:00+08'", rnd(300));
    sql(q);
  }
  check_rollup("40 upserts");
  sql("UPDATE violations SET ended_at = started_at + interval '7 days' WHERE ended_at IS NULL AND id % 2 = 0");
  check_rollup("open episodes closed");
  sql("UPDATE violations SET started_at = started_at - interval '20 days' WHERE id % 7 = 0");
  check_rollup("starts moved");
  sql("UPDATE violations SET kind = CASE kind WHEN 'speeding' THEN 'fatigue_continuous' ELSE 'speeding' END, "
      "ended_at = coalesce(ended_at, started_at + interval '1 hour') WHERE id % 11 = 0");
  check_rollup("kinds swapped");
  sql("UPDATE violations SET terminal_id = 'r' || ((substr(terminal_id, 2)::int + 1) % 12) WHERE id % 5 = 0");
  check_rollup("terminals changed");
  long before = hw_test_pg_scalar(db, "SELECT count(*) FROM violation_monthly");
  /* The list's own updates (a state change, evidence) touch no figure: nothing written. */
  sql("SELECT count(hw_violation_transition(id, 'notified', 'tester', 'seen')) FROM violations WHERE id % 3 = 0");
  sql("UPDATE violations SET evidence = '{\"note\": 1}' WHERE id % 3 = 1");
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM violation_monthly"), before);
  check_rollup("states and evidence changed");
  sql("DELETE FROM violations WHERE id % 4 = 1");
  check_rollup("a quarter deleted");
  insert_episodes(1000, 60);
  check_rollup("60 more inserted");
  assert_true(hw_test_pg_scalar(db, "SELECT count(*) FROM violation_monthly") > 0);
}

/* Region (county) -> speeding, fatigue hours as text, from the episodes directly, for the GMT+8
 * days from..to; compared with the statement's row of the same group. */
static void check_kpi(const char *from, const char *to) {
  hw_kpi_request r;
  char err[256];
  assert_int_equal(hw_kpi_request_parse(&r, from, to, "320000", "region", "county", err, sizeof err), 0);
  PGresult *res = NULL;
  assert_int_equal(hw_kpi_run(db, &r, &res), 0);
  int speeding_col = -1, fatigue_col = -1;
  for (int c = 0; c < HW_KPI_NCOLS; c++) {
    if (!strcmp(hw_kpi_columns[c], "speeding_count"))
      speeding_col = c;
    if (!strcmp(hw_kpi_columns[c], "fatigue_hours"))
      fatigue_col = c;
  }
  assert_int_equal(PQntuples(res), 2);
  for (int i = 0; i < PQntuples(res); i++) {
    const char *grp = PQgetvalue(res, i, 0);
    char want[128];
    hw_test_pg_text(
        db, want, sizeof want,
        "WITH b AS (SELECT ('%s 00:00+08')::timestamptz AS lo, ('%s 00:00+08')::timestamptz + interval '1 day' AS hi)"
        " SELECT (SELECT count(*) FROM violations x JOIN vehicles v USING (terminal_id), b"
        "  WHERE v.region = '%s' AND x.kind = 'speeding' AND x.started_at >= b.lo AND x.started_at < b.hi)"
        " || ' ' || (SELECT round(coalesce(sum(extract(epoch FROM least(u, b.hi) - greatest(s, b.lo))), 0) / 3600, 4)"
        "  FROM (SELECT x.started_at AS s, coalesce(x.ended_at, (SELECT max(d.last_fix) FROM vehicle_daily d"
        "   WHERE d.terminal_id = x.terminal_id)) AS u FROM violations x JOIN vehicles v USING (terminal_id)"
        "   WHERE v.region = '%s' AND x.kind = 'fatigue_continuous') e, b"
        "  WHERE least(u, b.hi) > greatest(s, b.lo))",
        from, to, grp, grp);
    char got[128];
    snprintf(got, sizeof got, "%s %s", PQgetvalue(res, i, speeding_col), PQgetvalue(res, i, fatigue_col));
    print_message("%s..%s %s: statement %s, episodes %s\n", from, to, grp, got, want);
    assert_string_equal(got, want);
  }
  PQclear(res);
}

static void test_kpi_equals_the_episodes(void **state) {
  (void)state;
  /* Some episodes outside every period below must exist, or the periods prove little. */
  assert_true(hw_test_pg_scalar(db, "SELECT count(*) FROM violations WHERE ended_at IS NULL "
                                    "AND kind = 'fatigue_continuous'") > 0);
  check_kpi("2026-11-01", "2026-11-30"); /* one whole month */
  check_kpi("2026-10-01", "2026-11-30"); /* two whole months */
  check_kpi("2026-09-25", "2026-12-05"); /* two whole months and edge days */
  check_kpi("2026-10-15", "2026-11-20"); /* edge days only, across a month's end */
  check_kpi("2026-11-03", "2026-11-09"); /* a week inside a month */
  check_kpi("2026-12-01", "2026-12-31"); /* the month of the open episodes' last fixes */
  sql("TRUNCATE violations CASCADE");
  check_rollup("truncated");
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM violation_monthly"), 0);
}

/* Writes r0's day 2026-10-05 with these figures, then returns the stored records. */
static long write_day(uint32_t records, int64_t last_ms) {
  hw_day_figures f;
  memset(&f, 0, sizeof f);
  assert_int_equal(hw_daily_day_parse("2026-10-05", &f.day), 0);
  f.records = records;
  f.qualified = last_ms ? records : 0;
  f.m_total = f.m_complete = 1000.0 * records;
  f.first_ms = last_ms ? 1790000000000 : 0;
  f.last_ms = last_ms;
  const char *tid = "r0";
  assert_int_equal(hw_daily_upsert(db, &tid, &f, 1), 0);
  return hw_test_pg_scalar(db, "SELECT records FROM vehicle_daily WHERE terminal_id = 'r0' AND day = '2026-10-05'");
}

static void test_daily_write_newest_wins(void **state) {
  (void)state;
  const int64_t t1 = 1790000100000, t2 = 1790000200000, t3 = 1790000300000; /* 2026-09-21 */
  assert_int_equal(write_day(10, t2), 10);  /* new day */
  assert_int_equal(write_day(6, t1), 10);   /* stale: an earlier last fix, fewer records */
  assert_int_equal(write_day(20, t1), 10);  /* stale: an earlier last fix, however many records */
  assert_int_equal(write_day(9, t2), 10);   /* same last fix, fewer records */
  assert_int_equal(write_day(12, t2), 12);  /* same last fix, more records: newer */
  assert_int_equal(write_day(12, t2), 12);  /* the same again: kept (the same) */
  assert_int_equal(write_day(11, t3), 11);  /* a later last fix wins */
  assert_int_equal(write_day(30, 0), 11);   /* nothing qualified cannot replace a qualified day */
  assert_int_equal(hw_test_pg_scalar(db, "SELECT records FROM vehicle_monthly WHERE terminal_id = 'r0' "
                                         "AND month = '2026-10-01'"), 11);
  /* A day with nothing qualified yet is replaced by one with more records, then by a qualified one. */
  sql("DELETE FROM vehicle_daily WHERE terminal_id = 'r0' AND day = '2026-10-05'");
  assert_int_equal(write_day(3, 0), 3);
  assert_int_equal(write_day(2, 0), 3);
  assert_int_equal(write_day(4, 0), 4);
  assert_int_equal(write_day(1, t1), 1);
}

static int group_setup(void **state) {
  (void)state;
  char conninfo[512];
  hw_test_fresh_db("hw_test_kpi_rollup", conninfo, sizeof conninfo);
  db = hw_test_pg_connect(conninfo);
  char q[512];
  for (int i = 0; i < NVEH; i++) {
    snprintf(q, sizeof q,
             "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) "
             "VALUES ('苏A2%04d', 2, 'heavy_truck', 'r%d', '%s', 'E%d')",
             i, i, i < NVEH / 2 ? "320102" : "320211", i % 3);
    sql(q);
    /* A last fix for each vehicle (where open episodes run to): 2026-12-0x, 18:00 GMT+8. */
    snprintf(q, sizeof q,
             "INSERT INTO vehicle_daily (terminal_id, day, records, qualified, drift, km_total, km_complete,"
             " first_fix, last_fix) VALUES ('r%d', '2026-12-0%d', 10, 10, 0, 10, 10,"
             " '2026-12-0%d 08:00+08', '2026-12-0%d 18:%02d:07+08')",
             i, 1 + i % 9, 1 + i % 9, 1 + i % 9, i);
    sql(q);
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  PQfinish(db);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rollup_follows_every_write),
      cmocka_unit_test(test_kpi_equals_the_episodes),
      cmocka_unit_test(test_daily_write_newest_wins),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
