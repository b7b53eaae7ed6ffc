/* PROXY protocol v2 header: a pure, bounded parser (proxy_v2.h). */
#include "net/proxy_v2.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t hw_pv2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

int hw_proxy_v2_parse(const uint8_t *buf, size_t len, hw_proxy_v2 *out) {
  size_t sig = len < sizeof hw_pv2_sig ? len : sizeof hw_pv2_sig;
  if (memcmp(buf, hw_pv2_sig, sig) != 0)
    return -EPROTO;
  if (len > 12 && (buf[12] >> 4 != 2 || (buf[12] & 0x0F) > 1))
    return -EPROTO; /* version 2 only; commands LOCAL and PROXY */
  if (len > 13) {
    uint8_t fam = buf[13] >> 4, tr = buf[13] & 0x0F;
    if (fam > 3 || tr == 2 || tr > 2)
      return -EPROTO; /* a datagram, or an unknown family or transport, on a TCP listener */
  }
  if (len < HW_PROXY_V2_HEADER)
    return 0;
  size_t body = (size_t)buf[14] << 8 | buf[15];
  size_t total = HW_PROXY_V2_HEADER + body;
  if (total > HW_PROXY_V2_MAX)
    return -EMSGSIZE;
  uint8_t cmd = buf[12] & 0x0F, fam = buf[13] >> 4;
  size_t need = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
  if (body < need)
    return -EPROTO; /* checked before waiting for the body: a short one is wrong at once */
  if (len < total)
    return 0;
  hw_proxy_v2 p;
  memset(&p, 0, sizeof p);
  p.command = cmd;
  const uint8_t *a = buf + HW_PROXY_V2_HEADER;
  if (cmd == 1 && fam == 1) {
    struct sockaddr_in *s = (struct sockaddr_in *)&p.src, *d = (struct sockaddr_in *)&p.dst;
    s->sin_family = d->sin_family = AF_INET;
    memcpy(&s->sin_addr, a, 4);
    memcpy(&d->sin_addr, a + 4, 4);
    memcpy(&s->sin_port, a + 8, 2); /* both in network order, as sockaddr wants them */
    memcpy(&d->sin_port, a + 10, 2);
    p.has_addr = 1;
  } else if (cmd == 1 && fam == 2) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p.src, *d = (struct sockaddr_in6 *)&p.dst;
    s->sin6_family = d->sin6_family = AF_INET6;
    memcpy(&s->sin6_addr, a, 16);
    memcpy(&d->sin6_addr, a + 16, 16);
    memcpy(&s->sin6_port, a + 32, 2);
    memcpy(&d->sin6_port, a + 34, 2);
    p.has_addr = 1;
  }
  if (out)
    *out = p;
  return (int)total;
}

void hw_proxy_v2_format(const hw_proxy_v2 *p, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (p->has_addr && p->src.ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&p->src;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    port = ntohs(s->sin_port);
  } else if (p->has_addr && p->src.ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&p->src;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    port = ntohs(s->sin6_port);
  } else {
    snprintf(out, cap, "?");
    return;
  }
  snprintf(out, cap, "%s:%d", ip, port);
}
