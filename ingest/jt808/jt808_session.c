#include "jt808/jt808_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach_due.h"
#include "attach/attach_online.h"
#include "attach/attach_request.h"
#include "registry/auth.h"
#include "jt808/jt808_location.h"
#include "jt808/jt808_safety.h"
#include "jt808/jt808_msg.h"
#include "jt808/jt808_reasm.h"
#include "base/log.h"
#include "pipeline/backend.h"
#include "net/server.h"

#define HW_J8_MAX_BATCH 2048        /* fixes of one 0x0704; the reassembly limit allows ~1100 */
#define HW_J8_GARBAGE_STRIKE 4096   /* bytes outside frames that count as one strike */
#define HW_J8_CODE_MAX 64           /* longest auth code looked up; ours are 16 */
#define HW_J8_PREAUTH_HEARTBEATS 5  /* answered before authentication; then the connection ends */
#define HW_J8_REASM_MAX_TOTAL 64
#define HW_J8_REASM_MAX_BYTES 32768
#define HW_J8_REASM_TIMEOUT_MS 60000

/* A look-up in flight and what its answer needs: the request's header (layout, phone, flow). */
typedef struct hw_j8_pending {
  hw_auth_req *req;
  hw_owner_claim *claim; /* after an accepted authentication, with ownership: the claim */
  hw_jt808_header hdr;
  uint8_t is_register;
} hw_j8_pending;

typedef struct hw_j8_state {
  /* The deframer is loop-wide (hw_j8_df); between reads only its position is kept here. */
  hw_jt808_deframer_resume df; /* zeroed: a fresh connection */
  uint8_t *part;            /* owned: the partial frame's df.len bytes; NULL when none */
  /* Layout and phone of the bound terminal's frames, for replies sent later (durable acks). */
  uint8_t peer_2019, peer_version, peer_bcd_len;
  uint8_t peer_bcd[10];
  uint8_t preauth_heartbeats; /* answered while not authenticated */
  /* The terminal id counted in attach_online.h (for the attachment listener), "" when not: a
   * copy, since a replaced session loses s->term before it closes. */
  char online[HW_JT808_PHONE_MAX + 1];
  uint8_t strikes;          /* within the window that started at strike_start_ms */
  uint16_t flow;            /* platform flow number of the next message sent */
  uint32_t garbage;         /* bytes outside frames not yet counted as a strike */
  uint64_t strike_start_ms;
  hw_j8_pending *pending;   /* owned, NULL unless a look-up is in flight */
  hw_jt808_reasm *reasm;    /* owned, NULL unless sub-packaged messages are pending */
  char *driver_name;        /* owned, UTF-8; NULL without a driver */
  /* owned, NULL until the terminal's first alarm announcing attachments while the daemon has an
   * attachment listener: the 0x9208 requests owed once their alarm is durable */
  hw_attach_due *due;
} hw_j8_state;

const size_t hw_jt808_state_size = sizeof(hw_j8_state);

/* One deframer, one fix buffer and one alarm buffer per loop thread (serve --workers: one loop
 * per thread) serve every session of that loop. A read is consumed in full before the next one
 * starts, so none is ever shared by two sessions at once. The counters are the loop's too: a
 * metrics scrape adds them up on each loop (cli/metrics.c). */
static _Thread_local hw_jt808_deframer hw_j8_df;
static _Thread_local hw_fix hw_j8_fixes[HW_J8_MAX_BATCH];
/* Active-safety items of one 0x0200 (a body holds at most a few: one per kind in practice). */
#define HW_J8_MAX_ALARMS 8
static _Thread_local hw_safety_alarm hw_j8_alarms[HW_J8_MAX_ALARMS];
static _Thread_local hw_jt808_stats hw_j8_stats;

void hw_jt808_get_stats(hw_jt808_stats *out) { *out = hw_j8_stats; }

static const hw_jt808_reasm_cfg hw_j8_reasm_cfg = {
    .max_total = HW_J8_REASM_MAX_TOTAL,
    .max_bytes = HW_J8_REASM_MAX_BYTES,
    .timeout_ms = HW_J8_REASM_TIMEOUT_MS,
};

static hw_auth *hw_j8_auth(hw_session *s) { return hw_server_backend(s->server)->auth; }

/* The terminal id for log lines: the bound one, else the one the frame claims. */
static const char *hw_j8_tid(const hw_session *s, const hw_jt808_header *h) {
  return s->term ? s->term->id : h ? h->phone : NULL;
}

/* Counts a broken frame, a refused message or a run of garbage. Returns -EPROTO (the caller
 * closes the session) once the terminal has had more than HW_JT808_MAX_STRIKES within the
 * window: a device that misbehaves this much is broken or hostile, and costs us work. */
