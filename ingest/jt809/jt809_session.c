/* JT/T 809 main link session (see jt809_session.h). */
#include "jt809/jt809_session.h"

#include <libpq-fe.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "jt809/jt809_centre.h"
#include "jt809/jt809_data.h"
#include "jt809/jt809_login.h"
#include "jt809/jt809_slave.h"
#include "net/server.h"
#include "pipeline/backend.h"
#include "registry/auth.h"
#include "registry/platform_row.h"

#define HW_J9_LOGIN_FRAME_MAX 256 /* a 0x1001 frame, unescaped: 68 or 80 bytes (more tolerated) */

/* A login decided on the thread pool. Owned by the session while s is set; when the session
 * closes first it sets s to NULL and the job frees itself when it comes back. */
typedef struct hw_j9_login_job {
  uv_work_t work;
  hw_session *s;
  const char *conninfo; /* borrowed from the backend: lives as long as the daemon */
  uint8_t frame[HW_J9_LOGIN_FRAME_MAX];
  size_t frame_len;
  uint32_t center;
  char peer[48];
  char peer_ip[48];
  char daemon[33]; /* hw_jt809_centre_instance, or empty (no centre: NULL on the row) */
  /* out */
  int result;
  const char *reason;
  int found;
  hw_jt809_platform plat;
  uint8_t is_2019;
  long long link_id;
  char down_ip[33]; /* the slave link's address, as 0x1001 gave it */
  uint16_t down_port;
} hw_j9_login_job;

/* A platform_links row to close, on the thread pool; owns itself. */
typedef struct hw_j9_down_job {
  uv_work_t work;
  const char *conninfo;
  long long link_id;
  char reason[64];
  char error[160]; /* set by the worker, logged on the loop */
} hw_j9_down_job;

typedef struct hw_j9_state {
  hw_jt809_deframer df;
  uint8_t *buf;             /* owned: df's frame buffer (df.cap bytes) */
  hw_j9_login_job *job;     /* owned, NULL unless a login is being decided */
  uint8_t logged_in;
  uint8_t is_2019;          /* the platform's edition (after login) */
  uint8_t has_cipher;
  uint8_t strikes;
  uint64_t strike_start_ms;
  uint32_t sn;              /* serial number of our next message */
  uint32_t center;          /* the access code (after login) */
  hw_jt809_cipher cipher;
  long long link_id;        /* platform_links row of this link; 0 = none */
  const char *down_reason;  /* static text: why the link went down */
  char platform[33];
  hw_jt809_slave *slave;    /* owned: the slave link, NULL when none */
} hw_j9_state;

static atomic_int hw_j9_jobs; /* logins being decided in the process */

static hw_backend *hw_j9_be(hw_session *s) { return hw_server_backend(s->server); }

static int hw_j9_strike(hw_session *s, const char *what) {
  hw_j9_state *st = hw_session_state(s);
  uint64_t now = uv_now(hw_server_loop(s->server));
  if (st->strikes == 0 || now - st->strike_start_ms > HW_JT809_STRIKE_WINDOW_MS) {
    st->strike_start_ms = now;
    st->strikes = 0;
  }
  st->strikes++;
  hw_debug("jt809", hw_session_tid(s), "peer=%s %s (%u within %d s)", s->peer, what, st->strikes,
           HW_JT809_STRIKE_WINDOW_MS / 1000);
  if (st->strikes <= HW_JT809_MAX_STRIKES)
    return 0;
  hw_info("jt809", hw_session_tid(s), "peer=%s closed: more than %d bad or refused messages "
          "within %d s, last: %s", s->peer, HW_JT809_MAX_STRIKES,
          HW_JT809_STRIKE_WINDOW_MS / 1000, what);
  st->down_reason = "strikes";
  return -EPROTO;
}

