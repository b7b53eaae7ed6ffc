#include "pbclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

pbc *pbc_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  pbc *c = calloc(1, sizeof *c);
  c->fd = fd;
  return c;
}

void pbc_close(pbc *c) {
  if (!c)
    return;
  close(c->fd);
  free(c);
}

int pbc_send_raw(pbc *c, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int pbc_send(pbc *c, const Haulwatch__V1__ClientMessage *m) {
  size_t n = haulwatch__v1__client_message__get_packed_size(m);
  uint8_t *buf = malloc(n + 10);
  size_t k = 0;
  uint64_t v = n;
  while (v >= 0x80) {
    buf[k++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  buf[k++] = (uint8_t)v;
  haulwatch__v1__client_message__pack(m, buf + k);
  int rc = pbc_send_raw(c, buf, k + n);
  free(buf);
  return rc;
}

int pbc_hello(pbc *c, const char *terminal_id, const char *token) {
  Haulwatch__V1__Hello h = HAULWATCH__V1__HELLO__INIT;
  h.terminal_id = (char *)terminal_id;
  h.token = (char *)token;
  h.client_version = "pbclient-test";
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO;
  m.hello = &h;
  return pbc_send(c, &m);
}

int pbc_report(pbc *c, Haulwatch__V1__Fix *const *fixes, size_t n) {
  Haulwatch__V1__Report r = HAULWATCH__V1__REPORT__INIT;
  r.n_fixes = n;
  r.fixes = (Haulwatch__V1__Fix **)fixes;
  Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT;
  m.report = &r;
  return pbc_send(c, &m);
}

/* Decodes one frame from the buffer if complete. */
static Haulwatch__V1__ServerMessage *pbc_take(pbc *c, int *err) {
  uint64_t n = 0;
  size_t k = 0;
  int shift = 0;
  for (;;) {
    if (k == c->len)
      return NULL;
    uint8_t b = c->buf[k++];
    n |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80))
      break;
    if (shift > 63) {
      *err = 1;
      return NULL;
    }
  }
  if (c->len - k < n)
    return NULL;
  Haulwatch__V1__ServerMessage *m = haulwatch__v1__server_message__unpack(NULL, n, c->buf + k);
  if (!m)
    *err = 1;
  memmove(c->buf, c->buf + k + n, c->len - k - n);
  c->len -= k + n;
  return m;
}

static int pbc_fill(pbc *c, int timeout_ms) {
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  if (poll(&p, 1, timeout_ms) <= 0)
    return -1;
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (n < 0 && errno == ECONNRESET)
    return 0; /* closed by the server, abortively */
  if (n <= 0)
    return n == 0 ? 0 : -1;
  c->len += (size_t)n;
  return 1;
}

Haulwatch__V1__ServerMessage *pbc_recv(pbc *c, int timeout_ms) {
  for (;;) {
    int err = 0;
    Haulwatch__V1__ServerMessage *m = pbc_take(c, &err);
    if (m || err)
      return m;
    if (pbc_fill(c, timeout_ms) <= 0)
      return NULL;
  }
}

int64_t pbc_wait_ack(pbc *c, uint64_t want, int timeout_ms) {
  int64_t best = -1;
  while (best < (int64_t)want) {
    Haulwatch__V1__ServerMessage *m = pbc_recv(c, timeout_ms);
    if (!m)
      return best;
    if (m->msg_case == HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK && (int64_t)m->ack->seq > best)
      best = (int64_t)m->ack->seq;
    haulwatch__v1__server_message__free_unpacked(m, NULL);
  }
  return best;
}

int pbc_wait_eof(pbc *c, int timeout_ms) {
  for (;;) {
    int err = 0;
    Haulwatch__V1__ServerMessage *m = pbc_take(c, &err);
    if (m) {
      haulwatch__v1__server_message__free_unpacked(m, NULL);
      continue;
    }
    int r = pbc_fill(c, timeout_ms);
    if (r == 0)
      return 1;
    if (r < 0)
      return 0;
  }
}
