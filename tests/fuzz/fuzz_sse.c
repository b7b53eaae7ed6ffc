/* libFuzzer target for the live feed hub (web/sse.c) without Redis: what browsers send
 * (Last-Event-ID, through the HTTP layer on socketless HTTP/1.0 connections) and what arrives on
 * the channels (the daemon's batches, the relay's payloads), interleaved.
 *
 * Input: byte 0: the ring's size (1..16 events). Then operations separated by '\n' lines of the
 * form: 'a' SCOPE LAST-EVENT-ID (a browser attaches; SCOPE '0'..'3' picks an unrestricted user or
 * one of three region codes; an id starting with '@' has this hub's epoch put in its place, so
 * that resumption is reached: the epoch is random), 'p' PAYLOAD (a positions message; "\\n" inside stands for a line
 * break between vehicles), 'v' PAYLOAD (a violation message), 'f' (the flush timer fires: the
 * positions waiting go out as one batch per scope; the input's end flushes too). Oracles,
 * besides the sanitizers:
 *   - every client's stream is well-formed SSE: after the head, only "retry: ", "id: ",
 *     "event: ", "data: " lines, ":" comments and blank lines;
 *   - within a client, ids are of this hub's epoch and strictly increase (a replay, then live,
 *     never a duplicate or a step back);
 *   - a scoped client never gets an event outside its scope: a violation's region is within
 *     it, and every vehicle of a positions batch was injected with a region within it (a batch
 *     entry carries no region: the target remembers what it injected). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "http/http_server.h"
#include "sinks/redis_state.h"
#include "sinks/violation_relay.h"
#include "web/sse.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

#define MAX_CLIENTS 8

typedef struct fclient {
  hw_http_test_conn *c;
  char *buf; /* owned */
  size_t len, cap;
  int scope;
} fclient;

static const char *const scopes[4] = {NULL, "320000", "320100", "110105"};

/* Every (terminal id, region) a positions message of this input carried, for the scope oracle
 * of the batches. Bounded: an input has few. */
#define MAX_SEEN 256
typedef struct seen_pos {
  char tid[96];
  char region[8];
} seen_pos;
static seen_pos seen[MAX_SEEN];
static int nseen, seen_full;

static void remember_positions(const char *msg, size_t len) {
  /* Lines and their JSON read as the hub reads them: bounded by length, not by a NUL. */
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(msg + i, '\n', len - i);
    size_t j = nl ? (size_t)(nl - msg) : len;
    cJSON *o = j > i ? cJSON_ParseWithLength(msg + i, j - i) : NULL;
    const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "terminal_id") : NULL;
    const cJSON *r = o ? cJSON_GetObjectItemCaseSensitive(o, "region") : NULL;
    if (cJSON_IsString(t)) {
      if (nseen == MAX_SEEN) {
        seen_full = 1; /* the oracle stands down rather than guess */
      } else {
        snprintf(seen[nseen].tid, sizeof seen[nseen].tid, "%s", t->valuestring);
        snprintf(seen[nseen].region, sizeof seen[nseen].region, "%s",
                 cJSON_IsString(r) ? r->valuestring : "");
        nseen++;
      }
    }
    cJSON_Delete(o);
    i = j + 1;
  }
}

/* Was tid injected with a region within scope? */
static int injected_within(const char *tid, const char *scope) {
  if (seen_full)
    return 1;
  for (int i = 0; i < nseen; i++)
    if (!strcmp(seen[i].tid, tid) && hw_sse_region_within(seen[i].region, scope))
      return 1;
  return 0;
}
static uv_loop_t loop;
static hw_sse_hub *hub;
static int next_scope;

static void sink(void *arg, const uint8_t *d, size_t n) {
  fclient *c = arg;
  if (c->len + n + 1 > c->cap) {
    size_t cap = (c->len + n + 1) * 2;
    char *nb = realloc(c->buf, cap);
    CHECK(nb);
    c->buf = nb;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, d, n);
  c->len += n;
  c->buf[c->len] = 0;
}

static void free_regions(void *arg) { free(arg); }

static void h_stream(hw_http_req *req, void *arg) {
  (void)arg;
  hw_sse_regions *r = NULL;
  if (scopes[next_scope]) {
    r = malloc(sizeof *r + sizeof r->codes[0]);
    CHECK(r);
    r->n = 1;
    memcpy(r->codes[0], scopes[next_scope], 7);
  }
  int rc = hw_sse_attach(hub, req, r ? hw_sse_filter_regions : NULL, r, r ? free_regions : NULL,
                         scopes[next_scope] ? scopes[next_scope] : "",
                         hw_http_header(req, "Last-Event-ID"));
  if (rc && rc != -EPIPE) {
    free(r);
    (void)hw_http_respond_error(req, 503, "busy");
  }
}

static const hw_http_route routes[] = {{"GET", "/s", h_stream, NULL, 0}};

