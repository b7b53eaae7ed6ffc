/* The daemon's metrics and health endpoints: see metrics.h. The metric table below is the one
 * place a metric is named, typed and described. */
#include "cli/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "sinks/migrate.h"
#include "sinks/pg_async.h"

#define HW_MET "metrics"

static const char *const hw_metrics_proto_names[HW_METRICS_PROTOS] = {"pb", "jt808", "jt809"};

static int hw_metrics_proto_index(const char *name) {
  for (int i = 0; i < HW_METRICS_PROTOS; i++)
    if (!strcmp(name, hw_metrics_proto_names[i]))
      return i;
  return -1;
}

void hw_metrics_collect(hw_metrics_snapshot *a, const hw_metrics_sources *src) {
  if (src->server) {
    hw_server_listener_stats ls[8];
    size_t n = hw_server_listener_stats_get(src->server, ls, HW_ARRAY_SIZE(ls));
    for (size_t i = 0; i < n; i++) {
      int k = hw_metrics_proto_index(ls[i].proto);
      if (k < 0)
        continue;
      hw_metrics_proto *p = &a->proto[k];
      p->frames += ls[i].counters.frames;
      p->fixes += ls[i].counters.fixes;
      a->fixes_in += ls[i].counters.fixes; /* the protocols' counts are the pipeline's input */
      for (int r = 0; r < HW_BAD_FRAME__COUNT; r++)
        p->bad_frames[r] += ls[i].counters.bad_frames[r];
      for (int r = 0; r < HW_REFUSE__COUNT; r++)
        p->refusals[r] += ls[i].counters.refusals[r];
      p->conn_auth += ls[i].authenticated;
      p->conn_unauth += ls[i].unauthenticated;
    }
    hw_server_stats ss;
    hw_server_get_stats(src->server, &ss);
    a->conn_accepted += ss.accepted;
    a->conn_limited[0] += ss.refused_max_connections;
    a->conn_limited[1] += ss.refused_per_source;
    a->conn_limited[2] += ss.evicted_unauth;
    a->conn_limited[3] += ss.closed_auth_timeout;
    a->conn_limited[4] += ss.closed_preauth_buffer;
    a->conn_limited[5] += ss.accept_failed;
    a->conn_limited[6] += ss.closed_proxy_header;
    a->read_yields += ss.read_yields;
    if (src->worker < HW_METRICS_MAX_WORKERS) {
      a->worker_accepted[src->worker] += ss.accepted;
      a->worker_sessions[src->worker] += hw_server_sessions(src->server);
    }
    if (hw_server_paused(src->server))
      a->paused = 1;
  }
  if (src->pipeline) {
    hw_pipeline_stats st;
    hw_pipeline_get_stats(src->pipeline, &st);
    a->fixes_flagged += st.fixes_flagged;
    a->acks_delivered += st.acks_delivered;
    a->pauses += st.pauses;
    a->paused |= (uint64_t)(st.throttled != 0);
    a->backlog += st.backlog;
    a->rows_committed += st.pg.rows_committed;
    a->batches_committed += st.pg.batches_committed;
    a->conflict_replays += st.pg.conflict_replays;
    a->merge_batches += st.pg.merge_batches;
    a->rows_folded += st.pg.rows_folded;
    a->pg_reconnects += st.pg.reconnects;
    a->pg_connections_up += st.pg.connections_up;
    a->workers_no_pg += (uint64_t)(st.pg.connections_up == 0);
    a->workers_no_redis += (uint64_t)(st.redis.connected == 0);
    if (src->worker < HW_METRICS_MAX_WORKERS)
      a->worker_committed[src->worker] += st.pg.rows_committed;
    hw_lat_hist_merge(&a->commit_latency, &st.pg.commit_latency);
    hw_lat_hist_merge(&a->ack_latency, &st.ack_latency);
    a->redis_connected += (uint64_t)(st.redis.connected != 0);
    a->redis_reconnects += st.redis.reconnects;
    a->redis_writes += st.redis.writes;
    a->redis_dirty += st.redis.dirty;
    a->redis_position_events += st.redis.events_published;
    a->redis_position_publishes += st.redis.publishes;
    if (st.redis.lag_ms > a->redis_lag_ms)
      a->redis_lag_ms = st.redis.lag_ms;
    a->violation_events += st.violation_events;
    for (int k = 0; k < HW_VIOL__COUNT; k++)
      a->violations_opened[k] += st.violations_opened[k];
    a->vstore_written += st.violations.written;
    a->vstore_dropped += st.violations.dropped;
    a->vstore_retries += st.violations.retries;
    a->vstore_pending += st.violations.pending;
    a->rule_saves += st.rule_store.saved;
    a->rule_save_cycles += st.rule_store.cycles;
    a->rule_save_failures += st.rule_store.cycles_failed;
    a->owner_claims += st.claims.claims;
    a->owner_replayed += st.claims.replayed;
    a->owner_lost += st.owner_lost;
    a->owner_fenced += st.rule_store.refused + st.violations.fenced;
  }
  a->workers++;
  if (src->worker < HW_METRICS_MAX_WORKERS && src->worker + 1u > a->worker_max)
    a->worker_max = src->worker + 1u;
  if (src->jt808) {
    /* the calling thread's loop: this runs on the loop src belongs to */
    hw_jt808_stats j;
    hw_jt808_get_stats(&j);
    a->jt808_disconnected += j.disconnected;
  }
}

