/* The simulator engine (see sim.h). One libuv loop drives every truck; per truck: one TCP handle,
 * a pacing timer, a retry timer (reconnect backoff, login timeout) and a ring of the fixes not yet
 * acknowledged. The ring is the truck's memory, as on a real device: after a reconnect everything
 * in it above the last ack is sent again, in order, before anything new. */
#include "load/sim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/log.h"
#include "load/sim_attach.h"

#define HW_SIM_MAX_CONNECTING 256  /* connects in progress at once: spares the listen backlog */
#define HW_SIM_BACKOFF_MIN_MS 100
#define HW_SIM_BACKOFF_MAX_MS 2000
#define HW_SIM_LOGIN_TIMEOUT_MS 10000
#define HW_SIM_HEARTBEAT_US (30 * 1000000ull) /* well inside the server's 120 s idle timeout */
#define HW_SIM_DRAIN_MS 10000      /* after generation stops, how long to wait for acks */
/* Once every fix is acknowledged, the trucks stay connected while their devices upload (the
 * attachment server takes uploads only from terminals online on JT/T 808): up to
 * HW_SIM_UPLOAD_WAIT_MS for uploads running, and up to HW_SIM_REQUEST_WAIT_MS for the 0x9208 of
 * alarms sent (a daemon without an attachment listener sends none). */
#define HW_SIM_UPLOAD_WAIT_MS 60000
#define HW_SIM_REQUEST_WAIT_MS 3000
#define HW_SIM_LINGER_TICK_MS 100
#define HW_SIM_MAX_REPORT 1000     /* scratch fixes per report; protocols allow fewer */

typedef enum {
  HW_SC_QUEUED,     /* waiting for a connect slot */
  HW_SC_CONNECTING,
  HW_SC_LOGIN,      /* login sent, answer awaited */
  HW_SC_READY,
  HW_SC_CLOSING,    /* TCP handle closing; then backoff, refused or stopped */
  HW_SC_BACKOFF,
  HW_SC_REFUSED,    /* login refused: this truck is finished */
  HW_SC_STOPPED,
} hw_sim_state;

typedef struct hw_sim_slot {
  hw_sim_rec rec;
  uint32_t first_sent; /* 100 us ticks since the run started, plus 1; 0 = never sent */
} hw_sim_slot;

typedef struct hw_sim hw_sim;

struct hw_sim_conn {
  uv_tcp_t tcp;
  uv_timer_t tick;  /* paced mode: one new fix per interval */
  uv_timer_t retry; /* reconnect backoff, or login timeout while logging in */
  uv_connect_t connect_req;
  uv_write_t write_req;
  hw_sim *sim;
  const char *id, *token; /* borrowed from the config */
  hw_sim_state state;
  uint8_t tcp_open;       /* tcp initialised and its close callback not yet run */
  uint8_t writing;        /* write_req in flight over busy */
  uint8_t based;          /* seq_base fixed by the first accepted login */
  uint8_t refused;
  uint8_t finished;       /* counted in finished_trucks (all acked, or refused) */
  hw_sim_buf out;         /* owned: encoded messages waiting for the current write to end */
  hw_sim_buf busy;        /* owned: what write_req is writing */
  hw_sim_truck truck;     /* the model; for a scripted truck only its drivers are used */
  hw_scn_gen *gen;        /* owned: the script's generator, NULL for a model truck */
  int64_t limit;          /* fixes this truck sends in --fixes mode (0: no limit) */
  hw_sim_slot *ring;      /* owned: fix k in ring[k & (ring_cap - 1)] for acked_k < k <= gen_k */
  size_t ring_cap;        /* power of two, or 0 */
  /* acked_k <= sent_k <= gen_k and sent_k <= hi_sent_k: fix numbers 1, 2, ... of this run. */
  int64_t acked_k, sent_k, hi_sent_k, gen_k;
  uint64_t seq_base;      /* wire seq = seq_base + k: continues where an earlier run stopped */
  uint32_t backoff_ms;
  uint64_t last_write_us;
  hw_sim_conn *queue_next;
  void *pstate;           /* owned: protocol state, proto->state_size bytes */
};

