/* haulwatch platform add|list|disable: the subordinate platforms that may log in to the JT/T 809
 * main link (schema/013_jt809.sql). The protocol carries the password in clear (8 bytes of
 * 0x1001), so the daemon can verify it against a hash: only its crypto_pwhash_str (argon2id)
 * string is stored. The access code (--center-id) names the platform on the wire and is unique. */
#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"

#define HW_PLATFORM_SCHEMA 16      /* platforms (slave_local_ok: 016), platform_links */
#define HW_PLATFORM_PASSWORD_MAX 8 /* the 0x1001 password field */

typedef struct hw_platform_settings {
  char pg[1024];
  char user_id[16];
  char password[64];
  uint32_t password_stdin;
  char center_id[16];
  uint32_t version;
  char m1[16];
  char ia1[16];
  char ic1[16];
  char allow_addr[64];
  uint32_t slave_local_ok;
} hw_platform_settings;

static const hw_option hw_platform_options[] = {
    HW_OPT_S(hw_platform_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(hw_platform_settings, user_id, NULL, NULL,
             "the user id the platform sends in 0x1001 (platform add; 0-4294967295)"),
    HW_OPT_S(hw_platform_settings, password, NULL, NULL,
             "the 0x1001 password, 1-8 bytes (platform add; visible to other local users in the "
             "process list: prefer --password-stdin)"),
    HW_OPT_B(hw_platform_settings, password_stdin, "false",
             "read the 0x1001 password from standard input (platform add)"),
    HW_OPT_S(hw_platform_settings, center_id, NULL, NULL,
             "the platform's access code (GNSS centre id of every header; platform add; unique)"),
    HW_OPT_N(hw_platform_settings, version, "2019", 2011, 2019, NULL,
             "header edition the platform speaks: 2011 or 2019 (platform add)"),
    HW_OPT_S(hw_platform_settings, m1, NULL, NULL,
             "encryption key M1 (platform add; with --ia1 and --ic1, or none of them)"),
    HW_OPT_S(hw_platform_settings, ia1, NULL, NULL, "encryption key IA1 (platform add)"),
    HW_OPT_S(hw_platform_settings, ic1, NULL, NULL, "encryption key IC1 (platform add)"),
    HW_OPT_S(hw_platform_settings, allow_addr, NULL, NULL,
             "the only source IP address the platform may log in from (platform add; default "
             "any)"),
    HW_OPT_B(hw_platform_settings, slave_local_ok, "false",
             "let the slave link go to a loopback or link-local address the platform gives "
             "(platform add; refused by default: the address is the platform's word)"),
};

static const char hw_platform_usage[] =
    "usage: haulwatch platform add ID --user-id N --password-stdin|--password P --center-id N\n"
    "                          [--version 2011|2019] [--m1 N --ia1 N --ic1 N] [--allow-addr IP]\n"
    "                          [--slave-local-ok]\n"
    "       haulwatch platform list\n"
    "       haulwatch platform disable ID   refuses its next logins\n"
    "       haulwatch platform inspect|message|supervise|inspections ...   (--help there)\n";

static int hw_platform_id_ok(const char *id) {
  size_t n = strlen(id);
  return n >= 1 && n <= 32 &&
         strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.-") == n;
}

/* A decimal u32 into out (its canonical text, for PostgreSQL). Empty text: *given = 0. */
static int hw_platform_u32(const char *what, const char *s, int *given, char out[16]) {
  *given = s[0] != 0;
  if (!*given)
    return 0;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || s[0] < '0' || s[0] > '9' || v > 0xffffffffULL) {
    fprintf(stderr, "haulwatch platform add: --%s '%s' is not a number 0-4294967295\n", what, s);
    return -EINVAL;
  }
  snprintf(out, 16, "%llu", v);
  return 0;
}

/* The password: from --password or stdin (one trailing newline dropped), 1-8 bytes, no NUL (the
 * field is NUL padded, so a NUL could not be told from padding). */
