/* JT/T 808 session messages: register, authenticate, heartbeat, logout, terminal general
 * response, driver identity, and the platform's replies 0x8001 / 0x8100.
 *
 * Parsers take the header the frame came with (the layout can depend on it) and the body; they
 * never read outside body[0..len) and never allocate, except that GBK text goes through iconv.
 * Strings come out NUL-terminated: codes and numbers as printable ASCII (padding trimmed, other
 * bytes shown as '?'), names and plates converted from GBK to UTF-8.
 * Errors: -EBADMSG for a body that does not fit the layout, -EILSEQ for text that is not GBK,
 * -EOVERFLOW for text longer than its field here, -ENOMEM if iconv cannot be opened. */
#ifndef HW_JT808_MSG_H
#define HW_JT808_MSG_H

#include "jt808/jt808_header.h"

/* 0x8001 results. */
enum {
  HW_JT808_RES_OK = 0,
  HW_JT808_RES_FAIL = 1,
  HW_JT808_RES_BAD_MESSAGE = 2,
  HW_JT808_RES_UNSUPPORTED = 3,
  HW_JT808_RES_ALARM_CONFIRMED = 4,
};

/* 0x8100 results. */
enum {
  HW_JT808_REG_OK = 0,
  HW_JT808_REG_VEHICLE_TAKEN = 1,      /* vehicle already registered */
  HW_JT808_REG_NO_VEHICLE = 2,         /* vehicle not in the database */
  HW_JT808_REG_TERMINAL_TAKEN = 3,     /* terminal already registered */
  HW_JT808_REG_NO_TERMINAL = 4,        /* terminal not in the database */
};

#define HW_JT808_PLATE_MAX 63 /* UTF-8 bytes; a GBK plate is at most 1.5x longer in UTF-8 */

/* 0x0100 register. Field sizes (maker / model / terminal id): 2011 5/8/7, 2013 5/20/7,
 * 2019 11/30/30, all NUL padded, then plate colour BYTE and the plate (GBK, rest of the body).
 *
 * Layout choice: 2019 when the header is a 2019 header. Otherwise 2011 and 2013 share the header
 * and differ only in the model width, so the body decides: a body of 37 bytes or more (2013's
 * fixed part) is read as 2013 when that reading is plausible, i.e. the plate colour byte is a
 * JT/T 415 colour (0-5, 9, 91-94) and the plate holds no control or NUL byte; otherwise it is read as
 * 2011 under the same test (a 2011 body has 25 fixed bytes). A 2013 body read as 2011 would put
 * the colour inside the model field and NUL padding or the terminal id inside the plate, which
 * the test rejects; a 2011 body with a plate of 12+ bytes read as 2013 would need byte 36 to be a
 * colour with printable text after it. -EBADMSG when neither reading fits. */
typedef struct hw_jt808_register {
  uint16_t version;       /* body layout: 2011, 2013 or 2019 */
  uint16_t province;      /* GB/T 2260 province code */
  uint16_t city;          /* GB/T 2260 city / county code */
  char maker[12];         /* manufacturer id */
  char model[31];         /* terminal model */
  char terminal_id[31];   /* terminal id as printed on the device */
  uint8_t plate_colour;   /* JT/T 415: 0 no plate (the plate field then holds the VIN) */
  char plate[HW_JT808_PLATE_MAX + 1]; /* UTF-8 */
} hw_jt808_register;

int hw_jt808_parse_register(const hw_jt808_header *h, const uint8_t *body, size_t len,
                            hw_jt808_register *out) HW_MUST_CHECK;

/* 0x0102 authenticate. 2011/2013: the auth code is the whole body. 2019 header: code length
 * BYTE, code, IMEI BYTE[15], software version BYTE[20]; a 2019-header body that does not add up
 * to exactly that is read the 2013 way (whole body), which at worst fails the code check.
 * Trailing NUL bytes of the code are dropped (some terminals send the STRING terminator). */
typedef struct hw_jt808_auth {
  uint16_t version;       /* body layout: 2013 (also 2011) or 2019 */
  const uint8_t *code;    /* borrowed: points into the body; compare bytes, not strings */
  size_t code_len;
  char imei[16];          /* 2019 only, else "" */
  char software[21];      /* 2019 only, else "" */
} hw_jt808_auth;

