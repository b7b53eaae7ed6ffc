/* `haulwatch-sim --protocol jt809`: subordinate platforms forwarding many vehicles each over one
 * JT/T 809 main link (notes: docs/jt809.md), as an enterprise platform does:
 *
 *   - login 0x1001 with the platform's user id, password and access code (link i of --links
 *     uses access code --center-id + i, same user id and password), answered 0x1002;
 *   - keep-alive 0x1005 every HW_SJ9_HEARTBEAT_MS;
 *   - positions 0x1200 / 0x1202, one per vehicle every --interval-ms (vehicles of a link are
 *     spread over the interval), in the 2011 or 2019 edition, encrypted when keys are given;
 *   - a broken link (connect failure, peer close, --break-every) keeps what it could not send,
 *     per vehicle (at most HW_SJ9_HELD_MAX fixes each, older ones are dropped and counted), and
 *     after the next login sends it first as 0x1203 back-fill, up to 5 positions a message;
 *   - at the end, logout 0x1003, answered 0x1004.
 * JT/T 809 acknowledges no position: "sent" means written to the socket (libuv write done).
 *
 * With --slave-listen the platforms offer a slave link there (one listener for all: the access
 * code in each header tells whose link a connection is): 0x9001 is answered 0x9002 (0 when the
 * verify code is the one our 0x1002 gave, else 1), 0x9005 with 0x9006, 0x9003 with 0x9004.
 * Inspections 0x9300/0x9301 and supervisions 0x9400/0x9401, on the slave link or the main link,
 * are answered on the main link (0x1300/0x1301, 0x1400/0x1401 result 1) after
 * --answer-delay-ms.
 *
 * Vehicles: plates from a registry CSV (--plates FILE: its plate and plate_colour columns, in
 * file order), then from --plate-pattern (a printf pattern with one %u, the vehicle's number). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "base/geo.h"
#include "base/log.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_vehicle.h"
#include "load/sim.h"

#define HW_SJ9_HEARTBEAT_MS 20000
#define HW_SJ9_HELD_MAX 4096      /* back-fill kept per vehicle while its link is down */
#define HW_SJ9_BACKFILL_PER_MSG 5 /* the standard's 0x1203 count: 1..5 */
#define HW_SJ9_TICK_MS 50
#define HW_SJ9_WRITE_HIGH (1u << 20) /* flat out: stop producing above 1 MiB queued */
#define HW_SJ9_RECONNECT_MS 1000
#define HW_SJ9_FRAME_BUF 4096

typedef struct hw_sj9_vehicle {
  char plate[HW_JT809_PLATE_MAX + 1];
  uint8_t colour;
  hw_sim_truck truck;
  hw_fix *held; /* owned: fixes not sent, oldest first */
  uint32_t nheld, held_cap;
} hw_sj9_vehicle;

typedef enum { HW_SJ9_DOWN = 0, HW_SJ9_CONNECTING, HW_SJ9_LOGIN, HW_SJ9_UP, HW_SJ9_BYE } hw_sj9_phase;

struct hw_sj9_run;

typedef struct hw_sj9_link {
  struct hw_sj9_run *run;
  uint32_t index, center;
  hw_sj9_vehicle *veh; /* borrowed: the run's array */
  uint32_t nveh;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_timer_t timer; /* pacing tick, heartbeats, reconnect */
  hw_sj9_phase phase;
  int tcp_open, closing_tcp, ever_up, done, handles_closed;
  uint32_t sn;
  uint32_t next_rr;    /* next vehicle of the round robin */
  uint64_t issued;     /* positions generated on this link */
  uint64_t queued;     /* positions in its writes not yet completed */
  uint64_t next_hb_ms, reconnect_at_ms, break_at_ms, up_at_ms;
  hw_jt809_deframer df;
  uint8_t dfbuf[HW_SJ9_FRAME_BUF];
  uint32_t verify; /* of the last 0x1002: the slave link's 0x9001 must carry it */
} hw_sj9_link;

typedef struct hw_sj9_run {
  uv_loop_t loop;
  uv_signal_t sigint;
  struct sockaddr_storage addr;
  /* settings */
  uint32_t nlinks, nveh, interval_ms, step_ms, user_id, center, break_every_ms, timeout_s;
  uint64_t fixes, duration_ms;
  int64_t start_ms;
  int is_2019, encrypt, quiet;
  hw_jt809_cipher cipher;
  char password[9];
  /* state */
  hw_sj9_vehicle *veh;
  hw_sj9_link *links;
  uint64_t t0;
  int stopping; /* no more positions: flush, log out */
  int interrupted, timed_out, refused;
  /* results */
  uint64_t generated, sent, backfilled, dropped, reconnects, heartbeats, logins, write_errors;
  uint64_t queued; /* positions in writes not yet completed */
  /* slave links (--slave-listen) and answers */
  uv_tcp_t slave_srv;
  int slave_on, slave_srv_open;
  char slave_ip[33];
  uint16_t slave_port;
  uint32_t answer_delay_ms;
  struct hw_sj9_sconn *sconns; /* owned: accepted slave-link connections */
  uint64_t slave_logins, slave_refused, requests, answers;
} hw_sj9_run;

typedef struct hw_sj9_write {
  uv_write_t req;
  hw_sj9_link *l;
  uint32_t positions;
  uint8_t data[];
} hw_sj9_write;

static void hw_sj9_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void hw_sj9_put32(uint8_t *p, uint32_t v) {
  hw_sj9_put16(p, (uint16_t)(v >> 16));
  hw_sj9_put16(p + 2, (uint16_t)v);
}

static void hw_sj9_on_write(uv_write_t *req, int status) {
  hw_sj9_write *w = (hw_sj9_write *)req;
  hw_sj9_run *r = w->l->run;
  r->queued -= w->positions;
  w->l->queued -= w->positions;
  if (status)
    r->write_errors += w->positions; /* the link broke under them: they are lost, as in life */
  else
    r->sent += w->positions;
  free(w);
}

/* Builds msg_id with body and writes it; positions: how many the frame carries. */
static int hw_sj9_send(hw_sj9_link *l, uint16_t msg_id, const uint8_t *body, size_t bl,
                       uint32_t positions) {
  hw_sj9_run *r = l->run;
  size_t cap = hw_jt809_wire_max(bl), n;
  hw_sj9_write *w = malloc(sizeof *w + cap);
  if (!w)
    return -ENOMEM;
  hw_jt809_header h;
  hw_jt809_header_init(&h, l->sn++, msg_id, l->center, r->is_2019, (uint64_t)time(NULL));
  /* The login goes plain (the centre learns who we are from it); data encrypted when asked. */
  h.encrypted = r->encrypt && msg_id != HW_JT809_UP_CONNECT_REQ;
  h.key = h.encrypted ? (uint32_t)hw_sim_rand(&(uint64_t){r->t0 + h.sn}) : 0;
  int rc = hw_jt809_build(w->data, cap, &n, &h, h.encrypted ? &r->cipher : NULL, body, bl);
  if (rc) {
    free(w);
    return rc;
  }
  w->l = l;
  w->positions = positions;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  if ((rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, hw_sj9_on_write))) {
    free(w);
    return rc;
  }
  r->queued += positions;
  l->queued += positions;
  return 0;
}

