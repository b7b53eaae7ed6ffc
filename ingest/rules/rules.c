/* The rules engine proper: quality gate, per-vehicle ordering (queue, hold, late fixes), the
 * interval classification shared by every rule, and event emission. The rule families live in
 * rule_*.c; the persistent form of the state in rule_state.c. */
#include "rules/rules_internal.h"

#include "base/text.h"

#include <stdlib.h>
#include <string.h>

void hw_rules_config_default(hw_rules_config *c) {
  memset(c, 0, sizeof *c);
  hw_quality_config_default(&c->quality);
  c->moving_dkmh = 50;
  c->moving_dist_m = 200;
  c->max_interval_s = 300;
  c->gap_move_m = 1000;
  c->gap_speed_kmh = 30;
  c->offline_gap_s = HW_RULES_DEF_OFFLINE_GAP_S;
  c->offline_dist_m = HW_RULES_DEF_OFFLINE_DIST_M;
  c->reorder_s = 0;
  c->hold_s = HW_RULES_DEF_HOLD_S;
  c->max_pending = 512;
  c->update_interval_s = 60;
  c->flush_quiet_s = 60;
  c->speed_limit_dkmh = 1000;
  c->speeding_min_s = HW_RULES_DEF_SPEEDING_MIN_S;
  c->continuous_limit_s = HW_RULES_DEF_CONTINUOUS_LIMIT_S;
  c->min_rest_s = HW_RULES_DEF_MIN_REST_S;
  c->daily_limit_s = HW_RULES_DEF_DAILY_LIMIT_S;
  c->night_continuous_limit_s = 2 * 3600;
  c->night_speed_pct = 80;
  c->night_from_min = 22 * 60;
  c->night_to_min = 6 * 60;
  c->count_short_stops = 0;
  if (hw_rules_alarm_kinds(HW_RULES_DEF_ALARM_VIOLATIONS, &c->alarm_violations))
    c->alarm_violations = 0; /* cannot happen: the default names existing kinds */
  c->alarm_min_level = HW_RULES_DEF_ALARM_MIN_LEVEL;
}

int hw_rules_new(const hw_rules_config *cfg, hw_violation_cb cb, void *cb_arg, hw_rules **out) {
  if (!cfg || !cb || !out || cfg->max_interval_s == 0 || cfg->max_pending == 0 ||
      cfg->gap_speed_kmh == 0 || cfg->continuous_limit_s == 0 || cfg->min_rest_s == 0 ||
      cfg->night_from_min >= 1440 || cfg->night_to_min >= 1440 || cfg->night_speed_pct > 1000)
    return -EINVAL;
  hw_rules *e = calloc(1, sizeof *e);
  if (!e)
    return -ENOMEM;
  e->cfg = *cfg;
  e->cb = cb;
  e->cb_arg = cb_arg;
  *out = e;
  return 0;
}

void hw_rules_free(hw_rules *e) { free(e); }

void hw_rules_set_zones(hw_rules *e, const hw_zone_index *zones) {
  e->zones = zones;
  e->zones_gen++;
  if (e->zones_gen == 0)
    e->zones_gen = 1;
}

void hw_rule_state_free(struct hw_rule_state *st) {
  if (!st)
    return;
  free(st->x);
  free(st->pending);
  free(st);
}

hw_rule_extra *hw__extra(hw_rctx *cx, int create) {
  hw_rule_state *st = cx->st;
  if (!st->x && create)
    st->x = calloc(1, sizeof *st->x);
  return st->x;
}

/* Frees the extension once nothing in it is running, checked once per vehicle-day. */
static void hw_extra_release_if_idle(hw_rctx *cx) {
  hw_rule_extra *x = cx->st->x;
  if (!x || cx->st->day_open || x->night_ms || x->night_ep.open || x->night_speed_ep.active)
    return;
  for (int i = 0; i < HW_RULE_DRIVERS; i++)
    if (x->daily[i].used)
      return;
  free(x);
  cx->st->x = NULL;
}

int64_t hw_rule_state_horizon_ms(const struct hw_rule_state *st) {
  return st && st->has_prev ? st->prev.ts_ms : 0;
}

size_t hw_rules_pending(const hw_terminal *t) { return t && t->rules ? t->rules->npending : 0; }

