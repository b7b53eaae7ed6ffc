/* JT/T 808 headers, session messages and replies, against the values other implementations'
 * suites assert (sources in jt808_vectors.h) and our own edge cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "jt808/jt808_msg.h"
#include "jt808_vectors.h"

typedef struct parsed {
  jt808_one one;
  hw_jt808_header h;
  const uint8_t *body;
} parsed;

/* Deframes and parses the header of a vector; both must succeed. */
static void parse_vec(const char *name, parsed *p) {
  assert_int_equal(jt808_deframe(name, &p->one), 0);
  assert_int_equal(hw_jt808_header_parse(p->one.frame, p->one.len, &p->h, &p->body), 0);
  assert_ptr_equal(p->body, p->one.frame + p->h.header_len);
}

/* ---- header ---------------------------------------------------------------------------- */

static void test_header_2013_2019(void **state) {
  (void)state;
  parsed p;

  parse_vec("hb_2013", &p); /* go-jt808 */
  assert_int_equal(p.h.msg_id, HW_JT808_MSG_HEARTBEAT);
  assert_string_equal(p.h.phone, "012345678901");
  assert_int_equal(p.h.flow, 0);
  assert_int_equal(p.h.body_len, 0);
  assert_false(p.h.is_2019);
  assert_int_equal(p.h.header_len, 12);

  parse_vec("hb_2019", &p); /* go-jt808 */
  assert_true(p.h.is_2019);
  assert_int_equal(p.h.version, 1);
  assert_string_equal(p.h.phone, "00000000017299841738");
  assert_int_equal(p.h.flow, 0xFFFF);
  assert_int_equal(p.h.header_len, 17);

  /* SmallChi asserts MsgNum 43 and phone "40021679287" (it strips the leading zero; we keep it). */
  parse_vec("hb_cs7e", &p);
  assert_int_equal(p.h.flow, 43);
  assert_string_equal(p.h.phone, "040021679287");

  parse_vec("hb_cs7d", &p); /* go-jt808 builds it for phone "678", flow 1 */
  assert_string_equal(p.h.phone, "000000000678");
  assert_int_equal(p.h.flow, 1);

  parse_vec("logout", &p); /* SmallChi: MsgNum 1, phone 12345678900 */
  assert_int_equal(p.h.msg_id, HW_JT808_MSG_LOGOUT);
  assert_int_equal(p.h.flow, 1);
  assert_string_equal(p.h.phone, "012345678900");
  assert_int_equal(hw_jt808_parse_empty(p.body, p.h.body_len), 0);

  parse_vec("loc_sc", &p); /* SmallChi Test5: DataLength 38, MsgNum 8888, not packaged */
  assert_int_equal(p.h.body_len, 38);
  assert_int_equal(p.h.flow, 8888);
  assert_string_equal(p.h.phone, "112233445566");
  assert_false(p.h.subpackaged);
  assert_int_equal(p.h.encryption, 0);

  parse_vec("loc_sc_esc", &p); /* SmallChi Demo2: flow 126 sent as 7D 02 */
  assert_int_equal(p.h.flow, 126);
  assert_string_equal(p.h.phone, "123456789012");
}

static void test_header_flag_mismatch(void **state) {
  (void)state;
  parsed p;
  parse_vec("auth_flag_mismatch", &p); /* SmallChi Test5_3 (JTT2013Force) */
  assert_false(p.h.is_2019);
  assert_true(p.h.flag_mismatch);
  assert_string_equal(p.h.phone, "010030000681");
  assert_int_equal(p.h.flow, 0x0902);
  assert_int_equal(p.h.body_len, 12);
}

static void test_header_subpackage(void **state) {
  (void)state;
  parsed p;
  parse_vec("subpkg_go", &p); /* go-jt808 "正确的分包数据" */
  assert_int_equal(p.h.msg_id, 0x0801);
  assert_true(p.h.subpackaged);
  assert_int_equal(p.h.pkg_total, 26);
  assert_int_equal(p.h.pkg_index, 2);
  assert_int_equal(p.h.flow, 0x02DE);
  assert_int_equal(p.h.header_len, 16);
  assert_int_equal(p.h.body_len, 5);
}

