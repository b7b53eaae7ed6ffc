/* JT/T 809 logins decided and link rows closed off the loop (see jt809_login_job.h). */
#include "jt809/jt809_login_job.h"

#include <errno.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_session.h"
#include "registry/platform_row.h"

/* Logins being decided in the process: each holds a pool thread for an argon2 verification,
 * so a flood of logins (closed at once or not) must not take the pool from everything else. */
static atomic_int hw_j9j_jobs;

/* A platform_links row to close, on the thread pool; owns itself. */
typedef struct hw_j9j_down {
  uv_work_t work;
  const char *conninfo;
  long long link_id;
  char reason[64];
  char error[160]; /* set by the worker, logged on the loop */
} hw_j9j_down;

static void hw_j9j_login_work(uv_work_t *w) {
  hw_jt809_login_job *j = w->data;
  PGconn *conn = PQconnectdb(j->conninfo);
  PGresult *res = NULL;
  char center[16];
  j->result = HW_JT809_LOGIN_OTHER;
  j->reason = NULL; /* unset: the database did not answer (not recorded as a refusal) */
  if (PQstatus(conn) != CONNECTION_OK)
    goto done;
  snprintf(center, sizeof center, "%u", j->center);
  const char *p1[1] = {center};
  res = PQexecParams(conn, HW_PLATFORM_SQL_BY_CENTER, 1, NULL, p1, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    goto done;
  j->found = PQntuples(res) == 1 && hw_platform_from_row(res, 0, &j->plat) == 0;
  PQclear(res);
  res = NULL;
  /* The edition: the platform's; for an unknown access code the size of the frame tells which
   * layout the login would be (2011: 22 + 46, 2019: 30 + 50). */
  j->is_2019 = j->found ? j->plat.version == 2019
                        : j->frame_len >= HW_JT809_HEADER_2019 + 50;
  hw_jt809_header h;
  const uint8_t *body;
  size_t body_len;
  hw_jt809_login m;
  hw_jt809_cipher c = {j->plat.m1, j->plat.ia1, j->plat.ic1};
  if (hw_jt809_open(j->frame, j->frame_len, j->is_2019, j->found && j->plat.has_keys ? &c : NULL,
                    &h, &body, &body_len) ||
      hw_jt809_parse_login(body, body_len, j->is_2019, &m)) {
    j->result = j->found ? HW_JT809_LOGIN_OTHER : HW_JT809_LOGIN_BAD_ACCESS_CODE;
    j->reason = "login message malformed";
    goto done;
  }
  j->result = hw_jt809_login_check(j->found ? &j->plat : NULL, h.center_id, &m, j->peer_ip,
                                   &j->reason);
  memcpy(j->down_ip, m.down_ip, sizeof j->down_ip);
  j->down_port = m.down_port;
  sodium_memzero(&m, sizeof m);
  if (j->result != HW_JT809_LOGIN_OK)
    goto done;
  const char *p2[3] = {j->plat.id, j->peer, j->daemon[0] ? j->daemon : NULL};
  res = PQexecParams(conn, "INSERT INTO platform_links (platform, link, remote_addr, daemon, "
                     "last_seen_at) VALUES ($1, 'main', $2, $3, now()) RETURNING id", 3, NULL, p2,
                     NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    j->result = HW_JT809_LOGIN_OTHER;
    j->reason = NULL;
    goto done;
  }
  j->link_id = atoll(PQgetvalue(res, 0, 0));
done:
  PQclear(res);
  PQfinish(conn);
}

static void hw_j9j_down_work(uv_work_t *w) {
  hw_j9j_down *j = w->data;
  PGconn *conn = PQconnectdb(j->conninfo);
  char id[24];
  snprintf(id, sizeof id, "%lld", j->link_id);
  const char *p[2] = {id, j->reason};
  PGresult *res = NULL;
  if (PQstatus(conn) == CONNECTION_OK)
    res = PQexecParams(conn, "UPDATE platform_links SET down_at = greatest(now(), up_at), "
                       "reason = $2 WHERE id = $1::bigint AND down_at IS NULL", 2, NULL, p, NULL,
                       NULL, 0);
  if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
    snprintf(j->error, sizeof j->error, "%s", PQerrorMessage(conn));
  PQclear(res);
  PQfinish(conn);
}

static void hw_j9j_down_after(uv_work_t *w, int status) {
  hw_j9j_down *j = w->data;
  if (status || j->error[0])
    hw_warn("jt809", NULL, "platform_links row %lld: down time not recorded: %s", j->link_id,
            status ? uv_strerror(status) : j->error);
  free(j);
}

void hw_jt809_link_close(uv_loop_t *loop, const char *conninfo, long long link_id,
                         const char *reason) {
  hw_j9j_down *d = calloc(1, sizeof *d);
  if (!d || !conninfo) {
    hw_warn("jt809", NULL, "platform_links row %lld: down time not recorded: %s", link_id,
            d ? "no database" : "out of memory");
    free(d);
    return;
  }
  d->conninfo = conninfo;
  d->link_id = link_id;
  snprintf(d->reason, sizeof d->reason, "%s", reason);
  d->work.data = d;
  if (uv_queue_work(loop, &d->work, hw_j9j_down_work, hw_j9j_down_after)) {
    hw_warn("jt809", NULL, "platform_links row %lld: down time not recorded: cannot queue",
            link_id);
    free(d);
  }
}

static void hw_j9j_login_after(uv_work_t *w, int status) {
  hw_jt809_login_job *j = w->data;
  atomic_fetch_sub(&hw_j9j_jobs, 1);
  if (j->cb)
    j->cb(j->arg, status, j);
  else if (status == 0 && j->link_id) /* the session closed meanwhile: its link is down at once */
    hw_jt809_link_close(w->loop, j->conninfo, j->link_id, "peer closed");
  free(j);
}

hw_jt809_login_job *hw_jt809_login_new(const char *conninfo, const uint8_t *frame, size_t len) {
  if (len > HW_JT809_LOGIN_FRAME_MAX)
    return NULL;
  hw_jt809_login_job *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  j->conninfo = conninfo;
  memcpy(j->frame, frame, len);
  j->frame_len = len;
  return j;
}

int hw_jt809_login_start(uv_loop_t *loop, hw_jt809_login_job *j, hw_jt809_login_cb cb,
                         void *arg) {
  if (!j->conninfo) {
    free(j);
    return -EINVAL;
  }
  if (atomic_fetch_add(&hw_j9j_jobs, 1) >= HW_JT809_MAX_LOGIN_JOBS) {
    atomic_fetch_sub(&hw_j9j_jobs, 1);
    free(j);
    return -EBUSY;
  }
  j->cb = cb;
  j->arg = arg;
  j->work.data = j;
  int rc = uv_queue_work(loop, &j->work, hw_j9j_login_work, hw_j9j_login_after);
  if (rc) {
    atomic_fetch_sub(&hw_j9j_jobs, 1);
    free(j);
  }
  return rc;
}

void hw_jt809_login_cancel(hw_jt809_login_job *j) { j->cb = NULL; }
