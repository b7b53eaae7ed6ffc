/* The attachment protocol's bodies and its connection stream (attach_codec.h). */
#include "attach/attach_codec.h"

#include <stdio.h>
#include <string.h>

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

void hw_attach_alarm_no_read(const uint8_t *p, hw_attach_alarm_no *a) {
  memcpy(a->terminal, p, 7);
  memcpy(a->time_bcd, p + 7, 6);
  a->seq = p[13];
  a->count = p[14];
  a->reserved = p[15];
}

void hw_attach_alarm_no_write(const hw_attach_alarm_no *a, uint8_t *p) {
  memcpy(p, a->terminal, 7);
  memcpy(p + 7, a->time_bcd, 6);
  p[13] = a->seq;
  p[14] = a->count;
  p[15] = a->reserved;
}

int hw_attach_alarm_no_text(const hw_attach_alarm_no *a, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  char term[15];
  size_t k = 0, lo = 0, hi = 7;
  /* Padding (NUL or space) on either side is not part of the id. */
  while (lo < hi && (a->terminal[lo] == 0 || a->terminal[lo] == ' '))
    lo++;
  while (hi > lo && (a->terminal[hi - 1] == 0 || a->terminal[hi - 1] == ' '))
    hi--;
  for (size_t i = lo; i < hi; i++) {
    uint8_t c = a->terminal[i];
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
      term[k++] = (char)c;
    } else {
      term[k++] = hex[c >> 4];
      term[k++] = hex[c & 15];
    }
  }
  term[k] = 0;
  if (k == 0)
    return -EINVAL;
  char t[13];
  for (int i = 0; i < 6; i++) {
    int h = a->time_bcd[i] >> 4, l = a->time_bcd[i] & 15;
    if (h > 9 || l > 9)
      return -EINVAL;
    t[2 * i] = (char)('0' + h);
    t[2 * i + 1] = (char)('0' + l);
  }
  t[12] = 0;
  int n = snprintf(out, cap, "%s-%s-%u", term, t, a->seq);
  return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

int hw_attach_encode_request(const hw_attach_request *r, uint8_t *out, size_t cap, size_t *len) {
  size_t ip = strlen(r->server_ip);
  if (ip == 0 || ip > 255)
    return -EINVAL;
  size_t need = 1 + ip + 4 + HW_ATTACH_ALARM_NO_LEN + HW_ATTACH_UNIQUE_LEN + 16;
  if (cap < need)
    return -ENOSPC;
  uint8_t *p = out;
  *p++ = (uint8_t)ip;
  memcpy(p, r->server_ip, ip);
  p += ip;
  *p++ = (uint8_t)(r->tcp_port >> 8);
  *p++ = (uint8_t)r->tcp_port;
  *p++ = (uint8_t)(r->udp_port >> 8);
  *p++ = (uint8_t)r->udp_port;
  hw_attach_alarm_no_write(&r->alarm, p);
  p += HW_ATTACH_ALARM_NO_LEN;
  memcpy(p, r->unique, HW_ATTACH_UNIQUE_LEN);
  p += HW_ATTACH_UNIQUE_LEN;
  memset(p, 0, 16);
  p += 16;
  *len = (size_t)(p - out);
  return 0;
}

int hw_attach_parse_request(const uint8_t *body, size_t len, hw_attach_request *r) {
  memset(r, 0, sizeof *r);
  if (len < 1)
    return -EBADMSG;
  size_t ip = body[0];
  /* The reserved 16 bytes are optional here: some terminals' firmware lists end at the unique
   * number. */
  if (ip == 0 || ip >= sizeof r->server_ip || len < 1 + ip + 4 + HW_ATTACH_ALARM_NO_LEN + HW_ATTACH_UNIQUE_LEN)
    return -EBADMSG;
  const uint8_t *p = body + 1;
  memcpy(r->server_ip, p, ip);
  r->server_ip[ip] = 0;
  if (memchr(r->server_ip, 0, ip))
    return -EBADMSG;
  p += ip;
  r->tcp_port = (uint16_t)(p[0] << 8 | p[1]);
  r->udp_port = (uint16_t)(p[2] << 8 | p[3]);
  p += 4;
  hw_attach_alarm_no_read(p, &r->alarm);
  p += HW_ATTACH_ALARM_NO_LEN;
  memcpy(r->unique, p, HW_ATTACH_UNIQUE_LEN);
  return 0;
}

#define LIST_FIXED (7 + HW_ATTACH_ALARM_NO_LEN + HW_ATTACH_UNIQUE_LEN + 2)

