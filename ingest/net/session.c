/* A client connection's life on the loop: reads into the server's buffer and hands them to the
 * protocol, writes (copying only what the socket does not take at once), ack coalescing per
 * commit (hw_session_acks_begin/_end), binding to a terminal, and delivering durable acks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/proxy_v2.h"
#include "net/server_internal.h"

typedef struct hw_write_req {
  uv_write_t req;
  hw_session *s;
  size_t len;
  uint8_t data[]; /* owned copy of what the socket did not take at once */
} hw_write_req;

static void hw_session_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  hw_session *s = h->data;
  hw_server *srv = s->server;
  (void)suggested;
  /* The shared buffer is free again by the time libuv asks: every read is consumed in read_cb. */
  buf->base = (char *)srv->readbuf;
  buf->len = HW_READ_BUF;
}

static void hw_session_preauth_count(hw_session *s, size_t would_hold);

static void hw_session_preauth_close(hw_session *s, size_t held) {
  hw_session_preauth_count(s, held);
  hw_session_close(s);
}

/* Counts s against its source's unauthenticated sessions, or closes it (logged) at the limit. */
static int hw_session_enter_source(hw_session *s, const struct sockaddr *sa) {
  hw_server *srv = s->server;
  int rc = hw_server_source_enter(srv, s, sa);
  if (rc == -EMFILE) {
    srv->stats.refused_per_source++;
    hw_server_limit_log(srv, HW_LIMIT_PER_SOURCE,
                        "peer=%s (%s) refused: %u unauthenticated connections from its address "
                        "is the limit (max_unauth_per_source); %llu so refused since start",
                        s->peer, s->proto->name, srv->cfg.max_unauth_per_source,
                        (unsigned long long)srv->stats.refused_per_source);
  } else if (rc) {
    hw_error("server", NULL, "peer=%s refused: out of memory", s->peer);
  }
  if (rc)
    hw_session_close(s);
  return rc;
}

static void hw_session_peer_name(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[48] = "?";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  }
  snprintf(out, cap, "%s:%d", ip, port);
}

static void hw_session_proxy_refuse(hw_session *s, int rc) {
  hw_server *srv = s->server;
  srv->stats.closed_proxy_header++;
  hw_server_limit_log(srv, HW_LIMIT_PROXY_HEADER,
                      "peer=%s (%s) closed: %s (the listener requires a PROXY protocol v2 "
                      "header); %llu so closed since start", s->peer, s->proto->name,
                      rc == -EMSGSIZE ? "PROXY v2 header longer than we accept"
                                      : "no valid PROXY v2 header",
                      (unsigned long long)srv->stats.closed_proxy_header);
  hw_session_close(s);
}

/* A PROXY v2 listener's session reads its header first. Advances data and len past it; returns 0
 * when the header is done (the rest, if any, is the protocol's), 1 when more is needed, -1 when
 * the session was closed. A header split over reads waits in proxy_buf (at most
 * HW_PROXY_V2_MAX bytes). */
