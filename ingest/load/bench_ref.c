/* `haulwatch-sim bench-ref`: the benchmark's reference. The same rows the simulator would send (same
 * truck model, same count), written through the daemon's own sinks (hw_pg_writer with the daemon's
 * batch settings, hw_redis_state) on one loop, with no protocol, parsing or network client in
 * between. What ops/bench compares the daemon end to end against.
 *
 * Fixes are generated before the clock starts and kept compact (hw_sim_rec); the timed part
 * rebuilds each hw_fix with a copy, adds it to both sinks and queues an ack behind every report-
 * sized chunk, exactly as the daemon's pipeline does, and ends when the last ack is durable. Rows
 * are fed with the daemon's backpressure: stop above high_water uncommitted rows, go on below
 * low_water. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "load/load.h"
#include "base/log.h"
#include "sinks/pg_writer.h"
#include "sinks/redis_state.h"
#include "load/sim_truck.h"

#define HW_REF_PREFIX "ref"
#define HW_REF_STEP_MS 10000
#define HW_REF_FEED_SLICE 10000 /* rows added per loop iteration, so I/O keeps flowing */

typedef struct hw_ref {
  uv_loop_t loop;
  uv_idle_t feeder;   /* active while there are rows to add and room below high_water */
  uv_timer_t ticker;  /* progress and timeout */
  hw_pg_writer *pg;
  hw_redis_state *redis;
  hw_registry registry;
  uint32_t trucks, fixes, chunk, high_water, low_water, timeout_s;
  int quiet;
  hw_sim_truck *model;   /* owned, trucks: identity, drivers and time base of each truck */
  hw_sim_rec *recs;      /* owned, trucks x fixes, truck-major: the pre-generated fixes */
  hw_terminal **terms;   /* owned array, trucks; records owned by the registry */
  uint64_t total, added, durable;
  uint32_t round, next_truck; /* feed position: chunk `round` of truck `next_truck` */
  uint64_t t0_ns, t1_ns;
  int done, failed, stopping, stops_pending;
  hw_pg_writer_stats pg_stats;       /* as the run ended */
  hw_redis_state_stats redis_stats;
} hw_ref;

static void hw_ref_finish(hw_ref *r);

static void hw_ref_feed(uv_idle_t *h) {
  hw_ref *r = h->data;
  uint64_t slice = 0;
  int64_t recv = hw_now_ms();
  while (slice < HW_REF_FEED_SLICE && r->added < r->total) {
    if (hw_pg_writer_backlog(r->pg) >= r->high_water) {
      uv_idle_stop(h); /* resumed from the durable callback */
      return;
    }
    /* Interleave trucks one report-sized chunk at a time, as many connections would. */
    uint32_t i = r->next_truck;
    uint64_t from = (uint64_t)r->round * r->chunk;
    uint64_t to = from + r->chunk < r->fixes ? from + r->chunk : r->fixes;
    if (++r->next_truck == r->trucks) {
      r->next_truck = 0;
      r->round++;
    }
    if (from >= to)
      continue;
    hw_terminal *t = r->terms[i];
    for (uint64_t k = from; k < to; k++) {
      hw_fix f;
      hw_sim_rec_unpack(&r->model[i], (int64_t)k + 1, &r->recs[(size_t)i * r->fixes + k], &f);
      f.recv_ms = recv;
      int rc = hw_pg_writer_add(r->pg, t->id, &f);
      if (rc < 0) {
        hw_error("bench-ref", t->id, "adding a row failed: %s", strerror(-rc));
        r->failed = 1;
        hw_ref_finish(r);
        return;
      }
      hw_redis_state_put(r->redis, t, &f);
    }
    hw_ack_ref ack = {.term = t, .session_gen = t->session_gen, .kind = 1, .token = to - from};
    int rc = hw_pg_writer_add_ack(r->pg, &ack);
    if (rc < 0) {
      hw_error("bench-ref", t->id, "queueing an ack failed: %s", strerror(-rc));
      r->failed = 1;
      hw_ref_finish(r);
      return;
    }
    r->added += to - from;
    slice += to - from;
  }
  if (r->added == r->total)
    uv_idle_stop(h);
}

