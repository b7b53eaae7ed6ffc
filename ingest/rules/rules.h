/* The safety-rules engine: per-vehicle evaluation of speeding, fatigue (continuous, daily, night),
 * offline displacement and registry rules (retired class, deregistered vehicle, expired permit,
 * restricted zone, unregistered terminal). Pure computation: no I/O, no event loop, no clock;
 * violations leave through a callback (violation.h), time comes from the fixes.
 *
 * Not thread-safe: one engine per loop thread, terminals not shared between engines. The
 * callback must not call back into the engine.
 *
 * Pipeline (per fix, in arrival order, on the loop thread):
 *     hw_rules_on_fix(engine, terminal, terminal->vehicle, &fix);   sets fix.quality
 *     store the fix with its quality;  if (fix.quality == 0) update the latest state.
 * Every fix of every terminal goes through hw_rules_on_fix, bound or not, good or not: it is also
 * the data-quality gate (quality.h), with the jump reference kept in the rule state.
 *
 * DEFINITIONS
 *   Moving fix: reported speed >= moving_dkmh (default 5 km/h).
 *   Interval: two consecutive good fixes in device-time order, p then c, dt = c - p apart,
 *     d metres apart.
 *   Driving interval (dt <= max_interval_s): both p and c are moving, or d >= moving_dist_m.
 *     A stop therefore runs from the last moving fix to the next one, as long as the vehicle
 *     does not go anywhere: a single fix of GPS speed noise does not break a rest, and a rest is
 *     never shorter than the stationary time the data proves.
 *   Gap (dt > max_interval_s, default 300 s): no reports to say what happened. Without
 *     displacement (d < gap_move_m) it is rest. With displacement (d >= gap_move_m, default
 *     1 km: more than a cold-start drift) the vehicle was driven for
 *     at least d / gap_speed_kmh (default 30 km/h) of it (at most all of it); that driving is
 *     placed at the end of the gap and the rest before it (parked, then drove off before the
 *     terminal came back), so an hour-long gap over 40 km counts as an hour of driving while a
 *     night parked plus a 2 km cold-start drift counts as rest.
 *   Continuous driving: driving time since the last qualifying rest (a stop of at least
 *     min_rest) or driver change. Shorter stops neither reset it nor count towards it
 *     (count_short_stops = 1 makes them count).
 *   Driver: the last non-empty driver_id seen. Only a change from one known driver to another
 *     starts a new count; removing the card or inserting one after driving unidentified does
 *     not (that would let a driver reset his count with his own card).
 *   Calendar: GMT+8. Night 22:00-06:00 (night_from_min/night_to_min).
 *
 * RULES (class thresholds; a class field left 0 takes the engine default in hw_rules_config)
 *   speeding: speed above the effective limit = the lowest of the class limit (its expressway
 *     limit inside an expressway zone) and the limits of the speed-limit zones the fix is in
 *     (zones that apply to the class at that hour). An episode is a run of fixes above the limit
 *     without a gap (a gap ends it); it becomes a violation once it lasts speeding_min_s
 *     (last - first fix above the limit).
 *     Graded on the worst point: 1 under 20 % over, 2 from 20 to under 50 %, 3 at 50 % and more.
 *   fatigue_continuous: continuous driving above continuous_limit_s. Opens at the instant the
 *     limit is passed, closes at the start of the next qualifying rest (or driver change);
 *     value is the driving time.
 *   fatigue_daily: a driver's driving within one GMT+8 day above daily_limit_s (0 = no rule).
 *     Closes at midnight with the day's total.
 *   night_driving (classes with night_rules): continuous driving within one night above
 *     night_continuous_limit_s; night_speeding: at night above night_speed_pct % of the
 *     effective limit (same episode rules as speeding).
 *   retired_class / deregistered_vehicle / expired_permit: a moving fix at or after
 *     class->retired_after_ms / of a scrapped or deregistered vehicle / at or after
 *     permit_expires_ms. One per vehicle per day, with first and last position.
 *   restricted_zone: a moving fix inside a no-entry zone applying to the class at that hour, or
 *     inside an expressway zone when the class is not allowed on expressways. One per zone per
 *     vehicle per day.
 *   offline_displacement: a gap longer than offline_gap_s across which the vehicle moved more
 *     than offline_dist_m. Emitted once, closed, identity = start of the gap.
 *   unregistered_terminal: a good fix from a terminal with no vehicle. One per terminal per day.
 *   Registry note: hw_vehicle_class.expressway_allowed must be set for every class allowed on
 *   expressways (a zeroed class is not), and retired_after_ms is "may not move at or after":
 *   the end of 2025-12-31 GMT+8 is 2026-01-01T00:00+08:00.
 *
 * LATE AND OUT-OF-ORDER DATA (policy)
 *   Stateful rules (speeding, fatigue, night, offline) see each vehicle's fixes strictly in
 *   device-time order, exactly once. The state has an evaluation horizon (the last evaluated
 *   fix). A new fix newer than the horizon is queued (per vehicle, sorted, duplicates dropped);
 *   the head of the queue is evaluated as soon as it is contiguous with the horizon (no gap).
 *   A head behind a gap is held: terminals upload their blind-area backlog (JT/T 808 0x0704)
 *   after reconnecting, often after the first live fix, so the gap is usually about to be
 *   filled. Back-filled fixes are inserted into the queue and evaluated in order, so a
 *   back-filled hour of driving is driving, not a false rest or a false offline_displacement.
 *   The hold ends when the queue has waited hold_s of receipt time (fix.recv_ms, or
 *   hw_rules_tick's clock), or holds max_pending fixes; the gap is then decided as it is.
 *   reorder_s > 0 also holds contiguous fixes until the queue is that much newer, for links
 *   that reorder live fixes; the default 0 adds no latency.
 *   A fix at or before the horizon (arriving after its period was decided) never reopens a
 *   decision: stateful rules ignore it, the per-day rules (retired_class, deregistered_vehicle,
 *   expired_permit, unregistered_terminal, restricted_zone) still check it, merging into the
 *   day's episode (an earlier start) or emitting that day's episode, which the consumer upserts.
 *
 * OPEN EPISODES AT THE EDGES
 *   While a terminal reports, an open episode is re-emitted (HW_PHASE_UPDATE) at most once per
 *   update_interval_s of device time, so what the consumer holds may lag the newest fix by up to
 *   that much. The lag is closed (an UPDATE carrying the newest evaluated fix: last position,
 *   ended_ms, value) by hw_rules_flush:
 *     - when the terminal goes quiet: hw_rules_tick flushes a terminal that has had no fix for
 *       flush_quiet_s of receipt time, so within flush_quiet_s + the sweep period (60 + 10 s in
 *       the daemon) of its last fix arriving;
 *     - at shutdown, for every terminal, before the rule state is saved;
 *     - after a restart, the replayed terminals at the first sweep (their fixes' receipt times
 *       are old).
 *   A close is always exact. Fixes held behind a gap are not evaluated by a flush: they are
 *   decided when their hold ends (and flushed one sweep later), or replayed after a restart.
 *
 * RESTART SAFETY
 *   Open episodes, counters, the horizon and the quality reference live in hw_rule_state and
 *   can be encoded into versioned bytes (hw_rule_state_encode), which the daemon persists
 *   periodically. After a restart: decode, attach to terminal->rules, then replay the stored
 *   good fixes with device time > hw_rule_state_horizon_ms() in device-time order through
 *   hw_rules_on_fix (with their stored recv time) before live data; fixes at or before the
 *   horizon are late and cannot double-count. Episodes re-emitted during the replay carry the
 *   same episode_id (violation.h), so storing them is an idempotent upsert. Queued fixes are not
 *   encoded: they are newer than the horizon, so the replay brings them back. A terminal with no
 *   saved state (first seen after the last completed save) starts fresh and is replayed from all
 *   its fixes received since that save (sinks/rule_store.h), so a crash loses no evaluation.
 *
 * MEMORY
 *   About 300 bytes of state per terminal; a 1 KB extension only while night or daily counting,
 *   per-day or zone episodes need it (freed at the first day change after they end); the queue
 *   only while a gap is held. Encoded: under 100 bytes typically, at most about 1.2 KB.
 */