static int hw_session_proxy(hw_session *s, const uint8_t **data, size_t *len) {
  hw_proxy_v2 pv;
  int n;
  size_t from_this_read;
  if (!s->proxy_buf) {
    n = hw_proxy_v2_parse(*data, *len, &pv);
    if (n == 0) {
      if (!(s->proxy_buf = malloc(HW_PROXY_V2_MAX))) {
        hw_session_close(s);
        return -1;
      }
      memcpy(s->proxy_buf, *data, *len); /* parse returns 0 only below HW_PROXY_V2_MAX */
      s->proxy_len = (uint16_t)*len;
      return 1;
    }
    from_this_read = n > 0 ? (size_t)n : 0;
  } else {
    size_t take = HW_PROXY_V2_MAX - s->proxy_len;
    if (take > *len)
      take = *len;
    memcpy(s->proxy_buf + s->proxy_len, *data, take);
    size_t before = s->proxy_len;
    s->proxy_len = (uint16_t)(s->proxy_len + take);
    n = hw_proxy_v2_parse(s->proxy_buf, s->proxy_len, &pv);
    if (n == 0)
      return 1;
    from_this_read = n > 0 ? (size_t)n - before : 0;
  }
  if (n < 0) {
    hw_session_proxy_refuse(s, n);
    return -1;
  }
  free(s->proxy_buf);
  s->proxy_buf = NULL;
  s->proxy_wait = 0;
  *data += from_this_read;
  *len -= from_this_read;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (pv.has_addr) {
    char front[48];
    memcpy(front, s->peer, sizeof front);
    ss = pv.src;
    hw_session_peer_name(&ss, s->peer, sizeof s->peer);
    hw_debug(s->proto->name, NULL, "peer=%s through %s (PROXY v2)", s->peer, front);
  } else {
    int sl = sizeof ss; /* LOCAL (the front's health check) or no address: the connection's */
    (void)uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sl);
  }
  return hw_session_enter_source(s, (const struct sockaddr *)&ss) ? -1 : 0;
}

static void hw_session_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  hw_session *s = st->data;
  if (nread < 0) {
    if (nread != UV_EOF)
      hw_debug(s->proto->name, hw_session_tid(s), "peer=%s read error: %s", s->peer,
               uv_strerror((int)nread));
    hw_session_close(s);
    return;
  }
  if (nread == 0 || s->closing)
    return;
  hw_server *srv = s->server;
  s->last_rx_ms = uv_now(srv->loop);
  hw_server_list_touch(srv, s);
  const uint8_t *data = (const uint8_t *)buf->base;
  size_t len = (size_t)nread;
  if (s->proxy_wait && (hw_session_proxy(s, &data, &len) != 0 || len == 0))
    return;
  if (s->proto->on_data(s, data, len) < 0) {
    hw_session_close(s);
    return;
  }
  if (s->closing)
    return;
  if (!s->term && s->proto->held_bytes) {
    size_t held = s->proto->held_bytes(s);
    if (held > srv->cfg.preauth_buffer) {
      hw_session_preauth_close(s, held);
      return;
    }
  }
  /* A full read means more is waiting: the others get their turn first. */
  if ((size_t)nread == HW_READ_TURN && s->reading)
    hw_server_yield(srv, s);
}

size_t hw_session_preauth_limit(const hw_session *s) { return s->server->cfg.preauth_buffer; }

static void hw_session_preauth_count(hw_session *s, size_t would_hold) {
  hw_server *srv = s->server;
  srv->stats.closed_preauth_buffer++;
  hw_server_limit_log(srv, HW_LIMIT_PREAUTH_BUFFER,
                      "peer=%s (%s) closed: would hold at least %zu bytes before "
                      "authentication, more than %u (preauth_buffer); %llu so closed since start",
                      s->peer, s->proto->name,
                      would_hold, srv->cfg.preauth_buffer,
                      (unsigned long long)srv->stats.closed_preauth_buffer);
  if (s->proto->on_closing)
    s->proto->on_closing(s, HW_CLOSE_PREAUTH_BUFFER);
}

int hw_session_preauth_exceeded(hw_session *s, size_t would_hold) {
  hw_session_preauth_count(s, would_hold);
  return -EMSGSIZE;
}

void hw_session_read_start(hw_session *s) {
  if (s->reading || s->closing)
    return;
  int rc = uv_read_start((uv_stream_t *)&s->tcp, hw_session_alloc, hw_session_on_read);
  if (rc) {
    hw_warn(s->proto->name, hw_session_tid(s), "peer=%s cannot read: %s", s->peer, uv_strerror(rc));
    hw_session_close(s);
    return;
  }
  s->reading = 1;
}

void hw_session_read_stop(hw_session *s) {
  if (!s->reading)
    return;
  uv_read_stop((uv_stream_t *)&s->tcp);
  s->reading = 0;
}

