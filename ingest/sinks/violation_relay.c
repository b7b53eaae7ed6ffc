/* LISTEN hw_violations, hw_alarms -> PUBLISH hw:violations, hw:alarms.
 *
 * The queue is one FIFO: [head .. last_sent] are PUBLISHes in flight on the current Redis
 * context (Redis answers in order, so each reply is the head's), [unsent .. tail] wait. A lost
 * context makes everything unsent again. The Redis connection (redis_conn.c) is up as soon as TCP
 * connects; replies of an old context are recognised by hw_redis_conn_reply and ignored. */
#include "sinks/violation_relay.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_conn.h"
#include "sinks/redis_conn.h"

#define HW_VR_LOG "vfeed"
#define HW_VR_MAX_IN_FLIGHT 1024

typedef struct hw_vr_msg {
  struct hw_vr_msg *next;
  size_t len;
  int alarm; /* from hw_alarms, for hw:alarms; else a violation */
  char data[]; /* the payload, not NUL-terminated on the wire */
} hw_vr_msg;

struct hw_violation_relay {
  uv_loop_t *loop;
  hw_pg_conn pg;
  int listen_inflight; /* LISTEN sent on the current session, results not all read */
  int listening;
  char listen_err[160];

  /* redis.in_flight counts the PUBLISHes in flight: [head .. last_sent]. */
  hw_redis_conn redis;
  uint32_t max_pending;
  uint32_t timeout_ms;

  /* Owned messages, FIFO. */
  hw_vr_msg *head, *tail;
  hw_vr_msg *last_sent; /* the newest message in flight, NULL when none */
  hw_vr_msg *unsent;    /* the oldest message not sent on the current context */
  size_t count;
  /* Messages from unsent on: what max_pending bounds. Those in flight are bounded apart
   * (HW_VR_MAX_IN_FLIGHT); counting them too would drop the newest message whenever one arrives
   * while a full window of PUBLISHes waits for Redis' answers. */
  size_t waiting;

  uv_timer_t kick, deadline;

  hw_violation_relay_stats stats;
  uint64_t drop_log_ms, drops_unlogged, err_log_ms;

  int stopping;
  int closing; /* finish has begun: only closes left */
  int pg_closed, redis_closed;
  uint32_t open_handles; /* our timers */
  void (*done_cb)(void *arg);
  void *done_arg;
};

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
  if (r->unsent == m) {
    r->unsent = m->next;
    r->waiting--;
  }
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
    r->waiting--;
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
          "dropped (%llu in all)", r->redis.host, r->redis.port, r->waiting,
          (unsigned long long)r->stats.dropped);
  r->drop_log_ms = now;
  r->drops_unlogged = 0;
}

static void hw_vr_enqueue(hw_violation_relay *r, const char *payload, int alarm) {
  size_t len = strlen(payload);
  hw_vr_msg *m = malloc(sizeof *m + len);
  if (!m) {
    r->stats.dropped++;
    hw_error(HW_VR_LOG, NULL, "out of memory: violation message dropped");
    return;
  }
  m->next = NULL;
  m->len = len;
  m->alarm = alarm;
  memcpy(m->data, payload, len);
  if (r->tail)
    r->tail->next = m;
  else
    r->head = m;
  r->tail = m;
  if (!r->unsent)
    r->unsent = m;
  r->count++;
  r->waiting++;
  while (r->waiting > r->max_pending && r->unsent)
    hw_vr_drop_oldest(r);
  hw_vr_kick(r);
}

/* ---- PostgreSQL: LISTEN and notifications ----------------------------------------------- */