#ifndef HW_RULES_H
#define HW_RULES_H

#include "rules/quality.h"
#include "registry/registry.h"
#include "registry/terminal.h"
#include "rules/violation.h"
#include "registry/zone_index.h"

/* Defaults of the thresholds `serve` exposes as settings, written once: hw_rules_config_default
 * uses them, and serve's settings table quotes them as text (HW_XSTR), so they stay bare
 * literals. */
#define HW_RULES_DEF_OFFLINE_GAP_S 600
#define HW_RULES_DEF_OFFLINE_DIST_M 2000
#define HW_RULES_DEF_HOLD_S 600
#define HW_RULES_DEF_SPEEDING_MIN_S 30
#define HW_RULES_DEF_CONTINUOUS_LIMIT_S 14400 /* 4 h */
#define HW_RULES_DEF_MIN_REST_S 1200          /* 20 min */
#define HW_RULES_DEF_DAILY_LIMIT_S 0          /* no daily rule unless the class has one */
/* The alarm kinds that are violations unless configured otherwise, as the setting's text. */
#define HW_RULES_DEF_ALARM_VIOLATIONS "dsm_fatigue,dsm_phone,dsm_smoking"
#define HW_RULES_DEF_ALARM_MIN_LEVEL 2

typedef struct hw_rules_config {
  hw_quality_config quality;
  /* Movement and gaps. */
  uint32_t moving_dkmh;       /* 50 = 5 km/h */
  uint32_t moving_dist_m;     /* 200: displacement that makes an interval driving */
  uint32_t max_interval_s;    /* 300: longer intervals are gaps */
  uint32_t gap_move_m;        /* 1000: a gap with at least this displacement included driving */
  uint32_t gap_speed_kmh;     /* 30: assumed speed for the driving part of a gap */
  uint32_t offline_gap_s;     /* HW_RULES_DEF_OFFLINE_GAP_S */
  uint32_t offline_dist_m;    /* HW_RULES_DEF_OFFLINE_DIST_M */
  /* Ordering (see LATE AND OUT-OF-ORDER DATA). */
  uint32_t reorder_s;         /* 0 */
  uint32_t hold_s;            /* HW_RULES_DEF_HOLD_S */
  uint32_t max_pending;       /* 512 fixes per vehicle (64 bytes each, only while held) */
  uint32_t update_interval_s; /* 60: at most one UPDATE per open episode per this device time */
  uint32_t flush_quiet_s;     /* 60: a terminal this long without a fix (receipt time) is quiet:
                                 hw_rules_tick brings its open episodes up to date */
  /* Class defaults, used where the class has 0 or the vehicle has no class. */
  uint32_t speed_limit_dkmh;         /* 1000 = 100 km/h (trucks, anywhere) */
  uint32_t speeding_min_s;           /* HW_RULES_DEF_SPEEDING_MIN_S */
  uint32_t continuous_limit_s;       /* HW_RULES_DEF_CONTINUOUS_LIMIT_S */
  uint32_t min_rest_s;               /* HW_RULES_DEF_MIN_REST_S */
  uint32_t daily_limit_s;            /* HW_RULES_DEF_DAILY_LIMIT_S; 0 = no daily rule */
  uint32_t night_continuous_limit_s; /* 2 h */
  uint32_t night_speed_pct;          /* 80 */
  uint16_t night_from_min;           /* 22:00 = 1320 */
  uint16_t night_to_min;             /* 06:00 = 360 */
  uint8_t count_short_stops;         /* 0 */
  /* Active-safety alarms (hw_rules_on_alarm): bit (kind - HW_VIOL_DSM_FATIGUE) set = alarms of
   * that kind are violations when at least alarm_min_level and the vehicle is moving. */
  uint32_t alarm_violations;         /* HW_RULES_DEF_ALARM_VIOLATIONS */
  uint32_t alarm_min_level;          /* 2 */
} hw_rules_config;

