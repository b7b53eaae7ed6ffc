/* libFuzzer target for the JT/T 808 codec.
 *
 * Input: byte 0 picks where the rest is split into two TCP reads; the rest is the stream. Every
 * frame the deframer delivers goes through the header parser and then every body parser (with
 * the header it came with and with the other layout), sub-packages through the reassembler, and
 * a reply is built to the sender. Beyond "no crash, no sanitizer report", three oracles abort on
 * a wrong answer:
 *   - the events of the split stream equal those of the whole stream, also when the deframer is
 *     shared with another connection between the two reads (save/restore);
 *   - a delivered frame re-encoded and deframed again comes back byte for byte;
 *   - the 0x8001 reply to a frame deframes to a frame addressed to the sender's phone. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jt808/jt808_frame.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_location.h"
#include "jt808/jt808_msg.h"
#include "jt808/jt808_reasm.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

typedef struct evlog {
  uint8_t *buf; /* owned */
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

static int log_cb(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  uint8_t hdr[3] = {(uint8_t)ev, (uint8_t)(len >> 8), (uint8_t)len};
  CHECK(len <= HW_JT808_FRAME_MAX);
  evlog_put(arg, hdr, sizeof hdr);
  evlog_put(arg, data, len);
  return 0;
}

typedef struct one {
  int n;
  uint8_t frame[HW_JT808_FRAME_MAX];
  size_t len;
} one;

static int one_cb(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  one *o = arg;
  CHECK(ev == HW_JT808_FRAME);
  o->n++;
  memcpy(o->frame, data, len);
  o->len = len;
  return 0;
}

static void every_parser(const hw_jt808_header *h, const uint8_t *body, size_t len) {
  hw_fix fix;
  hw_jt808_loc_extra ex;
  hw_jt808_batch b;
  hw_jt808_register reg;
  hw_jt808_auth auth;
  hw_jt808_terminal_response tr;
  hw_jt808_driver drv;
  int rc, item_rc;

  rc = hw_jt808_parse_location(body, len, 0, &fix, &ex);
  if (rc == 0) {
    CHECK(fix.lat_e6 >= -90000000 && fix.lat_e6 <= 90000000);
    CHECK(fix.lon_e6 >= -180000000 && fix.lon_e6 <= 180000000);
    CHECK(fix.heading < 360);
    CHECK(fix.ts_ms >= 946656000000LL && fix.ts_ms < 4102416000000LL);
  }
  if (hw_jt808_batch_begin(&b, body, len) == 0) {
    int n = 0;
    while ((rc = hw_jt808_batch_next(&b, 0, &fix, &ex, &item_rc)) == 1)
      n++;
    CHECK(n <= b.count);
  }
  if (hw_jt808_parse_register(h, body, len, &reg) == 0)
    CHECK(strlen(reg.plate) < sizeof reg.plate);
  if (hw_jt808_parse_auth(h, body, len, &auth) == 0)
    CHECK(auth.code_len <= len && (auth.code_len == 0 || (auth.code >= body && auth.code + auth.code_len <= body + len)));
  (void)hw_jt808_parse_terminal_response(body, len, &tr);
  if (hw_jt808_parse_driver(h, body, len, &drv) == 0)
    CHECK(strlen(drv.name) < sizeof drv.name);
  (void)hw_jt808_parse_empty(body, len);
}

typedef struct ctx {
  hw_jt808_reasm reasm;
  int64_t now;
} ctx;

