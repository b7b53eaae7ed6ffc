/* The simulator's side of JT/T 808 (notes: docs/jt808.md), as a terminal behaves:
 *
 *   - login: authenticate (0x0102) with the auth code it holds; without one (first start, or the
 *     platform refused the code) register (0x0100) first and authenticate with the code the
 *     0x8100 gives. The code is the truck's memory and outlives connections.
 *   - reports: one fix alone as 0x0200, several as 0x0704 batches; fixes sent on an earlier
 *     connection and sent again go as 0x0704 type 1 (blind-area back-fill). A 0x0702 driver
 *     identity (card inserted, at the fix's time) goes before the first fix of each driver on a
 *     connection, so the platform knows who drives.
 *   - acks: the platform answers each report with 0x8001 for its flow number once stored; the
 *     report's highest seq is then durable. Replies come in the order the reports went.
 *
 * Frames are built with the codec (hw_jt808_build) straight into the engine's output buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/geo.h"
#include "jt808/jt808_msg.h"
#include "base/log.h"
#include "load/sim.h"
#include "load/sim_attach.h"

/* 0x0704 items with the odometer item: 2 + 28 + 6 bytes, after a 3-byte head; the body limit
 * of 1023 bytes leaves room for 28. */
#define HW_SIM_J8_ITEM_MAX 36
#define HW_SIM_J8_BATCH_MAX ((HW_JT808_BODY_MAX - 3) / HW_SIM_J8_ITEM_MAX)
#define HW_SIM_J8_CODE_MAX 64
#define HW_SIM_J8_AUTH_TRIES 3 /* registrations in a row whose code is refused: give up */
#define HW_SIM_J8_DEVICE_ID_LEN 7 /* fits the 2013 layout's 7-byte field (2019: 30) */

typedef enum { HW_SIM_J8_REGISTERING = 0, HW_SIM_J8_AUTHENTICATING, HW_SIM_J8_READY } hw_sim_j8_phase;

/* A report on its way: the 0x8001 for `flow` makes everything up to `seq` durable. */
typedef struct hw_sim_j8_sent {
  uint64_t seq;
  uint16_t flow;
} hw_sim_j8_sent;

typedef struct hw_sim_j8 {
  /* The truck's memory, kept across connections. */
  char code[HW_SIM_J8_CODE_MAX + 1]; /* auth code; "" = none, register first */
  uint8_t code_init;                 /* code taken from the configured token */
  uint8_t auth_failures;             /* codes refused in a row */
  uint64_t hi_seq_prev;              /* highest seq sent on earlier connections */
  /* This connection. */
  hw_jt808_deframer *df;             /* owned */
  hw_jt808_header self;              /* our phone and layout, for building frames */
  hw_sim_j8_phase phase;
  uint16_t flow;                     /* our next flow number */
  uint16_t login_flow;               /* of the 0x0100 / 0x0102 awaiting its answer */
  uint64_t hi_seq;                   /* highest seq sent on this connection */
  int driver_known;                  /* driver announced on this connection */
  char driver[HW_DRIVER_ID_MAX + 1];
  hw_sim_j8_sent *ring;              /* owned: reports awaiting their ack, oldest first */
  size_t ring_cap, ring_head, ring_len;
} hw_sim_j8;

static void hw_sim_j8_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void hw_sim_j8_put32(uint8_t *p, uint32_t v) {
  hw_sim_j8_put16(p, (uint16_t)(v >> 16));
  hw_sim_j8_put16(p + 2, (uint16_t)v);
}

