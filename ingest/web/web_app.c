/* haulwatch web: start and stop, the route table, the dispatcher (CSRF rule, login check), the
 * PostgreSQL pool and the replies. Owns the calls (web_internal.h says when each is freed). */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/options.h"
#include "base/text.h"
#include "base/token.h"
#include "web/web_internal.h"

static void hw_web_readyz(hw_web_call *call);
static int hw_web_pick(const hw_web *app, uint32_t lo, uint32_t hi);

static const hw_web_route_def hw_web_routes[] = {
    {"GET", "/readyz", hw_web_readyz, HW_ROLE_NONE},
    {"POST", "/api/v1/login", hw_web_login, HW_ROLE_NONE},
    {"POST", "/api/v1/logout", hw_web_logout, HW_ROLE_VIEWER},
    {"GET", "/api/v1/me", hw_web_me, HW_ROLE_VIEWER},
    {"GET", "/api/v1/violations", hw_web_violations_list, HW_ROLE_VIEWER},
    {"GET", "/api/v1/violations/{id}", hw_web_violation_get, HW_ROLE_VIEWER},
    {"GET", "/api/v1/alarms", hw_web_alarms_list, HW_ROLE_VIEWER},
    {"POST", "/api/v1/violations/{id}/transition", hw_web_violation_transition, HW_ROLE_OPERATOR},
    {"GET", "/api/v1/vehicles", hw_web_vehicles_list, HW_ROLE_VIEWER},
    {"GET", "/api/v1/vehicles/{terminal_id}/track", hw_web_vehicle_track, HW_ROLE_VIEWER},
    {"GET", "/api/v1/alarms/{alarm_no}/attachments", hw_web_alarm_attachments, HW_ROLE_VIEWER},
    {"GET", "/api/v1/attachments/{id}", hw_web_attachment_get, HW_ROLE_VIEWER},
    {"GET", "/api/v1/stream", hw_web_stream, HW_ROLE_VIEWER},
    {"GET", "/api/v1/config", hw_web_config_get, HW_ROLE_OPTIONAL},
    {"GET", "/api/v1/summary", hw_web_summary, HW_ROLE_VIEWER},
    {"GET", "/api/v1/zones", hw_web_zones, HW_ROLE_VIEWER},
    {"GET", "/api/v1/regions", hw_web_regions, HW_ROLE_VIEWER},
    {"GET", "/api/v1/converted-tractors", hw_web_converted_tractors, HW_ROLE_VIEWER},
    {"GET", "/api/v1/crackdown/phaseout", hw_web_crackdown, HW_ROLE_VIEWER},
    {"GET", "/api/v1/crackdown/registry-audit", hw_web_crackdown, HW_ROLE_VIEWER},
    {"GET", "/api/v1/crackdown/offline-movers", hw_web_crackdown, HW_ROLE_VIEWER},
    {"GET", "/api/v1/kpi", hw_web_kpi, HW_ROLE_VIEWER},
    {"GET", "/api/v1/kpi/daily", hw_web_kpi_daily, HW_ROLE_VIEWER},
    {"GET", "/api/v1/admin/users", hw_web_admin_users, HW_ROLE_ADMIN},
    {"POST", "/api/v1/admin/users", hw_web_admin_user_add, HW_ROLE_ADMIN},
    {"POST", "/api/v1/admin/users/{name}/disable", hw_web_admin_user_disable, HW_ROLE_ADMIN},
    {"POST", "/api/v1/admin/users/{name}/token", hw_web_admin_user_token, HW_ROLE_ADMIN},
    {"POST", "/api/v1/admin/registry", hw_web_admin_registry, HW_ROLE_ADMIN},
    {"POST", "/api/v1/admin/zones", hw_web_admin_zones, HW_ROLE_ADMIN},
    {"GET", "/api/v1/admin/audit", hw_web_admin_audit, HW_ROLE_ADMIN},
};

/* The admin POST routes (imports) take bodies up to admin_max_body; every other route max_body.
 * The body arrives before the login is checked, so the HTTP layer also bounds how many such
 * bodies are held at once (hw_http_config.max_large_bodies). */
#define HW_WEB_ADMIN_PREFIX "/api/v1/admin/"

const char *hw_web_role_name(hw_web_role r) {
  switch (r) {
  case HW_ROLE_VIEWER: return "viewer";
  case HW_ROLE_OPERATOR: return "operator";
  case HW_ROLE_ADMIN: return "admin";
  default: return "none";
  }
}

