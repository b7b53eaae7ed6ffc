/* haulwatch retention run [--dry-run]: one retention round now, from the command line (cron, or a
 * node without the daemon): the same plan, statements and lock as the daemon's runner
 * (sinks/retention.h), blocking. Prints one line per partition dropped or moved (or that would
 * be, with --dry-run); violations are never touched. */
#include <stdio.h>
#include <string.h>

#include "base/options.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "sinks/retention.h"

#define HW_RETENTION_SCHEMA 21 /* hw_retention_plan, hw_retention_apply */

typedef struct hw_retention_settings {
  char pg[1024];
  uint32_t retain_positions_days;
  char archive_tablespace[64];
  uint32_t archive_after_days;
  uint32_t dry_run;
} hw_retention_settings;

#define C hw_retention_settings
static const hw_option hw_retention_options[] = {
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_RETENTION_OPTIONS(C),
    HW_OPT_B(C, dry_run, "false", "print what would be dropped or moved; change nothing"),
};
#undef C

static const char hw_retention_usage[] =
    "usage: haulwatch retention run [--dry-run] [--retain-positions-days N]\n"
    "                               [--archive-tablespace NAME --archive-after-days N] [--pg CONNINFO]\n"
    "\n"
    "Drops the daily partitions of positions older than retain_positions_days and moves those\n"
    "older than archive_after_days to archive_tablespace, one partition per transaction, one\n"
    "line each. Violations are never removed. Exit 1 when another node holds the retention lock\n"
    "or a partition failed (the others are still done).";

static int hw_retention_run(const hw_retention_settings *s) {
  PGconn *pg = NULL;
  PGresult *res = NULL;
  int rc = 1, locked = 0, failed = 0;
  if (hw_cli_pg_connect(s->pg, HW_RETENTION_SCHEMA, &pg))
    return 1;
  if (!s->dry_run) {
    res = PQexec(pg, HW_RETENTION_SQL_LOCK);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      hw_cli_pg_report("retention", "taking the retention lock", res);
      goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
      fprintf(stderr, "haulwatch retention: another node is running a retention round (advisory "
                      "lock %s held); nothing done\n", HW_RETENTION_LOCK_KEY);
      goto out;
    }
    locked = 1;
    PQclear(res);
  }
  char days[16], after[16], tmo[16];
  snprintf(days, sizeof days, "%u", s->retain_positions_days);
  snprintf(after, sizeof after, "%u", s->archive_after_days);
  snprintf(tmo, sizeof tmo, "%u", HW_RETENTION_LOCK_TIMEOUT_MS);
  const char *pp[3] = {days, s->archive_tablespace, after};
  res = PQexecParams(pg, HW_RETENTION_SQL_PLAN, 3, NULL, pp, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("retention", "reading the plan", res);
    goto out;
  }
  int n = PQntuples(res), done = 0;
  for (int i = 0; i < n; i++) {
    const char *part = PQgetvalue(res, i, 0), *day = PQgetvalue(res, i, 1),
               *action = PQgetvalue(res, i, 2);
    if (s->dry_run) {
      printf("%s\t%s\twould %s%s%s\n", part, day, action,
             !strcmp(action, "move") ? " to tablespace " : "",
             !strcmp(action, "move") ? s->archive_tablespace : "");
      continue;
    }
    const char *ap[4] = {part, action, s->archive_tablespace, tmo};
    PGresult *r = PQexecParams(pg, HW_RETENTION_SQL_APPLY, 4, NULL, ap, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      printf("%s\t%s\t%s\n", part, day, PQgetvalue(r, 0, 0));
      done++;
    } else {
      char what[128];
      snprintf(what, sizeof what, "%s %s", action, part);
      hw_cli_pg_report("retention", what, r);
      failed++;
    }
    PQclear(r);
    fflush(stdout);
  }
  fprintf(stderr, "haulwatch retention: %d partitions %s%s\n", s->dry_run ? n : done,
          s->dry_run ? "due (dry run: nothing changed)" : "dropped or moved",
          failed ? ", some failed" : "");
  rc = failed ? 1 : 0;
out:
  PQclear(res);
  if (locked) {
    res = PQexec(pg, HW_RETENTION_SQL_UNLOCK);
    PQclear(res);
  }
  PQfinish(pg);
  return rc;
}

int hw_cmd_retention(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "run") != 0) {
    fprintf(stderr, "%s\n", hw_retention_usage);
    return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 2;
  }
  hw_retention_settings s;
  memset(&s, 0, sizeof s);
  int npos, rc = hw_options_parse(hw_retention_options, HW_ARRAY_SIZE(hw_retention_options), &s,
                                  argc - 1, argv + 1, hw_retention_usage, NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  hw_retention_config cfg = {.retain_days = s.retain_positions_days,
                             .archive_tablespace = s.archive_tablespace,
                             .archive_after_days = s.archive_after_days};
  char why[256];
  if (hw_retention_check(&cfg, why, sizeof why)) {
    fprintf(stderr, "haulwatch retention: %s\n", why);
    return 2;
  }
  if (!hw_retention_enabled(&cfg)) {
    fprintf(stderr, "haulwatch retention: retain_positions_days is 0 and no archive tablespace: "
                    "nothing to do\n");
    return 0;
  }
  return hw_retention_run(&s);
}
