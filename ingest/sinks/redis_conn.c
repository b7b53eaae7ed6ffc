#include "sinks/redis_conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "sinks/redis_uv.h"

#define HW_RC_BACKOFF_MIN_MS 100
#define HW_RC_BACKOFF_MAX_MS 5000

static void hw_redis_conn_connect(hw_redis_conn *c);

static void hw_redis_conn_maybe_closed(hw_redis_conn *c) {
  if (c->closing && c->handles == 0)
    c->ops->closed(c);
}

static void hw_redis_conn_on_handle_closed(uv_handle_t *h) {
  hw_redis_conn *c = h->data;
  c->handles--;
  hw_redis_conn_maybe_closed(c);
}

static void hw_redis_conn_on_poll_closed(void *arg) {
  hw_redis_conn *c = arg;
  c->handles--;
  hw_redis_conn_maybe_closed(c); /* otherwise a lost context: the retry is already scheduled */
}

static void hw_redis_conn_on_retry(uv_timer_t *t) {
  hw_redis_conn *c = t->data;
  c->reconnects++;
  hw_redis_conn_connect(c);
}

/* The current context is gone or being freed (c->ac already cleared), or an attempt failed
 * before there was one. */
static void hw_redis_conn_lost(hw_redis_conn *c, const char *reason) {
  int was_up = c->up;
  if (was_up) {
    hw_warn(c->component, NULL, "disconnected from Redis %s:%d: %s; %zu %s", c->host, c->port,
            reason, *c->backlog, c->backlog_what);
    c->failed_attempts = 0;
    c->backoff_ms = HW_RC_BACKOFF_MIN_MS;
  } else if (++c->failed_attempts == 1) {
    /* The first failure is news; the same failure every few seconds while Redis is down is not. */
    hw_warn(c->component, NULL, "connect to Redis %s:%d failed: %s; retrying with backoff",
            c->host, c->port, reason);
  } else {
    hw_debug(c->component, NULL, "connect to Redis %s:%d failed (attempt %u): %s", c->host,
             c->port, c->failed_attempts, reason);
  }
  c->up = 0;
  uv_timer_stop(&c->watchdog);
  uint32_t delay = c->backoff_ms;
  c->backoff_ms = delay * 2 > HW_RC_BACKOFF_MAX_MS ? HW_RC_BACKOFF_MAX_MS : delay * 2;
  c->ops->lost(c);
  c->in_flight = 0; /* after lost: the user may count what is sent again */
  if (!c->closing)
    (void)uv_timer_start(&c->retry, hw_redis_conn_on_retry, delay, 0); /* live timer: no error */
}

static const char *hw_redis_conn_errstr(const redisAsyncContext *ac) {
  if (ac->c.err && ac->c.errstr[0])
    return ac->c.errstr;
  if (ac->errstr && ac->errstr[0])
    return ac->errstr;
  return "connection closed";
}

static void hw_redis_conn_on_connect(const redisAsyncContext *ac, int status) {
  hw_redis_conn *c = ac->data;
  if (ac != c->ac)
    return; /* a context we already dropped */
  if (status != REDIS_OK) {
    c->ac = NULL; /* hiredis frees it right after this callback returns */
    hw_redis_conn_lost(c, hw_redis_conn_errstr(ac));
    return;
  }
  if (!c->handshake)
    hw_redis_conn_ready(c);
}

static void hw_redis_conn_on_disconnect(const redisAsyncContext *ac, int status) {
  hw_redis_conn *c = ac->data;
  if (ac != c->ac)
    return; /* we dropped it ourselves and have already scheduled what follows */
  c->ac = NULL; /* hiredis frees it after we return */
  hw_redis_conn_lost(c, status == REDIS_OK ? "closed" : hw_redis_conn_errstr(ac));
}

static void hw_redis_conn_on_watchdog(uv_timer_t *t) {
  hw_redis_conn *c = t->data;
  uint64_t now = uv_now(c->loop);
  if (!c->up && now - c->conn_started >= c->timeout_ms)
    hw_redis_conn_drop(c, "connect timeout");
  else if (c->up && c->in_flight > 0 && now - c->last_progress >= c->timeout_ms)
    hw_redis_conn_drop(c, "reply timeout");
}

static void hw_redis_conn_connect_ip(hw_redis_conn *c, const char *ip) {
  redisAsyncContext *ac = redisAsyncConnect(ip, c->port);
  if (!ac) {
    hw_redis_conn_lost(c, "out of memory");
    return;
  }
  if (ac->err) {
    char reason[128];
    snprintf(reason, sizeof reason, "%s", ac->errstr ? ac->errstr : "connect error");
    redisAsyncFree(ac); /* never attached: freed at once, no callbacks */
    hw_redis_conn_lost(c, reason);
    return;
  }
  ac->data = c;
  int rc = hw_redis_uv_attach(ac, c->loop, hw_redis_conn_on_poll_closed, c);
  if (rc < 0) {
    redisAsyncFree(ac);
    hw_redis_conn_lost(c, uv_strerror(rc));
    return;
  }
  c->handles++; /* the adapter's poll handle, until hw_redis_conn_on_poll_closed */
  c->ac = ac;
  c->conn_started = uv_now(c->loop);
  /* Attach first: setting the connect callback already asks for the first write event. */
  (void)redisAsyncSetConnectCallback(ac, hw_redis_conn_on_connect);
  (void)redisAsyncSetDisconnectCallback(ac, hw_redis_conn_on_disconnect);
  uint64_t every = c->timeout_ms / 4 ? c->timeout_ms / 4 : 1;
  (void)uv_timer_start(&c->watchdog, hw_redis_conn_on_watchdog, every, every);
  /* Queued before the connect completes, written as soon as it does: saves a round trip. */
  if (c->ops->attached && c->ops->attached(c) < 0)
    hw_redis_conn_drop(c, "cannot queue commands");
}

