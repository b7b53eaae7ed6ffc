/* Internals shared by rules.c, rule_state.c and the rule_*.c families. Not a public interface. */
#ifndef HW_RULES_INTERNAL_H
#define HW_RULES_INTERNAL_H

#include "base/geo.h"
#include "rules/rules.h"

#define HW_RULE_STATE_MAGIC 0xA7
#define HW_RULE_STATE_VERSION 1
#define HW_RULE_DRIVERS 4     /* drivers with a daily total per vehicle and day */
#define HW_RULE_ZONE_SLOTS 4  /* restricted zones with an open episode per vehicle */
#define HW_RULE_ZONE_MATCH 32 /* zones considered at one point */
#define HW_NO_LIMIT UINT32_MAX

/* A good fix as the stateful rules keep it (the driver lives in the state). */
typedef struct hw_rpt {
  int64_t ts_ms;
  int32_t lat_e6, lon_e6;
  uint32_t speed_dkmh;
} hw_rpt;

/* A fix waiting in the per-vehicle queue. */
typedef struct hw_qpt {
  hw_rpt pt;
  uint8_t has_driver;
  char driver[HW_DRIVER_ID_MAX + 1];
} hw_qpt;

/* A run of fixes above a speed limit. */
typedef struct hw_speed_ep {
  int64_t start_ms, last_ms, emit_ms;
  int64_t worst_zone;  /* zone that set the limit at the worst point, 0 = class limit */
  int32_t lat_e6, lon_e6;
  uint32_t worst_speed, worst_limit, max_speed;
  uint8_t active;      /* inside a run */
  uint8_t opened;      /* lasted the minimum: OPEN emitted */
} hw_speed_ep;

/* An episode opened by a driving-time counter passing its limit. */
typedef struct hw_time_ep {
  int64_t start_ms, last_ms, emit_ms;
  int32_t lat_e6, lon_e6;
  uint8_t open;
} hw_time_ep;

typedef struct hw_daily_slot {
  int64_t drive_ms;
  int64_t last_drive_ms;
  hw_time_ep ep;
  uint8_t used;
  char driver[HW_DRIVER_ID_MAX + 1];
} hw_daily_slot;

/* One-per-day episodes (vehicle kinds, restricted zones). */
typedef struct hw_day_ep {
  int64_t key;          /* restricted_zone: zone id */
  int64_t start_ms, last_ms, emit_ms;
  int32_t lat_e6, lon_e6, last_lat_e6, last_lon_e6;
  uint32_t speed_dkmh;  /* at the first position */
  int32_t day;
  uint8_t open;
} hw_day_ep;

/* What a late fix already reported for a past day, so a back-filled day is not re-emitted per fix
 * (not persisted: after a restart a repeat is only a duplicate upsert). */
typedef struct hw_late_memo {
  int64_t key, lo_ms, hi_ms;
  int32_t day;
  int32_t kind;
} hw_late_memo;

typedef struct hw_rule_state hw_rule_state;

enum { HW_VDAY_RETIRED = 0, HW_VDAY_DEREGISTERED, HW_VDAY_PERMIT, HW_VDAY_UNREGISTERED, HW_VDAY__N };

/* The parts most vehicles never need (night rules, daily limits, per-day and zone episodes,
 * late memo): allocated on first use, freed when idle again, so a plain truck costs ~300 bytes. */
typedef struct hw_rule_extra {
  int64_t night_ms, last_night_drive_ms;
  hw_time_ep night_ep;
  hw_speed_ep night_speed_ep;
  int32_t daily_day;
  hw_daily_slot daily[HW_RULE_DRIVERS];
  hw_day_ep vday[HW_VDAY__N];
  hw_day_ep zday[HW_RULE_ZONE_SLOTS];
  hw_late_memo late; /* not persisted */
} hw_rule_extra;

_Static_assert(HW_VDAY__N + HW_RULE_ZONE_SLOTS <= 8, "day_open is a uint8_t bit set");

struct hw_rule_state {
  hw_quality_ref qref;
  /* Evaluation horizon. */
  hw_rpt prev;
  uint8_t has_prev;
  char driver[HW_DRIVER_ID_MAX + 1];
  int64_t clock_ms;              /* newest receipt time seen */
  /* Driving-time counters (ms). */
  int64_t cont_ms, cont_since_ms;
  int64_t rest_ms, rest_since_ms;
  int64_t last_drive_ms;
  hw_time_ep cont_ep;
  hw_speed_ep speed_ep;
  hw_rule_extra *x;              /* owned, NULL until needed */
  /* Not persisted. */
  uint8_t day_open;              /* bit i: x->vday[i] open; bit 4 + j: x->zday[j] open */
  uint32_t zone_cell, zone_gen;  /* last fix was in this cell of index generation zone_gen,
                                    and no zone touches that cell */
  int64_t hold_since_ms;         /* receipt clock when the queue became non-empty */
  int64_t seen_ms;               /* receipt time of the newest fix handed in (ticks leave it
                                    alone: it tells how long the terminal has been quiet) */
  hw_qpt *pending;               /* owned: sorted by ts, npending used of cap_pending */
  uint32_t npending, cap_pending;
};

