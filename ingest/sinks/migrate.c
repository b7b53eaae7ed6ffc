#include "sinks/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* Serialises concurrent `haulwatch migrate` runs. */
#define HW_MIGRATE_LOCK "7100001"

int hw_schema_latest(void) {
  return hw_migrations_count ? hw_migrations[hw_migrations_count - 1].version : 0;
}

static int hw_exec(PGconn *conn, const char *sql, ExecStatusType want) {
  PGresult *res = PQexec(conn, sql);
  int rc = PQresultStatus(res) == want ? 0 : -EIO;
  if (rc)
    hw_error("migrate", NULL, "%s", PQresultErrorMessage(res));
  PQclear(res);
  return rc;
}

int hw_schema_version(PGconn *conn, int *version) {
  /* Two statements: PostgreSQL resolves every table a query names before running it, so one
   * query cannot test for schema_migrations and read it. */
  PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
  int exists = PQresultStatus(res) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(res, 0, 0), "t");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_error("migrate", NULL, "cannot read schema version: %s", PQresultErrorMessage(res));
    PQclear(res);
    return -EIO;
  }
  PQclear(res);
  *version = 0;
  if (!exists)
    return 0;
  res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_error("migrate", NULL, "cannot read schema version: %s", PQresultErrorMessage(res));
    PQclear(res);
    return -EIO;
  }
  *version = atoi(PQgetvalue(res, 0, 0));
  PQclear(res);
  return 0;
}

int hw_migrate_apply(PGconn *conn) {
  int rc, version = 0;
  if ((rc = hw_exec(conn, "SELECT pg_advisory_lock(" HW_MIGRATE_LOCK ")", PGRES_TUPLES_OK)))
    return rc;
  if ((rc = hw_exec(conn,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                    PGRES_COMMAND_OK)))
    goto unlock;
  if ((rc = hw_schema_version(conn, &version)))
    goto unlock;
  for (unsigned i = 0; i < hw_migrations_count; i++) {
    const hw_migration *m = &hw_migrations[i];
    if (m->version <= version)
      continue;
    if ((rc = hw_exec(conn, "BEGIN", PGRES_COMMAND_OK)))
      goto unlock;
    if ((rc = hw_exec(conn, m->sql, PGRES_COMMAND_OK))) {
      hw_error("migrate", NULL, "migration %s failed; nothing of it was applied", m->name);
      PQclear(PQexec(conn, "ROLLBACK"));
      goto unlock;
    }
    char ver[16];
    snprintf(ver, sizeof ver, "%d", m->version);
    const char *params[2] = {ver, m->name};
    PGresult *res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                 2, NULL, params, NULL, NULL, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -EIO;
    PQclear(res);
    if (rc || (rc = hw_exec(conn, "COMMIT", PGRES_COMMAND_OK))) {
      PQclear(PQexec(conn, "ROLLBACK"));
      goto unlock;
    }
    hw_info("migrate", NULL, "applied %s", m->name);
  }
unlock:
  PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" HW_MIGRATE_LOCK ")"));
  return rc;
}
