/* The pipeline: owns the PostgreSQL writer, the Redis state writer and, with rules on, the rules
 * engine, its zone index, the registry cache, the rule and violation stores and the violation
 * relay. Borrows the registry (serve's). Touches no session: acks go to hw_session_deliver_ack,
 * backpressure to the flow callback. */
#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "base/log.h"
#include "pipeline/owners.h"
#include "rules/quality.h"
#include "sinks/alarm_sql.h"
#include "registry/registry_cache.h"
#include "sinks/rule_store.h"
#include "sinks/violation_relay.h"
#include "sinks/violation_store.h"
#include "registry/zone_index.h"

/* How often held fixes (waiting for a gap to be back-filled) are re-examined. */
#define HW_RULES_TICK_MS 10000

struct hw_pipeline {
  hw_owners *owners;      /* borrowed; NULL: one worker */
  int worker;
  uv_async_t lost;        /* owners only: another worker took terminals over (initialised when
                           * lost.data is set) */
  uv_loop_t *loop;
  hw_pipeline_config cfg;
  hw_registry *registry; /* borrowed (cfg.registry) */
  /* Each part is NULL until started; stop stops those that are not. */
  hw_pg_writer *pg;      /* NULL again once drained */
  hw_redis_state *redis;
  /* Safety rules (NULL when off). The zone index is rebuilt from each registry snapshot; it
   * points into the snapshot, which stays current until the next swap rebuilds it. */
  hw_rules *rules;
  hw_registry_cache *cache;
  hw_zone_index *zones;   /* owned */
  hw_violation_store *vstore;
  hw_violation_relay *relay;
  hw_rule_store *rstore;
  hw_daily_store *daily;  /* NULL when off */
  hw_owner_claims *claims; /* NULL without ownership */
  uint64_t owner_lost;
  /* Acks added to the writer and acks it reported durable (in the same order): a fix is
   * committed once the ack after it is (the daily figures wait for that before reading it). */
  uint64_t acks_added, acks_durable;
  uv_timer_t tick;        /* initialised when tick.data is set */
  hw_quality_config quality; /* rules off: static checks only */
  uint64_t fixes_flagged, acks_delivered, pauses, violation_events, alarms_queued;
  uint64_t violations_opened[HW_VIOL__COUNT];
  hw_lat_hist ack_latency;
  /* stop sequence */
  int stopping;
  /* With rules on, nothing is read before the registry's first load: a fix evaluated earlier
   * would find its terminal unbound and raise a false unregistered_terminal. */
  int ready;
  int throttled; /* HW_FLOW_HIGH_WATER reported, LOW_WATER not yet */
  int pending_stops;
  void (*done_cb)(void *);
  void *done_arg;
};

static void hw_pipeline_flow_report(hw_pipeline *p, hw_pipeline_flow ev) {
  if (p->cfg.on_flow)
    p->cfg.on_flow(p->cfg.flow_arg, ev);
}

static void hw_pipeline_on_durable(void *arg, const hw_ack_ref *acks, size_t n) {
  hw_pipeline *p = arg;
  int64_t now = n ? hw_now_ms() : 0; /* one clock read per commit, not per ack */
  p->acks_durable += n;
  if (p->daily)
    hw_daily_store_durable(p->daily, p->acks_durable);
  /* A connection's acks of this commit leave in one write (net/session.h). */
  hw_session_acks_begin();
  for (size_t i = 0; i < n; i++) {
    const hw_ack_ref *a = &acks[i];
    if (!a->term)
      continue; /* the marker of fixes no one acknowledges (hw_pipeline_submit_unacked) */
    /* An ack meant for a connection that has since gone is dropped by the session layer: the
     * terminal will send those fixes again and learn they are durable from the ack to the resend. */
    if (hw_session_deliver_ack(a)) {
      p->acks_delivered++;
      if (a->recv_ms > 0)
        hw_lat_hist_record(&p->ack_latency,
                           now > a->recv_ms ? (uint64_t)(now - a->recv_ms) * 1000u : 0);
    }
  }
  hw_session_acks_end();
  if (p->throttled && !p->stopping && hw_pg_writer_backlog(p->pg) <= p->cfg.low_water) {
    p->throttled = 0;
    hw_info("pipeline", NULL, "backlog %zu rows: reading again", hw_pg_writer_backlog(p->pg));
    if (p->ready)
      hw_pipeline_flow_report(p, HW_FLOW_LOW_WATER);
  }
}

