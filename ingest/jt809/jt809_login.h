/* JT/T 809 main-link login decision (0x1001 -> 0x1002 result) and the terminal id under which a
 * platform's vehicle is stored when the registry does not know its plate. Pure: no I/O, no
 * loop. The session (to come: jt809_session.c) loads the hw_jt809_platform row of the header's
 * access code (schema/013_jt809.sql) and calls hw_jt809_login_check off the loop: verifying the
 * argon2id hash costs crypto_pwhash_OPSLIMIT_INTERACTIVE (64 MiB, tens of ms). */
#ifndef HW_JT809_LOGIN_H
#define HW_JT809_LOGIN_H

#include "base/fix.h" /* HW_TID_WIDE_MAX */
#include "jt809/jt809_msg.h"

#define HW_JT809_PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES */

/* One row of `platforms`, as the daemon needs it. */
typedef struct hw_jt809_platform {
  char id[33];
  uint32_t user_id;
  uint32_t center_id; /* the access code */
  char password_hash[HW_JT809_PASSWORD_HASH_MAX];
  uint16_t version;   /* 2011 or 2019: picks the header layout */
  uint8_t has_keys;
  uint32_t m1, ia1, ic1;
  char allow_addr[46]; /* "" = any; else an IPv4 or IPv6 address as text */
  uint8_t disabled;
  uint8_t slave_local_ok; /* the slave link may go to loopback / link-local (schema 016) */
} hw_jt809_platform;

/* The 0x1002 result for login m, sent from peer_ip (address text without port) in a frame whose
 * header names access code header_center: p is the platform of that access code, or NULL when
 * none has it. *reason (static text, for auth_refusals and logs) says why when not
 * HW_JT809_LOGIN_OK. Checked in this order, so a probe learns as little as the standard lets it:
 * access code (unknown, disabled, or a 2019 body centre id that differs from the header's) -> 2,
 * source address -> 1, user id -> 3, password -> 4. */
int hw_jt809_login_check(const hw_jt809_platform *p, uint32_t header_center,
                         const hw_jt809_login *m, const char *peer_ip, const char **reason);

/* The access code of a frame as the deframer delivers it, before its edition is known: it sits
 * at bytes 10..13 in both (after length, sn and msg id), and the edition is the configured one
 * of the platform it names. -EPROTO when the frame is shorter than a 2011 header. Also the msg
 * id (bytes 8..9), so a session can tell a 0x1001 from anything else before the look-up. */
int hw_jt809_peek(const uint8_t *frame, size_t len, uint16_t *msg_id, uint32_t *center_id)
    HW_MUST_CHECK;

/* "jt809:ACCESSCODE:PLATE:COLOUR" into out[0..cap) (NUL-terminated): the id of a vehicle that a
 * platform reports and the registry does not know. plate is UTF-8 (as the codec converts it),
 * 1..HW_JT809_PLATE_MAX bytes, with no ':' and no control character (so the id splits back
 * unambiguously). -EINVAL for such a plate, -EOVERFLOW when out is too small. */
int hw_jt809_vehicle_tid(uint32_t access_code, const char *plate, uint8_t colour, char *out,
                         size_t cap) HW_MUST_CHECK;

/* The longest such id: "jt809:" 4294967295 ":" plate ":" 255. */
#define HW_JT809_VEHICLE_TID_MAX (6 + 10 + 1 + HW_JT809_PLATE_MAX + 1 + 3)
_Static_assert(HW_JT809_VEHICLE_TID_MAX <= HW_TID_WIDE_MAX, "the position path takes these ids");

#endif
