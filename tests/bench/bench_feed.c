/* Micro benchmark of the live feed's hot paths, in CPU time (the machine is shared):
 *   - the daemon: hw_redis_state_format_event, ns per position event (what publish_positions
 *     adds to each latest-state write, besides one PUBLISH per flush pass);
 *   - a web process receiving: hw_sse_hub_inject of the daemon's batches (parse, compact
 *     encoding, the newest state per vehicle) and the flush (batch events into the ring), ns per
 *     event, no client attached;
 *   - a web process sending: one flush of V vehicles to C clients of one scope (framed once, the
 *     same bytes handed to every client; socketless connections, so no kernel cost), ns per
 *     client per vehicle, and the bytes each client receives per vehicle, against the per-event
 *     form the feed had before (one `event: position` of the daemon's JSON object per vehicle).
 *
 *   ./build/tests/bench_feed [events=1000000] [vehicles=10000] [clients=100] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http_server.h"
#include "registry/registry.h"
#include "sinks/redis_state.h"
#include "web/sse.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static hw_sse_hub *hub;
static size_t sunk; /* bytes the clients received */

static void sink(void *arg, const uint8_t *d, size_t n) {
  (void)arg;
  (void)d;
  sunk += n;
}

static void h_stream(hw_http_req *req, void *arg) {
  (void)arg;
  if (hw_sse_attach(hub, req, NULL, NULL, NULL, NULL, NULL) && hw_http_respond_error(req, 503, "no"))
    fprintf(stderr, "bench_feed: a stream was refused\n");
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  long vehicles = argc > 2 ? atol(argv[2]) : 10000;
  long nclients = argc > 3 ? atol(argv[3]) : 100;
  static hw_terminal t;
  static hw_vehicle v;
  static char tid[HW_TID_WIDE_MAX + 1] = "013800138000"; /* t.id points here, rewritten below */
  t.id = tid;
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
  size_t event_bytes = (bytes + len) / (size_t)n;
  printf("daemon: %.0f ns per position event (%zu bytes each)\n", d * 1e9 / (double)n, event_bytes);

  uv_loop_t loop;
  uv_loop_init(&loop);
  hw_sse_config cfg = {.flush_ms = 3600000}; /* flushed here, not by the timer */
  if (hw_sse_hub_start(&hub, &loop, &cfg))
    return 1;
  /* The daemon's batches (64 KiB, about 300 vehicles each) for every vehicle once, made ahead. */
  long nb = 0;
  char **bufs = calloc((size_t)vehicles + 1, sizeof *bufs);
  size_t *lens = calloc((size_t)vehicles + 1, sizeof *lens);
  for (long first = 0; first < vehicles; nb++) {
    bufs[nb] = malloc(HW_RS_PUB_BATCH_BYTES + HW_RS_EVENT_MAX);
    size_t l = 0;
    for (; first < vehicles && l < HW_RS_PUB_BATCH_BYTES; first++) {
      snprintf(tid, sizeof tid, "sim%06ld", first);
      l += hw_redis_state_format_event(bufs[nb] + l, &t, 50);
    }
    lens[nb] = l - 1;
  }
  /* Receiving, no client: every vehicle once per flush, n events in all. */
  long events = 0;
  t0 = now_s();
  while (events < n) {
    for (long b = 0; b < nb; b++)
      hw_sse_hub_inject(hub, HW_POSITIONS_REDIS_CHANNEL, bufs[b], lens[b]);
    hw_sse_hub_flush(hub);
    events += vehicles;
  }
  d = now_s() - t0;
  printf("web, receiving: %.0f ns per event (parse, encode, newest per vehicle, flush into the "
         "ring; %ld vehicles per flush, %ld events)\n", d * 1e9 / (double)events, vehicles, events);

  /* Sending: nclients streams of one scope on socketless connections. */
  hw_http_server *srv;
  hw_http_config hc;
  memset(&hc, 0, sizeof hc);
  hw_http_route routes[1] = {{"GET", "/s", h_stream, NULL, 0}};
  if (hw_http_server_init(&srv, &loop, &hc, routes, 1))
    return 1;
  static const char req[] = "GET /s HTTP/1.1\r\nHost: b\r\n\r\n";
  for (long c = 0; c < nclients; c++) {
    hw_http_test_conn *tc;
    if (hw_http_test_conn_new(srv, sink, NULL, &tc) ||
        hw_http_test_feed(tc, (const uint8_t *)req, sizeof req - 1) != sizeof req - 1)
      return 1;
  }
  long rounds = n / (vehicles * nclients) + 1;
  double send = 0;
  for (long r = 0; r < rounds; r++) {
    for (long b = 0; b < nb; b++)
      hw_sse_hub_inject(hub, HW_POSITIONS_REDIS_CHANNEL, bufs[b], lens[b]);
    sunk = 0;
    t0 = now_s();
    hw_sse_hub_flush(hub);
    send += now_s() - t0;
  }
  double per_client = (double)sunk / (double)nclients / (double)vehicles;
  /* the former form: "id: <12 hex>-<seq>\nevent: position\ndata: <event>\n\n", chunked per
   * Redis message (about 300 events) */
  double before = (double)event_bytes - 1 + 4 + 20 + 16 + 6 + 2;
  printf("web, sending: %.1f ns per client per vehicle (%ld clients of one scope, %ld vehicles "
         "per flush, framed once, no copy per client); %.1f bytes per vehicle to each client, "
         "the per-event form sent %.0f (%.1fx)\n",
         send * 1e9 / (double)(rounds * vehicles * nclients), nclients, vehicles, per_client,
         before, before / per_client);
  hw_sse_hub_stop(hub, NULL, NULL);
  hw_http_server_close(srv, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  for (long b = 0; b < nb; b++)
    free(bufs[b]);
  free(bufs);
  free(lens);
  free(batch);
  uv_loop_close(&loop);
  return 0;
}