static void hw_pipeline_on_violation(const hw_violation_event *ev, void *arg) {
  hw_pipeline *p = arg;
  p->violation_events++;
  if (ev->phase == HW_PHASE_OPEN && ev->kind < HW_VIOL__COUNT)
    p->violations_opened[ev->kind]++;
  if (ev->phase != HW_PHASE_UPDATE)
    hw_info("rules", ev->terminal_id, "%s %s episode=%s value=%lld limit=%lld grade=%u",
            hw_violation_kind_name(ev->kind), hw_violation_phase_name(ev->phase), ev->episode_id,
            (long long)ev->value, (long long)ev->limit, ev->grade);
  hw_terminal *t = hw_registry_find(p->registry, ev->terminal_id);
  hw_violation_store_put_owned(p->vstore, ev, t ? t->vehicle : NULL, t);
}

/* A fenced write came back refused: another daemon claimed the terminal (docs/ownership.md).
 * Unless this daemon has claimed it again since (the refusal is of an older epoch), it forgets
 * the terminal: its state goes (the new owner loaded the saved one and replayed the stored
 * fixes), nothing more of it is written, and its connection here, if any, is closed. */
static void hw_pipeline_on_fenced(void *arg, const char *terminal_id, uint64_t epoch) {
  hw_pipeline *p = arg;
  hw_terminal *t = hw_registry_find(p->registry, terminal_id);
  if (!t || t->owner_epoch != epoch)
    return;
  p->owner_lost++;
  hw_warn("owner", t->id, "lost: epoch %llu was taken over (another worker or daemon claimed "
          "it); state dropped, connection closed", (unsigned long long)epoch);
  t->owner_epoch = HW_OWNER_LOST;
  hw_rule_state_free(t->rules);
  t->rules = NULL;
  hw_session_evict(t);
}

static int hw_pipeline_hold(void *arg, const hw_terminal *t) {
  (void)arg;
  return t->viol_waiting > 0;
}

int hw_pipeline_claim(hw_pipeline *p, hw_terminal *t, hw_owner_claim_cb cb, void *arg,
                      hw_owner_claim **req) {
  hw_pipeline_bind(p, t);
  if (!p->claims)
    return 1;
  if (p->stopping)
    return -ESHUTDOWN;
  return hw_owner_claim_start(p->claims, t, cb, arg, req);
}

void hw_pipeline_claim_cancel(hw_owner_claim *req) { hw_owner_claim_cancel(req); }

/* Rule state saved by an earlier run comes back before any fix is evaluated, and the fixes
 * stored after that save are replayed, so a restart neither forgets nor repeats an episode. With
 * other daemons sharing the database, a terminal one of them claimed is left to its claims (it
 * may be driving on another daemon now); alone, this daemon restores it too, or a truck that does
 * not reconnect after a crash would have its unsaved episodes written only at its next claim.
 * Blocking on the caller's connection, before the loop runs: the violation store buffers what
 * the replay emits until then. */
int hw_pipeline_restore_rules(hw_pipeline *p, PGconn *conn) {
  size_t loaded = 0, replayed = 0;
  int rc;
  if (!p->rules)
    return 0;
  if ((rc = HW_FAULT("pipeline.restore_rules")) ||
      (rc = (p->claims && !p->cfg.ownership_alone ? hw_rule_store_load_unowned
                                                  : hw_rule_store_load)(
           conn, p->registry, p->rules, NULL, &loaded, &replayed))) {
    hw_error("rules", NULL, "cannot restore rule state: %s", strerror(-rc));
    return rc;
  }
  hw_info("rules", NULL, "restored the state of %zu terminals, replayed %zu stored fixes", loaded,
          replayed);
  return 0;
}

