/* The PROXY protocol version 2 header (HAProxy's proxy-protocol.txt, section 2.2), which a TCP
 * front such as HAProxy (`send-proxy-v2`) sends as the first bytes of every connection it opens to
 * a daemon, so the daemon sees the terminal's address rather than the front's.
 *
 *   12 bytes  signature 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
 *    1 byte   version (high nibble, 2) and command (low nibble: 0 LOCAL, 1 PROXY)
 *    1 byte   address family (high nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) and transport
 *             (low nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM)
 *    2 bytes  length of what follows, big-endian: the addresses (INET 12 bytes: source address,
 *             destination address, source port, destination port; INET6 36; UNIX 216), then
 *             type-length-value extensions, which are skipped unread.
 * LOCAL (the front's own health checks) and UNSPEC or UNIX addresses carry no client address:
 * the connection's own stays. Only STREAM (or UNSPEC) transport is accepted on a TCP listener.
 *
 * Pure, bounded and hostile-input safe: reads only buf[0..len), never more than
 * HW_PROXY_V2_MAX bytes in all, and decides "not a v2 header" from the first byte that differs
 * from the signature, without waiting for more. */
#ifndef HW_PROXY_V2_H
#define HW_PROXY_V2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/common.h"

#define HW_PROXY_V2_HEADER 16
/* Longest header accepted: the UNIX addresses (216) and room for the extensions a front may add
 * (unique id, TLS details); HAProxy's own limit for a received header is larger, ours protects a
 * connection's memory before it is authenticated. */
#define HW_PROXY_V2_MAX 1024

typedef struct hw_proxy_v2 {
  uint8_t command;                 /* 0 LOCAL, 1 PROXY */
  uint8_t has_addr;                /* 1: src and dst hold the client's connection (INET, INET6) */
  struct sockaddr_storage src;     /* the terminal's address and port, when has_addr */
  struct sockaddr_storage dst;     /* the address it connected to (the front's), when has_addr */
} hw_proxy_v2;

/* Parses a header at the start of buf. Returns its length (> 0: the bytes to skip; out filled),
 * 0 when buf is a valid beginning of one but too short (read more: at most HW_PROXY_V2_MAX in
 * all), or a negative code: -EPROTO not a PROXY v2 header (signature, version, command, family
 * or transport wrong, or addresses shorter than the family needs), -EMSGSIZE longer than
 * HW_PROXY_V2_MAX. out may be NULL. */
int hw_proxy_v2_parse(const uint8_t *buf, size_t len, hw_proxy_v2 *out) HW_MUST_CHECK;

/* "ip:port" of the source address (has_addr), for logs; "?" otherwise. */
void hw_proxy_v2_format(const hw_proxy_v2 *p, char *out, size_t cap);

#endif
