/* JT/T 808 0x0200 and 0x0704 into hw_fix: other suites' frames and values (sources in
 * jt808_vectors.h), every additional item we decode, vendor items, and bodies that must not
 * yield a fix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "jt808/jt808_header.h"
#include "jt808/jt808_location.h"
#include "jt808_vectors.h"

#define RECV 1700000000123LL

typedef struct loc {
  jt808_one one;
  hw_jt808_header h;
  const uint8_t *body;
  hw_fix fix;
  hw_jt808_loc_extra ex;
  int rc;
} loc;

static void loc_of(const char *name, loc *l) {
  assert_int_equal(jt808_deframe(name, &l->one), 0);
  assert_int_equal(hw_jt808_header_parse(l->one.frame, l->one.len, &l->h, &l->body), 0);
  assert_int_equal(l->h.msg_id, HW_JT808_MSG_LOCATION);
  l->rc = hw_jt808_parse_location(l->body, l->h.body_len, RECV, &l->fix, &l->ex);
}

static void check_basics(const hw_fix *f, uint32_t alarm, uint32_t status, int32_t lat, int32_t lon,
                         int32_t alt, uint32_t speed, uint16_t heading, int64_t ts) {
  assert_int_equal(f->source, HW_SRC_JT808);
  assert_int_equal(f->seq, 0);
  assert_int_equal(f->recv_ms, RECV);
  assert_false(f->has_driver);
  assert_int_equal(f->alarm, alarm);
  assert_int_equal(f->status, status);
  assert_int_equal(f->lat_e6, lat);
  assert_int_equal(f->lon_e6, lon);
  assert_int_equal(f->alt_m, alt);
  assert_int_equal(f->speed_dkmh, speed);
  assert_int_equal(f->heading, heading);
  assert_int_equal(f->ts_ms, ts);
}

/* SmallChi JT808_0x0200Test.Test5: alarm 1, status 2, 12222222 / 132444444, 40 m, 60, 0,
 * 2018-07-15 10:10:10 (GMT+8), odometer 100, fuel 55. */
static void test_smallchi(void **state) {
  (void)state;
  loc l;
  loc_of("loc_sc", &l);
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 1, 2, 12222222, 132444444, 40, 60, 0, 1531620610000LL);
  assert_int_equal(l.fix.odometer_hm, 100);
  assert_int_equal(l.ex.has, HW_JT808_HAS_ODOMETER | HW_JT808_HAS_FUEL);
  assert_int_equal(l.ex.fuel_dl, 55);
  assert_int_equal(l.ex.skipped_items, 0);

  /* Demo2: the same report with flow 126 and fuel 125, both escaped on the wire */
  loc_of("loc_sc_esc", &l);
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 1, 2, 12222222, 132444444, 40, 60, 0, 1539569410000LL);
  assert_int_equal(l.ex.fuel_dl, 125);

  /* Test_all_attcahids: 0x03 56, 0x25 23, 0x2A 244, 0x2B 242, 0x30 2, 0x31 5; 0x04, 0x11, 0x12
   * and 0x13 are valid items we do not decode */
  loc_of("loc_sc_items", &l);
  assert_int_equal(l.rc, 0);
  assert_int_equal(l.fix.odometer_hm, 100);
  assert_int_equal(l.ex.has, 0xFF);
  assert_int_equal(l.ex.fuel_dl, 55);
  assert_int_equal(l.ex.rec_speed_dkmh, 56);
  assert_int_equal(l.ex.ext_signals, 23);
  assert_int_equal(l.ex.io, 244);
  assert_int_equal(l.ex.analog, 242);
  assert_int_equal(l.ex.signal, 2);
  assert_int_equal(l.ex.satellites, 5);
  assert_int_equal(l.ex.skipped_items, 4);

  /* Test6: odometer 0x00054C7D sent with 7D 01 */
  loc_of("loc_sc_esc2", &l);
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 0, 0x000C00C2, 22768750, 113792664, 30, 0, 224, 1537065337000LL);
  assert_int_equal(l.fix.odometer_hm, 0x00054C7D);
  assert_int_equal(l.ex.signal, 29);
  assert_int_equal(l.ex.satellites, 13);
  assert_int_equal(l.ex.has, 0xFF & ~HW_JT808_HAS_IO);
}

