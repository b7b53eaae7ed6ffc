/* Internal: one libpq connection driven by a libuv loop, shared by pg_async and pg_writer.
 * Connects with PQconnectStartParams/PQconnectPoll, runs the socket non-blocking on a single
 * uv_poll_t (re-created on every connect step, since libpq may replace the socket under the same
 * fd number; the old handle is stopped before the new one exists, so one fd never has two),
 * flushes output while PQflush returns 1, and reconnects after a loss with backoff (100 ms
 * doubling to 5 s, reset once a connection is up). The user drives queries itself on c->pg. */
#ifndef HW_PG_CONN_H
#define HW_PG_CONN_H

#include <libpq-fe.h>
#include <uv.h>

#include "base/common.h"

typedef struct hw_pg_conn hw_pg_conn;

typedef struct hw_pg_conn_ops {
  /* A new session is up (nothing of an earlier session survives). */
  void (*ready)(hw_pg_conn *c);
  /* Input was consumed or output flushed: collect results, send more. */
  void (*io)(hw_pg_conn *c);
  /* A connect attempt failed or the session was lost (also after hw_pg_conn_fail). c->pg is
   * already gone; a new attempt follows after the backoff unless the connection is closing. */
  void (*lost)(hw_pg_conn *c);
  /* After hw_pg_conn_close: every handle is closed, c may be freed. */
  void (*closed)(hw_pg_conn *c);
} hw_pg_conn_ops;

struct hw_pg_conn {
  /* Read-only for the user. */
  PGconn *pg;        /* owned; NULL while waiting to reconnect */
  int up;            /* session ready: queries may be sent */
  uint64_t sessions; /* sessions that became ready so far */
  void *data;        /* the user's */

  /* Private. */
  uv_loop_t *loop;
  const hw_pg_conn_ops *ops;
  char *conninfo;      /* owned copy */
  char component[16];  /* log component */
  char appname[48];    /* application_name default */
  uv_poll_t *poll;     /* owned, heap: a replaced handle closes asynchronously; NULL when none */
  int poll_events;     /* events poll is started with */
  uv_timer_t timer;    /* connect timeout while connecting, backoff delay while waiting */
  uint32_t backoff_ms; /* delay before the next attempt after a failure */
  const char *failing; /* hw_pg_conn_fail was called: why; the drop runs from the timer */
  int want_write;      /* the user waits for room in libpq's output buffer */
  int flushing;        /* PQflush returned 1: output pending */
  int closing;
  int handles; /* handles not yet closed after hw_pg_conn_close */
};

/* Copies conninfo; the first attempt starts from the loop at once. component is copied (the log
 * name, also used in application_name). */
int hw_pg_conn_init(hw_pg_conn *c, uv_loop_t *loop, const char *conninfo, const char *component,
                    const hw_pg_conn_ops *ops, void *data) HW_MUST_CHECK;

/* After sending: PQflush, watching writability while output remains. 0 all sent, 1 some pending
 * (io is called again as it drains), -EIO when the connection failed (call hw_pg_conn_fail). */
int hw_pg_conn_flush(hw_pg_conn *c) HW_MUST_CHECK;

/* The user could not queue data (PQputCopyData/PQputCopyEnd returned 0): call io when the socket
 * is writable. Cleared with on = 0. */
void hw_pg_conn_want_write(hw_pg_conn *c, int on);

/* The user found the session broken: c->up is 0 at once (c->pg must not be used any more); from
 * the loop, the session is dropped (logging why, a static string, and libpq's message), ops->lost
 * runs and the next attempt is scheduled. Never calls back under the caller. */
void hw_pg_conn_fail(hw_pg_conn *c, const char *why);

/* Drops the session without calling lost, closes every handle, then calls ops->closed. */
void hw_pg_conn_close(hw_pg_conn *c);

/* SQLSTATE of a result ("" when none) and its primary message, for logs. */
const char *hw_pg_sqlstate(const PGresult *res);
const char *hw_pg_errmsg(const PGresult *res);

#endif
