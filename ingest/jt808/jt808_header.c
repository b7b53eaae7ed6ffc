#include "jt808/jt808_header.h"

#include <string.h>

#include "jt808/jt808_internal.h"

#define ATTR_LEN_MASK 0x03FF
#define ATTR_SUBPKG 0x2000
#define ATTR_2019 0x4000

/* BCD phone to digits; -EPROTO on a nibble above 9. */
static int hw_jt808_phone(const uint8_t *p, size_t n, hw_jt808_header *h) {
  for (size_t i = 0; i < n; i++) {
    uint8_t hi = p[i] >> 4, lo = p[i] & 0x0F;
    if (hi > 9 || lo > 9)
      return -EPROTO;
    h->phone[2 * i] = (char)('0' + hi);
    h->phone[2 * i + 1] = (char)('0' + lo);
  }
  h->phone[2 * n] = '\0';
  memcpy(h->phone_bcd, p, n);
  h->phone_bcd_len = (uint8_t)n;
  return 0;
}

int hw_jt808_header_parse(const uint8_t *frame, size_t len, hw_jt808_header *h,
                          const uint8_t **body) {
  size_t items, hl;
  const uint8_t *p = frame;
  int rc;

  memset(h, 0, sizeof *h);
  if (len < HW_JT808_HEADER_MIN)
    return -EPROTO;
  h->msg_id = hw_jt808__be16(p);
  h->attr = hw_jt808__be16(p + 2);
  h->body_len = h->attr & ATTR_LEN_MASK;
  h->encryption = (uint8_t)((h->attr >> 10) & 0x07);
  h->subpackaged = (h->attr & ATTR_SUBPKG) != 0;
  items = h->subpackaged ? 4 : 0;

  /* The layout is decided by the total size, which must match exactly either way. */
  if ((h->attr & ATTR_2019) && len == 17 + items + h->body_len) {
    h->is_2019 = 1;
    h->version = p[4];
    rc = hw_jt808_phone(p + 5, 10, h);
    p += 15;
  } else if (len == 12 + items + h->body_len) {
    h->flag_mismatch = (h->attr & ATTR_2019) != 0;
    rc = hw_jt808_phone(p + 4, 6, h);
    p += 10;
  } else {
    return -EPROTO;
  }
  if (rc)
    return rc;
  h->flow = hw_jt808__be16(p);
  p += 2;
  if (h->subpackaged) {
    h->pkg_total = hw_jt808__be16(p);
    h->pkg_index = hw_jt808__be16(p + 2);
    p += 4;
    if (h->pkg_total == 0 || h->pkg_index == 0 || h->pkg_index > h->pkg_total)
      return -EPROTO;
  }
  hl = (size_t)(p - frame);
  h->header_len = (uint8_t)hl;
  *body = p;
  return 0;
}

int hw_jt808_header_init(hw_jt808_header *h, int is_2019, uint8_t version, const char *phone) {
  size_t width = is_2019 ? 20 : 12;
  size_t n = strlen(phone);
  char digits[HW_JT808_PHONE_MAX + 1];

  memset(h, 0, sizeof *h);
  if (n == 0 || n > width)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (phone[i] < '0' || phone[i] > '9')
      return -EINVAL;
  memset(digits, '0', width - n);
  memcpy(digits + width - n, phone, n);
  for (size_t i = 0; i < width / 2; i++)
    h->phone_bcd[i] = (uint8_t)((digits[2 * i] - '0') << 4 | (digits[2 * i + 1] - '0'));
  memcpy(h->phone, digits, width);
  h->phone[width] = '\0';
  h->phone_bcd_len = (uint8_t)(width / 2);
  h->is_2019 = is_2019 != 0;
  h->version = is_2019 ? version : 0;
  h->header_len = is_2019 ? 17 : 12;
  return 0;
}

int hw_jt808_build(uint8_t *out, size_t cap, size_t *out_len, const hw_jt808_header *peer,
                   uint16_t msg_id, uint16_t flow, const uint8_t *body, size_t body_len) {
  uint8_t raw[HW_JT808_FRAME_MAX];
  size_t n = 0;
  uint16_t attr = (uint16_t)body_len;

  if (body_len > HW_JT808_BODY_MAX)
    return -EMSGSIZE;
  if (peer->phone_bcd_len != (peer->is_2019 ? 10 : 6))
    return -EINVAL;
  if (peer->is_2019)
    attr |= ATTR_2019;
  hw_jt808__put16(raw, msg_id);
  hw_jt808__put16(raw + 2, attr);
  n = 4;
  if (peer->is_2019)
    raw[n++] = peer->version;
  memcpy(raw + n, peer->phone_bcd, peer->phone_bcd_len);
  n += peer->phone_bcd_len;
  hw_jt808__put16(raw + n, flow);
  n += 2;
  if (body_len)
    memcpy(raw + n, body, body_len);
  n += body_len;
  return hw_jt808_frame_encode(raw, n, out, cap, out_len);
}