static int hw_j8_strike(hw_session *s, const char *tid, const char *what) {
  hw_j8_state *st = hw_session_state(s);
  uint64_t now = uv_now(hw_server_loop(s->server));
  if (st->strikes == 0 || now - st->strike_start_ms > HW_JT808_STRIKE_WINDOW_MS) {
    st->strike_start_ms = now;
    st->strikes = 0;
  }
  st->strikes++;
  hw_debug("jt808", tid, "peer=%s %s (%u within %d s)", s->peer, what, st->strikes,
           HW_JT808_STRIKE_WINDOW_MS / 1000);
  if (st->strikes <= HW_JT808_MAX_STRIKES)
    return 0;
  hw_j8_stats.disconnected++;
  hw_info("jt808", tid, "peer=%s closed: more than %d bad or refused messages within %d s, last: %s",
          s->peer, HW_JT808_MAX_STRIKES, HW_JT808_STRIKE_WINDOW_MS / 1000, what);
  return -EPROTO;
}

/* ---- replies ---- */

static void hw_j8_peer_header(const hw_j8_state *st, hw_jt808_header *h) {
  memset(h, 0, sizeof *h);
  h->is_2019 = st->peer_2019;
  h->version = st->peer_version;
  h->phone_bcd_len = st->peer_bcd_len;
  memcpy(h->phone_bcd, st->peer_bcd, sizeof h->phone_bcd);
}

static void hw_j8_remember_peer(hw_j8_state *st, const hw_jt808_header *h) {
  st->peer_2019 = h->is_2019;
  st->peer_version = h->version;
  st->peer_bcd_len = h->phone_bcd_len;
  memcpy(st->peer_bcd, h->phone_bcd, sizeof st->peer_bcd);
}

/* 0x8001 to the terminal that sent `peer`. 0, or negative when the session is being closed. */
static int hw_j8_reply(hw_session *s, const hw_jt808_header *peer, uint16_t reply_flow,
                       uint16_t reply_id, uint8_t result) {
  hw_j8_state *st = hw_session_state(s);
  uint8_t out[64]; /* 0x8001: at most 23 raw bytes, 48 escaped */
  size_t n;
  int rc = hw_jt808_encode_platform_response(out, sizeof out, &n, peer, st->flow, reply_flow,
                                             reply_id, result);
  if (rc) {
    hw_error("jt808", hw_j8_tid(s, peer), "cannot encode a reply: %s", strerror(-rc));
    return rc;
  }
  st->flow++;
  return hw_session_write(s, out, n);
}

int hw_jt808_session_send(hw_session *s, uint16_t msg_id, const uint8_t *body, size_t len) {
  if (s->proto != &hw_jt808_proto || !s->term || s->closing)
    return -ENOTCONN;
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_header peer;
  hw_j8_peer_header(st, &peer);
  uint8_t out[HW_JT808_WIRE_MAX];
  size_t n;
  int rc = hw_jt808_build(out, sizeof out, &n, &peer, msg_id, st->flow, body, len);
  if (rc)
    return rc;
  st->flow++;
  return hw_session_write(s, out, n);
}

static int hw_j8_answer(hw_session *s, const hw_jt808_header *h, uint8_t result) {
  return hw_j8_reply(s, h, h->flow, h->msg_id, result);
}

/* Refuses a message for lack of (the right) authentication: "fail", recorded, a strike. */
static int hw_j8_refuse(hw_session *s, const hw_jt808_header *h, const char *why) {
  char reason[128];
  /* Recorded without the message id: refusals are aggregated per reason, which must therefore
   * come from a small fixed set (registry/refusals.h). The log line has the id. */
  snprintf(reason, sizeof reason, "message %s", why);
  hw_j8_stats.refused++;
  s->counters->refusals[HW_REFUSE_NOT_AUTHENTICATED]++;
  hw_info("jt808", h->phone, "peer=%s refused: message 0x%04x %s", s->peer, h->msg_id, why);
  /* Every one: recording is a merge in memory (registry/refusals.h). */
  hw_auth_refusal(hw_j8_auth(s), "jt808", h->phone, NULL, s->peer, reason);
  int rc = hw_j8_answer(s, h, HW_JT808_RES_FAIL);
  return rc ? rc : hw_j8_strike(s, h->phone, reason);
}

/* ---- registration and authentication ---- */

/* The header of the register/authenticate request whose answer just came; frees its record. */
static hw_jt808_header hw_j8_take_pending(hw_j8_state *st) {
  hw_j8_pending *p = st->pending;
  hw_jt808_header h = p->hdr;
  st->pending = NULL;
  free(p);
  return h;
}

