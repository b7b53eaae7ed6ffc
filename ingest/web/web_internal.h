/* Internal to ingest/web/: the call (one API request from routing to its response), the user a
 * request acts for, the database pool and the helpers every route shares.
 *
 * Ownership: a call is created by the dispatcher and owned by the web module; it lives until the
 * handler ended the response (hw_web_reply*, which frees it) or, when the client went away, until
 * its last asynchronous operation (query, Redis reply, password check) came back. call->req is
 * NULL from the moment the client went away: completions check it before touching the request. */
#ifndef HW_WEB_INTERNAL_H
#define HW_WEB_INTERNAL_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "base/hist.h"
#include "base/table.h"
#include "http/http_server.h"
#include "http/prom.h"
#include "sinks/pg_async.h"
#include "sinks/pg_conn.h" /* hw_pg_sqlstate, hw_pg_errmsg */
#include "sinks/redis_conn.h"
#include "sinks/user_store.h"
#include "web/sse.h"
#include "web/web.h"

#define HW_WEB_COMPONENT "web"
#define HW_WEB_MAX_REGIONS 32
#define HW_WEB_SESSION_COOKIE "hw_session"
/* API tokens are "hwt_" and 64 hex characters, so a leaked one is recognisable in a scan. */
#define HW_WEB_API_TOKEN_PREFIX HW_USER_API_TOKEN_PREFIX

/* HW_ROLE_OPTIONAL is a route's, never a user's: the user is looked up when a credential comes
 * and the handler runs either way (user.id 0, role HW_ROLE_NONE when nobody is logged in), so
 * a page asking whether it is logged in gets an answer, not a 401 its browser reports as an
 * error. */
typedef enum {
  HW_ROLE_OPTIONAL = -1,
  HW_ROLE_NONE = 0,
  HW_ROLE_VIEWER,
  HW_ROLE_OPERATOR,
  HW_ROLE_ADMIN
} hw_web_role;

/* Who a request acts for, resolved from its session cookie or Bearer token before the handler
 * runs. The scope is what every query filters with (README: region scoping). */
typedef struct hw_web_user {
  int64_t id;
  char name[72];
  hw_web_role role;
  size_t nregions;
  char regions[HW_WEB_MAX_REGIONS][8];   /* six-digit GB/T 2260 codes as stored */
  /* PostgreSQL text[] literal of the LIKE patterns of the regions ("{32%,3201%}"), the one
   * parameter every scoped query takes. */
  char scope[HW_WEB_MAX_REGIONS * 9 + 4];
  int by_session; /* 1: cookie session (logout ends it); 0: API token */
  char token_bytea[2 + 2 * 32 + 1]; /* the hash of the session or token, as bytea text */
} hw_web_user;

typedef struct hw_web_call hw_web_call;
typedef void (*hw_web_fn)(hw_web_call *call);
/* res: NULL when the query could not run (database down): answer 503. Owned by the pool. */
typedef void (*hw_web_pg_cb)(hw_web_call *call, const PGresult *res);

typedef struct hw_web_route_def {
  const char *method, *pattern;
  hw_web_fn fn;
  hw_web_role min_role; /* HW_ROLE_NONE: no login needed; HW_ROLE_OPTIONAL: see there */
} hw_web_route_def;

struct hw_web_call {
  hw_web *app;
  hw_http_req *req;  /* NULL once the client went away */
  const hw_web_route_def *route;
  hw_web_user user;  /* valid when route->min_role != HW_ROLE_NONE, from the handler on */
  unsigned pending;  /* asynchronous operations not yet come back */
  hw_web_pg_cb pg_cb;
  int pg_slot;       /* pool connection of the query in flight */
  uint64_t start_ns; /* uv_hrtime() at dispatch, for the latency metric */
  /* The handler's own state: freed with the call by free_state (may be NULL). */
  void *state;
  void (*free_state)(void *state);
};

