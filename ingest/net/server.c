#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/options.h"
#include "net/server_internal.h"

static void hw_server_maybe_done(hw_server *srv) {
  if (srv->closing && srv->pending_closes == 0 && srv->nsessions == 0 && srv->done_cb) {
    void (*cb)(void *) = srv->done_cb;
    srv->done_cb = NULL;
    free(srv->readbuf);
    free(srv->yielded);
    void *arg = srv->done_arg;
    free(srv);
    cb(arg);
  }
}

void hw_server_session_gone(hw_server *srv) {
  srv->nsessions--;
  hw_server_maybe_done(srv);
}

uint64_t hw_server_active_ms(const hw_server *srv) {
  uint64_t now = uv_now(srv->loop);
  uint64_t paused = srv->paused_total_ms + (srv->paused ? now - srv->paused_since_ms : 0);
  return now - paused;
}

void hw_server_limit_log(hw_server *srv, hw_limit which, const char *fmt, ...) {
  hw_limit_log *l = &srv->limit_log[which];
  uint64_t now = uv_now(srv->loop);
  if (l->last_ms && now - l->last_ms < HW_LIMIT_LOG_MS) {
    l->suppressed++;
    return;
  }
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (l->suppressed)
    hw_warn("server", NULL, "%s (and %llu more like it in the last %llu s, not logged)", msg,
            (unsigned long long)l->suppressed, (unsigned long long)((now - l->last_ms) / 1000));
  else
    hw_warn("server", NULL, "%s", msg);
  l->last_ms = now ? now : 1;
  l->suppressed = 0;
}

/* ---- session lists ---- */

void hw_server_list_append(hw_server *srv, hw_session *s) {
  s->next = NULL;
  s->prev = srv->sessions_tail;
  if (s->prev)
    s->prev->next = s;
  else
    srv->sessions = s;
  srv->sessions_tail = s;
}

void hw_server_list_remove(hw_server *srv, hw_session *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    srv->sessions = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    srv->sessions_tail = s->prev;
  s->prev = s->next = NULL;
}

/* s was just read: it goes to the back of the line for the next resume. */
void hw_server_list_touch(hw_server *srv, hw_session *s) {
  if (srv->sessions_tail == s)
    return;
  hw_server_list_remove(srv, s);
  hw_server_list_append(srv, s);
}

/* ---- unauthenticated sessions: per source, deadline ---- */

static void hw_server_arm_auth(hw_server *srv);

static void hw_source_key(const struct sockaddr *sa, uint8_t key[16]) {
  memset(key, 0, 16);
  if (sa->sa_family == AF_INET) {
    /* ::ffff:a.b.c.d, the same key an IPv4-mapped IPv6 peer gets */
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    /* One subscriber usually holds a whole /64: count the prefix, not each address in it. */
    memcpy(key, a, memcmp(a, mapped, 12) == 0 ? 16 : 8);
  }
}

int hw_server_source_enter(hw_server *srv, hw_session *s, const struct sockaddr *sa) {
  uint8_t key[16];
  hw_source *src;
  hw_source_key(sa, key);
  HASH_FIND(hh, srv->sources, key, sizeof key, src);
  if (src && src->unauth >= srv->cfg.max_unauth_per_source)
    return -EMFILE;
  /* All unauthenticated slots taken: the oldest goes, not the newcomer. A terminal logs in within
   * a round trip or two, so the oldest is the likeliest to be holding its slot on purpose, and
   * refusing newcomers instead would let whoever fills the slots first lock everyone out. */
  if (srv->nunauth >= srv->cfg.max_unauth && srv->unauth) {
    hw_session *old = srv->unauth;
    srv->stats.evicted_unauth++;
    hw_server_limit_log(srv, HW_LIMIT_MAX_UNAUTH,
                        "peer=%s (%s) closed: the oldest of %u unauthenticated connections "
                        "(max_unauth), for peer=%s; %llu so closed since start", old->peer,
                        old->proto->name, srv->cfg.max_unauth, s->peer,
                        (unsigned long long)srv->stats.evicted_unauth);
    if (old->proto->on_closing)
      old->proto->on_closing(old, HW_CLOSE_AUTH_TIMEOUT);
    hw_session_close(old);
    /* old may have been the last of this very source, which is then freed: look it up again. */
    HASH_FIND(hh, srv->sources, key, sizeof key, src);
  }
  if (!src) {
    if (!(src = calloc(1, sizeof *src)))
      return -ENOMEM;
    memcpy(src->key, key, sizeof key);
    HASH_ADD(hh, srv->sources, key, sizeof src->key, src);
  }
  src->unauth++;
  s->source = src;
  s->opened_active_ms = hw_server_active_ms(srv);
  s->unext = NULL;
  s->uprev = srv->unauth_tail;
  if (s->uprev)
    s->uprev->unext = s;
  else
    srv->unauth = s;
  srv->unauth_tail = s;
  srv->nunauth++;
  if (srv->unauth == s)
    hw_server_arm_auth(srv);
  return 0;
}

