/* placeholder */
#include <stdio.h>
#include "cli.h"
int hw_cmd_migrate(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int hw_cmd_terminal(int argc, char **argv) { (void)argc; (void)argv; return 1; }
