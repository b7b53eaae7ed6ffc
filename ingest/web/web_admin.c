/* The admin routes of the API: users (list, add, disable, new token), the vehicle registry and
 * zones imports, and the audit of all of them (README, "The API: haulwatch web", Admin).
 * Nobody changes what is not theirs: an admin sees and changes only users whose every region lies
 * within the admin's (a user outside answers 404, like one that does not exist), creates users
 * only for regions within its own (403 otherwise), and imports only vehicles of its regions (the
 * whole import refused with the offending lines). Zones belong to no region (a zone applies to
 * every vehicle that enters it, and importing replaces zones by name, whoever made them), so only
 * an admin of the whole country (000000) imports them.
 *
 * The checks, hashing and statements are those of `haulwatch user`, `registry import` and
 * `zones import` (sinks/user_store.h, registry/registry_csv.h, registry/zones_geojson.h and the
 * SQL functions of schema/011_admin_audit.sql); every change writes its admin_audit row in the
 * same statement. Owns each request's state (freed with the call); a password is hashed on the
 * libuv thread pool, never on the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/text.h"
#include "registry/registry_csv.h"
#include "registry/zones_geojson.h"
#include "sinks/user_store.h"
#include "web/web_internal.h"

/* --- shared ----------------------------------------------------------------------------------- */

static int hw_web_admin_everywhere(const hw_web_user *u) {
  for (size_t i = 0; i < u->nregions; i++)
    if (!strcmp(u->regions[i], "000000"))
      return 1;
  return 0;
}

static int hw_web_admin_limit(hw_web_call *call, unsigned *out) {
  char v[16];
  int rc = hw_web_qparam(call, "limit", v, sizeof v);
  if (rc < 0)
    return rc;
  *out = 100;
  if (rc == 0)
    return 0;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (*end || !v[0] || v[0] == '-' || n < 1 || n > call->app->cfg.page_max)
    return -EINVAL;
  *out = (unsigned)n;
  return 0;
}

static void hw_web_admin_id(const hw_web_call *call, char out[24]) {
  snprintf(out, 24, "%lld", (long long)call->user.id);
}

static cJSON *hw_web_regions_json(const char *csv) {
  cJSON *arr = cJSON_CreateArray();
  for (const char *p = csv; arr && *p;) {
    size_t n = strcspn(p, ",");
    char code[8];
    if (n == 6) {
      memcpy(code, p, 6);
      code[6] = 0;
      cJSON_AddItemToArray(arr, cJSON_CreateString(code));
    }
    p += n + (p[n] == ',');
  }
  return arr;
}

/* A text cell or JSON null. */
static void hw_web_add_cell(cJSON *o, const char *name, const PGresult *res, int row, int col) {
  if (PQgetisnull(res, row, col))
    cJSON_AddNullToObject(o, name);
  else
    cJSON_AddStringToObject(o, name, PQgetvalue(res, row, col));
}

#define HW_ISO(col) "to_json(" col ")#>>'{}'"

/* --- GET /api/v1/admin/users ----------------------------------------------------------------- */

typedef struct hw_web_list_state {
  unsigned limit;
  char cursor[72];
  char limit_text[16];
} hw_web_list_state;

/* The list's state, owned by call (freed with it); NULL when out of memory (503 answered). */
static hw_web_list_state *hw_web_list_begin(hw_web_call *call) {
  hw_web_list_state *ls = calloc(1, sizeof *ls);
  if (!ls) {
    hw_web_reply_error(call, 503, "out of memory");
    return NULL;
  }
  call->state = ls;
  call->free_state = free;
  return ls;
}

/* Answers a page of a list (takes o): the query asked one row more than the limit, so more says
 * a next page exists, and its cursor is the first column of the last row shown. */
static void hw_web_list_reply(hw_web_call *call, cJSON *o, const PGresult *res, int more,
                              int shown) {
  if (more)
    cJSON_AddStringToObject(o, "next_cursor", PQgetvalue(res, shown - 1, 0));
  else
    cJSON_AddNullToObject(o, "next_cursor");
  hw_web_reply_json(call, 200, o);
}

