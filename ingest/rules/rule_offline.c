/* offline_displacement: the vehicle went somewhere while no data came in. */
#include "rules/rules_internal.h"

#include <math.h>

void hw__offline_eval(hw_rctx *cx, const hw_rpt *p, const hw_rpt *c, int64_t dt_ms, double d_m) {
  const hw_rules_config *cfg = cx->cfg;
  if (dt_ms <= (int64_t)cfg->offline_gap_s * 1000 || d_m <= cfg->offline_dist_m)
    return;
  char tail[24], ev[HW_EVIDENCE_MAX];
  hw_sbuf b;
  hw__sb_init(&b, tail, sizeof tail);
  hw__sb_i64(&b, p->ts_ms);
  hw__sb_init(&b, ev, sizeof ev);
  hw__sb_str(&b, "{\"gap_s\":");
  hw__sb_i64(&b, dt_ms / 1000);
  hw__sb_str(&b, ",\"end_lat\":");
  hw__sb_fixed(&b, c->lat_e6, 6);
  hw__sb_str(&b, ",\"end_lon\":");
  hw__sb_fixed(&b, c->lon_e6, 6);
  hw__sb_str(&b, ",\"implied_kmh\":");
  hw__sb_fixed(&b, llround(d_m / (double)dt_ms * 36000.0), 1);
  hw__sb_str(&b, "}");
  /* Known complete when found: one event, closed. */
  hw__emit(cx, HW_VIOL_OFFLINE_DISPLACEMENT, HW_PHASE_CLOSE, tail, p->ts_ms, c->ts_ms, p->lat_e6,
           p->lon_e6, (int64_t)llround(d_m), cfg->offline_dist_m, 0, ev);
}
