#include "protobuf/pb_session.h"

#include <string.h>

#include "registry/auth.h"
#include "protobuf/frame.h"
#include "base/log.h"
#include "protobuf/pb_codec.h"
#include "pipeline/pipeline.h"
#include "net/server.h"

#define HW_PB_MAX_FIXES_PER_REPORT 4096

typedef enum { HW_PB_NEW = 0, HW_PB_AUTHENTICATING, HW_PB_READY } hw_pb_phase;

typedef struct hw_pb_state {
  hw_frame_reader reader;
  hw_pb_phase phase;
  hw_auth_req *auth;                /* pending look-up, NULL otherwise */
  char terminal_id[HW_TERMINAL_ID_MAX + 1];
} hw_pb_state;

static size_t hw_pb_max_frame = 64 * 1024;
/* Converted fixes of the report being handled; one loop thread, so one buffer. */
static hw_fix hw_pb_fixes[HW_PB_MAX_FIXES_PER_REPORT];

void hw_pb_proto_set_max_frame(size_t max_frame) { hw_pb_max_frame = max_frame; }

static void hw_pb_send(hw_session *s, const Haulwatch__V1__ServerMessage *m) {
  uint8_t buf[512];
  int n = hw_pb_encode_delimited(&m->base, buf, sizeof buf);
  if (n > 0 && hw_session_write(s, buf, (size_t)n) == 0)
    return;
}

static void hw_pb_send_error(hw_session *s, Haulwatch__V1__Error__Code code, const char *reason) {
  Haulwatch__V1__Error e = HAULWATCH__V1__ERROR__INIT;
  e.code = code;
  e.reason = (char *)reason;
  Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR;
  m.error = &e;
  hw_pb_send(s, &m);
}

/* Sends Error and fails, so the caller closes the session. */
static int hw_pb_refuse(hw_session *s, Haulwatch__V1__Error__Code code, const char *reason) {
  hw_info("pb", hw_session_tid(s), "peer=%s closed: %s", s->peer, reason);
  hw_pb_send_error(s, code, reason);
  return -ECONNABORTED;
}

static void hw_pb_send_hello_result(hw_session *s, int accepted, const char *reason, uint64_t last) {
  Haulwatch__V1__HelloResult r = HAULWATCH__V1__HELLO_RESULT__INIT;
  r.accepted = accepted;
  r.reason = (char *)(reason ? reason : "");
  r.last_acked_seq = last;
  Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT;
  m.hello_result = &r;
  hw_pb_send(s, &m);
}

static void hw_pb_on_auth(void *arg, int result) {
  hw_session *s = arg;
  hw_pb_state *st = hw_session_state(s);
  st->auth = NULL;
  if (result != 0) {
    const char *why = result == -EACCES ? "unknown terminal or wrong token"
                                        : "authentication unavailable, try again later";
    hw_pb_send_hello_result(s, 0, why, 0);
    hw_pb_send_error(s, result == -EACCES ? HAULWATCH__V1__ERROR__CODE__AUTH_FAILED
                                          : HAULWATCH__V1__ERROR__CODE__INTERNAL, why);
    hw_info("pb", st->terminal_id, "peer=%s refused: %s", s->peer, why);
    hw_session_close(s);
    return;
  }
  hw_terminal *t;
  if (hw_registry_get(hw_pipeline_registry(hw_server_pipeline(s->server)), st->terminal_id, &t)) {
    hw_pb_send_hello_result(s, 0, "out of memory", 0);
    hw_session_close(s);
    return;
  }
  hw_session_bind(s, t);
  st->phase = HW_PB_READY;
  hw_pb_send_hello_result(s, 1, NULL, (uint64_t)(t->durable_seq > 0 ? t->durable_seq : 0));
  hw_info("pb", t->id, "peer=%s authenticated", s->peer);
}

static int hw_pb_on_hello(hw_session *s, hw_pb_state *st, const Haulwatch__V1__Hello *h) {
  size_t idlen = h->terminal_id ? strlen(h->terminal_id) : 0;
  if (st->phase != HW_PB_NEW)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "Hello sent twice");
  if (hw_terminal_id_check(h->terminal_id, idlen))
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE,
                        "terminal_id must be 1..32 characters of [0-9A-Za-z_-]");
  size_t toklen = h->token ? strlen(h->token) : 0;
  if (toklen == 0 || toklen > 256)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__AUTH_FAILED, "missing or oversized token");
  memcpy(st->terminal_id, h->terminal_id, idlen + 1);
  st->phase = HW_PB_AUTHENTICATING;
  int rc = hw_auth_check_from(hw_pipeline_auth(hw_server_pipeline(s->server)), s->peer,
                              st->terminal_id, h->token, toklen, hw_pb_on_auth, s, &st->auth);
  if (rc)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__INTERNAL, "authentication unavailable");
  hw_debug("pb", st->terminal_id, "peer=%s hello, client %s", s->peer,
           h->client_version ? h->client_version : "?");
  return 0;
}

