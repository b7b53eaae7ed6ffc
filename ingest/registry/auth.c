#include "registry/auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "registry/refusals.h"
#include "sinks/pg_async.h"
#include "base/token.h"

/* Look-ups handed to the connection at once: it runs them one after another, so two keep it busy.
 * The others wait here, where one whose asker went away (a terminal that timed out and
 * reconnected) is dropped before it costs a round trip: after a restart thousands of terminals
 * log in at once, and every stale look-up run would delay the live ones further. */
#define HW_AUTH_IN_FLIGHT 2
#define HW_AUTH_MAX_WAITING 50000

struct hw_auth {
  hw_pg_async *pg;
  hw_auth_req *wait_head, *wait_tail; /* owned FIFO of look-ups not yet handed to pg */
  uint32_t waiting;                   /* entries in the FIFO, cancelled ones included */
  uint32_t in_flight;                 /* look-ups handed to pg and not yet answered */
  int stopping;
  hw_refusals *refusals; /* owned; writes through pg */
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

int hw_auth_start(hw_auth **out, uv_loop_t *loop, const char *conninfo,
                  uint32_t refusal_retention_days) {
  hw_auth *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  int rc = hw_pg_async_start(&a->pg, loop, conninfo, "auth");
  if (rc)
    goto fail;
  if ((rc = hw_refusals_start(&a->refusals, loop, a->pg, refusal_retention_days)))
    goto fail_pg;
  *out = a;
  return 0;
fail_pg:
  hw_pg_async_stop(a->pg, NULL, NULL);
fail:
  free(a);
  return rc;
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

void hw_auth_refusal(hw_auth *a, const char *protocol, const char *terminal_id,
                     const char *claimed_plate, const char *remote, const char *reason) {
  hw_refusals_add(a->refusals, protocol, terminal_id, claimed_plate, remote, reason);
}

void hw_auth_get_stats(const hw_auth *a, hw_auth_stats *out) {
  hw_refusals_stats rs;
  hw_refusals_get_stats(a->refusals, &rs);
  out->refusals_recorded = rs.recorded;
  out->refusals_dropped = rs.dropped;
}

/* ---- look-ups ---- */

static hw_auth_req *hw_auth_req_new(hw_auth *a, hw_auth_kind kind, const char *terminal_id,
                                    const char *remote, void *arg) {
  hw_auth_req *req = calloc(1, sizeof *req);
  if (!req)
    return NULL;
  req->auth = a;
  req->kind = kind;
  req->arg = arg;
  hw_refusal_copy(req->terminal_id, HW_REFUSAL_ID_MAX, terminal_id);
  hw_refusal_copy(req->remote, HW_REFUSAL_REMOTE_MAX, remote);
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

/* A registration decided and, when accepted, applied in one statement, so that nothing is
 * changed by a refused one and two daemons cannot both hand out a code (the terminal's row is
 * locked first). The order of the cases is the policy (README, "JT/T 808 terminals"):
 *   1  the claimed plate (or VIN) is bound to another terminal: in vehicles, or provisioned;
 *   0  the device id is the provisioned one, and the plate the expected one if there is one
 *      (provisioned, else the plate of the vehicle bound to this terminal);
 *   0  an operator reset is pending (consumed by this registration);
 *   3  the terminal already holds an auth code;
 *   4  a device id was provisioned and this is another;
 *   2  a plate is expected and this is another;
 *   0  otherwise (a first registration of a terminal provisioned without details).
 * No row: the terminal is not provisioned. Columns: result, how it was decided, rows updated,
 * resets consumed. */
static const char hw_auth_register_sql[] =
    "WITH t AS ("
    " SELECT jt808_auth_hash IS NOT NULL AS has_code, provisioned_device_id AS pdev,"
    "  coalesce(provisioned_plate,"
    "   (SELECT v.plate FROM vehicles v WHERE v.terminal_id = $1::text LIMIT 1)) AS pplate,"
    "  (SELECT v.vin FROM vehicles v WHERE v.terminal_id = $1::text LIMIT 1) AS pvin,"
    "  EXISTS (SELECT 1 FROM terminal_resets x WHERE x.terminal_id = $1::text"
    "          AND x.used_at IS NULL) AS reset"
    " FROM terminals WHERE terminal_id = $1::text FOR UPDATE),"
    "d AS ("
    " SELECT CASE"
    "  WHEN $10::text IS NOT NULL AND ("
    "   EXISTS (SELECT 1 FROM vehicles v WHERE (v.plate = $10::text OR v.vin = $10::text)"
    "           AND v.terminal_id <> $1::text)"
    "   OR EXISTS (SELECT 1 FROM terminals o WHERE o.provisioned_plate = $10::text"
    "              AND o.terminal_id <> $1::text)) THEN 1"
    "  WHEN t.pdev = $8::text AND (t.pplate IS NULL OR $10::text IN (t.pplate, t.pvin)) THEN 0"
    "  WHEN t.reset THEN 0"
    "  WHEN t.has_code THEN 3"
    "  WHEN t.pdev IS NOT NULL AND t.pdev IS DISTINCT FROM $8::text THEN 4"
    "  WHEN t.pplate IS NOT NULL AND $10::text IS DISTINCT FROM t.pplate"
    "   AND $10::text IS DISTINCT FROM t.pvin THEN 2"
    "  ELSE 0 END AS result,"
    " CASE WHEN t.pdev = $8::text AND (t.pplate IS NULL OR $10::text IN (t.pplate, t.pvin))"
    "  THEN 'matches provisioning'"
    "  WHEN t.reset THEN 'operator reset' ELSE 'first registration' END AS how"
    " FROM t),"
    "u AS ("
    " UPDATE terminals SET jt808_auth_hash = $2::bytea, jt808_registered_at = now(),"
    "  jt808_version = $3::smallint, jt808_province = $4::int, jt808_city = $5::int,"
    "  jt808_maker = $6::text, jt808_model = $7::text, jt808_device_id = $8::text,"
    "  jt808_plate_colour = $9::smallint, jt808_plate = $10::text"
    " FROM d WHERE terminal_id = $1::text AND d.result = 0 RETURNING 1),"
    "x AS ("
    " UPDATE terminal_resets SET used_at = now(), used_by = $11::text"
    " FROM d WHERE terminal_id = $1::text AND used_at IS NULL AND d.result = 0 RETURNING 1)"
    "SELECT d.result, d.how, (SELECT count(*) FROM u), (SELECT count(*) FROM x) FROM d";

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
    const char *params[11] = {req->terminal_id, bytea, version, province, city,
                              req->maker[0] ? req->maker : NULL,
                              req->model[0] ? req->model : NULL,
                              req->device_id[0] ? req->device_id : NULL, colour,
                              req->plate[0] ? req->plate : NULL, req->remote};
    rc = hw_pg_async_query(a->pg, hw_auth_register_sql, 11, params, hw_auth_on_registered, req);
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

static const char *hw_auth_register_refusal(int result) {
  switch (result) {
  case HW_AUTH_REG_VEHICLE_TAKEN:
    return "registration: vehicle bound to another terminal";
  case HW_AUTH_REG_NO_VEHICLE:
    return "registration: plate not as provisioned";
  case HW_AUTH_REG_TERMINAL_TAKEN:
    return "registration: terminal already registered";
  default:
    return "registration: device id not as provisioned";
  }
}

static void hw_auth_on_registered(void *arg, const PGresult *res) {
  hw_auth_req *req = arg;
  hw_auth *a = req->auth;
  int result = -EAGAIN;
  if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
    if (PQntuples(res) == 0) {
      result = HW_AUTH_REG_NO_TERMINAL;
      hw_auth_refused(req, "jt808", "registration of an unknown terminal");
    } else {
      result = atoi(PQgetvalue(res, 0, 0));
      if (result == HW_AUTH_REG_OK && atoi(PQgetvalue(res, 0, 2)) != 1) {
        hw_warn("auth", req->terminal_id, "peer=%s registration accepted but not stored", req->remote);
        result = -EAGAIN;
      } else if (result == HW_AUTH_REG_OK) {
        const char *how = PQgetvalue(res, 0, 1);
        int reset_used = atoi(PQgetvalue(res, 0, 3)) > 0 && strcmp(how, "operator reset") != 0;
        hw_info("auth", req->terminal_id, "peer=%s registered (plate '%s' device '%s'): %s%s",
                req->remote, req->plate, req->device_id, how,
                reset_used ? "; the pending operator reset is used up too" : "");
      } else if (result >= HW_AUTH_REG_VEHICLE_TAKEN && result <= HW_AUTH_REG_NO_TERMINAL) {
        hw_auth_refused(req, "jt808", hw_auth_register_refusal(result));
      } else {
        hw_warn("auth", req->terminal_id, "registration gave result %d", result);
        result = -EAGAIN;
      }
    }
  } else if (res) {
    hw_warn("auth", req->terminal_id, "peer=%s registration failed: %s", req->remote,
            PQresultErrorMessage(res));
  }
  if (!req->cancelled)
    req->reg_cb(req->arg, result, result == HW_AUTH_REG_OK ? req->code : NULL);
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
  hw_refusal_copy(req->plate, HW_REFUSAL_PLATE_MAX, reg->plate);
  uint8_t raw[HW_AUTH_JT808_CODE_LEN / 2];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(req->code, sizeof req->code, raw, sizeof raw);
  hw_token_hash(req->code, HW_AUTH_JT808_CODE_LEN, req->hash);
  req->version = reg->version;
  req->province = reg->province;
  req->city = reg->city;
  req->plate_colour = reg->plate_colour;
  hw_refusal_copy(req->maker, sizeof req->maker - 1, reg->maker);
  hw_refusal_copy(req->model, sizeof req->model - 1, reg->model);
  hw_refusal_copy(req->device_id, sizeof req->device_id - 1, reg->device_id);
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

static void hw_auth_on_refusals_stopped(void *arg) {
  hw_auth *a = arg;
  a->refusals = NULL;
  hw_pg_async_stop(a->pg, hw_auth_on_stopped, a);
}

void hw_auth_stop(hw_auth *a, void (*done_cb)(void *arg), void *arg) {
  a->done_cb = done_cb;
  a->done_arg = arg;
  a->stopping = 1;
  hw_auth_req *req;
  while ((req = hw_auth_pop(a)))
    hw_auth_fail(req);
  /* The refusals merged since the last flush are written first, on the same connection. */
  hw_refusals_stop(a->refusals, hw_auth_on_refusals_stopped, a);
}
