/* libFuzzer target for the JT/T 809 main-link session (jt809/jt809_session.c): the real
 * hw_jt809_proto.on_data fed a byte stream, with fake_backend.c in place of the server, pipeline
 * and authentication, the real position path (jt809_data.c) and the real centre
 * (jt809_centre.c: 0x1300/0x1400 answers and alarms) on a fake PostgreSQL, and, in place of
 * jt809_login_job.c, a login decided synchronously at the next loop turn. So 0x1001 (accepted
 * or each refusal), 0x1005, 0x1200 positions and registrations, 0x1301, 0x1402, 0x1003 and
 * garbage are handled before and after a login, in reads of any size.
 *
 * Input: byte 0: bits 2-3 how the server ends the session (fake_backend.h), bits 4-6 the login
 * decision: 0 and 7 accepted (7: the platform has keys M1/IA1/IC1 = 1/2/3, so its frames are
 * decrypted), 1 bad address, 2 bad access code, 3 unknown user, 4 wrong password, 5 the
 * database did not answer, 6 other refusal; byte 1: read size (0 = all at once).
 * Oracles (besides the sanitizers and fake_backend.h's): every write is whole JT/T 809 frames
 * of the centre (0x1002, 0x1004, 0x1006, 0x9xxx); no login callback owed to a closed session;
 * every link row opened is closed once, after its login, and only then. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "fake_backend.h"
#include "jt809/jt809_centre.h"
#include "jt809/jt809_frame.h"
#include "jt809/jt809_login_job.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_session.h"
#include "jt809/jt809_slave.h"
#include "net/server.h"
#include "pipeline/backend.h"
#include "pipeline/pipeline.h"
#include "sinks/pg_async.h"
#include "sinks/pg_conn.h"

static int fz_login_mode;

/* ---- jt809_login_job.h, synchronous ---- */

#define FZ_MAX_JOBS 8
static hw_jt809_login_job *fz_jobs[FZ_MAX_JOBS];
static long long fz_next_link = 1;
static long long fz_open_link; /* the row a login opened and its close has not come: 0 none */

hw_jt809_login_job *hw_jt809_login_new(const char *conninfo, const uint8_t *frame, size_t len) {
  if (len > HW_JT809_LOGIN_FRAME_MAX)
    return NULL;
  hw_jt809_login_job *j = calloc(1, sizeof *j);
  HW_FAKE_CHECK(j);
  j->conninfo = conninfo;
  memcpy(j->frame, frame, len);
  j->frame_len = len;
  return j;
}

int hw_jt809_login_start(uv_loop_t *loop, hw_jt809_login_job *j, hw_jt809_login_cb cb,
                         void *arg) {
  (void)loop;
  HW_FAKE_CHECK(cb);
  for (int i = 0; i < FZ_MAX_JOBS; i++)
    if (!fz_jobs[i]) {
      j->cb = cb;
      j->arg = arg;
      fz_jobs[i] = j;
      return 0;
    }
  free(j);
  return -EBUSY;
}

void hw_jt809_login_cancel(hw_jt809_login_job *j) { j->cb = NULL; }

void hw_jt809_link_close(uv_loop_t *loop, const char *conninfo, long long link_id,
                         const char *reason) {
  (void)loop;
  (void)conninfo;
  HW_FAKE_CHECK(link_id && link_id == fz_open_link && reason && reason[0]);
  fz_open_link = 0;
}

static void fz_decide(hw_jt809_login_job *j) {
  static const uint8_t results[8] = {HW_JT809_LOGIN_OK, HW_JT809_LOGIN_BAD_IP,
                                     HW_JT809_LOGIN_BAD_ACCESS_CODE, HW_JT809_LOGIN_NO_USER,
                                     HW_JT809_LOGIN_BAD_PASSWORD, HW_JT809_LOGIN_OTHER,
                                     HW_JT809_LOGIN_OTHER, HW_JT809_LOGIN_OK};
  j->is_2019 = j->frame_len >= HW_JT809_HEADER_2019 + 50;
  j->result = results[fz_login_mode];
  j->reason = fz_login_mode == 5 ? NULL : "refused by the fuzz fake";
  hw_jt809_header h;
  const uint8_t *body;
  size_t body_len;
  hw_jt809_login m;
  if (hw_jt809_open(j->frame, j->frame_len, j->is_2019, NULL, &h, &body, &body_len) ||
      hw_jt809_parse_login(body, body_len, j->is_2019, &m)) {
    j->result = HW_JT809_LOGIN_OTHER;
    j->reason = "login message malformed";
    return;
  }
  memcpy(j->down_ip, m.down_ip, sizeof j->down_ip);
  j->down_port = m.down_port;
  if (j->result != HW_JT809_LOGIN_OK)
    return;
  j->found = 1;
  strcpy(j->plat.id, "fuzzp");
  j->plat.user_id = m.user_id;
  j->plat.center_id = j->center;
  j->plat.version = j->is_2019 ? 2019 : 2011;
  if (fz_login_mode == 7)
    j->plat.has_keys = 1, j->plat.m1 = 1, j->plat.ia1 = 2, j->plat.ic1 = 3;
  HW_FAKE_CHECK(fz_open_link == 0); /* one link per session, its row closed before another */
  j->link_id = fz_open_link = fz_next_link++;
}