/* --- the table -------------------------------------------------------------------------------- */

/* The table's rows are http/prom.h's hw_prom_metric: emitters get the snapshot as const void *. */
typedef hw_prom_metric hw_metric_def;

#define HW_OFF(f) offsetof(hw_metrics_snapshot, f)

static void hw_emit_connections(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  for (int i = 0; i < HW_METRICS_PROTOS; i++) {
    hw_prom_label a[2] = {{"protocol", hw_metrics_proto_names[i]}, {"state", "authenticated"}};
    hw_prom_u64(p, d->name, a, 2, s->proto[i].conn_auth);
    a[1].value = "unauthenticated";
    hw_prom_u64(p, d->name, a, 2, s->proto[i].conn_unauth);
  }
}

#define HW_EMIT_PER_PROTO(fn, field)                                                       \
  static void fn(hw_prom *p, const hw_metric_def *d, const void *snap) {                   \
    const hw_metrics_snapshot *s = snap;                                                   \
    for (int i = 0; i < HW_METRICS_PROTOS; i++) {                                          \
      hw_prom_label a[1] = {{"protocol", hw_metrics_proto_names[i]}};                      \
      hw_prom_u64(p, d->name, a, 1, s->proto[i].field);                                    \
    }                                                                                      \
  }
HW_EMIT_PER_PROTO(hw_emit_frames, frames)
HW_EMIT_PER_PROTO(hw_emit_fixes, fixes)

static void hw_emit_bad_frames(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  for (int i = 0; i < HW_METRICS_PROTOS; i++)
    for (int r = 0; r < HW_BAD_FRAME__COUNT; r++) {
      if (r == HW_BAD_FRAME_DECODE)
        continue; /* reserved, never counted */
      hw_prom_label a[2] = {{"protocol", hw_metrics_proto_names[i]},
                            {"reason", hw_bad_frame_reason_name(r)}};
      hw_prom_u64(p, d->name, a, 2, s->proto[i].bad_frames[r]);
    }
}

static void hw_emit_refusals(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  for (int i = 0; i < HW_METRICS_PROTOS; i++)
    for (int r = 0; r < HW_REFUSE__COUNT; r++) {
      hw_prom_label a[2] = {{"protocol", hw_metrics_proto_names[i]},
                            {"reason", hw_refuse_reason_name(r)}};
      hw_prom_u64(p, d->name, a, 2, s->proto[i].refusals[r]);
    }
}

/* The limit that refused or closed a connection (README, "Limits on unauthenticated peers"), in
 * the order of hw_metrics_snapshot.conn_limited. */
static void hw_emit_limited(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  static const char *const limit[7] = {"max_connections", "max_unauth_per_source", "max_unauth",
                                       "auth_timeout", "preauth_buffer", "open_files",
                                       "proxy_header"};
  for (int i = 0; i < 7; i++) {
    hw_prom_label a[1] = {{"limit", limit[i]}};
    hw_prom_u64(p, d->name, a, 1, s->conn_limited[i]);
  }
}

