/* Shared by server.c and session.c only. */
#ifndef HW_SERVER_INTERNAL_H
#define HW_SERVER_INTERNAL_H

#include "net/server.h"

#define HW_MAX_LISTENERS 4
#define HW_READ_BUF (256 * 1024)

typedef struct hw_listener {
  uv_tcp_t tcp;
  hw_server *srv;
  const hw_proto *proto;
  char addr[64];
  hw_proto_counters counters; /* its sessions count here (hw_session.counters) */
} hw_listener;

struct hw_server {
  uv_loop_t *loop;
  hw_server_config cfg;
  struct hw_backend *backend; /* borrowed */
  hw_listener listeners[HW_MAX_LISTENERS];
  int nlisteners;
  uv_timer_t sweep;
  hw_session *sessions; /* list head */
  size_t nsessions;
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

#endif
