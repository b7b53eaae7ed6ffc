/* Micro benchmark of the daily figures accumulator (rules/daystats.h): ns per fix of
 * hw_daystats_feed, against hw_quality_check (the per-fix data-quality work the daemon does
 * anyway) measured the same way in the same run, as a ratio.
 *
 *   ./build/tests/bench_daystats [vehicles=10000] [rounds=300]
 *
 * Vehicles report every 30 s, moving a few hundred metres, with 2 % unqualified records and
 * 0.5 % jumps; states are kept per vehicle (as in the daemon), fixes go round-robin so the
 * states do not stay in cache. CPU time of this thread: the machine is shared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/daystats.h"
#include "rules/quality.h"

static uint64_t rng = 0x853C49E6748FEA9Bull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int nv = argc > 1 ? atoi(argv[1]) : 10000, rounds = argc > 2 ? atoi(argv[2]) : 300;
  if (nv < 1 || rounds < 1)
    return 2;
  hw_fix *last = calloc((size_t)nv, sizeof *last);
  hw_daystats *st = calloc((size_t)nv, sizeof *st);
  hw_quality_ref *qr = calloc((size_t)nv, sizeof *qr);
  hw_fix *fx = malloc((size_t)nv * (size_t)rounds * sizeof *fx);
  if (!last || !st || !qr || !fx)
    return 1;
  int64_t t0 = 1793000000000LL; /* 2026-10 */
  for (int v = 0; v < nv; v++) {
    last[v].lat_e6 = 30000000 + (int32_t)(rnd() % 5000000);
    last[v].lon_e6 = 110000000 + (int32_t)(rnd() % 8000000);
  }
  /* The fixes are made first, so that only the two functions are timed. */
  for (int r = 0; r < rounds; r++)
    for (int v = 0; v < nv; v++) {
      hw_fix *f = &fx[(size_t)r * nv + v];
      memset(f, 0, sizeof *f);
      f->ts_ms = t0 + r * 30000LL + v;
      f->recv_ms = f->ts_ms + 1000;
      last[v].lat_e6 += (int32_t)(rnd() % 4000) - 2000;
      last[v].lon_e6 += (int32_t)(rnd() % 4000) - 2000;
      f->lat_e6 = last[v].lat_e6 + (rnd() % 200 == 0 ? 500000 : 0);
      f->lon_e6 = last[v].lon_e6;
      f->speed_dkmh = rnd() % 1000;
      f->heading = (uint16_t)(rnd() % 360);
      f->alt_m = 40;
      f->status = rnd() % 50 == 0 ? 0 : HW_STATUS_POSITIONED;
    }
  hw_daystats_config dc;
  hw_daystats_config_default(&dc);
  hw_quality_config qc;
  hw_quality_config_default(&qc);
  size_t n = (size_t)nv * (size_t)rounds;
  uint64_t sink = 0;
  double best_feed = 1e9, best_q = 1e9;
  for (int rep = 0; rep < 3; rep++) {
    memset(st, 0, (size_t)nv * sizeof *st);
    memset(qr, 0, (size_t)nv * sizeof *qr);
    double a = now_s();
    for (size_t i = 0; i < n; i++) {
      hw_day_figures done;
      sink += (uint64_t)hw_daystats_feed(&dc, &st[i % (size_t)nv], &fx[i], &done);
    }
    double b = now_s();
    for (size_t i = 0; i < n; i++)
      sink += hw_quality_check(&qc, &qr[i % (size_t)nv], &fx[i]);
    double c = now_s();
    if ((b - a) / n * 1e9 < best_feed)
      best_feed = (b - a) / n * 1e9;
    if ((c - b) / n * 1e9 < best_q)
      best_q = (c - b) / n * 1e9;
  }
  uint64_t drift = 0, q = 0;
  for (int v = 0; v < nv; v++) {
    drift += st[v].cur.drift;
    q += st[v].cur.qualified;
  }
  printf("daystats: %d vehicles x %d fixes; best of 3: hw_daystats_feed %.1f ns/fix, "
         "hw_quality_check %.1f ns/fix, ratio %.2f (qualified %llu, drift %llu, sink %llu)\n",
         nv, rounds, best_feed, best_q, best_feed / best_q, (unsigned long long)q,
         (unsigned long long)drift, (unsigned long long)(sink & 1));
  free(last);
  free(st);
  free(qr);
  free(fx);
  return 0;
}