/* Sends msg_id with body, plain, in the edition is_2019, naming access code center. */
static int hw_j9_send(hw_session *s, int is_2019, uint32_t center, uint16_t msg_id,
                      const uint8_t *body, size_t body_len) {
  hw_j9_state *st = hw_session_state(s);
  uint8_t out[128];
  size_t n;
  hw_jt809_header h;
  memset(&h, 0, sizeof h);
  h.sn = st->sn++;
  h.msg_id = msg_id;
  h.center_id = center;
  h.version[0] = 1;
  h.is_2019 = (uint8_t)is_2019;
  h.utc_s = is_2019 ? (uint64_t)time(NULL) : 0;
  int rc = hw_jt809_build(out, sizeof out, &n, &h, NULL, body, body_len);
  if (rc) {
    hw_error("jt809", hw_session_tid(s), "cannot encode 0x%04x: %s", msg_id, strerror(-rc));
    return rc;
  }
  return hw_session_write(s, out, n);
}

/* ---- the slave link ---- */

static void hw_j9_slave_changed(void *arg, int up, const char *why) {
  hw_session *s = arg;
  hw_j9_state *st = hw_session_state(s);
  if (up || s->closing)
    return;
  /* 0x9007: the centre tells the platform its slave link broke (code 0), on the main link. */
  uint8_t body[1];
  size_t bl;
  if (hw_jt809_encode_u8(0, body, sizeof body, &bl) == 0 &&
      hw_j9_send(s, st->is_2019, st->center, HW_JT809_DOWN_DISCONNECT_INFORM, body, bl))
    hw_debug("jt809", hw_session_tid(s), "peer=%s 0x9007 not sent (%s)", s->peer, why);
}

static void hw_j9_slave_open(hw_session *s, const hw_j9_login_job *j, uint32_t verify) {
  hw_j9_state *st = hw_session_state(s);
  hw_backend *be = hw_j9_be(s);
  if (!be->jt809)
    return;
  hw_jt809_slave_params p = {.platform = st->platform, .center = st->center,
                             .is_2019 = st->is_2019, .verify = verify, .ip = j->down_ip,
                             .port = j->down_port, .local_ok = j->plat.slave_local_ok,
                             .on_change = hw_j9_slave_changed, .arg = s};
  if (hw_jt809_slave_start(&st->slave, hw_server_loop(s->server), be->jt809, &p))
    st->slave = NULL;
  hw_jt809_centre_kick(be->jt809); /* requests waiting for this platform */
}

int hw_jt809_session_is_2019(hw_session *s) {
  return ((hw_j9_state *)hw_session_state(s))->is_2019;
}

int hw_jt809_session_send_down(hw_session *s, uint16_t msg_id, const uint8_t *body, size_t len,
                               uint32_t *sn, const char **link) {
  hw_j9_state *st = hw_session_state(s);
  if (!st->logged_in || s->closing)
    return -ENOTCONN;
  if (hw_jt809_slave_up(st->slave) &&
      hw_jt809_slave_send(st->slave, msg_id, body, len, sn) == 0) {
    *link = "slave";
    return 0;
  }
  size_t cap = hw_jt809_wire_max(len), n;
  uint8_t *out = malloc(cap);
  if (!out)
    return -ENOMEM;
  hw_jt809_header h;
  memset(&h, 0, sizeof h);
  h.sn = st->sn++;
  h.msg_id = msg_id;
  h.center_id = st->center;
  h.version[0] = 1;
  h.is_2019 = st->is_2019;
  h.utc_s = st->is_2019 ? (uint64_t)time(NULL) : 0;
  int rc = hw_jt809_build(out, cap, &n, &h, NULL, body, len);
  if (!rc)
    rc = hw_session_write(s, out, n); /* copies what the socket does not take */
  free(out);
  if (rc)
    return rc;
  *sn = h.sn;
  *link = "main";
  return 0;
}

/* ---- the login, off the loop ---- */

