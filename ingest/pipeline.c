#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

struct hw_pipeline {
  uv_loop_t *loop;
  hw_pipeline_config cfg;
  hw_registry registry;
  hw_pg_writer *pg;
  hw_redis_state *redis;
  hw_auth *auth;
  struct hw_server *server;
  uint64_t fixes_in, fixes_duplicate, acks_delivered, pauses;
  /* stop sequence */
  int stopping;
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
  if (p->server && hw_server_paused(p->server) && !p->stopping &&
      hw_pg_writer_backlog(p->pg) <= p->cfg.low_water) {
    hw_info("pipeline", NULL, "backlog %zu rows: reading again", hw_pg_writer_backlog(p->pg));
    hw_server_resume(p->server);
  }
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
  *out = p;
  return 0;
fail_redis:
  hw_redis_state_stop(p->redis, NULL, NULL);
fail_pg:
  hw_pg_writer_stop(p->pg, NULL, NULL);
fail:
  free(p);
  return rc;
}

void hw_pipeline_set_server(hw_pipeline *p, struct hw_server *srv) { p->server = srv; }
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
    if (f->source == HW_SRC_PROTOBUF) {
      if (f->seq <= t->queued_seq) {
        p->fixes_duplicate++;
        continue;
      }
      t->queued_seq = f->seq;
    }
    if ((rc = hw_pg_writer_add(p->pg, t->id, f)))
      return rc;
    hw_redis_state_put(p->redis, t, f);
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
  hw_redis_state_stop(p->redis, hw_pipeline_stopped_one, p);
  hw_auth_stop(p->auth, hw_pipeline_stopped_one, p);
}
