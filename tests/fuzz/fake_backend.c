/* See fake_backend.h. One loop thread, one session at a time: plain globals. */
#include "fake_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach_server.h"
#include "base/geo.h"
#include "base/log.h"
#include "net/server.h"
#include "pipeline/backend.h"
#include "registry/auth.h"

#define HW_FAKE_MAX_REQ 8
#define HW_FAKE_MAX_ACKS 64
#define HW_FAKE_PREAUTH 4096 /* the server's default preauth_buffer */

struct hw_auth_req {
  int used, cancelled;
  int kind; /* 0 check, 1 JT/T 808 register */
  hw_auth_cb cb;
  hw_auth_register_cb reg_cb;
  void *arg;
};

struct hw_server {
  uv_loop_t loop;
  int loop_ready;
};

struct hw_pipeline {
  hw_registry reg;
};

static struct hw_server hw_fake_server;
static struct hw_pipeline hw_fake_pipeline;
static struct hw_auth_req hw_fake_reqs[HW_FAKE_MAX_REQ];
static hw_ack_ref hw_fake_acks[HW_FAKE_MAX_ACKS];
static size_t hw_fake_nacks;
static int hw_fake_auth_mode;
static void (*hw_fake_on_write)(hw_session *s, const uint8_t *data, size_t len);
static hw_auth *const hw_fake_auth_handle = (hw_auth *)&hw_fake_reqs; /* never dereferenced */
const char *hw_fake_pg_conninfo;
struct hw_jt809_centre *hw_fake_jt809;
struct hw_attach_server *hw_fake_attach;
void (*hw_fake_turn_hook)(void);
int hw_fake_sessionless_bind;

/* Reads all of s: the check is ASan's, which reports a pointer past its buffer or a string
 * without its NUL. What the real module would copy must be readable in full at the call. */
static void hw_fake_read_str(const char *s) {
  if (s) {
    volatile size_t n = strlen(s);
    (void)n;
  }
}

/* ---- attach/attach_server.h: the listener, as far as a 0x9208 request needs it ---- */

void hw_attach_server_public(const hw_attach_server *srv, char *host, size_t cap, uint16_t *port) {
  (void)srv;
  snprintf(host, cap, "192.168.1.1");
  *port = 5000;
}

/* ---- net/server.h, net/session.h ---- */

struct hw_backend *hw_server_backend(hw_server *srv) {
  static hw_backend be;
  be.registry = &hw_fake_pipeline.reg;
  be.auth = hw_fake_auth_handle;
  be.pipeline = &hw_fake_pipeline;
  be.pg_conninfo = hw_fake_pg_conninfo;
  be.jt809 = hw_fake_jt809;
  be.attach = hw_fake_attach;
  return &be;
}
uv_loop_t *hw_server_loop(hw_server *srv) { return &srv->loop; }

int hw_session_write(hw_session *s, const uint8_t *data, size_t len) {
  if (s->closing)
    return -EPIPE;
  HW_FAKE_CHECK(len > 0);
  if (hw_fake_on_write)
    hw_fake_on_write(s, data, len);
  return 0;
}

void hw_session_close(hw_session *s) {
  if (s->closing)
    return;
  s->closing = 1;
  if (s->term && s->term->session == s)
    s->term->session = NULL;
  if (s->proto->on_close)
    s->proto->on_close(s);
}

size_t hw_session_preauth_limit(const hw_session *s) { return HW_FAKE_PREAUTH; }

int hw_session_preauth_exceeded(hw_session *s, size_t would_hold) {
  HW_FAKE_CHECK(!s->term && would_hold > HW_FAKE_PREAUTH); /* only before authentication */
  return -EMSGSIZE;
}

void hw_session_bind(hw_session *s, hw_terminal *t) {
  HW_FAKE_CHECK(!s->closing);
  t->session = s;
  t->session_gen++;
  s->term = t;
  s->gen = t->session_gen;
}

/* ---- pipeline/pipeline.h ---- */

void hw_pipeline_bind(hw_pipeline *p, hw_terminal *t) {
  /* after hw_session_bind, by the session that now owns t */
  HW_FAKE_CHECK(p == &hw_fake_pipeline && t);
  HW_FAKE_CHECK(t->session ? !t->session->closing : hw_fake_sessionless_bind);
}

