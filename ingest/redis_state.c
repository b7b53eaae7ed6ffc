/* Latest state per terminal in Redis: coalescing dirty list, one connection, pipelined EVALSHA.
 *
 * Connection life: IDLE (retry timer armed) -> [RESOLVING] -> CONNECTING (TCP connect and SCRIPT
 * LOAD, both under the connect timeout) -> READY (writes flow) <-> LOADING (script cache lost,
 * SCRIPT LOAD again) -> back to IDLE on any loss. A context is created only from the retry timer
 * (or start), and hiredis runs every pending callback of a context before it frees it, so callbacks
 * of an old context never overlap with a new one. */
#include "redis_state.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_uv.h"

#define HW_RS_LOG "redis"
#define HW_RS_BACKOFF_MIN_MS 100
#define HW_RS_BACKOFF_MAX_MS 5000
#define HW_RS_GEO_KEY "hw:geo"
#define HW_RS_KEY_PREFIX "hw:veh:"
/* Redis' GEOADD limit (EPSG:900913 square); outside it GEOADD errors. */
#define HW_RS_GEO_LAT_MAX "85.05112878"

/* KEYS[1] hw:veh:<id>, KEYS[2] hw:geo.
 * ARGV: id, ts_ms, lat, lon, speed_kmh, heading, alt_m, recv_ms, alarm, status, odometer_km,
 * driver_id. Compares ts_ms numerically (as strings, "9000" would beat "10000") so late data and
 * a second daemon never overwrite newer state; equal ts_ms is written (the later arrival wins, as in
 * memory). Where GEOADD cannot store the latitude the member is removed rather than left at an
 * older position the hash now contradicts. */
static const char hw_rs_script[] =
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'ts_ms'))\n"
    "if cur and cur > tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'lat', ARGV[3], 'lon', ARGV[4], 'speed_kmh', ARGV[5],\n"
    "  'heading', ARGV[6], 'alt_m', ARGV[7], 'ts_ms', ARGV[2], 'recv_ms', ARGV[8],\n"
    "  'alarm', ARGV[9], 'status', ARGV[10], 'odometer_km', ARGV[11], 'driver_id', ARGV[12])\n"
    "local lat, lon = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if lat >= -" HW_RS_GEO_LAT_MAX " and lat <= " HW_RS_GEO_LAT_MAX
    " and lon >= -180 and lon <= 180 then\n"
    "  redis.call('GEOADD', KEYS[2], ARGV[4], ARGV[3], ARGV[1])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "end\n"
    "return 1\n";

typedef enum {
  HW_RS_IDLE = 0,   /* no context; retry timer armed unless stopping */
  HW_RS_RESOLVING,  /* uv_getaddrinfo in flight */
  HW_RS_CONNECTING, /* context exists, TCP connect and/or SCRIPT LOAD pending */
  HW_RS_READY,      /* script loaded, EVALSHA flowing */
  HW_RS_LOADING,    /* connected, NOSCRIPT seen: SCRIPT LOAD again, writes paused */
  HW_RS_CLOSED      /* stop finished: only handle closes left */
} hw_rs_state;

struct hw_redis_state {
  uv_loop_t *loop;
  hw_registry *registry; /* not owned; outlives us */
  char *host;            /* owned copy of cfg->host */
  int port;
  uint32_t max_in_flight;
  uint32_t timeout_ms;
  int host_numeric; /* host is an IP literal: no resolver round trip */

  hw_rs_state state;
  redisAsyncContext *ac; /* current context or NULL; owned by hiredis, freed by it or by us */
  char sha[41];          /* script SHA1 from SCRIPT LOAD on this connection */
  uint32_t in_flight;    /* commands sent on ac and not answered (SCRIPT LOAD included) */

