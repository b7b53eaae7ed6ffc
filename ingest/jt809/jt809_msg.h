/* JT/T 809 link and interaction messages: login/logout/keep-alive of both links, disconnect
 * notices, platform inspection (查岗) 0x9301/0x9302 and its answer 0x1301, alarm report 0x1402
 * and supervision request 0x9401 with its answer 0x1401, with the 0x1300 / 0x9300 / 0x1400 / 0x9400 wrappers.
 *
 * Parsers take the (decrypted) body and the edition; they never read outside body[0..len) and
 * never allocate (GBK text goes through iconv). Fixed text fields come out NUL-terminated:
 * ASCII fields trimmed of NUL/space padding with other bytes shown as '?', GBK fields (plates)
 * converted to UTF-8. Variable text (questions, answers, alarm descriptions) stays borrowed raw
 * GBK: convert with hw_jt809_text when needed.
 * Errors: -EBADMSG for a body that does not fit the layout (too short, or a length field larger
 * than the bytes that follow), -EILSEQ for text that is not GBK, -EOVERFLOW for text longer than
 * its field, -ENOMEM if iconv cannot be opened.
 *
 * Encoders write a body into out[0..cap) (the caller's buffer) and set *out_len; wrap it with
 * hw_jt809_build. 0, -ENOSPC, -EOVERFLOW (a string longer than its field), -EILSEQ. */
#ifndef HW_JT809_MSG_H
#define HW_JT809_MSG_H

#include "jt809/jt809_header.h"

#define HW_JT809_PLATE_MAX 63 /* UTF-8 bytes of a 21-byte GBK plate (at most 1.5x) */

/* 0x1002 results. */
enum {
  HW_JT809_LOGIN_OK = 0,
  HW_JT809_LOGIN_BAD_IP = 1,
  HW_JT809_LOGIN_BAD_ACCESS_CODE = 2,
  HW_JT809_LOGIN_NO_USER = 3,
  HW_JT809_LOGIN_BAD_PASSWORD = 4,
  HW_JT809_LOGIN_BUSY = 5, /* resources busy, try later */
  HW_JT809_LOGIN_OTHER = 6,
};

/* 0x9002 results. */
enum {
  HW_JT809_SLAVE_OK = 0,
  HW_JT809_SLAVE_BAD_VERIFY = 1,
  HW_JT809_SLAVE_BUSY = 2,
  HW_JT809_SLAVE_OTHER = 3,
};

/* 0x1001 login: user id u32, password 8 bytes, (2019: centre id u32), down-link IP 32 bytes,
 * down-link port u16. 46 bytes (2011) or 50 (2019); a longer body is accepted, the rest
 * ignored. */
typedef struct hw_jt809_login {
  uint32_t user_id;
  uint8_t password[8];  /* as sent: compare bytes with password_len */
  uint8_t password_len; /* trailing NUL padding dropped */
  uint32_t center_id;   /* 2019 only (the access code again), else 0 */
  char down_ip[33];     /* ASCII, where the platform listens for the slave link */
  uint16_t down_port;
} hw_jt809_login;

int hw_jt809_parse_login(const uint8_t *body, size_t len, int is_2019, hw_jt809_login *out)
    HW_MUST_CHECK;
/* password: up to 8 bytes, NUL padded. */
int hw_jt809_encode_login(const hw_jt809_login *m, int is_2019, uint8_t *out, size_t cap,
                          size_t *out_len) HW_MUST_CHECK;

/* 0x1002 login response: result u8, verify code u32 (5 bytes; both editions). */
int hw_jt809_parse_login_rsp(const uint8_t *body, size_t len, uint8_t *result,
                             uint32_t *verify_code) HW_MUST_CHECK;
int hw_jt809_encode_login_rsp(uint8_t result, uint32_t verify_code, uint8_t *out, size_t cap,
                              size_t *out_len) HW_MUST_CHECK;

/* 0x1003 logout: user id u32, password 8 bytes (12 bytes). */
int hw_jt809_parse_logout(const uint8_t *body, size_t len, hw_jt809_login *out) HW_MUST_CHECK;
int hw_jt809_encode_logout(const hw_jt809_login *m, uint8_t *out, size_t cap, size_t *out_len)
    HW_MUST_CHECK;

/* One u32 body: 0x9001 slave login and 0x9003 slave logout (verify code). -EBADMSG below 4. */
int hw_jt809_parse_u32(const uint8_t *body, size_t len, uint32_t *v) HW_MUST_CHECK;
int hw_jt809_encode_u32(uint32_t v, uint8_t *out, size_t cap, size_t *out_len) HW_MUST_CHECK;