static hw_web_role hw_web_role_of(const char *s) {
  if (!strcmp(s, "viewer")) return HW_ROLE_VIEWER;
  if (!strcmp(s, "operator")) return HW_ROLE_OPERATOR;
  if (!strcmp(s, "admin")) return HW_ROLE_ADMIN;
  return HW_ROLE_NONE;
}

const hw_web_user *hw_web_call_user(const hw_web_call *call) { return &call->user; }

/* For a proxy's health check and for scripts waiting for the start: 200 when a database
 * connection and Redis are up, else 503 naming what is not. Shows nothing of the data. */
static void hw_web_readyz(hw_web_call *call) {
  hw_web *app = call->app;
  int pg = 0;
  for (uint32_t i = 0; i < app->cfg.pg_pool; i++)
    pg |= hw_pg_async_up(app->pool[i]);
  int redis = app->redis.up;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ready", pg && redis);
  cJSON *checks = cJSON_AddObjectToObject(o, "checks");
  cJSON_AddStringToObject(checks, "postgres", pg ? "ok" : "unreachable");
  cJSON_AddStringToObject(checks, "redis", redis ? "ok" : "disconnected");
  if (app->npool > app->cfg.pg_pool) /* informative: reads fall back to the primary */
    cJSON_AddStringToObject(checks, "postgres_read",
                            hw_web_pick(app, app->cfg.pg_pool, app->npool) >= 0 ? "ok"
                                                                                : "unreachable");
  hw_web_reply_json(call, pg && redis ? 200 : 503, o);
}

static void hw_web_detached_abort(hw_http_req *req, void *arg) {
  (void)req;
  (void)arg;
}

hw_http_req *hw_web_detach(hw_web_call *call, hw_web_user *user) {
  hw_http_req *req = call->req;
  *user = call->user;
  /* The call's abort callback must not outlive it: replaced by one that does nothing until the
   * new owner sets its own. */
  if (req)
    hw_http_on_abort(req, hw_web_detached_abort, NULL);
  call->req = NULL;
  if (call->free_state)
    call->free_state(call->state);
  free(call);
  return req;
}

/* GET /api/v1/stream: the live feed (web/sse.h). The hub takes the request over; the user's
 * regions go with it as the filter every event passes, live or replayed, so a stream shows what
 * the same user's queries would (the SQL scope's C twin; 000000, the whole country: no filter). */
static int hw_web_code_cmp(const void *a, const void *b) { return strcmp(a, b); }

void hw_web_stream(hw_web_call *call) {
  hw_web *app = call->app;
  const hw_web_route_def *def = call->route;
  uint64_t start_ns = call->start_ns;
  hw_web_user user;
  hw_http_req *req = hw_web_detach(call, &user);
  if (!req)
    return;
  int everywhere = 0;
  for (size_t i = 0; i < user.nregions; i++)
    everywhere |= !strcmp(user.regions[i], "000000");
  hw_sse_regions *r = NULL;
  if (!everywhere) {
    r = malloc(sizeof *r + user.nregions * sizeof r->codes[0]);
    if (!r) {
      if (hw_http_respond_error(req, 503, "out of memory")) { /* closing */ }
      return;
    }
    r->n = 0;
    for (size_t i = 0; i < user.nregions; i++)
      if (strlen(user.regions[i]) == 6)
        memcpy(r->codes[r->n++], user.regions[i], 7);
  }
  /* The scope key: the user's codes, sorted, so that every user of the same regions shares each
   * batch's bytes (web/sse.h). */
  char scope[HW_WEB_MAX_REGIONS * 7 + 1];
  scope[0] = 0;
  if (r) {
    qsort(r->codes, r->n, sizeof r->codes[0], hw_web_code_cmp);
    for (size_t i = 0; i < r->n; i++)
      snprintf(scope + strlen(scope), sizeof scope - strlen(scope), "%s%s", i ? "," : "",
               r->codes[i]);
  }
  int rc = hw_sse_attach(app->sse, req, r ? hw_sse_filter_regions : NULL, r, r ? free : NULL,
                         r ? scope : NULL, hw_http_header(req, "Last-Event-ID"));
  if (rc == 0 || rc == -EPIPE) {
    hw_web_count(app, def, 200, start_ns);
    return; /* the hub owns req and r, or both are gone */
  }
  hw_web_count(app, def, 503, start_ns);
  free(r);
  if (hw_http_respond_error(req, 503, "too many live feeds")) { /* closing */ }
}

