/* Active-safety alarms as violations: a DSM or ADAS alarm of an enabled kind, at the configured
 * level or above, while the vehicle moves, is a violation of its own kind (dsm_fatigue, ...),
 * emitted once, closed. An alarm is an instant the device already judged, so nothing is
 * accumulated: the rule only filters and names it, and ties a fatigue alarm to the continuous-
 * driving episode open at that moment (evidence "fatigue_episode"). The reverse tie, every alarm
 * inside a fatigue_continuous episode, is the view fatigue_alarm_evidence (022_safety_alarms.sql),
 * which also sees episodes decided after the alarm arrived. */
#include <string.h>

#include "base/safety_alarm.h"
#include "rules/rules.h"
#include "rules/rules_internal.h"

static const struct {
  uint8_t kind, type;
  uint8_t viol;
} hw_alarm_map[] = {
    {HW_SAFETY_DSM, HW_DSM_FATIGUE, HW_VIOL_DSM_FATIGUE},
    {HW_SAFETY_DSM, HW_DSM_PHONE, HW_VIOL_DSM_PHONE},
    {HW_SAFETY_DSM, HW_DSM_SMOKING, HW_VIOL_DSM_SMOKING},
    {HW_SAFETY_DSM, HW_DSM_DISTRACTED, HW_VIOL_DSM_DISTRACTED},
    {HW_SAFETY_ADAS, HW_ADAS_FORWARD_COLLISION, HW_VIOL_ADAS_FORWARD_COLLISION},
    {HW_SAFETY_ADAS, HW_ADAS_LANE_DEPARTURE, HW_VIOL_ADAS_LANE_DEPARTURE},
    {HW_SAFETY_ADAS, HW_ADAS_HEADWAY, HW_VIOL_ADAS_HEADWAY},
    {HW_SAFETY_ADAS, HW_ADAS_PEDESTRIAN, HW_VIOL_ADAS_PEDESTRIAN},
};
_Static_assert(HW_VIOL__COUNT - HW_VIOL_DSM_FATIGUE <= 32, "alarm_violations is a 32-bit set");

int hw_rules_alarm_kinds(const char *list, uint32_t *bits) {
  *bits = 0;
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    int found = 0;
    for (int k = HW_VIOL_DSM_FATIGUE; k < HW_VIOL__COUNT; k++) {
      const char *name = hw_violation_kind_name(k);
      if (strlen(name) == n && memcmp(name, p, n) == 0) {
        *bits |= 1u << (k - HW_VIOL_DSM_FATIGUE);
        found = 1;
      }
    }
    if (!found && n > 0)
      return -EINVAL;
    p += n;
    if (*p == ',')
      p++;
  }
  return 0;
}

int hw_rules_on_alarm(hw_rules *e, hw_terminal *t, const hw_vehicle *vehicle, const hw_fix *fix,
                      const hw_safety_alarm *a) {
  if (!e || !t || !fix || !a)
    return -EINVAL;
  const hw_rules_config *cfg = &e->cfg;
  int viol = -1;
  for (size_t i = 0; i < sizeof hw_alarm_map / sizeof *hw_alarm_map; i++)
    if (hw_alarm_map[i].kind == a->kind && hw_alarm_map[i].type == a->type)
      viol = hw_alarm_map[i].viol;
  if (viol < 0 || !(cfg->alarm_violations & (1u << (viol - HW_VIOL_DSM_FATIGUE))))
    return 0;
  if (!a->has_level || a->level < cfg->alarm_min_level || a->flag == 2)
    return 0;
  uint32_t speed = a->speed_kmh ? a->speed_kmh * 10u : fix->speed_dkmh;
  if (speed < cfg->moving_dkmh)
    return 0;
  int64_t at = a->ts_ms ? a->ts_ms : fix->ts_ms;

  hw_rctx cx;
  memset(&cx, 0, sizeof cx);
  cx.e = e;
  cx.cfg = cfg;
  cx.st = t->rules; /* may be NULL: a terminal whose first message carried the alarm */
  cx.t = t;
  cx.v = vehicle;

  char tail[48], ev[HW_EVIDENCE_MAX], no[HW_SAFETY_ALARM_NO_TEXT_MAX];
  hw_sbuf b;
  hw__sb_init(&b, tail, sizeof tail);
  hw__sb_i64(&b, at);
  hw__sb_str(&b, "/");
  hw__sb_i64(&b, a->alarm_id);
  hw_safety_alarm_no_format(&a->no, no, sizeof no);
  hw__sb_init(&b, ev, sizeof ev);
  hw__sb_str(&b, "{\"alarm_no\":");
  hw__sb_json(&b, no, sizeof no);
  hw__sb_str(&b, ",\"alarm_kind\":\"");
  hw__sb_str(&b, hw_safety_kind_name(a->kind));
  hw__sb_str(&b, "\",\"alarm_type\":");
  hw__sb_i64(&b, a->type);
  hw__sb_str(&b, ",\"level\":");
  hw__sb_i64(&b, a->level);
  hw__sb_str(&b, ",\"speed_kmh\":");
  hw__sb_i64(&b, speed / 10);
  hw__sb_str(&b, ",\"attachments\":");
  hw__sb_i64(&b, a->no.attachments);
  const hw_rule_state *st = t->rules;
  if (viol == HW_VIOL_DSM_FATIGUE && st && st->cont_ep.open && st->cont_ep.start_ms <= at) {
    hw__sb_str(&b, ",\"fatigue_episode\":\"");
    hw__sb_str(&b, t->id);
    hw__sb_str(&b, "/fatigue_continuous/");
    hw__sb_i64(&b, st->cont_ep.start_ms);
    hw__sb_str(&b, "\"");
  }
  hw__sb_str(&b, "}");
  int32_t lat = fix->lat_e6, lon = fix->lon_e6;
  hw__emit(&cx, viol, HW_PHASE_CLOSE, tail, at, at, lat, lon, speed, 0, 0, ev);
  return 1;
}