static void hw_emit_violations(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  for (int k = 0; k < HW_VIOL__COUNT; k++) {
    hw_prom_label a[1] = {{"kind", hw_violation_kind_name(k)}};
    hw_prom_u64(p, d->name, a, 1, s->violations_opened[k]);
  }
}

static void hw_emit_http_responses(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  static const char *const cls[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int c = 2; c <= 5; c++) {
    hw_prom_label a[1] = {{"class", cls[c]}};
    hw_prom_u64(p, d->name, a, 1, s->http_responses[c]);
  }
}

#define HW_EMIT_PER_WORKER(fn, field)                                                      \
  static void fn(hw_prom *p, const hw_metric_def *d, const void *snap) {                   \
    const hw_metrics_snapshot *s = snap;                                                   \
    for (uint64_t i = 0; i < s->worker_max; i++) {                                         \
      char w[24];                                                                          \
      snprintf(w, sizeof w, "%llu", (unsigned long long)i);                                \
      hw_prom_label a[1] = {{"worker", w}};                                                \
      hw_prom_u64(p, d->name, a, 1, s->field[i]);                                          \
    }                                                                                      \
  }
HW_EMIT_PER_WORKER(hw_emit_worker_accepted, worker_accepted)
HW_EMIT_PER_WORKER(hw_emit_worker_sessions, worker_sessions)
HW_EMIT_PER_WORKER(hw_emit_worker_committed, worker_committed)

static void hw_emit_build(hw_prom *p, const hw_metric_def *d, const void *snap) {
  hw_prom_label a[1] = {{"version", HW_VERSION}};
  hw_prom_u64(p, d->name, a, 1, 1);
}

static void hw_emit_start(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  hw_prom_double(p, d->name, NULL, 0, s->start_time_seconds);
}

static void hw_emit_redis_lag(hw_prom *p, const hw_metric_def *d, const void *snap) {
  const hw_metrics_snapshot *s = snap;
  hw_prom_double(p, d->name, NULL, 0, (double)s->redis_lag_ms / 1000.0);
}

