/* offline_displacement: the vehicle went somewhere while no data came in. */
#include "rules_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

void hw__offline_eval(hw_rctx *cx, const hw_rpt *p, const hw_rpt *c, int64_t dt_ms, double d_m) {
  const hw_rules_config *cfg = cx->cfg;
  if (dt_ms <= (int64_t)cfg->offline_gap_s * 1000 || d_m <= cfg->offline_dist_m)
    return;
  char tail[24], ev[HW_EVIDENCE_MAX];
  snprintf(tail, sizeof tail, "%" PRId64, p->ts_ms);
  snprintf(ev, sizeof ev,
           "{\"gap_s\":%" PRId64 ",\"end_lat\":%.6f,\"end_lon\":%.6f,\"implied_kmh\":%.1f}",
           dt_ms / 1000, c->lat_e6 / 1e6, c->lon_e6 / 1e6, d_m / (double)dt_ms * 3600.0);
  /* Known complete when found: one event, closed. */
  hw__emit(cx, HW_VIOL_OFFLINE_DISPLACEMENT, HW_PHASE_CLOSE, tail, p->ts_ms, c->ts_ms, p->lat_e6,
           p->lon_e6, (int64_t)llround(d_m), cfg->offline_dist_m, 0, ev);
}
