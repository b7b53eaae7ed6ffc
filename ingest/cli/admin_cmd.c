/* `haulwatch migrate` and `haulwatch terminal`: administration with blocking libpq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "base/fix.h"
#include "base/log.h"
#include "sinks/migrate.h"
#include "base/options.h"
#include "base/token.h"

typedef struct hw_admin_config {
  char pg[1024];
} hw_admin_config;

static const hw_option hw_admin_options[] = {
    HW_OPT_S(hw_admin_config, pg, "", "HAULWATCH_PG", "PostgreSQL connection string"),
};

static PGconn *hw_admin_connect(const hw_admin_config *cfg, const char *cmd) {
  if (!cfg->pg[0]) {
    fprintf(stderr, "%s: no PostgreSQL given: --pg CONNINFO or HAULWATCH_PG\n", cmd);
    return NULL;
  }
  PGconn *c = PQconnectdb(cfg->pg);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "%s: cannot connect to PostgreSQL: %s", cmd, PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

int hw_cmd_migrate(int argc, char **argv) {
  hw_admin_config cfg = {{0}};
  int npos;
  int rc = hw_options_parse(hw_admin_options, HW_ARRAY_SIZE(hw_admin_options), &cfg, argc, argv,
                            "usage: haulwatch migrate [--pg CONNINFO]\n\n"
                            "Applies every schema migration the database lacks, in order.",
                            NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  PGconn *c = hw_admin_connect(&cfg, "migrate");
  if (!c)
    return 1;
  int version = 0;
  rc = hw_migrate_apply(c);
  if (rc == 0)
    rc = hw_schema_version(c, &version);
  PQfinish(c);
  if (rc) {
    fprintf(stderr, "migrate: failed (see the log above)\n");
    return 1;
  }
  printf("schema at version %d\n", version);
  return 0;
}

static int hw_terminal_add(PGconn *c, const char *id) {
  char token[HW_TOKEN_LEN + 1];
  uint8_t hash[HW_TOKEN_HASH_LEN];
  char bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1];
  if (hw_terminal_id_check(id, strlen(id))) {
    fprintf(stderr, "terminal add: '%s' is not a terminal id (1..32 characters of [0-9A-Za-z_-])\n", id);
    return 2;
  }
  if (hw_token_new(token)) {
    fprintf(stderr, "terminal add: no randomness available\n");
    return 1;
  }
  hw_token_hash(token, HW_TOKEN_LEN, hash);
  hw_token_hash_bytea(hash, bytea);
  const char *params[2] = {id, bytea};
  PGresult *r = PQexecParams(c,
                             "INSERT INTO terminals (terminal_id, token_hash) VALUES ($1, $2) "
                             "ON CONFLICT (terminal_id) DO NOTHING",
                             2, NULL, params, NULL, NULL, 0);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK, added = ok && atoi(PQcmdTuples(r)) == 1;
  if (!ok)
    fprintf(stderr, "terminal add: %s", PQresultErrorMessage(r));
  PQclear(r);
  if (!ok)
    return 1;
  if (!added) {
    fprintf(stderr, "terminal add: terminal %s exists already; `haulwatch terminal rotate %s` issues a new token\n",
            id, id);
    return 1;
  }
  /* The token is shown once, here, and never logged or stored. */
  printf("%s\n", token);
  return 0;
}

static int hw_terminal_rotate(PGconn *c, const char *id) {
  char token[HW_TOKEN_LEN + 1];
  uint8_t hash[HW_TOKEN_HASH_LEN];
  char bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1];
  if (hw_token_new(token))
    return 1;
  hw_token_hash(token, HW_TOKEN_LEN, hash);
  hw_token_hash_bytea(hash, bytea);
  const char *params[2] = {id, bytea};
  PGresult *r = PQexecParams(c, "UPDATE terminals SET token_hash = $2 WHERE terminal_id = $1", 2,
                             NULL, params, NULL, NULL, 0);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK, found = ok && atoi(PQcmdTuples(r)) == 1;
  if (!ok)
    fprintf(stderr, "terminal rotate: %s", PQresultErrorMessage(r));
  else if (!found)
    fprintf(stderr, "terminal rotate: no terminal %s\n", id);
  PQclear(r);
  if (!found)
    return 1;
  printf("%s\n", token);
  return 0;
}

int hw_cmd_terminal(int argc, char **argv) {
  hw_admin_config cfg = {{0}};
  char *pos[2];
  int npos;
  int rc = hw_options_parse(hw_admin_options, HW_ARRAY_SIZE(hw_admin_options), &cfg, argc, argv,
                            "usage: haulwatch terminal add ID [--pg CONNINFO]\n"
                            "       haulwatch terminal rotate ID [--pg CONNINFO]\n\n"
                            "add creates a terminal and prints its token (shown once; only its hash is\n"
                            "stored); rotate gives an existing terminal a new token. Both protocols use it.",
                            pos, 2, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos != 2 || (strcmp(pos[0], "add") && strcmp(pos[0], "rotate"))) {
    fprintf(stderr, "usage: haulwatch terminal add|rotate ID (see --help)\n");
    return 2;
  }
  PGconn *c = hw_admin_connect(&cfg, "terminal");
  if (!c)
    return 1;
  rc = !strcmp(pos[0], "add") ? hw_terminal_add(c, pos[1]) : hw_terminal_rotate(c, pos[1]);
  PQfinish(c);
  return rc;
}