static void hw_vr_listen(hw_violation_relay *r) {
  if (r->stopping || !r->pg.up || r->listening || r->listen_inflight)
    return;
  r->listen_err[0] = '\0';
  r->listen_inflight = 1;
  if (!PQsendQuery(r->pg.pg, "LISTEN " HW_VIOLATION_PG_CHANNEL "; LISTEN " HW_ALARM_PG_CHANNEL) ||
      hw_pg_conn_flush(&r->pg) < 0)
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
      hw_vr_enqueue(r, n->extra, strcmp(n->relname, HW_ALARM_PG_CHANNEL) == 0);
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

static void hw_vr_redis_ready(hw_redis_conn *c) { hw_vr_kick(c->data); }

/* What was in flight is sent again on the next connection. */
static void hw_vr_redis_lost(hw_redis_conn *c) {
  hw_violation_relay *r = c->data;
  r->stats.republished += c->in_flight;
  r->last_sent = NULL;
  r->unsent = r->head;
  r->waiting = r->count;
  if (r->stopping)
    hw_vr_finish(r); /* no reconnect for a stop */
}

static void hw_vr_redis_closed(hw_redis_conn *c) {
  hw_violation_relay *r = c->data;
  r->redis_closed = 1;
  hw_vr_finish(r);
}

static const hw_redis_conn_ops hw_vr_redis_ops = {
    .ready = hw_vr_redis_ready,
    .lost = hw_vr_redis_lost,
    .closed = hw_vr_redis_closed,
};

/* ---- Redis: publishing ------------------------------------------------------------------- */

static void hw_vr_on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  hw_redis_conn *c = ac->data;
  hw_violation_relay *r = c->data;
  redisReply *rep = reply;
  (void)privdata;
  if (!hw_redis_conn_reply(c, ac, rep))
    return; /* the context is going away; its loss makes everything unsent again */
  if (rep->type == REDIS_REPLY_ERROR) {
    /* Not retried: the same message would be refused again. */
    uint64_t now = uv_now(r->loop);
    if (!r->err_log_ms || now - r->err_log_ms >= 1000) {
      hw_error(HW_VR_LOG, NULL, "PUBLISH refused by Redis %s:%d: %s", c->host, c->port, rep->str);
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
  while (r->redis.up && r->unsent && r->redis.in_flight < HW_VR_MAX_IN_FLIGHT) {
    hw_vr_msg *m = r->unsent;
    /* hiredis copies the arguments into its output buffer. */
    if (redisAsyncCommand(r->redis.ac, hw_vr_on_reply, NULL, "PUBLISH %s %b",
                          m->alarm ? HW_ALARM_REDIS_CHANNEL : HW_VIOLATION_REDIS_CHANNEL, m->data,
                          m->len) != REDIS_OK)
      break; /* the context is being torn down; its callbacks tell us */
    hw_redis_conn_sent(&r->redis);
    r->last_sent = m;
    r->unsent = m->next;
    r->waiting--;
  }
}

static void hw_vr_on_kick(uv_timer_t *t) { hw_vr_flush(t->data); }

/* From the loop rather than inline: enqueue runs inside libpq's notification loop. */
static void hw_vr_kick(hw_violation_relay *r) {
  if (r->redis.up && r->unsent && !uv_is_active((uv_handle_t *)&r->kick))
    (void)uv_timer_start(&r->kick, hw_vr_on_kick, 0, 0);
}

/* ---- public ------------------------------------------------------------------------------ */

int hw_violation_relay_start(hw_violation_relay **out, uv_loop_t *loop,
                             const hw_violation_relay_config *cfg) {
  if (!out || !loop || !cfg || !cfg->conninfo)
    return -EINVAL;
  hw_violation_relay *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->loop = loop;
  r->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
  r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
  hw_redis_conn_config rc_cfg = {.host = cfg->redis_host,
                                 .port = cfg->redis_port,
                                 .timeout_ms = r->timeout_ms,
                                 .component = HW_VR_LOG,
                                 .backlog = &r->count,
                                 .backlog_what = "violation messages waiting"};
  /* Before PostgreSQL: nothing of it is on the loop yet, so a failure below needs no undoing. */
  int rc = hw_redis_conn_init(&r->redis, loop, &rc_cfg, &hw_vr_redis_ops, r);
  if (rc == 0)
    rc = hw_pg_conn_init(&r->pg, loop, cfg->conninfo, HW_VR_LOG, &hw_vr_pg_ops, r);
  if (rc) {
    free(r);
    return rc;
  }
  uv_timer_t *timers[] = {&r->kick, &r->deadline};
  for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++) {
    (void)uv_timer_init(loop, timers[i]); /* only initialises memory */
    timers[i]->data = r;
    r->open_handles++;
  }
  hw_redis_conn_start(&r->redis);
  *out = r;
  return 0;
}

void hw_violation_relay_get_stats(const hw_violation_relay *r, hw_violation_relay_stats *out) {
  *out = r->stats;
  out->pending = r->count;
  out->listening = r->listening;
  out->reconnects = r->redis.reconnects;
  out->redis_connected = r->redis.up;
}

static void hw_vr_on_timer_closed(uv_handle_t *h) {
  hw_violation_relay *r = h->data;
  r->open_handles--;
  hw_vr_finish(r);
}

/* Begins closing (both connections and the timers); once every handle has reported its close,
 * frees r and calls done_cb. Safe to call again from each close callback. */
static void hw_vr_finish(hw_violation_relay *r) {
  if (!r->closing) {
    r->closing = 1;
    hw_redis_conn_close(&r->redis);
    uv_timer_t *timers[] = {&r->kick, &r->deadline};
    for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++)
      uv_close((uv_handle_t *)timers[i], hw_vr_on_timer_closed);
    hw_pg_conn_close(&r->pg);
    return;
  }
  if (r->open_handles > 0 || !r->pg_closed || !r->redis_closed)
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
  if (r->redis.up && r->head) {
    (void)uv_timer_start(&r->deadline, hw_vr_on_deadline, r->timeout_ms, 0);
    hw_vr_kick(r);
    return;
  }
  hw_vr_finish(r);
}
