/* Helpers for the test_rules_*.c unit tests: a rules engine with one terminal and one vehicle,
 * a recorder for the events, and a simulated truck that drives north (1e-6 degree of latitude
 * is 0.111195 m on the engine's sphere) or stands still, reporting every minute or every 10 s. */
#ifndef HW_RULES_TEST_UTIL_H
#define HW_RULES_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules/rules.h"

/* Each test file uses some of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define RT_MAXEV 8192
#define RT_MAXLOG 4096
#define RT_MIN 60000LL
#define RT_HOUR (60 * RT_MIN)

typedef struct rt {
  hw_rules_config cfg;
  hw_rules *e;
  hw_terminal t;
  hw_vehicle_class cls;
  hw_vehicle v;
  const hw_vehicle *vp;   /* NULL: unbound terminal */
  hw_violation_event *ev; /* owned: recorded events */
  size_t nev;
  hw_fix *log;            /* owned: good fixes fed, when logging */
  size_t nlog;
  int logging;
  int64_t now;            /* device time of the last fix */
  int32_t lat, lon;
  char driver[HW_DRIVER_ID_MAX + 1];
  int has_driver;
  int64_t recv_lag;       /* receipt = device time + lag */
  int started;
} rt;

static void rt_cb(const hw_violation_event *ev, void *arg) {
  rt *r = arg;
  /* Every event: evidence is a JSON object, the identity starts with the terminal and kind. */
  cJSON *j = cJSON_Parse(ev->evidence);
  if (!j || !cJSON_IsObject(j))
    fail_msg("evidence is not a JSON object: %s", ev->evidence);
  cJSON_Delete(j);
  char prefix[96];
  snprintf(prefix, sizeof prefix, "%s/%s/", ev->terminal_id, hw_violation_kind_name(ev->kind));
  assert_memory_equal(ev->episode_id, prefix, strlen(prefix));
  assert_true(ev->ended_ms >= ev->started_ms);
  if (r->nev < RT_MAXEV)
    r->ev[r->nev++] = *ev;
}

/* Epoch milliseconds of a GMT+8 wall-clock time. */
static int64_t rt_cst(int y, int mo, int d, int h, int mi, int s) {
  y -= mo <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return ((days * 86400 + h * 3600 + mi * 60 + s) * 1000) - 8 * RT_HOUR;
}

static void rt_init(rt *r) {
  memset(r, 0, sizeof *r);
  hw_rules_config_default(&r->cfg);
  r->t.id = (char *)"013800000001"; /* never written through */
  snprintf(r->cls.code, sizeof r->cls.code, "heavy_truck");
  r->cls.speed_limit_dkmh = 1000;
  r->cls.expressway_limit_dkmh = 1000;
  r->cls.expressway_allowed = 1;
  r->cls.speeding_min_s = 30;
  r->cls.continuous_limit_s = 4 * 3600;
  r->cls.min_rest_s = 20 * 60;
  snprintf(r->v.terminal_id, sizeof r->v.terminal_id, "%s", r->t.id);
  snprintf(r->v.plate, sizeof r->v.plate, "冀A12345");
  r->v.cls = &r->cls;
  r->v.status = HW_VEH_ACTIVE;
  r->vp = &r->v;
  r->lat = 30000000;
  r->lon = 114000000;
  r->recv_lag = 1000;
  r->now = rt_cst(2026, 3, 2, 8, 0, 0);
  r->ev = calloc(RT_MAXEV, sizeof *r->ev);
  r->log = calloc(RT_MAXLOG, sizeof *r->log);
  assert_non_null(r->ev);
  assert_non_null(r->log);
}

static void rt_start(rt *r) { assert_int_equal(hw_rules_new(&r->cfg, rt_cb, r, &r->e), 0); }

static void rt_free(rt *r) {
  hw_rules_free(r->e);
  hw_rule_state_free(r->t.rules);
  r->t.rules = NULL;
  free(r->ev);
  free(r->log);
}

/* cmocka fixtures: a fresh engine, truck and event recorder per test. */
static int rt_setup(void **state) {
  rt *r = malloc(sizeof *r);
  rt_init(r);
  *state = r;
  return 0;
}

static int rt_teardown(void **state) {
  rt *r = *state;
  rt_free(r);
  free(r);
  return 0;
}

static hw_fix rt_fix(const rt *r, int64_t ts, uint32_t speed) {
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.ts_ms = ts;
  f.recv_ms = ts + r->recv_lag;
  f.lat_e6 = r->lat;
  f.lon_e6 = r->lon;
  f.speed_dkmh = speed;
  f.status = HW_STATUS_POSITIONED | 0x1u;
  f.source = HW_SRC_JT808;
  if (r->has_driver) {
    f.has_driver = 1;
    snprintf(f.driver_id, sizeof f.driver_id, "%s", r->driver);
  }
  return f;
}