struct hw_sim {
  uv_loop_t loop;
  const hw_sim_config *cfg;
  hw_sim_result *res;
  hw_sim_conn *conns;     /* owned, cfg->trucks */
  uv_timer_t progress_timer, deadline_timer;
  uv_timer_t linger_timer; /* while the run is done but uploads are not (hw_sim_linger) */
  uint64_t linger_since_ms;
  uv_signal_t sigint, sigterm;
  uint64_t start_ns;
  uint64_t rng;
  hw_sim_conn *queue_head, *queue_tail; /* trucks waiting to connect, FIFO */
  uint32_t connecting, connected_now, finished_trucks;
  uint64_t abandoned;     /* unacknowledged fixes of refused trucks: never to be acked */
  int generating, draining, finishing, error;
  int progress_shown;
  uint64_t prog_acked, prog_us, plain_acked, plain_us;
  uint64_t log_us;        /* last rate-limited log line */
  uint32_t log_suppressed;
  uint8_t readbuf[65536]; /* shared by every connection: reads are handled before the next */
  hw_fix scratch[HW_SIM_MAX_REPORT];
};

static void hw_sim_pump(hw_sim_conn *c);
static void hw_sim_close(hw_sim_conn *c);
static void hw_sim_finish(hw_sim *s);
static void hw_sim_on_retry(uv_timer_t *t);
static void hw_sim_on_write(uv_write_t *req, int status);

static uint64_t hw_sim_now_us(const hw_sim *s) { return (uv_hrtime() - s->start_ns) / 1000; }

uint8_t *hw_sim_buf_reserve(hw_sim_buf *b, size_t n) {
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < n)
      cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
      return NULL;
    b->data = p;
    b->cap = cap;
  }
  return b->data + b->len;
}

const char *hw_sim_conn_id(const hw_sim_conn *c) { return c->id; }
const hw_scn_script *hw_sim_conn_script(const hw_sim_conn *c) { return c->gen ? c->gen->s : NULL; }
hw_sim_buf *hw_sim_conn_out(hw_sim_conn *c) { return &c->out; }
const char *hw_sim_conn_token(const hw_sim_conn *c) { return c->token; }

/* Events that hit every truck at once (the daemon went away) would flood the log: at most one
 * line a second, saying how many were left out. Returns how many were left out, or -1 to skip. */
static long hw_sim_log_gate(hw_sim *s) {
  uint64_t now = hw_sim_now_us(s);
  if (s->log_us && now - s->log_us < 1000000) {
    s->log_suppressed++;
    return -1;
  }
  s->log_us = now;
  long n = s->log_suppressed;
  s->log_suppressed = 0;
  if (s->cfg->progress == 2 && s->progress_shown)
    fputs("\r\033[K", stderr); /* do not write over the live progress line */
  return n;
}

/* " (N similar lines left out)" when N > 0. Static buffer: one log line at a time. */
static const char *hw_sim_left_out(long n) {
  static char buf[64];
  if (n <= 0)
    return "";
  snprintf(buf, sizeof buf, " (%ld similar lines left out)", n);
  return buf;
}

static void hw_sim_fatal(hw_sim *s, int rc) {
  if (!s->error)
    s->error = rc;
  hw_error("sim", NULL, "local failure: %s", strerror(-rc));
  hw_sim_finish(s);
}

/* ---- the queue of unacknowledged fixes ---- */

static int hw_sim_ring_grow(hw_sim_conn *c) {
  size_t cap = c->ring_cap ? c->ring_cap * 2 : 16;
  hw_sim_slot *r = malloc(cap * sizeof *r);
  if (!r)
    return -ENOMEM;
  for (int64_t k = c->acked_k + 1; k <= c->gen_k; k++)
    r[(size_t)k & (cap - 1)] = c->ring[(size_t)k & (c->ring_cap - 1)];
  free(c->ring);
  c->ring = r;
  c->ring_cap = cap;
  return 0;
}

