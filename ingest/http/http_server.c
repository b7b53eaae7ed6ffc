/* HTTP/1.1 server: see http_server.h. Per connection it owns one input buffer (HW_HTTP_IN_BUF
 * bytes: what was read and not yet parsed), one head arena (the request line and headers,
 * NUL-terminated pieces, bounded by max_head), the header index (max_headers entries) and the
 * body (max_body). Parsing is llhttp's; the parser pauses at the end of each request, so the
 * bytes of pipelined requests wait in the input buffer until the response to the current one has
 * ended: answers go out in order, and while the buffer is full nothing more is read. */
#include "http/http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "base/log.h"
#include "base/options.h"

#define HW_HTTP "http"
#define HW_HTTP_IN_BUF 16384
#define HW_HTTP_MAX_LISTENERS 4
#define HW_HTTP_MAX_EXTRA_HEADERS 16
#define HW_HTTP_EXTRA_HEADERS_BYTES 2048

typedef struct hw_http_conn hw_http_conn;

typedef struct hw_http_hdr {
  uint32_t name, value; /* offsets into the arena */
} hw_http_hdr;

struct hw_http_req {
  hw_http_conn *conn;
  char *arena;          /* owned by the connection: head pieces, then the path copy */
  size_t arena_len, arena_cap;
  uint32_t url;         /* arena offset of the URL */
  uint32_t path, query; /* arena offsets, set at dispatch */
  hw_http_hdr *hdrs;    /* owned by the connection: max_headers entries */
  uint32_t nhdrs;
  uint32_t piece;       /* arena offset where the piece being received began */
  int in_url;           /* receiving the URL (an overflow then is 414, not 431) */
  uint8_t *body;        /* owned by the connection, grown up to body_limit */
  size_t body_len, body_cap;
  uint32_t body_limit;  /* this request's: the route's max_body or the server's */
  int large;            /* holds one of max_large_bodies (the body grew above max_body) */
  const hw_http_route *route;
  const char *param_names[HW_HTTP_MAX_PARAMS]; /* into the route's pattern */
  size_t param_name_len[HW_HTTP_MAX_PARAMS];
  uint32_t param_val[HW_HTTP_MAX_PARAMS];      /* arena offsets */
  int nparams;
  int keep_alive, head_only, http10;
  /* response */
  int started, ended, chunked;
  char extra[HW_HTTP_EXTRA_HEADERS_BYTES]; /* "Name: value\r\n" lines added by the handler */
  size_t extra_len;
  int nextra;
  void (*abort_cb)(hw_http_req *, void *);
  void *abort_arg;
};

struct hw_http_conn {
  uv_tcp_t tcp; /* first: handle data points at the connection */
  uv_timer_t timer;
  hw_http_server *srv;
  hw_http_conn *prev, *next;
  llhttp_t parser;
  char peer[64];
  uint8_t in[HW_HTTP_IN_BUF]; /* unparsed input, [0, in_len) */
  size_t in_len;
  size_t head_bytes;  /* bytes of the current request's head parsed so far */
  int headers_done;   /* the current request's head is complete */
  int in_request;     /* a byte of the current request arrived: the request timeout runs */
  int busy;           /* the request is complete and with its handler */
  int processing;     /* conn_process is on the stack */
  int err_status;     /* set by a parser callback: the 4xx to answer */
  const char *err_msg;
  int eof;            /* the client will send nothing more */
  int reading, closing, close_after;
  int handles;        /* uv handles still to close before the memory goes */
  uint64_t write_queued;
  /* test connections: output to sink, no socket, no timers */
  int detached, detached_closed;
  void (*sink)(void *, const uint8_t *, size_t);
  void *sink_arg;
  hw_http_req req;
};

typedef struct hw_http_listener {
  uv_tcp_t tcp;
  hw_http_server *srv;
} hw_http_listener;

struct hw_http_server {
  uv_loop_t *loop;
  hw_http_config cfg;
  const hw_http_route *routes; /* borrowed */
  size_t nroutes;
  hw_http_listener listeners[HW_HTTP_MAX_LISTENERS];
  int nlisteners;
  int port;
  hw_http_conn *conns;
  hw_http_stats stats;
  uint64_t last_warn_ms; /* rate limit of the per-request warnings */
  uint64_t warn_suppressed;
  int closing;
  size_t live; /* listeners, socket connections and refused sockets not yet closed */
  uint32_t large_bodies; /* requests holding a body above cfg.max_body now */
  uint32_t route_body_max; /* the largest route max_body (0: none above cfg.max_body) */
  void (*done_cb)(void *);
  void *done_arg;
};

struct hw_http_test_conn {
  hw_http_conn c;
};

static void hw_http_conn_process(hw_http_conn *c);
static void hw_http_start_read(hw_http_conn *c);
static void hw_http_conn_close(hw_http_conn *c);
static void hw_http_conn_timer_update(hw_http_conn *c);

void hw_http_config_default(hw_http_config *cfg) {
  cfg->max_connections = HW_HTTP_DEF_MAX_CONNECTIONS;
  cfg->max_head = HW_HTTP_DEF_MAX_HEAD;
  cfg->max_headers = HW_HTTP_DEF_MAX_HEADERS;
  cfg->max_body = HW_HTTP_DEF_MAX_BODY;
  cfg->request_timeout_ms = HW_HTTP_DEF_REQUEST_TIMEOUT_MS;
  cfg->idle_timeout_ms = HW_HTTP_DEF_IDLE_TIMEOUT_MS;
  cfg->max_write_queue = HW_HTTP_DEF_MAX_WRITE_QUEUE;
  cfg->max_large_bodies = HW_HTTP_DEF_MAX_LARGE_BODIES;
}

/* Something whose close callback counts down srv->live closed; the last one after
 * hw_http_server_close frees the server and reports. */
