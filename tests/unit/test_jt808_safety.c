/* Active-safety items 0x64-0x67 (jt808/jt808_safety.h): 0x0200 bodies from other public
 * implementations' test suites, each cited, decoded to the values those suites assert; both
 * layouts (苏标, 粤标) chosen by length; the frames fed to the deframer whole, byte by byte and
 * split at every point; and items that must not decode. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jt808/jt808_frame.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_location.h"
#include "jt808/jt808_safety.h"
#include "sinks/alarm_sql.h"

/* Every vector below is the whole 0x0200 body those suites serialise: alarm 1, status 2,
 * lat 12222222, lon 132444444, altitude 40, speed 60 (0.1 km/h), direction 0, 2018-07-15 10:10:10,
 * then one safety item whose fields they set to 1 (alarm id), 12 (flag), 5 (level), 6 (type),
 * 7 (altitude), 13/14 (lat/lon), 17 (speed), 19 (vehicle status), alarm time 2019-12-11 18:31:00,
 * and an alarm number: terminal "4444444", 2019-12-10 18:31:00, sequence 3, 2 attachments. */
#define SC_SU "SmallChi/JT808: src/JT808.Protocol.Extensions/JT808.Protocol.Extensions.SuBiao.Test/"
#define SC_YUE "SmallChi/JT808: src/JT808.Protocol.Extensions/JT808.Protocol.Extensions.YueBiao.Test/"
#define SC_AS "SmallChi/JTActiveSafety: src/JT808.Protocol.Extensions.JTActiveSafety.Test/"
#define FIX_HEX "000000010000000200BA7F0E07E4F11C0028003C0000180715101010"

/* SC_SU "JT808_0x0200_0x64_Test.cs" (Serializer): ADAS, 苏标, length 0x2F = 47 */
static const char adas_su[] = FIX_HEX "642F000000010C0605120A0B100F1100070000000D0000000E1912111831"
                                      "00001334343434343434191210183100030200";
/* SC_SU "JT808_0x0200_0x65_Test.cs" (Serializer): DSM, 苏标, 47 */
static const char dsm_su[] = FIX_HEX "652F000000010C060512010203041100070000000D0000000E1912111831"
                                     "00001334343434343434191210183100030200";
/* SC_SU "JT808_0x0200_0x66_Test.cs" (Serializer) and SC_AS "JT808_0x0200_0x66_Test.cs": TPMS,
 * 苏标, 0x3B = 59 = 41 + 2 tyre events */
static const char tpms_su[] = FIX_HEX "663B000000010C1100070000000D0000000E19121118310000133434343434"
                                      "3434191210183100030200020400010003000500020900060008000A0007";
/* SC_SU "JT808_0x0200_0x67_Test.cs" (Serializer): BSD, 苏标 with a level byte (8), 0x2A = 42 */
static const char bsd_su[] = FIX_HEX "672A000000010C09081100070000000D0000000E191211183100001334343434"
                                     "343434191210183100030200";
/* SC_YUE "JT808_0x0200_0x64_Test.cs": ADAS, 粤标, 0x47 = 71; reserved bytes 5, 6 */
static const char adas_yue[] = FIX_HEX "6447000000010C0605120A0B100F1100070000000D0000000E1912111831"
    "000013343434343434340000000000000000000000000000000000000000"
    "00000019121018310003020506";
/* SC_YUE "JT808_0x0200_0x65_Test.cs": DSM, 粤标, 71 */
static const char dsm_yue[] = FIX_HEX "6547000000010C060512010203041100070000000D0000000E1912111831"
    "000013343434343434340000000000000000000000000000000000000000"
    "00000019121018310003020506";
/* SC_YUE "JT808_0x0200_0x67_Test.cs": BSD, 粤标 without a level byte, 0x41 = 65 */
static const char bsd_yue[] = FIX_HEX "6741000000010C091100070000000D0000000E1912111831000013343434"
    "343434340000000000000000000000000000000000000000000000191210"
    "18310003020506";
/* SC_AS "JT808_0x0200_0x64_Test.cs" (and the Deserialize input of SC_SU's 0x64/0x65 tests): the
 * item's length byte says 0x20 = 32 while 47 bytes of ADAS follow. Its reader ignores the length;
 * we cannot: the 32 bytes fit no layout, and the 15 after them are read as a next item whose
 * length runs past the body. */
static const char adas_len32[] = FIX_HEX "6420000000010C0605120A0B100F1100070000000D0000000E19121118"
                                         "3100001334343434343434191210183100030200";

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
  size_t n = 0;
  for (const char *p = hex; p[0] && p[1]; p += 2) {
    unsigned v;
    assert_true(n < cap);
    assert_int_equal(sscanf(p, "%2x", &v), 1);
    out[n++] = (uint8_t)v;
  }
  return n;
}