static void hw_ref_on_done(uv_timer_t *h) { hw_ref_finish(h->data); }

static void hw_ref_on_durable(void *arg, const hw_ack_ref *acks, size_t n) {
  hw_ref *r = arg;
  for (size_t i = 0; i < n; i++)
    r->durable += acks[i].token;
  if (r->durable >= r->total && !r->done) {
    r->done = 1;
    r->t1_ns = uv_hrtime();
    /* Stop the writer from the loop, not from inside its own callback. */
    uv_timer_stop(&r->ticker);
    uv_timer_start(&r->ticker, hw_ref_on_done, 0, 0);
    return;
  }
  if (!r->stopping && r->added < r->total && hw_pg_writer_backlog(r->pg) <= r->low_water)
    uv_idle_start(&r->feeder, hw_ref_feed);
}

static void hw_ref_on_tick(uv_timer_t *h) {
  hw_ref *r = h->data;
  double s = (double)(uv_hrtime() - r->t0_ns) / 1e9;
  if (s >= r->timeout_s) {
    hw_error("bench-ref", NULL, "timeout after %u s: %llu of %llu rows durable", r->timeout_s,
             (unsigned long long)r->durable, (unsigned long long)r->total);
    r->failed = 1;
    hw_ref_finish(r);
    return;
  }
  if (!r->quiet) {
    hw_redis_state_stats rs;
    hw_redis_state_get_stats(r->redis, &rs);
    hw_info("bench-ref", NULL, "t=%.0fs added=%llu durable=%llu backlog=%zu redis_dirty=%zu",
            s, (unsigned long long)r->added, (unsigned long long)r->durable,
            hw_pg_writer_backlog(r->pg), rs.dirty);
  }
}

static void hw_ref_stopped(void *arg) {
  hw_ref *r = arg;
  if (--r->stops_pending == 0) {
    uv_close((uv_handle_t *)&r->feeder, NULL);
    uv_close((uv_handle_t *)&r->ticker, NULL);
  }
}

/* Both sinks flush what they hold (Redis gets the latest state of every truck) and close. */
static void hw_ref_finish(hw_ref *r) {
  if (r->stopping)
    return;
  r->stopping = 1;
  hw_pg_writer_get_stats(r->pg, &r->pg_stats);
  hw_redis_state_get_stats(r->redis, &r->redis_stats);
  uv_idle_stop(&r->feeder);
  uv_timer_stop(&r->ticker);
  r->stops_pending = 2;
  hw_pg_writer_stop(r->pg, hw_ref_stopped, r);
  hw_redis_state_stop(r->redis, hw_ref_stopped, r);
}

static const char hw_ref_usage[] =
    "usage: haulwatch-sim bench-ref --pg CONNINFO --redis HOST:PORT --trucks N --fixes N [options]\n"
    "\n"
    "Writes trucks x fixes simulated positions (terminal ids ref000001...) through the daemon's\n"
    "own PostgreSQL writer and Redis state modules, in process, and prints\n"
    "  bench-ref: rows=... seconds=... positions_per_s=...\n"
    "timed from the first row added to the last one durable. Generating the rows is not timed.\n"
    "\n"
    "  --pg CONNINFO       PostgreSQL with the haulwatch schema (required; or $HAULWATCH_PG)\n"
    "  --redis HOST:PORT   Redis for the latest state (required)\n"
    "  --trucks N          trucks (required)\n"
    "  --fixes N           fixes per truck (required); device times end now, 10 s apart\n"
    "  --batch-rows N      commit a batch at this many rows (default 5000, as serve)\n"
    "  --batch-ms MS       ... or when its oldest row is this old (default 50, as serve)\n"
    "  --pg-writers N      writer connections (default 2, as serve)\n"
    "  --high-water N      stop adding above this many uncommitted rows (default 200000, as serve)\n"
    "  --low-water N       add again below this many (default 100000, as serve)\n"
    "  --report-fixes K    rows per ack, interleaving trucks (default 50, as sim flat out)\n"
    "  --seed S            route seed (default 1)\n"
    "  --timeout-s S       give up after S seconds, exit 1 (default 600)\n"
    "  --quiet             no progress lines\n"
    "  --help              this text\n";