/* ---- sinks/pg_async.h, pg_conn.h: a database that never answers (connection lost) ---- */

#define FZ_MAX_Q 4096
typedef struct fz_q {
  hw_pg_async_cb cb;
  void *arg;
} fz_q;
static fz_q fz_queue[FZ_MAX_Q];
static size_t fz_nq;
static int fz_async_handle;

int hw_pg_async_start(hw_pg_async **out, uv_loop_t *loop, const char *conninfo,
                      const char *component) {
  (void)loop, (void)conninfo, (void)component;
  *out = (hw_pg_async *)&fz_async_handle; /* never dereferenced */
  return 0;
}
int hw_pg_async_query(hw_pg_async *c, const char *sql, int nparams, const char *const *params,
                      hw_pg_async_cb cb, void *arg) {
  HW_FAKE_CHECK(c == (hw_pg_async *)&fz_async_handle && sql && cb);
  for (int i = 0; i < nparams; i++)
    if (params[i]) {
      volatile size_t n = strlen(params[i]); /* ASan: each parameter a whole string */
      (void)n;
    }
  if (fz_nq == FZ_MAX_Q)
    return -ENOMEM;
  fz_queue[fz_nq++] = (fz_q){cb, arg};
  return 0;
}
int hw_pg_async_up(const hw_pg_async *c) { return c != NULL; }
void hw_pg_async_stop(hw_pg_async *c, void (*done_cb)(void *arg), void *arg) {
  (void)c, (void)done_cb, (void)arg;
  abort(); /* the centre lives as long as the process */
}
int hw_pg_conn_init(hw_pg_conn *c, uv_loop_t *loop, const char *conninfo, const char *component,
                    const hw_pg_conn_ops *ops, void *data) {
  (void)loop, (void)conninfo, (void)component, (void)ops;
  memset(c, 0, sizeof *c);
  c->data = data;
  return 0;
}
int hw_pg_conn_flush(hw_pg_conn *c) {
  (void)c;
  return 0;
}
void hw_pg_conn_fail(hw_pg_conn *c, const char *why) { (void)c, (void)why; }
void hw_pg_conn_close(hw_pg_conn *c) { (void)c; }
const char *hw_pg_errmsg(const PGresult *res) {
  (void)res;
  return "fake";
}

/* ---- jt809_slave.h: no slave link (the slave state machine is fuzz_jt809's) ---- */

int hw_jt809_slave_start(hw_jt809_slave **out, uv_loop_t *loop, hw_jt809_centre *centre,
                         const hw_jt809_slave_params *p) {
  (void)out, (void)loop, (void)centre, (void)p;
  return -ENOTSUP;
}
int hw_jt809_slave_up(const hw_jt809_slave *sl) {
  HW_FAKE_CHECK(sl == NULL);
  return 0;
}
int hw_jt809_slave_send(hw_jt809_slave *sl, uint16_t msg_id, const uint8_t *body, size_t len,
                        uint32_t *sn) {
  (void)sl, (void)msg_id, (void)body, (void)len, (void)sn;
  abort();
}
void hw_jt809_slave_stop(hw_jt809_slave *sl, int say_bye, const char *why) {
  (void)sl, (void)say_bye, (void)why;
  abort();
}

/* ---- pipeline.h: what jt809_data.c calls beside fake_backend.c's ---- */

