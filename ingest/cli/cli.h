/* Entry points of the subcommands; each parses its own argv (argv[0] is the command name) and
 * returns the process exit code (0 ok, 1 failure, 2 usage error). */
#ifndef HW_CLI_H
#define HW_CLI_H

#include <uv.h>

int hw_cmd_serve(int argc, char **argv);

/* serve on a loop the caller owns: starts, runs loop until stopped by SIGINT/SIGTERM or, after a
 * failed start, until what had started is closed; the caller then closes the loop (a test
 * asserts uv_loop_close() == 0). Returns the exit code like hw_cmd_serve. */
int hw_serve_run(uv_loop_t *loop, int argc, char **argv);
int hw_cmd_migrate(int argc, char **argv);
int hw_cmd_terminal(int argc, char **argv);
int hw_cmd_registry(int argc, char **argv);
int hw_cmd_zones(int argc, char **argv);
int hw_cmd_violations(int argc, char **argv);
int hw_cmd_alarms(int argc, char **argv);
int hw_cmd_web(int argc, char **argv);
int hw_cmd_user(int argc, char **argv);
int hw_cmd_report(int argc, char **argv);
/* `report monthly` (report_monthly.c), dispatched by hw_cmd_report. */
int hw_cmd_report_monthly(int argc, char **argv);
/* `report safety-devices` (safety_report_cmd.c). */
int hw_cmd_report_safety(int argc, char **argv);
/* report phaseout|registry-audit|offline-movers (crackdown_cmd.c); argv[0] names the list. */
int hw_cmd_crackdown(int argc, char **argv);
int hw_cmd_regions(int argc, char **argv);
int hw_cmd_attachments(int argc, char **argv);
int hw_cmd_platform(int argc, char **argv);
/* retention run [--dry-run] (retention_cmd.c). */
int hw_cmd_retention(int argc, char **argv);
/* platform inspect|message|supervise|inspections (platform_interact_cmd.c). */
int hw_cmd_platform_interact(int argc, char **argv);
int hw_platform_interact_is(const char *sub);

/* A whole file of at most 256 MiB into a new NUL-terminated buffer (owned by the caller: free);
 * NULL with errno set on failure. Defined in zones_cmd.c; the GeoJSON importers share it. */
char *hw_cli_read_file(const char *path, size_t *len);

#endif
