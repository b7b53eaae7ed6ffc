#include "cli/cli_pg.h"

#include <stdio.h>
#include <string.h>

#include "sinks/migrate.h"

int hw_cli_pg_connect(const char *conninfo, int min_schema, PGconn **out) {
  *out = NULL;
  PGconn *c = PQconnectdb(conninfo ? conninfo : "");
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "cannot connect to PostgreSQL (give --pg CONNINFO or set %s): %s",
            HW_CLI_PG_ENV, PQerrorMessage(c));
    PQfinish(c);
    return -EIO;
  }
  /* Files and terminals are UTF-8 whatever the server's default; operators read local time. */
  if (PQsetClientEncoding(c, "UTF8") != 0 ||
      hw_cli_pg_exec(c, "connect", "SET TimeZone = 'Asia/Shanghai'") != 0 ||
      /* PostGIS explains invalid geometry in NOTICEs; the tools report it themselves. */
      hw_cli_pg_exec(c, "connect", "SET client_min_messages = warning") != 0) {
    fprintf(stderr, "cannot set up the PostgreSQL session: %s", PQerrorMessage(c));
    PQfinish(c);
    return -EIO;
  }
  /* hw_schema_version's query names schema_migrations, which an empty database lacks. */
  int version = 0;
  PGresult *res = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
  int migrated = PQresultStatus(res) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(res, 0, 0), "t");
  PQclear(res);
  if (migrated && hw_schema_version(c, &version) != 0) {
    PQfinish(c);
    return -EIO;
  }
  if (version < min_schema) {
    fprintf(stderr, "the database schema is at version %d, this command needs %d: run "
                    "`haulwatch migrate` first\n", version, min_schema);
    PQfinish(c);
    return -ENOENT;
  }
  *out = c;
  return 0;
}

void hw_cli_pg_report(const char *cmd, const char *what, const PGresult *res) {
  const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
  const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
  if (!msg)
    msg = res ? PQresultErrorMessage(res) : "out of memory";
  fprintf(stderr, "haulwatch %s: %s: %s\n", cmd, what, msg);
  if (detail)
    fprintf(stderr, "  %s\n", detail);
  if (hint)
    fprintf(stderr, "  hint: %s\n", hint);
}

int hw_cli_pg_exec(PGconn *conn, const char *cmd, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -EIO;
  if (rc)
    hw_cli_pg_report(cmd, sql, res);
  PQclear(res);
  return rc;
}

int hw_cli_pg_filters(const char *const *preds, const char *const *vals, size_t n, char *where,
                      size_t cap, const char **params) {
  int np = 0;
  snprintf(where, cap, "TRUE");
  for (size_t i = 0; i < n; i++) {
    if (!vals[i][0])
      continue;
    size_t off = strlen(where);
    snprintf(where + off, cap - off, " AND ");
    off = strlen(where);
    snprintf(where + off, cap - off, preds[i], np + 1);
    params[np++] = vals[i];
  }
  return np;
}
