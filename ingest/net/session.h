/* A client connection, whatever its protocol. The server owns sessions: it accepts them, reads
 * into one loop-wide buffer and hands the bytes to the protocol, times out idle ones and those
 * that do not authenticate in time, bounds what an unauthenticated one may hold, pauses reading
 * for backpressure and shares reading fairly after it, and frees them after close. A protocol
 * keeps its own state in the memory right after struct hw_session (proto->state_size bytes). */
#ifndef HW_SESSION_H
#define HW_SESSION_H

#include <uv.h>

#include "base/ack.h"
#include "registry/terminal.h"

struct hw_server;
typedef struct hw_session hw_session;

typedef struct hw_proto {
  const char *name;  /* log component: "pb", "jt808" */
  size_t state_size; /* protocol state appended to the session */
  /* Bytes received; valid during the call only. A negative return closes the session (the
   * protocol has already told the client why, if it could). */
  int (*on_data)(hw_session *s, const uint8_t *data, size_t len);
  /* Fixes the session submitted are durable; ack->token/kind are what the session queued. */
  void (*on_durable)(hw_session *s, const hw_ack_ref *ack);
  /* The server is about to close the session: tell the client why (idle, replaced, shutdown). */
  void (*on_closing)(hw_session *s, int reason);
  /* The session is closed; release protocol state (not the session itself). */
  void (*on_close)(hw_session *s);
  /* Bytes of input the protocol holds for the session between reads (a partial frame, messages
   * queued behind a pending look-up). Before authentication the server closes a session holding
   * more than hw_session_preauth_limit(). NULL: the protocol never holds input. */
  size_t (*held_bytes)(const hw_session *s);
} hw_proto;

/* Why the server closes a session (on_closing). */
enum {
  HW_CLOSE_IDLE = 1,
  HW_CLOSE_REPLACED,
  HW_CLOSE_SHUTDOWN,
  HW_CLOSE_SLOW_READER,
  HW_CLOSE_AUTH_TIMEOUT,   /* not authenticated within auth_timeout_s */
  HW_CLOSE_PREAUTH_BUFFER, /* held more than preauth_buffer bytes before authentication */
};

struct hw_source;

struct hw_session {
  uv_tcp_t tcp;               /* first: the uv handle's data points back at the session */
  struct hw_server *server;
  const hw_proto *proto;
  hw_terminal *term;          /* bound after authentication, else NULL */
  uint32_t gen;               /* term->session_gen when bound */
  uint8_t closing;
  uint8_t reading;
  uint8_t yielded;            /* reading stopped until the loop's next turn (fair share) */
  uint32_t write_queued;      /* bytes handed to uv_write and not yet written */
  uint64_t last_rx_ms;        /* loop time of the last byte received */
  uint64_t opened_active_ms;  /* server's unpaused clock at accept: the auth deadline's start */
  hw_session *prev, *next;    /* server's session list, least recently read first */
  hw_session *uprev, *unext;  /* server's unauthenticated sessions, oldest first */
  struct hw_source *source;   /* its address's count of unauthenticated sessions; NULL once bound */
  char peer[48];              /* "ip:port" for logs */
  /* protocol state follows (proto->state_size bytes, zeroed) */
};

static inline void *hw_session_state(hw_session *s) { return (void *)(s + 1); }

/* Sends bytes; copies what the socket does not take at once. Returns 0 or a negative code (the
 * session is then being closed: e.g. the client stopped reading and the queue is over its limit). */
int hw_session_write(hw_session *s, const uint8_t *data, size_t len) HW_MUST_CHECK;

/* Closes the session (idempotent); on_close runs, then the memory is freed. */
void hw_session_close(hw_session *s);

/* Binds the session to terminal t: an older session of t is told it was replaced and closed. */
void hw_session_bind(hw_session *s, hw_terminal *t);

/* The reference that brings an ack back to s (bound to a terminal) once what it queued now is
 * durable. Sinks carry it opaquely; hw_session_deliver_ack interprets it. */
static inline hw_ack_ref hw_session_ack_ref(const hw_session *s, uint32_t kind, uint64_t token) {
  hw_ack_ref a = {.term = s->term, .session_gen = s->gen, .kind = kind, .token = token};
  return a;
}

/* Delivers a durable ack to the session that owns ack->term now, through its protocol's
 * on_durable, if that is still the session that queued it (same session_gen) and it is not
 * closing. Returns 1 when delivered, 0 when dropped: the terminal reconnected or went away, and
 * learns its fixes are durable from the ack to their resend. The caller (the pipeline) never
 * looks inside sessions. */
int hw_session_deliver_ack(const hw_ack_ref *ack);

/* Bytes of input an unauthenticated session may hold (the server's preauth_buffer). */
size_t hw_session_preauth_limit(const hw_session *s);

/* A protocol refuses input that would make an unauthenticated session hold more than
 * hw_session_preauth_limit() (e.g. a frame announced larger): counts it, logs it (rate-limited)
 * and returns the negative code for on_data to return, which closes the session. */
int hw_session_preauth_exceeded(hw_session *s, size_t would_hold) HW_MUST_CHECK;

/* The terminal id for log lines, or NULL before authentication. */
static inline const char *hw_session_tid(const hw_session *s) { return s->term ? s->term->id : NULL; }

#endif