static int hw_sim_generate(hw_sim_conn *c) {
  int rc;
  if ((size_t)(c->gen_k - c->acked_k) >= c->ring_cap && (rc = hw_sim_ring_grow(c)))
    return rc;
  hw_fix f;
  if (c->gen) {
    if ((rc = hw_scn_gen_next(c->gen, &f)) < 0)
      return rc;
  } else {
    hw_sim_truck_next(&c->truck, &f);
  }
  int64_t k = ++c->gen_k;
  hw_sim_slot *slot = &c->ring[(size_t)k & (c->ring_cap - 1)];
  hw_sim_rec_pack(&slot->rec, &f, c->truck.driver_no);
  slot->first_sent = 0;
  c->sim->res->generated++;
  return 0;
}

/* The run is done: finishes now, or once the devices' uploads are (see HW_SIM_UPLOAD_WAIT_MS),
 * checking every HW_SIM_LINGER_TICK_MS. */
static void hw_sim_linger(hw_sim *s) {
  uint64_t now = uv_now(&s->loop);
  if (!s->linger_since_ms)
    s->linger_since_ms = now ? now : 1;
  uint64_t waited = now - s->linger_since_ms;
  int busy = hw_sim_attach_busy();
  if (busy == 1 && waited < HW_SIM_UPLOAD_WAIT_MS)
    return;
  if (busy == 2 && waited < HW_SIM_REQUEST_WAIT_MS)
    return;
  if (busy)
    hw_warn("sim", NULL, "%s after %llu ms: finishing anyway",
            busy == 1 ? "attachment uploads still running" : "no 0x9208 for some alarms",
            (unsigned long long)waited);
  hw_sim_finish(s);
}

static void hw_sim_on_linger(uv_timer_t *t) { hw_sim_linger(t->data); }

static void hw_sim_check_done(hw_sim *s) {
  const hw_sim_config *cfg = s->cfg;
  hw_sim_result *res = s->res;
  if (s->finishing)
    return;
  if (res->refused == cfg->trucks) {
    hw_sim_finish(s);
  } else if ((cfg->fixes && s->finished_trucks == cfg->trucks) ||
             (s->draining && res->generated == res->acked + s->abandoned)) {
    if (!hw_sim_attach_busy())
      hw_sim_finish(s);
    else if (!uv_is_active((uv_handle_t *)&s->linger_timer))
      uv_timer_start(&s->linger_timer, hw_sim_on_linger, HW_SIM_LINGER_TICK_MS,
                     HW_SIM_LINGER_TICK_MS);
  }
}

static void hw_sim_ack_upto(hw_sim_conn *c, int64_t k) {
  hw_sim *s = c->sim;
  if (k <= c->acked_k)
    return;
  uint64_t now = hw_sim_now_us(s);
  for (int64_t j = c->acked_k + 1; j <= k; j++) {
    uint32_t t = c->ring[(size_t)j & (c->ring_cap - 1)].first_sent;
    if (t) {
      uint64_t sent_us = (uint64_t)(t - 1) * 100;
      hw_hist_record(&s->res->ack_latency_us, now > sent_us ? now - sent_us : 0);
    }
  }
  s->res->acked += (uint64_t)(k - c->acked_k);
  c->acked_k = k;
  if (c->sent_k < k)
    c->sent_k = k;
  if (c->limit && c->acked_k >= c->limit && !c->finished) {
    c->finished = 1;
    s->finished_trucks++;
  }
  hw_sim_check_done(s);
}

/* ---- connection life ---- */

static void hw_sim_on_closed(uv_handle_t *h) {
  hw_sim_conn *c = h->data;
  hw_sim *s = c->sim;
  c->tcp_open = 0;
  c->writing = 0;
  c->out.len = c->busy.len = 0;
  c->sent_k = c->acked_k; /* everything unacknowledged goes again on the next connection */
  if (s->finishing) {
    c->state = HW_SC_STOPPED;
    return;
  }
  if (c->refused) {
    c->state = HW_SC_REFUSED;
    return;
  }
  uint32_t d = c->backoff_ms;
  d = d / 2 + (uint32_t)(hw_sim_rand(&s->rng) % (d / 2 + 1)); /* jitter: spread the herd */
  c->backoff_ms = c->backoff_ms * 2 > HW_SIM_BACKOFF_MAX_MS ? HW_SIM_BACKOFF_MAX_MS : c->backoff_ms * 2;
  c->state = HW_SC_BACKOFF;
  uv_timer_start(&c->retry, hw_sim_on_retry, d, 0);
}