/* SmallChi Test7 / Test8 frames carry wrong checksums (SmallChi decodes them with SkipCRCCode),
 * so only their bodies are used. Test7: unknown items with id 0x00 and 0xEB are skipped.
 * Test8: the last item, 0xF6, announces 4 bytes and has 2: no fix. */
static void test_smallchi_bodies(void **state) {
  (void)state;
  uint8_t b[256];
  hw_fix f;
  hw_jt808_loc_extra ex;
  size_t n = jt808_unhex(
      "000000000000000301789b3406238afa0000018b00f62104020046090104000024c72b040b290b2930011731011b"
      "000400ce0b29000c00b222222222222222222222eb0e000c00b222222222222222222222",
      b, sizeof b);
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, &ex), 0);
  assert_int_equal(f.odometer_hm, 9415);
  assert_int_equal(ex.analog, 187239209);
  assert_int_equal(ex.signal, 23);
  assert_int_equal(ex.satellites, 27);
  assert_int_equal(ex.skipped_items, 3);
  assert_int_equal(f.ts_ms, 1617295569000LL);

  n = jt808_unhex(
      "00000000000c000001f62e8307147c92001e0000001e110111031152010400131a340302000005010006030205"
      "9007030381202504000000002b04000000f0300117310105e0013de108000000000004bcfde20400000000e304"
      "000007ace40400000000e50c001300270013002700130027ea0400000000eb0400000000ee0100f6041450",
      b, sizeof b);
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, &ex), -EBADMSG);
  /* the same body without the broken item is fine; its vendor items are skipped */
  assert_int_equal(hw_jt808_parse_location(b, n - 4, RECV, &f, &ex), 0);
  assert_int_equal(f.odometer_hm, 0x00131A34);
  assert_int_equal(ex.skipped_items, 12); /* 05 06 07 E0 E1 E2 E3 E4 E5 EA EB EE */
}

/* hylexus BuiltinMsg0200Test (2019 header): alarm bits 20 and 21, status bits 0 and 22,
 * lng 120127920, lat 30228930, height 2345, speed 666, direction 90, 230428213141, items 0x01
 * 667, 0x02 67, 0x03 777, 0x30 99. */
static void test_hylexus_2019(void **state) {
  (void)state;
  loc l;
  loc_of("loc_2019_hy", &l);
  assert_true(l.h.is_2019);
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, (1u << 20) | (1u << 21), (1u << 0) | (1u << 22), 30228930, 120127920, 2345,
               666, 90, 1682688701000LL);
  assert_int_equal(l.fix.odometer_hm, 667);
  assert_int_equal(l.ex.fuel_dl, 67);
  assert_int_equal(l.ex.rec_speed_dkmh, 777);
  assert_int_equal(l.ex.signal, 99);
  assert_int_equal(l.ex.skipped_items, 0);

  /* BuiltinMsg0200V2Test: 2019 tyre pressure, carriage temperature, area, ADAS 0x64 skipped */
  loc_of("loc_2019_adas", &l);
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 2, 0x004C01C3, 35003231, 125003231, 100, 1983, 0, 1706412688000LL);
  assert_int_equal(l.fix.odometer_hm, 93);
  assert_int_equal(l.ex.fuel_dl, 497);
  assert_int_equal(l.ex.rec_speed_dkmh, 1983);
  assert_int_equal(l.ex.signal, 8);
  assert_int_equal(l.ex.satellites, 9);
  assert_int_equal(l.ex.skipped_items, 5); /* 04 05 06 11 64 */
}

/* go-jt808 parse_test.go asserts Latitude 119552894, Longitude 40058359: the two are swapped
 * (a latitude of 119 degrees), which haulwatch must not store. With the two DWORDs put back in
 * order the rest of go-jt808's values hold. */
