#include "registry/registry_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "base/geo.h"
#include "base/log.h"
#include "base/text.h"
#include "registry/plate_index.h"
#include "sinks/pg_conn.h"

/* A lookup entry: the hash key lives in the item (terminal id or class code). */
typedef struct hw_snap_key {
  const void *item;
  UT_hash_handle hh;
} hw_snap_key;


/* Day boundaries are fixed UTC offsets (base/geo.h), which keeps the result independent of the
 * server's time zone data and of the session TimeZone. */
#define HW_GMT8_S HW_XSTR(HW_CST_OFFSET_S)

/* Each query's columns are read by position in the matching hw_build_* function. */
#define HW_Q_CLASSES                                                                               \
  "SELECT code, round(speed_limit_kmh * 10), coalesce(round(expressway_limit_kmh * 10), 0), "    \
  "expressway_allowed::int, speeding_min_s, continuous_limit_s, min_rest_s, "                   \
  "coalesce(daily_limit_s, 0), night_rules::int, coalesce(night_continuous_limit_s, 0), "       \
  "night_speed_pct, "                                                                            \
  "coalesce(((extract(epoch FROM (retired_after + 1)::timestamp) - " HW_GMT8_S ") * 1000)::bigint, 0) " \
  "FROM vehicle_classes ORDER BY code COLLATE \"C\""

#define HW_Q_VEHICLES                                                                              \
  "SELECT terminal_id, plate, plate_colour, coalesce(vin, ''), region, coalesce(enterprise, ''), " \
  "coalesce(permit_no, ''), "                                                                    \
  "coalesce(((extract(epoch FROM (permit_expires + 1)::timestamp) - " HW_GMT8_S ") * 1000)::bigint, 0), " \
  "status, class_code FROM vehicles WHERE terminal_id IS NOT NULL ORDER BY terminal_id COLLATE \"C\""

/* Rings as text "lon lat,lon lat,...;..." in 1e-6 degrees, polygon by polygon, outer ring first
 * (ST_DumpPoints paths are {polygon, ring, point}): trivially parsed, exact, no WKB reader. */
#define HW_Q_ZONES                                                                                 \
  "SELECT z.id, z.name, (z.kind = 'no_entry')::int, coalesce(round(z.limit_kmh * 10), 0), "      \
  "z.is_expressway::int, coalesce(array_to_string(z.classes, ','), ''), "                        \
  "coalesce(extract(epoch FROM z.from_time)::int / 60, 0), "                                     \
  "coalesce(extract(epoch FROM z.to_time)::int / 60, 0), "                                       \
  "(SELECT string_agg(r.pts, ';' ORDER BY r.poly, r.ring) FROM "                                 \
  "(SELECT d.path[1] AS poly, d.path[2] AS ring, string_agg(round(ST_X(d.geom) * 1e6)::bigint "  \
  "|| ' ' || round(ST_Y(d.geom) * 1e6)::bigint, ',' ORDER BY d.path[3]) AS pts "                 \
  "FROM ST_DumpPoints(z.geom) d GROUP BY 1, 2) r) "                                              \
  "FROM zones z ORDER BY z.id"