void hw_pipeline_driver_changed(hw_pipeline *p, const hw_terminal *t) {
  /* by the session bound to t, after it changed the card */
  HW_FAKE_CHECK(p == &hw_fake_pipeline && t && t->session && !t->session->closing);
  HW_FAKE_CHECK(memchr(t->card.driver_id, '\0', sizeof t->card.driver_id) != NULL);
  HW_FAKE_CHECK(!t->card.has_driver || t->card.driver_id[0]);
}

/* Ownership off, as with one worker: nothing to wait for, the session binds at once. */
int hw_pipeline_claim(hw_pipeline *p, hw_terminal *t, hw_owner_claim_cb cb, void *arg,
                      hw_owner_claim **req) {
  HW_FAKE_CHECK(p == &hw_fake_pipeline && t && cb && arg && req);
  *req = NULL;
  return 1;
}

void hw_pipeline_claim_cancel(hw_owner_claim *req) { HW_FAKE_CHECK(req == NULL); }

int hw_pipeline_alarms(hw_pipeline *p, hw_session *s, const hw_fix *fix,
                       const hw_safety_alarm *alarms, size_t n) {
  /* what a JT/T 808 session hands over with a fix: decoded items, safe alarm-number text */
  HW_FAKE_CHECK(p == &hw_fake_pipeline && !s->closing && s->term && s->term->session == s);
  HW_FAKE_CHECK(fix && n > 0);
  for (size_t i = 0; i < n; i++) {
    const hw_safety_alarm *a = &alarms[i];
    char no[HW_SAFETY_ALARM_NO_TEXT_MAX];
    HW_FAKE_CHECK(a->kind >= HW_SAFETY_ADAS && a->kind <= HW_SAFETY_BSD);
    HW_FAKE_CHECK(a->layout == HW_SAFETY_SU || a->layout == HW_SAFETY_YUE);
    HW_FAKE_CHECK(a->tyres_kept <= HW_SAFETY_TYRES_MAX && a->tyres_kept <= a->tyre_count);
    size_t len = hw_safety_alarm_no_format(&a->no, no, sizeof no);
    HW_FAKE_CHECK(len == strlen(no) && len < sizeof no);
    for (size_t k = 0; k < len; k++)
      HW_FAKE_CHECK((no[k] >= '0' && no[k] <= '9') || (no[k] >= 'a' && no[k] <= 'z') ||
                    (no[k] >= 'A' && no[k] <= 'Z') || no[k] == ':' || no[k] == '-');
  }
  return 0;
}

int hw_pipeline_submit(hw_pipeline *p, hw_session *s, const hw_fix *fixes, size_t n,
                       uint32_t ack_kind, uint64_t ack_token) {
  /* the contract every protocol keeps towards the sinks */
  HW_FAKE_CHECK(!s->closing);
  HW_FAKE_CHECK(s->term && s->term->session == s);
  HW_FAKE_CHECK(n > 0);
  HW_FAKE_CHECK(ack_kind == HW_ACK_PB || ack_kind == HW_ACK_JT808);
  for (size_t i = 0; i < n; i++) {
    const hw_fix *f = &fixes[i];
    /* 2000..2100; a JT/T 808 BCD time is GMT+8, so its earliest is 2000-01-01 00:00 in GMT+8 */
    HW_FAKE_CHECK(f->ts_ms >= 946684800000LL - (ack_kind == HW_ACK_JT808 ? HW_CST_OFFSET_S * 1000LL : 0) &&
                  f->ts_ms <= 4102444800000LL);
    HW_FAKE_CHECK(f->heading < 360 || (f->quality & HW_Q_BAD_HEADING));
    HW_FAKE_CHECK(memchr(f->driver_id, '\0', sizeof f->driver_id) != NULL);
    HW_FAKE_CHECK(!f->has_driver || f->driver_id[0]);
    if (ack_kind == HW_ACK_PB)
      HW_FAKE_CHECK(f->seq > 0 && (i == 0 || f->seq > fixes[i - 1].seq));
  }
  if (hw_fake_nacks == HW_FAKE_MAX_ACKS)
    return -ENOBUFS; /* as a full pipeline would */
  hw_fake_acks[hw_fake_nacks++] =
      (hw_ack_ref){.term = s->term, .session_gen = s->gen, .kind = ack_kind, .token = ack_token};
  return 0;
}

/* ---- registry/auth.h ---- */