static void hw_sim_close(hw_sim_conn *c) {
  hw_sim *s = c->sim;
  if (c->state == HW_SC_READY)
    s->connected_now--;
  c->state = HW_SC_CLOSING;
  uv_timer_stop(&c->retry);
  if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, hw_sim_on_closed);
}

void hw_sim_conn_fail(hw_sim_conn *c, const char *why) {
  if (c->state != HW_SC_CONNECTING && c->state != HW_SC_LOGIN && c->state != HW_SC_READY)
    return;
  long n = hw_sim_log_gate(c->sim);
  if (n >= 0)
    hw_warn("sim", c->id, "%s: %s; will retry%s", c->state == HW_SC_CONNECTING ? "cannot connect" : "connection lost",
            why, hw_sim_left_out(n));
  hw_sim_close(c);
}

static void hw_sim_flush(hw_sim_conn *c) {
  if (c->writing || c->out.len == 0 || (c->state != HW_SC_LOGIN && c->state != HW_SC_READY))
    return;
  hw_sim_buf t = c->busy;
  c->busy = c->out;
  c->out = t;
  c->out.len = 0;
  uv_buf_t b = uv_buf_init((char *)c->busy.data, (unsigned)c->busy.len);
  int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, hw_sim_on_write);
  if (rc < 0) {
    c->busy.len = 0;
    hw_sim_conn_fail(c, uv_strerror(rc));
    return;
  }
  c->writing = 1;
  c->last_write_us = hw_sim_now_us(c->sim);
}

static void hw_sim_on_write(uv_write_t *req, int status) {
  hw_sim_conn *c = req->data;
  c->writing = 0;
  c->busy.len = 0;
  if (status < 0) {
    if (status != UV_ECANCELED)
      hw_sim_conn_fail(c, uv_strerror(status));
    return;
  }
  hw_sim_flush(c);
}

static void hw_sim_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  hw_sim_conn *c = h->data;
  *buf = uv_buf_init((char *)c->sim->readbuf, sizeof c->sim->readbuf);
}

static void hw_sim_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  hw_sim_conn *c = st->data;
  hw_sim *s = c->sim;
  if (nread == 0)
    return;
  if (nread < 0) {
    hw_sim_conn_fail(c, nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
    return;
  }
  if (s->cfg->proto->on_data(c, c->pstate, (const uint8_t *)buf->base, (size_t)nread) < 0) {
    hw_sim_conn_fail(c, "unreadable data from the server");
    return;
  }
  if (c->state == HW_SC_READY)
    hw_sim_pump(c);
  else
    hw_sim_flush(c); /* a login of several round trips (JT/T 808 register, then authenticate) */
}

static void hw_sim_dequeue(hw_sim *s);

static void hw_sim_on_connect(uv_connect_t *req, int status) {
  hw_sim_conn *c = req->data;
  hw_sim *s = c->sim;
  s->connecting--;
  hw_sim_dequeue(s);
  if (status == UV_ECANCELED || c->state != HW_SC_CONNECTING)
    return;
  if (status < 0) {
    s->res->connect_failures++;
    hw_sim_conn_fail(c, uv_strerror(status));
    return;
  }
  const hw_sim_proto *p = s->cfg->proto;
  p->conn_reset(c, c->pstate);
  c->state = HW_SC_LOGIN;
  int rc = p->login(c, c->pstate, &c->out);
  if (rc < 0) {
    hw_sim_fatal(s, rc);
    return;
  }
  if ((rc = uv_read_start((uv_stream_t *)&c->tcp, hw_sim_alloc, hw_sim_on_read)) < 0) {
    hw_sim_conn_fail(c, uv_strerror(rc));
    return;
  }
  uv_timer_start(&c->retry, hw_sim_on_retry, HW_SIM_LOGIN_TIMEOUT_MS, 0);
  hw_sim_flush(c);
}

