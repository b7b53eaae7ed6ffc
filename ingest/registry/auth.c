#include "registry/auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/text.h"
#include "sinks/pg_async.h"
#include "base/token.h"

/* Look-ups handed to the connection at once: it runs them one after another, so two keep it busy.
 * The others wait here, where one whose asker went away (a terminal that timed out and
 * reconnected) is dropped before it costs a round trip: after a restart thousands of terminals
 * log in at once, and every stale look-up run would delay the live ones further. */
#define HW_AUTH_IN_FLIGHT 2
#define HW_AUTH_MAX_WAITING 50000

/* Column limits of auth_refusals (schema/005_jt808.sql). */
#define HW_REFUSAL_ID_MAX 64
#define HW_REFUSAL_PLATE_MAX 128
#define HW_REFUSAL_REMOTE_MAX 64
#define HW_REFUSAL_REASON_MAX 200

struct hw_auth {
  hw_pg_async *pg;
  hw_auth_req *wait_head, *wait_tail; /* owned FIFO of look-ups not yet handed to pg */
  uint32_t waiting;                   /* entries in the FIFO, cancelled ones included */
  uint32_t in_flight;                 /* look-ups handed to pg and not yet answered */
  int stopping;
  uint32_t refusals_in_flight;
  hw_auth_stats stats;
  uint64_t dropped_logged; /* refusals_dropped when last logged */
  void (*done_cb)(void *);
  void *done_arg;
};

typedef enum { HW_AUTH_PB = 0, HW_AUTH_JT808_CHECK, HW_AUTH_JT808_REGISTER } hw_auth_kind;