static int header_of_hex(const char *hex, hw_jt808_header *h) {
  uint8_t f[128];
  const uint8_t *body;
  size_t n = jt808_unhex(hex, f, sizeof f);
  return hw_jt808_header_parse(f, n, h, &body);
}

static void test_header_errors(void **state) {
  (void)state;
  hw_jt808_header h;
  /* go-jt808 jt808_test.go "body数据和解析头不符合": length 5, 4 bytes (checksum stripped here) */
  assert_int_equal(header_of_hex("0801200500123456789002DE001A0002280800", &h), -EPROTO);
  /* go-jt808 "头部情况不足 分包情况": sub-packaged but no package items */
  assert_int_equal(header_of_hex("0801200500123456789002", &h), -EPROTO);
  /* body one byte longer than announced */
  assert_int_equal(header_of_hex("000200000123456789010000ff", &h), -EPROTO);
  /* shorter than any header */
  assert_int_equal(header_of_hex("00020000012345678901", &h), -EPROTO);
  /* 0x1A is not BCD: the phone is the terminal id, no guessing */
  assert_int_equal(header_of_hex("000200000123456789 1A 0000", &h), -EPROTO);
  assert_int_equal(header_of_hex("0002400001 000000000172998417 3F ffff", &h), -EPROTO);
  /* package index 0, index above total, total 0 */
  assert_int_equal(header_of_hex("0801200100123456789002DE001A000028", &h), -EPROTO);
  assert_int_equal(header_of_hex("0801200100123456789002DE001A001B28", &h), -EPROTO);
  assert_int_equal(header_of_hex("0801200100123456789002DE0000000128", &h), -EPROTO);
  /* the same frames made valid parse */
  assert_int_equal(header_of_hex("0801200100123456789002DE001A001A28", &h), 0);
  assert_int_equal(header_of_hex("000200000123456789010000", &h), 0);
}

static size_t wire_len_of(const char *name, uint8_t *out, size_t cap) {
  return jt808_unhex(jt808_vector_get(name)->hex, out, cap);
}

static void test_header_init_build(void **state) {
  (void)state;
  hw_jt808_header h;
  uint8_t out[HW_JT808_WIRE_MAX], want[256], body[64];
  size_t n, wn, bn;

  /* go-jt808 terminal/option_test.go: 2013 heartbeat of phone "678", flow 1: checksum 7D 01 */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "678"), 0);
  assert_string_equal(h.phone, "000000000678");
  assert_int_equal(hw_jt808_build(out, sizeof out, &n, &h, HW_JT808_MSG_HEARTBEAT, 1, NULL, 0), 0);
  wn = wire_len_of("hb_cs7d", want, sizeof want);
  assert_int_equal(n, wn);
  assert_memory_equal(out, want, wn);

  /* SmallChi Demo1: 0x0200 of phone 123456789012, flow 126: 7D 02 in the header, 7D 01 in the
   * body */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "123456789012"), 0);
  bn = jt808_unhex("000000010000000200BA7F0E07E4F11C0028003C0000181015101010010400000064020200 7D",
                   body, sizeof body);
  assert_int_equal(hw_jt808_build(out, sizeof out, &n, &h, HW_JT808_MSG_LOCATION, 126, body, bn), 0);
  wn = wire_len_of("loc_sc_esc", want, sizeof want);
  assert_int_equal(n, wn);
  assert_memory_equal(out, want, wn);

  /* 2019: 20-digit phone, version byte (go-jt808 reply_test.go heartbeat) */
  assert_int_equal(hw_jt808_header_init(&h, 1, 1, "17299841738"), 0);
  assert_string_equal(h.phone, "00000000017299841738");
  assert_int_equal(hw_jt808_build(out, sizeof out, &n, &h, HW_JT808_MSG_HEARTBEAT, 0xFFFF, NULL, 0),
                   0);
  wn = wire_len_of("hb_2019", want, sizeof want);
  assert_int_equal(n, wn);
  assert_memory_equal(out, want, wn);

  assert_int_equal(hw_jt808_header_init(&h, 0, 0, ""), -EINVAL);
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "1234567890123"), -EINVAL);
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "12a"), -EINVAL);
  assert_int_equal(hw_jt808_header_init(&h, 1, 1, "123456789012345678901"), -EINVAL);
  assert_int_equal(hw_jt808_header_init(&h, 1, 1, "12345678901234567890"), 0);

  /* a body above 1023 bytes is refused, a small buffer too */
  static uint8_t big[HW_JT808_BODY_MAX + 1];
  assert_int_equal(hw_jt808_build(out, sizeof out, &n, &h, 0x0900, 0, big, sizeof big), -EMSGSIZE);
  assert_int_equal(hw_jt808_build(out, sizeof out, &n, &h, 0x0900, 0, big, sizeof big - 1), 0);
  assert_int_equal(hw_jt808_build(out, 10, &n, &h, 0x0900, 0, big, 5), -ENOSPC);
}

