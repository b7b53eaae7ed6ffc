/* haulwatch web: the API process (ingest/web/). Parses its settings, checks the schema once
 * (blocking, before the loop runs), starts the web module and runs until SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/options.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "web/sse.h"
#include "web/web.h"

#define HW_WEB_SCHEMA 17 /* web_users, web_sessions, hw_web_violation_transition; regions; admin_audit; vehicle_daily (012) and the masses (014) of the crackdown lists, vehicle_monthly (017) of the KPIs */

#ifndef HW_WEB_ROOT_DEFAULT
#define HW_WEB_ROOT_DEFAULT ""
#endif

typedef struct hw_web_settings {
  char listen[256];
  char pg[1024];
  char pg_read[1024];
  char redis[256];
  char web_root[1024];
  char log_level[16];
  char metrics_listen[256];
  uint32_t pg_pool;
  uint32_t session_ttl_s;
  uint32_t login_window_s;
  uint32_t login_max_user_failures;
  uint32_t login_max_addr_failures;
  uint32_t max_logins_in_flight;
  uint32_t page_max;
  uint32_t export_max_rows;
  uint32_t track_max_rows;
  uint32_t offline_after_s;
  uint32_t moving_min_kmh;
  uint32_t cookie_secure;
  uint32_t max_body;
  uint32_t admin_max_body;
  uint32_t stream_max_clients;
  uint32_t phaseout_min_km;
  uint32_t audit_tolerance_kg;
  uint32_t audit_min_load_pct;
  uint32_t stream_flush_ms;
  char map_style[1024];
  char map_tiles[1024];
  hw_kpi_score_cfg kpi_score;
  uint32_t kpi_timeout_ms;
} hw_web_settings;

#define C hw_web_settings
static const hw_option hw_web_options[] = {
    HW_OPT_S(C, listen, "127.0.0.1:8080", "HAULWATCH_WEB_LISTEN", "HOST:PORT to serve the API and the page on (loopback by default: put a TLS proxy in front)"),
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(C, pg_read, "", "HAULWATCH_PG_READ", "PostgreSQL conninfo of a streaming replica: the read routes (lists, tracks, summary, KPIs, crackdown lists, zones, regions) query it, as many connections as pg_pool; logins, sessions, admin and every write stay on --pg (empty: everything on --pg)"),
    HW_OPT_S(C, redis, "127.0.0.1:6379", "HAULWATCH_REDIS", "Redis HOST:PORT (the latest state of each vehicle)"),
    HW_OPT_S(C, web_root, HW_WEB_ROOT_DEFAULT, "HAULWATCH_WEB_ROOT", "directory of the page's files (empty: serve the API only)"),
    HW_OPT_S(C, metrics_listen, "", "HAULWATCH_WEB_METRICS_LISTEN", "HOST:PORT to serve GET /metrics (Prometheus text) on; empty: off"),
    HW_OPT_S(C, log_level, "info", "HAULWATCH_LOG_LEVEL", "debug, info, warn or error"),
    HW_OPT_N(C, pg_pool, "4", 1, 64, NULL, "PostgreSQL connections (non-blocking, queries spread over them)"),
    HW_OPT_N(C, session_ttl_s, "43200", 60, 2592000, NULL, "a login lasts this long, seconds"),
    HW_OPT_N(C, login_window_s, "900", 10, 86400, NULL, "failed logins are counted over this window, seconds"),
    HW_OPT_N(C, login_max_user_failures, "5", 1, 1000, NULL, "failed logins for one user name within the window before 429"),
    HW_OPT_N(C, login_max_addr_failures, "20", 1, 100000, NULL, "failed logins from one client address within the window before 429"),
    HW_OPT_N(C, max_logins_in_flight, "4", 1, 64, NULL, "password checks at once (64 MiB of memory each); above, 503"),
    HW_OPT_N(C, page_max, "1000", 1, 100000, NULL, "largest limit of a JSON list page (default page 100)"),
    HW_OPT_N(C, export_max_rows, "10000", 1, 1000000, NULL, "rows of a CSV or XLSX export at most"),
    HW_OPT_N(C, track_max_rows, "10000", 10, 1000000, NULL, "positions of one track answer at most (longer ranges are thinned)"),
    HW_OPT_N(C, offline_after_s, "300", 1, 86400, NULL, "a vehicle not heard from for this long is offline, seconds"),
    HW_OPT_N(C, moving_min_kmh, "3", 0, 200, NULL, "a vehicle at or above this speed is moving, km/h"),
    HW_OPT_B(C, cookie_secure, "false", "mark the session cookie Secure (when a TLS proxy is in front)"),
    HW_OPT_N(C, max_body, "65536", 1024, 1048576, NULL, "largest request body, bytes (413 above)"),
    HW_OPT_N(C, admin_max_body, "16777216", 1024, 268435456, NULL, "largest body of an admin import (POST /api/v1/admin/...), bytes (413 above; two such bodies at most are received at once, 503 above)"),
    HW_OPT_N(C, stream_max_clients, HW_XSTR(HW_SSE_DEF_MAX_CLIENTS), 1, 100000, NULL, "live feeds (GET /api/v1/stream) at once; above, 503"),
    /* The crackdown lists' settings, as `haulwatch report` takes them (sinks/crackdown_query.h). */
    HW_OPT_N(C, phaseout_min_km, HW_XSTR(HW_CD_DEF_PHASEOUT_MIN_KM), 0, 10000, NULL, "crackdown phaseout: a day counts as moved with at least this many km of track (and more than 0)"),
    HW_OPT_N(C, audit_tolerance_kg, HW_XSTR(HW_CD_DEF_AUDIT_TOLERANCE_KG), 0, 100000, NULL, "crackdown registry-audit: total mass may differ from curb mass + rated load by this much, kg"),
    HW_OPT_N(C, audit_min_load_pct, HW_XSTR(HW_CD_DEF_AUDIT_MIN_LOAD_PCT), 0, 1000, NULL, "crackdown registry-audit: a heavy vehicle's rated load below this % of its curb mass is flagged"),
    HW_OPT_N(C, stream_flush_ms, HW_XSTR(HW_SSE_DEF_FLUSH_MS), 50, 60000, NULL, "the live feed sends positions in one batch per this interval, each vehicle's newest state once, ms"),
    HW_OPT_S(C, map_style, "", "HAULWATCH_WEB_MAP_STYLE", "the page's background map: URL of a MapLibre style on the centre's own tile server (empty: region outlines and zones only)"),
    HW_OPT_S(C, map_tiles, "", "HAULWATCH_WEB_MAP_TILES", "or: a raster tile URL template on the centre's own server, e.g. https://tiles.example/{z}/{x}/{y}.png"),
    HW_KPI_SCORE_OPTIONS(C, kpi_score),
    HW_OPT_N(C, kpi_timeout_ms, "30000", 0, 3600000, NULL, "GET /api/v1/kpi and /kpi/daily: the database cancels the statement after this long (504 to the client), ms; 0: no limit"),
};
#undef C

