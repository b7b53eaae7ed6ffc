/* Names and the alarm number's text form for active-safety alarms (see safety_alarm.h). */
#include "base/safety_alarm.h"

#include <stdio.h>

size_t hw_safety_alarm_no_format(const hw_safety_alarm_no *no, char *buf, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  char t[13];
  for (int i = 0; i < 6; i++) {
    t[2 * i] = hex[no->bcd_time[i] >> 4];
    t[2 * i + 1] = hex[no->bcd_time[i] & 15];
  }
  t[12] = 0;
  if (cap == 0)
    return 0;
  int n = snprintf(buf, cap, "%s-%s-%u", no->terminal_id, t, no->seq);
  if (n < 0) {
    buf[0] = 0;
    return 0;
  }
  return (size_t)n < cap ? (size_t)n : cap - 1;
}

const char *hw_safety_kind_name(unsigned kind) {
  switch (kind) {
  case HW_SAFETY_ADAS: return "adas";
  case HW_SAFETY_DSM: return "dsm";
  case HW_SAFETY_TPMS: return "tpms";
  case HW_SAFETY_BSD: return "bsd";
  default: return "?";
  }
}

const char *hw_safety_type_name(unsigned kind, unsigned type) {
  static const char *const adas[] = {NULL, "forward_collision", "lane_departure", "headway",
                                     "pedestrian_collision", "frequent_lane_change",
                                     "road_sign_limit", "obstacle"};
  static const char *const dsm[] = {NULL, "fatigue", "phone", "smoking", "distracted",
                                    "driver_abnormal"};
  if (kind == HW_SAFETY_ADAS) {
    if (type < sizeof adas / sizeof *adas)
      return adas[type];
    return type == 0x10 ? "road_sign_event" : type == 0x11 ? "active_capture" : NULL;
  }
  if (kind == HW_SAFETY_DSM) {
    if (type < sizeof dsm / sizeof *dsm)
      return dsm[type];
    return type == 0x10 ? "auto_capture" : type == 0x11 ? "driver_change" : NULL;
  }
  if (kind == HW_SAFETY_BSD)
    return type == 1 ? "rear_approach" : type == 2 ? "left_rear_approach"
         : type == 3 ? "right_rear_approach" : NULL;
  return NULL;
}
