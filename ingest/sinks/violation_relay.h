/* The live violation feed: every payload PostgreSQL sends on channel hw_violations (the trigger
 * of schema/006_violation_feed.sql: every new violation, every state change, every change a
 * screen shows, whoever made it: the daemon's upserts or the CLI's transitions) is published
 * unchanged, as JSON, on Redis channel hw:violations.
 *
 * Two connections of its own: PostgreSQL (hw_pg_conn, LISTEN hw_violations, again after every
 * reconnect) and Redis (hiredis async on the loop, reconnect with backoff 100 ms .. 5 s, connect
 * and reply timeouts). Messages are published in the order PostgreSQL delivered them.
 *
 * Delivery. While Redis is away messages wait, at most max_pending of them: beyond that the
 * oldest waiting message is dropped and counted (stats.dropped, logged at most once a second). A
 * message is forgotten only once Redis answered its PUBLISH; those unanswered when a connection
 * is lost are published again on the next one, so a subscriber may see a message twice (id and
 * updated_at in the payload tell a repeat). Notifications sent while the PostgreSQL connection
 * is down are lost (the table stays the record; the feed is live only). Redis Pub/Sub itself
 * keeps nothing for subscribers that are not connected.
 * Loop thread only. */
#ifndef HW_VIOLATION_RELAY_H
#define HW_VIOLATION_RELAY_H

#include <uv.h>

#include "base/common.h"

#define HW_VIOLATION_PG_CHANNEL "hw_violations"
#define HW_VIOLATION_REDIS_CHANNEL "hw:violations"
/* Active-safety alarms take the same path: the trigger of schema/022_safety_alarms.sql notifies
 * hw_alarms once per stored alarm (after its commit, never for a resend), published unchanged on
 * hw:alarms, in order with the violations. */
#define HW_ALARM_PG_CHANNEL "hw_alarms"
#define HW_ALARM_REDIS_CHANNEL "hw:alarms"

typedef struct hw_violation_relay hw_violation_relay;

typedef struct hw_violation_relay_config {
  const char *conninfo;   /* PostgreSQL; copied */
  const char *redis_host; /* copied; a name is resolved off the loop */
  int redis_port;
  uint32_t max_pending;   /* messages waiting for Redis (default 10000) */
  uint32_t timeout_ms;    /* Redis connect and reply timeout (default 2000) */
} hw_violation_relay_config;

/* Connects both sides from the loop. -EINVAL (bad config), -ENOMEM, libuv errors. */
int hw_violation_relay_start(hw_violation_relay **out, uv_loop_t *loop,
                             const hw_violation_relay_config *cfg) HW_MUST_CHECK;

typedef struct hw_violation_relay_stats {
  uint64_t received;   /* notifications from PostgreSQL */
  uint64_t published;  /* PUBLISH answered by Redis */
  uint64_t dropped;    /* oldest messages dropped while Redis was away or slow */
  uint64_t republished; /* sent again after a lost Redis connection */
  uint64_t reconnects; /* Redis connect attempts after the first */
  size_t pending;      /* messages not yet answered, in flight included */
  int listening;       /* LISTEN is active on the current PostgreSQL session */
  int redis_connected;
} hw_violation_relay_stats;
void hw_violation_relay_get_stats(const hw_violation_relay *r, hw_violation_relay_stats *out);

/* Stops listening at once, publishes what waits if Redis is connected (for at most timeout_ms),
 * closes both connections, frees r, then calls done_cb (may be NULL) from the loop. */
void hw_violation_relay_stop(hw_violation_relay *r, void (*done_cb)(void *arg), void *arg);

#endif
