/* Helpers shared by test_violation_store.c, test_violation_relay.c and test_rule_store.c: a
 * blocking PostgreSQL connection for checks, and event builders. The loop they drive is
 * harness.h's hw_test_loop. */
#ifndef HW_VIOL_UTIL_H
#define HW_VIOL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "harness.h"
#include "base/log.h"
#include "rules/violation.h"

#pragma GCC diagnostic ignored "-Wunused-function"

/* Runs sql and returns the first column of the first row as text (malloc'ed; "" for no row,
 * "<null>" for NULL). Fails the test on error. */
static char *vu_pg_text(PGconn *c, const char *fmt, ...) {
  char sql[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  char *out = strdup(st != PGRES_TUPLES_OK || PQntuples(r) == 0 ? ""
                     : PQgetisnull(r, 0, 0)                    ? "<null>"
                                                               : PQgetvalue(r, 0, 0));
  PQclear(r);
  return out;
}

/* Asserts that sql's single value is want. */
#define vu_expect(conn, want, ...)                                                                 \
  do {                                                                                             \
    char *vu_got_ = vu_pg_text(conn, __VA_ARGS__);                                                 \
    if (strcmp(vu_got_, want) != 0)                                                                \
      fail_msg("%s:%d: got '%s', want '%s'", __FILE__, __LINE__, vu_got_, want);                 \
    free(vu_got_);                                                                                 \
  } while (0)

/* 2026-03-02 08:00 GMT+8. */
#define VU_T0 1772409600000LL

static hw_violation_event vu_event(const char *terminal, int kind, int phase, int64_t started_ms,
                                   int64_t ended_ms, int64_t value, int64_t limit, int grade,
                                   const char *evidence) {
  hw_violation_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = (uint8_t)kind;
  ev.phase = (uint8_t)phase;
  ev.grade = (uint8_t)grade;
  snprintf(ev.terminal_id, sizeof ev.terminal_id, "%s", terminal);
  snprintf(ev.episode_id, sizeof ev.episode_id, "%s/%s/%lld", terminal, hw_violation_kind_name(kind),
           (long long)started_ms);
  ev.started_ms = started_ms;
  ev.ended_ms = ended_ms;
  ev.lat_e6 = 30000000 + (int32_t)((started_ms / 1000) % 1000);
  ev.lon_e6 = 114000000;
  ev.value = value;
  ev.limit = limit;
  snprintf(ev.evidence, sizeof ev.evidence, "%s", evidence);
  return ev;
}

static void vu_log_level(void) {
  if (hw_log_set_level(getenv("HW_TEST_LOG") ? getenv("HW_TEST_LOG") : "warn") != 0)
    exit(2);
}

#endif
