/* TCP listeners and the sessions they accept, on one libuv loop. The server carries, unread, the
 * back end its sessions talk to (pipeline/backend.h: registry, authentication, pipeline), which
 * serve wires; backpressure is asked of it with hw_server_pause/resume. The server owns its sessions,
 * the loop-wide read buffer, the per-address counts of unauthenticated sessions and the counters
 * of what its limits refused; all of it is per server (one per loop), nothing process-wide.
 *
 * Limits on unauthenticated peers: at most max_unauth_per_source sessions not yet bound to a
 * terminal per source address (IPv4 address, IPv6 /64) and max_unauth in all (a newcomer above
 * it closes the oldest), each closed auth_timeout_s after it opened (time paused for
 * backpressure does not count) and holding at most preauth_buffer bytes of input until bound;
 * max_connections counts every session.
 *
 * Fairness: every read is at most HW_READ_TURN bytes; a session whose read filled it yields until
 * the loop's next turn, and the session list is kept least recently read first, which is the
 * order reading resumes in after backpressure, so no connection monopolises the backlog. */
#ifndef HW_SERVER_H
#define HW_SERVER_H

#include "net/session.h"

struct hw_backend;

typedef struct hw_server_config {
  uint32_t idle_timeout_s;   /* close a session silent this long */
  uint32_t max_connections;  /* refuse (close at once) above this */
  uint32_t max_write_queue;  /* bytes queued to a client that does not read: above, close it */
  /* Unauthenticated sessions; 0 in any of these four means no limit. */
  uint32_t auth_timeout_s;   /* close a session not authenticated this long after it opened */
  uint32_t preauth_buffer;   /* bytes of input a session may hold before authentication */
  uint32_t max_unauth_per_source; /* unauthenticated sessions at once from one address */
  uint32_t max_unauth;       /* unauthenticated sessions at once in all: above, the oldest goes */
  /* Listen with SO_REUSEPORT: several servers (serve --workers, one per loop) bind the same
   * address and the kernel spreads new connections over them. Off: a second bind fails. */
  int reuseport;
} hw_server_config;

/* Counters since start, and two gauges; plain integers (one loop), one struct to export. */
typedef struct hw_server_stats {
  uint64_t accepted;                /* connections accepted (including those refused at once) */
  uint64_t refused_max_connections; /* closed at once: max_connections reached */
  uint64_t refused_per_source;      /* closed at once: max_unauth_per_source reached */
  uint64_t closed_auth_timeout;     /* not authenticated within auth_timeout_s */
  uint64_t closed_preauth_buffer;   /* held more than preauth_buffer bytes before authentication */
  uint64_t evicted_unauth;          /* oldest unauthenticated, closed for a newcomer (max_unauth) */
  uint64_t accept_failed;           /* accept failed, mostly out of descriptors (EMFILE/ENFILE):
                                       libuv then accepts and closes the waiting peers */
  uint64_t read_yields;             /* reads that used a whole turn: the session waited a turn */
  uint64_t closed_proxy_header;     /* a PROXY v2 listener's connection without a valid header */
  uint64_t sessions;                /* gauge: open sessions */
  uint64_t unauthenticated;         /* gauge: open sessions not bound to a terminal */
} hw_server_stats;

typedef struct hw_server hw_server;

/* backend: borrowed, handed to the sessions (hw_server_backend); must outlive the server. */
int hw_server_init(hw_server **out, uv_loop_t *loop, const hw_server_config *cfg,
                   struct hw_backend *backend) HW_MUST_CHECK;

/* Listens on "HOST:PORT" for protocol proto. */
int hw_server_listen(hw_server *srv, const char *hostport, const hw_proto *proto) HW_MUST_CHECK;
/* The same; proxy_v2: every connection must start with a PROXY protocol v2 header
 * (net/proxy_v2.h), whose source address then stands for the peer in logs, refusals and the
 * per-source limits; one that does not is closed. The per-source count starts once the header
 * is read (the front's own address would otherwise count every terminal behind it). */
int hw_server_listen_ex(hw_server *srv, const char *hostport, const hw_proto *proto,
                        int proxy_v2) HW_MUST_CHECK;

/* Backpressure: stop / restart reading from every session. Sockets stay open; the kernel queue
 * fills and TCP flow control slows the senders; nothing is dropped. */
void hw_server_pause(hw_server *srv);
void hw_server_resume(hw_server *srv);
int hw_server_paused(const hw_server *srv);

struct hw_backend *hw_server_backend(hw_server *srv);
uv_loop_t *hw_server_loop(hw_server *srv);
size_t hw_server_sessions(const hw_server *srv);
void hw_server_get_stats(const hw_server *srv, hw_server_stats *out);

/* One listener's view for the metrics: its protocol's counters and the sessions open on it now,
 * by state. Walks the session list (a scrape every few seconds, not a hot path). */
typedef struct hw_server_listener_stats {
  const char *proto;                /* hw_proto.name: "pb", "jt808" */
  hw_proto_counters counters;
  size_t authenticated, unauthenticated;
} hw_server_listener_stats;
/* Fills out[0..n) for the first max listeners; returns n. */
size_t hw_server_listener_stats_get(const hw_server *srv, hw_server_listener_stats *out, size_t max);

/* Closes the listeners and stops reading; sessions stay open so acks can still be delivered. */
void hw_server_stop_accepting(hw_server *srv);
/* Closes every session (on_closing with HW_CLOSE_SHUTDOWN) and the server's handles; done_cb
 * runs once everything is closed. */
void hw_server_close(hw_server *srv, void (*done_cb)(void *arg), void *arg);

#endif
