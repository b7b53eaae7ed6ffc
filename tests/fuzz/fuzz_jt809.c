/* libFuzzer target for the JT/T 809 codec (ingest/jt809/).
 *
 * Input: byte 0 picks where the rest is split into two TCP reads; byte 1 picks the edition
 * (bit 0), the cipher constants (bits 1-2) and strict escapes (bit 3); the rest is the stream.
 * Every frame the deframer delivers is opened (decrypted) and goes through every body parser
 * of both link and dynamic data, and positions through the fix conversion. Beyond "no crash, no
 * sanitizer report", oracles abort on a wrong answer:
 *   - the events of the split stream equal those of the whole stream;
 *   - a delivered frame, rebuilt with hw_jt809_build from its header and plain body (encrypted
 *     again when it came encrypted), deframes strictly and opens to the same header and body;
 *   - a decoded login re-encodes and decodes to the same fields;
 *   - a valid fix is inside the world and in 2000-2099;
 *   - a wrapper's plate, when it makes a jt809: vehicle id, makes one the position path takes.
 * Every frame also drives the slave link's state machine (jt809_slave_sm.c) as if the centre
 * had sent 0x9001 to the access code of the first frame: it comes up only on a plain 0x9002 of
 * result 0 while logging in, takes 0x9006 only once up, and every end names its reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jt809/jt809_frame.h"
#include "jt809/jt809_header.h"
#include "jt809/jt809_login.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_slave_sm.h"
#include "jt809/jt809_vehicle.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

#define CAP 8192

static const hw_jt809_cipher ciphers[4] = {
    {30000000, 20000000, 20000000}, {56107078, 37382110, 50361430}, {0, 0, 0}, {1, 0xFFFFFFFF, 7}};

typedef struct evlog {
  uint8_t *buf;
  size_t len, cap;
} evlog;

static void evlog_put(evlog *l, const void *p, size_t n) {
  if (l->len + n > l->cap) {
    size_t cap = (l->len + n) * 2 + 256;
    uint8_t *nb = realloc(l->buf, cap);
    CHECK(nb);
    l->buf = nb;
    l->cap = cap;
  }
  memcpy(l->buf + l->len, p, n);
  l->len += n;
}

static int log_cb(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  uint8_t hdr[3] = {(uint8_t)ev, (uint8_t)(len >> 8), (uint8_t)len};
  CHECK(len <= CAP);
  evlog_put(arg, hdr, sizeof hdr);
  evlog_put(arg, data, len);
  return 0;
}

typedef struct one {
  int n;
  uint8_t frame[CAP];
  size_t len;
} one;

static int one_cb(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  one *o = arg;
  CHECK(ev == HW_JT809_FRAME && len <= CAP);
  o->n++;
  memcpy(o->frame, data, len);
  o->len = len;
  return 0;
}

static void check_fix(const hw_jt809_gnss *g) {
  hw_fix f;
  if (hw_jt809_gnss_to_fix(g, 0, &f) != 0)
    return;
  CHECK(f.source == HW_SRC_JT809);
  CHECK(f.lat_e6 >= -90000000 && f.lat_e6 <= 90000000);
  CHECK(f.lon_e6 >= -180000000 && f.lon_e6 <= 180000000);
  CHECK(f.heading < 360);
  CHECK(f.ts_ms >= 946656000000LL && f.ts_ms < 4102444800000LL);
}

static void data_parsers(const uint8_t *d, size_t n, int v19) {
  hw_jt809_register r;
  hw_jt809_gnss g;
  hw_jt809_batch b;
  hw_jt809_query q;
  hw_jt809_answer a;
  hw_jt809_alarm al;
  hw_jt809_supervise s;
  char txt[128];
  if (hw_jt809_parse_register(d, n, &r) == 0)
    CHECK(r.layout == n);
  if (hw_jt809_parse_position(d, n, v19, &g) == 0) {
    if (g.is_2019 && !g.inner_2011)
      CHECK(g.loc + g.loc_len <= d + n && g.loc >= d);
    check_fix(&g);
  }
  if (hw_jt809_batch_begin(&b, d, n, v19) == 0) {
    int k = 0;
    while (hw_jt809_batch_next(&b, &g) == 1) {
      check_fix(&g);
      k++;
    }
    CHECK(k <= b.count);
  }
  for (int i = 0; i < 2; i++) {
    if (hw_jt809_parse_query(d, n, i ? 0x9301 : 0x9302, v19, &q) == 0) {
      CHECK(q.info + q.info_len <= d + n);
      (void)hw_jt809_text(q.info, q.info_len, txt, sizeof txt);
    }
  }
  if (hw_jt809_parse_answer(d, n, v19, &a) == 0)
    CHECK(a.info + a.info_len <= d + n && strlen(a.object_id) < sizeof a.object_id);
  if (hw_jt809_parse_alarm(d, n, v19, &al) == 0)
    CHECK(al.info + al.info_len <= d + n);
  if (hw_jt809_parse_supervise(d, n, &s) == 0)
    CHECK(strlen(s.supervisor) < sizeof s.supervisor);
}

static void on_frame(uint8_t *data, size_t len, int v19, const hw_jt809_cipher *c) {
  hw_jt809_header h, h2;
  const uint8_t *body, *body2;
  size_t bl, bl2, wn;
  static uint8_t plain[CAP], wire[2 * CAP + 80], dbuf[CAP];
  static one o;
  hw_jt809_deframer d;

  if (hw_jt809_open(data, len, v19, c, &h, &body, &bl) != 0)
    return;
  CHECK(body == data + h.header_len && h.header_len + bl == len);
  memcpy(plain, body, bl);

  /* rebuild: the same header and plain body come back */
  CHECK(hw_jt809_build(wire, sizeof wire, &wn, &h, c, plain, bl) == 0);
  CHECK(wn <= hw_jt809_wire_max(bl));
  memset(&o, 0, sizeof o);
  CHECK(hw_jt809_deframer_init(&d, dbuf, sizeof dbuf) == 0);
  d.strict = 1;
  CHECK(hw_jt809_deframer_feed(&d, wire, wn, one_cb, &o) == 0 && o.n == 1);
  CHECK(hw_jt809_open(o.frame, o.len, v19, c, &h2, &body2, &bl2) == 0);
  CHECK(h2.sn == h.sn && h2.msg_id == h.msg_id && h2.center_id == h.center_id &&
        h2.encrypted == h.encrypted && h2.key == h.key && h2.utc_s == h.utc_s);
  CHECK(bl2 == bl && memcmp(body2, plain, bl) == 0);

  hw_jt809_login m, m2;
  uint8_t out[64];
  size_t on;
  if (hw_jt809_parse_login(plain, bl, v19, &m) == 0) {
    if (hw_jt809_encode_login(&m, v19, out, sizeof out, &on) == 0) {
      CHECK(hw_jt809_parse_login(out, on, v19, &m2) == 0);
      CHECK(m2.user_id == m.user_id && m2.password_len == m.password_len &&
            memcmp(m2.password, m.password, m.password_len) == 0 && m2.down_port == m.down_port &&
            m2.center_id == m.center_id);
    }
  }
  uint8_t u8;
  uint32_t u32;
  (void)hw_jt809_parse_login_rsp(plain, bl, &u8, &u32);
  (void)hw_jt809_parse_logout(plain, bl, &m);
  (void)hw_jt809_parse_u32(plain, bl, &u32);
  (void)hw_jt809_parse_u8(plain, bl, &u8);
  for (int wv = 0; wv < 2; wv++) {
    hw_jt809_sub sub;
    if (hw_jt809_parse_sub(plain, bl, wv, &sub) == 0) {
      CHECK(sub.data >= plain && sub.data + sub.data_len <= plain + bl);
      CHECK(strlen(sub.plate) < sizeof sub.plate);
      /* The id a position of this vehicle is stored under when the registry does not know the
       * plate (jt809_data.c): made, it fits the position path's widest id and passes its check. */
      char tid[HW_JT809_VEHICLE_TID_MAX + 1];
      if (sub.has_vehicle && hw_jt809_vehicle_tid(1234567, sub.plate, sub.plate_colour, tid,
                                                  sizeof tid) == 0)
        CHECK(strlen(tid) <= HW_TID_WIDE_MAX && hw_stored_tid_check(tid, strlen(tid)) == 0);
      data_parsers(sub.data, sub.data_len, v19);
    }
  }
  data_parsers(plain, bl, v19);
}