static void hw_http_server_unref(hw_http_server *srv) {
  if (--srv->live > 0 || !srv->closing)
    return;
  void (*cb)(void *) = srv->done_cb;
  void *arg = srv->done_arg;
  free(srv);
  if (cb)
    cb(arg);
}

const char *hw_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

/* Per-request warnings (bad requests, timeouts) from hostile clients: at most one a second per
 * server, with the number suppressed since, so a flood cannot flood the log. */
static void hw_http_warn(hw_http_conn *c, const char *what, const char *detail) {
  hw_http_server *srv = c->srv;
  uint64_t now = uv_now(srv->loop);
  if (srv->last_warn_ms && now - srv->last_warn_ms < 1000) {
    srv->warn_suppressed++;
    return;
  }
  srv->last_warn_ms = now;
  hw_warn(HW_HTTP, NULL, "peer=%s %s: %s (%llu similar suppressed)", c->peer, what, detail,
          (unsigned long long)srv->warn_suppressed);
  srv->warn_suppressed = 0;
}

/* --- writing ---------------------------------------------------------------------------------- */

typedef struct hw_http_wreq {
  uv_write_t w;
  size_t len;
  char data[];
} hw_http_wreq;

/* After any write of c (copied or shared): a failed one closes, the last one of a response
 * that asked for it too. */
static void hw_http_write_done(hw_http_conn *c, int status) {
  if (status < 0) {
    if (status != UV_ECANCELED)
      hw_debug(HW_HTTP, NULL, "peer=%s write failed: %s", c->peer, uv_strerror(status));
    hw_http_conn_close(c);
    return;
  }
  if (c->close_after && c->write_queued == 0)
    hw_http_conn_close(c);
}

static void hw_http_on_write(uv_write_t *w, int status) {
  hw_http_wreq *wr = HW_CONTAINER_OF(w, hw_http_wreq, w);
  hw_http_conn *c = w->handle->data;
  c->write_queued -= wr->len;
  free(wr);
  hw_http_write_done(c, status);
}

/* Queues the parts (copied, in order) as one write. -EPIPE when the connection is closing or
 * the client does not read. */
static int hw_http_writev(hw_http_conn *c, const uv_buf_t *parts, size_t n) {
  if (c->closing)
    return -EPIPE;
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += parts[i].len;
  if (total == 0)
    return 0;
  if (c->detached) {
    for (size_t i = 0; i < n; i++)
      if (parts[i].len)
        c->sink(c->sink_arg, (const uint8_t *)parts[i].base, parts[i].len);
    return 0;
  }
  if (c->write_queued + total > c->srv->cfg.max_write_queue) {
    c->srv->stats.slow_readers++;
    hw_http_warn(c, "closed", "client does not read its responses");
    hw_http_conn_close(c);
    return -EPIPE;
  }
  hw_http_wreq *wr = malloc(sizeof *wr + total);
  if (!wr) {
    hw_http_conn_close(c);
    return -ENOMEM;
  }
  wr->len = total;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    if (parts[i].len)
      memcpy(wr->data + off, parts[i].base, parts[i].len);
    off += parts[i].len;
  }
  uv_buf_t b = uv_buf_init(wr->data, (unsigned)total);
  int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, hw_http_on_write);
  if (rc) {
    free(wr);
    hw_http_conn_close(c);
    return -EPIPE;
  }
  c->write_queued += total;
  return 0;
}

static int hw_http_write(hw_http_conn *c, const void *data, size_t len) {
  uv_buf_t part = uv_buf_init((char *)data, (unsigned)len);
  return hw_http_writev(c, &part, 1);
}

/* A write of bytes the caller shares between connections (the same SSE batch to every stream of
 * one scope): not copied; release(arg) once the kernel has them or the write failed. The chunk
 * head and tail travel in the request itself, so a chunk is one uv_write of up to three bufs. */
typedef struct hw_http_wref {
  uv_write_t w;
  size_t len; /* what write_queued counts */
  void (*release)(void *);
  void *arg;
  char head[20];
} hw_http_wref;

static void hw_http_on_write_ref(uv_write_t *w, int status) {
  hw_http_wref *wr = HW_CONTAINER_OF(w, hw_http_wref, w);
  hw_http_conn *c = w->handle->data;
  c->write_queued -= wr->len;
  wr->release(wr->arg);
  free(wr);
  hw_http_write_done(c, status);
}

/* head (may be empty), data, tail (may be empty) as one write; release(arg) exactly once. */
static int hw_http_write_ref(hw_http_conn *c, const char *head, size_t hlen, const void *data,
                             size_t len, const char *tail, size_t tlen, void (*release)(void *),
                             void *arg) {
  size_t total = hlen + len + tlen;
  if (c->closing) {
    release(arg);
    return -EPIPE;
  }
  if (c->detached) {
    if (hlen)
      c->sink(c->sink_arg, (const uint8_t *)head, hlen);
    c->sink(c->sink_arg, data, len);
    if (tlen)
      c->sink(c->sink_arg, (const uint8_t *)tail, tlen);
    release(arg);
    return 0;
  }
  if (c->write_queued + total > c->srv->cfg.max_write_queue) {
    release(arg);
    c->srv->stats.slow_readers++;
    hw_http_warn(c, "closed", "client does not read its responses");
    hw_http_conn_close(c);
    return -EPIPE;
  }
  hw_http_wref *wr = malloc(sizeof *wr);
  if (!wr) {
    release(arg);
    hw_http_conn_close(c);
    return -ENOMEM;
  }
  wr->len = total;
  wr->release = release;
  wr->arg = arg;
  uv_buf_t b[3];
  unsigned nb = 0;
  if (hlen) {
    memcpy(wr->head, head, hlen);
    b[nb++] = uv_buf_init(wr->head, (unsigned)hlen);
  }
  b[nb++] = uv_buf_init((char *)data, (unsigned)len);
  if (tlen)
    b[nb++] = uv_buf_init((char *)tail, (unsigned)tlen);
  int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, b, nb, hw_http_on_write_ref);
  if (rc) {
    free(wr);
    release(arg);
    hw_http_conn_close(c);
    return -EPIPE;
  }
  c->write_queued += total;
  return 0;
}