static int hw_platform_password(hw_platform_settings *s, char out[HW_PLATFORM_PASSWORD_MAX + 3]) {
  size_t n;
  if (s->password_stdin == (s->password[0] != 0)) {
    fprintf(stderr, "haulwatch platform add: give exactly one of --password-stdin, --password\n");
    return -EINVAL;
  }
  if (s->password_stdin) {
    n = fread(out, 1, HW_PLATFORM_PASSWORD_MAX + 2, stdin);
    out[n] = 0;
    if (n && out[n - 1] == '\n')
      out[--n] = 0;
    if (n && out[n - 1] == '\r')
      out[--n] = 0;
  } else {
    n = strlen(s->password);
    if (n > HW_PLATFORM_PASSWORD_MAX)
      n = HW_PLATFORM_PASSWORD_MAX + 1;
    memcpy(out, s->password, n);
    out[n] = 0;
  }
  if (n == 0 || n > HW_PLATFORM_PASSWORD_MAX || strlen(out) != n) {
    fprintf(stderr, "haulwatch platform add: the password is 1-%d bytes, without NUL\n",
            HW_PLATFORM_PASSWORD_MAX);
    return -EINVAL;
  }
  return 0;
}

static int hw_platform_add(hw_platform_settings *s, char **pos, int npos) {
  char user_id[16], center_id[16], keys[3][16], password[HW_PLATFORM_PASSWORD_MAX + 3];
  char hash[crypto_pwhash_STRBYTES];
  int has_user, has_center, has_key[3];
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int status = 1;
  if (npos != 2 || !hw_platform_id_ok(pos[1])) {
    fprintf(stderr, "haulwatch platform add: give an ID (1-32 of A-Z a-z 0-9 _ . -)\n%s",
            hw_platform_usage);
    return 2;
  }
  if (hw_platform_u32("user-id", s->user_id, &has_user, user_id) ||
      hw_platform_u32("center-id", s->center_id, &has_center, center_id) ||
      hw_platform_u32("m1", s->m1, &has_key[0], keys[0]) ||
      hw_platform_u32("ia1", s->ia1, &has_key[1], keys[1]) ||
      hw_platform_u32("ic1", s->ic1, &has_key[2], keys[2]))
    return 2;
  if (!has_user || !has_center) {
    fprintf(stderr, "haulwatch platform add: --user-id and --center-id are required\n");
    return 2;
  }
  if (has_key[0] != has_key[1] || has_key[1] != has_key[2]) {
    fprintf(stderr, "haulwatch platform add: give all of --m1 --ia1 --ic1, or none\n");
    return 2;
  }
  if (s->version != 2011 && s->version != 2019) {
    fprintf(stderr, "haulwatch platform add: --version is 2011 or 2019\n");
    return 2;
  }
  unsigned char addr[16];
  if (s->allow_addr[0] && inet_pton(AF_INET, s->allow_addr, addr) != 1 &&
      inet_pton(AF_INET6, s->allow_addr, addr) != 1) {
    fprintf(stderr, "haulwatch platform add: --allow-addr '%s' is not an IP address\n",
            s->allow_addr);
    return 2;
  }
  if (hw_platform_password(s, password))
    return 2;
  if (sodium_init() < 0 ||
      crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE)) {
    sodium_memzero(password, sizeof password);
    fprintf(stderr, "haulwatch platform add: hashing the password failed (out of memory)\n");
    return 1;
  }
  sodium_memzero(password, sizeof password);
  sodium_memzero(s->password, sizeof s->password);
  if (hw_cli_pg_connect(s->pg, HW_PLATFORM_SCHEMA, &conn))
    return 1;
  char version[8];
  snprintf(version, sizeof version, "%u", s->version);
  const char *params[10] = {pos[1],
                           user_id,
                           hash,
                           center_id,
                           version,
                           has_key[0] ? keys[0] : NULL,
                           has_key[1] ? keys[1] : NULL,
                           has_key[2] ? keys[2] : NULL,
                           s->allow_addr[0] ? s->allow_addr : NULL,
                           s->slave_local_ok ? "true" : "false"};
  res = PQexecParams(conn,
                     "INSERT INTO platforms (id, user_id, password_hash, center_id, version, m1, "
                     "ia1, ic1, allow_addr, slave_local_ok) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                     "$9::inet, $10)",
                     10, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_cli_pg_report("platform add", "refused", res);
    goto cleanup;
  }
  printf("platform %s added: user id %s, access code %s, JT/T 809-%u%s%s%s\n", pos[1], user_id,
         center_id, s->version, has_key[0] ? ", encryption keys set" : "",
         s->allow_addr[0] ? ", only from " : "", s->allow_addr);
  status = 0;
