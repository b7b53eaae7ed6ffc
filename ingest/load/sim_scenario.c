/* Scripted trucks (see sim_scenario.h): the plans, fix timing and the generator. */
#include "load/sim_scenario.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HW_SCN_EARTH_R 6371008.8 /* the rules engine's sphere (geo.c) */
#define HW_SCN_DEG (M_PI / 180.0)
#define HW_SCN_MIXED_CYCLE 20    /* trucks 1-4 of every 20 are scripted in a mixed fleet */
#define HW_SCN_ROW_DEG 0.02      /* trucks of a kind start this far apart, north */
#define HW_SCN_ROWS 100

static const char *const hw_scn_names[HW_SCN__COUNT] = {"normal", "tired", "speeder", "tractor",
                                                       "dark", "dsm", "nodevice", "mixed"};

const char *hw_scn_kind_name(int kind) {
  return kind >= 0 && kind < HW_SCN__COUNT ? hw_scn_names[kind] : NULL;
}

/* Defaults and ranges of each kind's parameter; lo 0 = takes none. */
static const struct {
  uint32_t def, lo, hi;
} hw_scn_params[HW_SCN__COUNT] = {
    [HW_SCN_TIRED] = {270, 10, 1200},
    [HW_SCN_SPEEDER] = {130, 10, 240},
    [HW_SCN_DARK] = {45, 15, 600},
    [HW_SCN_DSM] = {60, 45, 600},
};

int hw_scn_parse(const char *spec, uint8_t *kind, uint32_t *param) {
  if (!spec)
    return -EINVAL;
  const char *colon = strchr(spec, ':');
  size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
  int k = -1;
  for (int i = 1; i < HW_SCN__COUNT; i++)
    if (strlen(hw_scn_names[i]) == n && memcmp(spec, hw_scn_names[i], n) == 0)
      k = i;
  if (k < 0)
    return -EINVAL;
  uint32_t p = 0;
  if (colon) {
    char *end;
    errno = 0;
    if (hw_scn_params[k].lo == 0 || colon[1] < '0' || colon[1] > '9')
      return -EINVAL;
    unsigned long v = strtoul(colon + 1, &end, 10);
    if (errno || *end || v < hw_scn_params[k].lo || v > hw_scn_params[k].hi)
      return -EINVAL;
    p = (uint32_t)v;
  }
  *kind = (uint8_t)k;
  *param = p;
  return 0;
}

uint8_t hw_scn_kind_of(uint8_t scenario, uint32_t i, uint32_t *nth) {
  if (scenario != HW_SCN_MIXED) {
    if (nth)
      *nth = i + 1;
    return scenario;
  }
  uint32_t cycle = i / HW_SCN_MIXED_CYCLE, slot = i % HW_SCN_MIXED_CYCLE;
  uint8_t kind = slot < 4 ? (uint8_t)(HW_SCN_TIRED + slot) : HW_SCN_NORMAL;
  if (nth)
    *nth = kind == HW_SCN_NORMAL ? cycle * (HW_SCN_MIXED_CYCLE - 4) + (slot - 4) + 1 : cycle + 1;
  return kind;
}

static void hw_scn_leg_add(hw_scn_script *s, uint8_t type, uint32_t dur_s, uint32_t speed_kmh,
                           uint32_t dist_m) {
  hw_scn_leg *l = &s->legs[s->nlegs++];
  memset(l, 0, sizeof *l);
  l->type = type;
  l->dur_s = dur_s;
  l->speed_dkmh = speed_kmh * 10;
  l->dist_m = dist_m;
}

/* Numbers the fixes of each leg and times them (see the leg rules in the header). */
static void hw_scn_layout(hw_scn_script *s) {
  int64_t step = s->step_ms, k = 1;
  int64_t last = 0;   /* time of the last fix so far */
  int64_t anchor = 0; /* time of the next drive leg's first fix */
  int have = 0;       /* a fix so far */
  for (uint8_t i = 0; i < s->nlegs; i++) {
    hw_scn_leg *l = &s->legs[i];
    int64_t dur = (int64_t)l->dur_s * 1000;
    int is_last = i + 1 == s->nlegs;
    l->first_k = k;
    switch (l->type) {
    case HW_SCN_LEG_DRIVE:
      if (have && s->legs[i - 1].type == HW_SCN_LEG_DRIVE)
        anchor = last + step;
      l->first_off_ms = have ? anchor : 0;
      l->nfixes = dur / step + 1;
      last = l->first_off_ms + dur;
      anchor = last + step;
      break;
    case HW_SCN_LEG_STOP:
      l->first_off_ms = last + step;
      l->nfixes = dur / step - (is_last ? 0 : 1);
      if (l->nfixes > 0)
        last = l->first_off_ms + (l->nfixes - 1) * step;
      anchor = l->first_off_ms - step + dur;
      break;
    default: /* silent */
      l->first_off_ms = last + dur;
      l->nfixes = 0;
      anchor = last + dur;
      break;
    }
    k += l->nfixes;
    if (l->nfixes > 0)
      have = 1;
  }
  s->nfixes = k - 1;
  s->span_ms = last;
}