/* A JT/T 808-2019 0x0200 body of f (2019 records carry one): 28 bytes and the odometer item. */
static size_t hw_sj9_loc_0200(uint8_t *p, const hw_fix *f) {
  uint32_t status = f->status & ~0xCu;
  if (f->lat_e6 < 0)
    status |= 0x4;
  if (f->lon_e6 < 0)
    status |= 0x8;
  hw_sj9_put32(p, f->alarm);
  hw_sj9_put32(p + 4, status);
  hw_sj9_put32(p + 8, (uint32_t)(f->lat_e6 < 0 ? -(int64_t)f->lat_e6 : f->lat_e6));
  hw_sj9_put32(p + 12, (uint32_t)(f->lon_e6 < 0 ? -(int64_t)f->lon_e6 : f->lon_e6));
  hw_sj9_put16(p + 16, (uint16_t)(f->alt_m < 0 ? 0 : f->alt_m > 65535 ? 65535 : f->alt_m));
  hw_sj9_put16(p + 18, (uint16_t)(f->speed_dkmh > 65535 ? 65535 : f->speed_dkmh));
  hw_sj9_put16(p + 20, f->heading);
  time_t t = (time_t)(f->ts_ms / 1000) + HW_CST_OFFSET_S;
  struct tm tm;
  gmtime_r(&t, &tm);
  int v[6] = {tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
  for (int i = 0; i < 6; i++)
    p[22 + i] = (uint8_t)((v[i] / 10) << 4 | (v[i] % 10));
  p[28] = 0x01;
  p[29] = 4;
  hw_sj9_put32(p + 30, f->odometer_hm);
  return 34;
}

/* The GNSS record of f in the run's edition; loc: room for the 2019 inner body. */
static void hw_sj9_gnss(const hw_sj9_run *r, const hw_fix *f, hw_jt809_gnss *g, uint8_t *loc) {
  memset(g, 0, sizeof *g);
  g->is_2019 = (uint8_t)r->is_2019;
  if (r->is_2019) {
    g->loc = loc;
    g->loc_len = (uint32_t)hw_sj9_loc_0200(loc, f);
    return;
  }
  time_t t = (time_t)(f->ts_ms / 1000) + HW_CST_OFFSET_S;
  struct tm tm;
  gmtime_r(&t, &tm);
  g->day = (uint8_t)tm.tm_mday, g->month = (uint8_t)(tm.tm_mon + 1);
  g->year = (uint16_t)(tm.tm_year + 1900);
  g->hour = (uint8_t)tm.tm_hour, g->minute = (uint8_t)tm.tm_min, g->second = (uint8_t)tm.tm_sec;
  g->lat = (uint32_t)(f->lat_e6 < 0 ? -(int64_t)f->lat_e6 : f->lat_e6);
  g->lon = (uint32_t)(f->lon_e6 < 0 ? -(int64_t)f->lon_e6 : f->lon_e6);
  g->vec1 = g->vec2 = (uint16_t)(f->speed_dkmh / 10);
  g->vec3 = f->odometer_hm / 10;
  g->direction = f->heading;
  g->altitude = (uint16_t)(f->alt_m < 0 ? 0 : f->alt_m > 65535 ? 65535 : f->alt_m);
  g->state = (f->status & ~0xCu) | (f->lat_e6 < 0 ? 0x4u : 0) | (f->lon_e6 < 0 ? 0x8u : 0);
  g->alarm = f->alarm;
}

/* One 0x1200 of vehicle v: 0x1202 for one fix, 0x1203 for a back-fill of n (1..5). */
static int hw_sj9_send_positions(hw_sj9_link *l, hw_sj9_vehicle *v, const hw_fix *f, size_t n,
                                 int backfill) {
  uint8_t data[HW_SJ9_BACKFILL_PER_MSG * 128], body[sizeof data + 64], loc[HW_SJ9_BACKFILL_PER_MSG][40];
  hw_jt809_gnss g[HW_SJ9_BACKFILL_PER_MSG];
  size_t dl, bl;
  int rc;
  for (size_t i = 0; i < n; i++)
    hw_sj9_gnss(l->run, &f[i], &g[i], loc[i]);
  rc = backfill ? hw_jt809_encode_batch(g, n, data, sizeof data, &dl)
                : hw_jt809_encode_gnss(&g[0], data, sizeof data, &dl);
  if (rc || (rc = hw_jt809_encode_sub(1, v->plate, v->colour,
                                      backfill ? HW_JT809_EXG_HISTORY_LOCATION
                                               : HW_JT809_EXG_REAL_LOCATION,
                                      data, dl, body, sizeof body, &bl)))
    return rc;
  return hw_sj9_send(l, HW_JT809_UP_EXG_MSG, body, bl, (uint32_t)n);
}

static void hw_sj9_hold(hw_sj9_run *r, hw_sj9_vehicle *v, const hw_fix *f) {
  if (v->nheld == HW_SJ9_HELD_MAX) { /* the oldest goes: a platform's buffer is finite too */
    memmove(v->held, v->held + 1, (HW_SJ9_HELD_MAX - 1) * sizeof *v->held);
    v->nheld--;
    r->dropped++;
  }
  if (v->nheld == v->held_cap) {
    uint32_t cap = v->held_cap ? v->held_cap * 2 : 16;
    hw_fix *h = realloc(v->held, cap * sizeof *h);
    if (!h) {
      r->dropped++;
      return;
    }
    v->held = h;
    v->held_cap = cap;
  }
  v->held[v->nheld++] = *f;
}

static void hw_sj9_link_down(hw_sj9_link *l, const char *why);

/* Sends what was held, as back-fill, once the link is up again. */
static void hw_sj9_flush_held(hw_sj9_link *l) {
  hw_sj9_run *r = l->run;
  for (uint32_t i = 0; i < l->nveh && l->phase == HW_SJ9_UP; i++) {
    hw_sj9_vehicle *v = &l->veh[i];
    uint32_t k = 0;
    while (k < v->nheld) {
      uint32_t n = v->nheld - k < HW_SJ9_BACKFILL_PER_MSG ? v->nheld - k : HW_SJ9_BACKFILL_PER_MSG;
      if (hw_sj9_send_positions(l, v, v->held + k, n, 1)) {
        hw_sj9_link_down(l, "cannot write back-fill");
        break;
      }
      r->backfilled += n;
      k += n;
    }
    if (k) { /* held is NULL while nothing was ever held: memmove(NULL, ..., 0) is undefined */
      memmove(v->held, v->held + k, (v->nheld - k) * sizeof *v->held);
      v->nheld -= k;
    }
  }
}

static uint64_t hw_sj9_target(const hw_sj9_run *r, const hw_sj9_link *l, uint64_t now) {
  uint64_t total = r->fixes ? r->fixes * l->nveh : UINT64_MAX;
  if (r->stopping)
    return l->issued;
  if (!r->interval_ms)
    return total;
  /* Paced: nveh positions per interval, spread evenly. */
  uint64_t due = (now - r->t0) * l->nveh / r->interval_ms + 1;
  return due < total ? due : total;
}

/* Generates the positions due now: sent at once when the link is up, else held. */
static void hw_sj9_produce(hw_sj9_link *l, uint64_t now) {
  hw_sj9_run *r = l->run;
  uint64_t target = hw_sj9_target(r, l, now);
  while (l->issued < target) {
    if (l->phase == HW_SJ9_UP && !r->interval_ms &&
        uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) > HW_SJ9_WRITE_HIGH)
      break; /* flat out: let the socket drain */
    if (l->phase != HW_SJ9_UP && !r->interval_ms)
      break; /* flat out, nothing is due by the clock: produce while the link is up */
    hw_sj9_vehicle *v = &l->veh[l->next_rr];
    l->next_rr = (l->next_rr + 1) % l->nveh;
    hw_fix f;
    hw_sim_truck_next(&v->truck, &f);
    l->issued++;
    r->generated++;
    if (l->phase == HW_SJ9_UP && v->nheld == 0) {
      if (hw_sj9_send_positions(l, v, &f, 1, 0)) {
        hw_sj9_hold(r, v, &f);
        hw_sj9_link_down(l, "cannot write");
      }
    } else {
      hw_sj9_hold(r, v, &f);
    }
  }
}

