/* JT/T 809 slave link (see jt809_slave.h). */
#include "jt809/jt809_slave.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "jt809/jt809_centre.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_slave_sm.h"

#define HW_J9S_LOG "jt809"
/* The platform only answers on this link (0x9002, 0x9004, 0x9006) and sends the odd notice
 * (0x1007, 0x1008): small frames. Anything larger is refused as oversize. */
#define HW_J9S_FRAME_MAX 4096
#define HW_J9S_MAX_WRITE_QUEUE 65536

enum { HW_J9S_WAIT = 0, HW_J9S_CONNECTING, HW_J9S_LOGIN, HW_J9S_LIVE, HW_J9S_STOPPED };

struct hw_jt809_slave {
  uv_loop_t *loop;
  hw_jt809_centre *centre;  /* borrowed: outlives every slave link */
  uv_tcp_t *tcp;            /* owned, heap (closes asynchronously); NULL when none */
  uv_timer_t timer;         /* backoff, connect / login / answer deadline, heartbeat */
  int handles;              /* our handles not closed yet (timer, tcp) */
  int state;
  struct sockaddr_storage sa;
  char addr[64];            /* "ip:port" for logs and link rows */
  char platform[33];
  char tid[24];             /* "jt809p:ACCESSCODE", the log object */
  uint32_t center;
  uint32_t verify;
  uint8_t is_2019;
  uint32_t sn;
  uint32_t backoff_ms;
  uint64_t answer_due;      /* loop ms by which the peer must have said something; 0 = none */
  uint64_t next_beat;       /* loop ms of the next 0x9005 */
  hw_jt809_deframer df;
  uint8_t buf[HW_J9S_FRAME_MAX];
  const char *why;          /* why the current attempt ended (static text) */
  void (*on_change)(void *arg, int up, const char *why);
  void *arg;
};

static void hw_j9s_schedule(hw_jt809_slave *sl);
static void hw_j9s_on_timer(uv_timer_t *t);

/* ---- address policy ---------------------------------------------------------------------- */

int hw_jt809_slave_addr(const char *ip, uint16_t port, int local_ok, struct sockaddr_storage *sa,
                        const char **why) {
  memset(sa, 0, sizeof *sa);
  if (port == 0) {
    *why = "port 0";
    return -EINVAL;
  }
  struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    uint32_t a = ntohl(v4->sin_addr.s_addr);
    int local = (a >> 24) == 127 || (a >> 16) == 0xa9fe /* 169.254/16 */;
    if (a == 0 || (a >> 24) == 0 || (a >> 28) == 0xe /* multicast */ || (a >> 28) == 0xf) {
      *why = "unspecified, multicast or reserved address";
      return -EINVAL;
    }
    if (local && !local_ok) {
      *why = "loopback or link-local address (platforms.slave_local_ok not set)";
      return -EINVAL;
    }
    return 0;
  }
  if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    const uint8_t *b = v6->sin6_addr.s6_addr;
    static const uint8_t zero[16];
    int loop6 = !memcmp(b, zero, 15) && b[15] == 1;
    int link6 = b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
    int mapped = !memcmp(b, zero, 10) && b[10] == 0xff && b[11] == 0xff;
    if (!memcmp(b, zero, 16) || b[0] == 0xff || mapped) {
      *why = "unspecified, multicast or IPv4-mapped address";
      return -EINVAL;
    }
    if ((loop6 || link6) && !local_ok) {
      *why = "loopback or link-local address (platforms.slave_local_ok not set)";
      return -EINVAL;
    }
    return 0;
  }
  *why = "not a numeric IP address";
  return -EINVAL;
}

/* ---- sending ----------------------------------------------------------------------------- */

typedef struct hw_j9s_wreq {
  uv_write_t req;
  uint8_t data[]; /* owned: freed with the request */
} hw_j9s_wreq;

static void hw_j9s_written(uv_write_t *req, int status) {
  (void)status; /* a failed write shows as a read error or a missing answer */
  free(req->data);
}

static int hw_j9s_write(hw_jt809_slave *sl, uint16_t msg_id, const uint8_t *body, size_t len,
                        uint32_t *sn_out) {
  if (!sl->tcp)
    return -ENOTCONN;
  if (uv_stream_get_write_queue_size((uv_stream_t *)sl->tcp) > HW_J9S_MAX_WRITE_QUEUE)
    return -ENOBUFS;
  size_t cap = hw_jt809_wire_max(len), n;
  hw_j9s_wreq *w = malloc(sizeof *w + cap);
  if (!w)
    return -ENOMEM;
  hw_jt809_header h;
  hw_jt809_header_init(&h, sl->sn++, msg_id, sl->center, sl->is_2019, (uint64_t)time(NULL));
  int rc = hw_jt809_build(w->data, cap, &n, &h, NULL, body, len);
  if (rc) {
    free(w);
    return rc;
  }
  w->req.data = w;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  if ((rc = uv_write(&w->req, (uv_stream_t *)sl->tcp, &b, 1, hw_j9s_written))) {
    free(w);
    return rc;
  }
  if (sn_out)
    *sn_out = h.sn;
  return 0;
}

