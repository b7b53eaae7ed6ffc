/* Shared by server.c and session.c only. */
#ifndef HW_SERVER_INTERNAL_H
#define HW_SERVER_INTERNAL_H

#include <uthash.h>

#include "net/server.h"

#define HW_MAX_LISTENERS 4
/* One read's bytes at most, and a session's share of one loop turn: 256 KiB is about 5,000
 * protobuf fixes, well under the backlog budget (high_water - low_water, 100,000 rows by
 * default). Fairness comes from one read per turn and the resume order, not from small reads:
 * 64 KiB measured no fairer, and 256 KiB keeps reads as large as before. */
#define HW_READ_TURN (256 * 1024)
#define HW_READ_BUF HW_READ_TURN
/* At most one log line per limit per this many ms; the next line says how many were not logged. */
#define HW_LIMIT_LOG_MS 10000

/* Unauthenticated sessions from one source: an IPv4 address or an IPv6 /64 (one subscriber's
 * prefix), as 16 bytes (IPv4 mapped). Exists only while count > 0. */
typedef struct hw_source {
  uint8_t key[16];
  uint32_t unauth;
  UT_hash_handle hh;
} hw_source;

typedef enum {
  HW_LIMIT_MAX_CONNECTIONS = 0,
  HW_LIMIT_PER_SOURCE,
  HW_LIMIT_AUTH_TIMEOUT,
  HW_LIMIT_PREAUTH_BUFFER,
  HW_LIMIT_MAX_UNAUTH,
  HW_LIMIT_ACCEPT,
  HW_LIMIT_PROXY_HEADER,
  HW_LIMIT_COUNT
} hw_limit;

typedef struct hw_limit_log {
  uint64_t last_ms;    /* loop time of the last line, 0: none yet */
  uint64_t suppressed; /* hits not logged since */
} hw_limit_log;

typedef struct hw_listener {
  uv_tcp_t tcp;
  hw_server *srv;
  const hw_proto *proto;
  char addr[64];
  int proxy_v2;               /* connections start with a PROXY v2 header (net/proxy_v2.h) */
  hw_proto_counters counters; /* its sessions count here (hw_session.counters) */
} hw_listener;

struct hw_server {
  uv_loop_t *loop;
  hw_server_config cfg;
  struct hw_backend *backend; /* borrowed */
  hw_listener listeners[HW_MAX_LISTENERS];
  int nlisteners;
  uv_timer_t sweep;
  uv_timer_t auth_timer;  /* due at the oldest unauthenticated session's deadline */
  uv_check_t turn;        /* after each poll: sessions that yielded read again */
  hw_session *sessions, *sessions_tail; /* least recently read first */
  size_t nsessions;
  hw_session *unauth, *unauth_tail;     /* unauthenticated, oldest first */
  size_t nunauth;
  hw_source *sources;     /* uthash by key: unauthenticated sessions per source */
  hw_session **yielded;   /* owned array: sessions waiting for the next turn */
  size_t nyielded, cap_yielded;
  hw_server_stats stats;
  hw_limit_log limit_log[HW_LIMIT_COUNT];
  /* Unpaused clock: loop time minus time spent paused, so a deadline does not run while the
   * server is not reading. */
  uint64_t paused_total_ms, paused_since_ms;
  int paused;
  int accepting;
  int closing;
  int pending_closes;   /* server handles still closing */
  void (*done_cb)(void *);
  void *done_arg;
  /* One read buffer for the whole loop: a session's bytes are consumed before the next read, so
   * only partial frames are ever copied into per-session memory. */
  uint8_t *readbuf;     /* owned, HW_READ_BUF bytes */
  int readbuf_busy;
};

void hw_session_start(hw_server *srv, hw_listener *l);
void hw_session_read_start(hw_session *s);
void hw_session_read_stop(hw_session *s);
void hw_server_session_gone(hw_server *srv);

/* The unpaused clock (see struct hw_server). */
uint64_t hw_server_active_ms(const hw_server *srv);
/* Logs a limit's hit at most once per HW_LIMIT_LOG_MS (level warn, component "server"). */
void hw_server_limit_log(hw_server *srv, hw_limit which, const char *fmt, ...) HW_PRINTF(3, 4);
/* Session bookkeeping kept by the server. */
int hw_server_source_enter(hw_server *srv, hw_session *s, const struct sockaddr *sa) HW_MUST_CHECK;
void hw_server_unauth_leave(hw_server *srv, hw_session *s);
void hw_server_list_touch(hw_server *srv, hw_session *s);
void hw_server_list_remove(hw_server *srv, hw_session *s);
void hw_server_list_append(hw_server *srv, hw_session *s);
void hw_server_yield(hw_server *srv, hw_session *s);

#endif