static void hw_redis_conn_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  hw_redis_conn *c = req->data;
  c->resolving = 0;
  c->handles--;
  if (c->closing) {
    uv_freeaddrinfo(res);
    hw_redis_conn_maybe_closed(c);
    return;
  }
  if (status < 0) {
    uv_freeaddrinfo(res);
    hw_redis_conn_lost(c, uv_strerror(status));
    return;
  }
  /* Prefer IPv4: a Redis bound to 127.0.0.1 must not be missed because localhost is ::1 first. */
  const struct addrinfo *pick = res;
  for (const struct addrinfo *a = res; a; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  char ip[INET6_ADDRSTRLEN] = "";
  if (pick->ai_family == AF_INET)
    (void)uv_ip4_name((const struct sockaddr_in *)pick->ai_addr, ip, sizeof ip);
  else
    (void)uv_ip6_name((const struct sockaddr_in6 *)pick->ai_addr, ip, sizeof ip);
  uv_freeaddrinfo(res);
  hw_redis_conn_connect_ip(c, ip);
}

static void hw_redis_conn_connect(hw_redis_conn *c) {
  if (c->host_numeric) {
    hw_redis_conn_connect_ip(c, c->host);
    return;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int rc = uv_getaddrinfo(c->loop, &c->gai, hw_redis_conn_on_resolved, c->host, NULL, &hints);
  if (rc < 0) {
    hw_redis_conn_lost(c, uv_strerror(rc));
    return;
  }
  c->resolving = 1;
  c->handles++;
}

int hw_redis_conn_init(hw_redis_conn *c, uv_loop_t *loop, const hw_redis_conn_config *cfg,
                       const hw_redis_conn_ops *ops, void *data) {
  if (!cfg->host || !*cfg->host || strlen(cfg->host) >= sizeof c->host || cfg->port <= 0 ||
      cfg->port > 65535 || cfg->timeout_ms == 0 || !cfg->backlog || !cfg->backlog_what)
    return -EINVAL;
  memset(c, 0, sizeof *c);
  snprintf(c->host, sizeof c->host, "%s", cfg->host);
  unsigned char addr[sizeof(struct in6_addr)];
  c->host_numeric =
      inet_pton(AF_INET, c->host, addr) == 1 || inet_pton(AF_INET6, c->host, addr) == 1;
  c->port = cfg->port;
  c->timeout_ms = cfg->timeout_ms;
  c->handshake = cfg->handshake;
  c->backlog = cfg->backlog;
  c->backlog_what = cfg->backlog_what;
  snprintf(c->component, sizeof c->component, "%s", cfg->component);
  c->loop = loop;
  c->ops = ops;
  c->data = data;
  c->backoff_ms = HW_RC_BACKOFF_MIN_MS;
  return 0;
}

void hw_redis_conn_start(hw_redis_conn *c) {
  uv_timer_t *timers[] = {&c->retry, &c->watchdog};
  for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++) {
    (void)uv_timer_init(c->loop, timers[i]); /* only initialises memory; cannot fail */
    timers[i]->data = c;
    c->handles++;
  }
  c->gai.data = c;
  hw_redis_conn_connect(c);
}

void hw_redis_conn_ready(hw_redis_conn *c) {
  if (c->up || !c->ac)
    return;
  c->up = 1;
  c->ops->ready(c);
  hw_info(c->component, NULL, "connected to Redis %s:%d after %u failed attempts; %zu %s", c->host,
          c->port, c->failed_attempts, *c->backlog, c->backlog_what);
  c->failed_attempts = 0;
  c->backoff_ms = HW_RC_BACKOFF_MIN_MS;
}

void hw_redis_conn_sent(hw_redis_conn *c) {
  /* The reply timeout runs from the oldest unanswered command's send, or the last reply since. */
  if (c->in_flight++ == 0)
    c->last_progress = uv_now(c->loop);
}

int hw_redis_conn_reply(hw_redis_conn *c, const redisAsyncContext *ac, const void *reply) {
  if (!reply || ac != c->ac)
    return 0;
  c->in_flight--;
  c->last_progress = uv_now(c->loop);
  return 1;
}

void hw_redis_conn_drop(hw_redis_conn *c, const char *reason) {
  redisAsyncContext *ac = c->ac;
  if (!ac)
    return;
  c->ac = NULL; /* before the free: our connect/disconnect callbacks then ignore this context */
  redisAsyncFree(ac); /* pending replies come back NULL; deferred when inside a reply callback */
  hw_redis_conn_lost(c, reason);
}

void hw_redis_conn_close(hw_redis_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  c->up = 0;
  redisAsyncContext *ac = c->ac;
  c->ac = NULL;
  if (ac)
    redisAsyncFree(ac); /* its poll handle closes via the adapter, counted in handles */
  if (c->resolving)
    (void)uv_cancel((uv_req_t *)&c->gai); /* its callback still runs (ECANCELED) */
  uv_close((uv_handle_t *)&c->retry, hw_redis_conn_on_handle_closed);
  uv_close((uv_handle_t *)&c->watchdog, hw_redis_conn_on_handle_closed);
}
