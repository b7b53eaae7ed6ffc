/* The live feed end to end: the daemon (with Redis and PostgreSQL) publishes the latest states it
 * writes; an SSE hub (web/sse.h) on a test-side HTTP server, on a loop driven here, subscribes
 * once and streams to raw-socket clients on GET /stream?r=SCOPE. Checked: position batches arrive
 * in the compact form, a user's region scope hides other vehicles, a violation (a row
 * inserted directly, published by the daemon's relay) arrives scoped the same way, a reconnect
 * with Last-Event-ID resumes without loss or duplication, a client that stops reading is dropped
 * while the others keep receiving, and 100 clients cost the daemon nothing (one subscriber in
 * Redis, the daemon's PUBLISH count independent of them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "pbclient.h"
#include "base/common.h"
#include "base/token.h"
#include "http/http_server.h"
#include "sinks/redis_state.h"
#include "web/sse.h"

static hw_test_env env;
static const char *logfile = "test_sse_e2e.daemon.log";
/* A: Nanjing (3201), B: Beijing (1101), C: bound to no vehicle. */
static const char *tids[3] = {"sse_a", "sse_b", "sse_c"};
static char tokens[3][HW_TOKEN_LEN + 1];
static pbc *trucks[3];
static uint64_t seqs[3];
static int64_t t0_ms;

/* ---- the test-side web process: a loop, an HTTP server, a hub ------------------------------ */

typedef struct web {
  hw_test_loop l;
  hw_http_server *srv;
  hw_sse_hub *hub;
  hw_http_route routes[1];
  int port;
} web;

static web W;

typedef struct sclient {
  int fd;
  char *raw; /* every byte received, NUL-terminated; owned */
  size_t len, cap;
  int eof;
  int reading; /* 0: the test stopped reading it */
} sclient;

#define MAX_CLIENTS 128
static sclient *clients[MAX_CLIENTS];

static void free_regions(void *arg) { free(arg); }

/* GET /stream?r=CODE (a user scoped to one region code) or ?r=* (unrestricted). */
static void h_stream(hw_http_req *req, void *arg) {
  web *w = arg;
  const char *q = hw_http_query(req);
  hw_sse_regions *r = NULL;
  if (strcmp(q, "r=*") != 0) {
    r = malloc(sizeof *r + sizeof r->codes[0]);
    assert_non_null(r);
    r->n = 1;
    snprintf(r->codes[0], sizeof r->codes[0], "%.6s", q + 2);
  }
  int rc = hw_sse_attach(w->hub, req, r ? hw_sse_filter_regions : NULL, r, r ? free_regions : NULL,
                         r ? r->codes[0] : NULL, hw_http_header(req, "Last-Event-ID"));
  if (rc == -EBUSY || rc == -ENOMEM) {
    free(r);
    assert_int_equal(hw_http_respond_error(req, 503, "too many streams"), 0);
  }
}

static void pump_clients(hw_test_loop *l) {
  (void)l;
  for (int i = 0; i < MAX_CLIENTS; i++) {
    sclient *c = clients[i];
    if (!c || !c->reading || c->eof)
      continue;
    for (;;) {
      if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 1 << 17;
        c->raw = realloc(c->raw, c->cap);
        assert_non_null(c->raw);
      }
      ssize_t k = read(c->fd, c->raw + c->len, c->cap - c->len - 1);
      if (k > 0) {
        c->len += (size_t)k;
        c->raw[c->len] = 0;
        continue;
      }
      if (k == 0)
        c->eof = 1;
      break;
    }
  }
}

static sclient *sse_connect(const char *scope, const char *last_id, int rcvbuf) {
  sclient *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(c->fd >= 0);
  if (rcvbuf)
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)W.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
  char req[256];
  int n = snprintf(req, sizeof req, "GET /stream?r=%s HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n", scope,
                   last_id ? "Last-Event-ID: " : "", last_id ? last_id : "", last_id ? "\r\n" : "");
  assert_int_equal(write(c->fd, req, (size_t)n), n);
  assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
  c->reading = 1;
  c->cap = 1 << 17;
  c->raw = calloc(1, c->cap);
  for (int i = 0; i < MAX_CLIENTS; i++)
    if (!clients[i]) {
      clients[i] = c;
      return c;
    }
  fail_msg("too many clients");
  return NULL;
}

static void sse_close(sclient *c) {
  for (int i = 0; i < MAX_CLIENTS; i++)
    if (clients[i] == c)
      clients[i] = NULL;
  close(c->fd);
  free(c->raw);
  free(c);
}

