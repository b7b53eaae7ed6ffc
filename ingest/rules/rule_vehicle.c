/* Registry rules, one episode per vehicle (or zone) per GMT+8 day: retired_class,
 * deregistered_vehicle, expired_permit, unregistered_terminal, restricted_zone. They look at one
 * fix at a time, so they also run on late fixes (see rules.h). */
#include "rules/rules_internal.h"

#include <string.h>

static const int hw_vday_kind[HW_VDAY__N] = {
    [HW_VDAY_RETIRED] = HW_VIOL_RETIRED_CLASS,
    [HW_VDAY_DEREGISTERED] = HW_VIOL_DEREGISTERED_VEHICLE,
    [HW_VDAY_PERMIT] = HW_VIOL_EXPIRED_PERMIT,
    [HW_VDAY_UNREGISTERED] = HW_VIOL_UNREGISTERED_TERMINAL,
};

static void hw_day_emit(hw_rctx *cx, int kind, int phase, const hw_day_ep *ep) {
  char tail[48], ev[HW_EVIDENCE_MAX];
  hw_sbuf b;
  hw__sb_init(&b, tail, sizeof tail);
  hw__sb_day(&b, ep->day);
  if (kind == HW_VIOL_RESTRICTED_ZONE) {
    hw__sb_str(&b, "/");
    hw__sb_i64(&b, ep->key);
  }
  hw__sb_init(&b, ev, sizeof ev);
  hw__sb_str(&b, "{\"last_ms\":");
  hw__sb_i64(&b, ep->last_ms);
  hw__sb_str(&b, ",\"last_lat\":");
  hw__sb_fixed(&b, ep->last_lat_e6, 6);
  hw__sb_str(&b, ",\"last_lon\":");
  hw__sb_fixed(&b, ep->last_lon_e6, 6);
  const hw_vehicle *v = cx->v;
  switch (kind) {
  case HW_VIOL_RETIRED_CLASS:
    if (cx->cls) {
      hw__sb_str(&b, ",\"class\":");
      hw__sb_json(&b, cx->cls->code, HW_CLASS_CODE_MAX);
      hw__sb_str(&b, ",\"retired_after_ms\":");
      hw__sb_i64(&b, cx->cls->retired_after_ms);
    }
    break;
  case HW_VIOL_DEREGISTERED_VEHICLE:
    if (v)
      hw__sb_str(&b, v->status == HW_VEH_SCRAPPED ? ",\"status\":\"scrapped\"" : ",\"status\":\"deregistered\"");
    break;
  case HW_VIOL_EXPIRED_PERMIT:
    if (v) {
      hw__sb_str(&b, ",\"permit_no\":");
      hw__sb_json(&b, v->permit_no, HW_PERMIT_MAX);
      hw__sb_str(&b, ",\"permit_expires_ms\":");
      hw__sb_i64(&b, v->permit_expires_ms);
    }
    break;
  case HW_VIOL_RESTRICTED_ZONE:
    hw__sb_str(&b, ",\"zone_id\":");
    hw__sb_i64(&b, ep->key);
    break;
  default:
    break;
  }
  hw__sb_str(&b, "}");
  hw__emit(cx, kind, phase, tail, ep->start_ms, ep->last_ms, ep->lat_e6, ep->lon_e6,
           ep->speed_dkmh, 0, 0, ev);
}

/* The bit of st->day_open for a slot of the extension (0 for a temporary episode). */
static uint8_t hw_day_bit(const hw_rctx *cx, const hw_day_ep *ep) {
  const hw_rule_extra *x = cx->st->x;
  if (!x)
    return 0;
  if (ep >= x->vday && ep < x->vday + HW_VDAY__N)
    return (uint8_t)(1u << (ep - x->vday));
  if (ep >= x->zday && ep < x->zday + HW_RULE_ZONE_SLOTS)
    return (uint8_t)(1u << (HW_VDAY__N + (ep - x->zday)));
  return 0;
}

static void hw_day_close(hw_rctx *cx, hw_day_ep *ep, int kind) {
  if (ep->open) {
    hw_day_emit(cx, kind, HW_PHASE_CLOSE, ep);
    ep->open = 0;
    cx->st->day_open &= (uint8_t)~hw_day_bit(cx, ep);
  }
}

