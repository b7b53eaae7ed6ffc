/* placeholder until the simulator lands */
#include <stdio.h>
#include "cli.h"
int hw_cmd_sim(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "sim: not built yet\n"); return 1; }
