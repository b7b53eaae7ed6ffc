/* libFuzzer target for the HTTP request path (http/http_server.c and llhttp behind it), on a
 * connection without a socket (hw_http_test_conn).
 *
 * Input: byte 0 picks the size of the reads the rest is cut into; the rest is what a client
 * sends. Routes: an echo of everything parsed (method, path, query, a {param}, a header, the
 * body), the same on a route taking a larger body than the server's (/big/{id}, like the web
 * process's admin imports: its own limit, one such body held at a time), a handler that answers only after the read that completed its request (an async
 * handler), and a chunked stream. Beyond "no crash, no leak, no sanitizer report", oracles abort
 * on a wrong answer:
 *   - the bytes written back are the same whether the input comes whole or cut into reads;
 *   - they are a sequence of responses, each starting "HTTP/1.1 " with a known status;
 *   - a closed connection takes no more input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "http/http_server.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

typedef struct out {
  uint8_t *buf; /* owned */
  size_t len, cap;
} out;

static void sink(void *arg, const uint8_t *d, size_t n) {
  out *o = arg;
  if (o->len + n > o->cap) {
    size_t cap = (o->len + n) * 2 + 256;
    uint8_t *nb = realloc(o->buf, cap);
    CHECK(nb);
    o->buf = nb;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, d, n);
  o->len += n;
}

static hw_http_req *held;

static void on_abort(hw_http_req *req, void *arg) { held = NULL; }

static void h_echo(hw_http_req *req, void *arg) {
  size_t blen;
  const uint8_t *b = hw_http_body(req, &blen);
  const char *id = hw_http_param(req, "id"), *x = hw_http_header(req, "x-test");
  char head[256];
  int n = snprintf(head, sizeof head, "%s %.64s %.64s %.32s %.32s ", hw_http_method(req),
                   hw_http_path(req), hw_http_query(req), id ? id : "-", x ? x : "-");
  char *body = malloc((size_t)n + blen + 1);
  CHECK(body);
  memcpy(body, head, (size_t)n);
  memcpy(body + n, b, blen);
  (void)hw_http_respond(req, 200, "text/plain", body, (size_t)n + blen);
  free(body);
}

static void h_later(hw_http_req *req, void *arg) {
  held = req;
  hw_http_on_abort(req, on_abort, NULL);
}

static void h_stream(hw_http_req *req, void *arg) {
  if (hw_http_stream_begin(req, 200, "text/event-stream", HW_HTTP_CHUNKED))
    return;
  if (hw_http_stream_write(req, "data: x\n\n", 9))
    return;
  (void)hw_http_stream_end(req);
}

static const hw_http_route routes[] = {
    {"GET", "/v/{id}", h_echo, NULL, 0},
    {"POST", "/v/{id}", h_echo, NULL, 0},
    {"GET", "/later", h_later, NULL, 0},
    {"GET", "/stream", h_stream, NULL, 0},
    {"POST", "/big/{id}", h_echo, NULL, 16384},
};

static uv_loop_t loop;

static void answer_held(void) {
  if (held) {
    hw_http_req *r = held;
    held = NULL;
    (void)hw_http_respond(r, 202, NULL, NULL, 0);
  }
}

static void run(const uint8_t *d, size_t n, size_t piece, out *o) {
  hw_http_config cfg;
  hw_http_config_default(&cfg);
  cfg.max_head = 1024;
  cfg.max_headers = 16;
  cfg.max_body = 4096;
  cfg.max_large_bodies = 1;
  hw_http_server *srv;
  hw_http_test_conn *c;
  CHECK(hw_http_server_init(&srv, &loop, &cfg, routes, sizeof routes / sizeof routes[0]) == 0);
  CHECK(hw_http_test_conn_new(srv, sink, o, &c) == 0);
  held = NULL;
  size_t off = 0;
  while (off < n) {
    size_t want = n - off < piece ? n - off : piece;
    size_t took = hw_http_test_feed(c, d + off, want);
    answer_held(); /* the async handler answers after the read that completed its request */
    if (hw_http_test_closed(c)) {
      CHECK(hw_http_test_feed(c, (const uint8_t *)"G", 1) == 0);
      break;
    }
    if (took == 0 && !held)
      CHECK(took > 0 || want == 0); /* with nothing held there is always room */
    off += took;
  }
  /* Answering a held request lets the connection parse what it buffered behind it, which may
   * hold the next one: answer until none is held, as the loop above does for a cut input, or
   * the whole input would end on a request the cut one answers. */
  while (held)
    answer_held();
  hw_http_server_close(srv, NULL, NULL);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
}

static int known_status(int s) {
  return s == 200 || s == 202 || s == 400 || s == 404 || s == 405 || s == 413 || s == 414 ||
         s == 431;
}

/* Walks the output: every response head starts "HTTP/1.1 NNN "; bodies are skipped by their
 * Content-Length or their chunks. */
static void check_responses(const out *o) {
  size_t p = 0;
  while (p < o->len) {
    CHECK(o->len - p > 13 && !memcmp(o->buf + p, "HTTP/1.1 ", 9));
    int s = (o->buf[p + 9] - '0') * 100 + (o->buf[p + 10] - '0') * 10 + (o->buf[p + 11] - '0');
    CHECK(known_status(s));
    const uint8_t *end = memmem(o->buf + p, o->len - p, "\r\n\r\n", 4);
    CHECK(end);
    size_t head_len = (size_t)(end - (o->buf + p)) + 4;
    char head[4096];
    CHECK(head_len < sizeof head);
    memcpy(head, o->buf + p, head_len);
    head[head_len] = 0;
    p += head_len;
    const char *cl = strstr(head, "Content-Length: ");
    if (cl) {
      size_t body = (size_t)strtoul(cl + 16, NULL, 10);
      /* An answer to HEAD has the length and no body: the next response follows at once (no
       * body here starts so: the echo starts with the method, errors with '{'). */
      if (p == o->len || (o->len - p >= 9 && !memcmp(o->buf + p, "HTTP/1.1 ", 9)))
        continue;
      CHECK(o->len - p >= body);
      p += body;
      continue;
    }
    if (!strstr(head, "Transfer-Encoding: chunked\r\n")) {
      /* a stream to an HTTP/1.0 client: the body runs until the connection closes */
      CHECK(strstr(head, "Connection: close\r\n"));
      return;
    }
    for (;;) {
      unsigned long sz = strtoul((const char *)o->buf + p, NULL, 16);
      const uint8_t *eol = memmem(o->buf + p, o->len - p, "\r\n", 2);
      CHECK(eol);
      p = (size_t)(eol - o->buf) + 2 + sz + 2;
      CHECK(p <= o->len);
      if (sz == 0)
        break;
    }
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  hw_log_min_level = (hw_log_level)(HW_LOG_ERROR + 1); /* the per-request warnings would drown the fuzzer */
  CHECK(uv_loop_init(&loop) == 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t piece = 1 + data[0] % 64;
  out whole = {0}, cut = {0};
  run(data + 1, size - 1, size, &whole);
  run(data + 1, size - 1, piece, &cut);
  CHECK(whole.len == cut.len && (whole.len == 0 || !memcmp(whole.buf, cut.buf, whole.len)));
  check_responses(&whole);
  free(whole.buf);
  free(cut.buf);
  return 0;
}
