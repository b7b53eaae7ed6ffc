/* Micro benchmark of the safety rules: ns per fix with every rule on, 1,000 zones.
 *
 *   gcc -O2 -D_GNU_SOURCE -Iingest tests/bench/bench_rules.c build/libhwcore.a -lm -o bench_rules
 *   ./bench_rules [vehicles=10000] [rounds=200] [max_zone_radius_m=11000]
 *
 * Vehicles spread over a Hebei-sized area report every 30 s with speeds that wander between
 * standstill and 120 km/h (so there is speeding, fatigue and zone traffic to evaluate). Zones:
 * 60 % speed-limit polygons, 30 % no-entry polygons with class lists and hours, 10 % long thin
 * expressway corridors (100-300 km); 1 in 4 with a hole. Polygon radius 500 m up to
 * max_zone_radius_m (11 km: city centres, school and work zones; 100000 makes them overlap
 * everywhere, a stress case). Reported: ns per fix for hw_rules_on_fix (quality
 * check + zone lookup + all rules), ns per zone lookup alone, events emitted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/rules.h"

static uint64_t rng = 0x853C49E6748FEA9Bull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}
static int32_t rnd_range(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1)); }

/* CPU time of this thread: the machine is shared, wall time would count other processes. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct bzone {
  int32_t pts[2 * 48];
  uint32_t starts[2];
  char classes[2][HW_CLASS_CODE_MAX + 1];
} bzone;

static void make_zone(hw_zone *z, bzone *b, int64_t id, int32_t max_r) {
  memset(z, 0, sizeof *z);
  z->id = id;
  z->pts = b->pts;
  z->ring_starts = b->starts;
  z->classes = b->classes;
  int32_t cx = rnd_range(114000000, 118000000), cy = rnd_range(37000000, 41000000);
  uint32_t kind = rnd() % 10;
  if (kind == 9) {
    /* Expressway corridor: 100-300 km long, 200 m wide, along a random direction. */
    double a = (rnd() % 628) / 100.0, len = rnd_range(1000000, 3000000) / 2.0, w = 1000;
    double dx = cos(a), dy = sin(a);
    int32_t p[8] = {(int32_t)(cx - dx * len - dy * w), (int32_t)(cy - dy * len + dx * w),
                    (int32_t)(cx + dx * len - dy * w), (int32_t)(cy + dy * len + dx * w),
                    (int32_t)(cx + dx * len + dy * w), (int32_t)(cy + dy * len - dx * w),
                    (int32_t)(cx - dx * len + dy * w), (int32_t)(cy - dy * len - dx * w)};
    memcpy(b->pts, p, sizeof p);
    z->npts = 4;
    z->nrings = 1;
    z->kind = HW_ZONE_SPEED_LIMIT;
    z->is_expressway = 1;
    z->limit_dkmh = 1200;
    return;
  }
  int k = 6 + (int)(rnd() % 36);
  int32_t r = rnd_range(4500, max_r < 4500 ? 4500 : max_r); /* 1e-6 degrees, ~0.11 m each */
  for (int i = 0; i < k; i++) {
    double a = 2 * M_PI * i / k;
    double rr = r * (0.5 + 0.5 * (rnd() % 1000) / 1000.0);
    b->pts[2 * i] = cx + (int32_t)(rr * cos(a));
    b->pts[2 * i + 1] = cy + (int32_t)(rr * sin(a));
  }
  z->npts = (size_t)k;
  z->nrings = 1;
  if (rnd() % 4 == 0) {
    int32_t h = r / 5;
    int32_t hole[] = {cx - h, cy - h, cx + h, cy - h, cx + h, cy + h, cx - h, cy + h};
    memcpy(b->pts + 2 * k, hole, sizeof hole);
    b->starts[1] = (uint32_t)k;
    z->npts += 4;
    z->nrings = 2;
  }
  if (kind < 6) {
    z->kind = HW_ZONE_SPEED_LIMIT;
    z->limit_dkmh = (uint32_t)(300 + 100 * (rnd() % 6));
  } else {
    z->kind = HW_ZONE_NO_ENTRY;
    snprintf(b->classes[0], sizeof b->classes[0], "heavy_truck");
    snprintf(b->classes[1], sizeof b->classes[1], "dangerous_goods");
    z->nclasses = 1 + rnd() % 2;
    z->from_min = 7 * 60;
    z->to_min = 22 * 60;
  }
}

static size_t events;
static void on_event(const hw_violation_event *ev, void *arg) {
  (void)arg;
  (void)ev;
  events++;
}

typedef struct bveh {
  int32_t lat, lon;
  uint32_t speed;
  double heading;
} bveh;

