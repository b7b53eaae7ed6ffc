/* Latest state per terminal in Redis: coalescing dirty list, one connection, pipelined EVALSHA.
 *
 * The connection (redis_conn.c) has a handshake: SCRIPT LOAD is queued on every new context and
 * the session is up once it answered (both under the connect timeout). Up, writes flow, except
 * while the script cache was lost under us (loading: SCRIPT LOAD again, writes paused). */
#include "sinks/redis_state.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "registry/registry.h"
#include "sinks/redis_conn.h"

#define HW_RS_LOG "redis"
#define HW_RS_GEO_KEY "hw:geo"
#define HW_RS_KEY_PREFIX "hw:veh:"
/* Redis' GEOADD limit (EPSG:900913 square); outside it GEOADD errors. */
#define HW_RS_GEO_LAT_MAX "85.05112878"

/* KEYS[1] hw:veh:<id>, KEYS[2] hw:geo.
 * ARGV: id, ts_ms, lat, lon, speed_kmh, heading, alt_m, recv_ms, alarm, status, odometer_km,
 * driver_id. Compares ts_ms numerically (as strings, "9000" would beat "10000") so late data and
 * a second daemon never overwrite newer state. Equal ts_ms is the same device second again, kept
 * as positions keeps it (pg_writer.h): the state written first stays and only gains the alarm bits
 * (bit.bor works on signed 32 bits, hence the correction to uint32). Where GEOADD cannot store the
 * latitude the member is removed rather than left at an older position the hash now
 * contradicts. */
static const char hw_rs_script[] =
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'ts_ms'))\n"
    "if cur and cur > tonumber(ARGV[2]) then return 0 end\n"
    "if cur and cur == tonumber(ARGV[2]) then\n"
    "  local a = bit.bor(tonumber(redis.call('HGET', KEYS[1], 'alarm')) or 0, tonumber(ARGV[9]))\n"
    "  if a < 0 then a = a + 4294967296 end\n"
    "  redis.call('HSET', KEYS[1], 'alarm', string.format('%.0f', a))\n"
    "  return 1\n"
    "end\n"
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

struct hw_redis_state {
  uv_loop_t *loop;
  hw_registry *registry; /* not owned; outlives us */
  uint32_t max_in_flight;
  uint32_t timeout_ms;

  /* conn.in_flight counts commands sent and not answered, SCRIPT LOAD included. */
  hw_redis_conn conn;
  int loading;  /* up, NOSCRIPT seen: SCRIPT LOAD again, writes paused */
  char sha[41]; /* script SHA1 from SCRIPT LOAD on this connection */

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

  uv_timer_t kick; /* 0 ms: flush after the current loop iteration's events */
  uv_timer_t stop_deadline;

  /* Live feed: position events of the states sent since the last PUBLISH, one JSON object per
   * line. Owned; NULL when publishing is off. Sent on the same connection after those writes. */
  int publish;
  uint32_t moving_dkmh;
  char *pub;
  size_t pub_len, pub_events;
  uint64_t events_published, publishes, pub_errors;

  uint64_t writes, stale_skips, errors;
  uint64_t err_log_ms;  /* rate limit of error-reply logging */
  uint64_t err_unlogged;

  int stopping;
  int closing;           /* finish has begun: only handle closes left */
  int conn_closed;       /* conn reported closed */
  uint32_t open_handles; /* our timers; done when 0 (and conn_closed) after close */
  void (*done_cb)(void *arg);
  void *done_arg;
};

static void hw_rs_kick(hw_redis_state *r);
static void hw_rs_finish(hw_redis_state *r);

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

/* A JSON string: '"', s escaped, '"'. s is UTF-8 (registry text is checked on import and by
 * PostgreSQL); only '"', '\\' and control characters need escaping. out has room for 6 bytes per
 * input byte plus 2. */
static size_t hw_rs_fmt_json_str(char *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  out[n++] = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      out[n++] = '\\';
      out[n++] = (char)ch;
    } else if (ch < 0x20) {
      memcpy(out + n, "\\u00", 4);
      out[n + 4] = hex[ch >> 4];
      out[n + 5] = hex[ch & 15];
      n += 6;
    } else {
      out[n++] = (char)ch;
    }
  }
  out[n++] = '"';
  return n;
}

