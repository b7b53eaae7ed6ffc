/* Terminal authentication against the terminals table, without blocking the loop. Unknown
 * terminal and wrong token look the same to the client; the log tells them apart.
 *
 * Look-ups run one after another on one connection. Those waiting their turn are kept here (at
 * most 50,000) and dropped unsent once cancelled, so a login storm after a restart does not also
 * run the look-ups of every client that gave up. Starting a look-up fails with -EBUSY when too
 * many wait, -ESHUTDOWN after hw_auth_stop, -ENOMEM; no callback runs then. */
#ifndef HW_AUTH_H
#define HW_AUTH_H

#include <uv.h>

#include "base/common.h"

typedef struct hw_auth hw_auth;
typedef struct hw_auth_req hw_auth_req;

/* result: 0 accepted, -EACCES unknown terminal or wrong token, -EAGAIN database unavailable. */
typedef void (*hw_auth_cb)(void *arg, int result);

/* Refusals are aggregated and written by registry/refusals.h on this connection; rows whose last
 * attempt is older than refusal_retention_days are deleted (0: kept forever). */
int hw_auth_start(hw_auth **out, uv_loop_t *loop, const char *conninfo,
                  uint32_t refusal_retention_days) HW_MUST_CHECK;

/* Starts a check; *req identifies it until cb has run. terminal_id and token are copied. */
int hw_auth_check(hw_auth *a, const char *terminal_id, const char *token, size_t token_len,
                  hw_auth_cb cb, void *arg, hw_auth_req **req) HW_MUST_CHECK;
/* The same, and a refusal (unknown terminal, wrong token) is recorded in auth_refusals with the
 * client's address `remote` ("ip:port", may be NULL; copied). */
int hw_auth_check_from(hw_auth *a, const char *remote, const char *terminal_id, const char *token,
                       size_t token_len, hw_auth_cb cb, void *arg, hw_auth_req **req) HW_MUST_CHECK;

/* Records a refused attempt in auth_refusals, fire and forget. protocol is "pb" or "jt808";
 * terminal_id (as claimed), claimed_plate and remote may be NULL; every string is copied and
 * cut to its column's limit. reason must come from a small fixed set (no ids or numbers in it):
 * attempts are aggregated per (protocol, source address, reason), merged in memory and written
 * once a second (registry/refusals.h), so a flood costs neither round trips nor rows. */
void hw_auth_refusal(hw_auth *a, const char *protocol, const char *terminal_id,
                     const char *claimed_plate, const char *remote, const char *reason);

/* ---- JT/T 808 ----
 * A terminal registers (0x0100) and gets a random auth code, of which only the SHA-256 is
 * stored (terminals.jt808_auth_hash); at every connection it authenticates (0x0102) with it. */

#define HW_AUTH_JT808_CODE_LEN 16 /* hex characters: 64 random bits */

/* What a 0x0100 said, stored with the new code. Strings are copied; NULL stores NULL. */
typedef struct hw_auth_jt808_reg {
  const char *terminal_id; /* the header's phone number */
  const char *remote;      /* "ip:port", for a refusal record */
  uint16_t version;        /* body layout: 2011, 2013 or 2019 */
  uint16_t province, city;
  const char *maker, *model, *device_id;
  uint8_t plate_colour;
  const char *plate;       /* UTF-8 */
} hw_auth_jt808_reg;

/* Outcomes of a registration; the values are the 0x8100 result codes of the standard. */
enum {
  HW_AUTH_REG_OK = 0,
  HW_AUTH_REG_VEHICLE_TAKEN = 1,  /* the claimed plate is bound to another terminal */
  HW_AUTH_REG_NO_VEHICLE = 2,     /* the plate is not the one provisioned / bound */
  HW_AUTH_REG_TERMINAL_TAKEN = 3, /* the terminal holds a code; no reset, no provisioned match */
  HW_AUTH_REG_NO_TERMINAL = 4,    /* not provisioned, or the device id is not the provisioned one */
};

/* result: HW_AUTH_REG_OK and code (HW_AUTH_JT808_CODE_LEN ASCII characters, NUL terminated, valid
 * during the call) is the terminal's new auth code; another HW_AUTH_REG_* (code NULL): refused,
 * nothing stored changed, the attempt recorded in auth_refusals; -EAGAIN database unavailable. */
typedef void (*hw_auth_register_cb)(void *arg, int result, const char *code);

/* Starts a registration, decided by the identity policy (auth.c, hw_auth_register_sql; README):
 * when accepted, a new code replaces the stored one and a pending operator reset is consumed.
 * *req as for hw_auth_check. */
int hw_auth_jt808_register(hw_auth *a, const hw_auth_jt808_reg *reg, hw_auth_register_cb cb,
                           void *arg, hw_auth_req **req) HW_MUST_CHECK;

/* Starts an authentication with code[0..code_len) (copied): cb gets 0 when it matches the stored
 * code (compared as SHA-256, in constant time), -EACCES for an unknown terminal, one that never
 * registered or a wrong code (recorded in auth_refusals, the reason telling them apart), -EAGAIN
 * database unavailable. */
int hw_auth_jt808_check(hw_auth *a, const char *terminal_id, const char *remote,
                        const uint8_t *code, size_t code_len, hw_auth_cb cb, void *arg,
                        hw_auth_req **req) HW_MUST_CHECK;

typedef struct hw_auth_stats {
  uint64_t refusals_recorded, refusals_dropped;
} hw_auth_stats;
void hw_auth_get_stats(const hw_auth *a, hw_auth_stats *out);

/* The asker went away: cb will not be called for req (any kind of request). */
void hw_auth_cancel(hw_auth_req *req);

void hw_auth_stop(hw_auth *a, void (*done_cb)(void *arg), void *arg);

#endif
