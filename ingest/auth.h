/* Terminal authentication against the terminals table, without blocking the loop. Unknown
 * terminal and wrong token look the same to the client; the log tells them apart. */
#ifndef HW_AUTH_H
#define HW_AUTH_H

#include <uv.h>

#include "common.h"

typedef struct hw_auth hw_auth;
typedef struct hw_auth_req hw_auth_req;

/* result: 0 accepted, -EACCES unknown terminal or wrong token, -EAGAIN database unavailable. */
typedef void (*hw_auth_cb)(void *arg, int result);

int hw_auth_start(hw_auth **out, uv_loop_t *loop, const char *conninfo) HW_MUST_CHECK;

/* Starts a check; *req identifies it until cb has run. terminal_id and token are copied. */
int hw_auth_check(hw_auth *a, const char *terminal_id, const char *token, size_t token_len,
                  hw_auth_cb cb, void *arg, hw_auth_req **req) HW_MUST_CHECK;

/* The asker went away: cb will not be called for req. */
void hw_auth_cancel(hw_auth_req *req);

void hw_auth_stop(hw_auth *a, void (*done_cb)(void *arg), void *arg);

#endif