/* ---- 0x0100 register --------------------------------------------------------------------- */

static void check_register(const char *name, int version, int province, int city, const char *maker,
                           const char *model, const char *tid, int colour, const char *plate) {
  parsed p;
  hw_jt808_register r;
  parse_vec(name, &p);
  assert_int_equal(p.h.msg_id, HW_JT808_MSG_REGISTER);
  assert_int_equal(hw_jt808_parse_register(&p.h, p.body, p.h.body_len, &r), 0);
  assert_int_equal(r.version, version);
  assert_int_equal(r.province, province);
  assert_int_equal(r.city, city);
  assert_string_equal(r.maker, maker);
  assert_string_equal(r.model, model);
  assert_string_equal(r.terminal_id, tid);
  assert_int_equal(r.plate_colour, colour);
  assert_string_equal(r.plate, plate);
}

static void test_register(void **state) {
  (void)state;
  /* go-jt808 parse_test.go: the same registration in the three layouts */
  check_register("reg_2011", 2011, 31, 115, "cd", "www.808.", "7654321", 1, "测A1234");
  check_register("reg_2013", 2013, 31, 115, "cd", "www.808.com", "7654321", 1, "测A1234");
  check_register("reg_2019", 2019, 31, 115, "cd", "www.808.com", "7654321", 1, "测A1234");
  /* hylexus BuiltinMsg0100Test */
  check_register("reg_2011_hy", 2011, 11, 2, "id123", "abcdefgh", "ID12345", 1, "甘J-123451");
  check_register("reg_2019_hy", 2019, 11, 2, "id987654321", "type00123456781234567887654321",
                 "ID0000123456781234567887654321", 1, "甘J-123459");
  /* SmallChi JT808_0x0100Test: padded with '0' characters, which are data, not padding */
  check_register("reg_2013_sc", 2013, 40, 50, "12340", "smallchi123000000000", "CHI1230", 1,
                 "粤A12345");
  check_register("reg_2019_sc", 2019, 40, 50, "00000001234", "0000000000000000000smallchi123",
                 "000000000000000000000000CHI123", 1, "粤A12345");
  /* traccar (only asserts no position): a 2011 body with a space-padded model, a 2013 body */
  check_register("reg_2011_tc", 2011, 44, 303, "70111", "BSJ-M7B", "0000000", 1, "粤B88888");
  check_register("reg_2013_tc", 2013, 44, 303, "70111", "BSJ-A6-BD", "0567872", 1, "粤B88888");
  /* traccar: a bare 2011 body whose terminal id field holds binary; no plate */
  check_register("reg_2011_bare", 2011, 0, 0, "", "", "?@'??p", 0, "");
}