static void hw_web_admin_users_listed(hw_web_call *call, const PGresult *res) {
  hw_web_list_state *ls = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "admin users list");
    return;
  }
  int n = PQntuples(res);
  cJSON *o = cJSON_CreateObject();
  cJSON *items = cJSON_AddArrayToObject(o, "items");
  int shown = n > (int)ls->limit ? (int)ls->limit : n;
  for (int i = 0; i < shown; i++) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddItemToArray(items, it);
    cJSON_AddStringToObject(it, "user", PQgetvalue(res, i, 0));
    cJSON_AddStringToObject(it, "role", PQgetvalue(res, i, 1));
    cJSON_AddItemToObject(it, "regions", hw_web_regions_json(PQgetvalue(res, i, 2)));
    cJSON_AddBoolToObject(it, "disabled", !strcmp(PQgetvalue(res, i, 3), "t"));
    hw_web_add_cell(it, "created_at", res, i, 4);
    hw_web_add_cell(it, "last_login", res, i, 5);
  }
  hw_web_list_reply(call, o, res, n > (int)ls->limit, shown);
}

void hw_web_admin_users(hw_web_call *call) {
  hw_web_list_state *ls = hw_web_list_begin(call);
  if (!ls)
    return;
  if (hw_web_admin_limit(call, &ls->limit) ||
      hw_web_qparam(call, "cursor", ls->cursor, sizeof ls->cursor) < 0 ||
      (ls->cursor[0] && !hw_user_name_ok(ls->cursor))) {
    hw_web_reply_error(call, 400, "limit is a whole number within the maximum; cursor one this "
                                  "API gave");
    return;
  }
  snprintf(ls->limit_text, sizeof ls->limit_text, "%u", ls->limit + 1);
  const char *params[3] = {call->user.scope, ls->cursor, ls->limit_text};
  /* created_at and the last login as ISO 8601 with the offset, like every time of the API */
  static const char sql[] =
      "SELECT name, role, regions, disabled, " HW_ISO("created_at") ", " HW_ISO("last_login")
      " FROM (" HW_USER_SQL_LIST ") x(name, role, regions, disabled, created_at, last_login) "
      "ORDER BY name";
  if (hw_web_query(call, sql, 3, params, hw_web_admin_users_listed)) {
  }
}

/* --- POST /api/v1/admin/users ---------------------------------------------------------------- */

typedef struct hw_web_add_state {
  uv_work_t work;
  hw_web_call *call;
  char name[72], role[16];
  char regions[HW_USER_MAX_REGIONS][8];
  size_t nregions;
  char regions_lit[HW_USER_MAX_REGIONS * 8 + 4];
  char *password; /* owned, wiped before free; NULL: tokens only */
  size_t password_len;
  char hash[crypto_pwhash_STRBYTES];
  int hash_rc;
  char actor_id[24];
} hw_web_add_state;

static void hw_web_add_state_free(void *p) {
  hw_web_add_state *st = p;
  if (st->password) {
    sodium_memzero(st->password, st->password_len);
    free(st->password);
  }
  sodium_memzero(st->hash, sizeof st->hash);
  free(st);
}

static void hw_web_admin_user_added(hw_web_call *call, const PGresult *res) {
  hw_web_add_state *st = call->state;
  if (res && PQresultStatus(res) == PGRES_FATAL_ERROR && !strcmp(hw_pg_sqlstate(res), "23505")) {
    hw_web_reply_error(call, 409, "a user of that name exists");
    return;
  }
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_web_reply_pg_error(call, res, "admin user add");
    return;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "admin user=%s added user=%s role=%s regions=%s", call->user.name,
          st->name, st->role, st->regions_lit);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "user", st->name);
  cJSON_AddStringToObject(o, "role", st->role);
  cJSON *r = cJSON_AddArrayToObject(o, "regions");
  for (size_t i = 0; i < st->nregions; i++)
    cJSON_AddItemToArray(r, cJSON_CreateString(st->regions[i]));
  cJSON_AddBoolToObject(o, "password", st->password != NULL);
  hw_web_reply_json(call, 201, o);
}

static void hw_web_admin_user_insert(hw_web_call *call) {
  hw_web_add_state *st = call->state;
  const char *params[6] = {st->name, st->role, st->password ? st->hash : NULL, st->regions_lit,
                           st->actor_id, call->user.name};
  if (hw_web_query(call, HW_USER_SQL_ADD, 6, params, hw_web_admin_user_added)) {
  }
}