static void hw_day_fill(hw_day_ep *ep, const hw_rpt *c, int32_t day, int64_t key) {
  memset(ep, 0, sizeof *ep);
  ep->open = 1;
  ep->day = day;
  ep->key = key;
  ep->start_ms = ep->last_ms = ep->emit_ms = c->ts_ms;
  ep->lat_e6 = ep->last_lat_e6 = c->lat_e6;
  ep->lon_e6 = ep->last_lon_e6 = c->lon_e6;
  ep->speed_dkmh = c->speed_dkmh;
}

/* A fix for a day whose episode is not in the state (a late fix for a past day, or no memory
 * for the state): report it as that day's episode (the consumer merges by identity), at most
 * once per update interval of data for the same day and key. */
static void hw_day_alone(hw_rctx *cx, int kind, const hw_rpt *c, int32_t day, int64_t key) {
  hw_rule_extra *x = hw__extra(cx, 1);
  if (x) {
    hw_late_memo *memo = &x->late;
    int64_t every = (int64_t)cx->cfg->update_interval_s * 1000;
    if (memo->kind == kind && memo->day == day && memo->key == key) {
      if (c->ts_ms >= memo->lo_ms - every && c->ts_ms <= memo->hi_ms + every)
        return;
      if (c->ts_ms < memo->lo_ms)
        memo->lo_ms = c->ts_ms;
      if (c->ts_ms > memo->hi_ms)
        memo->hi_ms = c->ts_ms;
    } else {
      memo->kind = kind;
      memo->day = day;
      memo->key = key;
      memo->lo_ms = memo->hi_ms = c->ts_ms;
    }
  }
  hw_day_ep ep;
  hw_day_fill(&ep, c, day, key);
  hw_day_emit(cx, kind, HW_PHASE_CLOSE, &ep);
}

/* A violating fix c for (day, key). ep: the state slot for it (NULL: none). */
static void hw_day_hit(hw_rctx *cx, hw_day_ep *ep, int kind, const hw_rpt *c, int32_t day,
                       int64_t key, int late) {
  if (ep && ep->open && ep->day == day && ep->key == key) {
    int emit = 0;
    if (c->ts_ms < ep->start_ms) {
      /* Back-filled data moves the first position earlier. */
      ep->start_ms = c->ts_ms;
      ep->lat_e6 = c->lat_e6;
      ep->lon_e6 = c->lon_e6;
      ep->speed_dkmh = c->speed_dkmh;
      emit = 1;
    }
    if (c->ts_ms > ep->last_ms) {
      ep->last_ms = c->ts_ms;
      ep->last_lat_e6 = c->lat_e6;
      ep->last_lon_e6 = c->lon_e6;
      if (c->ts_ms - ep->emit_ms >= (int64_t)cx->cfg->update_interval_s * 1000)
        emit = 1;
    }
    if (emit) {
      if (c->ts_ms > ep->emit_ms)
        ep->emit_ms = c->ts_ms;
      hw_day_emit(cx, kind, HW_PHASE_UPDATE, ep);
    }
    return;
  }
  if (!ep || (late && day != hw_cst_day(cx->st->prev.ts_ms))) {
    hw_day_alone(cx, kind, c, day, key);
    return;
  }
  hw_day_close(cx, ep, kind);
  hw_day_fill(ep, c, day, key);
  cx->st->day_open |= hw_day_bit(cx, ep);
  hw_day_emit(cx, kind, HW_PHASE_OPEN, ep);
}

static int hw_zone_restricted(const hw_rctx *cx, const hw_zone *z, int64_t ts_ms) {
  if (!hw__zone_applies(cx, z, ts_ms))
    return 0;
  if (z->kind == HW_ZONE_NO_ENTRY)
    return 1;
  return z->is_expressway && cx->cls && !cx->cls->expressway_allowed;
}