/* One transaction so that the three tables are read at the same instant. */
static const char hw_q_load[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " HW_Q_CLASSES
                                "; " HW_Q_VEHICLES "; " HW_Q_ZONES "; COMMIT";

enum { HW_R_BEGIN, HW_R_CLASSES, HW_R_VEHICLES, HW_R_ZONES, HW_R_COMMIT, HW_R_COUNT };

/* ---- snapshots ---------------------------------------------------------------------------- */

const hw_registry_snapshot *hw_registry_snapshot_ref(const hw_registry_snapshot *s) {
  ((hw_registry_snapshot *)s)->refs++;
  return s;
}

static void hw_snapshot_free(hw_registry_snapshot *s) {
  HASH_CLEAR(hh, s->by_terminal);
  HASH_CLEAR(hh, s->by_code);
  hw_plate_index_free(s->plates);
  free(s->mem);
  for (size_t i = 0; i < s->nzones; i++) {
    hw_zone *z = (hw_zone *)&s->zones[i];
    free(z->pts);
    free(z->ring_starts);
    free(z->classes);
  }
  free((void *)s->zones);
  free((void *)s->vehicles);
  free((void *)s->classes);
  free(s);
}

void hw_registry_snapshot_unref(const hw_registry_snapshot *s) {
  hw_registry_snapshot *m = (hw_registry_snapshot *)s;
  if (m && --m->refs == 0)
    hw_snapshot_free(m);
}

const hw_vehicle *hw_registry_snapshot_vehicle(const hw_registry_snapshot *s, const char *terminal_id) {
  hw_snap_key *k = NULL;
  if (!s || !terminal_id)
    return NULL;
  HASH_FIND(hh, s->by_terminal, terminal_id, strlen(terminal_id), k);
  return k ? k->item : NULL;
}

const hw_vehicle *hw_registry_snapshot_by_plate(const hw_registry_snapshot *s, const char *plate,
                                                uint8_t colour) {
  return s ? hw_plate_index_find(s->plates, plate, colour) : NULL;
}

const hw_vehicle_class *hw_registry_snapshot_class(const hw_registry_snapshot *s, const char *code) {
  hw_snap_key *k = NULL;
  if (!s || !code)
    return NULL;
  HASH_FIND(hh, s->by_code, code, strlen(code), k);
  return k ? k->item : NULL;
}

/* Copies at most cap - 1 bytes, never cutting a UTF-8 character in two. The schema's limits
 * match the struct sizes, so this only guards against a schema changed behind our back. */
static void hw_copy_str(char *dst, size_t cap, const char *src) {
  hw_utf8_truncate(dst, cap, src, strlen(src));
}

static int64_t hw_val(const PGresult *r, int row, int col) {
  return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static uint32_t hw_val_u32(const PGresult *r, int row, int col) {
  int64_t v = hw_val(r, row, col);
  return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int hw_build_classes(hw_registry_snapshot *s, const PGresult *r) {
  int n = PQntuples(r);
  hw_vehicle_class *cls = calloc(n ? (size_t)n : 1, sizeof *cls);
  if (!cls)
    return -ENOMEM;
  for (int i = 0; i < n; i++) {
    hw_vehicle_class *c = &cls[i];
    hw_copy_str(c->code, sizeof c->code, PQgetvalue(r, i, 0));
    c->speed_limit_dkmh = hw_val_u32(r, i, 1);
    c->expressway_limit_dkmh = hw_val_u32(r, i, 2);
    c->expressway_allowed = hw_val(r, i, 3) != 0;
    c->speeding_min_s = hw_val_u32(r, i, 4);
    c->continuous_limit_s = hw_val_u32(r, i, 5);
    c->min_rest_s = hw_val_u32(r, i, 6);
    c->daily_limit_s = hw_val_u32(r, i, 7);
    c->night_rules = hw_val(r, i, 8) != 0;
    c->night_continuous_limit_s = hw_val_u32(r, i, 9);
    c->night_speed_pct = hw_val_u32(r, i, 10);
    c->retired_after_ms = hw_val(r, i, 11);
  }
  s->classes = cls;
  s->nclasses = (size_t)n;
  return 0;
}

static int hw_build_vehicles(hw_registry_snapshot *s, const PGresult *r, char *err, size_t errlen) {
  int n = PQntuples(r);
  hw_vehicle *veh = calloc(n ? (size_t)n : 1, sizeof *veh);
  if (!veh)
    return -ENOMEM;
  s->vehicles = veh; /* freed with the snapshot from here on */
  for (int i = 0; i < n; i++) {
    hw_vehicle *v = &veh[i];
    const char *status = PQgetvalue(r, i, 8);
    hw_copy_str(v->terminal_id, sizeof v->terminal_id, PQgetvalue(r, i, 0));
    hw_copy_str(v->plate, sizeof v->plate, PQgetvalue(r, i, 1));
    v->plate_colour = (uint8_t)hw_val(r, i, 2);
    hw_copy_str(v->vin, sizeof v->vin, PQgetvalue(r, i, 3));
    hw_copy_str(v->region, sizeof v->region, PQgetvalue(r, i, 4));
    hw_copy_str(v->enterprise, sizeof v->enterprise, PQgetvalue(r, i, 5));
    hw_copy_str(v->permit_no, sizeof v->permit_no, PQgetvalue(r, i, 6));
    v->permit_expires_ms = hw_val(r, i, 7);
    v->status = !strcmp(status, "scrapped")       ? HW_VEH_SCRAPPED
                : !strcmp(status, "deregistered") ? HW_VEH_DEREGISTERED
                                                  : HW_VEH_ACTIVE;
    v->cls = hw_registry_snapshot_class(s, PQgetvalue(r, i, 9));
    if (!v->cls) {
      /* Cannot happen within one transaction (foreign key); refuse rather than guess. */
      snprintf(err, errlen, "vehicle %s has class %s, which is not loaded", v->plate,
               PQgetvalue(r, i, 9));
      return -EPROTO;
    }
  }
  s->nvehicles = (size_t)n;
  return 0;
}

/* Parses "x y,x y;x y,..." into z->pts / z->ring_starts and the bounding box. */
static int hw_parse_rings(hw_zone *z, const char *text) {
  size_t npts = 1, nrings = 1;
  for (const char *p = text; *p; p++) {
    npts += *p == ',' || *p == ';';
    nrings += *p == ';';
  }
  z->pts = malloc(npts * 2 * sizeof *z->pts);
  z->ring_starts = malloc(nrings * sizeof *z->ring_starts);
  if (!z->pts || !z->ring_starts)
    return -ENOMEM;
  z->min_lat = z->min_lon = INT32_MAX;
  z->max_lat = z->max_lon = INT32_MIN;
  const char *p = text;
  size_t k = 0, r = 0;
  z->ring_starts[r++] = 0;
  for (;;) {
    char *end;
    long long x = strtoll(p, &end, 10);
    if (end == p || *end != ' ')
      return -EPROTO;
    p = end + 1;
    long long y = strtoll(p, &end, 10);
    if (end == p || x < -180000000 || x > 180000000 || y < -90000000 || y > 90000000 || k >= npts)
      return -EPROTO;
    z->pts[2 * k] = (int32_t)x;
    z->pts[2 * k + 1] = (int32_t)y;
    k++;
    if (y < z->min_lat)
      z->min_lat = (int32_t)y;
    if (y > z->max_lat)
      z->max_lat = (int32_t)y;
    if (x < z->min_lon)
      z->min_lon = (int32_t)x;
    if (x > z->max_lon)
      z->max_lon = (int32_t)x;
    if (*end == '\0')
      break;
    if (*end == ';') {
      if (r >= nrings)
        return -EPROTO;
      z->ring_starts[r++] = (uint32_t)k;
    } else if (*end != ',') {
      return -EPROTO;
    }
    p = end + 1;
  }
  z->npts = k;
  z->nrings = r;
  return 0;
}

static int hw_parse_classes(hw_zone *z, const char *text) {
  if (!*text)
    return 0; /* all classes */
  size_t n = 1;
  for (const char *p = text; *p; p++)
    n += *p == ',';
  z->classes = calloc(n, sizeof *z->classes);
  if (!z->classes)
    return -ENOMEM;
  const char *p = text;
  for (size_t i = 0; i < n; i++) {
    size_t len = strcspn(p, ",");
    if (len > HW_CLASS_CODE_MAX)
      return -EPROTO;
    memcpy(z->classes[i], p, len);
    z->classes[i][len] = '\0';
    p += len + (p[len] == ',');
  }
  z->nclasses = n;
  return 0;
}

static int hw_build_zones(hw_registry_snapshot *s, const PGresult *r, char *err, size_t errlen) {
  int n = PQntuples(r);
  hw_zone *zones = calloc(n ? (size_t)n : 1, sizeof *zones);
  if (!zones)
    return -ENOMEM;
  s->zones = zones; /* freed with the snapshot from here on, including partly built zones */
  for (int i = 0; i < n; i++) {
    hw_zone *z = &zones[i];
    s->nzones = (size_t)i + 1;
    z->id = hw_val(r, i, 0);
    hw_copy_str(z->name, sizeof z->name, PQgetvalue(r, i, 1));
    z->kind = hw_val(r, i, 2) ? HW_ZONE_NO_ENTRY : HW_ZONE_SPEED_LIMIT;
    z->limit_dkmh = hw_val_u32(r, i, 3);
    z->is_expressway = hw_val(r, i, 4) != 0;
    z->from_min = (uint16_t)hw_val_u32(r, i, 6);
    z->to_min = (uint16_t)hw_val_u32(r, i, 7);
    int rc = hw_parse_classes(z, PQgetvalue(r, i, 5));
    if (rc == 0)
      rc = hw_parse_rings(z, PQgetvalue(r, i, 8));
    if (rc == -EPROTO)
      snprintf(err, errlen, "zone %lld (%s): unreadable classes or rings", (long long)z->id, z->name);
    if (rc)
      return rc;
  }
  return 0;
}

/* Allocates the keys of classes and of nvehicles vehicles, and indexes the classes. */
static int hw_build_index(hw_registry_snapshot *s, size_t nvehicles) {
  hw_snap_key *keys = calloc(s->nclasses + nvehicles + 1, sizeof *keys);
  if (!keys)
    return -ENOMEM;
  s->mem = keys;
  for (size_t i = 0; i < s->nclasses; i++) {
    hw_snap_key *k = keys++;
    k->item = &s->classes[i];
    HASH_ADD_KEYPTR(hh, s->by_code, s->classes[i].code, strlen(s->classes[i].code), k);
  }
  return 0;
}

static int hw_build_vehicle_index(hw_registry_snapshot *s, char *err, size_t errlen) {
  hw_snap_key *keys = (hw_snap_key *)s->mem + s->nclasses;
  for (size_t i = 0; i < s->nvehicles; i++) {
    const hw_vehicle *v = &s->vehicles[i];
    if (hw_registry_snapshot_vehicle(s, v->terminal_id)) {
      snprintf(err, errlen, "terminal %s is bound to two vehicles", v->terminal_id);
      return -EPROTO; /* the UNIQUE constraint makes this impossible; never pick one silently */
    }
    hw_snap_key *k = keys++;
    k->item = v;
    HASH_ADD_KEYPTR(hh, s->by_terminal, v->terminal_id, strlen(v->terminal_id), k);
  }
  /* The plate index (JT/T 809), rebuilt with every snapshot. */
  return hw_plate_index_build(s->vehicles, s->nvehicles, &s->plates, err, errlen);
}

/* Builds a snapshot (one reference) from the load's results. Touches nothing but its arguments,
 * so it runs on the thread pool. */
static int hw_snapshot_build(PGresult *const res[HW_R_COUNT], hw_registry_snapshot **out, char *err,
                             size_t errlen) {
  hw_registry_snapshot *s = calloc(1, sizeof *s);
  int rc;
  if (!s)
    return -ENOMEM;
  s->refs = 1;
  /* Classes first: the index over them resolves each vehicle's class. */
  if ((rc = hw_build_classes(s, res[HW_R_CLASSES])) ||
      (rc = hw_build_index(s, (size_t)PQntuples(res[HW_R_VEHICLES]))) ||
      (rc = hw_build_vehicles(s, res[HW_R_VEHICLES], err, errlen)) ||
      (rc = hw_build_vehicle_index(s, err, errlen)) ||
      (rc = hw_build_zones(s, res[HW_R_ZONES], err, errlen)))
    goto fail;
  *out = s;
  return 0;
fail:
  if (rc == -ENOMEM)
    snprintf(err, errlen, "out of memory");
  hw_snapshot_free(s);
  return rc;
}

/* Files one result of hw_q_load; the first error is kept in err. */
static void hw_collect(PGresult *res[HW_R_COUNT], int *nres, PGresult *r, char *err, size_t errlen) {
  ExecStatusType want = (*nres == HW_R_BEGIN || *nres == HW_R_COMMIT) ? PGRES_COMMAND_OK
                                                                       : PGRES_TUPLES_OK;
  if (*nres < HW_R_COUNT && PQresultStatus(r) == want && !err[0]) {
    res[(*nres)++] = r;
    return;
  }
  if (!err[0]) {
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(err, errlen, "%s", m ? m : PQresStatus(PQresultStatus(r)));
  }
  PQclear(r);
}

static void hw_results_clear(PGresult *res[HW_R_COUNT], int *nres) {
  for (int i = 0; i < *nres; i++) {
    PQclear(res[i]);
    res[i] = NULL;
  }
  *nres = 0;
}

int hw_registry_snapshot_load(PGconn *conn, hw_registry_snapshot **out) {
  PGresult *res[HW_R_COUNT] = {0}, *r;
  int nres = 0, rc;
  char err[256] = "";
  if (!PQsendQuery(conn, hw_q_load)) {
    hw_error("registry", NULL, "cannot send the registry query: %s", PQerrorMessage(conn));
    return -EIO;
  }
  while ((r = PQgetResult(conn)))
    hw_collect(res, &nres, r, err, sizeof err);
  if (PQtransactionStatus(conn) != PQTRANS_IDLE)
    PQclear(PQexec(conn, "ROLLBACK"));
  if (err[0] || nres != HW_R_COUNT) {
    hw_error("registry", NULL, "registry load failed: %s", err[0] ? err : "results missing");
    hw_results_clear(res, &nres);
    return -EIO;
  }
  rc = hw_snapshot_build(res, out, err, sizeof err);
  if (rc)
    hw_error("registry", NULL, "registry snapshot not built: %s", err);
  hw_results_clear(res, &nres);
  return rc;
}

/* ---- the cache ---------------------------------------------------------------------------- */

typedef enum { HW_RC_IDLE = 0, HW_RC_LISTEN, HW_RC_LOAD, HW_RC_ROLLBACK } hw_rc_inflight;

struct hw_registry_cache {
  uv_loop_t *loop;
  hw_pg_conn conn;
  hw_registry *terminals;            /* borrowed */
  hw_registry_swap_cb swap_cb;
  void *swap_arg;
  const hw_registry_snapshot *current; /* one reference held; NULL before the first load */
  uv_timer_t timer;                  /* debounce after a notification, retry after a failure */
  hw_rc_inflight inflight;           /* what the connection is running */
  int listening;                     /* LISTEN done on the current session */
  int want_load;                     /* a load is due */
  int building;                      /* a build job is on the thread pool */
  PGresult *res[HW_R_COUNT];         /* owned: the load's results so far */
  int nres;
  char err[256];                     /* first error of the load in flight */
  int64_t load_started_ms;
  hw_registry_cache_stats stats;
  int closing, conn_closed, timer_closed;
  void (*done_cb)(void *arg);
  void *done_arg;
};

typedef struct hw_build_job {
  uv_work_t work;
  hw_registry_cache *cache;
  PGresult *res[HW_R_COUNT];   /* owned, moved from the cache */
  hw_registry_snapshot *snap;  /* the result, one reference */
  int rc;
  char err[256];
} hw_build_job;

static void hw_rc_maybe_load(hw_registry_cache *c);
static void hw_rc_maybe_done(hw_registry_cache *c);

static void hw_rc_on_timer(uv_timer_t *t) {
  hw_registry_cache *c = t->data;
  c->want_load = 1;
  hw_rc_maybe_load(c);
}

static void hw_rc_retry_later(hw_registry_cache *c) {
  c->stats.loads_failed++;
  if (!c->closing)
    uv_timer_start(&c->timer, hw_rc_on_timer, HW_REGISTRY_RETRY_MS, 0);
}

static void hw_rc_send(hw_registry_cache *c, hw_rc_inflight what, const char *sql) {
  c->inflight = what;
  if (!PQsendQuery(c->conn.pg, sql) || hw_pg_conn_flush(&c->conn) < 0)
    hw_pg_conn_fail(&c->conn, "send");
}

static void hw_rc_maybe_load(hw_registry_cache *c) {
  if (c->closing || !c->conn.up || c->inflight != HW_RC_IDLE)
    return;
  if (!c->listening) {
    /* Before reading: a change committed after LISTEN is notified, and one committed before is
     * in the snapshot, so no change falls between the two. */
    hw_rc_send(c, HW_RC_LISTEN, "LISTEN " HW_REGISTRY_CHANNEL);
    return;
  }
  if (!c->want_load || c->building)
    return; /* a build in progress calls again when it ends */
  c->want_load = 0;
  c->err[0] = '\0';
  c->load_started_ms = hw_now_ms();
  hw_rc_send(c, HW_RC_LOAD, hw_q_load);
}

static void hw_rc_swap(hw_registry_cache *c, hw_registry_snapshot *snap) {
  const hw_registry_snapshot *old = c->current;
  snap->generation = ++c->stats.generation;
  c->current = snap;
  hw_registry_foreach(c->terminals, t) t->vehicle = hw_registry_snapshot_vehicle(snap, t->id);
  if (c->swap_cb)
    c->swap_cb(c->swap_arg, snap, old);
  hw_registry_snapshot_unref(old);
  c->stats.loads_ok++;
  c->stats.last_load_ms = hw_now_ms() - c->load_started_ms;
  hw_info("registry", NULL, "snapshot %llu: %zu classes, %zu vehicles with terminals, %zu zones (%lld ms)",
          (unsigned long long)snap->generation, snap->nclasses, snap->nvehicles, snap->nzones,
          (long long)c->stats.last_load_ms);
}

static void hw_rc_build_work(uv_work_t *w) {
  hw_build_job *job = HW_CONTAINER_OF(w, hw_build_job, work);
  job->rc = hw_snapshot_build(job->res, &job->snap, job->err, sizeof job->err);
}

static void hw_rc_build_done(uv_work_t *w, int status) {
  hw_build_job *job = HW_CONTAINER_OF(w, hw_build_job, work);
  hw_registry_cache *c = job->cache;
  int n = HW_R_COUNT;
  hw_results_clear(job->res, &n);
  c->building = 0;
  if (c->closing) {
    if (status == 0 && job->rc == 0)
      hw_registry_snapshot_unref(job->snap);
  } else if (status != 0 || job->rc != 0) {
    hw_error("registry", NULL, "registry snapshot not built: %s; keeping snapshot %llu",
             status ? uv_strerror(status) : job->err,
             (unsigned long long)(c->current ? c->current->generation : 0));
    hw_rc_retry_later(c);
  } else {
    job->snap->loaded_ms = c->load_started_ms;
    hw_rc_swap(c, job->snap);
  }
  free(job);
  if (c->closing)
    hw_rc_maybe_done(c);
  else
    hw_rc_maybe_load(c);
}

static void hw_rc_load_done(hw_registry_cache *c) {
  if (c->err[0] || c->nres != HW_R_COUNT) {
    hw_error("registry", NULL, "registry load failed: %s; keeping snapshot %llu, retry in %d ms",
             c->err[0] ? c->err : "results missing",
             (unsigned long long)(c->current ? c->current->generation : 0), HW_REGISTRY_RETRY_MS);
    hw_results_clear(c->res, &c->nres);
    hw_rc_retry_later(c);
    if (PQtransactionStatus(c->conn.pg) != PQTRANS_IDLE)
      hw_rc_send(c, HW_RC_ROLLBACK, "ROLLBACK");
    return;
  }
  hw_build_job *job = calloc(1, sizeof *job);
  if (!job) {
    hw_error("registry", NULL, "cannot build the registry snapshot: out of memory");
    hw_results_clear(c->res, &c->nres);
    hw_rc_retry_later(c);
    return;
  }
  /* Complete before queueing: the worker may run at once. */
  job->cache = c;
  memcpy(job->res, c->res, sizeof job->res);
  memset(c->res, 0, sizeof c->res);
  c->nres = 0;
  int rc = uv_queue_work(c->loop, &job->work, hw_rc_build_work, hw_rc_build_done);
  if (rc) {
    hw_error("registry", NULL, "cannot build the registry snapshot: %s", uv_strerror(rc));
    int n = HW_R_COUNT;
    hw_results_clear(job->res, &n);
    free(job);
    hw_rc_retry_later(c);
    return;
  }
  c->building = 1;
}

/* The query in flight has delivered its last result. */
static void hw_rc_query_done(hw_registry_cache *c) {
  hw_rc_inflight what = c->inflight;
  c->inflight = HW_RC_IDLE;
  switch (what) {
  case HW_RC_LISTEN:
    if (c->err[0]) {
      hw_error("registry", NULL, "LISTEN %s failed: %s; retry in %d ms", HW_REGISTRY_CHANNEL,
               c->err, HW_REGISTRY_RETRY_MS);
      c->err[0] = '\0';
      hw_rc_retry_later(c);
      return;
    }
    c->listening = 1;
    hw_rc_maybe_load(c);
    return;
  case HW_RC_LOAD:
    hw_rc_load_done(c);
    return;
  case HW_RC_ROLLBACK:
  case HW_RC_IDLE:
    return;
  }
}

static void hw_rc_on_io(hw_pg_conn *pc) {
  hw_registry_cache *c = pc->data;
  while (pc->up && c->inflight != HW_RC_IDLE && !PQisBusy(pc->pg)) {
    PGresult *r = PQgetResult(pc->pg);
    if (!r)
      hw_rc_query_done(c); /* may send the next query */
    else if (c->inflight == HW_RC_LOAD)
      hw_collect(c->res, &c->nres, r, c->err, sizeof c->err);
    else {
      if (PQresultStatus(r) != PGRES_COMMAND_OK && !c->err[0])
        snprintf(c->err, sizeof c->err, "%s", hw_pg_errmsg(r));
      PQclear(r);
    }
  }
  if (!pc->up)
    return;
  PGnotify *n;
  int notified = 0;
  while ((n = PQnotifies(pc->pg))) {
    hw_debug("registry", NULL, "NOTIFY %s from pid %d: %s", n->relname, n->be_pid, n->extra);
    PQfreemem(n);
    notified = 1;
    c->stats.notifications++;
  }
  /* A burst (an import, several UPDATEs) becomes one load; a retry already pending stays. */
  if (notified && !uv_is_active((uv_handle_t *)&c->timer))
    uv_timer_start(&c->timer, hw_rc_on_timer, HW_REGISTRY_DEBOUNCE_MS, 0);
}

static void hw_rc_on_ready(hw_pg_conn *pc) {
  hw_registry_cache *c = pc->data;
  /* Whatever changed while disconnected was not notified to us: read everything again. */
  c->listening = 0;
  c->want_load = 1;
  hw_rc_maybe_load(c);
}

static void hw_rc_on_lost(hw_pg_conn *pc) {
  hw_registry_cache *c = pc->data;
  if (c->inflight == HW_RC_LOAD)
    c->stats.loads_failed++;
  c->inflight = HW_RC_IDLE;
  c->listening = 0;
  c->err[0] = '\0';
  hw_results_clear(c->res, &c->nres);
}

static void hw_rc_maybe_done(hw_registry_cache *c) {
  if (!c->closing || !c->conn_closed || !c->timer_closed || c->building)
    return;
  void (*cb)(void *) = c->done_cb;
  void *arg = c->done_arg;
  free(c);
  if (cb)
    cb(arg);
}

static void hw_rc_on_conn_closed(hw_pg_conn *pc) {
  hw_registry_cache *c = pc->data;
  c->conn_closed = 1;
  hw_rc_maybe_done(c);
}

static void hw_rc_on_timer_closed(uv_handle_t *h) {
  hw_registry_cache *c = h->data;
  c->timer_closed = 1;
  hw_rc_maybe_done(c);
}

static const hw_pg_conn_ops hw_rc_ops = {
    .ready = hw_rc_on_ready,
    .io = hw_rc_on_io,
    .lost = hw_rc_on_lost,
    .closed = hw_rc_on_conn_closed,
};

int hw_registry_cache_start(hw_registry_cache **out, uv_loop_t *loop, const char *conninfo,
                            hw_registry *terminals, hw_registry_swap_cb swap_cb, void *arg) {
  hw_registry_cache *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->loop = loop;
  c->terminals = terminals;
  c->swap_cb = swap_cb;
  c->swap_arg = arg;
  int rc = uv_timer_init(loop, &c->timer);
  if (rc) {
    free(c);
    return rc;
  }
  c->timer.data = c;
  rc = hw_pg_conn_init(&c->conn, loop, conninfo, "registry", &hw_rc_ops, c);
  if (rc) {
    /* The connection never started: only the timer is left to close, then c goes. */
    c->closing = 1;
    c->conn_closed = 1;
    uv_close((uv_handle_t *)&c->timer, hw_rc_on_timer_closed);
    return rc;
  }
  *out = c;
  return 0;
}

const hw_registry_snapshot *hw_registry_cache_current(const hw_registry_cache *c) {
  return c->current;
}

const hw_vehicle *hw_registry_cache_vehicle(const hw_registry_cache *c, const char *terminal_id) {
  return hw_registry_snapshot_vehicle(c->current, terminal_id);
}

const hw_vehicle *hw_registry_cache_by_plate(const hw_registry_cache *c, const char *plate,
                                             uint8_t colour) {
  return hw_registry_snapshot_by_plate(c->current, plate, colour);
}

void hw_registry_cache_bind(const hw_registry_cache *c, hw_terminal *t) {
  t->vehicle = hw_registry_snapshot_vehicle(c->current, t->id);
}

void hw_registry_cache_reload(hw_registry_cache *c) {
  if (!c->closing && !uv_is_active((uv_handle_t *)&c->timer))
    uv_timer_start(&c->timer, hw_rc_on_timer, 0, 0);
}

void hw_registry_cache_get_stats(const hw_registry_cache *c, hw_registry_cache_stats *out) {
  *out = c->stats;
}

void hw_registry_cache_stop(hw_registry_cache *c, void (*done_cb)(void *arg), void *arg) {
  if (c->closing)
    return;
  c->closing = 1;
  c->done_cb = done_cb;
  c->done_arg = arg;
  hw_registry_foreach(c->terminals, t) t->vehicle = NULL;
  hw_registry_snapshot_unref(c->current);
  c->current = NULL;
  hw_results_clear(c->res, &c->nres);
  uv_close((uv_handle_t *)&c->timer, hw_rc_on_timer_closed);
  hw_pg_conn_close(&c->conn);
}
