/* What the command-line tools share for PostgreSQL: one blocking connection (CLI tools may
 * block), its conninfo from --pg or HAULWATCH_PG, and error messages a person can act on. */
#ifndef HW_CLI_PG_H
#define HW_CLI_PG_H

#include <libpq-fe.h>

#include "base/common.h"

#define HW_CLI_PG_ENV "HAULWATCH_PG"
#define HW_CLI_PG_HELP "PostgreSQL conninfo, e.g. \"host=127.0.0.1 dbname=haulwatch\""

/* Connects (UTF-8 client encoding, TimeZone Asia/Shanghai so times read and print as GMT+8) and
 * checks that the schema is at least min_schema. On failure prints why to stderr and returns
 * -EIO (no server, refused) or -ENOENT (schema too old). *out is owned by the caller (PQfinish). */
int hw_cli_pg_connect(const char *conninfo, int min_schema, PGconn **out) HW_MUST_CHECK;

/* Prints "haulwatch CMD: WHAT: message" plus PostgreSQL's detail and hint to stderr. */
void hw_cli_pg_report(const char *cmd, const char *what, const PGresult *res);

/* The WHERE clause of a list command into where (cap bytes): "TRUE" and, for each non-empty
 * vals[i] of n, " AND " preds[i] (its one %d: the parameter's number), with vals[i] appended to
 * params (room for n). Returns how many parameters it appended. */
int hw_cli_pg_filters(const char *const *preds, const char *const *vals, size_t n, char *where,
                      size_t cap, const char **params);

/* Runs a command that returns no rows; on failure reports it and returns -EIO. */
int hw_cli_pg_exec(PGconn *conn, const char *cmd, const char *sql) HW_MUST_CHECK;

#endif
