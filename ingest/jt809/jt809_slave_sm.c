/* JT/T 809 slave link decisions (see jt809_slave_sm.h). */
#include "jt809/jt809_slave_sm.h"

#include "jt809/jt809_msg.h"

hw_j9s_act hw_jt809_slave_step(int state, int is_2019, uint32_t center, uint8_t *frame,
                               size_t len, uint8_t *code, const char **why) {
  hw_jt809_header h;
  const uint8_t *body;
  size_t blen;
  *code = 0xff;
  *why = NULL;
  /* Plain only: the platform has no reason to encrypt answers with empty bodies; an encrypted
   * one is refused like any other broken frame. */
  if (hw_jt809_open(frame, len, is_2019, NULL, &h, &body, &blen)) {
    *why = "impossible or encrypted header";
    return HW_J9S_END;
  }
  if (h.center_id != center) {
    *why = "frame naming another access code";
    return HW_J9S_END;
  }
  uint8_t result;
  switch (h.msg_id) {
  case HW_JT809_DOWN_CONNECT_RSP:
    if (state != HW_J9S_SM_LOGIN) {
      *why = "0x9002 unasked";
      return HW_J9S_END;
    }
    if (hw_jt809_parse_u8(body, blen, &result)) {
      *why = "0x9002 malformed";
      return HW_J9S_END;
    }
    if (result == HW_JT809_SLAVE_OK)
      return HW_J9S_UP;
    *why = result == HW_JT809_SLAVE_BAD_VERIFY ? "refused: verify code wrong (0x9002 1)"
           : result == HW_JT809_SLAVE_BUSY     ? "refused: busy (0x9002 2)"
                                               : "refused (0x9002)";
    return HW_J9S_END;
  case HW_JT809_DOWN_LINKTEST_RSP:
    if (state != HW_J9S_SM_UP) {
      *why = "0x9006 before login";
      return HW_J9S_END;
    }
    return HW_J9S_ALIVE;
  case HW_JT809_DOWN_DISCONNECT_RSP:
    *why = "logged out";
    return HW_J9S_END;
  case HW_JT809_UP_CLOSELINK_INFORM:
    *why = "platform closes the links (0x1008)";
    return HW_J9S_END;
  case HW_JT809_UP_DISCONNECT_INFORM:
    if (hw_jt809_parse_u8(body, blen, code))
      *code = 0xff;
    return HW_J9S_NOTE;
  default:
    if (state != HW_J9S_SM_UP) {
      *why = "message before 0x9002";
      return HW_J9S_END;
    }
    return HW_J9S_IGNORE;
  }
}