/* --- helpers shared by the families -------------------------------------------------------- */

void hw__sb_init(hw_sbuf *b, char *p, size_t cap) {
  b->p = p;
  b->cap = cap;
  b->len = 0;
  if (cap)
    p[0] = '\0';
}

static inline void hw_sb_put(hw_sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap)
    n = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  if (b->cap)
    b->p[b->len] = '\0';
}

void hw__sb_str(hw_sbuf *b, const char *s) { hw_sb_put(b, s, strlen(s)); }

void hw__sb_fixed(hw_sbuf *b, int64_t v, int decimals) {
  char tmp[32];
  int n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
    u /= 10;
    if (n == decimals)
      tmp[sizeof tmp - 1 - n++] = '.';
  } while (u || (decimals > 0 && n <= decimals + 1));
  if (v < 0)
    tmp[sizeof tmp - 1 - n++] = '-';
  hw_sb_put(b, tmp + sizeof tmp - n, (size_t)n);
}

void hw__sb_i64(hw_sbuf *b, int64_t v) { hw__sb_fixed(b, v, 0); }

void hw__sb_day(hw_sbuf *b, int32_t day) {
  char d[9];
  hw_cst_day_format(day, d);
  hw_sb_put(b, d, 8);
}

void hw__sb_json(hw_sbuf *b, const char *s, size_t max_in) {
  hw_sb_put(b, "\"", 1);
  const unsigned char *p = (const unsigned char *)s, *end = p + strnlen(s, max_in);
  /* At most 2 output bytes per input byte (control characters in an identifier are garbage and
   * become '?', not \u escapes), so callers can size their buffers; and always room for the
   * closing quote, so a cut string is still a JSON string. */
  while (p < end && b->len + 6 < b->cap) {
    unsigned char c = *p;
    if (c < 0x80) {
      if (c == '"' || c == '\\')
        hw_sb_put(b, "\\", 1);
      hw_sb_put(b, c < 0x20 || c == 0x7F ? "?" : (const char *)p, 1);
      p++;
      continue;
    }
    /* Pass well-formed UTF-8 through (plates, names, permits); anything else becomes '?'. */
    size_t seq = hw_utf8_char(p, (size_t)(end - p));
    if (seq == 0) {
      hw_sb_put(b, "?", 1);
      p++;
      continue;
    }
    hw_sb_put(b, (const char *)p, seq);
    p += seq;
  }
  hw_sb_put(b, "\"", 1);
}

void hw__emit(hw_rctx *cx, int kind, int phase, const char *id_tail, int64_t started_ms,
              int64_t ended_ms, int32_t lat_e6, int32_t lon_e6, int64_t value, int64_t limit,
              int grade, const char *evidence) {
  hw_violation_event ev;
  hw_sbuf b;
  ev.kind = (uint8_t)kind;
  ev.phase = (uint8_t)phase;
  ev.grade = (uint8_t)grade;
  hw__sb_init(&b, ev.terminal_id, sizeof ev.terminal_id);
  hw__sb_str(&b, cx->t->id);
  hw__sb_init(&b, ev.episode_id, sizeof ev.episode_id);
  hw__sb_str(&b, cx->t->id);
  hw__sb_str(&b, "/");
  hw__sb_str(&b, hw_violation_kind_name(kind));
  hw__sb_str(&b, "/");
  hw__sb_str(&b, id_tail);
  ev.started_ms = started_ms;
  ev.ended_ms = ended_ms < started_ms ? started_ms : ended_ms;
  ev.lat_e6 = lat_e6;
  ev.lon_e6 = lon_e6;
  ev.value = value;
  ev.limit = limit;
  hw__sb_init(&b, ev.evidence, sizeof ev.evidence);
  hw__sb_str(&b, evidence ? evidence : "{}");
  cx->e->cb(&ev, cx->e->cb_arg);
}

int hw__in_window(uint32_t m, uint32_t from, uint32_t to) {
  if (from == to)
    return 1;
  if (from < to)
    return m >= from && m < to;
  return m >= from || m < to;
}