  /* Dirty list, FIFO through hw_terminal.redis_next; terminals are owned by the registry. */
  hw_terminal *dirty_head, *dirty_tail;
  size_t dirty_count;
  /* Pacing: the dirty list is written in cycles at most flush_ms apart, each cycle writing the
   * terminals dirty when it began, so a terminal is written at most once per flush_ms however
   * often it reports. Without it Redis spends a whole core re-running the script for trucks that
   * moved a few metres. 0 = write as fast as Redis answers. */
  uint32_t flush_ms;
  size_t cycle_left;      /* writes left in the current cycle */
  uint64_t next_cycle_ms; /* uv_now() when the next cycle may begin */

  uv_timer_t kick;     /* 0 ms: flush after the current loop iteration's events */
  uv_timer_t retry;    /* reconnect backoff */
  uv_timer_t watchdog; /* connect and reply timeouts while a context exists */
  uv_timer_t stop_deadline;
  uv_getaddrinfo_t gai;
  int resolving;

  uint32_t backoff_ms;
  uint32_t failed_attempts; /* consecutive, for logging */
  uint64_t conn_started;    /* uv_now() when the context was created */
  uint64_t last_progress;   /* uv_now() of the last reply, or of a send onto an idle pipe */

  uint64_t writes, reconnects, stale_skips, errors;
  uint64_t err_log_ms;  /* rate limit of error-reply logging */
  uint64_t err_unlogged;

  int stopping;
  uint32_t open_handles; /* timers + adapter poll handles + getaddrinfo; done when 0 after close */
  void (*done_cb)(void *arg);
  void *done_arg;
};

static void hw_rs_kick(hw_redis_state *r);
static void hw_rs_connect(hw_redis_state *r);
static void hw_rs_finish(hw_redis_state *r);
static void hw_rs_on_retry(uv_timer_t *timer);

/* ---- value formatting: integers only, no printf on the write path ---- */

