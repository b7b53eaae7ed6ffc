/* JT/T 809 dynamic vehicle data on a logged-in main link (0x1200): positions into the pipeline,
 * registrations compared with the registry. The link session (jt809_session.c) owns the link and
 * hands each 0x1200 body here; this module maps vehicles, it keeps no state of its own.
 *
 * A vehicle is named by plate and colour. One the registry knows (bound to a terminal) is
 * reported under that terminal id, so its fixes meet those of its JT/T 808 terminal; any other
 * under "jt809:ACCESSCODE:PLATE:COLOUR" (hw_jt809_vehicle_tid), a terminal record with no
 * vehicle: an unregistered vehicle for the rules. One link carries many vehicles, so positions
 * go in with hw_pipeline_submit_unacked (JT/T 809 acknowledges no position).
 *
 *   0x1202  one position.
 *   0x1203  back-fill: a count and that many positions, stored with their device times.
 *   0x1201  registration (49, 61 or 110 bytes): compared with the registry; an unknown plate or
 *           a SIM / terminal id that is not the registry's terminal id is a row of
 *           jt809_vehicle_mismatches (schema/015_jt809_positions.sql), written off the loop, at
 *           most HW_JT809_MAX_RECORD_JOBS at once in the process (beyond that: logged only).
 * Other data types are counted as frames and dropped.
 *
 * Unknown plates are capped at HW_JT809_MAX_UNKNOWN_VEHICLES records in the process.
 * A record that does not convert (coordinates or date out of range) is counted as an invalid
 * fix and dropped; the link lives on (one broken vehicle must not cut off the others). */
#ifndef HW_JT809_DATA_H
#define HW_JT809_DATA_H

#include "net/session.h"

#define HW_JT809_MAX_RECORD_JOBS 4
/* jt809: vehicles (unknown plates) the process takes at most: each is a registry record kept
 * until the daemon exits (with its rule state), so a platform sending ever new plates must not
 * grow memory without bound. Beyond it, positions of a new unknown plate are dropped (counted as
 * invalid fixes, logged once); known plates and registry vehicles go on. */
#define HW_JT809_MAX_UNKNOWN_VEHICLES 500000
#define HW_JT809_BATCH_MAX 255 /* 0x1203 count is a u8 */

/* The link a 0x1200 arrived on. */
typedef struct hw_jt809_link {
  uint32_t center;      /* access code */
  uint8_t is_2019;
  const char *platform; /* platforms.id */
} hw_jt809_link;

/* One 0x1200 body (plain). 0: handled (positions queued or refused individually); 1: the
 * wrapper is malformed (the caller counts a strike); negative: the pipeline refused the fixes
 * (-ENOMEM, -ESHUTDOWN): close the link. */
int hw_jt809_data_exg(hw_session *s, const hw_jt809_link *link, const uint8_t *body,
                      size_t len) HW_MUST_CHECK;

typedef struct hw_jt809_data_stats {
  uint64_t positions, backfilled, registered_vehicle, unknown_vehicle;
  uint64_t invalid, registrations, mismatches, mismatches_unrecorded;
} hw_jt809_data_stats;
/* Process-wide (atomic) counters. */
void hw_jt809_data_get_stats(hw_jt809_data_stats *out);

#endif
