/* What the safety rules emit: one event per change of a violation episode.
 *
 * Every episode has a deterministic identity (`episode_id`), built only from the terminal, the
 * kind and facts of the data (start time, or calendar day), never from a counter or the clock.
 * Evaluating the same fixes again, after a restart or a replay, yields the same identities, so the
 * consumer stores events as an idempotent upsert keyed by episode_id:
 *   started_ms and lat/lon_e6: from the event with the least started_ms;
 *   ended_ms: the greatest; value: the greatest (measured values only grow within an episode,
 *   except speeding whose value goes with grade: keep value/limit/grade of the event with the
 *   greatest grade, ties the greater value); evidence: the latest; phase close is final.
 *
 * Identity formats (all ASCII; days are GMT+8 calendar days YYYYMMDD):
 *   <terminal>/<kind>/<started_ms>        speeding, night_speeding, fatigue_continuous,
 *                                         night_driving, offline_displacement
 *   <terminal>/<kind>/<day>               retired_class, deregistered_vehicle, expired_permit,
 *                                         unregistered_terminal  (one per vehicle per day)
 *   <terminal>/fatigue_daily/<day>/<driver id or ->   (daily driving is the driver's)
 *   <terminal>/restricted_zone/<day>/<zone id>        (one per zone per day)
 *   <terminal>/<kind>/<alarm_ms>/<alarm id>           dsm_*, adas_* (one per alarm)
 */
#ifndef HW_VIOLATION_H
#define HW_VIOLATION_H

#include "base/fix.h"

typedef enum {
  HW_VIOL_SPEEDING = 0,
  HW_VIOL_FATIGUE_CONTINUOUS,
  HW_VIOL_FATIGUE_DAILY,
  HW_VIOL_NIGHT_DRIVING,        /* continuous driving at night over the night limit */
  HW_VIOL_NIGHT_SPEEDING,       /* at night above night_speed_pct of the limit */
  HW_VIOL_RETIRED_CLASS,
  HW_VIOL_DEREGISTERED_VEHICLE, /* scrapped or deregistered */
  HW_VIOL_EXPIRED_PERMIT,
  HW_VIOL_RESTRICTED_ZONE,      /* no-entry zone, or an expressway for a class not allowed on one */
  HW_VIOL_OFFLINE_DISPLACEMENT,
  HW_VIOL_UNREGISTERED_TERMINAL,
  /* Active-safety alarms that are violations (rules/rule_alarm.c; which ones is configuration:
   * hw_rules_config.alarm_violations): one per alarm, emitted closed. */
  HW_VIOL_DSM_FATIGUE,
  HW_VIOL_DSM_PHONE,
  HW_VIOL_DSM_SMOKING,
  HW_VIOL_DSM_DISTRACTED,
  HW_VIOL_ADAS_FORWARD_COLLISION,
  HW_VIOL_ADAS_LANE_DEPARTURE,
  HW_VIOL_ADAS_HEADWAY,
  HW_VIOL_ADAS_PEDESTRIAN,
  HW_VIOL__COUNT
} hw_violation_kind;

typedef enum {
  HW_PHASE_OPEN = 0,   /* first event of an episode */
  HW_PHASE_UPDATE = 1, /* still going: ended_ms/value grew (at most every update_interval_s) */
  HW_PHASE_CLOSE = 2   /* complete; an episode known complete when found is emitted once, closed */
} hw_violation_phase;

#define HW_EPISODE_ID_MAX 160 /* terminal id (up to HW_TID_WIDE_MAX) "/" kind "/" tail */
#define HW_EVIDENCE_MAX 384

typedef struct hw_violation_event {
  uint8_t kind;       /* hw_violation_kind */
  uint8_t phase;      /* hw_violation_phase */
  uint8_t grade;      /* speeding kinds: 1 (<20 % over), 2 (20-50 %), 3 (>=50 %); else 0 */
  char terminal_id[HW_TID_WIDE_MAX + 1];
  char episode_id[HW_EPISODE_ID_MAX];
  int64_t started_ms; /* device time, UTC ms */
  int64_t ended_ms;   /* last instant known to belong to the episode so far */
  int32_t lat_e6, lon_e6; /* position at started_ms */
  /* Measured value and the limit it broke, in the kind's unit (hw_violation_unit):
   *   speeding, night_speeding      "dkmh" speed at the worst point / limit there (0.1 km/h)
   *   fatigue_*, night_driving      "s"    driving time / limit
   *   offline_displacement          "m"    displacement / threshold (evidence has the gap)
   *   other kinds                   ""     value = speed at the first position, limit 0 */
  int64_t value;
  int64_t limit;
  char evidence[HW_EVIDENCE_MAX]; /* a JSON object, valid UTF-8 (control characters and
                                     ill-formed UTF-8 in wire strings become '?') */
} hw_violation_event;

/* "speeding", "fatigue_continuous", ...; NULL for an unknown kind. */
const char *hw_violation_kind_name(int kind);
/* "dkmh", "s", "m" or "". */
const char *hw_violation_unit(int kind);
/* "open", "update", "close". */
const char *hw_violation_phase_name(int phase);

typedef void (*hw_violation_cb)(const hw_violation_event *ev, void *arg);

#endif