static void hw_session_on_closed(uv_handle_t *h) {
  hw_session *s = h->data;
  hw_server *srv = s->server;
  free(s);
  hw_server_session_gone(srv);
}

void hw_session_close(hw_session *s) {
  if (s->closing)
    return;
  s->closing = 1;
  hw_server *srv = s->server;
  hw_server_list_remove(srv, s);
  hw_server_unauth_leave(srv, s);
  free(s->proxy_buf);
  s->proxy_buf = NULL;
  if (s->term && s->term->session == s)
    s->term->session = NULL;
  if (s->proto->on_close)
    s->proto->on_close(s);
  uv_close((uv_handle_t *)&s->tcp, hw_session_on_closed);
}

static void hw_session_on_written(uv_write_t *req, int status) {
  hw_write_req *w = HW_CONTAINER_OF(req, hw_write_req, req);
  hw_session *s = w->s;
  s->write_queued -= (uint32_t)w->len;
  if (status < 0 && status != UV_ECANCELED)
    hw_debug(s->proto->name, hw_session_tid(s), "peer=%s write failed: %s", s->peer,
             uv_strerror(status));
  free(w);
}

/* Writes bufs in order: what the socket takes at once is not copied, the rest is copied into
 * one write request (acks are small: most of the time nothing is copied). */
static int hw_session_writev(hw_session *s, const uv_buf_t *bufs, unsigned nbufs) {
  if (s->closing)
    return -EPIPE;
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++)
    total += bufs[i].len;
  size_t done = 0;
  if (s->write_queued == 0) {
    int n = uv_try_write((uv_stream_t *)&s->tcp, bufs, nbufs);
    if (n == (int)total)
      return 0;
    if (n > 0) {
      done = (size_t)n;
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      hw_session_close(s);
      return n;
    }
  }
  size_t len = total - done;
  if (s->write_queued + len > s->server->cfg.max_write_queue) {
    hw_warn(s->proto->name, hw_session_tid(s), "peer=%s does not read its replies (%u bytes queued): closing",
            s->peer, s->write_queued);
    hw_session_close(s);
    return -ENOBUFS;
  }
  hw_write_req *w = malloc(sizeof *w + len);
  if (!w) {
    hw_session_close(s);
    return -ENOMEM;
  }
  w->s = s;
  w->len = len;
  size_t at = 0, skip = done;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t bl = bufs[i].len;
    if (skip >= bl) {
      skip -= bl;
      continue;
    }
    memcpy(w->data + at, bufs[i].base + skip, bl - skip);
    at += bl - skip;
    skip = 0;
  }
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, hw_session_on_written);
  if (rc) {
    free(w);
    hw_session_close(s);
    return rc;
  }
  s->write_queued += (uint32_t)len;
  return 0;
}

/* --- ack coalescing ------------------------------------------------------------------------ */

#define HW_CORK_NONE UINT32_MAX
#define HW_CORK_KEEP (256 * 1024) /* arena bytes kept between commits; more is freed at end */

typedef struct hw_cork_piece {
  uint32_t off, len, next;
} hw_cork_piece;

/* One per loop thread (each loop runs in one thread): owned, grown as needed. */
static _Thread_local struct {
  int depth;
  uint8_t *buf;
  size_t len, cap;
  hw_cork_piece *pieces;
  size_t npieces, pcap;
  uv_buf_t *iov;
  size_t iovcap;
  hw_session *head, *tail;
} hw_cork;

void hw_session_acks_begin(void) { hw_cork.depth++; }

