/* The latest state of every terminal in Redis.
 *
 * Keys (sinks/redis_keys.h): hash hw:veh:{xx}:<terminal_id> (lat, lon, speed_kmh, heading, alt_m,
 * ts_ms, recv_ms, alarm, status, odometer_km, driver_id) and geo set hw:geo:{xx} (member = terminal
 * id), xx the terminal's bucket, the keys' Redis Cluster hash tag.
 *
 * Only the newest fix per terminal matters, so updates coalesce in memory: hw_redis_state_put keeps
 * the fix in the terminal's record if it is newer than what is there and puts the terminal on a
 * dirty list; the dirty list is written out pipelined (a bounded number of commands in flight) by a
 * Lua script that compares ts_ms in Redis too, so late data never overwrites newer state even when
 * two daemons write; one script call writes up to 64 vehicles of one bucket. Memory is bounded by the number of terminals, not by how far Redis lags, so
 * Redis never needs to slow ingest.
 *
 * Uses its own hiredis<->libuv adapter (hiredis 0.14.1's loses socket errors). When Redis goes
 * away: reconnect with exponential backoff (100 ms .. 5 s); once back, every terminal with a
 * latest state is marked dirty so Redis is brought up to date.
 *
 * Live feed (publish = 1): every state written is also a position event for the live map, one
 * JSON object per line, published in batches on channel HW_POSITIONS_REDIS_CHANNEL: one PUBLISH
 * carries every state a flush pass wrote (up to HW_RS_PUB_BATCH_BYTES), so the feed costs a
 * handful of commands per flush round, not one per vehicle, and nothing more however many web
 * processes or browsers listen. The PUBLISH follows the writes on the same connection, so a
 * subscriber that reads hw:veh:{xx}:<id> on an event finds that state or a newer one. Events carry
 * the vehicle's region and enterprise from the registry (t->vehicle) so that the web side can
 * scope without a database look-up. A subscriber keeps, per terminal, the event with the newest
 * ts_ms: with two daemons writing one terminal (a reconnect to another node), an older state may
 * be published after a newer one. Nothing is kept for absent subscribers (Pub/Sub). */
#ifndef HW_REDIS_STATE_H
#define HW_REDIS_STATE_H

#include <uv.h>

#include "registry/terminal.h"

#define HW_POSITIONS_REDIS_CHANNEL "hw:positions"
/* A batch is published once it reaches this many bytes (or at the end of a flush pass). */
#define HW_RS_PUB_BATCH_BYTES 65536

typedef struct hw_redis_state hw_redis_state;

typedef struct hw_redis_state_config {
  const char *host;       /* copied */
  int port;
  uint32_t max_in_flight; /* commands sent and not answered (default 1024) */
  uint32_t timeout_ms;    /* connect and reply timeout (default 2000) */
  uint32_t flush_ms;      /* write each terminal at most once per this many ms (0: no pacing) */
  int publish;            /* also publish each state written on HW_POSITIONS_REDIS_CHANNEL */
  uint32_t moving_dkmh;   /* an event says moving at this speed or above, 0.1 km/h */
} hw_redis_state_config;

/* Appends t's position event (one JSON object and '\n') to out, which has room for
 * HW_RS_EVENT_MAX bytes; returns the bytes written. Pure; for the tests too. Fields:
 * terminal_id, ts_ms, lat, lon, speed_kmh, heading, alarm, status, moving, region and enterprise
 * (null when no vehicle is bound). */
#define HW_RS_EVENT_MAX 2048
size_t hw_redis_state_format_event(char *out, const hw_terminal *t, uint32_t moving_dkmh);

/* registry: the daemon's terminal registry, walked after a reconnect. */
int hw_redis_state_start(hw_redis_state **out, uv_loop_t *loop, const hw_redis_state_config *cfg,
                         hw_registry *registry) HW_MUST_CHECK;

/* Records fix as t's latest state if its device time is newer, and schedules the write. The same
 * device time again (ties) keeps the state recorded first and ORs the new fix's alarm bits into
 * it, as positions does; in Redis too, so two daemons agree. */
void hw_redis_state_put(hw_redis_state *r, hw_terminal *t, const hw_fix *fix);

typedef struct hw_redis_state_stats {
  uint64_t writes, reconnects; /* writes: vehicle states answered (stale ones included) */
  uint64_t calls;              /* script calls answered (each writes one bucket's vehicles) */
  uint64_t events_published;  /* position events in answered PUBLISHes */
  uint64_t publishes;         /* PUBLISH commands answered (batches) */
  size_t dirty;   /* terminals waiting to be written */
  uint64_t lag_ms; /* how long the longest-waiting of them has waited (0: none waits) */
  int connected;
} hw_redis_state_stats;
void hw_redis_state_get_stats(const hw_redis_state *r, hw_redis_state_stats *out);

/* Flushes the dirty list if connected (bounded by timeout_ms), then closes handles; done_cb after. */
void hw_redis_state_stop(hw_redis_state *r, void (*done_cb)(void *arg), void *arg);

#endif
