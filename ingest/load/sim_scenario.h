/* Scripted trucks for `haulwatch sim --scenario`: each follows a fixed plan whose fixes break one
 * safety rule (rules.h) with known values, so the rules can be shown and tested end to end. The
 * ordinary truck model (sim_truck.h) is not involved, except for the "normal" trucks of a mixed
 * fleet, which are ordinary model trucks.
 *
 * A plan is a list of legs over device time, with a fix every step_ms:
 *   drive D at V   fixes at speed V spanning D (first to last fix of the leg); a drive leg that
 *                  follows another starts one step after it (that step is driving too)
 *   stop S         fixes at speed 0; S runs from the last moving fix to the next moving fix (for
 *                  a stop that ends the plan, to its last fix)
 *   silent S, X m  no fixes for S (from the last fix before to the first after), across which the
 *                  truck moves X metres
 * Between fixes the truck moves at the mean of their speeds, on a fixed bearing, so a stop or a
 * start costs V x step / 2 metres (under the rules' 200 m "moving distance" for V < 144 km/h at
 * 10 s steps). As the rules count: driving time = the drive legs plus the steps joining adjacent
 * drive legs, and a stop of S is a rest of exactly S.
 *
 * KINDS (an optional parameter after a colon, e.g. tired:235)
 *   tired[:M]    heavy truck, 70 km/h eastwards from 30.50 N 104.00 E, M minutes of driving
 *                (default 270 = 4 h 30, 10..1200) with one 10 min stop after 2 h (too short to be
 *                a rest), then a 25 min rest. M > 240: one fatigue_continuous, opening when 4 h
 *                of driving are passed (2 h + 10 min + 2 h after the first fix), value M x 60 s,
 *                closed when the rest reaches 20 min. M <= 240: nothing.
 *   speeder[:V]  north along 114.32 E from 37.60 N (an expressway zone in the demo and the tests,
 *                where trucks may do 100 km/h): 10 min at 95 km/h, 2 min at V km/h (default 130,
 *                10..240), 5 min at 95, then 5 min stopped. One speeding episode of 2 min with
 *                its worst point V (130: 30 % over 100, grade 2).
 *   tractor      30 km/h northwards from 36.00 N 117.00 E for 90 min, then 10 min stopped. Bound
 *                to a converted tractor (retired after 2025-12-31) and moving after that: one
 *                retired_class per day.
 *   dark[:M]     60 km/h eastwards from 34.00 N 109.00 E for 30 min, silent for M minutes
 *                (default 45, 15..600) while it moves 40 km, then 90 min at 60 km/h and a 25 min
 *                rest. One offline_displacement of 40 km. The engine holds fixes behind a gap
 *                (waiting for back-fill) until 512 are queued or 10 min of receipt time pass;
 *                the 690 fixes after the gap (at 10 s steps) decide it without waiting.
 *   dsm[:M]      a heavy truck with an active-safety device (JT/T 808 only: the items ride in
 *                0x0200): 70 km/h eastwards from 32.00 N 118.80 E for M minutes (default 60,
 *                45..600), then 25 min stopped. At minute 10 a level-2 DSM phone alarm (2
 *                attachments), at minute 40 a level-2 DSM fatigue alarm (3 attachments): two
 *                alarms, and with the default alarm_violations a dsm_phone and a dsm_fatigue.
 *   nodevice     a heavy truck whose device stopped reporting: 60 min at 60 km/h eastwards from
 *                31.00 N 121.00 E, then 10 min stopped; its first fix carries the device's last
 *                item, a DSM automatic-capture event dated 10 days before (JT/T 808 only), so it
 *                is connected and not covered (report safety-devices).
 *   mixed        a fleet: of every 20 trucks the 1st is tired, the 2nd speeder, the 3rd tractor,
 *                the 4th dark (default parameters), the other 16 ordinary model trucks.
 * Trucks of one kind are numbered 1, 2, ... (nth); nth moves the start 0.02 degree north per truck
 * (cycling every 100), except speeders, which all take the same expressway.
 * Durations are whole minutes, so step_ms must divide 60000 (1000..60000; default 10000). */
#ifndef HW_SIM_SCENARIO_H
#define HW_SIM_SCENARIO_H

#include "base/fix.h"

typedef enum {
  HW_SCN_NORMAL = 0, /* an ordinary model truck (sim_truck.h): no script */
  HW_SCN_TIRED,
  HW_SCN_SPEEDER,
  HW_SCN_TRACTOR,
  HW_SCN_DARK,
  HW_SCN_DSM,        /* active-safety alarms (JT/T 808) */
  HW_SCN_NODEVICE,   /* an active-safety device that stopped reporting (JT/T 808) */
  HW_SCN_MIXED,      /* a scenario, never the kind of one truck */
  HW_SCN__COUNT
} hw_scn_kind;