/* Appends to s's chain; -ENOMEM leaves everything as it was. */
static int hw_cork_put(hw_session *s, const uint8_t *data, size_t len) {
  if (hw_cork.len + len > UINT32_MAX)
    return -ENOMEM;
  if (hw_cork.cap - hw_cork.len < len) {
    size_t cap = hw_cork.cap ? hw_cork.cap : 4096;
    while (cap - hw_cork.len < len)
      cap *= 2;
    uint8_t *b = realloc(hw_cork.buf, cap);
    if (!b)
      return -ENOMEM;
    hw_cork.buf = b;
    hw_cork.cap = cap;
  }
  if (hw_cork.npieces == hw_cork.pcap) {
    size_t cap = hw_cork.pcap ? hw_cork.pcap * 2 : 256;
    hw_cork_piece *p = realloc(hw_cork.pieces, cap * sizeof *p);
    if (!p)
      return -ENOMEM;
    hw_cork.pieces = p;
    hw_cork.pcap = cap;
  }
  uint32_t idx = (uint32_t)hw_cork.npieces++;
  hw_cork.pieces[idx] = (hw_cork_piece){.off = (uint32_t)hw_cork.len, .len = (uint32_t)len,
                                        .next = HW_CORK_NONE};
  memcpy(hw_cork.buf + hw_cork.len, data, len);
  hw_cork.len += len;
  if (!s->cork_listed) {
    s->cork_listed = 1;
    s->cork_head = s->cork_tail = idx;
    s->cork_next = NULL;
    if (hw_cork.tail)
      hw_cork.tail->cork_next = s;
    else
      hw_cork.head = s;
    hw_cork.tail = s;
  } else {
    hw_cork.pieces[s->cork_tail].next = idx;
    s->cork_tail = idx;
  }
  return 0;
}

/* Writes s's pieces (one writev) and forgets them; s stays listed until the end. */
static int hw_cork_flush_one(hw_session *s) {
  size_t n = 0;
  for (uint32_t i = s->cork_head; i != HW_CORK_NONE; i = hw_cork.pieces[i].next)
    n++;
  if (!n)
    return 0;
  if (n > hw_cork.iovcap) {
    uv_buf_t *v = realloc(hw_cork.iov, n * sizeof *v);
    if (!v) {
      hw_session_close(s);
      return -ENOMEM;
    }
    hw_cork.iov = v;
    hw_cork.iovcap = n;
  }
  n = 0;
  for (uint32_t i = s->cork_head; i != HW_CORK_NONE; i = hw_cork.pieces[i].next)
    hw_cork.iov[n++] = uv_buf_init((char *)hw_cork.buf + hw_cork.pieces[i].off,
                                   hw_cork.pieces[i].len);
  s->cork_head = s->cork_tail = HW_CORK_NONE;
  return hw_session_writev(s, hw_cork.iov, (unsigned)n);
}

void hw_session_acks_end(void) {
  if (hw_cork.depth <= 0 || --hw_cork.depth > 0)
    return;
  hw_session *s = hw_cork.head;
  hw_cork.head = hw_cork.tail = NULL;
  while (s) {
    hw_session *next = s->cork_next;
    s->cork_listed = 0;
    s->cork_next = NULL;
    /* A session closed meanwhile is still allocated (freed from its close callback, later in
     * the loop); writev refuses it. */
    (void)hw_cork_flush_one(s);
    s = next;
  }
  hw_cork.len = 0;
  hw_cork.npieces = 0;
  if (hw_cork.cap > HW_CORK_KEEP) {
    free(hw_cork.buf);
    hw_cork.buf = NULL;
    hw_cork.cap = 0;
    free(hw_cork.pieces);
    hw_cork.pieces = NULL;
    hw_cork.pcap = 0;
  }
}

int hw_session_write(hw_session *s, const uint8_t *data, size_t len) {
  if (s->closing)
    return -EPIPE;
  if (hw_cork.depth > 0) {
    if (hw_cork_put(s, data, len) == 0)
      return 0;
    /* Out of memory: what s gathered goes now, then this, in order. */
    if (s->cork_listed) {
      int rc = hw_cork_flush_one(s);
      if (rc)
        return rc;
    }
  }
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  return hw_session_writev(s, &b, 1);
}