static void hw_sj9_on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  static char b[65536];
  (void)h;
  (void)sz;
  *buf = uv_buf_init(b, sizeof b);
}

static void hw_sj9_on_request(hw_sj9_run *r, hw_sj9_link *l, const hw_jt809_header *h,
                              const uint8_t *body, size_t bl);

static int hw_sj9_on_frame(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  hw_sj9_link *l = arg;
  hw_sj9_run *r = l->run;
  hw_jt809_header h;
  const uint8_t *body;
  size_t bl;
  if (ev != HW_JT809_FRAME ||
      hw_jt809_open(data, len, r->is_2019, r->encrypt ? &r->cipher : NULL, &h, &body, &bl))
    return -EPROTO;
  if (h.msg_id == HW_JT809_UP_CONNECT_RSP && l->phase == HW_SJ9_LOGIN) {
    uint8_t result;
    uint32_t verify;
    if (hw_jt809_parse_login_rsp(body, bl, &result, &verify))
      return -EPROTO;
    if (result == HW_JT809_LOGIN_BUSY)
      return -EAGAIN; /* reconnect later */
    if (result != HW_JT809_LOGIN_OK) {
      hw_error("sim", NULL, "link %u (access code %u): login refused, result %u", l->index,
               l->center, result);
      r->refused++;
      l->done = 1;
      return -EACCES;
    }
    l->phase = HW_SJ9_UP;
    l->verify = verify;
    l->ever_up = 1;
    r->logins++;
    l->up_at_ms = uv_now(&r->loop);
    l->break_at_ms = r->break_every_ms ? l->up_at_ms + r->break_every_ms : 0;
    hw_debug("sim", NULL, "link %u (access code %u) logged in", l->index, l->center);
    hw_sj9_flush_held(l);
  } else if (h.msg_id == HW_JT809_UP_DISCONNECT_RSP && l->phase == HW_SJ9_BYE) {
    l->done = 1;
    return -ECONNRESET;
  } else if (h.msg_id == HW_JT809_DOWN_PLATFORM_MSG || h.msg_id == HW_JT809_DOWN_WARN_MSG) {
    hw_sj9_on_request(r, l, &h, body, bl); /* the centre's slave link is down: main link */
  } else if (h.msg_id == HW_JT809_DOWN_DISCONNECT_INFORM) {
    hw_debug("sim", NULL, "link %u: the centre says our slave link broke (0x9007)", l->index);
  }
  return 0; /* 0x1006 and anything else: nothing to do */
}

static void hw_sj9_on_closed(uv_handle_t *h) {
  hw_sj9_link *l = h->data;
  l->tcp_open = 0;
  l->closing_tcp = 0;
}

static void hw_sj9_link_down(hw_sj9_link *l, const char *why) {
  hw_sj9_run *r = l->run;
  if (l->phase == HW_SJ9_DOWN)
    return;
  if (l->phase == HW_SJ9_UP)
    hw_info("sim", NULL, "link %u (access code %u) down: %s", l->index, l->center, why);
  l->phase = HW_SJ9_DOWN;
  if (l->tcp_open && !l->closing_tcp) {
    l->closing_tcp = 1;
    uv_close((uv_handle_t *)&l->tcp, hw_sj9_on_closed);
  }
  if (!l->done) {
    r->reconnects++;
    l->reconnect_at_ms = uv_now(&r->loop) + HW_SJ9_RECONNECT_MS;
  }
}

static void hw_sj9_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  hw_sj9_link *l = s->data;
  if (n < 0) {
    if (l->phase == HW_SJ9_BYE)
      l->done = 1;
    hw_sj9_link_down(l, n == UV_EOF ? "closed by the centre" : uv_strerror((int)n));
    return;
  }
  int rc = hw_jt809_deframer_feed(&l->df, (const uint8_t *)buf->base, (size_t)n, hw_sj9_on_frame, l);
  if (rc)
    hw_sj9_link_down(l, rc == -ECONNRESET ? "logged out" : rc == -EACCES ? "login refused"
                        : rc == -EAGAIN                   ? "centre busy"
                                                          : "broken frame from the centre");
}