void hw_rules_config_default(hw_rules_config *c);

typedef struct hw_rules hw_rules;
struct hw_rule_state;

/* cfg is copied; cb(ev, cb_arg) gets every event, synchronously, from inside the calls below;
 * ev is valid during the call only. -EINVAL (NULL cb, zero limits that must not be 0), -ENOMEM. */
int hw_rules_new(const hw_rules_config *cfg, hw_violation_cb cb, void *cb_arg, hw_rules **out)
    HW_MUST_CHECK;
void hw_rules_free(hw_rules *e);

/* The zones to evaluate against (borrowed; NULL = none). Swap after a registry reload, always
 * through this call (it bumps the generation that per-vehicle "no zone in my cell" caches are
 * keyed on); the old index may be freed as soon as this returns. */
void hw_rules_set_zones(hw_rules *e, const hw_zone_index *zones);

/* Checks the fix's quality (ORs HW_Q_* bits into fix->quality; a fix arriving with bits set is
 * treated as bad) and, if good, feeds it to the rules. Creates t->rules on first use. vehicle:
 * the vehicle bound to the terminal now, NULL when unbound. 0, -EINVAL, -ENOMEM (state could not
 * be created: the fix is checked but not evaluated). */
int hw_rules_on_fix(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, hw_fix *fix)
    HW_MUST_CHECK;