static void on_frame(ctx *c, const uint8_t *data, size_t len) {
  hw_jt808_header h, h2;
  const uint8_t *body;
  uint8_t wire[HW_JT808_WIRE_MAX];
  size_t wn;
  one o;
  hw_jt808_deframer d;

  /* re-encode and deframe: the same bytes */
  CHECK(hw_jt808_frame_encode(data, len, wire, sizeof wire, &wn) == 0);
  memset(&o, 0, sizeof o);
  hw_jt808_deframer_init(&d);
  CHECK(hw_jt808_deframer_feed(&d, wire, wn, one_cb, &o) == 0);
  CHECK(o.n == 1 && o.len == len && memcmp(o.frame, data, len) == 0);

  if (hw_jt808_header_parse(data, len, &h, &body) != 0)
    return;
  CHECK(body == data + h.header_len && (size_t)h.header_len + h.body_len == len);
  CHECK(strlen(h.phone) == (size_t)h.phone_bcd_len * 2);

  every_parser(&h, body, h.body_len);
  h2 = h;
  h2.is_2019 = !h.is_2019;
  every_parser(&h2, body, h.body_len);

  if (h.subpackaged) {
    const uint8_t *out;
    size_t out_len;
    c->now += 1000;
    if (hw_jt808_reasm_add(&c->reasm, &h, body, h.body_len, c->now, &out, &out_len) == 1)
      every_parser(&h, out, out_len);
  }

  /* reply: addressed to the sender's phone, answering its flow and id */
  CHECK(hw_jt808_encode_platform_response(wire, sizeof wire, &wn, &h, 7, h.flow, h.msg_id, 0) == 0);
  memset(&o, 0, sizeof o);
  hw_jt808_deframer_init(&d);
  CHECK(hw_jt808_deframer_feed(&d, wire, wn, one_cb, &o) == 0 && o.n == 1);
  CHECK(hw_jt808_header_parse(o.frame, o.len, &h2, &body) == 0);
  CHECK(strcmp(h2.phone, h.phone) == 0 && h2.msg_id == HW_JT808_MSG_PLATFORM_RESPONSE);
  CHECK(h2.body_len == 5 && body[0] << 8 == (h.flow & 0xFF00) && body[1] == (h.flow & 0xFF));
  CHECK(h2.is_2019 == h.is_2019 && h2.flow == 7);
}

static int parse_cb(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  if (ev == HW_JT808_FRAME)
    on_frame(arg, data, len);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const hw_jt808_reasm_cfg cfg = {.max_total = 16, .max_bytes = 8192, .timeout_ms = 5000};
  hw_jt808_deframer d;
  evlog whole = {0}, split = {0};
  ctx c;
  size_t at;

  if (size < 1)
    return 0;
  at = data[0] % size; /* 0 .. size - 1 bytes of the stream in the first read */
  data++;
  size--;

  hw_jt808_deframer_init(&d);
  CHECK(hw_jt808_deframer_feed(&d, data, size, log_cb, &whole) == 0);
  hw_jt808_deframer_init(&d);
  CHECK(hw_jt808_deframer_feed(&d, data, at, log_cb, &split) == 0);
  CHECK(hw_jt808_deframer_feed(&d, data + at, size - at, log_cb, &split) == 0);
  CHECK(whole.len == split.len && (whole.len == 0 || memcmp(whole.buf, split.buf, whole.len) == 0));

  /* the same through a deframer shared with another connection between the two reads */
  hw_jt808_deframer_resume r;
  static uint8_t partial[HW_JT808_FRAME_MAX];
  evlog shared = {0};
  hw_jt808_deframer_init(&d);
  CHECK(hw_jt808_deframer_feed(&d, data, at, log_cb, &shared) == 0);
  hw_jt808_deframer_save(&d, &r);
  memcpy(partial, d.buf, r.len);
  memset(d.buf, 0x7D, sizeof d.buf);
  d.esc = 1;
  d.len = 3;
  hw_jt808_deframer_restore(&d, &r, partial);
  CHECK(hw_jt808_deframer_feed(&d, data + at, size - at, log_cb, &shared) == 0);
  CHECK(whole.len == shared.len && (whole.len == 0 || memcmp(whole.buf, shared.buf, whole.len) == 0));
  free(whole.buf);
  free(split.buf);
  free(shared.buf);

  memset(&c, 0, sizeof c);
  hw_jt808_reasm_init(&c.reasm, &cfg);
  hw_jt808_deframer_init(&d);
  CHECK(hw_jt808_deframer_feed(&d, data, at, parse_cb, &c) == 0);
  CHECK(hw_jt808_deframer_feed(&d, data + at, size - at, parse_cb, &c) == 0);
  hw_jt808_reasm_free(&c.reasm);
  return 0;
}
