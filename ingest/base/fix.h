/* The internal fix record: what every protocol decoder produces and every sink consumes.
 * Units follow JT/T 808 so both protocols map onto it without loss. */
#ifndef HW_FIX_H
#define HW_FIX_H

#include "base/common.h"

/* Terminal ids: protobuf clients 1..32 chars of [0-9A-Za-z_-]; JT/T 808 the 12- or 20-digit phone
 * number with its leading zeros. */
#define HW_TERMINAL_ID_MAX 32
/* The longest id a fix may be stored under: also "jt809:ACCESSCODE:PLATE:COLOUR", a vehicle a
 * JT/T 809 platform reports and the registry does not know (jt809/jt809_login.h; 84 bytes with a
 * 63-byte UTF-8 plate). Only that form may exceed HW_TERMINAL_ID_MAX: buffers on the position
 * path (registry records, pg writer, Redis state, rules, SSE) take this size, everything that
 * provisions or names terminals keeps HW_TERMINAL_ID_MAX. */
#define HW_TID_WIDE_MAX 84
#define HW_TID_WIDE_PREFIX "jt809:"
#define HW_DRIVER_ID_MAX 32

/* Where a fix came from; stored with it. */
typedef enum { HW_SRC_PROTOBUF = 0, HW_SRC_JT808 = 1, HW_SRC_JT809 = 2 } hw_fix_source;

typedef struct hw_fix {
  int64_t seq;          /* per terminal, strictly growing (protobuf); JT/T 808: 0 */
  int64_t ts_ms;        /* device time, UTC ms */
  int64_t recv_ms;      /* server receipt time, UTC ms */
  int32_t lat_e6;       /* 1e-6 degrees, south negative */
  int32_t lon_e6;       /* 1e-6 degrees, west negative */
  uint32_t speed_dkmh;  /* 0.1 km/h */
  uint16_t heading;     /* degrees, 0..359 */
  uint8_t source;       /* hw_fix_source */
  uint8_t has_driver;   /* driver_id is set */
  int32_t alt_m;        /* metres */
  uint32_t alarm;       /* JT/T 808 alarm bits */
  uint32_t status;      /* JT/T 808 status bits */
  uint32_t odometer_hm; /* 0.1 km */
  uint16_t quality;     /* 0 = good; else HW_Q_* bits saying why the fix is not trusted (the
                           rules' checks in rules/quality.h, a decoder's below) */
  char driver_id[HW_DRIVER_ID_MAX + 1];
} hw_fix;

/* Quality bits a protocol decoder sets for a field it could not take, so that the fix is still
 * stored (flagged) rather than refused; the same bit space as rules/quality.h (HW_Q_*). */
#define HW_Q_BAD_HEADING 0x0100u /* heading above 359: stored as sent, at most INT16_MAX */
#define HW_Q_BAD_DRIVER 0x0200u  /* driver id too long: stored without the driver */
/* These two say one field was not usable; the time and the position still are, so such a fix
 * still counts for the latest state and the safety rules (a device that always sends heading
 * 360 must not vanish from the map). Every other bit keeps the fix out of both. */
#define HW_Q_FIELD_ONLY 768 /* decimal: also spliced into SQL (rule_store.c) */
_Static_assert(HW_Q_FIELD_ONLY == (HW_Q_BAD_HEADING | HW_Q_BAD_DRIVER), "HW_Q_FIELD_ONLY");

/* 1 when the fix's time and position can be trusted (no bit outside HW_Q_FIELD_ONLY). */
static inline int hw_fix_trusted(const hw_fix *f) { return (f->quality & ~HW_Q_FIELD_ONLY) == 0; }

/* 0 when the terminal id is acceptable, -EINVAL otherwise. */
int hw_terminal_id_check(const char *id, size_t len) HW_MUST_CHECK;
/* 0 when a fix may be stored under id: a terminal id as above, or "jt809:..." of at most
 * HW_TID_WIDE_MAX bytes without control characters; -EINVAL otherwise. */
int hw_stored_tid_check(const char *id, size_t len) HW_MUST_CHECK;

#endif
