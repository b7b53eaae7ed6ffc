/* placeholder until the reference loader lands */
#include <stdio.h>
#include "cli.h"
int hw_cmd_bench_ref(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "bench-ref: not built yet\n"); return 1; }
