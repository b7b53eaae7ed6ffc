/* JT/T 809: what the centre (the superior platform) says to subordinate platforms and records
 * of them, beside the links themselves (notes: docs/jt809.md; schema/016_jt809_links.sql).
 *
 * Owns two PostgreSQL connections on the loop: one LISTENs on hw_platform_outbox (the CLI's
 * `platform inspect|message|supervise` insert a pending row and the trigger notifies), one runs
 * the queries, in order (hw_pg_async). On a notification, on a platform's login
 * (hw_jt809_centre_kick) and every scan interval, pending rows are read; each one whose platform
 * is online on this daemon is sent (0x9300/0x9301, 0x9300/0x9302, 0x9400/0x9401) over its slave
 * link, or its main link while the slave link is down, and its sent_at, link and serial number
 * recorded. Rows of platforms that stay offline longer than request_expire_s are closed with an
 * error. Answers that come up (0x1300/0x1301, 0x1400/0x1401) are matched to their request and
 * recorded with their delay; 0x1400/0x1402 alarms are stored in platform_alarms, whose trigger
 * publishes them on the violation feed.
 *
 * Times: the daemon's wall clock at the event, in ms, so an answer's delay is what the centre
 * saw between writing the question and reading the answer. Loop thread only. */
#ifndef HW_JT809_CENTRE_H
#define HW_JT809_CENTRE_H

#include <uv.h>

#include "base/common.h"
#include "registry/terminal.h"

#define HW_JT809_OUTBOX_CHANNEL "hw_platform_outbox"

typedef struct hw_jt809_centre hw_jt809_centre;

typedef struct hw_jt809_centre_config {
  const char *conninfo;          /* copied */
  uint32_t slave_timeout_ms;     /* slave link: connect, 0x9002 and heartbeat answer timeout */
  uint32_t slave_heartbeat_ms;   /* slave link: 0x9005 interval */
  uint32_t slave_backoff_min_ms; /* slave link: first reconnect delay, doubled to the max */
  uint32_t slave_backoff_max_ms;
  uint32_t request_expire_s;     /* pending requests of offline platforms: closed after this */
  uint32_t scan_ms;              /* outbox scan even without a notification */
  uint32_t seen_ms;              /* refresh of our open link rows' last_seen_at (>= 1000) */
} hw_jt809_centre_config;

/* registry: borrowed (the sessions of "jt809p:ACCESSCODE"). -ENOMEM, libuv/libpq errors. */
int hw_jt809_centre_start(hw_jt809_centre **out, uv_loop_t *loop, hw_registry *registry,
                          const hw_jt809_centre_config *cfg) HW_MUST_CHECK;
const hw_jt809_centre_config *hw_jt809_centre_cfg(const hw_jt809_centre *c);

/* A platform logged in (or its slave link came up): send what waits for it. */
void hw_jt809_centre_kick(hw_jt809_centre *c);

/* A link row (platform_links): up (inserted) or down (the open row of that platform and kind
 * closed). ms: wall clock of the event. Queued in order behind earlier queries. */
void hw_jt809_centre_link_up(hw_jt809_centre *c, const char *platform, const char *link,
                             const char *remote, int64_t ms);
void hw_jt809_centre_link_down(hw_jt809_centre *c, const char *platform, const char *link,
                               int64_t ms, const char *reason);

/* This daemon's name on the link rows it opens (platform_links.daemon, schema 018): random,
 * per start. Our open rows' last_seen_at is refreshed every seen_ms; open rows of other
 * daemons not refreshed for 3 intervals are closed at their last_seen_at, 'daemon died'. */
const char *hw_jt809_centre_instance(const hw_jt809_centre *c);

/* A 0x1300 or 0x1400 body (decrypted) from platform. 0, or -EBADMSG for a body that does not
 * parse (the session counts a strike). */
int hw_jt809_centre_on_up(hw_jt809_centre *c, const char *platform, int is_2019, uint16_t msg_id,
                          const uint8_t *body, size_t len) HW_MUST_CHECK;

/* Stops (pending callbacks dropped), closes both connections, frees c, then done_cb. */
void hw_jt809_centre_stop(hw_jt809_centre *c, void (*done_cb)(void *arg), void *arg);

/* Wall clock, ms since 1970. */
int64_t hw_jt809_wall_ms(void);

#endif
