/* The daily figures sink: per-terminal state on the loop, database work on a worker thread
 * (daily_store.h). */
#include "sinks/daily_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/geo.h"
#include "base/log.h"
#include "sinks/pg_array.h"
#include "sinks/pg_conn.h"

#define HW_DAILY_LOG "daily"
#define HW_DAILY_CHUNK 2000 /* rows per upsert statement */
/* Recomputes per job: a restart makes every terminal's first fix a recompute, and short jobs
 * let each terminal go back to incremental updates as soon as its own is done. */
#define HW_DAILY_MAX_RECOMPUTES 256

/* One terminal's figures in memory; owned by the store, hung on hw_terminal.daily. */
typedef struct hw_daily_state {
  hw_daystats s;         /* valid when live */
  uint8_t live;          /* s has every stored fix of its days, fed in order */
  uint8_t changed;       /* s.cur differs from what was written */
  uint8_t dirty;         /* days from dirty_from on must be recomputed */
  int32_t dirty_from;
  uint8_t inflight;      /* a job is recomputing it: new fixes wait in pend */
  uint64_t need_acks;    /* its fixes are committed once this many acks are durable */
  int64_t max_recv_ms;   /* latest receipt time of a fix taken: the recompute reads up to it */
  hw_day_figures *done;  /* finished days not yet written (owned) */
  size_t ndone, cap;
  /* Fixes taken while a recompute is in flight, replayed onto its result (owned). */
  hw_fix *pend;
  size_t npend, pcap;
  uint64_t pend_acks;    /* need_acks of the pending fixes */
} hw_daily_state;

typedef struct hw_daily_row {
  char tid[HW_TID_WIDE_MAX + 1];
  hw_day_figures f;
} hw_daily_row;

typedef struct hw_daily_recomp {
  hw_terminal *t; /* borrowed: registry records live until the daemon exits */
  char tid[HW_TID_WIDE_MAX + 1];
  int32_t from;
  int64_t recv_cut_ms; /* the fixes received up to here were all committed when it was issued */
  hw_daystats final; /* result */
  int64_t *seen;      /* result: hw_rowvec_seen (owned) */
  size_t nseen, seen_cap;
  int has_final;
} hw_daily_recomp;

typedef struct hw_daily_job {
  uv_work_t work;
  hw_daily_store *ds;
  hw_daily_row *rows; /* owned */
  size_t nrows;
  hw_daily_recomp *rc; /* owned */
  size_t nrc;
  int status;
  size_t written; /* rows written, recomputed ones included */
} hw_daily_job;

struct hw_daily_store {
  uv_loop_t *loop;
  hw_daily_store_config cfg;
  char *conninfo;     /* owned */
  hw_registry *reg;   /* borrowed */
  PGconn *conn;       /* used by the worker thread only, one job at a time */
  uv_timer_t timer;
  hw_daily_job *job;  /* in flight, or NULL */
  uint64_t durable;   /* acks durable so far */
  int stopping;
  int stop_failed;    /* a job failed while stopping: what is left is given up (logged) */
  void (*done_cb)(void *);
  void *done_arg;
  hw_daily_store_stats st;
};

/* --- days as text --- */