static void hw_pipeline_on_registry(void *arg, const hw_registry_snapshot *now,
                                    const hw_registry_snapshot *old) {
  hw_pipeline *p = arg;
  (void)old;
  if (!p->rules) /* the snapshot only names vehicles (t->vehicle, bound by the cache) */
    return;
  hw_zone_index *ix = NULL;
  int rc = hw_zone_index_build(now->zones, now->nzones, p->cfg.zone_cell_e6, &ix);
  if (rc) {
    /* Keep evaluating without zones rather than against zones of a freed snapshot. */
    hw_error("rules", NULL, "cannot index %zu zones: %s; zone rules off until the next reload",
             now->nzones, strerror(-rc));
    ix = NULL;
  }
  hw_rules_set_zones(p->rules, ix);
  hw_zone_index_free(p->zones);
  p->zones = ix;
  hw_info("rules", NULL, "registry generation %llu: %zu classes, %zu vehicles, %zu zones (%zu unusable)",
          (unsigned long long)now->generation, now->nclasses, now->nvehicles, now->nzones,
          ix ? hw_zone_index_skipped(ix) : now->nzones);
  if (!p->ready) {
    p->ready = 1;
    if (!p->stopping && !p->throttled)
      hw_pipeline_flow_report(p, HW_FLOW_READY);
  }
}

static void hw_pipeline_on_tick(uv_timer_t *timer) {
  hw_pipeline *p = timer->data;
  int64_t now = hw_now_ms();
  if (!p->ready)
    return; /* terminals restored at start are bound to their vehicles by the first load */
  hw_registry_foreach(p->registry, t) {
    if (!t->rules || (p->owners && !hw_owners_owns(p->owners, t->id, p->worker)))
      continue; /* another worker's terminal: its copy here stays untouched */
    /* Held fixes whose hold expired; open episodes of a quiet terminal brought up to date. */
    int rc = hw_rules_tick(p->rules, t, t->vehicle, now);
    if (rc)
      hw_warn("rules", t->id, "rules tick failed: %s", strerror(-rc));
  }
}

static int hw_pipeline_store_owns(void *arg, const hw_terminal *t) {
  hw_pipeline *p = arg;
  return hw_owners_owns(p->owners, t->id, p->worker);
}

static int64_t hw_pipeline_store_mark(void *arg, int64_t cycle_start_ms) {
  hw_pipeline *p = arg;
  return hw_owners_mark(p->owners, p->worker, cycle_start_ms);
}

/* Terminals another worker's session has claimed since: their connection here (an older one
 * of the same terminal) closes, as a replaced session does on one loop. */
static void hw_pipeline_on_lost(uv_async_t *h) {
  hw_pipeline *p = h->data;
  for (hw_owners_lost *l = hw_owners_take_lost(p->owners, p->worker), *next; l; l = next) {
    next = l->next;
    hw_terminal *t = hw_registry_find(p->registry, l->id);
    if (t && t->session && !hw_owners_owns(p->owners, t->id, p->worker)) {
      hw_info("pipeline", t->id, "taken over by a connection on another worker: closing this one");
      hw_session_close_replaced(t->session);
    }
    free(l);
  }
}

void hw_pipeline_bind(hw_pipeline *p, hw_terminal *t) {
  if (p->owners) {
    int prev = -1;
    hw_driver_card card;
    if (hw_owners_claim(p->owners, t->id, p->worker, &prev, &card))
      hw_warn("pipeline", t->id, "out of memory: ownership not recorded");
    else if (prev >= 0 && prev != p->worker) {
      /* The card stays in across a reconnect: the one worker prev recorded, not whatever this
       * worker's record kept from an earlier visit (a driver since removed, or none). */
      t->card = card;
      hw_info("pipeline", t->id, "moved here from worker %d: driver card %s%s", prev,
              card.has_driver ? "of " : "", card.has_driver ? card.driver_id : "none");
      /* The owner row may hold an older card: worker prev's last write of it, fenced, fails
       * once our claim has bumped the epoch. Write it again under ours, for other daemons. */
      int rc;
      if (p->claims && (rc = hw_owner_card_save(p->claims, t)) && rc != -EPERM)
        hw_info("pipeline", t->id, "driver card not carried to other daemons: %s", strerror(-rc));
      if (t->rules) {
        /* Our copy is older than what worker prev did with the terminal since: a fresh start
         * beats a stale one; with ownership the claim that follows brings the saved state and
         * replays the stored fixes (docs/ownership.md). */
        hw_info("rules", t->id, "moved here from worker %d: %s", prev,
                p->claims ? "the claim brings the rule state" : "rule state starts afresh");
        hw_rule_state_free(t->rules);
        t->rules = NULL;
      }
    }
  }
  if (p->cache)
    hw_registry_cache_bind(p->cache, t);
}

