/* Latest state per terminal in Redis: coalescing dirty list, one connection, pipelined EVALSHA of
 * one script call per bucket of vehicles (sinks/redis_keys.h).
 *
 * Why a script, and why per bucket. Newest-wins (an older fix never overwrites a newer one) must
 * hold with several writers: the workers of one process and several nodes may each hold a state
 * of one terminal (a truck that reconnected elsewhere), ownership (docs/ownership.md) is off by
 * default, and even with it on an old owner learns of a move only at its next refused PostgreSQL
 * write, and after a reconnect every writer writes all it knows again. The daemon already writes a
 * terminal only when its own state is newer (hw_redis_state_put), but it cannot know what another
 * writer put there, and Redis 7.0 has no conditional HSET, so a plain pipelined HSET could put an
 * old state back; only a comparison inside Redis keeps the guarantee. A Redis 7 FUNCTION would
 * run the same Lua at the same cost and needs FUNCTION LOAD handling of its own: no gain. What a
 * script call costs besides its vehicles' commands (parsing, the script lookup, entering Lua) is
 * shared by batching: one call writes up to HW_RS_BATCH_MAX vehicles of one bucket. Measured
 * (tests/bench/bench_redis_state.c, README "Redis keys"): 10 to 15 % less Redis CPU per vehicle
 * than a call per vehicle at 13 vehicles a call; the rest is the HGET, HSET and GEOADD each vehicle
 * needs, which more vehicles a call do not reduce. The bucket is the keys' Cluster hash tag, so a
 * call's keys (the vehicles' hashes and the bucket's geo set) share a slot.
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
#include "sinks/redis_keys.h"

#define HW_RS_LOG "redis"
/* Redis' GEOADD limit (EPSG:900913 square); outside it GEOADD errors. */
#define HW_RS_GEO_LAT_MAX "85.05112878"
/* Vehicles per script call at most: past a few tens the per-call cost is spread thin, and a
 * call blocks Redis for its whole length. */
#define HW_RS_BATCH_MAX 64
/* Vehicles taken off the dirty list per pass and sorted into buckets: the more, the fuller each
 * bucket's call (4096 over 256 buckets: 16 a call when the list is long; 39 a call with 16384
 * measured barely cheaper, README "Redis keys"). */
#define HW_RS_GATHER 4096
#define HW_RS_ARGS_PER_VEH 12
#define HW_RS_ARGV_MAX (4 + HW_RS_BATCH_MAX * (1 + HW_RS_ARGS_PER_VEH))

/* KEYS[1] hw:geo:{b}, KEYS[1+i] hw:veh:{b}:<id> of the i-th vehicle, all of bucket b.
 * ARGV, 12 per vehicle: id, ts_ms, lat, lon, speed_kmh, heading, alt_m, recv_ms, alarm, status,
 * odometer_km, driver_id. Returns how many vehicles were written (the others held newer state).
 * Compares ts_ms numerically (as strings, "9000" would beat "10000") so late data and a second
 * writer never overwrite newer state. Equal ts_ms is the same device second again, kept as
 * positions keeps it (pg_writer.h): the state written first stays and only gains the alarm bits
 * (bit.bor works on signed 32 bits, hence the correction to uint32). Where GEOADD cannot store the
 * latitude the member is removed rather than left at an older position the hash now
 * contradicts. */
