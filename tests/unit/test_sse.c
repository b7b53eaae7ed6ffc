/* The live feed's pieces without Redis: SSE framing (multi-line data, ids), event ids, GB/T 2260
 * region scopes, the daemon's position event (parsed back with cJSON), the compact position
 * encoding and the per-flush coalescing table (sse_batch.h), and the hub on socketless HTTP
 * connections: batches through per-client filters, the newest state per vehicle per flush,
 * batches split at batch_bytes, violations at once, the same bytes to clients of one scope, the
 * ring and Last-Event-ID resume (without loss or duplication), reset for an id too old, from
 * another hub or from the future, the client cap, and a clean stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>

#include "registry/registry.h"
#include "sinks/redis_state.h"
#include "sinks/violation_relay.h"
#include "web/sse.h"
#include "web/sse_batch.h"

/* --- framing ---------------------------------------------------------------------------------- */

static void check_format(const char *id, const char *ev, const char *data, const char *want) {
  char out[512];
  size_t need = hw_sse_format(NULL, 0, id, ev, data, strlen(data));
  assert_int_equal(need, strlen(want));
  assert_int_equal(hw_sse_format(out, sizeof out, id, ev, data, strlen(data)), need);
  out[need] = 0;
  assert_string_equal(out, want);
  /* too small: nothing past cap is written, the length needed is still returned */
  memset(out, 'x', sizeof out);
  assert_int_equal(hw_sse_format(out, 5, id, ev, data, strlen(data)), need);
  assert_int_equal(out[need > 5 ? 5 : need], 'x');
}

