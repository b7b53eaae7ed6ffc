/* The API's data routes: violations (list, one with its evidence track and audit, transition),
 * vehicles (registry joined with the latest state in Redis) and tracks. Every query takes the
 * user's scope (web_internal.h, hw_web_user.scope) as a parameter and filters with
 * coalesce(region, '') LIKE ANY(scope): what lies outside the user's regions is not found (404),
 * exactly as if it did not exist. Every value from the client is a query parameter.
 * Owns each request's vehicle page (registry rows and Redis replies) until it is answered. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "sinks/redis_keys.h"
#include "web/web_internal.h"

/* Text of a timestamptz as JSON writes it: ISO 8601 with the offset (the session's time zone is
 * GMT+8, see hw_web_start). */
#define HW_ISO(col) "to_json(" col ")#>>'{}'"

static int hw_web_id_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n >= 1 && n <= 18 && strspn(s, "0123456789") == n;
}

/* limit: default and bounds depend on the format (an export may be longer than a page). */
static int hw_web_limit(hw_web_call *call, hw_web_format fmt, unsigned *out) {
  char v[16];
  unsigned max = fmt == HW_FMT_JSON ? call->app->cfg.page_max : call->app->cfg.export_max_rows;
  int rc = hw_web_qparam(call, "limit", v, sizeof v);
  if (rc < 0)
    return -EINVAL;
  if (rc == 0) {
    *out = fmt == HW_FMT_JSON ? (max < 100 ? max : 100) : max;
    return 0;
  }
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (!v[0] || *end || v[0] == '-' || n < 1 || n > max)
    return -EINVAL;
  *out = (unsigned)n;
  return 0;
}

/* --- violations ------------------------------------------------------------------------------ */

static const hw_web_col hw_viol_cols[] = {
    {"id", HW_COL_INT},          {"kind", HW_COL_TEXT},       {"state", HW_COL_TEXT},
    {"terminal_id", HW_COL_TEXT}, {"plate", HW_COL_TEXT},     {"region", HW_COL_TEXT},
    {"enterprise", HW_COL_TEXT}, {"started_at", HW_COL_TIME}, {"ended_at", HW_COL_TIME},
    {"last_at", HW_COL_TIME},    {"start_lat", HW_COL_NUM},   {"start_lon", HW_COL_NUM},
    {"measured", HW_COL_NUM},    {"limit_value", HW_COL_NUM}, {"grade", HW_COL_INT},
    {"closed_at", HW_COL_TIME},  {"closed_by", HW_COL_TEXT},  {"close_note", HW_COL_TEXT},
};

#define HW_VIOL_SELECT                                                                        \
  "SELECT id, kind, state, terminal_id, plate, region, enterprise, " HW_ISO("started_at") ", " \
  HW_ISO("ended_at") ", " HW_ISO("last_at") ", start_lat, start_lon, measured, limit_value, " \
  "grade, " HW_ISO("closed_at") ", closed_by, close_note, "                                    \
  "(extract(epoch FROM started_at) * 1000000)::bigint FROM violations"

static const char *hw_web_res_cell(size_t row, size_t col, void *arg) {
  const PGresult *res = arg;
  return PQgetisnull(res, (int)row, (int)col) ? NULL : PQgetvalue(res, (int)row, (int)col);
}

typedef struct hw_web_page_state {
  hw_web_format fmt;
  unsigned limit;
} hw_web_page_state;

static void hw_web_violations_listed(hw_web_call *call, const PGresult *res) {
  hw_web_page_state *ps = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "violations list");
    return;
  }
  size_t n = (size_t)PQntuples(res);
  char cursor[48], *next = NULL;
  if (n > ps->limit) {
    n = ps->limit;
    snprintf(cursor, sizeof cursor, "%s_%s", PQgetvalue(res, (int)n - 1, 18),
             PQgetvalue(res, (int)n - 1, 0));
    next = cursor;
  }
  hw_web_reply_table(call, ps->fmt, "violations", hw_viol_cols, HW_ARRAY_SIZE(hw_viol_cols), n,
                     hw_web_res_cell, (void *)res, next, NULL);
}

