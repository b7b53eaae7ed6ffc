/* Where accepted fixes go, whatever protocol brought them: the safety rules, PostgreSQL
 * (durable, acknowledged) and the latest state in Redis. Owns those sinks and the rules engine;
 * borrows the terminal registry from serve. Acks go back through the session layer
 * (hw_session_deliver_ack), and backpressure is reported, not applied: above high_water rows not
 * yet committed the pipeline tells its flow callback to stop reading, below low_water to read
 * again; whoever wired it (serve) pauses and resumes the server. */
#ifndef HW_PIPELINE_H
#define HW_PIPELINE_H

#include <libpq-fe.h>

#include "base/safety_alarm.h"
#include "sinks/pg_writer.h"
#include "sinks/redis_state.h"
#include "sinks/rule_store.h"
#include "sinks/violation_store.h"
#include "sinks/daily_store.h"
#include "sinks/owner_claim.h"
#include "rules/rules.h"
#include "net/session.h"

typedef struct hw_pipeline hw_pipeline;

/* What the pipeline reports to its flow callback. HIGH_WATER: stop reading. LOW_WATER and
 * READY: read again; each comes only when reading is wanted (the first registry load is in, the
 * backlog is at or below low_water, no drain has begun). Never called during a call into the
 * pipeline other than hw_pipeline_submit (HIGH_WATER). */
typedef enum hw_pipeline_flow {
  HW_FLOW_HIGH_WATER = 1, /* backlog reached high_water */
  HW_FLOW_LOW_WATER,      /* backlog fell to low_water */
  HW_FLOW_READY,          /* rules on: the registry's first load is in (see hw_pipeline_ready) */
} hw_pipeline_flow;
typedef void (*hw_pipeline_flow_cb)(void *arg, hw_pipeline_flow ev);

typedef struct hw_pipeline_config {
  hw_registry *registry; /* borrowed: must outlive the pipeline */
  hw_pg_writer_config pg;
  const char *pg_conninfo_control; /* rule state, violations, registry cache */
  hw_redis_state_config redis;
  uint32_t high_water; /* rows */
  uint32_t low_water;
  hw_pipeline_flow_cb on_flow; /* may be NULL: no backpressure */
  void *flow_arg;
  /* Safety rules: off = only the per-fix data-quality checks, no registry, no violations. */
  int rules;
  hw_rules_config rules_cfg;
  uint32_t zone_cell_e6;       /* zone index grid cell, 1e-6 degrees */
  /* The assessment's daily figures per vehicle (sinks/daily_store.h); off = not kept. Its
   * conninfo is pg_conninfo_control. */
  int daily;
  hw_daily_store_config daily_cfg;
  /* serve --workers N > 1: the process's terminal owners (pipeline/owners.h; borrowed, outlives
   * the pipeline) and this pipeline's worker index. NULL: the only worker, owner of everything.
   * The live violation relay (sinks/violation_relay.h) runs on worker 0 only. */
  struct hw_owners *owners;
  int worker;
  /* One owner per terminal (docs/ownership.md), with rules on: a session's terminal is claimed
   * (hw_pipeline_claim) and its rule state and violations are written fenced by the claim's
   * epoch. node_name names this daemon in terminal_owner. Off: no claims, nothing fenced.
   * ownership_alone: no other daemon shares the database (serve's ownership auto, on for its
   * workers), so every terminal_owner row is this daemon's, from this run or an earlier one, and
   * the start restores every saved state and replays every terminal's stored fixes, claimed or
   * not, as without ownership; else only those of terminals no daemon has claimed. */
  int ownership;
  int ownership_alone;
  const char *node_name;
  uint32_t rule_save_ms; /* rule-state save interval; 0 = HW_RSTORE_INTERVAL_MS */
} hw_pipeline_config;

/* Ack kinds (hw_ack_ref.kind). Protobuf: token is the highest seq the connection sent so far. */
enum { HW_ACK_PB = 1, HW_ACK_JT808 = 2 };

/* Starts every part on loop without blocking (connections are made on the loop). On failure
 * nothing is returned and what had started is already closing: run the loop until uv_run
 * returns before closing it. */
int hw_pipeline_start(hw_pipeline **out, uv_loop_t *loop, const hw_pipeline_config *cfg) HW_MUST_CHECK;

/* BLOCKING, once, after start and before the loop first runs (serve's start-up): restores the
 * rule state an earlier run saved and replays the fixes stored after it (rule_store.h), on conn,
 * a connection the caller owns. 0 (also when rules are off) or a negative code (logged). */
int hw_pipeline_restore_rules(hw_pipeline *p, PGconn *conn) HW_MUST_CHECK;

/* 0 until reading may start: with rules on, nothing is read before the registry's first load (a
 * fix evaluated earlier would find its terminal unbound and raise a false unregistered_terminal);
 * HW_FLOW_READY reports the change. 1 from the start with rules off. */
int hw_pipeline_ready(const hw_pipeline *p);

/* A session now speaks for terminal t (after authentication): binds t to its registered
 * vehicle. Called by the protocol sessions after hw_session_bind. With several workers this is
 * also where this worker becomes t's owner (pipeline/owners.h): one that takes t over from
 * another worker drops its own stale copy of t's rule state (with ownership on, the claim that
 * follows brings the saved state and replays the stored fixes; off, the state starts afresh)
 * and takes t's driver card as the previous owner recorded it (hw_pipeline_driver_changed),
 * no driver included; the other worker stops evaluating and saving its copy. */