static void test_go_swapped_coordinates(void **state) {
  (void)state;
  loc l;
  uint8_t b[HW_JT808_BODY_MAX];
  loc_of("loc_go", &l);
  assert_int_equal(l.rc, -ERANGE);
  memcpy(b, l.body, l.h.body_len);
  memcpy(b + 8, l.body + 12, 4);
  memcpy(b + 12, l.body + 8, 4);
  assert_int_equal(hw_jt808_parse_location(b, l.h.body_len, RECV, &l.fix, &l.ex), 0);
  check_basics(&l.fix, 1024, 2048, 40058359, 119552894, 312, 3, 99, 1727798399000LL);

  /* reply_test.go's report: every item of JT/T 808 table 27 that it carries */
  loc_of("loc_go_items", &l);
  assert_int_equal(l.rc, -ERANGE);
  memcpy(b, l.body, l.h.body_len);
  memcpy(b + 8, l.body + 12, 4);
  memcpy(b + 12, l.body + 8, 4);
  assert_int_equal(hw_jt808_parse_location(b, l.h.body_len, RECV, &l.fix, &l.ex), 0);
  assert_int_equal(l.fix.odometer_hm, 11);
  assert_int_equal(l.ex.fuel_dl, 22);
  assert_int_equal(l.ex.rec_speed_dkmh, 33);
  assert_int_equal(l.ex.ext_signals, 99);
  assert_int_equal(l.ex.io, 10);
  assert_int_equal(l.ex.analog, 20);
  assert_int_equal(l.ex.signal, 30);
  assert_int_equal(l.ex.satellites, 40);
  assert_int_equal(l.ex.skipped_items, 5); /* 04 05 11 12 13 */
}

/* traccar frames (traccar asserts a valid position); values decoded per the standard. */
static void test_traccar(void **state) {
  (void)state;
  loc l;

  loc_of("loc_tc_west", &l); /* status bit 3: west */
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 1, 10, 50871735, -1255923, 0, 20, 0, 1365756592000LL);
  assert_int_equal(l.fix.odometer_hm, 18);
  assert_int_equal(l.ex.skipped_items, 1);

  loc_of("loc_tc_sw", &l); /* bits 2 and 3: south and west */
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 0, 0x400E, -19591535, -46912186, 0, 0, 0, 1420112577000LL);

  /* 17 vendor items: 0xCC, 0x80-0x8E (OBD), 0xA0 (DTCs). traccar hands this body to its decoder
   * unframed: item 0x87 holds a raw 7E, so on the wire the frame would be cut in two. Body only. */
  uint8_t b[256];
  size_t n = jt808_unhex(
      "00000000800000030158990606ca0fd7000400000000211129111705010400000000cc1438393836303742383130"
      "3230393031363239363830010d8001aa81021388820200858301148401aa8502189b8601338702007e880133890114"
      "8a0200998b1131323334353637383941424344454647488c04000200a88d0200828e0114a00b50353338662c553032"
      "3966",
      b, sizeof b);
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &l.fix, &l.ex), 0);
  check_basics(&l.fix, 0, 0x80000003u, 22583558, 113905623, 4, 0, 0, 1638155825000LL);
  assert_int_equal(l.ex.skipped_items, 17);
  assert_int_equal(l.ex.has, HW_JT808_HAS_ODOMETER | HW_JT808_HAS_SIGNAL);
  assert_int_equal(l.ex.signal, 13);

  loc_of("loc_tc_vendor", &l); /* 0xE3, 0xD5, 0xE5, 0xE7, 0xE8 */
  assert_int_equal(l.rc, 0);
  assert_int_equal(l.fix.odometer_hm, 3880);
  assert_int_equal(l.ex.signal, 20);
  assert_int_equal(l.ex.satellites, 0);
  assert_true(l.ex.has & HW_JT808_HAS_SATELLITES);
  assert_int_equal(l.ex.skipped_items, 5);

  loc_of("loc_tc_fuel", &l);
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 0, 0xC2, 22642600, 114032984, 128, 0, 8, 1439853681000LL);
  assert_int_equal(l.fix.odometer_hm, 757);

  loc_of("loc_fy", &l); /* fakeyanss/jt808-server-go case2 */
  assert_int_equal(l.rc, 0);
  check_basics(&l.fix, 0, 0x00020803, 30242718, 120111154, 60, 0, 143, 1674629518000LL);
  assert_int_equal(l.ex.has, 0);
}

/* A 28-byte body in the go-jt808 style, with coordinates in order, for edits. */
static size_t base_body(uint8_t *b) {
  return jt808_unhex("00000400 00000802 0263 3df7 07203b7e 0138 0003 0063 241001235959", b, 64);
}