/* ---- parsing what a client received ----------------------------------------------------------- */

typedef struct ev {
  char id[48], event[16];
  char *data; /* into the parse buffer */
} ev;

typedef struct evlist {
  char *body; /* dechunked; owned */
  ev *v;
  size_t n;
} evlist;

static void evlist_free(evlist *l) {
  free(l->body);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static void parse(const sclient *c, evlist *out) {
  memset(out, 0, sizeof *out);
  out->body = malloc(c->len + 1);
  size_t blen = 0;
  const char *p = strstr(c->raw, "\r\n\r\n");
  if (p) {
    p += 4;
    const char *end = c->raw + c->len;
    while (p < end) {
      char *q;
      unsigned long sz = strtoul(p, &q, 16);
      if (q + 2 > end || q[0] != '\r' || q[1] != '\n' || sz == 0 || q + 2 + sz > end)
        break; /* the end, or a chunk still arriving */
      memcpy(out->body + blen, q + 2, sz);
      blen += sz;
      p = q + 2 + sz + 2;
    }
  }
  out->body[blen] = 0;
  size_t cap = 64;
  out->v = malloc(cap * sizeof *out->v);
  for (char *blk = out->body; *blk;) {
    char *next = strstr(blk, "\n\n");
    if (!next)
      break; /* incomplete */
    *next = 0;
    ev e;
    memset(&e, 0, sizeof e);
    for (char *line = blk; line && *line;) {
      char *nl = strchr(line, '\n');
      if (nl)
        *nl = 0;
      if (!strncmp(line, "id: ", 4))
        snprintf(e.id, sizeof e.id, "%s", line + 4);
      else if (!strncmp(line, "event: ", 7))
        snprintf(e.event, sizeof e.event, "%s", line + 7);
      else if (!strncmp(line, "data: ", 6))
        e.data = line + 6; /* one line: our events are single-line JSON */
      line = nl ? nl + 1 : NULL;
    }
    if (e.event[0]) {
      if (out->n == cap) {
        cap *= 2;
        out->v = realloc(out->v, cap * sizeof *out->v);
      }
      out->v[out->n++] = e;
    }
    blk = next + 2;
  }
}

/* Events of kind `event` for terminal tid: violations naming it, position batches holding it
 * (each vehicle at most once per batch). */
static size_t count_of(const evlist *l, const char *event, const char *tid) {
  char key[64], key2[64]; /* a violation: PostgreSQL's jsonb text; a batch: an entry's start */
  snprintf(key, sizeof key, "[\"%s\",", tid);
  snprintf(key2, sizeof key2, "\"terminal_id\": \"%s\"", tid);
  size_t n = 0;
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i].event, event) && l->v[i].data &&
        (strstr(l->v[i].data, key) || strstr(l->v[i].data, key2)))
      n++;
  return n;
}

typedef struct want {
  sclient *c;
  const char *event, *tid;
  size_t n;
} want;

static int has_events(void *arg) {
  want *w = arg;
  evlist l;
  parse(w->c, &l);
  size_t n = count_of(&l, w->event, w->tid);
  evlist_free(&l);
  return n >= w->n;
}

static void wait_events(sclient *c, const char *event, const char *tid, size_t n) {
  want w = {c, event, tid, n};
  if (!hw_test_loop_run_until(&W.l, has_events, &w))
    fail_msg("timed out waiting for %zu %s events of %s; the client has:\n%.2000s", n, event, tid,
             c->raw);
}

/* The newest entry for tid in c's position batches, copied into out ("" if none). */
static void last_entry(const evlist *l, const char *tid, char *out, size_t cap) {
  char key[64];
  snprintf(key, sizeof key, "[\"%s\",", tid);
  out[0] = 0;
  for (size_t i = 0; i < l->n; i++) {
    const char *p = strcmp(l->v[i].event, "positions") || !l->v[i].data ? NULL : strstr(l->v[i].data, key);
    if (!p)
      continue;
    const char *e = strchr(p, ']');
    assert_non_null(e);
    snprintf(out, cap, "%.*s", (int)(e - p + 1), p);
  }
}

typedef struct want_lat {
  sclient *c;
  const char *tid;
  char lat[24]; /* as the batch writes it */
} want_lat;

static int has_lat(void *arg) {
  want_lat *w = arg;
  evlist l;
  char e[128], key[40];
  parse(w->c, &l);
  last_entry(&l, w->tid, e, sizeof e);
  evlist_free(&l);
  snprintf(key, sizeof key, ",%s,", w->lat);
  return strstr(e, key) != NULL;
}