void hw_web_violations_list(hw_web_call *call) {
  hw_web_page_state *ps = calloc(1, sizeof *ps);
  if (!ps) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  call->state = ps;
  call->free_state = free;
  char kind[40], state[16], region[16], enterprise[260], since[72], until[72], cursor[48];
  char regpat[8], limit[16], c_us[24], c_id[24], tid[40];
  if (hw_web_format_of(call, &ps->fmt) || hw_web_limit(call, ps->fmt, &ps->limit)) {
    hw_web_reply_error(call, 400, "format is json, csv or xlsx; limit a whole number within the "
                                  "maximum");
    return;
  }
  if (hw_web_qparam(call, "kind", kind, sizeof kind) < 0 ||
      hw_web_qparam(call, "state", state, sizeof state) < 0 ||
      hw_web_qparam(call, "region", region, sizeof region) < 0 ||
      hw_web_qparam(call, "enterprise", enterprise, sizeof enterprise) < 0 ||
      hw_web_qparam(call, "since", since, sizeof since) < 0 ||
      hw_web_qparam(call, "until", until, sizeof until) < 0 ||
      hw_web_qparam(call, "cursor", cursor, sizeof cursor) < 0 ||
      hw_web_qparam(call, "terminal_id", tid, sizeof tid) < 0) {
    hw_web_reply_error(call, 400, "a query parameter is malformed or too long");
    return;
  }
  if (state[0] && strcmp(state, "open") && strcmp(state, "notified") &&
      strcmp(state, "rectifying") && strcmp(state, "closed")) {
    hw_web_reply_error(call, 400, "state is open, notified, rectifying or closed");
    return;
  }
  if (hw_web_list_filters(call, tid, region, regpat, cursor, c_us, c_id))
    return;
  snprintf(limit, sizeof limit, "%u", ps->limit + 1);
  const char *params[11];
  int np = 0;
  char where[1024] = "coalesce(region, '') LIKE ANY($1::text[])";
  params[np++] = call->user.scope;
  /* Each filter its own predicate on its own indexed column, as `violations list` does. */
  if (kind[0]) { params[np++] = kind; hw_web_add_pred(where, sizeof where, "kind = $%d", np); }
  if (state[0]) { params[np++] = state; hw_web_add_pred(where, sizeof where, "state = $%d", np); }
  if (region[0]) { params[np++] = regpat; hw_web_add_pred(where, sizeof where, "region LIKE $%d", np); }
  if (enterprise[0]) { params[np++] = enterprise; hw_web_add_pred(where, sizeof where, "enterprise = $%d", np); }
  if (tid[0]) { params[np++] = tid; hw_web_add_pred(where, sizeof where, "terminal_id = $%d", np); }
  if (since[0]) { params[np++] = since; hw_web_add_pred(where, sizeof where, "started_at >= $%d::timestamptz", np); }
  if (until[0]) { params[np++] = until; hw_web_add_pred(where, sizeof where, "started_at < $%d::timestamptz", np); }
  if (cursor[0]) {
    params[np++] = c_us;
    params[np++] = c_id;
    hw_web_add_keyset(where, sizeof where, "started_at", "id", np - 1);
  }
  params[np++] = limit;
  char sql[2048];
  snprintf(sql, sizeof sql, HW_VIOL_SELECT " WHERE %s ORDER BY started_at DESC, id DESC LIMIT $%d",
           where, np);
  if (hw_web_query_read(call, sql, np, params, hw_web_violations_listed)) {
  }
}

static void hw_web_violation_got(hw_web_call *call, const PGresult *res) {
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "violation get");
    return;
  }
  if (PQntuples(res) != 1) {
    hw_web_reply_error(call, 404, "no such violation");
    return;
  }
  /* Re-printed compact, so that every answer of the API has the same form. */
  hw_web_reply_json_text(call, PQgetvalue(res, 0, 0));
}

void hw_web_violation_get(hw_web_call *call) {
  const char *id = hw_http_param(call->req, "id");
  if (!hw_web_id_ok(id)) {
    hw_web_reply_error(call, 404, "no such violation");
    return;
  }
  char rows[16];
  snprintf(rows, sizeof rows, "%u", call->app->cfg.track_max_rows);
  const char *params[3] = {id, call->user.scope, rows};
  if (hw_web_query_read(
          call,
          "SELECT json_build_object('id', v.id, 'kind', v.kind, 'state', v.state, 'terminal_id', "
          "v.terminal_id, 'plate', v.plate, 'region', v.region, 'enterprise', v.enterprise, "
          "'started_at', v.started_at, 'ended_at', v.ended_at, 'last_at', v.last_at, 'start_lat', "
          "v.start_lat, 'start_lon', v.start_lon, 'measured', v.measured, 'limit_value', "
          "v.limit_value, 'grade', v.grade, 'evidence', v.evidence, 'closed_at', v.closed_at, "
          "'closed_by', v.closed_by, 'close_note', v.close_note, "
          "'next_state', CASE v.state WHEN 'open' THEN 'notified' WHEN 'notified' THEN "
          "'rectifying' WHEN 'rectifying' THEN 'closed' END, "
          "'audit', (SELECT coalesce(json_agg(json_build_object('from', a.from_state, 'to', "
          "a.to_state, 'actor', a.actor, 'note', a.note, 'at', a.at) ORDER BY a.at, a.id), '[]') "
          "FROM violation_audit a WHERE a.violation_id = v.id), "
          "'track', (SELECT coalesce(json_agg(json_build_object('ts', p.ts, 'lat', p.lat, 'lon', "
          "p.lon, 'speed_kmh', p.speed_kmh, 'heading', p.heading, 'quality', p.quality) ORDER BY "
          "p.ts), '[]') FROM (SELECT * FROM positions p WHERE p.terminal_id = v.terminal_id AND "
          "p.ts >= v.started_at AND p.ts <= coalesce(v.ended_at, v.last_at, now()) ORDER BY p.ts "
          "LIMIT $3::int) p))::text FROM violations v WHERE v.id = $1::bigint AND "
          "coalesce(v.region, '') LIKE ANY($2::text[])",
          3, params, hw_web_violation_got)) {
  }
}