/* --- the call --------------------------------------------------------------------------------- */

static void hw_web_call_free(hw_web_call *call) {
  if (call->free_state)
    call->free_state(call->state);
  free(call);
}

static void hw_web_on_abort(hw_http_req *req, void *arg) {
  hw_web_call *call = arg;
  (void)req;
  call->req = NULL;
  if (call->pending == 0)
    hw_web_call_free(call);
}

void hw_web_async_begin(hw_web_call *call) { call->pending++; }

int hw_web_async_done(hw_web_call *call) {
  call->pending--;
  if (call->req)
    return 1;
  if (call->pending == 0)
    hw_web_call_free(call);
  return 0;
}

int hw_web_pool_done(hw_web_call *call, int status) {
  hw_web *app = call->app;
  int stopping = app->stopping; /* read before the release, which may end the stop */
  int alive = hw_web_async_done(call);
  hw_web_release(app);
  if (!alive)
    return 0;
  if (status || stopping) {
    hw_web_reply_error(call, 503, "shutting down");
    return 0;
  }
  return 1;
}

/* What a user may see is theirs alone: no cache between them and us keeps a copy. */
static void hw_web_private(hw_http_req *req) {
  if (hw_http_add_header(req, "Cache-Control", "no-store") ||
      hw_http_add_header(req, "X-Content-Type-Options", "nosniff")) {
    /* only when the header space is full: the answer goes without them */
  }
}

void hw_web_reply_raw(hw_web_call *call, int status, const char *ctype, const void *body,
                      size_t len) {
  if (call->req) {
    hw_web_private(call->req);
    hw_web_count(call->app, call->route, status, call->start_ns);
  }
  if (call->req && hw_http_respond(call->req, status, ctype, body, len)) {
    /* the connection is closing; the request is finished either way */
  }
  call->req = NULL;
  if (call->pending == 0)
    hw_web_call_free(call);
}

void hw_web_reply_error(hw_web_call *call, int status, const char *msg) {
  if (call->req) {
    hw_web_private(call->req);
    hw_web_count(call->app, call->route, status, call->start_ns);
  }
  if (call->req && hw_http_respond_error(call->req, status, msg)) {
    /* as above */
  }
  call->req = NULL;
  if (call->pending == 0)
    hw_web_call_free(call);
}

void hw_web_reply_json(hw_web_call *call, int status, cJSON *body) {
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  if (!text) {
    hw_web_reply_error(call, 500, "out of memory");
    return;
  }
  hw_web_reply_raw(call, status, "application/json", text, strlen(text));
  free(text);
}

void hw_web_reply_json_text(hw_web_call *call, const char *json) {
  cJSON *o = cJSON_Parse(json);
  if (!o) {
    hw_web_reply_error(call, 500, "internal error");
    return;
  }
  hw_web_reply_json(call, 200, o);
}

void hw_web_reply_pg_error(hw_web_call *call, const PGresult *res, const char *what) {
  if (!res) {
    hw_web_reply_error(call, 503, "database unavailable, try again");
    return;
  }
  const char *state = hw_pg_sqlstate(res);
  if (!strncmp(state, "22", 2)) {
    /* Bad input the database refused (a time that is not a time, a number out of range): the
     * client's message, not ours; PostgreSQL's text names the value, never other rows. */
    char msg[256];
    snprintf(msg, sizeof msg, "bad parameter: %s", hw_pg_errmsg(res));
    hw_web_reply_error(call, 400, msg);
    return;
  }
  if (!strcmp(state, "57014")) {
    /* query_canceled: a statement_timeout (hw_web_query_timed) or an operator's cancel. The
     * database is up but would not finish this in time: the gateway's timeout. */
    hw_warn(HW_WEB_COMPONENT, NULL, "%s cancelled for user=%s: %s", what, call->user.name,
            hw_pg_errmsg(res));
    hw_web_reply_error(call, 504, "the query took longer than the server allows: ask for a "
                                  "shorter period or a smaller region, or try again later");
    return;
  }
  hw_error(HW_WEB_COMPONENT, NULL, "%s failed for user=%s: %s %s", what, call->user.name, state,
           hw_pg_errmsg(res));
  hw_web_reply_error(call, 500, "internal error");
}

/* --- the pool --------------------------------------------------------------------------------- */

