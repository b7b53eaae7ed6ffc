/* How long one JT/T 809 position (0x1200 / 0x1202) takes to decode: deframe (collect, unescape,
 * CRC, length), header, decryption, the 0x1200 wrapper (GBK plate to UTF-8), the GNSS record
 * into hw_fix. Not a test (no assertions on time); built by CMake as
 * build/tests/bench_jt809_decode and run by hand:
 *
 *   build/tests/bench_jt809_decode [frames]
 *
 * Three streams of ~1 MiB fed as 64 KiB reads, measured in the same run so the figures compare
 * as ratios: a JT/T 808 0x0200 (the reference: bench_jt808_decode's traccar frame), a plain 2011
 * 0x1202 frame built around SmallChi/JT809's record, and a real encrypted 2019 0x1202 frame
 * (SmallChi/JT809 GuoJian001Test.cs, a 0x0200 body inside, sent unescaped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jt808/jt808_frame.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_location.h"
#include "jt809/jt809_header.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_vehicle.h"

static const char jt808_hex[] =
    "7E02000053200002604323004800000000000C00000158B91406CB7007006B0000000022051210113801"
    "0400000F2803020000250400000000300114310100E30100D50E0100026043232795980277530030E504"
    "00000000E7020FC8E8020E83AB7E";
static const char rec2011_hex[] =
    "00130707DC0F0F0F07EF4D80017018400032003300000096002D002D0000000300000101";
static const char gj2019_hex[] =
    "5b000000d80000036d1200052df12c0000000100003b890000000068d8c78f6a674e82b6aef82e91879f8478be0e"
    "5f9087119a5ae396940d1cf3e8d127391563ebff619e887d75e63836951aa437fae48b3f0ff1b174070fdd03eaac"
    "020cba76326371d7d7e0e657020c75e68d398c4a5fc71a89db6eb412bed061b6a037a9be6ba38aa6c5cd3ff712a6"
    "03e652439cb88f52ae9aa7c117f8bf1dc36de797e348d5e192dbfcd2c39f5b1f371f270199cb17ea1a3b153df818"
    "4de19173d0d96111b140a938c8755091a90ea02817cc734b36e1e887be08b65d";
static const hw_jt809_cipher gj_cipher = {56107078, 37382110, 50361430};

typedef struct sink {
  uint64_t frames, fixes;
  int64_t sum;
  int is_2019;
  const hw_jt809_cipher *cipher;
} sink;

static int on808(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  sink *s = arg;
  hw_jt808_header h;
  const uint8_t *body;
  hw_fix fix;
  if (ev != HW_JT808_FRAME || hw_jt808_header_parse(data, len, &h, &body) != 0)
    return -EPROTO;
  s->frames++;
  if (hw_jt808_parse_location(body, h.body_len, 1, &fix, NULL) == 0) {
    s->fixes++;
    s->sum += fix.lat_e6;
  }
  return 0;
}

static int on809(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  sink *s = arg;
  hw_jt809_header h;
  const uint8_t *body;
  size_t bl;
  hw_jt809_sub sub;
  hw_jt809_gnss g;
  hw_fix fix;
  if (ev != HW_JT809_FRAME || hw_jt809_open(data, len, s->is_2019, s->cipher, &h, &body, &bl))
    return -EPROTO;
  s->frames++;
  if (hw_jt809_parse_sub(body, bl, 1, &sub) == 0 &&
      hw_jt809_parse_position(sub.data, sub.data_len, s->is_2019, &g) == 0 &&
      hw_jt809_gnss_to_fix(&g, 1, &fix) == 0) {
    s->fixes++;
    s->sum += fix.lat_e6;
  }
  return 0;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static size_t unhex(const char *h, uint8_t *out) {
  size_t n = 0;
  for (; h[0] && h[1]; h += 2) {
    unsigned v;
    if (sscanf(h, "%2x", &v) != 1)
      exit(1);
    out[n++] = (uint8_t)v;
  }
  return n;
}

static uint8_t *repeat(const uint8_t *one, size_t n, size_t *len) {
  size_t copies = (1u << 20) / n;
  uint8_t *s = malloc(copies * n);
  if (!s)
    exit(1);
  for (size_t i = 0; i < copies; i++)
    memcpy(s + i * n, one, n);
  *len = copies * n;
  return s;
}

/* ns per frame; proto 808 or 809. */
static double run(int proto, const uint8_t *stream, size_t len, uint64_t want, sink *s) {
  static uint8_t buf[65536];
  hw_jt808_deframer d8;
  hw_jt809_deframer d9;
  const size_t rs = 65536;
  double t0 = now_ns();
  s->frames = s->fixes = 0;
  hw_jt808_deframer_init(&d8);
  if (hw_jt809_deframer_init(&d9, buf, sizeof buf))
    exit(1);
  while (s->frames < want) {
    for (size_t at = 0; at < len; at += rs) {
      size_t n = len - at < rs ? len - at : rs;
      int rc = proto == 808 ? hw_jt808_deframer_feed(&d8, stream + at, n, on808, s)
                            : hw_jt809_deframer_feed(&d9, stream + at, n, on809, s);
      if (rc) {
        fprintf(stderr, "decode failed\n");
        exit(1);
      }
    }
  }
  double ns = (now_ns() - t0) / (double)s->frames;
  if (s->fixes != s->frames) {
    fprintf(stderr, "invalid fixes (%llu of %llu)\n", (unsigned long long)s->fixes,
            (unsigned long long)s->frames);
    exit(1);
  }
  return ns;
}

int main(int argc, char **argv) {
  uint64_t want = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
  uint8_t one[512], rec[64], body[128];
  size_t n, len808, len11, len19, bl;

  n = unhex(jt808_hex, one);
  uint8_t *s808 = repeat(one, n, &len808);
  size_t rn = unhex(rec2011_hex, rec);
  if (hw_jt809_encode_sub(1, "\xE7\xB2\xA4" "A12345", 2, HW_JT809_EXG_REAL_LOCATION, rec, rn,
                          body, sizeof body, &bl))
    return 1;
  hw_jt809_header h = {.sn = 1, .msg_id = 0x1200, .center_id = 7, .version = {1, 0, 0}};
  if (hw_jt809_build(one, sizeof one, &n, &h, NULL, body, bl))
    return 1;
  size_t n11 = n;
  uint8_t *s11 = repeat(one, n, &len11);
  size_t n19 = unhex(gj2019_hex, one);
  uint8_t *s19 = repeat(one, n19, &len19);

  sink a = {0}, b = {0}, c = {.is_2019 = 1, .cipher = &gj_cipher};
  run(808, s808, len808, want / 10, &a); /* warm up */
  run(809, s11, len11, want / 10, &b);
  run(809, s19, len19, want / 10, &c);
  double t808 = run(808, s808, len808, want, &a);
  double t11 = run(809, s11, len11, want, &b);
  double t19 = run(809, s19, len19, want, &c);
  printf("%llu frames each\n", (unsigned long long)want);
  printf("JT/T 808 0x0200 -> fix (reference)        %7.1f ns/frame  1.00x\n", t808);
  printf("JT/T 809 2011 0x1202, plain, %3zu B -> fix %7.1f ns/frame  %.2fx\n", n11, t11,
         t11 / t808);
  printf("JT/T 809 2019 0x1202, encrypted, %3zu B     %7.1f ns/frame  %.2fx\n", n19, t19,
         t19 / t808);
  fprintf(stderr, "%s", a.sum + b.sum + c.sum == 42 ? " " : "");
  free(s808);
  free(s11);
  free(s19);
  return 0;
}
