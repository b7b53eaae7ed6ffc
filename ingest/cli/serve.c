/* `haulwatch serve`: the ingest daemon. Runs --workers N workers (h2o's shape: threads in one
 * process, one libuv loop per thread). A worker (hw_daemon) owns, on its loop, a terminal registry
 * and authentication, and wires them with a pipeline of its own (PostgreSQL writer connections,
 * Redis connection, rules engine, rule-state and violation stores) into its server's sessions
 * (hw_backend); it applies its pipeline's backpressure to its server (flow callback). Every
 * worker listens on the same ports with SO_REUSEPORT, so the kernel spreads the connections.
 *
 * Shared between workers, read-only once the threads run: the settings (cfg) and the protobuf
 * frame limit. Everything else is per worker: each loads its own copy of the registry and
 * restores its own copy of the stored rule state (memory: N times one worker's registry and rule
 * state; README "Workers"), and the per-read scratch buffers of the protocols are thread-locals.
 * The process-wide parts live on worker 0's loop, the main thread's: the signals, the metrics
 * endpoint (one listener; it gathers every worker's counters on that worker's loop), and the
 * JT/T 809 listener, centre and slave links (worker 0 only: the centre's outbox, its link rows
 * and its slave links assume one owner per platform, and a platform's connections must meet in
 * one registry).
 *
 * A terminal has one owner at a time inside the process (pipeline/owners.h): the worker whose
 * session authenticated it last. Its JT/T 808 driver card follows it there through the owners
 * table; its rule state follows it through the claim of ownership (docs/ownership.md), which
 * `ownership auto` turns on whenever there is more than one worker; without it the new worker
 * starts a fresh rule state (the old one forgets it).
 *
 * Start-up does the only blocking work, before the loops run: the schema check, then on each
 * worker's thread the rule-state restore, on a connection of its own. A signal stops every
 * worker; each shuts down in the order that loses nothing: stop accepting, commit and ack what is
 * buffered, close the sessions, then the pipeline's other parts and authentication, and last the
 * registry; the process exits when the last worker has stopped. A start that fails part-way, on
 * any worker, stops the others the same way. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/metrics.h"
#include "attach/attach_server.h"
#include "jt808/jt808_session.h"
#include "jt809/jt809_centre.h"
#include "jt809/jt809_session.h"
#include "base/fault.h"
#include "base/log.h"
#include "sinks/migrate.h"
#include "sinks/retention.h"
#include "base/options.h"
#include "protobuf/pb_codec.h"
#include "protobuf/pb_session.h"
#include "pipeline/owners.h"
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
  char alarm_violations[256];
  uint32_t alarm_min_level;
  uint32_t refusal_retention_days;
  uint32_t retain_positions_days;
  char archive_tablespace[64];
  uint32_t archive_after_days;
  uint32_t retention_interval_s;
  uint32_t daily;
  uint32_t daily_flush_s;
  uint32_t track_gap_s;
  uint32_t drift_kmh;
  uint32_t qualified_max_speed_kmh;
  char ownership[8];
  char node_name[64];
  uint32_t rule_save_ms;
  uint32_t proxy_protocol;
  char log_level[8];
  char metrics_listen[64];
  uint32_t metrics_max_connections;
  uint32_t metrics_request_timeout_s;
  uint32_t workers;
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
    HW_OPT_N(C, batch_rows, HW_XSTR(HW_PGW_DEFAULT_ROWS), 1, 1000000, NULL, "a batch of positions holds at most this many rows"),
    HW_OPT_N(C, batch_ms, HW_XSTR(HW_PGW_DEFAULT_MS), 1, 60000, NULL, "... and what arrives in this many ms while every writer is busy (an idle writer commits at once)"),
    HW_OPT_N(C, pg_writers, "2", 1, 16, NULL, "PostgreSQL writer connections committing in parallel (per worker)"),
    HW_OPT_N(C, max_frame, "65536", 64, 16777216, NULL, "largest protobuf frame accepted, bytes"),
    HW_OPT_N(C, idle_timeout_s, "120", 1, 86400, NULL, "close a connection silent this many seconds"),
    HW_OPT_N(C, workers, "0", 0, HW_METRICS_MAX_WORKERS, NULL, "event loops, one thread each, all accepting on the same ports; 0: one per core (README, \"Workers\": what follows a terminal between workers)"),
    HW_OPT_N(C, high_water, "200000", 1000, 100000000, NULL, "stop reading sockets above this many uncommitted rows (per worker)"),
    HW_OPT_N(C, low_water, "100000", 0, 100000000, NULL, "read again below this many (per worker)"),
    HW_OPT_N(C, max_connections, "100000", 1, 10000000, NULL, "connections accepted at once (per worker)"),
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
    HW_OPT_S(C, alarm_violations, HW_RULES_DEF_ALARM_VIOLATIONS, NULL, "active-safety alarm kinds that are violations while moving, comma-separated, of dsm_fatigue, dsm_phone, dsm_smoking, dsm_distracted, adas_forward_collision, adas_lane_departure, adas_headway, adas_pedestrian (empty: none)"),
    HW_OPT_N(C, alarm_min_level, HW_XSTR(HW_RULES_DEF_ALARM_MIN_LEVEL), 1, 255, NULL, "... at this alarm level or above (the devices send 1 or 2)"),
    HW_OPT_N(C, late_hold_s, HW_XSTR(HW_RULES_DEF_HOLD_S), 0, 86400, NULL, "how long fixes after a gap wait for back-filled data before the gap is judged, s"),
    /* The assessment's daily figures (README, "KPIs"); report rebuild reads the same settings. */
    HW_OPT_B(C, daily, "true", "keep the daily figures per vehicle (vehicle_daily) for the KPIs"),
    HW_OPT_N(C, daily_flush_s, HW_XSTR(HW_DAILY_DEF_FLUSH_S), 1, 86400, NULL, "write the daily figures this often, s"),
    HW_OPT_N(C, track_gap_s, HW_XSTR(HW_DAYSTATS_DEF_TRACK_GAP_S), 1, 86400, NULL, "KPIs: a track segment longer than this is incomplete, s"),
    HW_OPT_N(C, drift_kmh, HW_XSTR(HW_DAYSTATS_DEF_DRIFT_KMH), 1, 100000, NULL, "KPIs: a fix implying more than this speed from the last good one is drift, km/h"),
    HW_OPT_N(C, qualified_max_speed_kmh, HW_XSTR(HW_DAYSTATS_DEF_MAX_SPEED_KMH), 1, 2000, NULL, "KPIs: a record reporting more than this speed is unqualified, km/h"),
    /* Many nodes (README, "Many nodes"; docs/ownership.md). */
    HW_OPT_S(C, ownership, "auto", NULL, "one owner per terminal, across workers and across daemons sharing the database: claim a terminal when it authenticates, fence rule-state and violation writes by the claim's epoch; auto, true or false (auto: on with more than one worker and the rules on)"),
    HW_OPT_S(C, node_name, "", NULL, "this daemon's name in terminal_owner (empty: HOSTNAME:PID)"),
    HW_OPT_N(C, rule_save_ms, HW_XSTR(HW_RSTORE_INTERVAL_MS), 100, 3600000, NULL, "save the changed rule states this often, ms"),
    HW_OPT_B(C, proxy_protocol, "false", "every protobuf and JT/T 808 connection starts with a PROXY protocol v2 header (HAProxy send-proxy-v2); one without is closed"),
    HW_OPT_N(C, refusal_retention_days, "90", 0, 36500, NULL, "delete auth_refusals rows whose last attempt is older than this, days (0: keep)"),
    /* The data lifecycle (README, "Data lifecycle"; sinks/retention.h). */
    HW_RETENTION_OPTIONS(C),
    HW_OPT_N(C, retention_interval_s, "3600", 1, 86400 * 7, NULL, "run the retention round (drops and moves, one node at a time) this often, s; the first 10 s after start (or sooner)"),
    HW_OPT_N(C, stats_interval_s, "10", 0, 3600, NULL, "log throughput every N seconds (0: never)"),
    HW_OPT_S(C, log_level, "info", "HAULWATCH_LOG_LEVEL", "debug, info, warn or error"),
    HW_OPT_S(C, metrics_listen, "", NULL, "serve /metrics, /healthz and /readyz on ADDR:PORT, e.g. 127.0.0.1:9108 (off when empty)"),
    HW_OPT_N(C, metrics_max_connections, HW_XSTR(HW_HTTP_DEF_MAX_CONNECTIONS), 1, 100000, NULL, "metrics HTTP connections open at once"),
    HW_OPT_N(C, metrics_request_timeout_s, "10", 1, 3600, NULL, "a metrics HTTP request must arrive within this many seconds"),
};
#undef C

