/* JT/T 809 slave link: the connection the centre opens back to a subordinate platform after its
 * main-link login, to the address and port the platform gave in 0x1001 (notes: docs/jt809.md).
 *
 * One per logged-in main link, owned by that session. States: waiting (backoff) -> connecting
 * (uv_tcp_connect) -> logging in (0x9001 with the verify code of our 0x1002, awaiting 0x9002)
 * -> up (0x9005 every heartbeat; every answer counts as life). Each step is bounded by the
 * timeout setting; a refusal (0x9002 not 0), a bad frame, a silent peer or a closed socket take
 * the link down and a new attempt follows after a backoff that doubles from backoff_min to
 * backoff_max (reset once a link comes up). Nothing blocks the loop: connects are asynchronous,
 * writes are queued by libuv and a peer that does not read (queue above 64 KiB) is dropped.
 *
 * The address is the platform's word: it is refused unless it is a numeric unicast address,
 * and loopback, link-local, unspecified, multicast and broadcast addresses are refused unless
 * the platform's row allows local addresses (platforms.slave_local_ok). A refused address is not
 * retried (the next login may give another).
 *
 * Up and down times go to platform_links (link 'slave') through the centre's query connection,
 * with the daemon's clock at the event. The owner hears of every up and down through on_change
 * (the main session sends 0x9007 when the slave link breaks). */
#ifndef HW_JT809_SLAVE_H
#define HW_JT809_SLAVE_H

#include <uv.h>

#include "base/common.h"

struct hw_jt809_centre;
typedef struct hw_jt809_slave hw_jt809_slave;

typedef struct hw_jt809_slave_params {
  const char *platform; /* copied */
  uint32_t center;      /* access code: in every header */
  int is_2019;
  uint32_t verify;      /* verify code of our 0x1002 */
  const char *ip;       /* as 0x1001 gave it; copied */
  uint16_t port;
  int local_ok;         /* platforms.slave_local_ok */
  /* up: 1 when 0x9002 accepted, 0 when an up link went down (why: static text). */
  void (*on_change)(void *arg, int up, const char *why);
  void *arg;
} hw_jt809_slave_params;

/* Checks the address policy: ip numeric IPv4/IPv6, port not 0, not local unless local_ok. Fills
 * *sa. 0, or -EINVAL with *why (static text). Pure. */
int hw_jt809_slave_addr(const char *ip, uint16_t port, int local_ok,
                        struct sockaddr_storage *sa, const char **why) HW_MUST_CHECK;

/* Starts connecting at once. -EINVAL when the address is refused (logged), -ENOMEM. */
int hw_jt809_slave_start(hw_jt809_slave **out, uv_loop_t *loop, struct hw_jt809_centre *centre,
                         const hw_jt809_slave_params *p) HW_MUST_CHECK;

/* 1 while the link is up (0x9002 accepted). */
int hw_jt809_slave_up(const hw_jt809_slave *sl);

/* Sends msg_id with body, plain, on the up link; *sn (may be NULL) is the header serial used.
 * -ENOTCONN when not up, -ENOBUFS when the peer does not read (the link is dropped). */
int hw_jt809_slave_send(hw_jt809_slave *sl, uint16_t msg_id, const uint8_t *body, size_t len,
                        uint32_t *sn) HW_MUST_CHECK;

/* Ends the link (logout: sends 0x9003 first when up; why: the down reason, static text) and
 * frees sl once its handles are closed. on_change is not called any more. */
void hw_jt809_slave_stop(hw_jt809_slave *sl, int logout, const char *why);

/* For the fuzz target: the bytes the peer sent, as if read from the socket. May drop the link. */
void hw_jt809_slave_feed(hw_jt809_slave *sl, const uint8_t *data, size_t len);

#endif