static const char hw_rs_script[] =
    "local n = 0\n"
    "for i = 2, #KEYS do\n"
    "  local b = (i - 2) * 12\n"
    "  local k = KEYS[i]\n"
    "  local ts = tonumber(ARGV[b + 2])\n"
    "  local cur = tonumber(redis.call('HGET', k, 'ts_ms'))\n"
    "  if cur and cur == ts then\n"
    "    local a = bit.bor(tonumber(redis.call('HGET', k, 'alarm')) or 0, tonumber(ARGV[b + 9]))\n"
    "    if a < 0 then a = a + 4294967296 end\n"
    "    redis.call('HSET', k, 'alarm', string.format('%.0f', a))\n"
    "    n = n + 1\n"
    "  elseif not cur or cur < ts then\n"
    "    redis.call('HSET', k, 'lat', ARGV[b + 3], 'lon', ARGV[b + 4], 'speed_kmh', ARGV[b + 5],\n"
    "      'heading', ARGV[b + 6], 'alt_m', ARGV[b + 7], 'ts_ms', ARGV[b + 2], 'recv_ms', ARGV[b + 8],\n"
    "      'alarm', ARGV[b + 9], 'status', ARGV[b + 10], 'odometer_km', ARGV[b + 11],\n"
    "      'driver_id', ARGV[b + 12])\n"
    "    local lat, lon = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])\n"
    "    if lat >= -" HW_RS_GEO_LAT_MAX " and lat <= " HW_RS_GEO_LAT_MAX
    " and lon >= -180 and lon <= 180 then\n"
    "      redis.call('GEOADD', KEYS[1], ARGV[b + 4], ARGV[b + 3], ARGV[b + 1])\n"
    "    else\n"
    "      redis.call('ZREM', KEYS[1], ARGV[b + 1])\n"
    "    end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* The terminals of one script call, in KEYS order. Owned by the call: freed by its reply
 * callback (hiredis calls it, with a NULL reply, for a context it frees too). */
typedef struct hw_rs_batch {
  uint32_t n;
  hw_terminal *t[];
} hw_rs_batch;

/* A pass's scratch: the terminals taken off the dirty list and their buckets, the same sorted by
 * bucket, and the argument buffers of one call (hiredis copies the arguments into its output
 * buffer, so they are reused at once). */
typedef struct hw_rs_args {
  hw_terminal *gather[HW_RS_GATHER], *sorted[HW_RS_GATHER];
  uint16_t bucket[HW_RS_GATHER], sbucket[HW_RS_GATHER];
  const char *argv[HW_RS_ARGV_MAX];
  size_t len[HW_RS_ARGV_MAX];
  char geo[HW_REDIS_GEO_KEY_LEN + 1];
  char keys[HW_RS_BATCH_MAX][HW_REDIS_VEH_KEY_HEAD + HW_TID_WIDE_MAX + 1];
  char num[HW_RS_BATCH_MAX][10][24]; /* ts, lat, lon, speed, heading, alt, recv, alarm, status, odo */
} hw_rs_args;

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

  hw_rs_args *args;     /* owned; a pass's scratch */
  unsigned next_bucket; /* the bucket a pass sends first */

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
  uint64_t calls; /* script calls answered */
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

/* Puts t, taken off the list but not sent, back at the head, its waiting time unchanged. */
static void hw_rs_unpop_dirty(hw_redis_state *r, hw_terminal *t) {
  t->redis_dirty = 1;
  t->redis_next = r->dirty_head;
  r->dirty_head = t;
  if (!r->dirty_tail)
    r->dirty_tail = t;
  r->dirty_count++;
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
  hw_rs_batch *batch = privdata;
  redisReply *rep = reply;
  if (!hw_redis_conn_reply(c, ac, rep)) {
    free(batch);
    return; /* connection lost: after reconnect every state is marked dirty anyway */
  }

  if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0 && rep->integer <= batch->n) {
    r->calls++;
    r->writes += batch->n;
    /* Redis already held newer state (another writer, or our own later) for the others. */
    r->stale_skips += batch->n - (uint64_t)rep->integer;
  } else if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
    /* SCRIPT FLUSH or a failover under us: load again, write these again. */
    for (uint32_t i = 0; i < batch->n; i++)
      hw_rs_mark_dirty(r, batch->t[i]);
    if (!r->loading) {
      hw_warn(HW_RS_LOG, NULL, "script cache lost on %s:%d, loading again", c->host, c->port);
      r->loading = 1;
      if (hw_rs_send_script_load(r) < 0) {
        free(batch);
        hw_redis_conn_drop(c, "cannot send SCRIPT LOAD");
        return;
      }
    }
  } else {
    /* E.g. OOM with maxmemory: not retried in a loop; the next fix or reconnect writes again. */
    hw_rs_log_error_reply(r, batch->t[0], rep->type == REDIS_REPLY_ERROR ? rep->str
                                                                         : "unexpected reply");
  }
  free(batch);

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

