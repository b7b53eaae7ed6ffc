/* hw_jt808_session_request_attachments (attach/attach_request.c) on a real JT/T 808 session
 * (jt808/jt808_session.c) over the fuzz targets' fake back end (tests/fuzz/fake_backend.c, in
 * place of the server, pipeline and authentication): 0x9208 goes only to an authenticated
 * session, in its terminal's layout and phone number, with the next flow number, and carries the
 * listener's public address and the alarm's numbers; and the alarm path: a 0x0200 whose alarm
 * announces attachments gets its 0x9208 right after its ack, only once durable, once per alarm
 * number, and none without files or a listener. Built as test_attach_request (not by the
 * unit tests' glob: it links the fake instead of the daemon's library). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "attach/attach_request.h"
#include "attach/attach_server.h"
#include "fake_backend.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_session.h"
#include "pipeline/backend.h"

/* The attachment listener's address is fake_backend.c's: 192.168.1.1:5000. */

static uint8_t written[4096];
static size_t nwritten;

static void on_write(hw_session *s, const uint8_t *data, size_t len) {
  (void)s;
  assert_true(nwritten + len <= sizeof written);
  memcpy(written + nwritten, data, len);
  nwritten += len;
}

typedef struct got {
  hw_jt808_header h;
  uint8_t body[1024];
  int n;
  hw_jt808_header first; /* the first frame of the lot, and its body's first bytes */
  uint8_t first_body[16];
} got;

static int on_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  got *g = arg;
  const uint8_t *body;
  assert_int_equal(ev, HW_JT808_FRAME);
  assert_int_equal(hw_jt808_header_parse(data, len, &g->h, &body), 0);
  memcpy(g->body, body, g->h.body_len);
  if (!g->n++) {
    g->first = g->h;
    size_t keep = g->h.body_len < sizeof g->first_body ? g->h.body_len : sizeof g->first_body;
    memcpy(g->first_body, body, keep);
  }
  return 0;
}

/* The frames written: the last one, the first one, how many. */
static void last_frame(got *g) {
  static hw_jt808_deframer d;
  hw_jt808_deframer_init(&d);
  memset(g, 0, sizeof *g);
  assert_int_equal(hw_jt808_deframer_feed(&d, written, nwritten, on_frame, g), 0);
  assert_true(g->n >= 1);
}

