/* JT/T 809 dynamic vehicle data carried in 0x1200 (after the wrapper of jt809_msg.h):
 * 0x1201 registration, 0x1202 real-time position, 0x1203 back-filled positions, and the
 * conversion of a position into the project's hw_fix.
 *
 * GNSS record, 2011 (36 bytes): encrypt u8, day u8, month u8, year u16, hour u8, minute u8,
 * second u8 (GMT+8), lon u32, lat u32 (1e-6 degrees), vec1 u16 (satellite speed, km/h),
 * vec2 u16 (recorder speed, km/h), vec3 u32 (mileage, km), direction u16, altitude u16 (m),
 * state u32 and alarm u32 (the JT/T 808 status and alarm bits).
 * GNSS record, 2019: encrypt u8, length u32, a JT/T 808-2019 0x0200 body of that length, then
 * three times (platform id [11], alarm u32): the enterprise, city and province platforms.
 * Two deviations seen in real 2019 traffic (SmallChi/JT809's tests keep both) are accepted:
 *   - the inner data is the 2011 record without its encrypt byte (35 bytes: date, time, lon,
 *     lat, vec1-3, direction, altitude, state, alarm) instead of a 0x0200 body: a 35-byte inner
 *     that does not read as a 0x0200 body but has a valid date is read that way (inner_2011);
 *   - a 0x0200 body with a stray byte after its last item: the items that fit are used.
 *
 * Parsers never read outside their input and never allocate; records borrow from it.
 * Errors: -EBADMSG a record or count that does not fit the bytes; for the fix: -ERANGE
 * coordinates or direction out of range, -EINVAL an impossible date or time. */
#ifndef HW_JT809_VEHICLE_H
#define HW_JT809_VEHICLE_H

#include "base/fix.h"
#include "jt809/jt809_msg.h"

/* 0x1200 data types. */
enum {
  HW_JT809_EXG_REGISTER = 0x1201,
  HW_JT809_EXG_REAL_LOCATION = 0x1202,
  HW_JT809_EXG_HISTORY_LOCATION = 0x1203,
  HW_JT809_PLATFORM_QUERY = 0x9301,    /* in 0x9300 */
  HW_JT809_PLATFORM_INFO = 0x9302,     /* in 0x9300 */
  HW_JT809_PLATFORM_QUERY_ACK = 0x1301, /* in 0x1300 */
  HW_JT809_WARN_ADPT_INFO = 0x1402,    /* in 0x1400 */
  HW_JT809_WARN_URGE_TODO = 0x9401,    /* in 0x9400 */
};

#define HW_JT809_GNSS_2011 36
#define HW_JT809_GNSS_2019_MIN 50 /* 1 + 4 + 0 + 3 * 15 */

typedef struct hw_jt809_gnss {
  uint8_t is_2019;
  uint8_t encrypted;      /* 1: coordinates shifted by the national map plugin (kept as sent) */
  /* 2011 */
  uint8_t day, month, hour, minute, second;
  uint16_t year;
  uint32_t lon, lat;      /* 1e-6 degrees, magnitude (the sign is in state bits 2 and 3) */
  uint16_t vec1, vec2;    /* km/h: satellite, recorder */
  uint32_t vec3;          /* km */
  uint16_t direction;     /* degrees */
  uint16_t altitude;      /* m */
  uint32_t state, alarm;  /* JT/T 808 bits */
  /* 2019 */
  uint8_t inner_2011;     /* the inner data held the 2011 fields above, not a 0x0200 body */
  const uint8_t *loc;     /* borrowed: the JT/T 808-2019 0x0200 body (or the 35 2011 bytes) */
  uint32_t loc_len;
  char platform_id[3][12];
  uint32_t platform_alarm[3];
} hw_jt809_gnss;

/* One record from p[0..len); *used is its size. */
int hw_jt809_parse_gnss(const uint8_t *p, size_t len, int is_2019, hw_jt809_gnss *g,
                        size_t *used) HW_MUST_CHECK;
/* Writes one record in g->is_2019's layout. 0, -ENOSPC, -EOVERFLOW. */
int hw_jt809_encode_gnss(const hw_jt809_gnss *g, uint8_t *out, size_t cap, size_t *out_len)
    HW_MUST_CHECK;

/* 0x1202: exactly one record (bytes after it are ignored). */
int hw_jt809_parse_position(const uint8_t *data, size_t len, int is_2019, hw_jt809_gnss *g)
    HW_MUST_CHECK;

/* The fix the pipeline takes: source HW_SRC_JT809, seq 0, recv_ms as given. Speed is the
 * satellite speed (vec1), odometer the mileage (vec3), status and alarm as JT/T 808; a 2019
 * record goes through the JT/T 808 location decoder (its speed, items and odometer item 0x01).
 * 0 when *fix is valid; otherwise the error codes above and *fix must not be used. */
int hw_jt809_gnss_to_fix(const hw_jt809_gnss *g, int64_t recv_ms, hw_fix *fix) HW_MUST_CHECK;

/* 0x1203: count u8 then that many records.
 *
 *   hw_jt809_batch b;
 *   if (hw_jt809_batch_begin(&b, data, len, is_2019) == 0)
 *     while ((rc = hw_jt809_batch_next(&b, &g)) == 1)
 *       if (hw_jt809_gnss_to_fix(&g, now, &fix) == 0) use(&fix);
 *   // rc == 0: all records read; rc < 0: cut short, the records returned stand
 */
typedef struct hw_jt809_batch {
  const uint8_t *p, *end; /* borrowed: the data must outlive the iteration */
  uint8_t count;          /* announced (the standard says 1..5; any value is read) */
  uint8_t seen;
  uint8_t is_2019;
} hw_jt809_batch;

int hw_jt809_batch_begin(hw_jt809_batch *b, const uint8_t *data, size_t len, int is_2019)
    HW_MUST_CHECK;
/* 1: *g holds the next record. 0: all `count` records read. -EBADMSG: the data ends before
 * `count` records (a count larger than the body). */
int hw_jt809_batch_next(hw_jt809_batch *b, hw_jt809_gnss *g) HW_MUST_CHECK;
/* 0x1203 data from n records. */
int hw_jt809_encode_batch(const hw_jt809_gnss *g, size_t n, uint8_t *out, size_t cap,
                          size_t *out_len) HW_MUST_CHECK;

/* 0x1201 vehicle registration, in the three layouts seen in real traffic, told apart by the
 * data length (not the edition: platforms mix them):
 *   49:  platform id [11], producer id [11], model [8],  terminal id [7],  SIM [12]
 *   61:  platform id [11], producer id [11], model [20], terminal id [7],  SIM [12]
 *   110: platform id [11], producer id [11], model [30], IMEI [15], terminal id [30], SIM [13]
 * Any other length is -EBADMSG. */
typedef struct hw_jt809_register {
  uint8_t layout;         /* 49, 61 or 110 */
  char platform_id[12];
  char producer_id[12];
  char model[31];
  char imei[16];          /* 110 only */
  char terminal_id[31];
  char sim[14];
} hw_jt809_register;

int hw_jt809_parse_register(const uint8_t *data, size_t len, hw_jt809_register *out)
    HW_MUST_CHECK;
/* Writes r in r->layout. */
int hw_jt809_encode_register(const hw_jt809_register *r, uint8_t *out, size_t cap,
                             size_t *out_len) HW_MUST_CHECK;

#endif