static size_t hw_rs_fmt_u64(char *out, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

static size_t hw_rs_fmt_i64(char *out, int64_t v) {
  if (v < 0) {
    out[0] = '-';
    return 1 + hw_rs_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
  }
  return hw_rs_fmt_u64(out, (uint64_t)v);
}

/* v / 10^decimals written with exactly `decimals` places, as printf("%.*f") would. */
static size_t hw_rs_fmt_fixed(char *out, int64_t v, unsigned decimals) {
  static const uint32_t pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
  size_t n = 0;
  uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  if (v < 0)
    out[n++] = '-';
  n += hw_rs_fmt_u64(out + n, a / pow10[decimals]);
  out[n++] = '.';
  uint64_t frac = a % pow10[decimals];
  for (unsigned i = decimals; i-- > 0;) {
    out[n + i] = (char)('0' + frac % 10);
    frac /= 10;
  }
  return n + decimals;
}

/* ---- dirty list ---- */

static void hw_rs_mark_dirty(hw_redis_state *r, hw_terminal *t) {
  if (t->redis_dirty)
    return;
  t->redis_dirty = 1;
  t->redis_next = NULL;
  if (r->dirty_tail)
    r->dirty_tail->redis_next = t;
  else
    r->dirty_head = t;
  r->dirty_tail = t;
  r->dirty_count++;
}

static hw_terminal *hw_rs_pop_dirty(hw_redis_state *r) {
  hw_terminal *t = r->dirty_head;
  if (!t)
    return NULL;
  r->dirty_head = t->redis_next;
  if (!r->dirty_head)
    r->dirty_tail = NULL;
  t->redis_next = NULL;
  t->redis_dirty = 0;
  r->dirty_count--;
  return t;
}

/* ---- connection loss and reconnect ---- */

static void hw_rs_schedule_retry(hw_redis_state *r) {
  r->state = HW_RS_IDLE;
  uv_timer_stop(&r->watchdog);
  if (r->stopping) {
    hw_rs_finish(r);
    return;
  }
  uint32_t delay = r->backoff_ms;
  r->backoff_ms = delay * 2 > HW_RS_BACKOFF_MAX_MS ? HW_RS_BACKOFF_MAX_MS : delay * 2;
  (void)uv_timer_start(&r->retry, hw_rs_on_retry, delay, 0); /* cannot fail on a live timer */
}

/* A connect attempt failed (no context was ever usable). */
static void hw_rs_attempt_failed(hw_redis_state *r, const char *reason) {
  r->failed_attempts++;
  /* The first failure is news; the same failure every few seconds while Redis is down is not. */
  if (r->failed_attempts == 1)
    hw_warn(HW_RS_LOG, NULL, "connect to %s:%d failed: %s; retrying with backoff", r->host,
            r->port, reason);
  else
    hw_debug(HW_RS_LOG, NULL, "connect to %s:%d failed (attempt %u): %s", r->host, r->port,
             r->failed_attempts, reason);
  hw_rs_schedule_retry(r);
}

/* The current context is gone or being freed (r->ac already cleared). */
static void hw_rs_conn_lost(hw_redis_state *r, int was_connected, const char *reason) {
  if (was_connected) {
    hw_warn(HW_RS_LOG, NULL, "disconnected from %s:%d: %s; %zu terminals dirty", r->host, r->port,
            reason, r->dirty_count);
    r->failed_attempts = 0;
    r->backoff_ms = HW_RS_BACKOFF_MIN_MS;
    hw_rs_schedule_retry(r);
  } else {
    hw_rs_attempt_failed(r, reason);
  }
}

/* We give up on the current context ourselves (timeout, protocol trouble). */
static void hw_rs_drop(hw_redis_state *r, const char *reason) {
  redisAsyncContext *ac = r->ac;
  int was_connected = r->state == HW_RS_READY || r->state == HW_RS_LOADING;
  r->ac = NULL; /* before the free: our connect/disconnect callbacks then ignore this context */
  if (ac)
    redisAsyncFree(ac); /* pending replies come back NULL; deferred when inside a reply callback */
  hw_rs_conn_lost(r, was_connected, reason);
}

static const char *hw_rs_errstr(const redisAsyncContext *ac) {
  if (ac->c.err && ac->c.errstr[0])
    return ac->c.errstr;
  if (ac->errstr && ac->errstr[0])
    return ac->errstr;
  return "connection closed";
}

static void hw_rs_on_connect(const redisAsyncContext *ac, int status) {
  hw_redis_state *r = ac->data;
  if (ac != r->ac)
    return; /* a context we already dropped */
  if (status != REDIS_OK) {
    /* hiredis frees ac right after this callback returns. */
    r->ac = NULL;
    hw_rs_conn_lost(r, 0, hw_rs_errstr(ac));
  }
  /* On success wait for SCRIPT LOAD's reply: only then are we ready. */
}

static void hw_rs_on_disconnect(const redisAsyncContext *ac, int status) {
  hw_redis_state *r = ac->data;
  if (ac != r->ac)
    return; /* we dropped it ourselves and have already scheduled what follows */
  int was_connected = r->state == HW_RS_READY || r->state == HW_RS_LOADING;
  r->ac = NULL; /* hiredis frees it after we return */
  hw_rs_conn_lost(r, was_connected,
                  status == REDIS_OK ? "closed" : hw_rs_errstr(ac));
}

static void hw_rs_on_poll_closed(void *arg) {
  hw_redis_state *r = arg;
  r->open_handles--;
  if (r->state == HW_RS_CLOSED)
    hw_rs_finish(r);
}

/* ---- script load ---- */

static void hw_rs_on_script(redisAsyncContext *ac, void *reply, void *privdata) {
  hw_redis_state *r = ac->data;
  redisReply *rep = reply;
  (void)privdata;
  r->in_flight--;
  r->last_progress = uv_now(r->loop);
  if (!rep || ac != r->ac)
    return; /* the context is going away; whoever freed it handles the rest */
  if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
    hw_error(HW_RS_LOG, NULL, "SCRIPT LOAD failed on %s:%d: %s", r->host, r->port,
             rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    hw_rs_drop(r, "SCRIPT LOAD failed");
    return;
  }
  memcpy(r->sha, rep->str, 40);
  r->sha[40] = '\0';
  int first = r->state == HW_RS_CONNECTING;
  r->state = HW_RS_READY;
  if (first) {
    /* Redis may have lost everything (restart without persistence) or missed writes while we
     * were away: write every known state again; the script keeps newer data that is there. */
    hw_registry_foreach(r->registry, t) {
      if (t->has_latest)
        hw_rs_mark_dirty(r, t);
    }
    hw_info(HW_RS_LOG, NULL, "connected to %s:%d after %u failed attempts; %zu states to write",
            r->host, r->port, r->failed_attempts, r->dirty_count);
    r->failed_attempts = 0;
    r->backoff_ms = HW_RS_BACKOFF_MIN_MS;
  }
  hw_rs_kick(r);
}

static int hw_rs_send_script_load(hw_redis_state *r) {
  if (redisAsyncCommand(r->ac, hw_rs_on_script, NULL, "SCRIPT LOAD %s", hw_rs_script) != REDIS_OK)
    return -EIO;
  if (r->in_flight++ == 0)
    r->last_progress = uv_now(r->loop);
  return 0;
}

/* ---- writes ---- */

static void hw_rs_log_error_reply(hw_redis_state *r, const hw_terminal *t, const char *msg) {
  uint64_t now = uv_now(r->loop);
  r->errors++;
  if (r->err_log_ms && now - r->err_log_ms < 1000) {
    r->err_unlogged++;
    return;
  }
  hw_error(HW_RS_LOG, t->id, "state write failed: %s (%llu more errors not logged)", msg,
           (unsigned long long)r->err_unlogged);
  r->err_log_ms = now;
  r->err_unlogged = 0;
}

static void hw_rs_on_write(redisAsyncContext *ac, void *reply, void *privdata) {
  hw_redis_state *r = ac->data;
  hw_terminal *t = privdata;
  redisReply *rep = reply;
  r->in_flight--;
  r->last_progress = uv_now(r->loop);
  if (!rep || ac != r->ac)
    return; /* connection lost: after reconnect every state is marked dirty anyway */

  if (rep->type == REDIS_REPLY_INTEGER) {
    r->writes++;
    if (rep->integer == 0)
      r->stale_skips++; /* Redis already held newer state (another daemon, or our own later) */
  } else if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
    /* SCRIPT FLUSH or a failover under us: load again, write this one again. */
    hw_rs_mark_dirty(r, t);
    if (r->state == HW_RS_READY) {
      hw_warn(HW_RS_LOG, NULL, "script cache lost on %s:%d, loading again", r->host, r->port);
      r->state = HW_RS_LOADING;
      if (hw_rs_send_script_load(r) < 0) {
        hw_rs_drop(r, "cannot send SCRIPT LOAD");
        return;
      }
    }
  } else {
    /* E.g. OOM with maxmemory: not retried in a loop; the next fix or reconnect writes again. */
    hw_rs_log_error_reply(r, t, rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
  }

  if (r->stopping && r->in_flight == 0 && !r->dirty_head) {
    hw_rs_finish(r);
    return;
  }
  hw_rs_kick(r);
}

/* Sends one EVALSHA for t's latest state. 0, or -EIO when hiredis refuses (context dying). */
static int hw_rs_send_write(hw_redis_state *r, hw_terminal *t) {
  const hw_fix *f = &t->latest;
  char key[sizeof HW_RS_KEY_PREFIX + HW_TERMINAL_ID_MAX];
  char num[10][24]; /* ts, lat, lon, speed, heading, alt, recv, alarm, status, odometer */
  const char *argv[17];
  size_t len[17];
  size_t idlen = strnlen(t->id, HW_TERMINAL_ID_MAX);

  memcpy(key, HW_RS_KEY_PREFIX, sizeof HW_RS_KEY_PREFIX - 1);
  memcpy(key + sizeof HW_RS_KEY_PREFIX - 1, t->id, idlen);

  argv[0] = "EVALSHA", len[0] = 7;
  argv[1] = r->sha, len[1] = 40;
  argv[2] = "2", len[2] = 1;
  argv[3] = key, len[3] = sizeof HW_RS_KEY_PREFIX - 1 + idlen;
  argv[4] = HW_RS_GEO_KEY, len[4] = sizeof HW_RS_GEO_KEY - 1;
  argv[5] = t->id, len[5] = idlen;
  len[6] = hw_rs_fmt_i64(num[0], f->ts_ms);
  len[7] = hw_rs_fmt_fixed(num[1], f->lat_e6, 6);
  len[8] = hw_rs_fmt_fixed(num[2], f->lon_e6, 6);
  len[9] = hw_rs_fmt_fixed(num[3], f->speed_dkmh, 1);
  len[10] = hw_rs_fmt_u64(num[4], f->heading);
  len[11] = hw_rs_fmt_i64(num[5], f->alt_m);
  len[12] = hw_rs_fmt_i64(num[6], f->recv_ms);
  len[13] = hw_rs_fmt_u64(num[7], f->alarm);
  len[14] = hw_rs_fmt_u64(num[8], f->status);
  len[15] = hw_rs_fmt_fixed(num[9], f->odometer_hm, 1);
  for (int i = 0; i < 10; i++)
    argv[6 + i] = num[i];
  argv[16] = f->has_driver ? f->driver_id : "";
  len[16] = f->has_driver ? strnlen(f->driver_id, HW_DRIVER_ID_MAX) : 0;

  /* hiredis copies the arguments into its output buffer. */
  if (redisAsyncCommandArgv(r->ac, hw_rs_on_write, t, 17, argv, len) != REDIS_OK)
    return -EIO;
  if (r->in_flight++ == 0)
    r->last_progress = uv_now(r->loop);
  return 0;
}

static void hw_rs_on_kick(uv_timer_t *timer);

static void hw_rs_flush(hw_redis_state *r) {
  int paced = r->flush_ms && !r->stopping;
  if (paced && r->cycle_left == 0 && r->dirty_head) {
    uint64_t now = uv_now(r->loop);
    if (now < r->next_cycle_ms) {
      if (!uv_is_active((uv_handle_t *)&r->kick))
        (void)uv_timer_start(&r->kick, hw_rs_on_kick, r->next_cycle_ms - now, 0);
      return;
    }
    r->cycle_left = r->dirty_count;
    r->next_cycle_ms = now + r->flush_ms;
  }
  while (r->state == HW_RS_READY && r->dirty_head && r->in_flight < r->max_in_flight) {
    if (paced && r->cycle_left == 0) {
      hw_rs_flush(r); /* arms the timer for the next cycle */
      return;
    }
    if (paced)
      r->cycle_left--;
    hw_terminal *t = hw_rs_pop_dirty(r);
    if (hw_rs_send_write(r, t) < 0) {
      hw_rs_mark_dirty(r, t);
      break; /* hiredis is tearing the context down; its callbacks will tell us */
    }
  }
}

static void hw_rs_on_kick(uv_timer_t *timer) {
  hw_redis_state *r = timer->data;
  hw_rs_flush(r);
}

static void hw_rs_kick(hw_redis_state *r) {
  if (r->state == HW_RS_READY && r->dirty_head && r->in_flight < r->max_in_flight &&
      !uv_is_active((uv_handle_t *)&r->kick))
    (void)uv_timer_start(&r->kick, hw_rs_on_kick, 0, 0); /* cannot fail on a live timer */
}

/* ---- timers and connecting ---- */

static void hw_rs_on_watchdog(uv_timer_t *timer) {
  hw_redis_state *r = timer->data;
  uint64_t now = uv_now(r->loop);
  if (r->state == HW_RS_CONNECTING && now - r->conn_started >= r->timeout_ms)
    hw_rs_drop(r, "connect timeout");
  else if ((r->state == HW_RS_READY || r->state == HW_RS_LOADING) && r->in_flight > 0 &&
           now - r->last_progress >= r->timeout_ms)
    hw_rs_drop(r, "reply timeout");
}

static void hw_rs_on_retry(uv_timer_t *timer) {
  hw_redis_state *r = timer->data;
  r->reconnects++;
  hw_rs_connect(r);
}

static void hw_rs_connect_ip(hw_redis_state *r, const char *ip) {
  redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
  if (!ac) {
    hw_rs_attempt_failed(r, "out of memory");
    return;
  }
  if (ac->err) {
    char reason[128];
    snprintf(reason, sizeof reason, "%s", ac->errstr ? ac->errstr : "connect error");
    redisAsyncFree(ac); /* never attached: frees synchronously, no callbacks */
    hw_rs_attempt_failed(r, reason);
    return;
  }
  ac->data = r;
  int rc = hw_redis_uv_attach(ac, r->loop, hw_rs_on_poll_closed, r);
  if (rc < 0) {
    redisAsyncFree(ac);
    hw_rs_attempt_failed(r, uv_strerror(rc));
    return;
  }
  r->open_handles++; /* the adapter's poll handle, until hw_rs_on_poll_closed */
  r->ac = ac;
  r->state = HW_RS_CONNECTING;
  r->conn_started = uv_now(r->loop);
  /* Attach first: setting the connect callback already asks for the first write event. */
  (void)redisAsyncSetConnectCallback(ac, hw_rs_on_connect);
  (void)redisAsyncSetDisconnectCallback(ac, hw_rs_on_disconnect);
  uint64_t every = r->timeout_ms / 4 ? r->timeout_ms / 4 : 1;
  (void)uv_timer_start(&r->watchdog, hw_rs_on_watchdog, every, every);
  /* Queued now, written as soon as the socket connects: saves a round trip. */
  if (hw_rs_send_script_load(r) < 0)
    hw_rs_drop(r, "cannot queue SCRIPT LOAD");
}

static void hw_rs_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  hw_redis_state *r = req->data;
  r->resolving = 0;
  r->open_handles--;
  if (r->state == HW_RS_CLOSED) {
    uv_freeaddrinfo(res);
    hw_rs_finish(r);
    return;
  }
  if (status < 0) {
    uv_freeaddrinfo(res);
    r->state = HW_RS_IDLE;
    hw_rs_attempt_failed(r, uv_strerror(status));
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
  r->state = HW_RS_IDLE;
  hw_rs_connect_ip(r, ip);
}

static void hw_rs_connect(hw_redis_state *r) {
  if (r->host_numeric) {
    hw_rs_connect_ip(r, r->host);
    return;
  }
  /* hiredis would call getaddrinfo itself, blocking the loop on DNS: resolve off the loop. */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  r->gai.data = r;
  int rc = uv_getaddrinfo(r->loop, &r->gai, hw_rs_on_resolved, r->host, NULL, &hints);
  if (rc < 0) {
    hw_rs_attempt_failed(r, uv_strerror(rc));
    return;
  }
  r->resolving = 1;
  r->open_handles++;
  r->state = HW_RS_RESOLVING;
}

/* ---- public ---- */

int hw_redis_state_start(hw_redis_state **out, uv_loop_t *loop, const hw_redis_state_config *cfg,
                         hw_registry *registry) {
  if (!out || !loop || !cfg || !cfg->host || !*cfg->host || cfg->port <= 0 || cfg->port > 65535 ||
      !registry)
    return -EINVAL;
  hw_redis_state *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->host = strdup(cfg->host);
  if (!r->host) {
    free(r);
    return -ENOMEM;
  }
  unsigned char addr[sizeof(struct in6_addr)];
  r->host_numeric =
      inet_pton(AF_INET, r->host, addr) == 1 || inet_pton(AF_INET6, r->host, addr) == 1;
  r->loop = loop;
  r->registry = registry;
  r->port = cfg->port;
  r->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : 1024;
  r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
  r->flush_ms = cfg->flush_ms;
  r->backoff_ms = HW_RS_BACKOFF_MIN_MS;

  uv_timer_t *timers[] = {&r->kick, &r->retry, &r->watchdog, &r->stop_deadline};
  for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++) {
    (void)uv_timer_init(loop, timers[i]); /* only initialises memory; cannot fail */
    timers[i]->data = r;
    r->open_handles++;
  }
  hw_rs_connect(r);
  *out = r;
  return 0;
}