/* --- the request's lifetime ------------------------------------------------------------------- */

/* A large body's memory goes back at once (the connection keeps at most max_body for reuse)
 * and its place among max_large_bodies with it. */
static void hw_http_req_release_large(hw_http_conn *c) {
  hw_http_req *r = &c->req;
  if (r->large) {
    r->large = 0;
    c->srv->large_bodies--;
  }
  if (r->body_cap > c->srv->cfg.max_body) {
    free(r->body);
    r->body = NULL;
    r->body_cap = 0;
  }
}

static void hw_http_req_reset(hw_http_conn *c) {
  hw_http_req *r = &c->req;
  hw_http_req_release_large(c);
  r->body_limit = c->srv->cfg.max_body;
  r->arena_len = 0;
  r->nhdrs = 0;
  r->in_url = 0;
  r->body_len = 0;
  r->route = NULL;
  r->nparams = 0;
  r->keep_alive = r->head_only = r->http10 = 0;
  r->started = r->ended = r->chunked = 0;
  r->extra_len = 0;
  r->nextra = 0;
  r->abort_cb = NULL;
  r->abort_arg = NULL;
  c->head_bytes = 0;
  c->headers_done = 0;
  c->in_request = 0;
  c->err_status = 0;
  c->err_msg = NULL;
}

/* The response ended: the connection takes the next request, or closes. */
static void hw_http_req_finish(hw_http_req *r) {
  hw_http_conn *c = r->conn;
  r->ended = 1;
  if (!r->keep_alive || c->close_after) {
    c->close_after = 1;
    if (c->write_queued == 0 || c->detached)
      hw_http_conn_close(c);
    return;
  }
  c->busy = 0;
  hw_http_req_reset(c);
  if (!c->closing) {
    hw_http_conn_timer_update(c);
    if (!c->processing)
      hw_http_conn_process(c);
  }
}

static int hw_http_head_write(hw_http_req *r, int status, const char *ctype, const char *framing) {
  hw_http_conn *c = r->conn;
  char head[512 + HW_HTTP_EXTRA_HEADERS_BYTES];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s%s%s%s%.*sConnection: %s\r\n\r\n",
                   status, hw_http_reason(status), ctype ? "Content-Type: " : "",
                   ctype ? ctype : "", ctype ? "\r\n" : "", framing, (int)r->extra_len, r->extra,
                   r->keep_alive ? "keep-alive" : "close");
  if (n < 0 || (size_t)n >= sizeof head)
    return -E2BIG;
  r->started = 1;
  if (status >= 100 && status < 600)
    c->srv->stats.responses[status / 100]++;
  return hw_http_write(c, head, (size_t)n);
}

static int hw_http_valid_token(const char *s) {
  if (!*s)
    return 0;
  for (; *s; s++)
    if (*s == '\r' || *s == '\n' || *s == ':')
      return 0;
  return 1;
}

int hw_http_add_header(hw_http_req *r, const char *name, const char *value) {
  if (r->started || !hw_http_valid_token(name) || strpbrk(value, "\r\n"))
    return -EINVAL;
  if (!strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding") ||
      !strcasecmp(name, "Connection"))
    return -EINVAL;
  size_t need = strlen(name) + strlen(value) + 4;
  if (r->nextra >= HW_HTTP_MAX_EXTRA_HEADERS || r->extra_len + need > sizeof r->extra)
    return -E2BIG;
  r->extra_len += (size_t)snprintf(r->extra + r->extra_len, sizeof r->extra - r->extra_len,
                                   "%s: %s\r\n", name, value);
  r->nextra++;
  return 0;
}

int hw_http_respond(hw_http_req *r, int status, const char *ctype, const void *body, size_t len) {
  if (r->started || r->ended)
    return -EINVAL;
  hw_http_conn *c = r->conn;
  char framing[48] = "";
  /* 204 and 304 have no body and, for 204, no Content-Length (RFC 9110 8.6) */
  int bodiless = status == 204 || status == 304 || status < 200;
  if (!bodiless)
    snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", len);
  int rc = hw_http_head_write(r, status, bodiless ? NULL : ctype, framing);
  if (!rc && !r->head_only && !bodiless)
    rc = hw_http_write(c, body, len);
  if (c->closing) {
    r->ended = 1;
    return rc ? rc : -EPIPE;
  }
  hw_http_req_finish(r);
  return rc;
}

int hw_http_respond_error(hw_http_req *r, int status, const char *msg) {
  char body[256];
  /* msg is ours (never the client's bytes), so it needs no JSON escaping beyond this check */
  int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", strpbrk(msg, "\"\\") ? "error" : msg);
  if (n < 0 || (size_t)n >= sizeof body)
    n = snprintf(body, sizeof body, "{\"error\":\"error\"}\n");
  return hw_http_respond(r, status, "application/json", body, (size_t)n);
}

int hw_http_stream_begin(hw_http_req *r, int status, const char *ctype, hw_http_stream_mode mode) {
  if (r->started || r->ended)
    return -EINVAL;
  /* HTTP/1.0 has no chunked coding: the body then runs until the connection closes. */
  if (mode == HW_HTTP_CHUNKED && !r->http10) {
    r->chunked = 1;
    return hw_http_head_write(r, status, ctype, "Transfer-Encoding: chunked\r\n");
  }
  r->keep_alive = 0;
  return hw_http_head_write(r, status, ctype, "");
}

