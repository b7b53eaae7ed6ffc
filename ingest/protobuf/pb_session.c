/* The haulwatch protobuf protocol on a server session: Hello and its asynchronous check (frames
 * pipelined behind the Hello wait in a small queue), Reports turned into fixes for the pipeline,
 * and the protocol's sequence bookkeeping, which is per connection and lives only here: the
 * highest seq this connection sent (seqs must grow) and the highest Ack it was sent. Owns its
 * frame reader's buffer and the pipelined-frame queue; the session owns the rest. */
#include "protobuf/pb_session.h"

#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "registry/auth.h"
#include "protobuf/frame.h"
#include "base/log.h"
#include "protobuf/pb_codec.h"
#include "pipeline/backend.h"
#include "net/server.h"

/* Bounds written in proto/haulwatch.proto. */
#define HW_PB_MAX_FIXES_PER_REPORT 4096
#define HW_PB_REFUSED_PER_ACK 24  /* keeps an Ack with refusals within hw_pb_send's buffer */
#define HW_PB_VERSION_LOGGED 64   /* bytes of Hello.client_version that reach the log */
/* A connection that keeps sending bad fixes stays open now: its refusals are logged at most
 * this often (with the count since the last line), so it cannot flood the log. */
#define HW_PB_REFUSAL_LOG_MS 10000

typedef enum { HW_PB_NEW = 0, HW_PB_AUTHENTICATING, HW_PB_READY } hw_pb_phase;

typedef struct hw_pb_state {
  hw_frame_reader reader;
  hw_pb_phase phase;
  hw_auth_req *auth;                /* pending look-up, NULL otherwise */
  hw_owner_claim *claim;            /* pending claim (after the look-up), NULL otherwise */
  char terminal_id[HW_TERMINAL_ID_MAX + 1];
  /* Frames that arrived while the Hello is checked, each with its length prefix, in order.
   * Owned; NULL when none. With the partial frame, at most the pre-authentication limit
   * (hw_session_preauth_limit: the server's preauth_buffer). */
  uint8_t *early;
  size_t early_len;
  /* Sequence bookkeeping of this connection only (proto: SEQUENCE NUMBERS AND ACKS). */
  uint64_t last_seq;  /* highest seq taken from a Report so far (stored or refused for content) */
  uint64_t acked_seq; /* highest Ack sent */
  uint64_t refused_unlogged; /* fixes refused since the last log line about refusals */
  int64_t refusal_logged_ms; /* when that line was written, 0 before the first */
} hw_pb_state;

static size_t hw_pb_max_frame = 64 * 1024;
/* Converted fixes of the report being handled: one buffer per loop thread. hw_pb_max_frame is
 * set once before any worker thread starts and only read afterwards. */
static _Thread_local hw_fix hw_pb_fixes[HW_PB_MAX_FIXES_PER_REPORT];

void hw_pb_proto_set_max_frame(size_t max_frame) { hw_pb_max_frame = max_frame; }

static void hw_pb_send(hw_session *s, const Haulwatch__V1__ServerMessage *m) {
  uint8_t buf[512];
  int n = hw_pb_encode_delimited(&m->base, buf, sizeof buf);
  if (n > 0 && hw_session_write(s, buf, (size_t)n) == 0)
    return;
}

static void hw_pb_send_error(hw_session *s, Haulwatch__V1__Error__Code code, const char *reason) {
  Haulwatch__V1__Error e = HAULWATCH__V1__ERROR__INIT;
  e.code = code;
  e.reason = (char *)reason;
  Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR;
  m.error = &e;
  hw_pb_send(s, &m);
}

/* Sends Error and fails, so the caller closes the session. */
static int hw_pb_refuse(hw_session *s, Haulwatch__V1__Error__Code code, const char *reason) {
  switch (code) {
  case HAULWATCH__V1__ERROR__CODE__BAD_FRAME:
    break; /* counted by the caller, by reason */
  case HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED:
    s->counters->refusals[HW_REFUSE_NOT_AUTHENTICATED]++;
    break;
  case HAULWATCH__V1__ERROR__CODE__AUTH_FAILED:
    s->counters->refusals[HW_REFUSE_AUTH_FAILED]++;
    break;
  case HAULWATCH__V1__ERROR__CODE__INTERNAL:
    s->counters->refusals[HW_REFUSE_INTERNAL]++;
    break;
  default:
    s->counters->refusals[HW_REFUSE_BAD_MESSAGE]++;
  }
  hw_info("pb", hw_session_tid(s), "peer=%s closed: %s", s->peer, reason);
  hw_pb_send_error(s, code, reason);
  return -ECONNABORTED;
}