static void test_ranges_and_time(void **state) {
  (void)state;
  uint8_t b[64];
  hw_fix f;
  size_t n = base_body(b);

  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), 0);
  assert_int_equal(f.lat_e6, 40058359);
  assert_int_equal(f.lon_e6, 119552894);

  /* latitude 90.000000 is valid, 90.000001 is not; longitude 180 likewise */
  static const uint8_t lat90[] = {0x05, 0x5D, 0x4A, 0x80}, lat90p[] = {0x05, 0x5D, 0x4A, 0x81};
  static const uint8_t lon180[] = {0x0A, 0xBA, 0x95, 0x00}, lon180p[] = {0x0A, 0xBA, 0x95, 0x01};
  memcpy(b + 8, lat90, 4);
  memcpy(b + 12, lon180, 4);
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), 0);
  assert_int_equal(f.lat_e6, 90000000);
  assert_int_equal(f.lon_e6, 180000000);
  b[7] |= 0x0C; /* south, west */
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), 0);
  assert_int_equal(f.lat_e6, -90000000);
  assert_int_equal(f.lon_e6, -180000000);
  memcpy(b + 8, lat90p, 4);
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), -ERANGE);
  memcpy(b + 8, lat90, 4);
  memcpy(b + 12, lon180p, 4);
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), -ERANGE);
  memset(b + 8, 0xFF, 8);
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), -ERANGE);

  /* altitude is unsigned: 0xFFFF is 65535 m, not -1 */
  n = base_body(b);
  b[16] = b[17] = 0xFF;
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), 0);
  assert_int_equal(f.alt_m, 65535);

  /* direction 360 means north; above it is not a direction */
  b[20] = 0x01, b[21] = 0x68;
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), 0);
  assert_int_equal(f.heading, 0);
  b[21] = 0x69;
  assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), -ERANGE);

  /* time: bad nibble, month 13, 30 February, 29 February of a common and a leap year, hour 24,
   * minute 60, second 60, all zeros */
  static const struct {
    const char *bcd;
    int rc;
    int64_t ms;
  } t[] = {
      {"24100123595A", -EINVAL, 0}, {"241301000000", -EINVAL, 0}, {"240230000000", -EINVAL, 0},
      {"230229000000", -EINVAL, 0}, {"240229000000", 0, 1709136000000LL},
      {"241001240000", -EINVAL, 0}, {"241001236000", -EINVAL, 0}, {"241001235960", -EINVAL, 0},
      {"000000000000", -EINVAL, 0}, {"000101000000", 0, 946656000000LL},
      {"991231235959", 0, 4102415999000LL},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    n = base_body(b);
    jt808_unhex(t[i].bcd, b + 22, 6);
    assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, NULL), t[i].rc);
    if (t[i].rc == 0)
      assert_int_equal(f.ts_ms, t[i].ms);
  }
}

static void test_truncation_and_items(void **state) {
  (void)state;
  loc l;
  hw_fix f;
  hw_jt808_loc_extra ex;
  uint8_t b[HW_JT808_BODY_MAX + 8];

  memset(b, 0, sizeof b);
  for (size_t n = 0; n < HW_JT808_LOCATION_MIN; n++)
    assert_int_equal(hw_jt808_parse_location(b, n, RECV, &f, &ex), -EBADMSG);

  /* Every cut of the items of a report: valid exactly at item boundaries, else -EBADMSG. */
  loc_of("loc_sc_items", &l);
  size_t full = l.h.body_len, next = HW_JT808_LOCATION_MIN;
  for (size_t n = HW_JT808_LOCATION_MIN; n <= full; n++) {
    int rc = hw_jt808_parse_location(l.body, n, RECV, &f, &ex);
    if (n == next) {
      assert_int_equal(rc, 0);
      if (n < full)
        next = n + 2 + l.body[n + 1];
    } else {
      assert_int_equal(rc, -EBADMSG);
    }
  }
  assert_int_equal(next, full);

  /* A known id with an unexpected length is skipped, not misread. */
  size_t n = base_body(b);
  memcpy(b + n, "\x01\x02\x00\x05" "\x30\x02\x00\x09" "\x31\x01\x07", 11);
  assert_int_equal(hw_jt808_parse_location(b, n + 11, RECV, &f, &ex), 0);
  assert_int_equal(ex.has, HW_JT808_HAS_SATELLITES);
  assert_int_equal(ex.skipped_items, 2);
  assert_int_equal(f.odometer_hm, 0);

  /* The longest item, 255 bytes, ending exactly at the body's end; one more byte runs past. */
  n = base_body(b);
  b[n] = 0xE0;
  b[n + 1] = 0xFF;
  memset(b + n + 2, 0x7E, 255);
  assert_int_equal(hw_jt808_parse_location(b, n + 257, RECV, &f, &ex), 0);
  assert_int_equal(hw_jt808_parse_location(b, n + 256, RECV, &f, &ex), -EBADMSG);
  /* an item header with no room for its length byte */
  assert_int_equal(hw_jt808_parse_location(b, n + 1, RECV, &f, &ex), -EBADMSG);
}