static void hw_j8_on_registered(void *arg, int result, const char *code) {
  hw_session *s = arg;
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_header h = hw_j8_take_pending(st);
  if (result == -EAGAIN) {
    /* No answer rather than a wrong one: the terminal asks again on its next connection. */
    hw_warn("jt808", h.phone, "peer=%s closed: registration unavailable", s->peer);
    hw_session_close(s);
    return;
  }
  uint8_t out[128]; /* 0x8100 with a 16-byte code: at most 37 raw bytes, 76 escaped */
  size_t n;
  /* HW_AUTH_REG_* are the standard's 0x8100 results: a refusal is answered with its own. */
  _Static_assert((int)HW_AUTH_REG_OK == (int)HW_JT808_REG_OK &&
                     (int)HW_AUTH_REG_VEHICLE_TAKEN == (int)HW_JT808_REG_VEHICLE_TAKEN &&
                     (int)HW_AUTH_REG_NO_VEHICLE == (int)HW_JT808_REG_NO_VEHICLE &&
                     (int)HW_AUTH_REG_TERMINAL_TAKEN == (int)HW_JT808_REG_TERMINAL_TAKEN &&
                     (int)HW_AUTH_REG_NO_TERMINAL == (int)HW_JT808_REG_NO_TERMINAL,
                 "registration outcomes are 0x8100 results");
  uint8_t res = (uint8_t)result;
  int rc = hw_jt808_encode_register_response(out, sizeof out, &n, &h, st->flow, h.flow, res,
                                             (const uint8_t *)code, code ? strlen(code) : 0);
  if (rc == 0) {
    st->flow++;
    rc = hw_session_write(s, out, n);
  }
  if (rc == 0 && result != HW_AUTH_REG_OK) {
    /* The auth module logged and recorded why. */
    hw_debug("jt808", h.phone, "peer=%s registration refused: 0x8100 result %u", s->peer, res);
    rc = hw_j8_strike(s, h.phone, "registration refused");
  }
  if (rc)
    hw_session_close(s);
}

static int hw_j8_register(hw_session *s, const hw_jt808_header *h, const uint8_t *body,
                          size_t len) {
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_register r;
  int rc = hw_jt808_parse_register(h, body, len, &r);
  if (rc) {
    hw_info("jt808", h->phone, "peer=%s unreadable registration: %s", s->peer, strerror(-rc));
    rc = hw_j8_answer(s, h, HW_JT808_RES_BAD_MESSAGE);
    return rc ? rc : hw_j8_strike(s, h->phone, "unreadable registration");
  }
  hw_j8_pending *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->hdr = *h;
  p->is_register = 1;
  hw_auth_jt808_reg reg = {
      .terminal_id = h->phone, .remote = s->peer, .version = r.version,
      .province = r.province, .city = r.city, .maker = r.maker, .model = r.model,
      .device_id = r.terminal_id, .plate_colour = r.plate_colour, .plate = r.plate,
  };
  if ((rc = hw_auth_jt808_register(hw_j8_auth(s), &reg, hw_j8_on_registered, s, &p->req))) {
    free(p);
    hw_warn("jt808", h->phone, "peer=%s closed: cannot start the registration: %s", s->peer,
            strerror(-rc));
    return rc;
  }
  st->pending = p;
  hw_debug("jt808", h->phone, "peer=%s registers: %u layout, plate '%s' colour %u, maker '%s' "
           "model '%s' device '%s'", s->peer, r.version, r.plate, r.plate_colour, r.maker, r.model,
           r.terminal_id);
  return 0;
}

static void hw_j8_on_claimed(void *arg, int result);
static void hw_j8_authenticated(hw_session *s, const hw_jt808_header *hp, hw_terminal *t,
                                 int fresh);

static void hw_j8_on_authenticated(void *arg, int result) {
  hw_session *s = arg;
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_header h = hw_j8_take_pending(st);
  if (result == -EAGAIN) {
    /* Said nothing: a "fail" would make many terminals throw their code away and register. */
    hw_warn("jt808", h.phone, "peer=%s closed: authentication unavailable", s->peer);
    hw_session_close(s);
    return;
  }
  if (result != 0) {
    /* Logged and recorded by the auth module; a wrong code ends the connection. */
    (void)hw_j8_answer(s, &h, HW_JT808_RES_FAIL);
    hw_session_close(s);
    return;
  }
  hw_terminal *t;
  hw_backend *be = hw_server_backend(s->server);
  if (hw_registry_get(be->registry, h.phone, &t)) {
    hw_error("jt808", h.phone, "peer=%s closed: out of memory", s->peer);
    hw_session_close(s);
    return;
  }
  /* Binding anew would orphan the acks owed to this very connection. */
  if (s->term == t) {
    hw_j8_authenticated(s, &h, t, 0);
    return;
  }
  /* With ownership the terminal's rule state comes here first; the answer waits for it, and so
   * does the terminal (it sends nothing but heartbeats before the answer). */
  hw_j8_pending *p = calloc(1, sizeof *p);
  int rc = p ? hw_pipeline_claim(be->pipeline, t, hw_j8_on_claimed, s, &p->claim) : -ENOMEM;
  if (rc == 0) {
    p->hdr = h;
    st->pending = p;
    return;
  }
  free(p);
  if (rc < 0) {
    hw_warn("jt808", h.phone, "peer=%s closed: the terminal cannot be claimed: %s", s->peer,
            strerror(-rc));
    hw_session_close(s);
    return;
  }
  hw_session_bind(s, t);
  hw_j8_authenticated(s, &h, t, 1);
}