static void hw_sj9_on_connect(uv_connect_t *req, int status) {
  hw_sj9_link *l = req->data;
  hw_sj9_run *r = l->run;
  if (status) {
    hw_debug("sim", NULL, "link %u: connect failed: %s", l->index, uv_strerror(status));
    hw_sj9_link_down(l, uv_strerror(status));
    return;
  }
  hw_jt809_login m;
  memset(&m, 0, sizeof m);
  m.user_id = r->user_id;
  m.password_len = (uint8_t)strlen(r->password);
  memcpy(m.password, r->password, m.password_len);
  m.center_id = l->center;
  snprintf(m.down_ip, sizeof m.down_ip, "%s", r->slave_on ? r->slave_ip : "127.0.0.1");
  m.down_port = r->slave_on ? r->slave_port : 0; /* 0: no slave link offered */
  uint8_t body[128];
  size_t bl;
  if (hw_jt809_deframer_init(&l->df, l->dfbuf, sizeof l->dfbuf) ||
      hw_jt809_encode_login(&m, r->is_2019, body, sizeof body, &bl) ||
      uv_read_start((uv_stream_t *)&l->tcp, hw_sj9_on_alloc, hw_sj9_on_read) ||
      hw_sj9_send(l, HW_JT809_UP_CONNECT_REQ, body, bl, 0)) {
    hw_sj9_link_down(l, "cannot send the login");
    return;
  }
  l->phase = HW_SJ9_LOGIN;
}

static void hw_sj9_connect(hw_sj9_link *l) {
  hw_sj9_run *r = l->run;
  if (l->tcp_open)
    return; /* the previous socket is still closing */
  if (uv_tcp_init(&r->loop, &l->tcp))
    return;
  l->tcp.data = l;
  l->tcp_open = 1;
  uv_tcp_nodelay(&l->tcp, 1);
  l->creq.data = l;
  l->phase = HW_SJ9_CONNECTING;
  if (uv_tcp_connect(&l->creq, &l->tcp, (const struct sockaddr *)&r->addr, hw_sj9_on_connect)) {
    l->phase = HW_SJ9_CONNECTING; /* link_down acts only on a live phase */
    hw_sj9_link_down(l, "connect refused locally");
  }
}

static int hw_sj9_link_flushed(const hw_sj9_link *l) {
  for (uint32_t i = 0; i < l->nveh; i++)
    if (l->veh[i].nheld)
      return 0;
  return 1;
}

static void hw_sj9_tick(uv_timer_t *t) {
  hw_sj9_link *l = t->data;
  hw_sj9_run *r = l->run;
  uint64_t now = uv_now(&r->loop);
  if (l->done) {
    if (!l->tcp_open && !l->handles_closed) {
      l->handles_closed = 1;
      uv_close((uv_handle_t *)&l->timer, NULL);
    }
    return;
  }
  if (l->phase == HW_SJ9_DOWN && now >= l->reconnect_at_ms && !r->interrupted)
    hw_sj9_connect(l);
  /* Dropped between writes (before this tick's), so that what was written is not cut off
   * with the socket. */
  if (l->phase == HW_SJ9_UP && l->break_at_ms && now >= l->break_at_ms && !r->stopping &&
      l->queued == 0)
    hw_sj9_link_down(l, "--break-every");
  hw_sj9_produce(l, now);
  if (l->phase == HW_SJ9_UP) {
    if (now >= l->next_hb_ms) {
      l->next_hb_ms = now + HW_SJ9_HEARTBEAT_MS;
      if (hw_sj9_send(l, HW_JT809_UP_LINKTEST_REQ, NULL, 0, 0) == 0)
        r->heartbeats++;
    }
    if (r->stopping && hw_sj9_link_flushed(l) && l->queued == 0) {
      uint8_t body[16];
      size_t bl;
      hw_jt809_login m;
      memset(&m, 0, sizeof m);
      m.user_id = r->user_id;
      m.password_len = (uint8_t)strlen(r->password);
      memcpy(m.password, r->password, m.password_len);
      if (hw_jt809_encode_logout(&m, body, sizeof body, &bl) == 0 &&
          hw_sj9_send(l, HW_JT809_UP_DISCONNECT_REQ, body, bl, 0) == 0)
        l->phase = HW_SJ9_BYE;
      else
        l->done = 1, hw_sj9_link_down(l, "cannot log out");
      l->reconnect_at_ms = now + 3000; /* the answer's deadline */
    }
  } else if (l->phase == HW_SJ9_BYE && now >= l->reconnect_at_ms) {
    l->done = 1;
    hw_sj9_link_down(l, "no 0x1004");
  } else if (r->interrupted && l->phase == HW_SJ9_DOWN) {
    l->done = 1;
  }
}

static void hw_sj9_on_sigint(uv_signal_t *s, int sig) {
  hw_sj9_run *r = s->data;
  (void)sig;
  r->interrupted = 1;
  r->stopping = 1;
}

/* ---- slave links and answers ---- */

typedef struct hw_sj9_sconn {
  uv_tcp_t tcp;
  hw_sj9_run *r;
  struct hw_sj9_sconn *next;
  int closing;
  uint32_t sn;
  hw_jt809_deframer df;
  uint8_t buf[HW_SJ9_FRAME_BUF];
} hw_sj9_sconn;

typedef struct hw_sj9_reply {
  uv_timer_t timer;
  hw_sj9_run *r;
  uint32_t link;
  uint16_t msg_id;
  size_t len;
  uint8_t body[];
} hw_sj9_reply;

static void hw_sj9_free_handle(uv_handle_t *h) { free(h->data); }

static void hw_sj9_reply_fire(uv_timer_t *t) {
  hw_sj9_reply *rp = t->data;
  hw_sj9_link *l = &rp->r->links[rp->link];
  if (l->phase == HW_SJ9_UP && hw_sj9_send(l, rp->msg_id, rp->body, rp->len, 0) == 0)
    rp->r->answers++;
  else
    hw_debug("sim", NULL, "link %u: answer 0x%04x not sent (link down)", rp->link, rp->msg_id);
  uv_close((uv_handle_t *)t, hw_sj9_free_handle);
}

/* Queues body (a whole 0x1300 / 0x1400 body) to go up on link l's main link after the delay. */
static void hw_sj9_reply_later(hw_sj9_run *r, hw_sj9_link *l, uint16_t msg_id,
                               const uint8_t *body, size_t len) {
  hw_sj9_reply *rp = malloc(sizeof *rp + len);
  if (!rp)
    return;
  rp->r = r;
  rp->link = l->index;
  rp->msg_id = msg_id;
  rp->len = len;
  memcpy(rp->body, body, len);
  uv_timer_init(&r->loop, &rp->timer);
  rp->timer.data = rp;
  uv_timer_start(&rp->timer, hw_sj9_reply_fire, r->answer_delay_ms, 0);
}

