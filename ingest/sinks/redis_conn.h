/* Internal: one reconnecting hiredis async connection on a libuv loop, shared by redis_state and
 * violation_relay (what pg_conn is for libpq). Attaches each context with redis_uv.h, resolves a
 * host name with uv_getaddrinfo (hiredis would block the loop on DNS), ends a connect that takes
 * longer than timeout_ms and a connection on which the oldest unanswered command waits longer
 * than that, and reconnects after a loss with backoff (100 ms doubling to 5 s, reset once a
 * session is up). The user sends its commands itself on c->ac.
 *
 * A context is created only from the retry timer (or start), and hiredis runs every pending
 * callback of a context before it frees it, so replies of an old context never mix with a new
 * one: they arrive with ac != c->ac and hw_redis_conn_reply tells the user to ignore them. */
#ifndef HW_REDIS_CONN_H
#define HW_REDIS_CONN_H

#include <hiredis/async.h>
#include <uv.h>

#include "base/common.h"

typedef struct hw_redis_conn hw_redis_conn;

typedef struct hw_redis_conn_ops {
  /* A new context (c->ac) exists, its TCP connect still pending: commands queued now are written
   * once it connects. Returns 0, or -EIO to give the attempt up. May be NULL. */
  int (*attached)(hw_redis_conn *c);
  /* A new session is up (nothing of an earlier session survives). Runs inside hiredis' connect
   * callback (or under hw_redis_conn_ready): must not drop or close the connection. */
  void (*ready)(hw_redis_conn *c);
  /* A connect attempt failed or the session was lost. c->ac is already NULL; c->in_flight still
   * counts what was unanswered (reset to 0 once lost returns). A new attempt follows after the
   * backoff unless the user calls hw_redis_conn_close here. */
  void (*lost)(hw_redis_conn *c);
  /* After hw_redis_conn_close: every handle is closed, c may be freed. */
  void (*closed)(hw_redis_conn *c);
} hw_redis_conn_ops;

typedef struct hw_redis_conn_config {
  const char *host;      /* IP literal or name (resolved off the loop); copied, < 256 bytes */
  int port;              /* 1 .. 65535 */
  uint32_t timeout_ms;   /* connect (handshake included) and reply timeout; > 0 */
  const char *component; /* log name; copied */
  /* 0: the session is up as soon as TCP connects. 1: the user sends setup commands from attached
   * and calls hw_redis_conn_ready once they are answered; the connect timeout runs until then. */
  int handshake;
  /* For the log lines on connect and loss: how much waits, e.g. 12 "states to write". Not owned:
   * the user's counter, read whenever a line is logged, so it must outlive c; what is static. */
  const size_t *backlog;
  const char *backlog_what;
} hw_redis_conn_config;

struct hw_redis_conn {
  /* Read-only for the user. ac->data is c. */
  redisAsyncContext *ac; /* current context, NULL when none; owned by hiredis, freed by it or us */
  int up;                /* session ready: commands may be sent */
  uint32_t in_flight;    /* commands sent on ac and not answered */
  uint64_t reconnects;   /* connect attempts after the first */
  char host[256];
  int port;
  void *data; /* the user's */

  /* Private. */
  uv_loop_t *loop;
  const hw_redis_conn_ops *ops;
  char component[16];
  uint32_t timeout_ms;
  int handshake;
  const size_t *backlog;
  const char *backlog_what;
  int host_numeric;         /* host is an IP literal: no resolver round trip */
  uv_timer_t retry;         /* reconnect backoff */
  uv_timer_t watchdog;      /* connect and reply timeouts while a context exists */
  uv_getaddrinfo_t gai;
  int resolving;            /* gai in flight */
  uint32_t backoff_ms;      /* delay before the next attempt after a failure */
  uint32_t failed_attempts; /* consecutive, for logging */
  uint64_t conn_started;    /* uv_now() when the context was created */
  uint64_t last_progress;   /* uv_now() of the last reply, or of a send onto an idle pipe */
  int closing;
  uint32_t handles; /* timers, adapter poll handles, getaddrinfo not yet finished */
};

/* Checks and copies cfg; nothing is on the loop yet, so c needs no cleanup if the user's own
 * setup fails before hw_redis_conn_start. -EINVAL on a bad host or port, a zero timeout or no
 * backlog. */
int hw_redis_conn_init(hw_redis_conn *c, uv_loop_t *loop, const hw_redis_conn_config *cfg,
                       const hw_redis_conn_ops *ops, void *data) HW_MUST_CHECK;

/* Makes the first attempt now (its failure is logged and retried like any other). */
void hw_redis_conn_start(hw_redis_conn *c);

/* With cfg->handshake: the setup commands were answered, the session is up (ops->ready runs
 * before this returns). Call from a reply callback of c->ac; nothing when already up. */
void hw_redis_conn_ready(hw_redis_conn *c);

/* A command was queued on c->ac (redisAsyncCommand returned REDIS_OK): it now counts towards
 * the reply timeout. */
void hw_redis_conn_sent(hw_redis_conn *c);

/* First thing in every reply callback. 1: reply answers a command of the current context (it is
 * counted as answered; use it). 0: ac is being freed or was given up (reply is NULL or stale:
 * ignore it; the loss is reported through ops->lost). */
int hw_redis_conn_reply(hw_redis_conn *c, const redisAsyncContext *ac,
                        const void *reply) HW_MUST_CHECK;

/* Gives up the current context (protocol trouble): its pending replies come back NULL, ops->lost
 * runs before this returns (after logging reason) and a new attempt follows after the backoff.
 * Nothing when there is no context. Not from ops->ready. */
void hw_redis_conn_drop(hw_redis_conn *c, const char *reason);

/* After start: frees the context without calling lost, stops resolving and retrying, closes
 * every handle, then calls ops->closed from the loop (never before this returns). */
void hw_redis_conn_close(hw_redis_conn *c);

#endif