int hw__is_night(const hw_rctx *cx, int64_t ts_ms) {
  const hw_rules_config *c = cx->cfg;
  if (c->night_from_min == c->night_to_min)
    return 0;
  int64_t ms = hw_cst_ms_of_day(ts_ms);
  int64_t from = (int64_t)c->night_from_min * 60000, to = (int64_t)c->night_to_min * 60000;
  if (from < to)
    return ms >= from && ms < to;
  return ms >= from || ms < to;
}

int hw__zone_applies(const hw_rctx *cx, const hw_zone *z, int64_t ts_ms) {
  if (z->nclasses) {
    if (!cx->cls || !z->classes)
      return 0;
    size_t i = 0;
    while (i < z->nclasses && strncmp(z->classes[i], cx->cls->code, HW_CLASS_CODE_MAX + 1) != 0)
      i++;
    if (i == z->nclasses)
      return 0;
  }
  if (z->from_min != z->to_min &&
      !hw__in_window((uint32_t)(hw_cst_ms_of_day(ts_ms) / 60000), z->from_min, z->to_min))
    return 0;
  return 1;
}

/* --- evaluation ------------------------------------------------------------------------------ */

static int64_t hw_pick(uint32_t cls_v, uint32_t def_v) { return (int64_t)(cls_v ? cls_v : def_v); }

static void hw_rctx_init(hw_rctx *cx, hw_rules *e, hw_terminal *t, const hw_vehicle *v) {
  memset(cx, 0, sizeof *cx);
  cx->e = e;
  cx->cfg = &e->cfg;
  cx->st = t->rules;
  cx->t = t;
  cx->v = v;
  cx->cls = v ? v->cls : NULL;
  const hw_vehicle_class *k = cx->cls;
  const hw_rules_config *c = &e->cfg;
  cx->speeding_min_ms = 1000 * hw_pick(k ? k->speeding_min_s : 0, c->speeding_min_s);
  cx->cont_limit_ms = 1000 * hw_pick(k ? k->continuous_limit_s : 0, c->continuous_limit_s);
  cx->min_rest_ms = 1000 * hw_pick(k ? k->min_rest_s : 0, c->min_rest_s);
  cx->daily_limit_ms = 1000 * hw_pick(k ? k->daily_limit_s : 0, c->daily_limit_s);
  cx->night_rules = k ? k->night_rules : 0;
  cx->night_limit_ms = 1000 * hw_pick(k ? k->night_continuous_limit_s : 0, c->night_continuous_limit_s);
  cx->night_pct = (uint32_t)hw_pick(k ? k->night_speed_pct : 0, c->night_speed_pct);
}

static void hw_rctx_zones(hw_rctx *cx, const hw_rpt *c) {
  hw_rule_state *st = cx->st;
  const hw_zone_index *ix = cx->e->zones;
  cx->nzones = 0;
  if (!cx->v || !ix)
    return;
  /* Most fixes are in a cell no zone touches, often the vehicle's previous one: remembering
   * that saves the lookup's cache misses. */
  uint32_t cell = hw_zone_index_cell(ix, c->lat_e6, c->lon_e6);
  if (cell == HW_ZONE_NO_CELL || (cell == st->zone_cell && st->zone_gen == cx->e->zones_gen))
    return;
  size_t n = hw_zone_index_query(ix, c->lat_e6, c->lon_e6, cx->zones, HW_RULE_ZONE_MATCH);
  cx->nzones = n < HW_RULE_ZONE_MATCH ? n : HW_RULE_ZONE_MATCH;
  if (n == 0 && hw_zone_index_cell_empty(ix, cell)) {
    st->zone_cell = cell;
    st->zone_gen = cx->e->zones_gen;
  } else {
    st->zone_gen = 0;
  }
}