static void hw_web_admin_hash_work(uv_work_t *w) {
  hw_web_add_state *st = w->data;
  st->hash_rc = hw_user_hash_password(st->password, st->password_len, st->hash);
  sodium_memzero(st->password, st->password_len);
}

static void hw_web_admin_hash_after(uv_work_t *w, int status) {
  hw_web_add_state *st = w->data;
  hw_web_call *call = st->call;
  hw_web *app = call->app;
  app->logins_in_flight--;
  if (!hw_web_pool_done(call, status))
    return;
  if (st->hash_rc) {
    hw_web_reply_error(call, st->hash_rc == -EINVAL ? 400 : 503,
                       st->hash_rc == -EINVAL ? "the password must be 1 to 1024 bytes of text"
                                              : "out of memory, try again");
    return;
  }
  hw_web_admin_user_insert(call);
}

void hw_web_admin_user_add(hw_web_call *call) {
  hw_web *app = call->app;
  cJSON *root = hw_web_json_body(call);
  if (!root)
    return;
  int bad = 0;
  const char *name = hw_web_json_str(root, "user", &bad);
  const char *role = hw_web_json_str(root, "role", &bad);
  const char *password = hw_web_json_str(root, "password", &bad);
  const cJSON *regions = cJSON_GetObjectItemCaseSensitive(root, "regions");
  hw_web_add_state *st = NULL;
  if (bad || !name || !role || !cJSON_IsArray(regions)) {
    hw_web_reply_error(call, 400, "give {\"user\": NAME, \"role\": ROLE, \"regions\": [CODE, ...], "
                                  "\"password\": PW (optional)}");
    goto done;
  }
  if (!hw_user_name_ok(name) || !hw_user_role_ok(role)) {
    hw_web_reply_error(call, 400, "user is 1-64 of A-Z a-z 0-9 _ . @ -; role viewer, operator or "
                                  "admin");
    goto done;
  }
  int nreg = cJSON_GetArraySize(regions);
  if (nreg < 1 || nreg > HW_USER_MAX_REGIONS) {
    hw_web_reply_error(call, 400, "regions: 1 to 32 six-digit GB/T 2260 codes");
    goto done;
  }
  st = calloc(1, sizeof *st);
  if (!st) {
    hw_web_reply_error(call, 503, "out of memory");
    goto done;
  }
  call->state = st;
  call->free_state = hw_web_add_state_free;
  st->call = call;
  snprintf(st->name, sizeof st->name, "%s", name);
  snprintf(st->role, sizeof st->role, "%s", role);
  hw_web_admin_id(call, st->actor_id);
  const cJSON *it;
  cJSON_ArrayForEach(it, regions) {
    if (!cJSON_IsString(it) || !hw_user_region_ok(it->valuestring)) {
      hw_web_reply_error(call, 400, "regions: 1 to 32 six-digit GB/T 2260 codes");
      goto done;
    }
    /* Nobody gives what is not theirs: every region within one of the admin's. */
    if (!hw_web_user_sees(&call->user, it->valuestring)) {
      hw_warn(HW_WEB_COMPONENT, NULL, "admin user=%s refused: user %s for region %s outside its own",
              call->user.name, st->name, it->valuestring);
      hw_web_reply_error(call, 403, "a region outside your regions");
      goto done;
    }
    memcpy(st->regions[st->nregions++], it->valuestring, 7);
  }
  /* Roles are viewer < operator < admin: never above the creator's own. */
  hw_web_role want = !strcmp(role, "admin") ? HW_ROLE_ADMIN
                     : !strcmp(role, "operator") ? HW_ROLE_OPERATOR : HW_ROLE_VIEWER;
  if (want > call->user.role) {
    hw_web_reply_error(call, 403, "a role above your own");
    goto done;
  }
  if (hw_user_regions_literal((const char (*)[8])st->regions, st->nregions, st->regions_lit,
                              sizeof st->regions_lit)) {
    hw_web_reply_error(call, 400, "too many regions");
    goto done;
  }
  if (!password) {
    hw_web_admin_user_insert(call);
    goto done;
  }
  size_t plen = strlen(password);
  if (plen == 0 || plen > HW_USER_MAX_PASSWORD) {
    hw_web_reply_error(call, 400, "the password must be 1 to 1024 bytes of text");
    goto done;
  }
  /* Hashing costs what a login check does (64 MiB, ~0.1 s): the same bound on how many at once. */
  if (app->logins_in_flight >= app->cfg.max_logins_in_flight) {
    if (hw_http_add_header(call->req, "Retry-After", "1")) {
    }
    hw_web_reply_error(call, 503, "too many password hashes at once; try again in a second");
    goto done;
  }
  if (!(st->password = malloc(plen + 1))) {
    hw_web_reply_error(call, 503, "out of memory");
    goto done;
  }
  memcpy(st->password, password, plen + 1);
  st->password_len = plen;
  st->work.data = st;
  if (uv_queue_work(app->loop, &st->work, hw_web_admin_hash_work, hw_web_admin_hash_after)) {
    hw_web_reply_error(call, 503, "try again");
    goto done;
  }
  hw_web_hold(app);
  app->logins_in_flight++;
  hw_web_async_begin(call);
done:
  if (password)
    sodium_memzero((void *)password, strlen(password));
  cJSON_Delete(root);
}