/* ---- 0x0704 ------------------------------------------------------------------------------ */

typedef struct batch_out {
  int rcs[16];
  hw_fix fix[16];
  hw_jt808_loc_extra ex[16];
  int n;
  int end_rc;
  uint8_t type;
  uint16_t count;
} batch_out;

static void batch_run(const uint8_t *body, size_t len, batch_out *o) {
  hw_jt808_batch b;
  memset(o, 0, sizeof *o);
  assert_int_equal(hw_jt808_batch_begin(&b, body, len), 0);
  o->type = b.type;
  o->count = b.count;
  for (;;) {
    hw_fix f;
    hw_jt808_loc_extra ex;
    int item_rc = 12345;
    int rc = hw_jt808_batch_next(&b, RECV, &f, &ex, &item_rc);
    if (rc != 1) {
      o->end_rc = rc;
      break;
    }
    assert_true(o->n < 16);
    o->rcs[o->n] = item_rc;
    o->fix[o->n] = f;
    o->ex[o->n] = ex;
    o->n++;
  }
  /* once finished it stays finished */
  hw_fix f;
  int item_rc;
  assert_int_equal(hw_jt808_batch_next(&b, RECV, &f, NULL, &item_rc), 0);
}

static void batch_of(const char *name, batch_out *o) {
  jt808_one one;
  hw_jt808_header h;
  const uint8_t *body;
  assert_int_equal(jt808_deframe(name, &one), 0);
  assert_int_equal(hw_jt808_header_parse(one.frame, one.len, &h, &body), 0);
  assert_int_equal(h.msg_id, HW_JT808_MSG_BATCH);
  batch_run(body, h.body_len, o);
}