/* A 0x9300 or 0x9400 for link l (on either link): 0x9301 and 0x9401 are answered. */
static void hw_sj9_on_request(hw_sj9_run *r, hw_sj9_link *l, const hw_jt809_header *h,
                              const uint8_t *body, size_t bl) {
  hw_jt809_sub sub;
  uint8_t data[256], up[512];
  size_t dl, ul;
  if (hw_jt809_parse_sub(body, bl, hw_jt809_has_vehicle(h->msg_id, r->is_2019), &sub))
    return;
  r->requests++;
  if (h->msg_id == HW_JT809_DOWN_PLATFORM_MSG && sub.data_type == 0x9301) {
    hw_jt809_query q;
    if (hw_jt809_parse_query(sub.data, sub.data_len, 0x9301, r->is_2019, &q))
      return;
    hw_jt809_answer a;
    memset(&a, 0, sizeof a);
    a.object_type = q.object_type;
    snprintf(a.object_id, sizeof a.object_id, "%s", q.object_id);
    a.info_id = q.info_id;
    snprintf(a.responder, sizeof a.responder, "sim");
    snprintf(a.responder_tel, sizeof a.responder_tel, "0");
    a.src_data_type = 0x9301;
    a.src_sn = h->sn;
    a.info = (const uint8_t *)"on duty";
    a.info_len = 7;
    if (hw_jt809_encode_answer(&a, r->is_2019, data, sizeof data, &dl) ||
        hw_jt809_encode_sub(0, "", 0, 0x1301, data, dl, up, sizeof up, &ul))
      return;
    hw_sj9_reply_later(r, l, HW_JT809_UP_PLATFORM_MSG, up, ul);
  } else if (h->msg_id == HW_JT809_DOWN_WARN_MSG && sub.data_type == 0x9401) {
    hw_jt809_supervise sv;
    if (hw_jt809_parse_supervise(sub.data, sub.data_len, &sv) ||
        hw_jt809_encode_supervise_rsp(sv.supervision_id, 1 /* handled */, data, sizeof data,
                                      &dl) ||
        hw_jt809_encode_sub(sub.has_vehicle, sub.plate, sub.plate_colour, 0x1401, data, dl, up,
                            sizeof up, &ul))
      return;
    hw_sj9_reply_later(r, l, HW_JT809_UP_WARN_MSG, up, ul);
  }
}

static void hw_sj9_sconn_close(hw_sj9_sconn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  hw_sj9_sconn **p = &c->r->sconns;
  while (*p && *p != c)
    p = &(*p)->next;
  if (*p)
    *p = c->next;
  uv_close((uv_handle_t *)&c->tcp, hw_sj9_free_handle);
}

static void hw_sj9_swritten(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static int hw_sj9_ssend(hw_sj9_sconn *c, uint32_t center, uint16_t msg_id, const uint8_t *body,
                        size_t bl) {
  size_t cap = hw_jt809_wire_max(bl), n;
  uv_write_t *w = malloc(sizeof *w + cap);
  if (!w)
    return -ENOMEM;
  uint8_t *out = (uint8_t *)(w + 1);
  hw_jt809_header h;
  hw_jt809_header_init(&h, c->sn++, msg_id, center, c->r->is_2019, (uint64_t)time(NULL));
  int rc = hw_jt809_build(out, cap, &n, &h, NULL, body, bl);
  uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
  if (rc || (rc = uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, hw_sj9_swritten))) {
    free(w);
    return rc;
  }
  return 0;
}

static int hw_sj9_sframe(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  hw_sj9_sconn *c = arg;
  hw_sj9_run *r = c->r;
  hw_jt809_header h;
  const uint8_t *body;
  size_t bl;
  if (ev != HW_JT809_FRAME ||
      hw_jt809_open(data, len, r->is_2019, r->encrypt ? &r->cipher : NULL, &h, &body, &bl))
    return -EPROTO;
  hw_sj9_link *l = h.center_id - r->center < r->nlinks ? &r->links[h.center_id - r->center] : NULL;
  uint8_t out[8];
  size_t ol;
  switch (h.msg_id) {
  case HW_JT809_DOWN_CONNECT_REQ: {
    uint32_t v;
    int ok = l && l->phase == HW_SJ9_UP && !hw_jt809_parse_u32(body, bl, &v) && v == l->verify;
    ok ? r->slave_logins++ : r->slave_refused++;
    hw_debug("sim", NULL, "slave link of access code %u: 0x9001 %s", h.center_id,
             ok ? "accepted" : "refused (verify code)");
    if (hw_jt809_encode_u8(ok ? HW_JT809_SLAVE_OK : HW_JT809_SLAVE_BAD_VERIFY, out, sizeof out,
                           &ol))
      return -EPROTO;
    return hw_sj9_ssend(c, h.center_id, HW_JT809_DOWN_CONNECT_RSP, out, ol);
  }
  case HW_JT809_DOWN_LINKTEST_REQ:
    return hw_sj9_ssend(c, h.center_id, HW_JT809_DOWN_LINKTEST_RSP, NULL, 0);
  case HW_JT809_DOWN_DISCONNECT_REQ:
    (void)hw_sj9_ssend(c, h.center_id, HW_JT809_DOWN_DISCONNECT_RSP, NULL, 0);
    return -ECONNRESET;
  case HW_JT809_DOWN_PLATFORM_MSG:
  case HW_JT809_DOWN_WARN_MSG:
    if (l)
      hw_sj9_on_request(r, l, &h, body, bl);
    return 0;
  default:
    return 0;
  }
}

static void hw_sj9_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  hw_sj9_sconn *c = s->data;
  if (n < 0 || (n > 0 && hw_jt809_deframer_feed(&c->df, (const uint8_t *)buf->base, (size_t)n,
                                                hw_sj9_sframe, c)))
    hw_sj9_sconn_close(c);
}

static void hw_sj9_on_slave(uv_stream_t *srv, int status) {
  hw_sj9_run *r = srv->data;
  if (status)
    return;
  hw_sj9_sconn *c = calloc(1, sizeof *c);
  if (!c)
    return;
  c->r = r;
  uv_tcp_init(&r->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) ||
      hw_jt809_deframer_init(&c->df, c->buf, sizeof c->buf) ||
      uv_read_start((uv_stream_t *)&c->tcp, hw_sj9_on_alloc, hw_sj9_sread)) {
    uv_close((uv_handle_t *)&c->tcp, hw_sj9_free_handle);
    return;
  }
  c->next = r->sconns;
  r->sconns = c;
}