static int register_of(int is_2019, const char *bodyhex, hw_jt808_register *r) {
  hw_jt808_header h;
  uint8_t b[512];
  size_t n = jt808_unhex(bodyhex, b, sizeof b);
  assert_int_equal(hw_jt808_header_init(&h, is_2019, 1, "13800138000"), 0);
  return hw_jt808_parse_register(&h, b, n, r);
}

static void test_register_heuristic(void **state) {
  (void)state;
  hw_jt808_register r;
  /* 2011 with a 17-character VIN as plate (colour 0): 42 bytes, long enough to be read as 2013,
   * but byte 36 is '1', not a colour. */
  assert_int_equal(register_of(0,
                               "0001 0002 4142434445 4D4F44454C313233 54303030303031 00"
                               "4C5356415532313830 4E32313833323934",
                               &r),
                   0);
  assert_int_equal(r.version, 2011);
  assert_string_equal(r.model, "MODEL123");
  assert_string_equal(r.plate, "LSVAU2180N2183294");
  /* Every prefix of a 2013 body shorter than the 2011 fixed part is refused. */
  parsed p;
  parse_vec("reg_2013", &p);
  for (size_t n = 0; n < 25; n++)
    assert_int_equal(hw_jt808_parse_register(&p.h, p.body, n, &r), -EBADMSG);
  /* Not GBK: a lone 0x80 byte in the plate; a plate colour no reading accepts */
  assert_int_equal(register_of(0, "0001000241424344454D4F44454C313233 54303030303031 01 80", &r),
                   -EILSEQ);
  assert_int_equal(register_of(0, "0001000241424344454D4F44454C313233 54303030303031 07 41", &r),
                   -EBADMSG);
  /* 2019 body too short for its fixed part */
  assert_int_equal(register_of(1, "00010002414243", &r), -EBADMSG);
}

/* ---- 0x0102 authenticate ----------------------------------------------------------------- */

static void check_auth(const char *name, int version, const char *code) {
  parsed p;
  hw_jt808_auth a;
  parse_vec(name, &p);
  assert_int_equal(p.h.msg_id, HW_JT808_MSG_AUTH);
  assert_int_equal(hw_jt808_parse_auth(&p.h, p.body, p.h.body_len, &a), 0);
  assert_int_equal(a.version, version);
  assert_int_equal(a.code_len, strlen(code));
  assert_memory_equal(a.code, code, a.code_len);
}

