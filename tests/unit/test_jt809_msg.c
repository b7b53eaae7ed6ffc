/* The JT/T 809 header, link messages, dynamic vehicle data, positions and interaction bodies:
 * values the public suites assert (each body's source named), real frames decoded through
 * decryption, every encoder re-creating the suite's bytes, and hostile bodies (cut anywhere,
 * count fields larger than the body) giving clear error codes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jt809/jt809_header.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_vehicle.h"
#include "jt809_vectors.h"

#define SCB "SmallChi/JT809: src/JT809.Protocol.Test/"

static uint8_t fbuf[65536];

typedef struct one {
  int n;
  uint8_t frame[4096];
  size_t len;
} one;

static int one_cb(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  one *o = arg;
  assert_int_equal(ev, HW_JT809_FRAME);
  assert_true(len <= sizeof o->frame);
  memcpy(o->frame, data, len);
  o->len = len;
  o->n++;
  return 0;
}

/* Deframes vector `name` and opens it with its edition and cipher. */
static void open_vector(const char *name, one *o, hw_jt809_header *h, const uint8_t **body,
                        size_t *blen) {
  static uint8_t wire[8192];
  const jt809_vector *v = jt809_vector_get(name);
  size_t n = jt809_unhex(v->hex, wire, sizeof wire);
  hw_jt809_deframer d;
  memset(o, 0, sizeof *o);
  assert_int_equal(hw_jt809_deframer_init(&d, fbuf, sizeof fbuf), 0);
  assert_int_equal(hw_jt809_deframer_feed(&d, wire, n, one_cb, o), 0);
  assert_int_equal(o->n, 1);
  assert_int_equal(hw_jt809_open(o->frame, o->len, v->is_2019,
                                 v->cipher ? &jt809_ciphers[v->cipher] : NULL, h, body, blen),
                   0);
  assert_int_equal(h->msg_len, o->len + 4);
}

static size_t unhex(const char *hex, uint8_t *out) { return jt809_unhex(hex, out, 4096); }