static int hw_fake_req_new(hw_auth_req **out) {
  for (int i = 0; i < HW_FAKE_MAX_REQ; i++)
    if (!hw_fake_reqs[i].used) {
      memset(&hw_fake_reqs[i], 0, sizeof hw_fake_reqs[i]);
      hw_fake_reqs[i].used = 1;
      *out = &hw_fake_reqs[i];
      return 0;
    }
  return -EBUSY; /* as the real one when too many wait */
}

int hw_auth_check_from(hw_auth *a, const char *remote, const char *terminal_id, const char *token,
                       size_t token_len, hw_auth_cb cb, void *arg, hw_auth_req **req) {
  HW_FAKE_CHECK(a == hw_fake_auth_handle && terminal_id && token && token_len > 0);
  HW_FAKE_CHECK(hw_terminal_id_check(terminal_id, strlen(terminal_id)) == 0);
  HW_FAKE_CHECK(memchr(token, '\0', token_len) == NULL); /* token[0..token_len) is copied */
  hw_fake_read_str(remote);
  int rc = hw_fake_req_new(req);
  if (rc)
    return rc;
  (*req)->cb = cb, (*req)->arg = arg;
  return 0;
}

int hw_auth_check(hw_auth *a, const char *terminal_id, const char *token, size_t token_len,
                  hw_auth_cb cb, void *arg, hw_auth_req **req) {
  return hw_auth_check_from(a, NULL, terminal_id, token, token_len, cb, arg, req);
}

void hw_auth_refusal(hw_auth *a, const char *protocol, const char *terminal_id,
                     const char *claimed_plate, const char *remote, const char *reason) {
  HW_FAKE_CHECK(a == hw_fake_auth_handle && protocol && reason);
  const char *strs[] = {protocol, terminal_id, claimed_plate, remote, reason};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    hw_fake_read_str(strs[i]);
}

int hw_auth_jt808_register(hw_auth *a, const hw_auth_jt808_reg *reg, hw_auth_register_cb cb,
                           void *arg, hw_auth_req **req) {
  HW_FAKE_CHECK(a == hw_fake_auth_handle && reg && reg->terminal_id);
  const char *strs[] = {reg->terminal_id, reg->remote, reg->maker, reg->model, reg->device_id,
                        reg->plate};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    hw_fake_read_str(strs[i]);
  int rc = hw_fake_req_new(req);
  if (rc)
    return rc;
  (*req)->kind = 1, (*req)->reg_cb = cb, (*req)->arg = arg;
  return 0;
}

int hw_auth_jt808_check(hw_auth *a, const char *terminal_id, const char *remote,
                        const uint8_t *code, size_t code_len, hw_auth_cb cb, void *arg,
                        hw_auth_req **req) {
  HW_FAKE_CHECK(a == hw_fake_auth_handle && terminal_id);
  HW_FAKE_CHECK(code_len == 0 || code != NULL);
  hw_fake_read_str(terminal_id);
  hw_fake_read_str(remote);
  for (size_t i = 0; i < code_len; i++) /* code[0..code_len) is copied */
    (void)((volatile const uint8_t *)code)[i];
  int rc = hw_fake_req_new(req);
  if (rc)
    return rc;
  (*req)->cb = cb, (*req)->arg = arg;
  return 0;
}

void hw_auth_cancel(hw_auth_req *req) {
  HW_FAKE_CHECK(req >= hw_fake_reqs && req < hw_fake_reqs + HW_FAKE_MAX_REQ && req->used);
  req->cancelled = 1;
}

/* ---- the driver ---- */

uv_loop_t *hw_fake_loop(void) {
  if (!hw_fake_server.loop_ready) {
    HW_FAKE_CHECK(uv_loop_init(&hw_fake_server.loop) == 0);
    hw_fake_server.loop_ready = 1;
    hw_log_min_level = HW_LOG_ERROR + 1; /* quiet: a log line per input would drown libFuzzer */
  }
  return &hw_fake_server.loop;
}

