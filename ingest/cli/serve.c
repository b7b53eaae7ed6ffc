/* `haulwatch serve`: the ingest daemon. Owns, on one libuv loop, the terminal registry and
 * authentication, and wires them with the pipeline into the server's sessions (hw_backend);
 * applies the pipeline's backpressure to the server (flow callback). Start-up does the only
 * blocking work, before the loop runs: the schema check and the rule-state restore, on one
 * connection. Shuts down in the order that loses nothing: stop reading, commit and ack what is
 * buffered, close the sessions, then the pipeline's other parts and authentication, and last the
 * registry. A start that fails part-way closes what it started the same way. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/metrics.h"
#include "attach/attach_server.h"
#include "jt808/jt808_session.h"
#include "jt809/jt809_centre.h"
#include "jt809/jt809_session.h"
#include "base/fault.h"
#include "base/log.h"
#include "sinks/migrate.h"
#include "base/options.h"
#include "protobuf/pb_session.h"
#include "pipeline/backend.h"
#include "net/server.h"

typedef struct hw_serve_config {
  char listen[64];
  char jt808_listen[64];
  char jt809_listen[64];
  char attachment_listen[64];
  char attachment_dir[1024];
  char attachment_public_addr[300];
  uint32_t attachment_max_file;
  uint32_t attachment_max_files;
  uint32_t attachment_max_conn_bytes;
  uint32_t attachment_max_connections;
  uint32_t attachment_auth_timeout_s;
  uint32_t attachment_idle_s;
  uint32_t attachment_total_s;
  uint32_t jt809_slave_timeout_ms;
  uint32_t jt809_slave_heartbeat_s;
  uint32_t jt809_slave_backoff_min_ms;
  uint32_t jt809_slave_backoff_max_ms;
  uint32_t jt809_request_expire_s;
  uint32_t jt809_link_seen_s;
  uint32_t jt809_scan_s;
  char pg[1024];
  char redis[128];
  uint32_t batch_rows;
  uint32_t batch_ms;
  uint32_t pg_writers;
  uint32_t max_frame;
  uint32_t idle_timeout_s;
  uint32_t high_water;
  uint32_t low_water;
  uint32_t max_connections;
  uint32_t auth_timeout_s;
  uint32_t preauth_buffer;
  uint32_t max_unauth_per_source;
  uint32_t max_unauth;
  uint32_t stats_interval_s;
  uint32_t redis_flush_ms;
  uint32_t publish_positions;
  uint32_t rules;
  uint32_t max_future_s;
  uint32_t max_past_s;
  uint32_t max_speed_kmh;
  uint32_t speeding_min_s;
  uint32_t continuous_limit_s;
  uint32_t min_rest_s;
  uint32_t daily_limit_s;
  uint32_t offline_gap_s;
  uint32_t offline_dist_m;
  uint32_t late_hold_s;
  uint32_t refusal_retention_days;
  uint32_t daily;
  uint32_t daily_flush_s;
  uint32_t track_gap_s;
  uint32_t drift_kmh;
  uint32_t qualified_max_speed_kmh;
  char log_level[8];
  char metrics_listen[64];
  uint32_t metrics_max_connections;
  uint32_t metrics_request_timeout_s;
} hw_serve_config;

#define C hw_serve_config
static const hw_option hw_serve_options[] = {
    HW_OPT_S(C, listen, "127.0.0.1:7100", NULL, "protobuf listener ADDR:PORT (loopback unless told otherwise)"),
    HW_OPT_S(C, jt808_listen, "", NULL, "JT/T 808 listener ADDR:PORT (off when empty)"),
    HW_OPT_S(C, jt809_listen, "", NULL, "JT/T 809 main link listener ADDR:PORT for subordinate platforms (off when empty)"),
    HW_OPT_S(C, attachment_listen, "", NULL, "active-safety attachment listener ADDR:PORT where terminals upload alarm photos and clips (off when empty)"),
    HW_OPT_S(C, attachment_dir, "attachments", NULL, "directory the attachments are stored in (ALARM/NAME under it; created if missing)"),
    HW_OPT_S(C, attachment_public_addr, "", NULL, "HOST:PORT terminals are told to upload to in 0x9208 (empty: attachment_listen)"),
    HW_OPT_N(C, attachment_max_file, HW_XSTR(HW_ATTACH_DEF_MAX_FILE), 1, 4294967295u, NULL, "largest attachment file accepted, bytes"),
    HW_OPT_N(C, attachment_max_files, HW_XSTR(HW_ATTACH_DEF_MAX_FILES), 1, 255, NULL, "files one alarm may announce"),
    HW_OPT_N(C, attachment_max_conn_bytes, HW_XSTR(HW_ATTACH_DEF_MAX_CONN_BYTES), 1, 4294967295u, NULL, "data bytes one attachment connection may send, resends included; beyond, it is closed"),
    HW_OPT_N(C, attachment_max_connections, HW_XSTR(HW_ATTACH_DEF_MAX_CONNECTIONS), 1, 1000000, NULL, "attachment connections open at once"),
    HW_OPT_N(C, attachment_auth_timeout_s, HW_XSTR(HW_ATTACH_DEF_AUTH_TIMEOUT_S), 1, 3600, NULL, "close an attachment connection without a valid 0x1210 after this many s"),
    HW_OPT_N(C, attachment_idle_s, HW_XSTR(HW_ATTACH_DEF_IDLE_S), 1, 86400, NULL, "close an attachment connection silent this many s"),
    HW_OPT_N(C, attachment_total_s, HW_XSTR(HW_ATTACH_DEF_TOTAL_S), 1, 86400, NULL, "close an attachment connection open longer than this, s"),
    HW_OPT_N(C, jt809_slave_timeout_ms, "10000", 100, 600000, NULL, "JT/T 809 slave link: connect, 0x9002 and 0x9006 answer timeout, ms"),
    HW_OPT_N(C, jt809_slave_heartbeat_s, "60", 1, 3600, NULL, "JT/T 809 slave link: send 0x9005 this often, s"),
    HW_OPT_N(C, jt809_slave_backoff_min_ms, "1000", 10, 600000, NULL, "JT/T 809 slave link: first reconnect delay, ms (doubles up to the max)"),
    HW_OPT_N(C, jt809_slave_backoff_max_ms, "60000", 10, 3600000, NULL, "JT/T 809 slave link: longest reconnect delay, ms"),
    HW_OPT_N(C, jt809_request_expire_s, "86400", 60, 8640000, NULL, "JT/T 809: inspections and supervisions not sent within this many s (platform offline) are closed unsent"),
    HW_OPT_N(C, jt809_link_seen_s, "10", 1, 3600, NULL, "JT/T 809: refresh last_seen_at of this daemon's open link rows this often, s; open rows of other daemons not refreshed for 3 times this are closed as left by a dead daemon (down at their last refresh)"),
    HW_OPT_N(C, jt809_scan_s, "30", 1, 3600, NULL, "JT/T 809: look for unsent inspections and supervisions this often even without a notification, s"),
    HW_OPT_S(C, pg, "", "HAULWATCH_PG", "PostgreSQL connection string (libpq conninfo or URI)"),
    HW_OPT_S(C, redis, "127.0.0.1:6379", "HAULWATCH_REDIS", "Redis HOST:PORT"),
    HW_OPT_N(C, batch_rows, HW_XSTR(HW_PGW_DEFAULT_ROWS), 1, 1000000, NULL, "commit a batch of positions at this many rows"),
    HW_OPT_N(C, batch_ms, HW_XSTR(HW_PGW_DEFAULT_MS), 1, 60000, NULL, "... or when its oldest row is this many ms old"),
    HW_OPT_N(C, pg_writers, "2", 1, 16, NULL, "PostgreSQL writer connections committing in parallel"),
    HW_OPT_N(C, max_frame, "65536", 64, 16777216, NULL, "largest protobuf frame accepted, bytes"),
    HW_OPT_N(C, idle_timeout_s, "120", 1, 86400, NULL, "close a connection silent this many seconds"),
    HW_OPT_N(C, high_water, "200000", 1000, 100000000, NULL, "stop reading sockets above this many uncommitted rows"),
    HW_OPT_N(C, low_water, "100000", 0, 100000000, NULL, "read again below this many"),
    HW_OPT_N(C, max_connections, "100000", 1, 10000000, NULL, "connections accepted at once"),
    HW_OPT_N(C, auth_timeout_s, "30", 1, 3600, NULL, "close a connection not authenticated this many seconds after it opened"),
    HW_OPT_N(C, preauth_buffer, "4096", 512, 1048576, NULL, "bytes of input a connection may hold before it is authenticated"),
    HW_OPT_N(C, max_unauth_per_source, "256", 1, 10000000, NULL, "unauthenticated connections at once from one address (IPv6: one /64)"),
    HW_OPT_N(C, max_unauth, "10000", 1, 10000000, NULL, "unauthenticated connections at once in all; a new one closes the oldest"),
    HW_OPT_N(C, redis_flush_ms, "1000", 0, 60000, NULL, "write a vehicle's latest state to Redis at most this often, ms (0: at once)"),
    HW_OPT_B(C, publish_positions, "true", "publish each latest state written to Redis as a live-map event on hw:positions, batched per flush round"),
    HW_OPT_B(C, rules, "true", "evaluate the safety rules (speeding, fatigue, retired classes, ...)"),
    HW_OPT_N(C, max_future_s, HW_XSTR(HW_QUALITY_DEF_MAX_FUTURE_S), 0, 86400 * 365, NULL, "flag fixes whose device time is this far ahead of receipt"),
    HW_OPT_N(C, max_past_s, HW_XSTR(HW_QUALITY_DEF_MAX_PAST_S), 0, 86400 * 3650, NULL, "flag fixes whose device time is this far behind receipt"),
    HW_OPT_N(C, max_speed_kmh, HW_XSTR(HW_QUALITY_DEF_MAX_SPEED_KMH), 10, 2000, NULL, "flag fixes above this speed, reported or implied by a jump"),
    /* Rule thresholds used where a vehicle's class leaves them unset (vehicle_classes). */
    HW_OPT_N(C, speeding_min_s, HW_XSTR(HW_RULES_DEF_SPEEDING_MIN_S), 0, 86400, NULL, "default: shortest speeding episode that is a violation, s"),
    HW_OPT_N(C, continuous_limit_s, HW_XSTR(HW_RULES_DEF_CONTINUOUS_LIMIT_S), 60, 86400, NULL, "default: continuous driving limit, s"),
    HW_OPT_N(C, min_rest_s, HW_XSTR(HW_RULES_DEF_MIN_REST_S), 60, 86400, NULL, "default: shortest stop that ends continuous driving, s"),
    HW_OPT_N(C, daily_limit_s, HW_XSTR(HW_RULES_DEF_DAILY_LIMIT_S), 0, 86400, NULL, "default: daily driving limit (GMT+8 day), s; 0 = none"),
    HW_OPT_N(C, offline_gap_s, HW_XSTR(HW_RULES_DEF_OFFLINE_GAP_S), 60, 86400 * 7, NULL, "silence longer than this with displacement is offline_displacement, s"),
    HW_OPT_N(C, offline_dist_m, HW_XSTR(HW_RULES_DEF_OFFLINE_DIST_M), 100, 1000000, NULL, "... when the vehicle reappears at least this far away, m"),
    HW_OPT_N(C, late_hold_s, HW_XSTR(HW_RULES_DEF_HOLD_S), 0, 86400, NULL, "how long fixes after a gap wait for back-filled data before the gap is judged, s"),
    /* The assessment's daily figures (README, "KPIs"); report rebuild reads the same settings. */
    HW_OPT_B(C, daily, "true", "keep the daily figures per vehicle (vehicle_daily) for the KPIs"),
    HW_OPT_N(C, daily_flush_s, HW_XSTR(HW_DAILY_DEF_FLUSH_S), 1, 86400, NULL, "write the daily figures this often, s"),
    HW_OPT_N(C, track_gap_s, HW_XSTR(HW_DAYSTATS_DEF_TRACK_GAP_S), 1, 86400, NULL, "KPIs: a track segment longer than this is incomplete, s"),
    HW_OPT_N(C, drift_kmh, HW_XSTR(HW_DAYSTATS_DEF_DRIFT_KMH), 1, 100000, NULL, "KPIs: a fix implying more than this speed from the last good one is drift, km/h"),
    HW_OPT_N(C, qualified_max_speed_kmh, HW_XSTR(HW_DAYSTATS_DEF_MAX_SPEED_KMH), 1, 2000, NULL, "KPIs: a record reporting more than this speed is unqualified, km/h"),
    HW_OPT_N(C, refusal_retention_days, "90", 0, 36500, NULL, "delete auth_refusals rows whose last attempt is older than this, days (0: keep)"),
    HW_OPT_N(C, stats_interval_s, "10", 0, 3600, NULL, "log throughput every N seconds (0: never)"),
    HW_OPT_S(C, log_level, "info", "HAULWATCH_LOG_LEVEL", "debug, info, warn or error"),
    HW_OPT_S(C, metrics_listen, "", NULL, "serve /metrics, /healthz and /readyz on ADDR:PORT, e.g. 127.0.0.1:9108 (off when empty)"),
    HW_OPT_N(C, metrics_max_connections, HW_XSTR(HW_HTTP_DEF_MAX_CONNECTIONS), 1, 100000, NULL, "metrics HTTP connections open at once"),
    HW_OPT_N(C, metrics_request_timeout_s, "10", 1, 3600, NULL, "a metrics HTTP request must arrive within this many seconds"),
};
#undef C

