/* Schema migrations: schema/NNN_name.sql, compiled into the binary (cmake/embed_schema.cmake),
 * applied in order, each in its own transaction, recorded in schema_migrations. */
#ifndef HW_MIGRATE_H
#define HW_MIGRATE_H

#include <libpq-fe.h>

#include "base/common.h"

typedef struct hw_migration {
  int version;
  const char *name;
  const char *sql;
} hw_migration;

extern const hw_migration hw_migrations[];
extern const unsigned hw_migrations_count;

/* Latest version this binary knows. */
int hw_schema_latest(void);

/* Applies every migration newer than the database's version (blocking; CLI use). Concurrent runs
 * are serialised with an advisory lock. */
int hw_migrate_apply(PGconn *conn) HW_MUST_CHECK;

/* Reads the database's version into *version (0 for an empty database). */
int hw_schema_version(PGconn *conn, int *version) HW_MUST_CHECK;

#endif
