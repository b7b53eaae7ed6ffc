/* `haulwatch migrate` and `haulwatch terminal`: administration with blocking libpq. `terminal`
 * provisions terminals (and what a JT/T 808 registration must match) and records operator resets
 * (terminal_resets); the policy that uses them is in registry/auth.c. */
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

/* `haulwatch terminal`: the same connection setting, and what add and reset record. */
typedef struct hw_terminal_config {
  char pg[1024];
  char device_id[31]; /* add: the id printed on the device, as its 0x0100 sends it */
  char plate[33];     /* add: the plate (UTF-8) or, plate colour 0, the VIN */
  char actor[65];     /* reset: who allowed it */
  char reason[501];   /* reset: why */
} hw_terminal_config;

#define C hw_terminal_config
static const hw_option hw_terminal_options[] = {
    HW_OPT_S(C, pg, "", "HAULWATCH_PG", "PostgreSQL connection string"),
    HW_OPT_S(C, device_id, "", NULL, "add: JT/T 808 device id a registration must carry"),
    HW_OPT_S(C, plate, "", NULL, "add: plate (or VIN) a registration must carry"),
    HW_OPT_S(C, actor, "", "USER", "reset: who allows the re-registration (recorded)"),
    HW_OPT_S(C, reason, "", NULL, "reset: why (recorded)"),
};
#undef C

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

static int hw_terminal_add(PGconn *c, const char *id, const hw_terminal_config *cfg) {
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
  const char *params[4] = {id, bytea, cfg->device_id[0] ? cfg->device_id : NULL,
                           cfg->plate[0] ? cfg->plate : NULL};
  PGresult *r = PQexecParams(c,
                             "INSERT INTO terminals (terminal_id, token_hash, provisioned_device_id, "
                             "provisioned_plate) VALUES ($1, $2, $3, $4) "
                             "ON CONFLICT (terminal_id) DO NOTHING",
                             4, NULL, params, NULL, NULL, 0);
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

/* Allows the next JT/T 808 registration of id to replace its auth code, recorded with who and
 * why. The old code keeps working until that registration. */
static int hw_terminal_reset(PGconn *c, const char *id, const hw_terminal_config *cfg) {
  if (!cfg->actor[0] || !cfg->reason[0]) {
    fprintf(stderr, "terminal reset: --actor NAME (default $USER) and --reason TEXT are required\n");
    return 2;
  }
  const char *params[3] = {id, cfg->actor, cfg->reason};
  PGresult *r = PQexecParams(c,
                             "INSERT INTO terminal_resets (terminal_id, actor, reason) "
                             "SELECT terminal_id, $2, $3 FROM terminals WHERE terminal_id = $1 "
                             "RETURNING id",
                             3, NULL, params, NULL, NULL, 0);
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK, found = ok && PQntuples(r) == 1;
  if (!ok)
    fprintf(stderr, "terminal reset: %s", PQresultErrorMessage(r));
  else if (!found)
    fprintf(stderr, "terminal reset: no terminal %s\n", id);
  else
    printf("terminal %s may register again (reset %s)\n", id, PQgetvalue(r, 0, 0));
  PQclear(r);
  return found ? 0 : 1;
}

int hw_cmd_terminal(int argc, char **argv) {
  hw_terminal_config cfg;
  memset(&cfg, 0, sizeof cfg);
  char *pos[2];
  int npos;
  int rc = hw_options_parse(hw_terminal_options, HW_ARRAY_SIZE(hw_terminal_options), &cfg, argc,
                            argv,
                            "usage: haulwatch terminal add ID [--device-id X] [--plate P] [--pg CONNINFO]\n"
                            "       haulwatch terminal rotate ID [--pg CONNINFO]\n"
                            "       haulwatch terminal reset ID --reason TEXT [--actor NAME] [--pg CONNINFO]\n\n"
                            "add creates a terminal and prints its token (shown once; only its hash is\n"
                            "stored); rotate gives an existing terminal a new token. Both protocols use it.\n"
                            "A JT/T 808 terminal that holds an auth code registers again only when its\n"
                            "registration carries the device id (and plate) given to add, or after reset,\n"
                            "which is recorded in terminal_resets and used by the next registration.",
                            pos, 2, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos != 2 || (strcmp(pos[0], "add") && strcmp(pos[0], "rotate") && strcmp(pos[0], "reset"))) {
    fprintf(stderr, "usage: haulwatch terminal add|rotate|reset ID (see --help)\n");
    return 2;
  }
  if (strcmp(pos[0], "add") && (cfg.device_id[0] || cfg.plate[0])) {
    fprintf(stderr, "terminal %s: --device-id and --plate belong to add\n", pos[0]);
    return 2;
  }
  hw_admin_config acfg;
  memcpy(acfg.pg, cfg.pg, sizeof acfg.pg);
  PGconn *c = hw_admin_connect(&acfg, "terminal");
  if (!c)
    return 1;
  if (!strcmp(pos[0], "add"))
    rc = hw_terminal_add(c, pos[1], &cfg);
  else if (!strcmp(pos[0], "reset"))
    rc = hw_terminal_reset(c, pos[1], &cfg);
  else
    rc = hw_terminal_rotate(c, pos[1]);
  PQfinish(c);
  return rc;
}