/* Evaluates q, the next fix in device-time order after the horizon. */
static void hw_rules_eval(hw_rctx *cx, const hw_qpt *q) {
  hw_rule_state *st = cx->st;
  const hw_rules_config *cfg = cx->cfg;
  const hw_rpt *c = &q->pt;
  int moving = c->speed_dkmh >= cfg->moving_dkmh;
  hw_rctx_zones(cx, c);
  cx->c = c;
  cx->cq = q;
  if (!st->has_prev) {
    cx->p = NULL;
    if (cx->v) {
      hw__fatigue_first(cx, q);
      hw__speeding_eval(cx, c, 0);
    }
    hw__vehicle_eval(cx, c, moving, 0);
  } else {
    const hw_rpt *p = &st->prev;
    cx->p = p;
    int64_t dt = c->ts_ms - p->ts_ms;
    double d = hw_geo_distance_m(p->lat_e6, p->lon_e6, c->lat_e6, c->lon_e6);
    int gap = dt > (int64_t)cfg->max_interval_s * 1000;
    int64_t drive_from = c->ts_ms; /* [p, drive_from) rest, [drive_from, c) driving */
    if (gap) {
      if (d >= cfg->gap_move_m) {
        int64_t drive_ms = (int64_t)(d * 3600.0 / cfg->gap_speed_kmh); /* m / (km/h) -> ms */
        drive_from = drive_ms >= dt ? p->ts_ms : c->ts_ms - drive_ms;
      }
    } else if ((p->speed_dkmh >= cfg->moving_dkmh && moving) || d >= cfg->moving_dist_m) {
      drive_from = p->ts_ms;
    }
    if (cx->v) {
      hw__fatigue_driver(cx, q);
      hw__fatigue_interval(cx, p->ts_ms, drive_from, c->ts_ms);
      if (gap)
        hw__offline_eval(cx, p, c, dt, d);
      hw__speeding_eval(cx, c, gap);
    }
    hw__vehicle_eval(cx, c, moving || drive_from < c->ts_ms, 0);
    if (cx->v)
      hw__fatigue_updates(cx, c->ts_ms);
    if (hw_cst_day(p->ts_ms) != hw_cst_day(c->ts_ms))
      hw_extra_release_if_idle(cx);
  }
  if (!cx->v)
    hw__speeding_end_all(cx);
  st->prev = *c;
  st->has_prev = 1;
}

/* A fix older than the horizon: only the per-day rules look at it. */
static void hw_rules_late(hw_rctx *cx, const hw_rpt *c) {
  hw_rctx_zones(cx, c);
  cx->p = NULL;
  cx->c = c;
  cx->cq = NULL;
  hw__vehicle_eval(cx, c, c->speed_dkmh >= cx->cfg->moving_dkmh, 1);
}

static void hw_rules_drain(hw_rctx *cx, int force) {
  hw_rule_state *st = cx->st;
  const hw_rules_config *cfg = cx->cfg;
  while (st->npending) {
    const hw_rpt *h = &st->pending[0].pt;
    int release = force || st->npending >= cfg->max_pending ||
                  st->clock_ms - st->hold_since_ms >= (int64_t)cfg->hold_s * 1000;
    if (!release && (!st->has_prev || h->ts_ms - st->prev.ts_ms <= (int64_t)cfg->max_interval_s * 1000))
      release = cfg->reorder_s == 0 ||
                st->pending[st->npending - 1].pt.ts_ms - h->ts_ms >= (int64_t)cfg->reorder_s * 1000;
    if (!release)
      break;
    hw_qpt c = st->pending[0];
    st->npending--;
    memmove(st->pending, st->pending + 1, st->npending * sizeof *st->pending);
    hw_rules_eval(cx, &c);
  }
  if (st->npending == 0) {
    st->hold_since_ms = 0;
    /* Give back a queue that grew while a gap was held. */
    if (st->cap_pending > 16) {
      free(st->pending);
      st->pending = NULL;
      st->cap_pending = 0;
    }
  }
}

