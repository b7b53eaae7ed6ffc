/* JT/T 809 work the main-link session hands off the loop: deciding a 0x1001 (the platform's row,
 * its password hash, the link row inserted on success) and closing a link row. Both need
 * PostgreSQL and argon2, neither may block the loop: they run on libuv's thread pool, each on a
 * short-lived connection.
 *
 * A module of its own so that the session's fuzz target (tests/fuzz/fuzz_jt809_session.c) can
 * put a synchronous fake in its place at link time, as fake_backend.c does for registry/auth.c.
 * Loop thread only (the work functions run on the pool and touch only their job). */
#ifndef HW_JT809_LOGIN_JOB_H
#define HW_JT809_LOGIN_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/common.h"
#include "jt809/jt809_login.h"

#define HW_JT809_LOGIN_FRAME_MAX 256 /* a 0x1001 frame, unescaped: 68 or 80 bytes (more tolerated) */

typedef struct hw_jt809_login_job hw_jt809_login_job;

/* Called on the loop once decided (status: a libuv error when the pool failed the job, 0 else);
 * the job is freed after it returns. Not called for a job cancelled. */
typedef void (*hw_jt809_login_cb)(void *arg, int status, hw_jt809_login_job *j);

struct hw_jt809_login_job {
  uv_work_t work;
  hw_jt809_login_cb cb; /* NULL once cancelled: the job frees itself (and closes its link row) */
  void *arg;
  /* in */
  const char *conninfo; /* borrowed: lives as long as the daemon */
  uint8_t frame[HW_JT809_LOGIN_FRAME_MAX];
  size_t frame_len;
  uint32_t center;
  char peer[48];
  char peer_ip[48];
  char daemon[33]; /* the centre's instance name for the link row, or empty (NULL on the row) */
  /* out */
  int result;         /* HW_JT809_LOGIN_* */
  const char *reason; /* static text; NULL: the database did not answer (no refusal recorded) */
  int found;
  hw_jt809_platform plat;
  uint8_t is_2019;
  long long link_id; /* the platform_links row inserted on success */
  char down_ip[33];  /* the slave link's address, as 0x1001 gave it */
  uint16_t down_port;
};

/* A job for frame (len <= HW_JT809_LOGIN_FRAME_MAX), its inputs to be filled by the caller
 * (center, peer, peer_ip, daemon); NULL when out of memory or the frame is too long. */
hw_jt809_login_job *hw_jt809_login_new(const char *conninfo, const uint8_t *frame, size_t len);
/* Queues j; cb(arg, ...) on the loop when decided. On an error j is freed: -EBUSY
 * (HW_JT809_MAX_LOGIN_JOBS being decided in the process, cancelled ones included), -EINVAL (no
 * conninfo), or libuv's. */
int hw_jt809_login_start(uv_loop_t *loop, hw_jt809_login_job *j, hw_jt809_login_cb cb,
                         void *arg) HW_MUST_CHECK;
/* The session closed first: no callback; a link row the decision opened is closed at once
 * ('peer closed'). */
void hw_jt809_login_cancel(hw_jt809_login_job *j);

/* Closes platform_links row link_id (down_at now, reason copied), off the loop; failures are
 * logged. */
void hw_jt809_link_close(uv_loop_t *loop, const char *conninfo, long long link_id,
                         const char *reason);

#endif