/* Listens on ip:port (port 0: any); the port taken goes into every 0x1001. */
static int hw_sj9_slave_listen(hw_sj9_run *r, const char *hostport) {
  char host[64];
  const char *colon = strrchr(hostport, ':');
  struct sockaddr_in a;
  if (!colon || (size_t)(colon - hostport) >= sizeof host || (size_t)(colon - hostport) > 32)
    return -EINVAL;
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = 0;
  int rc = uv_ip4_addr(host, atoi(colon + 1), &a);
  if (!rc)
    rc = uv_tcp_init(&r->loop, &r->slave_srv);
  if (rc)
    return rc;
  r->slave_srv.data = r;
  r->slave_srv_open = 1;
  int len = sizeof a;
  if ((rc = uv_tcp_bind(&r->slave_srv, (const struct sockaddr *)&a, 0)) ||
      (rc = uv_listen((uv_stream_t *)&r->slave_srv, 64, hw_sj9_on_slave)) ||
      (rc = uv_tcp_getsockname(&r->slave_srv, (struct sockaddr *)&a, &len)))
    return rc;
  snprintf(r->slave_ip, sizeof r->slave_ip, "%.32s", host);
  r->slave_port = ntohs(a.sin_port);
  r->slave_on = 1;
  return 0;
}

static void hw_sj9_slave_close_all(hw_sj9_run *r) {
  while (r->sconns)
    hw_sj9_sconn_close(r->sconns);
  if (r->slave_srv_open) {
    r->slave_srv_open = 0;
    uv_close((uv_handle_t *)&r->slave_srv, NULL);
  }
}