struct hw_auth_req {
  hw_auth *auth;
  hw_auth_req *next;          /* wait FIFO */
  hw_auth_kind kind;
  uint8_t cancelled;
  hw_auth_cb cb;              /* HW_AUTH_PB, HW_AUTH_JT808_CHECK */
  hw_auth_register_cb reg_cb; /* HW_AUTH_JT808_REGISTER */
  void *arg;
  uint8_t hash[HW_TOKEN_HASH_LEN];           /* of the token or code presented / issued */
  char terminal_id[HW_REFUSAL_ID_MAX + 1];
  char remote[HW_REFUSAL_REMOTE_MAX + 1];    /* "" = do not record refusals (hw_auth_check) */
  char plate[HW_REFUSAL_PLATE_MAX + 1];      /* claimed at registration */
  char code[HW_AUTH_JT808_CODE_LEN + 1];     /* issued at registration */
  /* Registration: the other parameters of the UPDATE, kept until it is sent. */
  uint16_t version, province, city;
  uint8_t plate_colour;
  char maker[16], model[32], device_id[32];
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

/* Copies at most max bytes of s into out (max + 1 bytes), not cutting a UTF-8 sequence. */
static void hw_auth_copy(char *out, size_t max, const char *s) {
  hw_utf8_truncate(out, max + 1, s ? s : "", s ? strlen(s) : 0);
}

static int hw_hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* bytea in hex output ("\x" + 64 hex digits) to a hash; 0 or -EINVAL. */
static int hw_auth_bytea_hash(const char *v, uint8_t out[HW_TOKEN_HASH_LEN]) {
  if (strlen(v) != 2 + 2 * HW_TOKEN_HASH_LEN)
    return -EINVAL;
  for (int i = 0; i < HW_TOKEN_HASH_LEN; i++) {
    int hi = hw_hexval(v[2 + 2 * i]), lo = hw_hexval(v[3 + 2 * i]);
    if (hi < 0 || lo < 0)
      return -EINVAL;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

/* ---- refusals ---- */

static void hw_auth_on_refusal_stored(void *arg, const PGresult *res) {
  hw_auth *a = arg;
  a->refusals_in_flight--;
  if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
    a->stats.refusals_recorded++;
  else if (res)
    hw_warn("auth", NULL, "cannot record a refusal: %s", PQresultErrorMessage(res));
}

void hw_auth_refusal(hw_auth *a, const char *protocol, const char *terminal_id,
                     const char *claimed_plate, const char *remote, const char *reason) {
  char id[HW_REFUSAL_ID_MAX + 1], plate[HW_REFUSAL_PLATE_MAX + 1];
  char addr[HW_REFUSAL_REMOTE_MAX + 1], why[HW_REFUSAL_REASON_MAX + 1];
  if (a->refusals_in_flight >= HW_AUTH_MAX_REFUSALS_IN_FLIGHT) {
    /* One line per 1000 dropped: the flood itself is what the operator needs to see. */
    if (a->stats.refusals_dropped++ - a->dropped_logged >= 1000 || a->dropped_logged == 0) {
      a->dropped_logged = a->stats.refusals_dropped;
      hw_warn("auth", terminal_id, "refusals arrive faster than they are recorded: %llu dropped so far",
              (unsigned long long)a->stats.refusals_dropped);
    }
    return;
  }
  hw_auth_copy(id, HW_REFUSAL_ID_MAX, terminal_id);
  hw_auth_copy(plate, HW_REFUSAL_PLATE_MAX, claimed_plate);
  hw_auth_copy(addr, HW_REFUSAL_REMOTE_MAX, remote);
  hw_auth_copy(why, HW_REFUSAL_REASON_MAX, reason);
  const char *params[5] = {protocol, terminal_id ? id : NULL, claimed_plate && *plate ? plate : NULL,
                           remote && *addr ? addr : NULL, why};
  int rc = hw_pg_async_query(a->pg,
                             "INSERT INTO auth_refusals (protocol, terminal_id, claimed_plate, "
                             "remote_addr, reason) VALUES ($1, $2, $3, $4, $5)",
                             5, params, hw_auth_on_refusal_stored, a);
  if (rc) {
    a->stats.refusals_dropped++;
    hw_warn("auth", terminal_id, "cannot record a refusal: %s", strerror(-rc));
    return;
  }
  a->refusals_in_flight++;
}

void hw_auth_get_stats(const hw_auth *a, hw_auth_stats *out) { *out = a->stats; }

/* ---- look-ups ---- */

static hw_auth_req *hw_auth_req_new(hw_auth *a, hw_auth_kind kind, const char *terminal_id,
                                    const char *remote, void *arg) {
  hw_auth_req *req = calloc(1, sizeof *req);
  if (!req)
    return NULL;
  req->auth = a;
  req->kind = kind;
  req->arg = arg;
  hw_auth_copy(req->terminal_id, HW_REFUSAL_ID_MAX, terminal_id);
  hw_auth_copy(req->remote, HW_REFUSAL_REMOTE_MAX, remote);
  return req;
}

/* A refusal decided here: logged, and recorded when the asker gave its address. */
static void hw_auth_refused(hw_auth_req *req, const char *protocol, const char *reason) {
  if (!req->remote[0]) {
    hw_info("auth", req->terminal_id, "refused: %s", reason);
    return;
  }
  hw_info("auth", req->terminal_id, "peer=%s refused: %s", req->remote, reason);
  hw_auth_refusal(req->auth, protocol, req->terminal_id, req->plate[0] ? req->plate : NULL,
                  req->remote, reason);
}

/* The stored hash in column 0 of res (or its absence) against req->hash: 0, -EACCES, -EAGAIN. */
static int hw_auth_compare(hw_auth_req *req, const PGresult *res, const char *protocol,
                           const char *what) {
  char why[96];
  if (!res)
    return -EAGAIN;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_warn("auth", req->terminal_id, "look-up failed: %s", PQresultErrorMessage(res));
    return -EAGAIN;
  }
  if (PQntuples(res) == 0) {
    hw_auth_refused(req, protocol, "unknown terminal");
    return -EACCES;
  }
  if (PQgetisnull(res, 0, 0)) {
    /* Only JT/T 808 codes can be absent: the terminal never registered. */
    hw_auth_refused(req, protocol, "terminal never registered");
    return -EACCES;
  }
  uint8_t stored[HW_TOKEN_HASH_LEN];
  if (hw_auth_bytea_hash(PQgetvalue(res, 0, 0), stored) == 0 &&
      hw_token_hash_equal(stored, req->hash))
    return 0;
  snprintf(why, sizeof why, "wrong %s", what);
  hw_auth_refused(req, protocol, why);
  return -EACCES;
}

static void hw_auth_on_result(void *arg, const PGresult *res);
static void hw_auth_on_registered(void *arg, const PGresult *res);

/* Hands req's query to the connection. */
static int hw_auth_send(hw_auth *a, hw_auth_req *req) {
  int rc;
  if (req->kind == HW_AUTH_JT808_REGISTER) {
    char bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1], version[8], province[8], city[8], colour[8];
    hw_token_hash_bytea(req->hash, bytea);
    snprintf(version, sizeof version, "%u", req->version);
    snprintf(province, sizeof province, "%u", req->province);
    snprintf(city, sizeof city, "%u", req->city);
    snprintf(colour, sizeof colour, "%u", req->plate_colour);
    const char *params[10] = {req->terminal_id, bytea, version, province, city,
                              req->maker[0] ? req->maker : NULL,
                              req->model[0] ? req->model : NULL,
                              req->device_id[0] ? req->device_id : NULL, colour,
                              req->plate[0] ? req->plate : NULL};
    rc = hw_pg_async_query(a->pg,
                           "UPDATE terminals SET jt808_auth_hash = $2, jt808_registered_at = now(), "
                           "jt808_version = $3, jt808_province = $4, jt808_city = $5, "
                           "jt808_maker = $6, jt808_model = $7, jt808_device_id = $8, "
                           "jt808_plate_colour = $9, jt808_plate = $10 "
                           "WHERE terminal_id = $1 RETURNING 1",
                           10, params, hw_auth_on_registered, req);
  } else {
    const char *params[1] = {req->terminal_id};
    rc = hw_pg_async_query(a->pg,
                           req->kind == HW_AUTH_PB
                               ? "SELECT token_hash FROM terminals WHERE terminal_id = $1"
                               : "SELECT jt808_auth_hash FROM terminals WHERE terminal_id = $1",
                           1, params, hw_auth_on_result, req);
  }
  if (rc == 0)
    a->in_flight++;
  return rc;
}

/* Takes ownership of req: sent now if the connection has room, else queued. On failure req is
 * freed and no callback runs. */
static int hw_auth_submit(hw_auth *a, hw_auth_req *req, hw_auth_req **out) {
  int rc = 0;
  if (a->stopping)
    rc = -ESHUTDOWN;
  else if (a->in_flight < HW_AUTH_IN_FLIGHT && !a->wait_head)
    rc = hw_auth_send(a, req);
  else if (a->waiting >= HW_AUTH_MAX_WAITING)
    rc = -EBUSY;
  else {
    req->next = NULL;
    if (a->wait_tail)
      a->wait_tail->next = req;
    else
      a->wait_head = req;
    a->wait_tail = req;
    a->waiting++;
  }
  if (rc) {
    sodium_memzero(req->code, sizeof req->code);
    free(req);
    return rc;
  }
  *out = req;
  return 0;
}

static hw_auth_req *hw_auth_pop(hw_auth *a) {
  hw_auth_req *req = a->wait_head;
  if (req) {
    a->wait_head = req->next;
    if (!a->wait_head)
      a->wait_tail = NULL;
    a->waiting--;
  }
  return req;
}

/* Answers req without a database: -EAGAIN (the asker says nothing to its client and closes). */
static void hw_auth_fail(hw_auth_req *req) {
  if (!req->cancelled) {
    if (req->kind == HW_AUTH_JT808_REGISTER)
      req->reg_cb(req->arg, -EAGAIN, NULL);
    else
      req->cb(req->arg, -EAGAIN);
  }
  sodium_memzero(req->code, sizeof req->code);
  free(req);
}

/* A look-up finished: send the next ones that still have an asker. Runs in a connection
 * callback, so answering a request here is safe (never inside the asker's own call). */
static void hw_auth_pump(hw_auth *a) {
  a->in_flight--;
  while (!a->stopping && a->in_flight < HW_AUTH_IN_FLIGHT) {
    hw_auth_req *req = hw_auth_pop(a);
    if (!req)
      break;
    if (req->cancelled) {
      free(req);
      continue;
    }
    if (hw_auth_send(a, req))
      hw_auth_fail(req);
  }
}

static void hw_auth_on_result(void *arg, const PGresult *res) {
  hw_auth_req *req = arg;
  hw_auth *a = req->auth;
  int result = req->kind == HW_AUTH_PB ? hw_auth_compare(req, res, "pb", "token")
                                       : hw_auth_compare(req, res, "jt808", "auth code");
  if (!req->cancelled)
    req->cb(req->arg, result);
  free(req);
  hw_auth_pump(a);
}

int hw_auth_check_from(hw_auth *a, const char *remote, const char *terminal_id, const char *token,
                       size_t token_len, hw_auth_cb cb, void *arg, hw_auth_req **out) {
  hw_auth_req *req = hw_auth_req_new(a, HW_AUTH_PB, terminal_id, remote, arg);
  if (!req)
    return -ENOMEM;
  req->cb = cb;
  hw_token_hash(token, token_len, req->hash);
  return hw_auth_submit(a, req, out);
}

int hw_auth_check(hw_auth *a, const char *terminal_id, const char *token, size_t token_len,
                  hw_auth_cb cb, void *arg, hw_auth_req **out) {
  return hw_auth_check_from(a, NULL, terminal_id, token, token_len, cb, arg, out);
}

int hw_auth_jt808_check(hw_auth *a, const char *terminal_id, const char *remote,
                        const uint8_t *code, size_t code_len, hw_auth_cb cb, void *arg,
                        hw_auth_req **out) {
  hw_auth_req *req = hw_auth_req_new(a, HW_AUTH_JT808_CHECK, terminal_id, remote, arg);
  if (!req)
    return -ENOMEM;
  req->cb = cb;
  hw_token_hash((const char *)code, code_len, req->hash);
  return hw_auth_submit(a, req, out);
}

static void hw_auth_on_registered(void *arg, const PGresult *res) {
  hw_auth_req *req = arg;
  hw_auth *a = req->auth;
  int result = -EAGAIN;
  if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
    if (PQntuples(res) == 1) {
      result = 0;
      hw_info("auth", req->terminal_id, "peer=%s registered (plate '%s')", req->remote, req->plate);
    } else {
      result = -ENOENT;
      hw_auth_refused(req, "jt808", "registration of an unknown terminal");
    }
  } else if (res) {
    hw_warn("auth", req->terminal_id, "registration failed: %s", PQresultErrorMessage(res));
  }
  if (!req->cancelled)
    req->reg_cb(req->arg, result, result == 0 ? req->code : NULL);
  sodium_memzero(req->code, sizeof req->code);
  free(req);
  hw_auth_pump(a);
}