typedef struct ctx {
  int v19;
  const hw_jt809_cipher *c;
  int slave_state; /* HW_J9S_SM_LOGIN or HW_J9S_SM_UP */
  uint32_t slave_center;
  int have_center;
} ctx;

static void slave_step(ctx *x, const uint8_t *data, size_t len) {
  static uint8_t copy[CAP];
  uint16_t msg_id;
  uint32_t center;
  CHECK(len <= sizeof copy);
  if (len < HW_JT809_HEADER_2011)
    return;
  msg_id = (uint16_t)(data[8] << 8 | data[9]); /* both editions: after length and sn */
  center = (uint32_t)data[10] << 24 | (uint32_t)data[11] << 16 | (uint32_t)data[12] << 8 | data[13];
  if (!x->have_center) {
    x->slave_center = center;
    x->have_center = 1;
  }
  memcpy(copy, data, len);
  uint8_t code;
  const char *why;
  hw_j9s_act act = hw_jt809_slave_step(x->slave_state, x->v19, x->slave_center, copy, len,
                                       &code, &why);
  hw_jt809_header h;
  const uint8_t *body;
  size_t bl;
  int plain = hw_jt809_header_parse(data, len, x->v19, &h, &body, &bl) == 0 && !h.encrypted;
  CHECK((act == HW_J9S_END) == (why != NULL));
  switch (act) {
  case HW_J9S_UP:
    CHECK(x->slave_state == HW_J9S_SM_LOGIN && plain && msg_id == HW_JT809_DOWN_CONNECT_RSP &&
          center == x->slave_center && bl >= 1 && body[0] == 0);
    x->slave_state = HW_J9S_SM_UP;
    break;
  case HW_J9S_ALIVE:
    CHECK(x->slave_state == HW_J9S_SM_UP && plain && msg_id == HW_JT809_DOWN_LINKTEST_RSP);
    break;
  case HW_J9S_NOTE:
    CHECK(plain && msg_id == HW_JT809_UP_DISCONNECT_INFORM);
    CHECK(bl ? code == body[0] : code == 0xff);
    break;
  case HW_J9S_IGNORE:
    CHECK(x->slave_state == HW_J9S_SM_UP && plain && center == x->slave_center);
    break;
  case HW_J9S_END:
    x->slave_state = HW_J9S_SM_LOGIN; /* the centre reconnects and logs in again */
    break;
  default:
    CHECK(0);
  }
}