/* The periodic sweep: call for every terminal with a state (t->rules), every few seconds (the
 * daemon: every 10 s). When t has held fixes, advances its receipt clock to now_ms and evaluates
 * those whose hold has expired; when t has been quiet (no fix handed to hw_rules_on_fix for
 * flush_quiet_s of receipt time), brings its open episodes up to date (hw_rules_flush). A
 * terminal with neither is left untouched (its encoded state does not change). 0, -EINVAL. */
int hw_rules_tick(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, int64_t now_ms)
    HW_MUST_CHECK;

/* Emits an UPDATE for every open episode of t whose last emitted event is behind its newest
 * evaluated fix (see OPEN EPISODES AT THE EDGES), so that the consumer holds its true last
 * position, time and value; episodes already up to date emit nothing, so calling it again is
 * free. Fixes still held behind a gap are not evaluated by it. *emitted (may be NULL): events
 * emitted. Call for every terminal at shutdown, after the last fix and before the last save of
 * the rule state and of the violations. 0, -EINVAL. */
int hw_rules_flush(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, size_t *emitted)
    HW_MUST_CHECK;

/* Fixes of t waiting for a gap to be filled (0 when t has no state). */
size_t hw_rules_pending(const hw_terminal *t);

/* Frees a state (also its queue). For the owner of terminals: hw_registry_free does not. */
void hw_rule_state_free(struct hw_rule_state *st);

/* Device time of the last evaluated fix (0 when none): replay stored fixes newer than this. */
int64_t hw_rule_state_horizon_ms(const struct hw_rule_state *st);

/* An active-safety alarm (base/safety_alarm.h) of terminal t, carried by fix (its 0x0200).
 * When its kind and type map to an alarm violation kind enabled in alarm_violations, its level is
 * at least alarm_min_level, it is not an end-of-alarm (flag 2) report and the vehicle is moving
 * (the item's speed, else the fix's, at least moving_dkmh), one violation is emitted, closed,
 * identity "<terminal>/<kind>/<alarm_ms>/<alarm id>" (a resend emits the same identity: the
 * store's upsert keeps one row). Its evidence names the alarm number and, when the vehicle's
 * fatigue_continuous episode is open at the alarm's time, that episode's identity
 * ("fatigue_episode"). Returns 1 when a violation was emitted, 0 when not, -EINVAL for NULL
 * arguments. Unlike fixes, alarms are not held or reordered: an alarm is an instant. */
struct hw_safety_alarm;
int hw_rules_on_alarm(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, const hw_fix *fix,
                      const struct hw_safety_alarm *a);

/* Parses a comma-separated list of alarm violation kinds ("dsm_fatigue,dsm_phone"; "" = none)
 * into the alarm_violations bit set. 0, or -EINVAL naming no such kind. */
int hw_rules_alarm_kinds(const char *list, uint32_t *bits) HW_MUST_CHECK;

/* Upper bound of an encoded state (the largest possible is about 1.2 KB; a truck driving
 * without open episodes encodes to under 100 bytes). */
#define HW_RULE_STATE_ENCODED_MAX 2048

/* Encodes st into buf[0..cap) (versioned, little-endian varints); *len = bytes written.
 * -ENOBUFS when cap is too small (HW_RULE_STATE_ENCODED_MAX always suffices). */
int hw_rule_state_encode(const struct hw_rule_state *st, uint8_t *buf, size_t cap, size_t *len)
    HW_MUST_CHECK;
/* Decodes into a new state (*out, owned by the caller, normally stored in terminal->rules).
 * -EINVAL malformed or truncated, -ENOTSUP another version, -ENOMEM. */
int hw_rule_state_decode(const uint8_t *buf, size_t len, struct hw_rule_state **out)
    HW_MUST_CHECK;

#endif
