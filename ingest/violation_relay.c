/* LISTEN hw_violations -> PUBLISH hw:violations.
 *
 * The queue is one FIFO: [head .. last_sent] are PUBLISHes in flight on the current Redis
 * context (Redis answers in order, so each reply is the head's), [unsent .. tail] wait. A lost
 * context makes everything unsent again. Redis connection life as in redis_state.c: IDLE (retry
 * timer armed) -> [RESOLVING] -> CONNECTING -> READY -> IDLE on any loss; a context is created only
 * from the retry timer or start, and hiredis runs every callback of a context before freeing it,
 * so replies of an old context are recognised (ac != r->ac) and ignored. */
#include "violation_relay.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_conn.h"
#include "redis_uv.h"

#define HW_VR_LOG "vfeed"
#define HW_VR_BACKOFF_MIN_MS 100
#define HW_VR_BACKOFF_MAX_MS 5000
#define HW_VR_MAX_IN_FLIGHT 1024

typedef struct hw_vr_msg {
  struct hw_vr_msg *next;
  size_t len;
  char data[]; /* the payload, not NUL-terminated on the wire */
} hw_vr_msg;

typedef enum {
  HW_VR_IDLE = 0,
  HW_VR_RESOLVING,
  HW_VR_CONNECTING,
  HW_VR_READY,
  HW_VR_CLOSED
} hw_vr_state;

struct hw_violation_relay {
  uv_loop_t *loop;
  hw_pg_conn pg;
  int listen_inflight; /* LISTEN sent on the current session, results not all read */
  int listening;
  char listen_err[160];

  char *host; /* owned */
  int port;
  int host_numeric;
  uint32_t max_pending;
  uint32_t timeout_ms;
  hw_vr_state state;
  redisAsyncContext *ac; /* owned by hiredis; NULL when none */
  uint32_t backoff_ms;
  uint32_t failed_attempts;
  uint64_t conn_started, last_progress;

  /* Owned messages, FIFO. */
  hw_vr_msg *head, *tail;
  hw_vr_msg *last_sent; /* the newest message in flight, NULL when none */
  hw_vr_msg *unsent;    /* the oldest message not sent on the current context */
  size_t count;
  uint32_t inflight;

  uv_timer_t kick, retry, watchdog, deadline;
  uv_getaddrinfo_t gai;
  int resolving;

  hw_violation_relay_stats stats;
  uint64_t drop_log_ms, drops_unlogged, err_log_ms;

  int stopping;
  int pg_closed;
  uint32_t open_handles; /* timers, adapter poll handles, getaddrinfo */
  void (*done_cb)(void *arg);
  void *done_arg;
};

static void hw_vr_connect(hw_violation_relay *r);
static void hw_vr_finish(hw_violation_relay *r);
static void hw_vr_kick(hw_violation_relay *r);

/* ---- queue ------------------------------------------------------------------------------- */

static void hw_vr_pop_head(hw_violation_relay *r) {
  hw_vr_msg *m = r->head;
  r->head = m->next;
  if (!r->head)
    r->tail = NULL;
  if (r->last_sent == m)
    r->last_sent = NULL;
  if (r->unsent == m)
    r->unsent = m->next;
  r->count--;
  free(m);
}

/* Drops the oldest message not in flight. */
static void hw_vr_drop_oldest(hw_violation_relay *r) {
  hw_vr_msg *m = r->unsent;
  if (!m)
    return;
  if (!r->last_sent) {
    hw_vr_pop_head(r);
  } else {
    r->last_sent->next = m->next;
    if (r->tail == m)
      r->tail = r->last_sent;
    r->unsent = m->next;
    r->count--;
    free(m);
  }
  r->stats.dropped++;
  uint64_t now = uv_now(r->loop);
  if (r->drop_log_ms && now - r->drop_log_ms < 1000) {
    r->drops_unlogged++;
    return;
  }
  hw_warn(HW_VR_LOG, NULL, "Redis %s:%d away or slow: %zu violation messages waiting, oldest "
          "dropped (%llu in all)", r->host, r->port, r->count,
          (unsigned long long)r->stats.dropped);
  r->drop_log_ms = now;
  r->drops_unlogged = 0;
}