/* Sends one EVALSHA for the latest states of t[0..n), all of one bucket, n <= HW_RS_BATCH_MAX.
 * 0; -ENOMEM; -EIO when hiredis refuses (context dying). */
static int hw_rs_send_batch(hw_redis_state *r, hw_terminal *const *t, uint32_t n, unsigned bucket) {
  hw_rs_args *a = r->args;
  hw_rs_batch *batch = malloc(sizeof *batch + n * sizeof batch->t[0]);
  if (!batch)
    return -ENOMEM;
  batch->n = n;
  memcpy(batch->t, t, n * sizeof t[0]);

  size_t k = 0;
  a->argv[k] = "EVALSHA", a->len[k++] = 7;
  a->argv[k] = r->sha, a->len[k++] = 40;
  char nkeys[12];
  a->argv[k] = nkeys, a->len[k++] = hw_rs_fmt_u64(nkeys, 1 + (uint64_t)n);
  a->argv[k] = a->geo, a->len[k++] = hw_redis_key_geo(a->geo, bucket);
  for (uint32_t i = 0; i < n; i++) {
    size_t idlen = strnlen(t[i]->id, HW_TID_WIDE_MAX);
    a->argv[k] = a->keys[i], a->len[k++] = hw_redis_key_veh(a->keys[i], t[i]->id, idlen);
  }
  for (uint32_t i = 0; i < n; i++) {
    const hw_fix *f = &t[i]->latest;
    char (*num)[24] = a->num[i];
    size_t idlen = strnlen(t[i]->id, HW_TID_WIDE_MAX);
    a->argv[k] = t[i]->id, a->len[k++] = idlen;
    a->len[k] = hw_rs_fmt_i64(num[0], f->ts_ms);
    a->len[k + 1] = hw_rs_fmt_fixed(num[1], f->lat_e6, 6);
    a->len[k + 2] = hw_rs_fmt_fixed(num[2], f->lon_e6, 6);
    a->len[k + 3] = hw_rs_fmt_fixed(num[3], f->speed_dkmh, 1);
    a->len[k + 4] = hw_rs_fmt_u64(num[4], f->heading);
    a->len[k + 5] = hw_rs_fmt_i64(num[5], f->alt_m);
    a->len[k + 6] = hw_rs_fmt_i64(num[6], f->recv_ms);
    a->len[k + 7] = hw_rs_fmt_u64(num[7], f->alarm);
    a->len[k + 8] = hw_rs_fmt_u64(num[8], f->status);
    a->len[k + 9] = hw_rs_fmt_fixed(num[9], f->odometer_hm, 1);
    for (int j = 0; j < 10; j++)
      a->argv[k + (size_t)j] = num[j];
    k += 10;
    a->argv[k] = f->has_driver ? f->driver_id : "";
    a->len[k++] = f->has_driver ? strnlen(f->driver_id, HW_DRIVER_ID_MAX) : 0;
  }

  /* hiredis copies the arguments into its output buffer. */
  if (redisAsyncCommandArgv(r->conn.ac, hw_rs_on_write, batch, (int)k, a->argv, a->len) !=
      REDIS_OK) {
    free(batch);
    return -EIO;
  }
  hw_redis_conn_sent(&r->conn);
  if (r->pub) {
    for (uint32_t i = 0; i < n; i++) {
      r->pub_len += hw_redis_state_format_event(r->pub + r->pub_len, t[i], r->moving_dkmh);
      r->pub_events++;
      if (r->pub_len >= HW_RS_PUB_BATCH_BYTES)
        hw_rs_publish(r);
    }
  }
  return 0;
}

static void hw_rs_on_kick(uv_timer_t *timer);

/* Up, with the script loaded on this connection. */
static int hw_rs_writable(const hw_redis_state *r) { return r->conn.up && !r->loading; }