static void hw_web_pg_done(void *arg, const PGresult *res) {
  hw_web_call *call = arg;
  call->app->pool_pending[call->pg_slot]--;
  if (!hw_web_async_done(call))
    return;
  call->pg_cb(call, res);
}

/* The least busy connection that is up among pool[lo, hi), or -1. */
static int hw_web_pick(const hw_web *app, uint32_t lo, uint32_t hi) {
  int best = -1;
  for (uint32_t i = lo; i < hi; i++)
    if (hw_pg_async_up(app->pool[i]) &&
        (best < 0 || app->pool_pending[i] < app->pool_pending[best]))
      best = (int)i;
  return best;
}

static int hw_web_query_on(hw_web_call *call, int slot, const char *sql, int nparams,
                           const char *const *params, hw_web_pg_cb cb) {
  hw_web *app = call->app;
  /* A request never waits for a database that is away (its client would wait with it); it is
   * told to try again. */
  if (slot < 0) {
    hw_web_reply_error(call, 503, "database unavailable, try again");
    return -EAGAIN;
  }
  call->pg_cb = cb;
  call->pg_slot = slot;
  int rc = hw_pg_async_query(app->pool[slot], sql, nparams, params, hw_web_pg_done, call);
  if (rc) {
    hw_web_reply_error(call, 503, "database unavailable, try again");
    return rc;
  }
  app->pool_pending[slot]++;
  hw_web_async_begin(call);
  return 0;
}

int hw_web_query(hw_web_call *call, const char *sql, int nparams, const char *const *params,
                 hw_web_pg_cb cb) {
  return hw_web_query_on(call, hw_web_pick(call->app, 0, call->app->cfg.pg_pool), sql, nparams,
                         params, cb);
}

/* The slot of a read: the replica's least busy connection, else the primary's (-1: none up). */
static int hw_web_read_slot(hw_web *app) {
  int slot = hw_web_pick(app, app->cfg.pg_pool, app->npool);
  if (slot < 0 && app->npool > app->cfg.pg_pool) {
    /* The replica is away: the primary answers rather than nobody (it holds the same data,
     * newer). Logged once per 1000 so an outage is seen without a line per request. */
    if (app->read_fallbacks++ % 1000 == 0)
      hw_warn(HW_WEB_COMPONENT, NULL, "no connection to the read replica is up: reads go to the "
              "primary (%llu so far)", (unsigned long long)app->read_fallbacks);
  }
  if (slot < 0)
    slot = hw_web_pick(app, 0, app->cfg.pg_pool);
  return slot;
}

int hw_web_query_read(hw_web_call *call, const char *sql, int nparams, const char *const *params,
                      hw_web_pg_cb cb) {
  return hw_web_query_on(call, hw_web_read_slot(call->app), sql, nparams, params, cb);
}

/* The setting and resetting of a timed query's statement_timeout: no call waits for them (arg is
 * the app), a failure is only logged (the statement then runs with the session's default). */
static void hw_web_timeout_set(void *arg, const PGresult *res) {
  (void)arg;
  if (res && PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
    hw_warn(HW_WEB_COMPONENT, NULL, "pool: statement_timeout not set or reset: %s",
            hw_pg_errmsg(res));
}

int hw_web_query_read_timed(hw_web_call *call, const char *sql, int nparams,
                            const char *const *params, uint32_t timeout_ms, hw_web_pg_cb cb) {
  if (!timeout_ms)
    return hw_web_query_read(call, sql, nparams, params, cb);
  hw_web *app = call->app;
  int slot = hw_web_read_slot(app);
  if (slot < 0)
    return hw_web_query_on(call, slot, sql, nparams, params, cb); /* answers 503 */
  /* A connection runs its queue in order, one query at a time, and the three are queued here
   * together (one loop turn), so no other request's query runs between them: the limit covers
   * this statement only. set_config(..., false) is the session's, as SET: outside a transaction
   * SET LOCAL would not last to the next query. If the session is lost between them, the next
   * one starts from the server's default, which the reset would have restored anyway. */
  char ms[16];
  snprintf(ms, sizeof ms, "%" PRIu32 "ms", timeout_ms);
  const char *p[1] = {ms};
  if (hw_pg_async_query(app->pool[slot], "SELECT set_config('statement_timeout', $1, false)", 1,
                        p, hw_web_timeout_set, app)) {
    hw_web_reply_error(call, 503, "database unavailable, try again");
    return -EAGAIN;
  }
  int rc = hw_web_query_on(call, slot, sql, nparams, params, cb);
  if (hw_pg_async_query(app->pool[slot], "RESET statement_timeout", 0, NULL, hw_web_timeout_set,
                        app))
    hw_warn(HW_WEB_COMPONENT, NULL, "pool: the reset of statement_timeout could not be queued");
  return rc;
}

/* --- JSON bodies ------------------------------------------------------------------------------ */

cJSON *hw_web_json_body(hw_web_call *call) {
  size_t len = 0;
  const uint8_t *body = hw_http_body(call->req, &len);
  if (!body || len == 0) {
    hw_web_reply_error(call, 400, "a JSON body is required");
    return NULL;
  }
  /* cJSON does not check UTF-8, and a NUL would cut strings short: both refused first. */
  if (!hw_utf8_valid((const char *)body, len) || memchr(body, 0, len)) {
    hw_web_reply_error(call, 400, "the body is not valid UTF-8");
    return NULL;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    hw_web_reply_error(call, 400, "the body is not a JSON object");
    return NULL;
  }
  return root;
}

const char *hw_web_json_str(const cJSON *obj, const char *name, int *bad) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!it || cJSON_IsNull(it))
    return NULL;
  if (!cJSON_IsString(it) || !it->valuestring) {
    *bad = 1;
    return NULL;
  }
  return it->valuestring;
}