/* --- POST /api/v1/admin/users/{name}/disable and /token ------------------------------------- */

typedef struct hw_web_token_state {
  char token[HW_USER_API_TOKEN_LEN + 1];
  char name[72];
} hw_web_token_state;

static void hw_web_token_state_free(void *p) {
  sodium_memzero(p, sizeof(hw_web_token_state));
  free(p);
}

static void hw_web_admin_user_disabled(hw_web_call *call, const PGresult *res) {
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_web_reply_pg_error(call, res, "admin user disable");
    return;
  }
  const char *name = hw_http_param(call->req, "name");
  if (strcmp(PQgetvalue(res, 0, 0), "1")) {
    hw_web_reply_error(call, 404, "no such user");
    return;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "admin user=%s disabled user=%s", call->user.name, name);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "user", name);
  cJSON_AddBoolToObject(o, "disabled", 1);
  hw_web_reply_json(call, 200, o);
}

void hw_web_admin_user_disable(hw_web_call *call) {
  const char *name = hw_http_param(call->req, "name");
  if (!name || !hw_user_name_ok(name)) {
    hw_web_reply_error(call, 404, "no such user");
    return;
  }
  if (!strcmp(name, call->user.name)) {
    hw_web_reply_error(call, 409, "you cannot disable yourself");
    return;
  }
  char id[24];
  hw_web_admin_id(call, id);
  const char *params[4] = {call->user.scope, name, id, call->user.name};
  if (hw_web_query(call, HW_USER_SQL_DISABLE, 4, params, hw_web_admin_user_disabled)) {
  }
}

static void hw_web_admin_token_made(hw_web_call *call, const PGresult *res) {
  hw_web_token_state *st = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_web_reply_pg_error(call, res, "admin user token");
    return;
  }
  if (strcmp(PQgetvalue(res, 0, 0), "1")) {
    hw_web_reply_error(call, 404, "no such enabled user");
    return;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "admin user=%s made a token for user=%s", call->user.name,
          st->name);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "user", st->name);
  cJSON_AddStringToObject(o, "token", st->token);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!text) {
    hw_web_reply_error(call, 500, "out of memory");
    return;
  }
  size_t len = strlen(text);
  hw_web_reply_raw(call, 200, "application/json", text, len);
  sodium_memzero(text, len);
  free(text);
}

void hw_web_admin_user_token(hw_web_call *call) {
  const char *name = hw_http_param(call->req, "name");
  if (!name || !hw_user_name_ok(name)) {
    hw_web_reply_error(call, 404, "no such enabled user");
    return;
  }
  hw_web_token_state *st = calloc(1, sizeof *st);
  if (!st) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  call->state = st;
  call->free_state = hw_web_token_state_free;
  snprintf(st->name, sizeof st->name, "%s", name);
  char hb[2 + 2 * HW_TOKEN_HASH_LEN + 1], id[24];
  if (hw_user_token_new(st->token, hb)) {
    hw_web_reply_error(call, 500, "internal error");
    return;
  }
  hw_web_admin_id(call, id);
  const char *params[5] = {call->user.scope, name, hb, id, call->user.name};
  if (hw_web_query(call, HW_USER_SQL_TOKEN, 5, params, hw_web_admin_token_made)) {
  }
}