static void hw_j8_on_claimed(void *arg, int result) {
  hw_session *s = arg;
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_header h = hw_j8_take_pending(st);
  hw_terminal *t = hw_registry_find(hw_server_backend(s->server)->registry, h.phone);
  if (result != 0 || !t) {
    /* Said nothing, as for an unavailable look-up: the terminal comes back with the same code. */
    hw_warn("jt808", h.phone, "peer=%s closed: the terminal could not be claimed: %s", s->peer,
            strerror(result ? -result : ENOENT));
    hw_session_close(s);
    return;
  }
  hw_session_bind(s, t);
  hw_j8_authenticated(s, &h, t, 1);
}

/* fresh: t was just bound to this connection (not an authentication again on it). */
static void hw_j8_authenticated(hw_session *s, const hw_jt808_header *hp, hw_terminal *t,
                                 int fresh) {
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_header h = *hp;
  hw_j8_remember_peer(st, &h);
  /* Seen by the attachment listener, whichever worker it runs on; recorded before the answer,
   * which may leave at once: a terminal that uploads as soon as it has read the answer must find
   * itself online on the listener's thread (test_attach caught the other order under ASan). A
   * failed answer closes the session, whose close takes the record back. */
  if (!st->online[0]) {
    if (hw_attach_online_add(t->id))
      hw_warn("jt808", t->id, "peer=%s not recorded online: its attachment uploads are refused",
              s->peer);
    else
      snprintf(st->online, sizeof st->online, "%s", t->id);
  }
  if (hw_j8_answer(s, &h, HW_JT808_RES_OK))
    return;
  hw_info("jt808", t->id, "peer=%s authenticated (%s layout)", s->peer,
          h.is_2019 ? "2019" : "2011/2013");
  /* A new connection asks the terminal for its driver card (0x8702; it answers 0x0702). The card
   * this record holds came from the worker or daemon the terminal was on before, and a change
   * read there while this claim ran was refused by the fence (docs/ownership.md): the terminal
   * itself knows. A 2011 terminal answers "unsupported" and keeps the card recorded. A write
   * that fails is closing the session already. */
  int rc;
  if (fresh && (rc = hw_jt808_session_send(s, HW_JT808_MSG_DRIVER_REQUEST, NULL, 0)))
    hw_info("jt808", t->id, "peer=%s driver card not asked for: %s", s->peer, strerror(-rc));
}

static int hw_j8_authenticate(hw_session *s, const hw_jt808_header *h, const uint8_t *body,
                              size_t len) {
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_auth a;
  int rc = hw_jt808_parse_auth(h, body, len, &a);
  if (rc == 0 && (a.code_len == 0 || a.code_len > HW_J8_CODE_MAX))
    rc = -EBADMSG;
  if (rc) {
    const char *why = "unreadable or empty authentication";
    hw_info("jt808", h->phone, "peer=%s closed: %s", s->peer, why);
    hw_auth_refusal(hw_j8_auth(s), "jt808", h->phone, NULL, s->peer, why);
    (void)hw_j8_answer(s, h, HW_JT808_RES_FAIL);
    return -EACCES;
  }
  hw_j8_pending *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->hdr = *h;
  if ((rc = hw_auth_jt808_check(hw_j8_auth(s), h->phone, s->peer, a.code, a.code_len,
                                hw_j8_on_authenticated, s, &p->req))) {
    free(p);
    hw_warn("jt808", h->phone, "peer=%s closed: cannot start the authentication: %s", s->peer,
            strerror(-rc));
    return rc;
  }
  st->pending = p;
  if (a.version == 2019)
    hw_debug("jt808", h->phone, "peer=%s authenticates, IMEI %s, software %s", s->peer, a.imei,
             a.software);
  return 0;
}

/* ---- positions ---- */

/* The ack token: which message to answer once its fixes are durable. */
static uint64_t hw_j8_token(const hw_jt808_header *h) {
  return (uint64_t)h->msg_id << 16 | h->flow;
}

static void hw_j8_set_driver(const hw_terminal *t, hw_fix *f) {
  if (t->card.has_driver && f->ts_ms >= t->card.since_ms) {
    f->has_driver = 1;
    memcpy(f->driver_id, t->card.driver_id, sizeof f->driver_id);
  } else {
    f->has_driver = 0;
    f->driver_id[0] = 0;
  }
}

static int hw_j8_submit(hw_session *s, const hw_jt808_header *h, size_t n) {
  int rc = hw_pipeline_submit(hw_server_backend(s->server)->pipeline, s, hw_j8_fixes, n,
                              HW_ACK_JT808, hw_j8_token(h));
  if (!rc)
    s->counters->fixes += n;
  if (rc)
    /* Unacknowledged: the terminal sends these again on its next connection. */
    hw_error("jt808", s->term->id, "peer=%s closed: cannot queue fixes: %s", s->peer, strerror(-rc));
  return rc;
}

