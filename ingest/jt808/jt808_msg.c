#include "jt808/jt808_msg.h"

#include <string.h>

#include "jt808/jt808_internal.h"

/* ---- 0x0100 register ---------------------------------------------------------------------- */

typedef struct {
  uint16_t version;
  uint8_t maker, model, tid; /* field widths */
} hw_jt808_reg_layout;

static const hw_jt808_reg_layout hw_jt808_reg_2011 = {2011, 5, 8, 7};
static const hw_jt808_reg_layout hw_jt808_reg_2013 = {2013, 5, 20, 7};
static const hw_jt808_reg_layout hw_jt808_reg_2019 = {2019, 11, 30, 30};

static int hw_jt808_plate_colour_ok(uint8_t c) { return c <= 5 || c == 9 || (c >= 91 && c <= 94); }

static int hw_jt808_reg_read(const hw_jt808_reg_layout *l, int check_colour, const uint8_t *body,
                             size_t len, hw_jt808_register *out) {
  size_t fixed = 4u + l->maker + l->model + l->tid + 1u;
  const uint8_t *p = body + 4;
  int rc;

  memset(out, 0, sizeof *out);
  if (len < fixed)
    return -EBADMSG;
  out->plate_colour = body[fixed - 1];
  if (check_colour && !hw_jt808_plate_colour_ok(out->plate_colour))
    return -EBADMSG;
  rc = hw_jt808__gbk(body + fixed, len - fixed, out->plate, sizeof out->plate);
  if (rc)
    return rc;
  out->version = l->version;
  out->province = hw_jt808__be16(body);
  out->city = hw_jt808__be16(body + 2);
  hw_jt808__ascii(p, l->maker, out->maker, sizeof out->maker);
  p += l->maker;
  hw_jt808__ascii(p, l->model, out->model, sizeof out->model);
  p += l->model;
  hw_jt808__ascii(p, l->tid, out->terminal_id, sizeof out->terminal_id);
  return 0;
}

int hw_jt808_parse_register(const hw_jt808_header *h, const uint8_t *body, size_t len,
                            hw_jt808_register *out) {
  int rc13 = -EBADMSG, rc11;

  if (h->is_2019)
    return hw_jt808_reg_read(&hw_jt808_reg_2019, 0, body, len, out);
  /* 2011 and 2013 share the header: see the plausibility rule in jt808_msg.h. */
  if (len >= 37) {
    rc13 = hw_jt808_reg_read(&hw_jt808_reg_2013, 1, body, len, out);
    if (rc13 == 0)
      return 0;
  }
  rc11 = hw_jt808_reg_read(&hw_jt808_reg_2011, 1, body, len, out);
  if (rc11 == 0)
    return 0;
  return len >= 37 ? rc13 : rc11;
}

/* ---- 0x0102 authenticate ------------------------------------------------------------------ */

static size_t hw_jt808_rtrim_nul(const uint8_t *p, size_t n) {
  while (n > 0 && p[n - 1] == 0)
    n--;
  return n;
}

int hw_jt808_parse_auth(const hw_jt808_header *h, const uint8_t *body, size_t len,
                        hw_jt808_auth *out) {
  memset(out, 0, sizeof *out);
  if (h->is_2019 && len >= 1 && (size_t)1 + body[0] + 15 + 20 == len) {
    size_t n = body[0];
    out->version = 2019;
    out->code = body + 1;
    out->code_len = hw_jt808_rtrim_nul(body + 1, n);
    hw_jt808__ascii(body + 1 + n, 15, out->imei, sizeof out->imei);
    hw_jt808__ascii(body + 1 + n + 15, 20, out->software, sizeof out->software);
    return 0;
  }
  out->version = 2013;
  out->code = body;
  out->code_len = hw_jt808_rtrim_nul(body, len);
  return 0;
}

/* ---- 0x0001, 0x0002, 0x0003 --------------------------------------------------------------- */

int hw_jt808_parse_terminal_response(const uint8_t *body, size_t len,
                                     hw_jt808_terminal_response *out) {
  memset(out, 0, sizeof *out);
  if (len < 5)
    return -EBADMSG;
  out->reply_flow = hw_jt808__be16(body);
  out->reply_id = hw_jt808__be16(body + 2);
  out->result = body[4];
  return 0;
}

int hw_jt808_parse_empty(const uint8_t *body, size_t len) {
  (void)body;
  (void)len;
  return 0;
}

/* ---- 0x0702 driver identity --------------------------------------------------------------- */

/* BCD[4] YYYYMMDD as an integer; -EBADMSG on a bad nibble. */
static int hw_jt808_bcd_date(const uint8_t *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int b = hw_jt808__bcd(p[i]);
    if (b < 0)
      return -EBADMSG;
    v = v * 100 + (uint32_t)b;
  }
  *out = v;
  return 0;
}

