/* hw_jt808_session_request_attachments (attach/attach_request.c) on a real JT/T 808 session
 * (jt808/jt808_session.c) over the fuzz targets' fake back end (tests/fuzz/fake_backend.c, in
 * place of the server, pipeline and authentication): 0x9208 goes only to an authenticated
 * session, in its terminal's layout and phone number, with the next flow number, and carries the
 * listener's public address and the alarm's numbers. Built as test_attach_request (not by the
 * unit tests' glob: it links the fake instead of the daemon's library). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

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
} got;

static int on_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  got *g = arg;
  const uint8_t *body;
  assert_int_equal(ev, HW_JT808_FRAME);
  assert_int_equal(hw_jt808_header_parse(data, len, &g->h, &body), 0);
  memcpy(g->body, body, g->h.body_len);
  g->n++;
  return 0;
}

/* The last frame written. */
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
  assert_int_equal(g.h.msg_id, 0x8001);
  assert_int_equal(g.body[4], 0); /* authenticated */
  uint16_t ack_flow = g.h.flow;

  nwritten = 0;
  assert_int_equal(hw_jt808_session_request_attachments(s, &alarm, unique, out), 0);
  last_frame(&g);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.h.msg_id, HW_ATTACH_MSG_UPLOAD_REQUEST);
  assert_true(g.h.is_2019);
  assert_string_equal(g.h.phone, "00000000013800138000");
  assert_int_equal(g.h.flow, (uint16_t)(ack_flow + 1));
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
  assert_int_equal(g.h.flow, (uint16_t)(ack_flow + 2));

  /* Without an attachment listener: not supported. */
  hw_fake_attach = NULL;
  assert_int_equal(hw_jt808_session_request_attachments(s, &alarm, unique, out), -ENOTSUP);
  hw_fake_end(s, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_request)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
