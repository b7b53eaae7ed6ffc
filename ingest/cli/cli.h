/* Entry points of the subcommands; each parses its own argv (argv[0] is the command name) and
 * returns the process exit code (0 ok, 1 failure, 2 usage error). */
#ifndef HW_CLI_H
#define HW_CLI_H

int hw_cmd_serve(int argc, char **argv);
int hw_cmd_migrate(int argc, char **argv);
int hw_cmd_terminal(int argc, char **argv);
int hw_cmd_registry(int argc, char **argv);
int hw_cmd_zones(int argc, char **argv);
int hw_cmd_violations(int argc, char **argv);

#endif