static void hw_sim_connect(hw_sim_conn *c) {
  hw_sim *s = c->sim;
  int rc = uv_tcp_init(&s->loop, &c->tcp);
  if (rc < 0) {
    hw_sim_fatal(s, rc);
    return;
  }
  c->tcp.data = c;
  c->tcp_open = 1;
  c->state = HW_SC_CONNECTING;
  (void)uv_tcp_nodelay(&c->tcp, 1); /* paced single-fix reports should not wait for Nagle */
  rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&s->cfg->addr,
                      hw_sim_on_connect);
  if (rc < 0) {
    s->res->connect_failures++;
    hw_sim_conn_fail(c, uv_strerror(rc)); /* e.g. out of file descriptors: back off, try again */
    return;
  }
  s->connecting++;
}

static void hw_sim_dequeue(hw_sim *s) {
  while (s->queue_head && s->connecting < HW_SIM_MAX_CONNECTING && !s->finishing) {
    hw_sim_conn *c = s->queue_head;
    s->queue_head = c->queue_next;
    if (!s->queue_head)
      s->queue_tail = NULL;
    c->queue_next = NULL;
    hw_sim_connect(c);
  }
}

static void hw_sim_enqueue(hw_sim_conn *c) {
  hw_sim *s = c->sim;
  c->state = HW_SC_QUEUED;
  c->queue_next = NULL;
  if (s->queue_tail)
    s->queue_tail->queue_next = c;
  else
    s->queue_head = c;
  s->queue_tail = c;
  hw_sim_dequeue(s);
}

static void hw_sim_on_retry(uv_timer_t *t) {
  hw_sim_conn *c = t->data;
  if (c->state == HW_SC_BACKOFF)
    hw_sim_enqueue(c);
  else if (c->state == HW_SC_LOGIN)
    hw_sim_conn_fail(c, "no answer to the login");
}

/* ---- sending ---- */

static void hw_sim_pump(hw_sim_conn *c) {
  hw_sim *s = c->sim;
  const hw_sim_config *cfg = s->cfg;
  int rc;
  if (c->state != HW_SC_READY)
    return;
  int64_t w = cfg->window;
  if (cfg->interval_ms == 0 && s->generating) {
    /* Flat out: keep the window full. */
    int64_t want = c->acked_k + w;
    if (c->limit && want > c->limit)
      want = c->limit;
    while (c->gen_k < want)
      if ((rc = hw_sim_generate(c)) < 0) {
        hw_sim_fatal(s, rc);
        return;
      }
  }
  if (c->sent_k >= c->gen_k || c->sent_k - c->acked_k >= w)
    return;
  uint32_t tick = (uint32_t)(hw_sim_now_us(s) / 100 + 1);
  while (c->sent_k < c->gen_k && c->sent_k - c->acked_k < w) {
    int64_t n = c->gen_k - c->sent_k;
    if (n > (int64_t)cfg->report_fixes)
      n = cfg->report_fixes;
    if (n > w - (c->sent_k - c->acked_k))
      n = w - (c->sent_k - c->acked_k);
    for (int64_t i = 0; i < n; i++) {
      int64_t k = c->sent_k + 1 + i;
      hw_sim_slot *slot = &c->ring[(size_t)k & (c->ring_cap - 1)];
      hw_sim_rec_unpack(&c->truck, k, &slot->rec, &s->scratch[i]);
      if (c->gen) /* scripts have gaps: the time is the script's, not start + k x step */
        s->scratch[i].ts_ms = hw_scn_fix_ts(c->gen->s, k);
      s->scratch[i].seq = (int64_t)c->seq_base + k;
      if (slot->first_sent) {
        s->res->resent++;
      } else {
        slot->first_sent = tick;
        s->res->sent++;
      }
    }
    if ((rc = cfg->proto->report(c, c->pstate, s->scratch, (size_t)n, &c->out)) < 0) {
      hw_sim_fatal(s, rc);
      return;
    }
    c->sent_k += n;
    if (c->hi_sent_k < c->sent_k)
      c->hi_sent_k = c->sent_k;
  }
  hw_sim_flush(c);
}

static void hw_sim_on_tick(uv_timer_t *t) {
  hw_sim_conn *c = t->data;
  hw_sim *s = c->sim;
  if (!s->generating || (c->limit && c->gen_k >= c->limit)) {
    uv_timer_stop(t);
    return;
  }
  int rc = hw_sim_generate(c);
  if (rc < 0) {
    hw_sim_fatal(s, rc);
    return;
  }
  hw_sim_pump(c);
}