int hw_scn_script_init(hw_scn_script *s, uint8_t kind, uint32_t param, uint32_t nth,
                       int64_t first_ts_ms, uint32_t step_ms) {
  if (kind >= HW_SCN_MIXED || nth == 0 || step_ms < 1000 || step_ms > 60000 || 60000 % step_ms)
    return -EINVAL;
  if (param && (hw_scn_params[kind].lo == 0 || param < hw_scn_params[kind].lo ||
                param > hw_scn_params[kind].hi))
    return -EINVAL;
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->param = param ? param : hw_scn_params[kind].def;
  s->nth = nth;
  s->step_ms = step_ms;
  s->first_ts_ms = first_ts_ms;
  double row = HW_SCN_ROW_DEG * ((nth - 1) % HW_SCN_ROWS);
  switch (kind) {
  case HW_SCN_TIRED:
    s->lat0 = 30.50 + row;
    s->lon0 = 104.00;
    s->bearing = 90;
    if (s->param > 120) {
      hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 2 * 3600, 70, 0);
      hw_scn_leg_add(s, HW_SCN_LEG_STOP, 10 * 60, 0, 0);
      hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, s->param * 60 - 2 * 3600, 70, 0);
    } else {
      hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, s->param * 60, 70, 0);
    }
    hw_scn_leg_add(s, HW_SCN_LEG_STOP, 25 * 60, 0, 0);
    break;
  case HW_SCN_SPEEDER:
    s->lat0 = 37.60;
    s->lon0 = 114.32;
    s->bearing = 0;
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 10 * 60, 95, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 2 * 60, s->param, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 5 * 60, 95, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_STOP, 5 * 60, 0, 0);
    break;
  case HW_SCN_TRACTOR:
    s->lat0 = 36.00 + row;
    s->lon0 = 117.00;
    s->bearing = 0;
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 90 * 60, 30, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_STOP, 10 * 60, 0, 0);
    break;
  case HW_SCN_DARK:
    s->lat0 = 34.00 + row;
    s->lon0 = 109.00;
    s->bearing = 90;
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 30 * 60, 60, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_SILENT, s->param * 60, 0, 40000);
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 90 * 60, 60, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_STOP, 25 * 60, 0, 0);
    break;
  case HW_SCN_DSM:
    s->lat0 = 32.00 + row;
    s->lon0 = 118.80;
    s->bearing = 90;
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, s->param * 60, 70, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_STOP, 25 * 60, 0, 0);
    break;
  case HW_SCN_NODEVICE:
    s->lat0 = 31.00 + row;
    s->lon0 = 121.00;
    s->bearing = 90;
    hw_scn_leg_add(s, HW_SCN_LEG_DRIVE, 60 * 60, 60, 0);
    hw_scn_leg_add(s, HW_SCN_LEG_STOP, 10 * 60, 0, 0);
    break;
  default: /* normal: the model truck, no plan */
    return 0;
  }
  hw_scn_layout(s);
  return 0;
}

static const hw_scn_leg *hw_scn_leg_of(const hw_scn_script *s, int64_t k, uint32_t *index) {
  uint32_t i = 0;
  while (i + 1 < s->nlegs && (s->legs[i].nfixes == 0 || k >= s->legs[i].first_k + s->legs[i].nfixes))
    i++;
  if (index)
    *index = i;
  return &s->legs[i];
}

int64_t hw_scn_fix_ts(const hw_scn_script *s, int64_t k) {
  if (s->nfixes == 0)
    return s->first_ts_ms;
  const hw_scn_leg *l = hw_scn_leg_of(s, k, NULL);
  return s->first_ts_ms + l->first_off_ms + (k - l->first_k) * (int64_t)s->step_ms;
}

int64_t hw_scn_span_ms(uint8_t kind, uint32_t param, uint32_t step_ms) {
  hw_scn_script s;
  if (kind == HW_SCN_NORMAL || hw_scn_script_init(&s, kind, param, 1, 0, step_ms) < 0)
    return 0;
  return s.span_ms;
}

void hw_scn_expectation(const hw_scn_script *s, char *buf, size_t cap) {
  switch (s->kind) {
  case HW_SCN_TIRED:
    if (s->param * 60 > 4 * 3600)
      snprintf(buf, cap, "fatigue_continuous: %u s of driving > 14400 s, 10 min stop at 2 h",
               s->param * 60);
    else
      snprintf(buf, cap, "nothing: %u s of driving <= 14400 s", s->param * 60);
    break;
  case HW_SCN_SPEEDER:
    snprintf(buf, cap, "speeding on an expressway (100 km/h): 2 min, max %u km/h", s->param);
    break;
  case HW_SCN_TRACTOR:
    snprintf(buf, cap, "retired_class when bound to a converted tractor: 90 min at 30 km/h");
    break;
  case HW_SCN_DARK:
    snprintf(buf, cap, "offline_displacement: silent %u min, 40000 m", s->param);
    break;
  case HW_SCN_DSM:
    snprintf(buf, cap, "jt808: DSM phone (level 2, 2 attachments) at 10 min, DSM fatigue (level 2, "
                       "3 attachments) at 40 min: dsm_phone, dsm_fatigue");
    break;
  case HW_SCN_NODEVICE:
    snprintf(buf, cap, "jt808: last active-safety item 10 days ago: connected, not covered");
    break;
  default:
    snprintf(buf, cap, "nothing scripted: ordinary model truck");
    break;
  }
}