int hw_http_stream_write(hw_http_req *r, const void *data, size_t len) {
  if (!r->started || r->ended || r->conn->closing)
    return -EPIPE;
  if (r->head_only || len == 0)
    return 0;
  if (!r->chunked)
    return hw_http_write(r->conn, data, len);
  /* One copy and one write for the chunk: its size line, the data and the CRLF (three writes
   * would be three system calls for every event of every stream). */
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", len);
  /* the chunk's head, data and tail in one write */
  uv_buf_t parts[3] = {uv_buf_init(size, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
                       uv_buf_init("\r\n", 2)};
  return hw_http_writev(r->conn, parts, 3);
}

int hw_http_stream_write_shared(hw_http_req *r, const void *data, size_t len,
                                void (*release)(void *arg), void *arg) {
  if (!r->started || r->ended || r->conn->closing) {
    release(arg);
    return -EPIPE;
  }
  if (r->head_only || len == 0) {
    release(arg);
    return 0;
  }
  if (!r->chunked)
    return hw_http_write_ref(r->conn, NULL, 0, data, len, NULL, 0, release, arg);
  char size[20];
  int n = snprintf(size, sizeof size, "%zx\r\n", len);
  return hw_http_write_ref(r->conn, size, (size_t)n, data, len, "\r\n", 2, release, arg);
}

int hw_http_stream_end(hw_http_req *r) {
  if (!r->started || r->ended)
    return -EINVAL;
  int rc = 0;
  if (r->chunked && !r->head_only)
    rc = hw_http_write(r->conn, "0\r\n\r\n", 5);
  if (r->conn->closing) {
    r->ended = 1;
    return rc ? rc : -EPIPE;
  }
  hw_http_req_finish(r);
  return rc;
}

size_t hw_http_write_queued(const hw_http_req *r) { return (size_t)r->conn->write_queued; }

void hw_http_close(hw_http_req *r) {
  r->abort_cb = NULL; /* the caller is letting go itself */
  hw_http_conn_close(r->conn);
}

void hw_http_on_abort(hw_http_req *r, void (*cb)(hw_http_req *, void *), void *arg) {
  r->abort_cb = cb;
  r->abort_arg = arg;
}

/* An answer of the server's own (bad request, limits, routing): the connection closes after it
 * when the request could not be read to its end. */
static void hw_http_answer(hw_http_conn *c, int status, const char *msg, int close) {
  if (close)
    c->req.keep_alive = 0;
  if (hw_http_respond_error(&c->req, status, msg))
    return; /* closing: nothing more to do */
}

/* --- request accessors ------------------------------------------------------------------------ */

const char *hw_http_method(const hw_http_req *r) {
  return llhttp_method_name((llhttp_method_t)r->conn->parser.method);
}
const char *hw_http_path(const hw_http_req *r) { return r->arena + r->path; }
const char *hw_http_query(const hw_http_req *r) { return r->arena + r->query; }
const char *hw_http_peer(const hw_http_req *r) { return r->conn->peer; }
uv_loop_t *hw_http_loop(const hw_http_req *r) { return r->conn->srv->loop; }

const char *hw_http_header(const hw_http_req *r, const char *name) {
  for (uint32_t i = 0; i < r->nhdrs; i++)
    if (!strcasecmp(r->arena + r->hdrs[i].name, name))
      return r->arena + r->hdrs[i].value;
  return NULL;
}

const char *hw_http_param(const hw_http_req *r, const char *name) {
  size_t len = strlen(name);
  for (int i = 0; i < r->nparams; i++)
    if (r->param_name_len[i] == len && !memcmp(r->param_names[i], name, len))
      return r->arena + r->param_val[i];
  return NULL;
}

const uint8_t *hw_http_body(const hw_http_req *r, size_t *len) {
  *len = r->body_len;
  return r->body_len ? r->body : (const uint8_t *)"";
}

/* --- parser callbacks ------------------------------------------------------------------------- */

static hw_http_conn *hw_http_of(llhttp_t *p) { return p->data; }

static int hw_http_fail(hw_http_conn *c, int status, const char *msg) {
  c->err_status = status;
  c->err_msg = msg;
  return -1;
}

/* Appends a piece of the head to the arena; the head limit also bounds the arena. */
static int hw_http_arena_put(hw_http_conn *c, const char *at, size_t len) {
  hw_http_req *r = &c->req;
  if (r->arena_len + len + 1 > r->arena_cap)
    return r->in_url ? hw_http_fail(c, 414, "URL too long")
                     : hw_http_fail(c, 431, "request headers too large");
  memcpy(r->arena + r->arena_len, at, len);
  r->arena_len += len;
  return 0;
}

static int hw_http_arena_end(hw_http_conn *c) {
  char nul = 0;
  return hw_http_arena_put(c, &nul, 1);
}

static int hw_http_cb_begin(llhttp_t *p) {
  hw_http_conn *c = hw_http_of(p);
  hw_http_req_reset(c);
  c->in_request = 1;
  c->req.piece = 0;
  c->req.in_url = 1;
  return 0;
}

static int hw_http_cb_url(llhttp_t *p, const char *at, size_t len) {
  return hw_http_arena_put(hw_http_of(p), at, len);
}

static int hw_http_cb_url_done(llhttp_t *p) {
  hw_http_conn *c = hw_http_of(p);
  c->req.url = c->req.piece;
  c->req.in_url = 0;
  int rc = hw_http_arena_end(c);
  c->req.piece = (uint32_t)c->req.arena_len;
  return rc;
}

static int hw_http_cb_field(llhttp_t *p, const char *at, size_t len) {
  return hw_http_arena_put(hw_http_of(p), at, len);
}

static int hw_http_cb_field_done(llhttp_t *p) {
  hw_http_conn *c = hw_http_of(p);
  hw_http_req *r = &c->req;
  if (r->nhdrs >= c->srv->cfg.max_headers)
    return hw_http_fail(c, 431, "too many request headers");
  r->hdrs[r->nhdrs].name = r->piece;
  int rc = hw_http_arena_end(c);
  r->piece = (uint32_t)r->arena_len;
  return rc;
}

static int hw_http_cb_value(llhttp_t *p, const char *at, size_t len) {
  return hw_http_arena_put(hw_http_of(p), at, len);
}

static int hw_http_cb_value_done(llhttp_t *p) {
  hw_http_conn *c = hw_http_of(p);
  hw_http_req *r = &c->req;
  r->hdrs[r->nhdrs].value = r->piece;
  int rc = hw_http_arena_end(c);
  r->piece = (uint32_t)r->arena_len;
  r->nhdrs++;
  return rc;
}

static int hw_http_match(hw_http_req *r, const char *pattern, const char *path);

/* The body limit of the request whose head just arrived: that of the first route matching its
 * method and path when it allows more than the server's (the match is undone: dispatch matches
 * again once the request is complete). */
static uint32_t hw_http_body_limit(hw_http_conn *c) {
  hw_http_server *srv = c->srv;
  hw_http_req *r = &c->req;
  if (!srv->route_body_max)
    return srv->cfg.max_body;
  char *url = r->arena + r->url;
  char *q = strchr(url, '?');
  if (q)
    *q = 0;
  const char *method = llhttp_method_name((llhttp_method_t)c->parser.method);
  uint32_t limit = srv->cfg.max_body;
  size_t mark = r->arena_len;
  for (size_t i = 0; i < srv->nroutes; i++) {
    const hw_http_route *rt = &srv->routes[i];
    if (!hw_http_match(r, rt->pattern, url))
      continue;
    r->nparams = 0;
    r->arena_len = mark;
    if (strcmp(rt->method, method))
      continue;
    if (rt->max_body > limit)
      limit = rt->max_body;
    break;
  }
  if (q)
    *q = '?';
  return limit;
}

static int hw_http_cb_headers_done(llhttp_t *p) {
  hw_http_conn *c = hw_http_of(p);
  c->headers_done = 1;
  c->req.body_limit = hw_http_body_limit(c);
  /* A declared length over the limit is refused before a byte of it is read. */
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->req.body_limit)
    return hw_http_fail(c, 413, "request body too large");
  return 0;
}

