/* speeding and night_speeding: runs of fixes above the effective limit. */
#include "rules/rules_internal.h"


uint32_t hw__effective_limit(const hw_rctx *cx, int64_t ts_ms, int64_t *zone_id) {
  const hw_vehicle_class *k = cx->cls;
  uint32_t cls_limit = k && k->speed_limit_dkmh ? k->speed_limit_dkmh : cx->cfg->speed_limit_dkmh;
  if (!cls_limit)
    cls_limit = HW_NO_LIMIT;
  int64_t cls_zone = 0, lim_zone_id = 0;
  uint32_t lim_zone = HW_NO_LIMIT;
  for (size_t i = 0; i < cx->nzones; i++) {
    const hw_zone *z = cx->zones[i];
    if (!hw__zone_applies(cx, z, ts_ms))
      continue;
    if (z->is_expressway && k && k->expressway_limit_dkmh && !cls_zone) {
      /* On an expressway the class's expressway limit replaces its general one. */
      cls_limit = k->expressway_limit_dkmh;
      cls_zone = z->id;
    }
    if (z->kind == HW_ZONE_SPEED_LIMIT && z->limit_dkmh && z->limit_dkmh < lim_zone) {
      lim_zone = z->limit_dkmh;
      lim_zone_id = z->id;
    }
  }
  if (lim_zone < cls_limit) {
    *zone_id = lim_zone_id;
    return lim_zone;
  }
  *zone_id = cls_zone;
  return cls_limit;
}

static int hw_grade(uint32_t speed, uint32_t limit) {
  int64_t over100 = ((int64_t)speed - limit) * 100;
  if (over100 < 20 * (int64_t)limit)
    return 1;
  if (over100 < 50 * (int64_t)limit)
    return 2;
  return 3;
}

static void hw_speed_emit(hw_rctx *cx, const hw_speed_ep *ep, int kind, int phase) {
  char tail[24], ev[160];
  hw_sbuf b;
  hw__sb_init(&b, tail, sizeof tail);
  hw__sb_i64(&b, ep->start_ms);
  hw__sb_init(&b, ev, sizeof ev);
  hw__sb_str(&b, "{\"max_kmh\":");
  hw__sb_fixed(&b, ep->max_speed, 1);
  hw__sb_str(&b, ",\"limit_kmh\":");
  hw__sb_fixed(&b, ep->worst_limit, 1);
  hw__sb_str(&b, ",\"zone_id\":");
  hw__sb_i64(&b, ep->worst_zone);
  hw__sb_str(&b, ",\"duration_s\":");
  hw__sb_i64(&b, (ep->last_ms - ep->start_ms) / 1000);
  hw__sb_str(&b, "}");
  hw__emit(cx, kind, phase, tail, ep->start_ms, ep->last_ms, ep->lat_e6, ep->lon_e6,
           ep->worst_speed, ep->worst_limit, hw_grade(ep->worst_speed, ep->worst_limit), ev);
}

static void hw_speed_end(hw_rctx *cx, hw_speed_ep *ep, int kind) {
  if (ep->active && ep->opened)
    hw_speed_emit(cx, ep, kind, HW_PHASE_CLOSE);
  ep->active = 0;
  ep->opened = 0;
}

static void hw_speed_step(hw_rctx *cx, hw_speed_ep *ep, int kind, const hw_rpt *c, uint32_t limit,
                          int64_t zone_id) {
  if (limit == HW_NO_LIMIT || limit == 0 || c->speed_dkmh <= limit) {
    hw_speed_end(cx, ep, kind);
    return;
  }
  if (!ep->active) {
    ep->active = 1;
    ep->opened = 0;
    ep->start_ms = c->ts_ms;
    ep->lat_e6 = c->lat_e6;
    ep->lon_e6 = c->lon_e6;
    ep->worst_speed = ep->max_speed = c->speed_dkmh;
    ep->worst_limit = limit;
    ep->worst_zone = zone_id;
  } else {
    /* Worst point = largest relative excess (s - l) / l; in double, as speeds and limits are
     * 32-bit and their cross products would not fit. */
    if ((double)c->speed_dkmh / limit > (double)ep->worst_speed / ep->worst_limit) {
      ep->worst_speed = c->speed_dkmh;
      ep->worst_limit = limit;
      ep->worst_zone = zone_id;
    }
    if (c->speed_dkmh > ep->max_speed)
      ep->max_speed = c->speed_dkmh;
  }
  ep->last_ms = c->ts_ms;
  if (!ep->opened) {
    if (ep->last_ms - ep->start_ms >= cx->speeding_min_ms) {
      ep->opened = 1;
      ep->emit_ms = c->ts_ms;
      hw_speed_emit(cx, ep, kind, HW_PHASE_OPEN);
    }
  } else if (c->ts_ms - ep->emit_ms >= (int64_t)cx->cfg->update_interval_s * 1000) {
    ep->emit_ms = c->ts_ms;
    hw_speed_emit(cx, ep, kind, HW_PHASE_UPDATE);
  }
}

static void hw_speed_flush(hw_rctx *cx, hw_speed_ep *ep, int kind, size_t *n) {
  if (!ep->active || !ep->opened || ep->last_ms <= ep->emit_ms)
    return;
  ep->emit_ms = ep->last_ms;
  hw_speed_emit(cx, ep, kind, HW_PHASE_UPDATE);
  (*n)++;
}

void hw__speeding_flush(hw_rctx *cx, size_t *n) {
  hw_speed_flush(cx, &cx->st->speed_ep, HW_VIOL_SPEEDING, n);
  if (cx->st->x)
    hw_speed_flush(cx, &cx->st->x->night_speed_ep, HW_VIOL_NIGHT_SPEEDING, n);
}

void hw__speeding_end_all(hw_rctx *cx) {
  hw_speed_end(cx, &cx->st->speed_ep, HW_VIOL_SPEEDING);
  hw_rule_extra *x = hw__extra(cx, 0);
  if (x)
    hw_speed_end(cx, &x->night_speed_ep, HW_VIOL_NIGHT_SPEEDING);
}

void hw__speeding_eval(hw_rctx *cx, const hw_rpt *c, int after_gap) {
  hw_rule_state *st = cx->st;
  /* Nobody knows what happened in a gap: an episode does not span one. */
  if (after_gap)
    hw__speeding_end_all(cx);
  int64_t zone_id = 0;
  uint32_t limit = hw__effective_limit(cx, c->ts_ms, &zone_id);
  hw_speed_step(cx, &st->speed_ep, HW_VIOL_SPEEDING, c, limit, zone_id);
  int night = cx->night_rules && limit != HW_NO_LIMIT && hw__is_night(cx, c->ts_ms);
  hw_rule_extra *x = hw__extra(cx, night);
  if (!x)
    return;
  if (night) {
    uint32_t night_limit = (uint32_t)((uint64_t)limit * cx->night_pct / 100);
    hw_speed_step(cx, &x->night_speed_ep, HW_VIOL_NIGHT_SPEEDING, c, night_limit, zone_id);
  } else {
    hw_speed_end(cx, &x->night_speed_ep, HW_VIOL_NIGHT_SPEEDING);
  }
}