/* Waits until c's newest position of tid is the fix sent with lat_step (send_fix). */
static void wait_latest(sclient *c, const char *tid, int lat_step) {
  want_lat w = {c, tid, ""};
  char *p;
  snprintf(w.lat, sizeof w.lat, "%.6f", (32000000 + lat_step * 100) / 1e6);
  for (p = w.lat + strlen(w.lat) - 1; *p == '0'; p--)
    *p = 0;
  if (!hw_test_loop_run_until(&W.l, has_lat, &w))
    fail_msg("timed out waiting for %s at lat %s; the client has:\n%.2000s", tid, w.lat, c->raw);
}

/* ---- the daemon's trucks ------------------------------------------------------------------- */

static void send_fix(int k, int lat_step) {
  Haulwatch__V1__Fix f;
  haulwatch__v1__fix__init(&f);
  f.seq = ++seqs[k];
  f.time_ms = (uint64_t)(t0_ms + (int64_t)seqs[k] * 1000);
  f.lat_e6 = 32000000 + lat_step * 100;
  f.lon_e6 = 118800000;
  f.speed_dkmh = 600;
  f.heading = 90;
  f.status = 3;
  Haulwatch__V1__Fix *fp = &f;
  assert_int_equal(pbc_report(trucks[k], &fp, 1), 0);
  assert_int_equal(pbc_wait_ack(trucks[k], f.seq, 10000), (int64_t)f.seq);
}

static redisContext *redis_cli(void) {
  redisContext *r = redisConnect("127.0.0.1", env.redis_port);
  assert_non_null(r);
  assert_int_equal(r->err, 0);
  return r;
}

static long long redis_int(redisContext *r, const char *cmd) {
  redisReply *rep = redisCommand(r, cmd);
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
  long long v = rep->integer;
  freeReplyObject(rep);
  return v;
}

/* PUBLISH calls Redis has run, from INFO commandstats. */
static long long redis_publish_calls(redisContext *r) {
  redisReply *rep = redisCommand(r, "INFO commandstats");
  assert_non_null(rep);
  const char *p = strstr(rep->str, "cmdstat_publish:calls=");
  long long v = p ? atoll(p + 22) : 0;
  freeReplyObject(rep);
  return v;
}

static long long pubsub_numsub(redisContext *r, const char *channel) {
  redisReply *rep = redisCommand(r, "PUBSUB NUMSUB %s", channel);
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
  long long v = rep->element[1]->integer;
  freeReplyObject(rep);
  return v;
}

/* ---- setup ----------------------------------------------------------------------------------- */

static void add_terminal(int k) {
  uint8_t h[HW_TOKEN_HASH_LEN];
  char bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1];
  assert_int_equal(hw_token_new(tokens[k]), 0);
  hw_token_hash(tokens[k], strlen(tokens[k]), h);
  hw_token_hash_bytea(h, bytea);
  const char *params[2] = {tids[k], bytea};
  PGresult *r = PQexecParams(env.db, "INSERT INTO terminals (terminal_id, token_hash) VALUES ($1, $2)",
                             2, NULL, params, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
}

