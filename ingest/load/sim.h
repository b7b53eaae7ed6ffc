/* The simulator engine behind `haulwatch sim`: N trucks on one libuv loop, each its own TCP
 * connection, with a window of unacknowledged fixes, resend after reconnect and ack latency.
 *
 * The engine knows nothing of the wire format. A protocol module (sim_pb.c for haulwatch's own
 * protobuf protocol, sim_jt808.c for JT/T 808) encodes the login, reports and heartbeats into
 * the engine's output buffer and parses what the server sends, calling back hw_sim_login_ok /
 * _refused, hw_sim_acked and hw_sim_conn_fail. Acks are cumulative in the engine's terms ("every
 * fix with seq <= n is durable"); a protocol with per-message acks maps them onto that. */
#ifndef HW_SIM_H
#define HW_SIM_H

#include <sys/socket.h>

#include "base/hist.h"
#include "load/sim_scenario.h"
#include "load/sim_truck.h"

/* A growable byte buffer owned by its connection. */
typedef struct hw_sim_buf {
  uint8_t *data; /* owned, NULL until first used */
  size_t len, cap;
} hw_sim_buf;

/* Makes room for n more bytes after len and returns where they go (the caller advances len), or
 * NULL when out of memory. */
uint8_t *hw_sim_buf_reserve(hw_sim_buf *b, size_t n);

typedef struct hw_sim_conn hw_sim_conn;

typedef struct hw_sim_proto {
  const char *name;
  size_t max_report_fixes; /* most fixes one report may carry (frame size limits) */
  size_t state_size;       /* per-truck protocol state, zeroed before first use */
  /* A new TCP connection is about to start: forget everything about the previous one. */
  void (*conn_reset)(hw_sim_conn *c, void *st);
  void (*conn_free)(void *st);
  /* Each appends one message to out; 0 or a negative code. Fixes carry their wire seq. */
  int (*login)(hw_sim_conn *c, void *st, hw_sim_buf *out);
  int (*report)(hw_sim_conn *c, void *st, const hw_fix *fixes, size_t n, hw_sim_buf *out);
  int (*heartbeat)(hw_sim_conn *c, void *st, hw_sim_buf *out);
  /* Bytes from the server. A negative return closes the connection (and reconnects) unless a
   * callback already decided its fate. */
  int (*on_data)(hw_sim_conn *c, void *st, const uint8_t *data, size_t len);
} hw_sim_proto;

extern const hw_sim_proto hw_sim_proto_pb;
extern const hw_sim_proto hw_sim_proto_jt808;

/* The device id a simulated JT/T 808 terminal registers with: the last 7 characters of its
 * terminal id (a pointer into it). The provisioning gives each terminal the same one, so that a
 * registration repeated after a lost 0x8100 is answered as a provisioned device's. */
const char *hw_sim_j8_device_id(const char *terminal_id);

/* For protocol modules: the truck's identity, and what the server said. */
const char *hw_sim_conn_id(const hw_sim_conn *c);
const char *hw_sim_conn_token(const hw_sim_conn *c);
/* The truck's script (sim_scenario.h), NULL for a model truck: what a protocol may add to a
 * scripted fix (JT/T 808: active-safety items, hw_scn_alarm_of with the fix's seq). */
const hw_scn_script *hw_sim_conn_script(const hw_sim_conn *c);
/* Where on_data may append messages of its own (a login of several round trips, answers to the
 * server); the engine sends them once on_data returns. */
hw_sim_buf *hw_sim_conn_out(hw_sim_conn *c);
/* Login accepted; last_acked_seq as the server reported it (0 when it does not know). */
void hw_sim_login_ok(hw_sim_conn *c, uint64_t last_acked_seq);
/* Login refused: the truck stops for good. */
void hw_sim_login_refused(hw_sim_conn *c, const char *reason);
/* Every fix with wire seq <= seq is durable. */
void hw_sim_acked(hw_sim_conn *c, uint64_t seq);
/* The server refused the fix with wire seq seq (reason: the protocol's name for why). The
 * simulator only generates valid fixes, so this is counted and logged: the run fails. The fix
 * is not resent on this connection; the server's next Ack covers its seq. */
void hw_sim_fix_refused(hw_sim_conn *c, uint64_t seq, const char *reason);
/* Close this connection and reconnect after a backoff. */
void hw_sim_conn_fail(hw_sim_conn *c, const char *why);

typedef struct hw_sim_config {
  struct sockaddr_storage addr; /* the daemon */
  const hw_sim_proto *proto;
  uint32_t trucks;
  char **ids;                   /* trucks entries, owned by the caller */
  char **tokens;                /* trucks entries, owned by the caller */
  uint64_t fixes;               /* per truck; 0: run for duration_ms instead */
  /* Scripted trucks (sim_scenario.h), borrowed: trucks entries or NULL (all model trucks).
   * Truck i follows scripts[i] and sends exactly its nfixes fixes, at the script's device
   * times; a script of kind HW_SCN_NORMAL means a model truck sending `fixes`. Needs `fixes`
   * mode, and scripts built with start_ms + step_ms as their first fix time and step_ms. */
  const hw_scn_script *scripts;
  uint64_t duration_ms;
  uint32_t interval_ms;         /* wall-time pacing per truck; 0 = as fast as the window allows */
  uint32_t step_ms;             /* device time between fixes */
  int64_t start_ms;             /* device time of fix 0 (the first fix is start + step) */
  uint32_t report_fixes;        /* fixes per report, at most */
  uint32_t window;              /* fixes sent and not acknowledged, per truck, at most */
  uint32_t timeout_s;           /* --fixes mode: give up after this long */
  uint64_t seed;
  int progress;                 /* 0 none, 1 plain line every 5 s, 2 live line on a TTY */
} hw_sim_config;

typedef struct hw_sim_result {
  uint32_t trucks, connected, refused;
  uint64_t generated, sent, resent, acked, reconnects, connect_failures, heartbeats;
  uint64_t fixes_refused;       /* listed in a protobuf Ack.refused: the run fails */
  double seconds;
  hw_hist ack_latency_us;       /* first send of a fix to its ack */
  int timed_out, interrupted;
} hw_sim_result;

/* "host:port", "[v6]:port", resolved once (blocking): 0 or a negative code (logged). */
int hw_sim_resolve(const char *hostport, struct sockaddr_storage *out) HW_MUST_CHECK;

/* `haulwatch-sim --protocol jt809 ...`: platforms carrying many vehicles (sim_jt809.c); its own
 * options; returns the exit code. */
int hw_sim_jt809_main(int argc, char **argv);

/* Runs the simulation to its end. 0 when the run itself worked (whatever the daemon did: see
 * res), negative on a local failure (out of memory, loop errors). */
int hw_sim_run(const hw_sim_config *cfg, hw_sim_result *res) HW_MUST_CHECK;

#endif
