/* Batches of binary COPY rows written over one or more hw_pg_conn sessions.
 *
 * Batches form one FIFO in add order: the open batch accumulates rows; a sealed batch is queued,
 * then active on a connection, then durable. Acks are handed over from the head of the FIFO only,
 * so with several connections a batch that commits early holds its acks until every earlier batch
 * is durable. An ack added when the open batch has no rows yet belongs behind the newest sealed
 * batch, so it is appended to that one's acks.
 *
 * Per batch and connection:
 *   "COPY positions (...) FROM STDIN (FORMAT binary)" -> rows -> end
 * in the implicit transaction of that one statement: the server commits it before it reports
 * the COPY complete (end-of-transaction errors come instead of the completion), so the COPY's
 * result is the commit, and an idle writer's commit costs two round trips, not three.
 * After unique_violation (23505), which rolled that transaction back, the merge:
 *   "BEGIN; [CREATE TEMP TABLE IF NOT EXISTS hw_positions_stage ...;] COPY
 *    hw_positions_stage (...) FROM STDIN" -> the same bytes -> end ->
 *   "INSERT INTO positions SELECT <one row per key> FROM hw_positions_stage
 *    ON CONFLICT (terminal_id, ts) DO UPDATE <merge> WHERE <it changes something>; COMMIT"
 * A batch holding a row added with HW_PG_ROW_MAYBE_DUP skips the plain COPY and starts with the
 * merge ("BEGIN; [CREATE ...;] COPY hw_positions_stage ..."): a COPY that would fail only costs a
 * round trip and the server's work twice.
 *
 * The merge (what two fixes with one key become): one row, whose alarm is the OR of every fix's
 * alarm bits (an alarm is an event: none may be lost), and whose other columns, status included,
 * are those of the fix received first (lowest recv_ts, then add order): status bits describe
 * the position beside them (positioned, south, west, ACC), so mixing them with another fix's
 * coordinates would describe no fix at all. recv_ts is set when the row is encoded, so the
 * outcome does not depend on which batch or connection commits first, and replaying a batch
 * (COMMIT outcome unknown) changes nothing: OR is idempotent and the earlier fix already won.
 * A true resend (same values, later recv_ts) matches the WHERE of no row and writes nothing.
 * Rows are merged in key order, so two merges on two connections lock keys in the same order.
 * Any other error is logged and the batch is retried on the same session after a backoff (100 ms
 * doubling to 5 s): dropping it would let later acks through (acks are cumulative for senders),
 * so ingestion stalls visibly instead of losing data. Rows are validated before encoding, so
 * a data error cannot come from one bad fix.
 *
 * Group commit adapts to load. A row that arrives while a connection is idle is committed at
 * once: the open batch is sealed and dispatched from an idle handle, which runs at the start of
 * the loop's next iteration, before it polls again, so every read of the iteration that added
 * the row is in the batch (and the poll does not block while the handle is active); nothing
 * waits for batch_ms. While every
 * connection is busy the open batch grows, and a connection that finishes its batch takes
 * whatever gathered meanwhile at once. So batches are one row when idle and grow with the load
 * (each about what arrives during one commit); batch_rows and batch_ms only bound them: a batch
 * is sealed (queued for the next free connection) at batch_rows rows or when its first row is
 * batch_ms old. Durability is unchanged: acks are handed over only after their batch, and every
 * earlier one, committed.
 *
 * Statements beside the rows (hw_pg_writer_add_sql: the active-safety alarms a 0x0200 carried) are
 * kept as text with their batch and sent in the same transaction, after the COPY and before the
 * COMMIT (such a batch opens one: "BEGIN; COPY ..." instead of the plain COPY's own) (or before the merge and its COMMIT): an ack behind them is delivered only once they are
 * committed too, and a replayed batch runs them again, which they must allow (ON CONFLICT DO
 * NOTHING). A batch may hold statements and no rows: its COPY then carries none.
 *
 * Partition upkeep belongs to the writer: hw_ensure_partitions for yesterday through the day
 * after tomorrow (UTC) runs at start, before the first batch, and every hour, on the first idle
 * connection. */
#include "sinks/pg_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sinks/pg_conn.h"
#include "sinks/pg_copy.h"

#define HW_PGW "pgwriter"
#define HW_PGW_MAX_ROWS 1000000
#define HW_PGW_MAX_CONNECTIONS 32
#define HW_PGW_PUT_CHUNK (64 * 1024) /* bounds what libpq buffers beyond the socket */
#define HW_PGW_INITIAL_BUF (64 * 1024)
#define HW_PGW_RETRY_MIN_MS 100
#define HW_PGW_RETRY_MAX_MS 5000
#define HW_PGW_PARTITION_EVERY_MS (3600 * 1000)
#define HW_PGW_STOP_GRACE_MS 10000

static const char hw_pgw_copy_sql[] =
    "COPY positions (" HW_PG_COPY_COLUMNS ") FROM STDIN (FORMAT binary)";
static const char hw_pgw_begin_copy_sql[] =
    "BEGIN; COPY positions (" HW_PG_COPY_COLUMNS ") FROM STDIN (FORMAT binary)";