static void test_format(void **state) {
  (void)state;
  check_format("ab-1", "position", "{\"a\":1}", "id: ab-1\nevent: position\ndata: {\"a\":1}\n\n");
  check_format(NULL, NULL, "x", "data: x\n\n");
  check_format(NULL, "reset", "", "event: reset\ndata: \n\n");
  /* every line break the SSE parser knows ends a data line */
  check_format("1-2", NULL, "a\nb\r\nc\rd", "id: 1-2\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  check_format(NULL, NULL, "a\n", "data: a\ndata: \n\n");
  check_format(NULL, NULL, "\n\n", "data: \ndata: \ndata: \n\n");
}

static void test_parse_id(void **state) {
  (void)state;
  uint64_t e, s;
  assert_int_equal(hw_sse_parse_id("ab12-345", &e, &s), 0);
  assert_int_equal(e, 0xab12);
  assert_int_equal(s, 345);
  assert_int_equal(hw_sse_parse_id("0-0", &e, &s), 0);
  const char *bad[] = {"", "-", "ab-", "-1", "AB-1", "ab-1x", "ab 1", "g-1", "ab--1",
                       "11111111111111111-1", "1-12345678901234567890", "ab-+1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(hw_sse_parse_id(bad[i], &e, &s), -EINVAL);
  assert_int_equal(hw_sse_parse_id(NULL, &e, &s), -EINVAL);
}

static void test_regions(void **state) {
  (void)state;
  assert_true(hw_sse_region_within("320102", "320000"));
  assert_true(hw_sse_region_within("329999", "320000"));
  assert_false(hw_sse_region_within("330102", "320000"));
  assert_true(hw_sse_region_within("320102", "320100"));
  assert_true(hw_sse_region_within("320100", "320100"));
  assert_false(hw_sse_region_within("320202", "320100"));
  assert_true(hw_sse_region_within("320102", "320102"));
  assert_false(hw_sse_region_within("320103", "320102"));
  assert_false(hw_sse_region_within("", "320000"));
  assert_false(hw_sse_region_within("3201", "320000"));
  assert_false(hw_sse_region_within("3201\r2", "320100")); /* digits only */
  assert_false(hw_sse_region_within("320102", "32ab00"));

  hw_sse_regions *r = malloc(sizeof *r + 2 * sizeof r->codes[0]);
  r->n = 2;
  strcpy(r->codes[0], "320100");
  strcpy(r->codes[1], "110105");
  hw_sse_event_meta m = {HW_SSE_POSITION, "T", "320111", ""};
  assert_true(hw_sse_filter_regions(r, &m));
  m.region = "110105";
  assert_true(hw_sse_filter_regions(r, &m));
  m.region = "110106";
  assert_false(hw_sse_filter_regions(r, &m));
  m.region = ""; /* unbound terminal: nobody scoped sees it */
  assert_false(hw_sse_filter_regions(r, &m));
  r->n = 0;
  m.region = "320111";
  assert_false(hw_sse_filter_regions(r, &m));
  free(r);
}

/* --- the daemon's event ----------------------------------------------------------------------- */

static void test_position_event(void **state) {
  (void)state;
  hw_terminal t;
  hw_vehicle v;
  memset(&t, 0, sizeof t);
  memset(&v, 0, sizeof v);
  char idbuf[HW_TID_WIDE_MAX + 1];
  strcpy(idbuf, "T0001");
  t.id = idbuf;
  t.latest.ts_ms = 1765000000123;
  t.latest.lat_e6 = -31230416;
  t.latest.lon_e6 = 121473701;
  t.latest.speed_dkmh = 623;
  t.latest.heading = 359;
  t.latest.alarm = 0x80000001u;
  t.latest.status = 2;
  strcpy(v.region, "320102");
  strcpy(v.enterprise, "Su \"Fast\" \\ Haul\x01 运输");
  t.vehicle = &v;
  char out[HW_RS_EVENT_MAX];
  size_t n = hw_redis_state_format_event(out, &t, 50);
  assert_true(n < sizeof out);
  assert_int_equal(out[n - 1], '\n');
  cJSON *o = cJSON_ParseWithLength(out, n - 1);
  assert_non_null(o);
  assert_string_equal(cJSON_GetObjectItem(o, "terminal_id")->valuestring, "T0001");
  assert_true(cJSON_GetObjectItem(o, "ts_ms")->valuedouble == 1765000000123.0);
  assert_true(cJSON_GetObjectItem(o, "lat")->valuedouble == -31.230416);
  assert_true(cJSON_GetObjectItem(o, "lon")->valuedouble == 121.473701);
  assert_true(cJSON_GetObjectItem(o, "speed_kmh")->valuedouble == 62.3);
  assert_int_equal(cJSON_GetObjectItem(o, "heading")->valueint, 359);
  assert_true(cJSON_GetObjectItem(o, "alarm")->valuedouble == 2147483649.0);
  assert_int_equal(cJSON_GetObjectItem(o, "status")->valueint, 2);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "moving")));
  assert_string_equal(cJSON_GetObjectItem(o, "region")->valuestring, "320102");
  assert_string_equal(cJSON_GetObjectItem(o, "enterprise")->valuestring, v.enterprise);
  cJSON_Delete(o);
  assert_null(memchr(out, '\n', n - 1)); /* one line per event */

  /* unbound, stopped */
  t.vehicle = NULL;
  t.latest.speed_dkmh = 49;
  n = hw_redis_state_format_event(out, &t, 50);
  o = cJSON_ParseWithLength(out, n);
  assert_non_null(o);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "moving")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "region")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "enterprise")));
  cJSON_Delete(o);

  /* the largest event fits: longest id and enterprise, all escaped */
  memset(t.id, 0x01, HW_TID_WIDE_MAX);
  t.id[HW_TID_WIDE_MAX] = 0;
  memset(v.enterprise, '"', HW_ENTERPRISE_MAX);
  v.enterprise[HW_ENTERPRISE_MAX] = 0;
  t.vehicle = &v;
  t.latest.ts_ms = INT64_MIN;
  t.latest.lat_e6 = INT32_MIN;
  t.latest.lon_e6 = INT32_MIN;
  t.latest.alarm = t.latest.status = UINT32_MAX;
  n = hw_redis_state_format_event(out, &t, 50);
  assert_true(n <= HW_RS_EVENT_MAX);
}