void hw_pipeline_driver_changed(hw_pipeline *p, const hw_terminal *t) {
  int rc;
  /* To other daemons: beside the owner row, fenced (a worker t has left has an older epoch). */
  if (p->claims && (rc = hw_owner_card_save(p->claims, t)))
    hw_info("pipeline", t->id, "driver card not carried to other daemons: %s",
            rc == -EPERM ? "the terminal is not claimed here" : strerror(-rc));
  if (!p->owners)
    return; /* one worker: the record is the card */
  rc = hw_owners_set_card(p->owners, t->id, p->worker, &t->card);
  if (rc)
    /* -EPERM: a frame read on a connection another worker has taken over; -ENOENT: ownership
     * never recorded (out of memory at the bind). Either way the card stays with this worker. */
    hw_info("pipeline", t->id, "driver card not carried to other workers: %s",
            rc == -EPERM ? "the terminal is owned by another worker now" : strerror(-rc));
}

/* Each step that can fail has a fault point (base/fault.h) so that a test fails them in turn. On
 * failure hw_pipeline_stop closes what has started, whatever that was. */
int hw_pipeline_start(hw_pipeline **out, uv_loop_t *loop, const hw_pipeline_config *cfg) {
  int rc;
  if (!cfg->registry)
    return -EINVAL;
  hw_pipeline *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->loop = loop;
  p->cfg = *cfg;
  p->registry = cfg->registry;
  p->owners = cfg->owners;
  p->worker = cfg->worker;
  if (p->owners) {
    if ((rc = uv_async_init(loop, &p->lost, hw_pipeline_on_lost))) {
      free(p);
      return rc;
    }
    p->lost.data = p;
    hw_owners_attach(p->owners, p->worker, &p->lost);
  }
  p->quality = cfg->rules_cfg.quality;
  p->ready = !cfg->rules;
  if ((rc = HW_FAULT("pipeline.pg_writer")) ||
      (rc = hw_pg_writer_start(&p->pg, loop, &cfg->pg, hw_pipeline_on_durable, p)))
    goto fail;
  if ((rc = HW_FAULT("pipeline.redis_state")) ||
      (rc = hw_redis_state_start(&p->redis, loop, &cfg->redis, p->registry)))
    goto fail;
  if (cfg->rules) {
    hw_violation_relay_config rc_cfg = {.conninfo = cfg->pg_conninfo_control,
                                        .redis_host = cfg->redis.host,
                                        .redis_port = cfg->redis.port};
    if ((rc = HW_FAULT("pipeline.rules")) ||
        (rc = hw_rules_new(&cfg->rules_cfg, hw_pipeline_on_violation, p, &p->rules)))
      goto fail;
    /* The store buffers what the restore's replay emits until the loop runs. */
    if ((rc = HW_FAULT("pipeline.violation_store")) ||
        (rc = hw_violation_store_start(&p->vstore, loop, cfg->pg_conninfo_control)))
      goto fail;
    if ((rc = HW_FAULT("pipeline.rule_store")) ||
        (rc = hw_rule_store_start(&p->rstore, loop, cfg->pg_conninfo_control, p->registry,
                                  cfg->rule_save_ms)))
      goto fail;
    if (p->owners)
      hw_rule_store_set_hooks(p->rstore, &(hw_rule_store_hooks){.owns = hw_pipeline_store_owns,
                                                               .mark = hw_pipeline_store_mark,
                                                               .arg = p});
    if (cfg->ownership) {
      if ((rc = HW_FAULT("pipeline.owner_claims")) ||
          (rc = hw_owner_claims_start(&p->claims, loop, cfg->pg_conninfo_control,
                                      cfg->node_name ? cfg->node_name : "haulwatch", p->rules)))
        goto fail;
      hw_rule_store_set_owner(p->rstore, hw_pipeline_hold, hw_pipeline_on_fenced, p);
      hw_violation_store_set_fenced(p->vstore, hw_pipeline_on_fenced, p);
    }
    /* It relays every notification of the database, not this pipeline's: one per process
     * (worker 0), or each would be published once per worker. */
    if (cfg->worker == 0 && ((rc = HW_FAULT("pipeline.violation_relay")) ||
                             (rc = hw_violation_relay_start(&p->relay, loop, &rc_cfg))))
      goto fail;
    uv_timer_init(loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, hw_pipeline_on_tick, HW_RULES_TICK_MS, HW_RULES_TICK_MS);
  }
  /* With the rules off too: the latest state published for the live feed names each vehicle's
   * region and enterprise (sinks/redis_state.c), and a region-scoped viewer sees only those. */
  if ((rc = HW_FAULT("pipeline.registry_cache")) ||
      (rc = hw_registry_cache_start(&p->cache, loop, cfg->pg_conninfo_control, p->registry,
                                    hw_pipeline_on_registry, p)))
    goto fail;
  if (cfg->daily) {
    hw_daily_store_config dc = cfg->daily_cfg;
    dc.conninfo = cfg->pg_conninfo_control;
    if ((rc = HW_FAULT("pipeline.daily_store")) ||
        (rc = hw_daily_store_start(&p->daily, loop, &dc, p->registry)))
      goto fail;
  }
  *out = p;
  return 0;
fail:
  /* The start functions leave nothing behind when they fail, so those before are all to stop. */
  hw_error("pipeline", NULL, "cannot start: %s", strerror(-rc));
  hw_pipeline_stop(p, NULL, NULL);
  return rc;
}