struct hw_rules {
  hw_rules_config cfg;
  hw_violation_cb cb;
  void *cb_arg;
  const hw_zone_index *zones; /* borrowed */
  uint32_t zones_gen;         /* bumped by hw_rules_set_zones; 0 = never set */
};

/* Everything one evaluation needs: the engine, the vehicle and its thresholds resolved. */
typedef struct hw_rctx {
  hw_rules *e;
  const hw_rules_config *cfg;
  hw_rule_state *st;
  const hw_terminal *t;
  const hw_vehicle *v;            /* NULL: unbound terminal */
  const hw_vehicle_class *cls;    /* NULL: no class */
  int64_t speeding_min_ms, cont_limit_ms, min_rest_ms, daily_limit_ms, night_limit_ms;
  uint32_t night_pct;
  uint8_t night_rules;
  /* The interval being evaluated (prev, cur); prev NULL for the first fix. */
  const hw_rpt *p, *c;
  const hw_qpt *cq;               /* the current fix with its driver (NULL for late fixes) */
  /* Zones at the current fix. */
  const hw_zone *zones[HW_RULE_ZONE_MATCH];
  size_t nzones;
} hw_rctx;

/* --- rules.c: state --- */
/* The extension, created when create is set (NULL when absent, or on allocation failure: the
 * rules that need it are then skipped for this fix). */
hw_rule_extra *hw__extra(hw_rctx *cx, int create);

/* --- rules.c: events --- */
/* A string being built in a caller's buffer: always NUL-terminated, stops (truncates) at cap.
 * Hand-rolled because events are formatted on the hot path and printf's float code costs more
 * than all the rules together; fixed-point output also prints coordinates exactly. */
typedef struct hw_sbuf {
  char *p;    /* borrowed */
  size_t cap, len;
} hw_sbuf;

void hw__sb_init(hw_sbuf *b, char *p, size_t cap);
void hw__sb_str(hw_sbuf *b, const char *s);
void hw__sb_i64(hw_sbuf *b, int64_t v);
/* v / 10^decimals with exactly `decimals` digits after the point ("30.123456", "130.0"). */
void hw__sb_fixed(hw_sbuf *b, int64_t v, int decimals);
/* s as a JSON string: quoted, '"' and '\\' escaped, well-formed UTF-8 kept, control characters
 * and other bytes as '?'; at most max_in input bytes, at most 2 * max_in + 2 output bytes. */
void hw__sb_json(hw_sbuf *b, const char *s, size_t max_in);
/* The GMT+8 day as YYYYMMDD. */
void hw__sb_day(hw_sbuf *b, int32_t day);

/* Emits one event; id_tail completes the identity after "<terminal>/<kind>/". evidence: JSON
 * object text or NULL ("{}"). */
void hw__emit(hw_rctx *cx, int kind, int phase, const char *id_tail, int64_t started_ms,
              int64_t ended_ms, int32_t lat_e6, int32_t lon_e6, int64_t value, int64_t limit,
              int grade, const char *evidence);
/* 1 when local minute-of-day m lies in [from, to) (wrapping past midnight; from == to: always). */
int hw__in_window(uint32_t m, uint32_t from, uint32_t to);
int hw__is_night(const hw_rctx *cx, int64_t ts_ms);
/* Whether zone z applies to the vehicle's class at ts. */
int hw__zone_applies(const hw_rctx *cx, const hw_zone *z, int64_t ts_ms);

/* --- flushing (see hw_rules_flush): each family emits an UPDATE for every open episode whose
 * last emitted event is behind its newest fix (last_ms > emit_ms), sets emit_ms = last_ms, and
 * adds the events emitted to *n. --- */

/* --- rule_speeding.c --- */
void hw__speeding_eval(hw_rctx *cx, const hw_rpt *c, int after_gap);
void hw__speeding_end_all(hw_rctx *cx);
void hw__speeding_flush(hw_rctx *cx, size_t *n);
uint32_t hw__effective_limit(const hw_rctx *cx, int64_t ts_ms, int64_t *zone_id);

/* --- rule_fatigue.c --- */
/* Applies the interval [a, b) of which [a, x) was rest and [x, b) driving. */
void hw__fatigue_interval(hw_rctx *cx, int64_t a, int64_t x, int64_t b);
void hw__fatigue_driver(hw_rctx *cx, const hw_qpt *c);
void hw__fatigue_updates(hw_rctx *cx, int64_t now_ms);
void hw__fatigue_flush(hw_rctx *cx, size_t *n);
/* Starts the calendar at the first fix. */
void hw__fatigue_first(hw_rctx *cx, const hw_qpt *c);

/* --- rule_offline.c --- */
void hw__offline_eval(hw_rctx *cx, const hw_rpt *p, const hw_rpt *c, int64_t dt_ms, double d_m);

/* --- rule_vehicle.c --- */
void hw__vehicle_eval(hw_rctx *cx, const hw_rpt *c, int moving, int late);
void hw__vehicle_flush(hw_rctx *cx, size_t *n);

#endif