static void test_auth(void **state) {
  (void)state;
  parsed p;
  hw_jt808_auth a;

  check_auth("auth_2013", 2013, "17299841738");   /* go-jt808 */
  check_auth("auth_hy", 2013, "admin-123456");    /* hylexus */
  check_auth("auth_sc", 2013, "456121111");       /* SmallChi Test4 */
  check_auth("auth_tc", 2013, "authentication");  /* traccar */
  check_auth("auth_flag_mismatch", 2013, "J10030000681");
  parse_vec("auth_sc", &p);
  assert_int_equal(p.h.flow, 12345);
  assert_string_equal(p.h.phone, "012345678900");

  check_auth("auth_2019", 2019, "17299841738"); /* go-jt808: IMEI and software version too */
  parse_vec("auth_2019", &p);
  assert_int_equal(hw_jt808_parse_auth(&p.h, p.body, p.h.body_len, &a), 0);
  assert_string_equal(a.imei, "123456789012345");
  assert_string_equal(a.software, "3.7.15");

  /* hylexus BuiltinMsg0102Test.test2019: a GBK code "这不是Bug,这是Feature!!!", and
   * testEmptyAuthCode; both with IMEI 123456789011111, software v1.2.300000000000000. */
  hw_jt808_header h;
  uint8_t b[128];
  size_t n;
  assert_int_equal(hw_jt808_header_init(&h, 1, 1, "13912344329"), 0);
  n = jt808_unhex("18 d5e2b2bbcac74275672cd5e2cac746656174757265212121"
                  "313233343536373839303131313131 76312e322e333030303030303030303030303030",
                  b, sizeof b);
  assert_int_equal(hw_jt808_parse_auth(&h, b, n, &a), 0);
  assert_int_equal(a.version, 2019);
  assert_int_equal(a.code_len, 24);
  assert_memory_equal(a.code, b + 1, 24);
  assert_string_equal(a.imei, "123456789011111");
  assert_string_equal(a.software, "v1.2.300000000000000");
  n = jt808_unhex("00 313233343536373839303131313131 76312e322e333030303030303030303030303030", b,
                  sizeof b);
  assert_int_equal(hw_jt808_parse_auth(&h, b, n, &a), 0);
  assert_int_equal(a.version, 2019);
  assert_int_equal(a.code_len, 0);
  assert_string_equal(a.imei, "123456789011111");

  /* A 2019 header with a 2013 body: read whole (the code check decides). */
  n = jt808_unhex("3137323939383431373338", b, sizeof b);
  assert_int_equal(hw_jt808_parse_auth(&h, b, n, &a), 0);
  assert_int_equal(a.version, 2013);
  assert_int_equal(a.code_len, 11);
  /* The STRING terminator some terminals add is not part of the code. */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "13912344329"), 0);
  n = jt808_unhex("4142430000", b, sizeof b);
  assert_int_equal(hw_jt808_parse_auth(&h, b, n, &a), 0);
  assert_int_equal(a.code_len, 3);
}

/* ---- 0x0001 terminal general response -------------------------------------------------- */

static void test_terminal_response(void **state) {
  (void)state;
  const char *names[] = {"tresp_2013", "tresp_2019"}; /* go-jt808: 123, 456, 3 */
  for (size_t i = 0; i < 2; i++) {
    parsed p;
    hw_jt808_terminal_response t;
    parse_vec(names[i], &p);
    assert_int_equal(hw_jt808_parse_terminal_response(p.body, p.h.body_len, &t), 0);
    assert_int_equal(t.reply_flow, 123);
    assert_int_equal(t.reply_id, 456);
    assert_int_equal(t.result, 3);
    assert_int_equal(hw_jt808_parse_terminal_response(p.body, 4, &t), -EBADMSG);
  }
}

/* ---- 0x0702 driver identity -------------------------------------------------------------- */

static int driver_of(int is_2019, const char *bodyhex, hw_jt808_driver *d, size_t cut) {
  hw_jt808_header h;
  uint8_t b[512];
  size_t n = jt808_unhex(bodyhex, b, sizeof b);
  assert_int_equal(hw_jt808_header_init(&h, is_2019, 1, "13800138000"), 0);
  return hw_jt808_parse_driver(&h, b, cut ? cut : n, d);
}

/* 2018-08-16 09:16:16 GMT+8 */
#define T_20180816_091616 1534382176000LL