/* --- compact positions and coalescing ------------------------------------------------------- */

static void test_pos_encode(void **state) {
  (void)state;
  char out[HW_SSE_POS_MAX];
  size_t n = hw_sse_pos_encode(out, sizeof out, "T0001", 1765000000123.0, -31.230416, 121.4737,
                               62.3, 359);
  assert_int_equal(n, strlen("[\"T0001\",1765000000123,-31.230416,121.4737,62.3,359]"));
  assert_memory_equal(out, "[\"T0001\",1765000000123,-31.230416,121.4737,62.3,359]", n);
  /* whole numbers lose their point, zeros are not negative, missing fields are null */
  n = hw_sse_pos_encode(out, sizeof out, "x", 0, 32.0, -0.0, 60.0, NAN);
  assert_memory_equal(out, "[\"x\",0,32,0,60,null]", n);
  assert_int_equal(n, strlen("[\"x\",0,32,0,60,null]"));
  /* a hostile id: quotes, backslashes and control characters escaped, the array still JSON */
  n = hw_sse_pos_encode(out, sizeof out, "a\"b\\c\nd\x01", 1, 2, 3, 4, 5);
  assert_true(n > 0 && n <= sizeof out);
  assert_null(memchr(out, '\n', n));
  cJSON *o = cJSON_ParseWithLength(out, n);
  assert_non_null(o);
  assert_true(cJSON_IsArray(o));
  assert_int_equal(cJSON_GetArraySize(o), 6);
  assert_string_equal(cJSON_GetArrayItem(o, 0)->valuestring, "a\"b\\c\nd\x01");
  assert_true(cJSON_GetArrayItem(o, 2)->valuedouble == 2.0);
  cJSON_Delete(o);
  /* the longest id the daemon stores, every byte escaped (no control characters are stored),
   * fits HW_SSE_POS_MAX with the widest numbers */
  char tid[HW_SSE_TID_MAX + 2];
  memset(tid, '"', HW_SSE_TID_MAX);
  tid[HW_SSE_TID_MAX] = 0;
  n = hw_sse_pos_encode(out, sizeof out, tid, -9e15, -180.123456, -180.123456, -9999.9, -359);
  assert_true(n > 0 && n <= sizeof out);
  /* one of control characters (6 bytes each) does not: the length says so, as snprintf's */
  memset(tid, 0x01, HW_SSE_TID_MAX);
  n = hw_sse_pos_encode(out, sizeof out, tid, -9e15, -180.123456, -180.123456, -9999.9, -359);
  assert_true(n > sizeof out);
  /* no id, or one too long: nothing */
  tid[HW_SSE_TID_MAX] = 'x';
  tid[HW_SSE_TID_MAX + 1] = 0;
  assert_int_equal(hw_sse_pos_encode(out, sizeof out, tid, 1, 2, 3, 4, 5), 0);
  assert_int_equal(hw_sse_pos_encode(out, sizeof out, "", 1, 2, 3, 4, 5), 0);
}

