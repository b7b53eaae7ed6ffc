/* Micro benchmark of the live feed's two hot paths, in CPU time (the machine is shared):
 *   - the daemon: hw_redis_state_format_event, ns per position event (what publish_positions
 *     adds to each latest-state write, besides one PUBLISH per flush pass);
 *   - a web process: hw_sse_hub_inject of the daemon's batches (parse, frame, ring), ns per event,
 *     with no client attached (fan-out to clients is a memcpy of the framed bytes per client).
 *
 *   ./build/tests/bench_feed [events=1000000] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/registry.h"
#include "sinks/redis_state.h"
#include "web/sse.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  static hw_terminal t;
  static hw_vehicle v;
  t.id = (char *)"013800138000";
  snprintf(v.region, sizeof v.region, "320102");
  snprintf(v.enterprise, sizeof v.enterprise, "Jiangsu Quick Haulage Co.");
  t.vehicle = &v;
  t.latest.ts_ms = 1765000000000;
  t.latest.lat_e6 = 32061234;
  t.latest.lon_e6 = 118791234;
  t.latest.speed_dkmh = 623;
  t.latest.heading = 271;
  t.latest.status = 3;
  char *batch = malloc(HW_RS_PUB_BATCH_BYTES + HW_RS_EVENT_MAX);
  size_t len = 0, bytes = 0;
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    t.latest.ts_ms += 1000;
    t.latest.lat_e6 += 7;
    len += hw_redis_state_format_event(batch + len, &t, 50);
    if (len >= HW_RS_PUB_BATCH_BYTES) {
      bytes += len;
      len = 0;
    }
  }
  double d = now_s() - t0;
  printf("daemon: %.0f ns per position event (%zu bytes each)\n", d * 1e9 / (double)n,
         (bytes + len) / (size_t)n);

  /* one batch as published, injected n / lines times */
  len = 0;
  long lines = 0;
  while (len < HW_RS_PUB_BATCH_BYTES) {
    len += hw_redis_state_format_event(batch + len, &t, 50);
    lines++;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  hw_sse_hub *hub;
  hw_sse_config cfg = {0};
  if (hw_sse_hub_start(&hub, &loop, &cfg))
    return 1;
  long rounds = n / lines + 1;
  t0 = now_s();
  for (long i = 0; i < rounds; i++)
    hw_sse_hub_inject(hub, HW_POSITIONS_REDIS_CHANNEL, batch, len - 1);
  d = now_s() - t0;
  printf("web: %.0f ns per event received (parse, frame, ring; %ld events per batch)\n",
         d * 1e9 / (double)(rounds * lines), lines);
  hw_sse_hub_stop(hub, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(batch);
  return 0;
}