/* s is bound to a terminal or closed: it no longer counts against its source. */
void hw_server_unauth_leave(hw_server *srv, hw_session *s) {
  hw_source *src = s->source;
  if (!src)
    return;
  s->source = NULL;
  if (--src->unauth == 0) {
    HASH_DEL(srv->sources, src);
    free(src);
  }
  int was_head = srv->unauth == s;
  if (s->uprev)
    s->uprev->unext = s->unext;
  else
    srv->unauth = s->unext;
  if (s->unext)
    s->unext->uprev = s->uprev;
  else
    srv->unauth_tail = s->uprev;
  s->uprev = s->unext = NULL;
  srv->nunauth--;
  if (was_head)
    hw_server_arm_auth(srv);
}

static void hw_server_on_auth_timer(uv_timer_t *t) {
  hw_server *srv = t->data;
  uint64_t limit = (uint64_t)srv->cfg.auth_timeout_s * 1000, now = hw_server_active_ms(srv);
  /* Oldest first: stop at the first one still within its time. */
  while (srv->unauth && !srv->paused && now - srv->unauth->opened_active_ms >= limit) {
    hw_session *s = srv->unauth;
    srv->stats.closed_auth_timeout++;
    hw_server_limit_log(srv, HW_LIMIT_AUTH_TIMEOUT,
                        "peer=%s (%s) closed: not authenticated within %u s (auth_timeout_s); "
                        "%llu so closed since start", s->peer, s->proto->name,
                        srv->cfg.auth_timeout_s, (unsigned long long)srv->stats.closed_auth_timeout);
    if (s->proto->on_closing)
      s->proto->on_closing(s, HW_CLOSE_AUTH_TIMEOUT);
    hw_session_close(s); /* leaves the list, re-arms */
  }
  hw_server_arm_auth(srv);
}

/* Due when the oldest unauthenticated session's time is up; stopped while paused. */
static void hw_server_arm_auth(hw_server *srv) {
  if (srv->closing)
    return;
  if (!srv->unauth || srv->paused || !srv->cfg.auth_timeout_s) {
    uv_timer_stop(&srv->auth_timer);
    return;
  }
  uint64_t limit = (uint64_t)srv->cfg.auth_timeout_s * 1000, now = hw_server_active_ms(srv);
  uint64_t age = now - srv->unauth->opened_active_ms;
  uv_timer_start(&srv->auth_timer, hw_server_on_auth_timer, age >= limit ? 0 : limit - age, 0);
}

/* ---- fair turns ---- */

static void hw_server_on_turn(uv_check_t *c) {
  hw_server *srv = c->data;
  /* Sessions closed during this poll are still allocated (freed in the close phase). */
  for (size_t i = 0; i < srv->nyielded; i++) {
    hw_session *s = srv->yielded[i];
    s->yielded = 0;
    if (!srv->paused && !s->closing)
      hw_session_read_start(s);
  }
  srv->nyielded = 0;
  uv_check_stop(c);
}

void hw_server_yield(hw_server *srv, hw_session *s) {
  if (s->yielded)
    return;
  if (srv->nyielded == srv->cap_yielded) {
    size_t cap = srv->cap_yielded ? srv->cap_yielded * 2 : 64;
    hw_session **y = realloc(srv->yielded, cap * sizeof *y);
    if (!y)
      return; /* it keeps reading this turn: unfair, not wrong */
    srv->yielded = y;
    srv->cap_yielded = cap;
  }
  hw_session_read_stop(s);
  s->yielded = 1;
  srv->yielded[srv->nyielded++] = s;
  srv->stats.read_yields++;
  if (srv->nyielded == 1)
    uv_check_start(&srv->turn, hw_server_on_turn);
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
  /* 0 is "no limit" (a config written before these settings existed), never "refuse all". */
  if (!srv->cfg.preauth_buffer)
    srv->cfg.preauth_buffer = UINT32_MAX;
  if (!srv->cfg.max_unauth_per_source)
    srv->cfg.max_unauth_per_source = UINT32_MAX;
  if (!srv->cfg.max_unauth)
    srv->cfg.max_unauth = UINT32_MAX;
  srv->backend = backend;
  srv->accepting = 1;
  uv_timer_init(loop, &srv->auth_timer);
  srv->auth_timer.data = srv;
  uv_unref((uv_handle_t *)&srv->auth_timer);
  uv_check_init(loop, &srv->turn);
  srv->turn.data = srv;
  uv_unref((uv_handle_t *)&srv->turn);
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
    /* Out of descriptors (EMFILE/ENFILE) is the usual cause: libuv closes its reserve descriptor,
     * accepts and closes the peers that wait (they see the connection closed and retry later),
     * and opens it again; the sessions already open go on. One line per HW_LIMIT_LOG_MS: a
     * reconnect storm at the limit would otherwise write a line per attempt. */
    l->srv->stats.accept_failed++;
    hw_server_limit_log(l->srv, HW_LIMIT_ACCEPT,
                        "accept on %s failed: %s (%zu sessions open; out of descriptors: raise "
                        "the open files limit, LimitNOFILE / ulimit -n, or lower max_connections "
                        "below it); %llu failed since start", l->addr, uv_strerror(status),
                        l->srv->nsessions, (unsigned long long)l->srv->stats.accept_failed);
    return;
  }
  hw_session_start(l->srv, l);
}