typedef struct hw_web_trans_state {
  char id[24];
  char to[16];
} hw_web_trans_state;

static void hw_web_violation_moved(hw_web_call *call, const PGresult *res) {
  hw_web_trans_state *ts = call->state;
  if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
    const char *st = hw_pg_sqlstate(res);
    if (!strcmp(st, "P0002")) {
      hw_web_reply_error(call, 404, "no such violation");
      return;
    }
    if (!strcmp(st, "HW001")) {
      const char *next = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "error", hw_pg_errmsg(res));
      cJSON_AddItemToObject(o, "allowed", next && strcmp(next, "none")
                                              ? cJSON_CreateString(next)
                                              : cJSON_CreateNull());
      hw_web_reply_json(call, 409, o);
      return;
    }
    if (!strcmp(st, "42501")) {
      hw_web_reply_error(call, 403, "your account may not do this");
      return;
    }
  }
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "violation transition");
    return;
  }
  hw_info(HW_WEB_COMPONENT, NULL, "violation %s: %s -> %s by user=%s", ts->id,
          PQgetvalue(res, 0, 0), ts->to, call->user.name);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", strtod(ts->id, NULL));
  cJSON_AddStringToObject(o, "from", PQgetvalue(res, 0, 0));
  cJSON_AddStringToObject(o, "state", ts->to);
  cJSON_AddStringToObject(o, "by", call->user.name);
  hw_web_reply_json(call, 200, o);
}

void hw_web_violation_transition(hw_web_call *call) {
  const char *id = hw_http_param(call->req, "id");
  cJSON *root = NULL;
  if (!hw_web_id_ok(id)) {
    hw_web_reply_error(call, 404, "no such violation");
    return;
  }
  if (!(root = hw_web_json_body(call)))
    return;
  int bad = 0;
  const char *to = hw_web_json_str(root, "to", &bad);
  const char *note = hw_web_json_str(root, "note", &bad);
  hw_web_trans_state *ts = NULL;
  if (bad || !to || strlen(to) >= sizeof ts->to || (note && strlen(note) > 2048)) {
    hw_web_reply_error(call, 400, "give {\"to\": STATE, \"note\": TEXT}: to is notified, "
                                  "rectifying or closed; note at most 2048 bytes");
    goto cleanup;
  }
  if (!(ts = calloc(1, sizeof *ts))) {
    hw_web_reply_error(call, 503, "out of memory");
    goto cleanup;
  }
  snprintf(ts->id, sizeof ts->id, "%s", id);
  snprintf(ts->to, sizeof ts->to, "%s", to);
  call->state = ts;
  call->free_state = free;
  char uid[24];
  snprintf(uid, sizeof uid, "%lld", (long long)call->user.id);
  /* An empty note goes as NULL so that the database, the one place that knows the rules, refuses
   * a close without one with its own message. */
  const char *params[5] = {id, to, uid, note && note[0] ? note : NULL, call->user.scope};
  if (hw_web_query(call, "SELECT hw_web_violation_transition($1::bigint, $2, $3::bigint, $4, "
                         "$5::text[])",
                   5, params, hw_web_violation_moved)) {
  }
cleanup:
  cJSON_Delete(root);
}

/* --- vehicles -------------------------------------------------------------------------------- */

