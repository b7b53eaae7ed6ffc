/* jt809/jt809_login: every 0x1002 result of the login decision, in the documented order, with
 * a real argon2id hash (the one `haulwatch platform add` writes); the unregistered-vehicle id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "jt809/jt809_login.h"

static hw_jt809_platform plat;

static int setup(void **state) {
  (void)state;
  assert_true(sodium_init() >= 0);
  memset(&plat, 0, sizeof plat);
  strcpy(plat.id, "ent1");
  plat.user_id = 70001;
  plat.center_id = 3300001;
  plat.version = 2019;
  assert_int_equal(crypto_pwhash_str(plat.password_hash, "pw12345", 7,
                                     crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                     crypto_pwhash_MEMLIMIT_INTERACTIVE),
                   0);
  return 0;
}

static hw_jt809_login login(uint32_t user, const char *pw, uint32_t body_center) {
  hw_jt809_login m;
  memset(&m, 0, sizeof m);
  m.user_id = user;
  m.password_len = (uint8_t)strlen(pw);
  memcpy(m.password, pw, m.password_len);
  m.center_id = body_center;
  return m;
}

static void results(void **state) {
  (void)state;
  const char *why = "x";
  hw_jt809_login ok = login(70001, "pw12345", 3300001);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "127.0.0.1", &why), HW_JT809_LOGIN_OK);
  assert_null(why);
  /* A 2011 body has no centre id (0). */
  hw_jt809_login ok11 = login(70001, "pw12345", 0);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok11, "10.1.2.3", &why), HW_JT809_LOGIN_OK);

  assert_int_equal(hw_jt809_login_check(NULL, 3300009, &ok, "127.0.0.1", &why),
                   HW_JT809_LOGIN_BAD_ACCESS_CODE);
  assert_string_equal(why, "unknown access code");
  /* A row of another access code is no match. */
  assert_int_equal(hw_jt809_login_check(&plat, 3300009, &ok, "127.0.0.1", &why),
                   HW_JT809_LOGIN_BAD_ACCESS_CODE);
  hw_jt809_login other = login(70001, "pw12345", 3300002);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &other, "127.0.0.1", &why),
                   HW_JT809_LOGIN_BAD_ACCESS_CODE);
  assert_string_equal(why, "access code in body differs from header");

  hw_jt809_login bad_user = login(70002, "pw12345", 0);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &bad_user, "127.0.0.1", &why),
                   HW_JT809_LOGIN_NO_USER);
  assert_string_equal(why, "unknown user id");
  static const char *const wrong[] = {"pw1234", "pw123456", "PW12345", "pw12346"};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
    hw_jt809_login w = login(70001, wrong[i], 0);
    assert_int_equal(hw_jt809_login_check(&plat, 3300001, &w, "127.0.0.1", &why),
                     HW_JT809_LOGIN_BAD_PASSWORD);
    assert_string_equal(why, "wrong password");
  }
  hw_jt809_login empty = login(70001, "", 0);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &empty, "127.0.0.1", &why),
                   HW_JT809_LOGIN_BAD_PASSWORD);

  /* Source address: IPv4 also as IPv4-mapped IPv6; checked before user and password. */
  strcpy(plat.allow_addr, "127.0.0.1");
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "127.0.0.1", &why), HW_JT809_LOGIN_OK);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "::ffff:127.0.0.1", &why),
                   HW_JT809_LOGIN_OK);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "127.0.0.2", &why),
                   HW_JT809_LOGIN_BAD_IP);
  assert_string_equal(why, "source address not allowed");
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &bad_user, "127.0.0.2", &why),
                   HW_JT809_LOGIN_BAD_IP);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "", &why), HW_JT809_LOGIN_BAD_IP);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, NULL, &why), HW_JT809_LOGIN_BAD_IP);
  strcpy(plat.allow_addr, "2001:db8::1");
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "2001:db8:0::1", &why),
                   HW_JT809_LOGIN_OK);
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "2001:db8::2", &why),
                   HW_JT809_LOGIN_BAD_IP);
  plat.allow_addr[0] = 0;

  /* Disabled: refused as an access code, whatever the credentials. */
  plat.disabled = 1;
  assert_int_equal(hw_jt809_login_check(&plat, 3300001, &ok, "127.0.0.1", &why),
                   HW_JT809_LOGIN_BAD_ACCESS_CODE);
  assert_string_equal(why, "platform disabled");
  plat.disabled = 0;
}