/* An alarm whose identification number announces attachments, with an attachment listener to
 * send them to: the 0x9208 is owed once the message's ack is delivered (hw_j8_on_durable), that
 * is once the alarm row is committed. Only the 苏标 layout: 0x9208 carries a 16-byte alarm
 * number. A failure here costs the request, never the alarm or the fix. */
static void hw_j8_attach_due(hw_session *s, const hw_safety_alarm *a, uint64_t token) {
  hw_j8_state *st = hw_session_state(s);
  if (!a->no.attachments || a->no.layout != HW_SAFETY_SU ||
      a->no.raw_len != HW_ATTACH_ALARM_NO_LEN || !hw_server_backend(s->server)->attach)
    return;
  if (!st->due && !(st->due = calloc(1, sizeof *st->due))) {
    hw_warn("jt808", s->term->id, "peer=%s no memory for a 0x9208 request: not sent", s->peer);
    return;
  }
  int rc = hw_attach_due_note(st->due, token, a->no.raw);
  if (rc == -ENOBUFS)
    hw_warn("jt808", s->term->id, "peer=%s %d alarms already wait for their 0x9208: this one "
            "gets none", s->peer, HW_ATTACH_DUE_PENDING);
}

/* The active-safety items (0x64-0x67) of a valid fix's body go to the pipeline before the fix:
 * stored in the transaction its ack waits for. Items that fit no layout are logged and dropped;
 * the fix stands. */
static int hw_j8_alarms_of(hw_session *s, const uint8_t *body, size_t len, const hw_fix *f,
                           uint64_t token) {
  size_t n = 0, bad = 0;
  if (hw_safety_scan(body, len, hw_j8_alarms, HW_J8_MAX_ALARMS, &n, &bad))
    return 0; /* cannot happen for a body hw_jt808_parse_location accepted */
  if (bad)
    hw_info("jt808", s->term->id, "peer=%s %zu active-safety item(s) of the fix at %lld fit no "
            "layout (or too many): not stored", s->peer, bad, (long long)f->ts_ms);
  if (n == 0)
    return 0;
  int rc = hw_pipeline_alarms(hw_server_backend(s->server)->pipeline, s, f, hw_j8_alarms, n);
  if (rc) {
    hw_error("jt808", s->term->id, "peer=%s closed: cannot queue alarms: %s", s->peer,
             strerror(-rc));
    return rc;
  }
  for (size_t i = 0; i < n; i++)
    hw_j8_attach_due(s, &hw_j8_alarms[i], token);
  return 0;
}

static int hw_j8_location(hw_session *s, const hw_jt808_header *h, const uint8_t *body,
                          size_t len) {
  hw_fix *f = &hw_j8_fixes[0];
  int rc = hw_jt808_parse_location(body, len, hw_now_ms(), f, NULL);
  if (rc) {
    /* Answered at once and not stored; the terminal lives on (a swapped lat/lon is a device
     * bug, not an attack), but it must not resend this fix forever. */
    hw_j8_stats.invalid_fixes++;
    s->counters->refusals[HW_REFUSE_INVALID_FIX]++;
    hw_info("jt808", s->term->id, "peer=%s invalid location (flow %u): %s", s->peer, h->flow,
            strerror(-rc));
    return hw_j8_answer(s, h, HW_JT808_RES_BAD_MESSAGE);
  }
  hw_j8_set_driver(s->term, f);
  if ((rc = hw_j8_alarms_of(s, body, len, f, hw_j8_token(h))))
    return rc;
  return hw_j8_submit(s, h, 1);
}

static int hw_j8_batch(hw_session *s, const hw_jt808_header *h, const uint8_t *body, size_t len) {
  hw_jt808_batch b;
  size_t n = 0, bad = 0;
  int rc, item_rc;
  if (hw_jt808_batch_begin(&b, body, len)) {
    hw_info("jt808", s->term->id, "peer=%s batch (flow %u) too short", s->peer, h->flow);
    return hw_j8_answer(s, h, HW_JT808_RES_BAD_MESSAGE);
  }
  int64_t now = hw_now_ms();
  while (n < HW_J8_MAX_BATCH &&
         (rc = hw_jt808_batch_next(&b, now, &hw_j8_fixes[n], NULL, &item_rc)) == 1) {
    if (item_rc) {
      bad++;
      continue;
    }
    hw_j8_set_driver(s->term, &hw_j8_fixes[n]);
    /* The item just read is at b.p minus its length: its alarms go with it. */
    int arc = hw_j8_alarms_of(s, b.last, b.last_len, &hw_j8_fixes[n], hw_j8_token(h));
    if (arc)
      return arc;
    n++;
  }
  int cut = rc < 0 || n == HW_J8_MAX_BATCH;
  hw_j8_stats.invalid_fixes += bad;
  s->counters->refusals[HW_REFUSE_INVALID_FIX] += bad;
  if (bad || cut)
    hw_info("jt808", s->term->id, "peer=%s batch (flow %u, type %u) of %u: %zu stored, %zu invalid%s",
            s->peer, h->flow, b.type, b.count, n, bad, cut ? ", the rest unreadable" : "");
  /* Valid items are stored and acknowledged even beside invalid ones: a "message error" would
   * make the terminal send the whole batch again, and its invalid items stay invalid. */
  if (n == 0)
    return hw_j8_answer(s, h, HW_JT808_RES_BAD_MESSAGE);
  return hw_j8_submit(s, h, n);
}