static void test_login(void **state) {
  (void)state;
  one o;
  hw_jt809_header h;
  const uint8_t *b;
  size_t bl, n;
  hw_jt809_login m;
  uint8_t out[256], want[256];

  /* SC JT809Packages/JT809_0x1001PackageTest.cs Test2 and JT809_0x1001EncryptPackageTest.cs Test2 */
  for (int enc = 0; enc < 2; enc++) {
    open_vector(enc ? "login_2011_enc" : "login_2011", &o, &h, &b, &bl);
    assert_int_equal(h.msg_len, 72);
    assert_int_equal(h.sn, 133);
    assert_int_equal(h.msg_id, HW_JT809_UP_CONNECT_REQ);
    assert_int_equal(h.center_id, 20180920);
    assert_int_equal(h.key, enc ? 256178 : 9999);
    assert_int_equal(h.encrypted, enc);
    assert_int_equal(h.version[0], 1);
    assert_int_equal(h.header_len, 22);
    assert_int_equal(hw_jt809_parse_login(b, bl, 0, &m), 0);
    assert_int_equal(m.user_id, 20180920);
    assert_int_equal(m.password_len, 8);
    assert_memory_equal(m.password, "20180920", 8);
    assert_string_equal(m.down_ip, "127.0.0.1");
    assert_int_equal(m.down_port, 809);
  }
  /* encrypted frame without keys */
  {
    static uint8_t wire[256];
    size_t wn = jt809_unhex(jt809_vector_get("login_2011_enc")->hex, wire, sizeof wire);
    hw_jt809_deframer d;
    memset(&o, 0, sizeof o);
    assert_int_equal(hw_jt809_deframer_init(&d, fbuf, sizeof fbuf), 0);
    assert_int_equal(hw_jt809_deframer_feed(&d, wire, wn, one_cb, &o), 0);
    assert_int_equal(hw_jt809_open(o.frame, o.len, 0, NULL, &h, &b, &bl), -ENOKEY);
    /* read with the wrong edition: 2019 takes 8 body bytes as the time, the rest still fits */
    assert_int_equal(hw_jt809_header_parse(o.frame, o.len, 1, &h, &b, &bl), 0);
    assert_int_equal(bl, 46 - 8);
    assert_int_equal(hw_jt809_header_parse(o.frame, 21, 0, &h, &b, &bl), -EPROTO);
    o.frame[17] = 2; /* encrypt flag neither 0 nor 1 */
    assert_int_equal(hw_jt809_header_parse(o.frame, o.len, 0, &h, &b, &bl), -EPROTO);
  }
  /* 2019 body: SC JT809MessageBody/JT809_0x1001Test.cs (2019 tests): centre id 44555555 */
  n = unhex("0133EFB8323031383039323002A7DD233132372E302E302E31000000000000000000000000000000000000"
            "00000000000329", want);
  assert_int_equal(hw_jt809_parse_login(want, n, 1, &m), 0);
  assert_int_equal(m.center_id, 44555555);
  assert_string_equal(m.down_ip, "127.0.0.1");
  assert_int_equal(m.down_port, 809);
  assert_int_equal(hw_jt809_encode_login(&m, 1, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  assert_int_equal(hw_jt809_encode_login(&m, 1, out, n - 1, &bl), -ENOSPC);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_login(want, k, 1, &m), -EBADMSG);
  for (size_t k = 0; k < 46; k++)
    assert_int_equal(hw_jt809_parse_login(want, k, 0, &m), -EBADMSG);

  /* 0x1002: SC JT809MessageBody/JT809_0x1002Test.cs: 00 000000D4B8 = ok, 54456 */
  uint8_t res;
  uint32_t code;
  n = unhex("000000D4B8", want);
  assert_int_equal(hw_jt809_parse_login_rsp(want, n, &res, &code), 0);
  assert_int_equal(res, HW_JT809_LOGIN_OK);
  assert_int_equal(code, 54456);
  assert_int_equal(hw_jt809_encode_login_rsp(HW_JT809_LOGIN_OK, 54456, out, sizeof out, &bl), 0);
  assert_int_equal(bl, 5);
  assert_memory_equal(out, want, 5);
  assert_int_equal(hw_jt809_parse_login_rsp(want, 4, &res, &code), -EBADMSG);

  /* 0x1003: SC JT809MessageBody/JT809_0x1003Test.cs */
  n = unhex("0133EFB83230313830393230", want);
  assert_int_equal(hw_jt809_parse_logout(want, n, &m), 0);
  assert_int_equal(m.user_id, 20180920);
  assert_memory_equal(m.password, "20180920", 8);
  assert_int_equal(hw_jt809_encode_logout(&m, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  assert_int_equal(hw_jt809_parse_logout(want, 11, &m), -EBADMSG);
  /* a short password is NUL padded, a long one refused */
  assert_int_equal(hw_jt809_parse_logout(want, n, &m), 0);
  m.password_len = 3;
  assert_int_equal(hw_jt809_encode_logout(&m, out, sizeof out, &bl), 0);
  assert_int_equal(out[7], 0);
  assert_int_equal(hw_jt809_parse_logout(out, bl, &m), 0);
  assert_int_equal(m.password_len, 3);
  m.password_len = 9;
  assert_int_equal(hw_jt809_encode_logout(&m, out, sizeof out, &bl), -EOVERFLOW);

  /* 0x9001 / 0x9003 verify code 45454 = 0000B18E (SC JT809_0x9001Test.cs, JT809_0x9003Test.cs);
   * 0x9002 00, 0x1007 00, 0x9008 01 (JT809_0x9002Test.cs, JT809_0x1007Test.cs, _0x9008Test.cs) */
  n = unhex("0000B18E", want);
  assert_int_equal(hw_jt809_parse_u32(want, n, &code), 0);
  assert_int_equal(code, 45454);
  assert_int_equal(hw_jt809_encode_u32(45454, out, sizeof out, &bl), 0);
  assert_memory_equal(out, want, 4);
  assert_int_equal(hw_jt809_parse_u32(want, 3, &code), -EBADMSG);
  assert_int_equal(hw_jt809_encode_u8(1, out, sizeof out, &bl), 0);
  assert_int_equal(bl, 1);
  assert_int_equal(hw_jt809_parse_u8(out, 1, &res), 0);
  assert_int_equal(res, 1);
  assert_int_equal(hw_jt809_parse_u8(out, 0, &res), -EBADMSG);
  assert_int_equal(hw_jt809_encode_u8(1, out, 0, &bl), -ENOSPC);

  /* the encrypted real 0x1007 (GuoJian001, 2019): one body byte that decrypts to 00 */
  open_vector("gj_1007_enc", &o, &h, &b, &bl);
  assert_int_equal(h.msg_id, HW_JT809_UP_DISCONNECT_INFORM);
  assert_int_equal(h.is_2019, 1);
  assert_int_equal(h.header_len, 30);
  assert_int_equal(h.center_id, 0x052DF12C);
  assert_int_equal(h.encrypted, 1);
  assert_true(h.utc_s > 1735689600 && h.utc_s < 1798761600); /* during 2025-2026 */
  assert_int_equal(bl, 1);
  assert_int_equal(hw_jt809_parse_u8(b, bl, &res), 0);
  assert_int_equal(res, 0);
}

static int p_reg(const uint8_t *b, size_t n) {
  hw_jt809_register r;
  return hw_jt809_parse_register(b, n, &r);
}

static void test_register(void **state) {
  (void)state;
  uint8_t want[512], out[512], data[256];
  size_t n, bl, dl;
  hw_jt809_sub sub;
  hw_jt809_register r;

  /* SC JT809MessageBody/JT809_0x1200Test.cs Test1/Test2 (61 bytes) and Test_2019_1/2 (110) */
  static const char *const hex[2] = {
      "D4C1413132333435000000000000000000000000000112010000003D313131313131313131310031313131"
      "31313131313100313131313131313100000000000000000000000031313131314141323232323232323232"
      "323232",
      "D4C1413132333435000000000000000000000000000112010000006E313131313131313131310031313131"
      "31313131313100313131313131313100000000000000000000000000000000000000000000313233343536"
      "37383900000000000031313131314141000000000000000000000000000000000000000000000032323232"
      "323232323232323200"};
  for (int v = 0; v < 2; v++) {
    n = unhex(hex[v], want);
    assert_int_equal(hw_jt809_parse_sub(want, n, 1, &sub), 0);
    assert_string_equal(sub.plate, "\xE7\xB2\xA4" "A12345"); /* 粤A12345 */
    assert_int_equal(sub.plate_colour, 1);
    assert_int_equal(sub.data_type, HW_JT809_EXG_REGISTER);
    assert_int_equal(sub.data_len, v ? 110 : 61);
    assert_int_equal(hw_jt809_parse_register(sub.data, sub.data_len, &r), 0);
    assert_int_equal(r.layout, v ? 110 : 61);
    assert_string_equal(r.platform_id, "1111111111");
    assert_string_equal(r.producer_id, "1111111111");
    assert_string_equal(r.terminal_id, "11111AA");
    assert_string_equal(r.model, "11111111");
    assert_string_equal(r.sim, "222222222222");
    assert_string_equal(r.imei, v ? "123456789" : "");
    /* no other length is a layout (a 61-byte body cut to 49 is one) */
    for (size_t k = 0; k < sub.data_len; k++)
      assert_int_equal(p_reg(sub.data, k), k == 49 || k == 61 ? 0 : -EBADMSG);
    /* and back */
    assert_int_equal(hw_jt809_encode_register(&r, data, sizeof data, &dl), 0);
    assert_int_equal(hw_jt809_encode_sub(1, sub.plate, 1, HW_JT809_EXG_REGISTER, data, dl, out,
                                         sizeof out, &bl),
                     0);
    assert_int_equal(bl, n);
    assert_memory_equal(out, want, n);
    /* the wrapper cut anywhere, or announcing more data than follows */
    for (size_t k = 0; k < n; k++)
      assert_int_equal(hw_jt809_parse_sub(want, k, 1, &sub), -EBADMSG);
    want[27] += 1;
    assert_int_equal(hw_jt809_parse_sub(want, n, 1, &sub), -EBADMSG);
    want[24] = 0xFF;
    assert_int_equal(hw_jt809_parse_sub(want, n, 1, &sub), -EBADMSG);
  }
  /* a plate that is not GBK */
  n = unhex(hex[0], want);
  want[0] = 0xFF;
  want[1] = 0xFF;
  assert_int_equal(hw_jt809_parse_sub(want, n, 1, &sub), -EILSEQ);
  /* a plate too long for the field */
  assert_int_equal(hw_jt809_encode_sub(1, "0123456789012345678901", 1, 0x1201, NULL, 0, out,
                                       sizeof out, &bl),
                   -EOVERFLOW);

  /* whole frames: 49 bytes (SC JT809SubMessageBody/JT809_0x1200_0x1201Test.cs Test3, 2011) and
   * 110 bytes (SC AnalyzeTest.cs, 2019 header with a 5E02 escape in its time) */
  one o;
  hw_jt809_header h;
  const uint8_t *b;
  open_vector("reg49_2011", &o, &h, &b, &bl);
  assert_int_equal(h.msg_id, HW_JT809_UP_EXG_MSG);
  assert_int_equal(hw_jt809_parse_sub(b, bl, hw_jt809_has_vehicle(h.msg_id, 0), &sub), 0);
  assert_string_equal(sub.plate, "\xE4\xBA\xAC" "HEN317"); /* 京HEN317 */
  assert_int_equal(sub.plate_colour, 4);
  assert_int_equal(sub.data_len, 49);
  assert_int_equal(hw_jt809_parse_register(sub.data, sub.data_len, &r), 0);
  assert_int_equal(r.layout, 49);
  assert_string_equal(r.platform_id, "1011"); /* NUL-padded on the left in that frame */
  assert_string_equal(r.producer_id, "70111");
  assert_string_equal(r.sim, "120299553575");
  open_vector("reg110_2019", &o, &h, &b, &bl);
  assert_int_equal(h.utc_s, 0x5EA507B8);
  assert_int_equal(hw_jt809_parse_sub(b, bl, 1, &sub), 0);
  assert_int_equal(hw_jt809_parse_register(sub.data, sub.data_len, &r), 0);
  assert_string_equal(r.imei, "123456789");
}

/* 2012-07-19 15:15:15 GMT+8 as UTC ms. */
#define T_2012_07_19_071515Z 1342682115000LL

static void test_positions_2011(void **state) {
  (void)state;
  uint8_t want[512], out[512];
  size_t n, bl;
  hw_jt809_gnss g;
  hw_fix f;

  /* SC JT809SubMessageBody/JT809_0x1200_0x1202Test.cs Test1/Test2 */
  n = unhex("00130707DC0F0F0F07EF4D80017018400032003300000096002D002D0000000300000101", want);
  assert_int_equal(n, HW_JT809_GNSS_2011);
  assert_int_equal(hw_jt809_parse_position(want, n, 0, &g), 0);
  assert_int_equal(g.day, 19);
  assert_int_equal(g.month, 7);
  assert_int_equal(g.year, 2012);
  assert_int_equal(g.hour, 15);
  assert_int_equal(g.lon, 133123456);
  assert_int_equal(g.lat, 24123456);
  assert_int_equal(g.vec1, 50);
  assert_int_equal(g.vec2, 51);
  assert_int_equal(g.vec3, 150);
  assert_int_equal(g.direction, 45);
  assert_int_equal(g.altitude, 45);
  assert_int_equal(g.state, 3);
  assert_int_equal(g.alarm, 257);
  assert_int_equal(hw_jt809_encode_gnss(&g, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_position(want, k, 0, &g), -EBADMSG);

  assert_int_equal(hw_jt809_parse_position(want, n, 0, &g), 0);
  assert_int_equal(hw_jt809_gnss_to_fix(&g, 99, &f), 0);
  assert_int_equal(f.source, HW_SRC_JT809);
  assert_int_equal(f.ts_ms, T_2012_07_19_071515Z);
  assert_int_equal(f.recv_ms, 99);
  assert_int_equal(f.lat_e6, 24123456);
  assert_int_equal(f.lon_e6, 133123456);
  assert_int_equal(f.speed_dkmh, 500);   /* vec1, the satellite speed, not vec2 */
  assert_int_equal(f.odometer_hm, 1500); /* vec3 km */
  assert_int_equal(f.heading, 45);
  assert_int_equal(f.alt_m, 45);
  assert_int_equal(f.status, 3);
  assert_int_equal(f.alarm, 257);

  /* JT/T 808 meaning of status bits 2/3: south and west */
  hw_jt809_gnss s = g;
  s.state |= 0xC;
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), 0);
  assert_int_equal(f.lat_e6, -24123456);
  assert_int_equal(f.lon_e6, -133123456);
  /* out of range values */
  s = g;
  s.lat = 90000001;
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), -ERANGE);
  s = g;
  s.lon = 180000001;
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), -ERANGE);
  s = g;
  s.direction = 361;
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), -ERANGE);
  s.direction = 360;
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), 0);
  assert_int_equal(f.heading, 0);
  static const uint8_t bad[][6] = {{13, 1, 0, 0, 0, 0}, {0, 1, 0, 0, 0, 0}, {2, 30, 0, 0, 0, 0},
                                   {2, 29, 0, 0, 0, 0}, {1, 1, 24, 0, 0, 0}, {1, 1, 0, 60, 0, 0},
                                   {1, 1, 0, 0, 60, 0}, {4, 31, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 0}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    s = g;
    s.year = 2013; /* not a leap year: 29 February is invalid too */
    s.month = bad[i][0];
    s.day = bad[i][1];
    s.hour = bad[i][2];
    s.minute = bad[i][3];
    s.second = bad[i][4];
    assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), -EINVAL);
  }
  s = g;
  s.year = 1999;
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), -EINVAL);
  s.year = 2012;
  s.month = 2;
  s.day = 29;
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), 0);
  s.vec3 = UINT32_MAX; /* saturates, never wraps */
  assert_int_equal(hw_jt809_gnss_to_fix(&s, 0, &f), 0);
  assert_int_equal(f.odometer_hm, UINT32_MAX);

  /* 0x1203: SC JT809SubMessageBody/JT809_0x1200_0x1203Test.cs Test1/Test2 */
  n = unhex("0300130707DC0F0F0F07EF4D80017018400032003300000096002D002D000000030000010100130707DC"
            "10101007EF4D80017018400032003300000096002D002D000000030000010100130707DC11111107EF4D"
            "80017018400032003300000096002D002D0000000300000101",
            want);
  hw_jt809_batch bt;
  hw_jt809_gnss all[3];
  int rc, k = 0;
  assert_int_equal(hw_jt809_batch_begin(&bt, want, n, 0), 0);
  assert_int_equal(bt.count, 3);
  while ((rc = hw_jt809_batch_next(&bt, &all[k])) == 1) {
    assert_int_equal(all[k].hour, 15 + k);
    assert_int_equal(all[k].minute, 15 + k);
    assert_int_equal(hw_jt809_gnss_to_fix(&all[k], 0, &f), 0);
    assert_int_equal(f.ts_ms, T_2012_07_19_071515Z + k * 3661000LL);
    k++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(k, 3);
  assert_int_equal(hw_jt809_encode_batch(all, 3, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  /* a count larger than the body: the records there stand, then -EBADMSG */
  want[0] = 5;
  assert_int_equal(hw_jt809_batch_begin(&bt, want, n, 0), 0);
  k = 0;
  while ((rc = hw_jt809_batch_next(&bt, &g)) == 1)
    k++;
  assert_int_equal(rc, -EBADMSG);
  assert_int_equal(k, 3);
  assert_int_equal(hw_jt809_batch_next(&bt, &g), 0); /* stays finished */
  /* cut inside the second record */
  assert_int_equal(hw_jt809_batch_begin(&bt, want, 1 + 36 + 20, 0), 0);
  assert_int_equal(hw_jt809_batch_next(&bt, &g), 1);
  assert_int_equal(hw_jt809_batch_next(&bt, &g), -EBADMSG);
  assert_int_equal(hw_jt809_batch_begin(&bt, want, 0, 0), -EBADMSG);
  want[0] = 0;
  assert_int_equal(hw_jt809_batch_begin(&bt, want, 1, 0), 0);
  assert_int_equal(hw_jt809_batch_next(&bt, &g), 0);

  /* a whole 2011 0x1200 frame around that suite's record, plain and encrypted, split anywhere */
  uint8_t data[64], body[128], wire[512];
  size_t dl, wn;
  n = unhex("00130707DC0F0F0F07EF4D80017018400032003300000096002D002D0000000300000101", data);
  assert_int_equal(hw_jt809_encode_sub(1, "\xE7\xB2\xA4" "B5A55D", 2, HW_JT809_EXG_REAL_LOCATION,
                                       data, n, body, sizeof body, &dl),
                   0);
  for (int enc = 0; enc < 2; enc++) {
    hw_jt809_header h = {.sn = 1, .msg_id = 0x1200, .center_id = 7, .encrypted = (uint8_t)enc,
                         .key = 0x5B5D5A5E};
    assert_int_equal(hw_jt809_build(wire, sizeof wire, &wn, &h, &jt809_ciphers[C_SC], body, dl),
                     0);
    for (size_t at = 0; at <= wn; at++) {
      one o = {0};
      hw_jt809_deframer d;
      hw_jt809_header h2;
      const uint8_t *b;
      size_t bl2;
      hw_jt809_sub sub;
      assert_int_equal(hw_jt809_deframer_init(&d, fbuf, 256), 0);
      d.strict = 1;
      assert_int_equal(hw_jt809_deframer_feed(&d, wire, at, one_cb, &o), 0);
      assert_int_equal(hw_jt809_deframer_feed(&d, wire + at, wn - at, one_cb, &o), 0);
      assert_int_equal(o.n, 1);
      assert_int_equal(hw_jt809_open(o.frame, o.len, 0, &jt809_ciphers[C_SC], &h2, &b, &bl2), 0);
      assert_int_equal(h2.encrypted, enc);
      assert_int_equal(bl2, dl);
      assert_memory_equal(b, body, dl);
      assert_int_equal(hw_jt809_parse_sub(b, bl2, 1, &sub), 0);
      assert_string_equal(sub.plate, "\xE7\xB2\xA4" "B5A55D");
      assert_int_equal(hw_jt809_parse_position(sub.data, sub.data_len, 0, &g), 0);
      assert_int_equal(hw_jt809_gnss_to_fix(&g, 0, &f), 0);
      assert_int_equal(f.ts_ms, T_2012_07_19_071515Z);
    }
  }
}

static void test_positions_2019(void **state) {
  (void)state;
  uint8_t want[512], out[512];
  size_t n, bl;
  hw_jt809_gnss g;
  hw_fix f;

  /* SC JT809SubMessageBody/JT809_0x1200_0x1202Test.cs Test_2019_4: a JT/T 808-2019 0x0200 body
   * inside: alarm 1, status 2, lat 12222222, lng 132444444, speed 60, 2018-07-15 10:10:10,
   * mileage item 100, oil 55; platforms 1..3 with alarms 1..3 */
  n = unhex("0100000026000000010000000200BA7F0E07E4F11C0028003C0000180715101010010400000064020200"
            "37313131313131313131313100000001323232323232323232323200000002333333333333333333333300"
            "000003",
            want);
  assert_int_equal(hw_jt809_parse_position(want, n, 1, &g), 0);
  assert_int_equal(g.encrypted, 1);
  assert_int_equal(g.loc_len, 38);
  assert_int_equal(g.inner_2011, 0);
  assert_string_equal(g.platform_id[0], "11111111111");
  assert_string_equal(g.platform_id[1], "22222222222");
  assert_string_equal(g.platform_id[2], "33333333333");
  assert_int_equal(g.platform_alarm[0], 1);
  assert_int_equal(g.platform_alarm[2], 3);
  assert_int_equal(hw_jt809_gnss_to_fix(&g, 5, &f), 0);
  assert_int_equal(f.source, HW_SRC_JT809);
  assert_int_equal(f.alarm, 1);
  assert_int_equal(f.status, 2);
  assert_int_equal(f.lat_e6, 12222222);
  assert_int_equal(f.lon_e6, 132444444);
  assert_int_equal(f.speed_dkmh, 60);
  assert_int_equal(f.odometer_hm, 100);
  assert_int_equal(f.ts_ms, 1531620610000LL); /* 2018-07-15 02:10:10Z */
  assert_int_equal(hw_jt809_encode_gnss(&g, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_position(want, k, 1, &g), -EBADMSG);
  /* an inner length larger than the body */
  want[1] = 0x80;
  assert_int_equal(hw_jt809_parse_position(want, n, 1, &g), -EBADMSG);

  /* 0x1203 2019: SC JT809_0x1200_0x1203Test.cs Test_2019_2: two records, empty inner data */
  n = unhex("0201000000003131313131313131313131000000013232323232323232323232000000023333333333"
            "333333333333000000030100000000313131313131313131313100000001323232323232323232323200"
            "000002333333333333333333333300000003",
            want);
  hw_jt809_batch bt;
  int rc, k = 0;
  assert_int_equal(hw_jt809_batch_begin(&bt, want, n, 1), 0);
  while ((rc = hw_jt809_batch_next(&bt, &g)) == 1) {
    assert_int_equal(g.loc_len, 0);
    assert_string_equal(g.platform_id[1], "22222222222");
    assert_int_equal(hw_jt809_gnss_to_fix(&g, 0, &f), -EBADMSG); /* no position in it */
    k++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(k, 2);

  /* Real 2019 frames. SC Test_2019_6: the inner data is the 2011 record without its encrypt
   * byte (35 bytes): 2025-09-29 17:54:43 +8, lon 112414833, lat 34674454, mileage 28031 km */
  one o;
  hw_jt809_header h;
  const uint8_t *b;
  hw_jt809_sub sub;
  open_vector("pos_2019", &o, &h, &b, &bl);
  assert_int_equal(h.center_id, 10000007);
  assert_int_equal(hw_jt809_parse_sub(b, bl, 1, &sub), 0);
  assert_string_equal(sub.plate, "\xE6\xB5\x8B\xE8\xAF\x95\xE6\x8A\xA5\xE8\xAD\xA6"); /* 测试报警 */
  assert_int_equal(sub.data_type, HW_JT809_EXG_REAL_LOCATION);
  assert_int_equal(hw_jt809_parse_position(sub.data, sub.data_len, 1, &g), 0);
  assert_int_equal(g.inner_2011, 1);
  assert_int_equal(hw_jt809_gnss_to_fix(&g, 0, &f), 0);
  assert_int_equal(f.ts_ms, 1759139683000LL); /* 2025-09-29 09:54:43Z */
  assert_int_equal(f.lon_e6, 112414833);
  assert_int_equal(f.lat_e6, 34674454);
  assert_int_equal(f.odometer_hm, 280310);
  assert_int_equal(f.heading, 123);
  assert_int_equal(f.alt_m, 176);
  assert_int_equal(f.status, 0x00040003);
  assert_int_equal(hw_jt809_encode_gnss(&g, out, sizeof out, &bl), 0);
  assert_int_equal(bl, sub.data_len);
  assert_memory_equal(out, sub.data, bl);

  /* GuoJian001 (encrypted, escaping nothing): positions inside China after decryption; the
   * first has a stray byte after its last 0x0200 item */
  static const char *const gj[] = {"gj_1202_enc", "gj_1202b_enc"};
  for (int i = 0; i < 2; i++) {
    open_vector(gj[i], &o, &h, &b, &bl);
    assert_int_equal(h.encrypted, 1);
    assert_int_equal(hw_jt809_parse_sub(b, bl, 1, &sub), 0);
    assert_int_equal(sub.data_type, HW_JT809_EXG_REAL_LOCATION);
    assert_int_equal(sub.data + sub.data_len, b + bl); /* the decrypted body adds up */
    assert_true(sub.plate_colour == 2);
    assert_true((unsigned char)sub.plate[0] >= 0xE4); /* a CJK province character */
    assert_int_equal(hw_jt809_parse_position(sub.data, sub.data_len, 1, &g), 0);
    assert_int_equal(g.inner_2011, 0);
    assert_int_equal(hw_jt809_gnss_to_fix(&g, 0, &f), 0);
    assert_true(f.lat_e6 > 18000000 && f.lat_e6 < 54000000);
    assert_true(f.lon_e6 > 73000000 && f.lon_e6 < 135000000);
    assert_true(f.ts_ms > 1735689600000LL && f.ts_ms < 1767225600000LL); /* in 2025 */
  }
  assert_int_equal(f.odometer_hm, UINT32_MAX); /* item 0x01 FFFFFFFF as sent */
}

static void test_interaction(void **state) {
  (void)state;
  uint8_t want[512], out[512], txt[256];
  size_t n, bl;
  char s[256];

  /* 0x1301 2011 and 2019: SC JT809SubMessageBody/JT809_0x1300_0x1301Test.cs */
  hw_jt809_answer a;
  n = unhex("01313131000000000000000000000004D200000006323268613232", want);
  assert_int_equal(hw_jt809_parse_answer(want, n, 0, &a), 0);
  assert_int_equal(a.object_type, 1);
  assert_string_equal(a.object_id, "111");
  assert_int_equal(a.info_id, 1234);
  assert_int_equal(a.info_len, 6);
  assert_memory_equal(a.info, "22ha22", 6);
  assert_int_equal(hw_jt809_encode_answer(&a, 0, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_answer(want, k, 0, &a), -EBADMSG);
  n = unhex("01736D616C6C636869000000000000000031323334353637383930310000000000000000003131310000"
            "000000000000000000000000000000006F0000006300000006323268613232",
            want);
  assert_int_equal(hw_jt809_parse_answer(want, n, 1, &a), 0);
  assert_string_equal(a.responder, "smallchi");
  assert_string_equal(a.responder_tel, "12345678901");
  assert_string_equal(a.object_id, "111");
  assert_int_equal(a.src_data_type, 111);
  assert_int_equal(a.src_sn, 99);
  assert_memory_equal(a.info, "22ha22", 6);
  assert_int_equal(hw_jt809_encode_answer(&a, 1, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_answer(want, k, 1, &a), -EBADMSG);
  want[n - 7] = 0x07; /* info length 7 with 6 bytes left */
  assert_int_equal(hw_jt809_parse_answer(want, n, 1, &a), -EBADMSG);
  want[n - 10] = 0xFF; /* and 0xFF000007 */
  assert_int_equal(hw_jt809_parse_answer(want, n, 1, &a), -EBADMSG);
  /* the 0x1300 wrapper: SC JT809MessageBody/JT809_0x1300Test.cs */
  hw_jt809_sub sub;
  n = unhex("13010000001B01313131000000000000000000000004D200000006323268613232", want);
  assert_int_equal(hw_jt809_parse_sub(want, n, hw_jt809_has_vehicle(0x1300, 0), &sub), 0);
  assert_int_equal(sub.data_type, HW_JT809_PLATFORM_QUERY_ACK);
  assert_int_equal(sub.data_len, 27);

  /* 0x9301 2019: SC JT809SubMessageBody/JT809_0x9300_0x9301Test.cs (2019) */
  hw_jt809_query q;
  n = unhex("02736D616C6C6368690000000000000000000000000000000D10000000057265706C79", want);
  assert_int_equal(hw_jt809_parse_query(want, n, 0x9301, 1, &q), 0);
  assert_int_equal(q.object_type, 2);
  assert_string_equal(q.object_id, "smallchi");
  assert_int_equal(q.info_id, 3344);
  assert_memory_equal(q.info, "reply", 5);
  assert_int_equal(hw_jt809_encode_query(&q, 0x9301, 1, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_query(want, k, 0x9301, 1, &q), -EBADMSG);
  /* 2011 0x9301 in the standard's layout (object type, id [12], ...): our own round trip */
  assert_int_equal(hw_jt809_parse_query(want, n, 0x9301, 1, &q), 0);
  q.answer_time = 0;
  assert_int_equal(hw_jt809_encode_query(&q, 0x9301, 0, out, sizeof out, &bl), 0);
  assert_int_equal(bl, 1 + 12 + 4 + 4 + 5);
  hw_jt809_query q2;
  assert_int_equal(hw_jt809_parse_query(out, bl, 0x9301, 0, &q2), 0);
  assert_string_equal(q2.object_id, "smallchi");
  assert_int_equal(q2.info_id, 3344);
  /* 0x9302: SC JT809SubMessageBody/JT809_0x9300_0x9302Test.cs: GBK text 下级平台所属单一平台 */
  n = unhex("00616664617366330000000000000004D200000014CFC2BCB6C6BDCCA8CBF9CAF4B5A5D2BBC6BDCCA8",
            want);
  assert_int_equal(hw_jt809_parse_query(want, n, 0x9302, 1, &q), 0);
  assert_string_equal(q.object_id, "afdasf3");
  assert_int_equal(q.info_id, 1234);
  assert_int_equal(q.info_len, 20);
  assert_int_equal(hw_jt809_text(q.info, q.info_len, s, sizeof s), 0);
  assert_string_equal(s, "\xE4\xB8\x8B\xE7\xBA\xA7\xE5\xB9\xB3\xE5\x8F\xB0\xE6\x89\x80\xE5\xB1\x9E"
                         "\xE5\x8D\x95\xE4\xB8\x80\xE5\xB9\xB3\xE5\x8F\xB0");
  assert_int_equal(hw_jt809_encode_query(&q, 0x9302, 1, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  /* real 0x9301 (GuoJian001), plain and encrypted: a plate as object id, a GBK question */
  static const char *const gj[] = {"gj_9301", "gj_9301_enc"};
  for (int i = 0; i < 2; i++) {
    one o;
    hw_jt809_header h;
    const uint8_t *b;
    open_vector(gj[i], &o, &h, &b, &bl);
    assert_int_equal(h.msg_id, HW_JT809_DOWN_PLATFORM_MSG);
    assert_int_equal(hw_jt809_parse_sub(b, bl, hw_jt809_has_vehicle(h.msg_id, 1), &sub), 0);
    assert_int_equal(sub.data_type, HW_JT809_PLATFORM_QUERY);
    assert_int_equal(sub.data + sub.data_len, b + bl);
    assert_int_equal(hw_jt809_parse_query(sub.data, sub.data_len, 0x9301, 1, &q), 0);
    assert_int_equal(q.object_type, 2);
    assert_memory_equal(q.object_id, "\xE6\xB5\x8B" "B01844", 9); /* 测B01844 */
    assert_int_equal(q.answer_time, 10);
    assert_int_equal(q.info_id, 0x19);
    assert_int_equal(q.info + q.info_len, sub.data + sub.data_len);
    assert_int_equal(hw_jt809_text(q.info, q.info_len, s, sizeof s), 0);
    assert_true(strlen(s) > 20);
  }
  (void)txt;
}

static void test_alarms(void **state) {
  (void)state;
  uint8_t want[512], out[512];
  size_t n, bl;
  char s[128];
  hw_jt809_alarm a;

  /* 0x1402 2011: SC JT809SubMessageBody/JT809_0x1400_0x1402Test.cs: source 1, type 0x000B,
   * 2018-09-26 00:00 +8, info id 3344, "gfdf454553" */
  n = unhex("01000B000000005BAA5B8000000D100000000A67666466343534353533", want);
  assert_int_equal(hw_jt809_parse_alarm(want, n, 0, &a), 0);
  assert_int_equal(a.warn_src, 1);
  assert_int_equal(a.warn_type, 0x000B);
  assert_int_equal(hw_jt809_utc_ms(a.warn_time), 1537891200000LL);
  assert_int_equal(a.info_id, 3344);
  assert_int_equal(a.info_len, 10);
  assert_memory_equal(a.info, "gfdf454553", 10);
  assert_int_equal(hw_jt809_encode_alarm(&a, 0, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_alarm(want, k, 0, &a), -EBADMSG);
  /* 2019 (same file): platforms, three times, plate 粤A11111 blue */
  n = unhex("3132333435363738393030000B000000005EA06A00000000005EA06A00000000005EA1BB80D4C14131313131"
            "3100000000000000000000000000013132333435363738393030000000000000000A6766646634353435"
            "3533",
            want);
  assert_int_equal(hw_jt809_parse_alarm(want, n, 1, &a), 0);
  assert_string_equal(a.src_platform, "12345678900");
  assert_string_equal(a.dst_platform, "12345678900");
  assert_string_equal(a.plate, "\xE7\xB2\xA4" "A11111");
  assert_int_equal(a.plate_colour, 1);
  assert_int_equal(a.start_time, 0x5EA06A00);
  assert_int_equal(a.end_time, 0x5EA1BB80);
  assert_memory_equal(a.info, "gfdf454553", 10);
  assert_int_equal(hw_jt809_encode_alarm(&a, 1, out, sizeof out, &bl), 0);
  assert_int_equal(bl, n);
  assert_memory_equal(out, want, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_alarm(want, k, 1, &a), -EBADMSG);

  /* whole 2019 frame (same file): 0x1400 without a vehicle in 2019, plate 测A93228, 超时停车 */
  one o;
  hw_jt809_header h;
  const uint8_t *b;
  hw_jt809_sub sub;
  open_vector("alarm_2019", &o, &h, &b, &bl);
  assert_int_equal(hw_jt809_has_vehicle(h.msg_id, 1), 0);
  assert_int_equal(hw_jt809_parse_sub(b, bl, 0, &sub), 0);
  assert_int_equal(sub.data_type, HW_JT809_WARN_ADPT_INFO);
  assert_int_equal(hw_jt809_parse_alarm(sub.data, sub.data_len, 1, &a), 0);
  assert_string_equal(a.src_platform, "JC2020PT088");
  assert_int_equal(a.warn_type, 0xA001);
  assert_string_equal(a.plate, "\xE6\xB5\x8B" "A93228");
  assert_int_equal(a.plate_colour, 2);
  assert_int_equal(hw_jt809_text(a.info, a.info_len, s, sizeof s), 0);
  assert_string_equal(s, "\xE8\xB6\x85\xE6\x97\xB6\xE5\x81\x9C\xE8\xBD\xA6"); /* 超时停车 */
  /* real encrypted 0x1402 (GuoJian001): its times are milliseconds */
  open_vector("gj_1402_enc", &o, &h, &b, &bl);
  assert_int_equal(hw_jt809_parse_sub(b, bl, 0, &sub), 0);
  assert_int_equal(sub.data_type, HW_JT809_WARN_ADPT_INFO);
  assert_int_equal(hw_jt809_parse_alarm(sub.data, sub.data_len, 1, &a), 0);
  assert_string_equal(a.src_platform, "JC2025PT047");
  assert_true(a.warn_time > 100000000000ull);
  int64_t ms = hw_jt809_utc_ms(a.warn_time);
  assert_true(ms > 1735689600000LL && ms < 1767225600000LL);
  assert_int_equal(hw_jt809_utc_ms(1), 1000);
  assert_int_equal(hw_jt809_utc_ms(UINT64_MAX), 0);

  /* 0x9401 in its 2011 frame (SC AnalyzeTest.cs; values of JT809_0x9400_0x9401Test.cs) */
  hw_jt809_supervise sv;
  open_vector("sup_2011", &o, &h, &b, &bl);
  assert_int_equal(h.msg_id, HW_JT809_DOWN_WARN_MSG);
  assert_int_equal(hw_jt809_parse_sub(b, bl, hw_jt809_has_vehicle(h.msg_id, 0), &sub), 0);
  assert_string_equal(sub.plate, "\xE7\xB2\xA4" "A12345");
  assert_int_equal(sub.data_type, HW_JT809_WARN_URGE_TODO);
  assert_int_equal(hw_jt809_parse_supervise(sub.data, sub.data_len, &sv), 0);
  assert_int_equal(sv.warn_src, 1);
  assert_int_equal(sv.warn_type, 2);
  assert_int_equal(hw_jt809_utc_ms(sv.warn_time), 1538015040000LL); /* 2018-09-27 10:24 +8 */
  assert_int_equal(sv.supervision_id, 0x123FFAA1);
  assert_int_equal(hw_jt809_utc_ms(sv.deadline), 1538018640000LL);
  assert_int_equal(sv.level, 1);
  assert_string_equal(sv.supervisor, "smallchi");
  assert_string_equal(sv.tel, "12345678901");
  assert_string_equal(sv.email, "123456@qq.com");
  assert_int_equal(hw_jt809_encode_supervise(&sv, out, sizeof out, &n), 0);
  assert_int_equal(n, sub.data_len);
  assert_memory_equal(out, sub.data, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_jt809_parse_supervise(out, k, &sv), -EBADMSG);
}

/* 0x1401: supervision 9898, result 0 (being handled) is 00 00 26 AA 00 (SmallChi/JT809,
 * src/JT809.Protocol.Test/JT809SubMessageBody/JT809_0x1400_0x1401Test.cs). */
static void test_supervise_rsp(void **state) {
  (void)state;
  static const uint8_t v[] = {0x00, 0x00, 0x26, 0xAA, 0x00};
  uint32_t id;
  uint8_t result, out[8];
  size_t n;
  assert_int_equal(hw_jt809_parse_supervise_rsp(v, sizeof v, &id, &result), 0);
  assert_int_equal(id, 9898);
  assert_int_equal(result, 0);
  assert_int_equal(hw_jt809_encode_supervise_rsp(9898, 0, out, sizeof out, &n), 0);
  assert_int_equal(n, sizeof v);
  assert_memory_equal(out, v, sizeof v);
  for (size_t k = 0; k < sizeof v; k++)
    assert_int_equal(hw_jt809_parse_supervise_rsp(v, k, &id, &result), -EBADMSG);
  assert_int_equal(hw_jt809_encode_supervise_rsp(1, 1, out, 4, &n), -ENOSPC);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_supervise_rsp),
      cmocka_unit_test(test_login),          cmocka_unit_test(test_register),
      cmocka_unit_test(test_positions_2011), cmocka_unit_test(test_positions_2019),
      cmocka_unit_test(test_interaction),    cmocka_unit_test(test_alarms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
