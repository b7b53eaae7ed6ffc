/* JT/T 809 login decision and unregistered-vehicle ids (see jt809_login.h). */
#include "jt809/jt809_login.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/text.h"

/* Text address to 16 bytes, IPv4 as IPv4-mapped IPv6, so "1.2.3.4" equals "::ffff:1.2.3.4"
 * (a dual-stack listener reports the latter). 0 or -EINVAL. */
static int hw_jt809_addr16(const char *s, uint8_t out[16]) {
  uint8_t v4[4];
  if (inet_pton(AF_INET, s, v4) == 1) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
    return 0;
  }
  return inet_pton(AF_INET6, s, out) == 1 ? 0 : -EINVAL;
}

int hw_jt809_login_check(const hw_jt809_platform *p, uint32_t header_center,
                         const hw_jt809_login *m, const char *peer_ip, const char **reason) {
  if (!p || p->center_id != header_center) {
    *reason = "unknown access code";
    return HW_JT809_LOGIN_BAD_ACCESS_CODE;
  }
  if (p->disabled) {
    *reason = "platform disabled";
    return HW_JT809_LOGIN_BAD_ACCESS_CODE;
  }
  /* 2019 repeats the access code in the body; 0 is what a 2011 body leaves it as. */
  if (m->center_id && m->center_id != header_center) {
    *reason = "access code in body differs from header";
    return HW_JT809_LOGIN_BAD_ACCESS_CODE;
  }
  if (p->allow_addr[0]) {
    uint8_t want[16], got[16];
    if (hw_jt809_addr16(p->allow_addr, want) || !peer_ip || hw_jt809_addr16(peer_ip, got) ||
        memcmp(want, got, 16)) {
      *reason = "source address not allowed";
      return HW_JT809_LOGIN_BAD_IP;
    }
  }
  if (m->user_id != p->user_id) {
    *reason = "unknown user id";
    return HW_JT809_LOGIN_NO_USER;
  }
  if (sodium_init() < 0) {
    *reason = "libsodium unavailable";
    return HW_JT809_LOGIN_OTHER;
  }
  if (m->password_len == 0 || m->password_len > sizeof m->password ||
      crypto_pwhash_str_verify(p->password_hash, (const char *)m->password, m->password_len)) {
    *reason = "wrong password";
    return HW_JT809_LOGIN_BAD_PASSWORD;
  }
  *reason = NULL;
  return HW_JT809_LOGIN_OK;
}

int hw_jt809_vehicle_tid(uint32_t access_code, const char *plate, uint8_t colour, char *out,
                         size_t cap) {
  size_t n = strlen(plate);
  if (n == 0 || n > HW_JT809_PLATE_MAX || !hw_utf8_valid(plate, n))
    return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)plate[i];
    if (c < 0x20 || c == 0x7f || c == ':')
      return -EINVAL;
  }
  int w = snprintf(out, cap, "jt809:%u:%s:%u", access_code, plate, colour);
  if (w < 0 || (size_t)w >= cap) {
    if (cap)
      out[0] = 0;
    return -EOVERFLOW;
  }
  return 0;
}

int hw_jt809_peek(const uint8_t *frame, size_t len, uint16_t *msg_id, uint32_t *center_id) {
  if (len < HW_JT809_HEADER_2011)
    return -EPROTO;
  *msg_id = (uint16_t)(frame[8] << 8 | frame[9]);
  *center_id = (uint32_t)frame[10] << 24 | (uint32_t)frame[11] << 16 | (uint32_t)frame[12] << 8 |
               frame[13];
  return 0;
}