typedef struct hw_daemon {
  uv_loop_t *loop;
  /* Owned here and lent out through backend (and the registry to the pipeline): every terminal's
   * record, and authentication. The registry goes last: every other part points into it. */
  hw_registry registry;
  hw_auth *auth;
  hw_pipeline *pipeline;
  hw_server *server;
  hw_metrics *metrics; /* NULL unless --metrics-listen */
  hw_jt809_centre *jt809; /* NULL unless --jt809-listen */
  hw_attach_server *attach; /* NULL unless --attachment-listen */
  hw_backend backend;
  uv_signal_t sigint, sigterm;
  uv_timer_t stats;
  int handles;        /* sigint, sigterm and stats are initialised */
  int stopping;
  int pending;        /* parts still stopping after the server closed */
  int jt808;          /* the JT/T 808 listener is on */
  uint64_t last_rows;
} hw_daemon;

/* The pipeline's backpressure, applied to the server. */
static void hw_daemon_on_flow(void *arg, hw_pipeline_flow ev) {
  hw_daemon *d = arg;
  if (!d->server || d->stopping)
    return;
  if (ev == HW_FLOW_HIGH_WATER)
    hw_server_pause(d->server);
  else
    hw_server_resume(d->server);
}

static void hw_daemon_part_stopped(void *arg) {
  hw_daemon *d = arg;
  if (--d->pending > 0)
    return;
  hw_registry_free(&d->registry);
  if (d->handles) {
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->stats, NULL);
  }
  hw_info("serve", NULL, "stopped");
}