typedef struct hw_web_main {
  uv_loop_t *loop;
  hw_web *web;
  uv_signal_t sigint, sigterm;
} hw_web_main;

static void hw_web_main_done(void *arg) {
  hw_web_main *m = arg;
  uv_close((uv_handle_t *)&m->sigint, NULL);
  uv_close((uv_handle_t *)&m->sigterm, NULL);
}

static void hw_web_on_signal(uv_signal_t *h, int signum) {
  hw_web_main *m = h->data;
  hw_info("web", NULL, "signal %d: stopping", signum);
  uv_signal_stop(&m->sigint);
  uv_signal_stop(&m->sigterm);
  if (m->web) {
    hw_web_stop(m->web, hw_web_main_done, m);
    m->web = NULL;
  }
}

int hw_cmd_web(int argc, char **argv) {
  hw_web_settings s;
  memset(&s, 0, sizeof s);
  int npos, rc = hw_options_parse(hw_web_options, HW_ARRAY_SIZE(hw_web_options), &s, argc, argv,
                                  "usage: haulwatch web [OPTIONS]\n\nServes the HTTP API "
                                  "(README, \"The API: haulwatch web\") and the page.",
                                  NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (hw_log_set_level(s.log_level)) {
    fprintf(stderr, "web: unknown log level '%s'\n", s.log_level);
    return 2;
  }
  if (!s.pg[0]) {
    fprintf(stderr, "web: no PostgreSQL given: --pg CONNINFO or HAULWATCH_PG\n");
    return 2;
  }
  char rhost[256];
  int rport;
  if (hw_parse_hostport(s.redis, rhost, sizeof rhost, &rport)) {
    fprintf(stderr, "web: --redis '%s' is not HOST:PORT\n", s.redis);
    return 2;
  }
  PGconn *pg = NULL;
  if (hw_cli_pg_connect(s.pg, HW_WEB_SCHEMA, &pg))
    return 1;
  PQfinish(pg);
  if (s.pg_read[0]) { /* the same schema check: a replica of another database is a mistake */
    if (hw_cli_pg_connect(s.pg_read, HW_WEB_SCHEMA, &pg))
      return 1;
    PQfinish(pg);
  }
  signal(SIGPIPE, SIG_IGN);

  hw_web_config cfg = {
      .listen = s.listen, .pg = s.pg, .pg_read = s.pg_read, .redis_host = rhost, .redis_port = rport,
      .web_root = s.web_root, .pg_pool = s.pg_pool, .session_ttl_s = s.session_ttl_s,
      .login_window_s = s.login_window_s, .login_max_user_failures = s.login_max_user_failures,
      .login_max_addr_failures = s.login_max_addr_failures,
      .max_logins_in_flight = s.max_logins_in_flight, .page_max = s.page_max,
      .export_max_rows = s.export_max_rows, .track_max_rows = s.track_max_rows,
      .offline_after_s = s.offline_after_s, .moving_min_kmh = s.moving_min_kmh,
      .cookie_secure = s.cookie_secure, .max_body = s.max_body, .admin_max_body = s.admin_max_body,
      .metrics_listen = s.metrics_listen,
      .stream_max_clients = s.stream_max_clients, .stream_flush_ms = s.stream_flush_ms,
      .crackdown = {s.phaseout_min_km, s.audit_tolerance_kg, s.audit_min_load_pct}, .map_style = s.map_style,
      .map_tiles = s.map_tiles, .kpi_score = s.kpi_score,
      .kpi_timeout_ms = s.kpi_timeout_ms,
  };
  hw_web_main m = {.loop = uv_default_loop()};
  uv_signal_init(m.loop, &m.sigint);
  uv_signal_init(m.loop, &m.sigterm);
  m.sigint.data = m.sigterm.data = &m;
  rc = hw_web_start(&m.web, m.loop, &cfg);
  if (rc) {
    hw_error("web", NULL, "start failed: %s", strerror(-rc));
    m.web = NULL;
    hw_web_main_done(&m);
  } else {
    uv_signal_start(&m.sigint, hw_web_on_signal, SIGINT);
    uv_signal_start(&m.sigterm, hw_web_on_signal, SIGTERM);
  }
  uv_run(m.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(m.loop))
    hw_warn("web", NULL, "loop closed with handles still open");
  return rc ? 1 : 0;
}