const hw_vehicle *hw_pipeline_vehicle_by_plate(const hw_pipeline *p, const char *plate,
                                               uint8_t colour) {
  (void)p, (void)colour;
  volatile size_t n = strlen(plate);
  (void)n;
  return NULL;
}
int hw_pipeline_submit_unacked(hw_pipeline *p, hw_terminal *t, const hw_fix *fixes, size_t n) {
  HW_FAKE_CHECK(p && t && n > 0);
  for (size_t i = 0; i < n; i++) {
    HW_FAKE_CHECK(fixes[i].ts_ms >= 946684800000LL - 8 * 3600 * 1000LL &&
                  fixes[i].ts_ms <= 4102444800000LL);
    HW_FAKE_CHECK(fixes[i].heading < 360 || (fixes[i].quality & HW_Q_BAD_HEADING));
  }
  return 0;
}

/* ---- the turn ---- */

static void fz_turn(void) {
  for (int i = 0; i < FZ_MAX_JOBS; i++) {
    hw_jt809_login_job *j = fz_jobs[i];
    if (!j)
      continue;
    fz_jobs[i] = NULL;
    fz_decide(j);
    if (j->cb)
      j->cb(j->arg, 0, j);
    else if (j->link_id) /* as the real job: the session closed meanwhile */
      hw_jt809_link_close(NULL, j->conninfo, j->link_id, "peer closed");
    free(j);
  }
  /* answers, in order; an answer may queue the next query (a scan that goes on) */
  for (int rounds = 0; fz_nq && rounds < 8; rounds++) {
    fz_q q[FZ_MAX_Q];
    size_t n = fz_nq;
    memcpy(q, fz_queue, n * sizeof q[0]);
    fz_nq = 0;
    for (size_t i = 0; i < n; i++)
      q[i].cb(q[i].arg, NULL);
  }
}

/* ---- replies ---- */

static int reply_cb(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  int *frames = arg;
  uint16_t msg_id;
  uint32_t center;
  HW_FAKE_CHECK(ev == HW_JT809_FRAME);
  HW_FAKE_CHECK(hw_jt809_peek(data, len, &msg_id, &center) == 0);
  HW_FAKE_CHECK(msg_id == HW_JT809_UP_CONNECT_RSP || msg_id == HW_JT809_UP_DISCONNECT_RSP ||
                msg_id == HW_JT809_UP_LINKTEST_RSP || (msg_id & 0xF000) == 0x9000);
  (*frames)++;
  return 0;
}

static void on_write(hw_session *s, const uint8_t *data, size_t len) {
  (void)s;
  static uint8_t buf[HW_JT809_FRAME_DEFAULT];
  hw_jt809_deframer d;
  int frames = 0;
  HW_FAKE_CHECK(len >= 2 && data[0] == 0x5B && data[len - 1] == 0x5D);
  HW_FAKE_CHECK(hw_jt809_deframer_init(&d, buf, sizeof buf) == 0);
  HW_FAKE_CHECK(hw_jt809_deframer_feed(&d, data, len, reply_cb, &frames) == 0);
  HW_FAKE_CHECK(frames >= 1 && d.len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!hw_fake_turn_hook) {
    hw_fake_turn_hook = fz_turn;
    /* No conninfo: jt809_data.c records registration mismatches on the thread pool only with
     * one, and the fake loop never runs (the fake login above does not need it). */
    hw_fake_sessionless_bind = 1;
    /* Once, for the process, on the fake loop (never run: its timers never fire), finding
     * sessions in the fake registry (static; emptied after each input). */
    hw_jt809_centre_config cfg = {.conninfo = "fuzz: never connected", .slave_timeout_ms = 1000,
                                  .slave_heartbeat_ms = 1000, .slave_backoff_min_ms = 1000,
                                  .slave_backoff_max_ms = 1000, .request_expire_s = 60,
                                  .scan_ms = 1000, .seen_ms = 1000};
    HW_FAKE_CHECK(hw_jt809_centre_start(&hw_fake_jt809, hw_fake_loop(),
                                        hw_server_backend(NULL)->registry, &cfg) == 0);
    if (getenv("HW_FUZZ_LOG")) /* to see what the seeds reach */
      hw_log_min_level = 0;
  }
  if (size < 2)
    return 0;
  fz_login_mode = (data[0] >> 4) & 7;
  hw_fake_run(&hw_jt809_proto, data, size, on_write);
  HW_FAKE_CHECK(fz_open_link == 0); /* every row opened was closed by the session's close */
  for (int i = 0; i < FZ_MAX_JOBS; i++) /* a cancelled login comes back after the close */
    HW_FAKE_CHECK(!fz_jobs[i] || !fz_jobs[i]->cb);
  fz_turn();
  HW_FAKE_CHECK(fz_open_link == 0);
  return 0;
}
