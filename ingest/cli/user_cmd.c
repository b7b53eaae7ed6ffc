/* haulwatch user add|token|list|disable: the accounts of `haulwatch web` (schema/009_web.sql).
 * The checks, the hashing and the statements are sinks/user_store.h's, shared with the admin API;
 * here they block (a CLI may), act as 'cli' on every region and are audited as such. Only the
 * password's hash is stored; an API token is printed once and only its SHA-256 is stored. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "base/text.h"
#include "base/token.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "sinks/user_store.h"

#define HW_USER_SCHEMA 11 /* web_users, admin_audit */
#define HW_USER_CLI_SCOPE "{%}"

typedef struct hw_user_settings {
  char pg[1024];
  char role[16];
  char region[512];
  uint32_t password_stdin;
} hw_user_settings;

static const hw_option hw_user_options[] = {
    HW_OPT_S(hw_user_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(hw_user_settings, role, NULL, NULL, "viewer, operator or admin (user add)"),
    HW_OPT_S(hw_user_settings, region, NULL, NULL,
             "GB/T 2260 codes the user sees (user add): 320000 a province, 320100 a city, 320102 "
             "a county, 000000 everywhere; more codes may follow, or be comma-separated"),
    HW_OPT_B(hw_user_settings, password_stdin, "false",
             "read the password from standard input (user add); without it the user logs in "
             "with API tokens only"),
};

static const char hw_user_usage[] =
    "usage: haulwatch user add NAME --role viewer|operator|admin --region CODE... [--password-stdin]\n"
    "       haulwatch user token NAME      prints a new API token (shown once)\n"
    "       haulwatch user list\n"
    "       haulwatch user disable NAME    ends its sessions and revokes its tokens\n";

/* Reads the password: at most 1024 bytes, one trailing newline dropped, UTF-8, not empty. */
static int hw_user_read_password(char *out, size_t cap) {
  size_t n = fread(out, 1, cap - 1, stdin);
  if (n == cap - 1 && fgetc(stdin) != EOF) {
    fprintf(stderr, "haulwatch user add: the password is longer than %zu bytes\n", cap - 2);
    return -EINVAL;
  }
  out[n] = 0;
  if (n && out[n - 1] == '\n')
    out[--n] = 0;
  if (n && out[n - 1] == '\r')
    out[--n] = 0;
  if (n == 0 || strlen(out) != n || !hw_utf8_valid(out, n)) {
    fprintf(stderr, "haulwatch user add: the password on standard input is empty or not text\n");
    return -EINVAL;
  }
  return 0;
}

static int hw_user_add(hw_user_settings *s, char **pos, int npos) {
  char regions[HW_USER_MAX_REGIONS][8];
  size_t nreg = 0;
  char password[1026], hash[crypto_pwhash_STRBYTES];
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int status = 1;
  if (npos < 2 || !hw_user_name_ok(pos[1])) {
    fprintf(stderr, "haulwatch user add: give a NAME (1-64 of A-Z a-z 0-9 _ . @ -)\n%s", hw_user_usage);
    return 2;
  }
  if (!hw_user_role_ok(s->role)) {
    fprintf(stderr, "haulwatch user add: --role is viewer, operator or admin\n");
    return 2;
  }
  /* --region's value (comma-separated) and every further positional argument. */
  const char *lists[HW_USER_MAX_REGIONS + 1];
  size_t nl = 0;
  lists[nl++] = s->region;
  for (int i = 2; i < npos && nl < HW_ARRAY_SIZE(lists); i++)
    lists[nl++] = pos[i];
  for (size_t l = 0; l < nl; l++)
    for (const char *p = lists[l]; *p;) {
      size_t n = strcspn(p, ",");
      if (n != 6 || strspn(p, "0123456789") < 6 || nreg >= HW_USER_MAX_REGIONS) {
        /* (hw_user_region_ok wants the code alone; here it is a piece of a list) */
        fprintf(stderr, "haulwatch user add: '%.*s' is not a six-digit GB/T 2260 code (at most %d)\n",
                (int)n, p, HW_USER_MAX_REGIONS);
        return 2;
      }
      memcpy(regions[nreg], p, 6);
      regions[nreg++][6] = 0;
      p += n + (p[n] == ',');
    }
  if (nreg == 0) {
    fprintf(stderr, "haulwatch user add: --region CODE is required (000000: everywhere)\n");
    return 2;
  }
  if (s->password_stdin) {
    if (hw_user_read_password(password, sizeof password))
      return 2;
    int rc = hw_user_hash_password(password, strlen(password), hash);
    sodium_memzero(password, sizeof password);
    if (rc) {
      fprintf(stderr, "haulwatch user add: %s\n", rc == -EINVAL ? "the password is not valid"
                                                                : "hashing the password failed "
                                                                  "(out of memory)");
      return rc == -EINVAL ? 2 : 1;
    }
  }
  char arr[HW_USER_MAX_REGIONS * 8 + 4];
  if (hw_user_regions_literal((const char (*)[8])regions, nreg, arr, sizeof arr))
    return 2;
  if (hw_cli_pg_connect(s->pg, HW_USER_SCHEMA, &conn))
    return 1;
  const char *params[6] = {pos[1], s->role, s->password_stdin ? hash : NULL, arr, NULL, "cli"};
  res = PQexecParams(conn, HW_USER_SQL_ADD, 6, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("user add", "refused", res);
    goto cleanup;
  }
  printf("user %s added: %s of %s%s\n", pos[1], s->role, arr,
         s->password_stdin ? "" : " (no password: API tokens only)");
  status = 0;
cleanup:
  PQclear(res);
  PQfinish(conn);
  return status;
}

static int hw_user_token(hw_user_settings *s, char **pos, int npos) {
  char token[HW_USER_API_TOKEN_LEN + 1], hb[2 + 2 * HW_TOKEN_HASH_LEN + 1];
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int status = 1;
  if (npos != 2 || !hw_user_name_ok(pos[1])) {
    fprintf(stderr, "haulwatch user token: give the user's NAME\n");
    return 2;
  }
  if (hw_user_token_new(token, hb))
    return 1;
  if (hw_cli_pg_connect(s->pg, HW_USER_SCHEMA, &conn))
    goto cleanup;
  const char *params[5] = {HW_USER_CLI_SCOPE, pos[1], hb, NULL, "cli"};
  res = PQexecParams(conn, HW_USER_SQL_TOKEN, 5, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("user token", "refused", res);
    goto cleanup;
  }
  if (strcmp(PQgetvalue(res, 0, 0), "1")) {
    fprintf(stderr, "haulwatch user token: no enabled user '%s'\n", pos[1]);
    goto cleanup;
  }
  /* The token alone on stdout, so that scripts can capture it; it is not shown again. */
  printf("%s\n", token);
  status = 0;
cleanup:
  sodium_memzero(token, sizeof token);
  PQclear(res);
  PQfinish(conn);
  return status;
}

static int hw_user_list(hw_user_settings *s) {
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s->pg, HW_USER_SCHEMA, &conn))
    return 1;
  PGresult *res = PQexec(conn,
                         "SELECT u.name, u.role, coalesce((SELECT string_agg(r.region, ',' ORDER "
                         "BY r.region) FROM web_user_regions r WHERE r.user_id = u.id), ''), "
                         "CASE WHEN u.disabled THEN 'disabled' ELSE '' END FROM web_users u "
                         "ORDER BY u.name");
  int status = 1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    for (int i = 0; i < PQntuples(res); i++)
      printf("%-24s %-9s %s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
             PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
    status = 0;
  } else {
    hw_cli_pg_report("user list", "query", res);
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

static int hw_user_disable(hw_user_settings *s, char **pos, int npos) {
  if (npos != 2 || !hw_user_name_ok(pos[1])) {
    fprintf(stderr, "haulwatch user disable: give the user's NAME\n");
    return 2;
  }
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s->pg, HW_USER_SCHEMA, &conn))
    return 1;
  const char *params[4] = {HW_USER_CLI_SCOPE, pos[1], NULL, "cli"};
  PGresult *res = PQexecParams(conn, HW_USER_SQL_DISABLE, 4, NULL, params, NULL, NULL, 0);
  int status = 1;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("user disable", "refused", res);
  } else if (strcmp(PQgetvalue(res, 0, 0), "1")) {
    fprintf(stderr, "haulwatch user disable: no user '%s'\n", pos[1]);
  } else {
    printf("user %s disabled: sessions ended, tokens revoked\n", pos[1]);
    status = 0;
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

int hw_cmd_user(int argc, char **argv) {
  hw_user_settings s;
  memset(&s, 0, sizeof s);
  char *pos[HW_USER_MAX_REGIONS + 2];
  int npos = 0;
  int rc = hw_options_parse(hw_user_options, HW_ARRAY_SIZE(hw_user_options), &s, argc, argv,
                            hw_user_usage, pos, (int)HW_ARRAY_SIZE(pos), &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos >= 1 && !strcmp(pos[0], "add"))
    return hw_user_add(&s, pos, npos);
  if (npos >= 1 && !strcmp(pos[0], "token"))
    return hw_user_token(&s, pos, npos);
  if (npos == 1 && !strcmp(pos[0], "list"))
    return hw_user_list(&s);
  if (npos >= 1 && !strcmp(pos[0], "disable"))
    return hw_user_disable(&s, pos, npos);
  fprintf(stderr, "%s", hw_user_usage);
  return 2;
}
