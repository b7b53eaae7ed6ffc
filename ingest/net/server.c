#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/options.h"
#include "net/server_internal.h"

static void hw_server_maybe_done(hw_server *srv) {
  if (srv->closing && srv->pending_closes == 0 && srv->nsessions == 0 && srv->done_cb) {
    void (*cb)(void *) = srv->done_cb;
    srv->done_cb = NULL;
    free(srv->readbuf);
    void *arg = srv->done_arg;
    free(srv);
    cb(arg);
  }
}

void hw_server_session_gone(hw_server *srv) {
  srv->nsessions--;
  hw_server_maybe_done(srv);
}

static void hw_server_on_sweep(uv_timer_t *t) {
  hw_server *srv = t->data;
  uint64_t now = uv_now(srv->loop), limit = (uint64_t)srv->cfg.idle_timeout_s * 1000;
  /* While paused for backpressure silence is ours, not the client's: don't count it. */
  for (hw_session *s = srv->sessions, *next; s; s = next) {
    next = s->next;
    if (srv->paused)
      s->last_rx_ms = now;
    else if (now - s->last_rx_ms > limit) {
      hw_info(s->proto->name, hw_session_tid(s), "peer=%s idle for %us: closing", s->peer,
              srv->cfg.idle_timeout_s);
      if (s->proto->on_closing)
        s->proto->on_closing(s, HW_CLOSE_IDLE);
      hw_session_close(s);
    }
  }
}

int hw_server_init(hw_server **out, uv_loop_t *loop, const hw_server_config *cfg,
                   struct hw_backend *backend) {
  hw_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return -ENOMEM;
  srv->readbuf = malloc(HW_READ_BUF);
  if (!srv->readbuf) {
    free(srv);
    return -ENOMEM;
  }
  srv->loop = loop;
  srv->cfg = *cfg;
  srv->backend = backend;
  srv->accepting = 1;
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  uint64_t every = cfg->idle_timeout_s * 1000ull / 4;
  if (every < 100)
    every = 100;
  if (every > 5000)
    every = 5000;
  uv_timer_start(&srv->sweep, hw_server_on_sweep, every, every);
  uv_unref((uv_handle_t *)&srv->sweep);
  *out = srv;
  return 0;
}

static void hw_server_on_connection(uv_stream_t *st, int status) {
  hw_listener *l = st->data;
  if (status < 0) {
    hw_warn("server", NULL, "accept on %s failed: %s", l->addr, uv_strerror(status));
    return;
  }
  hw_session_start(l->srv, l);
}

int hw_server_listen(hw_server *srv, const char *hostport, const hw_proto *proto) {
  char host[64];
  int port, rc;
  struct sockaddr_storage ss;
  if (srv->nlisteners == HW_MAX_LISTENERS)
    return -ENOSPC;
  if (hw_parse_hostport(hostport, host, sizeof host, &port)) {
    hw_error("server", NULL, "listen address '%s' is not HOST:PORT", hostport);
    return -EINVAL;
  }
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)) {
    hw_error("server", NULL, "listen address '%s': '%s' is not an IP address", hostport, host);
    return -EINVAL;
  }
  hw_listener *l = &srv->listeners[srv->nlisteners];
  l->srv = srv;
  l->proto = proto;
  snprintf(l->addr, sizeof l->addr, "%s", hostport);
  uv_tcp_init(srv->loop, &l->tcp);
  l->tcp.data = l;
  srv->nlisteners++;
  if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) ||
      (rc = uv_listen((uv_stream_t *)&l->tcp, 4096, hw_server_on_connection))) {
    hw_error("server", NULL, "cannot listen on %s: %s", hostport, uv_strerror(rc));
    return rc;
  }
  hw_info("server", NULL, "listening on %s (%s)", hostport, proto->name);
  return 0;
}

void hw_server_pause(hw_server *srv) {
  if (srv->paused)
    return;
  srv->paused = 1;
  for (hw_session *s = srv->sessions; s; s = s->next)
    hw_session_read_stop(s);
}

void hw_server_resume(hw_server *srv) {
  if (!srv->paused || srv->closing)
    return;
  srv->paused = 0;
  uint64_t now = uv_now(srv->loop);
  for (hw_session *s = srv->sessions; s; s = s->next) {
    s->last_rx_ms = now;
    hw_session_read_start(s);
  }
}

int hw_server_paused(const hw_server *srv) { return srv->paused; }
struct hw_backend *hw_server_backend(hw_server *srv) { return srv->backend; }
uv_loop_t *hw_server_loop(hw_server *srv) { return srv->loop; }
size_t hw_server_sessions(const hw_server *srv) { return srv->nsessions; }

size_t hw_server_listener_stats_get(const hw_server *srv, hw_server_listener_stats *out, size_t max) {
  size_t n = 0;
  for (int i = 0; i < srv->nlisteners && n < max; i++, n++) {
    const hw_listener *l = &srv->listeners[i];
    out[n] = (hw_server_listener_stats){.proto = l->proto->name, .counters = l->counters};
    for (const hw_session *s = srv->sessions; s; s = s->next) {
      if (s->counters != &l->counters || s->closing)
        continue;
      if (s->term)
        out[n].authenticated++;
      else
        out[n].unauthenticated++;
    }
  }
  return n;
}

static void hw_server_on_sweep_closed(uv_handle_t *h) {
  hw_server *srv = h->data;
  srv->pending_closes--;
  hw_server_maybe_done(srv);
}

static void hw_server_on_listener_closed(uv_handle_t *h) {
  hw_server *srv = ((hw_listener *)h->data)->srv;
  srv->pending_closes--;
  hw_server_maybe_done(srv);
}

void hw_server_stop_accepting(hw_server *srv) {
  if (!srv->accepting)
    return;
  srv->accepting = 0;
  for (int i = 0; i < srv->nlisteners; i++) {
    srv->pending_closes++;
    uv_close((uv_handle_t *)&srv->listeners[i].tcp, hw_server_on_listener_closed);
  }
  hw_server_pause(srv);
}

void hw_server_close(hw_server *srv, void (*done_cb)(void *arg), void *arg) {
  hw_server_stop_accepting(srv);
  srv->closing = 1;
  srv->done_cb = done_cb;
  srv->done_arg = arg;
  for (hw_session *s = srv->sessions, *next; s; s = next) {
    next = s->next;
    if (s->proto->on_closing)
      s->proto->on_closing(s, HW_CLOSE_SHUTDOWN);
    hw_session_close(s);
  }
  srv->pending_closes++;
  uv_close((uv_handle_t *)&srv->sweep, hw_server_on_sweep_closed);
}