/* One u8 body: 0x9002 result, 0x1007 / 0x9007 error code, 0x1008 / 0x9008 reason. -EBADMSG when
 * empty. 0x1007 / 0x9007 codes: 0 main (slave) link broken, 1 other. */
int hw_jt809_parse_u8(const uint8_t *body, size_t len, uint8_t *v) HW_MUST_CHECK;
int hw_jt809_encode_u8(uint8_t v, uint8_t *out, size_t cap, size_t *out_len) HW_MUST_CHECK;

/* 0x1004, 0x1005, 0x1006, 0x9004, 0x9005, 0x9006 have empty bodies (a body is ignored). */

/* The wrapper of 0x1200 / 0x9200 (always) and 0x1400 / 0x9400 (2011 only): plate GBK[21],
 * plate colour u8, then of every wrapper: data type u16, data length u32, data. */
typedef struct hw_jt809_sub {
  uint8_t has_vehicle;  /* a plate and colour were in the wrapper */
  char plate[HW_JT809_PLATE_MAX + 1]; /* UTF-8 */
  uint8_t plate_colour; /* 1 blue, 2 yellow, 3 black, 4 white, 5 green (2019), 9 other */
  uint16_t data_type;   /* sub-business type, e.g. 0x1202 */
  const uint8_t *data;  /* borrowed: points into the body */
  uint32_t data_len;    /* as announced; bytes after it in the body are ignored */
} hw_jt809_sub;

/* Parses a wrapper. with_vehicle: 1 for 0x1200 / 0x9200, and for 0x1400 / 0x9400 in 2011;
 * 0 for 0x1300 / 0x9300 and 0x1400 / 0x9400 in 2019 (hw_jt809_has_vehicle says which).
 * -EBADMSG when the announced data length runs past the body. */
int hw_jt809_parse_sub(const uint8_t *body, size_t len, int with_vehicle, hw_jt809_sub *out)
    HW_MUST_CHECK;
int hw_jt809_has_vehicle(uint16_t msg_id, int is_2019);
/* plate (UTF-8, converted to GBK, at most 21 bytes) is used when with_vehicle. */
int hw_jt809_encode_sub(int with_vehicle, const char *plate, uint8_t plate_colour,
                        uint16_t data_type, const uint8_t *data, size_t data_len, uint8_t *out,
                        size_t cap, size_t *out_len) HW_MUST_CHECK;

/* A u64 UTC time field (alarm, supervision, 2019 header) in ms. The standard says seconds; some
 * platforms send milliseconds (real 0x1402 / 0x9403 frames in SmallChi/JT809's tests): a value
 * above 1e11 (the year 5138 in seconds) is taken as ms. Values beyond int64 ms clamp to 0. */
int64_t hw_jt809_utc_ms(uint64_t v);

/* GBK text (p[0..n), NUL padding trimmed) to UTF-8 in out[0..cap), NUL terminated. */
int hw_jt809_text(const uint8_t *p, size_t n, char *out, size_t cap) HW_MUST_CHECK;

/* 0x9301 inspection request (down) and 0x9302 message to the platform.
 *   0x9301 2011: object type u8, object id [12], info id u32, length u32, question (GBK)
 *   0x9301 2019: object type u8, object id [20], answer time u8 (minutes), info id, length, text
 *   0x9302 (both): object type u8, object id [12], info id, length, text */
typedef struct hw_jt809_query {
  uint8_t object_type;  /* 0 the connected platform, 1 one company of it, 2 all its companies */
  char object_id[41];   /* UTF-8 (GBK on the wire: 2019 puts plates here); bytes that are not
                           GBK come out as ASCII with '?' */
  uint8_t answer_time;  /* 2019 0x9301 only */
  uint32_t info_id;
  const uint8_t *info;  /* borrowed raw GBK (parse), or the bytes to send (encode) */
  uint32_t info_len;
} hw_jt809_query;

int hw_jt809_parse_query(const uint8_t *data, size_t len, uint16_t data_type, int is_2019,
                         hw_jt809_query *out) HW_MUST_CHECK;
int hw_jt809_encode_query(const hw_jt809_query *q, uint16_t data_type, int is_2019, uint8_t *out,
                          size_t cap, size_t *out_len) HW_MUST_CHECK;

