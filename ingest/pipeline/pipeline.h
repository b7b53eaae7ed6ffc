/* Where accepted fixes go, whatever protocol brought them: PostgreSQL (durable, acknowledged),
 * the latest state in Redis, and (later) the safety rules. Also owns what every session needs
 * from the back end: the terminal registry and authentication. Backpressure is decided here:
 * above high_water rows not yet committed the server stops reading, below low_water it resumes. */
#ifndef HW_PIPELINE_H
#define HW_PIPELINE_H

#include "registry/auth.h"
#include "sinks/pg_writer.h"
#include "sinks/redis_state.h"
#include "rules/rules.h"
#include "net/session.h"

typedef struct hw_pipeline hw_pipeline;
struct hw_server;

typedef struct hw_pipeline_config {
  hw_pg_writer_config pg;
  const char *pg_conninfo_control; /* authentication queries */
  uint32_t refusal_retention_days; /* auth_refusals rows kept this long after their last attempt; 0 = forever */
  hw_redis_state_config redis;
  uint32_t high_water; /* rows */
  uint32_t low_water;
  /* Safety rules: off = only the per-fix data-quality checks, no registry, no violations. */
  int rules;
  hw_rules_config rules_cfg;
  uint32_t zone_cell_e6;       /* zone index grid cell, 1e-6 degrees */
} hw_pipeline_config;

/* Ack kinds (hw_ack_ref.kind). Protobuf: token is the highest seq the connection sent so far. */
enum { HW_ACK_PB = 1, HW_ACK_JT808 = 2 };

int hw_pipeline_start(hw_pipeline **out, uv_loop_t *loop, const hw_pipeline_config *cfg) HW_MUST_CHECK;
void hw_pipeline_set_server(hw_pipeline *p, struct hw_server *srv);

hw_registry *hw_pipeline_registry(hw_pipeline *p);
hw_auth *hw_pipeline_auth(hw_pipeline *p);

/* A session now speaks for terminal t (after authentication): binds t to its registered
 * vehicle. */
void hw_pipeline_bind(hw_pipeline *p, hw_terminal *t);

/* Takes the fixes of session s's terminal (validated, recv_ms set); a fix already stored under
 * the same (terminal, device time) is not stored again (the writer's conflict replay). The ack (kind, token) is delivered to s's protocol once
 * every fix before it is durable, if s still owns the terminal then. Fixes are copied. */
int hw_pipeline_submit(hw_pipeline *p, hw_session *s, const hw_fix *fixes, size_t n,
                       uint32_t ack_kind, uint64_t ack_token) HW_MUST_CHECK;

typedef struct hw_pipeline_stats {
  uint64_t fixes_in, fixes_duplicate, fixes_flagged, acks_delivered, pauses, violation_events;
  hw_pg_writer_stats pg;
  hw_redis_state_stats redis;
  size_t backlog;
} hw_pipeline_stats;
void hw_pipeline_get_stats(const hw_pipeline *p, hw_pipeline_stats *out);

/* Shutdown, phase 1: commits what is buffered (its acks are still delivered to the sessions,
 * which must stay open until done_cb) and closes the PostgreSQL writer. No submit after this. */
void hw_pipeline_drain(hw_pipeline *p, void (*done_cb)(void *arg), void *arg);
/* Phase 2, after every session is closed: Redis (flushed), authentication, the registry. */
void hw_pipeline_stop(hw_pipeline *p, void (*done_cb)(void *arg), void *arg);

#endif