/* Registry columns (from PostgreSQL) then latest-state columns (from Redis, computed here). */
static const hw_web_col hw_veh_cols[] = {
    {"terminal_id", HW_COL_TEXT}, {"plate", HW_COL_TEXT},   {"plate_colour", HW_COL_INT},
    {"class", HW_COL_TEXT},       {"region", HW_COL_TEXT},  {"enterprise", HW_COL_TEXT},
    {"vin", HW_COL_TEXT},         {"status", HW_COL_TEXT},  {"state", HW_COL_TEXT},
    {"ts", HW_COL_TIME},          {"recv_at", HW_COL_TIME}, {"lat", HW_COL_NUM},
    {"lon", HW_COL_NUM},          {"speed_kmh", HW_COL_NUM}, {"heading", HW_COL_INT},
};
#define HW_VEH_PG_COLS 8
#define HW_VEH_REDIS_FIELDS 6 /* ts_ms recv_ms lat lon speed_kmh heading */
#define HW_VEH_NCOLS (sizeof hw_veh_cols / sizeof hw_veh_cols[0])
/* The latest-state columns after a list's registry columns, in hw_veh_cols' order: state, then
 * the Redis fields (ts recv_at lat lon speed_kmh heading). A list is its registry columns (the
 * first one the terminal id, its cursor) followed by these. */
#define HW_VEH_STATE_COLS 7
enum { HW_VS_STATE = 0, HW_VS_TS, HW_VS_RECV, HW_VS_LAT, HW_VS_LON, HW_VS_SPEED };

typedef struct hw_web_veh_slot {
  hw_web_call *call;
  size_t row;
} hw_web_veh_slot;

typedef struct hw_web_veh_state {
  const hw_web_col *cols; /* the answer's columns: pgcols from PostgreSQL, then the state's */
  size_t ncols, pgcols;
  const char *filename;
  hw_web_format fmt;
  unsigned limit;
  char want_state[16];
  int has_bbox;
  double bbox[4]; /* minlon, minlat, maxlon, maxlat */
  size_t nrows, waiting;
  int redis_failed;
  char next[40];
  int has_next;
  char **cells;  /* owned: nrows * ncols strings (NULL = none) */
  hw_web_veh_slot *slots; /* owned: one per row, the privdata of its Redis reply */
  size_t *order; /* rows kept by the filters, in order */
  size_t nkept;
  size_t filtered; /* rows the filters have seen */
  unsigned rounds; /* registry pages read for this answer */
  /* The registry query, run again from next for one more page while the state or bbox filters
   * leave this one short; params point into this struct. */
  char sql[2048];
  const char *params[8];
  int np;
  char regpat[8], enterprise[260], cls[40], cursor[40], limit_text[16];
} hw_web_veh_state;

/* Registry pages read at most for one answer when the state or bbox filters thin them out: the
 * answer is then shorter than limit, and next_cursor goes on from where the reading stopped. */
#define HW_VEH_MAX_ROUNDS 8

static void hw_web_veh_state_free(void *p) {
  hw_web_veh_state *vs = p;
  if (vs->cells)
    for (size_t i = 0; i < vs->nrows * vs->ncols; i++)
      free(vs->cells[i]);
  free(vs->cells);
  free(vs->slots);
  free(vs->order);
  free(vs);
}

static const char *hw_web_veh_cell(size_t row, size_t col, void *arg) {
  hw_web_veh_state *vs = arg;
  return vs->cells[vs->order[row] * vs->ncols + col];
}