static void test_request(void **state) {
  (void)state;
  /* SmallChi/JTActiveSafety's JT808_0x9208_Test.cs alarm: terminal 4444444, 2019-12-10
   * 18:31:00, sequence 3, 2 attachments, reserved 1, unique "1" x 32. */
  hw_attach_alarm_no alarm = {.terminal = {'4', '4', '4', '4', '4', '4', '4'},
                              .time_bcd = {0x19, 0x12, 0x10, 0x18, 0x31, 0x00},
                              .seq = 3, .count = 2, .reserved = 1};
  uint8_t unique[32];
  memset(unique, '1', sizeof unique);
  char out[33];
  int dummy;

  hw_fake_attach = (struct hw_attach_server *)&dummy;
  hw_session *s = hw_fake_begin(&hw_jt808_proto, HW_FAKE_AUTH_OK, on_write);
  /* Before authentication: refused, nothing written. */
  assert_int_equal(hw_jt808_session_request_attachments(s, &alarm, unique, out), -ENOTCONN);
  assert_int_equal(nwritten, 0);

  /* 0x0102 with a code (the fake accepts it), 2019 layout, terminal 13800138000. */
  hw_jt808_header me;
  assert_int_equal(hw_jt808_header_init(&me, 1, 1, "13800138000"), 0);
  uint8_t auth[64] = {16};
  memcpy(auth + 1, "0123456789abcdef", 16);
  memset(auth + 17, '0', 35);
  uint8_t wire[HW_JT808_WIRE_MAX];
  size_t n;
  assert_int_equal(hw_jt808_build(wire, sizeof wire, &n, &me, 0x0102, 7, auth, 52), 0);
  assert_true(hw_fake_feed(s, wire, n));
  hw_fake_turn(s);
  got g;
  last_frame(&g);
  assert_int_equal(g.n, 2);
  assert_int_equal(g.first.msg_id, 0x8001);
  assert_int_equal(g.first_body[4], 0); /* authenticated */
  /* ... then, a new connection, the driver card is asked for (0x8702, no body). */
  assert_int_equal(g.h.msg_id, 0x8702);
  assert_int_equal(g.h.body_len, 0);
  assert_int_equal(g.h.flow, (uint16_t)(g.first.flow + 1));
  uint16_t last_flow = g.h.flow;

  nwritten = 0;
  assert_int_equal(hw_jt808_session_request_attachments(s, &alarm, unique, out), 0);
  last_frame(&g);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.h.msg_id, HW_ATTACH_MSG_UPLOAD_REQUEST);
  assert_true(g.h.is_2019);
  assert_string_equal(g.h.phone, "00000000013800138000");
  assert_int_equal(g.h.flow, (uint16_t)(last_flow + 1));
  /* The body their test asserts for these values, but for the UDP port: we offer none (0). */
  static const uint8_t want[] = {
      0x0B, '1', '9', '2', '.', '1', '6', '8', '.', '1', '.', '1', 0x13, 0x88, 0x00, 0x00,
      '4', '4', '4', '4', '4', '4', '4', 0x19, 0x12, 0x10, 0x18, 0x31, 0x00, 3, 2, 1,
      '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1',
      '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1',
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(g.h.body_len, sizeof want);
  assert_memory_equal(g.body, want, sizeof want);
  assert_string_equal(out, "11111111111111111111111111111111");

  /* A drawn unique number: 32 hex digits, returned and sent. */
  nwritten = 0;
  assert_int_equal(hw_jt808_session_request_attachments(s, &alarm, NULL, out), 0);
  last_frame(&g);
  assert_int_equal(strlen(out), 32);
  assert_int_equal(strspn(out, "0123456789abcdef"), 32);
  assert_memory_equal(g.body + 32, out, 32);
  assert_int_equal(g.h.flow, (uint16_t)(last_flow + 2));

  /* Without an attachment listener: not supported. */
  hw_fake_attach = NULL;
  assert_int_equal(hw_jt808_session_request_attachments(s, &alarm, unique, out), -ENOTSUP);
  hw_fake_end(s, 0);
}

/* Every frame written since nwritten was last zeroed: their message ids, in order (frames are
 * fed to the deframer one by one, each ending at its closing 0x7e). */
static int written_ids(uint16_t *ids, int cap) {
  static hw_jt808_deframer d;
  hw_jt808_deframer_init(&d);
  got g;
  memset(&g, 0, sizeof g);
  int k = 0;
  size_t at = 0;
  while (at < nwritten) {
    size_t end = at + 1;
    while (end < nwritten && written[end] != 0x7e)
      end++;
    assert_true(end < nwritten);
    int before = g.n;
    assert_int_equal(hw_jt808_deframer_feed(&d, written + at, end + 1 - at, on_frame, &g), 0);
    if (g.n > before && k < cap)
      ids[k++] = g.h.msg_id;
    at = end + 1;
  }
  return k;
}

static uint8_t bcd(int v) { return (uint8_t)((v / 10) << 4 | (v % 10)); }

/* A 0x0200 of yesterday (GMT+8) 10:00:00 with a DSM item, 苏标 layout, whose alarm number
 * (terminal "DEV0001", sequence 1) announces `count` attachments. Returns the body length. */