static void hw_vr_enqueue(hw_violation_relay *r, const char *payload) {
  size_t len = strlen(payload);
  hw_vr_msg *m = malloc(sizeof *m + len);
  if (!m) {
    r->stats.dropped++;
    hw_error(HW_VR_LOG, NULL, "out of memory: violation message dropped");
    return;
  }
  m->next = NULL;
  m->len = len;
  memcpy(m->data, payload, len);
  if (r->tail)
    r->tail->next = m;
  else
    r->head = m;
  r->tail = m;
  if (!r->unsent)
    r->unsent = m;
  r->count++;
  while (r->count > r->max_pending && r->unsent)
    hw_vr_drop_oldest(r);
  hw_vr_kick(r);
}

/* ---- PostgreSQL: LISTEN and notifications ----------------------------------------------- */

static void hw_vr_listen(hw_violation_relay *r) {
  if (r->stopping || !r->pg.up || r->listening || r->listen_inflight)
    return;
  r->listen_err[0] = '\0';
  r->listen_inflight = 1;
  if (!PQsendQuery(r->pg.pg, "LISTEN " HW_VIOLATION_PG_CHANNEL) || hw_pg_conn_flush(&r->pg) < 0)
    hw_pg_conn_fail(&r->pg, "send LISTEN");
}

static void hw_vr_pg_io(hw_pg_conn *c) {
  hw_violation_relay *r = c->data;
  while (c->up && r->listen_inflight && !PQisBusy(c->pg)) {
    PGresult *res = PQgetResult(c->pg);
    if (!res) {
      r->listen_inflight = 0;
      if (r->listen_err[0]) {
        /* Cannot normally fail; a new session tries again. */
        hw_error(HW_VR_LOG, NULL, "LISTEN %s failed: %s", HW_VIOLATION_PG_CHANNEL, r->listen_err);
        hw_pg_conn_fail(c, "LISTEN failed");
        return;
      }
      r->listening = 1;
      hw_info(HW_VR_LOG, NULL, "listening on %s", HW_VIOLATION_PG_CHANNEL);
      break;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK && !r->listen_err[0])
      snprintf(r->listen_err, sizeof r->listen_err, "%s", hw_pg_errmsg(res));
    PQclear(res);
  }
  if (!c->up)
    return;
  PGnotify *n;
  while ((n = PQnotifies(c->pg))) {
    r->stats.received++;
    if (!r->stopping)
      hw_vr_enqueue(r, n->extra);
    PQfreemem(n);
  }
}

static void hw_vr_pg_ready(hw_pg_conn *c) {
  hw_violation_relay *r = c->data;
  r->listening = 0;
  r->listen_inflight = 0;
  hw_vr_listen(r);
}

static void hw_vr_pg_lost(hw_pg_conn *c) {
  hw_violation_relay *r = c->data;
  if (r->listening)
    hw_warn(HW_VR_LOG, NULL, "not listening on %s until PostgreSQL is back: changes meanwhile "
            "are not published", HW_VIOLATION_PG_CHANNEL);
  r->listening = 0;
  r->listen_inflight = 0;
}

static void hw_vr_pg_closed(hw_pg_conn *c) {
  hw_violation_relay *r = c->data;
  r->pg_closed = 1;
  hw_vr_finish(r);
}

static const hw_pg_conn_ops hw_vr_pg_ops = {
    .ready = hw_vr_pg_ready,
    .io = hw_vr_pg_io,
    .lost = hw_vr_pg_lost,
    .closed = hw_vr_pg_closed,
};

/* ---- Redis: connection ------------------------------------------------------------------- */

static void hw_vr_on_retry(uv_timer_t *t);

static void hw_vr_schedule_retry(hw_violation_relay *r) {
  r->state = HW_VR_IDLE;
  uv_timer_stop(&r->watchdog);
  if (r->stopping) {
    hw_vr_finish(r);
    return;
  }
  uint32_t delay = r->backoff_ms;
  r->backoff_ms = delay * 2 > HW_VR_BACKOFF_MAX_MS ? HW_VR_BACKOFF_MAX_MS : delay * 2;
  (void)uv_timer_start(&r->retry, hw_vr_on_retry, delay, 0);
}

