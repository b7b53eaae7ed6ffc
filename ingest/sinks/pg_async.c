/* Queued queries on one hw_pg_conn, one in flight at a time. A query in flight when the session is
 * lost is answered with NULL (it may have been what broke the session, so it is not retried);
 * queries not yet sent wait for the next session. */
#include "sinks/pg_async.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_conn.h"

typedef struct hw_pg_query hw_pg_query;
struct hw_pg_query {
  hw_pg_query *next;
  hw_pg_async_cb cb;
  void *arg;
  int nparams;
  const char *sql;           /* points into this allocation */
  const char *const *params; /* points into this allocation; NULL entries stay NULL (SQL NULL) */
};

struct hw_pg_async {
  hw_pg_conn conn;
  hw_pg_query *head, *tail; /* owned FIFO; head is the one in flight when inflight is set */
  int inflight;
  PGresult *result; /* owned: the in-flight query's result so far */
  int stopping;
  void (*done_cb)(void *arg);
  void *done_arg;
};

int hw_pg_async_up(const hw_pg_async *c) { return c->conn.up; }

static hw_pg_query *hw_pg_async_pop(hw_pg_async *a) {
  hw_pg_query *q = a->head;
  a->head = q->next;
  if (!a->head)
    a->tail = NULL;
  a->inflight = 0;
  return q;
}

static void hw_pg_async_send_next(hw_pg_async *a) {
  if (!a->conn.up || a->inflight || !a->head || a->stopping)
    return;
  hw_pg_query *q = a->head;
  /* In flight before sending: if the send breaks the session, this query gets NULL rather than
   * being sent again to the next one. */
  a->inflight = 1;
  if (!PQsendQueryParams(a->conn.pg, q->sql, q->nparams, NULL, q->params, NULL, NULL, 0) ||
      hw_pg_conn_flush(&a->conn) < 0)
    hw_pg_conn_fail(&a->conn, "send");
}

/* Returns 1 when processing must stop (the session was dropped or the client is stopping). */
static int hw_pg_async_complete(hw_pg_async *a) {
  hw_pg_query *q = hw_pg_async_pop(a);
  PGresult *res = a->result;
  a->result = NULL;
  q->cb(q->arg, res);
  PQclear(res);
  free(q);
  return a->stopping;
}

static void hw_pg_async_on_io(hw_pg_conn *c) {
  hw_pg_async *a = c->data;
  while (c->up && a->inflight && !PQisBusy(c->pg)) {
    PGresult *r = PQgetResult(c->pg);
    if (!r) {
      if (hw_pg_async_complete(a))
        return;
      hw_pg_async_send_next(a);
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      /* Not supported here; the only way out of a COPY is to drop the session. */
      PQclear(r);
      hw_pg_conn_fail(c, "COPY is not supported on this connection");
      return;
    }
    /* Keep the first result, unless a later one is an error: that is what the caller must see. */
    if (!a->result || st == PGRES_FATAL_ERROR) {
      PQclear(a->result);
      a->result = r;
    } else {
      PQclear(r);
    }
  }
}

static void hw_pg_async_on_ready(hw_pg_conn *c) { hw_pg_async_send_next(c->data); }

static void hw_pg_async_on_lost(hw_pg_conn *c) {
  hw_pg_async *a = c->data;
  if (!a->inflight)
    return;
  PQclear(a->result);
  a->result = NULL;
  hw_pg_query *q = hw_pg_async_pop(a);
  q->cb(q->arg, NULL);
  free(q);
}

static void hw_pg_async_on_closed(hw_pg_conn *c) {
  hw_pg_async *a = c->data;
  void (*cb)(void *) = a->done_cb;
  void *arg = a->done_arg;
  free(a);
  if (cb)
    cb(arg);
}

static const hw_pg_conn_ops hw_pg_async_ops = {
    .ready = hw_pg_async_on_ready,
    .io = hw_pg_async_on_io,
    .lost = hw_pg_async_on_lost,
    .closed = hw_pg_async_on_closed,
};

int hw_pg_async_start(hw_pg_async **out, uv_loop_t *loop, const char *conninfo,
                      const char *component) {
  if (!conninfo || !component)
    return -EINVAL;
  hw_pg_async *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  int rc = hw_pg_conn_init(&a->conn, loop, conninfo, component, &hw_pg_async_ops, a);
  if (rc) {
    free(a);
    return rc;
  }
  *out = a;
  return 0;
}

int hw_pg_async_query(hw_pg_async *a, const char *sql, int nparams, const char *const *params,
                      hw_pg_async_cb cb, void *arg) {
  if (a->stopping)
    return -ESHUTDOWN;
  if (!sql || !cb || nparams < 0 || nparams > 65535 || (nparams > 0 && !params))
    return -EINVAL;
  /* One allocation: the record, the parameter pointers, then the strings. */
  size_t sql_len = strlen(sql) + 1;
  size_t size = sizeof(hw_pg_query) + (size_t)nparams * sizeof(char *) + sql_len;
  for (int i = 0; i < nparams; i++)
    if (params[i])
      size += strlen(params[i]) + 1;
  hw_pg_query *q = malloc(size);
  if (!q)
    return -ENOMEM;
  const char **pv = (const char **)(q + 1);
  char *s = (char *)(pv + nparams);
  memcpy(s, sql, sql_len);
  q->sql = s;
  s += sql_len;
  for (int i = 0; i < nparams; i++) {
    if (!params[i]) {
      pv[i] = NULL;
      continue;
    }
    size_t n = strlen(params[i]) + 1;
    memcpy(s, params[i], n);
    pv[i] = s;
    s += n;
  }
  q->next = NULL;
  q->cb = cb;
  q->arg = arg;
  q->nparams = nparams;
  q->params = nparams ? pv : NULL;
  if (a->tail)
    a->tail->next = q;
  else
    a->head = q;
  a->tail = q;
  hw_pg_async_send_next(a);
  return 0;
}

void hw_pg_async_stop(hw_pg_async *a, void (*done_cb)(void *arg), void *arg) {
  if (a->stopping)
    return;
  a->stopping = 1;
  a->done_cb = done_cb;
  a->done_arg = arg;
  PQclear(a->result);
  a->result = NULL;
  /* Callbacks may queue more: hw_pg_async_query refuses while stopping. */
  while (a->head) {
    hw_pg_query *q = hw_pg_async_pop(a);
    q->cb(q->arg, NULL);
    free(q);
  }
  hw_pg_conn_close(&a->conn);
}