void hw_session_close_replaced(hw_session *old) {
  if (old->closing)
    return;
  if (old->term && old->term->session == old)
    old->term->session = NULL;
  old->term = NULL; /* the old session no longer speaks for its terminal */
  if (old->proto->on_closing)
    old->proto->on_closing(old, HW_CLOSE_REPLACED);
  hw_session_close(old);
}

void hw_session_bind(hw_session *s, hw_terminal *t) {
  hw_session *old = t->session;
  if (old && old != s) {
    hw_info(s->proto->name, t->id, "peer=%s replaces the session from %s", s->peer, old->peer);
    hw_session_close_replaced(old);
  }
  t->session = s;
  t->session_gen++;
  s->term = t;
  hw_server_unauth_leave(s->server, s);
  s->gen = t->session_gen;
}

void hw_session_evict(hw_terminal *t) {
  hw_session *s = t->session;
  if (!s || s->closing)
    return;
  hw_info(s->proto->name, t->id, "peer=%s closed: the terminal is owned by another daemon now",
          s->peer);
  if (s->proto->on_closing)
    s->proto->on_closing(s, HW_CLOSE_OWNER_MOVED);
  hw_session_close(s);
}

int hw_session_deliver_ack(const hw_ack_ref *ack) {
  hw_session *s = ack->term->session;
  if (!s || ack->term->session_gen != ack->session_gen || s->closing)
    return 0;
  s->proto->on_durable(s, ack);
  return 1;
}

void hw_session_start(hw_server *srv, hw_listener *l) {
  hw_session *s = calloc(1, sizeof *s + l->proto->state_size);
  if (!s) {
    hw_error("server", NULL, "out of memory accepting on %s", l->addr);
    return;
  }
  s->server = srv;
  s->proto = l->proto;
  s->counters = &l->counters;
  s->cork_head = s->cork_tail = HW_CORK_NONE;
  s->tcp.data = s;
  int rc = uv_tcp_init(srv->loop, &s->tcp);
  if (rc) {
    free(s);
    return;
  }
  if ((rc = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&s->tcp))) {
    s->closing = 1;
    uv_close((uv_handle_t *)&s->tcp, hw_session_on_closed);
    srv->nsessions++;
    return;
  }
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sl) == 0)
    hw_session_peer_name(&ss, s->peer, sizeof s->peer);
  uv_tcp_nodelay(&s->tcp, 1);
  s->last_rx_ms = uv_now(srv->loop);
  hw_server_list_append(srv, s);
  srv->nsessions++;
  srv->stats.accepted++;
  if (srv->nsessions > srv->cfg.max_connections) {
    srv->stats.refused_max_connections++;
    hw_server_limit_log(srv, HW_LIMIT_MAX_CONNECTIONS,
                        "peer=%s (%s) refused: %u connections is the limit (max_connections); "
                        "%llu so refused since start", s->peer, s->proto->name,
                        srv->cfg.max_connections,
                        (unsigned long long)srv->stats.refused_max_connections);
    hw_session_close(s);
    return;
  }
  /* Behind a front, the source is known from the header (hw_session_proxy); until then the
   * session counts in max_connections and is closed by the idle timeout if nothing comes. */
  if (l->proxy_v2)
    s->proxy_wait = 1;
  else if (hw_session_enter_source(s, (const struct sockaddr *)&ss))
    return;
  if (!srv->paused)
    hw_session_read_start(s);
}

const char *hw_bad_frame_reason_name(int r) {
  static const char *const names[HW_BAD_FRAME__COUNT] = {"checksum", "escape", "oversize",
                                                         "length", "header", "decode"};
  return r >= 0 && r < HW_BAD_FRAME__COUNT ? names[r] : "other";
}

const char *hw_refuse_reason_name(int r) {
  static const char *const names[HW_REFUSE__COUNT] = {"not_authenticated", "auth_failed",
                                                      "bad_message", "invalid_fix", "internal"};
  return r >= 0 && r < HW_REFUSE__COUNT ? names[r] : "other";
}
