/* libFuzzer target for the active-safety items (jt808/jt808_safety.h) and what the daemon makes
 * of them (sinks/alarm_sql.h).
 *
 * Input: byte 0 picks the item id (0x62..0x69, so ids beside the four are tried too); the rest is
 * the item's value, decoded alone, and also a whole 0x0200 body walked by hw_safety_scan. Beyond
 * "no crash, no sanitizer report" (the value is copied into a block of exactly its size, so a
 * read past it is caught), oracles abort on a wrong answer:
 *   - an item decodes exactly when its length fits a layout (47/71 ADAS and DSM, 41/42/65/66
 *     BSD, 41 + 9n / 65 + 9n TPMS), and never keeps more tyre events than sent or fit;
 *   - the scan agrees with the decoder on every item it finds;
 *   - the alarm number's text has only [0-9A-Za-z:-] and at most HW_SAFETY_ALARM_NO_TEXT_MAX - 1
 *     bytes; the INSERT the writer would run has exactly its 6 literals' 12 quotes (nothing from
 *     the wire can close a literal) and the JSON has no quote outside its keys and strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jt808/jt808_location.h"
#include "jt808/jt808_safety.h"
#include "sinks/alarm_sql.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

static int fits(unsigned id, size_t n) {
  switch (id) {
  case 0x64:
  case 0x65:
    return n == 47 || n == 71;
  case 0x67:
    return n == 41 || n == 42 || n == 65 || n == 66;
  case 0x66:
    return (n >= 41 && (n - 41) % 9 == 0) || (n >= 65 && (n - 65) % 9 == 0);
  default:
    return 0;
  }
}

static void check_alarm(const hw_safety_alarm *a) {
  char no[HW_SAFETY_ALARM_NO_TEXT_MAX], sql[HW_ALARM_SQL_MAX], js[HW_ALARM_SQL_MAX];
  size_t len = hw_safety_alarm_no_format(&a->no, no, sizeof no);
  CHECK(len == strlen(no) && len < sizeof no);
  for (size_t i = 0; i < len; i++)
    CHECK((no[i] >= '0' && no[i] <= '9') || (no[i] >= 'A' && no[i] <= 'Z') ||
          (no[i] >= 'a' && no[i] <= 'z') || no[i] == ':' || no[i] == '-');
  CHECK(a->tyres_kept <= a->tyre_count && a->tyres_kept <= HW_SAFETY_TYRES_MAX);
  hw_fix fix;
  memset(&fix, 0, sizeof fix);
  fix.ts_ms = 1700000000000LL;
  fix.lat_e6 = -30000000; /* a southern fix: the item's latitude takes its sign */
  fix.lon_e6 = 120000000;
  int n = hw_alarm_insert_sql("013912344329", a, &fix, sql, sizeof sql);
  CHECK(n > 0 && (size_t)n == strlen(sql));
  int quotes = 0;
  for (int i = 0; i < n; i++)
    quotes += sql[i] == '\'';
  CHECK(quotes == 12);
  n = hw_alarm_event_json("013912344329", a, &fix, js, sizeof js);
  CHECK(n > 0 && (size_t)n == strlen(js));
  CHECK(js[0] == '{' && js[n - 1] == '}');
  CHECK(hw_alarm_insert_sql("01'; DROP", a, &fix, sql, sizeof sql) == -EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned id = 0x62 + (data[0] & 7);
  size_t n = size - 1;
  uint8_t *v = malloc(n ? n : 1);
  CHECK(v);
  memcpy(v, data + 1, n);
  hw_safety_alarm a;
  int rc = hw_safety_parse_item((uint8_t)id, v, n, &a);
  if (id < 0x64 || id > 0x67)
    CHECK(rc == -ENOENT);
  else
    CHECK(rc == (fits(id, n) ? 0 : -EBADMSG));
  if (rc == 0) {
    CHECK(a.item_id == id && a.kind == id - 0x64 + 1);
    check_alarm(&a);
  }
  free(v);

  /* The rest as a 0x0200 body. */
  uint8_t *body = malloc(n ? n : 1);
  CHECK(body);
  memcpy(body, data + 1, n);
  hw_safety_alarm out[4];
  size_t got = 0, bad = 0;
  rc = hw_safety_scan(body, n, out, 4, &got, &bad);
  CHECK(rc == 0 || rc == -EBADMSG);
  CHECK(got <= 4);
  for (size_t i = 0; i < got; i++)
    check_alarm(&out[i]);
  if (rc == 0 && n >= HW_JT808_LOCATION_MIN) {
    /* Every safety item the scan met was either decoded or counted bad. */
    size_t seen = 0;
    for (size_t p = HW_JT808_LOCATION_MIN; p + 2 <= n && p + 2 + body[p + 1] <= n;
         p += 2 + body[p + 1])
      seen += body[p] >= 0x64 && body[p] <= 0x67;
    CHECK(got + bad == seen);
  }
  free(body);
  return 0;
}