/* UTC milliseconds -> ISO 8601 in GMT+8 (as PostgreSQL writes them for this process). */
static void hw_web_iso_ms(long long ms, char *out, size_t cap) {
  time_t t = (time_t)(ms / 1000) + 8 * 3600;
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03lld+08:00", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

static void hw_web_vehicles_fetch(hw_web_call *call);

static void hw_web_vehicles_answer(hw_web_call *call) {
  hw_web_veh_state *vs = call->state;
  hw_web *app = call->app;
  uint64_t now_ms = (uint64_t)time(NULL) * 1000;
  if (vs->redis_failed && (vs->want_state[0] || vs->has_bbox)) {
    hw_web_reply_error(call, 503, "latest state unavailable (Redis), try again");
    return;
  }
  for (size_t r = vs->filtered; r < vs->nrows; r++) {
    char **c = vs->cells + r * vs->ncols + vs->pgcols; /* the state's columns */
    const char *state = "offline";
    if (c[HW_VS_TS] && c[HW_VS_RECV]) {
      long long recv = atoll(c[HW_VS_RECV]);
      double speed = c[HW_VS_SPEED] ? atof(c[HW_VS_SPEED]) : 0;
      if ((long long)now_ms - recv > (long long)app->cfg.offline_after_s * 1000)
        state = "offline";
      else
        state = speed >= app->cfg.moving_min_kmh ? "moving" : "stopped";
      char iso[64];
      hw_web_iso_ms(atoll(c[HW_VS_TS]), iso, sizeof iso);
      free(c[HW_VS_TS]);
      c[HW_VS_TS] = strdup(iso);
      hw_web_iso_ms(recv, iso, sizeof iso);
      free(c[HW_VS_RECV]);
      c[HW_VS_RECV] = strdup(iso);
    } else if (vs->redis_failed) {
      state = NULL; /* unknown, not offline */
    }
    c[HW_VS_STATE] = state ? strdup(state) : NULL;
    if (vs->want_state[0] && (!state || strcmp(state, vs->want_state)))
      continue;
    if (vs->has_bbox) {
      if (!c[HW_VS_LAT] || !c[HW_VS_LON])
        continue;
      double lat = atof(c[HW_VS_LAT]), lon = atof(c[HW_VS_LON]);
      if (lon < vs->bbox[0] || lat < vs->bbox[1] || lon > vs->bbox[2] || lat > vs->bbox[3])
        continue;
    }
    vs->order[vs->nkept++] = r;
  }
  vs->filtered = vs->nrows;
  if (vs->nkept < vs->limit && vs->has_next && vs->rounds < HW_VEH_MAX_ROUNDS) {
    snprintf(vs->cursor, sizeof vs->cursor, "%s", vs->next);
    hw_web_vehicles_fetch(call);
    return;
  }
  if (vs->nkept > vs->limit) {
    /* The last round kept more than fit: the next page starts after the last one shown. */
    vs->nkept = vs->limit;
    snprintf(vs->next, sizeof vs->next, "%s", vs->cells[vs->order[vs->nkept - 1] * vs->ncols]);
    vs->has_next = 1;
  }
  hw_web_reply_table(call, vs->fmt, vs->filename, vs->cols, vs->ncols, vs->nkept,
                     hw_web_veh_cell, vs, vs->has_next ? vs->next : NULL, NULL);
}

static void hw_web_veh_redis_reply(redisAsyncContext *ac, void *r, void *privdata) {
  hw_web_veh_slot *slot = privdata;
  hw_web_call *call = slot->call;
  hw_web *app = call->app;
  redisReply *reply = r;
  int current = hw_redis_conn_reply(&app->redis, ac, reply);
  if (!hw_web_async_done(call))
    return;
  hw_web_veh_state *vs = call->state;
  if (!current || reply->type != REDIS_REPLY_ARRAY || reply->elements != HW_VEH_REDIS_FIELDS) {
    vs->redis_failed = 1;
  } else {
    char **c = vs->cells + slot->row * vs->ncols + vs->pgcols;
    for (size_t i = 0; i < HW_VEH_REDIS_FIELDS; i++) {
      redisReply *e = reply->element[i];
      if (e->type == REDIS_REPLY_STRING && e->len < 32 && !memchr(e->str, 0, e->len))
        c[HW_VS_TS + i] = strndup(e->str, e->len);
    }
  }
  if (--vs->waiting == 0)
    hw_web_vehicles_answer(call);
}

static void hw_web_vehicles_listed(hw_web_call *call, const PGresult *res) {
  hw_web_veh_state *vs = call->state;
  hw_web *app = call->app;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "vehicles list");
    return;
  }
  size_t n = (size_t)PQntuples(res), base = vs->nrows;
  vs->has_next = 0;
  if (n > vs->limit) {
    n = vs->limit;
    snprintf(vs->next, sizeof vs->next, "%s", PQgetvalue(res, (int)n - 1, 0));
    vs->has_next = 1;
  }
  /* Rows of earlier rounds stay; no Redis reply is outstanding now, so the slots may move. */
  char **cells = realloc(vs->cells, ((base + n) * vs->ncols + 1) * sizeof *cells);
  if (cells)
    vs->cells = cells;
  hw_web_veh_slot *slots = cells ? realloc(vs->slots, (base + n + 1) * sizeof *slots) : NULL;
  if (slots)
    vs->slots = slots;
  size_t *order = slots ? realloc(vs->order, (base + n + 1) * sizeof *order) : NULL;
  if (order)
    vs->order = order;
  if (!order) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  memset(vs->cells + base * vs->ncols, 0, (n * vs->ncols + 1) * sizeof *vs->cells);
  vs->nrows = base + n;
  for (size_t r = 0; r < n; r++)
    for (size_t c = 0; c < vs->pgcols; c++)
      if (!PQgetisnull(res, (int)r, (int)c) &&
          !(vs->cells[(base + r) * vs->ncols + c] = strdup(PQgetvalue(res, (int)r, (int)c)))) {
        hw_web_reply_error(call, 503, "out of memory");
        return;
      }
  if (!app->redis.up) {
    vs->redis_failed = 1;
    hw_web_vehicles_answer(call);
    return;
  }
  /* One pipelined HMGET per vehicle of the page: hiredis writes them together. */
  for (size_t r = base; r < base + n; r++) {
    vs->slots[r] = (hw_web_veh_slot){call, r};
    const char *tid = vs->cells[r * vs->ncols];
    size_t tlen = strlen(tid);
    char key[HW_REDIS_VEH_KEY_HEAD + 64 + 1];
    if (tlen > 64) { /* never a registry terminal id (schema: at most 32 characters) */
      vs->redis_failed = 1;
      break;
    }
    size_t klen = hw_redis_key_veh(key, tid, tlen);
    if (redisAsyncCommand(app->redis.ac, hw_web_veh_redis_reply, &vs->slots[r],
                          "HMGET %b ts_ms recv_ms lat lon speed_kmh heading", key,
                          klen) != REDIS_OK) {
      vs->redis_failed = 1;
      break;
    }
    hw_redis_conn_sent(&app->redis);
    hw_web_async_begin(call);
    vs->waiting++;
  }
  if (vs->waiting == 0)
    hw_web_vehicles_answer(call);
}

