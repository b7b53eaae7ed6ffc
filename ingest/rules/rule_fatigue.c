/* fatigue_continuous, fatigue_daily and night_driving: driving-time counters fed interval by
 * interval, each interval split at the calendar boundaries (GMT+8 midnight, night start, night
 * end) so that every piece is in one day and wholly at night or wholly by day. */
#include "rules/rules_internal.h"

#include <string.h>

/* Position at instant t, interpolated along the interval being evaluated. */
static void hw_pos_at(const hw_rctx *cx, int64_t t, int32_t *lat, int32_t *lon) {
  const hw_rpt *p = cx->p, *c = cx->c;
  if (!p || c->ts_ms <= p->ts_ms || t >= c->ts_ms) {
    *lat = c->lat_e6;
    *lon = c->lon_e6;
    return;
  }
  if (t <= p->ts_ms) {
    *lat = p->lat_e6;
    *lon = p->lon_e6;
    return;
  }
  double f = (double)(t - p->ts_ms) / (double)(c->ts_ms - p->ts_ms);
  *lat = p->lat_e6 + (int32_t)(f * ((double)c->lat_e6 - p->lat_e6));
  *lon = p->lon_e6 + (int32_t)(f * ((double)c->lon_e6 - p->lon_e6));
}

/* {"driver":"..."[,"driving_since_ms":N]} */
static void hw_driver_evidence(const char *driver, int64_t since_ms, char *out, size_t cap) {
  hw_sbuf b;
  hw__sb_init(&b, out, cap);
  hw__sb_str(&b, "{\"driver\":");
  hw__sb_json(&b, driver, HW_DRIVER_ID_MAX);
  if (since_ms) {
    hw__sb_str(&b, ",\"driving_since_ms\":");
    hw__sb_i64(&b, since_ms);
  }
  hw__sb_str(&b, "}");
}

/* --- continuous and night ---------------------------------------------------------------- */

static void hw_time_emit(hw_rctx *cx, hw_time_ep *ep, int kind, int phase, int64_t value_ms,
                         int64_t limit_ms) {
  hw_rule_state *st = cx->st;
  char tail[24], ev[HW_EVIDENCE_MAX];
  hw_sbuf b;
  hw__sb_init(&b, tail, sizeof tail);
  hw__sb_i64(&b, ep->start_ms);
  hw_driver_evidence(st->driver, kind == HW_VIOL_FATIGUE_CONTINUOUS ? st->cont_since_ms : 0, ev,
                     sizeof ev);
  hw__emit(cx, kind, phase, tail, ep->start_ms, ep->last_ms, ep->lat_e6, ep->lon_e6,
           value_ms / 1000, limit_ms / 1000, 0, ev);
}

static void hw_time_open(hw_rctx *cx, hw_time_ep *ep, int kind, int64_t at, int64_t end,
                         int64_t value_ms, int64_t limit_ms) {
  ep->open = 1;
  ep->start_ms = at;
  ep->last_ms = end;
  ep->emit_ms = end;
  hw_pos_at(cx, at, &ep->lat_e6, &ep->lon_e6);
  hw_time_emit(cx, ep, kind, HW_PHASE_OPEN, value_ms, limit_ms);
}

static void hw_time_close(hw_rctx *cx, hw_time_ep *ep, int kind, int64_t ended, int64_t value_ms,
                          int64_t limit_ms) {
  if (!ep->open)
    return;
  if (ended > ep->last_ms)
    ep->last_ms = ended;
  hw_time_emit(cx, ep, kind, HW_PHASE_CLOSE, value_ms, limit_ms);
  ep->open = 0;
}

/* The night count is over (morning, rest, driver change). */
static void hw_night_reset(hw_rctx *cx) {
  hw_rule_extra *x = hw__extra(cx, 0);
  if (!x)
    return;
  hw_time_close(cx, &x->night_ep, HW_VIOL_NIGHT_DRIVING, x->last_night_drive_ms, x->night_ms,
                cx->night_limit_ms);
  x->night_ms = 0;
}

/* A qualifying rest or a driver change: the counts start again. */
static void hw_counts_reset(hw_rctx *cx) {
  hw_rule_state *st = cx->st;
  hw_time_close(cx, &st->cont_ep, HW_VIOL_FATIGUE_CONTINUOUS, st->last_drive_ms, st->cont_ms,
                cx->cont_limit_ms);
  st->cont_ms = 0;
  hw_night_reset(cx);
}