int hw_pipeline_ready(const hw_pipeline *p) { return p->ready; }

const hw_vehicle *hw_pipeline_vehicle_by_plate(const hw_pipeline *p, const char *plate,
                                               uint8_t colour) {
  return p->cache ? hw_registry_cache_by_plate(p->cache, plate, colour) : NULL;
}

/* Takes fixes of terminal t into the rules and the sinks; the caller adds the ack after them. */
static int hw_pipeline_take(hw_pipeline *p, hw_terminal *t, const hw_fix *fixes, size_t n) {
  int rc;
  for (size_t i = 0; i < n; i++) {
    const hw_fix *f = &fixes[i];
    /* The rules also judge data quality (with the terminal's jump reference); a fix whose time or
     * position is flagged is stored with its flags but kept out of the latest state and the
     * rules (base/fix.h: hw_fix_trusted). */
    hw_fix g = *f;
    if (p->rules) {
      if ((rc = hw_rules_on_fix(p->rules, t, t->vehicle, &g)))
        hw_warn("rules", t->id, "fix at %lld not evaluated: %s", (long long)g.ts_ms, strerror(-rc));
    } else {
      g.quality |= hw_quality_static(&p->quality, &g);
    }
    /* Not newer than the terminal's latest trusted fix: a resend, a second fix of that second
     * (JT/T 808 times are whole seconds) or back-fill, often stored already: its batch goes to
     * the merge at once rather than through a COPY bound to fail. */
    unsigned flags = t->has_latest && g.ts_ms <= t->latest.ts_ms ? HW_PG_ROW_MAYBE_DUP : 0;
    if ((rc = hw_pg_writer_add_flags(p->pg, t->id, &g, flags)))
      return rc;
    /* Committed once the ack added below (number acks_added + 1) is durable. */
    if (p->daily && (rc = hw_daily_store_put(p->daily, t, &g, p->acks_added + 1)))
      hw_warn("daily", t->id, "fix at %lld not counted: %s", (long long)g.ts_ms, strerror(-rc));
    if (hw_fix_trusted(&g))
      hw_redis_state_put(p->redis, t, &g);
    else
      p->fixes_flagged++;
  }
  return 0;
}