/* 2019-12-11 18:31:00 GMT+8 and 2019-12-10 18:31:00 GMT+8 in UTC ms. */
#define T_ALARM 1576060260000LL
#define T_NO 1575973860000LL

static void check_common(const hw_safety_alarm *a, int item, int layout) {
  assert_int_equal(a->item_id, item);
  assert_int_equal(a->kind, item - 0x64 + 1);
  assert_int_equal(a->layout, layout);
  assert_int_equal(a->alarm_id, 1);
  assert_int_equal(a->flag, 12);
  assert_int_equal(a->speed_kmh, 17);
  assert_int_equal(a->alt_m, 7);
  assert_int_equal(a->lat_e6, 13);
  assert_int_equal(a->lon_e6, 14);
  assert_int_equal(a->ts_ms, T_ALARM);
  assert_int_equal(a->vehicle_status, 19);
  assert_int_equal(a->no.layout, layout);
  assert_string_equal(a->no.terminal_id, "4444444");
  assert_int_equal(a->no.ts_ms, T_NO);
  assert_int_equal(a->no.seq, 3);
  assert_int_equal(a->no.attachments, 2);
  assert_int_equal(a->no.reserved, layout == HW_SAFETY_SU ? 0 : 0x0506);
  assert_int_equal(a->no.raw_len, layout == HW_SAFETY_SU ? 16 : 40);
  char t[HW_SAFETY_ALARM_NO_TEXT_MAX];
  size_t n = hw_safety_alarm_no_format(&a->no, t, sizeof t);
  assert_string_equal(t, "4444444-191210183100-3");
  assert_int_equal(n, strlen(t));
}

static void check_vector(const char *name, const hw_safety_alarm *a) {
  if (!strcmp(name, "adas_su") || !strcmp(name, "adas_yue")) {
    check_common(a, 0x64, name[5] == 's' ? HW_SAFETY_SU : HW_SAFETY_YUE);
    assert_int_equal(a->type, 6);
    assert_true(a->has_level);
    assert_int_equal(a->level, 5);
    assert_int_equal(a->front_speed_kmh, 18);
    assert_int_equal(a->front_distance_ds, 10);
    assert_int_equal(a->deviation, 11);
    assert_int_equal(a->sign_type, 16);
    assert_int_equal(a->sign_value, 15);
  } else if (!strcmp(name, "dsm_su") || !strcmp(name, "dsm_yue")) {
    check_common(a, 0x65, name[4] == 's' ? HW_SAFETY_SU : HW_SAFETY_YUE);
    assert_int_equal(a->type, 6);
    assert_int_equal(a->level, 5);
    assert_int_equal(a->fatigue, 18);
  } else if (!strcmp(name, "tpms_su")) {
    check_common(a, 0x66, HW_SAFETY_SU);
    assert_false(a->has_level);
    assert_int_equal(a->tyre_count, 2);
    assert_int_equal(a->tyres_kept, 2);
    /* position, type, pressure, temperature, battery: 4,1,3,5,2 and 9,6,8,10,7 */
    assert_int_equal(a->tyres[0].position, 4);
    assert_int_equal(a->tyres[0].alarm_type, 1);
    assert_int_equal(a->tyres[0].pressure_kpa, 3);
    assert_int_equal(a->tyres[0].temp_c, 5);
    assert_int_equal(a->tyres[0].battery_pct, 2);
    assert_int_equal(a->tyres[1].position, 9);
    assert_int_equal(a->tyres[1].alarm_type, 6);
    assert_int_equal(a->tyres[1].pressure_kpa, 8);
    assert_int_equal(a->tyres[1].temp_c, 10);
    assert_int_equal(a->tyres[1].battery_pct, 7);
    assert_int_equal(a->type, 1 | 6);
  } else if (!strcmp(name, "bsd_su")) {
    check_common(a, 0x67, HW_SAFETY_SU);
    assert_int_equal(a->type, 9);
    assert_true(a->has_level);
    assert_int_equal(a->level, 8);
  } else if (!strcmp(name, "bsd_yue")) {
    check_common(a, 0x67, HW_SAFETY_YUE);
    assert_int_equal(a->type, 9);
    assert_false(a->has_level);
    assert_int_equal(a->level, 0);
  } else {
    fail_msg("unknown vector %s", name);
  }
}

static const struct {
  const char *name, *hex;
} good[] = {
    {"adas_su", adas_su}, {"dsm_su", dsm_su}, {"tpms_su", tpms_su}, {"bsd_su", bsd_su},
    {"adas_yue", adas_yue}, {"dsm_yue", dsm_yue}, {"bsd_yue", bsd_yue},
};

