/* The web process's metrics (`haulwatch web --metrics-listen ADDR:PORT`): GET /metrics in the
 * Prometheus text format on a listener of its own (off unless given, like `serve`), with the
 * declarative table and writer of http/prom.h that the daemon's cli/metrics.c uses. The counters
 * live in hw_web (web_internal.h: requests by route and status class, request latency, login
 * failures and rate-limit refusals); the rest is read at scrape time from the parts that own it
 * (the SSE hub, the HTTP server, the pool). Labels are routes, classes and kinds: never a user or
 * a vehicle. The table below is the one place a web metric is named, typed and described. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "http/prom.h"
#include "web/web_internal.h"

/* What one scrape shows. Plain numbers read by offset, except the per-route counts, which the
 * emitter reads from app. */
typedef struct hw_web_snapshot {
  const hw_web *app;
  hw_lat_hist latency;
  uint64_t login_failures, login_limited;
  uint64_t sse_clients, sse_attached, sse_refused, sse_dropped_slow, sse_bytes;
  uint64_t sse_positions, sse_violations;
  uint64_t pg_up, pg_busy, pg_waiting;
  uint64_t redis_up;
  uint64_t http_connections, http_bad_requests, http_timeouts, http_large_refused;
} hw_web_snapshot;

#define HW_WOFF(f) offsetof(hw_web_snapshot, f)