/* The state of a vehicle table answer (owned by call, freed with it), its format and limit read
 * from the query; NULL when the call was answered (503 out of memory, 400 bad format or limit). */
static hw_web_veh_state *hw_web_veh_begin(hw_web_call *call, const hw_web_col *cols, size_t ncols,
                                          size_t pgcols, const char *filename) {
  hw_web_veh_state *vs = calloc(1, sizeof *vs);
  if (!vs) {
    hw_web_reply_error(call, 503, "out of memory");
    return NULL;
  }
  call->state = vs;
  call->free_state = hw_web_veh_state_free;
  vs->cols = cols;
  vs->ncols = ncols;
  vs->pgcols = pgcols;
  vs->filename = filename;
  if (hw_web_format_of(call, &vs->fmt) || hw_web_limit(call, vs->fmt, &vs->limit)) {
    hw_web_reply_error(call, 400, "format is json, csv or xlsx; limit a whole number within the "
                                  "maximum");
    return NULL;
  }
  return vs;
}

void hw_web_vehicles_list(hw_web_call *call) {
  hw_web_veh_state *vs =
      hw_web_veh_begin(call, hw_veh_cols, HW_VEH_NCOLS, HW_VEH_PG_COLS, "vehicles");
  if (!vs)
    return;
  char region[16], enterprise[260], cls[40], bbox[128], cursor[40];
  if (hw_web_qparam(call, "region", region, sizeof region) < 0 ||
      hw_web_qparam(call, "enterprise", enterprise, sizeof enterprise) < 0 ||
      hw_web_qparam(call, "class", cls, sizeof cls) < 0 ||
      hw_web_qparam(call, "state", vs->want_state, sizeof vs->want_state) < 0 ||
      hw_web_qparam(call, "bbox", bbox, sizeof bbox) < 0 ||
      hw_web_qparam(call, "cursor", cursor, sizeof cursor) < 0) {
    hw_web_reply_error(call, 400, "a query parameter is malformed or too long");
    return;
  }
  if (region[0] && !hw_web_region_code_ok(region)) {
    hw_web_reply_error(call, 400, "region is a six-digit GB/T 2260 code");
    return;
  }
  if (vs->want_state[0] && strcmp(vs->want_state, "moving") && strcmp(vs->want_state, "stopped") &&
      strcmp(vs->want_state, "offline")) {
    hw_web_reply_error(call, 400, "state is moving, stopped or offline");
    return;
  }
  if (bbox[0]) {
    double *b = vs->bbox;
    int used = 0;
    if (sscanf(bbox, "%lf,%lf,%lf,%lf%n", &b[0], &b[1], &b[2], &b[3], &used) != 4 ||
        (size_t)used != strlen(bbox) || !isfinite(b[0]) || !isfinite(b[1]) || !isfinite(b[2]) ||
        !isfinite(b[3]) || b[0] > b[2] || b[1] > b[3]) {
      hw_web_reply_error(call, 400, "bbox is minlon,minlat,maxlon,maxlat");
      return;
    }
    vs->has_bbox = 1;
  }
  if (cursor[0] && !hw_web_tid_ok(cursor)) {
    hw_web_reply_error(call, 400, "cursor is not one this API gave");
    return;
  }
  snprintf(vs->limit_text, sizeof vs->limit_text, "%u", vs->limit + 1);
  snprintf(vs->enterprise, sizeof vs->enterprise, "%s", enterprise);
  snprintf(vs->cls, sizeof vs->cls, "%s", cls);
  snprintf(vs->cursor, sizeof vs->cursor, "%s", cursor);
  const char **params = vs->params;
  int np = 0;
  char where[512] = "terminal_id IS NOT NULL AND region LIKE ANY($1::text[])";
  params[np++] = call->user.scope;
  if (region[0]) {
    hw_web_region_pattern(region, vs->regpat);
    params[np++] = vs->regpat;
    hw_web_add_pred(where, sizeof where, "region LIKE $%d", np);
  }
  if (enterprise[0]) { params[np++] = vs->enterprise; hw_web_add_pred(where, sizeof where, "enterprise = $%d", np); }
  if (cls[0]) { params[np++] = vs->cls; hw_web_add_pred(where, sizeof where, "class_code = $%d", np); }
  /* The cursor is always a parameter ('' is before every terminal id): the next round only
   * changes its value. */
  params[np++] = vs->cursor;
  hw_web_add_pred(where, sizeof where, "terminal_id > $%d", np);
  params[np++] = vs->limit_text;
  vs->np = np;
  snprintf(vs->sql, sizeof vs->sql,
           "SELECT terminal_id, plate, plate_colour, class_code, region, enterprise, vin, status "
           "FROM vehicles WHERE %s ORDER BY terminal_id LIMIT $%d",
           where, np);
  hw_web_vehicles_fetch(call);
}