static void hw_pb_send_hello_result(hw_session *s, int accepted, const char *reason, uint64_t last) {
  Haulwatch__V1__HelloResult r = HAULWATCH__V1__HELLO_RESULT__INIT;
  r.accepted = accepted;
  r.reason = (char *)(reason ? reason : "");
  r.last_acked_seq = last;
  Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT;
  m.hello_result = &r;
  hw_pb_send(s, &m);
}

static int hw_pb_on_frame(void *arg, const uint8_t *frame, size_t len);

/* Handles, in order, the frames pipelined behind the Hello now that it is accepted. They are
 * whole frames, so a private reader hands each straight to hw_pb_on_frame without buffering. */
static void hw_pb_replay_early(hw_session *s, hw_pb_state *st) {
  uint8_t *early = st->early;
  size_t len = st->early_len;
  st->early = NULL;
  st->early_len = 0;
  if (!early)
    return;
  hw_frame_reader r;
  hw_frame_reader_init(&r, hw_pb_max_frame);
  int rc = hw_frame_feed(&r, early, len, hw_pb_on_frame, s);
  hw_frame_reader_free(&r);
  free(early);
  /* hw_pb_on_frame told the client why; outside on_data nobody else closes the session. */
  if (rc < 0)
    hw_session_close(s);
}

/* Keeps a frame that arrived while the Hello is checked (its prefix re-encoded). */
static int hw_pb_keep_early(hw_session *s, hw_pb_state *st, const uint8_t *frame, size_t len) {
  uint8_t pre[10];
  size_t k = hw_varint_put(pre, len);
  size_t limit = hw_session_preauth_limit(s);
  if (st->early_len + k + len > limit) /* counted, logged and told as any pre-auth overflow */
    return hw_session_preauth_exceeded(s, st->early_len + k + len);
  uint8_t *nb = realloc(st->early, st->early_len + k + len);
  if (!nb)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__INTERNAL, "out of memory");
  memcpy(nb + st->early_len, pre, k);
  memcpy(nb + st->early_len + k, frame, len);
  st->early = nb;
  st->early_len += k + len;
  return 0;
}

static void hw_pb_ready(hw_session *s, hw_pb_state *st, hw_terminal *t);

static void hw_pb_on_claimed(void *arg, int result) {
  hw_session *s = arg;
  hw_pb_state *st = hw_session_state(s);
  st->claim = NULL;
  if (result != 0) {
    const char *why = "authentication unavailable, try again later";
    hw_pb_send_hello_result(s, 0, why, 0);
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__INTERNAL, why);
    hw_warn("pb", st->terminal_id, "peer=%s refused: the terminal could not be claimed: %s",
            s->peer, strerror(-result));
    hw_session_close(s);
    return;
  }
  hw_terminal *t = hw_registry_find(hw_server_backend(s->server)->registry, st->terminal_id);
  if (!t) { /* records live until exit: cannot happen */
    hw_session_close(s);
    return;
  }
  hw_pb_ready(s, st, t);
}

static void hw_pb_on_auth(void *arg, int result) {
  hw_session *s = arg;
  hw_pb_state *st = hw_session_state(s);
  st->auth = NULL;
  if (result != 0) {
    const char *why = result == -EACCES ? "unknown terminal or wrong token"
                                        : "authentication unavailable, try again later";
    hw_pb_send_hello_result(s, 0, why, 0);
    hw_pb_send_error(s, result == -EACCES ? HAULWATCH__V1__ERROR__CODE__AUTH_FAILED
                                          : HAULWATCH__V1__ERROR__CODE__INTERNAL, why);
    hw_info("pb", st->terminal_id, "peer=%s refused: %s", s->peer, why);
    hw_session_close(s);
    return;
  }
  hw_terminal *t;
  hw_backend *be = hw_server_backend(s->server);
  if (hw_registry_get(be->registry, st->terminal_id, &t)) {
    hw_pb_send_hello_result(s, 0, "out of memory", 0);
    hw_session_close(s);
    return;
  }
  /* With ownership the terminal's rule state comes here first (frames keep waiting in early). */
  int rc = hw_pipeline_claim(be->pipeline, t, hw_pb_on_claimed, s, &st->claim);
  if (rc == 1)
    hw_pb_ready(s, st, t);
  else if (rc < 0)
    hw_pb_on_claimed(s, rc);
}