int hw_attach_parse_list(const uint8_t *body, size_t len, hw_attach_list *out) {
  if (len < LIST_FIXED)
    return -EBADMSG;
  memcpy(out->terminal, body, 7);
  hw_attach_alarm_no_read(body + 7, &out->alarm);
  memcpy(out->unique, body + 7 + HW_ATTACH_ALARM_NO_LEN, HW_ATTACH_UNIQUE_LEN);
  out->info_type = body[LIST_FIXED - 2];
  out->count = body[LIST_FIXED - 1];
  size_t at = LIST_FIXED;
  for (unsigned i = 0; i < out->count; i++) {
    if (at >= len)
      return -EBADMSG;
    size_t n = body[at++];
    if (n == 0 || len - at < n + 4)
      return -EBADMSG;
    out->items[i].name = body + at;
    out->items[i].name_len = (uint8_t)n;
    out->items[i].size = be32(body + at + n);
    at += n + 4;
  }
  return at == len ? 0 : -EBADMSG;
}

int hw_attach_encode_list(const hw_attach_list *l, uint8_t *out, size_t cap, size_t *len) {
  if (cap < LIST_FIXED)
    return -ENOSPC;
  memcpy(out, l->terminal, 7);
  hw_attach_alarm_no_write(&l->alarm, out + 7);
  memcpy(out + 7 + HW_ATTACH_ALARM_NO_LEN, l->unique, HW_ATTACH_UNIQUE_LEN);
  out[LIST_FIXED - 2] = l->info_type;
  out[LIST_FIXED - 1] = l->count;
  size_t at = LIST_FIXED;
  for (unsigned i = 0; i < l->count; i++) {
    size_t n = l->items[i].name_len;
    if (n == 0)
      return -EINVAL;
    if (cap - at < 1 + n + 4)
      return -ENOSPC;
    out[at++] = (uint8_t)n;
    memcpy(out + at, l->items[i].name, n);
    put32(out + at + n, l->items[i].size);
    at += n + 4;
  }
  *len = at;
  return 0;
}

int hw_attach_parse_file(const uint8_t *body, size_t len, hw_attach_file *out) {
  if (len < 1)
    return -EBADMSG;
  size_t n = body[0];
  if (n == 0 || len != 1 + n + 1 + 4)
    return -EBADMSG;
  out->name = body + 1;
  out->name_len = (uint8_t)n;
  out->type = body[1 + n];
  out->size = be32(body + 2 + n);
  return 0;
}

int hw_attach_encode_file(const hw_attach_file *f, uint8_t *out, size_t cap, size_t *len) {
  size_t n = f->name_len;
  if (n == 0)
    return -EINVAL;
  if (cap < n + 6)
    return -ENOSPC;
  out[0] = (uint8_t)n;
  memcpy(out + 1, f->name, n);
  out[1 + n] = f->type;
  put32(out + 2 + n, f->size);
  *len = n + 6;
  return 0;
}

int hw_attach_encode_answer(const hw_attach_answer *a, uint8_t *out, size_t cap, size_t *len) {
  size_t n = a->file.name_len;
  if (n == 0)
    return -EINVAL;
  size_t need = 1 + n + 3 + (size_t)a->count * 8;
  if (cap < need)
    return -ENOSPC;
  uint8_t *p = out;
  *p++ = (uint8_t)n;
  memcpy(p, a->file.name, n);
  p += n;
  *p++ = a->file.type;
  *p++ = a->result;
  *p++ = a->count;
  for (unsigned i = 0; i < a->count; i++, p += 8) {
    put32(p, a->ranges[i].offset);
    put32(p + 4, a->ranges[i].length);
  }
  *len = need;
  return 0;
}

int hw_attach_parse_answer(const uint8_t *body, size_t len, hw_attach_answer *out) {
  if (len < 1)
    return -EBADMSG;
  size_t n = body[0];
  if (n == 0 || len < 1 + n + 3)
    return -EBADMSG;
  out->file.name = body + 1;
  out->file.name_len = (uint8_t)n;
  out->file.size = 0;
  out->file.type = body[1 + n];
  out->result = body[2 + n];
  out->count = body[3 + n];
  if (len != 4 + n + (size_t)out->count * 8)
    return -EBADMSG;
  const uint8_t *p = body + 4 + n;
  for (unsigned i = 0; i < out->count; i++, p += 8) {
    out->ranges[i].offset = be32(p);
    out->ranges[i].length = be32(p + 4);
  }
  return 0;
}

