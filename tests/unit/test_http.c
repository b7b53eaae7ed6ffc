/* The HTTP layer (http/http_server.h): parsing split anywhere, limits, routing, pipelining in
 * order, keep-alive, streaming, and on real sockets the timeouts, the connection cap, and a bad
 * client that does not disturb a good one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>

#include "http/http_server.h"

/* --- handlers ----------------------------------------------------------------------------------- */

static hw_http_req *held; /* a request whose handler answers later */

static void h_echo(hw_http_req *req, void *arg) {
  char out[1024];
  size_t blen;
  const uint8_t *b = hw_http_body(req, &blen);
  const char *id = hw_http_param(req, "id");
  const char *x = hw_http_header(req, "x-test");
  int n = snprintf(out, sizeof out, "M=%s P=%s Q=%s id=%s X=%s B=%.*s", hw_http_method(req),
                   hw_http_path(req), hw_http_query(req), id ? id : "-", x ? x : "-", (int)blen,
                   (const char *)b);
  assert_int_equal(hw_http_respond(req, 200, "text/plain", out, (size_t)n), 0);
}

static void h_slow(hw_http_req *req, void *arg) { held = req; }

static void h_rest(hw_http_req *req, void *arg) {
  char out[256];
  int n = snprintf(out, sizeof out, "REST=[%s]", hw_http_param(req, "*"));
  assert_int_equal(hw_http_respond(req, 200, "text/plain", out, (size_t)n), 0);
}

static void h_stream(hw_http_req *req, void *arg) {
  assert_int_equal(hw_http_stream_begin(req, 200, "text/event-stream", HW_HTTP_CHUNKED), 0);
  assert_int_equal(hw_http_stream_write(req, "data: 1\n\n", 9), 0);
  assert_int_equal(hw_http_stream_write(req, "data: 22\n\n", 10), 0);
  assert_int_equal(hw_http_stream_end(req), 0);
}

static const hw_http_route routes[] = {
    {"GET", "/v/{id}/track", h_echo, NULL, 0},
    {"POST", "/v/{id}/track", h_echo, NULL, 0},
    {"GET", "/slow", h_slow, NULL, 0},
    {"GET", "/stream", h_stream, NULL, 0},
    {"GET", "/", h_echo, NULL, 0},
    {"GET", "/files/*", h_rest, NULL, 0},
    {"POST", "/big", h_echo, NULL, 65536},
};

/* --- a connection without a socket ------------------------------------------------------------ */

typedef struct out_buf {
  char data[65536];
  size_t len;
} out_buf;

static void sink(void *arg, const uint8_t *d, size_t n) {
  out_buf *o = arg;
  assert_true(o->len + n < sizeof o->data);
  memcpy(o->data + o->len, d, n);
  o->len += n;
  o->data[o->len] = 0;
}

typedef struct tconn {
  uv_loop_t loop;
  hw_http_server *srv;
  hw_http_test_conn *c;
  out_buf out;
} tconn;

static void tconn_open(tconn *t, const hw_http_config *cfg) {
  memset(&t->out, 0, sizeof t->out);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  assert_int_equal(hw_http_server_init(&t->srv, &t->loop, cfg, routes, sizeof routes / sizeof routes[0]), 0);
  assert_int_equal(hw_http_test_conn_new(t->srv, sink, &t->out, &t->c), 0);
}

static void tconn_close(tconn *t) {
  hw_http_server_close(t->srv, NULL, NULL);
  assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&t->loop), 0);
}