/* ---- what the protocol reports ---- */

void hw_sim_login_ok(hw_sim_conn *c, uint64_t last_acked_seq) {
  hw_sim *s = c->sim;
  if (c->state != HW_SC_LOGIN)
    return;
  uv_timer_stop(&c->retry);
  c->state = HW_SC_READY;
  c->backoff_ms = HW_SIM_BACKOFF_MIN_MS;
  s->connected_now++;
  if (!c->based) {
    /* Sequence numbers only grow per terminal, across runs too: continue after the server's. */
    c->based = 1;
    c->seq_base = last_acked_seq;
    s->res->connected++;
    if (last_acked_seq)
      hw_debug("sim", c->id, "continuing after seq %llu", (unsigned long long)last_acked_seq);
    return;
  }
  s->res->reconnects++;
  /* The server may have made durable what we never saw acknowledged. */
  if (last_acked_seq > c->seq_base) {
    uint64_t k = last_acked_seq - c->seq_base;
    hw_sim_ack_upto(c, (int64_t)(k > (uint64_t)c->hi_sent_k ? (uint64_t)c->hi_sent_k : k));
  }
}

void hw_sim_login_refused(hw_sim_conn *c, const char *reason) {
  hw_sim *s = c->sim;
  if (c->state != HW_SC_LOGIN)
    return;
  long n = hw_sim_log_gate(s);
  if (n >= 0)
    hw_warn("sim", c->id, "login refused: %s; this truck stops%s", reason, hw_sim_left_out(n));
  c->refused = 1;
  s->res->refused++;
  s->abandoned += (uint64_t)(c->gen_k - c->acked_k);
  uv_timer_stop(&c->tick);
  if (!c->finished) {
    c->finished = 1;
    s->finished_trucks++;
  }
  hw_sim_close(c);
  hw_sim_check_done(s);
}

void hw_sim_acked(hw_sim_conn *c, uint64_t seq) {
  if (c->state != HW_SC_READY || seq <= c->seq_base)
    return;
  uint64_t k = seq - c->seq_base;
  if (k > (uint64_t)c->hi_sent_k) {
    long n = hw_sim_log_gate(c->sim);
    if (n >= 0)
      hw_warn("sim", c->id, "ack of seq %llu, above the highest sent %llu%s", (unsigned long long)seq,
              (unsigned long long)(c->seq_base + (uint64_t)c->hi_sent_k), hw_sim_left_out(n));
    k = (uint64_t)c->hi_sent_k;
  }
  hw_sim_ack_upto(c, (int64_t)k);
}

void hw_sim_fix_refused(hw_sim_conn *c, uint64_t seq, const char *reason) {
  c->sim->res->fixes_refused++;
  long n = hw_sim_log_gate(c->sim);
  if (n >= 0)
    hw_warn("sim", c->id, "server refused the fix of seq %llu: %s%s", (unsigned long long)seq,
            reason, hw_sim_left_out(n));
}

/* ---- run control ---- */

static void hw_sim_progress_line(hw_sim *s, int final) {
  const hw_sim_result *r = s->res;
  uint64_t now = hw_sim_now_us(s);
  double dt = (double)(now - s->prog_us) / 1e6;
  double rate = dt > 0 ? (double)(r->acked - s->prog_acked) / dt : 0;
  s->prog_us = now;
  s->prog_acked = r->acked;
  unsigned long long unacked = r->generated - r->acked;
  if (s->cfg->progress == 2) {
    fprintf(stderr, "\r\033[Ksim: %5.0fs connected %u/%u  sent %llu  acked %llu  unacked %llu  %.0f fixes/s%s",
            (double)now / 1e6, s->connected_now, s->cfg->trucks, (unsigned long long)r->sent,
            (unsigned long long)r->acked, unacked, rate, final ? "\n" : "");
    s->progress_shown = !final;
  } else if (s->cfg->progress == 1 && (final || now - s->plain_us >= 5000000)) {
    double pdt = (double)(now - s->plain_us) / 1e6;
    hw_info("sim", NULL, "t=%.0fs connected=%u/%u sent=%llu resent=%llu acked=%llu unacked=%llu rate_per_s=%.0f",
            (double)now / 1e6, s->connected_now, s->cfg->trucks, (unsigned long long)r->sent,
            (unsigned long long)r->resent, (unsigned long long)r->acked, unacked,
            pdt > 0 ? (double)(r->acked - s->plain_acked) / pdt : 0);
    s->plain_us = now;
    s->plain_acked = r->acked;
  }
}