/* Sends what the window and the pacing cycle allow: up to HW_RS_GATHER terminals at a time off
 * the dirty list, sorted by bucket (stable, so FIFO within a bucket), one call per
 * HW_RS_BATCH_MAX vehicles of a bucket while fewer than max_in_flight commands are out; what
 * is not sent goes back to the head of the list, in order. */
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
  hw_rs_args *a = r->args;
  while (hw_rs_writable(r) && r->dirty_head && r->conn.in_flight < r->max_in_flight) {
    if (paced && r->cycle_left == 0) {
      hw_rs_flush_states(r); /* arms the timer for the next cycle */
      return;
    }
    size_t want = HW_RS_GATHER;
    if (paced && want > r->cycle_left)
      want = r->cycle_left;
    uint32_t pos[HW_REDIS_BUCKETS + 1] = {0};
    size_t n = 0;
    while (n < want && r->dirty_head) {
      hw_terminal *t = hw_rs_pop_dirty(r);
      unsigned b = hw_redis_bucket(t->id, strnlen(t->id, HW_TID_WIDE_MAX));
      a->gather[n] = t;
      a->bucket[n++] = (uint16_t)b;
      pos[b + 1]++;
    }
    for (unsigned b = 0; b < HW_REDIS_BUCKETS; b++)
      pos[b + 1] += pos[b];
    /* pos[b] is where bucket b begins; the pass starts at next_bucket, where the last one
     * stopped, so no bucket waits behind others that keep getting dirty (round robin). */
    size_t start = pos[r->next_bucket];
    if (start == n)
      start = 0;
    for (size_t i = 0; i < n; i++) {
      uint32_t at = pos[a->bucket[i]]++;
      a->sorted[at] = a->gather[i];
      a->sbucket[at] = a->bucket[i];
    }
    /* Visits sorted[] from start, wrapping; start is a bucket's first entry, so every group is
     * contiguous in sorted[]. */
    size_t m = 0;
    int rc = 0;
    while (m < n && r->conn.in_flight < r->max_in_flight) {
      size_t i = (start + m) % n, j = i + 1;
      while (j < n && j - i < HW_RS_BATCH_MAX && a->sbucket[j] == a->sbucket[i])
        j++;
      rc = hw_rs_send_batch(r, a->sorted + i, (uint32_t)(j - i), a->sbucket[i]);
      if (rc < 0)
        break; /* -EIO: hiredis is tearing the context down, its callbacks will tell us;
                * -ENOMEM: the next reply or fix tries again */
      r->next_bucket = (a->sbucket[i] + 1u) % HW_REDIS_BUCKETS;
      m += j - i;
    }
    if (m < n)
      r->next_bucket = a->sbucket[(start + m) % n]; /* the first not sent goes first next time */
    for (size_t k = n; k-- > m;)
      hw_rs_unpop_dirty(r, a->sorted[(start + k) % n]);
    if (paced)
      r->cycle_left -= m;
    if (rc < 0)
      break;
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
  r->args = malloc(sizeof *r->args);
  if (!r->args) {
    free(r);
    return -ENOMEM;
  }
  if (cfg->publish) {
    /* A batch is sent once it reaches HW_RS_PUB_BATCH_BYTES: room for one more event beyond. */
    r->pub = malloc(HW_RS_PUB_BATCH_BYTES + HW_RS_EVENT_MAX);
    if (!r->pub) {
      free(r->args);
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
    free(r->args);
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
  out->calls = r->calls;
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
    hw_info(HW_RS_LOG, NULL, "stopped: %llu writes (%llu stale) in %llu calls, %llu errors, "
            "%zu states unwritten; "
            "%llu position events in %llu PUBLISHes (%llu refused)",
            (unsigned long long)r->writes, (unsigned long long)r->stale_skips,
            (unsigned long long)r->calls, (unsigned long long)r->errors, r->dirty_count,
            (unsigned long long)r->events_published, (unsigned long long)r->publishes,
            (unsigned long long)r->pub_errors);
  /* Terminals outlive us: unlink them so a later instance starts from a clean list. */
  while (hw_rs_pop_dirty(r))
    ;
  free(r->args);
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
