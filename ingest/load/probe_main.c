/* haulwatch-probe: the independent ack-latency probe (load/probe.c). */
#include "load/load.h"

int main(int argc, char **argv) { return hw_cmd_probe(argc, argv); }