static void hw_web_vehicles_fetch(hw_web_call *call) {
  hw_web_veh_state *vs = call->state;
  vs->rounds++;
  if (hw_web_query_read(call, vs->sql, vs->np, vs->params, hw_web_vehicles_listed)) {
  }
}

/* --- converted tractors ---------------------------------------------------------------------- */

/* Every vehicle of a class with a phase-out date (retired_after; converted tractors after
 * 2025-12-31) in the user's regions: whether it moved after that date (a retired_class violation
 * exists), when and where last (that violation's last_at, and the stored position at or just
 * before it, else where the episode started), its open violations, then the latest state from
 * Redis as the vehicle list gives it. */
static const hw_web_col hw_tractor_cols[] = {
    {"terminal_id", HW_COL_TEXT},  {"plate", HW_COL_TEXT},
    {"region", HW_COL_TEXT},       {"enterprise", HW_COL_TEXT},
    {"class", HW_COL_TEXT},        {"retired_after", HW_COL_TEXT},
    {"moved_after_retirement", HW_COL_BOOL}, {"last_moved_at", HW_COL_TIME},
    {"last_lat", HW_COL_NUM},      {"last_lon", HW_COL_NUM},
    {"open_violations", HW_COL_INT},
    {"state", HW_COL_TEXT},        {"ts", HW_COL_TIME},
    {"recv_at", HW_COL_TIME},      {"lat", HW_COL_NUM},
    {"lon", HW_COL_NUM},           {"speed_kmh", HW_COL_NUM},
    {"heading", HW_COL_INT},
};
#define HW_TRACTOR_PG_COLS 11

void hw_web_converted_tractors(hw_web_call *call) {
  hw_web_veh_state *vs = hw_web_veh_begin(call, hw_tractor_cols, HW_ARRAY_SIZE(hw_tractor_cols),
                                          HW_TRACTOR_PG_COLS, "converted-tractors");
  if (!vs)
    return;
  char cursor[40];
  if (hw_web_qparam(call, "cursor", cursor, sizeof cursor) < 0 ||
      (cursor[0] && !hw_web_tid_ok(cursor))) {
    hw_web_reply_error(call, 400, "cursor is not one this API gave");
    return;
  }
  snprintf(vs->cursor, sizeof vs->cursor, "%s", cursor);
  snprintf(vs->limit_text, sizeof vs->limit_text, "%u", vs->limit + 1);
  vs->params[0] = call->user.scope;
  vs->params[1] = vs->cursor;
  vs->params[2] = vs->limit_text;
  vs->np = 3;
  /* The query lives beside the phase-out list's in sinks/crackdown_query.c. */
  snprintf(vs->sql, sizeof vs->sql, "%s", hw_cd_tractors_sql);
  hw_web_vehicles_fetch(call);
}

/* --- tracks ---------------------------------------------------------------------------------- */

static const hw_web_col hw_track_cols[] = {
    {"ts", HW_COL_TIME},      {"lat", HW_COL_NUM},     {"lon", HW_COL_NUM},
    {"speed_kmh", HW_COL_NUM}, {"heading", HW_COL_INT}, {"alt_m", HW_COL_INT},
    {"quality", HW_COL_INT},
};
#define HW_TRACK_FIRST 3 /* result columns before the points: visible, total, step */

typedef struct hw_web_track_state {
  hw_web_format fmt;
  char tid[40];
} hw_web_track_state;