static void hw_daemon_on_pipeline_stopped(void *arg) {
  hw_daemon *d = arg;
  d->pipeline = NULL;
  hw_daemon_part_stopped(d);
}

static void hw_daemon_on_jt809_stopped(void *arg) {
  hw_daemon *d = arg;
  d->jt809 = NULL;
  hw_daemon_part_stopped(d);
}

static void hw_daemon_on_attach_stopped(void *arg) {
  hw_daemon *d = arg;
  hw_daemon_part_stopped(d);
}

static void hw_daemon_on_auth_stopped(void *arg) {
  hw_daemon *d = arg;
  d->auth = NULL;
  hw_daemon_part_stopped(d);
}

/* The sessions are gone (none held a look-up or owed an ack any more): the rest can stop. */
static void hw_daemon_on_server_closed(void *arg) {
  hw_daemon *d = arg;
  d->server = NULL;
  d->pending = 1; /* held until both stops are issued */
  if (d->pipeline) {
    d->pending++;
    hw_pipeline_stop(d->pipeline, hw_daemon_on_pipeline_stopped, d);
  }
  if (d->auth) {
    d->pending++;
    hw_auth_stop(d->auth, hw_daemon_on_auth_stopped, d);
  }
  if (d->attach) { /* its uploads check the registry, which goes last */
    d->pending++;
    hw_attach_server *a = d->attach;
    d->attach = NULL;
    hw_attach_server_stop(a, hw_daemon_on_attach_stopped, d);
  }
  if (d->jt809) { /* after the sessions: their slave links record their down times through it */
    d->pending++;
    hw_jt809_centre_stop(d->jt809, hw_daemon_on_jt809_stopped, d);
  }
  hw_daemon_part_stopped(d);
}