static int hw_pb_on_report(hw_session *s, const Haulwatch__V1__Report *r) {
  char why[160];
  if (r->n_fixes == 0)
    return 0;
  if (r->n_fixes > HW_PB_MAX_FIXES_PER_REPORT) {
    snprintf(why, sizeof why, "a report carries at most %d fixes", HW_PB_MAX_FIXES_PER_REPORT);
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, why);
  }
  int64_t now = hw_now_ms(), prev = 0;
  for (size_t i = 0; i < r->n_fixes; i++) {
    const char *field;
    hw_fix *f = &hw_pb_fixes[i];
    if (hw_pb_fix_from_wire(r->fixes[i], f, &field)) {
      snprintf(why, sizeof why, "fix seq %llu: %s", (unsigned long long)r->fixes[i]->seq, field);
      return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, why);
    }
    if (f->seq <= prev)
      return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE,
                          "sequence numbers must increase within a report");
    prev = f->seq;
    f->recv_ms = now;
  }
  int rc = hw_pipeline_submit(hw_server_pipeline(s->server), s, hw_pb_fixes, r->n_fixes, HW_ACK_PB,
                              (uint64_t)prev);
  if (rc) {
    hw_error("pb", hw_session_tid(s), "peer=%s cannot queue fixes: %s", s->peer, strerror(-rc));
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__INTERNAL, "cannot queue fixes");
    return rc;
  }
  return 0;
}

static int hw_pb_on_frame(void *arg, const uint8_t *frame, size_t len) {
  hw_session *s = arg;
  hw_pb_state *st = hw_session_state(s);
  if (s->closing)
    return -ECANCELED;
  Haulwatch__V1__ClientMessage *m = hw_pb_decode_client(frame, len);
  if (!m)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "frame is not a ClientMessage");
  switch (m->msg_case) {
  case HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO:
    return hw_pb_on_hello(s, st, m->hello);
  case HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT:
    if (st->phase != HW_PB_READY)
      return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED,
                          "Report before a successful Hello");
    return hw_pb_on_report(s, m->report);
  case HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT:
    if (st->phase != HW_PB_READY)
      return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED,
                          "Heartbeat before a successful Hello");
    return 0;
  default:
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "empty or unknown message");
  }
}

static int hw_pb_on_data(hw_session *s, const uint8_t *data, size_t len) {
  hw_pb_state *st = hw_session_state(s);
  if (st->reader.max_frame == 0)
    hw_frame_reader_init(&st->reader, hw_pb_max_frame);
  /* Before authentication a frame, its length prefix (at most 10 bytes) included, fits in the
   * pre-authentication buffer: a Hello is small, and a larger length is refused before a byte of
   * the frame is buffered. */
  size_t preauth = hw_session_preauth_limit(s);
  size_t pre_payload = preauth > 11 ? preauth - 10 : 1;
  int small = !s->term && pre_payload < hw_pb_max_frame;
  st->reader.max_frame = small ? pre_payload : hw_pb_max_frame;
  int rc = hw_frame_feed(&st->reader, data, len, hw_pb_on_frame, s);
  if (rc == -EMSGSIZE && small && !s->term)
    return hw_session_preauth_exceeded(s, preauth + 1);
  if (rc == -EMSGSIZE) {
    char why[96];
    snprintf(why, sizeof why, "frame larger than %zu bytes", hw_pb_max_frame);
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_FRAME, why);
  }
  if (rc == -EPROTO)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_FRAME, "malformed length prefix");
  return rc;
}

static void hw_pb_on_durable(hw_session *s, const hw_ack_ref *ack) {
  Haulwatch__V1__Ack a = HAULWATCH__V1__ACK__INIT;
  a.seq = ack->token;
  Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK;
  m.ack = &a;
  hw_pb_send(s, &m);
}

static void hw_pb_on_closing(hw_session *s, int reason) {
  switch (reason) {
  case HW_CLOSE_IDLE:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__IDLE_TIMEOUT, "idle timeout");
    break;
  case HW_CLOSE_REPLACED:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__REPLACED, "replaced by a newer connection");
    break;
  case HW_CLOSE_SHUTDOWN:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__SHUTTING_DOWN, "server shutting down");
    break;
  case HW_CLOSE_AUTH_TIMEOUT:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED,
                     "not authenticated in time");
    break;
  case HW_CLOSE_PREAUTH_BUFFER:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__BAD_FRAME,
                     "too many bytes before authentication");
    break;
  default:
    break;
  }
}

static void hw_pb_on_close(hw_session *s) {
  hw_pb_state *st = hw_session_state(s);
  if (st->auth)
    hw_auth_cancel(st->auth);
  st->auth = NULL;
  hw_frame_reader_free(&st->reader);
}

/* Input held between reads: the partial frame. */
static size_t hw_pb_held_bytes(const hw_session *s) {
  const hw_pb_state *st = hw_session_state((hw_session *)s);
  return st->reader.len;
}

const hw_proto hw_pb_proto = {
    .name = "pb",
    .state_size = sizeof(hw_pb_state),
    .on_data = hw_pb_on_data,
    .on_durable = hw_pb_on_durable,
    .on_closing = hw_pb_on_closing,
    .on_close = hw_pb_on_close,
    .held_bytes = hw_pb_held_bytes,
};