static int hw_j8_driver(hw_session *s, const hw_jt808_header *h, const uint8_t *body, size_t len) {
  hw_j8_state *st = hw_session_state(s);
  hw_terminal *t = s->term;
  hw_jt808_driver d; /* ~850 bytes, on the stack for this call only */
  int rc = hw_jt808_parse_driver(h, body, len, &d);
  if (rc) {
    hw_info("jt808", t->id, "peer=%s unreadable driver identity: %s", s->peer, strerror(-rc));
    return hw_j8_answer(s, h, HW_JT808_RES_BAD_MESSAGE);
  }
  free(st->driver_name);
  st->driver_name = NULL;
  /* time_ms is 0 in the 2011 layout: the driver then counts for every fix from now on. */
  hw_driver_card card = {.since_ms = d.time_ms};
  if (d.status == 1 && d.ic_result == 0 && d.has_identity && d.certificate[0]) {
    if (strlen(d.certificate) > HW_DRIVER_ID_MAX)
      hw_warn("jt808", t->id, "certificate number '%s' cut to %d characters", d.certificate,
              HW_DRIVER_ID_MAX);
    snprintf(card.driver_id, sizeof card.driver_id, "%.*s", HW_DRIVER_ID_MAX, d.certificate);
    card.has_driver = 1;
    st->driver_name = strdup(d.name);
  }
  /* The answer to our 0x8702 at login usually repeats the card this record holds already: no
   * news, nothing to carry to other workers or daemons. */
  if (card.has_driver == t->card.has_driver && card.since_ms == t->card.since_ms &&
      strcmp(card.driver_id, t->card.driver_id) == 0) {
    hw_debug("jt808", t->id, "peer=%s driver card unchanged", s->peer);
    return hw_j8_answer(s, h, HW_JT808_RES_OK);
  }
  t->card = card;
  if (card.has_driver)
    hw_info("jt808", t->id, "peer=%s driver '%s' certificate %s", s->peer, d.name,
            card.driver_id);
  else if (d.status == 1)
    /* A card that could not be read names nobody: better no driver than the previous one. */
    hw_info("jt808", t->id, "peer=%s IC card read failed (result %u): no driver", s->peer,
            d.ic_result);
  else
    hw_info("jt808", t->id, "peer=%s IC card removed: no driver", s->peer);
  /* With several workers the card follows the terminal to the next one it connects to. */
  hw_pipeline_driver_changed(hw_server_backend(s->server)->pipeline, t);
  return hw_j8_answer(s, h, HW_JT808_RES_OK);
}

/* ---- dispatch ---- */

static int hw_j8_before_auth(hw_session *s, const hw_jt808_header *h, const uint8_t *body,
                             size_t len) {
  hw_j8_state *st = hw_session_state(s);
  switch (h->msg_id) {
  case HW_JT808_MSG_HEARTBEAT:
    /* A few, while registering; a connection that only ever heartbeats would hold its slot
     * forever, since every heartbeat resets the idle timeout. */
    if (!s->term && ++st->preauth_heartbeats > HW_J8_PREAUTH_HEARTBEATS) {
      hw_info("jt808", h->phone, "peer=%s closed: %d heartbeats and no authentication", s->peer,
              HW_J8_PREAUTH_HEARTBEATS);
      return -EACCES;
    }
    return hw_j8_answer(s, h, HW_JT808_RES_OK);
  case HW_JT808_MSG_REGISTER:
  case HW_JT808_MSG_AUTH:
    if (st->pending) {
      /* One look-up at a time: a terminal that does not wait for the answer asks again. */
      int rc = hw_j8_answer(s, h, HW_JT808_RES_FAIL);
      return rc ? rc : hw_j8_strike(s, h->phone, "registration or authentication while one is pending");
    }
    return h->msg_id == HW_JT808_MSG_REGISTER ? hw_j8_register(s, h, body, len)
                                              : hw_j8_authenticate(s, h, body, len);
  default:
    return hw_j8_refuse(s, h, "before authentication");
  }
}