/* The oracles, on one client's whole output. */
static void check_client(const fclient *c, uint64_t epoch) {
  if (!c->len)
    return;
  CHECK(!strncmp(c->buf, "HTTP/1.1 ", 9));
  if (strncmp(c->buf + 9, "200", 3))
    return; /* refused (400 for a header the parser refuses, 503) */
  const char *p = strstr(c->buf, "\r\n\r\n");
  CHECK(p);
  p += 4;
  uint64_t last = 0;
  int have = 0;
  char *copy = strdup(p);
  CHECK(copy);
  char *data = malloc(strlen(p) + 1);
  CHECK(data);
  /* events end with a blank line; data lines are joined with '\n' as a browser does */
  for (char *ev = copy; ev && *ev;) {
    char *next = strstr(ev, "\n\n");
    if (next) {
      *next = 0;
      next += 2;
    }
    size_t dlen = 0;
    int has_data = 0;
    for (char *line = ev; line;) {
      char *nl = strchr(line, '\n');
      if (nl)
        *nl = 0;
      if (!strncmp(line, "id: ", 4)) {
        uint64_t e, q;
        CHECK(hw_sse_parse_id(line + 4, &e, &q) == 0);
        CHECK(e == epoch);
        CHECK(!have || q > last);
        last = q;
        have = 1;
      } else if (!strncmp(line, "data: ", 6)) {
        if (has_data)
          data[dlen++] = '\n';
        memcpy(data + dlen, line + 6, strlen(line + 6));
        dlen += strlen(line + 6);
        has_data = 1;
      } else {
        CHECK(!strncmp(line, "event: ", 7) || !strncmp(line, "retry: ", 7) || line[0] == ':' ||
              line[0] == 0);
      }
      line = nl ? nl + 1 : NULL;
    }
    data[dlen] = 0;
    /* the hub's own reading of the scope: the first top-level "region" string */
    cJSON *o = has_data && scopes[c->scope] ? cJSON_Parse(data) : NULL;
    if (cJSON_IsArray(o)) { /* a positions batch: [["tid", ts, lat, lon, speed, heading], ...] */
      const cJSON *e;
      cJSON_ArrayForEach(e, o) {
        const cJSON *tid = cJSON_GetArrayItem(e, 0);
        CHECK(cJSON_IsString(tid) && injected_within(tid->valuestring, scopes[c->scope]));
      }
    } else if (o && !cJSON_GetObjectItemCaseSensitive(o, "reason")) {
      const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "region");
      CHECK(cJSON_IsString(r) && hw_sse_region_within(r->valuestring, scopes[c->scope]));
    }
    cJSON_Delete(o);
    ev = next;
  }
  free(data);
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  static int init;
  if (!init) {
    hw_log_min_level = (hw_log_level)(HW_LOG_ERROR + 1); /* skipped messages are logged */
    CHECK(uv_loop_init(&loop) == 0);
    init = 1;
  }
  if (n < 1)
    return 0;
  hw_http_config hc;
  hw_http_config_default(&hc);
  hw_http_server *srv;
  CHECK(hw_http_server_init(&srv, &loop, &hc, routes, 1) == 0);
  hw_sse_config sc = {.ring_events = 1u + d[0] % 16, .max_clients = MAX_CLIENTS - 2,
                      .client_max_queue = 4096};
  CHECK(hw_sse_hub_start(&hub, &loop, &sc) == 0);
  nseen = seen_full = 0;
  fclient cl[MAX_CLIENTS];
  memset(cl, 0, sizeof cl);
  int ncl = 0;
  char *msg = malloc(n + 1);
  CHECK(msg);
  for (size_t i = 1; i < n;) {
    const uint8_t *nl = memchr(d + i, '\n', n - i);
    size_t end = nl ? (size_t)(nl - d) : n;
    char op = (char)d[i];
    const char *arg = (const char *)d + i + 1;
    size_t alen = end > i ? end - i - 1 : 0;
    if (op == 'a' && ncl < MAX_CLIENTS && alen >= 1) {
      fclient *c = &cl[ncl++];
      c->scope = (unsigned char)arg[0] % 4;
      next_scope = c->scope;
      CHECK(hw_http_test_conn_new(srv, sink, c, &c->c) == 0);
      char req[512], ep[24] = "";
      int skip = alen > 1 && arg[1] == '@';
      if (skip) {
        hw_sse_stats st;
        hw_sse_hub_get_stats(hub, &st);
        snprintf(ep, sizeof ep, "%llx", (unsigned long long)st.epoch);
      }
      int k = snprintf(req, sizeof req, "GET /s HTTP/1.0\r\nLast-Event-ID: %s%.*s\r\n\r\n", ep,
                       (int)(alen - 1 - skip > 300 ? 300 : alen - 1 - skip), arg + 1 + skip);
      (void)hw_http_test_feed(c->c, (const uint8_t *)req, (size_t)k);
    } else if (op == 'p' || op == 'v') {
      /* "\n" written as backslash-n: the operations are lines themselves */
      size_t m = 0;
      for (size_t j = 0; j < alen; j++) {
        if (arg[j] == '\\' && j + 1 < alen && arg[j + 1] == 'n') {
          msg[m++] = '\n';
          j++;
        } else {
          msg[m++] = arg[j];
        }
      }
      if (op == 'p')
        remember_positions(msg, m);
      hw_sse_hub_inject(hub, op == 'p' ? HW_POSITIONS_REDIS_CHANNEL : HW_VIOLATION_REDIS_CHANNEL,
                        msg, m);
    } else if (op == 'f') {
      hw_sse_hub_flush(hub);
    }
    i = end + 1;
  }
  free(msg);
  hw_sse_hub_flush(hub);
  hw_sse_stats st;
  hw_sse_hub_get_stats(hub, &st);
  uint64_t epoch = st.epoch;
  for (int i = 0; i < ncl; i++)
    check_client(&cl[i], epoch);
  hw_sse_hub_stop(hub, NULL, NULL);
  hw_http_server_close(srv, NULL, NULL);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  for (int i = 0; i < ncl; i++)
    free(cl[i].buf);
  return 0;
}