void hw_daily_day_text(int32_t day, char out[11]) {
  char d[9];
  hw_cst_day_format(day, d);
  snprintf(out, 11, "%.4s-%.2s-%.2s", d, d + 4, d + 6);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t hw_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

int hw_daily_day_parse(const char *s, int32_t *day) {
  unsigned y, m, d;
  char tail;
  if (!s || strlen(s) != 10 || strspn(s, "0123456789") != 4 || strspn(s + 5, "0123456789") != 2 ||
      strspn(s + 8, "0123456789") != 2 || s[4] != '-' || s[7] != '-' ||
      sscanf(s, "%4u-%2u-%2u%c", &y, &m, &d, &tail) != 3 || y < 2000 || y > 2099 || m < 1 ||
      m > 12 || d < 1)
    return -EINVAL;
  static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  unsigned max = mdays[m - 1] + (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
  if (d > max)
    return -EINVAL;
  *day = (int32_t)hw_days_from_civil(y, m, d);
  return 0;
}

/* --- blocking database work --- */

/* A day is replaced only by figures at least as far along: a later last qualified fix, or the
 * same one and at least as many records. One writer's figures of a day only ever grow, so this
 * never refuses a writer its own newer state; it refuses a stale one, the old worker's (or the
 * old daemon's) pending write of a terminal that has moved on and whose new owner already wrote
 * the day recomputed from `positions` and its new fixes (README "Workers"). `report rebuild`
 * deletes its days first, so it is never refused. */
static const char hw_q_upsert[] =
    "INSERT INTO vehicle_daily AS v (terminal_id, day, records, qualified, drift, km_total, "
    "km_complete, first_fix, last_fix, carry_ts, carry_lat_e6, carry_lon_e6) "
    "SELECT u.t, date '1970-01-01' + u.d, u.r, u.q, u.dr, u.kt, u.kc, "
    "timestamptz 'epoch' + u.ff * interval '1 millisecond', "
    "timestamptz 'epoch' + u.lf * interval '1 millisecond', "
    "timestamptz 'epoch' + u.ct * interval '1 millisecond', u.la, u.lo "
    "FROM unnest($1::text[], $2::integer[], $3::integer[], $4::integer[], $5::integer[], "
    "$6::float8[], $7::float8[], $8::bigint[], $9::bigint[], $10::bigint[], $11::integer[], "
    "$12::integer[]) AS u(t, d, r, q, dr, kt, kc, ff, lf, ct, la, lo) "
    "ON CONFLICT (terminal_id, day) DO UPDATE SET records = EXCLUDED.records, "
    "qualified = EXCLUDED.qualified, drift = EXCLUDED.drift, km_total = EXCLUDED.km_total, "
    "km_complete = EXCLUDED.km_complete, first_fix = EXCLUDED.first_fix, "
    "last_fix = EXCLUDED.last_fix, carry_ts = EXCLUDED.carry_ts, "
    "carry_lat_e6 = EXCLUDED.carry_lat_e6, carry_lon_e6 = EXCLUDED.carry_lon_e6, updated_at = now() "
    "WHERE (coalesce(EXCLUDED.last_fix, '-infinity'), EXCLUDED.records) >= "
    "(coalesce(v.last_fix, '-infinity'), v.records)";

static void hw_arr_f64(hw_pg_array *a, double v) {
  char b[40];
  /* 17 significant digits: PostgreSQL reads back the same double. */
  int n = snprintf(b, sizeof b, "%.17g", v);
  hw_pg_array_raw(a, b, (size_t)n);
}

static int hw_daily_upsert_chunk(PGconn *conn, const char *const *tids, const hw_day_figures *rows,
                                 size_t n) {
  hw_pg_array a[12];
  memset(a, 0, sizeof a);
  for (size_t i = 0; i < n; i++) {
    const hw_day_figures *f = &rows[i];
    hw_pg_array_text(&a[0], tids[i], strlen(tids[i]));
    hw_pg_array_i64(&a[1], f->day);
    hw_pg_array_i64(&a[2], f->records);
    hw_pg_array_i64(&a[3], f->qualified);
    hw_pg_array_i64(&a[4], f->drift);
    hw_arr_f64(&a[5], f->m_total / 1000.0);
    hw_arr_f64(&a[6], f->m_complete / 1000.0);
    if (f->qualified) {
      hw_pg_array_i64(&a[7], f->first_ms);
      hw_pg_array_i64(&a[8], f->last_ms);
    } else {
      hw_pg_array_null(&a[7]);
      hw_pg_array_null(&a[8]);
    }
    if (f->carry.has) {
      hw_pg_array_i64(&a[9], f->carry.ts_ms);
      hw_pg_array_i64(&a[10], f->carry.lat_e6);
      hw_pg_array_i64(&a[11], f->carry.lon_e6);
    } else {
      hw_pg_array_null(&a[9]);
      hw_pg_array_null(&a[10]);
      hw_pg_array_null(&a[11]);
    }
  }
  const char *params[12];
  int rc = 0;
  for (int i = 0; i < 12; i++)
    if (!(params[i] = hw_pg_array_finish(&a[i])))
      rc = -ENOMEM;
  if (rc == 0) {
    PGresult *res = PQexecParams(conn, hw_q_upsert, 12, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      hw_error(HW_DAILY_LOG, NULL, "cannot write vehicle_daily: %s", hw_pg_errmsg(res));
      rc = -EIO;
    }
    PQclear(res);
  }
  for (int i = 0; i < 12; i++)
    hw_pg_array_free(&a[i]);
  return rc;
}

int hw_daily_upsert(PGconn *conn, const char *const *tids, const hw_day_figures *rows, size_t n) {
  for (size_t i = 0; i < n; i += HW_DAILY_CHUNK) {
    size_t k = n - i < HW_DAILY_CHUNK ? n - i : HW_DAILY_CHUNK;
    int rc = hw_daily_upsert_chunk(conn, tids + i, rows + i, k);
    if (rc)
      return rc;
  }
  return 0;
}

/* The carries: each terminal's latest row before $1 (and only those of the terminals $2 when
 * given). */
static const char hw_q_carry[] =
    "SELECT DISTINCT ON (terminal_id) terminal_id, "
    "(extract(epoch FROM carry_ts) * 1000)::bigint, carry_lat_e6, carry_lon_e6 "
    "FROM vehicle_daily WHERE day < date '1970-01-01' + $1::integer "
    "AND ($2::text[] IS NULL OR terminal_id = ANY($2::text[])) AND carry_ts IS NOT NULL "
    "ORDER BY terminal_id, day DESC";

/* The fields the accumulator reads, converted back exactly to the daemon's units (pg_copy.c
 * stores e6 / 1e6, 0.1 km/h / 10 as real, ms as timestamptz). */
static const char hw_q_fixes[] =
    "SELECT terminal_id, (extract(epoch FROM ts) * 1000)::bigint, "
    "(extract(epoch FROM recv_ts) * 1000)::bigint, round(lat * 1e6)::integer, "
    "round(lon * 1e6)::integer, round(speed_kmh::float8 * 10)::bigint, heading, alt_m, status "
    "FROM positions WHERE ts >= timestamptz 'epoch' + $1::bigint * interval '1 millisecond' "
    "AND ts < timestamptz 'epoch' + $2::bigint * interval '1 millisecond' "
    "AND ($3::text[] IS NULL OR terminal_id = ANY($3::text[])) ORDER BY terminal_id, ts";

typedef struct hw_carry {
  char tid[HW_TID_WIDE_MAX + 1];
  hw_track_ref ref;
} hw_carry;

static int hw_carry_cmp(const void *a, const void *b) {
  return strcmp(((const hw_carry *)a)->tid, ((const hw_carry *)b)->tid);
}

static int64_t hw_val(const PGresult *r, int col) { return strtoll(PQgetvalue(r, 0, col), NULL, 10); }

/* Called with each fix read (its terminal, device and receipt times): returns 0 or -ENOMEM. */
typedef int (*hw_daily_read_cb)(void *arg, const char *t, int64_t ts_ms, int64_t recv_ms);

/* hw_daily_recompute for the terminals of terms (a text[] literal; NULL: every terminal), all
 * from from_day; read_cb (may be NULL) sees every fix read. terminal names the set in logs. */
static int hw_daily_recompute_set(PGconn *conn, const hw_daystats_config *cfg, const char *terms,
                                  const char *terminal, int32_t from_day, int32_t to_day,
                                  hw_daily_read_cb read_cb, hw_daily_row_cb row_cb,
                                  hw_daily_final_cb final_cb, void *arg) {
  char from_s[16], lo_s[24], hi_s[24];
  snprintf(from_s, sizeof from_s, "%d", from_day);
  snprintf(lo_s, sizeof lo_s, "%lld", (long long)hw_cst_day_start(from_day));
  /* An open range ends at 2100 (later device times are never stored: rules/quality.h). */
  int64_t hi = to_day == INT32_MAX ? 4102444800000LL + HW_DAY_MS : hw_cst_day_start(to_day + 1);
  snprintf(hi_s, sizeof hi_s, "%lld", (long long)hi);
  hw_carry *carries = NULL;
  size_t ncarries = 0;
  int rc = 0;

  const char *cp[2] = {from_s, terms};
  PGresult *res = PQexecParams(conn, hw_q_carry, 2, NULL, cp, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_error(HW_DAILY_LOG, terminal, "cannot read the carries: %s", hw_pg_errmsg(res));
    PQclear(res);
    return -EIO;
  }
  int nt = PQntuples(res);
  if (nt > 0 && !(carries = calloc((size_t)nt, sizeof *carries))) {
    PQclear(res);
    return -ENOMEM;
  }
  for (int i = 0; i < nt; i++) {
    hw_carry *c = &carries[ncarries++];
    snprintf(c->tid, sizeof c->tid, "%s", PQgetvalue(res, i, 0));
    c->ref.ts_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    c->ref.lat_e6 = (int32_t)strtol(PQgetvalue(res, i, 2), NULL, 10);
    c->ref.lon_e6 = (int32_t)strtol(PQgetvalue(res, i, 3), NULL, 10);
    c->ref.has = 1;
  }
  PQclear(res);
  /* Already in terminal order (ORDER BY), but the C collation decides here: sort again. */
  if (ncarries > 1)
    qsort(carries, ncarries, sizeof *carries, hw_carry_cmp);

  const char *fp[3] = {lo_s, hi_s, terms};
  if (!PQsendQueryParams(conn, hw_q_fixes, 3, NULL, fp, NULL, NULL, 0) ||
      !PQsetSingleRowMode(conn)) {
    hw_error(HW_DAILY_LOG, terminal, "cannot read positions: %s", PQerrorMessage(conn));
    free(carries);
    return -EIO;
  }
  char cur[HW_TID_WIDE_MAX + 1] = "";
  int have = 0;
  hw_daystats s;
  hw_day_figures done;
  while ((res = PQgetResult(conn))) {
    ExecStatusType stt = PQresultStatus(res);
    if (stt == PGRES_SINGLE_TUPLE && rc == 0) {
      const char *tid = PQgetvalue(res, 0, 0);
      if (!have || strcmp(tid, cur)) {
        if (have) {
          if ((rc = row_cb(arg, cur, &s.cur)) == 0 && final_cb)
            final_cb(arg, cur, &s);
        }
        snprintf(cur, sizeof cur, "%s", tid);
        hw_carry key, *c;
        snprintf(key.tid, sizeof key.tid, "%s", tid);
        c = ncarries ? bsearch(&key, carries, ncarries, sizeof *carries, hw_carry_cmp) : NULL;
        hw_daystats_init(&s, c ? &c->ref : NULL);
        have = 1;
      }
      hw_fix f;
      memset(&f, 0, sizeof f);
      f.ts_ms = hw_val(res, 1);
      f.recv_ms = hw_val(res, 2);
      f.lat_e6 = (int32_t)hw_val(res, 3);
      f.lon_e6 = (int32_t)hw_val(res, 4);
      int64_t sp = hw_val(res, 5);
      f.speed_dkmh = sp < 0 ? 0 : sp > UINT32_MAX ? UINT32_MAX : (uint32_t)sp;
      int64_t hd = hw_val(res, 6);
      f.heading = hd < 0 ? UINT16_MAX : (uint16_t)hd; /* negative smallint: not a heading */
      f.alt_m = (int32_t)hw_val(res, 7);
      f.status = (uint32_t)hw_val(res, 8);
      int r2 = read_cb ? read_cb(arg, cur, f.ts_ms, f.recv_ms) : 0;
      if (r2 == 0)
        r2 = hw_daystats_feed(cfg, &s, &f, &done);
      if (r2 == 1)
        rc = row_cb(arg, cur, &done);
      else if (r2 < 0)
        rc = r2; /* -ENOMEM from seen_cb; never out of order: the key orders them strictly */
    } else if (stt != PGRES_SINGLE_TUPLE && stt != PGRES_TUPLES_OK && rc == 0) {
      hw_error(HW_DAILY_LOG, terminal, "cannot read positions: %s", hw_pg_errmsg(res));
      rc = -EIO;
    }
    PQclear(res);
  }
  if (rc == 0 && have && (rc = row_cb(arg, cur, &s.cur)) == 0 && final_cb)
    final_cb(arg, cur, &s);
  free(carries);
  return rc;
}

typedef struct hw_daily_one {
  hw_daily_seen_cb seen_cb;
  int64_t recv_cut_ms;
  hw_daily_row_cb row_cb;
  hw_daily_final_cb final_cb;
  void *arg;
} hw_daily_one;

static int hw_daily_one_read(void *arg, const char *t, int64_t ts_ms, int64_t recv_ms) {
  hw_daily_one *o = arg;
  (void)t;
  return recv_ms >= o->recv_cut_ms ? o->seen_cb(o->arg, ts_ms) : 0;
}

static int hw_daily_one_row(void *arg, const char *t, const hw_day_figures *f) {
  hw_daily_one *o = arg;
  return o->row_cb(o->arg, t, f);
}

static void hw_daily_one_final(void *arg, const char *t, const hw_daystats *s) {
  hw_daily_one *o = arg;
  o->final_cb(o->arg, t, s);
}

int hw_daily_recompute(PGconn *conn, const hw_daystats_config *cfg, const char *terminal,
                       int32_t from_day, int32_t to_day, int64_t recv_cut_ms,
                       hw_daily_seen_cb seen_cb, hw_daily_row_cb row_cb, hw_daily_final_cb final_cb,
                       void *arg) {
  hw_daily_one o = {seen_cb, recv_cut_ms, row_cb, final_cb, arg};
  hw_pg_array a;
  memset(&a, 0, sizeof a);
  const char *terms = NULL;
  if (terminal) {
    hw_pg_array_text(&a, terminal, strlen(terminal));
    if (!(terms = hw_pg_array_finish(&a))) {
      hw_pg_array_free(&a);
      return -ENOMEM;
    }
  }
  int rc = hw_daily_recompute_set(conn, cfg, terms, terminal, from_day, to_day,
                                  seen_cb ? hw_daily_one_read : NULL, hw_daily_one_row,
                                  final_cb ? hw_daily_one_final : NULL, &o);
  hw_pg_array_free(&a);
  return rc;
}

/* --- the worker job --- */

/* The rows of a job's recomputes, written together at its end, and the recomputes of the set
 * being read (one start day), by terminal id. */
typedef struct hw_rowvec {
  const char **tids; /* each borrowed from its recompute's tid (the job's) */
  hw_day_figures *rows;
  size_t n, cap;
  hw_daily_recomp **by_tid; /* sorted by tid (strcmp) */
  size_t nby;
  hw_daily_recomp *rc; /* the last one found */
} hw_rowvec;

static hw_daily_recomp *hw_rowvec_find(hw_rowvec *v, const char *t) {
  if (v->rc && !strcmp(v->rc->tid, t))
    return v->rc;
  size_t lo = 0, hi = v->nby;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(v->by_tid[mid]->tid, t);
    if (c == 0)
      return v->rc = v->by_tid[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  hw_error(HW_DAILY_LOG, t, "recompute: a row of a terminal not asked for");
  return NULL;
}

/* Device times of the rows received at or after the recompute's cut: fixes taken while it ran
 * that it has read already (in ts order, as the rows come). */
static int hw_rowvec_read(void *arg, const char *t, int64_t ts_ms, int64_t recv_ms) {
  hw_rowvec *v = arg;
  hw_daily_recomp *r = hw_rowvec_find(v, t);
  if (!r)
    return -EIO;
  if (recv_ms < r->recv_cut_ms)
    return 0;
  if (r->nseen == r->seen_cap) {
    size_t cap = r->seen_cap ? r->seen_cap * 2 : 16;
    int64_t *p = realloc(r->seen, cap * sizeof *p);
    if (!p)
      return -ENOMEM;
    r->seen = p;
    r->seen_cap = cap;
  }
  r->seen[r->nseen++] = ts_ms;
  return 0;
}

static int hw_rowvec_push(void *arg, const char *t, const hw_day_figures *f) {
  hw_rowvec *v = arg;
  hw_daily_recomp *r = hw_rowvec_find(v, t);
  if (!r)
    return -EIO;
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 8;
    hw_day_figures *rows = realloc(v->rows, cap * sizeof *rows);
    if (!rows)
      return -ENOMEM;
    v->rows = rows;
    const char **ts = realloc(v->tids, cap * sizeof *ts);
    if (!ts)
      return -ENOMEM;
    v->tids = ts;
    v->cap = cap;
  }
  v->tids[v->n] = r->tid;
  v->rows[v->n++] = *f;
  return 0;
}

static void hw_rowvec_final(void *arg, const char *t, const hw_daystats *s) {
  hw_rowvec *v = arg;
  hw_daily_recomp *r = hw_rowvec_find(v, t);
  if (r) {
    r->final = *s;
    r->has_final = 1;
  }
}

/* By start day, then terminal id. */
static int hw_recomp_cmp(const void *a, const void *b) {
  const hw_daily_recomp *x = *(hw_daily_recomp *const *)a, *y = *(hw_daily_recomp *const *)b;
  if (x->from != y->from)
    return x->from < y->from ? -1 : 1;
  return strcmp(x->tid, y->tid);
}

static int hw_daily_exec(PGconn *c, const char *sql) {
  PGresult *res = PQexec(c, sql);
  int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok)
    hw_error(HW_DAILY_LOG, NULL, "%s: %s", sql, hw_pg_errmsg(res));
  PQclear(res);
  return ok ? 0 : -EIO;
}

static void hw_daily_work(uv_work_t *w) {
  hw_daily_job *j = HW_CONTAINER_OF(w, hw_daily_job, work);
  hw_daily_store *ds = j->ds;
  int rc = 0;
  if (ds->conn && PQstatus(ds->conn) != CONNECTION_OK) {
    PQfinish(ds->conn);
    ds->conn = NULL;
  }
  if (!ds->conn) {
    ds->conn = PQconnectdb(ds->conninfo);
    if (PQstatus(ds->conn) != CONNECTION_OK) {
      hw_error(HW_DAILY_LOG, NULL, "cannot connect to PostgreSQL: %s", PQerrorMessage(ds->conn));
      PQfinish(ds->conn);
      ds->conn = NULL;
      j->status = -EIO;
      return;
    }
  }
  PGconn *c = ds->conn;
  if ((rc = hw_daily_exec(c, "BEGIN")))
    goto out;
  if (j->nrows) {
    const char **tids = malloc(j->nrows * sizeof *tids);
    hw_day_figures *rows = malloc(j->nrows * sizeof *rows);
    if (!tids || !rows) {
      rc = -ENOMEM;
    } else {
      for (size_t i = 0; i < j->nrows; i++) {
        tids[i] = j->rows[i].tid;
        rows[i] = j->rows[i].f;
      }
      rc = hw_daily_upsert(c, tids, rows, j->nrows);
    }
    free(tids);
    free(rows);
    if (rc)
      goto out;
    j->written += j->nrows;
  }
  /* After the writes above, in the same transaction: each recompute starts from the carry of a
   * row that is up to date. Its own rows (its start day on) are read by no other recompute of
   * the job (each reads the days before its own start, of its own terminal), so they are written
   * together at the end: one statement, and one run of vehicle_daily's roll-up triggers (schema
   * 017), for the job instead of one per terminal (a restart recomputes every terminal's day at
   * its first fix: 2,000 statements and trigger runs for 2,000 terminals). */
  hw_rowvec v = {0};
  hw_daily_recomp **order = j->nrc ? malloc(j->nrc * sizeof *order) : NULL;
  if (j->nrc && !order)
    rc = -ENOMEM;
  for (size_t i = 0; i < j->nrc && order; i++)
    order[i] = &j->rc[i];
  if (order)
    qsort(order, j->nrc, sizeof *order, hw_recomp_cmp);
  /* The terminals with the same start day in one read of carries and one of positions (a
   * restart's first fixes: all today's), not two queries per terminal. */
  for (size_t i = 0, k; i < j->nrc && rc == 0; i = k) {
    hw_pg_array a;
    memset(&a, 0, sizeof a);
    for (k = i; k < j->nrc && order[k]->from == order[i]->from; k++)
      hw_pg_array_text(&a, order[k]->tid, strlen(order[k]->tid));
    const char *terms = hw_pg_array_finish(&a);
    if (!terms) {
      rc = -ENOMEM;
    } else {
      v.by_tid = order + i;
      v.nby = k - i;
      v.rc = NULL;
      rc = hw_daily_recompute_set(c, &ds->cfg.stats, terms, k - i == 1 ? order[i]->tid : NULL,
                                  order[i]->from, INT32_MAX, hw_rowvec_read, hw_rowvec_push,
                                  hw_rowvec_final, &v);
    }
    hw_pg_array_free(&a);
  }
  free(order);
  if (rc == 0 && v.n)
    rc = hw_daily_upsert(c, v.tids, v.rows, v.n);
  if (rc == 0)
    j->written += v.n;
  free(v.rows);
  free(v.tids);
  if (rc == 0)
    rc = hw_daily_exec(c, "COMMIT");
out:
  if (rc) {
    PGresult *res = PQexec(c, "ROLLBACK");
    PQclear(res);
  }
  j->status = rc;
}

static int hw_state_keep_done(hw_daily_state *st, const hw_day_figures *f) {
  if (st->ndone == st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 2;
    hw_day_figures *d = realloc(st->done, cap * sizeof *d);
    if (!d)
      return -ENOMEM;
    st->done = d;
    st->cap = cap;
  }
  st->done[st->ndone++] = *f;
  return 0;
}

static int hw_ts_cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void hw_daily_send(hw_daily_store *ds);
static int hw_daily_mark(hw_daily_state *st, int32_t from, uint64_t ack_seq);
static int hw_daily_take(hw_daily_store *ds, hw_daily_state *st, const hw_fix *f, uint64_t ack_seq);

/* The recompute of st is back (ok: with its result in r): fixes taken meanwhile are replayed on
 * it, in the order they came, exactly as if they had come after it. */
static void hw_daily_settle(hw_daily_store *ds, hw_terminal *t, hw_daily_state *st,
                            const hw_daily_recomp *r, int ok) {
  st->inflight = 0;
  if (ok) {
    if (r->has_final)
      st->s = r->final;
    else
      hw_daystats_init(&st->s, NULL); /* its fixes are gone from positions (retention) */
    st->live = 1;
    st->dirty = 0;
    st->changed = 0;
  }
  for (size_t i = 0; i < st->npend; i++) {
    const hw_fix *f = &st->pend[i];
    /* Committed before the recompute read positions: in the result already (or a duplicate of a
     * row that is). Any other fix the result has read makes the replay out of order (the state
     * has passed its time), so the terminal is recomputed again: never counted twice. */
    int in = ok && r->nseen && bsearch(&f->ts_ms, r->seen, r->nseen, sizeof *r->seen, hw_ts_cmp);
    if (in)
      continue;
    int rc = hw_daily_take(ds, st, f, st->pend_acks);
    if (rc)
      hw_error(HW_DAILY_LOG, t->id, "fix at %lld not counted: %s", (long long)f->ts_ms, strerror(-rc));
  }
  st->npend = 0;
}

static void hw_daily_after(uv_work_t *w, int status) {
  hw_daily_job *j = HW_CONTAINER_OF(w, hw_daily_job, work);
  hw_daily_store *ds = j->ds;
  int ok = status == 0 && j->status == 0;
  ds->job = NULL;
  ds->st.jobs++;
  if (ok) {
    ds->st.rows_written += j->written;
    ds->st.recomputes += j->nrc;
  } else {
    ds->st.job_failures++;
    if (ds->stopping)
      ds->stop_failed = 1;
    hw_warn(HW_DAILY_LOG, NULL, "writing %zu days and %zu recomputes failed: kept for the next round",
            j->nrows, j->nrc);
    /* Rows go back to their terminals unless those have turned dirty from that day since. */
    for (size_t i = 0; i < j->nrows; i++) {
      hw_terminal *t = hw_registry_find(ds->reg, j->rows[i].tid);
      hw_daily_state *st = t ? t->daily : NULL;
      if (!st || (st->dirty && st->dirty_from <= j->rows[i].f.day))
        continue;
      if (st->live && st->s.has_day && st->s.cur.day == j->rows[i].f.day) {
        st->changed = 1;
        continue;
      }
      /* A finished day held since is newer than this one (and one statement may not write a
       * row twice). */
      size_t k = 0;
      while (k < st->ndone && st->done[k].day != j->rows[i].f.day)
        k++;
      if (k == st->ndone && hw_state_keep_done(st, &j->rows[i].f))
        hw_error(HW_DAILY_LOG, t->id, "out of memory: day %d not written", j->rows[i].f.day);
    }
  }
  for (size_t i = 0; i < j->nrc; i++) {
    if (j->rc[i].t->daily)
      hw_daily_settle(ds, j->rc[i].t, j->rc[i].t->daily, &j->rc[i], ok);
    free(j->rc[i].seen);
  }
  free(j->rows);
  free(j->rc);
  free(j);
  if (ds->stopping)
    hw_daily_send(ds);
}

/* Stopping, and nothing left to write (or a job failed): frees everything. */
static void hw_daily_finish(hw_daily_store *ds) {
  if (ds->stop_failed)
    hw_error(HW_DAILY_LOG, NULL, "stopping with daily figures not written: `haulwatch report "
             "rebuild` recomputes them");
  hw_registry_foreach(ds->reg, t) {
    hw_daily_state *st = t->daily;
    if (st) {
      free(st->done);
      free(st->pend);
      free(st);
      t->daily = NULL;
    }
  }
  if (ds->conn)
    PQfinish(ds->conn);
  void (*cb)(void *) = ds->done_cb;
  void *arg = ds->done_arg;
  free(ds->conninfo);
  free(ds);
  if (cb)
    cb(arg);
}

/* Starts a job with every row held and every dirty terminal whose fixes are committed (at most
 * HW_DAILY_MAX_RECOMPUTES of them). Stopping, it runs again after each job until nothing is
 * left. */
static void hw_daily_send(hw_daily_store *ds) {
  if (ds->job)
    return;
  if (ds->stopping && ds->stop_failed) {
    hw_daily_finish(ds);
    return;
  }
  size_t nrows = 0, nrc = 0;
  hw_registry_foreach(ds->reg, t) {
    hw_daily_state *st = t->daily;
    if (!st)
      continue;
    nrows += st->ndone + (st->live && st->changed);
    nrc += st->dirty && st->need_acks <= ds->durable;
  }
  if (nrc > HW_DAILY_MAX_RECOMPUTES)
    nrc = HW_DAILY_MAX_RECOMPUTES;
  if (!nrows && !nrc) {
    if (ds->stopping)
      hw_daily_finish(ds);
    return;
  }
  hw_daily_job *j = calloc(1, sizeof *j);
  if (!j || (nrows && !(j->rows = malloc(nrows * sizeof *j->rows))) ||
      (nrc && !(j->rc = calloc(nrc, sizeof *j->rc)))) {
    hw_error(HW_DAILY_LOG, NULL, "out of memory: daily figures not written this round");
    if (j) {
      free(j->rows);
      free(j);
    }
    if (ds->stopping) {
      ds->stop_failed = 1;
      hw_daily_finish(ds);
    }
    return;
  }
  j->ds = ds;
  hw_registry_foreach(ds->reg, t) {
    hw_daily_state *st = t->daily;
    if (!st)
      continue;
    for (size_t i = 0; i < st->ndone; i++) {
      hw_daily_row *r = &j->rows[j->nrows++];
      snprintf(r->tid, sizeof r->tid, "%s", t->id);
      r->f = st->done[i];
    }
    st->ndone = 0;
    if (st->live && st->changed) {
      hw_daily_row *r = &j->rows[j->nrows++];
      snprintf(r->tid, sizeof r->tid, "%s", t->id);
      r->f = st->s.cur;
      st->changed = 0;
    }
    if (st->dirty && st->need_acks <= ds->durable && j->nrc < nrc) {
      hw_daily_recomp *r = &j->rc[j->nrc++];
      r->t = t;
      snprintf(r->tid, sizeof r->tid, "%s", t->id);
      r->from = st->dirty_from;
      r->recv_cut_ms = st->max_recv_ms;
      st->inflight = 1;
    }
  }
  ds->job = j;
  int rc = uv_queue_work(ds->loop, &j->work, hw_daily_work, hw_daily_after);
  if (rc) {
    j->status = -EIO;
    hw_daily_after(&j->work, rc);
  }
}

static void hw_daily_on_timer(uv_timer_t *t) { hw_daily_send(t->data); }

int hw_daily_store_start(hw_daily_store **out, uv_loop_t *loop, const hw_daily_store_config *cfg,
                         hw_registry *reg) {
  hw_daily_store *ds = calloc(1, sizeof *ds);
  if (!ds)
    return -ENOMEM;
  ds->loop = loop;
  ds->cfg = *cfg;
  ds->reg = reg;
  if (!cfg->conninfo || !(ds->conninfo = strdup(cfg->conninfo))) {
    free(ds);
    return cfg->conninfo ? -ENOMEM : -EINVAL;
  }
  ds->cfg.conninfo = ds->conninfo;
  uint32_t ms = cfg->flush_ms ? cfg->flush_ms : HW_DAILY_DEF_FLUSH_S * 1000u;
  uv_timer_init(loop, &ds->timer);
  ds->timer.data = ds;
  uv_timer_start(&ds->timer, hw_daily_on_timer, ms, ms);
  *out = ds;
  return 0;
}

/* Days from `from` on must be recomputed: what is held of them is dropped, what is held of the
 * days before stays to be written (the recompute starts from their carry). */
static int hw_daily_mark(hw_daily_state *st, int32_t from, uint64_t ack_seq) {
  if (st->dirty && st->dirty_from < from)
    from = st->dirty_from;
  if (st->live && st->s.has_day && st->s.cur.day < from) {
    if (st->changed && hw_state_keep_done(st, &st->s.cur))
      return -ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < st->ndone; i++)
    if (st->done[i].day < from)
      st->done[k++] = st->done[i];
  st->ndone = k;
  st->live = 0;
  st->changed = 0;
  st->dirty = 1;
  st->dirty_from = from;
  st->need_acks = ack_seq;
  return 0;
}

/* Applies f to a state that is not being recomputed. */
static int hw_daily_take(hw_daily_store *ds, hw_daily_state *st, const hw_fix *f, uint64_t ack_seq) {
  int32_t day = hw_cst_day(f->ts_ms);
  if (st->dirty || !st->live || !hw_daystats_in_order(&st->s, f)) {
    /* First fix since start (the stored day may hold more), back-fill or resend. */
    ds->st.fixes_deferred++;
    return hw_daily_mark(st, day, ack_seq);
  }
  hw_day_figures done;
  int rc = hw_daystats_feed(&ds->cfg.stats, &st->s, f, &done);
  if (rc < 0)
    return rc;
  if (rc == 1 && hw_state_keep_done(st, &done))
    return hw_daily_mark(st, done.day, ack_seq); /* recomputed instead */
  st->changed = 1;
  ds->st.fixes_incremental++;
  return 0;
}

int hw_daily_store_put(hw_daily_store *ds, hw_terminal *t, const hw_fix *f, uint64_t ack_seq) {
  hw_daily_state *st = t->daily;
  if (!st) {
    if (!(st = calloc(1, sizeof *st)))
      return -ENOMEM;
    t->daily = st;
  }
  if (f->recv_ms > st->max_recv_ms)
    st->max_recv_ms = f->recv_ms;
  if (st->inflight) {
    if (st->npend == st->pcap) {
      size_t cap = st->pcap ? st->pcap * 2 : 4;
      hw_fix *p = realloc(st->pend, cap * sizeof *p);
      if (!p)
        return -ENOMEM;
      st->pend = p;
      st->pcap = cap;
    }
    st->pend[st->npend++] = *f;
    st->pend_acks = ack_seq;
    return 0;
  }
  return hw_daily_take(ds, st, f, ack_seq);
}

void hw_daily_store_durable(hw_daily_store *ds, uint64_t acks) {
  if (acks > ds->durable)
    ds->durable = acks;
}

void hw_daily_store_get_stats(const hw_daily_store *ds, hw_daily_store_stats *out) { *out = ds->st; }

static void hw_daily_timer_closed(uv_handle_t *h) {
  hw_daily_store *ds = h->data;
  hw_daily_send(ds);
}

void hw_daily_store_stop(hw_daily_store *ds, void (*done_cb)(void *arg), void *arg) {
  ds->stopping = 1;
  ds->done_cb = done_cb;
  ds->done_arg = arg;
  /* The writer has drained: every fix taken is committed. */
  ds->durable = UINT64_MAX;
  uv_timer_stop(&ds->timer);
  uv_close((uv_handle_t *)&ds->timer, hw_daily_timer_closed);
}
