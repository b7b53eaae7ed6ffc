#include "jt808client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jt808/jt808_header.h"

j8c *j8c_connect(int port, const char *phone) {
  size_t pl = strlen(phone);
  if (pl != 12 && pl != 20)
    return NULL;
  j8c *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (c->fd >= 0)
      close(c->fd);
    free(c);
    return NULL;
  }
  memcpy(c->phone, phone, pl + 1);
  c->is_2019 = pl == 20;
  c->flow = 1;
  return c;
}

void j8c_close(j8c *c) {
  if (!c)
    return;
  close(c->fd);
  free(c);
}

int j8c_send_raw(j8c *c, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint8_t bcd(int v) { return (uint8_t)((v / 10) << 4 | (v % 10)); }

/* Header, body, checksum; then escaped between two 7E. */
static size_t frame(const j8c *c, uint16_t id, uint16_t flow, int pkg, uint16_t total,
                    uint16_t index, const uint8_t *body, size_t len, int corrupt, uint8_t *out,
                    size_t cap) {
  uint8_t raw[2048];
  size_t n = 0;
  uint16_t attr = (uint16_t)(len & 0x3FF);
  if (pkg)
    attr |= 1u << 13;
  if (c->is_2019)
    attr |= 1u << 14;
  put16(raw, id);
  put16(raw + 2, attr);
  n = 4;
  if (c->is_2019)
    raw[n++] = 1; /* protocol version */
  size_t digits = strlen(c->phone);
  for (size_t i = 0; i < digits; i += 2)
    raw[n++] = (uint8_t)((c->phone[i] - '0') << 4 | (c->phone[i + 1] - '0'));
  put16(raw + n, flow);
  n += 2;
  if (pkg) {
    put16(raw + n, total);
    put16(raw + n + 2, index);
    n += 4;
  }
  if (len)
    memcpy(raw + n, body, len);
  n += len;
  uint8_t x = 0;
  for (size_t i = 0; i < n; i++)
    x ^= raw[i];
  raw[n++] = corrupt ? (uint8_t)(x ^ 0x5A) : x;
  size_t o = 0;
  if (cap < 2 * n + 2)
    return 0;
  out[o++] = 0x7E;
  for (size_t i = 0; i < n; i++) {
    if (raw[i] == 0x7E) {
      out[o++] = 0x7D;
      out[o++] = 0x02;
    } else if (raw[i] == 0x7D) {
      out[o++] = 0x7D;
      out[o++] = 0x01;
    } else {
      out[o++] = raw[i];
    }
  }
  out[o++] = 0x7E;
  return o;
}

size_t j8c_frame(const j8c *c, uint16_t id, uint16_t flow, const uint8_t *body, size_t len,
                 int corrupt_checksum, uint8_t *out, size_t cap) {
  return frame(c, id, flow, 0, 0, 0, body, len, corrupt_checksum, out, cap);
}

int j8c_send_flow(j8c *c, uint16_t id, uint16_t flow, const uint8_t *body, size_t len) {
  uint8_t out[4200];
  size_t n = frame(c, id, flow, 0, 0, 0, body, len, 0, out, sizeof out);
  return n && j8c_send_raw(c, out, n) == 0 ? flow : -1;
}

int j8c_send(j8c *c, uint16_t id, const uint8_t *body, size_t len) {
  return j8c_send_flow(c, id, c->flow++, body, len);
}

int j8c_send_pkg(j8c *c, uint16_t id, uint16_t total, uint16_t index, const uint8_t *body,
                 size_t len) {
  uint8_t out[4200];
  uint16_t flow = c->flow++;
  size_t n = frame(c, id, flow, 1, total, index, body, len, 0, out, sizeof out);
  return n && j8c_send_raw(c, out, n) == 0 ? flow : -1;
}

int j8c_send_empty(j8c *c, uint16_t id) {
  hw_jt808_header h;
  uint8_t out[HW_JT808_WIRE_MAX];
  size_t n;
  uint16_t flow = c->flow++;
  if (hw_jt808_header_init(&h, c->is_2019, 1, c->phone) ||
      hw_jt808_build(out, sizeof out, &n, &h, id, flow, NULL, 0) || j8c_send_raw(c, out, n))
    return -1;
  return flow;
}

/* One frame out of c->buf when complete: 1 taken, 0 need more, -1 malformed. Bytes before the
 * first 7E are skipped. */
static int take(j8c *c, j8c_msg *m) {
  size_t start = 0;
  while (start < c->len && c->buf[start] != 0x7E)
    start++;
  size_t end = start + 1;
  while (end < c->len && c->buf[end] != 0x7E)
    end++;
  if (end >= c->len)
    return 0;
  uint8_t raw[2048];
  size_t n = 0;
  int bad = 0;
  for (size_t i = start + 1; i < end && n < sizeof raw; i++) {
    if (c->buf[i] == 0x7D) {
      if (i + 1 >= end || (c->buf[i + 1] != 1 && c->buf[i + 1] != 2)) {
        bad = 1;
        break;
      }
      raw[n++] = c->buf[++i] == 1 ? 0x7D : 0x7E;
    } else {
      raw[n++] = c->buf[i];
    }
  }
  memmove(c->buf, c->buf + end + 1, c->len - end - 1);
  c->len -= end + 1;
  if (bad || n < 13)
    return -1;
  uint8_t x = 0;
  for (size_t i = 0; i + 1 < n; i++)
    x ^= raw[i];
  if (x != raw[n - 1])
    return -1;
  n--;
  memset(m, 0, sizeof *m);
  m->id = (uint16_t)(raw[0] << 8 | raw[1]);
  m->attr = (uint16_t)(raw[2] << 8 | raw[3]);
  m->is_2019 = (m->attr >> 14) & 1;
  size_t p = 4, digits = m->is_2019 ? 10 : 6;
  if (m->is_2019)
    p++;
  if (n < p + digits + 2)
    return -1;
  for (size_t i = 0; i < digits; i++) {
    m->phone[2 * i] = (char)('0' + (raw[p + i] >> 4));
    m->phone[2 * i + 1] = (char)('0' + (raw[p + i] & 15));
  }
  p += digits;
  m->flow = (uint16_t)(raw[p] << 8 | raw[p + 1]);
  p += 2;
  m->len = n - p;
  if (m->len != (m->attr & 0x3FFu) || m->len > sizeof m->body)
    return -1;
  memcpy(m->body, raw + p, m->len);
  return 1;
}

int j8c_recv(j8c *c, j8c_msg *m, int timeout_ms) {
  for (;;) {
    int r = take(c, m);
    if (r)
      return r > 0 ? 0 : -1;
    if (c->len == sizeof c->buf)
      return -1;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
      return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
      return -1;
    c->len += (size_t)n;
  }
}

int j8c_wait_response(j8c *c, uint16_t flow, uint16_t id, int timeout_ms) {
  j8c_msg m;
  while (j8c_recv(c, &m, timeout_ms) == 0) {
    if (m.id != 0x8001 || m.len < 5)
      continue;
    if ((uint16_t)(m.body[0] << 8 | m.body[1]) == flow && (uint16_t)(m.body[2] << 8 | m.body[3]) == id)
      return m.body[4];
  }
  return -1;
}

int j8c_register(j8c *c, const char *device_id, uint8_t colour, const uint8_t *plate_gbk,
                 size_t plate_len, char *code, size_t cap) {
  uint8_t body[256];
  size_t n = j8c_body_register_dev(body, c->is_2019, device_id, colour, plate_gbk, plate_len);
  int flow = j8c_send(c, 0x0100, body, n);
  j8c_msg m;
  code[0] = 0;
  if (flow < 0)
    return -1;
  while (j8c_recv(c, &m, 10000) == 0) {
    if (m.id != 0x8100 || m.len < 3 || (uint16_t)(m.body[0] << 8 | m.body[1]) != flow)
      continue;
    if (m.body[2] == 0) {
      if (m.len - 3 >= cap)
        return -1;
      memcpy(code, m.body + 3, m.len - 3);
      code[m.len - 3] = 0;
    } else if (m.len != 3) {
      return -1; /* a refusal carries no code */
    }
    return m.body[2];
  }
  return -1;
}

int j8c_wait_eof(j8c *c, int timeout_ms) {
  for (;;) {
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
      return 0;
    uint8_t tmp[4096];
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return 1;
    if (n < 0)
      return 0;
  }
}

/* ---- bodies ---- */

static size_t put_field(uint8_t *out, const char *s, size_t width) {
  memset(out, 0, width);
  size_t n = strlen(s);
  memcpy(out, s, n < width ? n : width);
  return width;
}

size_t j8c_body_register(uint8_t *out, int is_2019, uint8_t colour, const uint8_t *plate_gbk,
                         size_t plate_len) {
  return j8c_body_register_dev(out, is_2019, "T000001", colour, plate_gbk, plate_len);
}

size_t j8c_body_register_dev(uint8_t *out, int is_2019, const char *device_id, uint8_t colour,
                             const uint8_t *plate_gbk, size_t plate_len) {
  size_t n = 0;
  put16(out, 44);
  put16(out + 2, 300);
  n = 4;
  n += put_field(out + n, "HWTST", is_2019 ? 11 : 5);
  n += put_field(out + n, "HW-808-MODEL", is_2019 ? 30 : 20);
  n += put_field(out + n, device_id, is_2019 ? 30 : 7);
  out[n++] = colour;
  memcpy(out + n, plate_gbk, plate_len);
  return n + plate_len;
}

size_t j8c_body_auth(uint8_t *out, int is_2019, const char *code) {
  size_t cl = strlen(code), n = 0;
  if (!is_2019) {
    memcpy(out, code, cl);
    return cl;
  }
  out[n++] = (uint8_t)cl;
  memcpy(out + n, code, cl);
  n += cl;
  n += put_field(out + n, "861234567890123", 15);
  n += put_field(out + n, "HW-SW-1.0", 20);
  return n;
}

size_t j8c_body_location(uint8_t *out, const j8c_loc *l) {
  put32(out, l->alarm);
  put32(out + 4, l->status);
  put32(out + 8, l->lat_e6);
  put32(out + 12, l->lon_e6);
  put16(out + 16, l->alt_m);
  put16(out + 18, l->speed_dkmh);
  put16(out + 20, l->heading);
  out[22] = bcd(l->yy);
  out[23] = bcd(l->mo);
  out[24] = bcd(l->dd);
  out[25] = bcd(l->hh);
  out[26] = bcd(l->mi);
  out[27] = bcd(l->ss);
  size_t n = 28;
  if (l->vendor_item) {
    out[n++] = 0xE1;
    out[n++] = 3;
    out[n++] = 0x7E; /* a byte that needs escaping, inside a vendor item */
    out[n++] = 0x7D;
    out[n++] = 0x00;
  }
  if (l->has_odometer) {
    out[n++] = 0x01;
    out[n++] = 4;
    put32(out + n, l->odometer_hm);
    n += 4;
  }
  if (l->broken_item) {
    out[n++] = 0x30;
    out[n++] = 9; /* announces 9 bytes, only 1 follows */
    out[n++] = 20;
  }
  return n;
}

size_t j8c_body_batch(uint8_t *out, uint8_t type, const j8c_loc *l, size_t count) {
  put16(out, (uint16_t)count);
  out[2] = type;
  size_t n = 3;
  for (size_t i = 0; i < count; i++) {
    size_t len = j8c_body_location(out + n + 2, &l[i]);
    put16(out + n, (uint16_t)len);
    n += 2 + len;
  }
  return n;
}

size_t j8c_body_driver(uint8_t *out, int inserted, const char *name, const char *certificate,
                       const int t[6]) {
  size_t n = 0;
  out[n++] = inserted ? 0x01 : 0x02;
  for (int i = 0; i < 6; i++)
    out[n++] = bcd(t[i]);
  if (!inserted)
    return n;
  out[n++] = 0; /* IC card read result: ok */
  size_t nl = strlen(name);
  out[n++] = (uint8_t)nl;
  memcpy(out + n, name, nl);
  n += nl;
  n += put_field(out + n, certificate, 20);
  const char *auth = "Beijing Transport";
  out[n++] = (uint8_t)strlen(auth);
  memcpy(out + n, auth, strlen(auth));
  n += strlen(auth);
  out[n++] = 0x20; /* expiry 2030-12-31 */
  out[n++] = 0x30;
  out[n++] = 0x12;
  out[n++] = 0x31;
  return n;
}