/* ---- the link's life --------------------------------------------------------------------- */

static void hw_j9s_tcp_closed(uv_handle_t *h) {
  hw_jt809_slave *sl = h->data;
  free(h);
  if (--sl->handles == 0 && sl->state == HW_J9S_STOPPED)
    free(sl);
}

static void hw_j9s_timer_closed(uv_handle_t *h) {
  hw_jt809_slave *sl = h->data;
  if (--sl->handles == 0)
    free(sl);
}

/* Ends the current attempt (why: static text); a new one follows after the backoff unless
 * stopped. */
static void hw_j9s_drop(hw_jt809_slave *sl, const char *why) {
  int was_up = sl->state == HW_J9S_LIVE;
  if (sl->tcp) {
    uv_read_stop((uv_stream_t *)sl->tcp);
    if (!uv_is_closing((uv_handle_t *)sl->tcp))
      uv_close((uv_handle_t *)sl->tcp, hw_j9s_tcp_closed);
    sl->tcp = NULL;
  }
  if (was_up) {
    hw_info(HW_J9S_LOG, sl->tid, "platform %s slave link to %s down: %s", sl->platform, sl->addr,
            why);
    hw_jt809_centre_link_down(sl->centre, sl->platform, "slave", hw_jt809_wall_ms(), why);
  } else if (sl->state != HW_J9S_STOPPED) {
    hw_info(HW_J9S_LOG, sl->tid, "platform %s slave link to %s failed: %s (next try in %u ms)",
            sl->platform, sl->addr, why, sl->backoff_ms);
  }
  if (sl->state == HW_J9S_STOPPED)
    return;
  sl->state = HW_J9S_WAIT;
  sl->answer_due = 0;
  if (was_up && sl->on_change)
    sl->on_change(sl->arg, 0, why);
  hw_j9s_schedule(sl);
}

static void hw_j9s_schedule(hw_jt809_slave *sl) {
  uint64_t now = uv_now(sl->loop);
  uint64_t due = sl->state == HW_J9S_WAIT ? now + sl->backoff_ms : UINT64_MAX;
  if (sl->answer_due && sl->answer_due < due)
    due = sl->answer_due;
  if (sl->state == HW_J9S_LIVE && sl->next_beat < due)
    due = sl->next_beat;
  uv_timer_start(&sl->timer, hw_j9s_on_timer, due > now ? due - now : 0, 0);
}

static void hw_j9s_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  static _Thread_local char rbuf[4096]; /* the loop thread's; consumed before the next read */
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static int hw_j9s_on_frame(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  hw_jt809_slave *sl = arg;
  if (ev != HW_JT809_FRAME) {
    sl->why = hw_jt809_event_name(ev);
    return -EPROTO;
  }
  uint8_t code;
  const char *why;
  hw_j9s_act act = hw_jt809_slave_step(sl->state == HW_J9S_LIVE ? HW_J9S_SM_UP : HW_J9S_SM_LOGIN,
                                       sl->is_2019, sl->center, data, len, &code, &why);
  const hw_jt809_centre_config *cfg = hw_jt809_centre_cfg(sl->centre);
  switch (act) {
  case HW_J9S_UP:
    sl->state = HW_J9S_LIVE;
    sl->backoff_ms = cfg->slave_backoff_min_ms;
    sl->answer_due = 0;
    sl->next_beat = uv_now(sl->loop) + cfg->slave_heartbeat_ms;
    hw_info(HW_J9S_LOG, sl->tid, "platform %s slave link to %s up", sl->platform, sl->addr);
    hw_jt809_centre_link_up(sl->centre, sl->platform, "slave", sl->addr, hw_jt809_wall_ms());
    if (sl->on_change)
      sl->on_change(sl->arg, 1, NULL);
    hw_jt809_centre_kick(sl->centre);
    return 0;
  case HW_J9S_ALIVE:
    sl->answer_due = 0;
    return 0;
  case HW_J9S_NOTE:
    hw_info(HW_J9S_LOG, sl->tid, "platform %s says on the slave link its main link is broken "
            "(0x1007, code %u)", sl->platform, code);
    return 0;
  case HW_J9S_IGNORE:
    hw_debug(HW_J9S_LOG, sl->tid, "platform %s slave link: message dropped (up data belongs on "
             "the main link)", sl->platform);
    return 0;
  case HW_J9S_END:
  default:
    sl->why = why ? why : "protocol error";
    return -EPROTO;
  }
}