static void hw_pb_ready(hw_session *s, hw_pb_state *st, hw_terminal *t) {
  hw_session_bind(s, t);
  st->phase = HW_PB_READY;
  /* last_acked_seq stays 0: acks are per connection, nothing is known of earlier ones. */
  hw_pb_send_hello_result(s, 1, NULL, 0);
  hw_info("pb", t->id, "peer=%s authenticated", s->peer);
  hw_pb_replay_early(s, st);
}

static int hw_pb_on_hello(hw_session *s, hw_pb_state *st, const Haulwatch__V1__Hello *h) {
  size_t idlen = h->terminal_id ? strlen(h->terminal_id) : 0;
  if (st->phase != HW_PB_NEW)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "Hello sent twice");
  if (hw_terminal_id_check(h->terminal_id, idlen))
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE,
                        "terminal_id must be 1..32 characters of [0-9A-Za-z_-]");
  size_t toklen = h->token ? strlen(h->token) : 0;
  if (toklen == 0 || toklen > 256)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__AUTH_FAILED, "missing or oversized token");
  memcpy(st->terminal_id, h->terminal_id, idlen + 1);
  st->phase = HW_PB_AUTHENTICATING;
  int rc = hw_auth_check_from(hw_server_backend(s->server)->auth, s->peer,
                              st->terminal_id, h->token, toklen, hw_pb_on_auth, s, &st->auth);
  if (rc)
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__INTERNAL, "authentication unavailable");
  char version[HW_PB_VERSION_LOGGED + 1];
  const char *v = h->client_version ? h->client_version : "?";
  hw_utf8_truncate(version, sizeof version, v, strlen(v));
  hw_debug("pb", st->terminal_id, "peer=%s hello, client %s", s->peer, version);
  return 0;
}

static void hw_pb_send_ack(hw_session *s, uint64_t seq, Haulwatch__V1__RefusedFix **refused,
                           size_t n) {
  Haulwatch__V1__Ack a = HAULWATCH__V1__ACK__INIT;
  a.seq = seq;
  a.refused = refused;
  a.n_refused = n;
  Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
  m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK;
  m.ack = &a;
  hw_pb_send(s, &m);
}

/* Refusals of one Report, sent in Acks of at most HW_PB_REFUSED_PER_ACK as they fill. Such an
 * Ack repeats the highest seq acknowledged so far: a refusal claims nothing durable. */
typedef struct hw_pb_refusals {
  Haulwatch__V1__RefusedFix item[HW_PB_REFUSED_PER_ACK];
  Haulwatch__V1__RefusedFix *ptr[HW_PB_REFUSED_PER_ACK];
  size_t n, total;
  uint64_t first_seq;
  const char *first_why;
} hw_pb_refusals;

static void hw_pb_refusals_flush(hw_session *s, hw_pb_state *st, hw_pb_refusals *r) {
  if (r->n)
    hw_pb_send_ack(s, st->acked_seq, r->ptr, r->n);
  r->n = 0;
}

static void hw_pb_refuse_fix(hw_session *s, hw_pb_state *st, hw_pb_refusals *r, uint64_t seq,
                             int reason, const char *why) {
  if (r->total++ == 0)
    r->first_seq = seq, r->first_why = why;
  s->counters->refusals[HW_REFUSE_INVALID_FIX]++;
  Haulwatch__V1__RefusedFix *f = &r->item[r->n];
  haulwatch__v1__refused_fix__init(f);
  f->seq = seq;
  f->reason = (Haulwatch__V1__RefusedFix__Reason)reason;
  r->ptr[r->n++] = f;
  if (r->n == HW_PB_REFUSED_PER_ACK)
    hw_pb_refusals_flush(s, st, r);
}

