/* The SSE hub: see sse.h.
 *
 * Ownership. The hub owns its ring of events (each hw_sse_ev one allocation: the framed event
 * and its scope fields), its clients (hw_sse_client, with the caller's filter_arg once attached),
 * a scratch buffer (one client's share of one message, reused) and its Redis connection. A
 * client's hw_http_req belongs to the HTTP server; the hub holds it from attach until it ends the
 * stream, closes it (slow client) or the server aborts it (client gone, server closing).
 *
 * Positions are coalesced: each Redis message's vehicles go into the pending table (sse_batch.h,
 * the newest state per terminal), and every flush_ms the table becomes one or more batch events
 * in the ring (at most batch_bytes of positions each). A batch is framed once per scope group
 * (the clients attached with the same scope key see the same vehicles), into one refcounted
 * buffer (hw_sse_buf) that every client of the group writes without a copy
 * (hw_http_stream_write_shared). Violations are rare: framed once when they arrive and written
 * at once to each client whose filter takes them. A replay (Last-Event-ID) frames what the
 * client missed for that client alone. */
#include "web/sse.h"

#include "base/fix.h" /* HW_TID_WIDE_MAX */

#include <cjson/cJSON.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "web/sse_batch.h"
#include "sinks/redis_conn.h"
#include "sinks/redis_state.h"     /* HW_POSITIONS_REDIS_CHANNEL */
#include "sinks/violation_relay.h" /* HW_VIOLATION_REDIS_CHANNEL */

#define HW_SSE_LOG "sse"
#define HW_SSE_ID_MAX 40 /* "<16 hex>-<20 digits>" */
/* Positions pending beyond this many bytes are flushed at once rather than at the next tick: a
 * memory bound for a burst (a flush interval of more vehicles than the ring could hold anyway). */
#define HW_SSE_PENDING_MAX_BYTES (8u << 20)

/* One position of a batch event: offsets into the event's data. */
typedef struct hw_sse_ent {
  uint32_t enc, tid, ent; /* the encoded position, the terminal id, the enterprise (NUL-ended) */
  uint16_t enc_len;
  char region[7];
} hw_sse_ent;

/* A violation (kind HW_SSE_VIOLATION: data is the framed event, then the enterprise) or a batch
 * of positions (HW_SSE_POSITION: ents[n], then in data each entry's encoding, terminal id and
 * enterprise). One allocation each. */
typedef struct hw_sse_ev {
  uint64_t seq;
  uint8_t kind;
  char region[7];
  char terminal_id[HW_SSE_TID_MAX + 1];
  const char *enterprise; /* into data, after the frame */
  size_t frame_len;
  uint32_t n;      /* positions of a batch */
  size_t enc_bytes; /* their encodings' bytes */
  hw_sse_ent *ents; /* into the allocation */
  size_t size; /* what it counts against ring_bytes */
  char data[];
} hw_sse_ev;

/* A framed batch shared by the clients of one scope group; freed when the last write is done. */
typedef struct hw_sse_buf {
  size_t refs;
  size_t len;
  char data[];
} hw_sse_buf;

struct hw_sse_client;

/* The clients attached with one scope key: they see the same vehicles, so they share each
 * batch's bytes. Owned by the hub; freed with its last member. */
typedef struct hw_sse_group {
  char *key; /* owned; "" for unfiltered clients */
  hw_sse_filter_fn filter;
  struct hw_sse_client *members;
  size_t n;
  struct hw_sse_group *prev, *next;
} hw_sse_group;

typedef struct hw_sse_client {
  hw_sse_hub *hub;
  hw_http_req *req; /* the server's; ours to write until the stream ends */
  hw_sse_filter_fn filter;
  void *arg; /* owned: arg_free(arg) when the client ends */
  void (*arg_free)(void *);
  hw_sse_group *group;
  struct hw_sse_client *prev, *next;   /* the hub's clients */
  struct hw_sse_client *gprev, *gnext; /* the group's */
} hw_sse_client;

struct hw_sse_hub {
  uv_loop_t *loop;
  hw_sse_config cfg;
  char redis_host[256];
  char epoch_hex[17];
  uint64_t epoch;

  /* Ring of the newest events, oldest at ring[head]; their seqs are consecutive. Owned. */
  hw_sse_ev **ring;
  uint32_t head, count;
  size_t ring_bytes;
  uint64_t last_seq;
  /* A Last-Event-ID below this cannot be resumed: events were missed (Redis was away). */
  uint64_t resume_floor;

  hw_sse_client *clients;
  size_t nclients;
  hw_sse_group *groups;

  hw_sse_pending pending; /* positions received since the last flush, newest per terminal */
  uv_timer_t flush;
  int flush_closed;
  uv_check_t check;   /* runs after the loop's poll while violations wait */
  uint64_t viol_first; /* the first violation not sent yet; 0: none */
  int check_closed;

  char *scratch; /* owned, grown; one client's share of one message */
  size_t scratch_len, scratch_cap;

  int use_redis;
  hw_redis_conn redis;
  int subscribed;    /* both channels confirmed on the current connection */
  int had_session;   /* a subscription was up before: the next one follows a gap */
  int redis_closed;
  uv_timer_t heartbeat;
  int timer_closed;

  hw_sse_stats stats;
  uint64_t drop_log_ms, drops_unlogged, bad_log_ms;
  int stopping;
  void (*done_cb)(void *);
  void *done_arg;
};

