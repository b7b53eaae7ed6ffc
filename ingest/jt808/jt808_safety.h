/* Active-safety alarms (T/JSATL12-2017, "苏标", and its Guangdong variant "粤标") carried as
 * additional items of a JT/T 808 0x0200 body: 0x64 ADAS, 0x65 DSM, 0x66 TPMS, 0x67 BSD.
 * Pure codec: bytes in, structs out, no allocation, nothing read outside the given range.
 *
 * Layouts (docs/active-safety.md has the tables). Every item starts with
 *   alarm id DWORD, flag status BYTE
 * and ends its common part with
 *   vehicle speed BYTE (km/h), altitude WORD (m), latitude DWORD, longitude DWORD (1e-6 degrees,
 *   unsigned), time BCD[6] (YYMMDDhhmmss, GMT+8), vehicle status WORD, alarm identification
 *   number (苏标 16 bytes, 粤标 40 bytes),
 * with, between them:
 *   ADAS: type, level, front vehicle speed, front distance (0.1 s), deviation type, road sign
 *         type, road sign value (7 bytes);
 *   DSM:  type, level, fatigue degree, 4 reserved bytes (7 bytes);
 *   BSD:  type, and in some implementations a level byte (1 or 2 bytes);
 *   TPMS: nothing; the item ends with an event count BYTE and that many 9-byte tyre events
 *         (position BYTE, alarm type WORD bits, pressure WORD kPa, temperature WORD degC,
 *         battery WORD %).
 * Devices mix the two standards whatever their header version says, so the layout is chosen by
 * the item's length alone: ADAS 47 (苏标) or 71 (粤标); DSM 47 or 71; BSD 41/42 or 65/66; TPMS
 * 41 + 9n or 65 + 9n where n is the count byte at that layout's offset. Any other length is not
 * decoded (-EBADMSG for that item; the fix and the other items stand). Alarm and event types are
 * kept as sent, known or not. The record itself (hw_safety_alarm, hw_safety_alarm_no) is in
 * base/safety_alarm.h, included here. */
#ifndef HW_JT808_SAFETY_H
#define HW_JT808_SAFETY_H

#include "base/safety_alarm.h"

/* Decodes one alarm identification number of raw_len 16 (苏标) or 40 (粤标) bytes. 0 or -EBADMSG
 * for any other length. A bad BCD time is not an error (ts_ms 0). */
int hw_safety_alarm_no_parse(const uint8_t *p, size_t len, hw_safety_alarm_no *out) HW_MUST_CHECK;

/* Decodes item id with value v[0..n). 0: *out is filled. -ENOENT: id is not 0x64..0x67.
 * -EBADMSG: n fits neither layout (nothing of *out may be used). */
int hw_safety_parse_item(uint8_t id, const uint8_t *v, size_t n, hw_safety_alarm *out) HW_MUST_CHECK;

/* Walks the additional items of a 0x0200 body (as hw_jt808_parse_location does) and decodes
 * every active-safety item into out[0..max). *n gets the number decoded, *bad the safety items
 * that fit no layout or did not fit in out. 0, or -EBADMSG when the body is shorter than its
 * fixed part or an item runs past it (then *n items decoded before that point stand). */
int hw_safety_scan(const uint8_t *body, size_t len, hw_safety_alarm *out, size_t max, size_t *n,
                   size_t *bad) HW_MUST_CHECK;

#endif
