/* libFuzzer target for the JT/T 808 session state machine (jt808/jt808_session.c): the real
 * hw_jt808_proto.on_data fed a byte stream, with fake_backend.c in place of the server, pipeline
 * and authentication, so register (0x0100), authenticate (0x0102), heartbeats, positions, batches,
 * driver cards and sub-packages are handled before and after a successful authentication.
 *
 * Input: byte 0: bits 0-1 the authentication outcome (0 and 3 accept: a registration gets code
 * "0123456789abcdef" and any 0x0102 is accepted; 1 refuse; 2 unavailable), bits 2-3 how the
 * server ends the session (0 peer hung up, else HW_CLOSE_IDLE, _REPLACED, _SHUTDOWN); byte 1:
 * read size (0 = the whole stream at once). After each read the loop turns: pending
 * authentications are answered and submitted fixes acknowledged.
 * Oracles (besides the sanitizers and fake_backend.h's): every write is whole JT/T 808 frames
 * with a valid header from the platform (0x8xxx). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_backend.h"
#include "jt808/jt808_frame.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_session.h"

typedef struct reply_check {
  int frames;
} reply_check;

static int reply_cb(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  reply_check *c = arg;
  hw_jt808_header h;
  const uint8_t *body;
  HW_FAKE_CHECK(ev == HW_JT808_FRAME);
  HW_FAKE_CHECK(hw_jt808_header_parse(data, len, &h, &body) == 0);
  HW_FAKE_CHECK(h.msg_id & 0x8000);
  c->frames++;
  return 0;
}

static void on_write(hw_session *s, const uint8_t *data, size_t len) {
  static hw_jt808_deframer d; /* large: not on the stack */
  reply_check c = {0};
  HW_FAKE_CHECK(data[0] == 0x7E && data[len - 1] == 0x7E);
  hw_jt808_deframer_init(&d);
  HW_FAKE_CHECK(hw_jt808_deframer_feed(&d, data, len, reply_cb, &c) == 0);
  HW_FAKE_CHECK(c.frames >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hw_fake_run(&hw_jt808_proto, data, size, on_write);
  return 0;
}