/* The current context is gone (r->ac already cleared): what was in flight is sent again. */
static void hw_vr_conn_lost(hw_violation_relay *r, int was_ready, const char *reason) {
  if (r->inflight) {
    r->stats.republished += r->inflight;
    r->inflight = 0;
  }
  r->last_sent = NULL;
  r->unsent = r->head;
  if (was_ready) {
    hw_warn(HW_VR_LOG, NULL, "disconnected from Redis %s:%d: %s; %zu violation messages waiting",
            r->host, r->port, reason, r->count);
    r->failed_attempts = 0;
    r->backoff_ms = HW_VR_BACKOFF_MIN_MS;
  } else if (++r->failed_attempts == 1) {
    hw_warn(HW_VR_LOG, NULL, "connect to Redis %s:%d failed: %s; retrying with backoff", r->host,
            r->port, reason);
  } else {
    hw_debug(HW_VR_LOG, NULL, "connect to Redis %s:%d failed (attempt %u): %s", r->host, r->port,
             r->failed_attempts, reason);
  }
  hw_vr_schedule_retry(r);
}

static void hw_vr_drop(hw_violation_relay *r, const char *reason) {
  redisAsyncContext *ac = r->ac;
  int was_ready = r->state == HW_VR_READY;
  r->ac = NULL; /* before the free: callbacks of this context are then ignored */
  if (ac)
    redisAsyncFree(ac);
  hw_vr_conn_lost(r, was_ready, reason);
}

static const char *hw_vr_errstr(const redisAsyncContext *ac) {
  if (ac->c.err && ac->c.errstr[0])
    return ac->c.errstr;
  if (ac->errstr && ac->errstr[0])
    return ac->errstr;
  return "connection closed";
}

static void hw_vr_on_connect(const redisAsyncContext *ac, int status) {
  hw_violation_relay *r = ac->data;
  if (ac != r->ac)
    return;
  if (status != REDIS_OK) {
    r->ac = NULL; /* hiredis frees it after this callback */
    hw_vr_conn_lost(r, 0, hw_vr_errstr(ac));
    return;
  }
  r->state = HW_VR_READY;
  hw_info(HW_VR_LOG, NULL, "connected to Redis %s:%d after %u failed attempts; %zu violation "
          "messages to publish", r->host, r->port, r->failed_attempts, r->count);
  r->failed_attempts = 0;
  r->backoff_ms = HW_VR_BACKOFF_MIN_MS;
  hw_vr_kick(r);
}

static void hw_vr_on_disconnect(const redisAsyncContext *ac, int status) {
  hw_violation_relay *r = ac->data;
  if (ac != r->ac)
    return;
  int was_ready = r->state == HW_VR_READY;
  r->ac = NULL;
  hw_vr_conn_lost(r, was_ready, status == REDIS_OK ? "closed" : hw_vr_errstr(ac));
}

static void hw_vr_on_poll_closed(void *arg) {
  hw_violation_relay *r = arg;
  r->open_handles--;
  if (r->state == HW_VR_CLOSED)
    hw_vr_finish(r); /* otherwise a lost context: the retry is already scheduled */
}

static void hw_vr_on_watchdog(uv_timer_t *t) {
  hw_violation_relay *r = t->data;
  uint64_t now = uv_now(r->loop);
  if (r->state == HW_VR_CONNECTING && now - r->conn_started >= r->timeout_ms)
    hw_vr_drop(r, "connect timeout");
  else if (r->state == HW_VR_READY && r->inflight && now - r->last_progress >= r->timeout_ms)
    hw_vr_drop(r, "reply timeout");
}

static void hw_vr_connect_ip(hw_violation_relay *r, const char *ip) {
  redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
  if (!ac) {
    hw_vr_conn_lost(r, 0, "out of memory");
    return;
  }
  if (ac->err) {
    char reason[128];
    snprintf(reason, sizeof reason, "%s", ac->errstr ? ac->errstr : "connect error");
    redisAsyncFree(ac); /* never attached: freed at once, no callbacks */
    hw_vr_conn_lost(r, 0, reason);
    return;
  }
  ac->data = r;
  int rc = hw_redis_uv_attach(ac, r->loop, hw_vr_on_poll_closed, r);
  if (rc < 0) {
    redisAsyncFree(ac);
    hw_vr_conn_lost(r, 0, uv_strerror(rc));
    return;
  }
  r->open_handles++;
  r->ac = ac;
  r->state = HW_VR_CONNECTING;
  r->conn_started = uv_now(r->loop);
  (void)redisAsyncSetConnectCallback(ac, hw_vr_on_connect);
  (void)redisAsyncSetDisconnectCallback(ac, hw_vr_on_disconnect);
  uint64_t every = r->timeout_ms / 4 ? r->timeout_ms / 4 : 1;
  (void)uv_timer_start(&r->watchdog, hw_vr_on_watchdog, every, every);
}

