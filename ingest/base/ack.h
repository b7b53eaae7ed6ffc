/* An acknowledgement owed to a session once some fixes are durable. Sinks carry these opaquely
 * and hand them back in order; only the session layer interprets them. */
#ifndef HW_ACK_H
#define HW_ACK_H

#include <stdint.h>

struct hw_terminal;

typedef struct hw_ack_ref {
  struct hw_terminal *term;    /* registry record: lives as long as the daemon */
  uint32_t session_gen; /* must still equal term->session_gen for the ack to be delivered */
  uint32_t kind;        /* protocol-specific (e.g. JT/T 808 message id being answered) */
  uint64_t token;       /* protocol-specific: protobuf seq, JT/T 808 flow number */
  int64_t recv_ms;      /* receipt of the first fix it covers, UTC ms (0: unknown): ack latency */
} hw_ack_ref;

#endif