void hw_pipeline_bind(hw_pipeline *p, hw_terminal *t);

/* t's session has just changed t's driver card (t->card; JT/T 808 0x0702). With several workers
 * it is recorded beside t's owner, so that it follows t to whichever worker t reconnects to; a
 * change made on a worker t has moved on from is not recorded (the new owner's card wins). With
 * ownership on it is also recorded in t's terminal_owner row (fenced by t's epoch), which a daemon
 * claiming t next reads with its claim (sinks/owner_claim.h). */
void hw_pipeline_driver_changed(hw_pipeline *p, const hw_terminal *t);

/* A session has authenticated terminal t (a registry record) and wants it: with ownership on,
 * claims it (sinks/owner_claim.h) and returns 0; cb(arg, result) runs later, once t's rule state
 * is here and replayed (result 0: bind and read on) or the claim failed (-EAGAIN, -ENOMEM: tell
 * the terminal to come back). *req identifies the claim until then (hw_pipeline_claim_cancel when
 * the session goes first). Returns 1 when there is nothing to wait for (ownership or rules off):
 * no callback, bind at once. Binds t to its vehicle (hw_pipeline_bind) either way. Negative:
 * cannot claim now (no callback). */
int hw_pipeline_claim(hw_pipeline *p, hw_terminal *t, hw_owner_claim_cb cb, void *arg,
                      hw_owner_claim **req) HW_MUST_CHECK;
void hw_pipeline_claim_cancel(hw_owner_claim *req);

/* Takes the fixes of session s's terminal (validated, recv_ms set); a fix already stored under
 * the same (terminal, device time) is not stored again (the writer's conflict replay). The ack (kind, token) is delivered to s's protocol once
 * every fix before it is durable, if s still owns the terminal then. Fixes are copied. */
int hw_pipeline_submit(hw_pipeline *p, hw_session *s, const hw_fix *fixes, size_t n,
                       uint32_t ack_kind, uint64_t ack_token) HW_MUST_CHECK;

/* Active-safety alarms (base/safety_alarm.h) carried by `fix` of session s's terminal, the fix
 * about to be submitted (call this first, then hw_pipeline_submit): each becomes a row of
 * safety_alarms written in the same transaction as the rows submitted so far and before the
 * next ack, so that ack never covers an alarm not stored; a resend stores nothing twice. Once
 * stored, each is published on Redis hw:alarms (sinks/violation_relay.h) and, with the rules
 * on, shown to them (rules/rules.h: hw_rules_on_alarm). Alarms are copied. 0, or -ESHUTDOWN /
 * -ENOMEM (the caller closes the connection unacknowledged, as for fixes). */
int hw_pipeline_alarms(hw_pipeline *p, hw_session *s, const hw_fix *fix,
                       const hw_safety_alarm *alarms, size_t n) HW_MUST_CHECK;

/* Fixes no one acknowledges, of terminal t, which need not be bound to a session (one JT/T 809
 * link carries many vehicles): t is a registry record (hw_registry_get, then hw_pipeline_bind
 * once when created). Same rules, sinks, duplicate handling and backpressure as
 * hw_pipeline_submit; nothing is delivered when they are durable. Fixes are copied. */
int hw_pipeline_submit_unacked(hw_pipeline *p, hw_terminal *t, const hw_fix *fixes, size_t n)
    HW_MUST_CHECK;

/* The registry vehicle with this plate and colour (bound to a terminal), NULL when none or with
 * the rules off (no registry is loaded then). Borrowed: valid on the loop until the next
 * registry swap; keep its terminal id, not the pointer. */
const hw_vehicle *hw_pipeline_vehicle_by_plate(const hw_pipeline *p, const char *plate,
                                               uint8_t colour);

typedef struct hw_pipeline_stats {
  uint64_t fixes_flagged, acks_delivered, pauses, violation_events;
  uint64_t alarms_queued; /* active-safety alarms handed to the writer (a resend counts again) */
  uint64_t violations_opened[HW_VIOL__COUNT]; /* episodes opened, per hw_violation_kind */
  hw_lat_hist ack_latency; /* a fix's receipt to its ack handed to the session (delivered ones) */
  hw_pg_writer_stats pg;
  hw_redis_state_stats redis;
  hw_rule_store_stats rule_store;       /* zero when the rules are off */
  hw_violation_store_stats violations;  /* zero when the rules are off */
  hw_daily_store_stats daily;           /* zero when the daily figures are off */
  hw_owner_claims_stats claims;         /* zero without ownership */
  uint64_t owner_lost;                  /* terminals this daemon learnt another one claimed */
  size_t backlog;
  int throttled;                        /* above high_water, not yet back below low_water */
  int ready;                            /* hw_pipeline_ready */
} hw_pipeline_stats;
void hw_pipeline_get_stats(const hw_pipeline *p, hw_pipeline_stats *out);

/* Shutdown, phase 1: commits what is buffered (its acks are still delivered to the sessions,
 * which must stay open until done_cb) and closes the PostgreSQL writer. No submit after this;
 * no flow callback either. */
void hw_pipeline_drain(hw_pipeline *p, void (*done_cb)(void *arg), void *arg);
/* Phase 2, after every session is closed: rule state saved, violations flushed, Redis flushed,
 * the registry cache; then the rule states of the borrowed registry's terminals are freed (the
 * registry itself is the caller's), p is freed and done_cb (may be NULL) runs. */
void hw_pipeline_stop(hw_pipeline *p, void (*done_cb)(void *arg), void *arg);

#endif
