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

/* What a protocol session counts for the metrics, by the listener it came in on (per server, so
 * per loop: metrics add the servers' counters). Reasons come from small fixed sets: a label each,
 * never a terminal or a peer. */
typedef enum {
  HW_BAD_FRAME_CHECKSUM = 0, /* JT/T 808 XOR */
  HW_BAD_FRAME_ESCAPE,       /* JT/T 808 0x7d escape */
  HW_BAD_FRAME_OVERSIZE,     /* over the protocol's frame limit */
  HW_BAD_FRAME_LENGTH,       /* protobuf varint length prefix malformed */
  HW_BAD_FRAME_HEADER,       /* JT/T 808 header impossible */
  HW_BAD_FRAME_DECODE,       /* reserved: a protobuf frame that is not a message is refused as
                              * bad_message (the code the client is told) */
  HW_BAD_FRAME__COUNT
} hw_bad_frame_reason;

typedef enum {
  HW_REFUSE_NOT_AUTHENTICATED = 0, /* data before a successful Hello / registration */
  HW_REFUSE_AUTH_FAILED,           /* wrong token, unknown terminal */
  HW_REFUSE_BAD_MESSAGE,           /* a message the protocol forbids here (connection closed) */
  HW_REFUSE_INVALID_FIX,           /* a fix refused for its content; the connection lives on */
  HW_REFUSE_INTERNAL,              /* our failure (out of memory, queue refused) */
  HW_REFUSE__COUNT
} hw_refuse_reason;

const char *hw_bad_frame_reason_name(int r); /* "checksum", ... */
const char *hw_refuse_reason_name(int r);    /* "not_authenticated", ... */

typedef struct hw_proto_counters {
  uint64_t frames;                           /* good frames (messages) received */
  uint64_t fixes;                            /* fixes handed to the pipeline */
  uint64_t bad_frames[HW_BAD_FRAME__COUNT];
  uint64_t refusals[HW_REFUSE__COUNT];
} hw_proto_counters;

/* Why the server closes a session (on_closing). */
enum {
  HW_CLOSE_IDLE = 1,
  HW_CLOSE_REPLACED,
  HW_CLOSE_SHUTDOWN,
  HW_CLOSE_SLOW_READER,
  HW_CLOSE_AUTH_TIMEOUT,   /* not authenticated within auth_timeout_s */
  HW_CLOSE_PREAUTH_BUFFER, /* held more than preauth_buffer bytes before authentication */
  HW_CLOSE_OWNER_MOVED,    /* another daemon claimed the terminal (docs/ownership.md) */
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
  char peer[48];              /* "ip:port" for logs: the terminal's, from a PROXY v2 header */
  uint8_t proxy_wait;         /* its listener wants a PROXY v2 header, not read in full yet */
  uint16_t proxy_len;         /* bytes of it in proxy_buf */
  uint8_t *proxy_buf;         /* owned, HW_PROXY_V2_MAX bytes, only while a header is partial */
  hw_proto_counters *counters; /* its listener's (never NULL once started) */
  /* Ack coalescing (hw_session_acks_begin): its pieces in the loop thread's arena, chained by
   * index from cork_head (UINT32_MAX: none), and the next session with pieces. */
  hw_session *cork_next;
  uint32_t cork_head, cork_tail;
  uint8_t cork_listed;
  /* protocol state follows (proto->state_size bytes, zeroed) */
};

static inline void *hw_session_state(hw_session *s) { return (void *)(s + 1); }

/* Sends bytes; copies what the socket does not take at once. Returns 0 or a negative code (the
 * session is then being closed: e.g. the client stopped reading and the queue is over its limit). */
int hw_session_write(hw_session *s, const uint8_t *data, size_t len) HW_MUST_CHECK;

/* Ack coalescing. Between begin and end (the pipeline brackets each commit's acks with them),
 * hw_session_write only gathers, in one arena of the calling loop thread, and end writes each
 * session's pieces in order with one writev: a connection that had several reports in one commit
 * gets their acks in one write (one syscall, one TCP segment) instead of one each. Nothing is
 * held past end. Calls nest; only the outermost end writes. */
void hw_session_acks_begin(void);
void hw_session_acks_end(void);

/* Closes the session (idempotent); on_close runs, then the memory is freed. */
void hw_session_close(hw_session *s);

/* Binds the session to terminal t: an older session of t is told it was replaced and closed. */
void hw_session_bind(hw_session *s, hw_terminal *t);
/* Another connection now speaks for s's terminal (on this loop: hw_session_bind; on another
 * worker's: pipeline/owners.h): s no longer does, is told why (on_closing, REPLACED) and is
 * closed. Acks still owed to s are dropped, as the terminal is now someone else's. */
void hw_session_close_replaced(hw_session *s);

/* Another daemon owns t now: its session here, if any, is told (on_closing with
 * HW_CLOSE_OWNER_MOVED) and closed; acks still owed to it are dropped (the terminal sends those
 * fixes again to its new owner). For the pipeline, which never looks inside sessions. */
void hw_session_evict(hw_terminal *t);

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
