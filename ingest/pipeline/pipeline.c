#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "rules/quality.h"
#include "registry/registry_cache.h"
#include "sinks/rule_store.h"
#include "net/server.h"
#include "sinks/violation_relay.h"
#include "sinks/violation_store.h"
#include "registry/zone_index.h"

/* How often held fixes (waiting for a gap to be back-filled) are re-examined. */
#define HW_RULES_TICK_MS 10000

struct hw_pipeline {
  uv_loop_t *loop;
  hw_pipeline_config cfg;
  hw_registry registry;
  hw_pg_writer *pg;
  hw_redis_state *redis;
  hw_auth *auth;
  struct hw_server *server;
  /* Safety rules (NULL when off). The zone index is rebuilt from each registry snapshot; it
   * points into the snapshot, which stays current until the next swap rebuilds it. */
  hw_rules *rules;
  hw_registry_cache *cache;
  hw_zone_index *zones;   /* owned */
  hw_violation_store *vstore;
  hw_violation_relay *relay;
  hw_rule_store *rstore;
  uv_timer_t tick;
  hw_quality_config quality; /* rules off: static checks only */
  uint64_t fixes_in, fixes_duplicate, fixes_flagged, acks_delivered, pauses, violation_events;
  /* stop sequence */
  int stopping;
  /* With rules on, nothing is read before the registry's first load: a fix evaluated earlier
   * would find its terminal unbound and raise a false unregistered_terminal. */
  int ready;
  int pending_stops;
  void (*done_cb)(void *);
  void *done_arg;
};

static void hw_pipeline_on_durable(void *arg, const hw_ack_ref *acks, size_t n) {
  hw_pipeline *p = arg;
  for (size_t i = 0; i < n; i++) {
    const hw_ack_ref *a = &acks[i];
    hw_terminal *t = a->term;
    if (a->kind == HW_ACK_PB && (int64_t)a->token > t->durable_seq)
      t->durable_seq = (int64_t)a->token;
    /* An ack meant for a connection that has since gone is dropped: the terminal will send
     * those fixes again and learn they are durable from the ack to the resend. */
    if (t->session && t->session_gen == a->session_gen && !t->session->closing) {
      t->session->proto->on_durable(t->session, a);
      p->acks_delivered++;
    }
  }
  if (p->server && hw_server_paused(p->server) && !p->stopping && p->ready &&
      hw_pg_writer_backlog(p->pg) <= p->cfg.low_water) {
    hw_info("pipeline", NULL, "backlog %zu rows: reading again", hw_pg_writer_backlog(p->pg));
    hw_server_resume(p->server);
  }
}

static void hw_pipeline_on_violation(const hw_violation_event *ev, void *arg) {
  hw_pipeline *p = arg;
  p->violation_events++;
  if (ev->phase != HW_PHASE_UPDATE)
    hw_info("rules", ev->terminal_id, "%s %s episode=%s value=%lld limit=%lld grade=%u",
            hw_violation_kind_name(ev->kind), hw_violation_phase_name(ev->phase), ev->episode_id,
            (long long)ev->value, (long long)ev->limit, ev->grade);
  hw_terminal *t = hw_registry_find(&p->registry, ev->terminal_id);
  hw_violation_store_put(p->vstore, ev, t ? t->vehicle : NULL);
}

/* Rule state saved by an earlier run comes back before any fix is evaluated, and the fixes
 * stored after that save are replayed, so a restart neither forgets nor repeats an episode.
 * Blocking, before the loop runs. */
static int hw_pipeline_restore_rules(hw_pipeline *p) {
  PGconn *c = PQconnectdb(p->cfg.pg_conninfo_control);
  size_t loaded = 0, replayed = 0;
  int rc;
  if (PQstatus(c) != CONNECTION_OK) {
    hw_error("rules", NULL, "cannot restore rule state: %s", PQerrorMessage(c));
    rc = -EIO;
  } else if ((rc = hw_rule_store_load(c, &p->registry, p->rules, NULL, &loaded, &replayed)) == 0) {
    hw_info("rules", NULL, "restored the state of %zu terminals, replayed %zu stored fixes", loaded,
            replayed);
  }
  PQfinish(c);
  return rc;
}

static void hw_pipeline_on_registry(void *arg, const hw_registry_snapshot *now,
                                    const hw_registry_snapshot *old) {
  hw_pipeline *p = arg;
  (void)old;
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
    if (p->server && !p->stopping)
      hw_server_resume(p->server);
  }
}

static void hw_pipeline_on_tick(uv_timer_t *timer) {
  hw_pipeline *p = timer->data;
  int64_t now = hw_now_ms();
  hw_registry_foreach(&p->registry, t) {
    if (hw_rules_pending(t) == 0)
      continue;
    int rc = hw_rules_tick(p->rules, t, t->vehicle, now);
    if (rc)
      hw_warn("rules", t->id, "held fixes not evaluated: %s", strerror(-rc));
  }
}

void hw_pipeline_bind(hw_pipeline *p, hw_terminal *t) {
  if (p->cache)
    hw_registry_cache_bind(p->cache, t);
}

