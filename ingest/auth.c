#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_async.h"
#include "token.h"

struct hw_auth {
  hw_pg_async *pg;
  void (*done_cb)(void *);
  void *done_arg;
};

struct hw_auth_req {
  hw_auth_cb cb; /* NULL once cancelled */
  void *arg;
  uint8_t hash[HW_TOKEN_HASH_LEN];
  char terminal_id[40];
};

int hw_auth_start(hw_auth **out, uv_loop_t *loop, const char *conninfo) {
  hw_auth *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  int rc = hw_pg_async_start(&a->pg, loop, conninfo, "auth");
  if (rc) {
    free(a);
    return rc;
  }
  *out = a;
  return 0;
}

static int hw_hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

static void hw_auth_on_result(void *arg, const PGresult *res) {
  hw_auth_req *req = arg;
  int result = -EAGAIN;
  if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
    result = -EACCES;
    if (PQntuples(res) == 0) {
      hw_info("auth", req->terminal_id, "refused: unknown terminal");
    } else {
      /* bytea in hex output: "\x" + 64 hex digits */
      const char *v = PQgetvalue(res, 0, 0);
      uint8_t stored[HW_TOKEN_HASH_LEN];
      int ok = strlen(v) == 2 + 2 * HW_TOKEN_HASH_LEN;
      for (int i = 0; ok && i < HW_TOKEN_HASH_LEN; i++) {
        int hi = hw_hexval(v[2 + 2 * i]), lo = hw_hexval(v[3 + 2 * i]);
        ok = hi >= 0 && lo >= 0;
        stored[i] = (uint8_t)(hi << 4 | lo);
      }
      if (ok && hw_token_hash_equal(stored, req->hash))
        result = 0;
      else
        hw_info("auth", req->terminal_id, "refused: wrong token");
    }
  } else if (res) {
    hw_warn("auth", req->terminal_id, "look-up failed: %s", PQresultErrorMessage(res));
  }
  if (req->cb)
    req->cb(req->arg, result);
  free(req);
}

int hw_auth_check(hw_auth *a, const char *terminal_id, const char *token, size_t token_len,
                  hw_auth_cb cb, void *arg, hw_auth_req **out) {
  hw_auth_req *req = calloc(1, sizeof *req);
  if (!req)
    return -ENOMEM;
  req->cb = cb;
  req->arg = arg;
  snprintf(req->terminal_id, sizeof req->terminal_id, "%s", terminal_id);
  hw_token_hash(token, token_len, req->hash);
  const char *params[1] = {req->terminal_id};
  int rc = hw_pg_async_query(a->pg, "SELECT token_hash FROM terminals WHERE terminal_id = $1", 1,
                             params, hw_auth_on_result, req);
  if (rc) {
    free(req);
    return rc;
  }
  *out = req;
  return 0;
}

void hw_auth_cancel(hw_auth_req *req) { req->cb = NULL; }

static void hw_auth_on_stopped(void *arg) {
  hw_auth *a = arg;
  void (*cb)(void *) = a->done_cb;
  void *cb_arg = a->done_arg;
  free(a);
  if (cb)
    cb(cb_arg);
}

void hw_auth_stop(hw_auth *a, void (*done_cb)(void *arg), void *arg) {
  a->done_cb = done_cb;
  a->done_arg = arg;
  hw_pg_async_stop(a->pg, hw_auth_on_stopped, a);
}