static void hw_vr_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  hw_violation_relay *r = req->data;
  r->resolving = 0;
  r->open_handles--;
  if (r->state == HW_VR_CLOSED) {
    uv_freeaddrinfo(res);
    hw_vr_finish(r);
    return;
  }
  r->state = HW_VR_IDLE;
  if (status < 0) {
    uv_freeaddrinfo(res);
    hw_vr_conn_lost(r, 0, uv_strerror(status));
    return;
  }
  /* Prefer IPv4: a Redis bound to 127.0.0.1 must not be missed because localhost is ::1 first. */
  const struct addrinfo *pick = res;
  for (const struct addrinfo *a = res; a; a = a->ai_next)
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  char ip[INET6_ADDRSTRLEN] = "";
  if (pick->ai_family == AF_INET)
    (void)uv_ip4_name((const struct sockaddr_in *)pick->ai_addr, ip, sizeof ip);
  else
    (void)uv_ip6_name((const struct sockaddr_in6 *)pick->ai_addr, ip, sizeof ip);
  uv_freeaddrinfo(res);
  hw_vr_connect_ip(r, ip);
}

static void hw_vr_connect(hw_violation_relay *r) {
  if (r->host_numeric) {
    hw_vr_connect_ip(r, r->host);
    return;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  r->gai.data = r;
  int rc = uv_getaddrinfo(r->loop, &r->gai, hw_vr_on_resolved, r->host, NULL, &hints);
  if (rc < 0) {
    hw_vr_conn_lost(r, 0, uv_strerror(rc));
    return;
  }
  r->resolving = 1;
  r->open_handles++;
  r->state = HW_VR_RESOLVING;
}

static void hw_vr_on_retry(uv_timer_t *t) {
  hw_violation_relay *r = t->data;
  r->stats.reconnects++;
  hw_vr_connect(r);
}

/* ---- Redis: publishing ------------------------------------------------------------------- */

static void hw_vr_on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  hw_violation_relay *r = ac->data;
  redisReply *rep = reply;
  (void)privdata;
  if (!rep || ac != r->ac)
    return; /* the context is going away; its loss made everything unsent again */
  r->inflight--;
  r->last_progress = uv_now(r->loop);
  if (rep->type == REDIS_REPLY_ERROR) {
    /* Not retried: the same message would be refused again. */
    uint64_t now = uv_now(r->loop);
    if (!r->err_log_ms || now - r->err_log_ms >= 1000) {
      hw_error(HW_VR_LOG, NULL, "PUBLISH refused by Redis %s:%d: %s", r->host, r->port, rep->str);
      r->err_log_ms = now;
    }
    r->stats.dropped++;
  } else {
    r->stats.published++;
  }
  hw_vr_pop_head(r);
  if (r->stopping && !r->head) {
    hw_vr_finish(r);
    return;
  }
  hw_vr_kick(r);
}

static void hw_vr_flush(hw_violation_relay *r) {
  while (r->state == HW_VR_READY && r->unsent && r->inflight < HW_VR_MAX_IN_FLIGHT) {
    hw_vr_msg *m = r->unsent;
    /* hiredis copies the arguments into its output buffer. */
    if (redisAsyncCommand(r->ac, hw_vr_on_reply, NULL, "PUBLISH %s %b", HW_VIOLATION_REDIS_CHANNEL,
                          m->data, m->len) != REDIS_OK)
      break; /* the context is being torn down; its callbacks tell us */
    if (r->inflight++ == 0)
      r->last_progress = uv_now(r->loop);
    r->last_sent = m;
    r->unsent = m->next;
  }
}

static void hw_vr_on_kick(uv_timer_t *t) { hw_vr_flush(t->data); }

/* From the loop rather than inline: enqueue runs inside libpq's notification loop. */
static void hw_vr_kick(hw_violation_relay *r) {
  if (r->state == HW_VR_READY && r->unsent && !uv_is_active((uv_handle_t *)&r->kick))
    (void)uv_timer_start(&r->kick, hw_vr_on_kick, 0, 0);
}

