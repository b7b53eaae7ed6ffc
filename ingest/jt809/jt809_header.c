#include <string.h>
#include "jt809/jt809_header.h"

#include "jt809/jt809_internal.h"

int hw_jt809_header_parse(const uint8_t *frame, size_t len, int is_2019, hw_jt809_header *h,
                          const uint8_t **body, size_t *body_len) {
  size_t hl = is_2019 ? HW_JT809_HEADER_2019 : HW_JT809_HEADER_2011;
  memset(h, 0, sizeof *h);
  if (len < hl)
    return -EPROTO;
  h->msg_len = hw_jt809__be32(frame);
  h->sn = hw_jt809__be32(frame + 4);
  h->msg_id = hw_jt809__be16(frame + 8);
  h->center_id = hw_jt809__be32(frame + 10);
  memcpy(h->version, frame + 14, 3);
  h->encrypted = frame[17];
  h->key = hw_jt809__be32(frame + 18);
  if (is_2019)
    h->utc_s = hw_jt809__be64(frame + 22);
  h->is_2019 = is_2019 ? 1 : 0;
  h->header_len = (uint8_t)hl;
  /* The deframer has checked this already; a caller handing frames from elsewhere has not. */
  if (h->msg_len != (uint64_t)len + 4)
    return -EPROTO;
  if (h->encrypted > 1)
    return -EPROTO;
  *body = frame + hl;
  *body_len = len - hl;
  return 0;
}

int hw_jt809_open(uint8_t *frame, size_t len, int is_2019, const hw_jt809_cipher *cipher,
                  hw_jt809_header *h, const uint8_t **body, size_t *body_len) {
  int rc = hw_jt809_header_parse(frame, len, is_2019, h, body, body_len);
  if (rc)
    return rc;
  if (h->encrypted) {
    if (!cipher)
      return -ENOKEY;
    hw_jt809_crypt(cipher, h->key, frame + h->header_len, *body_len);
  }
  return 0;
}

/* Appends raw byte c escaped, updating the CRC. */
static inline int hw_jt809_emit(uint8_t *out, size_t cap, size_t *o, uint16_t *crc, uint8_t c) {
  *crc = hw_jt809_crc16(*crc, &c, 1);
  return hw_jt809__put_escaped(out, cap, o, c);
}

int hw_jt809_build(uint8_t *out, size_t cap, size_t *out_len, const hw_jt809_header *h,
                   const hw_jt809_cipher *cipher, const uint8_t *body, size_t body_len) {
  uint8_t hdr[HW_JT809_HEADER_2019];
  size_t hl = h->is_2019 ? HW_JT809_HEADER_2019 : HW_JT809_HEADER_2011;
  uint64_t total = 1 + (uint64_t)hl + body_len + 2 + 1;
  uint16_t crc = 0xFFFF, c;
  uint32_t key = h->key ? h->key : 1;
  size_t o = 0;
  int rc;

  if (h->encrypted > 1)
    return -EINVAL;
  if (h->encrypted && !cipher)
    return -ENOKEY;
  if (total > UINT32_MAX)
    return -EMSGSIZE;
  hw_jt809__put32(hdr, (uint32_t)total);
  hw_jt809__put32(hdr + 4, h->sn);
  hw_jt809__put16(hdr + 8, h->msg_id);
  hw_jt809__put32(hdr + 10, h->center_id);
  memcpy(hdr + 14, h->version, 3);
  hdr[17] = h->encrypted;
  hw_jt809__put32(hdr + 18, h->key);
  if (h->is_2019)
    hw_jt809__put64(hdr + 22, h->utc_s);

  if (cap < 1)
    return -ENOSPC;
  out[o++] = 0x5B;
  for (size_t i = 0; i < hl; i++)
    if ((rc = hw_jt809_emit(out, cap, &o, &crc, hdr[i])))
      return rc;
  for (size_t i = 0; i < body_len; i++) {
    uint8_t b = body[i];
    if (h->encrypted)
      b ^= hw_jt809_crypt_step(cipher, &key);
    if ((rc = hw_jt809_emit(out, cap, &o, &crc, b)))
      return rc;
  }
  c = crc;
  if ((rc = hw_jt809_emit(out, cap, &o, &crc, (uint8_t)(c >> 8))) ||
      (rc = hw_jt809_emit(out, cap, &o, &crc, (uint8_t)c)))
    return rc;
  if (o >= cap)
    return -ENOSPC;
  out[o++] = 0x5D;
  *out_len = o;
  return 0;
}

void hw_jt809_header_init(hw_jt809_header *h, uint32_t sn, uint16_t msg_id, uint32_t center_id,
                          int is_2019, uint64_t utc_s) {
  memset(h, 0, sizeof *h);
  h->sn = sn;
  h->msg_id = msg_id;
  h->center_id = center_id;
  h->version[0] = 1;
  h->is_2019 = (uint8_t)(is_2019 != 0);
  h->utc_s = is_2019 ? utc_s : 0;
}