static void test_pending(void **state) {
  (void)state;
  hw_sse_pending p;
  memset(&p, 0, sizeof p);
  assert_int_equal(hw_sse_pending_put(&p, "A", "320102", "E1", 1000, "a1", 2), 1);
  assert_int_equal(hw_sse_pending_put(&p, "B", "", "", 5, "b", 1), 1);
  assert_int_equal(hw_sse_pending_put(&p, "A", "320102", "E2", 3000, "a3", 2), 0); /* newer */
  assert_int_equal(hw_sse_pending_put(&p, "A", "320102", "E1", 2000, "a2", 2), 2); /* older */
  assert_int_equal(hw_sse_pending_put(&p, "A", "320102", "E2", 3000, "a3b", 3), 0); /* same ts */
  assert_int_equal(p.n, 2);
  assert_string_equal(p.v[0].tid, "A"); /* order of first arrival */
  assert_memory_equal(p.v[0].enc, "a3b", 3);
  assert_string_equal(p.v[0].enterprise, "E2");
  assert_int_equal(p.bytes, 4);
  assert_int_equal(hw_sse_pending_put(&p, "", "", "", 1, "x", 1), -EINVAL);
  assert_int_equal(hw_sse_pending_put(&p, "C", "", "", 1, "", 0), -EINVAL);
  /* many terminals, each found again after the table grew */
  char tid[16], enc[16];
  for (int i = 0; i < 5000; i++) {
    snprintf(tid, sizeof tid, "t%d", i);
    int n = snprintf(enc, sizeof enc, "%d", i);
    assert_int_equal(hw_sse_pending_put(&p, tid, "", "", i, enc, (size_t)n), 1);
  }
  for (int i = 0; i < 5000; i += 7) {
    snprintf(tid, sizeof tid, "t%d", i);
    assert_int_equal(hw_sse_pending_put(&p, tid, "", "", i + 1, "z", 1), 0);
  }
  assert_int_equal(p.n, 5002);
  hw_sse_pending_clear(&p);
  assert_int_equal(p.n, 0);
  assert_int_equal(p.bytes, 0);
  assert_int_equal(hw_sse_pending_put(&p, "A", "", "", 1, "a", 1), 1); /* empty after clear */
  hw_sse_pending_free(&p);
}

/* --- the hub on socketless connections ------------------------------------------------------- */

typedef struct sse_ev {
  char id[48], event[16];
  char data[4096];
} sse_ev;

typedef struct client {
  hw_http_test_conn *c;
  char raw[1 << 18]; /* every byte the server wrote */
  size_t len;
  sse_ev ev[256];
  size_t nev;
} client;

static void sink(void *arg, const uint8_t *d, size_t n) {
  client *c = arg;
  assert_true(c->len + n < sizeof c->raw);
  memcpy(c->raw + c->len, d, n);
  c->len += n;
  c->raw[c->len] = 0;
}