static void hw_web_emit_requests(hw_prom *p, const hw_prom_metric *d, const void *snap) {
  const hw_web_snapshot *s = snap;
  static const char *const cls[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (size_t r = 0; r < s->app->nroutes; r++) {
    const hw_http_route *rt = &s->app->routes[r];
    for (int c = 2; c <= 5; c++) {
      hw_prom_label l[3] = {{"method", rt->method}, {"route", rt->pattern}, {"class", cls[c]}};
      hw_prom_u64(p, d->name, l, 3, s->app->route_responses[r * 6 + (size_t)c]);
    }
  }
}

static void hw_web_emit_sse_events(hw_prom *p, const hw_prom_metric *d, const void *snap) {
  const hw_web_snapshot *s = snap;
  hw_prom_label l[1] = {{"kind", "position"}};
  hw_prom_u64(p, d->name, l, 1, s->sse_positions);
  l[0].value = "violation";
  hw_prom_u64(p, d->name, l, 1, s->sse_violations);
}

static const hw_prom_metric hw_web_metric_table[] = {
    {"haulwatch_web_requests_total", "counter", "Responses of the web process (API and page files), by method, route pattern and status class.", 0, hw_web_emit_requests},
    {"haulwatch_web_request_duration_seconds", "histogram", "From a request's dispatch (its last byte read) to its response (a live feed: to its start).", HW_WOFF(latency), NULL},
    {"haulwatch_web_login_failures_total", "counter", "Logins refused for a wrong user name or password.", HW_WOFF(login_failures), NULL},
    {"haulwatch_web_login_rate_limited_total", "counter", "Logins refused with 429 by the failed-login limits (per user name or per address).", HW_WOFF(login_limited), NULL},
    {"haulwatch_web_sse_clients", "gauge", "Live feeds (GET /api/v1/stream) streaming now.", HW_WOFF(sse_clients), NULL},
    {"haulwatch_web_sse_streams_total", "counter", "Live feeds begun.", HW_WOFF(sse_attached), NULL},
    {"haulwatch_web_sse_refused_total", "counter", "Live feeds refused over stream_max_clients.", HW_WOFF(sse_refused), NULL},
    {"haulwatch_web_sse_dropped_slow_total", "counter", "Live feeds dropped because their client did not read.", HW_WOFF(sse_dropped_slow), NULL},
    {"haulwatch_web_sse_events_total", "counter", "Events numbered and sent to the live feeds (each to every feed whose regions it lies in), by kind.", 0, hw_web_emit_sse_events},
    {"haulwatch_web_sse_bytes_total", "counter", "Bytes written to live feeds, SSE framing included.", HW_WOFF(sse_bytes), NULL},
    {"haulwatch_web_postgres_connections", "gauge", "Pool connections to PostgreSQL that are up (the primary and, with --pg-read, the replica).", HW_WOFF(pg_up), NULL},
    {"haulwatch_web_postgres_busy_connections", "gauge", "Pool connections with a query out.", HW_WOFF(pg_busy), NULL},
    {"haulwatch_web_postgres_waiting_queries", "gauge", "Queries queued behind another on their pool connection.", HW_WOFF(pg_waiting), NULL},
    {"haulwatch_web_redis_connected", "gauge", "1 while the latest-state Redis connection is up.", HW_WOFF(redis_up), NULL},
    {"haulwatch_web_http_connections", "gauge", "HTTP connections open now (live feeds included).", HW_WOFF(http_connections), NULL},
    {"haulwatch_web_http_bad_requests_total", "counter", "Requests the HTTP layer refused itself (malformed, over a limit).", HW_WOFF(http_bad_requests), NULL},
    {"haulwatch_web_http_timeouts_total", "counter", "Requests that did not arrive within the request timeout.", HW_WOFF(http_timeouts), NULL},
    {"haulwatch_web_http_large_bodies_refused_total", "counter", "Admin import bodies refused (503) because max_large_bodies were being received.", HW_WOFF(http_large_refused), NULL},
};

int hw_web_metrics_render(const hw_web *app, hw_prom *out) {
  hw_web_snapshot s;
  memset(&s, 0, sizeof s);
  s.app = app;
  s.latency = app->request_latency;
  s.login_failures = app->login_failures;
  s.login_limited = app->login_limited;
  if (app->sse) {
    hw_sse_stats ss;
    hw_sse_hub_get_stats(app->sse, &ss);
    s.sse_clients = ss.clients;
    s.sse_attached = ss.attached;
    s.sse_refused = ss.refused_cap;
    s.sse_dropped_slow = ss.dropped_slow;
    s.sse_bytes = ss.bytes_written;
    s.sse_positions = ss.positions;
    s.sse_violations = ss.violations;
  }
  for (uint32_t i = 0; i < app->npool; i++) {
    s.pg_up += (uint64_t)(hw_pg_async_up(app->pool[i]) != 0);
    s.pg_busy += (uint64_t)(app->pool_pending[i] > 0);
    s.pg_waiting += app->pool_pending[i] > 0 ? app->pool_pending[i] - 1 : 0;
  }
  s.redis_up = (uint64_t)(app->redis.up != 0);
  if (app->http) {
    hw_http_stats hs;
    hw_http_server_get_stats(app->http, &hs);
    s.http_connections = hs.connections;
    s.http_bad_requests = hs.bad_requests;
    s.http_timeouts = hs.timeouts;
    s.http_large_refused = hs.large_refused;
  }
  return hw_prom_render(out, hw_web_metric_table, HW_ARRAY_SIZE(hw_web_metric_table), &s);
}

void hw_web_count(hw_web *app, const hw_web_route_def *def, int status, uint64_t start_ns) {
  if (!app->route_responses || status < 100 || status > 599)
    return;
  size_t r = def ? (size_t)(def - app->route_defs) : app->nroutes - 1; /* NULL: the page's files */
  app->route_responses[r * 6 + (size_t)(status / 100)]++;
  if (start_ns)
    hw_lat_hist_record(&app->request_latency, (uv_hrtime() - start_ns) / 1000);
}

static void hw_web_get_metrics(hw_http_req *req, void *arg) {
  hw_web *app = arg;
  hw_prom out;
  hw_prom_init(&out);
  int rc = hw_web_metrics_render(app, &out);
  if (rc)
    rc = hw_http_respond_error(req, 500, "out of memory");
  else
    rc = hw_http_respond(req, 200, HW_PROM_CONTENT_TYPE, out.data, out.len);
  if (rc)
    hw_debug(HW_WEB_COMPONENT, NULL, "metrics peer=%s response not sent: %s", hw_http_peer(req),
             strerror(-rc));
  hw_prom_free(&out);
}

int hw_web_metrics_start(hw_web *app, const char *listen) {
  app->metrics_route = (hw_http_route){"GET", "/metrics", hw_web_get_metrics, app, 0};
  hw_http_config hc;
  hw_http_config_default(&hc);
  hc.max_connections = 16;
  int rc = hw_http_server_init(&app->metrics_http, app->loop, &hc, &app->metrics_route, 1);
  if (rc)
    return rc;
  rc = hw_http_server_listen(app->metrics_http, listen);
  if (rc) {
    hw_error(HW_WEB_COMPONENT, NULL, "metrics: cannot listen on %s: %s", listen, uv_strerror(rc));
    return rc;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "metrics listener=%s serving /metrics", listen);
  return 0;
}