static int hub_subscribed(void *arg) {
  hw_sse_stats st;
  hw_sse_hub_get_stats(arg, &st);
  return st.subscribed;
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_it_sse");
  for (int k = 0; k < 3; k++)
    add_terminal(k);
  hw_test_pg_scalar(env.db, "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, "
                            "region, enterprise) VALUES "
                            "('苏A00001', 2, 'heavy_truck', 'sse_a', '320102', 'Su \"Quick\" Haul'),"
                            "('京B00002', 2, 'heavy_truck', 'sse_b', '110105', 'Jing Freight')");
  unlink(logfile);
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--batch-ms", "20", "--redis-flush-ms", "100", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  if (hw_test_wait_port(env.port, 15000))
    return -1;
  t0_ms = hw_now_ms() - 3600 * 1000;
  for (int k = 0; k < 3; k++) {
    trucks[k] = pbc_connect(env.port);
    assert_non_null(trucks[k]);
    assert_int_equal(pbc_hello(trucks[k], tids[k], tokens[k]), 0);
    Haulwatch__V1__ServerMessage *m = pbc_recv(trucks[k], 10000);
    assert_non_null(m);
    assert_true(m->hello_result->accepted);
    haulwatch__v1__server_message__free_unpacked(m, NULL);
  }

  hw_test_loop_init(&W.l);
  W.l.on_tick = pump_clients;
  hw_http_config hc;
  memset(&hc, 0, sizeof hc);
  W.routes[0] = (hw_http_route){"GET", "/stream", h_stream, &W, 0};
  assert_int_equal(hw_http_server_init(&W.srv, &W.l.loop, &hc, W.routes, 1), 0);
  assert_int_equal(hw_http_server_listen(W.srv, "127.0.0.1:0"), 0);
  W.port = hw_http_server_port(W.srv);
  /* small enough for the slow-reader test to hit quickly; large enough for the rest */
  hw_sse_config sc = {.redis_host = "127.0.0.1", .redis_port = env.redis_port,
                      .client_max_queue = 256 * 1024, .max_clients = 120, .flush_ms = 50};
  assert_int_equal(hw_sse_hub_start(&W.hub, &W.l.loop, &sc), 0);
  assert_true(hw_test_loop_run_until(&W.l, hub_subscribed, W.hub));
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  for (int i = 0; i < MAX_CLIENTS; i++)
    if (clients[i])
      sse_close(clients[i]);
  int done = 0;
  hw_sse_hub_stop(W.hub, hw_test_on_done, &done);
  assert_true(hw_test_loop_run_until(&W.l, hw_test_int_set, &done));
  done = 0;
  hw_http_server_close(W.srv, hw_test_on_done, &done);
  assert_true(hw_test_loop_run_until(&W.l, hw_test_int_set, &done));
  hw_test_loop_close(&W.l);
  for (int k = 0; k < 3; k++)
    if (trucks[k])
      pbc_close(trucks[k]);
  hw_test_env_down(&env);
  return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static sclient *all, *nj, *bj;

static void test_positions_scoped(void **state) {
  (void)state;
  all = sse_connect("*", NULL, 0);
  nj = sse_connect("320100", NULL, 0);
  bj = sse_connect("110000", NULL, 0);
  hw_test_loop_run_for(&W.l, 100); /* attached before the first fix */
  for (int k = 0; k < 3; k++)
    send_fix(k, 1);
  wait_events(all, "positions", "sse_a", 1);
  wait_events(all, "positions", "sse_b", 1);
  wait_events(all, "positions", "sse_c", 1); /* bound to no vehicle: only unrestricted users */
  wait_events(nj, "positions", "sse_a", 1);
  wait_events(bj, "positions", "sse_b", 1);
  hw_test_loop_run_for(&W.l, 300); /* anything that should not arrive has had its chance */

  evlist l;
  parse(nj, &l);
  assert_int_equal(count_of(&l, "positions", "sse_b"), 0);
  assert_int_equal(count_of(&l, "positions", "sse_c"), 0);
  /* the compact form, exactly: [terminal_id, ts_ms, lat, lon, speed_kmh, heading] */
  char e[128], expect[128];
  last_entry(&l, "sse_a", e, sizeof e);
  snprintf(expect, sizeof expect, "[\"sse_a\",%lld,32.0001,118.8,60,90]", (long long)(t0_ms + 1000));
  assert_string_equal(e, expect);
  for (size_t i = 0; i < l.n; i++) /* nothing the scope says: no region, no enterprise */
    assert_null(strstr(l.v[i].data, "320102"));
  evlist_free(&l);
  parse(bj, &l);
  assert_int_equal(count_of(&l, "positions", "sse_a"), 0);
  assert_int_equal(count_of(&l, "positions", "sse_c"), 0);
  evlist_free(&l);
  assert_non_null(strstr(all->raw, "Content-Type: text/event-stream\r\n"));
  assert_non_null(strstr(all->raw, "Cache-Control: no-cache\r\n"));
}

static void test_violation_scoped(void **state) {
  (void)state;
  hw_test_pg_scalar(env.db, "INSERT INTO violations (kind, episode_key, terminal_id, plate, region, "
                            "enterprise, started_at) VALUES ('speeding', 'sse-test-1', 'sse_a', "
                            "'苏A00001', '320102', 'Su', now())");
  wait_events(nj, "violation", "sse_a", 1);
  wait_events(all, "violation", "sse_a", 1);
  hw_test_loop_run_for(&W.l, 300);
  evlist l;
  parse(bj, &l);
  assert_int_equal(count_of(&l, "violation", "sse_a"), 0);
  evlist_free(&l);
  parse(nj, &l);
  int found = 0;
  for (size_t i = 0; i < l.n; i++)
    if (!strcmp(l.v[i].event, "violation")) {
      assert_non_null(strstr(l.v[i].data, "\"episode_key\": \"sse-test-1\""));
      found = 1;
    }
  assert_true(found);
  evlist_free(&l);
}

/* nj drops; A moves 5 times and B twice; nj reconnects with its last id and gets exactly A's 5
 * new positions (what `all` got for A in between), then live. */
static void test_resume(void **state) {
  (void)state;
  evlist l;
  parse(nj, &l);
  assert_true(l.n >= 2);
  char last[48];
  snprintf(last, sizeof last, "%s", l.v[l.n - 1].id);
  size_t before = l.n;
  evlist_free(&l);
  sse_close(nj);
  parse(all, &l);
  size_t all_before = l.n;
  evlist_free(&l);

  for (int i = 0; i < 5; i++) {
    send_fix(0, 10 + i);
    if (i < 2)
      send_fix(1, 10 + i);
    hw_test_loop_run_for(&W.l, 150); /* a flush round each (redis_flush_ms 100, flush_ms 50) */
  }
  wait_latest(all, "sse_a", 14);
  wait_latest(all, "sse_b", 11);

  nj = sse_connect("320100", last, 0);
  send_fix(0, 20); /* live, after the replay */
  wait_latest(nj, "sse_a", 20);
  hw_test_loop_run_for(&W.l, 300);

  evlist got, ref;
  parse(nj, &got);
  parse(all, &ref);
  /* what nj got = every event `all` got after `last` that holds a 3201 vehicle, in order, once
   * each, with the same id; of a batch only A's position, never B's */
  size_t from = ref.n;
  for (size_t i = 0; i < ref.n; i++)
    if (!strcmp(ref.v[i].id, last))
      from = i + 1;
  assert_true(from <= all_before);
  size_t j = 0, a_ref = 0;
  for (size_t i = from; i < ref.n; i++) {
    if (!ref.v[i].data || !strstr(ref.v[i].data, "[\"sse_a\","))
      continue;
    assert_true(j < got.n);
    assert_string_equal(got.v[j].id, ref.v[i].id);
    assert_string_equal(got.v[j].event, "positions");
    /* A's entry, byte for byte */
    const char *ra = strstr(ref.v[i].data, "[\"sse_a\","), *ga = strstr(got.v[j].data, "[\"sse_a\",");
    assert_non_null(ga);
    assert_int_equal(strcspn(ra, "]"), strcspn(ga, "]"));
    assert_memory_equal(ra, ga, strcspn(ra, "]"));
    a_ref++;
    j++;
  }
  assert_int_equal(j, got.n);
  assert_true(a_ref >= 2); /* the five moves (maybe coalesced) and the live one */
  assert_int_equal(count_of(&got, "positions", "sse_a"), a_ref);
  assert_int_equal(count_of(&got, "positions", "sse_b"), 0);
  (void)before;
  evlist_free(&got);
  evlist_free(&ref);
  hw_sse_stats st;
  hw_sse_hub_get_stats(W.hub, &st);
  assert_true(st.resumed >= 1);
}

/* A client that stops reading (small receive buffer) is dropped once its unwritten output passes
 * client_max_queue; the others receive everything, before and after. */
static void test_slow_client_dropped(void **state) {
  (void)state;
  sclient *slow = sse_connect("*", NULL, 4096);
  hw_test_loop_run_for(&W.l, 100);
  slow->reading = 0;
  hw_sse_stats st0;
  hw_sse_hub_get_stats(W.hub, &st0);
  redisContext *r = redis_cli();
  /* batches as the daemon would publish them, for vehicles nobody scoped sees; new vehicles in
   * each (a large fleet), so that the hub's coalescing keeps them all */
  static char batch[60000];
  size_t n = 0;
  int lines = 0;
  hw_sse_stats st;
  int rounds = 0;
  for (; rounds < 3000; rounds++) {
    n = 0;
    lines = 0;
    while (n + 200 < sizeof batch) {
      n += (size_t)snprintf(batch + n, sizeof batch - n,
                            "%s{\"terminal_id\":\"flood%d_%d\",\"ts_ms\":1,\"lat\":1.0,\"lon\":1.0,"
                            "\"speed_kmh\":0.0,\"region\":\"990000\",\"enterprise\":null}",
                            n ? "\n" : "", rounds, lines);
      lines++;
    }
    redisReply *rep = redisCommand(r, "PUBLISH %s %b", HW_POSITIONS_REDIS_CHANNEL, batch, n);
    freeReplyObject(rep);
    hw_test_loop_run_for(&W.l, 10);
    hw_sse_hub_get_stats(W.hub, &st);
    if (st.dropped_slow > st0.dropped_slow)
      break;
  }
  assert_int_equal(st.dropped_slow, st0.dropped_slow + 1);
  printf("sse: a client that stopped reading was dropped after %d Redis messages of %d vehicles "
         "(%zu bytes each; %llu bytes written by the hub meanwhile); client_max_queue 256 KiB\n",
         rounds + 1, lines, n, (unsigned long long)(st.bytes_written - st0.bytes_written));
  redisFree(r);
  /* the others go on */
  send_fix(0, 30);
  send_fix(1, 30);
  wait_events(all, "positions", "flood0_0", 1);
  wait_latest(nj, "sse_a", 30);
  wait_latest(bj, "sse_b", 30);
  hw_sse_hub_get_stats(W.hub, &st);
  assert_int_equal(st.dropped_slow, st0.dropped_slow + 1); /* only the one that stopped */
  sse_close(slow);
}

static void test_hundred_clients_cost_daemon_nothing(void **state) {
  (void)state;
  redisContext *r = redis_cli();
  sclient *many[100];
  for (int i = 0; i < 100; i++)
    many[i] = sse_connect(i % 2 ? "320000" : "*", NULL, 0);
  hw_test_loop_run_for(&W.l, 200);
  hw_sse_stats st;
  hw_sse_hub_get_stats(W.hub, &st);
  assert_true(st.clients >= 103);
  /* one subscriber in Redis for the whole web process, whatever the number of browsers */
  assert_int_equal(pubsub_numsub(r, HW_POSITIONS_REDIS_CHANNEL), 1);
  assert_int_equal(pubsub_numsub(r, "hw:violations"), 1);
  long long pub0 = redis_publish_calls(r);
  send_fix(0, 40);
  for (int i = 0; i < 100; i++)
    wait_latest(many[i], "sse_a", 40);
  long long pub1 = redis_publish_calls(r);
  /* the daemon published this fix once (one batch), not once per browser */
  assert_true(pub1 - pub0 >= 1 && pub1 - pub0 <= 2);
  printf("sse: 100 clients got the event; the daemon sent %lld PUBLISH for it\n", pub1 - pub0);
  for (int i = 0; i < 100; i++)
    sse_close(many[i]);
  (void)redis_int;
  redisFree(r);
}

/* With the rules off the daemon still names each vehicle's region in what it publishes (the
 * registry is loaded for the live feed alone), so a region-scoped user still sees its vehicles:
 * the region-less event of an unbound vehicle would be filtered out of its feed. Last: it
 * replaces the daemon. */
static void test_rules_off_still_scoped(void **state) {
  (void)state;
  assert_int_equal(hw_test_stop_pid(env.daemon_pid), 0);
  env.daemon_pid = 0;
  for (int k = 0; k < 3; k++) {
    pbc_close(trucks[k]);
    trucks[k] = NULL;
  }
  const char *argv[] = {"serve",          "--listen", env.listen_addr, "--pg", env.conninfo,
                        "--redis",        env.redis_addr, "--batch-ms", "20",
                        "--redis-flush-ms", "100",  "--rules=off", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  assert_int_equal(hw_test_wait_port(env.port, 15000), 0);
  trucks[0] = hw_test_pb_login(env.port, tids[0], tokens[0]);
  assert_non_null(trucks[0]);
  sclient *city = sse_connect("320100", NULL, 0);
  hw_test_loop_run_for(&W.l, 100);
  /* The registry loads once the loop runs; fixes before that publish no region. */
  int seen = 0;
  for (int i = 0; i < 50 && !seen; i++) {
    send_fix(0, 100 + i);
    hw_test_loop_run_for(&W.l, 200);
    evlist l;
    parse(city, &l);
    seen = count_of(&l, "positions", "sse_a") > 0; /* the city's filter took it: region 320102 */
    evlist_free(&l);
  }
  assert_true(seen);
  sse_close(city);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_positions_scoped),
      cmocka_unit_test(test_violation_scoped),
      cmocka_unit_test(test_resume),
      cmocka_unit_test(test_slow_client_dropped),
      cmocka_unit_test(test_hundred_clients_cost_daemon_nothing),
      cmocka_unit_test(test_rules_off_still_scoped),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