int hw_scn_alarm_of(const hw_scn_script *s, int64_t k, hw_scn_alarm *out) {
  if (k < 1 || k > s->nfixes)
    return 0;
  memset(out, 0, sizeof *out);
  out->item = 0x65;
  out->ts_ms = hw_scn_fix_ts(s, k);
  int64_t minute = (out->ts_ms - s->first_ts_ms) / 60000;
  int64_t at_minute = (out->ts_ms - s->first_ts_ms) % 60000 == 0;
  switch (s->kind) {
  case HW_SCN_DSM:
    if (!at_minute || (minute != 10 && minute != 40) || minute > s->param)
      return 0;
    out->type = minute == 10 ? 0x02 : 0x01;
    out->level = 2;
    out->attachments = minute == 10 ? 2 : 3;
    out->alarm_id = (uint32_t)(s->nth * 100 + (minute == 10 ? 1 : 2));
    return 1;
  case HW_SCN_NODEVICE:
    if (k != 1)
      return 0;
    out->type = 0x10;
    out->level = 1;
    out->alarm_id = (uint32_t)(s->nth * 100);
    out->ts_ms -= 10LL * 86400 * 1000;
    return 1;
  default:
    return 0;
  }
}

/* Moves (lat, lon) d metres along the great circle leaving at bearing (degrees). */
static void hw_scn_move(double *lat, double *lon, double bearing, double d) {
  double p1 = *lat * HW_SCN_DEG, l1 = *lon * HW_SCN_DEG, th = bearing * HW_SCN_DEG;
  double dl = d / HW_SCN_EARTH_R;
  double sp2 = sin(p1) * cos(dl) + cos(p1) * sin(dl) * cos(th);
  double p2 = asin(sp2);
  double l2 = l1 + atan2(sin(th) * sin(dl) * cos(p1), cos(dl) - sin(p1) * sp2);
  *lat = p2 / HW_SCN_DEG;
  *lon = l2 / HW_SCN_DEG;
}

void hw_scn_gen_init(hw_scn_gen *g, const hw_scn_script *s, double odometer_m) {
  memset(g, 0, sizeof *g);
  g->s = s;
  g->lat = s->lat0;
  g->lon = s->lon0;
  g->odometer_m = odometer_m;
}

int hw_scn_gen_next(hw_scn_gen *g, hw_fix *out) {
  const hw_scn_script *s = g->s;
  if (g->k >= s->nfixes)
    return -ENOENT;
  int64_t k = g->k + 1;
  uint32_t li;
  const hw_scn_leg *l = hw_scn_leg_of(s, k, &li);
  int64_t ts = hw_scn_fix_ts(s, k);
  uint32_t speed = l->type == HW_SCN_LEG_DRIVE ? l->speed_dkmh : 0;
  if (g->k > 0) {
    double d = 0;
    /* A silent leg between this fix and the last: the distance it covered. */
    for (uint32_t i = g->leg + 1; i < li; i++)
      if (s->legs[i].type == HW_SCN_LEG_SILENT)
        d += s->legs[i].dist_m;
    if (d == 0)
      d = (g->speed_dkmh + speed) / 2.0 / 36.0 * (double)(ts - g->ts_ms) / 1000.0;
    if (d > 0)
      hw_scn_move(&g->lat, &g->lon, s->bearing, d);
    g->odometer_m += d;
  }
  g->k = k;
  g->leg = li;
  g->speed_dkmh = speed;
  g->ts_ms = ts;

  memset(out, 0, sizeof *out);
  out->seq = k;
  out->ts_ms = ts;
  out->lat_e6 = (int32_t)lround(g->lat * 1e6);
  out->lon_e6 = (int32_t)lround(g->lon * 1e6);
  out->speed_dkmh = speed;
  out->heading = (uint16_t)((int)lround(s->bearing) % 360);
  out->source = HW_SRC_PROTOBUF;
  out->alt_m = 50;
  /* The device's own overspeed alarm (bit 1), set at 90 km/h as for the model trucks. */
  out->alarm = speed > 900 ? 1u << 1 : 0;
  /* ACC on while driving, off while stopped; always positioned. */
  out->status = (speed ? 1u : 0u) | 2u;
  out->odometer_hm = (uint32_t)(g->odometer_m / 100.0);
  return 0;
}