/* "normal", "tired", ..., "mixed"; NULL for an unknown kind. */
const char *hw_scn_kind_name(int kind);

/* Parses "NAME" or "NAME:PARAM" into *kind and *param (0 = the default). -EINVAL for an unknown
 * name, a parameter out of range, or a parameter where the kind takes none (tractor, mixed). */
int hw_scn_parse(const char *spec, uint8_t *kind, uint32_t *param) HW_MUST_CHECK;

/* The kind of truck i (0-based) in a run of `scenario`, and its number among its kind (1-based)
 * in *nth (NULL allowed). */
uint8_t hw_scn_kind_of(uint8_t scenario, uint32_t i, uint32_t *nth);

typedef enum { HW_SCN_LEG_DRIVE = 0, HW_SCN_LEG_STOP, HW_SCN_LEG_SILENT } hw_scn_leg_type;

typedef struct hw_scn_leg {
  uint8_t type;        /* hw_scn_leg_type */
  uint32_t dur_s;
  uint32_t speed_dkmh; /* drive legs */
  uint32_t dist_m;     /* silent legs */
  /* Derived by hw_scn_script_init: */
  int64_t first_k;     /* number of the leg's first fix (fixes are numbered from 1) */
  int64_t nfixes;
  int64_t first_off_ms; /* device time of its first fix, after the script's first fix */
} hw_scn_leg;

#define HW_SCN_MAX_LEGS 6

/* One truck's plan: immutable once built, so the time of any fix can be recomputed (the
 * simulator resends fixes after reconnects from a compact record without their time). */
typedef struct hw_scn_script {
  uint8_t kind;
  uint32_t param, nth;
  uint32_t step_ms;
  int64_t first_ts_ms;   /* device time of fix 1 */
  double lat0, lon0;     /* degrees, position of fix 1 */
  double bearing;        /* degrees */
  hw_scn_leg legs[HW_SCN_MAX_LEGS];
  uint8_t nlegs;
  int64_t nfixes;        /* 0 for HW_SCN_NORMAL */
  int64_t span_ms;       /* first fix to last fix */
} hw_scn_script;

/* Builds the plan of the nth truck of `kind` (param 0 = default). HW_SCN_NORMAL gives an empty
 * script (nfixes 0). -EINVAL: bad kind, param, nth 0, or step_ms not dividing 60000. */
int hw_scn_script_init(hw_scn_script *s, uint8_t kind, uint32_t param, uint32_t nth,
                       int64_t first_ts_ms, uint32_t step_ms) HW_MUST_CHECK;

/* Device time of fix k (1..nfixes). */
int64_t hw_scn_fix_ts(const hw_scn_script *s, int64_t k);

/* Device time spanned by a kind's plan at this step (0 for normal/mixed or bad arguments). */
int64_t hw_scn_span_ms(uint8_t kind, uint32_t param, uint32_t step_ms);

/* What the rules should make of the script, one line, e.g. "fatigue_continuous: 16200 s of
 * driving > 14400" (for the simulator's summary). */
void hw_scn_expectation(const hw_scn_script *s, char *buf, size_t cap);

/* An active-safety item a scripted fix carries (JT/T 808 additional item, sim_jt808.c). */
typedef struct hw_scn_alarm {
  uint8_t item;        /* 0x65 DSM */
  uint8_t type;        /* 0x01 fatigue, 0x02 phone, 0x10 automatic capture */
  uint8_t level;       /* 1 or 2 */
  uint8_t attachments; /* announced in the alarm number */
  uint32_t alarm_id;
  int64_t ts_ms;       /* the item's own time */
} hw_scn_alarm;

/* 1 and *out when fix k (1..nfixes) of s carries an item, else 0. */
int hw_scn_alarm_of(const hw_scn_script *s, int64_t k, hw_scn_alarm *out);

/* The generator walking a script. */
typedef struct hw_scn_gen {
  const hw_scn_script *s; /* borrowed */
  int64_t k;              /* fixes produced so far */
  uint32_t leg;           /* leg of fix k */
  double lat, lon;        /* position of fix k */
  uint32_t speed_dkmh;    /* speed of fix k */
  int64_t ts_ms;          /* device time of fix k */
  double odometer_m;
} hw_scn_gen;

void hw_scn_gen_init(hw_scn_gen *g, const hw_scn_script *s, double odometer_m);

/* Writes fix number g->k + 1 (seq = k, recv_ms 0, no driver: the caller adds one). Returns 0, or
 * -ENOENT when the script has no more fixes (out untouched). */
int hw_scn_gen_next(hw_scn_gen *g, hw_fix *out) HW_MUST_CHECK;

#endif