/* Feeds f (a copy: the engine writes its quality); returns the quality bits. */
static uint16_t rt_feed(rt *r, hw_fix f) {
  assert_int_equal(hw_rules_on_fix(r->e, &r->t, r->vp, &f), 0);
  if (r->logging && f.quality == 0 && r->nlog < RT_MAXLOG)
    r->log[r->nlog++] = f;
  return f.quality;
}

/* A good fix at the current position at device time ts. */
static void rt_at(rt *r, int64_t ts, uint32_t speed) {
  r->now = ts;
  assert_int_equal(rt_feed(r, rt_fix(r, ts, speed)), 0);
}

static void rt_move(rt *r, double metres) { r->lat += (int32_t)llround(metres / 0.1111950802); }

/* `minutes` minutes of driving at 60 km/h, one fix a minute (1 km apart). */
static void rt_drive(rt *r, int minutes) {
  if (!r->started) {
    r->started = 1;
    rt_at(r, r->now, 600);
  }
  for (int i = 0; i < minutes; i++) {
    rt_move(r, 1000);
    rt_at(r, r->now + RT_MIN, 600);
  }
}

/* `minutes` minutes standing still, one fix a minute. */
static void rt_stop(rt *r, int minutes) {
  if (!r->started) {
    r->started = 1;
    rt_at(r, r->now, 0);
  }
  for (int i = 0; i < minutes; i++)
    rt_at(r, r->now + RT_MIN, 0);
}

/* One fix `secs` seconds after the last at `speed` (0.1 km/h), having moved accordingly. */
static void rt_step(rt *r, int secs, uint32_t speed) {
  if (!r->started) {
    r->started = 1;
    rt_at(r, r->now, speed);
    return;
  }
  rt_move(r, speed / 36.0 * secs);
  rt_at(r, r->now + secs * 1000LL, speed);
}

/* Lets the receipt clock pass the hold, so fixes held behind a gap are decided. */
static void rt_settle(rt *r) {
  assert_int_equal(hw_rules_tick(r->e, &r->t, r->vp, r->now + r->recv_lag + r->cfg.hold_s * 1000LL + 1000), 0);
  assert_int_equal(hw_rules_pending(&r->t), 0);
}

static void rt_set_driver(rt *r, const char *id) {
  r->has_driver = id != NULL;
  snprintf(r->driver, sizeof r->driver, "%s", id ? id : "");
}

static size_t rt_count(const rt *r, int kind, int phase) {
  size_t n = 0;
  for (size_t i = 0; i < r->nev; i++)
    if ((kind < 0 || r->ev[i].kind == kind) && (phase < 0 || r->ev[i].phase == phase))
      n++;
  return n;
}

/* Distinct episode identities of a kind. */
static size_t rt_ids(const rt *r, int kind) {
  size_t n = 0;
  for (size_t i = 0; i < r->nev; i++) {
    if (r->ev[i].kind != kind)
      continue;
    size_t j = 0;
    while (j < i && !(r->ev[j].kind == kind && strcmp(r->ev[j].episode_id, r->ev[i].episode_id) == 0))
      j++;
    n += j == i;
  }
  return n;
}

/* The first (or last) event of kind/phase; fails the test when there is none. */
static const hw_violation_event *rt_find(const rt *r, int kind, int phase, int last) {
  const hw_violation_event *found = NULL;
  for (size_t i = 0; i < r->nev; i++)
    if (r->ev[i].kind == kind && (phase < 0 || r->ev[i].phase == phase)) {
      found = &r->ev[i];
      if (!last)
        break;
    }
  if (!found)
    fail_msg("no %s event in phase %d", hw_violation_kind_name(kind), phase);
  return found;
}

static void rt_dump(const rt *r) {
  for (size_t i = 0; i < r->nev; i++)
    fprintf(stderr, "  %-22s %-6s %s start=%lld end=%lld value=%lld limit=%lld grade=%d %s\n",
            hw_violation_kind_name(r->ev[i].kind), hw_violation_phase_name(r->ev[i].phase),
            r->ev[i].episode_id, (long long)r->ev[i].started_ms, (long long)r->ev[i].ended_ms,
            (long long)r->ev[i].value, (long long)r->ev[i].limit, r->ev[i].grade, r->ev[i].evidence);
}

/* A rectangular zone owned by the test. */
typedef struct rzone {
  hw_zone z;
  int32_t pts[8];
  uint32_t starts[1];
  char classes[2][HW_CLASS_CODE_MAX + 1];
} rzone;

static void rzone_rect(rzone *zz, int64_t id, int kind, int32_t lat0, int32_t lon0, int32_t lat1,
                       int32_t lon1) {
  memset(zz, 0, sizeof *zz);
  int32_t pts[8] = {lon0, lat0, lon1, lat0, lon1, lat1, lon0, lat1};
  memcpy(zz->pts, pts, sizeof pts);
  zz->z.id = id;
  zz->z.kind = (uint8_t)kind;
  zz->z.pts = zz->pts;
  zz->z.npts = 4;
  zz->z.ring_starts = zz->starts;
  zz->z.nrings = 1;
  zz->z.classes = zz->classes;
}

#endif