/* Dechunks the body and parses its events (comments and retry lines skipped). */
static void parse_events(client *c) {
  static char body[1 << 18];
  size_t blen = 0;
  const char *p = strstr(c->raw, "\r\n\r\n");
  assert_non_null(p);
  p += 4;
  const char *end = c->raw + c->len;
  while (p < end) {
    char *q;
    unsigned long sz = strtoul(p, &q, 16);
    assert_true(q[0] == '\r' && q[1] == '\n');
    if (sz == 0)
      break;
    memcpy(body + blen, q + 2, sz);
    blen += sz;
    p = q + 2 + sz + 2;
  }
  body[blen] = 0;
  c->nev = 0;
  char *save = NULL;
  /* events end with a blank line */
  for (char *blk = body; blk && *blk;) {
    char *next = strstr(blk, "\n\n");
    if (next) {
      *next = 0;
      next += 2;
    }
    sse_ev e;
    memset(&e, 0, sizeof e);
    int any = 0;
    for (char *line = strtok_r(blk, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      if (!strncmp(line, "id: ", 4))
        snprintf(e.id, sizeof e.id, "%s", line + 4), any = 1;
      else if (!strncmp(line, "event: ", 7))
        snprintf(e.event, sizeof e.event, "%s", line + 7), any = 1;
      else if (!strncmp(line, "data: ", 6))
        snprintf(e.data + strlen(e.data), sizeof e.data - strlen(e.data), "%s%s",
                 e.data[0] ? "\n" : "", line + 6), any = 1;
    }
    if (any) {
      assert_true(c->nev < 256);
      c->ev[c->nev++] = e;
    }
    blk = next;
  }
}

typedef struct fixture {
  uv_loop_t loop;
  hw_http_server *srv;
  hw_sse_hub *hub;
  hw_http_route routes[2];
  int frees; /* filter args released */
} fixture;

static fixture *fx; /* the handler's route arg is the fixture; tests use it directly */

static void free_regions(void *arg) {
  fx->frees++;
  free(arg);
}

/* GET /stream?r=CODE: a user scoped to CODE ("*": unrestricted). */
static void h_stream(hw_http_req *req, void *arg) {
  fixture *f = arg;
  const char *q = hw_http_query(req);
  hw_sse_regions *r = NULL;
  if (strncmp(q, "r=*", 3) != 0) {
    r = malloc(sizeof *r + sizeof r->codes[0]);
    r->n = 1;
    snprintf(r->codes[0], sizeof r->codes[0], "%.6s", q + 2);
  }
  int rc = hw_sse_attach(f->hub, req, r ? hw_sse_filter_regions : NULL, r, r ? free_regions : NULL,
                         r ? r->codes[0] : NULL, hw_http_header(req, "Last-Event-ID"));
  if (rc == -EBUSY || rc == -ENOMEM) {
    free(r);
    assert_int_equal(hw_http_respond_error(req, 503, "too many streams"), 0);
  }
}

static void fx_open(fixture *f, const hw_sse_config *cfg) {
  memset(f, 0, sizeof *f);
  fx = f;
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->routes[0] = (hw_http_route){"GET", "/stream", h_stream, f, 0};
  hw_http_config hc;
  memset(&hc, 0, sizeof hc);
  assert_int_equal(hw_http_server_init(&f->srv, &f->loop, &hc, f->routes, 1), 0);
  assert_int_equal(hw_sse_hub_start(&f->hub, &f->loop, cfg), 0);
}

static void on_done(void *arg) { (*(int *)arg)++; }

static void fx_close(fixture *f) {
  int done = 0;
  hw_sse_hub_stop(f->hub, on_done, &done);
  while (!done)
    uv_run(&f->loop, UV_RUN_ONCE);
  hw_http_server_close(f->srv, on_done, &done);
  while (done < 2)
    uv_run(&f->loop, UV_RUN_ONCE);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static client *connect_client(fixture *f, const char *scope, const char *last_id) {
  client *c = calloc(1, sizeof *c);
  assert_int_equal(hw_http_test_conn_new(f->srv, sink, c, &c->c), 0);
  char req[256];
  int n = snprintf(req, sizeof req, "GET /stream?r=%s HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n", scope,
                   last_id ? "Last-Event-ID: " : "", last_id ? last_id : "", last_id ? "\r\n" : "");
  assert_int_equal(hw_http_test_feed(c->c, (const uint8_t *)req, (size_t)n), (size_t)n);
  return c;
}

static void inject_pos(fixture *f, const char *tid, const char *region) {
  char line[256];
  int n = snprintf(line, sizeof line,
                   "{\"terminal_id\":\"%s\",\"ts_ms\":1,\"lat\":1.0,\"lon\":2.0,\"region\":%s%s%s}",
                   tid, region ? "\"" : "", region ? region : "null", region ? "\"" : "");
  hw_sse_hub_inject(f->hub, HW_POSITIONS_REDIS_CHANNEL, line, (size_t)n);
  hw_sse_hub_flush(f->hub); /* one batch each */
}

static void test_hub_fanout_filter(void **state) {
  (void)state;
  fixture f;
  hw_sse_config cfg = {0};
  fx_open(&f, &cfg);
  client *all = connect_client(&f, "*", NULL);
  client *nj = connect_client(&f, "320100", NULL);
  client *bj = connect_client(&f, "110000", NULL);
  assert_non_null(strstr(all->raw, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(all->raw, "Content-Type: text/event-stream\r\n"));
  assert_non_null(strstr(all->raw, "Cache-Control: no-cache\r\n"));

  client *nj2 = connect_client(&f, "320100", NULL); /* nj's scope: the same bytes */
  /* one Redis message of the daemon: three vehicles, one line each */
  const char batch[] = "{\"terminal_id\":\"A\",\"ts_ms\":1000,\"lat\":32.1,\"lon\":118.8,"
                       "\"speed_kmh\":60.0,\"heading\":90,\"region\":\"320102\"}\n"
                       "{\"terminal_id\":\"B\",\"region\":\"110105\"}\n"
                       "{\"terminal_id\":\"C\",\"region\":null}";
  hw_sse_hub_inject(f.hub, HW_POSITIONS_REDIS_CHANNEL, batch, sizeof batch - 1);
  /* A again within the flush, newer, then older: the newer is sent, once */
  const char a2[] = "{\"terminal_id\":\"A\",\"ts_ms\":2000,\"lat\":32.2,\"lon\":118.8,"
                    "\"speed_kmh\":0.5,\"heading\":91,\"region\":\"320102\"}";
  const char a0[] = "{\"terminal_id\":\"A\",\"ts_ms\":500,\"lat\":9,\"lon\":9,\"region\":\"320102\"}";
  hw_sse_hub_inject(f.hub, HW_POSITIONS_REDIS_CHANNEL, a2, sizeof a2 - 1);
  hw_sse_hub_inject(f.hub, HW_POSITIONS_REDIS_CHANNEL, a0, sizeof a0 - 1);
  /* a violation as the relay publishes it: sent at once, before the positions' flush */
  const char viol[] = "{\"event\":\"new\",\"id\":7,\"kind\":\"speeding\",\"terminal_id\":\"A\","
                      "\"region\":\"320102\",\"enterprise\":\"E\"}";
  hw_sse_hub_inject(f.hub, HW_VIOLATION_REDIS_CHANNEL, viol, sizeof viol - 1);
  parse_events(all);
  assert_int_equal(all->nev, 0); /* sent after the loop's read of Redis, in the same turn */
  uv_run(&f.loop, UV_RUN_NOWAIT);
  parse_events(all);
  assert_int_equal(all->nev, 1);
  assert_string_equal(all->ev[0].event, "violation");
  /* garbage is counted, numbered nothing */
  const char junk[] = "nope\n{\"x\":1}\n{\"terminal_id\":\"D\"} x";
  hw_sse_hub_inject(f.hub, HW_POSITIONS_REDIS_CHANNEL, junk, sizeof junk - 1);
  hw_sse_hub_inject(f.hub, "hw:other", "{}", 2);
  hw_sse_hub_flush(f.hub);
  hw_sse_hub_flush(f.hub); /* nothing pending: no event */

  parse_events(all);
  parse_events(nj);
  parse_events(nj2);
  parse_events(bj);
  assert_int_equal(all->nev, 2);
  assert_string_equal(all->ev[0].event, "violation");
  assert_string_equal(all->ev[0].data, viol);
  assert_string_equal(all->ev[1].event, "positions");
  assert_string_equal(all->ev[1].data, "[[\"A\",2000,32.2,118.8,0.5,91],"
                                       "[\"B\",null,null,null,null,null],"
                                       "[\"C\",null,null,null,null,null]]");
  uint64_t e0, s;
  for (size_t i = 0; i < 2; i++) {
    uint64_t e;
    assert_int_equal(hw_sse_parse_id(all->ev[i].id, &e, &s), 0);
    if (i == 0)
      e0 = e;
    assert_true(e == e0);
    assert_int_equal(s, i + 1);
  }
  assert_int_equal(nj->nev, 2); /* A's violation and A's position */
  assert_string_equal(nj->ev[0].id, all->ev[0].id);
  assert_string_equal(nj->ev[1].id, all->ev[1].id);
  assert_string_equal(nj->ev[1].data, "[[\"A\",2000,32.2,118.8,0.5,91]]");
  assert_int_equal(nj2->len, nj->len); /* the same scope, the same bytes */
  assert_memory_equal(nj2->raw + (nj2->len - 200), nj->raw + (nj->len - 200), 200);
  assert_int_equal(bj->nev, 1);
  assert_string_equal(bj->ev[0].id, all->ev[1].id);
  assert_string_equal(bj->ev[0].data, "[[\"B\",null,null,null,null,null]]");

  hw_sse_stats st;
  hw_sse_hub_get_stats(f.hub, &st);
  assert_int_equal(st.clients, 4);
  assert_int_equal(st.positions, 5);
  assert_int_equal(st.coalesced, 1);
  assert_int_equal(st.stale, 1);
  assert_int_equal(st.batches, 1);
  assert_int_equal(st.violations, 1);
  assert_int_equal(st.bad_messages, 4);
  assert_int_equal(st.last_seq, 2);
  fx_close(&f);
  assert_int_equal(f.frees, 3); /* every scope released */
  /* a clean end: the last chunk */
  assert_non_null(strstr(nj->raw, "\r\n0\r\n\r\n"));
  free(all);
  free(nj);
  free(nj2);
  free(bj);
}

/* A flush of more positions than batch_bytes: several events, every vehicle in exactly one. */
static void test_hub_batch_split(void **state) {
  (void)state;
  fixture f;
  hw_sse_config cfg = {.batch_bytes = 1000};
  fx_open(&f, &cfg);
  client *all = connect_client(&f, "*", NULL);
  char line[256];
  for (int i = 0; i < 60; i++) {
    int n = snprintf(line, sizeof line, "{\"terminal_id\":\"veh%03d\",\"ts_ms\":1765000000000,"
                     "\"lat\":32.123456,\"lon\":118.123456,\"speed_kmh\":61.5,\"heading\":180,"
                     "\"region\":\"320102\"}", i);
    hw_sse_hub_inject(f.hub, HW_POSITIONS_REDIS_CHANNEL, line, (size_t)n);
  }
  hw_sse_hub_flush(f.hub);
  parse_events(all);
  assert_true(all->nev >= 3);
  int seen[60] = {0};
  for (size_t k = 0; k < all->nev; k++) {
    assert_string_equal(all->ev[k].event, "positions");
    assert_true(strlen(all->ev[k].data) <= 1000 + 2 + 60);
    cJSON *a = cJSON_Parse(all->ev[k].data);
    assert_non_null(a);
    for (int i = 0; i < cJSON_GetArraySize(a); i++) {
      int v = atoi(cJSON_GetArrayItem(cJSON_GetArrayItem(a, i), 0)->valuestring + 3);
      assert_true(v >= 0 && v < 60);
      seen[v]++;
    }
    cJSON_Delete(a);
  }
  for (int i = 0; i < 60; i++)
    assert_int_equal(seen[i], 1);
  hw_sse_stats st;
  hw_sse_hub_get_stats(f.hub, &st);
  assert_int_equal(st.batches, all->nev);
  fx_close(&f);
  free(all);
}

static void test_hub_resume(void **state) {
  (void)state;
  fixture f;
  hw_sse_config cfg = {.ring_events = 8};
  fx_open(&f, &cfg);
  client *a = connect_client(&f, "*", NULL);
  for (int i = 0; i < 6; i++)
    inject_pos(&f, i % 2 ? "X" : "Y", i % 2 ? "320102" : "110105");
  parse_events(a);
  assert_int_equal(a->nev, 6);

  /* resume after the 3rd: exactly the 4th..6th, then live */
  client *r = connect_client(&f, "*", a->ev[2].id);
  inject_pos(&f, "Z", "320102");
  parse_events(r);
  assert_int_equal(r->nev, 4);
  for (int i = 0; i < 3; i++)
    assert_string_equal(r->ev[i].id, a->ev[3 + i].id);
  parse_events(a);
  assert_string_equal(r->ev[3].id, a->ev[6].id);

  /* resume through a filter: only what the scope allows of what was missed */
  client *rs = connect_client(&f, "320100", a->ev[0].id);
  parse_events(rs);
  assert_int_equal(rs->nev, 4); /* X at seq 2, 4, 6 and Z at 7; never Y */
  assert_string_equal(rs->ev[0].id, a->ev[1].id);
  assert_string_equal(rs->ev[2].id, a->ev[5].id);
  assert_string_equal(rs->ev[3].id, a->ev[6].id);

  /* up to date: nothing replayed, not a reset */
  client *u = connect_client(&f, "*", a->ev[6].id);
  parse_events(u);
  assert_int_equal(u->nev, 0);

  /* too old: the ring keeps 8; after 12 events seq 1 is gone */
  for (int i = 0; i < 5; i++)
    inject_pos(&f, "Y", "110105");
  parse_events(a);
  assert_int_equal(a->nev, 12);
  client *old = connect_client(&f, "*", a->ev[0].id);
  parse_events(old);
  assert_int_equal(old->nev, 1);
  assert_string_equal(old->ev[0].event, "reset");
  assert_string_equal(old->ev[0].id, a->ev[11].id); /* go on from here */
  assert_non_null(strstr(old->ev[0].data, "too old"));
  /* the oldest kept (seq 5) is resumable from seq 4 */
  client *edge = connect_client(&f, "*", a->ev[3].id);
  parse_events(edge);
  assert_int_equal(edge->nev, 8);
  assert_string_equal(edge->ev[0].id, a->ev[4].id);

  /* another hub's id, an id from the future, garbage: reset */
  char other[64], future[64];
  uint64_t e, s;
  assert_int_equal(hw_sse_parse_id(a->ev[0].id, &e, &s), 0);
  snprintf(other, sizeof other, "%llx-3", (unsigned long long)(e ^ 1));
  snprintf(future, sizeof future, "%llx-99", (unsigned long long)e);
  const char *bad[] = {other, future, "garbage"};
  client *b[3]; /* still streaming after the reset: freed once the hub stopped */
  for (int i = 0; i < 3; i++) {
    b[i] = connect_client(&f, "*", bad[i]);
    parse_events(b[i]);
    assert_int_equal(b[i]->nev, 1);
    assert_string_equal(b[i]->ev[0].event, "reset");
  }
  hw_sse_stats st;
  hw_sse_hub_get_stats(f.hub, &st);
  assert_int_equal(st.resumed, 4);
  assert_int_equal(st.resets, 4);
  assert_int_equal(st.ring_events, 8);
  fx_close(&f);
  for (int i = 0; i < 3; i++)
    free(b[i]);
  free(a);
  free(r);
  free(rs);
  free(u);
  free(old);
  free(edge);
}

static void test_hub_cap(void **state) {
  (void)state;
  fixture f;
  hw_sse_config cfg = {.max_clients = 2};
  fx_open(&f, &cfg);
  client *a = connect_client(&f, "*", NULL);
  client *b = connect_client(&f, "320000", NULL);
  client *c = connect_client(&f, "320000", NULL);
  assert_non_null(strstr(c->raw, "HTTP/1.1 503"));
  hw_sse_stats st;
  hw_sse_hub_get_stats(f.hub, &st);
  assert_int_equal(st.clients, 2);
  assert_int_equal(st.refused_cap, 1);
  fx_close(&f);
  assert_int_equal(f.frees, 1);
  free(a);
  free(b);
  free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_parse_id),
      cmocka_unit_test(test_regions),
      cmocka_unit_test(test_position_event),
      cmocka_unit_test(test_pos_encode),
      cmocka_unit_test(test_pending),
      cmocka_unit_test(test_hub_fanout_filter),
      cmocka_unit_test(test_hub_batch_split),
      cmocka_unit_test(test_hub_resume),
      cmocka_unit_test(test_hub_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