static size_t dsm_location(uint8_t *b, uint8_t count) {
  time_t now = time(NULL) + 8 * 3600 - 86400;
  struct tm tm;
  gmtime_r(&now, &tm);
  uint8_t t[6] = {bcd(tm.tm_year % 100), bcd(tm.tm_mon + 1), bcd(tm.tm_mday), 0x10, 0, 0};
  size_t n = 0;
  memset(b, 0, 28);
  b[7] = 0x03;                                          /* status: ACC, positioned */
  b[8] = 0x02, b[9] = 0x60, b[10] = 0xd5, b[11] = 0x60;  /* lat 39.900000 */
  b[12] = 0x06, b[13] = 0xf0, b[14] = 0x19, b[15] = 0x80; /* lon 116.400000 */
  b[19] = 100;                                          /* 10.0 km/h */
  memcpy(b + 22, t, 6);
  n = 28;
  b[n++] = 0x65;
  b[n++] = 47;
  uint8_t *p = b + n;
  memset(p, 0, 47);
  p[3] = 1;    /* alarm id */
  p[5] = 0x01; /* fatigue */
  p[6] = 2;    /* level */
  memcpy(p + 23, t, 6);
  /* the alarm number, bytes 31..46: terminal id, time, sequence, attachments, reserved */
  memcpy(p + 31, "DEV0001", 7);
  memcpy(p + 38, t, 6);
  p[44] = 1;
  p[45] = count;
  return n + 47;
}

/* The alarm path: a 0x0200 whose DSM alarm announces attachments is acknowledged once durable
 * and followed by 0x9208, never before; the same message resent gets its ack and no second
 * 0x9208; an alarm announcing none, or a daemon without a listener, gets none. */
static void test_alarm_path(void **state) {
  (void)state;
  int dummy;
  hw_fake_attach = (struct hw_attach_server *)&dummy;
  hw_session *s = hw_fake_begin(&hw_jt808_proto, HW_FAKE_AUTH_OK, on_write);
  hw_jt808_header me;
  assert_int_equal(hw_jt808_header_init(&me, 0, 0, "013800138001"), 0);
  uint8_t wire[HW_JT808_WIRE_MAX], body[256];
  size_t n;
  assert_int_equal(hw_jt808_build(wire, sizeof wire, &n, &me, 0x0102, 1, (const uint8_t *)"code", 4), 0);
  assert_true(hw_fake_feed(s, wire, n));
  hw_fake_turn(s);
  nwritten = 0;

  size_t bl = dsm_location(body, 2);
  assert_int_equal(hw_jt808_build(wire, sizeof wire, &n, &me, 0x0200, 2, body, bl), 0);
  assert_true(hw_fake_feed(s, wire, n));
  assert_int_equal(nwritten, 0); /* not durable yet: neither the ack nor the request */
  hw_fake_turn(s);
  uint16_t ids[8];
  assert_int_equal(written_ids(ids, 8), 2);
  assert_int_equal(ids[0], 0x8001);
  assert_int_equal(ids[1], HW_ATTACH_MSG_UPLOAD_REQUEST);
  got g;
  last_frame(&g);
  assert_memory_equal(g.body + 16, "DEV0001", 7); /* after ip "192.168.1.1" (1 + 11) and ports */
  assert_int_equal(g.body[16 + 13], 1);
  assert_int_equal(g.body[16 + 14], 2);

  /* Resent (same flow): acknowledged again, asked nothing. */
  nwritten = 0;
  assert_true(hw_fake_feed(s, wire, n));
  hw_fake_turn(s);
  assert_int_equal(written_ids(ids, 8), 1);
  assert_int_equal(ids[0], 0x8001);

  /* No attachments announced: the ack alone. */
  nwritten = 0;
  bl = dsm_location(body, 0);
  body[28 + 2 + 44] = 2; /* another alarm number: sequence 2 */
  assert_int_equal(hw_jt808_build(wire, sizeof wire, &n, &me, 0x0200, 3, body, bl), 0);
  assert_true(hw_fake_feed(s, wire, n));
  hw_fake_turn(s);
  assert_int_equal(written_ids(ids, 8), 1);
  assert_int_equal(ids[0], 0x8001);

  /* No attachment listener: the ack alone, though files are announced. */
  hw_fake_attach = NULL;
  nwritten = 0;
  bl = dsm_location(body, 2);
  body[28 + 2 + 44] = 3;
  assert_int_equal(hw_jt808_build(wire, sizeof wire, &n, &me, 0x0200, 4, body, bl), 0);
  assert_true(hw_fake_feed(s, wire, n));
  hw_fake_turn(s);
  assert_int_equal(written_ids(ids, 8), 1);
  assert_int_equal(ids[0], 0x8001);
  hw_fake_end(s, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_request),
                                     cmocka_unit_test(test_alarm_path)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