static void test_batch(void **state) {
  (void)state;
  batch_out o;

  /* SmallChi JT808_0x0704Test.Test2: two normal reports with their values */
  batch_of("batch_sc", &o);
  assert_int_equal(o.count, 2);
  assert_int_equal(o.type, 0);
  assert_int_equal(o.n, 2);
  assert_int_equal(o.end_rc, 0);
  assert_int_equal(o.rcs[0], 0);
  check_basics(&o.fix[0], 1, 2, 12222222, 132444444, 40, 60, 0, 1531620610000LL);
  assert_int_equal(o.fix[0].odometer_hm, 100);
  assert_int_equal(o.ex[0].fuel_dl, 55);
  assert_int_equal(o.rcs[1], 0);
  check_basics(&o.fix[1], 2, 1, 13333333, 132555555, 41, 54, 120, 1531620630000LL);
  assert_int_equal(o.fix[1].odometer_hm, 96);
  assert_int_equal(o.ex[1].fuel_dl, 66);

  /* hylexus BuiltinMsg0704Test: 3 blind-area items, times 211204082941, 211130171352,
   * 211130171357; video items 0x14-0x18 skipped */
  batch_of("batch_hy", &o);
  assert_int_equal(o.count, 3);
  assert_int_equal(o.type, 1);
  assert_int_equal(o.n, 3);
  assert_int_equal(o.end_rc, 0);
  static const int64_t hy_ts[] = {1638577781000LL, 1638263632000LL, 1638263637000LL};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(o.rcs[i], 0);
    assert_int_equal(o.fix[i].ts_ms, hy_ts[i]);
    assert_int_equal(o.fix[i].lat_e6, 31060368);
    assert_int_equal(o.fix[i].lon_e6, 121414593);
    assert_int_equal(o.fix[i].odometer_hm, 0x00D728AD);
    assert_int_equal(o.ex[i].satellites, 9);
    assert_int_equal(o.ex[i].skipped_items, 5);
  }
  assert_int_equal(o.ex[2].signal, 0x15);

  /* traccar: 8 and 4 blind-area items */
  batch_of("batch_tc", &o);
  assert_int_equal(o.count, 8);
  assert_int_equal(o.type, 1);
  assert_int_equal(o.n, 8);
  for (int i = 0; i < 8; i++)
    assert_int_equal(o.rcs[i], 0);
  check_basics(&o.fix[0], 0, 3, 22639634, 114031952, 370, 0, 1, 1464311184000LL);
  assert_int_equal(o.fix[7].lat_e6, 22640550);
  batch_of("batch_tc2", &o);
  assert_int_equal(o.n, 4);
  assert_int_equal(o.rcs[3], 0);
  assert_int_equal(o.fix[3].alarm, 256);
  assert_int_equal(o.fix[3].ts_ms, 1526301006000LL);

  /* go-jt808: items with swapped coordinates are each invalid, the batch goes on */
  batch_of("batch_go", &o);
  assert_int_equal(o.count, 2);
  assert_int_equal(o.type, 0);
  assert_int_equal(o.n, 2);
  assert_int_equal(o.rcs[0], -ERANGE);
  assert_int_equal(o.rcs[1], -ERANGE);
  batch_of("batch_2019", &o);
  assert_int_equal(o.n, 3);

  /* go-jt808 TestT0x0704Parse: the third item ends in a fuel item of length 1 and a lone byte:
   * that item is invalid, the other two are still decoded */
  batch_of("batch_go_bad", &o);
  assert_int_equal(o.count, 3);
  assert_int_equal(o.type, 1);
  assert_int_equal(o.n, 3);
  assert_int_equal(o.rcs[0], -ERANGE);
  assert_int_equal(o.rcs[1], -ERANGE);
  assert_int_equal(o.rcs[2], -EBADMSG);
  assert_int_equal(o.end_rc, 0);
}

static void test_batch_framing(void **state) {
  (void)state;
  uint8_t b[512], item[64];
  size_t in = base_body(item), n = 0;
  batch_out o;
  hw_jt808_batch bt;

  /* count 3, type 0, one good item, one bad item (time), then the body ends */
  b[n++] = 0, b[n++] = 3, b[n++] = 0;
  b[n++] = 0, b[n++] = (uint8_t)in;
  memcpy(b + n, item, in), n += in;
  b[n++] = 0, b[n++] = (uint8_t)in;
  memcpy(b + n, item, in);
  b[n + 23] = 0x13; /* month 13 */
  n += in;
  batch_run(b, n, &o);
  assert_int_equal(o.n, 2);
  assert_int_equal(o.rcs[0], 0);
  assert_int_equal(o.rcs[1], -EINVAL);
  assert_int_equal(o.end_rc, -EBADMSG);

  /* an item length running past the body */
  b[1] = 2;
  b[3 + 2 + in] = 0x01; /* second length 0x01xx */
  batch_run(b, n, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(o.end_rc, -EBADMSG);

  /* count 1 with more bytes after: they are ignored */
  b[1] = 1;
  batch_run(b, n, &o);
  assert_int_equal(o.n, 1);
  assert_int_equal(o.end_rc, 0);

  /* count 0 */
  b[1] = 0;
  batch_run(b, 3, &o);
  assert_int_equal(o.n, 0);
  assert_int_equal(o.end_rc, 0);

  assert_int_equal(hw_jt808_batch_begin(&bt, b, 2), -EBADMSG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_smallchi),
      cmocka_unit_test(test_smallchi_bodies),
      cmocka_unit_test(test_hylexus_2019),
      cmocka_unit_test(test_go_swapped_coordinates),
      cmocka_unit_test(test_traccar),
      cmocka_unit_test(test_ranges_and_time),
      cmocka_unit_test(test_truncation_and_items),
      cmocka_unit_test(test_batch),
      cmocka_unit_test(test_batch_framing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
