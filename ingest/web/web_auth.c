/* Login, logout, who am I. A login checks the password with libsodium's crypto_pwhash_str_verify
 * on the libuv thread pool (it is deliberately slow and memory-hard: 64 MiB, about 0.1 s), never
 * on the loop. Failed logins are counted in PostgreSQL (web_login_attempts) per user name and per
 * client address over a window: above either limit the answer is 429 without checking the
 * password. An unknown user is checked against a dummy hash so that both take as long.
 * Owns each login's copy of the password (wiped and freed when the check is done). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/token.h"
#include "web/web_internal.h"

#define HW_WEB_MAX_PASSWORD HW_USER_MAX_PASSWORD /* sinks/user_store.h */

typedef struct hw_web_login_state {
  uv_work_t work;
  hw_web_call *call;
  char user[72];
  char peer[64];
  int64_t user_id;  /* 0: no such user (checked against the dummy hash) */
  char hash[crypto_pwhash_STRBYTES];
  char *password;   /* owned, wiped before free */
  size_t password_len;
  int ok;
  char token[HW_TOKEN_LEN + 1];
} hw_web_login_state;

static void hw_web_login_state_free(void *p) {
  hw_web_login_state *st = p;
  if (st->password) {
    sodium_memzero(st->password, st->password_len);
    free(st->password);
  }
  sodium_memzero(st->token, sizeof st->token);
  free(st);
}

/* "ip:port" -> "ip" (the limit is per address, not per connection). */
static void hw_web_peer_addr(const char *peer, char *out, size_t cap) {
  const char *colon = strrchr(peer, ':');
  size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
  if (n >= cap)
    n = cap - 1;
  memcpy(out, peer, n);
  out[n] = 0;
}

static cJSON *hw_web_user_json(const char *name, const char *role, const char *regions_csv) {
  cJSON *o = cJSON_CreateObject();
  cJSON *regions = cJSON_AddArrayToObject(o, "regions");
  cJSON_AddStringToObject(o, "user", name);
  cJSON_AddStringToObject(o, "role", role);
  for (const char *p = regions_csv; *p;) {
    size_t n = strcspn(p, ",");
    char code[8];
    if (n == 6) {
      memcpy(code, p, 6);
      code[6] = 0;
      cJSON_AddItemToArray(regions, cJSON_CreateString(code));
    }
    p += n + (p[n] == ',');
  }
  return o;
}

void hw_web_me(hw_web_call *call) {
  const hw_web_user *u = &call->user;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "user", u->name);
  cJSON_AddStringToObject(o, "role", hw_web_role_name(u->role));
  cJSON *regions = cJSON_AddArrayToObject(o, "regions");
  for (size_t i = 0; i < u->nregions; i++)
    cJSON_AddItemToArray(regions, cJSON_CreateString(u->regions[i]));
  hw_web_reply_json(call, 200, o);
}

static void hw_web_logout_done(hw_web_call *call, const PGresult *res) {
  if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_web_reply_pg_error(call, res, "logout");
    return;
  }
  if (hw_http_add_header(call->req, "Set-Cookie",
                         HW_WEB_SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")) {
    /* cannot fail: the response has not started */
  }
  hw_info(HW_WEB_COMPONENT, NULL, "logout user=%s", call->user.name);
  hw_web_reply_raw(call, 204, "application/json", "", 0);
}

void hw_web_logout(hw_web_call *call) {
  if (!call->user.by_session) {
    hw_web_reply_error(call, 400, "logout ends a cookie session; API tokens are revoked by an admin");
    return;
  }
  const char *params[1] = {call->user.token_bytea};
  if (hw_web_query(call, "DELETE FROM web_sessions WHERE token_hash = $1::bytea", 1, params,
                   hw_web_logout_done)) {
  }
}