static int hw_ref_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
  char *end;
  if (!s || !*s || *s == '-')
    return -EINVAL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -EINVAL;
  *out = (uint32_t)v;
  return 0;
}

int hw_cmd_bench_ref(int argc, char **argv) {
  static const struct option opts[] = {
      {"pg", required_argument, NULL, 'p'},         {"redis", required_argument, NULL, 'r'},
      {"trucks", required_argument, NULL, 't'},     {"fixes", required_argument, NULL, 'f'},
      {"batch-rows", required_argument, NULL, 'b'}, {"batch-ms", required_argument, NULL, 'm'},
      {"pg-writers", required_argument, NULL, 'w'}, {"high-water", required_argument, NULL, 'H'},
      {"low-water", required_argument, NULL, 'L'},  {"report-fixes", required_argument, NULL, 'k'},
      {"seed", required_argument, NULL, 's'},       {"timeout-s", required_argument, NULL, 'T'},
      {"quiet", no_argument, NULL, 'q'},            {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *pg = getenv("HAULWATCH_PG"), *redis = NULL;
  uint32_t trucks = 0, fixes = 0, batch_rows = 5000, batch_ms = 50, writers = 2;
  uint32_t high = 200000, low = 100000, chunk = 50, seed = 1, timeout = 600;
  int quiet = 0, o, rc = 0, li;
  optind = 0;
  while ((o = getopt_long(argc, argv, "h", opts, &li)) != -1) {
    switch (o) {
    case 'p': pg = optarg; break;
    case 'r': redis = optarg; break;
    case 't': rc = hw_ref_u32(optarg, 1, 10000000, &trucks); break;
    case 'f': rc = hw_ref_u32(optarg, 1, 100000000, &fixes); break;
    case 'b': rc = hw_ref_u32(optarg, 1, 1000000, &batch_rows); break;
    case 'm': rc = hw_ref_u32(optarg, 1, 60000, &batch_ms); break;
    case 'w': rc = hw_ref_u32(optarg, 1, 16, &writers); break;
    case 'H': rc = hw_ref_u32(optarg, 1000, 100000000, &high); break;
    case 'L': rc = hw_ref_u32(optarg, 0, 100000000, &low); break;
    case 'k': rc = hw_ref_u32(optarg, 1, 100000, &chunk); break;
    case 's': rc = hw_ref_u32(optarg, 0, UINT32_MAX, &seed); break;
    case 'T': rc = hw_ref_u32(optarg, 1, 86400 * 30, &timeout); break;
    case 'q': quiet = 1; break;
    case 'h': fputs(hw_ref_usage, stdout); return 0;
    default: fputs(hw_ref_usage, stderr); return 2;
    }
    if (rc) {
      fprintf(stderr, "haulwatch-sim bench-ref: bad value '%s'\n", optarg);
      return 2;
    }
  }
  char host[256];
  const char *colon = redis ? strrchr(redis, ':') : NULL;
  uint32_t port = 0;
  const char *bad = NULL;
  if (optind < argc)
    bad = "unexpected argument";
  else if (!pg || !*pg)
    bad = "--pg is required";
  else if (!redis || !colon || (size_t)(colon - redis) >= sizeof host ||
           hw_ref_u32(colon + 1, 1, 65535, &port) < 0)
    bad = "--redis HOST:PORT is required";
  else if (!trucks || !fixes)
    bad = "--trucks and --fixes are required";
  else if (low >= high)
    bad = "--low-water must be below --high-water";
  if (bad) {
    fprintf(stderr, "haulwatch-sim bench-ref: %s\n\n%s", bad, hw_ref_usage);
    return 2;
  }
  memcpy(host, redis, (size_t)(colon - redis));
  host[colon - redis] = 0;

  hw_ref *r = calloc(1, sizeof *r);
  if (!r)
    return 1;
  int exit_code = 1;
  r->trucks = trucks;
  r->fixes = fixes;
  r->chunk = chunk;
  r->high_water = high;
  r->low_water = low;
  r->timeout_s = timeout;
  r->quiet = quiet;
  r->total = (uint64_t)trucks * fixes;
  r->model = calloc(trucks, sizeof *r->model);
  r->terms = calloc(trucks, sizeof *r->terms);
  r->recs = malloc(r->total * sizeof *r->recs);
  if (!r->model || !r->terms || !r->recs) {
    hw_error("bench-ref", NULL, "out of memory for %llu rows", (unsigned long long)r->total);
    goto out;
  }

  /* Untimed: the routes, and the registry records the sinks want. */
  int64_t start = hw_now_ms() - (int64_t)fixes * HW_REF_STEP_MS; /* data ends now, as sim's */
  for (uint32_t i = 0; i < trucks; i++) {
    char id[HW_TERMINAL_ID_MAX + 1];
    snprintf(id, sizeof id, HW_REF_PREFIX "%06u", i + 1);
    if (hw_registry_get(&r->registry, id, &r->terms[i]) < 0)
      goto out;
    hw_sim_truck_init(&r->model[i], seed, i + 1, start, HW_REF_STEP_MS);
    hw_sim_truck gen = r->model[i]; /* generate on a copy: model[i] keeps the time base */
    for (uint32_t k = 0; k < fixes; k++) {
      hw_fix f;
      hw_sim_truck_next(&gen, &f);
      hw_sim_rec_pack(&r->recs[(size_t)i * fixes + k], &f, gen.driver_no);
    }
  }
  if (!quiet)
    hw_info("bench-ref", NULL, "generated %llu rows for %u trucks; writing",
            (unsigned long long)r->total, trucks);

  if (uv_loop_init(&r->loop) < 0)
    goto out;
  hw_pg_writer_config pc = {.conninfo = pg, .batch_rows = batch_rows, .batch_ms = batch_ms,
                            .connections = writers};
  hw_redis_state_config rc_ = {.host = host, .port = (int)port, .max_in_flight = 1024,
                               .timeout_ms = 2000};
  if ((rc = hw_pg_writer_start(&r->pg, &r->loop, &pc, hw_ref_on_durable, r)) < 0) {
    hw_error("bench-ref", NULL, "PostgreSQL writer: %s", strerror(-rc));
    goto out_loop;
  }
  if ((rc = hw_redis_state_start(&r->redis, &r->loop, &rc_, &r->registry)) < 0) {
    hw_error("bench-ref", NULL, "Redis state: %s", strerror(-rc));
    r->stops_pending = 1;
    hw_pg_writer_stop(r->pg, NULL, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    goto out_loop;
  }
  uv_idle_init(&r->loop, &r->feeder);
  uv_timer_init(&r->loop, &r->ticker);
  r->feeder.data = r->ticker.data = r;
  r->t0_ns = uv_hrtime();
  uv_idle_start(&r->feeder, hw_ref_feed);
  uv_timer_start(&r->ticker, hw_ref_on_tick, 5000, 5000);
  uv_run(&r->loop, UV_RUN_DEFAULT);

  if (r->done && !r->failed) {
    double secs = (double)(r->t1_ns - r->t0_ns) / 1e9;
    printf("bench-ref: rows=%llu seconds=%.2f positions_per_s=%.0f trucks=%u batch_rows=%u "
           "pg_writers=%u batches=%llu conflict_replays=%llu redis_writes=%llu\n",
           (unsigned long long)r->durable, secs, secs > 0 ? (double)r->durable / secs : 0, trucks,
           batch_rows, writers, (unsigned long long)r->pg_stats.batches_committed,
           (unsigned long long)r->pg_stats.conflict_replays,
           (unsigned long long)r->redis_stats.writes);
    fflush(stdout);
    exit_code = 0;
  } else {
    printf("bench-ref: rows=%llu seconds=0 positions_per_s=0 failed=1\n",
           (unsigned long long)r->durable);
  }
out_loop:
  if (uv_loop_close(&r->loop) < 0)
    hw_warn("bench-ref", NULL, "loop closed with handles open");
out:
  hw_registry_free(&r->registry);
  free(r->recs);
  free(r->terms);
  free(r->model);
  free(r);
  return exit_code;
}