/* --- imports ---------------------------------------------------------------------------------- */

/* Problems of an import, as {"line"|"feature": N, "error": msg}; at most this many kept (the
 * count says how many there were), so that a bad file of a million rows answers briefly. */
#define HW_WEB_IMPORT_MAX_ERRORS 1000

/* An import: the body's text is parsed and checked on the libuv thread pool (a 16 MiB file takes
 * seconds, and the loop serves every other request and live feed meanwhile), then handed to the
 * SQL function. Between queue and after-work only the worker touches the state; it reads
 * call->user, which does not change while the call lives (the call is held by the work). */
typedef struct hw_web_import_state {
  uv_work_t work;
  hw_web_call *call;
  int zones;          /* 0: the registry CSV; 1: a GeoJSON FeatureCollection */
  char *input;        /* owned copy of the CSV or GeoJSON text (the request may go away) */
  size_t input_len;
  PGresult *classes;  /* owned copy (PQcopyResult) of the vehicle classes, for the worker */
  char *body_text;    /* owned (cJSON_free): the JSON array handed to the SQL function */
  cJSON *errors;      /* owned */
  unsigned nerrors;
  const char *key;    /* "line" or "feature" */
  const char *refusal;/* set by the worker: the import is refused with this and errors */
  int dry_run;
  int rc;             /* the worker's: 0, -ENOMEM, -EINVAL (bad: the body is not what it must be) */
  const char *bad;    /* the 400's message with -EINVAL */
  const char *what;   /* for logs */
} hw_web_import_state;

static void hw_web_import_state_free(void *p) {
  hw_web_import_state *st = p;
  free(st->input);
  PQclear(st->classes);
  cJSON_free(st->body_text);
  cJSON_Delete(st->errors);
  free(st);
}

static void hw_web_import_error(hw_web_import_state *st, unsigned n, const char *msg) {
  if (st->nerrors++ >= HW_WEB_IMPORT_MAX_ERRORS)
    return;
  cJSON *e = cJSON_CreateObject();
  if (!e)
    return;
  if (n)
    cJSON_AddNumberToObject(e, st->key, n);
  else
    cJSON_AddNullToObject(e, st->key);
  cJSON_AddStringToObject(e, "error", msg);
  cJSON_AddItemToArray(st->errors, e);
}

static void hw_web_import_report(void *arg, unsigned line, const char *msg) {
  hw_web_import_error(arg, line, msg);
}

static void hw_web_zones_report(void *arg, int feature, const char *msg) {
  hw_web_import_error(arg, feature > 0 ? (unsigned)feature : 0, msg);
}

/* The state of an import of text[0..len) (copied). NULL: answered 503. */
static hw_web_import_state *hw_web_import_begin(hw_web_call *call, int zones, const char *text,
                                                size_t len) {
  hw_web_import_state *st = calloc(1, sizeof *st);
  if (!st || !(st->errors = cJSON_CreateArray()) || !(st->input = malloc(len + 1))) {
    if (st)
      cJSON_Delete(st->errors);
    free(st);
    hw_web_reply_error(call, 503, "out of memory");
    return NULL;
  }
  memcpy(st->input, text, len);
  st->input[len] = 0;
  st->input_len = len;
  st->zones = zones;
  st->key = zones ? "feature" : "line";
  st->what = zones ? "zones import" : "registry import";
  st->call = call;
  call->state = st;
  call->free_state = hw_web_import_state_free;
  return st;
}

/* 400 with every problem: nothing was imported. */
static void hw_web_import_refuse(hw_web_call *call, int status, const char *msg) {
  hw_web_import_state *st = call->state;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "error", msg);
  cJSON_AddNumberToObject(o, "error_count", st->nerrors);
  cJSON_AddItemToObject(o, "errors", st->errors);
  st->errors = NULL;
  hw_warn(HW_WEB_COMPONENT, NULL, "admin user=%s %s refused: %u problems", call->user.name,
          st->what, st->nerrors);
  hw_web_reply_json(call, status, o);
}

