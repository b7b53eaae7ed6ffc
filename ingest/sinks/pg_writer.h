/* PostgreSQL position writer: buffers fixes as binary COPY rows and writes them in batches on its
 * own non-blocking libpq connection driven by the libuv loop. Group commit adapts to the load:
 * rows added while a connection is idle are committed at once (at the end of the loop iteration
 * that added them); while every connection is busy they gather into the next batch, which a
 * connection takes as soon as it is free. A batch is also closed at batch_rows rows or when its
 * first row is batch_ms old (upper bounds, not waits). Only after the commit are the acks queued
 * behind its rows handed to durable_cb, in the order they were added.
 *
 * Duplicates: a fix sent again after a lost ack may reach a batch, and so may a second, different
 * fix in the same device second (JT/T 808 times are whole seconds). The primary key
 * (terminal_id, ts) then makes COPY fail with unique_violation; the writer replays that batch
 * through a staging table and merges: one row per key, alarm bits OR'd over every fix of that
 * key, the other columns those of the fix received first; a true resend changes nothing. A caller
 * that knows a row may be stored already says so (HW_PG_ROW_MAYBE_DUP): its batch then goes to
 * the merge at once instead of through a COPY that would fail. Rows without the hint keep the
 * plain COPY.
 *
 * Failure: if PostgreSQL goes away the writer keeps the unacknowledged batches, reconnects with
 * backoff and sends them again (a batch whose COMMIT outcome is unknown is replayed; the
 * conflict path makes that safe). Nothing is acknowledged that is not committed. Any other error
 * (logged with its SQLSTATE) leaves the batch unacknowledged and it is retried with backoff: rows
 * are validated before encoding, so such an error is the server's, not one bad fix's.
 *
 * Partitions: the writer owns the upkeep. It runs hw_ensure_partitions for yesterday through the
 * day after tomorrow (UTC) at start, before its first batch, and every hour. */
#ifndef HW_PG_WRITER_H
#define HW_PG_WRITER_H

#include <uv.h>

#include "base/ack.h"
#include "base/fix.h"
#include "base/hist.h"

typedef struct hw_pg_writer hw_pg_writer;

/* Batch defaults, written once (serve's settings table quotes them: bare literals). */
#define HW_PGW_DEFAULT_ROWS 5000
#define HW_PGW_DEFAULT_MS 50

typedef struct hw_pg_writer_config {
  const char *conninfo;  /* libpq connection string; copied */
  uint32_t batch_rows;   /* a batch holds at most this many rows (0: HW_PGW_DEFAULT_ROWS) */
  uint32_t batch_ms;     /* ... and what arrives in this many ms while every connection is
                          * busy (0: HW_PGW_DEFAULT_MS); an idle connection never waits */
  uint32_t connections;  /* parallel writer connections, each committing its own batches (default 1) */
} hw_pg_writer_config;

/* Called on the loop after a batch committed, with the acks queued behind its rows, in order.
 * The array is owned by the writer and valid during the call only. */
typedef void (*hw_pg_durable_cb)(void *arg, const hw_ack_ref *acks, size_t n);

/* Starts connecting at once; rows may be added immediately and wait for the connection. */
int hw_pg_writer_start(hw_pg_writer **out, uv_loop_t *loop, const hw_pg_writer_config *cfg,
                       hw_pg_durable_cb durable_cb, void *arg) HW_MUST_CHECK;

/* Appends one row. The fix is encoded at once; the caller keeps ownership of both arguments.
 * -EINVAL (nothing added) for a fix PostgreSQL would refuse: see hw_pg_copy_row; -ESHUTDOWN
 * after stop; -ENOMEM. */
int hw_pg_writer_add(hw_pg_writer *w, const char *terminal_id, const hw_fix *fix) HW_MUST_CHECK;

/* The row may be stored already (a resend, or a fix of a device second already seen): its batch
 * skips the plain COPY and is merged (see above). Costs more than a COPY, never correctness. */
#define HW_PG_ROW_MAYBE_DUP 0x1u

/* hw_pg_writer_add with flags (HW_PG_ROW_*); -EINVAL for an unknown flag. */
int hw_pg_writer_add_flags(hw_pg_writer *w, const char *terminal_id, const hw_fix *fix,
                           unsigned flags) HW_MUST_CHECK;

/* Queues an ack behind every row added so far. */
int hw_pg_writer_add_ack(hw_pg_writer *w, const hw_ack_ref *ack) HW_MUST_CHECK;

/* Statements (complete, each ending in ';', no NUL) to run in the transaction of the rows added
 * so far and not yet sealed, before its COMMIT; the next ack is delivered only once they are
 * committed with those rows. A batch may run twice (COMMIT outcome unknown, conflict replay), so
 * they must be idempotent (INSERT ... ON CONFLICT DO NOTHING), and they must not fail on any
 * input the caller validated: a failing statement holds its batch and every ack after it. Used
 * for active-safety alarms (sinks/alarm_sql.h). Copied. -EINVAL for an empty or longer than
 * HW_PG_SQL_MAX text, -ESHUTDOWN after stop, -ENOMEM. */
#define HW_PG_SQL_MAX (256 * 1024)
int hw_pg_writer_add_sql(hw_pg_writer *w, const char *sql, size_t len) HW_MUST_CHECK;

/* Rows added and not yet committed: the backpressure measure. */
size_t hw_pg_writer_backlog(const hw_pg_writer *w);

typedef struct hw_pg_writer_stats {
  uint64_t rows_committed, batches_committed, conflict_replays, reconnects;
  uint64_t merge_batches; /* batches merged at once because a row had HW_PG_ROW_MAYBE_DUP */
  uint64_t rows_folded;   /* merged rows that added no row: resends, same-key fixes folded */
  /* A batch's first dispatch to its COMMIT, retries included: what the backlog waits on. */
  hw_lat_hist commit_latency;
  unsigned connections_up; /* writer sessions connected now (of pg_writers) */
} hw_pg_writer_stats;
void hw_pg_writer_get_stats(const hw_pg_writer *w, hw_pg_writer_stats *out);

/* Commits what is buffered, then closes every handle; done_cb runs when the last handle closed
 * (the loop may then be closed). Rows still uncommitted when PostgreSQL is unreachable are
 * dropped unacknowledged: their senders will send them again. */
void hw_pg_writer_stop(hw_pg_writer *w, void (*done_cb)(void *arg), void *arg);

#endif
