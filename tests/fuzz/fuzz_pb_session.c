/* libFuzzer target for the protobuf session state machine (protobuf/pb_session.c): the real
 * hw_pb_proto.on_data fed a byte stream, with fake_backend.c in place of the server, pipeline
 * and authentication, so Hello, Report and Heartbeat are handled in every phase, including after
 * a successful authentication.
 *
 * Input: byte 0: bits 0-1 the authentication outcome (0 and 3 accept, 1 refuse, 2 unavailable),
 * bits 2-3 how the server ends the session (0 peer hung up, else HW_CLOSE_IDLE, _REPLACED,
 * _SHUTDOWN); byte 1: read size (0 = the whole stream at once). After each read the loop turns:
 * pending authentications are answered and submitted fixes acknowledged.
 * Oracles (besides the sanitizers and fake_backend.h's): every write is exactly one delimited
 * ServerMessage; no Ack before a HelloResult accepted; nothing is written after an Error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_backend.h"
#include "protobuf/frame.h"
#include "protobuf/pb_codec.h"
#include "protobuf/pb_session.h"

static int accepted, errored;

static void on_write(hw_session *s, const uint8_t *data, size_t len) {
  uint64_t n;
  int k = hw_varint_get(data, len, &n);
  HW_FAKE_CHECK(k > 0 && (size_t)k + n == len);
  /* decoding reuses the arena the session's current ClientMessage lives in; copy the answer out
   * and decode with protobuf-c's own allocator so the session's message stays intact */
  Haulwatch__V1__ServerMessage *m =
      haulwatch__v1__server_message__unpack(NULL, (size_t)n, data + k);
  HW_FAKE_CHECK(m);
  HW_FAKE_CHECK(!errored);
  switch (m->msg_case) {
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT:
    accepted = m->hello_result->accepted;
    break;
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK:
    HW_FAKE_CHECK(accepted && s->term);
    break;
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR:
    errored = 1;
    break;
  default:
    abort();
  }
  haulwatch__v1__server_message__free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  accepted = errored = 0;
  hw_pb_proto_set_max_frame(4096);
  hw_fake_run(&hw_pb_proto, data, size, on_write);
  return 0;
}