static const hw_metric_def hw_metric_table[] = {
    {"haulwatch_build_info", "gauge", "Always 1; the version as a label.", 0, hw_emit_build},
    {"haulwatch_start_time_seconds", "gauge", "When the daemon started, Unix time.", 0, hw_emit_start},
    {"haulwatch_ready", "gauge", "1 when /readyz answers 200 (PostgreSQL, schema, Redis, no backpressure).", HW_OFF(ready), NULL},
    /* sessions */
    {"haulwatch_connections", "gauge", "Terminal connections open now, by protocol and authentication state.", 0, hw_emit_connections},
    {"haulwatch_connections_accepted_total", "counter", "Terminal connections accepted, on every listener (including those closed at once by a limit).", HW_OFF(conn_accepted), NULL},
    {"haulwatch_connections_limited_total", "counter", "Connections refused or closed by a limit on connections or on unauthenticated peers, by limit.", 0, hw_emit_limited},
    {"haulwatch_workers", "gauge", "Event loops (serve --workers) whose counters this scrape holds.", HW_OFF(workers), NULL},
    {"haulwatch_worker_connections_accepted_total", "counter", "Terminal connections accepted, by worker (the kernel spreads them with SO_REUSEPORT).", 0, hw_emit_worker_accepted},
    {"haulwatch_worker_connections", "gauge", "Terminal connections open now, by worker.", 0, hw_emit_worker_sessions},
    {"haulwatch_worker_positions_committed_total", "counter", "Positions committed to PostgreSQL, by worker.", 0, hw_emit_worker_committed},
    {"haulwatch_read_yields_total", "counter", "Reads that filled a whole turn's buffer, after which the connection waited a loop turn (fairness).", HW_OFF(read_yields), NULL},
    {"haulwatch_frames_total", "counter", "Well-formed frames (messages) received, by protocol.", 0, hw_emit_frames},
    {"haulwatch_fixes_received_total", "counter", "Fixes accepted from terminals and handed to the pipeline, by protocol.", 0, hw_emit_fixes},
    {"haulwatch_bad_frames_total", "counter", "Frames dropped as malformed, by protocol and reason.", 0, hw_emit_bad_frames},
    {"haulwatch_refusals_total", "counter", "Messages or fixes refused, by protocol and reason.", 0, hw_emit_refusals},
    {"haulwatch_jt808_strikeouts_total", "counter", "JT/T 808 terminals disconnected for too many bad frames or messages.", HW_OFF(jt808_disconnected), NULL},
    /* pipeline */
    {"haulwatch_fixes_total", "counter", "Fixes submitted to the pipeline (all protocols).", HW_OFF(fixes_in), NULL},
    {"haulwatch_fixes_flagged_total", "counter", "Fixes stored with a data-quality flag, kept out of the latest state and the rules.", HW_OFF(fixes_flagged), NULL},
    {"haulwatch_acks_total", "counter", "Acknowledgements delivered to terminals after their fixes were committed.", HW_OFF(acks_delivered), NULL},
    {"haulwatch_ack_latency_seconds", "histogram", "From a fix's receipt to its acknowledgement leaving (delivered acks).", HW_OFF(ack_latency), NULL},
    {"haulwatch_backlog_rows", "gauge", "Positions received and not yet committed.", HW_OFF(backlog), NULL},
    {"haulwatch_backpressure_pauses_total", "counter", "Times reading stopped because the backlog reached high_water.", HW_OFF(pauses), NULL},
    {"haulwatch_backpressure_paused", "gauge", "1 while reading is paused by backpressure (or before the registry's first load).", HW_OFF(paused), NULL},
    /* PostgreSQL */
    {"haulwatch_positions_committed_total", "counter", "Positions committed to PostgreSQL.", HW_OFF(rows_committed), NULL},
    {"haulwatch_batches_committed_total", "counter", "Batches committed to PostgreSQL.", HW_OFF(batches_committed), NULL},
    {"haulwatch_batch_commit_duration_seconds", "histogram", "From a batch's first dispatch to its COMMIT, retries included.", HW_OFF(commit_latency), NULL},
    {"haulwatch_batch_conflict_replays_total", "counter", "Batches replayed through the merge after a unique violation.", HW_OFF(conflict_replays), NULL},
    {"haulwatch_batch_merges_total", "counter", "Batches sent straight to the merge (possible duplicates).", HW_OFF(merge_batches), NULL},
    {"haulwatch_positions_folded_total", "counter", "Merged positions that added no row (resends, same-second fixes).", HW_OFF(rows_folded), NULL},
    {"haulwatch_postgres_writer_connections", "gauge", "PostgreSQL writer connections up.", HW_OFF(pg_connections_up), NULL},
    {"haulwatch_postgres_reconnects_total", "counter", "PostgreSQL writer reconnections.", HW_OFF(pg_reconnects), NULL},
    /* Redis */
    {"haulwatch_redis_connected", "gauge", "1 while the latest-state Redis connection of every worker is up.", HW_OFF(redis_connected), NULL},
    {"haulwatch_redis_reconnects_total", "counter", "Latest-state Redis reconnections.", HW_OFF(redis_reconnects), NULL},
    {"haulwatch_redis_writes_total", "counter", "Vehicle latest states written to Redis.", HW_OFF(redis_writes), NULL},
    {"haulwatch_redis_pending_vehicles", "gauge", "Vehicles whose latest state is waiting to be written to Redis.", HW_OFF(redis_dirty), NULL},
    {"haulwatch_redis_lag_seconds", "gauge", "How long the longest-waiting latest state has waited for Redis (pacing: up to redis_flush_ms when healthy).", 0, hw_emit_redis_lag},
    {"haulwatch_redis_position_events_total", "counter", "Live-map position events published on hw:positions (one per latest state written; 0 with publish_positions off).", HW_OFF(redis_position_events), NULL},
    {"haulwatch_redis_position_publishes_total", "counter", "PUBLISH commands that carried them (one per flush pass or 64 KiB batch).", HW_OFF(redis_position_publishes), NULL},
    /* rules */
    {"haulwatch_violation_events_total", "counter", "Violation events (open, update, close) from the rules.", HW_OFF(violation_events), NULL},
    {"haulwatch_violations_opened_total", "counter", "Violation episodes opened, by kind.", 0, hw_emit_violations},
    {"haulwatch_violation_records_written_total", "counter", "Violation episode records committed to PostgreSQL.", HW_OFF(vstore_written), NULL},
    {"haulwatch_violation_records_dropped_total", "counter", "Violation events dropped (too many waiting, or stopping).", HW_OFF(vstore_dropped), NULL},
    {"haulwatch_violation_records_pending", "gauge", "Violation episodes waiting to be written.", HW_OFF(vstore_pending), NULL},
    {"haulwatch_rule_state_saves_total", "counter", "Per-terminal rule states saved to PostgreSQL.", HW_OFF(rule_saves), NULL},
    {"haulwatch_rule_state_save_cycles_total", "counter", "Rule-state save cycles completed.", HW_OFF(rule_save_cycles), NULL},
    {"haulwatch_rule_state_save_failures_total", "counter", "Rule-state save cycles ended by a failed statement.", HW_OFF(rule_save_failures), NULL},
    /* ownership (docs/ownership.md) */
    {"haulwatch_owner_claims_total", "counter", "Terminals claimed by this daemon (ownership on).", HW_OFF(owner_claims), NULL},
    {"haulwatch_owner_replayed_fixes_total", "counter", "Stored fixes replayed by claims.", HW_OFF(owner_replayed), NULL},
    {"haulwatch_owner_lost_total", "counter", "Terminals this daemon learnt another one had claimed.", HW_OFF(owner_lost), NULL},
    {"haulwatch_owner_fenced_writes_total", "counter", "Rule-state saves and violation episodes refused by the ownership fence.", HW_OFF(owner_fenced), NULL},
    /* this endpoint */
    {"haulwatch_http_requests_total", "counter", "Requests routed by the metrics HTTP server.", HW_OFF(http_requests), NULL},
    {"haulwatch_http_responses_total", "counter", "Responses of the metrics HTTP server, by status class.", 0, hw_emit_http_responses},
    {"haulwatch_http_bad_requests_total", "counter", "Requests the metrics HTTP server refused as malformed or over a limit.", HW_OFF(http_bad_requests), NULL},
    {"haulwatch_http_timeouts_total", "counter", "Requests to the metrics HTTP server that did not arrive in time.", HW_OFF(http_timeouts), NULL},
};

