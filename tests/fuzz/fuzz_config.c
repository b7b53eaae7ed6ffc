/* libFuzzer target for the configuration file (base/options.c: inih parsing and every value
 * parser: strings, bounded whole numbers, booleans) and hw_parse_hostport on the addresses.
 *
 * Input: the file's bytes, read through `--config FILE` exactly as `haulwatch serve` does, with a
 * settings table shaped like serve's (the serve table itself is private to cli/serve.c).
 * Oracles: the parse returns 0 or -EINVAL; on 0 every string is NUL terminated within its array,
 * every number is within its bounds, every boolean is 0 or 1, and an address that parses has a
 * port in 1..65535 and a host that is a prefix of it. Messages about bad files go to stderr. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

typedef struct fuzz_settings {
  char listen[64];
  char jt808_listen[64];
  char pg[1024];
  char redis[64];
  char log_level[8];
  uint32_t batch_rows, batch_ms, max_frame, idle_timeout_s, high_water, low_water;
  uint32_t rules;
} fuzz_settings;

static const hw_option fuzz_options[] = {
    HW_OPT_S(fuzz_settings, listen, "127.0.0.1:7100", NULL, "protobuf listener"),
    HW_OPT_S(fuzz_settings, jt808_listen, NULL, NULL, "JT/T 808 listener"),
    HW_OPT_S(fuzz_settings, pg, NULL, NULL, "PostgreSQL"),
    HW_OPT_S(fuzz_settings, redis, "127.0.0.1:6379", NULL, "Redis"),
    HW_OPT_S(fuzz_settings, log_level, "info", NULL, "log level"),
    HW_OPT_N(fuzz_settings, batch_rows, "5000", 1, 1000000, NULL, "rows"),
    HW_OPT_N(fuzz_settings, batch_ms, "50", 1, 60000, NULL, "ms"),
    HW_OPT_N(fuzz_settings, max_frame, "65536", 64, 16777216, NULL, "bytes"),
    HW_OPT_N(fuzz_settings, idle_timeout_s, "120", 0, 86400, NULL, "s"),
    HW_OPT_N(fuzz_settings, high_water, "200000", 1, 4294967295u, NULL, "rows"),
    HW_OPT_N(fuzz_settings, low_water, "100000", 0, 4294967295u, NULL, "rows"),
    HW_OPT_B(fuzz_settings, rules, "true", "rules"),
};

static void check_addr(const char *s) {
  char host[64];
  int port = -1;
  if (hw_parse_hostport(s, host, sizeof host, &port) == 0) {
    CHECK(port >= 1 && port <= 65535);
    CHECK(strlen(host) < sizeof host && strncmp(s, host, strlen(host)) == 0);
  }
}

static char path[64]; /* the file the input is written to; one per fuzzing process */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_settings s;
  char *pos[1];
  int npos = 0;
  if (!path[0])
    snprintf(path, sizeof path, "/tmp/hw-fuzz-config.%d.ini", (int)getpid());
  FILE *f = fopen(path, "wb");
  CHECK(f);
  CHECK(fwrite(data, 1, size, f) == size);
  CHECK(fclose(f) == 0);

  char *argv[] = {"serve", "--config", path, NULL};
  memset(&s, 0, sizeof s); /* as every command does: a setting without default stays empty */
  int rc = hw_options_parse(fuzz_options, sizeof fuzz_options / sizeof fuzz_options[0], &s, 3, argv,
                            "usage: fuzz", pos, 1, &npos);
  unlink(path);
  CHECK(rc == 0 || rc == -EINVAL);
  if (rc)
    return 0;
  CHECK(npos == 0);
  CHECK(memchr(s.listen, 0, sizeof s.listen) && memchr(s.jt808_listen, 0, sizeof s.jt808_listen));
  CHECK(memchr(s.pg, 0, sizeof s.pg) && memchr(s.redis, 0, sizeof s.redis));
  CHECK(memchr(s.log_level, 0, sizeof s.log_level));
  CHECK(s.batch_rows >= 1 && s.batch_rows <= 1000000 && s.batch_ms >= 1 && s.batch_ms <= 60000);
  CHECK(s.max_frame >= 64 && s.max_frame <= 16777216 && s.idle_timeout_s <= 86400);
  CHECK(s.high_water >= 1 && s.rules <= 1);
  check_addr(s.listen);
  check_addr(s.jt808_listen);
  check_addr(s.redis);
  return 0;
}