typedef struct hw_serve hw_serve;

/* What the setting ownership comes to (hw_serve_ownership). */
typedef enum hw_serve_ownership_mode {
  HW_OWN_OFF = 0,
  HW_OWN_WORKERS, /* auto, with several workers: claims between them, no other daemon */
  HW_OWN_NODES,   /* true: claims between workers and between daemons sharing the database */
} hw_serve_ownership_mode;

/* One worker: its loop and every part on it. */
typedef struct hw_daemon {
  hw_serve *serve;
  int index;          /* 0: the main thread's loop, which also holds the process-wide parts */
  uv_loop_t *loop;
  uv_loop_t own_loop; /* the loop of workers 1..N-1 */
  uv_thread_t thread;
  int thread_started;
  /* Owned here and lent out through backend (and the registry to the pipeline): every terminal's
   * record, and authentication. The registry goes last: every other part points into it. */
  hw_registry registry;
  hw_auth *auth;
  hw_pipeline *pipeline;
  hw_server *server;
  hw_jt809_centre *jt809; /* NULL unless --jt809-listen, and on worker 0 only */
  hw_retention *retention; /* NULL when nothing is to be dropped or moved, and on workers 1.. */
  hw_attach_server *attach; /* NULL unless --attachment-listen; its listener on worker 0 only */
  hw_backend backend;
  /* Wakes this loop from another thread: a stop request, a metrics gather. */
  uv_async_t wake;
  atomic_int stop_requested;
  atomic_uint_fast64_t gather_gen; /* the gather asked for; gather_done: the last one answered */
  uint64_t gather_done;
  uv_timer_t stats;
  int handles;        /* wake and stats are initialised */
  int stopping;
  int stopped;        /* every part has stopped: wake and stats are closing */
  int pending;        /* parts still stopping after the server closed */
  int jt808;          /* the JT/T 808 listener is on */
  int start_rc;
  uint64_t last_rows;
} hw_daemon;

