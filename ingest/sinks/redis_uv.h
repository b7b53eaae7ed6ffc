/* hiredis 0.14.1 async context <-> libuv loop.
 *
 * Why not hiredis' own adapters/libuv.h: it returns early when libuv reports a poll error, so a
 * refused or reset connection never reaches hiredis (no connect callback, no disconnect callback,
 * pending replies wait forever). This adapter hands the watched events to hiredis on an error, so
 * hiredis does the read/write itself, sees the socket error and tears the context down normally.
 *
 * Timeouts are not handled here (0.14.1 has no redisAsyncSetTimeout): the owner runs a uv_timer
 * and calls redisAsyncFree. */
#ifndef HW_REDIS_UV_H
#define HW_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

#include "base/common.h"

/* Attaches ac (freshly created, not yet attached, ac->err == 0) to loop: one uv_poll_t on its fd.
 * Call before redisAsyncSetConnectCallback, which already asks for the first write event.
 * When hiredis frees the context the poll handle is closed; closed_cb(arg) (may be NULL) runs from
 * its close callback, after which nothing of the adapter is left on the loop. The adapter never
 * touches ac once hiredis has signalled cleanup. Returns 0, -EINVAL (already attached),
 * -ENOMEM, or a libuv error from uv_poll_init; on error ac is left unattached (free it yourself). */
int hw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, void (*closed_cb)(void *arg),
                       void *arg) HW_MUST_CHECK;

#endif