/* libuv 1.44 has no flag for SO_REUSEPORT: the socket is made here, the option set before the
 * bind, and the socket handed to libuv (uv_tcp_open), whose bind and listen then use it. On
 * failure the socket is closed, or owned by l (closed with it). */
static int hw_server_reuseport_open(uv_tcp_t *tcp, const struct sockaddr *sa) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc;
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if ((rc = uv_tcp_open(tcp, fd))) {
    close(fd);
    return rc;
  }
  return 0;
}

int hw_server_listen(hw_server *srv, const char *hostport, const hw_proto *proto) {
  return hw_server_listen_ex(srv, hostport, proto, 0);
}

int hw_server_listen_ex(hw_server *srv, const char *hostport, const hw_proto *proto,
                        int proxy_v2) {
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
  l->proxy_v2 = proxy_v2;
  snprintf(l->addr, sizeof l->addr, "%s", hostport);
  uv_tcp_init(srv->loop, &l->tcp);
  l->tcp.data = l;
  srv->nlisteners++;
  if (srv->cfg.reuseport && (rc = hw_server_reuseport_open(&l->tcp, (struct sockaddr *)&ss))) {
    hw_error("server", NULL, "cannot listen on %s: %s", hostport, uv_strerror(rc));
    return rc;
  }
  if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) ||
      (rc = uv_listen((uv_stream_t *)&l->tcp, 4096, hw_server_on_connection))) {
    hw_error("server", NULL, "cannot listen on %s: %s", hostport, uv_strerror(rc));
    return rc;
  }
  hw_info("server", NULL, "listening on %s (%s%s)", hostport, proto->name,
          proxy_v2 ? ", PROXY v2 header required" : "");
  return 0;
}

void hw_server_pause(hw_server *srv) {
  if (srv->paused)
    return;
  srv->paused = 1;
  srv->paused_since_ms = uv_now(srv->loop);
  uv_timer_stop(&srv->auth_timer);
  for (hw_session *s = srv->sessions; s; s = s->next)
    hw_session_read_stop(s);
}

void hw_server_resume(hw_server *srv) {
  if (!srv->paused || srv->closing)
    return;
  uint64_t now = uv_now(srv->loop);
  srv->paused = 0;
  srv->paused_total_ms += now - srv->paused_since_ms;
  /* Least recently read first: libuv registers the sockets in this order, so the kernel reports
   * them in it, and the sessions a pause cut off last time are read first this time. */
  for (hw_session *s = srv->sessions, *next; s; s = next) {
    next = s->next; /* a session that cannot read is closed and leaves the list */
    s->last_rx_ms = now;
    hw_session_read_start(s);
  }
  hw_server_arm_auth(srv);
}

int hw_server_paused(const hw_server *srv) { return srv->paused; }
struct hw_backend *hw_server_backend(hw_server *srv) { return srv->backend; }
uv_loop_t *hw_server_loop(hw_server *srv) { return srv->loop; }
size_t hw_server_sessions(const hw_server *srv) { return srv->nsessions; }

void hw_server_get_stats(const hw_server *srv, hw_server_stats *out) {
  *out = srv->stats;
  out->sessions = srv->nsessions;
  out->unauthenticated = srv->nunauth;
}

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

static void hw_server_on_handle_closed(uv_handle_t *h) {
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
  srv->nyielded = 0;
  srv->pending_closes += 3;
  uv_close((uv_handle_t *)&srv->sweep, hw_server_on_handle_closed);
  uv_close((uv_handle_t *)&srv->auth_timer, hw_server_on_handle_closed);
  uv_close((uv_handle_t *)&srv->turn, hw_server_on_handle_closed);
}