static void hw_daemon_on_drained(void *arg) {
  hw_daemon *d = arg;
  hw_server_close(d->server, hw_daemon_on_server_closed, d);
}

/* A start that failed part-way: nothing was accepted, so nothing is drained; whatever started
 * closes in the usual order once the loop runs. */
static void hw_daemon_abort(hw_daemon *d) {
  d->stopping = 1;
  if (d->metrics) {
    hw_metrics_stop(d->metrics, NULL, NULL);
    d->metrics = NULL;
  }
  if (d->server)
    hw_server_close(d->server, hw_daemon_on_server_closed, d);
  else
    hw_daemon_on_server_closed(d);
}

static void hw_daemon_on_signal(uv_signal_t *h, int signum) {
  hw_daemon *d = h->data;
  if (d->stopping) {
    hw_warn("serve", NULL, "second signal: exiting now, uncommitted fixes are not acknowledged");
    _exit(1);
  }
  d->stopping = 1;
  uv_timer_stop(&d->stats);
  hw_info("serve", NULL, "%s: committing what is buffered, then stopping", strsignal(signum));
  /* First: it reads the parts that are about to stop. */
  if (d->metrics) {
    hw_metrics_stop(d->metrics, NULL, NULL);
    d->metrics = NULL;
  }
  hw_server_stop_accepting(d->server);
  hw_pipeline_drain(d->pipeline, hw_daemon_on_drained, d);
}