void hw_redis_state_put(hw_redis_state *r, hw_terminal *t, const hw_fix *fix) {
  if (t->has_latest && fix->ts_ms < t->latest.ts_ms)
    return; /* older than what we have: nothing to write */
  t->latest = *fix;
  t->has_latest = 1;
  if (r->state == HW_RS_CLOSED)
    return;
  hw_rs_mark_dirty(r, t);
  hw_rs_kick(r);
}

void hw_redis_state_get_stats(const hw_redis_state *r, hw_redis_state_stats *out) {
  out->writes = r->writes;
  out->reconnects = r->reconnects;
  out->dirty = r->dirty_count;
  out->connected = r->state == HW_RS_READY || r->state == HW_RS_LOADING;
}

static void hw_rs_on_stop_deadline(uv_timer_t *timer) {
  hw_redis_state *r = timer->data;
  hw_warn(HW_RS_LOG, NULL, "stop: gave up after %u ms with %zu states unwritten, %u in flight",
          r->timeout_ms, r->dirty_count, r->in_flight);
  hw_rs_finish(r);
}

static void hw_rs_on_timer_closed(uv_handle_t *h) {
  hw_redis_state *r = h->data;
  r->open_handles--;
  hw_rs_finish(r);
}

/* Moves to CLOSED (dropping the context and closing our timers) and, once every handle has
 * reported its close, frees r and calls done_cb. Safe to call again at each close. */
