/* An HTTP/1.1 server on one libuv loop: listeners, connections, request parsing (llhttp,
 * incremental), a routing table, and responses sent whole or streamed. Owns its connections and
 * everything they buffer; a request and its response live in the connection, from the request's
 * last byte until the response's end, and one request is handled at a time per connection
 * (pipelined requests wait, unparsed, and are answered in order). Every limit is per connection:
 * head bytes, header count, body bytes, bytes queued to a client that does not read, and the
 * time a request may take to arrive. Bad input is answered with a 4xx and a short JSON body
 * ({"error": "..."}) and the connection closed; nothing a client sends can take the server down.
 * Used by `serve --metrics-listen` and, later, `haulwatch web`. Knows nothing of the daemon. */
#ifndef HW_HTTP_SERVER_H
#define HW_HTTP_SERVER_H

#include <uv.h>

#include "base/common.h"

/* Defaults, written once: the settings tables of the commands use these as text. */
#define HW_HTTP_DEF_MAX_CONNECTIONS 256
#define HW_HTTP_DEF_MAX_HEAD 8192        /* request line and headers, bytes */
#define HW_HTTP_DEF_MAX_HEADERS 64
#define HW_HTTP_DEF_MAX_BODY 1048576     /* bytes */
#define HW_HTTP_DEF_MAX_LARGE_BODIES 2   /* requests above max_body (a route allowing more) */
#define HW_HTTP_DEF_REQUEST_TIMEOUT_MS 10000
#define HW_HTTP_DEF_IDLE_TIMEOUT_MS 60000
#define HW_HTTP_DEF_MAX_WRITE_QUEUE 4194304

#define HW_HTTP_MAX_PARAMS 8

typedef struct hw_http_config {
  uint32_t max_connections;    /* accepted at once; above, a new connection is closed at once */
  uint32_t max_head;           /* request line plus headers; above: 431 (414 for the URL alone) */
  uint32_t max_headers;        /* header lines; above: 431 */
  uint32_t max_body;           /* request body; above: 413, before reading it */
  uint32_t request_timeout_ms; /* a request, from its first byte to its last; then 408, closed */
  uint32_t idle_timeout_ms;    /* a keep-alive connection waiting for its next request: closed */
  uint32_t max_write_queue;    /* bytes queued to a client that does not read: above, closed */
  /* Bodies above max_body being received or handled at once, on routes that allow them
   * (hw_http_route.max_body): above, 503. Bounds the memory such routes can take to this many
   * times their limit, whoever sends (the body is read before any handler can check a login). */
  uint32_t max_large_bodies;
} hw_http_config;

/* Fills every field with the HW_HTTP_DEF_* defaults. */
void hw_http_config_default(hw_http_config *cfg);

typedef struct hw_http_server hw_http_server;
typedef struct hw_http_req hw_http_req;

/* A handler answers req now (hw_http_respond, or hw_http_stream_begin ... _end) or later, from
 * the loop (an async query): the request stays valid until its response ends or its abort
 * callback ran. arg: the route's. */
typedef void (*hw_http_handler)(hw_http_req *req, void *arg);

typedef struct hw_http_route {
  const char *method;  /* "GET", "POST", ...; a GET route answers HEAD too (without the body) */
  const char *pattern; /* "/api/v1/vehicles/{terminal_id}/track": a {name} segment matches one
                        * non-empty path segment, read with hw_http_param; a trailing '*'
                        * (as in "/static/" then *) matches the rest of the path, slashes included, read
                        * as hw_http_param(req, "*") */
  hw_http_handler fn;
  void *arg;
  /* This route's largest body (0: the server's max_body), e.g. an import; decided from the
   * request line as soon as the headers are in, before a byte of the body is read. A body
   * above the server's max_body counts against max_large_bodies while it is held. */
  uint32_t max_body;
} hw_http_route;

typedef struct hw_http_stats {
  uint64_t accepted, refused_cap; /* connections; refused_cap: over max_connections */
  uint64_t requests;              /* complete requests routed to a handler */
  uint64_t responses[6];          /* by class: [2] 2xx, [3] 3xx, [4] 4xx, [5] 5xx */
  uint64_t bad_requests;          /* answered 4xx by the server itself (parse error, limits) */
  uint64_t timeouts;              /* requests that did not arrive in time (408) */
  uint64_t slow_readers;          /* closed: write queue over max_write_queue */
  uint64_t large_refused;         /* 503: max_large_bodies already being received */
  size_t connections;             /* open now */
} hw_http_stats;

/* routes: borrowed (static tables), must outlive the server; the first match wins. cfg: copied;
 * zero fields take the defaults. */
int hw_http_server_init(hw_http_server **out, uv_loop_t *loop, const hw_http_config *cfg,
                        const hw_http_route *routes, size_t nroutes) HW_MUST_CHECK;
/* Listens on "HOST:PORT" (port 0: any free port, see hw_http_server_port). At most 4 listeners. */
int hw_http_server_listen(hw_http_server *srv, const char *hostport) HW_MUST_CHECK;
/* The port the first listener is bound to, or 0. */
int hw_http_server_port(const hw_http_server *srv);
void hw_http_server_get_stats(const hw_http_server *srv, hw_http_stats *out);
/* Closes the listeners and every connection (a handler still holding a request gets its abort
 * callback); done_cb (may be NULL) runs from the loop once everything is closed and freed. */