int hw_auth_jt808_register(hw_auth *a, const hw_auth_jt808_reg *reg, hw_auth_register_cb cb,
                           void *arg, hw_auth_req **out) {
  if (sodium_init() < 0)
    return -EIO;
  hw_auth_req *req = hw_auth_req_new(a, HW_AUTH_JT808_REGISTER, reg->terminal_id, reg->remote, arg);
  if (!req)
    return -ENOMEM;
  req->reg_cb = cb;
  hw_auth_copy(req->plate, HW_REFUSAL_PLATE_MAX, reg->plate);
  uint8_t raw[HW_AUTH_JT808_CODE_LEN / 2];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(req->code, sizeof req->code, raw, sizeof raw);
  hw_token_hash(req->code, HW_AUTH_JT808_CODE_LEN, req->hash);
  req->version = reg->version;
  req->province = reg->province;
  req->city = reg->city;
  req->plate_colour = reg->plate_colour;
  hw_auth_copy(req->maker, sizeof req->maker - 1, reg->maker);
  hw_auth_copy(req->model, sizeof req->model - 1, reg->model);
  hw_auth_copy(req->device_id, sizeof req->device_id - 1, reg->device_id);
  return hw_auth_submit(a, req, out);
}

void hw_auth_cancel(hw_auth_req *req) { req->cancelled = 1; }

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
  a->stopping = 1;
  hw_auth_req *req;
  while ((req = hw_auth_pop(a)))
    hw_auth_fail(req);
  hw_pg_async_stop(a->pg, hw_auth_on_stopped, a);
}
