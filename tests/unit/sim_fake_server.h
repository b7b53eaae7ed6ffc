/* A tiny stand-in for the daemon, for testing the simulator: speaks the protobuf protocol on its
 * own loop in its own thread, keeps per terminal the highest contiguous seq "stored", acks after
 * every read, and
 * can misbehave on purpose (drop connections with or without storing, refuse a terminal, refuse
 * one fix alone in Ack.refused).
 * Header-only so a test and a throwaway benchmark can both include it. */
#ifndef HW_SIM_FAKE_SERVER_H
#define HW_SIM_FAKE_SERVER_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "protobuf/frame.h"
#include "haulwatch.pb-c.h"

#define FAKE_MAX_TERMS 4096

typedef struct fake_term {
  uint64_t stored;   /* highest seq stored; every seq up to it stored exactly once */
  uint64_t fixes;    /* fixes stored */
  uint64_t dups;     /* fixes received again after being stored */
} fake_term;

typedef struct fake_server fake_server;

typedef struct fake_conn {
  uv_tcp_t tcp;
  fake_server *srv;
  hw_frame_reader reader;
  fake_term *term;
  uint64_t pending_to;  /* fixes above term->stored received and not yet stored */
  int closing;
} fake_conn;

struct fake_server {
  /* behaviour, set before fake_server_start */
  uint32_t drop_every;      /* after every Nth report overall drop the connection (0: never) */
  uint64_t initial_stored;  /* terminals start with this seq stored, and say so in HelloResult */
  int refuse_index;         /* refuse the terminal with this numeric suffix (0: none) */
  const char *token;        /* the token every terminal must present */
  uint64_t refuse_seq;      /* refuse the fix of this seq of every terminal, alone (0: none) */
  /* results, read after fake_server_stop */
  fake_term terms[FAKE_MAX_TERMS];
  uint64_t hellos, reports, fixes, gaps, bad, drops, heartbeats, refusals;
  /* internals */
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t stop;
  pthread_t thread;
  int port;
  uint8_t readbuf[65536];
};

static void fake_write(fake_conn *c, const ProtobufCMessage *m);

static void fake_write_done(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void fake_write(fake_conn *c, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uv_write_t *w = malloc(sizeof *w + n + 10);
  uint8_t *p = (uint8_t *)(w + 1);
  size_t k = hw_varint_put(p, n);
  protobuf_c_message_pack(m, p + k);
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)(k + n));
  if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, fake_write_done) < 0)
    free(w);
}

static void fake_closed(uv_handle_t *h) {
  fake_conn *c = h->data;
  hw_frame_reader_free(&c->reader);
  free(c);
}

static void fake_close(fake_conn *c) {
  if (!c->closing) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, fake_closed);
  }
}

static void fake_store_and_ack(fake_conn *c, int send_ack) {
  if (c->pending_to > c->term->stored) {
    c->term->fixes += c->pending_to - c->term->stored;
    c->term->stored = c->pending_to;
  }
  if (send_ack) {
    Haulwatch__V1__Ack ack = HAULWATCH__V1__ACK__INIT;
    ack.seq = c->term->stored;
    Haulwatch__V1__ServerMessage m = HAULWATCH__V1__SERVER_MESSAGE__INIT;
    m.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK;
    m.ack = &ack;
    fake_write(c, &m.base);
  }
}