/* Stops producing at the end (all fixes issued, or the duration), or gives up at the timeout. */
static void hw_sj9_check_end(uv_timer_t *t) {
  hw_sj9_run *r = t->data;
  uint64_t now = uv_now(&r->loop), el = now - r->t0;
  int issued_all = 1, all_done = 1;
  for (uint32_t i = 0; i < r->nlinks; i++) {
    hw_sj9_link *l = &r->links[i];
    if (r->fixes && l->issued < r->fixes * l->nveh)
      issued_all = 0;
    if (!l->done || l->tcp_open)
      all_done = 0;
  }
  if (!r->stopping && ((r->fixes && issued_all) || (!r->fixes && el >= r->duration_ms)))
    r->stopping = 1;
  /* A stopping run has 10 s to flush and log out (--fixes: --timeout-s in all). */
  uint64_t limit = r->fixes ? (uint64_t)r->timeout_s * 1000 : r->duration_ms + 10000;
  if (!all_done && el >= limit && !r->timed_out) {
    r->timed_out = 1;
    r->stopping = 1;
    for (uint32_t i = 0; i < r->nlinks; i++) {
      r->links[i].done = 1;
      hw_sj9_link_down(&r->links[i], "timeout");
    }
  }
  if (!r->quiet && el / 5000 != (el - 200) / 5000)
    fprintf(stderr, "sim jt809: %.0f s, %u/%u links up, %llu generated, %llu sent, %llu back-filled\n",
            (double)el / 1000, (unsigned)r->logins, r->nlinks, (unsigned long long)r->generated,
            (unsigned long long)r->sent, (unsigned long long)r->backfilled);
  if (all_done) {
    uv_close((uv_handle_t *)t, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    hw_sj9_slave_close_all(r);
  }
}

/* ---- vehicles ---- */

static int hw_sj9_colour(const char *s) {
  static const char *names[] = {"", "blue", "yellow", "black", "white", "green"};
  if (*s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 3 && atoi(s) <= 255)
    return atoi(s);
  for (int i = 1; i < 6; i++)
    if (!strcasecmp(s, names[i]))
      return i;
  return !strcasecmp(s, "other") ? 9 : -1;
}

/* Plates and colours of the first vehicles from a registry CSV (haulwatch registry import's
 * format: a header naming plate and plate_colour; no quoted fields). Returns how many. */
static long hw_sj9_read_plates(const char *path, hw_sj9_vehicle *veh, uint32_t n) {
  FILE *f = fopen(path, "r");
  char line[2048];
  int cp = -1, cc = -1;
  long got = 0;
  if (!f) {
    hw_error("sim", NULL, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  while ((uint32_t)got < n && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    char *fields[32];
    int nf = 0;
    for (char *p = line, *c; nf < 32; p = c + 1) {
      fields[nf++] = p;
      if (!(c = strchr(p, ',')))
        break;
      *c = 0;
    }
    if (cp < 0) { /* the header */
      for (int i = 0; i < nf; i++) {
        if (!strcmp(fields[i], "plate"))
          cp = i;
        else if (!strcmp(fields[i], "plate_colour"))
          cc = i;
      }
      if (cp < 0 || cc < 0) {
        hw_error("sim", NULL, "%s: no plate and plate_colour columns", path);
        fclose(f);
        return -1;
      }
      continue;
    }
    if (cp >= nf || cc >= nf)
      continue;
    int colour = hw_sj9_colour(fields[cc]);
    if (colour < 0 || !*fields[cp] || strlen(fields[cp]) > HW_JT809_PLATE_MAX)
      continue;
    snprintf(veh[got].plate, sizeof veh[got].plate, "%s", fields[cp]);
    veh[got].colour = (uint8_t)colour;
    got++;
  }
  fclose(f);
  return got;
}

static const char hw_sj9_usage[] =
    "usage: haulwatch-sim --protocol jt809 --server HOST:PORT --trucks N --center-id C\n"
    "                     --user-id U --password P (--fixes N | --duration S) [options]\n"
    "\n"
    "Plays subordinate platforms, each forwarding its share of N vehicles over one JT/T 809 main\n"
    "link: login 0x1001, keep-alive 0x1005, positions 0x1202, back-fill 0x1203 of what it could\n"
    "not send while the link was down, logout 0x1003. JT/T 809 acknowledges no position: sent\n"
    "means written to the socket. Prints one summary line (key=value) on stdout.\n"
    "\n"
    "  --server HOST:PORT    the daemon's --jt809-listen (required)\n"
    "  --trucks N            vehicles in all (required), split evenly over the links\n"
    "  --links L             platforms, one main link each (default 1); link i logs in with\n"
    "                        access code C + i (register each: haulwatch platform add)\n"
    "  --center-id C         access code of the first link (required)\n"
    "  --user-id U           the platforms' user id (required)\n"
    "  --password P          their password, at most 8 bytes (or $HW_SIM_JT809_PASSWORD)\n"
    "  --version 2011|2019   edition (default 2019): header, login and position layouts\n"
    "  --m1 N --ia1 N --ic1 N  encrypt every message but the login with these keys\n"
    "  --plates FILE         plates and colours from a registry CSV (plate, plate_colour\n"
    "                        columns), in file order; vehicles beyond its rows use the pattern\n"
    "  --plate-pattern P     printf pattern with one %u, the vehicle number from 1\n"
    "                        (default 测J%05u, colour 2 yellow)\n"
    "  --fixes N             positions per vehicle; ends when all are sent, then logs out\n"
    "  --duration S          or: generate for S seconds, then flush and log out\n"
    "  --interval-ms MS      wall time between a vehicle's positions (default 10000); 0 = flat out\n"
    "  --step-ms MS          device time between a vehicle's positions (default: the interval,\n"
    "                        or 10000 flat out); a multiple of 1000\n"
    "  --start-time-ms T     device time of fix 0 (default: --fixes: now - fixes x step; else now)\n"
    "  --break-every S       drop each link S s after its login (back-fill follows the next login)\n"
    "  --timeout-s S         with --fixes: give up after S s, exit 1 (default 600)\n"
    "  --seed S              route seed (default: from the clock)\n"
    "  --slave-listen IP:PORT  offer a slave link there (port 0: any free one) and answer the\n"
    "                        centre's 0x9001, 0x9005, 0x9003 on it\n"
    "  --answer-delay-ms MS  answer inspections (0x9301) and supervisions (0x9401) after this\n"
    "                        (default 2000)\n"
    "  --quiet, --log-level L, --help\n"
    "\n"
    "Exit status: 0 when every link logged in and every position generated was sent (none\n"
    "dropped from a full back-fill buffer, none lost in a broken write), 1 otherwise, 2 on a\n"
    "usage error.\n";

/* One conversion, %u with an optional zero flag and width, and no other '%'. */
static int hw_sj9_pattern_ok(const char *p) {
  const char *c = strchr(p, '%');
  if (!c || strchr(c + 1, '%'))
    return 0;
  c += 1 + strspn(c + 1, "0123456789");
  return *c == 'u';
}

static int hw_sj9_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  if (!s || !*s || *s == '-')
    return -EINVAL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -EINVAL;
  *out = v;
  return 0;
}

int hw_sim_jt809_main(int argc, char **argv) {
  enum {
    O_SERVER = 256, O_TRUCKS, O_LINKS, O_CENTER, O_USER, O_PASSWORD, O_VERSION, O_M1, O_IA1, O_IC1,
    O_PLATES, O_PATTERN, O_FIXES, O_DURATION, O_INTERVAL, O_STEP, O_START, O_BREAK, O_TIMEOUT,
    O_SEED, O_QUIET, O_LOGLEVEL, O_HELP, O_PROTOCOL, O_SLAVE, O_ANSWER
  };
  static const struct option opts[] = {
      {"server", required_argument, NULL, O_SERVER}, {"trucks", required_argument, NULL, O_TRUCKS},
      {"links", required_argument, NULL, O_LINKS}, {"center-id", required_argument, NULL, O_CENTER},
      {"user-id", required_argument, NULL, O_USER}, {"password", required_argument, NULL, O_PASSWORD},
      {"version", required_argument, NULL, O_VERSION}, {"m1", required_argument, NULL, O_M1},
      {"ia1", required_argument, NULL, O_IA1}, {"ic1", required_argument, NULL, O_IC1},
      {"plates", required_argument, NULL, O_PLATES}, {"plate-pattern", required_argument, NULL, O_PATTERN},
      {"fixes", required_argument, NULL, O_FIXES}, {"duration", required_argument, NULL, O_DURATION},
      {"interval-ms", required_argument, NULL, O_INTERVAL}, {"step-ms", required_argument, NULL, O_STEP},
      {"start-time-ms", required_argument, NULL, O_START}, {"break-every", required_argument, NULL, O_BREAK},
      {"timeout-s", required_argument, NULL, O_TIMEOUT}, {"seed", required_argument, NULL, O_SEED},
      {"quiet", no_argument, NULL, O_QUIET}, {"log-level", required_argument, NULL, O_LOGLEVEL},
      {"help", no_argument, NULL, O_HELP}, {"protocol", required_argument, NULL, O_PROTOCOL},
      {"slave-listen", required_argument, NULL, O_SLAVE},
      {"answer-delay-ms", required_argument, NULL, O_ANSWER},
      {NULL, 0, NULL, 0},
  };
  static hw_sj9_run run;
  hw_sj9_run *r = &run;
  const char *server = NULL, *plates = NULL, *pattern = "测J%05u", *bad = NULL, *slave = NULL;
  uint64_t answer_delay = 2000;
  const char *password = getenv("HW_SIM_JT809_PASSWORD");
  uint64_t trucks = 0, links = 1, center = UINT64_MAX, user = UINT64_MAX, version = 2019;
  uint64_t m1 = 0, ia1 = 0, ic1 = 0, fixes = 0, duration = 0, interval = 10000, step = 0;
  uint64_t brk = 0, timeout = 600, seed = (uint64_t)time(NULL), v;
  int64_t start = 0;
  int has_start = 0, keys = 0, c, rc = 0;
  memset(r, 0, sizeof *r);
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case O_SERVER: server = optarg; break;
    case O_TRUCKS: rc = hw_sj9_u64(optarg, 1, 1000000, &trucks); break;
    case O_LINKS: rc = hw_sj9_u64(optarg, 1, 1000, &links); break;
    case O_CENTER: rc = hw_sj9_u64(optarg, 0, UINT32_MAX, &center); break;
    case O_USER: rc = hw_sj9_u64(optarg, 0, UINT32_MAX, &user); break;
    case O_PASSWORD: password = optarg; break;
    case O_VERSION: rc = hw_sj9_u64(optarg, 2011, 2019, &version);
      rc = rc || (version != 2011 && version != 2019) ? -EINVAL : 0; break;
    case O_M1: rc = hw_sj9_u64(optarg, 0, UINT32_MAX, &m1), keys |= 1; break;
    case O_IA1: rc = hw_sj9_u64(optarg, 0, UINT32_MAX, &ia1), keys |= 2; break;
    case O_IC1: rc = hw_sj9_u64(optarg, 0, UINT32_MAX, &ic1), keys |= 4; break;
    case O_PLATES: plates = optarg; break;
    case O_PATTERN: pattern = optarg; break;
    case O_FIXES: rc = hw_sj9_u64(optarg, 1, 100000000, &fixes); break;
    case O_DURATION: rc = hw_sj9_u64(optarg, 1, 86400 * 365, &duration); break;
    case O_INTERVAL: rc = hw_sj9_u64(optarg, 0, 86400000, &interval); break;
    case O_STEP: rc = hw_sj9_u64(optarg, 1000, 86400000, &step); break;
    case O_START: rc = hw_sj9_u64(optarg, 0, INT64_MAX, &v), start = (int64_t)v, has_start = 1; break;
    case O_BREAK: rc = hw_sj9_u64(optarg, 1, 86400, &brk); break;
    case O_TIMEOUT: rc = hw_sj9_u64(optarg, 1, 86400, &timeout); break;
    case O_SEED: rc = hw_sj9_u64(optarg, 0, UINT64_MAX, &seed); break;
    case O_QUIET: r->quiet = 1; break;
    case O_LOGLEVEL: rc = hw_log_set_level(optarg); break;
    case O_PROTOCOL: break; /* jt809: how we got here */
    case O_SLAVE: slave = optarg; break;
    case O_ANSWER: rc = hw_sj9_u64(optarg, 0, 3600000, &answer_delay); break;
    case O_HELP: fputs(hw_sj9_usage, stdout); return 0;
    default: rc = -EINVAL; break;
    }
    if (rc) {
      fprintf(stderr, "haulwatch-sim: bad value for --%s\n", opts[c - O_SERVER].name);
      return 2;
    }
  }
  if (!server || !trucks)
    bad = "--server and --trucks are required";
  else if (center == UINT64_MAX || user == UINT64_MAX || !password)
    bad = "--center-id, --user-id and --password are required";
  else if (strlen(password) > 8)
    bad = "--password is at most 8 bytes";
  else if (!fixes == !duration)
    bad = "give --fixes or --duration";
  else if (links > trucks)
    bad = "more --links than --trucks";
  else if (center + links - 1 > UINT32_MAX)
    bad = "access codes beyond 4294967295";
  else if (keys && keys != 7)
    bad = "--m1, --ia1 and --ic1 go together";
  else if ((step ? step : interval ? interval : 10000) % 1000)
    bad = "--step-ms must be a multiple of 1000 (JT/T 809 times are whole seconds)";
  else if (!hw_sj9_pattern_ok(pattern))
    bad = "--plate-pattern needs exactly one %u (a width like %05u is fine)";
  if (bad) {
    fprintf(stderr, "haulwatch-sim: %s\n%s", bad, hw_sj9_usage);
    return 2;
  }
  if (hw_sim_resolve(server, &r->addr) < 0)
    return 1;
  r->nlinks = (uint32_t)links;
  r->nveh = (uint32_t)trucks;
  r->interval_ms = (uint32_t)interval;
  r->step_ms = (uint32_t)(step ? step : interval ? interval : 10000);
  r->user_id = (uint32_t)user;
  r->center = (uint32_t)center;
  r->break_every_ms = (uint32_t)(brk * 1000);
  r->timeout_s = (uint32_t)timeout;
  r->answer_delay_ms = (uint32_t)answer_delay;
  r->fixes = fixes;
  r->duration_ms = duration * 1000;
  r->is_2019 = version == 2019;
  r->encrypt = keys == 7;
  r->cipher = (hw_jt809_cipher){(uint32_t)m1, (uint32_t)ia1, (uint32_t)ic1};
  snprintf(r->password, sizeof r->password, "%s", password);
  if (!has_start)
    start = hw_now_ms() / 1000 * 1000 - (int64_t)(fixes ? fixes * r->step_ms : 0);
  r->start_ms = start;

  r->veh = calloc(trucks, sizeof *r->veh);
  r->links = calloc(links, sizeof *r->links);
  if (!r->veh || !r->links) {
    rc = -ENOMEM;
    goto out;
  }
  long from_csv = plates ? hw_sj9_read_plates(plates, r->veh, r->nveh) : 0;
  if (from_csv < 0) {
    rc = -EINVAL;
    goto out;
  }
  for (uint32_t i = 0; i < r->nveh; i++) {
    if ((long)i >= from_csv) {
      snprintf(r->veh[i].plate, sizeof r->veh[i].plate, pattern, i + 1);
      r->veh[i].colour = 2;
    }
    hw_sim_truck_init(&r->veh[i].truck, seed, i + 1, start, r->step_ms);
  }
  if ((rc = uv_loop_init(&r->loop)))
    goto out;
  uv_signal_init(&r->loop, &r->sigint);
  r->sigint.data = r;
  uv_signal_start(&r->sigint, hw_sj9_on_sigint, SIGINT);
  if (slave && (rc = hw_sj9_slave_listen(r, slave))) {
    fprintf(stderr, "haulwatch-sim: cannot listen on --slave-listen %s: %s\n", slave,
            uv_strerror(rc));
    hw_sj9_slave_close_all(r);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    rc = -EINVAL;
    goto out;
  }
  uv_update_time(&r->loop);
  r->t0 = uv_now(&r->loop);
  uint32_t per = r->nveh / r->nlinks, extra = r->nveh % r->nlinks, at = 0;
  for (uint32_t i = 0; i < r->nlinks; i++) {
    hw_sj9_link *l = &r->links[i];
    l->run = r;
    l->index = i;
    l->center = r->center + i;
    l->veh = r->veh + at;
    l->nveh = per + (i < extra);
    at += l->nveh;
    l->next_hb_ms = r->t0 + HW_SJ9_HEARTBEAT_MS;
    uv_timer_init(&r->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, hw_sj9_tick, 0, HW_SJ9_TICK_MS);
    hw_sj9_connect(l);
  }
  uv_timer_t end;
  uv_timer_init(&r->loop, &end);
  end.data = r;
  uv_timer_start(&end, hw_sj9_check_end, 200, 200);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  double secs = (double)(uv_now(&r->loop) - r->t0) / 1000;
  uint32_t up = 0;
  for (uint32_t i = 0; i < r->nlinks; i++)
    up += r->links[i].ever_up;
  uint64_t held = 0;
  for (uint32_t i = 0; i < r->nveh; i++)
    held += r->veh[i].nheld;
  printf("protocol=jt809 edition=%d links=%u links_up=%u refused=%llu vehicles=%u generated=%llu "
         "sent=%llu backfilled=%llu unsent=%llu dropped=%llu write_lost=%llu logins=%llu "
         "reconnects=%llu heartbeats=%llu seconds=%.1f rate=%.0f timed_out=%d interrupted=%d "
         "slave_logins=%llu slave_refused=%llu requests=%llu answers=%llu\n",
         r->is_2019 ? 2019 : 2011, r->nlinks, up, (unsigned long long)r->refused, r->nveh,
         (unsigned long long)r->generated, (unsigned long long)r->sent,
         (unsigned long long)r->backfilled, (unsigned long long)held,
         (unsigned long long)r->dropped, (unsigned long long)r->write_errors,
         (unsigned long long)r->logins, (unsigned long long)r->reconnects,
         (unsigned long long)r->heartbeats, secs, secs > 0 ? (double)r->sent / secs : 0,
         r->timed_out, r->interrupted, (unsigned long long)r->slave_logins,
         (unsigned long long)r->slave_refused, (unsigned long long)r->requests,
         (unsigned long long)r->answers);
  rc = up == r->nlinks && !r->refused && r->sent == r->generated && !r->timed_out &&
               !r->interrupted
           ? 0
           : 1;
  uv_loop_close(&r->loop);
  for (uint32_t i = 0; i < r->nveh; i++)
    free(r->veh[i].held);
  free(r->veh);
  free(r->links);
  return rc;
out:
  free(r->veh);
  free(r->links);
  return rc == -EINVAL ? 2 : 1;
}