static int parse_cb(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  ctx *x = arg;
  if (ev == HW_JT809_FRAME) {
    slave_step(x, data, len);
    on_frame(data, len, x->v19, x->c);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t b1[CAP], b2[CAP];
  hw_jt809_deframer d;
  evlog whole = {0}, split = {0};
  if (size < 2)
    return 0;
  size_t at = data[0];
  uint8_t mode = data[1];
  data += 2;
  size -= 2;
  at = size ? at % (size + 1) : 0;
  int strict = (mode >> 3) & 1;
  ctx x = {mode & 1, &ciphers[(mode >> 1) & 3], HW_J9S_SM_LOGIN, 0, 0};

  CHECK(hw_jt809_deframer_init(&d, b1, sizeof b1) == 0);
  d.strict = (uint8_t)strict;
  CHECK(hw_jt809_deframer_feed(&d, data, size, log_cb, &whole) == 0);
  CHECK(hw_jt809_deframer_init(&d, b2, sizeof b2) == 0);
  d.strict = (uint8_t)strict;
  CHECK(hw_jt809_deframer_feed(&d, data, at, log_cb, &split) == 0);
  CHECK(hw_jt809_deframer_feed(&d, data + at, size - at, log_cb, &split) == 0);
  CHECK(whole.len == split.len && (whole.len == 0 || memcmp(whole.buf, split.buf, whole.len) == 0));
  free(whole.buf);
  free(split.buf);

  CHECK(hw_jt809_deframer_init(&d, b1, sizeof b1) == 0);
  d.strict = (uint8_t)strict;
  CHECK(hw_jt809_deframer_feed(&d, data, at, parse_cb, &x) == 0);
  CHECK(hw_jt809_deframer_feed(&d, data + at, size - at, parse_cb, &x) == 0);
  return 0;
}
