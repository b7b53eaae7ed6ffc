/* The active-safety alarm record (smart safety devices: ADAS, DSM, TPMS, BSD), what the JT/T 808
 * codec (jt808/jt808_safety.h) produces and the sinks, rules and pipeline consume, as base/fix.h
 * is for positions; with the alarm identification number's text form and the names of kinds and
 * types. docs/active-safety.md describes the fields. */
#ifndef HW_SAFETY_ALARM_H
#define HW_SAFETY_ALARM_H

#include "base/common.h"

/* Item ids in a 0x0200 body. */
enum {
  HW_SAFETY_ITEM_ADAS = 0x64,
  HW_SAFETY_ITEM_DSM = 0x65,
  HW_SAFETY_ITEM_TPMS = 0x66,
  HW_SAFETY_ITEM_BSD = 0x67,
};

typedef enum hw_safety_kind {
  HW_SAFETY_ADAS = 1,
  HW_SAFETY_DSM = 2,
  HW_SAFETY_TPMS = 3,
  HW_SAFETY_BSD = 4,
} hw_safety_kind;

typedef enum hw_safety_layout {
  HW_SAFETY_SU = 1,  /* T/JSATL12-2017: alarm number 16 bytes, terminal id 7 */
  HW_SAFETY_YUE = 2, /* Guangdong: alarm number 40 bytes, terminal id 30 */
} hw_safety_layout;

/* Alarm and event types the rules and reports name (others are kept as numbers). */
enum {
  HW_ADAS_FORWARD_COLLISION = 0x01,
  HW_ADAS_LANE_DEPARTURE = 0x02,
  HW_ADAS_HEADWAY = 0x03,
  HW_ADAS_PEDESTRIAN = 0x04,
  HW_DSM_FATIGUE = 0x01,
  HW_DSM_PHONE = 0x02,
  HW_DSM_SMOKING = 0x03,
  HW_DSM_DISTRACTED = 0x04,
  HW_DSM_DRIVER_ABNORMAL = 0x05,
};

#define HW_SAFETY_ALARM_NO_SU_LEN 16
#define HW_SAFETY_ALARM_NO_YUE_LEN 40
#define HW_SAFETY_TID_MAX 30 /* the 粤标 terminal id field */
/* "TID-YYMMDDhhmmss-SEQ" with TID at most 2 x 30 hex digits and a prefix: see format below. */
#define HW_SAFETY_ALARM_NO_TEXT_MAX 96

/* The alarm identification number (报警标识号). The attachment server (0x9208 / 0x1210) matches
 * uploads to alarms by it: hw_safety_alarm_no_format gives the text both sides store. */
typedef struct hw_safety_alarm_no {
  uint8_t layout;     /* hw_safety_layout */
  uint8_t raw_len;    /* 16 or 40 */
  uint8_t raw[HW_SAFETY_ALARM_NO_YUE_LEN]; /* the bytes as sent */
  /* Terminal id: printable ASCII with NUL and space padding trimmed; an id with any other byte
   * is given as "hex:" and the hex of all its bytes, so it is always [0-9A-Za-z:] safe text. */
  char terminal_id[5 + 2 * HW_SAFETY_TID_MAX + 1];
  uint8_t bcd_time[6]; /* YYMMDDhhmmss, GMT+8, as sent */
  int64_t ts_ms;       /* that time in UTC ms; 0 when the BCD is not a valid time */
  uint8_t seq;         /* sequence of alarms within that second */
  uint8_t attachments; /* attachment count */
  uint16_t reserved;   /* 苏标 1 byte, 粤标 2 bytes, as a number */
} hw_safety_alarm_no;

#define HW_SAFETY_TYRES_MAX 28 /* the count byte may say up to 255; events beyond are not kept */

typedef struct hw_safety_tyre {
  uint8_t position;
  uint16_t alarm_type; /* bits: 0 pressure, 1 high, 2 low, 3 high temp, 4 sensor, 5 leak, 6 battery */
  uint16_t pressure_kpa;
  uint16_t temp_c;
  uint16_t battery_pct;
} hw_safety_tyre;

typedef struct hw_safety_alarm {
  uint8_t item_id;  /* 0x64..0x67 */
  uint8_t kind;     /* hw_safety_kind */
  uint8_t layout;   /* hw_safety_layout */
  uint8_t has_level; /* 0 for TPMS and a BSD item without its level byte */
  uint32_t alarm_id;
  uint8_t flag;     /* 0 not applicable, 1 start, 2 end */
  uint8_t type;     /* alarm/event type as sent; TPMS: OR of its tyre events' low bits */
  uint8_t level;    /* 1 or 2 as sent (others kept); 0 when has_level is 0 */
  uint8_t speed_kmh;
  uint16_t alt_m;
  uint32_t lat_e6;  /* unsigned as sent; the 0x0200 status gives hemispheres */
  uint32_t lon_e6;
  uint8_t bcd_time[6];
  int64_t ts_ms;    /* UTC ms; 0 when the BCD is not a valid time */
  uint16_t vehicle_status;
  /* ADAS */
  uint8_t front_speed_kmh, front_distance_ds, deviation, sign_type, sign_value;
  /* DSM */
  uint8_t fatigue;
  /* TPMS */
  uint8_t tyre_count;  /* as sent */
  uint8_t tyres_kept;  /* min(tyre_count, HW_SAFETY_TYRES_MAX) */
  hw_safety_tyre tyres[HW_SAFETY_TYRES_MAX];
  hw_safety_alarm_no no;
} hw_safety_alarm;

/* The text form: "<terminal_id>-<YYMMDDhhmmss>-<seq>" (BCD nibbles as hex digits, so a bad time
 * still has a stable text); attachment count and reserved bytes are not part of it. Always NUL
 * terminated; cap >= HW_SAFETY_ALARM_NO_TEXT_MAX never truncates. Returns the length. */
size_t hw_safety_alarm_no_format(const hw_safety_alarm_no *no, char *buf, size_t cap);

/* Lower-case names for the store and the API: "adas", "dsm", "tpms", "bsd"; "?" otherwise. */
const char *hw_safety_kind_name(unsigned kind);
/* The type's name within its kind ("fatigue", "phone", "forward_collision", ...), NULL when the
 * standard names none (kept as a number). */
const char *hw_safety_type_name(unsigned kind, unsigned type);

#endif
