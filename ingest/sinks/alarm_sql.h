/* Active-safety alarms as rows of safety_alarms (schema/022_safety_alarms.sql): the INSERT text
 * the position writer runs in the transaction of the fix that carried them
 * (hw_pg_writer_add_sql), and the JSON published on Redis channel hw:alarms. Pure formatting:
 * every value is a number or text checked to hold only [0-9A-Za-z_:-], so nothing needs quoting
 * beyond the literal's own quotes, and no statement can fail on the table's CHECKs. */
#ifndef HW_ALARM_SQL_H
#define HW_ALARM_SQL_H

#include "base/fix.h"
#include "base/safety_alarm.h"

/* Upper bounds of the fields JSON (a TPMS item holds at most 23 events of about 95 bytes each:
 * its length is one byte) and of one statement or event JSON around it. */
#define HW_ALARM_FIELDS_MAX 4096
#define HW_ALARM_SQL_MAX 8192

/* The item's own fields (ADAS headway, DSM fatigue, TPMS tyres, vehicle status, altitude, the
 * alarm number's raw parts) as a JSON object into buf. Returns its length, or -ENOSPC. */
int hw_alarm_fields_json(const hw_safety_alarm *a, char *buf, size_t cap) HW_MUST_CHECK;

/* The position an alarm row gets: the item's own latitude/longitude with the fix's hemispheres,
 * or the fix's when the item has none (0, 0) or an impossible one. */
void hw_alarm_position(const hw_safety_alarm *a, const hw_fix *fix, int32_t *lat_e6,
                       int32_t *lon_e6);

/* The alarm's time: the item's, else the fix's (an item whose BCD time was not valid). */
int64_t hw_alarm_time_ms(const hw_safety_alarm *a, const hw_fix *fix);

/* "INSERT INTO safety_alarms ... ON CONFLICT DO NOTHING; " for alarm a of terminal tid carried
 * by fix. The vehicle column is the plate registered for tid at commit time. Returns the length,
 * -EINVAL for a terminal id outside [0-9A-Za-z_-]{1,32}, -ENOSPC. */
int hw_alarm_insert_sql(const char *tid, const hw_safety_alarm *a, const hw_fix *fix, char *buf,
                        size_t cap) HW_MUST_CHECK;

/* The message published on hw:alarms: {"terminal_id","kind","type","type_name","level",
 * "alarm_at" (ms),"lat","lon","speed_kmh","alarm_no","attachments","fields"}. Length or -ENOSPC. */
int hw_alarm_event_json(const char *tid, const hw_safety_alarm *a, const hw_fix *fix, char *buf,
                        size_t cap) HW_MUST_CHECK;

#endif