hw_session *hw_fake_begin(const hw_proto *proto, int auth_mode,
                          void (*on_write)(hw_session *s, const uint8_t *data, size_t len)) {
  hw_fake_loop();
  uv_update_time(&hw_fake_server.loop);
  hw_fake_auth_mode = auth_mode;
  hw_fake_on_write = on_write;
  hw_fake_nacks = 0;
  memset(hw_fake_reqs, 0, sizeof hw_fake_reqs);
  hw_session *s = calloc(1, sizeof *s + proto->state_size); /* owned here until hw_fake_end */
  static hw_proto_counters counters; /* as the listener's: never NULL for a started session */
  HW_FAKE_CHECK(s);
  s->server = &hw_fake_server;
  s->proto = proto;
  s->counters = &counters;
  s->reading = 1;
  strcpy(s->peer, "192.0.2.1:40000");
  return s;
}

int hw_fake_feed(hw_session *s, const uint8_t *data, size_t len) {
  if (s->closing)
    return 0;
  /* the server's read buffer is reused after the call: hand over a copy that dies with it, so a
   * pointer kept past the call is a use after free */
  uint8_t *copy = malloc(len ? len : 1);
  HW_FAKE_CHECK(copy);
  memcpy(copy, data, len);
  int rc = s->proto->on_data(s, copy, len);
  free(copy);
  /* as the server: an unauthenticated session holding more than its limit is closed */
  if (rc == 0 && !s->closing && !s->term && s->proto->held_bytes &&
      s->proto->held_bytes(s) > HW_FAKE_PREAUTH)
    rc = -EMSGSIZE;
  if (rc < 0)
    hw_session_close(s);
  return !s->closing;
}

void hw_fake_turn(hw_session *s) {
  static const int results[3][2] = {
      {0, HW_AUTH_REG_OK}, {-EACCES, HW_AUTH_REG_TERMINAL_TAKEN}, {-EAGAIN, -EAGAIN}};
  if (hw_fake_turn_hook)
    hw_fake_turn_hook();
  for (int i = 0; i < HW_FAKE_MAX_REQ; i++) {
    hw_auth_req *r = &hw_fake_reqs[i];
    if (!r->used)
      continue;
    r->used = 0; /* a callback may start the next request in this slot */
    if (r->cancelled)
      continue;
    HW_FAKE_CHECK(!s->closing); /* on_close must have cancelled it */
    if (r->kind == 1)
      r->reg_cb(r->arg, results[hw_fake_auth_mode][1],
                results[hw_fake_auth_mode][1] == 0 ? "0123456789abcdef" : NULL);
    else
      r->cb(r->arg, results[hw_fake_auth_mode][0]);
  }
  /* durable: acks go back to the session only while it still owns its terminal */
  for (size_t i = 0; i < hw_fake_nacks; i++)
    if (!s->closing && s->term && s->term->session == s && s->gen == s->term->session_gen)
      s->proto->on_durable(s, &hw_fake_acks[i]);
  hw_fake_nacks = 0;
}

void hw_fake_end(hw_session *s, int reason) {
  if (!s->closing && reason && s->proto->on_closing)
    s->proto->on_closing(s, reason);
  hw_session_close(s);
  for (int i = 0; i < HW_FAKE_MAX_REQ; i++)
    HW_FAKE_CHECK(!hw_fake_reqs[i].used || hw_fake_reqs[i].cancelled);
  free(s); /* as the server does after uv_close: ASan reports any later use */
  hw_registry_free(&hw_fake_pipeline.reg);
  memset(&hw_fake_pipeline.reg, 0, sizeof hw_fake_pipeline.reg);
}

void hw_fake_run(const hw_proto *proto, const uint8_t *data, size_t size,
                 void (*on_write)(hw_session *s, const uint8_t *data, size_t len)) {
  static const int auth[4] = {HW_FAKE_AUTH_OK, HW_FAKE_AUTH_REFUSE, HW_FAKE_AUTH_DOWN,
                              HW_FAKE_AUTH_OK};
  static const int reasons[4] = {0, HW_CLOSE_IDLE, HW_CLOSE_REPLACED, HW_CLOSE_SHUTDOWN};
  if (size < 2)
    return;
  int mode = data[0];
  size_t step = data[1] ? data[1] : size;
  data += 2;
  size -= 2;
  hw_session *s = hw_fake_begin(proto, auth[mode & 3], on_write);
  for (size_t off = 0; off < size; off += step) {
    size_t n = size - off < step ? size - off : step;
    if (!hw_fake_feed(s, data + off, n))
      break;
    hw_fake_turn(s);
  }
  hw_fake_turn(s);
  hw_fake_end(s, reasons[(mode >> 2) & 3]);
}