/* BCD[6] YYMMDDhhmmss in GMT+8 of a UTC time in ms (seconds truncated). */
static void hw_sim_j8_time(uint8_t *p, int64_t ts_ms) {
  time_t t = (time_t)(ts_ms / 1000) + HW_CST_OFFSET_S;
  struct tm tm;
  gmtime_r(&t, &tm);
  int v[6] = {tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
  for (int i = 0; i < 6; i++)
    p[i] = (uint8_t)((v[i] / 10) << 4 | (v[i] % 10));
}

/* Appends one frame with our header to out. */
static int hw_sim_j8_put(hw_sim_j8 *j, hw_sim_buf *out, uint16_t msg_id, const uint8_t *body,
                         size_t len, uint16_t *flow) {
  uint8_t *p = hw_sim_buf_reserve(out, HW_JT808_WIRE_MAX);
  size_t n;
  if (!p)
    return -ENOMEM;
  int rc = hw_jt808_build(p, HW_JT808_WIRE_MAX, &n, &j->self, msg_id, j->flow, body, len);
  if (rc)
    return rc;
  out->len += n;
  if (flow)
    *flow = j->flow;
  j->flow++;
  return 0;
}

static int hw_sim_j8_ring_push(hw_sim_j8 *j, uint16_t flow, uint64_t seq) {
  if (j->ring_len == j->ring_cap) {
    size_t cap = j->ring_cap ? j->ring_cap * 2 : 16;
    hw_sim_j8_sent *r = malloc(cap * sizeof *r);
    if (!r)
      return -ENOMEM;
    for (size_t i = 0; i < j->ring_len; i++)
      r[i] = j->ring[(j->ring_head + i) % j->ring_cap];
    free(j->ring);
    j->ring = r;
    j->ring_cap = cap;
    j->ring_head = 0;
  }
  j->ring[(j->ring_head + j->ring_len) % j->ring_cap] = (hw_sim_j8_sent){.seq = seq, .flow = flow};
  j->ring_len++;
  return 0;
}

static void hw_sim_j8_reset(hw_sim_conn *c, void *st) {
  hw_sim_j8 *j = st;
  if (!j->code_init) {
    snprintf(j->code, sizeof j->code, "%s", hw_sim_conn_token(c) ? hw_sim_conn_token(c) : "");
    j->code_init = 1;
  }
  if (j->hi_seq > j->hi_seq_prev)
    j->hi_seq_prev = j->hi_seq;
  j->hi_seq = 0;
  if (!j->df)
    j->df = malloc(sizeof *j->df);
  if (j->df)
    hw_jt808_deframer_init(j->df);
  const char *id = hw_sim_conn_id(c);
  /* 20 digits speak the 2019 layout, 12 the 2013 one. */
  if (hw_jt808_header_init(&j->self, strlen(id) > 12, 1, id))
    hw_error("sim", id, "terminal id is not a JT/T 808 phone number");
  j->phase = HW_SIM_J8_REGISTERING;
  j->driver_known = 0;
  j->ring_head = j->ring_len = 0;
}

static void hw_sim_j8_free(void *st) {
  hw_sim_j8 *j = st;
  free(j->df);
  free(j->ring);
  j->df = NULL;
  j->ring = NULL;
  j->ring_cap = j->ring_len = 0;
}

const char *hw_sim_j8_device_id(const char *terminal_id) {
  size_t l = strlen(terminal_id);
  return terminal_id + (l > HW_SIM_J8_DEVICE_ID_LEN ? l - HW_SIM_J8_DEVICE_ID_LEN : 0);
}

static int hw_sim_j8_register(hw_sim_conn *c, hw_sim_j8 *j, hw_sim_buf *out) {
  const char *id = hw_sim_conn_id(c);
  size_t idl = strlen(id);
  uint8_t body[128];
  int y19 = j->self.is_2019;
  size_t wm = y19 ? 11 : 5, wmod = y19 ? 30 : 20, wid = y19 ? 30 : 7, n = 4;
  memset(body, 0, sizeof body);
  hw_sim_j8_put16(body, 11);  /* Beijing */
  hw_sim_j8_put16(body + 2, 0);
  memcpy(body + n, "HWSIM", 5);
  n += wm;
  memcpy(body + n, "haulwatch-sim", 13);
  n += wmod;
  const char *dev = hw_sim_j8_device_id(id);
  memcpy(body + n, dev, strlen(dev));
  n += wid;
  body[n++] = 2; /* yellow: trucks */
  body[n++] = 0xBE; /* 京 in GBK */
  body[n++] = 0xA9;
  /* 京B + the id's last 5 digits; trucks with an active-safety device script 京D (dsm) and 京E
   * (nodevice), so that both can be registered beside the others (ops/demo). */
  const hw_scn_script *sc = hw_sim_conn_script(c);
  body[n++] = sc && sc->kind == HW_SCN_DSM ? 'D' : sc && sc->kind == HW_SCN_NODEVICE ? 'E' : 'B';
  memcpy(body + n, id + idl - 5, 5);
  n += 5;
  j->phase = HW_SIM_J8_REGISTERING;
  return hw_sim_j8_put(j, out, HW_JT808_MSG_REGISTER, body, n, &j->login_flow);
}

static int hw_sim_j8_authenticate(hw_sim_j8 *j, hw_sim_buf *out) {
  uint8_t body[HW_SIM_J8_CODE_MAX + 40];
  size_t cl = strlen(j->code), n = 0;
  if (j->self.is_2019) {
    body[n++] = (uint8_t)cl;
    memcpy(body + n, j->code, cl);
    n += cl;
    memset(body + n, '0', 15); /* IMEI */
    n += 15;
    memset(body + n, 0, 20);
    memcpy(body + n, "haulwatch-sim", 13);
    n += 20;
  } else {
    memcpy(body, j->code, cl);
    n = cl;
  }
  j->phase = HW_SIM_J8_AUTHENTICATING;
  return hw_sim_j8_put(j, out, HW_JT808_MSG_AUTH, body, n, &j->login_flow);
}

static int hw_sim_j8_login(hw_sim_conn *c, void *st, hw_sim_buf *out) {
  hw_sim_j8 *j = st;
  if (!j->df)
    return -ENOMEM;
  return j->code[0] ? hw_sim_j8_authenticate(j, out) : hw_sim_j8_register(c, j, out);
}

/* A 0x0200 body: the fixed part and the odometer item (36 bytes at most with the length word). */
static size_t hw_sim_j8_location(uint8_t *p, const hw_fix *f) {
  uint32_t status = f->status & ~0xCu;
  if (f->lat_e6 < 0)
    status |= 0x4;
  if (f->lon_e6 < 0)
    status |= 0x8;
  hw_sim_j8_put32(p, f->alarm);
  hw_sim_j8_put32(p + 4, status);
  hw_sim_j8_put32(p + 8, (uint32_t)(f->lat_e6 < 0 ? -(int64_t)f->lat_e6 : f->lat_e6));
  hw_sim_j8_put32(p + 12, (uint32_t)(f->lon_e6 < 0 ? -(int64_t)f->lon_e6 : f->lon_e6));
  hw_sim_j8_put16(p + 16, (uint16_t)(f->alt_m < 0 ? 0 : f->alt_m > 65535 ? 65535 : f->alt_m));
  hw_sim_j8_put16(p + 18, (uint16_t)(f->speed_dkmh > 65535 ? 65535 : f->speed_dkmh));
  hw_sim_j8_put16(p + 20, f->heading);
  hw_sim_j8_time(p + 22, f->ts_ms);
  p[28] = 0x01; /* odometer, 0.1 km */
  p[29] = 4;
  hw_sim_j8_put32(p + 30, f->odometer_hm);
  return 34;
}

/* 0x0702, 2013 layout: card inserted at the fix's time, read fine, the simulator's driver. */
static int hw_sim_j8_driver(hw_sim_j8 *j, const hw_fix *f, hw_sim_buf *out) {
  uint8_t body[96];
  char name[40];
  size_t n = 0;
  body[n++] = 0x01;
  hw_sim_j8_time(body + n, f->ts_ms);
  n += 6;
  body[n++] = 0;
  int nl = snprintf(name, sizeof name, "Driver %.6s", f->driver_id + strlen(f->driver_id) - 6);
  body[n++] = (uint8_t)nl;
  memcpy(body + n, name, (size_t)nl);
  n += (size_t)nl;
  memset(body + n, 0, 20);
  memcpy(body + n, f->driver_id, strlen(f->driver_id) < 20 ? strlen(f->driver_id) : 20);
  n += 20;
  body[n++] = 7;
  memcpy(body + n, "HW test", 7);
  n += 7;
  memcpy(body + n, "\x20\x30\x12\x31", 4); /* expiry 2030-12-31 */
  n += 4;
  memcpy(j->driver, f->driver_id, sizeof j->driver);
  j->driver_known = 1;
  return hw_sim_j8_put(j, out, HW_JT808_MSG_DRIVER, body, n, NULL);
}

/* Appends to a 0x0200 body of len bytes the active-safety item its scripted fix carries, if
 * any: a DSM item in the 苏标 layout (47 bytes of value) whose alarm number names this terminal's
 * last 7 digits. Returns the new length. */
static size_t hw_sim_j8_alarm(hw_sim_conn *c, uint8_t *p, size_t len, const hw_fix *f) {
  const hw_scn_script *s = hw_sim_conn_script(c);
  hw_scn_alarm a;
  if (!s || !hw_scn_alarm_of(s, f->seq, &a))
    return len;
  uint8_t *q = p + len;
  const char *id = hw_sim_conn_id(c);
  size_t il = strlen(id);
  uint32_t lat = (uint32_t)(f->lat_e6 < 0 ? -(int64_t)f->lat_e6 : f->lat_e6);
  uint32_t lon = (uint32_t)(f->lon_e6 < 0 ? -(int64_t)f->lon_e6 : f->lon_e6);
  *q++ = a.item;
  *q++ = 47;
  hw_sim_j8_put32(q, a.alarm_id), q += 4;
  *q++ = 0;              /* flag: not applicable */
  *q++ = a.type;
  *q++ = a.level;
  *q++ = a.type == 0x01 ? 7 : 0; /* fatigue degree */
  memset(q, 0, 4), q += 4;
  *q++ = (uint8_t)(f->speed_dkmh / 10 > 255 ? 255 : f->speed_dkmh / 10);
  hw_sim_j8_put16(q, 50), q += 2;
  hw_sim_j8_put32(q, lat), q += 4;
  hw_sim_j8_put32(q, lon), q += 4;
  hw_sim_j8_time(q, a.ts_ms), q += 6;
  hw_sim_j8_put16(q, f->speed_dkmh ? 1 : 0), q += 2; /* ACC */
  memcpy(q, il >= 7 ? id + il - 7 : id, il >= 7 ? 7 : il);
  if (il < 7)
    memset(q + il, 0, 7 - il);
  q += 7;
  hw_sim_j8_time(q, a.ts_ms), q += 6;
  *q++ = 0;              /* sequence */
  *q++ = a.attachments;
  *q++ = 0;
  if (a.attachments)
    hw_sim_attach_announced(); /* the run waits for its 0x9208 (bounded) and upload */
  return (size_t)(q - p);
}

/* One message with fixes[0..n): 0x0200 for a single new fix, else 0x0704 of `type`. */
static int hw_sim_j8_message(hw_sim_conn *c, hw_sim_j8 *j, const hw_fix *fixes, size_t n,
                             int backfill, hw_sim_buf *out) {
  uint8_t body[HW_JT808_BODY_MAX];
  size_t len;
  uint16_t id, flow;
  int rc;
  if (n == 1 && !backfill) {
    id = HW_JT808_MSG_LOCATION;
    len = hw_sim_j8_alarm(c, body, hw_sim_j8_location(body, &fixes[0]), &fixes[0]);
  } else {
    id = HW_JT808_MSG_BATCH;
    hw_sim_j8_put16(body, (uint16_t)n);
    body[2] = backfill ? 1 : 0;
    len = 3;
    for (size_t i = 0; i < n; i++) {
      size_t l = hw_sim_j8_alarm(c, body + len + 2, hw_sim_j8_location(body + len + 2, &fixes[i]),
                                 &fixes[i]);
      hw_sim_j8_put16(body + len, (uint16_t)l);
      len += 2 + l;
    }
  }
  if ((rc = hw_sim_j8_put(j, out, id, body, len, &flow)))
    return rc;
  uint64_t seq = (uint64_t)fixes[n - 1].seq;
  if (seq > j->hi_seq)
    j->hi_seq = seq;
  return hw_sim_j8_ring_push(j, flow, seq);
}

static int hw_sim_j8_report(hw_sim_conn *c, void *st, const hw_fix *fixes, size_t n,
                            hw_sim_buf *out) {
  hw_sim_j8 *j = st;
  size_t start = 0;
  int rc;
  /* Cut where the kind of message changes (back-fill or not), where the driver changes (the
   * 0x0702 must come first), and at the body limit. */
  size_t bytes = 3; /* the 0x0704 body so far, to keep within its limit with alarm items */
  for (size_t i = 0; i <= n; i++) {
    size_t item = 0;
    if (i < n) {
      hw_scn_alarm a;
      const hw_scn_script *sc = hw_sim_conn_script(c);
      item = HW_SIM_J8_ITEM_MAX + (sc && hw_scn_alarm_of(sc, fixes[i].seq, &a) ? 49 : 0);
    }
    int cut = i == n || i - start == HW_SIM_J8_BATCH_MAX || bytes + item > HW_JT808_BODY_MAX;
    if (!cut && i > start) {
      int bf_prev = (uint64_t)fixes[i - 1].seq <= j->hi_seq_prev;
      int bf_this = (uint64_t)fixes[i].seq <= j->hi_seq_prev;
      cut = bf_prev != bf_this || strcmp(fixes[i].driver_id, fixes[i - 1].driver_id) != 0;
    }
    if (cut && i > start) {
      if ((rc = hw_sim_j8_message(c, j, fixes + start, i - start,
                                  (uint64_t)fixes[start].seq <= j->hi_seq_prev, out)))
        return rc;
      start = i;
      bytes = 3;
    }
    bytes += item;
    if (i < n && i == start && fixes[i].has_driver &&
        (!j->driver_known || strcmp(j->driver, fixes[i].driver_id) != 0) &&
        (rc = hw_sim_j8_driver(j, &fixes[i], out)))
      return rc;
  }
  return 0;
}

static int hw_sim_j8_heartbeat(hw_sim_conn *c, void *st, hw_sim_buf *out) {
  (void)c;
  return hw_sim_j8_put(st, out, HW_JT808_MSG_HEARTBEAT, NULL, 0, NULL);
}

static void hw_sim_j8_on_register_response(hw_sim_conn *c, hw_sim_j8 *j, const uint8_t *body,
                                           size_t len) {
  char why[64];
  if (len < 3 || j->phase != HW_SIM_J8_REGISTERING ||
      (uint16_t)(body[0] << 8 | body[1]) != j->login_flow)
    return;
  if (body[2] != HW_JT808_REG_OK) {
    snprintf(why, sizeof why, "registration refused (0x8100 result %u)", body[2]);
    hw_sim_login_refused(c, why);
    return;
  }
  size_t cl = len - 3;
  if (cl == 0 || cl > HW_SIM_J8_CODE_MAX) {
    hw_sim_login_refused(c, "registration gave no usable auth code");
    return;
  }
  memcpy(j->code, body + 3, cl);
  j->code[cl] = 0;
  if (hw_sim_j8_authenticate(j, hw_sim_conn_out(c)))
    hw_sim_conn_fail(c, "cannot build the authentication");
}

static void hw_sim_j8_on_platform_response(hw_sim_conn *c, hw_sim_j8 *j, const uint8_t *body,
                                           size_t len) {
  hw_jt808_terminal_response r; /* 0x8001 has the layout of 0x0001 */
  char why[96];
  if (hw_jt808_parse_terminal_response(body, len, &r))
    return;
  if (r.reply_id == HW_JT808_MSG_AUTH) {
    if (j->phase != HW_SIM_J8_AUTHENTICATING || r.reply_flow != j->login_flow)
      return;
    if (r.result == HW_JT808_RES_OK) {
      j->phase = HW_SIM_J8_READY;
      j->auth_failures = 0;
      hw_sim_login_ok(c, 0);
      return;
    }
    /* The code is no good (the platform lost it, or another registration replaced it): as a
     * terminal does, forget it and register again on the next connection. */
    j->code[0] = 0;
    if (++j->auth_failures >= HW_SIM_J8_AUTH_TRIES) {
      hw_sim_login_refused(c, "authentication refused after registering again");
      return;
    }
    hw_sim_conn_fail(c, "auth code refused; registering again");
    return;
  }
  if (r.reply_id != HW_JT808_MSG_LOCATION && r.reply_id != HW_JT808_MSG_BATCH)
    return; /* heartbeat, driver identity */
  /* Acks come in the order the reports went: everything before this one is durable too. */
  while (j->ring_len) {
    hw_sim_j8_sent e = j->ring[j->ring_head];
    j->ring_head = (j->ring_head + 1) % j->ring_cap;
    j->ring_len--;
    if (e.flow != r.reply_flow)
      continue;
    if (r.result != HW_JT808_RES_OK) {
      snprintf(why, sizeof why, "report (flow %u) answered with result %u", r.reply_flow, r.result);
      hw_sim_conn_fail(c, why);
      return;
    }
    hw_sim_acked(c, e.seq);
    return;
  }
}

/* 0x9208: every simulated truck has an active-safety device, which answers 0x0001 and uploads
 * the alarm's photo and clip on a thread of its own. Trucks whose id ends in an odd digit lose
 * a piece of each file on the first pass and complete after the server's 0x9212. */
static void hw_sim_j8_on_attach_request(hw_sim_conn *c, hw_sim_j8 *j, const hw_jt808_header *h,
                                        const uint8_t *body) {
  hw_attach_request r;
  int ok = hw_attach_parse_request(body, h->body_len, &r) == 0;
  uint8_t ans[5] = {(uint8_t)(h->flow >> 8), (uint8_t)h->flow, (uint8_t)(h->msg_id >> 8),
                    (uint8_t)h->msg_id, ok ? HW_JT808_RES_OK : HW_JT808_RES_BAD_MESSAGE};
  if (hw_sim_j8_put(j, hw_sim_conn_out(c), HW_JT808_MSG_TERMINAL_RESPONSE, ans, sizeof ans, NULL))
    return;
  const char *id = hw_sim_conn_id(c);
  size_t n = strlen(id);
  int lose = n && id[n - 1] >= '0' && id[n - 1] <= '9' && (id[n - 1] - '0') % 2 == 1;
  if (ok)
    hw_sim_attach_requested();
  if (ok && hw_sim_attach_spawn(&r, id, lose))
    hw_warn("sim", id, "cannot start an attachment upload");
}

static int hw_sim_j8_on_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data,
                              size_t len) {
  hw_sim_conn *c = ((void **)arg)[0];
  hw_sim_j8 *j = ((void **)arg)[1];
  hw_jt808_header h;
  const uint8_t *body;
  if (ev != HW_JT808_FRAME || hw_jt808_header_parse(data, len, &h, &body)) {
    hw_sim_conn_fail(c, "broken frame from the server");
    return -EPROTO;
  }
  if (h.msg_id == HW_JT808_MSG_REGISTER_RESPONSE)
    hw_sim_j8_on_register_response(c, j, body, h.body_len);
  else if (h.msg_id == HW_JT808_MSG_PLATFORM_RESPONSE)
    hw_sim_j8_on_platform_response(c, j, body, h.body_len);
  else if (h.msg_id == HW_ATTACH_MSG_UPLOAD_REQUEST)
    hw_sim_j8_on_attach_request(c, j, &h, body);
  else if (h.msg_id == HW_JT808_MSG_DRIVER_REQUEST)
    j->driver_known = 0; /* the card is reported again (0x0702) before the next report */
  /* other platform commands (parameters, queries) are not simulated */
  return 0;
}

static int hw_sim_j8_on_data(hw_sim_conn *c, void *st, const uint8_t *data, size_t len) {
  hw_sim_j8 *j = st;
  void *arg[2] = {c, j};
  return hw_jt808_deframer_feed(j->df, data, len, hw_sim_j8_on_frame, arg);
}

const hw_sim_proto hw_sim_proto_jt808 = {
    .name = "jt808",
    .max_report_fixes = HW_SIM_J8_BATCH_MAX,
    .state_size = sizeof(hw_sim_j8),
    .conn_reset = hw_sim_j8_reset,
    .conn_free = hw_sim_j8_free,
    .login = hw_sim_j8_login,
    .report = hw_sim_j8_report,
    .heartbeat = hw_sim_j8_heartbeat,
    .on_data = hw_sim_j8_on_data,
};
