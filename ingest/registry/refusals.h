/* Refused attempts (authentication, registration, messages sent without either), merged in
 * memory and written to auth_refusals at most every HW_REFUSALS_FLUSH_MS in one statement, one
 * row per (protocol, source address, reason): `count` attempts from first_at to `at`, with the
 * terminal, plate and ip:port of the last one. A flood therefore costs one hash update per
 * attempt and one upsert per second, never a round trip per attempt; and since reasons are a
 * small fixed set, one address claiming random terminal ids makes a handful of rows. Rows whose
 * last attempt is older than the retention setting are deleted at start and every
 * HW_REFUSALS_PURGE_MS.
 *
 * Owns the pending entries (at most HW_REFUSALS_MAX_PENDING distinct keys between flushes; more
 * are dropped, counted and logged) and one timer; queries go through the caller's connection. */
#ifndef HW_REFUSALS_H
#define HW_REFUSALS_H

#include <uv.h>

#include "base/common.h"
#include "sinks/pg_async.h"

#define HW_REFUSALS_FLUSH_MS 1000
#define HW_REFUSALS_PURGE_MS (10 * 60 * 1000)
#define HW_REFUSALS_MAX_PENDING 4096

/* Column limits of auth_refusals (schema/005_jt808.sql, 007_identity.sql). */
#define HW_REFUSAL_ID_MAX 64
#define HW_REFUSAL_PLATE_MAX 128
#define HW_REFUSAL_REMOTE_MAX 64
#define HW_REFUSAL_REASON_MAX 200

typedef struct hw_refusals hw_refusals;

typedef struct hw_refusals_stats {
  uint64_t recorded; /* attempts written (the sum of the counts added) */
  uint64_t dropped;  /* attempts lost: too many distinct keys pending, or the write failed */
  uint64_t purged;   /* rows deleted by retention */
} hw_refusals_stats;

/* pg is borrowed and must outlive hw_refusals_stop's done_cb. retention_days 0 keeps rows
 * forever. */
int hw_refusals_start(hw_refusals **out, uv_loop_t *loop, hw_pg_async *pg,
                      uint32_t retention_days) HW_MUST_CHECK;

/* Counts one refused attempt. protocol is "pb" or "jt808"; terminal_id (as claimed),
 * claimed_plate and remote ("ip:port") may be NULL; every string is copied and cut to its
 * column's limit (never inside a UTF-8 sequence). */
void hw_refusals_add(hw_refusals *r, const char *protocol, const char *terminal_id,
                     const char *claimed_plate, const char *remote, const char *reason);

void hw_refusals_get_stats(const hw_refusals *r, hw_refusals_stats *out);

/* Writes what is pending (waiting at most 2 s for the database), then frees r and calls
 * done_cb(arg). No hw_refusals_add after this. */
void hw_refusals_stop(hw_refusals *r, void (*done_cb)(void *arg), void *arg);

/* Copies at most max bytes of s into out (max + 1 bytes), not cutting a UTF-8 sequence. */
void hw_refusal_copy(char *out, size_t max, const char *s);

#endif