static const char hw_sse_heartbeat_bytes[] = ":\n\n";

/* ---- pure helpers ------------------------------------------------------------------------ */

void hw_sse_config_default(hw_sse_config *cfg) {
  if (!cfg->timeout_ms) cfg->timeout_ms = HW_SSE_DEF_TIMEOUT_MS;
  if (!cfg->max_clients) cfg->max_clients = HW_SSE_DEF_MAX_CLIENTS;
  if (!cfg->ring_events) cfg->ring_events = HW_SSE_DEF_RING_EVENTS;
  if (!cfg->ring_bytes) cfg->ring_bytes = HW_SSE_DEF_RING_BYTES;
  if (!cfg->client_max_queue) cfg->client_max_queue = HW_SSE_DEF_CLIENT_QUEUE;
  if (!cfg->heartbeat_ms) cfg->heartbeat_ms = HW_SSE_DEF_HEARTBEAT_MS;
  if (!cfg->flush_ms) cfg->flush_ms = HW_SSE_DEF_FLUSH_MS;
  if (!cfg->batch_bytes) cfg->batch_bytes = HW_SSE_DEF_BATCH_BYTES;
  /* A batch must always fit in a client's queue with room to spare, or every client of a large
   * fleet would be dropped as slow on the first one. */
  if (cfg->batch_bytes > cfg->client_max_queue / 4)
    cfg->batch_bytes = cfg->client_max_queue / 4;
  if (cfg->batch_bytes < 2 * HW_SSE_POS_MAX)
    cfg->batch_bytes = 2 * HW_SSE_POS_MAX;
}

static size_t hw_sse_put(char *out, size_t cap, size_t n, const char *s, size_t len) {
  if (n + len <= cap)
    memcpy(out + n, s, len);
  return n + len;
}

size_t hw_sse_format(char *out, size_t cap, const char *id, const char *event, const char *data,
                     size_t len) {
  size_t n = 0;
  if (id) {
    n = hw_sse_put(out, cap, n, "id: ", 4);
    n = hw_sse_put(out, cap, n, id, strlen(id));
    n = hw_sse_put(out, cap, n, "\n", 1);
  }
  if (event) {
    n = hw_sse_put(out, cap, n, "event: ", 7);
    n = hw_sse_put(out, cap, n, event, strlen(event));
    n = hw_sse_put(out, cap, n, "\n", 1);
  }
  /* A line break inside data would end the field: each line becomes a data line of its own,
   * which the browser joins with '\n' again. */
  for (size_t i = 0;;) {
    size_t j = i;
    while (j < len && data[j] != '\n' && data[j] != '\r')
      j++;
    n = hw_sse_put(out, cap, n, "data: ", 6);
    n = hw_sse_put(out, cap, n, data + i, j - i);
    n = hw_sse_put(out, cap, n, "\n", 1);
    if (j >= len)
      break;
    if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
      j++;
    i = j + 1;
  }
  return hw_sse_put(out, cap, n, "\n", 1);
}

int hw_sse_parse_id(const char *s, uint64_t *epoch, uint64_t *seq) {
  uint64_t e = 0, q = 0;
  size_t i = 0, digits = 0;
  if (!s)
    return -EINVAL;
  for (; s[i] && s[i] != '-'; i++, digits++) {
    char ch = s[i];
    int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (v < 0 || digits >= 16)
      return -EINVAL;
    e = e << 4 | (uint64_t)v;
  }
  if (!digits || s[i] != '-')
    return -EINVAL;
  i++;
  digits = 0;
  for (; s[i]; i++, digits++) {
    if (s[i] < '0' || s[i] > '9' || digits >= 19) /* 19 digits: no overflow */
      return -EINVAL;
    q = q * 10 + (uint64_t)(s[i] - '0');
  }
  if (!digits)
    return -EINVAL;
  *epoch = e;
  *seq = q;
  return 0;
}

