#include "sinks/redis_uv.h"

#include <stdlib.h>

typedef struct hw_redis_uv {
  uv_poll_t poll;
  /* The context we serve, or NULL once hiredis has called cleanup: it is being (or has been)
   * freed, and only the poll handle's close is left to do. */
  redisAsyncContext *ac;
  int events; /* UV_READABLE | UV_WRITABLE as hiredis last asked */
  void (*closed_cb)(void *arg);
  void *arg;
} hw_redis_uv;

static void hw_redis_uv_update(hw_redis_uv *p);

static void hw_redis_uv_on_poll(uv_poll_t *handle, int status, int events) {
  hw_redis_uv *p = handle->data;

  /* On a poll error (EPOLLERR: refused connect, reset) libuv has already stopped the handle and
   * passes no events. Hand hiredis what it was waiting for: its read/write then fails with the
   * real socket error (SO_ERROR, ECONNRESET) and it runs its connect/disconnect callbacks. */
  if (status < 0)
    events = p->events;

  /* Either call may free the context; cleanup then clears p->ac (p itself lives until close). */
  if (p->ac && (events & UV_READABLE))
    redisAsyncHandleRead(p->ac);
  if (p->ac && (events & UV_WRITABLE))
    redisAsyncHandleWrite(p->ac);

  /* The context survived the error (hiredis found nothing wrong yet): libuv stopped the handle,
   * so watch again or we would never hear from this socket. */
  if (status < 0 && p->ac)
    hw_redis_uv_update(p);
}

static void hw_redis_uv_update(hw_redis_uv *p) {
  if (uv_is_closing((uv_handle_t *)&p->poll))
    return;
  /* uv_poll_start/stop only fail on a closing handle or a bad fd; in the latter case the next
   * read/write hiredis does reports the error, so there is nothing more useful to do here. */
  if (p->events)
    (void)uv_poll_start(&p->poll, p->events, hw_redis_uv_on_poll);
  else
    (void)uv_poll_stop(&p->poll);
}

static void hw_redis_uv_add_read(void *privdata) {
  hw_redis_uv *p = privdata;
  if (!(p->events & UV_READABLE)) {
    p->events |= UV_READABLE;
    hw_redis_uv_update(p);
  }
}

static void hw_redis_uv_del_read(void *privdata) {
  hw_redis_uv *p = privdata;
  if (p->events & UV_READABLE) {
    p->events &= ~UV_READABLE;
    hw_redis_uv_update(p);
  }
}

static void hw_redis_uv_add_write(void *privdata) {
  hw_redis_uv *p = privdata;
  if (!(p->events & UV_WRITABLE)) {
    p->events |= UV_WRITABLE;
    hw_redis_uv_update(p);
  }
}

static void hw_redis_uv_del_write(void *privdata) {
  hw_redis_uv *p = privdata;
  if (p->events & UV_WRITABLE) {
    p->events &= ~UV_WRITABLE;
    hw_redis_uv_update(p);
  }
}

static void hw_redis_uv_on_close(uv_handle_t *handle) {
  hw_redis_uv *p = handle->data;
  void (*cb)(void *) = p->closed_cb;
  void *arg = p->arg;
  free(p);
  if (cb)
    cb(arg);
}

/* Called by hiredis from __redisAsyncFree; the context is gone right after, so forget it now. */
static void hw_redis_uv_cleanup(void *privdata) {
  hw_redis_uv *p = privdata;
  p->ac = NULL;
  p->events = 0;
  if (!uv_is_closing((uv_handle_t *)&p->poll))
    uv_close((uv_handle_t *)&p->poll, hw_redis_uv_on_close);
}

int hw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, void (*closed_cb)(void *arg),
                       void *arg) {
  if (ac->ev.data)
    return -EINVAL;
  hw_redis_uv *p = calloc(1, sizeof *p); /* owned by the poll handle, freed in its close cb */
  if (!p)
    return -ENOMEM;
  int rc = uv_poll_init(loop, &p->poll, ac->c.fd);
  if (rc < 0) {
    free(p); /* uv_poll_init failed: the handle is not registered with the loop */
    return rc;
  }
  p->poll.data = p;
  p->ac = ac;
  p->closed_cb = closed_cb;
  p->arg = arg;

  ac->ev.data = p;
  ac->ev.addRead = hw_redis_uv_add_read;
  ac->ev.delRead = hw_redis_uv_del_read;
  ac->ev.addWrite = hw_redis_uv_add_write;
  ac->ev.delWrite = hw_redis_uv_del_write;
  ac->ev.cleanup = hw_redis_uv_cleanup;
  return 0;
}