void hw_jt809_slave_feed(hw_jt809_slave *sl, const uint8_t *data, size_t len) {
  if (sl->state != HW_J9S_LOGIN && sl->state != HW_J9S_LIVE)
    return;
  sl->why = NULL;
  int rc = hw_jt809_deframer_feed(&sl->df, data, len, hw_j9s_on_frame, sl);
  if (rc) {
    hw_j9s_drop(sl, sl->why ? sl->why : "protocol error");
    return;
  }
  if (sl->state == HW_J9S_LIVE || sl->state == HW_J9S_LOGIN)
    hw_j9s_schedule(sl);
}

static void hw_j9s_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  hw_jt809_slave *sl = st->data;
  if (n < 0) {
    hw_j9s_drop(sl, n == UV_EOF ? "peer closed" : "read error");
    return;
  }
  if (n > 0)
    hw_jt809_slave_feed(sl, (const uint8_t *)buf->base, (size_t)n);
}

/* req: owned, one per attempt; the callback always runs (UV_ECANCELED when the handle was
 * closed first), before the handle's close callback, so sl is still there. */
static void hw_j9s_on_connect(uv_connect_t *req, int status) {
  hw_jt809_slave *sl = req->data;
  uv_stream_t *handle = req->handle;
  free(req);
  if (status == UV_ECANCELED || handle != (uv_stream_t *)sl->tcp ||
      sl->state != HW_J9S_CONNECTING)
    return; /* dropped or stopped meanwhile: the handle is closing */
  if (status) {
    hw_j9s_drop(sl, status == UV_ECONNREFUSED ? "connection refused" : "cannot connect");
    return;
  }
  const hw_jt809_centre_config *cfg = hw_jt809_centre_cfg(sl->centre);
  uint8_t body[4];
  size_t bl;
  int rc = hw_jt809_deframer_init(&sl->df, sl->buf, sizeof sl->buf);
  if (!rc)
    rc = hw_jt809_encode_u32(sl->verify, body, sizeof body, &bl);
  if (!rc)
    rc = uv_read_start((uv_stream_t *)sl->tcp, hw_j9s_alloc, hw_j9s_on_read);
  if (!rc) {
    sl->state = HW_J9S_LOGIN;
    rc = hw_j9s_write(sl, HW_JT809_DOWN_CONNECT_REQ, body, bl, NULL);
  }
  if (rc) {
    hw_j9s_drop(sl, "cannot send 0x9001");
    return;
  }
  sl->answer_due = uv_now(sl->loop) + cfg->slave_timeout_ms;
  hw_j9s_schedule(sl);
}

static void hw_j9s_connect(hw_jt809_slave *sl) {
  const hw_jt809_centre_config *cfg = hw_jt809_centre_cfg(sl->centre);
  uv_tcp_t *t = malloc(sizeof *t);
  uv_connect_t *req = malloc(sizeof *req);
  if (!t || !req) {
    free(t);
    free(req);
    hw_j9s_drop(sl, "out of memory");
    return;
  }
  uv_tcp_init(sl->loop, t);
  t->data = sl;
  sl->handles++;
  sl->tcp = t;
  req->data = sl;
  sl->state = HW_J9S_CONNECTING;
  int rc = uv_tcp_connect(req, t, (const struct sockaddr *)&sl->sa, hw_j9s_on_connect);
  if (rc) {
    free(req);
    hw_j9s_drop(sl, "cannot connect");
    return;
  }
  uv_tcp_nodelay(t, 1);
  sl->answer_due = uv_now(sl->loop) + cfg->slave_timeout_ms;
  hw_j9s_schedule(sl);
}

