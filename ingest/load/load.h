/* Load tools, built as haulwatch-sim beside the daemon on the same library (as h2o builds its
 * client next to its server): the truck simulator, the benchmark's reference loader and the
 * ack-latency probe (haulwatch-probe, its own program). None
 * is linked into the daemon. Each entry parses its own argv (argv[0] is the command name) and
 * returns the process exit code (0 ok, 1 failure, 2 usage error). */
#ifndef HW_LOAD_H
#define HW_LOAD_H

int hw_cmd_sim(int argc, char **argv);
int hw_cmd_bench_ref(int argc, char **argv);
/* haulwatch-probe (a program of its own: it must not share the simulator's process). */
int hw_cmd_probe(int argc, char **argv);

#endif
