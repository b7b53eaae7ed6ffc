/* JT/T 809 message header, both editions, and building whole outgoing frames.
 *
 *   2011 (22 bytes): length u32, sn u32, msg id u16, centre id u32 (the subordinate platform's
 *                    access code), version u8[3], encrypt flag u8, encrypt key u32
 *   2019 (30 bytes): the same + UTC time u64 (seconds since 1970)
 * The edition is the platform's configured one (the caller says is_2019): real platforms send
 * version bytes 1.0.0 or 0.0.0 in either edition, so the bytes cannot decide.
 *
 * Encryption (flag 1) covers the body only, with the platform's M1/IA1/IC1 and the key of this
 * header (hw_jt809_crypt). Flag 0 is plain. A platform that encrypts may still send plain frames,
 * so the flag of each frame decides. Any other flag value is refused (-EPROTO). */
#ifndef HW_JT809_HEADER_H
#define HW_JT809_HEADER_H

#include "jt809/jt809_frame.h"

/* Message ids (business types) haulwatch handles. */
enum {
  HW_JT809_UP_CONNECT_REQ = 0x1001,     /* main link login */
  HW_JT809_UP_CONNECT_RSP = 0x1002,
  HW_JT809_UP_DISCONNECT_REQ = 0x1003,  /* main link logout */
  HW_JT809_UP_DISCONNECT_RSP = 0x1004,
  HW_JT809_UP_LINKTEST_REQ = 0x1005,    /* main link keep-alive */
  HW_JT809_UP_LINKTEST_RSP = 0x1006,
  HW_JT809_UP_DISCONNECT_INFORM = 0x1007, /* main link broken (sent on the slave link) */
  HW_JT809_UP_CLOSELINK_INFORM = 0x1008,
  HW_JT809_UP_EXG_MSG = 0x1200,         /* dynamic vehicle data */
  HW_JT809_UP_PLATFORM_MSG = 0x1300,    /* platform interaction (inspection answers) */
  HW_JT809_UP_WARN_MSG = 0x1400,        /* alarm interaction */
  HW_JT809_DOWN_CONNECT_REQ = 0x9001,   /* slave link login */
  HW_JT809_DOWN_CONNECT_RSP = 0x9002,
  HW_JT809_DOWN_DISCONNECT_REQ = 0x9003,
  HW_JT809_DOWN_DISCONNECT_RSP = 0x9004,
  HW_JT809_DOWN_LINKTEST_REQ = 0x9005,
  HW_JT809_DOWN_LINKTEST_RSP = 0x9006,
  HW_JT809_DOWN_DISCONNECT_INFORM = 0x9007,
  HW_JT809_DOWN_CLOSELINK_INFORM = 0x9008,
  HW_JT809_DOWN_EXG_MSG = 0x9200,
  HW_JT809_DOWN_PLATFORM_MSG = 0x9300,
  HW_JT809_DOWN_WARN_MSG = 0x9400,
};

typedef struct hw_jt809_header {
  uint32_t msg_len;    /* as sent: the whole unescaped frame with 5B and 5D */
  uint32_t sn;         /* sender's serial number */
  uint16_t msg_id;
  uint32_t center_id;  /* access code of the subordinate platform */
  uint8_t version[3];  /* as sent, informational */
  uint8_t encrypted;   /* 0 plain, 1 body encrypted */
  uint32_t key;        /* encryption key of this message */
  uint64_t utc_s;      /* 2019 only: sender's UTC time, seconds; 0 for 2011 */
  uint8_t is_2019;
  uint8_t header_len;  /* 22 or 30: the body starts here */
} hw_jt809_header;

/* A header to send: zeroed, then the serial number, message id, access code, version 1.x.x and
 * the edition; utc_s (the sender's UTC time, seconds) is kept for 2019 only. Pure: the caller
 * gives the time. */
void hw_jt809_header_init(hw_jt809_header *h, uint32_t sn, uint16_t msg_id, uint32_t center_id,
                          int is_2019, uint64_t utc_s);

/* Parses a frame as the deframer delivers it (header + body, no CRC) with the configured
 * edition. On success *body / *body_len are the body inside frame, still as sent (maybe
 * encrypted). -EPROTO when the frame is shorter than the header, the length field disagrees
 * with len, or the encrypt flag is neither 0 nor 1. */
int hw_jt809_header_parse(const uint8_t *frame, size_t len, int is_2019, hw_jt809_header *h,
                          const uint8_t **body, size_t *body_len) HW_MUST_CHECK;

/* hw_jt809_header_parse, then decrypts an encrypted body in place (frame is the deframer's
 * buffer, which the callback may modify). cipher may be NULL for a platform without keys:
 * an encrypted frame is then -ENOKEY. After success the body is plain and h->encrypted still
 * says how it came. */
int hw_jt809_open(uint8_t *frame, size_t len, int is_2019, const hw_jt809_cipher *cipher,
                  hw_jt809_header *h, const uint8_t **body, size_t *body_len) HW_MUST_CHECK;

/* Builds a whole wire frame into out[0..cap): header from h (sn, msg_id, center_id, version,
 * encrypted, key, utc_s, is_2019; msg_len is computed), the body (encrypted with cipher and
 * h->key when h->encrypted), CRC, escaping, delimiters. body and out must not overlap.
 * out needs at most 2 * (header + body_len + 2) + 2 bytes. 0, -ENOSPC, -ENOKEY (encrypted
 * without a cipher), -EMSGSIZE (frame longer than u32), -EINVAL (flag above 1). */
int hw_jt809_build(uint8_t *out, size_t cap, size_t *out_len, const hw_jt809_header *h,
                   const hw_jt809_cipher *cipher, const uint8_t *body, size_t body_len)
    HW_MUST_CHECK;

/* Wire bytes hw_jt809_build needs at most for a body of n bytes. */
static inline size_t hw_jt809_wire_max(size_t n) { return 2 * (HW_JT809_HEADER_2019 + n + 2) + 2; }

#endif
