/* JT/T 808 terminals on a server session (notes: docs/jt808.md).
 *
 * Before authentication only 0x0100 register, 0x0102 authenticate and 0x0002 heartbeat (five at
 * most) are taken; anything else is answered 0x8001 "fail", not processed, and recorded in
 * auth_refusals.
 * Registration looks the terminal (the header's phone number) up and issues a new auth code;
 * authentication checks it and binds the session to the terminal. Positions (0x0200, 0x0704)
 * are answered 0x8001 only once they are durable in PostgreSQL; invalid ones are answered
 * "message error" at once and not stored. 0x0702 sets the driver the following fixes carry.
 *
 * A terminal that sends more than HW_JT808_MAX_STRIKES broken frames, refused messages or
 * runs of garbage within HW_JT808_STRIKE_WINDOW_MS is disconnected with a logged reason.
 *
 * Memory: the deframer is loop-wide; between reads a session keeps only the bytes of a partial
 * frame (heap, exactly their size, none when the read ended on a frame boundary), and a
 * reassembler only while sub-packaged messages are pending. An idle authenticated session costs
 * sizeof(hw_session) + hw_jt808_state_size bytes. */
#ifndef HW_JT808_SESSION_H
#define HW_JT808_SESSION_H

#include "net/session.h"

#define HW_JT808_MAX_STRIKES 10
#define HW_JT808_STRIKE_WINDOW_MS 60000

extern const hw_proto hw_jt808_proto;

/* The protocol state appended to each session, for memory accounting. */
extern const size_t hw_jt808_state_size;

/* Counters over every JT/T 808 session of the calling thread's loop since start (plain
 * integers: one per worker loop; hw_jt808_get_stats reads the caller's). */
typedef struct hw_jt808_stats {
  uint64_t frames;         /* good frames received */
  uint64_t bad_frames;     /* dropped: checksum, escape, oversize, impossible header */
  uint64_t refused;        /* answered "fail" for lack of (the right) authentication */
  uint64_t invalid_fixes;  /* 0x0200 and 0x0704 items answered "message error", not stored */
  uint64_t disconnected;   /* terminals closed for too many strikes */
} hw_jt808_stats;
void hw_jt808_get_stats(hw_jt808_stats *out);

/* Sends a platform-initiated message (0x8xxx/0x9xxx: body up to 1023 bytes) to the terminal
 * bound to s, in the layout and with the phone number of its frames and the session's next flow
 * number. -ENOTCONN when s is not an authenticated JT/T 808 session (or is closing), -EMSGSIZE,
 * or the write's error (the session is then being closed). */
int hw_jt808_session_send(hw_session *s, uint16_t msg_id, const uint8_t *body, size_t len)
    HW_MUST_CHECK;

#endif
