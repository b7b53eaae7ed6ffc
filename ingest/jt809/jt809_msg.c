#include "jt809/jt809_msg.h"

#include "jt809/jt809_internal.h"

/* An ASCII field of n bytes (n <= 64) read into out. */
static void hw_jt809_rascii(hw_jt809__r *r, size_t n, char *out, size_t cap) {
  const uint8_t *p = hw_jt809__take(r, n);
  hw_jt809__ascii(p, r->err ? 0 : n, out, cap);
}

/* A GBK field of n bytes (n <= 64) read into out as UTF-8. */
static int hw_jt809_rgbk(hw_jt809__r *r, size_t n, char *out, size_t cap) {
  const uint8_t *p = hw_jt809__take(r, n);
  if (r->err) {
    out[0] = '\0';
    return r->err;
  }
  return hw_jt809_text(p, n, out, cap);
}

/* An object id of n bytes: GBK when it is, else shown as ASCII (never an error: it is an id). */
static void hw_jt809_robject(hw_jt809__r *r, size_t n, char *out, size_t cap) {
  const uint8_t *p = hw_jt809__take(r, n);
  if (r->err || hw_jt809_text(p, n, out, cap) != 0)
    hw_jt809__ascii(p, r->err ? 0 : n, out, cap);
}

/* Variable text: length u32 then that many bytes, borrowed. */
static void hw_jt809_rinfo(hw_jt809__r *r, const uint8_t **info, uint32_t *info_len) {
  *info_len = hw_jt809__r32(r);
  *info = NULL;
  if (r->err) {
    *info_len = 0;
    return;
  }
  if (hw_jt809__left(r) < *info_len) {
    r->err = -EBADMSG; /* a count larger than the body: never trusted */
    *info_len = 0;
    return;
  }
  *info = r->p;
  r->p += *info_len;
}

static int hw_jt809_done(hw_jt809__w *w, size_t *out_len) {
  if (w->err)
    return w->err;
  *out_len = w->len;
  return 0;
}

int hw_jt809_parse_login(const uint8_t *body, size_t len, int is_2019, hw_jt809_login *out) {
  hw_jt809__r r = {body, body + len, 0};
  memset(out, 0, sizeof *out);
  out->user_id = hw_jt809__r32(&r);
  memcpy(out->password, hw_jt809__take(&r, 8), 8);
  out->password_len = 8;
  while (out->password_len && out->password[out->password_len - 1] == 0)
    out->password_len--;
  if (is_2019)
    out->center_id = hw_jt809__r32(&r);
  hw_jt809_rascii(&r, 32, out->down_ip, sizeof out->down_ip);
  out->down_port = hw_jt809__r16(&r);
  return r.err;
}

