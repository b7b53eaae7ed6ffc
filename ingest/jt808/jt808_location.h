/* JT/T 808 positions: 0x0200 location report and 0x0704 batch upload, decoded into hw_fix.
 *
 * 0x0200 body: alarm DWORD, status DWORD, latitude DWORD, longitude DWORD (1e-6 degrees, unsigned,
 * south/west from status bits 2/3), altitude WORD (m, unsigned), speed WORD (0.1 km/h), direction
 * WORD, time BCD[6] YYMMDDhhmmss GMT+8, then additional items (id BYTE, length BYTE, value).
 * Decoded items: 0x01 odometer, 0x02 fuel, 0x03 recorder speed, 0x25 extended signals, 0x2A IO,
 * 0x2B analog, 0x30 signal strength, 0x31 satellites; every other item (vendor 0xE0-0xFF, ADAS,
 * video, ...) and a known id with an unexpected length is skipped by its length byte.
 *
 * Error codes, for the fix only (the frame is still answered; the session decides):
 *   -EBADMSG  body shorter than 28 bytes, or an item (or a lone trailing byte) running past it;
 *   -ERANGE   latitude above 90 or longitude above 180 degrees (swapped by some devices), or a
 *             direction above 360 (360 is read as 0);
 *   -EINVAL   time not valid BCD or out of range (month 13, 30 February, all zeros, ...).
 * Nothing is ever read outside body[0..len). */
#ifndef HW_JT808_LOCATION_H
#define HW_JT808_LOCATION_H

#include "base/fix.h"

#define HW_JT808_LOCATION_MIN 28 /* fixed part of a 0x0200 body */

/* hw_jt808_loc_extra.has bits. */
enum {
  HW_JT808_HAS_ODOMETER = 1u << 0,    /* in fix->odometer_hm */
  HW_JT808_HAS_FUEL = 1u << 1,
  HW_JT808_HAS_REC_SPEED = 1u << 2,
  HW_JT808_HAS_EXT_SIGNALS = 1u << 3,
  HW_JT808_HAS_IO = 1u << 4,
  HW_JT808_HAS_ANALOG = 1u << 5,
  HW_JT808_HAS_SIGNAL = 1u << 6,
  HW_JT808_HAS_SATELLITES = 1u << 7,
};

/* What a 0x0200 carries beyond hw_fix. A field is meaningful only when its bit is in `has`. */
typedef struct hw_jt808_loc_extra {
  uint32_t has;
  uint32_t ext_signals;    /* 0x25 extended vehicle signal bits */
  uint32_t analog;         /* 0x2B: bits 0-15 AD0, 16-31 AD1 */
  uint16_t fuel_dl;        /* 0x02 fuel, 0.1 L */
  uint16_t rec_speed_dkmh; /* 0x03 speed from the tachograph, 0.1 km/h */
  uint16_t io;             /* 0x2A IO status bits */
  uint8_t signal;          /* 0x30 wireless signal strength */
  uint8_t satellites;      /* 0x31 GNSS satellites in use */
  uint16_t skipped_items;  /* items present but not decoded */
} hw_jt808_loc_extra;

/* Decodes a 0x0200 body into *fix (source HW_SRC_JT808, seq 0, recv_ms as given, driver unset)
 * and, when extra is not NULL, *extra. 0 for a valid fix, else an error code above and the
 * contents of *fix / *extra must not be used. */
int hw_jt808_parse_location(const uint8_t *body, size_t len, int64_t recv_ms, hw_fix *fix,
                            hw_jt808_loc_extra *extra) HW_MUST_CHECK;

/* 0x0704: count WORD, type BYTE (0 normal, 1 blind-area back-fill), then count x (length WORD,
 * 0x0200 body). Iterate:
 *
 *   hw_jt808_batch b;
 *   if (hw_jt808_batch_begin(&b, body, len) == 0)
 *     while ((rc = hw_jt808_batch_next(&b, now, &fix, &extra, &item_rc)) == 1)
 *       if (item_rc == 0) use(&fix); else count_invalid(item_rc);
 *     // rc == 0: all items seen; rc < 0: the batch is cut short (see below)
 */
typedef struct hw_jt808_batch {
  const uint8_t *p;   /* borrowed: next item in the body */
  const uint8_t *end; /* borrowed */
  uint16_t count;     /* items announced */
  uint16_t seen;      /* items returned so far */
  uint8_t type;       /* 0 normal, 1 blind-area back-fill (other values passed through) */
  const uint8_t *last; /* borrowed: the 0x0200 body of the item last returned */
  size_t last_len;
} hw_jt808_batch;

/* 0, or -EBADMSG for a body shorter than 3 bytes. The body must outlive the iteration. */
int hw_jt808_batch_begin(hw_jt808_batch *b, const uint8_t *body, size_t len) HW_MUST_CHECK;

/* 1: one item was read; *item_rc is its hw_jt808_parse_location result (0 = *fix valid). One bad
 * item does not stop the others.
 * 0: all `count` items were read (bytes after them are ignored).
 * -EBADMSG: an item's length WORD runs past the body, or the body ends before `count` items:
 * the items already returned stand, the rest are lost. */
int hw_jt808_batch_next(hw_jt808_batch *b, int64_t recv_ms, hw_fix *fix, hw_jt808_loc_extra *extra,
                        int *item_rc) HW_MUST_CHECK;

#endif