/* The SQL function's answer: {"errors": [...]} (nothing changed) or the counts. */
static void hw_web_import_done(hw_web_call *call, const PGresult *res) {
  hw_web_import_state *st = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_web_reply_pg_error(call, res, st->what);
    return;
  }
  cJSON *out = cJSON_Parse(PQgetvalue(res, 0, 0));
  if (!out) {
    hw_web_reply_error(call, 500, "internal error");
    return;
  }
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(out, "errors");
  if (errs) {
    const cJSON *e;
    cJSON_ArrayForEach(e, errs) {
      const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, st->key);
      const cJSON *why = cJSON_GetObjectItemCaseSensitive(e, "error");
      const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
      char msg[768];
      if (cJSON_IsString(nm))
        snprintf(msg, sizeof msg, "feature %d (%s): %s", cJSON_IsNumber(n) ? n->valueint : 0,
                 nm->valuestring, cJSON_IsString(why) ? why->valuestring : "?");
      else
        snprintf(msg, sizeof msg, "%s", cJSON_IsString(why) ? why->valuestring : "?");
      hw_web_import_error(st, cJSON_IsNumber(n) ? (unsigned)n->valueint : 0, msg);
    }
    cJSON_Delete(out);
    hw_web_import_refuse(call, 400, "nothing imported");
    return;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "admin user=%s %s%s: %s", call->user.name, st->what,
          st->dry_run ? " (dry run)" : "", PQgetvalue(res, 0, 0));
  hw_web_reply_json(call, 200, out);
}

/* The worker's part of a registry import: the CLI's parser and checks, then every row's region
 * within the admin's (checked here for the message by line, and again in SQL, which also refuses
 * updating a vehicle registered elsewhere). */
static void hw_web_registry_work(hw_web_import_state *st) {
  const hw_web_user *user = &st->call->user;
  hw_import im = {.path = "csv", .classes = st->classes, .report = hw_web_import_report,
                  .report_arg = st};
  /* The body {"csv": TEXT, "dry_run": bool}, checked here too: megabytes of JSON take the loop's
   * time otherwise (hw_web_json_body's checks, in the same order). */
  cJSON *root = NULL;
  FILE *f = NULL;
  if (!hw_utf8_valid(st->input, st->input_len) || memchr(st->input, 0, st->input_len)) {
    st->rc = -EINVAL;
    st->bad = "the body is not valid UTF-8";
    return;
  }
  const char *end = NULL;
  root = cJSON_ParseWithLengthOpts(st->input, st->input_len, &end, 0);
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "csv");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dry_run");
  if (!cJSON_IsObject(root) || !cJSON_IsString(c) || !c->valuestring ||
      (d && !cJSON_IsBool(d) && !cJSON_IsNull(d))) {
    st->rc = -EINVAL;
    st->bad = "give {\"csv\": \"the registry CSV text\", \"dry_run\": false}";
    goto out;
  }
  st->dry_run = cJSON_IsTrue(d);
  size_t clen = strlen(c->valuestring);
  f = clen ? fmemopen(c->valuestring, clen, "rb") : NULL;
  if (!f && clen) {
    st->rc = -ENOMEM;
    goto out;
  }
  int rc = f ? hw_registry_csv_read(&im, f) : 0;
  if (f)
    fclose(f);
  if (rc) {
    st->rc = -ENOMEM;
    goto out;
  }
  if (im.fatal || im.nbad || im.ncols == 0) {
    if (im.ncols == 0 && !im.fatal && !im.nbad)
      hw_web_import_error(st, 0, "empty file (the first row must name the columns)");
    st->refusal = "nothing imported";
    goto out;
  }
  for (size_t i = 0; i < im.nrows; i++) {
    const char *region = im.rows[i].f[HW_COL_REGION];
    if (!region || !hw_web_user_sees(user, region)) {
      char msg[96];
      snprintf(msg, sizeof msg, "region %s is outside your regions", region ? region : "(none)");
      hw_web_import_error(st, im.rows[i].line, msg);
    }
  }
  if (st->nerrors) {
    st->refusal = "nothing imported";
    goto out;
  }
  cJSON *rows = hw_registry_rows_json(&im);
  st->body_text = rows ? cJSON_PrintUnformatted(rows) : NULL;
  cJSON_Delete(rows);
  if (!st->body_text)
    st->rc = -ENOMEM;
out:
  hw_registry_csv_free(&im);
  cJSON_Delete(root);
}