cleanup:
  PQclear(res);
  PQfinish(conn);
  return status;
}

static int hw_platform_list(hw_platform_settings *s) {
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s->pg, HW_PLATFORM_SCHEMA, &conn))
    return 1;
  /* Online: a main link row still open. */
  PGresult *res = PQexec(
      conn,
      "SELECT p.id, p.user_id, p.center_id, p.version, CASE WHEN p.m1 IS NULL THEN '-' ELSE "
      "'keys' END, coalesce(host(p.allow_addr), 'any'), CASE WHEN p.disabled THEN 'disabled' "
      "WHEN EXISTS (SELECT 1 FROM platform_links l WHERE l.platform = p.id AND l.link = 'main' "
      "AND l.down_at IS NULL) THEN 'online' ELSE 'offline' END FROM platforms p ORDER BY p.id");
  int status = 1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    printf("%-20s %10s %10s %4s %4s %-16s %s\n", "ID", "USER", "CENTRE", "VER", "KEYS", "FROM",
           "STATE");
    for (int i = 0; i < PQntuples(res); i++)
      printf("%-20s %10s %10s %4s %4s %-16s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
             PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
             PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
    status = 0;
  } else {
    hw_cli_pg_report("platform list", "query", res);
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

static int hw_platform_disable(hw_platform_settings *s, char **pos, int npos) {
  if (npos != 2 || !hw_platform_id_ok(pos[1])) {
    fprintf(stderr, "haulwatch platform disable: give the platform's ID\n");
    return 2;
  }
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s->pg, HW_PLATFORM_SCHEMA, &conn))
    return 1;
  const char *params[1] = {pos[1]};
  PGresult *res = PQexecParams(conn, "UPDATE platforms SET disabled = true WHERE id = $1", 1,
                               NULL, params, NULL, NULL, 0);
  int status = 1;
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_cli_pg_report("platform disable", "refused", res);
  } else if (strcmp(PQcmdTuples(res), "1")) {
    fprintf(stderr, "haulwatch platform disable: no platform '%s'\n", pos[1]);
  } else {
    printf("platform %s disabled: its next logins are refused\n", pos[1]);
    status = 0;
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

int hw_cmd_platform(int argc, char **argv) {
  if (argc >= 2 && hw_platform_interact_is(argv[1]))
    return hw_cmd_platform_interact(argc, argv);
  hw_platform_settings s;
  memset(&s, 0, sizeof s);
  char *pos[4];
  int npos = 0;
  int rc = hw_options_parse(hw_platform_options, HW_ARRAY_SIZE(hw_platform_options), &s, argc,
                            argv, hw_platform_usage, pos, (int)HW_ARRAY_SIZE(pos), &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos >= 1 && !strcmp(pos[0], "add"))
    return hw_platform_add(&s, pos, npos);
  if (npos == 1 && !strcmp(pos[0], "list"))
    return hw_platform_list(&s);
  if (npos >= 1 && !strcmp(pos[0], "disable"))
    return hw_platform_disable(&s, pos, npos);
  fprintf(stderr, "%s", hw_platform_usage);
  return 2;
}