static int hw_j8_dispatch(hw_session *s, const hw_jt808_header *h, const uint8_t *body,
                          size_t len) {
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_terminal_response tr;
  if (!s->term)
    return hw_j8_before_auth(s, h, body, len);
  if (strcmp(h->phone, s->term->id) != 0)
    return hw_j8_refuse(s, h, "for another terminal on an authenticated connection");
  hw_j8_remember_peer(st, h);
  if (h->encryption) {
    /* RSA bodies need keys exchanged with 0x0A00/0x8A00, which haulwatch does not do. */
    return hw_j8_answer(s, h, HW_JT808_RES_UNSUPPORTED);
  }
  switch (h->msg_id) {
  case HW_JT808_MSG_LOCATION:
    return hw_j8_location(s, h, body, len);
  case HW_JT808_MSG_BATCH:
    return hw_j8_batch(s, h, body, len);
  case HW_JT808_MSG_HEARTBEAT:
    return hw_j8_answer(s, h, HW_JT808_RES_OK);
  case HW_JT808_MSG_DRIVER:
    return hw_j8_driver(s, h, body, len);
  case HW_JT808_MSG_TERMINAL_RESPONSE:
    if (hw_jt808_parse_terminal_response(body, len, &tr) == 0)
      hw_debug("jt808", s->term->id, "terminal answered 0x%04x flow %u: result %u", tr.reply_id,
               tr.reply_flow, tr.result);
    return 0;
  case HW_JT808_MSG_LOGOUT:
    hw_info("jt808", s->term->id, "peer=%s logged out", s->peer);
    (void)hw_j8_answer(s, h, HW_JT808_RES_OK);
    return -ECONNRESET;
  case HW_JT808_MSG_REGISTER:
  case HW_JT808_MSG_AUTH:
    /* Re-authenticating is allowed; registering again is decided by the identity policy
     * (registry/auth.c) like any other registration. */
    return hw_j8_before_auth(s, h, body, len);
  default:
    hw_debug("jt808", s->term->id, "message 0x%04x not supported", h->msg_id);
    return hw_j8_answer(s, h, HW_JT808_RES_UNSUPPORTED);
  }
}

/* Sub-packages are put together before dispatch; only authenticated terminals get the memory. */
static int hw_j8_subpackage(hw_session *s, hw_jt808_header *h, const uint8_t *body, size_t len) {
  hw_j8_state *st = hw_session_state(s);
  if (!s->term)
    return hw_j8_refuse(s, h, "sub-packaged before authentication");
  if (!st->reasm) {
    if (!(st->reasm = malloc(sizeof *st->reasm)))
      return -ENOMEM;
    hw_jt808_reasm_init(st->reasm, &hw_j8_reasm_cfg);
  }
  const uint8_t *whole;
  size_t whole_len;
  int rc = hw_jt808_reasm_add(st->reasm, h, body, len, (int64_t)uv_now(hw_server_loop(s->server)),
                              &whole, &whole_len);
  if (rc == 0)
    return 0;
  if (rc == -ENOMEM)
    return rc;
  if (rc < 0) {
    hw_info("jt808", s->term->id, "peer=%s sub-packaged 0x%04x dropped: %s", s->peer, h->msg_id,
            strerror(-rc));
    rc = hw_j8_answer(s, h, HW_JT808_RES_BAD_MESSAGE);
    return rc ? rc : hw_j8_strike(s, s->term->id, "sub-packaged message over the limits");
  }
  /* The whole message is answered as its last package: that is the flow the reply names. */
  h->body_len = (uint16_t)(whole_len > UINT16_MAX ? UINT16_MAX : whole_len);
  return hw_j8_dispatch(s, h, whole, whole_len);
}

static int hw_j8_on_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  hw_session *s = arg;
  hw_jt808_header h;
  const uint8_t *body;
  if (s->closing)
    return -ECANCELED;
  if (ev != HW_JT808_FRAME)
    hw_j8_stats.bad_frames++;
  switch (ev) {
  case HW_JT808_FRAME:
    break;
  case HW_JT808_BAD_CHECKSUM:
    s->counters->bad_frames[HW_BAD_FRAME_CHECKSUM]++;
    return hw_j8_strike(s, hw_session_tid(s), "frame with a bad checksum dropped");
  case HW_JT808_BAD_ESCAPE:
    s->counters->bad_frames[HW_BAD_FRAME_ESCAPE]++;
    return hw_j8_strike(s, hw_session_tid(s), "frame with a bad escape dropped");
  default:
    s->counters->bad_frames[HW_BAD_FRAME_OVERSIZE]++;
    return hw_j8_strike(s, hw_session_tid(s), "oversized frame dropped");
  }
  if (hw_jt808_header_parse(data, len, &h, &body)) {
    hw_j8_stats.bad_frames++;
    s->counters->bad_frames[HW_BAD_FRAME_HEADER]++;
    return hw_j8_strike(s, hw_session_tid(s), "frame with an impossible header dropped");
  }
  hw_j8_stats.frames++;
  s->counters->frames++;
  if (h.subpackaged)
    return hw_j8_subpackage(s, &h, body, h.body_len);
  return hw_j8_dispatch(s, &h, body, h.body_len);
}

/* The deframer position between reads: only a partial frame's bytes take memory, exactly their
 * size, and none at all when a read ends on a frame boundary (an idle terminal). */