static void hw_web_login_session_done(hw_web_call *call, const PGresult *res) {
  hw_web_login_state *st = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_web_reply_pg_error(call, res, "login");
    return;
  }
  char cookie[256];
  snprintf(cookie, sizeof cookie, "%s=%s; Path=/; Max-Age=%u; HttpOnly; SameSite=Strict%s",
           HW_WEB_SESSION_COOKIE, st->token, call->app->cfg.session_ttl_s,
           call->app->cfg.cookie_secure ? "; Secure" : "");
  int rc = hw_http_add_header(call->req, "Set-Cookie", cookie);
  sodium_memzero(cookie, sizeof cookie);
  if (rc) {
    hw_web_reply_error(call, 500, "internal error");
    return;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "login user=%s peer=%s ok", st->user, st->peer);
  hw_web_reply_json(call, 200, hw_web_user_json(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                                                PQgetvalue(res, 0, 2)));
}

static void hw_web_login_failed_done(hw_web_call *call, const PGresult *res) {
  hw_web_login_state *st = call->state;
  if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_web_reply_pg_error(call, res, "login attempt record");
    return;
  }
  call->app->login_failures++;
  hw_warn(HW_WEB_COMPONENT, NULL, "login user=%s peer=%s refused: wrong user or password",
          st->user, st->peer);
  hw_web_reply_error(call, 401, "wrong user name or password");
}

static void hw_web_login_work(uv_work_t *w) {
  hw_web_login_state *st = w->data;
  st->ok = crypto_pwhash_str_verify(st->hash, st->password, (unsigned long long)st->password_len) == 0;
}

static void hw_web_login_after(uv_work_t *w, int status) {
  hw_web_login_state *st = w->data;
  hw_web_call *call = st->call;
  hw_web *app = call->app;
  sodium_memzero(st->password, st->password_len);
  app->logins_in_flight--;
  /* the check held the module open (a thread pool job cannot be called off) */
  if (!hw_web_pool_done(call, status))
    return;
  char ttl[16];
  snprintf(ttl, sizeof ttl, "%u", app->cfg.session_ttl_s);
  if (st->ok && st->user_id > 0) {
    uint8_t h[HW_TOKEN_HASH_LEN];
    char hb[2 + 2 * HW_TOKEN_HASH_LEN + 1], uid[24];
    if (hw_token_new(st->token)) {
      hw_web_reply_error(call, 500, "internal error");
      return;
    }
    hw_token_hash(st->token, HW_TOKEN_LEN, h);
    hw_token_hash_bytea(h, hb);
    snprintf(uid, sizeof uid, "%lld", (long long)st->user_id);
    const char *params[5] = {hb, uid, st->peer, ttl, st->user};
    if (hw_web_query(call,
                     "WITH x AS (DELETE FROM web_sessions WHERE expires_at < now()), "
                     "s AS (INSERT INTO web_sessions (token_hash, user_id, peer, expires_at) "
                     "VALUES ($1::bytea, $2::bigint, $3, now() + $4::int * interval '1 second') "
                     "RETURNING user_id), a AS (INSERT INTO web_login_attempts (user_name, peer, "
                     "ok) VALUES ($5, $3, true)) SELECT u.name, u.role, coalesce((SELECT "
                     "string_agg(r.region, ',' ORDER BY r.region) FROM web_user_regions r WHERE "
                     "r.user_id = u.id), '') FROM web_users u JOIN s ON s.user_id = u.id",
                     5, params, hw_web_login_session_done)) {
    }
    return;
  }
  /* Old attempts are pruned here, and expired sessions at each login: on the paths that add
   * rows, so the tables stay small without a timer in a process that may run several times. */
  const char *params[2] = {st->user, st->peer};
  if (hw_web_query(call,
                   "WITH d AS (DELETE FROM web_login_attempts WHERE at < now() - interval '1 day') "
                   "INSERT INTO web_login_attempts (user_name, peer, ok) VALUES ($1, $2, false)",
                   2, params, hw_web_login_failed_done)) {
  }
}