static void hw_cont_add(hw_rctx *cx, int64_t from, int64_t len) {
  hw_rule_state *st = cx->st;
  if (st->cont_ms == 0)
    st->cont_since_ms = from;
  int64_t before = st->cont_ms;
  st->cont_ms += len;
  if (st->cont_ep.open) {
    st->cont_ep.last_ms = from + len;
  } else if (st->cont_ms > cx->cont_limit_ms) {
    int64_t at = from + (cx->cont_limit_ms > before ? cx->cont_limit_ms - before : 0);
    hw_time_open(cx, &st->cont_ep, HW_VIOL_FATIGUE_CONTINUOUS, at, from + len, st->cont_ms,
                 cx->cont_limit_ms);
  }
}

/* --- daily ----------------------------------------------------------------------------------- */

static void hw_daily_tail(const hw_rule_extra *x, const hw_daily_slot *s, char *out, size_t cap) {
  /* The identity is ASCII: a driver id from the wire may hold anything. */
  char drv[HW_DRIVER_ID_MAX + 1];
  size_t i = 0;
  for (; s->driver[i] && i < HW_DRIVER_ID_MAX; i++) {
    char ch = s->driver[i];
    int ok = (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
             ch == '-' || ch == '_' || ch == '.';
    drv[i] = ok ? ch : '_';
  }
  drv[i] = '\0';
  hw_sbuf b;
  hw__sb_init(&b, out, cap);
  hw__sb_day(&b, x->daily_day);
  hw__sb_str(&b, "/");
  hw__sb_str(&b, i ? drv : "-");
}

static void hw_daily_emit(hw_rctx *cx, hw_daily_slot *s, int phase) {
  char tail[64], ev[HW_EVIDENCE_MAX];
  hw_daily_tail(cx->st->x, s, tail, sizeof tail);
  hw_driver_evidence(s->driver, 0, ev, sizeof ev);
  hw__emit(cx, HW_VIOL_FATIGUE_DAILY, phase, tail, s->ep.start_ms, s->ep.last_ms, s->ep.lat_e6,
           s->ep.lon_e6, s->drive_ms / 1000, cx->daily_limit_ms / 1000, 0, ev);
}

static void hw_daily_close(hw_rctx *cx, hw_daily_slot *s) {
  if (s->ep.open) {
    s->ep.last_ms = s->last_drive_ms;
    hw_daily_emit(cx, s, HW_PHASE_CLOSE);
    s->ep.open = 0;
  }
}

/* A new calendar day: yesterday's daily episodes are complete. */
static void hw_daily_roll(hw_rctx *cx, int32_t day) {
  hw_rule_extra *x = hw__extra(cx, 0);
  if (!x)
    return;
  for (int i = 0; i < HW_RULE_DRIVERS; i++) {
    hw_daily_close(cx, &x->daily[i]);
    memset(&x->daily[i], 0, sizeof x->daily[i]);
  }
  x->daily_day = day;
}

static hw_daily_slot *hw_daily_slot_for(hw_rctx *cx, hw_rule_extra *x) {
  hw_rule_state *st = cx->st;
  hw_daily_slot *free_slot = NULL, *least = NULL;
  for (int i = 0; i < HW_RULE_DRIVERS; i++) {
    hw_daily_slot *s = &x->daily[i];
    if (!s->used) {
      if (!free_slot)
        free_slot = s;
      continue;
    }
    if (strcmp(s->driver, st->driver) == 0)
      return s;
    if (!least || s->drive_ms < least->drive_ms)
      least = s;
  }
  if (!free_slot) {
    /* More drivers in a day than slots: the one who drove least gives way. */
    hw_daily_close(cx, least);
    free_slot = least;
  }
  memset(free_slot, 0, sizeof *free_slot);
  free_slot->used = 1;
  memcpy(free_slot->driver, st->driver, sizeof free_slot->driver);
  return free_slot;
}

/* --- segments -------------------------------------------------------------------------------- */

static void hw_rest_segment(hw_rctx *cx, int64_t s, int64_t e) {
  hw_rule_state *st = cx->st;
  if (st->rest_ms == 0)
    st->rest_since_ms = s;
  st->rest_ms += e - s;
  if (st->rest_ms >= cx->min_rest_ms &&
      (st->cont_ms || st->cont_ep.open || (st->x && (st->x->night_ms || st->x->night_ep.open))))
    hw_counts_reset(cx);
}

static void hw_daily_add(hw_rctx *cx, int64_t s, int64_t e) {
  hw_rule_extra *x = hw__extra(cx, 1);
  if (!x)
    return;
  if (!x->daily_day)
    x->daily_day = hw_cst_day(s); /* a fresh extension starts counting today */
  hw_daily_slot *d = hw_daily_slot_for(cx, x);
  int64_t before = d->drive_ms;
  d->drive_ms += e - s;
  d->last_drive_ms = e;
  if (d->ep.open) {
    d->ep.last_ms = e;
  } else if (d->drive_ms > cx->daily_limit_ms) {
    int64_t at = s + (cx->daily_limit_ms > before ? cx->daily_limit_ms - before : 0);
    d->ep.open = 1;
    d->ep.start_ms = at;
    d->ep.last_ms = e;
    d->ep.emit_ms = e;
    hw_pos_at(cx, at, &d->ep.lat_e6, &d->ep.lon_e6);
    hw_daily_emit(cx, d, HW_PHASE_OPEN);
  }
}

static void hw_night_add(hw_rctx *cx, int64_t s, int64_t e) {
  hw_rule_extra *x = hw__extra(cx, 1);
  if (!x)
    return;
  int64_t before = x->night_ms;
  x->night_ms += e - s;
  x->last_night_drive_ms = e;
  if (x->night_ep.open) {
    x->night_ep.last_ms = e;
  } else if (x->night_ms > cx->night_limit_ms) {
    int64_t at = s + (cx->night_limit_ms > before ? cx->night_limit_ms - before : 0);
    hw_time_open(cx, &x->night_ep, HW_VIOL_NIGHT_DRIVING, at, e, x->night_ms, cx->night_limit_ms);
  }
}

static void hw_drive_segment(hw_rctx *cx, int64_t s, int64_t e, int night) {
  hw_rule_state *st = cx->st;
  if (st->rest_ms > 0) {
    if (st->rest_ms < cx->min_rest_ms && cx->cfg->count_short_stops)
      hw_cont_add(cx, st->rest_since_ms, st->rest_ms);
    st->rest_ms = 0;
  }
  hw_cont_add(cx, s, e - s);
  if (cx->daily_limit_ms > 0)
    hw_daily_add(cx, s, e);
  if (night && cx->night_rules)
    hw_night_add(cx, s, e);
  st->last_drive_ms = e;
}

/* The next calendar boundary strictly after t: midnight, night start or night end. */
static int64_t hw_next_boundary(const hw_rctx *cx, int64_t t) {
  int64_t day0 = hw_cst_day_start(hw_cst_day(t));
  int64_t best = day0 + HW_DAY_MS;
  int64_t cand[2] = {(int64_t)cx->cfg->night_from_min * 60000, (int64_t)cx->cfg->night_to_min * 60000};
  for (int i = 0; i < 2; i++)
    if (day0 + cand[i] > t && day0 + cand[i] < best)
      best = day0 + cand[i];
  return best;
}

static void hw_boundary(hw_rctx *cx, int64_t b) {
  int64_t ms = hw_cst_ms_of_day(b);
  if (ms == 0)
    hw_daily_roll(cx, hw_cst_day(b));
  /* Morning: the night's count is over whatever happens next. */
  if (cx->cfg->night_from_min != cx->cfg->night_to_min && ms == (int64_t)cx->cfg->night_to_min * 60000)
    hw_night_reset(cx);
}

static void hw_span(hw_rctx *cx, int64_t s, int64_t e, int drive) {
  while (s < e) {
    int64_t b = hw_next_boundary(cx, s);
    int64_t end = b < e ? b : e;
    if (drive)
      hw_drive_segment(cx, s, end, hw__is_night(cx, s));
    else
      hw_rest_segment(cx, s, end);
    if (end == b)
      hw_boundary(cx, b);
    s = end;
  }
}

void hw__fatigue_interval(hw_rctx *cx, int64_t a, int64_t x, int64_t b) {
  hw_rule_state *st = cx->st;
  /* Two days of rest reset every counter and roll every day: walking a longer rest calendar
   * boundary by boundary would change nothing but the time spent. */
  if (x - a > 2 * HW_DAY_MS)
    a = x - 2 * HW_DAY_MS;
  if (st->x) {
    if (st->x->daily_day != hw_cst_day(a))
      hw_daily_roll(cx, hw_cst_day(a));
    if (st->x->night_ms && !hw__is_night(cx, a))
      hw_night_reset(cx); /* restored or rebound in the daytime with a night count left over */
  }
  hw_span(cx, a, x, 0);
  hw_span(cx, x, b, 1);
}

void hw__fatigue_first(hw_rctx *cx, const hw_qpt *c) {
  hw_rule_state *st = cx->st;
  if (c->has_driver)
    memcpy(st->driver, c->driver, sizeof st->driver);
  if (st->x && st->x->daily_day != hw_cst_day(c->pt.ts_ms))
    hw_daily_roll(cx, hw_cst_day(c->pt.ts_ms));
}

void hw__fatigue_driver(hw_rctx *cx, const hw_qpt *c) {
  hw_rule_state *st = cx->st;
  if (!c->has_driver || strcmp(st->driver, c->driver) == 0)
    return;
  if (st->driver[0]) {
    /* Another known driver: the previous one's continuous driving ends here. */
    hw_counts_reset(cx);
    st->rest_ms = 0;
  }
  memcpy(st->driver, c->driver, sizeof st->driver);
}

void hw__fatigue_updates(hw_rctx *cx, int64_t now_ms) {
  hw_rule_state *st = cx->st;
  int64_t every = (int64_t)cx->cfg->update_interval_s * 1000;
  if (st->cont_ep.open && now_ms - st->cont_ep.emit_ms >= every) {
    st->cont_ep.emit_ms = now_ms;
    hw_time_emit(cx, &st->cont_ep, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_UPDATE, st->cont_ms,
                 cx->cont_limit_ms);
  }
  hw_rule_extra *x = st->x;
  if (!x)
    return;
  if (x->night_ep.open && now_ms - x->night_ep.emit_ms >= every) {
    x->night_ep.emit_ms = now_ms;
    hw_time_emit(cx, &x->night_ep, HW_VIOL_NIGHT_DRIVING, HW_PHASE_UPDATE, x->night_ms,
                 cx->night_limit_ms);
  }
  for (int i = 0; i < HW_RULE_DRIVERS; i++) {
    hw_daily_slot *s = &x->daily[i];
    if (s->used && s->ep.open && now_ms - s->ep.emit_ms >= every) {
      s->ep.emit_ms = now_ms;
      hw_daily_emit(cx, s, HW_PHASE_UPDATE);
    }
  }
}

void hw__fatigue_flush(hw_rctx *cx, size_t *n) {
  hw_rule_state *st = cx->st;
  if (st->cont_ep.open && st->cont_ep.last_ms > st->cont_ep.emit_ms) {
    st->cont_ep.emit_ms = st->cont_ep.last_ms;
    hw_time_emit(cx, &st->cont_ep, HW_VIOL_FATIGUE_CONTINUOUS, HW_PHASE_UPDATE, st->cont_ms,
                 cx->cont_limit_ms);
    (*n)++;
  }
  hw_rule_extra *x = st->x;
  if (!x)
    return;
  if (x->night_ep.open && x->night_ep.last_ms > x->night_ep.emit_ms) {
    x->night_ep.emit_ms = x->night_ep.last_ms;
    hw_time_emit(cx, &x->night_ep, HW_VIOL_NIGHT_DRIVING, HW_PHASE_UPDATE, x->night_ms,
                 cx->night_limit_ms);
    (*n)++;
  }
  for (int i = 0; i < HW_RULE_DRIVERS; i++) {
    hw_daily_slot *s = &x->daily[i];
    if (s->used && s->ep.open && s->ep.last_ms > s->ep.emit_ms) {
      s->ep.emit_ms = s->ep.last_ms;
      hw_daily_emit(cx, s, HW_PHASE_UPDATE);
      (*n)++;
    }
  }
}
