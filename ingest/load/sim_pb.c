/* The simulator's side of haulwatch's own protocol (proto/haulwatch.proto): length-delimited
 * ClientMessage out, ServerMessage in. Reports are packed by protobuf-c straight into the
 * connection's output buffer from one set of reused message structs, so a fix costs no malloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protobuf/frame.h"
#include "haulwatch.pb-c.h"
#include "base/log.h"
#include "load/sim.h"

/* Sized so a report stays well under the server's default 64 KiB frame limit: a fix with a
 * 32-byte driver id encodes to at most about 110 bytes. */
#define HW_SIM_PB_MAX_FIXES 500
#define HW_SIM_PB_MAX_FRAME 65536

typedef struct hw_sim_pb {
  hw_frame_reader reader; /* owned: partial server frame */
  int ready;              /* reader initialised */
} hw_sim_pb;

/* Reused for every report: the simulator runs one loop in one thread. */
static Haulwatch__V1__Fix hw_sim_pb_fixes[HW_SIM_PB_MAX_FIXES];
static Haulwatch__V1__Fix *hw_sim_pb_fixp[HW_SIM_PB_MAX_FIXES];
static int hw_sim_pb_fixes_init;

static int hw_sim_pb_put(const ProtobufCMessage *m, hw_sim_buf *out) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *p = hw_sim_buf_reserve(out, n + 10);
  if (!p)
    return -ENOMEM;
  size_t k = hw_varint_put(p, n);
  protobuf_c_message_pack(m, p + k);
  out->len += k + n;
  return 0;
}

static void hw_sim_pb_reset(hw_sim_conn *c, void *st) {
  hw_sim_pb *pb = st;
  if (pb->ready)
    hw_frame_reader_free(&pb->reader);
  hw_frame_reader_init(&pb->reader, HW_SIM_PB_MAX_FRAME);
  pb->ready = 1;
}

static void hw_sim_pb_free(void *st) {
  hw_sim_pb *pb = st;
  if (pb->ready)
    hw_frame_reader_free(&pb->reader);
  pb->ready = 0;
}

static int hw_sim_pb_login(hw_sim_conn *c, void *st, hw_sim_buf *out) {
  Haulwatch__V1__Hello hello = HAULWATCH__V1__HELLO__INIT;
  hello.terminal_id = (char *)hw_sim_conn_id(c);
  hello.token = (char *)hw_sim_conn_token(c);
  hello.client_version = "haulwatch-sim/" HW_VERSION;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO;
  m.hello = &hello;
  return hw_sim_pb_put(&m.base, out);
}

static int hw_sim_pb_report(hw_sim_conn *c, void *st, const hw_fix *fixes, size_t n,
                            hw_sim_buf *out) {
  if (n > HW_SIM_PB_MAX_FIXES)
    return -EINVAL;
  if (!hw_sim_pb_fixes_init) {
    for (size_t i = 0; i < HW_SIM_PB_MAX_FIXES; i++) {
      haulwatch__v1__fix__init(&hw_sim_pb_fixes[i]);
      hw_sim_pb_fixp[i] = &hw_sim_pb_fixes[i];
    }
    hw_sim_pb_fixes_init = 1;
  }
  for (size_t i = 0; i < n; i++) {
    const hw_fix *f = &fixes[i];
    Haulwatch__V1__Fix *p = &hw_sim_pb_fixes[i];
    p->seq = (uint64_t)f->seq;
    p->time_ms = (uint64_t)f->ts_ms;
    p->lat_e6 = f->lat_e6;
    p->lon_e6 = f->lon_e6;
    p->speed_dkmh = f->speed_dkmh;
    p->heading = f->heading;
    p->alt_m = f->alt_m;
    p->alarm = f->alarm;
    p->status = f->status;
    p->odometer_hm = f->odometer_hm;
    /* Points into the caller's fix, which outlives the pack below. */
    p->driver_id = f->has_driver ? (char *)f->driver_id : (char *)protobuf_c_empty_string;
  }
  Haulwatch__V1__Report rep = HAULWATCH__V1__REPORT__INIT;
  rep.n_fixes = n;
  rep.fixes = hw_sim_pb_fixp;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT;
  m.report = &rep;
  return hw_sim_pb_put(&m.base, out);
}

static int hw_sim_pb_heartbeat(hw_sim_conn *c, void *st, hw_sim_buf *out) {
  Haulwatch__V1__Heartbeat hb = HAULWATCH__V1__HEARTBEAT__INIT;
  hb.client_time_ms = (uint64_t)hw_now_ms();
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT;
  m.heartbeat = &hb;
  return hw_sim_pb_put(&m.base, out);
}

static const char *hw_sim_pb_code_name(Haulwatch__V1__Error__Code code) {
  const ProtobufCEnumValue *v =
      protobuf_c_enum_descriptor_get_value(&haulwatch__v1__error__code__descriptor, (int)code);
  return v ? v->name : "?";
}

static int hw_sim_pb_on_frame(void *arg, const uint8_t *frame, size_t len) {
  hw_sim_conn *c = arg;
  Haulwatch__V1__ServerMessage *m = haulwatch__v1__server_message__unpack(NULL, len, frame);
  if (!m) {
    hw_sim_conn_fail(c, "server message does not parse");
    return -EPROTO;
  }
  int rc = 0;
  switch (m->msg_case) {
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT:
    if (m->hello_result->accepted) {
      hw_sim_login_ok(c, m->hello_result->last_acked_seq);
    } else {
      hw_sim_login_refused(c, m->hello_result->reason[0] ? m->hello_result->reason : "no reason given");
      rc = -ECONNREFUSED;
    }
    break;
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK:
    /* Refusals first: the Ack's seq covers them too, and they are not durable. */
    for (size_t i = 0; i < m->ack->n_refused; i++) {
      const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
          &haulwatch__v1__refused_fix__reason__descriptor, (int)m->ack->refused[i]->reason);
      hw_sim_fix_refused(c, m->ack->refused[i]->seq, v ? v->name : "?");
    }
    hw_sim_acked(c, m->ack->seq);
    break;
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR: {
    char why[300];
    snprintf(why, sizeof why, "server error %s: %.256s", hw_sim_pb_code_name(m->error->code),
             m->error->reason);
    /* Wrong credentials will not get better by reconnecting. */
    if (m->error->code == HAULWATCH__V1__ERROR__CODE__AUTH_FAILED)
      hw_sim_login_refused(c, why);
    hw_sim_conn_fail(c, why);
    rc = -ECONNABORTED;
    break;
  }
  default:
    break; /* a message this client does not know: newer server, ignore */
  }
  haulwatch__v1__server_message__free_unpacked(m, NULL);
  return rc;
}

static int hw_sim_pb_on_data(hw_sim_conn *c, void *st, const uint8_t *data, size_t len) {
  hw_sim_pb *pb = st;
  int rc = hw_frame_feed(&pb->reader, data, len, hw_sim_pb_on_frame, c);
  if (rc == -EMSGSIZE || rc == -EPROTO)
    hw_sim_conn_fail(c, "bad frame from the server");
  return rc;
}

const hw_sim_proto hw_sim_proto_pb = {
    .name = "pb",
    .max_report_fixes = HW_SIM_PB_MAX_FIXES,
    .state_size = sizeof(hw_sim_pb),
    .conn_reset = hw_sim_pb_reset,
    .conn_free = hw_sim_pb_free,
    .login = hw_sim_pb_login,
    .report = hw_sim_pb_report,
    .heartbeat = hw_sim_pb_heartbeat,
    .on_data = hw_sim_pb_on_data,
};