int hw_jt809_encode_login(const hw_jt809_login *m, int is_2019, uint8_t *out, size_t cap,
                          size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  uint8_t pw[8] = {0};
  if (m->password_len > 8)
    return -EOVERFLOW;
  memcpy(pw, m->password, m->password_len);
  hw_jt809__w32(&w, m->user_id);
  hw_jt809__wbytes(&w, pw, 8);
  if (is_2019)
    hw_jt809__w32(&w, m->center_id);
  hw_jt809__wfixed(&w, m->down_ip, 32);
  hw_jt809__w16(&w, m->down_port);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_login_rsp(const uint8_t *body, size_t len, uint8_t *result,
                             uint32_t *verify_code) {
  hw_jt809__r r = {body, body + len, 0};
  *result = hw_jt809__r8(&r);
  *verify_code = hw_jt809__r32(&r);
  return r.err;
}

int hw_jt809_encode_login_rsp(uint8_t result, uint32_t verify_code, uint8_t *out, size_t cap,
                              size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  hw_jt809__w8(&w, result);
  hw_jt809__w32(&w, verify_code);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_logout(const uint8_t *body, size_t len, hw_jt809_login *out) {
  hw_jt809__r r = {body, body + len, 0};
  memset(out, 0, sizeof *out);
  out->user_id = hw_jt809__r32(&r);
  memcpy(out->password, hw_jt809__take(&r, 8), 8);
  out->password_len = 8;
  while (out->password_len && out->password[out->password_len - 1] == 0)
    out->password_len--;
  return r.err;
}

int hw_jt809_encode_logout(const hw_jt809_login *m, uint8_t *out, size_t cap, size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  uint8_t pw[8] = {0};
  if (m->password_len > 8)
    return -EOVERFLOW;
  memcpy(pw, m->password, m->password_len);
  hw_jt809__w32(&w, m->user_id);
  hw_jt809__wbytes(&w, pw, 8);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_u32(const uint8_t *body, size_t len, uint32_t *v) {
  hw_jt809__r r = {body, body + len, 0};
  *v = hw_jt809__r32(&r);
  return r.err;
}

int hw_jt809_encode_u32(uint32_t v, uint8_t *out, size_t cap, size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  hw_jt809__w32(&w, v);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_u8(const uint8_t *body, size_t len, uint8_t *v) {
  hw_jt809__r r = {body, body + len, 0};
  *v = hw_jt809__r8(&r);
  return r.err;
}

int hw_jt809_encode_u8(uint8_t v, uint8_t *out, size_t cap, size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  hw_jt809__w8(&w, v);
  return hw_jt809_done(&w, out_len);
}

int64_t hw_jt809_utc_ms(uint64_t v) {
  if (v >= 100000000000ull)
    return v > (uint64_t)INT64_MAX ? 0 : (int64_t)v;
  return (int64_t)v * 1000;
}

int hw_jt809_has_vehicle(uint16_t msg_id, int is_2019) {
  switch (msg_id) {
  case HW_JT809_UP_EXG_MSG:
  case HW_JT809_DOWN_EXG_MSG:
    return 1;
  case HW_JT809_UP_WARN_MSG:
  case HW_JT809_DOWN_WARN_MSG:
    return !is_2019; /* 2019 moved the vehicle into the alarm bodies */
  default:
    return 0;
  }
}

int hw_jt809_parse_sub(const uint8_t *body, size_t len, int with_vehicle, hw_jt809_sub *out) {
  hw_jt809__r r = {body, body + len, 0};
  int rc;
  memset(out, 0, sizeof *out);
  if (with_vehicle) {
    out->has_vehicle = 1;
    const uint8_t *plate = hw_jt809__take(&r, 21);
    out->plate_colour = hw_jt809__r8(&r);
    out->data_type = hw_jt809__r16(&r);
    hw_jt809_rinfo(&r, &out->data, &out->data_len);
    if (r.err)
      return r.err;
    /* The plate last: a cut body is a framing fault that outranks bad text. */
    if ((rc = hw_jt809_text(plate, 21, out->plate, sizeof out->plate)))
      return rc;
    return 0;
  }
  out->data_type = hw_jt809__r16(&r);
  hw_jt809_rinfo(&r, &out->data, &out->data_len);
  return r.err;
}

int hw_jt809_encode_sub(int with_vehicle, const char *plate, uint8_t plate_colour,
                        uint16_t data_type, const uint8_t *data, size_t data_len, uint8_t *out,
                        size_t cap, size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  if (data_len > UINT32_MAX)
    return -EMSGSIZE;
  if (with_vehicle) {
    hw_jt809__wgbk(&w, plate, 21);
    hw_jt809__w8(&w, plate_colour);
  }
  hw_jt809__w16(&w, data_type);
  hw_jt809__w32(&w, (uint32_t)data_len);
  hw_jt809__wbytes(&w, data, data_len);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_query(const uint8_t *data, size_t len, uint16_t data_type, int is_2019,
                         hw_jt809_query *out) {
  hw_jt809__r r = {data, data + len, 0};
  int wide = is_2019 && data_type == 0x9301;
  memset(out, 0, sizeof *out);
  out->object_type = hw_jt809__r8(&r);
  hw_jt809_robject(&r, wide ? 20 : 12, out->object_id, sizeof out->object_id);
  if (wide)
    out->answer_time = hw_jt809__r8(&r);
  out->info_id = hw_jt809__r32(&r);
  hw_jt809_rinfo(&r, &out->info, &out->info_len);
  return r.err;
}

int hw_jt809_encode_query(const hw_jt809_query *q, uint16_t data_type, int is_2019, uint8_t *out,
                          size_t cap, size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  int wide = is_2019 && data_type == 0x9301;
  hw_jt809__w8(&w, q->object_type);
  hw_jt809__wgbk(&w, q->object_id, wide ? 20 : 12);
  if (wide)
    hw_jt809__w8(&w, q->answer_time);
  hw_jt809__w32(&w, q->info_id);
  hw_jt809__w32(&w, q->info_len);
  hw_jt809__wbytes(&w, q->info, q->info_len);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_answer(const uint8_t *data, size_t len, int is_2019, hw_jt809_answer *out) {
  hw_jt809__r r = {data, data + len, 0};
  memset(out, 0, sizeof *out);
  out->object_type = hw_jt809__r8(&r);
  if (!is_2019) {
    hw_jt809_robject(&r, 12, out->object_id, sizeof out->object_id);
    out->info_id = hw_jt809__r32(&r);
    hw_jt809_rinfo(&r, &out->info, &out->info_len);
    return r.err;
  }
  const uint8_t *who = hw_jt809__take(&r, 16);
  hw_jt809_rascii(&r, 20, out->responder_tel, sizeof out->responder_tel);
  hw_jt809_robject(&r, 20, out->object_id, sizeof out->object_id);
  out->src_data_type = hw_jt809__r16(&r);
  out->src_sn = hw_jt809__r32(&r);
  hw_jt809_rinfo(&r, &out->info, &out->info_len);
  if (r.err)
    return r.err;
  return hw_jt809_text(who, 16, out->responder, sizeof out->responder);
}

int hw_jt809_encode_answer(const hw_jt809_answer *a, int is_2019, uint8_t *out, size_t cap,
                           size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  hw_jt809__w8(&w, a->object_type);
  if (!is_2019) {
    hw_jt809__wgbk(&w, a->object_id, 12);
    hw_jt809__w32(&w, a->info_id);
  } else {
    hw_jt809__wgbk(&w, a->responder, 16);
    hw_jt809__wfixed(&w, a->responder_tel, 20);
    hw_jt809__wgbk(&w, a->object_id, 20);
    hw_jt809__w16(&w, a->src_data_type);
    hw_jt809__w32(&w, a->src_sn);
  }
  hw_jt809__w32(&w, a->info_len);
  hw_jt809__wbytes(&w, a->info, a->info_len);
  return hw_jt809_done(&w, out_len);
}

/* The 2019 0x1402 with `times` u64 times after the warn type (3 per the public suites, 2 in
 * real traffic); -EBADMSG unless the text ends exactly at the end of the data. */
static int hw_jt809_alarm_2019(const uint8_t *data, size_t len, int times, hw_jt809_alarm *out) {
  hw_jt809__r r = {data, data + len, 0};
  memset(out, 0, sizeof *out);
  out->times = (uint8_t)times;
  hw_jt809_rascii(&r, 11, out->src_platform, sizeof out->src_platform);
  out->warn_type = hw_jt809__r16(&r);
  out->warn_time = hw_jt809__r64(&r);
  if (times == 3)
    out->start_time = hw_jt809__r64(&r);
  out->end_time = hw_jt809__r64(&r);
  const uint8_t *plate = hw_jt809__take(&r, 21);
  out->plate_colour = hw_jt809__r8(&r);
  hw_jt809_rascii(&r, 11, out->dst_platform, sizeof out->dst_platform);
  out->route_id = hw_jt809__r32(&r);
  hw_jt809_rinfo(&r, &out->info, &out->info_len);
  if (r.err)
    return r.err;
  if (hw_jt809__left(&r))
    return -EBADMSG;
  /* the plate field of real frames may hold an id in ASCII: shown, not refused */
  if (hw_jt809_text(plate, 21, out->plate, sizeof out->plate))
    hw_jt809__ascii(plate, 21, out->plate, sizeof out->plate);
  return 0;
}

int hw_jt809_parse_alarm(const uint8_t *data, size_t len, int is_2019, hw_jt809_alarm *out) {
  hw_jt809__r r = {data, data + len, 0};
  memset(out, 0, sizeof *out);
  if (!is_2019) {
    out->warn_src = hw_jt809__r8(&r);
    out->warn_type = hw_jt809__r16(&r);
    out->warn_time = hw_jt809__r64(&r);
    out->info_id = hw_jt809__r32(&r);
    hw_jt809_rinfo(&r, &out->info, &out->info_len);
    return r.err;
  }
  int rc = hw_jt809_alarm_2019(data, len, 3, out);
  if (rc == -EBADMSG)
    rc = hw_jt809_alarm_2019(data, len, 2, out);
  return rc;
}

int hw_jt809_encode_alarm(const hw_jt809_alarm *a, int is_2019, uint8_t *out, size_t cap,
                          size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  if (!is_2019) {
    hw_jt809__w8(&w, a->warn_src);
    hw_jt809__w16(&w, a->warn_type);
    hw_jt809__w64(&w, a->warn_time);
    hw_jt809__w32(&w, a->info_id);
  } else {
    hw_jt809__wfixed(&w, a->src_platform, 11);
    hw_jt809__w16(&w, a->warn_type);
    hw_jt809__w64(&w, a->warn_time);
    if (a->times != 2)
      hw_jt809__w64(&w, a->start_time);
    hw_jt809__w64(&w, a->end_time);
    hw_jt809__wgbk(&w, a->plate, 21);
    hw_jt809__w8(&w, a->plate_colour);
    hw_jt809__wfixed(&w, a->dst_platform, 11);
    hw_jt809__w32(&w, a->route_id);
  }
  hw_jt809__w32(&w, a->info_len);
  hw_jt809__wbytes(&w, a->info, a->info_len);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_supervise(const uint8_t *data, size_t len, hw_jt809_supervise *out) {
  hw_jt809__r r = {data, data + len, 0};
  int rc;
  memset(out, 0, sizeof *out);
  out->warn_src = hw_jt809__r8(&r);
  out->warn_type = hw_jt809__r16(&r);
  out->warn_time = hw_jt809__r64(&r);
  out->supervision_id = hw_jt809__r32(&r);
  out->deadline = hw_jt809__r64(&r);
  out->level = hw_jt809__r8(&r);
  if ((rc = hw_jt809_rgbk(&r, 16, out->supervisor, sizeof out->supervisor)) && r.err)
    return r.err;
  hw_jt809_rascii(&r, 20, out->tel, sizeof out->tel);
  hw_jt809_rascii(&r, 32, out->email, sizeof out->email);
  return r.err ? r.err : rc;
}

int hw_jt809_encode_supervise(const hw_jt809_supervise *s, uint8_t *out, size_t cap,
                              size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  hw_jt809__w8(&w, s->warn_src);
  hw_jt809__w16(&w, s->warn_type);
  hw_jt809__w64(&w, s->warn_time);
  hw_jt809__w32(&w, s->supervision_id);
  hw_jt809__w64(&w, s->deadline);
  hw_jt809__w8(&w, s->level);
  hw_jt809__wgbk(&w, s->supervisor, 16);
  hw_jt809__wfixed(&w, s->tel, 20);
  hw_jt809__wfixed(&w, s->email, 32);
  return hw_jt809_done(&w, out_len);
}

int hw_jt809_parse_supervise_rsp(const uint8_t *data, size_t len, uint32_t *supervision_id,
                                 uint8_t *result) {
  hw_jt809__r r = {data, data + len, 0};
  *supervision_id = hw_jt809__r32(&r);
  *result = hw_jt809__r8(&r);
  return r.err;
}

int hw_jt809_encode_supervise_rsp(uint32_t supervision_id, uint8_t result, uint8_t *out,
                                  size_t cap, size_t *out_len) {
  hw_jt809__w w = {out, cap, 0, 0};
  hw_jt809__w32(&w, supervision_id);
  hw_jt809__w8(&w, result);
  return hw_jt809_done(&w, out_len);
}
