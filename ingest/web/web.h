/* haulwatch web: the HTTP API (and the page's static files) on one libuv loop. Owns its HTTP
 * server, a small pool of non-blocking PostgreSQL connections, one Redis connection and every
 * request's call state. Keeps nothing between requests: users, sessions, tokens and login
 * attempts live in PostgreSQL (schema/009_web.sql), so several processes can run behind a proxy.
 * Routes, roles and region scoping: README, "The API: haulwatch web". */
#ifndef HW_WEB_H
#define HW_WEB_H

#include <uv.h>

#include "base/common.h"
#include "sinks/crackdown_query.h"
#include "sinks/kpi_query.h"

/* Every field is given by the caller (cli/web_cmd.c fills it from its settings table, where each
 * default is written once). Strings are copied by hw_web_start. */
typedef struct hw_web_config {
  const char *listen;       /* "HOST:PORT" */
  const char *pg;           /* conninfo: the primary (writes, logins, admin) */
  const char *pg_read;      /* conninfo of a streaming replica for the read routes, or NULL/"" */
  const char *redis_host;   /* latest state (hw:veh:*) */
  int redis_port;
  const char *web_root;     /* the page's files; "" serves none */
  uint32_t pg_pool;         /* PostgreSQL connections */
  uint32_t session_ttl_s;   /* a login lasts this long */
  uint32_t login_window_s;  /* failed logins are counted over this window... */
  uint32_t login_max_user_failures; /* ...per user name... */
  uint32_t login_max_addr_failures; /* ...and per client address */
  uint32_t max_logins_in_flight;    /* password hashes being checked at once (64 MiB each) */
  uint32_t page_max;        /* largest `limit` of a JSON list */
  uint32_t export_max_rows; /* rows of a CSV or XLSX export */
  uint32_t track_max_rows;  /* positions of one track answer (thinned above) */
  uint32_t offline_after_s; /* no fix for this long: offline */
  uint32_t moving_min_kmh;  /* at or above: moving */
  uint32_t cookie_secure;   /* add Secure to the session cookie (behind TLS) */
  uint32_t max_body;        /* request body bytes */
  uint32_t admin_max_body;  /* request body bytes of the admin POST routes (imports) */
  uint32_t stream_max_clients; /* live feeds at once (web/sse.h; 0: its default) */
  hw_cd_config crackdown;   /* the crackdown lists' settings (GET /api/v1/crackdown/...) */
  uint32_t stream_flush_ms;    /* the live feed's position batches, one per interval (0: default) */
  const char *map_style;    /* the page's background: a MapLibre style URL, or "" */
  const char *map_tiles;    /* or a raster tile URL template ({z}/{x}/{y}), or "" */
  const char *metrics_listen;  /* "HOST:PORT" of GET /metrics; NULL or "": none */
  hw_kpi_score_cfg kpi_score;  /* the score table of GET /api/v1/kpi (sinks/kpi_query.h) */
  uint32_t kpi_timeout_ms;     /* statement_timeout of GET /api/v1/kpi[/daily]'s statement; 0: none */
} hw_web_config;

typedef struct hw_web hw_web;

/* Starts listening; PostgreSQL and Redis connect from the loop (requests wait in their queues
 * meanwhile). Blocks once for a moment: the dummy password hash that makes a login for an
 * unknown user take as long as one for a known user. */
int hw_web_start(hw_web **out, uv_loop_t *loop, const hw_web_config *cfg) HW_MUST_CHECK;
/* The port of the listener (tests listen on port 0). */
int hw_web_port(const hw_web *w);
/* Closes everything; done_cb runs from the loop once nothing of w is left on it. */
void hw_web_stop(hw_web *w, void (*done_cb)(void *arg), void *arg);

#endif