/* hw_ord numbers the rows in COPY order: the tie-break of two fixes received in the same ms. */
static const char hw_pgw_stage_create_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS hw_positions_stage (LIKE positions INCLUDING DEFAULTS, "
    "hw_ord bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DELETE ROWS; ";
static const char hw_pgw_stage_copy_sql[] =
    "COPY hw_positions_stage (" HW_PG_COPY_COLUMNS ") FROM STDIN (FORMAT binary)";
/* A column of the fix received first (see the header comment). */
#define HW_PGW_FIRST(col) \
  col " = CASE WHEN EXCLUDED.recv_ts < p.recv_ts THEN EXCLUDED." col " ELSE p." col " END"
/* One row per key first (ON CONFLICT DO UPDATE cannot touch a row twice in one statement),
 * then into positions. Its command tag counts the rows inserted or changed. */
static const char hw_pgw_stage_merge_sql[] =
    "INSERT INTO positions AS p (" HW_PG_COPY_COLUMNS ") "
    "SELECT DISTINCT ON (terminal_id, ts) terminal_id, ts, seq, recv_ts, lat, lon, speed_kmh, "
    "heading, alt_m, bit_or(alarm) OVER (PARTITION BY terminal_id, ts), status, odometer_km, "
    "driver_id, source, quality FROM hw_positions_stage ORDER BY terminal_id, ts, recv_ts, hw_ord "
    "ON CONFLICT (terminal_id, ts) DO UPDATE SET alarm = p.alarm | EXCLUDED.alarm, "
    HW_PGW_FIRST("seq") ", " HW_PGW_FIRST("lat") ", " HW_PGW_FIRST("lon") ", "
    HW_PGW_FIRST("speed_kmh") ", " HW_PGW_FIRST("heading") ", " HW_PGW_FIRST("alt_m") ", "
    HW_PGW_FIRST("status") ", " HW_PGW_FIRST("odometer_km") ", " HW_PGW_FIRST("driver_id") ", "
    HW_PGW_FIRST("source") ", " HW_PGW_FIRST("quality") ", " HW_PGW_FIRST("recv_ts") " "
    "WHERE p.alarm | EXCLUDED.alarm <> p.alarm OR EXCLUDED.recv_ts < p.recv_ts; COMMIT";
/* One implicit transaction: if the upkeep cannot get its locks soon (a long query on the default
 * partition), it gives up rather than queue every writer behind its ATTACH, and the SET is
 * undone with it; the days it makes lie ahead, so the next hour's try is early enough. */
static const char hw_pgw_partitions_sql[] =
    "SET lock_timeout = '5s'; "
    "SELECT hw_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, 4); "
    "RESET lock_timeout";

typedef enum { HW_B_OPEN, HW_B_QUEUED, HW_B_ACTIVE, HW_B_DURABLE } hw_batch_state;

typedef struct hw_pg_batch hw_pg_batch;
struct hw_pg_batch {
  hw_pg_batch *next; /* FIFO link, or spare list link */
  uint8_t *buf;      /* owned: COPY header, rows, and the trailer once sealed */
  size_t len, cap;
  uint32_t rows;
  int maybe_dup;    /* a row was added with HW_PG_ROW_MAYBE_DUP: the batch goes to the merge */
  hw_ack_ref *acks; /* owned: handed to durable_cb once this and every earlier batch is durable */
  size_t nacks, acks_cap;
  char *sql;        /* owned: statements run before COMMIT (hw_pg_writer_add_sql), or NULL */
  size_t sql_len, sql_cap;
  hw_batch_state state;
  uint64_t id;       /* for logs */
  uint64_t first_ms; /* loop time of the first row */
  uint64_t start_ns; /* uv_hrtime of its first dispatch, 0 before (commit latency) */
};

typedef enum {
  HW_WC_DOWN,       /* no session */
  HW_WC_IDLE,       /* session up, nothing sent */
  HW_WC_PARTITIONS, /* partition upkeep running */
  HW_WC_COPY_START, /* BEGIN; COPY sent: waiting for the server to accept rows */
  HW_WC_PUT,        /* queuing the batch's bytes */
  HW_WC_COPY_END,   /* all bytes queued: waiting for COPY's result */
  HW_WC_COMMIT,     /* COMMIT (or merge and COMMIT) sent */
  HW_WC_ROLLBACK,   /* after an error */
  HW_WC_COOLDOWN,   /* waiting to retry the batch after an error */
} hw_wc_phase;

typedef struct hw_pgw_conn {
  hw_pg_conn conn;
  hw_pg_writer *w;
  unsigned idx;
  hw_wc_phase phase;
  hw_pg_batch *batch; /* not owned (it stays in the FIFO): the batch this session works on */
  size_t put_off;     /* bytes of batch->buf queued to libpq */
  int replay;         /* the batch goes through the staging table */
  long merged;        /* rows the merge inserted or changed (its command tag), or -1 */
  int stage_ready;    /* hw_positions_stage exists in this session */
  int commit_seen;    /* the COMMIT of the current query reported COMMIT */
  int has_err;        /* the current query failed: err_state/err_msg hold the first error */
  char err_state[6];
  char err_msg[256];
  long partitions_created;
  uv_timer_t retry; /* cooldown before retrying a failed batch */
} hw_pgw_conn;

struct hw_pg_writer {
  uv_loop_t *loop;
  uint32_t batch_rows, batch_ms, nconns;
  hw_pg_durable_cb durable_cb;
  void *arg;

  hw_pg_batch *open;        /* owned: accumulating, or NULL */
  hw_pg_batch *head, *tail; /* owned: sealed batches in add order */
  hw_pg_batch *spare;       /* owned: recycled batches, buffers kept */
  unsigned nspare;

  hw_pgw_conn *conns; /* owned array of nconns */
  uv_timer_t batch_timer, partition_timer, stop_timer;
  uv_idle_t kick; /* active from the open batch's first row to its offer to an idle connection */

  size_t backlog;
  hw_pg_writer_stats stats;
  uint64_t next_id;
  uint32_t retry_ms; /* next cooldown after a failed batch */
  int partitions_due;
  int upkeep_done; /* the first partition upkeep finished (either way) */
  int delivering;

  int stopping, abandon, closing;
  int handles; /* open handles, counted down once closing */
  void (*done_cb)(void *arg);
  void *done_arg;
};

static void hw_pgw_dispatch(hw_pg_writer *w);
static void hw_pgw_maybe_finish(hw_pg_writer *w);

/* --- batches ------------------------------------------------------------------------------ */

static void hw_pgw_batch_free(hw_pg_batch *b) {
  free(b->buf);
  free(b->acks);
  free(b->sql);
  free(b);
}

static hw_pg_batch *hw_pgw_batch_new(hw_pg_writer *w) {
  hw_pg_batch *b = w->spare;
  if (b) {
    w->spare = b->next;
    w->nspare--;
  } else {
    b = calloc(1, sizeof *b);
    if (!b)
      return NULL;
    b->buf = malloc(HW_PGW_INITIAL_BUF);
    if (!b->buf) {
      free(b);
      return NULL;
    }
    b->cap = HW_PGW_INITIAL_BUF;
  }
  b->next = NULL;
  memcpy(b->buf, hw_pg_copy_header, HW_PG_COPY_HEADER_LEN);
  b->len = HW_PG_COPY_HEADER_LEN;
  b->rows = 0;
  b->maybe_dup = 0;
  b->nacks = 0;
  b->sql_len = 0;
  b->state = HW_B_OPEN;
  b->id = ++w->next_id;
  b->first_ms = 0;
  b->start_ns = 0;
  return b;
}

static void hw_pgw_batch_recycle(hw_pg_writer *w, hw_pg_batch *b) {
  /* Enough spares for double buffering on every connection; a burst's extra memory goes back. */
  if (w->nspare >= w->nconns + 2) {
    hw_pgw_batch_free(b);
    return;
  }
  b->next = w->spare;
  w->spare = b;
  w->nspare++;
}

static int hw_pgw_batch_reserve(hw_pg_batch *b, size_t need) {
  if (b->cap - b->len >= need)
    return 0;
  size_t cap = b->cap * 2 >= b->len + need ? b->cap * 2 : b->len + need;
  uint8_t *p = realloc(b->buf, cap);
  if (!p)
    return -ENOMEM;
  b->buf = p;
  b->cap = cap;
  return 0;
}

static int hw_pgw_batch_push_ack(hw_pg_batch *b, const hw_ack_ref *ack) {
  if (b->nacks == b->acks_cap) {
    size_t cap = b->acks_cap ? b->acks_cap * 2 : 64;
    hw_ack_ref *a = realloc(b->acks, cap * sizeof *a);
    if (!a)
      return -ENOMEM;
    b->acks = a;
    b->acks_cap = cap;
  }
  b->acks[b->nacks++] = *ack;
  return 0;
}

/* Hands acks over from the head of the FIFO while its batches are durable. */
static void hw_pgw_deliver(hw_pg_writer *w) {
  if (w->delivering)
    return; /* the outer loop goes on */
  w->delivering = 1;
  while (w->head && w->head->state == HW_B_DURABLE) {
    hw_pg_batch *b = w->head;
    w->head = b->next;
    if (!w->head)
      w->tail = NULL;
    /* Popped first: the callback may add acks, which must not land on this batch. */
    if (b->nacks)
      w->durable_cb(w->arg, b->acks, b->nacks);
    hw_pgw_batch_recycle(w, b);
  }
  w->delivering = 0;
}

static void hw_pgw_seal_open(hw_pg_writer *w) {
  hw_pg_batch *b = w->open;
  w->open = NULL;
  uv_timer_stop(&w->batch_timer);
  b->next = NULL;
  if (w->tail)
    w->tail->next = b;
  else
    w->head = b;
  w->tail = b;
  if (b->rows == 0 && b->sql_len == 0) {
    /* Acks only, behind rows that are all durable already. */
    b->state = HW_B_DURABLE;
    hw_pgw_deliver(w);
    return;
  }
  memcpy(b->buf + b->len, hw_pg_copy_trailer, HW_PG_COPY_TRAILER_LEN); /* reserved by add */
  b->len += HW_PG_COPY_TRAILER_LEN;
  b->state = HW_B_QUEUED;
}

/* --- one connection's batch cycle ---------------------------------------------------------- */

static void hw_pgw_send(hw_pgw_conn *wc, const char *sql, hw_wc_phase phase) {
  wc->phase = phase;
  wc->has_err = 0;
  wc->commit_seen = 0;
  if (!PQsendQuery(wc->conn.pg, sql) || hw_pg_conn_flush(&wc->conn) < 0)
    hw_pg_conn_fail(&wc->conn, "send"); /* lost requeues the batch */
}

/* After the rows: the batch's statements, then COMMIT (or the merge and COMMIT). */
static void hw_pgw_send_commit(hw_pgw_conn *wc) {
  hw_pg_batch *b = wc->batch;
  const char *tail = wc->replay ? hw_pgw_stage_merge_sql : "COMMIT";
  if (!b->sql_len) {
    hw_pgw_send(wc, tail, HW_WC_COMMIT);
    return;
  }
  size_t tl = strlen(tail);
  char *q = malloc(b->sql_len + tl + 1);
  if (!q) {
    hw_pg_conn_fail(&wc->conn, "out of memory"); /* lost requeues the batch */
    return;
  }
  memcpy(q, b->sql, b->sql_len);
  memcpy(q + b->sql_len, tail, tl + 1);
  hw_pgw_send(wc, q, HW_WC_COMMIT); /* libpq copies the query */
  free(q);
}

/* Sends the batch through hw_positions_stage and the merge. */
static void hw_pgw_start_replay(hw_pgw_conn *wc) {
  char sql[768];
  snprintf(sql, sizeof sql, "%sBEGIN; %s%s",
           PQtransactionStatus(wc->conn.pg) != PQTRANS_IDLE ? "ROLLBACK; " : "",
           wc->stage_ready ? "" : hw_pgw_stage_create_sql, hw_pgw_stage_copy_sql);
  wc->replay = 1;
  wc->merged = -1;
  hw_pgw_send(wc, sql, HW_WC_COPY_START);
}

static void hw_pgw_start_batch(hw_pgw_conn *wc, hw_pg_batch *b) {
  b->state = HW_B_ACTIVE;
  if (!b->start_ns)
    b->start_ns = uv_hrtime();
  wc->batch = b;
  wc->replay = 0;
  if (b->maybe_dup) {
    hw_debug(HW_PGW, NULL, "batch %llu: %u rows, some may be stored already: merging",
             (unsigned long long)b->id, b->rows);
    hw_pgw_start_replay(wc);
    return;
  }
  /* With statements beside the rows, one transaction holds both (header). */
  hw_pgw_send(wc, b->sql_len ? hw_pgw_begin_copy_sql : hw_pgw_copy_sql, HW_WC_COPY_START);
}

static void hw_pgw_on_retry(uv_timer_t *t) {
  hw_pgw_conn *wc = t->data;
  if (wc->phase == HW_WC_COOLDOWN && wc->conn.up && wc->batch && !wc->w->closing)
    hw_pgw_start_batch(wc, wc->batch);
  hw_pgw_maybe_finish(wc->w);
}

static void hw_pgw_cooldown(hw_pgw_conn *wc) {
  wc->phase = HW_WC_COOLDOWN;
  uv_timer_start(&wc->retry, hw_pgw_on_retry, wc->w->retry_ms, 0);
}

static void hw_pgw_batch_error(hw_pgw_conn *wc) {
  hw_pg_writer *w = wc->w;
  hw_pg_batch *b = wc->batch;
  if (PQstatus(wc->conn.pg) == CONNECTION_BAD) {
    hw_pg_conn_fail(&wc->conn, "session ended");
    return;
  }
  if (!wc->replay && strcmp(wc->err_state, "23505") == 0) {
    hw_info(HW_PGW, NULL, "batch %llu: rows already stored (23505), replaying %u rows through "
            "hw_positions_stage", (unsigned long long)b->id, b->rows);
    hw_pgw_start_replay(wc);
    return;
  }
  w->retry_ms = w->retry_ms ? w->retry_ms * 2 : HW_PGW_RETRY_MIN_MS;
  if (w->retry_ms > HW_PGW_RETRY_MAX_MS)
    w->retry_ms = HW_PGW_RETRY_MAX_MS;
  hw_error(HW_PGW, NULL, "batch %llu (%u rows) not stored: SQLSTATE %s: %s; %s",
           (unsigned long long)b->id, b->rows, wc->has_err ? wc->err_state : "-",
           wc->has_err ? wc->err_msg : "COPY did not run",
           w->stopping ? "stopping, dropped unacknowledged" : "retrying");
  if (w->stopping) {
    w->abandon = 1; /* nothing after it may be acknowledged either */
    wc->phase = HW_WC_IDLE;
    return;
  }
  wc->replay = 0;
  if (PQtransactionStatus(wc->conn.pg) != PQTRANS_IDLE)
    hw_pgw_send(wc, "ROLLBACK", HW_WC_ROLLBACK);
  else
    hw_pgw_cooldown(wc);
}

static void hw_pgw_batch_durable(hw_pgw_conn *wc) {
  hw_pg_writer *w = wc->w;
  hw_pg_batch *b = wc->batch;
  wc->batch = NULL;
  wc->phase = HW_WC_IDLE;
  if (wc->replay) {
    if (b->maybe_dup)
      w->stats.merge_batches++;
    else
      w->stats.conflict_replays++;
    /* Rows that became no row of their own: resends, and fixes folded into another of their key. */
    if (wc->merged >= 0 && (uint64_t)wc->merged <= b->rows)
      w->stats.rows_folded += b->rows - (uint64_t)wc->merged;
    wc->stage_ready = 1; /* its CREATE committed with this batch */
    wc->replay = 0;
  }
  b->state = HW_B_DURABLE;
  w->backlog -= b->rows;
  w->stats.rows_committed += b->rows;
  w->stats.batches_committed++;
  if (b->start_ns)
    hw_lat_hist_record(&w->stats.commit_latency, (uv_hrtime() - b->start_ns) / 1000);
  w->retry_ms = 0;
  hw_debug(HW_PGW, NULL, "batch %llu committed rows=%u ms=%llu conn=%u",
           (unsigned long long)b->id, b->rows,
           (unsigned long long)(uv_now(w->loop) - b->first_ms), wc->idx);
  hw_pgw_deliver(w);
  hw_pgw_dispatch(w);
}

/* Queues the batch's bytes, then the end of COPY. 0 when all is queued, 1 when waiting for the
 * socket, -1 when the session failed. */
static int hw_pgw_put(hw_pgw_conn *wc) {
  hw_pg_conn *c = &wc->conn;
  hw_pg_batch *b = wc->batch;
  hw_pg_conn_want_write(c, 0);
  int r = hw_pg_conn_flush(c);
  while (r == 0 && wc->put_off < b->len) {
    size_t n = b->len - wc->put_off < HW_PGW_PUT_CHUNK ? b->len - wc->put_off : HW_PGW_PUT_CHUNK;
    int pr = PQputCopyData(c->pg, (const char *)b->buf + wc->put_off, (int)n);
    if (pr < 0) {
      r = -1;
      break;
    }
    if (pr == 0) { /* would block */
      hw_pg_conn_want_write(c, 1);
      return 1;
    }
    wc->put_off += n;
    r = hw_pg_conn_flush(c);
  }
  if (r == 0) {
    int er = PQputCopyEnd(c->pg, NULL);
    if (er == 0) {
      hw_pg_conn_want_write(c, 1);
      return 1;
    }
    r = er < 0 ? -1 : hw_pg_conn_flush(c) < 0 ? -1 : 0;
    if (r == 0)
      return 0; /* what is still buffered drains as the socket allows */
  }
  if (r > 0)
    return 1;
  hw_pg_conn_fail(c, "COPY");
  return -1;
}

static void hw_pgw_on_result(hw_pgw_conn *wc, PGresult *res) {
  ExecStatusType st = PQresultStatus(res);
  switch (st) {
  case PGRES_COPY_IN:
    if (wc->phase == HW_WC_COPY_START && !wc->has_err) {
      wc->phase = HW_WC_PUT;
      wc->put_off = 0;
    } else {
      hw_pg_conn_fail(&wc->conn, "unexpected COPY");
    }
    break;
  case PGRES_COPY_OUT:
  case PGRES_COPY_BOTH:
    hw_pg_conn_fail(&wc->conn, "unexpected COPY");
    break;
  case PGRES_COMMAND_OK:
  case PGRES_TUPLES_OK:
    if (wc->phase == HW_WC_PARTITIONS && st == PGRES_TUPLES_OK && PQntuples(res) > 0)
      wc->partitions_created = atol(PQgetvalue(res, 0, 0));
    /* COMMIT of an aborted transaction answers ROLLBACK without an error. */
    if (wc->phase == HW_WC_COMMIT && strcmp(PQcmdStatus(res), "COMMIT") == 0)
      wc->commit_seen = 1;
    if (wc->phase == HW_WC_COMMIT && wc->replay && strncmp(PQcmdStatus(res), "INSERT", 6) == 0)
      wc->merged = atol(PQcmdTuples(res));
    break;
  default:
    if (!wc->has_err) {
      wc->has_err = 1;
      snprintf(wc->err_state, sizeof wc->err_state, "%s", hw_pg_sqlstate(res));
      snprintf(wc->err_msg, sizeof wc->err_msg, "%s", hw_pg_errmsg(res));
    }
    break;
  }
  PQclear(res);
}

static void hw_pgw_on_query_done(hw_pgw_conn *wc) {
  hw_pg_writer *w = wc->w;
  switch (wc->phase) {
  case HW_WC_PARTITIONS:
    if (PQtransactionStatus(wc->conn.pg) != PQTRANS_IDLE) {
      hw_pg_conn_fail(&wc->conn, "partition upkeep left a transaction open");
      return;
    }
    if (wc->has_err)
      hw_error(HW_PGW, NULL, "partition upkeep failed: SQLSTATE %s: %s; next try in an hour",
               wc->err_state, wc->err_msg);
    else if (wc->partitions_created > 0)
      hw_info(HW_PGW, NULL, "partition upkeep: %ld daily partitions created",
              wc->partitions_created);
    w->upkeep_done = 1;
    wc->phase = HW_WC_IDLE;
    hw_pgw_dispatch(w);
    break;
  case HW_WC_COPY_START: /* ended without accepting rows */
    hw_pgw_batch_error(wc);
    break;
  case HW_WC_COPY_END:
    if (wc->has_err)
      hw_pgw_batch_error(wc);
    else if (!wc->replay && !wc->batch->sql_len &&
             PQtransactionStatus(wc->conn.pg) == PQTRANS_IDLE)
      hw_pgw_batch_durable(wc); /* the plain COPY's own transaction committed (header) */
    else if (!wc->replay && !wc->batch->sql_len)
      hw_pg_conn_fail(&wc->conn, "COPY left a transaction open");
    else
      hw_pgw_send_commit(wc); /* its statements, then the COMMIT (or the merge's) */
    break;
  case HW_WC_COMMIT:
    if (wc->has_err || !wc->commit_seen)
      hw_pgw_batch_error(wc);
    else
      hw_pgw_batch_durable(wc);
    break;
  case HW_WC_ROLLBACK:
    if (wc->has_err || PQtransactionStatus(wc->conn.pg) != PQTRANS_IDLE)
      hw_pg_conn_fail(&wc->conn, "ROLLBACK");
    else
      hw_pgw_cooldown(wc);
    break;
  default:
    hw_pg_conn_fail(&wc->conn, "unexpected result");
    break;
  }
}

/* Runs the cycle as far as the session allows right now. */
static void hw_pgw_progress(hw_pgw_conn *wc) {
  hw_pg_conn *c = &wc->conn;
  while (c->up && !wc->w->closing) {
    switch (wc->phase) {
    case HW_WC_DOWN:
    case HW_WC_IDLE:
    case HW_WC_COOLDOWN:
      return;
    case HW_WC_PUT:
      if (hw_pgw_put(wc) != 0)
        return;
      wc->phase = HW_WC_COPY_END;
      continue;
    default:
      break;
    }
    if (PQisBusy(c->pg))
      return;
    PGresult *res = PQgetResult(c->pg);
    if (res)
      hw_pgw_on_result(wc, res);
    else
      hw_pgw_on_query_done(wc);
  }
}

/* --- scheduling ----------------------------------------------------------------------------- */

static void hw_pgw_dispatch(hw_pg_writer *w) {
  if (w->closing || w->abandon)
    return;
  for (uint32_t i = 0; i < w->nconns; i++) {
    hw_pgw_conn *wc = &w->conns[i];
    if (wc->phase != HW_WC_IDLE || !wc->conn.up)
      continue;
    if (w->partitions_due && !w->stopping) {
      w->partitions_due = 0;
      wc->partitions_created = 0;
      hw_pgw_send(wc, hw_pgw_partitions_sql, HW_WC_PARTITIONS);
      continue;
    }
    /* Until today's partition exists rows would land in the default partition, and a write
     * there racing the upkeep's ATTACH would make the upkeep fail. */
    if (!w->upkeep_done && !w->stopping)
      return;
    hw_pg_batch *b = w->head;
    while (b && b->state != HW_B_QUEUED)
      b = b->next;
    /* Adaptive: an idle connection takes the open batch now, however young (header). */
    if (!b && w->open && (w->open->rows || w->open->sql_len)) {
      hw_pgw_seal_open(w);
      b = w->tail;
    }
    if (!b)
      return;
    hw_pgw_start_batch(wc, b);
  }
}

/* One more handle closed; the last one frees the writer. */
static void hw_pgw_handle_gone(hw_pg_writer *w) {
  if (--w->handles > 0)
    return;
  while (w->spare) {
    hw_pg_batch *b = w->spare;
    w->spare = b->next;
    hw_pgw_batch_free(b);
  }
  void (*cb)(void *) = w->done_cb;
  void *arg = w->done_arg;
  free(w->conns);
  free(w);
  if (cb)
    cb(arg);
}

static void hw_pgw_on_timer_closed(uv_handle_t *h) { hw_pgw_handle_gone(h->data); }

static void hw_pgw_on_retry_closed(uv_handle_t *h) {
  hw_pgw_conn *wc = h->data;
  hw_pgw_handle_gone(wc->w);
}

static void hw_pgw_on_conn_closed(hw_pg_conn *c) {
  hw_pgw_conn *wc = c->data;
  hw_pgw_handle_gone(wc->w);
}

static void hw_pgw_close_all(hw_pg_writer *w) {
  w->closing = 1;
  if (w->backlog)
    hw_warn(HW_PGW, NULL, "stopped with %zu rows not committed: dropped unacknowledged",
            w->backlog);
  hw_pg_batch *all[2] = {w->head, w->open};
  for (int k = 0; k < 2; k++) {
    for (hw_pg_batch *b = all[k], *next; b; b = next) {
      next = k == 0 ? b->next : NULL;
      hw_pgw_batch_free(b);
    }
  }
  w->head = w->tail = w->open = NULL;
  w->handles = 4 + 2 * (int)w->nconns;
  uv_close((uv_handle_t *)&w->kick, hw_pgw_on_timer_closed);
  uv_close((uv_handle_t *)&w->batch_timer, hw_pgw_on_timer_closed);
  uv_close((uv_handle_t *)&w->partition_timer, hw_pgw_on_timer_closed);
  uv_close((uv_handle_t *)&w->stop_timer, hw_pgw_on_timer_closed);
  for (uint32_t i = 0; i < w->nconns; i++) {
    hw_pgw_conn *wc = &w->conns[i];
    wc->batch = NULL;
    uv_close((uv_handle_t *)&wc->retry, hw_pgw_on_retry_closed);
    hw_pg_conn_close(&wc->conn);
  }
}

/* Called at the end of every callback from the loop: closing never starts under a caller. */
static void hw_pgw_maybe_finish(hw_pg_writer *w) {
  if (!w->stopping || w->closing)
    return;
  if (!w->abandon &&
      (w->head || (w->open && (w->open->rows || w->open->nacks || w->open->sql_len)))) {
    for (uint32_t i = 0; i < w->nconns; i++)
      if (w->conns[i].conn.pg)
        return; /* a session is up or connecting: it may still commit the rest */
    w->abandon = 1;
  }
  hw_pgw_close_all(w);
}

/* --- callbacks from the loop --------------------------------------------------------------- */

static void hw_pgw_on_ready(hw_pg_conn *c) {
  hw_pgw_conn *wc = c->data;
  wc->phase = HW_WC_IDLE;
  wc->stage_ready = 0;
  wc->replay = 0;
  if (c->sessions > 1)
    wc->w->stats.reconnects++;
  hw_pgw_dispatch(wc->w);
  hw_pgw_maybe_finish(wc->w);
}

static void hw_pgw_on_io(hw_pg_conn *c) {
  hw_pgw_conn *wc = c->data;
  hw_pgw_progress(wc);
  hw_pgw_maybe_finish(wc->w);
}

static void hw_pgw_on_lost(hw_pg_conn *c) {
  hw_pgw_conn *wc = c->data;
  hw_pg_writer *w = wc->w;
  uv_timer_stop(&wc->retry);
  if (wc->batch) {
    /* Its COMMIT may or may not have happened: sent again, the conflict path sorts it out. */
    hw_info(HW_PGW, NULL, "batch %llu (%u rows) will be sent again",
            (unsigned long long)wc->batch->id, wc->batch->rows);
    wc->batch->state = HW_B_QUEUED;
    wc->batch = NULL;
  }
  if (wc->phase == HW_WC_PARTITIONS)
    w->partitions_due = 1;
  wc->phase = HW_WC_DOWN;
  wc->replay = 0;
  wc->stage_ready = 0;
  hw_pgw_dispatch(w);
  hw_pgw_maybe_finish(w);
}

static const hw_pg_conn_ops hw_pgw_conn_ops = {
    .ready = hw_pgw_on_ready,
    .io = hw_pgw_on_io,
    .lost = hw_pgw_on_lost,
    .closed = hw_pgw_on_conn_closed,
};

/* The open batch's first row is batch_ms old. An idle connection would have taken it already
 * (kick), so every one is busy: the batch is sealed and queued for the next one free, and later
 * rows start a new batch, so that no batch gathers more than batch_ms of arrivals. With no
 * session up (an outage) it stays open and grows to batch_rows instead: the backlog is sent
 * again in few large transactions rather than one per batch_ms. */
static void hw_pgw_on_batch_timer(uv_timer_t *t) {
  hw_pg_writer *w = t->data;
  int up = 0;
  for (uint32_t i = 0; i < w->nconns; i++)
    up |= w->conns[i].conn.up;
  if (w->open && w->open->rows == 0 && w->open->sql_len == 0 && w->open->nacks)
    hw_pgw_seal_open(w);
  else if (w->open && (w->open->rows || w->open->sql_len) && up && w->upkeep_done)
    hw_pgw_seal_open(w);
  hw_pgw_dispatch(w);
  hw_pgw_maybe_finish(w);
}

/* Before the loop polls again: the rows added since go to an idle connection now. */
static void hw_pgw_on_kick(uv_idle_t *h) {
  hw_pg_writer *w = h->data;
  uv_idle_stop(&w->kick);
  hw_pgw_dispatch(w);
  hw_pgw_maybe_finish(w);
}

static void hw_pgw_on_partition_timer(uv_timer_t *t) {
  hw_pg_writer *w = t->data;
  w->partitions_due = 1;
  hw_pgw_dispatch(w);
}

static void hw_pgw_on_stop_grace(uv_timer_t *t) {
  hw_pg_writer *w = t->data;
  hw_warn(HW_PGW, NULL, "PostgreSQL did not take the remaining rows within %d ms",
          HW_PGW_STOP_GRACE_MS);
  w->abandon = 1;
  hw_pgw_maybe_finish(w);
}

static void hw_pgw_on_stop_kick(uv_timer_t *t) {
  hw_pg_writer *w = t->data;
  if (w->open && (w->open->rows || w->open->nacks || w->open->sql_len))
    hw_pgw_seal_open(w);
  uv_timer_start(&w->stop_timer, hw_pgw_on_stop_grace, HW_PGW_STOP_GRACE_MS, 0);
  hw_pgw_dispatch(w);
  hw_pgw_maybe_finish(w);
}

/* --- public -------------------------------------------------------------------------------- */

int hw_pg_writer_start(hw_pg_writer **out, uv_loop_t *loop, const hw_pg_writer_config *cfg,
                       hw_pg_durable_cb durable_cb, void *arg) {
  if (!cfg || !cfg->conninfo || !durable_cb || cfg->batch_rows > HW_PGW_MAX_ROWS ||
      cfg->connections > HW_PGW_MAX_CONNECTIONS)
    return -EINVAL;
  hw_pg_writer *w = calloc(1, sizeof *w);
  if (!w)
    return -ENOMEM;
  w->loop = loop;
  w->batch_rows = cfg->batch_rows ? cfg->batch_rows : HW_PGW_DEFAULT_ROWS;
  w->batch_ms = cfg->batch_ms ? cfg->batch_ms : HW_PGW_DEFAULT_MS;
  w->nconns = cfg->connections ? cfg->connections : 1;
  w->durable_cb = durable_cb;
  w->arg = arg;
  w->partitions_due = 1;
  w->conns = calloc(w->nconns, sizeof *w->conns);
  if (!w->conns) {
    free(w);
    return -ENOMEM;
  }
  /* Timers cannot fail to initialise on Unix; connections can (memory), and then the ones made
   * so far are closed through the stop path. */
  uv_timer_init(loop, &w->batch_timer);
  uv_timer_init(loop, &w->partition_timer);
  uv_timer_init(loop, &w->stop_timer);
  uv_idle_init(loop, &w->kick);
  w->batch_timer.data = w->partition_timer.data = w->stop_timer.data = w;
  w->kick.data = w;
  uint32_t want = w->nconns;
  for (uint32_t i = 0; i < want; i++) {
    hw_pgw_conn *wc = &w->conns[i];
    wc->w = w;
    wc->idx = i;
    wc->phase = HW_WC_DOWN;
    int rc = hw_pg_conn_init(&wc->conn, loop, cfg->conninfo, HW_PGW, &hw_pgw_conn_ops, wc);
    if (rc) {
      w->nconns = i;
      w->stopping = 1;
      hw_pgw_close_all(w);
      return rc;
    }
    uv_timer_init(loop, &wc->retry);
    wc->retry.data = wc;
  }
  uv_timer_start(&w->partition_timer, hw_pgw_on_partition_timer, HW_PGW_PARTITION_EVERY_MS,
                 HW_PGW_PARTITION_EVERY_MS);
  *out = w;
  return 0;
}

int hw_pg_writer_add(hw_pg_writer *w, const char *terminal_id, const hw_fix *fix) {
  return hw_pg_writer_add_flags(w, terminal_id, fix, 0);
}

int hw_pg_writer_add_flags(hw_pg_writer *w, const char *terminal_id, const hw_fix *fix,
                           unsigned flags) {
  if (flags & ~HW_PG_ROW_MAYBE_DUP)
    return -EINVAL;
  if (w->stopping)
    return -ESHUTDOWN;
  hw_pg_batch *b = w->open;
  if (!b) {
    if (!(b = hw_pgw_batch_new(w)))
      return -ENOMEM;
    w->open = b;
  }
  /* Room for this row and the trailer that sealing appends. */
  if (hw_pgw_batch_reserve(b, HW_PG_COPY_ROW_MAX + HW_PG_COPY_TRAILER_LEN))
    return -ENOMEM;
  size_t n;
  int rc = hw_pg_copy_row(b->buf + b->len, terminal_id, fix, &n);
  if (rc)
    return rc;
  b->len += n;
  if (flags & HW_PG_ROW_MAYBE_DUP)
    b->maybe_dup = 1;
  w->backlog++;
  if (++b->rows == 1) {
    b->first_ms = uv_now(w->loop);
    if (!uv_is_active((uv_handle_t *)&w->batch_timer))
      uv_timer_start(&w->batch_timer, hw_pgw_on_batch_timer, w->batch_ms, 0);
    /* A connection may be idle: offer it the batch once this iteration's reads are in. When
     * none is, the next batch to finish dispatches it and the kick finds nothing to do. */
    if (!uv_is_active((uv_handle_t *)&w->kick))
      uv_idle_start(&w->kick, hw_pgw_on_kick);
  }
  if (b->rows >= w->batch_rows) {
    hw_pgw_seal_open(w);
    hw_pgw_dispatch(w);
  }
  return 0;
}

int hw_pg_writer_add_ack(hw_pg_writer *w, const hw_ack_ref *ack) {
  if (w->stopping)
    return -ESHUTDOWN;
  hw_pg_batch *b;
  if (w->open && (w->open->rows || w->open->sql_len)) {
    b = w->open;
  } else if (w->tail) {
    b = w->tail; /* the newest rows are there */
  } else {
    /* Everything added so far is durable: hand it over from the loop, not under the caller. */
    if (!w->open && !(w->open = hw_pgw_batch_new(w)))
      return -ENOMEM;
    b = w->open;
    if (!uv_is_active((uv_handle_t *)&w->batch_timer))
      uv_timer_start(&w->batch_timer, hw_pgw_on_batch_timer, 0, 0);
  }
  return hw_pgw_batch_push_ack(b, ack);
}

int hw_pg_writer_add_sql(hw_pg_writer *w, const char *sql, size_t len) {
  if (len == 0 || len > HW_PG_SQL_MAX || memchr(sql, 0, len))
    return -EINVAL;
  if (w->stopping)
    return -ESHUTDOWN;
  hw_pg_batch *b = w->open;
  if (!b) {
    if (!(b = hw_pgw_batch_new(w)))
      return -ENOMEM;
    w->open = b;
  }
  /* Room for the trailer that sealing appends, as a row would reserve. */
  if (hw_pgw_batch_reserve(b, HW_PG_COPY_TRAILER_LEN))
    return -ENOMEM;
  if (b->sql_cap - b->sql_len < len) {
    size_t cap = b->sql_cap ? b->sql_cap : 4096;
    while (cap - b->sql_len < len)
      cap *= 2;
    char *p = realloc(b->sql, cap);
    if (!p)
      return -ENOMEM;
    b->sql = p;
    b->sql_cap = cap;
  }
  int first = b->rows == 0 && b->sql_len == 0;
  memcpy(b->sql + b->sql_len, sql, len);
  b->sql_len += len;
  if (first) {
    b->first_ms = uv_now(w->loop);
    if (!uv_is_active((uv_handle_t *)&w->batch_timer))
      uv_timer_start(&w->batch_timer, hw_pgw_on_batch_timer, w->batch_ms, 0);
    if (!uv_is_active((uv_handle_t *)&w->kick)) /* offered to an idle connection, as a row */
      uv_idle_start(&w->kick, hw_pgw_on_kick);
  }
  return 0;
}

size_t hw_pg_writer_backlog(const hw_pg_writer *w) { return w->backlog; }

void hw_pg_writer_get_stats(const hw_pg_writer *w, hw_pg_writer_stats *out) {
  *out = w->stats;
  out->connections_up = 0;
  for (unsigned i = 0; i < w->nconns; i++)
    out->connections_up += w->conns[i].conn.up ? 1u : 0u;
}

void hw_pg_writer_stop(hw_pg_writer *w, void (*done_cb)(void *arg), void *arg) {
  if (w->stopping)
    return;
  w->stopping = 1;
  w->done_cb = done_cb;
  w->done_arg = arg;
  uv_timer_stop(&w->partition_timer);
  /* From the loop: sealing may hand acks over, which must not happen under the caller. */
  uv_timer_start(&w->stop_timer, hw_pgw_on_stop_kick, 0, 0);
}