int hw_jt808_parse_auth(const hw_jt808_header *h, const uint8_t *body, size_t len,
                        hw_jt808_auth *out) HW_MUST_CHECK;

/* 0x0001 terminal general response: reply flow WORD, reply id WORD, result BYTE (a longer body
 * is accepted, the rest ignored). -EBADMSG when shorter than 5 bytes. */
typedef struct hw_jt808_terminal_response {
  uint16_t reply_flow;
  uint16_t reply_id;
  uint8_t result;         /* 0 ok, 1 fail, 2 message error, 3 unsupported */
} hw_jt808_terminal_response;

int hw_jt808_parse_terminal_response(const uint8_t *body, size_t len,
                                     hw_jt808_terminal_response *out) HW_MUST_CHECK;

/* 0x0002 heartbeat and 0x0003 logout have empty bodies; a body is tolerated (ignored). Always 0:
 * kept so every message id has a parser. */
int hw_jt808_parse_empty(const uint8_t *body, size_t len) HW_MUST_CHECK;

/* 0x0702 driver identity (IC card).
 *   2013/2019: status BYTE (0x01 card inserted, 0x02 removed), time BCD[6]; on insert: IC read
 *     result BYTE, and when it is 0: name length BYTE, name, qualification certificate
 *     STRING[20], issuing authority length BYTE, authority, expiry BCD[4] YYYYMMDD; 2019 adds the
 *     driver ID card number STRING[20] (read whenever 20 more bytes follow; anything after that,
 *     e.g. provincial extensions, is ignored).
 *   2011: name length BYTE, name, driver ID card number STRING[20], qualification certificate
 *     STRING[40], authority length BYTE, authority; exactly.
 * Layout: 2019 with a 2019 header; otherwise the 2013 layout when it reads cleanly (status 1 or
 * 2, valid BCD, fits), else 2011. */
typedef struct hw_jt808_driver {
  uint16_t version;         /* 2011, 2013 or 2019 */
  uint8_t status;           /* 1 inserted, 2 removed; 2011: 1 (an identification is a login) */
  uint8_t ic_result;        /* on insert: 0 ok, 1 key auth failed, 2 card locked, 3 card pulled,
                             * 4 checksum error */
  uint8_t has_identity;     /* name, certificate, authority (and expiry unless 2011) are set */
  int64_t time_ms;          /* insert/remove time, UTC ms; 0 in the 2011 layout */
  uint32_t expiry;          /* certificate expiry as YYYYMMDD, 0 when absent */
  char name[384];           /* UTF-8, up to 255 GBK bytes */
  char certificate[41];     /* qualification certificate number */
  char authority[384];      /* UTF-8 */
  char id_number[21];       /* driver's ID card number (2011, 2019), else "" */
} hw_jt808_driver;

int hw_jt808_parse_driver(const hw_jt808_header *h, const uint8_t *body, size_t len,
                          hw_jt808_driver *out) HW_MUST_CHECK;

/* Replies, built with hw_jt808_build to the terminal that sent `peer` (same layout, version and
 * phone). `flow` is the platform's own flow number. out needs at most HW_JT808_WIRE_MAX bytes.
 * 0, -ENOSPC, -EMSGSIZE. */

/* 0x8001 platform general response: reply flow, reply id, result (HW_JT808_RES_*). */
int hw_jt808_encode_platform_response(uint8_t *out, size_t cap, size_t *out_len,
                                      const hw_jt808_header *peer, uint16_t flow,
                                      uint16_t reply_flow, uint16_t reply_id, uint8_t result)
    HW_MUST_CHECK;

/* 0x8100 register response: reply flow, result (HW_JT808_REG_*), and the auth code bytes sent
 * as-is only when result is HW_JT808_REG_OK (keep them ASCII: the terminal echoes them in 0x0102). */
int hw_jt808_encode_register_response(uint8_t *out, size_t cap, size_t *out_len,
                                      const hw_jt808_header *peer, uint16_t flow,
                                      uint16_t reply_flow, uint8_t result, const uint8_t *code,
                                      size_t code_len) HW_MUST_CHECK;

#endif
