/* A non-blocking libpq connection on a libuv loop that runs queued parameterised queries one after
 * another (control traffic: authentication look-ups, partition upkeep). One uv_poll_t per socket,
 * re-created when PQconnectPoll changes the socket; reconnects with backoff. */
#ifndef HW_PG_ASYNC_H
#define HW_PG_ASYNC_H

#include <libpq-fe.h>
#include <uv.h>

#include "base/common.h"

typedef struct hw_pg_async hw_pg_async;

/* res is NULL when the query could not be run (connection lost, shutting down); it is owned by
 * the connection and cleared after the callback returns. Callbacks never run inside
 * hw_pg_async_query. Queries queued while the session is down wait for the next session; only
 * the one in flight when a session is lost gets NULL (it is not sent twice). */
typedef void (*hw_pg_async_cb)(void *arg, const PGresult *res);

int hw_pg_async_start(hw_pg_async **out, uv_loop_t *loop, const char *conninfo,
                      const char *component) HW_MUST_CHECK;

/* Queues a query; params are copied. Text parameters and results. */
int hw_pg_async_query(hw_pg_async *c, const char *sql, int nparams, const char *const *params,
                      hw_pg_async_cb cb, void *arg) HW_MUST_CHECK;

/* 1 while a session is up (queries run now), 0 while connecting or waiting to reconnect: for a
 * caller that would rather refuse at once than queue (an HTTP request with a client waiting). */
int hw_pg_async_up(const hw_pg_async *c);

/* Pending callbacks are called with NULL (inside this call), then handles close; done_cb (may be
 * NULL) afterwards. */
void hw_pg_async_stop(hw_pg_async *c, void (*done_cb)(void *arg), void *arg);

#endif