/* The process: the workers, and the parts there is one of, on worker 0's loop. */
struct hw_serve {
  const hw_serve_config *cfg;
  const char *rhost;
  int rport;
  unsigned n;
  hw_daemon *workers;      /* owned, n */
  hw_owners *owners;       /* owned; NULL with one worker */
  uv_loop_t *loop;         /* worker 0's */
  hw_serve_ownership_mode ownership; /* cfg->ownership resolved (hw_serve_ownership) */
  uv_signal_t sigint, sigterm;
  uv_async_t done;         /* a worker has stopped */
  int handles;             /* done is initialised */
  int signals;             /* sigint and sigterm are (after a successful start only) */
  int stopping;
  unsigned stopped;        /* workers stopped (under mu) */
  hw_metrics *metrics;     /* NULL unless --metrics-listen */
  /* The start barrier and the metrics gather. */
  uv_mutex_t mu;
  uv_cond_t cv;
  unsigned started;        /* workers whose start returned */
  int go;                  /* set once the listeners are open (or the start failed): loops run */
  hw_metrics_snapshot *acc; /* the gather in progress, NULL when none */
  uint64_t gen;
  unsigned answered;
};

#define HW_SERVE_GATHER_MS 2000 /* a worker that does not add its counters in this long is missing */

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

static void hw_daemon_on_handle_closed(uv_handle_t *h) { (void)h; }

/* A worker has stopped (any thread). Counted and sent under the lock: worker 0's loop closes
 * sv->done once it sees the last count, so no send may come after that. */
static void hw_serve_worker_stopped(hw_serve *sv) {
  uv_mutex_lock(&sv->mu);
  sv->stopped++;
  uv_async_send(&sv->done);
  uv_mutex_unlock(&sv->mu);
}

