/* The live feed's position batches (web/sse.h): the compact encoding of one vehicle's position
 * and the table that keeps, per terminal, only the newest state received within one flush
 * interval. Pure: no I/O, no loop; the hub owns one table.
 *
 * One position is a JSON array in a fixed order, the fields the page draws and nothing the batch
 * or the scope already says (region and enterprise are not sent):
 *   ["<terminal_id>",ts_ms,lat,lon,speed_kmh,heading]
 * lat/lon in degrees (at most 6 decimals, trailing zeros cut), speed_kmh with at most one
 * decimal, heading in whole degrees, ts_ms the fix's device time in ms since the epoch; a field
 * the daemon did not send is null. */
#ifndef HW_WEB_SSE_BATCH_H
#define HW_WEB_SSE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/fix.h" /* HW_TID_WIDE_MAX: JT/T 809's jt809: ids are the longest */

#define HW_SSE_TID_MAX HW_TID_WIDE_MAX /* a terminal id longer than this is not a vehicle of ours */
#define HW_SSE_POS_MAX 384 /* one encoded position at most: an id the daemon stores (no control characters, so at most 2 bytes per escaped byte) and six numbers */

/* Encodes one position into out; returns its length (more than cap: it did not fit, as
 * snprintf), or 0 when tid is empty or longer than HW_SSE_TID_MAX. cap >= HW_SSE_POS_MAX fits
 * every id the daemon stores; the hub refuses (and counts) a position that does not fit. A NaN number is written as null. No line
 * breaks: control characters of tid are \u-escaped. */
size_t hw_sse_pos_encode(char *out, size_t cap, const char *tid, double ts_ms, double lat,
                         double lon, double speed_kmh, double heading);

/* One vehicle's newest state within the current flush interval. */
typedef struct hw_sse_pend {
  char tid[HW_SSE_TID_MAX + 1];
  char region[7];   /* GB/T 2260 code or "" */
  char *enterprise; /* owned, never NULL */
  double ts_ms;
  uint16_t len;
  char enc[HW_SSE_POS_MAX];
} hw_sse_pend;

/* Terminal id -> its newest state, in order of first arrival within the interval. Owns its
 * entries; zero-initialised is empty. */
typedef struct hw_sse_pending {
  hw_sse_pend *v;
  size_t n, cap;
  uint32_t *idx; /* open addressing: 0 empty, else index + 1 into v */
  size_t idx_cap; /* a power of two, at least 2 x cap */
  size_t bytes;   /* sum of the entries' len */
} hw_sse_pending;

/* Keeps the state unless the table holds one of the same terminal with a newer ts_ms (a second
 * daemon, or late data, may publish an older state after a newer one; equal ts_ms: the later
 * wins). enc: hw_sse_pos_encode's output. Returns 1 (new terminal), 0 (replaced), 2 (older,
 * ignored), -EINVAL (tid empty or too long, enc too long), -ENOMEM. */
int hw_sse_pending_put(hw_sse_pending *p, const char *tid, const char *region,
                       const char *enterprise, double ts_ms, const char *enc,
                       size_t len) HW_MUST_CHECK;
/* Empties the table (keeps its memory for the next interval). */
void hw_sse_pending_clear(hw_sse_pending *p);
void hw_sse_pending_free(hw_sse_pending *p);

#endif