static void hw_web_login_checked(hw_web_call *call, const PGresult *res) {
  hw_web_login_state *st = call->state;
  hw_web *app = call->app;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_web_reply_pg_error(call, res, "login");
    return;
  }
  long ufail = atol(PQgetvalue(res, 0, 2)), afail = atol(PQgetvalue(res, 0, 3));
  if (ufail >= (long)app->cfg.login_max_user_failures ||
      afail >= (long)app->cfg.login_max_addr_failures) {
    char retry[16];
    snprintf(retry, sizeof retry, "%u", app->cfg.login_window_s);
    if (hw_http_add_header(call->req, "Retry-After", retry)) {
    }
    hw_warn(HW_WEB_COMPONENT, NULL,
            "login user=%s peer=%s refused: rate limited (%ld failures for the user, %ld for the "
            "address in %u s)", st->user, st->peer, ufail, afail, app->cfg.login_window_s);
    app->login_limited++;
    hw_web_reply_error(call, 429, "too many failed logins; try again later");
    return;
  }
  if (app->logins_in_flight >= app->cfg.max_logins_in_flight) {
    if (hw_http_add_header(call->req, "Retry-After", "1")) {
    }
    hw_web_reply_error(call, 503, "too many logins at once; try again in a second");
    return;
  }
  st->user_id = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  const char *hash = st->user_id ? PQgetvalue(res, 0, 1) : app->dummy_hash;
  snprintf(st->hash, sizeof st->hash, "%s", hash);
  st->work.data = st;
  int rc = uv_queue_work(app->loop, &st->work, hw_web_login_work, hw_web_login_after);
  if (rc) {
    hw_web_reply_error(call, 503, "try again");
    return;
  }
  hw_web_hold(app);
  app->logins_in_flight++;
  hw_web_async_begin(call);
}

void hw_web_login(hw_web_call *call) {
  cJSON *root = hw_web_json_body(call);
  if (!root)
    return;
  int bad = 0;
  const char *user = hw_web_json_str(root, "user", &bad);
  const char *password = hw_web_json_str(root, "password", &bad);
  hw_web_login_state *st = NULL;
  if (bad || !user || !password) {
    hw_web_reply_error(call, 400, "give {\"user\": NAME, \"password\": PASSWORD} as strings");
    goto cleanup;
  }
  size_t ulen = strlen(user), plen = strlen(password);
  if (ulen == 0 || ulen > 64 || plen == 0 || plen > HW_WEB_MAX_PASSWORD) {
    hw_web_reply_error(call, 400, "user must be 1 to 64 bytes, password 1 to 1024");
    goto cleanup;
  }
  st = calloc(1, sizeof *st);
  if (!st || !(st->password = malloc(plen + 1))) {
    if (st)
      free(st);
    hw_web_reply_error(call, 503, "out of memory");
    goto cleanup;
  }
  st->call = call;
  memcpy(st->password, password, plen + 1);
  st->password_len = plen;
  snprintf(st->user, sizeof st->user, "%s", user);
  hw_web_peer_addr(hw_http_peer(call->req), st->peer, sizeof st->peer);
  call->state = st;
  call->free_state = hw_web_login_state_free;
  char window[16];
  snprintf(window, sizeof window, "%u", call->app->cfg.login_window_s);
  const char *params[3] = {st->user, st->peer, window};
  if (hw_web_query(call,
                   "SELECT u.id, u.password_hash, (SELECT count(*) FROM web_login_attempts a "
                   "WHERE a.user_name = $1 AND NOT a.ok AND a.at > now() - $3::int * interval "
                   "'1 second'), (SELECT count(*) FROM web_login_attempts a WHERE a.peer = $2 AND "
                   "NOT a.ok AND a.at > now() - $3::int * interval '1 second') FROM (SELECT 1) "
                   "one LEFT JOIN web_users u ON u.name = $1 AND NOT u.disabled AND "
                   "u.password_hash IS NOT NULL",
                   3, params, hw_web_login_checked)) {
  }
cleanup:
  /* cJSON's copy of the password. */
  if (password)
    sodium_memzero((void *)password, strlen(password));
  cJSON_Delete(root);
}