static int hw_pipeline_add_ack(hw_pipeline *p, const hw_ack_ref *ack) {
  int rc;
  if ((rc = hw_pg_writer_add_ack(p->pg, ack)))
    return rc;
  p->acks_added++;
  if (!p->throttled && hw_pg_writer_backlog(p->pg) >= p->cfg.high_water) {
    p->throttled = 1;
    p->pauses++;
    hw_info("pipeline", NULL, "backlog %zu rows: reading paused until PostgreSQL catches up",
            hw_pg_writer_backlog(p->pg));
    hw_pipeline_flow_report(p, HW_FLOW_HIGH_WATER);
  }
  return 0;
}

int hw_pipeline_submit(hw_pipeline *p, hw_session *s, const hw_fix *fixes, size_t n,
                       uint32_t ack_kind, uint64_t ack_token) {
  int rc;
  if (p->stopping)
    return -ESHUTDOWN;
  if ((rc = hw_pipeline_take(p, s->term, fixes, n)))
    return rc;
  hw_ack_ref ack = hw_session_ack_ref(s, ack_kind, ack_token);
  ack.recv_ms = n ? fixes[0].recv_ms : 0;
  return hw_pipeline_add_ack(p, &ack);
}

int hw_pipeline_alarms(hw_pipeline *p, hw_session *s, const hw_fix *fix,
                       const hw_safety_alarm *alarms, size_t n) {
  char sql[HW_ALARM_SQL_MAX];
  hw_terminal *t = s->term;
  int rc;
  if (p->stopping)
    return -ESHUTDOWN;
  for (size_t i = 0; i < n; i++) {
    const hw_safety_alarm *a = &alarms[i];
    int len = hw_alarm_insert_sql(t->id, a, fix, sql, sizeof sql);
    if (len < 0) {
      /* Not a JT/T 808 terminal id (cannot happen for a bound 808 session): logged, not stored. */
      hw_warn("pipeline", t->id, "%s alarm type %u at %lld not stored: %s",
              hw_safety_kind_name(a->kind), a->type, (long long)fix->ts_ms, strerror(-len));
      continue;
    }
    if ((rc = hw_pg_writer_add_sql(p->pg, sql, (size_t)len)))
      return rc;
    p->alarms_queued++;
    if (p->rules)
      hw_rules_on_alarm(p->rules, t, t->vehicle, fix, a);
  }
  return 0;
}

int hw_pipeline_submit_unacked(hw_pipeline *p, hw_terminal *t, const hw_fix *fixes, size_t n) {
  int rc;
  if (p->stopping)
    return -ESHUTDOWN;
  if ((rc = hw_pipeline_take(p, t, fixes, n)))
    return rc;
  /* Still a marker in the writer's ack order, with no terminal: the daily figures count a fix
   * as committed once the marker after it is durable, as for acknowledged fixes. */
  hw_ack_ref mark = {.term = NULL};
  return hw_pipeline_add_ack(p, &mark);
}

void hw_pipeline_get_stats(const hw_pipeline *p, hw_pipeline_stats *out) {
  memset(out, 0, sizeof *out);
  out->fixes_flagged = p->fixes_flagged;
  out->violation_events = p->violation_events;
  out->alarms_queued = p->alarms_queued;
  out->acks_delivered = p->acks_delivered;
  out->pauses = p->pauses;
  memcpy(out->violations_opened, p->violations_opened, sizeof out->violations_opened);
  out->ack_latency = p->ack_latency;
  out->throttled = p->throttled;
  out->ready = p->ready;
  if (p->rstore)
    hw_rule_store_get_stats(p->rstore, &out->rule_store);
  if (p->vstore)
    hw_violation_store_get_stats(p->vstore, &out->violations);
  if (p->daily)
    hw_daily_store_get_stats(p->daily, &out->daily);
  if (p->claims)
    hw_owner_claims_get_stats(p->claims, &out->claims);
  out->owner_lost = p->owner_lost;
  if (p->pg) {
    hw_pg_writer_get_stats(p->pg, &out->pg);
    out->backlog = hw_pg_writer_backlog(p->pg);
  }
  if (p->redis)
    hw_redis_state_get_stats(p->redis, &out->redis);
}