static int hw_http_cb_body(llhttp_t *p, const char *at, size_t len) {
  hw_http_conn *c = hw_http_of(p);
  hw_http_req *r = &c->req;
  hw_http_server *srv = c->srv;
  if (r->body_len + len > r->body_limit)
    return hw_http_fail(c, 413, "request body too large");
  if (!r->large && r->body_len + len > srv->cfg.max_body) {
    if (srv->large_bodies >= srv->cfg.max_large_bodies) {
      srv->stats.large_refused++;
      return hw_http_fail(c, 503, "too many large requests at once, try again");
    }
    srv->large_bodies++;
    r->large = 1;
  }
  if (r->body_len + len > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 4096;
    while (cap < r->body_len + len)
      cap *= 2;
    if (cap > r->body_limit)
      cap = r->body_limit;
    uint8_t *b = realloc(r->body, cap);
    if (!b)
      return hw_http_fail(c, 503, "out of memory");
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, at, len);
  r->body_len += len;
  return 0;
}

static int hw_http_cb_complete(llhttp_t *p) {
  hw_http_conn *c = hw_http_of(p);
  c->busy = 1;
  c->req.keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
  c->req.http10 = p->http_major == 1 && p->http_minor == 0;
  c->req.head_only = p->method == HTTP_HEAD;
  return HPE_PAUSED; /* one request at a time: the rest waits in the input buffer */
}

static const llhttp_settings_t hw_http_settings = {
    .on_message_begin = hw_http_cb_begin,
    .on_url = hw_http_cb_url,
    .on_url_complete = hw_http_cb_url_done,
    .on_header_field = hw_http_cb_field,
    .on_header_field_complete = hw_http_cb_field_done,
    .on_header_value = hw_http_cb_value,
    .on_header_value_complete = hw_http_cb_value_done,
    .on_headers_complete = hw_http_cb_headers_done,
    .on_body = hw_http_cb_body,
    .on_message_complete = hw_http_cb_complete,
};

/* --- routing ---------------------------------------------------------------------------------- */

/* Matches path against pattern; captures {name} segments into r (values copied into the arena,
 * NUL-terminated). 1 on a match. */
static int hw_http_match(hw_http_req *r, const char *pattern, const char *path) {
  const char *p = pattern, *s = path;
  r->nparams = 0;
  size_t mark = r->arena_len;
  for (;;) {
    if (p[0] == '*' && p[1] == 0) {
      /* A trailing '*' takes the rest of the path, slashes included, as parameter "*". */
      size_t vlen = strlen(s);
      if (r->nparams >= HW_HTTP_MAX_PARAMS || r->arena_len + vlen + 1 > r->arena_cap)
        goto nomatch;
      r->param_names[r->nparams] = p;
      r->param_name_len[r->nparams] = 1;
      r->param_val[r->nparams] = (uint32_t)r->arena_len;
      memcpy(r->arena + r->arena_len, s, vlen + 1);
      r->arena_len += vlen + 1;
      r->nparams++;
      return 1;
    }
    if (!*p || !*s)
      break;
    if (*p == '{') {
      const char *close = strchr(p, '}');
      const char *end = strchr(s, '/');
      size_t vlen = end ? (size_t)(end - s) : strlen(s);
      if (!close || vlen == 0 || r->nparams >= HW_HTTP_MAX_PARAMS ||
          r->arena_len + vlen + 1 > r->arena_cap)
        goto nomatch;
      r->param_names[r->nparams] = p + 1;
      r->param_name_len[r->nparams] = (size_t)(close - p - 1);
      r->param_val[r->nparams] = (uint32_t)r->arena_len;
      memcpy(r->arena + r->arena_len, s, vlen);
      r->arena[r->arena_len + vlen] = 0;
      r->arena_len += vlen + 1;
      r->nparams++;
      p = close + 1;
      s += vlen;
      continue;
    }
    if (*p != *s)
      goto nomatch;
    p++;
    s++;
  }
  if (!*p && !*s)
    return 1;
nomatch:
  r->nparams = 0;
  r->arena_len = mark;
  return 0;
}

