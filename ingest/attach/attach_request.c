/* 0x9208 on a terminal's JT/T 808 session (attach_request.h). */
#include "attach/attach_request.h"

#include <sodium.h>
#include <string.h>

#include "attach/attach_server.h"
#include "base/log.h"
#include "jt808/jt808_session.h"
#include "net/server.h"
#include "pipeline/backend.h"

int hw_jt808_session_request_attachments(hw_session *s, const hw_attach_alarm_no *alarm,
                                         const uint8_t *unique, char unique_out[33]) {
  hw_backend *be = hw_server_backend(s->server);
  if (!be || !be->attach)
    return -ENOTSUP;
  hw_attach_request r;
  memset(&r, 0, sizeof r);
  hw_attach_server_public(be->attach, r.server_ip, sizeof r.server_ip, &r.tcp_port);
  r.alarm = *alarm;
  if (unique) {
    memcpy(r.unique, unique, HW_ATTACH_UNIQUE_LEN);
  } else {
    uint8_t rnd[HW_ATTACH_UNIQUE_LEN / 2];
    char hex[HW_ATTACH_UNIQUE_LEN + 1];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    memcpy(r.unique, hex, HW_ATTACH_UNIQUE_LEN);
  }
  uint8_t body[HW_JT808_BODY_MAX];
  size_t len;
  int rc = hw_attach_encode_request(&r, body, sizeof body, &len);
  if (rc)
    return rc;
  if ((rc = hw_jt808_session_send(s, HW_ATTACH_MSG_UPLOAD_REQUEST, body, len)))
    return rc;
  if (unique_out) {
    memcpy(unique_out, r.unique, HW_ATTACH_UNIQUE_LEN);
    unique_out[HW_ATTACH_UNIQUE_LEN] = 0;
  }
  char text[HW_ATTACH_ALARM_TEXT];
  hw_info("attach", hw_session_tid(s), "0x9208 sent: alarm %s, upload to %s:%u",
          hw_attach_alarm_no_text(alarm, text, sizeof text) ? "?" : text, r.server_ip, r.tcp_port);
  return 0;
}