static void hw_daemon_on_stats(uv_timer_t *t) {
  hw_daemon *d = t->data;
  if (d->stopping)
    return; /* the server and pipeline are being taken down */
  hw_pipeline_stats st;
  hw_pipeline_get_stats(d->pipeline, &st);
  double secs = (double)uv_timer_get_repeat(t) / 1000.0;
  hw_info("stats", NULL,
          "sessions=%zu rows_per_s=%.0f rows=%llu backlog=%zu pauses=%llu "
          "conflict_replays=%llu merges=%llu folded=%llu flagged=%llu violation_events=%llu "
          "redis_connected=%d "
          "redis_dirty=%zu redis_writes=%llu position_events=%llu position_publishes=%llu",
          hw_server_sessions(d->server), (double)(st.pg.rows_committed - d->last_rows) / secs,
          (unsigned long long)st.pg.rows_committed,
          st.backlog, (unsigned long long)st.pauses, (unsigned long long)st.pg.conflict_replays,
          (unsigned long long)st.pg.merge_batches, (unsigned long long)st.pg.rows_folded,
          (unsigned long long)st.fixes_flagged, (unsigned long long)st.violation_events,
          st.redis.connected, st.redis.dirty, (unsigned long long)st.redis.writes,
          (unsigned long long)st.redis.events_published, (unsigned long long)st.redis.publishes);
  d->last_rows = st.pg.rows_committed;
  hw_info("stats", NULL, "daily fixes_incremental=%llu fixes_deferred=%llu recomputes=%llu "
          "rows_written=%llu jobs=%llu job_failures=%llu",
          (unsigned long long)st.daily.fixes_incremental, (unsigned long long)st.daily.fixes_deferred,
          (unsigned long long)st.daily.recomputes, (unsigned long long)st.daily.rows_written,
          (unsigned long long)st.daily.jobs, (unsigned long long)st.daily.job_failures);
  hw_server_stats ss;
  hw_server_get_stats(d->server, &ss);
  hw_info("stats", NULL, "net unauthenticated=%llu accepted=%llu refused_max_connections=%llu "
          "refused_per_source=%llu closed_auth_timeout=%llu closed_preauth_buffer=%llu "
          "evicted_unauth=%llu read_yields=%llu", (unsigned long long)ss.unauthenticated,
          (unsigned long long)ss.accepted, (unsigned long long)ss.refused_max_connections,
          (unsigned long long)ss.refused_per_source, (unsigned long long)ss.closed_auth_timeout,
          (unsigned long long)ss.closed_preauth_buffer, (unsigned long long)ss.evicted_unauth,
          (unsigned long long)ss.read_yields);
  if (d->attach) {
    hw_attach_stats a;
    hw_attach_server_get_stats(d->attach, &a);
    hw_info("stats", NULL, "attach accepted=%llu lists=%llu lists_refused=%llu files_refused=%llu "
            "pieces=%llu bytes=%llu overlap_bytes=%llu resends_asked=%llu files_complete=%llu "
            "closed_limit=%llu closed_protocol=%llu closed_timeout=%llu",
            (unsigned long long)a.accepted, (unsigned long long)a.lists,
            (unsigned long long)a.lists_refused, (unsigned long long)a.files_refused,
            (unsigned long long)a.pieces, (unsigned long long)a.bytes,
            (unsigned long long)a.overlap_bytes, (unsigned long long)a.resends_asked,
            (unsigned long long)a.files_complete, (unsigned long long)a.closed_limit,
            (unsigned long long)a.closed_protocol, (unsigned long long)a.closed_timeout);
  }
  if (d->jt808) {
    hw_jt808_stats j;
    hw_jt808_get_stats(&j);
    hw_info("stats", NULL, "jt808 frames=%llu bad_frames=%llu refused=%llu invalid_fixes=%llu "
            "disconnected=%llu", (unsigned long long)j.frames, (unsigned long long)j.bad_frames,
            (unsigned long long)j.refused, (unsigned long long)j.invalid_fixes,
            (unsigned long long)j.disconnected);
  }
}