struct hw_web {
  uv_loop_t *loop;
  hw_web_config cfg; /* strings point into the owned copies below */
  char listen[256], pg[1200], pg_read[1200], redis_host[256], web_root[PATH_MAX];
  char map_style[1024], map_tiles[1024];
  hw_http_server *http;
  hw_http_route *routes; /* owned; args point at binds */
  struct hw_web_bind { hw_web *app; const hw_web_route_def *def; } *binds;
  size_t nroutes;
  /* Owned, npool of them: [0, cfg.pg_pool) on the primary, then (with --pg-read) cfg.pg_pool on
   * the replica. */
  hw_pg_async **pool;
  uint32_t *pool_pending;  /* queries queued per connection, to pick the least busy */
  uint32_t npool;
  uint64_t read_fallbacks; /* read queries sent to the primary because no replica connection was up */
  hw_redis_conn redis;
  int redis_started;
  hw_sse_hub *sse;         /* the live feed (GET /api/v1/stream); one subscription for all */
  char dummy_hash[crypto_pwhash_STRBYTES];
  uint32_t logins_in_flight;
  /* Metrics (web_metrics.c): responses per route (routes[r]) and status class [r * 6 + class],
   * owned; the latency of API requests; login refusals. Counted always, served only with
   * --metrics-listen (metrics_http). */
  const hw_web_route_def *route_defs;
  uint64_t *route_responses;
  hw_lat_hist request_latency;
  uint64_t login_failures, login_limited;
  hw_http_server *metrics_http;
  hw_http_route metrics_route;
  /* Stopping: what is still open (HTTP server, pool connections, Redis, password checks). */
  int stopping;
  unsigned open_parts;
  void (*done_cb)(void *arg);
  void *done_arg;
};

/* --- web_app.c: calls, queries, replies ------------------------------------------------------- */

/* Queues a parameterised query for call (text parameters, copied); cb runs from the loop unless
 * the client went away meanwhile. On failure to queue answers 503 itself and returns nonzero. */
int hw_web_query(hw_web_call *call, const char *sql, int nparams, const char *const *params,
                 hw_web_pg_cb cb) HW_MUST_CHECK;
/* The same for a query that only reads data the daemon and the admins write (lists, tracks,
 * KPIs, reports): on the replica when the process has one (--pg-read) and a connection to it is
 * up, else on the primary. What may lag the primary by the replica's delay goes here; logins,
 * sessions, tokens, admin screens and anything that writes never do. */
int hw_web_query_read(hw_web_call *call, const char *sql, int nparams, const char *const *params,
                      hw_web_pg_cb cb) HW_MUST_CHECK;
/* As hw_web_query_read, with the statement cancelled by the database after timeout_ms (0: none); the
 * callback then gets the error result, SQLSTATE 57014 (hw_web_reply_pg_error answers 504). */
int hw_web_query_read_timed(hw_web_call *call, const char *sql, int nparams,
                            const char *const *params, uint32_t timeout_ms,
                            hw_web_pg_cb cb) HW_MUST_CHECK;
/* Marks/unmarks an asynchronous operation of the call's own (Redis replies, thread pool work).
 * hw_web_async_done returns 1 when the call may go on, 0 when the client went away (the call was
 * freed if that was its last operation: do not touch it). */
void hw_web_async_begin(hw_web_call *call);
int hw_web_async_done(hw_web_call *call);

/* Keeps the module from finishing a stop while work it cannot cancel (a password check on the
 * thread pool) is out; hw_web_release when it came back. */
void hw_web_hold(hw_web *app);
void hw_web_release(hw_web *app);
/* The end of a thread pool job's after-callback (the job held the module with hw_web_hold and the
 * call with hw_web_async_begin): lets both go and returns 1 when the call may go on; 0 when the
 * client went away (the call is gone) or the job was cancelled or the module is stopping (503
 * answered). While the call lives the HTTP server does too, so the release never frees app
 * under a call that is still answered. */