/* The worker's part of a zones import: the CLI's parser and checks. */
static void hw_web_zones_work(hw_web_import_state *st) {
  hw_zones_ctx z = {.path = "body", .classes = st->classes, .report = hw_web_zones_report,
                    .report_arg = st};
  cJSON *root = NULL;
  const cJSON *feats = NULL;
  hw_zone_in *zs = NULL;
  int n = 0;
  /* (cJSON keeps the position of its last parse error in a global: two imports failing at once
   * could swap their "near byte" numbers; nothing else is shared) */
  if (hw_zones_parse_doc(&z, st->input, st->input_len, &root, &feats)) {
    st->refusal = "not a GeoJSON FeatureCollection; nothing imported";
    goto out;
  }
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dry_run");
  if (d && !cJSON_IsBool(d)) {
    st->rc = -EINVAL;
    st->bad = "dry_run is true or false";
    goto out;
  }
  st->dry_run = cJSON_IsTrue(d);
  int rc = hw_zones_parse_features(&z, feats, &zs, &n);
  if (rc == -ENOMEM) {
    st->rc = -ENOMEM;
    goto out;
  }
  if (rc || z.nbad) {
    st->refusal = "nothing imported";
    goto out;
  }
  cJSON *arr = hw_zones_json(zs, n);
  st->body_text = arr ? cJSON_PrintUnformatted(arr) : NULL;
  cJSON_Delete(arr);
  if (!st->body_text)
    st->rc = -ENOMEM;
out:
  hw_zones_free(zs, n);
  cJSON_Delete(root);
}

static void hw_web_import_work(uv_work_t *w) {
  hw_web_import_state *st = w->data;
  if (st->zones)
    hw_web_zones_work(st);
  else
    hw_web_registry_work(st);
  /* the text is no longer needed: its memory goes back before the query's */
  free(st->input);
  st->input = NULL;
}

static void hw_web_import_after(uv_work_t *w, int status) {
  hw_web_import_state *st = w->data;
  hw_web_call *call = st->call;
  if (!hw_web_pool_done(call, status))
    return;
  if (st->rc) {
    hw_web_reply_error(call, st->rc == -EINVAL ? 400 : 503,
                       st->rc == -EINVAL ? st->bad : "out of memory");
    return;
  }
  if (st->refusal) {
    hw_web_import_refuse(call, 400, st->refusal);
    return;
  }
  char id[24];
  hw_web_admin_id(call, id);
  if (st->zones) {
    const char *params[4] = {st->body_text, id, call->user.name, st->dry_run ? "true" : "false"};
    if (hw_web_query(call, "SELECT hw_admin_import_zones($1::jsonb, $2::bigint, $3, $4::boolean)",
                     4, params, hw_web_import_done)) {
    }
    return;
  }
  const char *params[5] = {st->body_text, call->user.scope, id, call->user.name,
                           st->dry_run ? "true" : "false"};
  if (hw_web_query(call,
                   "SELECT hw_admin_import_vehicles($1::jsonb, $2::text[], $3::bigint, $4, "
                   "$5::boolean)",
                   5, params, hw_web_import_done)) {
  }
}

/* The vehicle classes came back: the parse goes to the thread pool with a copy of them. */
static void hw_web_import_classes(hw_web_call *call, const PGresult *res) {
  hw_web_import_state *st = call->state;
  hw_web *app = call->app;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "import: vehicle classes");
    return;
  }
  st->classes = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
  if (!st->classes) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  st->work.data = st;
  if (uv_queue_work(app->loop, &st->work, hw_web_import_work, hw_web_import_after)) {
    hw_web_reply_error(call, 503, "try again");
    return;
  }
  hw_web_hold(app);
  hw_web_async_begin(call);
}

/* POST /api/v1/admin/registry {"csv": TEXT, "dry_run": bool}: the body goes to the worker as
 * it came (hw_web_registry_work checks it). */
void hw_web_admin_registry(hw_web_call *call) {
  size_t len = 0;
  const uint8_t *body = hw_http_body(call->req, &len);
  if (!len) {
    hw_web_reply_error(call, 400, "a JSON body is required");
    return;
  }
  if (hw_web_import_begin(call, 0, (const char *)body, len) &&
      hw_web_query(call, "SELECT code, name_zh, name_en FROM vehicle_classes", 0, NULL,
                   hw_web_import_classes)) {
  }
}