/* serve refuses an older schema: running against it would fail on the first batch instead. */
static int hw_serve_check_schema(PGconn *c) {
  int version = 0, rc;
  if ((rc = hw_schema_version(c, &version)))
    return rc;
  if (version < hw_schema_latest()) {
    hw_error("serve", NULL,
             "database schema is at version %d, this binary needs %d: run `haulwatch migrate` first",
             version, hw_schema_latest());
    return -EINVAL;
  }
  if (version > hw_schema_latest()) {
    hw_error("serve", NULL, "database schema %d is newer than this binary knows (%d): upgrade haulwatch",
             version, hw_schema_latest());
    return -EINVAL;
  }
  return 0;
}

/* Starts every part on d->loop. On failure the parts started so far are closing (the caller runs
 * the loop to let them finish). pg: the start-up connection, for the rule-state restore. */
static int hw_daemon_start(hw_daemon *d, const hw_serve_config *cfg, const char *rhost, int rport,
                           PGconn *pg) {
  int rc;
  if ((rc = HW_FAULT("serve.auth")) || (rc = hw_auth_start(&d->auth, d->loop, cfg->pg, cfg->refusal_retention_days))) {
    hw_error("serve", NULL, "cannot start authentication: %s", strerror(-rc));
    goto fail;
  }
  hw_pipeline_config pc = {
      .registry = &d->registry,
      .pg = {.conninfo = cfg->pg, .batch_rows = cfg->batch_rows, .batch_ms = cfg->batch_ms,
             .connections = cfg->pg_writers},
      .pg_conninfo_control = cfg->pg,
      /* in-flight limit and timeout: the module's defaults */
      .redis = {.host = rhost, .port = rport, .flush_ms = cfg->redis_flush_ms},
      .high_water = cfg->high_water,
      .low_water = cfg->low_water,
      .on_flow = hw_daemon_on_flow,
      .flow_arg = d,
      .rules = (int)cfg->rules,
      .zone_cell_e6 = 20000,
  };
  hw_rules_config_default(&pc.rules_cfg);
  pc.redis.publish = (int)cfg->publish_positions;
  pc.redis.moving_dkmh = pc.rules_cfg.moving_dkmh; /* the rules' idea of moving, on the map too */
  pc.rules_cfg.quality.max_future_ms = (int64_t)cfg->max_future_s * 1000;
  pc.rules_cfg.quality.max_past_ms = (int64_t)cfg->max_past_s * 1000;
  pc.rules_cfg.quality.max_speed_dkmh = cfg->max_speed_kmh * 10;
  pc.rules_cfg.speeding_min_s = cfg->speeding_min_s;
  pc.rules_cfg.continuous_limit_s = cfg->continuous_limit_s;
  pc.rules_cfg.min_rest_s = cfg->min_rest_s;
  pc.rules_cfg.daily_limit_s = cfg->daily_limit_s;
  pc.rules_cfg.offline_gap_s = cfg->offline_gap_s;
  pc.rules_cfg.offline_dist_m = cfg->offline_dist_m;
  pc.rules_cfg.hold_s = cfg->late_hold_s;
  pc.daily = (int)cfg->daily;
  pc.daily_cfg.flush_ms = cfg->daily_flush_s * 1000u;
  hw_daystats_config_default(&pc.daily_cfg.stats);
  pc.daily_cfg.stats.max_future_ms = (int64_t)cfg->max_future_s * 1000;
  pc.daily_cfg.stats.track_gap_ms = (int64_t)cfg->track_gap_s * 1000;
  pc.daily_cfg.stats.drift_dkmh = cfg->drift_kmh * 10;
  pc.daily_cfg.stats.max_speed_dkmh = cfg->qualified_max_speed_kmh * 10;
  if ((rc = hw_pipeline_start(&d->pipeline, d->loop, &pc))) {
    d->pipeline = NULL; /* closing by itself */
    hw_error("serve", NULL, "cannot start the pipeline: %s", strerror(-rc));
    goto fail;
  }
  /* Blocking, here rather than on the loop: hw_rule_store_load streams the stored fixes through
   * the engine before any live fix, and the schema check has the connection open anyway. */
  if ((rc = hw_pipeline_restore_rules(d->pipeline, pg)))
    goto fail;
  if (cfg->jt809_listen[0]) {
    hw_jt809_centre_config jc = {.conninfo = cfg->pg,
                                 .slave_timeout_ms = cfg->jt809_slave_timeout_ms,
                                 .slave_heartbeat_ms = cfg->jt809_slave_heartbeat_s * 1000u,
                                 .slave_backoff_min_ms = cfg->jt809_slave_backoff_min_ms,
                                 .slave_backoff_max_ms = cfg->jt809_slave_backoff_max_ms,
                                 .request_expire_s = cfg->jt809_request_expire_s,
                                 .scan_ms = cfg->jt809_scan_s * 1000u,
                                 .seen_ms = cfg->jt809_link_seen_s * 1000u};
    if (jc.slave_backoff_max_ms < jc.slave_backoff_min_ms)
      jc.slave_backoff_max_ms = jc.slave_backoff_min_ms;
    if ((rc = hw_jt809_centre_start(&d->jt809, d->loop, &d->registry, &jc))) {
      d->jt809 = NULL;
      hw_error("serve", NULL, "cannot start the JT/T 809 centre: %s", strerror(-rc));
      goto fail;
    }
  }
  if (cfg->attachment_listen[0]) {
    hw_attach_config ac = {.listen = cfg->attachment_listen, .dir = cfg->attachment_dir,
                           .public_addr = cfg->attachment_public_addr, .pg_conninfo = cfg->pg,
                           .max_file = cfg->attachment_max_file,
                           .max_files = cfg->attachment_max_files,
                           .max_conn_bytes = cfg->attachment_max_conn_bytes,
                           .max_connections = cfg->attachment_max_connections,
                           .auth_timeout_ms = cfg->attachment_auth_timeout_s * 1000u,
                           .idle_ms = cfg->attachment_idle_s * 1000u,
                           .total_ms = cfg->attachment_total_s * 1000u};
    if ((rc = hw_attach_server_start(&d->attach, d->loop, &d->registry, &ac))) {
      d->attach = NULL;
      hw_error("serve", NULL, "cannot start the attachment listener on %s: %s",
               cfg->attachment_listen, strerror(-rc));
      goto fail;
    }
  }
  d->backend = (hw_backend){.registry = &d->registry, .auth = d->auth, .pipeline = d->pipeline,
                            .pg_conninfo = cfg->pg, .jt809 = d->jt809, .attach = d->attach};
  hw_server_config sc = {.idle_timeout_s = cfg->idle_timeout_s,
                         .max_connections = cfg->max_connections,
                         .max_write_queue = 1u << 20,
                         .auth_timeout_s = cfg->auth_timeout_s,
                         .preauth_buffer = cfg->preauth_buffer,
                         .max_unauth_per_source = cfg->max_unauth_per_source,
                         .max_unauth = cfg->max_unauth};
  if ((rc = HW_FAULT("serve.server")) ||
      (rc = hw_server_init(&d->server, d->loop, &sc, &d->backend))) {
    hw_error("serve", NULL, "cannot start the server: %s", strerror(-rc));
    goto fail;
  }
  /* With rules on, nothing is read before the registry's first load (HW_FLOW_READY). */
  if (!hw_pipeline_ready(d->pipeline))
    hw_server_pause(d->server);
  hw_pb_proto_set_max_frame(cfg->max_frame);
  if ((rc = HW_FAULT("serve.listen")) ||
      (rc = hw_server_listen(d->server, cfg->listen, &hw_pb_proto)))
    goto fail;
  if (cfg->jt808_listen[0] &&
      ((rc = HW_FAULT("serve.listen_jt808")) ||
       (rc = hw_server_listen(d->server, cfg->jt808_listen, &hw_jt808_proto))))
    goto fail;
  d->jt808 = cfg->jt808_listen[0] != 0;
  if (cfg->jt809_listen[0] && (rc = hw_server_listen(d->server, cfg->jt809_listen, &hw_jt809_proto)))
    goto fail;
  if (cfg->metrics_listen[0]) {
    hw_metrics_config mc = {.listen = cfg->metrics_listen, .pg_conninfo = cfg->pg};
    hw_http_config_default(&mc.http);
    mc.http.max_connections = cfg->metrics_max_connections;
    mc.http.request_timeout_ms = cfg->metrics_request_timeout_s * 1000u;
    mc.http.max_body = 4096; /* its endpoints take no body: a little memory per connection */
    hw_metrics_sources ms = {.pipeline = d->pipeline, .server = d->server, .jt808 = d->jt808,
                             .pg_writers = cfg->pg_writers};
    if ((rc = HW_FAULT("serve.metrics")) || (rc = hw_metrics_start(&d->metrics, d->loop, &mc, &ms))) {
      d->metrics = NULL;
      hw_error("serve", NULL, "cannot serve metrics on %s: %s", cfg->metrics_listen, strerror(-rc));
      goto fail;
    }
  }
  /* Cannot fail on Unix: libuv only initialises these. */
  uv_signal_init(d->loop, &d->sigint);
  uv_signal_init(d->loop, &d->sigterm);
  uv_timer_init(d->loop, &d->stats);
  d->handles = 1;
  d->sigint.data = d->sigterm.data = d->stats.data = d;
  uv_signal_start(&d->sigint, hw_daemon_on_signal, SIGINT);
  uv_signal_start(&d->sigterm, hw_daemon_on_signal, SIGTERM);
  if (cfg->stats_interval_s)
    uv_timer_start(&d->stats, hw_daemon_on_stats, cfg->stats_interval_s * 1000ull,
                   cfg->stats_interval_s * 1000ull);
  return 0;
fail:
  hw_daemon_abort(d);
  return rc;
}