#define HW_RS_LIT(out, n, lit) (memcpy((out) + (n), lit, sizeof lit - 1), (n) += sizeof lit - 1)

/* By hand rather than with cJSON: this runs for every state written (up to every vehicle every
 * flush round) and must not allocate; the tests parse its output with cJSON. */
size_t hw_redis_state_format_event(char *out, const hw_terminal *t, uint32_t moving_dkmh) {
  const hw_fix *f = &t->latest;
  size_t n = 0;
  HW_RS_LIT(out, n, "{\"terminal_id\":");
  n += hw_rs_fmt_json_str(out + n, t->id, strnlen(t->id, HW_TID_WIDE_MAX));
  HW_RS_LIT(out, n, ",\"ts_ms\":");
  n += hw_rs_fmt_i64(out + n, f->ts_ms);
  HW_RS_LIT(out, n, ",\"lat\":");
  n += hw_rs_fmt_fixed(out + n, f->lat_e6, 6);
  HW_RS_LIT(out, n, ",\"lon\":");
  n += hw_rs_fmt_fixed(out + n, f->lon_e6, 6);
  HW_RS_LIT(out, n, ",\"speed_kmh\":");
  n += hw_rs_fmt_fixed(out + n, f->speed_dkmh, 1);
  HW_RS_LIT(out, n, ",\"heading\":");
  n += hw_rs_fmt_u64(out + n, f->heading);
  HW_RS_LIT(out, n, ",\"alarm\":");
  n += hw_rs_fmt_u64(out + n, f->alarm);
  HW_RS_LIT(out, n, ",\"status\":");
  n += hw_rs_fmt_u64(out + n, f->status);
  if (f->speed_dkmh >= moving_dkmh)
    HW_RS_LIT(out, n, ",\"moving\":true");
  else
    HW_RS_LIT(out, n, ",\"moving\":false");
  const hw_vehicle *v = t->vehicle;
  if (v) {
    HW_RS_LIT(out, n, ",\"region\":");
    n += hw_rs_fmt_json_str(out + n, v->region, strnlen(v->region, HW_REGION_LEN));
    HW_RS_LIT(out, n, ",\"enterprise\":");
    n += hw_rs_fmt_json_str(out + n, v->enterprise, strnlen(v->enterprise, HW_ENTERPRISE_MAX));
    HW_RS_LIT(out, n, "}\n");
  } else {
    HW_RS_LIT(out, n, ",\"region\":null,\"enterprise\":null}\n");
  }
  return n;
}

/* ---- dirty list ---- */