static void test_driver_2013_2019(void **state) {
  (void)state;
  hw_jt808_driver d;

  /* SmallChi JT808_0x0702Test Test1_2: card removed */
  assert_int_equal(driver_of(0, "02180816091616", &d, 0), 0);
  assert_int_equal(d.version, 2013);
  assert_int_equal(d.status, 2);
  assert_int_equal(d.time_ms, T_20180816_091616);
  assert_false(d.has_identity);

  /* Test2_2: inserted, read failed (key authentication) */
  assert_int_equal(driver_of(0, "0118081609161601", &d, 0), 0);
  assert_int_equal(d.status, 1);
  assert_int_equal(d.ic_result, 1);
  assert_false(d.has_identity);

  /* Test3_1 and Test3 (certificate padded on the right, then on the left) */
  static const char *t3[] = {
      "0118081609161600056B6F696B6571776531323334353661616100000000000000000671776572747820180816",
      "0118081609161600056B6F696B6500000000000000007177653132333435366161610671776572747820180816"};
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(driver_of(0, t3[i], &d, 0), 0);
    assert_int_equal(d.version, 2013);
    assert_int_equal(d.status, 1);
    assert_int_equal(d.ic_result, 0);
    assert_true(d.has_identity);
    assert_int_equal(d.time_ms, T_20180816_091616);
    assert_string_equal(d.name, "koike");
    assert_string_equal(d.certificate, "qwe123456aaa");
    assert_string_equal(d.authority, "qwertx");
    assert_int_equal(d.expiry, 20180816);
    assert_string_equal(d.id_number, "");
  }
  /* Every truncation of it is refused, never over-read. */
  size_t full = strlen(t3[0]) / 2;
  for (size_t cut = 1; cut < full; cut++) {
    if (cut == 7)
      continue; /* 7 bytes with status 1 is refused too, checked below */
    assert_int_equal(driver_of(0, t3[0], &d, cut), -EBADMSG);
  }
  assert_int_equal(driver_of(0, t3[0], &d, 7), -EBADMSG);

  /* Test_2019_2: the driver ID number follows */
  assert_int_equal(driver_of(1,
                             "0119120111111100056B6F696B657177653132333435366161610000000000000000"
                             "06717765727478201912013132333435363738393031323334353637000000",
                             &d, 0),
                   0);
  assert_int_equal(d.version, 2019);
  assert_string_equal(d.name, "koike");
  assert_string_equal(d.certificate, "qwe123456aaa");
  assert_string_equal(d.authority, "qwertx");
  assert_int_equal(d.expiry, 20191201);
  assert_string_equal(d.id_number, "12345678901234567");

  /* Test_2019_5: provincial extension (face match, UID) after the ID number is ignored */
  assert_int_equal(driver_of(1,
                             "0121052818111100056B6F696B650000000000000000717765313233343536616161"
                             "06717765727478202105280000003132333435363738393031323334353637630000"
                             "003132333435363738393031323334353637",
                             &d, 0),
                   0);
  assert_string_equal(d.id_number, "12345678901234567");
  assert_int_equal(d.expiry, 20210528);

  /* GBK name and authority (ours): 张三, 北京市交通委 */
  assert_int_equal(driver_of(0,
                             "01180816091616 00 04 d5c5c8fd 41313233343536373839300000000000000000"
                             "00 0c b1b1bea9cad0bdbbcda8ceaf 20250101",
                             &d, 0),
                   0);
  assert_string_equal(d.name, "张三");
  assert_string_equal(d.authority, "北京市交通委");
  assert_string_equal(d.certificate, "A1234567890");

  /* errors: status 3; month 13; expiry not BCD */
  assert_int_equal(driver_of(0, "03180816091616", &d, 0), -EBADMSG);
  assert_int_equal(driver_of(0, "02181316091616", &d, 0), -EBADMSG);
  assert_int_equal(driver_of(0,
                             "0118081609161600056B6F696B6571776531323334353661616100000000000000"
                             "000671776572747820A80816",
                             &d, 0),
                   -EBADMSG);
}

static void test_driver_2011(void **state) {
  (void)state;
  hw_jt808_driver d;
  /* Layout of JT/T 808-2011 (no suite we found has a vector): name len, name 李四, ID number
   * STRING[20], certificate STRING[40], authority len, authority 北京市交通委. */
  static const char body[] =
      "04 c0eecbc4"
      "3131303130313139393030333037313233340000"
      "4331323334353637383930" "0000000000000000000000000000000000000000000000000000000000"
      "0c b1b1bea9cad0bdbbcda8ceaf";
  assert_int_equal(driver_of(0, body, &d, 0), 0);
  assert_int_equal(d.version, 2011);
  assert_int_equal(d.status, 1);
  assert_true(d.has_identity);
  assert_string_equal(d.name, "李四");
  assert_string_equal(d.id_number, "110101199003071234");
  assert_string_equal(d.certificate, "C1234567890");
  assert_string_equal(d.authority, "北京市交通委");
  assert_int_equal(d.time_ms, 0);
  size_t full = strlen("04c0eecbc4") / 2 + 20 + 40 + 1 + 12;
  for (size_t cut = 1; cut < full; cut++)
    assert_int_equal(driver_of(0, body, &d, cut), -EBADMSG);
}