static void hw_j9_login_work(uv_work_t *w) {
  hw_j9_login_job *j = w->data;
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

static void hw_j9_down_work(uv_work_t *w) {
  hw_j9_down_job *j = w->data;
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

static void hw_j9_down_after(uv_work_t *w, int status) {
  hw_j9_down_job *j = w->data;
  if (status || j->error[0])
    hw_warn("jt809", NULL, "platform_links row %lld: down time not recorded: %s", j->link_id,
            status ? uv_strerror(status) : j->error);
  free(j);
}

static void hw_j9_login_after(uv_work_t *w, int status) {
  hw_j9_login_job *j = w->data;
  hw_session *s = j->s;
  atomic_fetch_sub(&hw_j9_jobs, 1);
  if (!s) { /* the session closed meanwhile: its link (if it came up) is down at once */
    if (status == 0 && j->link_id) {
      hw_j9_down_job *d = calloc(1, sizeof *d);
      if (d) {
        d->conninfo = j->conninfo;
        d->link_id = j->link_id;
        snprintf(d->reason, sizeof d->reason, "peer closed");
        d->work.data = d;
        if (uv_queue_work(w->loop, &d->work, hw_j9_down_work, hw_j9_down_after))
          free(d);
      }
    }
    free(j);
    return;
  }
  hw_j9_state *st = hw_session_state(s);
  st->job = NULL;
  if (status)
    j->result = HW_JT809_LOGIN_OTHER;
  uint8_t body[8];
  size_t bl;
  uint32_t verify = j->result == HW_JT809_LOGIN_OK ? randombytes_random() : 0;
  int rc = hw_jt809_encode_login_rsp((uint8_t)j->result, verify, body, sizeof body, &bl);
  if (j->result == HW_JT809_LOGIN_OK) {
    char tid[HW_TERMINAL_ID_MAX + 1];
    hw_terminal *t;
    snprintf(tid, sizeof tid, "jt809p:%u", j->center);
    st->link_id = j->link_id;
    st->down_reason = NULL;
    if (hw_registry_get(hw_j9_be(s)->registry, tid, &t)) {
      hw_error("jt809", tid, "peer=%s out of memory binding the link", s->peer);
      st->down_reason = "internal error";
      hw_session_close(s);
      free(j);
      return;
    }
    hw_session_bind(s, t);
    st->logged_in = 1;
    st->is_2019 = j->is_2019;
    st->center = j->center;
    st->has_cipher = j->plat.has_keys;
    st->cipher = (hw_jt809_cipher){j->plat.m1, j->plat.ia1, j->plat.ic1};
    snprintf(st->platform, sizeof st->platform, "%s", j->plat.id);
    hw_info("jt809", tid, "peer=%s platform %s logged in (main link, JT/T 809-%s)", s->peer,
            st->platform, st->is_2019 ? "2019" : "2011");
    hw_j9_slave_open(s, j, verify);
  } else if (j->reason) {
    char claimed[16];
    snprintf(claimed, sizeof claimed, "%u", j->center);
    s->counters->refusals[HW_REFUSE_AUTH_FAILED]++;
    hw_info("jt809", claimed, "peer=%s login refused (%u): %s", s->peer, j->result, j->reason);
    hw_auth_refusal(hw_j9_be(s)->auth, "jt809", claimed, NULL, s->peer, j->reason);
  } else {
    hw_warn("jt809", NULL, "peer=%s login not decided: database unavailable", s->peer);
  }
  if (rc == 0)
    rc = hw_j9_send(s, j->is_2019, j->center, HW_JT809_UP_CONNECT_RSP, body, bl);
  if (rc == 0 && j->result != HW_JT809_LOGIN_OK)
    rc = hw_j9_strike(s, "login refused");
  free(j);
  if (rc)
    hw_session_close(s);
}

static int hw_j9_login(hw_session *s, const uint8_t *frame, size_t len, uint32_t center) {
  hw_j9_state *st = hw_session_state(s);
  hw_backend *be = hw_j9_be(s);
  if (st->job)
    return hw_j9_strike(s, "0x1001 while a login is being decided");
  /* Not decided again: its link row is open, and another access code on this link would
   * confuse whose data it carries. A platform that lost our answer reconnects, and that login
   * replaces this link. */
  if (st->logged_in)
    return hw_j9_strike(s, "0x1001 on a logged-in link");
  if (len > HW_J9_LOGIN_FRAME_MAX || !be->pg_conninfo)
    return hw_j9_strike(s, "0x1001 too long");
  if (atomic_fetch_add(&hw_j9_jobs, 1) >= HW_JT809_MAX_LOGIN_JOBS) {
    atomic_fetch_sub(&hw_j9_jobs, 1);
    uint8_t body[8];
    size_t bl;
    int rc = hw_jt809_encode_login_rsp(HW_JT809_LOGIN_BUSY, 0, body, sizeof body, &bl);
    /* The edition is unknown here: the frame's size says which login layout it holds. */
    return rc ? rc : hw_j9_send(s, len >= HW_JT809_HEADER_2019 + 50, center,
                                HW_JT809_UP_CONNECT_RSP, body, bl);
  }
  hw_j9_login_job *j = calloc(1, sizeof *j);
  if (!j) {
    atomic_fetch_sub(&hw_j9_jobs, 1);
    return -ENOMEM;
  }
  j->s = s;
  j->conninfo = be->pg_conninfo;
  memcpy(j->frame, frame, len);
  j->frame_len = len;
  j->center = center;
  if (be->jt809)
    snprintf(j->daemon, sizeof j->daemon, "%s", hw_jt809_centre_instance(be->jt809));
  snprintf(j->peer, sizeof j->peer, "%s", s->peer);
  /* "ip:port", "[v6]:port": the address alone. */
  const char *a = s->peer, *colon = strrchr(a, ':');
  size_t n = colon ? (size_t)(colon - a) : strlen(a);
  if (n && a[0] == '[' && a[n - 1] == ']')
    a++, n -= 2;
  snprintf(j->peer_ip, sizeof j->peer_ip, "%.*s", (int)n, a);
  j->work.data = j;
  int rc = uv_queue_work(hw_server_loop(s->server), &j->work, hw_j9_login_work, hw_j9_login_after);
  if (rc) {
    atomic_fetch_sub(&hw_j9_jobs, 1);
    free(j);
    return -ENOMEM;
  }
  st->job = j;
  return 0;
}

/* ---- frames ---- */

static int hw_j9_on_frame(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  hw_session *s = arg;
  hw_j9_state *st = hw_session_state(s);
  if (s->closing)
    return -ECANCELED;
  if (ev != HW_JT809_FRAME) {
    s->counters->bad_frames[ev == HW_JT809_BAD_CRC      ? HW_BAD_FRAME_CHECKSUM
                            : ev == HW_JT809_BAD_ESCAPE ? HW_BAD_FRAME_ESCAPE
                            : ev == HW_JT809_OVERSIZE   ? HW_BAD_FRAME_OVERSIZE
                                                        : HW_BAD_FRAME_HEADER]++;
    return hw_j9_strike(s, hw_jt809_event_name(ev));
  }
  uint16_t msg_id;
  uint32_t center;
  if (hw_jt809_peek(data, len, &msg_id, &center))
    return hw_j9_strike(s, "frame shorter than a header");
  s->counters->frames++;
  if (msg_id == HW_JT809_UP_CONNECT_REQ)
    return hw_j9_login(s, data, len, center);
  if (!st->logged_in) {
    char claimed[16];
    snprintf(claimed, sizeof claimed, "%u", center);
    s->counters->refusals[HW_REFUSE_NOT_AUTHENTICATED]++;
    hw_info("jt809", claimed, "peer=%s refused: message 0x%04x before login", s->peer, msg_id);
    hw_auth_refusal(hw_j9_be(s)->auth, "jt809", claimed, NULL, s->peer, "message before login");
    return hw_j9_strike(s, "message before login");
  }
  hw_jt809_header h;
  const uint8_t *body;
  size_t body_len;
  int rc = hw_jt809_open(data, len, st->is_2019, st->has_cipher ? &st->cipher : NULL, &h, &body,
                         &body_len);
  if (rc) {
    s->counters->bad_frames[HW_BAD_FRAME_HEADER]++;
    return hw_j9_strike(s, rc == -ENOKEY ? "encrypted frame, no keys" : "impossible header");
  }
  if (h.center_id != st->center)
    return hw_j9_strike(s, "frame naming another access code");
  switch (msg_id) {
  case HW_JT809_UP_LINKTEST_REQ:
    return hw_j9_send(s, st->is_2019, st->center, HW_JT809_UP_LINKTEST_RSP, NULL, 0);
  case HW_JT809_UP_DISCONNECT_REQ:
    hw_info("jt809", hw_session_tid(s), "peer=%s platform %s logged out", s->peer, st->platform);
    st->down_reason = "logout";
    rc = hw_j9_send(s, st->is_2019, st->center, HW_JT809_UP_DISCONNECT_RSP, NULL, 0);
    return rc ? rc : -ECONNRESET;
  case HW_JT809_UP_PLATFORM_MSG:
  case HW_JT809_UP_WARN_MSG:
    if (hw_j9_be(s)->jt809 &&
        hw_jt809_centre_on_up(hw_j9_be(s)->jt809, st->platform, st->is_2019, msg_id, body,
                              body_len))
      return hw_j9_strike(s, "0x1300/0x1400 malformed");
    return 0;
  case HW_JT809_UP_EXG_MSG: {
    hw_jt809_link link = {st->center, st->is_2019, st->platform};
    rc = hw_jt809_data_exg(s, &link, body, body_len);
    return rc > 0 ? hw_j9_strike(s, "malformed 0x1200") : rc;
  }
  default:
    hw_debug("jt809", hw_session_tid(s), "peer=%s message 0x%04x not handled yet", s->peer,
             msg_id);
    return 0;
  }
}

static int hw_j9_on_data(hw_session *s, const uint8_t *data, size_t len) {
  hw_j9_state *st = hw_session_state(s);
  size_t want = st->logged_in ? HW_JT809_FRAME_DEFAULT : HW_JT809_PREAUTH_FRAME;
  if (!st->buf || st->df.cap < want) {
    /* The frame collected so far stays: realloc keeps buf[0..df.len). */
    uint8_t *b = realloc(st->buf, want);
    if (!b)
      return -ENOMEM;
    if (!st->buf) {
      int rc = hw_jt809_deframer_init(&st->df, b, want);
      if (rc) {
        free(b);
        return rc;
      }
    }
    st->buf = b;
    st->df.buf = b;
    st->df.cap = want;
  }
  int rc = hw_jt809_deframer_feed(&st->df, data, len, hw_j9_on_frame, s);
  if (rc == -ECONNRESET)
    return rc; /* logged out: answered, close */
  if (rc || s->closing)
    return rc ? rc : -ECANCELED;
  return 0;
}

static void hw_j9_on_durable(hw_session *s, const hw_ack_ref *ack) {
  /* JT/T 809 acknowledges no position. */
  (void)s;
  (void)ack;
}

static void hw_j9_on_closing(hw_session *s, int reason) {
  hw_j9_state *st = hw_session_state(s);
  if (st->down_reason)
    return;
  st->down_reason = reason == HW_CLOSE_REPLACED  ? "replaced by a new login"
                    : reason == HW_CLOSE_IDLE     ? "idle"
                    : reason == HW_CLOSE_SHUTDOWN ? "daemon stop"
                                                  : "closed by the centre";
}

static void hw_j9_on_close(hw_session *s) {
  hw_j9_state *st = hw_session_state(s);
  if (st->job) {
    st->job->s = NULL; /* it frees itself when it comes back */
    st->job = NULL;
  }
  if (st->slave) {
    /* A logout or a stop of ours is said on the slave link too (0x9003). */
    hw_jt809_slave_stop(st->slave, 1,
                        st->down_reason && !strcmp(st->down_reason, "daemon stop")
                            ? "daemon stop"
                            : "main link down");
    st->slave = NULL;
  }
  if (st->link_id) {
    hw_j9_down_job *d = calloc(1, sizeof *d);
    if (d) {
      d->conninfo = hw_j9_be(s)->pg_conninfo;
      d->link_id = st->link_id;
      snprintf(d->reason, sizeof d->reason, "%s", st->down_reason ? st->down_reason : "peer closed");
      d->work.data = d;
      if (uv_queue_work(hw_server_loop(s->server), &d->work, hw_j9_down_work, hw_j9_down_after))
        free(d);
    }
    hw_info("jt809", NULL, "peer=%s platform %s main link down: %s", s->peer, st->platform,
            st->down_reason ? st->down_reason : "peer closed");
    st->link_id = 0;
  }
  free(st->buf);
  st->buf = NULL;
}

static size_t hw_j9_held_bytes(const hw_session *s) {
  const hw_j9_state *st = hw_session_state((hw_session *)s);
  return st->df.len;
}

const hw_proto hw_jt809_proto = {
    .name = "jt809",
    .state_size = sizeof(hw_j9_state),
    .on_data = hw_j9_on_data,
    .on_durable = hw_j9_on_durable,
    .on_closing = hw_j9_on_closing,
    .on_close = hw_j9_on_close,
    .held_bytes = hw_j9_held_bytes,
};
