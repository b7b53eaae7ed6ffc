/* The hiredis<->libuv adapter: errors reported by the poll handle must reach hiredis (the hiredis
 * 0.14.1 adapter drops them, so a refused connect never calls back). A fake server on the same
 * loop answers PING or resets the connection; no Redis is needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sinks/redis_uv.h"

typedef enum { SRV_PONG, SRV_RESET } srv_mode;

typedef struct tctx {
  uv_loop_t loop;
  uv_tcp_t server;
  uv_tcp_t peer;      /* the accepted connection */
  int peer_open;
  srv_mode mode;
  uv_timer_t guard;   /* fails the test instead of hanging when a callback never comes */
  int guard_fired;

  int connect_calls, connect_status;
  int disconnect_calls, disconnect_status;
  int reply_calls, reply_null;
  char reply_str[32];
  int closed_calls;
} tctx;

static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd); /* bound, never listened: connecting there is refused */
  return ntohs(a.sin_port);
}

static void on_guard(uv_timer_t *t) {
  tctx *c = t->data;
  c->guard_fired = 1;
  uv_stop(&c->loop);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  tctx *c = ac->data;
  c->connect_calls++;
  c->connect_status = status;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  tctx *c = ac->data;
  c->disconnect_calls++;
  c->disconnect_status = status;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  tctx *c = privdata;
  redisReply *r = reply;
  c->reply_calls++;
  if (!r) {
    c->reply_null++;
    return;
  }
  if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING)
    snprintf(c->reply_str, sizeof c->reply_str, "%s", r->str);
}

static void on_closed(void *arg) {
  tctx *c = arg;
  c->closed_calls++;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char mem[4096];
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(mem, sizeof mem);
}

static void on_peer_closed(uv_handle_t *h) {
  tctx *c = h->data;
  c->peer_open = 0;
}

static void on_pong_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  tctx *c = s->data;
  (void)buf;
  if (n == 0)
    return;
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_peer_closed);
    return;
  }
  if (c->mode == SRV_RESET) {
    /* Linger 0: close sends RST, which epoll reports as EPOLLERR on the client. */
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)s, &fd), 0);
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    uv_close((uv_handle_t *)s, on_peer_closed);
    return;
  }
  uv_write_t *w = malloc(sizeof *w);
  assert_non_null(w);
  static char pong[] = "+PONG\r\n";
  uv_buf_t b = uv_buf_init(pong, sizeof pong - 1);
  assert_int_equal(uv_write(w, s, &b, 1, on_pong_written), 0);
}

static void on_accept(uv_stream_t *server, int status) {
  tctx *c = server->data;
  assert_int_equal(status, 0);
  assert_int_equal(uv_tcp_init(&c->loop, &c->peer), 0);
  c->peer.data = c;
  c->peer_open = 1;
  assert_int_equal(uv_accept(server, (uv_stream_t *)&c->peer), 0);
  assert_int_equal(uv_read_start((uv_stream_t *)&c->peer, on_alloc, on_peer_read), 0);
}

static int start_server(tctx *c, srv_mode mode) {
  struct sockaddr_in a;
  c->mode = mode;
  assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
  assert_int_equal(uv_tcp_init(&c->loop, &c->server), 0);
  c->server.data = c;
  assert_int_equal(uv_tcp_bind(&c->server, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&c->server, 4, on_accept), 0);
  int len = sizeof a;
  assert_int_equal(uv_tcp_getsockname(&c->server, (struct sockaddr *)&a, &len), 0);
  return ntohs(a.sin_port);
}

static void setup_loop(tctx *c) {
  memset(c, 0, sizeof *c);
  assert_int_equal(uv_loop_init(&c->loop), 0);
  assert_int_equal(uv_timer_init(&c->loop, &c->guard), 0);
  c->guard.data = c;
  assert_int_equal(uv_timer_start(&c->guard, on_guard, 5000, 0), 0);
}