static void hw_pipeline_stopped_one(void *arg) {
  hw_pipeline *p = arg;
  if (--p->pending_stops > 0)
    return;
  if (p->rules) {
    /* The states are the engine's; the records they hang on are the registry owner's. */
    hw_registry_foreach(p->registry, t) {
      hw_rule_state_free(t->rules);
      t->rules = NULL;
    }
    hw_rules_free(p->rules);
    hw_zone_index_free(p->zones);
  }
  void (*cb)(void *) = p->done_cb;
  void *cb_arg = p->done_arg;
  free(p);
  if (cb)
    cb(cb_arg);
}

static void hw_pipeline_pg_stopped(void *arg) {
  hw_pipeline *p = arg;
  p->pg = NULL;
  void (*cb)(void *) = p->done_cb;
  p->done_cb = NULL;
  if (cb)
    cb(p->done_arg);
}

static void hw_pipeline_tick_closed(uv_handle_t *h) { hw_pipeline_stopped_one(h->data); }

void hw_pipeline_drain(hw_pipeline *p, void (*done_cb)(void *arg), void *arg) {
  p->stopping = 1;
  p->done_cb = done_cb;
  p->done_arg = arg;
  hw_pg_writer_stop(p->pg, hw_pipeline_pg_stopped, p);
}

void hw_pipeline_stop(hw_pipeline *p, void (*done_cb)(void *arg), void *arg) {
  p->stopping = 1;
  p->done_cb = done_cb;
  p->done_arg = arg;
  /* One count held until every stop is issued: a part that finishes at once must not free p
   * under us. Parts that never started (a failed start) are NULL and skipped. */
  p->pending_stops = 1;
  if (p->pg) {
    /* Only after a failed start: otherwise drain has stopped the writer already. */
    p->pending_stops++;
    hw_pg_writer_stop(p->pg, hw_pipeline_stopped_one, p);
  }
  if (p->lost.data) {
    hw_owners_attach(p->owners, p->worker, NULL); /* no send after this: the handle may close */
    p->pending_stops++;
    uv_close((uv_handle_t *)&p->lost, hw_pipeline_tick_closed);
  }
  if (p->tick.data) {
    p->pending_stops++;
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, hw_pipeline_tick_closed);
  }
  /* No fix comes any more: open episodes carry their last fix before they are saved (not before
   * the registry's first load: the vehicles are not bound yet). */
  if (p->rules && p->ready)
    hw_registry_foreach(p->registry, t)
      if (t->rules && (!p->owners || hw_owners_owns(p->owners, t->id, p->worker)) &&
          hw_rules_flush(p->rules, t, t->vehicle, NULL))
        hw_warn("rules", t->id, "open episodes not flushed");
  /* Rule state is saved once more and violations flushed; the cache unbinds every terminal
   * before the registry goes. */
  if (p->rstore) {
    p->pending_stops++;
    hw_rule_store_stop(p->rstore, hw_pipeline_stopped_one, p);
  }
  if (p->vstore) {
    p->pending_stops++;
    hw_violation_store_stop(p->vstore, hw_pipeline_stopped_one, p);
  }
  if (p->claims) {
    p->pending_stops++;
    hw_owner_claims_stop(p->claims, hw_pipeline_stopped_one, p);
  }
  if (p->relay) {
    p->pending_stops++;
    hw_violation_relay_stop(p->relay, hw_pipeline_stopped_one, p);
  }
  if (p->cache) {
    p->pending_stops++;
    hw_registry_cache_stop(p->cache, hw_pipeline_stopped_one, p);
  }
  if (p->redis) {
    p->pending_stops++;
    hw_redis_state_stop(p->redis, hw_pipeline_stopped_one, p);
  }
  /* Written at a clean stop too (the writer has drained: every fix it took is committed). */
  if (p->daily) {
    p->pending_stops++;
    hw_daily_store_stop(p->daily, hw_pipeline_stopped_one, p);
  }
  hw_pipeline_stopped_one(p);
}