static void hw_http_dispatch(hw_http_conn *c) {
  hw_http_server *srv = c->srv;
  hw_http_req *r = &c->req;
  char *url = r->arena + r->url;
  if (url[0] != '/') {
    srv->stats.bad_requests++;
    hw_http_answer(c, 400, "request target must be a path", 0);
    return;
  }
  char *q = strchr(url, '?');
  r->path = r->url;
  if (q) {
    *q = 0;
    r->query = (uint32_t)(q + 1 - r->arena);
  } else {
    r->query = (uint32_t)(strlen(url) + r->url); /* the NUL: "" */
  }
  const char *method = hw_http_method(r);
  char allow[128];
  size_t allow_len = 0;
  allow[0] = 0;
  for (size_t i = 0; i < srv->nroutes; i++) {
    const hw_http_route *rt = &srv->routes[i];
    if (!hw_http_match(r, rt->pattern, url))
      continue;
    if (!strcmp(rt->method, method) || (r->head_only && !strcmp(rt->method, "GET"))) {
      r->route = rt;
      srv->stats.requests++;
      rt->fn(r, rt->arg);
      return;
    }
    int n = snprintf(allow + allow_len, sizeof allow - allow_len, "%s%s", allow_len ? ", " : "",
                     rt->method);
    if (n > 0 && (size_t)n < sizeof allow - allow_len)
      allow_len += (size_t)n;
  }
  if (allow_len) {
    if (hw_http_add_header(r, "Allow", allow)) {
      /* cannot happen: the response has not started and the value is a list of methods */
    }
    hw_http_answer(c, 405, "method not allowed", 0);
    return;
  }
  hw_http_answer(c, 404, "not found", 0);
}

/* --- the connection --------------------------------------------------------------------------- */

static void hw_http_conn_parse_error(hw_http_conn *c, llhttp_errno_t e) {
  int status = c->err_status ? c->err_status : 400;
  const char *msg = c->err_msg ? c->err_msg : "malformed request";
  c->srv->stats.bad_requests++;
  hw_http_warn(c, "bad request", c->err_msg ? c->err_msg : llhttp_errno_name(e));
  /* The parser cannot go on: answer and close. The request's fields may be partial, so the
   * answer is built without them. */
  c->busy = 1;
  hw_http_answer(c, status, msg, 1);
}

static void hw_http_conn_process(hw_http_conn *c) {
  hw_http_server *srv = c->srv;
  c->processing = 1;
  while (!c->closing && !c->busy && c->in_len > 0) {
    size_t n = c->in_len;
    /* In the head, never hand the parser more than the head may still take: the limit holds
     * whatever the bytes are (blank lines, whitespace) and however they are split. */
    if (!c->headers_done) {
      size_t room = srv->cfg.max_head + 1 - c->head_bytes;
      if (n > room)
        n = room;
    }
    if (!c->in_request) {
      c->in_request = 1;
      hw_http_conn_timer_update(c);
    }
    int head_phase = !c->headers_done;
    llhttp_errno_t e = llhttp_execute(&c->parser, (const char *)c->in, n);
    size_t used = n;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
      used = (size_t)((const uint8_t *)llhttp_get_error_pos(&c->parser) - c->in);
      if (e == HPE_PAUSED)
        llhttp_resume(&c->parser);
      else
        c->close_after = 1; /* nothing is spoken after an upgrade request: answer and close */
    } else if (e != HPE_OK) {
      hw_http_conn_parse_error(c, e);
      break;
    }
    if (head_phase)
      c->head_bytes += used;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (!c->headers_done && !c->busy && c->head_bytes > srv->cfg.max_head) {
      c->err_status = c->req.in_url ? 414 : 431;
      c->err_msg = c->req.in_url ? "URL too long" : "request headers too large";
      hw_http_conn_parse_error(c, HPE_USER);
      break;
    }
    if (c->busy) {
      hw_http_conn_timer_update(c);
      hw_http_dispatch(c);
    }
  }
  c->processing = 0;
  if (c->closing)
    return;
  if (c->eof && !c->busy) {
    /* Everything the client sent is answered; a partial request will never complete. */
    if (c->write_queued == 0)
      hw_http_conn_close(c);
    else
      c->close_after = 1;
    return;
  }
  if (c->detached)
    return;
  int want = !c->eof && c->in_len < sizeof c->in;
  if (want && !c->reading) {
    c->reading = 1;
    hw_http_start_read(c);
  } else if (!want && c->reading) {
    c->reading = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
}

static void hw_http_on_timer(uv_timer_t *t) {
  hw_http_conn *c = t->data;
  if (c->closing || c->busy)
    return;
  if (c->in_request) {
    c->srv->stats.timeouts++;
    hw_http_warn(c, "timeout", "request not received in time");
    c->busy = 1;
    c->req.keep_alive = 0;
    hw_http_answer(c, 408, "request timeout", 1);
    return;
  }
  hw_debug(HW_HTTP, NULL, "peer=%s idle keep-alive connection closed", c->peer);
  hw_http_conn_close(c);
}