static int hw_sse_six_digits(const char *s) {
  for (int i = 0; i < 6; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return s[6] == '\0';
}

int hw_sse_region_within(const char *region, const char *code) {
  if (!hw_sse_six_digits(region) || !hw_sse_six_digits(code))
    return 0;
  /* 320000: the province, two digits; 320100: the city, four; else the county itself. */
  size_t keep = !strcmp(code + 2, "0000") ? 2 : !strcmp(code + 4, "00") ? 4 : 6;
  return memcmp(region, code, keep) == 0;
}

int hw_sse_filter_regions(void *arg, const hw_sse_event_meta *ev) {
  const hw_sse_regions *r = arg;
  for (size_t i = 0; i < r->n; i++)
    if (hw_sse_region_within(ev->region, r->codes[i]))
      return 1;
  return 0;
}

/* ---- ring -------------------------------------------------------------------------------- */

static void hw_sse_ring_pop(hw_sse_hub *h) {
  hw_sse_ev *ev = h->ring[h->head];
  h->ring[h->head] = NULL;
  h->head = (h->head + 1) % h->cfg.ring_events;
  h->count--;
  h->ring_bytes -= ev->size;
  free(ev);
}

static void hw_sse_ring_push(hw_sse_hub *h, hw_sse_ev *ev) {
  while (h->count && (h->count >= h->cfg.ring_events || h->ring_bytes + ev->size > h->cfg.ring_bytes))
    hw_sse_ring_pop(h);
  h->ring[(h->head + h->count) % h->cfg.ring_events] = ev;
  h->count++;
  h->ring_bytes += ev->size;
}

/* The event numbered seq, or NULL when it is no longer (or not yet) in the ring. */
static const hw_sse_ev *hw_sse_ring_get(const hw_sse_hub *h, uint64_t seq) {
  if (!h->count)
    return NULL;
  uint64_t oldest = h->ring[h->head]->seq;
  if (seq < oldest || seq >= oldest + h->count)
    return NULL;
  return h->ring[(h->head + (seq - oldest)) % h->cfg.ring_events];
}

static void hw_sse_id(const hw_sse_hub *h, uint64_t seq, char *out) {
  snprintf(out, HW_SSE_ID_MAX, "%s-%" PRIu64, h->epoch_hex, seq);
}

/* ---- clients ----------------------------------------------------------------------------- */

static void hw_sse_group_leave(hw_sse_hub *h, hw_sse_client *c) {
  hw_sse_group *g = c->group;
  if (!g)
    return;
  if (c->gprev)
    c->gprev->gnext = c->gnext;
  else
    g->members = c->gnext;
  if (c->gnext)
    c->gnext->gprev = c->gprev;
  c->group = NULL;
  if (--g->n)
    return;
  if (g->prev)
    g->prev->next = g->next;
  else
    h->groups = g->next;
  if (g->next)
    g->next->prev = g->prev;
  free(g->key);
  free(g);
}

/* Puts c in the group of (filter, key): an existing one, or a new one. key NULL: a group of its
 * own. */
static int hw_sse_group_join(hw_sse_hub *h, hw_sse_client *c, const char *key) {
  hw_sse_group *g = NULL;
  if (!c->filter)
    key = "";
  if (key)
    for (g = h->groups; g; g = g->next)
      if (g->filter == c->filter && g->key && !strcmp(g->key, key))
        break;
  if (!g) {
    g = calloc(1, sizeof *g);
    if (!g)
      return -ENOMEM;
    if (key && !(g->key = strdup(key))) {
      free(g);
      return -ENOMEM;
    }
    g->filter = c->filter;
    g->next = h->groups;
    if (h->groups)
      h->groups->prev = g;
    h->groups = g;
  }
  c->group = g;
  c->gnext = g->members;
  if (g->members)
    g->members->gprev = c;
  g->members = c;
  g->n++;
  return 0;
}

static void hw_sse_client_free(hw_sse_client *c) {
  hw_sse_hub *h = c->hub;
  hw_sse_group_leave(h, c);
  if (c->prev)
    c->prev->next = c->next;
  else
    h->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  h->nclients--;
  if (c->arg_free)
    c->arg_free(c->arg);
  free(c);
}

/* The server let the request go (client gone, server closing, or its own write limit). */
static void hw_sse_on_abort(hw_http_req *req, void *arg) {
  (void)req;
  hw_sse_client_free(arg);
}

static void hw_sse_drop_slow(hw_sse_client *c, size_t want) {
  hw_sse_hub *h = c->hub;
  h->stats.dropped_slow++;
  uint64_t now = uv_now(h->loop);
  if (h->drop_log_ms && now - h->drop_log_ms < 1000) {
    h->drops_unlogged++;
  } else {
    hw_warn(HW_SSE_LOG, NULL, "stream peer=%s dropped: %zu bytes unread, %zu more to write, over "
            "client_max_queue %u (%llu dropped in all, %llu not logged)", hw_http_peer(c->req),
            hw_http_write_queued(c->req), want, h->cfg.client_max_queue,
            (unsigned long long)h->stats.dropped_slow, (unsigned long long)h->drops_unlogged);
    h->drop_log_ms = now;
    h->drops_unlogged = 0;
  }
  hw_http_close(c->req); /* the abort callback does not run: free the client here */
  hw_sse_client_free(c);
}

/* Writes to c, or drops it when the client does not keep up. 0, or -EPIPE when c is gone
 * (freed: must not be used). */
static int hw_sse_client_write(hw_sse_client *c, const char *data, size_t len) {
  hw_sse_hub *h = c->hub;
  if (hw_http_write_queued(c->req) + len > h->cfg.client_max_queue) {
    hw_sse_drop_slow(c, len);
    return -EPIPE;
  }
  /* A failed write closed the connection, and the server's abort callback freed c. */
  if (hw_http_stream_write(c->req, data, len))
    return -EPIPE;
  h->stats.bytes_written += len;
  return 0;
}

static void hw_sse_buf_unref(void *arg) {
  hw_sse_buf *b = arg;
  if (--b->refs == 0)
    free(b);
}

/* The same for a shared batch: no copy; b is referenced until the write is done. */
static int hw_sse_client_write_buf(hw_sse_client *c, hw_sse_buf *b) {
  hw_sse_hub *h = c->hub;
  if (hw_http_write_queued(c->req) + b->len > h->cfg.client_max_queue) {
    hw_sse_drop_slow(c, b->len);
    return -EPIPE;
  }
  b->refs++;
  if (hw_http_stream_write_shared(c->req, b->data, b->len, hw_sse_buf_unref, b))
    return -EPIPE;
  h->stats.bytes_written += b->len;
  return 0;
}

static int hw_sse_scratch_add(hw_sse_hub *h, const char *data, size_t len) {
  if (h->scratch_len + len > h->scratch_cap) {
    size_t cap = h->scratch_cap ? h->scratch_cap : 65536;
    while (cap < h->scratch_len + len)
      cap *= 2;
    char *p = realloc(h->scratch, cap);
    if (!p)
      return -ENOMEM;
    h->scratch = p;
    h->scratch_cap = cap;
  }
  memcpy(h->scratch + h->scratch_len, data, len);
  h->scratch_len += len;
  return 0;
}

static int hw_sse_passes(const hw_sse_client *c, const hw_sse_ev *ev) {
  if (!c->filter)
    return 1;
  hw_sse_event_meta m = {.kind = (hw_sse_kind)ev->kind, .terminal_id = ev->terminal_id,
                         .region = ev->region, .enterprise = ev->enterprise};
  return c->filter(c->arg, &m);
}

/* Appends to the scratch buffer the batch ev as c's filter sees it:
 * "id: ID\nevent: positions\ndata: [P,P,...]\n\n", or nothing when no position passes. */
static int hw_sse_frame_batch(hw_sse_hub *h, const hw_sse_client *c, const hw_sse_ev *ev) {
  size_t start = h->scratch_len;
  /* worst case: every position passes */
  size_t need = HW_SSE_ID_MAX + 48 + ev->enc_bytes + ev->n;
  if (h->scratch_cap - h->scratch_len < need) {
    size_t cap = h->scratch_cap ? h->scratch_cap : 65536;
    while (cap - h->scratch_len < need)
      cap *= 2;
    char *p = realloc(h->scratch, cap);
    if (!p)
      return -ENOMEM;
    h->scratch = p;
    h->scratch_cap = cap;
  }
  char id[HW_SSE_ID_MAX];
  hw_sse_id(h, ev->seq, id);
  char *o = h->scratch + start;
  size_t n = (size_t)sprintf(o, "id: %s\nevent: positions\ndata: [", id);
  size_t head = n;
  for (uint32_t i = 0; i < ev->n; i++) {
    const hw_sse_ent *e = &ev->ents[i];
    if (c->filter) {
      hw_sse_event_meta m = {.kind = HW_SSE_POSITION, .terminal_id = ev->data + e->tid,
                             .region = e->region, .enterprise = ev->data + e->ent};
      if (!c->filter(c->arg, &m))
        continue;
    }
    if (n > head)
      o[n++] = ',';
    memcpy(o + n, ev->data + e->enc, e->enc_len);
    n += e->enc_len;
  }
  if (n == head)
    return 0; /* none of this client's vehicles */
  memcpy(o + n, "]\n\n", 3);
  h->scratch_len = start + n + 3;
  return 0;
}

/* c's share of events [first, last] into the scratch buffer. -E2BIG past limit bytes. */
static int hw_sse_collect(hw_sse_client *c, uint64_t first, uint64_t last, size_t limit) {
  hw_sse_hub *h = c->hub;
  h->scratch_len = 0;
  for (uint64_t s = first; s <= last && s > 0; s++) {
    const hw_sse_ev *ev = hw_sse_ring_get(h, s);
    if (!ev)
      continue;
    if (ev->kind == HW_SSE_POSITION) {
      if (hw_sse_frame_batch(h, c, ev))
        return -ENOMEM;
      if (h->scratch_len > limit)
        return -E2BIG;
      continue;
    }
    if (!hw_sse_passes(c, ev))
      continue;
    if (h->scratch_len + ev->frame_len > limit)
      return -E2BIG;
    if (hw_sse_scratch_add(h, ev->data, ev->frame_len))
      return -ENOMEM;
  }
  return 0;
}

/* Events [first, last] to every client: each scope group's share framed once (its first member's
 * filter stands for all: one scope, one filter), into one refcounted buffer that every member
 * writes without a copy. One write per client per call. */
static void hw_sse_fanout(hw_sse_hub *h, uint64_t first, uint64_t last) {
  for (hw_sse_group *g = h->groups, *gnext; g; g = gnext) {
    gnext = g->next; /* writes may free the group's last member, and the group */
    int rc = hw_sse_collect(g->members, first, last, SIZE_MAX);
    hw_sse_buf *b = NULL;
    if (!rc && h->scratch_len && (b = malloc(sizeof *b + h->scratch_len))) {
      b->refs = 1; /* ours, until every member has its write */
      b->len = h->scratch_len;
      memcpy(b->data, h->scratch, b->len);
    }
    for (hw_sse_client *c = g->members, *next; c; c = next) {
      next = c->gnext; /* a write may free c, and with the last member g */
      if (b) {
        (void)hw_sse_client_write_buf(c, b);
      } else if (rc || h->scratch_len) {
        /* out of memory: it would miss events; closed, it reconnects and resumes or resets */
        hw_error(HW_SSE_LOG, NULL, "out of memory: stream peer=%s closed", hw_http_peer(c->req));
        hw_http_close(c->req);
        hw_sse_client_free(c);
      }
    }
    if (b)
      hw_sse_buf_unref(b);
  }
}

/* Violations numbered since the last fan-out go out now: all that arrived in one turn of the
 * loop (one read from Redis) in one write per client, and always before a later batch. */
static void hw_sse_send_violations(hw_sse_hub *h) {
  if (!h->viol_first)
    return;
  uint64_t first = h->viol_first;
  h->viol_first = 0;
  uv_check_stop(&h->check);
  hw_sse_fanout(h, first, h->last_seq);
}

static void hw_sse_on_check(uv_check_t *t) { hw_sse_send_violations(t->data); }

static size_t hw_sse_reset_frame(hw_sse_hub *h, const char *reason, char *out, size_t cap) {
  char id[HW_SSE_ID_MAX], data[96];
  hw_sse_id(h, h->last_seq, id);
  int n = snprintf(data, sizeof data, "{\"reason\":\"%s\"}", reason);
  return hw_sse_format(out, cap, id, "reset", data, (size_t)n);
}

/* After a gap in the subscription: everyone may have missed events. */
static void hw_sse_reset_all(hw_sse_hub *h, const char *reason) {
  char frame[256];
  size_t n = hw_sse_reset_frame(h, reason, frame, sizeof frame);
  for (hw_sse_client *c = h->clients, *next; c; c = next) {
    next = c->next;
    if (hw_sse_client_write(c, frame, n) == 0)
      h->stats.resets++;
  }
}

static void hw_sse_on_heartbeat(uv_timer_t *t) {
  hw_sse_hub *h = t->data;
  for (hw_sse_client *c = h->clients, *next; c; c = next) {
    next = c->next;
    (void)hw_sse_client_write(c, hw_sse_heartbeat_bytes, sizeof hw_sse_heartbeat_bytes - 1);
  }
}

/* ---- events in --------------------------------------------------------------------------- */

static void hw_sse_bad(hw_sse_hub *h, const char *channel, const char *why) {
  h->stats.bad_messages++;
  uint64_t now = uv_now(h->loop);
  if (h->bad_log_ms && now - h->bad_log_ms < 1000)
    return;
  hw_warn(HW_SSE_LOG, NULL, "channel %s: message skipped: %s (%llu in all)", channel, why,
          (unsigned long long)h->stats.bad_messages);
  h->bad_log_ms = now;
}

static const char *hw_sse_json_str(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static double hw_sse_json_num(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* One vehicle's state from the daemon: encoded, and kept in the pending table until the next
 * flush unless a newer state of the same terminal is there already. */
static void hw_sse_position_in(hw_sse_hub *h, const char *channel, const cJSON *o,
                               const char *tid, const char *region, const char *ent) {
  char enc[HW_SSE_POS_MAX];
  double ts = hw_sse_json_num(o, "ts_ms");
  size_t n = hw_sse_pos_encode(enc, sizeof enc, tid, ts, hw_sse_json_num(o, "lat"),
                               hw_sse_json_num(o, "lon"), hw_sse_json_num(o, "speed_kmh"),
                               hw_sse_json_num(o, "heading"));
  if (!n || n > sizeof enc) {
    hw_sse_bad(h, channel, "position not encodable");
    return;
  }
  int rc = hw_sse_pending_put(&h->pending, tid, region, ent, isnan(ts) ? 0 : ts, enc, n);
  if (rc < 0) {
    hw_error(HW_SSE_LOG, NULL, "out of memory: position of terminal %s dropped", tid);
    return;
  }
  h->stats.positions++;
  if (rc == 0)
    h->stats.coalesced++;
  else if (rc == 2)
    h->stats.stale++;
}

/* Makes the pending table's positions batch events (at most batch_bytes of positions each),
 * numbered and kept in the ring, and sends them; empties the table. */
static void hw_sse_flush(hw_sse_hub *h) {
  hw_sse_pending *p = &h->pending;
  hw_sse_send_violations(h); /* ids go out in order */
  uint64_t first = h->last_seq + 1;
  for (size_t i = 0; i < p->n;) {
    size_t j = i, bytes = 0, extra = 0;
    while (j < p->n && (j == i || bytes + p->v[j].len <= h->cfg.batch_bytes)) {
      bytes += p->v[j].len;
      extra += strlen(p->v[j].tid) + 1 + strlen(p->v[j].enterprise) + 1;
      j++;
    }
    size_t n = j - i, data = n * sizeof(hw_sse_ent) + bytes + extra;
    hw_sse_ev *ev = malloc(sizeof *ev + data);
    if (!ev) {
      hw_error(HW_SSE_LOG, NULL, "out of memory: %zu positions dropped", n);
      i = j;
      continue;
    }
    memset(ev, 0, sizeof *ev);
    ev->seq = ++h->last_seq;
    ev->kind = HW_SSE_POSITION;
    ev->n = (uint32_t)n;
    ev->enc_bytes = bytes;
    ev->ents = (hw_sse_ent *)ev->data;
    size_t off = n * sizeof(hw_sse_ent);
    for (size_t k = 0; k < n; k++) {
      const hw_sse_pend *src = &p->v[i + k];
      hw_sse_ent *e = &ev->ents[k];
      size_t tl = strlen(src->tid) + 1, el = strlen(src->enterprise) + 1;
      e->enc = (uint32_t)off;
      e->enc_len = src->len;
      memcpy(ev->data + off, src->enc, src->len);
      off += src->len;
      e->tid = (uint32_t)off;
      memcpy(ev->data + off, src->tid, tl);
      off += tl;
      e->ent = (uint32_t)off;
      memcpy(ev->data + off, src->enterprise, el);
      off += el;
      memcpy(e->region, src->region, sizeof e->region);
    }
    ev->size = sizeof *ev + data;
    h->stats.batches++;
    hw_sse_ring_push(h, ev);
    i = j;
  }
  hw_sse_pending_clear(p);
  if (h->last_seq >= first)
    hw_sse_fanout(h, first, h->last_seq); /* the flush's batches: one write per client */
}

static void hw_sse_on_flush(uv_timer_t *t) {
  hw_sse_hub *h = t->data;
  if (h->pending.n)
    hw_sse_flush(h);
}

void hw_sse_hub_flush(hw_sse_hub *h) {
  if (h->stopping)
    return;
  if (h->pending.n)
    hw_sse_flush(h);
  else
    hw_sse_send_violations(h);
}

/* Numbers, frames and keeps one event whose data is the JSON object json[0..len). */
static void hw_sse_event_in(hw_sse_hub *h, hw_sse_kind kind, const char *channel, const char *json,
                            size_t len) {
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    hw_sse_bad(h, channel, "not a JSON object");
    return;
  }
  while (end && end < json + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
    end++;
  const char *tid = hw_sse_json_str(o, "terminal_id");
  const char *region = hw_sse_json_str(o, "region");
  const char *ent = hw_sse_json_str(o, "enterprise");
  if (end != json + len || !*tid || strlen(tid) > HW_SSE_TID_MAX) {
    cJSON_Delete(o);
    hw_sse_bad(h, channel, "trailing bytes, or terminal_id missing or too long");
    return;
  }
  /* Anything but a GB/T 2260 code is no region: within no one's scope. */
  if (!hw_sse_six_digits(region))
    region = "";
  if (kind == HW_SSE_POSITION) {
    hw_sse_position_in(h, channel, o, tid, region, ent);
    cJSON_Delete(o);
    return;
  }
  uint64_t seq = h->last_seq + 1;
  char id[HW_SSE_ID_MAX];
  hw_sse_id(h, seq, id);
  const char *name = kind == HW_SSE_POSITION ? "position" : "violation";
  size_t flen = hw_sse_format(NULL, 0, id, name, json, len);
  size_t elen = strlen(ent);
  hw_sse_ev *ev = malloc(sizeof *ev + flen + elen + 1);
  if (!ev) {
    cJSON_Delete(o);
    hw_error(HW_SSE_LOG, NULL, "out of memory: %s event of terminal %s dropped", name, tid);
    return;
  }
  ev->seq = seq;
  ev->kind = (uint8_t)kind;
  snprintf(ev->region, sizeof ev->region, "%s", region);
  snprintf(ev->terminal_id, sizeof ev->terminal_id, "%s", tid);
  ev->frame_len = hw_sse_format(ev->data, flen, id, name, json, len);
  memcpy(ev->data + flen, ent, elen + 1);
  ev->enterprise = ev->data + flen;
  ev->size = sizeof *ev + flen + elen + 1;
  ev->n = 0;
  ev->ents = NULL;
  cJSON_Delete(o);
  h->last_seq = seq;
  h->stats.violations++;
  hw_sse_ring_push(h, ev);
}

void hw_sse_hub_inject(hw_sse_hub *h, const char *channel, const char *payload, size_t len) {
  if (h->stopping)
    return;
  uint64_t first = h->last_seq + 1;
  if (!strcmp(channel, HW_POSITIONS_REDIS_CHANNEL)) {
    /* Coalesced: sent by the next flush (hw_sse_on_flush), or now past the memory bound. */
    /* The daemon's batch: one vehicle per line. */
    for (size_t i = 0; i < len;) {
      const char *nl = memchr(payload + i, '\n', len - i);
      size_t j = nl ? (size_t)(nl - payload) : len;
      if (j > i)
        hw_sse_event_in(h, HW_SSE_POSITION, channel, payload + i, j - i);
      i = j + 1;
    }
    if (h->pending.bytes > HW_SSE_PENDING_MAX_BYTES)
      hw_sse_flush(h);
    return;
  } else if (!strcmp(channel, HW_VIOLATION_REDIS_CHANNEL)) {
    hw_sse_event_in(h, HW_SSE_VIOLATION, channel, payload, len);
  } else {
    hw_sse_bad(h, channel, "unknown channel");
    return;
  }
  if (h->last_seq >= first && !h->viol_first) {
    /* sent once this turn of the loop has read what Redis has (hw_sse_on_check) */
    h->viol_first = first;
    uv_check_start(&h->check, hw_sse_on_check);
  }
}

/* ---- Redis ------------------------------------------------------------------------------- */

/* Every reply of the subscription: the confirmations, then one per message. Not counted with
 * hw_redis_conn_sent/_reply: a subscription waits for messages, it has no reply to time out. */
static void hw_sse_on_sub(redisAsyncContext *ac, void *reply, void *privdata) {
  hw_redis_conn *c = ac->data;
  hw_sse_hub *h = c->data;
  redisReply *r = reply;
  (void)privdata;
  if (!r || ac != c->ac || h->stopping)
    return;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
      r->element[1]->type != REDIS_REPLY_STRING) {
    hw_redis_conn_drop(c, "unexpected reply to SUBSCRIBE");
    return;
  }
  const char *what = r->element[0]->str;
  if (!strcmp(what, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
    hw_sse_hub_inject(h, r->element[1]->str, r->element[2]->str, r->element[2]->len);
  } else if (!strcmp(what, "subscribe") && r->element[2]->type == REDIS_REPLY_INTEGER &&
             r->element[2]->integer == 2) {
    h->subscribed = 1;
    hw_info(HW_SSE_LOG, NULL, "subscribed to %s and %s on Redis %s:%d",
            HW_POSITIONS_REDIS_CHANNEL, HW_VIOLATION_REDIS_CHANNEL, c->host, c->port);
    if (h->had_session)
      hw_sse_reset_all(h, "feed interrupted");
    h->had_session = 1;
  }
}

static int hw_sse_redis_attached(hw_redis_conn *c) {
  if (redisAsyncCommand(c->ac, hw_sse_on_sub, NULL, "SUBSCRIBE %s %s", HW_POSITIONS_REDIS_CHANNEL,
                        HW_VIOLATION_REDIS_CHANNEL) != REDIS_OK)
    return -EIO;
  return 0;
}

static void hw_sse_redis_ready(hw_redis_conn *c) { (void)c; }

static void hw_sse_redis_lost(hw_redis_conn *c) {
  hw_sse_hub *h = c->data;
  if (h->subscribed)
    hw_warn(HW_SSE_LOG, NULL, "feed from Redis %s:%d interrupted: %zu streams will be told to "
            "reset once it is back", c->host, c->port, h->nclients);
  h->subscribed = 0;
  /* What was published meanwhile is lost: no resume across the gap. */
  h->resume_floor = h->last_seq;
}

static void hw_sse_finish(hw_sse_hub *h);

static void hw_sse_redis_closed(hw_redis_conn *c) {
  hw_sse_hub *h = c->data;
  h->redis_closed = 1;
  hw_sse_finish(h);
}

static const hw_redis_conn_ops hw_sse_redis_ops = {
    .attached = hw_sse_redis_attached,
    .ready = hw_sse_redis_ready,
    .lost = hw_sse_redis_lost,
    .closed = hw_sse_redis_closed,
};

/* ---- public ------------------------------------------------------------------------------ */

int hw_sse_hub_start(hw_sse_hub **out, uv_loop_t *loop, const hw_sse_config *cfg_in) {
  if (!out || !loop || !cfg_in)
    return -EINVAL;
  hw_sse_hub *h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  h->loop = loop;
  h->cfg = *cfg_in;
  hw_sse_config_default(&h->cfg);
  h->cfg.redis_host = NULL; /* not kept: copied below */
  int rc = 0;
  h->ring = calloc(h->cfg.ring_events, sizeof *h->ring);
  if (!h->ring) {
    rc = -ENOMEM;
    goto fail;
  }
  /* The epoch names this hub in event ids, so that an id from another process (behind a proxy)
   * or an earlier run is never taken for one of ours. */
  if (getrandom(&h->epoch, sizeof h->epoch, GRND_NONBLOCK) != (ssize_t)sizeof h->epoch)
    h->epoch = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)h;
  h->epoch &= 0xffffffffffffULL; /* 12 hex digits are plenty */
  snprintf(h->epoch_hex, sizeof h->epoch_hex, "%" PRIx64, h->epoch);
  if (cfg_in->redis_host) {
    snprintf(h->redis_host, sizeof h->redis_host, "%s", cfg_in->redis_host);
    hw_redis_conn_config rc_cfg = {.host = h->redis_host,
                                   .port = cfg_in->redis_port,
                                   .timeout_ms = h->cfg.timeout_ms,
                                   .component = HW_SSE_LOG,
                                   .backlog = &h->nclients,
                                   .backlog_what = "streams waiting for the feed"};
    if ((rc = hw_redis_conn_init(&h->redis, loop, &rc_cfg, &hw_sse_redis_ops, h)))
      goto fail;
    h->use_redis = 1;
  }
  (void)uv_timer_init(loop, &h->heartbeat); /* only initialises memory */
  h->heartbeat.data = h;
  (void)uv_timer_start(&h->heartbeat, hw_sse_on_heartbeat, h->cfg.heartbeat_ms, h->cfg.heartbeat_ms);
  (void)uv_check_init(loop, &h->check);
  h->check.data = h;
  (void)uv_timer_init(loop, &h->flush);
  h->flush.data = h;
  (void)uv_timer_start(&h->flush, hw_sse_on_flush, h->cfg.flush_ms, h->cfg.flush_ms);
  if (h->use_redis)
    hw_redis_conn_start(&h->redis);
  *out = h;
  return 0;
fail:
  free(h->ring);
  free(h);
  return rc;
}

int hw_sse_attach(hw_sse_hub *h, hw_http_req *req, hw_sse_filter_fn filter, void *filter_arg,
                  void (*arg_free)(void *), const char *scope, const char *last_event_id) {
  if (h->stopping)
    return -EBUSY;
  if (h->nclients >= h->cfg.max_clients) {
    h->stats.refused_cap++;
    return -EBUSY;
  }
  /* Violations numbered and not yet sent go to the others first: a replay below includes them,
   * and this client must not get them twice. */
  hw_sse_send_violations(h);
  hw_sse_client *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  int rc;
  if ((rc = hw_http_add_header(req, "Cache-Control", "no-cache")) ||
      (rc = hw_http_add_header(req, "X-Accel-Buffering", "no"))) {
    free(c);
    return rc;
  }
  c->hub = h;
  c->req = req;
  c->filter = filter;
  c->arg = filter_arg;
  c->arg_free = arg_free;
  if (hw_sse_group_join(h, c, scope)) {
    free(c);
    return -ENOMEM;
  }
  c->next = h->clients;
  if (h->clients)
    h->clients->prev = c;
  h->clients = c;
  h->nclients++;
  /* From here on the client (and filter_arg) is released by hw_sse_client_free, whichever way
   * the stream ends, the server's abort included. */
  hw_http_on_abort(req, hw_sse_on_abort, c);
  if (hw_http_stream_begin(req, 200, "text/event-stream", HW_HTTP_CHUNKED))
    return -EPIPE; /* the connection closed: the abort callback freed c */
  h->stats.attached++;
  if (!strcmp(hw_http_method(req), "HEAD")) {
    hw_http_on_abort(req, NULL, NULL);
    if (hw_http_stream_end(req))
      hw_debug(HW_SSE_LOG, NULL, "HEAD stream peer=%s: connection closed", hw_http_peer(req));
    hw_sse_client_free(c);
    return 0;
  }

  /* What the client missed, or a reset. Without Last-Event-ID it starts live. */
  const char *reset = NULL;
  uint64_t epoch, seq;
  h->scratch_len = 0;
  if (last_event_id && *last_event_id) {
    if (hw_sse_parse_id(last_event_id, &epoch, &seq) || epoch != h->epoch)
      reset = "unknown id";
    else if (seq > h->last_seq)
      reset = "unknown id";
    else if (seq < h->resume_floor)
      reset = "feed interrupted";
    else if (seq < h->last_seq && !hw_sse_ring_get(h, seq + 1))
      reset = "too old";
    else if ((rc = hw_sse_collect(c, seq + 1, h->last_seq, h->cfg.client_max_queue / 2)))
      reset = rc == -E2BIG ? "too much missed" : "out of memory";
    else
      h->stats.resumed++;
  }
  char head[256 + 32];
  size_t n = (size_t)snprintf(head, sizeof head, "retry: 3000\n\n");
  if (reset) {
    h->scratch_len = 0;
    n += hw_sse_reset_frame(h, reset, head + n, sizeof head - n);
    h->stats.resets++;
  }
  if (hw_sse_client_write(c, head, n) == 0 && h->scratch_len)
    (void)hw_sse_client_write(c, h->scratch, h->scratch_len);
  return 0; /* a failed write above released c: the stream is over, not the attach */
}

void hw_sse_hub_get_stats(const hw_sse_hub *h, hw_sse_stats *out) {
  *out = h->stats;
  out->clients = h->nclients;
  out->subscribed = h->subscribed;
  out->redis_reconnects = h->use_redis ? h->redis.reconnects : 0;
  out->ring_events = h->count;
  out->ring_bytes = h->ring_bytes;
  out->epoch = h->epoch;
  out->last_seq = h->last_seq;
}

static void hw_sse_on_timer_closed(uv_handle_t *t) {
  hw_sse_hub *h = t->data;
  h->timer_closed = 1;
  hw_sse_finish(h);
}

static void hw_sse_on_flush_closed(uv_handle_t *t) {
  hw_sse_hub *h = t->data;
  h->flush_closed = 1;
  hw_sse_finish(h);
}

static void hw_sse_on_check_closed(uv_handle_t *t) {
  hw_sse_hub *h = t->data;
  h->check_closed = 1;
  hw_sse_finish(h);
}

static void hw_sse_finish(hw_sse_hub *h) {
  if (!h->timer_closed || !h->flush_closed || !h->check_closed ||
      (h->use_redis && !h->redis_closed))
    return;
  hw_info(HW_SSE_LOG, NULL, "stopped: %llu position and %llu violation events (positions in "
          "%llu batches, %llu replaced by a newer state within a flush), %llu streams, "
          "%llu dropped as slow, %llu resumed, %llu resets, %llu bytes written",
          (unsigned long long)h->stats.positions, (unsigned long long)h->stats.violations,
          (unsigned long long)h->stats.batches, (unsigned long long)h->stats.coalesced,
          (unsigned long long)h->stats.attached, (unsigned long long)h->stats.dropped_slow,
          (unsigned long long)h->stats.resumed, (unsigned long long)h->stats.resets,
          (unsigned long long)h->stats.bytes_written);
  hw_sse_pending_free(&h->pending);
  while (h->count)
    hw_sse_ring_pop(h);
  free(h->ring);
  free(h->scratch);
  void (*cb)(void *) = h->done_cb;
  void *arg = h->done_arg;
  free(h);
  if (cb)
    cb(arg);
}

void hw_sse_hub_stop(hw_sse_hub *h, void (*done_cb)(void *arg), void *arg) {
  if (h->stopping)
    return;
  h->stopping = 1;
  h->done_cb = done_cb;
  h->done_arg = arg;
  while (h->clients) {
    hw_sse_client *c = h->clients;
    hw_http_on_abort(c->req, NULL, NULL); /* ending it below is ours */
    if (hw_http_stream_end(c->req)) /* fails only when the connection is closing anyway */
      hw_debug(HW_SSE_LOG, NULL, "stop: stream peer=%s already closing", hw_http_peer(c->req));
    hw_sse_client_free(c);
  }
  uv_close((uv_handle_t *)&h->heartbeat, hw_sse_on_timer_closed);
  uv_close((uv_handle_t *)&h->flush, hw_sse_on_flush_closed);
  uv_close((uv_handle_t *)&h->check, hw_sse_on_check_closed);
  if (h->use_redis)
    hw_redis_conn_close(&h->redis);
}