int hw_metrics_render(const hw_metrics_snapshot *s, hw_prom *out) {
  return hw_prom_render(out, hw_metric_table, HW_ARRAY_SIZE(hw_metric_table), s);
}

/* --- the endpoints ---------------------------------------------------------------------------- */

struct hw_metrics {
  uv_loop_t *loop;
  hw_metrics_sources src;
  hw_metrics_gather_fn gather; /* NULL with one loop */
  void *gather_arg;
  hw_http_route routes[3]; /* the server borrows them */
  hw_http_server *http;
  hw_pg_async *pg;        /* the readiness check's connection */
  uv_timer_t check;
  int check_in_flight;
  int schema_version;     /* last read, -1 before */
  uint64_t pg_ok_ms;      /* loop time of the last successful check, 0 before */
  double start_time;
  int pending;            /* parts still closing after hw_metrics_stop */
  void (*done_cb)(void *);
  void *done_arg;
};

static void hw_metrics_on_check(void *arg, const PGresult *res) {
  hw_metrics *m = arg;
  m->check_in_flight = 0;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    if (m->pg_ok_ms)
      hw_warn(HW_MET, NULL, "readiness: PostgreSQL check failed: %s",
              res ? PQresultErrorMessage(res) : "no connection");
    m->pg_ok_ms = 0;
    return;
  }
  int v = atoi(PQgetvalue(res, 0, 0));
  if (v != m->schema_version && v != hw_schema_latest())
    hw_warn(HW_MET, NULL, "readiness: database schema is at version %d, this binary needs %d", v,
            hw_schema_latest());
  m->schema_version = v;
  m->pg_ok_ms = uv_now(m->loop);
}