int hw_web_pool_done(hw_web_call *call, int status) HW_MUST_CHECK;

/* The replies end the call (and free it); the request must not be used afterwards. */
void hw_web_reply_json(hw_web_call *call, int status, cJSON *body); /* takes body */
/* 200 with the JSON text PostgreSQL wrote (json_build_object ...), printed again compact so that
 * every answer of the API has the same form; 500 if it does not parse. */
void hw_web_reply_json_text(hw_web_call *call, const char *json);
void hw_web_reply_raw(hw_web_call *call, int status, const char *ctype, const void *body, size_t len);
void hw_web_reply_error(hw_web_call *call, int status, const char *msg);
/* An error result of PostgreSQL as the client should see it: bad input (class 22) 400, else 500
 * (logged). */
void hw_web_reply_pg_error(hw_web_call *call, const PGresult *res, const char *what);

/* The body as JSON: checks size, UTF-8 and syntax; on failure answers 400 and returns NULL. */
cJSON *hw_web_json_body(hw_web_call *call);
/* A string member of obj: NULL if absent; *bad set when present but not a string. */
const char *hw_web_json_str(const cJSON *obj, const char *name, int *bad);

/* --- web_metrics.c: the process's metrics ---------------------------------------------------- */

/* Counts a response of route def (NULL: the page's files) with status; start_ns (0: not timed)
 * feeds the latency histogram. */
void hw_web_count(hw_web *app, const hw_web_route_def *def, int status, uint64_t start_ns);
/* Serves GET /metrics on listen (a server of its own, closed by hw_web_stop). */
int hw_web_metrics_start(hw_web *app, const char *listen) HW_MUST_CHECK;
/* The exposition of app's metrics into out; 0 or -ENOMEM. */
int hw_web_metrics_render(const hw_web *app, hw_prom *out) HW_MUST_CHECK;

/* --- web_query.c: query strings and their checks -------------------------------------------- */

/* The decoded value of name in the request's query string into out (cap bytes): 1 found, 0 not
 * there, -EINVAL malformed (bad %-escape, bad UTF-8, a control character, too long). */
int hw_web_qparam(hw_web_call *call, const char *name, char *out, size_t cap) HW_MUST_CHECK;
/* 1 when s is six ASCII digits. */
int hw_web_region_code_ok(const char *s);
/* 1 when s is a terminal id (hw_terminal_id_check: 1 to 32 letters, digits, _ or -). */
int hw_web_tid_ok(const char *s);
/* The LIKE pattern of a region code (see hw_region_pattern in schema/009_web.sql). */
void hw_web_region_pattern(const char *code, char out[8]);
/* Appends " AND " and fmt (one %d: the parameter's number) to the WHERE clause in where. */
void hw_web_add_pred(char *where, size_t cap, const char *fmt, int param);
/* A list's keyset cursor "MICROSECONDS_ID" (what its next_cursor gave) into its two numbers,
 * each at most 20 digits (buffers of 21); answers 400 itself and returns -EINVAL when cursor is
 * not one. An empty cursor gives two empty strings. */
int hw_web_cursor_parse(hw_web_call *call, const char *cursor, char us[21], char id[21])
    HW_MUST_CHECK;
/* The filters the episode lists share (violations, safety alarms), each optional (""): tid a
 * terminal id, region a six-digit code (its LIKE pattern into regpat, "" without one) and the
 * keyset cursor (hw_web_cursor_parse). Answers 400 naming the first bad one and returns -EINVAL. */
int hw_web_list_filters(hw_web_call *call, const char *tid, const char *region, char regpat[8],
                        const char *cursor, char us[21], char id[21]) HW_MUST_CHECK;
/* Appends the keyset predicate "(ts_col, id_col) < (the cursor's time, its id)", the cursor's
 * two numbers being parameters us_param and us_param + 1. */