/* --- who is asking ---------------------------------------------------------------------------- */

/* The session cookie's value or the Bearer token into out; 1 session, 2 token, 0 none or
 * malformed (a malformed credential is the same as none: 401). */
static int hw_web_credential(hw_http_req *req, char *out, size_t cap) {
  const char *auth = hw_http_header(req, "Authorization");
  if (auth && !strncasecmp(auth, "Bearer ", 7)) {
    const char *t = auth + 7;
    size_t plen = strlen(HW_WEB_API_TOKEN_PREFIX);
    if (strlen(t) != plen + HW_TOKEN_LEN || strncmp(t, HW_WEB_API_TOKEN_PREFIX, plen) ||
        strspn(t + plen, "0123456789abcdef") != HW_TOKEN_LEN || strlen(t) >= cap)
      return 0;
    strcpy(out, t);
    return 2;
  }
  const char *cookie = hw_http_header(req, "Cookie");
  static const char name[] = HW_WEB_SESSION_COOKIE "=";
  for (const char *p = cookie; p && *p;) {
    while (*p == ' ' || *p == ';')
      p++;
    size_t n = strcspn(p, ";");
    if (n > sizeof name - 1 && !strncmp(p, name, sizeof name - 1)) {
      const char *v = p + sizeof name - 1;
      size_t vlen = n - (sizeof name - 1);
      if (vlen != HW_TOKEN_LEN || strspn(v, "0123456789abcdef") < HW_TOKEN_LEN || vlen >= cap)
        return 0;
      memcpy(out, v, vlen);
      out[vlen] = 0;
      return 1;
    }
    p += n;
  }
  return 0;
}

static void hw_web_set_scope(hw_web_user *u) {
  size_t off = 0;
  u->scope[off++] = '{';
  for (size_t i = 0; i < u->nregions; i++) {
    char pat[8];
    hw_web_region_pattern(u->regions[i], pat);
    off += (size_t)snprintf(u->scope + off, sizeof u->scope - off, "%s%s", i ? "," : "", pat);
  }
  snprintf(u->scope + off, sizeof u->scope - off, "}");
}

static void hw_web_auth_done(hw_web_call *call, const PGresult *res) {
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "authentication");
    return;
  }
  if (PQntuples(res) != 1) {
    if (call->route->min_role == HW_ROLE_OPTIONAL) {
      call->route->fn(call); /* as nobody */
      return;
    }
    hw_web_reply_error(call, 401, "log in first (session expired or unknown token)");
    return;
  }
  hw_web_user *u = &call->user;
  u->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  snprintf(u->name, sizeof u->name, "%s", PQgetvalue(res, 0, 1));
  u->role = hw_web_role_of(PQgetvalue(res, 0, 2));
  u->nregions = 0;
  for (const char *p = PQgetvalue(res, 0, 3); *p && u->nregions < HW_WEB_MAX_REGIONS;) {
    size_t n = strcspn(p, ",");
    if (n == 6) {
      memcpy(u->regions[u->nregions], p, 6);
      u->regions[u->nregions++][6] = 0;
    }
    p += n + (p[n] == ',');
  }
  hw_web_set_scope(u);
  if (u->role < call->route->min_role) {
    hw_web_reply_error(call, 403, "your role may not do this");
    return;
  }
  call->route->fn(call);
}