static void hw_sim_on_progress(uv_timer_t *t) {
  hw_sim *s = t->data;
  const hw_sim_proto *p = s->cfg->proto;
  uint64_t now = hw_sim_now_us(s);
  /* Idle trucks (paced slowly, or waiting for acks) say they are alive. */
  for (uint32_t i = 0; i < s->cfg->trucks; i++) {
    hw_sim_conn *c = &s->conns[i];
    if (c->state != HW_SC_READY || now - c->last_write_us < HW_SIM_HEARTBEAT_US)
      continue;
    int rc = p->heartbeat(c, c->pstate, &c->out);
    if (rc < 0) {
      hw_sim_fatal(s, rc);
      return;
    }
    s->res->heartbeats++;
    c->last_write_us = now; /* even if a write is in flight: the heartbeat is queued behind it */
    hw_sim_flush(c);
  }
  hw_sim_progress_line(s, 0);
}

static void hw_sim_on_drain_deadline(uv_timer_t *t) { hw_sim_finish(t->data); }

static void hw_sim_start_drain(hw_sim *s) {
  s->generating = 0;
  s->draining = 1;
  uv_timer_stop(&s->deadline_timer);
  uv_timer_start(&s->deadline_timer, hw_sim_on_drain_deadline, HW_SIM_DRAIN_MS, 0);
  hw_sim_check_done(s);
}

static void hw_sim_on_deadline(uv_timer_t *t) {
  hw_sim *s = t->data;
  if (s->cfg->fixes) {
    s->res->timed_out = 1;
    if (s->cfg->progress == 2 && s->progress_shown)
      fputs("\n", stderr);
    hw_warn("sim", NULL, "timeout after %u s with %llu fixes unacknowledged", s->cfg->timeout_s,
            (unsigned long long)(s->res->generated - s->res->acked));
    hw_sim_finish(s);
  } else {
    hw_sim_start_drain(s); /* duration reached */
  }
}

static void hw_sim_on_signal(uv_signal_t *h, int signum) {
  hw_sim *s = h->data;
  if (s->draining) {
    hw_sim_finish(s);
    return;
  }
  s->res->interrupted = 1;
  if (s->cfg->progress == 2 && s->progress_shown)
    fputs("\n", stderr);
  hw_info("sim", NULL, "%s: no new fixes; waiting up to %d s for acks (again to stop now)",
            strsignal(signum), HW_SIM_DRAIN_MS / 1000);
  hw_sim_start_drain(s);
}