static void hw_daemon_part_stopped(void *arg) {
  hw_daemon *d = arg;
  if (--d->pending > 0)
    return;
  hw_registry_free(&d->registry);
  d->stopped = 1;
  if (d->handles) {
    uv_close((uv_handle_t *)&d->wake, hw_daemon_on_handle_closed);
    uv_close((uv_handle_t *)&d->stats, hw_daemon_on_handle_closed);
  }
  hw_info("serve", NULL, "stopped");
  hw_serve *sv = d->serve;
  hw_serve_worker_stopped(sv);
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

static void hw_daemon_on_retention_stopped(void *arg) {
  hw_daemon *d = arg;
  d->retention = NULL;
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
  if (d->retention) {
    d->pending++;
    hw_retention_stop(d->retention, hw_daemon_on_retention_stopped, d);
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
  if (d->server)
    hw_server_close(d->server, hw_daemon_on_server_closed, d);
  else
    hw_daemon_on_server_closed(d);
}

/* Stop accepting, commit and ack what is buffered, then close the rest (the drain's callbacks). */
static void hw_daemon_stop(hw_daemon *d) {
  if (d->stopping)
    return;
  d->stopping = 1;
  uv_timer_stop(&d->stats);
  hw_info("serve", NULL, "committing what is buffered, then stopping");
  hw_server_stop_accepting(d->server);
  hw_pipeline_drain(d->pipeline, hw_daemon_on_drained, d);
}

/* This worker's counters into the gather in progress, on this worker's loop. */
static void hw_daemon_gather(hw_daemon *d, uint64_t gen) {
  hw_serve *sv = d->serve;
  hw_metrics_sources src = {.pipeline = d->pipeline, .server = d->server, .jt808 = d->jt808,
                            .pg_writers = sv->cfg->pg_writers, .worker = (unsigned)d->index};
  uv_mutex_lock(&sv->mu);
  if (sv->acc && sv->gen == gen) {
    hw_metrics_collect(sv->acc, &src);
    sv->answered++;
    uv_cond_signal(&sv->cv);
  }
  uv_mutex_unlock(&sv->mu);
}

static void hw_daemon_on_wake(uv_async_t *h) {
  hw_daemon *d = h->data;
  if (d->stopped)
    return;
  uint64_t gen = atomic_load(&d->gather_gen);
  if (gen != d->gather_done) {
    d->gather_done = gen;
    hw_daemon_gather(d, gen);
  }
  if (atomic_load(&d->stop_requested))
    hw_daemon_stop(d);
}

static void hw_daemon_request_stop(hw_daemon *d) {
  atomic_store(&d->stop_requested, 1);
  uv_async_send(&d->wake);
}

/* hw_metrics_gather_fn: workers 1..N-1 add their counters on their loops while worker 0's waits
 * (a scrape holds it for as long as the busiest loop takes to get to the request). */
static int hw_serve_gather(void *arg, hw_metrics_snapshot *acc) {
  hw_serve *sv = arg;
  int rc = 0;
  uv_mutex_lock(&sv->mu);
  sv->acc = acc;
  sv->answered = 0;
  uint64_t gen = ++sv->gen;
  for (unsigned i = 1; i < sv->n; i++) {
    atomic_store(&sv->workers[i].gather_gen, gen);
    uv_async_send(&sv->workers[i].wake);
  }
  uint64_t deadline = uv_hrtime() + (uint64_t)HW_SERVE_GATHER_MS * 1000000u;
  while (sv->answered < sv->n - 1) {
    uint64_t now = uv_hrtime();
    if (now >= deadline || uv_cond_timedwait(&sv->cv, &sv->mu, deadline - now) == UV_ETIMEDOUT) {
      if (sv->answered < sv->n - 1)
        rc = -ETIMEDOUT;
      break;
    }
  }
  sv->acc = NULL; /* a late answer adds nothing */
  uv_mutex_unlock(&sv->mu);
  return rc;
}

/* A worker has stopped; when all have, worker 0's loop may end. */
static void hw_serve_on_done(uv_async_t *h) {
  hw_serve *sv = h->data;
  uv_mutex_lock(&sv->mu);
  int all = sv->stopped == sv->n;
  uv_mutex_unlock(&sv->mu);
  if (!all || !sv->handles)
    return;
  sv->handles = 0;
  if (sv->signals) {
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
  }
  uv_close((uv_handle_t *)&sv->done, NULL);
  if (sv->n > 1)
    hw_info("serve", NULL, "all %u workers stopped", sv->n);
}

/* Stops every worker; the metrics endpoint first: it reads the parts that are about to stop. */
static void hw_serve_stop(hw_serve *sv) {
  sv->stopping = 1;
  if (sv->metrics) {
    hw_metrics_stop(sv->metrics, NULL, NULL);
    sv->metrics = NULL;
  }
  for (unsigned i = 0; i < sv->n; i++)
    if (sv->workers[i].start_rc == 0)
      hw_daemon_request_stop(&sv->workers[i]);
}

static void hw_serve_on_signal(uv_signal_t *h, int signum) {
  hw_serve *sv = h->data;
  if (sv->stopping) {
    hw_warn("serve", NULL, "second signal: exiting now, uncommitted fixes are not acknowledged");
    _exit(1);
  }
  hw_info("serve", NULL, "%s: every worker commits what is buffered, then stops", strsignal(signum));
  hw_serve_stop(sv);
}

static void hw_daemon_on_stats(uv_timer_t *t) {
  hw_daemon *d = t->data;
  if (d->stopping)
    return; /* the server and pipeline are being taken down */
  /* a line per worker, named by the log's worker= field */
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
          "evicted_unauth=%llu accept_failed=%llu read_yields=%llu", (unsigned long long)ss.unauthenticated,
          (unsigned long long)ss.accepted, (unsigned long long)ss.refused_max_connections,
          (unsigned long long)ss.refused_per_source, (unsigned long long)ss.closed_auth_timeout,
          (unsigned long long)ss.closed_preauth_buffer, (unsigned long long)ss.evicted_unauth,
          (unsigned long long)ss.accept_failed, (unsigned long long)ss.read_yields);
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

/* Starts every part of worker d on d->loop, on the thread that will run it. On failure the parts
 * started so far are closing (the caller runs the loop to let them finish). pg: the worker's
 * start-up connection, for the rule-state restore. */
static int hw_daemon_start(hw_daemon *d, PGconn *pg) {
  const hw_serve_config *cfg = d->serve->cfg;
  const char *rhost = d->serve->rhost;
  int rport = d->serve->rport, rc;
  /* Cannot fail on Unix but for a lack of descriptors: libuv only initialises these. */
  if ((rc = uv_async_init(d->loop, &d->wake, hw_daemon_on_wake))) {
    hw_error("serve", NULL, "cannot start: %s", uv_strerror(rc));
    d->stopping = 1;
    d->pending = 1;
    hw_daemon_part_stopped(d);
    return rc;
  }
  uv_timer_init(d->loop, &d->stats);
  d->wake.data = d->stats.data = d;
  d->handles = 1;
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
      .owners = d->serve->owners,
      .worker = d->index,
      .ownership = d->serve->ownership != HW_OWN_OFF,
      .ownership_alone = d->serve->ownership == HW_OWN_WORKERS,
      .node_name = cfg->node_name,
      .rule_save_ms = cfg->rule_save_ms,
  };
  /* Each worker claims under a name of its own (with several, NAME/wN): a claim by another
   * worker of the same process is a take-over like one by another node, never a reclaim. */
  char node[160];
  char host[64] = "haulwatch";
  if (!cfg->node_name[0]) {
    (void)gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(host + strlen(host), sizeof host - strlen(host), ":%ld", (long)getpid());
  }
  const char *base = cfg->node_name[0] ? cfg->node_name : host;
  if (d->serve->n > 1)
    snprintf(node, sizeof node, "%s/w%d", base, d->index);
  else
    snprintf(node, sizeof node, "%s", base);
  pc.node_name = node;
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
  pc.rules_cfg.alarm_min_level = cfg->alarm_min_level;
  if (hw_rules_alarm_kinds(cfg->alarm_violations, &pc.rules_cfg.alarm_violations)) {
    hw_error("serve", NULL, "alarm_violations: unknown kind in \"%s\"", cfg->alarm_violations);
    rc = -EINVAL;
    goto fail;
  }
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
  if (cfg->jt809_listen[0] && d->index == 0) {
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
  hw_retention_config rcfg = {.retain_days = cfg->retain_positions_days,
                              .archive_tablespace = cfg->archive_tablespace,
                              .archive_after_days = cfg->archive_after_days,
                              .interval_ms = cfg->retention_interval_s * 1000u};
  if (d->index == 0 && hw_retention_enabled(&rcfg) &&
      (rc = hw_retention_start(&d->retention, d->loop, cfg->pg, &rcfg))) {
    d->retention = NULL;
    hw_error("serve", NULL, "cannot start the retention runner: %s", strerror(-rc));
    goto fail;
  }
  if (cfg->attachment_listen[0]) {
    /* One listener, on worker 0 (an upload's pieces and its resume meet in one server); the
     * other workers' servers listen on nothing and only tell their terminals where it is. */
    hw_attach_config ac = {.listen = d->index == 0 ? cfg->attachment_listen : NULL,
                           .dir = cfg->attachment_dir,
                           .public_addr = cfg->attachment_public_addr[0]
                                              ? cfg->attachment_public_addr
                                              : cfg->attachment_listen,
                           .pg_conninfo = cfg->pg,
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
                         .max_unauth = cfg->max_unauth,
                         .reuseport = d->serve->n > 1};
  if ((rc = HW_FAULT("serve.server")) ||
      (rc = hw_server_init(&d->server, d->loop, &sc, &d->backend))) {
    hw_error("serve", NULL, "cannot start the server: %s", strerror(-rc));
    goto fail;
  }
  /* With rules on, nothing is read before the registry's first load (HW_FLOW_READY). */
  if (!hw_pipeline_ready(d->pipeline))
    hw_server_pause(d->server);
  d->jt808 = cfg->jt808_listen[0] != 0;
  if (cfg->stats_interval_s)
    uv_timer_start(&d->stats, hw_daemon_on_stats, cfg->stats_interval_s * 1000ull,
                   cfg->stats_interval_s * 1000ull);
  return 0;
fail:
  hw_daemon_abort(d);
  return rc;
}

/* Descriptors the daemon keeps for itself beside its sessions: listeners, the loop's own, the
 * PostgreSQL and Redis connections (and their reconnects), the metrics server's clients. */
#define HW_SERVE_FD_RESERVE 64u

/* A session is a descriptor. Left to run out, libuv accepts and closes the peers it cannot hold
 * without telling the daemon (no log, no counter), and a PostgreSQL or Redis connection that drops
 * then cannot come back: every ack would stop. So: the soft open files limit is raised towards
 * the hard one as far as max_connections (per worker) times the workers needs, and
 * max_connections is lowered to each worker's share of what the limit leaves after
 * HW_SERVE_FD_RESERVE; a peer above it is refused on the max_connections path (counted, logged,
 * closed) and the reserve stays free. */
static void hw_serve_fit_open_files(hw_serve_config *cfg, unsigned workers) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return;
  rlim_t want = (rlim_t)cfg->max_connections * workers + HW_SERVE_FD_RESERVE;
  if (rl.rlim_cur < want && rl.rlim_max > rl.rlim_cur) {
    rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
      hw_info("serve", NULL, "open files limit raised from %llu to %llu (hard limit %s%llu)",
              (unsigned long long)before, (unsigned long long)rl.rlim_cur,
              rl.rlim_max == RLIM_INFINITY ? "unlimited, " : "",
              (unsigned long long)(rl.rlim_max == RLIM_INFINITY ? 0 : rl.rlim_max));
    else if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
      return;
  }
  if (rl.rlim_cur >= want)
    return;
  rlim_t room = rl.rlim_cur > 2 * HW_SERVE_FD_RESERVE ? rl.rlim_cur - HW_SERVE_FD_RESERVE
                                                      : rl.rlim_cur / 2;
  uint32_t fit = (uint32_t)(room / workers);
  hw_warn("serve", NULL, "open files limit %llu (hard %llu) cannot hold max_connections %u on "
          "each of %u workers: max_connections lowered to %u per worker, %llu descriptors kept "
          "for the daemon's own connections; raise LimitNOFILE / `ulimit -n` for more",
          (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, cfg->max_connections,
          workers, fit, (unsigned long long)(rl.rlim_cur - (rlim_t)fit * workers));
  cfg->max_connections = fit ? fit : 1;
}

/* Opens worker d's listeners, once every worker has started, so that the kernel spreads the
 * first connections over all of them (a worker listening early would get every one). Runs on
 * the main thread while d's loop is not running yet (its thread waits for sv->go). On failure
 * the caller stops every worker. */
static int hw_daemon_listen(hw_daemon *d) {
  const hw_serve_config *cfg = d->serve->cfg;
  int rc;
  if ((rc = HW_FAULT("serve.listen")) ||
      (rc = hw_server_listen_ex(d->server, cfg->listen, &hw_pb_proto, (int)cfg->proxy_protocol)))
    return rc;
  if (cfg->jt808_listen[0] &&
      ((rc = HW_FAULT("serve.listen_jt808")) ||
       (rc = hw_server_listen_ex(d->server, cfg->jt808_listen, &hw_jt808_proto,
                                 (int)cfg->proxy_protocol))))
    return rc;
  /* Worker 0 only: see the header comment. */
  if (cfg->jt809_listen[0] && d->index == 0 &&
      (rc = hw_server_listen(d->server, cfg->jt809_listen, &hw_jt809_proto)))
    return rc;
  return 0;
}

/* Worker 1..N-1: its own loop, from its start to its stop. */
static void hw_daemon_thread(void *arg) {
  hw_daemon *d = arg;
  hw_serve *sv = d->serve;
  hw_log_set_worker(d->index);
  int rc = uv_loop_init(&d->own_loop);
  PGconn *pg = NULL;
  if (rc) {
    hw_error("serve", NULL, "cannot make an event loop: %s", uv_strerror(rc));
  } else {
    d->loop = &d->own_loop;
    pg = PQconnectdb(sv->cfg->pg);
    if (PQstatus(pg) != CONNECTION_OK) {
      hw_error("serve", NULL, "cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
      rc = -ECONNREFUSED;
      /* nothing started: count it stopped, as a failed start would */
      d->stopped = 1;
      hw_serve_worker_stopped(sv);
    } else {
      rc = hw_daemon_start(d, pg);
    }
    PQfinish(pg);
  }
  uv_mutex_lock(&sv->mu);
  d->start_rc = rc ? rc : 0;
  sv->started++;
  uv_cond_broadcast(&sv->cv);
  while (!sv->go) /* the main thread opens the listeners meanwhile */
    uv_cond_wait(&sv->cv, &sv->mu);
  uv_mutex_unlock(&sv->mu);
  if (d->loop) {
    uv_run(d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(d->loop))
      hw_warn("serve", NULL, "loop closed with handles still open");
  } else {
    hw_serve_worker_stopped(sv);
  }
  hw_pb_codec_thread_free();
  hw_session_thread_free();
}

/* The metrics endpoint: one listener for the process, on worker 0's loop. */
static int hw_serve_start_metrics(hw_serve *sv) {
  const hw_serve_config *cfg = sv->cfg;
  hw_daemon *d = &sv->workers[0];
  hw_metrics_config mc = {.listen = cfg->metrics_listen, .pg_conninfo = cfg->pg,
                          .gather = sv->n > 1 ? hw_serve_gather : NULL, .gather_arg = sv};
  hw_http_config_default(&mc.http);
  mc.http.max_connections = cfg->metrics_max_connections;
  mc.http.request_timeout_ms = cfg->metrics_request_timeout_s * 1000u;
  mc.http.max_body = 4096; /* its endpoints take no body: a little memory per connection */
  hw_metrics_sources ms = {.pipeline = d->pipeline, .server = d->server, .jt808 = d->jt808,
                           .pg_writers = cfg->pg_writers, .worker = 0};
  int rc;
  if ((rc = HW_FAULT("serve.metrics")) || (rc = hw_metrics_start(&sv->metrics, sv->loop, &mc, &ms))) {
    sv->metrics = NULL;
    hw_error("serve", NULL, "cannot serve metrics on %s: %s", cfg->metrics_listen, strerror(-rc));
  }
  return rc;
}

/* The setting ownership (auto, true, false, or another spelling the settings table takes for a
 * boolean) for this run: *mode, and *why for the start line. auto is on with more than one worker
 * and the rules on, because a terminal that reconnects lands on whichever worker the kernel picks
 * and its rule state reaches that worker only through a claim (README "Workers"); with one
 * worker a claim is two statements per login for nothing. auto also means that no other daemon
 * shares the database (they need true on every daemon), which the start's restore relies on
 * (hw_pipeline_config.ownership_alone). -EINVAL for any other word. */
static int hw_serve_ownership(const char *v, unsigned workers, int rules,
                              hw_serve_ownership_mode *mode, const char **why) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < HW_ARRAY_SIZE(yes); i++) {
    if (!strcmp(v, yes[i])) {
      *mode = HW_OWN_NODES;
      *why = rules ? "set on" : "set on, but the rules are off: nothing is claimed";
      return 0;
    }
    if (!strcmp(v, no[i])) {
      *mode = HW_OWN_OFF;
      *why = workers > 1 && rules ? "set off: a terminal that moves to another worker starts a "
                                    "fresh rule state there"
                                  : "set off";
      return 0;
    }
  }
  if (strcmp(v, "auto"))
    return -EINVAL;
  *mode = workers > 1 && rules ? HW_OWN_WORKERS : HW_OWN_OFF;
  *why = !rules ? "auto: the rules are off, nothing to claim"
         : workers > 1 ? "auto: several workers, a terminal's rule state follows it between them "
                         "through the claim; no other daemon shares the database (else say true)"
                       : "auto: one worker (say true when other daemons share the database)";
  return 0;
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
  {
    char why[256];
    hw_retention_config rcfg = {.retain_days = cfg.retain_positions_days,
                                .archive_tablespace = cfg.archive_tablespace,
                                .archive_after_days = cfg.archive_after_days};
    if (hw_retention_check(&rcfg, why, sizeof why)) {
      fprintf(stderr, "serve: %s\n", why);
      return 2;
    }
  }
  char rhost[128];
  int rport;
  if (hw_parse_hostport(cfg.redis, rhost, sizeof rhost, &rport)) {
    fprintf(stderr, "serve: --redis '%s' is not HOST:PORT\n", cfg.redis);
    return 2;
  }
  unsigned n = cfg.workers ? cfg.workers : uv_available_parallelism();
  if (n < 1)
    n = 1;
  if (n > HW_METRICS_MAX_WORKERS)
    n = HW_METRICS_MAX_WORKERS;
  hw_serve_ownership_mode ownership;
  const char *ownership_why;
  if (hw_serve_ownership(cfg.ownership, n, (int)cfg.rules, &ownership, &ownership_why)) {
    fprintf(stderr, "serve: ownership must be auto, true or false, not '%s'\n", cfg.ownership);
    return 2;
  }
  hw_info("serve", NULL, "%u worker%s, ownership %s (%s)", n, n > 1 ? "s" : "",
          ownership ? "on" : "off", ownership_why);
  /* The start-up connection: schema check, then worker 0's rule-state restore (the other workers
   * restore on connections of their own, in parallel); closed before the loop runs. */
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
  hw_serve_fit_open_files(&cfg, n);
  hw_pb_proto_set_max_frame(cfg.max_frame); /* before any worker thread: read-only afterwards */

  hw_serve sv = {.cfg = &cfg, .rhost = rhost, .rport = rport, .n = n, .loop = loop,
                .ownership = ownership};
  if (!(sv.workers = calloc(n, sizeof *sv.workers)) || (n > 1 && hw_owners_new(&sv.owners, n))) {
    hw_error("serve", NULL, "cannot start: out of memory");
    free(sv.workers);
    PQfinish(pg);
    return 1;
  }
  uv_mutex_init(&sv.mu);
  uv_cond_init(&sv.cv);
  if ((rc = uv_async_init(loop, &sv.done, hw_serve_on_done))) {
    hw_error("serve", NULL, "cannot start: %s", uv_strerror(rc));
    hw_owners_free(sv.owners);
    free(sv.workers);
    PQfinish(pg);
    return 1;
  }
  sv.done.data = &sv;
  sv.handles = 1;
  if (n > 1)
    hw_log_set_worker(0);
  for (unsigned i = 0; i < n; i++) {
    sv.workers[i].serve = &sv;
    sv.workers[i].index = (int)i;
  }
  for (unsigned i = 1; i < n; i++) {
    hw_daemon *d = &sv.workers[i];
    if ((rc = uv_thread_create(&d->thread, hw_daemon_thread, d)) == 0) {
      d->thread_started = 1;
      continue;
    }
    hw_error("serve", NULL, "cannot start worker %u's thread: %s", i, uv_strerror(rc));
    uv_mutex_lock(&sv.mu);
    d->start_rc = rc ? rc : -EAGAIN;
    sv.started++;
    sv.stopped++; /* nothing of it runs */
    uv_mutex_unlock(&sv.mu);
  }
  sv.workers[0].loop = loop;
  rc = hw_daemon_start(&sv.workers[0], pg);
  PQfinish(pg);
  uv_mutex_lock(&sv.mu);
  sv.workers[0].start_rc = rc;
  sv.started++;
  while (sv.started < n)
    uv_cond_wait(&sv.cv, &sv.mu);
  uv_mutex_unlock(&sv.mu);
  int failed = 0;
  for (unsigned i = 0; i < n; i++)
    failed |= sv.workers[i].start_rc != 0;
  for (unsigned i = 0; i < n && !failed; i++) {
    hw_log_set_worker(n > 1 ? (int)i : -1); /* its lines name the worker */
    failed = hw_daemon_listen(&sv.workers[i]) != 0;
  }
  hw_log_set_worker(n > 1 ? 0 : -1);
  uv_mutex_lock(&sv.mu);
  sv.go = 1;
  uv_cond_broadcast(&sv.cv);
  uv_mutex_unlock(&sv.mu);
  if (!failed && cfg.metrics_listen[0])
    failed = hw_serve_start_metrics(&sv) != 0;
  if (failed) {
    /* Those that started stop as on a signal (one whose listeners opened may have accepted). */
    sv.stopping = 1;
    for (unsigned i = 0; i < n; i++)
      if (sv.workers[i].start_rc == 0)
        hw_daemon_request_stop(&sv.workers[i]);
  } else {
    /* Only now: a failed start closes by itself, and a signal meanwhile ends the process. Cannot
     * fail on Unix: libuv only initialises these. */
    uv_signal_init(loop, &sv.sigint);
    uv_signal_init(loop, &sv.sigterm);
    sv.sigint.data = sv.sigterm.data = &sv;
    sv.signals = 1;
    uv_signal_start(&sv.sigint, hw_serve_on_signal, SIGINT);
    uv_signal_start(&sv.sigterm, hw_serve_on_signal, SIGTERM);
    hw_info("serve", NULL, "haulwatch %s ready (%u workers; per worker: batch %u rows / %u ms, "
            "%u writer connections)", HW_VERSION, n, cfg.batch_rows, cfg.batch_ms, cfg.pg_writers);
  }
  /* Until stopped by a signal or, after a failed start, until what started has closed. */
  uv_run(loop, UV_RUN_DEFAULT);
  for (unsigned i = 1; i < n; i++)
    if (sv.workers[i].thread_started)
      uv_thread_join(&sv.workers[i].thread);
  hw_pb_codec_thread_free();
  hw_session_thread_free();
  hw_log_set_worker(-1);
  uv_cond_destroy(&sv.cv);
  uv_mutex_destroy(&sv.mu);
  hw_owners_free(sv.owners);
  free(sv.workers);
  return failed ? 1 : 0;
}

int hw_cmd_serve(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  int rc = hw_serve_run(loop, argc, argv);
  if (uv_loop_close(loop))
    hw_warn("serve", NULL, "loop closed with handles still open");
  return rc;
}