void hw_web_add_keyset(char *where, size_t cap, const char *ts_col, const char *id_col,
                       int us_param);
/* 1 when region (six digits) lies in one of user's regions: the C twin of the SQL scope, for
 * filters that run outside PostgreSQL (the live stream). */
int hw_web_user_sees(const hw_web_user *user, const char *region);
/* The user of a call (for routes needing it outside the handler, e.g. the stream's filter). */
const hw_web_user *hw_web_call_user(const hw_web_call *call);
/* For a handler that keeps its request beyond the call (the live stream): copies the user into
 * *user, frees the call and returns the request, which the caller now owns like any http/
 * handler (its own hw_http_on_abort, hw_http_stream_*). Only with no operation pending. */
hw_http_req *hw_web_detach(hw_web_call *call, hw_web_user *user);
const char *hw_web_role_name(hw_web_role r);

/* --- web_table.c: list answers in JSON, CSV or XLSX ----------------------------------------- */

/* The column types and descriptors are base/table.h's (the XLSX writer beneath). */
typedef hw_table_col hw_web_col;
typedef enum { HW_FMT_JSON = 0, HW_FMT_CSV, HW_FMT_XLSX } hw_web_format;

/* ?format=: json (default), csv, xlsx; -EINVAL for others. */
int hw_web_format_of(hw_web_call *call, hw_web_format *out) HW_MUST_CHECK;
/* Answers a list: rows of ncols cells (NULL = no value; cell(row, col, arg) gives them),
 * next_cursor (NULL when last page) and the members of extra (taken; may be NULL) in JSON; a
 * file named filename.csv/.xlsx otherwise (extra dropped). */
void hw_web_reply_table(hw_web_call *call, hw_web_format fmt, const char *filename,
                        const hw_web_col *cols, size_t ncols, size_t nrows,
                        const char *(*cell)(size_t row, size_t col, void *arg), void *arg,
                        const char *next_cursor, cJSON *extra);

/* --- routes ------------------------------------------------------------------------------------ */
void hw_web_login(hw_web_call *call);
void hw_web_logout(hw_web_call *call);
void hw_web_me(hw_web_call *call);
void hw_web_violations_list(hw_web_call *call);
void hw_web_violation_get(hw_web_call *call);
void hw_web_violation_transition(hw_web_call *call);
/* web_alarms.c: active-safety alarms */
void hw_web_alarms_list(hw_web_call *call);
void hw_web_vehicles_list(hw_web_call *call);
void hw_web_vehicle_track(hw_web_call *call);
/* web_attach.c: an alarm's attachments and one attachment's bytes. */
void hw_web_alarm_attachments(hw_web_call *call);
void hw_web_attachment_get(hw_web_call *call);
void hw_web_stream(hw_web_call *call);
/* web_map.c: what the page needs besides the lists */
void hw_web_config_get(hw_web_call *call);
void hw_web_summary(hw_web_call *call);
void hw_web_zones(hw_web_call *call);
void hw_web_regions(hw_web_call *call);
void hw_web_converted_tractors(hw_web_call *call);
/* web_crackdown.c: the three crackdown lists, by the last part of the route's pattern */
void hw_web_crackdown(hw_web_call *call);
/* web_kpi.c: the assessment KPIs and their daily trend */
void hw_web_kpi(hw_web_call *call);
void hw_web_kpi_daily(hw_web_call *call);
/* web_admin.c */
void hw_web_admin_users(hw_web_call *call);
void hw_web_admin_user_add(hw_web_call *call);
void hw_web_admin_user_disable(hw_web_call *call);
void hw_web_admin_user_token(hw_web_call *call);
void hw_web_admin_registry(hw_web_call *call);
void hw_web_admin_zones(hw_web_call *call);
void hw_web_admin_audit(hw_web_call *call);
/* Static files (not an API call: no login, no database). */
void hw_web_static(hw_http_req *req, void *arg);

#endif