static void hw_sim_finish(hw_sim *s) {
  if (s->finishing)
    return;
  s->finishing = 1;
  s->generating = 0;
  s->res->seconds = (double)hw_sim_now_us(s) / 1e6;
  if (s->cfg->progress)
    hw_sim_progress_line(s, 1); /* before the connections close, so it shows them */
  uv_close((uv_handle_t *)&s->progress_timer, NULL);
  uv_close((uv_handle_t *)&s->deadline_timer, NULL);
  uv_close((uv_handle_t *)&s->linger_timer, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  s->queue_head = s->queue_tail = NULL;
  for (uint32_t i = 0; i < s->cfg->trucks; i++) {
    hw_sim_conn *c = &s->conns[i];
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_close((uv_handle_t *)&c->retry, NULL);
    if (c->tcp_open)
      hw_sim_close(c);
  }
}

int hw_sim_run(const hw_sim_config *cfg, hw_sim_result *res) {
  int rc;
  memset(res, 0, sizeof *res);
  hw_hist_init(&res->ack_latency_us);
  res->trucks = cfg->trucks;
  if (cfg->trucks == 0 || cfg->window == 0 || cfg->report_fixes == 0 ||
      cfg->report_fixes > HW_SIM_MAX_REPORT || cfg->report_fixes > cfg->proto->max_report_fixes ||
      (cfg->scripts && !cfg->fixes))
    return -EINVAL;
  hw_sim *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->cfg = cfg;
  s->res = res;
  s->rng = cfg->seed ^ 0x5151515151515151ull;
  s->conns = calloc(cfg->trucks, sizeof *s->conns);
  if (!s->conns) {
    free(s);
    return -ENOMEM;
  }
  if ((rc = uv_loop_init(&s->loop)) < 0) {
    free(s->conns);
    free(s);
    return rc;
  }
  /* A write to a connection the daemon just reset must not kill the simulator. */
  signal(SIGPIPE, SIG_IGN);

  uv_timer_init(&s->loop, &s->progress_timer);
  uv_timer_init(&s->loop, &s->deadline_timer);
  uv_timer_init(&s->loop, &s->linger_timer);
  s->linger_timer.data = s;
  uv_signal_init(&s->loop, &s->sigint);
  uv_signal_init(&s->loop, &s->sigterm);
  s->progress_timer.data = s->deadline_timer.data = s->sigint.data = s->sigterm.data = s;
  for (uint32_t i = 0; i < cfg->trucks; i++) {
    hw_sim_conn *c = &s->conns[i];
    c->sim = s;
    c->id = cfg->ids[i];
    c->token = cfg->tokens[i];
    c->backoff_ms = HW_SIM_BACKOFF_MIN_MS;
    c->connect_req.data = c->write_req.data = c;
    uv_timer_init(&s->loop, &c->tick);
    uv_timer_init(&s->loop, &c->retry);
    c->tick.data = c->retry.data = c;
    hw_sim_truck_init(&c->truck, cfg->seed, i + 1, cfg->start_ms, cfg->step_ms);
    c->limit = (int64_t)cfg->fixes;
    if (cfg->scripts && cfg->scripts[i].kind != HW_SCN_NORMAL) {
      if (!(c->gen = malloc(sizeof *c->gen))) {
        s->error = -ENOMEM;
        break;
      }
      hw_scn_gen_init(c->gen, &cfg->scripts[i], c->truck.odometer_m);
      c->limit = cfg->scripts[i].nfixes;
    }
    c->pstate = calloc(1, cfg->proto->state_size ? cfg->proto->state_size : 1);
    if (!c->pstate) {
      s->error = -ENOMEM;
      break;
    }
  }

  s->generating = 1;
  s->start_ns = uv_hrtime();
  if (s->error) {
    hw_sim_finish(s);
  } else {
    uv_signal_start(&s->sigint, hw_sim_on_signal, SIGINT);
    uv_signal_start(&s->sigterm, hw_sim_on_signal, SIGTERM);
    uv_timer_start(&s->progress_timer, hw_sim_on_progress, 1000, 1000);
    uv_timer_start(&s->deadline_timer, hw_sim_on_deadline,
                   cfg->fixes ? (uint64_t)cfg->timeout_s * 1000 : cfg->duration_ms, 0);
    for (uint32_t i = 0; i < cfg->trucks; i++) {
      /* Paced trucks drive from the start, connected or not, and keep what they cannot send
       * yet (seq numbers are assigned at sending, once the server said where to continue). */
      if (cfg->interval_ms)
        uv_timer_start(&s->conns[i].tick, hw_sim_on_tick, hw_sim_rand(&s->rng) % cfg->interval_ms,
                       cfg->interval_ms);
      hw_sim_enqueue(&s->conns[i]);
    }
  }
  uv_run(&s->loop, UV_RUN_DEFAULT);

  for (uint32_t i = 0; i < cfg->trucks; i++) {
    hw_sim_conn *c = &s->conns[i];
    if (c->pstate)
      cfg->proto->conn_free(c->pstate);
    free(c->pstate);
    free(c->gen);
    free(c->ring);
    free(c->out.data);
    free(c->busy.data);
  }
  if ((rc = uv_loop_close(&s->loop)) < 0)
    hw_warn("sim", NULL, "loop closed with handles open: %s", uv_strerror(rc));
  rc = s->error;
  free(s->conns);
  free(s);
  return rc;
}