static int hw_j8_df_save(hw_j8_state *st) {
  uint16_t had = st->df.len;
  hw_jt808_deframer_save(&hw_j8_df, &st->df);
  if (st->df.len == 0) {
    free(st->part);
    st->part = NULL;
    return 0;
  }
  if (st->df.len != had || !st->part) {
    uint8_t *p = realloc(st->part, st->df.len);
    if (!p) {
      st->df.len = had;
      return -ENOMEM;
    }
    st->part = p;
  }
  memcpy(st->part, hw_j8_df.buf, st->df.len);
  return 0;
}

static int hw_j8_on_data(hw_session *s, const uint8_t *data, size_t len) {
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_deframer_restore(&hw_j8_df, &st->df, st->part);
  uint64_t garbage = hw_j8_df.stats.garbage_bytes; /* the shared stats keep accumulating */
  int rc = hw_jt808_deframer_feed(&hw_j8_df, data, len, hw_j8_on_frame, s);
  if (rc || s->closing)
    return rc ? rc : -ECANCELED;
  if ((rc = hw_j8_df_save(st)))
    return rc;
  /* Bytes outside frames: harmless noise in small amounts, a stream of nothing but garbage
   * otherwise (it would never hit the idle timeout). */
  st->garbage += (uint32_t)(hw_j8_df.stats.garbage_bytes - garbage);
  while (st->garbage >= HW_J8_GARBAGE_STRIKE) {
    st->garbage -= HW_J8_GARBAGE_STRIKE;
    if ((rc = hw_j8_strike(s, hw_session_tid(s), "4 KiB of bytes outside frames")))
      return rc;
  }
  if (st->reasm) {
    hw_jt808_reasm_expire(st->reasm, (int64_t)uv_now(hw_server_loop(s->server)));
    if (hw_jt808_reasm_pending(st->reasm) == 0) {
      hw_jt808_reasm_free(st->reasm);
      free(st->reasm);
      st->reasm = NULL;
    }
  }
  return 0;
}

/* The alarms of the message just acknowledged are stored: ask for their attachments (after the
 * 0x8001, so the terminal has its answer first). A request that cannot be written is logged; the
 * alarm stands without its files. */
static void hw_j8_request_due(hw_session *s, uint64_t token) {
  hw_j8_state *st = hw_session_state(s);
  hw_attach_alarm_no due[HW_ATTACH_DUE_PENDING];
  size_t dropped;
  size_t n = hw_attach_due_take(st->due, token, due, HW_ATTACH_DUE_PENDING, &dropped);
  if (dropped)
    hw_warn("jt808", s->term->id, "peer=%s %zu alarm(s) never acknowledged: no 0x9208 for them",
            s->peer, dropped);
  for (size_t i = 0; i < n && !s->closing; i++) {
    int rc = hw_jt808_session_request_attachments(s, &due[i], NULL, NULL);
    if (rc)
      hw_warn("jt808", s->term->id, "peer=%s cannot send 0x9208: %s", s->peer, strerror(-rc));
  }
}

static void hw_j8_on_durable(hw_session *s, const hw_ack_ref *ack) {
  hw_j8_state *st = hw_session_state(s);
  hw_jt808_header peer;
  hw_j8_peer_header(st, &peer);
  (void)hw_j8_reply(s, &peer, (uint16_t)ack->token, (uint16_t)(ack->token >> 16), HW_JT808_RES_OK);
  if (st->due && !s->closing)
    hw_j8_request_due(s, ack->token);
}

static void hw_j8_on_closing(hw_session *s, int reason) {
  /* JT/T 808 has no message for "going away": the terminal reconnects and resends. */
  if (reason == HW_CLOSE_REPLACED)
    hw_debug("jt808", NULL, "peer=%s replaced by a newer connection", s->peer);
}

static void hw_j8_on_close(hw_session *s) {
  hw_j8_state *st = hw_session_state(s);
  if (st->online[0]) {
    hw_attach_online_del(st->online);
    st->online[0] = 0;
  }
  if (st->pending) {
    if (st->pending->req) /* NULL while the claim that follows it runs */
      hw_auth_cancel(st->pending->req);
    hw_pipeline_claim_cancel(st->pending->claim);
    free(st->pending);
    st->pending = NULL;
  }
  if (st->reasm) {
    hw_jt808_reasm_free(st->reasm);
    free(st->reasm);
    st->reasm = NULL;
  }
  free(st->part);
  st->part = NULL;
  free(st->driver_name);
  st->driver_name = NULL;
  free(st->due);
  st->due = NULL;
}

/* Input held between reads: the partial frame (sub-packages are reassembled only once
 * authenticated, and nothing is queued behind a look-up). */
static size_t hw_j8_held_bytes(const hw_session *s) {
  const hw_j8_state *st = hw_session_state((hw_session *)s);
  return st->df.len;
}

const hw_proto hw_jt808_proto = {
    .name = "jt808",
    .state_size = sizeof(hw_j8_state),
    .on_data = hw_j8_on_data,
    .on_durable = hw_j8_on_durable,
    .on_closing = hw_j8_on_closing,
    .on_close = hw_j8_on_close,
    .held_bytes = hw_j8_held_bytes,
};
