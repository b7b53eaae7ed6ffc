/* The daemon's metrics and health endpoints (`serve --metrics-listen`): GET /metrics (Prometheus
 * text), GET /healthz, GET /readyz. Owns its HTTP server (http/http_server.h), a PostgreSQL
 * connection of its own for the readiness check (the schema version, every
 * HW_METRICS_CHECK_MS), and the rendered text of each scrape; borrows the daemon's parts
 * (hw_metrics_sources), which must stay up until hw_metrics_stop.
 *
 * Every metric is defined once, in the table in metrics.c. A scrape gathers a snapshot
 * (hw_metrics_collect, which adds one loop's counters into it), then renders the table from the
 * snapshot. Counters and histograms add, so with one loop per worker thread (serve --workers) the
 * scrape collects its own loop's sources directly and every other loop's on that loop, through
 * the gather callback serve gives (cli/serve.c), into one snapshot, and renders once. A few
 * series also carry a worker label (connections accepted and open, positions committed), so an
 * operator sees how the kernel spread the connections. */
#ifndef HW_METRICS_H
#define HW_METRICS_H

#include "http/http_server.h"
#include "http/prom.h"
#include "jt808/jt808_session.h"
#include "net/server.h"
#include "pipeline/pipeline.h"

#define HW_METRICS_CHECK_MS 5000
#define HW_METRICS_PROTOS 3 /* pb, jt808, jt809: the labels of protocol */
#define HW_METRICS_MAX_WORKERS 64 /* serve --workers at most: the per-worker series */

/* One loop's parts (borrowed). jt808: the JT/T 808 listener is on. */
typedef struct hw_metrics_sources {
  hw_pipeline *pipeline;
  hw_server *server;
  int jt808;
  unsigned pg_writers; /* configured writer connections */
  unsigned worker;     /* this loop's worker index, < HW_METRICS_MAX_WORKERS */
} hw_metrics_sources;

typedef struct hw_metrics_proto {
  uint64_t frames, fixes;
  uint64_t bad_frames[HW_BAD_FRAME__COUNT];
  uint64_t refusals[HW_REFUSE__COUNT];
  uint64_t conn_auth, conn_unauth;
} hw_metrics_proto;

/* What a scrape shows, summed over loops. Plain numbers: the table reads fields by offset. */
typedef struct hw_metrics_snapshot {
  hw_metrics_proto proto[HW_METRICS_PROTOS];
  uint64_t fixes_in, fixes_flagged, acks_delivered;
  /* the network layer's limits (net/server.h hw_server_stats), indexed by hw_metrics_limit */
  uint64_t conn_accepted, conn_limited[7], read_yields;
  uint64_t pauses, paused, backlog;
  uint64_t rows_committed, batches_committed, conflict_replays, merge_batches, rows_folded;
  uint64_t pg_reconnects, pg_connections_up;
  hw_lat_hist commit_latency, ack_latency;
  uint64_t redis_connected, redis_reconnects, redis_writes, redis_dirty;
  uint64_t redis_lag_ms; /* the largest over loops, not the sum */
  uint64_t redis_position_events, redis_position_publishes;
  uint64_t violation_events, violations_opened[HW_VIOL__COUNT];
  uint64_t vstore_written, vstore_dropped, vstore_retries, vstore_pending;
  uint64_t rule_saves, rule_save_cycles, rule_save_failures;
  uint64_t owner_claims, owner_replayed, owner_lost, owner_fenced; /* docs/ownership.md */
  uint64_t jt808_disconnected;
  /* per worker (index: hw_metrics_sources.worker); workers: loops collected */
  uint64_t workers, workers_no_pg, workers_no_redis, worker_max; /* worker_max: highest index + 1 */
  uint64_t worker_accepted[HW_METRICS_MAX_WORKERS], worker_sessions[HW_METRICS_MAX_WORKERS];
  uint64_t worker_committed[HW_METRICS_MAX_WORKERS];
  /* the metrics server itself */
  uint64_t http_requests, http_responses[6], http_bad_requests, http_timeouts;
  uint64_t ready;            /* 1 when /readyz answers 200 */
  double start_time_seconds; /* process start, Unix time */
} hw_metrics_snapshot;

/* Adds one loop's counters into *acc (zero it first). Run on that loop. */
void hw_metrics_collect(hw_metrics_snapshot *acc, const hw_metrics_sources *src);
/* Renders every metric of the table. 0 or -ENOMEM. */
int hw_metrics_render(const hw_metrics_snapshot *s, hw_prom *out) HW_MUST_CHECK;

typedef struct hw_metrics hw_metrics;

/* Adds every other loop's counters into *acc, each collected on its own loop (hw_metrics_collect
 * there); blocks the caller until they are in. 0, or a negative errno when a loop did not answer
 * in time (its counters are then missing from acc). */
typedef int (*hw_metrics_gather_fn)(void *arg, hw_metrics_snapshot *acc);

typedef struct hw_metrics_config {
  const char *listen;      /* "HOST:PORT" */
  hw_metrics_gather_fn gather; /* NULL: one loop, the sources given to hw_metrics_start */
  void *gather_arg;
  const char *pg_conninfo; /* for the readiness check's own connection */
  hw_http_config http;     /* zero fields: the HTTP layer's defaults */
} hw_metrics_config;

int hw_metrics_start(hw_metrics **out, uv_loop_t *loop, const hw_metrics_config *cfg,
                     const hw_metrics_sources *src) HW_MUST_CHECK;
int hw_metrics_port(const hw_metrics *m);
/* Stops answering, closes the listener, connections and the check connection, frees m; done_cb
 * (may be NULL) afterwards. The sources are not touched after this call. */
void hw_metrics_stop(hw_metrics *m, void (*done_cb)(void *arg), void *arg);

#endif