/* ---- replies ----------------------------------------------------------------------------- */

static void check_bytes(const uint8_t *out, size_t n, const char *want_hex) {
  uint8_t want[256];
  size_t wn = jt808_unhex(want_hex, want, sizeof want);
  assert_int_equal(n, wn);
  assert_memory_equal(out, want, wn);
}

static void test_encode_platform_response(void **state) {
  (void)state;
  hw_jt808_header h;
  uint8_t out[HW_JT808_WIRE_MAX];
  size_t n;

  /* hylexus BuiltinMsg8001Test: terminal 013912344323, flow 0, reply flow 222, result 4 */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "013912344323"), 0);
  assert_int_equal(hw_jt808_encode_platform_response(out, sizeof out, &n, &h, 0, 222, 0,
                                                     HW_JT808_RES_ALARM_CONFIRMED),
                   0);
  check_bytes(out, n, "7E80010005013912344323000000DE000004207E");

  /* SmallChi JT808_0x8001Test: phone 12345678900, flow 10, answering 0x0200 flow 100 */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "12345678900"), 0);
  assert_int_equal(hw_jt808_encode_platform_response(out, sizeof out, &n, &h, 10, 100, 0x0200, 0),
                   0);
  check_bytes(out, n, "7E80010005012345678900000A0064020000617E");

  /* go-jt808 reply_test.go: replies built from the terminal's own frame (its header is the peer,
   * our flow 0) */
  static const struct {
    const char *req;
    uint8_t result;
    const char *want;
  } go[] = {
      {"hb_2013_b", 0, "7e8001000501234567890100007fff0002008e7e"},
      {"hb_2019", 0, "7e8001400501000000000172998417380000ffff000200867e"},
      {"tresp_2013", 0, "7e8001000501234567890100007fff0001008d7e"},
      {"auth_2019", 0, "7e80014005010000000001729984173800000000010200877e"},
      {"auth_2013", 1, "7e80010005012345678901000000000102010e7e"},
      {"loc_go_items", 0, "7e8001000501234567890100007fff0200008e7e"},
  };
  for (size_t i = 0; i < sizeof go / sizeof go[0]; i++) {
    parsed p;
    parse_vec(go[i].req, &p);
    assert_int_equal(hw_jt808_encode_platform_response(out, sizeof out, &n, &p.h, 0, p.h.flow,
                                                       p.h.msg_id, go[i].result),
                     0);
    check_bytes(out, n, go[i].want);
  }
  assert_int_equal(hw_jt808_encode_platform_response(out, 16, &n, &h, 10, 100, 0x0200, 0), -ENOSPC);
}