static void test_bodies(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    uint8_t body[512];
    size_t len = unhex(good[i].hex, body, sizeof body);
    hw_fix fix;
    hw_jt808_loc_extra ex;
    /* The fix itself still decodes, the safety item counted as skipped there. */
    assert_int_equal(hw_jt808_parse_location(body, len, 1, &fix, &ex), 0);
    assert_int_equal(fix.lat_e6, 12222222);
    assert_int_equal(ex.skipped_items, 1);
    hw_safety_alarm a[4];
    size_t n = 99, bad = 99;
    assert_int_equal(hw_safety_scan(body, len, a, 4, &n, &bad), 0);
    assert_int_equal(n, 1);
    assert_int_equal(bad, 0);
    check_vector(good[i].name, &a[0]);
  }
}

/* ---- through the deframer: whole, byte by byte, split at every point ---- */

typedef struct got {
  const char *name;
  int frames;
} got;

static int on_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  got *g = arg;
  hw_jt808_header h;
  const uint8_t *body;
  assert_int_equal(ev, HW_JT808_FRAME);
  assert_int_equal(hw_jt808_header_parse(data, len, &h, &body), 0);
  assert_int_equal(h.msg_id, 0x0200);
  hw_safety_alarm a[2];
  size_t n, bad;
  assert_int_equal(hw_safety_scan(body, h.body_len, a, 2, &n, &bad), 0);
  assert_int_equal(n, 1);
  check_vector(g->name, &a[0]);
  g->frames++;
  return 0;
}

static void test_framed(void **state) {
  (void)state;
  hw_jt808_deframer *d = malloc(sizeof *d);
  assert_non_null(d);
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    uint8_t body[512], wire[HW_JT808_WIRE_MAX];
    size_t len = unhex(good[i].hex, body, sizeof body), wlen;
    hw_jt808_header peer;
    assert_int_equal(hw_jt808_header_init(&peer, 0, 0, "13912344329"), 0);
    assert_int_equal(hw_jt808_build(wire, sizeof wire, &wlen, &peer, 0x0200, 7, body, len), 0);
    got g = {good[i].name, 0};
    /* whole */
    hw_jt808_deframer_init(d);
    assert_int_equal(hw_jt808_deframer_feed(d, wire, wlen, on_frame, &g), 0);
    assert_int_equal(g.frames, 1);
    /* byte by byte */
    hw_jt808_deframer_init(d);
    for (size_t k = 0; k < wlen; k++)
      assert_int_equal(hw_jt808_deframer_feed(d, wire + k, 1, on_frame, &g), 0);
    assert_int_equal(g.frames, 2);
    /* split in two at every point */
    for (size_t cut = 1; cut < wlen; cut++) {
      hw_jt808_deframer_init(d);
      assert_int_equal(hw_jt808_deframer_feed(d, wire, cut, on_frame, &g), 0);
      assert_int_equal(hw_jt808_deframer_feed(d, wire + cut, wlen - cut, on_frame, &g), 0);
    }
    assert_int_equal(g.frames, 2 + (int)(wlen - 1));
  }
  free(d);
}

/* ---- what must not decode ---- */

static void test_bad_lengths(void **state) {
  (void)state;
  uint8_t body[512];
  size_t len = unhex(adas_len32, body, sizeof body), n, bad;
  hw_safety_alarm a[2];
  hw_fix fix;
  /* The suite's inconsistent item: the body is unreadable for us as for the location decoder. */
  assert_int_equal(hw_safety_scan(body, len, a, 2, &n, &bad), -EBADMSG);
  assert_int_equal(hw_jt808_parse_location(body, len, 1, &fix, NULL), -EBADMSG);

  /* Every length of a 0x64..0x67 item value that fits no layout is refused, and never read
   * beyond: the value sits at the end of a heap block of exactly that size (ASan checks). */
  uint8_t src[HW_SAFETY_ALARM_NO_YUE_LEN + 255];
  memset(src, 0x30, sizeof src);
  for (unsigned id = 0x64; id <= 0x67; id++) {
    for (size_t l = 0; l <= 255; l++) {
      uint8_t *v = malloc(l ? l : 1);
      assert_non_null(v);
      memcpy(v, src, l);
      int rc = hw_safety_parse_item((uint8_t)id, v, l, &a[0]);
      int fits;
      if (id == 0x64 || id == 0x65)
        fits = l == 47 || l == 71;
      else if (id == 0x67)
        fits = l == 41 || l == 42 || l == 65 || l == 66;
      else
        fits = (l >= 41 && (l - 41) % 9 == 0) || (l >= 65 && (l - 65) % 9 == 0);
      assert_int_equal(rc, fits ? 0 : -EBADMSG);
      free(v);
    }
  }
  assert_int_equal(hw_safety_parse_item(0x63, src, 47, &a[0]), -ENOENT);
  assert_int_equal(hw_safety_parse_item(0x68, src, 47, &a[0]), -ENOENT);
}