static void feed(tconn *t, const char *s, size_t n) {
  assert_int_equal(hw_http_test_feed(t->c, (const uint8_t *)s, n), n);
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static const char req_post[] =
    "POST /v/TRUCK%2001/track?from=1&to=2 HTTP/1.1\r\n"
    "Host: example\r\n"
    "X-Test: some value\r\n"
    "Content-Length: 11\r\n"
    "\r\n"
    "hello world";
static const char want_body[] =
    "M=POST P=/v/TRUCK%2001/track Q=from=1&to=2 id=TRUCK%2001 X=some value B=hello world";

static void test_split_at_every_offset(void **state) {
  size_t len = strlen(req_post);
  char want[512];
  snprintf(want, sizeof want,
           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
           "Connection: keep-alive\r\n\r\n%s", strlen(want_body), want_body);
  for (size_t i = 0; i <= len; i++) {
    tconn t;
    tconn_open(&t, NULL);
    feed(&t, req_post, i);
    if (i < len)
      assert_int_equal(t.out.len, 0); /* nothing answered before the last byte */
    feed(&t, req_post + i, len - i);
    if (strcmp(t.out.data, want))
      fail_msg("split at %zu: got\n%s", i, t.out.data);
    assert_false(hw_http_test_closed(t.c));
    tconn_close(&t);
  }
  /* one byte at a time */
  tconn t;
  tconn_open(&t, NULL);
  for (size_t i = 0; i < len; i++)
    feed(&t, req_post + i, 1);
  assert_string_equal(t.out.data, want);
  tconn_close(&t);
}

static void test_pipelined_in_order(void **state) {
  tconn t;
  tconn_open(&t, NULL);
  held = NULL;
  const char reqs[] = "GET /v/a/track HTTP/1.1\r\n\r\n"
                      "GET /slow HTTP/1.1\r\n\r\n"
                      "GET /v/c/track HTTP/1.1\r\n\r\n";
  feed(&t, reqs, strlen(reqs));
  /* the first is answered; the third waits behind the second's handler */
  assert_int_equal(count(t.out.data, "HTTP/1.1 200"), 1);
  assert_non_null(strstr(t.out.data, "id=a"));
  assert_null(strstr(t.out.data, "id=c"));
  assert_non_null(held);
  assert_string_equal(hw_http_path(held), "/slow");
  assert_int_equal(hw_http_respond(held, 202, "text/plain", "later", 5), 0);
  held = NULL;
  assert_int_equal(count(t.out.data, "HTTP/1.1 "), 3);
  char *a = strstr(t.out.data, "id=a"), *b = strstr(t.out.data, "later"),
       *c = strstr(t.out.data, "id=c");
  assert_true(a && b && c && a < b && b < c);
  assert_false(hw_http_test_closed(t.c));
  tconn_close(&t);
}

typedef struct bad_case {
  const char *req;
  const char *status;
} bad_case;

static void test_bad_requests_answered_and_closed(void **state) {
  hw_http_config cfg;
  hw_http_config_default(&cfg);
  cfg.max_head = 512;
  cfg.max_headers = 8;
  cfg.max_body = 16;
  char big_header[1024], long_url[1024], many[1024];
  snprintf(big_header, sizeof big_header, "GET / HTTP/1.1\r\nX-Big: %0600d\r\n\r\n", 1);
  snprintf(long_url, sizeof long_url, "GET /%0600d HTTP/1.1\r\n\r\n", 1);
  size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
  for (int i = 0; i < 9; i++)
    n += (size_t)snprintf(many + n, sizeof many - n, "X-%d: v\r\n", i);
  snprintf(many + n, sizeof many - n, "\r\n");
  char blank_lines[1024];
  memset(blank_lines, ' ', 700); /* whitespace counts against the head too */
  memcpy(blank_lines, "GET / HTTP/1.1\r\nX: ", 19);
  blank_lines[700] = 0;
  const bad_case cases[] = {
      {"BLAH\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nBad(Name): x\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", "400"},
      {"GET / HTTP/9.9\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "400"},
      {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"},
      {big_header, "431"},
      {many, "431"},
      {long_url, "414"},
      {blank_lines, "431"},
      {"POST /v/a/track HTTP/1.1\r\nContent-Length: 17\r\n\r\n", "413"},
      {"POST /v/a/track HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
       "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", "413"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tconn t;
    tconn_open(&t, &cfg);
    size_t len = strlen(cases[i].req);
    size_t taken = hw_http_test_feed(t.c, (const uint8_t *)cases[i].req, len);
    assert_true(taken > 0);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %s ", cases[i].status);
    if (strncmp(t.out.data, want, strlen(want)))
      fail_msg("case %zu: want %s, got\n%s", i, cases[i].status, t.out.data);
    assert_non_null(strstr(t.out.data, "Connection: close\r\n"));
    assert_non_null(strstr(t.out.data, "application/json"));
    assert_non_null(strstr(t.out.data, "{\"error\":"));
    assert_true(hw_http_test_closed(t.c));
    /* a closed connection takes nothing more */
    assert_int_equal(hw_http_test_feed(t.c, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18), 0);
    tconn_close(&t);
  }
}

/* A route's own body limit (hw_http_route.max_body) holds for that route alone, decided from
 * the request line before the body is read, and bodies above the server's max_body are bounded
 * in number (max_large_bodies): one more is refused with 503 while they are held. */
static void test_route_body_limit(void **state) {
  hw_http_config cfg;
  hw_http_config_default(&cfg);
  cfg.max_body = 16;
  cfg.max_large_bodies = 1;
  char body[200], req[512];
  memset(body, 'x', 100);
  body[100] = 0;
  tconn t;
  tconn_open(&t, &cfg);
  int n = snprintf(req, sizeof req, "POST /big?q=1 HTTP/1.1\r\nContent-Length: 100\r\n\r\n%s", body);
  feed(&t, req, (size_t)n);
  assert_int_equal(strncmp(t.out.data, "HTTP/1.1 200 ", 13), 0);
  assert_non_null(strstr(t.out.data, body));
  tconn_close(&t);

  const struct { const char *req; const char *status; } over[] = {
      {"POST /big HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", "413"},
      {"POST /v/a/track HTTP/1.1\r\nContent-Length: 17\r\n\r\n", "413"},
      {"GET /big HTTP/1.1\r\nContent-Length: 17\r\n\r\n", "413"}, /* POST's limit only */
  };
  for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
    tconn_open(&t, &cfg);
    feed(&t, over[i].req, strlen(over[i].req));
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %s ", over[i].status);
    if (strncmp(t.out.data, want, strlen(want)))
      fail_msg("case %zu: want %s, got\n%s", i, over[i].status, t.out.data);
    tconn_close(&t);
  }

  /* a holds the one large body (half sent); b's is refused; once a is done, c's is taken */
  tconn_open(&t, &cfg);
  out_buf *ob = calloc(1, sizeof *ob), *oc = calloc(1, sizeof *oc);
  hw_http_test_conn *b, *c;
  assert_int_equal(hw_http_test_conn_new(t.srv, sink, ob, &b), 0);
  assert_int_equal(hw_http_test_conn_new(t.srv, sink, oc, &c), 0);
  n = snprintf(req, sizeof req, "POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\n%.50s", body);
  feed(&t, req, (size_t)n);
  assert_int_equal(t.out.len, 0);
  n = snprintf(req, sizeof req, "POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\n%s", body);
  assert_true(hw_http_test_feed(b, (const uint8_t *)req, (size_t)n) > 0);
  assert_int_equal(strncmp(ob->data, "HTTP/1.1 503 ", 13), 0);
  assert_true(hw_http_test_closed(b));
  feed(&t, body, 50);
  assert_int_equal(strncmp(t.out.data, "HTTP/1.1 200 ", 13), 0);
  assert_int_equal(hw_http_test_feed(c, (const uint8_t *)req, (size_t)n), (size_t)n);
  assert_int_equal(strncmp(oc->data, "HTTP/1.1 200 ", 13), 0);
  hw_http_stats st;
  hw_http_server_get_stats(t.srv, &st);
  assert_int_equal(st.large_refused, 1);
  tconn_close(&t);
  free(ob);
  free(oc);
}

static void test_routing(void **state) {
  tconn t;
  tconn_open(&t, NULL);
  const char reqs[] = "GET /nope HTTP/1.1\r\n\r\n"
                      "DELETE /v/x/track HTTP/1.1\r\n\r\n"
                      "GET /v//track HTTP/1.1\r\n\r\n"
                      "HEAD /v/x/track HTTP/1.1\r\n\r\n"
                      "GET / HTTP/1.1\r\n\r\n";
  feed(&t, reqs, strlen(reqs));
  const char *p = t.out.data;
  assert_true(!strncmp(p, "HTTP/1.1 404 ", 13));
  p = strstr(p + 1, "HTTP/1.1 ");
  assert_true(!strncmp(p, "HTTP/1.1 405 ", 13));
  const char *allow = strstr(p, "Allow: GET, POST\r\n");
  assert_non_null(allow);
  p = strstr(p + 1, "HTTP/1.1 ");
  assert_true(!strncmp(p, "HTTP/1.1 404 ", 13)); /* an empty {id} does not match */
  p = strstr(p + 1, "HTTP/1.1 ");
  assert_true(!strncmp(p, "HTTP/1.1 200 ", 13)); /* HEAD: a GET route, no body */
  const char *next = strstr(p + 1, "HTTP/1.1 ");
  assert_non_null(next);
  assert_null(memmem(p, (size_t)(next - p), "M=", 2));
  assert_non_null(memmem(p, (size_t)(next - p), "Content-Length: ", 16));
  assert_true(!strncmp(next, "HTTP/1.1 200 ", 13));
  assert_non_null(strstr(next, "P=/ Q= id=-"));
  assert_false(hw_http_test_closed(t.c));
  tconn_close(&t);
}

/* A trailing '*' takes the rest of the path, slashes included, and may be empty. */
static void test_routing_rest(void **state) {
  tconn t;
  tconn_open(&t, NULL);
  const char reqs[] = "GET /files/a/b.js?x=1 HTTP/1.1\r\n\r\n"
                      "GET /files/ HTTP/1.1\r\n\r\n"
                      "GET /files HTTP/1.1\r\n\r\n";
  feed(&t, reqs, strlen(reqs));
  const char *p = strstr(t.out.data, "REST=[a/b.js]");
  assert_non_null(p);
  p = strstr(p, "REST=[]");
  assert_non_null(p);
  p = strstr(p, "HTTP/1.1 ");
  assert_true(!strncmp(p, "HTTP/1.1 404 ", 13));
  tconn_close(&t);
}

static void test_keep_alive_rules(void **state) {
  /* HTTP/1.0 without keep-alive: answered, then closed */
  tconn t;
  tconn_open(&t, NULL);
  const char r10[] = "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n";
  feed(&t, r10, strlen(r10));
  assert_int_equal(count(t.out.data, "HTTP/1.1 200"), 1);
  assert_non_null(strstr(t.out.data, "Connection: close\r\n"));
  assert_true(hw_http_test_closed(t.c));
  tconn_close(&t);
  /* HTTP/1.0 asking for keep-alive, then HTTP/1.1 with Connection: close */
  tconn_open(&t, NULL);
  const char r[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                   "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n";
  feed(&t, r, strlen(r));
  assert_int_equal(count(t.out.data, "HTTP/1.1 200"), 2);
  assert_int_equal(count(t.out.data, "Connection: keep-alive\r\n"), 1);
  assert_int_equal(count(t.out.data, "Connection: close\r\n"), 1);
  assert_true(hw_http_test_closed(t.c));
  tconn_close(&t);
}

static void test_stream_chunked_then_next(void **state) {
  tconn t;
  tconn_open(&t, NULL);
  const char r[] = "GET /stream HTTP/1.1\r\n\r\nGET /v/z/track HTTP/1.1\r\n\r\n";
  feed(&t, r, strlen(r));
  const char *s = strstr(t.out.data, "Transfer-Encoding: chunked\r\n");
  assert_non_null(s);
  assert_null(strstr(t.out.data, "Content-Length: 0")); /* chunked carries no length */
  const char *body = strstr(s, "\r\n\r\n") + 4;
  assert_true(!strncmp(body, "9\r\ndata: 1\n\n\r\na\r\ndata: 22\n\n\r\n0\r\n\r\nHTTP/1.1 200 ", 44));
  assert_non_null(strstr(body, "id=z"));
  tconn_close(&t);
}

static void abort_cb(hw_http_req *req, void *arg) { (*(int *)arg)++; }

static void test_abort_on_close(void **state) {
  tconn t;
  tconn_open(&t, NULL);
  held = NULL;
  feed(&t, "GET /slow HTTP/1.1\r\n\r\n", 22);
  assert_non_null(held);
  int aborted = 0;
  hw_http_on_abort(held, abort_cb, &aborted);
  tconn_close(&t); /* the server closes with the request still held */
  assert_int_equal(aborted, 1);
  held = NULL;
}

static void test_add_header(void **state) {
  tconn t;
  tconn_open(&t, NULL);
  held = NULL;
  feed(&t, "GET /slow HTTP/1.1\r\n\r\n", 22);
  assert_non_null(held);
  assert_int_equal(hw_http_add_header(held, "X-A", "1"), 0);
  assert_int_equal(hw_http_add_header(held, "X-B", "bad\r\nInjected: 1"), -EINVAL);
  assert_int_equal(hw_http_add_header(held, "Content-Length", "3"), -EINVAL);
  assert_int_equal(hw_http_respond(held, 204, NULL, NULL, 0), 0);
  held = NULL;
  assert_non_null(strstr(t.out.data, "HTTP/1.1 204 No Content\r\nX-A: 1\r\nConnection: keep-alive\r\n\r\n"));
  assert_null(strstr(t.out.data, "Injected"));
  tconn_close(&t);
}

/* --- real sockets ------------------------------------------------------------------------------ */

typedef struct sock_test {
  uv_loop_t loop;
  hw_http_server *srv;
  int port;
  volatile int done;
  uv_timer_t poll;
  hw_http_stats final; /* the server's stats when the clients were done */
} sock_test;

static void on_poll(uv_timer_t *t) {
  sock_test *s = t->data;
  if (s->done) {
    uv_timer_stop(t);
    hw_http_server_get_stats(s->srv, &s->final);
    hw_http_server_close(s->srv, NULL, NULL);
    uv_close((uv_handle_t *)t, NULL);
  }
}

static void sock_start(sock_test *s, const hw_http_config *cfg) {
  memset(s, 0, sizeof *s);
  assert_int_equal(uv_loop_init(&s->loop), 0);
  assert_int_equal(hw_http_server_init(&s->srv, &s->loop, cfg, routes, sizeof routes / sizeof routes[0]), 0);
  assert_int_equal(hw_http_server_listen(s->srv, "127.0.0.1:0"), 0);
  s->port = hw_http_server_port(s->srv);
  assert_true(s->port > 0);
  uv_timer_init(&s->loop, &s->poll);
  s->poll.data = s;
  uv_timer_start(&s->poll, on_poll, 5, 5);
}

static int cli_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void cli_send(int fd, const char *s) {
  assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Reads until EOF (returns 1) or until want appears (returns 0); -1 on timeout. */
static int cli_read(int fd, char *buf, size_t cap, const char *want) {
  size_t len = 0;
  buf[0] = 0;
  for (;;) {
    if (want && strstr(buf, want))
      return 0;
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n == 0)
      return 1;
    if (n < 0)
      return -1;
    len += (size_t)n;
    buf[len] = 0;
  }
}

typedef struct client_job {
  sock_test *s;
  void (*fn)(struct client_job *);
  int failed;
  char why[256];
} client_job;

static void client_thread(void *arg) {
  client_job *j = arg;
  j->fn(j);
  j->s->done = 1;
}

static void run_clients(sock_test *s, client_job *j) {
  uv_thread_t th;
  j->s = s;
  assert_int_equal(uv_thread_create(&th, client_thread, j), 0);
  assert_int_equal(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
  uv_thread_join(&th);
  assert_int_equal(uv_loop_close(&s->loop), 0);
  if (j->failed)
    fail_msg("%s", j->why);
}

#define CHECK(j, cond)                                                                   \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      snprintf((j)->why, sizeof (j)->why, "line %d: %s", __LINE__, #cond);               \
      (j)->failed = 1;                                                                   \
      return;                                                                            \
    }                                                                                    \
  } while (0)

static void job_timeouts(client_job *j) {
  char buf[4096];
  /* slow client: half a request, then nothing: 408 within the request timeout, then closed */
  int slow = cli_connect(j->s->port);
  cli_send(slow, "GET / HTTP/1.1\r\nHost: x\r\n");
  /* meanwhile another client is served at once */
  int good = cli_connect(j->s->port);
  cli_send(good, "GET /v/ok/track HTTP/1.1\r\n\r\n");
  CHECK(j, cli_read(good, buf, sizeof buf, "id=ok") == 0);
  CHECK(j, cli_read(slow, buf, sizeof buf, NULL) == 1);
  CHECK(j, strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
  close(slow);
  /* idle keep-alive: the good connection is closed after idle_timeout, without a response */
  CHECK(j, cli_read(good, buf, sizeof buf, NULL) == 1);
  CHECK(j, buf[0] == 0);
  close(good);
}

static void test_socket_timeouts(void **state) {
  hw_http_config cfg;
  hw_http_config_default(&cfg);
  cfg.request_timeout_ms = 200;
  cfg.idle_timeout_ms = 400;
  sock_test s;
  sock_start(&s, &cfg);
  client_job j = {.fn = job_timeouts};
  run_clients(&s, &j);
}

static void job_cap(client_job *j) {
  char buf[4096];
  int a = cli_connect(j->s->port), b = cli_connect(j->s->port);
  /* both served (and so both accepted before the third) */
  cli_send(a, "GET /v/a/track HTTP/1.1\r\n\r\n");
  CHECK(j, cli_read(a, buf, sizeof buf, "id=a") == 0);
  cli_send(b, "GET /v/b/track HTTP/1.1\r\n\r\n");
  CHECK(j, cli_read(b, buf, sizeof buf, "id=b") == 0);
  int c = cli_connect(j->s->port); /* over the cap: closed at once */
  cli_send(c, "GET / HTTP/1.1\r\n\r\n");
  CHECK(j, cli_read(c, buf, sizeof buf, NULL) != 0);
  CHECK(j, strstr(buf, "HTTP/1.1 200") == NULL);
  close(c);
  /* the first two still work; a bad request on one does not disturb the other */
  cli_send(a, "\x01\x02garbage\r\n\r\n");
  CHECK(j, cli_read(a, buf, sizeof buf, NULL) == 1);
  CHECK(j, strncmp(buf, "HTTP/1.1 400 ", 13) == 0);
  cli_send(b, "GET /v/b2/track HTTP/1.1\r\n\r\n");
  CHECK(j, cli_read(b, buf, sizeof buf, "id=b2") == 0);
  close(a);
  close(b);
}

static void test_socket_cap_and_isolation(void **state) {
  hw_http_config cfg;
  hw_http_config_default(&cfg);
  cfg.max_connections = 2;
  sock_test s;
  sock_start(&s, &cfg);
  client_job j = {.fn = job_cap};
  run_clients(&s, &j);
  assert_int_equal(s.final.refused_cap, 1);
  assert_int_equal(s.final.bad_requests, 1);
  assert_true(s.final.responses[2] >= 3);
}

static void job_pipeline(client_job *j) {
  char buf[8192];
  int a = cli_connect(j->s->port);
  /* three requests in one write, the last closing: three answers in order, then EOF */
  cli_send(a, "GET /v/1/track HTTP/1.1\r\n\r\nGET /stream HTTP/1.1\r\n\r\n"
              "GET /v/3/track HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(j, cli_read(a, buf, sizeof buf, NULL) == 1);
  char *p1 = strstr(buf, "id=1"), *p2 = strstr(buf, "data: 22"), *p3 = strstr(buf, "id=3");
  CHECK(j, p1 && p2 && p3 && p1 < p2 && p2 < p3);
  close(a);
  /* a request followed by the client's half-close is still answered */
  int b = cli_connect(j->s->port);
  cli_send(b, "GET /v/4/track HTTP/1.1\r\n\r\n");
  shutdown(b, SHUT_WR);
  CHECK(j, cli_read(b, buf, sizeof buf, NULL) == 1);
  CHECK(j, strstr(buf, "id=4") != NULL);
  close(b);
}

static void test_socket_pipeline(void **state) {
  sock_test s;
  sock_start(&s, NULL);
  client_job j = {.fn = job_pipeline};
  run_clients(&s, &j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_at_every_offset),
      cmocka_unit_test(test_pipelined_in_order),
      cmocka_unit_test(test_bad_requests_answered_and_closed),
      cmocka_unit_test(test_route_body_limit),
      cmocka_unit_test(test_routing),
      cmocka_unit_test(test_routing_rest),
      cmocka_unit_test(test_keep_alive_rules),
      cmocka_unit_test(test_stream_chunked_then_next),
      cmocka_unit_test(test_abort_on_close),
      cmocka_unit_test(test_add_header),
      cmocka_unit_test(test_socket_timeouts),
      cmocka_unit_test(test_socket_cap_and_isolation),
      cmocka_unit_test(test_socket_pipeline),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