static void hw_rs_mark_dirty(hw_redis_state *r, hw_terminal *t) {
  if (t->redis_dirty)
    return;
  t->redis_dirty = 1;
  t->redis_dirty_ms = uv_now(r->loop);
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

/* ---- script load ---- */

static void hw_rs_on_script(redisAsyncContext *ac, void *reply, void *privdata) {
  hw_redis_conn *c = ac->data;
  hw_redis_state *r = c->data;
  redisReply *rep = reply;
  (void)privdata;
  if (!hw_redis_conn_reply(c, ac, rep))
    return; /* the context is going away; its loss is reported to hw_rs_conn_lost */
  if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
    hw_error(HW_RS_LOG, NULL, "SCRIPT LOAD failed on %s:%d: %s", c->host, c->port,
             rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    hw_redis_conn_drop(c, "SCRIPT LOAD failed");
    return;
  }
  memcpy(r->sha, rep->str, 40);
  r->sha[40] = '\0';
  r->loading = 0;
  hw_redis_conn_ready(c); /* first load on this context: the session comes up */
  hw_rs_kick(r);
}

static int hw_rs_send_script_load(hw_redis_state *r) {
  if (redisAsyncCommand(r->conn.ac, hw_rs_on_script, NULL, "SCRIPT LOAD %s", hw_rs_script) !=
      REDIS_OK)
    return -EIO;
  hw_redis_conn_sent(&r->conn);
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
  hw_redis_conn *c = ac->data;
  hw_redis_state *r = c->data;
  hw_terminal *t = privdata;
  redisReply *rep = reply;
  if (!hw_redis_conn_reply(c, ac, rep))
    return; /* connection lost: after reconnect every state is marked dirty anyway */

  if (rep->type == REDIS_REPLY_INTEGER) {
    r->writes++;
    if (rep->integer == 0)
      r->stale_skips++; /* Redis already held newer state (another daemon, or our own later) */
  } else if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
    /* SCRIPT FLUSH or a failover under us: load again, write this one again. */
    hw_rs_mark_dirty(r, t);
    if (!r->loading) {
      hw_warn(HW_RS_LOG, NULL, "script cache lost on %s:%d, loading again", c->host, c->port);
      r->loading = 1;
      if (hw_rs_send_script_load(r) < 0) {
        hw_redis_conn_drop(c, "cannot send SCRIPT LOAD");
        return;
      }
    }
  } else {
    /* E.g. OOM with maxmemory: not retried in a loop; the next fix or reconnect writes again. */
    hw_rs_log_error_reply(r, t, rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
  }

  if (r->stopping && c->in_flight == 0 && !r->dirty_head) {
    hw_rs_finish(r);
    return;
  }
  hw_rs_kick(r);
}

static void hw_rs_on_publish(redisAsyncContext *ac, void *reply, void *privdata) {
  hw_redis_conn *c = ac->data;
  hw_redis_state *r = c->data;
  redisReply *rep = reply;
  size_t events = (size_t)(uintptr_t)privdata;
  if (!hw_redis_conn_reply(c, ac, rep))
    return; /* lost: after reconnect every state is written, and so published, again */
  if (rep->type == REDIS_REPLY_INTEGER) {
    r->publishes++;
    r->events_published += events;
  } else {
    r->pub_errors++;
    hw_warn(HW_RS_LOG, NULL, "PUBLISH %s of %zu position events refused by %s:%d: %s",
            HW_POSITIONS_REDIS_CHANNEL, events, c->host, c->port,
            rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
  }
  if (r->stopping && c->in_flight == 0 && !r->dirty_head) {
    hw_rs_finish(r);
    return;
  }
  hw_rs_kick(r);
}

/* Publishes the events batched since the last PUBLISH, after the writes they describe. Events
 * that hiredis refuses (context dying) are dropped: the reconnect writes and publishes every
 * state again. */
static void hw_rs_publish(hw_redis_state *r) {
  if (!r->pub_len)
    return;
  if (r->conn.ac && redisAsyncCommand(r->conn.ac, hw_rs_on_publish, (void *)(uintptr_t)r->pub_events,
                                      "PUBLISH %s %b", HW_POSITIONS_REDIS_CHANNEL, r->pub,
                                      r->pub_len - 1 /* the last '\n' */) == REDIS_OK)
    hw_redis_conn_sent(&r->conn);
  r->pub_len = 0;
  r->pub_events = 0;
}

/* Sends one EVALSHA for t's latest state. 0, or -EIO when hiredis refuses (context dying). */
static int hw_rs_send_write(hw_redis_state *r, hw_terminal *t) {
  const hw_fix *f = &t->latest;
  char key[sizeof HW_RS_KEY_PREFIX + HW_TID_WIDE_MAX];
  char num[10][24]; /* ts, lat, lon, speed, heading, alt, recv, alarm, status, odometer */
  const char *argv[17];
  size_t len[17];
  size_t idlen = strnlen(t->id, HW_TID_WIDE_MAX);

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
  if (redisAsyncCommandArgv(r->conn.ac, hw_rs_on_write, t, 17, argv, len) != REDIS_OK)
    return -EIO;
  hw_redis_conn_sent(&r->conn);
  if (r->pub) {
    r->pub_len += hw_redis_state_format_event(r->pub + r->pub_len, t, r->moving_dkmh);
    r->pub_events++;
    if (r->pub_len >= HW_RS_PUB_BATCH_BYTES)
      hw_rs_publish(r);
  }
  return 0;
}

static void hw_rs_on_kick(uv_timer_t *timer);

/* Up, with the script loaded on this connection. */
static int hw_rs_writable(const hw_redis_state *r) { return r->conn.up && !r->loading; }

static void hw_rs_flush_states(hw_redis_state *r) {
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
  while (hw_rs_writable(r) && r->dirty_head && r->conn.in_flight < r->max_in_flight) {
    if (paced && r->cycle_left == 0) {
      hw_rs_flush_states(r); /* arms the timer for the next cycle */
      return;
    }
    if (paced)
      r->cycle_left--;
    hw_terminal *t = hw_rs_pop_dirty(r);
    if (hw_rs_send_write(r, t) < 0) {
      uint64_t since = t->redis_dirty_ms; /* still waiting since then */
      hw_rs_mark_dirty(r, t);
      t->redis_dirty_ms = since;
      break; /* hiredis is tearing the context down; its callbacks will tell us */
    }
  }
}

/* One pass: the writes it can send, then one PUBLISH of their events. */
static void hw_rs_flush(hw_redis_state *r) {
  hw_rs_flush_states(r);
  hw_rs_publish(r);
}

static void hw_rs_on_kick(uv_timer_t *timer) {
  hw_redis_state *r = timer->data;
  hw_rs_flush(r);
}

static void hw_rs_kick(hw_redis_state *r) {
  if (hw_rs_writable(r) && r->dirty_head && r->conn.in_flight < r->max_in_flight &&
      !uv_is_active((uv_handle_t *)&r->kick))
    (void)uv_timer_start(&r->kick, hw_rs_on_kick, 0, 0); /* cannot fail on a live timer */
}

/* ---- connection ---- */

/* Queued before the connect completes: written as soon as it does. */
static int hw_rs_conn_attached(hw_redis_conn *c) {
  hw_redis_state *r = c->data;
  r->loading = 0;
  return hw_rs_send_script_load(r);
}

static void hw_rs_conn_ready(hw_redis_conn *c) {
  hw_redis_state *r = c->data;
  /* Redis may have lost everything (restart without persistence) or missed writes while we
   * were away: write every known state again; the script keeps newer data that is there. */
  hw_registry_foreach(r->registry, t) {
    if (t->has_latest)
      hw_rs_mark_dirty(r, t);
  }
}

static void hw_rs_conn_lost(hw_redis_conn *c) {
  hw_redis_state *r = c->data;
  r->loading = 0;
  if (r->stopping)
    hw_rs_finish(r); /* no reconnect for a stop */
}

static void hw_rs_conn_closed(hw_redis_conn *c) {
  hw_redis_state *r = c->data;
  r->conn_closed = 1;
  hw_rs_finish(r);
}

static const hw_redis_conn_ops hw_rs_conn_ops = {
    .attached = hw_rs_conn_attached,
    .ready = hw_rs_conn_ready,
    .lost = hw_rs_conn_lost,
    .closed = hw_rs_conn_closed,
};

/* ---- public ---- */

int hw_redis_state_start(hw_redis_state **out, uv_loop_t *loop, const hw_redis_state_config *cfg,
                         hw_registry *registry) {
  if (!out || !loop || !cfg || !registry)
    return -EINVAL;
  hw_redis_state *r = calloc(1, sizeof *r);
  if (!r)
    return -ENOMEM;
  r->loop = loop;
  r->registry = registry;
  r->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : 1024;
  r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
  r->flush_ms = cfg->flush_ms;
  r->moving_dkmh = cfg->moving_dkmh;
  if (cfg->publish) {
    /* A batch is sent once it reaches HW_RS_PUB_BATCH_BYTES: room for one more event beyond. */
    r->pub = malloc(HW_RS_PUB_BATCH_BYTES + HW_RS_EVENT_MAX);
    if (!r->pub) {
      free(r);
      return -ENOMEM;
    }
  }
  hw_redis_conn_config cc = {.host = cfg->host,
                             .port = cfg->port,
                             .timeout_ms = r->timeout_ms,
                             .component = HW_RS_LOG,
                             .handshake = 1, /* SCRIPT LOAD */
                             .backlog = &r->dirty_count,
                             .backlog_what = "states to write"};
  int rc = hw_redis_conn_init(&r->conn, loop, &cc, &hw_rs_conn_ops, r);
  if (rc) {
    free(r->pub);
    free(r);
    return rc;
  }

  uv_timer_t *timers[] = {&r->kick, &r->stop_deadline};
  for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++) {
    (void)uv_timer_init(loop, timers[i]); /* only initialises memory; cannot fail */
    timers[i]->data = r;
    r->open_handles++;
  }
  hw_redis_conn_start(&r->conn);
  *out = r;
  return 0;
}

void hw_redis_state_put(hw_redis_state *r, hw_terminal *t, const hw_fix *fix) {
  if (t->has_latest && fix->ts_ms < t->latest.ts_ms)
    return; /* older than what we have: nothing to write */
  if (t->has_latest && fix->ts_ms == t->latest.ts_ms) {
    /* The same device second again: as in positions, the fix received first stays and gains the
     * alarm bits (an emergency must show); a resend changes nothing and costs no write. */
    if ((t->latest.alarm | fix->alarm) == t->latest.alarm)
      return;
    t->latest.alarm |= fix->alarm;
  } else {
    t->latest = *fix;
    t->has_latest = 1;
  }
  if (r->closing)
    return;
  hw_rs_mark_dirty(r, t);
  hw_rs_kick(r);
}

void hw_redis_state_get_stats(const hw_redis_state *r, hw_redis_state_stats *out) {
  out->writes = r->writes;
  out->events_published = r->events_published;
  out->publishes = r->publishes;
  out->reconnects = r->conn.reconnects;
  out->dirty = r->dirty_count;
  uint64_t now = uv_now(r->loop);
  out->lag_ms = r->dirty_head && now > r->dirty_head->redis_dirty_ms
                    ? now - r->dirty_head->redis_dirty_ms : 0;
  out->connected = r->conn.up;
}

static void hw_rs_on_stop_deadline(uv_timer_t *timer) {
  hw_redis_state *r = timer->data;
  hw_warn(HW_RS_LOG, NULL, "stop: gave up after %u ms with %zu states unwritten, %u in flight",
          r->timeout_ms, r->dirty_count, r->conn.in_flight);
  hw_rs_finish(r);
}

static void hw_rs_on_timer_closed(uv_handle_t *h) {
  hw_redis_state *r = h->data;
  r->open_handles--;
  hw_rs_finish(r);
}

/* Begins closing (the connection and our timers) and, once every handle has reported its
 * close, frees r and calls done_cb. Safe to call again at each close. */
static void hw_rs_finish(hw_redis_state *r) {
  if (!r->closing) {
    r->closing = 1;
    hw_redis_conn_close(&r->conn);
    uv_timer_t *timers[] = {&r->kick, &r->stop_deadline};
    for (size_t i = 0; i < HW_ARRAY_SIZE(timers); i++)
      uv_close((uv_handle_t *)timers[i], hw_rs_on_timer_closed);
    return; /* every close reports back here, so done_cb never runs inside stop() */
  }
  if (r->open_handles > 0 || !r->conn_closed)
    return;
  void (*cb)(void *) = r->done_cb;
  void *arg = r->done_arg;
  if (r->dirty_count || r->writes)
    hw_info(HW_RS_LOG, NULL, "stopped: %llu writes (%llu stale), %llu errors, %zu states unwritten; "
            "%llu position events in %llu PUBLISHes (%llu refused)",
            (unsigned long long)r->writes, (unsigned long long)r->stale_skips,
            (unsigned long long)r->errors, r->dirty_count,
            (unsigned long long)r->events_published, (unsigned long long)r->publishes,
            (unsigned long long)r->pub_errors);
  /* Terminals outlive us: unlink them so a later instance starts from a clean list. */
  while (hw_rs_pop_dirty(r))
    ;
  free(r->pub);
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
  if (r->conn.up && (r->dirty_head || r->conn.in_flight)) {
    (void)uv_timer_start(&r->stop_deadline, hw_rs_on_stop_deadline, r->timeout_ms, 0);
    hw_rs_kick(r);
    return;
  }
  hw_rs_finish(r);
}