/* ---- public ------------------------------------------------------------------------------ */

int hw_violation_relay_start(hw_violation_relay **out, uv_loop_t *loop,
                             const hw_violation_relay_config *cfg) {
  if (!out || !loop || !cfg || !cfg->conninfo || !cfg->redis_host || !*cfg->redis_host ||
      cfg->redis_port <= 0 || cfg->redis_port > 65535)
    return -EINVAL;
  hw_violation_relay *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->host = strdup(cfg->redis_host);
  if (!r->host) {
    free(r);
    return -ENOMEM;
  }
  unsigned char addr[sizeof(struct in6_addr)];
  r->host_numeric =
      inet_pton(AF_INET, r->host, addr) == 1 || inet_pton(AF_INET6, r->host, addr) == 1;
  r->loop = loop;
  r->port = cfg->redis_port;
  r->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
  r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
  r->backoff_ms = HW_VR_BACKOFF_MIN_MS;
  int rc = hw_pg_conn_init(&r->pg, loop, cfg->conninfo, HW_VR_LOG, &hw_vr_pg_ops, r);
  if (rc) {
    free(r->host);
    free(r);
    return rc;
  }
  uv_timer_t *timers[] = {&r->kick, &r->retry, &r->watchdog, &r->deadline};
  for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++) {
    (void)uv_timer_init(loop, timers[i]); /* only initialises memory */
    timers[i]->data = r;
    r->open_handles++;
  }
  hw_vr_connect(r);
  *out = r;
  return 0;
}

void hw_violation_relay_get_stats(const hw_violation_relay *r, hw_violation_relay_stats *out) {
  *out = r->stats;
  out->pending = r->count;
  out->listening = r->listening;
  out->redis_connected = r->state == HW_VR_READY;
}

static void hw_vr_on_timer_closed(uv_handle_t *h) {
  hw_violation_relay *r = h->data;
  r->open_handles--;
  hw_vr_finish(r);
}

/* Moves to CLOSED (dropping the Redis context, closing the timers and the PostgreSQL
 * connection); once every handle has reported its close, frees r and calls done_cb. Safe to call
 * again from each close callback. */
static void hw_vr_finish(hw_violation_relay *r) {
  if (r->state != HW_VR_CLOSED) {
    redisAsyncContext *ac = r->ac;
    r->state = HW_VR_CLOSED;
    r->ac = NULL;
    if (ac)
      redisAsyncFree(ac);
    if (r->resolving)
      (void)uv_cancel((uv_req_t *)&r->gai); /* its callback still runs */
    uv_timer_t *timers[] = {&r->kick, &r->retry, &r->watchdog, &r->deadline};
    for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++)
      uv_close((uv_handle_t *)timers[i], hw_vr_on_timer_closed);
    hw_pg_conn_close(&r->pg);
    return;
  }
  if (r->open_handles > 0 || !r->pg_closed)
    return;
  if (r->count)
    hw_warn(HW_VR_LOG, NULL, "stopped with %zu violation messages unpublished", r->count);
  hw_info(HW_VR_LOG, NULL, "stopped: %llu received, %llu published, %llu dropped",
          (unsigned long long)r->stats.received, (unsigned long long)r->stats.published,
          (unsigned long long)r->stats.dropped);
  while (r->head)
    hw_vr_pop_head(r);
  void (*cb)(void *) = r->done_cb;
  void *arg = r->done_arg;
  free(r->host);
  free(r);
  if (cb)
    cb(arg);
}

static void hw_vr_on_deadline(uv_timer_t *t) {
  hw_violation_relay *r = t->data;
  hw_warn(HW_VR_LOG, NULL, "stop: gave up after %u ms with %zu violation messages unpublished",
          r->timeout_ms, r->count);
  hw_vr_finish(r);
}

void hw_violation_relay_stop(hw_violation_relay *r, void (*done_cb)(void *arg), void *arg) {
  if (r->stopping)
    return;
  r->stopping = 1;
  r->done_cb = done_cb;
  r->done_arg = arg;
  uv_timer_stop(&r->retry);
  if (r->state == HW_VR_READY && r->head) {
    (void)uv_timer_start(&r->deadline, hw_vr_on_deadline, r->timeout_ms, 0);
    hw_vr_kick(r);
    return;
  }
  hw_vr_finish(r);
}
