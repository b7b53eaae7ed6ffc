/* JT/T 809 main link session (see jt809_session.h). */
#include "jt809/jt809_session.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "jt809/jt809_centre.h"
#include "jt809/jt809_data.h"
#include "jt809/jt809_login.h"
#include "jt809/jt809_login_job.h"
#include "jt809/jt809_slave.h"
#include "net/server.h"
#include "pipeline/backend.h"
#include "registry/auth.h"
#include "registry/platform_row.h"

typedef struct hw_j9_state {
  hw_jt809_deframer df;
  uint8_t *buf;             /* owned: df's frame buffer (df.cap bytes) */
  hw_jt809_login_job *job;  /* NULL unless a login is being decided; cancelled at close */
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
  hw_jt809_header_init(&h, st->sn++, msg_id, center, is_2019, (uint64_t)time(NULL));
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

static void hw_j9_slave_open(hw_session *s, const hw_jt809_login_job *j, uint32_t verify) {
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
  hw_jt809_header_init(&h, st->sn++, msg_id, st->center, st->is_2019, (uint64_t)time(NULL));
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

/* ---- the login, decided off the loop (jt809_login_job.c) ---- */

static void hw_j9_login_after(void *arg, int status, hw_jt809_login_job *j) {
  hw_session *s = arg;
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
  if (len > HW_JT809_LOGIN_FRAME_MAX)
    return hw_j9_strike(s, "0x1001 too long");
  hw_jt809_login_job *j = hw_jt809_login_new(be->pg_conninfo, frame, len);
  if (!j)
    return -ENOMEM;
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
  int rc = hw_jt809_login_start(hw_server_loop(s->server), j, hw_j9_login_after, s);
  if (rc == -EBUSY) { /* j freed */
    uint8_t body[8];
    size_t bl;
    rc = hw_jt809_encode_login_rsp(HW_JT809_LOGIN_BUSY, 0, body, sizeof body, &bl);
    /* The edition is unknown here: the frame's size says which login layout it holds. */
    return rc ? rc : hw_j9_send(s, len >= HW_JT809_HEADER_2019 + 50, center,
                                HW_JT809_UP_CONNECT_RSP, body, bl);
  }
  if (rc)
    return rc == -EINVAL ? hw_j9_strike(s, "0x1001 with no database to decide it") : -ENOMEM;
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
    hw_jt809_login_cancel(st->job); /* it frees itself when it comes back */
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
    hw_jt809_link_close(hw_server_loop(s->server), hw_j9_be(s)->pg_conninfo, st->link_id,
                        st->down_reason ? st->down_reason : "peer closed");
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