static void hw_rules_enqueue(hw_rctx *cx, const hw_qpt *q) {
  const hw_rpt *pt = &q->pt;
  hw_rule_state *st = cx->st;
  const hw_rules_config *cfg = cx->cfg;
  if (st->npending >= cfg->max_pending) {
    /* Full: the oldest is decided now, as it stands. */
    hw_qpt c = st->pending[0];
    st->npending--;
    memmove(st->pending, st->pending + 1, st->npending * sizeof *st->pending);
    hw_rules_eval(cx, &c);
    if (pt->ts_ms <= st->prev.ts_ms) {
      if (pt->ts_ms < st->prev.ts_ms)
        hw_rules_late(cx, pt);
      return;
    }
  }
  if (st->npending == st->cap_pending) {
    uint32_t cap = st->cap_pending ? st->cap_pending * 2 : 4;
    if (cap > cfg->max_pending)
      cap = cfg->max_pending;
    hw_qpt *np = realloc(st->pending, cap * sizeof *np);
    if (!np) {
      /* No memory to wait: decide everything queued, then this fix, in order. */
      hw_rules_drain(cx, 1);
      if (!st->has_prev || pt->ts_ms > st->prev.ts_ms)
        hw_rules_eval(cx, q);
      else if (pt->ts_ms < st->prev.ts_ms)
        hw_rules_late(cx, pt);
      return;
    }
    st->pending = np;
    st->cap_pending = cap;
  }
  /* Binary search for the insertion point; an equal device time is the same fix again. */
  uint32_t lo = 0, hi = st->npending;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (st->pending[mid].pt.ts_ms < pt->ts_ms)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < st->npending && st->pending[lo].pt.ts_ms == pt->ts_ms)
    return;
  if (st->npending == 0)
    st->hold_since_ms = st->clock_ms;
  memmove(st->pending + lo + 1, st->pending + lo, (st->npending - lo) * sizeof *st->pending);
  st->pending[lo] = *q;
  st->npending++;
}

int hw_rules_on_fix(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, hw_fix *fix) {
  if (!e || !t || !fix)
    return -EINVAL;
  hw_rule_state *st = t->rules;
  if (!st) {
    st = calloc(1, sizeof *st);
    if (!st) {
      fix->quality |= hw_quality_static(&e->cfg.quality, fix);
      return -ENOMEM;
    }
    t->rules = st;
  }
  int64_t now = fix->recv_ms > 0 ? fix->recv_ms : fix->ts_ms;
  if (now > st->clock_ms)
    st->clock_ms = now;
  if (now > st->seen_ms)
    st->seen_ms = now;
  if (hw_fix_trusted(fix))
    fix->quality |= hw_quality_check(&e->cfg.quality, &st->qref, fix);
  hw_rctx cx;
  hw_rctx_init(&cx, e, t, vehicle);
  if (hw_fix_trusted(fix)) {
    hw_qpt q;
    q.pt.ts_ms = fix->ts_ms;
    q.pt.lat_e6 = fix->lat_e6;
    q.pt.lon_e6 = fix->lon_e6;
    q.pt.speed_dkmh = fix->speed_dkmh;
    q.has_driver = fix->has_driver && fix->driver_id[0];
    memcpy(q.driver, fix->driver_id, sizeof q.driver);
    q.driver[HW_DRIVER_ID_MAX] = '\0';
    if (st->has_prev && q.pt.ts_ms <= st->prev.ts_ms) {
      if (q.pt.ts_ms < st->prev.ts_ms)
        hw_rules_late(&cx, &q.pt);
    } else {
      hw_rules_enqueue(&cx, &q);
    }
  }
  hw_rules_drain(&cx, 0);
  return 0;
}

/* Brings every open episode of the state in cx up to its newest evaluated fix. */
static size_t hw_rules_flush_cx(hw_rctx *cx) {
  size_t n = 0;
  hw__speeding_flush(cx, &n);
  hw__fatigue_flush(cx, &n);
  hw__vehicle_flush(cx, &n);
  return n;
}

int hw_rules_flush(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, size_t *emitted) {
  if (!e || !t)
    return -EINVAL;
  size_t n = 0;
  if (t->rules) {
    hw_rctx cx;
    hw_rctx_init(&cx, e, t, vehicle);
    n = hw_rules_flush_cx(&cx);
  }
  if (emitted)
    *emitted = n;
  return 0;
}

int hw_rules_tick(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, int64_t now_ms) {
  if (!e || !t)
    return -EINVAL;
  hw_rule_state *st = t->rules;
  if (!st)
    return 0;
  int quiet = now_ms - st->seen_ms >= (int64_t)e->cfg.flush_quiet_s * 1000;
  /* Most terminals have neither held fixes nor a quiet episode to bring up to date: leave their
   * state (and so its saved bytes) untouched. */
  if (st->npending == 0 && !quiet)
    return 0;
  hw_rctx cx;
  hw_rctx_init(&cx, e, t, vehicle);
  if (st->npending) {
    if (now_ms > st->clock_ms)
      st->clock_ms = now_ms;
    hw_rules_drain(&cx, 0);
  }
  if (quiet)
    (void)hw_rules_flush_cx(&cx);
  return 0;
}