#define HW_WEB_USER_COLS                                                                     \
  "u.id, u.name, u.role, coalesce((SELECT string_agg(r.region, ',' ORDER BY r.region) FROM " \
  "web_user_regions r WHERE r.user_id = u.id), '')"

static void hw_web_dispatch(hw_http_req *req, void *arg) {
  struct hw_web_bind *b = arg;
  const hw_web_route_def *def = b->def;
  if (b->app->stopping) {
    hw_web_count(b->app, def, 503, 0);
    if (hw_http_respond_error(req, 503, "shutting down")) {
    }
    return;
  }
  /* CSRF: a browser sends a cross-site form only as urlencoded, multipart or text/plain; with
   * the SameSite=Strict cookie, insisting on JSON for every state change shuts that door. */
  if (strcmp(def->method, "GET")) {
    const char *ct = hw_http_header(req, "Content-Type");
    size_t n = ct ? strcspn(ct, "; ") : 0;
    if (!ct || n != 16 || strncasecmp(ct, "application/json", 16)) {
      hw_web_count(b->app, def, 415, 0);
      if (hw_http_respond_error(req, 415, "state-changing requests must be Content-Type: "
                                          "application/json")) {
      }
      return;
    }
  }
  hw_web_call *call = calloc(1, sizeof *call);
  if (!call) {
    if (hw_http_respond_error(req, 503, "out of memory")) {
    }
    return;
  }
  call->app = b->app;
  call->req = req;
  call->route = def;
  call->start_ns = uv_hrtime();
  snprintf(call->user.name, sizeof call->user.name, "-");
  hw_http_on_abort(req, hw_web_on_abort, call);
  if (def->min_role == HW_ROLE_NONE) {
    def->fn(call);
    return;
  }
  char cred[128];
  int kind = hw_web_credential(req, cred, sizeof cred);
  if (!kind && def->min_role == HW_ROLE_OPTIONAL) {
    def->fn(call);
    return;
  }
  if (!kind) {
    hw_web_reply_error(call, 401, "log in first");
    return;
  }
  uint8_t h[HW_TOKEN_HASH_LEN];
  hw_token_hash(cred, strlen(cred), h);
  sodium_memzero(cred, sizeof cred);
  hw_token_hash_bytea(h, call->user.token_bytea);
  call->user.by_session = kind == 1;
  const char *params[1] = {call->user.token_bytea};
  const char *sql =
      kind == 1 ? "SELECT " HW_WEB_USER_COLS " FROM web_sessions s JOIN web_users u ON u.id = "
                  "s.user_id WHERE s.token_hash = $1::bytea AND s.expires_at > now() AND NOT "
                  "u.disabled"
                : "SELECT " HW_WEB_USER_COLS " FROM web_tokens t JOIN web_users u ON u.id = "
                  "t.user_id WHERE t.token_hash = $1::bytea AND t.revoked_at IS NULL AND NOT "
                  "u.disabled";
  if (hw_web_query(call, sql, 1, params, hw_web_auth_done)) {
    /* answered 503 */
  }
}

/* --- start and stop --------------------------------------------------------------------------- */

static void hw_web_redis_closed(hw_redis_conn *c);
/* The latest state is read on demand: a request finding no session answers without it (or 503
 * when it filters on it), so a session coming or going needs nothing here (redis_conn logs it). */
static void hw_web_redis_ready(hw_redis_conn *c) { (void)c; }
static void hw_web_redis_lost(hw_redis_conn *c) { (void)c; }
static const hw_redis_conn_ops hw_web_redis_ops = {
    .ready = hw_web_redis_ready, .lost = hw_web_redis_lost, .closed = hw_web_redis_closed};

/* Every time the API writes or reads without an offset is GMT+8, as the CLI's: the session's
 * time zone, set through libpq's options (a URI takes it as a query parameter). */