int main(int argc, char **argv) {
  int nveh = argc > 1 ? atoi(argv[1]) : 10000;
  int rounds = argc > 2 ? atoi(argv[2]) : 200;
  int32_t max_r = (int32_t)((argc > 3 ? atof(argv[3]) : 11000) / 0.111);
  enum { NZ = 1000 };
  hw_zone *zones = calloc(NZ, sizeof *zones);
  bzone *bz = calloc(NZ, sizeof *bz);
  for (int i = 0; i < NZ; i++)
    make_zone(&zones[i], &bz[i], i + 1, max_r);
  double t = now_s();
  hw_zone_index *ix = NULL;
  if (hw_zone_index_build(zones, NZ, 0, &ix) != 0) {
    fprintf(stderr, "index build failed\n");
    return 1;
  }
  double build_ms = (now_s() - t) * 1e3;

  /* Zone lookups alone. */
  const hw_zone *out[32];
  size_t hits = 0, nq = 2000000;
  int32_t *q = malloc(2 * nq * sizeof *q);
  for (size_t i = 0; i < nq; i++) {
    q[2 * i] = rnd_range(37000000, 41000000);
    q[2 * i + 1] = rnd_range(114000000, 118000000);
  }
  t = now_s();
  for (size_t i = 0; i < nq; i++)
    hits += hw_zone_index_query(ix, q[2 * i], q[2 * i + 1], out, 32);
  double zone_ns = (now_s() - t) * 1e9 / (double)nq;

  hw_vehicle_class cls;
  memset(&cls, 0, sizeof cls);
  snprintf(cls.code, sizeof cls.code, "heavy_truck");
  cls.speed_limit_dkmh = 1000;
  cls.expressway_limit_dkmh = 1000;
  cls.expressway_allowed = 1;
  cls.daily_limit_s = 10 * 3600;
  cls.night_rules = 1;
  hw_rules_config cfg;
  hw_rules_config_default(&cfg);
  hw_rules *e = NULL;
  if (hw_rules_new(&cfg, on_event, NULL, &e) != 0)
    return 1;
  hw_rules_set_zones(e, ix);

  hw_terminal *terms = calloc((size_t)nveh, sizeof *terms);
  hw_vehicle *vehs = calloc((size_t)nveh, sizeof *vehs);
  bveh *sim = calloc((size_t)nveh, sizeof *sim);
  char (*tids)[16] = calloc((size_t)nveh, sizeof *tids); /* lives as long as terms */
  for (int i = 0; i < nveh; i++) {
    terms[i].id = tids[i];
    snprintf(terms[i].id, sizeof tids[i], "0138%08d", i);
    snprintf(vehs[i].terminal_id, sizeof vehs[i].terminal_id, "%s", terms[i].id);
    vehs[i].cls = &cls;
    vehs[i].status = i % 200 == 0 ? HW_VEH_DEREGISTERED : HW_VEH_ACTIVE;
    sim[i].lat = rnd_range(37200000, 40800000);
    sim[i].lon = rnd_range(114200000, 117800000);
    sim[i].speed = rnd() % 1200;
    sim[i].heading = (rnd() % 628) / 100.0;
  }
  int64_t base = 1772409600000LL; /* 2026-03-02 08:00 GMT+8 */
  size_t fixes = 0, flagged = 0;
  double elapsed = 0;
  hw_fix *round_fixes = calloc((size_t)nveh, sizeof *round_fixes);
  for (int k = 0; k < rounds; k++) {
    /* Simulate a round (untimed), then feed it (timed). */
    for (int i = 0; i < nveh; i++) {
      bveh *s = &sim[i];
      int32_t dv = (int32_t)(rnd() % 201) - 100; /* speed wanders: some stop, some speed */
      int64_t sp = (int64_t)s->speed + dv;
      s->speed = (uint32_t)(sp < 0 ? 0 : sp > 1300 ? 1300 : sp);
      double m = s->speed / 36.0 * 30.0;
      s->heading += ((int)(rnd() % 21) - 10) / 100.0;
      s->lat += (int32_t)(m * cos(s->heading) / 0.1111950802);
      s->lon += (int32_t)(m * sin(s->heading) / 0.0863);
      hw_fix *f = &round_fixes[i];
      memset(f, 0, sizeof *f);
      f->ts_ms = base + (int64_t)k * 30000 + i % 30000;
      f->recv_ms = f->ts_ms + 800;
      f->lat_e6 = s->lat;
      f->lon_e6 = s->lon;
      f->speed_dkmh = s->speed;
      f->status = HW_STATUS_POSITIONED | 1;
    }
    double t0 = now_s();
    for (int i = 0; i < nveh; i++)
      if (hw_rules_on_fix(e, &terms[i], &vehs[i], &round_fixes[i]) != 0)
        return 1;
    elapsed += now_s() - t0;
    for (int i = 0; i < nveh; i++)
      flagged += round_fixes[i].quality != 0;
    fixes += (size_t)nveh;
  }
  free(round_fixes);

  printf("zones %d up to %.0f m radius (index build %.1f ms), zone lookup %.0f ns (%.2f hits/lookup)\n",
         NZ, max_r * 0.111, build_ms, zone_ns, (double)hits / (double)nq);
  printf("vehicles %d, fixes %zu, flagged %zu, events %zu\n", nveh, fixes, flagged, events);
  printf("hw_rules_on_fix: %.0f ns/fix, %.2f M fixes/s on one core\n",
         elapsed * 1e9 / (double)fixes, (double)fixes / elapsed / 1e6);
  for (int i = 0; i < nveh; i++)
    hw_rule_state_free(terms[i].rules);
  hw_rules_free(e);
  hw_zone_index_free(ix);
  free(terms);
  free(tids);
  free(vehs);
  free(sim);
  free(q);
  free(zones);
  free(bz);
  return 0;
}