int hw_pipeline_start(hw_pipeline **out, uv_loop_t *loop, const hw_pipeline_config *cfg) {
  int rc;
  hw_pipeline *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->loop = loop;
  p->cfg = *cfg;
  if ((rc = hw_pg_writer_start(&p->pg, loop, &cfg->pg, hw_pipeline_on_durable, p)))
    goto fail;
  if ((rc = hw_redis_state_start(&p->redis, loop, &cfg->redis, &p->registry)))
    goto fail_pg;
  if ((rc = hw_auth_start(&p->auth, loop, cfg->pg_conninfo_control)))
    goto fail_redis;
  p->quality = cfg->rules_cfg.quality;
  p->ready = !cfg->rules;
  if (cfg->rules) {
    hw_violation_relay_config rc_cfg = {.conninfo = cfg->pg_conninfo_control,
                                        .redis_host = cfg->redis.host,
                                        .redis_port = cfg->redis.port};
    if ((rc = hw_rules_new(&cfg->rules_cfg, hw_pipeline_on_violation, p, &p->rules)))
      goto fail_auth;
    /* The store buffers what the replay below emits until the loop runs. */
    if ((rc = hw_violation_store_start(&p->vstore, loop, cfg->pg_conninfo_control)))
      goto fail_rules;
    if ((rc = hw_pipeline_restore_rules(p)))
      goto fail_rules;
    if ((rc = hw_rule_store_start(&p->rstore, loop, cfg->pg_conninfo_control, &p->registry, 0)))
      goto fail_rules;
    if ((rc = hw_violation_relay_start(&p->relay, loop, &rc_cfg)))
      goto fail_rules;
    if ((rc = hw_registry_cache_start(&p->cache, loop, cfg->pg_conninfo_control, &p->registry,
                                      hw_pipeline_on_registry, p)))
      goto fail_rules;
    uv_timer_init(loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, hw_pipeline_on_tick, HW_RULES_TICK_MS, HW_RULES_TICK_MS);
  }
  *out = p;
  return 0;
fail_rules:
  hw_rules_free(p->rules);
fail_auth:
  hw_auth_stop(p->auth, NULL, NULL);
fail_redis:
  hw_redis_state_stop(p->redis, NULL, NULL);
fail_pg:
  hw_pg_writer_stop(p->pg, NULL, NULL);
fail:
  free(p);
  return rc;
}

void hw_pipeline_set_server(hw_pipeline *p, struct hw_server *srv) {
  p->server = srv;
  if (!p->ready)
    hw_server_pause(srv);
}
hw_registry *hw_pipeline_registry(hw_pipeline *p) { return &p->registry; }
hw_auth *hw_pipeline_auth(hw_pipeline *p) { return p->auth; }

int hw_pipeline_submit(hw_pipeline *p, hw_session *s, const hw_fix *fixes, size_t n,
                       uint32_t ack_kind, uint64_t ack_token) {
  hw_terminal *t = s->term;
  int rc;
  if (p->stopping)
    return -ESHUTDOWN;
  for (size_t i = 0; i < n; i++) {
    const hw_fix *f = &fixes[i];
    p->fixes_in++;
    if (f->source == HW_SRC_PROTOBUF && f->seq <= t->queued_seq) {
      p->fixes_duplicate++;
      continue;
    }
    /* The rules also judge data quality (with the terminal's jump reference); a flagged fix is
     * stored with its flags but kept out of the latest state and the rules. */
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
    /* Only once queued: a fix the writer refused must not count as sent when it comes again. */
    if (f->source == HW_SRC_PROTOBUF)
      t->queued_seq = f->seq;
    if (g.quality == 0)
      hw_redis_state_put(p->redis, t, &g);
    else
      p->fixes_flagged++;
  }
  hw_ack_ref ack = {.term = t, .session_gen = s->gen, .kind = ack_kind, .token = ack_token};
  if ((rc = hw_pg_writer_add_ack(p->pg, &ack)))
    return rc;
  if (p->server && !hw_server_paused(p->server) && hw_pg_writer_backlog(p->pg) >= p->cfg.high_water) {
    p->pauses++;
    hw_info("pipeline", NULL, "backlog %zu rows: reading paused until PostgreSQL catches up",
            hw_pg_writer_backlog(p->pg));
    hw_server_pause(p->server);
  }
  return 0;
}

void hw_pipeline_get_stats(const hw_pipeline *p, hw_pipeline_stats *out) {
  memset(out, 0, sizeof *out);
  out->fixes_in = p->fixes_in;
  out->fixes_duplicate = p->fixes_duplicate;
  out->fixes_flagged = p->fixes_flagged;
  out->violation_events = p->violation_events;
  out->acks_delivered = p->acks_delivered;
  out->pauses = p->pauses;
  if (p->pg) {
    hw_pg_writer_get_stats(p->pg, &out->pg);
    out->backlog = hw_pg_writer_backlog(p->pg);
  }
  hw_redis_state_get_stats(p->redis, &out->redis);
}

static void hw_pipeline_stopped_one(void *arg) {
  hw_pipeline *p = arg;
  if (--p->pending_stops > 0)
    return;
  if (p->rules) {
    hw_registry_foreach(&p->registry, t) {
      hw_rule_state_free(t->rules);
      t->rules = NULL;
    }
    hw_rules_free(p->rules);
    hw_zone_index_free(p->zones);
  }
  hw_registry_free(&p->registry);
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
  p->done_cb = done_cb;
  p->done_arg = arg;
  p->pending_stops = 2;
  if (p->rules) {
    p->pending_stops += 5;
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, hw_pipeline_tick_closed);
    /* Rule state is saved once more and violations flushed; the cache unbinds every terminal
     * before the registry goes. */
    hw_rule_store_stop(p->rstore, hw_pipeline_stopped_one, p);
    hw_violation_store_stop(p->vstore, hw_pipeline_stopped_one, p);
    hw_violation_relay_stop(p->relay, hw_pipeline_stopped_one, p);
    hw_registry_cache_stop(p->cache, hw_pipeline_stopped_one, p);
  }
  hw_redis_state_stop(p->redis, hw_pipeline_stopped_one, p);
  hw_auth_stop(p->auth, hw_pipeline_stopped_one, p);
}
