/* haulwatch violations list|transition: the managed list of violations as operators work it.
 * Listing filters on the indexed columns; transitions go through hw_violation_transition(),
 * which enforces open -> notified -> rectifying -> closed and audits each step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "base/options.h"
#include "base/text.h"

#define HW_VIOL_SCHEMA 3 /* violations, hw_violation_transition */

typedef struct hw_vlist_settings {
  char pg[1024];
  char kind[64];
  char state[16];
  char region[16];
  char enterprise[256];
  char since[64];
  char until[64];
  uint32_t json;
  uint32_t limit;
} hw_vlist_settings;

static const hw_option hw_vlist_options[] = {
    HW_OPT_S(hw_vlist_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(hw_vlist_settings, kind, NULL, NULL, "only this kind (speeding, fatigue, ...)"),
    HW_OPT_S(hw_vlist_settings, state, NULL, NULL, "only this state (open, notified, rectifying, closed)"),
    HW_OPT_S(hw_vlist_settings, region, NULL, NULL, "only this six-digit region code"),
    HW_OPT_S(hw_vlist_settings, enterprise, NULL, NULL, "only this enterprise"),
    HW_OPT_S(hw_vlist_settings, since, NULL, NULL,
             "started at or after this time (e.g. 2026-03-01 or \"2026-03-01 08:00\", GMT+8)"),
    HW_OPT_S(hw_vlist_settings, until, NULL, NULL, "started before this time (GMT+8)"),
    HW_OPT_B(hw_vlist_settings, json, "false", "print a JSON array instead of a table"),
    HW_OPT_N(hw_vlist_settings, limit, "100", 1, 1000000, NULL, "at most this many, newest first"),
};

static const char hw_vlist_usage[] =
    "usage: haulwatch violations list [--kind K] [--state S] [--region R] [--enterprise E]\n"
    "                                 [--since T] [--until T] [--limit N] [--json] [--pg CONNINFO]\n"
    "\n"
    "Lists violations, newest first. Times are shown and read as GMT+8.";

typedef struct hw_vtrans_settings {
  char pg[1024];
  char to[16];
  char actor[128];
  char note[2048];
} hw_vtrans_settings;

static const hw_option hw_vtrans_options[] = {
    HW_OPT_S(hw_vtrans_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(hw_vtrans_settings, to, NULL, NULL, "the next state: notified, rectifying or closed"),
    HW_OPT_S(hw_vtrans_settings, actor, NULL, NULL, "who makes the change (required)"),
    HW_OPT_S(hw_vtrans_settings, note, NULL, NULL,
             "what was done (required when closing: how it was rectified)"),
};

static const char hw_vtrans_usage[] =
    "usage: haulwatch violations transition ID --to STATE --actor NAME [--note TEXT] [--pg CONNINFO]\n"
    "\n"
    "Moves a violation one step: open -> notified -> rectifying -> closed. Skipping a step, going\n"
    "back, or reopening a closed violation is refused (exit 1); closing needs a note. Every\n"
    "step is recorded in violation_audit.";

static void hw_print_cell(const char *s, size_t width, int last) {
  fputs(s, stdout);
  if (last)
    return;
  for (size_t w = hw_utf8_display_width(s); w < width + 2; w++)
    fputc(' ', stdout);
}

static int hw_state_known(const char *s) {
  return !strcmp(s, "open") || !strcmp(s, "notified") || !strcmp(s, "rectifying") ||
         !strcmp(s, "closed");
}

#define HW_VLIST_COLS 10

static void hw_print_table(const PGresult *res, unsigned limit) {
  static const char *const head[HW_VLIST_COLS] = {"ID",     "KIND",  "STATE",    "TERMINAL",
                                                  "PLATE",  "REGION", "STARTED", "ENDED",
                                                  "MEASURED/LIMIT", "ENTERPRISE"};
  int n = PQntuples(res);
  size_t width[HW_VLIST_COLS];
  for (int c = 0; c < HW_VLIST_COLS; c++) {
    width[c] = strlen(head[c]);
    for (int r = 0; r < n; r++) {
      size_t w = hw_utf8_display_width(PQgetvalue(res, r, c));
      if (w > width[c])
        width[c] = w;
    }
  }
  for (int c = 0; c < HW_VLIST_COLS; c++)
    hw_print_cell(head[c], width[c], c == HW_VLIST_COLS - 1);
  fputc('\n', stdout);
  for (int r = 0; r < n; r++) {
    for (int c = 0; c < HW_VLIST_COLS; c++)
      hw_print_cell(PQgetvalue(res, r, c), width[c], c == HW_VLIST_COLS - 1);
    fputc('\n', stdout);
  }
  if ((unsigned)n == limit)
    printf("(the newest %d shown; --limit N for more)\n", n);
  else
    printf("(%d violation%s)\n", n, n == 1 ? "" : "s");
}

static int hw_violations_list(int argc, char **argv) {
  hw_vlist_settings s;
  memset(&s, 0, sizeof s);
  char *pos[1];
  int npos = 0, status = 1;
  int rc = hw_options_parse(hw_vlist_options, HW_ARRAY_SIZE(hw_vlist_options), &s, argc, argv,
                            hw_vlist_usage, pos, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (s.state[0] && !hw_state_known(s.state)) {
    fprintf(stderr, "haulwatch violations list: unknown state '%s' (open, notified, rectifying, "
                    "closed)\n", s.state);
    return 2;
  }
  /* Each filter is a separate predicate on its own column so the planner can use that index. */
  static const char *const cols[] = {"kind = $%d", "state = $%d", "region = $%d",
                                     "enterprise = $%d", "started_at >= $%d::timestamptz",
                                     "started_at < $%d::timestamptz"};
  const char *vals[] = {s.kind, s.state, s.region, s.enterprise, s.since, s.until};
  const char *params[HW_ARRAY_SIZE(vals) + 1];
  char where[512], limit[16];
  int np = hw_cli_pg_filters(cols, vals, HW_ARRAY_SIZE(vals), where, sizeof where, params);
  snprintf(limit, sizeof limit, "%u", s.limit);
  params[np++] = limit;
  char sql[2048];
  if (s.json)
    snprintf(sql, sizeof sql,
             "SELECT coalesce(json_agg(v ORDER BY v.started_at DESC, v.id DESC), '[]') FROM "
             "(SELECT id, kind, episode_key, terminal_id, plate, region, enterprise, started_at, "
             "ended_at, start_lat, start_lon, measured, limit_value, grade, evidence, state, "
             "closed_at, closed_by, close_note, created_at, updated_at FROM violations WHERE %s "
             "ORDER BY started_at DESC, id DESC LIMIT $%d) v",
             where, np);
  else
    snprintf(sql, sizeof sql,
             "SELECT id, kind, state, terminal_id, coalesce(plate, ''), coalesce(region, ''), "
             "to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'), "
             "coalesce(to_char(ended_at, 'YYYY-MM-DD HH24:MI:SS'), 'ongoing'), "
             "coalesce(round(measured::numeric, 1)::text, '-') || '/' || "
             "coalesce(round(limit_value::numeric, 1)::text, '-') || "
             "coalesce(' (grade ' || grade || ')', ''), coalesce(enterprise, '') "
             "FROM violations WHERE %s ORDER BY started_at DESC, id DESC LIMIT $%d",
             where, np);
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s.pg, HW_VIOL_SCHEMA, &conn))
    return 1;
  PGresult *res = PQexecParams(conn, sql, np, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("violations list", "query", res);
  } else {
    if (s.json)
      printf("%s\n", PQgetvalue(res, 0, 0));
    else
      hw_print_table(res, s.limit);
    status = 0;
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

static int hw_violations_transition(int argc, char **argv) {
  hw_vtrans_settings s;
  memset(&s, 0, sizeof s);
  char *pos[1];
  int npos = 0, status = 1;
  int rc = hw_options_parse(hw_vtrans_options, HW_ARRAY_SIZE(hw_vtrans_options), &s, argc, argv,
                            hw_vtrans_usage, pos, 1, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos != 1 || !pos[0][0] || strspn(pos[0], "0123456789") != strlen(pos[0]) ||
      strlen(pos[0]) > 18) {
    fprintf(stderr, "haulwatch violations transition: give the violation's numeric id (see --help)\n");
    return 2;
  }
  if (!s.to[0]) {
    fprintf(stderr, "haulwatch violations transition: --to STATE is required (see --help)\n");
    return 2;
  }
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s.pg, HW_VIOL_SCHEMA, &conn))
    return 1;
  /* Empty --actor/--note go to the function as NULL so that it, the one place that knows the
   * rules, refuses them with its own message. */
  const char *params[4] = {pos[0], s.to, s.actor[0] ? s.actor : NULL, s.note[0] ? s.note : NULL};
  PGresult *res = PQexecParams(conn, "SELECT hw_violation_transition($1::bigint, $2, $3, $4)", 4,
                               NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    printf("violation %s: %s -> %s by %s\n", pos[0], PQgetvalue(res, 0, 0), s.to, s.actor);
    status = 0;
  } else {
    hw_cli_pg_report("violations transition", "refused", res);
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

int hw_cmd_violations(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "list"))
    return hw_violations_list(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "transition"))
    return hw_violations_transition(argc - 1, argv + 1);
  FILE *out = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
  fprintf(out, "usage: haulwatch violations list [OPTIONS]\n"
               "       haulwatch violations transition ID --to STATE --actor NAME [--note TEXT]\n"
               "`haulwatch violations list --help` and `... transition --help` tell more.\n");
  return out == stdout ? 0 : 2;
}
