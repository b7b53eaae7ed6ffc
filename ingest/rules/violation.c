#include "rules/violation.h"

static const char *const hw_kind_names[HW_VIOL__COUNT] = {
    [HW_VIOL_SPEEDING] = "speeding",
    [HW_VIOL_FATIGUE_CONTINUOUS] = "fatigue_continuous",
    [HW_VIOL_FATIGUE_DAILY] = "fatigue_daily",
    [HW_VIOL_NIGHT_DRIVING] = "night_driving",
    [HW_VIOL_NIGHT_SPEEDING] = "night_speeding",
    [HW_VIOL_RETIRED_CLASS] = "retired_class",
    [HW_VIOL_DEREGISTERED_VEHICLE] = "deregistered_vehicle",
    [HW_VIOL_EXPIRED_PERMIT] = "expired_permit",
    [HW_VIOL_RESTRICTED_ZONE] = "restricted_zone",
    [HW_VIOL_OFFLINE_DISPLACEMENT] = "offline_displacement",
    [HW_VIOL_UNREGISTERED_TERMINAL] = "unregistered_terminal",
    [HW_VIOL_DSM_FATIGUE] = "dsm_fatigue",
    [HW_VIOL_DSM_PHONE] = "dsm_phone",
    [HW_VIOL_DSM_SMOKING] = "dsm_smoking",
    [HW_VIOL_DSM_DISTRACTED] = "dsm_distracted",
    [HW_VIOL_ADAS_FORWARD_COLLISION] = "adas_forward_collision",
    [HW_VIOL_ADAS_LANE_DEPARTURE] = "adas_lane_departure",
    [HW_VIOL_ADAS_HEADWAY] = "adas_headway",
    [HW_VIOL_ADAS_PEDESTRIAN] = "adas_pedestrian",
};

const char *hw_violation_kind_name(int kind) {
  if (kind < 0 || kind >= HW_VIOL__COUNT)
    return NULL;
  return hw_kind_names[kind];
}

const char *hw_violation_unit(int kind) {
  switch (kind) {
  case HW_VIOL_SPEEDING:
  case HW_VIOL_NIGHT_SPEEDING:
    return "dkmh";
  case HW_VIOL_FATIGUE_CONTINUOUS:
  case HW_VIOL_FATIGUE_DAILY:
  case HW_VIOL_NIGHT_DRIVING:
    return "s";
  case HW_VIOL_OFFLINE_DISPLACEMENT:
    return "m";
  default:
    return "";
  }
}

const char *hw_violation_phase_name(int phase) {
  switch (phase) {
  case HW_PHASE_OPEN:
    return "open";
  case HW_PHASE_UPDATE:
    return "update";
  case HW_PHASE_CLOSE:
    return "close";
  default:
    return "?";
  }
}
