/* placeholder until the daemon lands */
#include <stdio.h>
#include "cli.h"
int hw_cmd_serve(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "serve: not built yet\n"); return 1; }