static int hw_pb_on_report(hw_session *s, hw_pb_state *st, const Haulwatch__V1__Report *r) {
  char why[160];
  if (r->n_fixes == 0)
    return 0; /* nothing to store or answer (proto: LIMITS) */
  if (r->n_fixes > HW_PB_MAX_FIXES_PER_REPORT) {
    snprintf(why, sizeof why, "a report carries at most %d fixes", HW_PB_MAX_FIXES_PER_REPORT);
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, why);
  }
  int64_t now = hw_now_ms();
  size_t n = 0;
  hw_pb_refusals refusals;
  refusals.n = refusals.total = 0;
  for (size_t i = 0; i < r->n_fixes; i++) {
    const Haulwatch__V1__Fix *in = r->fixes[i];
    const char *bad;
    int reason;
    /* The seq orders this connection only; duplicates are decided by storage, by (terminal,
     * device time), so a resend after a reconnect or a restart is acknowledged, not lost. */
    if (in->seq <= st->last_seq) {
      hw_pb_refuse_fix(s, st, &refusals, in->seq, HAULWATCH__V1__REFUSED_FIX__REASON__BAD_SEQ,
                       "seq not above the previous one on this connection");
      continue;
    }
    if (hw_pb_fix_from_wire(in, &hw_pb_fixes[n], &reason, &bad)) {
      if (reason != HAULWATCH__V1__REFUSED_FIX__REASON__BAD_SEQ)
        st->last_seq = in->seq; /* a usable seq, refused for its content, still orders */
      hw_pb_refuse_fix(s, st, &refusals, in->seq, reason, bad);
      continue;
    }
    st->last_seq = in->seq;
    hw_pb_fixes[n].recv_ms = now;
    /* Here the writer's "may be a duplicate" hint could be set, e.g. for a seq at or below the
     * highest this terminal queued on an earlier connection: such a fix is a likely resend and
     * its batch a likely COPY unique_violation. This layer keeps no such number across
     * connections, so it is left to the writer to find out. */
    n++;
  }
  hw_pb_refusals_flush(s, st, &refusals);
  st->refused_unlogged += refusals.total;
  if (refusals.total &&
      (st->refusal_logged_ms == 0 || now - st->refusal_logged_ms >= HW_PB_REFUSAL_LOG_MS)) {
    hw_warn("pb", hw_session_tid(s), "peer=%s refused %llu fixes since the last such line, "
            "%zu of %zu in this report (first seq %llu: %s)", s->peer,
            (unsigned long long)st->refused_unlogged, refusals.total, r->n_fixes,
            (unsigned long long)refusals.first_seq, refusals.first_why);
    st->refused_unlogged = 0;
    st->refusal_logged_ms = now;
  }
  if (n == 0)
    return 0;
  /* The ack covers every seq this connection sent so far: the refused ones were answered above. */
  int rc = hw_pipeline_submit(hw_server_backend(s->server)->pipeline, s, hw_pb_fixes, n, HW_ACK_PB,
                              st->last_seq);
  s->counters->fixes += n;
  if (rc) {
    hw_error("pb", hw_session_tid(s), "peer=%s cannot queue fixes: %s", s->peer, strerror(-rc));
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__INTERNAL, "cannot queue fixes");
    return rc;
  }
  return 0;
}

static int hw_pb_on_frame(void *arg, const uint8_t *frame, size_t len) {
  hw_session *s = arg;
  hw_pb_state *st = hw_session_state(s);
  if (s->closing)
    return -ECANCELED;
  /* Pipelined behind a Hello being checked: kept as is, handled in order once accepted. */
  if (st->phase == HW_PB_AUTHENTICATING)
    return hw_pb_keep_early(s, st, frame, len);
  Haulwatch__V1__ClientMessage *m = hw_pb_decode_client(frame, len);
  if (!m) /* counted as a bad_message refusal, as the client is told */
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "frame is not a ClientMessage");
  s->counters->frames++;
  const char *field;
  if (hw_pb_check_utf8(&m->base, &field)) {
    char why[96];
    snprintf(why, sizeof why, "%s is not valid UTF-8", field);
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, why);
  }
  /* Identity: data before any Hello is recorded as a refusal (README); refused below. */
  if (st->phase == HW_PB_NEW && (m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT ||
                                 m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT))
    hw_auth_refusal(hw_server_backend(s->server)->auth, "pb", NULL, NULL, s->peer,
                    "message before Hello");
  switch (m->msg_case) {
  case HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO:
    return hw_pb_on_hello(s, st, m->hello);
  case HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT:
    if (st->phase != HW_PB_READY)
      return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED,
                          "Report before a successful Hello");
    return hw_pb_on_report(s, st, m->report);
  case HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT:
    if (st->phase != HW_PB_READY)
      return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED,
                          "Heartbeat before a successful Hello");
    return 0;
  default:
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_MESSAGE, "empty or unknown message");
  }
}