static void hw_metrics_on_timer(uv_timer_t *t) {
  hw_metrics *m = t->data;
  if (m->check_in_flight)
    return;
  if (hw_pg_async_query(m->pg, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL,
                        hw_metrics_on_check, m) == 0)
    m->check_in_flight = 1;
}

/* Each failing check named: what an operator (or an orchestrator's probe log) needs first. */
typedef struct hw_readiness {
  const char *postgres, *schema, *redis, *backpressure; /* NULL: ok */
  const char *workers; /* NULL: every worker's counters are in (shown only when not) */
} hw_readiness;

/* Every loop's counters into *s (zeroed here): this loop's directly, the others' through the
 * gather callback. A loop that does not answer makes the daemon not ready. */
static int hw_metrics_gather(hw_metrics *m, hw_metrics_snapshot *s) {
  memset(s, 0, sizeof *s);
  hw_metrics_collect(s, &m->src);
  int rc = m->gather ? m->gather(m->gather_arg, s) : 0;
  /* A gauge of 0 or 1 whatever the number of workers: 1 when every one has its connection. */
  s->redis_connected = s->workers > 0 && s->workers_no_redis == 0 && rc == 0;
  if (rc)
    hw_warn(HW_MET, NULL, "a worker's counters are missing from this scrape: %s", strerror(-rc));
  return rc;
}

/* With several workers each must have a writer connection and Redis: the terminals the kernel
 * hands to a worker without them are not stored. */
static int hw_metrics_readiness(hw_metrics *m, const hw_metrics_snapshot *s, int gathered,
                                hw_readiness *r) {
  memset(r, 0, sizeof *r);
  uint64_t now = uv_now(m->loop);
  if (!m->pg_ok_ms || now - m->pg_ok_ms > 3 * HW_METRICS_CHECK_MS)
    r->postgres = "unreachable";
  else if (s->workers_no_pg > 0)
    r->postgres = "no writer connection";
  if (gathered)
    r->workers = "a worker did not answer in time";
  if (m->schema_version < 0)
    r->schema = "unknown";
  else if (m->schema_version != hw_schema_latest())
    r->schema = m->schema_version < hw_schema_latest() ? "older than this binary"
                                                       : "newer than this binary";
  if (s->workers_no_redis > 0)
    r->redis = "disconnected";
  if (s->paused)
    r->backpressure = "paused";
  return !r->postgres && !r->schema && !r->redis && !r->backpressure && !r->workers;
}

static void hw_metrics_reply(hw_http_req *req, int status, cJSON *body) {
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  int rc = text ? hw_http_respond(req, status, "application/json", text, strlen(text))
                : hw_http_respond_error(req, 500, "out of memory");
  if (rc)
    hw_debug(HW_MET, NULL, "peer=%s response not sent: %s", hw_http_peer(req), strerror(-rc));
  cJSON_free(text);
  cJSON_Delete(body);
}

static void hw_metrics_get_healthz(hw_http_req *req, void *arg) {
  cJSON *o = cJSON_CreateObject();
  if (o)
    cJSON_AddStringToObject(o, "status", "ok");
  hw_metrics_reply(req, 200, o);
}

static void hw_metrics_get_readyz(hw_http_req *req, void *arg) {
  hw_metrics *m = arg;
  hw_readiness r;
  hw_metrics_snapshot s;
  int gathered = hw_metrics_gather(m, &s);
  int ready = hw_metrics_readiness(m, &s, gathered, &r);
  cJSON *o = cJSON_CreateObject(), *c = cJSON_CreateObject();
  if (o && c) {
    cJSON_AddBoolToObject(o, "ready", ready);
    cJSON_AddStringToObject(c, "postgres", r.postgres ? r.postgres : "ok");
    cJSON_AddStringToObject(c, "schema", r.schema ? r.schema : "ok");
    cJSON_AddStringToObject(c, "redis", r.redis ? r.redis : "ok");
    cJSON_AddStringToObject(c, "backpressure", r.backpressure ? r.backpressure : "ok");
    if (r.workers)
      cJSON_AddStringToObject(c, "workers", r.workers);
    cJSON_AddItemToObject(o, "checks", c);
    c = NULL;
  }
  cJSON_Delete(c);
  hw_metrics_reply(req, ready ? 200 : 503, o);
}