static void vehicle_tid(void **state) {
  (void)state;
  char out[HW_JT809_VEHICLE_TID_MAX + 1];
  assert_int_equal(hw_jt809_vehicle_tid(3300001, "苏A12345", 2, out, sizeof out), 0);
  assert_string_equal(out, "jt809:3300001:苏A12345:2");
  assert_int_equal(hw_jt809_vehicle_tid(4294967295u, "X", 255, out, sizeof out), 0);
  assert_string_equal(out, "jt809:4294967295:X:255");
  /* The longest plate at the largest numbers fits the documented maximum exactly. */
  char plate[HW_JT809_PLATE_MAX + 2];
  memset(plate, 'A', HW_JT809_PLATE_MAX);
  plate[HW_JT809_PLATE_MAX] = 0;
  assert_int_equal(hw_jt809_vehicle_tid(4294967295u, plate, 255, out, sizeof out), 0);
  assert_int_equal(strlen(out), HW_JT809_VEHICLE_TID_MAX);
  plate[HW_JT809_PLATE_MAX] = 'A';
  plate[HW_JT809_PLATE_MAX + 1] = 0;
  assert_int_equal(hw_jt809_vehicle_tid(1, plate, 1, out, sizeof out), -EINVAL);
  /* Ambiguous or not text. */
  assert_int_equal(hw_jt809_vehicle_tid(1, "", 1, out, sizeof out), -EINVAL);
  assert_int_equal(hw_jt809_vehicle_tid(1, "A:1", 1, out, sizeof out), -EINVAL);
  assert_int_equal(hw_jt809_vehicle_tid(1, "A\n1", 1, out, sizeof out), -EINVAL);
  assert_int_equal(hw_jt809_vehicle_tid(1, "A\xff", 1, out, sizeof out), -EINVAL);
  /* A buffer too small: nothing half-written. */
  char small[12];
  assert_int_equal(hw_jt809_vehicle_tid(3300001, "苏A12345", 2, small, sizeof small), -EOVERFLOW);
  assert_string_equal(small, "");
}

static size_t got_len;

static int take_frame(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  assert_int_equal(ev, HW_JT809_FRAME);
  memcpy(arg, data, len);
  got_len = len;
  return 0;
}

/* The peek agrees with the header parser of either edition on frames the codec builds. */
static void peek(void **state) {
  (void)state;
  uint8_t body[64], wire[256], raw[256];
  size_t blen, wlen;
  hw_jt809_login m = login(70001, "pw12345", 3300001);
  for (int is_2019 = 0; is_2019 <= 1; is_2019++) {
    assert_int_equal(hw_jt809_encode_login(&m, is_2019, body, sizeof body, &blen), 0);
    hw_jt809_header h;
    memset(&h, 0, sizeof h);
    h.sn = 7;
    h.msg_id = HW_JT809_UP_CONNECT_REQ;
    h.center_id = 3300001;
    h.is_2019 = (uint8_t)is_2019;
    h.utc_s = is_2019 ? 1700000000 : 0;
    assert_int_equal(hw_jt809_build(wire, sizeof wire, &wlen, &h, NULL, body, blen), 0);
    /* Unframed by the deframer, as the session will get it. */
    uint8_t dbuf[512];
    hw_jt809_deframer d;
    assert_int_equal(hw_jt809_deframer_init(&d, dbuf, sizeof dbuf), 0);
    got_len = 0;
    assert_int_equal(hw_jt809_deframer_feed(&d, wire, wlen, take_frame, raw), 0);
    size_t rlen = got_len;
    assert_true(rlen > 0);
    uint16_t id;
    uint32_t centre;
    assert_int_equal(hw_jt809_peek(raw, rlen, &id, &centre), 0);
    assert_int_equal(id, HW_JT809_UP_CONNECT_REQ);
    assert_int_equal(centre, 3300001);
    hw_jt809_header got;
    const uint8_t *b;
    size_t bl;
    assert_int_equal(hw_jt809_header_parse(raw, rlen, is_2019, &got, &b, &bl), 0);
    assert_int_equal(got.center_id, centre);
    assert_int_equal(got.msg_id, id);
    assert_int_equal(hw_jt809_peek(raw, HW_JT809_HEADER_2011 - 1, &id, &centre), -EPROTO);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(results),
      cmocka_unit_test(vehicle_tid),
      cmocka_unit_test(peek),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