/* idle: the keep-alive timeout; receiving a request: the request timeout from its first byte;
 * with the handler: none (a stream may last hours; a client that stops reading is caught by the
 * write queue limit). */
static void hw_http_conn_timer_update(hw_http_conn *c) {
  if (c->detached || c->closing)
    return;
  if (c->busy)
    uv_timer_stop(&c->timer);
  else if (c->in_request)
    uv_timer_start(&c->timer, hw_http_on_timer, c->srv->cfg.request_timeout_ms, 0);
  else
    uv_timer_start(&c->timer, hw_http_on_timer, c->srv->cfg.idle_timeout_ms, 0);
}

static void hw_http_conn_free(hw_http_conn *c) {
  hw_http_req_release_large(c);
  free(c->req.arena);
  free(c->req.hdrs);
  free(c->req.body);
  free(c);
}

static void hw_http_conn_on_closed(uv_handle_t *h) {
  hw_http_conn *c = h->data;
  if (--c->handles > 0)
    return;
  hw_http_server *srv = c->srv;
  hw_http_conn_free(c);
  hw_http_server_unref(srv);
}

static void hw_http_conn_unlink(hw_http_conn *c) {
  hw_http_server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else if (srv->conns == c)
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  srv->stats.connections--;
}

static void hw_http_conn_close(hw_http_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  hw_http_req *r = &c->req;
  if (c->busy && !r->ended && r->abort_cb) {
    void (*cb)(hw_http_req *, void *) = r->abort_cb;
    r->abort_cb = NULL;
    cb(r, r->abort_arg);
  }
  if (c->detached) {
    c->detached_closed = 1;
    return; /* stays listed until the server closes */
  }
  hw_http_conn_unlink(c);
  c->handles = 2;
  uv_close((uv_handle_t *)&c->timer, hw_http_conn_on_closed);
  uv_close((uv_handle_t *)&c->tcp, hw_http_conn_on_closed);
}

static void hw_http_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  hw_http_conn *c = h->data;
  *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void hw_http_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  hw_http_conn *c = st->data;
  if (n < 0) {
    if (n != UV_EOF) {
      hw_debug(HW_HTTP, NULL, "peer=%s read failed: %s", c->peer, uv_strerror((int)n));
      hw_http_conn_close(c);
      return;
    }
    c->eof = 1;
    uv_read_stop(st);
    c->reading = 0;
    if (c->busy && c->req.abort_cb) {
      hw_http_conn_close(c); /* a stream or a late answer to nobody: its handler lets go */
      return;
    }
    if (c->busy)
      c->close_after = 1; /* answer what is being answered, then close */
    else
      hw_http_conn_process(c);
    return;
  }
  if (n == 0)
    return;
  c->in_len += (size_t)n;
  if (!c->busy)
    hw_http_conn_process(c);
  else if (c->in_len == sizeof c->in) {
    c->reading = 0;
    uv_read_stop(st);
  }
}

static void hw_http_start_read(hw_http_conn *c) {
  if (uv_read_start((uv_stream_t *)&c->tcp, hw_http_on_alloc, hw_http_on_read))
    hw_http_conn_close(c);
}

static hw_http_conn *hw_http_conn_alloc(hw_http_server *srv) {
  hw_http_conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->srv = srv;
  c->req.conn = c;
  /* the head, its NULs, and the copies of {param} segments (each at most the path's length) */
  c->req.arena_cap = 2 * (size_t)srv->cfg.max_head + 2 * (size_t)srv->cfg.max_headers + 16;
  c->req.arena = malloc(c->req.arena_cap);
  c->req.hdrs = calloc(srv->cfg.max_headers + 1, sizeof *c->req.hdrs);
  if (!c->req.arena || !c->req.hdrs) {
    free(c->req.arena);
    free(c->req.hdrs);
    free(c);
    return NULL;
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &hw_http_settings);
  c->parser.data = c;
  hw_http_req_reset(c);
  c->next = srv->conns;
  if (c->next)
    c->next->prev = c;
  srv->conns = c;
  srv->stats.connections++;
  return c;
}

static void hw_http_on_refused_closed(uv_handle_t *h) {
  hw_http_server *srv = h->data;
  free(h);
  hw_http_server_unref(srv);
}

static void hw_http_on_connection(uv_stream_t *l, int status) {
  hw_http_listener *hl = l->data;
  hw_http_server *srv = hl->srv;
  if (status < 0) {
    hw_warn(HW_HTTP, NULL, "accept failed: %s", uv_strerror(status));
    return;
  }
  if (srv->stats.connections >= srv->cfg.max_connections) {
    /* accepted only to be closed at once: left in the backlog it would be retried forever */
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t || uv_tcp_init(srv->loop, t)) {
      free(t);
      return;
    }
    t->data = srv;
    srv->live++;
    if (uv_accept(l, (uv_stream_t *)t) == 0)
      srv->stats.refused_cap++;
    uv_close((uv_handle_t *)t, hw_http_on_refused_closed);
    uint64_t now = uv_now(srv->loop);
    if (!srv->last_warn_ms || now - srv->last_warn_ms >= 1000) {
      srv->last_warn_ms = now;
      hw_warn(HW_HTTP, NULL, "listener=%d connection refused: %zu open (max_connections)",
              srv->port, srv->stats.connections);
    }
    return;
  }
  hw_http_conn *c = hw_http_conn_alloc(srv);
  if (!c)
    return;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  srv->live++;
  if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
    hw_http_conn_close(c);
    return;
  }
  srv->stats.accepted++;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  snprintf(c->peer, sizeof c->peer, "?");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    char ip[48] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
    }
  }
  uv_tcp_nodelay(&c->tcp, 1);
  hw_debug(HW_HTTP, NULL, "peer=%s connected", c->peer);
  hw_http_conn_timer_update(c);
  hw_http_conn_process(c); /* starts reading */
}