/* 0x1301 inspection answer.
 *   2011: object type u8, object id [12], info id u32, length u32, answer (GBK)
 *   2019: object type u8, responder [16] (GBK), responder tel [20], object id [20],
 *         source data type u16, source msg sn u32 (the 0x9301's header sn), length, answer */
typedef struct hw_jt809_answer {
  uint8_t object_type;
  char object_id[41];        /* as in hw_jt809_query */
  uint32_t info_id;          /* 2011: the question's info id */
  char responder[25];        /* 2019: UTF-8 */
  char responder_tel[21];    /* 2019 */
  uint16_t src_data_type;    /* 2019: 0x9301 */
  uint32_t src_sn;           /* 2019: sn of the question's frame */
  const uint8_t *info;       /* borrowed raw GBK */
  uint32_t info_len;
} hw_jt809_answer;

int hw_jt809_parse_answer(const uint8_t *data, size_t len, int is_2019, hw_jt809_answer *out)
    HW_MUST_CHECK;
int hw_jt809_encode_answer(const hw_jt809_answer *a, int is_2019, uint8_t *out, size_t cap,
                           size_t *out_len) HW_MUST_CHECK;

/* 0x1402 alarm reported up.
 *   2011: warn source u8, warn type u16, warn time u64 (UTC s), info id u32, length, text
 *   2019: source platform id [11], warn type u16, warn time u64, start u64, end u64,
 *         plate GBK[21], colour u8, destination platform id [11], route id u32, length, text
 *         (SmallChi/JT809's layout). Real 2019 traffic (GuoJian001 in that suite) carries one
 *         time fewer (warn time and one more, taken as the end): the layout whose text ends
 *         exactly at the end of the data is used (times says which). A 2019 body must fit
 *         exactly; a plate field that is not GBK is shown as ASCII. */
typedef struct hw_jt809_alarm {
  uint8_t warn_src;          /* 2011: 1 terminal, 2 enterprise platform, 3 government, 9 other */
  uint16_t warn_type;
  uint64_t warn_time;        /* UTC seconds */
  uint32_t info_id;          /* 2011 */
  char src_platform[12];     /* 2019 */
  uint8_t times;             /* 2019: 3 (warn, start, end) or 2 (warn, end); encode: 2 or 3 */
  uint64_t start_time, end_time; /* 2019 */
  char plate[HW_JT809_PLATE_MAX + 1]; /* 2019 (2011: in the 0x1400 wrapper) */
  uint8_t plate_colour;      /* 2019 */
  char dst_platform[12];     /* 2019 */
  uint32_t route_id;         /* 2019 */
  const uint8_t *info;       /* borrowed raw GBK */
  uint32_t info_len;
} hw_jt809_alarm;

int hw_jt809_parse_alarm(const uint8_t *data, size_t len, int is_2019, hw_jt809_alarm *out)
    HW_MUST_CHECK;
int hw_jt809_encode_alarm(const hw_jt809_alarm *a, int is_2019, uint8_t *out, size_t cap,
                          size_t *out_len) HW_MUST_CHECK;

/* 0x9401 supervision request (报警督办), both editions as public suites have it: warn source u8,
 * warn type u16, warn time u64, supervision id u32, deadline u64, level u8 (0 urgent,
 * 1 normal), supervisor [16] (GBK), tel [20], email [32]. Answered by 0x1401. */
typedef struct hw_jt809_supervise {
  uint8_t warn_src;
  uint16_t warn_type;
  uint64_t warn_time;
  uint32_t supervision_id;
  uint64_t deadline;
  uint8_t level;
  char supervisor[25];  /* UTF-8 */
  char tel[21];
  char email[33];
} hw_jt809_supervise;

int hw_jt809_parse_supervise(const uint8_t *data, size_t len, hw_jt809_supervise *out)
    HW_MUST_CHECK;
int hw_jt809_encode_supervise(const hw_jt809_supervise *s, uint8_t *out, size_t cap,
                              size_t *out_len) HW_MUST_CHECK;

/* 0x1401 supervision answer (in 0x1400, with the vehicle in 2011): supervision id u32, result u8
 * (0 being handled, 1 handled, 2 not handled, 3 to be handled later). 5 bytes, both editions as
 * public suites have it; bytes after them are ignored. */
int hw_jt809_parse_supervise_rsp(const uint8_t *data, size_t len, uint32_t *supervision_id,
                                 uint8_t *result) HW_MUST_CHECK;
int hw_jt809_encode_supervise_rsp(uint32_t supervision_id, uint8_t result, uint8_t *out,
                                  size_t cap, size_t *out_len) HW_MUST_CHECK;

#endif