static int fake_frame(void *arg, const uint8_t *frame, size_t len) {
  fake_conn *c = arg;
  fake_server *s = c->srv;
  Haulwatch__V1__ClientMessage *m = haulwatch__v1__client_message__unpack(NULL, len, frame);
  if (!m) {
    s->bad++;
    return -EPROTO;
  }
  int rc = 0;
  if (m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO) {
    s->hellos++;
    const char *id = m->hello->terminal_id;
    size_t l = strlen(id);
    int idx = l >= 6 ? atoi(id + l - 6) : 0;
    Haulwatch__V1__HelloResult hr = HAULWATCH__V1__HELLO_RESULT__INIT;
    if (idx <= 0 || idx >= FAKE_MAX_TERMS || idx == s->refuse_index ||
        strcmp(m->hello->token, s->token) != 0) {
      hr.accepted = 0;
      hr.reason = "unknown terminal or wrong token";
    } else {
      c->term = &s->terms[idx];
      if (c->term->stored < s->initial_stored)
        c->term->stored = s->initial_stored;
      c->pending_to = c->term->stored;
      hr.accepted = 1;
      hr.last_acked_seq = c->term->stored;
    }
    Haulwatch__V1__ServerMessage out = HAULWATCH__V1__SERVER_MESSAGE__INIT;
    out.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT;
    out.hello_result = &hr;
    fake_write(c, &out.base);
  } else if (m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT && c->term) {
    s->reports++;
    for (size_t i = 0; i < m->report->n_fixes; i++) {
      uint64_t seq = m->report->fixes[i]->seq;
      s->fixes++;
      if (seq <= c->term->stored || seq <= c->pending_to) {
        if (seq <= c->term->stored)
          c->term->dups++;
      } else if (seq == c->pending_to + 1) {
        c->pending_to = seq;
        if (seq == s->refuse_seq) {
          /* As the daemon does: at once, with the highest seq acked so far, claiming nothing. */
          Haulwatch__V1__RefusedFix rf = HAULWATCH__V1__REFUSED_FIX__INIT;
          rf.seq = seq;
          rf.reason = HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE;
          Haulwatch__V1__RefusedFix *rp = &rf;
          Haulwatch__V1__Ack ack = HAULWATCH__V1__ACK__INIT;
          ack.seq = c->term->stored;
          ack.refused = &rp;
          ack.n_refused = 1;
          Haulwatch__V1__ServerMessage out = HAULWATCH__V1__SERVER_MESSAGE__INIT;
          out.msg_case = HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK;
          out.ack = &ack;
          fake_write(c, &out.base);
          s->refusals++;
        }
      } else {
        s->gaps++;
      }
    }
    if (s->drop_every && s->reports % s->drop_every == 0) {
      /* Alternate: lose the fixes, or store them and lose only the ack. */
      s->drops++;
      if (s->drops % 2 == 0)
        fake_store_and_ack(c, 0);
      fake_close(c);
      rc = -ECONNABORTED;
    }
  } else if (m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT) {
    s->heartbeats++;
  } else {
    s->bad++;
  }
  haulwatch__v1__client_message__free_unpacked(m, NULL);
  return rc;
}

static void fake_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)sz;
  fake_conn *c = h->data;
  *b = uv_buf_init((char *)c->srv->readbuf, sizeof c->srv->readbuf);
}

static void fake_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  fake_conn *c = st->data;
  if (n < 0) {
    fake_close(c);
    return;
  }
  if (n > 0 && hw_frame_feed(&c->reader, (const uint8_t *)b->base, (size_t)n, fake_frame, c) < 0)
    fake_close(c);
  /* Store and ack once per read, as the daemon does once per batch. */
  else if (n > 0 && c->term && c->pending_to > c->term->stored && !c->closing)
    fake_store_and_ack(c, 1);
}

static void fake_accept(uv_stream_t *l, int status) {
  fake_server *s = l->data;
  if (status < 0)
    return;
  fake_conn *c = calloc(1, sizeof *c);
  c->srv = s;
  hw_frame_reader_init(&c->reader, 1 << 20);
  uv_tcp_init(&s->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) == 0)
    uv_read_start((uv_stream_t *)&c->tcp, fake_alloc, fake_read);
  else
    fake_close(c);
}

static void fake_close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h))
    return;
  if (h->type == UV_TCP && h->data && h->data != arg)
    fake_close(h->data);
  else
    uv_close(h, NULL);
}

static void fake_stop_cb(uv_async_t *a) {
  fake_server *s = a->data;
  uv_walk(&s->loop, fake_close_walk, s);
}

static void *fake_thread(void *arg) {
  fake_server *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* Listens on 127.0.0.1 at a free port (s->port) and serves in a new thread. 0 or negative. */
static int fake_server_start(fake_server *s) {
  if (!s->token)
    s->token = "secret";
  int rc;
  if ((rc = uv_loop_init(&s->loop)) < 0)
    return rc;
  uv_tcp_init(&s->loop, &s->listener);
  s->listener.data = s;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&s->listener, 4096, fake_accept)) < 0)
    return rc;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
  s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_async_init(&s->loop, &s->stop, fake_stop_cb);
  s->stop.data = s;
  return pthread_create(&s->thread, NULL, fake_thread, s) ? -EAGAIN : 0;
}

static void fake_server_stop(fake_server *s) {
  uv_async_send(&s->stop);
  pthread_join(s->thread, NULL);
  uv_loop_close(&s->loop);
}

#endif