static void hw_metrics_get_metrics(hw_http_req *req, void *arg) {
  hw_metrics *m = arg;
  hw_metrics_snapshot s;
  int gathered = hw_metrics_gather(m, &s);
  hw_readiness r;
  s.ready = (uint64_t)hw_metrics_readiness(m, &s, gathered, &r);
  s.start_time_seconds = m->start_time;
  hw_http_stats hs;
  hw_http_server_get_stats(m->http, &hs);
  s.http_requests = hs.requests;
  memcpy(s.http_responses, hs.responses, sizeof s.http_responses);
  s.http_bad_requests = hs.bad_requests;
  s.http_timeouts = hs.timeouts;
  hw_prom out;
  hw_prom_init(&out);
  int rc = hw_metrics_render(&s, &out);
  if (rc)
    rc = hw_http_respond_error(req, 500, "out of memory");
  else
    rc = hw_http_respond(req, 200, HW_PROM_CONTENT_TYPE, out.data, out.len);
  if (rc)
    hw_debug(HW_MET, NULL, "peer=%s response not sent: %s", hw_http_peer(req), strerror(-rc));
  hw_prom_free(&out);
}

int hw_metrics_start(hw_metrics **out, uv_loop_t *loop, const hw_metrics_config *cfg,
                     const hw_metrics_sources *src) {
  int rc;
  hw_metrics *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  m->loop = loop;
  m->src = *src;
  m->gather = cfg->gather;
  m->gather_arg = cfg->gather_arg;
  m->schema_version = -1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  /* routes: static per process, the handler's arg is this instance */
  m->routes[0] = (hw_http_route){"GET", "/metrics", hw_metrics_get_metrics, m, 0};
  m->routes[1] = (hw_http_route){"GET", "/healthz", hw_metrics_get_healthz, m, 0};
  m->routes[2] = (hw_http_route){"GET", "/readyz", hw_metrics_get_readyz, m, 0};
  if ((rc = hw_http_server_init(&m->http, loop, &cfg->http, m->routes, HW_ARRAY_SIZE(m->routes))))
    goto fail;
  if ((rc = hw_http_server_listen(m->http, cfg->listen)))
    goto fail_http;
  if ((rc = hw_pg_async_start(&m->pg, loop, cfg->pg_conninfo, HW_MET)))
    goto fail_http;
  uv_timer_init(loop, &m->check);
  m->check.data = m;
  uv_timer_start(&m->check, hw_metrics_on_timer, 0, HW_METRICS_CHECK_MS);
  hw_info(HW_MET, NULL, "listener=%s serving /metrics, /healthz, /readyz", cfg->listen);
  *out = m;
  return 0;
fail_http:
  hw_http_server_close(m->http, free, m); /* frees m once closed */
  return rc;
fail:
  free(m);
  return rc;
}

int hw_metrics_port(const hw_metrics *m) { return hw_http_server_port(m->http); }

static void hw_metrics_part_closed(void *arg) {
  hw_metrics *m = arg;
  if (--m->pending > 0)
    return;
  void (*cb)(void *) = m->done_cb;
  void *cb_arg = m->done_arg;
  free(m);
  if (cb)
    cb(cb_arg);
}

static void hw_metrics_timer_closed(uv_handle_t *h) { hw_metrics_part_closed(h->data); }

void hw_metrics_stop(hw_metrics *m, void (*done_cb)(void *arg), void *arg) {
  m->done_cb = done_cb;
  m->done_arg = arg;
  m->src = (hw_metrics_sources){0}; /* not touched again */
  m->gather = NULL;
  m->pending = 3;
  uv_close((uv_handle_t *)&m->check, hw_metrics_timer_closed);
  hw_pg_async_stop(m->pg, hw_metrics_part_closed, m);
  hw_http_server_close(m->http, hw_metrics_part_closed, m);
}
