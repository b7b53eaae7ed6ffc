/* PostgreSQL binary COPY encoding of positions rows. A row is checked completely before a byte of
 * it is written, so a value PostgreSQL would reject never reaches a COPY stream (one bad row
 * would abort the whole batch). Columns, in this order (the order of the positions table):
 *   terminal_id text, ts timestamptz, seq int8, recv_ts timestamptz, lat float8, lon float8,
 *   speed_kmh float4, heading int2, alt_m int4, alarm int8, status int8, odometer_km float8,
 *   driver_id text (NULL without a driver), source int2, quality int2 */
#ifndef HW_PG_COPY_H
#define HW_PG_COPY_H

#include "base/fix.h"

#define HW_PG_COPY_NCOLS 15

/* The column list matching the encoded field order, for COPY statements. */
#define HW_PG_COPY_COLUMNS                                                                    \
  "terminal_id, ts, seq, recv_ts, lat, lon, speed_kmh, heading, alt_m, alarm, status, "      \
  "odometer_km, driver_id, source, quality"

/* Signature, flags and header extension length: starts every COPY stream. */
#define HW_PG_COPY_HEADER_LEN 19
extern const uint8_t hw_pg_copy_header[HW_PG_COPY_HEADER_LEN];

/* Field count -1: ends a COPY stream. */
#define HW_PG_COPY_TRAILER_LEN 2
extern const uint8_t hw_pg_copy_trailer[HW_PG_COPY_TRAILER_LEN];

/* Largest encoded row: field count, 15 lengths, a terminal id of at most HW_TID_WIDE_MAX and a driver id of
 * at most HW_DRIVER_ID_MAX bytes, fixed fields. */
#define HW_PG_COPY_ROW_MAX \
  (2 + 4 * HW_PG_COPY_NCOLS + HW_TID_WIDE_MAX + HW_DRIVER_ID_MAX + 8 * 8 + 4 * 2 + 3 * 2)

/* PostgreSQL timestamp of a UTC epoch time in ms: microseconds since 2000-01-01 00:00 UTC.
 * -EINVAL when outside what timestamptz accepts (4714-11-24 BC .. 294276 AD). */
int hw_pg_copy_timestamp(int64_t unix_ms, int64_t *pg_us) HW_MUST_CHECK;

/* Encodes one row into out (room for HW_PG_COPY_ROW_MAX bytes) and sets *len. Returns -EINVAL,
 * having written nothing, for a terminal id that fails hw_stored_tid_check, a time timestamptz
 * cannot hold, a heading that does not fit smallint, or a driver id that is unterminated or not
 * UTF-8 without NUL. */
int hw_pg_copy_row(uint8_t *out, const char *terminal_id, const hw_fix *fix, size_t *len)
    HW_MUST_CHECK;

#endif