static hw_day_ep *hw_zone_slot(hw_rctx *cx, hw_rule_extra *x, int32_t day, int64_t key, int late) {
  hw_day_ep *free_slot = NULL, *oldest = NULL;
  for (int i = 0; i < HW_RULE_ZONE_SLOTS; i++) {
    hw_day_ep *s = &x->zday[i];
    if (s->open && s->day == day && s->key == key)
      return s;
    if (!s->open && !free_slot)
      free_slot = s;
    if (s->open && (!oldest || s->last_ms < oldest->last_ms))
      oldest = s;
  }
  if (late && day != hw_cst_day(cx->st->prev.ts_ms))
    return NULL;
  if (free_slot)
    return free_slot;
  /* More restricted zones today than slots: the one left longest ago is complete. */
  hw_day_close(cx, oldest, HW_VIOL_RESTRICTED_ZONE);
  return oldest;
}

void hw__vehicle_eval(hw_rctx *cx, const hw_rpt *c, int moving, int late) {
  int32_t day = hw_cst_day(c->ts_ms);
  hw_rule_extra *x = hw__extra(cx, 0);
  if (!cx->v) {
    x = hw__extra(cx, 1);
    hw_day_hit(cx, x ? &x->vday[HW_VDAY_UNREGISTERED] : NULL, HW_VIOL_UNREGISTERED_TERMINAL, c,
               day, 0, late);
    return;
  }
  uint8_t open = cx->st->day_open; /* spares touching the extension's cache lines */
  if (!late && (open & (1u << HW_VDAY_UNREGISTERED)))
    hw_day_close(cx, &x->vday[HW_VDAY_UNREGISTERED], HW_VIOL_UNREGISTERED_TERMINAL); /* bound since */

  const hw_vehicle *v = cx->v;
  const hw_vehicle_class *k = cx->cls;
  int hit[HW_VDAY_UNREGISTERED] = {
      [HW_VDAY_RETIRED] = moving && k && k->retired_after_ms && c->ts_ms >= k->retired_after_ms,
      [HW_VDAY_DEREGISTERED] =
          moving && (v->status == HW_VEH_SCRAPPED || v->status == HW_VEH_DEREGISTERED),
      [HW_VDAY_PERMIT] = moving && v->permit_expires_ms && c->ts_ms >= v->permit_expires_ms,
  };
  for (int i = 0; i < HW_VDAY_UNREGISTERED; i++) {
    if (hit[i]) {
      x = hw__extra(cx, 1);
      hw_day_hit(cx, x ? &x->vday[i] : NULL, hw_vday_kind[i], c, day, 0, late);
    } else if (!late && (open & (1u << i)) && x->vday[i].day != day) {
      hw_day_close(cx, &x->vday[i], hw_vday_kind[i]);
    }
  }

  if (!late && (cx->st->day_open >> HW_VDAY__N))
    for (int i = 0; i < HW_RULE_ZONE_SLOTS; i++)
      if (x->zday[i].open && x->zday[i].day != day)
        hw_day_close(cx, &x->zday[i], HW_VIOL_RESTRICTED_ZONE);
  if (!moving)
    return;
  for (size_t i = 0; i < cx->nzones; i++) {
    const hw_zone *z = cx->zones[i];
    if (!hw_zone_restricted(cx, z, c->ts_ms))
      continue;
    x = hw__extra(cx, 1);
    hw_day_hit(cx, x ? hw_zone_slot(cx, x, day, z->id, late) : NULL, HW_VIOL_RESTRICTED_ZONE, c,
               day, z->id, late);
  }
}

void hw__vehicle_flush(hw_rctx *cx, size_t *n) {
  hw_rule_extra *x = cx->st->x;
  if (!x || !cx->st->day_open)
    return;
  for (int i = 0; i < HW_VDAY__N; i++) {
    hw_day_ep *ep = &x->vday[i];
    if (ep->open && ep->last_ms > ep->emit_ms) {
      ep->emit_ms = ep->last_ms;
      hw_day_emit(cx, hw_vday_kind[i], HW_PHASE_UPDATE, ep);
      (*n)++;
    }
  }
  for (int i = 0; i < HW_RULE_ZONE_SLOTS; i++) {
    hw_day_ep *ep = &x->zday[i];
    if (ep->open && ep->last_ms > ep->emit_ms) {
      ep->emit_ms = ep->last_ms;
      hw_day_emit(cx, HW_VIOL_RESTRICTED_ZONE, HW_PHASE_UPDATE, ep);
      (*n)++;
    }
  }
}