static redisAsyncContext *connect_to(tctx *c, int port) {
  redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
  assert_non_null(ac);
  assert_int_equal(ac->err, 0); /* loopback connect is asynchronous: the error must come later */
  ac->data = c;
  assert_int_equal(hw_redis_uv_attach(ac, &c->loop, on_closed, c), 0);
  assert_int_equal(redisAsyncSetConnectCallback(ac, on_connect), REDIS_OK);
  assert_int_equal(redisAsyncSetDisconnectCallback(ac, on_disconnect), REDIS_OK);
  assert_int_equal(redisAsyncCommand(ac, on_reply, c, "PING"), REDIS_OK);
  return ac;
}

static void close_all(tctx *c) {
  if (!uv_is_closing((uv_handle_t *)&c->guard))
    uv_close((uv_handle_t *)&c->guard, NULL);
  if (c->server.type == UV_TCP && !uv_is_closing((uv_handle_t *)&c->server))
    uv_close((uv_handle_t *)&c->server, NULL);
  if (c->peer_open && !uv_is_closing((uv_handle_t *)&c->peer))
    uv_close((uv_handle_t *)&c->peer, on_peer_closed);
  assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
  /* A poll handle the adapter forgot to close would make this UV_EBUSY. */
  assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* Runs until the adapter's poll handle is closed (context freed) or the guard fires. */
static void run_until_closed(tctx *c) {
  while (!c->closed_calls && !c->guard_fired)
    uv_run(&c->loop, UV_RUN_ONCE);
}

static void test_refused_connect_calls_back(void **state) {
  (void)state;
  tctx c;
  setup_loop(&c);
  (void)connect_to(&c, closed_port());
  run_until_closed(&c);

  assert_false(c.guard_fired);
  assert_int_equal(c.connect_calls, 1);
  assert_int_equal(c.connect_status, REDIS_ERR);
  assert_int_equal(c.reply_calls, 1); /* the queued PING is answered with NULL */
  assert_int_equal(c.reply_null, 1);
  assert_int_equal(c.disconnect_calls, 0); /* never connected: hiredis reports via connect cb */
  assert_int_equal(c.closed_calls, 1);
  close_all(&c);
}

static void test_reset_calls_disconnect(void **state) {
  (void)state;
  tctx c;
  setup_loop(&c);
  int port = start_server(&c, SRV_RESET);
  (void)connect_to(&c, port);
  run_until_closed(&c);

  assert_false(c.guard_fired);
  assert_int_equal(c.connect_calls, 1);
  assert_int_equal(c.connect_status, REDIS_OK);
  assert_int_equal(c.reply_null, 1);
  assert_int_equal(c.disconnect_calls, 1);
  assert_int_equal(c.disconnect_status, REDIS_ERR);
  close_all(&c);
}

static void test_reply_then_free(void **state) {
  (void)state;
  tctx c;
  setup_loop(&c);
  int port = start_server(&c, SRV_PONG);
  redisAsyncContext *ac = connect_to(&c, port);
  while (!c.reply_calls && !c.guard_fired)
    uv_run(&c.loop, UV_RUN_ONCE);
  assert_false(c.guard_fired);
  assert_int_equal(c.reply_null, 0);
  assert_string_equal(c.reply_str, "PONG");
  assert_int_equal(c.closed_calls, 0);

  redisAsyncFree(ac); /* outside any hiredis callback: freed now, handle closes on the loop */
  assert_int_equal(c.disconnect_calls, 1);
  assert_int_equal(c.disconnect_status, REDIS_OK);
  run_until_closed(&c);
  assert_int_equal(c.closed_calls, 1);
  close_all(&c);
}

static void test_attach_twice_rejected(void **state) {
  (void)state;
  tctx c;
  setup_loop(&c);
  int port = start_server(&c, SRV_PONG);
  redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
  assert_non_null(ac);
  assert_int_equal(hw_redis_uv_attach(ac, &c.loop, on_closed, &c), 0);
  assert_int_equal(hw_redis_uv_attach(ac, &c.loop, on_closed, &c), -EINVAL);
  redisAsyncFree(ac);
  run_until_closed(&c);
  assert_int_equal(c.closed_calls, 1);
  close_all(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refused_connect_calls_back),
      cmocka_unit_test(test_reset_calls_disconnect),
      cmocka_unit_test(test_reply_then_free),
      cmocka_unit_test(test_attach_twice_rejected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
