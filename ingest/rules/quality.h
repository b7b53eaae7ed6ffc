/* Data quality of a fix: why a fix is not trusted. A flagged fix is still stored (with its
 * bits in hw_fix.quality) but is kept out of the latest state and out of the safety rules.
 *
 * Two levels:
 *   hw_quality_static  checks the fix on its own (positioned, coordinates, reported speed,
 *                      device time against receipt time);
 *   hw_quality_check   adds the jump test against the terminal's newest trusted fix, kept in a
 *                      small hw_quality_ref that the caller owns (the rules engine keeps one per
 *                      terminal inside its rule state, so it survives restarts with it).
 *
 * Jump test: a fix is a jump when the distance to the reference exceeds
 * max(jump_slack_m, max_speed * |dt|), i.e. the implied speed is impossible. |dt| because a
 * back-filled (older) fix must be reachable from the reference just the same. A wrong reference
 * (the first fix after power-up was drift) would otherwise reject every later fix, so after
 * `reanchor_after` consecutive jumps that are consistent with each other the newest of them is
 * accepted and becomes the reference. */
#ifndef HW_QUALITY_H
#define HW_QUALITY_H

#include "base/fix.h"

#define HW_Q_NOT_POSITIONED 0x0001u /* status bit 1 (positioned) clear */
#define HW_Q_BAD_COORD 0x0002u      /* latitude outside +-90 or longitude outside +-180 */
#define HW_Q_NULL_ISLAND 0x0004u    /* exactly 0/0: an unset position */
#define HW_Q_FUTURE 0x0008u         /* device time later than receipt + max_future, or > 2100 */
#define HW_Q_STALE 0x0010u          /* device time earlier than receipt - max_past, or < 2000 */
#define HW_Q_JUMP 0x0020u           /* impossible displacement from the last trusted fix */
#define HW_Q_BAD_SPEED 0x0040u      /* reported speed above max_speed */
/* 0x0100 and 0x0200 are the decoders' (base/fix.h). A new bit is also listed in the proto's
 * QUALITY section. */

/* Device times outside [2000-01-01, 2100-01-01) UTC are always flagged. */
#define HW_Q_TS_MIN 946684800000LL
#define HW_Q_TS_MAX 4102444800000LL

/* JT/T 808 status bit 1: the position is a satellite fix. */
#define HW_STATUS_POSITIONED 0x2u

/* Defaults of the limits `serve` exposes as settings (in its units), written once: used by
 * hw_quality_config_default and quoted as text by serve's settings table (bare literals). */
#define HW_QUALITY_DEF_MAX_FUTURE_S 600    /* 10 min */
#define HW_QUALITY_DEF_MAX_PAST_S 604800   /* 7 days */
#define HW_QUALITY_DEF_MAX_SPEED_KMH 250

typedef struct hw_quality_config {
  int64_t max_future_ms;   /* default HW_QUALITY_DEF_MAX_FUTURE_S */
  int64_t max_past_ms;     /* default HW_QUALITY_DEF_MAX_PAST_S */
  uint32_t max_speed_dkmh; /* implied and reported, default HW_QUALITY_DEF_MAX_SPEED_KMH */
  uint32_t jump_slack_m;   /* displacement always tolerated (GPS noise, same-second fixes), 500 m */
  uint8_t require_positioned; /* flag fixes with status bit 1 clear (default 1) */
  uint8_t reanchor_after;  /* consecutive consistent jumps that move the reference (default 3, 0 = never) */
} hw_quality_config;

void hw_quality_config_default(hw_quality_config *c);

/* The newest trusted fix of one terminal (by device time) and the run of jump suspects. */
typedef struct hw_quality_ref {
  int64_t ts_ms;
  int32_t lat_e6, lon_e6;
  uint8_t has;
  uint8_t suspects;        /* consecutive consistent jumps so far */
  int64_t sus_ts_ms;       /* newest suspect */
  int32_t sus_lat_e6, sus_lon_e6;
} hw_quality_ref;

/* HW_Q_* bits for the fix on its own; recv_ms is the clock for the time window (0 = no check). */
uint16_t hw_quality_static(const hw_quality_config *c, const hw_fix *f);

/* Static bits plus the jump test; updates *ref (NULL: static only). Returns the bits. */
uint16_t hw_quality_check(const hw_quality_config *c, hw_quality_ref *ref, const hw_fix *f);

#endif