static int hw_jt808_driver_2013(const hw_jt808_header *h, const uint8_t *body, size_t len,
                                hw_jt808_driver *out) {
  const uint8_t *p = body + 8, *end = body + len;
  size_t n;
  int rc;

  if (len < 7 || (body[0] != 1 && body[0] != 2))
    return -EBADMSG;
  if (hw_jt808__bcd_time(body + 1, &out->time_ms))
    return -EBADMSG;
  out->version = h->is_2019 ? 2019 : 2013;
  out->status = body[0];
  if (out->status == 2)
    return 0; /* card removed: nothing else is defined */
  if (len < 8)
    return -EBADMSG;
  out->ic_result = body[7];
  if (out->ic_result != 0)
    return 0; /* the card could not be read */

  if (end - p < 1)
    return -EBADMSG;
  n = *p++;
  if ((size_t)(end - p) < n + 20 + 1)
    return -EBADMSG;
  rc = hw_jt808__gbk(p, n, out->name, sizeof out->name);
  if (rc)
    return rc;
  p += n;
  hw_jt808__ascii(p, 20, out->certificate, sizeof out->certificate);
  p += 20;
  n = *p++;
  if ((size_t)(end - p) < n + 4)
    return -EBADMSG;
  rc = hw_jt808__gbk(p, n, out->authority, sizeof out->authority);
  if (rc)
    return rc;
  p += n;
  if (hw_jt808_bcd_date(p, &out->expiry))
    return -EBADMSG;
  p += 4;
  if (end - p >= 20)
    hw_jt808__ascii(p, 20, out->id_number, sizeof out->id_number);
  out->has_identity = 1;
  return 0;
}

static int hw_jt808_driver_2011(const uint8_t *body, size_t len, hw_jt808_driver *out) {
  size_t n, m;
  const uint8_t *p = body;
  int rc;

  if (len < 1)
    return -EBADMSG;
  n = body[0];
  if (len < 1 + n + 20 + 40 + 1)
    return -EBADMSG;
  m = body[1 + n + 60];
  if (len != 1 + n + 60 + 1 + m)
    return -EBADMSG;
  p++;
  rc = hw_jt808__gbk(p, n, out->name, sizeof out->name);
  if (rc)
    return rc;
  p += n;
  hw_jt808__ascii(p, 20, out->id_number, sizeof out->id_number);
  p += 20;
  hw_jt808__ascii(p, 40, out->certificate, sizeof out->certificate);
  p += 41;
  rc = hw_jt808__gbk(p, m, out->authority, sizeof out->authority);
  if (rc)
    return rc;
  out->version = 2011;
  out->status = 1;
  out->has_identity = 1;
  return 0;
}

int hw_jt808_parse_driver(const hw_jt808_header *h, const uint8_t *body, size_t len,
                          hw_jt808_driver *out) {
  int rc13, rc11;

  memset(out, 0, sizeof *out);
  rc13 = hw_jt808_driver_2013(h, body, len, out);
  if (rc13 == 0 || h->is_2019)
    return rc13;
  memset(out, 0, sizeof *out);
  rc11 = hw_jt808_driver_2011(body, len, out);
  if (rc11 == 0)
    return 0;
  memset(out, 0, sizeof *out);
  /* Report the failure of the layout the body claims to be. */
  return len >= 1 && (body[0] == 1 || body[0] == 2) ? rc13 : rc11;
}

/* ---- replies ------------------------------------------------------------------------------ */

int hw_jt808_encode_platform_response(uint8_t *out, size_t cap, size_t *out_len,
                                      const hw_jt808_header *peer, uint16_t flow,
                                      uint16_t reply_flow, uint16_t reply_id, uint8_t result) {
  uint8_t body[5];
  hw_jt808__put16(body, reply_flow);
  hw_jt808__put16(body + 2, reply_id);
  body[4] = result;
  return hw_jt808_build(out, cap, out_len, peer, HW_JT808_MSG_PLATFORM_RESPONSE, flow, body,
                        sizeof body);
}

int hw_jt808_encode_register_response(uint8_t *out, size_t cap, size_t *out_len,
                                      const hw_jt808_header *peer, uint16_t flow,
                                      uint16_t reply_flow, uint8_t result, const uint8_t *code,
                                      size_t code_len) {
  uint8_t body[HW_JT808_BODY_MAX];
  size_t n = 3;

  hw_jt808__put16(body, reply_flow);
  body[2] = result;
  if (result == HW_JT808_REG_OK) {
    if (code_len > sizeof body - n)
      return -EMSGSIZE;
    if (code_len)
      memcpy(body + n, code, code_len);
    n += code_len;
  }
  return hw_jt808_build(out, cap, out_len, peer, HW_JT808_MSG_REGISTER_RESPONSE, flow, body, n);
}