static const char *hw_web_track_cell(size_t row, size_t col, void *arg) {
  return hw_web_res_cell(row, col + HW_TRACK_FIRST, arg);
}

static void hw_web_track_got(hw_web_call *call, const PGresult *res) {
  hw_web_track_state *ts = call->state;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "track");
    return;
  }
  if (PQntuples(res) < 1 || strcmp(PQgetvalue(res, 0, 0), "t")) {
    hw_web_reply_error(call, 404, "no such vehicle");
    return;
  }
  /* No points: the one row is the header joined with nothing. */
  size_t n = PQgetisnull(res, 0, HW_TRACK_FIRST) ? 0 : (size_t)PQntuples(res);
  cJSON *extra = cJSON_CreateObject();
  cJSON_AddStringToObject(extra, "terminal_id", ts->tid);
  cJSON_AddNumberToObject(extra, "total", atof(PQgetvalue(res, 0, 1)));
  cJSON_AddNumberToObject(extra, "thin", atof(PQgetvalue(res, 0, 2)));
  cJSON_AddStringToObject(extra, "from", PQgetvalue(res, 0, HW_TRACK_FIRST + 7));
  cJSON_AddStringToObject(extra, "to", PQgetvalue(res, 0, HW_TRACK_FIRST + 8));
  hw_web_reply_table(call, ts->fmt, "track", hw_track_cols, HW_ARRAY_SIZE(hw_track_cols), n,
                     hw_web_track_cell, (void *)res, NULL, extra);
}

void hw_web_vehicle_track(hw_web_call *call) {
  const char *tid = hw_http_param(call->req, "terminal_id");
  if (!hw_web_tid_ok(tid)) {
    hw_web_reply_error(call, 404, "no such vehicle");
    return;
  }
  hw_web_track_state *ts = calloc(1, sizeof *ts);
  if (!ts) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  call->state = ts;
  call->free_state = free;
  snprintf(ts->tid, sizeof ts->tid, "%s", tid);
  char from[72], to[72], thin[16], rows[16];
  if (hw_web_format_of(call, &ts->fmt) || hw_web_qparam(call, "from", from, sizeof from) < 0 ||
      hw_web_qparam(call, "to", to, sizeof to) < 0 ||
      hw_web_qparam(call, "thin", thin, sizeof thin) < 0) {
    hw_web_reply_error(call, 400, "a query parameter is malformed or too long");
    return;
  }
  if (thin[0] && (strspn(thin, "0123456789") != strlen(thin) || strlen(thin) > 6 || !atoi(thin))) {
    hw_web_reply_error(call, 400, "thin is a whole number from 1 (every point) to 999999");
    return;
  }
  snprintf(rows, sizeof rows, "%u", call->app->cfg.track_max_rows);
  const char *params[6] = {tid, call->user.scope, from[0] ? from : NULL, to[0] ? to : NULL,
                           thin[0] ? thin : "1", rows};
  /* Default range: the last 24 h. Thinning keeps every step-th point, step the larger of thin
   * and what brings the range under track_max_rows. */
  if (hw_web_query_read(
          call,
          "WITH vis AS (SELECT EXISTS (SELECT 1 FROM vehicles v WHERE v.terminal_id = $1 AND "
          "v.region LIKE ANY($2::text[])) AS visible), "
          "rng AS (SELECT coalesce($3::timestamptz, coalesce($4::timestamptz, now()) - interval "
          "'1 day') AS lo, coalesce($4::timestamptz, now()) AS hi), "
          "pts AS (SELECT p.ts, p.lat, p.lon, p.speed_kmh, p.heading, p.alt_m, p.quality, "
          "row_number() OVER (ORDER BY p.ts) - 1 AS rn FROM positions p, rng, vis WHERE "
          "vis.visible AND p.terminal_id = $1 AND p.ts >= rng.lo AND p.ts < rng.hi), "
          "h AS (SELECT vis.visible, (SELECT count(*) FROM pts) AS total FROM vis), "
          "s AS (SELECT h.*, greatest($5::int, ceil(h.total::numeric / $6::int)::int, 1) AS step "
          "FROM h) "
          "SELECT s.visible, s.total, s.step, " HW_ISO("x.ts") ", x.lat, x.lon, x.speed_kmh, "
          "x.heading, x.alt_m, x.quality, " HW_ISO("rng.lo") ", " HW_ISO("rng.hi") " FROM s "
          "CROSS JOIN rng LEFT JOIN LATERAL (SELECT * FROM pts WHERE pts.rn % s.step = 0 ORDER "
          "BY pts.ts LIMIT $6::int) x ON true ORDER BY x.ts",
          6, params, hw_web_track_got)) {
  }
}