/* POST /api/v1/admin/zones: a GeoJSON FeatureCollection ("dry_run": true beside "features"
 * checks only). Zones belong to no region (the file's header comment says why): whole country
 * only. */
void hw_web_admin_zones(hw_web_call *call) {
  if (!hw_web_admin_everywhere(&call->user)) {
    hw_web_reply_error(call, 403, "zones belong to no region: only an admin of the whole country "
                                  "(000000) imports them");
    return;
  }
  size_t len = 0;
  const uint8_t *body = hw_http_body(call->req, &len);
  if (!len || !hw_utf8_valid((const char *)body, len) || memchr(body, 0, len)) {
    hw_web_reply_error(call, 400, "the body is not a UTF-8 GeoJSON document");
    return;
  }
  if (hw_web_import_begin(call, 1, (const char *)body, len) &&
      hw_web_query(call, "SELECT code, name_zh FROM vehicle_classes", 0, NULL,
                   hw_web_import_classes)) {
  }
}

/* --- GET /api/v1/admin/audit ------------------------------------------------------------------ */

/* An admin sees the changes of the users it may see (and of itself), and the command line's
 * only when it sees the whole country: imports and users of any region come from there. */
static void hw_web_admin_audit_listed(hw_web_call *call, const PGresult *res) {
  hw_web_list_state *ls = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "admin audit list");
    return;
  }
  int n = PQntuples(res);
  int shown = n > (int)ls->limit ? (int)ls->limit : n;
  cJSON *o = cJSON_CreateObject();
  cJSON *items = cJSON_AddArrayToObject(o, "items");
  for (int i = 0; i < shown; i++) {
    cJSON *it = cJSON_CreateObject();
    cJSON_AddItemToArray(items, it);
    cJSON_AddNumberToObject(it, "id", strtod(PQgetvalue(res, i, 0), NULL));
    hw_web_add_cell(it, "at", res, i, 1);
    cJSON_AddStringToObject(it, "user", PQgetvalue(res, i, 2));
    cJSON_AddStringToObject(it, "action", PQgetvalue(res, i, 3));
    cJSON_AddStringToObject(it, "object", PQgetvalue(res, i, 4));
    cJSON *detail = cJSON_Parse(PQgetvalue(res, i, 5));
    cJSON_AddItemToObject(it, "detail", detail ? detail : cJSON_CreateNull());
  }
  hw_web_list_reply(call, o, res, n > (int)ls->limit, shown);
}

void hw_web_admin_audit(hw_web_call *call) {
  hw_web_list_state *ls = hw_web_list_begin(call);
  if (!ls)
    return;
  if (hw_web_admin_limit(call, &ls->limit) ||
      hw_web_qparam(call, "cursor", ls->cursor, sizeof ls->cursor) < 0 ||
      (ls->cursor[0] && (strlen(ls->cursor) > 18 ||
                         strspn(ls->cursor, "0123456789") != strlen(ls->cursor)))) {
    hw_web_reply_error(call, 400, "limit is a whole number within the maximum; cursor one this "
                                  "API gave");
    return;
  }
  snprintf(ls->limit_text, sizeof ls->limit_text, "%u", ls->limit + 1);
  char id[24];
  hw_web_admin_id(call, id);
  const char *params[5] = {call->user.scope, ls->cursor[0] ? ls->cursor : NULL, ls->limit_text, id,
                           hw_web_admin_everywhere(&call->user) ? "true" : "false"};
  if (hw_web_query(call,
                   "SELECT a.id, " HW_ISO("a.at") ", a.user_name, a.action, a.object, a.detail "
                   "FROM admin_audit a LEFT JOIN web_users u ON u.id = a.user_id "
                   "WHERE ($2::bigint IS NULL OR a.id < $2::bigint) AND (a.user_id = $4::bigint "
                   "OR (u.id IS NOT NULL AND " HW_USER_SQL_IN_SCOPE("u") ") OR (a.user_id IS "
                   "NULL AND $5::boolean)) ORDER BY a.id DESC LIMIT $3::integer",
                   5, params, hw_web_admin_audit_listed)) {
  }
}
