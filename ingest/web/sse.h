/* The live feed of `haulwatch web`: Server-Sent Events for the browsers of one web process loop.
 *
 * A hub owns one Redis subscription (HW_POSITIONS_REDIS_CHANNEL, published in batches by the
 * daemon's redis_state.c, and HW_VIOLATION_REDIS_CHANNEL, published by violation_relay.c) shared
 * by every browser of the loop, a bounded ring of the recent events (for Last-Event-ID), and the
 * attached clients: each an hw_http streamed response (text/event-stream) that the hub writes
 * until the client goes or the hub stops. Nothing here reaches the daemon: browsers cost it
 * nothing.
 *
 * Events: `event: positions` (data: a JSON array of the client's vehicles whose state changed
 * within the last flush_ms, each vehicle once with its newest state, in sse_batch.h's compact
 * form), `event: violation` (data: the relay's JSON payload, sent at once), `event: reset` (data: {"reason": ...}: the client missed
 * events, e.g. its Last-Event-ID is older than the ring or from another process, or Redis was
 * away: reload the state over the API and go on from this event's id). Every event has an id
 * "<epoch>-<seq>": epoch (hex) names this hub, seq counts its events from 1; a heartbeat comment
 * every heartbeat_ms keeps proxies from closing an idle stream.
 *
 * Scoping: every event carries the vehicle's region and enterprise (the daemon reads them from
 * its registry, the relay from the violations row); each client has a filter callback that sees
 * them before an event is written to it, and replays through the same filter.
 *
 * Hostile clients: a client whose unwritten output would exceed client_max_queue bytes is
 * dropped (counted in dropped_slow; its EventSource reconnects with Last-Event-ID and resumes or
 * is told to reset), and at most max_clients stream at once (hw_sse_attach: -EBUSY). Memory is
 * bounded by ring_bytes + max_clients x client_max_queue.
 *
 * Loop thread only; one hub per loop, no globals. */
#ifndef HW_WEB_SSE_H
#define HW_WEB_SSE_H

#include <uv.h>

#include "base/common.h"
#include "http/http_server.h"

/* Defaults, written once: the web command's settings table uses these as text (HW_XSTR). */
#define HW_SSE_DEF_MAX_CLIENTS 1000
#define HW_SSE_DEF_RING_EVENTS 65536
#define HW_SSE_DEF_RING_BYTES 33554432   /* 32 MiB */
#define HW_SSE_DEF_CLIENT_QUEUE 1048576  /* 1 MiB */
#define HW_SSE_DEF_HEARTBEAT_MS 15000
#define HW_SSE_DEF_TIMEOUT_MS 2000
#define HW_SSE_DEF_FLUSH_MS 1000
#define HW_SSE_DEF_BATCH_BYTES 262144 /* 256 KiB; at most client_max_queue / 4 */

typedef struct hw_sse_config {
  const char *redis_host; /* copied; NULL: no subscription (events only via hw_sse_hub_inject) */
  int redis_port;
  uint32_t timeout_ms;       /* Redis connect timeout */
  uint32_t max_clients;      /* streams at once */
  uint32_t ring_events;      /* recent events kept for Last-Event-ID ... */
  uint32_t ring_bytes;       /* ... and their bytes at most */
  uint32_t client_max_queue; /* unwritten bytes per client before it is dropped */
  uint32_t heartbeat_ms;
  uint32_t flush_ms;    /* positions are sent coalesced, one batch per this interval */
  uint32_t batch_bytes; /* encoded positions per batch event at most */
} hw_sse_config;

/* Zero fields of a config take the HW_SSE_DEF_* defaults. */
void hw_sse_config_default(hw_sse_config *cfg);

typedef enum { HW_SSE_POSITION = 1, HW_SSE_VIOLATION = 2 } hw_sse_kind;

/* What a filter sees of an event. Strings are never NULL ("" when unknown: a terminal bound to
 * no vehicle has no region) and valid only during the call. */
typedef struct hw_sse_event_meta {
  hw_sse_kind kind;
  const char *terminal_id;
  const char *region;     /* GB/T 2260 code, 6 digits, or "" */
  const char *enterprise;
} hw_sse_event_meta;

/* 1: write the event to this client. */
typedef int (*hw_sse_filter_fn)(void *arg, const hw_sse_event_meta *ev);

/* A ready-made filter for user scopes: arg is an hw_sse_regions. GB/T 2260 semantics: 320000
 * covers 32xxxx, 320100 covers 3201xx, 320102 itself. n == 0 lets nothing through (a user with no
 * region sees nothing); unrestricted users pass filter NULL to hw_sse_attach. */