/* --- the server ------------------------------------------------------------------------------- */

int hw_http_server_init(hw_http_server **out, uv_loop_t *loop, const hw_http_config *cfg,
                        const hw_http_route *routes, size_t nroutes) {
  hw_http_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return -ENOMEM;
  hw_http_config d;
  hw_http_config_default(&d);
  srv->loop = loop;
  srv->cfg = cfg ? *cfg : d;
  if (!srv->cfg.max_connections) srv->cfg.max_connections = d.max_connections;
  if (!srv->cfg.max_head) srv->cfg.max_head = d.max_head;
  if (!srv->cfg.max_headers) srv->cfg.max_headers = d.max_headers;
  if (!srv->cfg.max_body) srv->cfg.max_body = d.max_body;
  if (!srv->cfg.request_timeout_ms) srv->cfg.request_timeout_ms = d.request_timeout_ms;
  if (!srv->cfg.idle_timeout_ms) srv->cfg.idle_timeout_ms = d.idle_timeout_ms;
  if (!srv->cfg.max_write_queue) srv->cfg.max_write_queue = d.max_write_queue;
  if (!srv->cfg.max_large_bodies) srv->cfg.max_large_bodies = d.max_large_bodies;
  srv->routes = routes;
  srv->nroutes = nroutes;
  for (size_t i = 0; i < nroutes; i++)
    if (routes[i].max_body > srv->cfg.max_body && routes[i].max_body > srv->route_body_max)
      srv->route_body_max = routes[i].max_body;
  *out = srv;
  return 0;
}

int hw_http_server_listen(hw_http_server *srv, const char *hostport) {
  char host[64];
  int port, rc;
  struct sockaddr_storage ss;
  if (srv->nlisteners >= HW_HTTP_MAX_LISTENERS)
    return -ENOSPC;
  /* "HOST:0" (any free port, for tests) is ours; everything else is the shared parser's */
  const char *colon = strrchr(hostport, ':');
  if (colon && !strcmp(colon, ":0") && colon > hostport && (size_t)(colon - hostport) < sizeof host) {
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    port = 0;
  } else if (hw_parse_hostport(hostport, host, sizeof host, &port)) {
    hw_error(HW_HTTP, NULL, "listen address '%s' is not HOST:PORT", hostport);
    return -EINVAL;
  }
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)) {
    hw_error(HW_HTTP, NULL, "listen address '%s': not an IP address", hostport);
    return -EINVAL;
  }
  hw_http_listener *l = &srv->listeners[srv->nlisteners];
  l->srv = srv;
  uv_tcp_init(srv->loop, &l->tcp);
  l->tcp.data = l;
  srv->nlisteners++;
  srv->live++;
  if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) ||
      (rc = uv_listen((uv_stream_t *)&l->tcp, 128, hw_http_on_connection))) {
    hw_error(HW_HTTP, NULL, "listener=%s cannot listen: %s", hostport, uv_strerror(rc));
    return rc == UV_EADDRINUSE ? -EADDRINUSE : -EIO;
  }
  if (srv->nlisteners == 1) {
    struct sockaddr_storage bound;
    int len = sizeof bound;
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len) == 0)
      srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
  }
  hw_info(HW_HTTP, NULL, "listener=%s listening (port %d)", hostport, srv->port);
  return 0;
}

int hw_http_server_port(const hw_http_server *srv) { return srv->port; }

void hw_http_server_get_stats(const hw_http_server *srv, hw_http_stats *out) { *out = srv->stats; }

static void hw_http_listener_closed(uv_handle_t *h) {
  hw_http_listener *l = h->data;
  hw_http_server_unref(l->srv);
}

void hw_http_server_close(hw_http_server *srv, void (*done_cb)(void *arg), void *arg) {
  srv->closing = 1;
  srv->done_cb = done_cb;
  srv->done_arg = arg;
  srv->live++; /* held until every close is issued */
  for (int i = 0; i < srv->nlisteners; i++)
    uv_close((uv_handle_t *)&srv->listeners[i].tcp, hw_http_listener_closed);
  hw_http_conn *c = srv->conns;
  while (c) {
    hw_http_conn *next = c->next;
    hw_http_conn_close(c);
    if (c->detached) {
      hw_http_conn_unlink(c);
      hw_http_conn_free(c);
    }
    c = next;
  }
  hw_http_server_unref(srv);
}

/* --- test connections ------------------------------------------------------------------------- */

int hw_http_test_conn_new(hw_http_server *srv, void (*sink)(void *, const uint8_t *, size_t),
                          void *arg, hw_http_test_conn **out) {
  hw_http_conn *c = hw_http_conn_alloc(srv);
  if (!c)
    return -ENOMEM;
  c->detached = 1;
  c->sink = sink;
  c->sink_arg = arg;
  snprintf(c->peer, sizeof c->peer, "test");
  *out = (hw_http_test_conn *)c;
  return 0;
}

size_t hw_http_test_feed(hw_http_test_conn *tc, const uint8_t *data, size_t len) {
  hw_http_conn *c = (hw_http_conn *)tc;
  if (c->closing)
    return 0;
  size_t room = sizeof c->in - c->in_len;
  size_t n = len < room ? len : room;
  memcpy(c->in + c->in_len, data, n);
  c->in_len += n;
  if (!c->busy)
    hw_http_conn_process(c);
  return n;
}

int hw_http_test_closed(const hw_http_test_conn *tc) {
  return ((const hw_http_conn *)tc)->detached_closed;
}