/* A TPMS count byte larger than the events present: only those present are read. */
static void test_tpms_count_lies(void **state) {
  (void)state;
  uint8_t body[512];
  size_t len = unhex(tpms_su, body, sizeof body);
  body[28 + 2 + 40] = 200; /* the count byte of the one item */
  hw_safety_alarm a;
  assert_int_equal(hw_safety_parse_item(0x66, body + 30, len - 30, &a), 0);
  assert_int_equal(a.tyre_count, 200);
  assert_int_equal(a.tyres_kept, 2);
}

/* An unknown type and an odd alarm number are kept, with a safe text form. */
static void test_kept_as_sent(void **state) {
  (void)state;
  uint8_t body[512];
  size_t len = unhex(dsm_su, body, sizeof body);
  uint8_t *v = body + 30;
  v[5] = 0x0C;                  /* a user-defined DSM type */
  v[31] = 0xFF;                 /* terminal id byte not ASCII */
  v[31 + 7] = 0x1A;             /* BCD time with a bad nibble */
  hw_safety_alarm a;
  assert_int_equal(hw_safety_parse_item(0x65, v, len - 30, &a), 0);
  assert_int_equal(a.type, 0x0C);
  assert_null(hw_safety_type_name(HW_SAFETY_DSM, 0x0C));
  assert_string_equal(hw_safety_type_name(HW_SAFETY_DSM, HW_DSM_FATIGUE), "fatigue");
  assert_string_equal(a.no.terminal_id, "hex:ff343434343434");
  assert_int_equal(a.no.ts_ms, 0);
  char t[HW_SAFETY_ALARM_NO_TEXT_MAX];
  hw_safety_alarm_no_format(&a.no, t, sizeof t);
  assert_string_equal(t, "hex:ff343434343434-1a1210183100-3");
  /* A short buffer truncates, NUL terminated. */
  char s[6];
  assert_int_equal(hw_safety_alarm_no_format(&a.no, s, sizeof s), 5);
  assert_string_equal(s, "hex:f");
  /* A 粤标 number: 30-byte id, NUL padded. */
  len = unhex(dsm_yue, body, sizeof body);
  assert_int_equal(hw_safety_alarm_no_parse(body + 30 + 31, 40, &a.no), 0);
  assert_string_equal(a.no.terminal_id, "4444444");
  assert_int_equal(hw_safety_alarm_no_parse(body + 30 + 31, 39, &a.no), -EBADMSG);
}

/* The largest TPMS item (length 248 = 41 + 23 events, every field at its widest) still makes a
 * statement and an event (the fuzzer found the first buffers too small for it), with only the
 * literals' quotes. */
static void test_widest_tpms_sql(void **state) {
  (void)state;
  uint8_t v[248];
  memset(v, 0xFF, sizeof v);
  memcpy(v + 5 + 19, "T000001", 7);             /* the alarm number's terminal id */
  memcpy(v + 5 + 19 + 7, "\x19\x12\x10\x18\x31\x00", 6);
  v[40] = 23;
  hw_safety_alarm a;
  assert_int_equal(hw_safety_parse_item(0x66, v, sizeof v, &a), 0);
  assert_int_equal(a.tyres_kept, 23);
  hw_fix fix;
  memset(&fix, 0, sizeof fix);
  fix.ts_ms = 1700000000000LL;
  char sql[HW_ALARM_SQL_MAX], js[HW_ALARM_SQL_MAX];
  int n = hw_alarm_insert_sql("013912344329", &a, &fix, sql, sizeof sql);
  assert_true(n > 0);
  int quotes = 0;
  for (int i = 0; i < n; i++)
    quotes += sql[i] == '\'';
  assert_int_equal(quotes, 12);
  assert_non_null(strstr(sql, "'T000001-191210183100-255'"));
  assert_true(hw_alarm_event_json("013912344329", &a, &fix, js, sizeof js) > 0);
  /* A buffer too small is refused, not truncated. */
  assert_int_equal(hw_alarm_insert_sql("013912344329", &a, &fix, sql, 100), -ENOSPC);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bodies),
      cmocka_unit_test(test_framed),
      cmocka_unit_test(test_bad_lengths),
      cmocka_unit_test(test_tpms_count_lies),
      cmocka_unit_test(test_kept_as_sent),
      cmocka_unit_test(test_widest_tpms_sql),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