int hw_serve_run(uv_loop_t *loop, int argc, char **argv) {
  hw_serve_config cfg;
  memset(&cfg, 0, sizeof cfg);
  int npos, rc = hw_options_parse(hw_serve_options, HW_ARRAY_SIZE(hw_serve_options), &cfg, argc, argv,
                                  "usage: haulwatch serve [OPTIONS]\n\nRuns the ingest daemon.",
                                  NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (hw_log_set_level(cfg.log_level)) {
    fprintf(stderr, "serve: unknown log level '%s'\n", cfg.log_level);
    return 2;
  }
  if (!cfg.pg[0]) {
    fprintf(stderr, "serve: no PostgreSQL given: --pg CONNINFO or HAULWATCH_PG\n");
    return 2;
  }
  if (cfg.low_water >= cfg.high_water) {
    fprintf(stderr, "serve: low_water must be below high_water\n");
    return 2;
  }
  char rhost[128];
  int rport;
  if (hw_parse_hostport(cfg.redis, rhost, sizeof rhost, &rport)) {
    fprintf(stderr, "serve: --redis '%s' is not HOST:PORT\n", cfg.redis);
    return 2;
  }
  /* The start-up connection: schema check, then the rule-state restore; closed before the loop
   * runs. */
  PGconn *pg = PQconnectdb(cfg.pg);
  if (PQstatus(pg) != CONNECTION_OK) {
    hw_error("serve", NULL, "cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
    PQfinish(pg);
    return 1;
  }
  if (hw_serve_check_schema(pg)) {
    PQfinish(pg);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  hw_daemon d = {.loop = loop};
  rc = hw_daemon_start(&d, &cfg, rhost, rport, pg);
  PQfinish(pg);
  if (rc == 0) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < cfg.max_connections + 64)
      hw_warn("serve", NULL, "open-file limit %llu is below max_connections %u: raise `ulimit -n`",
              (unsigned long long)rl.rlim_cur, cfg.max_connections);
    hw_info("serve", NULL, "haulwatch %s ready (batch %u rows / %u ms, %u writer connections)",
            HW_VERSION, cfg.batch_rows, cfg.batch_ms, cfg.pg_writers);
  }
  /* Until stopped by a signal or, after a failed start, until what started has closed. */
  uv_run(loop, UV_RUN_DEFAULT);
  return rc ? 1 : 0;
}

int hw_cmd_serve(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  int rc = hw_serve_run(loop, argc, argv);
  if (uv_loop_close(loop))
    hw_warn("serve", NULL, "loop closed with handles still open");
  return rc;
}