static void hw_j9s_on_timer(uv_timer_t *t) {
  hw_jt809_slave *sl = t->data;
  uint64_t now = uv_now(sl->loop);
  const hw_jt809_centre_config *cfg = hw_jt809_centre_cfg(sl->centre);
  if (sl->state == HW_J9S_WAIT) {
    uint32_t next = sl->backoff_ms * 2;
    hw_j9s_connect(sl);
    /* The delay after this attempt, should it fail. */
    sl->backoff_ms = next > cfg->slave_backoff_max_ms ? cfg->slave_backoff_max_ms : next;
    return;
  }
  if (sl->answer_due && now >= sl->answer_due) {
    hw_j9s_drop(sl, sl->state == HW_J9S_CONNECTING ? "connect timed out"
                    : sl->state == HW_J9S_LOGIN    ? "no 0x9002 in time"
                                                   : "no 0x9006 in time");
    return;
  }
  if (sl->state == HW_J9S_LIVE && now >= sl->next_beat) {
    int rc = hw_j9s_write(sl, HW_JT809_DOWN_LINKTEST_REQ, NULL, 0, NULL);
    if (rc) {
      hw_j9s_drop(sl, rc == -ENOBUFS ? "peer does not read" : "cannot send 0x9005");
      return;
    }
    sl->next_beat = now + cfg->slave_heartbeat_ms;
    if (!sl->answer_due)
      sl->answer_due = now + cfg->slave_timeout_ms;
  }
  hw_j9s_schedule(sl);
}

/* ---- API --------------------------------------------------------------------------------- */

int hw_jt809_slave_start(hw_jt809_slave **out, uv_loop_t *loop, hw_jt809_centre *centre,
                         const hw_jt809_slave_params *p) {
  const char *why;
  struct sockaddr_storage sa;
  char tid[24];
  snprintf(tid, sizeof tid, "jt809p:%u", p->center);
  if (hw_jt809_slave_addr(p->ip, p->port, p->local_ok, &sa, &why)) {
    hw_warn(HW_J9S_LOG, tid, "platform %s: no slave link to '%.40s' port %u: %s", p->platform,
            p->ip, p->port, why);
    return -EINVAL;
  }
  hw_jt809_slave *sl = calloc(1, sizeof *sl);
  if (!sl)
    return -ENOMEM;
  sl->loop = loop;
  sl->centre = centre;
  sl->sa = sa;
  if (sa.ss_family == AF_INET6)
    snprintf(sl->addr, sizeof sl->addr, "[%s]:%u", p->ip, p->port);
  else
    snprintf(sl->addr, sizeof sl->addr, "%s:%u", p->ip, p->port);
  snprintf(sl->platform, sizeof sl->platform, "%s", p->platform);
  memcpy(sl->tid, tid, sizeof tid);
  sl->center = p->center;
  sl->verify = p->verify;
  sl->is_2019 = (uint8_t)p->is_2019;
  sl->on_change = p->on_change;
  sl->arg = p->arg;
  sl->backoff_ms = hw_jt809_centre_cfg(centre)->slave_backoff_min_ms;
  uv_timer_init(loop, &sl->timer);
  sl->timer.data = sl;
  sl->handles = 1;
  hw_j9s_connect(sl);
  *out = sl;
  return 0;
}

int hw_jt809_slave_up(const hw_jt809_slave *sl) { return sl && sl->state == HW_J9S_LIVE; }

int hw_jt809_slave_send(hw_jt809_slave *sl, uint16_t msg_id, const uint8_t *body, size_t len,
                        uint32_t *sn) {
  if (sl->state != HW_J9S_LIVE)
    return -ENOTCONN;
  int rc = hw_j9s_write(sl, msg_id, body, len, sn);
  if (rc == -ENOBUFS)
    hw_j9s_drop(sl, "peer does not read");
  return rc;
}

void hw_jt809_slave_stop(hw_jt809_slave *sl, int logout, const char *why) {
  if (!sl)
    return;
  if (logout && sl->state == HW_J9S_LIVE) {
    uint8_t body[4];
    size_t bl;
    if (hw_jt809_encode_u32(sl->verify, body, sizeof body, &bl) == 0 &&
        hw_j9s_write(sl, HW_JT809_DOWN_DISCONNECT_REQ, body, bl, NULL) == 0)
      hw_debug(HW_J9S_LOG, sl->tid, "platform %s slave link: 0x9003 sent", sl->platform);
  }
  sl->on_change = NULL;
  int was_up = sl->state == HW_J9S_LIVE;
  if (was_up)
    hw_j9s_drop(sl, why); /* records the down time; schedules a retry, cancelled below */
  sl->state = HW_J9S_STOPPED;
  if (sl->tcp) {
    uv_read_stop((uv_stream_t *)sl->tcp);
    /* uv_close after the queued 0x9003: libuv cancels pending writes on close, so this is best
     * effort, as a logout on a link about to close must be. */
    uv_close((uv_handle_t *)sl->tcp, hw_j9s_tcp_closed);
    sl->tcp = NULL;
  }
  uv_timer_stop(&sl->timer);
  uv_close((uv_handle_t *)&sl->timer, hw_j9s_timer_closed);
}
