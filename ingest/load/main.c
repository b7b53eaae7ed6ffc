/* haulwatch-sim: simulated trucks against a daemon (`haulwatch-sim [OPTIONS]`), and the
 * benchmark's reference loader (`haulwatch-sim bench-ref [OPTIONS]`). */
#include <string.h>

#include "load/load.h"

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "bench-ref"))
    return hw_cmd_bench_ref(argc - 1, argv + 1);
  return hw_cmd_sim(argc, argv);
}