static int hw_web_conninfo(char *out, size_t cap, const char *conninfo) {
  int uri = !strncmp(conninfo, "postgres://", 11) || !strncmp(conninfo, "postgresql://", 13);
  int n = snprintf(out, cap, "%s%s", conninfo,
                   !uri ? " options='-c TimeZone=Asia/Shanghai'"
                        : strchr(conninfo, '?') ? "&options=-c%20TimeZone%3DAsia%2FShanghai"
                                                : "?options=-c%20TimeZone%3DAsia%2FShanghai");
  return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

int hw_web_start(hw_web **out, uv_loop_t *loop, const hw_web_config *cfg) {
  int rc = -ENOMEM;
  hw_web *w = calloc(1, sizeof *w);
  if (!w)
    return -ENOMEM;
  w->loop = loop;
  w->cfg = *cfg;
  const char *style = cfg->map_style ? cfg->map_style : "", *tiles = cfg->map_tiles ? cfg->map_tiles : "";
  if (strlen(style) >= sizeof w->map_style || strlen(tiles) >= sizeof w->map_tiles) {
    rc = -EINVAL;
    goto fail;
  }
  strcpy(w->map_style, style);
  strcpy(w->map_tiles, tiles);
  if (strlen(cfg->listen) >= sizeof w->listen || strlen(cfg->pg) >= sizeof w->pg ||
      strlen(cfg->redis_host) >= sizeof w->redis_host ||
      strlen(cfg->web_root) >= PATH_MAX || cfg->pg_pool == 0) {
    rc = -EINVAL;
    goto fail;
  }
  strcpy(w->listen, cfg->listen);
  const char *pg_read = cfg->pg_read ? cfg->pg_read : "";
  if (hw_web_conninfo(w->pg, sizeof w->pg, cfg->pg) ||
      (pg_read[0] && hw_web_conninfo(w->pg_read, sizeof w->pg_read, pg_read))) {
    rc = -EINVAL;
    goto fail;
  }
  strcpy(w->redis_host, cfg->redis_host);
  /* The root as a real path, so that a file's real path can be checked to lie under it. */
  if (cfg->web_root[0] && !realpath(cfg->web_root, w->web_root)) {
    hw_warn(HW_WEB_COMPONENT, NULL, "web root %s: %s; serving the API only", cfg->web_root,
            strerror(errno));
    w->web_root[0] = 0;
  }
  w->cfg.listen = w->listen;
  w->cfg.pg = w->pg;
  w->cfg.pg_read = w->pg_read;
  w->cfg.redis_host = w->redis_host;
  w->cfg.web_root = w->web_root;
  w->cfg.map_style = w->map_style;
  w->cfg.map_tiles = w->map_tiles;
  if (sodium_init() < 0 ||
      crypto_pwhash_str(w->dummy_hash, "not a password", 14, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE)) {
    hw_error(HW_WEB_COMPONENT, NULL, "start: libsodium could not hash (out of memory?)");
    goto fail;
  }
  size_t nr = HW_ARRAY_SIZE(hw_web_routes);
  w->route_defs = hw_web_routes;
  w->route_responses = calloc((nr + 1) * 6, sizeof *w->route_responses);
  w->routes = calloc(nr + 1, sizeof *w->routes);
  w->binds = calloc(nr, sizeof *w->binds);
  w->npool = cfg->pg_pool * (w->pg_read[0] ? 2u : 1u);
  w->pool = calloc(w->npool, sizeof *w->pool);
  w->pool_pending = calloc(w->npool, sizeof *w->pool_pending);
  if (!w->routes || !w->binds || !w->pool || !w->pool_pending || !w->route_responses)
    goto fail;
  for (size_t i = 0; i < nr; i++) {
    w->binds[i] = (struct hw_web_bind){w, &hw_web_routes[i]};
    int admin_post = !strcmp(hw_web_routes[i].method, "POST") &&
                     !strncmp(hw_web_routes[i].pattern, HW_WEB_ADMIN_PREFIX,
                              strlen(HW_WEB_ADMIN_PREFIX));
    w->routes[i] = (hw_http_route){hw_web_routes[i].method, hw_web_routes[i].pattern,
                                   hw_web_dispatch, &w->binds[i],
                                   admin_post ? cfg->admin_max_body : 0};
  }
  /* Last: everything else is a file of the page. */
  w->routes[nr] = (hw_http_route){"GET", "/*", hw_web_static, w, 0};
  w->nroutes = nr + 1;
  for (uint32_t i = 0; i < w->npool; i++) {
    rc = i < cfg->pg_pool ? hw_pg_async_start(&w->pool[i], loop, w->pg, "webpg")
                          : hw_pg_async_start(&w->pool[i], loop, w->pg_read, "webpg-read");
    if (rc)
      goto fail;
    w->open_parts++;
  }
  hw_redis_conn_config rc_cfg = {.host = w->redis_host, .port = cfg->redis_port,
                                 .timeout_ms = 5000, .component = "webredis"};
  static const size_t hw_web_no_backlog = 0;
  rc_cfg.backlog = &hw_web_no_backlog;
  rc_cfg.backlog_what = "requests";
  rc = hw_redis_conn_init(&w->redis, loop, &rc_cfg, &hw_web_redis_ops, w);
  if (rc)
    goto fail;
  hw_redis_conn_start(&w->redis);
  w->redis_started = 1;
  w->open_parts++;
  hw_sse_config sc = {.redis_host = w->redis_host, .redis_port = cfg->redis_port,
                      .max_clients = cfg->stream_max_clients,
                      .flush_ms = cfg->stream_flush_ms};
  rc = hw_sse_hub_start(&w->sse, loop, &sc);
  if (rc)
    goto fail;
  w->open_parts++;
  hw_http_config hc;
  hw_http_config_default(&hc);
  hc.max_body = cfg->max_body;
  /* every live feed holds a connection: room for them and for the API beside */
  hw_sse_config sd = {.max_clients = cfg->stream_max_clients};
  hw_sse_config_default(&sd);
  if (hc.max_connections < sd.max_clients + 256)
    hc.max_connections = sd.max_clients + 256;
  rc = hw_http_server_init(&w->http, loop, &hc, w->routes, w->nroutes);
  if (rc)
    goto fail;
  w->open_parts++;
  rc = hw_http_server_listen(w->http, w->listen);
  if (rc) {
    hw_error(HW_WEB_COMPONENT, NULL, "start: cannot listen on %s: %s", w->listen, uv_strerror(rc));
    goto fail;
  }
  if (cfg->metrics_listen && cfg->metrics_listen[0]) {
    rc = hw_web_metrics_start(w, cfg->metrics_listen);
    if (w->metrics_http)
      w->open_parts++;
    if (rc)
      goto fail;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "listening on %s (port %d), web root %s, %u database connections%s",
          w->listen, hw_http_server_port(w->http), w->web_root[0] ? w->web_root : "(none)",
          cfg->pg_pool, w->pg_read[0] ? " to the primary and as many to the read replica" : "");
  *out = w;
  return 0;
fail:
  /* What started is closed from the loop; the caller runs the loop until it is done. */
  hw_web_stop(w, NULL, NULL);
  return rc ? rc : -ENOMEM;
}

int hw_web_port(const hw_web *w) { return hw_http_server_port(w->http); }

static void hw_web_part_closed(void *arg) {
  hw_web *w = arg;
  if (--w->open_parts > 0)
    return;
  void (*cb)(void *) = w->done_cb;
  void *cb_arg = w->done_arg;
  free(w->routes);
  free(w->binds);
  free(w->pool);
  free(w->pool_pending);
  free(w->route_responses);
  free(w);
  if (cb)
    cb(cb_arg);
}

void hw_web_hold(hw_web *app) { app->open_parts++; }
void hw_web_release(hw_web *app) { hw_web_part_closed(app); }

static void hw_web_redis_closed(hw_redis_conn *c) { hw_web_part_closed(c->data); }

static void hw_web_http_closed(void *arg) {
  hw_web *w = arg;
  /* The HTTP side is gone (every call aborted); now the connections their queries used. */
  for (uint32_t i = 0; w->pool && i < w->npool; i++)
    if (w->pool[i])
      hw_pg_async_stop(w->pool[i], hw_web_part_closed, w);
  if (w->redis_started)
    hw_redis_conn_close(&w->redis);
  hw_web_part_closed(w);
}

void hw_web_stop(hw_web *w, void (*done_cb)(void *arg), void *arg) {
  w->stopping = 1;
  w->done_cb = done_cb;
  w->done_arg = arg;
  /* The feeds end first (a clean end of each stream), then the HTTP side. */
  if (w->sse) {
    hw_sse_hub_stop(w->sse, hw_web_part_closed, w);
    w->sse = NULL;
  }
  if (w->metrics_http) {
    hw_http_server_close(w->metrics_http, hw_web_part_closed, w);
    w->metrics_http = NULL;
  }
  /* A login whose password check is on the thread pool holds a part until it comes back. */
  if (w->http) {
    hw_http_server_close(w->http, hw_web_http_closed, w);
    return;
  }
  w->open_parts++;
  hw_web_http_closed(w);
}