void hw_http_server_close(hw_http_server *srv, void (*done_cb)(void *arg), void *arg);

/* --- the request (valid inside the handler, and after it until the response ends) ----------- */

const char *hw_http_method(const hw_http_req *req);   /* "GET", ... */
const char *hw_http_path(const hw_http_req *req);     /* as sent, before '?', not decoded */
const char *hw_http_query(const hw_http_req *req);    /* after '?', not decoded; "" when none */
/* The value of header name (case-insensitive; the first of repeated headers), or NULL. */
const char *hw_http_header(const hw_http_req *req, const char *name);
/* The path segment matched by {name} in the route, not decoded, or NULL. */
const char *hw_http_param(const hw_http_req *req, const char *name);
const uint8_t *hw_http_body(const hw_http_req *req, size_t *len);
const char *hw_http_peer(const hw_http_req *req);     /* "ip:port", for logs */
/* The loop the server runs on (for handlers that start timers or queries). */
uv_loop_t *hw_http_loop(const hw_http_req *req);

/* Called if the connection closes before the response ended (client gone, server closing): the
 * request must not be used afterwards. For handlers that answer later or stream (SSE). */
void hw_http_on_abort(hw_http_req *req, void (*cb)(hw_http_req *req, void *arg), void *arg);

/* --- the response ------------------------------------------------------------------------------ */

/* Adds a response header (before the response starts): copied; at most 16 and 2 KiB in all.
 * Content-Length, Transfer-Encoding and Connection are the server's. -E2BIG, -EINVAL (CR/LF in
 * name or value, or the response started). */
int hw_http_add_header(hw_http_req *req, const char *name, const char *value) HW_MUST_CHECK;

/* Sends the whole response (body copied) and ends it. Returns 0 or a negative code (the
 * connection is closing; the request is finished either way and must not be used again). */
int hw_http_respond(hw_http_req *req, int status, const char *content_type, const void *body,
                    size_t len) HW_MUST_CHECK;
/* {"error": msg} with status. */
int hw_http_respond_error(hw_http_req *req, int status, const char *msg) HW_MUST_CHECK;

/* Streaming. HW_HTTP_CHUNKED: chunked transfer coding, the connection stays usable after _end.
 * HW_HTTP_UNTIL_CLOSE: no length, the connection closes at _end (Server-Sent Events work with
 * either; chunked keeps keep-alive). Writes are copied; a client that does not read is closed
 * when its queue exceeds max_write_queue (the write fails, abort callback runs). */
typedef enum { HW_HTTP_CHUNKED = 1, HW_HTTP_UNTIL_CLOSE } hw_http_stream_mode;
int hw_http_stream_begin(hw_http_req *req, int status, const char *content_type,
                         hw_http_stream_mode mode) HW_MUST_CHECK;
int hw_http_stream_write(hw_http_req *req, const void *data, size_t len) HW_MUST_CHECK;
/* The same, without a copy: data (shared, e.g. one SSE batch written to many streams) must stay
 * unchanged until release(arg) runs, which happens exactly once whatever the return: at once when
 * nothing was queued (an error, HEAD, len 0, a test connection), else when the write completed or
 * failed. Counts against max_write_queue like a copied write. */
int hw_http_stream_write_shared(hw_http_req *req, const void *data, size_t len,
                                void (*release)(void *arg), void *arg) HW_MUST_CHECK;
/* Ends the response; the request must not be used afterwards. */
int hw_http_stream_end(hw_http_req *req) HW_MUST_CHECK;
/* Bytes written to req's connection and not yet taken by the kernel: lets a stream apply a
 * tighter bound of its own than max_write_queue (an SSE client is dropped long before 4 MiB). */
size_t hw_http_write_queued(const hw_http_req *req);
/* Closes req's connection now, dropping what is queued (a stream to a client that does not
 * read). The abort callback is not called; the request must not be used afterwards. */
void hw_http_close(hw_http_req *req);

/* --- testing and fuzzing: a connection with no socket --------------------------------------- */

/* A connection whose output goes to sink (every byte the server writes, in order) and whose
 * input is given with hw_http_test_feed; no timers. closed: set to 1 once the server closed it.
 * The connection is freed by hw_http_server_close. */
typedef struct hw_http_test_conn hw_http_test_conn;
int hw_http_test_conn_new(hw_http_server *srv, void (*sink)(void *arg, const uint8_t *d, size_t n),
                          void *arg, hw_http_test_conn **out) HW_MUST_CHECK;
/* Feeds bytes as if read from the socket; returns how many were taken (fewer while a request
 * is waiting for its handler's response and the input buffer is full). */
size_t hw_http_test_feed(hw_http_test_conn *c, const uint8_t *data, size_t len);
int hw_http_test_closed(const hw_http_test_conn *c);

/* Reason phrase for a status code ("Not Found"), "Unknown" for others. */
const char *hw_http_reason(int status);

#endif
