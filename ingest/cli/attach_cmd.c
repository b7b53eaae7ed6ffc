/* haulwatch attachments [ALARM_NO]: the active-safety attachments stored (safety_attachments),
 * of one alarm or the latest of all, one per line, tab-separated, for operators and scripts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"

#define HW_ATTACH_SCHEMA 23 /* safety_attachments */

static const char hw_attach_usage[] =
    "usage: haulwatch attachments [ALARM_NO] [--terminal ID] [--incomplete] [--limit N] [--pg CONNINFO]\n"
    "\n"
    "Lists the photos and clips terminals uploaded for their active-safety alarms (README,\n"
    "\"Active-safety attachments\"): id, alarm number, terminal, name, type (0 picture, 1 audio,\n"
    "2 video, 3 text, 4 other), size, bytes received, complete, sha256 and path, newest first.\n"
    "ALARM_NO is the alarm identification number as text, TERMINAL-YYMMDDhhmmss-SEQ.";

typedef struct hw_attach_settings {
  char pg[1024];
  char terminal[33];
  uint32_t incomplete;
  uint32_t limit;
} hw_attach_settings;

static const hw_option hw_attach_options[] = {
    HW_OPT_S(hw_attach_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(hw_attach_settings, terminal, "", NULL, "only this terminal's"),
    HW_OPT_B(hw_attach_settings, incomplete, "false", "only files not complete yet"),
    HW_OPT_N(hw_attach_settings, limit, "100", 1, 1000000, NULL, "at most this many rows"),
};

int hw_cmd_attachments(int argc, char **argv) {
  hw_attach_settings s;
  memset(&s, 0, sizeof s);
  char *pos[1];
  int npos;
  int rc = hw_options_parse(hw_attach_options, HW_ARRAY_SIZE(hw_attach_options), &s, argc, argv,
                            hw_attach_usage, pos, 1, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s.pg, HW_ATTACH_SCHEMA, &conn)) {
    PQfinish(conn);
    return 1;
  }
  char limit[16];
  snprintf(limit, sizeof limit, "%u", s.limit);
  const char *params[4] = {npos ? pos[0] : NULL, s.terminal[0] ? s.terminal : NULL,
                           s.incomplete ? "true" : "false", limit};
  PGresult *res = PQexecParams(
      conn,
      "SELECT id, alarm_no, terminal_id, name, type, size, received, CASE WHEN complete THEN 'yes' ELSE 'no' END, "
      "coalesce(sha256, '-'), path FROM safety_attachments WHERE ($1::text IS NULL OR alarm_no "
      "= $1) AND ($2::text IS NULL OR terminal_id = $2) AND (NOT $3::boolean OR NOT complete) "
      "ORDER BY created_at DESC, id DESC LIMIT $4::int",
      4, NULL, params, NULL, NULL, 0);
  int status = 1;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("attachments", "list", res);
    goto out;
  }
  printf("id\talarm_no\tterminal\tname\ttype\tsize\treceived\tcomplete\tsha256\tpath\n");
  for (int r = 0; r < PQntuples(res); r++)
    for (int c = 0; c < 10; c++)
      printf("%s%c", PQgetvalue(res, r, c), c == 9 ? '\n' : '\t');
  status = 0;
out:
  PQclear(res);
  PQfinish(conn);
  return status;
}
