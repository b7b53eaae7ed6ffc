/* haulwatch: one binary, subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} hw_command;

static const hw_command hw_commands[] = {
    {"serve", hw_cmd_serve, "run the ingest daemon"},
    {"migrate", hw_cmd_migrate, "apply schema migrations to PostgreSQL"},
    {"terminal", hw_cmd_terminal, "manage terminals (terminal add ID)"},
    {"registry", hw_cmd_registry, "import vehicles from CSV (registry import FILE.csv)"},
    {"zones", hw_cmd_zones, "import zones from GeoJSON (zones import FILE.geojson)"},
    {"regions", hw_cmd_regions, "import region outlines for the page's map (regions import FILE.geojson)"},
    {"attachments", hw_cmd_attachments, "list the active-safety attachments stored (attachments [ALARM_NO])"},
    {"violations", hw_cmd_violations, "list violations, move them towards closing"},
    {"alarms", hw_cmd_alarms, "list active-safety alarms (ADAS, DSM, TPMS, BSD)"},
    {"web", hw_cmd_web, "serve the HTTP API and the page"},
    {"user", hw_cmd_user, "manage the users of the web API (user add NAME ...)"},
    {"report", hw_cmd_report, "assessment KPIs (report kpi), daily figures (report rebuild), crackdown lists (report phaseout, registry-audit, offline-movers), the monthly 通报 (report monthly)"},
    {"retention", hw_cmd_retention, "drop or move old daily partitions of positions now (retention run [--dry-run])"},
    {"platform", hw_cmd_platform, "manage JT/T 809 subordinate platforms (platform add ID ...)"},
};

static void hw_usage(FILE *f) {
  fprintf(f, "usage: haulwatch COMMAND [OPTIONS]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof hw_commands / sizeof hw_commands[0]; i++)
    fprintf(f, "  %-10s %s\n", hw_commands[i].name, hw_commands[i].help);
  fprintf(f, "\n`haulwatch COMMAND --help` describes each command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    hw_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (size_t i = 0; i < sizeof hw_commands / sizeof hw_commands[0]; i++)
    if (!strcmp(argv[1], hw_commands[i].name))
      return hw_commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "haulwatch: unknown command '%s'\n", argv[1]);
  hw_usage(stderr);
  return 2;
}