typedef struct hw_sse_regions {
  size_t n;
  char codes[][7]; /* NUL-terminated 6-digit codes */
} hw_sse_regions;
int hw_sse_filter_regions(void *arg, const hw_sse_event_meta *ev);
/* 1 when region lies within code (both 6 digits); the semantics above. */
int hw_sse_region_within(const char *region, const char *code);

typedef struct hw_sse_hub hw_sse_hub;

int hw_sse_hub_start(hw_sse_hub **out, uv_loop_t *loop, const hw_sse_config *cfg) HW_MUST_CHECK;

/* Makes req (a GET the handler has not answered) a stream of this hub: answers 200
 * text/event-stream (Cache-Control: no-cache), replays what last_event_id (the request's
 * Last-Event-ID header, may be NULL) missed within the ring, or sends `reset`, then writes every
 * new event that filter (NULL: all) lets through until the client goes or the hub stops.
 * filter_arg is owned by the hub from a 0 return on: arg_free(filter_arg) runs when the client
 * ends (arg_free may be NULL). scope (copied; may be NULL) names what the filter lets through:
 * clients with the same filter function and scope share each position batch's bytes (framed
 * once), so two filters with one scope key must pass the same events; NULL: a client of its own.
 * Unfiltered clients (filter NULL) always share. Returns
 *   0       req belongs to the hub (the handler must not touch it again);
 *   -EBUSY  max_clients stream already (or the hub is stopping), -ENOMEM, or an error of
 *           hw_http_add_header (a handler that added too many headers itself): req not answered,
 *           filter_arg still the caller's (answer it, e.g. 503);
 *   -EPIPE  the connection closed while the head was written: req is gone, filter_arg freed. */
int hw_sse_attach(hw_sse_hub *hub, hw_http_req *req, hw_sse_filter_fn filter, void *filter_arg,
                  void (*arg_free)(void *), const char *scope,
                  const char *last_event_id) HW_MUST_CHECK;

/* What a Redis message on channel does (parse; a violation is numbered, kept in the ring and sent
 * at once, positions wait for the next flush): for tests and for a process that has events of
 * its own. */
void hw_sse_hub_inject(hw_sse_hub *hub, const char *channel, const char *payload, size_t len);
/* What the flush timer does every flush_ms: the pending positions become batch events, sent. */
void hw_sse_hub_flush(hw_sse_hub *hub);

typedef struct hw_sse_stats {
  size_t clients;                   /* streaming now */
  uint64_t attached, refused_cap;   /* streams begun; refused over max_clients */
  uint64_t dropped_slow;            /* clients dropped: output over client_max_queue */
  uint64_t resumed, resets;         /* attaches that replayed; reset events sent */
  uint64_t positions, violations;   /* vehicle states and violations received */
  uint64_t batches;                 /* position batch events numbered */
  uint64_t coalesced, stale;        /* states replaced by a newer one within a flush; older
                                       than the one pending, ignored */
  uint64_t bad_messages;            /* Redis messages or lines that were not the expected JSON */
  uint64_t bytes_written;           /* to clients, SSE framing included */
  uint64_t redis_reconnects;
  int subscribed;                   /* the subscription is up */
  size_t ring_events, ring_bytes;
  uint64_t epoch, last_seq;  /* ids are "<epoch hex>-<seq>"; last_seq: the newest */
} hw_sse_stats;
void hw_sse_hub_get_stats(const hw_sse_hub *hub, hw_sse_stats *out);

/* Ends every stream (a clean end of the response), unsubscribes, frees the hub; done_cb (may be
 * NULL) runs from the loop afterwards. Stop it before closing its HTTP server (or after: the
 * server's abort callbacks release the clients either way). */
void hw_sse_hub_stop(hw_sse_hub *hub, void (*done_cb)(void *arg), void *arg);

/* --- pure helpers, exposed for the tests ---------------------------------------------------- */

/* An SSE event: "id: ID\nevent: EVENT\n" then one "data: " line per line of data (split at
 * "\r\n", "\r" or "\n", as the SSE parser would), then "\n". id or event NULL: that line is left
 * out. Writes into out when cap allows; returns the length needed (like snprintf, no NUL). */
size_t hw_sse_format(char *out, size_t cap, const char *id, const char *event, const char *data,
                     size_t len);

/* Parses an event id "<epoch hex>-<seq>"; 0 or -EINVAL. */
int hw_sse_parse_id(const char *s, uint64_t *epoch, uint64_t *seq) HW_MUST_CHECK;

#endif