static void hw_rs_finish(hw_redis_state *r) {
  if (r->state != HW_RS_CLOSED) {
    redisAsyncContext *ac = r->ac;
    r->state = HW_RS_CLOSED;
    r->ac = NULL;
    if (ac)
      redisAsyncFree(ac); /* its poll handle closes via the adapter, counted in open_handles */
    if (r->resolving)
      (void)uv_cancel((uv_req_t *)&r->gai); /* its callback still runs (ECANCELED) */
    uv_timer_t *timers[] = {&r->kick, &r->retry, &r->watchdog, &r->stop_deadline};
    for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++)
      uv_close((uv_handle_t *)timers[i], hw_rs_on_timer_closed);
    return; /* every close reports back here, so done_cb never runs inside stop() */
  }
  if (r->open_handles > 0)
    return;
  void (*cb)(void *) = r->done_cb;
  void *arg = r->done_arg;
  if (r->dirty_count || r->writes)
    hw_info(HW_RS_LOG, NULL, "stopped: %llu writes (%llu stale), %llu errors, %zu states unwritten",
            (unsigned long long)r->writes, (unsigned long long)r->stale_skips,
            (unsigned long long)r->errors, r->dirty_count);
  /* Terminals outlive us: unlink them so a later instance starts from a clean list. */
  while (hw_rs_pop_dirty(r))
    ;
  free(r->host);
  free(r);
  if (cb)
    cb(arg);
}

void hw_redis_state_stop(hw_redis_state *r, void (*done_cb)(void *arg), void *arg) {
  if (r->stopping)
    return;
  r->stopping = 1;
  r->done_cb = done_cb;
  r->done_arg = arg;
  uv_timer_stop(&r->retry);
  int connected = r->state == HW_RS_READY || r->state == HW_RS_LOADING;
  if (connected && (r->dirty_head || r->in_flight)) {
    (void)uv_timer_start(&r->stop_deadline, hw_rs_on_stop_deadline, r->timeout_ms, 0);
    hw_rs_kick(r);
    return;
  }
  hw_rs_finish(r);
}