int hw_attach_encode_data_header(const uint8_t *name, size_t name_len, uint32_t offset,
                                 uint32_t length, uint8_t *out) {
  if (name_len == 0 || name_len > HW_ATTACH_DATA_NAME_LEN)
    return -EINVAL;
  put32(out, HW_ATTACH_DATA_MAGIC);
  memset(out + 4, 0, HW_ATTACH_DATA_NAME_LEN);
  memcpy(out + 4, name, name_len);
  put32(out + 54, offset);
  put32(out + 58, length);
  return 0;
}

void hw_attach_data_name(const uint8_t *p, const uint8_t **name, size_t *name_len) {
  size_t lo = 0, hi = HW_ATTACH_DATA_NAME_LEN;
  while (lo < hi && p[lo] == 0)
    lo++;
  while (hi > lo && p[hi - 1] == 0)
    hi--;
  *name = p + lo;
  *name_len = hi - lo;
}

/* Stream states. */
enum { ST_IDLE = 0, ST_JT808, ST_JT808_OPEN, ST_DATA_HDR, ST_DATA };

void hw_attach_stream_init(hw_attach_stream *s) {
  s->state = ST_IDLE;
  s->hlen = 0;
  s->left = 0;
  s->shared = 0;
  hw_jt808_deframer_init(&s->deframer);
}

int hw_attach_stream_busy(const hw_attach_stream *s) { return s->state != ST_IDLE; }

int hw_attach_stream_feed(hw_attach_stream *s, const uint8_t *data, size_t len,
                          const hw_attach_stream_cb *cb, void *arg) {
  size_t i = 0;
  int rc;
  while (i < len) {
    switch (s->state) {
    case ST_IDLE:
      if (data[i] == 0x7E) {
        s->state = ST_JT808_OPEN;
        if ((rc = hw_jt808_deframer_feed(&s->deframer, data + i, 1, cb->frame, arg)))
          return rc;
        i++;
      } else if (data[i] == 0x30) {
        s->state = ST_DATA_HDR;
        s->hlen = 0;
      } else if (s->shared) {
        /* 7E a 7E b 7E: the delimiter that closed the last frame also opens this one. No
         * attachment message id starts with 0x30, so this never hides a data frame. */
        s->state = ST_JT808;
      } else {
        return -EPROTO;
      }
      s->shared = 0;
      break;
    case ST_JT808_OPEN:
    case ST_JT808: {
      /* Up to and including the closing 7E; a 7E right after the opening one (a doubled
       * delimiter) opens the frame again. */
      size_t j = i;
      while (j < len && data[j] != 0x7E)
        j++;
      int closes = j < len && (s->state == ST_JT808 || j > i);
      size_t n = j < len ? j - i + 1 : j - i;
      if (n > 0 && j > i)
        s->state = ST_JT808;
      if ((rc = hw_jt808_deframer_feed(&s->deframer, data + i, n, cb->frame, arg)))
        return rc;
      i += n;
      if (closes) {
        s->state = ST_IDLE;
        s->shared = 1;
      }
      break;
    }
    case ST_DATA_HDR: {
      size_t n = HW_ATTACH_DATA_HEADER - s->hlen;
      if (n > len - i)
        n = len - i;
      memcpy(s->hdr + s->hlen, data + i, n);
      s->hlen = (uint8_t)(s->hlen + n);
      i += n;
      /* The magic is checked as soon as it is in: garbage is refused at its 4th byte. */
      if (s->hlen >= 4 && be32(s->hdr) != HW_ATTACH_DATA_MAGIC)
        return -EPROTO;
      if (s->hlen < HW_ATTACH_DATA_HEADER)
        break;
      const uint8_t *name;
      size_t nl;
      hw_attach_data_name(s->hdr + 4, &name, &nl);
      uint32_t off = be32(s->hdr + 54);
      s->left = be32(s->hdr + 58);
      if ((rc = cb->data_begin(arg, name, nl, off, s->left)))
        return rc;
      s->state = ST_DATA;
      if (s->left == 0) {
        s->state = ST_IDLE;
        if ((rc = cb->data_end(arg)))
          return rc;
      }
      break;
    }
    case ST_DATA: {
      size_t n = len - i;
      if (n > s->left)
        n = s->left;
      if ((rc = cb->data(arg, data + i, n)))
        return rc;
      i += n;
      s->left -= (uint32_t)n;
      if (s->left == 0) {
        s->state = ST_IDLE;
        if ((rc = cb->data_end(arg)))
          return rc;
      }
      break;
    }
    }
  }
  return 0;
}
