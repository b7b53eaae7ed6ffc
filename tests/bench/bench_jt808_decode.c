/* How long one JT/T 808 location report takes to decode: deframe (unescape, checksum), header,
 * 0x0200 body into hw_fix. Not a test (no assertions on time); run by hand:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Iingest tests/bench/bench_jt808_decode.c \
 *       ingest/jt808_frame.c ingest/jt808_header.c ingest/jt808_location.c \
 *       ingest/jt808_text.c -o /tmp/bench_jt808
 *   /tmp/bench_jt808 [frames] [full-only]
 *
 * Built by CMake as build/tests/bench_jt808_decode; ops/bench runs it, and counts instructions
 * per frame with callgrind in `full-only` mode (repeatable on a noisy machine).
 *
 * The frames are a real traccar test report (83-byte body, 7 standard and 5 vendor items) fed as
 * 64 KiB reads, the way a busy connection delivers them, so frames straddle read boundaries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jt808/jt808_frame.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_location.h"

static const char frame_hex[] =
    "7E02000053200002604323004800000000000C00000158B91406CB7007006B0000000022051210113801"
    "0400000F2803020000250400000000300114310100E30100D50E0100026043232795980277530030E504"
    "00000000E7020FC8E8020E83AB7E";

typedef struct sink {
  uint64_t frames, fixes;
  int64_t sum; /* keeps the work observable */
  int parse;
} sink;

static int on_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  sink *s = arg;
  hw_jt808_header h;
  const uint8_t *body;
  hw_fix fix;
  hw_jt808_loc_extra ex;

  if (ev != HW_JT808_FRAME)
    return -EPROTO;
  s->frames++;
  if (!s->parse)
    return 0;
  if (hw_jt808_header_parse(data, len, &h, &body) != 0)
    return -EPROTO;
  if (hw_jt808_parse_location(body, h.body_len, 1, &fix, &ex) == 0) {
    s->fixes++;
    s->sum += fix.lat_e6 + fix.odometer_hm;
  }
  return 0;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static uint64_t frames_done;

static double run(const uint8_t *stream, size_t len, size_t per_stream, uint64_t want, int parse) {
  hw_jt808_deframer d;
  sink s = {.parse = parse};
  const size_t read_size = 65536;
  double t0 = now_ns();

  hw_jt808_deframer_init(&d);
  while (s.frames < want) {
    for (size_t at = 0; at < len; at += read_size) {
      size_t n = len - at < read_size ? len - at : read_size;
      if (hw_jt808_deframer_feed(&d, stream + at, n, on_frame, &s) != 0) {
        fprintf(stderr, "decode failed\n");
        exit(1);
      }
    }
  }
  double ns = (now_ns() - t0) / (double)s.frames;
  frames_done = s.frames;
  if (parse && s.fixes != s.frames) {
    fprintf(stderr, "invalid fixes\n");
    exit(1);
  }
  (void)per_stream;
  fprintf(stderr, "%s", s.sum == 42 ? " " : ""); /* never true; defeats dead-code elimination */
  return ns;
}

int main(int argc, char **argv) {
  uint64_t want = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
  uint8_t one[256];
  size_t n = 0;

  for (size_t i = 0; frame_hex[i]; i += 2) {
    unsigned v;
    if (sscanf(frame_hex + i, "%2x", &v) != 1)
      return 1;
    one[n++] = (uint8_t)v;
  }
  /* ~1 MiB of back-to-back frames */
  size_t copies = (1u << 20) / n, len = copies * n;
  uint8_t *stream = malloc(len);
  if (!stream)
    return 1;
  for (size_t i = 0; i < copies; i++)
    memcpy(stream + i * n, one, n);

  if (argc > 2 && !strcmp(argv[2], "full-only")) {
    /* For instruction counts under callgrind: one pass of full decodes, nothing else. The
     * difference between two runs of different sizes is the per-frame cost without set-up. */
    run(stream, len, copies, want, 1);
    printf("frames=%llu\n", (unsigned long long)frames_done);
    free(stream);
    return 0;
  }
  run(stream, len, copies, want / 10, 1); /* warm up */
  double deframe = run(stream, len, copies, want, 0);
  double full = run(stream, len, copies, want, 1);
  printf("frame %zu bytes on the wire, %llu frames\n", n, (unsigned long long)want);
  printf("deframe only:                      %.1f ns/frame\n", deframe);
  printf("deframe + header + 0x0200 -> fix:  %.1f ns/frame (%.2f M frames/s)\n", full,
         1e3 / full);
  free(stream);
  return 0;
}
