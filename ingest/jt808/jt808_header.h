/* JT/T 808 message header, both layouts, and building outgoing frames.
 *
 *   2011/2013: id WORD, attributes WORD, phone BCD[6],  flow WORD [, total WORD, index WORD]
 *   2019:      id WORD, attributes WORD, version BYTE, phone BCD[10], flow WORD [, total, index]
 * Attributes: bits 0-9 body length, 10-12 encryption, 13 sub-packaged, 14 2019 layout.
 *
 * The layout follows bit 14, with one exception seen in the field (SmallChi/JT808 keeps such
 * frames in its tests, decoded with "JTT2013Force"): bit 14 set, yet the frame only has the size
 * of a 2013 frame. Such a frame is read with the 2013 layout and flag_mismatch set; replies to it
 * use the plain 2013 layout. The 2019 and 2013 sizes of one body length differ by 5 bytes, so the
 * two readings can never both fit. */
#ifndef HW_JT808_HEADER_H
#define HW_JT808_HEADER_H

#include "jt808/jt808_frame.h"

#define HW_JT808_PHONE_MAX 20 /* digits, 2019 */

/* Message ids haulwatch handles. */
enum {
  HW_JT808_MSG_TERMINAL_RESPONSE = 0x0001,
  HW_JT808_MSG_HEARTBEAT = 0x0002,
  HW_JT808_MSG_LOGOUT = 0x0003,
  HW_JT808_MSG_REGISTER = 0x0100,
  HW_JT808_MSG_AUTH = 0x0102,
  HW_JT808_MSG_LOCATION = 0x0200,
  HW_JT808_MSG_DRIVER = 0x0702,
  HW_JT808_MSG_BATCH = 0x0704,
  HW_JT808_MSG_PLATFORM_RESPONSE = 0x8001,
  HW_JT808_MSG_REGISTER_RESPONSE = 0x8100,
  HW_JT808_MSG_DRIVER_REQUEST = 0x8702, /* 2013 on: "report your driver identity" (no body) */
};

typedef struct hw_jt808_header {
  uint16_t msg_id;
  uint16_t attr;          /* body attributes as sent */
  uint16_t body_len;      /* attr bits 0-9; equal to the body actually received */
  uint8_t encryption;     /* attr bits 10-12: 0 none, 1 RSA; a non-zero body is opaque */
  uint8_t is_2019;        /* 2019 layout: version byte and BCD[10] phone */
  uint8_t version;        /* 2019 protocol version byte, 0 for 2011/2013 */
  uint8_t flag_mismatch;  /* bit 14 set but 2013 layout (see above) */
  uint8_t subpackaged;    /* attr bit 13: pkg_total/pkg_index are valid */
  uint8_t header_len;     /* 12, 16, 17 or 21: the body starts here */
  uint16_t flow;          /* terminal's flow (serial) number */
  uint16_t pkg_total;     /* >= 1 when subpackaged */
  uint16_t pkg_index;     /* 1..pkg_total when subpackaged */
  uint8_t phone_bcd_len;  /* 6 or 10 */
  uint8_t phone_bcd[10];  /* as sent, echoed in replies */
  char phone[HW_JT808_PHONE_MAX + 1]; /* 12 or 20 digits, leading zeros kept: the terminal id */
} hw_jt808_header;

/* Parses the header of an unescaped frame (header + body, no checksum: what the deframer
 * delivers). On success *body points at the body inside frame, h->body_len bytes long. -EPROTO
 * when the frame is shorter than its header, the body length disagrees with the bytes received,
 * a phone nibble is not a decimal digit, or the package items are impossible (total 0, index 0
 * or above total). */
int hw_jt808_header_parse(const uint8_t *frame, size_t len, hw_jt808_header *h,
                          const uint8_t **body) HW_MUST_CHECK;

/* A header for talking to a terminal known by its phone number only (platform-initiated
 * messages, tests): phone is 1..12 digits (1..20 with is_2019), left-padded with zeros as the
 * standard says. -EINVAL for anything else. */
int hw_jt808_header_init(hw_jt808_header *h, int is_2019, uint8_t version, const char *phone)
    HW_MUST_CHECK;

/* Builds a complete wire frame to the terminal `peer` (a header it sent, or one made with
 * hw_jt808_header_init): header in the peer's layout (2019: bit 14, its version byte, its
 * BCD[10] phone; otherwise BCD[6]) with our msg_id and flow, body, checksum, escaping, delimiters.
 * out needs at most HW_JT808_WIRE_MAX bytes. 0, -EMSGSIZE when body_len > 1023 (sub-packaging
 * outgoing messages is not supported), -ENOSPC when out is too small, -EINVAL for a peer
 * without a phone. */
int hw_jt808_build(uint8_t *out, size_t cap, size_t *out_len, const hw_jt808_header *peer,
                   uint16_t msg_id, uint16_t flow, const uint8_t *body, size_t body_len)
    HW_MUST_CHECK;

#endif
