/* The JT/T 809 platforms table (schema/013_jt809.sql) as the daemon reads it: one statement
 * that finds the platform of an access code, and the row into hw_jt809_platform. The session
 * runs the statement on its loop's async connection at each 0x1001 (a login is rare; no cache
 * to go stale after `haulwatch platform disable`); the blocking CLI and tests use it alike. */
#ifndef HW_PLATFORM_ROW_H
#define HW_PLATFORM_ROW_H

#include <libpq-fe.h>

#include "jt809/jt809_login.h"

/* $1: access code (decimal). Zero or one row, in the column order hw_platform_from_row reads. */
#define HW_PLATFORM_SQL_BY_CENTER                                                             \
  "SELECT id, user_id, center_id, password_hash, version, m1, ia1, ic1, "                     \
  "coalesce(host(allow_addr), ''), disabled, slave_local_ok FROM platforms "                  \
  "WHERE center_id = $1::bigint"

/* Row `row` of a result of HW_PLATFORM_SQL_BY_CENTER into *out. -EBADMSG when a value does not
 * fit (a schema this build does not know). */
int hw_platform_from_row(const PGresult *res, int row, hw_jt809_platform *out) HW_MUST_CHECK;

#endif