static void test_encode_register_response(void **state) {
  (void)state;
  hw_jt808_header h;
  uint8_t out[HW_JT808_WIRE_MAX], code[64];
  size_t n, cn;

  /* hylexus BuiltinMsg8100Test: code "Code-123456!!!哈哈" in GBK; with result 1 no code */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "013912344323"), 0);
  cn = jt808_unhex("436F64652D313233343536212121B9FEB9FE", code, sizeof code);
  assert_int_equal(hw_jt808_encode_register_response(out, sizeof out, &n, &h, 0, 111,
                                                     HW_JT808_REG_OK, code, cn),
                   0);
  check_bytes(out, n, "7E810000150139123443230000006F00436F64652D313233343536212121B9FEB9FEA37E");
  assert_int_equal(hw_jt808_encode_register_response(out, sizeof out, &n, &h, 0, 111,
                                                     HW_JT808_REG_VEHICLE_TAKEN, code, cn),
                   0);
  check_bytes(out, n, "7E810000030139123443230000006F01927E");

  /* SmallChi JT808_0x8100Test: flow 10, reply flow 100 */
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "012345678900"), 0);
  assert_int_equal(hw_jt808_encode_register_response(out, sizeof out, &n, &h, 10, 100,
                                                     HW_JT808_REG_OK, (const uint8_t *)"123456", 6),
                   0);
  check_bytes(out, n, "7E81000009012345678900000A006400313233343536687E");
  assert_int_equal(hw_jt808_encode_register_response(out, sizeof out, &n, &h, 10, 100,
                                                     HW_JT808_REG_NO_TERMINAL,
                                                     (const uint8_t *)"123456", 6),
                   0);
  check_bytes(out, n, "7E81000003012345678900000A006404617E");
  assert_int_equal(hw_jt808_encode_register_response(out, sizeof out, &n, &h, 10, 100,
                                                     HW_JT808_REG_OK,
                                                     (const uint8_t *)"zssdaf23124sfdsc", 16),
                   0);
  check_bytes(out, n, "7E81000013012345678900000A0064007A7373646166323331323473666473633B7E");

  /* go-jt808 reply_test.go: answering each registration layout with its own header */
  static const struct {
    const char *req, *code, *want;
  } go[] = {
      {"reg_2011", "12345678901", "7e8100000e01234567890100000000003132333435363738393031377e"},
      {"reg_2013", "12345678901", "7e8100000e01234567890100000000003132333435363738393031377e"},
      {"reg_2019", "17299841738",
       "7e8100400e010000000001729984173800000000003137323939383431373338ba7e"},
  };
  for (size_t i = 0; i < sizeof go / sizeof go[0]; i++) {
    parsed p;
    parse_vec(go[i].req, &p);
    assert_int_equal(hw_jt808_encode_register_response(out, sizeof out, &n, &p.h, 0, p.h.flow,
                                                       HW_JT808_REG_OK,
                                                       (const uint8_t *)go[i].code,
                                                       strlen(go[i].code)),
                     0);
    check_bytes(out, n, go[i].want);
  }

  /* The reply is a frame our own deframer accepts, with the peer's phone. */
  parsed p;
  jt808_one o;
  hw_jt808_deframer d;
  hw_jt808_header rh;
  const uint8_t *rb;
  parse_vec("reg_2019_hy", &p);
  assert_int_equal(hw_jt808_encode_register_response(out, sizeof out, &n, &p.h, 7, p.h.flow,
                                                     HW_JT808_REG_OK, (const uint8_t *)"abc", 3),
                   0);
  memset(&o, 0, sizeof o);
  hw_jt808_deframer_init(&d);
  assert_int_equal(hw_jt808_deframer_feed(&d, out, n, jt808_one_cb, &o), 0);
  assert_int_equal(o.events, 1);
  assert_int_equal(o.ev, HW_JT808_FRAME);
  assert_int_equal(hw_jt808_header_parse(o.frame, o.len, &rh, &rb), 0);
  assert_true(rh.is_2019);
  assert_string_equal(rh.phone, p.h.phone);
  assert_int_equal(rh.msg_id, HW_JT808_MSG_REGISTER_RESPONSE);
  assert_int_equal(rh.flow, 7);
  assert_int_equal(rh.body_len, 6);
  assert_memory_equal(rb + 3, "abc", 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_2013_2019),
      cmocka_unit_test(test_header_flag_mismatch),
      cmocka_unit_test(test_header_subpackage),
      cmocka_unit_test(test_header_errors),
      cmocka_unit_test(test_header_init_build),
      cmocka_unit_test(test_register),
      cmocka_unit_test(test_register_heuristic),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_terminal_response),
      cmocka_unit_test(test_driver_2013_2019),
      cmocka_unit_test(test_driver_2011),
      cmocka_unit_test(test_encode_platform_response),
      cmocka_unit_test(test_encode_register_response),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