static int hw_pb_on_data(hw_session *s, const uint8_t *data, size_t len) {
  hw_pb_state *st = hw_session_state(s);
  if (st->reader.max_frame == 0)
    hw_frame_reader_init(&st->reader, hw_pb_max_frame);
  /* Before authentication a frame, its length prefix (at most 10 bytes) included, fits in the
   * pre-authentication buffer: a Hello is small, and a larger length is refused before a byte of
   * the frame is buffered. */
  size_t preauth = hw_session_preauth_limit(s);
  size_t pre_payload = preauth > 11 ? preauth - 10 : 1;
  int small = !s->term && pre_payload < hw_pb_max_frame;
  st->reader.max_frame = small ? pre_payload : hw_pb_max_frame;
  int rc = hw_frame_feed(&st->reader, data, len, hw_pb_on_frame, s);
  /* Over the pre-auth limit but within max_frame: too much before authentication (told in
   * on_closing); above max_frame it is a bad frame whoever sends it. */
  if (rc == -EMSGSIZE && small && !s->term && st->reader.refused <= hw_pb_max_frame)
    return hw_session_preauth_exceeded(s, preauth + 1);
  if (rc == -EMSGSIZE) {
    s->counters->bad_frames[HW_BAD_FRAME_OVERSIZE]++;
    char why[96];
    snprintf(why, sizeof why, "frame larger than %zu bytes", hw_pb_max_frame);
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_FRAME, why);
  }
  if (rc == -EPROTO) {
    s->counters->bad_frames[HW_BAD_FRAME_LENGTH]++;
    return hw_pb_refuse(s, HAULWATCH__V1__ERROR__CODE__BAD_FRAME, "malformed length prefix");
  }
  return rc;
}

static void hw_pb_on_durable(hw_session *s, const hw_ack_ref *ack) {
  hw_pb_state *st = hw_session_state(s);
  /* Acks are delivered in the order queued and tokens grow with last_seq: this never goes down. */
  if (ack->token > st->acked_seq)
    st->acked_seq = ack->token;
  hw_pb_send_ack(s, ack->token, NULL, 0);
}

static void hw_pb_on_closing(hw_session *s, int reason) {
  switch (reason) {
  case HW_CLOSE_IDLE:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__IDLE_TIMEOUT, "idle timeout");
    break;
  case HW_CLOSE_REPLACED:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__REPLACED, "replaced by a newer connection");
    break;
  case HW_CLOSE_OWNER_MOVED:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__REPLACED,
                     "replaced by a newer connection to another server");
    break;
  case HW_CLOSE_SHUTDOWN:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__SHUTTING_DOWN, "server shutting down");
    break;
  case HW_CLOSE_AUTH_TIMEOUT:
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED,
                     "not authenticated in time");
    break;
  case HW_CLOSE_PREAUTH_BUFFER: {
    /* NOT_AUTHENTICATED, as the proto says: reconnect, and send less before HelloResult. */
    char why[96];
    snprintf(why, sizeof why, "more than %zu bytes sent before authentication",
             hw_session_preauth_limit(s));
    hw_pb_send_error(s, HAULWATCH__V1__ERROR__CODE__NOT_AUTHENTICATED, why);
    break;
  }
  default:
    break;
  }
}

static void hw_pb_on_close(hw_session *s) {
  hw_pb_state *st = hw_session_state(s);
  if (st->auth)
    hw_auth_cancel(st->auth);
  st->auth = NULL;
  hw_pipeline_claim_cancel(st->claim);
  st->claim = NULL;
  hw_frame_reader_free(&st->reader);
  free(st->early);
  st->early = NULL;
  st->early_len = 0;
}

/* Input held between reads: the partial frame, and the frames kept behind a Hello being checked. */
static size_t hw_pb_held_bytes(const hw_session *s) {
  const hw_pb_state *st = hw_session_state((hw_session *)s);
  return st->reader.len + st->early_len;
}

const hw_proto hw_pb_proto = {
    .name = "pb",
    .state_size = sizeof(hw_pb_state),
    .on_data = hw_pb_on_data,
    .on_durable = hw_pb_on_durable,
    .on_closing = hw_pb_on_closing,
    .on_close = hw_pb_on_close,
    .held_bytes = hw_pb_held_bytes,
};
